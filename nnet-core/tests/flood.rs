//! A server endpoint under floods of forged and hostile traffic (PROTOCOL.md sections 4
//! and 8), driven with explicit `Instant`s through the in-memory network of `net`:
//! every limit holds after every datagram, drops are counted by reason, no answer to
//! traffic without a session is larger than what triggered it, forged sessions expire,
//! and legitimate clients still connect and exchange messages.

mod net;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use net::{addr, connected, header, msg, Net, SERVER};
use nnet_core::config::{ClientConfig, EndpointConfig, SessionConfig};
use nnet_core::endpoint::Endpoint;
use nnet_core::event::{CloseReason, ConnId, ServerEvent};
use nnet_core::wire::{self, Cmd, Datagram, FinReason, Header, PathBlock, Token, HEADER_LEN};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Forged sources of the floods.
const SOURCES: usize = 10_000;
/// The flood lasts this many milliseconds of virtual time...
const FLOOD_MS: u32 = 10_000;
/// ...with this many datagrams per millisecond: 100k datagrams in all.
const PER_MS: usize = 10;

const MS: Duration = Duration::from_millis(1);

fn session_config() -> SessionConfig {
    SessionConfig::fast()
}

/// Default limits, made small enough for a 10 s flood to hit them.
fn flood_config() -> EndpointConfig {
    EndpointConfig {
        session: session_config(),
        max_sessions: 5000,
        max_unconfirmed: 1000,
        // Longer than the clients' keepalive (2 s) plus a round trip: an idle client
        // confirms its session with its first keepalive PING.
        handshake_timeout: Duration::from_secs(3),
        // Fewer than the forged sources: the tables must evict.
        source_table_capacity: 4096,
        ..EndpointConfig::default()
    }
}

fn client_config(seed: u64, session: SessionConfig) -> ClientConfig {
    ClientConfig {
        session,
        seed,
        ..ClientConfig::default()
    }
}

/// Appends one segment: `header` with `len` set, NEW's path block and token when
/// given, then the payload.
fn put_segment(out: &mut BytesMut, h: Header, announce: Option<(PathBlock, Token)>, data: &[u8]) {
    Header {
        len: data.len() as u32,
        ..h
    }
    .encode(out);
    if let Some((path, token)) = announce {
        out.put_slice(&path.to_bytes());
        out.put_slice(&token);
    }
    out.put_slice(data);
}

fn new_datagram(h: Header, path: PathBlock, token: Token, data: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    put_segment(&mut out, h, Some((path, token)), data);
    out.freeze()
}

fn plain_datagram(h: Header, data: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    put_segment(&mut out, h, None, data);
    out.freeze()
}

/// A control datagram the server never answers for an unknown conv: FIN, KICK or PONG.
fn control_datagram(rng: &mut SmallRng, conv: u32) -> Bytes {
    match rng.random_range(0..3) {
        0 => wire::fin(conv, FinReason::from_u8(rng.random_range(0..5))),
        1 => wire::kick(conv, rng.random()),
        _ => wire::pong(
            &header(conv, Cmd::Ping, rng.random(), 0, rng.random()),
            false,
        ),
    }
}

/// Any source address of the `n`-th forged host (198.18.0.0/15, never a client's).
fn forged_source(rng: &mut SmallRng, n: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(198, 18 + (n >> 16) as u8, (n >> 8) as u8, n as u8);
    SocketAddr::new(IpAddr::V4(ip), rng.random_range(1024..=u16::MAX))
}

fn is_forged(a: &SocketAddr) -> bool {
    matches!(a.ip(), IpAddr::V4(v4) if v4.octets()[0] == 198 && (v4.octets()[1] & 0xfe) == 18)
}

/// What the flood sends, by share of datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    /// Random bytes of a random length, 0 to 1400 (20%).
    Garbage,
    /// PUSH, ACK, WASK or WINS of a random conv with `una` > 0, 1 to 3 segments (25%).
    Stale,
    /// NEW sn = 0, random conv and token, empty or (untrusted) filled path block (25%).
    New,
    /// NEW sn > 0, una = 0: an overtaken first segment (5%).
    Overtaken,
    /// PING of a random conv (20%).
    Ping,
    /// FIN, KICK or PONG of a random conv (5%).
    Control,
}

/// The forged traffic: 10k sources, seeded.
struct Flood {
    rng: SmallRng,
    sources: Vec<SocketAddr>,
}

impl Flood {
    fn new(seed: u64) -> Flood {
        let mut rng = SmallRng::seed_from_u64(seed);
        let sources = (0..SOURCES).map(|n| forged_source(&mut rng, n)).collect();
        Flood { rng, sources }
    }

    fn next(&mut self, ts: u32) -> (SocketAddr, Kind, Bytes) {
        let rng = &mut self.rng;
        let from = self.sources[rng.random_range(0..SOURCES)];
        let conv: u32 = rng.random_range(1..=u32::MAX);
        let mut data = vec![0u8; rng.random_range(0..64)];
        rng.fill(&mut data[..]);
        let (kind, payload) = match rng.random_range(0..100) {
            0..20 => {
                let mut garbage = vec![0u8; rng.random_range(0..=1400)];
                rng.fill(&mut garbage[..]);
                (Kind::Garbage, Bytes::from(garbage))
            }
            20..45 => {
                let cmd = [Cmd::Push, Cmd::Ack, Cmd::Wask, Cmd::Wins][rng.random_range(0..4)];
                let mut out = BytesMut::new();
                for _ in 0..rng.random_range(1..=3) {
                    let h = header(conv, cmd, rng.random(), rng.random_range(1..=u32::MAX), ts);
                    let body = if cmd == Cmd::Push { &data[..] } else { &[] };
                    put_segment(&mut out, h, None, body);
                }
                (Kind::Stale, out.freeze())
            }
            45..70 => {
                let path = if rng.random_bool(0.5) {
                    PathBlock::Empty
                } else {
                    {
                        let n = rng.random_range(0..SOURCES);
                        PathBlock::Filled(forged_source(rng, n))
                    }
                };
                let h = header(conv, Cmd::New, 0, 0, ts);
                (Kind::New, new_datagram(h, path, rng.random(), &data))
            }
            70..75 => {
                let h = header(conv, Cmd::New, rng.random_range(1..=u32::MAX), 0, ts);
                let datagram = new_datagram(h, PathBlock::Empty, rng.random(), &data);
                (Kind::Overtaken, datagram)
            }
            75..95 => (Kind::Ping, wire::ping(conv, ts, rng.random())),
            _ => (Kind::Control, control_datagram(rng, conv)),
        };
        (from, kind, payload)
    }
}

/// The highest values seen; asserts the limits every time it looks.
#[derive(Debug, Default)]
struct Peaks {
    sessions: usize,
    unconfirmed: usize,
    new_table: usize,
    answer_table: usize,
}

impl Peaks {
    fn check(&mut self, server: &Endpoint) {
        let config = server.config();
        let (new_table, answer_table) = server.rate_table_sizes();
        assert!(server.len() <= config.max_sessions, "{}", server.len());
        assert!(server.unconfirmed() <= config.max_unconfirmed);
        assert!(server.unconfirmed() <= server.len());
        assert!(new_table <= config.source_table_capacity, "{new_table}");
        assert!(
            answer_table <= config.source_table_capacity,
            "{answer_table}"
        );
        let stats = server.stats();
        assert_eq!(
            stats.sessions_accepted - stats.sessions_closed,
            server.len() as u64,
            "every session is either live or reported closed"
        );
        self.sessions = self.sessions.max(server.len());
        self.unconfirmed = self.unconfirmed.max(server.unconfirmed());
        self.new_table = self.new_table.max(new_table);
        self.answer_table = self.answer_table.max(answer_table);
    }
}

/// What the flood sent, for the assertions.
#[derive(Debug, Default)]
struct Sent {
    datagrams: usize,
    bytes: usize,
    kinds: HashMap<Kind, usize>,
}

/// Runs the 10 s flood (plus a hot source opening sessions as fast as it can during
/// the first second) against `net`'s server, one virtual millisecond at a time, the
/// network (clients, timers, outputs) stepping in between. `each_ms` runs before the
/// network step of every millisecond.
fn run_flood(net: &mut Net, seed: u64, mut each_ms: impl FnMut(&mut Net, u32)) -> (Peaks, Sent) {
    let mut flood = Flood::new(seed);
    let mut peaks = Peaks::default();
    let mut sent = Sent::default();
    let hot_ip = IpAddr::V4(Ipv4Addr::new(198, 19, 255, 1));
    for ms in 0..FLOOD_MS {
        let ts = ms.wrapping_mul(7);
        for _ in 0..PER_MS {
            let (from, kind, payload) = flood.next(ts);
            sent.datagrams += 1;
            sent.bytes += payload.len();
            *sent.kinds.entry(kind).or_default() += 1;
            net.server.handle_datagram(net.now, from, payload);
            peaks.check(&net.server);
        }
        if ms < 1000 {
            // One source IP, many ports: far over max_new_per_source_per_sec.
            let from = SocketAddr::new(hot_ip, 1024 + ms as u16);
            let h = header(0x4000_0000 + ms, Cmd::New, 0, 0, ts);
            let payload = new_datagram(h, PathBlock::Empty, [9; 8], &[]);
            sent.datagrams += 1;
            sent.bytes += payload.len();
            net.server.handle_datagram(net.now, from, payload);
            peaks.check(&net.server);
        }
        each_ms(net, ms);
        net.run(MS);
        peaks.check(&net.server);
    }
    (peaks, sent)
}

/// The server's close events by session.
fn closes_by_conn(net: &Net) -> HashMap<ConnId, Vec<CloseReason>> {
    let mut closes: HashMap<ConnId, Vec<CloseReason>> = HashMap::new();
    for event in &net.server_events {
        if let ServerEvent::Closed { conn, reason } = event {
            closes.entry(*conn).or_default().push(*reason);
        }
    }
    closes
}

/// Sessions the server accepted, with their remote.
fn accepted(net: &Net) -> Vec<(ConnId, u32, SocketAddr)> {
    net.server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Accepted {
                conn, conv, remote, ..
            } => Some((*conn, *conv, *remote)),
            _ => None,
        })
        .collect()
}

fn messages_of(net: &Net, of: ConnId) -> Vec<Bytes> {
    net.server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Message { conn, data } if *conn == of => Some(data.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_forged_flood_stays_within_every_limit_and_legitimate_clients_get_through() {
    let config = flood_config();
    let mut net = Net::new(config.clone());
    let a = net.connect(
        "192.0.2.10:5000",
        SERVER,
        client_config(1, session_config()),
    );
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, a)));
    let a_conn = net.session_of(a).expect("A");
    let flood_start = net.now;
    let mut b = None;
    let (peaks, sent) = run_flood(&mut net, 7, |net, ms| match ms {
        2000 => {
            let config = client_config(2, session_config());
            b = Some(net.connect("192.0.2.11:5000", SERVER, config));
        }
        3000 => net.clients[a].conn.send(msg("A, mid-flood")).expect("send"),
        5000 => net
            .server
            .send(a_conn, msg("to A, mid-flood"))
            .expect("send"),
        _ => {}
    });
    let b = b.expect("B started");
    assert_eq!(
        net.now - flood_start,
        Duration::from_millis(u64::from(FLOOD_MS))
    );
    assert!(sent.datagrams >= 100_000, "{sent:?}");
    assert!(sent.kinds.values().all(|&n| n > 1000), "{sent:?}");

    // An established session is not disturbed by the flood.
    assert_eq!(messages_of(&net, a_conn), vec![msg("A, mid-flood")]);
    assert_eq!(net.client_messages(a), vec![msg("to A, mid-flood")]);

    // The limits were reached, never passed.
    assert_eq!(peaks.unconfirmed, config.max_unconfirmed, "{peaks:?}");
    assert!(peaks.sessions <= config.max_unconfirmed + 2, "{peaks:?}");
    assert_eq!(
        peaks.answer_table, config.source_table_capacity,
        "10k sources filled the reset table, which evicted"
    );
    assert!(peaks.new_table > 1000, "{peaks:?}");
    let stats = *net.server.stats();
    assert!(
        stats.sessions_accepted > 3 * config.max_unconfirmed as u64,
        "forged sessions expired during the flood and their room was reused: {stats:?}"
    );

    // Every kind of forged traffic was dropped under its own reason.
    let drops = stats.drops;
    assert!(drops.malformed as usize >= sent.kinds[&Kind::Garbage] * 9 / 10);
    assert!(drops.stale as usize >= sent.kinds[&Kind::Stale]);
    assert_eq!(drops.overtaken_first as usize, sent.kinds[&Kind::Overtaken]);
    assert!(drops.unknown_control as usize >= sent.kinds[&Kind::Control]);
    assert!(drops.max_unconfirmed > 10_000, "{drops:?}");
    assert!(drops.source_rate > 200, "the hot source: {drops:?}");
    assert!(drops.untrusted_path_block > 100, "{drops:?}");
    assert!(drops.answer_rate > 0, "{drops:?}");
    assert_eq!(drops.response_queue_full, 0);
    assert_eq!(drops.max_sessions, 0);

    // Resets: within the global rate (a burst of one second's worth, then the rate).
    let seconds = u64::from(FLOOD_MS / 1000) + 1;
    assert!(stats.resets > 0 && stats.resets <= u64::from(config.max_resets_per_sec) * seconds);
    let fin_resets = net
        .server_sent
        .iter()
        .filter(|p| {
            let h = *Datagram::parse(p.payload.clone()).expect("valid").first();
            h.cmd == Cmd::Fin && h.frg == FinReason::Reset.as_u8()
        })
        .count();
    assert_eq!(fin_resets as u64, stats.resets);
    let pongs_to_forged = net
        .server_sent
        .iter()
        .filter(|p| is_forged(&p.to) && p.payload[4] == Cmd::Pong as u8)
        .count();
    assert_eq!(
        pongs_to_forged,
        sent.kinds[&Kind::Ping],
        "every PING answered"
    );

    // No amplification: every answer to a forged source is one 24-byte segment (PONG,
    // FIN or a new session's ACK), and they add up to less than what came in.
    let to_forged: Vec<_> = net
        .server_sent
        .iter()
        .filter(|p| is_forged(&p.to))
        .collect();
    assert!(to_forged.len() > 20_000);
    assert!(to_forged.iter().all(|p| p.payload.len() == HEADER_LEN));
    let bytes_out: usize = to_forged.iter().map(|p| p.payload.len()).sum();
    assert!(
        bytes_out < sent.bytes / 4,
        "{bytes_out} out, {} in",
        sent.bytes
    );

    // B, who started mid-flood, gets in when a batch of forged sessions expires (during
    // the flood or after it), and talks.
    assert!(
        net.run_until(Duration::from_secs(30), |n| connected(n, b)),
        "B never connected: {:?}",
        net.server.stats()
    );
    let b_conv = net.clients[b].conn.conv();
    let b_conn = net.server.find(b_conv).expect("B");
    net.clients[b].conn.send(msg("B, after")).expect("send");
    net.server.send(b_conn, msg("to B, after")).expect("send");
    net.run(Duration::from_millis(200));
    assert_eq!(messages_of(&net, b_conn), vec![msg("B, after")]);
    assert_eq!(net.client_messages(b), vec![msg("to B, after")]);
    assert!(net.client_closes(a).is_empty() && net.client_closes(b).is_empty());
}

#[test]
fn after_a_flood_every_forged_session_expires_with_a_handshake_timeout() {
    let config = flood_config();
    let mut net = Net::new(config.clone());
    let a = net.connect(
        "192.0.2.10:5000",
        SERVER,
        client_config(3, session_config()),
    );
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, a)));
    let a_conn = net.session_of(a).expect("A");
    run_flood(&mut net, 11, |_, _| {});
    assert!(
        net.server.unconfirmed() > 0,
        "the flood left unconfirmed sessions"
    );
    let flood_end = net.now;
    net.run(config.handshake_timeout + Duration::from_millis(50));

    assert_eq!(net.server.unconfirmed(), 0);
    assert_eq!(net.server.len(), 1, "only A is left");
    assert_eq!(net.session_of(a), Some(a_conn));
    let closes = closes_by_conn(&net);
    let accepted = accepted(&net);
    assert!(
        accepted.len() > 3 * config.max_unconfirmed,
        "{}",
        accepted.len()
    );
    for (conn, conv, remote) in &accepted {
        if *conn == a_conn {
            assert!(!closes.contains_key(conn), "A is live");
            continue;
        }
        assert!(is_forged(remote), "{remote}");
        assert_eq!(
            closes.get(conn).map(Vec::as_slice),
            Some(&[CloseReason::HandshakeTimeout][..]),
            "conv {conv:#x} from {remote}"
        );
        assert_eq!(net.server.find(*conv), None);
    }
    assert_eq!(
        closes.len(),
        accepted.len() - 1,
        "no close without an accept"
    );
    let stats = net.server.stats();
    assert_eq!(stats.sessions_closed, stats.sessions_accepted - 1);
    // Nothing is sent for a handshake timeout: after the flood, only A hears from the
    // server.
    let late: HashSet<SocketAddr> = net
        .server_sent
        .iter()
        .filter(|p| p.at > flood_end + net.latency)
        .map(|p| p.to)
        .collect();
    assert!(late.iter().all(|to| *to == net.clients[a].addr), "{late:?}");
    // And A still works.
    net.clients[a].conn.send(msg("still here")).expect("send");
    net.run(Duration::from_millis(200));
    assert_eq!(messages_of(&net, a_conn), vec![msg("still here")]);
}

#[test]
fn sources_that_confirm_their_sessions_are_capped_by_max_sessions() {
    // Bots own their addresses: each opens a session and confirms it with a PING,
    // then goes quiet. They fill max_sessions; established sessions carry on, a new
    // client waits until the bots' sessions time out.
    let session = SessionConfig {
        keepalive: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(5),
        ..session_config()
    };
    let config = EndpointConfig {
        session: session.clone(),
        ..flood_config()
    };
    let mut net = Net::new(config.clone());
    let a = net.connect("192.0.2.10:5000", SERVER, client_config(4, session.clone()));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, a)));
    let a_conn = net.session_of(a).expect("A");
    let mut rng = SmallRng::seed_from_u64(5);
    let bots: Vec<SocketAddr> = (0..SOURCES).map(|n| forged_source(&mut rng, n)).collect();
    let mut peaks = Peaks::default();
    let mut pending_pings: Vec<(SocketAddr, u32)> = Vec::new();
    let mut b = None;
    let bot_ms = 3000u32;
    for ms in 0..bot_ms {
        for (from, conv) in pending_pings.drain(..) {
            net.server
                .handle_datagram(net.now, from, wire::ping(conv, ms, 1));
            peaks.check(&net.server);
        }
        for _ in 0..PER_MS / 2 {
            let from = bots[rng.random_range(0..SOURCES)];
            let conv = rng.random_range(1..=u32::MAX);
            let h = header(conv, Cmd::New, 0, 0, ms);
            let payload = new_datagram(h, PathBlock::Empty, rng.random(), &[]);
            net.server.handle_datagram(net.now, from, payload);
            peaks.check(&net.server);
            pending_pings.push((from, conv));
        }
        match ms {
            1500 => {
                b = Some(net.connect("192.0.2.11:5000", SERVER, client_config(6, session.clone())))
            }
            2000 => net.clients[a]
                .conn
                .send(msg("A, while full"))
                .expect("send"),
            2100 => net
                .server
                .send(a_conn, msg("to A, while full"))
                .expect("send"),
            _ => {}
        }
        net.run(MS);
        peaks.check(&net.server);
    }
    let b = b.expect("B started");
    assert_eq!(peaks.sessions, config.max_sessions, "{peaks:?}");
    assert!(peaks.unconfirmed < 20, "bots confirm at once: {peaks:?}");
    let stats = *net.server.stats();
    assert!(stats.drops.max_sessions > 5000, "{:?}", stats.drops);
    assert_eq!(stats.drops.max_unconfirmed, 0);
    assert_eq!(messages_of(&net, a_conn), vec![msg("A, while full")]);
    assert_eq!(net.client_messages(a), vec![msg("to A, while full")]);
    let b_conv = net.clients[b].conn.conv();
    assert!(
        !connected(&net, b),
        "no room for B while the bots hold every session"
    );
    assert!(accepted(&net).iter().all(|(_, conv, _)| *conv != b_conv));

    // The bots are quiet: their sessions time out, B gets in.
    assert!(net.run_until(Duration::from_secs(20), |n| connected(n, b)));
    let b_conn = net.server.find(b_conv).expect("B");
    net.run(session.idle_timeout);
    assert_eq!(net.server.len(), 2, "only A and B are left");
    assert_eq!(net.server.unconfirmed(), 0);
    let closes = closes_by_conn(&net);
    for (conn, _, remote) in accepted(&net) {
        if conn == a_conn || conn == b_conn {
            assert!(!closes.contains_key(&conn));
        } else {
            assert!(is_forged(&remote));
            assert_eq!(closes[&conn], vec![CloseReason::Timeout]);
        }
    }
    net.clients[b].conn.send(msg("B, at last")).expect("send");
    net.run(Duration::from_millis(200));
    assert_eq!(messages_of(&net, b_conn), vec![msg("B, at last")]);
}

/// What the server should answer to one piece of sessionless traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Expect {
    Nothing,
    Pong,
    Reset,
    Collision,
}

#[test]
fn no_answer_to_traffic_without_a_session_is_larger_than_its_trigger() {
    let start = Instant::now();
    let config = EndpointConfig {
        // The live sessions must not idle out during the 3000 rounds (30 s).
        session: SessionConfig {
            idle_timeout: Duration::from_secs(3600),
            ..session_config()
        },
        // Every trigger below comes from a fresh source; lift the global rate so that
        // each one that deserves an answer gets it.
        max_resets_per_sec: 1_000_000,
        max_new_per_source_per_sec: 1_000_000,
        ..EndpointConfig::default()
    };
    let interval = Duration::from_millis(u64::from(config.session.arq.interval_ms));
    let mut server = Endpoint::new(config, start).expect("config");
    let mut now = start;
    let mut rng = SmallRng::seed_from_u64(21);

    // Two live sessions, confirmed, their first ACKs flushed.
    let token_of = |conv: u32| -> Token { [conv as u8; 8] };
    let live: Vec<(u32, SocketAddr)> = vec![
        (0x1111, addr("192.0.2.1:1000")),
        (0x2222, addr("192.0.2.2:2000")),
    ];
    for &(conv, remote) in &live {
        let h = header(conv, Cmd::New, 0, 0, 1);
        server.handle_datagram(
            now,
            remote,
            new_datagram(h, PathBlock::Empty, token_of(conv), b"hi"),
        );
        server.handle_datagram(now, remote, wire::ping(conv, 2, 1));
    }
    now += interval;
    server.handle_timeout(now);
    while server.poll_transmit().is_some() {}
    while server.poll_event().is_some() {}
    assert_eq!((server.len(), server.unconfirmed()), (2, 0));

    let mut answered: HashMap<Expect, usize> = HashMap::new();
    let mut source = 0usize;
    for round in 0..3000u32 {
        source += 1;
        let from = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(203, 0, (source >> 8) as u8, source as u8)),
            40_000 + (source % 1000) as u16,
        );
        let unknown = rng.random_range(0x10_0000..=u32::MAX);
        let (known, _) = live[rng.random_range(0..live.len())];
        let una = rng.random_range(1..=u32::MAX);
        let sn = rng.random_range(1..=u32::MAX);
        let ts = round;
        let mut data = vec![0u8; rng.random_range(0..3) * rng.random_range(0..200)];
        rng.fill(&mut data[..]);
        let plain_cmd = [Cmd::Push, Cmd::Ack, Cmd::Wask, Cmd::Wins][rng.random_range(0..4)];
        let body = if plain_cmd == Cmd::Push {
            &data[..]
        } else {
            &[]
        };
        let (trigger, expect) = match round % 13 {
            0 => (wire::ping(unknown, ts, sn), Expect::Pong),
            1 => (wire::ping(known, ts, sn), Expect::Pong),
            2 => (wire::ping(0, ts, sn), Expect::Pong),
            // Stale plain KCP segments, one or several.
            3 => (
                plain_datagram(header(unknown, plain_cmd, sn, una, ts), body),
                Expect::Reset,
            ),
            4 => {
                let mut out = BytesMut::new();
                for _ in 0..rng.random_range(2..6) {
                    put_segment(
                        &mut out,
                        header(unknown, plain_cmd, sn, una, ts),
                        None,
                        body,
                    );
                }
                (out.freeze(), Expect::Reset)
            }
            // A PUSH sn = 0 with una > 0 is stale too (only una = 0 starts a plain
            // KCP session).
            5 => (
                plain_datagram(header(unknown, Cmd::Push, 0, una, ts), body),
                Expect::Reset,
            ),
            // NEW sn > 0 una > 0: the server restarted under a live client.
            6 => {
                let h = header(unknown, Cmd::New, sn, una, ts);
                (
                    new_datagram(h, PathBlock::Empty, rng.random(), &data),
                    Expect::Reset,
                )
            }
            // NEW sn > 0 una = 0: overtaken first segment, silence.
            7 => {
                let h = header(unknown, Cmd::New, sn, 0, ts);
                (
                    new_datagram(h, PathBlock::Empty, rng.random(), &data),
                    Expect::Nothing,
                )
            }
            // A live conv, another token, sn = 0: collision.
            8 => {
                let h = header(known, Cmd::New, 0, 0, ts);
                (
                    new_datagram(h, PathBlock::Empty, [0xee; 8], &[]),
                    Expect::Collision,
                )
            }
            // A live conv, another token, sn > 0: forged, silence.
            9 => {
                let h = header(known, Cmd::New, sn, rng.random(), ts);
                (
                    new_datagram(h, PathBlock::Empty, [0xee; 8], &data),
                    Expect::Nothing,
                )
            }
            // A live conv's plain segments from a stranger (not a rebinding: another
            // IP): dropped, silence.
            10 => (
                plain_datagram(header(known, plain_cmd, sn, una, ts), body),
                Expect::Nothing,
            ),
            // FIN, KICK or PONG of an unknown conv: never answered.
            11 => (control_datagram(&mut rng, unknown), Expect::Nothing),
            // Truncated or garbage: silence.
            _ => {
                let whole = wire::ping(unknown, ts, sn);
                let cut = rng.random_range(0..whole.len());
                (whole.slice(..cut), Expect::Nothing)
            }
        };
        let len = trigger.len();
        server.handle_datagram(now, from, trigger.clone());
        // Whatever the datagram caused, now or at the next flush.
        let mut out: Vec<_> = std::iter::from_fn(|| server.poll_transmit()).collect();
        now += interval;
        server.handle_timeout(now);
        out.extend(std::iter::from_fn(|| server.poll_transmit()));
        while server.poll_event().is_some() {}
        for transmit in &out {
            assert!(
                transmit.payload.len() <= len,
                "{len}-byte trigger {trigger:?} from {from} got a {}-byte answer {:?}",
                transmit.payload.len(),
                transmit.payload
            );
            assert_eq!(
                transmit.to, from,
                "answers go to the trigger's source only: {trigger:?}"
            );
        }
        let got = match out.as_slice() {
            [] => Expect::Nothing,
            [one] => {
                let h = *Datagram::parse(one.payload.clone())
                    .expect("valid answer")
                    .first();
                match (h.cmd, FinReason::from_u8(h.frg)) {
                    (Cmd::Pong, _) => {
                        let known_conv = live.iter().any(|&(c, _)| c == h.conv);
                        assert_eq!(h.wnd, u16::from(known_conv));
                        Expect::Pong
                    }
                    (Cmd::Fin, FinReason::Reset) => Expect::Reset,
                    (Cmd::Fin, FinReason::Collision) => Expect::Collision,
                    other => panic!("unexpected answer {other:?} to {trigger:?}"),
                }
            }
            more => panic!("{} answers to one trigger {trigger:?}", more.len()),
        };
        assert_eq!(got, expect, "round {round}: {trigger:?}");
        *answered.entry(got).or_default() += 1;
    }
    assert!(answered[&Expect::Pong] > 600 && answered[&Expect::Reset] > 900);
    assert!(answered[&Expect::Collision] > 200 && answered[&Expect::Nothing] > 1000);
    assert_eq!(server.len(), 2, "nothing was created");
    for &(conv, remote) in &live {
        let conn = server.find(conv).expect("live session untouched");
        assert_eq!(server.remote(conn), Some(remote));
    }
}

#[test]
fn a_new_session_is_answered_with_no_more_than_it_sent() {
    // Sessions that are new are outside section 8's rule for sessionless traffic, but
    // a forged first segment must not make the server send more than it got either:
    // its answer is the ACK of that segment.
    let start = Instant::now();
    let config = EndpointConfig {
        session: session_config(),
        max_new_per_source_per_sec: 1_000_000,
        ..EndpointConfig::default()
    };
    let interval = Duration::from_millis(u64::from(config.session.arq.interval_ms));
    let mut server = Endpoint::new(config, start).expect("config");
    let mut now = start;
    let mut rng = SmallRng::seed_from_u64(22);
    let mut acks = 0;
    for round in 0..500u32 {
        let from = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, (round % 250) as u8)),
            1000 + round as u16,
        );
        let conv = 0x100 + round;
        let mut data = vec![0u8; rng.random_range(0..3) * rng.random_range(0..200)];
        rng.fill(&mut data[..]);
        let trigger = if round % 2 == 0 {
            let h = header(conv, Cmd::New, 0, 0, round);
            new_datagram(h, PathBlock::Empty, rng.random(), &data)
        } else {
            // A plain KCP start: PUSH sn = 0 una = 0, maybe with a WASK after it.
            let mut out = BytesMut::new();
            put_segment(&mut out, header(conv, Cmd::Push, 0, 0, round), None, &data);
            if rng.random_bool(0.5) {
                put_segment(&mut out, header(conv, Cmd::Wask, 0, 0, round), None, &[]);
            }
            out.freeze()
        };
        let len = trigger.len();
        server.handle_datagram(now, from, trigger);
        assert!(server.find(conv).is_some());
        let mut out: Vec<_> = std::iter::from_fn(|| server.poll_transmit()).collect();
        now += interval;
        server.handle_timeout(now);
        out.extend(std::iter::from_fn(|| server.poll_transmit()));
        while server.poll_event().is_some() {}
        let total: usize = out.iter().map(|t| t.payload.len()).sum();
        assert!(
            total <= len,
            "{len}-byte first datagram got {total} bytes back"
        );
        assert!(out.iter().all(|t| t.to == from));
        acks += out.len();
    }
    assert!(acks >= 500, "each start was acknowledged");
}
