//! A fabric on VLAN 100 (`underlay.vlan`) on DPDK: pod frames routed over VXLAN and
//! MPLSoUDP leave the fabric tagged (tshark: `vlan.id`, VNI / label, outer
//! addresses); VXLAN frames from a remote node arrive tagged, are decapsulated and
//! reach the pod untagged; frames of another VLAN and untagged frames are dropped
//! and counted as `vlan_mismatch`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use pmd_config::Config;
use vrouter_dp::runtime::{self, RunOptions};
use vrouter_tests::{
    ipv4_checksum, pod_udp_frame, read_pcap, require_hugepages, require_tool, tshark_fields,
    write_pcap,
};

const PER_ROUTE: usize = 20;
const FROM_REMOTE: usize = 10;
const VID: u16 = 100;
const ROUTER_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x00];
const FABRIC_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x11];
const REMOTE_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x12];

/// A VXLAN frame (VNI 100) from the remote node 10.10.0.12 to this node carrying a
/// UDP packet to the pod, tagged with `vid` (`None`: untagged).
fn vxlan_from_remote(vid: Option<u16>, i: usize) -> Vec<u8> {
    let mut inner = Vec::new();
    inner.extend_from_slice(&ROUTER_MAC);
    inner.extend_from_slice(&[0x02, 0xcc, 0, 0, 0, 0x10]);
    inner.extend_from_slice(&[0x08, 0x00]);
    inner.extend_from_slice(&ipv4([10, 245, 0, 10], [10, 244, 0, 2], 8 + 18));
    inner.extend_from_slice(&(20000 + i as u16).to_be_bytes());
    inner.extend_from_slice(&8080u16.to_be_bytes());
    inner.extend_from_slice(&26u16.to_be_bytes());
    inner.extend_from_slice(&[0, 0]);
    inner.extend_from_slice(&[i as u8; 18]);
    let mut f = Vec::new();
    f.extend_from_slice(&FABRIC_MAC);
    f.extend_from_slice(&REMOTE_MAC);
    if let Some(v) = vid {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let udp_len = 8 + 8 + inner.len();
    f.extend_from_slice(&ipv4([10, 10, 0, 12], [10, 10, 0, 11], udp_len));
    f.extend_from_slice(&50000u16.to_be_bytes());
    f.extend_from_slice(&4789u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 100, 0]);
    f.extend_from_slice(&inner);
    f
}

/// An IPv4 header (UDP, TTL 64, DF) with a valid checksum.
fn ipv4(src: [u8; 4], dst: [u8; 4], payload_len: usize) -> Vec<u8> {
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
        64,
        17,
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

#[test]
fn fabric_on_a_vlan_tags_what_it_sends_and_matches_what_it_receives() {
    require_hugepages(256);
    require_tool("tshark");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |n: &str| dir.path().join(n).display().to_string();
    let mut pod = Vec::new();
    for i in 0..PER_ROUTE {
        pod.push(pod_udp_frame([10, 245, 0, 10], i));
        pod.push(pod_udp_frame([10, 246, 0, 10], i));
    }
    write_pcap(dir.path().join("pod.pcap").as_path(), &pod);
    let mut fab = Vec::new();
    for i in 0..FROM_REMOTE {
        fab.push(vxlan_from_remote(Some(VID), i));
    }
    fab.push(vxlan_from_remote(Some(VID + 1), 0)); // another VLAN
    fab.push(vxlan_from_remote(None, 0)); // untagged
    write_pcap(dir.path().join("fabric-in.pcap").as_path(), &fab);
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
vdev = "net_pcap0,rx_pcap={pod},tx_pcap={podout}"
role = "pod"
[[ports]]
name = "fabric"
vdev = "net_pcap1,rx_pcap={fabin},tx_pcap={fabout}"
role = "fabric"
[underlay]
interface = "fabric"
ipv4 = "10.10.0.11/24"
vlan = {vid}
[[vrfs]]
id = 1
[[interfaces]]
id = 0
kind = "physical"
port = "fabric"
mac = "02:aa:00:00:00:11"
vrf = 0
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
[[nexthops]]
id = 20
kind = "tunnel"
encap = "vxlan"
dst = "10.10.0.12"
dmac = "02:bb:00:00:00:12"
[[nexthops]]
id = 21
kind = "tunnel"
encap = "mplsoudp"
dst = "10.10.0.13"
dmac = "02:bb:00:00:00:12"
[[routes]]
vrf = 1
prefix = "10.244.0.2/32"
nexthop = 10
[[routes]]
vrf = 1
prefix = "10.245.0.0/16"
nexthop = 20
vni = 100
[[routes]]
vrf = 1
prefix = "10.246.0.0/16"
nexthop = 21
label = 200
[[vnis]]
vni = 100
nexthop = 11
"#,
        pod = d("pod.pcap"),
        podout = d("pod-out.pcap"),
        fabin = d("fabric-in.pcap"),
        fabout = d("fabric-out.pcap"),
        vid = VID,
    );
    let cfg = Config::from_toml_str(&toml).expect("valid config");
    let eal = runtime::init_eal(&cfg, "pcap-vlan", std::path::Path::new("/")).expect("EAL");
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
    eprintln!("{}", summary.render());
    assert_eq!(
        summary.drops,
        vec![("vlan_mismatch".to_string(), 2)],
        "the frames of VLAN {} and the untagged one, nothing else",
        VID + 1
    );
    assert_eq!(summary.ports[1].worker_tx, 2 * PER_ROUTE as u64);
    assert_eq!(summary.ports[0].worker_tx, FROM_REMOTE as u64);

    // What reached the pod: untagged, decapsulated, with the pod's MAC.
    let to_pod = read_pcap(dir.path().join("pod-out.pcap").as_path());
    assert_eq!(to_pod.len(), FROM_REMOTE);
    for (i, f) in to_pod.iter().enumerate() {
        assert_eq!(&f[0..6], &[0x02, 0, 0, 0, 0, 0x01], "pod MAC");
        assert_eq!(&f[12..14], &[0x08, 0x00], "untagged IPv4");
        assert_eq!(
            &f[26..34],
            &[10, 245, 0, 10, 10, 244, 0, 2],
            "inner addresses"
        );
        assert_eq!(f.len(), 14 + 20 + 8 + 18, "frame {i}: inner frame only");
    }

    // What left on the fabric: every frame on VLAN 100, priority 0.
    let out = dir.path().join("fabric-out.pcap");
    let all = tshark_fields(
        &out,
        &[
            "vlan.id",
            "vlan.priority",
            "eth.src",
            "eth.dst",
            "ip.src",
            "ip.dst",
            "udp.dstport",
            "vxlan.vni",
        ],
    );
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 2 * PER_ROUTE, "{all}");
    let mut vx = 0;
    let mut mu = 0;
    for l in &lines {
        let f: Vec<&str> = l.split('|').collect();
        assert_eq!(f[0], "100", "VLAN id: {l}");
        assert_eq!(f[1], "0", "priority: {l}");
        assert!(
            f[2].starts_with("02:aa:00:00:00:11"),
            "outer source MAC: {l}"
        );
        assert!(
            f[3].starts_with("02:bb:00:00:00:12"),
            "outer destination MAC: {l}"
        );
        assert!(
            f[4].starts_with("10.10.0.11,10.244.0."),
            "outer/inner source: {l}"
        );
        match f[6].split(',').next() {
            Some("4789") => {
                vx += 1;
                assert!(f[5].starts_with("10.10.0.12,10.245.0.10"), "{l}");
                assert_eq!(f[7], "100", "VNI: {l}");
            }
            Some("6635") => {
                mu += 1;
                assert!(f[5].starts_with("10.10.0.13,10.246.0.10"), "{l}");
            }
            _ => panic!("neither VXLAN nor MPLSoUDP: {l}"),
        }
    }
    assert_eq!((vx, mu), (PER_ROUTE, PER_ROUTE));
    // The MPLS label under the tag.
    let labels = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&out)
        .args(["-d", "udp.port==6635,mpls", "-Y", "udp.dstport==6635"])
        .args(["-T", "fields", "-e", "vlan.id", "-e", "mpls.label"])
        .output()
        .expect("tshark");
    let labels = String::from_utf8_lossy(&labels.stdout).into_owned();
    assert_eq!(labels.lines().count(), PER_ROUTE, "{labels}");
    assert!(labels.lines().all(|l| l == "100\t200"), "{labels}");
}
