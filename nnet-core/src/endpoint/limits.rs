//! Rate limits keyed by things an attacker picks (PROTOCOL.md sections 4 and 8).
//!
//! Every table here has a fixed capacity chosen at construction: its memory is allocated
//! once and never grows, and when it is full a new key evicts the entry that was
//! inserted or refreshed longest ago. A flood from many forged sources therefore costs
//! a bounded amount of memory and O(1) work per datagram.
//!
//! The price of a bounded table is that an evicted key is forgotten: it starts fresh, as
//! if it had never been seen. A key is evicted only after `capacity` other keys were
//! inserted or refreshed since it last was, so a per-key limit is exact as long as fewer
//! than `capacity` distinct keys are active within the limit's time span; past that, the
//! global limits ([`GlobalRate`]) still bound the total, which is what protects the
//! endpoint and the rest of the network.
//!
//! Hashing is SipHash ([`DefaultHasher`], fixed keys) prefixed with a caller-chosen
//! `seed`, so the tables are deterministic for a given seed (this crate reads no
//! randomness). With the default seed 0 the hash function is public, and an attacker
//! who controls many source addresses (easy with IPv6) can pick ones that collide and
//! make lookups slow: give production endpoints a random seed (`EndpointConfig::seed`).

// A complete small API, tested here; the endpoint uses part of it.
#![cfg_attr(not(test), allow(dead_code))]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// Marks an empty index slot or the end of the age list.
const NIL: u32 = u32::MAX;

/// The largest capacity a [`BoundedTable`] takes; larger requests are clamped to it.
pub const MAX_CAPACITY: usize = 1 << 30;

/// One entry of a [`BoundedTable`], linked into the age list.
struct Entry<K, V> {
    key: K,
    value: V,
    /// Next older entry, or `NIL`.
    prev: u32,
    /// Next newer entry, or `NIL`.
    next: u32,
}

/// Fixed-capacity map from source key to small state, evicting the least recently
/// inserted/refreshed entry when full.
///
/// Layout: a dense slab of entries (`Vec`, allocated once at `capacity`) threaded by an
/// intrusive doubly linked list from oldest to newest, and an open-addressing index
/// (linear probing, backward-shift deletion, no tombstones) of at least twice
/// `capacity` slots, so it is never more than half full. Lookups, inserts, evictions
/// and removals are O(1) expected; nothing allocates after construction.
///
/// Memory per entry: `size_of::<K>() + size_of::<V>() + 8` bytes rounded up to the
/// alignment, plus 8 to 16 bytes of index (two to four `u32` slots, the index size being
/// a power of two). On 64-bit Linux with an [`Instant`] value that is 56 + 8..16 bytes
/// for a [`std::net::SocketAddr`] key and 48 + 8..16 bytes for a [`std::net::IpAddr`]
/// key.
///
/// [`get_mut`](Self::get_mut) does not refresh an entry; [`insert`](Self::insert) does,
/// whether the key is new or not.
pub struct BoundedTable<K, V> {
    /// Live entries, `len() <= capacity`; the slab is kept dense with `swap_remove`.
    entries: Vec<Entry<K, V>>,
    /// Entry number per slot, or `NIL`; its length is a power of two `>= 2 * capacity`.
    index: Box<[u32]>,
    /// Oldest entry, or `NIL`.
    head: u32,
    /// Newest entry, or `NIL`.
    tail: u32,
    capacity: usize,
    seed: u64,
}

impl<K: Hash + Eq + Copy, V> BoundedTable<K, V> {
    /// An empty table holding at most `capacity` entries (0 is taken as 1, more than
    /// [`MAX_CAPACITY`] as [`MAX_CAPACITY`]), hashing with seed 0.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_seed(capacity, 0)
    }

    /// An empty table holding at most `capacity` entries (clamped as in
    /// [`with_capacity`](Self::with_capacity)), hashing with `seed`.
    pub fn with_capacity_and_seed(capacity: usize, seed: u64) -> Self {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        let slots = (capacity * 2).next_power_of_two();
        BoundedTable {
            entries: Vec::with_capacity(capacity),
            index: vec![NIL; slots].into_boxed_slice(),
            head: NIL,
            tail: NIL,
            capacity,
            seed,
        }
    }

    /// The value of `key`, if present. Does not refresh the entry.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let e = self.find(key)?;
        Some(&mut self.entries[e].value)
    }

    /// Sets the value of `key` and makes it the newest entry. If `key` is new and the
    /// table is full, the oldest entry is evicted first and returned; otherwise `None`
    /// (a previous value of `key` itself is dropped, not returned).
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        if let Some(e) = self.find(&key) {
            self.entries[e].value = value;
            self.refresh(e);
            return None;
        }
        let evicted = if self.entries.len() >= self.capacity {
            self.remove_entry(self.head as usize)
        } else {
            None
        };
        let e = self.entries.len() as u32;
        self.entries.push(Entry {
            key,
            value,
            prev: self.tail,
            next: NIL,
        });
        self.link_back(e);
        let slot = self.empty_slot(&key);
        self.index[slot] = e;
        evicted
    }

    /// Removes `key`, returning its value if it was present.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let e = self.find(key)?;
        self.remove_entry(e).map(|(_, v)| v)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The home slot of `key`.
    fn home(&self, key: &K) -> usize {
        let mut h = DefaultHasher::new();
        h.write_u64(self.seed);
        key.hash(&mut h);
        (h.finish() as usize) & (self.index.len() - 1)
    }

    /// The entry number of `key`, if present.
    fn find(&self, key: &K) -> Option<usize> {
        let mask = self.index.len() - 1;
        let mut slot = self.home(key);
        // The index is at most half full, so the probe always reaches an empty slot.
        loop {
            let e = self.index[slot];
            if e == NIL {
                return None;
            }
            if self.entries[e as usize].key == *key {
                return Some(e as usize);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The first empty slot on the probe path of `key` (which must be absent).
    fn empty_slot(&self, key: &K) -> usize {
        let mask = self.index.len() - 1;
        let mut slot = self.home(key);
        while self.index[slot] != NIL {
            slot = (slot + 1) & mask;
        }
        slot
    }

    /// The slot holding entry number `e`, whose key is `key`.
    fn slot_holding(&self, key: &K, e: usize) -> usize {
        let mask = self.index.len() - 1;
        let mut slot = self.home(key);
        while self.index[slot] != e as u32 {
            slot = (slot + 1) & mask;
        }
        slot
    }

    /// Makes entry `e` the newest.
    fn refresh(&mut self, e: usize) {
        if self.tail != e as u32 {
            self.unlink(e);
            self.entries[e].prev = self.tail;
            self.entries[e].next = NIL;
            self.link_back(e as u32);
        }
    }

    /// Links entry `e`, whose `prev` is already the current tail, as the newest.
    fn link_back(&mut self, e: u32) {
        match self.tail {
            NIL => self.head = e,
            t => self.entries[t as usize].next = e,
        }
        self.tail = e;
    }

    /// Takes entry `e` out of the age list.
    fn unlink(&mut self, e: usize) {
        let (prev, next) = (self.entries[e].prev, self.entries[e].next);
        match prev {
            NIL => self.head = next,
            p => self.entries[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entries[n as usize].prev = prev,
        }
    }

    /// Removes entry `e` (if it exists) from the index, the list and the slab.
    fn remove_entry(&mut self, e: usize) -> Option<(K, V)> {
        if e >= self.entries.len() {
            return None;
        }
        let slot = self.slot_holding(&self.entries[e].key, e);
        self.clear_slot(slot);
        self.unlink(e);
        let removed = self.entries.swap_remove(e);
        let moved = self.entries.len();
        if e < moved {
            // The last entry now lives at `e`: repoint its slot and its neighbours.
            let slot = self.slot_holding(&self.entries[e].key, moved);
            self.index[slot] = e as u32;
            let (prev, next) = (self.entries[e].prev, self.entries[e].next);
            match prev {
                NIL => self.head = e as u32,
                p => self.entries[p as usize].next = e as u32,
            }
            match next {
                NIL => self.tail = e as u32,
                n => self.entries[n as usize].prev = e as u32,
            }
        }
        Some((removed.key, removed.value))
    }

    /// Empties `slot`, shifting later entries of its probe run back so that every
    /// entry stays reachable from its home slot without tombstones.
    fn clear_slot(&mut self, slot: usize) {
        let mask = self.index.len() - 1;
        let mut hole = slot;
        let mut probe = slot;
        loop {
            probe = (probe + 1) & mask;
            let e = self.index[probe];
            if e == NIL {
                break;
            }
            let home = self.home(&self.entries[e as usize].key);
            // Movable if its home is not cyclically within (hole, probe].
            if probe.wrapping_sub(home) & mask >= probe.wrapping_sub(hole) & mask {
                self.index[hole] = e;
                hole = probe;
            }
        }
        self.index[hole] = NIL;
    }
}

impl<K, V> std::fmt::Debug for BoundedTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedTable")
            .field("len", &self.entries.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// Allows one event per key per `interval` (e.g. one FIN(reset) per source per 100 ms),
/// table bounded.
///
/// Each key remembers the time of its last allowed event (an [`Instant`]; memory as in
/// [`BoundedTable`]). Only allowed events refresh a key, so the oldest entry is the one
/// whose interval ends first, and evicting it costs nothing once it is older than
/// `interval`. The guarantee is exact while fewer than `capacity` distinct keys are
/// allowed within one `interval`; beyond that an evicted key starts fresh and may be
/// allowed early, which is accepted because a [`GlobalRate`] bounds the total.
///
/// An `interval` of zero allows everything and records nothing. A `now` earlier than a
/// key's recorded event (a caller's clock going back) is denied, never allowed early.
#[derive(Debug)]
pub struct PerKeyInterval<K> {
    table: BoundedTable<K, Instant>,
    interval: Duration,
}

impl<K: Hash + Eq + Copy> PerKeyInterval<K> {
    /// A limiter of one event per key per `interval`, remembering at most `capacity`
    /// keys (clamped as in [`BoundedTable::with_capacity`]), hashing with seed 0.
    pub fn new(interval: Duration, capacity: usize) -> Self {
        Self::with_seed(interval, capacity, 0)
    }

    /// As [`new`](Self::new), hashing with `seed`.
    pub fn with_seed(interval: Duration, capacity: usize, seed: u64) -> Self {
        PerKeyInterval {
            table: BoundedTable::with_capacity_and_seed(capacity, seed),
            interval,
        }
    }

    /// Whether `key` may have an event at `now`: true, recording `now`, if the key had
    /// no allowed event within `interval` before `now`.
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        if self.interval.is_zero() {
            return true;
        }
        let Some(e) = self.table.find(&key) else {
            self.table.insert(key, now);
            return true;
        };
        let last = &mut self.table.entries[e].value;
        if now.saturating_duration_since(*last) < self.interval {
            return false;
        }
        *last = now;
        self.table.refresh(e);
        true
    }

    /// Number of keys remembered.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The most keys remembered.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }
}

/// The rule of a token bucket, in its GCRA form: one [`Instant`] of state, the
/// "theoretical arrival time" (TAT) by which the bucket is full again.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Time one token takes to come back: 1 s / `per_second`, rounded up so the rate is
    /// never above `per_second`.
    emission: Duration,
    /// How far the TAT may run ahead of now: `per_second - 1` emissions (burst
    /// `per_second`).
    tolerance: Duration,
}

impl Bucket {
    /// The bucket of `per_second` tokens refilled at `per_second` per second; `None`
    /// for 0 (nothing is ever allowed).
    fn new(per_second: u32) -> Option<Bucket> {
        if per_second == 0 {
            return None;
        }
        let emission = Duration::from_nanos(1_000_000_000u64.div_ceil(u64::from(per_second)));
        Some(Bucket {
            emission,
            tolerance: emission.saturating_mul(per_second - 1),
        })
    }

    /// The new TAT if an event at `now` conforms to a bucket whose TAT is `tat`
    /// (`None`: a fresh, full bucket), or `None` if it does not.
    fn take(&self, tat: Option<Instant>, now: Instant) -> Option<Instant> {
        let start = match tat {
            Some(tat) if tat.saturating_duration_since(now) > self.tolerance => return None,
            Some(tat) => tat.max(now),
            None => now,
        };
        start.checked_add(self.emission)
    }
}

/// Allows at most `per_second` events per key per second, table bounded (e.g. new
/// sessions per source per second).
///
/// A token bucket per key (in its GCRA form, one [`Instant`] per key; memory as in
/// [`BoundedTable`]): it holds `per_second` tokens and refills at `per_second` per
/// second, so a key gets a burst of up to `per_second` events and then `per_second` per
/// second; any window of `t` seconds sees at most `per_second * (1 + t)` events of one
/// key (so up to twice `per_second` in one second, never more on average). A token takes
/// 1 s / `per_second` rounded up to the nanosecond to come back, so rates above 10^9
/// per second are 10^9 per second.
///
/// Only allowed events refresh a key. The guarantee is exact while fewer than
/// `capacity` distinct keys are allowed within one second; beyond that an evicted key
/// starts with a full bucket, which is accepted because a [`GlobalRate`] bounds the
/// total. `per_second` = 0 allows nothing and records nothing.
#[derive(Debug)]
pub struct PerKeyRate<K> {
    table: BoundedTable<K, Instant>,
    bucket: Option<Bucket>,
}

impl<K: Hash + Eq + Copy> PerKeyRate<K> {
    /// A limiter of `per_second` events per key per second, remembering at most
    /// `capacity` keys (clamped as in [`BoundedTable::with_capacity`]), hashing with
    /// seed 0.
    pub fn new(per_second: u32, capacity: usize) -> Self {
        Self::with_seed(per_second, capacity, 0)
    }

    /// As [`new`](Self::new), hashing with `seed`.
    pub fn with_seed(per_second: u32, capacity: usize, seed: u64) -> Self {
        PerKeyRate {
            table: BoundedTable::with_capacity_and_seed(capacity, seed),
            bucket: Bucket::new(per_second),
        }
    }

    /// Whether `key` may have an event at `now`; if so, takes one of its tokens.
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        let Some(bucket) = self.bucket else {
            return false;
        };
        let Some(e) = self.table.find(&key) else {
            return match bucket.take(None, now) {
                Some(tat) => {
                    self.table.insert(key, tat);
                    true
                }
                None => false,
            };
        };
        let tat = &mut self.table.entries[e].value;
        match bucket.take(Some(*tat), now) {
            Some(next) => {
                *tat = next;
                self.table.refresh(e);
                true
            }
            None => false,
        }
    }

    /// Number of keys remembered.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// The most keys remembered.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }
}

/// Global budget: at most `per_second` events per second overall (e.g. resets for the
/// whole endpoint).
///
/// The same token bucket as [`PerKeyRate`], for one key: a burst of up to `per_second`,
/// then `per_second` per second; any window of `t` seconds sees at most
/// `per_second * (1 + t)` events. `per_second` = 0 allows nothing.
#[derive(Clone, Debug)]
pub struct GlobalRate {
    bucket: Option<Bucket>,
    tat: Option<Instant>,
}

impl GlobalRate {
    /// A budget of `per_second` events per second.
    pub fn new(per_second: u32) -> Self {
        GlobalRate {
            bucket: Bucket::new(per_second),
            tat: None,
        }
    }

    /// Whether an event may happen at `now`; if so, takes a token.
    pub fn allow(&mut self, now: Instant) -> bool {
        let Some(bucket) = self.bucket else {
            return false;
        };
        match bucket.take(self.tat, now) {
            Some(tat) => {
                self.tat = Some(tat);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(i)), (i % 65536) as u16)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Checks the table's internal invariants: index and list agree with the slab.
    fn check<K: Hash + Eq + Copy + std::fmt::Debug, V>(t: &BoundedTable<K, V>) {
        assert!(t.len() <= t.capacity());
        assert_eq!(t.entries.capacity(), t.capacity(), "slab never reallocates");
        let indexed = t.index.iter().filter(|&&e| e != NIL).count();
        assert_eq!(indexed, t.len());
        for (e, entry) in t.entries.iter().enumerate() {
            assert_eq!(t.find(&entry.key), Some(e));
        }
        let (mut n, mut e, mut prev) = (0, t.head, NIL);
        while e != NIL {
            assert_eq!(t.entries[e as usize].prev, prev);
            prev = e;
            e = t.entries[e as usize].next;
            n += 1;
        }
        assert_eq!(prev, t.tail);
        assert_eq!(n, t.len());
    }

    #[test]
    fn capacity_never_exceeded_under_100k_distinct_keys() {
        let mut t = BoundedTable::with_capacity(1000);
        let slots = t.index.len();
        for i in 0..100_000u32 {
            let evicted = t.insert(addr(i), i);
            if i >= 1000 {
                // Full: the oldest goes, in insertion order.
                assert_eq!(evicted, Some((addr(i - 1000), i - 1000)));
            } else {
                assert_eq!(evicted, None);
            }
            assert!(t.len() <= 1000);
        }
        check(&t);
        assert_eq!(t.len(), 1000);
        assert_eq!(t.index.len(), slots, "index never grows");
        assert_eq!(t.get_mut(&addr(98_999)), None);
        assert_eq!(t.get_mut(&addr(99_000)), Some(&mut 99_000));
    }

    #[test]
    fn limiters_stay_bounded_under_100k_distinct_keys() {
        let base = Instant::now();
        let mut interval = PerKeyInterval::new(ms(100), 512);
        let mut rate = PerKeyRate::new(4, 512);
        for i in 0..100_000u32 {
            let now = base + Duration::from_micros(u64::from(i));
            assert!(interval.allow(addr(i), now));
            assert!(rate.allow(addr(i).ip(), now));
            assert!(interval.len() <= 512 && rate.len() <= 512);
        }
        assert_eq!(interval.capacity(), 512);
        assert_eq!(rate.capacity(), 512);
        check(&interval.table);
        check(&rate.table);
    }

    #[test]
    fn eviction_order_follows_insert_and_refresh() {
        let mut t = BoundedTable::with_capacity(3);
        assert!(t.is_empty());
        assert_eq!(t.insert('a', 1), None);
        assert_eq!(t.insert('b', 2), None);
        assert_eq!(t.insert('c', 3), None);
        // Re-inserting refreshes; get_mut does not.
        assert_eq!(t.insert('a', 10), None);
        *t.get_mut(&'b').expect("b present") += 100;
        assert_eq!(t.insert('d', 4), Some(('b', 102)));
        assert_eq!(t.insert('e', 5), Some(('c', 3)));
        assert_eq!(t.insert('f', 6), Some(('a', 10)));
        check(&t);
        assert_eq!(t.remove(&'e'), Some(5));
        assert_eq!(t.remove(&'e'), None);
        assert_eq!(t.len(), 2);
        check(&t);
        // Room again: no eviction until full.
        assert_eq!(t.insert('g', 7), None);
        assert_eq!(t.insert('h', 8), Some(('d', 4)));
        check(&t);
    }

    #[test]
    fn removal_keeps_index_consistent() {
        // Small index, many collisions and removals from everywhere in the slab.
        let mut t = BoundedTable::with_capacity(16);
        for round in 0..200u32 {
            for i in 0..16 {
                t.insert(round * 16 + i, i);
            }
            for i in (0..16).step_by(3) {
                assert_eq!(t.remove(&(round * 16 + i)), Some(i));
            }
            check(&t);
        }
    }

    #[test]
    fn seeded_tables_agree_on_behaviour() {
        let mut a = BoundedTable::with_capacity_and_seed(8, 1);
        let mut b = BoundedTable::with_capacity_and_seed(8, 2);
        for i in 0..100u32 {
            assert_eq!(a.insert(i, i), b.insert(i, i));
        }
        check(&a);
        check(&b);
        assert_eq!(format!("{a:?}"), "BoundedTable { len: 8, capacity: 8, .. }");
    }

    #[test]
    fn zero_capacity_is_one() {
        let mut t = BoundedTable::with_capacity(0);
        assert_eq!(t.capacity(), 1);
        assert_eq!(t.insert(1u8, ()), None);
        assert_eq!(t.insert(2u8, ()), Some((1, ())));
        assert_eq!(t.len(), 1);
        check(&t);
        let mut i = PerKeyInterval::new(ms(100), 0);
        let mut r = PerKeyRate::new(1, 0);
        let now = Instant::now();
        assert!(i.allow(1u8, now) && i.allow(2u8, now) && i.allow(1u8, now));
        assert!(r.allow(1u8, now) && r.allow(2u8, now) && r.allow(1u8, now));
        assert_eq!((i.capacity(), r.capacity()), (1, 1));
    }

    #[test]
    fn interval_semantics() {
        let base = Instant::now();
        let mut l = PerKeyInterval::new(ms(100), 16);
        let (a, b) = (addr(1), addr(2));
        assert!(l.is_empty());
        assert!(l.allow(a, base));
        assert!(!l.allow(a, base));
        assert!(!l.allow(a, base + ms(99)));
        assert!(l.allow(b, base + ms(50)), "keys are independent");
        // Denied events do not move the window.
        assert!(l.allow(a, base + ms(100)));
        assert!(!l.allow(a, base + ms(199)));
        assert!(l.allow(a, base + ms(200)));
        // A clock going back is denied, not allowed early.
        assert!(!l.allow(a, base + ms(150)));
        assert!(!l.allow(b, base));
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn interval_zero_allows_everything() {
        let base = Instant::now();
        let mut l = PerKeyInterval::new(Duration::ZERO, 4);
        for _ in 0..10 {
            assert!(l.allow(addr(1), base));
        }
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn interval_evicts_oldest_allowed() {
        let base = Instant::now();
        let mut l = PerKeyInterval::new(ms(100), 2);
        assert!(l.allow(1u32, base));
        assert!(l.allow(2u32, base + ms(1)));
        assert!(
            !l.allow(1u32, base + ms(2)),
            "denied: does not refresh key 1"
        );
        assert!(
            l.allow(3u32, base + ms(3)),
            "evicts key 1, the oldest allowed"
        );
        // Forgotten: key 1 starts fresh (the documented trade-off); key 2 is remembered.
        assert!(l.allow(1u32, base + ms(4)));
        assert!(!l.allow(3u32, base + ms(5)));
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn rate_semantics() {
        let base = Instant::now();
        let mut l = PerKeyRate::new(4, 16);
        let a = IpAddr::V6(Ipv6Addr::LOCALHOST);
        // Burst of 4, then one token per 250 ms.
        for _ in 0..4 {
            assert!(l.allow(a, base));
        }
        assert!(!l.allow(a, base));
        assert!(!l.allow(a, base + ms(249)));
        assert!(l.allow(a, base + ms(250)));
        assert!(!l.allow(a, base + ms(250)));
        assert!(l.allow(IpAddr::V4(Ipv4Addr::LOCALHOST), base + ms(250)));
        // Sustained: over 10 s of constant demand, 4 + 4 * 10 events at most.
        let mut l = PerKeyRate::new(4, 16);
        let allowed = (0..=10_000u64)
            .filter(|&t| l.allow(a, base + ms(t)))
            .count();
        assert_eq!(allowed, 4 + 40);
        // Idle refills to a full burst, never more.
        let later = base + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| l.allow(a, later)).count(), 4);
    }

    #[test]
    fn rate_zero_and_huge() {
        let base = Instant::now();
        let mut none = PerKeyRate::new(0, 4);
        assert!(!none.allow(1u8, base));
        assert_eq!(none.len(), 0);
        let mut g = GlobalRate::new(0);
        assert!(!g.allow(base));
        // u32::MAX per second: one token per nanosecond, burst u32::MAX; no overflow.
        let mut many = PerKeyRate::new(u32::MAX, 4);
        assert!((0..1000).all(|_| many.allow(1u8, base)));
        let mut g = GlobalRate::new(u32::MAX);
        assert!((0..1000).all(|_| g.allow(base)));
        let mut one = GlobalRate::new(1);
        assert!(one.allow(base));
        assert!(!one.allow(base + ms(999)));
        assert!(one.allow(base + ms(1000)));
    }

    #[test]
    fn global_rate_semantics() {
        let base = Instant::now();
        let mut g = GlobalRate::new(1000);
        assert_eq!((0..5000).filter(|_| g.allow(base)).count(), 1000);
        assert!(!g.allow(base + Duration::from_micros(999)));
        assert!(g.allow(base + ms(1)));
        assert!(!g.allow(base + ms(1)));
        // Any second after the burst: at most 1000.
        let allowed = (0..1_000_000u64)
            .filter(|&us| g.allow(base + ms(2) + Duration::from_micros(us)))
            .count();
        assert!((999..=1001).contains(&allowed), "{allowed}");
        // A clock going back gets nothing extra.
        assert!(!g.allow(base));
    }

    /// One operation on a table of small keys.
    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8, u16),
        Remove(u8),
        Get(u8),
    }

    impl quickcheck::Arbitrary for Op {
        fn arbitrary(g: &mut quickcheck::Gen) -> Self {
            let key = u8::arbitrary(g) % 24;
            match u8::arbitrary(g) % 4 {
                0 => Op::Remove(key),
                1 => Op::Get(key),
                _ => Op::Insert(key, u16::arbitrary(g)),
            }
        }
    }

    /// The table behaves like a list ordered oldest to newest, cut at the capacity.
    #[test]
    fn matches_naive_model() {
        fn prop(capacity: u8, ops: Vec<Op>) -> bool {
            let capacity = usize::from(capacity % 12);
            let mut t = BoundedTable::with_capacity_and_seed(capacity, 7);
            let mut model: Vec<(u8, u16)> = Vec::new();
            for op in ops {
                let ok = match op {
                    Op::Insert(k, v) => {
                        let expected = match model.iter().position(|&(mk, _)| mk == k) {
                            Some(i) => {
                                model.remove(i);
                                None
                            }
                            None if model.len() >= capacity.max(1) => Some(model.remove(0)),
                            None => None,
                        };
                        model.push((k, v));
                        t.insert(k, v) == expected
                    }
                    Op::Remove(k) => {
                        let expected = model
                            .iter()
                            .position(|&(mk, _)| mk == k)
                            .map(|i| model.remove(i).1);
                        t.remove(&k) == expected
                    }
                    Op::Get(k) => {
                        let expected = model.iter().find(|&&(mk, _)| mk == k).map(|&(_, v)| v);
                        t.get_mut(&k).map(|v| *v) == expected
                    }
                };
                if !ok || t.len() != model.len() {
                    return false;
                }
                check(&t);
            }
            true
        }
        quickcheck::QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(u8, Vec<Op>) -> bool);
    }

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn entry_sizes_as_documented() {
        use std::mem::size_of;
        assert_eq!(size_of::<Entry<SocketAddr, Instant>>(), 56);
        assert_eq!(size_of::<Entry<IpAddr, Instant>>(), 48);
    }
}
