//! Config validation: every error names the field path, the reason and the line.

// Shared test code outside #[test] functions unwraps too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pmd_config::{Config, ConfigError, FieldError};

/// A valid base config to which each test appends or in which it replaces lines.
const BASE: &str = r#"log_level = "info"

[cores]
workers = [1, 2]
control = 0

[memory]
socket_mem_mb = [512]
mbufs_per_pool = 16383

[[ports]]
name = "fabric0"
pci = "0000:3b:00.0"
rx_queues = 2
tx_queues = 2

[[ports]]
name = "pod0"
vdev = "net_tap0,iface=tap0"
role = "pod"
"#;

fn errors(src: &str) -> Vec<String> {
    match Config::from_toml_str(src) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(e) => e.field_errors().iter().map(FieldError::to_string).collect(),
    }
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn base_is_valid() {
    let cfg = Config::from_toml_str(BASE).unwrap();
    assert_eq!(cfg.ports.len(), 2);
    assert!(!cfg.eal.no_pci);
    assert_eq!(cfg.control.mode, 0o660);
}

#[test]
fn unknown_field_is_rejected_with_path_and_line() {
    let src = BASE.replace("control = 0\n", "control = 0\nspare = 3\n");
    assert_eq!(
        errors(&src),
        ["cores.spare: unknown field `spare`, expected one of `workers`, `control`, `shared_control` (line 6)"]
    );
    let src = with("\n[telemetry]\nadress = \"1.2.3.4:5\"\n");
    assert_eq!(
        errors(&src),
        ["telemetry.adress: unknown field `adress`, expected `stats_interval_secs` or `address` (line 23)"]
    );
}

#[test]
fn unknown_field_in_array_of_tables() {
    let src = BASE.replace("role = \"pod\"\n", "role = \"pod\"\nqueues = 4\n");
    let e = errors(&src);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("ports[1].queues: unknown field `queues`"),
        "{}",
        e[0]
    );
    assert!(e[0].ends_with("(line 21)"), "{}", e[0]);
}

#[test]
fn wrong_types_and_values_name_the_field() {
    let src = BASE.replace("pci = \"0000:3b:00.0\"", "pci = \"0000:3b:00\"");
    assert_eq!(
        errors(&src),
        ["ports[0].pci: `0000:3b:00` is not a PCI address (expected domain:bus:device.function, e.g. 0000:3b:00.0) (line 13)"]
    );
    let src = BASE.replace("workers = [1, 2]", "workers = [1, \"2\"]");
    let e = errors(&src);
    assert!(
        e[0].starts_with("cores.workers[1]: invalid type: string \"2\", expected u32"),
        "{}",
        e[0]
    );
    assert!(e[0].ends_with("(line 4)"), "{}", e[0]);
}

#[test]
fn syntax_error_has_a_line() {
    let src = BASE.replace("[memory]", "[memory");
    let e = errors(&src);
    assert_eq!(e.len(), 1);
    assert!(e[0].ends_with("(line 7)"), "{}", e[0]);
}

#[test]
fn missing_field_names_the_table() {
    let src = BASE.replace("workers = [1, 2]\n", "");
    assert_eq!(errors(&src), ["cores: missing field `workers` (line 3)"]);
}

#[test]
fn core_cross_checks() {
    let src = BASE.replace("workers = [1, 2]", "workers = [1, 0, 1]");
    assert_eq!(
        errors(&src),
        [
            "cores.workers[1]: core 0 is the control core (cores.control); a worker must have its own core (or set cores.shared_control = true to let the control thread share it) (line 4)",
            "cores.workers[2]: core 1 is used twice (line 4)",
        ]
    );
}

#[test]
fn shared_control_core() {
    // Two workers on a two-core node: the control thread shares core 0.
    let src = BASE
        .replace("workers = [1, 2]", "workers = [0, 1]")
        .replace("control = 0", "control = 0\nshared_control = true");
    let cfg = Config::from_toml_str(&src).unwrap();
    assert_eq!(
        cfg.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        ["cores.shared_control: the worker on core 0 shares it with the control thread: its packets wait while the control thread runs (line 6)"]
    );
    assert_eq!(cfg.control_lcore(), 2);
    // The flag on a control core no worker uses changes nothing.
    let src = BASE.replace("control = 0", "control = 0\nshared_control = true");
    let cfg = Config::from_toml_str(&src).unwrap();
    assert_eq!(
        cfg.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        ["cores.shared_control: no worker runs on the control core 0: nothing is shared (line 6)"]
    );
    assert_eq!(cfg.control_lcore(), 0);
    // Every lcore id taken by a worker: none left for the control thread.
    let all: Vec<String> = (0..128).map(|c| c.to_string()).collect();
    let src = BASE
        .replace(
            "workers = [1, 2]",
            &format!("workers = [{}]", all.join(", ")),
        )
        .replace("control = 0", "control = 0\nshared_control = true")
        .replace("rx_queues = 2\ntx_queues = 2\n", "");
    assert!(
        errors(&src).iter().any(|e| {
            e
            == "cores.shared_control: no lcore id up to 127 is left for the control thread (line 6)"
        }),
        "{:?}",
        errors(&src)
    );
}

#[test]
fn queues_above_workers() {
    let src = BASE.replace("rx_queues = 2", "rx_queues = 3");
    assert_eq!(
        errors(&src),
        ["ports[0].rx_queues: 3 queues but only 2 worker(s): each queue is served by one worker, so at most 2 can be used (line 14)"]
    );
}

#[test]
fn port_source_must_be_exactly_one() {
    let src = BASE.replace(
        "pci = \"0000:3b:00.0\"",
        "pci = \"0000:3b:00.0\"\nvdev = \"net_null0\"",
    );
    assert_eq!(
        errors(&src),
        ["ports[0]: exactly one of `pci`, `vf` or `vdev` must be given (several are) (line 11)"]
    );
}

#[test]
fn duplicate_names_devices_and_socket_paths() {
    let src = with(
        r#"
[[ports]]
name = "fabric0"
vf = { pf = "0000:3b:00.0", index = 1 }

[[ports]]
name = "fabric2"
pci = "0000:3b:00.0"

[[vhost_user]]
name = "a"
path = "/run/vr/a.sock"
mode = "server"

[[vhost_user]]
name = "b"
path = "/run/vr/a.sock"
mode = "client"
"#,
    );
    assert_eq!(
        errors(&src),
        [
            "ports[2].name: port name `fabric0` is already used by ports[0] (line 23)",
            "ports[3].pci: PCI device 0000:3b:00.0 is already used by ports[0] (line 28)",
            "vhost_user[1].path: socket path /run/vr/a.sock is already used by vhost_user[0] (line 37)",
        ]
    );
}

#[test]
fn underlay_address_not_in_subnet() {
    let src = with(
        r#"
[underlay]
interface = "fabric0"
ipv4 = "10.0.0.5/24"
gateway4 = "10.0.1.1"
ipv6 = "fd00::/64"
vlan = 4095
"#,
    );
    assert_eq!(
        errors(&src),
        [
            "underlay.ipv6: fd00::/64 is the subnet's network address, not a host address (line 26)",
            "underlay.gateway4: 10.0.1.1 is not in the subnet of 10.0.0.5/24 (line 25)",
            "underlay.vlan: VLAN 4095 is outside 1..=4094 (line 27)",
        ]
    );
}

#[test]
fn underlay_on_pod_port_or_bond_member() {
    let src = with("\n[underlay]\ninterface = \"pod0\"\nipv4 = \"10.0.0.5/24\"\n");
    assert_eq!(
        errors(&src),
        ["underlay.interface: port `pod0` has role pod; the underlay needs a fabric port (line 23)"]
    );
    let src = with(
        "\n[bond]\nname = \"bond0\"\nmode = \"active-backup\"\nmembers = [\"fabric0\", \"pod0\"]\nxmit_policy = \"l34\"\n\n[underlay]\ninterface = \"fabric0\"\nipv4 = \"10.0.0.5/24\"\n",
    );
    assert_eq!(
        errors(&src),
        [
            "bond.members[1]: port `pod0` has role pod; bond members must be fabric ports (line 25)",
            "bond.xmit_policy: only balance-xor and lacp bonds use a transmit hash policy (line 26)",
            "underlay.interface: port `fabric0` is a member of bond `bond0`; use the bond (line 29)",
        ]
    );
}

#[test]
fn static_state_references() {
    let src = with(
        r#"
[[interfaces]]
id = 1
kind = "virtual"
port = "pod0"
vrf = 7

[[nexthops]]
id = 5
kind = "encap"
interface = 2
dmac = "02:00:00:00:00:01"

[[nexthops]]
id = 6
kind = "tunnel"
encap = "mplsoudp"
dst = "10.0.0.9"
members = [5]

[[routes]]
prefix = "10.1.0.0/16"
nexthop = 5

[[routes]]
prefix = "10.2.0.0/16"
nexthop = 12

[[routes]]
prefix = "10.3.0.1/16"
nexthop = 5

[[routes]]
prefix = "10.1.0.0/16"
nexthop = 0

[[labels]]
label = 3
nexthop = 5
"#,
    );
    assert_eq!(
        errors(&src),
        [
            "interfaces[0].vrf: VRF 7 is not defined (declare it in [[vrfs]]) (line 26)",
            "nexthops[0].interface: interface 2 is not defined (line 31)",
            "nexthops[1].members: not used by a tunnel next-hop (line 39)",
            "nexthops[1].src: no tunnel source: set `src` or an underlay IPv4 address (line 34)",
            "routes[1].nexthop: next-hop 12 is not defined (line 47)",
            "routes[2].prefix: 10.3.0.1/16 has host bits set; the network is 10.3.0.0/16 (line 50)",
            "routes[3].prefix: 10.1.0.0/16 in VRF 0 is already routed by routes[0] (line 54)",
            "labels[0].label: label 3 is outside 16..=1048575 (0-15 are reserved) (line 58)",
        ]
    );
}

#[test]
fn tunnel_routes_need_their_label_or_vni() {
    let src = with(
        r#"
[underlay]
interface = "fabric0"
ipv4 = "10.0.0.5/24"

[[nexthops]]
id = 1
kind = "tunnel"
encap = "vxlan"
dst = "10.0.0.6"

[[nexthops]]
id = 2
kind = "tunnel"
encap = "mplsogre"
dst = "10.0.0.7"

[[routes]]
prefix = "10.8.0.0/16"
nexthop = 1
label = 100

[[routes]]
prefix = "10.9.0.0/16"
nexthop = 2
"#,
    );
    assert_eq!(
        errors(&src),
        [
            "routes[0].label: next-hop 1 is a VXLAN tunnel; use `vni` (line 41)",
            "routes[1].label: next-hop 2 is an MPLSoGRE tunnel; a label is required (line 43)",
        ]
    );
}

#[test]
fn memory_checks() {
    let src = BASE.replace(
        "socket_mem_mb = [512]",
        "hugepage_size = \"1G\"\nsocket_mem_mb = [512]\nmbuf_cache = 20000",
    );
    assert_eq!(
        errors(&src),
        [
            "memory.socket_mem_mb[0]: 512 MiB is not a multiple of the 1G hugepage size (line 9)",
            "memory.mbuf_cache: 20000 is above DPDK's maximum mempool cache of 512 (line 10)",
            "memory.mbufs_per_pool: 16383 mbufs cannot fill the rings (6144 descriptors) and lcore caches (60000); at least 66144 are needed (line 11)",
        ]
    );
}

#[test]
fn file_name_is_in_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, BASE.replace("control = 0", "control = 1")).unwrap();
    let e = Config::load(&p).unwrap_err();
    assert!(matches!(e, ConfigError::Invalid { .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cores.workers[0]: core 1 is the control core (cores.control); a worker must have its own core (or set cores.shared_control = true to let the control thread share it) (line 4)",
            p.display()
        )
    );
    let missing = Config::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(
        missing.to_string().starts_with("cannot read config "),
        "{missing}"
    );
}

#[test]
fn warnings_do_not_fail() {
    let src = with(
        "\n[[vhost_user]]\nname = \"v\"\npath = \"/run/v.sock\"\nmode = \"server\"\nqueues = 4\n",
    );
    let cfg = Config::from_toml_str(&src).unwrap();
    assert_eq!(
        cfg.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        ["vhost_user[0].queues: 4 queue pairs but 2 worker(s): the extra queues are not polled (line 26)"]
    );
}
