//! Bulk-transfer throughput of three KCP engines, side by side, in memory:
//! nnet's [`Arq`], the pure-Rust `kcp` crate 0.6 and the reference C `ikcp.c` (through
//! `nnet-ckcp`).
//!
//! Every engine runs the same harness: a sender and a receiver of the same
//! implementation, fast mode (nodelay 1, interval 10, resend 2, nc 1), MTU 1400, the
//! same message sequence, the same step structure and the same drop decisions. One step
//! of the virtual clock is one flush interval (10 ms):
//!
//! 1. feed the sender messages while its queued + in-flight segments stay within twice
//!    the window;
//! 2. `update(now)` the sender, move its datagrams into the receiver;
//! 3. take every whole message out of the receiver (counting payload bytes);
//! 4. `update(now)` the receiver, move its datagrams (ACKs) into the sender;
//! 5. advance the clock by 10 ms.
//!
//! Each engine moves datagrams through its natural API: nnet lends the datagrams of
//! 64-byte messages (`update_with` into `input_slice`, like the C engine) and hands
//! those of larger ones over without a copy, in runs of one size (`poll_transmit` into
//! `input_batch`, what a runtime with UDP GSO and GRO does; each run of datagrams the
//! network lets through is one batch), and lends received messages (a fragmented one as its fragments,
//! `recv_parts`, which the sink takes as parts); the C engine's output callback hands
//! each datagram to the receiver as `ikcp.c` writes it (no copy: what a callback calling
//! `sendto` does), and the `kcp` crate's `Write` appends datagrams to a reused buffer
//! whose slices go to the receiver; both copy received messages into a reused buffer.
//!
//! Each benchmark keeps one long-lived pair per engine (steady state); one iteration runs
//! the clock until the receiver has taken `N` more payload bytes. Before measuring, a
//! fresh pair per engine and row transfers exactly `4 N` bytes and the setup asserts that
//! every byte arrived, in order and intact (and prints steps and datagram counts, which
//! come out identical for the three engines: they behave alike on the wire).
//!
//! Rows: lossless with windows of 256 segments and messages of 64 B, 1 KiB and 16 KiB
//! (4 MiB per iteration); 20% random loss in both directions with windows of 4096
//! segments and 1 KiB messages (2 MiB per iteration, seeded `SmallRng`, the same
//! sequence of drop decisions for every engine).

use std::cell::RefCell;
use std::hint::black_box;
use std::io::{self, Write};
use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use nnet_ckcp::{CKcp, CKcpConfig};
use nnet_core::arq::{Arq, ArqConfig, MessageParts, Transmit};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

const CONV: u32 = 0x6e6e_6574;
const MTU: usize = 1400;
/// Payload bytes per segment at MTU 1400 (24-byte header).
const MSS: usize = MTU - 24;
/// One step of the virtual clock: one flush interval.
const STEP_MS: u32 = 10;
/// Largest message nnet's harness copies in with `send_slice` (larger ones go in as
/// `Bytes`).
const SMALL_MESSAGE: usize = 64;
/// Steps without a received byte after which a run is declared stalled.
const STALL_STEPS: u32 = 100_000;
const LOSS_SEED: u64 = 0x5eed_0f10;
/// The setup check sends each row's message sequence this many times (enough for the
/// loss row to run with full 4096-segment windows).
const VERIFY_ROUNDS: usize = 4;

/// One engine of a sender/receiver pair, behind the operations the harness needs.
trait Engine: Sized {
    fn create(row: &Row) -> Self;
    fn send(&mut self, message: &Bytes);
    fn waiting(&self) -> usize;
    /// `update(now)`, and moves every output datagram into `to`, unless `net` drops it.
    fn flush_to(&mut self, to: &mut Self, now: u32, net: &mut Net);
    /// Hands every whole received message to `sink`, in one or more parts whose
    /// concatenation is the message, the last one flagged `true`.
    fn recv_each(&mut self, sink: impl FnMut(&[u8], bool));
}

/// The link between the two engines: lossless, or dropping each datagram with a fixed
/// probability from a seeded generator.
struct Net {
    loss: Option<(SmallRng, f64)>,
    datagrams: u64,
    dropped: u64,
}

impl Net {
    fn new(loss: f64) -> Net {
        Net {
            loss: (loss > 0.0).then(|| (SmallRng::seed_from_u64(LOSS_SEED), loss)),
            datagrams: 0,
            dropped: 0,
        }
    }

    #[inline]
    fn lose(&mut self) -> bool {
        self.datagrams += 1;
        let lost = match &mut self.loss {
            Some((rng, p)) => rng.random_bool(*p),
            None => false,
        };
        self.dropped += u64::from(lost);
        lost
    }
}

// ---- nnet ----

struct Nnet {
    arq: Arq,
    /// Datagrams go through `update_with` and `input_slice` (lent, copied) rather than
    /// `poll_output` and `input_bytes` (shared handles).
    lend: bool,
    /// Messages come in more than one segment: taken with `recv_parts` (lent where
    /// their fragments lie) rather than `recv_with` (joined into one buffer first).
    in_parts: bool,
}

impl Nnet {
    /// Takes in datagrams `run` of `transmit` as one batch.
    fn input_run(&mut self, now: u32, transmit: &Transmit, run: Range<usize>) {
        let size = transmit.segment_size;
        let end = (run.end * size).min(transmit.contents.len());
        let batch = transmit.contents.slice(run.start * size..end);
        let report = self.arq.input_batch(now, batch, size);
        assert_eq!(report.refused, 0, "valid datagrams");
    }
}

impl Engine for Nnet {
    /// Messages of at most 64 bytes go in with `send_slice` and their datagrams are
    /// lent (`update_with` into `input_slice`): a small payload is copied inline anyway,
    /// so a handle would cost atomic operations for nothing. Larger ones go in as
    /// `Bytes` and their datagrams in runs (`poll_transmit` into `input_batch`), which
    /// the receiver keeps instead of copying the payloads. A
    /// message of one segment is lent whole (`recv_with`), one of several as its
    /// fragments (`recv_parts`, no join). This is what `Arq`'s docs recommend for each.
    fn create(row: &Row) -> Self {
        let window = row.window;
        let config = ArqConfig {
            send_window: window,
            recv_window: window,
            mtu: MTU,
            // The C engine is built with IKCP_FASTACK_CONSERVE and the `kcp` crate
            // behaves the same, so all three fast-retransmit alike.
            fastack_conserve: true,
            ..ArqConfig::fast()
        };
        Nnet {
            arq: Arq::new(CONV, &config).expect("valid config"),
            lend: row.message_size <= SMALL_MESSAGE,
            in_parts: row.message_size > MSS,
        }
    }

    #[inline]
    fn send(&mut self, message: &Bytes) {
        let queued = if message.len() <= SMALL_MESSAGE {
            self.arq.send_slice(message)
        } else {
            self.arq.send(message.clone())
        };
        queued.expect("send queue has room");
    }

    #[inline]
    fn waiting(&self) -> usize {
        self.arq.waiting_to_send()
    }

    #[inline]
    fn flush_to(&mut self, to: &mut Self, now: u32, net: &mut Net) {
        if self.lend {
            let to = &mut to.arq;
            self.arq.update_with(now, |datagram| {
                if !net.lose() {
                    to.input_slice(now, datagram).expect("valid datagram");
                }
            });
            return;
        }
        self.arq.update(now);
        while let Some(transmit) = self.arq.poll_transmit() {
            // Each run of datagrams that the network lets through goes in as one batch.
            let (size, count) = (transmit.segment_size, transmit.datagram_count());
            let mut run_start = 0;
            for i in 0..count {
                if net.lose() {
                    if i > run_start {
                        to.input_run(now, &transmit, run_start..i);
                    }
                    run_start = i + 1;
                }
            }
            if run_start == 0 {
                let report = to.arq.input_batch(now, transmit.contents, size);
                assert_eq!(report.refused, 0, "valid datagrams");
            } else if run_start < count {
                to.input_run(now, &transmit, run_start..count);
            }
        }
    }

    #[inline]
    fn recv_each(&mut self, mut sink: impl FnMut(&[u8], bool)) {
        if !self.in_parts {
            while self.arq.recv_with(|message| sink(message, true)).is_some() {}
            return;
        }
        let mut lend = |mut parts: MessageParts<'_>| {
            while let Some(part) = parts.next() {
                sink(part, parts.len() == 0);
            }
        };
        while self.arq.recv_parts(&mut lend).is_some() {}
    }
}

// ---- reference C KCP ----

struct CEngine {
    kcp: CKcp,
    buf: Vec<u8>,
}

impl Engine for CEngine {
    fn create(row: &Row) -> Self {
        let window = row.window;
        let config = CKcpConfig {
            send_window: u32::from(window),
            recv_window: u32::from(window),
            mtu: MTU as u32,
            ..CKcpConfig::fast()
        };
        CEngine {
            kcp: CKcp::new(CONV, &config).expect("valid config"),
            buf: vec![0; 64 * 1024],
        }
    }

    #[inline]
    fn send(&mut self, message: &Bytes) {
        self.kcp.send(message).expect("ikcp_send accepts");
    }

    #[inline]
    fn waiting(&self) -> usize {
        self.kcp.wait_send()
    }

    #[inline]
    fn flush_to(&mut self, to: &mut Self, now: u32, net: &mut Net) {
        let to = &mut to.kcp;
        self.kcp.update_with(now, |datagram| {
            if !net.lose() {
                to.input(datagram).expect("valid datagram");
            }
        });
    }

    #[inline]
    fn recv_each(&mut self, mut sink: impl FnMut(&[u8], bool)) {
        while let Ok(len) = self.kcp.recv_into(&mut self.buf) {
            sink(&self.buf[..len], true);
        }
    }
}

// ---- the `kcp` crate ----

/// Output datagrams back to back in one reused buffer.
#[derive(Default)]
struct OutQueue {
    bytes: Vec<u8>,
    datagrams: Vec<(usize, usize)>,
}

/// The `Write` the `kcp` crate's engine outputs to: one `write` per datagram.
struct QueueWriter(Rc<RefCell<OutQueue>>);

impl Write for QueueWriter {
    fn write(&mut self, datagram: &[u8]) -> io::Result<usize> {
        let mut queue = self.0.borrow_mut();
        let start = queue.bytes.len();
        queue.datagrams.push((start, datagram.len()));
        queue.bytes.extend_from_slice(datagram);
        Ok(datagram.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct KcpCrate {
    kcp: kcp::Kcp<QueueWriter>,
    out: Rc<RefCell<OutQueue>>,
    buf: Vec<u8>,
}

impl Engine for KcpCrate {
    fn create(row: &Row) -> Self {
        let window = row.window;
        let out = Rc::new(RefCell::new(OutQueue::default()));
        let mut kcp = kcp::Kcp::new(CONV, QueueWriter(Rc::clone(&out)));
        kcp.set_nodelay(true, 10, 2, true);
        kcp.set_wndsize(window, window);
        kcp.set_mtu(MTU).expect("valid mtu");
        KcpCrate {
            kcp,
            out,
            buf: vec![0; 64 * 1024],
        }
    }

    #[inline]
    fn send(&mut self, message: &Bytes) {
        self.kcp.send(message).expect("kcp send accepts");
    }

    #[inline]
    fn waiting(&self) -> usize {
        self.kcp.wait_snd()
    }

    #[inline]
    fn flush_to(&mut self, to: &mut Self, now: u32, net: &mut Net) {
        self.kcp.update(now).expect("kcp update");
        let mut queue = self.out.borrow_mut();
        for &(start, len) in &queue.datagrams {
            if !net.lose() {
                to.kcp
                    .input(&queue.bytes[start..start + len])
                    .expect("valid datagram");
            }
        }
        queue.datagrams.clear();
        queue.bytes.clear();
    }

    #[inline]
    fn recv_each(&mut self, mut sink: impl FnMut(&[u8], bool)) {
        while let Ok(len) = self.kcp.recv(&mut self.buf) {
            sink(&self.buf[..len], true);
        }
    }
}

// ---- harness ----

/// A sender and a receiver of one implementation on a virtual clock.
struct Pair<E> {
    tx: E,
    rx: E,
    net: Net,
    now: u32,
    steps: u64,
    /// Index of the next message to send (the sequence repeats cyclically).
    next_message: usize,
    /// Feed while queued + in-flight segments plus one message stay within this.
    feed_limit: usize,
    fragments: usize,
}

impl<E: Engine> Pair<E> {
    fn new(row: &Row) -> Pair<E> {
        Pair {
            tx: E::create(row),
            rx: E::create(row),
            net: Net::new(row.loss),
            now: 0,
            steps: 0,
            next_message: 0,
            feed_limit: 2 * usize::from(row.window),
            fragments: row.message_size.div_ceil(MSS),
        }
    }

    /// One step of the clock. Feeds the sender up to `send_until` messages in all.
    #[inline]
    fn step(&mut self, messages: &[Bytes], send_until: usize, sink: impl FnMut(&[u8], bool)) {
        while self.next_message < send_until
            && self.tx.waiting() + self.fragments <= self.feed_limit
        {
            self.tx.send(&messages[self.next_message % messages.len()]);
            self.next_message += 1;
        }
        self.tx.flush_to(&mut self.rx, self.now, &mut self.net);
        self.rx.recv_each(sink);
        self.rx.flush_to(&mut self.tx, self.now, &mut self.net);
        self.now = self.now.wrapping_add(STEP_MS);
        self.steps += 1;
    }

    /// Runs the clock, sending without end, until the receiver took `bytes` more
    /// payload bytes. Returns the bytes taken (at most one message more).
    fn transfer(&mut self, messages: &[Bytes], bytes: u64) -> u64 {
        let mut received = 0u64;
        let mut idle = 0;
        while received < bytes {
            let before = received;
            self.step(messages, usize::MAX, |part, _| {
                received += part.len() as u64
            });
            idle = if received == before { idle + 1 } else { 0 };
            assert!(idle < STALL_STEPS, "transfer stalled");
        }
        received
    }
}

/// One row of the table.
struct Row {
    name: &'static str,
    message_size: usize,
    window: u16,
    loss: f64,
    /// Payload bytes per iteration.
    bytes: u64,
}

/// The message sequence of a row: `bytes / message_size` distinct messages cut from
/// one random buffer.
fn messages(row: &Row) -> Vec<Bytes> {
    let count = (row.bytes as usize).div_ceil(row.message_size);
    let mut data = vec![0u8; count * row.message_size];
    SmallRng::seed_from_u64(row.message_size as u64).fill_bytes(&mut data);
    let data = Bytes::from(data);
    (0..count)
        .map(|i| data.slice(i * row.message_size..(i + 1) * row.message_size))
        .collect()
}

/// Transfers the row's message sequence [`VERIFY_ROUNDS`] times on a fresh pair and
/// asserts that every message arrived, in order and intact.
fn verify<E: Engine>(engine: &str, row: &Row, messages: &[Bytes]) {
    let mut pair = Pair::<E>::new(row);
    let count = VERIFY_ROUNDS * messages.len();
    let total: u64 = VERIFY_ROUNDS as u64 * messages.iter().map(|m| m.len() as u64).sum::<u64>();
    let mut received = 0u64;
    let mut index = 0usize;
    // Bytes of message `index` checked so far (it may come in parts).
    let mut offset = 0usize;
    let mut idle = 0;
    while received < total {
        let before = received;
        pair.step(messages, count, |part, last| {
            let expected = &messages[index % messages.len()];
            let end = offset + part.len();
            assert!(end <= expected.len(), "message {index} is too long");
            assert_eq!(part, &expected[offset..end], "message {index} differs");
            offset = end;
            if last {
                assert_eq!(offset, expected.len(), "message {index} is cut short");
                (index, offset) = (index + 1, 0);
            }
            received += part.len() as u64;
        });
        idle = if received == before { idle + 1 } else { 0 };
        assert!(idle < STALL_STEPS, "{engine} {}: stalled", row.name);
    }
    assert_eq!(received, total, "{engine} {}: bytes lost", row.name);
    assert_eq!(index, count);
    eprintln!(
        "verified {:<14} {:<9}: {} B in {} messages, {} steps, {} datagrams ({} dropped)",
        row.name, engine, received, index, pair.steps, pair.net.datagrams, pair.net.dropped,
    );
}

fn bench_engine<E: Engine>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    engine: &str,
    row: &Row,
    messages: &[Bytes],
) {
    let mut pair = Pair::<E>::new(row);
    group.bench_function(engine, |b| {
        b.iter(|| black_box(pair.transfer(messages, row.bytes)))
    });
}

fn rows() -> [Row; 4] {
    const LOSSLESS: u64 = 4 << 20;
    [
        Row {
            name: "lossless/64B",
            message_size: 64,
            window: 256,
            loss: 0.0,
            bytes: LOSSLESS,
        },
        Row {
            name: "lossless/1KiB",
            message_size: 1024,
            window: 256,
            loss: 0.0,
            bytes: LOSSLESS,
        },
        Row {
            name: "lossless/16KiB",
            message_size: 16 * 1024,
            window: 256,
            loss: 0.0,
            bytes: LOSSLESS,
        },
        Row {
            name: "loss20/1KiB",
            message_size: 1024,
            window: 4096,
            loss: 0.2,
            bytes: 2 << 20,
        },
    ]
}

fn throughput(c: &mut Criterion) {
    let rows = rows();
    let sequences: Vec<Vec<Bytes>> = rows.iter().map(messages).collect();
    for (row, messages) in rows.iter().zip(&sequences) {
        verify::<Nnet>("nnet", row, messages);
        verify::<KcpCrate>("kcp-crate", row, messages);
        verify::<CEngine>("c-kcp", row, messages);
    }
    for (row, messages) in rows.iter().zip(&sequences) {
        let mut group = c.benchmark_group(row.name);
        group
            .throughput(Throughput::Bytes(row.bytes))
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        bench_engine::<Nnet>(&mut group, "nnet", row, messages);
        bench_engine::<KcpCrate>(&mut group, "kcp-crate", row, messages);
        bench_engine::<CEngine>(&mut group, "c-kcp", row, messages);
        group.finish();
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);
