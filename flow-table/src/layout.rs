//! In-memory layout of the table: header, control words, slots and
//! counters, and the bit encodings of the atomic words (see the crate docs
//! for the protocol that uses them).

use crate::sync::{zeroed_atomic, AtomicU64};

/// Slots per group (one control byte each in the group's control word).
pub(crate) const GROUP_SLOTS: usize = 7;

/// Control word of a group: bytes 0..7 are the control bytes of the
/// group's seven slots, byte 7 its overflow count (see the `CTRL_*`
/// constants and [`ctrl_count`]).
pub(crate) type Group = AtomicU64;

/// Control byte: the slot is free.
pub(crate) const CTRL_EMPTY: u8 = 0x00;
/// Control byte: a pending insert was withdrawn by an insert of the same
/// key with priority; its owner frees the slot.
pub(crate) const CTRL_WITHDRAWN: u8 = 0x01;
/// Control byte: the flow is being removed (its remover retires the slot,
/// then empties the byte).
pub(crate) const CTRL_REMOVING: u8 = 0x02;
/// Control byte: an insert in progress (claimed, not committed).
pub(crate) const CTRL_PENDING: u8 = 0x03;
/// Control bytes from this value up are committed flows: the byte is the
/// key's tag (bits 24..32 of its hash, raised to at least this value).
pub(crate) const CTRL_FIRST_FULL: u8 = 0x04;
/// Overflow counts stop here and then never fall again (sticky), so a
/// count can never be lowered below the number of keys that raised it.
pub(crate) const COUNT_STICKY: u64 = 0xFF;
/// Longest probe: a key lives at most this many groups after its home
/// group (the distance is kept in the slot's version word).
pub(crate) const MAX_DISPLACEMENT: usize = 255;

/// The control byte of a committed flow of a key with hash `h`: bits
/// 24..32 of the hash, raised to [`CTRL_FIRST_FULL`] (so 252 values).
#[inline(always)]
pub(crate) fn ctrl_tag(h: u64) -> u8 {
    ((h >> 24) as u8).max(CTRL_FIRST_FULL)
}

/// Whether control byte `b` is a committed flow.
#[inline(always)]
pub(crate) fn is_full(b: u8) -> bool {
    b >= CTRL_FIRST_FULL
}

/// Control byte `i` (0..7) of control word `w`.
#[inline(always)]
pub(crate) fn ctrl_byte(w: u64, i: usize) -> u8 {
    (w >> (8 * (i & 7))) as u8
}

/// `w` with control byte `i` replaced by `b`.
#[inline(always)]
pub(crate) fn with_ctrl_byte(w: u64, i: usize, b: u8) -> u64 {
    let shift = 8 * (i & 7);
    (w & !(0xFF << shift)) | (u64::from(b) << shift)
}

/// The overflow count of control word `w`: the number of keys (committed,
/// pending or being withdrawn) whose probe passed this group, that is whose
/// second group is this one or before it and which live after it.
#[inline(always)]
pub(crate) fn ctrl_count(w: u64) -> u64 {
    w >> 56
}

/// A 64-byte slot: version word, key and value.
///
/// * `version`: see the `VERSION_*` constants.
/// * `key`: the five key words.
/// * `value`: the two value words.
#[repr(C, align(64))]
pub(crate) struct Slot {
    pub(crate) version: AtomicU64,
    pub(crate) key: [AtomicU64; 5],
    pub(crate) value: [AtomicU64; 2],
}

/// Version word: a writer is modifying the slot (fill, update, removal).
pub(crate) const VERSION_WRITING: u64 = 1;
/// Version word: the slot holds a committed flow (lookups report it).
pub(crate) const VERSION_LIVE: u64 = 2;
/// Version word: key and value hold the slot's insert (set by the fill,
/// before the commit; read by concurrent inserts of the same key).
pub(crate) const VERSION_FILLED: u64 = 4;
/// Version word: one step of the write counter (bits 3..24).
pub(crate) const VERSION_COUNT_ONE: u64 = 8;
/// Version word: the write counter bits.
pub(crate) const VERSION_COUNT_MASK: u64 = 0x00FF_FFF8;
/// Version word: shift of the displacement (groups from the key's home
/// group to this slot's group, bits 24..32).
pub(crate) const VERSION_DISP_SHIFT: u32 = 24;
/// Version word: generation shift (bits 32..64, bumped each time the slot
/// is freed).
pub(crate) const VERSION_GEN_SHIFT: u32 = 32;

#[inline]
pub(crate) fn version_gen(v: u64) -> u32 {
    (v >> VERSION_GEN_SHIFT) as u32
}

#[inline]
pub(crate) fn version_disp(v: u64) -> usize {
    ((v >> VERSION_DISP_SHIFT) & 0xFF) as usize
}

/// The next write count of `v`, keeping its generation, displacement and
/// `LIVE` and `FILLED` flags, clearing `WRITING`, with `flags` added.
#[inline]
pub(crate) fn version_bump(v: u64, flags: u64) -> u64 {
    (v & !(VERSION_COUNT_MASK | VERSION_WRITING))
        | (v.wrapping_add(VERSION_COUNT_ONE) & VERSION_COUNT_MASK)
        | flags
}

/// The version of a freed slot after `v`: next generation, next write
/// count, no flags, no displacement.
#[inline]
pub(crate) fn version_retired(v: u64) -> u64 {
    (u64::from(version_gen(v).wrapping_add(1)) << VERSION_GEN_SHIFT)
        | (v.wrapping_add(VERSION_COUNT_ONE) & VERSION_COUNT_MASK)
}

/// Per-slot counters, updated with relaxed atomics outside the slot's
/// version protocol (they are statistics, not part of the snapshot).
#[repr(C)]
pub(crate) struct SlotStats {
    pub(crate) last_seen: AtomicU64,
    pub(crate) packets: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

/// One atomic counter on its own 128-byte line (two 64-byte lines, as the
/// adjacent-line prefetcher pairs them).
#[repr(C, align(128))]
pub(crate) struct Padded(pub(crate) AtomicU64);

/// Stripes of the capacity count and of the remove counter.
/// A thread writes its own stripe (see [`crate::sync::home_stripe`]), so
/// threads that insert and remove at once do not share a line.
pub(crate) const STRIPES: usize = 16;

/// One stripe of the shared counts, on its own 128-byte line pair.
#[repr(C, align(128))]
pub(crate) struct Stripe {
    /// Slots reserved through this stripe less those given back through
    /// it, as a two's-complement `i64`: a flow reserved on one stripe may
    /// be given back on another, so a stripe can go below 0. A reservation
    /// is only taken on a stripe below its share of the capacity, so the
    /// stripes' sum (the slots held by flows and inserts in progress) never
    /// exceeds the capacity.
    pub(crate) used: AtomicU64,
    /// Flows removed through this stripe (by key, by id or by ageing).
    pub(crate) removed: AtomicU64,
}

/// Table header, at offset 0 of the region (and of the backing file).
///
/// The first line is immutable after creation: magic, format version,
/// capacity, group count, hash seeds, the hash check value and the region
/// size. Below it are the striped capacity count and insert and remove
/// counters, and the other statistics, each on its own line pair.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) magic: AtomicU64,
    pub(crate) format: AtomicU64,
    pub(crate) capacity: AtomicU64,
    pub(crate) groups: AtomicU64,
    pub(crate) seeds: [AtomicU64; 4],
    pub(crate) hash_check: AtomicU64,
    pub(crate) region_len: AtomicU64,
    /// The capacity count (an insert reserves a slot on it before it
    /// claims one) and the remove counter, in stripes.
    pub(crate) stripes: [Stripe; STRIPES],
    pub(crate) aged: Padded,
    pub(crate) full_table: Padded,
    pub(crate) full_bucket: Padded,
}

/// "VRFLOWT1" as a little-endian integer.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"VRFLOWT1");
/// Layout version written to the header. 5: no insert counter, the
/// inserts are the slots held plus the removals (version 4 counted inserts
/// in the stripes too; version 3 had one word of each count; version 2 had
/// buckets of entry words naming slots elsewhere; version 1 hashed keys
/// with ahash). Other versions are refused.
pub(crate) const FORMAT_VERSION: u64 = 5;
/// Bytes reserved for the header at the start of the region.
pub(crate) const HEADER_BYTES: usize = 4096;

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::size_of::<Slot>() == 64);
    assert!(core::mem::size_of::<SlotStats>() == 24);
    assert!(core::mem::size_of::<Header>() <= HEADER_BYTES);
};

/// Slots per flow of capacity, as a fraction: 11/8 (the table is at most
/// 8/11 = 73% full).
const SLOTS_PER_FLOW: (usize, usize) = (11, 8);

/// Byte offsets of the parts of a table region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) capacity: usize,
    pub(crate) groups: usize,
    /// `groups * GROUP_SLOTS`.
    pub(crate) slots: usize,
    pub(crate) groups_off: usize,
    pub(crate) slots_off: usize,
    pub(crate) stats_off: usize,
    /// Bytes used (before rounding to the page size).
    pub(crate) len: usize,
}

impl Layout {
    /// The layout of a table of `capacity` flows (a valid power of two).
    pub(crate) fn new(capacity: usize) -> Layout {
        let (num, den) = SLOTS_PER_FLOW;
        let groups = (capacity * num).div_ceil(den * GROUP_SLOTS).max(1);
        let slots = groups * GROUP_SLOTS;
        let groups_off = HEADER_BYTES;
        let slots_off = groups_off + (groups * 8).div_ceil(64) * 64;
        let stats_off = slots_off + slots * 64;
        let len = stats_off + slots * 24;
        Layout {
            capacity,
            groups,
            slots,
            groups_off,
            slots_off,
            stats_off,
            len,
        }
    }
}

impl Slot {
    #[cfg_attr(not(loom), allow(dead_code))]
    pub(crate) fn new() -> Slot {
        Slot {
            version: zeroed_atomic(),
            key: core::array::from_fn(|_| zeroed_atomic()),
            value: core::array::from_fn(|_| zeroed_atomic()),
        }
    }
}

impl SlotStats {
    #[cfg_attr(not(loom), allow(dead_code))]
    pub(crate) fn new() -> SlotStats {
        SlotStats {
            last_seen: zeroed_atomic(),
            packets: zeroed_atomic(),
            bytes: zeroed_atomic(),
        }
    }
}

impl Header {
    #[cfg_attr(not(loom), allow(dead_code))]
    pub(crate) fn new() -> Header {
        let p = || Padded(zeroed_atomic());
        Header {
            magic: zeroed_atomic(),
            format: zeroed_atomic(),
            capacity: zeroed_atomic(),
            groups: zeroed_atomic(),
            seeds: core::array::from_fn(|_| zeroed_atomic()),
            hash_check: zeroed_atomic(),
            region_len: zeroed_atomic(),
            stripes: core::array::from_fn(|_| Stripe {
                used: zeroed_atomic(),
                removed: zeroed_atomic(),
            }),
            aged: p(),
            full_table: p(),
            full_bucket: p(),
        }
    }
}
