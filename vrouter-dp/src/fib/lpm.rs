//! Longest-prefix match for IPv4 and IPv6.
//!
//! The structure is DPDK's DIR-24-8 (`rte_lpm`, `rte_fib` "dir24_8"), extended with
//! further 8-bit strides for IPv6 as in `rte_fib6`'s trie:
//!
//! * `tbl24` has one 32-bit entry per value of the address's top 24 bits;
//! * an entry is either a *leaf* (route index + prefix depth) or an *extension*
//!   pointing to a 256-entry group in `tbl8` that resolves the next 8 bits; a group
//!   entry is again a leaf or an extension (IPv6 only: up to 13 more levels).
//!
//! An IPv4 lookup is at most two memory reads plus the leaf; IPv6 lookups follow the
//! extension chain. Each route owns one *leaf* (`RouteTarget` slot), so changing the
//! next-hop or label of an existing route is one write.
//!
//! Every array is a [`CowVec`]: a cloned `Lpm` shares all chunks with the original,
//! and an update copies only the chunks it writes. [`Lpm`] is the read-only part the
//! data plane uses; [`LpmIndex`] is the control-side bookkeeping (the route list,
//! free lists) needed to insert and delete.
//!
//! Entry encoding (`u32`):
//! `bit 31` valid, `bit 30` extension; extension: `bits 0..30` group index;
//! leaf: `bits 22..30` prefix depth, `bits 0..22` leaf index.

use std::collections::HashMap;
use std::sync::Arc;

use super::cow::{CowVec, CHUNK_BITS, CHUNK_LEN};
use crate::dpdk::prefetch;

/// Addresses walked together by the batch lookups.
const WALK: usize = 64;

/// Index in `tbl8` of the IPv4 address's last byte in the group entry `e` points to.
#[inline(always)]
fn group_index(e: u32, ip: u32) -> usize {
    (((e & GROUP_MASK) as usize) << 8) | (ip & 0xff) as usize
}
use super::{mask, NhId};

const VALID: u32 = 1 << 31;
const EXT: u32 = 1 << 30;
const DEPTH_SHIFT: u32 = 22;
const LEAF_MASK: u32 = (1 << DEPTH_SHIFT) - 1;
const GROUP_MASK: u32 = EXT - 1;
const NO_LABEL: u32 = u32::MAX;

/// The most routes one table holds (leaf index width).
pub const MAX_ROUTES: usize = 1 << DEPTH_SHIFT;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leaf {
    nh: u32,
    label: u32,
}

impl Leaf {
    const NONE: Leaf = Leaf {
        nh: 0,
        label: NO_LABEL,
    };

    fn from_target(t: RouteTarget) -> Self {
        Leaf {
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
fn leaf_entry(leaf: u32, depth: u8) -> u32 {
    VALID | (u32::from(depth) << DEPTH_SHIFT) | leaf
}

#[inline]
fn depth_of(e: u32) -> u8 {
    ((e & GROUP_MASK) >> DEPTH_SHIFT) as u8
}

/// The data-plane half of a longest-prefix-match table (cheap to clone, immutable
/// once published).
#[derive(Debug, Clone)]
pub struct Lpm {
    width: u8,
    tbl24: Arc<CowVec<u32>>,
    tbl8: CowVec<u32>,
    leaves: CowVec<Leaf>,
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
            tbl24: Arc::new(CowVec::filled(1 << 24, 0)),
            tbl8: CowVec::filled(0, 0),
            leaves: CowVec::filled(0, Leaf::NONE),
        }
    }

    #[inline]
    fn leaf(&self, e: u32) -> Option<RouteTarget> {
        if e & VALID == 0 {
            return None;
        }
        self.leaves
            .get((e & LEAF_MASK) as usize)
            .map(|l| l.target())
    }

    /// Longest-prefix match of an IPv4 address (as a host-order integer).
    #[inline]
    pub fn lookup_v4(&self, ip: u32) -> Option<RouteTarget> {
        let mut e = *self.tbl24.get((ip >> 8) as usize)?;
        if e & EXT != 0 {
            e = *self
                .tbl8
                .get((((e & GROUP_MASK) as usize) << 8) | (ip & 0xff) as usize)?;
        }
        self.leaf(e)
    }

    /// Longest-prefix match of an IPv6 address (as a host-order integer).
    #[inline]
    pub fn lookup_v6(&self, ip: u128) -> Option<RouteTarget> {
        let mut e = *self.tbl24.get((ip >> 104) as usize)?;
        let mut shift = 104u32;
        while e & EXT != 0 && shift >= 8 {
            shift -= 8;
            let i = (((e & GROUP_MASK) as usize) << 8) | ((ip >> shift) & 0xff) as usize;
            e = *self.tbl8.get(i)?;
        }
        self.leaf(e)
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
        for (ips, out) in ips.chunks(WALK).zip(out.chunks_mut(WALK)) {
            let mut e = [0u32; WALK];
            for ip in ips {
                if let Some(r) = self.tbl24.get((ip >> 8) as usize) {
                    prefetch(r);
                }
            }
            for ((ip, e), o) in ips.iter().zip(e.iter_mut()).zip(out.iter_mut()) {
                *e = self.tbl24.get((ip >> 8) as usize).copied().unwrap_or(0);
                *o = None;
                self.prefetch_next(*e, *ip as u128, 0);
            }
            for (ip, e) in ips.iter().zip(e.iter_mut()) {
                if *e & EXT != 0 {
                    *e = self.tbl8.get(group_index(*e, *ip)).copied().unwrap_or(0);
                }
                if *e & VALID != 0 {
                    if let Some(l) = self.leaves.get((*e & LEAF_MASK) as usize) {
                        prefetch(l);
                    }
                }
            }
            for (e, o) in e.iter().zip(out.iter_mut()) {
                *o = self.leaf(*e);
            }
        }
    }

    /// Look up a batch of IPv6 addresses; `out[i]` gets the result for `ips[i]`.
    /// Level by level over the batch like [`Lpm::lookup_v4_batch`]: each 8-bit
    /// level's entries are prefetched for every address still walking before any
    /// is read.
    pub fn lookup_v6_batch(&self, ips: &[u128], out: &mut [Option<RouteTarget>]) {
        for (ips, out) in ips.chunks(WALK).zip(out.chunks_mut(WALK)) {
            let mut e = [0u32; WALK];
            for ip in ips {
                if let Some(r) = self.tbl24.get((ip >> 104) as usize) {
                    prefetch(r);
                }
            }
            let mut walking = 0u64;
            for (i, (ip, e)) in ips.iter().zip(e.iter_mut()).enumerate() {
                *e = self.tbl24.get((ip >> 104) as usize).copied().unwrap_or(0);
                if *e & EXT != 0 {
                    walking |= 1 << i;
                    self.prefetch_next(*e, *ip, 96);
                }
            }
            let mut shift = 104u32;
            while walking != 0 && shift >= 8 {
                shift -= 8;
                let mut next = 0u64;
                let mut w = walking;
                while w != 0 {
                    let i = w.trailing_zeros() as usize;
                    w &= w - 1;
                    let (Some(ip), Some(e)) = (ips.get(i), e.get_mut(i)) else {
                        continue;
                    };
                    let g = (((*e & GROUP_MASK) as usize) << 8) | ((ip >> shift) & 0xff) as usize;
                    *e = self.tbl8.get(g).copied().unwrap_or(0);
                    if *e & EXT != 0 && shift >= 8 {
                        next |= 1 << i;
                        self.prefetch_next(*e, *ip, shift - 8);
                    }
                }
                walking = next;
            }
            for (e, o) in e.iter().zip(out.iter_mut()) {
                *o = self.leaf(*e);
            }
        }
    }

    /// Prefetch what entry `e` leads to: its group's entry for the address byte at
    /// `shift`, or its leaf.
    #[inline(always)]
    fn prefetch_next(&self, e: u32, ip: u128, shift: u32) {
        if e & EXT != 0 {
            let g = (((e & GROUP_MASK) as usize) << 8) | ((ip >> shift) & 0xff) as usize;
            if let Some(r) = self.tbl8.get(g) {
                prefetch(r);
            }
        } else if e & VALID != 0 {
            if let Some(l) = self.leaves.get((e & LEAF_MASK) as usize) {
                prefetch(l);
            }
        }
    }

    /// Number of 256-entry groups allocated (used and free).
    pub fn groups(&self) -> usize {
        self.tbl8.len() / 256
    }

    // ---- editing (control side only) ----

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
            }
            Slot::Grp(i) => {
                self.tbl8.set(i, v);
            }
        }
    }

    /// Overwrite every leaf under `slot` whose depth is at most `depth` with `new`.
    fn cover(&mut self, slot: Slot, new: u32, depth: u8) {
        let e = self.read(slot);
        if e & EXT != 0 {
            let base = ((e & GROUP_MASK) as usize) << 8;
            for j in 0..256 {
                self.cover(Slot::Grp(base + j), new, depth);
            }
        } else if e & VALID == 0 || depth_of(e) <= depth {
            self.write(slot, new);
        }
    }

    /// Replace every leaf under `slot` that belongs to route `leaf` with `repl`.
    fn uncover(&mut self, slot: Slot, leaf: u32, repl: u32) {
        let e = self.read(slot);
        if e & EXT != 0 {
            let base = ((e & GROUP_MASK) as usize) << 8;
            for j in 0..256 {
                self.uncover(Slot::Grp(base + j), leaf, repl);
            }
        } else if e & VALID != 0 && e & LEAF_MASK == leaf {
            self.write(slot, repl);
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

/// The control-side bookkeeping of one [`Lpm`]: the routes it holds and free lists.
#[derive(Debug, Clone)]
pub struct LpmIndex {
    width: u8,
    routes: HashMap<(u128, u8), (u32, RouteTarget), ahash::RandomState>,
    len_counts: Vec<u32>,
    free_leaves: Vec<u32>,
    free_groups: Vec<u32>,
    /// Per `tbl24` chunk: `Some(v)` when every entry of the chunk is `v` (a leaf or
    /// empty), so that a route covering the whole chunk swaps in one shared chunk.
    uniform: Vec<Option<u32>>,
}

/// Why an LPM edit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LpmFull {
    /// No leaf index left.
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
            len_counts: vec![0; usize::from(width) + 1],
            free_leaves: Vec::new(),
            free_groups: Vec::new(),
            uniform: vec![Some(0); (1 << 24) / CHUNK_LEN],
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

    /// The route for exactly `key/len`.
    pub fn get(&self, key: u128, len: u8) -> Option<RouteTarget> {
        self.routes.get(&(key, len)).map(|(_, t)| *t)
    }

    /// All routes as `(key, len, target)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u128, u8, RouteTarget)> + '_ {
        self.routes.iter().map(|(&(k, l), &(_, t))| (k, l, t))
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
        if let Some((leaf, t)) = self.routes.get_mut(&(key, len)) {
            let old = std::mem::replace(t, target);
            lpm.leaves.set(*leaf as usize, Leaf::from_target(target));
            return Ok(Some(old));
        }
        let leaf = match self.free_leaves.pop() {
            Some(l) => l,
            None => {
                if lpm.leaves.len() >= MAX_ROUTES {
                    return Err(LpmFull::Routes);
                }
                lpm.leaves.grow(1) as u32
            }
        };
        lpm.leaves.set(leaf as usize, Leaf::from_target(target));
        let new = leaf_entry(leaf, len);
        let (base, start, count, _) = match self.locate(lpm, key, len, true) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.free_leaves.push(leaf);
                return Err(e);
            }
        };
        if let Slot::Top(_) = base {
            self.top_range(
                lpm,
                start,
                count,
                new,
                |v| v & EXT == 0 && (v & VALID == 0 || depth_of(v) <= len),
                |lpm, slot| lpm.cover(slot, new, len),
            );
        } else {
            for k in 0..count {
                lpm.cover(base.offset(start + k), new, len);
            }
        }
        self.routes.insert((key, len), (leaf, target));
        if let Some(c) = self.len_counts.get_mut(usize::from(len)) {
            *c += 1;
        }
        Ok(None)
    }

    /// Remove route `key/len`; returns what it pointed to.
    pub fn remove(&mut self, lpm: &mut Lpm, key: u128, len: u8) -> Option<RouteTarget> {
        let (leaf, target) = self.routes.remove(&(key, len))?;
        if let Some(c) = self.len_counts.get_mut(usize::from(len)) {
            *c = c.saturating_sub(1);
        }
        // The longest remaining route that covers this one takes its place.
        let mut repl = 0;
        for l in (0..len).rev() {
            if self.len_counts.get(usize::from(l)).copied().unwrap_or(0) == 0 {
                continue;
            }
            if let Some((pleaf, _)) = self.routes.get(&(key & mask(l, self.width), l)) {
                repl = leaf_entry(*pleaf, l);
                break;
            }
        }
        if let Ok(Some((base, start, count, path))) = self.locate(lpm, key, len, false) {
            if let Slot::Top(_) = base {
                self.top_range(
                    lpm,
                    start,
                    count,
                    repl,
                    |v| v & (VALID | EXT) == VALID && v & LEAF_MASK == leaf,
                    |lpm, slot| lpm.uncover(slot, leaf, repl),
                );
            } else {
                for k in 0..count {
                    lpm.uncover(base.offset(start + k), leaf, repl);
                }
            }
            self.collapse(lpm, &path);
        }
        self.free_leaves.push(leaf);
        Some(target)
    }

    /// Apply an edit to `tbl24[start..start + count]`. A whole chunk known to be
    /// uniform is replaced at once by a shared chunk of `new` when `replace(v)` holds
    /// for its value (and left alone otherwise); other entries go through `each`.
    fn top_range(
        &mut self,
        lpm: &mut Lpm,
        start: usize,
        count: usize,
        new: u32,
        replace: impl Fn(u32) -> bool,
        mut each: impl FnMut(&mut Lpm, Slot),
    ) {
        let end = start + count;
        let mut shared: Option<Arc<[u32]>> = None;
        let mut i = start;
        while i < end {
            let c = i >> CHUNK_BITS;
            if i & (CHUNK_LEN - 1) == 0 && end - i >= CHUNK_LEN {
                if let Some(Some(v)) = self.uniform.get(c).copied() {
                    if replace(v) {
                        let chunk = shared
                            .get_or_insert_with(|| CowVec::uniform_chunk(new))
                            .clone();
                        Arc::make_mut(&mut lpm.tbl24).set_chunk(c, chunk);
                        if let Some(u) = self.uniform.get_mut(c) {
                            *u = Some(new);
                        }
                    }
                    i += CHUNK_LEN;
                    continue;
                }
            }
            each(lpm, Slot::Top(i));
            self.mark_top(i);
            i += 1;
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
    ) -> Result<Option<(Slot, usize, usize, Vec<(Slot, u32)>)>, LpmFull> {
        let w = u32::from(self.width);
        let top = (key >> (w - 24)) as usize & 0xff_ffff;
        if len <= 24 {
            let count = 1usize << (24 - len);
            return Ok(Some((Slot::Top(0), top & !(count - 1), count, Vec::new())));
        }
        let mut path = Vec::new();
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
                let base = (g as usize) << 8;
                for j in 0..256 {
                    lpm.tbl8.set(base + j, e);
                }
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
        Ok((lpm.tbl8.grow(256) >> 8) as u32)
    }

    /// Fold groups whose 256 entries became identical leaves back into their parent,
    /// from the deepest one up.
    fn collapse(&mut self, lpm: &mut Lpm, path: &[(Slot, u32)]) {
        for &(slot, g) in path.iter().rev() {
            let base = (g as usize) << 8;
            let first = lpm.tbl8.get(base).copied().unwrap_or(0);
            if first & EXT != 0 {
                return;
            }
            if (1..256).any(|j| lpm.tbl8.get(base + j).copied() != Some(first)) {
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

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

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
        // Replacing a target is one leaf write.
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
    }
}
