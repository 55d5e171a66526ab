//! The conv → slot lookup: an open-addressing table with a keyed hash, so an attacker
//! who picks convs cannot aim them at one bucket, and with a key from the endpoint's
//! seed, so the core stays deterministic (no OS randomness).
//!
//! Each bucket holds the conv and the slot side by side (8 bytes), and collisions go to
//! the next buckets (linear probing), so a lookup is usually one cache line, whose
//! address is known from the conv alone: a batch can prefetch it before the lookup.

use crate::prefetch::{prefetch_lines, Level};

/// A bucket's slot value meaning "empty" (the slab never hands out this slot).
const EMPTY: u32 = u32::MAX;

/// Buckets of the first allocation.
const MIN_BUCKETS: usize = 16;

/// One bucket: a conv and its session's slot, or empty.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    conv: u32,
    slot: u32,
}

const EMPTY_BUCKET: Bucket = Bucket {
    conv: 0,
    slot: EMPTY,
};

/// conv → slot.
///
/// Costs: `get`, `insert` and `remove` are O(1) expected (the table is at most 3/4
/// full; `remove` shifts the following entries of its run back, so no tombstones
/// accumulate); growing doubles the table and rehashes, O(n) once per doubling.
/// Memory: 8 bytes per bucket, 10.7 to 21 bytes per entry.
#[derive(Clone, Debug)]
pub(crate) struct ConvMap {
    key: u64,
    buckets: Vec<Bucket>,
    len: usize,
}

impl ConvMap {
    /// An empty map whose hash is keyed by `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        ConvMap {
            // Spread the seed so seed 0 does not give key 0.
            key: mix(seed ^ 0x243f_6a88_85a3_08d3),
            buckets: Vec::new(),
            len: 0,
        }
    }

    /// Entries in the map.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the map is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot of `conv`, if present.
    #[inline]
    pub(crate) fn get(&self, conv: u32) -> Option<u32> {
        let i = self.position(conv)?;
        self.buckets.get(i).map(|bucket| bucket.slot)
    }

    /// The index of `conv`'s bucket, if present: its probe run from its home bucket
    /// up to the first empty one.
    #[inline]
    fn position(&self, conv: u32) -> Option<usize> {
        let mask = self.buckets.len().checked_sub(1)?;
        let mut i = self.home(conv, mask);
        loop {
            let bucket = *self.buckets.get(i)?;
            if bucket.slot == EMPTY {
                return None;
            }
            if bucket.conv == conv {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Maps `conv` to `slot` (replacing what `conv` had). `slot` must not be
    /// `u32::MAX`.
    pub(crate) fn insert(&mut self, conv: u32, slot: u32) {
        debug_assert_ne!(slot, EMPTY);
        if (self.len + 1) * 4 > self.buckets.len() * 3 {
            self.grow();
        }
        let mask = self.buckets.len() - 1;
        let mut i = self.home(conv, mask);
        while let Some(bucket) = self.buckets.get_mut(i) {
            if bucket.slot == EMPTY {
                *bucket = Bucket { conv, slot };
                self.len += 1;
                return;
            }
            if bucket.conv == conv {
                bucket.slot = slot;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// Removes `conv`, returning its slot if it was present.
    pub(crate) fn remove(&mut self, conv: u32) -> Option<u32> {
        let mut hole = self.position(conv)?;
        let mask = self.buckets.len() - 1;
        let removed = self.buckets.get(hole).map(|b| b.slot);
        // Backward shift: move each following entry of the run into the hole if its
        // home bucket is not between the hole and itself.
        let mut next = hole;
        loop {
            next = (next + 1) & mask;
            let Some(&bucket) = self.buckets.get(next) else {
                break;
            };
            if bucket.slot == EMPTY {
                break;
            }
            let home = self.home(bucket.conv, mask);
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.buckets[hole] = bucket;
                hole = next;
            }
        }
        self.buckets[hole] = EMPTY_BUCKET;
        self.len -= 1;
        removed
    }

    /// Asks the CPU to start loading the bucket where a lookup of `conv` starts. A hint:
    /// changes nothing. One instruction.
    #[inline]
    pub(crate) fn prefetch(&self, conv: u32) {
        if let Some(mask) = self.buckets.len().checked_sub(1) {
            if let Some(bucket) = self.buckets.get(self.home(conv, mask)) {
                prefetch_lines(bucket, 0..1, Level::L1);
            }
        }
    }

    /// The bucket where `conv`'s probe starts.
    #[inline]
    fn home(&self, conv: u32, mask: usize) -> usize {
        mix(self.key ^ u64::from(conv)) as usize & mask
    }

    /// Doubles the table and puts every entry back.
    #[cold]
    fn grow(&mut self) {
        let buckets = (self.buckets.len() * 2).max(MIN_BUCKETS);
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY_BUCKET; buckets]);
        self.len = 0;
        for bucket in old.into_iter().filter(|b| b.slot != EMPTY) {
            self.insert(bucket.conv, bucket.slot);
        }
    }
}

/// The splitmix64 finalizer: a bijection with good avalanche.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::QuickCheck;
    use std::collections::HashMap;

    #[test]
    fn insert_get_remove() {
        let mut map = ConvMap::new(7);
        assert!(map.is_empty());
        assert_eq!(map.get(1), None);
        assert_eq!(map.remove(1), None);
        for conv in 0..1000 {
            map.insert(conv * 7919, conv);
        }
        assert_eq!(map.len(), 1000);
        for conv in 0..1000 {
            assert_eq!(map.get(conv * 7919), Some(conv));
        }
        map.insert(7919, 5);
        assert_eq!((map.get(7919), map.len()), (Some(5), 1000));
        for conv in (0..1000).step_by(2) {
            assert_eq!(map.remove(conv * 7919), Some(conv));
        }
        assert_eq!(map.len(), 500);
        for conv in 0..1000 {
            let expected = (conv % 2 == 1).then_some(if conv == 1 { 5 } else { conv });
            assert_eq!(map.get(conv * 7919), expected);
        }
    }

    /// The map behaves like a `HashMap` under any sequence of inserts and removes, on
    /// few convs so that runs, wrap-around and backward shifts are frequent.
    #[test]
    fn matches_hashmap_model() {
        fn prop(ops: Vec<(bool, u8, u16)>, seed: u64) -> bool {
            let mut map = ConvMap::new(seed);
            let mut model = HashMap::new();
            for (insert, conv, slot) in ops {
                let conv = u32::from(conv % 64);
                if insert {
                    map.insert(conv, u32::from(slot));
                    model.insert(conv, u32::from(slot));
                } else if map.remove(conv) != model.remove(&conv) {
                    return false;
                }
                if map.len() != model.len() || (0..64).any(|c| map.get(c) != model.get(&c).copied())
                {
                    return false;
                }
            }
            true
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(Vec<(bool, u8, u16)>, u64) -> bool);
    }
}
