//! A fabric bond (DPDK `net_bonding`, active-backup) over two vdev members: the
//! underlay and the physical interface sit on the bond, pod traffic routed over
//! VXLAN leaves through the bond, and the members are not ports of their own.
//! (`net_null` members: active-backup sets the members' MAC, which `net_pcap`
//! cannot do, so the frames are counted, not captured.)
//!
//! And an LACP (mode 4) bond with `lacp_rate = "fast"`: the rate reaches DPDK's
//! mode-4 timers (read back from DPDK on the start-up line) and the bond forwards.
//! Its members are `net_ring` loopback devices, so the bond negotiates LACP with
//! itself and distributes once its members are in sync. EAL starts once per
//! process, so that test runs in a child process of this test binary.

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use pmd_config::Config;
use vrouter_dp::runtime::{self, RunOptions};
use vrouter_tests::{pod_udp_frame, require_hugepages, write_pcap};

const FRAMES: usize = 64;

/// The forwarding state both bond tests run: the pod's traffic to 10.245.0.0/16 over
/// VXLAN (VNI 100) through the bond.
const STATE: &str = r#"[underlay]
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
"#;

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
{STATE}"#,
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

/// Set in the child process that runs the LACP bond.
const LACP_CHILD: &str = "VROUTER_TEST_LACP_CHILD";

#[test]
fn lacp_bond_with_fast_rate_applies_dpdk_timers_and_forwards() {
    require_hugepages(128);
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "lacp_fast_bond_child",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LACP_CHILD, "1")
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "the child test ran\n{stdout}");
    // The start-up line of the bond port, with the timers DPDK reports back.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("port bond0 = "))
        .unwrap_or_else(|| panic!("no start-up line for bond0\n{stdout}"));
    assert!(
        line.contains(
            "lacp rate fast (LACPDU every 1000 ms (900 ms to a fast partner), \
             partner timeout 90000 ms)"
        ),
        "{line}"
    );
}

/// The LACP bond itself; run by the test above in a process of its own.
#[test]
#[ignore = "run in a child process by lacp_bond_with_fast_rate_applies_dpdk_timers_and_forwards"]
fn lacp_fast_bond_child() {
    if std::env::var_os(LACP_CHILD).is_none() {
        return;
    }
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
socket_mem_mb = [256]
mbufs_per_pool = 8191
[eal]
in_memory = true
[[ports]]
name = "pod"
vdev = "net_pcap0,rx_pcap={pod},tx_pcap={podout},infinite_rx=1"
role = "pod"
[[ports]]
name = "fab0"
vdev = "net_ring0"
role = "fabric"
[[ports]]
name = "fab1"
vdev = "net_ring1"
role = "fabric"
[bond]
name = "bond0"
mode = "lacp"
members = ["fab0", "fab1"]
lacp_rate = "fast"
mac = "02:aa:00:00:00:11"
{STATE}"#,
        pod = d("pod.pcap"),
        podout = d("pod-out.pcap"),
    );
    let cfg = Config::from_toml_str(&toml).expect("valid config");
    let eal = runtime::init_eal(&cfg, "bond-lacp", std::path::Path::new("/")).expect("EAL");
    let opts = RunOptions {
        // Long enough for the members to reach DISTRIBUTING (DPDK's 2 s aggregate
        // wait plus a few LACPDU exchanges, about 4 s) while pod traffic keeps
        // coming, with room for a loaded machine.
        duration: Some(Duration::from_secs(15)),
        until_idle: None,
        stats_interval: None,
        verbose: true,
        sysfs_root: "/".into(),
        control_api: false,
    };
    let summary = runtime::run(&eal, &cfg, &opts, Arc::new(AtomicBool::new(false))).expect("run");
    drop(eal);
    eprintln!("{}", summary.render());
    let bond = summary
        .ports
        .iter()
        .find(|p| p.name == "bond0")
        .expect("the bond is a port");
    assert!(
        bond.stats.tx_packets > 0,
        "the bond forwarded once LACP was up: {bond:?}"
    );
    assert!(bond.worker_tx > 0, "{bond:?}");
}
