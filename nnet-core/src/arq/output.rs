//! Assembly of outgoing datagrams: segments are written back to back into one buffer
//! and cut into datagrams of at most `mtu` bytes, which wait in a queue for
//! [`Arq::poll_output`](super::Arq::poll_output).
//!
//! The buffer is one allocation shared by many datagrams (`BytesMut::split`), so the
//! hot path does not allocate per datagram.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::Header;

/// Datagrams reserved for at a time in the shared buffer.
const DATAGRAMS_PER_BLOCK: usize = 16;

/// Builder of outgoing datagrams.
#[derive(Debug, Default)]
pub(crate) struct Output {
    current: BytesMut,
    ready: VecDeque<Bytes>,
}

impl Output {
    /// Makes sure a segment of `need` bytes fits in the current datagram, cutting it
    /// first if it would pass `mtu`.
    pub(crate) fn make_room(&mut self, need: usize, mtu: usize) {
        if !self.current.is_empty() && self.current.len() + need > mtu {
            self.cut();
        }
        if self.current.capacity() - self.current.len() < need {
            self.current.reserve(mtu.max(need) * DATAGRAMS_PER_BLOCK);
        }
    }

    /// Appends one segment: header, `extra` bytes (NEW's path block and token), payload.
    pub(crate) fn push(&mut self, header: &Header, extra: &[u8], payload: &[u8], mtu: usize) {
        let need = crate::wire::HEADER_LEN + extra.len() + payload.len();
        self.make_room(need, mtu);
        header.encode(&mut self.current);
        self.current.put_slice(extra);
        self.current.put_slice(payload);
    }

    /// Ends the current datagram, if it holds anything.
    pub(crate) fn cut(&mut self) {
        if !self.current.is_empty() {
            self.ready.push_back(self.current.split().freeze());
        }
    }

    /// Next finished datagram.
    pub(crate) fn pop(&mut self) -> Option<Bytes> {
        self.ready.pop_front()
    }

    /// Whether a finished datagram waits.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Gives back the memory when nothing waits.
    pub(crate) fn release_idle(&mut self) {
        if self.ready.is_empty() && self.current.is_empty() {
            self.ready = VecDeque::new();
            self.current = BytesMut::new();
        }
    }
}
