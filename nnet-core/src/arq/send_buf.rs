//! Segments sent and not yet acknowledged, in a ring indexed by sequence number.
//!
//! The reference keeps them in a linked list and walks it for every ACK, which goes
//! quadratic with large windows under loss. Here slot `i` holds sequence number
//! `una + i`, so an ACK is one index; an acknowledged segment in the middle is only
//! marked (its payload released) until everything before it is acknowledged too.

use std::collections::VecDeque;

use bytes::Bytes;

use super::seq::diff;

/// One data segment in flight.
#[derive(Clone, Debug)]
pub(crate) struct InFlight {
    /// Fragments of the message that follow this one.
    pub frg: u8,
    /// Acknowledged by the peer (slot kept until the front catches up).
    pub acked: bool,
    /// Times sent so far (0 until the first flush).
    pub xmit: u32,
    /// `ts` of the last transmission.
    pub ts: u32,
    /// When to retransmit, ms.
    pub resend_at: u32,
    /// This segment's current RTO, ms.
    pub rto: u32,
    /// Later segments acknowledged since the last (re)transmission.
    pub fastack: u32,
    /// Payload (a slice of the application's message: no copy).
    pub data: Bytes,
}

impl InFlight {
    pub(crate) fn new(frg: u8, data: Bytes) -> Self {
        InFlight {
            frg,
            acked: false,
            xmit: 0,
            ts: 0,
            resend_at: 0,
            rto: 0,
            fastack: 0,
            data,
        }
    }
}

/// The send buffer: `una` is the oldest unacknowledged sequence number.
#[derive(Debug, Default)]
pub(crate) struct SendBuffer {
    una: u32,
    slots: VecDeque<InFlight>,
    unacked: usize,
}

impl SendBuffer {
    /// Oldest sequence number not yet acknowledged (`snd_una`).
    pub(crate) fn una(&self) -> u32 {
        self.una
    }

    /// Next sequence number to assign (`snd_nxt`).
    pub(crate) fn next_sn(&self) -> u32 {
        self.una.wrapping_add(self.slots.len() as u32)
    }

    /// Segments sent and not acknowledged (`nsnd_buf`).
    pub(crate) fn unacked(&self) -> usize {
        self.unacked
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Restarts numbering at `sn`; only while empty.
    #[cfg(test)]
    pub(crate) fn reset(&mut self, sn: u32) {
        debug_assert!(self.slots.is_empty());
        self.una = sn;
    }

    /// Appends a segment with sequence number [`next_sn`](Self::next_sn).
    pub(crate) fn push(&mut self, segment: InFlight) {
        self.slots.push_back(segment);
        self.unacked += 1;
    }

    /// Everything below `una` was received by the peer (`ikcp_parse_una`).
    pub(crate) fn ack_below(&mut self, una: u32) {
        let count = diff(una, self.una);
        if count <= 0 {
            return;
        }
        let count = (count as usize).min(self.slots.len());
        for segment in self.slots.drain(..count) {
            if !segment.acked {
                self.unacked -= 1;
            }
        }
        self.una = self.una.wrapping_add(count as u32);
        self.pop_acked_front();
    }

    /// The peer acknowledged `sn` (`ikcp_parse_ack`); `false` if it was not in flight.
    pub(crate) fn ack(&mut self, sn: u32) -> bool {
        let offset = diff(sn, self.una);
        if offset < 0 {
            return false;
        }
        match self.slots.get_mut(offset as usize) {
            Some(segment) if !segment.acked => {
                segment.acked = true;
                segment.data = Bytes::new();
                self.unacked -= 1;
                self.pop_acked_front();
                true
            }
            _ => false,
        }
    }

    fn pop_acked_front(&mut self) {
        while self.slots.front().is_some_and(|s| s.acked) {
            self.slots.pop_front();
            self.una = self.una.wrapping_add(1);
        }
        if self.slots.is_empty() && self.slots.capacity() > 64 {
            self.slots.shrink_to(64);
        }
    }

    /// Counts a fast-retransmit hint on every unacknowledged segment before `max_ack`
    /// (`ikcp_parse_fastack`); with `conserve`, only on those last sent no later than
    /// `ack_ts`.
    pub(crate) fn hint_fast_retransmit(&mut self, max_ack: u32, ack_ts: u32, conserve: bool) {
        let offset = diff(max_ack, self.una);
        if offset < 0 || offset as usize >= self.slots.len() {
            return;
        }
        for segment in self.slots.range_mut(..offset as usize) {
            if !segment.acked && (!conserve || diff(ack_ts, segment.ts) >= 0) {
                segment.fastack += 1;
            }
        }
    }

    /// Unacknowledged segments with their sequence numbers, oldest first.
    pub(crate) fn iter_unacked_mut(&mut self) -> impl Iterator<Item = (u32, &mut InFlight)> {
        let una = self.una;
        self.slots
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| !s.acked)
            .map(move |(i, s)| (una.wrapping_add(i as u32), s))
    }

    /// Consumes the buffer, yielding the unacknowledged segments oldest first.
    pub(crate) fn into_unacked(self) -> impl Iterator<Item = InFlight> {
        self.slots.into_iter().filter(|s| !s.acked)
    }

    /// Gives back the ring's memory when it is empty.
    pub(crate) fn release_idle(&mut self) {
        if self.slots.is_empty() {
            self.slots = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(count: u32) -> SendBuffer {
        let mut buf = SendBuffer::default();
        buf.reset(u32::MAX - 1);
        for _ in 0..count {
            buf.push(InFlight::new(0, Bytes::from_static(b"x")));
        }
        buf
    }

    #[test]
    fn ack_in_the_middle_waits_for_the_front() {
        let mut buf = filled(4);
        let first = buf.una();
        assert!(buf.ack(first.wrapping_add(2)));
        assert!(!buf.ack(first.wrapping_add(2)), "duplicate ack");
        assert_eq!(buf.una(), first);
        assert_eq!(buf.unacked(), 3);
        assert!(buf.ack(first));
        assert_eq!(buf.una(), first.wrapping_add(1));
        assert!(buf.ack(first.wrapping_add(1)));
        assert_eq!(buf.una(), first.wrapping_add(3), "skips the acked slot");
        assert_eq!(buf.unacked(), 1);
    }

    #[test]
    fn una_clears_everything_below_and_ignores_the_future() {
        let mut buf = filled(4);
        let first = buf.una();
        buf.ack_below(first.wrapping_add(100));
        assert!(buf.is_empty());
        assert_eq!(buf.una(), first.wrapping_add(4));
        assert_eq!(buf.unacked(), 0);
        buf.ack_below(first);
        assert_eq!(buf.una(), first.wrapping_add(4));
    }

    #[test]
    fn fast_hints_only_before_the_max_ack() {
        let mut buf = filled(5);
        let first = buf.una();
        buf.ack(first.wrapping_add(3));
        buf.hint_fast_retransmit(first.wrapping_add(3), 0, false);
        let hints: Vec<u32> = buf.iter_unacked_mut().map(|(_, s)| s.fastack).collect();
        assert_eq!(hints, vec![1, 1, 1, 0]);
    }
}
