//! Network namespaces for kernel pods, with iproute2 (`ip`) on the control path.
//!
//! A kernel pod attached over a DPDK `net_tap` port: the PMD creates the tap
//! interface in the data plane's namespace; once the port has started,
//! [`move_into_netns`] moves it into the pod's namespace, renames it, sets its MAC,
//! MTU and addresses, brings it up and installs default routes through the pod's
//! gateway (the data plane answers ARP / neighbour solicitations for every routed
//! address of the pod's VRF with its router MAC, so any routed address works as
//! the gateway). The tap's file descriptors stay valid across the move: RX and TX
//! through the port go on as before.
//!
//! [`Lab`] builds the rest of a one-machine topology (namespaces, veth pairs, a
//! kernel VXLAN device, commands run inside a namespace) and undoes what it
//! created when dropped, also on error paths. Nothing here runs on a worker.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pmd_config::{Config, InterfaceKind};
use thiserror::Error;

use super::RuntimeError;
use crate::dpdk::Port;

/// Directory of named network namespaces (`ip netns`).
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// A namespace operation that failed.
#[derive(Debug, Error)]
pub enum NetnsError {
    /// A command could not be started at all (not installed, not executable).
    #[error("cannot run `{cmd}`: {source} (iproute2 missing? run scripts/setup-host.sh)")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The target namespace does not exist.
    #[error("network namespace {0} does not exist")]
    NoNamespace(String),
    /// The interface to move is in neither namespace.
    #[error("interface {host} is neither in this namespace nor in {netns} as {ifname}")]
    NoInterface {
        /// Its name in the data plane's namespace.
        host: String,
        /// The pod's namespace.
        netns: String,
        /// Its name inside.
        ifname: String,
    },
    /// A name or value that cannot be used.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was given.
        what: String,
        /// Why it cannot be used.
        reason: String,
    },
}

/// A kernel pod's side of a tap port: where the interface goes and how it is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetns {
    /// The namespace: `/var/run/netns/NAME`, a bare `NAME`, or any namespace file
    /// (e.g. `/proc/PID/ns/net`).
    pub netns: PathBuf,
    /// The interface's name inside the namespace.
    pub name: String,
    /// Its MAC (the pod's MAC); unchanged when `None`.
    pub mac: Option<[u8; 6]>,
    /// Addresses with prefix lengths.
    pub addrs: Vec<(IpAddr, u8)>,
    /// MTU; unchanged when `None`.
    pub mtu: Option<u16>,
    /// IPv4 default gateway (installed `onlink`).
    pub gateway_v4: Option<Ipv4Addr>,
    /// IPv6 default gateway (installed `onlink`).
    pub gateway_v6: Option<Ipv6Addr>,
}

/// How a namespace is named on iproute2's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NsRef {
    /// A name under [`NETNS_RUN_DIR`].
    Named(String),
    /// Any other namespace file.
    Path(PathBuf),
}

impl NsRef {
    fn of(p: &Path) -> Result<NsRef, NetnsError> {
        let s = p.to_string_lossy();
        let bad = |reason: &str| NetnsError::Invalid {
            what: format!("network namespace `{s}`"),
            reason: reason.into(),
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if p.is_absolute() {
            if p.parent() == Some(Path::new(NETNS_RUN_DIR)) {
                if let Some(n) = p.file_name() {
                    return Ok(NsRef::Named(n.to_string_lossy().into_owned()));
                }
            }
            return Ok(NsRef::Path(p.to_path_buf()));
        }
        if s.contains('/') || s == "." || s == ".." || s.contains(char::is_whitespace) {
            return Err(bad(
                "not a namespace name (no `/`, no spaces) nor an absolute path",
            ));
        }
        Ok(NsRef::Named(s.into_owned()))
    }

    fn path(&self) -> PathBuf {
        match self {
            NsRef::Named(n) => Path::new(NETNS_RUN_DIR).join(n),
            NsRef::Path(p) => p.clone(),
        }
    }

    fn display(&self) -> String {
        self.path().display().to_string()
    }

    /// `ip` with `args`, run inside the namespace.
    fn ip(&self, args: &[&str]) -> Command {
        match self {
            NsRef::Named(n) => {
                let mut c = Command::new("ip");
                c.args(["-n", n]).args(args);
                c
            }
            NsRef::Path(p) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", p.display())).arg("ip").args(args);
                c
            }
        }
    }

    /// The argument of `ip link set ... netns <X>` (iproute2 opens paths itself).
    fn link_arg(&self) -> String {
        match self {
            NsRef::Named(n) => n.clone(),
            NsRef::Path(p) => p.display().to_string(),
        }
    }
}

fn render(c: &Command) -> String {
    let mut s = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        let _ = write!(s, " {}", a.to_string_lossy());
    }
    s
}

/// Runs `c`, returning its output when it exits 0 and an error naming the command
/// and its stderr otherwise.
pub fn run_cmd(c: &mut Command) -> Result<Output, NetnsError> {
    let cmd = render(c);
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetnsError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(NetnsError::Command {
            cmd,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// `ip ARGS` in the data plane's own namespace.
pub fn ip(args: &[&str]) -> Result<Output, NetnsError> {
    let mut c = Command::new("ip");
    c.args(args);
    run_cmd(&mut c)
}

/// `ip ARGS` inside namespace `netns` (a name or a path).
pub fn ip_in(netns: &Path, args: &[&str]) -> Result<Output, NetnsError> {
    run_cmd(&mut NsRef::of(netns)?.ip(args))
}

/// A command (program and arguments) to run inside the named namespace `netns`
/// (`ip netns exec`); the caller spawns it, waits for it, reads its output.
pub fn command_in(netns: &str, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", netns, program]).args(args);
    c
}

/// Runs `program args` inside the named namespace `netns` to completion; an error
/// names the command and its stderr when it exits non-zero.
pub fn exec_in(netns: &str, program: &str, args: &[&str]) -> Result<Output, NetnsError> {
    run_cmd(&mut command_in(netns, program, args))
}

/// True when a namespace file exists for `netns`.
pub fn netns_exists(netns: &Path) -> bool {
    NsRef::of(netns).map(|r| r.path().exists()).unwrap_or(false)
}

/// True when interface `name` exists in the data plane's namespace.
pub fn link_exists(name: &str) -> bool {
    ip(&["link", "show", "dev", name]).is_ok()
}

/// True when interface `name` exists inside `netns`.
pub fn link_exists_in(netns: &Path, name: &str) -> bool {
    ip_in(netns, &["link", "show", "dev", name]).is_ok()
}

/// An interface's state as the kernel reports it (`ip -o link show` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelLink {
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// Carrier present (`IFF_LOWER_UP`; for a tap: its file descriptor is attached).
    pub lower_up: bool,
}

impl KernelLink {
    /// Up and running: administratively up with a carrier.
    pub fn up(&self) -> bool {
        self.admin_up && self.lower_up
    }

    /// Parses the flags of one `ip -o link show` line, e.g.
    /// `7: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 ...`; `None` when the
    /// line has no flag list.
    pub fn parse(line: &str) -> Option<KernelLink> {
        let start = line.find('<')?;
        let rest = line.get(start + 1..)?;
        let flags = rest.get(..rest.find('>')?)?;
        let mut k = KernelLink::default();
        for f in flags.split(',') {
            match f {
                "UP" => k.admin_up = true,
                "LOWER_UP" => k.lower_up = true,
                _ => {}
            }
        }
        Some(k)
    }
}

/// How long the link state of a tap inside its namespace is reused before it is
/// read again.
pub const NETNS_LINK_REFRESH: Duration = Duration::from_secs(1);

/// The link of a tap moved into a namespace, as seen there. The tap PMD asks
/// about its link by name in the namespace it was created in, where the
/// interface no longer is, so it reports such a tap down whatever its state.
/// Read with `ip` at most once per [`NETNS_LINK_REFRESH`]; control thread only.
#[derive(Debug)]
pub struct NetnsLink {
    netns: PathBuf,
    name: String,
    /// The last answer and when it was read.
    read: Option<(Instant, bool)>,
}

impl NetnsLink {
    /// The link of interface `name` inside `netns`.
    pub fn new(netns: PathBuf, name: String) -> NetnsLink {
        NetnsLink {
            netns,
            name,
            read: None,
        }
    }

    /// Whether the interface is up (administratively and with a carrier); an
    /// interface that cannot be read counts as down.
    pub fn up(&mut self, now: Instant) -> bool {
        match self.read {
            Some((at, up)) if now.saturating_duration_since(at) < NETNS_LINK_REFRESH => up,
            _ => {
                let up = link_state_in(&self.netns, &self.name).is_ok_and(|k| k.up());
                self.read = Some((now, up));
                up
            }
        }
    }
}

/// Whether `port`'s link is up: for a tap moved into a namespace (`netns`), as
/// seen there; otherwise as its driver reports it. Control thread only.
pub fn link_up(port: &Port, netns: Option<&mut NetnsLink>, now: Instant) -> bool {
    match netns {
        Some(n) => n.up(now),
        None => port.link().map(|l| l.up).unwrap_or(false),
    }
}

/// The state of interface `name` inside `netns` (runs `ip`; control thread only).
pub fn link_state_in(netns: &Path, name: &str) -> Result<KernelLink, NetnsError> {
    check_ifname(name)?;
    let out = ip_in(netns, &["-o", "link", "show", "dev", name])?;
    let text = String::from_utf8_lossy(&out.stdout);
    KernelLink::parse(&text).ok_or_else(|| NetnsError::Invalid {
        what: format!("`ip link show` output for {name}"),
        reason: format!("no flag list in {:?}", text.trim()),
    })
}

fn check_ifname(n: &str) -> Result<(), NetnsError> {
    if n.is_empty() || n.len() > 15 || n.contains(['/', ' ', ':']) {
        return Err(NetnsError::Invalid {
            what: format!("interface name `{n}`"),
            reason: "1 to 15 bytes, no `/`, `:` or spaces".into(),
        });
    }
    Ok(())
}

/// Formats a MAC address as `ip` wants it.
pub fn mac_string(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Moves `host_ifname` (a tap the data plane's `net_tap` port created in this
/// namespace) into `spec.netns`, renames it `spec.name`, sets MAC, MTU and
/// addresses, brings it up and installs the default routes. Idempotent: when the
/// interface is already inside under its new name, only the settings are applied
/// again. IPv6 addresses are added without duplicate address detection and the
/// interface gets no link-local address, so that its solicitations come from the
/// pod's own address (the data plane's anti-spoofing accepts only that).
pub fn move_into_netns(host_ifname: &str, spec: &PodNetns) -> Result<(), NetnsError> {
    check_ifname(host_ifname)?;
    check_ifname(&spec.name)?;
    let ns = NsRef::of(&spec.netns)?;
    if !ns.path().exists() {
        return Err(NetnsError::NoNamespace(ns.display()));
    }
    let inside = |n: &str| run_cmd(&mut ns.ip(&["link", "show", "dev", n])).is_ok();
    if link_exists(host_ifname) {
        // A stale interface with the target name inside would block the rename.
        if host_ifname != spec.name && inside(&spec.name) {
            return Err(NetnsError::Invalid {
                what: format!("interface {} in {}", spec.name, ns.display()),
                reason: "already exists (another pod interface has that name)".into(),
            });
        }
        ip(&["link", "set", "dev", host_ifname, "down"])?;
        ip(&["link", "set", "dev", host_ifname, "netns", &ns.link_arg()])?;
        if host_ifname != spec.name {
            run_cmd(&mut ns.ip(&["link", "set", "dev", host_ifname, "name", &spec.name]))?;
        }
    } else if !inside(&spec.name) {
        return Err(NetnsError::NoInterface {
            host: host_ifname.into(),
            netns: ns.display(),
            ifname: spec.name.clone(),
        });
    }
    configure_link(&ns, spec)
}

/// Applies `spec` (MAC, MTU, addresses, up, default routes) to the interface
/// `spec.name` that is already inside `spec.netns`.
pub fn configure_in_netns(spec: &PodNetns) -> Result<(), NetnsError> {
    check_ifname(&spec.name)?;
    configure_link(&NsRef::of(&spec.netns)?, spec)
}

fn configure_link(ns: &NsRef, spec: &PodNetns) -> Result<(), NetnsError> {
    let dev = spec.name.as_str();
    let ipn = |args: &[&str]| run_cmd(&mut ns.ip(args));
    if let Some(m) = spec.mac {
        ipn(&["link", "set", "dev", dev, "address", &mac_string(m)])?;
    }
    if let Some(mtu) = spec.mtu {
        ipn(&["link", "set", "dev", dev, "mtu", &mtu.to_string()])?;
    }
    ipn(&["link", "set", "dev", dev, "addrgenmode", "none"])?;
    ipn(&["link", "set", "dev", "lo", "up"])?;
    ipn(&["link", "set", "dev", dev, "up"])?;
    for (a, len) in &spec.addrs {
        let s = format!("{a}/{len}");
        match a {
            IpAddr::V4(_) => ipn(&["-4", "addr", "replace", &s, "dev", dev])?,
            IpAddr::V6(_) => ipn(&["-6", "addr", "replace", &s, "dev", dev, "nodad"])?,
        };
    }
    if let Some(g) = spec.gateway_v4 {
        let g = g.to_string();
        ipn(&[
            "-4", "route", "replace", "default", "via", &g, "dev", dev, "onlink",
        ])?;
    }
    if let Some(g) = spec.gateway_v6 {
        let g = g.to_string();
        ipn(&[
            "-6", "route", "replace", "default", "via", &g, "dev", dev, "onlink",
        ])?;
    }
    Ok(())
}

/// The gateway a pod with address `a` uses: the first address of its /24
/// (x.y.z.1; x.y.z.254 for the pod x.y.z.1 itself).
pub fn gateway_v4_for(a: Ipv4Addr) -> Ipv4Addr {
    let o = a.octets();
    let g = Ipv4Addr::new(o[0], o[1], o[2], 1);
    if g == a {
        Ipv4Addr::new(o[0], o[1], o[2], 254)
    } else {
        g
    }
}

/// The gateway a pod with address `a` uses: `<its /64>::1` (`::2` for the pod
/// `::1` itself).
pub fn gateway_v6_for(a: Ipv6Addr) -> Ipv6Addr {
    let net = u128::from(a) & !((1u128 << 64) - 1);
    let g = Ipv6Addr::from(net | 1);
    if g == a {
        Ipv6Addr::from(net | 2)
    } else {
        g
    }
}

/// The pod side of the config port `port`: its `netns` and `ifname`, and the MAC,
/// addresses (/32, /128) and MTU of the `[[interfaces]]` entry that uses the port,
/// with the gateways of [`gateway_v4_for`] / [`gateway_v6_for`]. `None` when the
/// port has no `netns`.
pub fn pod_netns_of(cfg: &Config, port: &str) -> Option<(String, PodNetns)> {
    let pc = cfg.port(port)?;
    let n = pc.netns.as_ref()?;
    let itf = cfg
        .interfaces
        .iter()
        .find(|i| i.kind == InterfaceKind::Virtual && i.port.as_deref() == Some(port));
    let mut addrs = Vec::new();
    let (mut gw4, mut gw6) = (None, None);
    if let Some(i) = itf {
        if let Some(a) = i.ipv4 {
            addrs.push((IpAddr::V4(a), 32));
            gw4 = Some(gateway_v4_for(a));
        }
        if let Some(a) = i.ipv6 {
            addrs.push((IpAddr::V6(a), 128));
            gw6 = Some(gateway_v6_for(a));
        }
    }
    Some((
        n.host_ifname.clone(),
        PodNetns {
            netns: PathBuf::from(&n.netns),
            name: n.ifname.clone(),
            mac: itf.and_then(|i| i.mac).map(|m| m.0),
            addrs,
            mtu: itf.and_then(|i| i.mtu).or(pc.mtu),
            gateway_v4: gw4,
            gateway_v6: gw6,
        },
    ))
}

/// Moves every config port that has a `netns` into its pod's namespace (after the
/// ports have started). An error names the port's field.
pub fn attach_pod_ports(cfg: &Config, verbose: bool) -> Result<(), RuntimeError> {
    for (i, pc) in cfg.ports.iter().enumerate() {
        let Some((host, spec)) = pod_netns_of(cfg, &pc.name) else {
            continue;
        };
        move_into_netns(&host, &spec).map_err(|e| RuntimeError::Config {
            field: format!("ports[{i}].netns"),
            reason: e.to_string(),
        })?;
        if verbose {
            let addrs: Vec<String> = spec.addrs.iter().map(|(a, l)| format!("{a}/{l}")).collect();
            println!(
                "port {}: tap {host} moved into netns {} as {} ({})",
                pc.name,
                spec.netns.display(),
                spec.name,
                addrs.join(", ")
            );
        }
    }
    Ok(())
}

/// One thing a [`Lab`] created, undone in reverse order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Undo {
    Netns(String),
    Link(String),
    Dir(PathBuf),
}

/// Builds namespaces, veth pairs and VXLAN devices, and deletes what it created
/// when dropped (in reverse order, errors ignored), also when the build fails
/// half-way. Creation is idempotent: a leftover of an earlier run with the same
/// name is deleted first.
#[derive(Debug, Default)]
pub struct Lab {
    undo: Vec<Undo>,
}

/// A Linux kernel VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// Device name.
    pub name: String,
    /// VNI.
    pub vni: u32,
    /// UDP destination port (4789).
    pub dstport: u16,
    /// Local underlay address.
    pub local: IpAddr,
    /// Remote VTEP (the default forwarding entry).
    pub remote: IpAddr,
    /// Underlay device.
    pub dev: String,
    /// MAC of the device.
    pub mac: Option<[u8; 6]>,
}

impl Lab {
    /// An empty lab.
    pub fn new() -> Lab {
        Lab::default()
    }

    /// Creates namespace `name` (replacing a leftover one), with `lo` up.
    pub fn netns(&mut self, name: &str) -> Result<(), NetnsError> {
        NsRef::of(Path::new(name))?;
        if netns_exists(Path::new(name)) {
            ip(&["netns", "delete", name])?;
        }
        ip(&["netns", "add", name])?;
        self.undo.push(Undo::Netns(name.into()));
        ip_in(Path::new(name), &["link", "set", "dev", "lo", "up"])?;
        Ok(())
    }

    /// Creates a veth pair `host` <-> `peer` and moves `peer` into `peer_netns`
    /// (when given). `host` stays here, up, without IPv6 and with transmit
    /// checksum offload off (frames leave it with complete checksums).
    pub fn veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_netns: Option<&str>,
    ) -> Result<(), NetnsError> {
        check_ifname(host)?;
        check_ifname(peer)?;
        if link_exists(host) {
            ip(&["link", "delete", "dev", host])?;
        }
        if link_exists(peer) {
            ip(&["link", "delete", "dev", peer])?;
        }
        ip(&["link", "add", host, "type", "veth", "peer", "name", peer])?;
        self.undo.push(Undo::Link(host.into()));
        if let Some(ns) = peer_netns {
            ip(&["link", "set", "dev", peer, "netns", ns])?;
        }
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6"), "1");
        ethtool_tx_off(None, host)?;
        ip(&["link", "set", "dev", host, "up"])?;
        Ok(())
    }

    /// Creates a kernel VXLAN device in `netns` (no learning; unknown destinations
    /// go to `spec.remote`).
    pub fn vxlan(&mut self, netns: &str, spec: &VxlanSpec) -> Result<(), NetnsError> {
        check_ifname(&spec.name)?;
        let ns = Path::new(netns);
        let (vni, port) = (spec.vni.to_string(), spec.dstport.to_string());
        let (local, remote) = (spec.local.to_string(), spec.remote.to_string());
        let mac = spec.mac.map(mac_string);
        let mut args = vec!["link", "add", &spec.name];
        if let Some(m) = &mac {
            args.extend(["address", m.as_str()]);
        }
        args.extend([
            "type",
            "vxlan",
            "id",
            &vni,
            "dstport",
            &port,
            "local",
            &local,
            "remote",
            &remote,
            "dev",
            &spec.dev,
            "nolearning",
        ]);
        if link_exists_in(ns, &spec.name) {
            ip_in(ns, &["link", "delete", "dev", &spec.name])?;
        }
        ip_in(ns, &args)?;
        ip_in(ns, &["link", "set", "dev", &spec.name, "up"])?;
        Ok(())
    }

    /// Makes a temporary directory that is removed with the lab.
    pub fn temp_dir(&mut self, path: &Path) -> Result<(), NetnsError> {
        std::fs::create_dir_all(path).map_err(|e| NetnsError::Invalid {
            what: format!("directory {}", path.display()),
            reason: e.to_string(),
        })?;
        self.undo.push(Undo::Dir(path.to_path_buf()));
        Ok(())
    }

    /// Undoes everything now (also done on drop).
    pub fn teardown(&mut self) {
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Netns(n) => {
                    // Stop whatever still runs inside (servers of a test, ...).
                    if let Ok(o) = ip(&["netns", "pids", &n]) {
                        for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                            let _ = Command::new("kill")
                                .args(["-KILL", pid])
                                .stderr(Stdio::null())
                                .status();
                        }
                    }
                    let _ = ip(&["netns", "delete", &n]);
                }
                Undo::Link(l) => {
                    if link_exists(&l) {
                        let _ = ip(&["link", "delete", "dev", &l]);
                    }
                }
                Undo::Dir(d) => {
                    let _ = std::fs::remove_dir_all(&d);
                }
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Turns transmit checksum offload off on `dev` (in `netns` when given): frames
/// then leave with complete checksums, which a packet socket on the other end of a
/// veth needs (it would otherwise see partial checksums).
pub fn ethtool_tx_off(netns: Option<&str>, dev: &str) -> Result<(), NetnsError> {
    let args = ["-K", dev, "tx", "off"];
    let out = match netns {
        Some(ns) => exec_in(ns, "ethtool", &args),
        None => run_cmd(Command::new("ethtool").args(args)),
    };
    out.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_link_flags_parse() {
        let up = "7: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UNKNOWN";
        assert_eq!(
            KernelLink::parse(up),
            Some(KernelLink {
                admin_up: true,
                lower_up: true
            })
        );
        assert!(KernelLink::parse(up).unwrap().up());
        let down = "7: eth0: <BROADCAST,MULTICAST> mtu 1500 qdisc fq_codel state DOWN";
        assert!(!KernelLink::parse(down).unwrap().up());
        let no_carrier = "7: eth0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 state DOWN";
        let k = KernelLink::parse(no_carrier).unwrap();
        assert!(k.admin_up && !k.lower_up && !k.up());
        assert_eq!(KernelLink::parse("Device \"eth9\" does not exist."), None);
        assert_eq!(KernelLink::parse("7: x: <UP"), None);
    }

    #[test]
    fn gateways_are_the_first_address_of_the_subnet() {
        assert_eq!(
            gateway_v4_for(Ipv4Addr::new(10, 3, 0, 7)),
            Ipv4Addr::new(10, 3, 0, 1)
        );
        assert_eq!(
            gateway_v4_for(Ipv4Addr::new(10, 3, 0, 1)),
            Ipv4Addr::new(10, 3, 0, 254)
        );
        let a: Ipv6Addr = "fd00:3::7".parse().unwrap();
        assert_eq!(gateway_v6_for(a), "fd00:3::1".parse::<Ipv6Addr>().unwrap());
        let b: Ipv6Addr = "fd00:3::1".parse().unwrap();
        assert_eq!(gateway_v6_for(b), "fd00:3::2".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn namespace_references() {
        assert_eq!(
            NsRef::of(Path::new("pod1")).unwrap(),
            NsRef::Named("pod1".into())
        );
        assert_eq!(
            NsRef::of(Path::new("/var/run/netns/pod1")).unwrap(),
            NsRef::Named("pod1".into())
        );
        assert_eq!(
            NsRef::of(Path::new("/proc/1/ns/net")).unwrap(),
            NsRef::Path("/proc/1/ns/net".into())
        );
        assert!(NsRef::of(Path::new("a/b")).is_err());
        assert!(NsRef::of(Path::new("")).is_err());
    }

    #[test]
    fn bad_names_are_refused_before_running_anything() {
        let spec = PodNetns {
            netns: "pod".into(),
            name: "a-name-that-is-far-too-long".into(),
            mac: None,
            addrs: vec![],
            mtu: None,
            gateway_v4: None,
            gateway_v6: None,
        };
        let e = move_into_netns("tap0", &spec).unwrap_err();
        assert!(e.to_string().contains("a-name-that-is-far-too-long"), "{e}");
    }

    #[test]
    fn pod_side_comes_from_the_interface_entry() {
        let cfg = Config::from_toml_str(
            r#"
[cores]
workers = [1]
[[ports]]
name = "pod1"
vdev = "net_tap0,iface=vrtap1"
role = "pod"
netns = "ns1"
ifname = "eth0"
[[vrfs]]
id = 3
[[interfaces]]
id = 1
kind = "virtual"
port = "pod1"
vrf = 3
mac = "02:00:0a:03:00:07"
ipv4 = "10.3.0.7"
ipv6 = "fd00:3::7"
mtu = 1450
"#,
        )
        .unwrap();
        let (host, spec) = pod_netns_of(&cfg, "pod1").unwrap();
        assert_eq!(host, "vrtap1");
        assert_eq!(spec.name, "eth0");
        assert_eq!(spec.netns, PathBuf::from("ns1"));
        assert_eq!(spec.mac, Some([2, 0, 0x0a, 3, 0, 7]));
        assert_eq!(spec.mtu, Some(1450));
        assert_eq!(
            spec.addrs,
            vec![
                ("10.3.0.7".parse().unwrap(), 32),
                ("fd00:3::7".parse().unwrap(), 128)
            ]
        );
        assert_eq!(spec.gateway_v4, Some(Ipv4Addr::new(10, 3, 0, 1)));
        assert_eq!(spec.gateway_v6, Some("fd00:3::1".parse().unwrap()));
    }
}
