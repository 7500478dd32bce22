//! Interfaces (TF's `vr_interface`): what the data plane knows about each port it
//! forwards between, and the per-interface policy rules.
//!
//! Per-interface packet/byte/drop counters are kept by each worker in its own
//! cache-aligned counter block (see `pipeline::stats`), not in the shared snapshot.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::{MacAddr, Prefix, VifId, VrfId};

/// The highest 802.1Q VLAN id an interface may carry.
pub const MAX_VLAN: u16 = 4094;

/// The role of an interface (TF's `VIF_TYPE_*` plus transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VifKind {
    /// The fabric (underlay) NIC or VF (`PHYSICAL`): tunnels arrive and leave here.
    Fabric,
    /// A pod attached over vhost-user (`VIRTUAL`, PMD transport).
    PodVhost,
    /// A pod attached over a tap / kernel interface (`VIRTUAL`, ETH transport).
    PodTap,
    /// The host interface `vhost0` (`HOST`): the node's own addresses.
    Host,
    /// The agent packet interface `pkt0` (`AGENT`): traps to the agent.
    Agent,
}

impl VifKind {
    /// Whether this interface leads to a pod.
    #[inline]
    pub fn is_pod(self) -> bool {
        matches!(self, VifKind::PodVhost | VifKind::PodTap)
    }
}

/// An interface, as the control plane configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vif {
    /// Interface index.
    pub id: VifId,
    /// Role.
    pub kind: VifKind,
    /// The DPDK port the interface is bound to (RX port id and TX port).
    pub port: u16,
    /// The interface's MAC: the pod's own MAC for pod interfaces (anti-spoofing and
    /// L2 rewrite), the NIC's MAC for the fabric.
    pub mac: MacAddr,
    /// The VRF packets received on this interface are forwarded in.
    pub vrf: VrfId,
    /// IPv4 addresses (a pod's own addresses, or the node's underlay addresses).
    pub ipv4: Vec<Ipv4Addr>,
    /// IPv6 addresses.
    pub ipv6: Vec<Ipv6Addr>,
    /// MTU of the interface (IP packet size, without the Ethernet header).
    pub mtu: u16,
    /// Whether flows are looked up (and policy evaluated) for this interface.
    pub policy: bool,
    /// Whether a pod's source MAC and IP must be its own.
    pub anti_spoof: bool,
    /// Policy rules, evaluated in order for the first packet of a flow; first match
    /// wins, no match denies.
    pub rules: Arc<[PolicyRule]>,
    /// The 802.1Q VLAN id (1..=4094) of a fabric interface on a VLAN: every frame
    /// sent on it carries this tag (PCP 0) and every frame received on it must carry
    /// it (anything else is dropped as `vlan_mismatch`). `None`: the fabric is
    /// untagged; frames received there with a VLAN id are dropped the same way
    /// (priority-tagged frames, VLAN id 0, are accepted as untagged).
    pub vlan: Option<u16>,
}

impl Vif {
    /// A plain interface with no addresses, no policy and anti-spoofing off.
    pub fn new(id: VifId, kind: VifKind, port: u16, mac: MacAddr, vrf: VrfId) -> Self {
        Self {
            id,
            kind,
            port,
            mac,
            vrf,
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            mtu: 1500,
            policy: false,
            anti_spoof: false,
            rules: Arc::from(Vec::new()),
            vlan: None,
        }
    }

    /// Whether `ip` is one of the interface's addresses.
    #[inline]
    pub fn owns_ip(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.ipv4.contains(&a),
            IpAddr::V6(a) => self.ipv6.contains(&a),
        }
    }

    /// Whether `vid` is a VLAN id an interface may be configured with (1..=4094;
    /// 0 means priority-tagged and 4095 is reserved).
    #[inline]
    pub const fn valid_vlan(vid: u16) -> bool {
        vid >= 1 && vid <= MAX_VLAN
    }

    /// Evaluate the policy rules for a 5-tuple.
    pub fn evaluate(
        &self,
        proto: u8,
        src: IpAddr,
        dst: IpAddr,
        sport: u16,
        dport: u16,
    ) -> PolicyAction {
        self.rules
            .iter()
            .find(|r| r.matches(proto, src, dst, sport, dport))
            .map_or(PolicyAction::Deny, |r| r.action)
    }
}

/// What a matching rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyAction {
    /// Forward the flow (and its reverse).
    Allow,
    /// Drop the flow (and its reverse).
    Deny,
}

/// An inclusive port range; `PortRange::ANY` matches every port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
}

impl PortRange {
    /// All ports.
    pub const ANY: PortRange = PortRange {
        lo: 0,
        hi: u16::MAX,
    };

    /// One port.
    pub const fn single(p: u16) -> Self {
        PortRange { lo: p, hi: p }
    }

    #[inline]
    fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
}

/// One allow/deny rule: protocol, source and destination prefixes, port ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyRule {
    /// The decision when the rule matches.
    pub action: PolicyAction,
    /// IP protocol number; `None` matches any.
    pub proto: Option<u8>,
    /// Source prefix; `None` matches any.
    pub src: Option<Prefix>,
    /// Destination prefix; `None` matches any.
    pub dst: Option<Prefix>,
    /// Source ports (TCP/UDP; ignored for other protocols).
    pub sport: PortRange,
    /// Destination ports (TCP/UDP; ignored for other protocols).
    pub dport: PortRange,
}

impl PolicyRule {
    /// A rule matching everything with the given action.
    pub const fn any(action: PolicyAction) -> Self {
        Self {
            action,
            proto: None,
            src: None,
            dst: None,
            sport: PortRange::ANY,
            dport: PortRange::ANY,
        }
    }

    /// Whether the rule matches a 5-tuple.
    pub fn matches(&self, proto: u8, src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> bool {
        if self.proto.is_some_and(|p| p != proto) {
            return false;
        }
        if self.src.is_some_and(|p| !p.contains(src)) || self.dst.is_some_and(|p| !p.contains(dst))
        {
            return false;
        }
        let has_ports = proto == 6 || proto == 17;
        !has_ports || (self.sport.contains(sport) && self.dport.contains(dport))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_first_match_default_deny() {
        let mut v = Vif::new(
            VifId(1),
            VifKind::PodVhost,
            1,
            MacAddr([2, 0, 0, 0, 0, 1]),
            VrfId(1),
        );
        let web = PolicyRule {
            proto: Some(6),
            dport: PortRange { lo: 80, hi: 443 },
            dst: Some(Prefix::v4(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap()),
            ..PolicyRule::any(PolicyAction::Allow)
        };
        v.rules = Arc::from(vec![
            web,
            PolicyRule {
                proto: Some(17),
                ..PolicyRule::any(PolicyAction::Deny)
            },
        ]);
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let c = IpAddr::V4(Ipv4Addr::new(11, 0, 0, 2));
        assert_eq!(v.evaluate(6, a, b, 1000, 443), PolicyAction::Allow);
        assert_eq!(v.evaluate(6, a, b, 1000, 444), PolicyAction::Deny);
        assert_eq!(v.evaluate(6, a, c, 1000, 80), PolicyAction::Deny);
        assert_eq!(v.evaluate(17, a, b, 1000, 80), PolicyAction::Deny);
        v.rules = Arc::from(vec![PolicyRule::any(PolicyAction::Allow)]);
        assert_eq!(v.evaluate(1, a, c, 0, 0), PolicyAction::Allow);
    }
}
