//! Pod ports created and removed at run time on the real daemon: `vrouter-dp` runs
//! with a pcap fabric port and the agent API on a temporary socket; `vrouterctl vif
//! add --vhost-user` creates a pod port, and `dpdk-testpmd` with a virtio-user port
//! plays the pod (UDP 198.18.0.1 -> 198.18.0.2, routed over VXLAN to a remote node).
//!
//! * The pod's frames leave the fabric VXLAN-encapsulated (tshark: VNI, outer and
//!   inner destination); the pod's link state is reported; a config port cannot be
//!   removed through the API.
//! * The pod restarting (killed mid-traffic, started again) needs no data-plane
//!   restart: traffic resumes, and the daemon's buffers in use return to where they
//!   were.
//! * 100 pod ports added and removed while another pod sends: that pod loses
//!   nothing (every packet testpmd sent was received, and every received packet was
//!   sent on the fabric or counted as a drop).
//!
//! Needs root, hugepages, `dpdk-testpmd` and `tshark`, and the `vrouter-dp` and
//! `vrouterctl` binaries of this workspace (`cargo build -p vrouter-dp --bins`).
//! Every test stops what it started, also when it fails.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use vrouter_tests::{
    ipv4_checksum, require_hugepages, require_root, require_tool, tshark_fields, write_pcap,
};

/// The pod's default UDP flow in testpmd's txonly engine.
const POD_IP: &str = "198.18.0.1";
const REMOTE_IP: &str = "198.18.0.2";
const ROUTER_MAC: &str = "00:00:5e:00:01:00";
const VNI: u32 = 100;
/// The MPLS label of the route to [`REMOTE_IP`] over MPLSoUDP.
const LABEL: u32 = 200;
/// Descriptors in each of a test pod's rings (virtio-user `queue_size`, testpmd
/// `--rxd`/`--txd`).
const POD_RING: u16 = 1024;
const REMOTE_NODE: &str = "10.10.0.12";

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

/// Collects a child's output lines in the background.
fn collect(r: impl std::io::Read + Send + 'static) -> (Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&lines);
    let h = std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    (lines, h)
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).output();
}

/// The running daemon.
struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

/// How the daemon of a test is set up (see [`Daemon::start_with`]).
struct Setup<'a> {
    /// Worker lcores, as TOML.
    workers: &'a str,
    /// Whether the control thread may share core 0 with a worker.
    shared_control: bool,
    /// Where the fabric port writes (`/dev/null` or a file in the daemon's dir).
    fabric_tx: &'a str,
    /// Frames the fabric port receives, replayed over and over (`infinite_rx`).
    fabric_rx: Option<&'a [Vec<u8>]>,
    /// The encapsulation of the next-hop towards the remote node.
    encap: &'a str,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            workers: "[1]",
            shared_control: false,
            fabric_tx: "/dev/null",
            fabric_rx: None,
            encap: "vxlan",
        }
    }
}

impl Daemon {
    /// Starts the daemon with a fabric port writing to `fabric_tx` and, as a config
    /// port with a static pod interface (id 5), `cfgpod`.
    fn start(fabric_tx: &str) -> Self {
        Self::start_with(&Setup {
            fabric_tx,
            ..Setup::default()
        })
    }

    /// Starts the daemon as [`Daemon::start`] does, set up as `s` says. VNI
    /// [`VNI`] from the fabric maps to VRF 1; the route to [`REMOTE_IP`] carries
    /// VNI [`VNI`] (VXLAN) or label [`LABEL`] (MPLS encapsulations).
    fn start_with(s: &Setup) -> Self {
        require_root();
        require_hugepages(256);
        require_tool("dpdk-testpmd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("empty.pcap"), empty_pcap()).unwrap();
        let fabric_tx = if s.fabric_tx == "/dev/null" {
            s.fabric_tx.to_owned()
        } else {
            d.join(s.fabric_tx).display().to_string()
        };
        let fabric_rx = match s.fabric_rx {
            Some(frames) => {
                write_pcap(&d.join("fabric-rx.pcap"), frames);
                format!("{}/fabric-rx.pcap,infinite_rx=1", d.display())
            }
            None => format!("{}/empty.pcap", d.display()),
        };
        let tag = if s.encap == "vxlan" {
            format!("vni = {VNI}")
        } else {
            format!("label = {LABEL}")
        };
        let (workers, shared, encap) = (s.workers, s.shared_control, s.encap);
        let toml = format!(
            r#"
[cores]
workers = {workers}
control = 0
shared_control = {shared}
[memory]
socket_mem_mb = [256]
mbufs_per_pool = 8191
[eal]
in_memory = true
[[ports]]
name = "fabric"
vdev = "net_pcap0,rx_pcap={fabric_rx},tx_pcap={fabric_tx}"
role = "fabric"
[[ports]]
name = "cfgpod"
vdev = "net_pcap1,rx_pcap={d}/empty.pcap,tx_pcap=/dev/null"
role = "pod"
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
ipv4 = "10.10.0.11"
[[interfaces]]
id = 5
kind = "virtual"
port = "cfgpod"
mac = "02:00:00:00:00:05"
vrf = 1
[[nexthops]]
id = 20
kind = "tunnel"
encap = "{encap}"
dst = "{REMOTE_NODE}"
dmac = "02:bb:00:00:00:12"
[[nexthops]]
id = 11
kind = "vrf-translate"
vrf = 1
[[routes]]
vrf = 1
prefix = "{REMOTE_IP}/32"
nexthop = 20
{tag}
[[vnis]]
vni = {VNI}
nexthop = 11
[control]
socket = "{d}/dp.sock"
[telemetry]
stats_interval_secs = 1
"#,
            d = d.display()
        );
        let cfg = d.join("vrouter.toml");
        std::fs::write(&cfg, toml).unwrap();
        let mut child = Command::new(bin("vrouter-dp"))
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out, _) = collect(child.stdout.take().unwrap());
        let (err, _) = collect(child.stderr.take().unwrap());
        let mut dm = Daemon {
            child: Some(child),
            dir,
            out,
            err,
        };
        wait_for("the agent API", Duration::from_secs(60), || {
            if let Some(c) = dm.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "vrouter-dp exited early ({st}): {:?}",
                        dm.out.lock().unwrap()
                    );
                }
            }
            dm.output()
                .iter()
                .any(|l| l.starts_with("agent API on"))
                .then_some(())
        });
        dm
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn output(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("vrouterctl"))
            .arg("--socket")
            .arg(self.path("dp.sock"))
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "vrouterctl {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn stats(&self) -> Value {
        serde_json::from_str(&self.ok(&["--json", "stats"])).unwrap()
    }

    /// The API's counters of the port named `name`, if it exists.
    fn port(&self, name: &str) -> Option<Value> {
        self.stats()["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    }

    fn counter(&self, port: &str, field: &str) -> u64 {
        self.port(port)
            .and_then(|p| p[field].as_u64())
            .unwrap_or_else(|| panic!("no {field} for port {port}"))
    }

    fn drops(&self) -> u64 {
        self.stats()["drops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["packets"].as_u64().unwrap_or(0))
            .sum()
    }

    /// Mbufs in use, from the first periodic stats line printed after this call.
    fn mbufs_in_use(&self) -> u64 {
        let seen = self.output().len();
        wait_for("a stats line", Duration::from_secs(10), || {
            self.output()[seen..].iter().find_map(|l| {
                l.split("mbufs in use ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            })
        })
    }

    /// Adds a vhost-user pod interface; returns its port id.
    fn add_pod(&self, id: u32, name: &str, sock: &Path, server: bool) -> u16 {
        self.add_pod_with(id, name, sock, server, POD_IP, 1)
    }

    /// Adds a vhost-user pod interface with address `ip` and `queues` queue pairs;
    /// returns its port id.
    fn add_pod_with(
        &self,
        id: u32,
        name: &str,
        sock: &Path,
        server: bool,
        ip: &str,
        queues: u16,
    ) -> u16 {
        let id_s = id.to_string();
        let mac = pod_mac(id);
        let sock_s = sock.display().to_string();
        let queues_s = queues.to_string();
        let mut args = vec![
            "vif",
            "add",
            "--id",
            &id_s,
            "--mac",
            &mac,
            "--vrf",
            "1",
            "--ip",
            ip,
            "--name",
            name,
            "--vhost-user",
            &sock_s,
            "--queues",
            &queues_s,
        ];
        if server {
            args.push("--server");
        }
        let out = self.ok(&args);
        // "ok (vif N on port P)"
        let port = out
            .trim()
            .trim_end_matches(')')
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port id in {out:?}"));
        // The counters list the port from the control loop's next tick on.
        wait_for("the new port's counters", Duration::from_secs(10), || {
            self.port(name).map(|_| ())
        });
        port
    }

    /// Routes `ip`/32 in VRF 1 to the pod interface `vif` (an encap next-hop with
    /// id `nh`).
    fn route_to_pod(&self, ip: &str, vif: u32, nh: u32) {
        let (vif_s, nh_s, mac) = (vif.to_string(), nh.to_string(), pod_mac(vif));
        self.ok(&[
            "nh", "add", "--id", &nh_s, "--type", "encap", "--vif", &vif_s, "--dmac", &mac,
        ]);
        let prefix = format!("{ip}/32");
        self.ok(&["rt", "add", "--vrf", "1", &prefix, "--nh", &nh_s]);
    }

    /// Stops the daemon (SIGTERM) and returns its output.
    fn stop(&mut self) -> Vec<String> {
        self.halt();
        self.output()
    }

    fn halt(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "-TERM");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.halt();
        if std::thread::panicking() {
            for (what, buf) in [("stdout", &self.out), ("stderr", &self.err)] {
                let lines = buf.lock().unwrap();
                let from = lines.len().saturating_sub(40);
                eprintln!("--- vrouter-dp {what} (last lines) ---");
                for l in &lines[from..] {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// The MAC of pod interface `id`.
fn pod_mac(id: u32) -> String {
    format!("02:00:00:00:{:02x}:{:02x}", id >> 8, id & 0xff)
}

fn empty_pcap() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&65535u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v
}

/// A pod: dpdk-testpmd with one virtio-user port on the pod's socket, driven
/// through its interactive prompt.
struct Pod {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<String>>>,
    prefix: String,
}

impl Pod {
    /// Starts the pod sending the UDP flow to the router (txonly); `server`: the
    /// pod owns the socket (the data plane connects).
    fn start(sock: &Path, prefix: &str, server: bool) -> Self {
        let mut p = Self::spawn(sock, prefix, server, 1, &[]);
        p.send("set fwd txonly");
        p.send(&format!("set eth-peer 0 {ROUTER_MAC}"));
        p
    }

    /// Starts testpmd with `queues` queue pairs and the extra application
    /// arguments `args`, in its default forwarding mode.
    fn spawn(sock: &Path, prefix: &str, server: bool, queues: u16, args: &[&str]) -> Self {
        // Line-buffered, so that each prompt's answer arrives at once.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "dpdk-testpmd"])
            // Forwarding on lcore 0: the data plane's worker polls lcore 1.
            .args([
                "-l",
                "0,1",
                "--main-lcore",
                "1",
                "--no-pci",
                "--single-file-segments",
            ])
            .args(["--socket-mem", "128", "--log-level", "lib.eal:error"])
            .arg(format!("--file-prefix={prefix}"))
            .arg(format!(
                "--vdev=net_virtio_user0,path={},queues={queues},queue_size={POD_RING},server={}",
                sock.display(),
                u8::from(server)
            ))
            .args(["--", "-i", "--nb-cores=1", "--no-mlockall"])
            .arg(format!("--rxq={queues}"))
            .arg(format!("--txq={queues}"))
            .arg(format!("--rxd={POD_RING}"))
            .arg(format!("--txd={POD_RING}"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let (out, _) = collect(child.stdout.take().unwrap());
        Pod {
            child: Some(child),
            stdin,
            out,
            prefix: prefix.to_owned(),
        }
    }

    fn send(&mut self, cmd: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{cmd}");
            let _ = s.flush();
        }
    }

    /// Sends `n` bursts of the UDP flow (then forwards what comes back, which is
    /// nothing); [`Pod::stop_traffic`] ends it.
    fn burst(&mut self, n: u32) {
        self.send("set fwd io");
        self.send(&format!("start tx_first {n}"));
        std::thread::sleep(Duration::from_millis(500));
    }

    fn start_traffic(&mut self) {
        self.send("start");
    }

    /// Stops sending; returns the packets the pod's port accepted for TX since
    /// the last stop.
    fn stop_traffic(&mut self) -> u64 {
        self.stop_counts().1
    }

    /// Stops forwarding; returns the packets received and sent since the last
    /// stop (testpmd's accumulated forward statistics), nothing when forwarding had
    /// not started (e.g. a `start` that testpmd refused while its port was coming up).
    fn stop_counts(&mut self) -> (u64, u64) {
        let seen = self.out.lock().unwrap().len();
        self.send("stop");
        wait_for(
            "testpmd's forward statistics",
            Duration::from_secs(20),
            || {
                let out = self.out.lock().unwrap();
                let tail = out.get(seen..).unwrap_or_default();
                if tail
                    .iter()
                    .any(|l| l.contains("Packet forwarding not started"))
                {
                    return Some((0, 0));
                }
                let at = tail
                    .iter()
                    .position(|l| l.contains("Accumulated forward statistics"))?;
                let rx = field_after(&tail[at..], "RX-packets:")?;
                let tx = field_after(&tail[at..], "TX-packets:")?;
                Some((rx, tx))
            },
        )
    }

    /// The port's received packets and bytes (`show port stats 0`).
    fn rx_stats(&mut self) -> (u64, u64) {
        let seen = self.out.lock().unwrap().len();
        self.send("show port stats 0");
        wait_for("testpmd's port statistics", Duration::from_secs(20), || {
            let out = self.out.lock().unwrap();
            let tail = out.get(seen..).unwrap_or_default();
            let at = tail
                .iter()
                .position(|l| l.contains("NIC statistics for port 0"))?;
            let pkts = field_after(&tail[at..], "RX-packets:")?;
            let bytes = field_after(&tail[at..], "RX-bytes:")?;
            Some((pkts, bytes))
        })
    }

    /// Kills the pod at once (SIGKILL), as a crashing pod would go.
    fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Quits the pod cleanly.
    fn quit(mut self) {
        self.send("quit");
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Hugepage files and the runtime directory of this prefix.
        if let Ok(rd) = std::fs::read_dir("/dev/hugepages") {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

/// The number after the first `key` in `lines`.
fn field_after(lines: &[String], key: &str) -> Option<u64> {
    lines.iter().find_map(|l| {
        l.split(key)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    })
}

fn prefix(name: &str) -> String {
    format!("vrpod{}{name}", std::process::id())
}

#[test]
fn vhost_pod_traffic_leaves_the_fabric_as_vxlan() {
    require_tool("tshark");
    let mut dm = Daemon::start("fabric.pcap");
    let sock = dm.path("pod1.sock");
    // The data plane is the vhost-user client: it keeps trying until the pod's
    // socket appears.
    let port = dm.add_pod(1, "pod1", &sock, false);
    assert!(!dm.port("pod1").unwrap()["link_up"].as_bool().unwrap());
    let mut pod = Pod::start(&sock, &prefix("a"), true);
    wait_for("the pod's link up", Duration::from_secs(30), || {
        dm.port("pod1")?["link_up"].as_bool()?.then_some(())
    });
    pod.burst(4);
    let sent = pod.stop_traffic();
    assert!(sent > 0, "the pod sent nothing");
    wait_for(
        "the pod's packets on the fabric",
        Duration::from_secs(20),
        || (dm.counter("fabric", "tx_packets") >= sent).then_some(()),
    );
    assert_eq!(dm.counter("pod1", "rx_packets"), sent);
    pod.quit();
    wait_for("the pod's link down", Duration::from_secs(30), || {
        (!dm.port("pod1")?["link_up"].as_bool()?).then_some(())
    });

    // A config port is not removable through the API.
    let o = dm.ctl(&["vif", "del", "5", "--pod"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("comes from the config file"), "{err}");
    assert!(
        dm.port("cfgpod").is_some(),
        "the config port is still there"
    );
    // ... and nothing changed: its interface is still there too.
    assert!(dm.ok(&["vif", "list"]).lines().any(|l| l.starts_with("5 ")));

    dm.ok(&["vif", "del", "1", "--pod"]);
    let what = format!("port {port} gone from the counters");
    wait_for(&what, Duration::from_secs(10), || {
        dm.port("pod1").is_none().then_some(())
    });
    let fabric = dm.path("fabric.pcap");
    let log = dm.stop();
    assert!(
        !log.iter().any(|l| l.contains("removing pod port")),
        "{log:?}"
    );
    let rows = tshark_fields(&fabric, &["vxlan.vni", "ip.dst"]);
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows.len() as u64, sent, "{rows:?}");
    for r in rows {
        assert_eq!(r, format!("{VNI}|{REMOTE_NODE},{REMOTE_IP}"));
    }
}

/// A VXLAN frame (VNI [`VNI`]) from the remote node to this node carrying `inner`.
fn vxlan_from_remote(inner: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x02, 0xaa, 0, 0, 0, 0x11, 0x02, 0xbb, 0, 0, 0, 0x12, 0x08, 0x00,
    ];
    let udp_len = (8 + 8 + inner.len()) as u16;
    let total = 20 + udp_len;
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        17,
        0,
        0,
        10,
        10,
        0,
        12,
        10,
        10,
        0,
        11,
    ];
    let c = ipv4_checksum(&ip);
    ip[10] = (c >> 8) as u8;
    ip[11] = c as u8;
    f.extend_from_slice(&ip);
    f.extend_from_slice(&50000u16.to_be_bytes());
    f.extend_from_slice(&4789u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&[
        0x08,
        0,
        0,
        0,
        (VNI >> 16) as u8,
        (VNI >> 8) as u8,
        VNI as u8,
        0,
    ]);
    f.extend_from_slice(inner);
    f
}

#[test]
fn fabric_vxlan_reaches_a_vhost_pod_decapsulated() {
    let pod_ip = [198, 18, 0, 1];
    // Many flows (source address and port vary), replayed by the fabric port over
    // and over from the start on: they are dropped (no route) until the pod is there.
    let frames: Vec<Vec<u8>> = (0..64)
        .map(|i| vxlan_from_remote(&vrouter_tests::pod_udp_frame(pod_ip, i)))
        .collect();
    let inner_len = vrouter_tests::pod_udp_frame(pod_ip, 0).len() as u64;
    let mut dm = Daemon::start_with(&Setup {
        fabric_rx: Some(&frames),
        ..Setup::default()
    });
    let sock = dm.path("pod1.sock");
    dm.add_pod(1, "pod1", &sock, true);
    dm.route_to_pod(POD_IP, 1, 30);
    let mut pod = Pod::spawn(&sock, &prefix("d"), false, 1, &[]);
    pod.send("set fwd rxonly");
    wait_for("the pod's link up", Duration::from_secs(30), || {
        dm.port("pod1")?["link_up"].as_bool()?.then_some(())
    });
    pod.send("start");
    let before = dm.counter("pod1", "tx_packets");
    // The data plane counts a frame as sent once it is in the pod's RX ring; up to
    // a ring's worth of them (filled before or after `before` was read) may still
    // wait there when the pod stops, uncounted by testpmd.
    wait_for(
        "decapsulated frames towards the pod",
        Duration::from_secs(30),
        || (dm.counter("pod1", "tx_packets") > before + 1000 + u64::from(POD_RING)).then_some(()),
    );
    let (rx, _) = pod.stop_counts();
    let (pkts, bytes) = pod.rx_stats();
    pod.quit();
    assert!(rx > 1000, "the pod received only {rx}");
    assert!(pkts >= rx, "port {pkts} < forwarded {rx}");
    // The outer Ethernet, IPv4, UDP and VXLAN headers are gone: each frame the
    // pod got is exactly the inner one.
    assert_eq!(bytes, pkts * inner_len, "{pkts} frames, {bytes} bytes");
    assert!(dm.counter("pod1", "tx_packets") >= pkts);
    let drops = dm.stats()["drops"].clone();
    let vnid = drops
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["reason"] == "invalid_vnid")
        .and_then(|d| d["packets"].as_u64())
        .unwrap_or(0);
    assert_eq!(vnid, 0, "the VNI is known: {drops}");
    dm.stop();
}

#[test]
fn vhost_pod_traffic_leaves_the_fabric_as_mplsoudp() {
    let mut dm = Daemon::start_with(&Setup {
        fabric_tx: "fabric.pcap",
        encap: "mplsoudp",
        ..Setup::default()
    });
    let sock = dm.path("pod1.sock");
    dm.add_pod(1, "pod1", &sock, false);
    let mut pod = Pod::start(&sock, &prefix("m"), true);
    wait_for("the pod's link up", Duration::from_secs(30), || {
        dm.port("pod1")?["link_up"].as_bool()?.then_some(())
    });
    pod.burst(4);
    let sent = pod.stop_traffic();
    assert!(sent > 0, "the pod sent nothing");
    wait_for(
        "the pod's packets on the fabric",
        Duration::from_secs(20),
        || (dm.counter("fabric", "tx_packets") >= sent).then_some(()),
    );
    pod.quit();
    dm.ok(&["vif", "del", "1", "--pod"]);
    let fabric = dm.path("fabric.pcap");
    dm.stop();
    let rows = vrouter_tests::tshark_fields_with(
        &fabric,
        &["-d", "udp.port==6635,mpls"],
        &["mpls.label", "udp.dstport", "ip.dst"],
    );
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows.len() as u64, sent, "{rows:?}");
    for r in rows {
        // Outer UDP destination port first (the inner one is testpmd's).
        let f: Vec<&str> = r.split('|').collect();
        assert_eq!(f[0], LABEL.to_string(), "label: {r}");
        assert_eq!(f[1].split(',').next(), Some("6635"), "MPLSoUDP port: {r}");
        assert_eq!(f[2], format!("{REMOTE_NODE},{REMOTE_IP}"), "{r}");
    }
}

/// Pod A (two queue pairs, so that both of its RX queues, on different workers,
/// carry its traffic) sends to pod B, which enables one queue pair only: every
/// worker's share reaches pod B (the workers without a queue of pod B's port hand
/// over to the one with it) and no TX drop is counted.
fn pod_with_one_queue_gets_traffic_from_every_worker(workers: &str, shared: bool, tag: &str) {
    const POD_B_IP: &str = "198.18.5.2";
    let mut dm = Daemon::start_with(&Setup {
        workers,
        shared_control: shared,
        ..Setup::default()
    });
    let (sa, sb) = (dm.path("a.sock"), dm.path("b.sock"));
    dm.add_pod_with(1, "poda", &sa, true, POD_IP, 2);
    dm.add_pod_with(2, "podb", &sb, true, POD_B_IP, 1);
    dm.route_to_pod(POD_B_IP, 2, 31);
    let mut b = Pod::spawn(&sb, &prefix(&format!("{tag}b")), false, 1, &[]);
    b.send("set fwd rxonly");
    let tx_ip = format!("--tx-ip={POD_IP},{POD_B_IP}");
    let mut a = Pod::spawn(&sa, &prefix(&format!("{tag}a")), false, 2, &[&tx_ip]);
    a.send("set fwd txonly");
    a.send(&format!("set eth-peer 0 {ROUTER_MAC}"));
    for name in ["poda", "podb"] {
        wait_for("the pods' links up", Duration::from_secs(30), || {
            dm.port(name)?["link_up"].as_bool()?.then_some(())
        });
    }
    b.send("start");
    // The link comes up before pod B has enabled its queue: probe until pod B's
    // port takes packets, then measure from there.
    wait_for("pod B taking packets", Duration::from_secs(30), || {
        a.burst(1);
        a.stop_traffic();
        (dm.counter("podb", "tx_packets") > 0).then_some(())
    });
    // Pod B takes every probe frame from its ring before the measured run (the
    // data plane counts a frame once it is in the ring). The pause lets the last
    // probe frames reach the ring and the counters first, so that `sent` below is
    // final.
    std::thread::sleep(Duration::from_millis(500));
    wait_for("pod B drained", Duration::from_secs(20), || {
        let sent = dm.counter("podb", "tx_packets");
        (b.rx_stats().0 >= sent).then_some(())
    });
    b.stop_counts();
    let b0 = b.rx_stats().0;
    b.send("start");
    let worker_rx = |dm: &Daemon| -> Vec<u64> {
        dm.stats()["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["rx_packets"].as_u64().unwrap_or(0))
            .collect()
    };
    let (rx0, tx0, drop0) = (
        dm.counter("poda", "rx_packets"),
        dm.counter("podb", "tx_packets"),
        dm.counter("podb", "tx_dropped"),
    );
    let workers0 = worker_rx(&dm);
    // Fewer than pod B's ring holds (POD_RING), even if pod B does not poll meanwhile.
    a.burst(4);
    let sent = a.stop_traffic();
    assert!(sent > 0, "pod A sent nothing");
    wait_for(
        &format!("pod A's {sent} packets to pod B"),
        Duration::from_secs(20),
        || {
            let p = dm.port("podb")?;
            let done = p["tx_packets"].as_u64()? + p["tx_dropped"].as_u64()?;
            (done >= tx0 + drop0 + sent).then_some(())
        },
    );
    wait_for(
        &format!("pod B taking pod A's {sent} packets from its ring"),
        Duration::from_secs(20),
        || (b.rx_stats().0 >= b0 + sent).then_some(()),
    );
    let (rx, _) = b.stop_counts();
    let ports = dm.stats()["ports"].clone();
    let workers1 = worker_rx(&dm);
    a.quit();
    b.quit();
    assert_eq!(rx, sent, "pod B got every packet pod A sent: {ports}");
    assert_eq!(
        dm.counter("podb", "tx_dropped"),
        drop0,
        "no TX drop: {ports}"
    );
    assert_eq!(dm.counter("podb", "tx_packets"), tx0 + sent);
    assert_eq!(dm.counter("poda", "rx_packets"), rx0 + sent);
    let busy = workers0
        .iter()
        .zip(&workers1)
        .filter(|(before, after)| after > before)
        .count();
    let n_workers = workers.split(',').count();
    assert_eq!(
        busy, n_workers,
        "every worker carried pod A's traffic: {workers0:?} -> {workers1:?}"
    );
    dm.stop();
}

#[test]
fn pod_to_pod_over_vhost_on_one_worker() {
    pod_with_one_queue_gets_traffic_from_every_worker("[1]", false, "e");
}

/// Two workers: on cores 1 and 2 when the host has three CPUs, else on cores 1
/// and 0, the control thread sharing core 0 (`cores.shared_control`).
#[test]
fn pod_with_fewer_queues_than_workers_gets_traffic_from_both() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "this test needs 2 CPUs, the host has {cpus}");
    if cpus >= 3 {
        pod_with_one_queue_gets_traffic_from_every_worker("[1, 2]", false, "f");
    } else {
        pod_with_one_queue_gets_traffic_from_every_worker("[1, 0]", true, "f");
    }
}

#[test]
fn pod_restart_resumes_traffic_and_returns_buffers() {
    let mut dm = Daemon::start("/dev/null");
    let sock = dm.path("pod1.sock");
    // The data plane is the server: the pod reconnects to it.
    dm.add_pod(1, "pod1", &sock, true);
    let baseline = dm.mbufs_in_use();

    let mut pod = Pod::start(&sock, &prefix("b"), false);
    pod.start_traffic();
    wait_for("traffic from the pod", Duration::from_secs(30), || {
        (dm.counter("pod1", "rx_packets") > 1000).then_some(())
    });
    pod.kill();
    wait_for("the pod's link down", Duration::from_secs(30), || {
        (!dm.port("pod1")?["link_up"].as_bool()?).then_some(())
    });
    let before = dm.counter("pod1", "rx_packets");
    let fabric_before = dm.counter("fabric", "tx_packets");

    let mut pod = Pod::start(&sock, &prefix("b"), false);
    pod.start_traffic();
    wait_for(
        "traffic again after the restart",
        Duration::from_secs(30),
        || (dm.counter("pod1", "rx_packets") > before + 1000).then_some(()),
    );
    pod.stop_traffic();
    // Let the data plane take what is still in the ring, then let the pod go.
    std::thread::sleep(Duration::from_secs(1));
    pod.quit();
    assert!(dm.counter("fabric", "tx_packets") > fabric_before);
    wait_for(
        "the buffers back in the pool",
        Duration::from_secs(20),
        || (dm.mbufs_in_use() == baseline).then_some(()),
    );
    dm.ok(&["vif", "del", "1", "--pod"]);
    dm.stop();
}

#[test]
fn adding_and_removing_pods_costs_another_pod_nothing() {
    let mut dm = Daemon::start("/dev/null");
    let sock = dm.path("steady.sock");
    dm.add_pod(1, "steady", &sock, true);
    let baseline = dm.mbufs_in_use();
    let mut pod = Pod::start(&sock, &prefix("c"), false);
    wait_for("the steady pod's link up", Duration::from_secs(30), || {
        dm.port("steady")?["link_up"].as_bool()?.then_some(())
    });
    pod.start_traffic();
    wait_for(
        "traffic from the steady pod",
        Duration::from_secs(30),
        || (dm.counter("steady", "rx_packets") > 1000).then_some(()),
    );
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..100u32 {
        let id = 100 + i;
        let name = format!("churn{i}");
        let port = dm.add_pod(id, &name, &dm.path(&format!("churn{i}.sock")), true);
        ids.insert(port);
        dm.ok(&["vif", "del", &id.to_string(), "--pod"]);
    }
    let sent = pod.stop_traffic();
    // testpmd counts a packet as sent once it is in its TX ring; the data plane
    // counts it when it takes it from there (published on its next tick).
    wait_for(
        &format!("the steady pod's {sent} packets received"),
        Duration::from_secs(20),
        || (dm.counter("steady", "rx_packets") >= sent).then_some(()),
    );
    let rx = dm.counter("steady", "rx_packets");
    let fabric_and_drops = |dm: &Daemon| {
        dm.counter("fabric", "tx_packets") + dm.counter("fabric", "tx_dropped") + dm.drops()
    };
    wait_for(
        "every received packet sent or dropped",
        Duration::from_secs(20),
        || (fabric_and_drops(&dm) >= rx).then_some(()),
    );
    let fabric = dm.counter("fabric", "tx_packets") + dm.counter("fabric", "tx_dropped");
    let drops = dm.drops();
    pod.quit();
    assert!(sent > 1000, "the steady pod sent only {sent}");
    assert_eq!(rx, sent, "every packet the pod sent was received");
    assert_eq!(
        fabric + drops,
        rx,
        "fabric {fabric} + drops {drops} != received {rx}"
    );
    assert!(ids.len() < 100, "removed port ids are reused: {ids:?}");
    let names: Vec<String> = dm.stats()["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["fabric", "cfgpod", "steady"],
        "the churn ports are gone"
    );
    wait_for(
        "the buffers back in the pool",
        Duration::from_secs(20),
        || (dm.mbufs_in_use() == baseline).then_some(()),
    );
    dm.ok(&["vif", "del", "1", "--pod"]);
    dm.stop();
}

#[test]
fn sighup_applies_the_config_files_static_state_all_or_nothing() {
    let mut dm = Daemon::start("/dev/null");
    let cfg = dm.path("vrouter.toml");
    let original = std::fs::read_to_string(&cfg).unwrap();
    let routes = |dm: &Daemon| dm.ok(&["--json", "rt", "list", "--vrf", "1"]);
    let hup = |dm: &Daemon, expect: &str| {
        let (out, err) = (dm.output().len(), dm.err.lock().unwrap().len());
        signal(dm.child.as_ref().unwrap().id(), "-HUP");
        wait_for(expect, Duration::from_secs(10), || {
            let o = dm.output();
            let e = dm.err.lock().unwrap().clone();
            o[out..]
                .iter()
                .chain(&e[err..])
                .any(|l| l.contains(expect))
                .then_some(())
        });
    };
    assert!(routes(&dm).contains(&format!("{REMOTE_IP}/32")));

    // A new route in, the old one out, in one batch.
    let changed = original.replace(
        &format!("prefix = \"{REMOTE_IP}/32\""),
        "prefix = \"198.18.1.0/24\"",
    );
    assert_ne!(changed, original);
    std::fs::write(&cfg, &changed).unwrap();
    hup(&dm, "reloaded");
    let r = routes(&dm);
    assert!(r.contains("198.18.1.0/24"), "{r}");
    assert!(!r.contains(&format!("{REMOTE_IP}/32")), "{r}");

    // A file that refers to a missing next-hop changes nothing.
    let broken = original.replace("nexthop = 20\nvni", "nexthop = 99\nvni");
    assert_ne!(broken, original);
    std::fs::write(&cfg, &broken).unwrap();
    hup(&dm, "reload refused");
    let r2 = routes(&dm);
    assert_eq!(r2, r, "a refused reload changed the routes");
    // The daemon still runs and answers.
    dm.ok(&["info"]);
    dm.stop();
}

#[test]
fn a_tap_pod_is_removed_again_when_it_cannot_join_its_namespace() {
    let mut dm = Daemon::start("/dev/null");
    let links = || {
        let o = Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let before = links().lines().filter(|l| l.contains("vrtap")).count();
    let o = dm.ctl(&[
        "vif",
        "add",
        "--id",
        "7",
        "--mac",
        "02:00:00:00:00:07",
        "--vrf",
        "1",
        "--tap",
        "eth0",
        "--netns",
        "/var/run/netns/vr-test-none",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("vr-test-none") && err.contains("does not exist"),
        "{err}"
    );
    // Nothing half-applied: no interface, no port, no tap left on the host.
    assert!(!dm.ok(&["vif", "list"]).lines().any(|l| l.starts_with("7 ")));
    assert_eq!(
        links().lines().filter(|l| l.contains("vrtap")).count(),
        before
    );
    // The counters follow the ports on the control thread's next tick (every
    // 100 ms). Let a few pass first, so that a port left behind would show,
    // then allow for a slow tick.
    std::thread::sleep(Duration::from_millis(300));
    wait_for("two ports", Duration::from_secs(10), || {
        (dm.stats()["ports"].as_array()?.len() == 2).then_some(())
    });
    dm.stop();
}

#[test]
fn a_tap_pod_joins_its_namespace_and_leaves_with_its_port() {
    let ns = format!("vr-test-tap-{}", std::process::id());
    let ip = |args: &[&str]| Command::new("ip").args(args).output().expect("runs ip");
    // Torn down even when an assertion fails.
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
        }
    }
    assert!(ip(&["netns", "add", &ns]).status.success(), "ip netns add");
    let _guard = Ns(ns.clone());
    let mut dm = Daemon::start("/dev/null");
    let o = dm.ctl(&[
        "vif",
        "add",
        "--id",
        "8",
        "--mac",
        "02:00:00:00:00:08",
        "--vrf",
        "1",
        "--tap",
        "eth0",
        "--netns",
        &format!("/var/run/netns/{ns}"),
    ]);
    assert!(
        o.status.success(),
        "vif add --tap: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The tap is inside the pod's namespace under its pod name, up.
    let show = ip(&["-n", &ns, "-o", "link", "show", "dev", "eth0"]);
    assert!(show.status.success(), "eth0 is not in {ns}");
    let line = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(line.contains("UP"), "{line}");
    assert!(dm.ok(&["vif", "list"]).lines().any(|l| l.starts_with("8 ")));
    // The new port appears in the counters on the control thread's next tick.
    wait_for("the tap pod's port", Duration::from_secs(10), || {
        (dm.stats()["ports"].as_array()?.len() == 3).then_some(())
    });
    // Its link is read inside the namespace: up, then down once the pod's side
    // takes it down, and up again.
    let link = |dm: &Daemon| dm.port("eth0").and_then(|p| p["link_up"].as_bool());
    wait_for(
        "the tap's link reported up",
        Duration::from_secs(10),
        || link(&dm)?.then_some(()),
    );
    assert!(ip(&["-n", &ns, "link", "set", "eth0", "down"])
        .status
        .success());
    wait_for(
        "the tap's link reported down",
        Duration::from_secs(10),
        || (!link(&dm)?).then_some(()),
    );
    assert!(ip(&["-n", &ns, "link", "set", "eth0", "up"])
        .status
        .success());
    wait_for(
        "the tap's link reported up again",
        Duration::from_secs(10),
        || link(&dm)?.then_some(()),
    );
    // Deleting the interface removes the port and its tap.
    dm.ok(&["vif", "del", "8", "--pod"]);
    let gone = ip(&["-n", &ns, "link", "show", "dev", "eth0"]);
    assert!(!gone.status.success(), "eth0 is still in {ns}");
    wait_for("the tap's port gone", Duration::from_secs(10), || {
        (dm.stats()["ports"].as_array()?.len() == 2).then_some(())
    });
    dm.stop();
}
