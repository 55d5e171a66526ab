//! Arbitrary datagrams from a few sources, time steps and application commands into a
//! server `Endpoint` with small limits (PROTOCOL.md sections 3, 4 and 8).
//!
//! Sources: four addresses, one of them a trusted gateway, two sharing an IP (so that
//! rebinding is reachable). Datagrams are either raw bytes or built from the input
//! (segments of any command, convs and tokens from small sets so that sessions, line
//! switches and collisions happen), optionally with one byte corrupted.
//!
//! Checks, beyond "never panics":
//! - `len() <= max_sessions`, `unconfirmed() <= max_unconfirmed` (and `<= len()`), the
//!   rate tables within `source_table_capacity`, accepted minus closed equals `len()`;
//! - an `Accepted` event only follows a datagram whose first segment is a valid start
//!   (NEW sn = 0, or PUSH sn = 0 una = 0 with `accept_plain_kcp`), with that datagram's
//!   conv and source, and a real IP from the path block only from the trusted gateway;
//!   never after a timeout or an application command;
//! - each session is closed at most once, and only after it was accepted; messages only
//!   come from live sessions;
//! - after a batch (`handle_datagrams`), every `Accepted` names the conv and source of
//!   a valid start in that batch;
//! - every datagram sent parses and fits in the MTU;
//! - traffic without a session (unknown conv, or a known conv from another address,
//!   that neither starts nor moves a session) is answered only with PONG or FIN, never
//!   with more bytes than the datagram that triggered it, and only to its source (or to
//!   the session's own remote).

#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use nnet_core::config::{EndpointConfig, SessionConfig};
use nnet_core::endpoint::Endpoint;
use nnet_core::event::{ConnId, ServerEvent};
use nnet_core::transmit::Transmit;
use nnet_core::wire::{peek_conv, Cmd, Datagram, Header, PathBlock};

const GATEWAY: usize = 0;
const SOURCES: [&str; 4] = [
    "10.0.0.9:7000",
    "192.0.2.1:1000",
    "192.0.2.1:1001",
    "[2001:db8::7]:5000",
];
const CONVS: [u32; 8] = [1, 2, 3, 0x0102_0304, 0xffff_ffff, 0x8000_0000, 0, 77];
const CMDS: [Cmd; 9] = [
    Cmd::New,
    Cmd::Push,
    Cmd::Ack,
    Cmd::Wask,
    Cmd::Wins,
    Cmd::Kick,
    Cmd::Fin,
    Cmd::Ping,
    Cmd::Pong,
];
/// Addresses a path block may carry.
const PATHS: [&str; 2] = ["198.51.100.4:40000", "[2001:db8::1]:443"];

fn config(flags: u8) -> EndpointConfig {
    let base = if flags & 2 == 0 {
        SessionConfig::default()
    } else {
        SessionConfig::fast()
    };
    EndpointConfig {
        session: SessionConfig {
            keepalive: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(3),
            linger: Duration::from_secs(1),
            fin_sends: 2,
            kick_sends: 2,
            ..base
        },
        max_sessions: 6,
        max_unconfirmed: 3,
        handshake_timeout: Duration::from_secs(1),
        max_new_per_source_per_sec: 4,
        max_resets_per_sec: 8,
        reset_interval_per_source: Duration::from_millis(50),
        source_table_capacity: 2,
        accept_plain_kcp: flags & 1 == 1,
        trusted_gateways: SOURCES[GATEWAY].parse().expect("trust list"),
        seed: u64::from(flags >> 2),
    }
}

/// The input, read a byte at a time (zeros once it runs out).
struct Input<'a>(std::slice::Iter<'a, u8>);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// A datagram of 1 to 4 segments of one conv, fields drawn from small ranges.
fn build(input: &mut Input, now_ms: u32) -> Bytes {
    let shape = input.byte();
    let conv = CONVS[usize::from(shape & 7)];
    let mut out = BytesMut::new();
    for _ in 0..=(shape >> 3) & 3 {
        let c = input.byte();
        let cmd = CMDS[usize::from(c % 9)];
        let small = input.byte();
        let header = Header {
            conv,
            cmd,
            frg: if c & 0x80 == 0 { 0 } else { input.byte() },
            wnd: u16::from(input.byte()) * 4,
            ts: now_ms.wrapping_add((i32::from(input.byte() as i8) * 16) as u32),
            sn: u32::from(small & 7),
            una: u32::from((small >> 3) & 3),
            len: 0,
        };
        let payload = match cmd {
            Cmd::New | Cmd::Push => {
                let n = usize::from(small >> 5) * 3;
                input.bytes(n)
            }
            Cmd::Kick => input.bytes(4),
            _ => Vec::new(),
        };
        Header {
            len: payload.len() as u32,
            ..header
        }
        .encode(&mut out);
        if cmd == Cmd::New {
            let p = input.byte();
            let path = match p & 3 {
                0 | 1 => PathBlock::Empty,
                n => PathBlock::Filled(PATHS[usize::from(n & 1)].parse().expect("addr")),
            };
            path.encode(&mut out);
            out.put_slice(&[(p >> 2) & 3; 8]);
        }
        out.put_slice(&payload);
    }
    out.freeze()
}

/// Whether the datagram may start a session: its first segment is NEW sn = 0, or a
/// plain KCP PUSH sn = 0 una = 0 when those are accepted.
fn valid_start(payload: &Bytes, plain: bool) -> Option<(u32, Option<PathBlock>)> {
    let datagram = Datagram::parse(payload.clone()).ok()?;
    let first = *datagram.first();
    let starts = match first.cmd {
        Cmd::New => first.sn == 0,
        Cmd::Push => plain && first.sn == 0 && first.una == 0,
        _ => false,
    };
    let path = datagram
        .segments()
        .next()
        .and_then(|s| s.announce)
        .map(|a| a.path);
    starts.then_some((first.conv, path))
}

#[derive(Default)]
struct Model {
    accepted: HashMap<ConnId, u32>,
    closed: HashSet<ConnId>,
    live: Vec<ConnId>,
}

impl Model {
    /// Checks and records the events; returns the Accepted and RemoteChanged ones.
    fn events(&mut self, server: &mut Endpoint) -> (Vec<ServerEvent>, bool) {
        let mut accepted = Vec::new();
        let mut moved = false;
        while let Some(event) = server.poll_event() {
            match &event {
                ServerEvent::Accepted { conn, conv, .. } => {
                    assert!(
                        self.accepted.insert(*conn, *conv).is_none(),
                        "handle reused"
                    );
                    self.live.push(*conn);
                    accepted.push(event.clone());
                }
                ServerEvent::Closed { conn, .. } => {
                    assert!(self.accepted.contains_key(conn), "closed before accepted");
                    assert!(self.closed.insert(*conn), "closed twice");
                    self.live.retain(|c| c != conn);
                }
                ServerEvent::Message { conn, data } => {
                    assert!(self.accepted.contains_key(conn) && !self.closed.contains(conn));
                    assert!(!data.is_empty(), "empty messages are reserved");
                }
                ServerEvent::RemoteChanged { conn, .. }
                | ServerEvent::RealIpChanged { conn, .. } => {
                    assert!(self.accepted.contains_key(conn) && !self.closed.contains(conn));
                    moved |= matches!(event, ServerEvent::RemoteChanged { .. });
                }
            }
        }
        (accepted, moved)
    }
}

fn transmits(server: &mut Endpoint, mtu: usize) -> Vec<Transmit> {
    let out: Vec<Transmit> = std::iter::from_fn(|| server.poll_transmit()).collect();
    for t in &out {
        assert!(t.payload.len() <= mtu, "datagram over the MTU");
        Datagram::parse(t.payload.clone()).expect("the server sends valid datagrams");
    }
    out
}

fn check_limits(server: &Endpoint, model: &Model) {
    let config = server.config();
    assert!(server.len() <= config.max_sessions);
    assert!(server.unconfirmed() <= config.max_unconfirmed);
    assert!(server.unconfirmed() <= server.len());
    let (new_table, answer_table) = server.rate_table_sizes();
    assert!(new_table <= config.source_table_capacity);
    assert!(answer_table <= config.source_table_capacity);
    let stats = server.stats();
    assert_eq!(
        stats.sessions_accepted - stats.sessions_closed,
        server.len() as u64
    );
    assert_eq!(model.live.len(), server.len());
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data.iter());
    let flags = input.byte();
    let config = config(flags);
    let mtu = config.session.arq.mtu;
    let plain = config.accept_plain_kcp;
    let start = Instant::now();
    let mut now = start;
    let Ok(mut server) = Endpoint::new(config, start) else {
        return;
    };
    let sources: Vec<SocketAddr> = SOURCES.iter().map(|s| s.parse().expect("addr")).collect();
    let mut model = Model::default();
    let mut ops = 0;
    while !input.0.as_slice().is_empty() && ops < 2000 {
        ops += 1;
        let op = input.byte();
        let now_ms = (now - start).as_millis() as u32;
        match op % 8 {
            2 if op & 0x10 != 0 => {
                // A batch, as `recvmmsg` hands it over: the prefetching path.
                let count = 2 + usize::from(input.byte() % 24);
                let mut batch = Vec::with_capacity(count);
                let mut starts = Vec::new();
                for _ in 0..count {
                    let from = sources[usize::from(input.byte()) % sources.len()];
                    let payload = build(&mut input, now_ms);
                    if let Some((conv, _)) = valid_start(&payload, plain) {
                        starts.push((conv, from));
                    }
                    batch.push((from, payload));
                }
                server.handle_datagrams(now, batch);
                let (accepted, _) = model.events(&mut server);
                assert!(accepted.len() <= starts.len());
                for event in &accepted {
                    let ServerEvent::Accepted { conv, remote, .. } = event else {
                        unreachable!()
                    };
                    assert!(
                        starts.contains(&(*conv, *remote)),
                        "accepted {conv} from {remote} without a valid start in the batch"
                    );
                }
                transmits(&mut server, mtu);
            }
            0..=4 => {
                let from = sources[usize::from(op >> 6)];
                let mut payload = if op % 8 == 4 {
                    let n = usize::from(input.byte());
                    Bytes::from(input.bytes(n))
                } else {
                    build(&mut input, now_ms)
                };
                if op & 0x20 != 0 && !payload.is_empty() {
                    // Corrupt one byte (often the path block of a NEW).
                    let mut raw = payload.to_vec();
                    let at = usize::from(input.byte()) % raw.len();
                    raw[at] ^= input.byte() | 1;
                    payload = Bytes::from(raw);
                }
                let len = payload.len();
                let conv = peek_conv(&payload);
                let known = conv.and_then(|c| server.find(c));
                let own_remote = known.and_then(|c| server.remote(c));
                let sessionless = own_remote != Some(from);
                let start_of = valid_start(&payload, plain);
                server.handle_datagram(now, from, payload.clone());
                let (accepted, moved) = model.events(&mut server);
                assert!(accepted.len() <= 1);
                for event in &accepted {
                    let ServerEvent::Accepted {
                        conv: accepted_conv,
                        remote,
                        real_ip,
                        plain_kcp,
                        ..
                    } = event
                    else {
                        unreachable!()
                    };
                    let (start_conv, path) = start_of.expect("accepted without a valid start");
                    assert_eq!(*accepted_conv, start_conv);
                    assert!(known.is_none(), "a live conv was accepted again");
                    assert_eq!(*remote, from);
                    assert_eq!(*plain_kcp, path.is_none());
                    match path {
                        Some(PathBlock::Filled(addr)) if from == sources[GATEWAY] => {
                            assert_eq!(*real_ip, addr)
                        }
                        _ => assert_eq!(*real_ip, from),
                    }
                }
                let out = transmits(&mut server, mtu);
                if sessionless && accepted.is_empty() && !moved {
                    for t in &out {
                        assert!(
                            t.payload.len() <= len,
                            "{len}-byte datagram {payload:?} from {from} answered with {} bytes {:?}",
                            t.payload.len(),
                            t.payload
                        );
                        assert!(
                            t.to == from || Some(t.to) == own_remote,
                            "reflected to {}",
                            t.to
                        );
                        let cmd = t.payload[4];
                        assert!(
                            t.to != from || cmd == Cmd::Pong as u8 || cmd == Cmd::Fin as u8,
                            "sessionless traffic answered with cmd {cmd}"
                        );
                    }
                }
            }
            5 | 6 => {
                if op % 8 == 5 {
                    now += Duration::from_millis(u64::from(input.byte()) * 8);
                } else if let Some(at) = server.poll_timeout() {
                    // Jump to the next deadline (if it is not too far).
                    if at <= now + Duration::from_secs(5) {
                        now = now.max(at);
                    }
                }
                server.handle_timeout(now);
                let (accepted, _) = model.events(&mut server);
                assert!(accepted.is_empty(), "a session started on a timer");
                transmits(&mut server, mtu);
            }
            _ => {
                let pick = input.byte();
                if let Some(&conn) = model.live.get(usize::from(pick) % model.live.len().max(1)) {
                    let arg = input.byte();
                    let result = match pick >> 6 {
                        0 | 1 => server.send(conn, Bytes::from(vec![arg; usize::from(arg) * 9])),
                        2 => server.close(conn, now),
                        _ => server.kick(conn, u32::from(arg), now),
                    };
                    // A live session takes every command except an empty message.
                    assert!(result.is_ok() || arg == 0 || pick >> 6 < 2);
                }
                let (accepted, _) = model.events(&mut server);
                assert!(accepted.is_empty(), "a session started on a command");
                transmits(&mut server, mtu);
            }
        }
        check_limits(&server, &model);
    }
});
