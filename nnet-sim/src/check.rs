//! The invariants every scenario run is checked against.

use std::time::Duration;

use nnet_core::event::{CloseReason, SwitchReason};

use crate::world::{client_ip, Fault, World};

/// What a scenario expects beyond the invariants that always hold.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Close reasons a client may end with (any client, any time). A client that closes
    /// for another reason is a violation. Empty: no client may close, except a graceful
    /// `Closed` after its own `close()`.
    pub allowed_closes: Vec<CloseReason>,
    /// Every client must have closed by the end, for one of `allowed_closes` (or
    /// `Closed`).
    pub must_close: bool,
    /// After a `LineDown` of a client's current line, it must switch (or close for an
    /// allowed reason) within this long.
    pub failover_within: Option<Duration>,
    /// A client must close within this long of a server restart (or of being kicked).
    pub close_within: Option<Duration>,
    /// Most switches a client may make (beyond its first choice).
    pub max_switches: Option<usize>,
    /// Every server must hold no session at the end.
    pub servers_empty_at_end: bool,
    /// The scenario's own checks, beyond the common ones.
    pub extra: Option<fn(&World) -> Vec<String>>,
}

/// Checks a finished run; returns every violation found, as text.
pub fn check(world: &World, expect: &Expect) -> Vec<String> {
    let mut violations = Vec::new();
    if let Some(at) = world.stalled {
        violations.push(format!(
            "time stood still at {at:?}: a host keeps asking to be woken at once"
        ));
        return violations;
    }
    for (i, host) in world.clients.iter().enumerate() {
        let closed = host.closed.map(|(_, reason)| reason);
        // A graceful close promises everything sent was acknowledged.
        let explained = closed.is_some_and(|r| r != CloseReason::Closed);
        let conv = host.conv.or_else(|| host.conn.as_ref().map(|c| c.conv()));
        let empty = Vec::new();
        let delivered = conv
            .and_then(|c| world.server_received.get(&c))
            .unwrap_or(&empty);
        if delivered.len() > host.sent.len() || host.sent[..delivered.len()] != delivered[..] {
            violations.push(format!(
                "client {i}: the server delivered {} messages that are not the first {} sent, in order",
                delivered.len(),
                delivered.len()
            ));
        } else if delivered.len() < host.sent.len() && !explained {
            violations.push(format!(
                "client {i}: {} of {} messages delivered to the server, and no close explains it ({closed:?})",
                delivered.len(),
                host.sent.len()
            ));
        }
        let server_sent = conv
            .and_then(|c| world.server_sent.get(&c))
            .unwrap_or(&empty);
        if host.received.len() > server_sent.len()
            || server_sent[..host.received.len()] != host.received[..]
        {
            violations.push(format!(
                "client {i}: received {} messages that are not the first the server sent, in order",
                host.received.len()
            ));
        } else if host.received.len() < server_sent.len() && closed.is_none() {
            violations.push(format!(
                "client {i}: received {} of {} server messages and is still open",
                host.received.len(),
                server_sent.len()
            ));
        }
        match closed {
            Some(CloseReason::Closed) | None => {}
            Some(reason) if expect.allowed_closes.contains(&reason) => {}
            Some(reason) => {
                violations.push(format!("client {i}: closed with {reason:?}, not expected"))
            }
        }
        if expect.must_close && closed.is_none() {
            violations.push(format!("client {i}: still open at the end"));
        }
        if let Some(max) = expect.max_switches {
            let switches = host
                .switches
                .iter()
                .filter(|s| s.3 != SwitchReason::Connect)
                .count();
            if switches > max {
                violations.push(format!(
                    "client {i}: {switches} switches, at most {max} expected: {:?}",
                    host.switches
                ));
            }
        }
        for (conv_seen, real_ip) in &world.real_ips {
            if Some(*conv_seen) == conv && real_ip.ip() != client_ip(i) {
                violations.push(format!(
                    "client {i}: the server saw real IP {real_ip}, not {}",
                    client_ip(i)
                ));
            }
        }
    }
    check_plain(world, &mut violations);
    check_faults(world, expect, &mut violations);
    if expect.servers_empty_at_end {
        for (s, server) in world.servers.iter().enumerate() {
            if !server.endpoint.is_empty() {
                violations.push(format!(
                    "server {s}: {} sessions left at the end",
                    server.endpoint.len()
                ));
            }
        }
    }
    // Bounded memory: at most one session per client (nnet or plain) and one it may
    // leave behind for a while, plus what an attacker can open.
    let hosts = world.clients.len() + world.plain.len();
    let forged = world
        .spec
        .faults
        .iter()
        .filter(|(_, f)| matches!(f, Fault::Forge { .. }))
        .count();
    if world.peak_sessions > hosts * 2 + forged {
        violations.push(format!(
            "a server held {} sessions for {hosts} clients",
            world.peak_sessions
        ));
    }
    if let Some(extra) = expect.extra {
        violations.extend(extra(world));
    }
    violations
}

/// Plain KCP clients never close: everything each side sent must have arrived, once,
/// in order, and the server must have seen each at its own address.
fn check_plain(world: &World, violations: &mut Vec<String>) {
    let empty = Vec::new();
    for (i, host) in world.plain.iter().enumerate() {
        let delivered = world.server_received.get(&host.conv).unwrap_or(&empty);
        if *delivered != host.sent {
            violations.push(format!(
                "plain client {i}: the server delivered {} messages, not the {} sent in order",
                delivered.len(),
                host.sent.len()
            ));
        }
        let sent = world.server_sent.get(&host.conv).unwrap_or(&empty);
        if host.received != *sent {
            violations.push(format!(
                "plain client {i}: received {} messages, not the {} the server sent in order",
                host.received.len(),
                sent.len()
            ));
        }
        for (conv, real_ip) in &world.real_ips {
            if *conv == host.conv && *real_ip != host.addr {
                violations.push(format!(
                    "plain client {i}: the server saw it at {real_ip}, not {}",
                    host.addr
                ));
            }
        }
    }
}

/// Failover and reset bounds after each fault.
fn check_faults(world: &World, expect: &Expect, violations: &mut Vec<String>) {
    for (at, fault) in &world.spec.faults {
        match fault {
            Fault::LineDown { client, line } => {
                if let Some(bound) = expect.failover_within {
                    check_left(world, *client, *line, *at, bound, violations);
                }
            }
            Fault::UpstreamDown(g) => {
                let Some(bound) = expect.failover_within else {
                    continue;
                };
                for (client, spec) in world.spec.clients.iter().enumerate() {
                    for (line, l) in spec.lines.iter().enumerate() {
                        if l.gateway == *g {
                            check_left(world, client, line, *at, bound, violations);
                        }
                    }
                }
            }
            Fault::ServerRestart(_) | Fault::Kick { .. } => {
                let Some(bound) = expect.close_within else {
                    continue;
                };
                for (i, host) in world.clients.iter().enumerate() {
                    if matches!(fault, Fault::Kick { client, .. } if *client != i) {
                        continue;
                    }
                    let open_then = host.conv.is_some() && host.closed.is_none_or(|(t, _)| t > *at);
                    let closed_in_time = host.closed.is_some_and(|(t, _)| t <= *at + bound);
                    if open_then && !closed_in_time {
                        violations.push(format!(
                            "client {i}: not closed within {bound:?} of {fault:?} at {at:?} ({:?})",
                            host.closed
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}

/// A client whose current line died at `at` must have left it (or closed for an
/// allowed reason) within `bound`.
fn check_left(
    world: &World,
    client: usize,
    line: usize,
    at: Duration,
    bound: Duration,
    violations: &mut Vec<String>,
) {
    let host = &world.clients[client];
    let current = host.switches.iter().rev().find(|s| s.0 <= at).map(|s| s.2);
    if current != Some(line) || host.closed.is_some_and(|(t, _)| t <= at) {
        return;
    }
    let moved = host
        .switches
        .iter()
        .any(|s| s.0 > at && s.0 <= at + bound && s.1 == Some(line));
    let closed = host.closed.is_some_and(|(t, _)| t > at && t <= at + bound);
    if !moved && !closed {
        violations.push(format!(
            "client {client}: line {line} died at {at:?}, no switch within {bound:?}: {:?}",
            host.switches
        ));
    }
}
