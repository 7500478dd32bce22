//! net_pcap with rx_pcap/tx_pcap: a pcap of mixed frames passes through the running
//! data plane's cross-connect (config -> EAL -> ports -> pinned worker); the output
//! pcap holds exactly the input frames, byte for byte and in order, and tshark reads
//! the same fields from both files.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use pmd_config::Config;
use vrouter_dp::runtime::{self, RunOptions};
use vrouter_tests::{
    mixed_frames, read_pcap, require_hugepages, require_tool, tshark_fields, write_pcap,
};

const FRAMES: usize = 2_000;

#[test]
fn pcap_through_cross_connect_is_byte_identical() {
    require_hugepages(128);
    require_tool("tshark");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.pcap");
    let empty = dir.path().join("empty.pcap");
    let output = dir.path().join("out.pcap");
    let back = dir.path().join("back.pcap");
    let frames = mixed_frames(FRAMES);
    write_pcap(&input, &frames);
    write_pcap(&empty, &[]);

    let toml = format!(
        r#"
log_level = "info"
[cores]
workers = [1]
control = 0
[memory]
socket_mem_mb = [256]
mbufs_per_pool = 8191
mbuf_cache = 128
[eal]
in_memory = true
[[ports]]
name = "in"
vdev = "net_pcap0,rx_pcap={input},tx_pcap={back}"
role = "fabric"
[[ports]]
name = "out"
vdev = "net_pcap1,rx_pcap={empty},tx_pcap={output}"
role = "pod"
"#,
        input = input.display(),
        back = back.display(),
        empty = empty.display(),
        output = output.display(),
    );
    let cfg = Config::from_toml_str(&toml).expect("valid config");
    let eal = runtime::init_eal(&cfg, "pcap-xconnect", std::path::Path::new("/")).expect("EAL");
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

    assert_eq!(
        summary.ports[0].worker_rx, FRAMES as u64,
        "all input frames received"
    );
    assert_eq!(
        summary.ports[1].worker_tx, FRAMES as u64,
        "all frames sent out of the partner"
    );
    assert_eq!(summary.ports[1].tx_dropped, 0);
    assert_eq!(summary.ports[0].worker_tx, 0, "nothing came the other way");

    let out = read_pcap(&output);
    assert_eq!(out.len(), frames.len(), "frame count");
    for (i, (a, b)) in frames.iter().zip(&out).enumerate() {
        assert_eq!(a, b, "frame {i} differs");
    }
    assert!(read_pcap(&back).is_empty());

    let fields = [
        "frame.len",
        "eth.src",
        "eth.dst",
        "eth.type",
        "vlan.id",
        "ip.src",
        "ip.dst",
        "ip.proto",
        "ipv6.src",
        "ipv6.dst",
        "arp.dst.proto_ipv4",
        "data.data",
    ];
    let t_in = tshark_fields(&input, &fields);
    let t_out = tshark_fields(&output, &fields);
    assert_eq!(t_in.lines().count(), FRAMES);
    assert_eq!(t_in, t_out, "tshark reads the same fields from both files");
}
