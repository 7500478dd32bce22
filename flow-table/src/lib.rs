//! Lock-free flow table for the vrouter-dp data plane.
//!
//! Pure Rust, no DPDK. Workers look up every packet's flow and learn new
//! flows on a miss; the control thread installs, modifies, deletes and ages
//! flows at the same time. Lookups are lock-free and perform loads only (no
//! atomic read-modify-write); inserts and removes are lock-free.
//!
//! ```
//! use flow_table::*;
//! use std::net::Ipv4Addr;
//!
//! let table = FlowTable::with_capacity(1024)?;
//! let vrf = VrfId::new(1)?;
//! let key = FlowKey::v4(vrf, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), PROTO_TCP, 40000, 80);
//! let value = FlowValue::new(FlowAction::Forward { nexthop: NexthopId(7) });
//! let id = table.insert(&key, value, 0)?.id();
//! let hit = table.lookup(&key).expect("present");
//! assert_eq!(hit.value(), value);
//! table.touch(hit.id, 1, 1500);
//! assert_eq!(table.counters(id).map(|c| c.bytes), Some(1500));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Memory layout
//!
//! One region, allocated once at creation (anonymous 2 MiB hugepages when
//! reserved, else normal pages with `MADV_HUGEPAGE`, or a shared mapping of
//! a named file; see [`Backing`]):
//!
//! | part | size | content |
//! |------|------|---------|
//! | header | 4 KiB | magic, format, capacity, hash seeds and check value; allocator state and counters, each on its own 128-byte line |
//! | index | capacity/2 × 64 B | buckets: one overflow count + 7 entry words |
//! | slots | capacity × 64 B | version word, 5 key words, 2 value words |
//! | counters | capacity × 24 B | last-seen, packets, bytes |
//!
//! That is 120 bytes per flow plus the header (plus rounding to the page or
//! hugepage size). A lookup reads one bucket line and, on a tag match, one
//! slot line; it reads a second bucket only if the first one's overflow
//! count is non-zero.
//!
//! # Hashing and placement
//!
//! A key's 64-bit hash `h` (four folded multiplies of the key words with
//! secret words from fixed seeds, see `hash.rs`, or a
//! caller-supplied [`FlowHash`], e.g. [`FlowHash::from_rss`]) gives a
//! primary bucket `b1 = h mod buckets`, a 16-bit tag `h >> 48`, and a
//! secondary bucket `b2 = b1 XOR alt(tag)`, where `alt` is a non-zero
//! function of the tag alone (so either bucket can be computed from the
//! other and the tag, as in partial-key cuckoo hashing). Inserts use the
//! primary bucket while it has a free word, else the secondary. Entries never
//! move.
//!
//! # Atomic words and their encodings
//!
//! Every shared location is an `AtomicU64`:
//!
//! * **Entry word** (bucket): bits 0..24 slot index, 24..45 low 21 bits of
//!   the slot generation, bit 45 `SECONDARY` (entry lives in its secondary
//!   bucket), 46..62 tag, bit 62 `PENDING` (claimed, not committed), bit 63
//!   `OCCUPIED`. 0 = empty.
//! * **Overflow count** (bucket word 0): number of entries whose primary is
//!   this bucket that are placed, or being placed, in their secondary
//!   bucket.
//! * **Slot version**: bit 0 `WRITING`, bit 1 `LIVE`, bits 2..32 write
//!   counter, bits 32..64 generation. The generation is bumped each time the
//!   slot is freed, so an entry word or [`FlowId`] naming an older
//!   incarnation no longer matches.
//! * **Slot key / value words**: see [`key`](FlowKey) and [`FlowValue`]
//!   encodings. While a slot is free, value word 1 is its free-list link.
//! * **Free-list head** (header): bits 0..32 slot + 1 (0 = empty), bits
//!   32..64 an ABA tag bumped by each push and pop (Treiber stack).
//! * **Fresh count** (header): never-used slots handed out (bump allocator).
//! * **Counters** (per slot, header): plain relaxed counters.
//!
//! # Read protocol (lookup) — loads only
//!
//! * R1. Load the entry words of `b1` (`Acquire`); consider words that are
//!   `OCCUPIED`, not `PENDING`, not `SECONDARY`, with the key's tag. (On
//!   CPUs with AVX, where aligned 16-byte loads are atomic, the bucket is
//!   read with four such loads and the tags matched with SSE2; every word
//!   is still read whole, as by its own load.)
//! * R2. For such a word load the slot version `v1` (`Acquire`). If it is not
//!   `LIVE` or its generation differs from the word's, the word is stale
//!   (being removed): skip it. If `WRITING`, retry (R6).
//! * R3. Load the key words (`Relaxed`); a mismatch means another flow:
//!   skip.
//! * R4. Load the value words (`Relaxed`), then `fence(Acquire)`.
//! * R5. Load the version again (`Relaxed`); if it equals `v1` the copy is a
//!   consistent snapshot of that incarnation (seqlock read, as in Boehm,
//!   "Can seqlocks get along with programming language memory models?").
//! * R6. Otherwise the slot changed under the reader: restart from R1.
//! * R7. If `b1` had no hit, load `b1`'s overflow count (`Acquire`); if it
//!   is non-zero repeat R1..R6 on `b2` for `SECONDARY` words.
//!
//! `lookup` and `lookup_batch` first try the first tag match of `b1` (for a
//! batch: loading all buckets, then prefetching all candidate slots, before
//! comparing any key): if its slot holds the key (R2..R5) that is the
//! answer; if `b1` has no tag match and a zero overflow count the key is
//! absent; otherwise they run R1..R7.
//!
//! A reader never returns data from a slot whose version changed during the
//! copy, so it never sees a torn value, and never returns a reused slot as
//! the old flow (the generation and the full key are both checked).
//!
//! # Write protocols
//!
//! Insert (any thread):
//!
//! * W1. Look the key up (R1..R7); if present return [`Insert::Exists`].
//! * W2. Take a slot: pop the free list (`Acquire` CAS), else bump the fresh
//!   count; none → [`InsertError::Full`] and `full_table` += 1.
//! * W3. Store `version | WRITING` (`Relaxed`), `fence(Release)`, store key,
//!   value and counters (`Relaxed`), then store the version with `LIVE` and
//!   a bumped write counter (`Release`).
//! * W4. Claim an empty entry word with a `SeqCst` CAS `0 → PENDING word`,
//!   in `b1`; if `b1` is full, first increment `b1`'s overflow count
//!   (`SeqCst`) and claim in `b2` (decrementing again if `b2` is full too →
//!   `Full`, `full_bucket` += 1, slot freed).
//! * W5. Resolve duplicates: scan all words of `b1` and, unless `b1`'s
//!   overflow count reads 0, of `b2` (`SeqCst` loads) for other entries of
//!   the same key (pending or committed). A
//!   committed one → withdraw ours, return it. A pending one with a lower
//!   slot index (higher priority) → withdraw ours and retry from W1. A
//!   pending one with a higher slot index → withdraw it with a CAS to 0.
//! * W6. Commit with a `SeqCst` CAS `PENDING word → committed word`. If it
//!   fails a higher-priority insert withdrew ours: clean up and retry.
//!
//! Withdrawing ours = CAS our word to 0 (it may already be 0), lower the
//! overflow count if it was secondary, free the slot (D3).
//!
//! Why no key is ever present twice: all claims, scans, overflow updates
//! and commits are `SeqCst`, so of two inserts of one key the one that
//! claimed later sees the earlier one's word in W5 unless it was already
//! withdrawn (an entry in `b2` raised `b1`'s overflow count before its
//! claim, so a zero count read after a claim proves that no earlier entry
//! is in `b2`). The
//! later one then withdraws (the other is committed or has priority) or
//! withdraws the other one before that one's commit CAS can succeed. So
//! at most one of them commits, and one that commits was never withdrawn.
//!
//! Remove (by key, by id, or by the ageing sweep):
//!
//! * D1. Find the committed word (R1..R7, or by slot and generation).
//! * D2. CAS it to 0 (`SeqCst`); on failure start again. Lower the primary
//!   bucket's overflow count if the word was `SECONDARY`.
//! * D3. Retire the slot: CAS the version (waiting while `WRITING`) to the
//!   next generation without `LIVE` (`AcqRel`), `fence(Release)`, store the
//!   free-list link into value word 1 (`Relaxed`), then push it on the free
//!   list (`Release` CAS). The fence makes the link write follow the
//!   seqlock writer rule (version change, release fence, data store), so a
//!   reader that copied the link fails its re-check.
//!
//! A slot is only retired after no entry word points to it; a reader still
//! holding an old entry word fails its generation check (R2) or its version
//! re-check (R5).
//!
//! Update (value of a live flow, e.g. [`FlowTable::update_action`]):
//!
//! * U. CAS the version `v → v | WRITING` (`Acquire`; only if `LIVE` with the
//!   expected generation, waiting while another update holds it),
//!   `fence(Release)`, store the value words (`Relaxed`), store the version
//!   with `LIVE` and a bumped write counter (`Release`).
//!
//! A reader that meets `WRITING` on the very flow being updated retries until
//! the writer's two stores are done; lookups of other flows are not
//! affected, and no reader ever writes shared memory.
//!
//! Counters ([`FlowTable::touch`]) are relaxed atomics outside the snapshot.
//!
//! # Model checking
//!
//! `src/sync.rs` swaps the atomics for loom's under `--cfg loom`; the
//! model tests in `tests/loom.rs` check the publish / remove / reuse protocol
//! at capacity 4 with two and three threads (see the crate README for the
//! command).

#![deny(missing_docs)]

mod core;
mod error;
mod hash;
mod key;
mod layout;
mod memory;
mod sync;
mod table;
mod value;

#[cfg(all(test, not(loom)))]
mod tests;

pub use error::{CreateError, FlowError, InsertError, KeyError, OpenError};
pub use key::{AddressFamily, FlowKey, VrfId, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
pub use memory::{Backing, HUGEPAGE_BYTES};
#[cfg(not(loom))]
pub(crate) use table::valid_capacity;
#[cfg(not(loom))]
pub use table::FlowTableReader;
pub use table::{
    AgeingTimeouts, FlowHash, FlowTable, FlowTableConfig, Insert, Iter, TableStats, BATCH,
    DEFAULT_CAPACITY, MAX_CAPACITY, MIN_CAPACITY,
};
pub use value::{
    FlowAction, FlowCounters, FlowEntry, FlowFlags, FlowId, FlowIndex, FlowRecord, FlowValue,
    MirrorId, NatRef, NexthopId, TcpState,
};
