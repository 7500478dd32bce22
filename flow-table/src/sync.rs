//! Atomic primitives used by the table, swapped for loom's under `cfg(loom)`.
//!
//! Every shared word of the table is an [`AtomicU64`]; nothing else is shared
//! between threads. Under `--cfg loom` the same code runs against loom's
//! model-checked atomics (and the table memory comes from the heap instead of
//! `mmap`, see `memory.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Back-off hint used while waiting for another writer's short critical
/// section (a slot being rewritten). Under loom it yields so the model
/// checker can schedule the writer.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// A zero-initialised value of a table structure (the state of freshly
/// mapped memory).
pub(crate) fn zeroed_atomic() -> AtomicU64 {
    AtomicU64::new(0)
}
