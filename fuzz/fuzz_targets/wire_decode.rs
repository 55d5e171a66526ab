//! Arbitrary bytes through everything that reads the wire: `Datagram::parse` and its
//! segment iterator, the header and path-block decoders, and the gateway.
//!
//! Checks, beyond "never panics":
//! - a parsed datagram's segments account for every byte, and re-encoding them gives a
//!   datagram that parses to the same segments;
//! - the gateway changes at most the 20 path-block bytes and keeps the length, and a
//!   datagram it filled still parses exactly when the original did (or the original's
//!   only fault was its path block).

#![no_main]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use nnet_core::gateway::fill_path_block;
use nnet_core::wire::{Datagram, Header, PathBlock, Segment, WireError};

fuzz_target!(|data: &[u8]| {
    let _ = Header::decode(data);
    let _ = PathBlock::decode(data);
    let wire = Bytes::copy_from_slice(data);

    let parsed = Datagram::parse(wire.clone());
    if let Ok(datagram) = &parsed {
        let segments: Vec<Segment> = datagram.segments().collect();
        assert_eq!(segments.len(), datagram.len());
        assert_eq!(segments.first().map(|s| s.header), Some(*datagram.first()));
        let total: usize = segments.iter().map(Segment::encoded_len).sum();
        assert_eq!(total, data.len());
        let mut again = BytesMut::new();
        for segment in &segments {
            assert!(segment.header.conv == datagram.conv());
            let _ = (segment.kick_reason(), segment.fin_reason());
            segment.encode(&mut again);
        }
        let reparsed = Datagram::parse(again.freeze()).expect("re-encoded datagram parses");
        assert!(reparsed.segments().eq(segments));
    }

    // The client address comes from the input too, so both families get exercised.
    let client = match data.first_chunk::<18>() {
        Some(raw) => {
            let (port, addr) = raw.split_at(2);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(addr);
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                u16::from_be_bytes([port[0], port[1]]),
            )
        }
        None => SocketAddr::from(([192, 0, 2, 1], 9)),
    };
    let filled = fill_path_block(wire.clone(), client);
    assert_eq!(filled.len(), wire.len());
    for (at, (a, b)) in filled.iter().zip(wire.iter()).enumerate() {
        assert!(
            a == b || (24..44).contains(&at),
            "gateway changed byte {at}"
        );
    }
    if filled != wire {
        match (&parsed, Datagram::parse(filled)) {
            (Ok(_), Ok(_)) | (Err(WireError::BadPathBlock { .. }), _) | (Err(_), Err(_)) => {}
            (before, after) => panic!("gateway changed validity: {before:?} -> {after:?}"),
        }
    }
});
