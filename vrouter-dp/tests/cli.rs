//! The `vrouter-dp` binary: the default run (the kernel-pod demo: namespaces, ping
//! and iperf3 through the data plane) completes with a summary; the no-NIC demo
//! (`demo --null`) prints periodic counters and a summary and stops cleanly on
//! SIGINT with exit 0; the EAL arguments are printed. Needs hugepages and root
//! (scripts/setup-host.sh).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-dp");

fn require_hugepages() {
    let free = std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        free >= 128,
        "needs 128 free 2 MiB hugepages, found {free}: run `sudo scripts/setup-host.sh`"
    );
}

fn summary_rx(out: &str, port: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(port) && l.contains("net_null"))
        .unwrap_or_else(|| panic!("no summary line for {port} in:\n{out}"));
    line.split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad summary line {line:?}"))
}

#[test]
fn null_demo_runs_and_prints_a_summary() {
    require_hugepages();
    let out = Command::new(BIN)
        .args(["demo", "--null", "--duration", "3"])
        .output()
        .expect("run vrouter-dp");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rxq 0 -> worker lcore 1"),
        "binding table:\n{stdout}"
    );
    assert!(stdout.contains("=== vrouter-dp summary"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with('[') && l.contains("Mpps")),
        "periodic line:\n{stdout}"
    );
    assert!(summary_rx(&stdout, "null0") > 1_000_000, "{stdout}");
    assert!(summary_rx(&stdout, "null1") > 1_000_000, "{stdout}");
}

/// Under load (two net_null ports forwarding at full rate), `signal` stops the data
/// plane within 5 s, with exit 0 and the summary.
fn stops_cleanly_under_load(signal: &str) {
    require_hugepages();
    let child = Command::new(BIN)
        .args(["demo", "--null", "--duration", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vrouter-dp");
    std::thread::sleep(Duration::from_secs(2));
    let pid = child.id().to_string();
    let st = Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    let t0 = Instant::now();
    let out = child.wait_with_output().expect("wait");
    let took = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{stdout}", out.status);
    assert!(stdout.contains("=== vrouter-dp summary"), "{stdout}");
    assert!(
        summary_rx(&stdout, "null0") > 0,
        "it was forwarding: {stdout}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?} to stop");
}

#[test]
fn sigint_stops_cleanly_with_a_summary() {
    stops_cleanly_under_load("-INT");
}

#[test]
fn sigterm_under_load_stops_within_5s() {
    stops_cleanly_under_load("-TERM");
}

/// With no arguments, as root: two kernel pods on tap ports and a kernel VXLAN peer
/// in namespaces; ping and iperf3 through the data plane; exit 0 with a summary that
/// shows forwarded packets; nothing left behind.
#[test]
fn default_run_is_the_kernel_pod_demo() {
    require_hugepages();
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap();
    assert_eq!(
        uid, "0",
        "the demo needs root: run `sudo scripts/setup-host.sh`"
    );
    let out = Command::new(BIN).output().expect("run vrouter-dp");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("=== vrouter-dp summary"), "{stdout}");
    assert!(stdout.contains("=== demo results ==="), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with('[') && l.contains("| pod1 ")),
        "periodic per-port lines:\n{stdout}"
    );
    // The pods' taps live in the pods' namespaces, and their links are read
    // there (the tap PMD, asking in this namespace, would say down).
    assert!(
        stdout.lines().any(|l| l.starts_with('[')
            && l.contains("| pod1 link up:")
            && l.contains("| pod2 link up:")),
        "pod links up in a periodic line:\n{stdout}"
    );
    // The pods' start-up chatter (MLD, neighbour discovery from the link-local
    // or unspecified address, with the pod's MAC from the tap's creation on) is
    // not taken for spoofing.
    assert!(
        !stdout.contains("drop spoofed_source"),
        "a pod's own packets counted as spoofed:\n{stdout}"
    );
    let pings: Vec<&str> = stdout.lines().filter(|l| l.starts_with("ping ")).collect();
    assert_eq!(pings.len(), 2, "{stdout}");
    for l in &pings {
        assert!(l.contains(" replies, rtt min/avg/max "), "{l}");
        assert!(!l.contains(" 0/"), "{l}");
    }
    let iperf = stdout.lines().filter(|l| l.starts_with("iperf3 ")).count();
    assert_eq!(iperf, 2, "{stdout}");
    let fwd: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("packets forwarded: "))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no forwarded count in:\n{stdout}"));
    assert!(fwd > 100, "{stdout}");
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let ns = String::from_utf8_lossy(&ns.stdout);
    assert!(!ns.contains("vrdp-"), "namespaces left behind: {ns}");
}

#[test]
fn prints_eal_args_of_the_default_config() {
    let out = Command::new(BIN)
        .arg("--print-eal-args")
        .output()
        .expect("run");
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    for want in [
        "--no-pci",
        "--in-memory",
        "--vdev net_null0",
        "--vdev net_null1",
        "--main-lcore 0",
    ] {
        assert!(s.contains(want), "missing {want} in {s}");
    }
}

#[test]
fn bad_config_names_the_field() {
    let dir = std::env::temp_dir().join(format!("vrdp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let p = dir.join("bad.toml");
    std::fs::write(&p, "[cores]\nworkers = [1]\ncontrol = 0\nbogus = 3\n").expect("write");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&p)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("bogus"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The agent API of a running data plane: traffic to a prefix without a route is
/// dropped as `no_route` until `vrouterctl` adds a tunnel next-hop and the route,
/// then it is encapsulated out of the fabric, with no restart.
#[test]
fn vrouterctl_programs_a_running_pipeline() {
    require_hugepages();
    let ctl = env!("CARGO_BIN_EXE_vrouterctl");
    let dir = std::env::temp_dir().join(format!("vrdp-ctl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    // 64 frames from the pod to 10.246.0.10 (UDP), replayed forever.
    let mut pcap = vec![
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ];
    for i in 0..64u8 {
        let mut f = vec![
            0x00, 0x00, 0x5e, 0x00, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00,
        ];
        let mut ip = vec![
            0x45,
            0,
            0,
            46,
            0,
            0,
            0x40,
            0,
            64,
            17,
            0,
            0,
            10,
            244,
            0,
            2 + i,
            10,
            246,
            0,
            10,
        ];
        let mut s: u32 = 0;
        for c in ip.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        let ck = !(s as u16);
        ip[10] = (ck >> 8) as u8;
        ip[11] = ck as u8;
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x27, 0x10, 0x1f, 0x90, 0, 26, 0, 0]);
        f.extend_from_slice(&[0u8; 18]);
        let len = f.len() as u32;
        pcap.extend_from_slice(&[0u8; 8]);
        pcap.extend_from_slice(&len.to_le_bytes());
        pcap.extend_from_slice(&len.to_le_bytes());
        pcap.extend_from_slice(&f);
    }
    let input = dir.join("pod.pcap");
    std::fs::write(&input, &pcap).expect("write pcap");
    let sock = dir.join("dp.sock");
    let cfg = dir.join("dp.toml");
    std::fs::write(
        &cfg,
        format!(
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
vdev = "net_pcap0,rx_pcap={input},infinite_rx=1"
role = "pod"
[[ports]]
name = "fabric"
vdev = "net_null0,no-rx=1"
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
[control]
socket = "{sock}"
"#,
            input = input.display(),
            sock = sock.display()
        ),
    )
    .expect("write config");
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .args(["--duration", "60", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vrouter-dp");
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the agent socket never appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = |args: &[&str]| {
        let o = Command::new(ctl)
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .output()
            .expect("run vrouterctl");
        assert!(
            o.status.success(),
            "vrouterctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    std::thread::sleep(Duration::from_secs(1));
    let before = run(&["dropstats", "--json"]);
    assert!(before.contains("no_route"), "{before}");
    run(&[
        "nh",
        "add",
        "--id",
        "21",
        "--type",
        "tunnel",
        "--tunnel",
        "mpls-udp",
        "--vif",
        "0",
        "--src",
        "10.10.0.11",
        "--dst",
        "10.10.0.13",
        "--dmac",
        "02:bb:00:00:00:12",
    ]);
    run(&[
        "rt",
        "add",
        "--vrf",
        "1",
        "10.246.0.0/16",
        "--nh",
        "21",
        "--label",
        "200",
    ]);
    let rt = run(&["rt", "list", "--vrf", "1"]);
    assert!(rt.contains("10.246.0.0/16"), "{rt}");
    std::thread::sleep(Duration::from_secs(2));
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fabric_tx: u64 = stdout
        .lines()
        .find(|l| l.starts_with("fabric"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no fabric line in {stdout}"));
    assert!(
        fabric_tx > 0,
        "traffic flows after the route was added:\n{stdout}"
    );
    assert!(
        stdout.contains("drop no_route:"),
        "traffic was dropped before it:\n{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
