//! Shared support for the integration tests.
//!
//! Tests that need DPDK, hugepages, root or external tools call the `require_*`
//! functions first: they fail the test with a message naming the set-up command
//! (`scripts/setup-host.sh`) instead of skipping.
//!
//! Every integration test that starts EAL runs in its own process: the suite is run
//! with cargo-nextest (one process per test). EAL can be initialised only once per
//! process.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

/// The command that prepares a host for the tests.
pub const SETUP_HINT: &str =
    "run `sudo scripts/setup-host.sh` (installs DPDK, tshark, scapy; reserves hugepages)";

/// Fails the test unless at least `pages` free 2 MiB hugepages and a hugetlbfs mount exist.
pub fn require_hugepages(pages: u64) {
    let free = std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        free >= pages,
        "this test needs {pages} free 2 MiB hugepages, the host has {free}: {SETUP_HINT}"
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    assert!(
        mounts
            .lines()
            .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs")),
        "this test needs a hugetlbfs mount: {SETUP_HINT}"
    );
}

/// Fails the test unless `tool` is on PATH.
pub fn require_tool(tool: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "this test needs `{tool}` on PATH: {SETUP_HINT}");
}

/// Fails the test unless it runs as root.
pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_default();
    assert_eq!(uid, "0", "this test needs root: {SETUP_HINT}");
}

/// EAL arguments for a single-process test on virtual devices: lcores `lcores`, no
/// PCI, in memory (no runtime files), quiet logs, plus `extra`.
pub fn eal_args(name: &str, lcores: &str, hugepages: bool, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        name,
        "-l",
        lcores,
        "--no-pci",
        "--in-memory",
        "--no-telemetry",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if hugepages {
        v.extend(["--socket-mem".into(), "256".into()]);
    } else {
        v.extend(["--no-huge".into(), "-m".into(), "256".into()]);
    }
    v.extend(["--log-level".into(), "lib.eal:error".into()]);
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Writes frames to a classic pcap file (Ethernet link type, microsecond stamps
/// 1 ms apart).
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let f = std::fs::File::create(path).expect("create pcap");
    let hdr = PcapHeader {
        datalink: pcap_file::DataLink::ETHERNET,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(f, hdr).expect("pcap header");
    for (i, fr) in frames.iter().enumerate() {
        let ts = std::time::Duration::from_millis(1_000 + i as u64);
        w.write_packet(&PcapPacket::new(ts, fr.len() as u32, fr))
            .expect("write packet");
    }
}

/// Reads every frame of a pcap file.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    use pcap_file::pcap::PcapReader;
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut r = PcapReader::new(f).expect("pcap header");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.expect("pcap record").data.into_owned());
    }
    out
}

/// A mix of frames: IPv4/UDP, IPv4/TCP, IPv6/UDP, ARP, 802.1Q-tagged IPv4, sizes from
/// 60 to 1514 bytes, each with a distinct sequence number in its payload.
pub fn mixed_frames(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(mixed_frame).collect()
}

fn mixed_frame(i: usize) -> Vec<u8> {
    let dst = [0x02, 0, 0, 0, 0, 0x02];
    let src = [0x02, 0, 0, 0, 0, 0x01];
    let mut f = Vec::with_capacity(1514);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    let size = 60 + (i * 97) % (1514 - 60);
    match i % 5 {
        0 | 1 | 4 => {
            if i % 5 == 4 {
                f.extend_from_slice(&[0x81, 0x00, 0x00, (i % 4000) as u8 | 1]);
            }
            f.extend_from_slice(&[0x08, 0x00]);
            let l3_len = size - f.len();
            let proto = if i % 5 == 1 { 6u8 } else { 17u8 };
            let mut ip = [
                0x45,
                0,
                (l3_len >> 8) as u8,
                l3_len as u8,
                0,
                0,
                0x40,
                0,
                64,
                proto,
                0,
                0,
                10,
                0,
                0,
                1,
                10,
                1,
                (i >> 8) as u8,
                i as u8,
            ];
            let ck = ipv4_checksum(&ip);
            ip[10] = (ck >> 8) as u8;
            ip[11] = ck as u8;
            f.extend_from_slice(&ip);
        }
        2 => {
            f.extend_from_slice(&[0x86, 0xdd]);
            let pl = size.saturating_sub(f.len() + 40);
            f.extend_from_slice(&[0x60, 0, 0, 0, (pl >> 8) as u8, pl as u8, 17, 64]);
            f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            f.extend_from_slice(&[
                0xfd,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                (i >> 8) as u8,
                i as u8,
            ]);
        }
        _ => {
            f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&src);
            f.extend_from_slice(&[
                10,
                0,
                0,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                10,
                0,
                (i >> 8) as u8,
                i as u8,
            ]);
        }
    }
    let seq = (i as u32).to_be_bytes();
    while f.len() < size {
        let k = f.len();
        f.push(seq[k % 4] ^ (k as u8));
    }
    f.truncate(size.max(60));
    f
}

/// A pod's 64-byte UDP frame to the gateway MAC 00:00:5e:00:01:00, from
/// 02:00:00:00:00:01 / 10.244.0.(2+i) port 10000+i to `dst` port 8080, with a valid
/// IPv4 checksum and no UDP checksum.
pub fn pod_udp_frame(dst: [u8; 4], i: usize) -> Vec<u8> {
    let mut f = vec![
        0x00, 0x00, 0x5e, 0x00, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00,
    ];
    let total: u16 = 20 + 8 + 18;
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
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
        (2 + i) as u8,
    ];
    ip.extend_from_slice(&dst);
    let ck = ipv4_checksum(&ip);
    ip[10] = (ck >> 8) as u8;
    ip[11] = ck as u8;
    f.extend_from_slice(&ip);
    f.extend_from_slice(&(10000 + i as u16).to_be_bytes());
    f.extend_from_slice(&8080u16.to_be_bytes());
    f.extend_from_slice(&26u16.to_be_bytes());
    f.extend_from_slice(&[0, 0]); // UDP checksum 0: none (IPv4)
    f.extend_from_slice(&[0xab; 18]);
    f
}

/// The Internet checksum (RFC 1071) of `h`, computed independently of the data
/// plane's own checksum code so that tests do not check it against itself.
pub fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in h.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Runs `tshark -r FILE -T fields` with the given fields and returns its output.
pub fn tshark_fields(path: &Path, fields: &[&str]) -> String {
    tshark_fields_with(path, &[], fields)
}

/// As [`tshark_fields`], with extra tshark options `args` (e.g. `-d` decode-as).
pub fn tshark_fields_with(path: &Path, args: &[&str], fields: &[&str]) -> String {
    require_tool("tshark");
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(path)
        .args(args)
        .args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
