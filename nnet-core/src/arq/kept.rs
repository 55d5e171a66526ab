//! Received batches that the receive buffer's payloads point into.
//!
//! [`Arq::input_batch`](super::Arq::input_batch) takes in many datagrams in one
//! [`Bytes`]. Rather than cut a handle for each stored payload (an atomic reference
//! count when it is made and another when it is dropped), the receive buffer keeps the
//! batch's one handle here and its payloads say where they lie in it
//! ([`Payload::Kept`]). Each batch counts the payloads that point into it, with plain
//! arithmetic; it is dropped once none is left and every older batch is gone.
//!
//! Memory: a batch stays whole while any of its payloads is buffered, as a datagram's
//! allocation does for a payload sliced from it.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::Bytes;

use super::payload::Payload;

/// One kept batch.
#[derive(Debug)]
struct Kept {
    bytes: Bytes,
    /// Payloads in the receive buffer that point into it.
    users: u32,
}

/// The kept batches, oldest first, numbered from `front` on (wrapping).
#[derive(Debug, Default)]
pub(crate) struct KeptBatches {
    batches: VecDeque<Kept>,
    /// Number of `batches[0]`.
    front: u32,
}

impl KeptBatches {
    /// The number the next batch [`keep`](Self::keep)s will get: what the payloads of a
    /// batch being taken in are given.
    #[inline]
    pub(crate) fn next_number(&self) -> u32 {
        self.front.wrapping_add(self.batches.len() as u32)
    }

    /// Keeps `bytes` as batch [`next_number`](Self::next_number), for `users` payloads
    /// that point into it; with none, drops it.
    #[inline]
    pub(crate) fn keep(&mut self, bytes: Bytes, users: u32) {
        if users > 0 {
            self.batches.push_back(Kept { bytes, users });
        }
    }

    /// Where a [`Kept`](Payload::Kept) payload lies: its batch and the range in it
    /// (`None` for another kind of payload, or one that points nowhere).
    #[inline]
    pub(crate) fn locate(&self, payload: &Payload) -> Option<(&Bytes, Range<usize>)> {
        let Payload::Kept { batch, at, len } = *payload else {
            return None;
        };
        let kept = self.batches.get(batch.wrapping_sub(self.front) as usize)?;
        let range = at as usize..at as usize + len as usize;
        kept.bytes.get(range.clone())?;
        Some((&kept.bytes, range))
    }

    /// The bytes of `payload`, wherever they lie: in one of `kept`'s batches, or in the
    /// payload itself (all of them when no batch is kept).
    #[inline]
    pub(crate) fn resolve<'a>(kept: Option<&'a KeptBatches>, payload: &'a Payload) -> &'a [u8] {
        match (kept, payload) {
            (Some(kept), Payload::Kept { .. }) => match kept.locate(payload) {
                Some((bytes, range)) => &bytes[range],
                None => &[],
            },
            (_, other) => other.as_slice(),
        }
    }

    /// A payload that leaves the receive buffer: its batch has one user fewer, and the
    /// oldest batches without users are dropped.
    #[inline]
    pub(crate) fn release(&mut self, payload: &Payload) {
        let Payload::Kept { batch, .. } = *payload else {
            return;
        };
        let index = batch.wrapping_sub(self.front) as usize;
        if let Some(kept) = self.batches.get_mut(index) {
            kept.users = kept.users.saturating_sub(1);
        }
        while self.batches.front().is_some_and(|kept| kept.users == 0) {
            self.batches.pop_front();
            self.front = self.front.wrapping_add(1);
        }
    }

    /// Batches kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.batches.len()
    }

    /// Whether no batch is kept.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(batch: u32, at: u32, len: u32) -> Payload {
        Payload::Kept { batch, at, len }
    }

    #[test]
    fn payloads_resolve_into_their_batch_until_its_last_user_leaves() {
        let mut batches = KeptBatches::default();
        let first = batches.next_number();
        batches.keep(Bytes::from_static(b"0123456789"), 2);
        let second = batches.next_number();
        assert_ne!(first, second);
        batches.keep(Bytes::from_static(b"abcdef"), 1);
        let (a, b, c) = (kept(first, 2, 3), kept(first, 5, 5), kept(second, 1, 2));
        assert_eq!(KeptBatches::resolve(Some(&batches), &a), b"234");
        assert_eq!(KeptBatches::resolve(Some(&batches), &b), b"56789");
        assert_eq!(KeptBatches::resolve(Some(&batches), &c), b"bc");
        // The newer batch's user leaves first: it stays until the older one goes.
        batches.release(&c);
        assert_eq!(batches.len(), 2);
        batches.release(&a);
        assert_eq!(
            KeptBatches::resolve(Some(&batches), &b),
            b"56789",
            "still kept for its other user"
        );
        batches.release(&b);
        assert!(batches.is_empty(), "both dropped once unused");
        // Numbers go on from where they were.
        let third = batches.next_number();
        batches.keep(Bytes::from_static(b"xyz"), 1);
        assert_eq!(
            KeptBatches::resolve(Some(&batches), &kept(third, 0, 3)),
            b"xyz"
        );
    }

    #[test]
    fn a_batch_without_users_is_not_kept_and_bad_payloads_point_nowhere() {
        let mut batches = KeptBatches::default();
        let number = batches.next_number();
        batches.keep(Bytes::from_static(b"unused"), 0);
        assert!(batches.is_empty());
        assert_eq!(batches.next_number(), number, "the number is not used up");
        batches.keep(Bytes::from_static(b"abc"), 1);
        assert_eq!(
            KeptBatches::resolve(Some(&batches), &kept(number, 2, 5)),
            b"",
            "past the end"
        );
        assert_eq!(
            KeptBatches::resolve(Some(&batches), &kept(number + 1, 0, 1)),
            b"",
            "no such batch"
        );
        let inline = Payload::from(Bytes::from_static(b"own"));
        assert_eq!(KeptBatches::resolve(Some(&batches), &inline), b"own");
        batches.release(&inline);
        assert_eq!(batches.len(), 1, "other payloads release nothing");
    }
}
