//! Wire formats, checksums, flow keys, encapsulation and decapsulation.
//!
//! Pure Rust over byte slices; nothing here knows about DPDK. Code that needs a
//! packet buffer (encap into headroom, decap by stripping) is generic over
//! [`PacketBuf`], implemented by the DPDK `Mbuf` and by [`HeapBuf`] for tests.

pub mod buf;

pub use buf::{BufError, HeapBuf, PacketBuf};
