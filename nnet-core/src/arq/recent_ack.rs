//! Time-based loss detection in the spirit of RACK (RFC 8985), for
//! [`ArqConfig::recent_ack`](super::ArqConfig::recent_ack).
//!
//! KCP echoes in every ACK the `ts` of the copy that arrived, so the sender knows exactly
//! when the delivered copy was sent, retransmissions included. The latest-sent delivered
//! copy says two things: how long a round trip takes now, and that every segment sent
//! before it had the same chance to arrive. A segment sent before it and still
//! unacknowledged (the ACK's `una` would have covered it otherwise) is lost once a round
//! trip and a reordering margin have passed since it was sent: no need to count later
//! ACKs (which lost ACKs or a slow sender starve) nor to wait for a backed-off RTO when a
//! retransmission is lost too.
//!
//! Order of sending: a later `ts`, or the same `ts` and a higher sequence number (one
//! flush sends in sequence order, retransmissions first).

use std::num::NonZeroU32;

use super::seq::diff;

/// The latest-sent copy the peer acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LatestDelivered {
    /// Its sequence number.
    sn: u32,
    /// When it was sent (the echoed `ts`).
    ts: u32,
    /// Its round-trip time in ms, plus one: never zero, so that an `Option` of this
    /// takes no more room (12 bytes, not 16, among the engine's hot fields).
    rtt_plus_one: NonZeroU32,
}

impl LatestDelivered {
    /// Its round-trip time, ms.
    #[inline]
    fn rtt(&self) -> u32 {
        self.rtt_plus_one.get() - 1
    }

    /// Whether a segment sent at `ts` with sequence number `sn` went out before this one.
    #[inline]
    fn sent_after(&self, sn: u32, ts: u32) -> bool {
        let later = diff(self.ts, ts);
        later > 0 || (later == 0 && diff(self.sn, sn) > 0)
    }
}

/// The state of the time-based loss detection: the latest-sent delivered copy, if any.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RecentAck {
    latest: Option<LatestDelivered>,
}

impl RecentAck {
    /// The peer acknowledged the copy of `sn` sent at `ts`, `rtt` ms ago.
    #[inline]
    pub(crate) fn on_delivered(&mut self, sn: u32, ts: u32, rtt: u32) {
        let newer = match self.latest {
            None => true,
            Some(latest) => !latest.sent_after(sn, ts) && (latest.sn, latest.ts) != (sn, ts),
        };
        if newer {
            let rtt_plus_one = NonZeroU32::new(rtt.saturating_add(1)).unwrap_or(NonZeroU32::MAX);
            self.latest = Some(LatestDelivered {
                sn,
                ts,
                rtt_plus_one,
            });
        }
    }

    /// Forgets the latest delivery (nothing in flight, or a new path).
    pub(crate) fn clear(&mut self) {
        self.latest = None;
    }

    /// Whether the segment `sn`, last sent at `ts` and still unacknowledged, is lost at
    /// `now`: a copy sent after it was acknowledged, and its round trip plus `margin`
    /// ms (the reordering window) have passed since it was sent.
    #[inline]
    pub(crate) fn is_lost(&self, sn: u32, ts: u32, now: u32, margin: u32) -> bool {
        self.latest.is_some_and(|latest| {
            latest.sent_after(sn, ts)
                && diff(now, ts.wrapping_add(latest.rtt().saturating_add(margin))) >= 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_segments_sent_before_the_latest_delivery_can_be_lost() {
        let mut rack = RecentAck::default();
        assert!(!rack.is_lost(1, 0, 1_000, 0), "nothing delivered yet");
        rack.on_delivered(5, 100, 50);
        // Sent earlier: lost once its round trip and the margin have passed.
        assert!(!rack.is_lost(3, 90, 90 + 50 + 10 - 1, 10));
        assert!(rack.is_lost(3, 90, 90 + 50 + 10, 10));
        // Same flush, lower sequence number: sent before.
        assert!(rack.is_lost(4, 100, 160, 10));
        // Same flush, higher sequence number, or sent later: not known lost.
        assert!(!rack.is_lost(6, 100, 10_000, 10));
        assert!(!rack.is_lost(2, 110, 10_000, 10), "a later retransmission");
    }

    #[test]
    fn an_older_delivery_does_not_replace_a_newer_one() {
        let mut rack = RecentAck::default();
        rack.on_delivered(5, 100, 50);
        rack.on_delivered(7, 80, 20);
        assert!(
            !rack.is_lost(6, 90, 90 + 20, 0),
            "the older rtt is not used"
        );
        assert!(rack.is_lost(6, 90, 90 + 50, 0));
        rack.on_delivered(2, 120, 30);
        assert!(
            rack.is_lost(6, 110, 110 + 30, 0),
            "a retransmission is newest"
        );
        rack.clear();
        assert!(!rack.is_lost(6, 110, 10_000, 0));
    }

    #[test]
    fn works_across_the_clock_wrap() {
        let mut rack = RecentAck::default();
        rack.on_delivered(1, 5, 40);
        assert!(rack.is_lost(0, u32::MAX - 4, 35, 0));
        assert!(!rack.is_lost(0, u32::MAX - 4, 34, 0));
    }
}
