//! nnet's KCP engine ([`Arq`]) and the reference C KCP ([`CKcp`], `ikcp.c`) side by
//! side: the same workload over the same simulated lossy links, with the same seed and
//! the same settings, on virtual time.
//!
//! One run drives a sender and a receiver of one engine kind. Datagrams go through two
//! [`Link`]s (forward and back) that draw from one `SmallRng` seeded with the run's seed.
//! Time jumps from event to event: the next datagram arrival, the next time either
//! engine's `check` names, the next scheduled send. The engines see a millisecond clock
//! (the virtual time, rounded down).
//!
//! At every event both engines are driven the same way: the application sends what is
//! due (so that a flush at this very millisecond takes it), then both engines `update`
//! and their output goes on the links, then every datagram that has arrived is input,
//! then whole messages are received, then a bulk sender tops its queue up again. Calling
//! `update` before `input`, like the reference `test.c` and nnet's lock-step test, also
//! sets the C engine's clock, which `ikcp_input` reads for its RTT samples (nnet's
//! `input` takes the time as an argument).
//!
//! Everything measured comes from the harness, identically for both engines: data
//! segments are counted by parsing every datagram sent (PUSH segments), bytes and
//! datagrams as offered to the links (lost ones included).
//!
//! The harness checks that every message arrives exactly once, in order and intact, and
//! panics otherwise.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nnet_ckcp::{CKcp, CKcpConfig};
use nnet_core::arq::{Arq, ArqConfig};
use nnet_core::wire::{Cmd, Datagram, HEADER_LEN};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::link::{Link, LinkConfig};

/// The conversation id of every run.
const CONV: u32 = 0x0c0f_fee0;
/// Bytes at the start of every message: its index and its send time (µs), both `u64`.
const MESSAGE_HEADER: usize = 16;

/// Which KCP implementation a run uses (for both its sender and its receiver).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// nnet's engine, [`nnet_core::arq::Arq`].
    Nnet,
    /// The reference C KCP, `ikcp.c` behind [`nnet_ckcp::CKcp`].
    CKcp,
}

/// What the sender sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// How many messages.
    pub messages: usize,
    /// Bytes per message, at least 16 (each message starts with its index and send
    /// time).
    pub size: usize,
    /// Time between two sends; [`Duration::ZERO`] is bulk: messages are queued as fast
    /// as the send window drains (the queue is kept topped up to one send window).
    pub interval: Duration,
}

impl Workload {
    /// Bulk: 2,000 messages of 1 KiB, as fast as the window allows.
    pub fn bulk() -> Workload {
        Workload {
            messages: 2_000,
            size: 1024,
            interval: Duration::ZERO,
        }
    }

    /// Real time: 1,000 messages of 100 bytes, one every 20 ms.
    pub fn real_time() -> Workload {
        Workload {
            messages: 1_000,
            size: 100,
            interval: Duration::from_millis(20),
        }
    }

    /// Payload bytes of the whole workload.
    pub fn payload_bytes(&self) -> u64 {
        (self.messages * self.size) as u64
    }
}

/// Settings both engines run with (each converted to its own engine's config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSettings {
    /// RTO mode (`ikcp_nodelay`'s `nodelay`): 0 normal, 1 or 2 nodelay.
    pub nodelay: u8,
    /// Flush interval, ms.
    pub interval_ms: u32,
    /// Fast retransmit after this many later ACKs (0 off).
    pub fast_resend: u32,
    /// Congestion window on (`nc = 0`).
    pub congestion_control: bool,
    /// Send window, segments.
    pub send_window: u16,
    /// Receive window, segments.
    pub recv_window: u16,
    /// Largest datagram, bytes.
    pub mtu: usize,
    /// nnet only: count fast-retransmit hints conservatively like `ikcp.c` built with
    /// `IKCP_FASTACK_CONSERVE`. The C engine here (from `kcp-io`) is always built that
    /// way, so `true` makes nnet behave like it.
    pub fastack_conserve: bool,
    /// nnet only: time-based loss detection ([`ArqConfig::recent_ack`]), which `ikcp.c`
    /// does not have. Off, nnet emits what the C engine emits.
    pub recent_ack: bool,
    /// nnet only: repeated ACKs for out-of-order segments ([`ArqConfig::ack_repeat`]),
    /// which `ikcp.c` does not send.
    pub ack_repeat: bool,
}

impl Default for EngineSettings {
    /// Fast mode (nodelay 1, interval 10, resend 2, nc 1), windows of 256, MTU 1400,
    /// conservative fast-ack counting like the C build.
    fn default() -> Self {
        EngineSettings {
            nodelay: 1,
            interval_ms: 10,
            fast_resend: 2,
            congestion_control: false,
            send_window: 256,
            recv_window: 256,
            mtu: 1400,
            fastack_conserve: true,
            recent_ack: false,
            ack_repeat: false,
        }
    }
}

impl EngineSettings {
    /// The default settings with nnet's loss settings on: [time-based loss
    /// detection](Self::recent_ack) and [repeated ACKs](Self::ack_repeat). The C engine
    /// ignores them.
    pub fn improved() -> EngineSettings {
        EngineSettings {
            recent_ack: true,
            ack_repeat: true,
            ..EngineSettings::default()
        }
    }

    /// nnet's config for these settings.
    pub fn arq_config(&self) -> ArqConfig {
        ArqConfig {
            nodelay: self.nodelay,
            interval_ms: self.interval_ms,
            fast_resend: self.fast_resend,
            congestion_control: self.congestion_control,
            send_window: self.send_window,
            recv_window: self.recv_window,
            mtu: self.mtu,
            fastack_conserve: self.fastack_conserve,
            recent_ack: self.recent_ack,
            ack_repeat: self.ack_repeat,
            ..ArqConfig::fast()
        }
    }

    /// The C engine's config for these settings.
    pub fn c_config(&self) -> CKcpConfig {
        CKcpConfig {
            nodelay: u32::from(self.nodelay),
            interval: self.interval_ms,
            resend: self.fast_resend,
            no_cwnd: !self.congestion_control,
            send_window: u32::from(self.send_window),
            recv_window: u32::from(self.recv_window),
            mtu: self.mtu as u32,
            ..CKcpConfig::fast()
        }
    }

    /// Payload bytes per segment.
    pub fn mss(&self) -> usize {
        self.mtu.saturating_sub(HEADER_LEN)
    }
}

/// One comparison run: the links, the workload, the seed and the engine settings.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareConfig {
    /// Both directions' link (each direction is its own [`Link`] with this config).
    pub link: LinkConfig,
    /// What the sender sends.
    pub workload: Workload,
    /// Seeds the one RNG of the run (both links draw from it).
    pub seed: u64,
    /// The engines' settings, the same for both kinds.
    pub engine: EngineSettings,
    /// Virtual time after which a run gives up (`completed: false`).
    pub time_limit: Duration,
}

impl CompareConfig {
    /// `workload` over `link` both ways with `seed`, default engine settings and a
    /// 10-minute limit.
    pub fn new(link: LinkConfig, workload: Workload, seed: u64) -> CompareConfig {
        CompareConfig {
            link,
            workload,
            seed,
            engine: EngineSettings::default(),
            time_limit: Duration::from_secs(600),
        }
    }
}

/// What one run measured (or, in a [`Row`], the mean over the seeds).
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// Every message was received within the time limit (in a [`Row`]: in every run).
    pub completed: bool,
    /// Virtual time from the first send to the last message received (the time limit
    /// if not completed).
    pub completion: Duration,
    /// Median latency, from `send` on the sender to `recv` on the receiver.
    pub p50_latency: Duration,
    /// 99th percentile latency.
    pub p99_latency: Duration,
    /// Data segments sent (first transmissions and retransmissions) divided by the
    /// distinct data segments the workload needs, minus 1: 0 is no retransmission.
    pub retransmission_ratio: f64,
    /// Bytes of every datagram sent, both directions, lost ones included, per payload
    /// byte of the workload.
    pub wire_bytes_per_payload_byte: f64,
    /// Datagrams sent, both directions, lost ones included.
    pub datagrams: u64,
}

/// What the harness needs from a KCP engine, implemented by both.
trait Engine {
    /// Queues a message; `false` if refused.
    fn send(&mut self, message: &[u8]) -> bool;
    /// Next whole message.
    fn recv(&mut self) -> Option<Bytes>;
    /// Feeds a received datagram at `now_ms`; `false` if refused.
    fn input(&mut self, now_ms: u32, datagram: &Bytes) -> bool;
    /// Advances the clock, flushing when due.
    fn update(&mut self, now_ms: u32);
    /// When `update` must next be called.
    fn check(&self, now_ms: u32) -> u32;
    /// Next datagram to send.
    fn poll_output(&mut self) -> Option<Bytes>;
    /// Segments queued or in flight.
    fn waiting(&self) -> usize;
}

impl Engine for Arq {
    fn send(&mut self, message: &[u8]) -> bool {
        Arq::send(self, Bytes::copy_from_slice(message)).is_ok()
    }
    fn recv(&mut self) -> Option<Bytes> {
        Arq::recv(self)
    }
    fn input(&mut self, now_ms: u32, datagram: &Bytes) -> bool {
        self.input_bytes(now_ms, datagram.clone()).is_ok()
    }
    fn update(&mut self, now_ms: u32) {
        Arq::update(self, now_ms);
    }
    fn check(&self, now_ms: u32) -> u32 {
        Arq::check(self, now_ms)
    }
    fn poll_output(&mut self) -> Option<Bytes> {
        Arq::poll_output(self)
    }
    fn waiting(&self) -> usize {
        self.waiting_to_send()
    }
}

impl Engine for CKcp {
    fn send(&mut self, message: &[u8]) -> bool {
        CKcp::send(self, message).is_ok()
    }
    fn recv(&mut self) -> Option<Bytes> {
        CKcp::recv(self).map(Bytes::from)
    }
    fn input(&mut self, _now_ms: u32, datagram: &Bytes) -> bool {
        // ikcp_input reads the clock of the last ikcp_update, which the harness calls
        // at the same event just before.
        CKcp::input(self, datagram).is_ok()
    }
    fn update(&mut self, now_ms: u32) {
        CKcp::update(self, now_ms);
    }
    fn check(&self, now_ms: u32) -> u32 {
        CKcp::check(self, now_ms)
    }
    fn poll_output(&mut self) -> Option<Bytes> {
        CKcp::poll_output(self).map(Bytes::from)
    }
    fn waiting(&self) -> usize {
        self.wait_send()
    }
}

/// Makes a sender and a receiver of `kind`.
fn engines(kind: EngineKind, settings: &EngineSettings) -> (Box<dyn Engine>, Box<dyn Engine>) {
    fn make(kind: EngineKind, settings: &EngineSettings) -> Box<dyn Engine> {
        match kind {
            EngineKind::Nnet => Box::new(
                Arq::new(CONV, &settings.arq_config()).expect("valid nnet engine settings"),
            ),
            EngineKind::CKcp => {
                Box::new(CKcp::new(CONV, &settings.c_config()).expect("valid C engine settings"))
            }
        }
    }
    (make(kind, settings), make(kind, settings))
}

/// Which way a datagram travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    /// Sender to receiver.
    Forward,
    /// Receiver to sender.
    Back,
}

/// A datagram on a link: arrival time (from the run's start), a sequence number that
/// keeps simultaneous arrivals in the order they were sent, and where it goes.
type InTransit = Reverse<(Duration, u64, Direction, Bytes)>;

/// Counters of what the engines sent, kept by the harness.
#[derive(Default)]
struct Traffic {
    data_segments: u64,
    bytes: u64,
    datagrams: u64,
}

impl Traffic {
    /// Counts one datagram and its PUSH segments. The engines under test built it, so
    /// it must parse.
    fn count(&mut self, datagram: &Bytes) {
        let parsed = Datagram::parse(datagram.clone())
            .expect("harness invariant: an engine emitted a datagram that does not parse");
        self.data_segments += parsed
            .segments()
            .filter(|segment| segment.header.cmd == Cmd::Push)
            .count() as u64;
        self.bytes += datagram.len() as u64;
        self.datagrams += 1;
    }
}

/// The message of index `index`, sent at `sent` (from the run's start): its index and
/// send time, then a pattern from the index up to `size` bytes.
fn message(index: u64, sent: Duration, size: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&index.to_le_bytes());
    bytes.extend_from_slice(&(sent.as_micros() as u64).to_le_bytes());
    bytes.extend((MESSAGE_HEADER..size).map(|j| pad_byte(index, j)));
    bytes
}

fn pad_byte(index: u64, at: usize) -> u8 {
    (index.wrapping_mul(131).wrapping_add(at as u64 * 7) >> 1) as u8
}

/// Checks that `received` is message `expected` whole; returns its send time.
fn check_message(received: &[u8], expected: u64, size: usize, kind: EngineKind) -> Duration {
    assert_eq!(
        received.len(),
        size,
        "{kind:?}: message {expected} arrived with {} bytes instead of {size}",
        received.len()
    );
    let index = u64::from_le_bytes(
        received[..8]
            .try_into()
            .expect("harness invariant: 8 bytes make a u64"),
    );
    assert_eq!(
        index, expected,
        "{kind:?}: received message {index} where message {expected} was due (lost, duplicated or reordered)"
    );
    let sent = u64::from_le_bytes(
        received[8..MESSAGE_HEADER]
            .try_into()
            .expect("harness invariant: 8 bytes make a u64"),
    );
    let intact = received[MESSAGE_HEADER..]
        .iter()
        .enumerate()
        .all(|(j, &byte)| byte == pad_byte(index, MESSAGE_HEADER + j));
    assert!(intact, "{kind:?}: message {index} arrived corrupted");
    Duration::from_micros(sent)
}

/// The virtual time of `ms` engine milliseconds.
fn at_ms(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}

/// When an engine wants `update` next, as virtual time after `now_ms` (never at
/// `now_ms` itself: `ikcp_check` names an overdue resend time even when the next flush,
/// which does the resend, is later; waking each millisecond until then is harmless).
fn wake_at(engine: &dyn Engine, now_ms: u32) -> Duration {
    let check = engine.check(now_ms);
    if (check.wrapping_sub(now_ms) as i32) <= 0 {
        at_ms(now_ms + 1)
    } else {
        at_ms(check)
    }
}

/// The `p`-th quantile (nearest rank) of sorted `values`; zero if there are none.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The sending application.
struct Application<'a> {
    workload: &'a Workload,
    /// In bulk, messages are sent while fewer segments than this wait.
    bulk_queue: usize,
    /// Messages sent so far.
    sent: usize,
}

impl Application<'_> {
    /// Sends every message due at `now` (in bulk: while the queue has room); returns
    /// when the next one is due, if that is a fixed time.
    fn send_due(
        &mut self,
        sender: &mut dyn Engine,
        now: Duration,
        kind: EngineKind,
    ) -> Option<Duration> {
        let workload = self.workload;
        while self.sent < workload.messages {
            if workload.interval.is_zero() {
                if sender.waiting() >= self.bulk_queue {
                    return None;
                }
            } else {
                let due = workload.interval * self.sent as u32;
                if due > now {
                    return Some(due);
                }
            }
            let data = message(self.sent as u64, now, workload.size);
            assert!(
                sender.send(&data),
                "{kind:?}: the sender refused message {}",
                self.sent
            );
            self.sent += 1;
        }
        None
    }
}

/// Runs `config`'s workload with two engines of `kind` and measures it. Deterministic:
/// the same kind and config give the same metrics.
///
/// # Panics
///
/// If a message is lost, duplicated, reordered or corrupted, an engine refuses a
/// message or a datagram, or emits a datagram that does not parse: this is a test
/// harness.
pub fn run(kind: EngineKind, config: &CompareConfig) -> Metrics {
    let workload = &config.workload;
    assert!(
        workload.size >= MESSAGE_HEADER,
        "messages must have at least {MESSAGE_HEADER} bytes, not {}",
        workload.size
    );
    let (mut sender, mut receiver) = engines(kind, &config.engine);
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let mut forward = Link::new(config.link.clone());
    let mut back = Link::new(config.link.clone());
    // Links speak `Instant`; only differences from this origin are ever used.
    let origin = Instant::now();
    let mut in_transit: BinaryHeap<InTransit> = BinaryHeap::new();
    let mut order = 0u64;
    let mut traffic = Traffic::default();

    let mut app = Application {
        workload,
        bulk_queue: usize::from(config.engine.send_window),
        sent: 0,
    };
    let mut received = 0usize;
    let mut latencies = Vec::with_capacity(workload.messages);
    let mut now = Duration::ZERO;
    let mut completed = workload.messages == 0;

    while !completed && now <= config.time_limit {
        let now_ms = u32::try_from(now.as_millis()).expect("time limit fits a u32 of ms");

        // 1. The application sends what is due, so that a flush now takes it.
        app.send_due(&mut *sender, now, kind);

        // 2. Timers: both engines flush if due; their output goes on the links.
        sender.update(now_ms);
        receiver.update(now_ms);
        for (engine, link, direction) in [
            (&mut sender, &mut forward, Direction::Forward),
            (&mut receiver, &mut back, Direction::Back),
        ] {
            while let Some(datagram) = engine.poll_output() {
                traffic.count(&datagram);
                for arrival in link.send(origin + now, datagram.len(), &mut rng) {
                    order += 1;
                    let at = arrival.duration_since(origin);
                    in_transit.push(Reverse((at, order, direction, datagram.clone())));
                }
            }
        }

        // 3. Every datagram that has arrived.
        while let Some(Reverse((at, _, _, _))) = in_transit.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, _, direction, datagram))) = in_transit.pop() else {
                break;
            };
            let engine = match direction {
                Direction::Forward => &mut receiver,
                Direction::Back => &mut sender,
            };
            assert!(
                engine.input(now_ms, &datagram),
                "{kind:?}: an engine refused a datagram its peer emitted"
            );
        }

        // 4. Whole messages.
        while let Some(message) = receiver.recv() {
            assert!(
                received < workload.messages,
                "{kind:?}: received more messages than were sent"
            );
            let sent_at = check_message(&message, received as u64, workload.size, kind);
            latencies.push(now.saturating_sub(sent_at));
            received += 1;
        }
        if received == workload.messages {
            completed = true;
            break;
        }

        // 5. The application sends again: in bulk, into the room the ACKs made.
        let next_send = app.send_due(&mut *sender, now, kind);

        // 6. The next event.
        let mut next = wake_at(&*sender, now_ms).min(wake_at(&*receiver, now_ms));
        if let Some(Reverse((at, _, _, _))) = in_transit.peek() {
            next = next.min(*at);
        }
        if let Some(due) = next_send {
            next = next.min(due);
        }
        now = next.max(now);
    }

    latencies.sort_unstable();
    let needed =
        workload.messages as u64 * workload.size.div_ceil(config.engine.mss().max(1)).max(1) as u64;
    let payload = workload.payload_bytes().max(1);
    Metrics {
        completed,
        completion: if completed { now } else { config.time_limit },
        p50_latency: percentile(&latencies, 0.50),
        p99_latency: percentile(&latencies, 0.99),
        retransmission_ratio: if needed == 0 {
            0.0
        } else {
            traffic.data_segments as f64 / needed as f64 - 1.0
        },
        wire_bytes_per_payload_byte: traffic.bytes as f64 / payload as f64,
        datagrams: traffic.datagrams,
    }
}

/// Runs `config` with nnet, then with the C engine: `(nnet, C)`.
pub fn side_by_side(config: &CompareConfig) -> (Metrics, Metrics) {
    (run(EngineKind::Nnet, config), run(EngineKind::CKcp, config))
}

/// One line of the loss table: a scenario and a workload, the engines' metrics, each
/// the mean over the seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Loss probability of each direction.
    pub loss: f64,
    /// The workload's name, `bulk` or `real-time`.
    pub workload: &'static str,
    /// Seeds the metrics are averaged over.
    pub seeds: usize,
    /// nnet with the improved settings, mean over the seeds (`completed`: every run
    /// completed).
    pub nnet: Metrics,
    /// nnet with the C engine's settings (its loss settings off), mean over the seeds.
    pub nnet_as_c: Metrics,
    /// The C engine's metrics, mean over the seeds (`completed`: every run completed).
    pub c: Metrics,
}

/// The loss rates of [`loss_table`].
pub const LOSS_RATES: [f64; 5] = [0.01, 0.05, 0.10, 0.20, 0.30];

/// The link of [`loss_table`]'s scenarios: 25 ms one way, 5 ms jitter, `loss`, no
/// bandwidth limit.
pub fn loss_link(loss: f64) -> LinkConfig {
    LinkConfig {
        jitter: Duration::from_millis(5),
        ..LinkConfig::with_latency(Duration::from_millis(25)).lossy(loss)
    }
}

/// [`loss_table_with`] nnet's [improved](EngineSettings::improved) settings.
pub fn loss_table(seeds: &[u64]) -> Vec<Row> {
    loss_table_with(seeds, &EngineSettings::improved())
}

/// Runs every loss rate of [`LOSS_RATES`] over [`loss_link`] with the
/// [bulk](Workload::bulk) and [real-time](Workload::real_time) workloads, once per seed:
/// nnet with `improved`, nnet with the default settings (the C engine's) and the C
/// engine. Each row holds the means over the seeds.
pub fn loss_table_with(seeds: &[u64], improved: &EngineSettings) -> Vec<Row> {
    let mut rows = Vec::new();
    for loss in LOSS_RATES {
        for (name, workload) in [
            ("bulk", Workload::bulk()),
            ("real-time", Workload::real_time()),
        ] {
            let mut nnet = Vec::with_capacity(seeds.len());
            let mut nnet_as_c = Vec::with_capacity(seeds.len());
            let mut c = Vec::with_capacity(seeds.len());
            for &seed in seeds {
                let config = CompareConfig::new(loss_link(loss), workload.clone(), seed);
                let (same, theirs) = side_by_side(&config);
                nnet_as_c.push(same);
                c.push(theirs);
                let config = CompareConfig {
                    engine: improved.clone(),
                    ..config
                };
                nnet.push(run(EngineKind::Nnet, &config));
            }
            rows.push(Row {
                loss,
                workload: name,
                seeds: seeds.len(),
                nnet: mean(&nnet),
                nnet_as_c: mean(&nnet_as_c),
                c: mean(&c),
            });
        }
    }
    rows
}

/// The mean of each metric (`completed` if every run completed).
fn mean(runs: &[Metrics]) -> Metrics {
    let n = runs.len().max(1) as f64;
    let mean_duration = |f: fn(&Metrics) -> Duration| {
        Duration::from_secs_f64(runs.iter().map(|m| f(m).as_secs_f64()).sum::<f64>() / n)
    };
    let mean_f64 = |f: fn(&Metrics) -> f64| runs.iter().map(f).sum::<f64>() / n;
    Metrics {
        completed: runs.iter().all(|m| m.completed),
        completion: mean_duration(|m| m.completion),
        p50_latency: mean_duration(|m| m.p50_latency),
        p99_latency: mean_duration(|m| m.p99_latency),
        retransmission_ratio: mean_f64(|m| m.retransmission_ratio),
        wire_bytes_per_payload_byte: mean_f64(|m| m.wire_bytes_per_payload_byte),
        datagrams: (runs.iter().map(|m| m.datagrams).sum::<u64>() as f64 / n).round() as u64,
    }
}

/// A Markdown table of `rows`: per scenario and workload, "nnet / C" for each metric,
/// nnet with the improved settings (a run that did not complete is marked with `*`).
/// A last line says whether nnet with the C engine's settings measured the same as C
/// in every row, and names the rows where not.
pub fn render_markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| loss | workload | completion nnet / C | p50 latency nnet / C \
         | p99 latency nnet / C | retransmissions nnet / C \
         | wire bytes per payload byte nnet / C | datagrams nnet / C |\n",
    );
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|\n");
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let completion = |m: &Metrics| {
        let mark = if m.completed { "" } else { "*" };
        format!("{:.2} s{mark}", m.completion.as_secs_f64())
    };
    let name = |row: &Row| format!("{:.0}% {}", row.loss * 100.0, row.workload);
    for row in rows {
        let (a, b) = (&row.nnet, &row.c);
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| {:.0}% | {} | {} / {} | {} / {} ms | {} / {} ms | {:.3} / {:.3} | {:.3} / {:.3} | {} / {} |",
            row.loss * 100.0,
            row.workload,
            completion(a),
            completion(b),
            ms(a.p50_latency),
            ms(b.p50_latency),
            ms(a.p99_latency),
            ms(b.p99_latency),
            a.retransmission_ratio,
            b.retransmission_ratio,
            a.wire_bytes_per_payload_byte,
            b.wire_bytes_per_payload_byte,
            a.datagrams,
            b.datagrams,
        );
    }
    if rows
        .iter()
        .any(|r| !r.nnet.completed || !r.nnet_as_c.completed || !r.c.completed)
    {
        out.push_str("\n`*`: at least one run did not complete within the time limit.\n");
    }
    let differing: Vec<String> = rows
        .iter()
        .filter(|r| r.nnet_as_c != r.c)
        .map(name)
        .collect();
    if differing.is_empty() {
        out.push_str(
            "\nnnet with the C engine's settings (`recent_ack` and `ack_repeat` off): identical to C in every row.\n",
        );
    } else {
        let _ = writeln!(
            out,
            "\nnnet with the C engine's settings (`recent_ack` and `ack_repeat` off) differs from C in: {}.",
            differing.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_bulk() -> Workload {
        Workload {
            messages: 300,
            size: 1024,
            interval: Duration::ZERO,
        }
    }

    fn small_real_time() -> Workload {
        Workload {
            messages: 100,
            size: 100,
            interval: Duration::from_millis(20),
        }
    }

    #[test]
    fn lossless_runs_deliver_everything_without_retransmission() {
        for workload in [small_bulk(), small_real_time()] {
            let config = CompareConfig::new(loss_link(0.0), workload.clone(), 1);
            let (nnet, c) = side_by_side(&config);
            for (kind, metrics) in [("nnet", &nnet), ("C", &c)] {
                assert!(metrics.completed, "{kind}: {metrics:?}");
                assert_eq!(metrics.retransmission_ratio, 0.0, "{kind}: {metrics:?}");
                // At least one-way latency, far below a retransmission.
                assert!(
                    metrics.p50_latency >= Duration::from_millis(25),
                    "{kind}: {metrics:?}"
                );
                assert!(metrics.wire_bytes_per_payload_byte > 1.0, "{kind}");
                if !workload.interval.is_zero() {
                    // Sent just before a flush: one way plus jitter, no waiting.
                    assert!(
                        metrics.p99_latency <= Duration::from_millis(31),
                        "{kind}: {metrics:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_metrics() {
        let config = CompareConfig::new(loss_link(0.1), small_bulk(), 7);
        for kind in [EngineKind::Nnet, EngineKind::CKcp] {
            assert_eq!(run(kind, &config), run(kind, &config), "{kind:?}");
        }
    }

    #[test]
    fn with_loss_both_complete_and_retransmit() {
        for workload in [small_bulk(), small_real_time()] {
            let config = CompareConfig::new(loss_link(0.1), workload, 3);
            let (nnet, c) = side_by_side(&config);
            for (kind, metrics) in [("nnet", &nnet), ("C", &c)] {
                assert!(metrics.completed, "{kind}: {metrics:?}");
                assert!(metrics.retransmission_ratio > 0.0, "{kind}: {metrics:?}");
                assert!(metrics.p99_latency >= metrics.p50_latency, "{kind}");
            }
        }
    }

    #[test]
    fn nnet_is_no_worse_than_c() {
        for workload in [small_bulk(), small_real_time()] {
            let config = CompareConfig::new(loss_link(0.1), workload, 5);
            let (nnet, c) = side_by_side(&config);
            assert!(nnet.completed && c.completed);
            assert!(nnet.completion <= c.completion, "{nnet:?}\n{c:?}");
            assert!(nnet.p50_latency <= c.p50_latency, "{nnet:?}\n{c:?}");
            assert!(nnet.p99_latency <= c.p99_latency, "{nnet:?}\n{c:?}");
            assert!(
                nnet.retransmission_ratio <= c.retransmission_ratio,
                "{nnet:?}\n{c:?}"
            );
            assert!(
                nnet.wire_bytes_per_payload_byte <= c.wire_bytes_per_payload_byte,
                "{nnet:?}\n{c:?}"
            );
            assert!(nnet.datagrams <= c.datagrams, "{nnet:?}\n{c:?}");
        }
    }

    #[test]
    fn harness_counts_data_segments_like_nnet_does() {
        // nnet counts the data segments it sends; the harness's count by parsing must
        // agree (the C engine is counted the same way by the harness).
        let settings = EngineSettings::default();
        let mut engine = Arq::new(CONV, &settings.arq_config()).expect("valid settings");
        let mut traffic = Traffic::default();
        for i in 0..50 {
            assert!(Engine::send(
                &mut engine,
                &message(i, Duration::ZERO, 100 + i as usize * 50)
            ));
        }
        for now in [0, 10, 400, 800] {
            Engine::update(&mut engine, now);
            while let Some(datagram) = Engine::poll_output(&mut engine) {
                traffic.count(&datagram);
            }
        }
        assert_eq!(traffic.data_segments, engine.stats().data_segments_out);
        assert!(traffic.data_segments > 50, "retransmissions were sent");
        assert_eq!(traffic.bytes, engine.stats().bytes_out);
    }

    #[test]
    fn a_corrupted_message_is_caught() {
        let mut data = message(4, Duration::from_millis(3), 64);
        assert_eq!(
            check_message(&data, 4, 64, EngineKind::Nnet),
            Duration::from_millis(3)
        );
        data[40] ^= 1;
        let caught = std::panic::catch_unwind(|| check_message(&data, 4, 64, EngineKind::Nnet));
        assert!(caught.is_err());
    }

    #[test]
    fn markdown_has_a_line_per_row() {
        let metrics = Metrics {
            completed: true,
            completion: Duration::from_secs(2),
            p50_latency: Duration::from_millis(30),
            p99_latency: Duration::from_millis(90),
            retransmission_ratio: 0.1,
            wire_bytes_per_payload_byte: 1.05,
            datagrams: 1000,
        };
        let row = Row {
            loss: 0.05,
            workload: "bulk",
            seeds: 1,
            nnet: metrics.clone(),
            nnet_as_c: metrics.clone(),
            c: Metrics {
                completed: false,
                ..metrics.clone()
            },
        };
        let table = render_markdown(std::slice::from_ref(&row));
        assert_eq!(table.lines().filter(|l| l.starts_with("| 5% |")).count(), 1);
        assert!(table.contains("2.00 s / 2.00 s*"));
        assert!(table.contains("differs from C in: 5% bulk."));
        let same = Row { c: metrics, ..row };
        assert!(render_markdown(&[same]).contains("identical to C in every row"));
    }
}
