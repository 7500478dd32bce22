//! The packet-buffer abstraction the pipeline is generic over.
//!
//! A buffer is a contiguous window `data()` inside a larger allocation, with
//! `headroom()` free bytes in front of it (for encapsulation) and `tailroom()` free
//! bytes after it. [`HeapBuf`] is the plain-memory implementation used by tests and
//! micro-benchmarks; `dpdk::Mbuf` is the DPDK one. Offload flags use DPDK's own bit
//! values (`RTE_MBUF_F_*`), so an mbuf's flags pass through unchanged; a test in the
//! `dpdk` module pins them against the bindings.

use thiserror::Error;

/// Errors from buffer geometry operations. Nothing is changed when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BufError {
    /// `prepend(n)` asked for more bytes than the headroom holds.
    #[error("not enough headroom: need {need} bytes, have {have}")]
    NoHeadroom {
        /// Bytes asked for.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// `append(n)` asked for more bytes than the tailroom holds.
    #[error("not enough tailroom: need {need} bytes, have {have}")]
    NoTailroom {
        /// Bytes asked for.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// `adj(n)` or `trim(n)` asked to remove more bytes than the packet holds.
    #[error("packet too short: need {need} bytes, have {have}")]
    TooShort {
        /// Bytes asked for.
        need: usize,
        /// Bytes available.
        have: usize,
    },
}

/// Offload flag bits, equal to DPDK's `RTE_MBUF_F_*` values.
pub mod ol {
    /// RX: the NIC computed an RSS hash (`rss_hash()` is valid).
    pub const RX_RSS_HASH: u64 = 1 << 1;
    /// RX: L4 checksum bad.
    pub const RX_L4_CKSUM_BAD: u64 = 1 << 3;
    /// RX: IP checksum bad.
    pub const RX_IP_CKSUM_BAD: u64 = 1 << 4;
    /// RX: IP checksum good.
    pub const RX_IP_CKSUM_GOOD: u64 = 1 << 7;
    /// RX: L4 checksum good.
    pub const RX_L4_CKSUM_GOOD: u64 = 1 << 8;
    /// TX: the NIC computes the L4 checksum of a UDP packet.
    pub const TX_UDP_CKSUM: u64 = 3 << 52;
    /// TX: the NIC computes the (inner) IPv4 header checksum.
    pub const TX_IP_CKSUM: u64 = 1 << 54;
    /// TX: the (inner) packet is IPv4.
    pub const TX_IPV4: u64 = 1 << 55;
    /// TX: the (inner) packet is IPv6.
    pub const TX_IPV6: u64 = 1 << 56;
}

/// A packet in a contiguous buffer with head- and tailroom.
///
/// Implementations must keep `data().len() == len()` and never move bytes that are
/// inside `data()` when the window changes.
pub trait PacketBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Free bytes in front of the packet.
    fn headroom(&self) -> usize;
    /// Free bytes after the packet.
    fn tailroom(&self) -> usize;
    /// Grow the packet at the front by `n` bytes and return the new front bytes
    /// (their content is unspecified). Fails without change when the headroom is short.
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError>;
    /// Remove `n` bytes from the front.
    fn adj(&mut self, n: usize) -> Result<(), BufError>;
    /// Remove `n` bytes from the end.
    fn trim(&mut self, n: usize) -> Result<(), BufError>;
    /// Grow the packet at the end by `n` bytes and return them.
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError>;
    /// The input port id the packet arrived on.
    fn port(&self) -> u16;
    /// The NIC's RSS hash, when the NIC supplied one.
    fn rss_hash(&self) -> Option<u32>;
    /// Offload flags (`ol::*`, DPDK's bit values).
    fn ol_flags(&self) -> u64;
    /// Replace the offload flags.
    fn set_ol_flags(&mut self, flags: u64);
    /// Set the header lengths the NIC needs for TX checksum offload.
    fn set_tx_lens(&mut self, l2_len: u16, l3_len: u16, l4_len: u16);

    /// Packet length in bytes.
    #[inline]
    fn len(&self) -> usize {
        self.data().len()
    }
    /// Whether the packet holds no bytes.
    #[inline]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A heap-backed [`PacketBuf`] for tests and benchmarks.
#[derive(Debug, Clone)]
pub struct HeapBuf {
    mem: Vec<u8>,
    start: usize,
    end: usize,
    port: u16,
    rss: Option<u32>,
    ol_flags: u64,
    tx_lens: (u16, u16, u16),
}

impl HeapBuf {
    /// Default headroom, the same as DPDK's `RTE_PKTMBUF_HEADROOM`.
    pub const DEFAULT_HEADROOM: usize = 128;

    /// A buffer holding `bytes` with [`Self::DEFAULT_HEADROOM`] in front and
    /// `tailroom` bytes behind.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self::with_room(bytes, Self::DEFAULT_HEADROOM, 256)
    }

    /// A buffer holding `bytes` with the given head- and tailroom.
    pub fn with_room(bytes: &[u8], headroom: usize, tailroom: usize) -> Self {
        let mut mem = vec![0u8; headroom + bytes.len() + tailroom];
        mem[headroom..headroom + bytes.len()].copy_from_slice(bytes);
        Self {
            mem,
            start: headroom,
            end: headroom + bytes.len(),
            port: 0,
            rss: None,
            ol_flags: 0,
            tx_lens: (0, 0, 0),
        }
    }

    /// Set the input port.
    pub fn set_port(&mut self, port: u16) {
        self.port = port;
    }

    /// Set (or clear) the RSS hash, with the matching offload flag.
    pub fn set_rss_hash(&mut self, hash: Option<u32>) {
        self.rss = hash;
        if hash.is_some() {
            self.ol_flags |= ol::RX_RSS_HASH;
        } else {
            self.ol_flags &= !ol::RX_RSS_HASH;
        }
    }

    /// The header lengths last given to [`PacketBuf::set_tx_lens`].
    pub fn tx_lens(&self) -> (u16, u16, u16) {
        self.tx_lens
    }

    /// Reset the window to `bytes` with the original head- and tailroom split, keeping
    /// the allocation (used by benchmarks to reuse buffers without allocating).
    pub fn reset_to(&mut self, bytes: &[u8], headroom: usize) -> Result<(), BufError> {
        let need = headroom + bytes.len();
        if need > self.mem.len() {
            return Err(BufError::NoTailroom {
                need,
                have: self.mem.len(),
            });
        }
        self.mem[headroom..need].copy_from_slice(bytes);
        self.start = headroom;
        self.end = need;
        Ok(())
    }
}

impl PacketBuf for HeapBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.mem[self.start..self.end]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.end]
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.start
    }
    #[inline]
    fn tailroom(&self) -> usize {
        self.mem.len() - self.end
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        if n > self.start {
            return Err(BufError::NoHeadroom {
                need: n,
                have: self.start,
            });
        }
        self.start -= n;
        Ok(&mut self.mem[self.start..self.start + n])
    }
    #[inline]
    fn adj(&mut self, n: usize) -> Result<(), BufError> {
        let have = self.end - self.start;
        if n > have {
            return Err(BufError::TooShort { need: n, have });
        }
        self.start += n;
        Ok(())
    }
    #[inline]
    fn trim(&mut self, n: usize) -> Result<(), BufError> {
        let have = self.end - self.start;
        if n > have {
            return Err(BufError::TooShort { need: n, have });
        }
        self.end -= n;
        Ok(())
    }
    #[inline]
    fn append(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        let have = self.mem.len() - self.end;
        if n > have {
            return Err(BufError::NoTailroom { need: n, have });
        }
        let old = self.end;
        self.end += n;
        Ok(&mut self.mem[old..self.end])
    }
    #[inline]
    fn port(&self) -> u16 {
        self.port
    }
    #[inline]
    fn rss_hash(&self) -> Option<u32> {
        self.rss
    }
    #[inline]
    fn ol_flags(&self) -> u64 {
        self.ol_flags
    }
    #[inline]
    fn set_ol_flags(&mut self, flags: u64) {
        self.ol_flags = flags;
    }
    #[inline]
    fn set_tx_lens(&mut self, l2_len: u16, l3_len: u16, l4_len: u16) {
        self.tx_lens = (l2_len, l3_len, l4_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_adj_trim_bounds() {
        let mut b = HeapBuf::with_room(&[1, 2, 3, 4], 8, 2);
        assert_eq!(b.headroom(), 8);
        assert_eq!(
            b.prepend(9).unwrap_err(),
            BufError::NoHeadroom { need: 9, have: 8 }
        );
        assert_eq!(b.data(), &[1, 2, 3, 4]);
        b.prepend(2).unwrap().copy_from_slice(&[9, 9]);
        assert_eq!(b.data(), &[9, 9, 1, 2, 3, 4]);
        b.adj(2).unwrap();
        assert_eq!(
            b.adj(5).unwrap_err(),
            BufError::TooShort { need: 5, have: 4 }
        );
        b.trim(1).unwrap();
        assert_eq!(b.data(), &[1, 2, 3]);
        assert_eq!(
            b.append(4).unwrap_err(),
            BufError::NoTailroom { need: 4, have: 3 }
        );
        b.append(3).unwrap().copy_from_slice(&[7, 7, 7]);
        assert_eq!(b.data(), &[1, 2, 3, 7, 7, 7]);
    }
}
