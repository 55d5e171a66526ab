//! nnet's engine and the reference C KCP fed the same inputs at the same times must emit
//! the same datagrams, byte for byte, and deliver the same messages.
//!
//! Two twins (nnet `Arq` and C `ikcp`) run with the same settings; a third engine (C)
//! talks to them over lossy links. Everything the twins receive is the same, so any
//! difference in what they emit is a difference of algorithm. The `kcp-io` build of
//! ikcp.c defines `IKCP_FASTACK_CONSERVE`, so the nnet twin runs with
//! `fastack_conserve` on.

mod support;

use bytes::Bytes;
use nnet_ckcp::CKcp;
use nnet_core::arq::{Arq, ArqConfig};
use nnet_core::wire::{Cmd, Datagram};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::{c_config, message, Engine, Faults, Link};

const CONV: u32 = 0x00c0_ffee;

struct Run {
    config: ArqConfig,
    faults: Faults,
    seed: u64,
    /// Simulated duration, ms.
    duration_ms: u32,
    /// Largest message.
    max_size: usize,
    /// Start of the clock (to cross the u32 wrap).
    start_ms: u32,
}

/// Runs the twins; returns (datagrams compared, messages delivered to the twins).
fn lockstep(run: Run) -> (usize, usize) {
    let config = ArqConfig {
        fastack_conserve: true,
        ..run.config
    };
    let mut twin = Arq::new(CONV, &config).expect("valid config");
    let mut reference = CKcp::new(CONV, &c_config(&config)).expect("C engine");
    let mut peer = CKcp::new(CONV, &c_config(&config)).expect("C engine");
    let mut to_peer = Link::new(run.faults, run.seed);
    let mut to_twins = Link::new(run.faults, run.seed.wrapping_mul(31));
    let mut rng = SmallRng::seed_from_u64(run.seed);

    let (mut compared, mut delivered) = (0usize, 0usize);
    let (mut twin_out, mut reference_out, mut peer_out) = (Vec::new(), Vec::new(), Vec::new());
    let mut sent = 0u64;
    let mut twin_paused_until = 0;
    let mut peer_paused_until = 0;
    let mut t = 0u32;
    let mut probes = (0, 0);
    while t < run.duration_ms {
        let now = run.start_ms.wrapping_add(t);
        // The application side: both twins get the same messages.
        if twin.waiting_to_send() < 600 && rng.random_bool(0.3) {
            let data = message(sent, rng.random_range(0..=run.max_size));
            sent += 1;
            let accepted = twin.send(Bytes::from(data.clone())).is_ok();
            assert_eq!(
                accepted,
                reference.send(&data).is_ok(),
                "send acceptance differs"
            );
        }
        if peer.wait_send() < 300 && rng.random_bool(0.1) {
            let size = rng.random_range(1..=run.max_size);
            peer.send(&message(u64::MAX - sent, size))
                .expect("peer send");
        }
        // Sometimes an application stops reading, so windows fill and probes go out.
        if t >= twin_paused_until && rng.random_bool(0.0005) {
            twin_paused_until = t + rng.random_range(1_000..20_000);
        }
        if t >= peer_paused_until && rng.random_bool(0.0005) {
            peer_paused_until = t + rng.random_range(1_000..20_000);
        }

        twin.update(now);
        reference.update(now);
        peer.update(now);
        for datagram in to_twins.deliver(t) {
            let ours = twin.input_bytes(now, Bytes::from(datagram.clone()));
            let theirs = reference.input(&datagram);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "input acceptance differs");
        }
        for datagram in to_peer.deliver(t) {
            let _ = peer.input(&datagram);
        }
        if t >= twin_paused_until {
            loop {
                let ours = twin.recv();
                let theirs = reference.recv();
                assert_eq!(
                    ours.as_deref(),
                    theirs.as_deref(),
                    "t={t}: delivery differs"
                );
                if ours.is_none() {
                    break;
                }
                delivered += 1;
            }
        }
        if t >= peer_paused_until {
            while peer.recv().is_some() {}
        }

        twin_out.clear();
        reference_out.clear();
        peer_out.clear();
        twin.take_output(&mut twin_out);
        reference.take_output(&mut reference_out);
        peer.take_output(&mut peer_out);
        assert_eq!(
            twin_out,
            reference_out,
            "t={t}: output differs (cwnd {} vs {}, rto {} vs {})",
            twin.cwnd(),
            reference.raw().cwnd,
            twin.rto_ms(),
            reference.raw().rx_rto
        );
        assert_eq!(twin.cwnd(), reference.raw().cwnd, "t={t}: cwnd");
        assert_eq!(twin.rto_ms() as i32, reference.raw().rx_rto, "t={t}: rto");
        assert_eq!(
            twin.waiting_to_send(),
            reference.wait_send(),
            "t={t}: waitsnd"
        );
        // ikcp_check may name an earlier time (a segment's resend time) at which
        // ikcp_update would do nothing; nnet's O(1) check names the next flush.
        let (ours, theirs) = (twin.check(now), reference.check(now));
        assert!(
            ours.wrapping_sub(theirs) as i32 >= 0,
            "t={t}: check later than needed"
        );
        assert!(
            ours.wrapping_sub(now) <= config.interval_ms,
            "t={t}: check too far"
        );
        compared += twin_out.len();
        for datagram in &twin_out {
            let parsed = Datagram::parse(Bytes::from(datagram.clone())).expect("valid output");
            for segment in parsed.segments() {
                match segment.header.cmd {
                    Cmd::Wask => probes.0 += 1,
                    Cmd::Wins => probes.1 += 1,
                    _ => {}
                }
            }
        }
        for datagram in twin_out.drain(..) {
            to_peer.send(t, datagram);
        }
        for datagram in peer_out.drain(..) {
            to_twins.send(t, datagram);
        }
        t += rng.random_range(1..=7);
    }
    assert!(
        compared > 1_000,
        "too little traffic to compare: {compared}"
    );
    if run.duration_ms >= 120_000 {
        assert!(
            probes.0 > 0 && probes.1 > 0,
            "no window probing exercised: {probes:?}"
        );
    }
    eprintln!("window probes (WASK, WINS): {probes:?}");
    (compared, delivered)
}

fn lossy() -> Faults {
    Faults {
        loss: 0.1,
        duplicate: 0.03,
        reorder: 0.1,
        latency_ms: 25,
        jitter_ms: 40,
    }
}

#[test]
fn normal_mode_with_congestion_window() {
    let (compared, delivered) = lockstep(Run {
        config: ArqConfig::default(),
        faults: lossy(),
        seed: 1,
        duration_ms: 120_000,
        max_size: 6_000,
        start_ms: 0,
    });
    eprintln!("compared {compared} datagrams, {delivered} messages");
}

#[test]
fn fast_mode_large_window() {
    let (compared, delivered) = lockstep(Run {
        config: ArqConfig {
            send_window: 256,
            recv_window: 256,
            ..ArqConfig::fast()
        },
        faults: lossy(),
        seed: 2,
        duration_ms: 120_000,
        max_size: 20_000,
        start_ms: 0,
    });
    eprintln!("compared {compared} datagrams, {delivered} messages");
}

#[test]
fn nodelay_two_with_congestion_and_fast_limit() {
    let (compared, _) = lockstep(Run {
        config: ArqConfig {
            nodelay: 2,
            interval_ms: 20,
            fast_resend: 3,
            congestion_control: true,
            ..ArqConfig::default()
        },
        faults: Faults {
            loss: 0.2,
            ..lossy()
        },
        seed: 3,
        duration_ms: 120_000,
        max_size: 3_000,
        start_ms: 0,
    });
    eprintln!("compared {compared} datagrams");
}

#[test]
fn stream_mode_small_mtu() {
    let (compared, _) = lockstep(Run {
        config: ArqConfig {
            stream: true,
            mtu: 200,
            max_message_size: 20_000,
            ..ArqConfig::fast()
        },
        faults: lossy(),
        seed: 4,
        duration_ms: 60_000,
        max_size: 1_000,
        start_ms: 0,
    });
    eprintln!("compared {compared} datagrams");
}

#[test]
fn clock_wraps_around() {
    let (compared, _) = lockstep(Run {
        config: ArqConfig::fast(),
        faults: lossy(),
        seed: 5,
        duration_ms: 60_000,
        max_size: 4_000,
        start_ms: u32::MAX - 30_000,
    });
    eprintln!("compared {compared} datagrams");
}

#[test]
fn dead_link_is_declared_at_the_same_time() {
    let config = ArqConfig {
        dead_link: 5,
        ..ArqConfig::fast()
    };
    let mut twin = Arq::new(CONV, &config).expect("valid config");
    let mut reference = CKcp::new(CONV, &c_config(&config)).expect("C engine");
    twin.send(Bytes::from_static(b"into the void"))
        .expect("send");
    reference.send(b"into the void").expect("send");
    let mut now = 0;
    while !twin.is_dead() {
        assert!(now < 60_000, "never declared dead");
        twin.update(now);
        reference.update(now);
        assert_eq!(twin.is_dead(), reference.is_dead(), "t={now}");
        while twin.poll_output().is_some() {}
        reference.drain_output(|_| {});
        now += 10;
    }
    assert!(reference.is_dead());
}
