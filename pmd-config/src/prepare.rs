//! Host preparation (`check-host --apply`). Idempotent: each step first looks at the
//! host and reports `already done` when there is nothing to change. Steps, in order:
//!
//! 1. `reserve hugepages <size> node<N>`: raise `nr_hugepages` on each NUMA node that
//!    has too few free pages.
//! 2. `mount hugetlbfs`: mount a hugetlbfs of the configured page size
//!    (`eal.huge_dir`, default `/dev/hugepages` or `/dev/hugepages1G`).
//! 3. `load vfio-pci`: `modprobe vfio-pci`.
//! 4. `create VFs on <pf>`: write `sriov_numvfs` (only from 0; changing a non-zero
//!    count destroys VFs in use, so it is refused).
//! 5. `bind <addr> to vfio-pci`: `driver_override`, unbind, `drivers_probe`, refused
//!    for a NIC the host uses (default route, addresses).

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{Config, PortSource};
use crate::host::Host;
use crate::preflight::{default_huge_dir, hugetlbfs_mount, is_bifurcated, vfio_loaded};
use crate::report::{Step, StepOutcome};
use crate::sysfs::{self, pci_dir};
use crate::types::{HugepageSize, PciAddr};

fn step(name: impl Into<String>, outcome: StepOutcome, detail: impl Into<String>) -> Step {
    Step {
        name: name.into(),
        outcome,
        detail: detail.into(),
    }
}

/// Runs every preparation step the config needs and reports each.
pub fn prepare(host: &dyn Host, cfg: &Config) -> Vec<Step> {
    let mut steps = Vec::new();
    steps.extend(reserve_hugepages(host, cfg));
    steps.push(mount_hugetlbfs(host, cfg));
    let pci = !cfg.pci_ports().is_empty();
    if pci {
        steps.push(load_vfio(host));
    }
    steps.extend(create_vfs(host, cfg));
    for p in cfg.pci_ports() {
        let addr = match &p.source {
            PortSource::Pci { addr } => Some(*addr),
            PortSource::Vf { pf, vf } => sysfs::sriov(host, *pf)
                .and_then(|s| s.vfs.iter().find(|(i, _)| i == vf).map(|(_, a)| *a)),
            PortSource::Vdev { .. } => None,
        };
        match addr {
            Some(a) => steps.push(bind_vfio(host, a, &p.name)),
            None => steps.push(step(
                format!("bind port {} to vfio-pci", p.name),
                StepOutcome::Failed,
                "the VF does not exist",
            )),
        }
    }
    steps
}

fn reserve_hugepages(host: &dyn Host, cfg: &Config) -> Vec<Step> {
    let m = &cfg.memory;
    let size = m.hugepage_size;
    if !m.hugepages {
        return vec![step(
            format!("reserve hugepages {size}"),
            StepOutcome::Skipped,
            "memory.hugepages = false",
        )];
    }
    let nodes = sysfs::numa_nodes(host);
    let mut out = Vec::new();
    for (i, &mb) in m.socket_mem_mb.iter().enumerate() {
        if mb == 0 {
            continue;
        }
        let name = format!("reserve hugepages {size} node{i}");
        let dir = if nodes.is_empty() && i == 0 {
            sysfs::hugepage_dir(None, size)
        } else if nodes.contains(&i) {
            sysfs::hugepage_dir(Some(i), size)
        } else {
            out.push(step(
                name,
                StepOutcome::Failed,
                format!("NUMA node {i} does not exist"),
            ));
            continue;
        };
        let needed = m.pages_needed(i);
        let Some(h) = sysfs::hugepages(host, &dir) else {
            out.push(step(
                name,
                StepOutcome::Failed,
                format!("no {size} hugepage support ({})", dir.display()),
            ));
            continue;
        };
        if h.free >= needed {
            out.push(step(
                name,
                StepOutcome::AlreadyDone,
                format!("{} free, {needed} needed", h.free),
            ));
            continue;
        }
        let target = h.nr + (needed - h.free);
        let file = dir.join("nr_hugepages");
        if let Err(e) = host.write_file(&file, &target.to_string()) {
            out.push(step(
                name,
                StepOutcome::Failed,
                format!("writing {target} to {}: {e}", file.display()),
            ));
            continue;
        }
        match sysfs::hugepages(host, &dir) {
            Some(after) if after.free >= needed => out.push(step(
                name,
                StepOutcome::Done,
                format!("nr_hugepages {} -> {}, {} free, {needed} needed", h.nr, after.nr, after.free),
            )),
            Some(after) => out.push(step(
                name,
                StepOutcome::Failed,
                format!(
                    "asked for {target} pages, the kernel reserved {} ({} free, {needed} needed): memory is \
                     fragmented or short; reserve them at boot with `{}hugepages={target}`",
                    after.nr,
                    after.free,
                    if size == HugepageSize::Size1G { "hugepagesz=1G " } else { "" }
                ),
            )),
            None => out.push(step(name, StepOutcome::Failed, format!("{} unreadable after writing", dir.display()))),
        }
    }
    out
}

fn mount_hugetlbfs(host: &dyn Host, cfg: &Config) -> Step {
    let name = "mount hugetlbfs";
    let size = cfg.memory.hugepage_size;
    if !cfg.memory.hugepages {
        return step(name, StepOutcome::Skipped, "memory.hugepages = false");
    }
    if let Some(m) = hugetlbfs_mount(host, cfg) {
        return step(
            name,
            StepOutcome::AlreadyDone,
            format!("pagesize={size} at {}", m.target.display()),
        );
    }
    if cfg.eal.in_memory && cfg.eal.huge_dir.is_none() {
        return step(name, StepOutcome::Skipped, "not needed with eal.in_memory");
    }
    let dir = cfg
        .eal
        .huge_dir
        .clone()
        .unwrap_or_else(|| default_huge_dir(size));
    if let Err(e) = host.create_dir_all(&dir) {
        return step(
            name,
            StepOutcome::Failed,
            format!("mkdir {}: {e}", dir.display()),
        );
    }
    match host.mount("hugetlbfs", "nodev", &dir, &format!("pagesize={size}")) {
        Ok(()) => step(
            name,
            StepOutcome::Done,
            format!("mounted pagesize={size} at {}", dir.display()),
        ),
        Err(e) => step(
            name,
            StepOutcome::Failed,
            format!("mount at {}: {e}", dir.display()),
        ),
    }
}

fn load_vfio(host: &dyn Host) -> Step {
    let name = "load vfio-pci";
    if vfio_loaded(host) {
        return step(name, StepOutcome::AlreadyDone, "vfio-pci is loaded");
    }
    match host.run_command("modprobe", &["vfio-pci"]) {
        Ok(o) if o.success() && vfio_loaded(host) => {
            step(name, StepOutcome::Done, "modprobe vfio-pci")
        }
        Ok(o) => step(
            name,
            StepOutcome::Failed,
            format!(
                "modprobe vfio-pci: {}",
                if o.stderr.trim().is_empty() {
                    "driver did not appear"
                } else {
                    o.stderr.trim()
                }
            ),
        ),
        Err(e) => step(name, StepOutcome::Failed, format!("modprobe vfio-pci: {e}")),
    }
}

fn create_vfs(host: &dyn Host, cfg: &Config) -> Vec<Step> {
    let mut want: BTreeMap<PciAddr, u32> = BTreeMap::new();
    for p in &cfg.ports {
        if let PortSource::Vf { pf, vf } = p.source {
            let e = want.entry(pf).or_insert(0);
            *e = (*e).max(u32::from(vf) + 1);
        }
    }
    let mut out = Vec::new();
    for (pf, needed) in want {
        let name = format!("create VFs on {pf}");
        let numvfs = pci_dir(pf).join("sriov_numvfs");
        let Some(s) = sysfs::sriov(host, pf) else {
            out.push(step(
                name,
                StepOutcome::Failed,
                format!("{pf} is not present or has no SR-IOV capability"),
            ));
            continue;
        };
        if s.num >= needed {
            out.push(step(
                name,
                StepOutcome::AlreadyDone,
                format!("{} VFs, {needed} needed", s.num),
            ));
            continue;
        }
        if needed > s.total {
            out.push(step(
                name,
                StepOutcome::Failed,
                format!("{needed} VFs needed, the PF supports {}", s.total),
            ));
            continue;
        }
        if s.num > 0 {
            out.push(step(
                name,
                StepOutcome::Refused,
                format!(
                    "the PF already has {} VFs and changing the count destroys them (and whatever uses them); \
                     if that is safe: echo 0 > {p} && echo {needed} > {p}",
                    s.num,
                    p = numvfs.display()
                ),
            ));
            continue;
        }
        if let Err(e) = host.write_file(&numvfs, &needed.to_string()) {
            out.push(step(
                name,
                StepOutcome::Failed,
                format!("writing {needed} to {}: {e}", numvfs.display()),
            ));
            continue;
        }
        match sysfs::sriov(host, pf) {
            Some(after) if after.vfs.len() as u32 >= needed => {
                let list = after
                    .vfs
                    .iter()
                    .map(|(i, a)| format!("virtfn{i}={a}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                out.push(step(
                    name,
                    StepOutcome::Done,
                    format!("sriov_numvfs 0 -> {needed}: {list}"),
                ));
            }
            _ => out.push(step(
                name,
                StepOutcome::Failed,
                format!("wrote {needed} but the VFs did not appear"),
            )),
        }
    }
    out
}

fn bind_vfio(host: &dyn Host, addr: PciAddr, port: &str) -> Step {
    let name = format!("bind {addr} to vfio-pci");
    let Some(dev) = sysfs::pci_device(host, addr) else {
        return step(
            name,
            StepOutcome::Failed,
            format!("port {port}: {addr} is not present"),
        );
    };
    if dev.driver.as_deref() == Some("vfio-pci") {
        return step(
            name,
            StepOutcome::AlreadyDone,
            format!("port {port}: bound to vfio-pci"),
        );
    }
    if is_bifurcated(&dev) {
        return step(
            name,
            StepOutcome::Skipped,
            format!("port {port}: mlx5_core is bifurcated, DPDK uses it as is"),
        );
    }
    let uses: Vec<String> = sysfs::host_use_of_device(host, addr)
        .into_iter()
        .filter(|h| !h.reasons.is_empty())
        .map(|h| format!("{} {}", h.iface, h.reasons.join(" and ")))
        .collect();
    if !uses.is_empty() {
        return step(
            name,
            StepOutcome::Refused,
            format!(
                "port {port}: the host uses this NIC ({}); binding it would cut the host off",
                uses.join("; ")
            ),
        );
    }
    if !vfio_loaded(host) {
        return step(
            name,
            StepOutcome::Failed,
            format!("port {port}: vfio-pci is not loaded"),
        );
    }
    let dir = pci_dir(addr);
    let a = addr.to_string();
    if let Err(e) = host.write_file(&dir.join("driver_override"), "vfio-pci") {
        return step(
            name,
            StepOutcome::Failed,
            format!("writing driver_override: {e}"),
        );
    }
    if let Some(old) = &dev.driver {
        if let Err(e) = host.write_file(&dir.join("driver/unbind"), &a) {
            return step(
                name,
                StepOutcome::Failed,
                format!("unbinding from {old}: {e}"),
            );
        }
    }
    if let Err(e) = host.write_file(Path::new("/sys/bus/pci/drivers_probe"), &a) {
        return step(name, StepOutcome::Failed, format!("drivers_probe: {e}"));
    }
    // Kernels without driver_override support in drivers_probe: bind explicitly.
    if sysfs::pci_device(host, addr)
        .and_then(|d| d.driver)
        .is_none()
    {
        let _ = host.write_file(Path::new("/sys/bus/pci/drivers/vfio-pci/bind"), &a);
    }
    match sysfs::pci_device(host, addr).and_then(|d| d.driver) {
        Some(d) if d == "vfio-pci" => step(
            name,
            StepOutcome::Done,
            format!(
                "port {port}: was {}",
                dev.driver.as_deref().unwrap_or("unbound")
            ),
        ),
        other => step(
            name,
            StepOutcome::Failed,
            format!(
                "port {port}: still on {} after drivers_probe",
                other.as_deref().unwrap_or("no driver")
            ),
        ),
    }
}
