//! The embedded default run: kernel pods and a kernel VXLAN peer on one machine.
//!
//! ```text
//!  netns <p>-pod1            netns <p>-pod2             netns <p>-remote
//!  eth0 10.3.0.7             eth0 10.3.0.8              vxpod0 10.3.1.10 (macvlan)
//!   |  (tap, net_tap)         |  (tap, net_tap)          vxlan0 VNI 300, port 4789
//!   +--------- vrouter-dp (VRF 3) ---------+            <p>-rfab 10.99.0.2
//!              fabric: net_af_packet on <p>-fab0 (10.99.0.1) ==== veth ====+
//! ```
//!
//! [`Topology::build`] creates the namespaces, the veth pair and the remote node
//! (its underlay address, a Linux `vxlan` device and the remote pod's address on a
//! macvlan over it) and writes the data plane's config ([`DemoPlan::config_toml`]:
//! the pod ports carry `netns`, so the runtime moves the taps into the pods once
//! they start; interfaces, next-hops, routes and the VNI of the way back are the
//! config's static state). [`run_kernel_demo`] runs the data plane on that config
//! while a second thread pings pod1 -> pod2 (local) and pod1 -> remote (VXLAN) and
//! runs iperf3 over both paths; then it prints the data plane's summary and the
//! measured figures. Everything it created is deleted again, also on failure and
//! on Ctrl-C.

use std::fmt::Write as _;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pmd_config::Config;
use thiserror::Error;

use super::netns::{self, Lab, NetnsError, VxlanSpec};
use super::{RunOptions, RuntimeError, Summary};

/// What stops the demo.
#[derive(Debug, Error)]
pub enum DemoError {
    /// The host lacks something the demo needs.
    #[error("{0} (prepare the host with `sudo scripts/setup-host.sh`, run the demo as root)")]
    Host(String),
    /// Building or tearing down the topology failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The generated config did not validate.
    #[error("generated config: {0}")]
    Config(#[from] pmd_config::ConfigError),
    /// The data plane failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A traffic check failed.
    #[error("{0}")]
    Traffic(String),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The MAC the data plane answers ARP/ND with and routes on (TF's vRouter MAC).
pub const ROUTER_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x00];

/// Names, cores and addresses of one demo topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoPlan {
    /// Prefix of every namespace and interface name (at most 9 characters).
    pub prefix: String,
    /// The worker core.
    pub worker: u32,
    /// The control core.
    pub control: u32,
    /// The VXLAN VNI between this node and the remote one.
    pub vni: u32,
    /// Directory of the generated config.
    pub dir: PathBuf,
}

/// Pod 1's addresses and MAC.
pub const POD1: PodAddr = PodAddr {
    v4: std::net::Ipv4Addr::new(10, 3, 0, 7),
    v6: std::net::Ipv6Addr::new(0xfd00, 3, 0, 0, 0, 0, 0, 7),
    mac: [0x02, 0x00, 0x0a, 0x03, 0x00, 0x07],
};
/// Pod 2's addresses and MAC.
pub const POD2: PodAddr = PodAddr {
    v4: std::net::Ipv4Addr::new(10, 3, 0, 8),
    v6: std::net::Ipv6Addr::new(0xfd00, 3, 0, 0, 0, 0, 0, 8),
    mac: [0x02, 0x00, 0x0a, 0x03, 0x00, 0x08],
};
/// The remote pod's addresses (behind the kernel VXLAN device; its MAC is the
/// router MAC, the inner destination MAC the data plane writes).
pub const REMOTE: PodAddr = PodAddr {
    v4: std::net::Ipv4Addr::new(10, 3, 1, 10),
    v6: std::net::Ipv6Addr::new(0xfd00, 3, 1, 0, 0, 0, 0, 0x10),
    mac: ROUTER_MAC,
};
/// This node's underlay address (on the fabric port).
pub const UNDERLAY_LOCAL: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 99, 0, 1);
/// The remote node's underlay address (its VTEP).
pub const UNDERLAY_REMOTE: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 99, 0, 2);
/// This node's fabric MAC (the fabric interface's, not the veth's own).
pub const FABRIC_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x63, 0x00, 0x01];
/// The remote node's underlay MAC.
pub const REMOTE_FABRIC_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x63, 0x00, 0x02];

/// A pod's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodAddr {
    /// IPv4.
    pub v4: std::net::Ipv4Addr,
    /// IPv6.
    pub v6: std::net::Ipv6Addr,
    /// MAC.
    pub mac: [u8; 6],
}

impl Default for DemoPlan {
    fn default() -> Self {
        DemoPlan::new("vrdp")
    }
}

impl DemoPlan {
    /// The plan with names starting `prefix` (the embedded run uses `vrdp`), worker
    /// on core 1, control on core 0, VNI 300, the config under
    /// `/tmp/<prefix>-demo-<pid>`.
    pub fn new(prefix: &str) -> DemoPlan {
        DemoPlan {
            prefix: prefix.into(),
            worker: 1,
            control: 0,
            vni: 300,
            dir: std::env::temp_dir().join(format!("{prefix}-demo-{}", std::process::id())),
        }
    }

    /// Namespace of pod `n` (1 or 2).
    pub fn pod_ns(&self, n: u8) -> String {
        format!("{}-pod{n}", self.prefix)
    }

    /// Namespace of the remote node.
    pub fn remote_ns(&self) -> String {
        format!("{}-remote", self.prefix)
    }

    /// The tap of pod `n` in the data plane's namespace (before it is moved).
    pub fn tap(&self, n: u8) -> String {
        format!("{}-tap{n}", self.prefix)
    }

    /// The host end of the fabric veth (driven by `net_af_packet`).
    pub fn fabric_if(&self) -> String {
        format!("{}-fab0", self.prefix)
    }

    /// The remote end of the fabric veth (inside the remote namespace).
    pub fn remote_if(&self) -> String {
        format!("{}-rfab", self.prefix)
    }

    /// The pods' interface name inside their namespaces.
    pub fn pod_ifname(&self) -> &'static str {
        "eth0"
    }

    /// The generated config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("vrouter-dp.toml")
    }

    /// The data plane's config for this topology.
    pub fn config_toml(&self) -> String {
        let mac = netns::mac_string;
        format!(
            r#"# Generated by `vrouter-dp` (the embedded default run): two kernel pods on tap
# ports moved into their namespaces, a fabric veth driven by net_af_packet, VXLAN
# VNI {vni} to a kernel VXLAN peer.
log_level = "info"

[cores]
workers = [{worker}]
control = {control}

[memory]
hugepage_size = "2M"
socket_mem_mb = [256]
mbufs_per_pool = 8191
mbuf_cache = 256

[eal]
in_memory = true

[[ports]]
name = "fabric"
vdev = "net_af_packet0,iface={fab}"
role = "fabric"

[[ports]]
name = "pod1"
vdev = "net_tap0,iface={tap1},mac={m1}"
role = "pod"
netns = "{ns1}"
ifname = "{ifname}"

[[ports]]
name = "pod2"
vdev = "net_tap1,iface={tap2},mac={m2}"
role = "pod"
netns = "{ns2}"
ifname = "{ifname}"

[underlay]
interface = "fabric"
ipv4 = "{ul}/24"

[[vrfs]]
id = 3
name = "demo"

[[interfaces]]
id = 0
kind = "physical"
port = "fabric"
mac = "{fmac}"
ipv4 = "{ul}"

[[interfaces]]
id = 1
kind = "virtual"
port = "pod1"
vrf = 3
mac = "{m1}"
ipv4 = "{p1v4}"
ipv6 = "{p1v6}"
mtu = 1450

[[interfaces]]
id = 2
kind = "virtual"
port = "pod2"
vrf = 3
mac = "{m2}"
ipv4 = "{p2v4}"
ipv6 = "{p2v6}"
mtu = 1450

# Local pods: L2 rewrite out of their taps.
[[nexthops]]
id = 11
kind = "encap"
interface = 1
dmac = "{m1}"

[[nexthops]]
id = 12
kind = "encap"
interface = 2
dmac = "{m2}"

# The remote node's VTEP.
[[nexthops]]
id = 20
kind = "tunnel"
encap = "vxlan"
dst = "{ur}"
dmac = "{rmac}"

# VNI {vni} from the fabric: look the inner packet up in VRF 3.
[[nexthops]]
id = 30
kind = "vrf-translate"
vrf = 3

[[routes]]
vrf = 3
prefix = "{p1v4}/32"
nexthop = 11

[[routes]]
vrf = 3
prefix = "{p2v4}/32"
nexthop = 12

[[routes]]
vrf = 3
prefix = "{p1v6}/128"
nexthop = 11

[[routes]]
vrf = 3
prefix = "{p2v6}/128"
nexthop = 12

[[routes]]
vrf = 3
prefix = "10.3.1.0/24"
nexthop = 20
vni = {vni}

[[routes]]
vrf = 3
prefix = "fd00:3:1::/64"
nexthop = 20
vni = {vni}

# The rest of the pods' subnets is discarded; routing it makes the pods' gateway
# (10.3.0.1, fd00:3::1) an address the ARP / neighbour proxy answers for.
[[routes]]
vrf = 3
prefix = "10.3.0.0/24"
nexthop = 0

[[routes]]
vrf = 3
prefix = "fd00:3::/64"
nexthop = 0

[[vnis]]
vni = {vni}
nexthop = 30

[control]
enabled = false

[telemetry]
stats_interval_secs = 1
"#,
            vni = self.vni,
            worker = self.worker,
            control = self.control,
            fab = self.fabric_if(),
            tap1 = self.tap(1),
            tap2 = self.tap(2),
            ns1 = self.pod_ns(1),
            ns2 = self.pod_ns(2),
            ifname = self.pod_ifname(),
            ul = UNDERLAY_LOCAL,
            ur = UNDERLAY_REMOTE,
            fmac = mac(FABRIC_MAC),
            rmac = mac(REMOTE_FABRIC_MAC),
            m1 = mac(POD1.mac),
            m2 = mac(POD2.mac),
            p1v4 = POD1.v4,
            p1v6 = POD1.v6,
            p2v4 = POD2.v4,
            p2v6 = POD2.v6,
        )
    }
}

/// A built topology: removed (namespaces, veth, config) when dropped.
#[derive(Debug)]
pub struct Topology {
    /// The plan it was built from.
    pub plan: DemoPlan,
    lab: Lab,
}

impl Topology {
    /// Creates the pods' namespaces (empty until the data plane moves the taps in),
    /// the fabric veth and the remote node with its kernel VXLAN device, and
    /// writes the config.
    pub fn build(plan: &DemoPlan) -> Result<Topology, DemoError> {
        let mut lab = Lab::new();
        let p = plan;
        lab.temp_dir(&p.dir)?;
        let cfg = p.config_path();
        std::fs::write(&cfg, p.config_toml()).map_err(|source| DemoError::Io {
            path: cfg.clone(),
            source,
        })?;
        for n in [1, 2] {
            lab.netns(&p.pod_ns(n))?;
            // A tap left over by a killed run would block the PMD's.
            if netns::link_exists(&p.tap(n)) {
                netns::ip(&["link", "delete", "dev", &p.tap(n)])?;
            }
        }
        let rns = p.remote_ns();
        lab.netns(&rns)?;
        let (fab, rfab) = (p.fabric_if(), p.remote_if());
        lab.veth(&fab, &rfab, Some(&rns))?;
        let r = Path::new(&rns);
        let rmac = netns::mac_string(REMOTE_FABRIC_MAC);
        netns::ip_in(r, &["link", "set", "dev", &rfab, "address", &rmac])?;
        netns::ip_in(
            r,
            &[
                "addr",
                "replace",
                &format!("{UNDERLAY_REMOTE}/24"),
                "dev",
                &rfab,
            ],
        )?;
        netns::ip_in(r, &["link", "set", "dev", &rfab, "up"])?;
        netns::ethtool_tx_off(Some(&rns), &rfab)?;
        // The data plane does not answer ARP for its underlay address (no agent).
        netns::ip_in(
            r,
            &[
                "neigh",
                "replace",
                &UNDERLAY_LOCAL.to_string(),
                "lladdr",
                &netns::mac_string(FABRIC_MAC),
                "dev",
                &rfab,
                "nud",
                "permanent",
            ],
        )?;
        lab.vxlan(
            &rns,
            &VxlanSpec {
                name: "vxlan0".into(),
                vni: p.vni,
                dstport: 4789,
                local: IpAddr::V4(UNDERLAY_REMOTE),
                remote: IpAddr::V4(UNDERLAY_LOCAL),
                dev: rfab.clone(),
                mac: Some([0x02, 0x00, 0x0a, 0x03, 0x01, 0xfe]),
            },
        )?;
        netns::ethtool_tx_off(Some(&rns), "vxlan0")?;
        // The data plane's VXLAN frames carry the router MAC as inner source and
        // destination: a macvlan with that MAC receives them (the VXLAN device
        // itself drops frames whose source is its own MAC), and sends to it.
        let rm = netns::mac_string(ROUTER_MAC);
        netns::ip_in(
            r,
            &[
                "link", "add", "vxpod0", "link", "vxlan0", "address", &rm, "type", "macvlan",
                "mode", "private",
            ],
        )?;
        let spec = netns::PodNetns {
            netns: PathBuf::from(&rns),
            name: "vxpod0".into(),
            mac: None,
            addrs: vec![(IpAddr::V4(REMOTE.v4), 32), (IpAddr::V6(REMOTE.v6), 128)],
            mtu: None,
            gateway_v4: Some(netns::gateway_v4_for(REMOTE.v4)),
            gateway_v6: Some(netns::gateway_v6_for(REMOTE.v6)),
        };
        netns::configure_in_netns(&spec)?;
        for gw in [
            netns::gateway_v4_for(REMOTE.v4).to_string(),
            netns::gateway_v6_for(REMOTE.v6).to_string(),
        ] {
            netns::ip_in(
                r,
                &[
                    "neigh",
                    "replace",
                    &gw,
                    "lladdr",
                    &rm,
                    "dev",
                    "vxpod0",
                    "nud",
                    "permanent",
                ],
            )?;
        }
        Ok(Topology {
            plan: plan.clone(),
            lab,
        })
    }

    /// The generated config, loaded and validated.
    pub fn config(&self) -> Result<Config, DemoError> {
        Ok(Config::load(&self.plan.config_path())?)
    }

    /// Deletes everything now (also done on drop).
    pub fn teardown(&mut self) {
        self.lab.teardown();
    }
}

/// Fails with a message naming `scripts/setup-host.sh` unless the demo can run:
/// root, 128 free 2 MiB hugepages, `ip`, `ethtool`, `ping`, `iperf3`, `nsenter`.
pub fn check_prerequisites() -> Result<(), DemoError> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Err(DemoError::Host(
            "the demo creates network namespaces and tap devices and needs root".into(),
        ));
    }
    let free = std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if free < 128 {
        return Err(DemoError::Host(format!(
            "the demo needs 128 free 2 MiB hugepages, the host has {free}"
        )));
    }
    for tool in ["ip", "ethtool", "ping", "iperf3", "nsenter"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            return Err(DemoError::Host(format!("`{tool}` is not installed")));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(DemoError::Host(
            "/dev/net/tun is missing (tun module)".into(),
        ));
    }
    Ok(())
}

/// Waits until interface `ifname` is up inside each namespace of `namespaces`
/// (the data plane moves the taps in after its ports start).
pub fn wait_for_links(
    namespaces: &[String],
    ifname: &str,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<(), DemoError> {
    let t0 = Instant::now();
    for ns in namespaces {
        loop {
            let up = netns::ip_in(Path::new(ns), &["-o", "link", "show", "dev", ifname])
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(",UP"))
                .unwrap_or(false);
            if up {
                break;
            }
            if stop.load(Ordering::Relaxed) {
                return Err(DemoError::Traffic("stopped".into()));
            }
            if t0.elapsed() > timeout {
                return Err(DemoError::Traffic(format!(
                    "{ifname} did not come up in namespace {ns} within {} s",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// What `ping` measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PingStats {
    /// Echo requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
    /// Round-trip minimum, ms.
    pub min_ms: f64,
    /// Average, ms.
    pub avg_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
}

/// Parses iputils `ping`'s closing lines.
pub fn parse_ping(out: &str) -> Option<PingStats> {
    let counts = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut it = counts.split(',');
    let sent = it.next()?.split_whitespace().next()?.parse().ok()?;
    let received = it.next()?.split_whitespace().next()?.parse().ok()?;
    let (mut min_ms, mut avg_ms, mut max_ms) = (0.0, 0.0, 0.0);
    if let Some(rtt) = out
        .lines()
        .find(|l| l.starts_with("rtt ") || l.starts_with("round-trip"))
    {
        let v: Vec<f64> = rtt
            .split('=')
            .nth(1)?
            .split_whitespace()
            .next()?
            .split('/')
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [a, b, c, ..] = v.as_slice() {
            (min_ms, avg_ms, max_ms) = (*a, *b, *c);
        }
    }
    Some(PingStats {
        sent,
        received,
        min_ms,
        avg_ms,
        max_ms,
    })
}

/// Runs `cmd` to completion and returns its output; kills it when `stop` is set or
/// after `timeout` (a peer that went away must not hang the run).
pub fn output_until(
    mut cmd: Command,
    stop: &AtomicBool,
    timeout: Duration,
) -> Result<Output, DemoError> {
    let what = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DemoError::Traffic(format!("cannot start {what}: {e}")))?;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(DemoError::Traffic(format!("waiting for {what}: {e}"))),
        }
        let stopped = stop.load(Ordering::Relaxed);
        if stopped || t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(DemoError::Traffic(if stopped {
                format!("{what}: stopped")
            } else {
                format!("{what}: no result after {} s", timeout.as_secs())
            }));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// `ping -c count` from namespace `ns` to `dst` (0.2 s apart, 2 s timeout each);
/// gives up when `stop` is set.
pub fn ping(ns: &str, dst: IpAddr, count: u32, stop: &AtomicBool) -> Result<PingStats, DemoError> {
    let c = count.to_string();
    let d = dst.to_string();
    let cmd = netns::command_in(ns, "ping", &["-n", "-c", &c, "-i", "0.2", "-W", "2", &d]);
    let out = output_until(cmd, stop, Duration::from_secs(u64::from(count) * 3 + 30))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_ping(&text).ok_or_else(|| {
        DemoError::Traffic(format!(
            "ping {d} from {ns}: no statistics in its output: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

/// Kills the child when dropped (an iperf3 server left behind by an error path).
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A TCP iperf3 run of `secs` seconds from `client_ns` to a server started in
/// `server_ns` on `dst`; returns the receiver's bits per second. Gives up when
/// `stop` is set.
pub fn iperf3(
    server_ns: &str,
    client_ns: &str,
    dst: IpAddr,
    secs: u32,
    port: u16,
    stop: &AtomicBool,
) -> Result<f64, DemoError> {
    let p = port.to_string();
    let b = dst.to_string();
    let server = netns::command_in(server_ns, "iperf3", &["-s", "-1", "-B", &b, "-p", &p])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| DemoError::Traffic(format!("iperf3 server in {server_ns}: {e}")))?;
    let _server = KillOnDrop(Some(server));
    let t = secs.to_string();
    let mut last = String::new();
    for _ in 0..50 {
        let cmd = netns::command_in(
            client_ns,
            "iperf3",
            &[
                "-c",
                &b,
                "-p",
                &p,
                "-t",
                &t,
                "-J",
                "--connect-timeout",
                "5000",
            ],
        );
        let out = output_until(cmd, stop, Duration::from_secs(u64::from(secs) + 60))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if let Some(bps) = v
            .pointer("/end/sum_received/bits_per_second")
            .and_then(serde_json::Value::as_f64)
        {
            return Ok(bps);
        }
        last = v
            .get("error")
            .and_then(|e| e.as_str())
            .map_or_else(|| text.clone(), str::to_owned);
        // The server may not listen yet.
        if !last.contains("refused") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(DemoError::Traffic(format!(
        "iperf3 {client_ns} -> {b}: {}",
        last.trim()
    )))
}

/// One traffic check and its result.
#[derive(Debug, Clone)]
pub enum Check {
    /// A ping run.
    Ping {
        /// What it measured, e.g. `pod1 -> pod2 (local)`.
        what: String,
        /// The result.
        result: Result<PingStats, String>,
    },
    /// An iperf3 run.
    Iperf {
        /// What it measured.
        what: String,
        /// Receiver bits per second.
        result: Result<f64, String>,
    },
}

impl Check {
    /// True when the check got traffic through.
    pub fn passed(&self) -> bool {
        match self {
            Check::Ping { result, .. } => result.as_ref().is_ok_and(|p| p.received > 0),
            Check::Iperf { result, .. } => result.as_ref().is_ok_and(|b| *b > 0.0),
        }
    }

    /// One line of the summary.
    pub fn render(&self) -> String {
        match self {
            Check::Ping { what, result } => match result {
                Ok(p) => format!(
                    "ping   {what:<34} {}/{} replies, rtt min/avg/max {:.3}/{:.3}/{:.3} ms",
                    p.received, p.sent, p.min_ms, p.avg_ms, p.max_ms
                ),
                Err(e) => format!("ping   {what:<34} FAILED: {e}"),
            },
            Check::Iperf { what, result } => match result {
                Ok(b) => format!("iperf3 {what:<34} {:.2} Gbit/s (TCP)", b / 1e9),
                Err(e) => format!("iperf3 {what:<34} FAILED: {e}"),
            },
        }
    }
}

/// The traffic of the demo: pings and iperf3 runs over the local and the VXLAN path.
pub fn demo_traffic(plan: &DemoPlan, stop: &AtomicBool, iperf_secs: u32) -> Vec<Check> {
    let (p1, p2, r) = (plan.pod_ns(1), plan.pod_ns(2), plan.remote_ns());
    let mut out = Vec::new();
    let pings: [(&str, &str, IpAddr); 2] = [
        ("pod1 -> pod2 (local)", &p1, IpAddr::V4(POD2.v4)),
        ("pod1 -> remote (VXLAN)", &p1, IpAddr::V4(REMOTE.v4)),
    ];
    for (what, ns, dst) in pings {
        if stop.load(Ordering::Relaxed) {
            return out;
        }
        println!("demo: ping -c 5 {dst} from {ns} ({what})");
        out.push(Check::Ping {
            what: format!("{what} {dst}"),
            result: ping(ns, dst, 5, stop).map_err(|e| e.to_string()),
        });
    }
    let runs: [(&str, &str, &str, IpAddr); 2] = [
        ("pod1 -> pod2 (local)", &p2, &p1, IpAddr::V4(POD2.v4)),
        ("pod1 -> remote (VXLAN)", &r, &p1, IpAddr::V4(REMOTE.v4)),
    ];
    for (i, (what, server, client, dst)) in runs.into_iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return out;
        }
        println!("demo: iperf3 -t {iperf_secs} {client} -> {dst} ({what})");
        out.push(Check::Iperf {
            what: format!("{what} {dst}"),
            result: iperf3(server, client, dst, iperf_secs, 5201 + i as u16, stop)
                .map_err(|e| e.to_string()),
        });
    }
    out
}

/// What the demo did.
#[derive(Debug)]
pub struct DemoReport {
    /// The data plane's summary.
    pub summary: Summary,
    /// The traffic checks, in order.
    pub checks: Vec<Check>,
    /// The run was stopped by a signal before the checks finished.
    pub interrupted: bool,
}

impl DemoReport {
    /// Packets forwarded (accepted for TX by the ports) over the run.
    pub fn forwarded(&self) -> u64 {
        self.summary.ports.iter().map(|p| p.worker_tx).sum()
    }

    /// Packets dropped by the pipeline over the run.
    pub fn dropped(&self) -> u64 {
        self.summary.drops.iter().map(|(_, n)| n).sum()
    }

    /// True when every check got traffic through.
    pub fn passed(&self) -> bool {
        !self.interrupted && !self.checks.is_empty() && self.checks.iter().all(Check::passed)
    }

    /// The data plane's summary followed by the demo's figures.
    pub fn render(&self) -> String {
        let mut o = self.summary.render();
        let _ = writeln!(o, "=== demo results ===");
        for c in &self.checks {
            let _ = writeln!(o, "{}", c.render());
        }
        let drops: Vec<String> = self
            .summary
            .drops
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let _ = writeln!(
            o,
            "packets forwarded: {}, dropped: {}{}",
            self.forwarded(),
            self.dropped(),
            if drops.is_empty() {
                String::new()
            } else {
                format!(" ({})", drops.join(", "))
            }
        );
        if self.interrupted {
            let _ = writeln!(o, "demo interrupted");
        }
        o
    }
}

/// Runs the whole demo: prerequisites, topology, data plane (periodic per-port
/// lines on stdout) with the traffic checks beside it, teardown. `stop` (set by
/// SIGINT/SIGTERM) ends it early; the topology is removed in every case.
pub fn run_kernel_demo(
    plan: &DemoPlan,
    iperf_secs: u32,
    stop: Arc<AtomicBool>,
) -> Result<DemoReport, DemoError> {
    check_prerequisites()?;
    println!(
        "demo: namespaces {}, {} (kernel pods on net_tap) and {} (kernel VXLAN VNI {} over veth {} <-> {}, net_af_packet)",
        plan.pod_ns(1),
        plan.pod_ns(2),
        plan.remote_ns(),
        plan.vni,
        plan.fabric_if(),
        plan.remote_if()
    );
    let mut topo = Topology::build(plan)?;
    let cfg = topo.config()?;
    println!("demo: config {}", plan.config_path().display());
    let eal = super::init_eal(&cfg, "vrouter-dp", Path::new("/"))?;
    let done = Arc::new(AtomicBool::new(false));
    let traffic = {
        let plan = plan.clone();
        let stop = Arc::clone(&stop);
        let done = Arc::clone(&done);
        let pods = vec![plan.pod_ns(1), plan.pod_ns(2)];
        std::thread::spawn(move || {
            let checks =
                match wait_for_links(&pods, plan.pod_ifname(), Duration::from_secs(60), &stop) {
                    Ok(()) => demo_traffic(&plan, &stop, iperf_secs),
                    Err(e) => vec![Check::Ping {
                        what: "pods ready".into(),
                        result: Err(e.to_string()),
                    }],
                };
            done.store(true, Ordering::Relaxed);
            checks
        })
    };
    // The data plane stops when the checks are done, on a signal, or after 5 min.
    let run_stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, done, run_stop) = (Arc::clone(&stop), Arc::clone(&done), Arc::clone(&run_stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) && !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            // One more stats interval so the last counters are printed.
            if !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
            }
            run_stop.store(true, Ordering::Relaxed);
        })
    };
    let opts = RunOptions {
        duration: Some(Duration::from_secs(300)),
        until_idle: None,
        stats_interval: Some(Duration::from_secs(1)),
        verbose: true,
        sysfs_root: "/".into(),
        control_api: false,
    };
    let result = super::run(&eal, &cfg, &opts, Arc::clone(&run_stop));
    // A signal arrived before the checks were done.
    let interrupted = stop.load(Ordering::Relaxed);
    // Whatever happened, let the traffic thread finish before the teardown.
    stop.store(true, Ordering::Relaxed);
    let checks = traffic.join().unwrap_or_default();
    let _ = watcher.join();
    drop(eal);
    topo.teardown();
    let summary = result?;
    let interrupted = interrupted || !done.load(Ordering::Relaxed);
    Ok(DemoReport {
        summary,
        checks,
        interrupted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_config_validates() {
        let plan = DemoPlan::new("vrt");
        let cfg = Config::from_toml_str(&plan.config_toml()).unwrap();
        let n = cfg.port("pod1").unwrap().netns.as_ref().unwrap();
        assert_eq!(n.netns, "vrt-pod1");
        assert_eq!(n.ifname, "eth0");
        assert_eq!(n.host_ifname, "vrt-tap1");
        assert_eq!(cfg.vnis[0].vni, 300);
        let (_, spec) = netns::pod_netns_of(&cfg, "pod2").unwrap();
        assert_eq!(spec.mac, Some(POD2.mac));
        assert_eq!(spec.mtu, Some(1450));
    }

    #[test]
    fn ping_output_is_parsed() {
        let out = "PING 10.3.0.8 (10.3.0.8) 56(84) bytes of data.\n\
                   64 bytes from 10.3.0.8: icmp_seq=1 ttl=63 time=0.071 ms\n\n\
                   --- 10.3.0.8 ping statistics ---\n\
                   5 packets transmitted, 4 received, 20% packet loss, time 815ms\n\
                   rtt min/avg/max/mdev = 0.051/0.070/0.102/0.017 ms\n";
        let p = parse_ping(out).unwrap();
        assert_eq!((p.sent, p.received), (5, 4));
        assert!((p.min_ms - 0.051).abs() < 1e-9);
        assert!((p.avg_ms - 0.070).abs() < 1e-9);
        assert!((p.max_ms - 0.102).abs() < 1e-9);
        let lost = "3 packets transmitted, 0 received, 100% packet loss, time 2030ms\n";
        let p = parse_ping(lost).unwrap();
        assert_eq!(p.received, 0);
        assert!(parse_ping("ping: connect: Network is unreachable").is_none());
    }
}
