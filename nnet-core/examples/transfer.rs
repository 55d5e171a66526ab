//! An in-memory transfer through nnet's KCP engine, against itself and against the
//! reference C KCP, over a simulated link with 10% loss each way and 30 ms latency.
//!
//! Run with `cargo run --release -p nnet-core --example transfer`. (This becomes
//! `nnet demo` once the command-line tool exists.)

use std::collections::BTreeMap;

use bytes::Bytes;
use nnet_ckcp::{CKcp, CKcpConfig};
use nnet_core::arq::{Arq, ArqConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const CONV: u32 = 0x6e6e_6574;
const MESSAGES: usize = 2_000;
const LOSS: f64 = 0.1;
const LATENCY_MS: u32 = 30;

/// One end of the transfer: nnet or the C reference.
enum Peer {
    Nnet(Box<Arq>),
    C(Box<CKcp>),
}

impl Peer {
    fn send(&mut self, message: &[u8]) {
        match self {
            Peer::Nnet(arq) => arq.send(Bytes::copy_from_slice(message)).expect("queued"),
            Peer::C(kcp) => {
                kcp.send(message).expect("queued");
            }
        }
    }
    fn recv(&mut self) -> Option<Vec<u8>> {
        match self {
            Peer::Nnet(arq) => arq.recv().map(|m| m.to_vec()),
            Peer::C(kcp) => kcp.recv(),
        }
    }
    fn input(&mut self, now: u32, datagram: Vec<u8>) {
        match self {
            Peer::Nnet(arq) => {
                let _ = arq.input_bytes(now, Bytes::from(datagram));
            }
            Peer::C(kcp) => {
                let _ = kcp.input(&datagram);
            }
        }
    }
    fn update(&mut self, now: u32, out: &mut Vec<Vec<u8>>) {
        match self {
            Peer::Nnet(arq) => {
                arq.update(now);
                while let Some(d) = arq.poll_output() {
                    out.push(d.to_vec());
                }
            }
            Peer::C(kcp) => {
                kcp.update(now);
                kcp.drain_output(|d| out.push(d.to_vec()));
            }
        }
    }
}

/// Sends MESSAGES messages from `sender` to `receiver`; returns simulated ms taken and
/// datagrams lost.
fn run(mut sender: Peer, mut receiver: Peer, seed: u64) -> (u32, u32) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut in_flight: BTreeMap<(u32, u64), (bool, Vec<u8>)> = BTreeMap::new();
    let (mut order, mut lost) = (0u64, 0u32);
    for i in 0..MESSAGES {
        sender.send(format!("message {i:05} {}", "x".repeat(i % 700)).as_bytes());
    }
    let mut received = 0;
    let mut out = Vec::new();
    for now in 0.. {
        let later = in_flight.split_off(&(now + 1, 0));
        for ((_, _), (to_receiver, datagram)) in std::mem::replace(&mut in_flight, later) {
            if to_receiver {
                receiver.input(now, datagram);
            } else {
                sender.input(now, datagram);
            }
        }
        while let Some(message) = receiver.recv() {
            let expected = format!("message {received:05} {}", "x".repeat(received % 700));
            assert_eq!(message, expected.as_bytes(), "delivered in order, intact");
            received += 1;
        }
        if received == MESSAGES {
            return (now, lost);
        }
        for (to_receiver, peer) in [(true, &mut sender), (false, &mut receiver)] {
            peer.update(now, &mut out);
            for datagram in out.drain(..) {
                if rng.random_bool(LOSS) {
                    lost += 1;
                } else {
                    order += 1;
                    in_flight.insert((now + LATENCY_MS, order), (to_receiver, datagram));
                }
            }
        }
    }
    unreachable!("the loop returns when every message arrived")
}

fn main() {
    let nnet = || {
        let config = ArqConfig {
            send_window: 128,
            ..ArqConfig::fast()
        };
        Peer::Nnet(Box::new(Arq::new(CONV, &config).expect("valid config")))
    };
    let c = || {
        let config = CKcpConfig {
            send_window: 128,
            ..CKcpConfig::fast()
        };
        Peer::C(Box::new(CKcp::new(CONV, &config).expect("C engine")))
    };
    println!(
        "{MESSAGES} messages, {}% loss each way, {LATENCY_MS} ms latency, fast mode",
        LOSS * 100.0
    );
    for (name, sender, receiver) in [
        ("nnet -> nnet", nnet(), nnet()),
        ("nnet -> C KCP", nnet(), c()),
        ("C KCP -> nnet", c(), nnet()),
        ("C KCP -> C KCP", c(), c()),
    ] {
        let (ms, lost) = run(sender, receiver, 7);
        println!("{name:>15}: all delivered in order in {ms} ms of simulated time ({lost} datagrams lost)");
    }
}
