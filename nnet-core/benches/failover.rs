//! Failover time with explicit virtual time (no wall clock): two lines of 50 ms RTT,
//! default settings, both sides streaming; the current line dies at many moments
//! relative to the traffic and timers. Prints the distribution of the time from the
//! death to the first message delivered over the new line, each direction.
//!
//! Run: `cargo bench -p nnet-core --bench failover`

#[path = "../tests/lines/mod.rs"]
mod lines;

use std::time::Duration;

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

fn main() {
    const TRIALS: u64 = 200;
    println!("failover, 2 lines of 50 ms RTT, default settings, {TRIALS} kill moments each");
    println!("| traffic | direction | median | p90 | max |");
    println!("|---|---|---|---|---|");
    for every_ms in [20, 100] {
        let every = Duration::from_millis(every_ms);
        let (mut up, mut down): (Vec<Duration>, Vec<Duration>) = (0..TRIALS)
            .map(|i| lines::failover_trial(Duration::from_millis(1000 + 7 * i), every))
            .unzip();
        up.sort();
        down.sort();
        for (direction, times) in [("client to server", &up), ("server to client", &down)] {
            println!(
                "| a message every {every_ms} ms | {direction} | {} ms | {} ms | {} ms |",
                percentile(times, 50).as_millis(),
                percentile(times, 90).as_millis(),
                percentile(times, 100).as_millis(),
            );
        }
    }
}
