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

/// The stripe of the table's shared counts ([`crate::layout::Stripe`]) the
/// calling thread writes: given out round robin on a thread's first use,
/// moved by [`set_home_stripe`]. Under loom every thread has stripe 0 (the
/// models are of the slot protocol, which the counts are outside of).
#[cfg(not(loom))]
#[inline]
pub(crate) fn home_stripe() -> usize {
    use crate::layout::STRIPES;
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    HOME.try_with(|h: &Cell<usize>| {
        let s = h.get();
        if s < STRIPES {
            return s;
        }
        let s = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        h.set(s);
        s
    })
    .unwrap_or(0)
}

#[cfg(not(loom))]
std::thread_local! {
    /// This thread's stripe; `usize::MAX` until its first use.
    static HOME: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Makes `s` the calling thread's stripe (its own was at its share of the
/// capacity when it reserved on `s`).
#[cfg(not(loom))]
#[inline]
pub(crate) fn set_home_stripe(s: usize) {
    let _ = HOME.try_with(|h| h.set(s));
}

#[cfg(loom)]
pub(crate) fn home_stripe() -> usize {
    0
}

#[cfg(loom)]
pub(crate) fn set_home_stripe(_: usize) {}
