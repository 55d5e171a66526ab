//! Arbitrary datagrams, sends and time steps into a pair of ARQ engines: no panic, and
//! the engine's invariants hold after every step (output within the MTU and valid,
//! queue within its limit, next deadline within one interval, delivered messages within
//! what the window can hold). Raw datagrams go in one by one or as batches of any
//! segment size; the peer's output goes out in runs (`poll_transmit`) and in as batches.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use nnet_core::arq::{Arq, ArqConfig, Transmit, MAX_TRANSMIT_BYTES, MAX_TRANSMIT_DATAGRAMS};
use nnet_core::wire::Datagram;

const CONV: u32 = 0x0102_0304;

fuzz_target!(|data: &[u8]| {
    let config = ArqConfig {
        max_send_queue: 256,
        announce_room: data.first().is_some_and(|b| b & 2 == 2),
        max_message_size: 8 * 1024,
        recent_ack: data.first().is_some_and(|b| b & 4 == 4),
        ack_repeat: data.first().is_some_and(|b| b & 8 == 8),
        ..if data.first().is_some_and(|b| b & 1 == 1) {
            ArqConfig::fast()
        } else {
            ArqConfig::default()
        }
    };
    let (Ok(mut engine), Ok(mut peer)) = (Arq::new(CONV, &config), Arq::new(CONV, &config)) else {
        return;
    };
    let largest_message = usize::from(config.recv_window) * config.mss();
    let mut now: u32 = u32::MAX - 5_000;
    let mut to_engine: Vec<Transmit> = Vec::new();
    let mut to_peer: Vec<Bytes> = Vec::new();
    let mut ops = data.iter().skip(1).copied();
    while let Some(op) = ops.next() {
        match op % 8 {
            // A raw datagram, or one forced to the engine's conv.
            0 | 1 => {
                let len = usize::from(ops.next().unwrap_or(0));
                let mut bytes: Vec<u8> = ops.by_ref().take(len).collect();
                if op % 8 == 1 && bytes.len() >= 4 {
                    bytes[..4].copy_from_slice(&CONV.to_le_bytes());
                }
                let before = engine.waiting_to_send();
                let refused = if op & 0x10 != 0 {
                    let segment_size = usize::from(ops.next().unwrap_or(0));
                    let report = engine.input_batch(now, Bytes::from(bytes), segment_size);
                    report.accepted == 0
                } else {
                    engine.input_bytes(now, Bytes::from(bytes)).is_err()
                };
                if refused {
                    assert_eq!(
                        engine.waiting_to_send(),
                        before,
                        "refused input changed state"
                    );
                }
            }
            2 => {
                now = now.wrapping_add(u32::from(ops.next().unwrap_or(0)) * 4);
                engine.update(now);
                peer.update(now);
            }
            // Messages of any size, shared or copied (copies of at most 64 bytes are
            // held inline).
            3 => {
                let size = ops.next().unwrap_or(0);
                let len = match size & 1 {
                    0 => usize::from(size) * 40,
                    _ => usize::from(size) / 2,
                };
                let _ = engine.send(Bytes::from(vec![op; len]));
                let _ = peer.send_slice(&vec![op; len / 2]);
            }
            4 => {
                while let Some(message) = engine.recv() {
                    assert!(message.len() <= largest_message);
                }
                while let Some(len) = peer.recv_with(|message| message.len()) {
                    assert!(len <= largest_message);
                }
            }
            5 => engine.flush(now),
            6 => {
                for transmit in to_engine.drain(..) {
                    let report = engine.input_batch(now, transmit.contents, transmit.segment_size);
                    assert_eq!(report.refused, 0, "peer output is valid");
                }
                for datagram in to_peer.drain(..) {
                    peer.input_bytes(now, datagram)
                        .expect("engine output is valid");
                }
            }
            _ => {
                let token = (op & 0x80 != 0).then_some([op; 8]);
                let refused = engine.set_announce(token).is_err();
                assert_eq!(refused, token.is_some() && !config.announce_room);
            }
        }
        while let Some(datagram) = engine.poll_output() {
            assert!(datagram.len() <= config.mtu, "datagram over the MTU");
            let parsed = Datagram::parse(datagram.clone()).expect("engine output parses");
            assert_eq!(parsed.conv(), CONV);
            to_peer.push(datagram);
        }
        while let Some(transmit) = peer.poll_transmit() {
            let count = transmit.datagram_count();
            assert!((1..=MAX_TRANSMIT_DATAGRAMS).contains(&count));
            assert!(transmit.contents.len() <= MAX_TRANSMIT_BYTES);
            assert!(transmit.segment_size <= config.mtu, "datagram over the MTU");
            to_engine.push(transmit);
        }
        assert!(engine.waiting_to_send() <= config.max_send_queue);
        let until = engine.check(now).wrapping_sub(now);
        assert!(until <= config.interval_ms, "deadline beyond one interval");
    }
});
