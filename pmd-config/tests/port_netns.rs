//! `netns` / `ifname` of kernel pods' tap ports: accepted on `net_tap` pod ports
//! that name their tap, refused elsewhere with the field named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pmd_config::{Config, FieldError, PortNetns};

const BASE: &str = r#"
[cores]
workers = [1]

[memory]
socket_mem_mb = [256]
mbufs_per_pool = 8191

[[ports]]
name = "fabric"
vdev = "net_af_packet0,iface=veth0"
"#;

fn port(body: &str) -> String {
    format!("{BASE}\n[[ports]]\n{body}")
}

fn errors(src: &str) -> Vec<String> {
    match Config::from_toml_str(src) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(e) => e.field_errors().iter().map(FieldError::to_string).collect(),
    }
}

#[test]
fn tap_pod_port_with_netns_is_accepted() {
    let cfg = Config::from_toml_str(&port(
        "name = \"pod1\"\nvdev = \"net_tap0,iface=vr-tap1\"\nrole = \"pod\"\nnetns = \"pod1-ns\"\nifname = \"eth0\"\n",
    ))
    .unwrap();
    assert_eq!(
        cfg.port("pod1").unwrap().netns,
        Some(PortNetns {
            netns: "pod1-ns".into(),
            ifname: "eth0".into(),
            host_ifname: "vr-tap1".into(),
        })
    );
    assert_eq!(cfg.port("fabric").unwrap().netns, None);
}

#[test]
fn ifname_defaults_to_the_port_name_and_paths_are_accepted() {
    let cfg = Config::from_toml_str(&port(
        "name = \"pod1\"\nvdev = \"net_tap0, iface = vr-tap1\"\nrole = \"pod\"\nnetns = \"/proc/1/ns/net\"\n",
    ))
    .unwrap();
    let n = cfg.port("pod1").unwrap().netns.clone().unwrap();
    assert_eq!(n.ifname, "pod1");
    assert_eq!(n.netns, "/proc/1/ns/net");
    assert_eq!(n.host_ifname, "vr-tap1");
}

#[test]
fn netns_needs_a_net_tap_pod_port_that_names_its_tap() {
    let e = errors(&port(
        "name = \"pod1\"\nvdev = \"net_null0\"\nrole = \"pod\"\nnetns = \"ns\"\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("ports[1].netns: only a `net_tap`"),
        "{e:?}"
    );
    assert!(e[0].ends_with("(line 17)"), "{e:?}");

    let e = errors(&port(
        "name = \"pod1\"\nvdev = \"net_tap0,iface=t1\"\nnetns = \"ns\"\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("ports[1].netns: only a port with role pod"),
        "{e:?}"
    );

    let e = errors(&port(
        "name = \"pod1\"\nvdev = \"net_tap0\"\nrole = \"pod\"\nnetns = \"ns\"\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("ports[1].vdev: a port with `netns` needs `iface=<name>`"),
        "{e:?}"
    );
}

#[test]
fn bad_names_are_refused() {
    let e = errors(&port(
        "name = \"pod1\"\nvdev = \"net_tap0,iface=t1\"\nrole = \"pod\"\nnetns = \"a/b\"\nifname = \"an-interface-name-too-long\"\n",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e.iter()
            .any(|x| x.starts_with("ports[1].netns: `a/b` is neither")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|x| x.starts_with("ports[1].ifname: `an-interface-name-too-long`")),
        "{e:?}"
    );

    // Without `ifname` the port's name is used inside, and must fit.
    let e = errors(&port(
        "name = \"a-port-name-that-is-long\"\nvdev = \"net_tap0,iface=t1\"\nrole = \"pod\"\nnetns = \"ns\"\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("ports[1].name: "), "{e:?}");
    assert!(e[0].contains("set `ifname`"), "{e:?}");
}

#[test]
fn ifname_without_netns_is_refused() {
    let e = errors(&port(
        "name = \"pod1\"\nvdev = \"net_tap0,iface=t1\"\nrole = \"pod\"\nifname = \"eth0\"\n",
    ));
    assert_eq!(e, ["ports[1].ifname: set without `netns` (line 17)"]);
}
