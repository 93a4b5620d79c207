//! The memory allocator of Livebase's processes: mimalloc, tuned for the store.
//!
//! Every commit copies B-tree nodes and, a moment later on another thread, frees the nodes it
//! replaced; most of the store's allocations are such short-lived copies of a few hundred bytes.
//! mimalloc's default hands pages that have been free for a while back to the kernel, and the next
//! commits fault them in again, zeroed: a fifth of the committer's CPU time in the commit benchmark.
//! So the processes keep freed memory for reuse: their resident size is their peak, as with most
//! databases' buffer pools.

/// The allocator to install with `#[global_allocator]`.
pub use mimalloc::MiMalloc as Allocator;

/// mimalloc's `mi_option_purge_delay` (its options are numbered by an enum in `mimalloc.h`, which
/// the Rust bindings do not name): milliseconds a free page waits before it is returned to the
/// kernel, -1 for never.
const PURGE_DELAY_OPTION: libmimalloc_sys::mi_option_t = 15;
const NEVER: std::ffi::c_long = -1;

/// Keeps freed memory in the process for reuse (see the module's documentation). Call it first
/// thing in `main`.
pub fn keep_freed_memory() {
    // SAFETY: setting an option only stores a number that mimalloc reads when it next purges.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY_OPTION, NEVER) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_is_mimallocs_purge_delay() {
        // Its documented default (1,000 ms in mimalloc 3), which no other option has: if the
        // bindings' mimalloc renumbered its options, this is some other one.
        // SAFETY: reading an option has no preconditions.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY_OPTION) }, 1_000);
        keep_freed_memory();
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY_OPTION) }, NEVER);
    }
}
