//! The send side: segments sent and not yet acknowledged, then segments queued for the
//! window, in one ring indexed by sequence number.
//!
//! The reference keeps two linked lists (`snd_buf`, `snd_queue`) and walks the first for
//! every ACK, which goes quadratic with large windows under loss. Here slot `i` holds
//! sequence number `una + i`: the slots below `next_sn` are in flight, the rest are
//! queued and get their sequence numbers as the window admits them (no move). An ACK is
//! one index; an acknowledged segment in the middle is only marked (its payload
//! released) until everything before it is acknowledged too.

use std::collections::VecDeque;

use bytes::Bytes;

use super::buffers::{adopt_into, discard_front, take_if_empty};
use super::payload::Payload;
use super::seq::diff;
use crate::prefetch::{prefetch_lines, Level, LINE};

/// One data segment, queued or in flight.
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
    /// Payload: a slice of the application's message (no copy), or a small message
    /// copied inline ([`Arq::send_slice`](super::Arq::send_slice)).
    pub data: Payload,
}

impl InFlight {
    #[inline]
    pub(crate) fn new(frg: u8, data: Payload) -> Self {
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

/// The walk of [`SendBuffer::iter_unacked_mut`] and (with `PREFETCH`)
/// [`SendBuffer::unacked_for_flush`]: unacknowledged segments in flight with their
/// sequence numbers, oldest first.
pub(crate) struct UnackedWalk<'a, const PREFETCH: bool> {
    /// Slots not walked yet, in the ring's first part...
    rest: &'a mut [InFlight],
    /// ... and in its second part (empty while `rest` is).
    later: &'a mut [InFlight],
    /// Sequence number of `rest`'s first slot.
    sn: u32,
    /// How many slots ahead payloads are prefetched, with `PREFETCH`.
    ahead: usize,
}

impl<const PREFETCH: bool> UnackedWalk<'_, PREFETCH> {
    /// Prefetches the payload of the slot `ahead` places after the one just stepped
    /// on (which is no longer in `rest`).
    #[inline(always)]
    fn prefetch_ahead(&self) {
        let at = self.ahead.saturating_sub(1);
        let ahead = match self.rest.get(at) {
            Some(slot) => Some(slot),
            None => self.later.get(at - self.rest.len()),
        };
        if let Some(InFlight {
            xmit: 0,
            data: Payload::Shared(bytes),
            ..
        }) = ahead
        {
            prefetch_lines(&bytes[..], 0..bytes.len().div_ceil(LINE), Level::L1);
        }
    }
}

impl<'a, const PREFETCH: bool> Iterator for UnackedWalk<'a, PREFETCH> {
    type Item = (u32, &'a mut InFlight);

    #[inline(always)]
    fn next(&mut self) -> Option<(u32, &'a mut InFlight)> {
        loop {
            if self.rest.is_empty() {
                self.rest = std::mem::take(&mut self.later);
            }
            let (slot, rest) = std::mem::take(&mut self.rest).split_first_mut()?;
            self.rest = rest;
            let sn = self.sn;
            self.sn = sn.wrapping_add(1);
            if slot.acked {
                continue;
            }
            // An inline payload is in its slot already: a flush of small messages
            // does not look ahead at all.
            if PREFETCH && matches!(slot.data, Payload::Shared(_)) {
                self.prefetch_ahead();
            }
            return Some((sn, slot));
        }
    }
}

/// The send buffer and queue: `una` is the oldest unacknowledged sequence number,
/// `next_sn` the first not yet admitted to the window.
#[derive(Debug, Default)]
pub(crate) struct SendBuffer {
    una: u32,
    next_sn: u32,
    /// In flight (`una..next_sn`), then queued.
    slots: VecDeque<InFlight>,
    /// Unacknowledged segments in flight.
    unacked: usize,
}

impl SendBuffer {
    /// Oldest sequence number not yet acknowledged (`snd_una`).
    #[inline]
    pub(crate) fn una(&self) -> u32 {
        self.una
    }

    /// Next sequence number to assign (`snd_nxt`).
    #[inline]
    pub(crate) fn next_sn(&self) -> u32 {
        self.next_sn
    }

    /// Slots in flight, acknowledged ones in the middle included.
    #[inline]
    pub(crate) fn sent(&self) -> usize {
        self.next_sn.wrapping_sub(self.una) as usize
    }

    /// Segments sent and not acknowledged (`nsnd_buf`).
    #[inline]
    pub(crate) fn unacked(&self) -> usize {
        self.unacked
    }

    /// Payload bytes of the segments sent and not acknowledged. Walks the window.
    pub(crate) fn unacked_bytes(&self) -> usize {
        self.slots
            .range(..self.sent())
            .filter(|s| !s.acked)
            .map(|s| s.data.len())
            .sum()
    }

    /// Segments queued, not yet admitted to the window (`nsnd_que`).
    #[inline]
    pub(crate) fn queued(&self) -> usize {
        self.slots.len() - self.sent()
    }

    /// Whether nothing is queued or in flight.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Restarts numbering at `sn`; only while empty.
    #[cfg(test)]
    pub(crate) fn reset(&mut self, sn: u32) {
        debug_assert!(self.slots.is_empty());
        self.una = sn;
        self.next_sn = sn;
    }

    /// Queues a segment behind the others.
    #[inline]
    pub(crate) fn queue(&mut self, frg: u8, data: Bytes) {
        if let Some(queued) = self.push_vacant(frg) {
            queued.data = Payload::Shared(data);
        }
    }

    /// Queues a segment without its payload yet, for the caller to write it in place.
    /// A payload moved in with its entry is read first, at once: a [`Bytes`] the
    /// application just cloned is then read before the clone's stores of it completed,
    /// which stalls (no store forwarding; 4 % of the 1 KiB throughput row).
    #[inline(always)]
    fn push_vacant(&mut self, frg: u8) -> Option<&mut InFlight> {
        self.slots.push_back(InFlight::new(frg, Payload::Vacant));
        self.slots.back_mut()
    }

    /// Queues a segment of a small message (at most
    /// [`INLINE_MAX`](super::payload::INLINE_MAX) bytes), copied into its slot.
    #[inline]
    pub(crate) fn queue_copy(&mut self, frg: u8, data: &[u8]) {
        if let Some(queued) = self.push_vacant(frg) {
            queued.data.set_copy(data);
        }
    }

    /// Queues bytes `start..` of `data`, cut in place once queued (so that the handle
    /// is moved as it came: adjusted first, its fields would be read back before their
    /// stores complete).
    #[inline]
    pub(crate) fn queue_from(&mut self, frg: u8, data: Bytes, start: usize) {
        if let Some(queued) = self.push_vacant(frg) {
            queued.data = Payload::Shared(data);
            queued.data.skip(start);
        }
    }

    /// Queues a message of `count` fragments of `mss` bytes (the last one shorter),
    /// numbered `count - 1` down to 0. The last fragment holds the message's handle
    /// ([`Payload::Tail`]); the others only name their bytes in it
    /// ([`Payload::Piece`]): no reference count per fragment. `count` must be what
    /// `mss` gives for the message (1 to 255).
    pub(crate) fn queue_message(&mut self, message: Bytes, count: usize, mss: usize) {
        self.slots.reserve(count);
        for i in 0..count.saturating_sub(1) {
            let piece = Payload::Piece {
                start: (i * mss) as u32,
                len: mss as u32,
            };
            self.slots
                .push_back(InFlight::new((count - i - 1) as u8, piece));
        }
        let start = (count.saturating_sub(1) * mss) as u32;
        self.slots
            .push_back(InFlight::new(0, Payload::Tail { message, start }));
    }

    /// Segment `index` (counted from `una`), for the flush.
    #[inline]
    pub(crate) fn slot_mut(&mut self, index: usize) -> Option<&mut InFlight> {
        self.slots.get_mut(index)
    }

    /// The bytes of segment `index` (counted from `una`) when its payload is a
    /// [`Payload::Piece`]: found in its message's last fragment, `frg` places later.
    #[inline]
    pub(crate) fn piece(&self, index: usize, frg: u8, start: u32, len: u32) -> &[u8] {
        self.slots
            .get(index + usize::from(frg))
            .map_or(&[], |tail| tail.data.piece(start, len))
    }

    /// Room for `count` more queued segments.
    pub(crate) fn reserve(&mut self, count: usize) {
        self.slots.reserve(count);
    }

    /// The last queued segment (stream mode appends to it), if any is queued.
    pub(crate) fn last_queued_mut(&mut self) -> Option<&mut InFlight> {
        if self.queued() == 0 {
            return None;
        }
        self.slots.back_mut()
    }

    /// The last queued segment, if any is queued.
    pub(crate) fn last_queued(&self) -> Option<&InFlight> {
        if self.queued() == 0 {
            return None;
        }
        self.slots.back()
    }

    /// Admits queued segments, in order, while `next_sn` stays below `una + window`.
    #[inline]
    pub(crate) fn admit(&mut self, window: u32) {
        let room = diff(self.una.wrapping_add(window), self.next_sn);
        if room > 0 {
            let admitted = (room as usize).min(self.queued());
            self.next_sn = self.next_sn.wrapping_add(admitted as u32);
            self.unacked += admitted;
        }
    }

    /// Everything below `una` was received by the peer (`ikcp_parse_una`).
    #[inline]
    pub(crate) fn ack_below(&mut self, una: u32) {
        let count = diff(una, self.una);
        if count > 0 {
            self.drop_front(count as usize);
        }
    }

    fn drop_front(&mut self, count: usize) {
        let count = count.min(self.sent());
        let acked = self.slots.range(..count).filter(|s| s.acked).count();
        self.unacked -= count - acked;
        discard_front(&mut self.slots, count);
        self.una = self.una.wrapping_add(count as u32);
        self.pop_acked_front();
    }

    /// The peer acknowledged `sn` (`ikcp_parse_ack`); `false` if it was not in flight.
    #[inline(always)]
    pub(crate) fn ack(&mut self, sn: u32) -> bool {
        let offset = diff(sn, self.una);
        if offset < 0 || offset as usize >= self.sent() {
            return false;
        }
        self.ack_in_flight(offset as usize)
    }

    /// [`ack`](Self::ack) of the segment `offset` places after `una`, in flight.
    #[inline(never)]
    fn ack_in_flight(&mut self, offset: usize) -> bool {
        if offset == 0 {
            // The oldest segment: the front is never an acknowledged one, so it goes.
            self.slots.pop_front();
            self.una = self.una.wrapping_add(1);
            self.unacked -= 1;
            self.pop_acked_front();
            return true;
        }
        match self.slots.get_mut(offset) {
            Some(segment) if !segment.acked => {
                segment.acked = true;
                // A message's last fragment holds its bytes until the fragments before
                // it are gone too (they leave the front first).
                if !matches!(segment.data, Payload::Tail { .. }) {
                    segment.data = Payload::Vacant;
                }
                self.unacked -= 1;
                true
            }
            _ => false,
        }
    }

    /// Pops acknowledged segments off the front, so that the front is unacknowledged
    /// (queued segments never are acknowledged).
    #[inline]
    fn pop_acked_front(&mut self) {
        while self.slots.front().is_some_and(|s| s.acked) {
            self.slots.pop_front();
            self.una = self.una.wrapping_add(1);
        }
    }

    /// Counts a fast-retransmit hint on every unacknowledged segment before `max_ack`
    /// (`ikcp_parse_fastack`); with `conserve`, only on those last sent no later than
    /// `ack_ts`.
    pub(crate) fn hint_fast_retransmit(&mut self, max_ack: u32, ack_ts: u32, conserve: bool) {
        let offset = diff(max_ack, self.una);
        if offset < 0 || offset as usize >= self.sent() {
            return;
        }
        for segment in self.slots.range_mut(..offset as usize) {
            if !segment.acked && (!conserve || diff(ack_ts, segment.ts) >= 0) {
                segment.fastack += 1;
            }
        }
    }

    /// Unacknowledged segments in flight with their sequence numbers, oldest first.
    pub(crate) fn iter_unacked_mut(&mut self) -> UnackedWalk<'_, false> {
        self.walk_unacked(0)
    }

    /// [`iter_unacked_mut`](Self::iter_unacked_mut) for the flush: each step also
    /// starts loading into L1 the payload of the slot `ahead` places on, if the flush
    /// may be about to send it for the first time and it lies elsewhere (a shared
    /// handle, while the segment stepped on has one too). The flush's copies then read
    /// lines already on their way from L3 or memory. Costs one prefetch per 64 bytes of
    /// such payloads, and a few instructions per segment.
    #[inline(always)]
    pub(crate) fn unacked_for_flush(&mut self, ahead: usize) -> UnackedWalk<'_, true> {
        self.walk_unacked(ahead)
    }

    /// The in-flight slots as the ring's two slices, walked (`ahead` is used only
    /// with `PREFETCH`).
    #[inline(always)]
    fn walk_unacked<const PREFETCH: bool>(&mut self, ahead: usize) -> UnackedWalk<'_, PREFETCH> {
        let sent = self.sent();
        let (front, back) = self.slots.as_mut_slices();
        let front_len = front.len().min(sent);
        let (front, back) = if front_len < front.len() {
            (&mut front[..front_len], &mut [][..])
        } else {
            let back_len = (sent - front_len).min(back.len());
            (front, &mut back[..back_len])
        };
        UnackedWalk {
            rest: front,
            later: back,
            sn: self.una,
            ahead,
        }
    }

    /// Marks every unacknowledged segment in flight as never sent (same sequence
    /// number, fresh RTO and counters at the next flush); returns how many.
    pub(crate) fn resend_all(&mut self) -> usize {
        let mut count = 0;
        for (_, segment) in self.iter_unacked_mut() {
            segment.xmit = 0;
            segment.fastack = 0;
            count += 1;
        }
        count
    }

    /// Takes every unacknowledged segment, in flight or queued, back to the queue as
    /// if never sent, numbered again from `una`.
    pub(crate) fn requeue_all(&mut self) {
        // Acknowledged tails go, so every piece takes its own slice of its message
        // first.
        for index in 0..self.slots.len() {
            let Some(&InFlight {
                frg,
                data: Payload::Piece { start, len },
                ..
            }) = self.slots.get(index)
            else {
                continue;
            };
            let own = match self.slots.get(index + usize::from(frg)).map(|t| &t.data) {
                Some(Payload::Tail { message, .. }) => {
                    let start = (start as usize).min(message.len());
                    message.slice(start..(start + len as usize).min(message.len()))
                }
                _ => Bytes::new(),
            };
            if let Some(slot) = self.slots.get_mut(index) {
                slot.data = Payload::Shared(own);
            }
        }
        self.slots.retain(|s| !s.acked);
        for segment in &mut self.slots {
            *segment = InFlight::new(segment.frg, std::mem::take(&mut segment.data));
        }
        self.next_sn = self.una;
        self.unacked = 0;
    }

    /// Gives back the ring (empty, with its capacity) when it is empty, for another
    /// engine to take over.
    pub(crate) fn release_idle(&mut self) -> VecDeque<InFlight> {
        take_if_empty(&mut self.slots)
    }

    /// Takes over `slots` (empty) as the ring, if this one has no memory yet.
    pub(crate) fn adopt(&mut self, slots: VecDeque<InFlight>) {
        adopt_into(&mut self.slots, slots);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(count: u32) -> SendBuffer {
        let mut buf = SendBuffer::default();
        buf.reset(u32::MAX - 1);
        for _ in 0..count {
            buf.queue(0, Bytes::from_static(b"x"));
        }
        buf.admit(count);
        buf
    }

    #[test]
    fn the_walks_yield_every_unacked_slot_in_flight() {
        // A ring whose in-flight slots wrap around its end (two slices), with some
        // acknowledged in the middle and some queued behind, walked without prefetches
        // and with them at every distance up to past the end.
        let mut wrapped = 0;
        for shift in [0, 3, 7] {
            let mut buf = filled(6);
            for _ in 0..shift {
                buf.queue_copy(0, b"y");
                buf.admit(7);
                buf.ack_below(buf.una().wrapping_add(1));
            }
            buf.ack(buf.una().wrapping_add(2));
            for _ in 0..4 {
                buf.queue(0, Bytes::from_static(b"queued"));
            }
            buf.admit(8);
            let (front, back) = buf.slots.as_slices();
            if front.len() < buf.sent() && !back.is_empty() {
                wrapped += 1;
            }
            let expected: Vec<u32> = (0..buf.sent())
                .filter(|&i| !buf.slots[i].acked)
                .map(|i| buf.una().wrapping_add(i as u32))
                .collect();
            assert_eq!(expected.len(), buf.unacked(), "shift {shift}");
            let walked: Vec<u32> = buf.iter_unacked_mut().map(|(sn, _)| sn).collect();
            assert_eq!(walked, expected, "shift {shift}, no prefetch");
            for ahead in [0, 1, 4, 20] {
                let walked: Vec<u32> = buf.unacked_for_flush(ahead).map(|(sn, _)| sn).collect();
                assert_eq!(walked, expected, "shift {shift}, {ahead} ahead");
            }
        }
        assert!(wrapped > 0, "some ring wrapped within its in-flight slots");
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

    #[test]
    fn the_window_admits_queued_segments_in_order() {
        let mut buf = SendBuffer::default();
        buf.reset(u32::MAX - 1);
        for _ in 0..5 {
            buf.queue(0, Bytes::from_static(b"x"));
        }
        buf.admit(2);
        assert_eq!((buf.unacked(), buf.queued()), (2, 3));
        assert_eq!(buf.next_sn(), buf.una().wrapping_add(2));
        assert!(!buf.ack(buf.una().wrapping_add(2)), "queued, not in flight");
        let first = buf.una();
        assert!(buf.ack(first));
        buf.admit(2);
        assert_eq!((buf.unacked(), buf.queued()), (2, 2));
        let sns: Vec<u32> = buf.iter_unacked_mut().map(|(sn, _)| sn).collect();
        assert_eq!(sns, vec![first.wrapping_add(1), first.wrapping_add(2)]);
        buf.ack_below(first.wrapping_add(100));
        assert_eq!(
            (buf.una(), buf.unacked(), buf.queued()),
            (first.wrapping_add(3), 0, 2)
        );
    }

    #[test]
    fn requeue_takes_back_everything_unacknowledged() {
        let mut buf = filled(3);
        let first = buf.una();
        buf.queue_copy(0, b"y");
        assert!(buf.ack(first.wrapping_add(1)));
        buf.requeue_all();
        assert_eq!((buf.una(), buf.next_sn()), (first, first));
        assert_eq!((buf.unacked(), buf.queued()), (0, 3));
        buf.admit(10);
        let data: Vec<Vec<u8>> = buf
            .iter_unacked_mut()
            .map(|(_, s)| s.data.to_vec())
            .collect();
        assert_eq!(data, vec![b"x", b"x", b"y"]);
    }

    /// The bytes segment `index` would be sent with.
    fn bytes_at(buf: &SendBuffer, index: usize) -> Vec<u8> {
        let segment = &buf.slots[index];
        match segment.data {
            Payload::Piece { start, len } => buf.piece(index, segment.frg, start, len).to_vec(),
            ref other => other.as_slice().to_vec(),
        }
    }

    /// A message of 250 bytes in flight as 3 fragments of at most 100, and the buffer.
    fn in_flight_message() -> (Bytes, SendBuffer) {
        let message = Bytes::from((0..250u8).collect::<Vec<u8>>());
        let mut buf = SendBuffer::default();
        buf.queue_message(message.clone(), 3, 100);
        buf.admit(3);
        (message, buf)
    }

    #[test]
    fn a_message_is_held_once_by_its_last_fragment() {
        let (message, mut buf) = in_flight_message();
        let frgs: Vec<u8> = buf.slots.iter().map(|s| s.frg).collect();
        assert_eq!(frgs, vec![2, 1, 0]);
        assert!(matches!(buf.slots[0].data, Payload::Piece { .. }));
        assert!(matches!(buf.slots[2].data, Payload::Tail { .. }));
        for (index, range) in [(0, 0..100), (1, 100..200), (2, 200..250)] {
            assert_eq!(bytes_at(&buf, index), &message[range]);
        }
        assert_eq!(buf.unacked_bytes(), 250);
        // The last fragment acknowledged first: it keeps the message for the others.
        assert!(buf.ack(2));
        assert_eq!(bytes_at(&buf, 0), &message[..100]);
        assert_eq!(bytes_at(&buf, 1), &message[100..200]);
        buf.ack_below(2);
        assert!(
            buf.is_empty(),
            "the acknowledged tail leaves with the front"
        );
    }

    #[test]
    fn requeued_pieces_keep_their_bytes_when_the_tail_goes() {
        let (message, mut buf) = in_flight_message();
        assert!(buf.ack(2));
        buf.requeue_all();
        assert_eq!((buf.unacked(), buf.queued()), (0, 2));
        assert_eq!(bytes_at(&buf, 0), &message[..100]);
        assert_eq!(bytes_at(&buf, 1), &message[100..200]);
    }
}
