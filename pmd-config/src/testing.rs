//! Fake hosts for tests: [`FakeTree`] builds a realistic sysfs/procfs/dev tree in a
//! directory (PCI devices with drivers, NUMA nodes and IOMMU groups, SR-IOV PFs,
//! hugepage pools, CPUs, routes, mounts), and [`FakeHost`] is a [`Host`] over such a
//! tree that records every side effect and simulates what the kernel does on the
//! writes `check-host --apply` makes (unbind/bind/drivers_probe, `sriov_numvfs`,
//! `nr_hugepages`, mount, `modprobe vfio-pci`).

use std::cell::RefCell;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::host::{CommandOutput, Host};
use crate::types::{HugepageSize, IpPrefix, PciAddr};

/// Kernel release written to the fake `/proc/sys/kernel/osrelease`.
pub const FAKE_KERNEL: &str = "6.8.0-45-generic";

/// One PCI device of a fake tree.
#[derive(Debug, Clone)]
pub struct FakePci {
    /// Address.
    pub addr: PciAddr,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Bound driver.
    pub driver: Option<String>,
    /// NUMA node (-1 for none).
    pub numa_node: i32,
    /// IOMMU group (none when the IOMMU is off).
    pub iommu_group: Option<u32>,
}

impl FakePci {
    /// A device at `addr` (an invalid address string yields 0000:00:00.0), no driver,
    /// NUMA node 0, no IOMMU group.
    pub fn new(addr: &str, vendor: u16, device: u16) -> Self {
        FakePci {
            addr: addr.parse().unwrap_or(PciAddr {
                domain: 0,
                bus: 0,
                device: 0,
                function: 0,
            }),
            vendor,
            device,
            driver: None,
            numa_node: 0,
            iommu_group: None,
        }
    }
    /// Bound to `driver`.
    pub fn driver(mut self, driver: &str) -> Self {
        self.driver = Some(driver.to_string());
        self
    }
    /// On NUMA node `node`.
    pub fn numa(mut self, node: i32) -> Self {
        self.numa_node = node;
        self
    }
    /// In IOMMU group `group`.
    pub fn group(mut self, group: u32) -> Self {
        self.iommu_group = Some(group);
        self
    }
}

/// A fake host filesystem tree rooted at a directory.
#[derive(Debug, Clone)]
pub struct FakeTree {
    root: PathBuf,
}

fn pci_rel(addr: PciAddr) -> String {
    format!("sys/devices/pci{:04x}:{:02x}/{addr}", addr.domain, 0)
}

impl FakeTree {
    /// Creates the skeleton of a host under `root`: an Intel CPU with the usual flags,
    /// no NUMA nodes, no CPUs, no IOMMU groups, no PCI devices, no routes, no mounts.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let t = FakeTree { root: root.into() };
        for d in [
            "sys/bus/pci/devices",
            "sys/bus/pci/drivers",
            "sys/kernel/mm/hugepages",
            "sys/class/net",
            "sys/devices/system/cpu",
            "sys/devices/system/node",
            "sys/module",
            "proc/net",
            "proc/sys/kernel",
            "dev",
        ] {
            fs::create_dir_all(t.root.join(d))?;
        }
        t.write(
            "proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
        )?;
        t.write("proc/net/ipv6_route", "")?;
        t.write("proc/net/if_inet6", "")?;
        t.write("proc/mounts", "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\nproc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n")?;
        t.write(
            "proc/cmdline",
            "BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 ro quiet\n",
        )?;
        t.write("proc/sys/kernel/osrelease", &format!("{FAKE_KERNEL}\n"))?;
        t.write(
            "proc/meminfo",
            "MemTotal:       65536000 kB\nHugepagesize:       2048 kB\n",
        )?;
        t.cpu(
            "GenuineIntel",
            &["fpu", "sse4_2", "ssse3", "popcnt", "avx2", "pdpe1gb"],
        )?;
        Ok(t)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes a file (creating parents) at a root-relative path.
    pub fn write(&self, rel: &str, contents: &str) -> io::Result<&Self> {
        let p = self.root.join(rel.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(p, contents)?;
        Ok(self)
    }

    fn append(&self, rel: &str, line: &str) -> io::Result<&Self> {
        let p = self.root.join(rel);
        let mut s = fs::read_to_string(&p).unwrap_or_default();
        s.push_str(line);
        s.push('\n');
        fs::write(p, s)?;
        Ok(self)
    }

    fn link(&self, rel_link: &str, target: &str) -> io::Result<()> {
        let p = self.root.join(rel_link);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        if p.symlink_metadata().is_ok() {
            fs::remove_file(&p)?;
        }
        symlink(target, p)
    }

    /// `/proc/cpuinfo` with this vendor and these flags (one processor entry).
    pub fn cpu(&self, vendor: &str, flags: &[&str]) -> io::Result<&Self> {
        self.write(
            "proc/cpuinfo",
            &format!(
                "processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: {}\n\n",
                flags.join(" ")
            ),
        )
    }

    /// CPUs `0..n`, all present and online.
    pub fn cpus(&self, n: u32) -> io::Result<&Self> {
        let l = format!("0-{}\n", n.saturating_sub(1));
        self.write("sys/devices/system/cpu/present", &l)?;
        self.write("sys/devices/system/cpu/online", &l)?;
        self.write("sys/devices/system/cpu/isolated", "\n")
    }

    /// Sets the online CPU list.
    pub fn online(&self, list: &str) -> io::Result<&Self> {
        self.write("sys/devices/system/cpu/online", &format!("{list}\n"))
    }

    /// Sets `/sys/devices/system/cpu/isolated`.
    pub fn isolated(&self, list: &str) -> io::Result<&Self> {
        self.write("sys/devices/system/cpu/isolated", &format!("{list}\n"))
    }

    /// Sets `/proc/cmdline`.
    pub fn cmdline(&self, s: &str) -> io::Result<&Self> {
        self.write("proc/cmdline", &format!("{s}\n"))
    }

    /// NUMA node `node` with CPUs `cpulist`, and empty 2M and 1G pools.
    pub fn numa_node(&self, node: usize, cpulist: &str) -> io::Result<&Self> {
        self.write(
            &format!("sys/devices/system/node/node{node}/cpulist"),
            &format!("{cpulist}\n"),
        )?;
        for s in [HugepageSize::Size2M, HugepageSize::Size1G] {
            self.hugepages(Some(node), s, 0, 0)?;
        }
        Ok(self)
    }

    /// The hugepage pool of `size` on `node` (or system-wide): `nr` reserved, `free` free.
    pub fn hugepages(
        &self,
        node: Option<usize>,
        size: HugepageSize,
        nr: u64,
        free: u64,
    ) -> io::Result<&Self> {
        let dir = crate::sysfs::hugepage_dir(node, size);
        let rel = dir.to_string_lossy().trim_start_matches('/').to_string();
        self.write(&format!("{rel}/nr_hugepages"), &format!("{nr}\n"))?;
        self.write(&format!("{rel}/free_hugepages"), &format!("{free}\n"))
    }

    /// Limits how many pages the fake kernel can reserve in a pool (fragmented memory).
    pub fn hugepage_capacity(
        &self,
        node: Option<usize>,
        size: HugepageSize,
        max: u64,
    ) -> io::Result<&Self> {
        let dir = crate::sysfs::hugepage_dir(node, size);
        let rel = dir.to_string_lossy().trim_start_matches('/').to_string();
        self.write(&format!("{rel}/.fake_capacity"), &format!("{max}\n"))
    }

    /// A line of `/proc/mounts`.
    pub fn mount(
        &self,
        source: &str,
        target: &str,
        fstype: &str,
        options: &str,
    ) -> io::Result<&Self> {
        self.append(
            "proc/mounts",
            &format!("{source} {target} {fstype} {options} 0 0"),
        )
    }

    /// A hugetlbfs mount of `size` at `target`.
    pub fn hugetlbfs(&self, target: &str, size: HugepageSize) -> io::Result<&Self> {
        self.mount(
            "hugetlbfs",
            target,
            "hugetlbfs",
            &format!("rw,relatime,pagesize={size}"),
        )
    }

    /// vfio-pci installed as a module of the running kernel (not loaded).
    pub fn vfio_installed(&self) -> io::Result<&Self> {
        self.write(
            &format!("lib/modules/{FAKE_KERNEL}/modules.dep"),
            "kernel/drivers/vfio/pci/vfio-pci.ko.zst: kernel/drivers/vfio/pci/vfio-pci-core.ko.zst kernel/drivers/vfio/vfio.ko.zst\n\
             kernel/drivers/net/ethernet/intel/ixgbe/ixgbe.ko.zst: kernel/drivers/net/mdio.ko.zst\n",
        )
    }

    /// vfio-pci loaded: its driver directory, `/sys/module/vfio_pci`, `/dev/vfio/vfio`.
    pub fn vfio_loaded(&self) -> io::Result<&Self> {
        fs::create_dir_all(self.root.join("sys/bus/pci/drivers/vfio-pci"))?;
        fs::create_dir_all(self.root.join("sys/module/vfio_pci"))?;
        self.write("dev/vfio/vfio", "")
    }

    /// A PCI device (with its driver, NUMA node and IOMMU group links).
    pub fn pci(&self, d: &FakePci) -> io::Result<&Self> {
        let rel = pci_rel(d.addr);
        self.write(&format!("{rel}/vendor"), &format!("0x{:04x}\n", d.vendor))?;
        self.write(&format!("{rel}/device"), &format!("0x{:04x}\n", d.device))?;
        self.write(&format!("{rel}/class"), "0x020000\n")?;
        self.write(&format!("{rel}/numa_node"), &format!("{}\n", d.numa_node))?;
        self.write(&format!("{rel}/driver_override"), "(null)\n")?;
        self.link(
            &format!("sys/bus/pci/devices/{}", d.addr),
            &format!("../../../devices/pci{:04x}:00/{}", d.addr.domain, d.addr),
        )?;
        self.set_driver(d.addr, d.driver.as_deref())?;
        // Re-adding a device replaces its old IOMMU group membership.
        let group_link = self.root.join(&rel).join("iommu_group");
        if let Ok(old) = fs::read_link(&group_link) {
            if let Some(g) = old.file_name() {
                let member = self
                    .root
                    .join("sys/kernel/iommu_groups")
                    .join(g)
                    .join("devices")
                    .join(d.addr.to_string());
                let _ = fs::remove_file(member);
            }
            fs::remove_file(&group_link)?;
        }
        if let Some(g) = d.iommu_group {
            self.link(
                &format!("sys/kernel/iommu_groups/{g}/devices/{}", d.addr),
                &format!("../../../../devices/pci{:04x}:00/{}", d.addr.domain, d.addr),
            )?;
            self.link(
                &format!("{rel}/iommu_group"),
                &format!("../../../kernel/iommu_groups/{g}"),
            )?;
            if self.root.join("dev/vfio").is_dir() && d.driver.as_deref() == Some("vfio-pci") {
                self.write(&format!("dev/vfio/{g}"), "")?;
            }
        }
        Ok(self)
    }

    /// Binds (or with `None` unbinds) a device to a driver, as the kernel would.
    pub fn set_driver(&self, addr: PciAddr, driver: Option<&str>) -> io::Result<()> {
        let rel = pci_rel(addr);
        let link = self.root.join(&rel).join("driver");
        if link.symlink_metadata().is_ok() {
            fs::remove_file(&link)?;
        }
        if let Some(drv) = driver {
            fs::create_dir_all(self.root.join("sys/bus/pci/drivers").join(drv))?;
            symlink(format!("../../../bus/pci/drivers/{drv}"), &link)?;
            if drv == "vfio-pci" {
                if let Ok(g) = fs::read_link(self.root.join(&rel).join("iommu_group")) {
                    if let Some(g) = g.file_name() {
                        self.write(&format!("dev/vfio/{}", g.to_string_lossy()), "")?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Makes `pf` an SR-IOV physical function: `total` VFs possible, VF routing ids at
    /// `offset + stride * i` from the PF's, VFs of device id `vf_device` bound to
    /// `vf_driver` when created.
    pub fn sriov_pf(
        &self,
        pf: PciAddr,
        total: u32,
        offset: u32,
        stride: u32,
        vf_device: u16,
        vf_driver: &str,
    ) -> io::Result<&Self> {
        let rel = pci_rel(pf);
        self.write(&format!("{rel}/sriov_totalvfs"), &format!("{total}\n"))?;
        self.write(&format!("{rel}/sriov_numvfs"), "0\n")?;
        self.write(&format!("{rel}/sriov_offset"), &format!("{offset}\n"))?;
        self.write(&format!("{rel}/sriov_stride"), &format!("{stride}\n"))?;
        self.write(
            &format!("{rel}/sriov_vf_device"),
            &format!("{vf_device:04x}\n"),
        )?;
        self.write(&format!("{rel}/.fake_vf_driver"), vf_driver)
    }

    fn read_rel(&self, rel: &str) -> Option<String> {
        fs::read_to_string(self.root.join(rel))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Sets a PF's VF count as the kernel does: VF devices and `virtfn<N>` links appear
    /// (or disappear with 0); a change from one non-zero count to another is refused
    /// with `EBUSY`, and a count above `sriov_totalvfs` with `ERANGE`.
    pub fn set_numvfs(&self, pf: PciAddr, n: u32) -> io::Result<()> {
        let rel = pci_rel(pf);
        let num = |f: &str| {
            self.read_rel(&format!("{rel}/{f}"))
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(0)
        };
        let (cur, total, offset, stride) = (
            num("sriov_numvfs"),
            num("sriov_totalvfs"),
            num("sriov_offset"),
            num("sriov_stride"),
        );
        if n > total {
            return Err(io::Error::from_raw_os_error(34));
        }
        if cur != 0 && n != 0 && cur != n {
            return Err(io::Error::from_raw_os_error(16));
        }
        let vf_dev = self
            .read_rel(&format!("{rel}/sriov_vf_device"))
            .and_then(|s| u16::from_str_radix(&s, 16).ok())
            .unwrap_or(0);
        let vendor = self
            .read_rel(&format!("{rel}/vendor"))
            .and_then(|s| u16::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        let numa: i32 = self
            .read_rel(&format!("{rel}/numa_node"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        let driver = self
            .read_rel(&format!("{rel}/.fake_vf_driver"))
            .filter(|s| !s.is_empty());
        let groups = crate::sysfs::iommu_groups(&FakeHost::new(self.clone()));
        let mut next_group = groups.iter().max().map_or(0, |g| g + 1);
        let iommu = !groups.is_empty();
        // Remove the old VFs.
        for i in 0..cur {
            let l = self.root.join(&rel).join(format!("virtfn{i}"));
            if let Ok(t) = fs::read_link(&l) {
                if let Some(name) = t.file_name() {
                    let vf = name.to_string_lossy().to_string();
                    let _ = fs::remove_dir_all(
                        self.root
                            .join(format!("sys/devices/pci{:04x}:00/{vf}", pf.domain)),
                    );
                    let _ = fs::remove_file(self.root.join(format!("sys/bus/pci/devices/{vf}")));
                }
                fs::remove_file(l)?;
            }
        }
        let rid = (u32::from(pf.bus) << 8) | (u32::from(pf.device) << 3) | u32::from(pf.function);
        for i in 0..n {
            let r = rid + offset + stride * i;
            let bus = u8::try_from((r >> 8) & 0xff).unwrap_or(0);
            let devfn = r & 0xff;
            let dev = u8::try_from(devfn >> 3).unwrap_or(0);
            let func = u8::try_from(devfn & 7).unwrap_or(0);
            let addr = PciAddr {
                domain: pf.domain,
                bus,
                device: dev,
                function: func,
            };
            let mut d = FakePci {
                addr,
                vendor,
                device: vf_dev,
                driver: driver.clone(),
                numa_node: numa,
                iommu_group: None,
            };
            if iommu {
                d.iommu_group = Some(next_group);
                next_group += 1;
            }
            self.pci(&d)?;
            self.link(&format!("{rel}/virtfn{i}"), &format!("../{addr}"))?;
            self.link(&format!("{}/physfn", pci_rel(addr)), &format!("../{pf}"))?;
        }
        self.write(&format!("{rel}/sriov_numvfs"), &format!("{n}\n"))?;
        Ok(())
    }

    /// A network interface, on a PCI device or virtual.
    pub fn netdev(&self, ifname: &str, pci: Option<PciAddr>) -> io::Result<&Self> {
        fs::create_dir_all(self.root.join("sys/class/net").join(ifname))?;
        if let Some(a) = pci {
            self.link(
                &format!("sys/class/net/{ifname}/device"),
                &format!("../../../devices/pci{:04x}:00/{a}", a.domain),
            )?;
        }
        Ok(self)
    }

    fn route_line(ifname: &str, dest: Ipv4Addr, gw: Ipv4Addr, len: u8, flags: u16) -> String {
        let hex = |a: Ipv4Addr| format!("{:08X}", u32::from_le_bytes(a.octets()));
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        };
        format!(
            "{ifname}\t{}\t{}\t{flags:04X}\t0\t0\t0\t{}\t0\t0\t0",
            hex(dest),
            hex(gw),
            hex(Ipv4Addr::from(mask))
        )
    }

    /// An IPv4 default route via `gateway` on `ifname`.
    pub fn default_route(&self, ifname: &str, gateway: Ipv4Addr) -> io::Result<&Self> {
        self.append(
            "proc/net/route",
            &Self::route_line(ifname, Ipv4Addr::UNSPECIFIED, gateway, 0, 3),
        )
    }

    /// The connected route of an address configured on `ifname` (e.g. `10.0.0.0/24`).
    pub fn subnet_route(&self, ifname: &str, subnet: &str) -> io::Result<&Self> {
        let p: IpPrefix = subnet
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))?;
        let std::net::IpAddr::V4(a) = p.network() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not IPv4"));
        };
        self.append(
            "proc/net/route",
            &Self::route_line(ifname, a, Ipv4Addr::UNSPECIFIED, p.len, 1),
        )
    }

    /// An IPv6 default route on `ifname`.
    pub fn ipv6_default_route(&self, ifname: &str, gateway: Ipv6Addr) -> io::Result<&Self> {
        self.append(
            "proc/net/ipv6_route",
            &format!(
                "{:032x} 00 {:032x} 00 {:032x} 00000400 00000001 00000000 00000003 {ifname:>8}",
                0u128,
                0u128,
                u128::from(gateway)
            ),
        )
    }

    /// A global IPv6 address on `ifname`.
    pub fn ipv6_addr(&self, ifname: &str, addr: Ipv6Addr, ifindex: u32) -> io::Result<&Self> {
        self.append(
            "proc/net/if_inet6",
            &format!(
                "{:032x} {ifindex:02x} 40 00 80 {ifname:>8}",
                u128::from(addr)
            ),
        )
    }
}

/// A [`Host`] over a [`FakeTree`] that records every side effect (`log`) and simulates
/// the kernel's reaction to the writes, mounts and commands of `--apply`.
#[derive(Debug)]
pub struct FakeHost {
    tree: FakeTree,
    log: RefCell<Vec<String>>,
    vfio: RefCell<Option<Result<bool, String>>>,
}

impl FakeHost {
    /// A fake host over `tree`.
    pub fn new(tree: FakeTree) -> Self {
        FakeHost {
            tree,
            log: RefCell::new(Vec::new()),
            vfio: RefCell::new(None),
        }
    }

    /// What the simulated kernel VFIO probe answers for every group (`None`: the
    /// kernel cannot be asked, as without `/dev/vfio/vfio`).
    pub fn set_vfio_group_viable(&self, answer: Option<Result<bool, String>>) {
        *self.vfio.borrow_mut() = answer;
    }

    /// The tree.
    pub fn tree(&self) -> &FakeTree {
        &self.tree
    }

    /// Every side effect so far (`write <path> <value>`, `mkdir <path>`, `mount ...`,
    /// `run <cmd> <args>`).
    pub fn log(&self) -> Vec<String> {
        self.log.borrow().clone()
    }

    /// Forgets the recorded side effects.
    pub fn clear_log(&self) {
        self.log.borrow_mut().clear();
    }

    fn record(&self, s: String) {
        self.log.borrow_mut().push(s);
    }

    fn pci_from(seg: Option<&std::ffi::OsStr>) -> io::Result<PciAddr> {
        seg.and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::from_raw_os_error(19))
    }
}

impl Host for FakeHost {
    fn root(&self) -> &Path {
        self.tree.root()
    }

    fn vfio_group_viable(&self, sysfs_dev: &Path) -> Option<Result<bool, String>> {
        let answer = self.vfio.borrow().clone();
        if answer.is_some() {
            self.log
                .borrow_mut()
                .push(format!("vfio probe {}", sysfs_dev.display()));
        }
        answer
    }

    fn write_file(&self, host_path: &Path, contents: &str) -> io::Result<()> {
        self.record(format!("write {} {}", host_path.display(), contents));
        let comps: Vec<&std::ffi::OsStr> = host_path.iter().collect();
        let s = |i: usize| comps.get(i).and_then(|c| c.to_str()).unwrap_or("");
        let value = contents.trim();
        let under_devices = s(1) == "sys" && s(2) == "bus" && s(3) == "pci" && s(4) == "devices";
        // /sys/bus/pci/devices/<addr>/driver/unbind
        if under_devices && s(6) == "driver" && s(7) == "unbind" {
            let addr = Self::pci_from(comps.get(5).copied())?;
            return self.tree.set_driver(addr, None);
        }
        // /sys/bus/pci/devices/<addr>/sriov_numvfs
        if under_devices && s(6) == "sriov_numvfs" {
            let addr = Self::pci_from(comps.get(5).copied())?;
            let n = value
                .parse()
                .map_err(|_| io::Error::from_raw_os_error(22))?;
            return self.tree.set_numvfs(addr, n);
        }
        // /sys/bus/pci/drivers/<drv>/bind
        if s(1) == "sys" && s(4) == "drivers" && s(6) == "bind" {
            let addr: PciAddr = value
                .parse()
                .map_err(|_| io::Error::from_raw_os_error(19))?;
            return self.tree.set_driver(addr, Some(s(5)));
        }
        // /sys/bus/pci/drivers_probe
        if host_path == Path::new("/sys/bus/pci/drivers_probe") {
            let addr: PciAddr = value
                .parse()
                .map_err(|_| io::Error::from_raw_os_error(19))?;
            let ov = self
                .read_file(&crate::sysfs::pci_dir(addr).join("driver_override"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            if !ov.is_empty()
                && ov != "(null)"
                && self.exists(&Path::new("/sys/bus/pci/drivers").join(&ov))
            {
                return self.tree.set_driver(addr, Some(&ov));
            }
            return Ok(());
        }
        // .../hugepages-<size>kB/nr_hugepages
        if host_path.file_name().and_then(|f| f.to_str()) == Some("nr_hugepages") {
            let dir = host_path.parent().unwrap_or(Path::new("/"));
            let read =
                |f: &str| -> Option<u64> { self.read_file(&dir.join(f)).ok()?.trim().parse().ok() };
            let want: u64 = value
                .parse()
                .map_err(|_| io::Error::from_raw_os_error(22))?;
            let nr = read("nr_hugepages").unwrap_or(0);
            let free = read("free_hugepages").unwrap_or(0);
            let got = read(".fake_capacity").map_or(want, |cap| want.min(cap));
            let free = if got >= nr {
                free + (got - nr)
            } else {
                free.saturating_sub(nr - got)
            };
            std::fs::write(self.path(&dir.join("free_hugepages")), format!("{free}\n"))?;
            return std::fs::write(self.path(host_path), format!("{got}\n"));
        }
        std::fs::write(self.path(host_path), contents)
    }

    fn create_dir_all(&self, host_path: &Path) -> io::Result<()> {
        self.record(format!("mkdir {}", host_path.display()));
        std::fs::create_dir_all(self.path(host_path))
    }

    fn mount(&self, fstype: &str, source: &str, target: &Path, options: &str) -> io::Result<()> {
        self.record(format!(
            "mount -t {fstype} -o {options} {source} {}",
            target.display()
        ));
        self.tree.mount(
            source,
            &target.to_string_lossy(),
            fstype,
            &format!("rw,relatime,{options}"),
        )?;
        Ok(())
    }

    fn run_command(&self, program: &str, args: &[&str]) -> io::Result<CommandOutput> {
        self.record(format!("run {program} {}", args.join(" ")));
        if program == "modprobe" && args == ["vfio-pci"] {
            let dep = self
                .read_file(
                    &Path::new("/lib/modules")
                        .join(FAKE_KERNEL)
                        .join("modules.dep"),
                )
                .unwrap_or_default();
            if dep.contains("vfio-pci.ko") {
                self.tree.vfio_loaded()?;
                return Ok(CommandOutput {
                    status: Some(0),
                    stdout: String::new(),
                    stderr: String::new(),
                });
            }
            return Ok(CommandOutput {
                status: Some(1),
                stdout: String::new(),
                stderr: format!("modprobe: FATAL: Module vfio-pci not found in directory /lib/modules/{FAKE_KERNEL}\n"),
            });
        }
        Ok(CommandOutput {
            status: Some(127),
            stdout: String::new(),
            stderr: format!("{program}: not simulated\n"),
        })
    }
}
