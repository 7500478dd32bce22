//! The validated configuration: what the daemon and `check-host` consume.
//!
//! The TOML file is deserialized into raw structs (every table
//! rejects unknown fields), then cross-validation turns it into a [`Config`] or a
//! list of errors that each name the field path, the reason and the line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, FieldError};
use crate::types::{HugepageSize, IovaMode, IpPrefix, MacAddr, PciAddr};

/// The whole data-plane configuration, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// Worker and control cores.
    pub cores: Cores,
    /// Hugepages and packet buffers.
    pub memory: Memory,
    /// EAL options that are not implied by other sections.
    pub eal: Eal,
    /// DPDK ports, in DPDK port-id order of their declaration.
    pub ports: Vec<PortConfig>,
    /// Bonding of fabric ports (one DPDK bonding device), if any.
    pub bond: Option<Bond>,
    /// vhost-user sockets for DPDK pods (hot-plugged by the daemon, not EAL vdevs).
    pub vhost_user: Vec<VhostUser>,
    /// The node's underlay (fabric) addressing.
    pub underlay: Option<Underlay>,
    /// Static interfaces (vifs) for operation without an agent.
    pub interfaces: Vec<Interface>,
    /// Static VRFs. VRF 0 (the fabric VRF) always exists.
    pub vrfs: Vec<Vrf>,
    /// Static next-hops. Next-hop 0 always exists and discards.
    pub nexthops: Vec<Nexthop>,
    /// Static routes.
    pub routes: Vec<Route>,
    /// Static MPLS label table entries.
    pub labels: Vec<Label>,
    /// Static VXLAN VNI table entries.
    pub vnis: Vec<Vni>,
    /// The agent API socket.
    pub control: Control,
    /// Statistics export.
    pub telemetry: Telemetry,
    /// The flow table.
    pub flows: Flows,
    /// Log level of the daemon: `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: String,
    /// Non-fatal findings of validation (printed by `check-host`, logged by the daemon).
    #[serde(skip)]
    pub warnings: Vec<FieldError>,
}

/// Which cores run what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cores {
    /// Cores that run a poll-mode worker each (DPDK lcores, pinned).
    pub workers: Vec<u32>,
    /// The core of the control thread, also the EAL main lcore.
    #[serde(default)]
    pub control: u32,
    /// Let the control thread run on a worker's core (`control` listed in
    /// `workers`), for nodes with too few cores to give it one of its own. That
    /// worker loses its core while the control thread runs (agent updates,
    /// statistics), so its packets wait meanwhile; off by default.
    #[serde(default)]
    pub shared_control: bool,
}

/// Hugepage memory and packet buffer pools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Hugepage size: "2M" or "1G".
    #[serde(default)]
    pub hugepage_size: HugepageSize,
    /// MiB of hugepage memory to reserve per NUMA node (index = node), `--socket-mem`.
    /// Without hugepages, their sum is the `-m` amount.
    #[serde(default = "default_socket_mem")]
    pub socket_mem_mb: Vec<u32>,
    /// Mbufs in each packet pool (one pool per NUMA node that has ports).
    #[serde(default = "default_mbufs")]
    pub mbufs_per_pool: u32,
    /// Per-lcore mbuf cache size of each pool.
    #[serde(default = "default_mbuf_cache")]
    pub mbuf_cache: u32,
    /// Use hugepages; `false` runs EAL with `--no-huge` (tests, demos).
    #[serde(default = "default_true")]
    pub hugepages: bool,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            hugepage_size: HugepageSize::Size2M,
            socket_mem_mb: default_socket_mem(),
            mbufs_per_pool: default_mbufs(),
            mbuf_cache: default_mbuf_cache(),
            hugepages: true,
        }
    }
}

impl Memory {
    /// Hugepages of `hugepage_size` needed on NUMA node `node` (rounded up).
    pub fn pages_needed(&self, node: usize) -> u64 {
        let mb = u64::from(self.socket_mem_mb.get(node).copied().unwrap_or(0));
        mb.div_ceil(self.hugepage_size.mib())
    }
}

/// EAL options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Eal {
    /// `--file-prefix`: separates the runtime files of several DPDK processes.
    pub file_prefix: Option<String>,
    /// `--in-memory`: no shared runtime files at all (one process, no secondary).
    pub in_memory: bool,
    /// `--iova-mode`.
    pub iova_mode: Option<IovaMode>,
    /// `--huge-dir`: the hugetlbfs mount to use.
    pub huge_dir: Option<PathBuf>,
    /// `--no-pci`: derived (true when no PCI or VF port is configured) unless set.
    pub no_pci: bool,
    /// EAL log level, passed as `--log-level lib.eal:<level>`.
    pub log_level: String,
    /// Extra EAL arguments appended verbatim.
    pub extra_args: Vec<String>,
}

/// One DPDK port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortConfig {
    /// Name the rest of the config refers to (interfaces, bond, underlay).
    pub name: String,
    /// Where the port comes from.
    pub source: PortSource,
    /// Receive queues (RSS spreads flows over them; one worker polls each).
    pub rx_queues: u16,
    /// Transmit queues.
    pub tx_queues: u16,
    /// Descriptors per receive queue.
    pub rx_desc: u16,
    /// Descriptors per transmit queue.
    pub tx_desc: u16,
    /// MTU to set; `None` keeps the device default.
    pub mtu: Option<u16>,
    /// Fabric (underlay) or pod side.
    pub role: PortRole,
    /// A kernel pod's network namespace that the port's tap interface is moved
    /// into once the port has started (`net_tap` pod ports only).
    pub netns: Option<PortNetns>,
}

/// Where the tap interface of a kernel pod's `net_tap` port lives: after the port
/// starts, the data plane moves the interface into the namespace, renames it and
/// gives it the MAC, addresses and MTU of the `[[interfaces]]` entry that uses
/// the port, with default routes through the pod's gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortNetns {
    /// The namespace: a name under `/var/run/netns` or an absolute path
    /// (e.g. `/proc/<pid>/ns/net`).
    pub netns: String,
    /// The interface's name inside the namespace (default: the port's name).
    pub ifname: String,
    /// The interface's name in the data plane's namespace (the `iface=` devarg).
    pub host_ifname: String,
}

/// Where a port comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PortSource {
    /// A PCI NIC (physical function) bound to vfio-pci.
    Pci {
        /// Its PCI address.
        addr: PciAddr,
    },
    /// SR-IOV virtual function `vf` of the physical function `pf`.
    Vf {
        /// The physical function's PCI address.
        pf: PciAddr,
        /// The VF index (`virtfn<N>`).
        vf: u16,
    },
    /// A DPDK virtual device, e.g. `net_null0`, `net_tap0,iface=tap-pod1`.
    Vdev {
        /// The `--vdev` argument.
        devargs: String,
    },
}

impl PortSource {
    /// True for PCI and VF ports (they need vfio-pci, an IOMMU and `-a`).
    pub fn is_pci(&self) -> bool {
        !matches!(self, PortSource::Vdev { .. })
    }
}

/// Which side of the router a port is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PortRole {
    /// Underlay / fabric uplink.
    #[default]
    Fabric,
    /// Pod (workload) side.
    Pod,
}

/// Link-bonding mode of the DPDK bonding PMD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BondMode {
    /// Mode 0.
    RoundRobin,
    /// Mode 1.
    ActiveBackup,
    /// Mode 2.
    BalanceXor,
    /// Mode 3.
    Broadcast,
    /// Mode 4, IEEE 802.3ad.
    Lacp,
    /// Mode 5.
    BalanceTlb,
    /// Mode 6.
    BalanceAlb,
}

impl BondMode {
    /// The numeric mode of `net_bonding`'s `mode=` devarg.
    pub fn number(self) -> u8 {
        match self {
            BondMode::RoundRobin => 0,
            BondMode::ActiveBackup => 1,
            BondMode::BalanceXor => 2,
            BondMode::Broadcast => 3,
            BondMode::Lacp => 4,
            BondMode::BalanceTlb => 5,
            BondMode::BalanceAlb => 6,
        }
    }
}

/// Transmit hash policy for balance-xor and LACP bonds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XmitPolicy {
    /// MAC addresses.
    L2,
    /// MAC + IP addresses.
    L23,
    /// IP addresses + L4 ports.
    L34,
}

impl XmitPolicy {
    /// The `xmit_policy=` devarg value.
    pub fn devarg(self) -> &'static str {
        match self {
            XmitPolicy::L2 => "l2",
            XmitPolicy::L23 => "l23",
            XmitPolicy::L34 => "l34",
        }
    }
}

/// LACP rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LacpRate {
    /// One LACPDU every 30 s.
    Slow,
    /// One LACPDU every second.
    Fast,
}

/// A DPDK bonding device over fabric ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bond {
    /// Name of the bond (referable like a port name), e.g. `bond0`.
    pub name: String,
    /// Bonding mode.
    pub mode: BondMode,
    /// Names of member ports (PCI or VF ports with role fabric).
    pub members: Vec<String>,
    /// Transmit hash policy (balance-xor and lacp only).
    #[serde(default)]
    pub xmit_policy: Option<XmitPolicy>,
    /// LACP rate (lacp only).
    #[serde(default)]
    pub lacp_rate: Option<LacpRate>,
    /// MAC of the bond; default: the first member's.
    #[serde(default)]
    pub mac: Option<MacAddr>,
}

/// vhost-user socket mode, seen from the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VhostMode {
    /// The data plane creates and listens on the socket.
    Server,
    /// The data plane connects to a socket the pod created (and reconnects).
    Client,
}

/// One vhost-user socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VhostUser {
    /// Name the interfaces refer to.
    pub name: String,
    /// Absolute socket path.
    pub path: PathBuf,
    /// Server or client.
    pub mode: VhostMode,
    /// Queue pairs.
    #[serde(default = "default_one")]
    pub queues: u16,
}

/// The node's underlay addressing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Underlay {
    /// The fabric port or bond carrying the underlay.
    pub interface: String,
    /// IPv4 address with prefix length, e.g. `10.0.0.5/24`.
    #[serde(default)]
    pub ipv4: Option<IpPrefix>,
    /// IPv4 default gateway (must be inside `ipv4`'s subnet).
    #[serde(default)]
    pub gateway4: Option<Ipv4Addr>,
    /// IPv6 address with prefix length.
    #[serde(default)]
    pub ipv6: Option<IpPrefix>,
    /// IPv6 default gateway (inside `ipv6`'s subnet or link-local).
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// Source MAC on the fabric; default: the port's own MAC.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// 802.1Q VLAN id on the fabric (1..=4094), untagged when absent.
    #[serde(default)]
    pub vlan: Option<u16>,
}

/// Interface (vif) kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceKind {
    /// Fabric port (TF `PHYSICAL`).
    Physical,
    /// Pod port (TF `VIRTUAL`): vhost-user or tap/af_packet vdev.
    Virtual,
    /// The host's own interface (TF `HOST`, vhost0).
    Host,
}

/// A static interface (vif).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// vif index.
    pub id: u32,
    /// Kind.
    pub kind: InterfaceKind,
    /// The port, bond or vhost-user socket behind it (not needed for `host`).
    #[serde(default)]
    pub port: Option<String>,
    /// MAC address of the interface.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// VRF the interface belongs to.
    #[serde(default)]
    pub vrf: u32,
    /// IPv4 address of the pod/host behind the interface.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address of the pod/host behind the interface.
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// MTU.
    #[serde(default)]
    pub mtu: Option<u16>,
    /// Flow policy enabled (TF `POLICY_ENABLED`): new flows are trapped for a decision.
    #[serde(default)]
    pub policy: bool,
}

/// A static VRF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vrf {
    /// VRF id (0..4096).
    pub id: u32,
    /// Descriptive name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Tunnel encapsulation of a tunnel next-hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelEncap {
    /// VXLAN (UDP 4789), carries a VNI.
    Vxlan,
    /// MPLS over UDP (UDP 6635), carries a label.
    Mplsoudp,
    /// MPLS over GRE, carries a label.
    Mplsogre,
}

/// A static next-hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nexthop {
    /// Next-hop id (0 is the built-in discard next-hop).
    pub id: u32,
    /// VRF the next-hop forwards into (receive, encap), if any.
    pub vrf: Option<u32>,
    /// Kind and its fields.
    pub kind: NexthopKind,
}

/// Next-hop kind, with the fields each kind needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum NexthopKind {
    /// Drop.
    Discard,
    /// Deliver to the host (vhost0) interface.
    Receive {
        /// Host interface, if not the default one.
        interface: Option<u32>,
    },
    /// Local L2 rewrite out of an interface (a pod on this node).
    Encap {
        /// Outgoing vif.
        interface: u32,
        /// Destination MAC written into the frame.
        dmac: MacAddr,
    },
    /// Tunnel to a remote VTEP.
    Tunnel {
        /// Encapsulation.
        encap: TunnelEncap,
        /// Remote tunnel endpoint.
        dst: IpAddr,
        /// Local tunnel source; default: the underlay address of the same family.
        src: Option<IpAddr>,
        /// Next-hop MAC on the fabric; default: resolved for the underlay gateway.
        dmac: Option<MacAddr>,
        /// Outgoing fabric vif; default: the underlay interface.
        interface: Option<u32>,
    },
    /// ECMP over member next-hops.
    CompositeEcmp {
        /// Members (next-hop ids), each with an optional label/VNI to push.
        members: Vec<EcmpMember>,
    },
    /// L2 flood to member next-hops.
    L2Flood {
        /// Member next-hop ids.
        members: Vec<u32>,
    },
    /// Look the packet up again in another VRF (TF `VRF_TRANSLATE`, the next-hop of
    /// an L3 VXLAN VNI). The VRF is [`Nexthop::vrf`].
    VrfTranslate,
}

/// One member of an ECMP composite next-hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EcmpMember {
    /// Member next-hop id.
    pub nexthop: u32,
    /// Label (MPLS) or VNI (VXLAN) pushed for this member.
    pub label: Option<u32>,
}

/// A static route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// VRF.
    #[serde(default)]
    pub vrf: u32,
    /// IPv4 or IPv6 prefix (network address, no host bits).
    pub prefix: IpPrefix,
    /// Next-hop id.
    pub nexthop: u32,
    /// MPLS label pushed (MPLS tunnel next-hops).
    #[serde(default)]
    pub label: Option<u32>,
    /// VXLAN VNI used (VXLAN tunnel next-hops).
    #[serde(default)]
    pub vni: Option<u32>,
}

/// A static MPLS label table entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// Label (16..2^20; 0-15 are reserved).
    pub label: u32,
    /// Next-hop of packets arriving with this label.
    pub nexthop: u32,
}

/// A static VXLAN VNI table entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vni {
    /// VNI (1..2^24).
    pub vni: u32,
    /// Next-hop of packets arriving with this VNI.
    pub nexthop: u32,
    /// VRF the decapsulated packet is looked up in; default: the next-hop's.
    #[serde(default)]
    pub vrf: Option<u32>,
}

/// The agent API socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Control {
    /// Serve the agent API at all.
    pub enabled: bool,
    /// Unix socket path.
    pub socket: PathBuf,
    /// Permission bits of the socket file.
    pub mode: u32,
    /// Owner of the socket file (user name or numeric uid); unchanged when absent.
    pub owner: Option<String>,
    /// Group of the socket file (group name or numeric gid); unchanged when absent.
    pub group: Option<String>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            enabled: true,
            socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            mode: 0o660,
            owner: None,
            group: None,
        }
    }
}

/// Default agent API socket path.
pub const DEFAULT_CONTROL_SOCKET: &str = "/var/run/vrouter/dp.sock";

/// Default flow-table capacity (entries; a flow and its reverse take two).
pub const DEFAULT_FLOW_CAPACITY: u32 = 1 << 20;
/// Smallest flow-table capacity.
pub const MIN_FLOW_CAPACITY: u32 = 1 << 10;
/// Largest flow-table capacity.
pub const MAX_FLOW_CAPACITY: u32 = 1 << 24;

/// The flow table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flows {
    /// Entries, a power of two from 1024 to 16M. Every learned flow takes two: the
    /// flow and its reverse. About 120 bytes each, from hugepages when available.
    #[serde(default = "default_flow_capacity")]
    pub capacity: u32,
}

impl Default for Flows {
    fn default() -> Self {
        Flows {
            capacity: DEFAULT_FLOW_CAPACITY,
        }
    }
}

fn default_flow_capacity() -> u32 {
    DEFAULT_FLOW_CAPACITY
}

/// Statistics export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// Period of the statistics log/export, in seconds.
    #[serde(default = "default_stats_interval")]
    pub stats_interval_secs: u32,
    /// `host:port` to serve metrics on; none when absent.
    #[serde(default)]
    pub address: Option<String>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            stats_interval_secs: default_stats_interval(),
            address: None,
        }
    }
}

pub(crate) fn default_true() -> bool {
    true
}
pub(crate) fn default_one() -> u16 {
    1
}
pub(crate) fn default_socket_mem() -> Vec<u32> {
    vec![1024]
}
pub(crate) fn default_mbufs() -> u32 {
    16383
}
pub(crate) fn default_mbuf_cache() -> u32 {
    256
}
pub(crate) fn default_stats_interval() -> u32 {
    2
}

/// The embedded demo config: two `net_null` ports, no NIC, no hugepage requirement
/// beyond 256 MiB of 2 MiB pages, one worker on core 1 and the control thread on core 0.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../configs/default.toml");

impl Config {
    /// Parses and validates a TOML document. Errors name the field path, the reason
    /// and the line.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        crate::validate::parse_and_validate(s)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let s = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml_str(&s).map_err(|e| e.in_file(path))
    }

    /// The embedded demo config, parsed.
    pub fn default_demo() -> Result<Config, ConfigError> {
        Config::from_toml_str(DEFAULT_CONFIG_TOML)
    }

    /// Looks a port up by name.
    pub fn port(&self, name: &str) -> Option<&PortConfig> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// The EAL lcore id of the control thread (the main lcore): its core, unless
    /// a worker runs on that core too (`cores.shared_control`); then the lowest
    /// id no worker uses, which the EAL arguments pin to the control core.
    pub fn control_lcore(&self) -> u32 {
        let (c, w) = (self.cores.control, &self.cores.workers);
        if !w.contains(&c) {
            return c;
        }
        (0..=u32::MAX).find(|id| !w.contains(id)).unwrap_or(c)
    }

    /// All cores the process uses: control first, then workers.
    pub fn all_cores(&self) -> Vec<u32> {
        let mut v = vec![self.cores.control];
        v.extend(self.cores.workers.iter().copied());
        v
    }

    /// PCI physical functions and VFs the config uses (deduplicated, in order).
    pub fn pci_ports(&self) -> Vec<&PortConfig> {
        self.ports.iter().filter(|p| p.source.is_pci()).collect()
    }
}
