//! Prints the loss table of `nnet_sim::compare`: nnet's KCP engine (with its improved
//! settings) and the reference C KCP side by side, means over seeds 1 to 20, and whether
//! nnet with the C engine's settings measured the same as C.
//!
//! ```text
//! cargo run --release -p nnet-sim --example compare
//! ```

use std::time::Instant;

use nnet_sim::compare::{loss_table, render_markdown};

fn main() {
    let seeds: Vec<u64> = (1..=20).collect();
    let started = Instant::now();
    let rows = loss_table(&seeds);
    print!("{}", render_markdown(&rows));
    eprintln!(
        "{} rows over {} seeds in {:.2} s",
        rows.len(),
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
}
