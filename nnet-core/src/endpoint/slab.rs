//! The endpoint's sessions, stored inline in fixed-size pages and addressed by slot.
//!
//! A slot's record sits in its page itself (no box to follow), so reaching a session
//! from its slot number is one page-table read (a small, hot array) and then the
//! record. Pages never move or shrink, so growing the slab never copies a session and
//! costs at most one page of unused slots (rather than a `Vec`'s doubling).

use std::ops::Range;

use super::entry::Entry;
use super::prefetch::{prefetch_lines, Level};
use crate::event::ConnId;

/// Slots per page (a power of two). About 830 KiB per page.
const PAGE: usize = 1024;

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

/// Sessions by slot number, with a generation per slot and a free list.
///
/// Costs: lookup O(1) (page, then slot); insert O(1) (a new page when every slot is
/// taken: one allocation of `PAGE` slots); remove O(1). Memory: `PAGE` records per
/// page, plus 4 bytes per freed slot in the free list.
#[derive(Debug, Default)]
pub(crate) struct Slab {
    pages: Vec<Box<[Slot]>>,
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

    /// Stores a record in a free slot (a new page if none is free); returns the slot.
    pub(crate) fn insert(&mut self, entry: Entry) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = self.used;
                if slot as usize >= self.pages.len() * PAGE {
                    self.pages
                        .push((0..PAGE).map(|_| Slot::default()).collect());
                }
                self.used += 1;
                slot
            }
        };
        if let Some(stored) = self.slot_mut(slot) {
            stored.entry = Some(entry);
        }
        slot
    }

    /// Takes the slot's record out, if any: the slot's generation moves on (its handles
    /// go stale) and the slot is free for reuse.
    pub(crate) fn remove(&mut self, slot: u32) -> Option<Entry> {
        let stored = self.slot_mut(slot)?;
        let entry = stored.entry.take()?;
        stored.generation = stored.generation.wrapping_add(1);
        self.free.push(slot);
        Some(entry)
    }

    /// Asks the CPU to start loading the cache lines `lines` of the slot's record (the
    /// first two hold what the receive path reads first) into the caches of `level`,
    /// without waiting. A hint: changes nothing; does nothing for a slot out of range
    /// or on other architectures. Costs one instruction per line.
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
        let slot = slot as usize;
        self.pages.get(slot / PAGE)?.get(slot % PAGE)
    }

    #[inline]
    fn slot_mut(&mut self, slot: u32) -> Option<&mut Slot> {
        let slot = slot as usize;
        self.pages.get_mut(slot / PAGE)?.get_mut(slot % PAGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_starts_a_cache_line() {
        assert_eq!(std::mem::align_of::<Slot>(), 64);
        // The receive path's first fields stay within the slot's first two lines.
        assert!(std::mem::offset_of!(Entry, session) + 8 + 16 <= 128);
    }

    #[test]
    fn a_data_datagram_touches_the_first_lines_only() {
        // 13 lines per record; the hot part (record head, session head, the engine up
        // to its per-datagram counters) spans the first 10; the engine's rare
        // counters, its join buffer, real IP, token and creation time the last three.
        assert_eq!(std::mem::size_of::<Slot>(), 13 * 64);
        assert_eq!(HOT_LINES, 10);
        assert!(HOT_LINES < Slab::default().record_lines());
    }
}
