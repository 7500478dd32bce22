//! The config file's static forwarding state (interfaces, next-hops, routes, labels,
//! VNIs) as one all-or-nothing batch of FIB updates, for running without an agent.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use pmd_config::{Config, InterfaceKind, NexthopKind, TunnelEncap};
use thiserror::Error;

use crate::fib::{
    self, EcmpMember, Label, LabelEntry, MacAddr, NhId, NhSpec, Payload, PolicyAction, PolicyRule,
    Prefix, RouteTarget, TunnelSpec, TunnelType, Update, Vif, VifId, VifKind, Vni, VrfId,
};

/// A static-state entry that cannot be turned into a FIB update.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct StaticStateError {
    /// The config field path, e.g. `nexthops[2].dmac`.
    pub field: String,
    /// Why.
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> StaticStateError {
    StaticStateError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// What the runtime knows about each configured port: its DPDK port id, its MAC and
/// its driver (to tell tap from vhost pods).
#[derive(Debug, Clone)]
pub struct PortFacts {
    /// Config port name.
    pub name: String,
    /// DPDK port id.
    pub port_id: u16,
    /// The port's MAC.
    pub mac: [u8; 6],
    /// The DPDK driver name (`net_tap`, `net_vhost`, ...).
    pub driver: String,
}

fn u16_field(v: u32, field: String, what: &str) -> Result<u16, StaticStateError> {
    u16::try_from(v).map_err(|_| err(field, format!("{what} {v} is out of range (0..=65535)")))
}

/// Builds the batch. Interface MACs default to the port's MAC; tunnel next-hops
/// default their source address to the underlay address and their interface to the
/// underlay interface.
pub fn updates(cfg: &Config, ports: &[PortFacts]) -> Result<Vec<Update>, StaticStateError> {
    let by_name: HashMap<&str, &PortFacts> = ports.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut out = Vec::new();
    let mut vif_of_port: HashMap<&str, VifId> = HashMap::new();

    for (i, itf) in cfg.interfaces.iter().enumerate() {
        let f = |k: &str| format!("interfaces[{i}].{k}");
        let id = VifId(u16_field(itf.id, f("id"), "interface id")?);
        let vrf = VrfId(u16_field(itf.vrf, f("vrf"), "vrf")?);
        let port = match &itf.port {
            Some(name) => Some(
                *by_name
                    .get(name.as_str())
                    .ok_or_else(|| err(f("port"), format!("port {name:?} is not configured")))?,
            ),
            None => None,
        };
        let kind = match itf.kind {
            InterfaceKind::Physical => VifKind::Fabric,
            InterfaceKind::Host => VifKind::Host,
            InterfaceKind::Virtual => match port {
                Some(p) if p.driver.contains("tap") => VifKind::PodTap,
                _ => VifKind::PodVhost,
            },
        };
        let port_id = port.map_or(u16::MAX, |p| p.port_id);
        let mac = match (itf.mac, port) {
            (Some(m), _) => MacAddr(m.0),
            (None, Some(p)) => MacAddr(p.mac),
            (None, None) => return Err(err(f("mac"), "needed when the interface has no port")),
        };
        let mut v = Vif::new(id, kind, port_id, mac, vrf);
        v.ipv4.extend(itf.ipv4);
        v.ipv6.extend(itf.ipv6);
        // The fabric interface on the underlay port owns the node's underlay
        // addresses (the tunnel endpoints decapsulation accepts) unless it names
        // its own.
        if let (VifKind::Fabric, Some(u), Some(p)) = (kind, cfg.underlay.as_ref(), port) {
            if u.interface == p.name {
                // The underlay's VLAN is the fabric interface's: its tunnel
                // next-hops push the tag and what it receives must carry it.
                v.vlan = u.vlan;
                if v.ipv4.is_empty() {
                    v.ipv4.extend(u.ipv4.and_then(|a| match a.addr {
                        IpAddr::V4(a) => Some(a),
                        IpAddr::V6(_) => None,
                    }));
                }
                if v.ipv6.is_empty() {
                    v.ipv6.extend(u.ipv6.and_then(|a| match a.addr {
                        IpAddr::V6(a) => Some(a),
                        IpAddr::V4(_) => None,
                    }));
                }
            }
        }
        if let Some(m) = itf.mtu {
            v.mtu = m;
        }
        v.policy = itf.policy;
        if itf.policy {
            // The config has no rule language: a policy interface there learns every
            // flow (and its reverse) and allows it. The agent API sets real rules.
            v.rules = Arc::from(vec![PolicyRule::any(PolicyAction::Allow)]);
        }
        // Anti-spoofing needs the pod's own addresses: on for pod interfaces that have one.
        v.anti_spoof = matches!(kind, VifKind::PodVhost | VifKind::PodTap)
            && (itf.ipv4.is_some() || itf.ipv6.is_some());
        if let Some(p) = port {
            vif_of_port.entry(p.name.as_str()).or_insert(id);
        }
        out.push(Update::AddVif(v));
    }

    let underlay = cfg.underlay.as_ref();
    let underlay_vif = underlay.and_then(|u| vif_of_port.get(u.interface.as_str()).copied());
    for (i, nh) in cfg.nexthops.iter().enumerate() {
        let f = |k: &str| format!("nexthops[{i}].{k}");
        let vif = |v: u32, k: &str| u16_field(v, f(k), "interface id").map(VifId);
        let spec = match &nh.kind {
            NexthopKind::Discard => NhSpec::Discard,
            NexthopKind::Receive { interface } => NhSpec::Receive {
                vif: match interface {
                    Some(v) => vif(*v, "interface")?,
                    None => cfg
                        .interfaces
                        .iter()
                        .find(|x| x.kind == InterfaceKind::Host)
                        .map(|x| u16_field(x.id, f("interface"), "interface id").map(VifId))
                        .transpose()?
                        .ok_or_else(|| err(f("interface"), "no host interface to receive on"))?,
                },
            },
            NexthopKind::Encap { interface, dmac } => NhSpec::Encap {
                vif: vif(*interface, "interface")?,
                dmac: MacAddr(dmac.0),
            },
            NexthopKind::Tunnel {
                encap,
                dst,
                src,
                dmac,
                interface,
            } => {
                let src = match src {
                    Some(s) => *s,
                    None => underlay_src(underlay, dst).ok_or_else(|| {
                        err(f("src"), "no underlay address of the destination's family")
                    })?,
                };
                let out_vif = match interface {
                    Some(v) => vif(*v, "interface")?,
                    None => underlay_vif
                        .ok_or_else(|| err(f("interface"), "no underlay interface to send on"))?,
                };
                let dmac = dmac.ok_or_else(|| {
                    err(
                        f("dmac"),
                        "the fabric neighbour's MAC is required (no neighbour resolution)",
                    )
                })?;
                NhSpec::Tunnel(TunnelSpec {
                    ty: match encap {
                        TunnelEncap::Vxlan => TunnelType::Vxlan,
                        TunnelEncap::Mplsoudp => TunnelType::MplsOverUdp,
                        TunnelEncap::Mplsogre => TunnelType::MplsOverGre,
                    },
                    src,
                    dst: *dst,
                    out_vif,
                    dmac: MacAddr(dmac.0),
                })
            }
            NexthopKind::CompositeEcmp { members } => NhSpec::Ecmp(
                members
                    .iter()
                    .map(|m| EcmpMember {
                        nh: NhId(m.nexthop),
                        label: m.label,
                    })
                    .collect(),
            ),
            NexthopKind::L2Flood { members } => NhSpec::Flood(
                members
                    .iter()
                    .map(|&m| EcmpMember {
                        nh: NhId(m),
                        label: None,
                    })
                    .collect(),
            ),
            NexthopKind::VrfTranslate => NhSpec::VrfTranslate {
                vrf: VrfId(u16_field(nh.vrf.unwrap_or(0), f("vrf"), "vrf")?),
            },
        };
        out.push(Update::AddNh(NhId(nh.id), spec));
    }

    for (i, r) in cfg.routes.iter().enumerate() {
        let f = |k: &str| format!("routes[{i}].{k}");
        let prefix = Prefix::new(r.prefix.network(), r.prefix.len)
            .map_err(|e| err(f("prefix"), e.to_string()))?;
        out.push(Update::AddRoute {
            vrf: VrfId(u16_field(r.vrf, f("vrf"), "vrf")?),
            prefix,
            target: RouteTarget {
                nh: NhId(r.nexthop),
                label: r.label.or(r.vni),
            },
        });
    }
    for l in &cfg.labels {
        out.push(Update::AddLabel(
            Label(l.label),
            LabelEntry {
                nh: NhId(l.nexthop),
                payload: Payload::Ip,
            },
        ));
    }
    for v in &cfg.vnis {
        out.push(Update::AddVni(Vni(v.vni), NhId(v.nexthop)));
    }
    Ok(out)
}

fn underlay_src(u: Option<&pmd_config::Underlay>, dst: &IpAddr) -> Option<IpAddr> {
    let u = u?;
    match dst {
        IpAddr::V4(_) => u.ipv4.map(|p| p.addr),
        IpAddr::V6(_) => u.ipv6.map(|p| p.addr),
    }
}

/// The FIB sizes and router MAC the runtime uses (TF's defaults: the gateway MAC
/// pods see is 00:00:5e:00:01:00).
pub fn fib_config() -> fib::FibConfig {
    fib::FibConfig::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[cores]
workers = [1]
control = 0
[[ports]]
name = "fab"
vdev = "net_null0"
role = "fabric"
[[ports]]
name = "pod"
vdev = "net_null1"
role = "pod"
[underlay]
interface = "fab"
ipv4 = "10.10.0.11/24"
ipv6 = "fd00::11/64"
[[vrfs]]
id = 1
[[interfaces]]
id = 0
kind = "physical"
port = "fab"
vrf = 0
[[interfaces]]
id = 1
kind = "virtual"
port = "pod"
vrf = 1
"#;

    fn facts() -> Vec<PortFacts> {
        ["fab", "pod"]
            .iter()
            .enumerate()
            .map(|(i, n)| PortFacts {
                name: (*n).to_string(),
                port_id: i as u16,
                mac: [2, 0, 0, 0, 0, i as u8],
                driver: "net_null".into(),
            })
            .collect()
    }

    fn fabric_vif(u: &[Update]) -> &Vif {
        u.iter()
            .find_map(|u| match u {
                Update::AddVif(v) if v.kind == VifKind::Fabric => Some(v),
                _ => None,
            })
            .expect("a fabric vif")
    }

    #[test]
    fn fabric_interface_gets_the_underlay_addresses() {
        let cfg = Config::from_toml_str(CFG).expect("valid config");
        let u = updates(&cfg, &facts()).expect("state builds");
        let f = fabric_vif(&u);
        assert_eq!(
            f.ipv4,
            vec!["10.10.0.11".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert_eq!(
            f.ipv6,
            vec!["fd00::11".parse::<std::net::Ipv6Addr>().unwrap()]
        );
        // The node's tunnel endpoint follows, so decapsulation accepts it.
        let mut fib = fib::Fib::new(fib::FibConfig::default());
        let snap = fib.apply(&u).expect("applies");
        assert!(snap.is_node_v4("10.10.0.11".parse().unwrap()));
    }

    #[test]
    fn fabric_interface_gets_the_underlay_vlan() {
        let cfg = Config::from_toml_str(CFG).expect("valid config");
        let u = updates(&cfg, &facts()).expect("state builds");
        assert_eq!(fabric_vif(&u).vlan, None, "untagged without underlay.vlan");
        let cfg = CFG.replace("[underlay]\n", "[underlay]\nvlan = 100\n");
        let cfg = Config::from_toml_str(&cfg).expect("valid config");
        let u = updates(&cfg, &facts()).expect("state builds");
        assert_eq!(fabric_vif(&u).vlan, Some(100));
        // Pod interfaces are never tagged.
        assert!(u.iter().all(
            |x| !matches!(x, Update::AddVif(v) if v.kind != VifKind::Fabric && v.vlan.is_some())
        ));
    }

    #[test]
    fn an_interface_address_of_its_own_wins() {
        let cfg = CFG.replace(
            "port = \"fab\"\nvrf = 0",
            "port = \"fab\"\nvrf = 0\nipv4 = \"10.10.0.99\"",
        );
        let cfg = Config::from_toml_str(&cfg).expect("valid config");
        let u = updates(&cfg, &facts()).expect("state builds");
        let f = fabric_vif(&u);
        assert_eq!(
            f.ipv4,
            vec!["10.10.0.99".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert_eq!(
            f.ipv6,
            vec!["fd00::11".parse::<std::net::Ipv6Addr>().unwrap()]
        );
    }
}
