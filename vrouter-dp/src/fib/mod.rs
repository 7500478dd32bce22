//! Forwarding state: interfaces (vifs), next-hops, VRFs with IPv4/IPv6 longest-prefix
//! match tables and bridge (MAC) tables, the MPLS label and VXLAN VNI tables, and the
//! publication of all of it to the workers as immutable snapshots.
//!
//! The model follows Tungsten Fabric's vRouter objects (`vr_interface_req`,
//! `vr_nexthop_req`, `vr_route_req`, `vr_mpls_req`, `vr_vxlan_req`):
//!
//! * [`Fib`] is the control-side builder. It takes a batch of [`Update`]s, validates
//!   every one of them against the state the batch itself builds up, and only then
//!   applies them, so a batch is all-or-nothing. The result is a new
//!   [`FibSnapshot`] that shares every untouched piece with the previous one.
//! * [`FibSnapshot`] is what a worker reads: immutable, `Send + Sync`, cheap lookups.
//! * [`rcu`] publishes snapshots ([`rcu::Publisher`]) and lets each worker hold one
//!   consistent version per burst ([`rcu::Reader`]); old versions are released on the
//!   publishing thread once every worker has passed a quiescent point.
//! * [`lpm`] is the longest-prefix-match structure: for IPv4 a DIR-24-8 table (as
//!   DPDK's `rte_fib`) whose `tbl24` is split into copy-on-write chunks, for IPv6 a
//!   hash table of (prefix, length) probed per length in use ([`prefix_hash`], as
//!   VPP's IPv6 FIB).

pub mod cow;
pub mod error;
pub mod lpm;
pub mod nexthop;
pub mod prefix_hash;
pub mod rcu;
pub mod table;
pub mod vif;
pub mod vni;

pub use error::FibError;
pub use lpm::{Lpm, LpmIndex, RouteTarget};
pub use nexthop::{
    ecmp_pick, EcmpMember, FloodMember, NextHop, NhKind, NhSpec, TunnelNh, TunnelSpec, TunnelType,
};
pub use table::{
    BridgeEntry, Fib, FibConfig, FibSnapshot, FlowNhUsers, LabelEntry, NoFlows, Payload, Update,
    Vrf,
};
pub use vif::{PolicyAction, PolicyRule, PortRange, Vif, VifKind};

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

macro_rules! id_newtype {
    ($(#[$m:meta])* $name:ident($inner:ty), $label:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[repr(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($label, " {}"), self.0)
            }
        }
    };
}

id_newtype!(
    /// An interface (vif) index.
    VifId(u16),
    "vif"
);
id_newtype!(
    /// A next-hop index. Next-hop 0 always exists and discards.
    NhId(u32),
    "next-hop"
);
id_newtype!(
    /// A VRF (routing instance) index.
    VrfId(u16),
    "vrf"
);
id_newtype!(
    /// An MPLS label (20 bits).
    Label(u32),
    "label"
);
id_newtype!(
    /// A VXLAN network identifier (24 bits).
    Vni(u32),
    "vni"
);

impl NhId {
    /// The next-hop that always exists and discards.
    pub const DISCARD: NhId = NhId(0);
}

impl Label {
    /// The largest valid label value.
    pub const MAX: u32 = (1 << 20) - 1;
}

impl Vni {
    /// The largest valid VNI value.
    pub const MAX: u32 = (1 << 24) - 1;
}

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Whether the group bit is set (broadcast or multicast).
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An IPv4 or IPv6 prefix with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// A prefix; fails when `len` is longer than the address or host bits are set.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, FibError> {
        let width = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if len > width {
            return Err(FibError::PrefixLength { addr, len });
        }
        let p = Self { addr, len };
        if p.key() & !mask(len, width) != 0 {
            return Err(FibError::HostBits { addr, len });
        }
        Ok(p)
    }

    /// An IPv4 prefix (see [`Prefix::new`]).
    pub fn v4(addr: Ipv4Addr, len: u8) -> Result<Self, FibError> {
        Self::new(IpAddr::V4(addr), len)
    }

    /// An IPv6 prefix (see [`Prefix::new`]).
    pub fn v6(addr: Ipv6Addr, len: u8) -> Result<Self, FibError> {
        Self::new(IpAddr::V6(addr), len)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this is IPv6.
    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// Whether `ip` lies inside the prefix (false across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(a)) => {
                (u128::from(u32::from(a)) ^ self.key()) & mask(self.len, 32) == 0
            }
            (IpAddr::V6(_), IpAddr::V6(a)) => {
                (u128::from(a) ^ self.key()) & mask(self.len, 128) == 0
            }
            _ => false,
        }
    }

    /// The address as an integer (IPv4 in the low 32 bits).
    pub(crate) fn key(&self) -> u128 {
        match self.addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The network mask of `len` bits in an address of `width` bits, as an integer.
#[inline]
pub(crate) fn mask(len: u8, width: u8) -> u128 {
    let all = if width >= 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if len == 0 {
        0
    } else if len >= width {
        all
    } else {
        all & !((1u128 << (width - len)) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask(0, 32), 0);
        assert_eq!(mask(8, 32), 0xff00_0000);
        assert_eq!(mask(32, 32), 0xffff_ffff);
        assert_eq!(mask(1, 128), 1u128 << 127);
        assert_eq!(mask(128, 128), u128::MAX);
        assert_eq!(mask(64, 128), u128::MAX << 64);
    }

    #[test]
    fn prefix_validation() {
        assert!(Prefix::v4(Ipv4Addr::new(10, 0, 0, 0), 24).is_ok());
        let e = Prefix::v4(Ipv4Addr::new(10, 0, 0, 1), 24).unwrap_err();
        assert_eq!(e.to_string(), "prefix 10.0.0.1/24 has host bits set");
        let e = Prefix::v4(Ipv4Addr::new(10, 0, 0, 0), 33).unwrap_err();
        assert_eq!(e.to_string(), "prefix length 33 is too long for 10.0.0.0");
        let p = Prefix::v4(Ipv4Addr::new(10, 1, 0, 0), 16).unwrap();
        assert!(p.contains(IpAddr::V4(Ipv4Addr::new(10, 1, 200, 3))));
        assert!(!p.contains(IpAddr::V4(Ipv4Addr::new(10, 2, 0, 3))));
        assert_eq!(p.to_string(), "10.1.0.0/16");
    }
}

#[cfg(test)]
pub(crate) mod test_rng {
    /// A xorshift generator for the table tests: the same sequence on every run.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }
}
