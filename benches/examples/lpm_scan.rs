//! LPM lookup time against the number of routes: where a table falls out of the
//! caches, and what a lookup costs when it does not. Builds tables of the
//! benchmark's route shapes (`routes::v4_routes` / `v6_routes`, the bench's 4096
//! targets) and times bursts of 32 batched lookups of random addresses inside them.
//!
//! ```sh
//! cargo run --release -p vrouter-benches --example lpm_scan -- v4|v4-unique|v6 [ROUTES...]
//! ```
//!
//! `v4-unique` gives every IPv4 route its own target (label), the worst case for
//! the target table, as the bench's `lpm/v4_1M_routes_1M_targets_burst32`.

use std::hint::black_box;
use std::time::Instant;

use vrouter_benches::routes::{target, unique_target, v4_hits, v4_routes, v6_hits, v6_routes, Rng};
use vrouter_dp::fib::{Lpm, LpmIndex};

fn main() {
    let mut args = std::env::args().skip(1);
    let (v6, unique) = match args.next().as_deref() {
        Some("v4") => (false, false),
        Some("v4-unique") => (false, true),
        Some("v6") => (true, false),
        _ => panic!("usage: lpm_scan v4|v4-unique|v6 [ROUTES...]"),
    };
    let sizes: Vec<usize> = args.map(|a| a.parse().expect("route count")).collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 30_000, 100_000, 400_000]
    } else {
        sizes
    };
    for n in sizes {
        let routes = if v6 {
            v6_routes(n, 11)
        } else {
            v4_routes(n, 7)
        };
        let (mut lpm, mut idx) = if v6 {
            (Lpm::new_v6(), LpmIndex::new_v6())
        } else {
            (Lpm::new_v4(), LpmIndex::new_v4())
        };
        for (i, (k, l)) in routes.iter().enumerate() {
            let t = if unique { unique_target(i) } else { target(i) };
            idx.insert(&mut lpm, *k, *l, t).expect("insert");
        }
        let mut rng = Rng(7);
        let ips6 = if v6 {
            v6_hits(&routes, 1 << 16, &mut rng)
        } else {
            Vec::new()
        };
        let ips4 = if v6 {
            Vec::new()
        } else {
            v4_hits(&routes, 1 << 16, &mut rng)
        };
        let mut out = [None; 32];
        let rounds = 20_000usize;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t0 = Instant::now();
            for r in 0..rounds {
                let j = (r * 32) & ((1 << 16) - 1);
                if v6 {
                    lpm.lookup_v6_batch(black_box(&ips6[j..j + 32]), &mut out);
                } else {
                    lpm.lookup_v4_batch(black_box(&ips4[j..j + 32]), &mut out);
                }
                black_box(&out);
            }
            best = best.min(t0.elapsed().as_nanos() as f64 / (rounds * 32) as f64);
        }
        println!(
            "{n:>8} routes ({} distinct): {best:6.1} ns/lookup (best of 5), {} tbl8 groups, {} KiB of IPv6 buckets",
            idx.len(),
            lpm.groups(),
            lpm.prefix_buckets() * 64 / 1024
        );
    }
}
