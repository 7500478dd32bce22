//! Concurrent stress test with a checker.
//!
//! Several threads run mixed insert / lookup / batch lookup / update /
//! remove / touch operations on an overlapping key set for a bounded time,
//! while a control thread ages flows. In some runs part of the threads
//! insert bursts with `insert_batch` (with a key repeated inside the burst)
//! instead of single inserts. Every value written for key `k`
//! encodes `k` and a per-write sequence number redundantly, so that:
//!
//! * a torn value (words from two writes) fails the redundancy check;
//! * a value of another key (a reused slot reported as the old flow, or a
//!   phantom) fails the identity check;
//! * each successful insert adds 1 and each removal (explicit or by ageing)
//!   subtracts 1 from the key's ledger, so at the end every key's balance
//!   must be 0 or 1 and match its presence: a lost insert (balance 1, absent)
//!   or a phantom / duplicate (present with balance 0, balance 2, or listed
//!   twice) is detected.

#![cfg(not(loom))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flow_table::*;

const RUN_FOR: Duration = Duration::from_millis(1500);

fn key(i: u32) -> FlowKey {
    FlowKey::v4(
        VrfId::new(i % 5).unwrap(),
        Ipv4Addr::from(0x0A00_0000 | i),
        Ipv4Addr::new(10, 255, 0, 1),
        PROTO_TCP,
        (i % 50_000) as u16,
        443,
    )
}

fn key_index(k: &FlowKey) -> Option<u32> {
    match k.src() {
        std::net::IpAddr::V4(a) => Some(u32::from(a) & 0x00FF_FFFF),
        std::net::IpAddr::V6(_) => None,
    }
}

fn mix(k: u32, seq: u32) -> u32 {
    (k.wrapping_mul(0x9E37_79B9) ^ seq.rotate_left(13)).wrapping_add(0x7F4A_7C15) & 0x7FFF_FFFF
}

fn value_for(k: u32, seq: u32) -> FlowValue {
    FlowValue {
        action: FlowAction::Nat {
            nexthop: NexthopId(k),
            rewrite: NatRef(seq),
        },
        reverse: Some(FlowIndex(mix(k, seq))),
        flags: FlowFlags((k ^ seq) as u16),
        tcp_state: TcpState::Established,
    }
}

/// Checks that `v` is a complete value written for key `k`.
fn check_value(k: u32, v: &FlowValue) -> Result<(), String> {
    let FlowAction::Nat { nexthop, rewrite } = v.action else {
        return Err(format!("key {k}: unexpected action {:?}", v.action));
    };
    if nexthop.0 != k {
        return Err(format!(
            "key {k}: value of key {} (stale reuse or phantom)",
            nexthop.0
        ));
    }
    let seq = rewrite.0;
    if v.reverse != Some(FlowIndex(mix(k, seq))) || v.flags.0 != (k ^ seq) as u16 {
        return Err(format!("key {k}: torn value {v:?}"));
    }
    Ok(())
}

struct Shared {
    table: FlowTable,
    keys: u32,
    ledger: Vec<AtomicI64>,
    clock: AtomicU64,
    seq: AtomicU64,
    errors: Mutex<Vec<String>>,
    stop: AtomicBool,
    ops: AtomicU64,
    full: AtomicU64,
}

impl Shared {
    fn fail(&self, msg: String) {
        let mut e = self.errors.lock().unwrap();
        if e.len() < 20 {
            e.push(msg);
        }
    }

    fn check(&self, k: u32, v: &FlowValue) {
        if let Err(e) = check_value(k, v) {
            self.fail(e);
        }
    }
}

/// Accounts for the result of inserting key `k`.
fn record_insert(s: &Shared, k: u32, r: Result<Insert, InsertError>) {
    match r {
        Ok(Insert::New(id)) => {
            s.ledger[k as usize].fetch_add(1, Relaxed);
            if let Some(rec) = s.table.get(id) {
                if rec.key != key(k) {
                    s.fail(format!("key {k}: new id {id:?} holds {:?}", rec.key));
                }
            }
        }
        Ok(Insert::Exists(e)) => s.check(k, &e.value()),
        Err(InsertError::Full) => {
            s.full.fetch_add(1, Relaxed);
        }
    }
}

/// Keys inserted by one `insert_batch` in the stress runs.
const INSERT_BURST: usize = 8;

/// Inserts a burst of keys from `base` (the second key repeated at the end)
/// with `insert_batch`, and accounts for each result.
fn insert_burst(s: &Shared, base: u32, now: u64) {
    let mut ks = [0u32; INSERT_BURST];
    for (j, k) in ks.iter_mut().enumerate() {
        *k = (base + j as u32 * 5) % s.keys;
    }
    ks[INSERT_BURST - 1] = ks[1];
    let keys = ks.map(key);
    let values = ks.map(|k| value_for(k, s.seq.fetch_add(1, Relaxed) as u32));
    let mut out = [Err(InsertError::Full); INSERT_BURST];
    let added = s.table.insert_batch(&keys, &values, now, &mut out);
    let news = out
        .iter()
        .filter(|r| matches!(r, Ok(Insert::New(_))))
        .count();
    if added != news {
        s.fail(format!("insert_batch returned {added}, {news} New results"));
    }
    for (k, r) in ks.into_iter().zip(out) {
        record_insert(s, k, r);
    }
}

fn worker(s: &Shared, seed: u64, batch_inserts: bool) {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut ops = 0u64;
    let mut batch_keys = [key(0); 16];
    let mut batch_out = [None; 16];
    while !s.stop.load(Relaxed) {
        let r = next();
        let k = (r % u64::from(s.keys)) as u32;
        let now = s.clock.fetch_add(1, Relaxed);
        match (r >> 32) % 100 {
            0..=44 => {
                if let Some(e) = s.table.lookup(&key(k)) {
                    s.check(k, &e.value());
                    s.table.touch(e.id, now, 100);
                }
            }
            45..=64 if batch_inserts => insert_burst(s, k, now),
            45..=64 => {
                let seq = s.seq.fetch_add(1, Relaxed) as u32;
                record_insert(s, k, s.table.insert(&key(k), value_for(k, seq), now));
            }
            65..=77 => {
                if let Some(e) = s.table.remove(&key(k)) {
                    s.ledger[k as usize].fetch_sub(1, Relaxed);
                    s.check(k, &e.value());
                }
            }
            78..=89 => {
                if let Some(e) = s.table.lookup(&key(k)) {
                    let seq = s.seq.fetch_add(1, Relaxed) as u32;
                    // May fail if the flow was removed meanwhile.
                    let _ = s.table.update_value(e.id, value_for(k, seq));
                }
            }
            _ => {
                let base = k;
                for (j, bk) in batch_keys.iter_mut().enumerate() {
                    *bk = key((base + j as u32 * 7) % s.keys);
                }
                s.table.lookup_batch(&batch_keys, &mut batch_out);
                for (j, o) in batch_out.iter().enumerate() {
                    if let Some(e) = o {
                        s.check((base + j as u32 * 7) % s.keys, &e.value());
                    }
                }
            }
        }
        ops += 1;
    }
    s.ops.fetch_add(ops, Relaxed);
}

fn control(s: &Shared) {
    let timeouts = AgeingTimeouts {
        idle: u64::from(s.keys) * 4,
        tcp_closed: 0,
    };
    while !s.stop.load(Relaxed) {
        let now = s.clock.load(Relaxed);
        s.table
            .age_with(now, &timeouts, |rec| match key_index(&rec.key) {
                Some(k) if k < s.keys && rec.key == key(k) => {
                    s.ledger[k as usize].fetch_sub(1, Relaxed);
                    s.check(k, &rec.value);
                }
                _ => s.fail(format!("aged an unknown key {:?}", rec.key)),
            });
        // Dumps run concurrently too.
        for rec in s.table.iter().take(64) {
            match key_index(&rec.key) {
                Some(k) if k < s.keys && rec.key == key(k) => s.check(k, &rec.value),
                _ => s.fail(format!("iter returned an unknown key {:?}", rec.key)),
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `workers` threads (the first `batch_workers` of them inserting with
/// `insert_batch`) and the control thread for [`RUN_FOR`].
fn run(capacity: usize, keys: u32, workers: u64, batch_workers: u64) -> Shared {
    let s = Shared {
        table: FlowTable::with_capacity(capacity).unwrap(),
        keys,
        ledger: (0..keys).map(|_| AtomicI64::new(0)).collect(),
        clock: AtomicU64::new(0),
        seq: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        ops: AtomicU64::new(0),
        full: AtomicU64::new(0),
    };
    let start = Instant::now();
    std::thread::scope(|sc| {
        for w in 0..workers {
            let s = &s;
            sc.spawn(move || {
                worker(
                    s,
                    0x9E37_79B9_7F4A_7C15 ^ (w + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93),
                    w < batch_workers,
                )
            });
        }
        sc.spawn(|| control(&s));
        while start.elapsed() < RUN_FOR {
            std::thread::sleep(Duration::from_millis(10));
        }
        s.stop.store(true, Relaxed);
    });
    s
}

/// Quiescent-state checks after the threads have stopped.
fn final_check(s: &Shared) {
    let errors = s.errors.lock().unwrap();
    assert!(errors.is_empty(), "checker errors: {errors:#?}");
    let mut expected = 0usize;
    for k in 0..s.keys {
        let bal = s.ledger[k as usize].load(Relaxed);
        let present = s.table.lookup(&key(k));
        match (bal, present) {
            (0, None) => {}
            (1, Some(e)) => {
                expected += 1;
                check_value(k, &e.value()).unwrap();
            }
            (1, None) => panic!("key {k}: lost insert"),
            (0, Some(e)) => panic!("key {k}: phantom entry {e:?}"),
            (b, p) => panic!("key {k}: ledger balance {b} (duplicate insert?), present {p:?}"),
        }
    }
    let mut seen = HashSet::new();
    for rec in s.table.iter() {
        let k = key_index(&rec.key).unwrap();
        assert_eq!(rec.key, key(k));
        check_value(k, &rec.value).unwrap();
        assert!(seen.insert(k), "key {k} listed twice");
        assert_eq!(s.table.get(rec.id).map(|r| r.key), Some(rec.key));
    }
    assert_eq!(seen.len(), expected, "iter count");
    assert_eq!(s.table.len(), expected, "len");
    let st = s.table.stats();
    assert_eq!(st.inserted - st.removed, expected as u64);
    assert_eq!(st.full_table + st.full_bucket, s.full.load(Relaxed));
    assert!(s.ops.load(Relaxed) > 0);
}

#[test]
fn stress_overlapping_keys() {
    let s = run(1 << 14, 4096, 3, 0);
    final_check(&s);
    // The run must have exercised removal and ageing paths.
    let st = s.table.stats();
    assert!(st.removed > 0 && st.inserted > st.removed);
}

#[test]
fn stress_full_table() {
    // Fewer slots than keys: inserts keep hitting `Full` while others remove.
    let s = run(256, 1024, 3, 0);
    final_check(&s);
    assert!(s.full.load(Relaxed) > 0, "the table never filled up");
}

#[test]
fn stress_hot_keys() {
    // A handful of keys: maximal contention on the same buckets and slots.
    let s = run(64, 8, 4, 0);
    final_check(&s);
}

#[test]
fn stress_batch_inserts() {
    // Two threads insert bursts, one inserts key by key, all of them also
    // look up, update and remove; the control thread ages and dumps.
    let s = run(1 << 14, 4096, 3, 2);
    final_check(&s);
    let st = s.table.stats();
    assert!(st.removed > 0 && st.inserted > st.removed);
}

#[test]
fn stress_batch_inserts_full_table() {
    // Bursts that run into a full table part way through.
    let s = run(256, 1024, 3, 2);
    final_check(&s);
    assert!(s.full.load(Relaxed) > 0, "the table never filled up");
}

#[test]
fn stress_batch_inserts_hot_keys() {
    // A handful of keys: bursts full of duplicates racing with single
    // inserts and removals of the same keys.
    let s = run(64, 8, 4, 2);
    final_check(&s);
}

#[test]
fn racing_inserts_of_one_key_create_one_flow() {
    // All threads insert the same new key at once, round after round; exactly
    // one insert per key may report `New`, and the others must report it.
    const THREADS: usize = 3;
    const ROUNDS: u32 = 3000;
    let table = FlowTable::with_capacity(1 << 13).unwrap();
    let barrier = std::sync::Barrier::new(THREADS);
    let news: Vec<AtomicU64> = (0..ROUNDS).map(|_| AtomicU64::new(0)).collect();
    let ids: Vec<Mutex<HashSet<(u32, u32)>>> =
        (0..ROUNDS).map(|_| Mutex::new(HashSet::new())).collect();
    std::thread::scope(|sc| {
        for _ in 0..THREADS {
            sc.spawn(|| {
                for r in 0..ROUNDS {
                    barrier.wait();
                    let k = key(r);
                    let id = match table.insert(&k, value_for(r, 0), 0).unwrap() {
                        Insert::New(id) => {
                            news[r as usize].fetch_add(1, Relaxed);
                            id
                        }
                        Insert::Exists(e) => {
                            check_value(r, &e.value()).unwrap();
                            e.id
                        }
                    };
                    ids[r as usize]
                        .lock()
                        .unwrap()
                        .insert((id.index.0, id.generation));
                    // Keep the table from filling: every other round removes.
                    if r % 2 == 1 && r > 0 {
                        table.remove(&key(r - 1));
                    }
                }
            });
        }
    });
    for r in 0..ROUNDS {
        assert_eq!(
            news[r as usize].load(Relaxed),
            1,
            "round {r}: inserts reporting New"
        );
        assert_eq!(
            ids[r as usize].lock().unwrap().len(),
            1,
            "round {r}: different ids"
        );
    }
}

#[test]
fn racing_batch_inserts_create_one_flow_per_key() {
    // All threads insert the same burst of new keys at once, each in another
    // order (and one key twice); exactly one `New` per key, and every
    // result names that flow.
    const THREADS: usize = 3;
    const ROUNDS: u32 = 1000;
    const N: u32 = 8;
    let table = FlowTable::with_capacity(1 << 14).unwrap();
    let barrier = std::sync::Barrier::new(THREADS);
    let news: Vec<AtomicU64> = (0..ROUNDS * N).map(|_| AtomicU64::new(0)).collect();
    let ids: Vec<Mutex<HashSet<(u32, u32)>>> = (0..ROUNDS * N)
        .map(|_| Mutex::new(HashSet::new()))
        .collect();
    std::thread::scope(|sc| {
        for t in 0..THREADS as u32 {
            let (table, barrier, news, ids) = (&table, &barrier, &news, &ids);
            sc.spawn(move || {
                for r in 0..ROUNDS {
                    let mut ks: Vec<u32> = (0..N).map(|j| r * N + (j + t * 3) % N).collect();
                    ks.push(ks[t as usize]);
                    let keys: Vec<FlowKey> = ks.iter().map(|&k| key(k)).collect();
                    let values: Vec<FlowValue> = ks.iter().map(|&k| value_for(k, t)).collect();
                    let mut out = vec![Err(InsertError::Full); ks.len()];
                    barrier.wait();
                    table.insert_batch(&keys, &values, 0, &mut out);
                    for (&k, r) in ks.iter().zip(out) {
                        let id = match r.unwrap() {
                            Insert::New(id) => {
                                news[k as usize].fetch_add(1, Relaxed);
                                id
                            }
                            Insert::Exists(e) => {
                                check_value(k, &e.value()).unwrap();
                                e.id
                            }
                        };
                        ids[k as usize]
                            .lock()
                            .unwrap()
                            .insert((id.index.0, id.generation));
                    }
                }
            });
        }
    });
    for k in 0..ROUNDS * N {
        assert_eq!(
            news[k as usize].load(Relaxed),
            1,
            "key {k}: inserts reporting New"
        );
        assert_eq!(
            ids[k as usize].lock().unwrap().len(),
            1,
            "key {k}: different ids"
        );
        assert!(table.lookup(&key(k)).is_some(), "key {k}: lost");
    }
    assert_eq!(table.len(), (ROUNDS * N) as usize);
}

#[test]
fn flows_being_updated_are_always_found() {
    // A flow that is never removed must be found by every lookup, single or
    // batched, while other threads rewrite its value and counters: a reader
    // that meets a slot in the middle of a write waits for it rather than
    // reporting the flow absent.
    const KEYS: u32 = 8;
    let table = FlowTable::with_capacity(1 << 10).unwrap();
    let ids: Vec<FlowId> = (0..KEYS)
        .map(|k| table.insert(&key(k), value_for(k, 0), 0).unwrap().id())
        .collect();
    let stop = AtomicBool::new(false);
    let lookups = AtomicU64::new(0);
    let errors = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|sc| {
        let (table, ids, stop) = (&table, &ids, &stop);
        sc.spawn(move || {
            let mut seq = 1u32;
            while !stop.load(Relaxed) {
                for (k, id) in ids.iter().enumerate() {
                    table.update_value(*id, value_for(k as u32, seq)).unwrap();
                    table.touch(*id, u64::from(seq), 64);
                }
                seq = seq.wrapping_add(1);
            }
        });
        for batched in [false, true] {
            let (lookups, errors) = (&lookups, &errors);
            sc.spawn(move || {
                let keys: Vec<FlowKey> = (0..KEYS).map(key).collect();
                let mut out = [None; KEYS as usize];
                let mut n = 0u64;
                while !stop.load(Relaxed) {
                    if batched {
                        out = [None; KEYS as usize];
                        table.lookup_batch(&keys, &mut out);
                    } else {
                        for (o, k) in out.iter_mut().zip(&keys) {
                            *o = table.lookup(k);
                        }
                    }
                    for (k, o) in out.iter().enumerate() {
                        match o {
                            Some(e) => {
                                if let Err(m) = check_value(k as u32, &e.value()) {
                                    errors.lock().unwrap().push(m);
                                }
                            }
                            None => errors
                                .lock()
                                .unwrap()
                                .push(format!("key {k}: not found (batched: {batched})")),
                        }
                    }
                    n += KEYS as u64;
                }
                lookups.fetch_add(n, Relaxed);
            });
        }
        while start.elapsed() < RUN_FOR {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Relaxed);
    });
    let errors = errors.into_inner().unwrap();
    assert!(
        errors.is_empty(),
        "{} failed lookups, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert!(lookups.load(Relaxed) > 0);
}
