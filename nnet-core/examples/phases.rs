//! Where a bulk transfer's time goes, phase by phase, for nnet's engine and the C KCP:
//! the lossless rows of the throughput benchmark (`benches/throughput.rs`) cut into the
//! parts of a step, each timed with the wall clock, in nanoseconds per message.
//!
//! Run with `cargo run --release -p nnet-core --example phases -- [message bytes]`
//! (default 1024). Both engines run the benchmark's settings (fast mode, windows of 256,
//! MTU 1400) and its step: feed the sender, flush it into the receiver, take the
//! received messages, flush the receiver's ACKs into the sender. The C engine's output
//! callback calls the peer's input, so its flush and the peer's input are one phase;
//! nnet's are timed apart and summed for the comparison (when it lends datagrams, its
//! flush calls the peer's input too).
//!
//! The timings are wall-clock reads around whole phases of a step (a few per 256
//! messages): a profile of where the benchmark's time goes, not a benchmark.
//!
//! Instructions per message, exact and the same on every run (useful where the clock
//! is noisy): run the built example under callgrind, `valgrind --tool=callgrind
//! --callgrind-out-file=cg.out target/release/examples/phases 1024` (a minute), then
//! divide the inclusive counts of `phases::run_nnet` and `phases::run_c` that
//! `callgrind_annotate --inclusive=yes cg.out` lists by the message counts the example
//! prints last. Under valgrind, glibc copies with AVX2, not AVX-512, and the CPU says
//! it is an Intel, so the output's write-ahead prefetch runs whatever the real CPU.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nnet_ckcp::{CKcp, CKcpConfig};
use nnet_core::arq::{Arq, ArqConfig};

const CONV: u32 = 0x6e6e_6574;
const MTU: usize = 1400;
const WINDOW: u16 = 256;
const STEP_MS: u32 = 10;
/// Steps run before timing starts (the windows fill, the allocator settles).
const WARM_UP_STEPS: usize = 2_000;
/// Steps timed.
const TIMED_STEPS: usize = 18_000;
/// Payload bytes of distinct messages the sender cycles through (as the benchmark).
const MESSAGE_SET_BYTES: usize = 4 << 20;

/// Time spent in each phase of a step, and the messages the timed steps delivered.
struct Phases<const N: usize> {
    names: [&'static str; N],
    spent: [Duration; N],
    messages: u64,
    /// Messages delivered by every step, warm-up included.
    all_messages: u64,
}

impl<const N: usize> Phases<N> {
    fn new(names: [&'static str; N]) -> Self {
        Phases {
            names,
            spent: [Duration::ZERO; N],
            messages: 0,
            all_messages: 0,
        }
    }

    /// Adds the times between consecutive `marks` (one more mark than phases).
    fn add(&mut self, marks: &[Instant], messages: u64) {
        for (spent, pair) in self.spent.iter_mut().zip(marks.windows(2)) {
            *spent += pair[1] - pair[0];
        }
        self.messages += messages;
    }

    fn per_message(&self, phase: usize) -> f64 {
        self.spent[phase].as_nanos() as f64 / self.messages.max(1) as f64
    }

    fn total(&self) -> f64 {
        (0..N).map(|phase| self.per_message(phase)).sum()
    }
}

/// The benchmark's message sequence: distinct slices of one buffer.
fn messages(size: usize) -> Vec<Bytes> {
    let count = (MESSAGE_SET_BYTES / size).max(1);
    let data = Bytes::from((0..count * size).map(|i| i as u8).collect::<Vec<u8>>());
    (0..count)
        .map(|i| data.slice(i * size..(i + 1) * size))
        .collect()
}

/// Largest message nnet takes as a copy and whose datagrams it lends (as the benchmark).
const SMALL_MESSAGE: usize = 64;

/// Moves every output datagram of `from` into `to`, as the benchmark's nnet engine does:
/// lent (`update_with` into `input_slice`) when `lend`, else handed over in runs
/// (`update`, then `poll_transmit` into `input_batch`). Returns the instant between the
/// two when handed over (the flush's end), the end when lent (flush and input are one).
fn flush_into(from: &mut Arq, to: &mut Arq, now: u32, lend: bool) -> Instant {
    if lend {
        from.update_with(now, |datagram| {
            to.input_slice(now, datagram).expect("valid datagram");
        });
        return Instant::now();
    }
    from.update(now);
    let flushed = Instant::now();
    while let Some(transmit) = from.poll_transmit() {
        let report = to.input_batch(now, transmit.contents, transmit.segment_size);
        assert_eq!(report.refused, 0, "valid datagrams");
    }
    flushed
}

/// nnet, driven as the benchmark drives it: a message of at most 64 bytes goes in with
/// `send_slice` and its datagrams are lent, a larger one goes in as `Bytes` and its
/// datagrams are handed over in runs; received messages are lent where they lie
/// (`recv_with` for messages of one segment, `recv_parts` for larger ones).
#[inline(never)]
fn run_nnet(messages: &[Bytes], fragments: usize) -> Phases<6> {
    let config = ArqConfig {
        send_window: WINDOW,
        recv_window: WINDOW,
        mtu: MTU,
        fastack_conserve: true,
        ..ArqConfig::fast()
    };
    let mut tx = Arq::new(CONV, &config).expect("valid config");
    let mut rx = Arq::new(CONV, &config).expect("valid config");
    let mut phases = Phases::new([
        "send",
        "sender flush",
        "receiver input",
        "recv",
        "receiver flush (ACKs)",
        "sender input (ACKs)",
    ]);
    let lend = messages.first().is_some_and(|m| m.len() <= SMALL_MESSAGE);
    let (mut now, mut next) = (0, 0);
    for step in 0..WARM_UP_STEPS + TIMED_STEPS {
        let mut marks = [Instant::now(); 7];
        while tx.waiting_to_send() + fragments <= 2 * usize::from(WINDOW) {
            let message = &messages[next % messages.len()];
            let queued = if lend {
                tx.send_slice(message)
            } else {
                tx.send(message.clone())
            };
            queued.expect("send queue has room");
            next += 1;
        }
        marks[1] = Instant::now();
        marks[2] = flush_into(&mut tx, &mut rx, now, lend);
        marks[3] = Instant::now();
        let mut received = 0;
        if fragments == 1 {
            while rx.recv_with(|message| black_box(message.len())).is_some() {
                received += 1;
            }
        } else {
            while rx.recv_parts(|parts| black_box(parts.size())).is_some() {
                received += 1;
            }
        }
        marks[4] = Instant::now();
        marks[5] = flush_into(&mut rx, &mut tx, now, lend);
        marks[6] = Instant::now();
        phases.all_messages += received;
        if step >= WARM_UP_STEPS {
            phases.add(&marks, received);
        }
        now += STEP_MS;
    }
    phases
}

/// The C KCP: `ikcp_send` copies, the output callback calls the peer's `ikcp_input`,
/// `ikcp_recv` copies into a reused buffer (what the benchmark does).
#[inline(never)]
fn run_c(messages: &[Bytes], fragments: usize) -> Phases<4> {
    let config = CKcpConfig {
        send_window: u32::from(WINDOW),
        recv_window: u32::from(WINDOW),
        mtu: MTU as u32,
        ..CKcpConfig::fast()
    };
    let mut tx = CKcp::new(CONV, &config).expect("valid config");
    let mut rx = CKcp::new(CONV, &config).expect("valid config");
    let mut buffer = vec![0; 64 * 1024];
    let mut phases = Phases::new([
        "send",
        "sender flush + receiver input",
        "recv",
        "receiver flush + sender input (ACKs)",
    ]);
    let (mut now, mut next) = (0, 0);
    for step in 0..WARM_UP_STEPS + TIMED_STEPS {
        let mut marks = [Instant::now(); 5];
        while tx.wait_send() + fragments <= 2 * usize::from(WINDOW) {
            tx.send(&messages[next % messages.len()])
                .expect("ikcp_send accepts");
            next += 1;
        }
        marks[1] = Instant::now();
        tx.update_with(now, |datagram| rx.input(datagram).expect("valid datagram"));
        marks[2] = Instant::now();
        let mut received = 0;
        while let Ok(len) = rx.recv_into(&mut buffer) {
            black_box(len);
            received += 1;
        }
        marks[3] = Instant::now();
        rx.update_with(now, |datagram| tx.input(datagram).expect("valid datagram"));
        marks[4] = Instant::now();
        phases.all_messages += received;
        if step >= WARM_UP_STEPS {
            phases.add(&marks, received);
        }
        now += STEP_MS;
    }
    phases
}

/// Frees one large block, as the benchmark's setup does before it measures. glibc then
/// raises its trim threshold to that size; without it, every step of the C engine
/// (which allocates and frees a window of segments) gives memory back to the kernel and
/// takes it again, and it runs about 20 % slower than in the benchmark.
fn settle_allocator() {
    let block = vec![1u8; 16 << 20];
    black_box(&block);
}

fn main() {
    let size: usize = match std::env::args().nth(1) {
        Some(arg) => match arg.parse() {
            Ok(size) if size > 0 => size,
            _ => {
                eprintln!("usage: phases [message bytes, at least 1]");
                std::process::exit(2);
            }
        },
        None => 1024,
    };
    settle_allocator();
    let messages = messages(size);
    let fragments = size.div_ceil(MTU - 24);
    let c = run_c(&messages, fragments);
    let nnet = run_nnet(&messages, fragments);

    println!("{size}-byte messages, ns per message (nnet | C KCP, C / nnet)");
    let rows = [
        ("send", nnet.per_message(0), c.per_message(0)),
        (
            "flush + peer's input",
            nnet.per_message(1) + nnet.per_message(2),
            c.per_message(1),
        ),
        ("recv", nnet.per_message(3), c.per_message(2)),
        (
            "ACKs: flush + input",
            nnet.per_message(4) + nnet.per_message(5),
            c.per_message(3),
        ),
        ("total", nnet.total(), c.total()),
    ];
    for (name, ours, theirs) in rows {
        println!(
            "  {name:22} {ours:7.1} | {theirs:7.1}  {:5.2}x",
            theirs / ours
        );
    }
    println!("nnet's phases apart (a lent datagram's input counts in its flush):");
    for (phase, name) in nnet.names.iter().enumerate() {
        println!("  {name:22} {:7.1}", nnet.per_message(phase));
    }
    println!(
        "messages, warm-up included (to divide instruction counts by): nnet {}, C KCP {}",
        nnet.all_messages, c.all_messages
    );
    let gib = |ns: f64| size as f64 / ns / 1.073_741_824;
    println!(
        "throughput: nnet {:.2} GiB/s, C KCP {:.2} GiB/s",
        gib(nnet.total()),
        gib(c.total())
    );
}
