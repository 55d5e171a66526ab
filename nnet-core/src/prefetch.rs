//! Software prefetch: asks the CPU to start loading memory that will be read or
//! written soon. The endpoint uses it so that the loads of several datagrams of a batch
//! overlap instead of each waiting for DRAM in turn; the engine's output, so that the
//! lines of its next datagram are ready for writing before the payload copy reaches
//! them.

use std::ops::Range;

/// Bytes per cache line.
pub(crate) const LINE: usize = 64;

/// Which caches a prefetched line goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// Every level, L1 included (`PREFETCHT0`): for the few lines read first.
    L1,
    /// L2 and below (`PREFETCHT1`): for the many lines a datagram reads later, which
    /// would otherwise crowd L1 (and its few outstanding-miss slots) before their turn.
    L2,
    /// L1, for lines about to be overwritten, so that the stores do not wait for them
    /// to be fetched (nor an atomic operation after the stores for the stores).
    /// `PREFETCHW` where the build targets CPUs that have it (`prfchw`), else
    /// `PREFETCHT0`: a line no other core holds then arrives exclusive, ready for the
    /// stores.
    Write,
}

/// Starts loading the cache lines `lines` (counted from the start of `value`) into the
/// caches of `level`. A hint only: it never faults, changes no value, and is a no-op
/// outside x86-64. Costs one instruction per line.
#[inline(always)]
pub(crate) fn prefetch_lines<T: ?Sized>(value: &T, lines: Range<usize>, level: Level) {
    let start = (value as *const T).cast::<u8>();
    for line in lines {
        prefetch_byte(start.wrapping_add(line * LINE), level);
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_byte(at: *const u8, level: Level) {
    use core::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0, _MM_HINT_T0, _MM_HINT_T1};
    // SAFETY: prefetches are hints that do not access memory architecturally: they
    // never fault, whatever the address (the callers pass lines of live values), and
    // have no effect on the program's state. PREFETCHT0/T1 are SSE, part of the x86-64
    // baseline; the write hint is compiled to PREFETCHW only for targets with it.
    unsafe {
        match level {
            Level::L1 => _mm_prefetch::<_MM_HINT_T0>(at.cast()),
            Level::L2 => _mm_prefetch::<_MM_HINT_T1>(at.cast()),
            Level::Write => _mm_prefetch::<_MM_HINT_ET0>(at.cast()),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch_byte(_at: *const u8, _level: Level) {}
