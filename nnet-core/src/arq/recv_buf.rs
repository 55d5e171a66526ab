//! Received data segments: the out-of-order buffer and the in-order queue.
//!
//! `pending` is a ring indexed by `sn - next_sn` (the reference walks a linked list for
//! every arriving segment); `ready` holds in-order segments until the application takes
//! whole messages. Together they never hold more than the receive window.

use std::collections::{vec_deque, VecDeque};
use std::iter::{FusedIterator, Take};

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::buffers::{adopt_into, discard_front, take_if_empty};
use super::kept::KeptBatches;
use super::payload::{Payload, Source};
use super::seq::diff;

/// One received data segment.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    /// Fragments of the message that follow this one.
    pub frg: u8,
    /// Payload: copied inline if small, else a slice of the received datagram or a
    /// place in a kept batch ([`Payload::Kept`]).
    pub data: Payload,
}

/// The next whole message, where it lies while it is being taken.
#[derive(Debug)]
pub(crate) enum Message<'a> {
    /// A message of one segment: its payload, in the ready queue.
    Single(&'a mut Payload),
    /// A message of one segment that lies in a kept batch: bytes `range` of `batch`.
    Kept {
        batch: &'a Bytes,
        range: Range<usize>,
    },
    /// A fragmented message: joined into the join buffer (all of it).
    Joined(&'a mut BytesMut),
    /// A fragmented message: its fragments where they lie, in the ready queue.
    Parts(MessageParts<'a>),
}

/// The payloads of a whole received message's fragments, in order, where they lie in
/// the receive buffer: what [`Arq::recv_parts`](super::Arq::recv_parts) lends. An
/// iterator of byte slices (one for a message of one segment); their concatenation is
/// the message. Iterating costs nothing per byte.
#[derive(Clone, Debug)]
pub struct MessageParts<'a> {
    /// The only part of a message held in one piece.
    whole: Option<&'a [u8]>,
    /// The fragments of a fragmented message, in the ready queue.
    fragments: Take<vec_deque::Iter<'a, Received>>,
    /// The batches kept fragments lie in.
    kept: Option<&'a KeptBatches>,
    /// Bytes in the whole message.
    size: usize,
}

impl<'a> MessageParts<'a> {
    /// A message held in one piece.
    pub(crate) fn whole(bytes: &'a [u8]) -> Self {
        MessageParts {
            whole: Some(bytes),
            fragments: vec_deque::Iter::default().take(0),
            kept: None,
            size: bytes.len(),
        }
    }

    /// Bytes in the whole message (all its parts, iterated or not). O(1).
    pub fn size(&self) -> usize {
        self.size
    }
}

impl<'a> Iterator for MessageParts<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(whole) = self.whole.take() {
            return Some(whole);
        }
        let segment = self.fragments.next()?;
        Some(KeptBatches::resolve(self.kept, &segment.data))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(self.whole.is_some()) + self.fragments.len();
        (left, Some(left))
    }
}

impl ExactSizeIterator for MessageParts<'_> {}

impl FusedIterator for MessageParts<'_> {}

impl<'a> Message<'a> {
    /// The message as a [`Bytes`], taken out: a single segment's payload (see
    /// [`Payload::take_bytes`]), or the joined bytes split off the join buffer.
    pub(crate) fn into_bytes(self) -> Bytes {
        match self {
            Message::Single(payload) => payload.take_bytes(),
            Message::Kept { batch, range } => batch.slice(range),
            Message::Joined(join) => join.split().freeze(),
            Message::Parts(parts) => {
                let mut joined = BytesMut::with_capacity(parts.size());
                parts.for_each(|part| joined.extend_from_slice(part));
                joined.freeze()
            }
        }
    }

    /// The message as its parts, where it lies: one for a single segment or a joined
    /// message, one per fragment otherwise.
    #[inline]
    pub(crate) fn into_parts(self) -> MessageParts<'a> {
        match self {
            Message::Single(payload) => MessageParts::whole(payload),
            Message::Kept { batch, range } => MessageParts::whole(&batch[range]),
            Message::Joined(join) => MessageParts::whole(join),
            Message::Parts(parts) => parts,
        }
    }

    /// Whether the message has no bytes.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Message::Single(payload) => payload.is_empty(),
            Message::Kept { range, .. } => range.is_empty(),
            Message::Joined(join) => join.is_empty(),
            Message::Parts(parts) => parts.size() == 0,
        }
    }
}

/// What became of an arriving segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Stored.
    Stored,
    /// Already held or already delivered.
    Duplicate,
    /// Outside the receive window.
    OutOfWindow,
}

/// The receive side: next expected sequence number, window, buffers. `repr(C)`: what
/// an in-order arrival touches (the numbers, the ready queue) first.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct ReceiveBuffer {
    next_sn: u32,
    window: u32,
    ready: VecDeque<Received>,
    /// Segments above a gap, by `sn - next_sn`; allocated only once a segment arrives
    /// out of order. Boxed on purpose: 8 bytes among the fields every datagram
    /// touches instead of 32, for one more allocation while segments are out of order.
    #[allow(clippy::box_collection)]
    pending: Option<Box<VecDeque<Option<Received>>>>,
}

impl ReceiveBuffer {
    pub(crate) fn new(window: u16) -> Self {
        ReceiveBuffer {
            next_sn: 0,
            window: u32::from(window),
            pending: None,
            ready: VecDeque::new(),
        }
    }

    /// Restarts numbering at `sn`; only while empty.
    #[cfg(test)]
    pub(crate) fn reset(&mut self, sn: u32) {
        debug_assert!(self.is_empty());
        self.next_sn = sn;
    }

    /// Next sequence number expected in order (`rcv_nxt`).
    #[inline]
    pub(crate) fn next_sn(&self) -> u32 {
        self.next_sn
    }

    /// The receive window, segments.
    #[inline]
    pub(crate) fn window(&self) -> u32 {
        self.window
    }

    /// Free window to announce to the peer (`ikcp_wnd_unused`).
    #[inline]
    pub(crate) fn unused_window(&self) -> u32 {
        self.window.saturating_sub(self.ready.len() as u32)
    }

    /// Whether `sn` is below the window's upper edge (`ikcp_input` acks only those).
    #[inline]
    pub(crate) fn below_window_end(&self, sn: u32) -> bool {
        diff(sn, self.next_sn.wrapping_add(self.window)) < 0
    }

    /// Whether `sn` was already delivered in order.
    #[inline]
    pub(crate) fn already_delivered(&self, sn: u32) -> bool {
        diff(sn, self.next_sn) < 0
    }

    /// Segments in order waiting for the application (`nrcv_que`).
    #[inline]
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Whether anything at all is buffered.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.nothing_pending()
    }

    /// Stores an arriving segment (`ikcp_parse_data`) and moves what is now in order to
    /// the ready queue.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, sn: u32, segment: Received) -> Arrival {
        self.insert_with(sn, segment.frg, segment.data)
    }

    /// [`insert`](Self::insert), with the payload written from `source` into the entry,
    /// in place, only if the segment is stored (a payload made first and moved in would
    /// be read back before its stores complete).
    #[inline]
    pub(crate) fn insert_with(&mut self, sn: u32, frg: u8, source: impl Source) -> Arrival {
        // The next segment in order, with nothing waiting before it and room in the
        // ready queue: it goes straight there (what `insert` + `promote` would do).
        if sn == self.next_sn && self.nothing_pending() && (self.ready.len() as u32) < self.window {
            self.ready.push_back(Received {
                frg,
                data: Payload::Vacant,
            });
            if let Some(stored) = self.ready.back_mut() {
                source.write_to(&mut stored.data);
            }
            self.next_sn = self.next_sn.wrapping_add(1);
            return Arrival::Stored;
        }
        self.insert_pending(sn, frg, source)
    }

    #[inline(never)]
    fn insert_pending(&mut self, sn: u32, frg: u8, source: impl Source) -> Arrival {
        if !self.below_window_end(sn) {
            return Arrival::OutOfWindow;
        }
        if self.already_delivered(sn) {
            return Arrival::Duplicate;
        }
        let offset = diff(sn, self.next_sn) as usize;
        let pending = self.pending.get_or_insert_with(Box::default);
        if pending.len() <= offset {
            pending.resize_with(offset + 1, || None);
        }
        let Some(slot) = pending.get_mut(offset) else {
            return Arrival::OutOfWindow;
        };
        if slot.is_some() {
            return Arrival::Duplicate;
        }
        let stored = slot.insert(Received {
            frg,
            data: Payload::Vacant,
        });
        source.write_to(&mut stored.data);
        self.promote();
        Arrival::Stored
    }

    /// Moves in-order segments from `pending` to `ready` while the window allows.
    #[inline]
    pub(crate) fn promote(&mut self) {
        if !self.nothing_pending() {
            self.promote_pending();
        }
    }

    /// Whether no segment waits above a gap.
    #[inline]
    fn nothing_pending(&self) -> bool {
        self.pending
            .as_ref()
            .is_none_or(|pending| pending.is_empty())
    }

    fn promote_pending(&mut self) {
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        while (self.ready.len() as u32) < self.window {
            match pending.front_mut().map(Option::take) {
                Some(Some(segment)) => {
                    pending.pop_front();
                    self.ready.push_back(segment);
                    self.next_sn = self.next_sn.wrapping_add(1);
                }
                Some(None) | None => break,
            }
        }
    }

    /// Size of the next whole message, if all its fragments are here (`ikcp_peeksize`).
    pub(crate) fn peek_size(&self) -> Option<usize> {
        let front = self.ready.front()?;
        if front.frg == 0 {
            return Some(front.data.len());
        }
        if self.ready.len() < usize::from(front.frg) + 1 {
            return None;
        }
        let mut size = 0;
        for segment in &self.ready {
            size += segment.data.len();
            if segment.frg == 0 {
                break;
            }
        }
        Some(size)
    }

    /// Takes the next whole message and hands it to `take` where it lies: a
    /// single-fragment message in the ready queue (removed after `take`), a fragmented
    /// one joined into `join` (which must be empty; `take` empties it) or, without
    /// `join`, as its fragments in the ready queue (removed after `take`). `kept` holds
    /// the batches that [`Payload::Kept`] payloads lie in (none without a batch).
    #[inline]
    pub(crate) fn take_message<T>(
        &mut self,
        join: Option<&mut BytesMut>,
        kept: Option<&mut KeptBatches>,
        take: impl FnOnce(Message<'_>) -> T,
    ) -> Option<T> {
        let front = self.ready.front_mut()?;
        // The message and the segments to drop once it is taken. `take` is called in
        // one place: called in three, it was not inlined (34 instructions more per
        // message of 64 bytes).
        let (message, segments) = if front.frg == 0 {
            let located = kept.as_deref().and_then(|kept| kept.locate(&front.data));
            let message = match located {
                Some((batch, range)) => Message::Kept { batch, range },
                None => Message::Single(&mut front.data),
            };
            (message, 1)
        } else if let Some(join) = join {
            let fragments = self.join_fragments(join, kept.as_deref())?;
            (Message::Joined(join), fragments)
        } else {
            let fragments = usize::from(front.frg) + 1;
            let size = self.peek_size()?;
            let parts = MessageParts {
                whole: None,
                fragments: self.ready.iter().take(fragments),
                kept: kept.as_deref(),
                size,
            };
            (Message::Parts(parts), fragments)
        };
        let taken = take(message);
        self.discard(segments, kept);
        Some(taken)
    }

    /// Joins the fragments of the next message into `join`, if all have arrived, and
    /// returns how many there are (still in the ready queue).
    fn join_fragments(&self, join: &mut BytesMut, kept: Option<&KeptBatches>) -> Option<usize> {
        let size = self.peek_size()?;
        join.reserve(size);
        let mut fragments = 0;
        for segment in &self.ready {
            join.extend_from_slice(KeptBatches::resolve(kept, &segment.data));
            fragments += 1;
            if segment.frg == 0 {
                break;
            }
        }
        Some(fragments)
    }

    /// Drops the first `count` segments of the ready queue, releasing what they keep.
    /// Always inlined: out of line, a message of 64 bytes took 45 instructions more.
    #[inline(always)]
    fn discard(&mut self, count: usize, kept: Option<&mut KeptBatches>) {
        if let Some(kept) = kept {
            for segment in self.ready.iter().take(count) {
                kept.release(&segment.data);
            }
        }
        // One segment, the common message, is popped as it was before batches came.
        if count == 1 {
            self.ready.pop_front();
        } else {
            discard_front(&mut self.ready, count);
        }
    }

    /// Gives back the buffers' memory when they are empty: the ready queue is
    /// returned (empty, with its capacity) for another engine to take over, the rest is
    /// freed.
    pub(crate) fn release_idle(&mut self) -> VecDeque<Received> {
        if self.nothing_pending() {
            self.pending = None;
        }
        take_if_empty(&mut self.ready)
    }

    /// Takes over `ready` (empty) as the ready queue, if this one has no memory yet.
    pub(crate) fn adopt(&mut self, ready: VecDeque<Received>) {
        adopt_into(&mut self.ready, ready);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arq::payload::Part;

    fn seg(frg: u8, data: &'static [u8]) -> Received {
        Received {
            frg,
            data: Bytes::from_static(data).into(),
        }
    }

    fn part(datagram: &Bytes, at: usize, len: usize) -> Part<'_> {
        Part { datagram, at, len }
    }

    /// The next message's bytes, taken the way `Arq::recv` does.
    fn pop(buf: &mut ReceiveBuffer, join: &mut BytesMut) -> Option<Bytes> {
        buf.take_message(Some(join), None, |message| message.into_bytes())
    }

    /// The next message's parts, taken the way `Arq::recv_parts` does.
    fn pop_parts(buf: &mut ReceiveBuffer) -> Option<Vec<Vec<u8>>> {
        buf.take_message(None, None, |message| match message {
            Message::Parts(parts) => parts.map(<[u8]>::to_vec).collect(),
            Message::Single(payload) => vec![payload.to_vec()],
            Message::Kept { batch, range } => vec![batch[range].to_vec()],
            Message::Joined(_) => unreachable!("no join buffer given"),
        })
    }

    #[test]
    fn a_fragmented_message_is_lent_as_its_parts_once_all_arrived() {
        let mut buf = ReceiveBuffer::new(128);
        assert_eq!(buf.insert(1, seg(1, b"cd")), Arrival::Stored);
        assert_eq!(buf.insert(2, seg(0, b"e")), Arrival::Stored);
        assert_eq!(buf.insert(3, seg(0, b"fg")), Arrival::Stored);
        assert_eq!(pop_parts(&mut buf), None, "the first fragment is missing");
        assert_eq!(buf.insert(0, seg(2, b"ab")), Arrival::Stored);
        let parts = pop_parts(&mut buf).expect("all three fragments are here");
        assert_eq!(parts, [b"ab".to_vec(), b"cd".to_vec(), b"e".to_vec()]);
        assert_eq!(pop_parts(&mut buf), Some(vec![b"fg".to_vec()]));
        assert!(buf.is_empty());
    }

    #[test]
    fn parts_know_their_count_and_the_message_size() {
        let mut buf = ReceiveBuffer::new(128);
        buf.insert(0, seg(1, b"abc"));
        buf.insert(1, seg(0, b"de"));
        let (count, size, joined) = buf
            .take_message(None, None, |message| match message {
                Message::Parts(parts) => (
                    parts.len(),
                    parts.size(),
                    Message::Parts(parts).into_bytes(),
                ),
                _ => unreachable!("a fragmented message"),
            })
            .expect("whole");
        assert_eq!((count, size), (2, 5));
        assert_eq!(joined, "abcde");
        let whole = MessageParts::whole(b"xyz");
        assert_eq!((whole.len(), whole.size()), (1, 3));
        assert_eq!(whole.collect::<Vec<_>>(), [b"xyz"]);
    }

    #[test]
    fn reorders_and_joins_fragments() {
        let mut buf = ReceiveBuffer::new(128);
        let mut join = BytesMut::new();
        assert_eq!(buf.insert(1, seg(0, b"cd")), Arrival::Stored);
        assert_eq!(buf.peek_size(), None);
        assert_eq!(buf.insert(0, seg(1, b"ab")), Arrival::Stored);
        assert_eq!(buf.insert(0, seg(1, b"ab")), Arrival::Duplicate);
        assert_eq!(buf.peek_size(), Some(4));
        assert_eq!(pop(&mut buf, &mut join).as_deref(), Some(&b"abcd"[..]));
        assert_eq!(buf.next_sn(), 2);
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_outside_the_window() {
        let mut buf = ReceiveBuffer::new(128);
        assert_eq!(buf.insert(128, seg(0, b"x")), Arrival::OutOfWindow);
        assert_eq!(buf.insert(127, seg(0, b"x")), Arrival::Stored);
    }

    #[test]
    fn stores_a_cut_of_what_the_payload_maker_gives() {
        let mut buf = ReceiveBuffer::new(128);
        let mut join = BytesMut::new();
        let datagram = Bytes::from_static(b"headerPAYLOADtail");
        let stored = buf.insert_with(1, 0, part(&datagram, 6, 7));
        assert_eq!(stored, Arrival::Stored, "out of order, into pending");
        let stored = buf.insert_with(0, 0, part(&datagram, 0, 6));
        assert_eq!(stored, Arrival::Stored, "in order, straight to ready");
        assert_eq!(pop(&mut buf, &mut join).as_deref(), Some(&b"header"[..]));
        assert_eq!(pop(&mut buf, &mut join).as_deref(), Some(&b"PAYLOAD"[..]));
    }

    #[test]
    fn a_joined_message_still_held_is_not_overwritten() {
        let mut buf = ReceiveBuffer::new(128);
        let mut join = BytesMut::new();
        buf.insert(0, seg(1, b"ab"));
        buf.insert(1, seg(0, b"cd"));
        let first = pop(&mut buf, &mut join);
        buf.insert(2, seg(1, b"ef"));
        buf.insert(3, seg(0, b"gh"));
        assert_eq!(pop(&mut buf, &mut join).as_deref(), Some(&b"efgh"[..]));
        assert_eq!(first.as_deref(), Some(&b"abcd"[..]));
        drop(first);
        buf.insert(4, seg(1, b"ij"));
        buf.insert(5, seg(0, b"kl"));
        assert_eq!(pop(&mut buf, &mut join).as_deref(), Some(&b"ijkl"[..]));
    }
}
