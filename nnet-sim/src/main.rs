//! `nnet-sim`: runs the scenario suite on the deterministic simulator.
//!
//! - `nnet-sim list`: the scenarios;
//! - `nnet-sim run SCENARIO --seed N [--trace]`: one run, its violations (and trace);
//! - `nnet-sim sweep --seeds N [--scenario NAME]`: every scenario (or one) over seeds
//!   `0..N`; any failing seed is reported with the command that replays it;
//! - `nnet-sim report SCENARIO --seed N [--out DIR] [--client C]`: one run's metrics as
//!   JSON and a client's timeline as SVG.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Parser, Subcommand};
use nnet_sim::report;
use nnet_sim::scenario::{self, Scenario, SCENARIOS};

#[derive(Parser)]
#[command(name = "nnet-sim", about = "Deterministic network simulator for nnet")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the scenarios.
    List,
    /// Runs one scenario with one seed.
    Run {
        /// Scenario name (see `list`).
        scenario: String,
        /// The seed: the same seed replays the same run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print every traced event.
        #[arg(long)]
        trace: bool,
    },
    /// Runs one scenario and writes its metrics (JSON) and a client's timeline (SVG).
    Report {
        /// Scenario name (see `list`).
        scenario: String,
        /// The seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Directory the two files go to.
        #[arg(long, default_value = "target/nnet-sim")]
        out: PathBuf,
        /// Client whose timeline is drawn.
        #[arg(long, default_value_t = 0)]
        client: usize,
    },
    /// Runs every scenario (or one) over seeds 0..N.
    Sweep {
        /// Number of seeds per scenario.
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// Only this scenario.
        #[arg(long)]
        scenario: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::List => {
            for s in SCENARIOS {
                println!("{:<22} {}", s.name, s.about);
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            scenario,
            seed,
            trace,
        } => {
            let Some(found) = scenario::find(&scenario) else {
                eprintln!("no scenario {scenario:?}; `nnet-sim list` shows them");
                return ExitCode::from(2);
            };
            let report = scenario::run(found, seed);
            if trace {
                for (at, line) in &report.trace {
                    println!("{:>10.3}s {line}", at.as_secs_f64());
                }
            }
            summarize(&report);
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Report {
            scenario,
            seed,
            out,
            client,
        } => {
            let Some(found) = scenario::find(&scenario) else {
                eprintln!("no scenario {scenario:?}; `nnet-sim list` shows them");
                return ExitCode::from(2);
            };
            let recording = report::record(found, seed);
            summarize(&recording.report);
            match write_report(&recording.metrics, &out, client) {
                Ok(files) => {
                    for f in files {
                        println!("  wrote {}", f.display());
                    }
                }
                Err(e) => {
                    eprintln!("report: {e}");
                    return ExitCode::from(2);
                }
            }
            if recording.report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Sweep { seeds, scenario } => {
            let chosen: Vec<&Scenario> = match scenario {
                Some(name) => match scenario::find(&name) {
                    Some(s) => vec![s],
                    None => {
                        eprintln!("no scenario {name:?}; `nnet-sim list` shows them");
                        return ExitCode::from(2);
                    }
                },
                None => SCENARIOS.iter().collect(),
            };
            let started = Instant::now();
            let failures = sweep(&chosen, seeds);
            println!(
                "{} runs in {:.1} s, {} failed",
                seeds * chosen.len() as u64,
                started.elapsed().as_secs_f64(),
                failures.len()
            );
            if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Writes `<scenario>-seed<N>.json` and `.svg` into `dir`; returns their paths.
fn write_report(
    metrics: &report::Metrics,
    dir: &Path,
    client: usize,
) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let stem = format!("{}-seed{}", metrics.scenario, metrics.seed);
    let json = dir.join(format!("{stem}.json"));
    std::fs::write(&json, metrics.to_json())?;
    let svg = dir.join(format!("{stem}.svg"));
    std::fs::write(&svg, report::timeline_svg(metrics, client)?)?;
    Ok(vec![json, svg])
}

/// Runs every (scenario, seed) pair on all cores; prints a line per scenario and one per
/// failing seed with its replay command, in a fixed order; returns the failures.
fn sweep(chosen: &[&Scenario], seeds: u64) -> Vec<(usize, u64)> {
    let jobs: Vec<(usize, u64)> = (0..chosen.len())
        .flat_map(|s| (0..seeds).map(move |seed| (s, seed)))
        .collect();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results: Vec<(usize, u64, Vec<String>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(s, seed)) = jobs.get(k) else {
                            return done;
                        };
                        // The world stays on this thread (the C engine is not `Send`).
                        let report = scenario::run(chosen[s], seed);
                        done.push((s, seed, report.violations));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a sweep thread panicked"))
            .collect()
    });
    results.sort_by_key(|r| (r.0, r.1));
    let mut failures = Vec::new();
    for (s, scenario) in chosen.iter().enumerate() {
        let mine: Vec<_> = results.iter().filter(|r| r.0 == s).collect();
        let mut failed = 0;
        for (_, seed, violations) in mine.iter().filter(|r| !r.2.is_empty()) {
            failed += 1;
            failures.push((s, *seed));
            println!(
                "FAIL {} seed {seed}: {}",
                scenario.name,
                violations.join("; ")
            );
            println!(
                "     replay: cargo run --release -p nnet-sim -- run {} --seed {seed} --trace",
                scenario.name
            );
        }
        println!(
            "{:<22} {} seeds, {failed} failed",
            scenario.name,
            mine.len()
        );
    }
    failures
}

fn summarize(report: &scenario::RunReport) {
    let world = &report.world;
    println!("scenario {} seed {}", report.scenario, report.seed);
    for (i, c) in world.clients.iter().enumerate().take(5) {
        println!(
            "  client {i}: sent {}, received {}, switches {:?}, closed {:?}",
            c.sent.len(),
            c.received.len(),
            c.switches
                .iter()
                .map(|s| (s.0, s.1, s.2, s.3))
                .collect::<Vec<_>>(),
            c.closed
        );
    }
    for (i, p) in world.plain.iter().enumerate().take(5) {
        println!(
            "  plain client {i} (C KCP, conv {}): sent {}, received {}, datagrams refused {}",
            p.conv,
            p.sent.len(),
            p.received.len(),
            p.refused
        );
    }
    if !world.attacker_received.is_empty() {
        println!(
            "  attacker got {} datagrams back",
            world.attacker_received.len()
        );
    }
    if report.passed() {
        println!("  every invariant held");
    } else {
        for v in &report.violations {
            println!("  VIOLATION: {v}");
        }
    }
}
