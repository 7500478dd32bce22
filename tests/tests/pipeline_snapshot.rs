//! Snapshot consistency under concurrent updates: the control thread rewrites a set
//! of routes in batches while workers run bursts through the pipeline; every burst
//! must see exactly one version (old or new, never a mix) and versions never go back,
//! whether a batch edits a copy of the current version or the version before it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use flow_table::FlowTable;
use vrouter_dp::fib::rcu::Publisher;
use vrouter_dp::fib::{
    Fib, FibConfig, MacAddr, NhId, NhSpec, Prefix, RouteTarget, TunnelSpec, TunnelType, Update,
    Vif, VifId, VifKind, VrfId,
};
use vrouter_dp::packet::{checksum, HeapBuf, PacketBuf};
use vrouter_dp::pipeline::{Env, HeapPool, Output, Pipeline, BURST};

const ROUTES: u8 = BURST as u8;

fn frame(i: u8) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[0x00, 0x00, 0x5e, 0x00, 0x01, 0x00]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xa]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 1, 0, 3, 10, 2, i, 1,
    ]);
    let c = !checksum::data(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f[34..42].copy_from_slice(&[0x10, 0x00, 0x20, 0x00, 0, 26, 0, 0]);
    f
}

fn batch(k: u32) -> Vec<Update> {
    (0..ROUTES)
        .map(|i| Update::AddRoute {
            vrf: VrfId(1),
            prefix: Prefix::v4(Ipv4Addr::new(10, 2, i, 0), 24).unwrap(),
            target: RouteTarget {
                nh: NhId(if k % 2 == 0 { 21 } else { 25 }),
                label: Some(k),
            },
        })
        .collect()
}

#[test]
fn bursts_see_one_version_while_routes_churn() {
    let mut fib = Fib::new(FibConfig::default());
    let mut fabric = Vif::new(
        VifId(0),
        VifKind::Fabric,
        0,
        MacAddr([0x52, 0x54, 0, 0, 0, 1]),
        VrfId(0),
    );
    fabric.ipv4 = vec![Ipv4Addr::new(192, 168, 0, 1)];
    let mut pod = Vif::new(
        VifId(3),
        VifKind::PodVhost,
        3,
        MacAddr([2, 0, 0, 0, 0, 0xa]),
        VrfId(1),
    );
    pod.ipv4 = vec![Ipv4Addr::new(10, 1, 0, 3)];
    let tun = |dst: u8| {
        NhSpec::Tunnel(TunnelSpec {
            ty: TunnelType::MplsOverUdp,
            src: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 168, 0, dst)),
            out_vif: VifId(0),
            dmac: MacAddr([0x52, 0x54, 0, 0, 0, 2]),
        })
    };
    let mut setup = vec![
        Update::AddVif(fabric),
        Update::AddVif(pod),
        Update::AddNh(NhId(21), tun(2)),
        Update::AddNh(NhId(25), tun(5)),
    ];
    setup.extend(batch(0));
    let mut publisher = Publisher::new(fib.apply(&setup).unwrap());
    let flows = Arc::new(FlowTable::with_capacity(1024).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let mut reader = publisher.reader();
            let stop = stop.clone();
            let flows = flows.clone();
            thread::spawn(move || {
                let mut pipe = Pipeline::new(16);
                let mut out: Output<HeapBuf> = Output::new();
                let mut last = 0u32;
                let mut bursts = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let snap = reader.load().clone();
                    let env = Env {
                        fib: &snap,
                        flows: &flows,
                        now: 0,
                    };
                    let bufs = (0..ROUTES).map(|i| {
                        let mut b = HeapBuf::from_bytes(&frame(i));
                        b.set_port(3);
                        b
                    });
                    out.clear();
                    pipe.process(&env, &mut HeapPool, bufs, &mut out);
                    assert!(out.drops.is_empty());
                    let sent = &out.port(0).unwrap().bufs;
                    assert_eq!(sent.len(), usize::from(ROUTES));
                    let version = |b: &HeapBuf| {
                        let d = b.data();
                        let label = u32::from_be_bytes([d[42], d[43], d[44], d[45]]) >> 12;
                        (d[33], label)
                    };
                    let (dst, label) = version(&sent[0]);
                    for b in sent.iter() {
                        assert_eq!(version(b), (dst, label), "two versions in one burst");
                    }
                    assert_eq!(dst, if label % 2 == 0 { 2 } else { 5 });
                    assert!(label >= last, "went back from {last} to {label}");
                    last = label;
                    bursts += 1;
                }
                bursts
            })
        })
        .collect();
    for k in 1..400u32 {
        // Every other batch waits until the workers have left the older versions,
        // so that it edits the version before the current one in place; the others
        // may find it still held and edit a copy of the current one.
        if k % 2 == 0 {
            while publisher.reclaim() > 0 {
                thread::yield_now();
            }
        }
        publisher.publish(fib.apply(&batch(k)).unwrap());
    }
    assert!(fib.versions_reused() >= 199, "{}", fib.versions_reused());
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(w.join().unwrap() > 0);
    }
    // Every retired version is freed here once the workers are gone.
    assert_eq!(publisher.reclaim(), 0);
}
