//! Software prefetch: asks the CPU to start loading memory the endpoint will read
//! soon, so that the loads of several datagrams of a batch overlap instead of each
//! waiting for DRAM in turn.

use std::ops::Range;

/// Bytes per cache line.
const LINE: usize = 64;

/// Which caches a prefetched line goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// Every level, L1 included (`PREFETCHT0`): for the few lines read first.
    L1,
    /// L2 and below (`PREFETCHT1`): for the many lines a datagram reads later, which
    /// would otherwise crowd L1 (and its few outstanding-miss slots) before their turn.
    L2,
}

/// Starts loading the cache lines `lines` (counted from the start of `value`) into the
/// caches of `level`. A hint only: it never faults, changes no value, and is a no-op
/// outside x86-64. Costs one instruction per line.
#[inline(always)]
pub(crate) fn prefetch_lines<T>(value: &T, lines: Range<usize>, level: Level) {
    let start = (value as *const T).cast::<u8>();
    for line in lines {
        prefetch_byte(start.wrapping_add(line * LINE), level);
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_byte(at: *const u8, level: Level) {
    use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
    // SAFETY: PREFETCHT0/T1 are hints that do not access memory architecturally: they
    // never fault, whatever the address (the callers pass lines of live values), and
    // have no effect on the program's state. SSE is part of the x86-64 baseline.
    unsafe {
        match level {
            Level::L1 => _mm_prefetch::<_MM_HINT_T0>(at.cast()),
            Level::L2 => _mm_prefetch::<_MM_HINT_T1>(at.cast()),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch_byte(_at: *const u8, _level: Level) {}
