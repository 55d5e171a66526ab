//! Placeholder demo until the ARQ engine lands: prints what this build contains.
fn main() {
    println!(
        "nnet-core: wire codec only so far; the in-memory transfer demo follows the ARQ engine"
    );
}
