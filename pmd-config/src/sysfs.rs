//! Readers of the host's sysfs and procfs state, all through a [`Host`] (so under its
//! root directory).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use crate::host::Host;
use crate::types::{HugepageSize, IpPrefix, PciAddr, ValueError};

/// `/sys/bus/pci/devices`.
pub const PCI_DEVICES: &str = "/sys/bus/pci/devices";
/// `/sys/bus/pci/drivers`.
pub const PCI_DRIVERS: &str = "/sys/bus/pci/drivers";
/// `/sys/kernel/iommu_groups`.
pub const IOMMU_GROUPS: &str = "/sys/kernel/iommu_groups";

/// Host path of a PCI device's sysfs directory.
pub fn pci_dir(addr: PciAddr) -> PathBuf {
    Path::new(PCI_DEVICES).join(addr.to_string())
}

/// Parses a kernel CPU list (`0-3,8,10-11`).
pub fn parse_cpu_list(s: &str) -> Result<Vec<u32>, ValueError> {
    let mut v = Vec::new();
    for part in s.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || ValueError(format!("`{part}` is not a CPU or CPU range"));
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.parse().map_err(|_| bad())?;
                let b: u32 = b.parse().map_err(|_| bad())?;
                if b < a || b - a > 65536 {
                    return Err(bad());
                }
                v.extend(a..=b);
            }
            None => v.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(v)
}

/// Formats CPUs as a compact kernel CPU list.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut c = cpus.to_vec();
    c.sort_unstable();
    c.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&start) = c.get(i) {
        let mut end = start;
        while c.get(i + 1) == Some(&(end + 1)) {
            end += 1;
            i += 1;
        }
        out.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

fn read_trim(host: &dyn Host, p: &Path) -> Option<String> {
    host.read_file(p).ok().map(|s| s.trim().to_string())
}

fn read_hex(host: &dyn Host, p: &Path) -> Option<u32> {
    let s = read_trim(host, p)?;
    u32::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

fn read_num<T: std::str::FromStr>(host: &dyn Host, p: &Path) -> Option<T> {
    read_trim(host, p)?.parse().ok()
}

/// What sysfs says about one PCI device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    /// Address.
    pub addr: PciAddr,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Bound driver, if any.
    pub driver: Option<String>,
    /// NUMA node (`None` when the platform reports -1).
    pub numa_node: Option<u32>,
    /// IOMMU group number, if the IOMMU is on.
    pub iommu_group: Option<u32>,
    /// `driver_override`, if set.
    pub driver_override: Option<String>,
}

impl PciDevice {
    /// A readable model name for the NICs this project knows.
    pub fn model(&self) -> String {
        let name = match (self.vendor, self.device) {
            (0x8086, 0x1533) => "Intel I210 Gigabit",
            (0x8086, 0x10fb) => "Intel 82599ES 10-Gigabit SFI/SFP+",
            (0x8086, 0x10ed) => "Intel 82599 Virtual Function",
            (0x8086, 0x1572) => "Intel X710 10GbE SFP+",
            (0x8086, 0x154c) => "Intel X710/XL710 Virtual Function",
            (0x8086, 0x1592) => "Intel E810-C 100GbE QSFP",
            (0x8086, 0x159b) => "Intel E810-XXV 25GbE SFP",
            (0x8086, 0x1889) => "Intel E810 Adaptive Virtual Function",
            (0x15b3, 0x1017) => "Mellanox ConnectX-5",
            (0x15b3, 0x101b) => "Mellanox ConnectX-6",
            (0x1af4, 0x1000) | (0x1af4, 0x1041) => "virtio network device",
            _ => "",
        };
        if name.is_empty() {
            format!("[{:04x}:{:04x}]", self.vendor, self.device)
        } else {
            format!("{name} [{:04x}:{:04x}]", self.vendor, self.device)
        }
    }
}

/// Reads a PCI device's state; `None` when it is not present.
pub fn pci_device(host: &dyn Host, addr: PciAddr) -> Option<PciDevice> {
    let dir = pci_dir(addr);
    if !host.exists(&dir) {
        return None;
    }
    let link_name = |name: &str| -> Option<String> {
        let t = host.read_link(&dir.join(name)).ok()?;
        t.file_name().map(|n| n.to_string_lossy().into_owned())
    };
    let numa: Option<i64> = read_num(host, &dir.join("numa_node"));
    Some(PciDevice {
        addr,
        vendor: read_hex(host, &dir.join("vendor"))
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(0),
        device: read_hex(host, &dir.join("device"))
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(0),
        driver: link_name("driver"),
        numa_node: numa.and_then(|n| u32::try_from(n).ok()),
        iommu_group: link_name("iommu_group").and_then(|g| g.parse().ok()),
        driver_override: read_trim(host, &dir.join("driver_override"))
            .filter(|s| !s.is_empty() && s != "(null)"),
    })
}

/// Group numbers under `/sys/kernel/iommu_groups` (empty when the IOMMU is off).
pub fn iommu_groups(host: &dyn Host) -> Vec<u32> {
    let mut v: Vec<u32> = host
        .read_dir(Path::new(IOMMU_GROUPS))
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// Devices in IOMMU group `group`.
pub fn iommu_group_devices(host: &dyn Host, group: u32) -> Vec<PciAddr> {
    let p = Path::new(IOMMU_GROUPS)
        .join(group.to_string())
        .join("devices");
    host.read_dir(&p)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// SR-IOV state of a physical function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sriov {
    /// `sriov_totalvfs`.
    pub total: u32,
    /// `sriov_numvfs`.
    pub num: u32,
    /// `(index, address)` of each `virtfn<N>` link.
    pub vfs: Vec<(u16, PciAddr)>,
}

/// Reads a PF's SR-IOV state; `None` when the device has no SR-IOV capability.
pub fn sriov(host: &dyn Host, pf: PciAddr) -> Option<Sriov> {
    let dir = pci_dir(pf);
    let total = read_num(host, &dir.join("sriov_totalvfs"))?;
    let num = read_num(host, &dir.join("sriov_numvfs")).unwrap_or(0);
    let mut vfs: Vec<(u16, PciAddr)> = host
        .read_dir(&dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| {
            let idx: u16 = n.strip_prefix("virtfn")?.parse().ok()?;
            let t = host.read_link(&dir.join(n)).ok()?;
            let a = t.file_name()?.to_str()?.parse().ok()?;
            Some((idx, a))
        })
        .collect();
    vfs.sort_unstable();
    Some(Sriov { total, num, vfs })
}

/// Free and reserved hugepages of one size, on one node or system-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hugepages {
    /// `nr_hugepages`.
    pub nr: u64,
    /// `free_hugepages`.
    pub free: u64,
}

/// Host path of the hugepage directory of `size`, per node or (`None`) system-wide.
pub fn hugepage_dir(node: Option<usize>, size: HugepageSize) -> PathBuf {
    match node {
        Some(n) => PathBuf::from(format!("/sys/devices/system/node/node{n}/hugepages"))
            .join(size.sysfs_dir()),
        None => Path::new("/sys/kernel/mm/hugepages").join(size.sysfs_dir()),
    }
}

/// Reads the hugepage counters of a directory from [`hugepage_dir`].
pub fn hugepages(host: &dyn Host, dir: &Path) -> Option<Hugepages> {
    Some(Hugepages {
        nr: read_num(host, &dir.join("nr_hugepages"))?,
        free: read_num(host, &dir.join("free_hugepages"))?,
    })
}

/// NUMA node numbers (empty on a kernel without NUMA support).
pub fn numa_nodes(host: &dyn Host) -> Vec<usize> {
    let mut v: Vec<usize> = host
        .read_dir(Path::new("/sys/devices/system/node"))
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.strip_prefix("node")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// The NUMA node of a CPU (from `/sys/devices/system/node/node<N>/cpulist`).
pub fn cpu_node(host: &dyn Host, cpu: u32) -> Option<usize> {
    numa_nodes(host).into_iter().find(|n| {
        read_trim(
            host,
            Path::new(&format!("/sys/devices/system/node/node{n}/cpulist")),
        )
        .and_then(|s| parse_cpu_list(&s).ok())
        .is_some_and(|l| l.contains(&cpu))
    })
}

/// CPUs present (`/sys/devices/system/cpu/present`).
pub fn present_cpus(host: &dyn Host) -> Option<Vec<u32>> {
    read_trim(host, Path::new("/sys/devices/system/cpu/present"))
        .and_then(|s| parse_cpu_list(&s).ok())
}

/// CPUs online (`/sys/devices/system/cpu/online`).
pub fn online_cpus(host: &dyn Host) -> Option<Vec<u32>> {
    read_trim(host, Path::new("/sys/devices/system/cpu/online"))
        .and_then(|s| parse_cpu_list(&s).ok())
}

/// CPUs isolated from the scheduler (`/sys/devices/system/cpu/isolated`).
pub fn isolated_cpus(host: &dyn Host) -> Vec<u32> {
    read_trim(host, Path::new("/sys/devices/system/cpu/isolated"))
        .and_then(|s| parse_cpu_list(&s).ok())
        .unwrap_or_default()
}

/// The kernel command line.
pub fn cmdline(host: &dyn Host) -> String {
    read_trim(host, Path::new("/proc/cmdline")).unwrap_or_default()
}

/// CPUs named by a CPU-list kernel parameter (`isolcpus=`, `nohz_full=`,
/// `rcu_nocbs=`); flags such as `domain,managed_irq,` are skipped.
pub fn cmdline_cpus(cmdline: &str, key: &str) -> Vec<u32> {
    let prefix = format!("{key}=");
    let mut out = Vec::new();
    for tok in cmdline.split_whitespace() {
        if let Some(v) = tok.strip_prefix(&prefix) {
            let list: Vec<&str> = v
                .split(',')
                .filter(|p| p.chars().next().is_some_and(|c| c.is_ascii_digit()))
                .collect();
            out.extend(parse_cpu_list(&list.join(",")).unwrap_or_default());
        }
    }
    out
}

/// The CPU flags of the first processor in `/proc/cpuinfo`.
pub fn cpu_flags(host: &dyn Host) -> Vec<String> {
    let s = host
        .read_file(Path::new("/proc/cpuinfo"))
        .unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, f)| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// One line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Source device.
    pub source: String,
    /// Mount point.
    pub target: PathBuf,
    /// Filesystem type.
    pub fstype: String,
    /// Options.
    pub options: String,
}

impl Mount {
    /// The `pagesize=` option of a hugetlbfs mount.
    pub fn pagesize(&self) -> Option<HugepageSize> {
        self.options
            .split(',')
            .find_map(|o| o.strip_prefix("pagesize="))
            .and_then(|s| s.parse().ok())
    }
}

/// Parses `/proc/mounts`.
pub fn mounts(host: &dyn Host) -> Vec<Mount> {
    let s = host
        .read_file(Path::new("/proc/mounts"))
        .unwrap_or_default();
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some(Mount {
                source: it.next()?.to_string(),
                target: PathBuf::from(it.next()?.replace("\\040", " ")),
                fstype: it.next()?.to_string(),
                options: it.next().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The default hugepage size of the kernel (`Hugepagesize:` in /proc/meminfo).
pub fn default_hugepage_size(host: &dyn Host) -> Option<HugepageSize> {
    let s = host.read_file(Path::new("/proc/meminfo")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Hugepagesize:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    match kb {
        2048 => Some(HugepageSize::Size2M),
        1_048_576 => Some(HugepageSize::Size1G),
        _ => None,
    }
}

/// An IPv4 route from `/proc/net/route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route4 {
    /// Interface.
    pub iface: String,
    /// Destination prefix.
    pub dest: IpPrefix,
    /// Gateway (0.0.0.0 for on-link).
    pub gateway: Ipv4Addr,
}

fn hex_le_v4(s: &str) -> Option<Ipv4Addr> {
    u32::from_str_radix(s, 16)
        .ok()
        .map(|v| Ipv4Addr::from(v.to_le_bytes()))
}

/// IPv4 routes of the main table.
pub fn routes_v4(host: &dyn Host) -> Vec<Route4> {
    let s = host
        .read_file(Path::new("/proc/net/route"))
        .unwrap_or_default();
    s.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let iface = (*f.first()?).to_string();
            let dest = hex_le_v4(f.get(1)?)?;
            let gateway = hex_le_v4(f.get(2)?)?;
            let mask = u32::from(hex_le_v4(f.get(7)?)?);
            let len = u8::try_from(mask.count_ones()).ok()?;
            Some(Route4 {
                iface,
                dest: IpPrefix {
                    addr: IpAddr::V4(dest),
                    len,
                },
                gateway,
            })
        })
        .collect()
}

fn hex_v6(s: &str) -> Option<Ipv6Addr> {
    u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from)
}

/// Interfaces holding an IPv6 default route (reject routes on `lo` excluded).
pub fn default_route_ifaces_v6(host: &dyn Host) -> Vec<String> {
    let s = host
        .read_file(Path::new("/proc/net/ipv6_route"))
        .unwrap_or_default();
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = hex_v6(f.first()?)?;
            let len = u8::from_str_radix(f.get(1)?, 16).ok()?;
            let flags = u32::from_str_radix(f.get(8)?, 16).ok()?;
            let iface = f.get(9)?;
            let reject = flags & 0x0200 != 0;
            (dest.is_unspecified() && len == 0 && !reject && *iface != "lo")
                .then(|| (*iface).to_string())
        })
        .collect()
}

/// Global-scope IPv6 addresses per interface (`/proc/net/if_inet6`).
pub fn global_v6_addrs(host: &dyn Host) -> Vec<(String, Ipv6Addr)> {
    let s = host
        .read_file(Path::new("/proc/net/if_inet6"))
        .unwrap_or_default();
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let a = hex_v6(f.first()?)?;
            let scope = u8::from_str_radix(f.get(3)?, 16).ok()?;
            let iface = (*f.get(5)?).to_string();
            (scope == 0).then_some((iface, a))
        })
        .collect()
}

/// The PCI device behind a network interface (walking up from its `device` link).
pub fn iface_pci(host: &dyn Host, ifname: &str) -> Option<PciAddr> {
    let dev = host
        .canonicalize(&Path::new("/sys/class/net").join(ifname).join("device"))
        .ok()?;
    dev.ancestors().find_map(|a| {
        a.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<PciAddr>().ok())
    })
}

/// Network interfaces (`/sys/class/net`).
pub fn net_ifaces(host: &dyn Host) -> Vec<String> {
    host.read_dir(Path::new("/sys/class/net"))
        .unwrap_or_default()
}

/// Why the host itself uses a network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUse {
    /// The interface.
    pub iface: String,
    /// Reasons, e.g. `carries the IPv4 default route`.
    pub reasons: Vec<String>,
}

/// For each interface the host uses (default route, addresses), why.
pub fn host_used_ifaces(host: &dyn Host) -> Vec<HostUse> {
    let mut out: Vec<HostUse> = Vec::new();
    let mut add = |iface: &str, why: String| {
        if iface == "lo" {
            return;
        }
        match out.iter_mut().find(|h| h.iface == iface) {
            Some(h) => {
                if !h.reasons.contains(&why) {
                    h.reasons.push(why)
                }
            }
            None => out.push(HostUse {
                iface: iface.to_string(),
                reasons: vec![why],
            }),
        }
    };
    for r in routes_v4(host) {
        if r.dest.len == 0 {
            add(
                &r.iface,
                format!("carries the IPv4 default route (via {})", r.gateway),
            );
        } else if r.gateway.is_unspecified() {
            add(&r.iface, format!("has an address in {}", r.dest));
        }
    }
    for i in default_route_ifaces_v6(host) {
        add(&i, "carries the IPv6 default route".to_string());
    }
    for (i, a) in global_v6_addrs(host) {
        add(&i, format!("has the address {a}"));
    }
    out
}

/// Interfaces on a PCI device, each with why the host uses it (empty reasons: unused).
pub fn host_use_of_device(host: &dyn Host, addr: PciAddr) -> Vec<HostUse> {
    let used = host_used_ifaces(host);
    net_ifaces(host)
        .into_iter()
        .filter(|i| iface_pci(host, i) == Some(addr))
        .map(|i| {
            let reasons = used
                .iter()
                .find(|h| h.iface == i)
                .map(|h| h.reasons.clone())
                .unwrap_or_default();
            HostUse { iface: i, reasons }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n").unwrap(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert_eq!(format_cpu_list(&[3, 1, 2, 8, 10, 11]), "1-3,8,10-11");
        assert_eq!(
            cmdline_cpus(
                "quiet isolcpus=domain,managed_irq,2-5,7 nohz_full=2-5",
                "isolcpus"
            ),
            vec![2, 3, 4, 5, 7]
        );
        assert_eq!(cmdline_cpus("quiet", "nohz_full"), Vec::<u32>::new());
    }

    /// `/proc/net/route`, `/proc/net/ipv6_route` and `/proc/net/if_inet6` as a
    /// virtio VM prints them (default routes via eth0, an unreachable `lo` route).
    #[test]
    fn routes_and_host_use_from_kernel_text() {
        let dir = tempfile::tempdir().unwrap();
        let t = crate::testing::FakeTree::new(dir.path()).unwrap();
        t.write(
            "proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
             eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
        )
        .unwrap();
        t.write(
            "proc/net/ipv6_route",
            "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
             00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n\
             00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n",
        )
        .unwrap();
        t.write(
            "proc/net/if_inet6",
            "00000000000000000000000000000001 01 80 10 80       lo\n\
             fd000000000000000000000000000002 04 40 00 82     eth0\n\
             fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n",
        )
        .unwrap();
        let h = crate::testing::FakeHost::new(t);
        let r = routes_v4(&h);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].dest.to_string(), "0.0.0.0/0");
        assert_eq!(r[0].gateway.to_string(), "192.0.2.1");
        assert_eq!(r[1].dest.to_string(), "192.0.2.0/24");
        assert_eq!(default_route_ifaces_v6(&h), ["eth0"]);
        assert_eq!(
            host_used_ifaces(&h),
            [HostUse {
                iface: "eth0".into(),
                reasons: vec![
                    "carries the IPv4 default route (via 192.0.2.1)".into(),
                    "has an address in 192.0.2.0/24".into(),
                    "carries the IPv6 default route".into(),
                    "has the address fd00::2".into(),
                ],
            }]
        );
    }

    #[test]
    fn virtio_netdev_maps_to_its_pci_parent() {
        let dir = tempfile::tempdir().unwrap();
        let t = crate::testing::FakeTree::new(dir.path()).unwrap();
        // eth0 -> ../../devices/pci0000:00/0000:00:03.0/virtio2/net/eth0, device -> virtio2
        std::fs::create_dir_all(
            dir.path()
                .join("sys/devices/pci0000:00/0000:00:03.0/virtio2/net/eth0"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "../../../virtio2",
            dir.path()
                .join("sys/devices/pci0000:00/0000:00:03.0/virtio2/net/eth0/device"),
        )
        .unwrap();
        std::fs::remove_dir_all(dir.path().join("sys/class/net")).unwrap();
        std::fs::create_dir_all(dir.path().join("sys/class/net")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/pci0000:00/0000:00:03.0/virtio2/net/eth0",
            dir.path().join("sys/class/net/eth0"),
        )
        .unwrap();
        let h = crate::testing::FakeHost::new(t);
        assert_eq!(
            iface_pci(&h, "eth0").map(|a| a.to_string()).as_deref(),
            Some("0000:00:03.0")
        );
        assert_eq!(iface_pci(&h, "lo"), None);
    }
}
