//! The conv → session lookup: a hash map with a keyed hasher, so an attacker who picks
//! convs cannot aim them at one bucket, and with a key from the endpoint's seed, so
//! the core stays deterministic (no OS randomness).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Builds [`ConvHasher`]s with the endpoint's key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvHashBuilder {
    key: u64,
}

impl ConvHashBuilder {
    pub(crate) fn new(seed: u64) -> Self {
        // Spread the seed so seed 0 does not give key 0.
        ConvHashBuilder {
            key: mix(seed ^ 0x243f_6a88_85a3_08d3),
        }
    }
}

impl BuildHasher for ConvHashBuilder {
    type Hasher = ConvHasher;
    fn build_hasher(&self) -> ConvHasher {
        ConvHasher { state: self.key }
    }
}

/// A keyed 64-bit mixer for `u32` keys (one multiply-xorshift round per write).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvHasher {
    state: u64,
}

impl Hasher for ConvHasher {
    fn finish(&self) -> u64 {
        mix(self.state)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.state = (self.state ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u32(&mut self, value: u32) {
        self.state = mix(self.state ^ u64::from(value));
    }
}

/// The splitmix64 finalizer: a bijection with good avalanche.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// conv → slot.
pub(crate) type ConvMap = HashMap<u32, u32, ConvHashBuilder>;
