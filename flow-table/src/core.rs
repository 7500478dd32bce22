//! The lock-free algorithm shared by [`crate::FlowTable`] (read-write) and
//! [`crate::FlowTableReader`] (read-only mapping). See the crate docs for
//! the protocol; comments here refer to its steps.

use crate::hash::KeyHasher;
use crate::key::FlowKey;
use crate::layout::{
    ctrl_byte, ctrl_count, ctrl_tag, is_full, version_bump, version_disp, version_gen,
    version_retired, with_ctrl_byte, Group, Header, Layout, Slot, SlotStats, Stripe, COUNT_STICKY,
    CTRL_EMPTY, CTRL_PENDING, CTRL_REMOVING, CTRL_WITHDRAWN, GROUP_SLOTS, MAX_DISPLACEMENT,
    STRIPES, VERSION_DISP_SHIFT, VERSION_FILLED, VERSION_LIVE, VERSION_WRITING,
};
use crate::memory::Parts;
use crate::sync::{fence, home_stripe, set_home_stripe, spin_hint, Ordering};
use crate::value::{FlowCounters, FlowEntry, FlowId, FlowIndex, FlowRecord, FlowValue};
use crate::FlowHash;

use Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

/// Fixed hash seeds: the table's hash is deterministic across runs and
/// processes (a second process mapping the table file must find the same
/// groups). The header records them.
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

/// Probe verdict ([`Core::candidate`]): no candidate within the longest probe,
/// the full search decides. 0 means absent; a candidate slot `s` is kept as
/// `s + 2`.
pub(crate) const SEARCH: u64 = 1;

/// Attempts of a dump or ageing read on one slot before it is skipped.
const SPIN_LIMIT: u32 = 1 << 20;

/// Shift of the control-word bit that counts one overflow.
const COUNT_ONE: u64 = 1 << 56;

/// Where a key may live: its two groups, and its tag (the control byte of
/// its committed flow). Its probe is `g1`, `g2`, then the groups after
/// `g2`: position `d` of the probe is `g1` for 0, `g2 + d - 1` after.
#[derive(Clone, Copy, Default)]
pub(crate) struct Loc {
    pub(crate) g1: usize,
    pub(crate) g2: usize,
    pub(crate) tag: u8,
}

impl Loc {
    /// One word for the rare path of a lookup ([`Core::search`]): `g1` in
    /// bits 0..24, `g2` in 24..48, the tag in 48..56 (group counts are
    /// below 2^24: 16M flows need 3.2M groups).
    #[inline(always)]
    pub(crate) fn pack(&self) -> u64 {
        self.g1 as u64 | (self.g2 as u64) << 24 | u64::from(self.tag) << 48
    }

    /// The `Loc` of a [`Loc::pack`] word.
    #[inline(always)]
    pub(crate) fn unpack(w: u64) -> Loc {
        Loc {
            g1: (w & 0xFF_FFFF) as usize,
            g2: ((w >> 24) & 0xFF_FFFF) as usize,
            tag: (w >> 48) as u8,
        }
    }
}

/// Result of reading one slot.
enum Read {
    /// Consistent snapshot of a live slot holding the key.
    Hit { version: u64, value: [u64; 2] },
    /// Not this key, or not a live flow.
    Miss,
    /// A writer is modifying the live slot right now: retry.
    Busy,
}

/// A batch lookup's candidate ([`Core::candidate`]): a slot index + 2, 0
/// (absent) or [`SEARCH`]. Only `candidate` makes one, so a slot index in
/// it is always in range.
#[derive(Clone, Copy, Default)]
pub(crate) struct Cand(u64);

/// A probe's verdict ([`Core::probe_at`]).
enum Probe {
    /// First tag match: group and position.
    At(usize, usize),
    /// No match, and no key probed past the last group read.
    Absent,
    /// The longest probe found nothing: the full search decides.
    Search,
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

/// Control bytes of `w` (bytes 0..7, not the count) equal to `b`: bit
/// `8 i + 7` set for each matching byte `i`. Exact (no false positives):
/// a byte's high bit survives only if all of its bits are zero after the
/// XOR, with no carry between bytes.
#[inline(always)]
pub(crate) fn match_byte(w: u64, b: u8) -> u64 {
    const LO7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const SLOT_BYTES: u64 = 0x0080_8080_8080_8080;
    let x = w ^ (u64::from(b) * 0x0101_0101_0101_0101);
    !(((x & LO7) + LO7) | x | LO7) & SLOT_BYTES
}

/// The lowest control byte of `w` equal to `b` (bit `8 i + 7` set for the
/// lowest matching byte `i`, possibly with other bits above it; 0 if none).
/// Three operations instead of [`match_byte`]'s six: the classic zero-byte
/// test, whose false positives only ever sit above a true zero byte, so
/// the lowest set bit is exact. For the first candidate of a lookup.
#[inline(always)]
fn match_first(w: u64, b: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const SLOT_BYTES: u64 = 0x0080_8080_8080_8080;
    let x = w ^ (u64::from(b) * ONES);
    x.wrapping_sub(ONES) & !x & SLOT_BYTES
}

/// Number of matches in a [`match_byte`] result: its bits moved to the low
/// bit of each byte and the bytes summed by one multiply (into the top
/// byte; at most 7, so no carry). Three instructions, where `count_ones`
/// without the `popcnt` extension (not in the x86_64 baseline) takes about
/// fifteen.
#[inline(always)]
fn count_matches(m: u64) -> u64 {
    (m >> 7).wrapping_mul(0x0101_0101_0101_0101) >> 56
}

/// Position (0..7) of the lowest match of a [`match_byte`] result.
#[inline(always)]
fn first(m: u64) -> usize {
    (m.trailing_zeros() / 8) as usize
}

/// Reads slot `s` if it holds the committed flow of `key` (steps R2..R5 of
/// the read protocol).
#[inline(always)]
fn read_slot(s: &Slot, key: &[u64; 5]) -> Read {
    let v1 = s.version.load(Acquire);
    if v1 & (VERSION_LIVE | VERSION_WRITING) != VERSION_LIVE {
        return if v1 & (VERSION_LIVE | VERSION_WRITING) == VERSION_LIVE | VERSION_WRITING {
            Read::Busy
        } else {
            Read::Miss
        };
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

fn entry_of(slot: usize, version: u64, value: [u64; 2]) -> FlowEntry {
    FlowEntry::from_words(
        FlowId {
            index: FlowIndex(slot as u32),
            generation: version_gen(version),
        },
        value,
    )
}

/// Pointers, sizes and hasher of one table region.
pub(crate) struct Core {
    parts: Parts,
    pub(crate) capacity: usize,
    pub(crate) groups: usize,
    /// `groups * GROUP_SLOTS`.
    pub(crate) slots: usize,
    /// Last position of a probe: `min(groups, MAX_DISPLACEMENT)`.
    reach: usize,
    hasher: KeyHasher,
    /// The CPU has `prefetchw` (prefetch into the cache in exclusive state,
    /// ready for a write).
    prefetchw: bool,
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

impl Core {
    pub(crate) fn new(parts: Parts, layout: &Layout, seeds: [u64; 4]) -> Core {
        let [k0, k1, k2, k3] = seeds;
        Core {
            parts,
            capacity: layout.capacity,
            groups: layout.groups,
            slots: layout.slots,
            reach: layout.groups.min(MAX_DISPLACEMENT),
            hasher: KeyHasher::new([k0, k1, k2, k3]),
            prefetchw: cpu_has_prefetchw(),
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

    /// Control word of group `g` (`g` is reduced below the group count).
    #[inline(always)]
    pub(crate) fn group(&self, g: usize) -> &Group {
        let g = if g < self.groups { g } else { g % self.groups };
        // SAFETY: [1] `g` is below the group count; [2] the region holds
        // that many 8-byte control words from `parts.groups`, 64-byte
        // aligned, and outlives `&self`; [3] they are atomics only.
        unsafe { &*self.parts.groups.as_ptr().add(g) }
    }

    /// Slot `i` (`i` is reduced below the slot count).
    #[inline(always)]
    pub(crate) fn slot(&self, i: usize) -> &Slot {
        let i = if i < self.slots { i } else { i % self.slots };
        // SAFETY: as for `group`: `i` is below the slot count and the
        // region holds that many aligned 64-byte slots from `parts.slots`.
        unsafe { &*self.parts.slots.as_ptr().add(i) }
    }

    #[inline(always)]
    pub(crate) fn slot_stats(&self, i: usize) -> &SlotStats {
        let i = if i < self.slots { i } else { i % self.slots };
        // SAFETY: as for `slot`: the region holds one 24-byte counter block
        // per slot from the 64-byte aligned `parts.stats`.
        unsafe { &*self.parts.stats.as_ptr().add(i) }
    }

    /// Control word of group `g`, which [`Core::locate`] or [`Core::next`]
    /// gave (so below the group count): no reduction on the lookup path,
    /// nor on the common path of an insert.
    #[inline(always)]
    fn group_at(&self, g: usize) -> &Group {
        debug_assert!(g < self.groups);
        // SAFETY: [1] `g` is below the group count: `locate` returns
        // `(h × groups) >> 64`, less than `groups` for any 64-bit `h`, and
        // `next` returns `g + 1` only when that is below it, else 0 (the
        // only callers pass one of these); [2] and [3] as for `group`.
        unsafe { &*self.parts.groups.as_ptr().add(g) }
    }

    /// Slot `i` of group `g`, for `g` as in [`Core::group_at`] and `i` the
    /// position of a [`match_first`] or [`match_byte`] result (below 7:
    /// those set no bit above byte 6).
    #[inline(always)]
    fn slot_at(&self, g: usize, i: usize) -> &Slot {
        debug_assert!(g < self.groups && i < GROUP_SLOTS);
        // SAFETY: [1] `g < groups` (see `group_at`) and `i < 7`, so
        // `7 g + i` is below the slot count; [2] and [3] as for `slot`.
        unsafe { &*self.parts.slots.as_ptr().add(g * GROUP_SLOTS + i) }
    }

    /// The group after `g` on a probe (wrapping at the end).
    #[inline(always)]
    fn next(&self, g: usize) -> usize {
        if g + 1 >= self.groups {
            0
        } else {
            g + 1
        }
    }

    /// The group `d` groups after `g`.
    #[inline]
    fn ahead(&self, g: usize, d: usize) -> usize {
        (g + d) % self.groups
    }

    /// The group `d` groups before `g`.
    #[inline]
    fn behind(&self, g: usize, d: usize) -> usize {
        (g + self.groups - d % self.groups) % self.groups
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

    /// Prefetches a key's two control words (for a lookup).
    #[inline(always)]
    pub(crate) fn prefetch_home(&self, loc: &Loc) {
        prefetch(self.group_at(loc.g1));
        prefetch(self.group_at(loc.g2));
    }

    /// Prefetches a key's two control words for writing where the CPU can
    /// (an insert claims a byte of one with a CAS).
    #[inline(always)]
    pub(crate) fn prefetch_home_for_write(&self, loc: &Loc) {
        prefetch_for_write(self.group_at(loc.g1), self.prefetchw);
        prefetch_for_write(self.group_at(loc.g2), self.prefetchw);
    }

    /// Which of a key's two groups an insert tries first: the one with more
    /// empty slots (`g1` on a tie), as read from `w1` and `w2`.
    #[inline(always)]
    fn first_choice(loc: &Loc, w1: u64, w2: u64) -> (usize, usize) {
        let e1 = count_matches(match_byte(w1, CTRL_EMPTY));
        let e2 = count_matches(match_byte(w2, CTRL_EMPTY));
        if e1 >= e2 {
            (loc.g1, 0)
        } else {
            (loc.g2, 1)
        }
    }

    /// Prefetches, for writing where the CPU can, the slot and counters an
    /// insert of a key at `loc` would take if nothing changed meanwhile:
    /// the first empty slot of the group it would try first (W3 and W4
    /// write both). A hint: loads of the (prefetched) control words, no
    /// write.
    #[inline(always)]
    pub(crate) fn prefetch_claim(&self, loc: &Loc) {
        let w1 = self.group_at(loc.g1).load(Relaxed);
        let w2 = self.group_at(loc.g2).load(Relaxed);
        let (g, _) = Self::first_choice(loc, w1, w2);
        let w = if g == loc.g1 { w1 } else { w2 };
        let m = match_byte(w, CTRL_EMPTY);
        if m != 0 {
            let slot = g * GROUP_SLOTS + first(m);
            prefetch_for_write(self.slot(slot), self.prefetchw);
            self.prefetch_stats(slot);
        }
    }

    #[inline]
    pub(crate) fn hash(&self, key: &FlowKey) -> FlowHash {
        FlowHash(self.hasher.hash(key.as_words()))
    }

    /// The two groups (bits 42..64 and 0..24 of the hash, each scaled to
    /// the group count: a multiply instead of a division) and the tag
    /// (bits 24..32, [`ctrl_tag`]): three independent parts of the hash.
    #[inline(always)]
    pub(crate) fn locate(&self, hash: FlowHash) -> Loc {
        let h = hash.0;
        let n = self.groups as u128;
        Loc {
            g1: ((u128::from(h) * n) >> 64) as usize,
            g2: ((u128::from(h.rotate_left(40)) * n) >> 64) as usize,
            tag: ctrl_tag(h),
        }
    }

    /// Reads slot `idx` if it holds the committed flow of `key`.
    #[inline(always)]
    fn read_if_key(&self, idx: usize, key: &[u64; 5]) -> Read {
        read_slot(self.slot(idx), key)
    }

    /// The committed flow of `key`: its slot and a snapshot (R1..R6).
    /// Loads only.
    pub(crate) fn find(&self, key: &[u64; 5], loc: &Loc) -> Option<(usize, FlowEntry)> {
        let want = loc.tag;
        'again: loop {
            let mut g = loc.g1;
            let mut w = 0;
            for d in 0..=self.reach {
                if d == 1 {
                    g = loc.g2;
                }
                // A key whose two groups are one (as in a one-group table)
                // has that group read once.
                let mut m = 0;
                if d != 1 || loc.g2 != loc.g1 {
                    w = self.group(g).load(Acquire);
                    m = match_byte(w, want);
                }
                while m != 0 {
                    let slot = g * GROUP_SLOTS + first(m);
                    m &= m - 1;
                    match self.read_if_key(slot, key) {
                        Read::Hit { version, value } => {
                            return Some((slot, entry_of(slot, version, value)))
                        }
                        Read::Busy => {
                            spin_hint();
                            continue 'again;
                        }
                        Read::Miss => {}
                    }
                }
                if d >= 1 {
                    if ctrl_count(w) == 0 {
                        return None;
                    }
                    g = self.next(g);
                }
            }
            return None;
        }
    }

    /// [`Core::find`] from the key's hash: the rare path of single and
    /// batch lookups (a tag twin, a busy slot, a key past its two groups).
    #[cold]
    #[inline(never)]
    fn search(&self, key: &[u64; 5], loc: u64) -> Option<FlowEntry> {
        self.find(key, &Loc::unpack(loc)).map(|(_, e)| e)
    }

    /// A key's candidate: the first tag match of its two groups, as group
    /// and position. Both words are read and matched before either is
    /// tested (a hit may be in either); only when neither matches and the
    /// second group's count is non-zero (a few percent of lookups even
    /// under churn at full capacity) does it go on, in
    /// [`Core::probe_beyond`].
    #[inline(always)]
    fn probe_at(&self, loc: &Loc) -> Probe {
        let w1 = self.group_at(loc.g1).load(Acquire);
        // One load when the two groups are one (a one-group table): the
        // branch is taken for every key there and almost never elsewhere.
        let w2 = if loc.g2 == loc.g1 {
            w1
        } else {
            self.group_at(loc.g2).load(Acquire)
        };
        let m1 = match_first(w1, loc.tag);
        let m2 = match_first(w2, loc.tag);
        let (g, m) = if m1 != 0 { (loc.g1, m1) } else { (loc.g2, m2) };
        if m != 0 {
            return Probe::At(g, first(m));
        }
        if ctrl_count(w2) == 0 {
            return Probe::Absent;
        }
        self.probe_beyond(loc)
    }

    /// [`Core::probe_at`] past the second group.
    #[inline(never)]
    fn probe_beyond(&self, loc: &Loc) -> Probe {
        let mut g = self.next(loc.g2);
        for _ in 2..=self.reach {
            let w = self.group_at(g).load(Acquire);
            let m = match_first(w, loc.tag);
            if m != 0 {
                return Probe::At(g, first(m));
            }
            if ctrl_count(w) == 0 {
                return Probe::Absent;
            }
            g = self.next(g);
        }
        Probe::Search
    }

    /// A single lookup: the first tag match along the probe decides the
    /// common cases (a hit, or no match: absent); anything else (a tag
    /// twin, a busy slot) goes to [`Core::search`].
    #[inline(always)]
    pub(crate) fn lookup(&self, key: &[u64; 5], hash: FlowHash) -> Option<FlowEntry> {
        self.lookup_at(key, &self.locate(hash))
    }

    /// [`Core::lookup`] of a key located already.
    #[inline(always)]
    pub(crate) fn lookup_at(&self, key: &[u64; 5], loc: &Loc) -> Option<FlowEntry> {
        match self.probe_at(loc) {
            Probe::At(g, i) => {
                if let Read::Hit { version, value } = read_slot(self.slot_at(g, i), key) {
                    return Some(entry_of(g * GROUP_SLOTS + i, version, value));
                }
            }
            Probe::Absent => return None,
            Probe::Search => {}
        }
        self.search(key, loc.pack())
    }

    /// Batch pass 2: a key's candidate slot (R1, R6; its home control
    /// words were prefetched in pass 1): the first tag match of its first
    /// group, else of its second, as `slot + 2`, its slot prefetched; 0
    /// when neither has one and no key probed past the second (the key is
    /// absent); [`SEARCH`] if the probe reached its last position. Only
    /// control words are read; pass 3 compares the key (and leaves any
    /// other match to [`Core::find`]).
    #[inline(always)]
    pub(crate) fn candidate(&self, loc: &Loc) -> Cand {
        Cand(match self.probe_at(loc) {
            Probe::At(g, i) => {
                prefetch(self.slot_at(g, i));
                (g * GROUP_SLOTS + i) as u64 + 2
            }
            Probe::Absent => 0,
            Probe::Search => SEARCH,
        })
    }

    /// Batch pass 3: completes a lookup from its [`Core::candidate`] (`loc`
    /// gives the key's [`Loc::pack`], asked for only on the rare path),
    /// writing the answer to `out`; on a hit, prefetches the flow's
    /// counters (for writing, where the CPU can: the `touch` that usually
    /// follows writes them). Returns whether it was a hit.
    #[inline(always)]
    pub(crate) fn finish_into(
        &self,
        key: &[u64; 5],
        loc: impl FnOnce() -> u64,
        c: Cand,
        out: &mut Option<FlowEntry>,
    ) -> bool {
        let c = c.0;
        if c >= 2 {
            let idx = (c - 2) as usize;
            debug_assert!(idx < self.slots);
            // SAFETY: a `Cand` is only made by `candidate`, whose
            // `slot + 2` comes from a `probe_at` group below the group
            // count (`group_at`) and a position below 7, so `idx` is below
            // the slot count; the region holds that many slots and counter
            // blocks, aligned, for as long as `&self`; both are atomics
            // only.
            let (s, st) = unsafe {
                (
                    &*self.parts.slots.as_ptr().add(idx),
                    &*self.parts.stats.as_ptr().add(idx),
                )
            };
            if let Read::Hit { version, value } = read_slot(s, key) {
                *out = Some(entry_of(idx, version, value));
                prefetch_for_write(&st.last_seen, self.prefetchw);
                prefetch_for_write(&st.bytes, self.prefetchw);
                return true;
            }
        } else if c == 0 {
            *out = None;
            return false;
        }
        self.search_into(key, loc(), out)
    }

    /// [`Core::search`] into `out`.
    #[cold]
    #[inline(never)]
    fn search_into(&self, key: &[u64; 5], loc: u64, out: &mut Option<FlowEntry>) -> bool {
        *out = self.search(key, loc);
        match out {
            Some(e) => {
                self.prefetch_stats(e.id.index.0 as usize);
                true
            }
            None => false,
        }
    }

    /// Consistent snapshot (key, value, counters) of the committed flow in
    /// slot `idx`, or `None` if there is none. Gives up (`None`) after
    /// [`SPIN_LIMIT`] attempts, so that a dump of a file left by a crashed
    /// writer (a slot stuck in `WRITING`) cannot hang.
    pub(crate) fn record_of_slot(&self, idx: usize) -> Option<FlowRecord> {
        let s = self.slot(idx);
        for _ in 0..SPIN_LIMIT {
            let v1 = s.version.load(Acquire);
            if v1 & VERSION_LIVE == 0 {
                return None;
            }
            if v1 & VERSION_WRITING == 0 {
                if let Some(rec) = self.snapshot(idx, v1) {
                    return Some(rec);
                }
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

    /// Whether version word `v` is the committed flow `id`.
    #[inline(always)]
    fn is_flow(v: u64, id: FlowId) -> bool {
        v & VERSION_LIVE != 0 && version_gen(v) == id.generation
    }

    /// The flow `id` if it is still live.
    pub(crate) fn get(&self, id: FlowId) -> Option<FlowRecord> {
        let idx = id.index.0 as usize;
        if idx >= self.slots {
            return None;
        }
        let s = self.slot(idx);
        loop {
            let v1 = s.version.load(Acquire);
            if !Self::is_flow(v1, id) {
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
        if idx >= self.slots {
            return None;
        }
        let v = self.slot(idx).version.load(Acquire);
        Self::is_flow(v, id).then(|| self.counters_of(idx))
    }

    /// Counts a touch of flow `id` (relaxed; see [`crate::FlowTable::touch`]).
    #[inline(always)]
    pub(crate) fn touch(&self, id: FlowId, now: u64, packets: u64, bytes: u64) -> bool {
        let idx = id.index.0 as usize;
        if idx >= self.slots {
            return false;
        }
        if !Self::is_flow(self.slot(idx).version.load(Relaxed), id) {
            return false;
        }
        let st = self.slot_stats(idx);
        st.last_seen.store(now, Relaxed);
        st.packets.fetch_add(packets, Relaxed);
        st.bytes.fetch_add(bytes, Relaxed);
        true
    }

    // ----- writer side -------------------------------------------------

    /// Stripes the capacity count is spread over: all of them, or one under
    /// loom (see [`home_stripe`]).
    const ACTIVE_STRIPES: usize = if cfg!(loom) { 1 } else { STRIPES };

    /// Stripe `i`'s share of the capacity: its reservations stay below it.
    #[inline(always)]
    fn share(&self, i: usize) -> i64 {
        let n = Self::ACTIVE_STRIPES;
        if i >= n {
            return 0;
        }
        (self.capacity / n + usize::from(i < self.capacity % n)) as i64
    }

    /// The calling thread's stripe of the shared counts.
    #[inline(always)]
    pub(crate) fn stripe(&self) -> &Stripe {
        &self.header().stripes[home_stripe() % STRIPES]
    }

    /// Reserves room for one more flow (step W2) on the calling thread's
    /// stripe, or, if that one is at its share of the capacity, on the
    /// first stripe after it that is not (which becomes the thread's
    /// stripe): `false` if every stripe is at its share, that is the table
    /// holds (or is inserting) `capacity` flows already.
    #[inline(always)]
    pub(crate) fn reserve(&self) -> bool {
        // The common case: room on the thread's own stripe, taken at the
        // first try.
        let home = home_stripe() % STRIPES;
        let used = &self.header().stripes[home].used;
        let u = used.load(Relaxed);
        if (u as i64) < self.share(home)
            && used
                .compare_exchange_weak(u, u.wrapping_add(1), Relaxed, Relaxed)
                .is_ok()
        {
            return true;
        }
        self.reserve_any()
    }

    /// [`Core::reserve`] from the start, on any stripe.
    #[inline(never)]
    fn reserve_any(&self) -> bool {
        let home = home_stripe();
        for k in 0..Self::ACTIVE_STRIPES {
            let i = (home + k) % STRIPES;
            let used = &self.header().stripes[i].used;
            let share = self.share(i);
            let mut u = used.load(Relaxed);
            while (u as i64) < share {
                match used.compare_exchange_weak(u, u.wrapping_add(1), Relaxed, Relaxed) {
                    Ok(_) => {
                        if k != 0 {
                            set_home_stripe(i);
                        }
                        return true;
                    }
                    Err(x) => u = x,
                }
            }
        }
        false
    }

    /// Gives back a reservation (the slot of a removed or withdrawn flow is
    /// empty again), on the calling thread's stripe.
    pub(crate) fn unreserve(&self) {
        self.stripe().used.fetch_sub(1, Relaxed);
    }

    /// The stripes' sums: slots held (by flows and inserts in progress;
    /// as `i64`, a stripe read before another's give-back may make it
    /// briefly negative), flows removed. There is no insert counter: every
    /// flow inserted still holds its slot or was removed, so the inserts
    /// are the sum of the two, and an insert counts itself by its
    /// reservation. Dropping the sixth atomic read-modify-write per insert,
    /// which an insert counter took (a full barrier on x86, after the
    /// commit) took a single insert at 1M flows from about 170 to 138 ns
    /// in `ft_ops` (BENCHMARKS.md, "Single inserts without an insert
    /// counter").
    pub(crate) fn counts(&self) -> (i64, u64) {
        let mut sums = (0u64, 0u64);
        for st in &self.header().stripes {
            sums.0 = sums.0.wrapping_add(st.used.load(Relaxed));
            sums.1 = sums.1.wrapping_add(st.removed.load(Relaxed));
        }
        (sums.0 as i64, sums.1)
    }

    /// Flows in the table (the slots held, at least 0) and flows removed.
    pub(crate) fn flow_counts(&self) -> (u64, u64) {
        let (used, removed) = self.counts();
        (used.max(0) as u64, removed)
    }

    /// Claims an empty slot for a pending insert of a key at `loc` (W3):
    /// in the one of its two groups with more empty slots, else the other,
    /// else the first group after the second with one, raising the
    /// overflow count of each group passed from the second on before
    /// moving on. Returns group, position and probe position; `None`
    /// (counts restored) if no slot is free up to the last position.
    /// `loc` is a [`Core::locate`] result.
    #[inline(always)]
    pub(crate) fn claim(&self, loc: &Loc) -> Option<(usize, usize, usize)> {
        // The common case: the first empty byte of the first choice, taken
        // at the first try. Anything else starts again in `claim_any`
        // (nothing was written).
        let w1 = self.group_at(loc.g1).load(Relaxed);
        let w2 = if loc.g2 == loc.g1 {
            w1
        } else {
            self.group_at(loc.g2).load(Relaxed)
        };
        let (ga, da) = Self::first_choice(loc, w1, w2);
        let wa = if da == 0 { w1 } else { w2 };
        let m = match_byte(wa, CTRL_EMPTY);
        if m != 0 {
            let i = first(m);
            let claimed = with_ctrl_byte(wa, i, CTRL_PENDING);
            let grp = self.group_at(ga);
            if grp
                .compare_exchange_weak(wa, claimed, AcqRel, Acquire)
                .is_ok()
            {
                return Some((ga, i, da));
            }
        }
        self.claim_any(loc)
    }

    /// [`Core::claim`] from the start, through every case.
    #[inline(never)]
    fn claim_any(&self, loc: &Loc) -> Option<(usize, usize, usize)> {
        let w1 = self.group(loc.g1).load(Relaxed);
        let w2 = if loc.g2 == loc.g1 {
            w1
        } else {
            self.group(loc.g2).load(Relaxed)
        };
        let (ga, da) = Self::first_choice(loc, w1, w2);
        let (wa, wb) = if da == 0 { (w1, w2) } else { (w2, w1) };
        if let Some(i) = self.claim_in(ga, wa) {
            return Some((ga, i, da));
        }
        let (gb, db) = if da == 0 { (loc.g2, 1) } else { (loc.g1, 0) };
        if gb != ga {
            if let Some(i) = self.claim_in(gb, wb) {
                return Some((gb, i, db));
            }
        }
        let mut g = loc.g2;
        for d in 1..=self.reach {
            let grp = self.group(g);
            let mut w = grp.load(Relaxed);
            loop {
                let m = match_byte(w, CTRL_EMPTY);
                if m != 0 {
                    let i = first(m);
                    let claimed = with_ctrl_byte(w, i, CTRL_PENDING);
                    match grp.compare_exchange_weak(w, claimed, AcqRel, Acquire) {
                        Ok(_) => return Some((g, i, d)),
                        Err(x) => w = x,
                    }
                    continue;
                }
                if d == self.reach {
                    // Nothing free up to the last position: undo.
                    self.uncount(loc.g2, d - 1);
                    return None;
                }
                if ctrl_count(w) == COUNT_STICKY {
                    break;
                }
                match grp.compare_exchange_weak(w, w + COUNT_ONE, AcqRel, Acquire) {
                    Ok(_) => break,
                    Err(x) => w = x,
                }
            }
            g = self.next(g);
        }
        None
    }

    /// CASes the first empty byte of group `g` to `PENDING` (retrying while
    /// the group has one), starting from `w`, a value of its control word
    /// read before; the position, or `None` if the group is full.
    #[inline(always)]
    fn claim_in(&self, g: usize, mut w: u64) -> Option<usize> {
        let grp = self.group(g);
        loop {
            let m = match_byte(w, CTRL_EMPTY);
            if m == 0 {
                return None;
            }
            let i = first(m);
            match grp.compare_exchange_weak(w, with_ctrl_byte(w, i, CTRL_PENDING), AcqRel, Acquire)
            {
                Ok(_) => return Some(i),
                Err(x) => w = x,
            }
        }
    }

    /// Lowers the overflow counts of the `n` groups from `g` (a key that
    /// raised them is gone). Sticky counts stay.
    pub(crate) fn uncount(&self, g: usize, n: usize) {
        let mut g = g;
        for _ in 0..n {
            let grp = self.group(g);
            let mut w = grp.load(Relaxed);
            while ctrl_count(w) != COUNT_STICKY && ctrl_count(w) != 0 {
                match grp.compare_exchange_weak(w, w - COUNT_ONE, AcqRel, Acquire) {
                    Ok(_) => break,
                    Err(x) => w = x,
                }
            }
            g = self.next(g);
        }
    }

    /// Sets control byte `i` of group `g` from `from` to `to`, leaving the
    /// other bytes and the count as they are; `false` if the byte is not
    /// `from`.
    fn swap_byte(&self, g: usize, i: usize, from: u8, to: u8) -> bool {
        let grp = self.group(g);
        let mut w = grp.load(Relaxed);
        loop {
            if ctrl_byte(w, i) != from {
                return false;
            }
            match grp.compare_exchange_weak(w, with_ctrl_byte(w, i, to), AcqRel, Acquire) {
                Ok(_) => return true,
                Err(x) => w = x,
            }
        }
    }

    /// Writes key, value, probe position and counters into a claimed slot
    /// (step W4) and marks it `FILLED`. Returns the slot's generation.
    pub(crate) fn fill_slot(
        &self,
        slot: usize,
        key: &[u64; 5],
        value: [u64; 2],
        now: u64,
        disp: usize,
    ) -> u32 {
        let s = self.slot(slot);
        let v = s.version.load(Relaxed);
        s.version.store(v | VERSION_WRITING, Relaxed);
        fence(Release);
        for (a, b) in s.key.iter().zip(key) {
            a.store(*b, Relaxed);
        }
        s.value[0].store(value[0], Relaxed);
        s.value[1].store(value[1], Relaxed);
        let st = self.slot_stats(slot);
        st.last_seen.store(now, Relaxed);
        st.packets.store(0, Relaxed);
        st.bytes.store(0, Relaxed);
        let filled = version_bump(v, VERSION_FILLED) & !(0xFF << VERSION_DISP_SHIFT);
        s.version.store(
            filled | ((disp as u64 & 0xFF) << VERSION_DISP_SHIFT),
            Release,
        );
        version_gen(v)
    }

    /// Commits a pending insert (W6): its byte becomes `FULL`, then its
    /// slot `LIVE`. `false` if an insert of the same key with priority
    /// withdrew it first.
    pub(crate) fn commit(&self, g: usize, i: usize, tag: u8) -> bool {
        if !self.swap_byte(g, i, CTRL_PENDING, tag) {
            return false;
        }
        // Only this insert writes the slot until it is live (removals and
        // updates need `LIVE`), so a plain store does; `Release` publishes
        // the fill to readers that see `LIVE`.
        let s = self.slot(g * GROUP_SLOTS + i);
        let v = s.version.load(Relaxed);
        s.version.store(v | VERSION_LIVE, Release);
        true
    }

    /// Undoes a pending insert (ours, possibly withdrawn by another): the
    /// slot is retired, its byte emptied, the counts it raised lowered and
    /// its reservation given back.
    pub(crate) fn withdraw(&self, loc: &Loc, g: usize, i: usize, disp: usize) {
        let s = self.slot(g * GROUP_SLOTS + i);
        let v = s.version.load(Relaxed);
        s.version.store(version_retired(v), Release);
        if !self.swap_byte(g, i, CTRL_PENDING, CTRL_EMPTY) {
            self.swap_byte(g, i, CTRL_WITHDRAWN, CTRL_EMPTY);
        }
        self.uncount(loc.g2, disp.saturating_sub(1));
        self.unreserve();
    }

    /// Looks along the probe of a pending insert (ours: position `i` of
    /// group `g`, at probe position `my_disp`; `loc` a [`Core::locate`]
    /// result) for other entries of its key (W5).
    #[inline(always)]
    pub(crate) fn resolve(
        &self,
        key: &[u64; 5],
        loc: &Loc,
        (g, i): (usize, usize),
        my_disp: usize,
    ) -> Resolve {
        if my_disp <= 1 && loc.g2 != loc.g1 {
            // The common case, in one step: no byte of either group but
            // ours reads as the key's tag or as pending, and no key probed
            // past the second group. The same reads as the loop's first
            // two positions (read-modify-writes), matched without a branch
            // between them; anything else goes through the loop, which
            // reads again.
            let w1 = self.group_at(loc.g1).fetch_add(0, AcqRel);
            let w2 = self.group_at(loc.g2).fetch_add(0, AcqRel);
            let ours = !(0xFF << (8 * i));
            let (w1, w2) = if my_disp == 0 {
                (w1 & ours, w2)
            } else {
                (w1, w2 & ours)
            };
            let seen = match_first(w1, loc.tag)
                | match_first(w1, CTRL_PENDING)
                | match_first(w2, loc.tag)
                | match_first(w2, CTRL_PENDING);
            if seen == 0 && ctrl_count(w2) == 0 {
                return Resolve::Commit;
            }
        }
        self.resolve_probe(key, loc, g * GROUP_SLOTS + i, my_disp)
    }

    /// [`Core::resolve`] through every case: each position of the probe
    /// read again, in turn.
    #[inline(never)]
    fn resolve_probe(&self, key: &[u64; 5], loc: &Loc, my_slot: usize, my_disp: usize) -> Resolve {
        let my_group = my_slot / GROUP_SLOTS;
        let mut g = loc.g1;
        let mut w = 0;
        for d in 0..=self.reach {
            if d == 1 {
                g = loc.g2;
                if g == loc.g1 {
                    // One group for both: already read (just now, after
                    // our claim, as the argument needs).
                    if d >= my_disp && ctrl_count(w) == 0 {
                        break;
                    }
                    g = self.next(g);
                    continue;
                }
            }
            // A read-modify-write that changes nothing, not a load: it
            // reads the latest value of the word, which the argument in the
            // crate docs needs (a load may return an older one).
            w = self.group(g).fetch_add(0, AcqRel);
            let mut m = match_byte(w, loc.tag) | match_byte(w, CTRL_PENDING);
            if g == my_group {
                m &= !(0x80 << (8 * (my_slot % GROUP_SLOTS)));
            }
            while m != 0 {
                let i = first(m);
                m &= m - 1;
                if let Some(r) = self.settle(g, i, key, loc.tag, my_slot) {
                    return r;
                }
            }
            // Both groups are always read. Past them, another entry of the
            // key lives at or before the first position past ours whose
            // count is 0: every group before it was counted by that
            // entry's insert (see the crate docs).
            if d >= 1 {
                if d >= my_disp && ctrl_count(w) == 0 {
                    break;
                }
                g = self.next(g);
            }
        }
        Resolve::Commit
    }

    /// W5 for byte `i` of group `g`, which read as the key's tag (pending
    /// or committed): `None` if it is not an entry of the key or it was
    /// withdrawn here.
    #[inline(never)]
    fn settle(
        &self,
        g: usize,
        i: usize,
        key: &[u64; 5],
        tag: u8,
        my_slot: usize,
    ) -> Option<Resolve> {
        let (full, pending) = (tag, CTRL_PENDING);
        let slot = g * GROUP_SLOTS + i;
        let s = self.slot(slot);
        loop {
            let b = ctrl_byte(self.group(g).fetch_add(0, AcqRel), i);
            if b != full && b != pending {
                return None;
            }
            let v1 = s.version.load(Acquire);
            if v1 & (VERSION_WRITING | VERSION_FILLED) != VERSION_FILLED {
                // Being filled (a pending insert that has just claimed it),
                // updated or removed: a few stores away.
                spin_hint();
                continue;
            }
            let same = s.key.iter().zip(key).all(|(a, b)| a.load(Relaxed) == *b);
            let value = [s.value[0].load(Relaxed), s.value[1].load(Relaxed)];
            fence(Acquire);
            if s.version.load(Relaxed) != v1 {
                continue;
            }
            if !same {
                return None;
            }
            if b == full {
                if v1 & VERSION_LIVE == 0 {
                    // Committed, not yet live: its insert stores `LIVE` next.
                    spin_hint();
                    continue;
                }
                return Some(Resolve::Exists(entry_of(slot, v1, value)));
            }
            if slot < my_slot {
                return Some(Resolve::Retry);
            }
            // A pending duplicate without priority: withdraw it for its
            // owner, whose commit then fails.
            if self.swap_byte(g, i, pending, CTRL_WITHDRAWN) {
                return None;
            }
        }
    }

    /// Rewrites a live slot's value under its version lock (step U).
    pub(crate) fn modify(&self, id: FlowId, f: impl FnOnce(FlowValue) -> FlowValue) -> bool {
        let idx = id.index.0 as usize;
        if idx >= self.slots {
            return false;
        }
        let s = self.slot(idx);
        let Some(v) = self.lock(s, id) else {
            return false;
        };
        fence(Release);
        let old = FlowValue::decode([s.value[0].load(Relaxed), s.value[1].load(Relaxed)]);
        let new = f(old).encode();
        s.value[0].store(new[0], Relaxed);
        s.value[1].store(new[1], Relaxed);
        s.version.store(version_bump(v, 0), Release);
        true
    }

    /// Sets `WRITING` on the slot of live flow `id` (waiting while another
    /// writer holds it); returns the version before, or `None` if the flow
    /// is gone.
    fn lock(&self, s: &Slot, id: FlowId) -> Option<u64> {
        let mut v = s.version.load(Relaxed);
        loop {
            if !Self::is_flow(v, id) {
                return None;
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
                Ok(_) => return Some(v),
                Err(x) => v = x,
            }
        }
    }

    /// Removes flow `id` (D1..D5): returns its last value, or `None` if it
    /// is gone (removed by another thread, or never this flow).
    pub(crate) fn remove_slot(&self, id: FlowId) -> Option<FlowEntry> {
        let idx = id.index.0 as usize;
        if idx >= self.slots {
            return None;
        }
        let s = self.slot(idx);
        let (g, i) = (idx / GROUP_SLOTS, idx % GROUP_SLOTS);
        // D1: lock the slot; no reader copies it from now on.
        let v = self.lock(s, id)?;
        let value = [s.value[0].load(Relaxed), s.value[1].load(Relaxed)];
        // D2: the byte leaves `FULL`: from here the flow is not found.
        let b = ctrl_byte(self.group(g).load(Relaxed), i);
        if !is_full(b) || !self.swap_byte(g, i, b, CTRL_REMOVING) {
            // Not reachable for a live slot (only a remover, holding the
            // lock, changes a committed byte); leave it as it was.
            s.version.store(v, Release);
            return None;
        }
        // D3: retire the slot (next generation, not live, unlocked).
        s.version.store(version_retired(v), Release);
        // D4: free the byte, lower the counts the insert raised.
        self.swap_byte(g, i, CTRL_REMOVING, CTRL_EMPTY);
        let disp = version_disp(v);
        if disp >= 2 {
            self.uncount(self.behind(g, disp - 1), disp - 1);
        }
        self.unreserve();
        self.stripe().removed.fetch_add(1, Relaxed);
        Some(entry_of(idx, v, value))
    }

    /// Rebuilds the control bytes, overflow counts and the capacity count
    /// after the previous owner of a mapped table exited (possibly
    /// mid-operation): committed flows stay, anything pending, withdrawn or
    /// being removed is dropped. Requires exclusive access (no other
    /// process or thread uses the table).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn repair(&self) {
        let mut counts = vec![0u64; self.groups];
        let mut words = vec![0u64; self.groups];
        let mut live = 0u64;
        for (g, word) in words.iter_mut().enumerate() {
            let w = self.group(g).load(Relaxed);
            for i in 0..GROUP_SLOTS {
                let s = self.slot(g * GROUP_SLOTS + i);
                let v = s.version.load(Relaxed) & !VERSION_WRITING;
                let b = ctrl_byte(w, i);
                let disp = version_disp(v);
                if is_full(b) && v & VERSION_FILLED != 0 && disp <= self.reach {
                    // Committed (its `LIVE` store may not have happened).
                    s.version
                        .store(version_bump(v, VERSION_LIVE | VERSION_FILLED), Relaxed);
                    *word = with_ctrl_byte(*word, i, b);
                    live += 1;
                    // Past the second group: counted from it on.
                    for d in 0..disp.saturating_sub(1) {
                        let c = &mut counts[self.ahead(self.behind(g, disp - 1), d)];
                        *c = (*c + 1).min(COUNT_STICKY);
                    }
                } else if b != CTRL_EMPTY || v & (VERSION_LIVE | VERSION_FILLED) != 0 {
                    s.version.store(version_retired(v), Relaxed);
                }
            }
        }
        for (g, (w, c)) in words.iter().zip(&counts).enumerate() {
            self.group(g).store(w | (c << 56), Relaxed);
        }
        // The live flows' reservations, spread over the stripes up to each
        // one's share (their sum is the live count).
        let mut left = live;
        for (i, st) in self.header().stripes.iter().enumerate() {
            let take = left.min(self.share(i) as u64);
            st.used.store(take, Relaxed);
            left -= take;
        }
        // More live flows than the capacity (a damaged file): all counted,
        // on stripe 0, so that no insert is admitted until enough go.
        let st0 = &self.header().stripes[0].used;
        st0.store(st0.load(Relaxed) + left, Relaxed);
        fence(SeqCst);
    }
}

#[cfg(all(test, not(loom)))]
impl Core {
    /// Checks a quiescent table: every control byte is empty or committed,
    /// committed bytes are exactly the live slots, and each group's count
    /// is the number of committed flows whose probe passed it (or sticky).
    /// Returns the first inconsistency found.
    pub(crate) fn check_quiescent(&self) -> Result<(), String> {
        let mut counts = vec![0u64; self.groups];
        let mut live = 0u64;
        for g in 0..self.groups {
            let w = self.group(g).load(Relaxed);
            for i in 0..GROUP_SLOTS {
                let b = ctrl_byte(w, i);
                let v = self.slot(g * GROUP_SLOTS + i).version.load(Relaxed);
                let is_live = v & (VERSION_LIVE | VERSION_FILLED | VERSION_WRITING)
                    == VERSION_LIVE | VERSION_FILLED;
                match (b, is_live) {
                    (CTRL_EMPTY, false) => {}
                    (b, true) if is_full(b) => {
                        live += 1;
                        let disp = version_disp(v);
                        for d in 0..disp.saturating_sub(1) {
                            counts[self.ahead(self.behind(g, disp - 1), d)] += 1;
                        }
                    }
                    _ => return Err(format!("group {g} byte {i}: {b:#04x}, version {v:#x}")),
                }
            }
        }
        for (g, want) in counts.iter().enumerate() {
            let got = ctrl_count(self.group(g).load(Relaxed));
            if got != *want && got != COUNT_STICKY {
                return Err(format!("group {g}: count {got}, {want} flows passed it"));
            }
        }
        let (used, _) = self.counts();
        if used != live as i64 {
            return Err(format!("{live} flows, {used} slots counted as used"));
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn byte_matches_first_matches_and_counts_are_exact() {
        // xorshift: a fixed sequence, so a failure reproduces.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut hits = 0;
        for _ in 0..50_000 {
            let b = next() as u8;
            let mut w = next();
            // Plant the byte (or a byte one bit away) in a few places.
            for i in 0..8 {
                match next() % 4 {
                    0 => w = with_ctrl_byte(w, i, b),
                    1 => w = with_ctrl_byte(w, i, b ^ (1 << (next() % 8))),
                    _ => {}
                }
            }
            let m = match_byte(w, b);
            let mut want = 0;
            for i in 0..7 {
                if ctrl_byte(w, i) == b {
                    want |= 0x80 << (8 * i);
                }
            }
            assert_eq!(m, want, "word {w:#018x}, byte {b:#04x}");
            assert_eq!(count_matches(m), u64::from(want.count_ones()));
            let low = match_first(w, b);
            assert_eq!(low & low.wrapping_neg(), want & want.wrapping_neg());
            hits += m.count_ones();
        }
        assert!(hits > 50_000, "too few matches generated: {hits}");
    }
}
