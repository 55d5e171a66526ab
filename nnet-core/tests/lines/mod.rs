//! An in-memory world for line tests: one server `Endpoint`, one client `Connection`
//! with several lines, each line a proxy with its own latency and failure mode. Time
//! is virtual and jumps from event to event (no sleeps); everything is deterministic.
//!
//! A proxy behaves like a UDP proxy in front of the server: it forwards the client's
//! datagrams from an upstream port of its own (one per client socket), fills NEW path
//! blocks with the client's address (the server trusts `10.0.1.0/24`), and relays the
//! server's answers back to the socket they belong to. A line can be up, down (drops
//! everything), refusing (answers every datagram with an empty one, like nginx whose
//! upstream refused), or stale for old sockets (forwards them but never relays an
//! answer to them, like nginx after its upstream failed: only a fresh socket works).

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nnet_core::client::Connection;
use nnet_core::config::{ClientConfig, EndpointConfig};
use nnet_core::endpoint::Endpoint;
use nnet_core::event::{ClientEvent, ServerEvent};
use nnet_core::gateway::fill_path_block;
use nnet_core::line::Line;

/// The client's IP (its ports differ per line and socket).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// How a line's proxy behaves now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Up,
    Down,
    /// Answers every client datagram with an empty datagram, forwards nothing.
    Refusing,
    /// Sockets older than the generation given get no answers; newer ones work.
    StaleBelow(u32),
}

/// One line: a proxy at `10.0.1.<i+1>:7000`.
pub struct SimLine {
    pub line: Line,
    /// One-way latency client to server through this proxy (and back).
    pub one_way: Duration,
    pub mode: Mode,
    /// The client's current socket on this line (bumped by each fresh socket).
    pub socket: u32,
}

#[derive(Clone, Debug)]
enum Hop {
    /// To the server, from a proxy's upstream port.
    Server { from: SocketAddr },
    /// To the client on line `line`, for the socket of generation `socket`.
    Client { line: usize, socket: u32 },
}

#[derive(Clone, Debug)]
struct Packet {
    at: Instant,
    seq: u64,
    hop: Hop,
    payload: Bytes,
}

pub struct World {
    pub start: Instant,
    pub now: Instant,
    pub server: Endpoint,
    pub server_events: Vec<(Instant, ServerEvent)>,
    pub client: Connection,
    pub client_events: Vec<(Instant, ClientEvent)>,
    pub lines: Vec<SimLine>,
    in_flight: Vec<Packet>,
    seq: u64,
}

pub fn proxy_addr(index: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, index as u8 + 1)), 7000)
}

/// The proxy's upstream address for the client's socket `socket` on line `index`.
fn upstream(index: usize, socket: u32) -> SocketAddr {
    SocketAddr::new(proxy_addr(index).ip(), 30_000 + socket as u16)
}

/// The client's address for socket `socket` on line `index`.
pub fn client_socket(index: usize, socket: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(CLIENT_IP),
        40_000 + index as u16 * 100 + socket as u16,
    )
}

pub fn server_config() -> EndpointConfig {
    EndpointConfig {
        trusted_gateways: "10.0.1.0/24".parse().expect("trust list"),
        ..EndpointConfig::default()
    }
}

impl World {
    /// A world whose lines have these one-way latencies (ms), all up, and a client
    /// connecting at once.
    pub fn new(one_way_ms: &[u64], client: ClientConfig) -> World {
        Self::with_server(one_way_ms, client, server_config())
    }

    pub fn with_server(one_way_ms: &[u64], client: ClientConfig, server: EndpointConfig) -> World {
        let start = Instant::now();
        let lines: Vec<SimLine> = one_way_ms
            .iter()
            .enumerate()
            .map(|(i, &ms)| SimLine {
                line: Line::udp(proxy_addr(i)),
                one_way: Duration::from_millis(ms),
                mode: Mode::Up,
                socket: 0,
            })
            .collect();
        let list: Vec<Line> = lines.iter().map(|l| l.line).collect();
        World {
            start,
            now: start,
            server: Endpoint::new(server, start).expect("server config"),
            server_events: Vec::new(),
            client: Connection::connect(client, &list, start).expect("client config"),
            client_events: Vec::new(),
            lines,
            in_flight: Vec::new(),
            seq: 0,
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn set_mode(&mut self, line: usize, mode: Mode) {
        self.lines[line].mode = mode;
    }

    /// Replaces the server by a new endpoint: a restart with all state lost.
    pub fn restart_server(&mut self) {
        self.server = Endpoint::new(server_config(), self.now).expect("server config");
    }

    /// Runs until `duration` has passed.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        self.run_until(end, |_| false);
    }

    /// Runs until `done` holds after an event, or until `end`; returns whether it held.
    pub fn run_until(&mut self, end: Instant, mut done: impl FnMut(&World) -> bool) -> bool {
        loop {
            self.flush();
            if done(self) {
                return true;
            }
            let next = [
                self.in_flight.iter().map(|p| p.at).min(),
                self.server.poll_timeout(),
                self.client.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(at) if at <= end => self.step(at.max(self.now)),
                _ => {
                    self.now = end;
                    self.flush();
                    return done(self);
                }
            }
        }
    }

    fn step(&mut self, at: Instant) {
        self.now = at;
        let (due, later): (Vec<Packet>, Vec<Packet>) =
            self.in_flight.drain(..).partition(|p| p.at <= at);
        self.in_flight = later;
        let mut due = due;
        due.sort_by_key(|p| (p.at, p.seq));
        for packet in due {
            self.deliver(packet);
        }
        if self.server.poll_timeout().is_some_and(|t| t <= at) {
            self.server.handle_timeout(at);
        }
        if self.client.poll_timeout().is_some_and(|t| t <= at) {
            self.client.handle_timeout(at);
        }
    }

    fn deliver(&mut self, packet: Packet) {
        match packet.hop {
            Hop::Server { from } => self.server.handle_datagram(self.now, from, packet.payload),
            Hop::Client { line, socket } => {
                if self.lines[line].socket == socket {
                    let id = self.lines[line].line;
                    self.client.handle_datagram(self.now, id, packet.payload);
                }
            }
        }
    }

    fn push(&mut self, at: Instant, hop: Hop, payload: Bytes) {
        self.seq += 1;
        self.in_flight.push(Packet {
            at,
            seq: self.seq,
            hop,
            payload,
        });
    }

    /// Moves every output of both sides onto the lines, and collects events.
    fn flush(&mut self) {
        let now = self.now;
        while let Some(transmit) = self.client.poll_transmit() {
            let Some(index) = self.lines.iter().position(|l| l.line == transmit.line) else {
                continue;
            };
            let line = &mut self.lines[index];
            if transmit.fresh_socket {
                line.socket += 1;
            }
            let socket = line.socket;
            let arrive = now + line.one_way;
            match line.mode {
                Mode::Down => {}
                Mode::Refusing => self.push(
                    arrive,
                    Hop::Client {
                        line: index,
                        socket,
                    },
                    Bytes::new(),
                ),
                Mode::Up | Mode::StaleBelow(_) => {
                    let payload = fill_path_block(transmit.payload, client_socket(index, socket));
                    self.push(
                        arrive,
                        Hop::Server {
                            from: upstream(index, socket),
                        },
                        payload,
                    );
                }
            }
        }
        while let Some(transmit) = self.server.poll_transmit() {
            let Some(index) =
                (0..self.lines.len()).find(|&i| transmit.to.ip() == proxy_addr(i).ip())
            else {
                continue;
            };
            let socket = u32::from(transmit.to.port() - 30_000);
            let line = &self.lines[index];
            let relayed = match line.mode {
                Mode::Up => true,
                Mode::StaleBelow(fresh) => socket >= fresh,
                Mode::Down | Mode::Refusing => false,
            };
            if relayed {
                let arrive = now + line.one_way;
                self.push(
                    arrive,
                    Hop::Client {
                        line: index,
                        socket,
                    },
                    transmit.payload,
                );
            }
        }
        while let Some(event) = self.server.poll_event() {
            self.server_events.push((now, event));
        }
        while let Some(event) = self.client.poll_event() {
            self.client_events.push((now, event));
        }
    }

    /// Messages the server received, in order.
    pub fn server_messages(&self) -> Vec<Bytes> {
        self.server_events
            .iter()
            .filter_map(|(_, e)| match e {
                ServerEvent::Message { data, .. } => Some(data.clone()),
                _ => None,
            })
            .collect()
    }

    /// Messages the client received, in order.
    pub fn client_messages(&self) -> Vec<Bytes> {
        self.client_events
            .iter()
            .filter_map(|(_, e)| match e {
                ClientEvent::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// The client's switches: (when, from, to, reason).
    pub fn switches(
        &self,
    ) -> Vec<(
        Instant,
        Option<usize>,
        usize,
        nnet_core::event::SwitchReason,
    )> {
        let index = |line: &Line| {
            self.lines
                .iter()
                .position(|l| l.line == *line)
                .expect("known line")
        };
        self.client_events
            .iter()
            .filter_map(|(at, e)| match e {
                ClientEvent::Switched { from, to, reason } => {
                    Some((*at, from.as_ref().map(index), index(to), *reason))
                }
                _ => None,
            })
            .collect()
    }

    /// The client's close reason, if it closed.
    pub fn client_closed(&self) -> Option<nnet_core::event::CloseReason> {
        self.client_events.iter().find_map(|(_, e)| match e {
            ClientEvent::Closed(reason) => Some(*reason),
            _ => None,
        })
    }

    /// Whether the client reported `Connected`.
    pub fn connected(&self) -> bool {
        self.client_events
            .iter()
            .any(|(_, e)| matches!(e, ClientEvent::Connected { .. }))
    }

    /// Message `k` from each side: `c<k>` from the client, `s<k>` from the server (once
    /// it holds the session).
    pub fn send_both(&mut self, k: usize) {
        self.client.send(numbered("c", k)).expect("client send");
        if let Some(conn) = self.server.find(self.client.conv()) {
            self.server
                .send(conn, numbered("s", k))
                .expect("server send");
        }
    }

    /// The server's only session.
    pub fn conn(&self) -> nnet_core::event::ConnId {
        self.server
            .find(self.client.conv())
            .expect("the server holds the session")
    }
}

/// Message `k` of a stream tagged `tag`.
pub fn numbered(tag: &str, k: usize) -> Bytes {
    Bytes::from(format!("{tag}{k}"))
}

/// Messages 0..n of a stream tagged `tag`.
pub fn stream(tag: &str, n: usize) -> Vec<Bytes> {
    (0..n).map(|k| numbered(tag, k)).collect()
}

/// One failover measurement on two lines of 50 ms RTT with default settings: both
/// sides send a message every `every`; the current line dies at `kill_at`. Returns the
/// time from the death to the first message the server delivers that came over the
/// new line, and the same for the client (server to client).
pub fn failover_trial(kill_at: Duration, every: Duration) -> (Duration, Duration) {
    let mut world = World::new(&[25, 25], ClientConfig::default());
    let killed = world.start + kill_at;
    let mut k = 0;
    let mut killed_line = None;
    let end = killed + Duration::from_secs(10);
    while world.now < end {
        if killed_line.is_none() && world.now >= killed {
            let current = world.client.current_line().expect("on a line");
            let index = world
                .lines
                .iter()
                .position(|l| l.line == current)
                .expect("line");
            world.set_mode(index, Mode::Down);
            killed_line = Some(world.now);
        }
        world.send_both(k);
        k += 1;
        world.run_for(every);
    }
    let died = killed_line.expect("the line was killed");
    let moved = world
        .server_events
        .iter()
        .find(|(at, e)| *at >= died && matches!(e, ServerEvent::RemoteChanged { .. }))
        .map(|(at, _)| *at)
        .expect("the server saw the switch");
    let switched = world
        .client_events
        .iter()
        .find(|(at, e)| *at >= died && matches!(e, ClientEvent::Switched { .. }))
        .map(|(at, _)| *at)
        .expect("the client switched");
    let server_got = world
        .server_events
        .iter()
        .find(|(at, e)| *at >= moved && matches!(e, ServerEvent::Message { .. }))
        .map(|(at, _)| *at)
        .expect("a message over the new line");
    let client_got = world
        .client_events
        .iter()
        .find(|(at, e)| *at > switched && matches!(e, ClientEvent::Message(_)))
        .map(|(at, _)| *at)
        .expect("a message over the new line");
    (server_got - died, client_got - died)
}
