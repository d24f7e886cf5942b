//! A counting global allocator, so tests and `ganglion bench loop` can prove
//! that a tick performs no heap allocation after warm-up.
//!
//! Install it in a binary (or a test binary) with
//! `#[global_allocator] static A: CountingAlloc = CountingAlloc;`. Without
//! that, every counter stays at zero: check [`is_installed`] before trusting
//! a zero.
//!
//! Each allocation (alloc, alloc_zeroed, realloc) bumps one process-wide
//! relaxed atomic and one counter of the calling thread, which is cheap
//! enough to leave on in the release binary. Deallocations are not counted:
//! a tick that frees memory it did not allocate is caught by the matching
//! allocation elsewhere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator plus allocation counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

static TOTAL: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Const-initialized and without a destructor, so touching it from inside
    // the allocator never allocates or registers anything.
    static THREAD: Cell<u64> = const { Cell::new(0) };
}

#[inline]
fn count() {
    TOTAL.fetch_add(1, Ordering::Relaxed);
    // `try_with` fails only during thread teardown; not counting there is fine.
    let _ = THREAD.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments; the
// counters are plain atomics / thread-local cells and never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations made by the calling thread since it started.
pub fn thread_allocations() -> u64 {
    THREAD.try_with(Cell::get).unwrap_or(0)
}

/// Allocations made by the whole process since it started.
pub fn total_allocations() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

/// Whether [`CountingAlloc`] is this process's global allocator (probed by
/// making one small allocation and watching the counter move).
pub fn is_installed() -> bool {
    let before = thread_allocations();
    let probe = std::hint::black_box(Box::new(0u64));
    drop(probe);
    thread_allocations() > before
}
