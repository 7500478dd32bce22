//! `vrouterctl` against a running API server: every noun and verb, JSON output, exit
//! codes, and socket permissions (a user outside the socket's group is refused).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod control_common;

use std::path::Path;
use std::process::{Command, Output};

use control_common::*;
use serde_json::Value;

fn ctl(sock: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vrouterctl"))
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap()
}

/// Runs and expects success; returns stdout.
fn ok(sock: &Path, args: &[&str]) -> String {
    let o = ctl(sock, args);
    assert!(
        o.status.success(),
        "vrouterctl {args:?} failed ({:?}): {}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs and expects exit code `code`; returns stderr.
fn fails(sock: &Path, args: &[&str], code: i32) -> String {
    let o = ctl(sock, args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "vrouterctl {args:?}: stdout {} stderr {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stderr).unwrap()
}

fn json(sock: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(sock, &a)).unwrap()
}

#[test]
fn every_noun_and_verb() {
    let env = Env::start();
    let s = env.socket();
    let s = s.as_path();

    // vif
    ok(
        s,
        &[
            "vif",
            "add",
            "--id",
            "0",
            "--type",
            "physical",
            "--port",
            "0",
            "--mac",
            "02:00:00:00:01:00",
            "--ip",
            "192.0.2.1",
        ],
    );
    ok(
        s,
        &[
            "vif",
            "add",
            "--id",
            "1",
            "--port",
            "1",
            "--mac",
            "02:00:00:00:02:01",
            "--vrf",
            "1",
            "--ip",
            "10.0.0.1",
            "--ip",
            "fd00::1",
            "--policy",
        ],
    );
    let out = ok(
        s,
        &[
            "vif",
            "add",
            "--id",
            "2",
            "--mac",
            "02:00:00:00:02:02",
            "--vrf",
            "1",
            "--vhost-user",
            "/tmp/uvh_vif_2",
            "--server",
        ],
    );
    assert!(out.contains("port 10"), "{out}");
    let list = ok(s, &["vif", "list"]);
    assert!(list.starts_with("VIF"), "{list}");
    assert_eq!(list.lines().count(), 4, "{list}");
    assert!(list.contains("10.0.0.1,fd00::1"), "{list}");
    let v = json(s, &["vif", "get", "1"]);
    assert_eq!(v["vrf"], 1);
    assert_eq!(v["ipv6"][0], "fd00::1");
    assert_eq!(v["policy"], true);

    // nh
    ok(
        s,
        &[
            "nh",
            "add",
            "--id",
            "1",
            "--type",
            "encap",
            "--vif",
            "1",
            "--dmac",
            "02:00:00:00:02:01",
        ],
    );
    ok(
        s,
        &[
            "nh",
            "add",
            "--id",
            "2",
            "--type",
            "tunnel",
            "--tunnel",
            "mpls-udp",
            "--vif",
            "0",
            "--dmac",
            "02:00:00:00:09:09",
            "--src",
            "192.0.2.1",
            "--dst",
            "192.0.2.7",
        ],
    );
    ok(
        s,
        &[
            "nh", "add", "--id", "3", "--type", "ecmp", "--member", "1", "--member", "2:100",
        ],
    );
    ok(
        s,
        &[
            "nh",
            "add",
            "--id",
            "4",
            "--type",
            "vrf-translate",
            "--vrf",
            "1",
        ],
    );
    let list = ok(s, &["nh", "list"]);
    assert!(list.contains("tunnel/mpls-udp"), "{list}");
    assert!(list.contains("1 2:100"), "{list}");
    let n = json(s, &["nh", "get", "2"]);
    assert_eq!(n["tunnel_dst"], "192.0.2.7");

    // rt
    ok(s, &["rt", "add", "--vrf", "1", "10.0.0.1/32", "--nh", "1"]);
    ok(
        s,
        &[
            "rt",
            "add",
            "--vrf",
            "1",
            "10.20.0.0/16",
            "--nh",
            "2",
            "--label",
            "100",
        ],
    );
    ok(s, &["rt", "add", "--vrf", "1", "fd00:1::/64", "--nh", "3"]);
    let r = json(s, &["rt", "list", "--vrf", "1", "--family", "inet"]);
    assert_eq!(r.as_array().unwrap().len(), 2);
    let r = json(s, &["rt", "get", "--vrf", "1", "10.20.0.0/16"]);
    assert_eq!(r["label"], 100);
    let table = ok(s, &["rt", "list", "--within", "fd00::/16"]);
    assert!(
        table.contains("fd00:1::/64") && !table.contains("10.20"),
        "{table}"
    );
    ok(s, &["rt", "del", "--vrf", "1", "fd00:1::/64"]);
    fails(s, &["rt", "get", "--vrf", "1", "fd00:1::/64"], 3);

    // bridge
    ok(
        s,
        &[
            "bridge",
            "add",
            "--vrf",
            "1",
            "02:00:00:00:02:01",
            "--nh",
            "1",
        ],
    );
    assert!(ok(s, &["bridge", "list"]).contains("02:00:00:00:02:01"));
    assert_eq!(
        json(s, &["bridge", "get", "--vrf", "1", "02:00:00:00:02:01"])["nh"],
        1
    );
    ok(s, &["bridge", "del", "--vrf", "1", "02:00:00:00:02:01"]);

    // mpls
    ok(s, &["mpls", "add", "17", "--nh", "1"]);
    ok(
        s,
        &["mpls", "add", "18", "--nh", "1", "--payload", "ethernet"],
    );
    let m = ok(s, &["mpls", "list"]);
    assert!(m.contains("ethernet"), "{m}");
    assert_eq!(json(s, &["mpls", "get", "17"])["nh"], 1);
    ok(s, &["mpls", "del", "18"]);
    fails(s, &["mpls", "get", "18"], 3);

    // vxlan
    ok(s, &["vxlan", "add", "5001", "--nh", "4"]);
    assert!(ok(s, &["vxlan", "list"]).contains("5001"));
    assert_eq!(json(s, &["vxlan", "get", "5001"])["nh"], 4);
    ok(s, &["vxlan", "del", "5001"]);
    fails(s, &["vxlan", "get", "5001"], 3);

    // policy
    ok(
        s,
        &[
            "policy",
            "add",
            "1",
            "--action",
            "allow",
            "--proto",
            "tcp",
            "--dst",
            "10.0.0.0/8",
            "--dport",
            "80-443",
        ],
    );
    ok(
        s,
        &[
            "policy", "add", "1", "--action", "deny", "--proto", "udp", "--index", "0",
        ],
    );
    let p = json(s, &["policy", "get", "1"]);
    assert_eq!(p["rules"].as_array().unwrap().len(), 2);
    assert_eq!(p["rules"][0]["proto"], 17);
    assert_eq!(p["rules"][1]["dport_hi"], 443);
    assert!(ok(s, &["policy", "list"]).contains("80-443"));
    ok(s, &["policy", "del", "1", "0"]);
    assert_eq!(
        json(s, &["policy", "get", "1"])["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    fails(s, &["policy", "del", "1", "5"], 3);

    // flow
    let key = [
        "--vrf", "1", "--src", "10.0.0.1", "--dst", "10.0.0.2", "--proto", "tcp", "--sport",
        "1234", "--dport", "80",
    ];
    let mut add = vec!["flow", "add"];
    add.extend_from_slice(&key);
    add.extend_from_slice(&["--action", "forward", "--nh", "1"]);
    ok(s, &add);
    let f = json(s, &["flow", "list", "--proto", "tcp"]);
    assert_eq!(f.as_array().unwrap().len(), 1);
    let mut get = vec!["flow", "get"];
    get.extend_from_slice(&key);
    assert_eq!(json(s, &get)["nh"], 1);
    let mut del = vec!["flow", "del"];
    del.extend_from_slice(&key);
    ok(s, &del);
    fails(s, &get, 3);
    ok(s, &add);
    assert!(ok(s, &["flow", "clear"]).contains("1 flows removed"));

    // stats, dropstats, info
    let d = ok(s, &["dropstats"]);
    assert!(d.contains("ttl_exceeded") && d.contains('9'), "{d}");
    let st = json(s, &["stats"]);
    assert_eq!(st["ports"].as_array().unwrap().len(), 4);
    assert_eq!(st["workers"][0]["busy_cycles"], 123_456);
    let table = ok(s, &["stats"]);
    assert!(table.contains("BUSY_CYCLES"), "{table}");
    let w = ok(
        s,
        &["stats", "--watch", "--interval", "0.05", "--count", "2"],
    );
    assert_eq!(w.matches("RX_PPS").count(), 4, "{w}");
    let w = ok(
        s,
        &[
            "--json",
            "stats",
            "--watch",
            "--interval",
            "0.05",
            "--count",
            "1",
        ],
    );
    let line: Value = serde_json::from_str(w.lines().next().unwrap()).unwrap();
    assert_eq!(line["workers"].as_array().unwrap().len(), 2);
    let info = ok(s, &["info"]);
    assert!(
        info.contains("9.9.9-test") && info.contains("interfaces"),
        "{info}"
    );
    assert_eq!(
        json(s, &["info"])["worker_cores"],
        serde_json::json!([1, 2])
    );
    let events = ok(s, &["watch", "--count", "4"]);
    assert_eq!(events.lines().count(), 4, "{events}");
    assert!(events.contains("link port 3 (eth3) up"), "{events}");

    // deletes in dependency order
    ok(s, &["rt", "del", "--vrf", "1", "10.0.0.1/32"]);
    ok(s, &["vif", "del", "2", "--pod"]);
    fails(s, &["vif", "get", "2"], 3);
}

#[test]
fn exit_codes_and_errors() {
    let env = Env::start();
    let s = env.socket();
    let s = s.as_path();
    // Invalid argument: 4, with the field named.
    let e = fails(
        s,
        &["rt", "add", "--vrf", "1", "10.0.0.1/24", "--nh", "0"],
        4,
    );
    assert!(
        e.contains("changes[0].add_route.prefix") && e.contains("host bits"),
        "{e}"
    );
    // Dangling reference: 4.
    let e = fails(
        s,
        &["rt", "add", "--vrf", "1", "10.0.0.0/24", "--nh", "42"],
        4,
    );
    assert!(e.contains("next-hop 42 does not exist"), "{e}");
    // Not found: 3.
    fails(s, &["nh", "get", "42"], 3);
    // Bad command line: 2.
    fails(s, &["rt", "frobnicate"], 2);
    fails(s, &["flow", "list", "--proto", "sctp-ish"], 2);
    // No data plane: 5.
    let gone = env.dir.path().join("nothing.sock");
    let e = fails(&gone, &["info"], 5);
    assert!(e.contains("cannot connect"), "{e}");
}

/// The socket is 0660 root:root; a user outside the group is refused. This needs
/// root (to create the socket as root and switch users), and fails without it.
#[test]
fn user_outside_the_group_is_refused() {
    let euid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap();
    assert_eq!(
        euid, 0,
        "this test must run as root: it checks that the control socket refuses other users"
    );
    let env = Env::start();
    // Let `nobody` reach the socket file itself, so that only its mode decides.
    let mut p = env.socket();
    while let Some(parent) = p.parent() {
        let _ =
            std::fs::set_permissions(parent, std::os::unix::fs::PermissionsExt::from_mode(0o755));
        if parent == env.dir.path() {
            break;
        }
        p = parent.to_owned();
    }
    let sock = env.socket();
    let run_as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_vrouterctl"))
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap()
    };
    let o = run_as_nobody(&["info"]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.to_lowercase().contains("permission denied"), "{err}");
    // Root, the owner, gets through.
    ok(&sock, &["info"]);
    // With the socket's group set to nobody's group, nobody gets through.
    std::os::unix::fs::chown(&sock, None, Some(65534)).unwrap();
    let o = run_as_nobody(&["--json", "info"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
