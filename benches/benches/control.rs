//! Control API benchmarks, end to end over the Unix socket (client encode, gRPC,
//! conversion and validation, batch apply, snapshot publication):
//!
//! * `control/apply_10k_routes`: route programming in batches of 10k new /32 routes,
//!   while a reader thread does what a worker does (load the snapshot once per burst
//!   of 32, look up routes that stay in place throughout) and counts lookups that
//!   fail; the bench fails if any does.
//! * `control/apply_10k_routes_no_reader`, `..._packed_no_reader`: the same batches
//!   with no reader, as one change per route and as one packed route set;
//!   `control/fib_apply_10k_routes`: the forwarding-state apply alone.
//! * `control/dump_1m_routes`: a streamed dump of 1M routes.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio_stream::StreamExt;
use vrouter_dp::control::client::{self, Client};
use vrouter_dp::control::proto as pb;
use vrouter_dp::control::{ControlConfig, ControlPlane, NoPorts, NoStats, Server, ServerHandle};
use vrouter_dp::fib::{
    Fib, FibConfig, MacAddr, NhId, NhSpec, Prefix, RouteTarget, Update, Vif, VifId, VifKind, VrfId,
};

const BATCH: usize = 10_000;
const DUMP_ROUTES: usize = 1_000_000;

struct Env {
    _dir: tempfile::TempDir,
    handle: Option<ServerHandle>,
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let cfg = ControlConfig {
            socket: dir.path().join("dp.sock"),
            ..ControlConfig::default()
        };
        let fib = Fib::new(FibConfig {
            max_nhs: 1024,
            max_labels: 1024,
            max_vrfs: 16,
            ..FibConfig::default()
        });
        let plane = ControlPlane::standalone(fib, Arc::new(NoStats), Arc::new(NoPorts));
        let handle = Server::start(cfg, plane).unwrap_or_else(|e| panic!("server: {e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let mut client = rt
            .block_on(client::connect(handle.socket()))
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let base = pb::Batch {
            changes: vec![
                change(pb::change::Op::AddInterface(pb::Interface {
                    id: 1,
                    r#type: pb::InterfaceType::VifTypeVirtual as i32,
                    transport: pb::Transport::Pmd as i32,
                    port: 1,
                    mac: "02:00:00:00:00:01".into(),
                    vrf: 1,
                    ..Default::default()
                })),
                change(pb::change::Op::AddNexthop(pb::NextHop {
                    id: 1,
                    r#type: pb::NextHopType::NhTypeEncap as i32,
                    vif: 1,
                    dmac: "02:00:00:00:00:01".into(),
                    ..Default::default()
                })),
            ],
        };
        rt.block_on(client.apply(base))
            .unwrap_or_else(|e| panic!("base state: {e}"));
        Self {
            _dir: dir,
            handle: Some(handle),
            rt,
            client,
        }
    }

    fn apply(&mut self, b: pb::Batch) {
        let r = self.rt.block_on(self.client.apply(b));
        if let Err(e) = r {
            panic!("apply: {e}");
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

fn change(op: pb::change::Op) -> pb::Change {
    pb::Change { op: Some(op) }
}

/// Route `i` of VRF 1: 10.0.0.0/8 upwards as /32s; `base` shifts the range.
fn prefix(base: u32, i: u32) -> String {
    let a = Ipv4Addr::from(0x0a00_0000u32.wrapping_add(base).wrapping_add(i));
    format!("{a}/32")
}

fn add_batch(base: u32) -> pb::Batch {
    pb::Batch {
        changes: (0..BATCH as u32)
            .map(|i| {
                change(pb::change::Op::AddRoute(pb::Route {
                    vrf: 1,
                    prefix: prefix(base, i),
                    nh: 1,
                    ..Default::default()
                }))
            })
            .collect(),
    }
}

fn del_batch(base: u32) -> pb::Batch {
    pb::Batch {
        changes: (0..BATCH as u32)
            .map(|i| {
                change(pb::change::Op::DelRoute(pb::RouteKey {
                    vrf: 1,
                    prefix: prefix(base, i),
                }))
            })
            .collect(),
    }
}

/// The same routes as one packed route set (`add_routes` / `del_routes`).
fn packed_batch(base: u32, add: bool) -> pb::Batch {
    let set = pb::RouteSet {
        vrf: 1,
        family: pb::Family::Inet as i32,
        addrs: (0..BATCH as u32)
            .flat_map(|i| {
                0x0a00_0000u32
                    .wrapping_add(base)
                    .wrapping_add(i)
                    .to_be_bytes()
            })
            .collect(),
        prefix_lens: vec![32; BATCH],
        nhs: if add { vec![1] } else { vec![] },
        labels: vec![],
    };
    let op = if add {
        pb::change::Op::AddRoutes(set)
    } else {
        pb::change::Op::DelRoutes(set)
    };
    pb::Batch {
        changes: vec![change(op)],
    }
}

fn apply_routes(c: &mut Criterion) {
    let mut env = Env::new();
    // Stable routes the reader looks up: 10.255.0.0/24 .. as /32s.
    let stable: u32 = 0x00ff_0000;
    env.apply(add_batch(stable));
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let misses = Arc::new(AtomicU64::new(0));
    let mut reader = env
        .handle
        .as_ref()
        .and_then(ServerHandle::reader)
        .unwrap_or_else(|| panic!("no reader"));
    let t = {
        let (stop, lookups, misses) = (stop.clone(), lookups.clone(), misses.clone());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let snap = reader.load();
                for _ in 0..32 {
                    let ip = Ipv4Addr::from(0x0a00_0000 + stable + (i % BATCH as u32));
                    if snap.route_v4(VrfId(1), ip).is_none() {
                        misses.fetch_add(1, Ordering::Relaxed);
                    }
                    i = i.wrapping_add(7919);
                }
                lookups.fetch_add(32, Ordering::Relaxed);
            }
        })
    };
    let mut g = c.benchmark_group("control");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    let mut round = 0u32;
    g.bench_function("apply_10k_routes", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let base = (round % 64) * BATCH as u32;
                round = round.wrapping_add(1);
                let add = add_batch(base);
                let t0 = Instant::now();
                env.apply(add);
                total += t0.elapsed();
                env.apply(del_batch(base));
            }
            total
        })
    });
    g.finish();
    stop.store(true, Ordering::Relaxed);
    let _ = t.join();
    let (l, m) = (
        lookups.load(Ordering::Relaxed),
        misses.load(Ordering::Relaxed),
    );
    eprintln!("control/apply_10k_routes: reader did {l} lookups during the churn, {m} failed");
    assert_eq!(
        m, 0,
        "lookups of untouched routes failed during route churn"
    );
}

/// The same batches without a concurrent reader, and the forwarding-state apply alone
/// (no gRPC, no text parsing), to show where the time goes.
fn apply_routes_alone(c: &mut Criterion) {
    let mut env = Env::new();
    let mut g = c.benchmark_group("control");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    let mut round = 0u32;
    g.bench_function("apply_10k_routes_no_reader", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let base = (round % 64) * BATCH as u32;
                round = round.wrapping_add(1);
                let add = add_batch(base);
                let t0 = Instant::now();
                env.apply(add);
                total += t0.elapsed();
                env.apply(del_batch(base));
            }
            total
        })
    });
    g.bench_function("apply_10k_routes_packed_no_reader", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let base = (round % 64) * BATCH as u32;
                round = round.wrapping_add(1);
                let add = packed_batch(base, true);
                let t0 = Instant::now();
                env.apply(add);
                total += t0.elapsed();
                env.apply(packed_batch(base, false));
            }
            total
        })
    });
    drop(env);
    let mut fib = Fib::new(FibConfig {
        max_nhs: 1024,
        max_labels: 1024,
        max_vrfs: 16,
        ..FibConfig::default()
    });
    let vif = Vif::new(
        VifId(1),
        VifKind::PodVhost,
        1,
        MacAddr([2, 0, 0, 0, 0, 1]),
        VrfId(1),
    );
    let base = [
        Update::AddVif(vif),
        Update::AddNh(
            NhId(1),
            NhSpec::Encap {
                vif: VifId(1),
                dmac: MacAddr([2, 0, 0, 0, 0, 1]),
            },
        ),
    ];
    if let Err(e) = fib.apply(&base) {
        panic!("base state: {e}");
    }
    let updates = |base: u32, add: bool| -> Vec<Update> {
        (0..BATCH as u32)
            .filter_map(|i| {
                let p = Prefix::v4(Ipv4Addr::from(0x0a00_0000 + base + i), 32).ok()?;
                Some(if add {
                    Update::AddRoute {
                        vrf: VrfId(1),
                        prefix: p,
                        target: RouteTarget {
                            nh: NhId(1),
                            label: None,
                        },
                    }
                } else {
                    Update::DelRoute {
                        vrf: VrfId(1),
                        prefix: p,
                    }
                })
            })
            .collect()
    };
    let mut round = 0u32;
    g.bench_function("fib_apply_10k_routes", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let base = (round % 64) * BATCH as u32;
                round = round.wrapping_add(1);
                let add = updates(base, true);
                let t0 = Instant::now();
                let r = fib.apply(&add);
                total += t0.elapsed();
                if let Err(e) = r.and_then(|_| fib.apply(&updates(base, false))) {
                    panic!("apply: {e}");
                }
            }
            total
        })
    });
    g.finish();
}

fn dump_routes(c: &mut Criterion) {
    let mut env = Env::new();
    for k in 0..(DUMP_ROUTES / BATCH) as u32 {
        env.apply(add_batch(k * BATCH as u32));
    }
    let mut g = c.benchmark_group("control");
    g.throughput(Throughput::Elements(DUMP_ROUTES as u64));
    g.sample_size(10);
    g.bench_function("dump_1m_routes", |b| {
        b.iter(|| {
            let n = env.rt.block_on(async {
                let req = pb::DumpRoutesRequest {
                    vrf: 1,
                    page_size: 8192,
                    ..Default::default()
                };
                let mut s = match env.client.dump_routes(req).await {
                    Ok(s) => s.into_inner(),
                    Err(e) => panic!("dump: {e}"),
                };
                let mut n = 0usize;
                while let Some(p) = s.next().await {
                    match p {
                        Ok(p) => n += p.routes.len(),
                        Err(e) => panic!("dump page: {e}"),
                    }
                }
                n
            });
            assert_eq!(n, DUMP_ROUTES);
            n
        })
    });
    g.finish();
}

criterion_group!(benches, apply_routes, apply_routes_alone, dump_routes);
criterion_main!(benches);
