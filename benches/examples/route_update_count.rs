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

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use vrouter_benches::routes::v4_routes;
use vrouter_dp::fib::{
    Fib, FibConfig, MacAddr, NhId, NhSpec, Prefix, RouteTarget, TunnelSpec, TunnelType, Update,
    Vif, VifId, VifKind, VrfId,
};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map_or(default, |a| a.parse().expect("a number"))
}

fn main() {
    let (base_n, batch, rounds) = (arg(1, 1_000_000), arg(2, 10_000), arg(3, 10));
    let mut fib = Fib::new(FibConfig::default());
    let mut fabric = Vif::new(
        VifId(0),
        VifKind::Fabric,
        0,
        MacAddr([0, 0, 0, 0, 0, 1]),
        VrfId(0),
    );
    fabric.ipv4 = vec![Ipv4Addr::new(192, 168, 0, 1)];
    let mut setup = vec![Update::AddVif(fabric)];
    for n in 1..=1000u32 {
        setup.push(Update::AddNh(
            NhId(n),
            NhSpec::Tunnel(TunnelSpec {
                ty: TunnelType::MplsOverUdp,
                src: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
                dst: IpAddr::V4(Ipv4Addr::from(0xc0a8_0000 + n)),
                out_vif: VifId(0),
                dmac: MacAddr([0, 0, 0, 0, 0, 2]),
            }),
        ));
    }
    fib.apply(&setup).expect("setup");
    let add = |routes: &[(u128, u8)]| -> Vec<Update> {
        routes
            .iter()
            .enumerate()
            .map(|(i, (k, l))| Update::AddRoute {
                vrf: VrfId(1),
                prefix: Prefix::v4(Ipv4Addr::from(*k as u32), *l).expect("prefix"),
                // The bench's 4096 targets: 1000 tunnel next-hops, ~4 labels each.
                target: RouteTarget {
                    nh: NhId(1 + (i % 4096 % 1000) as u32),
                    label: Some(16 + (i % 4096) as u32),
                },
            })
            .collect()
    };
    let mut base = v4_routes(base_n, 7);
    base.sort();
    base.dedup();
    for chunk in base.chunks(100_000) {
        fib.apply(&add(chunk)).expect("base routes");
    }
    let mut fresh = v4_routes(batch * 2, 1234 + batch as u64);
    fresh.sort();
    fresh.dedup();
    fresh.retain(|r| base.binary_search(r).is_err());
    fresh.truncate(batch);
    let adds = add(&fresh);
    let dels: Vec<Update> = fresh
        .iter()
        .map(|(k, l)| Update::DelRoute {
            vrf: VrfId(1),
            prefix: Prefix::v4(Ipv4Addr::from(*k as u32), *l).expect("prefix"),
        })
        .collect();
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
