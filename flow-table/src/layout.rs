//! In-memory layout of the table: header, bucket index, slots and counters,
//! and the bit encodings of the atomic words (see the crate docs for the
//! protocol that uses them).

use crate::sync::{zeroed_atomic, AtomicU64};

/// Entry words per bucket (the first word of a bucket is its overflow count).
pub(crate) const ENTRIES_PER_BUCKET: usize = 7;

/// A 64-byte bucket: one overflow counter and seven entry words.
///
/// * `overflow`: number of entries whose primary bucket is this one but which
///   live (or are being placed) in their secondary bucket. Incremented before
///   such an entry is claimed, decremented after it is vacated, so a reader
///   that sees 0 may skip the secondary bucket.
/// * `entries[i]`: an entry word, see the `ENTRY_*` constants; 0 = empty.
#[repr(C, align(64))]
pub(crate) struct Bucket {
    pub(crate) overflow: AtomicU64,
    pub(crate) entries: [AtomicU64; ENTRIES_PER_BUCKET],
}

/// Entry word: slot index, bits 0..24.
pub(crate) const ENTRY_SLOT_MASK: u64 = (1 << 24) - 1;
/// Entry word: low 21 bits of the slot generation, bits 24..45.
pub(crate) const ENTRY_GEN_SHIFT: u32 = 24;
/// Mask of the generation bits kept in an entry word (after shifting).
pub(crate) const ENTRY_GEN_MASK: u64 = (1 << 21) - 1;
/// Entry word: the entry lives in its secondary bucket.
pub(crate) const ENTRY_SECONDARY: u64 = 1 << 45;
/// Entry word: 16-bit hash tag, bits 46..62.
pub(crate) const ENTRY_TAG_SHIFT: u32 = 46;
/// Mask of the tag bits in place.
pub(crate) const ENTRY_TAG_MASK: u64 = 0xFFFF << ENTRY_TAG_SHIFT;
/// Entry word: claimed by an insert that has not committed yet. Readers
/// ignore pending entries.
pub(crate) const ENTRY_PENDING: u64 = 1 << 62;
/// Entry word: in use (pending or committed).
pub(crate) const ENTRY_OCCUPIED: u64 = 1 << 63;

/// Builds an entry word.
#[inline]
pub(crate) fn entry_word(tag: u64, slot: u32, generation: u32, secondary: bool) -> u64 {
    ENTRY_OCCUPIED
        | ENTRY_PENDING
        | (tag << ENTRY_TAG_SHIFT)
        | if secondary { ENTRY_SECONDARY } else { 0 }
        | ((u64::from(generation) & ENTRY_GEN_MASK) << ENTRY_GEN_SHIFT)
        | (u64::from(slot) & ENTRY_SLOT_MASK)
}

#[inline]
pub(crate) fn entry_slot(w: u64) -> usize {
    (w & ENTRY_SLOT_MASK) as usize
}

#[inline]
pub(crate) fn entry_gen(w: u64) -> u64 {
    (w >> ENTRY_GEN_SHIFT) & ENTRY_GEN_MASK
}

#[inline]
pub(crate) fn entry_tag(w: u64) -> u64 {
    (w & ENTRY_TAG_MASK) >> ENTRY_TAG_SHIFT
}

/// A 64-byte slot: version word, key and value.
///
/// * `version`: bit 0 `WRITING` (a writer owns the slot's data), bit 1
///   `LIVE` (the slot holds a flow), bits 2..32 write counter (bumped by
///   every write), bits 32..64 generation (bumped every time the slot is
///   freed).
/// * `key`: the five key words (written only while the slot is unpublished).
/// * `value`: the two value words; while the slot is free, `value[1]` holds
///   the free-list link (next slot + 1, 0 = end).
#[repr(C, align(64))]
pub(crate) struct Slot {
    pub(crate) version: AtomicU64,
    pub(crate) key: [AtomicU64; 5],
    pub(crate) value: [AtomicU64; 2],
}

/// Version word: a writer is modifying the slot.
pub(crate) const VERSION_WRITING: u64 = 1;
/// Version word: the slot holds a flow.
pub(crate) const VERSION_LIVE: u64 = 2;
/// Version word: one step of the write counter.
pub(crate) const VERSION_COUNT_ONE: u64 = 4;
/// Version word: the write counter bits.
pub(crate) const VERSION_COUNT_MASK: u64 = 0xFFFF_FFFC;
/// Version word: generation shift.
pub(crate) const VERSION_GEN_SHIFT: u32 = 32;

#[inline]
pub(crate) fn version_gen(v: u64) -> u32 {
    (v >> VERSION_GEN_SHIFT) as u32
}

/// The next write count of `v`, keeping its generation, with `flags` set.
#[inline]
pub(crate) fn version_bump(v: u64, flags: u64) -> u64 {
    (v & !0xFFFF_FFFF) | (v.wrapping_add(VERSION_COUNT_ONE) & VERSION_COUNT_MASK) | flags
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

/// Table header, at offset 0 of the region (and of the backing file).
///
/// The first line is immutable after creation: magic, format version,
/// capacity, bucket count, hash seeds, the hash check value and the region
/// size. The padded words below are the shared allocator state and the
/// statistics.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) magic: AtomicU64,
    pub(crate) format: AtomicU64,
    pub(crate) capacity: AtomicU64,
    pub(crate) buckets: AtomicU64,
    pub(crate) seeds: [AtomicU64; 4],
    pub(crate) hash_check: AtomicU64,
    pub(crate) region_len: AtomicU64,
    /// Number of never-used slots handed out (bump allocator; may exceed the
    /// capacity by the number of racing allocators, read with `min`).
    pub(crate) fresh: Padded,
    /// Free-list head: bits 0..32 slot + 1 (0 = empty), bits 32..64 ABA tag
    /// incremented by every push and pop.
    pub(crate) free_head: Padded,
    pub(crate) inserted: Padded,
    pub(crate) removed: Padded,
    pub(crate) aged: Padded,
    pub(crate) full_table: Padded,
    pub(crate) full_bucket: Padded,
}

/// "VRFLOWT1" as a little-endian integer.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"VRFLOWT1");
/// Layout version written to the header. 2: keys hashed by
/// [`crate::hash::KeyHasher`] (version 1 hashed them with ahash; a table
/// file of version 1 is refused, as its flows sit in other buckets).
pub(crate) const FORMAT_VERSION: u64 = 2;
/// Bytes reserved for the header at the start of the region.
pub(crate) const HEADER_BYTES: usize = 4096;

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::size_of::<Bucket>() == 64);
    assert!(core::mem::size_of::<Slot>() == 64);
    assert!(core::mem::size_of::<SlotStats>() == 24);
    assert!(core::mem::size_of::<Header>() <= HEADER_BYTES);
};

/// Byte offsets of the parts of a table region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) capacity: usize,
    pub(crate) buckets: usize,
    pub(crate) buckets_off: usize,
    pub(crate) slots_off: usize,
    pub(crate) stats_off: usize,
    /// Bytes used (before rounding to the page size).
    pub(crate) len: usize,
}

impl Layout {
    /// The layout of a table of `capacity` flows (a valid power of two).
    pub(crate) fn new(capacity: usize) -> Layout {
        let buckets = capacity / 2;
        let buckets_off = HEADER_BYTES;
        let slots_off = buckets_off + buckets * 64;
        let stats_off = slots_off + capacity * 64;
        let len = stats_off + capacity * 24;
        Layout {
            capacity,
            buckets,
            buckets_off,
            slots_off,
            stats_off,
            len,
        }
    }
}

impl Bucket {
    #[cfg_attr(not(loom), allow(dead_code))]
    pub(crate) fn new() -> Bucket {
        Bucket {
            overflow: zeroed_atomic(),
            entries: core::array::from_fn(|_| zeroed_atomic()),
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
            buckets: zeroed_atomic(),
            seeds: core::array::from_fn(|_| zeroed_atomic()),
            hash_check: zeroed_atomic(),
            region_len: zeroed_atomic(),
            fresh: p(),
            free_head: p(),
            inserted: p(),
            removed: p(),
            aged: p(),
            full_table: p(),
            full_bucket: p(),
        }
    }
}
