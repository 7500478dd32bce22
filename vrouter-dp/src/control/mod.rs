//! The control thread's face to the agent and to operators: the `vrouter.v1` gRPC API
//! on a Unix socket, the validation and atomic application of changes to the
//! forwarding state, and the Prometheus telemetry exporter.
//!
//! * [`Server::start`] runs the API on its own tokio runtime (ordinary, unpinned
//!   threads, never a worker lcore) and returns a [`ServerHandle`];
//!   [`ServerHandle::shutdown`] stops it and removes the socket.
//! * The server owns a [`ControlPlane`]: the [`Fib`] builder, the snapshot
//!   [`Publisher`] the workers read from, the flow table, and two boundaries the daemon
//!   implements: [`StatsSource`] (counters and data-plane facts, read-only) and
//!   [`PortManager`] (creation and removal of pod ports).
//! * A batch of changes is first converted and checked field by field (every bad field
//!   of every item is reported, as `changes[i].<op>.<field>`), then validated and
//!   applied by [`Fib::apply_with_flows`] as one unit, and the new snapshot is
//!   published with one pointer swap. A refused batch changes nothing.
//! * The agent going away changes nothing: the last published state keeps forwarding.
//!
//! The `.proto` file in `proto/vrouter/v1/` is the reference of the API.

pub mod client;
mod convert;
pub mod error;
pub mod proto;
mod service;
mod socket;
pub mod stats;
pub mod telemetry;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flow_table::FlowTable;

use crate::fib::rcu::Publisher;
use crate::fib::{Fib, FibSnapshot};

pub use error::ControlError;
pub use stats::LiveStats;

/// Default largest number of changes in one batch.
pub const DEFAULT_MAX_BATCH: usize = 1 << 21;
/// Default largest gRPC message, in bytes (both directions).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 << 20;

/// How the API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Unix socket path (`/var/run/vrouter/dp.sock` by default).
    pub socket: PathBuf,
    /// Permission bits of the socket file (0660 by default).
    pub mode: u32,
    /// Owner (uid) to give the socket; unchanged when `None` (`[control] owner`).
    pub owner: Option<u32>,
    /// Group (gid) to give the socket; unchanged when `None` (`[control] group`).
    pub group: Option<u32>,
    /// Also serve on this TCP address (off by default).
    pub tcp: Option<SocketAddr>,
    /// Most changes accepted in one batch.
    pub max_batch: usize,
    /// Largest gRPC message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// Serve Prometheus metrics on this address (off by default).
    pub telemetry: Option<SocketAddr>,
    /// How often `Watch` streams poll link states and flow-table occupancy.
    pub watch_interval: Duration,
    /// A connection that has sent nothing for this long is closed (HTTP/2 keepalive
    /// probes it at a third of this period).
    pub idle_timeout: Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(pmd_config::DEFAULT_CONTROL_SOCKET),
            mode: 0o660,
            owner: None,
            group: None,
            tcp: None,
            max_batch: DEFAULT_MAX_BATCH,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            telemetry: None,
            watch_interval: Duration::from_millis(250),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl ControlConfig {
    /// The settings of a validated configuration file (`[control]`, `[telemetry]`).
    pub fn from_config(cfg: &pmd_config::Config) -> Result<Self, ControlError> {
        let telemetry = match &cfg.telemetry.address {
            None => None,
            Some(a) => Some(resolve(a)?),
        };
        Ok(Self {
            socket: cfg.control.socket.clone(),
            mode: cfg.control.mode,
            owner: match &cfg.control.owner {
                Some(o) => Some(socket::uid_of(o).map_err(|reason| ControlError::Config {
                    field: "control.owner".into(),
                    reason,
                })?),
                None => None,
            },
            group: match &cfg.control.group {
                Some(g) => Some(socket::gid_of(g).map_err(|reason| ControlError::Config {
                    field: "control.group".into(),
                    reason,
                })?),
                None => None,
            },
            telemetry,
            ..Self::default()
        })
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, ControlError> {
    addr.to_socket_addrs()
        .map_err(|e| ControlError::Address {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| ControlError::Address {
            addr: addr.to_owned(),
            reason: "resolves to no address".into(),
        })
}

/// Counters of one port, as the data plane reads them from the device and workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// DPDK port id.
    pub port: u16,
    /// Name in the config (or of the pod port).
    pub name: String,
    /// DPDK device name.
    pub device: String,
    /// Link state.
    pub link_up: bool,
    /// RX queues.
    pub rx_queues: u16,
    /// TX queues.
    pub tx_queues: u16,
    /// Received packets.
    pub rx_packets: u64,
    /// Received bytes.
    pub rx_bytes: u64,
    /// Sent packets.
    pub tx_packets: u64,
    /// Sent bytes.
    pub tx_bytes: u64,
    /// Packets the device dropped for lack of RX descriptors.
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets the device refused for TX (freed by the workers).
    pub tx_dropped: u64,
}

/// Counters of one worker lcore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    /// The lcore (core id) the worker runs on.
    pub lcore: u32,
    /// Loop iterations.
    pub iterations: u64,
    /// Iterations that received at least one packet.
    pub busy_iterations: u64,
    /// TSC cycles spent in busy iterations.
    pub busy_cycles: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets the devices refused for TX.
    pub tx_dropped: u64,
}

/// Facts about the running data plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataPlaneInfo {
    /// Version string.
    pub version: String,
    /// Build details (DPDK version, profile).
    pub build: String,
    /// The control core.
    pub control_core: u32,
    /// The worker cores.
    pub worker_cores: Vec<u32>,
    /// TSC frequency, for turning cycles into time.
    pub tsc_hz: u64,
}

/// Read-only access to the data plane's counters. The daemon implements it over its
/// workers' counters and ports; tests implement it with fixed values.
pub trait StatsSource: Send + Sync + 'static {
    /// Per-port counters and link states.
    fn ports(&self) -> Vec<PortCounters>;
    /// Per-worker counters.
    fn workers(&self) -> Vec<WorkerCounters>;
    /// Dropped packets per reason (summed over workers), as `(reason, packets)`.
    fn drops(&self) -> Vec<(String, u64)>;
    /// Version, cores and build.
    fn info(&self) -> DataPlaneInfo;
}

/// A [`StatsSource`] with no ports, no workers and no drops.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStats;

impl StatsSource for NoStats {
    fn ports(&self) -> Vec<PortCounters> {
        Vec::new()
    }
    fn workers(&self) -> Vec<WorkerCounters> {
        Vec::new()
    }
    fn drops(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
    fn info(&self) -> DataPlaneInfo {
        DataPlaneInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ..DataPlaneInfo::default()
        }
    }
}

/// A pod port on a vhost-user socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhostPortSpec {
    /// Interface name (for logs and stats).
    pub name: String,
    /// The vhost-user socket.
    pub socket: PathBuf,
    /// Whether the data plane is the socket server.
    pub server: bool,
    /// Queue pairs.
    pub queues: u16,
}

/// A pod port on a tap device moved into a network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapPortSpec {
    /// Interface name (in the pod's namespace).
    pub name: String,
    /// The network namespace (a path such as `/var/run/netns/pod1`).
    pub netns: PathBuf,
}

/// Why a pod port could not be created or removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String);

/// Creation and removal of pod ports. The daemon implements it (vdev hot-plug,
/// queue setup, assignment to workers); tests use a fake.
pub trait PortManager: Send + Sync + 'static {
    /// Create a vhost-user port; returns its DPDK port id.
    fn add_vhost_port(&self, spec: &VhostPortSpec) -> Result<u16, PortError>;
    /// Create a tap port in a namespace; returns its DPDK port id.
    fn add_tap_port(&self, spec: &TapPortSpec) -> Result<u16, PortError>;
    /// Remove a port created by one of the above.
    fn remove_port(&self, port: u16) -> Result<(), PortError>;
}

/// A [`PortManager`] that refuses to create ports (for a data plane without pod
/// ports).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPorts;

impl PortManager for NoPorts {
    fn add_vhost_port(&self, _spec: &VhostPortSpec) -> Result<u16, PortError> {
        Err(PortError(
            "pod ports are not supported by this data plane".into(),
        ))
    }
    fn add_tap_port(&self, _spec: &TapPortSpec) -> Result<u16, PortError> {
        Err(PortError(
            "pod ports are not supported by this data plane".into(),
        ))
    }
    fn remove_port(&self, port: u16) -> Result<(), PortError> {
        Err(PortError(format!(
            "port {port} was not created through the API"
        )))
    }
}

/// Everything the API server reads and changes.
pub struct ControlPlane {
    /// The forwarding state builder.
    pub fib: Fib,
    /// Publishes the builder's snapshots to the workers.
    pub publisher: Publisher<FibSnapshot>,
    /// The flow table the workers share, if the data plane has one.
    pub flows: Option<Arc<FlowTable>>,
    /// Counters.
    pub stats: Arc<dyn StatsSource>,
    /// Pod port creation.
    pub ports: Arc<dyn PortManager>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("generation", &self.fib.current().generation())
            .field("flows", &self.flows.as_ref().map(|t| t.len()))
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// A control plane over `fib` that publishes through `publisher` (whose readers
    /// the workers hold), with no flow table.
    pub fn new(
        fib: Fib,
        publisher: Publisher<FibSnapshot>,
        stats: Arc<dyn StatsSource>,
        ports: Arc<dyn PortManager>,
    ) -> Self {
        Self {
            fib,
            publisher,
            flows: None,
            stats,
            ports,
        }
    }

    /// A control plane with a fresh publisher over `fib`'s current state (for a data
    /// plane whose workers register readers later through
    /// [`ServerHandle::reader`], and for tests).
    pub fn standalone(fib: Fib, stats: Arc<dyn StatsSource>, ports: Arc<dyn PortManager>) -> Self {
        let publisher = Publisher::new(fib.snapshot());
        Self::new(fib, publisher, stats, ports)
    }

    /// Adds the shared flow table.
    pub fn with_flows(mut self, flows: Arc<FlowTable>) -> Self {
        self.flows = Some(flows);
        self
    }
}

/// The API server.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Binds the socket (creating its directory, replacing a stale socket file,
    /// applying mode and ownership), starts the runtime threads and, when configured,
    /// the TCP listener and the telemetry exporter. Must not be called from inside a
    /// tokio runtime.
    pub fn start(config: ControlConfig, state: ControlPlane) -> Result<ServerHandle, ControlError> {
        service::start(config, state)
    }
}

/// A running server.
pub struct ServerHandle {
    inner: Option<service::Running>,
    telemetry: Option<telemetry::Exporter>,
    socket: PathBuf,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("socket", &self.socket)
            .field("telemetry", &self.telemetry_address())
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The Unix socket the API is served on.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// The TCP address the API is served on, if any (the bound port when the config
    /// asked for port 0).
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        self.inner.as_ref().and_then(|r| r.tcp_address())
    }

    /// The address the metrics are served on, if any.
    pub fn telemetry_address(&self) -> Option<SocketAddr> {
        self.telemetry.as_ref().map(telemetry::Exporter::address)
    }

    /// A snapshot reader for one more worker.
    pub fn reader(&self) -> Option<crate::fib::rcu::Reader<FibSnapshot>> {
        self.inner.as_ref().map(service::Running::reader)
    }

    /// The current forwarding state.
    pub fn snapshot(&self) -> Option<Arc<FibSnapshot>> {
        self.inner.as_ref().map(service::Running::snapshot)
    }

    /// Applies `updates` as one all-or-nothing batch to the served forwarding state
    /// and publishes it (as an `Apply` call would); returns the new generation.
    pub fn apply(
        &self,
        updates: &[crate::fib::Update],
    ) -> Option<Result<u64, crate::fib::FibError>> {
        self.inner.as_ref().map(|r| r.apply_updates(updates))
    }

    /// Stops serving (open streams end), stops the exporter and removes the socket.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(t) = self.telemetry.take() {
            t.stop();
        }
        if let Some(r) = self.inner.take() {
            r.stop();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
