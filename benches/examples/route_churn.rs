//! Route churn through the agent API of a running data plane: adds a batch of new
//! routes, deletes it, and repeats for a fixed time, timing each `Apply` call end
//! to end (client encode, the Unix socket, decode, validation, apply, snapshot
//! publication, reply). Used by `benches/pktgen/churn.sh`, which runs it against
//! `vrouter-dp` while a worker forwards traffic.
//!
//! ```sh
//! route_churn SOCKET SECONDS [BATCH] [VRF] [NEXTHOP] [LABEL] [PRELOAD] [FORM]
//! ```
//!
//! FORM `packed` (default) sends each batch as one packed route set
//! (`add_routes` / `del_routes`), `text` as one `add_route` / `del_route` change
//! per route with a text prefix.
//!
//! Routes are IPv4 /32s from 10.128.0.0 upwards (16 ranges of BATCH, used in turn),
//! all to NEXTHOP with LABEL (a VNI or MPLS label; 0 = none). PRELOAD routes under
//! 100.64.0.0/10 are added first and left in place, so that the churn runs on a
//! table of that size. The last line is one JSON object: routes applied, seconds
//! spent in calls, routes/s, median and maximum call time.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vrouter_dp::control::client;
use vrouter_dp::control::proto as pb;

const RANGES: u32 = 16;

fn route(vrf: u32, addr: u32, nh: u32, label: u32) -> pb::Change {
    pb::Change {
        op: Some(pb::change::Op::AddRoute(pb::Route {
            vrf,
            prefix: format!("{}/32", Ipv4Addr::from(addr)),
            nh,
            label,
            label_valid: label != 0,
        })),
    }
}

fn del(vrf: u32, addr: u32) -> pb::Change {
    pb::Change {
        op: Some(pb::change::Op::DelRoute(pb::RouteKey {
            vrf,
            prefix: format!("{}/32", Ipv4Addr::from(addr)),
        })),
    }
}

/// Batch `first..first + n` as a packed route set.
fn packed(vrf: u32, first: u32, n: u32, add: bool, nh: u32, label: u32) -> Vec<pb::Change> {
    let set = pb::RouteSet {
        vrf,
        family: pb::Family::Inet as i32,
        addrs: (first..first + n).flat_map(u32::to_be_bytes).collect(),
        prefix_lens: vec![32; n as usize],
        nhs: if add { vec![nh] } else { vec![] },
        labels: if add && label != 0 {
            vec![label]
        } else {
            vec![]
        },
    };
    let op = if add {
        pb::change::Op::AddRoutes(set)
    } else {
        pb::change::Op::DelRoutes(set)
    };
    vec![pb::Change { op: Some(op) }]
}

fn arg<T: std::str::FromStr>(v: Option<String>, name: &str, default: T) -> T {
    match v {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("route_churn: {name}: not a number: {s}");
            std::process::exit(2)
        }),
    }
}

fn main() {
    let mut a = std::env::args().skip(1);
    let Some(socket) = a.next() else {
        eprintln!(
            "usage: route_churn SOCKET SECONDS [BATCH] [VRF] [NEXTHOP] [LABEL] [PRELOAD] [packed|text]"
        );
        std::process::exit(2)
    };
    let secs: f64 = arg(a.next(), "SECONDS", 10.0);
    let batch: u32 = arg(a.next(), "BATCH", 10_000);
    let vrf: u32 = arg(a.next(), "VRF", 1);
    let nh: u32 = arg(a.next(), "NEXTHOP", 1);
    let label: u32 = arg(a.next(), "LABEL", 0);
    let preload: u32 = arg(a.next(), "PRELOAD", 0);
    let text = match a.next().as_deref() {
        None | Some("packed") => false,
        Some("text") => true,
        Some(f) => {
            eprintln!("route_churn: FORM: {f}: not packed or text");
            std::process::exit(2)
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    let mut c = rt
        .block_on(client::connect(&socket))
        .unwrap_or_else(|e| panic!("connect {socket}: {e}"));
    let mut apply = |changes: Vec<pb::Change>| -> Duration {
        let t0 = Instant::now();
        if let Err(e) = rt.block_on(c.apply(pb::Batch { changes })) {
            eprintln!("route_churn: apply failed: {e}");
            std::process::exit(1)
        }
        t0.elapsed()
    };
    let pre_base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
    let mut done = 0u32;
    while done < preload {
        let n = batch.min(preload - done);
        apply(packed(vrf, pre_base + done, n, true, nh, label));
        done += n;
    }
    if preload > 0 {
        eprintln!("route_churn: {preload} routes preloaded");
    }
    let base = u32::from(Ipv4Addr::new(10, 128, 0, 0));
    let mut times = Vec::new();
    let mut routes = 0u64;
    let mut busy = Duration::ZERO;
    let start = Instant::now();
    let mut round = 0u32;
    while start.elapsed().as_secs_f64() < secs {
        let first = base + (round % RANGES) * batch;
        round += 1;
        let (adds, dels) = if text {
            (
                (first..first + batch)
                    .map(|a| route(vrf, a, nh, label))
                    .collect(),
                (first..first + batch).map(|a| del(vrf, a)).collect(),
            )
        } else {
            (
                packed(vrf, first, batch, true, nh, label),
                packed(vrf, first, batch, false, nh, label),
            )
        };
        for t in [apply(adds), apply(dels)] {
            times.push(t);
            busy += t;
            routes += u64::from(batch);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let max = times.last().copied().unwrap_or_default();
    println!(
        "{{\"form\": \"{}\", \"routes\": {routes}, \"batch\": {batch}, \"calls\": {}, \"wall_s\": {wall:.3}, \
         \"busy_s\": {:.3}, \"routes_per_s\": {:.0}, \"median_call_ms\": {:.2}, \"max_call_ms\": {:.2}}}",
        if text { "text" } else { "packed" },
        times.len(),
        busy.as_secs_f64(),
        routes as f64 / busy.as_secs_f64().max(1e-9),
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
    );
}
