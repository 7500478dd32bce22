//! The `vrouter.v1` service: request handling on the control runtime.
// Handlers return `tonic::Status`, the error type the generated service trait fixes;
// boxing it in the helpers would only add conversions at every call site.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flow_table::{FlowAction, FlowKey, FlowRecord, FlowTable, FlowValue};
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::fib::rcu::{Publisher, Reader};
use crate::fib::{
    FibSnapshot, FlowNhUsers, Label, NhId, Prefix, RouteTarget, Update, Vif, VifId, Vni, VrfId,
};

use super::convert::{self, Errs};
use super::error::{fib_code, fib_field, invalid, not_found, status_with, Violation, Violations};
use super::proto as pb;
use super::proto::vrouter_server::{Vrouter, VrouterServer};
use super::{
    socket, telemetry, ControlConfig, ControlError, ControlPlane, PortManager, ServerHandle,
    StatsSource, TapPortSpec, VhostPortSpec,
};

/// Default objects per dump page.
const DEFAULT_PAGE: usize = 1024;
/// Most objects per dump page.
const MAX_PAGE: usize = 65536;

/// The state behind the lock: the builder and the publisher, plus indexes the
/// builder does not keep.
pub(super) struct PlaneState {
    pub(super) fib: crate::fib::Fib,
    pub(super) publisher: Publisher<FibSnapshot>,
    /// VNI -> next-hop, mirrored from applied batches (the snapshot has no iterator).
    vnis: BTreeMap<u32, NhId>,
    /// Ports created through `AddPodPort`, by interface.
    pod_ports: HashMap<VifId, u16>,
}

impl PlaneState {
    /// Apply a batch and publish the version it makes; returns its generation.
    /// Versions no worker holds any more are freed first: the builder then edits
    /// the version before the current one in place instead of copying the route
    /// tables' chunks the batch writes (see [`crate::fib::Fib`]).
    fn apply(
        &mut self,
        updates: &[Update],
        flows: &dyn FlowNhUsers,
    ) -> Result<u64, crate::fib::FibError> {
        self.publisher.reclaim();
        let snap = self.fib.apply_with_flows(updates, flows)?;
        let generation = snap.generation();
        self.publisher.publish(snap);
        Ok(generation)
    }
}

/// Everything the handlers share.
pub(super) struct Shared {
    plane: Mutex<PlaneState>,
    pub(super) flows: Option<Arc<FlowTable>>,
    pub(super) stats: Arc<dyn StatsSource>,
    ports: Arc<dyn PortManager>,
    cfg: ControlConfig,
    started: Instant,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, PlaneState> {
        self.plane.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Table sizes and occupancy.
    pub(super) fn tables(&self) -> (u64, Vec<pb::TableUsage>) {
        let st = self.lock();
        let cfg = st.fib.config().clone();
        let snap = st.fib.current();
        let mut vrfs = 0u64;
        let mut routes = 0u64;
        let mut bridge = 0u64;
        for v in 0..cfg.max_vrfs {
            if let Some(vrf) = snap.vrf(VrfId(v)) {
                vrfs += 1;
                bridge += vrf.bridge.len() as u64;
                routes += st.fib.routes(VrfId(v), false).len() as u64;
                routes += st.fib.routes(VrfId(v), true).len() as u64;
            }
        }
        let nhs = (0..cfg.max_nhs)
            .filter(|i| st.fib.nh_spec(NhId(*i)).is_some())
            .count() as u64;
        let labels = (0..cfg.max_labels)
            .filter(|l| snap.label(Label(*l)).is_some())
            .count() as u64;
        let u = |name: &str, capacity: u64, used: u64| pb::TableUsage {
            name: name.to_owned(),
            capacity,
            used,
        };
        let mut t = vec![
            u(
                "interfaces",
                u64::from(cfg.max_vifs),
                snap.vifs().count() as u64,
            ),
            u("nexthops", u64::from(cfg.max_nhs), nhs),
            u("vrfs", u64::from(cfg.max_vrfs), vrfs),
            u("routes", 0, routes),
            u("bridge", 0, bridge),
            u("labels", u64::from(cfg.max_labels), labels),
            u("vxlans", u64::from(Vni::MAX), st.vnis.len() as u64),
        ];
        if let Some(f) = &self.flows {
            t.push(u("flows", f.capacity() as u64, f.len() as u64));
        }
        (snap.generation(), t)
    }

    fn apply(&self, changes: &[pb::Change]) -> Result<pb::ApplyResponse, Status> {
        let items: usize = changes.iter().map(convert::items).sum();
        check_size(items, self.cfg.max_batch)?;
        let mut st = self.lock();
        let mut errs = Violations::default();
        let mut updates = Vec::with_capacity(items);
        // The change each update came from (a route set gives many).
        let mut origin = Vec::with_capacity(items);
        let mut pending: HashMap<VifId, Option<Vif>> = HashMap::new();
        for (i, c) in changes.iter().enumerate() {
            let first = updates.len();
            {
                let cur = |id: VifId| match pending.get(&id) {
                    Some(v) => v.clone(),
                    None => st.fib.current().vif(id).cloned(),
                };
                convert::change(c, i, &mut errs, &cur, &mut updates);
            }
            for u in updates.get(first..).unwrap_or_default() {
                match u {
                    Update::AddVif(v) => {
                        pending.insert(v.id, Some(v.clone()));
                    }
                    Update::DelVif(id) => {
                        pending.insert(*id, None);
                    }
                    _ => {}
                }
            }
            origin.resize(updates.len(), i);
        }
        if !errs.is_empty() {
            return Err(errs.into_status());
        }
        let users = FlowUsers::new(self.flows.as_deref(), &updates);
        match st.apply(&updates, &users) {
            Ok(generation) => {
                for u in &updates {
                    match u {
                        Update::AddVni(v, nh) => {
                            st.vnis.insert(v.0, *nh);
                        }
                        Update::DelVni(v) => {
                            st.vnis.remove(&v.0);
                        }
                        _ => {}
                    }
                }
                Ok(pb::ApplyResponse {
                    generation,
                    applied: updates.len() as u64,
                })
            }
            Err(e) => {
                let at = updates.iter().position(|u| convert::implicates(u, &e));
                let field = match at.and_then(|k| Some((k, *origin.get(k)?))) {
                    Some((k, i)) => {
                        let op = changes.get(i).map(convert::op_name).unwrap_or_default();
                        if matches!(op, "add_routes" | "del_routes") {
                            // Route `j` of a route set.
                            let j = k - origin.partition_point(|&o| o < i);
                            format!("changes[{i}].{op}[{j}].{}", fib_field(&e))
                        } else {
                            format!("changes[{i}].{op}.{}", fib_field(&e))
                        }
                    }
                    None => "changes".to_owned(),
                };
                Err(status_with(
                    fib_code(&e),
                    &[Violation {
                        field,
                        reason: e.to_string(),
                    }],
                ))
            }
        }
    }

    fn add_pod_port(&self, req: pb::AddPodPortRequest) -> Result<pb::Interface, Status> {
        let mut iface = req
            .interface
            .ok_or_else(|| invalid("interface", "required"))?;
        let backend = req
            .backend
            .ok_or_else(|| invalid("backend", "required: vhost_user or tap"))?;
        iface.r#type = pb::InterfaceType::VifTypeVirtual as i32;
        iface.transport = match backend {
            pb::add_pod_port_request::Backend::VhostUser(_) => pb::Transport::Pmd,
            pb::add_pod_port_request::Backend::Tap(_) => pb::Transport::Eth,
        } as i32;
        iface.port = 0;
        let mut errs = Violations::default();
        let vif = convert::interface(&iface, &mut Errs::root(&mut errs));
        if let pb::add_pod_port_request::Backend::VhostUser(v) = &backend {
            if v.socket_path.is_empty() {
                errs.push("vhost_user.socket_path", "required");
            }
            if v.queues > 16 {
                errs.push("vhost_user.queues", format!("{} is more than 16", v.queues));
            }
        }
        if let pb::add_pod_port_request::Backend::Tap(t) = &backend {
            if t.name.is_empty() || t.name.len() > 15 {
                errs.push("tap.name", "required, at most 15 characters");
            }
        }
        let Some(mut vif) = vif.filter(|_| errs.is_empty()) else {
            return Err(errs.into_status());
        };
        if self.lock().fib.current().vif(vif.id).is_some() {
            return Err(Status::already_exists(format!("{} already exists", vif.id)));
        }
        let name = if iface.name.is_empty() {
            format!("vif{}", vif.id.0)
        } else {
            iface.name.clone()
        };
        let port = match &backend {
            pb::add_pod_port_request::Backend::VhostUser(v) => {
                self.ports.add_vhost_port(&VhostPortSpec {
                    name,
                    socket: v.socket_path.clone().into(),
                    server: v.server,
                    queues: u16::try_from(v.queues.max(1)).unwrap_or(1),
                })
            }
            pb::add_pod_port_request::Backend::Tap(t) => self.ports.add_tap_port(&TapPortSpec {
                name: t.name.clone(),
                netns: t.netns.clone().into(),
            }),
        }
        .map_err(|e| Status::unavailable(format!("creating the port: {e}")))?;
        vif.port = port;
        let mut st = self.lock();
        match st.apply(&[Update::AddVif(vif.clone())], &crate::fib::NoFlows) {
            Ok(_) => {
                st.pod_ports.insert(vif.id, port);
                let mut m = convert::interface_msg(&vif);
                m.name = iface.name;
                Ok(m)
            }
            Err(e) => {
                drop(st);
                let _ = self.ports.remove_port(port);
                Err(status_with(
                    fib_code(&e),
                    &[Violation {
                        field: format!("interface.{}", fib_field(&e)),
                        reason: e.to_string(),
                    }],
                ))
            }
        }
    }

    fn del_pod_port(&self, id: u32) -> Result<(), Status> {
        let id = convert::vif_of(id).map_err(|r| invalid("id", r))?;
        let mut st = self.lock();
        let Some(v) = st.fib.current().vif(id).cloned() else {
            return Err(not_found(id));
        };
        if !v.kind.is_pod() {
            return Err(invalid("id", format!("{id} is not a pod interface")));
        }
        // Refused before anything changes when the port did not come from the API.
        let Some(&port) = st.pod_ports.get(&id) else {
            return Err(invalid(
                "id",
                format!(
                    "port {} of interface {id} comes from the config file; only pod \
                     ports created through the API can be removed (delete the \
                     interface alone to keep the port)",
                    v.port
                ),
            ));
        };
        st.apply(&[Update::DelVif(id)], &crate::fib::NoFlows)
            .map_err(|e| {
                status_with(
                    fib_code(&e),
                    &[Violation {
                        field: "id".into(),
                        reason: e.to_string(),
                    }],
                )
            })?;
        st.pod_ports.remove(&id);
        drop(st);
        self.ports
            .remove_port(port)
            .map_err(|e| Status::internal(format!("{id} deleted, but removing port {port}: {e}")))
    }

    fn interface_with_counters(&self, v: &Vif, ports: &[super::PortCounters]) -> pb::Interface {
        let mut m = convert::interface_msg(v);
        if let Some(p) = ports.iter().find(|p| p.port == v.port) {
            m.name.clone_from(&p.name);
            m.link_up = p.link_up;
            m.counters = Some(pb::InterfaceCounters {
                rx_packets: p.rx_packets,
                rx_bytes: p.rx_bytes,
                tx_packets: p.tx_packets,
                tx_bytes: p.tx_bytes,
                rx_dropped: p.rx_missed,
                tx_dropped: p.tx_dropped,
                rx_errors: p.rx_errors,
            });
        }
        m
    }

    /// Routes matching a dump request, sorted by (vrf, family, address, length).
    fn routes(
        &self,
        r: &pb::DumpRoutesRequest,
    ) -> Result<Vec<(VrfId, Prefix, RouteTarget)>, Status> {
        let within = if r.within.is_empty() {
            None
        } else {
            Some(convert::parse_prefix(&r.within).map_err(|e| invalid("within", e))?)
        };
        let marker = if r.marker.is_empty() {
            None
        } else {
            Some(convert::parse_prefix(&r.marker).map_err(|e| invalid("marker", e))?)
        };
        let fams: &[bool] = match pb::Family::try_from(r.family) {
            Ok(pb::Family::Any) => &[false, true],
            Ok(pb::Family::Inet) => &[false],
            Ok(pb::Family::Inet6) => &[true],
            Err(_) => return Err(invalid("family", format!("unknown family {}", r.family))),
        };
        let st = self.lock();
        let vrfs: Vec<VrfId> = if r.all_vrfs {
            (0..st.fib.config().max_vrfs)
                .map(VrfId)
                .filter(|v| st.fib.current().vrf(*v).is_some())
                .collect()
        } else {
            vec![convert::vrf_of(r.vrf).map_err(|e| invalid("vrf", e))?]
        };
        let mut out = Vec::new();
        for vrf in vrfs {
            for &v6 in fams {
                let mut rs = st.fib.routes(vrf, v6);
                rs.sort_unstable_by_key(|(p, _)| (key_of(p), p.prefix_len()));
                let start = match marker {
                    Some(m) if m.is_v6() == v6 => rs.partition_point(|(p, _)| {
                        (key_of(p), p.prefix_len()) <= (key_of(&m), m.prefix_len())
                    }),
                    _ => 0,
                };
                out.extend(
                    rs.into_iter()
                        .skip(start)
                        .filter(|(p, _)| within.is_none_or(|w| covers(&w, p)))
                        .map(|(p, t)| (vrf, p, t)),
                );
                if r.limit > 0 && out.len() as u64 >= r.limit {
                    out.truncate(usize::try_from(r.limit).unwrap_or(usize::MAX));
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    fn flow_table(&self) -> Result<&FlowTable, Status> {
        self.flows
            .as_deref()
            .ok_or_else(|| Status::unimplemented("this data plane has no flow table"))
    }

    fn find_flow(&self, k: &pb::FlowKey) -> Result<FlowRecord, Status> {
        let t = self.flow_table()?;
        if k.by_index {
            return t
                .iter()
                .find(|r| r.id.index.0 == k.index)
                .ok_or_else(|| not_found(format!("flow {}", k.index)));
        }
        let key = flow_key(k)?;
        let e = t
            .lookup(&key)
            .ok_or_else(|| not_found(format!("flow {}", describe(k))))?;
        t.get(e.id)
            .ok_or_else(|| not_found(format!("flow {}", describe(k))))
    }

    fn stats(&self) -> pb::Stats {
        let s = &self.stats;
        let flows = self.flows.as_ref().map(|t| {
            let x = t.stats();
            pb::FlowTableStats {
                capacity: x.capacity as u64,
                entries: x.len as u64,
                inserted: x.inserted,
                removed: x.removed,
                aged: x.aged,
                full: x.full_table + x.full_bucket,
            }
        });
        pb::Stats {
            ports: s
                .ports()
                .into_iter()
                .map(|p| pb::PortStats {
                    port: u32::from(p.port),
                    name: p.name,
                    link_up: p.link_up,
                    rx_packets: p.rx_packets,
                    rx_bytes: p.rx_bytes,
                    tx_packets: p.tx_packets,
                    tx_bytes: p.tx_bytes,
                    rx_missed: p.rx_missed,
                    rx_errors: p.rx_errors,
                    tx_errors: p.tx_errors,
                    tx_dropped: p.tx_dropped,
                })
                .collect(),
            workers: s
                .workers()
                .into_iter()
                .map(|w| pb::WorkerStats {
                    lcore: w.lcore,
                    iterations: w.iterations,
                    busy_iterations: w.busy_iterations,
                    busy_cycles: w.busy_cycles,
                    rx_packets: w.rx_packets,
                    tx_packets: w.tx_packets,
                    tx_dropped: w.tx_dropped,
                })
                .collect(),
            drops: s
                .drops()
                .into_iter()
                .map(|(reason, packets)| pb::DropCounter { reason, packets })
                .collect(),
            flows,
            tsc_hz: s.info().tsc_hz,
            timestamp_ns: now_ns(),
        }
    }
}

fn check_size(n: usize, max: usize) -> Result<(), Status> {
    if n > max {
        return Err(Status::resource_exhausted(format!(
            "batch of {n} changes exceeds the limit of {max} changes; split it"
        )));
    }
    Ok(())
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn key_of(p: &Prefix) -> u128 {
    match p.addr() {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Whether `outer` contains all of `inner`.
fn covers(outer: &Prefix, inner: &Prefix) -> bool {
    outer.is_v6() == inner.is_v6()
        && outer.prefix_len() <= inner.prefix_len()
        && outer.contains(inner.addr())
}

/// Flow users of next-hops, counted once per batch and only when the batch deletes
/// next-hops.
struct FlowUsers(HashMap<NhId, usize>);

impl FlowUsers {
    fn new(flows: Option<&FlowTable>, updates: &[Update]) -> Self {
        let mut m = HashMap::new();
        if let Some(t) = flows {
            if updates.iter().any(|u| matches!(u, Update::DelNh(_))) {
                for r in t.iter() {
                    if let Some(nh) = flow_nh(&r.value.action) {
                        *m.entry(NhId(nh)).or_default() += 1;
                    }
                }
            }
        }
        Self(m)
    }
}

impl FlowNhUsers for FlowUsers {
    fn flows_using(&self, nh: NhId) -> usize {
        self.0.get(&nh).copied().unwrap_or(0)
    }
}

fn flow_nh(a: &FlowAction) -> Option<u32> {
    match a {
        FlowAction::Forward { nexthop }
        | FlowAction::Nat { nexthop, .. }
        | FlowAction::Mirror { nexthop, .. } => Some(nexthop.0),
        FlowAction::Drop | FlowAction::Hold => None,
    }
}

fn flow_key(k: &pb::FlowKey) -> Result<FlowKey, Status> {
    let mut errs = Violations::default();
    let vrf = flow_table::VrfId::new(k.vrf)
        .map_err(|e| errs.push("key.vrf", e.to_string()))
        .ok();
    let src = convert::parse_ip(&k.src)
        .map_err(|e| errs.push("key.src", e))
        .ok();
    let dst = convert::parse_ip(&k.dst)
        .map_err(|e| errs.push("key.dst", e))
        .ok();
    let proto = u8::try_from(k.proto)
        .map_err(|_| {
            errs.push(
                "key.proto",
                format!("{} is not an IP protocol number", k.proto),
            )
        })
        .ok();
    let sport = u16::try_from(k.sport)
        .map_err(|_| errs.push("key.sport", format!("{} is not a port", k.sport)))
        .ok();
    let dport = u16::try_from(k.dport)
        .map_err(|_| errs.push("key.dport", format!("{} is not a port", k.dport)))
        .ok();
    match (vrf, src, dst, proto, sport, dport) {
        (Some(vrf), Some(s), Some(d), Some(p), Some(sp), Some(dp)) if errs.is_empty() => {
            FlowKey::new(vrf, s, d, p, sp, dp).map_err(|e| invalid("key.dst", e.to_string()))
        }
        _ => Err(errs.into_status()),
    }
}

fn describe(k: &pb::FlowKey) -> String {
    format!(
        "vrf {} {}:{} -> {}:{} proto {}",
        k.vrf, k.src, k.sport, k.dst, k.dport, k.proto
    )
}

fn flow_msg(r: &FlowRecord) -> pb::Flow {
    let k = &r.key;
    let (action, nh, nat_ref, mirror) = match r.value.action {
        FlowAction::Drop => (pb::FlowAction::FlowDrop, 0, 0, 0),
        FlowAction::Hold => (pb::FlowAction::FlowHold, 0, 0, 0),
        FlowAction::Forward { nexthop } => (pb::FlowAction::FlowForward, nexthop.0, 0, 0),
        FlowAction::Nat { nexthop, rewrite } => (pb::FlowAction::FlowNat, nexthop.0, rewrite.0, 0),
        FlowAction::Mirror { nexthop, mirror } => {
            (pb::FlowAction::FlowMirror, nexthop.0, 0, mirror.0)
        }
    };
    pb::Flow {
        key: Some(pb::FlowKey {
            vrf: k.vrf().get(),
            src: k.src().to_string(),
            dst: k.dst().to_string(),
            proto: u32::from(k.proto()),
            sport: u32::from(k.src_port()),
            dport: u32::from(k.dst_port()),
            by_index: false,
            index: r.id.index.0,
        }),
        action: action as i32,
        nh,
        index: r.id.index.0,
        generation: r.id.generation,
        reverse: r.value.reverse.map_or(0, |x| x.0),
        reverse_valid: r.value.reverse.is_some(),
        packets: r.counters.packets,
        bytes: r.counters.bytes,
        nat_ref,
        mirror,
    }
}

fn flow_action(f: &pb::Flow) -> Result<FlowAction, Status> {
    use flow_table::{MirrorId, NatRef, NexthopId};
    let nexthop = NexthopId(f.nh);
    Ok(match pb::FlowAction::try_from(f.action) {
        Ok(pb::FlowAction::FlowDrop) => FlowAction::Drop,
        Ok(pb::FlowAction::FlowHold) => FlowAction::Hold,
        Ok(pb::FlowAction::FlowForward) => FlowAction::Forward { nexthop },
        Ok(pb::FlowAction::FlowNat) => FlowAction::Nat {
            nexthop,
            rewrite: NatRef(f.nat_ref),
        },
        Ok(pb::FlowAction::FlowMirror) => FlowAction::Mirror {
            nexthop,
            mirror: MirrorId(f.mirror),
        },
        Err(_) => {
            return Err(invalid(
                "action",
                format!("unknown flow action {}", f.action),
            ))
        }
    })
}

type Pages<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn page_size(n: u32) -> usize {
    match n {
        0 => DEFAULT_PAGE,
        n => (n as usize).min(MAX_PAGE),
    }
}

/// Streams `items` in pages of `size`, building each page only when it is sent.
fn paged<T, P, F>(items: Vec<T>, size: usize, build: F) -> Pages<P>
where
    T: Send + 'static,
    P: Send + 'static,
    F: Fn(Vec<T>) -> P + Send + 'static,
{
    let size = size.max(1);
    let mut it = items.into_iter();
    let pages = std::iter::from_fn(move || {
        let chunk: Vec<T> = it.by_ref().take(size).collect();
        (!chunk.is_empty()).then(|| Ok(build(chunk)))
    });
    Box::pin(tokio_stream::iter(pages))
}

/// The gRPC service.
#[derive(Clone)]
pub(super) struct Api {
    shared: Arc<Shared>,
}

impl Api {
    async fn blocking<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T, Status> + Send + 'static,
    {
        let s = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&s))
            .await
            .map_err(|e| Status::internal(format!("request handler failed: {e}")))?
    }
}

#[tonic::async_trait]
impl Vrouter for Api {
    async fn get_info(
        &self,
        _req: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::Info>, Status> {
        let info = self
            .blocking(|s| {
                let i = s.stats.info();
                let (generation, tables) = s.tables();
                Ok(pb::Info {
                    version: i.version,
                    build: i.build,
                    control_core: i.control_core,
                    worker_cores: i.worker_cores,
                    ports: s
                        .stats
                        .ports()
                        .into_iter()
                        .map(|p| pb::PortInfo {
                            port: u32::from(p.port),
                            name: p.name,
                            device: p.device,
                            link_up: p.link_up,
                            rx_queues: u32::from(p.rx_queues),
                            tx_queues: u32::from(p.tx_queues),
                        })
                        .collect(),
                    tables,
                    generation,
                    uptime_secs: s.started.elapsed().as_secs(),
                    api_max_batch: u32::try_from(s.cfg.max_batch).unwrap_or(u32::MAX),
                })
            })
            .await?;
        Ok(Response::new(info))
    }

    async fn apply(&self, req: Request<pb::Batch>) -> Result<Response<pb::ApplyResponse>, Status> {
        let changes = req.into_inner().changes;
        check_size(
            changes.iter().map(convert::items).sum(),
            self.shared.cfg.max_batch,
        )?;
        let r = self.blocking(move |s| s.apply(&changes)).await?;
        Ok(Response::new(r))
    }

    async fn apply_stream(
        &self,
        req: Request<Streaming<pb::Batch>>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let mut stream = req.into_inner();
        let mut changes = Vec::new();
        let mut items = 0;
        while let Some(chunk) = stream.message().await? {
            items += chunk.changes.iter().map(convert::items).sum::<usize>();
            check_size(items, self.shared.cfg.max_batch)?;
            changes.extend(chunk.changes);
        }
        let r = self.blocking(move |s| s.apply(&changes)).await?;
        Ok(Response::new(r))
    }

    async fn add_pod_port(
        &self,
        req: Request<pb::AddPodPortRequest>,
    ) -> Result<Response<pb::Interface>, Status> {
        let r = req.into_inner();
        let m = self.blocking(move |s| s.add_pod_port(r)).await?;
        Ok(Response::new(m))
    }

    async fn del_pod_port(
        &self,
        req: Request<pb::InterfaceKey>,
    ) -> Result<Response<pb::Empty>, Status> {
        let id = req.into_inner().id;
        self.blocking(move |s| s.del_pod_port(id)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn get_interface(
        &self,
        req: Request<pb::InterfaceKey>,
    ) -> Result<Response<pb::Interface>, Status> {
        let id = convert::vif_of(req.into_inner().id).map_err(|e| invalid("id", e))?;
        let v = self
            .shared
            .lock()
            .fib
            .current()
            .vif(id)
            .cloned()
            .ok_or_else(|| not_found(id))?;
        let ports = self.shared.stats.ports();
        Ok(Response::new(
            self.shared.interface_with_counters(&v, &ports),
        ))
    }

    type DumpInterfacesStream = Pages<pb::InterfacePage>;

    async fn dump_interfaces(
        &self,
        req: Request<pb::DumpRequest>,
    ) -> Result<Response<Self::DumpInterfacesStream>, Status> {
        let r = req.into_inner();
        let vifs: Vec<Vif> = self
            .shared
            .lock()
            .fib
            .current()
            .vifs()
            .filter(|v| u32::from(v.id.0) >= r.start)
            .cloned()
            .collect();
        let ports = self.shared.stats.ports();
        let shared = self.shared.clone();
        let items: Vec<pb::Interface> = vifs
            .iter()
            .map(|v| shared.interface_with_counters(v, &ports))
            .collect();
        Ok(Response::new(paged(items, page_size(r.page_size), |c| {
            pb::InterfacePage { interfaces: c }
        })))
    }

    async fn get_next_hop(
        &self,
        req: Request<pb::NextHopKey>,
    ) -> Result<Response<pb::NextHop>, Status> {
        let id = NhId(req.into_inner().id);
        let st = self.shared.lock();
        let spec = st.fib.nh_spec(id).ok_or_else(|| not_found(id))?;
        Ok(Response::new(convert::nexthop_msg(id, spec)))
    }

    type DumpNextHopsStream = Pages<pb::NextHopPage>;

    async fn dump_next_hops(
        &self,
        req: Request<pb::DumpRequest>,
    ) -> Result<Response<Self::DumpNextHopsStream>, Status> {
        let r = req.into_inner();
        let items = self
            .blocking(move |s| {
                let st = s.lock();
                Ok((r.start..st.fib.config().max_nhs)
                    .filter_map(|i| {
                        st.fib
                            .nh_spec(NhId(i))
                            .map(|x| convert::nexthop_msg(NhId(i), x))
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        Ok(Response::new(paged(items, page_size(r.page_size), |c| {
            pb::NextHopPage { nexthops: c }
        })))
    }

    async fn get_route(&self, req: Request<pb::RouteKey>) -> Result<Response<pb::Route>, Status> {
        let k = req.into_inner();
        let mut errs = Violations::default();
        let vrf = convert::vrf_of(k.vrf).map_err(|e| errs.push("vrf", e)).ok();
        let prefix = convert::parse_prefix(&k.prefix)
            .map_err(|e| errs.push("prefix", e))
            .ok();
        let (Some(vrf), Some(prefix)) = (vrf, prefix) else {
            return Err(errs.into_status());
        };
        let t = self
            .blocking(move |s| {
                let st = s.lock();
                Ok(st
                    .fib
                    .routes(vrf, prefix.is_v6())
                    .into_iter()
                    .find(|(p, _)| *p == prefix)
                    .map(|(_, t)| t))
            })
            .await?
            .ok_or_else(|| not_found(format!("route {prefix} in {vrf}")))?;
        Ok(Response::new(pb::Route {
            vrf: k.vrf,
            prefix: prefix.to_string(),
            nh: t.nh.0,
            label: t.label.unwrap_or(0),
            label_valid: t.label.is_some(),
        }))
    }

    type DumpRoutesStream = Pages<pb::RoutePage>;

    async fn dump_routes(
        &self,
        req: Request<pb::DumpRoutesRequest>,
    ) -> Result<Response<Self::DumpRoutesStream>, Status> {
        let r = req.into_inner();
        let size = page_size(r.page_size);
        let items = self.blocking(move |s| s.routes(&r)).await?;
        Ok(Response::new(paged(items, size, |c| pb::RoutePage {
            routes: c
                .into_iter()
                .map(|(vrf, p, t)| pb::Route {
                    vrf: u32::from(vrf.0),
                    prefix: p.to_string(),
                    nh: t.nh.0,
                    label: t.label.unwrap_or(0),
                    label_valid: t.label.is_some(),
                })
                .collect(),
        })))
    }

    async fn get_bridge_entry(
        &self,
        req: Request<pb::BridgeKey>,
    ) -> Result<Response<pb::BridgeEntry>, Status> {
        let k = req.into_inner();
        let mut errs = Violations::default();
        let vrf = convert::vrf_of(k.vrf).map_err(|e| errs.push("vrf", e)).ok();
        let mac = convert::parse_mac(&k.mac)
            .map_err(|e| errs.push("mac", e))
            .ok();
        let (Some(vrf), Some(mac)) = (vrf, mac) else {
            return Err(errs.into_status());
        };
        let e = self
            .shared
            .lock()
            .fib
            .current()
            .bridge(vrf, mac)
            .ok_or_else(|| not_found(format!("bridge entry {mac} in {vrf}")))?;
        Ok(Response::new(pb::BridgeEntry {
            vrf: k.vrf,
            mac: mac.to_string(),
            nh: e.nh.0,
            label: e.label.unwrap_or(0),
            label_valid: e.label.is_some(),
        }))
    }

    type DumpBridgeEntriesStream = Pages<pb::BridgePage>;

    async fn dump_bridge_entries(
        &self,
        req: Request<pb::DumpBridgeRequest>,
    ) -> Result<Response<Self::DumpBridgeEntriesStream>, Status> {
        let r = req.into_inner();
        let st = self.shared.lock();
        let snap = st.fib.current();
        let vrfs: Vec<u16> = if r.all_vrfs {
            (0..st.fib.config().max_vrfs).collect()
        } else {
            vec![convert::vrf_of(r.vrf).map_err(|e| invalid("vrf", e))?.0]
        };
        let mut items = Vec::new();
        for v in vrfs {
            if let Some(vrf) = snap.vrf(VrfId(v)) {
                let mut es: Vec<_> = vrf.bridge.iter().map(|(m, e)| (*m, *e)).collect();
                es.sort_unstable_by_key(|(m, _)| *m);
                items.extend(es.into_iter().map(|(m, e)| pb::BridgeEntry {
                    vrf: u32::from(v),
                    mac: m.to_string(),
                    nh: e.nh.0,
                    label: e.label.unwrap_or(0),
                    label_valid: e.label.is_some(),
                }));
            }
        }
        drop(st);
        Ok(Response::new(paged(items, page_size(r.page_size), |c| {
            pb::BridgePage { entries: c }
        })))
    }

    async fn get_mpls_label(
        &self,
        req: Request<pb::MplsLabelKey>,
    ) -> Result<Response<pb::MplsLabel>, Status> {
        let l = req.into_inner().label;
        let e = self
            .shared
            .lock()
            .fib
            .current()
            .label(Label(l))
            .ok_or_else(|| not_found(Label(l)))?;
        Ok(Response::new(label_msg(l, e)))
    }

    type DumpMplsLabelsStream = Pages<pb::MplsLabelPage>;

    async fn dump_mpls_labels(
        &self,
        req: Request<pb::DumpRequest>,
    ) -> Result<Response<Self::DumpMplsLabelsStream>, Status> {
        let r = req.into_inner();
        let items = self
            .blocking(move |s| {
                let st = s.lock();
                let snap = st.fib.current();
                Ok((r.start..st.fib.config().max_labels)
                    .filter_map(|l| snap.label(Label(l)).map(|e| label_msg(l, e)))
                    .collect::<Vec<_>>())
            })
            .await?;
        Ok(Response::new(paged(items, page_size(r.page_size), |c| {
            pb::MplsLabelPage { labels: c }
        })))
    }

    async fn get_vxlan(&self, req: Request<pb::VxlanKey>) -> Result<Response<pb::Vxlan>, Status> {
        let v = req.into_inner().vni;
        let nh = self
            .shared
            .lock()
            .fib
            .current()
            .vni(Vni(v))
            .ok_or_else(|| not_found(Vni(v)))?;
        Ok(Response::new(pb::Vxlan { vni: v, nh: nh.0 }))
    }

    type DumpVxlansStream = Pages<pb::VxlanPage>;

    async fn dump_vxlans(
        &self,
        req: Request<pb::DumpRequest>,
    ) -> Result<Response<Self::DumpVxlansStream>, Status> {
        let r = req.into_inner();
        let items: Vec<pb::Vxlan> = self
            .shared
            .lock()
            .vnis
            .range(r.start..)
            .map(|(v, nh)| pb::Vxlan { vni: *v, nh: nh.0 })
            .collect();
        Ok(Response::new(paged(items, page_size(r.page_size), |c| {
            pb::VxlanPage { vxlans: c }
        })))
    }

    async fn get_policy(
        &self,
        req: Request<pb::InterfaceKey>,
    ) -> Result<Response<pb::Policy>, Status> {
        let id = convert::vif_of(req.into_inner().id).map_err(|e| invalid("id", e))?;
        let st = self.shared.lock();
        let v = st.fib.current().vif(id).ok_or_else(|| not_found(id))?;
        Ok(Response::new(convert::policy_msg(v)))
    }

    type DumpPoliciesStream = Pages<pb::PolicyPage>;

    async fn dump_policies(
        &self,
        req: Request<pb::DumpRequest>,
    ) -> Result<Response<Self::DumpPoliciesStream>, Status> {
        let r = req.into_inner();
        let items: Vec<pb::Policy> = self
            .shared
            .lock()
            .fib
            .current()
            .vifs()
            .filter(|v| u32::from(v.id.0) >= r.start)
            .map(convert::policy_msg)
            .collect();
        Ok(Response::new(paged(items, page_size(r.page_size), |c| {
            pb::PolicyPage { policies: c }
        })))
    }

    async fn add_flow(&self, req: Request<pb::Flow>) -> Result<Response<pb::Flow>, Status> {
        let f = req.into_inner();
        let t = self.shared.flow_table()?;
        let k = f.key.as_ref().ok_or_else(|| invalid("key", "required"))?;
        if k.by_index {
            return Err(invalid(
                "key.by_index",
                "a new flow is identified by its key",
            ));
        }
        let key = flow_key(k)?;
        let action = flow_action(&f)?;
        if let Some(nh) = flow_nh(&action) {
            if self.shared.lock().fib.nh_spec(NhId(nh)).is_none() {
                return Err(status_with(
                    Code::FailedPrecondition,
                    &[Violation {
                        field: "nh".into(),
                        reason: format!("next-hop {nh} does not exist"),
                    }],
                ));
            }
        }
        let mut value = FlowValue::new(action);
        value.flags = flow_table::FlowFlags::AGENT;
        value.reverse = f.reverse_valid.then_some(flow_table::FlowIndex(f.reverse));
        let ins = t
            .insert(&key, value, 0)
            .map_err(|e| Status::resource_exhausted(format!("flow table: {e}")))?;
        let id = ins.id();
        if matches!(ins, flow_table::Insert::Exists(_)) {
            t.update_value(id, value)
                .map_err(|e| Status::aborted(format!("flow changed meanwhile: {e}")))?;
        }
        let rec = t
            .get(id)
            .ok_or_else(|| Status::aborted("flow removed meanwhile"))?;
        Ok(Response::new(flow_msg(&rec)))
    }

    async fn del_flow(&self, req: Request<pb::FlowKey>) -> Result<Response<pb::Flow>, Status> {
        let k = req.into_inner();
        let rec = self.shared.find_flow(&k)?;
        let t = self.shared.flow_table()?;
        let gone = t
            .remove_id(rec.id)
            .ok_or_else(|| not_found(format!("flow {}", rec.id.index.0)))?;
        Ok(Response::new(flow_msg(&gone)))
    }

    async fn get_flow(&self, req: Request<pb::FlowKey>) -> Result<Response<pb::Flow>, Status> {
        let rec = self.shared.find_flow(&req.into_inner())?;
        Ok(Response::new(flow_msg(&rec)))
    }

    type DumpFlowsStream = Pages<pb::FlowPage>;

    async fn dump_flows(
        &self,
        req: Request<pb::DumpFlowsRequest>,
    ) -> Result<Response<Self::DumpFlowsStream>, Status> {
        let r = req.into_inner();
        self.shared.flow_table()?;
        let pfx = |s: &str, f: &str| -> Result<Option<Prefix>, Status> {
            if s.is_empty() {
                Ok(None)
            } else {
                convert::parse_prefix(s)
                    .map(Some)
                    .map_err(|e| invalid(f, e))
            }
        };
        let src = pfx(&r.src, "src")?;
        let dst = pfx(&r.dst, "dst")?;
        let size = page_size(r.page_size);
        let items = self
            .blocking(move |s| {
                let t = s.flow_table()?;
                let limit = usize::try_from(r.limit).unwrap_or(usize::MAX);
                let it = t.iter().filter(|x| {
                    let k = &x.key;
                    (!r.match_vrf || k.vrf().get() == r.vrf)
                        && src.is_none_or(|p| p.contains(k.src()))
                        && dst.is_none_or(|p| p.contains(k.dst()))
                        && (!r.match_proto || u32::from(k.proto()) == r.proto)
                        && (!r.match_port
                            || u32::from(k.src_port()) == r.port
                            || u32::from(k.dst_port()) == r.port)
                        && (!r.match_action || flow_msg(x).action == r.action)
                });
                let v: Vec<FlowRecord> = if limit == 0 {
                    it.collect()
                } else {
                    it.take(limit).collect()
                };
                Ok(v)
            })
            .await?;
        Ok(Response::new(paged(items, size, |c| pb::FlowPage {
            flows: c.iter().map(flow_msg).collect(),
        })))
    }

    async fn clear_flows(
        &self,
        _req: Request<pb::ClearFlowsRequest>,
    ) -> Result<Response<pb::ClearFlowsResponse>, Status> {
        let removed = self
            .blocking(|s| {
                let t = s.flow_table()?;
                let ids: Vec<_> = t.iter().map(|r| r.id).collect();
                Ok(ids
                    .into_iter()
                    .filter(|id| t.remove_id(*id).is_some())
                    .count() as u64)
            })
            .await?;
        Ok(Response::new(pb::ClearFlowsResponse { removed }))
    }

    async fn get_stats(
        &self,
        _req: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::Stats>, Status> {
        let s = self.blocking(|s| Ok(s.stats())).await?;
        Ok(Response::new(s))
    }

    type WatchStream = Pages<pb::Event>;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let r = req.into_inner();
        let pct = match r.flow_pressure_percent {
            0 => 80,
            p if p > 100 => {
                return Err(invalid(
                    "flow_pressure_percent",
                    format!("{p} is not a percentage"),
                ))
            }
            p => p,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let shared = self.shared.clone();
        let period = shared.cfg.watch_interval;
        tokio::spawn(async move {
            let mut links: HashMap<u16, bool> = HashMap::new();
            let mut high = false;
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let s = shared.clone();
                let Ok(events) = tokio::task::spawn_blocking(move || {
                    (
                        s.stats.ports(),
                        s.flows.as_ref().map(|t| (t.len(), t.capacity())),
                    )
                })
                .await
                else {
                    break;
                };
                let (ports, flows) = events;
                let vifs: HashMap<u16, VifId> = shared
                    .lock()
                    .fib
                    .current()
                    .vifs()
                    .map(|v| (v.port, v.id))
                    .collect();
                let mut out = Vec::new();
                for p in ports {
                    if links.insert(p.port, p.link_up) != Some(p.link_up) {
                        out.push(pb::event::Kind::Link(pb::LinkChange {
                            port: u32::from(p.port),
                            name: p.name,
                            vif: vifs.get(&p.port).map_or(0, |v| u32::from(v.0)),
                            vif_valid: vifs.contains_key(&p.port),
                            up: p.link_up,
                        }));
                    }
                }
                if let Some((len, cap)) = flows {
                    let percent =
                        u32::try_from(len.saturating_mul(100).checked_div(cap).unwrap_or(0))
                            .unwrap_or(u32::MAX);
                    let now_high = percent >= pct;
                    if now_high != high {
                        high = now_high;
                        out.push(pb::event::Kind::FlowPressure(pb::FlowPressure {
                            entries: len as u64,
                            capacity: cap as u64,
                            percent,
                            high,
                        }));
                    }
                }
                for kind in out {
                    let ev = pb::Event {
                        timestamp_ns: now_ns(),
                        kind: Some(kind),
                    };
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

fn label_msg(l: u32, e: crate::fib::LabelEntry) -> pb::MplsLabel {
    pb::MplsLabel {
        label: l,
        nh: e.nh.0,
        payload: match e.payload {
            crate::fib::Payload::Ip => pb::Payload::Ip,
            crate::fib::Payload::Ethernet => pb::Payload::Ethernet,
        } as i32,
    }
}

/// A started server: its runtime and the tasks serving the listeners.
pub(super) struct Running {
    rt: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
    tcp: Option<SocketAddr>,
}

impl Running {
    pub(super) fn tcp_address(&self) -> Option<SocketAddr> {
        self.tcp
    }

    pub(super) fn reader(&self) -> Reader<FibSnapshot> {
        self.shared.lock().publisher.reader()
    }

    pub(super) fn snapshot(&self) -> Arc<FibSnapshot> {
        self.shared.lock().publisher.current()
    }

    pub(super) fn apply_updates(&self, updates: &[Update]) -> Result<u64, crate::fib::FibError> {
        let mut st = self.shared.lock();
        let users = FlowUsers::new(self.shared.flows.as_deref(), updates);
        let generation = st.apply(updates, &users)?;
        for u in updates {
            match u {
                Update::AddVni(v, nh) => {
                    st.vnis.insert(v.0, *nh);
                }
                Update::DelVni(v) => {
                    st.vnis.remove(&v.0);
                }
                _ => {}
            }
        }
        Ok(generation)
    }

    pub(super) fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(rt) = self.rt.take() {
            for t in self.tasks.drain(..) {
                let _ =
                    rt.block_on(async { tokio::time::timeout(Duration::from_secs(2), t).await });
            }
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Starts the server (see [`super::Server::start`]).
pub(super) fn start(cfg: ControlConfig, state: ControlPlane) -> Result<ServerHandle, ControlError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_name("vrouter-ctl")
        .enable_all()
        .build()
        .map_err(ControlError::Runtime)?;
    let listener = {
        let _g = rt.enter();
        socket::bind(&cfg)?
    };
    let tcp = match cfg.tcp {
        Some(a) => Some(
            rt.block_on(tokio::net::TcpListener::bind(a))
                .map_err(|source| ControlError::Bind {
                    path: a.to_string(),
                    source,
                })?,
        ),
        None => None,
    };
    let tcp_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
    let ControlPlane {
        fib,
        publisher,
        flows,
        stats,
        ports,
    } = state;
    let mut vnis = BTreeMap::new();
    if fib.current().generation() > 0 {
        let snap = fib.current();
        for v in 1..=Vni::MAX {
            if let Some(nh) = snap.vni(Vni(v)) {
                vnis.insert(v, nh);
            }
        }
    }
    let shared = Arc::new(Shared {
        plane: Mutex::new(PlaneState {
            fib,
            publisher,
            vnis,
            pod_ports: HashMap::new(),
        }),
        flows,
        stats,
        ports,
        cfg: cfg.clone(),
        started: Instant::now(),
    });
    let svc = VrouterServer::new(Api {
        shared: shared.clone(),
    })
    .max_decoding_message_size(cfg.max_message_bytes)
    .max_encoding_message_size(cfg.max_message_bytes);
    let (stop_tx, stop_rx) = watch::channel(false);
    let builder = || {
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(cfg.idle_timeout / 3))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .concurrency_limit_per_connection(64)
            .max_concurrent_streams(Some(128))
    };
    let mut tasks = Vec::new();
    let mut rx = stop_rx.clone();
    let uds = builder()
        .add_service(svc.clone())
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        );
    tasks.push(rt.spawn(async move {
        if let Err(e) = uds.await {
            tracing::error!("control API (unix socket) stopped: {e}");
        }
    }));
    if let Some(l) = tcp {
        let mut rx = stop_rx.clone();
        let fut = builder().add_service(svc).serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(l),
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        );
        tasks.push(rt.spawn(async move {
            if let Err(e) = fut.await {
                tracing::error!("control API (tcp) stopped: {e}");
            }
        }));
    }
    // Free retired snapshots once the workers have passed a quiescent point.
    {
        let shared = shared.clone();
        let mut rx = stop_rx;
        tasks.push(rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = tick.tick() => { shared.lock().publisher.reclaim(); }
                    _ = rx.wait_for(|s| *s) => return,
                }
            }
        }));
    }
    let telemetry = match cfg.telemetry {
        Some(addr) => Some(telemetry::Exporter::start(
            addr,
            telemetry::Source::server(shared.clone()),
        )?),
        None => None,
    };
    Ok(ServerHandle {
        inner: Some(Running {
            rt: Some(rt),
            stop: stop_tx,
            tasks,
            shared,
            tcp: tcp_addr,
        }),
        telemetry,
        socket: cfg.socket,
    })
}
