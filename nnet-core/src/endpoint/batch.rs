//! Datagrams in batches: what a socket read with `recvmmsg` (or a loop of reads) hands
//! over. Before handling the datagrams of a batch one by one, the endpoint asks the CPU
//! to load the conv-map bucket and then the session record of each (for data, only the
//! record's hot lines, and the session's timer table entry), so the memory loads of
//! the whole batch overlap instead of each datagram waiting for its own.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::Endpoint;
use crate::wire::{Cmd, HEADER_LEN};

/// Datagrams prefetched together. Enough to cover a DRAM latency with the work of the
/// others, few enough that what is prefetched stays in cache until it is used.
pub const PREFETCH_BATCH: usize = 32;

/// Cache lines of a record a PING reads (remote, counters, last receive time).
const PING_LINES: usize = 2;

impl Endpoint {
    /// Takes in datagrams that arrived together at `now`, in order, from their source
    /// addresses. The result (state, outputs, events, counters) is exactly that of
    /// [`handle_datagram`](Self::handle_datagram) called for each in turn; only faster
    /// with many sessions, as the memory of up to [`PREFETCH_BATCH`] datagrams' sessions is
    /// loaded at once. Costs a few instructions per datagram on top of handling it, and
    /// no allocation.
    pub fn handle_datagrams<I>(&mut self, now: Instant, datagrams: I)
    where
        I: IntoIterator<Item = (SocketAddr, Bytes)>,
    {
        let mut datagrams = datagrams.into_iter();
        let mut batch: [Option<(SocketAddr, Bytes)>; PREFETCH_BATCH] =
            std::array::from_fn(|_| None);
        loop {
            let mut len = 0;
            for (place, datagram) in batch.iter_mut().zip(datagrams.by_ref()) {
                *place = Some(datagram);
                len += 1;
            }
            let Some(taken) = batch.get_mut(..len) else {
                return;
            };
            self.prefetch(taken);
            for (from, payload) in taken.iter_mut().filter_map(Option::take) {
                self.handle_prefetched(now, from, payload);
            }
            if len < PREFETCH_BATCH {
                return;
            }
        }
    }

    /// Starts loading what the datagrams' handling reads first: each conv's bucket,
    /// then (once those are on their way) each known session's record (for data, the
    /// lines one datagram touches, [`Slab::hot_lines`](super::slab::Slab::hot_lines),
    /// and its timer table entry).
    fn prefetch(&self, batch: &[Option<(SocketAddr, Bytes)>]) {
        let first = |datagram: &Option<(SocketAddr, Bytes)>| {
            datagram.as_ref().and_then(|(_, payload)| peek(payload))
        };
        for (conv, _) in batch.iter().filter_map(first) {
            self.by_conv.prefetch(conv);
        }
        for (conv, ping) in batch.iter().filter_map(first) {
            self.prefetch_session(conv, ping);
        }
    }

    /// Starts loading the session of `conv`'s memory that handling a datagram reads:
    /// for a PING the record's first lines, for data the record's hot lines and the
    /// timer table entry its next deadline is written to. Waits for the conv's bucket
    /// (the lookup), not for the record. A hint: changes nothing.
    #[inline]
    pub(super) fn prefetch_session(&self, conv: u32, ping: bool) {
        if let Some(slot) = self.by_conv.get(conv) {
            if ping {
                self.slots.prefetch(slot, PING_LINES);
            } else {
                self.slots.prefetch(slot, self.slots.hot_lines());
                self.timers.prefetch(slot);
            }
        }
    }

    /// [`prefetch_session`](Self::prefetch_session) for the session `payload` names, if
    /// its first bytes name one.
    #[inline]
    pub(super) fn prefetch_for(&self, payload: &Bytes) {
        if let Some((conv, ping)) = peek(payload) {
            self.prefetch_session(conv, ping);
        }
    }
}

/// The conv of a datagram's first segment and whether it is a PING, read without
/// parsing (a hint for prefetching; the datagram is checked when it is handled).
fn peek(payload: &Bytes) -> Option<(u32, bool)> {
    if payload.len() < HEADER_LEN {
        return None;
    }
    let conv = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?);
    Some((conv, payload.get(4) == Some(&(Cmd::Ping as u8))))
}
