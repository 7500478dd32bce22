//! A fixed amount of route churn, for instruction counts under
//! `valgrind --tool=cachegrind` (the `route_update` criterion bench's workload:
//! batches of fresh IPv4 routes added, then deleted, with `Fib::apply`, the last
//! snapshot kept alive so every chunk a batch touches is copied).
//!
//! ```sh
//! route_update_count [BASE_ROUTES] [BATCH] [ROUNDS]
//! ```
//!
//! Prints the time per route; the difference of two runs with different ROUNDS
//! divided by the routes in between gives instructions per route.

use std::time::Instant;

use vrouter_benches::routes::{churn, fresh_routes};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map_or(default, |a| a.parse().expect("a number"))
}

fn main() {
    let (base_n, batch, rounds) = (arg(1, 1_000_000), arg(2, 10_000), arg(3, 10));
    let (mut fib, base) = churn::setup(base_n);
    let fresh = fresh_routes(&base, batch);
    let (adds, dels) = (churn::adds(&fresh), churn::dels(&fresh));
    let mut published = fib.snapshot();
    let t0 = Instant::now();
    for _ in 0..rounds {
        published = fib.apply(&adds).expect("adds");
        std::hint::black_box(&published);
        published = fib.apply(&dels).expect("deletes");
        std::hint::black_box(&published);
    }
    let ns = t0.elapsed().as_nanos() as f64 / (rounds * 2 * fresh.len()).max(1) as f64;
    drop(published);
    println!(
        "{} routes, batches of {}: {ns:.0} ns/route ({:.0}k routes/s)",
        base.len(),
        fresh.len(),
        1e6 / ns
    );
}
