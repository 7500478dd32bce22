//! The public table types: [`FlowTable`] (read-write) and
//! [`FlowTableReader`] (a read-only mapping of a table file).

#[cfg(not(loom))]
use std::path::Path;
use std::path::PathBuf;

use crate::core::{check_key, Cand, Core, Loc, Resolve, SEEDS};
#[cfg(not(loom))]
use crate::error::OpenError;
use crate::error::{CreateError, FlowError, InsertError};
use crate::key::FlowKey;
use crate::layout::{Layout, FORMAT_VERSION, GROUP_SLOTS, MAGIC};
use crate::memory::{Backing, Memory};
use crate::sync::{spin_hint, Ordering};
use crate::value::{
    FlowAction, FlowCounters, FlowEntry, FlowId, FlowIndex, FlowRecord, FlowValue, TcpState,
};

use Ordering::{Acquire, Relaxed, Release};

/// Default capacity: 1M flows.
pub const DEFAULT_CAPACITY: usize = 1 << 20;
/// Largest capacity: 16M flows.
pub const MAX_CAPACITY: usize = 1 << 24;
/// Smallest capacity (one group of slots).
pub const MIN_CAPACITY: usize = 4;
/// Keys hashed and prefetched together by [`FlowTable::lookup_batch`].
pub const BATCH: usize = 32;

/// How many keys ahead of the one it inserts a burst prefetches the slot
/// and counters an insert will take. 6 and 8 measured alike, 12 and 32
/// (all of a burst) slower (BENCHMARKS.md, "Inserts: prefetching a few
/// keys ahead").
const CLAIM_AHEAD: usize = 8;

pub(crate) fn valid_capacity(capacity: usize) -> bool {
    capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity)
}

/// A 64-bit flow hash: the table's own (a seeded hash of the key, see
/// [`FlowTable::hash`]) or one derived from the NIC's RSS hash
/// ([`FlowHash::from_rss`]). Every operation on a given key must use the
/// same kind of hash, or it will look in the wrong buckets.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowHash(pub u64);

impl FlowHash {
    /// Spreads a 32-bit RSS (Toeplitz) hash over 64 bits (murmur3 `fmix64`):
    /// bits 42..64 and 0..24 pick the key's two groups, bits 24..32 are
    /// its tag.
    #[inline]
    pub const fn from_rss(rss: u32) -> FlowHash {
        let mut h = rss as u64;
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 33;
        h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        h ^= h >> 33;
        FlowHash(h)
    }
}

/// How a table is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowTableConfig {
    /// Number of flows (power of two, [`MIN_CAPACITY`]..=[`MAX_CAPACITY`]).
    pub capacity: usize,
    /// Try 2 MiB hugepages (then transparent hugepages) for anonymous memory.
    /// Tables of fewer than 16k flows take normal pages regardless: a
    /// hugepage would be mostly empty.
    pub hugepages: bool,
    /// Back the table with this file (shared mapping) instead of anonymous
    /// memory, so that another process can map it.
    pub file: Option<PathBuf>,
}

impl Default for FlowTableConfig {
    fn default() -> Self {
        FlowTableConfig {
            capacity: DEFAULT_CAPACITY,
            hugepages: true,
            file: None,
        }
    }
}

/// Outcome of a successful [`FlowTable::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// The flow was added.
    New(FlowId),
    /// The key was already present; this is the existing entry (unchanged).
    Exists(FlowEntry),
}

impl Insert {
    /// The id of the flow now in the table for the key.
    pub fn id(&self) -> FlowId {
        match self {
            Insert::New(id) => *id,
            Insert::Exists(e) => e.id,
        }
    }
}

/// Idle timeouts for [`FlowTable::age`], in the unit of the `now` values
/// passed to `insert`/`touch`/`age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeingTimeouts {
    /// Flows idle longer than this are removed.
    pub idle: u64,
    /// TCP flows in [`TcpState::Closed`] idle longer than this are removed.
    pub tcp_closed: u64,
}

/// Table counters (relaxed reads; a consistent sum only when quiescent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableStats {
    /// Capacity in flows.
    pub capacity: usize,
    /// Flows in the table (inserts in progress included, as in
    /// [`FlowTable::len`]).
    pub len: usize,
    /// Successful inserts: the flows in the table plus those removed.
    pub inserted: u64,
    /// Removals (explicit and by ageing).
    pub removed: u64,
    /// Removals by ageing.
    pub aged: u64,
    /// Inserts refused because no slot was free.
    pub full_table: u64,
    /// Inserts refused because no slot was free within the longest probe
    /// (the key's two groups and the 254 after the second).
    pub full_bucket: u64,
    /// Bytes of memory the table maps.
    pub memory_bytes: usize,
}

fn stats_of(core: &Core, memory_bytes: usize) -> TableStats {
    let h = core.header();
    let (len, removed) = core.flow_counts();
    TableStats {
        capacity: core.capacity,
        len: len as usize,
        inserted: len + removed,
        removed,
        aged: h.aged.0.load(Relaxed),
        full_table: h.full_table.0.load(Relaxed),
        full_bucket: h.full_bucket.0.load(Relaxed),
        memory_bytes,
    }
}

/// Batched lookup of one burst (at most [`BATCH`] keys; `out` as long as
/// `keys`), `hash(i, key)` giving key `i`'s hash. Three passes, so that the
/// misses of all the keys overlap: hash and prefetch the home control
/// words; tag match and prefetch each candidate's slot; compare keys on
/// warm lines and prefetch each hit's counters. Between the passes each
/// key's groups and tag are kept in three arrays (fewer instructions than
/// one packed word: 143 against 150 per batch hit under callgrind), and its
/// candidate in a fourth.
///
/// The passes index the arrays by position: the iterator forms
/// (`enumerate`, with `take` or a slice) measured 2-6 instructions more per
/// key, one of them with a bounds check left in.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn lookup_burst(
    core: &Core,
    keys: &[FlowKey],
    out: &mut [Option<FlowEntry>],
    hash: impl Fn(usize, &FlowKey) -> FlowHash,
) -> usize {
    let n = keys.len().min(out.len()).min(BATCH);
    let mut g1s = [0u32; BATCH];
    let mut g2s = [0u32; BATCH];
    let mut tags = [0u8; BATCH];
    let mut cands = [Cand::default(); BATCH];
    // Pass 1: hash and locate, prefetch the control words.
    for i in 0..n {
        let loc = core.locate(hash(i, &keys[i]));
        core.prefetch_home(&loc);
        // Group counts are below 2^24 (`Loc::pack`).
        (g1s[i], g2s[i], tags[i]) = (loc.g1 as u32, loc.g2 as u32, loc.tag);
    }
    let loc_of = |i: usize| Loc {
        g1: g1s[i] as usize,
        g2: g2s[i] as usize,
        tag: tags[i],
    };
    // Pass 2: tag match in the (now arriving) words, prefetch slots.
    for i in 0..n {
        cands[i] = core.candidate(&loc_of(i));
    }
    // Pass 3: compare keys on warm lines (a hit's counters are prefetched
    // for the `touch` that usually follows: by now the slot misses are
    // over, so that one does not compete with them for the line-fill
    // buffers, and only real hits pay for it).
    let mut hits = 0;
    for i in 0..n {
        let (k, c) = (keys[i].as_words(), cands[i]);
        hits += usize::from(core.finish_into(k, || loc_of(i).pack(), c, &mut out[i]));
    }
    hits
}

/// Iterator over the committed flows of a table, slot by slot. Each
/// record is a consistent snapshot; flows inserted or removed during the
/// iteration may or may not be reported.
pub struct Iter<'a> {
    core: &'a Core,
    slot: usize,
}

impl Iterator for Iter<'_> {
    type Item = FlowRecord;

    fn next(&mut self) -> Option<FlowRecord> {
        while self.slot < self.core.slots {
            let g = self.slot / GROUP_SLOTS;
            // The group's committed bytes from the current slot on.
            let mut m = match_full(self.core.group(g).load(Acquire))
                & (u64::MAX << (8 * (self.slot % GROUP_SLOTS)));
            while m != 0 {
                let slot = g * GROUP_SLOTS + (m.trailing_zeros() / 8) as usize;
                m &= m - 1;
                self.slot = slot + 1;
                if let Some(rec) = self.core.record_of_slot(slot) {
                    return Some(rec);
                }
            }
            self.slot = (g + 1) * GROUP_SLOTS;
        }
        None
    }
}

/// Control bytes of `w` that hold committed flows (bit `8 i + 7` for byte
/// `i`; the count byte excluded): bytes with a bit set above bit 1.
fn match_full(w: u64) -> u64 {
    const HIGH6: u64 = 0x00FC_FCFC_FCFC_FCFC;
    const LO7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let y = w & HIGH6;
    (((y & LO7) + LO7) | y) & 0x0080_8080_8080_8080
}

/// The concurrent flow table. Share it by reference (`&FlowTable` is `Sync`);
/// every method takes `&self`. See the crate docs for the algorithm.
pub struct FlowTable {
    core: Core,
    mem: Memory,
    backing: Backing,
}

impl core::fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlowTable")
            .field("capacity", &self.core.capacity)
            .field("len", &self.len())
            .field("backing", &self.backing)
            .finish()
    }
}

impl FlowTable {
    /// A table of `capacity` flows in anonymous memory (hugepages if
    /// available, from 16k flows up).
    pub fn with_capacity(capacity: usize) -> Result<FlowTable, CreateError> {
        FlowTable::new(&FlowTableConfig {
            capacity,
            ..FlowTableConfig::default()
        })
    }

    /// A table as described by `config`. All memory is allocated here.
    #[cold]
    pub fn new(config: &FlowTableConfig) -> Result<FlowTable, CreateError> {
        if !valid_capacity(config.capacity) {
            return Err(CreateError::InvalidCapacity(config.capacity));
        }
        let layout = Layout::new(config.capacity);
        let (mem, backing) = match &config.file {
            #[cfg(not(loom))]
            Some(path) => Memory::create_file(path, &layout)?,
            #[cfg(loom)]
            Some(path) => {
                return Err(CreateError::File {
                    path: path.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::Unsupported),
                })
            }
            None => Memory::anonymous(&layout, config.hugepages)?,
        };
        let core = Core::new(mem.parts, &layout, SEEDS);
        let h = core.header();
        h.format.store(FORMAT_VERSION, Relaxed);
        h.capacity.store(layout.capacity as u64, Relaxed);
        h.groups.store(layout.groups as u64, Relaxed);
        for (s, v) in h.seeds.iter().zip(SEEDS) {
            s.store(v, Relaxed);
        }
        h.hash_check.store(core.hash(&check_key()).0, Relaxed);
        h.region_len.store(mem.bytes as u64, Relaxed);
        h.magic.store(MAGIC, Release);
        Ok(FlowTable { core, mem, backing })
    }

    /// Maps an existing table file read-write (a restarted data plane).
    /// The previous owner must have exited: entries it left half-inserted
    /// are dropped, and the free list and overflow counts are rebuilt.
    #[cfg(not(loom))]
    #[cold]
    pub fn open(path: &Path) -> Result<FlowTable, OpenError> {
        let (mem, layout, backing) = Memory::open_file(path, true)?;
        let core = core_from_header(&mem, &layout)?;
        core.repair();
        Ok(FlowTable { core, mem, backing })
    }

    /// Where the memory comes from (hugepages, normal pages or a file).
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// Bytes of memory mapped for the table (header, control words, slots,
    /// counters).
    pub fn memory_bytes(&self) -> usize {
        self.mem.bytes
    }

    /// Capacity in flows.
    pub fn capacity(&self) -> usize {
        self.core.capacity
    }

    /// Starts bringing the home control word of `hash` into the cache, for
    /// a lookup of it a little later (e.g. while the caller parses the rest
    /// of a burst before [`FlowTable::lookup_batch_with_hash`]). A hint: it
    /// reads nothing and changes nothing.
    #[inline]
    pub fn prefetch(&self, hash: FlowHash) {
        self.core.prefetch_home(&self.core.locate(hash));
    }

    /// Starts bringing into the cache, for writing where the CPU can, the
    /// slot and counters an insert of a key with hash `hash` would take if
    /// nothing changed meanwhile, so that the insert (a little later)
    /// does not wait for them. Reads the key's two control words (which
    /// should be in the cache already, e.g. after a lookup or
    /// [`FlowTable::prefetch`]); changes nothing. A caller about to insert
    /// two flows (a flow and its reverse) overlaps their misses this way,
    /// as [`FlowTable::insert_batch`] does for a burst.
    #[inline]
    pub fn prefetch_insert(&self, hash: FlowHash) {
        self.core.prefetch_claim(&self.core.locate(hash));
    }

    /// Number of flows: the slots held, so inserts in progress count too
    /// (exact when no operation is in flight).
    pub fn len(&self) -> usize {
        self.core.flow_counts().0 as usize
    }

    /// Whether the table holds no flow.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters.
    pub fn stats(&self) -> TableStats {
        stats_of(&self.core, self.mem.bytes)
    }

    /// The table's hash of `key`: four folded 64-bit multiplies of its
    /// words with secret words derived from the table's fixed seeds.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> FlowHash {
        self.core.hash(key)
    }

    /// Looks `key` up. Lock-free, loads only.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<FlowEntry> {
        self.lookup_with_hash(key, self.core.hash(key))
    }

    /// Looks `key` up with a caller-supplied hash (e.g. from the NIC).
    #[inline]
    pub fn lookup_with_hash(&self, key: &FlowKey, hash: FlowHash) -> Option<FlowEntry> {
        self.core.lookup(key.as_words(), hash)
    }

    /// Looks up a burst: `out[i]` receives the result for `keys[i]`, for
    /// `i < min(keys.len(), out.len())`. Keys are hashed and their buckets
    /// control words and slots prefetched [`BATCH`] at a time before
    /// comparing; the
    /// counter line of each hit is prefetched too (for writing, on CPUs with
    /// `prefetchw`), ready for the [`FlowTable::touch`] that usually
    /// follows. Returns the number of hits.
    #[inline]
    pub fn lookup_batch(&self, keys: &[FlowKey], out: &mut [Option<FlowEntry>]) -> usize {
        let core = &self.core;
        let mut hits = 0;
        for (kc, oc) in keys.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            let n = kc.len().min(oc.len());
            if let (Some(kc), Some(oc)) = (kc.get(..n), oc.get_mut(..n)) {
                hits += lookup_burst(core, kc, oc, |_, k| core.hash(k));
            }
        }
        hits
    }

    /// [`FlowTable::lookup_batch`] with caller-supplied hashes.
    #[inline]
    pub fn lookup_batch_with_hash(
        &self,
        keys: &[FlowKey],
        hashes: &[FlowHash],
        out: &mut [Option<FlowEntry>],
    ) -> usize {
        let mut hits = 0;
        let chunks = keys.chunks(BATCH).zip(hashes.chunks(BATCH));
        for ((kc, hc), oc) in chunks.zip(out.chunks_mut(BATCH)) {
            let n = kc.len().min(hc.len()).min(oc.len());
            if let (Some(kc), Some(oc)) = (kc.get(..n), oc.get_mut(..n)) {
                hits += lookup_burst(&self.core, kc, oc, |i, _| {
                    hc.get(i).copied().unwrap_or_default()
                });
            }
        }
        hits
    }

    /// Adds a flow, or returns the existing entry if the key is present.
    /// `now` initialises the flow's last-seen time. Lock-free; on
    /// [`InsertError::Full`] a `full_*` counter is incremented and the table
    /// is unchanged.
    pub fn insert(&self, key: &FlowKey, value: FlowValue, now: u64) -> Result<Insert, InsertError> {
        self.insert_with_hash(key, self.core.hash(key), value, now)
    }

    /// [`FlowTable::insert`] with a caller-supplied hash.
    pub fn insert_with_hash(
        &self,
        key: &FlowKey,
        hash: FlowHash,
        value: FlowValue,
        now: u64,
    ) -> Result<Insert, InsertError> {
        // The slot W3 will claim (if the words do not change meanwhile) and
        // its counters are prefetched for writing as soon as the control
        // words arrive, so that their miss overlaps W1..W3 rather than
        // starting at W4: 231 -> 186 ns per insert at 1M flows
        // (BENCHMARKS.md, "Single inserts: a shorter common path").
        let loc = self.core.locate(hash);
        self.core.prefetch_claim(&loc);
        self.insert_at(key, &loc, value, now)
    }

    /// Inserts a burst of new flows: `out[i]` receives the result of
    /// inserting `keys[i]` with `values[i]` (last-seen time `now`), for `i <
    /// min(keys.len(), values.len(), out.len())`; entries of `out` past that
    /// are left as they were. Returns the number of flows added
    /// ([`Insert::New`] results).
    ///
    /// The outcome is exactly that of calling [`FlowTable::insert`] on each
    /// key in turn: a key present before the call, or earlier in the same
    /// burst, gives [`Insert::Exists`] with that entry; once the table is
    /// full each new key gives [`InsertError::Full`] (and raises a `full_*`
    /// counter) while existing keys are still reported. Only the memory
    /// access pattern differs: keys are hashed [`BATCH`] at a time and their
    /// home control words prefetched; then, while each key is inserted, the
    /// slot and counter lines the insert of a key a few places on will take
    /// are prefetched (for writing, on CPUs with `prefetchw`), so that their
    /// cache misses overlap.
    #[inline]
    pub fn insert_batch(
        &self,
        keys: &[FlowKey],
        values: &[FlowValue],
        now: u64,
        out: &mut [Result<Insert, InsertError>],
    ) -> usize {
        let core = &self.core;
        let mut added = 0;
        let chunks = keys.chunks(BATCH).zip(values.chunks(BATCH));
        for ((kc, vc), oc) in chunks.zip(out.chunks_mut(BATCH)) {
            let n = kc.len().min(vc.len()).min(oc.len());
            if let (Some(kc), Some(oc)) = (kc.get(..n), oc.get_mut(..n)) {
                added += self.insert_burst(kc, vc, now, oc, |_, k| core.hash(k));
            }
        }
        added
    }

    /// [`FlowTable::insert_batch`] with caller-supplied hashes (`hashes[i]`
    /// for `keys[i]`; the shortest of the four slices bounds the work).
    #[inline]
    pub fn insert_batch_with_hash(
        &self,
        keys: &[FlowKey],
        hashes: &[FlowHash],
        values: &[FlowValue],
        now: u64,
        out: &mut [Result<Insert, InsertError>],
    ) -> usize {
        let mut added = 0;
        let chunks = keys.chunks(BATCH).zip(hashes.chunks(BATCH));
        let chunks = chunks.zip(values.chunks(BATCH)).zip(out.chunks_mut(BATCH));
        for (((kc, hc), vc), oc) in chunks {
            let n = kc.len().min(hc.len()).min(vc.len()).min(oc.len());
            if let (Some(kc), Some(oc)) = (kc.get(..n), oc.get_mut(..n)) {
                added += self.insert_burst(kc, vc, now, oc, |i, _| {
                    hc.get(i).copied().unwrap_or_default()
                });
            }
        }
        added
    }

    /// Batched insert of one burst (at most [`BATCH`] keys; `values` and
    /// `out` at least as long as `keys`), `hash(i, key)` giving key `i`'s
    /// hash. Pass 1 hashes the keys and prefetches their home control words
    /// for writing (W1 reads them, W3 claims a byte in them); pass 2
    /// inserts the keys in order, each by the single-key protocol, and
    /// before each insert prefetches the slot the insert [`CLAIM_AHEAD`]
    /// keys on will take, with its counters (W4 writes both).
    ///
    /// An earlier version prefetched the slots of all the keys before
    /// inserting any: 105 ns per insert in `ft_ops insert-batch`, against
    /// 61-62 ns for this. Adding a second prefetch a few keys ahead to it
    /// alone gave 60-72 ns, so most of the lines fetched early were gone
    /// from the cache again by the time they were written (BENCHMARKS.md,
    /// "Inserts: prefetching a few keys ahead").
    #[inline(always)]
    fn insert_burst(
        &self,
        keys: &[FlowKey],
        values: &[FlowValue],
        now: u64,
        out: &mut [Result<Insert, InsertError>],
        hash: impl Fn(usize, &FlowKey) -> FlowHash,
    ) -> usize {
        let core = &self.core;
        let mut locs = [Loc::default(); BATCH];
        for (i, (l, k)) in locs.iter_mut().zip(keys).enumerate() {
            *l = core.locate(hash(i, k));
            core.prefetch_home_for_write(l);
        }
        let n = keys.len().min(BATCH);
        for l in locs.iter().take(n.min(CLAIM_AHEAD)) {
            core.prefetch_claim(l);
        }
        let mut added = 0;
        for (j, (((k, l), v), o)) in keys.iter().zip(&locs).zip(values).zip(out).enumerate() {
            if let Some(ahead) = locs.get(j + CLAIM_AHEAD).filter(|_| j + CLAIM_AHEAD < n) {
                core.prefetch_claim(ahead);
            }
            *o = self.insert_at(k, l, *v, now);
            added += usize::from(matches!(o, Ok(Insert::New(_))));
        }
        added
    }

    /// The insert protocol (W1..W6) for `key` at `loc` (its hash's
    /// [`Core::locate`]).
    #[inline(always)]
    fn insert_at(
        &self,
        key: &FlowKey,
        loc: &Loc,
        value: FlowValue,
        now: u64,
    ) -> Result<Insert, InsertError> {
        let core = &self.core;
        let kw = key.as_words();
        let loc = *loc;
        let enc = value.encode();
        loop {
            // W1: already there?
            if let Some(e) = core.lookup_at(kw, &loc) {
                return Ok(Insert::Exists(e));
            }
            // W2: room for one more flow.
            if !core.reserve() {
                core.header().full_table.0.fetch_add(1, Relaxed);
                return Err(InsertError::Full);
            }
            // W3: claim a slot, pending.
            let Some((g, i, disp)) = core.claim(&loc) else {
                core.unreserve();
                core.header().full_bucket.0.fetch_add(1, Relaxed);
                return Err(InsertError::Full);
            };
            let slot = g * GROUP_SLOTS + i;
            // W4: fill it.
            let generation = core.fill_slot(slot, kw, enc, now, disp);
            // W5/W6: resolve against concurrent inserts, then commit.
            let outcome = core.resolve(kw, &loc, (g, i), disp);
            if let Resolve::Commit = outcome {
                if core.commit(g, i, loc.tag) {
                    return Ok(Insert::New(FlowId {
                        index: FlowIndex(slot as u32),
                        generation,
                    }));
                }
            }
            // Withdraw: ours may already have been withdrawn by a
            // higher-priority insert of the same key.
            core.withdraw(&loc, g, i, disp);
            match outcome {
                Resolve::Exists(e) => return Ok(Insert::Exists(e)),
                Resolve::Retry | Resolve::Commit => spin_hint(),
            }
        }
    }

    /// Replaces the action of `key`'s flow. Returns its id.
    pub fn update_action(&self, key: &FlowKey, action: FlowAction) -> Result<FlowId, FlowError> {
        let loc = self.core.locate(self.core.hash(key));
        loop {
            let (_, e) = self
                .core
                .find(key.as_words(), &loc)
                .ok_or(FlowError::NotFound)?;
            if self.core.modify(e.id, |v| FlowValue { action, ..v }) {
                return Ok(e.id);
            }
        }
    }

    /// Replaces the whole value of flow `id`.
    pub fn update_value(&self, id: FlowId, value: FlowValue) -> Result<(), FlowError> {
        self.core
            .modify(id, |_| value)
            .then_some(())
            .ok_or(FlowError::NotFound)
    }

    /// Sets the TCP state of flow `id`.
    pub fn set_tcp_state(&self, id: FlowId, state: TcpState) -> Result<(), FlowError> {
        self.core
            .modify(id, |v| FlowValue {
                tcp_state: state,
                ..v
            })
            .then_some(())
            .ok_or(FlowError::NotFound)
    }

    /// Sets the reverse-flow index of flow `id`.
    pub fn set_reverse(&self, id: FlowId, reverse: Option<FlowIndex>) -> Result<(), FlowError> {
        self.core
            .modify(id, |v| FlowValue { reverse, ..v })
            .then_some(())
            .ok_or(FlowError::NotFound)
    }

    /// Counts one packet of `bytes` on flow `id` and sets its last-seen time
    /// (relaxed atomics). Returns `false` if the flow is gone.
    ///
    /// A touch racing with the flow's removal and the reuse of its slot may
    /// be counted on the new flow: counters are statistics, not part of the
    /// consistent snapshot.
    #[inline]
    pub fn touch(&self, id: FlowId, now: u64, bytes: u64) -> bool {
        self.touch_n(id, now, 1, bytes)
    }

    /// [`FlowTable::touch`] for `packets` packets of `bytes` bytes in all, in
    /// one update (a caller that saw several packets of the flow in a burst).
    #[inline]
    pub fn touch_n(&self, id: FlowId, now: u64, packets: u64, bytes: u64) -> bool {
        self.core.touch(id, now, packets, bytes)
    }

    /// Prefetches the counter line of flow `id` (for writing, on CPUs with
    /// `prefetchw`), for a caller that will [`FlowTable::touch`] the flow a
    /// little later: the counters live apart from the slot a lookup reads, so
    /// they are otherwise a separate cache miss. A hint only: it reads and
    /// writes nothing, never faults, and does nothing for an index beyond
    /// the table's slots. [`FlowTable::lookup_batch`] already does this for
    /// its hits.
    #[inline]
    pub fn prefetch_counters(&self, id: FlowId) {
        let idx = id.index.0 as usize;
        if idx < self.core.slots {
            self.core.prefetch_stats(idx);
        }
    }

    /// Counters of flow `id`.
    pub fn counters(&self, id: FlowId) -> Option<FlowCounters> {
        self.core.counters(id)
    }

    /// Key, value and counters of flow `id`, if it is still live.
    pub fn get(&self, id: FlowId) -> Option<FlowRecord> {
        self.core.get(id)
    }

    /// Removes `key`'s flow; returns its last value.
    pub fn remove(&self, key: &FlowKey) -> Option<FlowEntry> {
        self.remove_with_hash(key, self.core.hash(key))
    }

    /// [`FlowTable::remove`] with a caller-supplied hash.
    pub fn remove_with_hash(&self, key: &FlowKey, hash: FlowHash) -> Option<FlowEntry> {
        let loc = self.core.locate(hash);
        loop {
            let (_, e) = self.core.find(key.as_words(), &loc)?;
            if let Some(last) = self.core.remove_slot(e.id) {
                return Some(last);
            }
        }
    }

    /// Removes flow `id` (whatever hash it was inserted with). Returns its
    /// record, with the value it had when it was removed.
    pub fn remove_id(&self, id: FlowId) -> Option<FlowRecord> {
        let rec = self.core.get(id)?;
        let last = self.core.remove_slot(id)?;
        Some(FlowRecord {
            value: last.value(),
            ..rec
        })
    }

    /// Removes flows idle for longer than their timeout: `now -
    /// last_seen > timeouts.idle`, or `> timeouts.tcp_closed` for closed TCP
    /// flows. Returns the number removed. Walks every control word; runs
    /// concurrently with everything else.
    pub fn age(&self, now: u64, timeouts: &AgeingTimeouts) -> usize {
        self.age_with(now, timeouts, |_| {})
    }

    /// [`FlowTable::age`], calling `on_removed` with the record of each flow
    /// it removes.
    pub fn age_with(
        &self,
        now: u64,
        timeouts: &AgeingTimeouts,
        mut on_removed: impl FnMut(&FlowRecord),
    ) -> usize {
        let core = &self.core;
        let mut removed = 0;
        for g in 0..core.groups {
            let mut m = match_full(core.group(g).load(Acquire));
            while m != 0 {
                let slot = g * GROUP_SLOTS + (m.trailing_zeros() / 8) as usize;
                m &= m - 1;
                let Some(rec) = core.record_of_slot(slot) else {
                    continue;
                };
                let timeout = if rec.value.tcp_state == TcpState::Closed {
                    timeouts.tcp_closed
                } else {
                    timeouts.idle
                };
                // Re-read last-seen: a packet may have arrived meanwhile.
                let last_seen = core
                    .slot_stats(slot)
                    .last_seen
                    .load(Relaxed)
                    .max(rec.counters.last_seen);
                if now.saturating_sub(last_seen) <= timeout {
                    continue;
                }
                if let Some(last) = core.remove_slot(rec.id) {
                    core.header().aged.0.fetch_add(1, Relaxed);
                    removed += 1;
                    on_removed(&FlowRecord {
                        value: last.value(),
                        ..rec
                    });
                }
            }
        }
        removed
    }

    /// Iterates over the flows (for dumps).
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            core: &self.core,
            slot: 0,
        }
    }

    /// See `Core::check_quiescent`.
    #[cfg(test)]
    pub(crate) fn check_quiescent(&self) -> Result<(), String> {
        self.core.check_quiescent()
    }

    /// Sum of the overflow counts of all groups.
    #[cfg(test)]
    pub(crate) fn overflow_total(&self) -> u64 {
        (0..self.core.groups)
            .map(|g| crate::layout::ctrl_count(self.core.group(g).load(Relaxed)))
            .sum()
    }

    /// Flows that live past their two groups.
    #[cfg(test)]
    pub(crate) fn flows_beyond(&self) -> usize {
        self.iter()
            .filter(|r| {
                let v = self.core.slot(r.id.index.0 as usize).version.load(Relaxed);
                crate::layout::version_disp(v) >= 2
            })
            .count()
    }
}

#[cfg(not(loom))]
fn core_from_header(mem: &Memory, layout: &Layout) -> Result<Core, OpenError> {
    // The header was validated by `Memory::open_file`; build a core with the
    // recorded seeds and check that this build hashes the same way.
    let probe = Core::new(mem.parts, layout, SEEDS);
    let h = probe.header();
    let seeds: [u64; 4] = core::array::from_fn(|i| h.seeds[i].load(Acquire));
    let core = Core::new(mem.parts, layout, seeds);
    if core.hash(&check_key()).0 != h.hash_check.load(Acquire) {
        return Err(OpenError::HashMismatch);
    }
    Ok(core)
}

/// A read-only view of a table file created by [`FlowTable::new`] with
/// [`FlowTableConfig::file`], possibly by another process that is still
/// updating it (a diagnostic dump tool). Lookups and iteration follow the
/// same lock-free read protocol as the table's own readers.
#[cfg(not(loom))]
pub struct FlowTableReader {
    core: Core,
    mem: Memory,
    backing: Backing,
}

#[cfg(not(loom))]
impl core::fmt::Debug for FlowTableReader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlowTableReader")
            .field("capacity", &self.core.capacity)
            .field("backing", &self.backing)
            .finish()
    }
}

#[cfg(not(loom))]
impl FlowTableReader {
    /// Maps `path` read-only and validates its header.
    #[cold]
    pub fn open(path: &Path) -> Result<FlowTableReader, OpenError> {
        let (mem, layout, backing) = Memory::open_file(path, false)?;
        let core = core_from_header(&mem, &layout)?;
        Ok(FlowTableReader { core, mem, backing })
    }

    /// The mapped file.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// Capacity in flows.
    pub fn capacity(&self) -> usize {
        self.core.capacity
    }

    /// Starts bringing the home control word of `hash` into the cache, for
    /// a lookup of it a little later (e.g. while the caller parses the rest
    /// of a burst before [`FlowTable::lookup_batch_with_hash`]). A hint: it
    /// reads nothing and changes nothing.
    #[inline]
    pub fn prefetch(&self, hash: FlowHash) {
        self.core.prefetch_home(&self.core.locate(hash));
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        stats_of(&self.core, self.mem.bytes).len
    }

    /// Whether the table holds no flow.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters.
    pub fn stats(&self) -> TableStats {
        stats_of(&self.core, self.mem.bytes)
    }

    /// Looks `key` up.
    pub fn lookup(&self, key: &FlowKey) -> Option<FlowEntry> {
        let loc = self.core.locate(self.core.hash(key));
        self.core.find(key.as_words(), &loc).map(|(_, e)| e)
    }

    /// Key, value and counters of flow `id`.
    pub fn get(&self, id: FlowId) -> Option<FlowRecord> {
        self.core.get(id)
    }

    /// Iterates over the flows.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            core: &self.core,
            slot: 0,
        }
    }
}
