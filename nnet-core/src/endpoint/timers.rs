//! The deadlines of all sessions of an endpoint in one structure, so that
//! `poll_timeout` is O(1) amortized and expiring is O(log n) per deadline.

// A complete small API, tested here; the endpoint uses part of it.
#![cfg_attr(not(test), allow(dead_code))]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// A table value meaning "no deadline".
const NONE: u64 = u64::MAX;

/// Flips a two's complement offset into an order-preserving unsigned value.
const SIGN: u64 = 1 << 63;

/// Stale heap entries tolerated beyond the live ones before compacting, so that small
/// heaps do not compact on every change (small in tests, to exercise compaction).
const SLACK: usize = if cfg!(test) { 4 } else { 64 };

/// Deadline per key (a session slot: `u32`), at most one per key; setting a new
/// deadline replaces the old one.
///
/// A binary min-heap of `(deadline, key)` with lazy deletion: a table indexed by key
/// holds each key's current deadline, and a heap entry that does not match it is stale
/// and skipped. When stale entries outnumber live ones (by more than a small slack) the
/// heap is rebuilt from its live entries, so its size stays below `2 * len() + 64`
/// however often deadlines are rescheduled or cancelled. Ties between equal deadlines go
/// to the smaller key, so the order of expiry is deterministic.
///
/// Deadlines are stored as signed nanosecond offsets from the first deadline ever set,
/// which is exact for any deadline within 292 years of it (farther ones are clamped to
/// that range; nothing panics).
///
/// Memory: 8 bytes per key up to the largest key ever set (the table is a `Vec`
/// indexed by key, grown as needed, never shrunk, so keys should be dense slot numbers),
/// plus 16 bytes per heap entry: 24 bytes per key with a live deadline once compacted,
/// at most 8 + 2 × 16 = 40 bytes per live key (plus the slack) between compactions.
#[derive(Clone, Debug, Default)]
pub struct Timers {
    /// The origin of the stored offsets: the first deadline ever set.
    base: Option<Instant>,
    /// Encoded deadline per key, or [`NONE`].
    deadlines: Vec<u64>,
    /// `(encoded deadline, key)`, smallest first; may hold stale entries.
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// Keys with a deadline.
    live: usize,
}

impl Timers {
    /// No deadlines.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the deadline of `key` to `at`, replacing any it had (nothing happens if it
    /// already was `at`). O(log n) amortized.
    pub fn set(&mut self, key: u32, at: Instant) {
        let base = *self.base.get_or_insert(at);
        let encoded = encode(base, at);
        let k = key as usize;
        if k >= self.deadlines.len() {
            self.deadlines.resize(k + 1, NONE);
        }
        let slot = &mut self.deadlines[k];
        if *slot == encoded {
            return;
        }
        if *slot == NONE {
            self.live += 1;
        }
        *slot = encoded;
        self.heap.push(Reverse((encoded, key)));
        self.compact_if_stale();
    }

    /// Removes the deadline of `key`, if any. O(1) amortized.
    pub fn cancel(&mut self, key: u32) {
        if let Some(slot) = self.deadlines.get_mut(key as usize) {
            if *slot != NONE {
                *slot = NONE;
                self.live -= 1;
                self.compact_if_stale();
            }
        }
    }

    /// The deadline of `key`, if it has one.
    pub fn deadline(&self, key: u32) -> Option<Instant> {
        let encoded = *self.deadlines.get(key as usize)?;
        if encoded == NONE {
            return None;
        }
        Some(decode(self.base?, encoded))
    }

    /// The earliest deadline of all keys, if any. Drops stale entries from the top of
    /// the heap on the way: O(1) when the top is live, O(log n) amortized otherwise.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let (encoded, _) = self.live_top()?;
        Some(decode(self.base?, encoded))
    }

    /// One key whose deadline is at or before `now` (the earliest, the smaller key on a
    /// tie), removing its deadline; `None` if no deadline has passed. O(log n)
    /// amortized.
    pub fn pop_expired(&mut self, now: Instant) -> Option<u32> {
        let (encoded, key) = self.live_top()?;
        if encoded > encode(self.base?, now) {
            return None;
        }
        self.heap.pop();
        if let Some(slot) = self.deadlines.get_mut(key as usize) {
            *slot = NONE;
        }
        self.live -= 1;
        Some(key)
    }

    /// Number of keys with a deadline.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no key has a deadline.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Whether a heap entry is a key's current deadline.
    fn is_live(&self, encoded: u64, key: u32) -> bool {
        self.deadlines.get(key as usize) == Some(&encoded)
    }

    /// The earliest live heap entry, after popping the stale ones above it.
    fn live_top(&mut self) -> Option<(u64, u32)> {
        while let Some(&Reverse((encoded, key))) = self.heap.peek() {
            if self.is_live(encoded, key) {
                return Some((encoded, key));
            }
            self.heap.pop();
        }
        None
    }

    /// Rebuilds the heap from its live entries once stale ones outnumber them.
    ///
    /// A key set back to a deadline it had before can have several identical entries;
    /// all but one are dropped here too. O(n log n), at most once per n changes.
    fn compact_if_stale(&mut self) {
        if self.heap.len() <= 2 * self.live + SLACK {
            return;
        }
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        entries.retain(|&Reverse((encoded, key))| self.is_live(encoded, key));
        if entries.len() > self.live {
            entries.sort_unstable();
            entries.dedup();
        }
        if entries.capacity() > 4 * (entries.len() + SLACK) {
            entries.shrink_to(2 * entries.len() + SLACK);
        }
        self.heap = BinaryHeap::from(entries);
    }
}

/// `at` as an order-preserving offset from `base` in nanoseconds, clamped to what fits
/// (and below [`NONE`]).
fn encode(base: Instant, at: Instant) -> u64 {
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let offset = match at.checked_duration_since(base) {
        Some(after) => nanos(after),
        None => -nanos(base.saturating_duration_since(at)),
    };
    ((offset as u64) ^ SIGN).min(NONE - 1)
}

/// The instant [`encode`] turned into `encoded`.
fn decode(base: Instant, encoded: u64) -> Instant {
    let offset = (encoded ^ SIGN) as i64;
    let magnitude = Duration::from_nanos(offset.unsigned_abs());
    let at = if offset >= 0 {
        base.checked_add(magnitude)
    } else {
        base.checked_sub(magnitude)
    };
    at.unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};
    use std::collections::BTreeMap;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(t: &mut Timers, now: Instant) -> Vec<u32> {
        std::iter::from_fn(|| t.pop_expired(now)).collect()
    }

    #[test]
    fn expires_in_deadline_order_ties_by_key() {
        let base = Instant::now();
        let mut t = Timers::new();
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.pop_expired(base), None);
        t.set(5, base + ms(30));
        t.set(9, base + ms(10));
        t.set(2, base + ms(20));
        t.set(7, base + ms(10));
        t.set(1, base + ms(20));
        assert_eq!(t.len(), 5);
        assert_eq!(t.next_deadline(), Some(base + ms(10)));
        assert_eq!(drain(&mut t, base + ms(100)), vec![7, 9, 1, 2, 5]);
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn pop_expired_respects_now() {
        let base = Instant::now();
        let mut t = Timers::default();
        t.set(1, base + ms(10));
        t.set(2, base + ms(20));
        assert_eq!(t.pop_expired(base), None);
        assert_eq!(t.pop_expired(base + ms(9)), None);
        assert_eq!(
            t.pop_expired(base + ms(10)),
            Some(1),
            "deadline == now expires"
        );
        assert_eq!(t.pop_expired(base + ms(10)), None);
        assert_eq!(t.deadline(1), None);
        assert_eq!(t.deadline(2), Some(base + ms(20)));
        assert_eq!(t.pop_expired(base + ms(25)), Some(2));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn set_replaces() {
        let base = Instant::now();
        let mut t = Timers::new();
        t.set(3, base + ms(10));
        t.set(3, base + ms(50));
        assert_eq!(t.len(), 1);
        assert_eq!(t.deadline(3), Some(base + ms(50)));
        assert_eq!(t.pop_expired(base + ms(10)), None, "old deadline is stale");
        assert_eq!(t.next_deadline(), Some(base + ms(50)));
        // Earlier replaces too.
        t.set(3, base + ms(5));
        assert_eq!(t.next_deadline(), Some(base + ms(5)));
        assert_eq!(drain(&mut t, base + ms(100)), vec![3]);
        // The same instant again is a no-op.
        t.set(4, base + ms(7));
        let entries = t.heap.len();
        t.set(4, base + ms(7));
        assert_eq!(t.heap.len(), entries);
        // Deadlines before the first one ever set (negative offsets) work too.
        t.set(6, base - ms(1));
        assert_eq!(t.deadline(6), Some(base - ms(1)));
        assert_eq!(drain(&mut t, base), vec![6]);
    }

    #[test]
    fn cancel_and_stale_entries_are_skipped() {
        let base = Instant::now();
        let mut t = Timers::new();
        for k in 0..10 {
            t.set(k, base + ms(u64::from(k)));
        }
        for k in (0..10).step_by(2) {
            t.cancel(k);
        }
        t.cancel(4);
        t.cancel(1000);
        assert_eq!(t.len(), 5);
        assert_eq!(t.deadline(4), None);
        assert_eq!(t.deadline(1000), None);
        assert_eq!(t.heap.len(), 10, "cancel is lazy");
        assert_eq!(t.next_deadline(), Some(base + ms(1)));
        assert_eq!(t.heap.len(), 9, "the stale top was dropped");
        assert_eq!(drain(&mut t, base + ms(100)), vec![1, 3, 5, 7, 9]);
        assert!(t.heap.is_empty());
        // A key set back to an old deadline after expiring is live again, once.
        t.set(3, base + ms(3));
        assert_eq!(drain(&mut t, base + ms(100)), vec![3]);
    }

    #[test]
    fn compaction_bounds_heap_under_1m_reschedules() {
        let base = Instant::now();
        let mut t = Timers::new();
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..1_000_000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            t.set(i % 1000, base + Duration::from_micros(rng % 10_000_000));
            assert!(t.heap.len() <= 2 * t.len() + SLACK + 1);
        }
        assert_eq!(t.len(), 1000);
        let mut last = (base, 0);
        for _ in 0..1000 {
            let at = t.next_deadline().expect("live deadline");
            let key = t.pop_expired(at).expect("expired");
            assert!((at, key) > last);
            last = (at, key);
        }
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn compaction_drops_duplicates_and_cancelled() {
        let base = Instant::now();
        let mut t = Timers::new();
        // Alternating between two instants makes identical entries.
        let mut compactions = 0;
        for i in 0..100_000u64 {
            let before = t.heap.len();
            t.set(0, base + ms(i % 2));
            if t.heap.len() <= before {
                compactions += 1;
                assert_eq!(t.heap.len(), 1, "one entry per live key after compaction");
            }
            assert!(t.heap.len() <= 2 * t.len() + SLACK + 1);
        }
        assert!(compactions > 0);
        // Mass cancel: the heap shrinks with the live count.
        for k in 1..=10_000 {
            t.set(k, base + ms(5));
        }
        for k in 1..=10_000 {
            t.cancel(k);
        }
        assert_eq!(t.len(), 1);
        assert!(t.heap.len() <= 2 + SLACK + 1);
        assert!(t.heap.capacity() <= 4 * (t.heap.len() + SLACK));
        assert_eq!(drain(&mut t, base + ms(10)), vec![0]);
    }

    #[test]
    fn encoding_is_exact_and_ordered() {
        let base = Instant::now();
        for d in [0, 1, 999, 1_000_000_007, 86_400_000_000_000_000] {
            for at in [
                base.checked_add(Duration::from_nanos(d)),
                base.checked_sub(Duration::from_nanos(d)),
            ]
            .into_iter()
            .flatten()
            {
                assert_eq!(decode(base, encode(base, at)), at);
            }
        }
        let e = |n| encode(base, base + Duration::from_nanos(n));
        assert!(encode(base, base - Duration::from_nanos(1)) < e(0));
        assert!(e(0) < e(1));
        assert!(e(u64::MAX / 4) < NONE);
    }

    #[test]
    fn sizes_as_documented() {
        assert_eq!(std::mem::size_of::<Reverse<(u64, u32)>>(), 16);
    }

    /// One operation on the timers, on a few keys and close deadlines so that ties,
    /// replacements and stale entries are frequent.
    #[derive(Clone, Debug)]
    enum Op {
        Set(u32, u64),
        Cancel(u32),
        Pop(u64),
        Next,
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Self {
            let key = u32::arbitrary(g) % 12;
            match u8::arbitrary(g) % 6 {
                0 => Op::Cancel(key),
                1 => Op::Pop(u64::arbitrary(g) % 40),
                2 => Op::Next,
                _ => Op::Set(key, u64::arbitrary(g) % 32),
            }
        }
    }

    /// Timers behave like a `BTreeMap` from key to deadline.
    #[test]
    fn matches_btreemap_model() {
        fn prop(ops: Vec<Op>) -> bool {
            let base = Instant::now();
            let mut t = Timers::new();
            let mut model: BTreeMap<u32, Instant> = BTreeMap::new();
            for op in ops {
                let ok = match op {
                    Op::Set(k, at) => {
                        t.set(k, base + ms(at));
                        model.insert(k, base + ms(at));
                        true
                    }
                    Op::Cancel(k) => {
                        t.cancel(k);
                        model.remove(&k);
                        true
                    }
                    Op::Pop(now) => {
                        let now = base + ms(now);
                        let expected = model
                            .iter()
                            .filter(|&(_, &at)| at <= now)
                            .min_by_key(|&(&k, &at)| (at, k))
                            .map(|(&k, _)| k);
                        if let Some(k) = expected {
                            model.remove(&k);
                        }
                        t.pop_expired(now) == expected
                    }
                    Op::Next => t.next_deadline() == model.values().min().copied(),
                };
                let same = (0..12).all(|k| t.deadline(k) == model.get(&k).copied());
                if !ok || !same || t.len() != model.len() {
                    return false;
                }
            }
            true
        }
        QuickCheck::new()
            .tests(1000)
            .quickcheck(prop as fn(Vec<Op>) -> bool);
    }
}
