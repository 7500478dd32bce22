//! The `[flows]` section: default, accepted sizes, refused sizes name the field.

use pmd_config::{Config, ConfigError, DEFAULT_FLOW_CAPACITY};

const BASE: &str = r#"
[cores]
workers = [1]
control = 0
[[ports]]
name = "a"
vdev = "net_null0"
"#;

#[test]
fn default_capacity() {
    let c = Config::from_toml_str(BASE).unwrap();
    assert_eq!(c.flows.capacity, DEFAULT_FLOW_CAPACITY);
}

#[test]
fn capacity_is_taken() {
    let c = Config::from_toml_str(&format!("{BASE}[flows]\ncapacity = 4194304\n")).unwrap();
    assert_eq!(c.flows.capacity, 4 << 20);
}

#[test]
fn bad_capacities_name_the_field() {
    for bad in ["1000", "512", "33554432"] {
        let e = Config::from_toml_str(&format!("{BASE}[flows]\ncapacity = {bad}\n")).unwrap_err();
        let ConfigError::Invalid { errors, .. } = &e else {
            panic!("{bad}: {e:?}");
        };
        assert!(
            errors.iter().any(|f| f.path == "flows.capacity"),
            "{bad}: {errors:?}"
        );
    }
}
