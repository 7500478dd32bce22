//! Longest-prefix match for IPv4 and IPv6.
//!
//! IPv4 uses DPDK's DIR-24-8 (`rte_lpm`, `rte_fib` "dir24_8"):
//!
//! * `tbl24` has one 32-bit entry per value of the address's top 24 bits;
//! * an entry is either a *leaf* (target id + prefix depth) or an *extension*
//!   pointing to a 256-entry group in `tbl8` that resolves the last 8 bits.
//!
//! IPv6 uses a hash table of (prefix, length) probed once per length in use, longest
//! first (as VPP's IPv6 FIB; see [`super::prefix_hash`]), with the same leaf words.
//! A trie with 8-bit strides below a 24-bit top, as `rte_fib6`, walks up to 14
//! dependent levels for a `/128`; the probes by length are independent, so a batch
//! overlaps all of them (measured in BENCHMARKS.md).
//!
//! Routes share *targets*: `targets` holds each distinct (next-hop, label) pair once,
//! and a leaf names its row. A vRouter has far fewer distinct targets (tunnel
//! next-hops times the labels behind them: thousands) than routes (up to millions),
//! so the target table stays in cache and an IPv4 lookup is at most two dependent
//! table reads (`tbl24`, then a `tbl8` group) plus a cached row. [`LpmIndex`] keeps
//! the rows reference-counted: a row whose last route goes away is freed and its id
//! reused. Changing a route's target rewrites the entries the route covers (those
//! under its prefix whose depth is the route's length are its own, since one route
//! of each length covers an address), unless the route is its old target's only
//! user and the new target is not in the table yet: then the row itself changes.
//!
//! Every array (and the IPv6 hash's buckets) is a [`CowVec`]: a cloned `Lpm` shares
//! all chunks with the original, and an update copies only the chunks it writes, so
//! a snapshot published before an edit never sees it. [`Lpm`] is the read-only part the data plane uses;
//! [`LpmIndex`] is the control-side bookkeeping (the route list, target reference
//! counts, free lists) needed to insert and delete.
//!
//! Entry encoding (`u32`):
//! `bit 31` valid, `bit 30` extension; extension: `bits 0..30` group index;
//! leaf: `bits 22..30` prefix depth (0..=128), `bits 0..22` target id. An empty
//! entry is 0. A table holds at most [`MAX_TARGETS`] distinct targets and
//! [`MAX_GROUPS`] groups; running out of either is an [`LpmFull`] error.
//!
//! A group is folded back into its parent entry only when its 256 entries are the
//! same leaf of a route no longer than the parent's level (as `rte_lpm` does), so a
//! route longer than 24 bits always sits in a group: two routes of one length with
//! one target give identical entries, and folding them would lose where one ends.

use std::collections::HashMap;
use std::sync::Arc;

use super::cow::{Chunk, CowVec, CHUNK_BITS, CHUNK_LEN};
use super::prefix_hash::PrefixHash;
use super::{mask, NhId};
use crate::dpdk::prefetch;

/// Chunks of an IPv4 table's `tbl24` (2^24 entries).
const TBL24_CHUNKS: usize = 1 << (24 - CHUNK_BITS);

/// Addresses walked together by the batch lookups.
const WALK: usize = 64;

/// Index in `tbl8` of the IPv4 address's last byte in the group entry `e` points to.
#[inline(always)]
fn group_index(e: u32, ip: u32) -> usize {
    (((e & GROUP_MASK) as usize) << 8) | (ip & 0xff) as usize
}

/// All ones when entry `e` is an extension, else zero (a select without a branch).
#[inline(always)]
fn ext_mask(e: u32) -> u32 {
    u32::from(e & EXT != 0).wrapping_neg()
}

pub(super) const VALID: u32 = 1 << 31;
const EXT: u32 = 1 << 30;
pub(super) const DEPTH_SHIFT: u32 = 22;
const TARGET_MASK: u32 = (1 << DEPTH_SHIFT) - 1;
const GROUP_MASK: u32 = EXT - 1;
const NO_LABEL: u32 = u32::MAX;

/// The most distinct route targets one table holds (target id width).
pub const MAX_TARGETS: usize = 1 << DEPTH_SHIFT;
/// The most routes a batch may leave in one table. As many as there are target ids,
/// so a table within this bound never runs out of them.
pub const MAX_ROUTES: usize = MAX_TARGETS;
/// The most 256-entry groups one table holds.
pub const MAX_GROUPS: usize = 1 << 22;

/// What a route resolves to: a next-hop and the MPLS label or VXLAN VNI to push when
/// the next-hop is a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteTarget {
    /// The next-hop.
    pub nh: NhId,
    /// The MPLS label or VNI for tunnel next-hops.
    pub label: Option<u32>,
}

/// One row of the target table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    nh: u32,
    label: u32,
}

impl Row {
    const NONE: Row = Row {
        nh: 0,
        label: NO_LABEL,
    };

    fn from_target(t: RouteTarget) -> Self {
        Row {
            nh: t.nh.0,
            label: t.label.unwrap_or(NO_LABEL),
        }
    }

    #[inline]
    fn target(self) -> RouteTarget {
        RouteTarget {
            nh: NhId(self.nh),
            label: if self.label == NO_LABEL {
                None
            } else {
                Some(self.label)
            },
        }
    }
}

#[inline]
pub(super) fn leaf_entry(target: u32, depth: u8) -> u32 {
    VALID | (u32::from(depth) << DEPTH_SHIFT) | target
}

#[inline]
fn depth_of(e: u32) -> u8 {
    ((e & GROUP_MASK) >> DEPTH_SHIFT) as u8
}

/// Whether `e` is a leaf of a route of length `len`.
#[inline]
fn is_leaf_of(e: u32, len: u8) -> bool {
    e & (VALID | EXT) == VALID && depth_of(e) == len
}

/// One write to an [`Lpm`], recorded while a batch edits the table so that another
/// copy of the table's previous version can be brought up to date by replaying the
/// writes ([`Lpm::replay`]) instead of copying the chunks they touched.
#[derive(Debug, Clone)]
pub(super) enum LpmOp {
    /// `tbl24[i] = v`.
    Top(usize, u32),
    /// `tbl8[i] = v`.
    Grp(usize, u32),
    /// Every entry of group `g` becomes `v` (a new group).
    FillGroup(usize, u32),
    /// `tbl8` grows by one group.
    GrowGroups,
    /// Chunk `c` of `tbl24` becomes this shared uniform chunk.
    TopChunk(usize, Chunk<u32>),
    /// The target table grows by one row.
    GrowTargets,
    /// Target row `id` takes this target.
    Target(usize, RouteTarget),
    /// An IPv6 prefix (as halves, so that an op takes 24 bytes) is added with
    /// this leaf.
    V6Insert([u64; 2], u8, u32),
    /// An IPv6 prefix's leaf changes.
    V6Set([u64; 2], u8, u32),
    /// An IPv6 prefix is removed.
    V6Remove([u64; 2], u8),
}

fn halves(key: u128) -> [u64; 2] {
    [(key >> 64) as u64, key as u64]
}

fn whole(h: [u64; 2]) -> u128 {
    (u128::from(h[0]) << 64) | u128::from(h[1])
}

/// The writes an [`Lpm`] records while an edit is logged: at most `room` more; past
/// that they are dropped and `lost` is set.
#[derive(Debug, Clone, Default)]
pub(super) struct OpLog {
    /// The writes, appended.
    pub(super) ops: Vec<LpmOp>,
    /// How many more may be appended.
    pub(super) room: usize,
    /// Whether some were dropped for want of room.
    pub(super) lost: bool,
}

impl OpLog {
    fn push(&mut self, op: LpmOp) {
        if self.room == 0 {
            self.lost = true;
        } else {
            self.room -= 1;
            self.ops.push(op);
        }
    }
}

/// The data-plane half of a longest-prefix-match table (cheap to clone, immutable
/// once published).
#[derive(Debug, Clone)]
pub struct Lpm {
    width: u8,
    tbl24: Arc<CowVec<u32>>,
    tbl8: CowVec<u32>,
    /// IPv6 routes (empty in an IPv4 table).
    prefixes: PrefixHash,
    targets: CowVec<Row>,
    /// The writes of the edit in progress, while one is recorded
    /// ([`Lpm::start_log`]); `None` in every published version.
    log: Option<OpLog>,
}

impl Lpm {
    /// An empty IPv4 table.
    pub fn new_v4() -> Self {
        Self::new(32)
    }

    /// An empty IPv6 table.
    pub fn new_v6() -> Self {
        Self::new(128)
    }

    fn new(width: u8) -> Self {
        Self {
            width,
            tbl24: Arc::new(CowVec::filled(if width == 32 { 1 << 24 } else { 0 }, 0)),
            tbl8: CowVec::filled(0, 0),
            prefixes: PrefixHash::new(),
            targets: CowVec::filled(0, Row::NONE),
            log: None,
        }
    }

    /// The target of entry `e` (None when empty).
    #[inline]
    fn resolve(&self, e: u32) -> Option<RouteTarget> {
        if e & VALID == 0 {
            return None;
        }
        // A leaf's target id always names an allocated row.
        self.targets
            .slot((e & TARGET_MASK) as usize)
            .map(|r| r.target())
    }

    /// Longest-prefix match of an IPv4 address (as a host-order integer).
    #[inline]
    pub fn lookup_v4(&self, ip: u32) -> Option<RouteTarget> {
        let mut e = *self.tbl24.slot((ip >> 8) as usize)?;
        if e & EXT != 0 {
            e = *self.tbl8.slot(group_index(e, ip))?;
        }
        self.resolve(e)
    }

    /// Longest-prefix match of an IPv6 address (as a host-order integer).
    #[inline]
    pub fn lookup_v6(&self, ip: u128) -> Option<RouteTarget> {
        self.resolve(self.prefixes.lookup(ip))
    }

    /// Longest-prefix match in this table's family (IPv4 keys in the low 32 bits).
    #[inline]
    pub fn lookup(&self, key: u128) -> Option<RouteTarget> {
        if self.width == 32 {
            self.lookup_v4(key as u32)
        } else {
            self.lookup_v6(key)
        }
    }

    /// Look up a batch of IPv4 addresses; `out[i]` gets the result for `ips[i]`.
    /// The walk goes level by level over the whole batch, prefetching each
    /// level's entries before reading them, so that the cache and TLB misses of
    /// the batch overlap instead of adding up.
    pub fn lookup_v4_batch(&self, ips: &[u32], out: &mut [Option<RouteTarget>]) {
        // `tbl24` always has 2^24 entries: as an array of its chunks, indexed by the
        // address's top bits, it needs no bounds checks.
        let Some(tbl24) = self.tbl24.chunk_array::<TBL24_CHUNKS>() else {
            // Not an IPv4 table: no address has a route.
            out.iter_mut().for_each(|o| *o = None);
            return;
        };
        let top = |ip: u32| {
            &tbl24[(ip >> (8 + CHUNK_BITS)) as usize][(ip >> 8) as usize & (CHUNK_LEN - 1)]
        };
        let tbl8 = &self.tbl8;
        for (ips, out) in ips.chunks(WALK).zip(out.chunks_mut(WALK)) {
            let mut e = [0u32; WALK];
            for ip in ips {
                prefetch(top(*ip));
            }
            // Whether an address goes on to a group is random across a burst, so
            // both steps run for every address with selects instead of branches
            // (an address without a group reads entry 0, which stays cached).
            for (ip, e) in ips.iter().zip(e.iter_mut()) {
                *e = *top(*ip);
                if let Some(r) = tbl8.slot(group_index(*e, *ip) & ext_mask(*e) as usize) {
                    prefetch(r);
                }
            }
            for (ip, e) in ips.iter().zip(e.iter_mut()) {
                let m = ext_mask(*e);
                let t8 = tbl8.slot(group_index(*e, *ip) & m as usize).copied();
                *e = (t8.unwrap_or(0) & m) | (*e & !m);
                // A cache hit with a few thousand targets; hides the miss when
                // nearly every route has its own.
                if let Some(r) = self.targets.slot((*e & TARGET_MASK) as usize) {
                    prefetch(r);
                }
            }
            for (e, o) in e.iter().zip(out.iter_mut()) {
                *o = self.resolve(*e);
            }
        }
    }

    /// Look up a batch of IPv6 addresses; `out[i]` gets the result for `ips[i]`.
    /// Every hash probe of the batch (one per address and length in use) is
    /// prefetched before any is read.
    pub fn lookup_v6_batch(&self, ips: &[u128], out: &mut [Option<RouteTarget>]) {
        for (ips, out) in ips.chunks(WALK).zip(out.chunks_mut(WALK)) {
            let mut e = [0u32; WALK];
            let e = e.get_mut(..ips.len()).unwrap_or(&mut []);
            self.prefixes.lookup_batch(ips, e);
            for (e, o) in e.iter().zip(out.iter_mut()) {
                *o = self.resolve(*e);
            }
        }
    }

    /// Number of 256-entry groups allocated (used and free; always 0 for IPv6).
    pub fn groups(&self) -> usize {
        self.tbl8.len() / 256
    }

    /// Number of 64-byte hash buckets allocated (IPv6; always 0 for IPv4).
    pub fn prefix_buckets(&self) -> usize {
        self.prefixes.buckets()
    }

    /// Number of target rows allocated (used and free).
    pub fn target_rows(&self) -> usize {
        self.targets.len()
    }

    // ---- editing (control side only) ----

    /// Start recording this table's writes (see [`LpmOp`]) into `log`.
    pub(super) fn start_log(&mut self, log: OpLog) {
        self.log = Some(log);
    }

    /// Stop recording; the log given to [`Lpm::start_log`] with this table's
    /// writes since appended.
    pub(super) fn take_log(&mut self) -> OpLog {
        self.log.take().unwrap_or_default()
    }

    fn record(&mut self, op: LpmOp) {
        if let Some(log) = self.log.as_mut() {
            log.push(op);
        }
    }

    /// Apply writes recorded on another copy of this table. When this copy held the
    /// version that copy held before the writes, both then hold the same entries.
    /// Chunks this copy alone holds are written in place.
    pub(super) fn replay(&mut self, ops: &[LpmOp]) {
        let top = |o: &LpmOp| match o {
            LpmOp::Top(i, v) => Some((*i, *v)),
            _ => None,
        };
        let grp = |o: &LpmOp| match o {
            LpmOp::Grp(i, v) => Some((*i, *v)),
            _ => None,
        };
        let tbl24 = Arc::make_mut(&mut self.tbl24);
        let mut rest = ops;
        while let Some(op) = rest.first() {
            // A run of entry writes into one table takes each chunk writable once.
            let run = rest.iter().map_while(top).count();
            if run > 0 {
                tbl24.set_each(rest.iter().map_while(top));
                rest = rest.get(run..).unwrap_or_default();
                continue;
            }
            let run = rest.iter().map_while(grp).count();
            if run > 0 {
                self.tbl8.set_each(rest.iter().map_while(grp));
                rest = rest.get(run..).unwrap_or_default();
                continue;
            }
            match op {
                LpmOp::Top(..) | LpmOp::Grp(..) => {}
                LpmOp::FillGroup(g, v) => {
                    self.tbl8.fill(g << 8, 256, *v);
                }
                LpmOp::GrowGroups => {
                    self.tbl8.grow(256);
                }
                LpmOp::TopChunk(c, chunk) => {
                    tbl24.set_chunk(*c, chunk.clone());
                }
                LpmOp::GrowTargets => {
                    self.targets.grow(1);
                }
                LpmOp::Target(id, t) => {
                    self.targets.set(*id, Row::from_target(*t));
                }
                LpmOp::V6Insert(k, l, v) => self.prefixes.insert(whole(*k), *l, *v),
                LpmOp::V6Set(k, l, v) => {
                    self.prefixes.set(whole(*k), *l, *v);
                }
                LpmOp::V6Remove(k, l) => {
                    self.prefixes.remove(whole(*k), *l);
                }
            }
            rest = rest.get(1..).unwrap_or_default();
        }
    }

    /// Bytes of one recorded write.
    #[cfg(test)]
    pub(super) const OP_BYTES: usize = std::mem::size_of::<LpmOp>();

    /// Whether `other` holds the same entries in every table.
    #[cfg(test)]
    pub(super) fn same_entries(&self, other: &Lpm) -> bool {
        fn same<T: Clone + PartialEq>(a: &CowVec<T>, b: &CowVec<T>) -> bool {
            a.len() == b.len() && (0..a.len().div_ceil(CHUNK_LEN)).all(|c| a.chunk(c) == b.chunk(c))
        }
        self.width == other.width
            && same(&self.tbl24, &other.tbl24)
            && same(&self.tbl8, &other.tbl8)
            && same(&self.targets, &other.targets)
            && self.prefixes.same_entries(&other.prefixes)
    }

    /// A new group's 256 entries, all `e`.
    fn fill_group(&mut self, g: u32, e: u32) {
        self.tbl8.fill((g as usize) << 8, 256, e);
        self.record(LpmOp::FillGroup(g as usize, e));
    }

    /// One more group; returns its number.
    fn grow_groups(&mut self) -> u32 {
        let first = self.tbl8.grow(256);
        self.record(LpmOp::GrowGroups);
        (first >> 8) as u32
    }

    /// Chunk `c` of `tbl24` becomes the shared uniform `chunk`.
    fn set_top_chunk(&mut self, c: usize, chunk: Chunk<u32>) {
        Arc::make_mut(&mut self.tbl24).set_chunk(c, chunk.clone());
        self.record(LpmOp::TopChunk(c, chunk));
    }

    /// One more target row; returns its id.
    fn grow_targets(&mut self) -> usize {
        let id = self.targets.grow(1);
        self.record(LpmOp::GrowTargets);
        id
    }

    /// Target row `id` takes `t`.
    fn set_target(&mut self, id: u32, t: RouteTarget) {
        self.targets.set(id as usize, Row::from_target(t));
        self.record(LpmOp::Target(id as usize, t));
    }

    fn v6_insert(&mut self, key: u128, len: u8, leaf: u32) {
        self.prefixes.insert(key, len, leaf);
        self.record(LpmOp::V6Insert(halves(key), len, leaf));
    }

    fn v6_set(&mut self, key: u128, len: u8, leaf: u32) {
        self.prefixes.set(key, len, leaf);
        self.record(LpmOp::V6Set(halves(key), len, leaf));
    }

    fn v6_remove(&mut self, key: u128, len: u8) {
        self.prefixes.remove(key, len);
        self.record(LpmOp::V6Remove(halves(key), len));
    }

    fn read(&self, slot: Slot) -> u32 {
        match slot {
            Slot::Top(i) => self.tbl24.get(i).copied().unwrap_or(0),
            Slot::Grp(i) => self.tbl8.get(i).copied().unwrap_or(0),
        }
    }

    fn write(&mut self, slot: Slot, v: u32) {
        match slot {
            Slot::Top(i) => {
                Arc::make_mut(&mut self.tbl24).set(i, v);
                self.record(LpmOp::Top(i, v));
            }
            Slot::Grp(i) => {
                self.tbl8.set(i, v);
                self.record(LpmOp::Grp(i, v));
            }
        }
    }

    /// Rewrite the leaves under `xs = tbl24[start..start + n]` (with `top`) or
    /// `tbl8[start..start + n]`, all in one chunk: each leaf `e` for which `leaf(e)`
    /// gives a new value takes it, and the groups the range's extensions point to
    /// are edited the same way. A chunk is made writable (copied when a snapshot
    /// shares it) once per range, and only when one of its leaves changes.
    fn edit_range(
        &mut self,
        top: bool,
        start: usize,
        n: usize,
        leaf: &impl Fn(u32) -> Option<u32>,
    ) {
        let (c, off) = (start >> CHUNK_BITS, start & (CHUNK_LEN - 1));
        let mut deeper = Vec::new();
        let mut dirty = false;
        {
            let v: &CowVec<u32> = if top { &self.tbl24 } else { &self.tbl8 };
            for &e in v
                .chunk(c)
                .and_then(|ch| ch.get(off..off + n))
                .unwrap_or(&[])
            {
                if e & EXT != 0 {
                    deeper.push(e & GROUP_MASK);
                } else {
                    dirty |= leaf(e).is_some();
                }
            }
        }
        if dirty {
            let v = if top {
                Arc::make_mut(&mut self.tbl24)
            } else {
                &mut self.tbl8
            };
            let log = &mut self.log;
            if let Some(xs) = v.chunk_mut(c).and_then(|ch| ch.get_mut(off..off + n)) {
                for (j, e) in xs.iter_mut().enumerate().filter(|(_, e)| **e & EXT == 0) {
                    if let Some(new) = leaf(*e) {
                        *e = new;
                        if let Some(log) = log.as_mut() {
                            let i = start + j;
                            log.push(if top {
                                LpmOp::Top(i, new)
                            } else {
                                LpmOp::Grp(i, new)
                            });
                        }
                    }
                }
            }
        }
        for g in deeper {
            self.edit_range(false, (g as usize) << 8, 256, leaf);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Top(usize),
    Grp(usize),
}

impl Slot {
    fn offset(self, k: usize) -> Slot {
        match self {
            Slot::Top(i) => Slot::Top(i + k),
            Slot::Grp(i) => Slot::Grp(i + k),
        }
    }
}

/// Levels of groups below `tbl24`: IPv4's 8 bits below the top 24. (IPv6 routes
/// live in the prefix hash; no walk goes deeper.)
const MAX_LEVELS: usize = 1;

/// The (parent slot, group) pairs a walk below `tbl24` passed, outermost first.
/// Kept on the stack: a route edit allocates nothing for its walk.
#[derive(Debug, Clone, Copy)]
struct Path {
    len: usize,
    steps: [(Slot, u32); MAX_LEVELS],
}

impl Path {
    const EMPTY: Path = Path {
        len: 0,
        steps: [(Slot::Top(0), 0); MAX_LEVELS],
    };

    /// Append a step. A walk has at most [`MAX_LEVELS`]; a deeper one would keep
    /// its outer steps only, and `collapse`, which stops at the first group it
    /// cannot fold from the innermost out, would then fold nothing: a table that is
    /// larger than needed, never a wrong one.
    fn push(&mut self, step: (Slot, u32)) {
        if let Some(s) = self.steps.get_mut(self.len) {
            *s = step;
            self.len += 1;
        }
    }

    fn steps(&self) -> &[(Slot, u32)] {
        self.steps.get(..self.len).unwrap_or(&[])
    }
}

/// The control-side bookkeeping of one [`Lpm`]: the routes it holds, the target
/// rows' reference counts and free lists.
#[derive(Debug, Clone)]
pub struct LpmIndex {
    width: u8,
    /// Route -> target id.
    routes: HashMap<RouteKey, u32, ahash::RandomState>,
    /// Routes per length (IPv4; the IPv6 hash counts its own).
    len_counts: Vec<u32>,
    /// Per length up to 24: which prefixes of that length are routes, so that the
    /// search for a deleted route's cover skips absent lengths without a hash probe.
    short: Vec<PrefixBits>,
    /// Target -> its row.
    target_ids: HashMap<RouteTarget, u32, ahash::RandomState>,
    /// Routes per target row (0 for a free row).
    target_refs: Vec<u32>,
    /// The target of each row (stale for a free row).
    rows: Vec<RouteTarget>,
    free_targets: Vec<u32>,
    free_groups: Vec<u32>,
    /// Per `tbl24` chunk: `Some(v)` when every entry of the chunk is `v` (a leaf or
    /// empty), so that a route covering the whole chunk swaps in one shared chunk.
    uniform: Vec<Option<u32>>,
}

/// A route in [`LpmIndex`]: its prefix bits as two words (8-byte aligned, so that a
/// map entry with its target id takes 32 bytes, not 48) and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RouteKey {
    hi: u64,
    lo: u64,
    len: u8,
}

impl RouteKey {
    fn new(key: u128, len: u8) -> Self {
        Self {
            hi: (key >> 64) as u64,
            lo: key as u64,
            len,
        }
    }

    fn key(self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }
}

/// Prefix lengths up to which [`LpmIndex`] keeps a [`PrefixBits`] per length.
const SHORT: usize = 24;
/// log2 of the bits in one [`PrefixBits`] page (4 KiB).
const PAGE_BITS: u32 = 15;
const PAGE_WORDS: usize = 1 << (PAGE_BITS - 6);

/// A set of prefixes of one length, as a bitmap over their bits in 4 KiB pages
/// allocated on first use (a table with a few short routes pays a few pages).
#[derive(Debug, Clone, Default)]
struct PrefixBits {
    pages: Vec<Option<Box<[u64; PAGE_WORDS]>>>,
}

impl PrefixBits {
    fn get(&self, i: usize) -> bool {
        let word = self
            .pages
            .get(i >> PAGE_BITS)
            .and_then(|p| p.as_ref())
            .and_then(|p| p.get((i >> 6) & (PAGE_WORDS - 1)));
        word.is_some_and(|w| w & (1 << (i & 63)) != 0)
    }

    fn set(&mut self, i: usize, on: bool) {
        let page = i >> PAGE_BITS;
        if self.pages.len() <= page {
            if !on {
                return;
            }
            self.pages.resize(page + 1, None);
        }
        let Some(slot) = self.pages.get_mut(page) else {
            return;
        };
        let p = slot.get_or_insert_with(|| Box::new([0; PAGE_WORDS]));
        if let Some(w) = p.get_mut((i >> 6) & (PAGE_WORDS - 1)) {
            if on {
                *w |= 1 << (i & 63);
            } else {
                *w &= !(1 << (i & 63));
            }
        }
    }
}

/// Why an LPM edit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LpmFull {
    /// No target id left ([`MAX_TARGETS`] distinct targets in use).
    Routes,
    /// No group index left.
    Groups,
}

impl LpmIndex {
    /// Bookkeeping for an empty IPv4 table.
    pub fn new_v4() -> Self {
        Self::new(32)
    }

    /// Bookkeeping for an empty IPv6 table.
    pub fn new_v6() -> Self {
        Self::new(128)
    }

    fn new(width: u8) -> Self {
        Self {
            width,
            routes: HashMap::with_hasher(super::table::hasher()),
            len_counts: if width == 32 { vec![0; 33] } else { Vec::new() },
            short: if width == 32 {
                vec![PrefixBits::default(); SHORT + 1]
            } else {
                Vec::new()
            },
            target_ids: HashMap::with_hasher(super::table::hasher()),
            target_refs: Vec::new(),
            rows: Vec::new(),
            free_targets: Vec::new(),
            free_groups: Vec::new(),
            uniform: if width == 32 {
                vec![Some(0); (1 << 24) / CHUNK_LEN]
            } else {
                Vec::new()
            },
        }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Number of distinct targets the routes point to.
    pub fn targets(&self) -> usize {
        self.target_ids.len()
    }

    /// The route for exactly `key/len`.
    pub fn get(&self, key: u128, len: u8) -> Option<RouteTarget> {
        self.routes
            .get(&RouteKey::new(key, len))
            .map(|id| self.row(*id))
    }

    /// All routes as `(key, len, target)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u128, u8, RouteTarget)> + '_ {
        self.routes
            .iter()
            .map(|(k, id)| (k.key(), k.len, self.row(*id)))
    }

    /// The target of row `id`.
    fn row(&self, id: u32) -> RouteTarget {
        self.rows.get(id as usize).copied().unwrap_or(RouteTarget {
            nh: NhId(0),
            label: None,
        })
    }

    /// Take a reference on the row of `target`, adding the row if it is new.
    fn acquire(&mut self, lpm: &mut Lpm, target: RouteTarget) -> Result<u32, LpmFull> {
        if let Some(&id) = self.target_ids.get(&target) {
            if let Some(r) = self.target_refs.get_mut(id as usize) {
                *r += 1;
            }
            return Ok(id);
        }
        let id = match self.free_targets.pop() {
            Some(id) => id,
            None => {
                if lpm.targets.len() >= MAX_TARGETS {
                    return Err(LpmFull::Routes);
                }
                self.target_refs.push(0);
                self.rows.push(target);
                lpm.grow_targets() as u32
            }
        };
        lpm.set_target(id, target);
        if let Some(r) = self.target_refs.get_mut(id as usize) {
            *r = 1;
        }
        if let Some(r) = self.rows.get_mut(id as usize) {
            *r = target;
        }
        self.target_ids.insert(target, id);
        Ok(id)
    }

    /// Drop a reference on row `id` (holding `target`); the last one frees the row.
    fn release(&mut self, id: u32, target: RouteTarget) {
        if let Some(r) = self.target_refs.get_mut(id as usize) {
            *r = r.saturating_sub(1);
            if *r == 0 {
                self.target_ids.remove(&target);
                self.free_targets.push(id);
            }
        }
    }

    /// Add or replace route `key/len` (host bits must be clear) in `lpm`; returns
    /// the target it replaced.
    pub fn insert(
        &mut self,
        lpm: &mut Lpm,
        key: u128,
        len: u8,
        target: RouteTarget,
    ) -> Result<Option<RouteTarget>, LpmFull> {
        let rk = RouteKey::new(key, len);
        if let Some(&id) = self.routes.get(&rk) {
            let old = self.row(id);
            if old != target {
                self.retarget(lpm, key, len, id, old, target)?;
            }
            return Ok(Some(old));
        }
        let id = self.acquire(lpm, target)?;
        let new = leaf_entry(id, len);
        if self.width == 128 {
            lpm.v6_insert(key, len, new);
            self.routes.insert(rk, id);
            return Ok(None);
        }
        let (base, start, count) = match self.locate(lpm, key, len, true) {
            Ok(Some((base, start, count, _))) => (base, start, count),
            Ok(None) => {
                self.release(id, target);
                return Ok(None);
            }
            Err(e) => {
                self.release(id, target);
                return Err(e);
            }
        };
        // The new route takes every leaf under its prefix that is empty or of a
        // route no longer than it.
        let take = |v: u32| (v & VALID == 0 || depth_of(v) <= len).then_some(new);
        match base {
            Slot::Top(_) => self.top_range(lpm, start, count, new, take),
            Slot::Grp(b) => lpm.edit_range(false, b + start, count, &take),
        }
        self.routes.insert(rk, id);
        if let Some(c) = self.len_counts.get_mut(usize::from(len)) {
            *c += 1;
        }
        self.mark_short(key, len, true);
        Ok(None)
    }

    /// Point existing route `key/len` (row `id`, `old`) at `target`.
    fn retarget(
        &mut self,
        lpm: &mut Lpm,
        key: u128,
        len: u8,
        id: u32,
        old: RouteTarget,
        target: RouteTarget,
    ) -> Result<(), LpmFull> {
        let sole = self.target_refs.get(id as usize).copied() == Some(1);
        if sole && !self.target_ids.contains_key(&target) {
            // The route is the row's only user: the row itself changes.
            self.target_ids.remove(&old);
            self.target_ids.insert(target, id);
            lpm.set_target(id, target);
            if let Some(r) = self.rows.get_mut(id as usize) {
                *r = target;
            }
            return Ok(());
        }
        let new = self.acquire(lpm, target)?;
        if self.width == 128 {
            lpm.v6_set(key, len, leaf_entry(new, len));
        } else {
            self.rewrite(lpm, key, len, leaf_entry(new, len), false);
        }
        self.release(id, old);
        self.routes.insert(RouteKey::new(key, len), new);
        Ok(())
    }

    /// Remove route `key/len`; returns what it pointed to.
    pub fn remove(&mut self, lpm: &mut Lpm, key: u128, len: u8) -> Option<RouteTarget> {
        let id = self.routes.remove(&RouteKey::new(key, len))?;
        let target = self.row(id);
        if self.width == 128 {
            lpm.v6_remove(key, len);
            self.release(id, target);
            return Some(target);
        }
        if let Some(c) = self.len_counts.get_mut(usize::from(len)) {
            *c = c.saturating_sub(1);
        }
        self.mark_short(key, len, false);
        // The longest remaining route that covers this one takes its place.
        let mut repl = 0;
        for l in (0..len).rev() {
            if self.len_counts.get(usize::from(l)).copied().unwrap_or(0) == 0 {
                continue;
            }
            if let Some(bits) = self.short.get(usize::from(l)) {
                if !bits.get(self.top_bits(key, l)) {
                    continue;
                }
            }
            if let Some(pid) = self
                .routes
                .get(&RouteKey::new(key & mask(l, self.width), l))
            {
                repl = leaf_entry(*pid, l);
                break;
            }
        }
        self.rewrite(lpm, key, len, repl, true);
        self.release(id, target);
        Some(target)
    }

    /// The first `len` bits of `key`, as an index.
    fn top_bits(&self, key: u128, len: u8) -> usize {
        match self.width.checked_sub(len) {
            Some(shift) if len > 0 => (key >> shift) as usize,
            _ => 0,
        }
    }

    /// Record in `short` whether `key/len` is a route (lengths up to [`SHORT`]).
    fn mark_short(&mut self, key: u128, len: u8, on: bool) {
        let top = self.top_bits(key, len);
        if let Some(bits) = self.short.get_mut(usize::from(len)) {
            bits.set(top, on);
        }
    }

    /// Replace the leaves of route `key/len` with `repl`; with `collapse`, fold the
    /// groups on its path that became uniform.
    fn rewrite(&mut self, lpm: &mut Lpm, key: u128, len: u8, repl: u32, collapse: bool) {
        let Ok(Some((base, start, count, path))) = self.locate(lpm, key, len, false) else {
            return;
        };
        // The route's own leaves are those of its length under its prefix.
        let own = |v: u32| is_leaf_of(v, len).then_some(repl);
        match base {
            Slot::Top(_) => self.top_range(lpm, start, count, repl, own),
            Slot::Grp(b) => lpm.edit_range(false, b + start, count, &own),
        }
        if collapse {
            self.collapse(lpm, path.steps());
        }
    }

    /// Apply a leaf edit (see [`Lpm::edit_range`]) to `tbl24[start..start + count]`.
    /// A whole chunk known to be uniform is replaced at once by a shared chunk of
    /// `new` when `leaf` changes its value (and left alone otherwise); the other
    /// entries are edited a chunk's part at a time.
    fn top_range(
        &mut self,
        lpm: &mut Lpm,
        start: usize,
        count: usize,
        new: u32,
        leaf: impl Fn(u32) -> Option<u32>,
    ) {
        let end = start + count;
        let mut shared: Option<Chunk<u32>> = None;
        let mut i = start;
        while i < end {
            let c = i >> CHUNK_BITS;
            if i & (CHUNK_LEN - 1) == 0 && end - i >= CHUNK_LEN {
                if let Some(Some(v)) = self.uniform.get(c).copied() {
                    if v & EXT == 0 && leaf(v).is_some() {
                        let chunk = shared
                            .get_or_insert_with(|| CowVec::uniform_chunk(new))
                            .clone();
                        lpm.set_top_chunk(c, chunk);
                        if let Some(u) = self.uniform.get_mut(c) {
                            *u = Some(new);
                        }
                    }
                    i += CHUNK_LEN;
                    continue;
                }
            }
            let run = (((c + 1) << CHUNK_BITS) - i).min(end - i);
            lpm.edit_range(true, i, run, &leaf);
            self.mark_top(i);
            i += run;
        }
    }

    fn mark_top(&mut self, i: usize) {
        if let Some(u) = self.uniform.get_mut(i >> CHUNK_BITS) {
            *u = None;
        }
    }

    /// Find the slot range that `key/len` covers: `(base, start, count, path)`, where
    /// `path` lists the (parent slot, group) pairs walked. With `create`, missing
    /// groups are allocated; without, a missing group yields `None`.
    #[allow(clippy::type_complexity)]
    fn locate(
        &mut self,
        lpm: &mut Lpm,
        key: u128,
        len: u8,
        create: bool,
    ) -> Result<Option<(Slot, usize, usize, Path)>, LpmFull> {
        let w = u32::from(self.width);
        let top = (key >> (w - 24)) as usize & 0xff_ffff;
        if len <= 24 {
            let count = 1usize << (24 - len);
            return Ok(Some((Slot::Top(0), top & !(count - 1), count, Path::EMPTY)));
        }
        let mut path = Path::EMPTY;
        let mut slot = Slot::Top(top);
        let mut pos = 24u32;
        loop {
            let e = lpm.read(slot);
            let g = if e & EXT != 0 {
                e & GROUP_MASK
            } else if !create {
                return Ok(None);
            } else {
                let g = self.alloc_group(lpm)?;
                lpm.fill_group(g, e);
                lpm.write(slot, VALID | EXT | g);
                if let Slot::Top(i) = slot {
                    self.mark_top(i);
                }
                g
            };
            path.push((slot, g));
            let byte = ((key >> (w - pos - 8)) & 0xff) as usize;
            let base = Slot::Grp((g as usize) << 8);
            if u32::from(len) <= pos + 8 {
                let count = 1usize << (pos + 8 - u32::from(len));
                return Ok(Some((base, byte & !(count - 1), count, path)));
            }
            slot = base.offset(byte);
            pos += 8;
        }
    }

    fn alloc_group(&mut self, lpm: &mut Lpm) -> Result<u32, LpmFull> {
        if let Some(g) = self.free_groups.pop() {
            return Ok(g);
        }
        if lpm.groups() >= MAX_GROUPS {
            return Err(LpmFull::Groups);
        }
        Ok(lpm.grow_groups())
    }

    /// Fold groups whose 256 entries became the same leaf back into their parent,
    /// from the deepest one up. Only a leaf no longer than the parent's level is
    /// folded: a longer one may be one of several routes with the same target and
    /// length, which must keep their own entries.
    fn collapse(&mut self, lpm: &mut Lpm, path: &[(Slot, u32)]) {
        for (level, &(slot, g)) in path.iter().enumerate().rev() {
            let base = (g as usize) << 8;
            // A group is 256 entries inside one chunk; compare them as a slice
            // (one pass the compiler vectorizes, not 255 checked reads).
            let off = base & (CHUNK_LEN - 1);
            let Some(xs) = lpm
                .tbl8
                .chunk(base >> CHUNK_BITS)
                .and_then(|ch| ch.get(off..off + 256))
            else {
                return;
            };
            let first = xs.first().copied().unwrap_or(0);
            if first & EXT != 0 || usize::from(depth_of(first)) > 24 + 8 * level {
                return;
            }
            if xs.iter().fold(0, |acc, &e| acc | (e ^ first)) != 0 {
                return;
            }
            lpm.write(slot, first);
            self.free_groups.push(g);
            if let Slot::Top(i) = slot {
                self.mark_top(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::test_rng::Rng;

    fn t(nh: u32, label: Option<u32>) -> RouteTarget {
        RouteTarget {
            nh: NhId(nh),
            label,
        }
    }

    type Reference = HashMap<(u128, u8), RouteTarget>;

    fn naive(
        routes: &HashMap<(u128, u8), RouteTarget>,
        width: u8,
        ip: u128,
    ) -> Option<RouteTarget> {
        routes
            .iter()
            .filter(|((k, l), _)| ip & mask(*l, width) == *k)
            .max_by_key(|((_, l), _)| *l)
            .map(|(_, t)| *t)
    }

    fn check_random(width: u8, lens: &[u8], rounds: usize, seed: u64) {
        let mut rng = Rng(seed);
        let mut lpm = if width == 32 {
            Lpm::new_v4()
        } else {
            Lpm::new_v6()
        };
        let mut idx = if width == 32 {
            LpmIndex::new_v4()
        } else {
            LpmIndex::new_v6()
        };
        let mut reference = HashMap::new();
        let mut keys = Vec::new();
        // Addresses cluster under a few top bits so that prefixes nest.
        let (base, base_len): (u128, u32) = if width == 32 {
            (0x0a00_0000, 8)
        } else {
            (0x2001_0db8u128 << 96, 32)
        };
        let spread_bits: u32 = if width == 32 { 20 } else { 40 };
        let rand_addr = |rng: &mut Rng| -> u128 {
            let low = u128::from(rng.next()) & ((1u128 << spread_bits) - 1);
            let hi = if width == 128 {
                u128::from(rng.next() & 0xffff)
            } else {
                0
            };
            base | (low << (u32::from(width) - base_len - spread_bits)) | hi
        };
        let mut snapshots: Vec<(Lpm, Reference)> = Vec::new();
        for round in 0..rounds {
            let op = rng.next() % 10;
            if op < 6 || keys.is_empty() {
                let len = lens[(rng.next() as usize) % lens.len()];
                let key = rand_addr(&mut rng) & mask(len, width);
                let target = t((rng.next() % 1000) as u32 + 1, Some(round as u32));
                idx.insert(&mut lpm, key, len, target).unwrap();
                if reference.insert((key, len), target).is_none() {
                    keys.push((key, len));
                }
            } else {
                let i = (rng.next() as usize) % keys.len();
                let (key, len) = keys.swap_remove(i);
                assert_eq!(
                    idx.remove(&mut lpm, key, len),
                    reference.remove(&(key, len))
                );
            }
            if round % 50 == 0 {
                snapshots.push((lpm.clone(), reference.clone()));
            }
            // A batch longer than one walk, so that the chunking is exercised.
            let mut ips = Vec::with_capacity(70);
            for _ in 0..70 {
                let ip = if rng.next() % 2 == 0 && !keys.is_empty() {
                    let (k, l) = keys[(rng.next() as usize) % keys.len()];
                    k | (u128::from(rng.next()) & !mask(l, width) & mask(width, width))
                } else {
                    rand_addr(&mut rng)
                };
                ips.push(ip);
            }
            let mut batch = vec![None; ips.len()];
            if width == 32 {
                let v4: Vec<u32> = ips.iter().map(|i| *i as u32).collect();
                lpm.lookup_v4_batch(&v4, &mut batch);
            } else {
                lpm.lookup_v6_batch(&ips, &mut batch);
            }
            for (ip, b) in ips.iter().zip(&batch) {
                let want = naive(&reference, width, *ip);
                assert_eq!(lpm.lookup(*ip), want, "ip {ip:x}");
                assert_eq!(*b, want, "batch, ip {ip:x}");
            }
        }
        assert_eq!(idx.len(), reference.len());
        // Old versions are unaffected by later edits.
        for (old, r) in &snapshots {
            for _ in 0..50 {
                let ip = rand_addr(&mut rng);
                assert_eq!(old.lookup(ip), naive(r, width, ip));
            }
        }
        // Deleting everything frees every group again.
        for (key, len) in keys {
            idx.remove(&mut lpm, key, len).unwrap();
        }
        assert!(idx.is_empty());
        assert_eq!(idx.free_groups.len(), lpm.groups());
        assert_eq!(lpm.lookup(rand_addr(&mut rng)), None);
    }

    #[test]
    fn v4_random_against_naive() {
        check_random(
            32,
            &[0, 8, 12, 16, 20, 22, 24, 25, 26, 28, 30, 31, 32],
            700,
            0x1234_5678,
        );
    }

    #[test]
    fn v6_random_against_naive() {
        check_random(
            128,
            &[0, 16, 32, 40, 48, 56, 60, 64, 72, 96, 120, 127, 128],
            600,
            0xdead_beef,
        );
    }

    #[test]
    fn basic_v4() {
        let mut lpm = Lpm::new_v4();
        let mut idx = LpmIndex::new_v4();
        let k = |a: [u8; 4]| u128::from(u32::from_be_bytes(a));
        idx.insert(&mut lpm, k([10, 0, 0, 0]), 8, t(1, None))
            .unwrap();
        idx.insert(&mut lpm, k([10, 1, 2, 0]), 24, t(2, Some(17)))
            .unwrap();
        idx.insert(&mut lpm, k([10, 1, 2, 128]), 25, t(3, None))
            .unwrap();
        let ip = |a: [u8; 4]| u32::from_be_bytes(a);
        assert_eq!(lpm.lookup_v4(ip([10, 9, 9, 9])), Some(t(1, None)));
        assert_eq!(lpm.lookup_v4(ip([10, 1, 2, 5])), Some(t(2, Some(17))));
        assert_eq!(lpm.lookup_v4(ip([10, 1, 2, 200])), Some(t(3, None)));
        assert_eq!(lpm.lookup_v4(ip([11, 0, 0, 1])), None);
        assert_eq!(lpm.groups(), 1);
        // Replacing the only route of a target rewrites its row.
        idx.insert(&mut lpm, k([10, 1, 2, 0]), 24, t(4, None))
            .unwrap();
        assert_eq!(lpm.lookup_v4(ip([10, 1, 2, 5])), Some(t(4, None)));
        idx.remove(&mut lpm, k([10, 1, 2, 128]), 25).unwrap();
        assert_eq!(lpm.lookup_v4(ip([10, 1, 2, 200])), Some(t(4, None)));
        // The group collapsed back into tbl24 and is free for reuse.
        assert_eq!(idx.free_groups, vec![0]);
        let mut out = [None; 2];
        lpm.lookup_v4_batch(&[ip([10, 1, 2, 1]), ip([12, 0, 0, 0])], &mut out);
        assert_eq!(out, [Some(t(4, None)), None]);
        // An IPv6 table has no IPv4 routes: a batch clears what `out` held.
        Lpm::new_v6().lookup_v4_batch(&[ip([10, 1, 2, 1]), 0], &mut out);
        assert_eq!(out, [None, None]);
    }

    fn tables(width: u8) -> (Lpm, LpmIndex) {
        if width == 32 {
            (Lpm::new_v4(), LpmIndex::new_v4())
        } else {
            (Lpm::new_v6(), LpmIndex::new_v6())
        }
    }

    /// Longest match by linear search over a plain list of routes.
    fn longest(routes: &[(u128, u8, RouteTarget)], width: u8, ip: u128) -> Option<RouteTarget> {
        let mut best: Option<(u8, RouteTarget)> = None;
        for &(k, l, t) in routes {
            if ip & mask(l, width) == k && best.is_none_or(|(bl, _)| l > bl) {
                best = Some((l, t));
            }
        }
        best.map(|(_, t)| t)
    }

    /// The index's reference counts, rows and free list agree with its routes.
    fn check_refs(idx: &LpmIndex, lpm: &Lpm) {
        let mut counts: HashMap<RouteTarget, u32> = HashMap::new();
        for (_, _, t) in idx.iter() {
            *counts.entry(t).or_default() += 1;
        }
        assert_eq!(idx.targets(), counts.len());
        for (t, n) in &counts {
            let id = idx.target_ids[t];
            assert_eq!(idx.target_refs[id as usize], *n, "refs of {t:?}");
            assert_eq!(lpm.targets.get(id as usize).map(|r| r.target()), Some(*t));
        }
        for id in &idx.free_targets {
            assert_eq!(idx.target_refs[*id as usize], 0);
        }
        assert_eq!(idx.free_targets.len() + counts.len(), lpm.target_rows());
    }

    /// Every address of `ips` resolves as the reference says, one by one and batched.
    fn check_all(lpm: &Lpm, routes: &[(u128, u8, RouteTarget)], width: u8, ips: &[u128]) {
        let mut batch = vec![None; ips.len()];
        if width == 32 {
            let v4: Vec<u32> = ips.iter().map(|i| *i as u32).collect();
            lpm.lookup_v4_batch(&v4, &mut batch);
        } else {
            lpm.lookup_v6_batch(ips, &mut batch);
        }
        for (ip, b) in ips.iter().zip(&batch) {
            let want = longest(routes, width, *ip);
            assert_eq!(lpm.lookup(*ip), want, "ip {ip:x}");
            assert_eq!(*b, want, "batch, ip {ip:x}");
        }
    }

    fn set_route(routes: &mut Vec<(u128, u8, RouteTarget)>, k: u128, l: u8, t: RouteTarget) {
        routes.retain(|r| (r.0, r.1) != (k, l));
        routes.push((k, l, t));
    }

    #[test]
    fn retarget_with_longer_routes_beneath_v4() {
        let a = t(1, Some(10));
        let b = t(2, None);
        let c = t(3, Some(30));
        let k = |x: [u8; 4]| u128::from(u32::from_be_bytes(x));
        // 10.1.0.0/22 and its edges, plus addresses far away.
        let mut ips: Vec<u128> = (0..1024u128).map(|i| k([10, 1, 0, 0]) + i).collect();
        ips.extend([
            0,
            u128::from(u32::MAX),
            k([10, 0, 255, 255]),
            k([10, 1, 4, 0]),
        ]);
        ips.extend([k([10, 200, 0, 1]), k([11, 0, 0, 0]), k([138, 1, 2, 3])]);
        for plen in [0u8, 4, 8, 15, 16, 20, 23] {
            let (mut lpm, mut idx) = tables(32);
            let mut routes = Vec::new();
            let parent = k([10, 1, 2, 0]) & mask(plen, 32);
            let mut children = vec![
                (k([10, 1, 2, 0]), 24, a),
                (k([10, 1, 2, 128]), 25, b),
                (k([10, 1, 2, 7]), 32, a),
                (k([10, 1, 3, 64]), 27, b),
            ];
            if plen < 16 {
                children.push((k([10, 1, 0, 0]), 16, a));
            }
            assert_eq!(idx.insert(&mut lpm, parent, plen, a), Ok(None));
            set_route(&mut routes, parent, plen, a);
            for &(ck, cl, ct) in &children {
                assert_eq!(idx.insert(&mut lpm, ck, cl, ct), Ok(None));
                set_route(&mut routes, ck, cl, ct);
            }
            check_all(&lpm, &routes, 32, &ips);
            // The parent moves away from the target it shares with some children.
            let before = lpm.clone();
            let before_routes = routes.clone();
            assert_eq!(idx.insert(&mut lpm, parent, plen, c), Ok(Some(a)));
            set_route(&mut routes, parent, plen, c);
            check_all(&lpm, &routes, 32, &ips);
            check_all(&before, &before_routes, 32, &ips);
            check_refs(&idx, &lpm);
            // A child joins the parent's new target, then leaves it again.
            for &(ck, cl, ct) in &children {
                assert_eq!(idx.insert(&mut lpm, ck, cl, c), Ok(Some(ct)));
                set_route(&mut routes, ck, cl, c);
                check_all(&lpm, &routes, 32, &ips);
            }
            check_refs(&idx, &lpm);
            assert_eq!(idx.targets(), 1);
            for &(ck, cl, ct) in children.iter().rev() {
                assert_eq!(idx.insert(&mut lpm, ck, cl, ct), Ok(Some(c)));
                set_route(&mut routes, ck, cl, ct);
                check_all(&lpm, &routes, 32, &ips);
            }
            // The parent comes back to the children's target.
            assert_eq!(idx.insert(&mut lpm, parent, plen, b), Ok(Some(c)));
            set_route(&mut routes, parent, plen, b);
            check_all(&lpm, &routes, 32, &ips);
            check_refs(&idx, &lpm);
            // Removing the children one by one uncovers the parent's new target.
            for &(ck, cl, _) in &children {
                idx.remove(&mut lpm, ck, cl).unwrap();
                routes.retain(|r| (r.0, r.1) != (ck, cl));
                check_all(&lpm, &routes, 32, &ips);
            }
            idx.remove(&mut lpm, parent, plen).unwrap();
            assert!(idx.is_empty());
            assert_eq!(idx.free_groups.len(), lpm.groups());
            check_refs(&idx, &lpm);
            check_all(&lpm, &[], 32, &ips);
        }
    }

    #[test]
    fn retarget_with_longer_routes_beneath_v6() {
        let a = t(1, None);
        let b = t(2, Some(7));
        let c = t(3, None);
        let site = 0xfd00_0000_00ab_cdef_0000_0000_0000_0000u128;
        let children = [
            (site, 64u8, a),
            (site | (0x8000u128 << 48), 66, b),
            (site | 0x1234, 128, a),
            (site | 0x1200, 120, b),
            (site | (1u128 << 32), 100, a),
        ];
        let mut ips: Vec<u128> = Vec::new();
        for (ck, cl, _) in children {
            for d in [0u128, 1, 0xff, 0x100, 0x1_0000, 1 << 40, 1 << 63] {
                ips.push(ck | (d & !mask(cl, 128)));
                ips.push(ck ^ d);
            }
        }
        ips.extend([0, u128::MAX, site ^ (1 << 64), site ^ (1 << 100)]);
        for plen in [0u8, 7, 16, 24, 40, 48, 60] {
            let (mut lpm, mut idx) = tables(128);
            let mut routes = Vec::new();
            let parent = site & mask(plen, 128);
            idx.insert(&mut lpm, parent, plen, a).unwrap();
            set_route(&mut routes, parent, plen, a);
            for (ck, cl, ct) in children {
                idx.insert(&mut lpm, ck, cl, ct).unwrap();
                set_route(&mut routes, ck, cl, ct);
            }
            check_all(&lpm, &routes, 128, &ips);
            for (pt, ct) in [(c, a), (b, c), (a, b)] {
                idx.insert(&mut lpm, parent, plen, pt).unwrap();
                set_route(&mut routes, parent, plen, pt);
                check_all(&lpm, &routes, 128, &ips);
                for (ck, cl, _) in children {
                    idx.insert(&mut lpm, ck, cl, ct).unwrap();
                    set_route(&mut routes, ck, cl, ct);
                    check_all(&lpm, &routes, 128, &ips);
                }
                check_refs(&idx, &lpm);
            }
            idx.remove(&mut lpm, parent, plen).unwrap();
            routes.retain(|r| (r.0, r.1) != (parent, plen));
            check_all(&lpm, &routes, 128, &ips);
            for (ck, cl, _) in children {
                idx.remove(&mut lpm, ck, cl).unwrap();
                routes.retain(|r| (r.0, r.1) != (ck, cl));
                check_all(&lpm, &routes, 128, &ips);
            }
            assert_eq!(idx.free_groups.len(), lpm.groups());
            check_refs(&idx, &lpm);
        }
    }

    #[test]
    fn delete_restores_parent_everywhere() {
        let a = t(1, Some(1));
        let b = t(2, Some(2));
        let c = t(3, None);
        let k = |x: [u8; 4]| u128::from(u32::from_be_bytes(x));
        let all = [
            (k([10, 0, 0, 0]), 8u8, a),
            (k([10, 1, 0, 0]), 16, b),
            (k([10, 1, 2, 0]), 23, a),
            (k([10, 1, 2, 0]), 24, c),
            (k([10, 1, 2, 128]), 25, b),
            (k([10, 1, 3, 64]), 26, c),
            (k([10, 1, 2, 130]), 32, a),
            (k([10, 1, 3, 65]), 32, b),
            (k([10, 1, 3, 66]), 32, b),
        ];
        let mut ips: Vec<u128> = (0..1024u128).map(|i| k([10, 1, 0, 0]) + i).collect();
        ips.extend((0..256u128).map(|i| k([10, 1, 0, 0]) + (i << 8) + 5));
        ips.extend([k([10, 9, 9, 9]), k([9, 255, 255, 255]), k([11, 0, 0, 0])]);
        let n = all.len();
        // Deepest first, shallowest first, and interleaved.
        let orders: [Vec<usize>; 3] = [
            (0..n).rev().collect(),
            (0..n).collect(),
            (0..n).map(|i| (i * 4) % n).collect(),
        ];
        for order in orders {
            let (mut lpm, mut idx) = tables(32);
            let mut routes = all.to_vec();
            for (k, l, t) in all {
                idx.insert(&mut lpm, k, l, t).unwrap();
            }
            check_all(&lpm, &routes, 32, &ips);
            for i in order {
                let (k, l, t) = all[i];
                let before = lpm.clone();
                let before_routes = routes.clone();
                assert_eq!(idx.remove(&mut lpm, k, l), Some(t));
                assert_eq!(idx.remove(&mut lpm, k, l), None);
                routes.retain(|r| (r.0, r.1) != (k, l));
                check_all(&lpm, &routes, 32, &ips);
                // The snapshot taken before the delete still has the route.
                check_all(&before, &before_routes, 32, &ips);
                check_refs(&idx, &lpm);
            }
            assert_eq!(idx.free_groups.len(), lpm.groups());
            assert_eq!(idx.targets(), 0);
        }
    }

    #[test]
    fn shared_target_refcounts_and_reuse() {
        let (mut lpm, mut idx) = tables(32);
        let a = t(1, Some(100));
        let b = t(2, Some(200));
        let keys: Vec<(u128, u8)> = (0..1000u128)
            .map(|i| {
                if i % 4 == 0 {
                    ((0x0b00_0000 | (i << 8)), 24)
                } else {
                    (0x0a00_0000 | (i * 7), 32)
                }
            })
            .collect();
        for &(k, l) in &keys {
            idx.insert(&mut lpm, k, l, a).unwrap();
        }
        assert_eq!(idx.targets(), 1);
        assert_eq!(lpm.target_rows(), 1);
        check_refs(&idx, &lpm);
        for (n, &(k, l)) in keys.iter().enumerate() {
            assert_eq!(idx.insert(&mut lpm, k, l, b), Ok(Some(a)));
            assert_eq!(lpm.lookup(k), Some(b));
            if n + 1 < keys.len() {
                assert_eq!(idx.targets(), 2);
            }
            if n % 100 == 0 {
                check_refs(&idx, &lpm);
            }
        }
        // The last route left `a`: its row is free.
        assert_eq!(idx.targets(), 1);
        assert_eq!(idx.free_targets.len(), 1);
        assert_eq!(lpm.target_rows(), 2);
        check_refs(&idx, &lpm);
        // A new target takes the freed row.
        let c = t(3, None);
        idx.insert(&mut lpm, 0x0c00_0000, 8, c).unwrap();
        assert_eq!(lpm.target_rows(), 2);
        assert!(idx.free_targets.is_empty());
        // The only route of a target changing to a new target rewrites the row in
        // place; a snapshot keeps the old row.
        let before = lpm.clone();
        let d = t(4, Some(4));
        assert_eq!(idx.insert(&mut lpm, 0x0c00_0000, 8, d), Ok(Some(c)));
        assert_eq!(lpm.target_rows(), 2);
        assert_eq!(lpm.lookup(0x0c01_0203), Some(d));
        assert_eq!(before.lookup(0x0c01_0203), Some(c));
        check_refs(&idx, &lpm);
        for &(k, l) in &keys {
            assert_eq!(idx.remove(&mut lpm, k, l), Some(b));
            assert_eq!(lpm.lookup(k), None);
        }
        assert_eq!(idx.targets(), 1);
        check_refs(&idx, &lpm);
        idx.remove(&mut lpm, 0x0c00_0000, 8).unwrap();
        assert_eq!(idx.targets(), 0);
        assert_eq!(idx.free_targets.len(), 2);
        idx.insert(&mut lpm, 0x0d00_0000, 16, a).unwrap();
        assert_eq!(lpm.target_rows(), 2);
        assert_eq!(lpm.lookup(0x0d00_ffff), Some(a));
        check_refs(&idx, &lpm);
        assert_eq!(idx.free_groups.len(), lpm.groups());
    }

    /// Random inserts, target changes and deletes against [`longest`] over a list,
    /// with targets drawn from a small pool so that routes share rows.
    fn differential(width: u8, rounds: usize, seed: u64) {
        let mut rng = Rng(seed);
        let (mut lpm, mut idx) = tables(width);
        let mut routes: Vec<(u128, u8, RouteTarget)> = Vec::new();
        let pool: Vec<RouteTarget> = (0..6u32)
            .map(|i| t(i + 1, (i % 2 == 0).then_some(100 + i)))
            .collect();
        // Mostly under one /16 (IPv4) or a few /48s (IPv6) so that prefixes of every
        // length nest; sometimes anywhere.
        let rand_addr = |rng: &mut Rng| -> u128 {
            let r = rng.next();
            let anywhere = rng.next() % 8 == 0;
            if width == 32 {
                if anywhere {
                    u128::from(r as u32)
                } else {
                    0xc0a8_0000 | u128::from(r & 0xffff)
                }
            } else if anywhere {
                (u128::from(r) << 64) | u128::from(rng.next())
            } else {
                (0xfd00u128 << 112)
                    | (u128::from(r & 3) << 80)
                    | (u128::from((r >> 8) & 0xff) << 64)
                    | (u128::from((r >> 16) & 0xff) << 100)
                    | u128::from((r >> 24) & 0xffff)
            }
        };
        let mut snapshots = Vec::new();
        for round in 0..rounds {
            let op = rng.next() % 10;
            if op < 5 || routes.is_empty() {
                let len = (rng.next() % (u64::from(width) + 1)) as u8;
                let key = rand_addr(&mut rng) & mask(len, width);
                let target = pool[(rng.next() as usize) % pool.len()];
                let old = routes
                    .iter()
                    .find(|r| (r.0, r.1) == (key, len))
                    .map(|r| r.2);
                assert_eq!(idx.insert(&mut lpm, key, len, target), Ok(old));
                set_route(&mut routes, key, len, target);
            } else if op < 7 {
                let i = (rng.next() as usize) % routes.len();
                let (key, len, old) = routes[i];
                let target = pool[(rng.next() as usize) % pool.len()];
                assert_eq!(idx.insert(&mut lpm, key, len, target), Ok(Some(old)));
                routes[i].2 = target;
            } else {
                let i = (rng.next() as usize) % routes.len();
                let (key, len, old) = routes.swap_remove(i);
                assert_eq!(idx.remove(&mut lpm, key, len), Some(old));
            }
            if round % 40 == 0 {
                snapshots.push((lpm.clone(), routes.clone()));
                check_refs(&idx, &lpm);
            }
            let mut ips = Vec::with_capacity(70);
            for _ in 0..70 {
                let ip = if rng.next() % 2 == 0 && !routes.is_empty() {
                    let (k, l, _) = routes[(rng.next() as usize) % routes.len()];
                    let host = (u128::from(rng.next()) << 64) | u128::from(rng.next());
                    k | (host & !mask(l, width) & mask(width, width))
                } else {
                    rand_addr(&mut rng)
                };
                ips.push(ip);
            }
            check_all(&lpm, &routes, width, &ips);
        }
        assert_eq!(idx.len(), routes.len());
        check_refs(&idx, &lpm);
        for (old, r) in &snapshots {
            let ips: Vec<u128> = (0..50).map(|_| rand_addr(&mut rng)).collect();
            check_all(old, r, width, &ips);
        }
        for (key, len, target) in routes {
            assert_eq!(idx.remove(&mut lpm, key, len), Some(target));
        }
        assert!(idx.is_empty());
        assert_eq!(idx.targets(), 0);
        assert_eq!(idx.free_targets.len(), lpm.target_rows());
        assert_eq!(idx.free_groups.len(), lpm.groups());
    }

    #[test]
    fn v4_differential_shared_targets() {
        differential(32, 1500, 0x5eed_0001);
    }

    #[test]
    fn v6_differential_shared_targets() {
        differential(128, 1200, 0x5eed_0002);
    }

    #[test]
    fn same_target_siblings_keep_their_entries() {
        // Two routes of one length tile a whole group with one target: once a
        // longer route beneath one of them goes, the group's entries are all equal,
        // yet it must not fold, or deleting one sibling would lose where it ends.
        let a = t(1, Some(5));
        let b = t(2, None);
        for (width, lo, len) in [
            (32u8, 0x0a00_0000u128, 25u8),
            (32, 0x0a00_0040, 27),
            (128, 0xfd00_0000_0000_0000u128 << 64, 25),
            (128, 0xfd00_0012_3400_0000u128 << 64, 41),
            (128, 0xfd00_0012_3456_7800u128 << 64, 57),
        ] {
            let (mut lpm, mut idx) = tables(width);
            let step = 1u128 << (width - len);
            let hi = lo + step;
            let inside = |k: u128| k | ((step - 1) / 3);
            idx.insert(&mut lpm, lo, len, a).unwrap();
            idx.insert(&mut lpm, hi, len, a).unwrap();
            idx.insert(&mut lpm, lo, len + 1, b).unwrap();
            assert_eq!(lpm.lookup(inside(lo)), Some(b));
            idx.remove(&mut lpm, lo, len + 1).unwrap();
            assert_eq!(lpm.lookup(inside(lo)), Some(a));
            assert_eq!(lpm.lookup(inside(hi)), Some(a));
            idx.remove(&mut lpm, lo, len).unwrap();
            assert_eq!(lpm.lookup(inside(lo)), None, "{lo:x}/{len}");
            assert_eq!(lpm.lookup(inside(hi)), Some(a));
            idx.remove(&mut lpm, hi, len).unwrap();
            assert_eq!(lpm.lookup(inside(hi)), None);
            assert!(idx.is_empty());
            assert_eq!(idx.free_groups.len(), lpm.groups());
            check_refs(&idx, &lpm);
        }
    }

    #[test]
    fn out_of_target_ids_is_an_error() {
        let (mut lpm, mut idx) = tables(32);
        // Pretend every id but the last is taken.
        lpm.targets.grow(MAX_TARGETS - 1);
        idx.target_refs.resize(MAX_TARGETS - 1, 1);
        idx.rows.resize(MAX_TARGETS - 1, t(0, None));
        let (a, b, c) = (t(1, None), t(2, None), t(3, None));
        let (p, q) = (0x0a00_0000u128, 0x0b00_0000u128);
        assert_eq!(idx.insert(&mut lpm, p, 24, a), Ok(None));
        assert_eq!(idx.insert(&mut lpm, q, 24, b), Err(LpmFull::Routes));
        assert_eq!(idx.get(q, 24), None);
        assert_eq!(lpm.lookup(q), None);
        // The only route of a row can change target without a new id.
        assert_eq!(idx.insert(&mut lpm, p, 24, b), Ok(Some(a)));
        assert_eq!(lpm.lookup(p), Some(b));
        // A second route on the row: moving one of them needs an id.
        assert_eq!(idx.insert(&mut lpm, q, 24, b), Ok(None));
        assert_eq!(idx.insert(&mut lpm, q, 24, c), Err(LpmFull::Routes));
        assert_eq!(idx.get(q, 24), Some(b));
        assert_eq!(lpm.lookup(q), Some(b));
        // Freeing the row makes room again.
        idx.remove(&mut lpm, p, 24).unwrap();
        idx.remove(&mut lpm, q, 24).unwrap();
        assert_eq!(idx.insert(&mut lpm, q, 24, c), Ok(None));
        assert_eq!(lpm.lookup(q), Some(c));
    }
}
