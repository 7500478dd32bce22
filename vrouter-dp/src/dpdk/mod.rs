//! Safe wrappers over `dpdk-sys`: the only place in `vrouter-dp` that calls DPDK.
//!
//! * [`Eal`]: EAL initialisation (once per process) and cleanup.
//! * [`Mempool`]: packet-buffer pools, one per NUMA socket.
//! * [`Mbuf`]: an owned packet buffer, freed on drop; implements
//!   [`crate::packet::PacketBuf`].
//! * [`MbufBurst`]: a fixed array of up to [`BURST`] mbufs for RX/TX without allocation.
//! * [`Port`], [`RxQueue`], [`TxQueue`]: ethdev ports and their queues.
//! * [`lcore`]: launching closures on pinned lcores and joining them.
//! * [`dev`]: virtual device hot-plug and removal at run time.
//! * [`bond`]: the LACP (802.3ad) timers of a bonding port.
//! * [`fib`]: DPDK's `rte_fib`/`rte_fib6` tables, measured against [`crate::fib::Lpm`].
//!
//! Every `unsafe` block states the invariant it relies on in a `// SAFETY:` comment.

pub mod bond;
mod burst;
pub mod dev;
mod eal;
mod error;
pub mod fib;
pub mod lcore;
mod mbuf;
mod mempool;
mod port;

pub use burst::{MbufBurst, BURST};
pub use eal::{Eal, LcoreId, SocketId};
pub use error::DpdkError;
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{LinkStatus, Port, PortConf, PortId, PortStats, QueueId, RxQueue, TxQueue, TxStats};

/// Reads the calling thread's `rte_errno`.
#[inline]
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: `vr_rte_errno` only reads DPDK's thread-local errno variable.
    unsafe { dpdk_sys::vr_rte_errno() }
}

/// DPDK's text for an errno value (positive or negative).
pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a NUL-terminated string that is
    // either static or in thread-local storage; it is copied out at once.
    let p = unsafe { dpdk_sys::rte_strerror(errno.abs()) };
    if p.is_null() {
        return format!("error {errno}");
    }
    // SAFETY: `p` is non-null and points to a NUL-terminated C string (see above).
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// The TSC frequency in Hz (valid after EAL init).
#[inline]
pub fn tsc_hz() -> u64 {
    // SAFETY: a read of a value EAL computed at init; no preconditions.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// Reads the time-stamp counter (inline on x86_64, as DPDK's `rte_rdtsc`; through
/// DPDK elsewhere).
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC has no preconditions and touches no memory.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: reading the TSC has no preconditions.
    unsafe {
        dpdk_sys::rte_rdtsc()
    }
}

/// Asks the CPU to bring the cache line holding `r` into all cache levels. A hint
/// for batched table walks (no EAL needed): it never faults and changes nothing.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a hint that never faults or reads memory
    // architecturally; `r` is a valid reference anyway. SSE is x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (r as *const T).cast(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// The DPDK version string, e.g. "DPDK 22.11.11".
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    let p = unsafe { dpdk_sys::rte_version() };
    if p.is_null() {
        return String::from("DPDK (unknown)");
    }
    // SAFETY: non-null static C string (see above).
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use crate::packet::buf::ol;

    #[test]
    fn offload_bits_match_dpdk() {
        assert_eq!(ol::RX_RSS_HASH, u64::from(dpdk_sys::RTE_MBUF_F_RX_RSS_HASH));
        assert_eq!(
            ol::RX_L4_CKSUM_BAD,
            u64::from(dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_BAD)
        );
        assert_eq!(
            ol::RX_IP_CKSUM_BAD,
            u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_BAD)
        );
        assert_eq!(
            ol::RX_IP_CKSUM_GOOD,
            u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD)
        );
        assert_eq!(
            ol::RX_L4_CKSUM_GOOD,
            u64::from(dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD)
        );
        assert_eq!(ol::TX_UDP_CKSUM, dpdk_sys::RTE_MBUF_F_TX_UDP_CKSUM);
        assert_eq!(ol::TX_IP_CKSUM, dpdk_sys::RTE_MBUF_F_TX_IP_CKSUM);
        assert_eq!(ol::TX_IPV4, dpdk_sys::RTE_MBUF_F_TX_IPV4);
        assert_eq!(ol::TX_IPV6, dpdk_sys::RTE_MBUF_F_TX_IPV6);
    }
}
