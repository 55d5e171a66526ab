//! Received data segments: the out-of-order buffer and the in-order queue.
//!
//! `pending` is a ring indexed by `sn - next_sn` (the reference walks a linked list for
//! every arriving segment); `ready` holds in-order segments until the application takes
//! whole messages. Together they never hold more than the receive window.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::buffers::{adopt_into, take_if_empty};
use super::seq::diff;

/// One received data segment.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    /// Fragments of the message that follow this one.
    pub frg: u8,
    /// Payload (a slice of the received datagram: no copy).
    pub data: Bytes,
}

/// What became of an arriving segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Stored.
    Stored,
    /// Already held or already delivered.
    Duplicate,
    /// Outside the receive window.
    OutOfWindow,
}

/// The receive side: next expected sequence number, window, buffers. `repr(C)`: what
/// an in-order arrival touches (the numbers, the ready queue) first.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct ReceiveBuffer {
    next_sn: u32,
    window: u32,
    ready: VecDeque<Received>,
    pending: VecDeque<Option<Received>>,
}

impl ReceiveBuffer {
    pub(crate) fn new(window: u16) -> Self {
        ReceiveBuffer {
            next_sn: 0,
            window: u32::from(window),
            pending: VecDeque::new(),
            ready: VecDeque::new(),
        }
    }

    /// Restarts numbering at `sn`; only while empty.
    #[cfg(test)]
    pub(crate) fn reset(&mut self, sn: u32) {
        debug_assert!(self.is_empty());
        self.next_sn = sn;
    }

    /// Next sequence number expected in order (`rcv_nxt`).
    #[inline]
    pub(crate) fn next_sn(&self) -> u32 {
        self.next_sn
    }

    /// The receive window, segments.
    #[inline]
    pub(crate) fn window(&self) -> u32 {
        self.window
    }

    /// Free window to announce to the peer (`ikcp_wnd_unused`).
    #[inline]
    pub(crate) fn unused_window(&self) -> u32 {
        self.window.saturating_sub(self.ready.len() as u32)
    }

    /// Whether `sn` is below the window's upper edge (`ikcp_input` acks only those).
    #[inline]
    pub(crate) fn below_window_end(&self, sn: u32) -> bool {
        diff(sn, self.next_sn.wrapping_add(self.window)) < 0
    }

    /// Whether `sn` was already delivered in order.
    #[inline]
    pub(crate) fn already_delivered(&self, sn: u32) -> bool {
        diff(sn, self.next_sn) < 0
    }

    /// Segments in order waiting for the application (`nrcv_que`).
    #[inline]
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Whether anything at all is buffered.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.pending.is_empty()
    }

    /// Stores an arriving segment (`ikcp_parse_data`) and moves what is now in order to
    /// the ready queue.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, sn: u32, segment: Received) -> Arrival {
        let len = segment.data.len();
        self.insert_with(sn, segment.frg, || segment.data, (0, len))
    }

    /// [`insert`](Self::insert), with the payload made only if the segment is stored:
    /// the payload is bytes `start..start + len` of what `data` makes, cut in place once
    /// stored (so that the handle is moved as `data` made it: adjusted first, its fields
    /// would be read back before their stores complete).
    #[inline]
    pub(crate) fn insert_with(
        &mut self,
        sn: u32,
        frg: u8,
        data: impl FnOnce() -> Bytes,
        (start, len): (usize, usize),
    ) -> Arrival {
        // The next segment in order, with nothing waiting before it and room in the
        // ready queue: it goes straight there (what `insert` + `promote` would do).
        if sn == self.next_sn && self.pending.is_empty() && (self.ready.len() as u32) < self.window
        {
            self.ready.push_back(Received { frg, data: data() });
            if let Some(stored) = self.ready.back_mut() {
                cut(&mut stored.data, start, len);
            }
            self.next_sn = self.next_sn.wrapping_add(1);
            return Arrival::Stored;
        }
        self.insert_pending(sn, frg, data, (start, len))
    }

    #[inline(never)]
    fn insert_pending(
        &mut self,
        sn: u32,
        frg: u8,
        data: impl FnOnce() -> Bytes,
        (start, len): (usize, usize),
    ) -> Arrival {
        if !self.below_window_end(sn) {
            return Arrival::OutOfWindow;
        }
        if self.already_delivered(sn) {
            return Arrival::Duplicate;
        }
        let offset = diff(sn, self.next_sn) as usize;
        if self.pending.len() <= offset {
            self.pending.resize_with(offset + 1, || None);
        }
        let slot = &mut self.pending[offset];
        if slot.is_some() {
            return Arrival::Duplicate;
        }
        let stored = slot.insert(Received { frg, data: data() });
        cut(&mut stored.data, start, len);
        self.promote();
        Arrival::Stored
    }

    /// Moves in-order segments from `pending` to `ready` while the window allows.
    #[inline]
    pub(crate) fn promote(&mut self) {
        if !self.pending.is_empty() {
            self.promote_pending();
        }
    }

    fn promote_pending(&mut self) {
        while (self.ready.len() as u32) < self.window {
            match self.pending.front_mut().map(Option::take) {
                Some(Some(segment)) => {
                    self.pending.pop_front();
                    self.ready.push_back(segment);
                    self.next_sn = self.next_sn.wrapping_add(1);
                }
                Some(None) | None => break,
            }
        }
    }

    /// Size of the next whole message, if all its fragments are here (`ikcp_peeksize`).
    pub(crate) fn peek_size(&self) -> Option<usize> {
        let front = self.ready.front()?;
        if front.frg == 0 {
            return Some(front.data.len());
        }
        if self.ready.len() < usize::from(front.frg) + 1 {
            return None;
        }
        let mut size = 0;
        for segment in &self.ready {
            size += segment.data.len();
            if segment.frg == 0 {
                break;
            }
        }
        Some(size)
    }

    /// Takes the next whole message; a single-fragment message is returned without a
    /// copy, a fragmented one is joined in `join` (whose memory is taken back in place
    /// for the next one once the application dropped the previous one).
    #[inline]
    pub(crate) fn pop_message(&mut self, join: &mut BytesMut) -> Option<Bytes> {
        if self.ready.front()?.frg == 0 {
            return self.ready.pop_front().map(|segment| segment.data);
        }
        self.pop_fragmented(join)
    }

    fn pop_fragmented(&mut self, join: &mut BytesMut) -> Option<Bytes> {
        let size = self.peek_size()?;
        join.reserve(size);
        while let Some(segment) = self.ready.pop_front() {
            join.extend_from_slice(&segment.data);
            if segment.frg == 0 {
                break;
            }
        }
        Some(join.split().freeze())
    }

    /// Gives back the buffers' memory when they are empty: the ready queue is
    /// returned (empty, with its capacity) for another engine to take over, the rest is
    /// freed.
    pub(crate) fn release_idle(&mut self) -> VecDeque<Received> {
        if self.pending.is_empty() {
            self.pending = VecDeque::new();
        }
        take_if_empty(&mut self.ready)
    }

    /// Takes over `ready` (empty) as the ready queue, if this one has no memory yet.
    pub(crate) fn adopt(&mut self, ready: VecDeque<Received>) {
        adopt_into(&mut self.ready, ready);
    }
}

/// Keeps bytes `start..start + len` of `data` (no-ops when that is all of it).
#[inline(always)]
fn cut(data: &mut Bytes, start: usize, len: usize) {
    if start > 0 {
        data.advance(start);
    }
    data.truncate(len);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(frg: u8, data: &'static [u8]) -> Received {
        Received {
            frg,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn reorders_and_joins_fragments() {
        let mut buf = ReceiveBuffer::new(128);
        let mut join = BytesMut::new();
        assert_eq!(buf.insert(1, seg(0, b"cd")), Arrival::Stored);
        assert_eq!(buf.peek_size(), None);
        assert_eq!(buf.insert(0, seg(1, b"ab")), Arrival::Stored);
        assert_eq!(buf.insert(0, seg(1, b"ab")), Arrival::Duplicate);
        assert_eq!(buf.peek_size(), Some(4));
        assert_eq!(buf.pop_message(&mut join).as_deref(), Some(&b"abcd"[..]));
        assert_eq!(buf.next_sn(), 2);
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_outside_the_window() {
        let mut buf = ReceiveBuffer::new(128);
        assert_eq!(buf.insert(128, seg(0, b"x")), Arrival::OutOfWindow);
        assert_eq!(buf.insert(127, seg(0, b"x")), Arrival::Stored);
    }

    #[test]
    fn stores_a_cut_of_what_the_payload_maker_gives() {
        let mut buf = ReceiveBuffer::new(128);
        let mut join = BytesMut::new();
        let datagram = Bytes::from_static(b"headerPAYLOADtail");
        let stored = buf.insert_with(1, 0, || datagram.clone(), (6, 7));
        assert_eq!(stored, Arrival::Stored, "out of order, into pending");
        let stored = buf.insert_with(0, 0, || datagram.clone(), (0, 6));
        assert_eq!(stored, Arrival::Stored, "in order, straight to ready");
        assert_eq!(buf.pop_message(&mut join).as_deref(), Some(&b"header"[..]));
        assert_eq!(buf.pop_message(&mut join).as_deref(), Some(&b"PAYLOAD"[..]));
    }

    #[test]
    fn a_joined_message_still_held_is_not_overwritten() {
        let mut buf = ReceiveBuffer::new(128);
        let mut join = BytesMut::new();
        buf.insert(0, seg(1, b"ab"));
        buf.insert(1, seg(0, b"cd"));
        let first = buf.pop_message(&mut join);
        buf.insert(2, seg(1, b"ef"));
        buf.insert(3, seg(0, b"gh"));
        assert_eq!(buf.pop_message(&mut join).as_deref(), Some(&b"efgh"[..]));
        assert_eq!(first.as_deref(), Some(&b"abcd"[..]));
        drop(first);
        buf.insert(4, seg(1, b"ij"));
        buf.insert(5, seg(0, b"kl"));
        assert_eq!(buf.pop_message(&mut join).as_deref(), Some(&b"ijkl"[..]));
    }
}
