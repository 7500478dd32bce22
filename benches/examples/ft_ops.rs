//! Runs one kind of flow-table operation many times, for instruction counts
//! under `valgrind --tool=callgrind`. Each measured loop is its own
//! non-inlined function, so callgrind can count it alone:
//!
//! ```text
//! cargo build --release -p vrouter-benches --example ft_ops
//! valgrind --tool=callgrind --toggle-collect='ft_ops::measure_*' \
//!     target/release/examples/ft_ops insert
//! ```
//!
//! Modes: `insert` (steady state: a 1M table holding a sliding window of
//! 512k flows; each step inserts 32 new keys, measured, and removes the 32
//! oldest, not measured), `insert-batch` (the same, the 32 keys inserted by
//! one `insert_batch`), `single-hit`, `single-miss`, `batch-hit`,
//! `batch-miss` (a 1M table filled to capacity, bursts of 32 keys in a fixed
//! random order), `batch-touch` (batch hits, then `touch` on each hit),
//! `batch-value` (batch hits, then each hit's whole value decoded),
//! `hashmap-hit`, `hashmap-miss` (the same keys in the flow-table bench's
//! `RwLock<HashMap<_, _, ahash>>`, the read lock taken once per burst),
//! `age-none`, `age-all` (one ageing sweep over a table filled to capacity
//! by `insert_batch`, refilled for every round, untimed: no flow idle long
//! enough, or every flow; the figure is per flow in the table). A
//! third argument sets another capacity (the window is half of it).
//! `FT_CHURN=N` first replaces flows N x capacity times (remove a random
//! one, insert a new one): lookups then run on a full table in steady
//! state rather than a freshly filled one. The
//! instruction count of the `measure_*` function divided by the number of
//! operations printed is the count per operation. Outside callgrind the
//! printed wall time per operation (the best of `ROUNDS` rounds, given as
//! the second argument, default 1) is a quick timing check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // measurement tool

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use flow_table::{AgeingTimeouts, FlowEntry, FlowKey, FlowTable, FlowValue, Insert, InsertError};
use vrouter_benches::flow_keys::{fill, key, shuffled, value};

/// Table capacity unless the third argument gives another (in flows).
const CAP: usize = 1 << 20;
const BURST: usize = 32;
const STEPS: usize = 2000;

#[inline(never)]
fn measure_insert(table: &FlowTable, keys: &[FlowKey], base: u32) -> usize {
    let mut n = 0;
    for (i, k) in keys.iter().enumerate() {
        n += usize::from(table.insert(k, value(base + i as u32), 0).is_ok());
    }
    n
}

#[inline(never)]
fn measure_insert_batch(
    table: &FlowTable,
    keys: &[FlowKey],
    values: &[FlowValue],
    out: &mut [Result<Insert, InsertError>],
) -> usize {
    table.insert_batch(keys, values, 0, out)
}

#[inline(never)]
fn measure_single(table: &FlowTable, keys: &[FlowKey]) -> usize {
    let mut n = 0;
    for k in keys {
        n += usize::from(black_box(table.lookup(black_box(k))).is_some());
    }
    n
}

#[inline(never)]
fn measure_batch(table: &FlowTable, keys: &[FlowKey], out: &mut [Option<FlowEntry>]) -> usize {
    let mut n = 0;
    for chunk in keys.chunks(BURST) {
        n += table.lookup_batch(black_box(chunk), out);
        black_box(&out);
    }
    n
}

/// Batch lookups, then `each` on every hit (counted when it returns true).
#[inline(never)]
fn measure_batch_then(
    table: &FlowTable,
    keys: &[FlowKey],
    out: &mut [Option<FlowEntry>],
    each: impl Fn(&FlowEntry) -> bool,
) -> usize {
    let mut n = 0;
    for chunk in keys.chunks(BURST) {
        table.lookup_batch(black_box(chunk), out);
        for e in out.iter().flatten() {
            n += usize::from(each(e));
        }
    }
    n
}

#[inline(never)]
fn measure_hashmap(
    map: &RwLock<HashMap<FlowKey, FlowValue, ahash::RandomState>>,
    keys: &[FlowKey],
) -> usize {
    let mut n = 0;
    for chunk in keys.chunks(BURST) {
        let m = map.read().unwrap();
        for k in chunk {
            n += usize::from(black_box(m.get(black_box(k)).copied()).is_some());
        }
    }
    n
}

#[inline(never)]
fn measure_age(table: &FlowTable, now: u64, timeouts: &AgeingTimeouts) -> usize {
    table.age(now, timeouts)
}

/// `age-none` / `age-all`: one sweep per round over a freshly filled table.
fn age_rounds(mode: &str, rounds: usize, cap: usize) {
    const SEEN: u64 = 1_000;
    let timeouts = AgeingTimeouts {
        idle: 100,
        tcp_closed: 10,
    };
    let now = if mode == "age-all" {
        SEEN + 101
    } else {
        SEEN + 50
    };
    let mut best = Duration::MAX;
    let (mut flows, mut removed) = (0, 0);
    for _ in 0..rounds {
        let table = FlowTable::with_capacity(cap).unwrap();
        flows = fill(&table, 0..cap as u32, SEEN);
        let t = Instant::now();
        removed = measure_age(&table, now, &timeouts);
        best = best.min(t.elapsed());
        assert_eq!(table.len(), flows - removed);
    }
    println!(
        "{mode}: {flows} flows, {removed} removed, best {:.1} ns per flow",
        best.as_nanos() as f64 / flows as f64
    );
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "insert".into());
    let rounds: usize = std::env::args()
        .nth(2)
        .map_or(1, |r| r.parse().expect("rounds"));
    let cap: usize = std::env::args()
        .nth(3)
        .map_or(CAP, |c| c.parse().expect("capacity"));
    if mode == "age-none" || mode == "age-all" {
        age_rounds(&mode, rounds, cap);
        return;
    }
    let table = FlowTable::with_capacity(cap).unwrap();
    if mode == "insert" || mode == "insert-batch" {
        let window = (cap / 2) as u32;
        for i in 0..window {
            table.insert(&key(i, false), value(i), 0).unwrap();
        }
        let mut next = window;
        let mut best = Duration::MAX;
        let mut ok = 0;
        for _ in 0..rounds {
            let mut spent = Duration::ZERO;
            for _ in 0..STEPS {
                let keys: Vec<FlowKey> =
                    (next..next + BURST as u32).map(|i| key(i, false)).collect();
                let values: Vec<FlowValue> = (next..next + BURST as u32).map(value).collect();
                let mut out = [Err(InsertError::Full); BURST];
                let t = Instant::now();
                ok += if mode == "insert" {
                    measure_insert(&table, &keys, next)
                } else {
                    measure_insert_batch(&table, &keys, &values, &mut out)
                };
                spent += t.elapsed();
                for i in next - window..next - window + BURST as u32 {
                    table.remove(&key(i, false));
                }
                next += BURST as u32;
            }
            best = best.min(spent);
        }
        let ops = STEPS * BURST;
        println!(
            "{mode}: {ops} ops, {ok} inserted, best {:.1} ns/op",
            best.as_nanos() as f64 / ops as f64
        );
        return;
    }
    let mut present = Vec::with_capacity(cap);
    for i in 0..cap as u32 {
        if table.insert(&key(i, false), value(i), 0).is_ok() {
            present.push(i);
        }
    }
    // `FT_CHURN=N`: before measuring, N x capacity times remove a random
    // flow and insert a new one (the steady state of a full table whose
    // flows come and go, rather than a freshly filled one).
    let churn: usize = std::env::var("FT_CHURN").map_or(0, |c| c.parse().expect("FT_CHURN"));
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for next in (cap as u32..).take(churn * cap) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % present.len() as u64) as usize;
        table.remove(&key(present[j], false)).unwrap();
        if table.insert(&key(next, false), value(next), 0).is_ok() {
            present[j] = next;
        } else {
            present.swap_remove(j);
        }
    }
    let miss = mode.ends_with("miss");
    let map = RwLock::new(HashMap::with_capacity_and_hasher(
        present.len(),
        ahash::RandomState::new(),
    ));
    if mode.starts_with("hashmap") {
        let mut m = map.write().unwrap();
        for &i in &present {
            m.insert(key(i, false), value(i));
        }
    }
    let order = shuffled(present.len());
    // Each round looks up other keys (while the table has enough), so that
    // rounds do not warm the caches for each other.
    let per_round = (STEPS * BURST).min(present.len() / BURST * BURST);
    let keys: Vec<FlowKey> = order
        .iter()
        .cycle()
        .take(per_round * rounds)
        .map(|&j| key(present[j as usize], miss))
        .collect();
    let mut out = [None; BURST];
    let mut best = Duration::MAX;
    let mut n = 0;
    for keys in keys.chunks(per_round) {
        let t = Instant::now();
        n = match mode.as_str() {
            "single-hit" | "single-miss" => measure_single(&table, keys),
            "batch-hit" | "batch-miss" => measure_batch(&table, keys, &mut out),
            "batch-touch" => {
                measure_batch_then(&table, keys, &mut out, |e| table.touch(e.id, 1, 100))
            }
            "batch-value" => measure_batch_then(&table, keys, &mut out, |e| {
                black_box(e.value());
                true
            }),
            "hashmap-hit" | "hashmap-miss" => measure_hashmap(&map, keys),
            _ => panic!("unknown mode {mode}"),
        };
        best = best.min(t.elapsed());
    }
    println!(
        "{mode}: {per_round} ops, {n} hits, best {:.1} ns/op",
        best.as_nanos() as f64 / per_round as f64
    );
}
