//! Software prefetch: asks the CPU to start loading memory the endpoint will read
//! soon, so that the loads of several datagrams of a batch overlap instead of each
//! waiting for DRAM in turn.

/// Bytes per cache line.
const LINE: usize = 64;

/// Starts loading `lines` cache lines from the start of `value` into every cache level.
/// A hint only: it never faults, changes no value, and is a no-op outside x86-64.
/// Costs one instruction per line.
#[inline(always)]
pub(crate) fn prefetch_lines<T>(value: &T, lines: usize) {
    let start = (value as *const T).cast::<u8>();
    for line in 0..lines {
        prefetch_byte(start.wrapping_add(line * LINE));
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_byte(at: *const u8) {
    // SAFETY: PREFETCHT0 is a hint that does not access memory architecturally: it
    // never faults, whatever the address (the callers pass lines of live values), and
    // it has no effect on the program's state. SSE is part of the x86-64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch_byte(_at: *const u8) {}
