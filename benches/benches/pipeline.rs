//! Whole-pipeline cost per packet on heap buffers: bursts of 32 64-byte frames from a
//! pod, routed to a remote node over VXLAN, policy on, with 1M flows learned; and the
//! other direction, VXLAN from the fabric decapsulated and routed to the pod, policy
//! on, with 100k flows learned.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vrouter_benches::decap_fixture::{frame as decap_frame, setup as setup_decap, LEN};
use vrouter_benches::pipeline_fixture::{frame, setup, FLOWS};
use vrouter_dp::packet::HeapBuf;
use vrouter_dp::pipeline::{Env, HeapPool, Output, Pipeline, BURST};

/// One flow, every packet a hit: the pipeline's compute cost with hot caches.
fn pipeline_one_flow(c: &mut Criterion) {
    let (snap, flows) = setup(1 << 12);
    let mut pipe = Pipeline::new(64);
    let mut out: Output<HeapBuf> = Output::new();
    let mut bufs: Vec<HeapBuf> = (0..BURST)
        .map(|_| HeapBuf::with_room(&[0; 60], 128, 64))
        .collect();
    let mut f = [0u8; 60];
    frame(5, &mut f);
    let env = Env {
        fib: &snap,
        flows: &flows,
        now: 1,
    };
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("pod_to_remote_vxlan_1_flow_burst32", |b| {
        b.iter(|| {
            for b in bufs.iter_mut() {
                let _ = b.reset_to(&f, 128);
                b.set_port(3);
            }
            pipe.process(&env, &mut HeapPool, bufs.drain(..), &mut out);
            for t in out.tx.iter_mut() {
                bufs.extend(t.bufs.drain(..));
            }
            bufs.extend(out.drops.drain(..));
            out.tx.clear();
        })
    });
    g.finish();
    // One flow learned when the bench ran (nothing when a filter left it out).
    assert!(pipe.counters().flows_learned <= 1);
    assert_eq!(pipe.counters().total_drops(), 0);
}

fn pipeline(c: &mut Criterion) {
    let (snap, flows) = setup(4 << 20);
    let mut pipe = Pipeline::new(64);
    let mut out: Output<HeapBuf> = Output::new();
    let mut bufs: Vec<HeapBuf> = (0..BURST)
        .map(|_| HeapBuf::with_room(&[0; 60], 128, 64))
        .collect();
    let mut f = [0u8; 60];
    let env = Env {
        fib: &snap,
        flows: &flows,
        now: 1,
    };
    let mut run =
        |pipe: &mut Pipeline, bufs: &mut Vec<HeapBuf>, out: &mut Output<HeapBuf>, first: u32| {
            for (k, b) in bufs.iter_mut().enumerate() {
                frame((first + k as u32) % FLOWS, &mut f);
                let _ = b.reset_to(&f, 128);
                b.set_port(3);
            }
            pipe.process(&env, &mut HeapPool, bufs.drain(..), out);
            for t in out.tx.iter_mut() {
                bufs.extend(t.bufs.drain(..));
            }
            bufs.extend(out.drops.drain(..));
            out.tx.clear();
        };
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut next = 0u32;
    g.bench_function("pod_to_remote_vxlan_1M_flows_burst32", |b| {
        // Learn 1M flows (each with its reverse) first, only when this bench runs.
        if pipe.counters().flows_learned == 0 {
            let mut i = 0u32;
            while i < FLOWS {
                run(&mut pipe, &mut bufs, &mut out, i);
                i += BURST as u32;
            }
            assert_eq!(pipe.counters().flows_learned, u64::from(FLOWS));
            assert_eq!(pipe.counters().total_drops(), 0);
        }
        b.iter(|| {
            run(&mut pipe, &mut bufs, &mut out, next);
            next = next.wrapping_add(7919 * BURST as u32) % FLOWS;
        })
    });
    // The frame generation alone, to subtract.
    let mut k = 0u32;
    g.bench_function("frame_reset_only_burst32", |b| {
        b.iter(|| {
            for (j, buf) in bufs.iter_mut().enumerate() {
                frame((k + j as u32) % FLOWS, &mut f);
                let _ = buf.reset_to(&f, 128);
            }
            k = k.wrapping_add(7919);
            black_box(&bufs);
        })
    });
    g.finish();
    assert_eq!(pipe.counters().total_drops(), 0);
}

/// Fabric -> pod: VXLAN decapsulated, VNI -> VRF 1, routed to the pod, every packet a
/// hit among 100k learned flows (visited in a scattered order).
fn fabric_to_pod(c: &mut Criterion) {
    const N: u32 = 100_000;
    let (snap, flows) = setup_decap(1 << 19);
    let mut pipe = Pipeline::new(64);
    let mut out: Output<HeapBuf> = Output::new();
    let mut bufs: Vec<HeapBuf> = (0..BURST)
        .map(|_| HeapBuf::with_room(&[0; LEN], 128, 64))
        .collect();
    let mut f = [0u8; LEN];
    let env = Env {
        fib: &snap,
        flows: &flows,
        now: 1,
    };
    let mut run =
        |pipe: &mut Pipeline, bufs: &mut Vec<HeapBuf>, out: &mut Output<HeapBuf>, first: u32| {
            for (k, b) in bufs.iter_mut().enumerate() {
                decap_frame((first + k as u32) % N, &mut f);
                let _ = b.reset_to(&f, 128);
                b.set_port(0);
            }
            pipe.process(&env, &mut HeapPool, bufs.drain(..), out);
            for t in out.tx.iter_mut() {
                bufs.extend(t.bufs.drain(..));
            }
            bufs.extend(out.drops.drain(..));
            out.tx.clear();
        };
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut next = 0u32;
    g.bench_function("fabric_vxlan_to_pod_100k_flows_burst32", |b| {
        // Learn the flows (each with its reverse) first, only when this bench runs.
        if pipe.counters().flows_learned == 0 {
            let mut i = 0u32;
            while i < N {
                run(&mut pipe, &mut bufs, &mut out, i);
                i += BURST as u32;
            }
            assert_eq!(pipe.counters().flows_learned, u64::from(N));
            assert_eq!(pipe.counters().total_drops(), 0);
        }
        b.iter(|| {
            run(&mut pipe, &mut bufs, &mut out, next);
            next = next.wrapping_add(7919 * BURST as u32) % N;
        })
    });
    g.finish();
    assert_eq!(pipe.counters().total_drops(), 0);
}

criterion_group!(benches, pipeline_one_flow, pipeline, fabric_to_pod);
criterion_main!(benches);
