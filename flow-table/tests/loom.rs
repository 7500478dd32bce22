//! loom model of the slot publish / remove / reuse protocol.
//!
//! Run with (see the crate README):
//! `RUSTFLAGS="--cfg loom" cargo test -p flow-table --release --test loom`
//!
//! Tables have capacity 4 (one group of seven slots), so removes are
//! usually followed by reuse of the same slot with a new generation; the
//! models of displaced keys use capacity 16 (four groups) and fill a home
//! group before their threads start.

#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;

use flow_table::*;
use loom::sync::Arc;
use loom::thread;

fn key(i: u32) -> FlowKey {
    FlowKey::v4(
        VrfId::new(1).unwrap(),
        Ipv4Addr::from(i),
        Ipv4Addr::new(10, 0, 0, 1),
        PROTO_UDP,
        1,
        2,
    )
}

fn val(nh: u32, tag: u32) -> FlowValue {
    FlowValue {
        action: FlowAction::Nat {
            nexthop: NexthopId(nh),
            rewrite: NatRef(tag),
        },
        reverse: Some(FlowIndex(nh ^ tag)),
        flags: FlowFlags::EMPTY,
        tcp_state: TcpState::None,
    }
}

/// A value read for key `k` must be a whole value written for `k`.
fn check(k: u32, v: &FlowValue) {
    let FlowAction::Nat { nexthop, rewrite } = v.action else {
        panic!("key {k}: bad action {v:?}");
    };
    assert_eq!(nexthop.0, k, "value of another flow reported for key {k}");
    assert_eq!(
        v.reverse,
        Some(FlowIndex(k ^ rewrite.0)),
        "torn value {v:?}"
    );
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_bounded(4, f)
}

/// Runs `f` under loom with at most `bound` preemptions per execution
/// (unless `LOOM_MAX_PREEMPTIONS` says otherwise), and checks that more than
/// one execution was explored.
fn model_bounded(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(bound);
    }
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    b.check(move || {
        r.fetch_add(1, Ordering::Relaxed);
        f()
    });
    let runs = runs.load(Ordering::Relaxed);
    eprintln!("explored {runs} executions");
    assert!(runs > 1, "the model explored a single execution");
}

/// After two inserts of key 1 (hash `hash`) with results `a` and `b`:
/// exactly one created the flow, both name it, the table holds `len` flows
/// with key 1 among them once, and a lookup finds it with a whole value.
fn one_flow_of_key_1(t: &FlowTable, hash: FlowHash, a: Insert, b: Insert, len: usize) {
    let news = [a, b]
        .iter()
        .filter(|r| matches!(r, Insert::New(_)))
        .count();
    assert_eq!(news, 1, "{a:?} {b:?}");
    assert_eq!(a.id(), b.id());
    assert_eq!(t.len(), len);
    assert_eq!(t.iter().filter(|r| r.key == key(1)).count(), 1);
    let e = t.lookup_with_hash(&key(1), hash).unwrap();
    assert_eq!(e.id, a.id());
    check(1, &e.value());
}

fn table() -> Arc<FlowTable> {
    Arc::new(FlowTable::with_capacity(4).unwrap())
}

#[test]
fn racing_inserts_of_one_key() {
    model(|| {
        let t = table();
        let t2 = t.clone();
        let h = thread::spawn(move || t2.insert(&key(1), val(1, 1), 0).unwrap());
        let a = t.insert(&key(1), val(1, 2), 0).unwrap();
        let b = h.join().unwrap();
        one_flow_of_key_1(&t, t.hash(&key(1)), a, b, 1);
    });
}

// Note: every model starts its threads right after creating the table and
// every thread writes to the table: loom only interleaves threads around
// conflicting writes, so a thread doing nothing but loads (or work done
// before the spawn) leaves a single execution, which `model` rejects.

#[test]
fn lookup_during_remove_and_reuse() {
    // Three inserts and a remove: the largest model, kept at two preemptions.
    model_bounded(2, || {
        let t = table();
        let t2 = t.clone();
        // Insert a flow, remove it and reuse its slot for another key.
        let h = thread::spawn(move || {
            let old = t2.insert(&key(1), val(1, 1), 0).unwrap().id();
            t2.remove(&key(1)).unwrap();
            let new = t2.insert(&key(2), val(2, 2), 0).unwrap().id();
            if new.index == old.index {
                assert_ne!(new.generation, old.generation);
            }
            (old, new)
        });
        // Writes of the reader thread too (an insert of an unrelated key)
        // make loom interleave the two threads' accesses.
        t.insert(&key(3), val(3, 3), 0).unwrap();
        let seen1 = t.lookup(&key(1));
        if let Some(e) = seen1 {
            check(1, &e.value());
        }
        if let Some(e) = t.lookup(&key(2)) {
            check(2, &e.value());
        }
        let (old, new) = h.join().unwrap();
        if let Some(e) = seen1 {
            assert_eq!(e.id, old, "the old flow under a new generation");
        }
        assert_eq!(t.lookup(&key(1)), None);
        assert_eq!(t.lookup(&key(2)).map(|e| e.id), Some(new));
        assert_eq!(t.get(old), None);
    });
}

#[test]
fn lookup_while_a_tag_twin_ahead_of_it_is_removed() {
    // Two flows with one hash (so one bucket and one tag): the first takes
    // the bucket's first entry, the second the next. Removing the first
    // while the second is looked up must not hide the second: a lookup whose
    // first tag match vanishes under it searches the bucket again.
    const H: FlowHash = FlowHash(0x5EED_0000_0000_0000);
    model(|| {
        let t = table();
        let t2 = t.clone();
        t.insert_with_hash(&key(1), H, val(1, 1), 0).unwrap();
        let twin = t.insert_with_hash(&key(2), H, val(2, 2), 0).unwrap();
        let h = thread::spawn(move || {
            t2.remove_with_hash(&key(1), H).unwrap();
        });
        t.insert(&key(3), val(3, 3), 0).unwrap();
        let seen = t.lookup_with_hash(&key(2), H);
        assert_eq!(
            seen.map(|e| e.id),
            Some(twin.id()),
            "a present flow was not found"
        );
        check(2, &seen.unwrap().value());
        let mut out = [None];
        t.lookup_batch_with_hash(&[key(2)], &[H], &mut out);
        assert_eq!(
            out[0].map(|e| e.id),
            Some(twin.id()),
            "not found by a batch"
        );
        h.join().unwrap();
    });
}

#[test]
fn lookup_during_update() {
    model(|| {
        let t = table();
        let t2 = t.clone();
        let h = thread::spawn(move || {
            let id = t2.insert(&key(1), val(1, 1), 0).unwrap().id();
            t2.update_value(id, val(1, 2)).unwrap();
        });
        t.insert(&key(3), val(3, 3), 0).unwrap();
        if let Some(e) = t.lookup(&key(1)) {
            check(1, &e.value());
        }
        h.join().unwrap();
        assert_eq!(t.lookup(&key(1)).unwrap().value(), val(1, 2));
    });
}

#[test]
fn insert_races_remove_of_same_key() {
    model(|| {
        let t = table();
        let t2 = t.clone();
        let h = thread::spawn(move || {
            let first = t2.insert(&key(1), val(1, 1), 0).unwrap();
            let removed = t2.remove(&key(1));
            (first, removed)
        });
        let r = t.insert(&key(1), val(1, 2), 0).unwrap();
        let (first, removed) = h.join().unwrap();
        // Whatever the interleaving, exactly one flow was created or both
        // inserts saw the same one, and the remove took one flow out.
        let removed = removed.expect("the key was present for the remove");
        check(1, &removed.value());
        let present = t.lookup(&key(1));
        let news: Vec<FlowId> = [first, r]
            .iter()
            .filter_map(|x| match x {
                Insert::New(id) => Some(*id),
                Insert::Exists(_) => None,
            })
            .collect();
        assert!(!news.is_empty() && news.len() <= 2);
        assert_eq!(t.len(), news.len() - 1);
        match present {
            Some(e) => {
                assert_eq!(news.len(), 2);
                assert!(news.contains(&e.id) && e.id != removed.id);
            }
            None => assert_eq!(news.len(), 1),
        }
    });
}

#[test]
fn three_thread_insert_remove_lookup() {
    model(|| {
        let t = table();
        let t2 = t.clone();
        let t3 = t.clone();
        let a = thread::spawn(move || t2.insert(&key(1), val(1, 1), 0).unwrap());
        let b = thread::spawn(move || {
            if let Some(e) = t3.lookup(&key(1)) {
                check(1, &e.value());
            }
        });
        let r = t.insert(&key(2), val(2, 2), 0).unwrap();
        let ra = a.join().unwrap();
        b.join().unwrap();
        assert!(matches!(r, Insert::New(_)));
        assert!(matches!(ra, Insert::New(_)));
        assert_ne!(r.id().index, ra.id().index);
        assert_eq!(t.len(), 2);
    });
}

#[test]
fn batch_insert_races_single_insert_of_same_key() {
    // A burst holding the key twice against a single insert of it: one
    // flow, and every result names it.
    model(|| {
        let t = table();
        let t2 = t.clone();
        let h = thread::spawn(move || {
            let mut out = [Err(InsertError::Full); 2];
            t2.insert_batch(&[key(1), key(1)], &[val(1, 1), val(1, 2)], 0, &mut out);
            out.map(|r| r.unwrap())
        });
        let a = t.insert(&key(1), val(1, 3), 0).unwrap();
        let [b, c] = h.join().unwrap();
        let news = [a, b, c]
            .iter()
            .filter(|r| matches!(r, Insert::New(_)))
            .count();
        assert_eq!(news, 1, "{a:?} {b:?} {c:?}");
        assert!(matches!(c, Insert::Exists(_)), "{c:?}");
        assert_eq!(a.id(), b.id());
        assert_eq!(b.id(), c.id());
        assert_eq!(t.len(), 1);
        let e = t.lookup(&key(1)).unwrap();
        assert_eq!(e.id, a.id());
        check(1, &e.value());
    });
}

/// A hash whose two groups are both group 0 of any table.
const HOME0: FlowHash = FlowHash(0x0000_0000_5A00_0000);

/// The hash of filler key `i`: both groups 0, tag `i` (distinct from
/// [`HOME0`]'s, so that lookups of the keys under test read no filler).
fn home0_filler(i: u32) -> FlowHash {
    FlowHash(u64::from(i & 0x7F) << 24)
}

/// A table of four groups whose group 0 holds `n` flows whose groups are 0
/// (keys 100..100 + n, hashes [`home0_filler`]), inserted before any
/// thread starts.
fn table_with_home_filled(n: u32) -> Arc<FlowTable> {
    let t = Arc::new(FlowTable::with_capacity(16).unwrap());
    for i in 100..100 + n {
        t.insert_with_hash(&key(i), home0_filler(i), val(i, i), 0)
            .unwrap();
    }
    t
}

#[test]
fn racing_inserts_of_one_key_across_groups() {
    // One free slot left in the key's group: one insert takes it, the other
    // probes on to the next group (raising group 0's count). Still
    // exactly one flow, and both inserts report it.
    model(|| {
        let t = table_with_home_filled(6);
        let t2 = t.clone();
        let h = thread::spawn(move || t2.insert_with_hash(&key(1), HOME0, val(1, 1), 0).unwrap());
        let a = t.insert_with_hash(&key(1), HOME0, val(1, 2), 0).unwrap();
        let b = h.join().unwrap();
        one_flow_of_key_1(&t, HOME0, a, b, 7);
    });
}

#[test]
fn displaced_flow_found_while_its_home_group_changes() {
    // Key 1 lives in the group after its full group 0. One thread frees
    // a home slot and another key of the same hash takes it, while the
    // main thread looks key 1 up: it must be found every time, and the
    // counts must end as the flows left imply.
    model_bounded(2, || {
        let t = table_with_home_filled(7);
        let displaced = t.insert_with_hash(&key(1), HOME0, val(1, 1), 0).unwrap();
        let t2 = t.clone();
        let h = thread::spawn(move || {
            t2.remove_with_hash(&key(100), home0_filler(100)).unwrap();
            t2.insert_with_hash(&key(2), HOME0, val(2, 2), 0).unwrap()
        });
        t.insert(&key(3), val(3, 3), 0).unwrap();
        let seen = t.lookup_with_hash(&key(1), HOME0);
        assert_eq!(
            seen.map(|e| e.id),
            Some(displaced.id()),
            "a displaced flow was lost"
        );
        check(1, &seen.unwrap().value());
        h.join().unwrap();
        t.remove_with_hash(&key(1), HOME0).unwrap();
        check(2, &t.lookup_with_hash(&key(2), HOME0).unwrap().value());
        for i in [101, 106] {
            check(
                i,
                &t.lookup_with_hash(&key(i), home0_filler(i))
                    .unwrap()
                    .value(),
            );
        }
        assert_eq!(t.lookup_with_hash(&key(1), HOME0), None);
        assert_eq!(t.len(), 9 - 1);
    });
}

#[test]
fn insert_into_a_freed_home_slot_races_a_displaced_insert_of_one_key() {
    // Group 0 is full. The main thread's insert of key 1 may find
    // it full and go on to the next group; the other thread frees a home
    // slot and inserts key 1 there. Whichever order, one flow: an insert in
    // group 0 must look past it while group 0's count says a
    // key went on.
    model(|| {
        let t = table_with_home_filled(7);
        let t2 = t.clone();
        let h = thread::spawn(move || {
            t2.remove_with_hash(&key(100), home0_filler(100)).unwrap();
            t2.insert_with_hash(&key(1), HOME0, val(1, 1), 0).unwrap()
        });
        let a = t.insert_with_hash(&key(1), HOME0, val(1, 2), 0).unwrap();
        let b = h.join().unwrap();
        one_flow_of_key_1(&t, HOME0, a, b, 7);
    });
}

/// Key 1's hash in a four-group table: first group 0, second group 2.
const SPLIT: FlowHash = FlowHash(0x0000_0000_5A80_0000);

/// The hash of filler key `i` living in group 2 only (both its groups).
fn group2_filler(i: u32) -> FlowHash {
    FlowHash(0x8000_0000_0080_0000 | (u64::from(i & 0x3F) << 24))
}

#[test]
fn racing_inserts_of_one_key_choosing_different_groups() {
    // Key 1 may live in group 0 or group 2, whichever had more free slots
    // when its insert looked. Group 0 starts with one flow, so the main
    // thread's insert picks group 2, unless the other thread's two flows
    // went into group 2 first; that thread's own insert of key 1 then
    // picks group 0. Still one flow, and both inserts report it.
    model(|| {
        let t = Arc::new(FlowTable::with_capacity(16).unwrap());
        t.insert_with_hash(&key(100), home0_filler(100), val(100, 100), 0)
            .unwrap();
        let t2 = t.clone();
        let h = thread::spawn(move || {
            for i in [200, 201] {
                t2.insert_with_hash(&key(i), group2_filler(i), val(i, i), 0)
                    .unwrap();
            }
            t2.insert_with_hash(&key(1), SPLIT, val(1, 1), 0).unwrap()
        });
        let a = t.insert_with_hash(&key(1), SPLIT, val(1, 2), 0).unwrap();
        let b = h.join().unwrap();
        one_flow_of_key_1(&t, SPLIT, a, b, 4);
    });
}
