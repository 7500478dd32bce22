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
//! a named file; see [`Backing`]). Tables of fewer than 16k flows take
//! normal pages even when hugepages are reserved: whole hugepages would add
//! more than a sixteenth to them (a 1k-flow table would map 2 MiB, 2,048
//! bytes per flow, against 128 KiB on normal pages).
//!
//! | part | size | content |
//! |------|------|---------|
//! | header | 4 KiB | magic, format, capacity, group count, hash seeds and check value; 16 stripes of the capacity count and the remove counter, and the other statistics, each on its own 128-byte line |
//! | control words | groups × 8 B | per group of 7 slots: 7 control bytes and an overflow count |
//! | slots | groups × 7 × 64 B | version word, 5 key words, 2 value words |
//! | counters | groups × 7 × 24 B | last-seen, packets, bytes |
//!
//! There are 11/8 slots per flow of capacity (`groups = ceil(capacity ×
//! 11 / 56)`), so a full table is at most 73% occupied: 122.6 bytes per
//! flow plus the header (plus rounding to the page or hugepage size). The
//! control words of a 1M-flow table take 1.6 MB, small enough to stay in
//! the last-level cache, so a lookup usually costs one line from memory:
//! its slot (the two control words it reads come from the cache, in
//! parallel).
//!
//! # Hashing and placement
//!
//! A key's 64-bit hash `h` (four folded multiplies of the key words with
//! secret words from fixed seeds, see `hash.rs`, or a caller-supplied
//! [`FlowHash`], e.g. [`FlowHash::from_rss`]) gives two groups, `g1` from
//! bits 42..64 and `g2` from bits 0..24 (each scaled to the group count:
//! `(x × groups) >> 64`), and an 8-bit tag from bits 24..32. An insert
//! puts the key in whichever of its two groups has more empty slots (`g1`
//! on a tie); only if both are full does it go on to the groups after
//! `g2`, at most 254 of them. Flows never move. Position `d` of a key's
//! probe is `g1` for 0, `g2` for 1 and `g2 + d - 1` after; the slot's
//! version word records the position.
//!
//! Each group counts the keys whose probe passed it from `g2` on, so a
//! lookup reads `g1` and `g2` (both words, without a branch between them)
//! and goes further only when neither matches and `g2`'s count is
//! non-zero. Choosing the emptier of two groups keeps the groups evenly
//! filled however flows come and go: on a full table in steady state
//! (random flows removed and new ones inserted), a simulation found about
//! 8% of groups with a non-zero count and 1% of flows past their two
//! groups, where placing each key in the first group from its home with
//! room (linear probing) left 69% of groups counted and misses reading 5
//! groups on average.
//!
//! # Atomic words and their encodings
//!
//! Every shared location is an `AtomicU64`:
//!
//! * **Control word** (one per group): byte `i` (0..7) describes slot
//!   `7 g + i`: `0x00` empty; `0x01` a pending insert withdrawn by an
//!   insert of the same key with priority; `0x02` a flow being removed;
//!   `0x03` an insert in progress (`PENDING`); `0x04..=0xff` a committed
//!   flow, the byte being its key's tag (raised to at least 4). Byte 7 is
//!   the overflow count: the number of keys (committed or in progress)
//!   whose probe passed this group, that is whose second group is this one
//!   or before it and which live after it. A count that reaches 255 stays
//!   there (it can no longer be lowered exactly; lookups just look
//!   further).
//! * **Slot version**: bit 0 `WRITING`, bit 1 `LIVE` (a committed flow),
//!   bit 2 `FILLED` (key and value hold the slot's insert), bits 3..24 write
//!   counter, bits 24..32 the key's probe position, bits 32..64
//!   generation. The generation is bumped each time the slot is
//!   freed, so a [`FlowId`] naming an older incarnation no longer matches.
//! * **Slot key / value words**: see [`key`](FlowKey) and [`FlowValue`]
//!   encodings.
//! * **Capacity count** (header): slots held by flows and inserts in
//!   progress, at most the capacity.
//! * **Counters** (per slot, header): plain relaxed counters.
//!
//! # Read protocol (lookup) — loads only
//!
//! * R1. Load the control words of `g1` and `g2` (`Acquire`) and find the
//!   bytes equal to the tag (SWAR compares of the seven bytes).
//! * R2. For such a byte load the slot version `v1` (`Acquire`). If it is
//!   not `LIVE`, skip the slot (removed, or not committed yet). If it is
//!   `LIVE` and `WRITING`, retry from R1 (an update or removal is a few
//!   stores from done).
//! * R3. Load the key words (`Relaxed`); a mismatch means another flow:
//!   skip.
//! * R4. Load the value words (`Relaxed`), then `fence(Acquire)`.
//! * R5. Load the version again (`Relaxed`); if it equals `v1` the copy is a
//!   consistent snapshot of that incarnation (seqlock read, as in Boehm,
//!   "Can seqlocks get along with programming language memory models?").
//!   Otherwise retry from R1.
//! * R6. No hit in `g1` or `g2`: if `g2`'s overflow count is 0 the key is
//!   absent; otherwise repeat R1..R5 with the group after it, and so on
//!   while the count of the group read last is non-zero.
//!
//! `lookup` tries the first tag match (of `g1`, else of `g2`) inline and
//! leaves anything else (a tag twin, a busy slot, a key past its two
//! groups) to separate functions. `lookup_batch` runs R1 for a burst of
//! keys (all their control words prefetched first), prefetches every
//! candidate slot, and then compares the keys.
//!
//! A reader never returns data from a slot whose version changed during the
//! copy, so it never sees a torn value; it only returns `LIVE` slots, which
//! hold committed flows, and checks the full key, so it never reports a
//! removed flow's reused slot as the old flow or an insert that did not
//! commit.
//!
//! # Write protocols
//!
//! Insert (any thread):
//!
//! * W1. Look the key up (R1..R6); if present return [`Insert::Exists`].
//! * W2. Reserve room: raise the capacity count of the thread's stripe
//!   unless it is at the stripe's share of the capacity (a sixteenth,
//!   CAS loop), else of the first stripe after it that is not, which
//!   becomes the thread's stripe; if every stripe is at its share,
//!   [`InsertError::Full`] and `full_table` += 1. A reservation is given
//!   back on the stripe of the thread that removes the flow, which may go
//!   below 0; no stripe goes above its share, so the slots held never
//!   exceed the capacity, and an insert is refused only when they reach
//!   it. Threads that insert and remove at once thus write no shared
//!   line for the count (a single count stopped inserts from scaling past
//!   two cores: BENCHMARKS.md, "Inserts on many cores"). The stripes' sum
//!   is also [`FlowTable::len`] (inserts in progress included), and with
//!   the removals the insert count of [`FlowTable::stats`]: an insert
//!   counts itself by its reservation, with no atomic read-modify-write
//!   of its own for the count (on x86 each one is a full barrier).
//! * W3. Claim a slot: CAS the first empty byte of the emptier of `g1`
//!   and `g2`, else of the other, to `PENDING` (`AcqRel`); if both are
//!   full, go on from `g2`: a group without an empty byte gets its overflow
//!   count raised by a CAS (`AcqRel`) before the probe moves to the next.
//!   Nothing free up to position 255: the counts are lowered again,
//!   [`InsertError::Full`], `full_bucket` += 1.
//! * W4. Fill the slot: store `version | WRITING` (`Relaxed`),
//!   `fence(Release)`, store key, value and counters (`Relaxed`), store the
//!   version with `FILLED`, the displacement and a bumped write counter
//!   (`Release`).
//! * W5. Resolve duplicates: read the control words along the key's probe
//!   with `fetch_add(0)` (`AcqRel`: a read-modify-write reads the latest
//!   value, which a load need not): `g1`, `g2`, then on until a position
//!   at or past ours whose count is 0. For every other byte with the key's tag,
//!   pending or committed, wait for its slot to be `FILLED` and compare the
//!   key. A committed one → withdraw ours, return it. A pending one with a
//!   lower slot index (priority) → withdraw ours and retry from W1. A
//!   pending one with a higher slot index → CAS its byte to `WITHDRAWN`.
//! * W6. Commit: CAS our byte `PENDING → FULL`, then store the version with
//!   `LIVE` (`Release`): the insert takes effect there. If the CAS fails an
//!   insert with priority withdrew ours: clean up and retry.
//!
//! Withdrawing ours = retire the slot (next generation, no flags), CAS our
//! byte (`PENDING` or `WITHDRAWN`) to empty, lower the counts W3 raised,
//! give the reservation back.
//!
//! Why no key is ever committed twice. Take two inserts of one key, E and
//! L. Before claiming at position `de` of the probe, E raised the count of
//! every position from 1 to `de - 1` (or found it at 255). Every claim, count change
//! and W5 read is a read-modify-write of a control word; the
//! read-modify-writes of one word happen in a single order, each reading
//! what the one before it wrote, and with `AcqRel` the later of two sees
//! everything the earlier one's thread did before it. Walk the probe (L's
//! W5 reads positions 0 and 1 whatever the counts). At each position,
//! either L's W5 read comes after E's change there, and L sees E's count
//! (so its W5 does not stop there) or, at `de`, E's byte; or it comes
//! before, and then E's change and everything E does after it, its W5
//! included, sees L's claim and L's counts, so E's W5 reaches L's byte. Either way one of the two sees the other, and
//! withdraws (the other is committed or has priority) or withdraws the
//! other before that one's commit CAS can succeed: at most one commits, and
//! one that commits was never withdrawn.
//!
//! Remove (by key, by id, or by the ageing sweep):
//!
//! * D1. Lock the slot: CAS its version `v → v | WRITING` if it is still
//!   `LIVE` with the flow's generation (else it is gone).
//! * D2. CAS its byte `FULL → REMOVING`: from here lookups do not find it.
//! * D3. Retire the slot: store the next generation without flags
//!   (`Release`).
//! * D4. CAS the byte to empty, lower the counts its insert raised (for a
//!   flow at position `d` ≥ 2: the `d - 1` groups before its own), give the
//!   reservation back.
//!
//! Only the remover holding the lock changes a committed byte, so a flow
//! is removed once; a reader holding an older control word fails its
//! version re-check (R5) or finds the slot not `LIVE` (R2).
//!
//! Update (value of a live flow, e.g. [`FlowTable::update_action`]):
//!
//! * U. Lock the slot as in D1, `fence(Release)`, store the value words
//!   (`Relaxed`), store the version with a bumped write counter (`Release`).
//!
//! A reader that meets `WRITING` on the very flow being updated or removed
//! retries until the writer's stores are done; lookups of other flows are
//! not affected, and no reader ever writes shared memory.
//!
//! Counters ([`FlowTable::touch`]) are relaxed atomics outside the snapshot.
//!
//! # Model checking
//!
//! `src/sync.rs` swaps the atomics for loom's under `--cfg loom`; the
//! model tests in `tests/loom.rs` check the publish / remove / reuse
//! protocol with two and three threads, in one group (capacity 4) and
//! across groups (capacity 16: keys whose two groups are full before the
//! threads start, and inserts of one key choosing different groups). loom
//! treats `SeqCst` as `AcqRel`; the argument above needs only the latter.
//!

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
