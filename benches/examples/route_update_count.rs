//! A fixed amount of route churn, for instruction counts under
//! `valgrind --tool=cachegrind` (the `route_update` criterion bench's workload:
//! batches of fresh IPv4 routes added, then deleted, with `Fib::apply`, the last
//! published version kept alive as the workers would).
//!
//! ```sh
//! route_update_count [BASE_ROUTES] [BATCH] [ROUNDS] [fresh|same] [hold]
//! ```
//!
//! With `fresh`, every round adds routes no earlier round added and deletes the
//! previous round's, so consecutive batches write different chunks (`same`, the
//! default: the same routes every round). With `hold`, the version before the last
//! stays held too, so every batch edits a copy of the current version. The number
//! of batches that reused the previous version goes to stderr.
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
    let new_each_round = std::env::args().nth(4).as_deref() == Some("fresh");
    let hold = std::env::args().nth(5).as_deref() == Some("hold");
    let (mut fib, base) = churn::setup(base_n);
    // One set of fresh routes, or one per round (plus the one deleted first).
    let sets = if new_each_round { rounds + 1 } else { 1 };
    let pool = fresh_routes(&base, batch * sets);
    let fresh: Vec<&[(u128, u8)]> = pool.chunks(batch.max(1)).collect();
    let batches: Vec<_> = fresh
        .iter()
        .map(|f| (churn::adds(f), churn::dels(f)))
        .collect();
    let mut published = fib.snapshot();
    if new_each_round {
        published = fib.apply(&batches[0].0).expect("adds");
    }
    // With `hold`, the last two versions stay alive, so that the one before the
    // current one is never free when the next batch comes.
    let mut held = Vec::new();
    let t0 = Instant::now();
    for r in 0..rounds {
        let (adds, dels) = if new_each_round {
            // Add round r + 1's routes, then delete round r's.
            (&batches[r + 1].0, &batches[r].1)
        } else {
            (&batches[0].0, &batches[0].1)
        };
        for b in [adds, dels] {
            published = fib.apply(b).expect("applies");
            std::hint::black_box(&published);
            if hold {
                held.push(published.clone());
                if held.len() > 2 {
                    held.remove(0);
                }
            }
        }
    }
    let ns = t0.elapsed().as_nanos() as f64 / (rounds * 2 * fresh[0].len()).max(1) as f64;
    drop(published);
    drop(held);
    eprintln!("versions reused: {}", fib.versions_reused());
    println!(
        "{} routes, batches of {}: {ns:.0} ns/route ({:.0}k routes/s)",
        base.len(),
        fresh[0].len(),
        1e6 / ns
    );
}
