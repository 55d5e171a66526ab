//! Plain KCP clients: the reference C KCP (`ikcp.c` through `nnet-ckcp`) talking
//! straight to a server, with no lines, no NEW and no FIN (PROTOCOL.md section 4: the
//! server accepts a PUSH sn = 0, una = 0 as a plain client starting, bound to its
//! address).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use nnet_ckcp::{CKcp, CKcpConfig};

use crate::link::{Link, LinkConfig};
use crate::world::{TimerWake, Workload};

/// The port every plain client sends from.
const PLAIN_PORT: u16 = 9000;

/// A plain KCP client of the world.
#[derive(Clone, Debug)]
pub struct PlainClientSpec {
    /// Index of the server it talks to.
    pub server: usize,
    /// The link to the server and back (each way has its own copy).
    pub link: LinkConfig,
    /// The C engine's settings.
    pub config: CKcpConfig,
    /// What it sends.
    pub workload: Workload,
    /// When it starts.
    pub start_at: Duration,
}

/// Plain client `i`'s address: `100.65.x.y:9000`.
pub fn plain_addr(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(100, 65, (i / 250) as u8, (i % 250) as u8 + 1);
    SocketAddr::new(IpAddr::V4(ip), PLAIN_PORT)
}

/// The plain client an address belongs to, if any.
pub fn plain_index(addr: SocketAddr, count: usize) -> Option<usize> {
    let IpAddr::V4(ip) = addr.ip() else {
        return None;
    };
    let [a, b, x, y] = ip.octets();
    if (a, b) != (100, 65) || y == 0 || addr.port() != PLAIN_PORT {
        return None;
    }
    let i = usize::from(x) * 250 + usize::from(y) - 1;
    (i < count).then_some(i)
}

/// A plain client while the world runs.
#[derive(Debug)]
pub struct PlainHost {
    /// Its address.
    pub addr: SocketAddr,
    /// Its conversation id (chosen by the world, like an application would).
    pub conv: u32,
    /// Messages it sent, in order.
    pub sent: Vec<Bytes>,
    /// Messages it received, in order.
    pub received: Vec<Bytes>,
    /// Datagrams its engine refused (`ikcp_input` < 0: another conv, or garbage such as
    /// nnet's FIN, which plain KCP does not know).
    pub refused: u64,
    pub(crate) up: Link,
    pub(crate) down: Link,
    pub(crate) timer: TimerWake,
    kcp: Option<CKcp>,
}

impl PlainHost {
    /// A host for plain client `index` with `conv`; its engine starts with [`start`](Self::start).
    pub fn new(index: usize, spec: &PlainClientSpec, conv: u32) -> PlainHost {
        PlainHost {
            addr: plain_addr(index),
            conv,
            sent: Vec::new(),
            received: Vec::new(),
            refused: 0,
            up: Link::new(spec.link.clone()),
            down: Link::new(spec.link.clone()),
            timer: TimerWake::default(),
            kcp: None,
        }
    }

    /// Creates the C engine at `now_ms` (milliseconds since the world's start).
    pub fn start(&mut self, config: &CKcpConfig, now_ms: u32) {
        let mut kcp = CKcp::new(self.conv, config).expect("valid C KCP settings");
        kcp.update(now_ms);
        self.kcp = Some(kcp);
    }

    /// Whether the engine exists.
    pub fn started(&self) -> bool {
        self.kcp.is_some()
    }

    /// Queues `message`; `false` when the engine refused it.
    pub fn send(&mut self, message: Bytes) -> bool {
        let Some(kcp) = &mut self.kcp else {
            return false;
        };
        if kcp.send(&message).is_err() {
            return false;
        }
        self.sent.push(message);
        true
    }

    /// Feeds a datagram from the server and takes every whole message.
    pub fn input(&mut self, datagram: &[u8]) {
        let Some(kcp) = &mut self.kcp else {
            return;
        };
        if kcp.input(datagram).is_err() {
            self.refused += 1;
        }
        while let Some(message) = kcp.recv() {
            self.received.push(Bytes::from(message));
        }
    }

    /// Runs the engine's clock to `now_ms` (it flushes when due).
    pub fn update(&mut self, now_ms: u32) {
        if let Some(kcp) = &mut self.kcp {
            kcp.update(now_ms);
        }
    }

    /// Datagrams the engine wrote since the last call.
    pub fn take_output(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if let Some(kcp) = &mut self.kcp {
            kcp.drain_output(|d| out.push(Bytes::copy_from_slice(d)));
        }
        out
    }

    /// When the engine next wants `update` (milliseconds since the world's start).
    pub fn next_update_ms(&self, now_ms: u32) -> Option<u32> {
        self.kcp.as_ref().map(|kcp| kcp.check(now_ms))
    }
}
