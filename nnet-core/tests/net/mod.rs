//! An in-memory network for endpoint and client tests: one server `Endpoint`, clients,
//! an optional gateway, fixed latency, and a clock stepped in explicit `Instant`s (no
//! sleeps). Every datagram and event is logged for the assertions.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use nnet_core::client::Connection;
use nnet_core::config::{ClientConfig, EndpointConfig};
use nnet_core::endpoint::Endpoint;
use nnet_core::event::{ClientEvent, ConnId, ServerEvent};
use nnet_core::gateway::fill_path_block;
use nnet_core::line::Line;
use nnet_core::wire::{Cmd, Header, PathBlock};

pub const SERVER: &str = "10.0.0.1:7000";
pub const GATEWAY: &str = "10.0.0.9:7000";
/// Where the gateway's upstream traffic comes from (the port is the client's index).
pub const GATEWAY_UPSTREAM_IP: &str = "10.0.0.9";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// A datagram on the wire.
#[derive(Clone, Debug)]
pub struct Packet {
    pub at: Instant,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub payload: Bytes,
}

pub struct Client {
    /// The client's own address.
    pub addr: SocketAddr,
    pub conn: Connection,
    pub events: Vec<ClientEvent>,
    /// Drop everything this client sends (and receives) while set.
    pub cut: bool,
    /// Drop only what this client sends while set.
    pub mute: bool,
}

pub struct Net {
    pub start: Instant,
    pub now: Instant,
    pub latency: Duration,
    pub server: Endpoint,
    pub server_events: Vec<ServerEvent>,
    pub clients: Vec<Client>,
    pub in_flight: Vec<Packet>,
    /// Every datagram the server sent, with what it answered (for size checks).
    pub server_sent: Vec<Packet>,
    /// Datagrams to the server from addresses that are not clients (injected).
    pub injected_replies: Vec<Packet>,
}

impl Net {
    pub fn new(config: EndpointConfig) -> Net {
        let start = Instant::now();
        Net {
            start,
            now: start,
            latency: Duration::from_millis(20),
            server: Endpoint::new(config, start).expect("valid endpoint config"),
            server_events: Vec::new(),
            clients: Vec::new(),
            in_flight: Vec::new(),
            server_sent: Vec::new(),
            injected_replies: Vec::new(),
        }
    }

    /// Adds a client at `client_addr` connecting to `remote` (the server or the
    /// gateway); returns its index.
    pub fn connect(&mut self, client_addr: &str, remote: &str, config: ClientConfig) -> usize {
        let lines = [Line::udp(addr(remote))];
        let conn = Connection::connect(config, &lines, self.now).expect("client config");
        self.clients.push(Client {
            addr: addr(client_addr),
            conn,
            events: Vec::new(),
            cut: false,
            mute: false,
        });
        self.clients.len() - 1
    }

    /// Replaces the server by a new endpoint: a restart with all state lost.
    pub fn restart_server(&mut self, config: EndpointConfig) {
        self.server = Endpoint::new(config, self.now).expect("valid endpoint config");
    }

    /// Sends a raw datagram to the server from `from` (arrives after the latency).
    pub fn inject(&mut self, from: SocketAddr, payload: Bytes) {
        self.in_flight.push(Packet {
            at: self.now + self.latency,
            from,
            to: addr(SERVER),
            payload,
        });
    }

    fn gateway_upstream(&self, client: usize) -> SocketAddr {
        SocketAddr::new(
            GATEWAY_UPSTREAM_IP.parse().expect("ip"),
            20_000 + client as u16,
        )
    }

    /// Runs the network for `duration` in 1 ms steps.
    pub fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.step();
            self.now += Duration::from_millis(1);
        }
    }

    /// Runs until `done` holds (checked every ms) or `limit` passes; returns whether it
    /// held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            self.step();
            if done(self) {
                return true;
            }
            self.now += Duration::from_millis(1);
        }
        false
    }

    fn step(&mut self) {
        let now = self.now;
        let (due, later): (Vec<Packet>, Vec<Packet>) =
            self.in_flight.drain(..).partition(|p| p.at <= now);
        self.in_flight = later;
        for packet in due {
            self.deliver(packet);
        }
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        for client in &mut self.clients {
            if client.conn.poll_timeout().is_some_and(|t| t <= now) {
                client.conn.handle_timeout(now);
            }
        }
        self.flush_outputs();
    }

    fn deliver(&mut self, packet: Packet) {
        let now = self.now;
        let server = addr(SERVER);
        let gateway = addr(GATEWAY);
        if packet.to == server {
            self.server
                .handle_datagram(now, packet.from, packet.payload);
        } else if packet.to == gateway {
            // Client -> gateway: forward upstream with the path block filled.
            if let Some(index) = self.clients.iter().position(|c| c.addr == packet.from) {
                let upstream = self.gateway_upstream(index);
                let payload = fill_path_block(packet.payload, packet.from);
                self.server.handle_datagram(now, upstream, payload);
            }
        } else if let Some(index) =
            (0..self.clients.len()).find(|&i| self.gateway_upstream(i) == packet.to)
        {
            // Server -> gateway upstream port: back to that client, from the gateway.
            let client = &mut self.clients[index];
            if !client.cut {
                client
                    .conn
                    .handle_datagram(now, Line::udp(gateway), packet.payload);
            }
        } else if let Some(client) = self.clients.iter_mut().find(|c| c.addr == packet.to) {
            if !client.cut {
                client
                    .conn
                    .handle_datagram(now, Line::udp(packet.from), packet.payload);
            }
        } else {
            self.injected_replies.push(packet);
        }
    }

    fn flush_outputs(&mut self) {
        let at = self.now + self.latency;
        let server = addr(SERVER);
        while let Some(transmit) = self.server.poll_transmit() {
            let packet = Packet {
                at,
                from: server,
                to: transmit.to,
                payload: transmit.payload,
            };
            self.server_sent.push(packet.clone());
            self.in_flight.push(packet);
        }
        while let Some(event) = self.server.poll_event() {
            self.server_events.push(event);
        }
        for client in &mut self.clients {
            while let Some(transmit) = client.conn.poll_transmit() {
                if !client.cut && !client.mute {
                    self.in_flight.push(Packet {
                        at,
                        from: client.addr,
                        to: transmit.line.addr,
                        payload: transmit.payload,
                    });
                }
            }
            while let Some(event) = client.conn.poll_event() {
                client.events.push(event);
            }
        }
    }

    /// Messages the server received, in order, from any session.
    pub fn server_messages(&self) -> Vec<Bytes> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Message { data, .. } => Some(data.clone()),
                _ => None,
            })
            .collect()
    }

    /// Messages client `index` received.
    pub fn client_messages(&self, index: usize) -> Vec<Bytes> {
        self.clients[index]
            .events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// Close events of client `index`.
    pub fn client_closes(&self, index: usize) -> Vec<nnet_core::event::CloseReason> {
        self.clients[index]
            .events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Closed(r) => Some(*r),
                _ => None,
            })
            .collect()
    }

    /// Close events of the server's sessions.
    pub fn server_closes(&self) -> Vec<nnet_core::event::CloseReason> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Closed { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }
}

impl Net {
    /// The server's session of client `index`, if it has one (found by its conv).
    pub fn session_of(&self, client: usize) -> Option<ConnId> {
        self.server.find(self.clients[client].conn.conv())
    }
}

/// Whether client `index` has reported `Connected`.
pub fn connected(net: &Net, client: usize) -> bool {
    net.clients[client]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Connected { .. }))
}

/// A message from text.
pub fn msg(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// A segment header with the fields tests vary (frg 0, wnd 128, len 0).
pub fn header(conv: u32, cmd: Cmd, sn: u32, una: u32, ts: u32) -> Header {
    Header {
        conv,
        cmd,
        frg: 0,
        wnd: 128,
        ts,
        sn,
        una,
        len: 0,
    }
}

/// A raw segment: `header` (its `len` set to the payload's), the NEW extra bytes when
/// given, then the payload.
pub fn segment(header: Header, extra: &[u8], payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    Header {
        len: payload.len() as u32,
        ..header
    }
    .encode(&mut out);
    out.put_slice(extra);
    out.put_slice(payload);
    out.freeze()
}

/// What a NEW carries between its header and payload: the path block and the token.
pub fn new_extra(path: PathBlock, token: [u8; 8]) -> Vec<u8> {
    let mut extra = path.to_bytes().to_vec();
    extra.extend_from_slice(&token);
    extra
}

/// A client's hello: an empty NEW sn = 0 on `conv` at clock `ts`, with an empty path
/// block and the conv as its token.
pub fn hello(conv: u32, ts: u32) -> Bytes {
    let extra = new_extra(PathBlock::Empty, u64::from(conv).to_le_bytes());
    segment(header(conv, Cmd::New, 0, 0, ts), &extra, &[])
}
