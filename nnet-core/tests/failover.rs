//! Client lines and failover (PROTOCOL.md section 6) through an in-memory world of
//! proxies with controllable latency and failures: connect on the fastest line, switch
//! when the current one dies without losing or duplicating a message, no ping-pong on
//! a flapping line, `Unreachable` after the retry limit, rebinding, fresh lines.

mod lines;

use std::time::Duration;

use lines::{numbered, stream, Mode, World, CLIENT_IP};
use nnet_core::config::{ClientConfig, FasterLine};
use nnet_core::event::{ClientEvent, CloseReason, ServerEvent, SwitchReason};
use nnet_core::line::{Line, LineState};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Both sides send messages numbered `numbers`, one every `every`; `at_step(world, k)`
/// runs before message `k`.
fn exchange(
    world: &mut World,
    numbers: std::ops::Range<usize>,
    every: Duration,
    mut at_step: impl FnMut(&mut World, usize),
) {
    for k in numbers {
        at_step(world, k);
        world.send_both(k);
        world.run_for(every);
    }
}

/// Connects and waits until the session is established.
fn connected_world(one_way_ms: &[u64], config: ClientConfig) -> World {
    let mut world = World::new(one_way_ms, config);
    let end = world.now + secs(2);
    assert!(world.run_until(end, |w| w.connected()), "connects");
    world
}

#[test]
fn the_fastest_line_wins_at_connect() {
    let mut world = World::new(&[40, 15, 25], ClientConfig::default());
    let end = world.now + secs(2);
    assert!(world.run_until(end, |w| w.connected()));
    let switches = world.switches();
    assert_eq!(switches.len(), 1);
    let (at, from, to, reason) = switches[0];
    assert_eq!((from, to, reason), (None, 1, SwitchReason::Connect));
    // Every line answered within the grace of the first: the round ends when the
    // slowest answers (80 ms round trip), not at the probe timeout.
    assert_eq!(at - world.start, ms(80));
    assert_eq!(world.client.current_line(), Some(world.lines[1].line));
    let states: Vec<LineState> = world.client.lines().iter().map(|l| l.state).collect();
    assert_eq!(
        states,
        vec![LineState::Standby, LineState::Current, LineState::Standby]
    );
    // The server sees the client's real address through the proxy.
    let conn = world.conn();
    assert_eq!(
        world.server.real_ip(conn).map(|a| a.ip()),
        Some(CLIENT_IP.into())
    );
    assert_eq!(
        world.server.remote(conn).map(|a| a.ip()),
        Some(lines::proxy_addr(1).ip())
    );
}

#[test]
fn a_slow_line_loses_to_a_fast_one_that_answers_within_the_grace() {
    // Line 0 answers first but line 1 answers 30 ms later... no: line 1 is faster and
    // line 2 answers long after the grace, so the round does not wait for it.
    let mut world = World::new(&[30, 20, 500], ClientConfig::default());
    let end = world.now + secs(2);
    assert!(world.run_until(end, |w| !w.switches().is_empty()));
    let (at, _, to, _) = world.switches()[0];
    assert_eq!(to, 1);
    // First answer at 40 ms, grace 50 ms: decided at 90 ms, long before line 2's
    // 1 s round trip.
    assert_eq!(at - world.start, ms(90));
}

#[test]
fn messages_before_during_and_after_a_switch_arrive_exactly_once_in_order() {
    let mut world = connected_world(&[25, 25, 25], ClientConfig::default());
    let first = world.switches()[0].2;
    exchange(&mut world, 0..200, ms(20), |w, k| {
        if k == 50 {
            w.set_mode(first, Mode::Down);
        }
    });
    world.run_for(secs(3));
    assert_eq!(world.server_messages(), stream("c", 200));
    assert_eq!(world.client_messages(), stream("s", 200));
    let switches = world.switches();
    assert_eq!(switches.len(), 2, "{switches:?}");
    let (_, from, to, reason) = switches[1];
    assert_eq!(from, Some(first));
    assert_ne!(to, first);
    assert_eq!(reason, SwitchReason::Silent);
    assert_eq!(world.client.stats().switches, 1);
    // The server followed the client to its new line and still knows its real IP.
    let moved = world
        .server_events
        .iter()
        .filter(|(_, e)| matches!(e, ServerEvent::RemoteChanged { .. }))
        .count();
    assert_eq!(moved, 1);
    let conn = world.conn();
    assert_eq!(
        world.server.real_ip(conn).map(|a| a.ip()),
        Some(CLIENT_IP.into())
    );
    assert_eq!(world.client_closed(), None);
}

#[test]
fn a_dead_line_is_left_and_stays_left() {
    let mut world = connected_world(&[20, 30], ClientConfig::default());
    assert_eq!(world.client.current_line(), Some(world.lines[0].line));
    world.set_mode(0, Mode::Down);
    exchange(&mut world, 0..100, ms(50), |_, _| {});
    world.run_for(secs(2));
    assert_eq!(world.client.current_line(), Some(world.lines[1].line));
    assert_eq!(world.server_messages(), stream("c", 100));
    let info = world.client.lines();
    assert_eq!(info[0].state, LineState::Silent);
    assert_eq!(info[0].stats.failures, 1);
    assert_eq!(info[1].state, LineState::Current);
    // After the switch nothing but a probe round's PINGs went to the dead line.
    assert!(
        info[0].stats.datagrams_out <= info[0].stats.pings + 4,
        "{:?}",
        info[0]
    );
}

#[test]
fn a_close_during_a_probe_round_sends_its_fin_only_once_the_server_knows_the_new_line() {
    let mut world = connected_world(&[20, 30], ClientConfig::default());
    exchange(&mut world, 0..5, ms(50), |_, _| {});
    // Idle, everything acknowledged: the unanswered keepalive makes line 0 suspect.
    world.run_for(secs(1));
    assert_eq!(world.client.arq().waiting_to_send(), 0);
    world.set_mode(0, Mode::Down);
    let end = world.now + secs(4);
    assert!(
        world.run_until(end, |w| w.client.is_probing()),
        "line 0 suspected"
    );
    world.client.close(world.now);
    world.run_for(secs(3));
    assert_eq!(world.client_closed(), Some(CloseReason::Closed));
    assert_eq!(world.server_messages(), stream("c", 5));
    // The FIN came from the line the server had moved the session to: no FIN dropped as
    // coming from a stranger, and the server freed the session at once.
    assert_eq!(world.server.stats().drops.wrong_remote, 0);
    assert!(world.server_events.iter().any(|(_, e)| matches!(
        e,
        ServerEvent::Closed {
            reason: CloseReason::PeerClosed,
            ..
        }
    )));
    assert!(world.server.is_empty());
}

#[test]
fn a_flapping_line_does_not_cause_ping_pong_switching() {
    for faster_line in [None, Some(FasterLine::default())] {
        let config = ClientConfig {
            faster_line: faster_line.clone(),
            ..ClientConfig::default()
        };
        // Line 0 is the fastest, and flaps: 1 s down, 1 s up, for 60 s.
        let mut world = connected_world(&[10, 30], config);
        assert_eq!(world.client.current_line(), Some(world.lines[0].line));
        exchange(&mut world, 0..1200, ms(50), |w, k| {
            if k % 20 == 0 {
                let down = (k / 20) % 2 == 0;
                w.set_mode(0, if down { Mode::Down } else { Mode::Up });
            }
        });
        world.run_for(secs(3));
        let switches = world.switches();
        assert_eq!(switches.len(), 2, "{faster_line:?}: {switches:?}");
        assert_eq!(switches[1].2, 1, "moved to the steady line");
        assert_eq!(world.server_messages(), stream("c", 1200));
        assert_eq!(world.client_messages(), stream("s", 1200));
    }
}

#[test]
fn a_clearly_faster_line_takes_over_when_configured_and_only_then() {
    for enabled in [false, true] {
        let config = ClientConfig {
            faster_line: enabled.then(FasterLine::default),
            ..ClientConfig::default()
        };
        // Line 1 is down at connect; once it is back it is much faster.
        let mut world = World::new(&[60, 10], config);
        world.set_mode(1, Mode::Down);
        let end = world.now + secs(2);
        assert!(world.run_until(end, |w| w.connected()));
        world.set_mode(1, Mode::Up);
        exchange(&mut world, 0..1000, ms(50), |_, _| {});
        let switches = world.switches();
        if enabled {
            assert_eq!(switches.len(), 2, "{switches:?}");
            let (at, from, to, reason) = switches[1];
            assert_eq!((from, to, reason), (Some(0), 1, SwitchReason::Faster));
            // Three checks in a row, 10 s apart.
            assert!(at - world.start >= secs(30), "{:?}", at - world.start);
        } else {
            assert_eq!(switches.len(), 1, "{switches:?}");
        }
        world.run_for(secs(2));
        assert_eq!(world.server_messages(), stream("c", 1000));
    }
}

#[test]
fn all_lines_dead_gives_unreachable_after_the_retry_limit_and_not_before() {
    let mut world = connected_world(&[25, 25], ClientConfig::default());
    world.client.send(numbered("c", 0)).expect("send");
    world.set_mode(0, Mode::Down);
    world.set_mode(1, Mode::Down);
    let died = world.now;
    let end = world.now + secs(120);
    assert!(world.run_until(end, |w| w.client_closed().is_some()));
    assert_eq!(world.client_closed(), Some(CloseReason::Unreachable));
    let failures: Vec<(Duration, u32)> = world
        .client_events
        .iter()
        .filter_map(|(at, e)| match e {
            ClientEvent::ProbeFailed {
                attempt,
                max_retries,
            } => {
                assert_eq!(*max_retries, 10);
                Some((*at - died, *attempt))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        failures.iter().map(|f| f.1).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    // Suspect after the line timeout (500 ms; the data sent is unacknowledged), then
    // ten rounds of 4 s: closed at the tenth failure, not before.
    let (closed_at, _) = world.client_events.last().expect("closed");
    assert_eq!(*closed_at - died, ms(500) + secs(40));
    assert_eq!(failures[9].0, ms(500) + secs(40));
    assert_eq!(failures[8].0, ms(500) + secs(36));
    assert_eq!(world.client.stats().failed_rounds, 10);
}

#[test]
fn a_line_that_returns_is_used_again() {
    let mut world = connected_world(&[20, 30], ClientConfig::default());
    // Line 0 dies: the session moves to line 1.
    world.set_mode(0, Mode::Down);
    exchange(&mut world, 0..40, ms(50), |_, _| {});
    assert_eq!(world.client.current_line(), Some(world.lines[1].line));
    // Line 0 comes back, then line 1 dies: back to line 0.
    world.set_mode(0, Mode::Up);
    world.run_for(secs(1));
    world.set_mode(1, Mode::Down);
    exchange(&mut world, 40..80, ms(50), |_, _| {});
    // Both die for two probe rounds, then line 1 returns.
    world.set_mode(0, Mode::Down);
    exchange(&mut world, 80..90, ms(50), |_, _| {});
    world.run_for(secs(9));
    world.set_mode(1, Mode::Up);
    exchange(&mut world, 90..130, ms(50), |_, _| {});
    world.run_for(secs(2));
    let path: Vec<usize> = world.switches().iter().map(|s| s.2).collect();
    assert_eq!(path, vec![0, 1, 0, 1]);
    let failed = world
        .client_events
        .iter()
        .filter(|(_, e)| matches!(e, ClientEvent::ProbeFailed { .. }))
        .count();
    assert_eq!(failed, 2);
    assert_eq!(world.server_messages(), stream("c", 130));
    assert_eq!(world.client_messages(), stream("s", 130));
}

#[test]
fn a_proxy_that_keeps_a_dead_upstream_is_passed_with_a_fresh_socket() {
    // One line only. Its proxy's upstream fails and recovers, but the proxy keeps
    // dropping answers for the client's old socket; only a fresh socket works.
    let mut world = connected_world(&[25], ClientConfig::default());
    let socket = world.lines[0].socket;
    world.set_mode(0, Mode::StaleBelow(socket + 1));
    exchange(&mut world, 0..60, ms(50), |_, _| {});
    world.run_for(secs(2));
    assert!(
        world.lines[0].socket > socket,
        "the client asked for a fresh socket"
    );
    let switches = world.switches();
    assert_eq!(switches.len(), 2);
    assert_eq!(
        (switches[1].1, switches[1].2),
        (Some(0), 0),
        "same line, new socket"
    );
    assert_eq!(world.client.lines()[0].stats.rebinds, 1);
    assert_eq!(world.server_messages(), stream("c", 60));
    assert_eq!(world.client_messages(), stream("s", 60));
}

#[test]
fn an_empty_datagram_makes_the_line_suspect_at_once() {
    let mut world = connected_world(&[25, 40], ClientConfig::default());
    world.set_mode(0, Mode::Refusing);
    let refused = world.now;
    world.client.send(numbered("c", 0)).expect("send");
    let end = world.now + secs(2);
    assert!(world.run_until(end, |w| w.switches().len() == 2));
    let (at, from, to, reason) = world.switches()[1];
    assert_eq!(
        (from, to, reason),
        (Some(0), 1, SwitchReason::EmptyDatagram)
    );
    // The empty answer comes back within one round trip (plus the flush interval),
    // and line 1 answers its probe 80 ms later; no line timeout is waited for.
    assert!(at - refused <= ms(100 + 50 + 80), "{:?}", at - refused);
    world.run_for(secs(1));
    assert_eq!(world.server_messages(), vec![numbered("c", 0)]);
}

#[test]
fn fresh_lines_from_the_application_rescue_the_session() {
    let mut world = connected_world(&[25, 25], ClientConfig::default());
    // The application's list holds only line 0 at first.
    world
        .client
        .set_lines(&[world.lines[0].line], world.now)
        .expect("lines");
    world.set_mode(0, Mode::Down);
    world.client.send(numbered("c", 0)).expect("send");
    let end = world.now + secs(30);
    assert!(world.run_until(end, |w| w
        .client_events
        .iter()
        .any(|(_, e)| matches!(e, ClientEvent::ProbeFailed { attempt: 1, .. }))));
    // On the failed attempt the application supplies a fresh list.
    let fresh = [world.lines[1].line];
    world.client.set_lines(&fresh, world.now).expect("lines");
    world.run_for(secs(2));
    assert_eq!(world.client.current_line(), Some(world.lines[1].line));
    assert_eq!(world.server_messages(), vec![numbered("c", 0)]);
    assert_eq!(world.client_closed(), None);
    // A bad list is refused and changes nothing.
    assert!(world.client.set_lines(&[], world.now).is_err());
    assert_eq!(world.client.lines().len(), 1);
}

#[test]
fn removing_the_current_line_moves_the_session() {
    let mut world = connected_world(&[20, 30], ClientConfig::default());
    let keep: Vec<Line> = vec![world.lines[1].line];
    world.client.set_lines(&keep, world.now).expect("lines");
    exchange(&mut world, 0..20, ms(50), |_, _| {});
    world.run_for(secs(1));
    let (_, from, to, reason) = world.switches()[1];
    assert_eq!((from, to, reason), (Some(0), 1, SwitchReason::LineRemoved));
    assert_eq!(world.server_messages(), stream("c", 20));
}

#[test]
fn a_server_restart_is_a_reset_within_one_probe_round_trip() {
    let mut world = connected_world(&[25, 30], ClientConfig::default());
    world.restart_server();
    world.client.send(numbered("c", 0)).expect("send");
    let restarted = world.now;
    let end = world.now + secs(5);
    assert!(world.run_until(end, |w| w.client_closed().is_some()));
    assert_eq!(world.client_closed(), Some(CloseReason::Reset));
    // The PUSH reaches the new server, which answers FIN(reset): one round trip plus
    // the flush interval.
    assert!(
        world.now - restarted <= ms(100 + 50),
        "{:?}",
        world.now - restarted
    );
}

#[test]
fn an_idle_client_learns_of_a_restart_on_its_keepalive() {
    let mut world = connected_world(&[25, 30], ClientConfig::default());
    world.run_for(secs(1));
    world.restart_server();
    let restarted = world.now;
    let end = world.now + secs(10);
    assert!(world.run_until(end, |w| w.client_closed().is_some()));
    assert_eq!(world.client_closed(), Some(CloseReason::Reset));
    // Keepalive (2 s of silence), PONG "unknown", one probe round over both lines
    // (60 ms for the slower): no line knows the session.
    let keepalive = ClientConfig::default().session.keepalive;
    assert!(
        world.now - restarted <= keepalive + ms(50 + 60),
        "{:?}",
        world.now - restarted
    );
}

#[test]
fn same_seed_same_run() {
    let run = || {
        let mut world = connected_world(&[25, 35], ClientConfig::default());
        exchange(&mut world, 0..50, ms(20), |w, k| {
            if k == 20 {
                w.set_mode(0, Mode::Down);
            }
        });
        world.run_for(secs(2));
        (
            world
                .client_events
                .iter()
                .map(|(at, e)| (*at - world.start, format!("{e:?}")))
                .collect::<Vec<_>>(),
            world
                .server_events
                .iter()
                .map(|(at, e)| (*at - world.start, format!("{e:?}")))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(run(), run());
}

#[test]
fn failover_takes_well_under_a_second_with_50_ms_lines() {
    // The line dies at 40 different moments relative to the traffic and timers.
    let mut times: Vec<Duration> = (0..40)
        .map(|i| lines::failover_trial(ms(1000 + 13 * i), ms(20)).0)
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    // Line timeout 500 ms, one probe round trip (50 ms, both lines answer so no
    // grace), the resend's one-way trip (25 ms), and up to one flush interval.
    assert!(median <= ms(700), "median {median:?} of {times:?}");
    assert!(times[times.len() - 1] <= secs(1), "{times:?}");
}
