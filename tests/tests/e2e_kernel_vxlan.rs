//! End to end with real kernel peers, in network namespaces the tests create:
//! kernel pods on DPDK tap ports (moved into their namespaces by the data plane)
//! <-> vrouter-dp <-> veth (net_af_packet) <-> a remote node whose Linux `vxlan`
//! device is the far VTEP. IPv4 and IPv6 pings both ways, iperf3 TCP, tshark on
//! the remote's underlay interface (VNI and outer addresses), and malformed frames
//! from a pod (dropped, counted, forwarding goes on).
//!
//! Needs root, hugepages, iproute2, iperf3, ping, ethtool, tshark, python3
//! (`scripts/setup-host.sh`); fails, never skips, without them. Every namespace,
//! veth and file is removed at the end, also when a check fails.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vrouter_dp::runtime::demo::{
    self, DemoPlan, Topology, POD1, POD2, REMOTE, UNDERLAY_LOCAL, UNDERLAY_REMOTE,
};
use vrouter_dp::runtime::{self, netns, RunOptions, Summary};
use vrouter_tests::{require_hugepages, require_root, require_tool, tshark_fields};

/// Sets the stop flag when dropped: the data plane stops also when a check panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn prerequisites() {
    require_root();
    require_hugepages(128);
    for t in [
        "ip", "ping", "iperf3", "ethtool", "tshark", "nsenter", "python3",
    ] {
        require_tool(t);
    }
}

/// Builds the topology with names starting `prefix`, runs the data plane on its
/// config in this thread and `checks` beside it; returns the data plane's summary
/// and what `checks` returned. The topology is removed in every case.
fn with_data_plane<T: Send + 'static>(
    prefix: &str,
    checks: impl FnOnce(&DemoPlan) -> T + Send + 'static,
) -> (Summary, T) {
    prerequisites();
    let plan = DemoPlan::new(prefix);
    let topo = Topology::build(&plan).expect("build the namespaces, veth and VXLAN peer");
    let cfg = topo.config().expect("generated config");
    let eal = runtime::init_eal(&cfg, "e2e-kernel-vxlan", Path::new("/")).expect("EAL");
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let stop = Arc::clone(&stop);
        let plan = plan.clone();
        std::thread::spawn(move || {
            let _guard = StopOnDrop(Arc::clone(&stop));
            demo::wait_for_links(
                &[plan.pod_ns(1), plan.pod_ns(2)],
                plan.pod_ifname(),
                Duration::from_secs(120),
                &stop,
            )
            .expect("pod interfaces in their namespaces");
            checks(&plan)
        })
    };
    let opts = RunOptions {
        duration: Some(Duration::from_secs(600)),
        until_idle: None,
        stats_interval: Some(Duration::from_secs(2)),
        verbose: true,
        sysfs_root: "/".into(),
        control_api: false,
    };
    let summary = runtime::run(&eal, &cfg, &opts, Arc::clone(&stop));
    stop.store(true, Ordering::Relaxed);
    let joined = handle.join();
    drop(eal);
    drop(topo);
    let summary = summary.expect("data plane run");
    print!("{}", summary.render());
    match joined {
        Ok(t) => (summary, t),
        Err(p) => std::panic::resume_unwind(p),
    }
}

fn ping_ok(ns: &str, dst: IpAddr) {
    let p = demo::ping(ns, dst, 5, &AtomicBool::new(false))
        .unwrap_or_else(|e| panic!("ping {dst} from {ns}: {e}"));
    println!(
        "ping {ns} -> {dst}: {}/{} replies, avg {:.3} ms",
        p.received, p.sent, p.avg_ms
    );
    assert!(
        p.received >= 3,
        "ping {dst} from {ns}: only {}/{} replies",
        p.received,
        p.sent
    );
}

fn drops(s: &Summary, reason: &str) -> u64 {
    s.drops
        .iter()
        .find(|(r, _)| r == reason)
        .map_or(0, |(_, n)| *n)
}

#[test]
fn kernel_vxlan_peer_ping_both_ways_iperf3_and_wire_format() {
    let prefix = format!("vrk{}", std::process::id() % 100_000);
    let (summary, (bps, wire)) = with_data_plane(&prefix, |plan| {
        let (p1, p2, r) = (plan.pod_ns(1), plan.pod_ns(2), plan.remote_ns());
        // Local and VXLAN paths, IPv4 and IPv6, both directions.
        ping_ok(&p1, IpAddr::V4(POD2.v4));
        ping_ok(&p2, IpAddr::V6(POD1.v6));
        ping_ok(&p1, IpAddr::V4(REMOTE.v4));
        ping_ok(&p1, IpAddr::V6(REMOTE.v6));
        ping_ok(&r, IpAddr::V4(POD1.v4));
        ping_ok(&r, IpAddr::V6(POD2.v6));

        // The wire between the nodes, seen by tshark in the remote namespace.
        let pcap = plan.dir.join("underlay.pcapng");
        let cap = netns::command_in(
            &r,
            "tshark",
            &[
                "-q",
                "-i",
                &plan.remote_if(),
                "-f",
                "udp port 4789",
                "-w",
                pcap.to_str().unwrap(),
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tshark");
        let t0 = Instant::now();
        while std::fs::metadata(&pcap).map_or(0, |m| m.len()) == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "tshark never started capturing"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(500));
        ping_ok(&p1, IpAddr::V4(REMOTE.v4));
        ping_ok(&r, IpAddr::V6(POD1.v6));
        std::thread::sleep(Duration::from_millis(500));
        let st = Command::new("kill")
            .args(["-INT", &cap.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
        let out = cap.wait_with_output().expect("tshark");
        println!("tshark: {}", String::from_utf8_lossy(&out.stderr));
        let wire = tshark_fields(&pcap, &["ip.src", "ip.dst", "udp.dstport", "vxlan.vni"]);

        // TCP over the VXLAN path (and the local one).
        let never = AtomicBool::new(false);
        let bps =
            demo::iperf3(&r, &p1, IpAddr::V4(REMOTE.v4), 3, 5301, &never).expect("iperf3 VXLAN");
        let local =
            demo::iperf3(&p2, &p1, IpAddr::V4(POD2.v4), 2, 5302, &never).expect("iperf3 local");
        println!(
            "iperf3 TCP pod1 -> remote {:.3} Gbit/s, pod1 -> pod2 {:.3} Gbit/s",
            bps / 1e9,
            local / 1e9
        );
        (bps, wire)
    });
    assert!(bps > 0.0, "iperf3 moved nothing");
    // Outer addresses are the first ip.src/ip.dst of each frame, the inner ones follow.
    let (dp, rm) = (UNDERLAY_LOCAL.to_string(), UNDERLAY_REMOTE.to_string());
    let mut to_remote = 0;
    let mut from_remote = 0;
    for line in wire.lines() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 4, "{line}");
        let first = |s: &str| s.split(',').next().unwrap_or("").to_owned();
        assert_eq!(f[2], "4789", "outer UDP port: {line}");
        assert_eq!(f[3], "300", "VNI: {line}");
        match (first(f[0]).as_str(), first(f[1]).as_str()) {
            (s, d) if s == dp && d == rm => to_remote += 1,
            (s, d) if s == rm && d == dp => from_remote += 1,
            other => panic!("unexpected outer addresses {other:?}: {line}"),
        }
    }
    assert!(
        to_remote >= 3 && from_remote >= 3,
        "VXLAN frames both ways on the underlay: {to_remote} out, {from_remote} in\n{wire}"
    );
    let fwd: u64 = summary.ports.iter().map(|p| p.worker_tx).sum();
    assert!(fwd > 1000, "forwarded {fwd}");
}

/// Frames of a pod that are not IP the data plane can parse: a truncated header,
/// IHL 3, a total length beyond the frame, version 7, random bytes. All sent from
/// the pod's own MAC to the router MAC with EtherType IPv4.
const MALFORMED_PY: &str = r#"
import random, socket, sys
dev, src, n = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3])
hdr = bytes.fromhex("00005e000100") + src + b"\x08\x00"
ok = bytes([0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 3, 0, 7, 10, 3, 0, 8]) + bytes(20)
kinds = [
    ok[:10],
    bytes([0x43]) + ok[1:],
    ok[:2] + bytes([0x03, 0xe8]) + ok[4:],
    bytes([0x75]) + ok[1:],
]
rnd = random.Random(7)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
sent = 0
for i in range(n):
    for k in kinds:
        s.send(hdr + k)
        sent += 1
    s.send(hdr + bytes(rnd.getrandbits(8) for _ in range(40)))
    sent += 1
print(sent)
"#;

#[test]
fn malformed_frames_from_a_pod_are_dropped_counted_and_forwarding_goes_on() {
    let prefix = format!("vrm{}", std::process::id() % 100_000);
    let (summary, sent) = with_data_plane(&prefix, |plan| {
        let (p1, p2) = (plan.pod_ns(1), plan.pod_ns(2));
        ping_ok(&p1, IpAddr::V4(POD2.v4));
        let mac = POD1
            .mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let out = netns::exec_in(
            &p1,
            "python3",
            &["-c", MALFORMED_PY, plan.pod_ifname(), &mac, "20"],
        )
        .expect("send malformed frames");
        let sent: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("count of frames sent");
        // Applying the pod side again changes nothing (idempotent).
        let cfg = pmd_config::Config::load(&plan.config_path()).expect("config");
        let (host, spec) = netns::pod_netns_of(&cfg, "pod1").expect("pod1 has a netns");
        netns::move_into_netns(&host, &spec).expect("the pod side applied again");
        // The worker is still forwarding, both paths.
        std::thread::sleep(Duration::from_millis(500));
        ping_ok(&p1, IpAddr::V4(POD2.v4));
        ping_ok(&p2, IpAddr::V6(POD1.v6));
        ping_ok(&p1, IpAddr::V4(REMOTE.v4));
        sent
    });
    assert_eq!(sent, 100);
    let malformed = drops(&summary, "malformed");
    assert!(
        malformed >= sent,
        "{sent} malformed frames sent, {malformed} counted as malformed:\n{}",
        summary.render()
    );
    let pod1 = summary
        .ports
        .iter()
        .find(|p| p.name == "pod1")
        .expect("pod1 port");
    assert!(pod1.worker_rx >= sent, "pod1 received {}", pod1.worker_rx);
}
