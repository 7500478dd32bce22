//! Unit tests of the public API (single-threaded behaviour).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::*;

fn vrf(n: u32) -> VrfId {
    VrfId::new(n).unwrap()
}

fn k4(i: u32) -> FlowKey {
    FlowKey::v4(
        vrf(i % 7),
        Ipv4Addr::from(0x0A00_0000 | i),
        Ipv4Addr::new(192, 168, 1, 1),
        PROTO_UDP,
        (i & 0xFFFF) as u16,
        53,
    )
}

fn k6(i: u32) -> FlowKey {
    let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (i >> 16) as u16, i as u16);
    FlowKey::v6(vrf(3), src, Ipv6Addr::LOCALHOST, PROTO_TCP, 1000, 443)
}

fn fwd(nh: u32) -> FlowValue {
    FlowValue::new(FlowAction::Forward {
        nexthop: NexthopId(nh),
    })
}

fn new_id(r: Result<Insert, InsertError>) -> FlowId {
    match r.unwrap() {
        Insert::New(id) => id,
        Insert::Exists(e) => panic!("unexpected existing entry {e:?}"),
    }
}

#[test]
fn capacity_is_validated() {
    for bad in [0, 1, 2, 3, 6, 1000, MAX_CAPACITY * 2] {
        assert!(matches!(
            FlowTable::with_capacity(bad),
            Err(CreateError::InvalidCapacity(c)) if c == bad
        ));
    }
    let t = FlowTable::with_capacity(MIN_CAPACITY).unwrap();
    assert_eq!(t.capacity(), MIN_CAPACITY);
    assert!(t.is_empty());
}

#[test]
fn memory_per_flow_and_backing() {
    let t = FlowTable::with_capacity(DEFAULT_CAPACITY).unwrap();
    assert!(
        t.memory_bytes() <= 128 * DEFAULT_CAPACITY,
        "{} bytes for {} flows",
        t.memory_bytes(),
        DEFAULT_CAPACITY
    );
    assert!(matches!(
        t.backing(),
        Backing::HugePages2M | Backing::NormalPages { .. }
    ));
    let cfg = FlowTableConfig {
        capacity: 1024,
        hugepages: false,
        file: None,
    };
    let t = FlowTable::new(&cfg).unwrap();
    assert_eq!(
        t.backing(),
        &Backing::NormalPages {
            transparent_hugepages: false
        }
    );
    assert_eq!(t.backing().to_string(), "normal pages");
    assert_eq!(t.stats().memory_bytes, t.memory_bytes());
    // A small table asking for hugepages gets normal pages all the same,
    // and stays within 128 bytes per flow; from 16k flows up, rounding to
    // whole hugepages adds at most a sixteenth.
    let small = FlowTable::with_capacity(1024).unwrap();
    assert_eq!(
        small.backing(),
        &Backing::NormalPages {
            transparent_hugepages: false
        }
    );
    assert_eq!(small.memory_bytes(), 128 * 1024);
    for (flows, suits) in [(1 << 13, false), (1 << 14, true), (1 << 20, true)] {
        let len = crate::layout::Layout::new(flows).len;
        assert_eq!(crate::memory::hugepages_suit(len), suits, "{flows} flows");
    }
    // How the data plane's startup line names each backing.
    let shown = [
        (Backing::HugePages2M, "2 MiB hugepages"),
        (
            Backing::NormalPages {
                transparent_hugepages: true,
            },
            "normal pages (transparent hugepages advised)",
        ),
        (
            Backing::File {
                path: "/dev/hugepages/flows".into(),
                hugetlbfs: true,
            },
            "file /dev/hugepages/flows (hugetlbfs)",
        ),
        (
            Backing::File {
                path: "/var/run/flows".into(),
                hugetlbfs: false,
            },
            "file /var/run/flows",
        ),
    ];
    for (b, s) in shown {
        assert_eq!(b.to_string(), s);
    }
}

#[test]
fn insert_lookup_v4_and_v6() {
    let t = FlowTable::with_capacity(1024).unwrap();
    let id4 = new_id(t.insert(&k4(1), fwd(11), 5));
    let id6 = new_id(t.insert(&k6(1), fwd(12), 5));
    assert_ne!(id4.index, id6.index);
    let e4 = t.lookup(&k4(1)).unwrap();
    assert_eq!((e4.id, e4.value()), (id4, fwd(11)));
    let e6 = t.lookup(&k6(1)).unwrap();
    assert_eq!((e6.id, e6.value()), (id6, fwd(12)));
    assert_eq!(t.lookup(&k4(2)), None);
    assert_eq!(t.lookup(&k6(2)), None);
    assert_eq!(t.len(), 2);
    // The IPv4 flow and the IPv6 flow with mapped addresses are different.
    let mapped = FlowKey::v6(
        k4(1).vrf(),
        Ipv4Addr::from(0x0A00_0001).to_ipv6_mapped(),
        Ipv4Addr::new(192, 168, 1, 1).to_ipv6_mapped(),
        PROTO_UDP,
        1,
        53,
    );
    assert_eq!(t.lookup(&mapped), None);
}

#[test]
fn insert_existing_returns_the_existing_entry() {
    let t = FlowTable::with_capacity(64).unwrap();
    let id = new_id(t.insert(&k4(9), fwd(1), 0));
    match t.insert(&k4(9), fwd(2), 0).unwrap() {
        Insert::Exists(e) => {
            assert_eq!(e.id, id);
            assert_eq!(e.value(), fwd(1));
        }
        Insert::New(_) => panic!("duplicate insert"),
    }
    assert_eq!(t.len(), 1);
    assert_eq!(t.lookup(&k4(9)).unwrap().value(), fwd(1));
}

#[test]
fn lookup_batch_mixes_hits_and_misses() {
    let t = FlowTable::with_capacity(4096).unwrap();
    for i in 0..1000 {
        t.insert(&k4(i), fwd(i), 0).unwrap();
    }
    let keys: Vec<FlowKey> = (0..100).map(|i| k4(i * 20)).collect();
    let mut out = vec![None; keys.len()];
    let hits = t.lookup_batch(&keys, &mut out);
    assert_eq!(hits, 50);
    for (i, o) in out.iter().enumerate() {
        let n = i as u32 * 20;
        if n < 1000 {
            assert_eq!(o.unwrap().value(), fwd(n));
        } else {
            assert_eq!(*o, None);
        }
    }
    // A shorter output slice limits the work.
    let mut short = vec![None; 10];
    assert_eq!(t.lookup_batch(&keys, &mut short), 10);
    // Caller-supplied hashes.
    let hashes: Vec<FlowHash> = keys.iter().map(|k| t.hash(k)).collect();
    let mut out2 = vec![None; keys.len()];
    assert_eq!(t.lookup_batch_with_hash(&keys, &hashes, &mut out2), 50);
    assert_eq!(out, out2);
    // The shortest of keys, hashes and output bounds the work, across
    // bursts; entries past it are left as they were.
    let marker = Some(FlowEntry::new(
        FlowId {
            index: FlowIndex(u32::MAX),
            generation: 0,
        },
        fwd(u32::MAX),
    ));
    for (nh, no) in [(45, 100), (100, 45), (32, 33), (0, 100)] {
        let mut out3 = vec![marker; no];
        let n = nh.min(no);
        let want = (0..n).filter(|&i| i * 20 < 1000).count();
        assert_eq!(
            t.lookup_batch_with_hash(&keys, &hashes[..nh], &mut out3),
            want,
            "{nh} hashes, {no} outputs"
        );
        assert_eq!(out3[..n], out[..n]);
        assert!(out3[n..].iter().all(|o| *o == marker));
    }
}

/// Every burst length, from empty to past two bursts, answers as single
/// lookups do.
#[test]
fn lookup_batch_matches_single_lookups_at_every_length() {
    let t = FlowTable::with_capacity(1024).unwrap();
    for i in 0..300 {
        t.insert(&k4(i * 3), fwd(i), 0).unwrap();
    }
    let keys: Vec<FlowKey> = (0..2 * BATCH as u32 + 1).map(|i| k4(i * 7)).collect();
    for len in 0..=keys.len() {
        let mut out = vec![None; len];
        let hits = t.lookup_batch(&keys[..len], &mut out);
        let want: Vec<Option<FlowEntry>> = keys[..len].iter().map(|k| t.lookup(k)).collect();
        assert_eq!(out, want, "burst of {len}");
        assert_eq!(hits, want.iter().flatten().count(), "burst of {len}");
    }
}

/// Inserts `keys` one by one into `t` (what `insert_batch` must match).
fn insert_each(
    t: &FlowTable,
    keys: &[FlowKey],
    values: &[FlowValue],
) -> Vec<Result<Insert, InsertError>> {
    keys.iter()
        .zip(values)
        .map(|(k, v)| t.insert(k, *v, 7))
        .collect()
}

/// A result `insert_batch` never produces, to see which outputs it wrote.
const UNTOUCHED: Result<Insert, InsertError> = Ok(Insert::New(FlowId {
    index: FlowIndex(u32::MAX),
    generation: u32::MAX,
}));

#[test]
fn insert_batch_new_and_existing_keys_match_single_inserts() {
    // Two tables with the same history: one gets the burst by
    // `insert_batch`, the other key by key. Slot allocation is
    // deterministic on one thread, so even the ids must agree.
    let a = FlowTable::with_capacity(4096).unwrap();
    let b = FlowTable::with_capacity(4096).unwrap();
    for i in 0..50 {
        a.insert(&k4(i), fwd(i), 0).unwrap();
        b.insert(&k4(i), fwd(i), 0).unwrap();
    }
    let removed = |i: u32| i % 3 == 0 && i < 30;
    for i in (0..50).filter(|&i| removed(i)) {
        a.remove(&k4(i)).unwrap();
        b.remove(&k4(i)).unwrap();
    }
    // 100 keys (more than one burst): 25..50 are present, except the removed
    // ones, which are new again, like 50..125.
    let keys: Vec<FlowKey> = (25..125).map(k4).collect();
    let values: Vec<FlowValue> = (25..125).map(|i| fwd(1000 + i)).collect();
    let mut out = vec![UNTOUCHED; keys.len()];
    let added = a.insert_batch(&keys, &values, 7, &mut out);
    let want = insert_each(&b, &keys, &values);
    assert_eq!(out, want);
    let new = (25..125).filter(|&i| i >= 50 || removed(i)).count();
    assert_eq!(added, new);
    assert_eq!(
        out.iter()
            .filter(|r| matches!(r, Ok(Insert::New(_))))
            .count(),
        new
    );
    for (i, r) in (25..125).zip(&out) {
        let e = a.lookup(&k4(i)).unwrap();
        match r {
            Ok(Insert::New(id)) => {
                assert!(i >= 50 || removed(i), "key {i} was present");
                assert_eq!((e.id, e.value()), (*id, fwd(1000 + i)));
                assert_eq!(a.counters(*id).unwrap().last_seen, 7);
            }
            Ok(Insert::Exists(x)) => {
                assert!(i < 50 && !removed(i), "key {i} was absent");
                assert_eq!(*x, e);
                assert_eq!(e.value(), fwd(i), "an existing flow keeps its value");
            }
            Err(err) => panic!("key {i}: {err}"),
        }
    }
    assert_eq!(a.len(), b.len());
    assert_eq!(a.stats(), b.stats());
}

#[test]
fn insert_batch_duplicates_within_the_burst() {
    let t = FlowTable::with_capacity(256).unwrap();
    let keys = [k4(1), k6(1), k4(1), k4(2), k6(1), k4(1)];
    let values: Vec<FlowValue> = (0..keys.len() as u32).map(fwd).collect();
    let mut out = [UNTOUCHED; 6];
    assert_eq!(t.insert_batch(&keys, &values, 0, &mut out), 3);
    let first = |j: usize| match out[j] {
        Ok(Insert::New(id)) => id,
        r => panic!("output {j}: {r:?}"),
    };
    let (id41, id61, id42) = (first(0), first(1), first(3));
    for (j, id, v) in [(2, id41, 0), (4, id61, 1), (5, id41, 0)] {
        match out[j] {
            Ok(Insert::Exists(e)) => assert_eq!((e.id, e.value()), (id, fwd(v)), "output {j}"),
            r => panic!("output {j}: {r:?}"),
        }
    }
    assert_eq!(t.lookup(&k4(2)).unwrap().id, id42);
    assert_eq!(t.len(), 3);
    assert_eq!(t.stats().inserted, 3);
}

#[test]
fn insert_batch_full_table_mid_burst() {
    let t = FlowTable::with_capacity(4).unwrap();
    let id0 = new_id(t.insert(&k4(0), fwd(0), 0));
    // Three slots left: k10, k11, k12 get them; k0 is reported both times;
    // k13 and k14 find the table full.
    let keys = [k4(10), k4(11), k4(0), k6(12), k4(13), k4(0), k6(14)];
    let values: Vec<FlowValue> = (0..keys.len() as u32).map(fwd).collect();
    let mut out = [UNTOUCHED; 7];
    assert_eq!(t.insert_batch(&keys, &values, 0, &mut out), 3);
    for j in [0, 1, 3] {
        assert!(
            matches!(out[j], Ok(Insert::New(_))),
            "output {j}: {:?}",
            out[j]
        );
    }
    for j in [2, 5] {
        assert!(
            matches!(out[j], Ok(Insert::Exists(e)) if e.id == id0),
            "output {j}: {:?}",
            out[j]
        );
    }
    assert_eq!(out[4], Err(InsertError::Full));
    assert_eq!(out[6], Err(InsertError::Full));
    assert_eq!(t.stats().full_table, 2);
    assert_eq!(t.len(), 4);
    assert_eq!(t.lookup(&k4(13)), None);
    assert_eq!(t.lookup(&k6(14)), None);
    // The same on a larger table, against single inserts, with bucket
    // overflow as well: 40 slots for 90 keys, some repeated.
    let a = FlowTable::with_capacity(64).unwrap();
    let b = FlowTable::with_capacity(64).unwrap();
    for i in 0..24 {
        a.insert(&k6(i), fwd(i), 0).unwrap();
        b.insert(&k6(i), fwd(i), 0).unwrap();
    }
    let keys: Vec<FlowKey> = (0..90)
        .map(|i| if i % 4 == 0 { k6(i / 2) } else { k4(i % 70) })
        .collect();
    let values: Vec<FlowValue> = (0..90).map(fwd).collect();
    let mut out = vec![UNTOUCHED; keys.len()];
    let added = a.insert_batch(&keys, &values, 7, &mut out);
    assert_eq!(out, insert_each(&b, &keys, &values));
    assert_eq!(added, 40);
    assert_eq!(a.len(), 64);
    assert_eq!(a.stats(), b.stats());
    assert!(a.stats().full_table > 0);
}

#[test]
fn insert_batch_shortest_slice_bounds_the_work() {
    let keys: Vec<FlowKey> = (0..70)
        .map(|i| if i % 2 == 0 { k4(i) } else { k6(i) })
        .collect();
    let values: Vec<FlowValue> = (0..70).map(fwd).collect();
    // (keys, hashes, values, outputs): the shortest bounds the work, across
    // bursts; outputs past it are left as they were.
    for (nk, nh, nv, no) in [
        (70, 70, 70, 10),
        (70, 70, 45, 70),
        (33, 70, 70, 70),
        (70, 32, 70, 64),
        (70, 70, 70, 0),
        (0, 70, 70, 70),
    ] {
        for with_hash in [false, true] {
            let t = FlowTable::with_capacity(256).unwrap();
            let hashes: Vec<FlowHash> = keys.iter().map(|k| t.hash(k)).collect();
            let mut out = vec![UNTOUCHED; no];
            let n = if with_hash {
                nk.min(nh).min(nv).min(no)
            } else {
                nk.min(nv).min(no)
            };
            let added = if with_hash {
                t.insert_batch_with_hash(&keys[..nk], &hashes[..nh], &values[..nv], 0, &mut out)
            } else {
                t.insert_batch(&keys[..nk], &values[..nv], 0, &mut out)
            };
            let case = format!("{nk} keys, {nh} hashes, {nv} values, {no} outputs, {with_hash}");
            assert_eq!(added, n, "{case}");
            assert_eq!(t.len(), n, "{case}");
            for (j, k) in keys.iter().enumerate() {
                let e = t.lookup(k);
                if j < n {
                    assert_eq!(out[j], Ok(Insert::New(e.unwrap().id)), "{case}: key {j}");
                    assert_eq!(e.unwrap().value(), fwd(j as u32), "{case}: key {j}");
                } else {
                    assert_eq!(e, None, "{case}: key {j}");
                }
            }
            assert!(out[n..].iter().all(|o| *o == UNTOUCHED), "{case}");
        }
    }
}

#[test]
fn insert_batch_with_rss_hashes() {
    let t = FlowTable::with_capacity(1024).unwrap();
    let keys: Vec<FlowKey> = (0..40)
        .map(|i| if i < 20 { k4(i) } else { k6(i) })
        .collect();
    let hashes: Vec<FlowHash> = (0..40)
        .map(|i| FlowHash::from_rss(0xBEEF_0000 + i))
        .collect();
    let values: Vec<FlowValue> = (0..40).map(fwd).collect();
    let mut out = vec![UNTOUCHED; 40];
    assert_eq!(
        t.insert_batch_with_hash(&keys, &hashes, &values, 3, &mut out),
        40
    );
    for (j, ((k, h), r)) in keys.iter().zip(&hashes).zip(&out).enumerate() {
        let e = t.lookup_with_hash(k, *h).unwrap();
        assert_eq!(*r, Ok(Insert::New(e.id)), "key {j}");
        assert_eq!(e.value(), fwd(j as u32));
    }
    // A second burst of the same keys finds them all.
    let mut again = vec![UNTOUCHED; 40];
    assert_eq!(
        t.insert_batch_with_hash(&keys, &hashes, &values, 3, &mut again),
        0
    );
    for (r, a) in out.iter().zip(&again) {
        assert!(matches!((r, a), (Ok(Insert::New(id)), Ok(Insert::Exists(e))) if e.id == *id));
    }
    assert_eq!(t.len(), 40);
}

#[test]
fn rss_hash_operations() {
    let t = FlowTable::with_capacity(256).unwrap();
    let h = FlowHash::from_rss(0x1234_5678);
    assert_ne!(h, FlowHash::from_rss(0x1234_5679));
    let id = new_id(t.insert_with_hash(&k4(5), h, fwd(5), 0));
    assert_eq!(t.lookup_with_hash(&k4(5), h).unwrap().id, id);
    let mut out = [None];
    assert_eq!(t.lookup_batch_with_hash(&[k4(5)], &[h], &mut out), 1);
    assert_eq!(t.remove_with_hash(&k4(5), h).unwrap().id, id);
    assert_eq!(t.lookup_with_hash(&k4(5), h), None);
    assert!(t.is_empty());
}

#[test]
fn colliding_keys_probe_on_and_come_back() {
    let t = FlowTable::with_capacity(1024).unwrap();
    let h = FlowHash(0xABCD_0000_0000_0042);
    let mut ids = Vec::new();
    // Alternately in the key's two groups (the emptier one first, the
    // first on a tie) until both are full, then in the group after the
    // second.
    for i in 0..20 {
        ids.push(new_id(t.insert_with_hash(&k4(i), h, fwd(i), 0)));
    }
    let group = |id: FlowId| id.index.0 as usize / 7;
    let (g1, g2) = (group(ids[0]), group(ids[1]));
    assert_ne!(g1, g2);
    for (i, id) in ids.iter().enumerate() {
        let want = match i {
            0..=13 if i % 2 == 0 => g1,
            0..=13 => g2,
            _ => g2 + 1,
        };
        assert_eq!(group(*id), want, "key {i}");
    }
    assert_eq!(t.flows_beyond(), 6);
    assert_eq!(t.overflow_total(), 6);
    for i in 0..20 {
        let e = t.lookup_with_hash(&k4(i), h).unwrap();
        assert_eq!((e.id, e.value()), (ids[i as usize], fwd(i)));
        let mut out = [None];
        assert_eq!(t.lookup_batch_with_hash(&[k4(i)], &[h], &mut out), 1);
        assert_eq!(out[0], Some(e));
    }
    assert_eq!(t.lookup_with_hash(&k4(99), h), None);
    // Free a slot of the first group: the next insert goes there.
    t.remove_with_hash(&k4(0), h).unwrap();
    let id = new_id(t.insert_with_hash(&k4(99), h, fwd(99), 0));
    assert_eq!(id.index, ids[0].index);
    // Remove the keys past the two groups, and some in them: the counts
    // they raised fall back to 0 and lookups of the rest still work.
    for i in 7..20 {
        assert_eq!(t.remove_with_hash(&k4(i), h).unwrap().value(), fwd(i));
    }
    assert_eq!(t.flows_beyond(), 0);
    assert_eq!(t.overflow_total(), 0);
    for i in 1..7 {
        assert_eq!(t.lookup_with_hash(&k4(i), h).unwrap().value(), fwd(i));
    }
    assert_eq!(t.lookup_with_hash(&k4(99), h).unwrap().value(), fwd(99));
    assert_eq!(t.lookup_with_hash(&k4(12), h), None);
    assert_eq!(t.len(), 7);
    t.check_quiescent().unwrap();
}

/// Single and batch lookups of `k` with hash `h`, which must agree.
fn both_lookups(t: &FlowTable, k: &FlowKey, h: FlowHash) -> Option<FlowEntry> {
    let single = t.lookup_with_hash(k, h);
    let mut out = [None];
    t.lookup_batch_with_hash(&[*k], &[h], &mut out);
    assert_eq!(out[0], single, "batch and single lookups of {k:?}");
    single
}

#[test]
fn lookups_whose_first_candidate_is_a_tag_twin() {
    // Keys of one hash share groups and tag: each is the others' twin, so
    // every lookup below meets one first, and must look further or not:
    // the answer depends on the other bytes of the two groups and on the
    // second group's count.
    let t = FlowTable::with_capacity(1024).unwrap();
    let h = FlowHash(0xABCD_0000_0000_0042);
    let a = new_id(t.insert_with_hash(&k4(1), h, fwd(1), 0));
    // Alone in the two groups: another key of the hash is absent.
    assert_eq!(both_lookups(&t, &k4(2), h), None);
    // A second twin, in the second group: a key there is found past the
    // first group's twin; another is still absent.
    let b = new_id(t.insert_with_hash(&k4(2), h, fwd(2), 0));
    assert_ne!(a.index.0 / 7, b.index.0 / 7);
    assert_eq!(both_lookups(&t, &k4(2), h).unwrap().id, b);
    assert_eq!(both_lookups(&t, &k4(3), h), None);
    // The first one gone, the second group's is the candidate again.
    t.remove_with_hash(&k4(1), h).unwrap();
    assert_eq!(both_lookups(&t, &k4(1), h), None);
    assert_eq!(both_lookups(&t, &k4(2), h).unwrap().id, b);
    t.remove_with_hash(&k4(2), h).unwrap();

    // A twin alone in the two groups, and the key past them (the two
    // groups full of keys with another tag): found through the second
    // group's count.
    let other = FlowHash(h.0 | 0x55 << 24);
    new_id(t.insert_with_hash(&k4(10), h, fwd(10), 0));
    for i in 11..24 {
        new_id(t.insert_with_hash(&k4(i), other, fwd(i), 0));
    }
    let past = new_id(t.insert_with_hash(&k4(24), h, fwd(24), 0));
    assert_eq!(t.flows_beyond(), 1);
    assert_eq!(both_lookups(&t, &k4(24), h).unwrap().id, past);
    assert_eq!(both_lookups(&t, &k4(25), h), None);
    for i in 10..24 {
        let hi = if i == 10 { h } else { other };
        assert_eq!(both_lookups(&t, &k4(i), hi).unwrap().value(), fwd(i));
    }
    t.check_quiescent().unwrap();
}

#[test]
fn a_probe_longer_than_the_longest_is_refused() {
    // One hash whose two groups are apart: 256 groups' worth of keys (the
    // first group, the second and the 254 after it) fill its longest
    // probe; the next key of that hash is refused, nothing else changes.
    let t = FlowTable::with_capacity(4096).unwrap();
    let h = FlowHash(0x1234_5678_9ABC_DEF0);
    let n = 256 * 7;
    for i in 0..n {
        new_id(t.insert_with_hash(&k4(i), h, fwd(i), 0));
    }
    assert_eq!(
        t.insert_with_hash(&k4(n), h, fwd(n), 0),
        Err(InsertError::Full)
    );
    let st = t.stats();
    assert_eq!((st.full_bucket, st.full_table, st.len), (1, 0, n as usize));
    // Position `j` (1..=255) of the probe was passed by the keys at the
    // positions after it, its count stopping (sticky) at 255.
    let counts = (1..256u64).map(|j| (7 * (255 - j)).min(255));
    assert_eq!(t.overflow_total(), counts.sum::<u64>());
    // Other hashes still insert; every flow is still found.
    new_id(t.insert(&k6(1), fwd(1), 0));
    for i in (0..n).step_by(41) {
        assert_eq!(t.lookup_with_hash(&k4(i), h).unwrap().value(), fwd(i));
    }
    assert_eq!(t.lookup_with_hash(&k4(n), h), None);
    t.check_quiescent().unwrap();
}

#[test]
fn tag_collisions_in_one_bucket_compare_full_keys() {
    // Same hash = same bucket and tag: only the key tells them apart.
    let t = FlowTable::with_capacity(64).unwrap();
    let h = FlowHash(7);
    t.insert_with_hash(&k4(1), h, fwd(1), 0).unwrap();
    t.insert_with_hash(&k6(1), h, fwd(2), 0).unwrap();
    assert_eq!(t.lookup_with_hash(&k4(1), h).unwrap().value(), fwd(1));
    assert_eq!(t.lookup_with_hash(&k6(1), h).unwrap().value(), fwd(2));
    assert_eq!(t.lookup_with_hash(&k4(2), h), None);
}

#[test]
fn full_table_reports_full_and_recovers() {
    let t = FlowTable::with_capacity(4).unwrap();
    let ids: Vec<FlowId> = (0..4)
        .map(|i| new_id(t.insert(&k4(i), fwd(i), 0)))
        .collect();
    assert_eq!(t.insert(&k4(10), fwd(10), 0), Err(InsertError::Full));
    assert_eq!(t.insert(&k4(11), fwd(11), 0), Err(InsertError::Full));
    assert_eq!(t.stats().full_table, 2);
    assert_eq!(t.len(), 4);
    // An existing key is still reported, not refused.
    assert!(matches!(t.insert(&k4(2), fwd(0), 0), Ok(Insert::Exists(_))));
    for i in 0..4 {
        assert_eq!(t.lookup(&k4(i)).unwrap().id, ids[i as usize]);
    }
    t.remove(&k4(1)).unwrap();
    let id = new_id(t.insert(&k4(10), fwd(10), 0));
    assert_eq!(id.index, ids[1].index, "the freed slot is reused");
    assert_ne!(id.generation, ids[1].generation);
    assert_eq!(t.len(), 4);
    // Refused and existing keys count as neither inserted nor held.
    let st = t.stats();
    assert_eq!((st.len, st.inserted, st.removed), (4, 5, 1));
}

#[test]
fn reused_slot_is_never_the_old_flow() {
    let t = FlowTable::with_capacity(4).unwrap();
    let old = new_id(t.insert(&k4(1), fwd(1), 0));
    t.touch(old, 1, 100);
    assert_eq!(t.remove(&k4(1)).unwrap().id, old);
    let new = new_id(t.insert(&k4(2), fwd(2), 3));
    assert_eq!(new.index, old.index);
    assert_eq!(t.lookup(&k4(1)), None);
    assert_eq!(t.get(old), None);
    assert_eq!(t.counters(old), None);
    assert!(!t.touch(old, 9, 1));
    assert_eq!(t.update_value(old, fwd(9)), Err(FlowError::NotFound));
    assert_eq!(t.remove_id(old), None);
    // The new flow's counters start from zero.
    assert_eq!(
        t.counters(new),
        Some(FlowCounters {
            packets: 0,
            bytes: 0,
            last_seen: 3
        })
    );
    assert_eq!(t.lookup(&k4(2)).unwrap().value(), fwd(2));
}

#[test]
fn updates() {
    let t = FlowTable::with_capacity(64).unwrap();
    let id = new_id(t.insert(&k4(1), FlowValue::new(FlowAction::Hold), 0));
    let nat = FlowAction::Nat {
        nexthop: NexthopId(4),
        rewrite: NatRef(8),
    };
    assert_eq!(t.update_action(&k4(1), nat), Ok(id));
    assert_eq!(t.lookup(&k4(1)).unwrap().value().action, nat);
    t.set_tcp_state(id, TcpState::Established).unwrap();
    t.set_reverse(id, Some(FlowIndex(3))).unwrap();
    let v = t.lookup(&k4(1)).unwrap().value();
    assert_eq!(v.action, nat);
    assert_eq!(v.tcp_state, TcpState::Established);
    assert_eq!(v.reverse, Some(FlowIndex(3)));
    let full = FlowValue {
        action: FlowAction::Mirror {
            nexthop: NexthopId(1),
            mirror: MirrorId(2),
        },
        reverse: None,
        flags: FlowFlags::AGENT,
        tcp_state: TcpState::Closed,
    };
    t.update_value(id, full).unwrap();
    assert_eq!(t.lookup(&k4(1)).unwrap().value(), full);
    assert_eq!(t.update_action(&k4(2), nat), Err(FlowError::NotFound));
    let bogus = FlowId {
        index: FlowIndex(1 << 30),
        generation: 0,
    };
    assert_eq!(
        t.set_tcp_state(bogus, TcpState::None),
        Err(FlowError::NotFound)
    );
    assert_eq!(t.get(bogus), None);
    assert!(!t.touch(bogus, 0, 0));
}

#[test]
fn touch_and_counters() {
    let t = FlowTable::with_capacity(64).unwrap();
    let id = new_id(t.insert(&k4(1), fwd(1), 10));
    for i in 0..5u64 {
        assert!(t.touch(id, 20 + i, 100 + i));
    }
    assert_eq!(
        t.counters(id),
        Some(FlowCounters {
            packets: 5,
            bytes: 510,
            last_seen: 24
        })
    );
    // Several packets in one update.
    assert!(t.touch_n(id, 30, 3, 192));
    assert_eq!(
        t.counters(id),
        Some(FlowCounters {
            packets: 8,
            bytes: 702,
            last_seen: 30
        })
    );
    assert!(t.touch_n(id, 31, 0, 0));
    assert_eq!(
        t.counters(id).map(|c| (c.packets, c.last_seen)),
        Some((8, 31))
    );
    let rec = t.get(id).unwrap();
    assert_eq!(rec.key, k4(1));
    assert_eq!(rec.counters.packets, 8);
}

#[test]
fn prefetch_counters_changes_nothing() {
    let t = FlowTable::with_capacity(64).unwrap();
    let ids: Vec<FlowId> = (0..40)
        .map(|i| new_id(t.insert(&k4(i), fwd(i), 7)))
        .collect();
    assert!(t.touch(ids[3], 9, 64));
    let before: Vec<_> = ids.iter().map(|&id| t.counters(id)).collect();
    // Every counter block (some straddle two lines), a removed flow, and
    // indices beyond the capacity.
    let gone = ids[5];
    assert!(t.remove(&k4(5)).is_some());
    for &id in &ids {
        t.prefetch_counters(id);
    }
    for index in [63, 64, 1 << 20, u32::MAX] {
        t.prefetch_counters(FlowId {
            index: FlowIndex(index),
            generation: 0,
        });
    }
    for (i, (&id, b)) in ids.iter().zip(&before).enumerate() {
        if id == gone {
            assert_eq!(t.counters(id), None);
        } else {
            assert_eq!(t.counters(id), *b, "flow {i}");
        }
    }
    assert_eq!(
        t.counters(ids[3]).map(|c| (c.packets, c.bytes)),
        Some((1, 64))
    );
    let mut out = [None; 40];
    let keys: Vec<FlowKey> = (0..40).map(k4).collect();
    assert_eq!(t.lookup_batch(&keys, &mut out), 39);
    assert_eq!(t.counters(ids[3]).map(|c| c.packets), Some(1));
}

#[test]
fn prefetch_insert_changes_nothing() {
    let t = FlowTable::with_capacity(64).unwrap();
    let ids: Vec<FlowId> = (0..64)
        .map(|i| new_id(t.insert(&k4(i), fwd(i), 7)))
        .collect();
    // Present keys, absent keys, a full table, any hash (RSS hashes too).
    for i in 0..200 {
        t.prefetch_insert(t.hash(&k4(i)));
        t.prefetch_insert(FlowHash::from_rss(i.wrapping_mul(0x9E37_79B9)));
    }
    t.prefetch_insert(FlowHash::from_rss(u32::MAX));
    assert_eq!(t.len(), 64);
    t.check_quiescent().unwrap();
    for (i, id) in ids.iter().enumerate() {
        let e = t.lookup(&k4(i as u32)).unwrap();
        assert_eq!((e.id, e.value()), (*id, fwd(i as u32)));
    }
    assert_eq!(t.insert(&k4(64), fwd(0), 0), Err(InsertError::Full));
    // With room again, an insert after its prefetch lands as any other.
    t.remove(&k4(9)).unwrap();
    let h = t.hash(&k4(64));
    t.prefetch_insert(h);
    let id = new_id(t.insert_with_hash(&k4(64), h, fwd(64), 0));
    assert_eq!(t.lookup(&k4(64)).map(|e| e.id), Some(id));
    t.check_quiescent().unwrap();
}

#[test]
fn remove_and_remove_id() {
    let t = FlowTable::with_capacity(64).unwrap();
    let a = new_id(t.insert(&k4(1), fwd(1), 0));
    let b = new_id(t.insert(&k6(1), fwd(2), 0));
    assert_eq!(t.remove(&k4(1)).unwrap().id, a);
    assert_eq!(t.remove(&k4(1)), None);
    let rec = t.remove_id(b).unwrap();
    assert_eq!((rec.key, rec.value), (k6(1), fwd(2)));
    assert_eq!(t.remove_id(b), None);
    assert!(t.is_empty());
    let s = t.stats();
    assert_eq!((s.inserted, s.removed, s.len), (2, 2, 0));
}

#[test]
fn ageing_removes_idle_and_closed_flows() {
    let t = FlowTable::with_capacity(64).unwrap();
    let idle = new_id(t.insert(&k4(1), fwd(1), 0));
    let active = new_id(t.insert(&k4(2), fwd(2), 0));
    let closed = new_id(t.insert(&k4(3), fwd(3), 0));
    let recent = new_id(t.insert(&k4(4), fwd(4), 95));
    t.touch(active, 90, 1);
    t.touch(closed, 80, 1);
    t.set_tcp_state(closed, TcpState::Closed).unwrap();
    let timeouts = AgeingTimeouts {
        idle: 60,
        tcp_closed: 10,
    };
    let mut aged = Vec::new();
    let n = t.age_with(100, &timeouts, |r| aged.push(r.key));
    assert_eq!(n, 2);
    aged.sort_by_key(|k| k.src_port());
    assert_eq!(aged, vec![k4(1), k4(3)]);
    assert_eq!(t.get(idle), None);
    assert_eq!(t.get(closed), None);
    assert!(t.get(active).is_some());
    assert!(t.get(recent).is_some());
    assert_eq!(t.stats().aged, 2);
    assert_eq!(t.len(), 2);
    // Nothing else is old enough.
    assert_eq!(t.age(100, &timeouts), 0);
    assert_eq!(t.age(1000, &timeouts), 2);
    assert!(t.is_empty());
}

#[test]
fn iter_dumps_every_flow_once() {
    let t = FlowTable::with_capacity(1024).unwrap();
    for i in 0..300 {
        t.insert(&k4(i), fwd(i), u64::from(i)).unwrap();
    }
    for i in 0..100 {
        t.remove(&k4(i * 3));
    }
    let mut seen: Vec<u32> = t
        .iter()
        .map(|r| {
            let FlowAction::Forward { nexthop } = r.value.action else {
                panic!("unexpected action")
            };
            assert_eq!(r.key, k4(nexthop.0));
            assert_eq!(r.counters.last_seen, u64::from(nexthop.0));
            assert_eq!(t.get(r.id).unwrap().key, r.key);
            nexthop.0
        })
        .collect();
    seen.sort_unstable();
    let expected: Vec<u32> = (0..300).filter(|i| i % 3 != 0).collect();
    assert_eq!(seen, expected);
    assert_eq!(t.len(), 200);
}

/// The capacity count is striped per thread: a flow reserved on one
/// thread's stripe and removed by another's leaves the first stripe high
/// and the second below 0. Whatever the mix, exactly `capacity` flows fit.
#[test]
fn capacity_is_exact_across_threads_and_stripes() {
    use std::sync::Barrier;
    const CAP: usize = 1 << 10;
    const THREADS: u32 = 6;
    let t = FlowTable::with_capacity(CAP).unwrap();
    // Several threads race to fill it: exactly CAP succeed.
    let barrier = Barrier::new(THREADS as usize);
    let added: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|th| {
                let (t, barrier) = (&t, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    (0..CAP as u32)
                        .filter(|i| t.insert(&k4(th << 20 | i), fwd(*i), 0).is_ok())
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(added, CAP);
    assert_eq!(t.len(), CAP);
    assert_eq!(
        t.stats().full_table,
        u64::from(THREADS) * CAP as u64 - CAP as u64
    );
    t.check_quiescent().unwrap();
    // Another thread empties it: its stripe goes far below 0, the others
    // stay at their shares.
    let flows: Vec<FlowRecord> = t.iter().collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            for f in &flows {
                t.remove_id(f.id).unwrap();
            }
        });
    });
    assert_eq!(t.len(), 0);
    t.check_quiescent().unwrap();
    // This thread fills it again alone (moving from stripe to stripe):
    // CAP fit and the next is refused.
    for i in 0..CAP as u32 {
        new_id(t.insert(&k4(1 << 30 | i), fwd(i), 0));
    }
    assert_eq!(
        t.insert(&k4(1 << 30 | CAP as u32), fwd(0), 0),
        Err(InsertError::Full)
    );
    assert_eq!(t.len(), CAP);
    t.check_quiescent().unwrap();
}

#[test]
fn fill_to_capacity() {
    let cap = 1 << 16;
    let t = FlowTable::with_capacity(cap).unwrap();
    let mut full = 0;
    for i in 0..cap as u32 {
        if t.insert(&k4(i), fwd(i), 0).is_err() {
            full += 1;
        }
    }
    assert_eq!(full, 0, "bucket overflow before capacity");
    assert_eq!(t.len(), cap);
    for i in (0..cap as u32).step_by(97) {
        assert_eq!(t.lookup(&k4(i)).unwrap().value(), fwd(i));
    }
    assert_eq!(t.insert(&k4(cap as u32), fwd(0), 0), Err(InsertError::Full));
}

#[test]
fn hash_is_deterministic() {
    let a = FlowTable::with_capacity(64).unwrap();
    let b = FlowTable::with_capacity(1024).unwrap();
    assert_eq!(a.hash(&k4(1)), b.hash(&k4(1)));
    assert_ne!(a.hash(&k4(1)), a.hash(&k4(2)));
}

#[test]
fn file_backed_table_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows");
    let cfg = FlowTableConfig {
        capacity: 256,
        hugepages: false,
        file: Some(path.clone()),
    };
    let t = FlowTable::new(&cfg).unwrap();
    assert!(matches!(
        t.backing(),
        Backing::File {
            hugetlbfs: false,
            ..
        }
    ));
    for i in 0..50 {
        t.insert(&k4(i), fwd(i), 1).unwrap();
    }
    let id = t.lookup(&k4(7)).unwrap().id;
    t.touch(id, 2, 64);
    // A reader in the same (or another) process sees the live table.
    let r = FlowTableReader::open(&path).unwrap();
    assert_eq!(r.capacity(), 256);
    assert_eq!(r.len(), 50);
    assert_eq!(r.lookup(&k4(7)).unwrap().value(), fwd(7));
    assert_eq!(r.get(id).unwrap().counters.bytes, 64);
    assert_eq!(r.iter().count(), 50);
    t.insert(&k4(100), fwd(100), 1).unwrap();
    assert_eq!(r.lookup(&k4(100)).unwrap().value(), fwd(100));
    assert_eq!(r.stats().inserted, 51);
    drop(r);
    drop(t);
    // A restarted owner maps it read-write and carries on.
    let t = FlowTable::open(&path).unwrap();
    assert_eq!(t.len(), 51);
    assert_eq!(t.lookup(&k4(7)).unwrap().value(), fwd(7));
    t.remove(&k4(7)).unwrap();
    for i in 200..400 {
        t.insert(&k4(i), fwd(i), 1).unwrap();
    }
    assert_eq!(t.len(), 250);
    assert_eq!(t.iter().count(), 250);
}

#[test]
fn open_rejects_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, [0u8; 100]).unwrap();
    assert!(matches!(
        FlowTableReader::open(&short),
        Err(OpenError::Truncated { .. })
    ));
    let zero = dir.path().join("zero");
    std::fs::write(&zero, vec![0u8; 8192]).unwrap();
    assert!(matches!(
        FlowTableReader::open(&zero),
        Err(OpenError::BadMagic(0))
    ));
    assert!(matches!(
        FlowTableReader::open(&dir.path().join("missing")),
        Err(OpenError::Io { .. })
    ));
    // A valid header whose layout does not fit the file.
    let path = dir.path().join("cut");
    let cfg = FlowTableConfig {
        capacity: 1 << 16,
        hugepages: false,
        file: Some(path.clone()),
    };
    drop(FlowTable::new(&cfg).unwrap());
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(8192).unwrap();
    assert!(matches!(
        FlowTableReader::open(&path),
        Err(OpenError::Truncated { .. })
    ));
}

/// A file of another layout version (version 1 hashed keys with ahash, so
/// its flows sit in other buckets) and a file whose seeds no longer give its
/// recorded hash check are refused, by the owner and by a reader.
#[test]
fn open_rejects_other_versions_and_hashes() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    let patch = |path: &std::path::Path, offset: u64, value: u64| {
        let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(&value.to_le_bytes()).unwrap();
    };
    let make = |name: &str| {
        let path = dir.path().join(name);
        let cfg = FlowTableConfig {
            capacity: 1 << 10,
            hugepages: false,
            file: Some(path.clone()),
        };
        let t = FlowTable::new(&cfg).unwrap();
        t.insert(&k4(1), fwd(1), 1).unwrap();
        drop(t);
        path
    };
    // Header words: magic, format, capacity, buckets, seeds[4], hash check.
    let old = make("v1");
    patch(&old, 8, 1);
    assert!(matches!(
        FlowTable::open(&old),
        Err(OpenError::UnsupportedVersion(1))
    ));
    assert!(matches!(
        FlowTableReader::open(&old),
        Err(OpenError::UnsupportedVersion(1))
    ));
    let seeds = make("seeds");
    patch(&seeds, 32, 0x0123_4567_89ab_cdef);
    assert!(matches!(
        FlowTable::open(&seeds),
        Err(OpenError::HashMismatch)
    ));
    assert!(matches!(
        FlowTableReader::open(&seeds),
        Err(OpenError::HashMismatch)
    ));
    // Untouched, the same file opens and finds its flow.
    let good = make("good");
    assert_eq!(
        FlowTable::open(&good)
            .unwrap()
            .lookup(&k4(1))
            .unwrap()
            .value(),
        fwd(1)
    );
}

#[test]
fn error_messages() {
    assert_eq!(InsertError::Full.to_string(), "flow table is full");
    assert_eq!(FlowError::NotFound.to_string(), "flow not found");
    assert_eq!(
        KeyError::VrfOutOfRange(1 << 24).to_string(),
        format!("vrf id {} is out of range (max {})", 1 << 24, VrfId::MAX)
    );
}

/// xorshift64: a fixed sequence, so a failure reproduces.
fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[test]
fn churn_at_capacity_keeps_counts_exact() {
    // Random inserts and removes around a full table, by key, by id and by
    // ageing: afterwards every count is what the live flows imply, and
    // every flow is found. Twice: with the table's hash, and with hashes
    // crowded into half of the groups (bit 63 and bit 23 cleared), so that
    // many flows live past their two groups.
    for crowded in [false, true] {
        let t = FlowTable::with_capacity(1 << 12).unwrap();
        let mask = if crowded {
            !(1u64 << 63 | 1 << 23)
        } else {
            u64::MAX
        };
        let h = |k: u32| FlowHash(t.hash(&k4(k)).0 & mask);
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        let mut present = std::collections::HashMap::new();
        let mut full = 0;
        for round in 0..200_000u64 {
            let k = (next() % 8000) as u32;
            match next() % 8 {
                0..=4 => match t.insert_with_hash(&k4(k), h(k), fwd(k), round) {
                    Ok(Insert::New(id)) => {
                        assert!(present.insert(k, id).is_none(), "key {k} twice")
                    }
                    Ok(Insert::Exists(e)) => assert_eq!(present.get(&k), Some(&e.id)),
                    Err(InsertError::Full) => {
                        assert!(!present.contains_key(&k));
                        full += 1;
                    }
                },
                5 | 6 => assert_eq!(
                    t.remove_with_hash(&k4(k), h(k)).map(|e| e.id),
                    present.remove(&k)
                ),
                _ => {
                    if let Some(id) = present.remove(&k) {
                        assert_eq!(t.remove_id(id).map(|r| r.key), Some(k4(k)));
                    }
                }
            }
            if round % 50_000 == 49_999 {
                let timeouts = AgeingTimeouts {
                    idle: 20_000,
                    tcp_closed: 0,
                };
                assert!(t.age(round, &timeouts) > 0);
                present.retain(|_, id| t.get(*id).is_some());
                t.check_quiescent().unwrap();
            }
        }
        t.check_quiescent().unwrap();
        assert!(full > 0, "the table never filled up");
        // Past their two groups: a few flows with the table's hash, many
        // with the crowded one (the counts this test checks).
        let beyond = t.flows_beyond();
        assert!(
            beyond > if crowded { 500 } else { 0 },
            "{beyond} flows past their groups"
        );
        assert_eq!(t.len(), present.len());
        for (k, id) in &present {
            assert_eq!(t.lookup_with_hash(&k4(*k), h(*k)).map(|e| e.id), Some(*id));
        }
    }
}

#[test]
fn concurrent_churn_leaves_counts_exact() {
    // Four threads insert and remove overlapping keys of a small, mostly
    // full table, their hashes crowded into half of the groups so that
    // many flows go past their two groups; once the threads stop, the
    // control words must be consistent and every key present once.
    let t = FlowTable::with_capacity(1 << 9).unwrap();
    let h = |k: u32| FlowHash(t.hash(&k4(k)).0 & !(1u64 << 63 | 1 << 23));
    std::thread::scope(|s| {
        for seed in 1..=4u64 {
            let (t, h) = (&t, &h);
            s.spawn(move || {
                let mut next = xorshift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                for _ in 0..100_000 {
                    let k = (next() % 700) as u32;
                    if next() % 3 == 0 {
                        t.remove_with_hash(&k4(k), h(k));
                    } else {
                        let _ = t.insert_with_hash(&k4(k), h(k), fwd(k), 0);
                    }
                }
            });
        }
    });
    t.check_quiescent().unwrap();
    assert!(
        t.flows_beyond() > 20,
        "{} flows past their groups",
        t.flows_beyond()
    );
    let mut keys = std::collections::HashSet::new();
    for rec in t.iter() {
        let std::net::IpAddr::V4(src) = rec.key.src() else {
            panic!("not a k4 key: {:?}", rec.key);
        };
        let k = u32::from(src) & 0xFF_FFFF;
        assert!(keys.insert(k), "key {k} listed twice");
        assert_eq!(
            t.lookup_with_hash(&rec.key, h(k)).map(|e| e.id),
            Some(rec.id)
        );
    }
    assert_eq!(keys.len(), t.len());
}
