//! Assembly of outgoing datagrams: segments are written back to back into one buffer
//! and cut into datagrams of at most `mtu` bytes. What becomes of a finished datagram is
//! the [`Finish`] of the flush: it waits in a queue for
//! [`Arq::poll_output`](super::Arq::poll_output) ([`Queue`]), or it is lent to the
//! caller of [`Arq::update_with`](super::Arq::update_with) at once and its room reused
//! for the next one ([`Lend`]).
//!
//! Queued, the buffer is one allocation shared by many datagrams, so the hot path does
//! not allocate per datagram. Queued datagrams of one size are gathered into one
//! [`Transmit`] (one `BytesMut::split_to` for up to [`MAX_TRANSMIT_DATAGRAMS`] of them,
//! not one each): [`Arq::poll_transmit`](super::Arq::poll_transmit) hands it over
//! whole, [`Arq::poll_output`](super::Arq::poll_output) one datagram at a time. Lent,
//! the buffer is one datagram's room, written again and again, so it stays in the CPU's
//! L1 cache.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::payload::{Payload, INLINE_MAX};
use crate::prefetch::{prefetch_lines, write_ahead_pays, Level, LINE};
use crate::wire::HEADER_LEN;

/// Most datagrams reserved for at a time in the shared buffer. A new block costs an
/// allocation of up to this many MTUs (90 KiB at 1400) and, once its datagrams are
/// dropped, a `free`: with 64 rather than 16, the 1 KiB and 16 KiB throughput rows are
/// 5-8 % faster (BENCHMARKS.md, session 10). Blocks grow this large only while that
/// many datagrams wait in the queue ([`Output::grow`]); a session keeps its last block
/// (reused in place) until it goes idle and gives its buffers back.
const MAX_DATAGRAMS_PER_BLOCK: usize = 64;

/// Most datagrams in one [`Transmit`]: what every Linux kernel with `UDP_SEGMENT` takes
/// in one `sendmsg` (its `UDP_MAX_SEGMENTS`, 64 in the kernels that brought it; later
/// ones take more).
pub const MAX_TRANSMIT_DATAGRAMS: usize = 64;

/// Most bytes in one [`Transmit`]: what one IPv4 UDP datagram carries, the limit of one
/// `sendmsg` with `UDP_SEGMENT`.
pub const MAX_TRANSMIT_BYTES: usize = 65_507;

/// Datagrams of one size back to back in one buffer, the last one possibly shorter:
/// what one `sendmsg` with UDP generic segmentation offload (`UDP_SEGMENT`, "GSO")
/// sends, and what a receive with `UDP_GRO` hands over. From
/// [`Arq::poll_transmit`](super::Arq::poll_transmit), for the peer's
/// [`Arq::input_batch`](super::Arq::input_batch). At most [`MAX_TRANSMIT_DATAGRAMS`]
/// datagrams and [`MAX_TRANSMIT_BYTES`] bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The datagrams, back to back.
    pub contents: Bytes,
    /// Length of every datagram but the last, which is at most this long (never 0).
    pub segment_size: usize,
}

impl Transmit {
    /// The datagrams, in order. No copy, no reference count.
    pub fn datagrams(&self) -> std::slice::Chunks<'_, u8> {
        self.contents.chunks(self.segment_size.max(1))
    }

    /// How many datagrams it holds. O(1).
    pub fn datagram_count(&self) -> usize {
        self.contents.len().div_ceil(self.segment_size.max(1))
    }
}

/// What becomes of each datagram a flush finishes.
pub(crate) trait Finish {
    /// Whether finished datagrams stay in the buffer, so that the next one is written
    /// to memory not touched yet (worth prefetching).
    const KEEPS_DATAGRAMS: bool;

    /// Takes the finished datagram: the bytes of `out.current` past `out.gathered`.
    fn finish(&mut self, out: &mut Output);
}

/// Finished datagrams wait in the builder's queue, gathered into [`Transmit`]s.
pub(crate) struct Queue;

impl Finish for Queue {
    const KEEPS_DATAGRAMS: bool = true;

    #[inline(always)]
    fn finish(&mut self, out: &mut Output) {
        out.gather();
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

    /// A lending flush gathers nothing: the one before it closed its run.
    #[inline(always)]
    fn finish(&mut self, out: &mut Output) {
        debug_assert_eq!(out.gathered, 0, "no run is gathered while lending");
        self.lend(&out.current);
        out.current.clear();
    }
}

/// Builder of outgoing datagrams.
#[derive(Debug)]
pub(crate) struct Output {
    /// The gathered run's datagrams (the first `gathered` bytes), then the datagram
    /// being written.
    current: BytesMut,
    /// Bytes at the front of `current` that the run's finished datagrams fill, not
    /// split off yet.
    gathered: usize,
    /// Length of the run's datagrams (its first one's: the last may be shorter).
    run_size: usize,
    /// Datagrams in the run (0: none being gathered).
    run_count: usize,
    /// Finished runs, oldest first.
    ready: VecDeque<Transmit>,
    /// Datagrams in `ready`.
    waiting: usize,
    /// Datagrams the last reservation made room for.
    block: usize,
    /// Address up to which [`prepare_next`](Self::prepare_next) has prefetched. Only a
    /// hint: once the buffer moves to a new block it is stale, and at worst a few lines
    /// are not prefetched.
    prefetched_to: usize,
    /// Whether [`prepare_next`](Self::prepare_next) runs at all: it pays on some CPUs
    /// and costs on others ([`write_ahead_pays`]).
    write_ahead: bool,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            current: BytesMut::new(),
            gathered: 0,
            run_size: 0,
            run_count: 0,
            ready: VecDeque::new(),
            waiting: 0,
            block: 0,
            prefetched_to: 0,
            write_ahead: write_ahead_pays(),
        }
    }
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

    /// [`push`](Self::push) of a segment without payload or extra bytes (an ACK).
    #[inline(always)]
    pub(crate) fn push_header(
        &mut self,
        finish: &mut impl Finish,
        header: [u8; HEADER_LEN],
        mtu: usize,
    ) {
        self.begin_segment(finish, header, &[], 0, mtu);
    }

    /// [`push_header`](Self::push_header) of one segment per item, whose bytes
    /// `header` makes: each datagram's run of them is written after one room check,
    /// not one per segment (a flush of ACKs writes hundreds).
    #[inline(always)]
    pub(crate) fn push_headers<F: Finish, T>(
        &mut self,
        finish: &mut F,
        items: &[T],
        header: impl Fn(&T) -> [u8; HEADER_LEN],
        mtu: usize,
    ) {
        let mut rest = items;
        while !rest.is_empty() {
            self.cut_if_full(finish, HEADER_LEN, mtu);
            let run = (mtu.saturating_sub(self.open_len::<F>()) / HEADER_LEN).clamp(1, rest.len());
            let (now, later) = rest.split_at(run);
            let need = run * HEADER_LEN;
            // Before `start`: making room may split the gathered run off the buffer.
            self.ensure_room(need, mtu);
            let start = self.current.len();
            self.current.resize(start + need, 0);
            if let Some(room) = self.current.get_mut(start..) {
                for (at, item) in room.chunks_exact_mut(HEADER_LEN).zip(now) {
                    at.copy_from_slice(&header(item));
                }
            }
            rest = later;
        }
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
        self.cut_if_full(finish, need, mtu);
        self.ensure_room(need, mtu);
        self.current.extend_from_slice(&header);
        if !extra.is_empty() {
            self.current.extend_from_slice(extra);
        }
    }

    /// Ends the current datagram if `need` more bytes would take it past `mtu` (a
    /// datagram holds at least one segment, whatever its size), and prefetches the
    /// next one's room where that pays ([`prepare_next`](Self::prepare_next)).
    #[inline(always)]
    fn cut_if_full<F: Finish>(&mut self, finish: &mut F, need: usize, mtu: usize) {
        let len = self.open_len::<F>();
        if len + need > mtu && len != 0 {
            self.cut(finish);
            if F::KEEPS_DATAGRAMS && self.write_ahead {
                self.prepare_next(mtu);
            }
        }
    }

    /// Makes sure the buffer has room for `need` more bytes ([`grow`](Self::grow)
    /// if not).
    #[inline(always)]
    fn ensure_room(&mut self, need: usize, mtu: usize) {
        if self.current.capacity() - self.current.len() < need {
            self.grow(need, mtu);
        }
    }

    /// Makes room for a segment of `need` bytes: a block of twice as many datagrams as
    /// wait in the queue, or half the last block if that is more (so a bulk sender's
    /// next flush starts large again), up to [`MAX_DATAGRAMS_PER_BLOCK`]. A quiet
    /// session's blocks shrink to one datagram (an ACK costs one MTU, not sixty-four).
    /// `reserve` takes a block back in place, whole, once every datagram cut from it
    /// is dropped.
    /// The run being gathered is split off first, so that `reserve` never moves it.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, need: usize, mtu: usize) {
        self.close_run();
        let block = (2 * self.waiting)
            .max(self.block / 2)
            .clamp(1, MAX_DATAGRAMS_PER_BLOCK);
        self.current.reserve(mtu.max(need) * block);
        self.block = block;
    }

    /// Has the CPU fetch, ready for writing, the room of the datagram after the one
    /// just started (up to `mtu` bytes of the buffer's free capacity). Without it, the
    /// payload copies of a bulk flush write lines that are not in L1, and the atomic
    /// update of the next [`cut`](Self::cut) waits for every one of those stores: 6 %
    /// of the 1 KiB and 16 KiB throughput rows on an Intel VM (BENCHMARKS.md). Costs one
    /// prefetch instruction per 64 bytes, only while datagrams are being filled back to
    /// back; the lines the previous call prefetched (datagrams are often shorter than
    /// `mtu`) are not asked for again. Called only where it pays
    /// ([`write_ahead_pays`]: on an AMD Zen 5 VM the same rows lose 5 % with it).
    #[inline]
    fn prepare_next(&mut self, mtu: usize) {
        let room = self.current.spare_capacity_mut();
        let start = room.as_ptr() as usize;
        let end = start + room.len().min(mtu);
        let done = if (start..end).contains(&self.prefetched_to) {
            self.prefetched_to - start
        } else {
            0
        };
        let lines = (end - start - done).div_ceil(LINE);
        if let Some(rest) = room.get(done..) {
            prefetch_lines(rest, 0..lines, Level::Write);
        }
        self.prefetched_to = end;
    }

    /// Bytes in the datagram being written: the buffer's past the gathered run (none
    /// while lending, known at compile time).
    #[inline(always)]
    fn open_len<F: Finish>(&self) -> usize {
        match F::KEEPS_DATAGRAMS {
            true => self.current.len() - self.gathered,
            false => self.current.len(),
        }
    }

    /// Ends the current datagram, if it holds anything.
    #[inline]
    pub(crate) fn cut<F: Finish>(&mut self, finish: &mut F) {
        if self.open_len::<F>() > 0 {
            finish.finish(self);
        }
    }

    /// Ends a flush: the current datagram and the run being gathered.
    #[inline]
    pub(crate) fn end_flush(&mut self, finish: &mut impl Finish) {
        self.cut(finish);
        self.close_run();
    }

    /// Adds the datagram just finished (the bytes of `current` past `gathered`) to the
    /// run being gathered. A run holds datagrams of its first one's length, the last one
    /// possibly shorter, within the [`Transmit`] limits: a datagram that does not fit
    /// closes the run and starts the next.
    #[inline(always)]
    fn gather(&mut self) {
        let len = self.current.len() - self.gathered;
        if self.run_count > 0 && (len > self.run_size || self.gathered + len > MAX_TRANSMIT_BYTES) {
            self.close_run();
        }
        if self.run_count == 0 {
            self.run_size = len;
        }
        self.gathered += len;
        self.run_count += 1;
        if len < self.run_size || self.run_count == MAX_TRANSMIT_DATAGRAMS {
            self.close_run();
        }
    }

    /// Splits the gathered run off the buffer into the queue, if there is one: one
    /// reference count for all its datagrams.
    #[inline]
    fn close_run(&mut self) {
        if self.run_count == 0 {
            return;
        }
        let contents = self.current.split_to(self.gathered).freeze();
        self.ready.push_back(Transmit {
            contents,
            segment_size: self.run_size,
        });
        self.waiting += self.run_count;
        (self.gathered, self.run_count) = (0, 0);
    }

    /// Lends the datagrams waiting in the queue to `lend`, oldest first, and drops them.
    pub(crate) fn lend_ready<F: FnMut(&[u8])>(&mut self, lend: &mut Lend<F>) {
        while let Some(transmit) = self.ready.pop_front() {
            transmit
                .datagrams()
                .for_each(|datagram| lend.lend(datagram));
        }
        self.waiting = 0;
    }

    /// Next finished datagram: the first of the oldest run, split off it (one reference
    /// count), or the run's last datagram (none).
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Bytes> {
        let front = self.ready.front_mut()?;
        self.waiting = self.waiting.saturating_sub(1);
        if front.contents.len() > front.segment_size {
            return Some(front.contents.split_to(front.segment_size));
        }
        self.ready.pop_front().map(|transmit| transmit.contents)
    }

    /// The oldest run of finished datagrams, whole.
    #[inline]
    pub(crate) fn pop_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.ready.pop_front()?;
        self.waiting = self.waiting.saturating_sub(transmit.datagram_count());
        Some(transmit)
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
            + self.ready.capacity() * std::mem::size_of::<Transmit>()
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

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: usize = 1400;

    /// One flush of `datagrams` full-MTU datagrams into the queue, taken and dropped
    /// afterwards (as a runtime sends them); returns the most bytes the builder's buffer
    /// had room for during the flush.
    fn flush(out: &mut Output, datagrams: usize) -> usize {
        let payload = [7u8; MTU - HEADER_LEN];
        let mut room = 0;
        for _ in 0..datagrams {
            out.push(&mut Queue, [1; HEADER_LEN], &[], &payload, MTU);
            room = room.max(out.current.capacity());
        }
        out.end_flush(&mut Queue);
        let mut taken = 0;
        while let Some(datagram) = out.pop() {
            assert_eq!(datagram.len(), MTU);
            taken += 1;
        }
        assert_eq!(taken, datagrams, "every datagram comes out");
        room
    }

    #[test]
    fn a_quiet_sender_reserves_small_blocks_and_a_bulk_one_large_ones() {
        let mut quiet = Output::default();
        for _ in 0..50 {
            let room = flush(&mut quiet, 1);
            assert!(
                room <= 2 * MTU,
                "one datagram per flush: {room} bytes reserved"
            );
        }
        let mut short = Output::default();
        flush(&mut short, 3);
        assert!(
            short.block <= 4,
            "a short flush, small blocks: {}",
            short.block
        );
        let mut bulk = Output::default();
        let room = flush(&mut bulk, 300);
        assert_eq!(
            bulk.block, MAX_DATAGRAMS_PER_BLOCK,
            "blocks grew to the cap"
        );
        assert!(
            room >= MAX_DATAGRAMS_PER_BLOCK * MTU,
            "{room} bytes reserved"
        );
        // A bulk sender that goes quiet: its reservations shrink back (the block it
        // holds is reused in place meanwhile, whole, until the engine goes idle).
        for _ in 0..MAX_DATAGRAMS_PER_BLOCK * 8 {
            flush(&mut bulk, 1);
        }
        assert_eq!(bulk.block, 1, "back to one datagram's room");
    }

    #[test]
    fn runs_of_headers_are_cut_like_headers_one_by_one() {
        // After a data segment or none, runs shorter than, equal to and longer than a
        // datagram's room, with an MTU that is and one that is not a multiple of 24.
        for mtu in [HEADER_LEN * 4, 100, MTU] {
            for lead in [0, 30] {
                for count in [0, 1, 3, 4, 5, 58, 59, 200] {
                    let headers: Vec<[u8; HEADER_LEN]> =
                        (0..count).map(|i| [i as u8; HEADER_LEN]).collect();
                    let (mut one_by_one, mut runs) = (Output::default(), Output::default());
                    for out in [&mut one_by_one, &mut runs] {
                        if lead > 0 {
                            out.push(&mut Queue, [9; HEADER_LEN], &[], &[7; 30], mtu);
                        }
                    }
                    for header in &headers {
                        one_by_one.push_header(&mut Queue, *header, mtu);
                    }
                    runs.push_headers(&mut Queue, &headers, |h| *h, mtu);
                    one_by_one.end_flush(&mut Queue);
                    runs.end_flush(&mut Queue);
                    let taken = |out: &mut Output| std::iter::from_fn(|| out.pop()).collect();
                    let expected: Vec<Bytes> = taken(&mut one_by_one);
                    assert_eq!(
                        taken(&mut runs),
                        expected,
                        "mtu {mtu}, lead {lead}, {count} headers"
                    );
                    let total: usize = expected.iter().map(Bytes::len).sum();
                    assert_eq!(total, lead.min(1) * (HEADER_LEN + 30) + count * HEADER_LEN);
                }
            }
        }
    }

    #[test]
    fn lent_datagrams_reuse_one_room() {
        let mut out = Output::default();
        let mut lent = Vec::new();
        let mut lend = Lend::new(|datagram: &[u8]| lent.push(datagram.len()));
        for _ in 0..10 {
            out.push(&mut lend, [1; HEADER_LEN], &[], &[7; MTU - HEADER_LEN], MTU);
        }
        out.end_flush(&mut lend);
        assert_eq!((lend.datagrams, out.ready.len()), (10, 0));
        assert!(
            out.current.capacity() <= 2 * MTU,
            "one datagram's room, reused"
        );
        assert_eq!(lent, [MTU; 10]);
    }
}
