//! Preflight checks (report only) and the `check-host` entry points.
//!
//! Check names are stable (tests and scripts match on them):
//! `config`, `cpu flags`, `cores online`, `cores isolated`, `hugepages <size> node<N>`,
//! `hugetlbfs`, `iommu`, `vfio-pci`, `host uplink`, `pci ports` (only when none is
//! configured) and, per PCI or VF port `<p>`: `port <p> sriov` (VFs only),
//! `port <p> device`, `port <p> iommu group`, `port <p> numa`, `port <p> host use`.
//!
//! IOMMU group viability is decided from sysfs and, on a real host with /dev/vfio, also
//! asked of the kernel through vfio-ioctls ([`Host::vfio_group_viable`]). From sysfs,
//! a group is viable when every device in
//! it is bound to vfio-pci, to a PCIe port driver (`pcieport`, bridges) or to nothing,
//! which is the rule the kernel's VFIO applies when a group is opened; the group's
//! `/dev/vfio/<group>` node must exist once the device is on vfio-pci.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::{Config, PortConfig, PortSource};
use crate::host::{Host, RealHost};
use crate::prepare;
use crate::report::{Check, Report};
use crate::sysfs::{self, pci_dir, PciDevice};
use crate::types::{HugepageSize, PciAddr};

/// CPU flags a default x86-64 DPDK build needs (the `corei7`/Nehalem baseline of
/// distribution builds: SSE4.2, SSSE3, POPCNT).
#[cfg(target_arch = "x86_64")]
pub const DEFAULT_REQUIRED_CPU_FLAGS: &[&str] = &["sse4_2", "ssse3", "popcnt"];
/// CPU flags a default aarch64 DPDK build needs.
#[cfg(target_arch = "aarch64")]
pub const DEFAULT_REQUIRED_CPU_FLAGS: &[&str] = &["asimd"];
/// CPU flags a default DPDK build needs on this architecture.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub const DEFAULT_REQUIRED_CPU_FLAGS: &[&str] = &[];

/// What `vrouter-dp check-host` was asked to do.
#[derive(Debug, Clone)]
pub struct CheckHostOptions {
    /// The validated config.
    pub config: Config,
    /// Where the host's `/` is (`/` on a node; a fake tree in tests).
    pub root: PathBuf,
    /// Prepare the host (`--apply`) before checking.
    pub apply: bool,
    /// CPU flags the DPDK build needs.
    pub required_cpu_flags: Vec<String>,
}

impl CheckHostOptions {
    /// Options for checking (not preparing) the host at `root` with the default CPU flags.
    pub fn new(config: Config, root: impl Into<PathBuf>) -> Self {
        CheckHostOptions {
            config,
            root: root.into(),
            apply: false,
            required_cpu_flags: DEFAULT_REQUIRED_CPU_FLAGS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// Why `check-host` could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckHostError {
    /// The root directory does not exist.
    #[error("host root {0} is not a directory")]
    BadRoot(PathBuf),
}

/// Runs `check-host` on the real host at `opts.root`: with `apply`, the preparation
/// steps first, then every check.
pub fn check_host(opts: &CheckHostOptions) -> Result<Report, CheckHostError> {
    if !opts.root.is_dir() {
        return Err(CheckHostError::BadRoot(opts.root.clone()));
    }
    let host = RealHost::new(&opts.root);
    Ok(check_host_with(&host, opts))
}

/// Everything `vrouter-dp check-host --config F [--apply] [--sysfs-root DIR] [--json]`
/// does after loading the config: prepares the host when `apply`, runs every check
/// against the host at `root`, and returns the report to print (text, or JSON with
/// `json`) and whether the host passed. The command exits 0 only when it passed.
pub fn run_check_host(
    config: &Config,
    root: &Path,
    apply: bool,
    json: bool,
) -> Result<(String, bool), CheckHostError> {
    let mut opts = CheckHostOptions::new(config.clone(), root);
    opts.apply = apply;
    let report = check_host(&opts)?;
    let out = if json {
        report.render_json() + "\n"
    } else {
        report.render_text()
    };
    Ok((out, report.passed()))
}

/// Runs `check-host` through any [`Host`] (a fake one in tests).
pub fn check_host_with(host: &dyn Host, opts: &CheckHostOptions) -> Report {
    let steps = if opts.apply {
        prepare::prepare(host, &opts.config)
    } else {
        Vec::new()
    };
    let checks = preflight(host, &opts.config, &opts.required_cpu_flags);
    Report { steps, checks }
}

/// All checks, in report order.
pub fn preflight(host: &dyn Host, cfg: &Config, required_cpu_flags: &[String]) -> Vec<Check> {
    let mut v = Vec::new();
    v.extend(check_config(cfg));
    v.push(check_cpu_flags(host, cfg, required_cpu_flags));
    v.push(check_cores_online(host, cfg));
    v.push(check_cores_isolated(host, cfg));
    v.extend(check_hugepages(host, cfg));
    v.push(check_hugetlbfs(host, cfg));
    v.push(check_iommu(host, cfg));
    v.push(check_vfio(host, cfg));
    v.push(check_uplink(host));
    if cfg.pci_ports().is_empty() {
        v.push(Check::skip(
            "pci ports",
            "no PCI or VF port configured (vdev ports only)",
        ));
    }
    for p in cfg.pci_ports() {
        v.extend(check_port(host, cfg, p));
    }
    v
}

fn check_config(cfg: &Config) -> Vec<Check> {
    if cfg.warnings.is_empty() {
        let pci = cfg.pci_ports().len();
        return vec![Check::ok(
            "config",
            format!(
                "valid: {} port(s) ({pci} PCI/VF, {} vdev), {} worker(s)",
                cfg.ports.len(),
                cfg.ports.len() - pci,
                cfg.cores.workers.len()
            ),
        )];
    }
    cfg.warnings
        .iter()
        .map(|w| {
            let at = w.line.map(|l| format!(" (line {l})")).unwrap_or_default();
            Check::warn("config", w.to_string(), format!("review `{}`{at}", w.path))
        })
        .collect()
}

fn check_cpu_flags(host: &dyn Host, cfg: &Config, required: &[String]) -> Check {
    let name = "cpu flags";
    let flags = sysfs::cpu_flags(host);
    if flags.is_empty() {
        return Check::warn(
            name,
            "cannot read the flags in /proc/cpuinfo",
            "check that /proc is mounted",
        );
    }
    let mut need: Vec<String> = required.to_vec();
    if cfg.memory.hugepages && cfg.memory.hugepage_size == HugepageSize::Size1G {
        need.push("pdpe1gb".to_string());
    }
    let missing: Vec<&String> = need.iter().filter(|f| !flags.contains(f)).collect();
    if missing.is_empty() {
        return Check::ok(name, format!("{} present", need.join(" ")));
    }
    let list = missing
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let fix = if missing.iter().any(|m| *m == "pdpe1gb") {
        "this CPU has no 1 GiB pages: set memory.hugepage_size = \"2M\"".to_string()
    } else {
        "run on a CPU with these flags, or use a DPDK build for an older CPU \
         (meson -Dcpu_instruction_set=generic)"
            .to_string()
    };
    Check::fail(name, format!("missing: {list}"), fix)
}

fn check_cores_online(host: &dyn Host, cfg: &Config) -> Check {
    let name = "cores online";
    let cores = cfg.all_cores();
    let present = sysfs::present_cpus(host);
    let online = sysfs::online_cpus(host);
    let (Some(present), Some(online)) = (present, online) else {
        return Check::warn(
            name,
            "cannot read /sys/devices/system/cpu/present or online",
            "check that /sys is mounted",
        );
    };
    let absent: Vec<u32> = cores
        .iter()
        .copied()
        .filter(|c| !present.contains(c))
        .collect();
    if !absent.is_empty() {
        return Check::fail(
            name,
            format!(
                "core(s) {} do not exist (present: {})",
                sysfs::format_cpu_list(&absent),
                sysfs::format_cpu_list(&present)
            ),
            format!(
                "choose cores.workers and cores.control among {}",
                sysfs::format_cpu_list(&present)
            ),
        );
    }
    let offline: Vec<u32> = cores
        .iter()
        .copied()
        .filter(|c| !online.contains(c))
        .collect();
    if !offline.is_empty() {
        let cmds: Vec<String> = offline
            .iter()
            .map(|c| format!("echo 1 > /sys/devices/system/cpu/cpu{c}/online"))
            .collect();
        return Check::fail(
            name,
            format!("core(s) {} are offline", sysfs::format_cpu_list(&offline)),
            cmds.join("; "),
        );
    }
    Check::ok(
        name,
        format!("cores {} online", sysfs::format_cpu_list(&cores)),
    )
}

fn check_cores_isolated(host: &dyn Host, cfg: &Config) -> Check {
    let name = "cores isolated";
    let workers = &cfg.cores.workers;
    let cmdline = sysfs::cmdline(host);
    let mut isolated: BTreeSet<u32> = sysfs::isolated_cpus(host).into_iter().collect();
    isolated.extend(sysfs::cmdline_cpus(&cmdline, "isolcpus"));
    let nohz: BTreeSet<u32> = sysfs::cmdline_cpus(&cmdline, "nohz_full")
        .into_iter()
        .collect();
    let wl = sysfs::format_cpu_list(workers);
    let not_iso: Vec<u32> = workers
        .iter()
        .copied()
        .filter(|c| !isolated.contains(c))
        .collect();
    let not_nohz: Vec<u32> = workers
        .iter()
        .copied()
        .filter(|c| !nohz.contains(c))
        .collect();
    let iso_s = if isolated.is_empty() {
        "none".to_string()
    } else {
        sysfs::format_cpu_list(&isolated.iter().copied().collect::<Vec<_>>())
    };
    let nohz_s = if nohz.is_empty() {
        "none".to_string()
    } else {
        sysfs::format_cpu_list(&nohz.iter().copied().collect::<Vec<_>>())
    };
    if not_iso.is_empty() && not_nohz.is_empty() {
        return Check::ok(name, format!("workers {wl} isolated and nohz_full"));
    }
    let found = format!(
        "worker core(s) {} not isolated, {} not nohz_full (isolated: {iso_s}; nohz_full: {nohz_s}); \
         the scheduler and timer ticks will interrupt the poll loops",
        if not_iso.is_empty() { "none".to_string() } else { sysfs::format_cpu_list(&not_iso) },
        if not_nohz.is_empty() { "none".to_string() } else { sysfs::format_cpu_list(&not_nohz) },
    );
    Check::warn(
        name,
        found,
        format!(
            "add `isolcpus={wl} nohz_full={wl} rcu_nocbs={wl}` to the kernel command line and reboot"
        ),
    )
}

fn check_hugepages(host: &dyn Host, cfg: &Config) -> Vec<Check> {
    let m = &cfg.memory;
    let size = m.hugepage_size;
    if !m.hugepages {
        return vec![Check::skip(
            format!("hugepages {size}"),
            "memory.hugepages = false: EAL runs with --no-huge",
        )];
    }
    let nodes = sysfs::numa_nodes(host);
    let mut out = Vec::new();
    for (i, &mb) in m.socket_mem_mb.iter().enumerate() {
        if mb == 0 {
            continue;
        }
        let name = format!("hugepages {size} node{i}");
        let needed = m.pages_needed(i);
        let dir = if nodes.is_empty() && i == 0 {
            sysfs::hugepage_dir(None, size)
        } else if nodes.contains(&i) {
            sysfs::hugepage_dir(Some(i), size)
        } else {
            let have = nodes
                .iter()
                .map(|n| format!("node{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(Check::fail(
                name,
                format!(
                    "memory.socket_mem_mb[{i}] asks for {mb} MiB on NUMA node {i}, which does not exist (nodes: {})",
                    if have.is_empty() { "none".to_string() } else { have }
                ),
                format!("give one socket_mem_mb entry per existing NUMA node ({} entries)", nodes.len().max(1)),
            ));
            continue;
        };
        let Some(h) = sysfs::hugepages(host, &dir) else {
            out.push(Check::fail(
                name,
                format!("no {size} hugepage support ({} missing)", dir.display()),
                if size == HugepageSize::Size1G {
                    "boot with `hugepagesz=1G hugepages=N` (needs the pdpe1gb CPU flag) or set memory.hugepage_size = \"2M\"".to_string()
                } else {
                    "use a kernel with CONFIG_HUGETLBFS".to_string()
                },
            ));
            continue;
        };
        if h.free >= needed {
            out.push(Check::ok(
                name,
                format!(
                    "{} free of {} reserved, config needs {needed} ({mb} MiB)",
                    h.free, h.nr
                ),
            ));
        } else {
            let target = h.nr + (needed - h.free);
            let mut fix = format!("echo {target} > {}/nr_hugepages", dir.display());
            if size == HugepageSize::Size1G {
                fix.push_str(&format!(
                    " (1G pages are best reserved at boot: `hugepagesz=1G hugepages={target}`)"
                ));
            }
            fix.push_str(", or run check-host --apply");
            out.push(Check::fail(
                name,
                format!(
                    "only {} free of {} reserved, config needs {needed} ({mb} MiB)",
                    h.free, h.nr
                ),
                fix,
            ));
        }
    }
    out
}

/// The hugetlbfs mount point `--apply` creates when `eal.huge_dir` is not set.
pub fn default_huge_dir(size: HugepageSize) -> PathBuf {
    match size {
        HugepageSize::Size2M => PathBuf::from("/dev/hugepages"),
        HugepageSize::Size1G => PathBuf::from("/dev/hugepages1G"),
    }
}

/// The hugetlbfs mount that serves the config, if any.
pub fn hugetlbfs_mount(host: &dyn Host, cfg: &Config) -> Option<sysfs::Mount> {
    let size = cfg.memory.hugepage_size;
    let default = sysfs::default_hugepage_size(host);
    sysfs::mounts(host).into_iter().find(|m| {
        m.fstype == "hugetlbfs"
            && m.pagesize().or(default).into_iter().all(|s| s == size)
            && cfg.eal.huge_dir.iter().all(|d| d == &m.target)
    })
}

fn check_hugetlbfs(host: &dyn Host, cfg: &Config) -> Check {
    let name = "hugetlbfs";
    let size = cfg.memory.hugepage_size;
    if !cfg.memory.hugepages {
        return Check::skip(name, "memory.hugepages = false");
    }
    if let Some(m) = hugetlbfs_mount(host, cfg) {
        return Check::ok(
            name,
            format!(
                "hugetlbfs pagesize={size} mounted at {}",
                m.target.display()
            ),
        );
    }
    let dir = cfg
        .eal
        .huge_dir
        .clone()
        .unwrap_or_else(|| default_huge_dir(size));
    let what = match &cfg.eal.huge_dir {
        Some(d) => format!(
            "no hugetlbfs for {size} pages mounted at eal.huge_dir {}",
            d.display()
        ),
        None => format!("no hugetlbfs mount for {size} pages"),
    };
    if cfg.eal.in_memory && cfg.eal.huge_dir.is_none() {
        return Check::ok(
            name,
            format!("{what}; not needed with eal.in_memory (EAL maps hugepages anonymously)"),
        );
    }
    Check::fail(
        name,
        what,
        format!(
            "mkdir -p {d} && mount -t hugetlbfs -o pagesize={size} nodev {d}, or run check-host --apply",
            d = dir.display()
        ),
    )
}

fn cpu_vendor(host: &dyn Host) -> Option<String> {
    let s = host.read_file(Path::new("/proc/cpuinfo")).ok()?;
    let l = s.lines().find(|l| l.starts_with("vendor_id"))?;
    Some(l.split_once(':')?.1.trim().to_string())
}

/// The fix text for a host without an IOMMU.
pub fn iommu_fix(host: &dyn Host) -> String {
    match cpu_vendor(host).as_deref() {
        Some("GenuineIntel") => "enable VT-d in the firmware and add `intel_iommu=on iommu=pt` to the kernel command line, then reboot".to_string(),
        Some("AuthenticAMD") => "enable AMD-Vi/IOMMU in the firmware and add `amd_iommu=on iommu=pt` to the kernel command line, then reboot".to_string(),
        _ => "enable the IOMMU in the firmware and add `intel_iommu=on iommu=pt` (Intel) or `amd_iommu=on iommu=pt` (AMD) to the kernel command line, then reboot".to_string(),
    }
}

fn check_iommu(host: &dyn Host, cfg: &Config) -> Check {
    let name = "iommu";
    let groups = sysfs::iommu_groups(host);
    if !groups.is_empty() {
        return Check::ok(name, format!("enabled: {} IOMMU groups", groups.len()));
    }
    let cmdline = sysfs::cmdline(host);
    let asked = cmdline
        .split_whitespace()
        .find(|t| t.starts_with("intel_iommu=on") || t.starts_with("amd_iommu=on"));
    let found = match asked {
        Some(t) => format!("no IOMMU groups in /sys/kernel/iommu_groups although the kernel has `{t}`: the IOMMU is off in the firmware or absent"),
        None => "no IOMMU groups in /sys/kernel/iommu_groups: the IOMMU is off or absent".to_string(),
    };
    if cfg.pci_ports().is_empty() {
        Check::warn(
            name,
            format!("{found} (not needed by this config: no PCI ports)"),
            iommu_fix(host),
        )
    } else {
        Check::fail(
            name,
            format!("{found}; vfio-pci cannot own the NICs"),
            iommu_fix(host),
        )
    }
}

fn kernel_release(host: &dyn Host) -> Option<String> {
    host.read_file(Path::new("/proc/sys/kernel/osrelease"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Whether vfio-pci is loaded (its driver directory exists).
pub fn vfio_loaded(host: &dyn Host) -> bool {
    host.exists(&Path::new(sysfs::PCI_DRIVERS).join("vfio-pci"))
}

fn vfio_available(host: &dyn Host) -> Option<bool> {
    let rel = kernel_release(host)?;
    let dir = Path::new("/lib/modules").join(&rel);
    let mut any = false;
    for f in ["modules.dep", "modules.builtin"] {
        if let Ok(s) = host.read_file(&dir.join(f)) {
            any = true;
            if s.lines().any(|l| {
                l.split(':').next().is_some_and(|m| {
                    m.ends_with("/vfio-pci.ko")
                        || m.ends_with("/vfio-pci.ko.xz")
                        || m.ends_with("/vfio-pci.ko.zst")
                })
            }) {
                return Some(true);
            }
        }
    }
    any.then_some(false)
}

fn check_vfio(host: &dyn Host, cfg: &Config) -> Check {
    let name = "vfio-pci";
    if cfg.pci_ports().is_empty() {
        return Check::skip(name, "no PCI or VF port configured");
    }
    let dev = host.exists(Path::new("/dev/vfio/vfio"));
    if vfio_loaded(host) {
        if dev {
            return Check::ok(name, "vfio-pci loaded, /dev/vfio/vfio present");
        }
        return Check::fail(
            name,
            "vfio-pci loaded but /dev/vfio/vfio is missing",
            "expose /dev/vfio to the data plane (hostPath /dev/vfio in the pod spec)",
        );
    }
    match vfio_available(host) {
        Some(true) => Check::fail(name, "vfio-pci is not loaded (the module is installed)", "modprobe vfio-pci, or run check-host --apply"),
        Some(false) => Check::fail(
            name,
            format!(
                "vfio-pci is not loaded and not in /lib/modules/{}",
                kernel_release(host).unwrap_or_default()
            ),
            "install the kernel's extra modules (e.g. linux-modules-extra-$(uname -r)), then modprobe vfio-pci",
        ),
        None => Check::fail(
            name,
            "vfio-pci is not loaded (/lib/modules not readable)",
            "modprobe vfio-pci on the host, or run check-host --apply with /lib/modules mounted",
        ),
    }
}

fn check_uplink(host: &dyn Host) -> Check {
    let name = "host uplink";
    let used = sysfs::host_used_ifaces(host);
    let default: Vec<&sysfs::HostUse> = used
        .iter()
        .filter(|h| h.reasons.iter().any(|r| r.contains("default route")))
        .collect();
    if default.is_empty() {
        return Check::ok(name, "no default route");
    }
    let parts: Vec<String> = default
        .iter()
        .map(|h| {
            let dev = match sysfs::iface_pci(host, &h.iface) {
                Some(a) => match sysfs::pci_device(host, a) {
                    Some(d) => format!("{a} {}", d.model()),
                    None => a.to_string(),
                },
                None => "no PCI device".to_string(),
            };
            format!("{} ({dev})", h.iface)
        })
        .collect();
    Check::ok(
        name,
        format!(
            "default route via {}: kept by the host, never bound",
            parts.join(", ")
        ),
    )
}

/// The bind commands for one device.
pub fn bind_fix(dev: &PciDevice) -> String {
    let a = dev.addr;
    let mut s =
        format!("modprobe vfio-pci; echo vfio-pci > /sys/bus/pci/devices/{a}/driver_override; ");
    if dev.driver.is_some() {
        s.push_str(&format!(
            "echo {a} > /sys/bus/pci/devices/{a}/driver/unbind; "
        ));
    }
    s.push_str(&format!(
        "echo {a} > /sys/bus/pci/drivers_probe (or run check-host --apply)"
    ));
    s
}

/// True for drivers DPDK uses as they are (bifurcated mlx5).
pub fn is_bifurcated(dev: &PciDevice) -> bool {
    dev.vendor == 0x15b3 && dev.driver.as_deref() == Some("mlx5_core")
}

fn port_index(cfg: &Config, p: &PortConfig) -> usize {
    cfg.ports.iter().position(|x| x.name == p.name).unwrap_or(0)
}

fn check_port(host: &dyn Host, cfg: &Config, p: &PortConfig) -> Vec<Check> {
    let n = &p.name;
    let mut out = Vec::new();
    let i = port_index(cfg, p);
    let addr = match &p.source {
        PortSource::Pci { addr } => *addr,
        PortSource::Vf { pf, vf } => {
            let (c, a) = check_sriov(host, n, i, *pf, *vf);
            out.push(c);
            match a {
                Some(a) => a,
                None => {
                    for what in ["device", "iommu group", "numa", "host use"] {
                        out.push(Check::skip(
                            format!("port {n} {what}"),
                            format!("VF {vf} of {pf} does not exist"),
                        ));
                    }
                    return out;
                }
            }
        }
        PortSource::Vdev { .. } => return out,
    };
    let Some(dev) = sysfs::pci_device(host, addr) else {
        let field = match p.source {
            PortSource::Vf { .. } => format!("ports[{i}].vf"),
            _ => format!("ports[{i}].pci"),
        };
        out.push(Check::fail(
            format!("port {n} device"),
            format!("PCI device {addr} is not present"),
            format!("find the NIC's address with `lspci -D -d ::0200` and set {field}"),
        ));
        for what in ["iommu group", "numa", "host use"] {
            out.push(Check::skip(
                format!("port {n} {what}"),
                format!("{addr} is not present"),
            ));
        }
        return out;
    };
    let uses: Vec<sysfs::HostUse> = sysfs::host_use_of_device(host, addr)
        .into_iter()
        .filter(|h| !h.reasons.is_empty())
        .collect();
    out.push(check_device(&dev, n, !uses.is_empty()));
    out.push(check_group(host, &dev, n));
    out.push(check_numa(host, cfg, &dev, n));
    out.push(check_host_use(host, &dev, n, &uses));
    out
}

fn describe(dev: &PciDevice) -> String {
    format!(
        "{} {}, driver {}, NUMA node {}, IOMMU group {}",
        dev.addr,
        dev.model(),
        dev.driver.as_deref().unwrap_or("none"),
        dev.numa_node.map_or("-".to_string(), |n| n.to_string()),
        dev.iommu_group
            .map_or("none".to_string(), |g| g.to_string()),
    )
}

fn check_device(dev: &PciDevice, n: &str, host_uses: bool) -> Check {
    let name = format!("port {n} device");
    let d = describe(dev);
    if dev.driver.as_deref() == Some("vfio-pci") {
        return Check::ok(name, d);
    }
    if is_bifurcated(dev) {
        return Check::ok(
            name,
            format!("{d} (bifurcated driver: DPDK uses it without vfio-pci)"),
        );
    }
    if host_uses {
        return Check::fail(
            name,
            format!("{d}; not on vfio-pci, and the host uses it"),
            format!("see `port {n} host use`: pick a NIC the host does not use"),
        );
    }
    Check::fail(name, format!("{d}; not bound to vfio-pci"), bind_fix(dev))
}

fn group_member_ok(driver: Option<&str>) -> bool {
    matches!(driver, None | Some("vfio-pci") | Some("pcieport"))
}

fn check_group(host: &dyn Host, dev: &PciDevice, n: &str) -> Check {
    let name = format!("port {n} iommu group");
    if is_bifurcated(dev) {
        return Check::skip(name, "bifurcated driver: no VFIO group needed");
    }
    let Some(g) = dev.iommu_group else {
        return Check::fail(
            name,
            format!("{} has no IOMMU group (the IOMMU is off)", dev.addr),
            iommu_fix(host),
        );
    };
    let members: Vec<PciDevice> = sysfs::iommu_group_devices(host, g)
        .into_iter()
        .filter_map(|a| sysfs::pci_device(host, a))
        .collect();
    let list = members
        .iter()
        .map(|m| {
            format!(
                "{} ({})",
                m.addr,
                m.driver.as_deref().unwrap_or("no driver")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let bad: Vec<&PciDevice> = members
        .iter()
        .filter(|m| m.addr != dev.addr && !group_member_ok(m.driver.as_deref()))
        .collect();
    if !bad.is_empty() {
        let names = bad
            .iter()
            .map(|m| format!("{} ({})", m.addr, m.driver.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", ");
        let fixes = bad
            .iter()
            .map(|m| bind_fix(m))
            .collect::<Vec<_>>()
            .join("; ");
        return Check::fail(
            name,
            format!(
                "group {g} is not viable: {names} is still on a kernel driver (group: {list}); \
                 VFIO needs every device of the group on vfio-pci or unbound"
            ),
            format!("bind the other device(s) too: {fixes}; or move the NIC to a slot with its own group (ACS)"),
        );
    }
    if dev.driver.as_deref() == Some("vfio-pci") {
        let node = Path::new("/dev/vfio").join(g.to_string());
        if host.exists(Path::new("/dev/vfio")) && !host.exists(&node) {
            return Check::fail(
                name,
                format!(
                    "group {g} is viable ({list}) but {} is missing",
                    node.display()
                ),
                "expose /dev/vfio to the data plane (hostPath /dev/vfio in the pod spec)",
            );
        }
    }
    match host.vfio_group_viable(&Path::new("/sys/bus/pci/devices").join(dev.addr.to_string())) {
        Some(Ok(true)) | None => {}
        Some(Ok(false)) => {
            return Check::fail(
                name,
                format!("group {g} ({list}): the kernel's VFIO reports the group not viable"),
                "bind every device of the group to vfio-pci or unbind it; check `ls /sys/kernel/iommu_groups/<g>/devices`",
            )
        }
        Some(Err(e)) => {
            return Check::warn(
                name,
                format!("group {g} viable by sysfs ({list}); the VFIO probe failed: {e}"),
                "stop other users of the group (a running data plane holds it) and re-run check-host",
            )
        }
    }
    Check::ok(name, format!("group {g} viable: {list}"))
}

fn worker_nodes(host: &dyn Host, cfg: &Config) -> BTreeSet<usize> {
    cfg.cores
        .workers
        .iter()
        .filter_map(|&c| sysfs::cpu_node(host, c))
        .collect()
}

fn check_numa(host: &dyn Host, cfg: &Config, dev: &PciDevice, n: &str) -> Check {
    let name = format!("port {n} numa");
    let Some(node) = dev.numa_node else {
        return Check::ok(name, format!("{}: no NUMA affinity reported", dev.addr));
    };
    let node_us = node as usize;
    if cfg.memory.hugepages && cfg.memory.socket_mem_mb.get(node_us).copied().unwrap_or(0) == 0 {
        let mut want = cfg.memory.socket_mem_mb.clone();
        want.resize(want.len().max(node_us + 1), 0);
        let fill = want.iter().copied().max().unwrap_or(256);
        if let Some(slot) = want.get_mut(node_us) {
            *slot = fill;
        }
        return Check::fail(
            name,
            format!("{} is on NUMA node {node}, where memory.socket_mem_mb reserves nothing for its queues", dev.addr),
            format!("set memory.socket_mem_mb = {want:?}"),
        );
    }
    let wn = worker_nodes(host, cfg);
    let wl = sysfs::format_cpu_list(&cfg.cores.workers);
    if wn.is_empty() || wn.contains(&node_us) {
        return Check::ok(
            name,
            format!(
                "{} on NUMA node {node}, workers {wl} on the same node",
                dev.addr
            ),
        );
    }
    let local = host
        .read_file(Path::new(&format!(
            "/sys/devices/system/node/node{node}/cpulist"
        )))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let wns = wn
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",");
    Check::warn(
        name,
        format!(
            "{} is on NUMA node {node} but workers {wl} are on node {wns}: every packet crosses the NUMA interconnect",
            dev.addr
        ),
        format!("use workers on node {node} (cpus {local}) in cores.workers, or move the NIC to a slot of node {wns}"),
    )
}

fn check_host_use(host: &dyn Host, dev: &PciDevice, n: &str, uses: &[sysfs::HostUse]) -> Check {
    let name = format!("port {n} host use");
    if uses.is_empty() {
        let ifs: Vec<String> = sysfs::host_use_of_device(host, dev.addr)
            .into_iter()
            .map(|h| h.iface)
            .collect();
        return Check::ok(
            name,
            if ifs.is_empty() {
                format!("{}: no kernel interface, not used by the host", dev.addr)
            } else {
                format!(
                    "{}: {} has no address or route, not used by the host",
                    dev.addr,
                    ifs.join(", ")
                )
            },
        );
    }
    let why = uses
        .iter()
        .map(|h| format!("{} {}", h.iface, h.reasons.join(" and ")))
        .collect::<Vec<_>>()
        .join("; ");
    Check::fail(
        name,
        format!("{}: {why}; taking it would cut the host off", dev.addr),
        "use a NIC the host does not use for the data plane, or move the host's addresses and routes off it first",
    )
}

fn check_sriov(
    host: &dyn Host,
    n: &str,
    i: usize,
    pf: PciAddr,
    vf: u16,
) -> (Check, Option<PciAddr>) {
    let name = format!("port {n} sriov");
    let Some(pfdev) = sysfs::pci_device(host, pf) else {
        return (
            Check::fail(
                name,
                format!("PF {pf} is not present"),
                format!("find the PF's address with `lspci -D -d ::0200` and set ports[{i}].vf.pf"),
            ),
            None,
        );
    };
    let Some(s) = sysfs::sriov(host, pf) else {
        return (
            Check::fail(
                name,
                format!(
                    "PF {pf} {} has no SR-IOV capability (no sriov_totalvfs)",
                    pfdev.model()
                ),
                "enable SR-IOV for the NIC in the firmware, or use a NIC that supports it",
            ),
            None,
        );
    };
    let numvfs = pci_dir(pf).join("sriov_numvfs");
    let drv = pfdev.driver.as_deref().unwrap_or("no driver");
    if u32::from(vf) >= s.total {
        return (
            Check::fail(
                name,
                format!(
                    "VF {vf} asked, but PF {pf} ({drv}) supports {} VFs",
                    s.total
                ),
                format!("use a VF index below {}", s.total),
            ),
            None,
        );
    }
    match s.vfs.iter().find(|(i, _)| *i == vf) {
        Some((_, a)) => (
            Check::ok(
                name,
                format!(
                    "PF {pf} ({drv}): {} of {} VFs, virtfn{vf} = {a}",
                    s.num, s.total
                ),
            ),
            Some(*a),
        ),
        None => {
            let want = u32::from(vf) + 1;
            let fix = if s.num == 0 {
                format!(
                    "echo {want} > {}, or run check-host --apply",
                    numvfs.display()
                )
            } else {
                format!(
                    "echo 0 > {p} && echo {want} > {p} (this destroys the existing VFs)",
                    p = numvfs.display()
                )
            };
            (
                Check::fail(
                    name,
                    format!(
                        "PF {pf} ({drv}) has {} of {} VFs; VF {vf} does not exist",
                        s.num, s.total
                    ),
                    fix,
                ),
                None,
            )
        }
    }
}
