//! Whole-pipeline cost per packet on heap buffers: bursts of 32 64-byte frames from a
//! pod, routed to a remote node over VXLAN, policy on, with 1M flows learned.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flow_table::{FlowTable, FlowTableConfig};
use vrouter_dp::fib::{
    Fib, FibConfig, MacAddr, NhId, NhSpec, PolicyAction, PolicyRule, Prefix, RouteTarget,
    TunnelSpec, TunnelType, Update, Vif, VifId, VifKind, VrfId,
};
use vrouter_dp::packet::{checksum, HeapBuf};
use vrouter_dp::pipeline::{Env, HeapPool, Output, Pipeline, BURST};

const ROUTER: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x00];
const POD_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const FLOWS: u32 = 1 << 20;

/// A 64-byte frame (60 + FCS) pod -> 10.3.x.y UDP, flow number `i`.
fn frame(i: u32, out: &mut [u8; 60]) {
    out.fill(0);
    out[0..6].copy_from_slice(&ROUTER);
    out[6..12].copy_from_slice(&POD_MAC);
    out[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut out[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 1, 0, 3]);
    ip[16..20].copy_from_slice(&[10, 3, (i >> 8) as u8, i as u8]);
    let c = !checksum::data(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let u = &mut out[34..42];
    u[0..2].copy_from_slice(&(1024 + (i >> 16) as u16).to_be_bytes());
    u[2..4].copy_from_slice(&5201u16.to_be_bytes());
    u[4..6].copy_from_slice(&26u16.to_be_bytes());
}

fn setup() -> (Arc<vrouter_dp::fib::FibSnapshot>, FlowTable) {
    let mut fib = Fib::new(FibConfig::default());
    let mut fabric = Vif::new(
        VifId(0),
        VifKind::Fabric,
        0,
        MacAddr([0x52, 0x54, 0, 0, 0, 1]),
        VrfId(0),
    );
    fabric.ipv4 = vec![Ipv4Addr::new(192, 168, 0, 1)];
    let mut pod = Vif::new(VifId(3), VifKind::PodVhost, 3, MacAddr(POD_MAC), VrfId(1));
    pod.ipv4 = vec![Ipv4Addr::new(10, 1, 0, 3)];
    pod.anti_spoof = true;
    pod.policy = true;
    pod.rules = Arc::from(vec![
        PolicyRule {
            proto: Some(6),
            ..PolicyRule::any(PolicyAction::Deny)
        },
        PolicyRule::any(PolicyAction::Allow),
    ]);
    let snap = fib
        .apply(&[
            Update::AddVif(fabric),
            Update::AddVif(pod),
            Update::AddNh(
                NhId(20),
                NhSpec::Tunnel(TunnelSpec {
                    ty: TunnelType::Vxlan,
                    src: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
                    dst: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 2)),
                    out_vif: VifId(0),
                    dmac: MacAddr([0x52, 0x54, 0, 0, 0, 2]),
                }),
            ),
            Update::AddRoute {
                vrf: VrfId(1),
                prefix: Prefix::v4(Ipv4Addr::new(10, 3, 0, 0), 16).unwrap(),
                target: RouteTarget {
                    nh: NhId(20),
                    label: Some(5001),
                },
            },
        ])
        .unwrap();
    let flows = FlowTable::new(&FlowTableConfig {
        capacity: 4 << 20,
        hugepages: true,
        file: None,
    })
    .unwrap();
    (snap, flows)
}

fn pipeline(c: &mut Criterion) {
    let (snap, flows) = setup();
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
    // Learn 1M flows (each with its reverse).
    let mut i = 0u32;
    while i < FLOWS {
        run(&mut pipe, &mut bufs, &mut out, i);
        i += BURST as u32;
    }
    assert_eq!(pipe.counters().flows_learned, u64::from(FLOWS));
    assert_eq!(pipe.counters().total_drops(), 0);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut next = 0u32;
    g.bench_function("pod_to_remote_vxlan_1M_flows_burst32", |b| {
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

criterion_group!(benches, pipeline);
criterion_main!(benches);
