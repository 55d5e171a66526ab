//! Datagrams in batches: what a socket read with `recvmmsg` (or a loop of reads) hands
//! over. The endpoint handles them one by one, in order, and while it handles one it
//! has the CPU load what later ones will read: the conv-map bucket of the datagram
//! [`2 * AHEAD`](AHEAD) places further, then the session record (for data, only its hot
//! lines, and the session's timer table entry) of the one [`AHEAD`] places further, so
//! the memory a datagram needs has arrived by the time its turn comes, and the loads
//! of several datagrams overlap instead of each waiting for DRAM in turn. A data
//! datagram's first record lines go to L1, the rest of its hot lines to L2 only.
//!
//! Why a short, rolling distance rather than prefetching a whole batch at once: the CPU
//! has a few dozen outstanding misses at most, so hundreds of prefetches issued
//! together stall on each other, and lines fetched long before their use are evicted
//! by the work in between. With 100k sessions this took the handling of a batch of
//! PUSHes from about 710 to 480-490 ns per datagram (BENCHMARKS.md).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::Endpoint;
use crate::prefetch::Level;
use crate::wire::{Cmd, HEADER_LEN};

/// The batch size the endpoint is tuned for (what one `recvmmsg` might return): its
/// buffer pool keeps this many sets of engine buffers, one for each session a batch of
/// data can wake. Any batch size works with
/// [`handle_datagrams`](Endpoint::handle_datagrams).
pub const PREFETCH_BATCH: usize = 32;

/// How many datagrams ahead of the one being handled its session's record is
/// requested (the conv-map bucket twice as far ahead). A DRAM round trip (with its page
/// walk) in this VM is about 250 ns; handling a data datagram takes 150-300 ns, a PING
/// under 100 ns, so 8 covers the PINGs too (4 left them about 15 % slower at 100k
/// sessions, data the same) while the lines fetched stay in cache until their turn.
const AHEAD: usize = 8;

/// Datagrams held between their bucket's prefetch and their handling.
const RING: usize = 2 * AHEAD;

/// Cache lines at the start of a record that a data datagram reads first (the checks
/// and the engine's first fields): prefetched into L1, the rest of its hot lines into
/// L2 only. Tried: all hot lines into L1 (100k `push_batch` 580 ns: they crowd L1 and
/// its miss slots before their turn), all into L2 (PINGs twice as slow), 1 or 4 lines
/// first (494 and 544 ns against 481-486).
const FIRST_LINES: usize = 2;

/// A datagram taken from the caller's iterator, waiting for its turn.
struct Waiting {
    from: SocketAddr,
    payload: Bytes,
    /// Its conv and whether it is a PING, if its first bytes name them.
    peek: Option<(u32, bool)>,
}

impl Endpoint {
    /// Takes in datagrams that arrived together at `now`, in order, from their source
    /// addresses. The result (state, outputs, events, counters) is exactly that of
    /// [`handle_datagram`](Self::handle_datagram) called for each in turn; only faster
    /// with many sessions, as each datagram's session memory is requested a few
    /// datagrams before its turn. Costs a few instructions per datagram on top of
    /// handling it, and no allocation (it holds up to 16 datagrams on the stack).
    pub fn handle_datagrams<I>(&mut self, now: Instant, datagrams: I)
    where
        I: IntoIterator<Item = (SocketAddr, Bytes)>,
    {
        let mut ring: [Option<Waiting>; RING] = std::array::from_fn(|_| None);
        // Datagrams taken in, handled, and whose session was prefetched, counted from
        // the start; datagram `n` waits in `ring[n % RING]`.
        let (mut taken, mut handled, mut prefetched) = (0usize, 0usize, 0usize);
        for (from, payload) in datagrams {
            let peek = peek(&payload);
            if let Some((conv, _)) = peek {
                self.by_conv.prefetch(conv);
            }
            if taken - handled == RING {
                self.handle_waiting(now, &mut ring[handled % RING]);
                handled += 1;
            }
            ring[taken % RING] = Some(Waiting {
                from,
                payload,
                peek,
            });
            taken += 1;
            if taken - prefetched > AHEAD {
                self.prefetch_waiting(&ring[prefetched % RING]);
                prefetched += 1;
            }
        }
        for waiting in prefetched..taken {
            self.prefetch_waiting(&ring[waiting % RING]);
        }
        for waiting in handled..taken {
            self.handle_waiting(now, &mut ring[waiting % RING]);
        }
    }

    /// Requests the session memory of a waiting datagram (its bucket should be here).
    #[inline]
    fn prefetch_waiting(&self, waiting: &Option<Waiting>) {
        if let Some((conv, ping)) = waiting.as_ref().and_then(|w| w.peek) {
            self.prefetch_session(conv, ping);
        }
    }

    /// Handles a waiting datagram and empties its place.
    #[inline]
    fn handle_waiting(&mut self, now: Instant, waiting: &mut Option<Waiting>) {
        if let Some(Waiting { from, payload, .. }) = waiting.take() {
            self.handle_prefetched(now, from, payload);
        }
    }

    /// Starts loading the session of `conv`'s memory that handling a datagram reads:
    /// for a PING its head, for data the record's hot lines and the timer table entry
    /// its next deadline is written to. Waits for the conv's bucket
    /// (the lookup), not for the record. A hint: changes nothing.
    #[inline]
    pub(super) fn prefetch_session(&self, conv: u32, ping: bool) {
        if let Some(slot) = self.by_conv.get(conv) {
            if ping {
                self.slots.prefetch_head(slot);
            } else {
                self.slots.prefetch(slot, 0..FIRST_LINES, Level::L1);
                self.slots
                    .prefetch(slot, FIRST_LINES..self.slots.hot_lines(), Level::L2);
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
