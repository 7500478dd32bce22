//! Fixed-size bursts of mbufs: RX fills one, TX drains one, nothing allocates.

use std::ptr::NonNull;

use super::mbuf::Mbuf;

/// Packets per RX/TX burst.
pub const BURST: usize = 32;

/// Up to [`BURST`] owned mbufs in a fixed array (`[*mut rte_mbuf; BURST]` + length).
///
/// Invariant: entries `0..len` are valid, non-null mbufs owned by the burst; entries
/// past `len` are unspecified. Dropping the burst frees what it still holds, in bulk.
pub struct MbufBurst {
    ptrs: [*mut dpdk_sys::rte_mbuf; BURST],
    len: usize,
}

// SAFETY: the burst owns its mbufs exclusively (see Mbuf: Send).
unsafe impl Send for MbufBurst {}

impl Default for MbufBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MbufBurst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBurst").field("len", &self.len).finish()
    }
}

impl MbufBurst {
    /// An empty burst.
    #[inline]
    pub const fn new() -> Self {
        MbufBurst {
            ptrs: [std::ptr::null_mut(); BURST],
            len: 0,
        }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the burst holds nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the burst is full.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == BURST
    }

    /// Adds an mbuf; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// The held mbufs.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        let ptrs = &self.ptrs[..self.len];
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has the
        // layout of *mut rte_mbuf; entries 0..len are non-null (burst invariant).
        unsafe { std::slice::from_raw_parts(ptrs.as_ptr().cast::<Mbuf>(), ptrs.len()) }
    }

    /// The held mbufs, mutable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        let ptrs = &mut self.ptrs[..self.len];
        // SAFETY: as in `as_slice`; &mut self makes the access exclusive. Callers
        // can modify the mbufs but not replace them with null (Mbuf is NonNull).
        unsafe { std::slice::from_raw_parts_mut(ptrs.as_mut_ptr().cast::<Mbuf>(), ptrs.len()) }
    }

    /// Removes and returns the mbufs one by one, in order.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let len = self.len;
        self.len = 0;
        Drain {
            burst: self,
            pos: 0,
            end: len,
        }
    }

    /// Frees every held mbuf in one bulk call.
    #[inline]
    pub fn free_all(&mut self) {
        if self.len > 0 {
            // SAFETY: entries 0..len are valid mbufs owned by the burst; they are
            // forgotten (len = 0) right after.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }

    /// Pointer to the array and capacity, for `rte_eth_rx_burst` to fill.
    /// The caller must then call [`MbufBurst::set_len_after_rx`].
    #[inline]
    pub(crate) fn spare_for_rx(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, u16) {
        let start = self.len;
        // `start <= BURST` by invariant, so the pointer stays in the array.
        (self.ptrs[start..].as_mut_ptr(), (BURST - start) as u16)
    }

    /// Accounts for `n` mbufs written by the driver after the current length.
    ///
    /// Only `RxQueue::rx` calls this, with the count `rte_eth_rx_burst` returned.
    #[inline]
    pub(crate) fn set_len_after_rx(&mut self, n: usize) {
        debug_assert!(self.len + n <= BURST);
        self.len = (self.len + n).min(BURST);
    }

    /// The raw array for `rte_eth_tx_burst`.
    #[inline]
    pub(crate) fn raw_for_tx(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, usize) {
        (self.ptrs.as_mut_ptr(), self.len)
    }

    /// After TX accepted the first `sent` mbufs: frees the rest in bulk and empties
    /// the burst. Returns how many were freed.
    #[inline]
    pub(crate) fn consume_after_tx(&mut self, sent: usize) -> usize {
        let sent = sent.min(self.len);
        let rest = self.len - sent;
        if rest > 0 {
            // SAFETY: entries sent..len are still owned by the burst (the driver
            // took only the first `sent`); they are forgotten right after.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.ptrs[sent..].as_mut_ptr(), rest as u32) };
        }
        self.len = 0;
        rest
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.free_all();
    }
}

/// Iterator returned by [`MbufBurst::drain`]; frees what is not consumed.
pub struct Drain<'a> {
    burst: &'a mut MbufBurst,
    pos: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.pos >= self.end {
            return None;
        }
        let p = self.burst.ptrs[self.pos];
        self.pos += 1;
        // SAFETY: entries below `end` were owned by the burst when draining began,
        // each is yielded exactly once and the burst's length is already 0.
        NonNull::new(p).map(|nn| unsafe { Mbuf::from_raw(nn) })
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let rest = self.end - self.pos;
        if rest > 0 {
            // SAFETY: entries pos..end were never yielded and are still owned here.
            unsafe {
                dpdk_sys::rte_pktmbuf_free_bulk(
                    self.burst.ptrs[self.pos..].as_mut_ptr(),
                    rest as u32,
                )
            };
        }
    }
}
