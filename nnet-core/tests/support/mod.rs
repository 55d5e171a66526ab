//! Test support shared by the integration tests (and included by the benchmarks): one
//! trait over nnet's engine and the reference C KCP, a seeded lossy in-memory link, and
//! checkable messages.

#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::Bytes;
use nnet_ckcp::{CKcp, CKcpConfig};
use nnet_core::arq::{Arq, ArqConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What a test needs from a KCP engine, whichever implementation it is.
pub trait Engine {
    /// Queues a message; `false` if refused.
    fn send_message(&mut self, message: &[u8]) -> bool;
    /// Next whole message.
    fn recv_message(&mut self) -> Option<Vec<u8>>;
    /// Feeds a datagram.
    fn input_datagram(&mut self, now_ms: u32, datagram: &[u8]);
    /// Advances time.
    fn tick(&mut self, now_ms: u32);
    /// Takes every datagram waiting to be sent.
    fn take_output(&mut self, out: &mut Vec<Vec<u8>>);
    /// Segments queued or unacknowledged.
    fn waiting(&self) -> usize;
}

impl Engine for Arq {
    fn send_message(&mut self, message: &[u8]) -> bool {
        self.send(Bytes::copy_from_slice(message)).is_ok()
    }
    fn recv_message(&mut self) -> Option<Vec<u8>> {
        self.recv().map(|m| m.to_vec())
    }
    fn input_datagram(&mut self, now_ms: u32, datagram: &[u8]) {
        let _ = self.input_bytes(now_ms, Bytes::copy_from_slice(datagram));
    }
    fn tick(&mut self, now_ms: u32) {
        self.update(now_ms);
    }
    fn take_output(&mut self, out: &mut Vec<Vec<u8>>) {
        while let Some(datagram) = self.poll_output() {
            out.push(datagram.to_vec());
        }
    }
    fn waiting(&self) -> usize {
        self.waiting_to_send()
    }
}

impl Engine for CKcp {
    fn send_message(&mut self, message: &[u8]) -> bool {
        self.send(message).is_ok()
    }
    fn recv_message(&mut self) -> Option<Vec<u8>> {
        self.recv()
    }
    fn input_datagram(&mut self, _now_ms: u32, datagram: &[u8]) {
        let _ = self.input(datagram);
    }
    fn tick(&mut self, now_ms: u32) {
        self.update(now_ms);
    }
    fn take_output(&mut self, out: &mut Vec<Vec<u8>>) {
        self.drain_output(|d| out.push(d.to_vec()));
    }
    fn waiting(&self) -> usize {
        self.wait_send()
    }
}

/// The C settings equivalent to an nnet config (same wire behaviour).
pub fn c_config(config: &ArqConfig) -> CKcpConfig {
    CKcpConfig {
        mtu: config.mtu as u32,
        send_window: u32::from(config.send_window),
        recv_window: u32::from(config.recv_window),
        nodelay: u32::from(config.nodelay),
        interval: config.interval_ms,
        resend: config.fast_resend,
        no_cwnd: !config.congestion_control,
        stream: config.stream,
        dead_link: config.dead_link,
        ..CKcpConfig::default()
    }
}

/// Faults of a [`Link`], as probabilities per datagram.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Dropped.
    pub loss: f64,
    /// Delivered twice.
    pub duplicate: f64,
    /// Delayed by up to `jitter_ms` more, so later datagrams overtake it.
    pub reorder: f64,
    /// One-way latency, ms.
    pub latency_ms: u32,
    /// Extra delay of a reordered datagram, ms.
    pub jitter_ms: u32,
}

/// One direction of an in-memory network: seeded, so a run replays exactly.
pub struct Link {
    faults: Faults,
    rng: SmallRng,
    in_transit: BTreeMap<(u32, u64), Vec<u8>>,
    order: u64,
    /// Datagrams dropped so far.
    pub dropped: u64,
}

impl Link {
    pub fn new(faults: Faults, seed: u64) -> Self {
        Link {
            faults,
            rng: SmallRng::seed_from_u64(seed),
            in_transit: BTreeMap::new(),
            order: 0,
            dropped: 0,
        }
    }

    /// Sends `datagram` at `now_ms` (the clock starts at 0 in these tests).
    pub fn send(&mut self, now_ms: u32, datagram: Vec<u8>) {
        if self.rng.random_bool(self.faults.loss) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.random_bool(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = now_ms + self.faults.latency_ms;
            if self.faults.jitter_ms > 0 && self.rng.random_bool(self.faults.reorder) {
                at += self.rng.random_range(1..=self.faults.jitter_ms);
            }
            self.order += 1;
            self.in_transit.insert((at, self.order), datagram.clone());
        }
    }

    /// Datagrams due by `now_ms`, in arrival order.
    pub fn deliver(&mut self, now_ms: u32) -> Vec<Vec<u8>> {
        let later = self.in_transit.split_off(&(now_ms + 1, 0));
        let due = std::mem::replace(&mut self.in_transit, later);
        due.into_values().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.in_transit.is_empty()
    }
}

/// Message `index` of a run: its size comes from `sizes`, its bytes from the index, so
/// the receiver can check it without keeping a copy.
pub fn message(index: u64, size: usize) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(index ^ 0x9e37_79b9_7f4a_7c15);
    let mut bytes = vec![0u8; size];
    rng.fill(&mut bytes[..]);
    bytes
}

/// Random message sizes from 1 to `max`, mostly small, some multi-fragment.
pub fn sizes(count: usize, max: usize, seed: u64) -> Vec<usize> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            if rng.random_bool(0.8) {
                rng.random_range(1..=max.min(1200))
            } else {
                rng.random_range(1..=max)
            }
        })
        .collect()
}

/// Sends `sizes.len()` messages from `a` to `b` and the same number from `b` to `a`
/// over two lossy links, until every message arrived or `deadline_ms` passes. Returns
/// the time it took. Panics (failing the test) on a lost, duplicated, reordered or
/// corrupted message.
pub fn transfer_both_ways(
    a: &mut dyn Engine,
    b: &mut dyn Engine,
    sizes: &[usize],
    faults: Faults,
    seed: u64,
    deadline_ms: u32,
) -> u32 {
    let mut a_to_b = Link::new(faults, seed);
    let mut b_to_a = Link::new(faults, seed ^ 0xdead_beef);
    let (mut sent_a, mut sent_b) = (0usize, 0usize);
    let (mut got_a, mut got_b) = (0usize, 0usize);
    let mut out = Vec::new();
    let mut now = 0u32;
    while got_a < sizes.len() || got_b < sizes.len() {
        assert!(
            now < deadline_ms,
            "transfer unfinished after {deadline_ms} ms: b got {got_b}, a got {got_a} of {}",
            sizes.len()
        );
        // Keep each sender's queue fed without overfilling it.
        while sent_a < sizes.len() && a.waiting() < 256 {
            assert!(a.send_message(&message(sent_a as u64, sizes[sent_a])));
            sent_a += 1;
        }
        while sent_b < sizes.len() && b.waiting() < 256 {
            let index = (sent_b + sizes.len()) as u64;
            assert!(b.send_message(&message(index, sizes[sent_b])));
            sent_b += 1;
        }
        for datagram in a_to_b.deliver(now) {
            b.input_datagram(now, &datagram);
        }
        for datagram in b_to_a.deliver(now) {
            a.input_datagram(now, &datagram);
        }
        while let Some(m) = b.recv_message() {
            assert!(got_b < sizes.len(), "b got more messages than were sent");
            assert_eq!(m, message(got_b as u64, sizes[got_b]), "b: message {got_b}");
            got_b += 1;
        }
        while let Some(m) = a.recv_message() {
            assert!(got_a < sizes.len(), "a got more messages than were sent");
            let index = (got_a + sizes.len()) as u64;
            assert_eq!(m, message(index, sizes[got_a]), "a: message {got_a}");
            got_a += 1;
        }
        a.tick(now);
        b.tick(now);
        out.clear();
        a.take_output(&mut out);
        for datagram in out.drain(..) {
            a_to_b.send(now, datagram);
        }
        b.take_output(&mut out);
        for datagram in out.drain(..) {
            b_to_a.send(now, datagram);
        }
        now += 1;
    }
    now
}
