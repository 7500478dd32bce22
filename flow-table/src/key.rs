//! The flow key: VRF, addresses, protocol and ports in one fixed 40-byte value.
//!
//! # Encoding
//!
//! A [`FlowKey`] is five 64-bit words (`repr(C)`, 40 bytes, 8-byte aligned),
//! compared and hashed as a whole:
//!
//! | word | content |
//! |------|---------|
//! | 0, 1 | source address, 16 bytes in network order (memory order = address bytes) |
//! | 2, 3 | destination address, same encoding |
//! | 4    | bits 0..16 source port, 16..32 destination port, 32..55 VRF id, bit 55 IPv6 flag, 56..64 IP protocol |
//!
//! IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`, RFC 4291
//! §2.5.5.2); the explicit IPv6 flag keeps an IPv4 flow distinct from an IPv6
//! flow whose addresses happen to be IPv4-mapped. For ICMP and ICMPv6 the
//! echo identifier takes the source port's place and the destination port is
//! zero. Word 4 is an integer, so its meaning does not depend on byte order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::KeyError;

/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// IP protocol number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;

/// A VRF (routing instance) id, limited to 23 bits by the key encoding.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VrfId(u32);

impl VrfId {
    /// Largest VRF id a key can hold.
    pub const MAX: u32 = (1 << 23) - 1;

    /// Checks that `id` fits the key's VRF field.
    pub const fn new(id: u32) -> Result<Self, KeyError> {
        if id > Self::MAX {
            Err(KeyError::VrfOutOfRange(id))
        } else {
            Ok(VrfId(id))
        }
    }

    /// The numeric id.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Address family of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

const PORT_SRC_SHIFT: u32 = 0;
const PORT_DST_SHIFT: u32 = 16;
const VRF_SHIFT: u32 = 32;
const V6_FLAG: u64 = 1 << 55;
const PROTO_SHIFT: u32 = 56;

/// The 5-tuple plus VRF that identifies a flow. See the module docs for the
/// exact encoding.
#[repr(C, align(8))]
#[derive(Clone, Copy, Eq)]
pub struct FlowKey {
    words: [u64; 5],
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 40);

fn addr_words(bytes: [u8; 16]) -> (u64, u64) {
    let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = bytes;
    (
        u64::from_ne_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_ne_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
    )
}

fn words_addr(w0: u64, w1: u64) -> [u8; 16] {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = w0.to_ne_bytes();
    let [b0, b1, b2, b3, b4, b5, b6, b7] = w1.to_ne_bytes();
    [
        a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7,
    ]
}

fn is_icmp(proto: u8) -> bool {
    proto == PROTO_ICMP || proto == PROTO_ICMPV6
}

impl PartialEq for FlowKey {
    /// Word-wise, branch-free: the derived comparison of the 40-byte array
    /// becomes a `memcmp` call on the per-packet path.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.words, &other.words);
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }
}

impl std::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.words.hash(state);
    }
}

impl FlowKey {
    /// A flow from addresses already in the key's 16-byte form: network order,
    /// IPv4 addresses IPv4-mapped (`::ffff:a.b.c.d`) with `v6` false, as a
    /// parser that stores both families in 16 bytes has them. Ports go in as
    /// given (for ICMP see [`FlowKey::v4`]). The same key as [`FlowKey::v4`] /
    /// [`FlowKey::v6`] build from the same flow, without the conversions.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn from_bytes(
        vrf: VrfId,
        v6: bool,
        src: [u8; 16],
        dst: [u8; 16],
        proto: u8,
        src_port: u16,
        dst_port: u16,
    ) -> Self {
        let (s0, s1) = addr_words(src);
        let (d0, d1) = addr_words(dst);
        let w4 = (u64::from(src_port) << PORT_SRC_SHIFT)
            | (u64::from(dst_port) << PORT_DST_SHIFT)
            | (u64::from(vrf.get()) << VRF_SHIFT)
            | if v6 { V6_FLAG } else { 0 }
            | (u64::from(proto) << PROTO_SHIFT);
        FlowKey {
            words: [s0, s1, d0, d1, w4],
        }
    }

    /// An IPv4 flow. For ICMP pass the echo id as `src_port` and 0 as
    /// `dst_port` (or use [`FlowKey::icmp_v4`]).
    pub fn v4(
        vrf: VrfId,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        src_port: u16,
        dst_port: u16,
    ) -> Self {
        Self::from_bytes(
            vrf,
            false,
            src.to_ipv6_mapped().octets(),
            dst.to_ipv6_mapped().octets(),
            proto,
            src_port,
            dst_port,
        )
    }

    /// An IPv6 flow.
    pub fn v6(
        vrf: VrfId,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        proto: u8,
        src_port: u16,
        dst_port: u16,
    ) -> Self {
        Self::from_bytes(
            vrf,
            true,
            src.octets(),
            dst.octets(),
            proto,
            src_port,
            dst_port,
        )
    }

    /// An ICMP (IPv4) flow identified by its echo id.
    pub fn icmp_v4(vrf: VrfId, src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Self {
        Self::v4(vrf, src, dst, PROTO_ICMP, id, 0)
    }

    /// An ICMPv6 flow identified by its echo id.
    pub fn icmp_v6(vrf: VrfId, src: Ipv6Addr, dst: Ipv6Addr, id: u16) -> Self {
        Self::v6(vrf, src, dst, PROTO_ICMPV6, id, 0)
    }

    /// A flow of either family; both addresses must be of the same family.
    pub fn new(
        vrf: VrfId,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        src_port: u16,
        dst_port: u16,
    ) -> Result<Self, KeyError> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Ok(Self::v4(vrf, s, d, proto, src_port, dst_port)),
            (IpAddr::V6(s), IpAddr::V6(d)) => Ok(Self::v6(vrf, s, d, proto, src_port, dst_port)),
            _ => Err(KeyError::MixedFamily),
        }
    }

    /// The key of the opposite direction: addresses and ports swapped (for
    /// ICMP the echo id stays in the source-port position).
    pub fn reversed(&self) -> Self {
        let [s0, s1, d0, d1, w4] = self.words;
        let w4 = if is_icmp(self.proto()) {
            w4
        } else {
            let ports = w4 & 0xFFFF_FFFF;
            let swapped = ((ports & 0xFFFF) << 16) | (ports >> 16);
            (w4 & !0xFFFF_FFFF) | swapped
        };
        FlowKey {
            words: [d0, d1, s0, s1, w4],
        }
    }

    /// The VRF id.
    pub fn vrf(&self) -> VrfId {
        VrfId(((self.words[4] >> VRF_SHIFT) as u32) & VrfId::MAX)
    }

    /// The address family.
    pub fn family(&self) -> AddressFamily {
        if self.words[4] & V6_FLAG != 0 {
            AddressFamily::V6
        } else {
            AddressFamily::V4
        }
    }

    fn addr(&self, w0: u64, w1: u64) -> IpAddr {
        let v6 = Ipv6Addr::from(words_addr(w0, w1));
        match (self.family(), v6.to_ipv4_mapped()) {
            (AddressFamily::V4, Some(v4)) => IpAddr::V4(v4),
            _ => IpAddr::V6(v6),
        }
    }

    /// The source address.
    pub fn src(&self) -> IpAddr {
        self.addr(self.words[0], self.words[1])
    }

    /// The destination address.
    pub fn dst(&self) -> IpAddr {
        self.addr(self.words[2], self.words[3])
    }

    /// The IP protocol number.
    pub fn proto(&self) -> u8 {
        (self.words[4] >> PROTO_SHIFT) as u8
    }

    /// The source port (the echo id for ICMP).
    pub fn src_port(&self) -> u16 {
        (self.words[4] >> PORT_SRC_SHIFT) as u16
    }

    /// The destination port (0 for ICMP).
    pub fn dst_port(&self) -> u16 {
        (self.words[4] >> PORT_DST_SHIFT) as u16
    }

    /// The five encoded words (see the module docs).
    #[inline]
    pub fn as_words(&self) -> &[u64; 5] {
        &self.words
    }

    /// Rebuilds a key from its encoded words, as read back from a table.
    pub(crate) fn from_words(words: [u64; 5]) -> Self {
        FlowKey { words }
    }
}

impl core::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlowKey")
            .field("vrf", &self.vrf().get())
            .field("src", &self.src())
            .field("dst", &self.dst())
            .field("proto", &self.proto())
            .field("src_port", &self.src_port())
            .field("dst_port", &self.dst_port())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vrf(n: u32) -> VrfId {
        VrfId::new(n).unwrap()
    }

    #[test]
    fn v4_round_trip() {
        let k = FlowKey::v4(
            vrf(7),
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            PROTO_TCP,
            1234,
            80,
        );
        assert_eq!(k.vrf(), vrf(7));
        assert_eq!(k.family(), AddressFamily::V4);
        assert_eq!(k.src(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(k.dst(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(k.proto(), PROTO_TCP);
        assert_eq!(k.src_port(), 1234);
        assert_eq!(k.dst_port(), 80);
    }

    #[test]
    fn v6_round_trip_and_distinct_from_mapped_v4() {
        let s4 = Ipv4Addr::new(192, 0, 2, 1);
        let d4 = Ipv4Addr::new(192, 0, 2, 2);
        let k4 = FlowKey::v4(vrf(1), s4, d4, PROTO_UDP, 1, 2);
        let k6 = FlowKey::v6(
            vrf(1),
            s4.to_ipv6_mapped(),
            d4.to_ipv6_mapped(),
            PROTO_UDP,
            1,
            2,
        );
        assert_ne!(k4, k6);
        assert_eq!(k6.family(), AddressFamily::V6);
        assert_eq!(k6.src(), IpAddr::V6(s4.to_ipv6_mapped()));
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let k = FlowKey::v6(vrf(VrfId::MAX), a, b, PROTO_TCP, 443, 5555);
        assert_eq!(k.vrf().get(), VrfId::MAX);
        assert_eq!(k.src(), IpAddr::V6(a));
        assert_eq!(k.dst(), IpAddr::V6(b));
        assert_eq!(
            (k.src_port(), k.dst_port(), k.proto()),
            (443, 5555, PROTO_TCP)
        );
    }

    #[test]
    fn vrf_range_and_mixed_family() {
        assert_eq!(
            VrfId::new(VrfId::MAX + 1),
            Err(KeyError::VrfOutOfRange(VrfId::MAX + 1))
        );
        let r = FlowKey::new(
            vrf(0),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            PROTO_TCP,
            1,
            2,
        );
        assert_eq!(r, Err(KeyError::MixedFamily));
    }

    #[test]
    fn reversed_swaps_addresses_and_ports_but_not_icmp_id() {
        let s = Ipv4Addr::new(1, 1, 1, 1);
        let d = Ipv4Addr::new(2, 2, 2, 2);
        let k = FlowKey::v4(vrf(3), s, d, PROTO_TCP, 1000, 22);
        let r = k.reversed();
        assert_eq!(r.src(), IpAddr::V4(d));
        assert_eq!(r.dst(), IpAddr::V4(s));
        assert_eq!((r.src_port(), r.dst_port()), (22, 1000));
        assert_eq!(r.reversed(), k);
        let i = FlowKey::icmp_v4(vrf(3), s, d, 77);
        let ir = i.reversed();
        assert_eq!(
            (ir.src_port(), ir.dst_port(), ir.proto()),
            (77, 0, PROTO_ICMP)
        );
        assert_eq!(ir.src(), IpAddr::V4(d));
    }

    #[test]
    fn every_field_changes_the_key() {
        // 1.2.3.<a> -> 5.6.7.<b>, with the VRF, protocol and ports given.
        let k = |v: u32, a: u8, b: u8, proto: u8, sport: u16, dport: u16| {
            FlowKey::v4(
                vrf(v),
                Ipv4Addr::new(1, 2, 3, a),
                Ipv4Addr::new(5, 6, 7, b),
                proto,
                sport,
                dport,
            )
        };
        let base = k(1, 4, 8, 6, 10, 20);
        let variants = [
            k(2, 4, 8, 6, 10, 20),
            k(1, 5, 8, 6, 10, 20),
            k(1, 4, 9, 6, 10, 20),
            k(1, 4, 8, 17, 10, 20),
            k(1, 4, 8, 6, 11, 20),
            k(1, 4, 8, 6, 10, 21),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
    }

    #[test]
    fn from_bytes_is_the_same_key_as_v4_and_v6() {
        let s4 = Ipv4Addr::new(10, 1, 2, 3);
        let d4 = Ipv4Addr::new(192, 168, 7, 9);
        assert_eq!(
            FlowKey::from_bytes(
                vrf(9),
                false,
                s4.to_ipv6_mapped().octets(),
                d4.to_ipv6_mapped().octets(),
                PROTO_UDP,
                5000,
                4789
            ),
            FlowKey::v4(vrf(9), s4, d4, PROTO_UDP, 5000, 4789)
        );
        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let k6 = FlowKey::from_bytes(vrf(9), true, s6.octets(), d6.octets(), PROTO_TCP, 1, 2);
        assert_eq!(k6, FlowKey::v6(vrf(9), s6, d6, PROTO_TCP, 1, 2));
        // The family flag is part of the key: the same bytes as IPv4-mapped IPv6.
        let m = FlowKey::from_bytes(
            vrf(9),
            true,
            s4.to_ipv6_mapped().octets(),
            d4.to_ipv6_mapped().octets(),
            PROTO_UDP,
            5000,
            4789,
        );
        assert_ne!(m, FlowKey::v4(vrf(9), s4, d4, PROTO_UDP, 5000, 4789));
    }
}
