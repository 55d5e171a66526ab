//! The endpoint's buffer pool changes where a session's memory comes from, nothing
//! else: a session that takes over the buffers of one that went quiet sends and
//! delivers exactly what it would on an endpoint that never had the other session, and
//! nothing of the other session's data.

mod net;

use net::{header, hello, segment};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nnet_core::config::{EndpointConfig, SessionConfig};
use nnet_core::endpoint::Endpoint;
use nnet_core::event::ServerEvent;
use nnet_core::wire::Cmd;

const SECRET: &[u8] = b"secret of the first session";

fn source(conv: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 2, 0, conv as u8)), 5000)
}

/// Everything the endpoint says, in order: transmits (address and bytes) and messages.
#[derive(Debug, Default, PartialEq, Eq)]
struct Said {
    transmits: Vec<(SocketAddr, Bytes)>,
    messages: Vec<Bytes>,
}

fn drain(server: &mut Endpoint, said: &mut Said) {
    while let Some(event) = server.poll_event() {
        if let ServerEvent::Message { data, .. } = event {
            said.messages.push(data);
        }
    }
    while let Some(t) = server.poll_transmit() {
        said.transmits.push((t.to, t.payload));
    }
}

/// Runs the timers every flush interval for `flushes` intervals.
fn tick(server: &mut Endpoint, now: &mut Instant, flushes: u32, said: &mut Said) {
    for _ in 0..flushes {
        *now += Duration::from_millis(10);
        server.handle_timeout(*now);
        drain(server, said);
    }
}

/// Session `conv`: a hello, then messages (received, acknowledged), then the server
/// sends one back; then it goes quiet until its buffers are given back.
fn exchange(server: &mut Endpoint, now: &mut Instant, conv: u32, payloads: &[&[u8]]) -> Said {
    let mut said = Said::default();
    server.handle_datagram(*now, source(conv), hello(conv, 0));
    drain(server, &mut said);
    let conn = server.find(conv).expect("accepted");
    for (sn, payload) in payloads.iter().enumerate() {
        let datagram = segment(header(conv, Cmd::Push, sn as u32 + 1, 0, 5), &[], payload);
        server.handle_datagram(*now, source(conv), datagram);
        drain(server, &mut said);
        tick(server, now, 1, &mut said);
    }
    server
        .send(conn, Bytes::copy_from_slice(payloads[0]))
        .expect("send");
    tick(server, now, 3, &mut said);
    // The client acknowledges the server's message (sn 0): an ACK with una 1.
    let ack = segment(header(conv, Cmd::Ack, 0, 1, 5), &[], &[]);
    server.handle_datagram(*now, source(conv), ack);
    tick(server, now, 3, &mut said);
    said
}

fn config() -> EndpointConfig {
    EndpointConfig {
        session: SessionConfig::fast(),
        ..EndpointConfig::default()
    }
}

#[test]
fn a_session_on_pooled_buffers_behaves_as_on_fresh_ones_and_sees_no_other_data() {
    let start = Instant::now();
    let payloads: [&[u8]; 3] = [b"hello", b"second message", b"x"];

    // Session 1 exchanges the secret and goes quiet, then session 2 takes over its
    // buffers.
    let mut shared = Endpoint::new(config(), start).expect("config");
    let mut now = start;
    let first = exchange(&mut shared, &mut now, 1, &[SECRET, SECRET, SECRET]);
    assert_eq!(first.messages, vec![Bytes::from_static(SECRET); 3]);
    let second_start = now;
    let second = exchange(&mut shared, &mut now, 2, &payloads);
    assert_eq!(second.messages.len(), payloads.len());

    // Reference: session 2 alone, on an endpoint that never had another session.
    let mut alone = Endpoint::new(config(), start).expect("config");
    alone.handle_timeout(second_start);
    let mut now = second_start;
    let expected = exchange(&mut alone, &mut now, 2, &payloads);

    assert_eq!(
        second, expected,
        "the same transmits and messages, byte for byte"
    );
    let leaked = second
        .transmits
        .iter()
        .map(|(_, p)| p)
        .chain(&second.messages);
    for bytes in leaked {
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET),
            "nothing of the first session reaches the second"
        );
    }
}
