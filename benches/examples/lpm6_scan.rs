//! IPv6 LPM lookup time against the number of routes: where the table falls out of
//! the caches. Builds tables of the benchmark's route shape (`routes::v6_routes`)
//! with 1k to 400k routes and times bursts of 32 batched lookups of random
//! addresses inside them.
//!
//! ```sh
//! cargo run --release -p vrouter-benches --example lpm6_scan -- [ROUTES...]
//! ```

use std::hint::black_box;
use std::time::Instant;

use vrouter_benches::routes::{v6_hits, v6_routes, Rng};
use vrouter_dp::fib::{Lpm, LpmIndex, NhId, RouteTarget};

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("route count"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 30_000, 100_000, 400_000]
    } else {
        sizes
    };
    for n in sizes {
        let routes = v6_routes(n, 11);
        let (mut lpm, mut idx) = (Lpm::new_v6(), LpmIndex::new_v6());
        for (i, (k, l)) in routes.iter().enumerate() {
            let t = RouteTarget {
                nh: NhId(1 + (i % 1000) as u32),
                label: Some((i % 4096) as u32),
            };
            idx.insert(&mut lpm, *k, *l, t).expect("insert");
        }
        let ips = v6_hits(&routes, 1 << 16, &mut Rng(7));
        let mut out = [None; 32];
        let rounds = 20_000usize;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t0 = Instant::now();
            for r in 0..rounds {
                let j = (r * 32) & ((1 << 16) - 1);
                lpm.lookup_v6_batch(black_box(&ips[j..j + 32]), &mut out);
                black_box(&out);
            }
            best = best.min(t0.elapsed().as_nanos() as f64 / (rounds * 32) as f64);
        }
        println!(
            "{n:>7} routes: {best:6.1} ns/lookup (best of 5), {} KiB of buckets",
            lpm.prefix_buckets() * 64 / 1024
        );
    }
}
