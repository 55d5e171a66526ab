//! Round-trip time estimation and the retransmission timeout, as in `ikcp.c`
//! (`ikcp_update_ack`): Jacobson's smoothed RTT and mean deviation, RTO bounded below by
//! the minimum RTO (lower in nodelay mode) and above by 60 s.

/// Upper bound of the retransmission timeout, in ms.
pub const RTO_MAX_MS: u32 = 60_000;
/// RTO before the first sample, in ms.
pub const RTO_INITIAL_MS: u32 = 200;
/// Minimum RTO in normal mode, in ms.
pub const RTO_MIN_MS: u32 = 100;
/// Minimum RTO in nodelay mode, in ms.
pub const RTO_MIN_NODELAY_MS: u32 = 30;

/// Smoothed RTT, RTT variance and the RTO derived from them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RttEstimator {
    srtt: i32,
    rttval: i32,
    rto: i32,
    min_rto: i32,
}

impl RttEstimator {
    pub(crate) fn new(nodelay: bool) -> Self {
        RttEstimator {
            srtt: 0,
            rttval: 0,
            rto: RTO_INITIAL_MS as i32,
            min_rto: if nodelay {
                RTO_MIN_NODELAY_MS
            } else {
                RTO_MIN_MS
            } as i32,
        }
    }

    /// Feeds one RTT sample (ms, never negative) taken from an ACK's echoed `ts`.
    ///
    /// The peer chooses the echoed `ts`, so a sample can be anything up to `i32::MAX`;
    /// it is capped at [`RTO_MAX_MS`] first (ikcp.c overflows its `int` arithmetic
    /// there; below the cap both agree exactly).
    #[inline]
    pub(crate) fn on_sample(&mut self, rtt: i32, interval: u32) {
        let rtt = rtt.clamp(0, RTO_MAX_MS as i32);
        if self.srtt == 0 {
            self.srtt = rtt;
            self.rttval = rtt / 2;
        } else {
            let delta = (rtt - self.srtt).abs();
            self.rttval = (3 * self.rttval + delta) / 4;
            self.srtt = ((7 * self.srtt + rtt) / 8).max(1);
        }
        let rto = (self.srtt as u32).wrapping_add(interval.max(4 * self.rttval as u32));
        self.rto = rto.max(self.min_rto as u32).min(RTO_MAX_MS) as i32;
    }

    /// Forgets the history and starts again from one sample (a new path, measured by a
    /// probe).
    pub(crate) fn reseed(&mut self, rtt: i32, interval: u32) {
        self.srtt = 0;
        self.rttval = 0;
        self.on_sample(rtt, interval);
    }

    /// Current retransmission timeout, ms.
    #[inline]
    pub(crate) fn rto(&self) -> u32 {
        self.rto as u32
    }

    /// Smoothed RTT, ms (0 before the first sample).
    pub(crate) fn srtt(&self) -> u32 {
        self.srtt as u32
    }

    /// RTT mean deviation, ms.
    pub(crate) fn rttvar(&self) -> u32 {
        self.rttval as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let mut rtt = RttEstimator::new(false);
        rtt.on_sample(80, 100);
        assert_eq!(rtt.srtt(), 80);
        assert_eq!(rtt.rttvar(), 40);
        // srtt + max(interval, 4 * rttvar) = 80 + 160
        assert_eq!(rtt.rto(), 240);
    }

    #[test]
    fn forged_huge_samples_are_capped() {
        let mut rtt = RttEstimator::new(false);
        rtt.on_sample(i32::MAX, 100);
        rtt.on_sample(i32::MAX, 100);
        rtt.on_sample(1, 100);
        assert_eq!(rtt.rto(), RTO_MAX_MS);
        assert!(rtt.srtt() <= RTO_MAX_MS);
    }

    #[test]
    fn rto_is_bounded() {
        let mut fast = RttEstimator::new(true);
        fast.on_sample(1, 10);
        assert_eq!(fast.rto(), RTO_MIN_NODELAY_MS);
        let mut slow = RttEstimator::new(false);
        slow.on_sample(50_000, 100);
        assert_eq!(slow.rto(), RTO_MAX_MS);
    }
}
