//! Fabric -> pod on DPDK: VXLAN frames (VNI 100) and MPLSoUDP frames (label 17) from
//! a remote node arrive on the fabric port; the running pipeline validates the outer
//! headers, maps the VNI / label to the pod's VRF and next-hop, strips the outer
//! headers and delivers the inner packet unchanged to the pod with the pod's MAC. Frames for
//! an unknown VNI and for another underlay address are dropped and counted.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use pmd_config::Config;
use vrouter_dp::runtime::{self, RunOptions};
use vrouter_tests::{ipv4_checksum, read_pcap, require_hugepages, write_pcap};

const ROUTER_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x00];
const FABRIC_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x11];
const POD_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload_len: usize, ttl: u8) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        ttl,
        proto,
        0,
        0,
    ];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = ipv4_checksum(&ip);
    ip[10] = (c >> 8) as u8;
    ip[11] = c as u8;
    ip
}

/// The inner IPv4/UDP packet (no Ethernet header) from a remote pod to our pod.
fn inner_ip(i: usize) -> Vec<u8> {
    let mut p = ipv4([10, 245, 0, 10], [10, 244, 0, 2], 17, 8 + 18, 64);
    p.extend_from_slice(&(20000 + i as u16).to_be_bytes());
    p.extend_from_slice(&8080u16.to_be_bytes());
    p.extend_from_slice(&26u16.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&[i as u8; 18]);
    p
}

fn outer(dst_ip: [u8; 4], udp_dport: u16, tunnel_hdr: &[u8], inner: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&FABRIC_MAC);
    f.extend_from_slice(&[0x02, 0xbb, 0, 0, 0, 0x12]);
    f.extend_from_slice(&[0x08, 0x00]);
    let udp_len = 8 + tunnel_hdr.len() + inner.len();
    f.extend_from_slice(&ipv4([10, 10, 0, 12], dst_ip, 17, udp_len, 64));
    f.extend_from_slice(&50000u16.to_be_bytes());
    f.extend_from_slice(&udp_dport.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(tunnel_hdr);
    f.extend_from_slice(inner);
    f
}

fn vxlan(vni: u32, dst_ip: [u8; 4], i: usize) -> Vec<u8> {
    let mut inner = Vec::new();
    inner.extend_from_slice(&ROUTER_MAC);
    inner.extend_from_slice(&[0x02, 0xcc, 0, 0, 0, 0x10]);
    inner.extend_from_slice(&[0x08, 0x00]);
    inner.extend_from_slice(&inner_ip(i));
    let hdr = [
        0x08,
        0,
        0,
        0,
        (vni >> 16) as u8,
        (vni >> 8) as u8,
        vni as u8,
        0,
    ];
    outer(dst_ip, 4789, &hdr, &inner)
}

fn mpls_udp(label: u32, i: usize) -> Vec<u8> {
    let hdr = [
        (label >> 12) as u8,
        (label >> 4) as u8,
        ((label << 4) as u8) | 0x01,
        64,
    ];
    outer([10, 10, 0, 11], 6635, &hdr, &inner_ip(i))
}

#[test]
fn fabric_to_pod_by_vni_and_label() {
    require_hugepages(256);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |n: &str| dir.path().join(n).display().to_string();
    let mut frames = Vec::new();
    for i in 0..40 {
        frames.push(vxlan(100, [10, 10, 0, 11], i));
        frames.push(mpls_udp(17, i));
    }
    let good = frames.len();
    frames.push(vxlan(999, [10, 10, 0, 11], 0)); // unknown VNI
    frames.push(vxlan(100, [10, 10, 0, 99], 0)); // not our underlay address
    write_pcap(dir.path().join("fabric.pcap").as_path(), &frames);
    write_pcap(dir.path().join("empty.pcap").as_path(), &[]);
    let toml = format!(
        r#"
[cores]
workers = [1]
control = 0
[memory]
socket_mem_mb = [512]
mbufs_per_pool = 16383
[eal]
in_memory = true
[[ports]]
name = "pod"
vdev = "net_pcap0,rx_pcap={empty},tx_pcap={podout}"
role = "pod"
[[ports]]
name = "fabric"
vdev = "net_pcap1,rx_pcap={fab},tx_pcap={fabout}"
role = "fabric"
[underlay]
interface = "fabric"
ipv4 = "10.10.0.11/24"
[[vrfs]]
id = 1
[[interfaces]]
id = 0
kind = "physical"
port = "fabric"
mac = "02:aa:00:00:00:11"
vrf = 0
ipv4 = "10.10.0.11"
[[interfaces]]
id = 1
kind = "virtual"
port = "pod"
mac = "02:00:00:00:00:01"
vrf = 1
[[nexthops]]
id = 10
kind = "encap"
interface = 1
dmac = "02:00:00:00:00:01"
[[nexthops]]
id = 11
kind = "vrf-translate"
vrf = 1
[[routes]]
vrf = 1
prefix = "10.244.0.2/32"
nexthop = 10
[[labels]]
label = 17
nexthop = 10
[[vnis]]
vni = 100
nexthop = 11
"#,
        empty = d("empty.pcap"),
        podout = d("pod-out.pcap"),
        fab = d("fabric.pcap"),
        fabout = d("fabric-out.pcap"),
    );
    let cfg = Config::from_toml_str(&toml).expect("valid config");
    let eal = runtime::init_eal(&cfg, "pcap-decap", std::path::Path::new("/")).expect("EAL");
    let opts = RunOptions {
        duration: Some(Duration::from_secs(30)),
        until_idle: Some(Duration::from_millis(500)),
        stats_interval: None,
        verbose: false,
        sysfs_root: "/".into(),
        control_api: false,
    };
    let summary = runtime::run(&eal, &cfg, &opts, Arc::new(AtomicBool::new(false))).expect("run");
    drop(eal);
    assert_eq!(summary.ports[1].worker_rx, frames.len() as u64);
    assert_eq!(
        summary.ports[0].worker_tx, good as u64,
        "drops: {:?}",
        summary.drops
    );
    let dropped: u64 = summary.drops.iter().map(|(_, n)| n).sum();
    assert_eq!(dropped, 2, "{:?}", summary.drops);
    assert!(
        summary
            .drops
            .iter()
            .any(|(r, n)| r == "invalid_vnid" && *n == 1),
        "the unknown VNI is counted by name: {:?}",
        summary.drops
    );

    let out = read_pcap(dir.path().join("pod-out.pcap").as_path());
    assert_eq!(out.len(), good);
    for (k, f) in out.iter().enumerate() {
        assert_eq!(
            &f[0..6],
            &POD_MAC,
            "frame {k}: destination is the pod's MAC"
        );
        assert_eq!(
            &f[6..12],
            &ROUTER_MAC,
            "frame {k}: source is the vRouter's MAC"
        );
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let i = k / 2;
        // The sending vRouter already counted the hop (TTL decremented there): the
        // inner packet arrives unchanged.
        let want = inner_ip(i);
        assert_eq!(&f[14..], want.as_slice(), "frame {k}: inner packet");
    }
}
