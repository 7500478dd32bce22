//! End to end over a VLAN fabric with a real kernel peer: the kernel topology of
//! `e2e_kernel_vxlan` (pods on DPDK taps, the fabric a veth driven by
//! net_af_packet, a remote node whose Linux `vxlan` device is the far VTEP), with
//! the data plane on `underlay.vlan = 100` and the remote node on VLAN 100 too: its
//! underlay address and VXLAN device on a VLAN sub-interface of its veth, or, on a
//! kernel without 802.1Q sub-interfaces, a tc BPF program on its veth that tags
//! what it sends with VLAN 100 and untags what it receives (dropping untagged
//! frames and other VLANs).
//! Pings both ways between a pod and the remote pod prove that the tags match on
//! both sides; tshark on the remote's veth sees every VXLAN frame, both ways, on
//! VLAN 100.
//!
//! Needs root, hugepages, iproute2, ping, ethtool, tshark, nsenter, and without
//! 802.1Q sub-interfaces tc, clang and the libbpf headers (`scripts/setup-host.sh`);
//! fails, never skips, without them. Every namespace, veth and file is removed at
//! the end, also when a check fails.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vrouter_dp::runtime::demo::{
    self, DemoPlan, Topology, FABRIC_MAC, POD1, REMOTE, ROUTER_MAC, UNDERLAY_LOCAL, UNDERLAY_REMOTE,
};
use vrouter_dp::runtime::{self, netns, RunOptions, Summary};
use vrouter_tests::{require_hugepages, require_root, require_tool, tshark_fields};

const VID: u16 = 100;
/// The remote's VLAN sub-interface.
const VLAN_IF: &str = "vlan100";

/// Sets the stop flag when dropped: the data plane stops also when a check panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn ip_in(ns: &str, args: &[&str]) {
    netns::ip_in(Path::new(ns), args)
        .unwrap_or_else(|e| panic!("ip -n {ns} {}: {e}", args.join(" ")));
}

/// The remote's tagger when the kernel has no 802.1Q sub-interfaces: VLAN `VID`
/// pushed on what leaves the veth, popped from what arrives (untagged frames and
/// other VLANs dropped).
const TAGGER_C: &str = r#"
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
SEC("classifier/push") int push(struct __sk_buff *skb) {
    if (!skb->vlan_present)
        bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), 100);
    return TC_ACT_OK;
}
SEC("classifier/pop") int pop(struct __sk_buff *skb) {
    if (!skb->vlan_present || (skb->vlan_tci & 0xfff) != 100)
        return TC_ACT_SHOT;
    bpf_skb_vlan_pop(skb);
    return TC_ACT_OK;
}
char _license[] SEC("license") = "GPL";
"#;

/// Puts the remote node on VLAN `VID` with a tc BPF tagger on its veth.
fn remote_tagger(plan: &DemoPlan) {
    for t in ["tc", "clang"] {
        require_tool(t);
    }
    let rns = plan.remote_ns();
    let rfab = plan.remote_if();
    let src = plan.dir.join("vlan-tagger.c");
    let obj = plan.dir.join("vlan-tagger.o");
    std::fs::write(&src, TAGGER_C).expect("write the tagger source");
    let out = Command::new("clang")
        .args([
            "-O2",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("run clang");
    assert!(
        out.status.success(),
        "clang -target bpf (needs the libbpf headers, `scripts/setup-host.sh`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let obj = obj.to_str().unwrap();
    let tc = |args: &[&str]| {
        let out = Command::new("tc")
            .args(["-n", &rns])
            .args(args)
            .output()
            .expect("run tc");
        assert!(
            out.status.success(),
            "tc -n {rns} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    tc(&["qdisc", "add", "dev", &rfab, "clsact"]);
    for (dir, sec) in [("egress", "classifier/push"), ("ingress", "classifier/pop")] {
        tc(&[
            "filter", "add", "dev", &rfab, dir, "bpf", "da", "obj", obj, "sec", sec,
        ]);
    }
}

/// Moves the remote node onto VLAN `VID`: its underlay address goes to a VLAN
/// sub-interface of its veth, and its VXLAN device (and the remote pod on it) is
/// made again over that sub-interface. On a kernel without 802.1Q sub-interfaces,
/// a tc BPF tagger on the veth does the tagging instead. Returns which.
fn remote_on_vlan(plan: &DemoPlan) -> &'static str {
    let rns = plan.remote_ns();
    let rfab = plan.remote_if();
    let vid = VID.to_string();
    let underlay = format!("{UNDERLAY_REMOTE}/24");
    let sub = netns::ip_in(
        Path::new(&rns),
        &[
            "link", "add", "link", &rfab, "name", VLAN_IF, "type", "vlan", "id", &vid,
        ],
    );
    match sub {
        Ok(_) => {}
        Err(e) if e.to_string().contains("Unknown device type") => {
            remote_tagger(plan);
            return "tc BPF tagger on the veth (no 802.1Q sub-interfaces in this kernel)";
        }
        Err(e) => panic!("VLAN sub-interface: {e}"),
    }
    // The VXLAN device is bound to the untagged veth: delete it (and the macvlan
    // pod interface over it).
    ip_in(&rns, &["link", "delete", "dev", "vxlan0"]);
    ip_in(&rns, &["addr", "flush", "dev", &rfab]);
    ip_in(&rns, &["addr", "replace", &underlay, "dev", VLAN_IF]);
    ip_in(&rns, &["link", "set", "dev", VLAN_IF, "up"]);
    netns::ethtool_tx_off(Some(&rns), VLAN_IF).expect("tx checksum offload off on the VLAN");
    ip_in(
        &rns,
        &[
            "neigh",
            "replace",
            &UNDERLAY_LOCAL.to_string(),
            "lladdr",
            &netns::mac_string(FABRIC_MAC),
            "dev",
            VLAN_IF,
            "nud",
            "permanent",
        ],
    );
    ip_in(
        &rns,
        &[
            "link",
            "add",
            "vxlan0",
            "address",
            "02:00:0a:03:01:fe",
            "type",
            "vxlan",
            "id",
            &plan.vni.to_string(),
            "dstport",
            "4789",
            "local",
            &UNDERLAY_REMOTE.to_string(),
            "remote",
            &UNDERLAY_LOCAL.to_string(),
            "dev",
            VLAN_IF,
        ],
    );
    ip_in(&rns, &["link", "set", "dev", "vxlan0", "up"]);
    netns::ethtool_tx_off(Some(&rns), "vxlan0").expect("tx checksum offload off on vxlan0");
    let rm = netns::mac_string(ROUTER_MAC);
    ip_in(
        &rns,
        &[
            "link", "add", "vxpod0", "link", "vxlan0", "address", &rm, "type", "macvlan", "mode",
            "private",
        ],
    );
    netns::configure_in_netns(&netns::PodNetns {
        netns: rns.clone().into(),
        name: "vxpod0".into(),
        mac: None,
        addrs: vec![(IpAddr::V4(REMOTE.v4), 32), (IpAddr::V6(REMOTE.v6), 128)],
        mtu: None,
        gateway_v4: Some(netns::gateway_v4_for(REMOTE.v4)),
        gateway_v6: Some(netns::gateway_v6_for(REMOTE.v6)),
    })
    .expect("the remote pod on the new VXLAN device");
    for gw in [
        netns::gateway_v4_for(REMOTE.v4).to_string(),
        netns::gateway_v6_for(REMOTE.v6).to_string(),
    ] {
        ip_in(
            &rns,
            &[
                "neigh",
                "replace",
                &gw,
                "lladdr",
                &rm,
                "dev",
                "vxpod0",
                "nud",
                "permanent",
            ],
        );
    }
    "VLAN sub-interface"
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

#[test]
fn kernel_vxlan_peer_on_vlan_100_pings_both_ways() {
    require_root();
    require_hugepages(128);
    for t in ["ip", "ping", "ethtool", "tshark", "nsenter"] {
        require_tool(t);
    }
    let prefix = format!("vrv{}", std::process::id() % 100_000);
    let plan = DemoPlan::new(&prefix);
    let topo = Topology::build(&plan).expect("build the namespaces, veth and VXLAN peer");
    let how = remote_on_vlan(&plan);
    println!("remote node on VLAN {VID}: {how}");
    let mut cfg = topo.config().expect("generated config");
    cfg.underlay
        .as_mut()
        .expect("the demo has an underlay")
        .vlan = Some(VID);
    let eal = runtime::init_eal(&cfg, "e2e-kernel-vlan", Path::new("/")).expect("EAL");
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
            let (p1, r) = (plan.pod_ns(1), plan.remote_ns());
            let pcap = plan.dir.join("vlan-underlay.pcapng");
            let cap = netns::command_in(
                &r,
                "tshark",
                &[
                    "-q",
                    "-i",
                    &plan.remote_if(),
                    "-f",
                    "vlan and udp port 4789",
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
            ping_ok(&p1, IpAddr::V6(REMOTE.v6));
            ping_ok(&r, IpAddr::V4(POD1.v4));
            std::thread::sleep(Duration::from_millis(500));
            let st = Command::new("kill")
                .args(["-INT", &cap.id().to_string()])
                .status()
                .expect("kill");
            assert!(st.success());
            let out = cap.wait_with_output().expect("tshark");
            println!("tshark: {}", String::from_utf8_lossy(&out.stderr));
            tshark_fields(&pcap, &["vlan.id", "ip.src", "ip.dst", "vxlan.vni"])
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
    let summary: Result<Summary, _> = runtime::run(&eal, &cfg, &opts, Arc::clone(&stop));
    stop.store(true, Ordering::Relaxed);
    let joined = handle.join();
    drop(eal);
    drop(topo);
    let summary = summary.expect("data plane run");
    print!("{}", summary.render());
    let wire = match joined {
        Ok(w) => w,
        Err(p) => std::panic::resume_unwind(p),
    };
    let (dp, rm) = (UNDERLAY_LOCAL.to_string(), UNDERLAY_REMOTE.to_string());
    let (mut to_remote, mut from_remote) = (0, 0);
    for line in wire.lines() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 4, "{line}");
        let first = |s: &str| s.split(',').next().unwrap_or("").to_owned();
        assert_eq!(f[0], VID.to_string(), "VLAN id: {line}");
        assert_eq!(f[3], plan.vni.to_string(), "VNI: {line}");
        match (first(f[1]).as_str(), first(f[2]).as_str()) {
            (s, d) if s == dp && d == rm => to_remote += 1,
            (s, d) if s == rm && d == dp => from_remote += 1,
            other => panic!("unexpected outer addresses {other:?}: {line}"),
        }
    }
    assert!(
        to_remote >= 9 && from_remote >= 9,
        "tagged VXLAN frames both ways: {to_remote} out, {from_remote} in\n{wire}"
    );
    assert!(
        !summary.drops.iter().any(|(r, _)| r == "vlan_mismatch"),
        "nothing of the remote's was refused: {:?}",
        summary.drops
    );
}
