//! Every shipped config (configs/*.toml) and the embedded default pass validation.

// Shared test code outside #[test] functions unwraps too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use pmd_config::{Config, PortSource, DEFAULT_CONFIG_TOML};

fn examples() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_example_validates() {
    let files = examples();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "default.toml",
            "dpdk-pods-vhost.toml",
            "kernel-pods-tap.toml",
            "one-nic-vxlan.toml",
            "sriov-vf-uplink.toml",
            "two-bonded-nics.toml"
        ]
    );
    for f in files {
        let cfg = Config::load(&f).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            cfg.warnings.is_empty(),
            "{}: {:?}",
            f.display(),
            cfg.warnings
        );
        assert!(!cfg.ports.is_empty());
    }
}

#[test]
fn embedded_default_is_the_shipped_default() {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/default.toml"))
            .unwrap();
    assert_eq!(shipped, DEFAULT_CONFIG_TOML);
    let cfg = Config::from_toml_str(DEFAULT_CONFIG_TOML).unwrap();
    assert_eq!(cfg.cores.workers, vec![1]);
    assert_eq!(cfg.cores.control, 0);
    assert!(cfg.eal.in_memory);
    assert!(cfg.eal.no_pci);
    assert_eq!(
        cfg.ports
            .iter()
            .map(|p| p.source.clone())
            .collect::<Vec<_>>(),
        vec![
            PortSource::Vdev {
                devargs: "net_null0".into()
            },
            PortSource::Vdev {
                devargs: "net_null1".into()
            }
        ]
    );
}
