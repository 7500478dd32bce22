//! Values shared by IPv4 and IPv6: protocol numbers and the DSCP/ECN byte.

/// An IP protocol number (IPv4 protocol / IPv6 next header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: Self = Self(0);
    /// ICMP for IPv4.
    pub const ICMP: Self = Self(1);
    /// IPv4 in IP.
    pub const IPIP: Self = Self(4);
    /// TCP.
    pub const TCP: Self = Self(6);
    /// UDP.
    pub const UDP: Self = Self(17);
    /// IPv6 in IP.
    pub const IPV6: Self = Self(41);
    /// IPv6 routing header.
    pub const IPV6_ROUTE: Self = Self(43);
    /// IPv6 fragment header.
    pub const IPV6_FRAG: Self = Self(44);
    /// GRE.
    pub const GRE: Self = Self(47);
    /// IPsec ESP.
    pub const ESP: Self = Self(50);
    /// IPsec AH.
    pub const AH: Self = Self(51);
    /// ICMP for IPv6.
    pub const ICMPV6: Self = Self(58);
    /// IPv6 "no next header".
    pub const IPV6_NO_NEXT: Self = Self(59);
    /// IPv6 destination options.
    pub const IPV6_OPTS: Self = Self(60);
    /// Mobility header.
    pub const MOBILITY: Self = Self(135);
    /// Host identity protocol.
    pub const HIP: Self = Self(139);
    /// Shim6.
    pub const SHIM6: Self = Self(140);
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        Self(v)
    }
}

/// DSCP (upper 6 bits) of a TOS / traffic-class byte.
#[inline]
pub const fn dscp(tos: u8) -> u8 {
    tos >> 2
}

/// ECN (lower 2 bits) of a TOS / traffic-class byte.
#[inline]
pub const fn ecn(tos: u8) -> u8 {
    tos & 3
}

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::checksum;

/// A source/destination address pair of one family, for pseudo-header checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpPair {
    /// IPv4 source and destination.
    V4(Ipv4Addr, Ipv4Addr),
    /// IPv6 source and destination.
    V6(Ipv6Addr, Ipv6Addr),
}

impl IpPair {
    /// Pair two addresses; `None` when their families differ.
    pub fn new(src: IpAddr, dst: IpAddr) -> Option<Self> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some(Self::V4(s, d)),
            (IpAddr::V6(s), IpAddr::V6(d)) => Some(Self::V6(s, d)),
            _ => None,
        }
    }
    /// Partial sum of the pseudo-header for `protocol` and upper-layer `length`.
    #[inline]
    pub fn pseudo_header(&self, protocol: IpProtocol, length: u32) -> u16 {
        match self {
            Self::V4(s, d) => checksum::pseudo_header_v4(*s, *d, protocol.0, length),
            Self::V6(s, d) => checksum::pseudo_header_v6(s, d, protocol.0, length),
        }
    }
    /// The source address.
    pub fn src(&self) -> IpAddr {
        match self {
            Self::V4(s, _) => IpAddr::V4(*s),
            Self::V6(s, _) => IpAddr::V6(*s),
        }
    }
    /// The destination address.
    pub fn dst(&self) -> IpAddr {
        match self {
            Self::V4(_, d) => IpAddr::V4(*d),
            Self::V6(_, d) => IpAddr::V6(*d),
        }
    }
}
