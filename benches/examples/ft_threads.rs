//! Flow-table throughput on several threads at once, each pinned to its own
//! CPU: how lookups and inserts scale with cores sharing one table.
//!
//! ```text
//! cargo build --release -p vrouter-benches --example ft_threads
//! target/release/examples/ft_threads MODE THREADS [SECONDS] [CAPACITY] [FIRST_CPU]
//! ```
//!
//! `THREADS` is a comma-separated list of thread counts (`1,2,4,8`); each
//! count is one run of `SECONDS` (default 2) on a fresh table of `CAPACITY`
//! flows (default 1M), threads pinned to CPUs `FIRST_CPU..` (default 0).
//! Modes:
//!
//! - `lookup`: the table filled to capacity; every thread looks up present
//!   keys in bursts of 32 (`lookup_batch`), each thread in its own fixed
//!   random order.
//! - `insert`: every thread keeps its own sliding window of
//!   `CAPACITY / 2 / THREADS` flows in the shared table: each step inserts
//!   32 new keys with one `insert_batch` and removes its 32 oldest. The
//!   figure counts inserts (each paired with a removal); both are timed.
//! - `mixed`: thread 0 runs the `insert` loop (a worker learning flows and
//!   the ageing that removes them); the others run the `lookup` loop on the
//!   flows of a half-full table. Reported separately.
//!
//! Output: one line per run with the total rate (million operations per
//! second) and the rate per thread. Shared atomics the threads write (the
//! table's capacity count, its statistics counters) are what limits
//! scaling if anything does; lookups write nothing shared.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // measurement tool

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flow_table::{FlowEntry, FlowKey, FlowTable, FlowValue, InsertError};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use vrouter_benches::flow_keys::{fill, key, shuffled, value};

const BURST: usize = 32;

/// Keys of thread `t`'s windows start at `t << KEY_SHIFT` (disjoint for up
/// to 32 threads).
const KEY_SHIFT: u32 = 27;

fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu).expect("cpu index in range");
    sched_setaffinity(Pid::from_raw(0), &set).expect("pin thread (is the CPU online?)");
}

/// Batch lookups of `keys` (cycled) until `stop`; the number done.
fn lookup_loop(table: &FlowTable, keys: &[FlowKey], stop: &AtomicBool) -> u64 {
    let mut out = [None::<FlowEntry>; BURST];
    let mut n = 0u64;
    let mut hits = 0usize;
    'run: loop {
        for chunk in keys.chunks_exact(BURST) {
            hits += table.lookup_batch(black_box(chunk), &mut out);
            n += BURST as u64;
            // Check the stop flag every 64 bursts.
            if n & (BURST as u64 * 64 - 1) == 0 && stop.load(Ordering::Relaxed) {
                break 'run;
            }
        }
    }
    assert_eq!(hits as u64, n, "every looked-up key is present");
    n
}

/// Thread `t`'s window of `window` flows, slid by bursts until `stop`; the
/// number of inserts done.
fn insert_loop(table: &FlowTable, t: u32, window: u32, stop: &AtomicBool) -> u64 {
    let base = t << KEY_SHIFT;
    let mut next = base + window;
    let mut out = [Err(InsertError::Full); BURST];
    let mut n = 0u64;
    loop {
        let keys: [FlowKey; BURST] = std::array::from_fn(|j| key(next + j as u32, false));
        let values: [FlowValue; BURST] = std::array::from_fn(|j| value(next + j as u32));
        let added = table.insert_batch(&keys, &values, 0, &mut out);
        assert_eq!(added, BURST, "room for every new flow of the window");
        for i in next - window..next - window + BURST as u32 {
            table
                .remove(&key(i, false))
                .expect("the oldest flow is there");
        }
        next += BURST as u32;
        n += BURST as u64;
        if next - base >= (1 << KEY_SHIFT) - BURST as u32 {
            panic!("thread {t} ran out of keys: use fewer seconds");
        }
        if stop.load(Ordering::Relaxed) {
            return n;
        }
    }
}

/// Each thread's lookup keys: all of `ids`, from its own offset into one
/// fixed random order.
fn lookup_keys(ids: &[u32], t: usize, threads: usize) -> Vec<FlowKey> {
    let order = shuffled(ids.len());
    let start = order.len() / threads.max(1) * t;
    let n = ids.len() / BURST * BURST;
    order
        .iter()
        .cycle()
        .skip(start)
        .take(n)
        .map(|&j| key(ids[j as usize], false))
        .collect()
}

fn run(mode: &str, threads: usize, secs: f64, cap: usize, first_cpu: usize) {
    let table = FlowTable::with_capacity(cap).unwrap();
    let stop = AtomicBool::new(false);
    let lookers = match mode {
        "lookup" => threads,
        "mixed" => threads - 1,
        _ => 0,
    };
    let inserters = threads - lookers;
    // Windows of the inserting threads, and the flows the lookups find.
    let window = (cap / 2)
        .checked_div(inserters)
        .map_or(0, |w| w as u32 / BURST as u32 * BURST as u32);
    for t in 0..inserters as u32 {
        let ids = (t << KEY_SHIFT)..(t << KEY_SHIFT) + window;
        assert_eq!(fill(&table, ids, 0), window as usize, "fill");
    }
    let present: Vec<u32> = if lookers > 0 {
        let n = if mode == "lookup" {
            cap
        } else {
            cap / 2 - 1024
        };
        let ids: Vec<u32> = (0..n as u32).map(|i| (31 << KEY_SHIFT) + i).collect();
        assert_eq!(fill(&table, ids.iter().copied(), 0), ids.len(), "fill");
        ids
    } else {
        Vec::new()
    };
    let keys: Vec<Vec<FlowKey>> = (0..lookers)
        .map(|t| lookup_keys(&present, t, lookers))
        .collect();
    let (table, stop, keys) = (&table, &stop, &keys);
    let start = Instant::now();
    let counts: Vec<(bool, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    pin(first_cpu + t);
                    if t < inserters {
                        (true, insert_loop(table, t as u32, window, stop))
                    } else {
                        (false, lookup_loop(table, &keys[t - inserters], stop))
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let report = |what: &str, inserting: bool| {
        let n: Vec<u64> = counts
            .iter()
            .filter(|c| c.0 == inserting)
            .map(|c| c.1)
            .collect();
        if n.is_empty() {
            return;
        }
        let total = n.iter().sum::<u64>() as f64 / elapsed / 1e6;
        println!(
            "{mode} threads={threads} {what}: {total:.1} M/s total, {:.1} M/s per thread ({} threads)",
            total / n.len() as f64,
            n.len()
        );
    };
    report("inserts (each with a removal)", true);
    report("batch lookups", false);
    let expect = inserters * window as usize + present.len();
    assert_eq!(table.len(), expect, "flows in the table after the run");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "lookup".into());
    assert!(
        matches!(mode.as_str(), "lookup" | "insert" | "mixed"),
        "mode: lookup, insert or mixed"
    );
    let threads: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "1".into())
        .split(',')
        .map(|t| t.parse().expect("thread count"))
        .collect();
    let secs: f64 = args.next().map_or(2.0, |s| s.parse().expect("seconds"));
    let cap: usize = args
        .next()
        .map_or(1 << 20, |c| c.parse().expect("capacity"));
    let first_cpu: usize = args.next().map_or(0, |c| c.parse().expect("first CPU"));
    for t in threads {
        assert!((1..=30).contains(&t), "1 to 30 threads");
        assert!(mode != "mixed" || t >= 2, "mixed needs 2 threads or more");
        run(&mode, t, secs, cap, first_cpu);
    }
}
