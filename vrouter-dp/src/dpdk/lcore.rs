//! Running closures on pinned EAL worker lcores.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::eal::{Eal, LcoreId};
use super::error::DpdkError;

pub use super::eal::current_lcore;

/// What travels to the lcore: the closure, and the slot for its result.
struct Job<F, R> {
    f: Option<F>,
    result: Option<std::thread::Result<R>>,
}

extern "C" fn trampoline<F, R>(arg: *mut c_void) -> c_int
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    // SAFETY: `arg` is the Box<Job<F, R>> pointer passed by `launch`, which keeps
    // it alive until `rte_eal_wait_lcore` returns for this lcore; only this lcore
    // touches it meanwhile.
    let job = unsafe { &mut *arg.cast::<Job<F, R>>() };
    match job.f.take() {
        Some(f) => {
            job.result = Some(catch_unwind(AssertUnwindSafe(f)));
            0
        }
        None => -1,
    }
}

/// A closure running on an lcore. [`LcoreJoin::join`] waits for it and returns its
/// result; dropping the handle also waits (the closure borrows nothing, but its
/// result slot must outlive it).
#[must_use = "dropping the handle blocks until the lcore finishes"]
pub struct LcoreJoin<R> {
    lcore: LcoreId,
    job: *mut c_void,
    take: fn(*mut c_void) -> Option<std::thread::Result<R>>,
    done: bool,
}

impl<R> std::fmt::Debug for LcoreJoin<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LcoreJoin")
            .field("lcore", &self.lcore)
            .finish()
    }
}

fn take_result<F, R>(p: *mut c_void) -> Option<std::thread::Result<R>> {
    // SAFETY: `p` is the pointer from Box::into_raw in `launch`, and this is called
    // exactly once, after the lcore finished; the box is reclaimed here.
    let mut job = unsafe { Box::from_raw(p.cast::<Job<F, R>>()) };
    job.result.take()
}

/// Launches `f` on worker lcore `lcore` (not the main lcore), which must be idle.
#[cold]
pub fn launch<F, R>(_eal: &Eal, lcore: LcoreId, f: F) -> Result<LcoreJoin<R>, DpdkError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let job: Box<Job<F, R>> = Box::new(Job {
        f: Some(f),
        result: None,
    });
    let p = Box::into_raw(job).cast::<c_void>();
    // SAFETY: trampoline::<F, R> matches the lcore_function_t signature; p stays
    // valid until `take_result` runs after rte_eal_wait_lcore (in join or drop).
    let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline::<F, R>), p, lcore.0) };
    if ret != 0 {
        // The lcore never received the job: reclaim it here.
        drop(take_result::<F, R>(p));
        return Err(DpdkError::Launch {
            lcore: lcore.0,
            reason: if ret == -libc::EBUSY {
                "lcore is busy (not in WAIT state)".into()
            } else {
                super::strerror(ret)
            },
        });
    }
    Ok(LcoreJoin {
        lcore,
        job: p,
        take: take_result::<F, R>,
        done: false,
    })
}

impl<R> LcoreJoin<R> {
    /// The lcore the closure runs on.
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }

    fn wait(&mut self) -> Option<std::thread::Result<R>> {
        if self.done {
            return None;
        }
        // SAFETY: waits for the lcore this handle launched; no other precondition.
        unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore.0) };
        self.done = true;
        (self.take)(self.job)
    }

    /// Waits for the closure and returns its result.
    pub fn join(mut self) -> Result<R, DpdkError> {
        match self.wait() {
            Some(Ok(r)) => Ok(r),
            _ => Err(DpdkError::LcorePanicked(self.lcore.0)),
        }
    }
}

impl<R> Drop for LcoreJoin<R> {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}
