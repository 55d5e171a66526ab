//! The server endpoint: every session of one UDP socket (PROTOCOL.md sections 3-5, 8).
//!
//! One [`Endpoint`] demultiplexes datagrams by conv (never by address, so a session
//! survives its client's line switches), starts sessions within the limits, answers
//! PING with PONG and stale traffic with rate-limited FIN(reset), and runs every
//! session's timers from one structure. It is sans-IO: the adapter feeds
//! [`handle_datagram`](Endpoint::handle_datagram) (or a batch to
//! [`handle_datagrams`](Endpoint::handle_datagrams)) and
//! [`handle_timeout`](Endpoint::handle_timeout), and drains
//! [`poll_transmit`](Endpoint::poll_transmit), [`poll_event`](Endpoint::poll_event)
//! and [`poll_timeout`](Endpoint::poll_timeout).
//!
//! ```
//! use std::time::Instant;
//! use nnet_core::config::EndpointConfig;
//! use nnet_core::endpoint::Endpoint;
//!
//! let now = Instant::now();
//! let mut server = Endpoint::new(EndpointConfig::default(), now).unwrap();
//! // The adapter's loop: feed datagrams and timeouts, then drain the outputs.
//! while let Some(transmit) = server.poll_transmit() {
//!     let _ = (transmit.to, transmit.payload); // socket.send_to(..)
//! }
//! while let Some(event) = server.poll_event() {
//!     let _ = event; // hand to the application
//! }
//! let _next_wakeup = server.poll_timeout();
//! ```

mod batch;
mod buffer_pool;
mod conv_map;
mod entry;
mod limits;
mod receive;
mod slab;
mod stats;
mod timers;
pub mod trust;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::debug;

use crate::arq::ArqConfig;
use crate::clock::Clock;
use crate::config::{ConfigError, EndpointConfig};
use crate::event::{CloseReason, ConnId, ServerEvent};
use crate::session::SessionError;
use crate::transmit::Transmit;
use buffer_pool::BufferPool;
use conv_map::ConvMap;
use entry::{Entry, Head};
use limits::{GlobalRate, PerKeyInterval, PerKeyRate};
use slab::Slab;
use timers::Timers;

pub use batch::PREFETCH_BATCH;
pub use stats::{DropCounts, EndpointStats, SessionStats};

/// Answers (PONG, FIN) waiting to be sent, at most.
const MAX_RESPONSES: usize = 4096;

/// An application command named a session the endpoint does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The session ended (its `Closed` event was or will be reported) or never existed.
    #[error("no such session (it has closed)")]
    UnknownConn,
    /// The session refused the command.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// A server: all sessions of one socket. See the [module docs](self).
///
/// Costs: O(1) per datagram (conv lookup in a keyed open-addressing table, then the
/// session's record inline in a paged slab); per timer O(1) for a far one (idle and
/// handshake timeouts; moving one later, as each datagram received does, only writes
/// a table entry) and O(log n) in a heap of only the next second's deadlines. An idle
/// session holds no timer but its idle timeout, and only its fixed state: a session
/// that goes quiet (at the latest when its last datagram is handed to
/// [`poll_transmit`](Self::poll_transmit)'s caller) gives its emptied engine buffers
/// to a pool of at most
/// [`PREFETCH_BATCH`] sets (about 57 KiB), which the next sessions to get data take over
/// instead of allocating their own.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    arq_config: Arc<ArqConfig>,
    clock: Clock,
    /// The latest `now` handed in: the time of commands that take none (`send`).
    now: Instant,
    slots: Slab,
    by_conv: ConvMap,
    timers: Timers,
    /// Emptied engine buffers of quiet sessions, for the next busy ones.
    pool: BufferPool,
    transmit_ready: VecDeque<ConnId>,
    readable: VecDeque<ConnId>,
    responses: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
    unconfirmed: usize,
    new_per_source: PerKeyRate<IpAddr>,
    answers_per_source: PerKeyInterval<SocketAddr>,
    answers_global: GlobalRate,
    stats: EndpointStats,
}

impl Endpoint {
    /// A server endpoint with no sessions, its clock starting at `now`.
    pub fn new(config: EndpointConfig, now: Instant) -> Result<Endpoint, ConfigError> {
        config.validate()?;
        let arq_config = Arc::new(ArqConfig {
            reserve_empty_messages: true,
            announce_room: false,
            ..config.session.arq.clone()
        });
        Ok(Endpoint {
            arq_config,
            clock: Clock::new(now),
            now,
            slots: Slab::default(),
            by_conv: ConvMap::new(config.seed),
            timers: Timers::new(),
            pool: BufferPool::default(),
            transmit_ready: VecDeque::new(),
            readable: VecDeque::new(),
            responses: VecDeque::new(),
            events: VecDeque::new(),
            unconfirmed: 0,
            new_per_source: PerKeyRate::with_seed(
                config.max_new_per_source_per_sec,
                config.source_table_capacity,
                config.seed,
            ),
            answers_per_source: PerKeyInterval::with_seed(
                config.reset_interval_per_source,
                config.source_table_capacity,
                config.seed ^ 1,
            ),
            answers_global: GlobalRate::new(config.max_resets_per_sec),
            stats: EndpointStats::default(),
            config,
        })
    }

    /// The settings the endpoint runs with.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.by_conv.len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.by_conv.is_empty()
    }

    /// Sessions that have not yet received a second datagram.
    pub fn unconfirmed(&self) -> usize {
        self.unconfirmed
    }

    /// Counters since the endpoint started.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Entries in the per-source rate-limit tables (each bounded by
    /// `source_table_capacity`).
    pub fn rate_table_sizes(&self) -> (usize, usize) {
        (self.new_per_source.len(), self.answers_per_source.len())
    }

    /// Takes in one datagram that arrived from `from`. Never fails: what is malformed,
    /// stale or over a limit is counted in [`stats`](Self::stats) and dropped.
    ///
    /// Once the conv is looked up, all the session memory the datagram will touch (a
    /// PING: its session's head; data: the record's hot lines and its timer table
    /// entry) is requested at once, so that with many sessions their misses overlap
    /// instead of coming one after the other as the handling reaches each field. With
    /// 100k sessions or more, hand datagrams that arrived together to
    /// [`handle_datagrams`](Self::handle_datagrams) instead: it overlaps the misses of
    /// several datagrams too (BENCHMARKS.md, "Endpoint scale").
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, payload: Bytes) {
        self.prefetch_for(&payload);
        self.handle_prefetched(now, from, payload);
    }

    /// [`handle_datagram`](Self::handle_datagram), once the session's memory was
    /// requested.
    fn handle_prefetched(&mut self, now: Instant, from: SocketAddr, payload: Bytes) {
        self.stats.datagrams_in += 1;
        self.advance_to(now);
        self.receive(now, from, payload);
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_to(now);
        let now_ms = self.clock.ms(now);
        while let Some(slot) = self.timers.pop_expired(now) {
            let handshake_timeout = self.config.handshake_timeout;
            let Some((head, entry)) = self.slots.parts_mut(slot) else {
                continue;
            };
            // The session's own receive time says idle: a keepalive PING may have come
            // since (the head holds it; see `schedule`).
            if entry.session.idle_expired(now, &self.config.session) {
                head.fold_keepalive(&mut entry.session);
            }
            if !entry.confirmed && now >= entry.created + handshake_timeout {
                entry.session.close_now(CloseReason::HandshakeTimeout);
            } else {
                entry
                    .session
                    .handle_timeout(now, now_ms, &self.config.session);
            }
            self.after_activity(slot);
        }
    }

    /// The next datagram to send: answers first, then sessions' output.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(response) = self.responses.pop_front() {
            self.stats.datagrams_out += 1;
            return Some(response);
        }
        while let Some(conn) = self.transmit_ready.pop_front() {
            let Some(entry) = self.slots.get_conn_mut(conn) else {
                continue;
            };
            match entry.session.poll_transmit() {
                Some(payload) => {
                    let to = entry.remote;
                    if entry.session.has_transmit() {
                        self.transmit_ready.push_front(conn);
                    } else {
                        entry.transmit_queued = false;
                        // Its last datagram is out: a session now quiet (an ACK was
                        // all it had) gives its buffers back and waits for its idle
                        // timeout from here, not from one more flush.
                        if return_buffers_if_quiet(entry, &mut self.pool) {
                            self.schedule(conn.slot);
                        }
                    }
                    self.stats.datagrams_out += 1;
                    return Some(Transmit { to, payload });
                }
                None => entry.transmit_queued = false,
            }
        }
        None
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next run. O(1) amortized.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// The next event for the application. Messages are taken from the sessions only
    /// here, so a slow application closes the KCP window instead of filling memory.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        while let Some(conn) = self.readable.pop_front() {
            let Some(entry) = self.entry_of_mut(conn) else {
                continue;
            };
            let Some(data) = entry.session.recv() else {
                entry.readable_queued = false;
                continue;
            };
            if entry.session.arq().peek_size().is_some() {
                self.readable.push_front(conn);
            } else {
                entry.readable_queued = false;
            }
            // Reading may reopen the window (a WINS to send): reschedule.
            let slot = conn.slot;
            self.schedule(slot);
            return Some(ServerEvent::Message { conn, data });
        }
        None
    }

    /// Queues a message to the session's client.
    pub fn send(&mut self, conn: ConnId, message: Bytes) -> Result<(), EndpointError> {
        let entry = self
            .slots
            .get_conn_mut(conn)
            .ok_or(EndpointError::UnknownConn)?;
        entry.adopt_pooled_buffers(&mut self.pool);
        entry.session.send(message)?;
        self.schedule(conn.slot);
        Ok(())
    }

    /// Closes the session gracefully: what was sent is flushed, then FIN. A `Closed`
    /// event follows.
    pub fn close(&mut self, conn: ConnId, now: Instant) -> Result<(), EndpointError> {
        self.advance_to(now);
        let now_ms = self.clock.ms(now);
        let entry = self
            .slots
            .get_conn_mut(conn)
            .ok_or(EndpointError::UnknownConn)?;
        entry.session.close(now, now_ms, &self.config.session);
        self.after_activity(conn.slot);
        Ok(())
    }

    /// Removes the session: KICK(`reason`) is sent and repeated every RTO until the
    /// client answers FIN (at most `kick_sends` times). `Closed(Kicked(reason))` follows.
    pub fn kick(&mut self, conn: ConnId, reason: u32, now: Instant) -> Result<(), EndpointError> {
        self.advance_to(now);
        let entry = self
            .slots
            .get_conn_mut(conn)
            .ok_or(EndpointError::UnknownConn)?;
        entry.session.kick(now, reason, &self.config.session);
        self.after_activity(conn.slot);
        Ok(())
    }

    /// Where the session's datagrams come from now (a gateway, a proxy or the client).
    pub fn remote(&self, conn: ConnId) -> Option<SocketAddr> {
        self.entry_of(conn).map(|e| e.remote)
    }

    /// The client's real address: from a trusted gateway's path block, else the remote.
    pub fn real_ip(&self, conn: ConnId) -> Option<SocketAddr> {
        self.entry_of(conn).map(|e| e.real_ip)
    }

    /// The session's conv.
    pub fn conv(&self, conn: ConnId) -> Option<u32> {
        self.entry_of(conn).map(|e| e.conv)
    }

    /// The session's counters.
    pub fn session_stats(&self, conn: ConnId) -> Option<SessionStats> {
        self.slots.conn_parts(conn).map(|(head, e)| SessionStats {
            datagrams_in: e.datagrams_in() + head.pings,
            datagrams_out: e.datagrams_out(),
            remote_changes: e.stats.remote_changes,
            drops: e.stats.drops,
            srtt_ms: e.session.arq().srtt_ms(),
            rto_ms: e.session.arq().rto_ms(),
            arq: e.session.arq().stats(),
        })
    }

    /// The session of `conv`, if live.
    pub fn find(&self, conv: u32) -> Option<ConnId> {
        let slot = self.by_conv.get(conv)?;
        Some(self.slots.conn_id(slot))
    }

    /// Moves the endpoint's notion of the present forward (never back).
    fn advance_to(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn entry_of(&self, conn: ConnId) -> Option<&Entry> {
        self.slots.get_conn(conn)
    }

    fn entry_of_mut(&mut self, conn: ConnId) -> Option<&mut Entry> {
        self.slots.get_conn_mut(conn)
    }

    fn conn_id(&self, slot: u32) -> ConnId {
        self.slots.conn_id(slot)
    }

    /// Stores a new session; returns its slot.
    fn insert(&mut self, head: Head, entry: Entry) -> u32 {
        let conv = entry.conv;
        let slot = self.slots.insert(head, entry);
        self.by_conv.insert(conv, slot);
        self.unconfirmed += 1;
        self.stats.sessions_accepted += 1;
        slot
    }

    /// After anything happened to a session: queue its output and messages, report and
    /// free it if it closed, else set its timer.
    fn after_activity(&mut self, slot: u32) {
        let conn = self.conn_id(slot);
        let Some(entry) = self.slots.get_mut(slot) else {
            return;
        };
        if let Some(reason) = entry.session.closed() {
            self.free(slot, reason);
            return;
        }
        return_buffers_if_quiet(entry, &mut self.pool);
        let queue_transmit = entry.session.has_transmit() && !entry.transmit_queued;
        entry.transmit_queued |= queue_transmit;
        let queue_readable = entry.session.arq().peek_size().is_some() && !entry.readable_queued;
        entry.readable_queued |= queue_readable;
        if queue_transmit {
            self.transmit_ready.push_back(conn);
        }
        if queue_readable {
            self.readable.push_back(conn);
        }
        self.schedule(slot);
    }

    /// Sets the session's timer to its next deadline. The idle deadline comes from the
    /// session's own last receive time, without the keepalives its head holds (not
    /// read here, so data does not touch the head): a session kept alive by PINGs
    /// alone wakes at that deadline, and `handle_timeout` takes the keepalive in and
    /// sets the next one.
    fn schedule(&mut self, slot: u32) {
        let handshake_timeout = self.config.handshake_timeout;
        let Some(entry) = self.slots.get(slot) else {
            return;
        };
        let now = self.now;
        let now_ms = self.clock.ms(now);
        let mut deadline = entry.session.deadline(now, now_ms, &self.config.session);
        if !entry.confirmed {
            let handshake = entry.created + handshake_timeout;
            deadline = Some(deadline.map_or(handshake, |d| d.min(handshake)));
        }
        match deadline {
            Some(at) => self.timers.set(slot, at),
            None => self.timers.cancel(slot),
        }
    }

    /// Reports the session's last messages and its close, sends its last control
    /// datagrams, and frees it.
    fn free(&mut self, slot: u32, reason: CloseReason) {
        let conn = self.conn_id(slot);
        let Some((_, mut entry)) = self.slots.remove(slot) else {
            return;
        };
        while let Some(data) = entry.session.recv() {
            self.events.push_back(ServerEvent::Message { conn, data });
        }
        while let Some(payload) = entry.session.poll_transmit() {
            self.push_response(Transmit {
                to: entry.remote,
                payload,
            });
        }
        self.pool
            .put(entry.session.arq_mut().release_idle_buffers());
        self.events.push_back(ServerEvent::Closed { conn, reason });
        self.by_conv.remove(entry.conv);
        if !entry.confirmed {
            self.unconfirmed -= 1;
        }
        self.timers.cancel(slot);
        self.stats.sessions_closed += 1;
        debug!(conv = entry.conv, ?reason, "session closed");
    }

    /// Queues an answer, unless the queue is full.
    fn push_response(&mut self, transmit: Transmit) {
        if self.responses.len() >= MAX_RESPONSES {
            self.stats.drops.response_queue_full += 1;
        } else {
            self.responses.push_back(transmit);
        }
    }
}

/// Gives a quiet session's buffers (nothing to send, acknowledge or wait for) to the
/// pool, once per quiet period; whether it did.
fn return_buffers_if_quiet(entry: &mut Entry, pool: &mut BufferPool) -> bool {
    if entry.buffers_returned || !entry.session.arq().is_idle() {
        return false;
    }
    pool.put(entry.session.arq_mut().release_idle_buffers());
    entry.buffers_returned = true;
    true
}
