//! Stage mode on the real daemon: `vrouter-dp --stage STAGE` on a pcap input.
//!
//! * `--stage parse`: pod frames read in a loop (`infinite_rx`) into `net_null`;
//!   the per-second stage lines appear with traffic and cycles per packet, and
//!   the summary's stage totals count every packet as parsed.
//! * `--stage encap`: a finite pcap of pod frames into a `tx_pcap`; every output
//!   frame is the input VXLAN-encapsulated (VNI 100, to the remote node), and the
//!   stage totals count them.
//!
//! Needs root, hugepages and the `vrouter-dp` binary of this workspace
//! (`cargo build -p vrouter-dp --bins` with the same target dir).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use vrouter_tests::{pod_udp_frame, read_pcap, require_hugepages, require_root, write_pcap};

const FRAMES: usize = 200;

/// A workspace binary, next to this test's own executable.
fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p vrouter-dp --bins` with the same target dir first",
        p.display()
    );
    p
}

/// Pod -> remote pod over VXLAN (VNI 100), with `gen` and `sink` vdevs.
fn config(gen: &str, sink: &str) -> String {
    format!(
        r#"
[cores]
workers = [1]
control = 0
[memory]
socket_mem_mb = [128]
mbufs_per_pool = 8191
mbuf_cache = 64
[eal]
in_memory = true
[[ports]]
name = "gen"
vdev = "{gen}"
role = "pod"
[[ports]]
name = "sink"
vdev = "{sink}"
role = "fabric"
[control]
enabled = false
[underlay]
interface = "sink"
ipv4 = "10.10.0.11/24"
[[vrfs]]
id = 1
[[interfaces]]
id = 0
kind = "physical"
port = "sink"
mac = "02:aa:00:00:00:11"
mtu = 9000
[[interfaces]]
id = 1
kind = "virtual"
port = "gen"
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
"#
    )
}

fn frames() -> Vec<Vec<u8>> {
    (0..FRAMES)
        .map(|i| pod_udp_frame([10, 245, 0, (i % 250) as u8 + 1], i % 200))
        .collect()
}

/// Runs the daemon in stage mode for `secs`; returns its stdout.
fn run_stage(dir: &Path, stage: &str, cfg: &str, secs: u32) -> String {
    let path = dir.join(format!("{stage}.toml"));
    std::fs::write(&path, cfg).unwrap();
    let out = Command::new(bin("vrouter-dp"))
        .arg("--config")
        .arg(&path)
        .args(["--stage", stage, "--duration", &secs.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "vrouter-dp --stage {stage} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The value after `key` in `line` (`key value`).
fn field(line: &str, key: &str) -> Option<f64> {
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == key {
            return it.next().and_then(|v| v.parse().ok());
        }
    }
    None
}

/// A port's `rx` or `tx` rate (Mpps) in a stage line
/// (`... | NAME link up: rx A Mpps tx B Mpps | ...`).
fn rate(line: &str, port: &str, dir: &str) -> Option<f64> {
    let seg = line
        .split(" | ")
        .find(|s| s.split_whitespace().next() == Some(port))?;
    field(seg, dir)
}

/// The summary's stage line.
fn totals<'a>(out: &'a str, stage: &str) -> &'a str {
    let prefix = format!("stage {stage}: ");
    out.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no stage totals in the summary: {out}"))
}

#[test]
fn parse_stage_prints_stage_lines_and_counts_every_packet() {
    require_root();
    require_hugepages(64);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pod.pcap");
    write_pcap(&input, &frames());
    let cfg = config(
        &format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()),
        "net_null0,no-rx=1",
    );
    let out = run_stage(dir.path(), "parse", &cfg, 4);
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with('[') && l.contains("] stage parse"))
        .collect();
    assert!(lines.len() >= 2, "periodic stage lines expected: {out}");
    // Traffic flows from gen to sink, and the worker's cycles are measured.
    let busy = lines
        .iter()
        .find(|l| rate(l, "gen", "rx").is_some_and(|v| v > 0.0));
    let busy = busy.unwrap_or_else(|| panic!("no line with traffic: {out}"));
    assert!(
        rate(busy, "sink", "tx").is_some_and(|v| v > 0.0),
        "the sink transmits: {busy}"
    );
    assert!(
        field(busy, "cycles/packet").is_some_and(|c| c > 0.0),
        "{busy}"
    );
    let t = totals(&out, "parse");
    let rx = field(t, "rx").unwrap();
    assert!(rx >= FRAMES as f64, "{t}");
    assert_eq!(field(t, "packets"), Some(rx), "{t}");
    assert_eq!(field(t, "ok"), Some(rx), "every frame parses: {t}");
    assert_eq!(field(t, "failed"), Some(0.0), "{t}");
    assert_eq!(field(t, "tx"), Some(rx), "every parsed frame is sent: {t}");
    assert_eq!(field(t, "flows_learned"), Some(0.0), "{t}");
}

#[test]
fn encap_stage_sends_every_frame_vxlan_encapsulated() {
    require_root();
    require_hugepages(64);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pod.pcap");
    let output = dir.path().join("fabric.pcap");
    let sent = frames();
    write_pcap(&input, &sent);
    let cfg = config(
        &format!("net_pcap0,rx_pcap={}", input.display()),
        &format!("net_pcap1,tx_pcap={}", output.display()),
    );
    let out = run_stage(dir.path(), "encap", &cfg, 3);
    assert!(
        out.lines().any(|l| l.starts_with('[')
            && l.contains("] stage encap")
            && l.contains("cycles/packet")),
        "periodic stage lines expected: {out}"
    );
    let t = totals(&out, "encap");
    assert_eq!(field(t, "rx"), Some(FRAMES as f64), "{t}");
    assert_eq!(field(t, "tunnelled"), Some(FRAMES as f64), "{t}");
    assert_eq!(field(t, "failed"), Some(0.0), "{t}");
    let got = read_pcap(&output);
    assert_eq!(got.len(), FRAMES, "{out}");
    for (g, s) in got.iter().zip(&sent) {
        assert_eq!(g.len(), s.len() + 50, "VXLAN over IPv4 adds 50 bytes");
        assert_eq!(&g[0..6], &[2, 0xbb, 0, 0, 0, 0x12], "outer destination MAC");
        assert_eq!(&g[12..14], &[0x08, 0x00]);
        assert_eq!(&g[26..30], &[10, 10, 0, 11], "outer source");
        assert_eq!(&g[30..34], &[10, 10, 0, 12], "outer destination");
        assert_eq!(g[23], 17, "UDP");
        assert_eq!(u16::from_be_bytes([g[36], g[37]]), 4789);
        assert_eq!(&g[46..49], &[0, 0, 100], "VNI 100");
        // The inner frame: the pod's, from the gateway MAC, otherwise unchanged.
        assert_eq!(&g[50 + 14..], &s[14..], "inner IP packet unchanged");
    }
}
