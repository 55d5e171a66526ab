//! The KCP engine: one conversation's send and receive state.

use std::cell::Cell;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::ack_repeat::{DuplicateShare, RepeatedAcks};
use super::buffers::{adopt_into, take_if_empty, Buffers};
use super::config::{ArqConfig, ArqConfigError};
use super::error::{InputError, NoAnnounceRoom, SendError};
use super::kept::KeptBatches;
use super::output::{Finish, Lend, Output, Queue, Transmit};
use super::payload::{Batched, Copied, LastPart, Part, Payload, Source, INLINE_MAX};
use super::recent_ack::RecentAck;
use super::recv_buf::{Arrival, Message, MessageParts, ReceiveBuffer};
use super::rtt::{min_rto, RttEstimator, RTO_MAX_MS};
use super::send_buf::{InFlight, SendBuffer};
use super::seq::diff;
use super::stats::{ArqStats, HotCounts};
use crate::wire::{
    ack_fields, Cmd, Datagram, Header, Token, HEADER_LEN, NEW_EXTRA_LEN, PATH_BLOCK_LEN,
};

/// Adds `n` (1 if left out) to the per-datagram counter `field` of the engine `arq`: to
/// its 32-bit low part among the hot fields, carrying into its total with the rare
/// counters ([`HotCounts`]). One name for both parts, so they cannot be mixed up.
macro_rules! count_hot {
    ($arq:expr, $field:ident) => {
        count_hot!($arq, $field, 1)
    };
    ($arq:expr, $field:ident, $n:expr) => {
        super::stats::count(&mut $arq.counts.$field, &mut $arq.stats.$field, $n)
    };
}

/// First wait before probing a zero remote window, ms.
const PROBE_INITIAL_MS: u32 = 7_000;
/// Longest wait between window probes, ms.
const PROBE_LIMIT_MS: u32 = 120_000;
/// Slow-start threshold at start and its floor.
const SSTHRESH_MIN: u32 = 2;
/// Remote window assumed before the peer tells its own (the reference's default).
const INITIAL_REMOTE_WINDOW: u32 = 128;
/// `probe` flag: send a WASK.
const ASK_SEND: u8 = 1;
/// `probe` flag: send a WINS.
const ASK_TELL: u8 = 2;
/// How many segments ahead of the one it writes the flush prefetches a payload
/// ([`SendBuffer::unacked_for_flush`](super::send_buf::SendBuffer::unacked_for_flush)):
/// four gave the 1 KiB throughput row 6-8 % on an AMD Zen 5 VM, two 1-5 %, one
/// nothing, six and eight 4 % (BENCHMARKS.md, session 13).
const PAYLOAD_PREFETCH_AHEAD: usize = 4;

/// What one accepted datagram did, for the session layer above.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputReport {
    /// Data segments (PUSH or NEW) in the datagram, duplicates included.
    pub data_segments: u32,
    /// ACK segments in the datagram.
    pub ack_segments: u32,
    /// The oldest unacknowledged sequence number moved forward.
    pub una_advanced: bool,
}

impl InputReport {
    /// Whether the peer acknowledged anything: an ACK, or a `una` that moved forward
    /// (what ends the NEW phase, PROTOCOL.md section 3).
    pub fn acknowledged(&self) -> bool {
        self.ack_segments > 0 || self.una_advanced
    }
}

/// What [`Arq::input_batch`] did with a batch of datagrams: the [`InputReport`]s of
/// the accepted ones added up, and the refused ones counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Datagrams accepted.
    pub accepted: u32,
    /// Data segments (PUSH or NEW) in them, duplicates included.
    pub data_segments: u32,
    /// Datagrams refused; each changed nothing.
    pub refused: u32,
    /// ACK segments in the accepted datagrams.
    pub ack_segments: u32,
    /// The oldest unacknowledged sequence number moved forward.
    pub una_advanced: bool,
    /// Why the last refused datagram was refused.
    pub last_error: Option<InputError>,
}

impl BatchReport {
    /// Whether the peer acknowledged anything (see [`InputReport::acknowledged`]).
    pub fn acknowledged(&self) -> bool {
        self.ack_segments > 0 || self.una_advanced
    }

    /// Adds one datagram's outcome. (The fields added up are not side by side: added
    /// as one 8-byte pair, they were loaded as one from the two 4-byte stores that had
    /// just written them, a store-forwarding stall of 20 % of `input_batch`.)
    #[inline]
    fn add(&mut self, taken: Result<InputReport, InputError>) {
        match taken {
            Ok(report) => {
                self.accepted += 1;
                self.data_segments += report.data_segments;
                self.ack_segments += report.ack_segments;
                self.una_advanced |= report.una_advanced;
            }
            Err(error) => {
                self.refused += 1;
                self.last_error = Some(error);
            }
        }
    }
}

/// The congestion window state (`cwnd`, `ssthresh`, `incr` of the reference).
#[derive(Clone, Copy, Debug)]
struct Congestion {
    cwnd: u32,
    ssthresh: u32,
    incr: u32,
}

/// One KCP conversation: reliable, ordered delivery of messages over datagrams,
/// segment for segment what the reference `ikcp.c` does (see the [module
/// docs](super) for the differences, all in data structures).
///
/// Drive it like `ikcp`: [`send`](Self::send) and [`recv`](Self::recv) messages,
/// [`input`](Self::input) received datagrams, call [`update`](Self::update) at
/// [`check`](Self::check)'s time (or every interval), and send what
/// [`poll_output`](Self::poll_output) returns. Time is a wrapping `u32` of
/// milliseconds from any origin, the same for every call.
///
/// Memory: about 430 bytes while idle, plus its settings (about 70 bytes, shared by
/// the engines made with [`new_shared`](Self::new_shared)); buffers grow with data in
/// flight and are given back by [`release_idle_buffers`](Self::release_idle_buffers).
///
/// Layout: `repr(C)`, what one datagram's input and the flush after it read or write
/// first (conv, clocks, windows, the send and receive buffers' heads, the ACK lists,
/// the output, the RTT, the settings and the per-datagram counters) is the first
/// `HOT_BYTES` bytes; the rest (rare counters, the send fast path's
/// limit, the join buffer of fragmented messages) follows. A server prefetches only the
/// hot part.
#[derive(Debug)]
#[repr(C)]
pub struct Arq {
    conv: u32,
    current: u32,
    next_flush: u32,
    remote_window: u32,
    probe_at: u32,
    probe_wait: u32,
    duplicates: DuplicateShare,
    updated: bool,
    probe: u8,
    dead: bool,
    /// Whether `join` may hold memory (a fragmented message was taken since the last
    /// release): kept here, with the fields a datagram touches, so that releasing an
    /// idle engine's buffers does not read `join`'s cold line for nothing.
    join_held: bool,
    /// Whether data goes out as NEW (`announce` holds the token): kept here so that a
    /// flush reads the token's cold line only when it is used.
    announcing: bool,
    /// Whether `kept` was ever made (a batch came in): kept here so that taking a
    /// message reads `kept`'s cold line only when it may matter.
    batches_kept: bool,
    congestion: Congestion,

    /// Queued and in-flight segments.
    sending: SendBuffer,
    received: ReceiveBuffer,
    acks: Vec<(u32, u32)>,
    /// The datagrams being built and waiting to be polled, in a box that exists only
    /// while there are any: 8 bytes here instead of 72, among the fields every datagram
    /// touches. A server's session that wakes up takes over the box of one that went
    /// quiet (through the endpoint's pool), likely still in cache.
    output: Option<Box<Output>>,
    /// ACKs to send once more ([`ArqConfig::ack_repeat`]).
    repeated: RepeatedAcks,
    rtt: RttEstimator,
    /// Time-based loss detection ([`ArqConfig::recent_ack`]).
    recent_ack: RecentAck,
    /// The settings, shared by every engine made from the same [`Arc`]
    /// ([`new_shared`](Arq::new_shared)): 8 bytes here instead of the settings'
    /// 56, among the fields each datagram touches.
    config: Arc<ArqConfig>,
    /// The per-datagram counters' low parts: the last of the hot fields.
    counts: HotCounts,
    /// Counters: the rare ones, and the carried parts of `counts` (see [`HotCounts`]).
    stats: ArqStats,

    /// Largest message `send` queues as one fragment on its fast path (0 in stream mode).
    single_fragment_max: usize,
    /// Payload bytes per segment (at most `MAX_MTU`, so it fits): read when a message
    /// is cut into fragments and while the congestion window grows.
    mss: u32,
    /// The token data segments announce while `announcing`.
    announce: Option<Token>,
    /// Where fragmented messages are joined; its memory is taken back in place for the
    /// next one once the application dropped the previous one.
    join: BytesMut,
    /// The received batches that payloads in the receive buffer lie in
    /// ([`input_batch`](Arq::input_batch)); made at the first one kept.
    kept: Option<Box<KeptBatches>>,
}

/// Bytes at the start of an [`Arq`] that one datagram and the flush after it touch: up
/// to and with the per-datagram counters.
const HOT_BYTES: usize = std::mem::offset_of!(Arq, counts) + std::mem::size_of::<HotCounts>();

impl Arq {
    /// Bytes at the start of the engine that one datagram's input and the flush after
    /// it touch (see the layout note above), for prefetching.
    pub(crate) const HOT_BYTES: usize = HOT_BYTES;

    /// A new engine for conversation `conv`, after checking `config` (copied into an
    /// allocation of its own; see [`new_shared`](Self::new_shared)).
    pub fn new(conv: u32, config: &ArqConfig) -> Result<Arq, ArqConfigError> {
        Arq::new_shared(conv, &Arc::new(config.clone()))
    }

    /// A new engine for conversation `conv`, after checking `config`, sharing the
    /// settings with the other engines made from `config` (a server's sessions): one
    /// reference-count increment instead of a copy, and a smaller engine.
    pub fn new_shared(conv: u32, config: &Arc<ArqConfig>) -> Result<Arq, ArqConfigError> {
        config.validate()?;
        Ok(Arq {
            conv,
            config: Arc::clone(config),
            mss: config.mss() as u32,
            single_fragment_max: if config.stream {
                0
            } else {
                config.mss().min(config.max_message_size)
            },
            current: 0,
            updated: false,
            next_flush: 0,
            sending: SendBuffer::default(),
            remote_window: INITIAL_REMOTE_WINDOW,
            congestion: Congestion {
                cwnd: 0,
                ssthresh: SSTHRESH_MIN,
                incr: 0,
            },
            rtt: RttEstimator::new(),
            recent_ack: RecentAck::default(),
            probe: 0,
            probe_at: 0,
            probe_wait: 0,
            dead: false,
            join_held: false,
            received: ReceiveBuffer::new(config.recv_window),
            repeated: RepeatedAcks::default(),
            duplicates: DuplicateShare::default(),
            announcing: false,
            batches_kept: false,
            announce: None,
            acks: Vec::new(),
            output: None,
            counts: HotCounts::default(),
            stats: ArqStats::default(),
            join: BytesMut::new(),
            kept: None,
        })
    }

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.conv
    }

    /// The settings this engine runs with.
    pub fn config(&self) -> &ArqConfig {
        &self.config
    }

    /// Queues a message. It is cut into fragments of at most `mss` bytes that share the
    /// message's buffer (no copy). Refused, with the engine unchanged, when empty (under
    /// the empty-message rule), too large, or over the send-queue limit.
    #[inline]
    pub fn send(&mut self, message: Bytes) -> Result<(), SendError> {
        // A message of one fragment, outside stream mode: queued as it is.
        if message.len().wrapping_sub(1) < self.single_fragment_max {
            self.room_for_one()?;
            self.sending.queue(0, message);
            self.stats.messages_in += 1;
            return Ok(());
        }
        self.send_slow(message)
    }

    /// Queues a copy of `message`, like [`send`](Self::send) (same rules and errors).
    ///
    /// For a message of at most 64 bytes this is the cheapest way in: the bytes are
    /// copied into the send buffer's own entry, and no reference count is taken or
    /// released for it, neither now nor when the peer acknowledges it. A larger message
    /// is copied into a new allocation; hand such messages over as [`Bytes`] instead
    /// when you have them that way.
    #[inline]
    pub fn send_slice(&mut self, message: &[u8]) -> Result<(), SendError> {
        if message.len().wrapping_sub(1) < self.single_fragment_max.min(INLINE_MAX) {
            self.room_for_one()?;
            self.sending.queue_copy(0, message);
            self.stats.messages_in += 1;
            return Ok(());
        }
        self.send(Bytes::copy_from_slice(message))
    }

    /// Refuses a message of one fragment when the send queue is at its limit.
    #[inline(always)]
    fn room_for_one(&self) -> Result<(), SendError> {
        let queued = self.waiting_to_send();
        if queued >= self.config.max_send_queue {
            return Err(SendError::QueueFull {
                queued,
                needed: 1,
                max: self.config.max_send_queue,
            });
        }
        Ok(())
    }

    #[inline(never)]
    fn send_slow(&mut self, message: Bytes) -> Result<(), SendError> {
        if message.is_empty() && self.config.reserve_empty_messages {
            return Err(SendError::Empty);
        }
        if message.len() > self.config.max_message_size {
            return Err(SendError::TooLarge {
                size: message.len(),
                max: self.config.max_message_size,
            });
        }
        let tail_room = self.stream_tail_room();
        let extend = tail_room.min(message.len());
        let rest = message.len() - extend;
        let needed = if extend > 0 && rest == 0 {
            0
        } else {
            self.config.fragments(rest)
        };
        if tail_room > 0 && message.is_empty() {
            return Ok(());
        }
        let queued = self.waiting_to_send();
        if queued + needed > self.config.max_send_queue {
            return Err(SendError::QueueFull {
                queued,
                needed,
                max: self.config.max_send_queue,
            });
        }
        if extend > 0 {
            self.extend_stream_tail(&message[..extend]);
        }
        if needed > 0 {
            // The message's own handle when none of it went into the stream's tail (a
            // slice of all of it would cost a reference count).
            let rest = if extend == 0 {
                message
            } else {
                message.slice(extend..)
            };
            self.queue_fragments(rest, needed);
        }
        self.stats.messages_in += 1;
        Ok(())
    }

    /// Queues the empty message that carries a NEW when nothing else is in flight
    /// (PROTOCOL.md section 3). Not subject to the message rules or limits.
    pub fn send_hello(&mut self) {
        self.sending.queue(0, Bytes::new());
    }

    /// In stream mode, free bytes in the last queued segment.
    fn stream_tail_room(&self) -> usize {
        match self.sending.last_queued() {
            Some(last) if self.config.stream => (self.mss as usize).saturating_sub(last.data.len()),
            _ => 0,
        }
    }

    fn extend_stream_tail(&mut self, bytes: &[u8]) {
        if let Some(last) = self.sending.last_queued_mut() {
            let mut joined = BytesMut::with_capacity(last.data.len() + bytes.len());
            joined.extend_from_slice(&last.data);
            joined.extend_from_slice(bytes);
            last.data = Payload::Shared(joined.freeze());
        }
    }

    fn queue_fragments(&mut self, data: Bytes, count: usize) {
        if !self.config.stream {
            self.sending.queue_message(data, count, self.mss as usize);
            return;
        }
        self.sending.reserve(count);
        for i in 0..count {
            let mss = self.mss as usize;
            let start = i * mss;
            let end = (start + mss).min(data.len());
            let frg = if self.config.stream {
                0
            } else {
                (count - i - 1) as u8
            };
            if end < data.len() {
                self.sending.queue(frg, data.slice(start..end));
            } else {
                // The last fragment keeps the message's own handle.
                self.sending.queue_from(frg, data, start);
                break;
            }
        }
    }

    /// Takes the next whole message, if every fragment of it has arrived. A message
    /// of more than 64 bytes that came in one segment is handed over without a copy (a
    /// slice of its datagram); a smaller one, held inline, is copied into a new
    /// allocation (see [`recv_with`](Self::recv_with), which does not allocate).
    #[inline]
    pub fn recv(&mut self) -> Option<Bytes> {
        self.take_message(true, |message| message.into_bytes())
    }

    /// Lends the next whole message to `read`, if every fragment of it has arrived, and
    /// returns what `read` returns. No allocation and no reference count: the cheapest
    /// way to take messages of one segment. A fragmented message is joined into a
    /// reused buffer first (a copy; [`recv_parts`](Self::recv_parts) lends its
    /// fragments instead). The message is gone afterwards (like [`recv`](Self::recv)).
    #[inline]
    pub fn recv_with<R>(&mut self, read: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.take_message(true, |message| match message {
            Message::Single(payload) => read(payload),
            Message::Kept { batch, range } => read(&batch[range]),
            Message::Joined(join) => read(join),
            // Not given when joining; joined here all the same.
            parts @ Message::Parts(_) => read(&parts.into_bytes()),
        })
    }

    /// Lends the next whole message to `read` as the payloads of its fragments, in order
    /// ([`MessageParts`], an iterator of byte slices whose concatenation is the
    /// message), if every fragment has arrived, and returns what `read` returns.
    ///
    /// Like [`recv_with`](Self::recv_with), but a fragmented message is not joined
    /// first: no byte is copied, where `recv_with` copies a message of more than one
    /// segment (more than `mtu - 24` bytes) into a buffer: the cheapest way to take
    /// messages that large (in the throughput benchmark, 16 KiB messages went from
    /// 9.2-9.8 to 11.4-11.7 GiB/s). A message of one segment is one part (`recv_with`
    /// is as cheap or cheaper for those). The message is gone afterwards.
    #[inline]
    pub fn recv_parts<R>(&mut self, read: impl FnOnce(MessageParts<'_>) -> R) -> Option<R> {
        self.take_message(false, |message| read(message.into_parts()))
    }

    /// Takes the next whole message off the receive queue with `take` (skipping empty
    /// ones under the empty-message rule), a fragmented one joined into the join buffer
    /// if `joined`, else as its parts.
    #[inline]
    fn take_message<T>(&mut self, joined: bool, take: impl FnOnce(Message<'_>) -> T) -> Option<T> {
        let mut take = Some(take);
        loop {
            let window_was_full = self.received.ready_len() as u32 >= self.received.window();
            let skip_empty = self.config.reserve_empty_messages;
            let mut was_joined = false;
            let join = joined.then_some(&mut self.join);
            let kept = match self.batches_kept {
                true => self.kept.as_deref_mut(),
                false => None,
            };
            let taken = self.received.take_message(join, kept, |message| {
                was_joined = matches!(message, Message::Joined(_));
                if skip_empty && message.is_empty() {
                    return None;
                }
                take.take().map(|take| take(message))
            })?;
            if was_joined {
                // A joined message was lent or split off: the buffer is empty for the
                // next. (Not touched otherwise: its line is cold.)
                self.join_held = true;
                self.join.clear();
            }
            self.received.promote();
            if window_was_full && (self.received.ready_len() as u32) < self.received.window() {
                self.probe |= ASK_TELL;
            }
            if taken.is_some() {
                count_hot!(self, messages_out);
                return taken;
            }
        }
    }

    /// Size of the next whole message, if it has fully arrived.
    pub fn peek_size(&self) -> Option<usize> {
        self.received.peek_size()
    }

    /// Parses and takes in one received datagram; see [`input`](Self::input).
    ///
    /// Faster than [`Datagram::parse`] and [`input`](Self::input): the parse notes where
    /// each segment starts, so that no header waits for the previous one's length, and
    /// the last segment's payload is the datagram's own handle, advanced (no
    /// reference-count update).
    pub fn input_bytes(&mut self, now_ms: u32, datagram: Bytes) -> Result<InputReport, InputError> {
        if let Some(conv) = Datagram::check_acks(&datagram) {
            return self.input_acks(now_ms, &datagram, conv);
        }
        // Segments of one size (ACKs, a bulk sender's same-size messages): they start
        // every `stride` bytes, checked without a walk.
        if let Some((first, stride, count)) = Datagram::check_uniform(&datagram) {
            if count == 1 {
                let len = first.len as usize;
                let payload = LastPart {
                    datagram,
                    at: HEADER_LEN,
                    len,
                };
                return self.input_single(now_ms, first, payload);
            }
            let offset = |i| Some(i * stride);
            let intake = self.input_but_last(now_ms, &datagram, first.conv, count, offset)?;
            return Ok(self.input_last(datagram, intake));
        }
        self.input_walked(now_ms, datagram)
    }

    /// [`input_bytes`](Self::input_bytes) of a datagram whose segments are not all of
    /// one size: each is found from the one before. Out of line, so that its table of
    /// offsets does not weigh on the common paths.
    #[inline(never)]
    fn input_walked(&mut self, now_ms: u32, datagram: Bytes) -> Result<InputReport, InputError> {
        let mut offsets = [0; Datagram::RECORDED_SEGMENTS];
        let (first, count, recorded) = match Datagram::check_recording(&datagram, &mut offsets) {
            Ok(checked) => checked,
            Err(error) => {
                self.stats.datagrams_refused += 1;
                return Err(error.into());
            }
        };
        if !recorded {
            return self.input(now_ms, &Datagram::checked(datagram, first, count));
        }
        let offset = |i: usize| offsets.get(i).map(|&at| at as usize);
        let intake = self.input_but_last(now_ms, &datagram, first.conv, count, offset)?;
        Ok(self.input_last(datagram, intake))
    }

    /// Takes in a datagram the caller only lends (a slice of a reused receive buffer),
    /// like [`input_bytes`](Self::input_bytes). The payloads it stores are copied: one
    /// of at most 64 bytes into the receive buffer's own entry (no allocation, no
    /// reference count), a larger one into an allocation of its own.
    ///
    /// The counterpart of [`update_with`](Self::update_with). For datagrams of small
    /// messages it is the cheapest way in; for larger payloads
    /// [`input_bytes`](Self::input_bytes) is, which keeps the datagram's own buffer
    /// instead of copying (BENCHMARKS.md has both).
    pub fn input_slice(&mut self, now_ms: u32, datagram: &[u8]) -> Result<InputReport, InputError> {
        let copied = |at, len| Copied { datagram, at, len };
        self.input_lent(now_ms, datagram, copied, || {
            Bytes::copy_from_slice(datagram)
        })
    }

    /// Takes in a batch of received datagrams back to back in one buffer, each
    /// `segment_size` bytes long but the last, which may be shorter: what a receive with
    /// `UDP_GRO` hands over, or a [`Transmit`] of the peer's
    /// [`poll_transmit`](Self::poll_transmit). A `segment_size` of 0 means one datagram.
    ///
    /// Each datagram is taken in as [`input_bytes`](Self::input_bytes) takes one. One
    /// that is refused (malformed, another conv: counted in [`stats`](Self::stats))
    /// changes nothing and does not stop the others; the report says how many were and
    /// why the last one was.
    ///
    /// The cheapest way in for datagrams of large payloads: the receive buffer keeps the
    /// batch's one handle and the stored payloads say where they lie in it, where
    /// `input_bytes` keeps a handle per datagram (an atomic operation when each is
    /// dropped). A payload of at most 64 bytes is copied, as always. The batch's memory
    /// stays allocated while any payload in it waits in the receive buffer.
    pub fn input_batch(&mut self, now_ms: u32, batch: Bytes, segment_size: usize) -> BatchReport {
        let size = match segment_size {
            0 => batch.len().max(1),
            size => size,
        };
        let number = self.kept.as_ref().map_or(0, |kept| kept.next_number());
        let users = Cell::new(0);
        let mut report = BatchReport::default();
        for (i, datagram) in batch.chunks(size).enumerate() {
            let base = i * size;
            let source = |at, len| Batched {
                datagram,
                base,
                at,
                len,
                batch: number,
                users: &users,
            };
            let owned = || batch.slice(base..base + datagram.len());
            report.add(self.input_lent(now_ms, datagram, source, owned));
        }
        if users.get() > 0 {
            let batches = self.kept.get_or_insert_with(Box::default);
            batches.keep(batch, users.get());
            self.batches_kept = true;
        }
        report
    }

    /// Received batches kept for payloads in the receive buffer.
    #[cfg(test)]
    pub(crate) fn kept_batches(&self) -> usize {
        self.kept.as_ref().map_or(0, |kept| kept.len())
    }

    /// Takes in a `datagram` the caller only lends: `source(at, len)` says what to store
    /// of the payload at `at`; `owned` gives the datagram as a handle for the rare one of
    /// more segments than the parse records offsets for.
    #[inline(always)]
    fn input_lent<S: Source>(
        &mut self,
        now_ms: u32,
        datagram: &[u8],
        source: impl Fn(usize, usize) -> S,
        owned: impl FnOnce() -> Bytes,
    ) -> Result<InputReport, InputError> {
        if let Some(conv) = Datagram::check_acks(datagram) {
            return self.input_acks(now_ms, datagram, conv);
        }
        if let Some((first, stride, count)) = Datagram::check_uniform(datagram) {
            if count == 1 {
                let payload = source(HEADER_LEN, first.len as usize);
                return self.input_single(now_ms, first, payload);
            }
            let offset = |i| Some(i * stride);
            return self.input_sourced(now_ms, datagram, first.conv, count, offset, source);
        }
        let mut offsets = [0; Datagram::RECORDED_SEGMENTS];
        let (first, count, recorded) = match Datagram::check_recording(datagram, &mut offsets) {
            Ok(checked) => checked,
            Err(error) => {
                self.stats.datagrams_refused += 1;
                return Err(error.into());
            }
        };
        if !recorded {
            return self.input(now_ms, &Datagram::checked(owned(), first, count));
        }
        let offset = |i: usize| offsets.get(i).map(|&at| at as usize);
        self.input_sourced(now_ms, datagram, first.conv, count, offset, source)
    }

    /// Takes in a datagram of one plain KCP segment (a large message's fragment), whose
    /// `header` [`Datagram::check_uniform`] read (not read again), its payload stored
    /// from `payload`.
    #[inline(always)]
    fn input_single(
        &mut self,
        now_ms: u32,
        header: Header,
        payload: impl Source,
    ) -> Result<InputReport, InputError> {
        self.begin_input(now_ms, header.conv)?;
        let una_before = self.sending.una();
        let mut max_ack = None;
        let mut tally = Tally::default();
        tally.add(self.input_segment(&header, payload, &mut max_ack));
        Ok(self.end_input(una_before, max_ack, tally))
    }

    /// Takes in a datagram of ACKs of `conv` ([`Datagram::check_acks`]): what
    /// [`input_segment`](Self::input_segment) does for each of them, in a loop that
    /// reads only the fields an ACK uses and counts them once. Out of line: the data
    /// path of [`input_bytes`](Self::input_bytes) stays as lean as it was.
    #[inline(never)]
    fn input_acks(
        &mut self,
        now_ms: u32,
        datagram: &[u8],
        conv: u32,
    ) -> Result<InputReport, InputError> {
        self.begin_input(now_ms, conv)?;
        let una_before = self.sending.una();
        let mut max_ack = None;
        let mut acks = 0;
        for raw in datagram.chunks_exact(HEADER_LEN) {
            let Some(raw) = raw.first_chunk() else {
                continue;
            };
            let ack = ack_fields(raw);
            self.remote_window = u32::from(ack.wnd);
            self.sending.ack_below(ack.una);
            self.take_ack(ack.sn, ack.ts, &mut max_ack);
            acks += 1;
        }
        count_hot!(self, acks_in, acks);
        let tally = Tally { data: 0, acks };
        Ok(self.end_input(una_before, max_ack, tally))
    }

    /// Takes in the `count` segments of a checked, lent `datagram` of `conv`, segment `i`
    /// starting at `offset(i)`, its payload stored from `source(at, len)`.
    #[inline(always)]
    fn input_sourced<S: Source>(
        &mut self,
        now_ms: u32,
        datagram: &[u8],
        conv: u32,
        count: usize,
        offset: impl Fn(usize) -> Option<usize>,
        source: impl Fn(usize, usize) -> S,
    ) -> Result<InputReport, InputError> {
        self.begin_input(now_ms, conv)?;
        let una_before = self.sending.una();
        let mut tally = Tally::default();
        let mut max_ack: Option<(u32, u32)> = None;
        for i in 0..count {
            if let Some((header, at)) = offset(i).and_then(|o| Datagram::header_in(datagram, o)) {
                let payload = source(at, header.len as usize);
                tally.add(self.input_segment(&header, payload, &mut max_ack));
            }
        }
        Ok(self.end_input(una_before, max_ack, tally))
    }

    /// Takes in all but the last of the `count` segments of a checked `datagram` of
    /// `conv`, segment `i` starting at `offset(i)`, and finds the last one.
    ///
    /// The datagram is borrowed here and moved only for its last segment, in
    /// [`input_last`](Self::input_last): moved at the start, its handle was copied
    /// before the caller's stores of it completed, a stall (store forwarding fails) of
    /// 4 % of the 1 KiB throughput row.
    #[inline(always)]
    fn input_but_last(
        &mut self,
        now_ms: u32,
        datagram: &Bytes,
        conv: u32,
        count: usize,
        offset: impl Fn(usize) -> Option<usize>,
    ) -> Result<Intake, InputError> {
        self.begin_input(now_ms, conv)?;
        let mut intake = Intake {
            una_before: self.sending.una(),
            tally: Tally::default(),
            max_ack: None,
            last: None,
        };
        let Some(last) = count.checked_sub(1) else {
            return Ok(intake);
        };
        for i in 0..last {
            if let Some((header, at)) = offset(i).and_then(|o| Datagram::header_in(datagram, o)) {
                let len = header.len as usize;
                let payload = Part { datagram, at, len };
                intake
                    .tally
                    .add(self.input_segment(&header, payload, &mut intake.max_ack));
            }
        }
        intake.last = offset(last).and_then(|o| Datagram::header_in(datagram, o));
        Ok(intake)
    }

    /// Takes in the last segment of an `intake`, whose payload is the datagram's own
    /// handle, and ends it.
    #[inline(always)]
    fn input_last(&mut self, datagram: Bytes, mut intake: Intake) -> InputReport {
        if let Some((header, at)) = intake.last {
            let len = header.len as usize;
            let payload = LastPart { datagram, at, len };
            let cmd = self.input_segment(&header, payload, &mut intake.max_ack);
            intake.tally.add(cmd);
        }
        self.end_input(intake.una_before, intake.max_ack, intake.tally)
    }

    /// Takes in one received datagram, already parsed (so it is valid as a whole).
    /// Data, ACK and window segments are processed like `ikcp_input`; control segments
    /// of the session layer (KICK, FIN, PING, PONG) are skipped; a NEW is a PUSH whose
    /// path block and token the session layer reads. A datagram of another conv is
    /// refused and changes nothing.
    pub fn input(&mut self, now_ms: u32, datagram: &Datagram) -> Result<InputReport, InputError> {
        self.begin_input(now_ms, datagram.conv())?;
        let una_before = self.sending.una();
        let mut tally = Tally::default();
        let mut max_ack: Option<(u32, u32)> = None;
        for (header, at) in datagram.headers() {
            let (datagram, len) = (datagram.as_bytes(), header.len as usize);
            let payload = Part { datagram, at, len };
            tally.add(self.input_segment(&header, payload, &mut max_ack));
        }
        Ok(self.end_input(una_before, max_ack, tally))
    }

    /// Refuses a datagram of another conv; else starts taking one in.
    #[inline]
    fn begin_input(&mut self, now_ms: u32, conv: u32) -> Result<(), InputError> {
        if conv != self.conv {
            self.stats.datagrams_refused += 1;
            return Err(InputError::WrongConv {
                expected: self.conv,
                found: conv,
            });
        }
        self.current = now_ms;
        count_hot!(self, datagrams_in);
        Ok(())
    }

    /// What follows the segments of an input datagram: fast-retransmit hints and window
    /// growth.
    ///
    /// Always inlined: called out of line, it returned the report through memory as
    /// separate 4-byte stores that the caller read back as one 8-byte load, which
    /// stalls (no store forwarding).
    #[inline(always)]
    fn end_input(
        &mut self,
        una_before: u32,
        max_ack: Option<(u32, u32)>,
        tally: Tally,
    ) -> InputReport {
        if let Some((sn, ts)) = max_ack {
            self.sending
                .hint_fast_retransmit(sn, ts, self.config.fastack_conserve);
        }
        let una_advanced = diff(self.sending.una(), una_before) > 0;
        if una_advanced {
            self.grow_window();
        }
        if self.sending.unacked() == 0 {
            self.recent_ack.clear();
        }
        InputReport {
            data_segments: tally.data,
            ack_segments: tally.acks,
            una_advanced,
        }
    }

    /// One segment of an input datagram; its payload is taken from `payload` only if
    /// it is stored. Returns the command, for the datagram's [`Tally`].
    #[inline(always)]
    fn input_segment(
        &mut self,
        header: &Header,
        payload: impl Source,
        max_ack: &mut Option<(u32, u32)>,
    ) -> Cmd {
        if !header.cmd.is_plain_kcp() && header.cmd != Cmd::New {
            return header.cmd;
        }
        self.remote_window = u32::from(header.wnd);
        self.sending.ack_below(header.una);
        match header.cmd {
            Cmd::Ack => self.on_ack(header, max_ack),
            Cmd::Push | Cmd::New => self.on_data(header, payload),
            Cmd::Wask => self.probe |= ASK_TELL,
            _ => {}
        }
        header.cmd
    }

    #[inline(always)]
    fn on_ack(&mut self, header: &Header, max_ack: &mut Option<(u32, u32)>) {
        count_hot!(self, acks_in);
        self.take_ack(header.sn, header.ts, max_ack);
    }

    /// An ACK of `sn` echoing `ts` (`ikcp_update_ack`, `ikcp_parse_ack`); `max_ack` is
    /// the datagram's newest ACK so far, for fast retransmission.
    #[inline(always)]
    fn take_ack(&mut self, sn: u32, ts: u32, max_ack: &mut Option<(u32, u32)>) {
        let rtt = diff(self.current, ts);
        if rtt >= 0 {
            self.rtt.on_sample(
                rtt,
                self.config.interval_ms,
                min_rto(self.config.nodelay != 0),
            );
        }
        let newly_acked = self.sending.ack(sn);
        if self.config.recent_ack && newly_acked && rtt >= 0 {
            self.recent_ack.on_delivered(sn, ts, rtt as u32);
        }
        *max_ack = match *max_ack {
            None => Some((sn, ts)),
            Some((max_sn, max_ts))
                if diff(sn, max_sn) > 0
                    && (!self.config.fastack_conserve || diff(ts, max_ts) > 0) =>
            {
                Some((sn, ts))
            }
            kept => kept,
        };
    }

    /// A data segment; its payload is taken from `payload` only if it is stored.
    #[inline(always)]
    fn on_data(&mut self, header: &Header, payload: impl Source) {
        count_hot!(self, data_segments_in);
        if !self.received.below_window_end(header.sn) {
            self.stats.out_of_window_segments_in += 1;
            return;
        }
        self.acks.push((header.sn, header.ts));
        let duplicate =
            self.received.insert_with(header.sn, header.frg, payload) != Arrival::Stored;
        if duplicate {
            self.stats.duplicate_segments_in += 1;
        }
        if self.config.ack_repeat {
            self.duplicates.on_arrival(duplicate);
            if self.duplicates.worth_repeating(header.len as usize) {
                self.repeated.push(header.sn, header.ts);
            }
        }
    }

    /// Slow start and congestion avoidance when `una` moved (end of `ikcp_input`).
    fn grow_window(&mut self) {
        let cc = &mut self.congestion;
        if cc.cwnd >= self.remote_window {
            return;
        }
        let mss = self.mss;
        if cc.cwnd < cc.ssthresh {
            cc.cwnd += 1;
            cc.incr = cc.incr.wrapping_add(mss);
        } else {
            cc.incr = cc.incr.max(mss);
            cc.incr = cc.incr.wrapping_add(mss * mss / cc.incr + mss / 16);
            if (cc.cwnd + 1).wrapping_mul(mss) <= cc.incr {
                cc.cwnd = (cc.incr + mss - 1) / mss.max(1);
            }
        }
        if cc.cwnd > self.remote_window {
            cc.cwnd = self.remote_window;
            cc.incr = self.remote_window.wrapping_mul(mss);
        }
    }

    /// Advances time: flushes when the flush interval has come (`ikcp_update`). The
    /// datagrams wait for [`poll_output`](Self::poll_output).
    pub fn update(&mut self, now_ms: u32) {
        if self.flush_due(now_ms) {
            self.flush_now(&mut Queue);
        }
    }

    /// [`update`](Self::update), lending each output datagram to `sink` as soon as it
    /// is written, first those still waiting for [`poll_output`](Self::poll_output).
    ///
    /// The cheapest way out when the datagrams can be sent at once (`sendto` in the
    /// sink, or another engine's [`input_slice`](Self::input_slice)): every datagram is
    /// written into the same room, which stays in the CPU's cache, and no handle is
    /// made or released for it. Like `ikcp_update` with its output callback. (A peer
    /// in the same process that takes large payloads is faster fed with
    /// [`poll_transmit`](Self::poll_transmit) into [`input_batch`](Self::input_batch),
    /// which keeps the datagrams instead of copying their payloads.)
    pub fn update_with(&mut self, now_ms: u32, sink: impl FnMut(&[u8])) {
        let mut lend = Lend::new(sink);
        if let Some(out) = self.output.as_mut() {
            out.lend_ready(&mut lend);
        }
        if self.flush_due(now_ms) {
            self.flush_now(&mut lend);
        }
        self.stats.datagrams_out += u64::from(lend.datagrams);
        self.stats.bytes_out += lend.bytes;
    }

    /// Moves the clock to `now_ms` and says whether the interval's flush is due,
    /// scheduling the next one if so.
    #[inline]
    fn flush_due(&mut self, now_ms: u32) -> bool {
        self.current = now_ms;
        if !self.updated {
            self.updated = true;
            self.next_flush = now_ms;
        }
        let mut slap = diff(now_ms, self.next_flush);
        if !(-10_000..10_000).contains(&slap) {
            self.next_flush = now_ms;
            slap = 0;
        }
        if slap < 0 {
            return false;
        }
        self.next_flush = self.next_flush.wrapping_add(self.config.interval_ms);
        if diff(now_ms, self.next_flush) >= 0 {
            self.next_flush = now_ms.wrapping_add(self.config.interval_ms);
        }
        true
    }

    /// Flushes now, outside the interval: acks, window probes, new and due segments.
    /// Useful right after `send` for the lowest latency (costs a datagram per call).
    pub fn flush(&mut self, now_ms: u32) {
        self.current = now_ms;
        if !self.updated {
            self.updated = true;
            self.next_flush = now_ms;
        }
        self.flush_now(&mut Queue);
    }

    /// When [`update`](Self::update) must next be called, in ms (`now_ms` if at once).
    /// Never later than one interval. O(1): retransmissions are only done by the
    /// interval flush, so per-segment timers cannot bring that time forward.
    pub fn check(&self, now_ms: u32) -> u32 {
        if !self.updated {
            return now_ms;
        }
        let until_flush = diff(self.next_flush, now_ms);
        if until_flush <= 0 || until_flush > 10_000 {
            return now_ms;
        }
        now_ms.wrapping_add((until_flush as u32).min(self.config.interval_ms))
    }

    fn flush_now(&mut self, finish: &mut impl Finish) {
        let template = Header {
            conv: self.conv,
            cmd: Cmd::Ack,
            frg: 0,
            wnd: self.received.unused_window().min(u32::from(u16::MAX)) as u16,
            ts: 0,
            sn: 0,
            una: self.received.next_sn(),
            len: 0,
        };
        self.schedule_window_probe();
        let window = self.effective_window();
        self.sending.admit(window);
        // An output box is made only if something may go out: an idle engine's flush
        // allocates nothing.
        let may_send = !self.acks.is_empty()
            || !self.sending.is_empty()
            || self.probe != 0
            || self.repeated.is_held();
        let Some(mut out) = self.output.take().or_else(|| may_send.then(Box::default)) else {
            self.adjust_after_flush(FlushOutcome::default(), window);
            return;
        };
        let outcome = if self.announcing {
            // A gateway fills only a datagram's first segment: data (NEW) goes first.
            let outcome = self.emit_data(&mut out, finish, &template);
            let last_ack = self.emit_acks(&mut out, finish, &template);
            self.emit_probes(&mut out, finish, &template, last_ack);
            outcome
        } else {
            let last_ack = self.emit_acks(&mut out, finish, &template);
            self.emit_probes(&mut out, finish, &template, last_ack);
            self.emit_data(&mut out, finish, &template)
        };
        out.end_flush(finish);
        self.output = Some(out);
        self.adjust_after_flush(outcome, window);
    }

    /// Sends the ACKs of the segments received since the last flush, after the
    /// repeated ones; returns the last one's `sn` and `ts`.
    fn emit_acks(
        &mut self,
        out: &mut Output,
        finish: &mut impl Finish,
        template: &Header,
    ) -> (u32, u32) {
        let una = template.una;
        let held = |&&(sn, _): &&(u32, u32)| diff(sn, una) >= 0;
        let raw = template.to_bytes();
        let mtu = self.config.mtu;
        // Two loops rather than a chain: no state to test per ACK.
        let (mut count, mut last) = (0, (0, 0));
        for &ack in self.repeated.due().iter().filter(held) {
            out.push_header(finish, ack_header(raw, ack), mtu);
            (count, last) = (count + 1, ack);
        }
        if let Some(&ack) = self.acks.last() {
            out.push_headers(finish, &self.acks, |&ack| ack_header(raw, ack), mtu);
            (count, last) = (count + self.acks.len() as u32, ack);
        }
        count_hot!(self, acks_out, count);
        self.acks.clear();
        // Held above a gap, no `una` covers them if these ACKs are lost: once more next
        // time, unless the gap closes.
        self.repeated.rotate(held);
        last
    }

    /// Arms or fires the zero-window probe timer.
    fn schedule_window_probe(&mut self) {
        if self.remote_window != 0 {
            self.probe_at = 0;
            self.probe_wait = 0;
        } else if self.probe_wait == 0 {
            self.probe_wait = PROBE_INITIAL_MS;
            self.probe_at = self.current.wrapping_add(self.probe_wait);
        } else if diff(self.current, self.probe_at) >= 0 {
            self.probe_wait = self.probe_wait.max(PROBE_INITIAL_MS);
            self.probe_wait = (self.probe_wait + self.probe_wait / 2).min(PROBE_LIMIT_MS);
            self.probe_at = self.current.wrapping_add(self.probe_wait);
            self.probe |= ASK_SEND;
        }
    }

    /// WASK and WINS carry the last ACK's `sn` and `ts`, as in the reference.
    fn emit_probes(
        &mut self,
        out: &mut Output,
        finish: &mut impl Finish,
        template: &Header,
        (sn, ts): (u32, u32),
    ) {
        for (flag, cmd) in [(ASK_SEND, Cmd::Wask), (ASK_TELL, Cmd::Wins)] {
            if self.probe & flag != 0 {
                let probe = Header {
                    cmd,
                    sn,
                    ts,
                    ..*template
                };
                out.push_header(finish, probe.to_bytes(), self.config.mtu);
            }
        }
        self.probe = 0;
    }

    /// Segments the send window allows in flight now.
    fn effective_window(&self) -> u32 {
        let window = u32::from(self.config.send_window).min(self.remote_window);
        if self.config.congestion_control {
            window.min(self.congestion.cwnd)
        } else {
            window
        }
    }

    /// Sends every segment due: new ones, RTO expiries, fast retransmits.
    fn emit_data(
        &mut self,
        out: &mut Output,
        finish: &mut impl Finish,
        template: &Header,
    ) -> FlushOutcome {
        let plan = self.data_plan(template);
        let mut outcome = FlushOutcome::default();
        let mut pieces_from = None;
        for (sn, segment) in self.sending.unacked_for_flush(PAYLOAD_PREFETCH_AHEAD) {
            if matches!(segment.data, Payload::Piece { .. }) {
                // A fragment whose bytes are in a later slot: from here, the walk
                // that can read other slots.
                pieces_from = Some(sn);
                break;
            }
            if !plan.due(segment, sn, &mut outcome, &mut self.stats) {
                continue;
            }
            out.push_data(
                finish,
                plan.header(segment, sn),
                plan.extra(),
                &segment.data,
                plan.mtu,
            );
            self.dead |= segment.xmit >= plan.dead_link;
            count_hot!(self, data_segments_out);
        }
        if let Some(sn) = pieces_from {
            self.emit_data_from(out, finish, &plan, sn, &mut outcome);
        }
        outcome
    }

    /// [`emit_data`](Self::emit_data) from `first` on, by index: a
    /// [`Payload::Piece`]'s bytes are read from its message's last fragment, a later
    /// slot of the same buffer.
    fn emit_data_from(
        &mut self,
        out: &mut Output,
        finish: &mut impl Finish,
        plan: &DataPlan,
        first: u32,
        outcome: &mut FlushOutcome,
    ) {
        let una = self.sending.una();
        for index in diff(first, una).max(0) as usize..self.sending.sent() {
            let sn = una.wrapping_add(index as u32);
            let Some(segment) = self.sending.slot_mut(index) else {
                break;
            };
            if segment.acked || !plan.due(segment, sn, outcome, &mut self.stats) {
                continue;
            }
            let header = plan.header(segment, sn);
            self.dead |= segment.xmit >= plan.dead_link;
            if let Payload::Piece { start, len } = segment.data {
                let frg = segment.frg;
                let bytes = self.sending.piece(index, frg, start, len);
                out.push(finish, header, plan.extra(), bytes, plan.mtu);
            } else {
                out.push_data(finish, header, plan.extra(), &segment.data, plan.mtu);
            }
            count_hot!(self, data_segments_out);
        }
    }

    /// What one flush's data segments are sent with: the time, the RTO rules and the
    /// settings read for every segment, taken out of the shared settings once.
    #[inline(always)]
    fn data_plan(&self, template: &Header) -> DataPlan {
        let rx_rto = self.rtt.rto();
        // A branch, not a select: the token's line is read only while announcing.
        let announced = if self.announcing {
            self.announced_bytes()
        } else {
            None
        };
        DataPlan {
            current: self.current,
            rx_rto,
            rto_margin: if self.config.nodelay == 0 {
                rx_rto >> 3
            } else {
                0
            },
            fast_resend: match self.config.fast_resend {
                0 => u32::MAX,
                n => n,
            },
            fast_limit: match self.config.fast_limit {
                0 => u32::MAX,
                n => n,
            },
            recent_ack: self.config.recent_ack.then_some(self.recent_ack),
            reordering_margin: self.rtt.srtt() / 4,
            mtu: self.config.mtu,
            nodelay: self.config.nodelay,
            dead_link: self.config.dead_link,
            cmd: if announced.is_some() {
                Cmd::New
            } else {
                Cmd::Push
            },
            extra: announced.unwrap_or([0; NEW_EXTRA_LEN]),
            template: *template,
        }
    }

    /// The 28 bytes after a NEW header (an empty path block, then the token), if a
    /// token is announced. Out of line, so that the compiler does not read the token
    /// (a cold field) for every flush.
    #[cold]
    #[inline(never)]
    fn announced_bytes(&self) -> Option<[u8; NEW_EXTRA_LEN]> {
        let token = self.announce?;
        let mut bytes = [0; NEW_EXTRA_LEN];
        bytes[PATH_BLOCK_LEN..].copy_from_slice(&token);
        Some(bytes)
    }

    /// Congestion response to the flush's retransmissions (end of `ikcp_flush`).
    ///
    /// Reads `mss` (a cold field) only when the window changes.
    fn adjust_after_flush(&mut self, outcome: FlushOutcome, window: u32) {
        let cc = &mut self.congestion;
        if outcome.fast_retransmits > 0 {
            let in_flight = self.sending.next_sn().wrapping_sub(self.sending.una());
            cc.ssthresh = (in_flight / 2).max(SSTHRESH_MIN);
            cc.cwnd = cc.ssthresh.wrapping_add(self.config.fast_resend);
            cc.incr = cc.cwnd.wrapping_mul(self.mss);
        }
        if outcome.lost {
            cc.ssthresh = (window / 2).max(SSTHRESH_MIN);
            cc.cwnd = 1;
            cc.incr = self.mss;
        }
        if cc.cwnd < 1 {
            cc.cwnd = 1;
            cc.incr = self.mss;
        }
    }

    /// Next datagram to send, if any. Each is at most `mtu` bytes.
    #[inline]
    pub fn poll_output(&mut self) -> Option<Bytes> {
        let datagram = self.output.as_mut()?.pop()?;
        count_hot!(self, datagrams_out);
        count_hot!(self, bytes_out, datagram.len() as u32);
        Some(datagram)
    }

    /// Next run of datagrams to send, if any: up to
    /// [`MAX_TRANSMIT_DATAGRAMS`](super::MAX_TRANSMIT_DATAGRAMS) of one
    /// length back to back, the last possibly shorter (a [`Transmit`]), for one
    /// `sendmsg` with `UDP_SEGMENT` or for the peer's [`input_batch`](Self::input_batch).
    ///
    /// The cheapest way to take queued datagrams: one reference count per run, where
    /// [`poll_output`](Self::poll_output) costs one per datagram (an atomic operation
    /// each). Both can be used on the same engine; they take from the same queue.
    #[inline]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.output.as_mut()?.pop_transmit()?;
        count_hot!(self, datagrams_out, transmit.datagram_count() as u32);
        count_hot!(self, bytes_out, transmit.contents.len() as u32);
        Some(transmit)
    }

    /// Whether [`poll_output`](Self::poll_output) (or
    /// [`poll_transmit`](Self::poll_transmit)) has a datagram.
    #[inline]
    pub fn has_output(&self) -> bool {
        self.output.as_ref().is_some_and(|out| out.has_ready())
    }

    /// Sends data segments as NEW with an empty path block and this session token
    /// (PROTOCOL.md section 3), or as PUSH again with `None`. Applies from the next
    /// flush, retransmissions included. Refused unless the engine keeps room for the
    /// NEW bytes ([`ArqConfig::announce_room`]), as NEW segments would pass the MTU.
    pub fn set_announce(&mut self, token: Option<Token>) -> Result<(), NoAnnounceRoom> {
        if token.is_some() && !self.config.announce_room {
            return Err(NoAnnounceRoom);
        }
        self.announce = token;
        self.announcing = token.is_some();
        Ok(())
    }

    /// The token data segments announce, while in the NEW phase.
    pub fn announce(&self) -> Option<Token> {
        self.announce
    }

    /// Restarts the conversation under another conv before anything was acknowledged
    /// (a conv collision, PROTOCOL.md section 3): every message queued or in flight is
    /// queued again from sequence number 0, receive state is cleared. Returns `false`,
    /// and changes nothing, if the peer has already acknowledged or sent anything.
    pub fn restart_as(&mut self, conv: u32) -> bool {
        if self.sending.una() != 0 || self.received.next_sn() != 0 || !self.received.is_empty() {
            return false;
        }
        self.sending.requeue_all();
        self.conv = conv;
        self.acks.clear();
        self.output = None;
        self.repeated.clear();
        self.recent_ack.clear();
        self.congestion = Congestion {
            cwnd: 0,
            ssthresh: SSTHRESH_MIN,
            incr: 0,
        };
        self.dead = false;
        true
    }

    /// The path to the peer changed (the client moved to another line, or the server
    /// saw its client move): every segment in flight goes out again at the next flush
    /// as if new (fresh RTO, retransmission and fast-ack counts cleared, no loss signal
    /// for the congestion window), datagrams built for the old path and not yet polled
    /// are dropped, and `rtt_ms` measured on the new path (a probe), if given, replaces
    /// the RTT estimate. Cost: one pass over the segments in flight.
    pub fn on_path_change(&mut self, rtt_ms: Option<u32>) {
        if let Some(rtt) = rtt_ms {
            let rtt = rtt.min(RTO_MAX_MS) as i32;
            self.rtt.reseed(
                rtt,
                self.config.interval_ms,
                min_rto(self.config.nodelay != 0),
            );
        }
        self.stats.path_resends += self.sending.resend_all() as u64;
        self.recent_ack.clear();
        self.output = None;
    }

    /// Starts both directions' sequence numbers at `sn` (tests of the wrap-around).
    #[cfg(test)]
    pub(crate) fn start_sequences_at(&mut self, sn: u32) {
        self.sending.reset(sn);
        self.received.reset(sn);
    }

    /// Segments queued or in flight, not yet acknowledged (`ikcp_waitsnd`).
    #[inline]
    pub fn waiting_to_send(&self) -> usize {
        self.sending.unacked() + self.sending.queued()
    }

    /// Segments sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.sending.unacked()
    }

    /// Payload bytes sent and not yet acknowledged (headers not counted). Costs a walk
    /// over the send window: for monitoring, not for every datagram.
    pub fn in_flight_bytes(&self) -> usize {
        self.sending.unacked_bytes()
    }

    /// Whether a segment was sent `dead_link` times without being acknowledged.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Whether the engine has nothing to do until something comes in or is sent:
    /// nothing queued, in flight, to acknowledge or to output. An idle engine needs no
    /// timer.
    pub fn is_idle(&self) -> bool {
        self.sending.is_empty()
            && self.acks.is_empty()
            && self.output.as_ref().is_none_or(|out| out.is_empty())
            && self.repeated.due().is_empty()
            && self.probe == 0
    }

    /// Smoothed round-trip time, ms (0 before the first sample).
    pub fn srtt_ms(&self) -> u32 {
        self.rtt.srtt()
    }

    /// Round-trip time mean deviation, ms.
    pub fn rttvar_ms(&self) -> u32 {
        self.rtt.rttvar()
    }

    /// Current retransmission timeout, ms.
    pub fn rto_ms(&self) -> u32 {
        self.rtt.rto()
    }

    /// Congestion window, segments.
    pub fn cwnd(&self) -> u32 {
        self.congestion.cwnd
    }

    /// The peer's free receive window as it last told it, segments.
    pub fn remote_window(&self) -> u32 {
        self.remote_window
    }

    /// Counters since creation. Costs a copy of 128 bytes and eight additions.
    pub fn stats(&self) -> ArqStats {
        self.counts.add_to(self.stats)
    }

    /// Gives back the memory of empty buffers (an idle session costs only its fixed
    /// state): those another engine can reuse (receive queue, ACK list, send ring,
    /// output queue and buffer) are returned, empty, the others are freed. Dropping
    /// the result frees them too. Cheap (a few moves); the session layer calls it when
    /// the engine goes idle.
    pub fn release_idle_buffers(&mut self) -> Buffers {
        let acks = take_if_empty(&mut self.acks);
        self.repeated.release_if_empty();
        if self.join_held {
            self.join = BytesMut::new();
            self.join_held = false;
        }
        let output = match self.output.take() {
            Some(mut out) if out.is_empty() => {
                out.trim();
                Some(out)
            }
            held => {
                self.output = held;
                None
            }
        };
        Buffers {
            ready: self.received.release_idle(),
            acks,
            sending: self.sending.release_idle(),
            output,
        }
    }

    /// Takes over `buffers` (from [`release_idle_buffers`](Self::release_idle_buffers)
    /// of any engine) where this engine has no memory of its own, so its next data costs
    /// no allocation; what it does not need is dropped. Changes no behaviour, only
    /// where the memory comes from. O(1).
    pub fn adopt_buffers(&mut self, buffers: Buffers) {
        let Buffers {
            ready,
            acks,
            sending,
            output,
        } = buffers;
        self.received.adopt(ready);
        adopt_into(&mut self.acks, acks);
        self.sending.adopt(sending);
        if self.output.is_none() {
            self.output = output.filter(|out| out.is_empty());
        }
    }
}

/// Data and ACK segments of one input datagram, counted in locals: built up in the
/// [`InputReport`] itself, the counts went through memory, and the report's copy at the
/// end read them back as one 8-byte load of two 4-byte stores, which stalls (no store
/// forwarding): 5 % of the 1 KiB throughput row.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    data: u32,
    acks: u32,
}

impl Tally {
    #[inline(always)]
    fn add(&mut self, cmd: Cmd) {
        self.acks += u32::from(cmd == Cmd::Ack);
        self.data += u32::from(matches!(cmd, Cmd::Push | Cmd::New));
    }
}

/// The header of the ACK of `(sn, ts)`: `template`'s bytes with those two fields set.
#[inline(always)]
fn ack_header(mut template: [u8; HEADER_LEN], (sn, ts): (u32, u32)) -> [u8; HEADER_LEN] {
    template[8..12].copy_from_slice(&ts.to_le_bytes());
    template[12..16].copy_from_slice(&sn.to_le_bytes());
    template
}

/// A datagram taken in up to its last segment ([`Arq::input_but_last`]).
struct Intake {
    una_before: u32,
    tally: Tally,
    max_ack: Option<(u32, u32)>,
    /// The last segment's header and where its payload starts.
    last: Option<(Header, usize)>,
}

/// The constants of one flush's data segments ([`Arq::data_plan`]).
struct DataPlan {
    current: u32,
    rx_rto: u32,
    rto_margin: u32,
    fast_resend: u32,
    fast_limit: u32,
    recent_ack: Option<RecentAck>,
    reordering_margin: u32,
    mtu: usize,
    nodelay: u8,
    dead_link: u32,
    cmd: Cmd,
    /// NEW's path block and token (used only for NEW).
    extra: [u8; NEW_EXTRA_LEN],
    template: Header,
}

impl DataPlan {
    /// Whether `segment` (sequence number `sn`) goes out in this flush: first sent,
    /// its RTO expired, or found lost by fast retransmit or the recent-ACK rule (the
    /// one `ikcp_flush` walk). If so, its timers and counters are updated for the
    /// transmission.
    #[inline(always)]
    fn due(
        &self,
        segment: &mut InFlight,
        sn: u32,
        outcome: &mut FlushOutcome,
        stats: &mut ArqStats,
    ) -> bool {
        let current = self.current;
        if segment.xmit == 0 {
            segment.rto = self.rx_rto;
            segment.resend_at = current.wrapping_add(segment.rto + self.rto_margin);
        } else if diff(current, segment.resend_at) >= 0 {
            // The back-off of ikcp.c, capped at RTO_MAX_MS like TCP's: ikcp.c lets a
            // segment's RTO grow without bound (and wrap), so after 10-20 timeouts a
            // segment would wait hours. Below the cap the two agree.
            let backoff = match self.nodelay {
                0 => segment.rto.max(self.rx_rto),
                1 => segment.rto / 2,
                _ => self.rx_rto / 2,
            };
            segment.rto = segment.rto.saturating_add(backoff).min(RTO_MAX_MS);
            segment.resend_at = current.wrapping_add(segment.rto);
            outcome.lost = true;
            stats.timeout_retransmits += 1;
        } else if segment.fastack >= self.fast_resend && segment.xmit <= self.fast_limit {
            segment.fastack = 0;
            segment.resend_at = current.wrapping_add(segment.rto);
            outcome.fast_retransmits += 1;
            stats.fast_retransmits += 1;
        } else if self
            .recent_ack
            .is_some_and(|r| r.is_lost(sn, segment.ts, current, self.reordering_margin))
        {
            segment.fastack = 0;
            segment.resend_at = current.wrapping_add(segment.rto);
            outcome.fast_retransmits += 1;
            stats.recent_ack_retransmits += 1;
        } else {
            return false;
        }
        segment.xmit += 1;
        segment.ts = current;
        true
    }

    /// The header `segment` (sequence number `sn`) goes out with.
    #[inline(always)]
    fn header(&self, segment: &InFlight, sn: u32) -> [u8; HEADER_LEN] {
        Header {
            cmd: self.cmd,
            frg: segment.frg,
            ts: self.current,
            sn,
            len: segment.data.len() as u32,
            ..self.template
        }
        .to_bytes()
    }

    /// What follows each header: NEW's path block and token, or nothing.
    #[inline(always)]
    fn extra(&self) -> &[u8] {
        if self.cmd == Cmd::New {
            &self.extra
        } else {
            &[]
        }
    }
}

/// Retransmissions one flush made, for the congestion response.
#[derive(Clone, Copy, Debug, Default)]
struct FlushOutcome {
    fast_retransmits: u32,
    lost: bool,
}
