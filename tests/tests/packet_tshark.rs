//! Wireshark cross-check: the encapsulated frames the packet layer produces are written to
//! a pcap and dissected by `tshark`, which must read the same VNI, label, addresses and
//! ports (VXLAN on 4789, MPLS over UDP on 6635 via `-d udp.port==6635,mpls`, MPLS over
//! GRE). tshark is required: the test fails when it is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod packet_common;

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use packet_common::{params_of, s, u, unhex, vectors};
use pcap_file::pcap::{PcapPacket, PcapWriter};
use vrouter_dp::packet::{
    entropy_port, EncapMeta, HeapBuf, PacketBuf, Payload, TunnelEncap, TunnelKind, UdpChecksum,
};

fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) {
    let file = std::fs::File::create(path).unwrap();
    // The default header is little-endian, microsecond, LINKTYPE_ETHERNET.
    let mut w = PcapWriter::new(file).unwrap();
    for (i, fr) in frames.iter().enumerate() {
        let ts = Duration::from_secs(i as u64);
        w.write_packet(&PcapPacket::new(ts, fr.len() as u32, fr))
            .unwrap();
    }
}

const FIELDS: [&str; 16] = [
    "frame.number",
    "vlan.id",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "udp.srcport",
    "udp.dstport",
    "udp.checksum.status",
    "gre.proto",
    "vxlan.vni",
    "mpls.label",
    "mpls.bottom",
    "mpls.ttl",
    "eth.src",
    "_ws.malformed",
];

/// The first occurrence of a field (the outer header's) from a comma-separated list.
fn first(v: &str) -> &str {
    v.split(',').next().unwrap_or("")
}

#[test]
fn tshark_reads_the_same_tunnel_fields() {
    let vs = vectors();
    let list = vs["encap"].as_array().unwrap();
    let mut frames = Vec::new();
    let mut decode_as = vec!["-d".to_string(), "udp.port==6635,mpls".to_string()];
    for v in list {
        let p = params_of(v);
        let enc = TunnelEncap::new(&p).unwrap();
        let mut b = HeapBuf::from_bytes(&unhex(s(&v["inner_hex"])));
        enc.encap(
            &mut b,
            EncapMeta {
                flow_hash: u(&v["flow_hash"]) as u32,
                ip_id: u(&v["ip_id"]) as u16,
            },
        )
        .unwrap();
        frames.push(b.data().to_vec());
        if p.kind != TunnelKind::Vxlan && p.payload == Payload::L2 {
            // Tell Wireshark the label carries Ethernet (it cannot know from the wire).
            let pw = if p.control_word {
                "pwethcw"
            } else {
                "pwethnocw"
            };
            decode_as.push("-d".into());
            decode_as.push(format!("mpls.label=={},{pw}", p.vni_or_label));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("encap.pcap");
    write_pcap(&pcap, &frames);

    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(&pcap).args(&decode_as);
    cmd.args([
        "-o",
        "udp.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("tshark is required for this test (apt-get install tshark): {e}")
    });
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), list.len(), "tshark output:\n{text}");

    for (i, (v, row)) in list.iter().zip(&rows).enumerate() {
        let name = s(&v["name"]);
        let p = params_of(v);
        let col = |f: &str| row[FIELDS.iter().position(|x| *x == f).unwrap()];
        assert_eq!(col("frame.number"), (i + 1).to_string());
        assert_eq!(col("_ws.malformed"), "", "{name}: malformed per tshark");
        match (p.src_ip, p.dst_ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                assert_eq!(first(col("ip.src")), a.to_string(), "{name}");
                assert_eq!(first(col("ip.dst")), b.to_string(), "{name}");
            }
            (a, b) => {
                assert_eq!(first(col("ipv6.src")), a.to_string(), "{name}");
                assert_eq!(first(col("ipv6.dst")), b.to_string(), "{name}");
            }
        }
        match p.vlan_tci {
            Some(t) => assert_eq!(col("vlan.id"), (t & 0xfff).to_string(), "{name}"),
            None => assert_eq!(col("vlan.id"), "", "{name}"),
        }
        if p.kind == TunnelKind::MplsOverGre {
            assert_eq!(col("gre.proto"), "0x8847", "{name}");
        } else {
            let port = if p.kind == TunnelKind::Vxlan {
                4789
            } else {
                6635
            };
            assert_eq!(first(col("udp.dstport")), port.to_string(), "{name}");
            let sport = entropy_port(u(&v["flow_hash"]) as u32);
            assert_eq!(first(col("udp.srcport")), sport.to_string(), "{name}");
            // 1 = good (IPv6, computed in software), 3 = not present (IPv4, zero).
            let want = match p.udp_checksum {
                UdpChecksum::Zero => "3",
                _ => "1",
            };
            assert_eq!(first(col("udp.checksum.status")), want, "{name}");
        }
        if p.kind == TunnelKind::Vxlan {
            assert_eq!(col("vxlan.vni"), p.vni_or_label.to_string(), "{name}");
            assert_eq!(col("mpls.label"), "", "{name}");
        } else {
            assert_eq!(
                first(col("mpls.label")),
                p.vni_or_label.to_string(),
                "{name}"
            );
            assert_eq!(first(col("mpls.bottom")), "1", "{name}");
            assert_eq!(col("vxlan.vni"), "", "{name}");
        }
        if p.payload == Payload::L2 {
            // The inner Ethernet frame is dissected too: its source MAC is the second one.
            let macs: Vec<&str> = col("eth.src").split(',').collect();
            assert_eq!(macs.len(), 2, "{name}: inner frame not dissected");
            assert_eq!(macs[1], "02:00:00:00:00:0a", "{name}");
        }
    }
}
