//! `nnet-sim`: runs the scenario suite on the deterministic simulator.
//!
//! - `nnet-sim list`: the scenarios;
//! - `nnet-sim run SCENARIO --seed N [--trace]`: one run, its violations (and trace);
//! - `nnet-sim sweep --seeds N [--scenario NAME]`: every scenario (or one) over seeds
//!   `0..N`; any failing seed is reported with the command that replays it.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
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
            let mut failures = 0;
            for s in &chosen {
                let mut failed = 0;
                for seed in 0..seeds {
                    let report = scenario::run(s, seed);
                    if !report.passed() {
                        failed += 1;
                        failures += 1;
                        println!(
                            "FAIL {} seed {seed}: {}",
                            s.name,
                            report.violations.join("; ")
                        );
                        println!("     replay: cargo run --release -p nnet-sim -- run {} --seed {seed} --trace", s.name);
                    }
                }
                println!("{:<22} {} seeds, {failed} failed", s.name, seeds);
            }
            println!(
                "{} runs in {:.1} s, {failures} failed",
                seeds * chosen.len() as u64,
                started.elapsed().as_secs_f64()
            );
            if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
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
    if report.passed() {
        println!("  every invariant held");
    } else {
        for v in &report.violations {
            println!("  VIOLATION: {v}");
        }
    }
}
