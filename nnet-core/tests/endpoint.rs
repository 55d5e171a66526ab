//! The server endpoint and the client connection through an in-memory network driven
//! with explicit `Instant`s: the rows of PROTOCOL.md sections 3-6 and every close path.

mod net;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use net::{addr, connected, header, msg, new_extra, segment, Net, GATEWAY, SERVER};
use nnet_core::config::{ClientConfig, EndpointConfig, SessionConfig};
use nnet_core::event::{ClientEvent, CloseReason, RemoteChange, ServerEvent};
use nnet_core::line::Line;
use nnet_core::wire::{self, Cmd, Datagram, FinReason, Header, PathBlock, HEADER_LEN};

fn client_config(seed: u64) -> ClientConfig {
    ClientConfig {
        session: SessionConfig::fast(),
        seed,
        ..ClientConfig::default()
    }
}

fn server_config() -> EndpointConfig {
    EndpointConfig {
        session: SessionConfig::fast(),
        ..EndpointConfig::default()
    }
}

/// Server answers to injected traffic, parsed.
fn replies(net: &Net) -> Vec<Header> {
    net.injected_replies
        .iter()
        .map(|p| {
            *Datagram::parse(p.payload.clone())
                .expect("valid reply")
                .first()
        })
        .collect()
}

#[test]
fn connect_exchange_and_real_ip_of_a_direct_client() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(1));
    net.clients[c].conn.send(msg("hello")).expect("send");
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    net.run(Duration::from_millis(200));
    assert_eq!(
        net.server_messages(),
        vec![msg("hello")],
        "the empty hello is swallowed"
    );
    let ServerEvent::Accepted {
        conn,
        real_ip,
        remote,
        plain_kcp,
        ..
    } = net.server_events[0].clone()
    else {
        panic!("first event is Accepted: {:?}", net.server_events);
    };
    assert_eq!(remote, addr("192.0.2.10:5000"));
    assert_eq!(real_ip, remote, "no gateway: the source is the real IP");
    assert!(!plain_kcp);
    net.server.send(conn, msg("welcome")).expect("server send");
    net.run(Duration::from_millis(200));
    assert_eq!(net.client_messages(c), vec![msg("welcome")]);
    assert_eq!(
        net.server.unconfirmed(),
        0,
        "second datagram confirmed the session"
    );
}

#[test]
fn real_ip_comes_from_a_trusted_gateway_only() {
    for trusted in [true, false] {
        let config = EndpointConfig {
            trusted_gateways: if trusted {
                "10.0.0.9".parse().expect("trust list")
            } else {
                Default::default()
            },
            ..server_config()
        };
        let mut net = Net::new(config);
        let c = net.connect("198.51.100.7:4444", GATEWAY, client_config(2));
        assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
        let conn = net.session_of(c).expect("session");
        let upstream: SocketAddr = "10.0.0.9:20000".parse().expect("addr");
        assert_eq!(net.server.remote(conn), Some(upstream));
        let expected = if trusted {
            addr("198.51.100.7:4444")
        } else {
            upstream
        };
        assert_eq!(
            net.server.real_ip(conn),
            Some(expected),
            "trusted: {trusted}"
        );
        let ignored = net.server.stats().drops.untrusted_path_block;
        assert_eq!(ignored > 0, !trusted);
    }
}

#[test]
fn ping_is_answered_with_a_pong_of_the_same_size_saying_whether_the_conv_is_live() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(3));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    let conv = net.clients[c].conn.conv();
    let prober = addr("203.0.113.5:999");
    net.inject(prober, wire::ping(conv, 77, 1));
    net.inject(prober, wire::ping(conv ^ 1, 78, 2));
    net.run(Duration::from_millis(100));
    let pongs = replies(&net);
    assert_eq!(pongs.len(), 2);
    assert!(net
        .injected_replies
        .iter()
        .all(|p| p.payload.len() == HEADER_LEN));
    assert_eq!(
        (pongs[0].cmd, pongs[0].ts, pongs[0].sn, pongs[0].wnd),
        (Cmd::Pong, 77, 1, 1)
    );
    assert_eq!((pongs[1].conv, pongs[1].wnd), (conv ^ 1, 0));
}

#[test]
fn stale_traffic_gets_a_rate_limited_reset_that_is_never_larger() {
    let mut net = Net::new(server_config());
    let source = addr("203.0.113.9:1234");
    // A PUSH and an ACK of a session the server does not know.
    net.inject(
        source,
        segment(header(42, Cmd::Push, 5, 3, 0), &[], b"late data"),
    );
    net.inject(source, segment(header(42, Cmd::Ack, 5, 3, 0), &[], &[]));
    net.run(Duration::from_millis(50));
    let answers = replies(&net);
    assert_eq!(answers.len(), 1, "one reset per source per 100 ms");
    assert_eq!(
        (answers[0].cmd, answers[0].frg),
        (Cmd::Fin, FinReason::Reset.as_u8())
    );
    assert_eq!(net.injected_replies[0].payload.len(), HEADER_LEN);
    net.run(Duration::from_millis(100));
    net.inject(source, segment(header(42, Cmd::Ack, 6, 3, 0), &[], &[]));
    net.run(Duration::from_millis(50));
    assert_eq!(replies(&net).len(), 2, "allowed again after the interval");
    assert_eq!(net.server.len(), 0, "nothing created");
}

#[test]
fn an_overtaken_first_segment_is_ignored_and_a_stale_new_is_reset() {
    let mut net = Net::new(server_config());
    let source = addr("203.0.113.9:1234");
    let extra = new_extra(PathBlock::Empty, [1; 8]);
    net.inject(source, segment(header(43, Cmd::New, 2, 0, 0), &extra, b"x"));
    net.run(Duration::from_millis(50));
    assert!(replies(&net).is_empty(), "overtaken first segment: silence");
    assert_eq!(net.server.stats().drops.overtaken_first, 1);
    net.inject(source, segment(header(43, Cmd::New, 9, 4, 0), &extra, b"x"));
    net.run(Duration::from_millis(50));
    let answers = replies(&net);
    assert_eq!(
        (answers.len(), answers[0].frg),
        (1, FinReason::Reset.as_u8())
    );
    assert_eq!(net.server.len(), 0);
}

#[test]
fn another_token_on_a_live_conv_is_a_collision_or_a_forgery() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(4));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    let conv = net.clients[c].conn.conv();
    let other = addr("203.0.113.20:1");
    let extra = new_extra(PathBlock::Empty, [0xee; 8]);
    net.inject(other, segment(header(conv, Cmd::New, 0, 0, 5), &extra, &[]));
    net.run(Duration::from_millis(50));
    let answers = replies(&net);
    assert_eq!(
        (answers.len(), answers[0].frg),
        (1, FinReason::Collision.as_u8())
    );
    net.run(Duration::from_millis(200));
    net.inject(
        other,
        segment(header(conv, Cmd::New, 3, 0, 5), &extra, b"evil"),
    );
    net.run(Duration::from_millis(50));
    assert_eq!(replies(&net).len(), 1, "a forged NEW gets no answer");
    assert_eq!(net.server.stats().drops.forged_new, 1);
    let conn = net.server.find(conv).expect("session untouched");
    assert_eq!(net.server.remote(conn), Some(addr("192.0.2.10:5000")));
}

#[test]
fn a_client_retries_with_a_fresh_conv_after_a_collision() {
    let mut net = Net::new(server_config());
    let a = net.connect("192.0.2.10:5000", SERVER, client_config(5));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, a)));
    let conv = net.clients[a].conn.conv();
    // Another client (another seed, so another token) that starts on the same conv: the
    // server answers its NEW sn = 0 with FIN(collision) and it retries under a fresh one.
    let clashing = ClientConfig {
        conv: Some(conv),
        ..client_config(6)
    };
    let b = net.connect("192.0.2.11:5000", SERVER, clashing);
    assert_eq!(
        net.clients[b].conn.conv(),
        conv,
        "starts on the chosen conv"
    );
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, b)));
    let retried = net.clients[b].conn.conv();
    assert_ne!(retried, conv, "retried under another conv");
    assert_eq!(net.server.stats().collisions, 1);
    net.clients[a].conn.send(msg("from a")).expect("send");
    net.clients[b].conn.send(msg("from b")).expect("send");
    net.run(Duration::from_millis(300));
    let mut got = net.server_messages();
    got.sort();
    assert_eq!(got, vec![msg("from a"), msg("from b")]);
    assert_eq!(net.server.len(), 2, "two sessions, neither hijacked");
}

#[test]
fn a_conv_of_zero_is_refused() {
    let config = ClientConfig {
        conv: Some(0),
        ..client_config(1)
    };
    let err = nnet_core::client::Connection::connect(
        config,
        &[Line::udp(addr(SERVER))],
        std::time::Instant::now(),
    )
    .expect_err("conv 0 is the probes' conv");
    assert!(err.to_string().contains("conv"), "{err}");
}

#[test]
fn kick_makes_the_client_answer_fin_and_the_server_free_it_at_once() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(7));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    let conn = net.session_of(c).expect("session");
    net.server.send(conn, msg("before the kick")).expect("send");
    net.run(Duration::from_millis(100));
    let kicked_at = net.now;
    net.server.kick(conn, 99, net.now).expect("kick");
    assert!(net.run_until(Duration::from_secs(5), |n| !n.server_closes().is_empty()));
    assert!(
        net.now - kicked_at < Duration::from_millis(200),
        "freed on the FIN, not after repeats"
    );
    assert_eq!(net.server_closes(), vec![CloseReason::Kicked(99)]);
    net.run(Duration::from_millis(100));
    let events = &net.clients[c].events;
    let kicked = events.iter().position(|e| *e == ClientEvent::Kicked(99));
    let message = events
        .iter()
        .position(|e| *e == ClientEvent::Message(msg("before the kick")));
    assert!(message < kicked && kicked.is_some(), "{events:?}");
    assert_eq!(net.client_closes(c), vec![CloseReason::Kicked(99)]);
    assert!(net.server.is_empty());
}

#[test]
fn kick_without_an_answer_frees_after_the_last_repeat() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(8));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    let conn = net.session_of(c).expect("session");
    net.clients[c].cut = true;
    net.server.kick(conn, 1, net.now).expect("kick");
    assert!(net.run_until(Duration::from_secs(10), |n| !n.server_closes().is_empty()));
    let kicks = net
        .server_sent
        .iter()
        .filter(|p| Datagram::parse(p.payload.clone()).is_ok_and(|d| d.first().cmd == Cmd::Kick))
        .count();
    let sends = usize::from(server_config().session.kick_sends);
    assert_eq!(sends, 6, "the KICK and 5 repeats (PROTOCOL.md section 5)");
    assert_eq!(kicks, sends);
    assert_eq!(net.server_closes(), vec![CloseReason::Kicked(1)]);
}

#[test]
fn session_counters_include_the_kicks_sent() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(8));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    let conn = net.session_of(c).expect("session");
    net.clients[c].cut = true;
    net.server.kick(conn, 1, net.now).expect("kick");
    net.run(Duration::from_millis(500));
    let remote = net.server.remote(conn).expect("live");
    // The session's own datagrams: not the stateless PONGs to the client's probes.
    let cmds: Vec<Cmd> = net
        .server_sent
        .iter()
        .filter(|t| t.to == remote)
        .filter_map(|t| Datagram::parse(t.payload.clone()).ok())
        .map(|d| d.first().cmd)
        .filter(|cmd| *cmd != Cmd::Pong)
        .collect();
    let kicks = cmds.iter().filter(|cmd| **cmd == Cmd::Kick).count() as u64;
    let stats = net.server.session_stats(conn).expect("still kicking");
    assert!(kicks >= 2, "the KICK and a repeat went out ({kicks})");
    assert_eq!(
        stats.datagrams_out,
        cmds.len() as u64,
        "every datagram to the client"
    );
    assert_eq!(stats.datagrams_out, stats.arq.datagrams_out + kicks);
}

#[test]
fn close_flushes_then_fin_and_both_sides_report_once() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(9));
    for i in 0..50 {
        net.clients[c]
            .conn
            .send(msg(&format!("m{i}")))
            .expect("send");
    }
    let now = net.now;
    net.clients[c].conn.close(now);
    assert!(
        net.clients[c].conn.send(msg("late")).is_err(),
        "no sends after close"
    );
    assert!(net.run_until(Duration::from_secs(5), |n| !n.server_closes().is_empty()));
    net.run(Duration::from_secs(1));
    assert_eq!(
        net.server_messages().len(),
        50,
        "everything flushed before the FIN"
    );
    assert_eq!(net.server_closes(), vec![CloseReason::PeerClosed]);
    assert_eq!(net.client_closes(c), vec![CloseReason::Closed]);
    assert!(net.server.is_empty());
}

#[test]
fn server_close_is_seen_by_the_client() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(10));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    let conn = net.session_of(c).expect("session");
    net.server.send(conn, msg("bye")).expect("send");
    net.server.close(conn, net.now).expect("close");
    assert!(net.run_until(Duration::from_secs(5), |n| !n.client_closes(c).is_empty()));
    net.run(Duration::from_millis(500));
    assert_eq!(net.client_messages(c), vec![msg("bye")]);
    assert_eq!(net.client_closes(c), vec![CloseReason::PeerClosed]);
    assert_eq!(net.server_closes(), vec![CloseReason::Closed]);
}

#[test]
fn restarted_server_resets_a_sending_client_within_a_round_trip() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(11));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    net.restart_server(server_config());
    let sent_at = net.now;
    net.clients[c].conn.send(msg("anyone?")).expect("send");
    assert!(net.run_until(Duration::from_secs(5), |n| !n.client_closes(c).is_empty()));
    // One flush interval to send, one round trip (2 x 20 ms) to hear back.
    assert!(
        net.now - sent_at <= Duration::from_millis(60),
        "took {:?}",
        net.now - sent_at
    );
    assert_eq!(net.client_closes(c), vec![CloseReason::Reset]);
}

#[test]
fn restarted_server_resets_a_client_that_only_receives() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(12));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    net.run(Duration::from_secs(1));
    net.restart_server(server_config());
    let restarted_at = net.now;
    // The client sends nothing: its keepalive PING meets a PONG with wnd = 0.
    assert!(net.run_until(Duration::from_secs(10), |n| !n.client_closes(c).is_empty()));
    let keepalive = SessionConfig::fast().keepalive;
    assert!(net.now - restarted_at <= keepalive + Duration::from_millis(60));
    assert_eq!(net.client_closes(c), vec![CloseReason::Reset]);
}

#[test]
fn restarted_server_resets_a_receiving_client_on_its_next_ack() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(13));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    // The old server's last data reaches the client after the restart; the client's
    // ACK for it is what tells it.
    let conn = net.session_of(c).expect("session");
    net.server.send(conn, msg("last words")).expect("send");
    net.run(Duration::from_millis(15));
    net.restart_server(server_config());
    let restarted_at = net.now;
    assert!(net.run_until(Duration::from_secs(5), |n| !n.client_closes(c).is_empty()));
    assert!(net.now - restarted_at <= Duration::from_millis(100));
    assert_eq!(net.client_messages(c), vec![msg("last words")]);
    assert_eq!(net.client_closes(c), vec![CloseReason::Reset]);
}

#[test]
fn keepalive_holds_an_idle_session_and_silence_times_it_out() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(14));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    let idle = SessionConfig::fast().idle_timeout;
    net.run(idle + Duration::from_secs(5));
    assert!(
        net.server_closes().is_empty(),
        "keepalive PINGs kept it: {:?}",
        net.server_events
    );
    net.clients[c].cut = true;
    net.run(idle + Duration::from_secs(1));
    assert_eq!(net.server_closes(), vec![CloseReason::Timeout]);
    assert!(net.server.is_empty());
}

#[test]
fn a_session_that_never_confirms_expires_after_the_handshake_timeout() {
    let mut net = Net::new(server_config());
    let extra = new_extra(PathBlock::Empty, [3; 8]);
    net.inject(
        addr("203.0.113.30:1"),
        segment(header(77, Cmd::New, 0, 0, 0), &extra, &[]),
    );
    net.run(Duration::from_millis(100));
    assert_eq!((net.server.len(), net.server.unconfirmed()), (1, 1));
    net.run(server_config().handshake_timeout);
    assert_eq!(net.server_closes(), vec![CloseReason::HandshakeTimeout]);
    assert_eq!((net.server.len(), net.server.unconfirmed()), (0, 0));
}

#[test]
fn a_fresher_new_from_another_address_is_a_line_switch_and_a_late_one_moves_nothing() {
    let mut net = Net::new(server_config());
    let extra = new_extra(PathBlock::Empty, [5; 8]);
    let (line_a, line_b) = (addr("203.0.113.1:1000"), addr("203.0.113.2:2000"));
    net.inject(
        line_a,
        segment(header(88, Cmd::New, 0, 0, 1000), &extra, b"one"),
    );
    net.run(Duration::from_millis(50));
    let conn = net.server.find(88).expect("session");
    net.inject(
        line_b,
        segment(header(88, Cmd::New, 1, 0, 1500), &extra, b"two"),
    );
    net.run(Duration::from_millis(50));
    assert_eq!(net.server.remote(conn), Some(line_b));
    assert!(net.server_events.iter().any(|e| matches!(
        e,
        ServerEvent::RemoteChanged { from, to, cause: RemoteChange::LineSwitch, .. }
            if *from == line_a && *to == line_b
    )));
    // A late datagram from the old line: data taken, remote unchanged.
    net.inject(
        line_a,
        segment(header(88, Cmd::New, 2, 0, 1200), &extra, b"three"),
    );
    net.run(Duration::from_millis(50));
    assert_eq!(net.server.remote(conn), Some(line_b));
    assert_eq!(
        net.server_messages(),
        vec![msg("one"), msg("two"), msg("three")]
    );
    // A PUSH from an unrelated address is dropped.
    net.inject(
        addr("203.0.113.3:3000"),
        segment(header(88, Cmd::Push, 3, 0, 9000), &[], b"x"),
    );
    net.run(Duration::from_millis(50));
    assert_eq!(net.server.stats().drops.wrong_remote, 1);
    // The same IP with another port and a fresher PUSH: rebinding.
    let rebound = addr("203.0.113.2:2001");
    net.inject(
        rebound,
        segment(header(88, Cmd::Push, 3, 0, 2000), &[], b"four"),
    );
    net.run(Duration::from_millis(50));
    assert_eq!(net.server.remote(conn), Some(rebound));
    assert!(net.server_events.iter().any(|e| matches!(
        e,
        ServerEvent::RemoteChanged {
            cause: RemoteChange::Rebinding,
            ..
        }
    )));
}

#[test]
fn a_plain_kcp_client_is_accepted_and_served() {
    use nnet_ckcp::{CKcp, CKcpConfig};
    let mut net = Net::new(server_config());
    let mut kcp = CKcp::new(0x55, &CKcpConfig::fast()).expect("C engine");
    let me = addr("192.0.2.50:6000");
    kcp.send(b"plain hello").expect("send");
    let mut got = Vec::new();
    for ms in 0..500u32 {
        kcp.update(ms);
        kcp.drain_output(|d| net.inject(me, Bytes::copy_from_slice(d)));
        net.run(Duration::from_millis(1));
        for packet in std::mem::take(&mut net.injected_replies) {
            let _ = kcp.input(&packet.payload);
        }
        while let Some(m) = kcp.recv() {
            got.push(m);
        }
        if ms == 200 {
            let conn = net.server.find(0x55).expect("plain session");
            net.server.send(conn, msg("plain answer")).expect("send");
        }
    }
    assert_eq!(net.server_messages(), vec![msg("plain hello")]);
    assert!(matches!(
        net.server_events[0],
        ServerEvent::Accepted {
            plain_kcp: true,
            ..
        }
    ));
    assert_eq!(got, vec![b"plain answer".to_vec()]);
}

#[test]
fn a_server_idle_timeout_reaches_the_client_as_fin_timeout() {
    let mut net = Net::new(server_config());
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(15));
    net.clients[c].conn.send(msg("confirming")).expect("send");
    assert!(net.run_until(Duration::from_secs(2), |n| n.server_messages().len() == 1));
    // The session is confirmed (the client's ACK is the server's second datagram).
    net.run(Duration::from_millis(100));
    // The client still hears the server but nothing it sends arrives: its line goes
    // suspect and its probes fail, but the server's FIN(timeout) reaches it.
    net.clients[c].mute = true;
    let idle = SessionConfig::fast().idle_timeout;
    assert!(net.run_until(idle + Duration::from_secs(2), |n| !n
        .client_closes(c)
        .is_empty()));
    assert_eq!(net.server_closes(), vec![CloseReason::Timeout]);
    assert_eq!(net.client_closes(c), vec![CloseReason::Timeout]);
}

#[test]
fn a_client_sending_into_the_void_gives_up_as_unreachable() {
    let mut net = Net::new(server_config());
    let config = ClientConfig {
        max_retries: 3,
        probe_timeout: Duration::from_secs(1),
        ..client_config(16)
    };
    let c = net.connect("192.0.2.10:5000", SERVER, config);
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    net.clients[c].cut = true;
    net.clients[c].conn.send(msg("lost")).expect("send");
    let cut_at = net.now;
    assert!(net.run_until(Duration::from_secs(20), |n| !n.client_closes(c).is_empty()));
    assert_eq!(net.client_closes(c), vec![CloseReason::Unreachable]);
    // Suspect after the line timeout (500 ms), then three rounds of 1 s.
    let took = net.now - cut_at;
    assert!(
        took >= Duration::from_millis(3500) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[test]
fn a_client_that_hears_nothing_suspects_its_line_after_an_unanswered_keepalive() {
    let mut net = Net::new(server_config());
    let config = ClientConfig {
        max_retries: 2,
        ..client_config(17)
    };
    let c = net.connect("192.0.2.10:5000", SERVER, config);
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    net.run(Duration::from_millis(100));
    // Only keepalive PINGs go out (nothing to retransmit), and no PONG comes back.
    net.clients[c].cut = true;
    let cut_at = net.now;
    assert!(net.run_until(Duration::from_secs(30), |n| n.clients[c].conn.is_probing()));
    let keepalive = SessionConfig::fast().keepalive;
    let suspected = net.now - cut_at;
    assert!(
        suspected >= keepalive && suspected <= keepalive + Duration::from_millis(600),
        "{suspected:?}"
    );
    assert!(net.run_until(Duration::from_secs(20), |n| !n.client_closes(c).is_empty()));
    assert_eq!(net.client_closes(c), vec![CloseReason::Unreachable]);
}

#[test]
fn every_fin_reason_ends_the_client_with_its_close_reason() {
    for (reason, expected) in [
        (FinReason::Normal, CloseReason::PeerClosed),
        (FinReason::Reset, CloseReason::Reset),
        (FinReason::Kicked, CloseReason::Kicked(0)),
        (FinReason::Timeout, CloseReason::Timeout),
        (FinReason::Other(9), CloseReason::PeerClosed),
    ] {
        let mut net = Net::new(server_config());
        let c = net.connect("192.0.2.10:5000", SERVER, client_config(18));
        assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
        let conv = net.clients[c].conn.conv();
        // A FIN from anywhere but the current line is not believed.
        let now = net.now;
        net.clients[c].conn.handle_datagram(
            now,
            Line::udp(addr("203.0.113.99:1")),
            wire::fin(conv, reason),
        );
        net.run(Duration::from_millis(10));
        assert!(
            net.client_closes(c).is_empty(),
            "{reason}: FIN from a stranger"
        );
        net.clients[c]
            .conn
            .handle_datagram(now, Line::udp(addr(SERVER)), wire::fin(conv, reason));
        net.run(Duration::from_millis(100));
        assert_eq!(net.client_closes(c), vec![expected], "{reason}");
        // Normal, kicked and timeout are answered once; reset is not.
        let answered = !matches!(reason, FinReason::Reset);
        assert_eq!(net.server_closes().len(), usize::from(answered), "{reason}");
    }
}

#[test]
fn an_idle_client_confirms_its_session_right_after_connecting() {
    let config = EndpointConfig {
        handshake_timeout: Duration::from_secs(1),
        ..server_config()
    };
    let mut net = Net::new(config);
    let c = net.connect("192.0.2.10:5000", SERVER, client_config(19));
    assert!(net.run_until(Duration::from_secs(2), |n| connected(n, c)));
    net.run(Duration::from_millis(100));
    assert_eq!(
        net.server.unconfirmed(),
        0,
        "confirmed by the client's PING"
    );
    net.run(Duration::from_secs(3));
    assert!(net.server_closes().is_empty(), "no handshake timeout");
}

#[test]
fn pings_from_the_remote_confirm_and_count_as_datagrams_of_the_session() {
    let mut net = Net::new(server_config());
    let extra = new_extra(PathBlock::Empty, [8; 8]);
    let (remote, stranger) = (addr("203.0.113.1:1000"), addr("203.0.113.7:7000"));
    net.inject(
        remote,
        segment(header(55, Cmd::New, 0, 0, 1000), &extra, b"hi"),
    );
    net.run(Duration::from_millis(50));
    let conn = net.server.find(55).expect("session accepted");
    assert_eq!(net.server.unconfirmed(), 1);
    // A PING from elsewhere is answered but is not the session's datagram.
    net.inject(stranger, wire::ping(55, 1, 1));
    net.run(Duration::from_millis(50));
    assert_eq!(net.server.unconfirmed(), 1, "a stranger does not confirm");
    net.inject(remote, wire::ping(55, 2, 2));
    net.inject(remote, wire::ping(55, 3, 3));
    net.run(Duration::from_millis(50));
    assert_eq!(net.server.unconfirmed(), 0, "the remote's PING confirms");
    let stats = net.server.session_stats(conn).expect("live");
    assert_eq!(
        stats.datagrams_in, 3,
        "the NEW and two PINGs from the remote"
    );
}

#[test]
fn a_fin_from_a_line_the_client_left_is_not_believed() {
    let mut net = Net::new(server_config());
    let extra = new_extra(PathBlock::Empty, [6; 8]);
    let (line_a, line_b) = (addr("203.0.113.1:1000"), addr("203.0.113.2:2000"));
    net.inject(
        line_a,
        segment(header(99, Cmd::New, 0, 0, 1000), &extra, b"one"),
    );
    net.run(Duration::from_millis(50));
    net.inject(
        line_b,
        segment(header(99, Cmd::New, 1, 0, 1500), &extra, b"two"),
    );
    net.run(Duration::from_millis(50));
    // A late NEW from line A with a FIN bundled: its data counts, its FIN does not.
    let mut late = BytesMut::from(&segment(header(99, Cmd::New, 2, 0, 1200), &extra, b"three")[..]);
    late.extend_from_slice(&wire::fin(99, FinReason::Normal));
    net.inject(line_a, late.freeze());
    net.run(Duration::from_millis(50));
    assert!(net.server_closes().is_empty());
    assert_eq!(net.server_messages().len(), 3);
}

#[test]
fn a_session_is_quiet_once_its_ack_is_drained_and_waits_for_its_idle_timeout() {
    use nnet_core::endpoint::Endpoint;
    use std::time::Instant;
    let start = Instant::now();
    let config = server_config();
    let idle = config.session.idle_timeout;
    let interval = Duration::from_millis(u64::from(config.session.arq.interval_ms));
    let mut server = Endpoint::new(config, start).expect("config");
    let me = addr("192.0.2.60:7000");
    let conv = 0x77;
    let hello = segment(
        header(conv, Cmd::New, 0, 0, 0),
        &new_extra(PathBlock::Empty, [7; 8]),
        b"",
    );
    server.handle_datagram(start, me, hello);
    server.handle_datagram(start, me, wire::ping(conv, 0, 1));
    let at = start + interval;
    server.handle_datagram(
        at,
        me,
        segment(header(conv, Cmd::Push, 1, 0, 0), &[], b"hi"),
    );
    while server.poll_event().is_some() {}
    // The flush queues the ACK: until it is handed out, the session is busy.
    let flush = server.poll_timeout().expect("flush due");
    assert!(flush <= at + interval);
    server.handle_timeout(flush);
    let mut acks = 0;
    while let Some(t) = server.poll_transmit() {
        assert_eq!(t.to, me);
        acks += 1;
    }
    assert!(acks >= 1);
    // Drained and quiet: no more flushes, only the idle timeout, exactly.
    assert_eq!(server.poll_timeout(), Some(at + idle));
    server.handle_timeout(at + idle - Duration::from_nanos(1));
    assert_eq!(server.len(), 1, "not timed out early");
    server.handle_timeout(at + idle);
    assert_eq!(server.len(), 0, "timed out at its deadline");
}
