//! The EAL argument vector a config implies.
//!
//! Order: `argv[0]`, `-l <control,workers>` (or `--lcores` when the control thread
//! shares a worker's core, see [`Config::control_lcore`]), `--main-lcore`, `--in-memory`,
//! `--file-prefix`, `--iova-mode`, then either `--no-pci` or one `-a <BDF>` per PCI/VF
//! port, one `--vdev` per vdev port (declaration order) and one for the bond, then
//! `--socket-mem` (+ `--huge-dir`) or `--no-huge -m <MiB>`, `--log-level lib.eal:<lvl>`
//! and finally `eal.extra_args` verbatim.
//!
//! DPDK numbers ports in probe order: allow-listed PCI devices first (in PCI address
//! order), then vdevs in `--vdev` order, the bond last. The daemon should therefore map
//! a config port to its DPDK port through [`device_names`] and
//! `rte_eth_dev_get_port_by_name`, not by position.

use std::path::{Path, PathBuf};

use crate::config::{Config, PortConfig, PortSource};
use crate::types::PciAddr;

/// Why the EAL arguments could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EalError {
    /// A VF port's PF has no `virtfn<N>` link (VFs not created, or wrong PF/index).
    #[error("port `{port}`: VF {vf} of {pf} not found: {link} does not exist ({source}); create the VFs with `echo {want} > {numvfs}`")]
    VfMissing {
        /// Port name.
        port: String,
        /// The PF.
        pf: PciAddr,
        /// The VF index.
        vf: u16,
        /// The link that was read.
        link: PathBuf,
        /// The `sriov_numvfs` file of the PF.
        numvfs: PathBuf,
        /// The number of VFs needed to have index `vf`.
        want: u32,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The `virtfn<N>` link does not end in a PCI address.
    #[error("port `{port}`: {link} points to `{target}`, which is not a PCI address")]
    VfBadLink {
        /// Port name.
        port: String,
        /// The link.
        link: PathBuf,
        /// Its target.
        target: String,
    },
}

/// Path of the `virtfn<N>` link of a PF under `root`.
pub fn virtfn_link(root: &Path, pf: PciAddr, vf: u16) -> PathBuf {
    root.join("sys/bus/pci/devices")
        .join(pf.to_string())
        .join(format!("virtfn{vf}"))
}

/// Resolves VF `vf` of `pf` to its PCI address through sysfs under `root`.
pub fn resolve_vf(root: &Path, port: &str, pf: PciAddr, vf: u16) -> Result<PciAddr, EalError> {
    let link = virtfn_link(root, pf, vf);
    let target = std::fs::read_link(&link).map_err(|source| EalError::VfMissing {
        port: port.to_string(),
        pf,
        vf,
        numvfs: root
            .join("sys/bus/pci/devices")
            .join(pf.to_string())
            .join("sriov_numvfs"),
        want: u32::from(vf) + 1,
        link: link.clone(),
        source,
    })?;
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    name.parse().map_err(|_| EalError::VfBadLink {
        port: port.to_string(),
        link,
        target: target.display().to_string(),
    })
}

/// The PCI address of a PCI or VF port (VFs resolved under `root`), `None` for vdevs.
pub fn port_pci_addr(root: &Path, port: &PortConfig) -> Result<Option<PciAddr>, EalError> {
    match &port.source {
        PortSource::Pci { addr } => Ok(Some(*addr)),
        PortSource::Vf { pf, vf } => resolve_vf(root, &port.name, *pf, *vf).map(Some),
        PortSource::Vdev { .. } => Ok(None),
    }
}

/// The DPDK device name of each port (aligned with `cfg.ports`): the PCI address for
/// PCI and VF ports, the vdev name (devargs up to the first comma) for vdevs. Use with
/// `rte_eth_dev_get_port_by_name`.
pub fn device_names(cfg: &Config, root: &Path) -> Result<Vec<String>, EalError> {
    cfg.ports
        .iter()
        .map(|p| match &p.source {
            PortSource::Vdev { devargs } => Ok(devargs
                .split(',')
                .next()
                .unwrap_or(devargs)
                .trim()
                .to_string()),
            _ => port_pci_addr(root, p).map(|a| a.map(|a| a.to_string()).unwrap_or_default()),
        })
        .collect()
}

/// The DPDK device name of the bond (`net_bonding_<name>`), if one is configured.
pub fn bond_device_name(cfg: &Config) -> Option<String> {
    cfg.bond.as_ref().map(|b| format!("net_bonding_{}", b.name))
}

/// The exact EAL argv (`argv[0]` = `program_name`), with VF ports resolved through the
/// sysfs tree under `sysfs_root` (`/` on a real host).
pub fn eal_args_with_root(
    cfg: &Config,
    program_name: &str,
    sysfs_root: &Path,
) -> Result<Vec<String>, EalError> {
    let mut pci = Vec::new();
    let mut pci_of = Vec::new();
    for p in &cfg.ports {
        let a = port_pci_addr(sysfs_root, p)?;
        if let Some(a) = a {
            pci.push(a);
        }
        pci_of.push(a);
    }
    Ok(build(cfg, program_name, &pci, &pci_of))
}

/// The exact EAL argv for configs whose ports need no sysfs lookup (PCI and vdev
/// ports). VF ports are resolved under `/`; a VF that cannot be resolved is left out of
/// the allow-list, so a config with VF ports should use [`eal_args_with_root`], which
/// reports that as an error.
pub fn eal_args(cfg: &Config, program_name: &str) -> Vec<String> {
    let mut pci = Vec::new();
    let mut pci_of = Vec::new();
    for p in &cfg.ports {
        let a = port_pci_addr(Path::new("/"), p).ok().flatten();
        if let Some(a) = a {
            pci.push(a);
        }
        pci_of.push(a);
    }
    build(cfg, program_name, &pci, &pci_of)
}

/// Renders an argv as one shell-quoted line (for `--print-eal-args`).
pub fn render_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=.,:/@+%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn build(
    cfg: &Config,
    program_name: &str,
    pci: &[PciAddr],
    pci_of: &[Option<PciAddr>],
) -> Vec<String> {
    let mut v = vec![program_name.to_string()];
    let ctl = cfg.control_lcore();
    if ctl == cfg.cores.control {
        let mut cores = cfg.all_cores();
        cores.sort_unstable();
        cores.dedup();
        v.push("-l".into());
        v.push(
            cores
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    } else {
        // Shared control core: each worker lcore keeps its core's id and the
        // control lcore, a free id, is pinned to the same core as one of them.
        let mut workers = cfg.cores.workers.clone();
        workers.sort_unstable();
        let mut lcores: Vec<String> = workers.iter().map(|w| format!("{w}@{w}")).collect();
        lcores.push(format!("{ctl}@{}", cfg.cores.control));
        v.push("--lcores".into());
        v.push(lcores.join(","));
    }
    v.push("--main-lcore".into());
    v.push(ctl.to_string());
    if cfg.eal.in_memory {
        v.push("--in-memory".into());
    }
    if let Some(fp) = &cfg.eal.file_prefix {
        v.push("--file-prefix".into());
        v.push(fp.clone());
    }
    if let Some(m) = cfg.eal.iova_mode {
        v.push("--iova-mode".into());
        v.push(m.to_string());
    }
    if cfg.eal.no_pci || pci.is_empty() {
        v.push("--no-pci".into());
    } else {
        let mut seen = Vec::new();
        for a in pci {
            if !seen.contains(a) {
                seen.push(*a);
                v.push("-a".into());
                v.push(a.to_string());
            }
        }
    }
    for p in &cfg.ports {
        if let PortSource::Vdev { devargs } = &p.source {
            v.push("--vdev".into());
            v.push(devargs.clone());
        }
    }
    if let Some(b) = &cfg.bond {
        let mut d = format!("net_bonding_{},mode={}", b.name, b.mode.number());
        for m in &b.members {
            let idx = cfg.ports.iter().position(|p| &p.name == m);
            if let Some(Some(a)) = idx.and_then(|i| pci_of.get(i)) {
                d.push_str(&format!(",slave={a}"));
            } else if let Some(PortSource::Vdev { devargs }) =
                idx.and_then(|i| cfg.ports.get(i)).map(|p| &p.source)
            {
                // A vdev member (af_packet, af_xdp, ...) by its device name.
                let name = devargs.split(',').next().unwrap_or(devargs).trim();
                d.push_str(&format!(",slave={name}"));
            }
        }
        if let Some(x) = b.xmit_policy {
            d.push_str(&format!(",xmit_policy={}", x.devarg()));
        }
        if let Some(mac) = b.mac {
            d.push_str(&format!(",mac={mac}"));
        }
        v.push("--vdev".into());
        v.push(d);
    }
    if cfg.memory.hugepages {
        v.push("--socket-mem".into());
        v.push(
            cfg.memory
                .socket_mem_mb
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
        if let Some(d) = &cfg.eal.huge_dir {
            v.push("--huge-dir".into());
            v.push(d.display().to_string());
        }
    } else {
        let total: u64 = cfg.memory.socket_mem_mb.iter().map(|&x| u64::from(x)).sum();
        v.push("--no-huge".into());
        v.push("-m".into());
        v.push(total.to_string());
    }
    v.push("--log-level".into());
    v.push(format!("lib.eal:{}", cfg.eal.log_level));
    v.extend(cfg.eal.extra_args.iter().cloned());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_args() {
        let cfg = Config::default_demo().unwrap();
        assert_eq!(
            eal_args(&cfg, "vrouter-dp").join(" "),
            "vrouter-dp -l 0,1 --main-lcore 0 --in-memory --no-pci --vdev net_null0 \
             --vdev net_null1 --socket-mem 256 --log-level lib.eal:error"
        );
    }

    #[test]
    fn shared_control_core_maps_the_main_lcore_onto_it() {
        let src = crate::config::DEFAULT_CONFIG_TOML
            .replace("workers = [1]", "workers = [1, 0]")
            .replace("control = 0", "control = 0\nshared_control = true");
        let cfg = Config::from_toml_str(&src).unwrap();
        let args = eal_args(&cfg, "vrouter-dp").join(" ");
        assert!(
            args.starts_with("vrouter-dp --lcores 0@0,1@1,2@0 --main-lcore 2 "),
            "{args}"
        );
    }

    #[test]
    fn render_quotes_odd_args() {
        let a = vec!["x".to_string(), "a b".to_string(), "it's".to_string()];
        assert_eq!(render_args(&a), r"x 'a b' 'it'\''s'");
    }
}
