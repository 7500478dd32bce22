//! Forwarding-table benchmarks: LPM lookups with 1M IPv4 / 100k IPv6 routes, and
//! the route update rate of whole batches (validate + apply + new snapshot).
//!
//! Routes point at `routes::TARGETS` (4096) distinct (next-hop, label) pairs, as in a vRouter
//! where a route's label is the one of the remote interface behind its tunnel
//! next-hop; `lpm/v4_1M_routes_1M_targets_burst32` gives every route its own label
//! (the worst case for the shared target table).
//!
//! `cargo bench -p vrouter-benches --bench fib -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use vrouter_benches::routes::{
    churn, fresh_routes, target, unique_target, v4_hits, v4_routes, v6_hits, v6_routes, Rng,
};
use vrouter_dp::fib::{Lpm, LpmIndex, RouteTarget};

fn build(routes: &[(u128, u8)], v6: bool, target: fn(usize) -> RouteTarget) -> Lpm {
    build_indexed(routes, v6, target).0
}

fn build_indexed(
    routes: &[(u128, u8)],
    v6: bool,
    target: fn(usize) -> RouteTarget,
) -> (Lpm, LpmIndex) {
    let (mut lpm, mut idx) = if v6 {
        (Lpm::new_v6(), LpmIndex::new_v6())
    } else {
        (Lpm::new_v4(), LpmIndex::new_v4())
    };
    for (i, (k, l)) in routes.iter().enumerate() {
        idx.insert(&mut lpm, *k, *l, target(i)).unwrap();
    }
    (lpm, idx)
}

/// The LPM's own share of a route update: the same batches as `route_update`, applied
/// straight to the table with a snapshot (clone) published after each, without the
/// forwarding state's validation and reference counting.
fn lpm_updates(c: &mut Criterion) {
    let mut g = c.benchmark_group("lpm_update");
    g.sample_size(10);
    let mut base = v4_routes(1_000_000, 7);
    base.sort();
    base.dedup();
    let (mut lpm, mut idx) = build_indexed(&base, false, target);
    for batch in [1_000usize, 10_000, 100_000] {
        let fresh = fresh_routes(&base, batch);
        g.throughput(Throughput::Elements(2 * fresh.len() as u64));
        g.bench_function(format!("v4_add_then_delete_batch_{batch}_on_1M"), |b| {
            let mut published = lpm.clone();
            b.iter(|| {
                for (i, (k, l)) in fresh.iter().enumerate() {
                    idx.insert(&mut lpm, *k, *l, target(i)).unwrap();
                }
                published = lpm.clone();
                black_box(&published);
                for (k, l) in &fresh {
                    idx.remove(&mut lpm, *k, *l).unwrap();
                }
                published = lpm.clone();
                black_box(&published);
            })
        });
    }
    g.finish();
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("lpm");
    let routes = v4_routes(1_000_000, 7);
    let lpm = build(&routes, false, target);
    let mut rng = Rng(99);
    // Addresses inside random routes (hits), 64K of them, walked in bursts of 32.
    let ips = v4_hits(&routes, 65536, &mut rng);
    g.throughput(Throughput::Elements(32));
    let mut i = 0usize;
    let mut out = [None; 32];
    g.bench_function("v4_1M_routes_burst32", |b| {
        b.iter(|| {
            i = (i + 32) & 0xffff;
            lpm.lookup_v4_batch(black_box(&ips[i..i + 32]), &mut out);
            black_box(&out);
        })
    });
    drop(lpm);
    let lpm = build(&routes, false, unique_target);
    g.bench_function("v4_1M_routes_1M_targets_burst32", |b| {
        b.iter(|| {
            i = (i + 32) & 0xffff;
            lpm.lookup_v4_batch(black_box(&ips[i..i + 32]), &mut out);
            black_box(&out);
        })
    });
    drop(lpm);
    let routes6 = v6_routes(100_000, 11);
    let lpm6 = build(&routes6, true, target);
    let ips6 = v6_hits(&routes6, 65536, &mut rng);
    let mut j = 0usize;
    g.bench_function("v6_100k_routes_burst32", |b| {
        b.iter(|| {
            j = (j + 32) & 0xffff;
            lpm6.lookup_v6_batch(black_box(&ips6[j..j + 32]), &mut out);
            black_box(&out);
        })
    });
    g.finish();
}

fn updates(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_update");
    g.sample_size(10);
    // A table generated from 1M routes (526k distinct).
    let (mut fib, base) = churn::setup(1_000_000);
    for batch in [1_000usize, 10_000, 100_000] {
        let fresh = fresh_routes(&base, batch);
        let adds = churn::adds(&fresh);
        let dels = churn::dels(&fresh);
        g.throughput(Throughput::Elements(2 * fresh.len() as u64));
        g.bench_function(format!("v4_add_then_delete_batch_{batch}_on_1M"), |b| {
            // The last published version stays alive, as the workers hold it. The
            // one before is free by the next batch (the workers have moved on), so
            // each batch edits that one in place after replaying the last batch.
            let mut published = fib.snapshot();
            b.iter_batched(
                || (),
                |()| {
                    published = fib.apply(&adds).unwrap();
                    black_box(&published);
                    published = fib.apply(&dels).unwrap();
                    black_box(&published);
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function(
            format!("v4_add_then_delete_batch_{batch}_on_1M_previous_held"),
            |b| {
                // The version before the last one is still held too (a worker has
                // not moved on yet): each batch edits a copy of the current
                // version, and every chunk it writes is copied once.
                let mut published = [fib.snapshot(), fib.snapshot()];
                b.iter_batched(
                    || (),
                    |()| {
                        let [_, last] = &published;
                        published = [last.clone(), fib.apply(&adds).unwrap()];
                        black_box(&published);
                        let [_, last] = &published;
                        published = [last.clone(), fib.apply(&dels).unwrap()];
                        black_box(&published);
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(benches, lookups, updates, lpm_updates);
criterion_main!(benches);
