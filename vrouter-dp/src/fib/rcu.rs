//! Snapshot publication with quiescent-state-based reclamation (QSBR).
//!
//! The control thread owns a [`Publisher`]; each worker owns a [`Reader`].
//!
//! * **Publish.** [`Publisher::publish`] stores the new `Arc<T>` (an `ArcSwap`
//!   pointer swap) and then bumps the generation counter (`Release`). The previous
//!   version is kept in the publisher's retire list, tagged with the new generation.
//! * **Read.** At the start of each burst [`Reader::load`] reads the generation
//!   (`Acquire`, one load of a shared cache line that only changes on publish). When
//!   it is unchanged, the worker keeps its cached `Arc` and touches nothing else; when
//!   it changed, the worker loads the current `Arc` (lock-free) and drops its old one.
//!   Because the pointer is stored before the generation is bumped, a reader that saw
//!   generation `g` holds a version at least as new as the one published at `g`.
//! * **Quiescent point.** After refreshing, the worker stores the generation it saw
//!   into its own cache-padded slot (`Release`): from then on it holds no version
//!   older than that generation. Calling `load` at a burst boundary is the quiescent
//!   point: nothing of the previous burst is referenced any more.
//! * **Reclaim.** [`Publisher::reclaim`] drops a retired version tagged `g` only when
//!   every registered reader's slot is `>= g`. The reader's own reference was already
//!   released by then, so the publisher's is the last one and the memory is freed on
//!   the control thread, never on a worker. A worker never waits for the control
//!   thread: `load` is wait-free apart from `ArcSwap`'s lock-free load.
//!
//! Readers register through [`Publisher::reader`] (control thread) and mark their
//! slot as gone when dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;

/// Slot value of a reader that has gone (never holds anything).
const GONE: u64 = u64::MAX;

#[derive(Debug)]
struct Shared<T> {
    current: ArcSwap<T>,
    generation: CachePadded<AtomicU64>,
    /// Reader slots. Locked only by the control thread (registration, reclaim).
    readers: Mutex<Vec<Arc<CachePadded<AtomicU64>>>>,
}

/// The publishing side (control thread).
#[derive(Debug)]
pub struct Publisher<T> {
    shared: Arc<Shared<T>>,
    retired: Vec<(u64, Arc<T>)>,
}

impl<T> Publisher<T> {
    /// A publisher whose first version is `initial` (generation 0).
    pub fn new(initial: Arc<T>) -> Self {
        Self {
            shared: Arc::new(Shared {
                current: ArcSwap::new(initial),
                generation: CachePadded::new(AtomicU64::new(0)),
                readers: Mutex::new(Vec::new()),
            }),
            retired: Vec::new(),
        }
    }

    /// Register a reader for one worker. Its first `load` sees the current version.
    pub fn reader(&self) -> Reader<T> {
        let gen = self.shared.generation.load(Ordering::Acquire);
        let cached = self.shared.current.load_full();
        let slot = Arc::new(CachePadded::new(AtomicU64::new(gen)));
        self.shared
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(slot.clone());
        Reader {
            shared: self.shared.clone(),
            slot,
            cached: Some(cached),
            cached_gen: gen,
        }
    }

    /// Publish a new version; returns its generation. The old version is retired
    /// and freed by a later [`Publisher::reclaim`] (also run here).
    pub fn publish(&mut self, next: Arc<T>) -> u64 {
        let old = self.shared.current.swap(next);
        let gen = self.shared.generation.fetch_add(1, Ordering::Release) + 1;
        self.retired.push((gen, old));
        self.reclaim();
        gen
    }

    /// The current version.
    pub fn current(&self) -> Arc<T> {
        self.shared.current.load_full()
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Free every retired version that no reader can still hold; returns how many
    /// versions stay retired.
    pub fn reclaim(&mut self) -> usize {
        let min = {
            let mut readers = self
                .shared
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            readers.retain(|s| s.load(Ordering::Acquire) != GONE);
            readers
                .iter()
                .map(|s| s.load(Ordering::Acquire))
                .min()
                .unwrap_or(GONE)
        };
        self.retired.retain(|(g, _)| *g > min);
        self.retired.len()
    }

    /// Number of versions retired and not yet freed.
    pub fn retired(&self) -> usize {
        self.retired.len()
    }
}

/// The reading side (one per worker).
#[derive(Debug)]
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
    slot: Arc<CachePadded<AtomicU64>>,
    cached: Option<Arc<T>>,
    cached_gen: u64,
}

impl<T> Reader<T> {
    /// Begin a burst: report a quiescent point and return the current version.
    /// Costs one atomic load when nothing was published since the last call.
    #[inline]
    pub fn load(&mut self) -> &Arc<T> {
        let gen = self.shared.generation.load(Ordering::Acquire);
        if gen != self.cached_gen || self.cached.is_none() {
            self.refresh(gen);
        }
        let shared = &self.shared;
        self.cached
            .get_or_insert_with(|| shared.current.load_full())
    }

    #[cold]
    fn refresh(&mut self, gen: u64) {
        // Drop our old reference first: the publisher still holds its own until
        // our slot moves past it, so this never frees anything here.
        self.cached = Some(self.shared.current.load_full());
        self.cached_gen = gen;
        self.slot.store(gen, Ordering::Release);
    }

    /// The version loaded by the last [`Reader::load`], if any.
    #[inline]
    pub fn cached(&self) -> Option<&Arc<T>> {
        self.cached.as_ref()
    }

    /// The generation this reader last saw.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.cached_gen
    }
}

impl<T> Drop for Reader<T> {
    fn drop(&mut self) {
        self.cached = None;
        self.slot.store(GONE, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::thread;

    struct Tracked(Arc<AtomicU64>, u64);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn retired_versions_wait_for_every_reader() {
        let drops = Arc::new(AtomicU64::new(0));
        let mut p = Publisher::new(Arc::new(Tracked(drops.clone(), 0)));
        let mut r1 = p.reader();
        let mut r2 = p.reader();
        assert_eq!(r1.load().1, 0);
        p.publish(Arc::new(Tracked(drops.clone(), 1)));
        // Neither reader has passed a quiescent point: version 0 stays.
        assert_eq!(p.retired(), 1);
        assert_eq!(r1.load().1, 1);
        assert_eq!(p.reclaim(), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        assert_eq!(r2.load().1, 1);
        assert_eq!(p.reclaim(), 0);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // A reader that goes away no longer holds anything back.
        p.publish(Arc::new(Tracked(drops.clone(), 2)));
        assert_eq!(r1.load().1, 2);
        drop(r2);
        assert_eq!(p.reclaim(), 0);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        assert_eq!(r1.generation(), 2);
    }

    #[test]
    fn stress_readers_see_whole_versions() {
        // Each version is a vector whose elements all equal its number; a reader
        // must never see a mix, and versions are freed only on this thread.
        let mut p = Publisher::new(Arc::new(vec![0u64; 64]));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let mut handles = Vec::new();
        for k in 0..2 {
            let mut r = p.reader();
            let stop = stop.clone();
            let seen = seen.clone();
            handles.push(thread::spawn(move || {
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let v = r.load();
                    let first = v[0];
                    assert!(v.iter().all(|x| *x == first), "mixed version");
                    assert!(first >= last, "went back in time");
                    last = first;
                    seen[k].fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // At least 2000 versions, and on until both readers have loaded many times
        // while versions change (a loaded machine may start them late).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut i = 0u64;
        while i < 2000
            || (seen.iter().any(|s| s.load(Ordering::Relaxed) < 1000)
                && std::time::Instant::now() < deadline)
        {
            i += 1;
            p.publish(Arc::new(vec![i; 64]));
        }
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().unwrap();
        }
        for s in seen.iter() {
            assert!(s.load(Ordering::Relaxed) >= 1000, "a reader never ran");
        }
        assert_eq!(p.reclaim(), 0);
    }
}
