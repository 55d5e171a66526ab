//! Every scenario of the suite over a fixed set of seeds, and exact replay.

use nnet_sim::scenario::{self, SCENARIOS};

/// Seeds every scenario runs with under `cargo test` (`.ci/run` sweeps many more in
/// release mode).
const SEEDS: [u64; 2] = [1, 2];

#[test]
fn every_scenario_holds_its_invariants() {
    let mut failures = Vec::new();
    for scenario in SCENARIOS {
        for seed in SEEDS {
            let report = scenario::run(scenario, seed);
            if !report.passed() {
                failures.push(format!(
                    "{} seed {seed}: {}\n  replay: cargo run --release -p nnet-sim -- run {} --seed {seed} --trace",
                    scenario.name,
                    report.violations.join("; "),
                    scenario.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What a run produced, compared whole between runs.
fn fingerprint(
    name: &str,
    seed: u64,
) -> (Vec<(std::time::Duration, String)>, Vec<Vec<bytes::Bytes>>) {
    let scenario = scenario::find(name).expect("scenario");
    let report = scenario::run(scenario, seed);
    let world = &report.world;
    let received = world
        .clients
        .iter()
        .map(|c| c.received.clone())
        .chain(world.plain.iter().map(|p| p.received.clone()))
        .collect();
    (report.trace, received)
}

#[test]
fn the_same_seed_replays_the_same_run_exactly() {
    for name in [
        "loss-20",
        "line-death-3",
        "server-restart",
        "reorder-dup",
        "plain-kcp-mixed",
        "forged-new",
    ] {
        let first = fingerprint(name, 7);
        assert!(!first.0.is_empty());
        assert_eq!(first, fingerprint(name, 7), "{name}: same seed, other run");
    }
    assert_ne!(
        fingerprint("loss-20", 7).0,
        fingerprint("loss-20", 8).0,
        "another seed, another run"
    );
}

#[test]
fn a_violation_is_reported_not_hidden() {
    // The checker is not a rubber stamp: a world where the client never gets to send
    // everything it queued (the run ends at once) must be flagged.
    let scenario = scenario::find("lossless").expect("scenario");
    let report = scenario::run_for(scenario, 1, std::time::Duration::from_secs(1));
    assert!(!report.passed());
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("still open") || v.contains("no close explains")),
        "{:?}",
        report.violations
    );
}

#[test]
fn plain_clients_and_scenario_checks_are_checked_too() {
    // Cut short, the plain C KCP clients have messages in flight: flagged.
    let plain = scenario::find("plain-kcp-mixed").expect("scenario");
    let report = scenario::run_for(plain, 1, std::time::Duration::from_secs(1));
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.starts_with("plain client")),
        "{:?}",
        report.violations
    );
    // Ended before the attacker struck, the forged-new scenario's own checks fail.
    let forged = scenario::find("forged-new").expect("scenario");
    let report = scenario::run_for(forged, 1, std::time::Duration::from_millis(1900));
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("FIN(collision)")),
        "{:?}",
        report.violations
    );
}
