//! When to send an ACK twice, for [`ArqConfig::ack_repeat`](super::ArqConfig::ack_repeat).
//!
//! An ACK of a segment that arrived above a gap is the sender's only news of it: no
//! `una` covers the segment until the gap closes. If that one ACK is lost, the sender
//! sends the segment again for nothing. Repeating the ACK at the next flush costs one
//! ACK (24 bytes); it saves a retransmission of the segment only when the first ACK
//! was lost. The receiver cannot see ACKs being lost, but it sees what follows: the
//! segments it already had arriving again. So it repeats an ACK when the recent share
//! of duplicate arrivals, times the segment's size on the wire, is more than an ACK.

use crate::wire::HEADER_LEN;

/// The share of duplicates in a fixed-point fraction: this is 1.
const ONE: u32 = 1 << 16;
/// Each arrival moves the share by 1/2^this of the way to 0 or 1 (so the share
/// follows roughly the last few hundred arrivals).
const GAIN_SHIFT: u32 = 8;

/// The recent share of data arrivals that were duplicates, as a moving average.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DuplicateShare {
    /// In units of 1 / [`ONE`].
    share: u32,
}

impl DuplicateShare {
    /// A data segment arrived; `duplicate` if it was already received.
    #[inline]
    pub(crate) fn on_arrival(&mut self, duplicate: bool) {
        self.share -= self.share >> GAIN_SHIFT;
        if duplicate {
            self.share += ONE >> GAIN_SHIFT;
        }
    }

    /// Whether repeating the ACK of an out-of-order segment of `len` payload bytes is
    /// likely to save more bytes than the repeated ACK costs.
    #[inline]
    pub(crate) fn worth_repeating(&self, len: usize) -> bool {
        let saved = u64::from(self.share) * (len as u64 + HEADER_LEN as u64);
        saved > u64::from(ONE) * HEADER_LEN as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_once_duplicates_show_lost_acks() {
        let mut share = DuplicateShare::default();
        assert!(!share.worth_repeating(1_376), "no duplicate seen");
        for _ in 0..200 {
            share.on_arrival(false);
        }
        share.on_arrival(true);
        assert!(
            !share.worth_repeating(1_376),
            "one duplicate is not a trend"
        );
        for _ in 0..9 {
            share.on_arrival(true);
        }
        // About 4% duplicates: worth an ACK for a full segment, not for a small one.
        assert!(share.worth_repeating(1_376));
        assert!(!share.worth_repeating(100));
        for i in 0..1_000 {
            share.on_arrival(i % 3 == 0);
        }
        assert!(share.worth_repeating(100), "a third are duplicates");
        for _ in 0..2_000 {
            share.on_arrival(false);
        }
        assert!(!share.worth_repeating(1_376), "forgotten");
    }
}

/// The ACKs a receiver sends once more ([`ArqConfig::ack_repeat`]): those of segments
/// received since the last flush, and those sent at the last flush that are still above
/// a gap. Allocated only once there is one: 8 bytes in the engine until then, among the
/// fields every datagram touches.
///
/// [`ArqConfig::ack_repeat`]: super::ArqConfig::ack_repeat
#[derive(Debug, Default)]
pub(crate) struct RepeatedAcks(Option<Box<RepeatLists>>);

#[derive(Debug, Default)]
struct RepeatLists {
    /// Of segments received since the last flush.
    next: Vec<(u32, u32)>,
    /// Sent at the last flush, to send again at this one.
    now: Vec<(u32, u32)>,
}

impl RepeatedAcks {
    /// Notes the ACK of a segment received now, to repeat at the flush after next.
    pub(crate) fn push(&mut self, sn: u32, ts: u32) {
        self.0.get_or_insert_with(Box::default).next.push((sn, ts));
    }

    /// The ACKs to send again at this flush.
    #[inline]
    pub(crate) fn due(&self) -> &[(u32, u32)] {
        self.0.as_ref().map_or(&[], |lists| &lists.now)
    }

    /// After a flush: the ACKs noted since the last one whose segments `held` says are
    /// still above a gap become the ones due at the next.
    #[inline]
    pub(crate) fn rotate(&mut self, held: impl Fn(&&(u32, u32)) -> bool) {
        if let Some(lists) = self.0.as_mut() {
            let RepeatLists { next, now } = &mut **lists;
            now.clear();
            now.extend(next.iter().filter(held));
            next.clear();
        }
    }

    /// Forgets every ACK.
    pub(crate) fn clear(&mut self) {
        if let Some(lists) = self.0.as_mut() {
            lists.next.clear();
            lists.now.clear();
        }
    }

    /// Whether any ACK is held for a repeat (this flush's or the next).
    #[inline]
    pub(crate) fn is_held(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|lists| !lists.next.is_empty() || !lists.now.is_empty())
    }

    /// Frees the lists if they are empty.
    pub(crate) fn release_if_empty(&mut self) {
        if self
            .0
            .as_ref()
            .is_some_and(|lists| lists.next.is_empty() && lists.now.is_empty())
        {
            self.0 = None;
        }
    }
}
