//! A fabric bond (DPDK `net_bonding`, active-backup) over two vdev members: the
//! underlay and the physical interface sit on the bond, pod traffic routed over
//! VXLAN leaves through the bond, and the members are not ports of their own.
//! (`net_null` members: active-backup sets the members' MAC, which `net_pcap`
//! cannot do, so the frames are counted, not captured.)

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use pmd_config::Config;
use vrouter_dp::runtime::{self, RunOptions};
use vrouter_tests::{pod_udp_frame, require_hugepages, write_pcap};

const FRAMES: usize = 64;

#[test]
fn vxlan_leaves_through_the_active_member_of_a_fabric_bond() {
    require_hugepages(256);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |n: &str| dir.path().join(n).display().to_string();
    let frames: Vec<Vec<u8>> = (0..FRAMES)
        .map(|i| pod_udp_frame([10, 245, 0, 10], i))
        .collect();
    write_pcap(dir.path().join("pod.pcap").as_path(), &frames);
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
name = "fab0"
vdev = "net_null1,no-rx=1"
role = "fabric"
[[ports]]
name = "fab1"
vdev = "net_null2,no-rx=1"
role = "fabric"
[bond]
name = "bond0"
mode = "active-backup"
members = ["fab0", "fab1"]
mac = "02:aa:00:00:00:11"
[underlay]
interface = "bond0"
ipv4 = "10.10.0.11/24"
[[vrfs]]
id = 1
[[interfaces]]
id = 0
kind = "physical"
port = "bond0"
vrf = 0
[[interfaces]]
id = 1
kind = "virtual"
port = "pod"
mac = "02:00:00:00:00:01"
vrf = 1
[[nexthops]]
id = 20
kind = "tunnel"
encap = "vxlan"
dst = "10.10.0.12"
dmac = "02:bb:00:00:00:12"
[[routes]]
vrf = 1
prefix = "10.245.0.0/16"
nexthop = 20
vni = 100
"#,
        pod = d("pod.pcap"),
        podout = d("pod-out.pcap"),
    );
    let cfg = Config::from_toml_str(&toml).expect("valid config");
    let names: Vec<String> = runtime::runtime_ports(&cfg, std::path::Path::new("/"))
        .expect("ports")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        names,
        ["pod", "bond0"],
        "members are not ports of their own"
    );
    let eal = runtime::init_eal(&cfg, "bond", std::path::Path::new("/")).expect("EAL");
    let opts = RunOptions {
        duration: Some(Duration::from_secs(30)),
        until_idle: Some(Duration::from_millis(800)),
        stats_interval: None,
        verbose: false,
        sysfs_root: "/".into(),
        control_api: false,
    };
    let summary = runtime::run(&eal, &cfg, &opts, Arc::new(AtomicBool::new(false))).expect("run");
    drop(eal);
    eprintln!("{}", summary.render());
    assert!(summary.drops.is_empty(), "{:?}", summary.drops);
    assert_eq!(
        summary.ports[1].worker_tx, FRAMES as u64,
        "sent on the bond"
    );

    // What left through the bond, as the bonding driver counts it (its members').
    assert_eq!(
        summary.ports[1].stats.tx_packets, FRAMES as u64,
        "{:?}",
        summary.ports[1]
    );
}
