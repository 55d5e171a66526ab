//! Assembly of outgoing datagrams: segments are written back to back into one buffer
//! and cut into datagrams of at most `mtu` bytes. What becomes of a finished datagram is
//! the [`Finish`] of the flush: it waits in a queue for
//! [`Arq::poll_output`](super::Arq::poll_output) ([`Queue`]), or it is lent to the
//! caller of [`Arq::update_with`](super::Arq::update_with) at once and its room reused
//! for the next one ([`Lend`]).
//!
//! Queued, the buffer is one allocation shared by many datagrams (`BytesMut::split`), so
//! the hot path does not allocate per datagram. Lent, it is one datagram's room, written
//! again and again, so it stays in the CPU's L1 cache.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::payload::{Payload, INLINE_MAX};
use crate::prefetch::{prefetch_lines, Level, LINE};
use crate::wire::HEADER_LEN;

/// Most datagrams reserved for at a time in the shared buffer.
const MAX_DATAGRAMS_PER_BLOCK: usize = 16;

/// What becomes of each datagram a flush finishes.
pub(crate) trait Finish {
    /// Whether finished datagrams stay in the buffer, so that the next one is written
    /// to memory not touched yet (worth prefetching).
    const KEEPS_DATAGRAMS: bool;

    /// Takes the finished `datagram` (all of `current`), leaving `current` empty.
    fn finish(&mut self, current: &mut BytesMut, ready: &mut VecDeque<Bytes>);
}

/// Finished datagrams wait in the builder's queue, split off its buffer.
pub(crate) struct Queue;

impl Finish for Queue {
    const KEEPS_DATAGRAMS: bool = true;

    #[inline(always)]
    fn finish(&mut self, current: &mut BytesMut, ready: &mut VecDeque<Bytes>) {
        ready.push_back(current.split().freeze());
    }
}

/// Finished datagrams are lent to `sink` one by one, and their room is reused.
pub(crate) struct Lend<F> {
    sink: F,
    /// Datagrams lent so far.
    pub datagrams: u32,
    /// Their bytes.
    pub bytes: u64,
}

impl<F: FnMut(&[u8])> Lend<F> {
    pub(crate) fn new(sink: F) -> Self {
        Lend {
            sink,
            datagrams: 0,
            bytes: 0,
        }
    }

    /// Lends one datagram that was already finished (queued before).
    pub(crate) fn lend(&mut self, datagram: &[u8]) {
        self.datagrams += 1;
        self.bytes += datagram.len() as u64;
        (self.sink)(datagram);
    }
}

impl<F: FnMut(&[u8])> Finish for Lend<F> {
    const KEEPS_DATAGRAMS: bool = false;

    #[inline(always)]
    fn finish(&mut self, current: &mut BytesMut, _: &mut VecDeque<Bytes>) {
        self.lend(current);
        current.clear();
    }
}

/// Builder of outgoing datagrams.
#[derive(Debug, Default)]
pub(crate) struct Output {
    current: BytesMut,
    ready: VecDeque<Bytes>,
    /// Datagrams the next reservation makes room for: 1 for a quiet session (an ACK
    /// costs one MTU, not sixteen), doubling while the session keeps sending.
    block: usize,
}

impl Output {
    /// Appends one segment: its 24 `header` bytes, `extra` bytes (NEW's path block and
    /// token), payload. Starts a new datagram first if the segment would take the
    /// current one past `mtu`.
    ///
    /// Always inlined, so that the header is written straight from registers (built in
    /// a stack array and read back, it stalls store forwarding).
    #[inline(always)]
    pub(crate) fn push(
        &mut self,
        finish: &mut impl Finish,
        header: [u8; HEADER_LEN],
        extra: &[u8],
        payload: &[u8],
        mtu: usize,
    ) {
        self.begin_segment(finish, header, extra, payload.len(), mtu);
        self.current.extend_from_slice(payload);
    }

    /// [`push`](Self::push) of a data segment. An inline payload is copied as its whole
    /// 64-byte array (a copy of fixed size, without a call), and the bytes past its
    /// length are cut off again.
    #[inline(always)]
    pub(crate) fn push_data(
        &mut self,
        finish: &mut impl Finish,
        header: [u8; HEADER_LEN],
        extra: &[u8],
        payload: &Payload,
        mtu: usize,
    ) {
        let Payload::Inline { len, bytes } = payload else {
            return self.push(finish, header, extra, payload, mtu);
        };
        let len = usize::from(*len);
        self.begin_segment(finish, header, extra, len, mtu);
        if self.current.capacity() - self.current.len() >= INLINE_MAX {
            let end = self.current.len() + len;
            self.current.extend_from_slice(bytes);
            self.current.truncate(end);
        } else {
            self.current.extend_from_slice(&bytes[..len]);
        }
    }

    /// Starts a segment of a `payload_len`-byte payload: a new datagram if it would take
    /// the current one past `mtu`, room for it, then its header and `extra` bytes.
    #[inline(always)]
    fn begin_segment<F: Finish>(
        &mut self,
        finish: &mut F,
        header: [u8; HEADER_LEN],
        extra: &[u8],
        payload_len: usize,
        mtu: usize,
    ) {
        let need = HEADER_LEN + extra.len() + payload_len;
        let len = self.current.len();
        if len + need > mtu && len != 0 {
            self.cut(finish);
            if F::KEEPS_DATAGRAMS {
                self.prepare_next(mtu);
            }
        }
        if self.current.capacity() - self.current.len() < need {
            self.grow(need, mtu);
        }
        self.current.extend_from_slice(&header);
        if !extra.is_empty() {
            self.current.extend_from_slice(extra);
        }
    }

    /// Makes room for a segment of `need` bytes: a block of several datagrams, which
    /// `reserve` takes back in place once every datagram cut from it is dropped.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, need: usize, mtu: usize) {
        let block = self.block.clamp(1, MAX_DATAGRAMS_PER_BLOCK);
        self.current.reserve(mtu.max(need) * block);
        self.block = (block * 2).min(MAX_DATAGRAMS_PER_BLOCK);
    }

    /// Has the CPU fetch, ready for writing, the room of the datagram after the one
    /// just started (up to `mtu` bytes of the buffer's free capacity). Without it, the
    /// payload copies of a bulk flush write lines that are not in L1, and the atomic
    /// update of the next [`cut`](Self::cut) waits for every one of those stores: 6 %
    /// of the 1 KiB and 16 KiB throughput rows on an Intel VM (BENCHMARKS.md). Costs one
    /// prefetch instruction per 64 bytes, only while datagrams are being filled back to
    /// back.
    #[inline]
    fn prepare_next(&mut self, mtu: usize) {
        let room = self.current.spare_capacity_mut();
        let lines = room.len().min(mtu).div_ceil(LINE);
        prefetch_lines(room, 0..lines, Level::Write);
    }

    /// Ends the current datagram, if it holds anything.
    #[inline]
    pub(crate) fn cut(&mut self, finish: &mut impl Finish) {
        if !self.current.is_empty() {
            finish.finish(&mut self.current, &mut self.ready);
        }
    }

    /// Lends the datagrams waiting in the queue to `lend`, oldest first, and drops them.
    pub(crate) fn lend_ready<F: FnMut(&[u8])>(&mut self, lend: &mut Lend<F>) {
        while let Some(datagram) = self.ready.pop_front() {
            lend.lend(&datagram);
        }
    }

    /// Next finished datagram.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Bytes> {
        self.ready.pop_front()
    }

    /// Whether a finished datagram waits.
    #[inline]
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether nothing is being built or waits to be polled.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.current.is_empty()
    }

    /// Heap bytes a boxed builder holds: itself, the queue's capacity and the
    /// buffer's free room (the allocation behind the buffer is at most one MTU once
    /// [`trim`](Self::trim)med). O(1).
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<Output>()
            + self.ready.capacity() * std::mem::size_of::<Bytes>()
            + self.current.capacity()
    }

    /// Prepares an empty builder for another engine: the buffer is kept only if at most
    /// one datagram's room was reserved in it (so at most one MTU stands behind it) and
    /// it has room left, else it is freed; the next reservation starts small again.
    pub(crate) fn trim(&mut self) {
        debug_assert!(self.is_empty(), "only an empty builder is handed over");
        let small = self.block <= 2 && self.current.capacity() > 0;
        if !small {
            self.current = BytesMut::new();
        }
        self.block = 1;
    }
}
