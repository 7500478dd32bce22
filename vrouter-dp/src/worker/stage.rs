//! Stage mode: one fixed part of the forwarding pipeline, run in isolation on the
//! configured ports, to see where the cycles go.
//!
//! Each [`Stage`] does the real work of that part on every received packet and then
//! sends it (or frees it when the work failed): `io` forwards the burst unchanged,
//! `parse` extracts every packet's headers and flow hash, `flow` adds the flow-table
//! lookup (learning the flow and its reverse on a miss), `route` parses, looks the
//! destination up in the input interface's VRF (IPv4 as one LPM batch per burst, or
//! the bridge table) and resolves the next-hop (VRF translation, ECMP), `encap`
//! routes and prepends the tunnel headers (no flow lookup), `decap` validates and
//! strips the outer headers and looks the VNI or label up. `full` is the normal
//! pipeline ([`super::PipelineWorker`]).
//!
//! Every outcome is counted ([`StageTally`]), and the flow hashes of the parsed
//! packets are folded into a digest that is published with the counters, so that no
//! part of the work can be optimised away. Packets go out of the port the stage
//! resolved (`route`, `encap`, `decap` to a local pod) or else the port the config
//! implies for their input port ([`implied_outputs`]).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrayvec::ArrayVec;
use flow_table::{FlowAction, FlowTable, FlowValue, Insert, InsertError, NexthopId};
use thiserror::Error;

use super::commands::{hand_off, QueueSet, TxSlot};
use super::pipeline::Clock;
use super::stats::{bump, WorkerStats, WorkerStatsSnapshot, MAX_PORTS};
use crate::dpdk::{rdtsc, MbufBurst};
use crate::fib::rcu::Reader;
use crate::fib::{
    ecmp_pick, FibSnapshot, Label, MacAddr, NextHop, NhKind, RouteTarget, TunnelType, VifKind, Vni,
    VrfId,
};
use crate::packet::{
    extract_ethernet, flow_hash, Decapsulator, EncapMeta, FlowInfo, PacketBuf, TunnelId,
};
use crate::pipeline::{Env, BURST};

/// Iterations between two publications of the stage counters.
pub const PUBLISH_EVERY: u64 = 1024;

/// The part of the pipeline a stage-mode run executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Receive and send the burst unchanged.
    Io,
    /// Parse every packet's headers and flow hash.
    Parse,
    /// Parse and look the flow up, learning it on a miss.
    Flow,
    /// Parse, route or bridge lookup in the VRF, next-hop resolution.
    Route,
    /// Parse, route and build the tunnel headers (no flow lookup).
    Encap,
    /// Validate and strip the outer headers, VNI or label lookup.
    Decap,
    /// The whole pipeline.
    Full,
}

/// A stage name that is not one of [`Stage::ALL`].
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("unknown stage {0:?} (one of io, parse, flow, route, encap, decap, full)")]
pub struct UnknownStage(pub String);

impl Stage {
    /// Every stage, from the cheapest.
    pub const ALL: [Stage; 7] = [
        Stage::Io,
        Stage::Parse,
        Stage::Flow,
        Stage::Route,
        Stage::Encap,
        Stage::Decap,
        Stage::Full,
    ];

    /// Its name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Io => "io",
            Stage::Parse => "parse",
            Stage::Flow => "flow",
            Stage::Route => "route",
            Stage::Encap => "encap",
            Stage::Decap => "decap",
            Stage::Full => "full",
        }
    }

    /// Whether it needs the config's forwarding state (every stage but `io`).
    pub fn needs_state(self) -> bool {
        self != Stage::Io
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStage(s.to_owned()))
    }
}

/// One worker's stage outcomes (plain counters, owned by the worker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTally {
    /// Packets processed.
    pub packets: u64,
    /// Packets whose stage work succeeded (sent).
    pub ok: u64,
    /// Packets whose stage work failed (freed): malformed, no route, unknown VNI...
    pub failed: u64,
    /// Flow-table hits (`flow`).
    pub flow_hits: u64,
    /// Flows learned (`flow`).
    pub flows_learned: u64,
    /// Packets that got tunnel headers (`encap`) or lost them (`decap`).
    pub tunnelled: u64,
    /// A fold of every flow hash and next-hop computed: keeps the work observable.
    pub digest: u64,
}

impl StageTally {
    fn add(&mut self, o: &StageTally) {
        self.packets += o.packets;
        self.ok += o.ok;
        self.failed += o.failed;
        self.flow_hits += o.flow_hits;
        self.flows_learned += o.flows_learned;
        self.tunnelled += o.tunnelled;
        self.digest ^= o.digest;
    }

    /// The sum of several workers' tallies.
    pub fn sum<'a>(it: impl IntoIterator<Item = &'a StageTally>) -> StageTally {
        let mut t = StageTally::default();
        for s in it {
            t.add(s);
        }
        t
    }
}

/// A worker's [`StageTally`] as the control thread reads it (one writer, relaxed
/// stores; published every [`PUBLISH_EVERY`] iterations and at exit).
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct StageCounters {
    packets: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    flow_hits: AtomicU64,
    flows_learned: AtomicU64,
    tunnelled: AtomicU64,
    digest: AtomicU64,
}

impl StageCounters {
    /// Stores a tally.
    pub fn publish(&self, t: &StageTally) {
        self.packets.store(t.packets, Ordering::Relaxed);
        self.ok.store(t.ok, Ordering::Relaxed);
        self.failed.store(t.failed, Ordering::Relaxed);
        self.flow_hits.store(t.flow_hits, Ordering::Relaxed);
        self.flows_learned.store(t.flows_learned, Ordering::Relaxed);
        self.tunnelled.store(t.tunnelled, Ordering::Relaxed);
        self.digest.store(t.digest, Ordering::Relaxed);
    }

    /// Reads the last published tally.
    pub fn snapshot(&self) -> StageTally {
        StageTally {
            packets: self.packets.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            flow_hits: self.flow_hits.load(Ordering::Relaxed),
            flows_learned: self.flows_learned.load(Ordering::Relaxed),
            tunnelled: self.tunnelled.load(Ordering::Relaxed),
            digest: self.digest.load(Ordering::Relaxed),
        }
    }
}

/// The output port of each input port (by DPDK port id) when a stage resolves none:
/// a pod's packets go to the fabric, the fabric's to the first pod, the host's to
/// the fabric; a port without an interface (or with no such peer) pairs with its
/// neighbour in `ports` (0<->1, 2<->3, ... as the cross-connect does).
pub fn implied_outputs(fib: Option<&FibSnapshot>, ports: &[u16]) -> [Option<u16>; MAX_PORTS] {
    let mut out = [None; MAX_PORTS];
    let fabric = fib.and_then(|f| f.fabric_vif()).map(|v| v.port);
    let pod = fib.and_then(|f| f.vifs().find(|v| v.kind.is_pod()).map(|v| v.port));
    for (i, &p) in ports.iter().enumerate() {
        let partner = ports.get(i ^ 1).or(ports.get(i)).copied();
        let kind = fib.and_then(|f| f.vif_by_port(p)).map(|v| v.kind);
        let o = match kind {
            Some(VifKind::PodVhost | VifKind::PodTap | VifKind::Host) => fabric.or(partner),
            Some(VifKind::Fabric) => pod.or(partner),
            _ => partner,
        };
        if let Some(slot) = out.get_mut(usize::from(p)) {
            *slot = o;
        }
    }
    out
}

/// A parsed packet: its headers, flow hash and the VRF of its input interface.
#[derive(Debug, Clone, Copy)]
struct Parsed {
    info: FlowInfo,
    hash: u32,
    vrf: VrfId,
}

/// The stage work on one burst, generic over the packet buffer.
#[derive(Debug, Clone)]
pub struct StageProc {
    stage: Stage,
    outputs: [Option<u16>; MAX_PORTS],
    tally: StageTally,
    ip_id: u16,
    parsed: [Option<Parsed>; BURST],
}

impl StageProc {
    /// The processor of `stage` with the fallback output ports `outputs` (see
    /// [`implied_outputs`]); `None` for [`Stage::Full`], which the pipeline runs.
    pub fn new(stage: Stage, outputs: [Option<u16>; MAX_PORTS]) -> Option<Self> {
        (stage != Stage::Full).then_some(Self {
            stage,
            outputs,
            tally: StageTally::default(),
            ip_id: 0,
            parsed: [None; BURST],
        })
    }

    /// Its stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The outcomes so far.
    pub fn tally(&self) -> &StageTally {
        &self.tally
    }

    /// Runs the stage over `bufs` (at most [`BURST`]; the rest is left alone and
    /// gets no destination) and writes each packet's output port into `dest`
    /// (`None`: the stage failed on it, free it).
    pub fn process<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        bufs: &mut [B],
        dest: &mut [Option<u16>],
    ) {
        let n = bufs.len().min(dest.len()).min(BURST);
        let (Some(bufs), Some(dest)) = (bufs.get_mut(..n), dest.get_mut(..n)) else {
            return;
        };
        self.tally.packets += n as u64;
        match self.stage {
            Stage::Io | Stage::Full => {
                for (b, d) in bufs.iter().zip(dest.iter_mut()) {
                    *d = self.implied(b.port());
                }
            }
            Stage::Parse => {
                self.parse(env, bufs);
                for ((b, d), p) in bufs.iter().zip(dest.iter_mut()).zip(&self.parsed) {
                    *d = p.and_then(|_| self.implied(b.port()));
                }
            }
            Stage::Flow => {
                self.parse(env, bufs);
                self.flows(env, bufs, dest);
            }
            Stage::Route => {
                self.parse(env, bufs);
                self.route(env, bufs, dest, false);
            }
            Stage::Encap => {
                self.parse(env, bufs);
                self.route(env, bufs, dest, true);
            }
            Stage::Decap => self.decap(env, bufs, dest),
        }
        for d in dest.iter() {
            if d.is_some() {
                self.tally.ok += 1;
            } else {
                self.tally.failed += 1;
            }
        }
    }

    #[inline]
    fn implied(&self, port: u16) -> Option<u16> {
        self.outputs.get(usize::from(port)).copied().flatten()
    }

    /// Parses every packet in its input interface's VRF (VRF 0 without one).
    fn parse<B: PacketBuf>(&mut self, env: &Env<'_>, bufs: &[B]) {
        for (p, b) in self.parsed.iter_mut().zip(bufs) {
            let vrf = env.fib.vif_by_port(b.port()).map_or(VrfId(0), |v| v.vrf);
            *p = match extract_ethernet(crate::packet::VrfId(u32::from(vrf.0)), b.data()) {
                Ok(info) => {
                    let hash = flow_hash(b, &info.key);
                    self.tally.digest = self.tally.digest.rotate_left(5) ^ u64::from(hash);
                    Some(Parsed { info, hash, vrf })
                }
                Err(_) => None,
            };
        }
    }

    /// One batch lookup of the parsed packets' flows; a miss learns the flow and its
    /// reverse (forward action), as the pipeline does under policy.
    fn flows<B: PacketBuf>(&mut self, env: &Env<'_>, bufs: &[B], dest: &mut [Option<u16>]) {
        let mut keys: ArrayVec<flow_table::FlowKey, BURST> = ArrayVec::new();
        let mut slot = [usize::MAX; BURST];
        for (p, s) in self.parsed.iter().zip(slot.iter_mut()) {
            let Some(key) = p.as_ref().and_then(|p| ft_key(p.vrf, &p.info)) else {
                continue;
            };
            if keys.try_push(key).is_ok() {
                *s = keys.len() - 1;
            }
        }
        let nk = keys.len();
        let mut res = [None; BURST];
        if let (Some(k), Some(r)) = (keys.get(..nk), res.get_mut(..nk)) {
            env.flows.lookup_batch(k, r);
        }
        for ((b, d), s) in bufs.iter().zip(dest.iter_mut()).zip(slot) {
            let (Some(key), Some(found)) = (keys.get(s), res.get(s)) else {
                *d = None;
                continue;
            };
            let len = b.len() as u64;
            let ok = match found {
                Some(e) => {
                    self.tally.flow_hits += 1;
                    env.flows.touch(e.id, env.now, len);
                    true
                }
                None => self.learn(env, key, len),
            };
            *d = if ok { self.implied(b.port()) } else { None };
        }
    }

    /// Inserts a flow and its reverse; `false` when the table is full.
    fn learn(&mut self, env: &Env<'_>, key: &flow_table::FlowKey, bytes: u64) -> bool {
        let flows = env.flows;
        let action = FlowAction::Forward {
            nexthop: NexthopId(0),
        };
        let fwd = match flows.insert(key, FlowValue::new(action), env.now) {
            Ok(Insert::New(id)) => {
                self.tally.flows_learned += 1;
                id
            }
            Ok(Insert::Exists(e)) => {
                // Learned by an earlier packet of the same burst.
                self.tally.flow_hits += 1;
                flows.touch(e.id, env.now, bytes);
                return true;
            }
            Err(InsertError::Full) => return false,
        };
        let rev = FlowValue {
            reverse: Some(fwd.index),
            ..FlowValue::new(action)
        };
        match flows.insert(&key.reversed(), rev, env.now) {
            Ok(r) => {
                let _ = flows.set_reverse(fwd, Some(r.id().index));
            }
            Err(InsertError::Full) => {
                flows.remove(key);
                return false;
            }
        }
        flows.touch(fwd, env.now, bytes);
        true
    }

    /// Route (or bridge) every parsed packet and resolve its next-hop; with `encap`,
    /// prepend the tunnel headers of a tunnel next-hop.
    fn route<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        bufs: &mut [B],
        dest: &mut [Option<u16>],
        encap: bool,
    ) {
        let fib = env.fib;
        let rm = fib.router_mac();
        // The IPv4 destinations routed in the first packet's VRF, as one LPM batch.
        let batch_vrf = self.parsed.iter().flatten().next().map(|p| p.vrf);
        let mut ips = [0u32; BURST];
        let mut slot = [usize::MAX; BURST];
        let mut n = 0usize;
        for ((p, b), s) in self.parsed.iter().zip(bufs.iter()).zip(slot.iter_mut()) {
            let Some(p) = p else { continue };
            if Some(p.vrf) != batch_vrf || dst_mac(b.data()) != Some(rm) {
                continue;
            }
            if let (IpAddr::V4(a), Some(ip)) = (p.info.key.dst_ip(), ips.get_mut(n)) {
                *ip = u32::from(a);
                *s = n;
                n += 1;
            }
        }
        let mut found: [Option<RouteTarget>; BURST] = [None; BURST];
        if let (Some(v), Some(i), Some(o)) = (
            batch_vrf.and_then(|v| fib.vrf(v)),
            ips.get(..n),
            found.get_mut(..n),
        ) {
            v.v4.lookup_v4_batch(i, o);
        }
        for (((b, d), p), s) in bufs
            .iter_mut()
            .zip(dest.iter_mut())
            .zip(self.parsed)
            .zip(slot)
        {
            let Some(p) = p else {
                *d = None;
                continue;
            };
            let target = match found.get(s) {
                Some(t) => *t,
                None => lookup(fib, p.vrf, b.data(), &p.info),
            };
            let Some((nh, label)) =
                target.and_then(|t| resolve(fib, p.info.key.dst_ip(), t, p.hash))
            else {
                *d = None;
                continue;
            };
            self.tally.digest = self.tally.digest.rotate_left(3) ^ u64::from(nh.id.0);
            *d = match &nh.kind {
                NhKind::Encap { port, .. } | NhKind::Receive { port, .. } => Some(*port),
                NhKind::Tunnel(t) if encap => {
                    self.ip_id = self.ip_id.wrapping_add(1);
                    let meta = EncapMeta {
                        flow_hash: p.hash,
                        ip_id: self.ip_id,
                    };
                    let l3 = t.ty != TunnelType::Vxlan;
                    let enc = if l3 { t.l3.as_ref() } else { Some(&t.l2) };
                    let ready = match enc {
                        Some(_) if l3 => b.adj(usize::from(p.info.l3_offset)).is_ok(),
                        Some(_) => {
                            if let Some(h) = b.data_mut().get_mut(..12) {
                                h[0..6].copy_from_slice(&rm.0);
                                h[6..12].copy_from_slice(&rm.0);
                            }
                            true
                        }
                        None => false,
                    };
                    match enc {
                        Some(e) if ready && e.encap(b, meta).is_ok() => {
                            t.set_label(b.data_mut(), e.len(), label.unwrap_or(0));
                            self.tally.tunnelled += 1;
                            Some(t.port)
                        }
                        _ => None,
                    }
                }
                NhKind::Tunnel(t) => Some(t.port),
                _ => None,
            };
        }
    }

    /// Validate and strip the outer headers, then look the VNI or label up.
    fn decap<B: PacketBuf>(&mut self, env: &Env<'_>, bufs: &mut [B], dest: &mut [Option<u16>]) {
        let fib = env.fib;
        let dec = Decapsulator::new(
            fib.node_v4().first().copied(),
            fib.node_v6().first().copied(),
        );
        for (b, d) in bufs.iter_mut().zip(dest.iter_mut()) {
            let nh = match dec.decap(b).map(|x| x.id) {
                Ok(TunnelId::Vni(v)) => fib.vni(Vni(v)),
                Ok(TunnelId::Mpls(s)) => fib.label(Label(s.top.label)).map(|e| e.nh),
                Err(_) => None,
            };
            *d = match nh {
                Some(nh) => {
                    self.tally.tunnelled += 1;
                    self.tally.digest = self.tally.digest.rotate_left(3) ^ u64::from(nh.0);
                    match fib.nh(nh).map(|n| &n.kind) {
                        Some(NhKind::Encap { port, .. }) => Some(*port),
                        _ => self.implied(b.port()),
                    }
                }
                None => None,
            };
        }
    }
}

/// The route (IP packet to the router MAC) or bridge entry of a packet in `vrf`.
#[inline]
fn lookup(fib: &FibSnapshot, vrf: VrfId, data: &[u8], info: &FlowInfo) -> Option<RouteTarget> {
    let dst = dst_mac(data)?;
    if dst == fib.router_mac() {
        return fib.route(vrf, info.key.dst_ip());
    }
    let key = if dst.is_multicast() {
        MacAddr::BROADCAST
    } else {
        dst
    };
    fib.bridge(vrf, key).map(|e| RouteTarget {
        nh: e.nh,
        label: e.label,
    })
}

/// The next-hop a route target leads to: one VRF translation, then the ECMP member
/// for the flow hash.
#[inline]
fn resolve(
    fib: &FibSnapshot,
    dst: IpAddr,
    t: RouteTarget,
    hash: u32,
) -> Option<(&NextHop, Option<u32>)> {
    let mut t = t;
    if let Some(NhKind::VrfTranslate(v)) = fib.nh(t.nh).map(|n| &n.kind) {
        t = fib.route(*v, dst)?;
    }
    let n = fib.nh(t.nh)?;
    if let NhKind::Ecmp(m) = &n.kind {
        let m = ecmp_pick(m, hash)?;
        return Some((fib.nh(m.nh)?, m.label.or(t.label)));
    }
    Some((n, t.label))
}

#[inline]
fn dst_mac(d: &[u8]) -> Option<MacAddr> {
    let mut m = [0u8; 6];
    m.copy_from_slice(d.get(..6)?);
    Some(MacAddr(m))
}

#[inline]
fn ft_key(vrf: VrfId, info: &FlowInfo) -> Option<flow_table::FlowKey> {
    let k = &info.key;
    let fvrf = flow_table::VrfId::new(u32::from(vrf.0)).ok()?;
    flow_table::FlowKey::new(
        fvrf,
        k.src_ip(),
        k.dst_ip(),
        k.proto,
        k.src_port,
        k.dst_port,
    )
    .ok()
}

/// One stage-mode worker on its pinned lcore.
pub struct StageWorker {
    /// RX queues polled and the TX queue per DPDK port id.
    pub queues: QueueSet,
    /// The stage work.
    pub proc: StageProc,
    /// Its view of the forwarding state.
    pub fib: Reader<FibSnapshot>,
    /// The shared flow table.
    pub flows: Arc<FlowTable>,
    /// Port/loop counters.
    pub stats: Arc<WorkerStats>,
    /// Stage outcomes, published.
    pub counters: Arc<StageCounters>,
    /// Clock for flow timestamps.
    pub clock: Clock,
    /// Set by the control thread to stop.
    pub stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for StageWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageWorker")
            .field("stage", &self.proc.stage())
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

/// Sends `txb` on `port` (counting): on this worker's queue, into the owner's
/// inbox when it has none of its own, or freed when the port has no slot.
#[inline]
fn send(tx: &mut [Option<TxSlot>], stats: &WorkerStats, port: u16, txb: &mut MbufBurst) {
    let pi = usize::from(port) % MAX_PORTS;
    match tx.get_mut(usize::from(port)).and_then(Option::as_mut) {
        Some(TxSlot::Queue { queue, .. }) => {
            let r = queue.tx(txb);
            bump(&stats.tx[pi], r.sent as u64);
            bump(&stats.tx_dropped[pi], r.dropped as u64);
        }
        Some(TxSlot::Handoff(inbox)) => {
            let n = txb.len();
            // A refused buffer is freed by its destructor.
            let full = hand_off(inbox, txb.drain(), drop);
            bump(&stats.handed_off[pi], (n - full) as u64);
            bump(&stats.handoff_full[pi], full as u64);
            bump(&stats.tx_dropped[pi], full as u64);
        }
        None => {
            bump(&stats.tx_dropped[pi], txb.len() as u64);
            txb.free_all();
        }
    }
}

impl StageWorker {
    /// Polls until `stop` is set. No allocation, lock, syscall or logging inside;
    /// the busy cycles (RX, stage work, TX and frees) go to the worker counters.
    pub fn run(self) -> Arc<WorkerStats> {
        let StageWorker {
            mut queues,
            mut proc,
            mut fib,
            flows,
            stats,
            counters,
            clock,
            stop,
        } = self;
        let mut burst = MbufBurst::new();
        let mut txb = MbufBurst::new();
        let mut freeb = MbufBurst::new();
        let mut dest = [None; BURST];
        let mut iter: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            iter += 1;
            bump(&stats.iterations, 1);
            let t0 = rdtsc();
            let env = Env {
                fib: fib.load(),
                flows: &flows,
                now: clock.ms(t0),
            };
            let mut got = 0usize;
            let QueueSet { rx, tx, .. } = &mut queues;
            for rxq in rx.iter_mut() {
                let n = rxq.rx(&mut burst);
                if n == 0 {
                    continue;
                }
                got += n;
                let in_port = rxq.port().0;
                bump(&stats.rx[usize::from(in_port) % MAX_PORTS], n as u64);
                for m in burst.as_mut_slice() {
                    m.prefetch_data();
                    m.set_port(in_port);
                }
                proc.process(&env, burst.as_mut_slice(), &mut dest);
                let mut cur: Option<u16> = None;
                for (m, d) in burst.drain().zip(dest.iter()) {
                    match *d {
                        Some(p) => {
                            if cur != Some(p) {
                                if let Some(c) = cur {
                                    send(tx, &stats, c, &mut txb);
                                }
                                cur = Some(p);
                            }
                            // At most one burst is queued: the push succeeds (a
                            // refused buffer would be freed by its destructor).
                            let _ = txb.push(m);
                        }
                        None => {
                            let _ = freeb.push(m);
                        }
                    }
                }
                if let Some(c) = cur {
                    send(tx, &stats, c, &mut txb);
                }
                freeb.free_all();
            }
            if got > 0 {
                bump(&stats.busy_iterations, 1);
                bump(&stats.busy_cycles, rdtsc().wrapping_sub(t0));
            }
            if iter.is_multiple_of(PUBLISH_EVERY) {
                counters.publish(proc.tally());
            }
        }
        counters.publish(proc.tally());
        drop(fib);
        stats
    }
}

/// The periodic stage-mode line, testpmd-like: per port RX/TX Mpps over the last
/// interval, the workers' busy cycles per received packet over that interval, and
/// the stage outcomes so far. `ports` are (counter slot, name).
pub fn stats_line(
    stage: Stage,
    since: Duration,
    ports: &[(usize, String)],
    prev: &[WorkerStatsSnapshot],
    now: &[WorkerStatsSnapshot],
    dt: f64,
    tally: Option<&StageTally>,
) -> String {
    let delta = |n: u64, o: u64| n.saturating_sub(o);
    let mut line = format!("[{:>7.1}s] stage {stage}", since.as_secs_f64());
    let rate = |n: u64| if dt > 0.0 { n as f64 / dt / 1e6 } else { 0.0 };
    for (slot, name) in ports {
        let pi = *slot % MAX_PORTS;
        let rx: u64 = now
            .iter()
            .zip(prev)
            .map(|(n, o)| delta(n.rx[pi], o.rx[pi]))
            .sum();
        let tx: u64 = now
            .iter()
            .zip(prev)
            .map(|(n, o)| delta(n.tx[pi], o.tx[pi]))
            .sum();
        let _ = write!(
            line,
            " | {name}: rx {:.2} Mpps tx {:.2} Mpps",
            rate(rx),
            rate(tx)
        );
    }
    let rx: u64 = now
        .iter()
        .zip(prev)
        .map(|(n, o)| delta(n.rx_total(), o.rx_total()))
        .sum();
    let cyc: u64 = now
        .iter()
        .zip(prev)
        .map(|(n, o)| delta(n.busy_cycles, o.busy_cycles))
        .sum();
    let cpp = if rx > 0 { cyc as f64 / rx as f64 } else { 0.0 };
    let _ = write!(line, " | cycles/packet {cpp:.1}");
    if let Some(t) = tally {
        let _ = write!(line, " | ok {} failed {}", t.ok, t.failed);
    }
    line
}

/// The stage-mode lines of the exit summary.
pub fn render_totals(
    stage: Stage,
    tally: Option<&StageTally>,
    workers: &[(u32, WorkerStatsSnapshot)],
) -> String {
    let rx: u64 = workers.iter().map(|(_, w)| w.rx_total()).sum();
    let tx: u64 = workers.iter().map(|(_, w)| w.tx_total()).sum();
    let cyc: u64 = workers.iter().map(|(_, w)| w.busy_cycles).sum();
    let cpp = if rx > 0 { cyc as f64 / rx as f64 } else { 0.0 };
    let mut o = format!("stage {stage}: rx {rx} tx {tx} cycles/packet {cpp:.1}");
    if let Some(t) = tally {
        let _ = write!(
            o,
            " packets {} ok {} failed {} flow_hits {} flows_learned {} tunnelled {} digest {:016x}",
            t.packets, t.ok, t.failed, t.flow_hits, t.flows_learned, t.tunnelled, t.digest
        );
    }
    o.push('\n');
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::Fib;
    use crate::packet::{checksum, HeapBuf};
    use crate::runtime::static_state::{self, PortFacts};
    use pmd_config::Config;

    const POD: u16 = 0;
    const FAB: u16 = 1;
    const POD_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    /// The pod -> remote pod (VXLAN, VNI 100) state of the benchmarks, plus the
    /// VNI that brings VXLAN from the fabric back into VRF 1.
    const CFG: &str = r#"
[cores]
workers = [1]
control = 0
[[ports]]
name = "gen"
vdev = "net_null0"
role = "pod"
[[ports]]
name = "sink"
vdev = "net_null1"
role = "fabric"
[underlay]
interface = "sink"
ipv4 = "10.10.0.11/24"
[[vrfs]]
id = 1
[[interfaces]]
id = 0
kind = "physical"
port = "sink"
mac = "02:aa:00:00:00:11"
ipv4 = "10.10.0.11"
mtu = 9000
[[interfaces]]
id = 1
kind = "virtual"
port = "gen"
mac = "02:00:00:00:00:01"
vrf = 1
policy = true
[[nexthops]]
id = 20
kind = "tunnel"
encap = "vxlan"
dst = "10.10.0.12"
dmac = "02:bb:00:00:00:12"
[[nexthops]]
id = 30
kind = "vrf-translate"
vrf = 1
[[routes]]
vrf = 1
prefix = "10.245.0.0/16"
nexthop = 20
vni = 100
[[vnis]]
vni = 100
nexthop = 30
"#;

    fn snapshot() -> Arc<FibSnapshot> {
        let cfg = Config::from_toml_str(CFG).unwrap();
        let facts: Vec<PortFacts> = ["gen", "sink"]
            .iter()
            .enumerate()
            .map(|(i, n)| PortFacts {
                name: (*n).to_string(),
                port_id: i as u16,
                mac: [2, 0xee, 0, 0, 0, i as u8],
                driver: "net_null".into(),
            })
            .collect();
        let u = static_state::updates(&cfg, &facts).unwrap();
        Fib::new(static_state::fib_config()).apply(&u).unwrap()
    }

    fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let ulen = 8 + payload.len();
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&((20 + ulen) as u16).to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        let c = !checksum::data(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(&sport.to_be_bytes());
        h.extend_from_slice(&dport.to_be_bytes());
        h.extend_from_slice(&(ulen as u16).to_be_bytes());
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(payload);
        h
    }

    fn eth(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(payload);
        f
    }

    /// A pod frame of flow `i` to the gateway, towards the remote pod network.
    fn pod_frame(snap: &FibSnapshot, i: u8) -> Vec<u8> {
        let ip = ipv4_udp(
            [10, 244, 0, 10],
            [10, 245, 0, i],
            1000 + u16::from(i),
            2000,
            &[0xab; 18],
        );
        eth(snap.router_mac().0, POD_MAC, &ip)
    }

    fn buf(frame: &[u8], port: u16) -> HeapBuf {
        let mut b = HeapBuf::with_room(frame, 128, 0);
        b.set_port(port);
        b
    }

    fn run(
        stage: Stage,
        snap: &FibSnapshot,
        flows: &FlowTable,
        bufs: &mut [HeapBuf],
    ) -> (StageProc, Vec<Option<u16>>) {
        let outputs = implied_outputs(Some(snap), &[POD, FAB]);
        let mut p = StageProc::new(stage, outputs).unwrap();
        let env = Env {
            fib: snap,
            flows,
            now: 1,
        };
        let mut dest = vec![Some(u16::MAX); bufs.len()];
        p.process(&env, bufs, &mut dest);
        (p, dest)
    }

    #[test]
    fn stage_names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(s.as_str().parse::<Stage>(), Ok(s));
        }
        assert_eq!("lpm".parse::<Stage>(), Err(UnknownStage("lpm".to_owned())));
        assert!(StageProc::new(Stage::Full, [None; MAX_PORTS]).is_none());
    }

    #[test]
    fn implied_outputs_follow_the_interfaces() {
        let snap = snapshot();
        let o = implied_outputs(Some(&snap), &[POD, FAB]);
        assert_eq!(o[usize::from(POD)], Some(FAB));
        assert_eq!(o[usize::from(FAB)], Some(POD));
        // Without state: neighbours pair up, an odd one out loops.
        let o = implied_outputs(None, &[0, 1, 2]);
        assert_eq!((o[0], o[1], o[2]), (Some(1), Some(0), Some(2)));
    }

    #[test]
    fn io_sends_everything_unchanged() {
        let snap = snapshot();
        let flows = FlowTable::with_capacity(1024).unwrap();
        let frame = pod_frame(&snap, 1);
        let mut bufs = vec![buf(&frame, POD), buf(&[1, 2, 3], POD)];
        let (p, dest) = run(Stage::Io, &snap, &flows, &mut bufs);
        assert_eq!(dest, vec![Some(FAB), Some(FAB)]);
        assert_eq!(bufs[0].data(), &frame[..]);
        assert_eq!(
            (p.tally().packets, p.tally().ok, p.tally().failed),
            (2, 2, 0)
        );
    }

    #[test]
    fn parse_counts_good_and_malformed_packets() {
        let snap = snapshot();
        let flows = FlowTable::with_capacity(1024).unwrap();
        let good = pod_frame(&snap, 1);
        let mut bufs = vec![buf(&good, POD), buf(&good[..20], POD), buf(&good, POD)];
        let (p, dest) = run(Stage::Parse, &snap, &flows, &mut bufs);
        assert_eq!(dest, vec![Some(FAB), None, Some(FAB)]);
        let t = p.tally();
        assert_eq!((t.packets, t.ok, t.failed), (3, 2, 1));
        assert_ne!(t.digest, 0, "the flow hashes are folded in");
        // Another flow, another digest: the work depends on the bytes.
        let mut other = vec![buf(&pod_frame(&snap, 2), POD)];
        let (q, _) = run(Stage::Parse, &snap, &flows, &mut other);
        let mut same = vec![buf(&good, POD)];
        let (r, _) = run(Stage::Parse, &snap, &flows, &mut same);
        assert_ne!(q.tally().digest, r.tally().digest);
        assert_eq!(flows.len(), 0, "parse looks nothing up");
    }

    #[test]
    fn flow_learns_then_hits() {
        let snap = snapshot();
        let flows = FlowTable::with_capacity(1024).unwrap();
        let frames: Vec<Vec<u8>> = (1..=5).map(|i| pod_frame(&snap, i)).collect();
        // Flow 1 twice in the first burst: the second is a hit on what the first learned.
        let mut first: Vec<HeapBuf> = frames.iter().map(|f| buf(f, POD)).collect();
        first.push(buf(&frames[0], POD));
        let (p, dest) = run(Stage::Flow, &snap, &flows, &mut first);
        assert!(dest.iter().all(|d| *d == Some(FAB)));
        assert_eq!((p.tally().flows_learned, p.tally().flow_hits), (5, 1));
        assert_eq!(flows.len(), 10, "each flow and its reverse");
        let mut again: Vec<HeapBuf> = frames.iter().map(|f| buf(f, POD)).collect();
        let (q, _) = run(Stage::Flow, &snap, &flows, &mut again);
        assert_eq!((q.tally().flows_learned, q.tally().flow_hits), (0, 5));
    }

    #[test]
    fn route_resolves_the_tunnel_port_and_drops_what_has_no_route() {
        let snap = snapshot();
        let flows = FlowTable::with_capacity(1024).unwrap();
        let good = pod_frame(&snap, 7);
        let no_route = eth(
            snap.router_mac().0,
            POD_MAC,
            &ipv4_udp([10, 244, 0, 10], [10, 99, 0, 1], 1, 2, &[0; 18]),
        );
        // Not to the gateway: a bridge lookup, and no bridge entry.
        let bridged = eth([2, 0, 0, 0, 0, 0x77], POD_MAC, &good[14..]);
        let mut bufs = vec![buf(&good, POD), buf(&no_route, POD), buf(&bridged, POD)];
        let (p, dest) = run(Stage::Route, &snap, &flows, &mut bufs);
        assert_eq!(dest, vec![Some(FAB), None, None]);
        assert_eq!((p.tally().ok, p.tally().failed), (1, 2));
        assert_eq!(bufs[0].data(), &good[..], "route does not rewrite");
        assert_eq!(flows.len(), 0);
    }

    #[test]
    fn encap_prepends_vxlan_with_the_route_vni() {
        let snap = snapshot();
        let flows = FlowTable::with_capacity(1024).unwrap();
        let good = pod_frame(&snap, 3);
        let mut bufs = vec![buf(&good, POD)];
        let (p, dest) = run(Stage::Encap, &snap, &flows, &mut bufs);
        assert_eq!(dest, vec![Some(FAB)]);
        assert_eq!(p.tally().tunnelled, 1);
        let d = bufs[0].data();
        assert_eq!(d.len(), good.len() + 50);
        assert_eq!(&d[0..6], &[2, 0xbb, 0, 0, 0, 0x12], "outer dmac");
        assert_eq!(&d[26..30], &[10, 10, 0, 11], "outer source");
        assert_eq!(&d[30..34], &[10, 10, 0, 12], "outer destination");
        assert_eq!(u16::from_be_bytes([d[36], d[37]]), 4789);
        assert_eq!(&d[46..49], &[0, 0, 100], "VNI");
        assert_eq!(&d[50 + 12..], &good[12..], "inner frame after the MACs");
        assert_eq!(flows.len(), 0, "no flow lookup");
    }

    #[test]
    fn decap_strips_known_vnis_only() {
        let snap = snapshot();
        let flows = FlowTable::with_capacity(1024).unwrap();
        let inner = pod_frame(&snap, 4);
        let tunnel = |vni: u32| {
            let mut v = vec![0x08, 0, 0, 0];
            v.extend_from_slice(&(vni << 8).to_be_bytes());
            v.extend_from_slice(&inner);
            let ip = ipv4_udp([10, 10, 0, 12], [10, 10, 0, 11], 50000, 4789, &v);
            eth([2, 0xaa, 0, 0, 0, 0x11], [2, 0xbb, 0, 0, 0, 0x12], &ip)
        };
        let mut bufs = vec![buf(&tunnel(100), FAB), buf(&tunnel(101), FAB)];
        let (p, dest) = run(Stage::Decap, &snap, &flows, &mut bufs);
        assert_eq!(dest, vec![Some(POD), None]);
        assert_eq!(bufs[0].data(), &inner[..]);
        assert_eq!((p.tally().tunnelled, p.tally().failed), (1, 1));
    }

    #[test]
    fn counters_publish_and_sum() {
        let c = StageCounters::default();
        let t = StageTally {
            packets: 3,
            ok: 2,
            failed: 1,
            flow_hits: 4,
            flows_learned: 5,
            tunnelled: 6,
            digest: 0xf0,
        };
        c.publish(&t);
        assert_eq!(c.snapshot(), t);
        let s = StageTally::sum([&t, &t]);
        assert_eq!((s.packets, s.ok, s.failed, s.digest), (6, 4, 2, 0));
    }

    #[test]
    fn stats_line_reports_rates_and_cycles() {
        let s = WorkerStats::default();
        let a = s.snapshot();
        bump(&s.rx[0], 2_000_000);
        bump(&s.tx[1], 1_000_000);
        bump(&s.busy_cycles, 100_000_000);
        let b = s.snapshot();
        let ports = [(0usize, "gen".to_owned()), (1, "sink".to_owned())];
        let l = stats_line(
            Stage::Parse,
            Duration::from_secs(3),
            &ports,
            &[a],
            &[b],
            1.0,
            None,
        );
        assert!(l.contains("stage parse"), "{l}");
        assert!(l.contains("gen: rx 2.00 Mpps tx 0.00 Mpps"), "{l}");
        assert!(l.contains("sink: rx 0.00 Mpps tx 1.00 Mpps"), "{l}");
        assert!(l.contains("cycles/packet 50.0"), "{l}");
    }
}
