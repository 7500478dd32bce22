//! The lock-free algorithm shared by [`crate::FlowTable`] (read-write) and
//! [`crate::FlowTableReader`] (read-only mapping). See the crate docs for
//! the protocol; comments here refer to its steps.

use crate::hash::KeyHasher;
use crate::key::FlowKey;
use crate::layout::{
    entry_gen, entry_slot, entry_tag, entry_word, version_bump, version_gen, Bucket, Header,
    Layout, Slot, SlotStats, ENTRIES_PER_BUCKET, ENTRY_GEN_MASK, ENTRY_OCCUPIED, ENTRY_PENDING,
    ENTRY_SECONDARY, ENTRY_TAG_MASK, ENTRY_TAG_SHIFT, VERSION_COUNT_MASK, VERSION_COUNT_ONE,
    VERSION_GEN_SHIFT, VERSION_LIVE, VERSION_WRITING,
};
use crate::memory::Parts;
use crate::sync::{fence, spin_hint, Ordering};
use crate::value::{FlowCounters, FlowEntry, FlowId, FlowIndex, FlowRecord, FlowValue};
use crate::FlowHash;

use Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

/// Fixed hash seeds: the table's hash is deterministic across runs and
/// processes (a second process mapping the table file must find the same
/// buckets). The header records them.
pub(crate) const SEEDS: [u64; 4] = [
    0x243F_6A88_85A3_08D3,
    0x1319_8A2E_0370_7344,
    0xA409_3822_299F_31D0,
    0x082E_FA98_EC4E_6C89,
];

/// A fixed key whose hash is stored in the header to detect a build that
/// hashes differently.
pub(crate) fn check_key() -> FlowKey {
    FlowKey::from_words([
        0x0123_4567_89AB_CDEF,
        0x0F1E_2D3C_4B5A_6978,
        0x1122_3344_5566_7788,
        0x99AA_BBCC_DDEE_FF00,
        0x0600_0001_0050_1F90,
    ])
}

/// Bits of an entry word compared by lookups: occupied, pending, secondary
/// and the tag.
const MATCH_MASK: u64 = ENTRY_OCCUPIED | ENTRY_PENDING | ENTRY_SECONDARY | ENTRY_TAG_MASK;

/// Batch pass-2 verdict: no tag match in the primary bucket, but its
/// overflow count is non-zero, so the full search must run. (Candidate
/// words have `OCCUPIED` set; 0 means absent.)
pub(crate) const SEARCH: u64 = 1;

/// Attempts of a dump or ageing read on one slot before it is skipped.
const SPIN_LIMIT: u32 = 1 << 20;

/// Where a key may live.
#[derive(Clone, Copy, Default)]
pub(crate) struct Loc {
    pub(crate) b1: usize,
    pub(crate) b2: usize,
    pub(crate) tag: u64,
}

/// Result of reading one slot through an entry word.
enum Read {
    /// Consistent snapshot of a live slot holding the key.
    Hit { version: u64, value: [u64; 2] },
    /// Not this key, or the entry is stale (slot freed or reused).
    Miss,
    /// A writer is modifying the slot right now: retry.
    Busy,
}

/// Result of a bucket scan.
enum Scan {
    Hit(usize, u64, FlowEntry),
    Miss,
    Busy,
}

/// How a pending insert resolves against concurrent inserts of its key.
pub(crate) enum Resolve {
    /// No other entry for the key: commit ours.
    Commit,
    /// A committed entry for the key exists: withdraw ours.
    Exists(FlowEntry),
    /// A pending entry with priority over ours exists: withdraw and retry.
    Retry,
}

/// Pointers, sizes and hasher of one table region.
pub(crate) struct Core {
    parts: Parts,
    pub(crate) capacity: usize,
    pub(crate) buckets: usize,
    bucket_mask: usize,
    hasher: KeyHasher,
    /// The CPU has `prefetchw` (prefetch into the cache in exclusive state,
    /// ready for a write).
    prefetchw: bool,
    /// Set when the CPU reads an aligned 16-byte vector atomically, so a
    /// bucket can be loaded four words at a time ([`load_bucket`]).
    wide_loads: Option<WideLoads>,
}

/// Whether the CPU implements `prefetchw` (CPUID leaf 0x8000_0001, ECX bit
/// 8: PRFCHW on Intel, 3DNowPrefetch on AMD).
#[cfg(target_arch = "x86_64")]
fn cpu_has_prefetchw() -> bool {
    use core::arch::x86_64::__cpuid;
    // SAFETY: `cpuid` exists on every x86_64 CPU; leaf 0x8000_0000 reports
    // the highest extended leaf, and leaf 0x8000_0001 is read only when it
    // is implemented. (`__cpuid` is a safe function on newer toolchains.)
    #[allow(unused_unsafe)]
    let (max, ecx) = unsafe {
        let max = __cpuid(0x8000_0000).eax;
        let ecx = if max >= 0x8000_0001 {
            __cpuid(0x8000_0001).ecx
        } else {
            0
        };
        (max, ecx)
    };
    max >= 0x8000_0001 && ecx & (1 << 8) != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_prefetchw() -> bool {
    false
}

/// Proof that aligned 16-byte vector loads are single-copy atomic on this
/// CPU; only [`cpu_has_atomic_16_byte_loads`] makes one.
#[derive(Clone, Copy)]
pub(crate) struct WideLoads(());

/// Whether aligned 16-byte vector loads are single-copy atomic: Intel and
/// AMD guarantee it for `movdqa` on CPUs that report AVX (Intel SDM vol.
/// 3A, "Guaranteed Atomic Operations"; AMD APM vol. 2, "Access
/// Atomicity"). Without AVX a wider load may be carried out as several
/// accesses, so buckets are read a word at a time.
fn cpu_has_atomic_16_byte_loads() -> Option<WideLoads> {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    if std::arch::is_x86_feature_detected!("avx") {
        return Some(WideLoads(()));
    }
    None
}

/// Hints the CPU to bring the line holding `p` into the L1 cache. Never
/// faults, whatever the address.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a hint: it never faults or reads memory
    // architecturally, whatever the address; SSE is part of the x86_64
    // baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Like [`prefetch`], but asks for the line in exclusive state (ready to be
/// written without a second trip to memory) when `write` is set; callers
/// pass [`Core`]'s CPU check, so `prefetchw` only runs where it exists.
#[inline(always)]
fn prefetch_for_write<T>(p: *const T, write: bool) {
    #[cfg(target_arch = "x86_64")]
    if write {
        // SAFETY: `prefetchw` is a hint like `prefetcht0`: it never faults
        // and has no architectural effect on memory, registers or flags,
        // whatever the address; it runs only on CPUs that report it in
        // CPUID (`write` comes from `cpu_has_prefetchw`), so it cannot be an
        // undefined opcode.
        unsafe {
            core::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
        }
        return;
    }
    let _ = write;
    prefetch(p);
}

/// The eight words of `bucket` (`[0]` its overflow count, `[1 + i]` entry
/// `i`) and which entries match `want` under [`MATCH_MASK`] (bit `i` for
/// entry `i`). Each word is read as by an `Acquire` load; the eight reads
/// are not one snapshot (no reader needs one: a stale word is caught by the
/// slot's generation, see the crate docs).
///
/// With `wide` (x86_64 CPUs with atomic 16-byte loads) the bucket is read
/// with four 16-byte loads and the seven entries matched by two 4-lane SSE2
/// compares of the words' upper halves (every [`MATCH_MASK`] bit is in
/// bits 32..64). That is 13-15 fewer instructions per lookup than the
/// word-by-word loop, which other CPUs and loom run (BENCHMARKS.md,
/// "Buckets matched with SSE2").
#[inline(always)]
fn load_bucket(bucket: &Bucket, want: u64, wide: Option<WideLoads>) -> (u32, [u64; 8]) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    if wide.is_some() {
        use core::arch::x86_64::{
            __m128i, _mm_and_si128, _mm_castps_si128, _mm_castsi128_ps, _mm_cmpeq_epi32,
            _mm_movemask_ps, _mm_set1_epi32, _mm_shuffle_ps,
        };
        const _: () = assert!(MATCH_MASK & 0xFFFF_FFFF == 0);
        const _: () = assert!(core::mem::size_of::<Bucket>() == 64);
        let p: *const Bucket = bucket;
        let (a, b, c, d): (__m128i, __m128i, __m128i, __m128i);
        // SAFETY: [1] `p` comes from a reference, so the 64 bytes of the
        // bucket are valid for reads, and `Bucket` is 64-byte aligned, as
        // `movdqa` requires; [2] the bucket is eight `AtomicU64`s that other
        // threads change with atomic stores and read-modify-writes, and each
        // word must be seen whole, as an atomic load sees it: a
        // `WideLoads` exists only where the CPU documents aligned 16-byte
        // loads as atomic. x86 loads are not reordered with later
        // loads, so the four loads act as eight `Acquire` loads. The block
        // is opaque to the compiler and not `pure`, so it is never cached or
        // merged with another read (a retrying reader reads again); [3] it
        // writes only its four output registers.
        unsafe {
            core::arch::asm!(
                "movdqa {a}, xmmword ptr [{p}]",
                "movdqa {b}, xmmword ptr [{p} + 16]",
                "movdqa {c}, xmmword ptr [{p} + 32]",
                "movdqa {d}, xmmword ptr [{p} + 48]",
                p = in(reg) p,
                a = out(xmm_reg) a,
                b = out(xmm_reg) b,
                c = out(xmm_reg) c,
                d = out(xmm_reg) d,
                options(nostack, preserves_flags, readonly),
            );
        }
        std::sync::atomic::compiler_fence(Acquire);
        // Upper halves of words 0..4 and 4..8, then one bit per word.
        // SAFETY: register-only SSE and SSE2 operations, part of the x86_64
        // baseline.
        let matches = unsafe {
            let mask = _mm_set1_epi32((MATCH_MASK >> 32) as i32);
            let want = _mm_set1_epi32((want >> 32) as i32);
            let lo = _mm_shuffle_ps::<0b11_01_11_01>(_mm_castsi128_ps(a), _mm_castsi128_ps(b));
            let hi = _mm_shuffle_ps::<0b11_01_11_01>(_mm_castsi128_ps(c), _mm_castsi128_ps(d));
            let lo = _mm_cmpeq_epi32(_mm_and_si128(_mm_castps_si128(lo), mask), want);
            let hi = _mm_cmpeq_epi32(_mm_and_si128(_mm_castps_si128(hi), mask), want);
            let lo = _mm_movemask_ps(_mm_castsi128_ps(lo)) as u32;
            let hi = _mm_movemask_ps(_mm_castsi128_ps(hi)) as u32;
            (lo | hi << 4) >> 1
        };
        // SAFETY: four 16-byte vectors and eight u64 have the same size,
        // and every bit pattern is a valid u64.
        let words = unsafe { core::mem::transmute::<[__m128i; 4], [u64; 8]>([a, b, c, d]) };
        return (matches, words);
    }
    let _ = wide;
    let mut words = [bucket.overflow.load(Acquire); 8];
    let mut matches = 0u32;
    for (i, (e, w)) in bucket
        .entries
        .iter()
        .zip(words.iter_mut().skip(1))
        .enumerate()
    {
        *w = e.load(Acquire);
        matches |= u32::from(*w & MATCH_MASK == want) << i;
    }
    (matches, words)
}

/// The word [`Core::finish_word`] takes for what [`Core::candidate`] found:
/// the candidate entry word (it has `OCCUPIED` set: it matched), [`SEARCH`]
/// when there was none but the bucket overflowed, else 0 (absent).
#[inline]
pub(crate) fn candidate_word(w: u64, overflow: u64) -> u64 {
    match (w, overflow) {
        (0, 0) => 0,
        (0, _) => SEARCH,
        _ => w,
    }
}

fn entry_of(slot: usize, version: u64, value: [u64; 2]) -> FlowEntry {
    FlowEntry::from_words(
        FlowId {
            index: FlowIndex(slot as u32),
            generation: version_gen(version),
        },
        value,
    )
}

impl Core {
    pub(crate) fn new(parts: Parts, layout: &Layout, seeds: [u64; 4]) -> Core {
        let [k0, k1, k2, k3] = seeds;
        Core {
            parts,
            capacity: layout.capacity,
            buckets: layout.buckets,
            bucket_mask: layout.buckets - 1,
            hasher: KeyHasher::new([k0, k1, k2, k3]),
            prefetchw: cpu_has_prefetchw(),
            wide_loads: cpu_has_atomic_16_byte_loads(),
        }
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: [1] `parts.header` points at the start of the region owned
        // by the `Memory` kept beside this `Core`, which outlives `&self`;
        // [2] the region is at least HEADER_BYTES long and page (or heap)
        // aligned; [3] the header is made only of atomics, valid for any bit
        // pattern, so a shared reference is sound while other threads (or
        // processes) update it.
        unsafe { self.parts.header.as_ref() }
    }

    #[inline]
    pub(crate) fn bucket(&self, i: usize) -> &Bucket {
        let i = i & self.bucket_mask;
        debug_assert!(i < self.buckets);
        // SAFETY: [1] `i` is masked below the bucket count (a power of two);
        // [2] the region holds that many 64-byte buckets from
        // `parts.buckets`, which is 64-byte aligned, and outlives `&self`;
        // [3] buckets are atomics only.
        unsafe { &*self.parts.buckets.as_ptr().add(i) }
    }

    #[inline]
    pub(crate) fn slot(&self, i: usize) -> &Slot {
        let i = i & (self.capacity - 1);
        // SAFETY: as for `bucket`: `i` is masked below the capacity (a power
        // of two) and the region holds `capacity` aligned slots.
        unsafe { &*self.parts.slots.as_ptr().add(i) }
    }

    #[inline]
    pub(crate) fn slot_stats(&self, i: usize) -> &SlotStats {
        let i = i & (self.capacity - 1);
        // SAFETY: as for `slot`: the region holds `capacity` counter blocks
        // of 24 bytes from the 64-byte aligned `parts.stats`.
        unsafe { &*self.parts.stats.as_ptr().add(i) }
    }

    /// Prefetches the counters of slot `i` (the line [`FlowTable::touch`]
    /// writes), for writing where the CPU can. A 24-byte counter block may
    /// straddle two lines: the lines of its first and last words are both
    /// asked for (the same line twice when it does not straddle).
    ///
    /// [`FlowTable::touch`]: crate::FlowTable::touch
    #[inline(always)]
    pub(crate) fn prefetch_stats(&self, i: usize) {
        let st = self.slot_stats(i);
        prefetch_for_write(&st.last_seen, self.prefetchw);
        prefetch_for_write(&st.bytes, self.prefetchw);
    }

    /// Prefetches bucket `i` for writing where the CPU can (an insert
    /// claims one of its entry words with a CAS).
    #[inline(always)]
    pub(crate) fn prefetch_bucket_for_write(&self, i: usize) {
        prefetch_for_write(self.bucket(i), self.prefetchw);
    }

    /// Prefetches, for writing where the CPU can, the slot lines and counter
    /// lines of the next `n` slots [`Core::alloc_slot`] would hand out if no
    /// other thread allocated or freed meanwhile: the top `n` slots of the
    /// free list, then never-used slots. An insert writes both lines (W3)
    /// right after taking the slot. A hint only: it loads the free-list head
    /// and, to walk the list, the links of the slots it has just asked for
    /// (usually in the cache: the most recently freed slots are on top), and
    /// writes nothing; a link rewritten by a racing thread only makes it
    /// prefetch other lines (slot indices are masked). Skipped in the loom
    /// models, where its extra loads would only widen the search.
    #[inline(always)]
    pub(crate) fn prefetch_alloc(&self, n: usize) {
        #[cfg(not(loom))]
        {
            let h = self.header();
            let mut left = n;
            let mut top = h.free_head.0.load(Relaxed) & 0xFFFF_FFFF;
            while left > 0 && top != 0 {
                let slot = (top - 1) as usize;
                let s = self.slot(slot);
                prefetch_for_write(s, self.prefetchw);
                self.prefetch_stats(slot);
                left -= 1;
                if left == 0 {
                    return;
                }
                top = s.value[1].load(Relaxed) & 0xFFFF_FFFF;
            }
            let fresh = h.fresh.0.load(Relaxed) as usize;
            let end = fresh.saturating_add(left).min(self.capacity);
            for slot in fresh..end {
                prefetch_for_write(self.slot(slot), self.prefetchw);
                self.prefetch_stats(slot);
            }
        }
        #[cfg(loom)]
        let _ = n;
    }

    /// Address of bucket `i` for prefetching.
    #[inline]
    pub(crate) fn bucket_ptr(&self, i: usize) -> *const Bucket {
        self.bucket(i)
    }

    #[inline]
    pub(crate) fn hash(&self, key: &FlowKey) -> FlowHash {
        FlowHash(self.hasher.hash(key.as_words()))
    }

    /// Secondary-bucket offset of a tag: non-zero, within the bucket mask,
    /// and a function of the tag alone, so `b1 ^ alt == b2` and
    /// `b2 ^ alt == b1` (the primary can be recovered from an entry word).
    #[inline]
    fn alt(&self, tag: u64) -> usize {
        (((tag.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 20) as usize & self.bucket_mask) | 1
    }

    #[inline]
    pub(crate) fn locate(&self, hash: FlowHash) -> Loc {
        let h = hash.0;
        let tag = h >> 48;
        let b1 = (h as usize) & self.bucket_mask;
        Loc {
            b1,
            b2: b1 ^ self.alt(tag),
            tag,
        }
    }

    /// Reads the slot an entry word points to, if it still holds `key`.
    /// Steps R3..R6 of the read protocol.
    #[inline]
    fn read_if_key(&self, idx: usize, wgen: u64, key: &[u64; 5]) -> Read {
        let s = self.slot(idx);
        let v1 = s.version.load(Acquire);
        // One test for the common case (live, the entry's generation, no
        // writer); which of the three failed is sorted out only on failure.
        const CHECKED: u64 = VERSION_LIVE | VERSION_WRITING | (ENTRY_GEN_MASK << VERSION_GEN_SHIFT);
        if v1 & CHECKED != VERSION_LIVE | (wgen << VERSION_GEN_SHIFT) {
            if v1 & VERSION_LIVE == 0 || (v1 >> VERSION_GEN_SHIFT) & ENTRY_GEN_MASK != wgen {
                return Read::Miss;
            }
            return Read::Busy;
        }
        for (a, b) in s.key.iter().zip(key) {
            if a.load(Relaxed) != *b {
                return Read::Miss;
            }
        }
        let value = [s.value[0].load(Relaxed), s.value[1].load(Relaxed)];
        fence(Acquire);
        if s.version.load(Relaxed) != v1 {
            return Read::Busy;
        }
        Read::Hit { version: v1, value }
    }

    /// Looks for a committed entry of `key` in bucket `b`. The tag test is
    /// done for all seven words first ([`load_bucket`]), then only the
    /// matching words' slots are read.
    #[inline]
    fn scan(&self, b: usize, secondary: u64, tag: u64, key: &[u64; 5]) -> Scan {
        let want = ENTRY_OCCUPIED | secondary | (tag << ENTRY_TAG_SHIFT);
        let (mut matches, words) = load_bucket(self.bucket(b), want, self.wide_loads);
        let mut busy = false;
        while matches != 0 {
            let i = matches.trailing_zeros() as usize;
            matches &= matches - 1;
            let Some(&w) = words.get(i + 1) else { break };
            let slot = entry_slot(w);
            match self.read_if_key(slot, entry_gen(w), key) {
                Read::Hit { version, value } => {
                    return Scan::Hit(i, w, entry_of(slot, version, value))
                }
                Read::Busy => busy = true,
                Read::Miss => {}
            }
        }
        if busy {
            Scan::Busy
        } else {
            Scan::Miss
        }
    }

    /// Finds the committed entry of `key`: its bucket, position, entry word
    /// and a snapshot. Loads only.
    #[inline]
    pub(crate) fn find(&self, key: &[u64; 5], loc: &Loc) -> Option<(usize, usize, u64, FlowEntry)> {
        loop {
            match self.scan(loc.b1, 0, loc.tag, key) {
                Scan::Hit(i, w, e) => return Some((loc.b1, i, w, e)),
                Scan::Busy => {
                    spin_hint();
                    continue;
                }
                Scan::Miss => {}
            }
            if self.bucket(loc.b1).overflow.load(Acquire) == 0 {
                return None;
            }
            match self.scan(loc.b2, ENTRY_SECONDARY, loc.tag, key) {
                Scan::Hit(i, w, e) => return Some((loc.b2, i, w, e)),
                Scan::Busy => spin_hint(),
                Scan::Miss => return None,
            }
        }
    }

    /// First committed entry word with `loc`'s tag in the primary bucket (0
    /// if none, [`SEARCH`] if the word changed while it was read) and the
    /// primary bucket's overflow count. Single lookups and inserts start
    /// with it; batch lookups use [`Core::candidate_wide`] to prefetch the
    /// slot. Loads only.
    #[inline]
    pub(crate) fn candidate(&self, loc: &Loc) -> (u64, u64) {
        // One copy per bucket load, each with the load fixed: passing
        // `self.wide_loads` through measured 5-7 more instructions per
        // single lookup (`ft_ops single-hit 1 1024`: 174 against 167).
        match self.wide_loads {
            Some(w) => self.candidate_wide::<true>(loc, Some(w)),
            None => self.candidate_wide::<true>(loc, None),
        }
    }

    /// [`Core::candidate`] with the bucket load given by the caller
    /// ([`Core::wide_loads`]): a batch tests it once per burst instead of
    /// once per key. With `RELOAD` the matching word is loaded again (from
    /// L1) rather than taken out of the vector registers through the stack,
    /// and if it changed in between, the full search decides: 5 more
    /// instructions, but 3 ns less from the bucket to the slot address for
    /// a single lookup, which waits for it (a batch does not).
    #[inline(always)]
    pub(crate) fn candidate_wide<const RELOAD: bool>(
        &self,
        loc: &Loc,
        wide: Option<WideLoads>,
    ) -> (u64, u64) {
        let want = ENTRY_OCCUPIED | (loc.tag << ENTRY_TAG_SHIFT);
        let bucket = self.bucket(loc.b1);
        let (matches, words) = load_bucket(bucket, want, wide);
        let found = if matches == 0 {
            0
        } else if RELOAD {
            let i = matches.trailing_zeros() as usize;
            match bucket.entries.get(i).map(|e| e.load(Acquire)) {
                Some(w) if w & MATCH_MASK == want => w,
                _ => SEARCH,
            }
        } else {
            let first = matches.trailing_zeros() as usize + 1;
            words.get(first).copied().unwrap_or(0)
        };
        let [overflow, ..] = words;
        (found, overflow)
    }

    /// Whether buckets are loaded with 16-byte vector loads (see
    /// [`load_bucket`]).
    #[inline]
    pub(crate) fn wide_loads(&self) -> Option<WideLoads> {
        self.wide_loads
    }

    /// Address of the slot an entry word points to, for prefetching.
    #[inline]
    pub(crate) fn slot_ptr(&self, w: u64) -> *const Slot {
        self.slot(entry_slot(w))
    }

    /// Completes a lookup from [`candidate_word`] of what [`Core::candidate`]
    /// found (a batch keeps that word per key from its pass 2): if the
    /// candidate's slot holds the key, that is the answer; if there was no
    /// candidate and no overflow, the key is absent; otherwise the buckets
    /// are searched ([`Core::find`]), the key's location derived from `hash`
    /// only then.
    #[inline]
    pub(crate) fn finish_word(&self, key: &[u64; 5], hash: FlowHash, c: u64) -> Option<FlowEntry> {
        if let Some(e) = self.read_candidate(key, c) {
            return Some(e);
        }
        if c == 0 {
            return None;
        }
        self.search(key, hash)
    }

    /// [`Core::finish_word`] writing its answer to `out`, returning the
    /// found flow's slot. A batch's last pass calls this: both the hit and
    /// the search write `out` directly, so the entry is not built in a
    /// temporary and copied.
    #[inline]
    pub(crate) fn finish_into(
        &self,
        key: &[u64; 5],
        hash: FlowHash,
        c: u64,
        out: &mut Option<FlowEntry>,
    ) -> Option<usize> {
        if let Some(e) = self.read_candidate(key, c) {
            *out = Some(e);
            return Some(e.id.index.0 as usize);
        }
        if c == 0 {
            *out = None;
            return None;
        }
        self.search_into(key, hash, out)
    }

    /// [`Core::search`] into `out`.
    #[cold]
    #[inline(never)]
    fn search_into(
        &self,
        key: &[u64; 5],
        hash: FlowHash,
        out: &mut Option<FlowEntry>,
    ) -> Option<usize> {
        *out = self.search(key, hash);
        out.map(|e| e.id.index.0 as usize)
    }

    /// The entry candidate word `c` names, if it is a candidate (`OCCUPIED`
    /// set) and its slot holds `key`.
    #[inline]
    fn read_candidate(&self, key: &[u64; 5], c: u64) -> Option<FlowEntry> {
        if c & ENTRY_OCCUPIED == 0 {
            return None;
        }
        let slot = entry_slot(c);
        match self.read_if_key(slot, entry_gen(c), key) {
            Read::Hit { version, value } => Some(entry_of(slot, version, value)),
            _ => None,
        }
    }

    /// [`Core::find`] from the key's hash: the batch's rare path (a stale or
    /// busy candidate, or a key that overflowed its primary bucket).
    #[cold]
    #[inline(never)]
    fn search(&self, key: &[u64; 5], hash: FlowHash) -> Option<FlowEntry> {
        self.find(key, &self.locate(hash)).map(|(_, _, _, e)| e)
    }

    /// Consistent snapshot (key, value, counters) of the flow an entry word
    /// points to, or `None` if the word is stale. Gives up (`None`) after
    /// [`SPIN_LIMIT`] attempts, so that a dump of a file left by a crashed
    /// writer (a slot stuck in `WRITING`) cannot hang.
    pub(crate) fn record_of_word(&self, w: u64) -> Option<FlowRecord> {
        let idx = entry_slot(w);
        let s = self.slot(idx);
        for _ in 0..SPIN_LIMIT {
            let v1 = s.version.load(Acquire);
            if v1 & VERSION_LIVE == 0 || (v1 >> VERSION_GEN_SHIFT) & ENTRY_GEN_MASK != entry_gen(w)
            {
                return None;
            }
            if v1 & VERSION_WRITING != 0 {
                spin_hint();
                continue;
            }
            if let Some(rec) = self.snapshot(idx, v1) {
                return Some(rec);
            }
            spin_hint();
        }
        None
    }

    /// Reads slot `idx` whose version was `v1` (live, not being written);
    /// `None` if the version changed meanwhile.
    fn snapshot(&self, idx: usize, v1: u64) -> Option<FlowRecord> {
        let s = self.slot(idx);
        let key: [u64; 5] = core::array::from_fn(|i| s.key[i].load(Relaxed));
        let value = [s.value[0].load(Relaxed), s.value[1].load(Relaxed)];
        fence(Acquire);
        if s.version.load(Relaxed) != v1 {
            return None;
        }
        Some(FlowRecord {
            id: FlowId {
                index: FlowIndex(idx as u32),
                generation: version_gen(v1),
            },
            key: FlowKey::from_words(key),
            value: FlowValue::decode(value),
            counters: self.counters_of(idx),
        })
    }

    fn counters_of(&self, idx: usize) -> FlowCounters {
        let st = self.slot_stats(idx);
        FlowCounters {
            packets: st.packets.load(Relaxed),
            bytes: st.bytes.load(Relaxed),
            last_seen: st.last_seen.load(Relaxed),
        }
    }

    /// The flow `id` if it is still live.
    pub(crate) fn get(&self, id: FlowId) -> Option<FlowRecord> {
        let idx = id.index.0 as usize;
        if idx >= self.capacity {
            return None;
        }
        let s = self.slot(idx);
        loop {
            let v1 = s.version.load(Acquire);
            if v1 & VERSION_LIVE == 0 || version_gen(v1) != id.generation {
                return None;
            }
            if v1 & VERSION_WRITING == 0 {
                if let Some(rec) = self.snapshot(idx, v1) {
                    return Some(rec);
                }
            }
            spin_hint();
        }
    }

    /// Counters of flow `id` if it is still live.
    pub(crate) fn counters(&self, id: FlowId) -> Option<FlowCounters> {
        let idx = id.index.0 as usize;
        if idx >= self.capacity {
            return None;
        }
        let v = self.slot(idx).version.load(Acquire);
        if v & VERSION_LIVE == 0 || version_gen(v) != id.generation {
            return None;
        }
        Some(self.counters_of(idx))
    }

    // ----- writer side -------------------------------------------------

    /// Pops a slot from the free list (step W2).
    fn pop_free(&self) -> Option<u32> {
        let head = &self.header().free_head.0;
        let mut h = head.load(Acquire);
        loop {
            let top = h & 0xFFFF_FFFF;
            if top == 0 {
                return None;
            }
            let slot = (top - 1) as usize;
            if slot >= self.capacity {
                return None;
            }
            // May read a link rewritten by a new owner of the slot; the tag
            // in the head then has changed and the CAS below fails.
            let next = self.slot(slot).value[1].load(Relaxed) & 0xFFFF_FFFF;
            let new = (((h >> 32).wrapping_add(1)) << 32) | next;
            match head.compare_exchange_weak(h, new, Acquire, Acquire) {
                Ok(_) => return Some(slot as u32),
                Err(x) => h = x,
            }
        }
    }

    /// Pushes a retired slot on the free list.
    fn push_free(&self, slot: u32) {
        let head = &self.header().free_head.0;
        let link = &self.slot(slot as usize).value[1];
        // The link overwrites a value word that a reader may still be
        // copying: as for any slot write (W3, U), a release fence orders the
        // version change made by `release_slot` before it, so a reader that
        // copies the link also sees the new version in its re-check (R5).
        fence(Release);
        let mut h = head.load(Relaxed);
        loop {
            link.store(h & 0xFFFF_FFFF, Relaxed);
            let new = (((h >> 32).wrapping_add(1)) << 32) | (u64::from(slot) + 1);
            match head.compare_exchange_weak(h, new, Release, Relaxed) {
                Ok(_) => return,
                Err(x) => h = x,
            }
        }
    }

    /// A free slot: recycled first, else never used; `None` when full.
    pub(crate) fn alloc_slot(&self) -> Option<u32> {
        if let Some(s) = self.pop_free() {
            return Some(s);
        }
        let fresh = &self.header().fresh.0;
        let cap = self.capacity as u64;
        if fresh.load(Relaxed) < cap {
            let i = fresh.fetch_add(1, Relaxed);
            if i < cap {
                return Some(i as u32);
            }
        }
        self.pop_free()
    }

    /// Number of slots ever handed out by the bump allocator.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn fresh(&self) -> usize {
        (self.header().fresh.0.load(Relaxed) as usize).min(self.capacity)
    }

    /// Writes key, value and counters into an owned, unpublished slot
    /// (step W3). Returns the slot's generation.
    pub(crate) fn fill_slot(&self, slot: u32, key: &[u64; 5], value: [u64; 2], now: u64) -> u32 {
        let s = self.slot(slot as usize);
        let v = s.version.load(Relaxed);
        s.version.store(v | VERSION_WRITING, Relaxed);
        fence(Release);
        for (a, b) in s.key.iter().zip(key) {
            a.store(*b, Relaxed);
        }
        s.value[0].store(value[0], Relaxed);
        s.value[1].store(value[1], Relaxed);
        let st = self.slot_stats(slot as usize);
        st.last_seen.store(now, Relaxed);
        st.packets.store(0, Relaxed);
        st.bytes.store(0, Relaxed);
        s.version.store(version_bump(v, VERSION_LIVE), Release);
        version_gen(v)
    }

    /// Retires a slot no entry word points to any more (bumps its
    /// generation, clears LIVE) and puts it on the free list (step D3).
    pub(crate) fn release_slot(&self, slot: u32) {
        let s = self.slot(slot as usize);
        let mut v = s.version.load(Relaxed);
        loop {
            if v & VERSION_WRITING != 0 {
                spin_hint();
                v = s.version.load(Relaxed);
                continue;
            }
            let next_gen = u64::from(version_gen(v).wrapping_add(1)) << VERSION_GEN_SHIFT;
            let freed = next_gen | (v.wrapping_add(VERSION_COUNT_ONE) & VERSION_COUNT_MASK);
            match s.version.compare_exchange_weak(v, freed, AcqRel, Relaxed) {
                Ok(_) => break,
                Err(x) => v = x,
            }
        }
        self.push_free(slot);
    }

    fn claim_in(&self, b: usize, w: u64) -> Option<usize> {
        for (i, e) in self.bucket(b).entries.iter().enumerate() {
            if e.load(Relaxed) == 0 && e.compare_exchange(0, w, SeqCst, Relaxed).is_ok() {
                return Some(i);
            }
        }
        None
    }

    /// Claims an empty entry word for a pending entry (step W4): primary
    /// bucket first, else the secondary after raising the primary's
    /// overflow count. Returns bucket, position and the word written.
    pub(crate) fn claim(
        &self,
        loc: &Loc,
        slot: u32,
        generation: u32,
    ) -> Option<(usize, usize, u64)> {
        let w = entry_word(loc.tag, slot, generation, false);
        if let Some(i) = self.claim_in(loc.b1, w) {
            return Some((loc.b1, i, w));
        }
        let primary = &self.bucket(loc.b1).overflow;
        primary.fetch_add(1, SeqCst);
        let w2 = w | ENTRY_SECONDARY;
        if let Some(i) = self.claim_in(loc.b2, w2) {
            return Some((loc.b2, i, w2));
        }
        primary.fetch_sub(1, SeqCst);
        None
    }

    /// Scans both buckets for other entries of `key` (step W5).
    #[inline]
    pub(crate) fn resolve(
        &self,
        key: &[u64; 5],
        loc: &Loc,
        mine: (usize, usize),
        my_slot: u32,
    ) -> Resolve {
        let tagbits = loc.tag << ENTRY_TAG_SHIFT;
        let ours = |b: usize| {
            if b == mine.0 {
                1u32.wrapping_shl(mine.1 as u32)
            } else {
                0
            }
        };
        let want = ENTRY_OCCUPIED | tagbits;
        if let Some(r) = self.resolve_in(loc.b1, want, ours(loc.b1), key, my_slot) {
            return r;
        }
        // Any other entry of the key in the secondary bucket raised the
        // primary's overflow count before it was claimed (and lowers it only
        // after it is vacated). A zero read after our claim means every such
        // entry claims after us and will see ours in its own scan, so the
        // secondary bucket need not be read.
        if self.bucket(loc.b1).overflow.load(SeqCst) == 0 {
            return Resolve::Commit;
        }
        let want = want | ENTRY_SECONDARY;
        self.resolve_in(loc.b2, want, ours(loc.b2), key, my_slot)
            .unwrap_or(Resolve::Commit)
    }

    /// W5 in bucket `b`: `want` is the occupied, secondary and tag bits of
    /// the key's entries there, `ours` the bit of our own word's position
    /// (0 if it is in the other bucket). `None`: no other entry of the key.
    #[inline(always)]
    fn resolve_in(
        &self,
        b: usize,
        want: u64,
        ours: u32,
        key: &[u64; 5],
        my_slot: u32,
    ) -> Option<Resolve> {
        const MASK: u64 = ENTRY_OCCUPIED | ENTRY_SECONDARY | ENTRY_TAG_MASK;
        // Load every word first and test the tags without branches (as
        // `scan` does); only the words with the key's tag, other than ours,
        // are looked at further (rarely any: a new key's tag seldom
        // matches). Each load still follows our claim, which is all the
        // argument in `resolve` needs.
        let bucket = self.bucket(b);
        let mut words = [0u64; ENTRIES_PER_BUCKET];
        let mut matches = 0u32;
        for (i, (e, w)) in bucket.entries.iter().zip(words.iter_mut()).enumerate() {
            *w = e.load(SeqCst);
            matches |= u32::from(*w & MASK == want) << i;
        }
        matches &= !ours;
        if matches == 0 {
            return None;
        }
        self.resolve_matches(bucket, &words, matches, want, key, my_slot)
    }

    /// The words of `bucket` flagged in `matches` (first read as in `words`)
    /// carry the key's tag: find out which hold the key and settle with
    /// them (W5).
    #[inline(never)]
    fn resolve_matches(
        &self,
        bucket: &Bucket,
        words: &[u64; ENTRIES_PER_BUCKET],
        mut matches: u32,
        want: u64,
        key: &[u64; 5],
        my_slot: u32,
    ) -> Option<Resolve> {
        const MASK: u64 = ENTRY_OCCUPIED | ENTRY_SECONDARY | ENTRY_TAG_MASK;
        while matches != 0 {
            let i = matches.trailing_zeros() as usize;
            matches &= matches - 1;
            let (Some(e), Some(&first)) = (bucket.entries.get(i), words.get(i)) else {
                break;
            };
            let mut w = first;
            while w & MASK == want {
                let slot = entry_slot(w);
                match self.read_if_key(slot, entry_gen(w), key) {
                    Read::Miss => break,
                    Read::Busy => spin_hint(),
                    Read::Hit { version, value } => {
                        if w & ENTRY_PENDING == 0 {
                            return Some(Resolve::Exists(entry_of(slot, version, value)));
                        }
                        if (slot as u32) < my_slot {
                            return Some(Resolve::Retry);
                        }
                        // Lower priority duplicate: withdraw it for its
                        // owner, whose commit CAS will then fail.
                        if e.compare_exchange(w, 0, SeqCst, Relaxed).is_ok() {
                            break;
                        }
                    }
                }
                w = e.load(SeqCst);
            }
        }
        None
    }

    /// Bookkeeping after entry word `w` of bucket `b` was set to 0: lowers
    /// the primary bucket's overflow count for a secondary entry.
    pub(crate) fn vacated(&self, b: usize, w: u64) {
        if w & ENTRY_SECONDARY != 0 {
            let primary = b ^ self.alt(entry_tag(w));
            self.bucket(primary).overflow.fetch_sub(1, SeqCst);
        }
    }

    /// Rewrites a live slot's value under its version lock (step U).
    pub(crate) fn modify(&self, id: FlowId, f: impl FnOnce(FlowValue) -> FlowValue) -> bool {
        let idx = id.index.0 as usize;
        if idx >= self.capacity {
            return false;
        }
        let s = self.slot(idx);
        let mut v = s.version.load(Relaxed);
        loop {
            if v & VERSION_LIVE == 0 || version_gen(v) != id.generation {
                return false;
            }
            if v & VERSION_WRITING != 0 {
                spin_hint();
                v = s.version.load(Relaxed);
                continue;
            }
            match s
                .version
                .compare_exchange_weak(v, v | VERSION_WRITING, Acquire, Relaxed)
            {
                Ok(_) => break,
                Err(x) => v = x,
            }
        }
        fence(Release);
        let old = FlowValue::decode([s.value[0].load(Relaxed), s.value[1].load(Relaxed)]);
        let new = f(old).encode();
        s.value[0].store(new[0], Relaxed);
        s.value[1].store(new[1], Relaxed);
        s.version.store(version_bump(v, VERSION_LIVE), Release);
        true
    }

    /// Removes the committed entry word `w` at (`b`, `i`) if it is still
    /// there; returns whether this call removed it.
    pub(crate) fn remove_word(&self, b: usize, i: usize, w: u64) -> bool {
        let Some(e) = self.bucket(b).entries.get(i) else {
            return false;
        };
        if e.compare_exchange(w, 0, SeqCst, Relaxed).is_err() {
            return false;
        }
        self.vacated(b, w);
        self.release_slot(entry_slot(w) as u32);
        self.header().removed.0.fetch_add(1, Relaxed);
        true
    }

    /// Position and word of the committed entry pointing at `id`.
    pub(crate) fn find_id(&self, id: FlowId, loc: &Loc) -> Option<(usize, usize, u64)> {
        for b in [loc.b1, loc.b2] {
            for (i, e) in self.bucket(b).entries.iter().enumerate() {
                let w = e.load(Acquire);
                if w & (ENTRY_OCCUPIED | ENTRY_PENDING) == ENTRY_OCCUPIED
                    && entry_slot(w) == id.index.0 as usize
                    && entry_gen(w) == u64::from(id.generation) & ENTRY_GEN_MASK
                {
                    return Some((b, i, w));
                }
            }
        }
        None
    }

    /// Rebuilds allocator state and overflow counts after the previous
    /// owner of a mapped table exited (possibly mid-operation). Requires
    /// exclusive access (no other process or thread uses the table).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn repair(&self) {
        let fresh = self.fresh();
        let mut referenced = vec![false; self.capacity];
        for b in 0..self.buckets {
            self.bucket(b).overflow.store(0, Relaxed);
        }
        let mut live = 0u64;
        for b in 0..self.buckets {
            for e in &self.bucket(b).entries {
                let w = e.load(Relaxed);
                if w == 0 {
                    continue;
                }
                let slot = entry_slot(w);
                let v = self.slot(slot).version.load(Relaxed);
                let stale = w & ENTRY_PENDING != 0
                    || slot >= fresh
                    || v & VERSION_LIVE == 0
                    || (v >> VERSION_GEN_SHIFT) & ENTRY_GEN_MASK != entry_gen(w)
                    || referenced.get(slot).copied().unwrap_or(true);
                if stale {
                    e.store(0, Relaxed);
                    continue;
                }
                if let Some(r) = referenced.get_mut(slot) {
                    *r = true;
                }
                live += 1;
                if w & ENTRY_SECONDARY != 0 {
                    let primary = b ^ self.alt(entry_tag(w));
                    self.bucket(primary).overflow.fetch_add(1, Relaxed);
                }
            }
        }
        self.header().free_head.0.store(0, Relaxed);
        for slot in (0..fresh).rev() {
            let s = self.slot(slot);
            let v = s.version.load(Relaxed) & !VERSION_WRITING;
            if referenced.get(slot).copied().unwrap_or(false) {
                s.version.store(version_bump(v, VERSION_LIVE), Relaxed);
            } else {
                let next_gen = u64::from(version_gen(v).wrapping_add(1)) << VERSION_GEN_SHIFT;
                s.version.store(
                    next_gen | (v.wrapping_add(VERSION_COUNT_ONE) & VERSION_COUNT_MASK),
                    Relaxed,
                );
                self.push_free(slot as u32);
            }
        }
        let h = self.header();
        let removed = h.removed.0.load(Relaxed);
        h.inserted.0.store(removed + live, Relaxed);
        fence(SeqCst);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The word-by-word definition `load_bucket` must agree with.
    fn reference(words: &[u64; 8], want: u64) -> u32 {
        let mut m = 0;
        for (i, w) in words.iter().skip(1).enumerate() {
            m |= u32::from(w & MATCH_MASK == want) << i;
        }
        m
    }

    #[test]
    fn load_bucket_matches_the_word_by_word_test() {
        // xorshift: a fixed sequence, so a failure reproduces.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut hits = 0;
        for round in 0..20_000 {
            let tag = next() & 0xFFFF;
            let secondary = if round % 3 == 0 { ENTRY_SECONDARY } else { 0 };
            let want = ENTRY_OCCUPIED | secondary | (tag << ENTRY_TAG_SHIFT);
            let mut words = [0u64; 8];
            for w in &mut words {
                let low = next() & ((1 << ENTRY_TAG_SHIFT) - 1) & !ENTRY_SECONDARY;
                *w = match next() % 6 {
                    // Matching, with any slot and generation.
                    0 => want | low,
                    // Pending, or the other bucket kind: no match.
                    1 => want | ENTRY_PENDING | low,
                    2 => (want ^ ENTRY_SECONDARY) | low,
                    // A tag one bit away.
                    3 => want ^ (1 << (ENTRY_TAG_SHIFT + (next() % 16) as u32)) | low,
                    4 => 0,
                    _ => next(),
                };
            }
            let bucket = Bucket::new();
            bucket.overflow.store(words[0], Relaxed);
            for (e, w) in bucket.entries.iter().zip(words.iter().skip(1)) {
                e.store(*w, Relaxed);
            }
            for wide in [None, cpu_has_atomic_16_byte_loads()] {
                let (m, got) = load_bucket(&bucket, want, wide);
                let wide = wide.is_some();
                assert_eq!(got, words, "round {round}, wide {wide}");
                assert_eq!(
                    m,
                    reference(&words, want),
                    "round {round}, wide {wide}: {words:x?}"
                );
                hits += m.count_ones();
            }
        }
        assert!(hits > 20_000, "too few matching words generated: {hits}");
        assert!(
            cfg!(not(target_arch = "x86_64")) || cpu_has_atomic_16_byte_loads().is_some(),
            "this x86_64 CPU has no AVX: the 16-byte bucket load was not tested"
        );
    }
}
