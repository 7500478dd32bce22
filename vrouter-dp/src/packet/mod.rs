//! Wire formats, checksums, flow keys, encapsulation and decapsulation.
//!
//! Pure Rust over byte slices; nothing here knows about DPDK. Code that needs a
//! packet buffer (encap into headroom, decap by stripping) is generic over
//! [`PacketBuf`], implemented by the DPDK `Mbuf` and by [`HeapBuf`] for tests.
//!
//! Each header family has a zero-copy view `Packet<T: AsRef<[u8]>>` (`Frame` for
//! Ethernet) with `new_checked` (validates lengths and version fields and returns a
//! precise [`Error`]), `#[inline]` getters, setters when `T: AsMut<[u8]>`, and a small
//! owned `*Repr` with `parse` / `emit` / `buffer_len` for building headers on slow paths
//! and in tests. Once `new_checked` (or `check_len`) has returned `Ok`, no accessor of
//! that view panics. On the hot path use the views, [`flow::extract_ethernet`],
//! [`TunnelEncap::encap`] and [`Decapsulator::decap`]; every rejection is one
//! [`Error`] variant with a stable counter name ([`Error::as_str`]).

pub mod arp;
pub mod buf;
pub mod checksum;
pub mod encap;
pub mod error;
pub mod ethernet;
pub mod flow;
pub mod gre;
pub mod icmp;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod mpls;
pub mod tcp;
pub mod udp;
pub mod vxlan;

pub use arp::{ArpOperation, ArpRepr};
pub use buf::{ol, BufError, HeapBuf, PacketBuf};
pub use encap::{
    strip_control_word, Decapped, Decapsulator, EncapMeta, Payload, TunnelEncap, TunnelId,
    TunnelKind, TunnelParams, UdpChecksum,
};
pub use error::{Error, Result};
pub use ethernet::{EtherType, EthernetAddress, EthernetRepr, L2Header, VlanRepr};
pub use flow::{
    entropy_port, extract_ethernet, extract_ethernet_fast, extract_ethernet_general, extract_ip,
    extract_ipv4, extract_ipv6, flow_hash, AddrFamily, FlowInfo, FlowKey, FragmentKind, VrfId,
};
pub use gre::GreRepr;
pub use icmp::{IcmpRepr, NdRepr};
pub use ip::{IpPair, IpProtocol};
pub use ipv4::Ipv4Repr;
pub use ipv6::Ipv6Repr;
pub use mpls::{LabelStack, MplsRepr};
pub use tcp::TcpRepr;
pub use udp::UdpRepr;
pub use vxlan::VxlanRepr;

/// Read a big-endian u16 at `off` (callers have checked the length).
#[inline(always)]
pub(crate) fn rd16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// Read a big-endian u32 at `off` (callers have checked the length).
#[inline(always)]
pub(crate) fn rd32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Write a big-endian u16 at `off` (callers have checked the length).
#[inline(always)]
pub(crate) fn wr16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}
