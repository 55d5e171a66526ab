//! The endpoint's sessions, stored inline in fixed-size pages and addressed by slot.
//!
//! A slot's record sits in its page itself (no box to follow), so reaching a session
//! from its slot number is one page-table read (a small, hot array) and then the
//! record. Each page holds its slots' [`Head`]s in one array and their [`Entry`]s in
//! another, so the heads of all sessions (what a PING touches) stay dense. Pages never
//! move or shrink, so growing the slab never copies a session and costs at most one
//! page of unused slots (rather than a `Vec`'s doubling).

use std::ops::Range;

use super::entry::{Entry, Head};
use crate::event::ConnId;
use crate::huge_pages::{HugeArray, HUGE_PAGE};
use crate::prefetch::{prefetch_lines, Level};

/// Slots per page: as many records as one huge page holds (3276 of 640 bytes: 2 MiB of
/// records, plus 205 KiB of heads).
const PAGE: usize = HUGE_PAGE / std::mem::size_of::<Slot>();

/// Cache lines at the start of a slot that one data datagram touches.
const HOT_LINES: usize = (std::mem::offset_of!(Slot, entry) + Entry::HOT_BYTES).div_ceil(64);

/// One slab slot: the generation tells a freed session's handle from a later one's.
/// Aligned to a cache line, so a record's first fields share one line.
#[derive(Debug, Default)]
#[repr(C, align(64))]
struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

/// `PAGE` slots: their heads and their records. The records are in a huge page (where
/// the system allows): with 100k sessions and more, the page walk before each
/// datagram's record would otherwise cost about as much as loading the record.
#[derive(Debug)]
struct Page {
    heads: Box<[Head]>,
    slots: HugeArray<Slot>,
}

impl Page {
    fn new() -> Page {
        Page {
            heads: vec![Head::FREE; PAGE].into_boxed_slice(),
            slots: HugeArray::new(PAGE, Slot::default),
        }
    }
}

/// Sessions by slot number, with a generation per slot and a free list.
///
/// Costs: lookup O(1) (page, then slot); insert O(1) (a new page when every slot is
/// taken: two allocations for `PAGE` slots); remove O(1). Memory: `PAGE` heads and
/// records per page, plus 4 bytes per freed slot in the free list.
#[derive(Debug, Default)]
pub(crate) struct Slab {
    pages: Vec<Page>,
    /// Slots of removed sessions, reused first (last freed, first reused).
    free: Vec<u32>,
    /// Slots ever handed out (the next new one).
    used: u32,
}

impl Slab {
    /// The slot's record, if one is stored.
    #[inline]
    pub(crate) fn get(&self, slot: u32) -> Option<&Entry> {
        self.slot(slot)?.entry.as_ref()
    }

    /// The slot's record, if one is stored.
    #[inline]
    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.slot_mut(slot)?.entry.as_mut()
    }

    /// The record `conn` names, if its generation is current.
    #[inline]
    pub(crate) fn get_conn(&self, conn: ConnId) -> Option<&Entry> {
        let slot = self.slot(conn.slot)?;
        (slot.generation == conn.generation)
            .then_some(slot.entry.as_ref())
            .flatten()
    }

    /// The record `conn` names, if its generation is current.
    #[inline]
    pub(crate) fn get_conn_mut(&mut self, conn: ConnId) -> Option<&mut Entry> {
        let slot = self.slot_mut(conn.slot)?;
        (slot.generation == conn.generation)
            .then_some(slot.entry.as_mut())
            .flatten()
    }

    /// The handle of whatever the slot holds now (generation 0 for a slot never used).
    #[inline]
    pub(crate) fn conn_id(&self, slot: u32) -> ConnId {
        ConnId {
            slot,
            generation: self.slot(slot).map_or(0, |s| s.generation),
        }
    }

    /// The slot's head, if the slot holds a session. Reads the heads' table only.
    #[inline]
    pub(crate) fn head_mut(&mut self, slot: u32) -> Option<&mut Head> {
        let (page, index) = split(slot);
        let head = self.pages.get_mut(page)?.heads.get_mut(index)?;
        head.live.then_some(head)
    }

    /// Both parts of the slot's session, if one is stored.
    #[inline]
    pub(crate) fn parts_mut(&mut self, slot: u32) -> Option<(&mut Head, &mut Entry)> {
        let (page, index) = split(slot);
        let page = self.pages.get_mut(page)?;
        let entry = page.slots.get_mut(index)?.entry.as_mut()?;
        let head = page.heads.get_mut(index)?;
        debug_assert!(
            head.live && head.remote == entry.remote && head.confirmed == entry.confirmed,
            "a session's head copies its record (slot {slot})"
        );
        Some((head, entry))
    }

    /// Both parts of the session `conn` names, if its generation is current.
    #[inline]
    pub(crate) fn conn_parts(&self, conn: ConnId) -> Option<(&Head, &Entry)> {
        let entry = self.get_conn(conn)?;
        let (page, index) = split(conn.slot);
        Some((self.pages.get(page)?.heads.get(index)?, entry))
    }

    /// Stores a session in a free slot (a new page if none is free); returns the slot.
    pub(crate) fn insert(&mut self, head: Head, entry: Entry) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = self.used;
                if slot as usize >= self.pages.len() * PAGE {
                    self.pages.push(Page::new());
                }
                self.used += 1;
                slot
            }
        };
        let (page, index) = split(slot);
        if let Some(page) = self.pages.get_mut(page) {
            if let (Some(stored), Some(stored_head)) =
                (page.slots.get_mut(index), page.heads.get_mut(index))
            {
                stored.entry = Some(entry);
                *stored_head = Head { live: true, ..head };
            }
        }
        slot
    }

    /// Takes the slot's session out, if any: the slot's generation moves on (its
    /// handles go stale) and the slot is free for reuse.
    pub(crate) fn remove(&mut self, slot: u32) -> Option<(Head, Entry)> {
        let (page, index) = split(slot);
        let page = self.pages.get_mut(page)?;
        let stored = page.slots.get_mut(index)?;
        let entry = stored.entry.take()?;
        stored.generation = stored.generation.wrapping_add(1);
        let head = std::mem::replace(page.heads.get_mut(index)?, Head::FREE);
        self.free.push(slot);
        Some((head, entry))
    }

    /// Asks the CPU to start loading the slot's head into L1, without waiting. A hint:
    /// changes nothing; does nothing for a slot out of range or on other
    /// architectures. Costs one instruction.
    #[inline]
    pub(crate) fn prefetch_head(&self, slot: u32) {
        let (page, index) = split(slot);
        if let Some(head) = self.pages.get(page).and_then(|p| p.heads.get(index)) {
            prefetch_lines(head, 0..1, Level::L1);
        }
    }

    /// Asks the CPU to start loading the cache lines `lines` of the slot's record into
    /// the caches of `level`, without waiting. A hint: changes nothing; does nothing
    /// for a slot out of range or on other architectures. Costs one instruction per
    /// line.
    #[inline]
    pub(crate) fn prefetch(&self, slot: u32, lines: Range<usize>, level: Level) {
        if let Some(stored) = self.slot(slot) {
            let end = lines.end.min(self.record_lines());
            prefetch_lines(stored, lines.start..end, level);
        }
    }

    /// Cache lines one slot spans.
    #[inline]
    pub(crate) fn record_lines(&self) -> usize {
        std::mem::size_of::<Slot>() / 64
    }

    /// Cache lines at the start of a slot that one data datagram and the flush after
    /// it touch ([`Entry::HOT_BYTES`]).
    #[inline]
    pub(crate) fn hot_lines(&self) -> usize {
        HOT_LINES
    }

    #[inline]
    fn slot(&self, slot: u32) -> Option<&Slot> {
        let (page, index) = split(slot);
        self.pages.get(page)?.slots.get(index)
    }

    #[inline]
    fn slot_mut(&mut self, slot: u32) -> Option<&mut Slot> {
        let (page, index) = split(slot);
        self.pages.get_mut(page)?.slots.get_mut(index)
    }
}

/// A slot's page and its place in the page.
#[inline]
fn split(slot: u32) -> (usize, usize) {
    let slot = slot as usize;
    (slot / PAGE, slot % PAGE)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::arq::{Arq, ArqConfig};
    use crate::session::Session;

    fn test_entry() -> Entry {
        let arq = Arq::new(7, &ArqConfig::default()).unwrap();
        let now = Instant::now();
        let remote = "192.0.2.9:1".parse().unwrap();
        Entry::new(Session::new(arq, now), 7, 0, remote, remote, None, now)
    }

    #[test]
    fn heads_and_records_start_cache_lines() {
        assert_eq!(std::mem::align_of::<Slot>(), 64);
        // A PING touches one line: its session's head.
        assert_eq!(std::mem::size_of::<Head>(), 64);
        assert_eq!(std::mem::align_of::<Head>(), 64);
    }

    #[test]
    fn a_data_datagram_touches_the_first_lines_only() {
        // 10 lines per record; the hot part (remote, flags, the session head, the
        // engine up to its per-datagram counters' low parts) spans the first 5; the
        // engine's counters, mss, token and join buffer, conv, real IP, token and
        // creation time the last five.
        assert_eq!(std::mem::size_of::<Slot>(), 10 * 64);
        assert_eq!(HOT_LINES, 5);
        assert!(HOT_LINES < Slab::default().record_lines());
    }

    #[test]
    fn heads_follow_their_sessions() {
        let remote = "192.0.2.1:5000".parse().unwrap();
        let mut slab = Slab::default();
        assert!(slab.head_mut(0).is_none());
        let slot = slab.insert(Head::new(remote), test_entry());
        let conn = slab.conn_id(slot);
        assert_eq!(slab.head_mut(slot).map(|h| h.remote), Some(remote));
        assert_eq!(slab.conn_parts(conn).map(|(h, _)| h.remote), Some(remote));
        let (head, _) = slab.remove(slot).unwrap();
        assert_eq!(head.remote, remote);
        // A freed slot has no head, and the old handle names nothing.
        assert!(slab.head_mut(slot).is_none());
        assert!(slab.conn_parts(conn).is_none());
        assert!(slab.get_conn_mut(conn).is_none());
        // The slot is reused with the new session's head.
        let other = "192.0.2.2:6000".parse().unwrap();
        assert_eq!(slab.insert(Head::new(other), test_entry()), slot);
        assert_eq!(slab.head_mut(slot).map(|h| h.remote), Some(other));
    }
}
