//! The TOML form of the config, before cross-validation. Sections whose TOML form
//! equals their validated form reuse the public types of [`crate::config`]; the others
//! have a raw form here. Every table rejects unknown fields.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{
    default_one, default_true, Bond, Cores, Interface, Label, Memory, PortRole, Route, Telemetry,
    TunnelEncap, VhostUser, Vni, Vrf, DEFAULT_CONTROL_SOCKET,
};
use crate::types::{IovaMode, MacAddr, PciAddr};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub cores: Cores,
    #[serde(default)]
    pub memory: Memory,
    #[serde(default)]
    pub eal: RawEal,
    #[serde(default)]
    pub ports: Vec<RawPort>,
    #[serde(default)]
    pub bond: Option<Bond>,
    #[serde(default)]
    pub vhost_user: Vec<VhostUser>,
    #[serde(default)]
    pub underlay: Option<crate::config::Underlay>,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub vrfs: Vec<Vrf>,
    #[serde(default)]
    pub nexthops: Vec<RawNexthop>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default)]
    pub vnis: Vec<Vni>,
    #[serde(default)]
    pub control: RawControl,
    #[serde(default)]
    pub telemetry: Telemetry,
    #[serde(default)]
    pub flows: crate::config::Flows,
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

fn default_log_level() -> String {
    "info".to_string()
}

fn default_eal_log_level() -> String {
    "error".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEal {
    #[serde(default)]
    pub file_prefix: Option<String>,
    #[serde(default)]
    pub in_memory: bool,
    #[serde(default)]
    pub iova_mode: Option<IovaMode>,
    #[serde(default)]
    pub huge_dir: Option<PathBuf>,
    #[serde(default)]
    pub no_pci: Option<bool>,
    #[serde(default = "default_eal_log_level")]
    pub log_level: String,
    #[serde(default)]
    pub extra_args: Vec<String>,
}

impl Default for RawEal {
    fn default() -> Self {
        RawEal {
            file_prefix: None,
            in_memory: false,
            iova_mode: None,
            huge_dir: None,
            no_pci: None,
            log_level: default_eal_log_level(),
            extra_args: Vec::new(),
        }
    }
}

fn default_desc() -> u16 {
    1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPort {
    pub name: String,
    #[serde(default)]
    pub pci: Option<PciAddr>,
    #[serde(default)]
    pub vf: Option<RawVf>,
    #[serde(default)]
    pub vdev: Option<String>,
    #[serde(default = "default_one")]
    pub rx_queues: u16,
    #[serde(default = "default_one")]
    pub tx_queues: u16,
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
    #[serde(default)]
    pub mtu: Option<u16>,
    #[serde(default)]
    pub role: PortRole,
    #[serde(default)]
    pub netns: Option<String>,
    #[serde(default)]
    pub ifname: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVf {
    pub pf: PciAddr,
    pub index: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawNhKind {
    Discard,
    Receive,
    Encap,
    Tunnel,
    CompositeEcmp,
    L2Flood,
    VrfTranslate,
}

impl RawNhKind {
    pub fn name(self) -> &'static str {
        match self {
            RawNhKind::Discard => "discard",
            RawNhKind::Receive => "receive",
            RawNhKind::Encap => "encap",
            RawNhKind::Tunnel => "tunnel",
            RawNhKind::CompositeEcmp => "composite-ecmp",
            RawNhKind::L2Flood => "l2-flood",
            RawNhKind::VrfTranslate => "vrf-translate",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNexthop {
    pub id: u32,
    pub kind: RawNhKind,
    #[serde(default)]
    pub vrf: Option<u32>,
    #[serde(default)]
    pub interface: Option<u32>,
    #[serde(default)]
    pub dmac: Option<MacAddr>,
    #[serde(default)]
    pub encap: Option<TunnelEncap>,
    #[serde(default)]
    pub dst: Option<IpAddr>,
    #[serde(default)]
    pub src: Option<IpAddr>,
    #[serde(default)]
    pub members: Option<Vec<u32>>,
    #[serde(default)]
    pub labels: Option<Vec<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
}

fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_CONTROL_SOCKET)
}

fn default_mode() -> String {
    "0660".to_string()
}

impl Default for RawControl {
    fn default() -> Self {
        RawControl {
            enabled: true,
            socket: default_socket(),
            mode: default_mode(),
            owner: None,
            group: None,
        }
    }
}
