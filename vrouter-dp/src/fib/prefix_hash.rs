//! IPv6 longest-prefix match by prefix length: one hash table keyed by
//! (prefix, length) and the list of lengths in use, longest first. This is the
//! structure of VPP's IPv6 FIB. A lookup probes one bucket per length in use; the
//! probes of an address do not depend on each other, so a batch lookup prefetches
//! every probe of every address before it reads any, and a VRF's routes (a few
//! distinct lengths: pod `/128`s, subnet `/64`s, a default) cost one overlapped
//! memory access per address instead of the up-to-14 dependent levels of a trie
//! with 8-bit strides.
//!
//! Buckets are 64-byte lines of three entries (prefix, and the leaf word of
//! [`super::lpm`]: valid, length, target id) plus an overflow word: `reach`, the
//! furthest bucket after this one that holds an entry whose home is this one
//! (linear probing), and a 24-bit filter with one bit set per such entry, chosen by
//! its hash. A lookup reads its home bucket; it reads the next `reach` ones only
//! when the key is not in the home bucket and its filter bit is set. A delete clears
//! its slot and leaves the overflow word as it is (an over-estimate costs a probe,
//! never a wrong answer); resizing rebuilds it exactly. The table doubles when three
//! quarters of its slots are taken and halves when fewer than an eighth are. In a
//! table of the 100k-route benchmark's shape, 7.7% of the buckets have overflowed;
//! of 100k probes for absent `/128`s, 7.8% met an overflowed home bucket and 0.46%
//! passed its filter and read further.
//!
//! The buckets are a [`CowVec`], so an edit copies only the chunks it writes and a
//! published snapshot never sees it. The hash is keyed with fixed seeds: the keys
//! are the agent's routes, and a packet's address only ever reads.

use std::sync::Arc;

use super::cow::{CowVec, CHUNK_LEN};
use super::lpm::{DEPTH_SHIFT as LEN_SHIFT, VALID};
use super::mask;
use crate::dpdk::prefetch;

/// Entries per bucket.
const SLOTS: usize = 3;
/// How far from its home bucket an insert looks for a free slot before the table
/// grows instead (at most 255: the reach is 8 bits).
const MAX_REACH: u32 = 64;
/// The reach field of a bucket's overflow word.
const REACH_MASK: u32 = 0xff;
/// Bucket probes one batch round holds (addresses times lengths in use).
const PROBES: usize = 256;

/// One cache line of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
struct Bucket {
    /// Prefixes as (high, low) 64-bit halves, host bits clear.
    keys: [[u64; 2]; SLOTS],
    /// Leaf words: valid bit, length in bits 22..30, target id; 0 when free.
    leaves: [u32; SLOTS],
    /// Bits 0..8: buckets after this one that may hold entries whose home is this
    /// one; bits 8..32: a filter of those entries' hashes ([`filter_bit`]).
    over: u32,
}

static EMPTY: Bucket = Bucket {
    keys: [[0; 2]; SLOTS],
    leaves: [0; SLOTS],
    over: 0,
};

/// Multiply and fold: both halves of the 128-bit product, xored.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The hash of the prefix with halves `hi`, `lo` and length `len`.
#[inline(always)]
fn hash(hi: u64, lo: u64, len: u8) -> u64 {
    let h = fold(hi ^ 0x243f_6a88_85a3_08d3, 0x9e37_79b9_7f4a_7c15);
    fold(
        lo ^ h ^ 0x1319_8a2e_0370_7344,
        0xff51_afd7_ed55_8ccd ^ (u64::from(len) << 1),
    )
}

/// The overflow filter bit of an entry with hash `h` (bits 8..32; the home bucket
/// comes from the hash's low bits, the filter bit from its high ones).
#[inline(always)]
fn filter_bit(h: u64) -> u32 {
    1 << (8 + ((h >> 40) % 24) as u32)
}

/// The halves of a 128-bit word.
#[inline(always)]
fn halves(x: u128) -> (u64, u64) {
    ((x >> 64) as u64, x as u64)
}

/// The leaf word's top bits (valid, not an extension, length) for length `len`.
#[inline(always)]
fn tag_of(len: u8) -> u32 {
    (VALID >> LEN_SHIFT) | u32::from(len)
}

/// One length in use, with its mask as halves, ready for the lookup loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    hi: u64,
    lo: u64,
    tag: u32,
    len: u8,
}

impl Probe {
    fn new(len: u8) -> Self {
        let (hi, lo) = halves(mask(len, 128));
        Probe {
            hi,
            lo,
            tag: tag_of(len),
            len,
        }
    }
}

/// The leaf of the slot of `b` holding `hi`/`lo` with tag `tag`, or 0. Slots are
/// compared without branches (which one holds a key is random, so a branch per
/// slot would mispredict); keys are unique, so at most one slot matches.
#[inline(always)]
fn match_in(b: &Bucket, hi: u64, lo: u64, tag: u32) -> u32 {
    let m = |s: usize| {
        let diff =
            (b.keys[s][0] ^ hi) | (b.keys[s][1] ^ lo) | u64::from((b.leaves[s] >> LEN_SHIFT) ^ tag);
        b.leaves[s] & u32::from(diff == 0).wrapping_neg()
    };
    m(0) | m(1) | m(2)
}

/// The (prefix, length) hash table and the lengths in use.
#[derive(Debug, Clone)]
pub(super) struct PrefixHash {
    buckets: CowVec<Bucket>,
    /// Entries in use.
    used: usize,
    /// Routes per length (0..=128; empty until the first insert).
    per_len: Vec<u32>,
    /// The lengths with routes, longest first.
    probes: Arc<[Probe]>,
}

impl PrefixHash {
    /// An empty table (no buckets until the first insert).
    pub(super) fn new() -> Self {
        Self {
            buckets: CowVec::filled(0, EMPTY),
            used: 0,
            per_len: Vec::new(),
            probes: Arc::new([]),
        }
    }

    /// Whether `other` holds the same entries, bucket by bucket.
    #[cfg(test)]
    pub(super) fn same_entries(&self, other: &PrefixHash) -> bool {
        self.used == other.used
            && self.per_len == other.per_len
            && *self.probes == *other.probes
            && self.buckets.len() == other.buckets.len()
            && (0..self.buckets.len()).all(|i| self.buckets.get(i) == other.buckets.get(i))
    }

    /// Number of buckets (64 bytes each).
    pub(super) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The lengths in use, longest first.
    #[inline(always)]
    fn probes(&self) -> &[Probe] {
        &self.probes
    }

    #[inline(always)]
    fn home(&self, hi: u64, lo: u64, len: u8) -> usize {
        hash(hi, lo, len) as usize & self.buckets.len().wrapping_sub(1)
    }

    /// The leaf of prefix `hi`/`lo` of length `len`, or 0.
    #[inline(always)]
    fn find(&self, hi: u64, lo: u64, len: u8) -> u32 {
        let home = self.home(hi, lo, len);
        self.probe(self.bucket(home), hi, lo, len, tag_of(len))
    }

    /// The leaf of prefix `hi`/`lo` (length `len`, leaf tag `tag`) given its home
    /// bucket `b`: the buckets after it are read only when `b` does not hold the
    /// key and its overflow filter says the key may be further on (rare).
    #[inline(always)]
    fn probe(&self, b: &Bucket, hi: u64, lo: u64, len: u8, tag: u32) -> u32 {
        let leaf = match_in(b, hi, lo, tag);
        if b.over != 0 && leaf == 0 {
            return self.find_beyond(b.over, hi, lo, len, tag);
        }
        leaf
    }

    /// The search beyond the home bucket whose overflow word is `over`.
    #[inline(never)]
    fn find_beyond(&self, over: u32, hi: u64, lo: u64, len: u8, tag: u32) -> u32 {
        let h = hash(hi, lo, len);
        if over & filter_bit(h) == 0 {
            return 0;
        }
        let n = self.buckets.len().wrapping_sub(1);
        let home = h as usize & n;
        for d in 1..=(over & REACH_MASK) as usize {
            if let Some(b) = self.buckets.get((home + d) & n) {
                let hit = match_in(b, hi, lo, tag);
                if hit != 0 {
                    return hit;
                }
            }
        }
        0
    }

    /// The leaf word of the longest prefix of `ip` in the table, or 0.
    #[inline]
    pub(super) fn lookup(&self, ip: u128) -> u32 {
        let (hi, lo) = halves(ip);
        for p in self.probes() {
            let leaf = self.find(hi & p.hi, lo & p.lo, p.len);
            if leaf != 0 {
                return leaf;
            }
        }
        0
    }

    /// [`PrefixHash::lookup`] for a batch: `out[i]` gets the leaf for `ips[i]`.
    /// Every probe of a round of addresses is prefetched before any is read. A
    /// table with up to four lengths in use (the common case: host routes, subnets,
    /// a default) runs a loop specialised for its count, fully unrolled.
    pub(super) fn lookup_batch(&self, ips: &[u128], out: &mut [u32]) {
        let probes = self.probes();
        match probes {
            [] => out.iter_mut().for_each(|o| *o = 0),
            [a] => self.batch_fixed(&[*a], ips, out),
            [a, b] => self.batch_fixed(&[*a, *b], ips, out),
            [a, b, c] => self.batch_fixed(&[*a, *b, *c], ips, out),
            [a, b, c, d] => self.batch_fixed(&[*a, *b, *c, *d], ips, out),
            _ => self.batch_any(probes, ips, out),
        }
    }

    /// The bucket at `i` (always present for an index masked to the table size;
    /// an empty bucket otherwise: past the end, or in the fill of the last chunk).
    #[inline(always)]
    fn bucket(&self, i: usize) -> &Bucket {
        self.buckets.slot(i).unwrap_or(&EMPTY)
    }

    /// The batch lookup with `K` lengths in use.
    #[inline(always)]
    fn batch_fixed<const K: usize>(&self, probes: &[Probe; K], ips: &[u128], out: &mut [u32]) {
        const ROUND: usize = 64;
        let n = self.buckets.len().wrapping_sub(1);
        let mut homes: [[&Bucket; K]; ROUND] = [[&EMPTY; K]; ROUND];
        for (ips, out) in ips.chunks(ROUND).zip(out.chunks_mut(ROUND)) {
            for (ip, h) in ips.iter().zip(homes.iter_mut()) {
                let (hi, lo) = halves(*ip);
                for (p, h) in probes.iter().zip(h.iter_mut()) {
                    let b = self.bucket(hash(hi & p.hi, lo & p.lo, p.len) as usize & n);
                    prefetch(b);
                    *h = b;
                }
            }
            // Every length is checked and the longest hit kept without a branch:
            // where an address's match is found is random, and the probes were
            // fetched anyway.
            for ((ip, o), h) in ips.iter().zip(out.iter_mut()).zip(homes.iter()) {
                let (hi, lo) = halves(*ip);
                let mut best = 0;
                for (p, b) in probes.iter().zip(h.iter()) {
                    let leaf = self.probe(b, hi & p.hi, lo & p.lo, p.len, p.tag);
                    best = if best != 0 { best } else { leaf };
                }
                *o = best;
            }
        }
    }

    /// The batch lookup with any number of lengths in use.
    fn batch_any(&self, probes: &[Probe], ips: &[u128], out: &mut [u32]) {
        let per_round = (PROBES / probes.len().max(1)).max(1);
        let n = self.buckets.len().wrapping_sub(1);
        let mut homes: [&Bucket; PROBES] = [&EMPTY; PROBES];
        for (ips, out) in ips.chunks(per_round).zip(out.chunks_mut(per_round)) {
            let mut h = homes.iter_mut();
            for ip in ips {
                let (hi, lo) = halves(*ip);
                for p in probes {
                    let b = self.bucket(hash(hi & p.hi, lo & p.lo, p.len) as usize & n);
                    prefetch(b);
                    if let Some(h) = h.next() {
                        *h = b;
                    }
                }
            }
            let mut h = homes.iter();
            for (ip, o) in ips.iter().zip(out.iter_mut()) {
                let (hi, lo) = halves(*ip);
                let mut best = 0;
                for (p, b) in probes.iter().zip(h.by_ref()) {
                    let leaf = self.probe(b, hi & p.hi, lo & p.lo, p.len, p.tag);
                    best = if best != 0 { best } else { leaf };
                }
                *o = best;
            }
        }
    }

    /// Add `key/len` (host bits clear, not present) with leaf word `leaf`.
    pub(super) fn insert(&mut self, key: u128, len: u8, leaf: u32) {
        if (self.used + 1) * 4 > self.buckets.len() * SLOTS * 3 {
            self.resize((self.buckets.len() * 2).max(CHUNK_LEN));
        }
        while !self.place(key, len, leaf) {
            self.resize(self.buckets.len() * 2);
        }
        self.used += 1;
        if self.per_len.is_empty() {
            self.per_len = vec![0; 129];
        }
        if let Some(c) = self.per_len.get_mut(usize::from(len)) {
            *c += 1;
            if *c == 1 {
                self.set_len(len, true);
            }
        }
    }

    /// Put an entry in the first free slot from its home bucket; false when none is
    /// within [`MAX_REACH`] buckets.
    fn place(&mut self, key: u128, len: u8, leaf: u32) -> bool {
        let (hi, lo) = halves(key);
        let home = self.home(hi, lo, len);
        let n = self.buckets.len().wrapping_sub(1);
        for d in 0..=MAX_REACH as usize {
            let i = (home + d) & n;
            let free = self
                .buckets
                .get(i)
                .and_then(|b| b.leaves.iter().position(|&l| l == 0));
            let Some(s) = free else { continue };
            if let Some(b) = self.buckets.get_mut(i) {
                if let (Some(k), Some(l)) = (b.keys.get_mut(s), b.leaves.get_mut(s)) {
                    *k = [hi, lo];
                    *l = leaf;
                }
            }
            if d > 0 {
                let bit = filter_bit(hash(hi, lo, len));
                if let Some(h) = self.buckets.get_mut(home) {
                    h.over = (h.over & !REACH_MASK) | bit | (h.over & REACH_MASK).max(d as u32);
                }
            }
            return true;
        }
        false
    }

    /// The (bucket, slot) holding `key/len`.
    fn position(&self, key: u128, len: u8) -> Option<(usize, usize)> {
        let (hi, lo) = halves(key);
        let home = self.home(hi, lo, len);
        let n = self.buckets.len().wrapping_sub(1);
        let reach = (self.buckets.get(home)?.over & REACH_MASK) as usize;
        let k = [hi, lo];
        (0..=reach).find_map(|d| {
            let i = (home + d) & n;
            let b = self.buckets.get(i)?;
            (0..SLOTS)
                .find(|&s| {
                    b.leaves
                        .get(s)
                        .is_some_and(|&l| l >> LEN_SHIFT == tag_of(len))
                        && b.keys.get(s) == Some(&k)
                })
                .map(|s| (i, s))
        })
    }

    /// Replace the leaf word of `key/len`; false when it is not in the table.
    pub(super) fn set(&mut self, key: u128, len: u8, leaf: u32) -> bool {
        let Some((i, s)) = self.position(key, len) else {
            return false;
        };
        match self.buckets.get_mut(i).and_then(|b| b.leaves.get_mut(s)) {
            Some(l) => {
                *l = leaf;
                true
            }
            None => false,
        }
    }

    /// Remove `key/len`; false when it is not in the table.
    pub(super) fn remove(&mut self, key: u128, len: u8) -> bool {
        let Some((i, s)) = self.position(key, len) else {
            return false;
        };
        if let Some(b) = self.buckets.get_mut(i) {
            if let (Some(k), Some(l)) = (b.keys.get_mut(s), b.leaves.get_mut(s)) {
                *k = [0; 2];
                *l = 0;
            }
        }
        self.used -= 1;
        if let Some(c) = self.per_len.get_mut(usize::from(len)) {
            *c -= 1;
            if *c == 0 {
                self.set_len(len, false);
            }
        }
        if self.buckets.len() > CHUNK_LEN && self.used * 8 < self.buckets.len() * SLOTS {
            self.resize(self.buckets.len() / 2);
        }
        true
    }

    /// Add `len` to, or drop it from, the lengths in use (kept longest first).
    fn set_len(&mut self, len: u8, on: bool) {
        let mut v: Vec<u8> = self.probes().iter().map(|p| p.len).collect();
        if on {
            v.push(len);
        } else {
            v.retain(|&l| l != len);
        }
        v.sort_unstable_by(|a, b| b.cmp(a));
        self.probes = v.into_iter().map(Probe::new).collect();
    }

    /// Rebuild into `n` buckets (a power of two, at least one chunk), with exact
    /// reaches. The new buckets share nothing with the old ones.
    fn resize(&mut self, n: usize) {
        let mut entries = Vec::with_capacity(self.used);
        for c in 0..self.buckets.len().div_ceil(CHUNK_LEN) {
            for b in self.buckets.chunk(c).unwrap_or(&[]) {
                for (k, &leaf) in b.keys.iter().zip(&b.leaves) {
                    if leaf != 0 {
                        let key = (u128::from(k[0]) << 64) | u128::from(k[1]);
                        entries.push((key, ((leaf >> LEN_SHIFT) & 0xff) as u8, leaf));
                    }
                }
            }
        }
        let mut n = n.max(CHUNK_LEN);
        loop {
            self.buckets = CowVec::filled(n, EMPTY);
            // Below three-quarter load a free slot is always near; doubling
            // again is the answer to a pathological cluster.
            if entries.iter().all(|&(k, l, leaf)| self.place(k, l, leaf)) {
                return;
            }
            n *= 2;
        }
    }

    /// The longest `reach` of any bucket (tests).
    #[cfg(test)]
    fn max_reach(&self) -> u32 {
        (0..self.buckets.len())
            .filter_map(|i| self.buckets.get(i).map(|b| b.over & REACH_MASK))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::test_rng::Rng;
    use std::collections::HashMap;

    fn leaf(target: u32, len: u8) -> u32 {
        super::super::lpm::leaf_entry(target, len)
    }

    /// Longest match by linear search.
    fn naive(routes: &HashMap<(u128, u8), u32>, ip: u128) -> u32 {
        routes
            .iter()
            .filter(|((k, l), _)| ip & mask(*l, 128) == *k)
            .max_by_key(|((_, l), _)| *l)
            .map_or(0, |(_, v)| *v)
    }

    #[test]
    fn churn_against_a_map() {
        let mut rng = Rng(0x5eed);
        let mut t = PrefixHash::new();
        let mut reference: HashMap<(u128, u8), u32> = HashMap::new();
        let mut keys: Vec<(u128, u8)> = Vec::new();
        let mut snapshots = Vec::new();
        let lens = [0u8, 48, 56, 64, 100, 127, 128];
        let mut saw_reach = 0;
        for round in 0..30_000u32 {
            if rng.next() % 4 != 0 || keys.is_empty() {
                let len = lens[(rng.next() % lens.len() as u64) as usize];
                let key =
                    ((0xfd00u128 << 112) | (u128::from(rng.next()) << 40) | u128::from(rng.next()))
                        & mask(len, 128);
                let l = leaf(round & 0x3f_ffff, len);
                if let Some(v) = reference.get_mut(&(key, len)) {
                    assert!(t.set(key, len, l));
                    *v = l;
                } else {
                    t.insert(key, len, l);
                    reference.insert((key, len), l);
                    keys.push((key, len));
                }
            } else {
                let i = (rng.next() as usize) % keys.len();
                let (key, len) = keys.swap_remove(i);
                assert!(t.remove(key, len));
                assert!(!t.remove(key, len));
                reference.remove(&(key, len));
            }
            saw_reach = saw_reach.max(if round % 1000 == 0 { t.max_reach() } else { 0 });
            if round % 5000 == 0 {
                snapshots.push((t.clone(), reference.clone()));
            }
        }
        assert_eq!(t.used, reference.len());
        assert!(
            saw_reach > 0,
            "no displaced entry: the probing path went untested"
        );
        // Exact entries, batched and one by one.
        let mut ips: Vec<u128> = Vec::new();
        for &(k, l) in keys.iter().take(2000) {
            ips.push(k | (u128::from(rng.next()) & !mask(l, 128)));
        }
        for _ in 0..500 {
            ips.push((0xfd00u128 << 112) | u128::from(rng.next()));
        }
        let mut out = vec![0; ips.len()];
        t.lookup_batch(&ips, &mut out);
        for (ip, o) in ips.iter().zip(&out) {
            let want = naive(&reference, *ip);
            assert_eq!(t.lookup(*ip), want, "ip {ip:x}");
            assert_eq!(*o, want, "batch, ip {ip:x}");
        }
        // Every snapshot still answers as it did.
        for (s, r) in &snapshots {
            for &(k, l) in r.keys().take(300) {
                assert_eq!(
                    s.lookup(k | (!mask(l, 128) & 1)),
                    naive(r, k | (!mask(l, 128) & 1))
                );
            }
        }
        // Deleting everything empties the lengths in use.
        for (k, l) in keys {
            assert!(t.remove(k, l));
        }
        assert_eq!(t.used, 0);
        assert!(t.probes().is_empty());
        assert_eq!(t.lookup(0), 0);
    }

    /// Tables with one to six lengths in use: the unrolled loops (up to four) and
    /// the general one give the same answers as a linear search.
    #[test]
    fn every_probe_count_agrees() {
        let mut rng = Rng(0xface);
        let all = [128u8, 96, 64, 56, 48, 0];
        for k in 1..=all.len() {
            let lens = &all[..k];
            let mut t = PrefixHash::new();
            let mut reference = HashMap::new();
            for i in 0..3000u32 {
                let len = lens[(rng.next() % k as u64) as usize];
                let key = ((0x2001u128 << 112)
                    | (u128::from(rng.next() % 64) << 64)
                    | u128::from(rng.next() % 4096))
                    & mask(len, 128);
                if let std::collections::hash_map::Entry::Vacant(e) = reference.entry((key, len)) {
                    e.insert(leaf(i, len));
                    t.insert(key, len, leaf(i, len));
                }
            }
            assert_eq!(t.probes().len(), k);
            let ips: Vec<u128> = (0..300)
                .map(|_| {
                    (0x2001u128 << 112)
                        | (u128::from(rng.next() % 80) << 64)
                        | u128::from(rng.next() % 5000)
                })
                .collect();
            let mut out = vec![0; ips.len()];
            t.lookup_batch(&ips, &mut out);
            for (ip, o) in ips.iter().zip(&out) {
                let want = naive(&reference, *ip);
                assert_eq!(*o, want, "{k} lengths, ip {ip:x}");
                assert_eq!(t.lookup(*ip), want, "{k} lengths, ip {ip:x}");
            }
        }
    }

    /// A batch with more lengths in use than one round of probes holds.
    #[test]
    fn many_lengths_in_one_batch() {
        let mut t = PrefixHash::new();
        let base = 0x2001_0db8u128 << 96;
        for len in 0..=128u8 {
            t.insert(base & mask(len, 128), len, leaf(u32::from(len) + 1, len));
        }
        let ips: Vec<u128> = (0..40u128).map(|i| base ^ (1 << (i * 3))).collect();
        let mut out = vec![0; ips.len()];
        t.lookup_batch(&ips, &mut out);
        for (ip, o) in ips.iter().zip(&out) {
            let want_len = (ip ^ base).leading_zeros().min(128) as u8;
            assert_eq!(*o, leaf(u32::from(want_len) + 1, want_len), "ip {ip:x}");
            assert_eq!(t.lookup(*ip), *o);
        }
    }
}
