//! Received data segments: the out-of-order buffer and the in-order queue.
//!
//! `pending` is a ring indexed by `sn - next_sn` (the reference walks a linked list for
//! every arriving segment); `ready` holds in-order segments until the application takes
//! whole messages. Together they never hold more than the receive window.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

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

/// The receive side: next expected sequence number, window, buffers.
#[derive(Debug)]
pub(crate) struct ReceiveBuffer {
    next_sn: u32,
    window: u32,
    pending: VecDeque<Option<Received>>,
    ready: VecDeque<Received>,
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
    pub(crate) fn next_sn(&self) -> u32 {
        self.next_sn
    }

    /// The receive window, segments.
    pub(crate) fn window(&self) -> u32 {
        self.window
    }

    /// Free window to announce to the peer (`ikcp_wnd_unused`).
    pub(crate) fn unused_window(&self) -> u32 {
        self.window.saturating_sub(self.ready.len() as u32)
    }

    /// Whether `sn` is below the window's upper edge (`ikcp_input` acks only those).
    pub(crate) fn below_window_end(&self, sn: u32) -> bool {
        diff(sn, self.next_sn.wrapping_add(self.window)) < 0
    }

    /// Whether `sn` was already delivered in order.
    pub(crate) fn already_delivered(&self, sn: u32) -> bool {
        diff(sn, self.next_sn) < 0
    }

    /// Segments in order waiting for the application (`nrcv_que`).
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Whether anything at all is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.pending.is_empty()
    }

    /// Stores an arriving segment (`ikcp_parse_data`) and moves what is now in order to
    /// the ready queue.
    pub(crate) fn insert(&mut self, sn: u32, segment: Received) -> Arrival {
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
        *slot = Some(segment);
        self.promote();
        Arrival::Stored
    }

    /// Moves in-order segments from `pending` to `ready` while the window allows.
    pub(crate) fn promote(&mut self) {
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
    /// copy, a fragmented one is joined into one buffer.
    pub(crate) fn pop_message(&mut self) -> Option<Bytes> {
        let size = self.peek_size()?;
        let first = self.ready.pop_front()?;
        if first.frg == 0 {
            return Some(first.data);
        }
        let mut message = BytesMut::with_capacity(size);
        message.extend_from_slice(&first.data);
        while let Some(segment) = self.ready.pop_front() {
            message.extend_from_slice(&segment.data);
            if segment.frg == 0 {
                break;
            }
        }
        Some(message.freeze())
    }

    /// Gives back the buffers' memory when they are empty.
    pub(crate) fn release_idle(&mut self) {
        if self.pending.is_empty() {
            self.pending = VecDeque::new();
        }
        if self.ready.is_empty() {
            self.ready = VecDeque::new();
        }
    }
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
        assert_eq!(buf.insert(1, seg(0, b"cd")), Arrival::Stored);
        assert_eq!(buf.peek_size(), None);
        assert_eq!(buf.insert(0, seg(1, b"ab")), Arrival::Stored);
        assert_eq!(buf.insert(0, seg(1, b"ab")), Arrival::Duplicate);
        assert_eq!(buf.peek_size(), Some(4));
        assert_eq!(buf.pop_message().as_deref(), Some(&b"abcd"[..]));
        assert_eq!(buf.next_sn(), 2);
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_outside_the_window() {
        let mut buf = ReceiveBuffer::new(128);
        assert_eq!(buf.insert(128, seg(0, b"x")), Arrival::OutOfWindow);
        assert_eq!(buf.insert(127, seg(0, b"x")), Arrival::Stored);
    }
}
