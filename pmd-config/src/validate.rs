//! Cross-field validation: turns the raw TOML form into a [`Config`], collecting every
//! problem with its field path, reason and line.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::config::{
    BondMode, Config, Control, Eal, EcmpMember, InterfaceKind, Nexthop, NexthopKind, PortConfig,
    PortNetns, PortRole, PortSource, TunnelEncap,
};
use crate::error::{ConfigError, FieldError, FieldPath};
use crate::locate::Locator;
use crate::schema::{RawConfig, RawNexthop, RawNhKind, RawPort};
use crate::types::IpPrefix;

/// Highest lcore id a default DPDK build accepts (`RTE_MAX_LCORE` = 128).
pub const MAX_LCORE: u32 = 127;
/// Number of VRFs (TF default `--vr_vrfs`).
pub const MAX_VRFS: u32 = 4096;
/// Number of interfaces (TF `VR_MAX_INTERFACES`).
pub const MAX_INTERFACES: u32 = 4352;
/// Number of next-hops (TF default `--vr_nexthops`).
pub const MAX_NEXTHOPS: u32 = 524_288;
/// MPLS labels are 20 bits; 0..=15 are reserved.
pub const MAX_LABEL: u32 = (1 << 20) - 1;
/// VXLAN VNIs are 24 bits.
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// Largest per-mempool cache DPDK accepts (`RTE_MEMPOOL_CACHE_MAX_SIZE`).
pub const MAX_MBUF_CACHE: u32 = 512;
/// Bytes one mbuf takes in its pool (2 KiB data room + headroom + headers), rounded up.
pub const MBUF_FOOTPRINT: u64 = 2560;

const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];
const EAL_LOG_LEVELS: &[&str] = &[
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];
/// EAL options derived from the config; setting them in `extra_args` would conflict.
const DERIVED_EAL_OPTS: &[&str] = &[
    "-l",
    "-c",
    "--lcores",
    "--main-lcore",
    "--master-lcore",
    "--socket-mem",
    "-m",
    "--no-huge",
    "--in-memory",
    "--file-prefix",
    "--iova-mode",
    "--huge-dir",
    "--no-pci",
    "-a",
    "--allow",
    "-w",
    "--vdev",
];

struct Ctx {
    errors: Vec<(FieldPath, String)>,
    warnings: Vec<(FieldPath, String)>,
}

impl Ctx {
    fn err(&mut self, p: FieldPath, reason: impl Into<String>) {
        self.errors.push((p, reason.into()));
    }
    fn warn(&mut self, p: FieldPath, reason: impl Into<String>) {
        self.warnings.push((p, reason.into()));
    }
}

fn root() -> FieldPath {
    FieldPath::default()
}

/// Parses TOML and validates it.
pub(crate) fn parse_and_validate(src: &str) -> Result<Config, ConfigError> {
    let loc = Locator::new(src);
    let raw: RawConfig = toml::from_str(src).map_err(|e| {
        let (path, line) = match e.span() {
            Some(s) => (loc.path_at(s.start).to_string(), Some(loc.line_of(s.start))),
            None => (String::new(), None),
        };
        ConfigError::Parse {
            file: None,
            error: FieldError {
                path,
                reason: e.message().trim().to_string(),
                line,
            },
        }
    })?;
    let to_field = |(p, reason): (FieldPath, String)| FieldError {
        line: loc.line_of_path(&p),
        path: p.to_string(),
        reason,
    };
    match validate(raw) {
        Ok((mut cfg, warnings)) => {
            cfg.warnings = warnings.into_iter().map(to_field).collect();
            Ok(cfg)
        }
        Err(errors) => Err(ConfigError::Invalid {
            file: None,
            errors: errors.into_iter().map(to_field).collect(),
        }),
    }
}

type Findings = Vec<(FieldPath, String)>;

fn validate(raw: RawConfig) -> Result<(Config, Findings), Findings> {
    let mut cx = Ctx {
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let nworkers = raw.cores.workers.len();

    check_cores(&raw, &mut cx);
    check_memory(&raw, &mut cx);
    let ports = check_ports(&raw.ports, nworkers, &mut cx);
    let has_pci = ports.iter().any(|p| p.source.is_pci());
    let eal = check_eal(&raw, has_pci, &mut cx);
    check_mbufs(&raw, &ports, &mut cx);

    // Names: ports, bond, vhost-user sockets share one namespace.
    let mut names: HashMap<String, FieldPath> = HashMap::new();
    for (i, p) in raw.ports.iter().enumerate() {
        names
            .entry(p.name.clone())
            .or_insert_with(|| root().key("ports").index(i).key("name"));
    }
    check_bond(&raw, &ports, &mut names, &mut cx);
    check_vhost(&raw, nworkers, &mut names, &mut cx);
    let control = check_control(&raw, &mut cx);
    check_underlay(&raw, &ports, &mut cx);
    check_telemetry(&raw, &mut cx);
    check_flows(&raw, &mut cx);
    if !LOG_LEVELS.contains(&raw.log_level.as_str()) {
        cx.err(
            root().key("log_level"),
            format!(
                "`{}` is not a log level (expected one of {})",
                raw.log_level,
                LOG_LEVELS.join(", ")
            ),
        );
    }

    let vrfs = check_vrfs(&raw, &mut cx);
    check_interfaces(&raw, &ports, &vrfs, &mut cx);
    let nexthops = check_nexthops(&raw, &vrfs, &mut cx);
    check_routes(&raw, &vrfs, &nexthops, &mut cx);
    check_labels_vnis(&raw, &vrfs, &nexthops, &mut cx);

    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    let cfg = Config {
        cores: raw.cores,
        memory: raw.memory,
        eal,
        ports,
        bond: raw.bond,
        vhost_user: raw.vhost_user,
        underlay: raw.underlay,
        interfaces: raw.interfaces,
        vrfs: raw.vrfs,
        nexthops: nexthops.into_values().collect(),
        routes: raw.routes,
        labels: raw.labels,
        vnis: raw.vnis,
        control,
        telemetry: raw.telemetry,
        flows: raw.flows,
        log_level: raw.log_level,
        warnings: Vec::new(),
    };
    Ok((cfg, cx.warnings))
}

fn check_cores(raw: &RawConfig, cx: &mut Ctx) {
    let p = root().key("cores");
    if raw.cores.workers.is_empty() {
        cx.err(p.key("workers"), "at least one worker core is needed");
    }
    let mut seen = BTreeSet::new();
    for (i, &c) in raw.cores.workers.iter().enumerate() {
        let wp = p.key("workers").index(i);
        if !seen.insert(c) {
            cx.err(wp.clone(), format!("core {c} is used twice"));
        }
        if c == raw.cores.control && !raw.cores.shared_control {
            cx.err(
                wp.clone(),
                format!(
                    "core {c} is the control core (cores.control); a worker must have its own core \
                     (or set cores.shared_control = true to let the control thread share it)"
                ),
            );
        }
        if c > MAX_LCORE {
            cx.err(
                wp,
                format!("core {c} is above DPDK's highest lcore id {MAX_LCORE} (RTE_MAX_LCORE)"),
            );
        }
    }
    let ctl = raw.cores.control;
    let workers = &raw.cores.workers;
    if raw.cores.shared_control && workers.contains(&ctl) {
        cx.warn(
            p.key("shared_control"),
            format!(
                "the worker on core {ctl} shares it with the control thread: its packets wait \
                 while the control thread runs"
            ),
        );
        // The control thread takes the lowest lcore id no worker uses.
        if (0..=MAX_LCORE).all(|id| workers.contains(&id)) {
            cx.err(
                p.key("shared_control"),
                format!("no lcore id up to {MAX_LCORE} is left for the control thread"),
            );
        }
    } else if raw.cores.shared_control {
        cx.warn(
            p.key("shared_control"),
            format!("no worker runs on the control core {ctl}: nothing is shared"),
        );
    }
    if raw.cores.control > MAX_LCORE {
        cx.err(
            p.key("control"),
            format!(
                "core {} is above DPDK's highest lcore id {MAX_LCORE} (RTE_MAX_LCORE)",
                raw.cores.control
            ),
        );
    }
}

fn check_memory(raw: &RawConfig, cx: &mut Ctx) {
    let m = &raw.memory;
    let p = root().key("memory");
    if m.socket_mem_mb.is_empty() || m.socket_mem_mb.iter().all(|&x| x == 0) {
        cx.err(
            p.key("socket_mem_mb"),
            "no memory: give the MiB to reserve on at least one NUMA node",
        );
    }
    if m.hugepages {
        let page = m.hugepage_size.mib();
        for (i, &mb) in m.socket_mem_mb.iter().enumerate() {
            if u64::from(mb) % page != 0 {
                cx.err(
                    p.key("socket_mem_mb").index(i),
                    format!(
                        "{mb} MiB is not a multiple of the {} hugepage size",
                        m.hugepage_size
                    ),
                );
            }
        }
    }
    if m.mbufs_per_pool < 1024 {
        cx.err(
            p.key("mbufs_per_pool"),
            format!("{} mbufs is below the minimum of 1024", m.mbufs_per_pool),
        );
    }
    if m.mbuf_cache > MAX_MBUF_CACHE {
        cx.err(
            p.key("mbuf_cache"),
            format!(
                "{} is above DPDK's maximum mempool cache of {MAX_MBUF_CACHE}",
                m.mbuf_cache
            ),
        );
    } else if u64::from(m.mbuf_cache) * 3 > u64::from(m.mbufs_per_pool) * 2 {
        cx.err(
            p.key("mbuf_cache"),
            format!(
                "a cache of {} needs at least {} mbufs per pool (1.5 x cache); mbufs_per_pool is {}",
                m.mbuf_cache,
                u64::from(m.mbuf_cache) * 3 / 2,
                m.mbufs_per_pool
            ),
        );
    }
    let pool_mb = (u64::from(m.mbufs_per_pool) * MBUF_FOOTPRINT).div_ceil(1 << 20);
    let total: u64 = m.socket_mem_mb.iter().map(|&x| u64::from(x)).sum();
    if total > 0 && total < pool_mb + 32 {
        cx.err(
            p.key("socket_mem_mb"),
            format!(
                "{total} MiB cannot hold a pool of {} mbufs ({pool_mb} MiB) plus 32 MiB for EAL; \
                 raise socket_mem_mb or lower mbufs_per_pool",
                m.mbufs_per_pool
            ),
        );
    }
}

fn check_ports(raw: &[RawPort], nworkers: usize, cx: &mut Ctx) -> Vec<PortConfig> {
    let mut out = Vec::new();
    let mut names = HashMap::new();
    let mut pcis: HashMap<String, usize> = HashMap::new();
    let mut vdevs: HashMap<String, usize> = HashMap::new();
    for (i, rp) in raw.iter().enumerate() {
        let p = root().key("ports").index(i);
        if rp.name.is_empty() {
            cx.err(p.key("name"), "a port needs a non-empty name");
        } else if let Some(j) = names.insert(rp.name.clone(), i) {
            cx.err(
                p.key("name"),
                format!("port name `{}` is already used by ports[{j}]", rp.name),
            );
        }
        let given = [rp.pci.is_some(), rp.vf.is_some(), rp.vdev.is_some()]
            .iter()
            .filter(|&&b| b)
            .count();
        if given != 1 {
            cx.err(
                p.clone(),
                format!(
                    "exactly one of `pci`, `vf` or `vdev` must be given ({})",
                    if given == 0 { "none is" } else { "several are" }
                ),
            );
        }
        let source = if let Some(addr) = rp.pci {
            if let Some(j) = pcis.insert(addr.to_string(), i) {
                cx.err(
                    p.key("pci"),
                    format!("PCI device {addr} is already used by ports[{j}]"),
                );
            }
            Some(PortSource::Pci { addr })
        } else if let Some(vf) = &rp.vf {
            let key = format!("{}#vf{}", vf.pf, vf.index);
            if let Some(j) = pcis.insert(key, i) {
                cx.err(
                    p.key("vf"),
                    format!("VF {} of {} is already used by ports[{j}]", vf.index, vf.pf),
                );
            }
            Some(PortSource::Vf {
                pf: vf.pf,
                vf: vf.index,
            })
        } else if let Some(d) = &rp.vdev {
            let driver = d.split(',').next().unwrap_or("").trim();
            if driver.is_empty() || driver.contains(char::is_whitespace) {
                cx.err(
                    p.key("vdev"),
                    format!("`{d}` is not a DPDK vdev string (expected `net_<driver><n>[,key=value...]`)"),
                );
            } else if let Some(j) = vdevs.insert(driver.to_string(), i) {
                cx.err(
                    p.key("vdev"),
                    format!("vdev name `{driver}` is already used by ports[{j}]"),
                );
            }
            Some(PortSource::Vdev { devargs: d.clone() })
        } else {
            None
        };
        for (field, q) in [("rx_queues", rp.rx_queues), ("tx_queues", rp.tx_queues)] {
            if q == 0 {
                cx.err(p.key(field), "at least one queue is needed");
            } else if nworkers > 0 && usize::from(q) > nworkers {
                cx.err(
                    p.key(field),
                    format!(
                        "{q} queues but only {nworkers} worker(s): each queue is served by one worker, \
                         so at most {nworkers} can be used"
                    ),
                );
            }
        }
        for (field, d) in [("rx_desc", rp.rx_desc), ("tx_desc", rp.tx_desc)] {
            if !(64..=32768).contains(&d) || !d.is_power_of_two() {
                cx.err(
                    p.key(field),
                    format!("{d} descriptors: expected a power of two from 64 to 32768"),
                );
            }
        }
        if let Some(mtu) = rp.mtu {
            if !(68..=9702).contains(&mtu) {
                cx.err(p.key("mtu"), format!("MTU {mtu} is outside 68..=9702"));
            }
        }
        let netns = check_port_netns(rp, &p, cx);
        if let Some(source) = source {
            out.push(PortConfig {
                name: rp.name.clone(),
                source,
                rx_queues: rp.rx_queues,
                tx_queues: rp.tx_queues,
                rx_desc: rp.rx_desc,
                tx_desc: rp.tx_desc,
                mtu: rp.mtu,
                role: rp.role,
                netns,
            });
        }
    }
    out
}

/// Longest Linux interface name (`IFNAMSIZ` - 1).
const MAX_IFNAME: usize = 15;

fn ifname_problem(n: &str) -> Option<String> {
    if n.is_empty() || n.len() > MAX_IFNAME {
        return Some(format!(
            "`{n}` is not an interface name (1 to {MAX_IFNAME} bytes)"
        ));
    }
    if n == "." || n == ".." || n.contains(['/', ':', ',', '=']) || n.contains(char::is_whitespace)
    {
        return Some(format!(
            "`{n}` is not an interface name (no `/`, `:`, `,`, `=` or spaces)"
        ));
    }
    None
}

/// `netns` / `ifname` of a port: kernel pods on `net_tap` pod ports only; the tap
/// must be named with `iface=` so that it can be found and moved.
fn check_port_netns(rp: &RawPort, p: &FieldPath, cx: &mut Ctx) -> Option<PortNetns> {
    let Some(ns) = &rp.netns else {
        if rp.ifname.is_some() {
            cx.err(p.key("ifname"), "set without `netns`");
        }
        return None;
    };
    let driver = rp
        .vdev
        .as_deref()
        .and_then(|d| d.split(',').next())
        .unwrap_or("")
        .trim();
    if !driver.starts_with("net_tap") {
        cx.err(
            p.key("netns"),
            "only a `net_tap` vdev port can be moved into a pod's network namespace",
        );
        return None;
    }
    if rp.role != PortRole::Pod {
        cx.err(
            p.key("netns"),
            "only a port with role pod can be moved into a pod's network namespace",
        );
    }
    let ns_ok = if ns.starts_with('/') {
        ns.len() > 1
    } else {
        !ns.is_empty()
            && ns != "."
            && ns != ".."
            && !ns.contains('/')
            && !ns.contains(char::is_whitespace)
    };
    if !ns_ok {
        cx.err(
            p.key("netns"),
            format!(
                "`{ns}` is neither a namespace name (under /var/run/netns) nor an absolute path"
            ),
        );
    }
    let host = rp.vdev.as_deref().and_then(|d| {
        d.split(',')
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k.trim() == "iface")
            .map(|(_, v)| v.trim().to_string())
    });
    let Some(host) = host else {
        cx.err(
            p.key("vdev"),
            "a port with `netns` needs `iface=<name>` in its vdev string (the tap to move)",
        );
        return None;
    };
    if let Some(why) = ifname_problem(&host) {
        cx.err(p.key("vdev"), why);
    }
    let ifname = rp.ifname.clone().unwrap_or_else(|| rp.name.clone());
    if let Some(why) = ifname_problem(&ifname) {
        let field = if rp.ifname.is_some() {
            "ifname"
        } else {
            "name"
        };
        cx.err(
            p.key(field),
            format!("{why}; it names the interface inside the namespace (set `ifname`)"),
        );
    }
    Some(PortNetns {
        netns: ns.clone(),
        ifname,
        host_ifname: host,
    })
}

fn check_eal(raw: &RawConfig, has_pci: bool, cx: &mut Ctx) -> Eal {
    let e = &raw.eal;
    let p = root().key("eal");
    if let Some(fp) = &e.file_prefix {
        if fp.is_empty() || fp.contains('/') || fp.contains(char::is_whitespace) {
            cx.err(
                p.key("file_prefix"),
                format!("`{fp}` is not a file prefix (no `/`, no spaces, not empty)"),
            );
        }
    }
    if let Some(d) = &e.huge_dir {
        if !d.is_absolute() {
            cx.err(
                p.key("huge_dir"),
                format!("`{}` is not an absolute path", d.display()),
            );
        }
        if !raw.memory.hugepages {
            cx.err(
                p.key("huge_dir"),
                "set, but memory.hugepages = false runs without hugepages",
            );
        }
    }
    if e.no_pci == Some(true) && has_pci {
        cx.err(p.key("no_pci"), "true, but PCI or VF ports are configured");
    }
    if !EAL_LOG_LEVELS.contains(&e.log_level.as_str()) {
        cx.err(
            p.key("log_level"),
            format!(
                "`{}` is not an EAL log level (expected one of {})",
                e.log_level,
                EAL_LOG_LEVELS.join(", ")
            ),
        );
    }
    for (i, a) in e.extra_args.iter().enumerate() {
        let opt = a.split('=').next().unwrap_or("");
        if DERIVED_EAL_OPTS.contains(&opt) {
            cx.err(
                p.key("extra_args").index(i),
                format!("`{opt}` is derived from the config; set the corresponding field instead"),
            );
        }
    }
    Eal {
        file_prefix: e.file_prefix.clone(),
        in_memory: e.in_memory,
        iova_mode: e.iova_mode,
        huge_dir: e.huge_dir.clone(),
        no_pci: e.no_pci.unwrap_or(!has_pci),
        log_level: e.log_level.clone(),
        extra_args: e.extra_args.clone(),
    }
}

fn check_mbufs(raw: &RawConfig, ports: &[PortConfig], cx: &mut Ctx) {
    let m = &raw.memory;
    let rings: u64 = ports
        .iter()
        .map(|p| {
            u64::from(p.rx_queues) * u64::from(p.rx_desc)
                + u64::from(p.tx_queues) * u64::from(p.tx_desc)
        })
        .sum();
    let caches = (raw.cores.workers.len() as u64 + 1) * u64::from(m.mbuf_cache);
    let needed = rings + caches;
    if u64::from(m.mbufs_per_pool) < needed {
        cx.err(
            root().key("memory").key("mbufs_per_pool"),
            format!(
                "{} mbufs cannot fill the rings ({rings} descriptors) and lcore caches ({caches}); \
                 at least {needed} are needed",
                m.mbufs_per_pool
            ),
        );
    }
}

fn check_bond(
    raw: &RawConfig,
    ports: &[PortConfig],
    names: &mut HashMap<String, FieldPath>,
    cx: &mut Ctx,
) {
    let Some(b) = &raw.bond else { return };
    let p = root().key("bond");
    if b.name.is_empty() {
        cx.err(p.key("name"), "a bond needs a non-empty name");
    } else if let Some(other) = names.get(&b.name) {
        cx.err(
            p.key("name"),
            format!("name `{}` is already used by {other}", b.name),
        );
    } else {
        names.insert(b.name.clone(), p.key("name"));
    }
    if b.members.is_empty() {
        cx.err(p.key("members"), "a bond needs at least one member port");
    } else if b.members.len() == 1 {
        cx.warn(
            p.key("members"),
            "a bond with one member gives no redundancy",
        );
    }
    let mut seen = HashSet::new();
    for (i, m) in b.members.iter().enumerate() {
        let mp = p.key("members").index(i);
        if !seen.insert(m) {
            cx.err(mp.clone(), format!("port `{m}` is listed twice"));
        }
        match ports.iter().find(|x| &x.name == m) {
            None => cx.err(mp, format!("port `{m}` is not defined in [[ports]]")),
            Some(port) => {
                if port.role != PortRole::Fabric {
                    cx.err(
                        mp,
                        format!("port `{m}` has role pod; bond members must be fabric ports"),
                    );
                }
            }
        }
    }
    if b.xmit_policy.is_some() && !matches!(b.mode, BondMode::BalanceXor | BondMode::Lacp) {
        cx.err(
            p.key("xmit_policy"),
            "only balance-xor and lacp bonds use a transmit hash policy",
        );
    }
    if b.lacp_rate.is_some() && b.mode != BondMode::Lacp {
        cx.err(p.key("lacp_rate"), "only lacp bonds have an LACP rate");
    }
    if let Some(mac) = b.mac {
        if mac.is_zero() || mac.is_multicast() {
            cx.err(p.key("mac"), format!("{mac} is not a unicast MAC address"));
        }
    }
}

fn check_vhost(
    raw: &RawConfig,
    nworkers: usize,
    names: &mut HashMap<String, FieldPath>,
    cx: &mut Ctx,
) {
    let mut paths: HashMap<PathBuf, usize> = HashMap::new();
    for (i, v) in raw.vhost_user.iter().enumerate() {
        let p = root().key("vhost_user").index(i);
        if v.name.is_empty() {
            cx.err(p.key("name"), "a vhost-user socket needs a non-empty name");
        } else if let Some(other) = names.get(&v.name) {
            cx.err(
                p.key("name"),
                format!("name `{}` is already used by {other}", v.name),
            );
        } else {
            names.insert(v.name.clone(), p.key("name"));
        }
        if !v.path.is_absolute() {
            cx.err(
                p.key("path"),
                format!("`{}` is not an absolute path", v.path.display()),
            );
        }
        if let Some(j) = paths.insert(v.path.clone(), i) {
            cx.err(
                p.key("path"),
                format!(
                    "socket path {} is already used by vhost_user[{j}]",
                    v.path.display()
                ),
            );
        }
        if raw.control.socket == v.path {
            cx.err(
                p.key("path"),
                format!("socket path {} is the control socket", v.path.display()),
            );
        }
        if v.queues == 0 {
            cx.err(p.key("queues"), "at least one queue pair is needed");
        } else if usize::from(v.queues) > nworkers {
            cx.warn(
                p.key("queues"),
                format!(
                    "{} queue pairs but {nworkers} worker(s): the extra queues are not polled",
                    v.queues
                ),
            );
        }
    }
}

fn check_control(raw: &RawConfig, cx: &mut Ctx) -> Control {
    let c = &raw.control;
    let p = root().key("control");
    if !c.socket.is_absolute() {
        cx.err(
            p.key("socket"),
            format!("`{}` is not an absolute path", c.socket.display()),
        );
    }
    let mode = match u32::from_str_radix(c.mode.trim_start_matches("0o"), 8) {
        Ok(m) if m <= 0o777 => m,
        _ => {
            cx.err(
                p.key("mode"),
                format!("`{}` is not an octal permission mode like \"0660\"", c.mode),
            );
            0o660
        }
    };
    for (k, v) in [("owner", &c.owner), ("group", &c.group)] {
        if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
            cx.err(p.key(k), "must be a name or a numeric id, not empty");
        }
    }
    Control {
        enabled: c.enabled,
        socket: c.socket.clone(),
        mode,
        owner: c.owner.clone(),
        group: c.group.clone(),
    }
}

fn check_underlay(raw: &RawConfig, ports: &[PortConfig], cx: &mut Ctx) {
    let Some(u) = &raw.underlay else { return };
    let p = root().key("underlay");
    let bond_name = raw.bond.as_ref().map(|b| b.name.as_str());
    if Some(u.interface.as_str()) != bond_name {
        match ports.iter().find(|x| x.name == u.interface) {
            None => cx.err(
                p.key("interface"),
                format!("`{}` is neither a port nor the bond", u.interface),
            ),
            Some(port) if port.role != PortRole::Fabric => cx.err(
                p.key("interface"),
                format!(
                    "port `{}` has role pod; the underlay needs a fabric port",
                    u.interface
                ),
            ),
            Some(_) => {
                if raw
                    .bond
                    .as_ref()
                    .is_some_and(|b| b.members.contains(&u.interface))
                {
                    cx.err(
                        p.key("interface"),
                        format!(
                            "port `{}` is a member of bond `{}`; use the bond",
                            u.interface,
                            bond_name.unwrap_or_default()
                        ),
                    );
                }
            }
        }
    }
    if u.ipv4.is_none() && u.ipv6.is_none() {
        cx.err(p.clone(), "an underlay needs `ipv4` or `ipv6`");
    }
    if let Some(a) = u.ipv4 {
        check_host_prefix(&a, true, p.key("ipv4"), cx);
    }
    if let Some(a) = u.ipv6 {
        check_host_prefix(&a, false, p.key("ipv6"), cx);
    }
    match (u.gateway4, u.ipv4) {
        (Some(_), None) => cx.err(p.key("gateway4"), "set without `ipv4`"),
        (Some(g), Some(a)) => {
            if !a.contains(IpAddr::V4(g)) {
                cx.err(
                    p.key("gateway4"),
                    format!("{g} is not in the subnet of {a}"),
                );
            } else if IpAddr::V4(g) == a.addr {
                cx.err(p.key("gateway4"), format!("{g} is the node's own address"));
            }
        }
        _ => {}
    }
    match (u.gateway6, u.ipv6) {
        (Some(_), None) => cx.err(p.key("gateway6"), "set without `ipv6`"),
        (Some(g), Some(a)) => {
            let link_local = g.segments()[0] & 0xffc0 == 0xfe80;
            if !link_local && !a.contains(IpAddr::V6(g)) {
                cx.err(
                    p.key("gateway6"),
                    format!("{g} is neither in the subnet of {a} nor link-local"),
                );
            } else if IpAddr::V6(g) == a.addr {
                cx.err(p.key("gateway6"), format!("{g} is the node's own address"));
            }
        }
        _ => {}
    }
    if let Some(mac) = u.mac {
        if mac.is_zero() || mac.is_multicast() {
            cx.err(p.key("mac"), format!("{mac} is not a unicast MAC address"));
        }
    }
    if let Some(v) = u.vlan {
        if !(1..=4094).contains(&v) {
            cx.err(p.key("vlan"), format!("VLAN {v} is outside 1..=4094"));
        }
    }
}

fn check_host_prefix(a: &IpPrefix, want_v4: bool, p: FieldPath, cx: &mut Ctx) {
    if a.addr.is_ipv4() != want_v4 {
        cx.err(
            p,
            format!(
                "{a} is not an {} address",
                if want_v4 { "IPv4" } else { "IPv6" }
            ),
        );
        return;
    }
    if a.addr.is_unspecified() || a.addr.is_multicast() || a.addr.is_loopback() {
        cx.err(p, format!("{} is not a unicast host address", a.addr));
        return;
    }
    if a.len < a.max_len().saturating_sub(1) {
        if a.is_network() {
            cx.err(
                p,
                format!("{a} is the subnet's network address, not a host address"),
            );
            return;
        }
        if let IpAddr::V4(v4) = a.addr {
            let host_mask = u32::MAX >> a.len;
            if u32::from(v4) & host_mask == host_mask {
                cx.err(p, format!("{a} is the subnet's broadcast address"));
            }
        }
    }
}

fn check_telemetry(raw: &RawConfig, cx: &mut Ctx) {
    let t = &raw.telemetry;
    let p = root().key("telemetry");
    if t.stats_interval_secs == 0 {
        cx.err(p.key("stats_interval_secs"), "must be at least 1 second");
    }
    if let Some(a) = &t.address {
        if a.parse::<SocketAddr>().is_err() {
            cx.err(
                p.key("address"),
                format!("`{a}` is not an address:port like 127.0.0.1:9100"),
            );
        }
    }
}

fn check_flows(raw: &RawConfig, cx: &mut Ctx) {
    let c = raw.flows.capacity;
    if !c.is_power_of_two()
        || !(crate::config::MIN_FLOW_CAPACITY..=crate::config::MAX_FLOW_CAPACITY).contains(&c)
    {
        cx.err(
            root().key("flows").key("capacity"),
            format!("{c} is not a power of two from 1024 to 16777216"),
        );
    }
}

fn check_vrfs(raw: &RawConfig, cx: &mut Ctx) -> BTreeSet<u32> {
    let mut set = BTreeSet::from([0u32]);
    let mut declared = HashMap::new();
    for (i, v) in raw.vrfs.iter().enumerate() {
        let p = root().key("vrfs").index(i).key("id");
        if v.id >= MAX_VRFS {
            cx.err(
                p.clone(),
                format!("VRF {} is above the highest VRF id {}", v.id, MAX_VRFS - 1),
            );
        }
        if let Some(j) = declared.insert(v.id, i) {
            cx.err(p, format!("VRF {} is already defined by vrfs[{j}]", v.id));
        }
        set.insert(v.id);
    }
    set
}

fn vrf_ref(vrfs: &BTreeSet<u32>, vrf: u32, p: FieldPath, cx: &mut Ctx) {
    if !vrfs.contains(&vrf) {
        cx.err(
            p,
            format!("VRF {vrf} is not defined (declare it in [[vrfs]])"),
        );
    }
}

fn check_interfaces(raw: &RawConfig, ports: &[PortConfig], vrfs: &BTreeSet<u32>, cx: &mut Ctx) {
    let mut ids = HashMap::new();
    let mut used_ports: HashMap<&str, usize> = HashMap::new();
    let bond = raw.bond.as_ref().map(|b| b.name.as_str());
    for (i, itf) in raw.interfaces.iter().enumerate() {
        let p = root().key("interfaces").index(i);
        if itf.id >= MAX_INTERFACES {
            cx.err(
                p.key("id"),
                format!("interface id {} is above {}", itf.id, MAX_INTERFACES - 1),
            );
        }
        if let Some(j) = ids.insert(itf.id, i) {
            cx.err(
                p.key("id"),
                format!("interface {} is already defined by interfaces[{j}]", itf.id),
            );
        }
        vrf_ref(vrfs, itf.vrf, p.key("vrf"), cx);
        if let Some(mac) = itf.mac {
            if mac.is_zero() || mac.is_multicast() {
                cx.err(p.key("mac"), format!("{mac} is not a unicast MAC address"));
            }
        }
        if let Some(mtu) = itf.mtu {
            if !(68..=9702).contains(&mtu) {
                cx.err(p.key("mtu"), format!("MTU {mtu} is outside 68..=9702"));
            }
        }
        let Some(port) = itf.port.as_deref() else {
            if itf.kind != InterfaceKind::Host {
                cx.err(p.clone(), "a physical or virtual interface needs `port`");
            }
            continue;
        };
        if let Some(j) = used_ports.insert(port, i) {
            cx.err(
                p.key("port"),
                format!("`{port}` is already the port of interfaces[{j}]"),
            );
        }
        let as_port = ports.iter().find(|x| x.name == port);
        let is_vhost = raw.vhost_user.iter().any(|v| v.name == port);
        match itf.kind {
            InterfaceKind::Physical => {
                let ok = Some(port) == bond || as_port.is_some_and(|x| x.role == PortRole::Fabric);
                if !ok {
                    cx.err(
                        p.key("port"),
                        format!("`{port}` is not a fabric port or the bond"),
                    );
                }
            }
            InterfaceKind::Virtual => {
                let ok = is_vhost || as_port.is_some_and(|x| x.role == PortRole::Pod);
                if !ok {
                    cx.err(
                        p.key("port"),
                        format!("`{port}` is neither a vhost_user socket nor a port with role pod"),
                    );
                }
            }
            InterfaceKind::Host => {
                if as_port.is_none() {
                    cx.err(p.key("port"), format!("`{port}` is not a port"));
                }
            }
        }
    }
}

fn check_nexthops(raw: &RawConfig, vrfs: &BTreeSet<u32>, cx: &mut Ctx) -> BTreeMap<u32, Nexthop> {
    let mut out = BTreeMap::new();
    let mut idx: HashMap<u32, usize> = HashMap::new();
    let iface_ids: HashSet<u32> = raw.interfaces.iter().map(|i| i.id).collect();
    for (i, nh) in raw.nexthops.iter().enumerate() {
        let p = root().key("nexthops").index(i);
        if nh.id == 0 {
            cx.err(p.key("id"), "next-hop 0 is the built-in discard next-hop");
        } else if nh.id >= MAX_NEXTHOPS {
            cx.err(
                p.key("id"),
                format!("next-hop id {} is above {}", nh.id, MAX_NEXTHOPS - 1),
            );
        }
        if let Some(j) = idx.insert(nh.id, i) {
            cx.err(
                p.key("id"),
                format!("next-hop {} is already defined by nexthops[{j}]", nh.id),
            );
        }
    }
    for (i, nh) in raw.nexthops.iter().enumerate() {
        let p = root().key("nexthops").index(i);
        if let Some(v) = nh.vrf {
            vrf_ref(vrfs, v, p.key("vrf"), cx);
        }
        if let Some(itf) = nh.interface {
            if !iface_ids.contains(&itf) {
                cx.err(
                    p.key("interface"),
                    format!("interface {itf} is not defined"),
                );
            }
        }
        if let Some(kind) = build_nexthop(raw, nh, &idx, &p, cx) {
            out.insert(
                nh.id,
                Nexthop {
                    id: nh.id,
                    vrf: nh.vrf,
                    kind,
                },
            );
        }
    }
    out
}

fn build_nexthop(
    raw: &RawConfig,
    nh: &RawNexthop,
    idx: &HashMap<u32, usize>,
    p: &FieldPath,
    cx: &mut Ctx,
) -> Option<NexthopKind> {
    let kind = nh.kind;
    let allowed: &[&str] = match kind {
        RawNhKind::Discard => &[],
        RawNhKind::Receive => &["vrf", "interface"],
        RawNhKind::Encap => &["vrf", "interface", "dmac"],
        RawNhKind::Tunnel => &["vrf", "interface", "dmac", "encap", "dst", "src"],
        RawNhKind::CompositeEcmp => &["vrf", "members", "labels"],
        RawNhKind::L2Flood => &["vrf", "members"],
        RawNhKind::VrfTranslate => &["vrf"],
    };
    let present = [
        ("vrf", nh.vrf.is_some()),
        ("interface", nh.interface.is_some()),
        ("dmac", nh.dmac.is_some()),
        ("encap", nh.encap.is_some()),
        ("dst", nh.dst.is_some()),
        ("src", nh.src.is_some()),
        ("members", nh.members.is_some()),
        ("labels", nh.labels.is_some()),
    ];
    let mut ok = true;
    for (field, is) in present {
        if is && !allowed.contains(&field) {
            cx.err(
                p.key(field),
                format!("not used by a {} next-hop", kind.name()),
            );
            ok = false;
        }
    }
    let mut need = |field: &str, is: bool, cx: &mut Ctx| {
        if !is {
            cx.err(
                p.key(field),
                format!("required for a {} next-hop", kind.name()),
            );
            ok = false;
        }
    };
    let built = match kind {
        RawNhKind::Discard => Some(NexthopKind::Discard),
        RawNhKind::VrfTranslate => {
            need("vrf", nh.vrf.is_some(), cx);
            Some(NexthopKind::VrfTranslate)
        }
        RawNhKind::Receive => Some(NexthopKind::Receive {
            interface: nh.interface,
        }),
        RawNhKind::Encap => {
            need("interface", nh.interface.is_some(), cx);
            need("dmac", nh.dmac.is_some(), cx);
            match (nh.interface, nh.dmac) {
                (Some(interface), Some(dmac)) => Some(NexthopKind::Encap { interface, dmac }),
                _ => None,
            }
        }
        RawNhKind::Tunnel => {
            need("encap", nh.encap.is_some(), cx);
            need("dst", nh.dst.is_some(), cx);
            if let (Some(dst), Some(src)) = (nh.dst, nh.src) {
                if dst.is_ipv4() != src.is_ipv4() {
                    cx.err(
                        p.key("src"),
                        format!("{src} and dst {dst} are of different families"),
                    );
                }
            }
            if let Some(dst) = nh.dst {
                let u = raw.underlay.as_ref();
                let has_src = nh.src.is_some()
                    || u.is_some_and(|u| {
                        if dst.is_ipv4() {
                            u.ipv4.is_some()
                        } else {
                            u.ipv6.is_some()
                        }
                    });
                if !has_src {
                    cx.err(
                        p.key("src"),
                        format!(
                            "no tunnel source: set `src` or an underlay {} address",
                            if dst.is_ipv4() { "IPv4" } else { "IPv6" }
                        ),
                    );
                }
                if dst.is_unspecified() || dst.is_multicast() || dst.is_loopback() {
                    cx.err(p.key("dst"), format!("{dst} is not a unicast address"));
                }
            }
            match (nh.encap, nh.dst) {
                (Some(encap), Some(dst)) => Some(NexthopKind::Tunnel {
                    encap,
                    dst,
                    src: nh.src,
                    dmac: nh.dmac,
                    interface: nh.interface,
                }),
                _ => None,
            }
        }
        RawNhKind::CompositeEcmp | RawNhKind::L2Flood => {
            let members = nh.members.clone().unwrap_or_default();
            if members.is_empty() {
                cx.err(
                    p.key("members"),
                    format!("a {} next-hop needs at least one member", kind.name()),
                );
            }
            for (j, m) in members.iter().enumerate() {
                let mp = p.key("members").index(j);
                if *m == nh.id {
                    cx.err(mp, "a next-hop cannot be its own member");
                } else if *m != 0 && !idx.contains_key(m) {
                    cx.err(mp, format!("next-hop {m} is not defined"));
                } else if let Some(&k) = idx.get(m) {
                    if raw.nexthops.get(k).is_some_and(|x| {
                        matches!(x.kind, RawNhKind::CompositeEcmp | RawNhKind::L2Flood)
                    }) {
                        cx.err(
                            mp,
                            format!("next-hop {m} is itself composite; composites do not nest"),
                        );
                    }
                }
            }
            if kind == RawNhKind::L2Flood {
                Some(NexthopKind::L2Flood { members })
            } else {
                let labels = nh.labels.clone();
                if let Some(l) = &labels {
                    if l.len() != members.len() {
                        cx.err(
                            p.key("labels"),
                            format!(
                                "{} labels for {} members; give one per member",
                                l.len(),
                                members.len()
                            ),
                        );
                    }
                }
                Some(NexthopKind::CompositeEcmp {
                    members: members
                        .iter()
                        .enumerate()
                        .map(|(j, &m)| EcmpMember {
                            nexthop: m,
                            label: labels.as_ref().and_then(|l| l.get(j).copied()),
                        })
                        .collect(),
                })
            }
        }
    };
    if ok {
        built
    } else {
        None
    }
}

fn nh_ref(nhs: &BTreeMap<u32, Nexthop>, raw: &RawConfig, id: u32, p: FieldPath, cx: &mut Ctx) {
    if id != 0 && !nhs.contains_key(&id) && !raw.nexthops.iter().any(|n| n.id == id) {
        cx.err(p, format!("next-hop {id} is not defined"));
    }
}

fn tunnel_encap(nhs: &BTreeMap<u32, Nexthop>, id: u32) -> Option<TunnelEncap> {
    match nhs.get(&id).map(|n| &n.kind) {
        Some(NexthopKind::Tunnel { encap, .. }) => Some(*encap),
        _ => None,
    }
}

fn check_routes(raw: &RawConfig, vrfs: &BTreeSet<u32>, nhs: &BTreeMap<u32, Nexthop>, cx: &mut Ctx) {
    let mut seen: HashMap<(u32, String), usize> = HashMap::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let p = root().key("routes").index(i);
        vrf_ref(vrfs, r.vrf, p.key("vrf"), cx);
        if !r.prefix.is_network() {
            cx.err(
                p.key("prefix"),
                format!(
                    "{} has host bits set; the network is {}/{}",
                    r.prefix,
                    r.prefix.network(),
                    r.prefix.len
                ),
            );
        }
        if let Some(j) = seen.insert(
            (
                r.vrf,
                r.prefix.network().to_string() + "/" + &r.prefix.len.to_string(),
            ),
            i,
        ) {
            cx.err(
                p.key("prefix"),
                format!(
                    "{} in VRF {} is already routed by routes[{j}]",
                    r.prefix, r.vrf
                ),
            );
        }
        nh_ref(nhs, raw, r.nexthop, p.key("nexthop"), cx);
        if let Some(l) = r.label {
            if l > MAX_LABEL {
                cx.err(p.key("label"), format!("label {l} does not fit in 20 bits"));
            }
        }
        if let Some(v) = r.vni {
            if v == 0 || v > MAX_VNI {
                cx.err(p.key("vni"), format!("VNI {v} is outside 1..={MAX_VNI}"));
            }
        }
        if r.label.is_some() && r.vni.is_some() {
            cx.err(p.clone(), "give `label` or `vni`, not both");
        }
        match tunnel_encap(nhs, r.nexthop) {
            Some(TunnelEncap::Vxlan) => {
                if r.label.is_some() {
                    cx.err(
                        p.key("label"),
                        format!("next-hop {} is a VXLAN tunnel; use `vni`", r.nexthop),
                    );
                } else if r.vni.is_none() {
                    cx.err(
                        p.key("vni"),
                        format!(
                            "next-hop {} is a VXLAN tunnel; a VNI is required",
                            r.nexthop
                        ),
                    );
                }
            }
            Some(e @ (TunnelEncap::Mplsoudp | TunnelEncap::Mplsogre)) => {
                let name = if e == TunnelEncap::Mplsoudp {
                    "MPLSoUDP"
                } else {
                    "MPLSoGRE"
                };
                if r.vni.is_some() {
                    cx.err(
                        p.key("vni"),
                        format!("next-hop {} is an {name} tunnel; use `label`", r.nexthop),
                    );
                } else if r.label.is_none() {
                    cx.err(
                        p.key("label"),
                        format!(
                            "next-hop {} is an {name} tunnel; a label is required",
                            r.nexthop
                        ),
                    );
                }
            }
            None => {
                let composite = matches!(
                    nhs.get(&r.nexthop).map(|n| &n.kind),
                    Some(NexthopKind::CompositeEcmp { .. })
                );
                if !composite {
                    if r.label.is_some() {
                        cx.err(
                            p.key("label"),
                            format!("next-hop {} is not a tunnel; no label is pushed", r.nexthop),
                        );
                    }
                    if r.vni.is_some() {
                        cx.err(
                            p.key("vni"),
                            format!("next-hop {} is not a tunnel; no VNI is used", r.nexthop),
                        );
                    }
                }
            }
        }
    }
}

fn check_labels_vnis(
    raw: &RawConfig,
    vrfs: &BTreeSet<u32>,
    nhs: &BTreeMap<u32, Nexthop>,
    cx: &mut Ctx,
) {
    let mut labels = HashMap::new();
    for (i, l) in raw.labels.iter().enumerate() {
        let p = root().key("labels").index(i);
        if !(16..=MAX_LABEL).contains(&l.label) {
            cx.err(
                p.key("label"),
                format!(
                    "label {} is outside 16..={MAX_LABEL} (0-15 are reserved)",
                    l.label
                ),
            );
        }
        if let Some(j) = labels.insert(l.label, i) {
            cx.err(
                p.key("label"),
                format!("label {} is already defined by labels[{j}]", l.label),
            );
        }
        nh_ref(nhs, raw, l.nexthop, p.key("nexthop"), cx);
    }
    let mut vnis = HashMap::new();
    for (i, v) in raw.vnis.iter().enumerate() {
        let p = root().key("vnis").index(i);
        if v.vni == 0 || v.vni > MAX_VNI {
            cx.err(
                p.key("vni"),
                format!("VNI {} is outside 1..={MAX_VNI}", v.vni),
            );
        }
        if let Some(j) = vnis.insert(v.vni, i) {
            cx.err(
                p.key("vni"),
                format!("VNI {} is already defined by vnis[{j}]", v.vni),
            );
        }
        nh_ref(nhs, raw, v.nexthop, p.key("nexthop"), cx);
        if let Some(vrf) = v.vrf {
            vrf_ref(vrfs, vrf, p.key("vrf"), cx);
        }
    }
}
