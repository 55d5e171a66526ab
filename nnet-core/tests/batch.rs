//! `Endpoint::handle_datagrams` gives exactly what `handle_datagram` gives for each
//! datagram in turn: the same transmits, events, timers and counters, on a mixed
//! stream of hellos, data, ACKs, PINGs, FINs, garbage, stale convs and wrong sources.

mod net;

use net::{header, hello, segment};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nnet_core::config::{EndpointConfig, SessionConfig};
use nnet_core::endpoint::{Endpoint, PREFETCH_BATCH};
use nnet_core::event::ServerEvent;
use nnet_core::transmit::Transmit;
use nnet_core::wire::{self, Cmd, FinReason};

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn source(i: u64, port: u16) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8)),
        port,
    )
}

/// One random datagram of the stream: mostly well-formed traffic of 200 clients.
fn datagram(rng: &mut Rng, next_sn: &mut [u32], ts: u32) -> (SocketAddr, Bytes) {
    let i = rng.below(next_sn.len() as u64);
    let conv = i as u32 + 1;
    let from = source(i, 4000);
    let sn = next_sn[i as usize];
    match rng.below(20) {
        0..=2 => (from, hello(conv, ts)),
        3..=9 => {
            next_sn[i as usize] += 1;
            let payload = vec![i as u8; rng.below(40) as usize];
            (
                from,
                segment(header(conv, Cmd::Push, sn, 0, ts), &[], &payload),
            )
        }
        10..=11 => (from, segment(header(conv, Cmd::Ack, 0, 1, ts), &[], &[])),
        12..=13 => (from, wire::ping(conv, ts, 9)),
        14 => (from, wire::fin(conv, FinReason::Normal)),
        15 => (
            source(i, 4001),
            segment(header(conv, Cmd::Push, sn, 0, ts), &[], b"x"),
        ),
        16 => (from, Bytes::from(vec![0x5a; rng.below(30) as usize])),
        17 => (
            from,
            segment(header(conv + 5000, Cmd::Push, 3, 1, ts), &[], b"stale"),
        ),
        _ => (from, segment(header(conv, Cmd::Wask, 0, 0, ts), &[], &[])),
    }
}

/// Everything the endpoint hands out after a step, in order.
#[derive(Debug, PartialEq)]
struct Outputs {
    events: Vec<ServerEvent>,
    transmits: Vec<Transmit>,
    next_timeout: Option<Instant>,
}

fn drain(server: &mut Endpoint) -> Outputs {
    let events = std::iter::from_fn(|| server.poll_event()).collect();
    let transmits = std::iter::from_fn(|| server.poll_transmit()).collect();
    Outputs {
        events,
        transmits,
        next_timeout: server.poll_timeout(),
    }
}

#[test]
fn a_batch_is_the_same_as_its_datagrams_one_by_one() {
    let config = EndpointConfig {
        session: SessionConfig::fast(),
        max_unconfirmed: 150,
        seed: 42,
        ..EndpointConfig::default()
    };
    let start = Instant::now();
    let mut one_by_one = Endpoint::new(config.clone(), start).expect("config");
    let mut batched = Endpoint::new(config, start).expect("config");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut next_sn = vec![0u32; 200];
    let mut now = start;
    // Batches of every size around the prefetch batch, and empty ones.
    for step in 0..400u64 {
        let len = (step as usize * 7) % (3 * PREFETCH_BATCH + 2);
        let ts = (now - start).as_millis() as u32;
        let datagrams: Vec<_> = (0..len)
            .map(|_| datagram(&mut rng, &mut next_sn, ts))
            .collect();
        for (from, payload) in datagrams.clone() {
            one_by_one.handle_datagram(now, from, payload);
        }
        batched.handle_datagrams(now, datagrams);
        assert_eq!(drain(&mut one_by_one), drain(&mut batched), "step {step}");
        now += Duration::from_millis(rng.below(25));
        one_by_one.handle_timeout(now);
        batched.handle_timeout(now);
        assert_eq!(drain(&mut one_by_one), drain(&mut batched), "step {step}");
        assert_eq!(one_by_one.stats(), batched.stats());
    }
    let stats = one_by_one.stats();
    assert!(stats.sessions_accepted > 100 && stats.sessions_closed > 10);
    assert!(stats.pongs > 100 && stats.drops.malformed > 10 && stats.drops.stale > 10);
    assert_eq!(one_by_one.len(), batched.len());
}
