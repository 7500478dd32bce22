//! The exact EAL argument vectors of the shipped configs.

// Shared test code outside #[test] functions unwraps too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use pmd_config::testing::{FakePci, FakeTree};
use pmd_config::{device_names, eal_args, eal_args_with_root, render_args, Config};

fn example(name: &str) -> Config {
    Config::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("configs")
            .join(name),
    )
    .unwrap()
}

#[test]
fn demo_config() {
    let cfg = Config::default_demo().unwrap();
    assert_eq!(
        render_args(&eal_args(&cfg, "vrouter-dp")),
        "vrouter-dp -l 0,1 --main-lcore 0 --in-memory --no-pci --vdev net_null0 --vdev net_null1 \
         --socket-mem 256 --log-level lib.eal:error"
    );
    let no_huge = pmd_config::DEFAULT_CONFIG_TOML.replace("hugepages = true", "hugepages = false");
    let cfg = Config::from_toml_str(&no_huge).unwrap();
    assert_eq!(
        eal_args(&cfg, "x").join(" "),
        "x -l 0,1 --main-lcore 0 --in-memory --no-pci --vdev net_null0 --vdev net_null1 \
         --no-huge -m 256 --log-level lib.eal:error"
    );
}

#[test]
fn one_nic() {
    let cfg = example("one-nic-vxlan.toml");
    assert_eq!(
        eal_args(&cfg, "vrouter-dp").join(" "),
        "vrouter-dp -l 1,2,3 --main-lcore 1 --file-prefix vrouter --iova-mode va -a 0000:3b:00.0 \
         --socket-mem 1024 --huge-dir /dev/hugepages --log-level lib.eal:error"
    );
    assert_eq!(
        device_names(&cfg, Path::new("/nonexistent")).unwrap(),
        ["0000:3b:00.0"]
    );
}

#[test]
fn bonded_nics_and_tap() {
    let cfg = example("two-bonded-nics.toml");
    assert_eq!(
        eal_args(&cfg, "vrouter-dp"),
        [
            "vrouter-dp",
            "-l",
            "1,2,3,4,5",
            "--main-lcore",
            "1",
            "--file-prefix",
            "vrouter",
            "--iova-mode",
            "va",
            "-a",
            "0000:5e:00.0",
            "-a",
            "0000:5e:00.1",
            "--vdev",
            "net_tap0,iface=tap-pod-b",
            "--vdev",
            "net_bonding_bond0,mode=4,slave=0000:5e:00.0,slave=0000:5e:00.1,xmit_policy=l34",
            "--socket-mem",
            "2048,0",
            "--huge-dir",
            "/dev/hugepages1G",
            "--log-level",
            "lib.eal:error",
        ]
    );
    assert_eq!(
        pmd_config::eal::bond_device_name(&cfg).as_deref(),
        Some("net_bonding_bond0")
    );
    assert_eq!(
        device_names(&cfg, Path::new("/")).unwrap(),
        ["0000:5e:00.0", "0000:5e:00.1", "net_tap0"]
    );
}

#[test]
fn vf_uplink_resolved_through_sysfs() {
    let dir = tempfile::tempdir().unwrap();
    let t = FakeTree::new(dir.path()).unwrap();
    t.pci(
        &FakePci::new("0000:af:00.0", 0x8086, 0x159b)
            .driver("ice")
            .group(40),
    )
    .unwrap();
    t.sriov_pf("0000:af:00.0".parse().unwrap(), 64, 8, 1, 0x1889, "iavf")
        .unwrap();
    let cfg = example("sriov-vf-uplink.toml");
    let err = eal_args_with_root(&cfg, "vrouter-dp", dir.path()).unwrap_err();
    assert_eq!(
        err.to_string().split(" (").next().unwrap(),
        format!(
            "port `uplink-vf0`: VF 0 of 0000:af:00.0 not found: {}/sys/bus/pci/devices/0000:af:00.0/virtfn0 does not exist",
            dir.path().display()
        )
    );
    t.set_numvfs("0000:af:00.0".parse().unwrap(), 2).unwrap();
    assert_eq!(
        eal_args_with_root(&cfg, "vrouter-dp", dir.path())
            .unwrap()
            .join(" "),
        "vrouter-dp -l 1,2,3 --main-lcore 1 --file-prefix vrouter --iova-mode va -a 0000:af:01.0 \
         --socket-mem 512 --log-level lib.eal:error"
    );
    assert_eq!(device_names(&cfg, dir.path()).unwrap(), ["0000:af:01.0"]);
}

#[test]
fn extra_args_come_last() {
    let src = pmd_config::DEFAULT_CONFIG_TOML.replace(
        "in_memory = true",
        "in_memory = true\nextra_args = [\"--no-telemetry\", \"--vfio-intr=msix\"]",
    );
    let cfg = Config::from_toml_str(&src).unwrap();
    let a = eal_args(&cfg, "x");
    assert_eq!(&a[a.len() - 2..], ["--no-telemetry", "--vfio-intr=msix"]);
    let bad = src.replace("\"--no-telemetry\"", "\"--socket-mem=64\"");
    let e = Config::from_toml_str(&bad).unwrap_err();
    assert_eq!(
        e.to_string(),
        "eal.extra_args[0]: `--socket-mem` is derived from the config; set the corresponding field instead (line 23)"
    );
}
