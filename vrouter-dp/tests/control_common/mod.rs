//! Shared fixtures of the control API tests: a server on a temporary socket with
//! fake ports and counters, and small builders for changes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flow_table::FlowTable;
use vrouter_dp::control::client::{self, Client};
use vrouter_dp::control::proto as pb;
use vrouter_dp::control::{
    ControlConfig, ControlPlane, DataPlaneInfo, PortCounters, PortError, PortManager, Server,
    ServerHandle, StatsSource, TapPortSpec, VhostPortSpec, WorkerCounters,
};
use vrouter_dp::fib::{Fib, FibConfig};

/// Counters with controllable link states.
#[derive(Default)]
pub struct FakeStats {
    pub links: Mutex<Vec<(u16, String, bool)>>,
    pub rx: AtomicU64,
}

impl FakeStats {
    pub fn with_ports(n: u16) -> Self {
        let s = Self::default();
        *s.links.lock().unwrap() = (0..n).map(|p| (p, format!("eth{p}"), true)).collect();
        s
    }

    pub fn set_link(&self, port: u16, up: bool) {
        for l in self.links.lock().unwrap().iter_mut() {
            if l.0 == port {
                l.2 = up;
            }
        }
    }
}

impl StatsSource for FakeStats {
    fn ports(&self) -> Vec<PortCounters> {
        let rx = self.rx.load(Ordering::Relaxed);
        self.links
            .lock()
            .unwrap()
            .iter()
            .map(|(p, name, up)| PortCounters {
                port: *p,
                name: name.clone(),
                device: format!("net_ring{p}"),
                link_up: *up,
                rx_queues: 1,
                tx_queues: 2,
                rx_packets: rx + u64::from(*p),
                rx_bytes: (rx + u64::from(*p)) * 64,
                tx_packets: 7 * u64::from(*p),
                tx_bytes: 448 * u64::from(*p),
                rx_missed: 3,
                ..PortCounters::default()
            })
            .collect()
    }
    fn workers(&self) -> Vec<WorkerCounters> {
        vec![
            WorkerCounters {
                lcore: 1,
                iterations: 1000,
                busy_iterations: 250,
                busy_cycles: 123_456,
                rx_packets: self.rx.load(Ordering::Relaxed),
                tx_packets: 5,
                tx_dropped: 0,
            },
            WorkerCounters {
                lcore: 2,
                iterations: 2000,
                ..WorkerCounters::default()
            },
        ]
    }
    fn drops(&self) -> Vec<(String, u64)> {
        vec![("invalid_label".into(), 4), ("ttl_exceeded".into(), 9)]
    }
    fn info(&self) -> DataPlaneInfo {
        DataPlaneInfo {
            version: "9.9.9-test".into(),
            build: "test".into(),
            control_core: 0,
            worker_cores: vec![1, 2],
            tsc_hz: 2_000_000_000,
        }
    }
}

/// Port creation that hands out ids from 10 and records every call.
#[derive(Default)]
pub struct FakePorts {
    next: AtomicU16,
    pub calls: Mutex<Vec<String>>,
}

impl PortManager for FakePorts {
    fn add_vhost_port(&self, spec: &VhostPortSpec) -> Result<u16, PortError> {
        let p = 10 + self.next.fetch_add(1, Ordering::Relaxed);
        self.calls.lock().unwrap().push(format!(
            "vhost {} {} -> {p}",
            spec.name,
            spec.socket.display()
        ));
        Ok(p)
    }
    fn add_tap_port(&self, spec: &TapPortSpec) -> Result<u16, PortError> {
        if spec.netns.as_os_str().is_empty() {
            return Err(PortError("no such namespace".into()));
        }
        let p = 10 + self.next.fetch_add(1, Ordering::Relaxed);
        self.calls.lock().unwrap().push(format!(
            "tap {} {} -> {p}",
            spec.name,
            spec.netns.display()
        ));
        Ok(p)
    }
    fn remove_port(&self, port: u16) -> Result<(), PortError> {
        self.calls.lock().unwrap().push(format!("remove {port}"));
        Ok(())
    }
}

/// A small forwarding-table configuration for tests.
pub fn fib_config() -> FibConfig {
    FibConfig {
        max_vifs: 64,
        max_nhs: 4096,
        max_vrfs: 16,
        max_labels: 4096,
        max_ports: 64,
        ..FibConfig::default()
    }
}

/// A running server and what it was built from.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub handle: Option<ServerHandle>,
    pub stats: Arc<FakeStats>,
    pub ports: Arc<FakePorts>,
    pub flows: Arc<FlowTable>,
    pub rt: tokio::runtime::Runtime,
}

impl Env {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn start_with(f: impl FnOnce(&mut ControlConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ControlConfig {
            socket: dir.path().join("run/vrouter/dp.sock"),
            watch_interval: Duration::from_millis(20),
            ..ControlConfig::default()
        };
        f(&mut cfg);
        let stats = Arc::new(FakeStats::with_ports(4));
        let ports = Arc::new(FakePorts::default());
        let flows = Arc::new(FlowTable::with_capacity(1024).unwrap());
        let plane = ControlPlane::standalone(Fib::new(fib_config()), stats.clone(), ports.clone())
            .with_flows(flows.clone());
        let handle = Server::start(cfg, plane).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Self {
            dir,
            handle: Some(handle),
            stats,
            ports,
            flows,
            rt,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.handle.as_ref().unwrap().socket().to_owned()
    }

    pub fn client(&self) -> Client {
        let s = self.socket();
        self.rt.block_on(client::connect(s)).unwrap()
    }

    pub fn generation(&self) -> u64 {
        self.handle
            .as_ref()
            .unwrap()
            .snapshot()
            .unwrap()
            .generation()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

pub fn op(o: pb::change::Op) -> pb::Change {
    pb::Change { op: Some(o) }
}

pub fn batch(ops: Vec<pb::change::Op>) -> pb::Batch {
    pb::Batch {
        changes: ops.into_iter().map(op).collect(),
    }
}

/// A fabric interface `id` on `port`.
pub fn fabric(id: u32, port: u32) -> pb::change::Op {
    pb::change::Op::AddInterface(pb::Interface {
        id,
        r#type: pb::InterfaceType::VifTypePhysical as i32,
        transport: pb::Transport::Pmd as i32,
        port,
        mac: format!("02:00:00:00:01:{id:02x}"),
        vrf: 0,
        ipv4: vec!["192.0.2.1".into()],
        ..Default::default()
    })
}

/// A vhost-user pod interface `id` on `port` in `vrf`.
pub fn pod(id: u32, port: u32, vrf: u32) -> pb::change::Op {
    pb::change::Op::AddInterface(pb::Interface {
        id,
        r#type: pb::InterfaceType::VifTypeVirtual as i32,
        transport: pb::Transport::Pmd as i32,
        port,
        mac: format!("02:00:00:00:02:{id:02x}"),
        vrf,
        ipv4: vec![format!("10.0.0.{id}")],
        mtu: 1500,
        ..Default::default()
    })
}

/// An encap next-hop `id` out of `vif`.
pub fn encap(id: u32, vif: u32) -> pb::change::Op {
    pb::change::Op::AddNexthop(pb::NextHop {
        id,
        r#type: pb::NextHopType::NhTypeEncap as i32,
        vif,
        dmac: format!("02:00:00:00:02:{vif:02x}"),
        ..Default::default()
    })
}

/// A VXLAN tunnel next-hop `id` out of fabric `vif` to `dst`.
pub fn tunnel(id: u32, vif: u32, dst: &str) -> pb::change::Op {
    pb::change::Op::AddNexthop(pb::NextHop {
        id,
        r#type: pb::NextHopType::NhTypeTunnel as i32,
        vif,
        dmac: "02:00:00:00:09:09".into(),
        tunnel: pb::TunnelType::TunnelVxlan as i32,
        tunnel_src: "192.0.2.1".into(),
        tunnel_dst: dst.into(),
        ..Default::default()
    })
}

pub fn route(vrf: u32, prefix: &str, nh: u32) -> pb::change::Op {
    pb::change::Op::AddRoute(pb::Route {
        vrf,
        prefix: prefix.into(),
        nh,
        ..Default::default()
    })
}

/// The field violations of a status.
pub fn violations(s: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    s.get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}
