//! The client's ordered line list with stable ids, per-line stats and rebinding
//! requests. Replacing the list keeps the id and history of every line that stays.

use std::time::Instant;

use super::{Line, LineStats, LinesError, MAX_LINES};

/// A line's id for the life of a connection (never reused, unlike an index).
pub(crate) type LineId = u32;

/// One line in the list.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub id: LineId,
    pub line: Line,
    pub stats: LineStats,
    /// The next datagram on this line must go out from a fresh socket.
    pub rebind: bool,
    /// Answered the last probe round it was PINGed in.
    pub answered: bool,
    /// When it last became suspect while current.
    pub failed_at: Option<Instant>,
}

/// The lines, in the application's order (earlier lines win RTT ties).
#[derive(Clone, Debug)]
pub(crate) struct LineSet {
    slots: Vec<Slot>,
    next_id: LineId,
}

impl LineSet {
    /// A set of `lines` (duplicates dropped, first kept).
    pub(crate) fn new(lines: &[Line]) -> Result<LineSet, LinesError> {
        let mut set = LineSet {
            slots: Vec::new(),
            next_id: 0,
        };
        set.replace(lines)?;
        Ok(set)
    }

    /// Replaces the list; lines present before keep their id and stats. Returns the
    /// ids of the lines that left. On `Err` nothing changes.
    pub(crate) fn replace(&mut self, lines: &[Line]) -> Result<Vec<LineId>, LinesError> {
        if lines.is_empty() {
            return Err(LinesError::Empty);
        }
        if lines.len() > MAX_LINES {
            return Err(LinesError::TooMany { count: lines.len() });
        }
        let mut old = std::mem::take(&mut self.slots);
        for &line in lines {
            if self.slots.iter().any(|s| s.line == line) {
                continue;
            }
            let slot = match old.iter().position(|s| s.line == line) {
                Some(at) => old.swap_remove(at),
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    Slot {
                        id,
                        line,
                        stats: LineStats::default(),
                        rebind: false,
                        answered: false,
                        failed_at: None,
                    }
                }
            };
            self.slots.push(slot);
        }
        Ok(old.into_iter().map(|s| s.id).collect())
    }

    /// The lines in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter()
    }

    /// The lines in order, mutable.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.slots.iter_mut()
    }

    /// The line with `id`, if still in the list.
    #[cfg(test)]
    pub(crate) fn get(&self, id: LineId) -> Option<&Slot> {
        self.slots.iter().find(|s| s.id == id)
    }

    /// The line with `id`, mutable.
    pub(crate) fn get_mut(&mut self, id: LineId) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.id == id)
    }

    /// The id of `line`, if it is in the list.
    pub(crate) fn find(&self, line: &Line) -> Option<LineId> {
        self.slots.iter().find(|s| s.line == *line).map(|s| s.id)
    }

    /// Whether the next datagram on `id` must come from a fresh socket; clears the
    /// request and counts it.
    pub(crate) fn take_rebind(&mut self, id: LineId) -> bool {
        match self.get_mut(id) {
            Some(slot) if slot.rebind => {
                slot.rebind = false;
                slot.stats.rebinds += 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(port: u16) -> Line {
        Line::udp(std::net::SocketAddr::from(([192, 0, 2, 1], port)))
    }

    #[test]
    fn replacing_keeps_ids_and_stats_of_lines_that_stay() {
        let mut set = LineSet::new(&[line(1), line(2), line(1)]).expect("lines");
        assert_eq!(set.iter().count(), 2, "duplicates dropped");
        let one = set.find(&line(1)).expect("line 1");
        let two = set.find(&line(2)).expect("line 2");
        set.get_mut(two).expect("slot").stats.pings = 7;
        let left = set.replace(&[line(3), line(2)]).expect("lines");
        assert_eq!(left, vec![one]);
        assert_eq!(set.find(&line(2)), Some(two));
        assert_eq!(set.get(two).expect("slot").stats.pings, 7);
        let three = set.find(&line(3)).expect("line 3");
        assert!(three > two, "new lines get new ids");
        assert_eq!(
            set.iter().map(|s| s.line).collect::<Vec<_>>(),
            vec![line(3), line(2)]
        );
    }

    #[test]
    fn bad_lists_are_refused_and_change_nothing() {
        let mut set = LineSet::new(&[line(1)]).expect("lines");
        assert_eq!(set.replace(&[]), Err(LinesError::Empty));
        let many: Vec<Line> = (0..=MAX_LINES as u16).map(line).collect();
        assert_eq!(
            set.replace(&many),
            Err(LinesError::TooMany {
                count: MAX_LINES + 1
            })
        );
        assert_eq!(set.iter().count(), 1);
    }

    #[test]
    fn a_rebind_request_is_taken_once() {
        let mut set = LineSet::new(&[line(1)]).expect("lines");
        let id = set.find(&line(1)).expect("line");
        set.get_mut(id).expect("slot").rebind = true;
        assert!(set.take_rebind(id));
        assert!(!set.take_rebind(id));
        assert_eq!(set.get(id).expect("slot").stats.rebinds, 1);
    }
}
