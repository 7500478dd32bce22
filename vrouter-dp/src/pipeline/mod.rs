//! What happens to one received burst.
//!
//! [`Pipeline::process`] takes up to [`BURST`] buffers and, per packet:
//! classify by input interface -> decapsulate when from the fabric (VXLAN VNI or
//! MPLS label selects the next-hop and VRF) -> anti-spoofing, ARP / neighbour proxy,
//! traps to the agent -> route (IPv4/IPv6 LPM) or bridge (MAC) lookup in the VRF ->
//! next-hop (ECMP member by flow hash, flood replication) -> flow lookup and, on a
//! miss under policy, rule evaluation and learning of the flow and its reverse ->
//! rewrite (TTL / hop-limit decrement with incremental checksum, L2 rewrite, tunnel
//! encapsulation) -> per-output-port TX batches in [`Output`].
//!
//! Nothing on this path allocates, locks or panics: scratch space is preallocated per
//! worker, batches are fixed-capacity arrays, and every failure is a [`DropReason`]
//! counted in the worker's [`Counters`]. Dropped buffers are handed back in
//! [`Output::drops`] so that the caller frees them in bulk. Replies the data plane
//! generates itself (ARP proxy, neighbour advertisements, ICMP errors) are built in
//! place in the received buffer and sent back out the input port.
//!
//! A fabric interface on a VLAN ([`Vif::vlan`]): a frame received there must carry
//! that 802.1Q VLAN id (TPID 0x8100, any priority); the tag is removed before
//! anything else looks at the frame, so decapsulation, ARP traps and frames for the
//! host stack all see it untagged. Untagged frames and frames of another VLAN are
//! dropped as [`DropReason::VlanMismatch`]. On an untagged fabric (no VLAN) untagged
//! frames are handled as ever, priority-tagged frames (VLAN id 0) are untagged and
//! accepted, and frames of any VLAN are dropped the same way (TF's vRouter drops
//! frames of VLANs it does not know). Every frame sent on a VLAN fabric carries the
//! tag with priority 0: tunnel next-hops have it in their prebuilt outer headers
//! (unicast and flood copies alike), and [`Pipeline`] pushes it on any other frame
//! queued there untagged (from the host interface, or a local next-hop on the
//! fabric).

pub mod reply;
pub mod stats;

pub use stats::{Counters, DropReason, VifCounters};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arrayvec::ArrayVec;
use flow_table::{FlowAction, FlowEntry, FlowTable, FlowValue, Insert, InsertError, NexthopId};

use crate::fib::{
    ecmp_pick, FibSnapshot, Label, MacAddr, NextHop, NhId, NhKind, Payload, PolicyAction, TunnelNh,
    TunnelType, Vif, VifId, VifKind, Vni, VrfId,
};
use crate::packet::{
    checksum, extract_ethernet, extract_ethernet_fast, extract_ethernet_general, extract_ip,
    flow_hash, Decapsulator, EncapMeta, Error as PktError, FlowInfo, FlowKey, HeapBuf, PacketBuf,
    TunnelId,
};
use reply::Trap;

/// Largest burst processed by one call.
pub const BURST: usize = 32;
/// Distinct output ports per burst.
pub const MAX_TX_PORTS: usize = 16;
/// Packets per output port per burst (room for flood copies).
pub const TX_CAP: usize = 2 * BURST;
/// Dropped buffers per burst.
pub const DROP_CAP: usize = 4 * BURST;
/// Flows in the table from which fabric frames join the batched flow lookup. Below
/// it the table's lines stay in cache, a single lookup costs no memory stall, and
/// the guess at the tunnel headers would be work done twice (measured: 1 flow
/// about 100 cycles per packet more with it, 100k flows about 300 fewer).
pub const GUESS_MIN_FLOWS: usize = 16 * 1024;

/// Bursts between two reads of the flow table's size for [`GUESS_MIN_FLOWS`]
/// (a threshold for a cache heuristic: a table that just crossed it is seen at
/// most this many bursts late).
const GUESS_RECHECK_BURSTS: u32 = 64;

const ETH: usize = 14;
const ET_IPV4: u16 = 0x0800;
const ET_IPV6: u16 = 0x86dd;
const ET_ARP: u16 = 0x0806;
const ET_VLAN: u16 = 0x8100;
const ET_QINQ: u16 = 0x88a8;
const ET_QINQ_OLD: u16 = 0x9100;
/// Length of an 802.1Q tag.
const VLAN_TAG: usize = 4;

/// A source of buffer copies for flooding. The DPDK side copies from a mempool;
/// [`HeapPool`] clones heap buffers.
pub trait BufPool<B> {
    /// A copy of `b` (data and metadata), or `None` when the pool is empty.
    fn alloc_copy(&mut self, b: &B) -> Option<B>;
}

/// A [`BufPool`] of heap buffers (tests and benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct HeapPool;

impl BufPool<HeapBuf> for HeapPool {
    fn alloc_copy(&mut self, b: &HeapBuf) -> Option<HeapBuf> {
        Some(b.clone())
    }
}

/// Packets queued for one output port.
#[derive(Debug)]
pub struct TxBatch<B> {
    /// The port.
    pub port: u16,
    /// The packets, in order.
    pub bufs: ArrayVec<B, TX_CAP>,
}

/// What one burst produced: per-port TX batches and the buffers to free.
#[derive(Debug)]
pub struct Output<B> {
    /// One batch per output port used.
    pub tx: ArrayVec<TxBatch<B>, MAX_TX_PORTS>,
    /// Dropped buffers, for the caller to free.
    pub drops: ArrayVec<B, DROP_CAP>,
}

impl<B> Default for Output<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> Output<B> {
    /// Empty output.
    pub fn new() -> Self {
        Self {
            tx: ArrayVec::new(),
            drops: ArrayVec::new(),
        }
    }

    /// Forget everything (dropping any buffers still held).
    pub fn clear(&mut self) {
        self.tx.clear();
        self.drops.clear();
    }

    /// The batch of one port, if any.
    pub fn port(&self, port: u16) -> Option<&TxBatch<B>> {
        self.tx.iter().find(|t| t.port == port)
    }

    #[inline]
    fn push_tx(&mut self, port: u16, b: B) -> Result<(), B> {
        if let Some(t) = self.tx.iter_mut().find(|t| t.port == port) {
            return t.bufs.try_push(b).map_err(|e| e.element());
        }
        if self.tx.is_full() {
            return Err(b);
        }
        let mut t = TxBatch {
            port,
            bufs: ArrayVec::new(),
        };
        // Neither push can fail: the batch is new and `tx` has room.
        let _ = t.bufs.try_push(b);
        let _ = self.tx.try_push(t);
        Ok(())
    }
}

/// A routed packet's flow hash (ECMP member, outer entropy), or how to get it
/// when a next-hop needs it: most routes lead to a plain next-hop that needs
/// none.
#[derive(Debug, Clone, Copy)]
enum RouteHash {
    /// Known: the NIC's RSS hash, or the flow table's hash computed ahead.
    Known(u32),
    /// The NIC's RSS hash, else the hash of the packet's flow key with its
    /// VRF field set to this one ([`flow_hash`]).
    OfKey(crate::packet::VrfId),
}

impl RouteHash {
    #[inline]
    fn get<B: PacketBuf>(self, b: &B, info: &FlowInfo) -> u32 {
        match self {
            RouteHash::Known(h) => h,
            RouteHash::OfKey(vrf) => flow_hash(b, &FlowKey { vrf, ..info.key }),
        }
    }
}

/// What one packet's processing decided.
enum Act {
    Tx(u16),
    Drop(DropReason),
}

use Act::{Drop as D, Tx};

/// Per-call inputs shared by the whole burst.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The forwarding state, loaded once for the burst.
    pub fib: &'a FibSnapshot,
    /// The flow table.
    pub flows: &'a FlowTable,
    /// Time for flow counters (the caller's clock, e.g. TSC or seconds).
    pub now: u64,
}

/// One worker's pipeline state: counters and scratch.
#[derive(Debug)]
pub struct Pipeline {
    counters: Counters,
    vifs: Vec<VifCounters>,
    ip_id: u16,
    /// What [`Pipeline::prefetch_flows`] parsed and looked up in advance for the
    /// packets of the burst from pods under policy (and, from a large flow table
    /// on, for the fabric's tunnel frames).
    ahead: Ahead,
    /// Burst slot of the packet being processed (`BURST` outside a burst).
    cur: usize,
    /// Flows in the table from which fabric frames join the batched lookup.
    guess_min_flows: usize,
    /// Whether the table held `guess_min_flows` flows when last read, and the
    /// bursts left until it is read again ([`GUESS_RECHECK_BURSTS`]).
    guess_fabric: bool,
    guess_recheck: u32,
    /// Packets and bytes of consecutive hits on one flow not yet added to its
    /// counters: one counter update per run of packets instead of one per
    /// packet (written at the latest at the end of the burst).
    touch: Option<(flow_table::FlowId, u64, u64)>,
    /// The current packet's headers are the guess's own parse
    /// ([`Ahead::guessed_inner`]), so its key needs no comparison.
    guess_exact: bool,
    /// The last flow [`Pipeline::flow_miss`] found in this burst: a run of
    /// packets of one flow looked up one by one (fabric frames below
    /// [`GUESS_MIN_FLOWS`]) does one table lookup, as a run looked up ahead
    /// does. Cleared at the end of every burst, so it is never older than the
    /// burst's lookups done ahead.
    last_flow: Option<(flow_table::FlowKey, FlowEntry)>,
}

/// The parse and flow lookup done ahead for a whole burst, in arrays indexed by
/// burst slot (`vrf`, `info`, `slot`) and by lookup (`keys`, `hashes`, `found`:
/// only the packets parsed ahead, dense, as the batch lookup takes them; a run of
/// consecutive packets of one flow shares one key and one lookup).
#[derive(Debug)]
struct Ahead {
    /// Bit `i`: the packet in burst slot `i` was parsed ahead.
    parsed: u32,
    /// Bit `i`: slot `i` was parsed ahead by a guess at its tunnel's common case
    /// (fabric frames); its key is used only where it equals the key the
    /// per-packet path builds.
    guessed: u32,
    /// The VRF its key was built in.
    vrf: [VrfId; BURST],
    /// Its parsed headers.
    info: [FlowInfo; BURST],
    /// Index of its key and lookup result in `keys` / `found`.
    slot: [u8; BURST],
    /// The flow-table keys looked up.
    keys: [flow_table::FlowKey; BURST],
    /// The table's hashes of `keys`.
    hashes: [flow_table::FlowHash; BURST],
    /// Their lookup results (a miss is looked up again when needed).
    found: [Option<FlowEntry>; BURST],
    /// For a miss: the table's hash of the reversed key (its bucket was
    /// prefetched; learning inserts the reverse flow with it).
    rhashes: [flow_table::FlowHash; BURST],
    /// For a guessed slot: where the inner frame the guess parsed starts (its
    /// address) and its length.
    inner: [(usize, usize); BURST],
}

const _: () = assert!(BURST <= u32::BITS as usize);

impl Ahead {
    fn new() -> Self {
        Self {
            parsed: 0,
            guessed: 0,
            vrf: [VrfId::default(); BURST],
            info: [FlowInfo::default(); BURST],
            slot: [0; BURST],
            keys: [flow_table::FlowKey::from_bytes(
                flow_table::VrfId::default(),
                false,
                [0; 16],
                [0; 16],
                0,
                0,
                0,
            ); BURST],
            hashes: [flow_table::FlowHash::default(); BURST],
            rhashes: [flow_table::FlowHash::default(); BURST],
            found: [None; BURST],
            inner: [(0, 0); BURST],
        }
    }

    /// Records the headers of burst slot `i`, parsed in `vrf`, as the `n`th key
    /// of the batch lookup, and prefetches its bucket: the cache miss overlaps
    /// the parsing of the rest of the burst. A key equal to the `n-1`th is not
    /// added again: the slot takes that lookup. `guess` is the slot's bit when its
    /// headers are a guess ([`fabric_guess`]), else 0.
    #[inline(always)]
    fn record(
        &mut self,
        flows: &FlowTable,
        n: &mut usize,
        i: usize,
        vrf: VrfId,
        info: &FlowInfo,
        guess: u32,
    ) {
        let (Some(v), Some(f), Some(s)) = (
            self.vrf.get_mut(i),
            self.info.get_mut(i),
            self.slot.get_mut(i),
        ) else {
            return;
        };
        let Some(key) = ft_key(vrf, info) else {
            return;
        };
        // A packet of the same flow as the previous key shares its lookup:
        // one hash and one probe per run of packets of a flow.
        let slot = match n.checked_sub(1) {
            Some(last) if self.keys.get(last) == Some(&key) => last,
            _ => {
                let (Some(k), Some(h)) = (self.keys.get_mut(*n), self.hashes.get_mut(*n)) else {
                    return;
                };
                *h = flows.hash(&key);
                flows.prefetch(*h);
                *k = key;
                *n += 1;
                *n - 1
            }
        };
        *v = vrf;
        *f = *info;
        *s = slot as u8;
        self.parsed |= 1 << i;
        self.guessed |= guess;
    }

    /// [`Self::record`] of the Ethernet `frame`'s headers. The common case and the
    /// general parser record their results separately: joined, the headers would
    /// pass through memory and be read back wider than they were written (a failed
    /// store-to-load forward per packet).
    #[inline(always)]
    fn record_ethernet(
        &mut self,
        flows: &FlowTable,
        n: &mut usize,
        i: usize,
        vrf: VrfId,
        frame: &[u8],
        guess: u32,
    ) {
        match extract_ethernet_fast(pkt_vrf(vrf), frame) {
            Some(info) => self.record(flows, n, i, vrf, &info, guess),
            None => {
                if let Ok(info) = extract_ethernet_general(pkt_vrf(vrf), frame) {
                    self.record(flows, n, i, vrf, &info, guess);
                }
            }
        }
    }

    /// The inner headers a guess parsed for burst slot `i`, if its inner frame
    /// is exactly `frame` (same address and length): the same bytes, since
    /// decapsulation only moves the start and end of the packet, so the parse
    /// is the one of the frame now.
    #[inline]
    fn guessed_inner(&self, i: usize, frame: &[u8]) -> Option<FlowInfo> {
        if i >= BURST || self.parsed & self.guessed & (1 << i) == 0 {
            return None;
        }
        if *self.inner.get(i)? != (frame.as_ptr() as usize, frame.len()) {
            return None;
        }
        self.info.get(i).copied()
    }

    /// Burst slot `i`'s VRF, headers and key slot, if it was parsed ahead.
    #[inline]
    fn get(&self, i: usize) -> Option<(VrfId, &FlowInfo, usize)> {
        if i >= BURST || self.parsed & (1 << i) == 0 {
            return None;
        }
        Some((
            *self.vrf.get(i)?,
            self.info.get(i)?,
            usize::from(*self.slot.get(i)?),
        ))
    }
}

impl Pipeline {
    /// A pipeline with counters for `max_vifs` interfaces.
    pub fn new(max_vifs: usize) -> Self {
        Self {
            counters: Counters::default(),
            vifs: vec![VifCounters::default(); max_vifs],
            ip_id: 0,
            ahead: Ahead::new(),
            cur: BURST,
            guess_min_flows: GUESS_MIN_FLOWS,
            guess_fabric: false,
            guess_recheck: 0,
            touch: None,
            guess_exact: false,
            last_flow: None,
        }
    }

    /// Sets the number of flows in the table from which fabric frames join the
    /// burst's batched flow lookup (default [`GUESS_MIN_FLOWS`]; 0: always,
    /// `usize::MAX`: never).
    pub fn with_guess_min_flows(mut self, flows: usize) -> Self {
        self.guess_min_flows = flows;
        self.guess_recheck = 0;
        self
    }

    /// The worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The worker's counters of one interface.
    pub fn vif_counters(&self, vif: VifId) -> VifCounters {
        self.vifs
            .get(usize::from(vif.0))
            .copied()
            .unwrap_or_default()
    }

    /// Process one burst into `out` (which the caller has emptied). Not inlined
    /// (one call per burst), so that profilers see the pipeline as one function.
    #[inline(never)]
    pub fn process<B: PacketBuf, P: BufPool<B>>(
        &mut self,
        env: &Env<'_>,
        pool: &mut P,
        burst: impl IntoIterator<Item = B>,
        out: &mut Output<B>,
    ) {
        let mut it = burst.into_iter();
        loop {
            let mut chunk: ArrayVec<B, BURST> = ArrayVec::new();
            chunk.extend(it.by_ref().take(BURST));
            if chunk.is_empty() {
                return;
            }
            self.prefetch_flows(env, &chunk);
            for (i, mut b) in chunk.into_iter().enumerate() {
                self.counters.rx += 1;
                self.cur = i;
                self.guess_exact = false;
                let in_port = b.port();
                let act = self.one(env, pool, &mut b, out);
                match act {
                    Tx(port) => self.emit(env, port, b, out),
                    D(r) => {
                        let in_vif = env.fib.vif_by_port(in_port).map(|v| v.id);
                        if let Some(c) = in_vif.and_then(|v| self.vifs.get_mut(usize::from(v.0))) {
                            c.drops += 1;
                        }
                        self.drop_buf(r, b, out);
                    }
                }
            }
            self.cur = BURST;
            self.last_flow = None;
            self.flush_touch(env);
        }
    }

    /// Adds the pending run of flow hits to the flow's counters.
    #[inline]
    fn flush_touch(&mut self, env: &Env<'_>) {
        if let Some((id, packets, bytes)) = self.touch.take() {
            env.flows.touch_n(id, env.now, packets, bytes);
        }
    }

    /// Look up, as one batch, the flows of the packets from pods under policy and
    /// (when the flow table is large, see [`GUESS_MIN_FLOWS`]) of the tunnel frames
    /// from the fabric whose common case [`fabric_guess`] recognises, so that their
    /// cache misses overlap; the per-packet path then uses the result.
    fn prefetch_flows<B: PacketBuf>(&mut self, env: &Env<'_>, chunk: &[B]) {
        // The table's size is a sum over its per-thread stripes, lines other
        // workers write: read every GUESS_RECHECK_BURSTS bursts, not per burst.
        if self.guess_recheck == 0 {
            self.guess_fabric = env.flows.len() >= self.guess_min_flows;
            self.guess_recheck = GUESS_RECHECK_BURSTS;
        }
        self.guess_recheck -= 1;
        let guess_fabric = self.guess_fabric;
        let a = &mut self.ahead;
        a.parsed = 0;
        a.guessed = 0;
        let mut n = 0usize;
        for (i, b) in chunk.iter().enumerate().take(BURST) {
            let Some(vif) = env.fib.vif_by_port(b.port()) else {
                continue;
            };
            match vif.kind {
                VifKind::PodVhost | VifKind::PodTap if vif.policy => {
                    a.record_ethernet(env.flows, &mut n, i, vif.vrf, b.data(), 0);
                }
                VifKind::Fabric if guess_fabric => {
                    let d = b.data();
                    let Some(g) = fabric_guess(env.fib, vif, d) else {
                        continue;
                    };
                    let Some(inner) = d.get(g.inner..) else {
                        continue;
                    };
                    // Only an Ethernet payload's parse is taken again after the
                    // decapsulation ([`Ahead::guessed_inner`]).
                    if let Some(at) = a.inner.get_mut(i) {
                        *at = if g.l2_payload {
                            (inner.as_ptr() as usize, inner.len())
                        } else {
                            (0, 0)
                        };
                    }
                    if g.l2_payload {
                        a.record_ethernet(env.flows, &mut n, i, g.vrf, inner, 1 << i);
                    } else if let Ok(info) = extract_ip(pkt_vrf(g.vrf), inner) {
                        a.record(env.flows, &mut n, i, g.vrf, &info, 1 << i);
                    }
                }
                _ => {}
            }
        }
        if let (Some(keys), Some(hashes), Some(found), Some(rhashes)) = (
            a.keys.get(..n),
            a.hashes.get(..n),
            a.found.get_mut(..n),
            a.rhashes.get_mut(..n),
        ) {
            if n > 0 {
                let hits = env.flows.lookup_batch_with_hash(keys, hashes, found);
                // A miss is learned with its reverse flow: start the reverse
                // bucket's cache miss now, overlapping the burst's other work.
                if hits < n {
                    for ((k, f), r) in keys.iter().zip(found.iter()).zip(rhashes.iter_mut()) {
                        if f.is_none() {
                            *r = env.flows.hash(&k.reversed());
                            env.flows.prefetch(*r);
                        }
                    }
                }
            }
        }
    }

    /// What was parsed ahead for the packet being processed: its VRF, headers and
    /// the index of its flow lookup in `ahead.keys` / `ahead.found`.
    #[inline]
    fn pre(&self) -> Option<(VrfId, &FlowInfo, usize)> {
        self.ahead.get(self.cur)
    }

    #[inline]
    fn drop_buf<B>(&mut self, r: DropReason, b: B, out: &mut Output<B>) {
        self.counters.count_drop(r);
        // When even the drop list is full the buffer is released by its destructor.
        let _ = out.drops.try_push(b);
    }

    #[inline(always)]
    fn emit<B: PacketBuf>(&mut self, env: &Env<'_>, port: u16, mut b: B, out: &mut Output<B>) {
        let vif = env.fib.vif_by_port(port);
        // A frame queued untagged on a VLAN fabric gets the tag here (tunnel
        // frames already carry it in their outer headers).
        if let Some(vid) = vif
            .filter(|v| v.kind == VifKind::Fabric)
            .and_then(|v| v.vlan)
        {
            if let Err(r) = vlan_out(&mut b, vid) {
                return self.drop_buf(r, b, out);
            }
        }
        let len = b.len() as u64;
        match out.push_tx(port, b) {
            Ok(()) => {
                self.counters.tx += 1;
                if let Some(v) = vif {
                    if let Some(c) = self.vifs.get_mut(usize::from(v.id.0)) {
                        c.tx_packets += 1;
                        c.tx_bytes += len;
                    }
                }
            }
            Err(b) => self.drop_buf(DropReason::TxOverflow, b, out),
        }
    }

    fn one<B: PacketBuf, P: BufPool<B>>(
        &mut self,
        env: &Env<'_>,
        pool: &mut P,
        b: &mut B,
        out: &mut Output<B>,
    ) -> Act {
        let Some(vif) = env.fib.vif_by_port(b.port()) else {
            return D(DropReason::InvalidInterface);
        };
        if let Some(c) = self.vifs.get_mut(usize::from(vif.id.0)) {
            c.rx_packets += 1;
            c.rx_bytes += b.len() as u64;
        }
        match vif.kind {
            VifKind::Fabric => self.fabric_input(env, pool, vif, b, out),
            VifKind::PodVhost | VifKind::PodTap => self.pod_input(env, pool, vif, b, out),
            VifKind::Host => match env.fib.fabric_vif() {
                Some(f) => Tx(f.port),
                None => D(DropReason::InvalidNh),
            },
            VifKind::Agent => D(DropReason::Unsupported),
        }
    }

    // ---- pod side ----

    fn pod_input<B: PacketBuf, P: BufPool<B>>(
        &mut self,
        env: &Env<'_>,
        pool: &mut P,
        vif: &Vif,
        b: &mut B,
        out: &mut Output<B>,
    ) -> Act {
        let fib = env.fib;
        let Some((dst, src, et)) = l2(b.data()) else {
            return D(DropReason::Malformed);
        };
        if vif.anti_spoof && src != vif.mac {
            return D(DropReason::SpoofedSource);
        }
        match et {
            ET_ARP => return self.pod_arp(env, vif, b),
            ET_IPV4 | ET_IPV6 => {}
            _ => {
                let hash = l2_hash(b.data());
                return self.bridge(env, pool, vif, b, dst, hash, None, out);
            }
        }
        // Parsed ahead from the same bytes in the same VRF: the headers and the
        // index of the flow lookup done for them.
        let ahead = match self.pre() {
            Some((vrf, info, s)) if vrf == vif.vrf => Some((*info, s)),
            _ => None,
        };
        let info = match ahead {
            Some((info, _)) => info,
            None => match extract_ethernet(pkt_vrf(vif.vrf), b.data()) {
                Ok(i) => i,
                Err(_) => return D(DropReason::Malformed),
            },
        };
        let k = &info.key;
        let dhcp = k.proto == 17
            && ((et == ET_IPV4 && k.dst_port == 67) || (et == ET_IPV6 && k.dst_port == 547));
        let l4 = usize::from(info.l4_offset);
        let ns = et == ET_IPV6 && k.proto == 58 && b.data().get(l4) == Some(&135);
        // DHCP and duplicate-address probes come from the unspecified address.
        let probe = (dhcp || ns) && k.src_ip().is_unspecified();
        if vif.anti_spoof && !probe && !vif.owns_ip(k.src_ip()) {
            return self.pod_foreign_source(env, vif, b);
        }
        if dhcp {
            return self.trap(env, vif, b, Trap::L3Protocols);
        }
        if ns {
            return self.pod_ns(env, vif, b, l4);
        }
        // The flow hash (ECMP member, outer entropy): the NIC's RSS hash, else the
        // flow table's hash of the flow when it was computed ahead (always for a
        // pod under policy, so a flow keeps one hash), else the key's own.
        let ahead_hash = match (b.rss_hash(), ahead) {
            (None, Some((_, s))) => self.ahead.hashes.get(s).copied(),
            _ => None,
        };
        let hash = match ahead_hash {
            Some(h) => RouteHash::Known((h.0 ^ (h.0 >> 32)) as u32),
            None => RouteHash::OfKey(k.vrf),
        };
        if dst == fib.router_mac() {
            self.route(env, vif.vrf, Some(vif), b, &info, hash)
        } else {
            let hash = hash.get(b, &info);
            self.bridge(env, pool, vif, b, dst, hash, Some(&info), out)
        }
    }

    /// A packet from a pod under anti-spoofing whose source address is not one of
    /// the pod's: spoofed, unless it is IPv6 link-scoped control from the
    /// unspecified or a link-local address (neighbour discovery, RFC 4861; MLD,
    /// RFC 3810). A pod's link-local address is its own but unknown to the agent,
    /// and such packets end here, never forwarded: router solicitations go to the
    /// agent (TF's vRouter traps them too), neighbour solicitations to the proxy,
    /// and MLD reports, done messages and neighbour advertisements are dropped as
    /// [`DropReason::LinkLocal`]. Router advertisements, redirects and MLD queries
    /// from a pod stay spoofed.
    #[cold]
    #[inline(never)]
    fn pod_foreign_source<B: PacketBuf>(&mut self, env: &Env<'_>, vif: &Vif, b: &mut B) -> Act {
        // Parsed again: this is the rare path, and passing the parsed headers
        // here cost the common path instructions (register allocation).
        let Ok(info) = extract_ethernet_general(pkt_vrf(vif.vrf), b.data()) else {
            return D(DropReason::Malformed);
        };
        let link_scoped = match info.key.src_ip() {
            IpAddr::V6(a) => a.is_unspecified() || a.is_unicast_link_local(),
            IpAddr::V4(_) => false,
        };
        if !link_scoped || info.key.proto != 58 {
            return D(DropReason::SpoofedSource);
        }
        let l4 = usize::from(info.l4_offset);
        match b.data().get(l4) {
            Some(133) => self.trap(env, vif, b, Trap::L3Protocols),
            Some(135) => self.pod_ns(env, vif, b, l4),
            Some(131 | 132 | 136 | 143) => D(DropReason::LinkLocal),
            _ => D(DropReason::SpoofedSource),
        }
    }

    fn pod_arp<B: PacketBuf>(&mut self, env: &Env<'_>, vif: &Vif, b: &mut B) -> Act {
        let d = b.data();
        let Some(arp) = d.get(ETH..ETH + 28) else {
            return D(DropReason::Malformed);
        };
        // Ethernet / IPv4 requests only.
        if arp[0..2] != [0, 1] || arp[2..4] != [8, 0] || arp[4] != 6 || arp[5] != 4 {
            return D(DropReason::Malformed);
        }
        let spa = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
        let tpa = Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]);
        if vif.anti_spoof
            && (arp[8..14] != vif.mac.0 || (!spa.is_unspecified() && !vif.ipv4.contains(&spa)))
        {
            return D(DropReason::SpoofedSource);
        }
        if arp[6..8] != [0, 1] {
            return D(DropReason::Unsupported);
        }
        let fib = env.fib;
        if fib.is_node_v4(tpa) {
            return self.trap(env, vif, b, Trap::Arp);
        }
        // The pod's own address: an address-conflict probe (RFC 5227, from
        // 0.0.0.0) or an announcement. An answer would tell the pod (or its DHCP
        // client's check) that the address is taken.
        if vif.ipv4.contains(&tpa) {
            return D(DropReason::LinkLocal);
        }
        if tpa == spa || fib.route_v4(vif.vrf, tpa).is_none() {
            return D(DropReason::ArpNoRoute);
        }
        if !reply::arp_reply(b, fib.router_mac()) {
            return D(DropReason::Malformed);
        }
        self.counters.arp_proxied += 1;
        Tx(vif.port)
    }

    fn pod_ns<B: PacketBuf>(&mut self, env: &Env<'_>, vif: &Vif, b: &mut B, l4: usize) -> Act {
        let Some(t) = b.data().get(l4 + 8..l4 + 24) else {
            return D(DropReason::Malformed);
        };
        let mut o = [0u8; 16];
        o.copy_from_slice(t);
        let target = Ipv6Addr::from(o);
        let fib = env.fib;
        if fib.is_node_v6(target) {
            return self.trap(env, vif, b, Trap::L2Protocols);
        }
        // The pod's own address (its duplicate-address probe) or a link-local one:
        // nothing to answer.
        if vif.ipv6.contains(&target) || target.is_unicast_link_local() {
            return D(DropReason::LinkLocal);
        }
        if fib.route_v6(vif.vrf, target).is_none() {
            return D(DropReason::ArpNoRoute);
        }
        if !reply::nd_advert(b, target, fib.router_mac()) {
            return D(DropReason::NoRoom);
        }
        self.counters.nd_proxied += 1;
        Tx(vif.port)
    }

    fn trap<B: PacketBuf>(&mut self, env: &Env<'_>, vif: &Vif, b: &mut B, cmd: Trap) -> Act {
        let Some(agent) = env.fib.agent_vif() else {
            return D(DropReason::NoAgent);
        };
        if !reply::agent_trap(b, agent.mac, env.fib.router_mac(), vif.id.0, vif.vrf.0, cmd) {
            return D(DropReason::NoRoom);
        }
        self.counters.to_agent += 1;
        Tx(agent.port)
    }

    /// Route an IP packet (in an untagged Ethernet frame) in `vrf`. `src` is the pod
    /// it came from (policy, TTL decrement); `None` when it came over the fabric.
    /// Inlined into its three callers: out of line, its six arguments and the
    /// parsed headers behind `info` cost about 50 instructions per packet
    /// (cachegrind, `pipeline_count` / `decap_count`).
    #[inline(always)]
    fn route<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        vrf: VrfId,
        src: Option<&Vif>,
        b: &mut B,
        info: &FlowInfo,
        hash: RouteHash,
    ) -> Act {
        let fib = env.fib;
        let dst_ip = info.key.dst_ip();
        let mut vrf = vrf;
        let mut found = None;
        for _ in 0..2 {
            let Some(t) = fib.route(vrf, dst_ip) else {
                return D(DropReason::NoRoute);
            };
            let Some(n) = fib.nh(t.nh) else {
                return D(DropReason::InvalidNh);
            };
            match &n.kind {
                NhKind::VrfTranslate(v) => vrf = *v,
                _ => {
                    found = Some((n, t.label));
                    break;
                }
            }
        }
        let Some((n, label)) = found else {
            return D(DropReason::InvalidNh);
        };
        // The hash only for an ECMP choice or a tunnel's entropy.
        let ecmp_hash = match n.kind {
            NhKind::Ecmp(_) => hash.get(b, info),
            _ => 0,
        };
        let (nh, label) = match resolve_nh(fib, n, label, ecmp_hash) {
            Ok(v) => v,
            Err(r) => return D(r),
        };
        let dst_vif = match &nh.kind {
            NhKind::Encap { vif, .. } => fib.vif(*vif),
            _ => None,
        };
        if let Err(r) = self.flow_check(
            env,
            src.map_or(vrf, |v| v.vrf),
            info,
            src,
            dst_vif,
            nh.id,
            b.len(),
        ) {
            return D(r);
        }
        if let NhKind::Receive { port, .. } = nh.kind {
            self.counters.to_host += 1;
            return Tx(port);
        }
        if src.is_some() && info.ttl <= 1 {
            return D(DropReason::TtlExpired);
        }
        let l3 = usize::from(info.l3_offset);
        let ip_len = b.len().saturating_sub(l3);
        match &nh.kind {
            NhKind::Encap {
                port, dmac, mtu, ..
            } => {
                if ip_len > usize::from(*mtu) {
                    return self.too_big(env, src, b, l3, *mtu);
                }
                let d = b.data_mut();
                if src.is_some() {
                    dec_ttl(d, l3);
                }
                rewrite_l2(d, *dmac, fib.router_mac());
                Tx(*port)
            }
            NhKind::Tunnel(t) => {
                let l3_payload = t.ty != TunnelType::Vxlan;
                let (enc_len, payload) = if l3_payload {
                    (t.l3.as_ref().map_or(0, |e| e.len()), ip_len)
                } else {
                    (t.l2.len(), ip_len + ETH)
                };
                // The outer IP packet: the prebuilt headers less their Ethernet
                // header (and 802.1Q tag, on a VLAN fabric), plus the payload.
                let outer_l2 = ETH + if t.vlan.is_some() { VLAN_TAG } else { 0 };
                let outer = enc_len.saturating_sub(outer_l2) + payload;
                if outer > usize::from(t.mtu) {
                    let room = usize::from(t.mtu).saturating_sub(outer - ip_len);
                    return self.too_big(env, src, b, l3, room as u16);
                }
                let d = b.data_mut();
                if src.is_some() {
                    dec_ttl(d, l3);
                }
                if l3_payload {
                    if b.adj(l3).is_err() {
                        return D(DropReason::Malformed);
                    }
                } else {
                    let rm = fib.router_mac();
                    rewrite_l2(d, rm, rm);
                }
                let hash = hash.get(b, info);
                self.tunnel_out(t, l3_payload, b, label.unwrap_or(0), hash)
            }
            NhKind::Discard => D(DropReason::Discard),
            _ => D(DropReason::InvalidNh),
        }
    }

    fn too_big<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        src: Option<&Vif>,
        b: &mut B,
        l3: usize,
        mtu: u16,
    ) -> Act {
        let Some(src) = src else {
            return D(DropReason::MtuExceeded);
        };
        let d = b.data();
        let rm = env.fib.router_mac();
        let ok = match d.get(l3).map(|v| v >> 4) {
            Some(4) => {
                // Only with DF set; fragmentation is not done here.
                let df = d.get(l3 + 6).is_some_and(|f| f & 0x40 != 0);
                let from = d
                    .get(l3 + 16..l3 + 20)
                    .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]));
                match (df, from, l3 == ETH) {
                    (true, Some(f), true) => reply::icmp4_frag_needed(b, mtu, f, rm),
                    _ => false,
                }
            }
            Some(6) => {
                let from = d.get(l3 + 24..l3 + 40).map(|a| {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(a);
                    Ipv6Addr::from(o)
                });
                match (from, l3 == ETH) {
                    (Some(f), true) => reply::icmp6_too_big(b, u32::from(mtu.max(1280)), f, rm),
                    _ => false,
                }
            }
            _ => false,
        };
        if !ok {
            return D(DropReason::MtuExceeded);
        }
        // The packet itself is dropped (counted) and its buffer carries the error.
        self.counters.count_drop(DropReason::MtuExceeded);
        self.counters.icmp_errors += 1;
        Tx(src.port)
    }

    /// Bridge a frame in the interface's VRF by destination MAC.
    #[allow(clippy::too_many_arguments)]
    fn bridge<B: PacketBuf, P: BufPool<B>>(
        &mut self,
        env: &Env<'_>,
        pool: &mut P,
        vif: &Vif,
        b: &mut B,
        dst: MacAddr,
        hash: u32,
        info: Option<&FlowInfo>,
        out: &mut Output<B>,
    ) -> Act {
        let fib = env.fib;
        let key = if dst.is_multicast() {
            MacAddr::BROADCAST
        } else {
            dst
        };
        let Some(e) = fib.bridge(vif.vrf, key) else {
            return D(DropReason::NoBridgeEntry);
        };
        let (nh, label) = match resolve(fib, e.nh, e.label, hash) {
            Ok(v) => v,
            Err(r) => return D(r),
        };
        if let Some(info) = info {
            let dst_vif = match &nh.kind {
                NhKind::Encap { vif, .. } => fib.vif(*vif),
                _ => None,
            };
            if let Err(r) = self.flow_check(env, vif.vrf, info, Some(vif), dst_vif, nh.id, b.len())
            {
                return D(r);
            }
        }
        match &nh.kind {
            NhKind::Encap { port, .. } | NhKind::Receive { port, .. } => Tx(*port),
            NhKind::Tunnel(t) => self.tunnel_out(t, false, b, label.unwrap_or(0), hash),
            NhKind::Flood(m) => self.flood(env, pool, m, vif.port, false, b, hash, out),
            NhKind::Discard => D(DropReason::Discard),
            _ => D(DropReason::InvalidNh),
        }
    }

    /// Replicate to every member except the input port; from the fabric, to local
    /// members only (split horizon). The original buffer goes to the last member.
    #[allow(clippy::too_many_arguments)]
    fn flood<B: PacketBuf, P: BufPool<B>>(
        &mut self,
        env: &Env<'_>,
        pool: &mut P,
        members: &[crate::fib::FloodMember],
        in_port: u16,
        from_fabric: bool,
        b: &mut B,
        hash: u32,
        out: &mut Output<B>,
    ) -> Act {
        let fib = env.fib;
        let eligible = |m: &&crate::fib::FloodMember| match fib.nh(m.nh).map(|n| &n.kind) {
            Some(NhKind::Encap { port, .. }) => *port != in_port,
            Some(NhKind::Tunnel(_)) => !from_fabric,
            _ => false,
        };
        let mut it = members.iter().filter(eligible).peekable();
        while let Some(m) = it.next() {
            if it.peek().is_none() {
                return self.flood_one(fib, m, b, hash);
            }
            let Some(mut c) = pool.alloc_copy(b) else {
                self.counters.count_drop(DropReason::NoBuffer);
                continue;
            };
            self.counters.flood_copies += 1;
            match self.flood_one(fib, m, &mut c, hash) {
                Tx(port) => self.emit(env, port, c, out),
                D(r) => self.drop_buf(r, c, out),
            }
        }
        D(DropReason::Discard)
    }

    fn flood_one<B: PacketBuf>(
        &mut self,
        fib: &FibSnapshot,
        m: &crate::fib::FloodMember,
        b: &mut B,
        hash: u32,
    ) -> Act {
        match fib.nh(m.nh).map(|n| &n.kind) {
            Some(NhKind::Encap { port, .. }) => Tx(*port),
            Some(NhKind::Tunnel(t)) => self.tunnel_out(t, false, b, m.label.unwrap_or(0), hash),
            _ => D(DropReason::InvalidNh),
        }
    }

    #[inline(always)]
    fn tunnel_out<B: PacketBuf>(
        &mut self,
        t: &TunnelNh,
        l3: bool,
        b: &mut B,
        label: u32,
        hash: u32,
    ) -> Act {
        let enc = if l3 { t.l3.as_ref() } else { Some(&t.l2) };
        let Some(enc) = enc else {
            return D(DropReason::InvalidNh);
        };
        self.ip_id = self.ip_id.wrapping_add(1);
        let meta = EncapMeta {
            flow_hash: hash,
            ip_id: self.ip_id,
        };
        if enc.encap(b, meta).is_err() {
            return D(DropReason::NoRoom);
        }
        t.set_label(b.data_mut(), enc.len(), label);
        Tx(t.port)
    }

    // ---- fabric side ----

    fn fabric_input<B: PacketBuf, P: BufPool<B>>(
        &mut self,
        env: &Env<'_>,
        pool: &mut P,
        vif: &Vif,
        b: &mut B,
        out: &mut Output<B>,
    ) -> Act {
        let fib = env.fib;
        if let Err(r) = vlan_in(vif.vlan, b) {
            return D(r);
        }
        let Some((_, _, et)) = l2(b.data()) else {
            return D(DropReason::Malformed);
        };
        if et == ET_ARP {
            let tpa = b
                .data()
                .get(ETH + 24..ETH + 28)
                .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]));
            return match tpa {
                Some(t) if fib.is_node_v4(t) => self.trap(env, vif, b, Trap::Arp),
                Some(_) => D(DropReason::Unsupported),
                None => D(DropReason::Malformed),
            };
        }
        let dec = Decapsulator::new(
            fib.node_v4().first().copied(),
            fib.node_v6().first().copied(),
        );
        let d = match dec.decap(b) {
            Ok(d) => d,
            Err(
                PktError::WrongDestination
                | PktError::UnknownUdpPort
                | PktError::UnsupportedProtocol
                | PktError::UnsupportedEtherType,
            ) => {
                // Not a tunnel for this node: the host stack's business.
                return match fib.host_vif() {
                    Some(h) => {
                        self.counters.to_host += 1;
                        Tx(h.port)
                    }
                    None => D(DropReason::NoHost),
                };
            }
            Err(PktError::TtlExpired) => return D(DropReason::TtlExpired),
            Err(_) => return D(DropReason::Malformed),
        };
        match d.id {
            TunnelId::Vni(v) => match fib.vni(Vni(v)) {
                Some(nh) => self.deliver_l2(env, pool, vif, nh, b, out),
                None => D(DropReason::UnknownVni),
            },
            TunnelId::Mpls(s) => match fib.label(Label(s.top.label)) {
                Some(e) => match e.payload {
                    Payload::Ethernet => self.deliver_l2(env, pool, vif, e.nh, b, out),
                    Payload::Ip => self.deliver_l3(env, e.nh, b),
                },
                None => D(DropReason::UnknownLabel),
            },
        }
    }

    /// An Ethernet frame from a tunnel.
    fn deliver_l2<B: PacketBuf, P: BufPool<B>>(
        &mut self,
        env: &Env<'_>,
        pool: &mut P,
        fabric: &Vif,
        nh: NhId,
        b: &mut B,
        out: &mut Output<B>,
    ) -> Act {
        let fib = env.fib;
        let Some((dst, _, et)) = l2(b.data()) else {
            return D(DropReason::Malformed);
        };
        let mut ip = if et == ET_IPV4 || et == ET_IPV6 {
            match self.ahead.guessed_inner(self.cur, b.data()) {
                // The look-ahead parsed these very bytes (in its VRF; here in 0).
                Some(mut info) => {
                    info.key.vrf = pkt_vrf(VrfId(0));
                    self.guess_exact = true;
                    Some(info)
                }
                None => parse_ethernet(pkt_vrf(VrfId(0)), b.data()),
            }
        } else {
            None
        };
        let nh = match fib.nh(nh).map(|n| &n.kind) {
            Some(NhKind::VrfTranslate(vrf)) => {
                if dst == fib.router_mac() {
                    let Some(info) = ip.as_mut() else {
                        return D(DropReason::Malformed);
                    };
                    // Parsed in VRF 0 (the hash's VRF field).
                    let hash = RouteHash::OfKey(info.key.vrf);
                    info.key.vrf = pkt_vrf(*vrf);
                    return self.route(env, *vrf, None, b, info, hash);
                }
                let key = if dst.is_multicast() {
                    MacAddr::BROADCAST
                } else {
                    dst
                };
                match fib.bridge(*vrf, key) {
                    Some(e) => e.nh,
                    None => return D(DropReason::NoBridgeEntry),
                }
            }
            Some(_) => nh,
            None => return D(DropReason::InvalidNh),
        };
        match fib.nh(nh).map(|n| &n.kind) {
            Some(NhKind::Encap { vif, port, .. }) => {
                if let (Some(info), Some(v)) = (ip, fib.vif(*vif)) {
                    if let Err(r) = self.flow_check(env, v.vrf, &info, None, Some(v), nh, b.len()) {
                        return D(r);
                    }
                }
                Tx(*port)
            }
            Some(NhKind::Flood(m)) => {
                // The flow hash, for flooding: computed here (routing takes its own).
                let hash = ip.map_or_else(|| l2_hash(b.data()), |i| flow_hash(b, &i.key));
                self.flood(env, pool, m, fabric.port, true, b, hash, out)
            }
            Some(NhKind::Discard) => D(DropReason::Discard),
            _ => D(DropReason::InvalidNh),
        }
    }

    /// An IP packet from an MPLS tunnel.
    fn deliver_l3<B: PacketBuf>(&mut self, env: &Env<'_>, nh: NhId, b: &mut B) -> Act {
        let fib = env.fib;
        let et = match b.data().first().map(|v| v >> 4) {
            Some(4) => ET_IPV4,
            Some(6) => ET_IPV6,
            _ => return D(DropReason::Malformed),
        };
        let Ok(h) = b.prepend(ETH) else {
            return D(DropReason::NoRoom);
        };
        h[12..14].copy_from_slice(&et.to_be_bytes());
        let Some(mut info) = parse_ethernet(pkt_vrf(VrfId(0)), b.data()) else {
            return D(DropReason::Malformed);
        };
        // Parsed in VRF 0 (the hash's VRF field).
        let hash = RouteHash::OfKey(info.key.vrf);
        match fib.nh(nh).map(|n| &n.kind) {
            Some(NhKind::VrfTranslate(vrf)) => {
                info.key.vrf = pkt_vrf(*vrf);
                self.route(env, *vrf, None, b, &info, hash)
            }
            Some(NhKind::Encap {
                vif, port, dmac, ..
            }) => {
                let Some(v) = fib.vif(*vif) else {
                    return D(DropReason::InvalidNh);
                };
                info.key.vrf = pkt_vrf(v.vrf);
                if let Err(r) = self.flow_check(env, v.vrf, &info, None, Some(v), nh, b.len()) {
                    return D(r);
                }
                rewrite_l2(b.data_mut(), *dmac, fib.router_mac());
                Tx(*port)
            }
            Some(NhKind::Discard) => D(DropReason::Discard),
            _ => D(DropReason::InvalidNh),
        }
    }

    // ---- flows and policy ----

    /// Look the flow up when policy applies at either end; on a miss evaluate the
    /// rules and learn the flow and its reverse with the decision. The common cases
    /// (no policy; a hit of the lookup done ahead) are inlined into the callers.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn flow_check(
        &mut self,
        env: &Env<'_>,
        vrf: VrfId,
        info: &FlowInfo,
        src: Option<&Vif>,
        dst: Option<&Vif>,
        nh: NhId,
        bytes: usize,
    ) -> Result<(), DropReason> {
        let src = src.filter(|v| v.policy);
        let dst = dst.filter(|v| v.policy);
        if src.is_none() && dst.is_none() {
            return Ok(());
        }
        // The lookup done ahead is used when it was made for this packet's key: a
        // pod's packet has its `info` from it (`pod_input` takes it in exactly
        // that case), so the VRF settles it; a fabric frame's guess must give
        // the key the per-packet path built.
        let ahead = match self.pre() {
            Some((v, _, s)) if v == vrf => {
                let guessed = self.ahead.guessed & (1 << self.cur) != 0;
                if guessed
                    && !self.guess_exact
                    && ft_key(vrf, info).as_ref() != self.ahead.keys.get(s)
                {
                    None
                } else {
                    self.ahead.found.get(s).map(|f| (s, *f))
                }
            }
            _ => None,
        };
        if let Some((_, Some(e))) = ahead {
            return self.flow_hit(env, e, bytes);
        }
        self.flow_miss(env, vrf, info, src, dst, nh, bytes, ahead.map(|(s, _)| s))
    }

    /// [`Self::flow_check`] without a hit ahead: look up (again: an earlier packet
    /// of the same burst may have learned the flow since), and on a miss evaluate
    /// the rules and learn. `ahead` is the index of the key built ahead, if any.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn flow_miss(
        &mut self,
        env: &Env<'_>,
        vrf: VrfId,
        info: &FlowInfo,
        src: Option<&Vif>,
        dst: Option<&Vif>,
        nh: NhId,
        bytes: usize,
        ahead: Option<usize>,
    ) -> Result<(), DropReason> {
        let flows = env.flows;
        let a = &self.ahead;
        let pre = ahead.and_then(|s| Some((a.keys.get(s)?, a.hashes.get(s)?, a.rhashes.get(s)?)));
        let (key, hash, rhash) = match pre {
            // The reverse hash was computed (and its bucket prefetched) after
            // the batch lookup missed.
            Some((key, hash, rhash)) => (*key, *hash, Some(*rhash)),
            None => {
                let key = ft_key(vrf, info).ok_or(DropReason::Malformed)?;
                if let Some((k, e)) = self.last_flow {
                    if k == key {
                        return self.flow_hit(env, e, bytes);
                    }
                }
                (key, flows.hash(&key), None)
            }
        };
        let found = flows.lookup_with_hash(&key, hash);
        if let Some(e) = found {
            self.last_flow = Some((key, e));
            return self.flow_hit(env, e, bytes);
        }
        // The slot and counters the forward insert will write start on their
        // way now (its control words were just read), the reverse's after
        // the policy evaluation (its control words were prefetched): the
        // two inserts then overlap those misses rather than wait for each.
        flows.prefetch_insert(hash);
        let rhash = rhash.unwrap_or_else(|| {
            let r = flows.hash(&key.reversed());
            // The reverse flow's bucket miss overlaps the forward insert.
            flows.prefetch(r);
            r
        });
        let k = &info.key;
        let (s, d) = (k.src_ip(), k.dst_ip());
        let allow = |v: Option<&Vif>| {
            v.is_none_or(|v| {
                v.evaluate(k.proto, s, d, k.src_port, k.dst_port) == PolicyAction::Allow
            })
        };
        let action = if allow(src) && allow(dst) {
            FlowAction::Forward {
                nexthop: NexthopId(nh.0),
            }
        } else {
            FlowAction::Drop
        };
        flows.prefetch_insert(rhash);
        let rkey = key.reversed();
        let fwd = match flows.insert_with_hash(&key, hash, FlowValue::new(action), env.now) {
            Ok(Insert::New(id)) => id,
            Ok(Insert::Exists(e)) => e.id,
            Err(InsertError::Full) => return Err(DropReason::FlowTableFull),
        };
        let rev_value = FlowValue {
            reverse: Some(fwd.index),
            ..FlowValue::new(action)
        };
        match flows.insert_with_hash(&rkey, rhash, rev_value, env.now) {
            Ok(r) => {
                let _ = flows.set_reverse(fwd, Some(r.id().index));
            }
            Err(InsertError::Full) => {
                flows.remove(&key);
                return Err(DropReason::FlowTableFull);
            }
        }
        flows.touch(fwd, env.now, bytes as u64);
        self.counters.flows_learned += 1;
        match action {
            FlowAction::Drop => Err(DropReason::PolicyDeny),
            _ => Ok(()),
        }
    }

    /// A packet of a known flow: count it on the flow; its learned decision.
    #[inline]
    fn flow_hit(&mut self, env: &Env<'_>, e: FlowEntry, bytes: usize) -> Result<(), DropReason> {
        self.counters.flow_hits += 1;
        match &mut self.touch {
            Some((id, p, b)) if *id == e.id => {
                *p += 1;
                *b += bytes as u64;
            }
            _ => {
                self.flush_touch(env);
                self.touch = Some((e.id, 1, bytes as u64));
            }
        }
        match e.action() {
            FlowAction::Drop => Err(DropReason::PolicyDeny),
            _ => Ok(()),
        }
    }
}

/// Where [`fabric_guess`] expects a tunnel frame's inner flow.
struct Guess {
    /// The VRF the inner flow is looked up in.
    vrf: VrfId,
    /// Offset of the inner packet in the frame.
    inner: usize,
    /// The inner packet is an Ethernet frame (else an IP packet).
    l2_payload: bool,
}

/// The common case of a tunnel frame received on the fabric, read at constant
/// offsets ahead of the per-packet path so that its inner flow joins the burst's
/// batched lookup: untagged outer IPv4 without options carrying VXLAN, MPLS over
/// UDP or MPLS over GRE (one label), and the VRF its VNI or label leads to
/// (bridged to a pod under policy, or routed in a VRF). A guess only: anything else
/// gives `None`, and the per-packet path decapsulates and checks everything
/// itself; its flow lookup takes the result only for the same key. The caller
/// parses the inner packet the guess points at.
#[inline]
fn fabric_guess(fib: &FibSnapshot, vif: &Vif, d: &[u8]) -> Option<Guess> {
    use crate::packet::{mpls, vxlan};
    if vif.vlan.is_some() {
        return None;
    }
    let f: &[u8; 42] = d.get(..42)?.try_into().ok()?;
    if f[12..15] != [0x08, 0x00, 0x45] {
        return None;
    }
    // The inner packet's offset, next-hop, and whether it is an Ethernet frame.
    let mpls_at = |o: usize| -> Option<(usize, NhId, bool)> {
        let l = d.get(o..o + 4)?;
        let lse = u32::from_be_bytes([l[0], l[1], l[2], l[3]]);
        if lse & 0x100 == 0 {
            return None; // more labels below
        }
        let e = fib.label(Label(lse >> 12))?;
        Some((o + 4, e.nh, e.payload == Payload::Ethernet))
    };
    let (inner, nh, l2_payload) = match f[23] {
        17 => match u16::from_be_bytes([f[36], f[37]]) {
            vxlan::UDP_PORT => {
                let v = d.get(42..50)?;
                let vni = u32::from_be_bytes([0, v[4], v[5], v[6]]);
                (50, fib.vni(Vni(vni))?, true)
            }
            mpls::UDP_PORT => mpls_at(42)?,
            _ => return None,
        },
        // GRE without options carrying MPLS unicast.
        47 if f[34..38] == [0, 0, 0x88, 0x47] => mpls_at(38)?,
        _ => return None,
    };
    let inner = d.get(inner..)?;
    let policy_vrf = |v: VifId| fib.vif(v).filter(|v| v.policy).map(|v| v.vrf);
    let vrf = match &fib.nh(nh)?.kind {
        NhKind::Encap { vif, .. } => policy_vrf(*vif)?,
        NhKind::VrfTranslate(vrf) if !l2_payload => *vrf,
        NhKind::VrfTranslate(vrf) => {
            let dst = MacAddr(inner.get(..6)?.try_into().ok()?);
            if dst == fib.router_mac() {
                *vrf
            } else {
                match &fib.nh(fib.bridge(*vrf, dst)?.nh)?.kind {
                    NhKind::Encap { vif, .. } => policy_vrf(*vif)?,
                    _ => return None,
                }
            }
        }
        _ => return None,
    };
    Some(Guess {
        vrf,
        inner: d.len() - inner.len(),
        l2_payload,
    })
}

/// The headers of an Ethernet frame: the common case read at constant offsets
/// ([`extract_ethernet_fast`]), else the general parser
/// ([`extract_ethernet_general`]), each returning on its own.
/// `extract_ethernet` tries the same common case first but joins both into
/// one `Result`, which went through memory: fabric -> pod at one flow took 67-69
/// ns per packet with it, 61-63 with this (BENCHMARKS.md, "The common-case parse
/// on the per-packet path").
#[inline(always)]
fn parse_ethernet(vrf: crate::packet::VrfId, d: &[u8]) -> Option<FlowInfo> {
    match extract_ethernet_fast(vrf, d) {
        Some(info) => Some(info),
        None => extract_ethernet_general(vrf, d).ok(),
    }
}

/// The flow-table key of a packet's flow in `vrf` (both keep addresses in the same
/// 16-byte form, IPv4 mapped).
#[inline]
fn ft_key(vrf: VrfId, info: &FlowInfo) -> Option<flow_table::FlowKey> {
    let k = &info.key;
    let fvrf = flow_table::VrfId::new(u32::from(vrf.0)).ok()?;
    Some(flow_table::FlowKey::from_bytes(
        fvrf,
        k.family == crate::packet::AddrFamily::V6,
        k.src,
        k.dst,
        k.proto,
        k.src_port,
        k.dst_port,
    ))
}

/// Resolve ECMP: the member for this flow hash, with its label if it has one.
#[inline]
fn resolve(
    fib: &FibSnapshot,
    nh: NhId,
    label: Option<u32>,
    hash: u32,
) -> Result<(&NextHop, Option<u32>), DropReason> {
    resolve_nh(fib, fib.nh(nh).ok_or(DropReason::InvalidNh)?, label, hash)
}

/// [`resolve`] for a next-hop already looked up.
#[inline]
fn resolve_nh<'a>(
    fib: &'a FibSnapshot,
    n: &'a NextHop,
    label: Option<u32>,
    hash: u32,
) -> Result<(&'a NextHop, Option<u32>), DropReason> {
    if let NhKind::Ecmp(m) = &n.kind {
        let m = ecmp_pick(m, hash).ok_or(DropReason::InvalidNh)?;
        let n = fib.nh(m.nh).ok_or(DropReason::InvalidNh)?;
        return Ok((n, m.label.or(label)));
    }
    Ok((n, label))
}

#[inline]
fn pkt_vrf(v: VrfId) -> crate::packet::VrfId {
    crate::packet::VrfId(u32::from(v.0))
}

/// Destination MAC, source MAC and EtherType of an untagged frame.
#[inline]
fn l2(d: &[u8]) -> Option<(MacAddr, MacAddr, u16)> {
    let h = d.get(..ETH)?;
    let mut dst = [0u8; 6];
    dst.copy_from_slice(&h[0..6]);
    let mut src = [0u8; 6];
    src.copy_from_slice(&h[6..12]);
    Some((
        MacAddr(dst),
        MacAddr(src),
        u16::from_be_bytes([h[12], h[13]]),
    ))
}

/// Checks a frame received on a fabric interface against the interface's VLAN
/// (`None`: untagged) and removes its 802.1Q tag: afterwards the frame is untagged.
/// A priority tag (VLAN id 0) counts as untagged on an untagged fabric.
#[inline]
fn vlan_in<B: PacketBuf>(vlan: Option<u16>, b: &mut B) -> Result<(), DropReason> {
    let d = b.data();
    let Some(t) = d.get(12..14) else {
        return Err(DropReason::Malformed);
    };
    let tpid = u16::from_be_bytes([t[0], t[1]]);
    if !matches!(tpid, ET_VLAN | ET_QINQ | ET_QINQ_OLD) {
        return match vlan {
            None => Ok(()),
            Some(_) => Err(DropReason::VlanMismatch),
        };
    }
    let Some(t) = d.get(14..16) else {
        return Err(DropReason::Malformed);
    };
    let vid = u16::from_be_bytes([t[0], t[1]]) & 0x0fff;
    if tpid != ET_VLAN || vid != vlan.unwrap_or(0) {
        return Err(DropReason::VlanMismatch);
    }
    // Slide the MAC addresses over the tag and drop the front.
    b.data_mut().copy_within(0..12, VLAN_TAG);
    b.adj(VLAN_TAG).map_err(|_| DropReason::Malformed)
}

/// Pushes an 802.1Q tag with VLAN id `vid` and priority 0 onto a frame for a VLAN
/// fabric, unless it already carries exactly that tag.
#[inline]
fn vlan_out<B: PacketBuf>(b: &mut B, vid: u16) -> Result<(), DropReason> {
    let tag = [
        (ET_VLAN >> 8) as u8,
        ET_VLAN as u8,
        (vid >> 8) as u8,
        vid as u8,
    ];
    match b.data().get(12..16) {
        Some(t) if t[0..2] == tag[0..2] && (u16::from_be_bytes([t[2], t[3]]) & 0x0fff) == vid => {
            return Ok(())
        }
        Some(_) => {}
        None => return Err(DropReason::Malformed),
    }
    if b.prepend(VLAN_TAG).is_err() {
        return Err(DropReason::NoRoom);
    }
    let d = b.data_mut();
    d.copy_within(VLAN_TAG..VLAN_TAG + 12, 0);
    if let Some(h) = d.get_mut(12..16) {
        h.copy_from_slice(&tag);
    }
    Ok(())
}

/// A hash of the Ethernet header, for non-IP frames.
#[inline]
fn l2_hash(d: &[u8]) -> u32 {
    d.get(..ETH).map_or(0, |h| {
        let c = checksum::data(h);
        u32::from(c).wrapping_mul(0x9e37_79b9)
    })
}

#[inline]
fn rewrite_l2(d: &mut [u8], dst: MacAddr, src: MacAddr) {
    if let Some(h) = d.get_mut(..12) {
        h[0..6].copy_from_slice(&dst.0);
        h[6..12].copy_from_slice(&src.0);
    }
}

/// Decrement the IPv4 TTL (fixing the checksum incrementally) or the IPv6 hop limit
/// of the IP header at `l3`. A header shorter than 20 bytes is left alone (the
/// parser has already refused such packets).
#[inline(always)]
fn dec_ttl(d: &mut [u8], l3: usize) {
    let Some(ip) = d.get_mut(l3..).and_then(|h| h.first_chunk_mut::<20>()) else {
        return;
    };
    match ip[0] >> 4 {
        4 => {
            let ttl = ip[8];
            if ttl == 0 {
                return;
            }
            ip[8] = ttl - 1;
            let c = checksum::ttl_decrement(u16::from_be_bytes([ip[10], ip[11]]));
            [ip[10], ip[11]] = c.to_be_bytes();
        }
        6 => ip[7] = ip[7].saturating_sub(1),
        _ => {}
    }
}

#[cfg(test)]
mod vlan_tests {
    //! A fabric on a VLAN, end to end through one burst, with exact bytes.
    use super::*;
    use crate::fib::{
        Fib, FibConfig, LabelEntry, NhSpec, Prefix, RouteTarget, TunnelSpec, Update, VifId, Vni,
    };
    use crate::packet::HeapBuf;
    use std::net::IpAddr;
    use std::sync::Arc;

    const ROUTER: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x00];
    const FAB_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0xfa];
    const NEIGH: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0xfe];
    const A_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const A_IP: [u8; 4] = [10, 1, 0, 3];
    const NODE: [u8; 4] = [192, 168, 0, 1];
    const REMOTE: [u8; 4] = [192, 168, 0, 2];
    const RSS: u32 = 0x8000_0000;
    const VID: u16 = 0x123;

    fn eth(dst: [u8; 6], src: [u8; 6], et: u16, payload: &[u8]) -> Vec<u8> {
        [&dst[..], &src, &et.to_be_bytes(), payload].concat()
    }

    /// `frame` with an 802.1Q tag (TPID 0x8100, priority 0) after its MACs.
    fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
        [&frame[..12], &[0x81, 0], &vid.to_be_bytes(), &frame[12..]].concat()
    }

    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, id: u16, payload: &[u8]) -> Vec<u8> {
        let len = (20 + payload.len()) as u16;
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&[0, 0, ttl, proto, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        let c = !checksum::data(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let len = (8 + payload.len()) as u16;
        [
            &sport.to_be_bytes()[..],
            &dport.to_be_bytes(),
            &len.to_be_bytes(),
            &[0, 0],
            payload,
        ]
        .concat()
    }

    fn vxlan(vni: u32) -> Vec<u8> {
        [&[0x08, 0, 0, 0][..], &(vni << 8).to_be_bytes()].concat()
    }

    fn mpls(label: u32, ttl: u8) -> [u8; 4] {
        ((label << 12) | (1 << 8) | u32::from(ttl)).to_be_bytes()
    }

    /// TF's entropy mapping of a flow hash into 49152..=65535.
    fn entropy(hash: u32) -> u16 {
        49152 + ((u64::from(hash) * 16384) >> 32) as u16
    }

    /// Outer Ethernet + IPv4 (untagged) of a tunnel packet from this node.
    fn outer(proto: u8, id: u16, payload: &[u8]) -> Vec<u8> {
        eth(
            NEIGH,
            FAB_MAC,
            0x0800,
            &ipv4(NODE, REMOTE, proto, 64, id, payload),
        )
    }

    struct Node {
        snap: Arc<FibSnapshot>,
        flows: FlowTable,
        pipe: Pipeline,
    }

    /// Fabric (port 0, VLAN `vlan`), host (port 1), pod A (port 3, VRF 1); routes to
    /// 10.2/16 over MPLSoUDP label 100 and 10.3/16 over VXLAN VNI 5001; label 17 and
    /// VNI 5001 lead to A.
    fn node(vlan: Option<u16>) -> Node {
        node_with_policy(vlan, false)
    }

    /// `node`, with policy (flow lookup) on pod A when `policy`.
    fn node_with_policy(vlan: Option<u16>, policy: bool) -> Node {
        node_with_updates(vlan, policy, Vec::new())
    }

    /// `node_with_policy`, with the `extra` updates applied in the same batch.
    fn node_with_updates(vlan: Option<u16>, policy: bool, extra: Vec<Update>) -> Node {
        let mut fib = Fib::new(FibConfig::default());
        let mut fabric = Vif::new(VifId(0), VifKind::Fabric, 0, MacAddr(FAB_MAC), VrfId(0));
        fabric.ipv4 = vec![Ipv4Addr::from(NODE)];
        fabric.vlan = vlan;
        let host = Vif::new(VifId(1), VifKind::Host, 1, MacAddr(FAB_MAC), VrfId(0));
        let mut a = Vif::new(VifId(3), VifKind::PodVhost, 3, MacAddr(A_MAC), VrfId(1));
        a.policy = policy;
        a.rules = Arc::from(vec![crate::fib::PolicyRule::any(PolicyAction::Allow)]);
        let tunnel = |ty| {
            NhSpec::Tunnel(TunnelSpec {
                ty,
                src: IpAddr::V4(NODE.into()),
                dst: IpAddr::V4(REMOTE.into()),
                out_vif: VifId(0),
                dmac: MacAddr(NEIGH),
            })
        };
        let route = |p: [u8; 4], len, nh, label| Update::AddRoute {
            vrf: VrfId(1),
            prefix: Prefix::v4(p.into(), len).unwrap(),
            target: RouteTarget {
                nh: NhId(nh),
                label: Some(label),
            },
        };
        let mut batch = vec![
            Update::AddVif(fabric),
            Update::AddVif(host),
            Update::AddVif(a),
            Update::AddNh(
                NhId(10),
                NhSpec::Encap {
                    vif: VifId(3),
                    dmac: MacAddr(A_MAC),
                },
            ),
            Update::AddNh(NhId(20), tunnel(TunnelType::Vxlan)),
            Update::AddNh(NhId(21), tunnel(TunnelType::MplsOverUdp)),
            route([10, 2, 0, 0], 16, 21, 100),
            route([10, 3, 0, 0], 16, 20, 5001),
            Update::AddLabel(
                Label(17),
                LabelEntry {
                    nh: NhId(10),
                    payload: Payload::Ip,
                },
            ),
            Update::AddVni(Vni(5001), NhId(10)),
        ];
        batch.extend(extra);
        let snap = fib.apply(&batch).unwrap();
        Node {
            snap,
            flows: FlowTable::with_capacity(1024).unwrap(),
            pipe: Pipeline::new(64),
        }
    }

    impl Node {
        /// Runs `frames`, received on `port` (with the NIC hash `rss`), as one
        /// burst.
        fn process(&mut self, port: u16, rss: Option<u32>, frames: &[&[u8]]) -> Output<HeapBuf> {
            let bufs = frames.iter().map(|f| {
                let mut b = HeapBuf::from_bytes(f);
                b.set_port(port);
                b.set_rss_hash(rss);
                b
            });
            let mut out = Output::new();
            let env = Env {
                fib: &self.snap,
                flows: &self.flows,
                now: 1,
            };
            self.pipe.process(&env, &mut HeapPool, bufs, &mut out);
            out
        }

        /// Sends one frame; returns where it went and its bytes, or the drop reason.
        fn send(&mut self, port: u16, frame: &[u8]) -> Result<(u16, Vec<u8>), DropReason> {
            let before = self.pipe.counters().drops;
            let out = self.process(port, Some(RSS), &[frame]);
            if let Some(t) = out.tx.first() {
                assert_eq!((out.tx.len(), t.bufs.len()), (1, 1));
                return Ok((t.port, t.bufs[0].data().to_vec()));
            }
            assert_eq!(out.drops.len(), 1);
            let after = self.pipe.counters().drops;
            let r = DropReason::ALL
                .into_iter()
                .find(|r| after[r.index()] == before[r.index()] + 1)
                .expect("a drop counted under one reason");
            Ok::<_, DropReason>(()).and(Err(r))
        }
    }

    #[test]
    fn vlan_fabric_table() {
        let inner = |dst: [u8; 4], ttl: u8| ipv4(A_IP, dst, 17, ttl, 0, &udp(1000, 2000, b"hi"));
        let from_a = |dst| eth(ROUTER, A_MAC, 0x0800, &inner(dst, 64));
        let sport = entropy(RSS);
        // The frames a remote node sends us (untagged form).
        let vxlan_in = outer(
            17,
            9,
            &udp(
                50000,
                4789,
                &[
                    &vxlan(5001)[..],
                    &eth(A_MAC, NEIGH, 0x0800, &inner([10, 3, 0, 9], 64)),
                ]
                .concat(),
            ),
        );
        let mut vxlan_in_ = vxlan_in.clone();
        // Sent by the remote node to us: swap the outer addresses.
        vxlan_in_[26..30].copy_from_slice(&REMOTE);
        vxlan_in_[30..34].copy_from_slice(&NODE);
        let vxlan_in = vxlan_in_;
        let mpls_in = {
            let ip = ipv4(
                REMOTE,
                NODE,
                17,
                64,
                7,
                &udp(
                    50000,
                    6635,
                    &[&mpls(17, 64)[..], &inner([10, 2, 0, 9], 60)].concat(),
                ),
            );
            eth(FAB_MAC, NEIGH, 0x0800, &ip)
        };
        let host_out = eth(
            NEIGH,
            FAB_MAC,
            0x0800,
            &ipv4(NODE, REMOTE, 6, 64, 3, &[0u8; 20]),
        );
        struct Case {
            name: &'static str,
            vlan: Option<u16>,
            port: u16,
            frame: Vec<u8>,
            want: Result<(u16, Vec<u8>), DropReason>,
        }
        let cases = vec![
            Case {
                name: "pod -> remote over VXLAN carries the tag",
                vlan: Some(VID),
                port: 3,
                frame: from_a([10, 3, 0, 9]),
                want: Ok((
                    0,
                    tagged(
                        &outer(
                            17,
                            1,
                            &udp(
                                sport,
                                4789,
                                &[
                                    &vxlan(5001)[..],
                                    &eth(ROUTER, ROUTER, 0x0800, &inner([10, 3, 0, 9], 63)),
                                ]
                                .concat(),
                            ),
                        ),
                        VID,
                    ),
                )),
            },
            Case {
                name: "pod -> remote over MPLSoUDP carries the tag",
                vlan: Some(VID),
                port: 3,
                frame: from_a([10, 2, 0, 9]),
                want: Ok((
                    0,
                    tagged(
                        &outer(
                            17,
                            1,
                            &udp(
                                sport,
                                6635,
                                &[&mpls(100, 63)[..], &inner([10, 2, 0, 9], 63)].concat(),
                            ),
                        ),
                        VID,
                    ),
                )),
            },
            Case {
                name: "pod -> remote on an untagged fabric is untagged",
                vlan: None,
                port: 3,
                frame: from_a([10, 2, 0, 9]),
                want: Ok((
                    0,
                    outer(
                        17,
                        1,
                        &udp(
                            sport,
                            6635,
                            &[&mpls(100, 63)[..], &inner([10, 2, 0, 9], 63)].concat(),
                        ),
                    ),
                )),
            },
            Case {
                name: "fabric -> pod, VXLAN with the right tag, decapsulated",
                vlan: Some(VID),
                port: 0,
                frame: tagged(&vxlan_in, VID),
                want: Ok((3, eth(A_MAC, NEIGH, 0x0800, &inner([10, 3, 0, 9], 64)))),
            },
            Case {
                name: "fabric -> pod, VXLAN with the right tag and a priority",
                vlan: Some(VID),
                port: 0,
                frame: tagged(&vxlan_in, 0xa000 | VID),
                want: Ok((3, eth(A_MAC, NEIGH, 0x0800, &inner([10, 3, 0, 9], 64)))),
            },
            Case {
                name: "fabric -> pod, MPLSoUDP with the right tag, decapsulated",
                vlan: Some(VID),
                port: 0,
                frame: tagged(&mpls_in, VID),
                want: Ok((3, eth(A_MAC, ROUTER, 0x0800, &inner([10, 2, 0, 9], 60)))),
            },
            Case {
                name: "fabric, another VLAN id",
                vlan: Some(VID),
                port: 0,
                frame: tagged(&vxlan_in, VID + 1),
                want: Err(DropReason::VlanMismatch),
            },
            Case {
                name: "fabric, untagged on a VLAN fabric",
                vlan: Some(VID),
                port: 0,
                frame: vxlan_in.clone(),
                want: Err(DropReason::VlanMismatch),
            },
            Case {
                name: "fabric, priority-tagged (VLAN id 0) on a VLAN fabric",
                vlan: Some(VID),
                port: 0,
                frame: tagged(&vxlan_in, 0),
                want: Err(DropReason::VlanMismatch),
            },
            Case {
                name: "fabric, tagged on an untagged fabric",
                vlan: None,
                port: 0,
                frame: tagged(&vxlan_in, VID),
                want: Err(DropReason::VlanMismatch),
            },
            Case {
                name: "fabric, priority-tagged on an untagged fabric, accepted",
                vlan: None,
                port: 0,
                frame: tagged(&vxlan_in, 0),
                want: Ok((3, eth(A_MAC, NEIGH, 0x0800, &inner([10, 3, 0, 9], 64)))),
            },
            Case {
                name: "fabric, untagged on an untagged fabric",
                vlan: None,
                port: 0,
                frame: vxlan_in.clone(),
                want: Ok((3, eth(A_MAC, NEIGH, 0x0800, &inner([10, 3, 0, 9], 64)))),
            },
            Case {
                name: "fabric, 802.1ad outer tag with our VLAN id",
                vlan: Some(VID),
                port: 0,
                frame: {
                    let mut f = tagged(&vxlan_in, VID);
                    f[12..14].copy_from_slice(&[0x88, 0xa8]);
                    f
                },
                want: Err(DropReason::VlanMismatch),
            },
            Case {
                name: "host -> fabric is tagged",
                vlan: Some(VID),
                port: 1,
                frame: host_out.clone(),
                want: Ok((0, tagged(&host_out, VID))),
            },
            Case {
                name: "host -> fabric already on the VLAN is not tagged twice",
                vlan: Some(VID),
                port: 1,
                frame: tagged(&host_out, VID),
                want: Ok((0, tagged(&host_out, VID))),
            },
            Case {
                name: "host -> untagged fabric is unchanged",
                vlan: None,
                port: 1,
                frame: host_out.clone(),
                want: Ok((0, host_out.clone())),
            },
            Case {
                name: "fabric -> host (not a tunnel): the tag is removed",
                vlan: Some(VID),
                port: 0,
                frame: tagged(
                    &eth(
                        FAB_MAC,
                        NEIGH,
                        0x0800,
                        &ipv4(REMOTE, NODE, 6, 64, 3, &[0u8; 20]),
                    ),
                    VID,
                ),
                want: Ok((
                    1,
                    eth(
                        FAB_MAC,
                        NEIGH,
                        0x0800,
                        &ipv4(REMOTE, NODE, 6, 64, 3, &[0u8; 20]),
                    ),
                )),
            },
        ];
        for c in cases {
            let mut n = node(c.vlan);
            let got = n.send(c.port, &c.frame);
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn vlan_fabric_counts_the_mismatch_by_name() {
        assert_eq!(DropReason::VlanMismatch.as_str(), "vlan_mismatch");
        assert!(DropReason::ALL.contains(&DropReason::VlanMismatch));
    }

    /// Fabric frames to a pod under policy join the burst's batched flow lookup
    /// (VXLAN and MPLS over UDP), and the per-packet path takes the result: the
    /// first packet of a flow learns it, the rest of the burst and the next burst
    /// hit it. A VLAN fabric's frames are not guessed and still work.
    #[test]
    fn fabric_flows_join_the_batched_lookup() {
        let inner_ip = ipv4([10, 3, 0, 9], A_IP, 17, 64, 1, &udp(7000, 53, &[0; 8]));
        // From the remote VTEP to this node.
        let outer = |proto, id, payload: &[u8]| {
            eth(
                FAB_MAC,
                NEIGH,
                0x0800,
                &ipv4(REMOTE, NODE, proto, 64, id, payload),
            )
        };
        let vx = outer(
            17,
            1,
            &udp(
                40000,
                4789,
                &[vxlan(5001), eth(A_MAC, NEIGH, 0x0800, &inner_ip)].concat(),
            ),
        );
        let mu = outer(
            17,
            2,
            &udp(40001, 6635, &[&mpls(17, 64)[..], &inner_ip].concat()),
        );
        let vx_tagged = tagged(&vx, VID);
        let burst = |n: &mut Node, frames: &[&[u8]]| -> Vec<u16> {
            let out = n.process(0, Some(RSS), frames);
            assert!(out.drops.is_empty(), "{:?}", n.pipe.counters());
            out.tx.iter().map(|t| t.port).collect()
        };
        let want = ft_key(VrfId(1), &extract_ip(pkt_vrf(VrfId(1)), &inner_ip).unwrap()).unwrap();

        // Below the threshold fabric frames are looked up one by one.
        let mut n = node_with_policy(None, true);
        assert_eq!(burst(&mut n, &[&vx, &vx, &mu]), vec![3]);
        assert_eq!((n.pipe.ahead.parsed, n.pipe.ahead.guessed), (0, 0));
        assert_eq!(n.pipe.counters().flows_learned, 1);
        assert!(n.flows.len() < GUESS_MIN_FLOWS);

        let mut n = node_with_policy(None, true);
        n.pipe = Pipeline::new(64).with_guess_min_flows(0);
        assert_eq!(burst(&mut n, &[&vx, &vx, &mu]), vec![3]);
        let a = &n.pipe.ahead;
        assert_eq!((a.parsed, a.guessed), (0b111, 0b111));
        // One flow: the three frames share one key and one lookup.
        assert_eq!(a.slot[..3], [0, 0, 0]);
        assert_eq!(a.keys[0], want);
        assert_eq!(a.found[0], None, "nothing learned before the burst");
        let c = n.pipe.counters();
        assert_eq!((c.flows_learned, c.flow_hits), (1, 2));
        assert_eq!(burst(&mut n, &[&mu, &vx]), vec![3]);
        assert_eq!(n.pipe.ahead.slot[..2], [0, 0]);
        assert!(n.pipe.ahead.found[0].is_some());
        assert_eq!(n.pipe.counters().flow_hits, 4);
        // Runs of hits on one flow are counted in one update, all of them by the
        // end of each burst: 5 packets of the inner frame's length.
        let id = n.flows.lookup(&want).unwrap().id;
        let c = n.flows.counters(id).unwrap();
        assert_eq!((c.packets, c.bytes), (5, 5 * (14 + inner_ip.len() as u64)));

        let mut t = node_with_policy(Some(VID), true);
        t.pipe = Pipeline::new(64).with_guess_min_flows(0);
        assert_eq!(burst(&mut t, &[&vx_tagged, &vx_tagged]), vec![3]);
        assert_eq!((t.pipe.ahead.parsed, t.pipe.ahead.guessed), (0, 0));
        let c = t.pipe.counters();
        assert_eq!((c.flows_learned, c.flow_hits), (1, 1));
    }

    /// A VXLAN frame from the remote VTEP to this node carrying `inner` in `vni`.
    fn vxlan_from_remote(inner: &[u8], vni: u32) -> Vec<u8> {
        let payload = udp(40000, 4789, &[vxlan(vni), inner.to_vec()].concat());
        eth(
            FAB_MAC,
            NEIGH,
            0x0800,
            &ipv4(REMOTE, NODE, 17, 64, 7, &payload),
        )
    }

    /// `node_with_policy`, with VNI 5002 routed in VRF 1 (a VRF-translate next-hop):
    /// its packets to 10.2/16 leave over MPLSoUDP, whose outer source port comes
    /// from the flow hash.
    fn node_with_routed_vni(policy: bool) -> Node {
        node_with_updates(
            None,
            policy,
            vec![
                Update::AddNh(NhId(30), NhSpec::VrfTranslate { vrf: VrfId(1) }),
                Update::AddVni(Vni(5002), NhId(30)),
            ],
        )
    }

    /// Without an RSS hash, a routed packet's tunnel entropy is the hash of its
    /// flow key as parsed: in the pod's VRF for a pod's packet, in VRF 0 for
    /// the inner packet of a fabric frame (before its VNI's VRF applies).
    #[test]
    fn routed_entropy_without_rss_is_the_parsed_keys_hash() {
        let mut n = node_with_routed_vni(false);
        let rm = FibConfig::default().router_mac.0;
        let inner_ip = ipv4(
            [10, 3, 0, 9],
            [10, 2, 0, 5],
            17,
            64,
            1,
            &udp(9000, 53, &[0; 8]),
        );
        let pod_ip = ipv4(A_IP, [10, 2, 0, 5], 17, 64, 1, &udp(9001, 53, &[0; 8]));
        let routed = eth(rm, NEIGH, 0x0800, &inner_ip);
        let vx = vxlan_from_remote(&routed, 5002);
        let from_pod = eth(rm, A_MAC, 0x0800, &pod_ip);
        for (port, frame, inner, vrf) in [(0u16, &vx, &routed, 0u32), (3, &from_pod, &from_pod, 1)]
        {
            let out = n.process(port, None, &[frame]);
            assert!(out.drops.is_empty(), "{:?}", n.pipe.counters());
            let d = out.tx[0].bufs[0].data();
            let key = extract_ethernet(crate::packet::VrfId(vrf), inner)
                .unwrap()
                .key;
            assert_eq!(
                u16::from_be_bytes([d[34], d[35]]),
                entropy(key.hash()),
                "from port {port}"
            );
        }
    }

    /// A decapsulated frame whose inner headers the look-ahead parsed is not
    /// parsed again: whether fabric frames are guessed or not, every output
    /// byte, drop, counter and learned flow is the same.
    #[test]
    fn guessed_fabric_frames_forward_exactly_as_unguessed_ones() {
        let vx = vxlan_from_remote;
        let inner_udp = |sport: u16| {
            let ip = ipv4([10, 3, 0, 9], A_IP, 17, 64, 1, &udp(sport, 53, &[0; 8]));
            eth(A_MAC, NEIGH, 0x0800, &ip)
        };
        // Inner IPv4 with options (the shortcut parser declines it), a TCP
        // flow, a truncated inner header, inner ARP, an unknown VNI, and an
        // MPLS frame (its IP payload is parsed per packet either way).
        let mut opts = ipv4([10, 3, 0, 8], A_IP, 17, 64, 1, &udp(1, 2, &[0; 4]));
        opts[0] = 0x46;
        opts.splice(20..20, [1u8, 1, 1, 0]);
        opts[3] += 4;
        let tcp = ipv4([10, 3, 0, 7], A_IP, 6, 64, 1, &[0u8; 20]);
        let mut short = inner_udp(9);
        short.truncate(14 + 12);
        let arp = eth(A_MAC, NEIGH, 0x0806, &[0; 28]);
        let mu = eth(
            FAB_MAC,
            NEIGH,
            0x0800,
            &ipv4(
                REMOTE,
                NODE,
                17,
                64,
                8,
                &udp(40001, 6635, &[&mpls(17, 64)[..], &tcp].concat()),
            ),
        );
        // VNI 5002 is routed ([`node_with_routed_vni`]).
        let routed = |sport: u16| {
            let ip = ipv4(
                [10, 3, 0, 9],
                [10, 2, 0, 5],
                17,
                64,
                1,
                &udp(sport, 53, &[0; 8]),
            );
            vx(
                &eth(FibConfig::default().router_mac.0, NEIGH, 0x0800, &ip),
                5002,
            )
        };
        let mut frames: Vec<Vec<u8>> = (0..8).map(|i| vx(&inner_udp(7000 + i), 5001)).collect();
        frames.extend((0..4).map(|i| routed(9000 + i)));
        frames.extend([
            vx(&eth(A_MAC, NEIGH, 0x0800, &opts), 5001),
            vx(&eth(A_MAC, NEIGH, 0x0800, &tcp), 5001),
            vx(&short, 5001),
            vx(&arp, 5001),
            vx(&inner_udp(7000), 5999),
            mu,
        ]);
        let run = |guess: bool| {
            let mut n = node_with_routed_vni(true);
            if guess {
                n.pipe = Pipeline::new(64).with_guess_min_flows(0);
            }
            let mut seen = Vec::new();
            let mut guessed = 0;
            // Twice: learning, then hits.
            let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            for _ in 0..2 {
                let out = n.process(0, None, &frames);
                guessed |= n.pipe.ahead.guessed;
                for t in &out.tx {
                    seen.extend(t.bufs.iter().map(|b| (t.port, b.data().to_vec())));
                }
                seen.extend(out.drops.iter().map(|b| (u16::MAX, b.data().to_vec())));
            }
            let c = n.pipe.counters();
            let counts = (c.rx, c.tx, c.drops, c.flows_learned, c.flow_hits);
            let mut flows: Vec<_> = n
                .flows
                .iter()
                .map(|r| (r.key, r.value, r.counters.packets, r.counters.bytes))
                .collect();
            flows.sort_by_key(|f| format!("{:?}", f.0));
            (seen, counts, flows, guessed)
        };
        let (plain, guessed) = (run(false), run(true));
        assert_eq!(plain.3, 0);
        // The bridged UDP flows, the routed ones, and the frames with options
        // and TCP were guessed.
        assert_eq!(guessed.3 & 0x3fff, 0x3fff, "{:#b}", guessed.3);
        assert_eq!(plain.0, guessed.0);
        assert_eq!(plain.1, guessed.1);
        assert_eq!(plain.2, guessed.2);
        assert_eq!(guessed.1 .3, 10, "flows learned: {:?}", guessed.1);
    }
}
