//! Whole-pipeline cost per packet on heap buffers: bursts of 32 64-byte frames from a
//! pod, routed to a remote node over VXLAN, policy on, with 1M flows learned; and the
//! other direction, VXLAN from the fabric decapsulated and routed to the pod, policy
//! on, with 100k flows learned; both directions also with one flow (hot caches).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vrouter_benches::decap_fixture::{frame as decap_frame, setup as setup_decap};
use vrouter_benches::pipeline_fixture::{frame, setup, FLOWS};
use vrouter_benches::BurstRunner;
use vrouter_dp::pipeline::{Env, BURST};

/// One flow, every packet a hit: the pipeline's compute cost with hot caches.
fn pipeline_one_flow(c: &mut Criterion) {
    let (snap, flows) = setup(1 << 12);
    let env = Env {
        fib: &snap,
        flows: &flows,
        now: 1,
    };
    let mut r = BurstRunner::new(frame, 3, 1);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("pod_to_remote_vxlan_1_flow_burst32", |b| {
        b.iter(|| r.run(&env, 0))
    });
    // The other direction: VXLAN from the fabric, decapsulated, routed to the pod.
    let (dsnap, dflows) = setup_decap(1 << 12);
    let denv = Env {
        fib: &dsnap,
        flows: &dflows,
        now: 1,
    };
    let mut d = BurstRunner::new(decap_frame, 0, 1);
    g.bench_function("fabric_vxlan_to_pod_1_flow_burst32", |b| {
        b.iter(|| d.run(&denv, 0))
    });
    g.finish();
    // One flow learned when the bench ran (nothing when a filter left it out).
    for p in [&r.pipe, &d.pipe] {
        assert!(p.counters().flows_learned <= 1);
        assert_eq!(p.counters().total_drops(), 0);
    }
}

fn pipeline(c: &mut Criterion) {
    let (snap, flows) = setup(4 << 20);
    let env = Env {
        fib: &snap,
        flows: &flows,
        now: 1,
    };
    let mut r = BurstRunner::new(frame, 3, FLOWS);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("pod_to_remote_vxlan_1M_flows_burst32", |b| {
        // Learn 1M flows (each with its reverse) first, only when this bench runs.
        if r.pipe.counters().flows_learned == 0 {
            r.learn(&env);
            assert_eq!(r.pipe.counters().flows_learned, u64::from(FLOWS));
            assert_eq!(r.pipe.counters().total_drops(), 0);
        }
        b.iter(|| r.step(&env))
    });
    // The same flows (learned above), each burst 32 flows far apart in
    // learning order.
    let mut rs = BurstRunner::new(frame, 3, FLOWS).scattered();
    g.bench_function("pod_to_remote_vxlan_1M_flows_scattered_burst32", |b| {
        assert_eq!(r.pipe.counters().flows_learned, u64::from(FLOWS));
        b.iter(|| rs.step(&env))
    });
    assert_eq!(
        rs.pipe.counters().flows_learned,
        0,
        "a scattered flow missed"
    );
    // The frame generation alone, to subtract.
    let mut k = 0u32;
    g.bench_function("frame_reset_only_burst32", |b| {
        b.iter(|| {
            r.reset(k);
            k = k.wrapping_add(7919);
            black_box(&r);
        })
    });
    g.finish();
    assert_eq!(r.pipe.counters().total_drops(), 0);
}

/// Fabric -> pod: VXLAN decapsulated, VNI -> VRF 1, routed to the pod, every packet a
/// hit among 100k learned flows (visited in a scattered order).
fn fabric_to_pod(c: &mut Criterion) {
    const N: u32 = 100_000;
    let (snap, flows) = setup_decap(1 << 19);
    let env = Env {
        fib: &snap,
        flows: &flows,
        now: 1,
    };
    let mut r = BurstRunner::new(decap_frame, 0, N);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("fabric_vxlan_to_pod_100k_flows_burst32", |b| {
        // Learn the flows (each with its reverse) first, only when this bench runs.
        if r.pipe.counters().flows_learned == 0 {
            r.learn(&env);
            assert_eq!(r.pipe.counters().flows_learned, u64::from(N));
            assert_eq!(r.pipe.counters().total_drops(), 0);
        }
        b.iter(|| r.step(&env))
    });
    g.finish();
    assert_eq!(r.pipe.counters().total_drops(), 0);
}

criterion_group!(benches, pipeline_one_flow, pipeline, fabric_to_pod);
criterion_main!(benches);
