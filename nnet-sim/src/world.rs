//! The simulated world: clients with several lines, gateways, balancers, servers, the
//! links between them and a fault schedule, run on virtual time by one event queue.
//!
//! Addresses: client `i` is `100.64.x.y` (its sockets' ports change with each fresh
//! socket), gateway `g` is `10.0.1.(g+1)`, balancer `b` `10.0.2.(b+1)`, server `s`
//! `10.0.3.(s+1)`, all on port 7000. Links with loss and latency sit between each client
//! line and its gateway (both ways) and between each gateway and its upstream; balancer
//! to server is a perfect 1 ms hop. Servers trust `10.0.1.0/24` (the gateways) and
//! `10.0.2.0/24` (the balancers, which relay the gateways' datagrams unchanged).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nnet_core::client::Connection;
use nnet_core::config::{ClientConfig, EndpointConfig};
use nnet_core::endpoint::Endpoint;
use nnet_core::event::{ClientEvent, CloseReason, ConnId, ServerEvent, SwitchReason};
use nnet_core::line::Line;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::forge::{forged_datagram, Forgery, ATTACKER};
use crate::link::{Link, LinkConfig};
use crate::plain::{plain_index, PlainClientSpec, PlainHost};
use crate::proxy::{Proxy, Route, LISTEN_PORT};

/// What one side's application sends: `messages` messages of `size` bytes, one every
/// `every`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// How many messages.
    pub messages: usize,
    /// Time between two messages.
    pub every: Duration,
    /// Bytes per message (at least the tag it carries).
    pub size: usize,
}

impl Workload {
    /// Sends nothing.
    pub fn none() -> Workload {
        Workload {
            messages: 0,
            every: Duration::from_millis(100),
            size: 0,
        }
    }
}

/// One line of a client: which gateway, and the link both ways.
#[derive(Clone, Debug)]
pub struct LineSpec {
    /// Index of the gateway.
    pub gateway: usize,
    /// Client to gateway.
    pub up: LinkConfig,
    /// Gateway to client.
    pub down: LinkConfig,
}

/// A client of the world.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    /// Its lines, in order.
    pub lines: Vec<LineSpec>,
    /// Its settings (the seed is derived from the world's seed and the client index).
    pub config: ClientConfig,
    /// What it sends.
    pub workload: Workload,
    /// When it connects.
    pub start_at: Duration,
    /// When it calls `close()`, if it does.
    pub close_at: Option<Duration>,
}

/// Where a gateway sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// Straight to server `i`.
    Server(usize),
    /// To balancer `i`.
    Balancer(usize),
}

/// A gateway of the world.
#[derive(Clone, Debug)]
pub struct GatewaySpec {
    /// Its upstream.
    pub upstream: Upstream,
    /// The link to its upstream (both ways).
    pub link: LinkConfig,
}

/// Something that happens at a scheduled time.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// The link of a client's line stops carrying anything, both ways.
    LineDown {
        /// Client index.
        client: usize,
        /// Line index.
        line: usize,
    },
    /// The link of a client's line works again.
    LineUp {
        /// Client index.
        client: usize,
        /// Line index.
        line: usize,
    },
    /// A partition: the link between a gateway and its upstream stops carrying
    /// anything, both ways (every client line through that gateway goes dark at once).
    UpstreamDown(usize),
    /// The partition of [`Fault::UpstreamDown`] heals.
    UpstreamUp(usize),
    /// A gateway restarts: it forgets every proxy session.
    GatewayRestart(usize),
    /// A server crashes and restarts at once with all state lost.
    ServerRestart(usize),
    /// The server holding a client's session kicks it.
    Kick {
        /// Client index.
        client: usize,
        /// Application reason.
        reason: u32,
    },
    /// An attacker sends a forged datagram aimed at a client's session straight to the
    /// server holding it (server 0 if none does).
    Forge {
        /// The victim's client index.
        client: usize,
        /// What is forged.
        forgery: Forgery,
    },
}

/// The whole world: settings of every host, the faults and how long to run.
#[derive(Clone, Debug)]
pub struct WorldSpec {
    /// Every random choice follows from it.
    pub seed: u64,
    /// Number of servers.
    pub servers: usize,
    /// Their settings.
    pub server_config: EndpointConfig,
    /// What each server sends to each of its sessions.
    pub server_workload: Workload,
    /// Balancers: `true` routes by conv, `false` by client address; they spread over
    /// every server.
    pub balancers: Vec<bool>,
    /// Gateways.
    pub gateways: Vec<GatewaySpec>,
    /// Clients.
    pub clients: Vec<ClientSpec>,
    /// Plain KCP clients (the C engine), straight to a server.
    pub plain_clients: Vec<PlainClientSpec>,
    /// Faults at times since the start.
    pub faults: Vec<(Duration, Fault)>,
    /// How long the run lasts.
    pub duration: Duration,
}

/// A client host while the world runs.
#[derive(Debug)]
pub struct ClientHost {
    /// Its IP.
    pub ip: IpAddr,
    /// Its connection (`None` before it starts).
    pub conn: Option<Connection>,
    /// The conv its session ended up with.
    pub conv: Option<u32>,
    /// Messages it sent, in order.
    pub sent: Vec<Bytes>,
    /// Messages it received, in order.
    pub received: Vec<Bytes>,
    /// Its close, when and why.
    pub closed: Option<(Duration, CloseReason)>,
    /// Its line switches: when, from, to, why.
    pub switches: Vec<(Duration, Option<usize>, usize, SwitchReason)>,
    /// Kicks it received.
    pub kicked: Option<u32>,
    /// Its lines' gateways and links; the socket generation of each line.
    lines: Vec<ClientLine>,
    /// Its timer wake in the queue.
    timer: TimerWake,
}

#[derive(Debug)]
struct ClientLine {
    gateway: usize,
    up: Link,
    down: Link,
    socket: u16,
}

/// A server host.
#[derive(Debug)]
pub struct ServerHost {
    /// Its address.
    pub addr: SocketAddr,
    /// Its endpoint (replaced on a restart).
    pub endpoint: Endpoint,
    /// Live sessions: handle to conv and messages sent to it.
    live: HashMap<ConnId, (u32, usize)>,
    /// Restarts so far.
    pub restarts: u32,
    /// Its timer wake in the queue.
    timer: TimerWake,
}

/// A host's timer wake in the event queue. A host asks to be woken at its next
/// deadline after every activity; only a sooner request queues a new wake, and a wake
/// overtaken by a sooner one is stale when it comes up (it would otherwise re-arm
/// itself and multiply).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TimerWake(Option<Instant>);

impl TimerWake {
    /// The host wants to be woken at `at`: whether a wake must be queued for it.
    fn arm(&mut self, at: Instant) -> bool {
        let sooner = self.0.is_none_or(|queued| at < queued);
        if sooner {
            self.0 = Some(at);
        }
        sooner
    }

    /// The wake queued for `at` came up: whether it is the live one (then it is spent).
    fn fire(&mut self, at: Instant) -> bool {
        let live = self.0 == Some(at);
        if live {
            self.0 = None;
        }
        live
    }
}

/// A datagram or a wake-up in the event queue.
#[derive(Debug)]
enum Wake {
    Packet {
        from: SocketAddr,
        to: SocketAddr,
        payload: Bytes,
    },
    ClientTimer(usize),
    ServerTimer(usize),
    PlainTimer(usize),
    PlainStart(usize),
    PlainSend(usize),
    ClientStart(usize),
    ClientSend(usize),
    ClientClose(usize),
    ServerSend,
    Fault(usize),
}

/// Which link a datagram crosses.
#[derive(Clone, Copy, Debug)]
enum LinkRef {
    ClientUp(usize, usize),
    ClientDown(usize, usize),
    GatewayUp(usize),
    GatewayDown(usize),
    PlainUp(usize),
    PlainDown(usize),
}

/// A line of the trace: when and what.
pub type TraceLine = (Duration, String);

/// The world while it runs, and what happened.
#[derive(Debug)]
pub struct World {
    /// Its settings.
    pub spec: WorldSpec,
    start: Instant,
    now: Instant,
    rng: SmallRng,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    wakes: HashMap<u64, Wake>,
    seq: u64,
    /// Clients, by index.
    pub clients: Vec<ClientHost>,
    /// Gateways, by index.
    pub gateways: Vec<Proxy>,
    gateway_links: Vec<(Link, Link)>,
    /// Balancers, by index.
    pub balancers: Vec<Proxy>,
    /// Servers, by index.
    pub servers: Vec<ServerHost>,
    /// Plain KCP clients, by index.
    pub plain: Vec<PlainHost>,
    /// Datagrams the attacker of [`Fault::Forge`] got back.
    pub attacker_received: Vec<Bytes>,
    /// Messages each server sent, by conv.
    pub server_sent: HashMap<u32, Vec<Bytes>>,
    /// Messages servers delivered, by conv.
    pub server_received: HashMap<u32, Vec<Bytes>>,
    /// Real IP of each session when accepted or changed, by conv.
    pub real_ips: Vec<(u32, SocketAddr)>,
    /// Every event of every host, in order.
    pub trace: Vec<TraceLine>,
    /// Most sessions any server held at once.
    pub peak_sessions: usize,
    /// Most datagrams in flight at once.
    pub peak_in_flight: usize,
    in_flight: usize,
    /// Wakes handled in a row without the clock moving.
    same_instant: u32,
    /// Set when the run stopped because time stood still (a host asking to be woken
    /// at the same instant over and over): a livelock, reported as a violation.
    pub stalled: Option<Duration>,
}

/// Client `i`'s IP.
pub fn client_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(100, 64, (i / 250) as u8, (i % 250) as u8 + 1))
}

fn host_ip(net: u8, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, net, i as u8 + 1))
}

/// The message `k` of a stream `tag`, padded to `size` bytes.
fn message(tag: &str, k: usize, size: usize) -> Bytes {
    let mut text = format!("{tag}:{k}:").into_bytes();
    if text.len() < size {
        let fill = (k % 251) as u8;
        text.resize(size, fill);
    }
    Bytes::from(text)
}

impl World {
    /// Builds the world at `start` (any `Instant`: only differences matter).
    pub fn new(spec: WorldSpec, start: Instant) -> World {
        let servers: Vec<ServerHost> = (0..spec.servers)
            .map(|i| ServerHost {
                addr: SocketAddr::new(host_ip(3, i), LISTEN_PORT),
                endpoint: Endpoint::new(server_config(&spec, i, 0), start)
                    .expect("valid server config"),
                live: HashMap::new(),
                restarts: 0,
                timer: TimerWake::default(),
            })
            .collect();
        let server_addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
        let balancers = spec
            .balancers
            .iter()
            .enumerate()
            .map(|(i, &by_conv)| {
                let route = if by_conv {
                    Route::ByConv(server_addrs.clone())
                } else {
                    Route::ByClientAddr(server_addrs.clone())
                };
                Proxy::new(host_ip(2, i), false, route)
            })
            .collect();
        let gateways = spec
            .gateways
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let to = match g.upstream {
                    Upstream::Server(s) => server_addrs[s],
                    Upstream::Balancer(b) => SocketAddr::new(host_ip(2, b), LISTEN_PORT),
                };
                Proxy::new(host_ip(1, i), true, Route::To(to))
            })
            .collect();
        let gateway_links = spec
            .gateways
            .iter()
            .map(|g| (Link::new(g.link.clone()), Link::new(g.link.clone())))
            .collect();
        let clients = spec
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| ClientHost {
                ip: client_ip(i),
                conn: None,
                conv: None,
                sent: Vec::new(),
                received: Vec::new(),
                closed: None,
                switches: Vec::new(),
                kicked: None,
                timer: TimerWake::default(),
                lines: c
                    .lines
                    .iter()
                    .map(|l| ClientLine {
                        gateway: l.gateway,
                        up: Link::new(l.up.clone()),
                        down: Link::new(l.down.clone()),
                        socket: 0,
                    })
                    .collect(),
            })
            .collect();
        let plain = spec
            .plain_clients
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // The application picks a conv for each plain client.
                let mut rng = SmallRng::seed_from_u64(spec.seed ^ 0x706c_6169_6e00 ^ i as u64);
                let conv = rng.random_range(1..=u32::MAX);
                PlainHost::new(i, p, conv)
            })
            .collect();
        let mut world = World {
            rng: SmallRng::seed_from_u64(spec.seed),
            start,
            now: start,
            queue: BinaryHeap::new(),
            wakes: HashMap::new(),
            seq: 0,
            clients,
            gateways,
            gateway_links,
            balancers,
            servers,
            plain,
            attacker_received: Vec::new(),
            server_sent: HashMap::new(),
            server_received: HashMap::new(),
            real_ips: Vec::new(),
            trace: Vec::new(),
            peak_sessions: 0,
            peak_in_flight: 0,
            in_flight: 0,
            same_instant: 0,
            stalled: None,
            spec,
        };
        for i in 0..world.clients.len() {
            let at = start + world.spec.clients[i].start_at;
            world.schedule(at, Wake::ClientStart(i));
            if let Some(close) = world.spec.clients[i].close_at {
                world.schedule(start + close, Wake::ClientClose(i));
            }
        }
        for i in 0..world.plain.len() {
            let at = start + world.spec.plain_clients[i].start_at;
            world.schedule(at, Wake::PlainStart(i));
        }
        for i in 0..world.spec.faults.len() {
            let at = start + world.spec.faults[i].0;
            world.schedule(at, Wake::Fault(i));
        }
        if world.spec.server_workload.messages > 0 {
            let at = start + world.spec.server_workload.every;
            world.schedule(at, Wake::ServerSend);
        }
        world
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn schedule(&mut self, at: Instant, wake: Wake) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.wakes.insert(self.seq, wake);
    }

    fn log(&mut self, line: String) {
        let at = self.elapsed();
        self.trace.push((at, line));
    }

    /// Runs the whole schedule.
    pub fn run(&mut self) {
        self.run_until(self.spec.duration);
    }

    /// Runs every event up to `until` since the start (at most the run's duration) and
    /// leaves the clock there; call again to go on. A report samples the world this
    /// way; running in steps gives the same run as running at once.
    pub fn run_until(&mut self, until: Duration) {
        /// Wakes at one instant beyond which time is taken to stand still.
        const STALL: u32 = 200_000;
        let end = self.start + until.min(self.spec.duration);
        while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at > end || self.stalled.is_some() {
                break;
            }
            self.same_instant = if at <= self.now {
                self.same_instant + 1
            } else {
                0
            };
            if self.same_instant > STALL {
                self.stalled = Some(self.elapsed());
                return;
            }
            self.queue.pop();
            let Some(wake) = self.wakes.remove(&seq) else {
                continue;
            };
            self.now = self.now.max(at);
            self.handle(at, wake);
        }
        if self.stalled.is_none() {
            self.now = self.now.max(end);
        }
    }

    /// The links on a client's line: client to gateway and back, then the line's
    /// gateway to its upstream and back (those two are shared by every client on it).
    pub fn line_links(&self, client: usize, line: usize) -> [&Link; 4] {
        let l = &self.clients[client].lines[line];
        let (to_upstream, from_upstream) = &self.gateway_links[l.gateway];
        [&l.up, &l.down, to_upstream, from_upstream]
    }

    fn handle(&mut self, at: Instant, wake: Wake) {
        let now = self.now;
        match wake {
            Wake::Packet { from, to, payload } => {
                self.in_flight -= 1;
                self.deliver(from, to, payload);
            }
            Wake::ClientTimer(i) => {
                if !self.clients[i].timer.fire(at) {
                    return;
                }
                if let Some(conn) = &mut self.clients[i].conn {
                    if conn.poll_timeout().is_some_and(|t| t <= now) {
                        conn.handle_timeout(now);
                    }
                }
                // Drains and schedules the next timer (also when this one was early).
                self.after_client(i);
            }
            Wake::ServerTimer(s) => {
                if !self.servers[s].timer.fire(at) {
                    return;
                }
                let endpoint = &mut self.servers[s].endpoint;
                if endpoint.poll_timeout().is_some_and(|t| t <= now) {
                    endpoint.handle_timeout(now);
                }
                self.after_server(s);
            }
            Wake::PlainTimer(i) => {
                if !self.plain[i].timer.fire(at) {
                    return;
                }
                let now_ms = self.ms();
                self.plain[i].update(now_ms);
                self.after_plain(i);
            }
            Wake::PlainStart(i) => {
                let config = self.spec.plain_clients[i].config;
                let now_ms = self.ms();
                self.plain[i].start(&config, now_ms);
                self.log(format!(
                    "plain client {i} starts, conv {}",
                    self.plain[i].conv
                ));
                self.schedule(now, Wake::PlainSend(i));
                self.after_plain(i);
            }
            Wake::PlainSend(i) => {
                let workload = self.spec.plain_clients[i].workload.clone();
                let host = &mut self.plain[i];
                if host.sent.len() >= workload.messages {
                    return;
                }
                let m = message(&format!("p{i}"), host.sent.len(), workload.size);
                host.send(m);
                if host.sent.len() < workload.messages {
                    self.schedule(now + workload.every, Wake::PlainSend(i));
                }
                self.after_plain(i);
            }
            Wake::ClientStart(i) => self.start_client(i),
            Wake::ClientSend(i) => self.client_send(i),
            Wake::ClientClose(i) => {
                if let Some(conn) = &mut self.clients[i].conn {
                    conn.close(now);
                }
                self.log(format!("client {i} closes"));
                self.after_client(i);
            }
            Wake::ServerSend => self.server_send(),
            Wake::Fault(f) => self.fault(f),
        }
    }

    fn start_client(&mut self, i: usize) {
        let lines: Vec<Line> = self.clients[i]
            .lines
            .iter()
            .map(|l| Line::udp(self.gateways[l.gateway].listen_addr()))
            .collect();
        let config = ClientConfig {
            seed: self
                .spec
                .seed
                .wrapping_mul(0x9e37_79b9)
                .wrapping_add(i as u64 + 1),
            ..self.spec.clients[i].config.clone()
        };
        let conn = Connection::connect(config, &lines, self.now).expect("valid client config");
        self.clients[i].conn = Some(conn);
        self.log(format!("client {i} connects over {} lines", lines.len()));
        if self.spec.clients[i].workload.messages > 0 {
            let at = self.now;
            self.schedule(at, Wake::ClientSend(i));
        }
        self.after_client(i);
    }

    fn client_send(&mut self, i: usize) {
        let workload = self.spec.clients[i].workload.clone();
        let host = &mut self.clients[i];
        let Some(conn) = &mut host.conn else {
            return;
        };
        if host.sent.len() >= workload.messages || host.closed.is_some() || conn.is_closed() {
            return;
        }
        let m = message(&format!("c{i}"), host.sent.len(), workload.size);
        if conn.send(m.clone()).is_ok() {
            host.sent.push(m);
        }
        if host.sent.len() < workload.messages {
            let at = self.now + workload.every;
            self.schedule(at, Wake::ClientSend(i));
        }
        self.after_client(i);
    }

    fn server_send(&mut self) {
        let workload = self.spec.server_workload.clone();
        let mut more = false;
        for s in 0..self.servers.len() {
            let server = &mut self.servers[s];
            let mut conns: Vec<(ConnId, u32, usize)> = server
                .live
                .iter()
                .map(|(&c, &(conv, n))| (c, conv, n))
                .collect();
            conns.sort();
            for (conn, conv, n) in conns {
                if n >= workload.messages {
                    continue;
                }
                more = true;
                let m = message(&format!("s{conv}"), n, workload.size);
                if server.endpoint.send(conn, m.clone()).is_ok() {
                    self.server_sent.entry(conv).or_default().push(m);
                    if let Some(entry) = server.live.get_mut(&conn) {
                        entry.1 += 1;
                    }
                }
            }
            self.after_server(s);
        }
        let starting = self
            .clients
            .iter()
            .any(|c| c.conn.is_none() || c.conv.is_none())
            || self.plain.iter().any(|p| !p.started());
        if more || starting || self.servers.iter().any(|s| !s.live.is_empty()) {
            let at = self.now + workload.every;
            self.schedule(at, Wake::ServerSend);
        }
    }

    fn fault(&mut self, f: usize) {
        let fault = self.spec.faults[f].1.clone();
        self.log(format!("fault {fault:?}"));
        match fault {
            Fault::LineDown { client, line } | Fault::LineUp { client, line } => {
                let up = matches!(fault, Fault::LineUp { .. });
                let l = &mut self.clients[client].lines[line];
                l.up.up = up;
                l.down.up = up;
            }
            Fault::UpstreamDown(g) | Fault::UpstreamUp(g) => {
                let up = matches!(fault, Fault::UpstreamUp(_));
                let (to_upstream, from_upstream) = &mut self.gateway_links[g];
                to_upstream.up = up;
                from_upstream.up = up;
            }
            Fault::GatewayRestart(g) => self.gateways[g].restart(),
            Fault::ServerRestart(s) => {
                let server = &mut self.servers[s];
                server.restarts += 1;
                let config = server_config(&self.spec, s, server.restarts);
                server.endpoint = Endpoint::new(config, self.now).expect("valid server config");
                server.live.clear();
            }
            Fault::Forge { client, forgery } => {
                let conv = self.clients[client]
                    .conv
                    .or_else(|| self.clients[client].conn.as_ref().map(|c| c.conv()))
                    .unwrap_or(1);
                let server = (0..self.servers.len())
                    .find(|&s| self.servers[s].endpoint.find(conv).is_some())
                    .unwrap_or(0);
                // A clock well ahead of the client's, so no freshness rule stops it.
                let ts = u32::try_from(self.elapsed().as_millis())
                    .unwrap_or(u32::MAX)
                    .wrapping_add(100_000);
                let payload = forged_datagram(forgery, conv, self.clients[client].ip, ts);
                let to = self.servers[server].addr;
                self.send(ATTACKER, to, payload);
            }
            Fault::Kick { client, reason } => {
                if let Some(conv) = self.clients[client].conv {
                    for s in 0..self.servers.len() {
                        if let Some(conn) = self.servers[s].endpoint.find(conv) {
                            let now = self.now;
                            let _ = self.servers[s].endpoint.kick(conn, reason, now);
                            self.after_server(s);
                        }
                    }
                }
            }
        }
    }

    /// Carries a datagram from `from` over the link between the two hosts.
    fn send(&mut self, from: SocketAddr, to: SocketAddr, payload: Bytes) {
        let now = self.now;
        let arrivals = match self.link_between(from, to) {
            Some(link) => {
                let (link, rng) = self.link_and_rng(link);
                link.send(now, payload.len(), rng)
            }
            None => vec![now + Duration::from_millis(1)],
        };
        for at in arrivals {
            self.in_flight += 1;
            self.peak_in_flight = self.peak_in_flight.max(self.in_flight);
            self.schedule(
                at,
                Wake::Packet {
                    from,
                    to,
                    payload: payload.clone(),
                },
            );
        }
    }

    /// The link a datagram from `from` to `to` crosses (`None`: a perfect 1 ms hop).
    fn link_between(&self, from: SocketAddr, to: SocketAddr) -> Option<LinkRef> {
        if let Some((c, l)) = self.client_line_of(from) {
            return Some(LinkRef::ClientUp(c, l));
        }
        if let Some((c, l)) = self.client_line_of(to) {
            return Some(LinkRef::ClientDown(c, l));
        }
        if let Some(p) = plain_index(from, self.plain.len()) {
            return Some(LinkRef::PlainUp(p));
        }
        if let Some(p) = plain_index(to, self.plain.len()) {
            return Some(LinkRef::PlainDown(p));
        }
        if let Some(g) = self.gateway_of(from.ip()) {
            return Some(LinkRef::GatewayUp(g));
        }
        self.gateway_of(to.ip()).map(LinkRef::GatewayDown)
    }

    fn link_and_rng(&mut self, link: LinkRef) -> (&mut Link, &mut SmallRng) {
        let link = match link {
            LinkRef::ClientUp(c, l) => &mut self.clients[c].lines[l].up,
            LinkRef::ClientDown(c, l) => &mut self.clients[c].lines[l].down,
            LinkRef::GatewayUp(g) => &mut self.gateway_links[g].0,
            LinkRef::GatewayDown(g) => &mut self.gateway_links[g].1,
            LinkRef::PlainUp(p) => &mut self.plain[p].up,
            LinkRef::PlainDown(p) => &mut self.plain[p].down,
        };
        (link, &mut self.rng)
    }

    fn client_line_of(&self, addr: SocketAddr) -> Option<(usize, usize)> {
        let IpAddr::V4(ip) = addr.ip() else {
            return None;
        };
        let [a, b, x, y] = ip.octets();
        if (a, b) != (100, 64) || y == 0 {
            return None;
        }
        let client = usize::from(x) * 250 + usize::from(y) - 1;
        let line = usize::from(addr.port().checked_sub(10_000)? / 1000);
        (client < self.clients.len() && line < self.clients[client].lines.len())
            .then_some((client, line))
    }

    fn gateway_of(&self, ip: IpAddr) -> Option<usize> {
        self.gateways.iter().position(|g| g.ip == ip)
    }

    fn deliver(&mut self, from: SocketAddr, to: SocketAddr, payload: Bytes) {
        if let Some((c, l)) = self.client_line_of(to) {
            let line = &self.clients[c].lines[l];
            // A datagram for a socket the client has replaced is dropped.
            if to.port() != socket_port(l, line.socket) {
                return;
            }
            let id = Line::udp(self.gateways[line.gateway].listen_addr());
            let now = self.now;
            if let Some(conn) = &mut self.clients[c].conn {
                conn.handle_datagram(now, id, payload);
            }
            self.after_client(c);
        } else if let Some(p) = plain_index(to, self.plain.len()) {
            self.plain[p].input(&payload);
            self.after_plain(p);
        } else if to == ATTACKER {
            self.attacker_received.push(payload);
        } else if let Some(s) = self.servers.iter().position(|s| s.addr == to) {
            let now = self.now;
            self.servers[s].endpoint.handle_datagram(now, from, payload);
            self.after_server(s);
        } else if let Some(g) = self.gateway_of(to.ip()) {
            if let Some((from, to, payload)) = self.gateways[g].handle(from, to, payload) {
                self.send(from, to, payload);
            }
        } else if let Some(b) = self.balancers.iter().position(|b| b.ip == to.ip()) {
            if let Some((from, to, payload)) = self.balancers[b].handle(from, to, payload) {
                self.send(from, to, payload);
            }
        }
    }

    /// Drains a client's transmits and events and schedules its next timer.
    fn after_client(&mut self, i: usize) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        {
            let host = &mut self.clients[i];
            let Some(conn) = &mut host.conn else {
                return;
            };
            while let Some(t) = conn.poll_transmit() {
                out.push(t);
            }
            while let Some(e) = conn.poll_event() {
                events.push(e);
            }
        }
        for t in out {
            let Some(l) = self.clients[i]
                .lines
                .iter()
                .position(|l| self.gateways[l.gateway].listen_addr() == t.line.addr)
            else {
                continue;
            };
            if t.fresh_socket {
                self.clients[i].lines[l].socket += 1;
            }
            let from = SocketAddr::new(
                self.clients[i].ip,
                socket_port(l, self.clients[i].lines[l].socket),
            );
            self.send(from, t.line.addr, t.payload);
        }
        for event in events {
            self.client_event(i, event);
        }
        if let Some(at) = self.clients[i].conn.as_ref().and_then(|c| c.poll_timeout()) {
            let at = at.max(self.now);
            if self.clients[i].timer.arm(at) {
                self.schedule(at, Wake::ClientTimer(i));
            }
        }
    }

    fn client_event(&mut self, i: usize, event: ClientEvent) {
        let at = self.elapsed();
        let line_index = |host: &ClientHost, gateways: &[Proxy], line: &Line| {
            host.lines
                .iter()
                .position(|l| gateways[l.gateway].listen_addr() == line.addr)
                .unwrap_or(usize::MAX)
        };
        match &event {
            ClientEvent::Message(m) => {
                self.clients[i].received.push(m.clone());
                return; // Not traced: too many.
            }
            ClientEvent::Connected { conv } => self.clients[i].conv = Some(*conv),
            ClientEvent::Switched { from, to, reason } => {
                let host = &self.clients[i];
                let from = from.as_ref().map(|f| line_index(host, &self.gateways, f));
                let to = line_index(host, &self.gateways, to);
                self.clients[i].switches.push((at, from, to, *reason));
            }
            ClientEvent::Kicked(reason) => self.clients[i].kicked = Some(*reason),
            ClientEvent::Closed(reason) => self.clients[i].closed = Some((at, *reason)),
            ClientEvent::ProbeFailed { .. } => {}
        }
        self.log(format!("client {i}: {event:?}"));
    }

    /// Milliseconds since the start: the plain clients' clock.
    fn ms(&self) -> u32 {
        u32::try_from(self.elapsed().as_millis()).unwrap_or(u32::MAX)
    }

    /// Sends a plain client's output and schedules its next update.
    fn after_plain(&mut self, i: usize) {
        let to = self.servers[self.spec.plain_clients[i].server].addr;
        let from = self.plain[i].addr;
        for payload in self.plain[i].take_output() {
            self.send(from, to, payload);
        }
        let now_ms = self.ms();
        if let Some(next) = self.plain[i].next_update_ms(now_ms) {
            // `ikcp_check` answers "now" while a segment is due but the flush interval
            // is not: its clock has millisecond steps, so the next step is the soonest.
            let next = next.max(now_ms.saturating_add(1));
            let at = self.start + Duration::from_millis(u64::from(next));
            if self.plain[i].timer.arm(at) {
                self.schedule(at, Wake::PlainTimer(i));
            }
        }
    }

    /// Drains a server's transmits and events and schedules its next timer.
    fn after_server(&mut self, s: usize) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        let server = &mut self.servers[s];
        while let Some(t) = server.endpoint.poll_transmit() {
            out.push(t);
        }
        while let Some(e) = server.endpoint.poll_event() {
            events.push(e);
        }
        let from = server.addr;
        self.peak_sessions = self.peak_sessions.max(server.endpoint.len());
        for t in out {
            self.send(from, t.to, t.payload);
        }
        for event in events {
            self.server_event(s, event);
        }
        if let Some(at) = self.servers[s].endpoint.poll_timeout() {
            let at = at.max(self.now);
            if self.servers[s].timer.arm(at) {
                self.schedule(at, Wake::ServerTimer(s));
            }
        }
    }

    fn server_event(&mut self, s: usize, event: ServerEvent) {
        match &event {
            ServerEvent::Message { conn, data } => {
                if let Some(&(conv, _)) = self.servers[s].live.get(conn) {
                    self.server_received
                        .entry(conv)
                        .or_default()
                        .push(data.clone());
                }
                return;
            }
            ServerEvent::Accepted {
                conn,
                conv,
                real_ip,
                ..
            } => {
                self.servers[s].live.insert(*conn, (*conv, 0));
                self.real_ips.push((*conv, *real_ip));
            }
            ServerEvent::RealIpChanged { conn, real_ip } => {
                if let Some(&(conv, _)) = self.servers[s].live.get(conn) {
                    self.real_ips.push((conv, *real_ip));
                }
            }
            ServerEvent::Closed { conn, .. } => {
                self.servers[s].live.remove(conn);
            }
            ServerEvent::RemoteChanged { .. } => {}
        }
        self.log(format!("server {s}: {event:?}"));
    }
}

/// The port of a client's socket: line `line`, generation `socket`.
fn socket_port(line: usize, socket: u16) -> u16 {
    10_000 + line as u16 * 1000 + socket % 1000
}

/// Server `i`'s settings after `restarts` restarts (a fresh seed each time, like a new
/// process).
fn server_config(spec: &WorldSpec, i: usize, restarts: u32) -> EndpointConfig {
    EndpointConfig {
        seed: spec
            .seed
            .wrapping_add(0x517c_c1b7_2722_0a95_u64.wrapping_mul(i as u64 + 1))
            .wrapping_add(u64::from(restarts)),
        // The gateways, and the balancers that relay their traffic (PROTOCOL.md
        // section 7: servers trust the hops their gateways' datagrams arrive from).
        trusted_gateways: "10.0.1.0/24, 10.0.2.0/24".parse().expect("trust list"),
        ..spec.server_config.clone()
    }
}
