//! Flow table lookups and inserts against `HashMap` behind `RwLock` and
//! `DashMap` on the same keys.
//!
//! For each size (1k, 64k, 1M, 4M flows) the three maps are filled once with
//! the same keys; each measured iteration then looks up 32 keys (one burst)
//! taken in a fixed random order, either all present (hit) or all absent
//! (miss). Criterion reports the time per burst and the throughput in
//! lookups per second; divide the time by 32 for ns per lookup.
//!
//! * `ft_single`: 32 calls of `FlowTable::lookup`.
//! * `ft_batch`: one `FlowTable::lookup_batch` over the 32 keys.
//! * `ft_batch_touch` (hits only): `lookup_batch`, then `FlowTable::touch`
//!   on each hit, as the data plane does per packet (the counters are a
//!   line apart from the slot the lookup reads).
//! * `ft_batch_value` (hits only): `lookup_batch`, then `FlowEntry::value`
//!   of each hit. A lookup returns the value's two words undecoded (the data
//!   plane only tests the action); this row is a caller that wants the whole
//!   `FlowValue`, as the two maps hand it out.
//! * `hashmap_rwlock`: `RwLock<HashMap<FlowKey, FlowValue, ahash>>`, the read
//!   lock taken once per burst (cheaper than once per lookup).
//! * `dashmap`: `DashMap<FlowKey, FlowValue, ahash>`.
//!
//! `HashMap` and `DashMap` hash with ahash, through the key's `Hash` impl
//! (about 43 instructions per key); the flow table hashes with its own
//! folded multiplies of the five key words (about 24, `flow-table/src/hash.rs`).
//! So the comparison is each table with its hash: a map given a hash as
//! cheap as the table's would gain too, most at 1k flows, where hashing is a
//! large share of a lookup.
//! `flow_table_insert` measures single-thread inserts of new keys into maps
//! sized for 1M flows holding a sliding window of 512k flows: 32 calls of
//! `FlowTable::insert` per step (`ft_insert`), one `FlowTable::insert_batch`
//! of the 32 keys (`ft_insert_batch32`), and the two other maps.
//!
//! Run: `cargo bench -p vrouter-benches --bench flow_table -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use dashmap::DashMap;
use flow_table::{FlowEntry, FlowKey, FlowTable, FlowValue, InsertError};
use vrouter_benches::flow_keys::{key, shuffled, value};

const BURST: usize = 32;
const SIZES: [(&str, usize); 4] = [
    ("1k", 1 << 10),
    ("64k", 1 << 16),
    ("1M", 1 << 20),
    ("4M", 1 << 22),
];

type Hasher = ahash::RandomState;

struct Cursor {
    pos: usize,
    len: usize,
}

impl Cursor {
    fn next(&mut self) -> usize {
        let p = self.pos;
        self.pos = (self.pos + BURST) % self.len;
        p
    }
}

/// Bursts of batch lookups over `keys`, each followed by work on every hit.
struct BatchRun<'a> {
    table: &'a FlowTable,
    keys: &'a [FlowKey],
    /// Keys to cycle through (a multiple of the burst).
    len: usize,
}

impl BatchRun<'_> {
    /// Benchmarks `lookup_batch` of a burst, then `each` on every hit.
    fn bench(&self, g: &mut BenchmarkGroup<'_, WallTime>, name: &str, each: impl Fn(&FlowEntry)) {
        let mut cur = Cursor {
            pos: 0,
            len: self.len,
        };
        let mut out: [Option<FlowEntry>; BURST] = [None; BURST];
        g.bench_function(name, |b| {
            b.iter(|| {
                let p = cur.next();
                self.table
                    .lookup_batch(black_box(&self.keys[p..p + BURST]), &mut out);
                out.iter().flatten().for_each(&each);
            })
        });
    }
}

fn bench_lookups(c: &mut Criterion) {
    for (name, n) in SIZES {
        let table = FlowTable::with_capacity(n).unwrap();
        let hashmap: RwLock<HashMap<FlowKey, FlowValue, Hasher>> =
            RwLock::new(HashMap::with_capacity_and_hasher(n, Hasher::new()));
        let dashmap: DashMap<FlowKey, FlowValue, Hasher> =
            DashMap::with_capacity_and_hasher(n, Hasher::new());
        // Fill to capacity. A key whose two buckets are both full is refused
        // (`InsertError::Full`); it is then left out of all three maps.
        let mut present = Vec::with_capacity(n);
        {
            let mut hm = hashmap.write().unwrap();
            for i in 0..n as u32 {
                let (k, v) = (key(i, false), value(i));
                if table.insert(&k, v, 0).is_ok() {
                    hm.insert(k, v);
                    dashmap.insert(k, v);
                    present.push(i);
                }
            }
        }
        eprintln!(
            "flow_table/{name}: {} of {n} flows inserted, {} bytes mapped ({:.1} B/flow), backing {:?}, stats {:?}",
            table.len(),
            table.memory_bytes(),
            table.memory_bytes() as f64 / n as f64,
            table.backing(),
            table.stats()
        );
        let m = present.len() / BURST * BURST;
        let order = shuffled(m);
        let hits: Vec<FlowKey> = order
            .iter()
            .map(|&j| key(present[j as usize], false))
            .collect();
        let misses: Vec<FlowKey> = order
            .iter()
            .map(|&j| key(present[j as usize], true))
            .collect();

        let mut g = c.benchmark_group(format!("flow_table/{name}"));
        g.throughput(Throughput::Elements(BURST as u64));
        for (kind, keys) in [("hit", &hits), ("miss", &misses)] {
            let mut cur = Cursor { pos: 0, len: m };
            g.bench_function(format!("ft_single_{kind}"), |b| {
                b.iter(|| {
                    let p = cur.next();
                    for k in &keys[p..p + BURST] {
                        black_box(table.lookup(black_box(k)));
                    }
                })
            });
            let mut cur = Cursor { pos: 0, len: m };
            let mut out: [Option<FlowEntry>; BURST] = [None; BURST];
            g.bench_function(format!("ft_batch_{kind}"), |b| {
                b.iter(|| {
                    let p = cur.next();
                    black_box(table.lookup_batch(black_box(&keys[p..p + BURST]), &mut out));
                    black_box(&out);
                })
            });
            if kind == "hit" {
                let run = BatchRun {
                    table: &table,
                    keys,
                    len: m,
                };
                run.bench(&mut g, "ft_batch_touch_hit", |e| {
                    black_box(table.touch(e.id, 1, 100));
                });
                run.bench(&mut g, "ft_batch_value_hit", |e| {
                    black_box(e.value());
                });
            }
            let mut cur = Cursor { pos: 0, len: m };
            g.bench_function(format!("hashmap_rwlock_{kind}"), |b| {
                b.iter(|| {
                    let p = cur.next();
                    let m = hashmap.read().unwrap();
                    for k in &keys[p..p + BURST] {
                        black_box(m.get(black_box(k)).copied());
                    }
                })
            });
            let mut cur = Cursor { pos: 0, len: m };
            g.bench_function(format!("dashmap_{kind}"), |b| {
                b.iter(|| {
                    let p = cur.next();
                    for k in &keys[p..p + BURST] {
                        black_box(dashmap.get(black_box(k)).map(|r| *r));
                    }
                })
            });
        }
        g.finish();
    }
}

/// Steady-state inserts: a window of `CAP / 2` flows is kept in each map;
/// each measured step inserts the next 32 new keys (timed) and removes the 32
/// oldest (untimed), so the memory is already touched and the load constant.
fn bench_insert(c: &mut Criterion) {
    const CAP: usize = 1 << 20;
    const WINDOW: u32 = (CAP / 2) as u32;
    let mut g = c.benchmark_group("flow_table_insert/1M");
    g.throughput(Throughput::Elements(BURST as u64));

    let table = FlowTable::with_capacity(CAP).unwrap();
    for i in 0..WINDOW {
        table.insert(&key(i, false), value(i), 0).unwrap();
    }
    let mut next = WINDOW;
    g.bench_function("ft_insert", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                for i in next..next + BURST as u32 {
                    black_box(table.insert(&key(i, false), value(i), 0).ok());
                }
                total += start.elapsed();
                for i in next - WINDOW..next - WINDOW + BURST as u32 {
                    table.remove(&key(i, false));
                }
                next += BURST as u32;
            }
            total
        })
    });

    // The same workload with each step's 32 keys inserted by one
    // `insert_batch` (keys and values built inside the timed region, as the
    // single inserts build theirs), on its own table.
    let table = FlowTable::with_capacity(CAP).unwrap();
    for i in 0..WINDOW {
        table.insert(&key(i, false), value(i), 0).unwrap();
    }
    let mut next = WINDOW;
    let mut out = [Err(InsertError::Full); BURST];
    g.bench_function("ft_insert_batch32", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let keys: [FlowKey; BURST] = std::array::from_fn(|j| key(next + j as u32, false));
                let values: [FlowValue; BURST] = std::array::from_fn(|j| value(next + j as u32));
                black_box(table.insert_batch(black_box(&keys), &values, 0, &mut out));
                black_box(&out);
                total += start.elapsed();
                for i in next - WINDOW..next - WINDOW + BURST as u32 {
                    table.remove(&key(i, false));
                }
                next += BURST as u32;
            }
            total
        })
    });
    drop(table);

    let map: RwLock<HashMap<FlowKey, FlowValue, Hasher>> =
        RwLock::new(HashMap::with_capacity_and_hasher(CAP, Hasher::new()));
    for i in 0..WINDOW {
        map.write().unwrap().insert(key(i, false), value(i));
    }
    let mut next = WINDOW;
    g.bench_function("hashmap_rwlock_insert", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                for i in next..next + BURST as u32 {
                    black_box(map.write().unwrap().insert(key(i, false), value(i)));
                }
                total += start.elapsed();
                for i in next - WINDOW..next - WINDOW + BURST as u32 {
                    map.write().unwrap().remove(&key(i, false));
                }
                next += BURST as u32;
            }
            total
        })
    });

    let dmap: DashMap<FlowKey, FlowValue, Hasher> =
        DashMap::with_capacity_and_hasher(CAP, Hasher::new());
    for i in 0..WINDOW {
        dmap.insert(key(i, false), value(i));
    }
    let mut next = WINDOW;
    g.bench_function("dashmap_insert", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                for i in next..next + BURST as u32 {
                    black_box(dmap.insert(key(i, false), value(i)));
                }
                total += start.elapsed();
                for i in next - WINDOW..next - WINDOW + BURST as u32 {
                    dmap.remove(&key(i, false));
                }
                next += BURST as u32;
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench_lookups, bench_insert);
criterion_main!(benches);
