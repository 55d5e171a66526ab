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
///
/// Unsigned: every value is at least 0 and at most a few times [`RTO_MAX_MS`] (ikcp.c
/// uses `int`, with the same results for these values), so that the divisions of the
/// update are shifts, which keeps the chain from one ACK's sample to the next short.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RttEstimator {
    srtt: u32,
    rttval: u32,
    rto: u32,
}

/// The lowest RTO, ms: [`RTO_MIN_NODELAY_MS`] in nodelay mode, else [`RTO_MIN_MS`].
pub(crate) fn min_rto(nodelay: bool) -> u32 {
    if nodelay {
        RTO_MIN_NODELAY_MS
    } else {
        RTO_MIN_MS
    }
}

impl RttEstimator {
    pub(crate) fn new() -> Self {
        RttEstimator {
            srtt: 0,
            rttval: 0,
            rto: RTO_INITIAL_MS,
        }
    }

    /// Feeds one RTT sample (ms, never negative) taken from an ACK's echoed `ts`; the
    /// RTO is kept at least `min_rto` ([`min_rto`]).
    ///
    /// The peer chooses the echoed `ts`, so a sample can be anything up to `i32::MAX`;
    /// it is capped at [`RTO_MAX_MS`] first (ikcp.c overflows its `int` arithmetic
    /// there; below the cap both agree exactly).
    #[inline]
    pub(crate) fn on_sample(&mut self, rtt: i32, interval: u32, min_rto: u32) {
        let rtt = rtt.clamp(0, RTO_MAX_MS as i32) as u32;
        if self.srtt == 0 {
            self.srtt = rtt;
            self.rttval = rtt / 2;
        } else {
            let delta = rtt.abs_diff(self.srtt);
            self.rttval = (3 * self.rttval + delta) / 4;
            self.srtt = ((7 * self.srtt + rtt) / 8).max(1);
        }
        let rto = self.srtt.wrapping_add(interval.max(4 * self.rttval));
        self.rto = rto.clamp(min_rto, RTO_MAX_MS);
    }

    /// Forgets the history and starts again from one sample (a new path, measured by a
    /// probe).
    pub(crate) fn reseed(&mut self, rtt: i32, interval: u32, min_rto: u32) {
        self.srtt = 0;
        self.rttval = 0;
        self.on_sample(rtt, interval, min_rto);
    }

    /// Current retransmission timeout, ms.
    #[inline]
    pub(crate) fn rto(&self) -> u32 {
        self.rto
    }

    /// Smoothed RTT, ms (0 before the first sample).
    pub(crate) fn srtt(&self) -> u32 {
        self.srtt
    }

    /// RTT mean deviation, ms.
    pub(crate) fn rttvar(&self) -> u32 {
        self.rttval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let mut rtt = RttEstimator::new();
        let floor = min_rto(false);
        rtt.on_sample(80, 100, floor);
        assert_eq!(rtt.srtt(), 80);
        assert_eq!(rtt.rttvar(), 40);
        // srtt + max(interval, 4 * rttvar) = 80 + 160
        assert_eq!(rtt.rto(), 240);
    }

    #[test]
    fn forged_huge_samples_are_capped() {
        let mut rtt = RttEstimator::new();
        let floor = min_rto(false);
        rtt.on_sample(i32::MAX, 100, floor);
        rtt.on_sample(i32::MAX, 100, floor);
        rtt.on_sample(1, 100, floor);
        assert_eq!(rtt.rto(), RTO_MAX_MS);
        assert!(rtt.srtt() <= RTO_MAX_MS);
    }

    #[test]
    fn rto_is_bounded() {
        let mut fast = RttEstimator::new();
        fast.on_sample(1, 10, min_rto(true));
        assert_eq!(fast.rto(), RTO_MIN_NODELAY_MS);
        let mut slow = RttEstimator::new();
        slow.on_sample(50_000, 100, min_rto(false));
        assert_eq!(slow.rto(), RTO_MAX_MS);
    }
}
