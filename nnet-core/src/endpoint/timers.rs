//! The deadlines of all sessions of an endpoint in one structure: deadlines of the
//! next second or two in a small binary heap, later ones (idle and handshake timeouts)
//! in one bucket per second, so that setting a far deadline is O(1) and the heap stays
//! as small as the number of sessions that are busy now. A far deadline that moves
//! later (a session that received something) is not filed again: its old far entry
//! stays, and re-files it when its bucket comes due (a lazy timeout).

// A complete small API, tested here; the endpoint uses part of it.
#![cfg_attr(not(test), allow(dead_code))]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

use crate::prefetch::{prefetch_lines, Level};

/// A table value meaning "no deadline" (or "no far entry").
const NONE: u64 = u64::MAX;

/// Flips a two's complement offset into an order-preserving unsigned value.
const SIGN: u64 = 1 << 63;

/// A far bucket spans `2^BUCKET_SHIFT` ns (about 1.07 s).
const BUCKET_SHIFT: u32 = 30;

/// Stale entries tolerated beyond the live ones before compacting, so that small
/// tables do not compact on every change (small in tests, to exercise compaction).
const SLACK: usize = if cfg!(test) { 4 } else { 64 };

/// One near deadline: `(encoded deadline, key)`.
type Timer = (u64, u32);

/// What the table holds per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    /// The key's encoded deadline, or [`NONE`].
    deadline: u64,
    /// The far bucket holding the key's far entry, or [`NONE`]. That entry is at or
    /// before the key's deadline when the deadline is far.
    far: u64,
}

impl Slot {
    const EMPTY: Slot = Slot {
        deadline: NONE,
        far: NONE,
    };
}

/// Deadline per key (a session slot: `u32`), at most one per key; setting a new
/// deadline replaces the old one.
///
/// Deadlines are split by time at a horizon that moves with the present (the latest
/// `now` given to [`pop_expired`](Self::pop_expired)): those in the present's bucket of
/// about one second or the next go to the *near* binary min-heap; later ones are
/// appended to the *far* bucket of their second (a `BTreeMap` from bucket number to a
/// `Vec` of keys: a server has a few dozen such buckets, for its idle and handshake
/// timeouts). Near deletion is lazy: a table indexed by key holds each key's current
/// deadline, and a heap entry that does not match it is stale and skipped.
///
/// Far entries are lazy too, and only name a key. A key has at most one far entry
/// (the table records its bucket): setting a far deadline at or after that bucket
/// changes only the table, so a session that keeps receiving moves its idle timeout
/// later at no cost beyond one table write, and leaves nothing stale behind. When a far
/// bucket comes due (or is scanned for [`next_deadline`](Self::next_deadline)), each
/// of its keys is looked up: a deadline in that bucket is filed as usual (into the
/// heap when due), a later one is re-filed into its own bucket, and one that was since
/// set near or removed just drops the entry. A key busy for a while (near deadlines)
/// keeps its far entry, so its next quiet period files nothing either. Only a far
/// deadline earlier than the key's far entry appends a new one (the old one is then
/// stale). When stored entries exceed twice the keys that need one (by more than a
/// small slack) everything is compacted in one pass, so the stored entries stay below
/// `2 * (len() + far keys) + 64` however often deadlines are rescheduled.
///
/// Costs: setting a deadline is O(log n) for the near heap, whose n is the deadlines of
/// the next second or two (the busy sessions), and O(1) for a far one (a table write,
/// or a lookup among the few buckets and an append); cancelling is O(1); expiring is
/// O(log n) in the near heap; a far entry is looked up and possibly re-filed once per
/// bucket it comes due in. [`next_deadline`](Self::next_deadline) is exact: O(1) while
/// a near deadline exists; with none, the earliest far deadline is found by scanning
/// the earliest bucket with a deadline in it once (re-filing the keys that moved later
/// on the way) and kept until that deadline changes or expires. Everything is
/// compacted in O(n) at most once per n changes.
///
/// Expiry order is by deadline, ties to the smaller key, so it is deterministic.
/// Deadlines are stored as signed nanosecond offsets from the first deadline ever set,
/// which is exact for any deadline within 292 years of it (farther ones are clamped to
/// that range; nothing panics).
///
/// Memory: 16 bytes per key up to the largest key ever set (the table is a `Vec`
/// indexed by key, grown as needed, never shrunk, so keys should be dense slot
/// numbers), plus 4 bytes per far entry and 16 per near one: 20 bytes per idle key.
#[derive(Clone, Debug, Default)]
pub struct Timers {
    /// The origin of the stored offsets: the first deadline ever set.
    base: Option<Instant>,
    /// Deadline and far bucket per key.
    slots: Vec<Slot>,
    /// Keys with a deadline.
    live: usize,
    /// Keys with a far entry (`Slot::far` set).
    filed: usize,
    /// The bucket of the present; deadlines in it or the next one go to `near`.
    horizon: u64,
    /// Near deadlines, smallest first; may hold stale entries.
    near: BinaryHeap<Reverse<Timer>>,
    /// Far entries (keys) by bucket (all after `horizon + 1`); may hold stale ones.
    far: BTreeMap<u64, Vec<u32>>,
    /// Entries in `far`, stale ones included.
    far_entries: usize,
    /// The earliest far deadline, when known: `Some(None)` means there is none.
    far_min: Option<Option<Timer>>,
}

impl Timers {
    /// No deadlines.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the deadline of `key` to `at`, replacing any it had (nothing happens if it
    /// already was `at`). O(1) for a far deadline, O(log n) amortized for a near one.
    pub fn set(&mut self, key: u32, at: Instant) {
        let base = match self.base {
            Some(base) => base,
            None => {
                self.base = Some(at);
                self.horizon = bucket(encode(at, at));
                at
            }
        };
        let encoded = encode(base, at);
        let k = key as usize;
        if k >= self.slots.len() {
            self.slots.resize(k + 1, Slot::EMPTY);
        }
        let Some(slot) = self.slots.get_mut(k) else {
            return;
        };
        if slot.deadline == encoded {
            return;
        }
        if slot.deadline == NONE {
            self.live += 1;
        }
        slot.deadline = encoded;
        self.forget_far_min_of(key);
        self.file(key, encoded);
        if let (Some(known), true) = (&mut self.far_min, bucket(encoded) > self.horizon + 1) {
            if known.is_none_or(|min| (encoded, key) < min) {
                *known = Some((encoded, key));
            }
        }
        self.compact_if_stale();
    }

    /// Removes the deadline of `key`, if any. O(1) amortized.
    pub fn cancel(&mut self, key: u32) {
        let Some(slot) = self.slots.get_mut(key as usize) else {
            return;
        };
        if slot.deadline == NONE {
            return;
        }
        slot.deadline = NONE;
        if slot.far != NONE {
            // The far entry is stale now: compaction may drop it.
            slot.far = NONE;
            self.filed -= 1;
        }
        self.live -= 1;
        self.forget_far_min_of(key);
        self.compact_if_stale();
    }

    /// The deadline of `key`, if it has one.
    pub fn deadline(&self, key: u32) -> Option<Instant> {
        let encoded = self.slots.get(key as usize)?.deadline;
        if encoded == NONE {
            return None;
        }
        Some(decode(self.base?, encoded))
    }

    /// The earliest deadline of all keys, if any (exact). O(1) amortized while a near
    /// deadline exists (stale entries on top of the heap are dropped on the way); else
    /// the earliest far deadline, found by one scan of its bucket and then kept.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let base = self.base?;
        if let Some((encoded, _)) = self.near_top() {
            return Some(decode(base, encoded));
        }
        let (encoded, _) = self.earliest_far()?;
        Some(decode(base, encoded))
    }

    /// One key whose deadline is at or before `now` (the earliest, the smaller key on a
    /// tie), removing its deadline; `None` if no deadline has passed. O(log n)
    /// amortized in the near heap; reaching a new second files the keys of its far
    /// bucket first (once per bucket).
    pub fn pop_expired(&mut self, now: Instant) -> Option<u32> {
        let now = encode(self.base?, now);
        self.advance(bucket(now));
        let (encoded, key) = self.near_top()?;
        if encoded > now {
            return None;
        }
        self.near.pop();
        if let Some(slot) = self.slots.get_mut(key as usize) {
            // The far entry, if any, stays: the key's next far deadline reuses it.
            slot.deadline = NONE;
        }
        self.live -= 1;
        Some(key)
    }

    /// Asks the CPU to start loading the table entry of `key` (what setting or
    /// cancelling its deadline reads first), without waiting. A hint: changes nothing;
    /// does nothing for a key never set or on other architectures. One instruction.
    #[inline]
    pub fn prefetch(&self, key: u32) {
        if let Some(slot) = self.slots.get(key as usize) {
            prefetch_lines(slot, 0..1, Level::L1);
        }
    }

    /// Number of keys with a deadline.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no key has a deadline.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Entries stored, stale ones included.
    fn stored(&self) -> usize {
        self.near.len() + self.far_entries
    }

    /// Whether a near entry is a key's current deadline.
    fn is_live(&self, (encoded, key): Timer) -> bool {
        self.slots.get(key as usize).map(|s| s.deadline) == Some(encoded)
    }

    /// Makes sure the key's deadline `encoded` will be found: a near one goes to the
    /// heap; a far one needs the key's far entry at or before its bucket, and appends
    /// one only if there is none such.
    fn file(&mut self, key: u32, encoded: u64) {
        let b = bucket(encoded);
        if b <= self.horizon + 1 {
            self.near.push(Reverse((encoded, key)));
            return;
        }
        let Some(slot) = self.slots.get_mut(key as usize) else {
            return;
        };
        if slot.far <= b {
            // Lazy: that entry comes due first and re-files the key then.
            return;
        }
        if slot.far == NONE {
            self.filed += 1;
        }
        slot.far = b;
        self.far.entry(b).or_default().push(key);
        self.far_entries += 1;
    }

    /// Takes the key's far entry of bucket `b` out: `None` if it is stale, else the
    /// key's deadline if that lies in `b` or later (then the entry was its only record;
    /// an earlier deadline is in the heap, and a removed one needs nothing).
    fn take_far(&mut self, key: u32, b: u64) -> Option<u64> {
        let slot = self.slots.get_mut(key as usize)?;
        if slot.far != b {
            return None;
        }
        slot.far = NONE;
        self.filed -= 1;
        (slot.deadline != NONE && bucket(slot.deadline) >= b).then_some(slot.deadline)
    }

    /// The earliest far deadline is no longer known if it was `key`'s.
    #[inline]
    fn forget_far_min_of(&mut self, key: u32) {
        if let Some(Some((_, min_key))) = self.far_min {
            if min_key == key {
                self.far_min = None;
            }
        }
    }

    /// Moves the present to `now_bucket` (never back): the keys of the far buckets
    /// that are now near are filed again (into the heap, or a later bucket).
    fn advance(&mut self, now_bucket: u64) {
        if now_bucket <= self.horizon {
            return;
        }
        self.horizon = now_bucket;
        while let Some(entry) = self.far.first_entry() {
            if *entry.key() > self.horizon + 1 {
                break;
            }
            let (b, keys) = entry.remove_entry();
            self.far_entries -= keys.len();
            for key in keys {
                if let Some(encoded) = self.take_far(key, b) {
                    self.file(key, encoded);
                }
            }
            self.far_min = None;
        }
    }

    /// The earliest live near entry, after popping the stale ones above it.
    fn near_top(&mut self) -> Option<Timer> {
        while let Some(&Reverse(timer)) = self.near.peek() {
            if self.is_live(timer) {
                return Some(timer);
            }
            self.near.pop();
        }
        None
    }

    /// The earliest far deadline: the one kept, or found in the earliest bucket that
    /// holds one. Called with no live near deadline. On the way, the keys whose
    /// deadline moved later are re-filed into their own buckets, and stale entries
    /// are dropped.
    fn earliest_far(&mut self) -> Option<Timer> {
        if let Some(known) = self.far_min {
            return known;
        }
        let mut found = None;
        while let Some(entry) = self.far.first_entry() {
            let (b, keys) = entry.remove_entry();
            self.far_entries -= keys.len();
            let mut kept = Vec::new();
            for key in keys {
                let Some(encoded) = self.take_far(key, b) else {
                    continue;
                };
                if bucket(encoded) == b {
                    let timer = (encoded, key);
                    found = Some(found.map_or(timer, |min: Timer| min.min(timer)));
                    kept.push(key);
                } else {
                    self.file(key, encoded);
                }
            }
            if !kept.is_empty() {
                for &key in &kept {
                    if let Some(slot) = self.slots.get_mut(key as usize) {
                        slot.far = b;
                    }
                }
                self.filed += kept.len();
                self.far_entries += kept.len();
                self.far.insert(b, kept);
                break;
            }
        }
        self.far_min = Some(found);
        found
    }

    /// Drops every stale entry (and duplicates of live ones) once stale entries
    /// outnumber the needed ones. O(n), at most once per n changes.
    fn compact_if_stale(&mut self) {
        if self.stored() <= 2 * (self.live + self.filed) + SLACK {
            return;
        }
        // A key set back to a deadline it had before can have identical near entries,
        // and one cancelled and set again identical far entries: keep the first of
        // each key in each structure.
        let slots = &self.slots;
        let mut first = first_of_each_key(slots.len());
        let mut near = std::mem::take(&mut self.near).into_vec();
        near.retain(|&Reverse((encoded, key))| {
            slots.get(key as usize).map(|s| s.deadline) == Some(encoded) && first(key)
        });
        if near.capacity() > 4 * (near.len() + SLACK) {
            near.shrink_to(2 * near.len() + SLACK);
        }
        self.near = BinaryHeap::from(near);
        let mut first = first_of_each_key(slots.len());
        self.far_entries = 0;
        self.far.retain(|&b, keys| {
            keys.retain(|&key| slots.get(key as usize).map(|s| s.far) == Some(b) && first(key));
            if keys.capacity() > 4 * (keys.len() + SLACK) {
                keys.shrink_to(2 * keys.len() + SLACK);
            }
            self.far_entries += keys.len();
            !keys.is_empty()
        });
    }
}

/// A filter that is true the first time it sees each key below `keys`.
fn first_of_each_key(keys: usize) -> impl FnMut(u32) -> bool {
    let mut seen = vec![0u64; keys.div_ceil(64)];
    move |key| {
        let k = key as usize;
        let (word, bit) = (k / 64, 1u64 << (k % 64));
        match seen.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                true
            }
            _ => false,
        }
    }
}

/// The far bucket of an encoded deadline.
fn bucket(encoded: u64) -> u64 {
    encoded >> BUCKET_SHIFT
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
        let entries = t.stored();
        t.set(4, base + ms(7));
        assert_eq!(t.stored(), entries);
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
        assert_eq!(t.stored(), 10, "cancel is lazy");
        assert_eq!(t.next_deadline(), Some(base + ms(1)));
        assert_eq!(t.stored(), 9, "the stale top was dropped");
        assert_eq!(drain(&mut t, base + ms(100)), vec![1, 3, 5, 7, 9]);
        assert_eq!(t.stored(), 0);
        // A key set back to an old deadline after expiring is live again, once.
        t.set(3, base + ms(3));
        assert_eq!(drain(&mut t, base + ms(100)), vec![3]);
    }

    #[test]
    fn compaction_bounds_entries_under_1m_reschedules() {
        let base = Instant::now();
        let mut t = Timers::new();
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..1_000_000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            t.set(i % 1000, base + Duration::from_micros(rng % 10_000_000));
            assert!(t.stored() <= 2 * (t.len() + t.filed) + SLACK + 1);
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
            let before = t.stored();
            t.set(0, base + ms(i % 2));
            if t.stored() <= before {
                compactions += 1;
                assert_eq!(t.stored(), 1, "one entry per live key after compaction");
            }
            assert!(t.stored() <= 2 * t.len() + SLACK + 1);
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
        assert!(t.stored() <= 2 + SLACK + 1);
        assert!(t.near.capacity() <= 4 * (t.near.len() + SLACK));
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
        assert_eq!(std::mem::size_of::<Slot>(), 16);
    }

    /// A session's timer as the endpoint drives it: each datagram received at `at`
    /// makes it busy (a flush 10 ms later), then the flush finds it quiet and its idle
    /// timeout `at + idle` is set.
    fn receive(t: &mut Timers, key: u32, at: Instant, idle: Duration) {
        t.set(key, at + ms(10));
        assert_eq!(t.pop_expired(at + ms(10)), Some(key));
        t.set(key, at + idle);
    }

    #[test]
    fn lazy_refile_never_times_out_early_and_exactly_on_time() {
        let base = Instant::now();
        let idle = Duration::from_secs(30);
        let mut t = Timers::new();
        // Key 1 receives every 250 ms for 100 s; key 2 receives once and goes quiet.
        receive(&mut t, 1, base, idle);
        receive(&mut t, 2, base, idle);
        let mut now = base;
        for _ in 0..400 {
            now += ms(250);
            // Key 2 expires exactly at its deadline (on this 250 ms grid), key 1 never.
            let expected = if now == base + idle { vec![2] } else { vec![] };
            assert_eq!(drain(&mut t, now), expected, "at {:?}", now - base);
            let before = t.far_entries;
            receive(&mut t, 1, now, idle);
            assert_eq!(t.deadline(1), Some(now + idle));
            assert!(t.far_entries <= before, "moving later files nothing new");
            assert!(t.stored() <= 2, "one far entry per key, nothing stale");
            let next = t.deadline(2).unwrap_or(now + idle);
            assert_eq!(t.next_deadline(), Some(next), "exact");
        }
        assert_eq!(t.deadline(2), None, "key 2 timed out");
        // Now key 1 goes quiet: exactly at its deadline.
        let deadline = now + idle;
        assert_eq!(t.next_deadline(), Some(deadline));
        assert_eq!(t.pop_expired(deadline - Duration::from_nanos(1)), None);
        assert_eq!(t.next_deadline(), Some(deadline), "re-filed, still exact");
        assert_eq!(t.pop_expired(deadline), Some(1));
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn quiet_key_expires_exactly_at_its_deadline_after_refiles() {
        let base = Instant::now();
        let mut t = Timers::new();
        t.set(0, base);
        assert_eq!(t.pop_expired(base), Some(0));
        // Filed at 5 s, moved later in steps of 2 s up to 41 s: one far entry.
        t.set(7, base + Duration::from_secs(5));
        for s in (7..=41).step_by(2) {
            t.set(7, base + Duration::from_secs(s));
            assert_eq!(t.far_entries, 1);
            assert_eq!(t.next_deadline(), Some(base + Duration::from_secs(s)));
        }
        // Walk the clock in 100 ms steps: never early, exactly on time.
        let deadline = base + Duration::from_secs(41);
        let mut now = base;
        while now < deadline {
            assert_eq!(t.pop_expired(now), None, "early at {:?}", now - base);
            now += ms(100);
        }
        assert_eq!(t.pop_expired(deadline - Duration::from_nanos(1)), None);
        assert_eq!(t.pop_expired(deadline), Some(7));
        assert_eq!(t.stored(), 0);
        // An earlier far deadline files a new entry; the later one is then stale.
        t.set(8, base + Duration::from_secs(90));
        t.set(8, base + Duration::from_secs(60));
        assert_eq!((t.far_entries, t.filed), (2, 1));
        assert_eq!(t.next_deadline(), Some(base + Duration::from_secs(60)));
        t.set(8, base + Duration::from_secs(120));
        assert_eq!(t.pop_expired(base + Duration::from_secs(119)), None);
        assert_eq!(t.next_deadline(), Some(base + Duration::from_secs(120)));
        assert_eq!(t.pop_expired(base + Duration::from_secs(120)), Some(8));
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

    /// Timers behave like a `BTreeMap` from key to deadline, with deadlines `step`
    /// apart: all near (1 ms), across a few far buckets (150 ms), or far apart (1000 s).
    fn matches_model_with_step<const STEP_MS: u64>() {
        fn prop<const STEP_MS: u64>(ops: Vec<Op>) -> bool {
            let base = Instant::now();
            let at = |n: u64| base + ms(n * STEP_MS);
            let mut t = Timers::new();
            let mut model: BTreeMap<u32, Instant> = BTreeMap::new();
            for op in ops {
                let before = model.clone();
                let ok = match op.clone() {
                    Op::Set(k, n) => {
                        t.set(k, at(n));
                        model.insert(k, at(n));
                        true
                    }
                    Op::Cancel(k) => {
                        t.cancel(k);
                        model.remove(&k);
                        true
                    }
                    Op::Pop(now) => {
                        let now = at(now);
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
                // Compaction runs on a set or cancel that changes something.
                let changed = match op {
                    Op::Set(k, n) => before.get(&k) != Some(&at(n)),
                    Op::Cancel(k) => before.contains_key(&k),
                    _ => false,
                };
                let compact = t.stored() <= 2 * (t.len() + t.filed) + SLACK + 1;
                let bounded = t.filed <= 12 && (compact || !changed);
                if !ok || !same || !bounded || t.len() != model.len() {
                    return false;
                }
            }
            true
        }
        QuickCheck::new()
            .tests(1000)
            .quickcheck(prop::<STEP_MS> as fn(Vec<Op>) -> bool);
    }

    #[test]
    fn matches_btreemap_model() {
        matches_model_with_step::<1>();
    }

    #[test]
    fn matches_btreemap_model_across_far_buckets() {
        matches_model_with_step::<150>();
        matches_model_with_step::<1_000_000>();
    }

    #[test]
    fn far_deadlines_stay_out_of_the_heap_until_near() {
        let base = Instant::now();
        let mut t = Timers::new();
        t.set(0, base);
        for k in 1..=1000 {
            t.set(k, base + Duration::from_secs(30) + ms(u64::from(k)));
        }
        assert_eq!(t.near.len(), 1, "only the near deadline is in the heap");
        assert_eq!(t.pop_expired(base), Some(0));
        assert_eq!(
            t.next_deadline(),
            Some(base + Duration::from_secs(30) + ms(1))
        );
        // Moving the earliest far deadline later: the next one is found again.
        t.set(1, base + Duration::from_secs(60));
        assert_eq!(
            t.next_deadline(),
            Some(base + Duration::from_secs(30) + ms(2))
        );
        // An earlier far deadline is taken at once.
        t.set(5, base + Duration::from_secs(20));
        assert_eq!(t.next_deadline(), Some(base + Duration::from_secs(20)));
        assert_eq!(t.pop_expired(base + Duration::from_secs(19)), None);
        assert_eq!(t.pop_expired(base + Duration::from_secs(20)), Some(5));
        let late = base + Duration::from_secs(31);
        let expired: Vec<u32> = std::iter::from_fn(|| t.pop_expired(late)).collect();
        assert_eq!(expired, (2..=1000).filter(|&k| k != 5).collect::<Vec<_>>());
        assert_eq!(t.next_deadline(), Some(base + Duration::from_secs(60)));
        assert_eq!(drain(&mut t, base + Duration::from_secs(60)), vec![1]);
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }
}
