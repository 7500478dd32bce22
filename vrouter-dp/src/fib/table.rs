//! The forwarding state as a whole: the immutable [`FibSnapshot`] workers read, and
//! the [`Fib`] builder the control thread applies batches of [`Update`]s to.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::cow::CowVec;
use super::lpm::{Lpm, LpmFull, LpmIndex, LpmOp, OpLog, RouteTarget, MAX_GROUPS, MAX_ROUTES};
use super::nexthop::{NextHop, NhKind, NhSpec};
use super::vif::{Vif, VifKind};
use super::vni::VniTable;
use super::{FibError, Label, MacAddr, NhId, Prefix, VifId, Vni, VrfId};

type Hasher = ahash::RandomState;

/// The control side's bookkeeping maps, on ahash: a batch hashes each route key
/// about ten times, and SipHash took a third of the apply. Keys come from the
/// agent, which the socket's permissions already trust.
type Map<K, V> = HashMap<K, V, Hasher>;

/// The maps a packet's processing reads (each VRF's bridge table), on FxHash
/// (rustc-hash): a multiply per word. With the fixed-seed ahash of the
/// bookkeeping maps a lookup took about 40 instructions, through the key's
/// `Hash` impl (BENCHMARKS.md, "VNI and bridge tables on FxHash"). Their
/// contents come from the agent; a packet only chooses which key is looked up,
/// so a lookup costs at most the longest probe sequence the agent's keys make,
/// as with any fixed hash.
type PacketMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

pub(super) fn hasher() -> Hasher {
    ahash::RandomState::with_seeds(
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    )
}

/// Table sizes and node-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibConfig {
    /// Interface ids are `0..max_vifs`.
    pub max_vifs: u16,
    /// Next-hop ids are `0..max_nhs` (TF default 512K).
    pub max_nhs: u32,
    /// VRF ids are `0..max_vrfs` (TF default 4096).
    pub max_vrfs: u16,
    /// MPLS labels are `0..max_labels`.
    pub max_labels: u32,
    /// DPDK port ids are `0..max_ports`.
    pub max_ports: u16,
    /// The MAC the data plane uses as the pods' gateway (answers ARP with, sources
    /// routed frames from); TF's `00:00:5e:00:01:00`.
    pub router_mac: MacAddr,
}

impl Default for FibConfig {
    fn default() -> Self {
        Self {
            max_vifs: 4096,
            max_nhs: 512 * 1024,
            max_vrfs: 4096,
            max_labels: 1 << 20,
            max_ports: 1024,
            router_mac: MacAddr([0x00, 0x00, 0x5e, 0x00, 0x01, 0x00]),
        }
    }
}

/// What the payload under an MPLS label is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Payload {
    /// An IP packet (L3 VPN).
    Ip,
    /// An Ethernet frame (L2 VPN).
    Ethernet,
}

/// An MPLS label table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LabelEntry {
    /// Where packets with this label go.
    pub nh: NhId,
    /// What the label carries.
    pub payload: Payload,
}

/// A bridge table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BridgeEntry {
    /// Where frames to this MAC go.
    pub nh: NhId,
    /// The VNI (or label) for tunnel next-hops.
    pub label: Option<u32>,
}

/// One VRF: IPv4 and IPv6 route tables and the bridge table.
#[derive(Debug, Clone)]
pub struct Vrf {
    /// IPv4 routes.
    pub v4: Lpm,
    /// IPv6 routes.
    pub v6: Lpm,
    /// MAC -> next-hop.
    pub bridge: Arc<PacketMap<MacAddr, BridgeEntry>>,
}

/// An immutable, consistent version of the whole forwarding state.
#[derive(Debug, Clone)]
pub struct FibSnapshot {
    generation: u64,
    router_mac: MacAddr,
    vifs: Arc<Vec<Option<Arc<Vif>>>>,
    port_vif: Arc<Vec<Option<VifId>>>,
    /// Port -> its interface, derived from `port_vif` and `vifs` after every batch
    /// that changes an interface: the per-packet lookups go one level less deep.
    by_port: Arc<[Option<Arc<Vif>>]>,
    nhs: CowVec<Option<NextHop>>,
    vrfs: Arc<Vec<Option<Arc<Vrf>>>>,
    labels: CowVec<Option<LabelEntry>>,
    vnis: VniTable,
    node_v4: Arc<[Ipv4Addr]>,
    node_v6: Arc<[Ipv6Addr]>,
    host_vif: Option<VifId>,
    agent_vif: Option<VifId>,
    fabric_vif: Option<VifId>,
}

impl FibSnapshot {
    /// The number of batches applied to produce this version.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The pods' gateway MAC.
    #[inline]
    pub fn router_mac(&self) -> MacAddr {
        self.router_mac
    }

    /// An interface by id.
    #[inline]
    pub fn vif(&self, id: VifId) -> Option<&Vif> {
        self.vifs.get(usize::from(id.0))?.as_deref()
    }

    /// The interface bound to a port.
    #[inline]
    pub fn vif_by_port(&self, port: u16) -> Option<&Vif> {
        self.by_port.get(usize::from(port))?.as_deref()
    }

    /// A next-hop by id.
    #[inline]
    pub fn nh(&self, id: NhId) -> Option<&NextHop> {
        self.nhs.get(id.0 as usize)?.as_ref()
    }

    /// A VRF by id (absent until it holds a route or bridge entry).
    #[inline]
    pub fn vrf(&self, id: VrfId) -> Option<&Vrf> {
        self.vrfs.get(usize::from(id.0))?.as_deref()
    }

    /// Longest-prefix match of an IPv4 address in a VRF.
    #[inline]
    pub fn route_v4(&self, vrf: VrfId, ip: Ipv4Addr) -> Option<RouteTarget> {
        self.vrf(vrf)?.v4.lookup_v4(u32::from(ip))
    }

    /// Longest-prefix match of an IPv6 address in a VRF.
    #[inline]
    pub fn route_v6(&self, vrf: VrfId, ip: Ipv6Addr) -> Option<RouteTarget> {
        self.vrf(vrf)?.v6.lookup_v6(u128::from(ip))
    }

    /// Longest-prefix match of either family.
    #[inline]
    pub fn route(&self, vrf: VrfId, ip: IpAddr) -> Option<RouteTarget> {
        match ip {
            IpAddr::V4(a) => self.route_v4(vrf, a),
            IpAddr::V6(a) => self.route_v6(vrf, a),
        }
    }

    /// Bridge table lookup.
    #[inline]
    pub fn bridge(&self, vrf: VrfId, mac: MacAddr) -> Option<BridgeEntry> {
        self.vrf(vrf)?.bridge.get(&mac).copied()
    }

    /// MPLS label lookup.
    #[inline]
    pub fn label(&self, label: Label) -> Option<LabelEntry> {
        *self.labels.get(label.0 as usize)?
    }

    /// VXLAN VNI lookup.
    #[inline]
    pub fn vni(&self, vni: Vni) -> Option<NhId> {
        self.vnis.get(vni.0)
    }

    /// Whether `ip` is one of the node's own IPv4 addresses (host and fabric
    /// interfaces).
    #[inline]
    pub fn is_node_v4(&self, ip: Ipv4Addr) -> bool {
        self.node_v4.contains(&ip)
    }

    /// Whether `ip` is one of the node's own IPv6 addresses.
    #[inline]
    pub fn is_node_v6(&self, ip: Ipv6Addr) -> bool {
        self.node_v6.contains(&ip)
    }

    /// The host interface (vhost0), if configured.
    #[inline]
    pub fn host_vif(&self) -> Option<&Vif> {
        self.vif(self.host_vif?)
    }

    /// The first fabric interface, if configured.
    #[inline]
    pub fn fabric_vif(&self) -> Option<&Vif> {
        self.vif(self.fabric_vif?)
    }

    /// The node's own IPv4 addresses (host and fabric interfaces).
    #[inline]
    pub fn node_v4(&self) -> &[Ipv4Addr] {
        &self.node_v4
    }

    /// The node's own IPv6 addresses (host and fabric interfaces).
    #[inline]
    pub fn node_v6(&self) -> &[Ipv6Addr] {
        &self.node_v6
    }

    /// The agent packet interface (pkt0), if configured.
    #[inline]
    pub fn agent_vif(&self) -> Option<&Vif> {
        self.vif(self.agent_vif?)
    }

    /// All configured interfaces.
    pub fn vifs(&self) -> impl Iterator<Item = &Vif> {
        self.vifs.iter().filter_map(|v| v.as_deref())
    }
}

/// One change. "Add" adds or replaces.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// Add or replace an interface.
    AddVif(Vif),
    /// Delete an interface (refused while a next-hop uses it).
    DelVif(VifId),
    /// Add or replace a next-hop.
    AddNh(NhId, NhSpec),
    /// Delete a next-hop (refused while a route, label, VNI, bridge entry, composite
    /// or flow uses it).
    DelNh(NhId),
    /// Add or replace a route.
    AddRoute {
        /// VRF.
        vrf: VrfId,
        /// Prefix.
        prefix: Prefix,
        /// Next-hop and label.
        target: RouteTarget,
    },
    /// Delete a route.
    DelRoute {
        /// VRF.
        vrf: VrfId,
        /// Prefix.
        prefix: Prefix,
    },
    /// Add or replace a bridge entry.
    AddBridge {
        /// VRF.
        vrf: VrfId,
        /// MAC address (broadcast for the BUM flood entry).
        mac: MacAddr,
        /// Next-hop and VNI.
        entry: BridgeEntry,
    },
    /// Delete a bridge entry.
    DelBridge {
        /// VRF.
        vrf: VrfId,
        /// MAC address.
        mac: MacAddr,
    },
    /// Map an MPLS label.
    AddLabel(Label, LabelEntry),
    /// Unmap an MPLS label.
    DelLabel(Label),
    /// Map a VXLAN VNI to a next-hop (usually a VRF-translate next-hop).
    AddVni(Vni, NhId),
    /// Unmap a VNI.
    DelVni(Vni),
}

/// Reports which next-hops flows refer to, so that they are not deleted under them.
pub trait FlowNhUsers {
    /// Number of flows that use next-hop `nh`.
    fn flows_using(&self, nh: NhId) -> usize;
}

/// No flows refer to next-hops.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFlows;

impl FlowNhUsers for NoFlows {
    fn flows_using(&self, _nh: NhId) -> usize {
        0
    }
}

type RouteKey = (VrfId, bool, u128, u8);

/// Most route-table writes a batch's journal keeps per address family (24 bytes
/// each: 6 MiB). A batch that writes more (a full table's first load, or 100k routes
/// at once: about 860k writes) stops recording and lets the previous version go:
/// replaying that many writes takes about as long as copying the chunks the next
/// batch writes, and the journal would hold its memory until then.
const MAX_JOURNAL_OPS: usize = 1 << 18;

/// What the batch that made the current version changed, enough to bring the
/// version before it up to date (see [`Fib::base_for_next`]).
#[derive(Debug, Default)]
struct Journal {
    /// The IPv4 and IPv6 route tables' writes (kept allocated from batch to batch).
    ops: [Vec<LpmOp>; 2],
    /// Runs of those writes, in order: (VRF, IPv6, range in `ops[IPv6]`).
    lpm: Vec<(VrfId, bool, std::ops::Range<usize>)>,
    /// Every VRF the batch created or edited (routes or bridge entries).
    vrfs: Vec<VrfId>,
    /// Whether the batch changed anything outside the VRFs (interfaces,
    /// next-hops, labels, VNIs).
    others: bool,
    /// Whether writes were dropped past [`MAX_JOURNAL_OPS`] (the journal is then
    /// incomplete, and the previous version is not kept).
    lost: bool,
}

impl Journal {
    /// Empty, keeping the allocations.
    fn clear(&mut self) {
        self.ops.iter_mut().for_each(Vec::clear);
        self.lpm.clear();
        self.vrfs.clear();
        self.others = false;
        self.lost = false;
    }
}

/// The control-side forwarding state: applies batches and yields snapshots.
///
/// Versions alternate between two copies of the state. A batch edits the version
/// before the current one, once nothing else holds it (the workers have moved on
/// and the publisher has let it go), after replaying into it the route-table
/// writes of the batch that made the current version. A chunk of a route table
/// that each copy has written once belongs to that copy alone, so later batches
/// write it in place instead of copying it. Otherwise (the previous version is
/// still held) the batch edits a copy of the current version that shares every
/// piece with it, and each piece is copied on its first write.
#[derive(Debug)]
pub struct Fib {
    cfg: FibConfig,
    cur: Arc<FibSnapshot>,
    /// The version before `cur` (the other copy).
    spare: Option<Arc<FibSnapshot>>,
    /// What the batch that made `cur` changed.
    journal: Journal,
    /// Batches that edited the previous version (not a copy of the current one).
    reused: u64,
    /// [`MAX_JOURNAL_OPS`] (smaller in tests).
    max_journal_ops: usize,
    template: Arc<Vrf>,
    specs: Map<NhId, NhSpec>,
    indexes: Map<(VrfId, bool), LpmIndex>,
    nh_refs: Map<NhId, u64>,
    vif_users: Map<VifId, BTreeSet<NhId>>,
}

impl Fib {
    /// Empty state: no interfaces, no routes, next-hop 0 (discard) only.
    pub fn new(cfg: FibConfig) -> Self {
        let mut nhs = CowVec::filled(cfg.max_nhs as usize, None);
        nhs.set(
            0,
            Some(NextHop {
                id: NhId::DISCARD,
                kind: NhKind::Discard,
            }),
        );
        let template = Arc::new(Vrf {
            v4: Lpm::new_v4(),
            v6: Lpm::new_v6(),
            bridge: Arc::new(PacketMap::default()),
        });
        let cur = FibSnapshot {
            generation: 0,
            router_mac: cfg.router_mac,
            vifs: Arc::new(vec![None; usize::from(cfg.max_vifs)]),
            port_vif: Arc::new(vec![None; usize::from(cfg.max_ports)]),
            by_port: vec![None; usize::from(cfg.max_ports)].into(),
            nhs,
            vrfs: Arc::new(vec![None; usize::from(cfg.max_vrfs)]),
            labels: CowVec::filled(cfg.max_labels as usize, None),
            vnis: VniTable::default(),
            node_v4: Arc::from(Vec::new()),
            node_v6: Arc::from(Vec::new()),
            host_vif: None,
            agent_vif: None,
            fabric_vif: None,
        };
        let mut specs = Map::with_hasher(hasher());
        specs.insert(NhId::DISCARD, NhSpec::Discard);
        Self {
            cfg,
            cur: Arc::new(cur),
            spare: None,
            journal: Journal::default(),
            reused: 0,
            max_journal_ops: MAX_JOURNAL_OPS,
            template,
            specs,
            indexes: Map::with_hasher(hasher()),
            nh_refs: Map::with_hasher(hasher()),
            vif_users: Map::with_hasher(hasher()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FibConfig {
        &self.cfg
    }

    /// The current state, as a shareable snapshot (the current version itself).
    pub fn snapshot(&self) -> Arc<FibSnapshot> {
        self.cur.clone()
    }

    /// The current state, borrowed.
    pub fn current(&self) -> &FibSnapshot {
        &self.cur
    }

    /// How many batches edited the version before the current one (brought up to
    /// date) rather than a copy of the current one.
    pub fn versions_reused(&self) -> u64 {
        self.reused
    }

    /// The spec a next-hop was configured with.
    pub fn nh_spec(&self, id: NhId) -> Option<&NhSpec> {
        self.specs.get(&id)
    }

    /// All routes of a VRF and family as `(prefix, target)`, in no particular order.
    pub fn routes(&self, vrf: VrfId, v6: bool) -> Vec<(Prefix, RouteTarget)> {
        self.indexes
            .get(&(vrf, v6))
            .map(|idx| {
                idx.iter()
                    .filter_map(|(k, l, t)| Some((prefix_of(v6, k, l)?, t)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Apply a batch with no flow users (see [`Fib::apply_with_flows`]).
    pub fn apply(&mut self, batch: &[Update]) -> Result<Arc<FibSnapshot>, FibError> {
        self.apply_with_flows(batch, &NoFlows)
    }

    /// Validate every update of `batch` (each against the state the earlier ones
    /// build), then apply them all and return the new snapshot. On error nothing
    /// changes. `flows` reports which next-hops flows still use.
    pub fn apply_with_flows(
        &mut self,
        batch: &[Update],
        flows: &dyn FlowNhUsers,
    ) -> Result<Arc<FibSnapshot>, FibError> {
        let mut ov = Overlay::new(self);
        ov.blind_adds = self.adds_need_no_lookup(batch);
        if !ov.blind_adds {
            let routes = batch
                .iter()
                .filter(|u| matches!(u, Update::AddRoute { .. } | Update::DelRoute { .. }))
                .count();
            ov.routes.reserve(routes);
        }
        for u in batch {
            ov.check(u, flows)?;
        }
        // Validated: edit the next version in place. Pieces still shared with a
        // published snapshot are copied on first write; nothing else is.
        let mut next = self.base_for_next();
        self.journal.clear();
        next.generation = self.cur.generation + 1;
        let mut vifs_changed = false;
        let mut result = Ok(());
        let mut rest = batch;
        while let Some(u) = rest.first() {
            vifs_changed |= matches!(u, Update::AddVif(_) | Update::DelVif(_));
            // A run of route updates of one VRF edits that VRF's tables through one
            // writable reference (no per-route `Arc::make_mut` checks).
            let run = match route_vrf(u) {
                Some(vrf) => rest
                    .iter()
                    .take_while(|u| route_vrf(u) == Some(vrf))
                    .count(),
                None => 0,
            };
            let (done, more) = rest.split_at(run.max(1));
            result = match route_vrf(u) {
                Some(vrf) => self.apply_routes(&mut next, vrf, done),
                None => self.apply_one(&mut next, u),
            };
            rest = more;
            if result.is_err() {
                break;
            }
        }
        if vifs_changed {
            derive_node_state(&mut next);
        }
        self.journal.vrfs.sort_unstable();
        self.journal.vrfs.dedup();
        let prev = std::mem::replace(&mut self.cur, Arc::new(next));
        if self.journal.lost {
            self.journal.clear();
        } else {
            self.spare = Some(prev);
        }
        result.map(|()| self.snapshot())
    }

    /// The state the next batch edits: the version before the current one, brought
    /// up to date, when nothing else holds it any more; otherwise a copy of the
    /// current version that shares every piece with it.
    fn base_for_next(&mut self) -> FibSnapshot {
        if let Some(spare) = self.spare.take() {
            // Exactly one batch behind: the journal is what it lacks.
            if spare.generation + 1 == self.cur.generation {
                if let Ok(mut s) = Arc::try_unwrap(spare) {
                    self.catch_up(&mut s);
                    self.reused += 1;
                    return s;
                }
            }
        }
        (*self.cur).clone()
    }

    /// Bring `s`, the version before the current one, up to the current one: the
    /// route tables' writes of the last batch are replayed (in place where `s`
    /// alone holds the chunk), and everything else the batch changed is shared
    /// from the current version.
    fn catch_up(&self, s: &mut FibSnapshot) {
        let cur = &*self.cur;
        let j = &self.journal;
        let vrfs = Arc::make_mut(&mut s.vrfs);
        // VRFs the batch created are taken whole from the current version; the
        // others it touched have their route writes replayed and take its bridge
        // table.
        let mut created = Vec::new();
        for &v in &j.vrfs {
            let i = usize::from(v.0);
            if let (Some(slot @ None), Some(now)) = (vrfs.get_mut(i), cur.vrfs.get(i)) {
                *slot = now.clone();
                created.push(v);
            }
        }
        for (v, v6, run) in &j.lpm {
            if created.contains(v) {
                continue;
            }
            let ops = j.ops[usize::from(*v6)].get(run.clone()).unwrap_or(&[]);
            if let Some(Some(mine)) = vrfs.get_mut(usize::from(v.0)) {
                let m = Arc::make_mut(mine);
                if *v6 { &mut m.v6 } else { &mut m.v4 }.replay(ops);
            }
        }
        for &v in j.vrfs.iter().filter(|v| !created.contains(v)) {
            let i = usize::from(v.0);
            if let (Some(Some(mine)), Some(Some(now))) = (vrfs.get_mut(i), cur.vrfs.get(i)) {
                if !Arc::ptr_eq(&mine.bridge, &now.bridge) {
                    Arc::make_mut(mine).bridge = now.bridge.clone();
                }
            }
        }
        if j.others {
            s.router_mac = cur.router_mac;
            s.vifs = cur.vifs.clone();
            s.port_vif = cur.port_vif.clone();
            s.by_port = cur.by_port.clone();
            s.nhs = cur.nhs.clone();
            s.labels = cur.labels.clone();
            s.vnis = cur.vnis.clone();
            s.node_v4 = cur.node_v4.clone();
            s.node_v6 = cur.node_v6.clone();
            s.host_vif = cur.host_vif;
            s.agent_vif = cur.agent_vif;
            s.fabric_vif = cur.fabric_vif;
        }
        s.generation = cur.generation;
    }

    /// Whether the batch's route adds can be validated without looking their
    /// prefixes up: nothing in it deletes a route or a next-hop (so no later update
    /// asks whether a route exists or who uses a next-hop), and every table it adds
    /// to has room even if every add is a new route. Otherwise each add is checked
    /// against the routes the batch builds up.
    fn adds_need_no_lookup(&self, batch: &[Update]) -> bool {
        let mut adds: Map<(VrfId, bool), usize> = Map::with_hasher(hasher());
        for u in batch {
            match u {
                Update::AddRoute { vrf, prefix, .. } => {
                    *adds.entry((*vrf, prefix.is_v6())).or_default() += 1;
                }
                Update::DelRoute { .. } | Update::DelNh(_) => return false,
                _ => {}
            }
        }
        adds.iter()
            .all(|(&(vrf, v6), &n)| self.has_room(vrf, v6, n))
    }

    /// Whether VRF `vrf`'s table of the family (`v6`) has room for `n` more routes:
    /// route count, and tbl8 groups (an IPv4 insert takes at most one; IPv6 routes
    /// live in a hash table that grows as needed).
    fn has_room(&self, vrf: VrfId, v6: bool, n: usize) -> bool {
        let have = self.indexes.get(&(vrf, v6)).map_or(0, |i| i.len());
        let groups = self
            .cur
            .vrf(vrf)
            .map_or(0, |v| if v6 { v.v6.groups() } else { v.v4.groups() });
        have + n <= MAX_ROUTES && groups + n <= MAX_GROUPS
    }

    /// Apply route updates (adds and deletes, all of VRF `vrf`; others are skipped).
    fn apply_routes(
        &mut self,
        next: &mut FibSnapshot,
        vrf: VrfId,
        routes: &[Update],
    ) -> Result<(), FibError> {
        let Some(vrfm) = vrf_mut(next, vrf, &self.template) else {
            return Ok(());
        };
        let [ops4, ops6] = std::mem::take(&mut self.journal.ops);
        let from = [ops4.len(), ops6.len()];
        let log = |ops: Vec<LpmOp>| OpLog {
            room: self.max_journal_ops.saturating_sub(ops.len()),
            ops,
            lost: false,
        };
        vrfm.v4.start_log(log(ops4));
        vrfm.v6.start_log(log(ops6));
        let result = self.route_run(vrfm, vrf, routes);
        let (v4, v6) = (vrfm.v4.take_log(), vrfm.v6.take_log());
        self.journal.lost |= v4.lost || v6.lost;
        self.journal.ops = [v4.ops, v6.ops];
        for (v6, (ops, from)) in self.journal.ops.iter().zip(from).enumerate() {
            if ops.len() > from {
                self.journal.lpm.push((vrf, v6 == 1, from..ops.len()));
            }
        }
        self.journal.vrfs.push(vrf);
        result
    }

    /// The route updates of a run in VRF `vrf`, applied to its tables `vrfm`.
    fn route_run(&mut self, vrfm: &mut Vrf, vrf: VrfId, routes: &[Update]) -> Result<(), FibError> {
        for u in routes {
            match u {
                Update::AddRoute { prefix, target, .. } => {
                    let v6 = prefix.is_v6();
                    let idx = self.indexes.entry((vrf, v6)).or_insert_with(|| {
                        if v6 {
                            LpmIndex::new_v6()
                        } else {
                            LpmIndex::new_v4()
                        }
                    });
                    let lpm = if v6 { &mut vrfm.v6 } else { &mut vrfm.v4 };
                    let old = idx
                        .insert(lpm, prefix.key(), prefix.prefix_len(), *target)
                        .map_err(|e| table_full(vrf, e))?;
                    if let Some(o) = old {
                        unref(&mut self.nh_refs, o.nh);
                    }
                    *self.nh_refs.entry(target.nh).or_default() += 1;
                }
                Update::DelRoute { prefix, .. } => {
                    let v6 = prefix.is_v6();
                    if let Some(idx) = self.indexes.get_mut(&(vrf, v6)) {
                        let lpm = if v6 { &mut vrfm.v6 } else { &mut vrfm.v4 };
                        if let Some(o) = idx.remove(lpm, prefix.key(), prefix.prefix_len()) {
                            unref(&mut self.nh_refs, o.nh);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn apply_one(&mut self, next: &mut FibSnapshot, u: &Update) -> Result<(), FibError> {
        match u {
            Update::AddBridge { vrf, .. } | Update::DelBridge { vrf, .. } => {
                self.journal.vrfs.push(*vrf);
            }
            Update::AddRoute { .. } | Update::DelRoute { .. } => {}
            _ => self.journal.others = true,
        }
        match u {
            Update::AddVif(v) => {
                let vifs = Arc::make_mut(&mut next.vifs);
                let old = vifs.get(usize::from(v.id.0)).cloned().flatten();
                if let Some(slot) = vifs.get_mut(usize::from(v.id.0)) {
                    *slot = Some(Arc::new(v.clone()));
                }
                let ports = Arc::make_mut(&mut next.port_vif);
                if let Some(old) = old {
                    if let Some(p) = ports.get_mut(usize::from(old.port)) {
                        if *p == Some(v.id) {
                            *p = None;
                        }
                    }
                }
                if let Some(p) = ports.get_mut(usize::from(v.port)) {
                    *p = Some(v.id);
                }
                // Next-hops built from this interface pick up its new MAC/port/MTU.
                let users: Vec<NhId> = self
                    .vif_users
                    .get(&v.id)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                for id in users {
                    if let Some(spec) = self.specs.get(&id) {
                        let nh = NextHop::resolve(id, spec, |x| next.vif(x))?;
                        next.nhs.set(id.0 as usize, Some(nh));
                    }
                }
            }
            Update::DelVif(id) => {
                let vifs = Arc::make_mut(&mut next.vifs);
                let old = vifs.get_mut(usize::from(id.0)).and_then(Option::take);
                if let Some(old) = old {
                    let ports = Arc::make_mut(&mut next.port_vif);
                    if let Some(p) = ports.get_mut(usize::from(old.port)) {
                        if *p == Some(*id) {
                            *p = None;
                        }
                    }
                }
            }
            Update::AddNh(id, spec) => {
                let nh = NextHop::resolve(*id, spec, |x| next.vif(x))?;
                if let Some(old) = self.specs.remove(id) {
                    self.drop_spec_refs(*id, &old);
                }
                for m in spec.nh_refs() {
                    *self.nh_refs.entry(m).or_default() += 1;
                }
                if let Some(v) = spec.vif_ref() {
                    self.vif_users.entry(v).or_default().insert(*id);
                }
                self.specs.insert(*id, spec.clone());
                next.nhs.set(id.0 as usize, Some(nh));
            }
            Update::DelNh(id) => {
                if let Some(old) = self.specs.remove(id) {
                    self.drop_spec_refs(*id, &old);
                }
                next.nhs.set(id.0 as usize, None);
            }
            Update::AddRoute { vrf, .. } | Update::DelRoute { vrf, .. } => {
                self.apply_routes(next, *vrf, std::slice::from_ref(u))?;
            }
            Update::AddBridge { vrf, mac, entry } => {
                if let Some(vrfm) = vrf_mut(next, *vrf, &self.template) {
                    if let Some(o) = Arc::make_mut(&mut vrfm.bridge).insert(*mac, *entry) {
                        unref(&mut self.nh_refs, o.nh);
                    }
                    *self.nh_refs.entry(entry.nh).or_default() += 1;
                }
            }
            Update::DelBridge { vrf, mac } => {
                if let Some(vrfm) = vrf_mut(next, *vrf, &self.template) {
                    if let Some(o) = Arc::make_mut(&mut vrfm.bridge).remove(mac) {
                        unref(&mut self.nh_refs, o.nh);
                    }
                }
            }
            Update::AddLabel(label, entry) => {
                if let Some(slot) = next.labels.get_mut(label.0 as usize) {
                    if let Some(o) = slot.replace(*entry) {
                        unref(&mut self.nh_refs, o.nh);
                    }
                    *self.nh_refs.entry(entry.nh).or_default() += 1;
                }
            }
            Update::DelLabel(label) => {
                if let Some(o) = next.labels.get_mut(label.0 as usize).and_then(Option::take) {
                    unref(&mut self.nh_refs, o.nh);
                }
            }
            Update::AddVni(vni, nh) => {
                if let Some(o) = next.vnis.insert(vni.0, *nh) {
                    unref(&mut self.nh_refs, o);
                }
                *self.nh_refs.entry(*nh).or_default() += 1;
            }
            Update::DelVni(vni) => {
                if let Some(o) = next.vnis.remove(vni.0) {
                    unref(&mut self.nh_refs, o);
                }
            }
        }
        Ok(())
    }

    fn drop_spec_refs(&mut self, id: NhId, spec: &NhSpec) {
        for m in spec.nh_refs() {
            unref(&mut self.nh_refs, m);
        }
        if let Some(v) = spec.vif_ref() {
            if let Some(s) = self.vif_users.get_mut(&v) {
                s.remove(&id);
                if s.is_empty() {
                    self.vif_users.remove(&v);
                }
            }
        }
    }
}

fn unref(refs: &mut Map<NhId, u64>, nh: NhId) {
    if let Some(c) = refs.get_mut(&nh) {
        *c = c.saturating_sub(1);
        if *c == 0 {
            refs.remove(&nh);
        }
    }
}

fn table_full(vrf: VrfId, e: LpmFull) -> FibError {
    FibError::TableFull {
        vrf,
        what: match e {
            LpmFull::Routes => "routes",
            LpmFull::Groups => "tbl8 groups",
        },
    }
}

/// The VRF, writable (created from the empty template on first use).
/// The VRF of a route add or delete.
fn route_vrf(u: &Update) -> Option<VrfId> {
    match u {
        Update::AddRoute { vrf, .. } | Update::DelRoute { vrf, .. } => Some(*vrf),
        _ => None,
    }
}

fn vrf_mut<'a>(next: &'a mut FibSnapshot, vrf: VrfId, template: &Arc<Vrf>) -> Option<&'a mut Vrf> {
    let slot = Arc::make_mut(&mut next.vrfs).get_mut(usize::from(vrf.0))?;
    let arc = slot.get_or_insert_with(|| template.clone());
    Some(Arc::make_mut(arc))
}

/// What a snapshot derives from its interfaces: the node's own addresses, the
/// host, agent and fabric interfaces, and the port -> interface map.
fn derive_node_state(s: &mut FibSnapshot) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let mut host = None;
    let mut agent = None;
    let mut fabric = None;
    for v in s.vifs.iter().filter_map(|v| v.as_deref()) {
        if v.kind == VifKind::Fabric && fabric.is_none() {
            fabric = Some(v.id);
        }
        match v.kind {
            VifKind::Host | VifKind::Fabric => {
                v4.extend_from_slice(&v.ipv4);
                v6.extend_from_slice(&v.ipv6);
                if v.kind == VifKind::Host && host.is_none() {
                    host = Some(v.id);
                }
            }
            VifKind::Agent if agent.is_none() => agent = Some(v.id),
            _ => {}
        }
    }
    s.node_v4 = Arc::from(v4);
    s.node_v6 = Arc::from(v6);
    let by_port = s
        .port_vif
        .iter()
        .map(|id| id.and_then(|id| s.vifs.get(usize::from(id.0)).cloned().flatten()))
        .collect();
    s.by_port = by_port;
    s.host_vif = host;
    s.agent_vif = agent;
    s.fabric_vif = fabric;
}

fn prefix_of(v6: bool, key: u128, len: u8) -> Option<Prefix> {
    let addr = if v6 {
        IpAddr::V6(Ipv6Addr::from(key))
    } else {
        IpAddr::V4(Ipv4Addr::from(key as u32))
    };
    Prefix::new(addr, len).ok()
}

/// The state a batch builds up, on top of the current state, for validation.
struct Overlay<'a> {
    fib: &'a Fib,
    vifs: Map<VifId, Option<Vif>>,
    nhs: Map<NhId, Option<NhSpec>>,
    routes: Map<RouteKey, Option<RouteTarget>>,
    bridge: Map<(VrfId, MacAddr), Option<BridgeEntry>>,
    labels: Map<u32, Option<LabelEntry>>,
    vnis: Map<u32, Option<NhId>>,
    nh_delta: Map<NhId, i64>,
    vif_users: Map<VifId, BTreeSet<NhId>>,
    added_routes: Map<(VrfId, bool), usize>,
    /// See [`Fib::adds_need_no_lookup`]: route adds skip the route lookup, the
    /// next-hop reference deltas and the overlay.
    blind_adds: bool,
}

impl<'a> Overlay<'a> {
    fn new(fib: &'a Fib) -> Self {
        Self {
            fib,
            vifs: Map::with_hasher(hasher()),
            nhs: Map::with_hasher(hasher()),
            routes: Map::with_hasher(hasher()),
            bridge: Map::with_hasher(hasher()),
            labels: Map::with_hasher(hasher()),
            vnis: Map::with_hasher(hasher()),
            nh_delta: Map::with_hasher(hasher()),
            vif_users: Map::with_hasher(hasher()),
            added_routes: Map::with_hasher(hasher()),
            blind_adds: false,
        }
    }

    fn vif(&self, id: VifId) -> Option<&Vif> {
        match self.vifs.get(&id) {
            Some(v) => v.as_ref(),
            None => self.fib.cur.vif(id),
        }
    }

    fn nh(&self, id: NhId) -> Option<&NhSpec> {
        match self.nhs.get(&id) {
            Some(v) => v.as_ref(),
            None => self.fib.specs.get(&id),
        }
    }

    fn route(&self, k: RouteKey) -> Option<RouteTarget> {
        match self.routes.get(&k) {
            Some(v) => *v,
            None => self.fib.indexes.get(&(k.0, k.1))?.get(k.2, k.3),
        }
    }

    fn bridge_entry(&self, vrf: VrfId, mac: MacAddr) -> Option<BridgeEntry> {
        match self.bridge.get(&(vrf, mac)) {
            Some(v) => *v,
            None => self.fib.cur.bridge(vrf, mac),
        }
    }

    fn label(&self, l: u32) -> Option<LabelEntry> {
        match self.labels.get(&l) {
            Some(v) => *v,
            None => self.fib.cur.label(Label(l)),
        }
    }

    fn vni(&self, v: u32) -> Option<NhId> {
        match self.vnis.get(&v) {
            Some(x) => *x,
            None => self.fib.cur.vni(Vni(v)),
        }
    }

    fn vif_users(&self, id: VifId) -> BTreeSet<NhId> {
        match self.vif_users.get(&id) {
            Some(s) => s.clone(),
            None => self.fib.vif_users.get(&id).cloned().unwrap_or_default(),
        }
    }

    fn nh_refcount(&self, id: NhId) -> i64 {
        self.fib.nh_refs.get(&id).copied().unwrap_or(0) as i64
            + self.nh_delta.get(&id).copied().unwrap_or(0)
    }

    fn delta(&mut self, id: NhId, d: i64) {
        *self.nh_delta.entry(id).or_default() += d;
    }

    fn need_nh(&self, field: &'static str, id: NhId) -> Result<(), FibError> {
        if self.nh(id).is_none() {
            return Err(FibError::Missing {
                field,
                what: "next-hop",
                id: u64::from(id.0),
            });
        }
        Ok(())
    }

    fn need_vrf(&self, vrf: VrfId) -> Result<(), FibError> {
        if vrf.0 >= self.fib.cfg.max_vrfs {
            return Err(FibError::OutOfRange {
                what: "vrf",
                id: u64::from(vrf.0),
                max: u64::from(self.fib.cfg.max_vrfs),
            });
        }
        Ok(())
    }

    fn check(&mut self, u: &Update, flows: &dyn FlowNhUsers) -> Result<(), FibError> {
        let fib: &'a Fib = self.fib;
        let cfg = &fib.cfg;
        match u {
            Update::AddVif(v) => {
                if v.id.0 >= cfg.max_vifs {
                    return Err(FibError::OutOfRange {
                        what: "vif",
                        id: u64::from(v.id.0),
                        max: u64::from(cfg.max_vifs),
                    });
                }
                if v.port >= cfg.max_ports {
                    return Err(FibError::OutOfRange {
                        what: "port",
                        id: u64::from(v.port),
                        max: u64::from(cfg.max_ports),
                    });
                }
                self.need_vrf(v.vrf)?;
                if v.mtu < 68 {
                    return Err(FibError::Invalid {
                        field: "mtu",
                        reason: format!("{} is below the IPv4 minimum of 68", v.mtu),
                    });
                }
                let other = self
                    .fib
                    .cur
                    .vif_by_port(v.port)
                    .map(|o| o.id)
                    .filter(|o| *o != v.id && self.vif(*o).is_some_and(|x| x.port == v.port))
                    .or_else(|| {
                        self.vifs
                            .values()
                            .flatten()
                            .find(|o| o.port == v.port && o.id != v.id)
                            .map(|o| o.id)
                    });
                if let Some(o) = other {
                    return Err(FibError::Invalid {
                        field: "port",
                        reason: format!("port {} is already bound to {o}", v.port),
                    });
                }
                let users = self.vif_users(v.id);
                if let Some(old) = self.vif(v.id) {
                    if old.kind != v.kind && !users.is_empty() {
                        return Err(FibError::Invalid {
                            field: "kind",
                            reason: format!(
                                "{} is used by {}; its kind cannot change",
                                v.id,
                                list_nhs(&users)
                            ),
                        });
                    }
                }
                self.vifs.insert(v.id, Some(v.clone()));
            }
            Update::DelVif(id) => {
                if self.vif(*id).is_none() {
                    return Err(FibError::Missing {
                        field: "vif",
                        what: "vif",
                        id: u64::from(id.0),
                    });
                }
                let users = self.vif_users(*id);
                if !users.is_empty() {
                    return Err(FibError::VifInUse {
                        vif: *id,
                        users: list_nhs(&users),
                    });
                }
                self.vifs.insert(*id, None);
            }
            Update::AddNh(id, spec) => {
                if *id == NhId::DISCARD {
                    return Err(FibError::ReservedNh);
                }
                if id.0 >= cfg.max_nhs {
                    return Err(FibError::OutOfRange {
                        what: "next-hop",
                        id: u64::from(id.0),
                        max: u64::from(cfg.max_nhs),
                    });
                }
                NextHop::resolve(*id, spec, |v| self.vif(v))?;
                for m in spec.nh_refs() {
                    let Some(ms) = self.nh(m) else {
                        return Err(FibError::Missing {
                            field: "members",
                            what: "next-hop",
                            id: u64::from(m.0),
                        });
                    };
                    if !matches!(ms, NhSpec::Encap { .. } | NhSpec::Tunnel(_)) {
                        return Err(FibError::Invalid {
                            field: "members",
                            reason: format!("{m} is not an encap or tunnel next-hop"),
                        });
                    }
                }
                if let NhSpec::VrfTranslate { vrf } = spec {
                    self.need_vrf(*vrf)?;
                }
                let old = self.nh(*id).cloned();
                if let Some(old) = &old {
                    for m in old.nh_refs() {
                        self.delta(m, -1);
                    }
                    if let Some(v) = old.vif_ref() {
                        let mut s = self.vif_users(v);
                        s.remove(id);
                        self.vif_users.insert(v, s);
                    }
                }
                for m in spec.nh_refs() {
                    self.delta(m, 1);
                }
                if let Some(v) = spec.vif_ref() {
                    let mut s = self.vif_users(v);
                    s.insert(*id);
                    self.vif_users.insert(v, s);
                }
                self.nhs.insert(*id, Some(spec.clone()));
            }
            Update::DelNh(id) => {
                if *id == NhId::DISCARD {
                    return Err(FibError::ReservedNh);
                }
                let Some(old) = self.nh(*id).cloned() else {
                    return Err(FibError::Missing {
                        field: "next-hop",
                        what: "next-hop",
                        id: u64::from(id.0),
                    });
                };
                let flows_n = flows.flows_using(*id);
                if self.nh_refcount(*id) > 0 || flows_n > 0 {
                    return Err(FibError::NhInUse {
                        nh: *id,
                        users: self.users_of(*id, flows_n),
                    });
                }
                for m in old.nh_refs() {
                    self.delta(m, -1);
                }
                if let Some(v) = old.vif_ref() {
                    let mut s = self.vif_users(v);
                    s.remove(id);
                    self.vif_users.insert(v, s);
                }
                self.nhs.insert(*id, None);
            }
            Update::AddRoute {
                vrf,
                prefix,
                target,
            } => {
                self.need_vrf(*vrf)?;
                self.need_nh("nh", target.nh)?;
                if let Some(l) = target.label {
                    if l > Vni::MAX {
                        return Err(FibError::Invalid {
                            field: "label",
                            reason: format!("{l} does not fit in 24 bits"),
                        });
                    }
                }
                if self.blind_adds {
                    return Ok(());
                }
                let k = (*vrf, prefix.is_v6(), prefix.key(), prefix.prefix_len());
                match self.route(k) {
                    Some(o) => self.delta(o.nh, -1),
                    None => {
                        let n = self.added_routes.entry((k.0, k.1)).or_default();
                        *n += 1;
                        if !self.fib.has_room(k.0, k.1, *n) {
                            return Err(table_full(*vrf, LpmFull::Routes));
                        }
                    }
                }
                self.delta(target.nh, 1);
                self.routes.insert(k, Some(*target));
            }
            Update::DelRoute { vrf, prefix } => {
                let k = (*vrf, prefix.is_v6(), prefix.key(), prefix.prefix_len());
                let Some(o) = self.route(k) else {
                    return Err(FibError::NoRoute {
                        vrf: *vrf,
                        prefix: *prefix,
                    });
                };
                self.delta(o.nh, -1);
                self.routes.insert(k, None);
            }
            Update::AddBridge { vrf, mac, entry } => {
                self.need_vrf(*vrf)?;
                self.need_nh("nh", entry.nh)?;
                if let Some(o) = self.bridge_entry(*vrf, *mac) {
                    self.delta(o.nh, -1);
                }
                self.delta(entry.nh, 1);
                self.bridge.insert((*vrf, *mac), Some(*entry));
            }
            Update::DelBridge { vrf, mac } => {
                let Some(o) = self.bridge_entry(*vrf, *mac) else {
                    return Err(FibError::NoBridgeEntry {
                        vrf: *vrf,
                        mac: *mac,
                    });
                };
                self.delta(o.nh, -1);
                self.bridge.insert((*vrf, *mac), None);
            }
            Update::AddLabel(label, entry) => {
                if label.0 >= cfg.max_labels {
                    return Err(FibError::OutOfRange {
                        what: "label",
                        id: u64::from(label.0),
                        max: u64::from(cfg.max_labels),
                    });
                }
                self.need_nh("nh", entry.nh)?;
                if let Some(o) = self.label(label.0) {
                    self.delta(o.nh, -1);
                }
                self.delta(entry.nh, 1);
                self.labels.insert(label.0, Some(*entry));
            }
            Update::DelLabel(label) => {
                let Some(o) = self.label(label.0) else {
                    return Err(FibError::NoLabel(*label));
                };
                self.delta(o.nh, -1);
                self.labels.insert(label.0, None);
            }
            Update::AddVni(vni, nh) => {
                if vni.0 > Vni::MAX {
                    return Err(FibError::OutOfRange {
                        what: "vni",
                        id: u64::from(vni.0),
                        max: u64::from(Vni::MAX) + 1,
                    });
                }
                self.need_nh("nh", *nh)?;
                if let Some(o) = self.vni(vni.0) {
                    self.delta(o, -1);
                }
                self.delta(*nh, 1);
                self.vnis.insert(vni.0, Some(*nh));
            }
            Update::DelVni(vni) => {
                let Some(o) = self.vni(vni.0) else {
                    return Err(FibError::NoVni(*vni));
                };
                self.delta(o, -1);
                self.vnis.insert(vni.0, None);
            }
        }
        Ok(())
    }

    /// Who uses next-hop `id`, as a human-readable list (at most 8 named).
    fn users_of(&self, id: NhId, flows: usize) -> String {
        const MAX: usize = 8;
        let mut out: Vec<String> = Vec::new();
        let mut push = |s: String| {
            if out.len() < MAX {
                out.push(s);
            }
        };
        let mut vrf_keys: Vec<&(VrfId, bool)> = self.fib.indexes.keys().collect();
        vrf_keys.sort();
        for &(vrf, v6) in vrf_keys {
            if let Some(idx) = self.fib.indexes.get(&(vrf, v6)) {
                let mut hits: Vec<(u128, u8)> = idx
                    .iter()
                    .filter(|(k, l, t)| t.nh == id && !self.routes.contains_key(&(vrf, v6, *k, *l)))
                    .map(|(k, l, _)| (k, l))
                    .collect();
                hits.sort();
                for (k, l) in hits {
                    if let Some(p) = prefix_of(v6, k, l) {
                        push(format!("route {vrf} {p}"));
                    }
                }
            }
        }
        for (&(vrf, v6, k, l), t) in &self.routes {
            if t.is_some_and(|t| t.nh == id) {
                if let Some(p) = prefix_of(v6, k, l) {
                    push(format!("route {vrf} {p}"));
                }
            }
        }
        for (i, l) in (0..self.fib.cfg.max_labels).filter_map(|i| Some((i, self.label(i)?))) {
            if l.nh == id {
                push(format!("{}", Label(i)));
            }
        }
        let mut vnis: Vec<u32> = self
            .fib
            .cur
            .vnis
            .iter()
            .map(|(v, _)| v)
            .chain(self.vnis.keys().copied())
            .collect();
        vnis.sort_unstable();
        vnis.dedup();
        for v in vnis {
            if self.vni(v) == Some(id) {
                push(format!("{}", Vni(v)));
            }
        }
        for (vrf, vr) in self.fib.cur.vrfs.iter().enumerate() {
            let vrf = VrfId(vrf as u16);
            if let Some(vr) = vr {
                for (mac, e) in vr.bridge.iter() {
                    if e.nh == id && !self.bridge.contains_key(&(vrf, *mac)) {
                        push(format!("bridge {vrf} {mac}"));
                    }
                }
            }
        }
        for (&(vrf, mac), e) in &self.bridge {
            if e.is_some_and(|e| e.nh == id) {
                push(format!("bridge {vrf} {mac}"));
            }
        }
        let mut comps: Vec<NhId> = self
            .fib
            .specs
            .keys()
            .chain(self.nhs.keys())
            .copied()
            .filter(|c| self.nh(*c).is_some_and(|s| s.nh_refs().any(|m| m == id)))
            .collect();
        comps.sort();
        comps.dedup();
        for c in comps {
            push(format!("composite {c}"));
        }
        if flows > 0 {
            push(format!("{flows} flows"));
        }
        out.join(", ")
    }
}

fn list_nhs(s: &BTreeSet<NhId>) -> String {
    s.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::nexthop::{EcmpMember, TunnelSpec, TunnelType};
    use crate::fib::rcu::Publisher;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn p4(a: [u8; 4], len: u8) -> Prefix {
        Prefix::v4(Ipv4Addr::from(a), len).unwrap()
    }

    fn fabric() -> Vif {
        let mut v = Vif::new(
            VifId(0),
            VifKind::Fabric,
            0,
            MacAddr([0, 0, 0, 0, 0, 0xfa]),
            VrfId(0),
        );
        v.ipv4 = vec![Ipv4Addr::new(192, 168, 0, 1)];
        v
    }

    fn pod(id: u16, port: u16, vrf: u16) -> Vif {
        Vif::new(
            VifId(id),
            VifKind::PodVhost,
            port,
            MacAddr([2, 0, 0, 0, 0, id as u8]),
            VrfId(vrf),
        )
    }

    fn tunnel(dst: [u8; 4]) -> NhSpec {
        NhSpec::Tunnel(TunnelSpec {
            ty: TunnelType::Vxlan,
            src: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::from(dst)),
            out_vif: VifId(0),
            dmac: MacAddr([0, 0, 0, 0, 0, 0xee]),
        })
    }

    /// The fabric, pod 1, a tunnel next-hop 12 and pod 1's encap next-hop 13.
    fn base_updates() -> Vec<Update> {
        vec![
            Update::AddVif(fabric()),
            Update::AddVif(pod(1, 1, 1)),
            Update::AddNh(NhId(12), tunnel([192, 168, 0, 2])),
            Update::AddNh(
                NhId(13),
                NhSpec::Encap {
                    vif: VifId(1),
                    dmac: MacAddr([2, 0, 0, 0, 0, 1]),
                },
            ),
        ]
    }

    fn base() -> Fib {
        let mut fib = Fib::new(FibConfig::default());
        fib.apply(&base_updates()).unwrap();
        fib
    }

    fn target(nh: u32, label: Option<u32>) -> RouteTarget {
        RouteTarget {
            nh: NhId(nh),
            label,
        }
    }

    /// Whether two versions hold the same forwarding state, entry by entry.
    fn same_state(a: &FibSnapshot, b: &FibSnapshot) -> bool {
        fn same<T: Clone + PartialEq>(a: &CowVec<T>, b: &CowVec<T>) -> bool {
            a.len() == b.len() && (0..a.len()).all(|i| a.get(i) == b.get(i))
        }
        let vrfs = a.vrfs.len() == b.vrfs.len()
            && a.vrfs.iter().zip(b.vrfs.iter()).all(|(x, y)| match (x, y) {
                (None, None) => true,
                (Some(x), Some(y)) => {
                    x.v4.same_entries(&y.v4) && x.v6.same_entries(&y.v6) && x.bridge == y.bridge
                }
                _ => false,
            });
        vrfs && a.generation == b.generation
            && a.router_mac == b.router_mac
            && a.vifs == b.vifs
            && a.port_vif == b.port_vif
            && a.by_port == b.by_port
            && same(&a.nhs, &b.nhs)
            && same(&a.labels, &b.labels)
            && a.vnis == b.vnis
            && a.node_v4 == b.node_v4
            && a.node_v6 == b.node_v6
            && (a.host_vif, a.agent_vif, a.fabric_vif) == (b.host_vif, b.agent_vif, b.fabric_vif)
    }

    /// Random batches of route, bridge, label, VNI and next-hop updates.
    struct Churn {
        rng: crate::fib::test_rng::Rng,
        routes: Vec<(VrfId, Prefix)>,
        macs: Vec<(VrfId, u8)>,
    }

    impl Churn {
        fn pick(&mut self, n: u64) -> u64 {
            self.rng.next() % n
        }

        fn prefix(&mut self) -> Prefix {
            let r = self.rng.next();
            if self.pick(4) == 0 {
                let len = [48u8, 56, 64, 128][(r % 4) as usize];
                // Few distinct /48 sites, so prefixes nest and repeat.
                let a = (0x2001_0db8u128 << 96)
                    | (u128::from((r >> 8) as u16 % 8) << 80)
                    | u128::from(r >> 24);
                Prefix::v6(Ipv6Addr::from(a & crate::fib::mask(len, 128)), len).unwrap()
            } else {
                let len = [8u8, 16, 20, 24, 24, 26, 30, 32, 32][(r % 9) as usize];
                // A few /16s, so routes nest, share groups and fold back.
                let a =
                    0x0a00_0000u32 | (((r >> 8) as u32 % 4) << 16) | ((r >> 32) as u32 & 0xffff);
                Prefix::v4(Ipv4Addr::from(a & crate::fib::mask(len, 32) as u32), len).unwrap()
            }
        }

        fn batch(&mut self) -> Vec<Update> {
            let mut out = Vec::new();
            for _ in 0..1 + self.pick(40) {
                let vrf = VrfId(1 + self.pick(3) as u16);
                let u = match self.pick(20) {
                    0..=9 => {
                        let prefix = self.prefix();
                        let nh = [12, 13, 14][self.pick(3) as usize];
                        let label = (self.pick(2) == 0).then(|| self.pick(1000) as u32);
                        if !self.routes.contains(&(vrf, prefix)) {
                            self.routes.push((vrf, prefix));
                        }
                        Update::AddRoute {
                            vrf,
                            prefix,
                            target: target(nh, label),
                        }
                    }
                    10..=15 if !self.routes.is_empty() => {
                        let i = self.pick(self.routes.len() as u64) as usize;
                        let (vrf, prefix) = self.routes.swap_remove(i);
                        Update::DelRoute { vrf, prefix }
                    }
                    16 => {
                        let m = self.pick(8) as u8;
                        if !self.macs.contains(&(vrf, m)) {
                            self.macs.push((vrf, m));
                        }
                        Update::AddBridge {
                            vrf,
                            mac: MacAddr([2, 0, 0, 0, 1, m]),
                            entry: BridgeEntry {
                                nh: NhId(12),
                                label: Some(7),
                            },
                        }
                    }
                    17 if !self.macs.is_empty() => {
                        let i = self.pick(self.macs.len() as u64) as usize;
                        let (vrf, m) = self.macs.swap_remove(i);
                        Update::DelBridge {
                            vrf,
                            mac: MacAddr([2, 0, 0, 0, 1, m]),
                        }
                    }
                    18 => Update::AddLabel(
                        Label(100 + self.pick(50) as u32),
                        LabelEntry {
                            nh: NhId(13),
                            payload: Payload::Ip,
                        },
                    ),
                    _ => Update::AddNh(NhId(14), tunnel([192, 168, 0, 3 + self.pick(50) as u8])),
                };
                out.push(u);
            }
            out
        }
    }

    #[test]
    fn alternating_versions_hold_what_copying_builds() {
        let cfg = FibConfig {
            max_nhs: 4096,
            max_labels: 4096,
            max_vrfs: 8,
            ..FibConfig::default()
        };
        let mut setup = base_updates();
        setup.push(Update::AddNh(NhId(14), tunnel([192, 168, 0, 3])));
        // `alt` drops or holds its versions at random, so that its batches edit the
        // previous version when it is free and a copy when it is held; `copy` holds
        // every version, so each of its batches edits a copy of the current one.
        let mut alt = Fib::new(cfg.clone());
        let mut copy = Fib::new(cfg);
        let mut kept = vec![copy.snapshot(), copy.apply(&setup).unwrap()];
        let mut held = Some(alt.apply(&setup).unwrap());
        let mut churn = Churn {
            rng: crate::fib::test_rng::Rng(0x05ee_df1b),
            routes: Vec::new(),
            macs: Vec::new(),
        };
        for round in 0..400 {
            let batch = churn.batch();
            let a = alt.apply(&batch).unwrap();
            let c = copy.apply(&batch).unwrap();
            assert!(same_state(&a, &c), "round {round}: {batch:?}");
            kept.push(c);
            if churn.pick(3) == 0 {
                held = Some(a);
            } else if churn.pick(2) == 0 {
                held = None;
            }
        }
        drop(held);
        let reused = alt.versions_reused();
        assert!(
            reused > 150 && reused < 380,
            "{reused} of 400 batches reused a version"
        );
        assert_eq!(copy.versions_reused(), 0);
        assert_eq!(Lpm::OP_BYTES, 24);
        // A held version never changes: the first ones still have no routes.
        assert!(kept[0].vif(VifId(0)).is_none());
        assert!(kept[1].vrf(VrfId(1)).is_none());
    }

    #[test]
    fn a_long_journal_lets_the_previous_version_go() {
        let mut fib = base();
        fib.max_journal_ops = 8;
        let route = |a: [u8; 4], len: u8, nh: u32| Update::AddRoute {
            vrf: VrfId(1),
            prefix: p4(a, len),
            target: target(nh, None),
        };
        // 64 host routes in 64 /24s: a new group each, hundreds of writes.
        let big: Vec<Update> = (0..64).map(|i| route([10, 9, i, 1], 32, 12)).collect();
        fib.apply(&big).unwrap();
        let reused = fib.versions_reused();
        // Nothing holds the version before, but it was let go with the journal.
        fib.apply(&[route([10, 7, 0, 0], 24, 13)]).unwrap();
        assert_eq!(fib.versions_reused(), reused);
        // A short journal keeps it again.
        let s = fib.apply(&[route([10, 7, 1, 0], 24, 13)]).unwrap();
        assert_eq!(fib.versions_reused(), reused + 1);
        for i in 0..64 {
            let ip = IpAddr::V4(Ipv4Addr::new(10, 9, i, 1));
            assert_eq!(s.route(VrfId(1), ip).map(|t| t.nh), Some(NhId(12)));
        }
        for ip in [[10, 7, 0, 9], [10, 7, 1, 9]] {
            let ip = IpAddr::V4(Ipv4Addr::from(ip));
            assert_eq!(s.route(VrfId(1), ip).map(|t| t.nh), Some(NhId(13)));
        }
    }

    #[test]
    fn tables_and_lookups() {
        let mut fib = base();
        let s = fib
            .apply(&[
                Update::AddRoute {
                    vrf: VrfId(1),
                    prefix: p4([10, 0, 0, 0], 24),
                    target: target(12, Some(5000)),
                },
                Update::AddRoute {
                    vrf: VrfId(1),
                    prefix: Prefix::v6("fd00::".parse().unwrap(), 64).unwrap(),
                    target: target(13, None),
                },
                Update::AddBridge {
                    vrf: VrfId(1),
                    mac: MacAddr([2, 0, 0, 0, 0, 9]),
                    entry: BridgeEntry {
                        nh: NhId(12),
                        label: Some(5000),
                    },
                },
                Update::AddLabel(
                    Label(17),
                    LabelEntry {
                        nh: NhId(13),
                        payload: Payload::Ip,
                    },
                ),
                Update::AddVni(Vni(5000), NhId(13)),
            ])
            .unwrap();
        assert_eq!(s.generation(), 2);
        assert_eq!(
            s.route_v4(VrfId(1), Ipv4Addr::new(10, 0, 0, 7)),
            Some(target(12, Some(5000)))
        );
        assert_eq!(s.route_v4(VrfId(2), Ipv4Addr::new(10, 0, 0, 7)), None);
        assert_eq!(
            s.route_v6(VrfId(1), "fd00::5".parse().unwrap()),
            Some(target(13, None))
        );
        assert_eq!(
            s.bridge(VrfId(1), MacAddr([2, 0, 0, 0, 0, 9]))
                .map(|b| b.nh),
            Some(NhId(12))
        );
        assert_eq!(s.label(Label(17)).map(|l| l.nh), Some(NhId(13)));
        assert_eq!(s.vni(Vni(5000)), Some(NhId(13)));
        assert_eq!(s.vif_by_port(1).map(|v| v.id), Some(VifId(1)));
        assert!(s.is_node_v4(Ipv4Addr::new(192, 168, 0, 1)));
        assert!(matches!(
            s.nh(NhId(12)).map(|n| &n.kind),
            Some(NhKind::Tunnel(_))
        ));
        assert_eq!(
            fib.routes(VrfId(1), false),
            vec![(p4([10, 0, 0, 0], 24), target(12, Some(5000)))]
        );
    }

    #[test]
    fn in_use_next_hop_names_its_users() {
        let mut fib = base();
        fib.apply(&[
            Update::AddRoute {
                vrf: VrfId(1),
                prefix: p4([10, 0, 0, 0], 24),
                target: target(12, None),
            },
            Update::AddLabel(
                Label(17),
                LabelEntry {
                    nh: NhId(12),
                    payload: Payload::Ip,
                },
            ),
            Update::AddVni(Vni(5000), NhId(12)),
            Update::AddVni(Vni(1 << 20), NhId(12)),
        ])
        .unwrap();
        let e = fib.apply(&[Update::DelNh(NhId(12))]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "next-hop 12 is used by route vrf 1 10.0.0.0/24, label 17, vni 5000, vni 1048576"
        );
        // Removing the users first in the same batch makes the delete valid.
        fib.apply(&[
            Update::DelRoute {
                vrf: VrfId(1),
                prefix: p4([10, 0, 0, 0], 24),
            },
            Update::DelLabel(Label(17)),
            Update::DelVni(Vni(5000)),
            Update::DelVni(Vni(1 << 20)),
            Update::DelNh(NhId(12)),
        ])
        .unwrap();
        assert_eq!(fib.current().vni(Vni(5000)), None);
        assert!(fib.current().nh(NhId(12)).is_none());
        // Flows count as users too.
        struct Flows;
        impl FlowNhUsers for Flows {
            fn flows_using(&self, nh: NhId) -> usize {
                usize::from(nh == NhId(13)) * 3
            }
        }
        let e = fib
            .apply_with_flows(&[Update::DelNh(NhId(13))], &Flows)
            .unwrap_err();
        assert_eq!(e.to_string(), "next-hop 13 is used by 3 flows");
        let e = fib.apply(&[Update::DelVif(VifId(1))]).unwrap_err();
        assert_eq!(e.to_string(), "vif 1 is used by next-hop 13");
        assert_eq!(
            fib.apply(&[Update::DelNh(NhId(0))]).unwrap_err(),
            FibError::ReservedNh
        );
    }

    /// Batches of route adds only are validated without looking the prefixes up;
    /// replacing routes that way still moves the next-hop references, and a bad
    /// add still fails the whole batch.
    #[test]
    fn adds_only_batches_keep_references_exact() {
        let mut fib = base();
        let adds = |nh: u32| -> Vec<Update> {
            (0..50u8)
                .map(|i| Update::AddRoute {
                    vrf: VrfId(1),
                    prefix: p4([10, 1, i, 0], 24),
                    target: target(nh, None),
                })
                .collect()
        };
        assert!(fib.adds_need_no_lookup(&adds(12)));
        fib.apply(&adds(12)).unwrap();
        // The same prefixes again, now through 13: 12 loses every user.
        fib.apply(&adds(13)).unwrap();
        fib.apply(&[Update::DelNh(NhId(12))]).unwrap();
        let e = fib.apply(&[Update::DelNh(NhId(13))]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("next-hop 13 is used by route vrf 1 10.1."),
            "{e}"
        );
        // A missing next-hop anywhere in an adds-only batch changes nothing.
        let before = fib.snapshot();
        let mut bad = adds(13);
        bad.push(Update::AddRoute {
            vrf: VrfId(1),
            prefix: p4([10, 2, 0, 0], 16),
            target: target(99, None),
        });
        let e = fib.apply(&bad).unwrap_err();
        assert_eq!(e.to_string(), "nh: next-hop 99 does not exist");
        assert_eq!(fib.snapshot().generation(), before.generation());
        assert_eq!(
            fib.current().route_v4(VrfId(1), Ipv4Addr::new(10, 2, 0, 1)),
            None
        );
        // An add and the delete of its next-hop in one batch: refused.
        let mut racing = adds(13);
        racing.push(Update::DelNh(NhId(13)));
        assert!(!fib.adds_need_no_lookup(&racing));
        assert!(matches!(
            fib.apply(&racing).unwrap_err(),
            FibError::NhInUse { nh: NhId(13), .. }
        ));
        // With a delete in the batch, every add is looked up.
        let mut mixed = adds(13);
        mixed.push(Update::DelRoute {
            vrf: VrfId(1),
            prefix: p4([10, 1, 0, 0], 24),
        });
        assert!(!fib.adds_need_no_lookup(&mixed));
        fib.apply(&mixed).unwrap();
        assert_eq!(
            fib.current().route_v4(VrfId(1), Ipv4Addr::new(10, 1, 0, 1)),
            None
        );
        assert_eq!(
            fib.current().route_v4(VrfId(1), Ipv4Addr::new(10, 1, 1, 1)),
            Some(target(13, None))
        );
    }

    #[test]
    fn batch_is_all_or_nothing() {
        let mut fib = base();
        let before = fib.snapshot();
        let e = fib
            .apply(&[
                Update::AddRoute {
                    vrf: VrfId(1),
                    prefix: p4([10, 0, 0, 0], 24),
                    target: target(12, None),
                },
                Update::AddNh(
                    NhId(20),
                    NhSpec::Ecmp(vec![EcmpMember {
                        nh: NhId(12),
                        label: None,
                    }]),
                ),
                Update::AddRoute {
                    vrf: VrfId(1),
                    prefix: p4([10, 0, 1, 0], 24),
                    target: target(99, None),
                },
            ])
            .unwrap_err();
        assert_eq!(e.to_string(), "nh: next-hop 99 does not exist");
        let now = fib.snapshot();
        assert_eq!(now.generation(), before.generation());
        assert_eq!(now.route_v4(VrfId(1), Ipv4Addr::new(10, 0, 0, 1)), None);
        assert!(now.nh(NhId(20)).is_none());
        // Nothing of the failed batch lingers in the bookkeeping either.
        fib.apply(&[Update::DelNh(NhId(12))]).unwrap();
        let e = fib.apply(&[Update::AddVif(pod(4096, 2, 1))]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "vif 4096 is out of range (the table holds 4096)"
        );
        let e = fib.apply(&[Update::AddVif(pod(2, 1, 1))]).unwrap_err();
        assert_eq!(e.to_string(), "port: port 1 is already bound to vif 1");
    }

    #[test]
    fn vrfs_up_to_4096_and_old_versions_stay() {
        let mut fib = base();
        let old = fib.snapshot();
        fib.apply(&[Update::AddRoute {
            vrf: VrfId(4095),
            prefix: p4([0, 0, 0, 0], 0),
            target: target(13, None),
        }])
        .unwrap();
        let e = fib
            .apply(&[Update::AddRoute {
                vrf: VrfId(4096),
                prefix: p4([0, 0, 0, 0], 0),
                target: target(13, None),
            }])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "vrf 4096 is out of range (the table holds 4096)"
        );
        let new = fib.snapshot();
        assert_eq!(
            new.route_v4(VrfId(4095), Ipv4Addr::new(8, 8, 8, 8))
                .map(|t| t.nh),
            Some(NhId(13))
        );
        assert_eq!(old.route_v4(VrfId(4095), Ipv4Addr::new(8, 8, 8, 8)), None);
    }

    #[test]
    fn interface_change_reresolves_next_hops() {
        let mut fib = base();
        let mut f = fabric();
        f.mac = MacAddr([0, 0, 0, 0, 0, 0xfb]);
        f.port = 7;
        let s = fib.apply(&[Update::AddVif(f)]).unwrap();
        let Some(NhKind::Tunnel(t)) = s.nh(NhId(12)).map(|n| &n.kind) else {
            panic!("not a tunnel")
        };
        assert_eq!(&t.l2.header()[6..12], &[0, 0, 0, 0, 0, 0xfb]);
        assert_eq!(t.port, 7);
        assert!(s.vif_by_port(0).is_none());
        assert_eq!(
            s.vif_by_port(7).map(|v| (v.id, v.mac)),
            Some((VifId(0), MacAddr([0, 0, 0, 0, 0, 0xfb])))
        );
        // Changed in place (same port), then deleted: the port map follows.
        let mut p = pod(1, 1, 1);
        p.mtu = 9000;
        let s = fib.apply(&[Update::AddVif(p)]).unwrap();
        assert_eq!(s.vif_by_port(1).map(|v| v.mtu), Some(9000));
        let s = fib
            .apply(&[Update::DelNh(NhId(13)), Update::DelVif(VifId(1))])
            .unwrap();
        assert!(s.vif_by_port(1).is_none());
        assert_eq!(s.vif_by_port(7).map(|v| v.id), Some(VifId(0)));
    }

    #[test]
    fn stress_workers_never_see_a_mixed_batch() {
        // Every batch points all N routes at the same label (the batch number);
        // workers check that one burst never sees two labels.
        const N: u32 = 64;
        let mut fib = base();
        let batch = |i: u32| -> Vec<Update> {
            (0..N)
                .map(|r| Update::AddRoute {
                    vrf: VrfId(1),
                    prefix: p4([10, (r >> 8) as u8, r as u8, 0], 24),
                    target: target(if i % 2 == 0 { 12 } else { 13 }, Some(i)),
                })
                .collect()
        };
        let mut publisher = Publisher::new(fib.apply(&batch(0)).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let mut r = publisher.reader();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut bursts = 0u64;
                    let mut last = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let s = r.load();
                        let first = s.route_v4(VrfId(1), Ipv4Addr::new(10, 0, 0, 1)).unwrap();
                        for q in 0..N {
                            let t = s
                                .route_v4(VrfId(1), Ipv4Addr::new(10, (q >> 8) as u8, q as u8, 9))
                                .unwrap();
                            assert_eq!(t, first, "mixed state within one burst");
                        }
                        let label = first.label.unwrap();
                        assert_eq!(first.nh, NhId(if label % 2 == 0 { 12 } else { 13 }));
                        assert!(label >= last);
                        last = label;
                        bursts += 1;
                    }
                    bursts
                })
            })
            .collect();
        for i in 1..300 {
            publisher.publish(fib.apply(&batch(i)).unwrap());
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            assert!(w.join().unwrap() > 0);
        }
        assert_eq!(publisher.reclaim(), 0);
    }
}
