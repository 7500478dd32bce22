//! `check-host` against fake sysfs/procfs trees: realistic hosts with an Intel 82599
//! and an E810, with and without VFs, shared IOMMU groups, no IOMMU, short hugepages,
//! cores not isolated, the NIC that carries the default route; and `--apply` with its
//! idempotency. The last test runs the checks against this machine's real `/`.

// Shared test code outside #[test] functions unwraps too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;
use std::path::Path;

use pmd_config::testing::{FakeHost, FakePci, FakeTree};
use pmd_config::{
    check_host, check_host_with, eal_args_with_root, CheckHostOptions, Config, HugepageSize,
    PciAddr, Report, StepOutcome, Verdict,
};
use tempfile::TempDir;

const CFG_82599: &str = r#"
[cores]
workers = [2, 3]
control = 1

[memory]
socket_mem_mb = [512]
mbufs_per_pool = 16383

[eal]
file_prefix = "vr"

[[ports]]
name = "fabric0"
pci = "0000:3b:00.0"
rx_queues = 2
tx_queues = 2
"#;

fn pci(s: &str) -> PciAddr {
    s.parse().unwrap()
}

/// A two-socket Intel server, prepared for the data plane: IOMMU on, vfio-pci loaded,
/// cores 2-7 isolated, 512 free 2M pages per node, hugetlbfs mounted, the management
/// NIC eno1 (I210, igb) carrying the default route, an 82599 (two ports, own IOMMU
/// groups) with port 0 on vfio-pci and port 1 on ixgbe.
fn good_host() -> (TempDir, FakeTree) {
    let dir = tempfile::tempdir().unwrap();
    let t = FakeTree::new(dir.path()).unwrap();
    t.cpus(16).unwrap();
    t.numa_node(0, "0-7").unwrap();
    t.numa_node(1, "8-15").unwrap();
    t.isolated("2-7").unwrap();
    t.cmdline("BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 intel_iommu=on iommu=pt isolcpus=2-7 nohz_full=2-7 rcu_nocbs=2-7").unwrap();
    for n in [0, 1] {
        t.hugepages(Some(n), HugepageSize::Size2M, 512, 512)
            .unwrap();
    }
    t.hugetlbfs("/dev/hugepages", HugepageSize::Size2M).unwrap();
    t.vfio_installed().unwrap();
    t.vfio_loaded().unwrap();
    t.pci(
        &FakePci::new("0000:00:01.0", 0x8086, 0x2030)
            .driver("pcieport")
            .group(3),
    )
    .unwrap();
    t.pci(
        &FakePci::new("0000:19:00.0", 0x8086, 0x1533)
            .driver("igb")
            .group(10),
    )
    .unwrap();
    t.pci(
        &FakePci::new("0000:3b:00.0", 0x8086, 0x10fb)
            .driver("vfio-pci")
            .numa(0)
            .group(31),
    )
    .unwrap();
    t.pci(
        &FakePci::new("0000:3b:00.1", 0x8086, 0x10fb)
            .driver("ixgbe")
            .numa(0)
            .group(32),
    )
    .unwrap();
    t.netdev("eno1", Some(pci("0000:19:00.0"))).unwrap();
    t.netdev("ens1f1", Some(pci("0000:3b:00.1"))).unwrap();
    t.netdev("lo", None).unwrap();
    t.default_route("eno1", Ipv4Addr::new(10, 0, 0, 1)).unwrap();
    t.subnet_route("eno1", "10.0.0.0/24").unwrap();
    (dir, t)
}

fn run(t: &FakeTree, cfg: &str, apply: bool) -> (Report, FakeHost) {
    let cfg = Config::from_toml_str(cfg).unwrap();
    let host = FakeHost::new(t.clone());
    let mut opts = CheckHostOptions::new(cfg, t.root());
    opts.apply = apply;
    let r = check_host_with(&host, &opts);
    (r, host)
}

fn verdicts(r: &Report) -> Vec<(String, Verdict)> {
    r.checks
        .iter()
        .map(|c| (c.name.clone(), c.verdict))
        .collect()
}

fn v(list: &[(&str, Verdict)]) -> Vec<(String, Verdict)> {
    list.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

const CFG_VF: &str = r#"
[cores]
workers = [2, 3]
control = 1

[memory]
socket_mem_mb = [512]
mbufs_per_pool = 16383

[[ports]]
name = "uplink"
vf = { pf = "0000:af:00.0", index = 1 }
"#;

fn e810(t: &FakeTree) {
    t.pci(
        &FakePci::new("0000:af:00.0", 0x8086, 0x159b)
            .driver("ice")
            .numa(0)
            .group(40),
    )
    .unwrap();
    t.sriov_pf(pci("0000:af:00.0"), 64, 8, 1, 0x1889, "iavf")
        .unwrap();
    t.netdev("ens2f0", Some(pci("0000:af:00.0"))).unwrap();
}

const OK: Verdict = Verdict::Ok;
const WARN: Verdict = Verdict::Warn;
const FAIL: Verdict = Verdict::Fail;
const SKIP: Verdict = Verdict::Skip;

const COMMON_OK: &[(&str, Verdict)] = &[
    ("config", OK),
    ("cpu flags", OK),
    ("cores online", OK),
    ("cores isolated", OK),
    ("hugepages 2M node0", OK),
    ("hugetlbfs", OK),
    ("iommu", OK),
    ("vfio-pci", OK),
    ("host uplink", OK),
];

fn with_common(port: &[(&str, Verdict)]) -> Vec<(String, Verdict)> {
    let mut l = v(COMMON_OK);
    l.extend(v(port));
    l
}

fn found(r: &Report, name: &str) -> String {
    r.check(name)
        .unwrap_or_else(|| panic!("no check {name}"))
        .found
        .clone()
}

fn fix(r: &Report, name: &str) -> String {
    r.check(name)
        .unwrap_or_else(|| panic!("no check {name}"))
        .fix
        .clone()
        .unwrap_or_default()
}

#[test]
fn prepared_82599_host_passes() {
    let (_d, t) = good_host();
    let (r, _) = run(&t, CFG_82599, false);
    assert_eq!(
        verdicts(&r),
        with_common(&[
            ("port fabric0 device", OK),
            ("port fabric0 iommu group", OK),
            ("port fabric0 numa", OK),
            ("port fabric0 host use", OK),
        ])
    );
    assert!(r.passed());
    assert_eq!(
        found(&r, "port fabric0 device"),
        "0000:3b:00.0 Intel 82599ES 10-Gigabit SFI/SFP+ [8086:10fb], driver vfio-pci, NUMA node 0, IOMMU group 31"
    );
    assert_eq!(
        found(&r, "port fabric0 iommu group"),
        "group 31 viable: 0000:3b:00.0 (vfio-pci)"
    );
    assert_eq!(
        found(&r, "host uplink"),
        "default route via eno1 (0000:19:00.0 Intel I210 Gigabit [8086:1533]): kept by the host, never bound"
    );
    assert!(r
        .render_text()
        .ends_with("13 ok, 0 warn, 0 FAIL, 0 skip: host is ready\n"));
}

#[test]
fn nic_on_kernel_driver_fails_with_bind_commands() {
    let (_d, t) = good_host();
    let cfg = CFG_82599.replace("0000:3b:00.0", "0000:3b:00.1");
    let (r, _) = run(&t, &cfg, false);
    let c = r.check("port fabric0 device").unwrap();
    assert_eq!(c.verdict, FAIL);
    assert_eq!(
        c.found,
        "0000:3b:00.1 Intel 82599ES 10-Gigabit SFI/SFP+ [8086:10fb], driver ixgbe, NUMA node 0, IOMMU group 32; not bound to vfio-pci"
    );
    assert_eq!(
        c.fix.as_deref(),
        Some(
            "modprobe vfio-pci; echo vfio-pci > /sys/bus/pci/devices/0000:3b:00.1/driver_override; \
             echo 0000:3b:00.1 > /sys/bus/pci/devices/0000:3b:00.1/driver/unbind; \
             echo 0000:3b:00.1 > /sys/bus/pci/drivers_probe (or run check-host --apply)"
        )
    );
    // ens1f1 exists but has no address or route.
    assert_eq!(
        found(&r, "port fabric0 host use"),
        "0000:3b:00.1: ens1f1 has no address or route, not used by the host"
    );
    assert!(!r.passed());
}

#[test]
fn shared_iommu_group_with_a_kernel_driver_fails() {
    let (_d, t) = good_host();
    // Both 82599 ports in group 31 (no ACS between the functions); port 1 on ixgbe.
    t.pci(
        &FakePci::new("0000:3b:00.1", 0x8086, 0x10fb)
            .driver("ixgbe")
            .numa(0)
            .group(31),
    )
    .unwrap();
    let (r, _) = run(&t, CFG_82599, false);
    assert_eq!(
        verdicts(&r),
        with_common(&[
            ("port fabric0 device", OK),
            ("port fabric0 iommu group", FAIL),
            ("port fabric0 numa", OK),
            ("port fabric0 host use", OK),
        ])
    );
    assert_eq!(
        found(&r, "port fabric0 iommu group"),
        "group 31 is not viable: 0000:3b:00.1 (ixgbe) is still on a kernel driver \
         (group: 0000:3b:00.0 (vfio-pci), 0000:3b:00.1 (ixgbe)); \
         VFIO needs every device of the group on vfio-pci or unbound"
    );
    assert_eq!(
        fix(&r, "port fabric0 iommu group"),
        "bind the other device(s) too: modprobe vfio-pci; \
         echo vfio-pci > /sys/bus/pci/devices/0000:3b:00.1/driver_override; \
         echo 0000:3b:00.1 > /sys/bus/pci/devices/0000:3b:00.1/driver/unbind; \
         echo 0000:3b:00.1 > /sys/bus/pci/drivers_probe (or run check-host --apply); \
         or move the NIC to a slot with its own group (ACS)"
    );
    assert!(!r.passed());
}

#[test]
fn group_member_unbound_or_bridge_is_viable() {
    let (_d, t) = good_host();
    t.pci(
        &FakePci::new("0000:3b:00.1", 0x8086, 0x10fb)
            .numa(0)
            .group(31),
    )
    .unwrap();
    t.pci(
        &FakePci::new("0000:3a:00.0", 0x8086, 0x2030)
            .driver("pcieport")
            .group(31),
    )
    .unwrap();
    let (r, _) = run(&t, CFG_82599, false);
    let c = r.check("port fabric0 iommu group").unwrap();
    assert_eq!(c.verdict, OK);
    assert_eq!(
        c.found,
        "group 31 viable: 0000:3a:00.0 (pcieport), 0000:3b:00.0 (vfio-pci), 0000:3b:00.1 (no driver)"
    );
}

#[test]
fn no_iommu() {
    let (_d, t) = good_host();
    std::fs::remove_dir_all(t.root().join("sys/kernel/iommu_groups")).unwrap();
    for d in [
        "0000:19:00.0",
        "0000:3b:00.0",
        "0000:3b:00.1",
        "0000:00:01.0",
    ] {
        std::fs::remove_file(
            t.root()
                .join(format!("sys/devices/pci0000:00/{d}/iommu_group")),
        )
        .unwrap();
    }
    t.cmdline("BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 isolcpus=2-7 nohz_full=2-7")
        .unwrap();
    let (r, _) = run(&t, CFG_82599, false);
    assert_eq!(
        verdicts(&r),
        v(&[
            ("config", OK),
            ("cpu flags", OK),
            ("cores online", OK),
            ("cores isolated", OK),
            ("hugepages 2M node0", OK),
            ("hugetlbfs", OK),
            ("iommu", FAIL),
            ("vfio-pci", OK),
            ("host uplink", OK),
            ("port fabric0 device", OK),
            ("port fabric0 iommu group", FAIL),
            ("port fabric0 numa", OK),
            ("port fabric0 host use", OK),
        ])
    );
    assert_eq!(
        found(&r, "iommu"),
        "no IOMMU groups in /sys/kernel/iommu_groups: the IOMMU is off or absent; vfio-pci cannot own the NICs"
    );
    let intel_fix = "enable VT-d in the firmware and add `intel_iommu=on iommu=pt` to the kernel command line, then reboot";
    assert_eq!(fix(&r, "iommu"), intel_fix);
    assert_eq!(
        found(&r, "port fabric0 iommu group"),
        "0000:3b:00.0 has no IOMMU group (the IOMMU is off)"
    );
    assert_eq!(fix(&r, "port fabric0 iommu group"), intel_fix);

    // An AMD host gets the AMD kernel argument.
    t.cpu("AuthenticAMD", &["sse4_2", "ssse3", "popcnt"])
        .unwrap();
    t.cmdline("root=/dev/sda1 amd_iommu=on isolcpus=2-7 nohz_full=2-7")
        .unwrap();
    let (r, _) = run(&t, CFG_82599, false);
    assert_eq!(
        found(&r, "iommu"),
        "no IOMMU groups in /sys/kernel/iommu_groups although the kernel has `amd_iommu=on`: \
         the IOMMU is off in the firmware or absent; vfio-pci cannot own the NICs"
    );
    assert_eq!(
        fix(&r, "iommu"),
        "enable AMD-Vi/IOMMU in the firmware and add `amd_iommu=on iommu=pt` to the kernel command line, then reboot"
    );
}

#[test]
fn hugepages_short_on_one_node() {
    let (_d, t) = good_host();
    t.hugepages(Some(1), HugepageSize::Size2M, 512, 100)
        .unwrap();
    let cfg = CFG_82599.replace("socket_mem_mb = [512]", "socket_mem_mb = [512, 512]");
    let (r, _) = run(&t, &cfg, false);
    assert_eq!(r.check("hugepages 2M node0").unwrap().verdict, OK);
    let c = r.check("hugepages 2M node1").unwrap();
    assert_eq!(c.verdict, FAIL);
    assert_eq!(
        c.found,
        "only 100 free of 512 reserved, config needs 256 (512 MiB)"
    );
    assert_eq!(
        c.fix.as_deref(),
        Some("echo 668 > /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages, or run check-host --apply")
    );

    // --apply reserves them; a second run has nothing to do.
    let (r, h) = run(&t, &cfg, true);
    let s = r.step("reserve hugepages 2M node1").unwrap();
    assert_eq!(s.outcome, StepOutcome::Done);
    assert_eq!(s.detail, "nr_hugepages 512 -> 668, 256 free, 256 needed");
    assert_eq!(
        r.step("reserve hugepages 2M node0").unwrap().outcome,
        StepOutcome::AlreadyDone
    );
    assert_eq!(
        h.log(),
        ["write /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages 668"]
    );
    assert_eq!(r.check("hugepages 2M node1").unwrap().verdict, OK);
    let (r, h) = run(&t, &cfg, true);
    assert_eq!(
        r.step("reserve hugepages 2M node1").unwrap().outcome,
        StepOutcome::AlreadyDone
    );
    assert!(h.log().is_empty(), "{:?}", h.log());
    assert!(r.passed());
}

#[test]
fn hugepages_fragmented_memory_fails_the_step() {
    let (_d, t) = good_host();
    t.hugepages(Some(1), HugepageSize::Size2M, 0, 0).unwrap();
    t.hugepage_capacity(Some(1), HugepageSize::Size2M, 40)
        .unwrap();
    let cfg = CFG_82599.replace("socket_mem_mb = [512]", "socket_mem_mb = [512, 512]");
    let (r, _) = run(&t, &cfg, true);
    let s = r.step("reserve hugepages 2M node1").unwrap();
    assert_eq!(s.outcome, StepOutcome::Failed);
    assert_eq!(
        s.detail,
        "asked for 256 pages, the kernel reserved 40 (40 free, 256 needed): memory is fragmented or short; \
         reserve them at boot with `hugepages=256`"
    );
    assert_eq!(
        found(&r, "hugepages 2M node1"),
        "only 40 free of 40 reserved, config needs 256 (512 MiB)"
    );
    assert!(!r.passed());
}

#[test]
fn missing_numa_node_and_1g_support() {
    let (_d, t) = good_host();
    let cfg = CFG_82599.replace("socket_mem_mb = [512]", "socket_mem_mb = [512, 0, 512]");
    let (r, _) = run(&t, &cfg, false);
    let c = r.check("hugepages 2M node2").unwrap();
    assert_eq!(c.verdict, FAIL);
    assert_eq!(
        c.found,
        "memory.socket_mem_mb[2] asks for 512 MiB on NUMA node 2, which does not exist (nodes: node0, node1)"
    );
    assert_eq!(
        c.fix.as_deref(),
        Some("give one socket_mem_mb entry per existing NUMA node (2 entries)")
    );

    std::fs::remove_dir_all(
        t.root()
            .join("sys/devices/system/node/node0/hugepages/hugepages-1048576kB"),
    )
    .unwrap();
    let cfg = CFG_82599.replace(
        "socket_mem_mb = [512]",
        "hugepage_size = \"1G\"\nsocket_mem_mb = [1024]",
    );
    let (r, _) = run(&t, &cfg, false);
    let c = r.check("hugepages 1G node0").unwrap();
    assert_eq!(c.verdict, FAIL);
    assert_eq!(
        c.found,
        "no 1G hugepage support (/sys/devices/system/node/node0/hugepages/hugepages-1048576kB missing)"
    );
}

#[test]
fn cores_not_isolated_warn() {
    let (_d, t) = good_host();
    t.isolated("").unwrap();
    t.cmdline("BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 intel_iommu=on iommu=pt")
        .unwrap();
    let (r, _) = run(&t, CFG_82599, false);
    let c = r.check("cores isolated").unwrap();
    assert_eq!(c.verdict, WARN);
    assert_eq!(
        c.found,
        "worker core(s) 2-3 not isolated, 2-3 not nohz_full (isolated: none; nohz_full: none); \
         the scheduler and timer ticks will interrupt the poll loops"
    );
    assert_eq!(
        c.fix.as_deref(),
        Some(
            "add `isolcpus=2-3 nohz_full=2-3 rcu_nocbs=2-3` to the kernel command line and reboot"
        )
    );
    // A warning does not fail the host.
    assert!(r.passed());

    // Isolated through isolcpus only: still no nohz_full on core 3.
    t.cmdline("root=/dev/sda1 intel_iommu=on isolcpus=domain,managed_irq,2-3 nohz_full=2")
        .unwrap();
    let (r, _) = run(&t, CFG_82599, false);
    assert_eq!(
        found(&r, "cores isolated"),
        "worker core(s) none not isolated, 3 not nohz_full (isolated: 2-3; nohz_full: 2); \
         the scheduler and timer ticks will interrupt the poll loops"
    );
}

#[test]
fn cores_missing_or_offline_fail() {
    let (_d, t) = good_host();
    t.online("0-2").unwrap();
    let (r, _) = run(&t, CFG_82599, false);
    let c = r.check("cores online").unwrap();
    assert_eq!(c.verdict, FAIL);
    assert_eq!(c.found, "core(s) 3 are offline");
    assert_eq!(
        c.fix.as_deref(),
        Some("echo 1 > /sys/devices/system/cpu/cpu3/online")
    );
    let cfg = CFG_82599.replace("workers = [2, 3]", "workers = [2, 30]");
    let (r, _) = run(&t, &cfg, false);
    assert_eq!(
        found(&r, "cores online"),
        "core(s) 30 do not exist (present: 0-15)"
    );
}

#[test]
fn nic_carrying_the_default_route_is_refused() {
    let (_d, t) = good_host();
    let cfg = CFG_82599.replace("0000:3b:00.0", "0000:19:00.0");
    let (r, _) = run(&t, &cfg, false);
    let c = r.check("port fabric0 host use").unwrap();
    assert_eq!(c.verdict, FAIL);
    assert_eq!(
        c.found,
        "0000:19:00.0: eno1 carries the IPv4 default route (via 10.0.0.1) and has an address in 10.0.0.0/24; \
         taking it would cut the host off"
    );
    assert_eq!(
        c.fix.as_deref(),
        Some("use a NIC the host does not use for the data plane, or move the host's addresses and routes off it first")
    );
    let d = r.check("port fabric0 device").unwrap();
    assert_eq!(d.verdict, FAIL);
    assert_eq!(
        d.fix.as_deref(),
        Some("see `port fabric0 host use`: pick a NIC the host does not use")
    );

    let (r, h) = run(&t, &cfg, true);
    let s = r.step("bind 0000:19:00.0 to vfio-pci").unwrap();
    assert_eq!(s.outcome, StepOutcome::Refused);
    assert_eq!(
        s.detail,
        "port fabric0: the host uses this NIC (eno1 carries the IPv4 default route (via 10.0.0.1) and has an \
         address in 10.0.0.0/24); binding it would cut the host off"
    );
    assert!(h.log().is_empty(), "nothing may be written: {:?}", h.log());
    assert!(!r.passed());
}

#[test]
fn nic_carrying_the_ipv6_default_route_is_refused() {
    let (_d, t) = good_host();
    t.netdev("ens1f0", Some(pci("0000:3b:00.0"))).unwrap();
    t.ipv6_default_route("ens1f0", "fe80::1".parse().unwrap())
        .unwrap();
    t.ipv6_addr("ens1f0", "2001:db8::5".parse().unwrap(), 4)
        .unwrap();
    let (r, _) = run(&t, CFG_82599, false);
    assert_eq!(
        found(&r, "port fabric0 host use"),
        "0000:3b:00.0: ens1f0 carries the IPv6 default route and has the address 2001:db8::5; \
         taking it would cut the host off"
    );
}

#[test]
fn numa_mismatch_warns() {
    let (_d, t) = good_host();
    t.pci(
        &FakePci::new("0000:3b:00.0", 0x8086, 0x10fb)
            .driver("vfio-pci")
            .numa(1)
            .group(31),
    )
    .unwrap();
    let cfg = CFG_82599.replace("socket_mem_mb = [512]", "socket_mem_mb = [512, 512]");
    let (r, _) = run(&t, &cfg, false);
    let c = r.check("port fabric0 numa").unwrap();
    assert_eq!(c.verdict, WARN);
    assert_eq!(
        c.found,
        "0000:3b:00.0 is on NUMA node 1 but workers 2-3 are on node 0: every packet crosses the NUMA interconnect"
    );
    assert_eq!(
        c.fix.as_deref(),
        Some("use workers on node 1 (cpus 8-15) in cores.workers, or move the NIC to a slot of node 0")
    );
    // Without memory on node 1 the queues cannot be allocated there.
    let (r, _) = run(&t, CFG_82599, false);
    let c = r.check("port fabric0 numa").unwrap();
    assert_eq!(c.verdict, FAIL);
    assert_eq!(
        c.fix.as_deref(),
        Some("set memory.socket_mem_mb = [512, 512]")
    );
}

#[test]
fn e810_without_vfs_then_apply_creates_and_binds() {
    let (_d, t) = good_host();
    e810(&t);
    let (r, _) = run(&t, CFG_VF, false);
    assert_eq!(
        verdicts(&r),
        with_common(&[
            ("port uplink sriov", FAIL),
            ("port uplink device", SKIP),
            ("port uplink iommu group", SKIP),
            ("port uplink numa", SKIP),
            ("port uplink host use", SKIP),
        ])
    );
    assert_eq!(
        found(&r, "port uplink sriov"),
        "PF 0000:af:00.0 (ice) has 0 of 64 VFs; VF 1 does not exist"
    );
    assert_eq!(
        fix(&r, "port uplink sriov"),
        "echo 2 > /sys/bus/pci/devices/0000:af:00.0/sriov_numvfs, or run check-host --apply"
    );
    let cfg = Config::from_toml_str(CFG_VF).unwrap();
    let e = eal_args_with_root(&cfg, "vrouter-dp", t.root()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("port `uplink`: VF 1 of 0000:af:00.0 not found"),
        "{e}"
    );

    let (r, h) = run(&t, CFG_VF, true);
    assert_eq!(
        r.steps
            .iter()
            .map(|s| (s.name.as_str(), s.outcome))
            .collect::<Vec<_>>(),
        [
            ("reserve hugepages 2M node0", StepOutcome::AlreadyDone),
            ("mount hugetlbfs", StepOutcome::AlreadyDone),
            ("load vfio-pci", StepOutcome::AlreadyDone),
            ("create VFs on 0000:af:00.0", StepOutcome::Done),
            ("bind 0000:af:01.1 to vfio-pci", StepOutcome::Done),
        ]
    );
    assert_eq!(
        r.step("create VFs on 0000:af:00.0").unwrap().detail,
        "sriov_numvfs 0 -> 2: virtfn0=0000:af:01.0 virtfn1=0000:af:01.1"
    );
    assert_eq!(
        r.step("bind 0000:af:01.1 to vfio-pci").unwrap().detail,
        "port uplink: was iavf"
    );
    assert_eq!(
        h.log(),
        [
            "write /sys/bus/pci/devices/0000:af:00.0/sriov_numvfs 2",
            "write /sys/bus/pci/devices/0000:af:01.1/driver_override vfio-pci",
            "write /sys/bus/pci/devices/0000:af:01.1/driver/unbind 0000:af:01.1",
            "write /sys/bus/pci/drivers_probe 0000:af:01.1",
        ]
    );
    assert!(r.passed(), "{}", r.render_text());
    assert_eq!(
        found(&r, "port uplink sriov"),
        "PF 0000:af:00.0 (ice): 2 of 64 VFs, virtfn1 = 0000:af:01.1"
    );
    assert_eq!(
        found(&r, "port uplink device"),
        "0000:af:01.1 Intel E810 Adaptive Virtual Function [8086:1889], driver vfio-pci, NUMA node 0, IOMMU group 42"
    );
    assert_eq!(
        eal_args_with_root(&cfg, "vrouter-dp", t.root()).unwrap().join(" "),
        "vrouter-dp -l 1,2,3 --main-lcore 1 -a 0000:af:01.1 --socket-mem 512 --log-level lib.eal:error"
    );

    // Idempotent: the second run changes nothing.
    let (r, h) = run(&t, CFG_VF, true);
    assert!(
        r.steps
            .iter()
            .all(|s| s.outcome == StepOutcome::AlreadyDone),
        "{}",
        r.render_text()
    );
    assert!(h.log().is_empty(), "{:?}", h.log());
}

#[test]
fn e810_with_vfs_on_iavf() {
    let (_d, t) = good_host();
    e810(&t);
    t.set_numvfs(pci("0000:af:00.0"), 4).unwrap();
    let (r, _) = run(&t, CFG_VF, false);
    assert_eq!(
        verdicts(&r),
        with_common(&[
            ("port uplink sriov", OK),
            ("port uplink device", FAIL),
            ("port uplink iommu group", OK),
            ("port uplink numa", OK),
            ("port uplink host use", OK),
        ])
    );
    assert_eq!(
        found(&r, "port uplink sriov"),
        "PF 0000:af:00.0 (ice): 4 of 64 VFs, virtfn1 = 0000:af:01.1"
    );
    assert!(fix(&r, "port uplink device")
        .contains("echo 0000:af:01.1 > /sys/bus/pci/devices/0000:af:01.1/driver/unbind"));

    // Asking for more VFs than exist is refused by --apply (it would destroy the 4).
    let cfg = CFG_VF.replace("index = 1", "index = 5");
    let (r, h) = run(&t, &cfg, true);
    let s = r.step("create VFs on 0000:af:00.0").unwrap();
    assert_eq!(s.outcome, StepOutcome::Refused);
    assert_eq!(
        s.detail,
        "the PF already has 4 VFs and changing the count destroys them (and whatever uses them); if that is safe: \
         echo 0 > /sys/bus/pci/devices/0000:af:00.0/sriov_numvfs && echo 6 > /sys/bus/pci/devices/0000:af:00.0/sriov_numvfs"
    );
    assert!(!h.log().iter().any(|l| l.contains("sriov_numvfs")));
    assert_eq!(
        fix(&r, "port uplink sriov"),
        "echo 0 > /sys/bus/pci/devices/0000:af:00.0/sriov_numvfs && echo 6 > /sys/bus/pci/devices/0000:af:00.0/sriov_numvfs (this destroys the existing VFs)"
    );
}

#[test]
fn intel_82599_vfs_follow_offset_and_stride() {
    let (_d, t) = good_host();
    t.sriov_pf(pci("0000:3b:00.1"), 63, 128, 2, 0x10ed, "ixgbevf")
        .unwrap();
    t.set_numvfs(pci("0000:3b:00.1"), 2).unwrap();
    let cfg = CFG_VF.replace("0000:af:00.0", "0000:3b:00.1");
    let (r, _) = run(&t, &cfg, false);
    assert_eq!(
        found(&r, "port uplink sriov"),
        "PF 0000:3b:00.1 (ixgbe): 2 of 63 VFs, virtfn1 = 0000:3b:10.3"
    );
    assert_eq!(
        found(&r, "port uplink device"),
        "0000:3b:10.3 Intel 82599 Virtual Function [8086:10ed], driver ixgbevf, NUMA node 0, IOMMU group 34; not bound to vfio-pci"
    );
}

#[test]
fn bare_host_apply_prepares_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let t = FakeTree::new(dir.path()).unwrap();
    t.cpus(4).unwrap();
    t.numa_node(0, "0-3").unwrap();
    t.isolated("2-3").unwrap();
    t.cmdline("root=/dev/vda1 intel_iommu=on iommu=pt isolcpus=2-3 nohz_full=2-3")
        .unwrap();
    t.vfio_installed().unwrap();
    t.pci(
        &FakePci::new("0000:3b:00.0", 0x8086, 0x10fb)
            .driver("ixgbe")
            .numa(0)
            .group(12),
    )
    .unwrap();
    t.netdev("ens1f0", Some(pci("0000:3b:00.0"))).unwrap();
    let (r, _) = run(&t, CFG_82599, false);
    assert_eq!(
        verdicts(&r),
        v(&[
            ("config", OK),
            ("cpu flags", OK),
            ("cores online", OK),
            ("cores isolated", OK),
            ("hugepages 2M node0", FAIL),
            ("hugetlbfs", FAIL),
            ("iommu", OK),
            ("vfio-pci", FAIL),
            ("host uplink", OK),
            ("port fabric0 device", FAIL),
            ("port fabric0 iommu group", OK),
            ("port fabric0 numa", OK),
            ("port fabric0 host use", OK),
        ])
    );
    assert_eq!(fix(&r, "hugetlbfs"), "mkdir -p /dev/hugepages && mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages, or run check-host --apply");
    assert_eq!(
        found(&r, "vfio-pci"),
        "vfio-pci is not loaded (the module is installed)"
    );
    assert_eq!(
        fix(&r, "vfio-pci"),
        "modprobe vfio-pci, or run check-host --apply"
    );
    assert_eq!(found(&r, "host uplink"), "no default route");

    let (r, h) = run(&t, CFG_82599, true);
    assert_eq!(
        r.steps
            .iter()
            .map(|s| (s.name.as_str(), s.outcome))
            .collect::<Vec<_>>(),
        [
            ("reserve hugepages 2M node0", StepOutcome::Done),
            ("mount hugetlbfs", StepOutcome::Done),
            ("load vfio-pci", StepOutcome::Done),
            ("bind 0000:3b:00.0 to vfio-pci", StepOutcome::Done),
        ]
    );
    assert_eq!(
        h.log(),
        [
            "write /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages 256",
            "mkdir /dev/hugepages",
            "mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages",
            "run modprobe vfio-pci",
            "write /sys/bus/pci/devices/0000:3b:00.0/driver_override vfio-pci",
            "write /sys/bus/pci/devices/0000:3b:00.0/driver/unbind 0000:3b:00.0",
            "write /sys/bus/pci/drivers_probe 0000:3b:00.0",
        ]
    );
    assert!(r.passed(), "{}", r.render_text());
    assert_eq!(
        found(&r, "port fabric0 iommu group"),
        "group 12 viable: 0000:3b:00.0 (vfio-pci)"
    );

    let (r, h) = run(&t, CFG_82599, true);
    assert!(
        r.steps
            .iter()
            .all(|s| s.outcome == StepOutcome::AlreadyDone),
        "{}",
        r.render_text()
    );
    assert!(h.log().is_empty(), "{:?}", h.log());
    assert!(r
        .render_text()
        .starts_with("apply already done reserve hugepages 2M node0: 256 free, 256 needed\n"));
}

#[test]
fn vfio_module_missing_fails_apply() {
    let dir = tempfile::tempdir().unwrap();
    let t = FakeTree::new(dir.path()).unwrap();
    t.cpus(4).unwrap();
    t.write(
        "lib/modules/6.8.0-45-generic/modules.dep",
        "kernel/drivers/net/foo.ko:\n",
    )
    .unwrap();
    t.pci(
        &FakePci::new("0000:3b:00.0", 0x8086, 0x10fb)
            .driver("ixgbe")
            .group(12),
    )
    .unwrap();
    let (r, _) = run(&t, CFG_82599, true);
    let s = r.step("load vfio-pci").unwrap();
    assert_eq!(s.outcome, StepOutcome::Failed);
    assert_eq!(
        s.detail,
        "modprobe vfio-pci: modprobe: FATAL: Module vfio-pci not found in directory /lib/modules/6.8.0-45-generic"
    );
    assert_eq!(
        r.step("bind 0000:3b:00.0 to vfio-pci").unwrap().detail,
        "port fabric0: vfio-pci is not loaded"
    );
    assert_eq!(
        found(&r, "vfio-pci"),
        "vfio-pci is not loaded and not in /lib/modules/6.8.0-45-generic"
    );
}

#[test]
fn missing_pci_device() {
    let (_d, t) = good_host();
    let cfg = CFG_82599.replace("0000:3b:00.0", "0000:d8:00.0");
    let (r, _) = run(&t, &cfg, false);
    let c = r.check("port fabric0 device").unwrap();
    assert_eq!(c.verdict, FAIL);
    assert_eq!(c.found, "PCI device 0000:d8:00.0 is not present");
    assert_eq!(
        c.fix.as_deref(),
        Some("find the NIC's address with `lspci -D -d ::0200` and set ports[0].pci")
    );
    assert_eq!(r.check("port fabric0 numa").unwrap().verdict, SKIP);
}

#[test]
fn json_report() {
    let (_d, t) = good_host();
    let cfg = CFG_82599.replace("0000:3b:00.0", "0000:19:00.0");
    let (r, _) = run(&t, &cfg, false);
    let j: serde_json::Value = serde_json::from_str(&r.render_json()).unwrap();
    assert_eq!(j["passed"], false);
    let checks = j["checks"].as_array().unwrap();
    let host_use = checks
        .iter()
        .find(|c| c["name"] == "port fabric0 host use")
        .unwrap();
    assert_eq!(host_use["verdict"], "fail");
    assert!(host_use["fix"]
        .as_str()
        .unwrap()
        .starts_with("use a NIC the host does not use"));
}

#[test]
fn demo_config_on_a_host_without_iommu_or_nic() {
    // The no-NIC demo: no PCI port, so the IOMMU is only a warning and the PCI
    // checks are skipped; in-memory mode needs no hugetlbfs mount.
    let dir = tempfile::tempdir().unwrap();
    let t = FakeTree::new(dir.path()).unwrap();
    t.cpus(2).unwrap();
    t.numa_node(0, "0-1").unwrap();
    t.hugepages(Some(0), HugepageSize::Size2M, 128, 128)
        .unwrap();
    let (r, _) = run(&t, pmd_config::DEFAULT_CONFIG_TOML, false);
    assert_eq!(
        verdicts(&r),
        v(&[
            ("config", OK),
            ("cpu flags", OK),
            ("cores online", OK),
            ("cores isolated", WARN),
            ("hugepages 2M node0", OK),
            ("hugetlbfs", OK),
            ("iommu", WARN),
            ("vfio-pci", SKIP),
            ("host uplink", OK),
            ("pci ports", SKIP),
        ])
    );
    assert!(r.passed());
    assert_eq!(
        found(&r, "hugetlbfs"),
        "no hugetlbfs mount for 2M pages; not needed with eal.in_memory (EAL maps hugepages anonymously)"
    );
}

/// On this machine (and any host without an IOMMU and without the configured NIC),
/// `check-host` must say exactly that. The assertions only run when the host really
/// has no IOMMU groups; on a host with an IOMMU the test checks that `iommu` is ok.
#[test]
fn real_root_reports_no_iommu_and_no_nic() {
    let root = Path::new("/");
    let groups = std::fs::read_dir("/sys/kernel/iommu_groups")
        .map(|d| d.count())
        .unwrap_or(0);
    let cfg = Config::from_toml_str(CFG_82599).unwrap();
    let present = Path::new("/sys/bus/pci/devices/0000:3b:00.0").exists();
    let r = check_host(&CheckHostOptions::new(cfg, root)).unwrap();
    if groups > 0 {
        assert_eq!(r.check("iommu").unwrap().verdict, OK);
        return;
    }
    let c = r.check("iommu").unwrap();
    assert_eq!(c.verdict, FAIL);
    assert!(
        c.found
            .starts_with("no IOMMU groups in /sys/kernel/iommu_groups"),
        "{}",
        c.found
    );
    let fix = c.fix.clone().unwrap();
    assert!(
        fix.contains("intel_iommu=on iommu=pt") || fix.contains("amd_iommu=on iommu=pt"),
        "{fix}"
    );
    if !present {
        let d = r.check("port fabric0 device").unwrap();
        assert_eq!(d.verdict, FAIL);
        assert_eq!(d.found, "PCI device 0000:3b:00.0 is not present");
    }
    if !Path::new("/sys/bus/pci/drivers/vfio-pci").exists() {
        assert_eq!(r.check("vfio-pci").unwrap().verdict, FAIL);
    }
    assert!(!r.passed());

    // The no-NIC demo config: nothing PCI to check.
    let demo = Config::default_demo().unwrap();
    let r = check_host(&CheckHostOptions::new(demo, root)).unwrap();
    assert_eq!(r.check("iommu").unwrap().verdict, WARN);
    assert_eq!(r.check("vfio-pci").unwrap().verdict, SKIP);
    assert_eq!(r.check("pci ports").unwrap().verdict, SKIP);
    println!("{}", r.render_text());
}

#[test]
fn cli_entry_point_on_a_fake_root() {
    let (_d, t) = good_host();
    let cfg = Config::from_toml_str(CFG_82599).unwrap();
    let (text, ok) = pmd_config::run_check_host(&cfg, t.root(), false, false).unwrap();
    assert!(ok, "{text}");
    assert!(
        text.ends_with("13 ok, 0 warn, 0 FAIL, 0 skip: host is ready\n"),
        "{text}"
    );
    let (json, ok) = pmd_config::run_check_host(&cfg, t.root(), false, true).unwrap();
    assert!(ok);
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j["checks"].as_array().unwrap().len(), 13);
    assert!(pmd_config::run_check_host(&cfg, &t.root().join("missing"), false, false).is_err());
}

#[test]
fn real_host_never_mounts_or_runs_commands_under_a_fake_root() {
    let dir = tempfile::tempdir().unwrap();
    let t = FakeTree::new(dir.path()).unwrap();
    t.cpus(4).unwrap();
    t.numa_node(0, "0-3").unwrap();
    t.hugepages(Some(0), HugepageSize::Size2M, 512, 512)
        .unwrap();
    t.vfio_installed().unwrap();
    t.pci(
        &FakePci::new("0000:3b:00.0", 0x8086, 0x10fb)
            .driver("ixgbe")
            .group(12),
    )
    .unwrap();
    let cfg = Config::from_toml_str(CFG_82599).unwrap();
    let mut opts = CheckHostOptions::new(cfg, t.root());
    opts.apply = true;
    let r = check_host(&opts).unwrap();
    let m = r.step("mount hugetlbfs").unwrap();
    assert_eq!(m.outcome, StepOutcome::Failed);
    assert_eq!(
        m.detail,
        format!(
            "mount at /dev/hugepages: refusing to mount: the host root is {}, not /",
            t.root().display()
        )
    );
    let l = r.step("load vfio-pci").unwrap();
    assert_eq!(l.outcome, StepOutcome::Failed);
    assert_eq!(
        l.detail,
        format!(
            "modprobe vfio-pci: refusing to run commands: the host root is {}, not /",
            t.root().display()
        )
    );
    assert!(!r.passed());
}

fn run_with_vfio(
    t: &FakeTree,
    cfg: &str,
    answer: Option<Result<bool, String>>,
) -> (Report, FakeHost) {
    let cfg = Config::from_toml_str(cfg).unwrap();
    let host = FakeHost::new(t.clone());
    host.set_vfio_group_viable(answer);
    let opts = CheckHostOptions::new(cfg, t.root());
    let r = check_host_with(&host, &opts);
    (r, host)
}

#[test]
fn kernel_vfio_probe_overrides_sysfs_viability() {
    let (_d, t) = good_host();
    // The kernel agrees: same verdict as sysfs alone, and the probe was asked.
    let (r, host) = run_with_vfio(&t, CFG_82599, Some(Ok(true)));
    assert_eq!(
        found(&r, "port fabric0 iommu group"),
        "group 31 viable: 0000:3b:00.0 (vfio-pci)"
    );
    assert!(host
        .log()
        .iter()
        .any(|l| l == "vfio probe /sys/bus/pci/devices/0000:3b:00.0"));
    // The kernel says not viable: FAIL with the fix.
    let (r, _) = run_with_vfio(&t, CFG_82599, Some(Ok(false)));
    let c = r.check("port fabric0 iommu group").unwrap();
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(
        c.found,
        "group 31 (0000:3b:00.0 (vfio-pci)): the kernel's VFIO reports the group not viable"
    );
    assert!(!r.passed());
    // The probe itself failed (group held by a running data plane): WARN, not FAIL.
    let (r, _) = run_with_vfio(&t, CFG_82599, Some(Err("open group 31: busy".into())));
    let c = r.check("port fabric0 iommu group").unwrap();
    assert_eq!(c.verdict, Verdict::Warn);
    assert!(
        c.found
            .contains("the VFIO probe failed: open group 31: busy"),
        "{}",
        c.found
    );
    assert!(r.passed());
}
