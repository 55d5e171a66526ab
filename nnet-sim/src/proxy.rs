//! UDP proxies: gateways (fill the client's address into NEW path blocks) and
//! balancers (spread sessions over servers by conv or by client address). Both keep a
//! session per client address with an upstream port of their own, like nginx's UDP
//! proxy, and relay answers back to the address that session belongs to.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use nnet_core::gateway::fill_path_block;
use nnet_core::wire::peek_conv;

/// The port a proxy listens on for its clients.
pub const LISTEN_PORT: u16 = 7000;
/// The first upstream port a proxy hands out.
const FIRST_UPSTREAM_PORT: u16 = 20_000;

/// Where a proxy sends what its clients send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Always to this address.
    To(SocketAddr),
    /// To one of these servers, chosen by the datagram's conv (a session stays on its
    /// server whichever line it comes from).
    ByConv(Vec<SocketAddr>),
    /// To one of these servers, chosen by the client's address (a client that changes
    /// lines may land on another server).
    ByClientAddr(Vec<SocketAddr>),
}

/// A UDP proxy.
#[derive(Clone, Debug)]
pub struct Proxy {
    /// Its IP: it listens on [`LISTEN_PORT`] and sends upstream from other ports.
    pub ip: IpAddr,
    /// Fill NEW path blocks with the client's address (a gateway).
    pub fill_path: bool,
    /// Where client datagrams go.
    pub route: Route,
    /// A proxy that is down drops everything.
    pub up: bool,
    by_client: HashMap<SocketAddr, u16>,
    by_port: HashMap<u16, SocketAddr>,
    next_port: u16,
}

impl Proxy {
    /// A proxy at `ip` that is up.
    pub fn new(ip: IpAddr, fill_path: bool, route: Route) -> Proxy {
        Proxy {
            ip,
            fill_path,
            route,
            up: true,
            by_client: HashMap::new(),
            by_port: HashMap::new(),
            next_port: FIRST_UPSTREAM_PORT,
        }
    }

    /// The address clients send to.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, LISTEN_PORT)
    }

    /// Forgets every session (a restart): answers to old upstream ports are dropped and
    /// clients get new upstream ports.
    pub fn restart(&mut self) {
        self.by_client.clear();
        self.by_port.clear();
    }

    /// Sessions held.
    pub fn sessions(&self) -> usize {
        self.by_client.len()
    }

    /// A datagram arrived from `from` to `to` (one of this proxy's addresses). Returns
    /// what to send: (from, to, payload), or `None` to drop it.
    pub fn handle(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        payload: Bytes,
    ) -> Option<(SocketAddr, SocketAddr, Bytes)> {
        if !self.up {
            return None;
        }
        if to.port() == LISTEN_PORT {
            let port = self.session_port(from);
            let dest = self.destination(from, &payload)?;
            let payload = if self.fill_path {
                fill_path_block(payload, from)
            } else {
                payload
            };
            Some((SocketAddr::new(self.ip, port), dest, payload))
        } else {
            let client = *self.by_port.get(&to.port())?;
            Some((self.listen_addr(), client, payload))
        }
    }

    fn session_port(&mut self, client: SocketAddr) -> u16 {
        if let Some(&port) = self.by_client.get(&client) {
            return port;
        }
        let port = self.next_port;
        self.next_port = self.next_port.wrapping_add(1).max(FIRST_UPSTREAM_PORT);
        self.by_client.insert(client, port);
        self.by_port.insert(port, client);
        port
    }

    fn destination(&self, from: SocketAddr, payload: &Bytes) -> Option<SocketAddr> {
        match &self.route {
            Route::To(addr) => Some(*addr),
            Route::ByConv(servers) => {
                let conv = peek_conv(payload)?;
                pick(servers, u64::from(conv))
            }
            Route::ByClientAddr(servers) => {
                let key = match from.ip() {
                    IpAddr::V4(ip) => u64::from(u32::from(ip)),
                    IpAddr::V6(ip) => u128::from(ip) as u64,
                };
                pick(
                    servers,
                    key.wrapping_mul(31).wrapping_add(u64::from(from.port())),
                )
            }
        }
    }
}

/// A server chosen by a multiplicative hash of `key`.
fn pick(servers: &[SocketAddr], key: u64) -> Option<SocketAddr> {
    if servers.is_empty() {
        return None;
    }
    let hash = key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    servers.get((hash % servers.len() as u64) as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnet_core::wire;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn a_gateway_keeps_a_session_per_client_and_relays_answers() {
        let mut gateway = Proxy::new(
            "10.0.1.1".parse().expect("ip"),
            true,
            Route::To(addr("10.0.3.1:7000")),
        );
        let client = addr("100.64.0.1:10000");
        let ping = wire::ping(5, 0, 1);
        let (from, to, _) = gateway
            .handle(client, gateway.listen_addr(), ping.clone())
            .expect("forwarded");
        assert_eq!(to, addr("10.0.3.1:7000"));
        let again = gateway.handle(client, gateway.listen_addr(), ping.clone());
        assert_eq!(
            again.map(|(f, _, _)| f),
            Some(from),
            "same session, same port"
        );
        let back = gateway.handle(to, from, ping.clone()).expect("relayed");
        assert_eq!((back.0, back.1), (gateway.listen_addr(), client));
        gateway.restart();
        assert!(gateway.handle(to, from, ping).is_none(), "old session gone");
    }

    #[test]
    fn a_conv_balancer_keeps_a_conv_on_one_server_from_any_address() {
        let servers: Vec<SocketAddr> = (1..=4).map(|i| addr(&format!("10.0.3.{i}:7000"))).collect();
        let mut balancer = Proxy::new(
            "10.0.2.1".parse().expect("ip"),
            false,
            Route::ByConv(servers.clone()),
        );
        let listen = balancer.listen_addr();
        let mut seen = std::collections::HashSet::new();
        for conv in 0..64u32 {
            let a = balancer.handle(addr("10.0.1.1:20000"), listen, wire::ping(conv, 0, 1));
            let b = balancer.handle(addr("10.0.1.2:20007"), listen, wire::ping(conv, 0, 1));
            let (a, b) = (a.expect("a").1, b.expect("b").1);
            assert_eq!(a, b);
            seen.insert(a);
        }
        assert_eq!(seen.len(), 4, "convs spread over every server");
    }
}
