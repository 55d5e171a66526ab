//! Software prefetch: asks the CPU to start loading memory that will be read or
//! written soon. The endpoint uses it so that the loads of several datagrams of a batch
//! overlap instead of each waiting for DRAM in turn; the engine's output, so that the
//! lines of its next datagram are ready for writing before the payload copy reaches
//! them.

use std::ops::Range;
use std::sync::OnceLock;

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

/// Whether prefetching a buffer's lines for writing, ahead of the copies that fill them,
/// pays on the CPU this process runs on. It does on Intel cores, where an atomic
/// operation waits for the stores before it to reach L1: the 1 KiB throughput row gained
/// 6.7 % from the output's write-ahead on an Intel VM (BENCHMARKS.md, session 7). It
/// does not on AMD's Zen 5: the same prefetch cost that row 5 % on an AMD VM (session
/// 13). So: Intel only, and never outside x86-64.
///
/// Reads the CPU's vendor once per process (`CPUID`, a trap to the hypervisor in a VM);
/// later calls cost one load. Changes no output of the engine, only its speed.
pub(crate) fn write_ahead_pays() -> bool {
    static PAYS: OnceLock<bool> = OnceLock::new();
    *PAYS.get_or_init(|| cpu_vendor() == *b"GenuineIntel")
}

/// The 12-byte vendor string of `CPUID` leaf 0 (`GenuineIntel`, `AuthenticAMD`, ...).
#[cfg(target_arch = "x86_64")]
fn cpu_vendor() -> [u8; 12] {
    // `__cpuid` is a safe function from Rust 1.87 on, unsafe before (CPUID itself is
    // always available on x86-64 and has no effect but its result).
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 CPU; leaf 0 only reports the vendor.
    let leaf = unsafe { core::arch::x86_64::__cpuid(0) };
    let mut vendor = [0; 12];
    for (part, register) in vendor
        .chunks_exact_mut(4)
        .zip([leaf.ebx, leaf.edx, leaf.ecx])
    {
        part.copy_from_slice(&register.to_le_bytes());
    }
    vendor
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_vendor() -> [u8; 12] {
    [0; 12]
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

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn the_vendor_string_is_read_in_register_order() {
        let vendor = cpu_vendor();
        assert!(
            vendor.iter().all(|b| b.is_ascii_graphic() || *b == b' '),
            "{vendor:?}"
        );
        // The two common vendors, spelt right (EBX, EDX, ECX), decide the write-ahead.
        match &vendor[..4] {
            b"Genu" => assert_eq!(&vendor, b"GenuineIntel"),
            b"Auth" => assert_eq!(&vendor, b"AuthenticAMD"),
            _ => {}
        }
        assert_eq!(write_ahead_pays(), vendor == *b"GenuineIntel");
    }
}
