//! The heap buffers an idle engine gives back, so that another engine can take them
//! over instead of allocating its own (a server keeps a small pool of them: a session
//! that wakes up then costs no `malloc`, and one that goes quiet no `free`).

use std::collections::VecDeque;
use std::mem::size_of;

use super::output::Output;
use super::recv_buf::Received;
use super::send_buf::InFlight;

/// The emptied buffers of an idle engine, from
/// [`Arq::release_idle_buffers`](super::Arq::release_idle_buffers), for
/// [`Arq::adopt_buffers`](super::Arq::adopt_buffers) of another engine (or the same).
///
/// Every buffer is empty: it carries capacity, never data (a datagram or message of one
/// conversation cannot reach another through it). Dropping it frees the memory, which
/// is what a standalone engine does. Moving it costs a copy of 96 bytes.
#[derive(Debug, Default)]
pub struct Buffers {
    /// The receive side's in-order queue.
    pub(super) ready: VecDeque<Received>,
    /// ACKs to send at the next flush.
    pub(super) acks: Vec<(u32, u32)>,
    /// The send ring.
    pub(super) sending: VecDeque<InFlight>,
    /// The datagram builder, with at most one MTU of output buffer (a larger one is
    /// not handed over).
    pub(super) output: Option<Box<Output>>,
}

impl Buffers {
    /// Heap bytes the buffers hold: their capacities (the output buffer by its free
    /// capacity: the allocation behind it is at most one MTU). O(1).
    pub fn bytes(&self) -> usize {
        self.ready.capacity() * size_of::<Received>()
            + self.acks.capacity() * size_of::<(u32, u32)>()
            + self.sending.capacity() * size_of::<InFlight>()
            + self.output.as_ref().map_or(0, |output| output.bytes())
    }

    /// Whether every buffer is empty (always true of what an engine hands over; for
    /// tests and debug checks). O(1).
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
            && self.acks.is_empty()
            && self.sending.is_empty()
            && self.output.as_ref().is_none_or(|output| output.is_empty())
    }
}

/// A buffer whose memory, once emptied, can move between engines: the one rule of
/// [`take_if_empty`] and [`adopt_into`] for every kind of buffer an engine gives back.
pub(super) trait Reusable: Default {
    /// Whether it holds nothing.
    fn is_empty(&self) -> bool;
    /// Elements (or bytes) it has room for without allocating.
    fn capacity(&self) -> usize;
}

impl<T> Reusable for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
}

impl<T> Reusable for VecDeque<T> {
    fn is_empty(&self) -> bool {
        VecDeque::is_empty(self)
    }
    fn capacity(&self) -> usize {
        VecDeque::capacity(self)
    }
}

/// `buffer`'s memory if it holds nothing (leaving an unallocated one in its place),
/// else an unallocated buffer (a buffer with data keeps it). O(1).
#[inline]
pub(super) fn take_if_empty<B: Reusable>(buffer: &mut B) -> B {
    if buffer.is_empty() {
        std::mem::take(buffer)
    } else {
        B::default()
    }
}

/// Installs `offered` as `buffer` if `buffer` has no memory yet and `offered` holds
/// nothing (it is dropped otherwise). O(1).
#[inline]
pub(super) fn adopt_into<B: Reusable>(buffer: &mut B, offered: B) {
    if buffer.capacity() == 0 && offered.is_empty() {
        *buffer = offered;
    }
}

/// Drops the first `count` entries of `deque` where they lie. `pop_front` would move
/// each out first: for the send and receive buffers' entries (up to 96 bytes) that is a
/// copy through the stack whose read-back stalls on its own stores. O(count).
#[inline]
pub(super) fn discard_front<T>(deque: &mut VecDeque<T>, count: usize) {
    deque.drain(..count.min(deque.len()));
}
