//! Fixed-size arrays in memory that the kernel may back with 2 MiB pages.
//!
//! The endpoint's session records span about 64 MB per 100k sessions. With 4 KiB pages,
//! each datagram's record lies on a page the TLB does not cover, and the CPU walks the
//! page tables before it can even start loading the record (a prefetch waits for that
//! walk too). A [`HugeArray`] is allocated in whole, aligned 2 MiB blocks and, on
//! Linux, marked with `madvise(MADV_HUGEPAGE)` before its first write, so that where
//! transparent huge pages are enabled (`always`, or `madvise` as most distributions
//! ship) each block is one TLB entry. Elsewhere it is an ordinary allocation.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Bytes in one huge page (x86-64, and the usual size on aarch64).
pub(crate) const HUGE_PAGE: usize = 2 * 1024 * 1024;

/// `len` values of `T` in blocks of [`HUGE_PAGE`] bytes aligned to that size, advised
/// to the kernel as huge-page memory. Behaves like a `Box<[T]>` of fixed length.
///
/// Costs: one allocation of `len * size_of::<T>()` rounded up to a multiple of 2 MiB;
/// untouched memory past the values costs address space only.
pub(crate) struct HugeArray<T> {
    values: NonNull<T>,
    len: usize,
    layout: Layout,
}

// SAFETY: a `HugeArray<T>` owns its values like a `Box<[T]>` does.
unsafe impl<T: Send> Send for HugeArray<T> {}
// SAFETY: shared access only hands out `&[T]`.
unsafe impl<T: Sync> Sync for HugeArray<T> {}

impl<T> HugeArray<T> {
    /// `len` values, each made by `make`. Aborts like `Vec` if the memory cannot be
    /// had.
    ///
    /// # Panics
    ///
    /// If `len` values of `T` would take more than `isize::MAX` bytes. A panic of
    /// `make` leaks the values made so far.
    pub(crate) fn new(len: usize, mut make: impl FnMut() -> T) -> HugeArray<T> {
        let layout = std::mem::size_of::<T>()
            .checked_mul(len)
            .and_then(|bytes| bytes.max(1).checked_next_multiple_of(HUGE_PAGE))
            .and_then(|size| Layout::from_size_align(size, HUGE_PAGE.max(align_of::<T>())).ok())
            .expect("a HugeArray fits in the address space");
        // SAFETY: the layout's size is at least HUGE_PAGE, never zero.
        let memory = unsafe { alloc::alloc(layout) };
        let Some(values) = NonNull::new(memory.cast::<T>()) else {
            alloc::handle_alloc_error(layout);
        };
        advise_huge_pages(memory, layout.size());
        for i in 0..len {
            // SAFETY: `i < len`, and the allocation holds `len` values of `T`, aligned.
            unsafe { values.add(i).write(make()) };
        }
        HugeArray {
            values,
            len,
            layout,
        }
    }
}

impl<T> Deref for HugeArray<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the first `len` values are initialized and owned by `self`.
        unsafe { std::slice::from_raw_parts(self.values.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for HugeArray<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.values.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeArray<T> {
    fn drop(&mut self) {
        // SAFETY: the values are initialized and dropped once, here; the memory was
        // allocated with `layout`.
        unsafe {
            std::ptr::drop_in_place(&mut **self as *mut [T]);
            alloc::dealloc(self.values.as_ptr().cast(), self.layout);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for HugeArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Asks the kernel to back `len` bytes at `memory` with huge pages when they are first
/// touched. A hint: failure (an old kernel, huge pages disabled) changes nothing.
#[cfg(target_os = "linux")]
fn advise_huge_pages(memory: *mut u8, len: usize) {
    // SAFETY: madvise with MADV_HUGEPAGE changes neither the contents nor the validity
    // of the range, which is a live allocation of `len` bytes aligned to a page.
    let _ = unsafe { libc::madvise(memory.cast(), len, libc::MADV_HUGEPAGE) };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_memory: *mut u8, _len: usize) {}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    #[test]
    fn holds_its_values_aligned_to_a_huge_page() {
        let mut counter = 0u64;
        let mut array = HugeArray::new(1000, || {
            counter += 1;
            counter
        });
        assert_eq!(array.len(), 1000);
        assert_eq!(array.as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(array.first(), Some(&1));
        assert_eq!(array.last(), Some(&1000));
        array[10] = 7;
        assert_eq!(array.iter().filter(|&&v| v == 7).count(), 2);
        assert_eq!(array.layout.size(), HUGE_PAGE);
    }

    #[test]
    fn drops_every_value_once() {
        let shared = Rc::new(());
        let array = HugeArray::new(300_000, || Rc::clone(&shared));
        assert_eq!(Rc::strong_count(&shared), 300_001);
        assert_eq!(array.layout.size(), 2 * HUGE_PAGE, "8-byte values, 2.4 MB");
        drop(array);
        assert_eq!(Rc::strong_count(&shared), 1);
    }

    #[test]
    fn an_empty_array_is_fine() {
        let array: HugeArray<u8> = HugeArray::new(0, || 0);
        assert!(array.is_empty());
    }
}
