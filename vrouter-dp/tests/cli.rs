//! The `vrouter-dp` binary: the embedded demo runs, prints periodic counters and a
//! summary, stops cleanly on SIGINT with exit 0, and prints its EAL arguments.
//! Needs hugepages (scripts/setup-host.sh).

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
fn demo_runs_and_prints_a_summary() {
    require_hugepages();
    let out = Command::new(BIN)
        .args(["--duration", "3"])
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

#[test]
fn sigint_stops_cleanly_with_a_summary() {
    require_hugepages();
    let child = Command::new(BIN)
        .args(["--duration", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vrouter-dp");
    std::thread::sleep(Duration::from_secs(2));
    let pid = child.id().to_string();
    let st = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    let t0 = Instant::now();
    let out = child.wait_with_output().expect("wait");
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "took too long to stop"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{stdout}", out.status);
    assert!(stdout.contains("=== vrouter-dp summary"), "{stdout}");
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
