//! Flow keys (VRF + 5-tuple) extracted from IPv4 and IPv6 packets, and the flow hash.
//!
//! Addresses are stored as 16 bytes for both families so one key type serves both: an
//! IPv4 address is stored IPv4-mapped (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) and
//! [`FlowKey::family`] tells which family the key belongs to. For ICMP and ICMPv6 echo
//! request/reply the identifier is the flow's port on both sides (`src_port == dst_port
//! == ident`), so a request and its reply map to mirrored keys; other ICMP messages and
//! protocols without ports have both ports 0, as do non-first IP fragments (their
//! transport header is in the first fragment; [`FlowInfo::fragment`] says which case).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::{Error, Result};
use super::ethernet::{self, EtherType, L2Header};
use super::icmp;
use super::ip::IpProtocol;
use super::ipv4;
use super::ipv6;
use super::{rd16, PacketBuf};

/// A VRF (routing instance) id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct VrfId(pub u32);

/// Address family of a [`FlowKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum AddrFamily {
    /// IPv4 (addresses stored IPv4-mapped).
    #[default]
    V4 = 4,
    /// IPv6.
    V6 = 6,
}

/// A flow key: VRF, addresses, protocol and ports. `Copy`, 48 bytes, fixed layout.
///
/// The addresses come first, each on its own 16-byte-aligned half of a 32-byte
/// block: a copy of the key (the compiler copies in 16-byte pieces) then holds
/// each address in one store, so a later read of part of an address is forwarded
/// from that store instead of waiting for two to reach the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C, align(16))]
pub struct FlowKey {
    /// Source address (IPv4-mapped for IPv4).
    pub src: [u8; 16],
    /// Destination address (IPv4-mapped for IPv4).
    pub dst: [u8; 16],
    /// VRF of the flow.
    pub vrf: VrfId,
    /// Source port (ICMP echo: identifier).
    pub src_port: u16,
    /// Destination port (ICMP echo: identifier).
    pub dst_port: u16,
    /// IP protocol.
    pub proto: u8,
    /// Address family.
    pub family: AddrFamily,
}

/// First entropy port for the outer UDP source port (the dynamic range, RFC 6335).
pub const ENTROPY_PORT_MIN: u16 = 49152;
/// Last entropy port.
pub const ENTROPY_PORT_MAX: u16 = 65535;

#[inline]
const fn mapped(a: Ipv4Addr) -> [u8; 16] {
    let o = a.octets();
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, o[0], o[1], o[2], o[3],
    ]
}

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;
const K2: u64 = 0x8ebc_6af0_9c88_c6e3;
const K3: u64 = 0x5899_65cc_7537_4cc3;

impl FlowKey {
    /// An IPv4 key.
    #[inline]
    pub const fn new_v4(
        vrf: VrfId,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        src_port: u16,
        dst_port: u16,
    ) -> Self {
        Self {
            vrf,
            src: mapped(src),
            dst: mapped(dst),
            src_port,
            dst_port,
            proto,
            family: AddrFamily::V4,
        }
    }
    /// An IPv6 key.
    #[inline]
    pub const fn new_v6(
        vrf: VrfId,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        proto: u8,
        src_port: u16,
        dst_port: u16,
    ) -> Self {
        Self {
            vrf,
            src: src.octets(),
            dst: dst.octets(),
            src_port,
            dst_port,
            proto,
            family: AddrFamily::V6,
        }
    }
    /// The source address.
    pub fn src_ip(&self) -> IpAddr {
        Self::ip(self.family, &self.src)
    }
    /// The destination address.
    pub fn dst_ip(&self) -> IpAddr {
        Self::ip(self.family, &self.dst)
    }
    fn ip(family: AddrFamily, b: &[u8; 16]) -> IpAddr {
        match family {
            AddrFamily::V4 => IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15])),
            AddrFamily::V6 => IpAddr::V6(Ipv6Addr::from(*b)),
        }
    }
    /// The key of the reverse direction (addresses and ports swapped).
    #[inline]
    pub const fn reversed(&self) -> Self {
        Self {
            vrf: self.vrf,
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
            family: self.family,
        }
    }
    /// The flow hash with a fixed seed (deterministic across runs and lcores).
    #[inline]
    pub fn hash(&self) -> u32 {
        self.hash_with_seed(0)
    }
    /// The flow hash with an explicit seed: a folded-multiply mix of all key fields.
    #[inline]
    pub fn hash_with_seed(&self, seed: u64) -> u32 {
        let w = |b: &[u8; 16], i: usize| {
            u64::from_le_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        let ports = (u64::from(self.vrf.0) << 32)
            | (u64::from(self.src_port) << 16)
            | u64::from(self.dst_port);
        let pf = (u64::from(self.proto) << 8) | self.family as u64;
        let a = mix(w(&self.src, 0) ^ K0 ^ seed, w(&self.src, 8) ^ K1);
        let b = mix(w(&self.dst, 0) ^ K2, w(&self.dst, 8) ^ K3 ^ seed);
        let c = mix(ports ^ K1, pf ^ K2);
        let h = mix(a ^ b ^ K3, c ^ K0);
        (h ^ (h >> 32)) as u32
    }
}

/// Where the packet is a fragment, if it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FragmentKind {
    /// A whole datagram.
    #[default]
    None,
    /// The first fragment (the transport header is present).
    First,
    /// A later fragment (no transport header; ports are 0).
    Later,
}

/// A flow key plus the offsets the pipeline needs to rewrite the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowInfo {
    /// The key.
    pub key: FlowKey,
    /// Offset of the IP header in the parsed bytes.
    pub l3_offset: u16,
    /// Offset of the transport header (or of the fragment data for a later fragment).
    pub l4_offset: u16,
    /// Fragment status.
    pub fragment: FragmentKind,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 TOS or IPv6 traffic class.
    pub tos: u8,
}

#[inline]
fn ports(proto: IpProtocol, l4: &[u8], v6: bool) -> Result<(u16, u16)> {
    match proto {
        IpProtocol::TCP | IpProtocol::UDP | PROTO_SCTP | PROTO_UDPLITE => {
            if l4.len() < 4 {
                return Err(Error::TooShort);
            }
            Ok((rd16(l4, 0), rd16(l4, 2)))
        }
        IpProtocol::ICMP | IpProtocol::ICMPV6 => {
            if l4.len() < icmp::HEADER_LEN {
                return Err(Error::TooShort);
            }
            let echo = if v6 {
                icmp::is_echo_v6(l4[0])
            } else {
                icmp::is_echo_v4(l4[0])
            };
            if echo {
                let id = rd16(l4, 4);
                Ok((id, id))
            } else {
                Ok((0, 0))
            }
        }
        _ => Ok((0, 0)),
    }
}

const PROTO_SCTP: IpProtocol = IpProtocol(132);
const PROTO_UDPLITE: IpProtocol = IpProtocol(136);

/// Extract the flow of an IPv4 packet starting at `packet[0]`. `base` is added to the
/// reported offsets (the length of what precedes `packet` in the frame).
#[inline]
pub fn extract_ipv4(vrf: VrfId, packet: &[u8], base: usize) -> Result<FlowInfo> {
    let ip = ipv4::Packet::new_checked(packet)?;
    let hl = ip.header_len();
    let proto = ip.protocol();
    let (fragment, (sp, dp)) = if ip.is_later_fragment() {
        (FragmentKind::Later, (0, 0))
    } else {
        let f = if ip.more_frags() {
            FragmentKind::First
        } else {
            FragmentKind::None
        };
        (f, ports(proto, ip.payload(), false)?)
    };
    Ok(FlowInfo {
        key: FlowKey::new_v4(vrf, ip.src_addr(), ip.dst_addr(), proto.0, sp, dp),
        l3_offset: base as u16,
        l4_offset: (base + hl) as u16,
        fragment,
        ttl: ip.ttl(),
        tos: ip.tos(),
    })
}

/// Extract the flow of an IPv6 packet starting at `packet[0]` (extension headers are
/// walked). `base` is added to the reported offsets.
#[inline]
pub fn extract_ipv6(vrf: VrfId, packet: &[u8], base: usize) -> Result<FlowInfo> {
    let ip = ipv6::Packet::new_checked(packet)?;
    let t = ip.transport()?;
    let (fragment, (sp, dp)) = match t.fragment {
        Some(f) if f.offset != 0 => (FragmentKind::Later, (0, 0)),
        f => {
            let kind = if f.is_some() {
                FragmentKind::First
            } else {
                FragmentKind::None
            };
            let l4 = packet
                .get(t.offset..ip.total_len())
                .ok_or(Error::TooShort)?;
            (kind, ports(t.protocol, l4, true)?)
        }
    };
    let mut src = [0u8; 16];
    src.copy_from_slice(ip.src_bytes());
    let mut dst = [0u8; 16];
    dst.copy_from_slice(ip.dst_bytes());
    Ok(FlowInfo {
        key: FlowKey {
            vrf,
            src,
            dst,
            src_port: sp,
            dst_port: dp,
            proto: t.protocol.0,
            family: AddrFamily::V6,
        },
        l3_offset: base as u16,
        l4_offset: (base + t.offset) as u16,
        fragment,
        ttl: ip.hop_limit(),
        tos: ip.traffic_class(),
    })
}

/// Extract the flow of a bare IP packet (an L3 tunnel payload), choosing the family from
/// the version nibble ([`Error::BadVersion`] when it is neither 4 nor 6).
#[inline]
pub fn extract_ip(vrf: VrfId, packet: &[u8]) -> Result<FlowInfo> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => extract_ipv4(vrf, packet, 0),
        Some(6) => extract_ipv6(vrf, packet, 0),
        Some(_) => Err(Error::BadVersion),
        None => Err(Error::TooShort),
    }
}

/// The common case of [`extract_ethernet`], read at constant offsets: untagged IPv4
/// without options, not a fragment, TCP or UDP. `None` means the frame needs
/// [`extract_ethernet`], which gives the same result for every frame this accepts.
/// Inlined, so that a caller that keeps the two paths apart builds the result in
/// registers.
#[inline(always)]
pub fn extract_ethernet_fast(vrf: VrfId, frame: &[u8]) -> Option<FlowInfo> {
    let f: &[u8; 38] = frame.get(..38)?.try_into().ok()?;
    if f[12] != 0x08 || f[13] != 0x00 || f[14] != 0x45 {
        return None;
    }
    let tl = usize::from(u16::from_be_bytes([f[16], f[17]]));
    // MF or a fragment offset: the general path classifies the fragment.
    if tl < ipv4::HEADER_LEN + 4
        || ethernet::HEADER_LEN + tl > frame.len()
        || f[20] & 0x3f != 0
        || f[21] != 0
    {
        return None;
    }
    let proto = f[23];
    if proto != IpProtocol::TCP.0 && proto != IpProtocol::UDP.0 {
        return None;
    }
    // IPv4-mapped, built as one 128-bit value each: bytewise stores into the
    // array would be read back as wider words (hashing, comparing), which costs
    // a failed store-to-load forward per read.
    let v4 = |a: [u8; 4]| ((0xffff_u128 << 32) | u128::from(u32::from_be_bytes(a))).to_be_bytes();
    let src = v4([f[26], f[27], f[28], f[29]]);
    let dst = v4([f[30], f[31], f[32], f[33]]);
    Some(FlowInfo {
        key: FlowKey {
            vrf,
            src,
            dst,
            src_port: u16::from_be_bytes([f[34], f[35]]),
            dst_port: u16::from_be_bytes([f[36], f[37]]),
            proto,
            family: AddrFamily::V4,
        },
        l3_offset: ethernet::HEADER_LEN as u16,
        l4_offset: (ethernet::HEADER_LEN + ipv4::HEADER_LEN) as u16,
        fragment: FragmentKind::None,
        ttl: f[22],
        tos: f[15],
    })
}

/// Extract the flow of an Ethernet frame (up to two VLAN tags). A non-IP EtherType gives
/// [`Error::UnsupportedEtherType`].
#[inline]
pub fn extract_ethernet(vrf: VrfId, frame: &[u8]) -> Result<FlowInfo> {
    if let Some(fi) = extract_ethernet_fast(vrf, frame) {
        return Ok(fi);
    }
    extract_ethernet_general(vrf, frame)
}

/// [`extract_ethernet`] without its common-case shortcut: for a caller that
/// has just tried [`extract_ethernet_fast`] and keeps the two results apart.
pub fn extract_ethernet_general(vrf: VrfId, frame: &[u8]) -> Result<FlowInfo> {
    // Untagged IPv4 / IPv6.
    let et = match frame.get(12..14) {
        Some(b) => EtherType(u16::from_be_bytes([b[0], b[1]])),
        None => return Err(Error::TooShort),
    };
    let (et, off) = if et.is_vlan_tpid() {
        let l2 = L2Header::parse(frame)?;
        (l2.ethertype, l2.header_len)
    } else {
        (et, ethernet::HEADER_LEN)
    };
    let l3 = frame.get(off..).ok_or(Error::TooShort)?;
    match et {
        EtherType::IPV4 => extract_ipv4(vrf, l3, off),
        EtherType::IPV6 => extract_ipv6(vrf, l3, off),
        _ => Err(Error::UnsupportedEtherType),
    }
}

/// The flow hash of a packet: the NIC's RSS hash when the buffer carries one, otherwise
/// [`FlowKey::hash`].
#[inline]
pub fn flow_hash<B: PacketBuf + ?Sized>(buf: &B, key: &FlowKey) -> u32 {
    match buf.rss_hash() {
        Some(h) => h,
        None => key.hash(),
    }
}

/// Map a 32-bit flow hash into the entropy port range 49152..=65535 as
/// `49152 + (hash * 16384) >> 32` (the mapping TF uses).
#[inline]
pub const fn entropy_port(hash: u32) -> u16 {
    let range = (ENTROPY_PORT_MAX - ENTROPY_PORT_MIN) as u64 + 1;
    ENTROPY_PORT_MIN + ((hash as u64 * range) >> 32) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapBuf;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The shortcut gives exactly what the general path gives, for every
        /// frame it accepts; it accepts the plain IPv4 TCP/UDP frame, and
        /// single-byte changes to the fields it checks send frames to the
        /// general path rather than to a wrong result.
        #[test]
        fn shortcut_agrees_with_the_general_path(
            proto in prop_oneof![Just(6u8), Just(17u8), any::<u8>()],
            addrs in any::<[u8; 8]>(),
            ports in any::<[u8; 4]>(),
            ttl_tos in any::<[u8; 2]>(),
            extra in 0usize..32,
            flip in proptest::option::of((0usize..42, any::<u8>())),
            vrf in any::<u32>(),
        ) {
            let mut f = vec![0u8; 14 + 20 + 8 + extra];
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let tl = (20 + 8 + extra) as u16;
            f[14] = 0x45;
            f[15] = ttl_tos[1];
            f[16..18].copy_from_slice(&tl.to_be_bytes());
            f[22] = ttl_tos[0];
            f[23] = proto;
            f[26..34].copy_from_slice(&addrs);
            f[34..38].copy_from_slice(&ports);
            let plain = proto == 6 || proto == 17;
            if let Some((at, v)) = flip {
                f[at] = v;
            }
            let fast = extract_ethernet_fast(VrfId(vrf), &f);
            if flip.is_none() {
                prop_assert_eq!(fast.is_some(), plain);
            }
            if let Some(fi) = fast {
                prop_assert_eq!(Ok(fi), extract_ethernet_general(VrfId(vrf), &f));
            }
            prop_assert_eq!(
                extract_ethernet(VrfId(vrf), &f),
                fast.map_or_else(|| extract_ethernet_general(VrfId(vrf), &f), Ok)
            );
        }
    }

    fn eth_ipv4_udp() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14..34].copy_from_slice(&[
            0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f[34..42].copy_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0]);
        f
    }

    #[test]
    fn ipv4_udp_key() {
        let f = eth_ipv4_udp();
        let fi = extract_ethernet(VrfId(3), &f).unwrap();
        assert_eq!(
            fi.key,
            FlowKey::new_v4(
                VrfId(3),
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
                17,
                12345,
                53
            )
        );
        assert_eq!(fi.key.src[..12], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!((fi.l3_offset, fi.l4_offset, fi.ttl), (14, 34, 64));
        assert_eq!(fi.key.src_ip(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(fi.key.reversed().reversed(), fi.key);
        assert_eq!(fi.key.reversed().src_port, 53);
    }

    #[test]
    fn later_fragment_has_no_ports_and_truncation_errors() {
        let mut f = eth_ipv4_udp();
        f[20..22].copy_from_slice(&[0x00, 0x10]);
        let fi = extract_ethernet(VrfId(0), &f).unwrap();
        assert_eq!(fi.fragment, FragmentKind::Later);
        assert_eq!((fi.key.src_port, fi.key.dst_port), (0, 0));
        let mut f = eth_ipv4_udp();
        f[16..18].copy_from_slice(&[0, 22]);
        assert_eq!(
            extract_ethernet(VrfId(0), &f[..36]).unwrap_err(),
            Error::TooShort
        );
        let mut arp = eth_ipv4_udp();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(
            extract_ethernet(VrfId(0), &arp).unwrap_err(),
            Error::UnsupportedEtherType
        );
        assert_eq!(
            extract_ip(VrfId(0), &[0x55]).unwrap_err(),
            Error::BadVersion
        );
    }

    #[test]
    fn hash_depends_on_every_field_and_rss_wins() {
        let k = FlowKey::new_v4(
            VrfId(1),
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(2, 2, 2, 2),
            6,
            1000,
            80,
        );
        let h = k.hash();
        assert_eq!(h, k.hash());
        let variants = [
            FlowKey { vrf: VrfId(2), ..k },
            FlowKey { proto: 17, ..k },
            FlowKey {
                src_port: 1001,
                ..k
            },
            FlowKey { dst_port: 81, ..k },
            k.reversed(),
            FlowKey {
                family: AddrFamily::V6,
                ..k
            },
        ];
        for v in variants {
            assert_ne!(v.hash(), h, "{v:?}");
        }
        assert_ne!(k.hash_with_seed(1), h);
        let mut b = HeapBuf::from_bytes(&[0u8; 64]);
        assert_eq!(flow_hash(&b, &k), h);
        b.set_rss_hash(Some(0xdead_beef));
        assert_eq!(flow_hash(&b, &k), 0xdead_beef);
    }

    #[test]
    fn entropy_range() {
        assert_eq!(entropy_port(0), 49152);
        assert_eq!(entropy_port(u32::MAX), 65535);
        assert_eq!(entropy_port(0x8000_0000), 49152 + 8192);
    }
}
