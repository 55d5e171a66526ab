//! nnet's engine and the reference C KCP (ikcp.c via kcp-io) talking to each other in
//! memory, both directions at once, over seeded lossy links.

mod support;

use nnet_ckcp::CKcp;
use nnet_core::arq::{Arq, ArqConfig};
use support::{c_config, sizes, transfer_both_ways, Faults};

const CONV: u32 = 0x1234_5678;

fn pair(config: &ArqConfig) -> (Arq, CKcp) {
    let nnet = Arq::new(CONV, config).expect("valid config");
    let c = CKcp::new(CONV, &c_config(config)).expect("C engine");
    (nnet, c)
}

fn rough_network() -> Faults {
    Faults {
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.2,
        latency_ms: 20,
        jitter_ms: 30,
    }
}

#[test]
fn fast_mode_over_loss_duplication_and_reordering() {
    let config = ArqConfig {
        send_window: 128,
        ..ArqConfig::fast()
    };
    let (mut nnet, mut c) = pair(&config);
    let sizes = sizes(10_000, 8_000, 1);
    let ms = transfer_both_ways(&mut nnet, &mut c, &sizes, rough_network(), 11, 600_000);
    eprintln!("finished in {ms} ms of simulated time");
}

#[test]
fn normal_mode_with_congestion_control() {
    let config = ArqConfig {
        send_window: 64,
        ..ArqConfig::default()
    };
    let (mut nnet, mut c) = pair(&config);
    let sizes = sizes(10_000, 4_000, 2);
    let faults = Faults {
        loss: 0.05,
        ..rough_network()
    };
    let ms = transfer_both_ways(&mut nnet, &mut c, &sizes, faults, 22, 3_000_000);
    eprintln!("finished in {ms} ms of simulated time");
}

#[test]
fn c_side_first_then_nnet_side_first() {
    // Same run with the roles swapped: the C engine as `a`.
    let config = ArqConfig {
        send_window: 128,
        nodelay: 2,
        ..ArqConfig::fast()
    };
    let (mut nnet, mut c) = pair(&config);
    let sizes = sizes(10_000, 3_000, 3);
    let ms = transfer_both_ways(&mut c, &mut nnet, &sizes, rough_network(), 33, 600_000);
    eprintln!("finished in {ms} ms of simulated time");
}

#[test]
fn nnet_loss_settings_with_a_plain_c_peer() {
    // Time-based loss detection and repeated ACKs are policies of one side: a C peer
    // sees ordinary PUSH and ACK segments.
    let config = ArqConfig {
        send_window: 128,
        recent_ack: true,
        ack_repeat: true,
        ..ArqConfig::fast()
    };
    let (mut nnet, mut c) = pair(&config);
    let sizes = sizes(10_000, 8_000, 4);
    let ms = transfer_both_ways(&mut nnet, &mut c, &sizes, rough_network(), 44, 600_000);
    eprintln!("finished in {ms} ms of simulated time");
}
