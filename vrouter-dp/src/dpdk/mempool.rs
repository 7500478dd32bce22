//! Packet-buffer pools.

use std::ffi::CString;
use std::ptr::NonNull;

use super::eal::SocketId;
use super::error::DpdkError;

/// A pktmbuf mempool (`rte_pktmbuf_pool_create`), freed on drop.
///
/// Mempools are thread-safe: any lcore may allocate from and free to one; each lcore
/// has its own object cache.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<dpdk_sys::rte_mempool>,
    name: String,
}

// SAFETY: a DPDK mempool is designed for concurrent use from several threads
// (lock-free ring plus per-lcore caches); the handle is only a pointer to it.
unsafe impl Send for Mempool {}
// SAFETY: as above; every operation exposed takes &self and is thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Default data room: 2048 bytes of packet data plus the headroom.
    pub const DEFAULT_DATA_ROOM: u16 = dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

    /// Creates a pool of `n` mbufs (best when `n = 2^k - 1`) with a per-lcore cache
    /// of `cache` and `data_room` bytes per buffer, on NUMA `socket`
    /// ([`SocketId::ANY`] for any).
    #[cold]
    pub fn new(
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::NulInArgument(name.to_owned()))?;
        // SAFETY: cname is a valid NUL-terminated string for the duration of the
        // call; DPDK copies the name. The other arguments are plain values.
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket)
        };
        match NonNull::new(p) {
            Some(ptr) => Ok(Mempool {
                ptr,
                name: name.to_owned(),
            }),
            None => {
                let errno = super::rte_errno();
                Err(DpdkError::MempoolCreate {
                    name: name.to_owned(),
                    errno,
                    reason: super::strerror(errno),
                })
            }
        }
    }

    /// Creates a pool on the given socket, named `<prefix>_s<socket>`.
    pub fn for_socket(
        prefix: &str,
        socket: SocketId,
        n: u32,
        cache: u32,
    ) -> Result<Mempool, DpdkError> {
        let socket_i = i32::try_from(socket.0).unwrap_or(SocketId::ANY);
        Mempool::new(
            &format!("{prefix}_s{}", socket.0),
            n,
            cache,
            Self::DEFAULT_DATA_ROOM,
            socket_i,
        )
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw pointer, for RX queue set-up and allocation.
    #[inline]
    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.ptr.as_ptr()
    }

    /// Mbufs currently allocated from the pool (including those in lcore caches'
    /// complement, as DPDK counts them).
    pub fn in_use(&self) -> u32 {
        // SAFETY: self.ptr is a live mempool (owned until drop).
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Mbufs available in the pool.
    pub fn available(&self) -> u32 {
        // SAFETY: self.ptr is a live mempool (owned until drop).
        unsafe { dpdk_sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Allocates one mbuf, or `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<super::Mbuf> {
        super::Mbuf::alloc(self)
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the pool is owned by this handle and not used after drop; every
        // port using it must be stopped first (documented contract of ports).
        unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
    }
}
