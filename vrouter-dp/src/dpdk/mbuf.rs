//! An owned DPDK packet buffer.

use std::marker::PhantomData;
use std::ptr::NonNull;

use super::mempool::Mempool;
use crate::packet::buf::{ol, BufError, PacketBuf};

/// An owned `rte_mbuf`, freed (returned to its pool) on drop.
///
/// `Send` (an mbuf may move between lcores, as it does from RX to TX) but not `Sync`.
/// Only single-segment packets are exposed as contiguous bytes: `data()` is the first
/// segment. Ports are configured without scatter, so received packets are single
/// segments.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf {
    ptr: NonNull<dpdk_sys::rte_mbuf>,
    _not_sync: PhantomData<*mut dpdk_sys::rte_mbuf>,
}

// SAFETY: an mbuf is owned by exactly one Mbuf value; DPDK allows an mbuf to be
// freed or transmitted from any lcore (mempools are thread-safe).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Allocates one mbuf from `pool`.
    #[inline]
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: pool is a live pktmbuf pool.
        let p = unsafe { dpdk_sys::rte_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(p).map(|ptr| Mbuf {
            ptr,
            _not_sync: PhantomData,
        })
    }

    /// Allocates one mbuf and copies `bytes` into it.
    pub fn from_bytes(pool: &Mempool, bytes: &[u8]) -> Result<Mbuf, BufError> {
        let mut m = Mbuf::alloc(pool).ok_or(BufError::NoTailroom {
            need: bytes.len(),
            have: 0,
        })?;
        m.append(bytes.len())?.copy_from_slice(bytes);
        Ok(m)
    }

    /// Takes ownership of a raw mbuf pointer.
    ///
    /// # Safety
    /// `ptr` must be a valid mbuf that nothing else owns or frees (for example one
    /// just returned by `rte_eth_rx_burst` or given up by [`Mbuf::into_raw`]).
    #[inline]
    pub unsafe fn from_raw(ptr: NonNull<dpdk_sys::rte_mbuf>) -> Mbuf {
        Mbuf {
            ptr,
            _not_sync: PhantomData,
        }
    }

    /// Gives up ownership (for TX or bulk free) without freeing.
    #[inline]
    pub fn into_raw(self) -> NonNull<dpdk_sys::rte_mbuf> {
        let p = self.ptr;
        std::mem::forget(self);
        p
    }

    /// The raw pointer (still owned by `self`).
    #[inline]
    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mbuf {
        self.ptr.as_ptr()
    }

    #[inline]
    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf for its whole life; the shared borrow of
        // self prevents concurrent mutation through this handle.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    fn raw_mut(&mut self) -> &mut dpdk_sys::rte_mbuf {
        // SAFETY: as in `raw`, and &mut self makes this the only access.
        unsafe { self.ptr.as_mut() }
    }

    /// Total packet length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    /// Number of segments.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// The mbuf's reference count.
    #[inline]
    pub fn refcnt(&self) -> u16 {
        // SAFETY: valid mbuf owned by self.
        unsafe { dpdk_sys::rte_mbuf_refcnt_read(self.ptr.as_ptr()) }
    }

    /// Sets the port field (the input port for RX, informational for TX).
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        self.raw_mut().port = port;
    }

    /// Prefetches the first cache line of packet data.
    #[inline(always)]
    pub fn prefetch_data(&self) {
        let m = self.raw();
        let p = m
            .buf_addr
            .cast::<u8>()
            .wrapping_add(usize::from(m.data_off));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetch is a hint; it never faults, whatever the address.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
        };
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: prefetch is a hint; it never faults, whatever the address.
        unsafe {
            dpdk_sys::rte_prefetch0(p.cast())
        };
    }

    /// A copy of the packet into a new mbuf from `pool` (`rte_pktmbuf_copy`).
    pub fn try_copy(&self, pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: self is a valid mbuf, pool a live pool; offset 0 and length
        // UINT32_MAX copy the whole packet.
        let p =
            unsafe { dpdk_sys::rte_pktmbuf_copy(self.ptr.as_ptr(), pool.as_ptr(), 0, u32::MAX) };
        NonNull::new(p).map(|ptr| Mbuf {
            ptr,
            _not_sync: PhantomData,
        })
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf and it is not used after this.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.ptr.as_ptr()) };
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: for a valid mbuf, [buf_addr + data_off, + data_len) lies inside the
        // segment's buffer and is initialised packet data; the borrow is tied to self.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw_mut();
        // SAFETY: as in `data`, and &mut self gives exclusive access.
        unsafe {
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    // headroom, tailroom, prepend and adj are DPDK's static inline functions
    // (rte_mbuf.h) written out over the first segment's fields, so that they
    // inline into the pipeline instead of costing a call into the C shim per
    // packet; tests/tests/eal_mbuf.rs checks them against DPDK's own append,
    // trim and packet length.

    #[inline]
    fn headroom(&self) -> usize {
        // rte_pktmbuf_headroom: data_off.
        usize::from(self.raw().data_off)
    }

    #[inline]
    fn tailroom(&self) -> usize {
        // rte_pktmbuf_tailroom: buf_len - headroom - data_len.
        let m = self.raw();
        usize::from(m.buf_len)
            .saturating_sub(usize::from(m.data_off))
            .saturating_sub(usize::from(m.data_len))
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        let have = self.headroom();
        let len = match u16::try_from(n) {
            Ok(l) if n <= have => l,
            _ => return Err(BufError::NoHeadroom { need: n, have }),
        };
        // rte_pktmbuf_prepend: move the start back by len bytes of headroom.
        let m = self.raw_mut();
        m.data_off = m.data_off.wrapping_sub(len);
        m.data_len = m.data_len.wrapping_add(len);
        m.pkt_len = m.pkt_len.wrapping_add(u32::from(len));
        let start = usize::from(m.data_off);
        // SAFETY: data_off was at least n (checked above) and is now n smaller, so
        // [buf_addr + data_off, + n) is the front of the segment's buffer, before
        // the packet data that was there; &mut self makes it exclusively ours.
        Ok(unsafe { std::slice::from_raw_parts_mut(m.buf_addr.cast::<u8>().add(start), n) })
    }

    #[inline]
    fn adj(&mut self, n: usize) -> Result<(), BufError> {
        let have = usize::from(self.raw().data_len);
        let len = match u16::try_from(n) {
            Ok(l) if n <= have => l,
            _ => return Err(BufError::TooShort { need: n, have }),
        };
        // rte_pktmbuf_adj: drop len bytes (at most data_len, checked) from the front.
        let m = self.raw_mut();
        m.data_len = m.data_len.wrapping_sub(len);
        m.data_off = m.data_off.wrapping_add(len);
        m.pkt_len = m.pkt_len.wrapping_sub(u32::from(len));
        Ok(())
    }

    #[inline]
    fn trim(&mut self, n: usize) -> Result<(), BufError> {
        let have = usize::from(self.raw().data_len);
        let len = match u16::try_from(n) {
            Ok(l) if n <= have => l,
            _ => return Err(BufError::TooShort { need: n, have }),
        };
        // SAFETY: valid mbuf owned by self; DPDK returns -1 without change when the
        // last segment is shorter than len.
        let r = unsafe { dpdk_sys::rte_pktmbuf_trim(self.ptr.as_ptr(), len) };
        if r != 0 {
            return Err(BufError::TooShort { need: n, have });
        }
        Ok(())
    }

    #[inline]
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        let have = self.tailroom();
        let len = match u16::try_from(n) {
            Ok(l) if n <= have => l,
            _ => return Err(BufError::NoTailroom { need: n, have }),
        };
        // SAFETY: valid mbuf owned by self; DPDK returns NULL without change when
        // the tailroom is short.
        let p = unsafe { dpdk_sys::rte_pktmbuf_append(self.ptr.as_ptr(), len) };
        if p.is_null() {
            return Err(BufError::NoTailroom { need: n, have });
        }
        // SAFETY: p points at the n newly appended bytes inside the last segment's
        // buffer (single segment here); exclusive through &mut self.
        Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    #[inline]
    fn port(&self) -> u16 {
        self.raw().port
    }

    #[inline]
    fn rss_hash(&self) -> Option<u32> {
        let m = self.raw();
        if m.ol_flags & ol::RX_RSS_HASH != 0 {
            // SAFETY: the RX_RSS_HASH flag says the driver wrote the `rss` member of
            // the hash union; any u32 bit pattern is valid.
            Some(unsafe { m.__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }

    #[inline]
    fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    #[inline]
    fn set_ol_flags(&mut self, flags: u64) {
        self.raw_mut().ol_flags = flags;
    }

    #[inline]
    fn set_tx_lens(&mut self, l2_len: u16, l3_len: u16, l4_len: u16) {
        let m = self.raw_mut();
        // SAFETY: the tx_offload union's bitfield view covers the same 8 bytes as
        // the u64 view; writing bitfields through it is how DPDK itself sets them.
        let bf = unsafe { &mut m.__bindgen_anon_3.__bindgen_anon_1 };
        bf.set_l2_len(u64::from(l2_len));
        bf.set_l3_len(u64::from(l3_len));
        bf.set_l4_len(u64::from(l4_len));
    }
}
