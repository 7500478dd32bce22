//! The forwarding tables' LPM against DPDK's `rte_fib` (DIR-24-8, IPv4) and
//! `rte_fib6` (trie, IPv6) on the same routes and addresses, in the same process:
//! 1M IPv4 routes and 100k IPv6 routes (benches/src/routes.rs), lookups of 64K
//! addresses inside them walked in bursts of 32. DPDK's tables live in EAL
//! hugepage memory; ours on the heap (set `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`
//! for transparent hugepages there, as the container image does). Needs root and
//! 1 GiB of free 2 MiB hugepages (`scripts/setup-host.sh`).
//!
//! `cargo bench -p vrouter-benches --bench fib_dpdk -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vrouter_benches::routes::{mask, v4_hits, v4_routes, v6_hits, v6_routes, Rng};
use vrouter_dp::dpdk::fib::{DpdkFib4, DpdkFib6};
use vrouter_dp::dpdk::Eal;
use vrouter_dp::fib::{Lpm, LpmIndex, NhId, RouteTarget};

/// Both tables with `routes` (next-hop 1 + i mod 1000), later duplicates replacing
/// earlier ones in both.
fn ours(routes: &[(u128, u8)], v6: bool) -> (Lpm, LpmIndex) {
    let (mut lpm, mut idx) = if v6 {
        (Lpm::new_v6(), LpmIndex::new_v6())
    } else {
        (Lpm::new_v4(), LpmIndex::new_v4())
    };
    for (i, (k, l)) in routes.iter().enumerate() {
        let t = RouteTarget {
            nh: NhId(1 + (i % 1000) as u32),
            label: None,
        };
        if let Err(e) = idx.insert(&mut lpm, *k, *l, t) {
            panic!("insert: {e:?}");
        }
    }
    (lpm, idx)
}

/// The 256-entry groups an 8-bit-stride trie below a 24-bit top needs for
/// `routes`: one per distinct (prefix, depth) a route longer than the depth passes.
fn trie_groups(routes: &[(u128, u8)]) -> u32 {
    let mut nodes = std::collections::HashSet::new();
    for &(k, l) in routes {
        let mut d = 24u32;
        while d < u32::from(l) {
            nodes.insert((k & mask(d, 128), d));
            d += 8;
        }
    }
    u32::try_from(nodes.len()).unwrap_or(u32::MAX)
}

fn compare(c: &mut Criterion) {
    if let Err(e) = Eal::init([
        "fib_dpdk",
        "-l",
        "0",
        "--in-memory",
        "--no-pci",
        "--no-telemetry",
        "--socket-mem",
        "1024",
        "--log-level",
        "lib.eal:error",
    ]) {
        panic!("EAL init (needs root and 1 GiB of 2 MiB hugepages: scripts/setup-host.sh): {e}");
    }
    let mut g = c.benchmark_group("lpm_vs_dpdk");
    g.throughput(Throughput::Elements(32));
    let mut rng = Rng(99);

    let routes = v4_routes(1_000_000, 7);
    let (lpm, idx) = ours(&routes, false);
    let groups = u32::try_from(lpm.groups()).unwrap_or(u32::MAX);
    let mut fib = DpdkFib4::new("bench4", 1 << 21, groups + groups / 4 + 1024)
        .unwrap_or_else(|e| panic!("{e}"));
    for (k, l, t) in idx.iter() {
        fib.add(k as u32, l, t.nh.0)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let ips = v4_hits(&routes, 65536, &mut rng);
    let mut out = [None; 32];
    let mut nhs = [0u64; 32];
    // Both must agree before their speeds mean anything.
    for w in ips.chunks(32).take(64) {
        lpm.lookup_v4_batch(w, &mut out);
        fib.lookup_bulk(w, &mut nhs);
        for (o, n) in out.iter().zip(nhs.iter()) {
            assert_eq!(o.map_or(0, |t| u64::from(t.nh.0)), *n, "lookups disagree");
        }
    }
    let mut i = 0usize;
    g.bench_function("ours_v4_1M_routes_burst32", |b| {
        b.iter(|| {
            i = (i + 32) & 0xffff;
            lpm.lookup_v4_batch(black_box(&ips[i..i + 32]), &mut out);
            black_box(&out);
        })
    });
    g.bench_function("rte_fib_v4_1M_routes_burst32", |b| {
        b.iter(|| {
            i = (i + 32) & 0xffff;
            fib.lookup_bulk(black_box(&ips[i..i + 32]), &mut nhs);
            black_box(&nhs);
        })
    });
    drop(fib);
    drop((lpm, idx));

    let routes6 = v6_routes(100_000, 11);
    let (lpm6, idx6) = ours(&routes6, true);
    let groups = trie_groups(&routes6);
    // The trie's RIB counts intermediate nodes against `max_routes`: room for both.
    let mut fib6 =
        DpdkFib6::new("bench6", 1 << 20, 2 * groups + 4096).unwrap_or_else(|e| panic!("{e}"));
    for (k, l, t) in idx6.iter() {
        fib6.add(&k.to_be_bytes(), l, t.nh.0)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let ips6 = v6_hits(&routes6, 65536, &mut rng);
    let bytes6: Vec<[u8; 16]> = ips6.iter().map(|a| a.to_be_bytes()).collect();
    for (w, bw) in ips6.chunks(32).zip(bytes6.chunks(32)).take(64) {
        lpm6.lookup_v6_batch(w, &mut out);
        fib6.lookup_bulk(bw, &mut nhs);
        for (o, n) in out.iter().zip(nhs.iter()) {
            assert_eq!(o.map_or(0, |t| u64::from(t.nh.0)), *n, "lookups disagree");
        }
    }
    let mut j = 0usize;
    g.bench_function("ours_v6_100k_routes_burst32", |b| {
        b.iter(|| {
            j = (j + 32) & 0xffff;
            lpm6.lookup_v6_batch(black_box(&ips6[j..j + 32]), &mut out);
            black_box(&out);
        })
    });
    g.bench_function("rte_fib6_v6_100k_routes_burst32", |b| {
        b.iter(|| {
            j = (j + 32) & 0xffff;
            fib6.lookup_bulk(black_box(&bytes6[j..j + 32]), &mut nhs);
            black_box(&nhs);
        })
    });
    g.finish();
}

criterion_group!(benches, compare);
criterion_main!(benches);
