//! A segment's payload as the send and receive buffers hold it: a small one is copied
//! into the buffer's entry, a larger one is a shared handle.
//!
//! A shared handle ([`Bytes`]) costs an atomic reference-count update when it is made
//! (a slice of a received datagram, a clone of the application's message) and another
//! when it is dropped. An atomic update waits for every store and load before it to
//! complete, so for a 64-byte message the two of them cost more than everything else
//! the engine does with it (BENCHMARKS.md). A copy of at most [`INLINE_MAX`] bytes into
//! the entry itself costs a few cycles and no reference count.

use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, Range};

use bytes::{Buf, Bytes};

/// Largest payload held inline, bytes. Larger ones are shared handles, for which a copy
/// would cost more than the reference counts it saves.
pub(crate) const INLINE_MAX: usize = 64;

/// The bytes of one data segment.
#[derive(Clone, Default)]
pub(crate) enum Payload {
    /// No bytes: a slot whose payload is not written yet or was released. Dropping it
    /// costs nothing (an empty [`Bytes`] would cost a call through its vtable).
    #[default]
    Vacant,
    /// Up to [`INLINE_MAX`] bytes copied into the entry: `bytes[..len]` (the rest is
    /// whatever the copy brought along, never read).
    Inline { len: u8, bytes: [u8; INLINE_MAX] },
    /// A shared handle: a slice of the application's message or of a received datagram.
    Shared(Bytes),
    /// Send side, the last fragment of a message: the whole message, whose bytes from
    /// `start` are this fragment's. The message's other fragments are
    /// [`Piece`](Payload::Piece)s of it, so a message of `n` fragments costs one
    /// reference count, not `n`.
    Tail { message: Bytes, start: u32 },
    /// Send side, a fragment before the last: bytes `start..start + len` of the message
    /// its last fragment holds (the [`Tail`](Payload::Tail) `frg` places later in the
    /// send buffer, which resolves them: [`as_slice`](Payload::as_slice) has none).
    Piece { start: u32, len: u32 },
    /// Receive side: bytes `at..at + len` of the received batch numbered `batch`
    /// ([`Arq::input_batch`](super::Arq::input_batch)), which the receive buffer keeps
    /// ([`KeptBatches`](super::kept::KeptBatches), which resolves it:
    /// [`as_slice`](Payload::as_slice) has none). A batch of `n` datagrams costs one
    /// reference count, not `n`.
    Kept { batch: u32, at: u32, len: u32 },
}

impl Payload {
    /// An empty inline payload, to copy a short one into in place (a payload built on
    /// the stack and then moved into a buffer entry costs a copy of its 72 bytes, read
    /// back before their stores complete).
    const BLANK: Payload = Payload::Inline {
        len: 0,
        bytes: [0; INLINE_MAX],
    };

    /// `data` copied inline, in place. `data` must fit ([`INLINE_MAX`]); a longer one
    /// is cut.
    #[inline(always)]
    pub(crate) fn set_copy(&mut self, data: &[u8]) {
        self.set_inline(data, 0, data.len());
    }

    /// Bytes `at..at + len` of `datagram`, in place: copied inline if `len` fits, else
    /// a shared slice of it. Out-of-range bounds give what is in range (callers pass
    /// bounds the datagram's parse checked).
    #[inline(always)]
    pub(crate) fn set_part(&mut self, datagram: &Bytes, at: usize, len: usize) {
        if len <= INLINE_MAX {
            return self.set_inline(datagram, at, len);
        }
        *self = Payload::Shared(datagram.slice(within(datagram, at, len)));
    }

    /// [`set_part`](Self::set_part), taking the datagram's own handle for a shared
    /// payload (no reference-count update), cut in place.
    #[inline(always)]
    pub(crate) fn set_part_owned(&mut self, datagram: Bytes, at: usize, len: usize) {
        if len <= INLINE_MAX {
            return self.set_inline(&datagram, at, len);
        }
        *self = Payload::Shared(datagram);
        if let Payload::Shared(data) = self {
            data.advance(at.min(data.len()));
            data.truncate(len);
        }
    }

    /// Bytes `at..at + len` of `source` copied inline, in place (`len` at most
    /// [`INLINE_MAX`]). When `source` has [`INLINE_MAX`] bytes from `at`, all of them
    /// are copied: one copy of fixed size, cheaper than one of `len` bytes.
    #[inline(always)]
    fn set_inline(&mut self, source: &[u8], at: usize, len: usize) {
        let window = source.get(at..at.saturating_add(INLINE_MAX));
        if let Some(&bytes) = window.and_then(|w| <&[u8; INLINE_MAX]>::try_from(w).ok()) {
            *self = Payload::Inline {
                len: len.min(INLINE_MAX) as u8,
                bytes,
            };
            return;
        }
        *self = Payload::BLANK;
        if let Payload::Inline { len: stored, bytes } = self {
            let tail = source.get(at..).unwrap_or_default();
            let len = len.min(tail.len()).min(INLINE_MAX);
            bytes[..len].copy_from_slice(&tail[..len]);
            *stored = len as u8;
        }
    }

    /// Advances a shared handle past its first `at` bytes (queuing the last fragment of
    /// a message with the message's own handle).
    #[inline(always)]
    pub(crate) fn skip(&mut self, at: usize) {
        if let Payload::Shared(data) = self {
            data.advance(at.min(data.len()));
        }
    }

    /// The payload's bytes (none for a [`Piece`](Payload::Piece): they are in its
    /// message's tail).
    #[inline(always)]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Vacant | Payload::Piece { .. } | Payload::Kept { .. } => &[],
            Payload::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Payload::Shared(data) => data,
            Payload::Tail { message, start } => tail_of(message, *start),
        }
    }

    /// Bytes in the payload, a [`Piece`](Payload::Piece)'s and a
    /// [`Kept`](Payload::Kept) one's included.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        match self {
            Payload::Piece { len, .. } | Payload::Kept { len, .. } => *len as usize,
            other => other.as_slice().len(),
        }
    }

    /// Takes the payload out as a [`Bytes`], leaving it empty: a shared handle as it
    /// is, an inline payload copied into a new allocation. A
    /// [`Piece`](Payload::Piece) or a [`Kept`](Payload::Kept) payload gives nothing
    /// (see [`as_slice`](Self::as_slice)).
    pub(crate) fn take_bytes(&mut self) -> Bytes {
        match std::mem::take(self) {
            Payload::Vacant | Payload::Piece { .. } | Payload::Kept { .. } => Bytes::new(),
            Payload::Inline { len, bytes } => Bytes::copy_from_slice(&bytes[..usize::from(len)]),
            Payload::Shared(data) => data,
            Payload::Tail { message, start } => {
                message.slice((start as usize).min(message.len())..)
            }
        }
    }

    /// Bytes `start..start + len` of the message this [`Tail`](Payload::Tail) holds
    /// (for one of its [`Piece`](Payload::Piece)s); nothing for another kind of
    /// payload or out-of-range bounds.
    #[inline]
    pub(crate) fn piece(&self, start: u32, len: u32) -> &[u8] {
        let Payload::Tail { message, .. } = self else {
            return &[];
        };
        let start = start as usize;
        message.get(start..start + len as usize).unwrap_or_default()
    }
}

/// Where a received segment's payload comes from: written into its buffer entry, in
/// place, only once the segment is stored. (A trait rather than a closure, so that the
/// write is always inlined where the entry is made.)
pub(crate) trait Source {
    /// Writes the payload into `entry`.
    fn write_to(self, entry: &mut Payload);
}

/// Bytes `at..at + len` of a datagram the caller only lends: copied inline if `len`
/// fits, else into an allocation of their own.
pub(crate) struct Copied<'a> {
    pub datagram: &'a [u8],
    pub at: usize,
    pub len: usize,
}

impl Source for Copied<'_> {
    #[inline(always)]
    fn write_to(self, entry: &mut Payload) {
        if self.len <= INLINE_MAX {
            return entry.set_inline(self.datagram, self.at, self.len);
        }
        let bytes = &self.datagram[within(self.datagram, self.at, self.len)];
        *entry = Payload::Shared(Bytes::copy_from_slice(bytes));
    }
}

/// Bytes `at..at + len` of a datagram that other segments are cut from too.
pub(crate) struct Part<'a> {
    pub datagram: &'a Bytes,
    pub at: usize,
    pub len: usize,
}

impl Source for Part<'_> {
    #[inline(always)]
    fn write_to(self, entry: &mut Payload) {
        entry.set_part(self.datagram, self.at, self.len);
    }
}

/// Bytes `at..at + len` of a datagram's last segment: the datagram's own handle can be
/// taken for it.
pub(crate) struct LastPart {
    pub datagram: Bytes,
    pub at: usize,
    pub len: usize,
}

impl Source for LastPart {
    #[inline(always)]
    fn write_to(self, entry: &mut Payload) {
        entry.set_part_owned(self.datagram, self.at, self.len);
    }
}

/// Bytes `at..at + len` of a datagram of a received batch that the receive buffer
/// will keep as batch number `batch`, the datagram starting `base` bytes into it: copied
/// inline if `len` fits, else a [`Kept`](Payload::Kept) payload, counted in `users`.
pub(crate) struct Batched<'a> {
    pub datagram: &'a [u8],
    pub base: usize,
    pub at: usize,
    pub len: usize,
    pub batch: u32,
    pub users: &'a Cell<u32>,
}

impl Source for Batched<'_> {
    #[inline(always)]
    fn write_to(self, entry: &mut Payload) {
        if self.len <= INLINE_MAX {
            return entry.set_inline(self.datagram, self.at, self.len);
        }
        let range = within(self.datagram, self.at, self.len);
        *entry = Payload::Kept {
            batch: self.batch,
            at: (self.base + range.start) as u32,
            len: range.len() as u32,
        };
        self.users.set(self.users.get() + 1);
    }
}

impl Source for Payload {
    #[inline(always)]
    fn write_to(self, entry: &mut Payload) {
        *entry = self;
    }
}

/// The part of `at..at + len` that lies within `datagram` (callers pass bounds the
/// datagram's parse checked; out-of-range ones give what is in range).
#[inline(always)]
fn within(datagram: &[u8], at: usize, len: usize) -> Range<usize> {
    let end = at.saturating_add(len).min(datagram.len());
    at.min(end)..end
}

/// Bytes of `message` from `start` (none if `start` is past its end).
#[inline(always)]
fn tail_of(message: &Bytes, start: u32) -> &[u8] {
    message.get(start as usize..).unwrap_or_default()
}

impl Deref for Payload {
    type Target = [u8];

    #[inline(always)]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Bytes> for Payload {
    fn from(data: Bytes) -> Self {
        Payload::Shared(data)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Payload::Vacant => "Vacant",
            Payload::Inline { .. } => "Inline",
            Payload::Shared(_) => "Shared",
            Payload::Tail { .. } => "Tail",
            Payload::Piece { start, len } => {
                return write!(f, "Piece({start}..{})", start + len);
            }
            Payload::Kept { batch, at, len } => {
                return write!(f, "Kept({batch}: {at}..{})", at + len);
            }
        };
        f.debug_tuple(kind).field(&self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(datagram: &Bytes, at: usize, len: usize) -> Payload {
        let mut payload = Payload::Vacant;
        payload.set_part(datagram, at, len);
        payload
    }

    #[test]
    fn small_payloads_are_copied_and_large_ones_shared() {
        let datagram = Bytes::from((0..=255u8).collect::<Vec<u8>>());
        let small = part(&datagram, 10, INLINE_MAX);
        assert!(matches!(small, Payload::Inline { .. }));
        assert_eq!(small.as_slice(), &datagram[10..10 + INLINE_MAX]);
        let large = part(&datagram, 10, INLINE_MAX + 1);
        assert!(matches!(large, Payload::Shared(_)));
        assert_eq!(large.as_slice(), &datagram[10..11 + INLINE_MAX]);
        assert_eq!(
            part(&datagram, 250, 100).as_slice(),
            &datagram[250..],
            "cut at the end"
        );
        assert_eq!(part(&datagram, 300, 100).as_slice(), b"", "past the end");
    }

    #[test]
    fn a_copy_near_the_end_takes_only_what_is_there() {
        let datagram = Bytes::from_static(b"0123456789");
        assert_eq!(part(&datagram, 6, 4).as_slice(), b"6789");
        assert_eq!(part(&datagram, 6, 9).as_slice(), b"6789", "cut at the end");
        assert_eq!(part(&datagram, 11, 2).as_slice(), b"", "past the end");
    }

    #[test]
    fn the_owned_handle_is_cut_in_place() {
        let datagram = Bytes::from(vec![7u8; 300]);
        let mut payload = Payload::Vacant;
        payload.set_part_owned(datagram.clone(), 24, 200);
        assert!(matches!(payload, Payload::Shared(_)));
        assert_eq!(payload.as_slice(), &datagram[24..224]);
        payload.set_part_owned(datagram, 24, 3);
        assert_eq!(payload.as_slice(), &[7, 7, 7]);
    }

    #[test]
    fn taking_the_bytes_keeps_the_content_and_leaves_it_empty() {
        let mut small = Payload::Vacant;
        small.set_copy(b"abc");
        assert_eq!(small.take_bytes(), "abc");
        assert_eq!(small.as_slice(), b"");
        let mut shared = Payload::from(Bytes::from_static(b"xyz"));
        assert_eq!(shared.take_bytes(), "xyz");
        let mut long = Payload::Vacant;
        long.set_copy(&[1; 100]);
        assert_eq!(long.len(), INLINE_MAX, "cut to what fits");
    }
}
