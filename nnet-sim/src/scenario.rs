//! The scenario suite: each builds a world from a seed and says what it expects.
//! [`run`] runs one and checks it; the same seed replays the same run exactly.

use std::time::{Duration, Instant};

use nnet_ckcp::CKcpConfig;
use nnet_core::config::{ClientConfig, EndpointConfig};
use nnet_core::event::CloseReason;
use nnet_core::wire::{Cmd, Datagram, FinReason};

use crate::check::{check, Expect};
use crate::forge::{forged_conv, Forgery, ATTACKER};
use crate::link::LinkConfig;
use crate::plain::PlainClientSpec;
use crate::world::{
    ClientSpec, Fault, GatewaySpec, LineSpec, TraceLine, Upstream, Workload, World, WorldSpec,
};

/// A named scenario.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it shows.
    pub about: &'static str,
    build: fn(u64) -> (WorldSpec, Expect),
}

/// The outcome of one run.
#[derive(Debug)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: &'static str,
    /// Seed.
    pub seed: u64,
    /// Invariant violations (empty: the run passed).
    pub violations: Vec<String>,
    /// Every traced event, in order.
    pub trace: Vec<TraceLine>,
    /// The finished world, for metrics.
    pub world: World,
}

impl RunReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A line of `one_way` latency with `loss` both ways and a little jitter.
fn line(gateway: usize, one_way: Duration, loss: f64) -> LineSpec {
    let link = LinkConfig {
        jitter: ms(2),
        ..LinkConfig::with_latency(one_way).lossy(loss)
    };
    LineSpec {
        gateway,
        up: link.clone(),
        down: link,
    }
}

/// `count` gateways straight to server 0 over a 2 ms link.
fn gateways(count: usize) -> Vec<GatewaySpec> {
    (0..count)
        .map(|_| GatewaySpec {
            upstream: Upstream::Server(0),
            link: LinkConfig::with_latency(ms(2)),
        })
        .collect()
}

/// A message every 20 ms, 100 bytes, for `seconds`.
fn realtime(seconds: u64) -> Workload {
    Workload {
        messages: (seconds * 50) as usize,
        every: ms(20),
        size: 100,
    }
}

fn client(lines: Vec<LineSpec>, workload: Workload, close_at: Option<Duration>) -> ClientSpec {
    ClientSpec {
        lines,
        config: ClientConfig::default(),
        workload,
        start_at: Duration::ZERO,
        close_at,
    }
}

/// One server, `lines` gateways, one client on all of them with `loss`, both sides
/// streaming for 6 s, the client closing at 8 s.
fn basic(seed: u64, lines: usize, loss: f64) -> WorldSpec {
    let client_lines = (0..lines)
        .map(|g| line(g, ms(25 + 5 * g as u64), loss))
        .collect();
    WorldSpec {
        seed,
        servers: 1,
        server_config: EndpointConfig::default(),
        server_workload: realtime(6),
        balancers: Vec::new(),
        gateways: gateways(lines),
        clients: vec![client(client_lines, realtime(6), Some(secs(8)))],
        plain_clients: Vec::new(),
        faults: Vec::new(),
        // Long enough for the server's idle timeout (30 s) to free a session whose
        // client gave up closing (linger expired, every FIN lost).
        duration: secs(45),
    }
}

fn graceful() -> Expect {
    Expect {
        allowed_closes: vec![CloseReason::LingerExpired],
        must_close: true,
        servers_empty_at_end: true,
        ..Expect::default()
    }
}

fn lossy(seed: u64, loss: f64) -> (WorldSpec, Expect) {
    (basic(seed, 2, loss), graceful())
}

/// Every scenario of the suite.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "lossless",
        about: "two clean lines; everything arrives, the close frees the session",
        build: |seed| lossy(seed, 0.0),
    },
    Scenario {
        name: "loss-1",
        about: "1% loss each way",
        build: |seed| lossy(seed, 0.01),
    },
    Scenario {
        name: "loss-5",
        about: "5% loss each way",
        build: |seed| lossy(seed, 0.05),
    },
    Scenario {
        name: "loss-10",
        about: "10% loss each way",
        build: |seed| lossy(seed, 0.10),
    },
    Scenario {
        name: "loss-20",
        about: "20% loss each way",
        build: |seed| lossy(seed, 0.20),
    },
    Scenario {
        name: "loss-30",
        about: "30% loss each way",
        build: |seed| lossy(seed, 0.30),
    },
    Scenario {
        name: "reorder-dup",
        about: "10 ms jitter, 10% reordered by 20 ms, 5% duplicated",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.0);
            for line in &mut spec.clients[0].lines {
                for link in [&mut line.up, &mut line.down] {
                    link.jitter = ms(10);
                    link.reorder = 0.10;
                    link.duplicate = 0.05;
                }
            }
            (spec, graceful())
        },
    },
    Scenario {
        name: "line-death-2",
        about: "two lines; the current one dies for good at 3 s",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.0);
            spec.faults = vec![(secs(3), Fault::LineDown { client: 0, line: 0 })];
            let expect = Expect {
                failover_within: Some(secs(1)),
                max_switches: Some(1),
                ..graceful()
            };
            (spec, expect)
        },
    },
    Scenario {
        name: "line-death-3",
        about: "three lines; the first dies at 2 s, the second at 4 s",
        build: |seed| {
            let mut spec = basic(seed, 3, 0.0);
            spec.faults = vec![
                (secs(2), Fault::LineDown { client: 0, line: 0 }),
                (secs(4), Fault::LineDown { client: 0, line: 1 }),
            ];
            let expect = Expect {
                failover_within: Some(secs(1)),
                max_switches: Some(2),
                ..graceful()
            };
            (spec, expect)
        },
    },
    Scenario {
        name: "flapping",
        about: "the fastest line goes down and up every second; no ping-pong",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.0);
            spec.faults = (0..10)
                .map(|k| {
                    let fault = if k % 2 == 0 {
                        Fault::LineDown { client: 0, line: 0 }
                    } else {
                        Fault::LineUp { client: 0, line: 0 }
                    };
                    (secs(1 + k), fault)
                })
                .collect();
            let expect = Expect {
                failover_within: Some(secs(1)),
                max_switches: Some(1),
                ..graceful()
            };
            (spec, expect)
        },
    },
    Scenario {
        name: "all-down-then-back",
        about: "every line down from 2 s to 9 s; the session survives",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.0);
            spec.faults = vec![
                (secs(2), Fault::LineDown { client: 0, line: 0 }),
                (secs(2), Fault::LineDown { client: 0, line: 1 }),
                (secs(9), Fault::LineUp { client: 0, line: 0 }),
                (secs(9), Fault::LineUp { client: 0, line: 1 }),
            ];
            spec.clients[0].close_at = Some(secs(14));
            spec.duration = secs(50);
            (spec, graceful())
        },
    },
    Scenario {
        name: "all-down-forever",
        about: "every line dies at 2 s: Unreachable after ten probe rounds",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.0);
            spec.faults = vec![
                (secs(2), Fault::LineDown { client: 0, line: 0 }),
                (secs(2), Fault::LineDown { client: 0, line: 1 }),
            ];
            spec.clients[0].close_at = None;
            spec.duration = secs(50);
            let expect = Expect {
                allowed_closes: vec![CloseReason::Unreachable],
                must_close: true,
                servers_empty_at_end: true,
                ..Expect::default()
            };
            (spec, expect)
        },
    },
    Scenario {
        name: "server-restart",
        about: "the server restarts at 3 s under a sending client and a receive-only one",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.0);
            let receiver = client(
                vec![line(0, ms(25), 0.0), line(1, ms(30), 0.0)],
                Workload::none(),
                None,
            );
            spec.clients.push(receiver);
            spec.clients[0].close_at = None;
            spec.faults = vec![(secs(3), Fault::ServerRestart(0))];
            let expect = Expect {
                allowed_closes: vec![CloseReason::Reset],
                must_close: true,
                // Within one round trip of the client's next datagram; a client whose window
                // is full speaks again only at its RTO.
                close_within: Some(secs(1)),
                ..Expect::default()
            };
            (spec, expect)
        },
    },
    Scenario {
        name: "kick",
        about: "the server kicks the client at 3 s",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.0);
            spec.faults = vec![(
                secs(3),
                Fault::Kick {
                    client: 0,
                    reason: 7,
                },
            )];
            let expect = Expect {
                allowed_closes: vec![CloseReason::Kicked(7)],
                close_within: Some(ms(200)),
                ..graceful()
            };
            (spec, expect)
        },
    },
    Scenario {
        name: "close-under-loss",
        about: "10% loss; the client closes while data is in flight",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.10);
            spec.clients[0].close_at = Some(secs(3));
            (spec, graceful())
        },
    },
    Scenario {
        name: "balancer-by-conv",
        about: "three servers behind a balancer that routes by conv; a line dies",
        build: |seed| balanced(seed, true),
    },
    Scenario {
        name: "balancer-by-address",
        about: "three servers behind a balancer that routes by client address; a line \
                dies and the client learns at once whether the new path knows it",
        build: |seed| balanced(seed, false),
    },
    Scenario {
        name: "gateway-restart",
        about: "the gateway of the current line restarts and forgets its proxy sessions",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.0);
            spec.faults = vec![(secs(3), Fault::GatewayRestart(0))];
            let expect = Expect {
                max_switches: Some(1),
                ..graceful()
            };
            (spec, expect)
        },
    },
    Scenario {
        name: "partition",
        about: "three clients; the first gateway loses its upstream for 4 s: every \
                client on it moves to the second line, nothing is lost",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.0);
            let template = spec.clients[0].clone();
            spec.clients = vec![template; 3];
            spec.faults = vec![
                (secs(3), Fault::UpstreamDown(0)),
                (secs(7), Fault::UpstreamUp(0)),
            ];
            let expect = Expect {
                failover_within: Some(secs(1)),
                max_switches: Some(1),
                ..graceful()
            };
            (spec, expect)
        },
    },
    Scenario {
        name: "conv-collision",
        about: "a second client starts on the conv of a live one: FIN(collision), it \
                retries with a fresh conv, neither session is disturbed",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.01);
            spec.clients[0].config.conv = Some(clashing_conv(seed));
            let mut second = spec.clients[0].clone();
            second.start_at = ms(500);
            spec.clients.push(second);
            let expect = Expect {
                extra: Some(collision_resolved),
                ..graceful()
            };
            (spec, expect)
        },
    },
    Scenario {
        name: "forged-new",
        about: "an untrusted host forges NEWs (claiming the client's IP, on its conv, \
                late) and a PUSH on its conv: none moves or steals the session",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.0);
            spec.faults = [
                Forgery::NewClaimingVictimIp,
                Forgery::NewOnVictimConv,
                Forgery::LateNewOnVictimConv,
                Forgery::PushOnVictimConv,
            ]
            .into_iter()
            .enumerate()
            .map(|(k, forgery)| {
                (
                    ms(2000 + 500 * k as u64),
                    Fault::Forge { client: 0, forgery },
                )
            })
            .collect();
            let expect = Expect {
                max_switches: Some(0),
                extra: Some(forgeries_refused),
                ..graceful()
            };
            (spec, expect)
        },
    },
    Scenario {
        name: "plain-kcp-mixed",
        about: "three plain C KCP clients (ikcp.c, no lines) next to three nnet clients \
                on one server, 1% loss",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.01);
            let template = spec.clients[0].clone();
            spec.clients = vec![template; 3];
            spec.plain_clients = (0..3)
                .map(|i| PlainClientSpec {
                    server: 0,
                    link: LinkConfig {
                        jitter: ms(2),
                        ..LinkConfig::with_latency(ms(30)).lossy(0.01)
                    },
                    // One with ikcp.c's defaults, two in its fast mode.
                    config: if i == 0 {
                        CKcpConfig::default()
                    } else {
                        CKcpConfig::fast()
                    },
                    workload: realtime(6),
                    start_at: ms(100 * i as u64),
                })
                .collect();
            // The server frees a plain session only after its idle timeout (30 s):
            // plain KCP has no FIN.
            spec.duration = secs(50);
            (spec, graceful())
        },
    },
    Scenario {
        name: "many-clients",
        about: "1,000 clients on two lines each, one server",
        build: |seed| {
            let mut spec = basic(seed, 2, 0.01);
            let template = spec.clients[0].clone();
            spec.clients = (0..1000)
                .map(|i| ClientSpec {
                    start_at: ms(i * 2),
                    workload: Workload {
                        messages: 100,
                        every: ms(50),
                        size: 64,
                    },
                    close_at: Some(secs(10)),
                    ..template.clone()
                })
                .collect();
            spec.server_workload = Workload {
                messages: 50,
                every: ms(100),
                size: 64,
            };
            (spec, graceful())
        },
    },
];

/// The conv both clients of `conv-collision` ask for.
fn clashing_conv(seed: u64) -> u32 {
    (seed as u32 ^ 0x5eed_c0de) | 1
}

/// `conv-collision`: one client holds the clashing conv (the first whose NEW reached
/// the server: with loss that may be the second), the other moved to a fresh one after
/// the server's FIN(collision).
fn collision_resolved(world: &World) -> Vec<String> {
    let mut violations = Vec::new();
    let convs: Vec<Option<u32>> = world.clients.iter().map(|c| c.conv).collect();
    let wanted = Some(clashing_conv(world.spec.seed));
    let kept = convs.iter().filter(|&&c| c == wanted).count();
    if kept != 1 || convs.iter().any(Option::is_none) {
        violations.push(format!(
            "exactly one client should end on the clashing conv {wanted:?}: {convs:?}"
        ));
    }
    let collisions: u64 = world
        .servers
        .iter()
        .map(|s| s.endpoint.stats().collisions)
        .sum();
    if collisions == 0 {
        violations.push("the server answered no FIN(collision)".into());
    }
    violations
}

/// `forged-new`: the forged session got the attacker's address as its real IP, the NEW
/// on the live conv got FIN(collision), the late NEW and the PUSH were dropped.
fn forgeries_refused(world: &World) -> Vec<String> {
    let mut violations = Vec::new();
    let Some(conv) = world.clients[0].conv else {
        return vec!["the victim never connected".into()];
    };
    let forged: Vec<_> = world
        .real_ips
        .iter()
        .filter(|(c, _)| *c == forged_conv(conv))
        .collect();
    if forged.is_empty() || forged.iter().any(|(_, ip)| *ip != ATTACKER) {
        violations.push(format!(
            "the forged session's real IP should be the attacker's {ATTACKER}: {forged:?}"
        ));
    }
    let collision_fin = world.attacker_received.iter().any(|d| {
        Datagram::parse(d.clone()).is_ok_and(|d| {
            let h = d.first();
            h.conv == conv && h.cmd == Cmd::Fin && h.frg == FinReason::Collision.as_u8()
        })
    });
    if !collision_fin {
        violations.push("the attacker got no FIN(collision) for the victim's conv".into());
    }
    let drops = &world.servers[0].endpoint.stats().drops;
    if drops.forged_new == 0 || drops.wrong_remote == 0 {
        violations.push(format!(
            "forged NEW sn > 0 and PUSH from elsewhere not counted: {drops:?}"
        ));
    }
    violations
}

/// Two gateways in front of a balancer spreading three servers; line 0 dies at 3 s.
fn balanced(seed: u64, by_conv: bool) -> (WorldSpec, Expect) {
    let mut spec = basic(seed, 2, 0.0);
    spec.servers = 3;
    spec.balancers = vec![by_conv];
    for gateway in &mut spec.gateways {
        gateway.upstream = Upstream::Balancer(0);
    }
    spec.faults = vec![(secs(3), Fault::LineDown { client: 0, line: 0 })];
    let expect = Expect {
        failover_within: Some(secs(1)),
        // By address, the new path may lead to a server that does not know the
        // session: the client must then reset at once, not hang.
        allowed_closes: if by_conv {
            vec![CloseReason::LingerExpired]
        } else {
            vec![CloseReason::LingerExpired, CloseReason::Reset]
        },
        must_close: true,
        ..Expect::default()
    };
    (spec, expect)
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// Runs `scenario` with `seed` and checks it.
pub fn run(scenario: &Scenario, seed: u64) -> RunReport {
    run_built(scenario, seed, None, World::run)
}

/// Runs `scenario` with `seed` for `duration` instead of its own (a shorter run shows
/// what the checker reports when a run is cut short) and checks it.
pub fn run_for(scenario: &Scenario, seed: u64, duration: Duration) -> RunReport {
    run_built(scenario, seed, Some(duration), World::run)
}

/// Runs `scenario` with `seed`, letting `drive` run the world (for example in steps,
/// sampling between them), then checks it.
pub fn run_with(scenario: &Scenario, seed: u64, drive: impl FnOnce(&mut World)) -> RunReport {
    run_built(scenario, seed, None, drive)
}

fn run_built(
    scenario: &Scenario,
    seed: u64,
    duration: Option<Duration>,
    drive: impl FnOnce(&mut World),
) -> RunReport {
    let (mut spec, expect) = (scenario.build)(seed);
    if let Some(duration) = duration {
        spec.duration = duration;
    }
    // Any base instant will do: only differences matter, and every trace time is
    // relative to it.
    let mut world = World::new(spec, Instant::now());
    drive(&mut world);
    let violations = check(&world, &expect);
    RunReport {
        scenario: scenario.name,
        seed,
        violations,
        trace: std::mem::take(&mut world.trace),
        world,
    }
}
