//! The running data plane's forwarding pipeline on DPDK: pod frames read from a pcap
//! are routed in the pod's VRF, learned in the flow table and encapsulated towards a
//! remote node over VXLAN, MPLSoUDP and MPLSoGRE (one route each); the fabric pcap is
//! checked with tshark's dissectors (VNI, label, outer and inner addresses, ports).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use pmd_config::Config;
use vrouter_dp::runtime::{self, RunOptions};
use vrouter_tests::{pod_udp_frame, require_hugepages, require_tool, tshark_fields, write_pcap};

const PER_ROUTE: usize = 50;

#[test]
fn pod_to_remote_over_each_tunnel_type() {
    require_hugepages(256);
    require_tool("tshark");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |n: &str| dir.path().join(n).display().to_string();
    let mut frames = Vec::new();
    for i in 0..PER_ROUTE {
        frames.push(pod_udp_frame([10, 245, 0, 10], i));
        frames.push(pod_udp_frame([10, 246, 0, 10], i));
        frames.push(pod_udp_frame([10, 247, 0, 10], i));
    }
    write_pcap(dir.path().join("pod.pcap").as_path(), &frames);
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
vdev = "net_pcap0,rx_pcap={pod},tx_pcap={podout}"
role = "pod"
[[ports]]
name = "fabric"
vdev = "net_pcap1,rx_pcap={empty},tx_pcap={fab}"
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
[[interfaces]]
id = 1
kind = "virtual"
port = "pod"
mac = "02:00:00:00:00:01"
vrf = 1
policy = true
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
[[nexthops]]
id = 22
kind = "tunnel"
encap = "mplsogre"
dst = "10.10.0.14"
dmac = "02:bb:00:00:00:12"
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
[[routes]]
vrf = 1
prefix = "10.247.0.0/16"
nexthop = 22
label = 300
"#,
        pod = d("pod.pcap"),
        podout = d("pod-out.pcap"),
        empty = d("empty.pcap"),
        fab = d("fabric.pcap"),
    );
    let cfg = Config::from_toml_str(&toml).expect("valid config");
    let eal = runtime::init_eal(&cfg, "pcap-tunnels", std::path::Path::new("/")).expect("EAL");
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
    let n = frames.len() as u64;
    assert_eq!(summary.ports[0].worker_rx, n);
    assert_eq!(
        summary.ports[1].worker_tx, n,
        "every frame encapsulated out of the fabric: {:?}",
        summary.drops
    );
    assert!(summary.drops.is_empty(), "{:?}", summary.drops);
    assert_eq!(
        summary.flows,
        Some(2 * n as usize),
        "forward and reverse flow per 5-tuple"
    );

    let fab = dir.path().join("fabric.pcap");
    let vx = tshark_fields(
        &fab,
        &[
            "eth.src",
            "eth.dst",
            "ip.src",
            "ip.dst",
            "udp.dstport",
            "vxlan.vni",
            "ip.ttl",
        ],
    );
    let vx: Vec<&str> = vx.lines().filter(|l| l.contains("|4789")).collect();
    assert_eq!(vx.len(), PER_ROUTE, "VXLAN frames");
    for l in &vx {
        let f: Vec<&str> = l.split('|').collect();
        assert!(
            f[0].starts_with("02:aa:00:00:00:11,"),
            "outer source MAC: {l}"
        );
        assert!(
            f[1].starts_with("02:bb:00:00:00:12,"),
            "outer destination MAC: {l}"
        );
        assert!(
            f[2].starts_with("10.10.0.11,10.244.0."),
            "outer/inner source: {l}"
        );
        assert!(
            f[3].starts_with("10.10.0.12,10.245.0.10"),
            "outer/inner destination: {l}"
        );
        assert_eq!(f[5], "100", "VNI: {l}");
        assert!(f[6].ends_with(",63"), "inner TTL decremented: {l}");
    }
    let mu = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&fab)
        .args(["-d", "udp.port==6635,mpls", "-Y", "udp.dstport==6635"])
        .args([
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "mpls.label",
            "-e",
            "mpls.bottom",
            "-e",
            "udp.srcport",
        ])
        .output()
        .expect("tshark");
    let mu = String::from_utf8_lossy(&mu.stdout).into_owned();
    let mu: Vec<&str> = mu.lines().collect();
    assert_eq!(mu.len(), PER_ROUTE, "MPLSoUDP frames");
    for l in &mu {
        let f: Vec<&str> = l.split('|').collect();
        assert!(f[0].starts_with("10.10.0.11,10.244.0."), "{l}");
        assert!(f[1].starts_with("10.10.0.13,10.246.0.10"), "{l}");
        assert_eq!(f[2], "200", "label: {l}");
        assert_eq!(f[3], "1", "bottom of stack: {l}");
        let sport: u16 = f[4].split(',').next().unwrap_or("0").parse().expect("port");
        assert!(sport >= 49152, "entropy source port in 49152-65535: {l}");
    }
    let gre = tshark_fields(&fab, &["ip.src", "ip.dst", "gre.proto", "mpls.label"]);
    let gre: Vec<&str> = gre.lines().filter(|l| l.contains("|0x8847|")).collect();
    assert_eq!(gre.len(), PER_ROUTE, "MPLSoGRE frames");
    for l in &gre {
        let f: Vec<&str> = l.split('|').collect();
        assert!(f[1].starts_with("10.10.0.14,10.247.0.10"), "{l}");
        assert_eq!(f[3], "300", "label: {l}");
    }
}
