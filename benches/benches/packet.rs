//! Packet-layer micro-benchmarks: parse + flow key, encapsulation into headroom and
//! decapsulation, each over a burst of 32 resident buffers (criterion reports the time
//! per burst; divide by 32 for ns per packet, or read the element throughput).
//!
//! Run: `cargo bench -p vrouter-benches --bench packet -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vrouter_dp::packet::{
    extract_ethernet, ipv4, Decapsulator, EncapMeta, EthernetAddress, HeapBuf, IpProtocol,
    Ipv4Repr, PacketBuf, Payload, TunnelEncap, TunnelKind, TunnelParams, UdpChecksum, VrfId,
};

const BURST: usize = 32;

/// 64-byte Ethernet/IPv4/UDP frames with distinct source ports.
fn frames() -> Vec<Vec<u8>> {
    (0..BURST)
        .map(|i| {
            let mut f = vec![0u8; 64];
            f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
            f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = Ipv4Repr {
                src_addr: Ipv4Addr::new(10, 0, 0, 1),
                dst_addr: Ipv4Addr::new(10, 0, 1, (i % 250) as u8 + 1),
                protocol: IpProtocol::UDP,
                payload_len: 30,
                ttl: 64,
                tos: 0,
                ident: i as u16,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
            };
            ip.emit(&mut ipv4::Packet::new_unchecked(&mut f[14..]))
                .unwrap();
            f[34..36].copy_from_slice(&(10_000 + i as u16).to_be_bytes());
            f[36..38].copy_from_slice(&80u16.to_be_bytes());
            f[38..40].copy_from_slice(&30u16.to_be_bytes());
            f
        })
        .collect()
}

fn params(kind: TunnelKind, payload: Payload, v6: bool) -> TunnelParams {
    let (src_ip, dst_ip) = if v6 {
        (
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::new(172, 16, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(172, 16, 0, 2)),
        )
    };
    TunnelParams {
        kind,
        payload,
        src_mac: EthernetAddress([0, 0x11, 0x22, 0x33, 0x44, 0x55]),
        dst_mac: EthernetAddress([0, 0x66, 0x77, 0x88, 0x99, 0xaa]),
        vlan_tci: None,
        src_ip,
        dst_ip,
        vni_or_label: 5000,
        ttl: 64,
        df: true,
        control_word: false,
        udp_checksum: UdpChecksum::Zero,
    }
}

fn bench_parse(c: &mut Criterion) {
    let frames = frames();
    let mut g = c.benchmark_group("packet/parse");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("eth_ipv4_udp_flow_key_x32", |b| {
        b.iter(|| {
            let mut acc = 0u16;
            for f in &frames {
                if let Ok(fi) = extract_ethernet(VrfId(1), black_box(f)) {
                    acc ^= fi.key.src_port;
                }
            }
            acc
        })
    });
    g.bench_function("eth_ipv4_udp_flow_key_hash_x32", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for f in &frames {
                if let Ok(fi) = extract_ethernet(VrfId(1), black_box(f)) {
                    acc ^= fi.key.hash();
                }
            }
            acc
        })
    });
    g.finish();
}

fn bench_encap(c: &mut Criterion) {
    let frames = frames();
    let mut g = c.benchmark_group("packet/encap");
    g.throughput(Throughput::Elements(BURST as u64));
    let cases = [
        (
            "vxlan_ipv4_64B_x32",
            params(TunnelKind::Vxlan, Payload::L2, false),
            false,
        ),
        (
            "mpls_o_udp_ipv4_l3_x32",
            params(TunnelKind::MplsOverUdp, Payload::L3, false),
            true,
        ),
        (
            "mpls_o_gre_ipv4_l3_x32",
            params(TunnelKind::MplsOverGre, Payload::L3, false),
            true,
        ),
        (
            "vxlan_ipv6_zero_csum_64B_x32",
            params(TunnelKind::Vxlan, Payload::L2, true),
            false,
        ),
    ];
    for (name, p, l3) in cases {
        let enc = TunnelEncap::new(&p).unwrap();
        let mut bufs: Vec<HeapBuf> = frames
            .iter()
            .map(|f| HeapBuf::from_bytes(if l3 { &f[14..] } else { &f[..] }))
            .collect();
        let n = enc.len();
        g.bench_function(name, |b| {
            b.iter(|| {
                for (i, buf) in bufs.iter_mut().enumerate() {
                    let meta = EncapMeta {
                        flow_hash: i as u32 * 0x9e37_79b9,
                        ip_id: i as u16,
                    };
                    let _ = enc.encap(black_box(&mut *buf), meta);
                    // Restore the window (the inner bytes were never moved).
                    let _ = buf.adj(n);
                }
            })
        });
    }
    g.finish();
}

fn bench_decap(c: &mut Criterion) {
    let frames = frames();
    let mut g = c.benchmark_group("packet/decap");
    g.throughput(Throughput::Elements(BURST as u64));
    let dec = Decapsulator::new(
        Some(Ipv4Addr::new(172, 16, 0, 2)),
        Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
    );
    let cases = [
        (
            "vxlan_ipv4_x32",
            params(TunnelKind::Vxlan, Payload::L2, false),
            false,
        ),
        (
            "mpls_o_udp_ipv4_x32",
            params(TunnelKind::MplsOverUdp, Payload::L3, false),
            true,
        ),
        (
            "mpls_o_gre_ipv4_x32",
            params(TunnelKind::MplsOverGre, Payload::L3, false),
            true,
        ),
        (
            "vxlan_ipv6_x32",
            params(TunnelKind::Vxlan, Payload::L2, true),
            false,
        ),
    ];
    for (name, p, l3) in cases {
        let enc = TunnelEncap::new(&p).unwrap();
        let mut bufs: Vec<HeapBuf> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut b = HeapBuf::from_bytes(if l3 { &f[14..] } else { &f[..] });
                enc.encap(
                    &mut b,
                    EncapMeta {
                        flow_hash: i as u32,
                        ip_id: 0,
                    },
                )
                .unwrap();
                b
            })
            .collect();
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut acc = 0u32;
                for buf in bufs.iter_mut() {
                    if let Ok(d) = dec.decap(black_box(&mut *buf)) {
                        acc ^= d.inner_len as u32;
                        // Restore the window: the outer bytes are still in the headroom.
                        let _ = buf.prepend(d.inner_offset);
                    }
                }
                acc
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_parse, bench_encap, bench_decap);
criterion_main!(benches);
