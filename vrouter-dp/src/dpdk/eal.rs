//! EAL lifetime: initialise once per process, clean up on drop.

use std::ffi::{c_char, c_int, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::DpdkError;

/// Set by the first call to [`Eal::init`]; DPDK cannot initialise EAL twice in one
/// process, not even after `rte_eal_cleanup`.
static EAL_INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// An lcore id (DPDK's logical core, pinned to one CPU).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

/// A NUMA socket id.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u32);

impl SocketId {
    /// DPDK's `SOCKET_ID_ANY` as used by allocation calls.
    pub const ANY: i32 = -1;
}

/// The initialised Environment Abstraction Layer.
///
/// Dropping it waits for every launched lcore to finish and then runs
/// `rte_eal_cleanup`. Stop and drop ports and mempools before dropping it.
#[derive(Debug)]
pub struct Eal {
    /// The arguments EAL did not consume (those after `--`).
    remaining: Vec<String>,
    /// EAL must be cleaned up on the thread that initialised it: not `Send`.
    _not_send: PhantomData<*const ()>,
}

impl Eal {
    /// Initialises EAL from an argument vector (`args[0]` is the program name).
    ///
    /// Fails with [`DpdkError::EalAlreadyInitialised`] when called a second time in
    /// the same process, whether or not the first call succeeded.
    #[cold]
    pub fn init<I, S>(args: I) -> Result<Eal, DpdkError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let owned: Vec<String> = args.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let mut cstrings = Vec::with_capacity(owned.len());
        for a in &owned {
            cstrings
                .push(CString::new(a.as_str()).map_err(|_| DpdkError::NulInArgument(a.clone()))?);
        }
        if EAL_INIT_CALLED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalAlreadyInitialised);
        }
        // EAL may keep pointers into argv (and permutes the pointer array), so both
        // the strings and the array live for the rest of the process. This happens
        // once per process.
        let cstrings: &'static [CString] = Vec::leak(cstrings);
        let argv: &'static mut [*mut c_char] = Vec::leak(
            cstrings
                .iter()
                .map(|c| c.as_ptr() as *mut c_char)
                .chain(std::iter::once(std::ptr::null_mut()))
                .collect::<Vec<_>>(),
        );
        let argc = c_int::try_from(cstrings.len()).unwrap_or(c_int::MAX);
        // SAFETY: argv holds `argc` valid NUL-terminated strings followed by a NULL
        // pointer, all of which live for the rest of the process (leaked above);
        // EAL_INIT_CALLED guarantees this is the only call in the process.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let errno = super::rte_errno();
            return Err(DpdkError::EalInit {
                errno,
                reason: super::strerror(errno),
            });
        }
        let consumed = usize::try_from(ret).unwrap_or(0);
        let remaining = owned.iter().skip(consumed + 1).cloned().collect();
        Ok(Eal {
            remaining,
            _not_send: PhantomData,
        })
    }

    /// Whether `init` has been called in this process.
    pub fn is_initialised() -> bool {
        EAL_INIT_CALLED.load(Ordering::SeqCst)
    }

    /// Arguments after EAL's own (after `--`).
    pub fn remaining_args(&self) -> &[String] {
        &self.remaining
    }

    /// The main lcore (the thread that called `init`).
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: EAL is initialised (self exists); a plain read.
        LcoreId(unsafe { dpdk_sys::rte_get_main_lcore() })
    }

    /// Number of enabled lcores, the main one included.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: EAL is initialised; a plain read.
        unsafe { dpdk_sys::rte_lcore_count() }
    }

    /// The enabled worker lcores (all enabled lcores but the main one), ascending.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let main = self.main_lcore().0;
        (0..dpdk_sys::RTE_MAX_LCORE)
            .filter(|&l| l != main && self.lcore_enabled(LcoreId(l)))
            .map(LcoreId)
            .collect()
    }

    /// Whether an lcore is enabled in this EAL.
    pub fn lcore_enabled(&self, lcore: LcoreId) -> bool {
        if lcore.0 >= dpdk_sys::RTE_MAX_LCORE {
            return false;
        }
        // SAFETY: EAL is initialised and the id is below RTE_MAX_LCORE.
        unsafe { dpdk_sys::rte_lcore_is_enabled(lcore.0) != 0 }
    }

    /// The NUMA socket of an lcore.
    pub fn lcore_socket(&self, lcore: LcoreId) -> SocketId {
        // SAFETY: EAL is initialised; DPDK range-checks the id and returns
        // SOCKET_ID_ANY-like values for invalid ones.
        SocketId(unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore.0) })
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: called on the main lcore (Eal is created there and is not Send);
        // waiting for workers has no other precondition.
        unsafe { dpdk_sys::rte_eal_mp_wait_lcore() };
        // SAFETY: every lcore has returned (waited above); no DPDK object owned by
        // this program is used after this point (documented contract of Eal).
        unsafe { dpdk_sys::rte_eal_cleanup() };
    }
}

/// The calling thread's lcore id (`u32::MAX`, i.e. `LCORE_ID_ANY`, off EAL threads).
#[inline]
pub fn current_lcore() -> LcoreId {
    // SAFETY: reads a thread-local; valid on any thread.
    LcoreId(unsafe { dpdk_sys::rte_lcore_id() })
}
