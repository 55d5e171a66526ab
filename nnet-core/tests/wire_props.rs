//! Properties of the wire format (PROTOCOL.md sections 1-3, 5-7): every segment kind
//! round-trips, datagrams are validated whole, parsing never panics, and the gateway
//! fills exactly the first NEW's path block.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Bytes, BytesMut};
use nnet_core::gateway::{fill_path_block, fill_path_block_in_place};
use nnet_core::wire::{
    fin, kick, ping, pong, Announce, Cmd, Datagram, FinReason, Header, PathBlock, Segment,
    WireError, HEADER_LEN, NEW_EXTRA_LEN,
};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

/// The kinds of segment the generators produce; NEW comes in three path-block flavours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Push,
    Ack,
    Wask,
    Wins,
    NewEmpty,
    NewV4,
    NewV6,
    Kick,
    Fin,
    Ping,
    Pong,
}

const KINDS: [Kind; 11] = [
    Kind::Push,
    Kind::Ack,
    Kind::Wask,
    Kind::Wins,
    Kind::NewEmpty,
    Kind::NewV4,
    Kind::NewV6,
    Kind::Kick,
    Kind::Fin,
    Kind::Ping,
    Kind::Pong,
];

fn below(g: &mut Gen, n: usize) -> usize {
    usize::arbitrary(g) % n
}

fn any_kind(g: &mut Gen) -> Kind {
    KINDS[below(g, KINDS.len())]
}

fn v4_addr(g: &mut Gen) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(u32::arbitrary(g))),
        u16::arbitrary(g),
    )
}

/// An IPv6 address in the canonical form a path block decodes to: never IPv4-mapped,
/// no flow info, no scope id.
fn v6_addr(g: &mut Gen) -> SocketAddr {
    let mut ip = Ipv6Addr::from(u128::arbitrary(g));
    if ip.to_ipv4_mapped().is_some() {
        ip = Ipv6Addr::from(u128::from(ip) ^ (1 << 100));
    }
    SocketAddr::new(IpAddr::V6(ip), u16::arbitrary(g))
}

fn any_addr(g: &mut Gen) -> SocketAddr {
    if bool::arbitrary(g) {
        v4_addr(g)
    } else {
        v6_addr(g)
    }
}

fn any_path(g: &mut Gen) -> PathBlock {
    match below(g, 3) {
        0 => PathBlock::Empty,
        1 => PathBlock::Filled(v4_addr(g)),
        _ => PathBlock::Filled(v6_addr(g)),
    }
}

fn payload(g: &mut Gen) -> Bytes {
    let len = below(g, 80);
    Bytes::from((0..len).map(|_| u8::arbitrary(g)).collect::<Vec<u8>>())
}

/// A segment of `kind`, as it must come back out of [`Datagram::parse`].
fn segment_of(g: &mut Gen, kind: Kind) -> Segment {
    let mut header = Header {
        conv: u32::arbitrary(g),
        cmd: Cmd::Push,
        frg: u8::arbitrary(g),
        wnd: u16::arbitrary(g),
        ts: u32::arbitrary(g),
        sn: u32::arbitrary(g),
        una: u32::arbitrary(g),
        len: 0,
    };
    let mut announce = None;
    let mut data = Bytes::new();
    match kind {
        Kind::Push => {
            data = payload(g);
        }
        Kind::Ack => header.cmd = Cmd::Ack,
        Kind::Wask => header.cmd = Cmd::Wask,
        Kind::Wins => header.cmd = Cmd::Wins,
        Kind::NewEmpty | Kind::NewV4 | Kind::NewV6 => {
            header.cmd = Cmd::New;
            let path = match kind {
                Kind::NewEmpty => PathBlock::Empty,
                Kind::NewV4 => PathBlock::Filled(v4_addr(g)),
                _ => PathBlock::Filled(v6_addr(g)),
            };
            announce = Some(Announce {
                path,
                token: <[u8; 8]>::arbitrary(g),
            });
            data = payload(g);
        }
        Kind::Kick => {
            let wire = kick(header.conv, u32::arbitrary(g));
            return only_segment(wire);
        }
        Kind::Fin => {
            let reason = FinReason::from_u8(u8::arbitrary(g));
            return only_segment(fin(header.conv, reason));
        }
        Kind::Ping => return only_segment(ping(header.conv, header.ts, header.sn)),
        Kind::Pong => {
            let probe = Header {
                cmd: Cmd::Ping,
                len: 0,
                ..header
            };
            return only_segment(pong(&probe, bool::arbitrary(g)));
        }
    }
    header.len = data.len() as u32;
    Segment {
        header,
        announce,
        payload: data,
    }
}

fn only_segment(wire: Bytes) -> Segment {
    let datagram = Datagram::parse(wire).expect("builders write valid datagrams");
    assert_eq!(datagram.len(), 1);
    datagram.segments().next().expect("one segment")
}

fn encode_all(segments: &[Segment]) -> Bytes {
    let mut out = BytesMut::new();
    for segment in segments {
        segment.encode(&mut out);
    }
    out.freeze()
}

/// Datagram from 1 to 6 segments sharing a conv.
#[derive(Clone, Debug)]
struct ArbDatagram(Vec<Segment>);

impl Arbitrary for ArbDatagram {
    fn arbitrary(g: &mut Gen) -> Self {
        let conv = u32::arbitrary(g);
        let count = 1 + below(g, 6);
        ArbDatagram(
            (0..count)
                .map(|_| {
                    let kind = any_kind(g);
                    with_conv(segment_of(g, kind), conv)
                })
                .collect(),
        )
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let segments = self.0.clone();
        Box::new(
            (0..segments.len())
                .filter(move |_| segments.len() > 1)
                .map({
                    let segments = self.0.clone();
                    move |skip| {
                        let mut fewer = segments.clone();
                        fewer.remove(skip);
                        ArbDatagram(fewer)
                    }
                }),
        )
    }
}

fn with_conv(mut segment: Segment, conv: u32) -> Segment {
    segment.header.conv = conv;
    segment
}

/// One segment of any kind.
#[derive(Clone, Debug)]
struct ArbSegment(Segment);

impl Arbitrary for ArbSegment {
    fn arbitrary(g: &mut Gen) -> Self {
        let kind = any_kind(g);
        ArbSegment(segment_of(g, kind))
    }
}

/// A socket address in canonical form (IPv4, or IPv6 that is not IPv4-mapped).
#[derive(Clone, Copy, Debug)]
struct ArbAddr(SocketAddr);

impl Arbitrary for ArbAddr {
    fn arbitrary(g: &mut Gen) -> Self {
        ArbAddr(any_addr(g))
    }
}

fn qc() -> QuickCheck {
    QuickCheck::new().tests(500).rng(Gen::new(64))
}

/// Checks that `wire` parses and iterates without panicking, and that a parsed datagram
/// re-encodes to something that parses to the same segments.
fn parse_is_total(wire: Bytes) -> bool {
    let Ok(datagram) = Datagram::parse(wire.clone()) else {
        return true;
    };
    let segments: Vec<Segment> = datagram.segments().collect();
    if segments.len() != datagram.len() || segments.is_empty() {
        return false;
    }
    if segments[0].header != *datagram.first() || datagram.conv() != segments[0].header.conv {
        return false;
    }
    let again = Datagram::parse(encode_all(&segments));
    let total: usize = segments.iter().map(Segment::encoded_len).sum();
    total == wire.len() && again.is_ok_and(|again| again.segments().collect::<Vec<_>>() == segments)
}

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

#[test]
fn every_kind_round_trips() {
    let mut g = Gen::new(64);
    for kind in KINDS {
        for _ in 0..300 {
            let segment = segment_of(&mut g, kind);
            let wire = encode_all(std::slice::from_ref(&segment));
            assert_eq!(wire.len(), segment.encoded_len());
            let datagram = Datagram::parse(wire.clone())
                .unwrap_or_else(|e| panic!("{kind:?} {segment:?}: {e}"));
            assert_eq!(datagram.len(), 1);
            assert_eq!(datagram.first(), &segment.header);
            assert_eq!(datagram.segments().collect::<Vec<_>>(), vec![segment]);
            assert_eq!(datagram.into_bytes(), wire);
        }
    }
}

#[test]
fn prop_single_segment_round_trips() {
    fn prop(segment: ArbSegment) -> bool {
        let wire = encode_all(std::slice::from_ref(&segment.0));
        Datagram::parse(wire).is_ok_and(|d| d.segments().collect::<Vec<_>>() == vec![segment.0])
    }
    qc().quickcheck(prop as fn(ArbSegment) -> bool);
}

#[test]
fn prop_multi_segment_datagrams_round_trip() {
    fn prop(datagram: ArbDatagram) -> bool {
        let wire = encode_all(&datagram.0);
        let Ok(parsed) = Datagram::parse(wire.clone()) else {
            return false;
        };
        parsed.len() == datagram.0.len()
            && parsed.conv() == datagram.0[0].header.conv
            && parsed.as_bytes() == &wire
            && parsed.segments().len() == datagram.0.len()
            && parsed.segments().collect::<Vec<_>>() == datagram.0
            && (&parsed).into_iter().count() == datagram.0.len()
    }
    qc().quickcheck(prop as fn(ArbDatagram) -> bool);
}

#[test]
fn every_fin_reason_round_trips() {
    for byte in 0..=u8::MAX {
        let reason = FinReason::from_u8(byte);
        assert_eq!(reason.as_u8(), byte);
        let wire = fin(0x0102_0304, reason);
        assert_eq!(wire.len(), 24);
        let segment = only_segment(wire.clone());
        assert_eq!(segment.fin_reason(), Some(reason));
        assert_eq!(segment.kick_reason(), None);
        let h = segment.header;
        assert_eq!(
            (h.cmd, h.frg, h.wnd, h.ts, h.sn, h.una, h.len),
            (Cmd::Fin, byte, 0, 0, 0, 0, 0)
        );
    }
    let named = [
        (FinReason::Normal, 0, "normal"),
        (FinReason::Reset, 1, "reset"),
        (FinReason::Kicked, 2, "kicked"),
        (FinReason::Collision, 3, "collision"),
        (FinReason::Timeout, 4, "timeout"),
    ];
    for (reason, byte, text) in named {
        assert_eq!(FinReason::from_u8(byte), reason);
        assert_eq!(reason.to_string(), text);
    }
}

#[test]
fn control_builders_follow_the_protocol() {
    let k = only_segment(kick(7, 0x0a0b_0c0d));
    assert_eq!((k.header.cmd, k.header.len), (Cmd::Kick, 4));
    assert_eq!(k.kick_reason(), Some(0x0a0b_0c0d));
    assert_eq!(&k.payload[..], &[0x0d, 0x0c, 0x0b, 0x0a]);
    assert_eq!(k.fin_reason(), None);

    let probe = ping(0, 1234, 99);
    assert_eq!(probe.len(), 24);
    let p = only_segment(probe.clone()).header;
    assert_eq!(
        (p.cmd, p.conv, p.ts, p.sn, p.len),
        (Cmd::Ping, 0, 1234, 99, 0)
    );
    for known in [false, true] {
        let answer = pong(&p, known);
        assert_eq!(answer.len(), probe.len());
        let a = only_segment(answer).header;
        assert_eq!(
            (a.cmd, a.conv, a.ts, a.sn, a.len),
            (Cmd::Pong, 0, 1234, 99, 0)
        );
        assert_eq!(a.wnd, u16::from(known));
    }
}

// ---------------------------------------------------------------------------------------
// Rejection and robustness
// ---------------------------------------------------------------------------------------

#[test]
fn prop_parse_never_panics_on_arbitrary_bytes() {
    fn prop(raw: Vec<u8>, cmd: u8) -> bool {
        let mut raw = raw;
        // Give the bytes a fair chance of starting with a known command.
        if let Some(byte) = raw.get_mut(4) {
            *byte = 80 + cmd % 10;
        }
        parse_is_total(Bytes::from(raw))
    }
    qc().tests(3000).quickcheck(prop as fn(Vec<u8>, u8) -> bool);
}

#[test]
fn prop_a_truncation_parses_only_at_a_segment_boundary() {
    fn prop(datagram: ArbDatagram, cut: usize) -> bool {
        let wire = encode_all(&datagram.0);
        let cut = cut % wire.len();
        let boundaries: Vec<usize> = datagram
            .0
            .iter()
            .scan(0, |end, s| {
                *end += s.encoded_len();
                Some(*end)
            })
            .collect();
        let prefix = wire.slice(..cut);
        let parsed = Datagram::parse(prefix.clone());
        parse_is_total(prefix) && parsed.is_ok() == boundaries.contains(&cut)
    }
    qc().quickcheck(prop as fn(ArbDatagram, usize) -> bool);
}

#[test]
fn prop_parse_never_panics_on_mutated_datagrams() {
    fn prop(datagram: ArbDatagram, edits: Vec<(usize, u8)>, tail: Vec<u8>) -> bool {
        let mut raw = encode_all(&datagram.0).to_vec();
        for (at, byte) in edits {
            let at = at % raw.len();
            raw[at] = byte;
        }
        raw.extend_from_slice(&tail);
        parse_is_total(Bytes::from(raw))
    }
    qc().tests(2000)
        .quickcheck(prop as fn(ArbDatagram, Vec<(usize, u8)>, Vec<u8>) -> bool);
}

#[test]
fn prop_conv_mismatch_is_rejected() {
    fn prop(first: ArbSegment, second: ArbSegment, other: u32) -> TestResult {
        if other == first.0.header.conv {
            return TestResult::discard();
        }
        let first = first.0;
        let second = with_conv(second.0, other);
        let wire = encode_all(&[first.clone(), second]);
        TestResult::from_bool(
            Datagram::parse(wire)
                == Err(WireError::ConvMismatch {
                    expected: first.header.conv,
                    found: other,
                    offset: first.encoded_len(),
                }),
        )
    }
    qc().quickcheck(prop as fn(ArbSegment, ArbSegment, u32) -> TestResult);
}

#[test]
fn malformed_datagrams_are_rejected_with_their_reason() {
    let mut g = Gen::new(16);
    assert_eq!(Datagram::parse(Bytes::new()), Err(WireError::Empty));

    let mut unknown = ping(1, 0, 0).to_vec();
    unknown[4] = 89;
    assert_eq!(
        Datagram::parse(Bytes::from(unknown)),
        Err(WireError::UnknownCmd(89))
    );

    for (wire, cmd) in [
        (fin(1, FinReason::Normal), Cmd::Fin),
        (ping(1, 0, 0), Cmd::Ping),
        (
            pong(&Header::decode(&ping(1, 0, 0)).expect("ping"), true),
            Cmd::Pong,
        ),
    ] {
        let mut raw = wire.to_vec();
        raw[20] = 1;
        raw.push(0);
        assert_eq!(
            Datagram::parse(Bytes::from(raw)),
            Err(WireError::BadControlLength { cmd, len: 1 })
        );
    }
    let mut long_kick = kick(1, 0).to_vec();
    long_kick[20] = 5;
    long_kick.push(0);
    assert_eq!(
        Datagram::parse(Bytes::from(long_kick)),
        Err(WireError::BadControlLength {
            cmd: Cmd::Kick,
            len: 5
        })
    );

    let new = segment_of(&mut g, Kind::NewEmpty);
    let wire = encode_all(std::slice::from_ref(&new));
    assert_eq!(
        Datagram::parse(wire.slice(..HEADER_LEN + 10)),
        Err(WireError::NewTooShort {
            offset: 0,
            available: 10
        })
    );
    let mut bad_block = wire.to_vec();
    bad_block[HEADER_LEN] = 2;
    bad_block[HEADER_LEN + 1] = 18;
    assert_eq!(
        Datagram::parse(Bytes::from(bad_block)),
        Err(WireError::BadPathBlock { ver: 2, len: 18 })
    );

    let mut overrun = wire.to_vec();
    overrun[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        Datagram::parse(Bytes::from(overrun)),
        Err(WireError::PayloadOverrun {
            offset: 0,
            len: u32::MAX,
            available: new.payload.len(),
        })
    );
}

#[test]
fn a_new_need_not_be_first() {
    let mut g = Gen::new(16);
    let ack = with_conv(segment_of(&mut g, Kind::Ack), 3);
    let new = with_conv(segment_of(&mut g, Kind::NewV4), 3);
    let wire = encode_all(&[ack, new.clone()]);
    let parsed = Datagram::parse(wire).expect("valid");
    assert_eq!(parsed.segments().nth(1), Some(new));
}

// ---------------------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------------------

/// A datagram whose first segment is a NEW (its path block whatever the client wrote).
#[derive(Clone, Debug)]
struct NewFirst(Vec<Segment>);

impl Arbitrary for NewFirst {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut segments = ArbDatagram::arbitrary(g).0;
        let conv = segments[0].header.conv;
        let kind = [Kind::NewEmpty, Kind::NewV4, Kind::NewV6][below(g, 3)];
        segments.insert(0, with_conv(segment_of(g, kind), conv));
        NewFirst(segments)
    }
}

#[test]
fn prop_gateway_fills_only_the_first_new() {
    fn prop(datagram: NewFirst, client: ArbAddr) -> bool {
        let wire = encode_all(&datagram.0);
        let filled = fill_path_block(wire.clone(), client.0);
        let Ok(parsed) = Datagram::parse(filled.clone()) else {
            return false;
        };
        let segments: Vec<Segment> = parsed.segments().collect();
        let mut expected = datagram.0.clone();
        if let Some(announce) = expected[0].announce.as_mut() {
            announce.path = PathBlock::Filled(client.0);
        }
        let mut in_place = wire.to_vec();
        segments == expected
            && filled[..24] == wire[..24]
            && filled[44..] == wire[44..]
            && fill_path_block_in_place(&mut in_place, client.0)
            && in_place[..] == filled[..]
    }
    qc().quickcheck(prop as fn(NewFirst, ArbAddr) -> bool);
}

#[test]
fn prop_gateway_leaves_other_datagrams_untouched() {
    fn prop(datagram: ArbDatagram, client: ArbAddr) -> TestResult {
        if datagram.0[0].header.cmd == Cmd::New {
            return TestResult::discard();
        }
        let wire = encode_all(&datagram.0);
        let out = fill_path_block(wire.clone(), client.0);
        let mut in_place = wire.to_vec();
        TestResult::from_bool(
            out == wire
                && out.as_ptr() == wire.as_ptr()
                && !fill_path_block_in_place(&mut in_place, client.0)
                && in_place[..] == wire[..],
        )
    }
    qc().quickcheck(prop as fn(ArbDatagram, ArbAddr) -> TestResult);
}

#[test]
fn prop_gateway_never_panics_and_only_touches_the_path_block() {
    fn prop(raw: Vec<u8>, new_first: bool, client: ArbAddr) -> bool {
        let mut raw = raw;
        if let Some(cmd) = raw.get_mut(4) {
            *cmd = if new_first { 80 } else { *cmd };
        }
        let wire = Bytes::from(raw);
        let out = fill_path_block(wire.clone(), client.0);
        out.len() == wire.len()
            && out
                .iter()
                .zip(wire.iter())
                .enumerate()
                .all(|(at, (a, b))| a == b || (24..44).contains(&at))
    }
    qc().tests(2000)
        .quickcheck(prop as fn(Vec<u8>, bool, ArbAddr) -> bool);
}

#[test]
fn gateway_overwrites_a_client_filled_block() {
    let liar: SocketAddr = "10.0.0.1:1".parse().expect("addr");
    let client: SocketAddr = "203.0.113.9:5353".parse().expect("addr");
    let token = *b"tokentok";
    let new = Segment {
        header: Header {
            conv: 42,
            cmd: Cmd::New,
            frg: 0,
            wnd: 128,
            ts: 1,
            sn: 0,
            una: 0,
            len: 3,
        },
        announce: Some(Announce {
            path: PathBlock::Filled(liar),
            token,
        }),
        payload: Bytes::from_static(b"abc"),
    };
    let wire = encode_all(std::slice::from_ref(&new));
    assert_eq!(wire.len(), HEADER_LEN + NEW_EXTRA_LEN + 3);
    let filled = fill_path_block(wire, client);
    // v4 client on the wire: ver 1, len 18, port big-endian, ::ffff:a.b.c.d
    let mut block = vec![1, 18, 0x14, 0xe9];
    block.extend_from_slice(&[0; 10]);
    block.extend_from_slice(&[0xff, 0xff, 203, 0, 113, 9]);
    assert_eq!(&filled[24..44], &block[..]);
    let segment = only_segment(filled);
    assert_eq!(
        segment.announce,
        Some(Announce {
            path: PathBlock::Filled(client),
            token
        })
    );
    assert_eq!(&segment.payload[..], b"abc");
}

#[test]
fn gateway_writes_v6_clients_as_they_are() {
    let client = SocketAddr::new(IpAddr::V6("2001:db8::7".parse().expect("ip")), 443);
    let mut raw = vec![0u8; HEADER_LEN + NEW_EXTRA_LEN];
    raw[4] = Cmd::New as u8;
    assert!(fill_path_block_in_place(&mut raw, client));
    assert_eq!(&raw[24..28], &[1, 18, 0x01, 0xbb]);
    assert_eq!(&raw[28..30], &[0x20, 0x01]);
    assert_eq!(
        PathBlock::decode(&raw[24..44]),
        Ok(PathBlock::Filled(client))
    );
    // One byte short of the extra bytes: not a NEW the gateway can fill.
    raw.pop();
    let before = raw.clone();
    assert!(!fill_path_block_in_place(&mut raw, client));
    assert_eq!(raw, before);
}

#[test]
fn path_blocks_round_trip() {
    fn prop(path: ArbAddr, empty: bool) -> bool {
        let block = if empty {
            PathBlock::Empty
        } else {
            PathBlock::Filled(path.0)
        };
        let mut out = BytesMut::new();
        block.encode(&mut out);
        out.len() == 20 && PathBlock::decode(&out) == Ok(block) && out[..] == block.to_bytes()
    }
    qc().quickcheck(prop as fn(ArbAddr, bool) -> bool);
    let mut g = Gen::new(8);
    for _ in 0..100 {
        let path = any_path(&mut g);
        assert_eq!(PathBlock::decode(&path.to_bytes()), Ok(path));
    }
}
