//! The endpoint's pool of engine buffers: a session that goes quiet leaves its emptied
//! buffers here, and the next session that receives data takes them, so a server whose
//! sessions wake up now and then does not `malloc` and `free` a session's buffers each
//! time (with many sessions busy at once, glibc's small per-thread caches overflow and
//! those calls take their slow paths).

use super::batch::PREFETCH_BATCH;
use crate::arq::Buffers;

/// Sets the pool holds at most: as many sessions as one batch of datagrams wakes.
/// A quiet session's set (a receive queue, an ACK list, an output queue and one MTU
/// of output buffer) is about 1.8 KiB, so the pool usually holds about 57 KiB.
pub(crate) const MAX_SETS: usize = PREFETCH_BATCH;

/// Heap bytes the pool holds at most, whatever the sets' sizes.
pub(crate) const MAX_POOL_BYTES: usize = 64 * 1024;

/// A set larger than this is freed rather than kept (a session that sent or received
/// much has large buffers, which a quiet one does not need).
pub(crate) const MAX_SET_BYTES: usize = 4 * 1024;

/// Sets of emptied engine buffers, last in first out (the last set given back is the
/// likeliest to be in cache), at most [`MAX_SETS`] and [`MAX_POOL_BYTES`].
///
/// Costs: `put` and `take` are O(1) (a push or a pop and a 96-byte move; the list of
/// sets is allocated once, at the first `put`). Memory: at most [`MAX_POOL_BYTES`] of
/// buffers, plus 96 bytes per set for the list.
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    /// The sets.
    sets: Vec<Buffers>,
    /// Bytes held by all sets.
    bytes: usize,
}

impl BufferPool {
    /// Keeps `buffers` for a later session, unless they hold nothing, are too large, or
    /// the pool is full (then they are freed).
    pub(crate) fn put(&mut self, buffers: Buffers) {
        debug_assert!(buffers.is_empty(), "only emptied buffers are pooled");
        let bytes = buffers.bytes();
        let full = self.sets.len() >= MAX_SETS || self.bytes + bytes > MAX_POOL_BYTES;
        if bytes == 0 || bytes > MAX_SET_BYTES || full {
            return;
        }
        if self.sets.capacity() == 0 {
            self.sets.reserve_exact(MAX_SETS);
        }
        self.bytes += bytes;
        self.sets.push(buffers);
    }

    /// The set given back last, if any.
    pub(crate) fn take(&mut self) -> Option<Buffers> {
        let buffers = self.sets.pop()?;
        self.bytes -= buffers.bytes();
        Some(buffers)
    }

    /// Heap bytes held by the pooled buffers.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arq::{Arq, ArqConfig};
    use bytes::Bytes;

    /// The buffers of an engine that received a message, acknowledged it and went idle.
    fn used_buffers(conv: u32) -> Buffers {
        let config = ArqConfig::fast();
        let mut sender = Arq::new(conv, &config).expect("config");
        let mut receiver = Arq::new(conv, &config).expect("config");
        sender
            .send(Bytes::from_static(b"private to this conversation"))
            .expect("send");
        sender.flush(0);
        while let Some(datagram) = sender.poll_output() {
            receiver.input_bytes(0, datagram).expect("input");
        }
        assert!(receiver.recv().is_some());
        receiver.flush(10);
        while receiver.poll_output().is_some() {}
        assert!(receiver.is_idle());
        receiver.release_idle_buffers()
    }

    #[test]
    fn keeps_sets_within_its_bound_and_hands_them_back_last_first() {
        let mut pool = BufferPool::default();
        let one = used_buffers(1).bytes();
        assert!(
            one > 0 && one <= MAX_SET_BYTES,
            "a quiet session's set: {one}"
        );
        for conv in 0..100 {
            pool.put(used_buffers(conv));
            assert!(pool.bytes() <= MAX_POOL_BYTES);
        }
        let kept = MAX_SETS.min(MAX_POOL_BYTES / one);
        assert_eq!(pool.bytes(), kept * one);
        pool.put(Buffers::default());
        assert_eq!(pool.bytes(), kept * one, "an empty set is not kept");
        for _ in 0..kept {
            let set = pool.take().expect("a set");
            assert!(set.is_empty() && set.bytes() == one);
        }
        assert!(pool.take().is_none());
        assert_eq!(pool.bytes(), 0);
    }
}
