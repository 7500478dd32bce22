//! Small value types used by the config schema: PCI addresses, MAC addresses,
//! IP prefixes, hugepage sizes and IOVA modes. Each parses from the string form an
//! operator writes in TOML and prints back the canonical form.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

/// A PCI address (`domain:bus:device.function`), e.g. `0000:3b:00.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddr {
    /// PCI domain (segment), usually 0.
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number (0..=31).
    pub device: u8,
    /// Function number (0..=7).
    pub function: u8,
}

impl PciAddr {
    /// Builds an address, checking the device and function ranges.
    pub fn new(domain: u16, bus: u8, device: u8, function: u8) -> Result<Self, ValueError> {
        if device > 31 {
            return Err(ValueError(format!(
                "PCI device number {device:#x} is above 0x1f"
            )));
        }
        if function > 7 {
            return Err(ValueError(format!(
                "PCI function number {function} is above 7"
            )));
        }
        Ok(Self {
            domain,
            bus,
            device,
            function,
        })
    }
}

impl fmt::Display for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl FromStr for PciAddr {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ValueError(format!(
                "`{s}` is not a PCI address (expected domain:bus:device.function, e.g. 0000:3b:00.0)"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (domain, bus, rest) = match parts.as_slice() {
            [d, b, r] => (*d, *b, *r),
            [b, r] => ("0", *b, *r),
            _ => return Err(bad()),
        };
        let (dev, func) = rest.split_once('.').ok_or_else(bad)?;
        let hex16 = |x: &str, max_len: usize| -> Result<u16, ValueError> {
            if x.is_empty() || x.len() > max_len {
                return Err(bad());
            }
            u16::from_str_radix(x, 16).map_err(|_| bad())
        };
        let domain = hex16(domain, 4)?;
        let bus = u8::try_from(hex16(bus, 2)?).map_err(|_| bad())?;
        let device = u8::try_from(hex16(dev, 2)?).map_err(|_| bad())?;
        let function = u8::try_from(hex16(func, 1)?).map_err(|_| bad())?;
        PciAddr::new(domain, bus, device, function)
    }
}

/// An Ethernet MAC address, written `02:00:5e:10:00:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// True for the all-zero address.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// True when the group (multicast/broadcast) bit is set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ValueError(format!(
                "`{s}` is not a MAC address (expected 6 hex bytes separated by `:`)"
            ))
        };
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split(':') {
            let slot = out.get_mut(n).ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| bad())?;
            n += 1;
        }
        if n != 6 {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// An IPv4 or IPv6 address with a prefix length, e.g. `10.0.0.5/24` or `fd00::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    /// The address as written (host bits may be set for an interface address).
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub len: u8,
}

impl IpPrefix {
    /// Maximum prefix length for this address family.
    pub fn max_len(&self) -> u8 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = mask_u32(self.len);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = mask_u128(self.len);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    /// True when `addr` lies in this prefix (same family, same network bits).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = mask_u32(self.len);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = mask_u128(self.len);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// True when no host bit is set (a route prefix must be a network address).
    pub fn is_network(&self) -> bool {
        self.network() == self.addr
    }
}

fn mask_u32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

fn mask_u128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IpPrefix {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s.split_once('/').ok_or_else(|| {
            ValueError(format!(
                "`{s}` is not an address with a prefix length (e.g. 10.0.0.5/24)"
            ))
        })?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| ValueError(format!("`{a}` is not an IPv4 or IPv6 address")))?;
        let len: u8 = l
            .parse()
            .map_err(|_| ValueError(format!("`{l}` is not a prefix length")))?;
        let p = IpPrefix { addr, len };
        if len > p.max_len() {
            return Err(ValueError(format!(
                "prefix length {len} is above {} for {}",
                p.max_len(),
                if addr.is_ipv4() { "IPv4" } else { "IPv6" }
            )));
        }
        Ok(p)
    }
}

/// Size of the hugepages the data plane allocates from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HugepageSize {
    /// 2 MiB pages (`hugepages-2048kB`).
    #[default]
    Size2M,
    /// 1 GiB pages (`hugepages-1048576kB`).
    Size1G,
}

impl HugepageSize {
    /// Page size in KiB, as used in sysfs directory names.
    pub fn kib(self) -> u64 {
        match self {
            HugepageSize::Size2M => 2048,
            HugepageSize::Size1G => 1_048_576,
        }
    }

    /// Page size in MiB.
    pub fn mib(self) -> u64 {
        self.kib() / 1024
    }

    /// The sysfs directory name, `hugepages-<kib>kB`.
    pub fn sysfs_dir(self) -> String {
        format!("hugepages-{}kB", self.kib())
    }
}

impl fmt::Display for HugepageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HugepageSize::Size2M => "2M",
            HugepageSize::Size1G => "1G",
        })
    }
}

impl FromStr for HugepageSize {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "2M" | "2MB" | "2MiB" | "2048kB" => Ok(HugepageSize::Size2M),
            "1G" | "1GB" | "1GiB" | "1048576kB" => Ok(HugepageSize::Size1G),
            _ => Err(ValueError(format!(
                "`{s}` is not a hugepage size (expected \"2M\" or \"1G\")"
            ))),
        }
    }
}

/// DPDK IOVA mode (`--iova-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IovaMode {
    /// Virtual addresses as IOVA (needs an IOMMU with VFIO).
    Va,
    /// Physical addresses as IOVA.
    Pa,
}

impl fmt::Display for IovaMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IovaMode::Va => "va",
            IovaMode::Pa => "pa",
        })
    }
}

impl FromStr for IovaMode {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "va" => Ok(IovaMode::Va),
            "pa" => Ok(IovaMode::Pa),
            _ => Err(ValueError(format!(
                "`{s}` is not an IOVA mode (expected \"va\" or \"pa\")"
            ))),
        }
    }
}

macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}

serde_via_str!(PciAddr, MacAddr, IpPrefix, HugepageSize, IovaMode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_roundtrip_and_short_form() {
        let a: PciAddr = "0000:3b:00.1".parse().unwrap();
        assert_eq!(
            a,
            PciAddr {
                domain: 0,
                bus: 0x3b,
                device: 0,
                function: 1
            }
        );
        assert_eq!(a.to_string(), "0000:3b:00.1");
        let b: PciAddr = "af:10.7".parse().unwrap();
        assert_eq!(b.to_string(), "0000:af:10.7");
    }

    #[test]
    fn pci_rejects_bad_forms() {
        for s in [
            "",
            "0000:3b:00",
            "0000:3b:20.0",
            "0000:3b:00.8",
            "zz:00.0",
            "00000:3b:00.0",
            "1:2:3:4.0",
        ] {
            assert!(s.parse::<PciAddr>().is_err(), "{s} accepted");
        }
    }

    #[test]
    fn mac_parse() {
        let m: MacAddr = "02:00:5e:10:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:5e:10:00:01");
        assert!(!m.is_multicast());
        assert!("02:00:5e:10:00".parse::<MacAddr>().is_err());
        assert!("02:00:5e:10:00:01:02".parse::<MacAddr>().is_err());
        assert!("02:00:5e:10:00:1g".parse::<MacAddr>().is_err());
    }

    #[test]
    fn prefix_contains_and_network() {
        let p: IpPrefix = "10.1.2.3/24".parse().unwrap();
        assert!(p.contains("10.1.2.254".parse().unwrap()));
        assert!(!p.contains("10.1.3.1".parse().unwrap()));
        assert!(!p.is_network());
        assert_eq!(p.network().to_string(), "10.1.2.0");
        let z: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(z.contains("8.8.8.8".parse().unwrap()));
        let v6: IpPrefix = "fd00:1::/64".parse().unwrap();
        assert!(v6.is_network());
        assert!(v6.contains("fd00:1::5".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpPrefix>().is_err());
        assert!("fd00::/129".parse::<IpPrefix>().is_err());
    }

    #[test]
    fn hugepage_size_names() {
        assert_eq!(
            "2M".parse::<HugepageSize>().unwrap().sysfs_dir(),
            "hugepages-2048kB"
        );
        assert_eq!(
            "1G".parse::<HugepageSize>().unwrap().sysfs_dir(),
            "hugepages-1048576kB"
        );
        assert!("4M".parse::<HugepageSize>().is_err());
    }
}
