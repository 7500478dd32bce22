//! Conversions between the API messages and the forwarding-state types, with a
//! precise error (field and reason) for every value that does not fit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::fib::{
    BridgeEntry, EcmpMember, LabelEntry, MacAddr, NhId, NhSpec, Payload, PolicyAction, PolicyRule,
    PortRange, Prefix, RouteTarget, TunnelSpec, TunnelType, Update, Vif, VifId, VifKind, Vni,
    VrfId,
};

use super::error::Violations;
use super::proto as pb;

/// Parses an IPv4 or IPv6 address.
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    if s.is_empty() {
        return Err("required".into());
    }
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 or IPv6 address"))
}

/// Parses `addr/len` into a prefix with no host bits.
pub fn parse_prefix(s: &str) -> Result<Prefix, String> {
    if s.is_empty() {
        return Err("required".into());
    }
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a prefix (expected address/length)"))?;
    let addr: IpAddr = a
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a prefix: {a:?} is not an address"))?;
    let len: u8 = l
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a prefix: {l:?} is not a length"))?;
    Prefix::new(addr, len).map_err(|e| e.to_string())
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<MacAddr, String> {
    if s.is_empty() {
        return Err("required".into());
    }
    let mut out = [0u8; 6];
    let mut n = 0;
    for part in s.split([':', '-']) {
        let slot = out
            .get_mut(n)
            .ok_or_else(|| format!("{s:?} is not a MAC address"))?;
        if part.len() != 2 {
            return Err(format!("{s:?} is not a MAC address"));
        }
        *slot = u8::from_str_radix(part, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
        n += 1;
    }
    if n != 6 {
        return Err(format!("{s:?} is not a MAC address"));
    }
    Ok(MacAddr(out))
}

fn u16_of(v: u32, what: &str) -> Result<u16, String> {
    u16::try_from(v).map_err(|_| format!("{what} {v} does not fit in 16 bits"))
}

/// A VRF id.
pub fn vrf_of(v: u32) -> Result<VrfId, String> {
    u16_of(v, "vrf").map(VrfId)
}

/// An interface id.
pub fn vif_of(v: u32) -> Result<VifId, String> {
    u16_of(v, "vif").map(VifId)
}

/// How many updates change `c` stands for against the batch limit: the routes of a
/// route set, one for any other change.
pub fn items(c: &pb::Change) -> usize {
    match &c.op {
        Some(pb::change::Op::AddRoutes(s) | pb::change::Op::DelRoutes(s)) => s.prefix_lens.len(),
        _ => 1,
    }
}

/// Converts change `index` of a batch into `out` (one update, or one per route of a
/// route set), recording errors under `changes[index]`. `current_vif` gives the
/// interface as the batch so far leaves it (its policy rules are kept across an
/// interface replace; `set_policy` replaces them).
pub fn change(
    c: &pb::Change,
    index: usize,
    errs: &mut Violations,
    current_vif: &dyn Fn(VifId) -> Option<Vif>,
    out: &mut Vec<Update>,
) {
    match &c.op {
        Some(pb::change::Op::AddRoutes(s)) => route_set(s, index, true, errs, out),
        Some(pb::change::Op::DelRoutes(s)) => route_set(s, index, false, errs, out),
        _ => out.extend(change_one(c, index, errs, current_vif)),
    }
}

/// Route-set errors recorded per set; the rest are counted in one more entry.
const MAX_SET_ERRORS: usize = 100;

/// Expands a packed route set (`add_routes` / `del_routes`) into route updates.
/// Errors name the route: `changes[index].add_routes[j].prefix`.
pub fn route_set(
    s: &pb::RouteSet,
    index: usize,
    add: bool,
    errs: &mut Violations,
    out: &mut Vec<Update>,
) {
    let op = if add { "add_routes" } else { "del_routes" };
    let base = format!("changes[{index}].{op}");
    let n = s.prefix_lens.len();
    let mut ok = true;
    let vrf = vrf_of(s.vrf)
        .map_err(|r| errs.push(format!("{base}.vrf"), r))
        .ok();
    let width = match pb::Family::try_from(s.family) {
        Ok(pb::Family::Inet) => 4,
        Ok(pb::Family::Inet6) => 16,
        _ => {
            errs.push(
                format!("{base}.family"),
                format!("{} is not FAMILY_INET or FAMILY_INET6", s.family),
            );
            return;
        }
    };
    if s.addrs.len() != n * width {
        errs.push(
            format!("{base}.addrs"),
            format!(
                "{} bytes do not hold {n} addresses of {width} bytes (one per prefix length)",
                s.addrs.len()
            ),
        );
        ok = false;
    }
    if add {
        if !(s.nhs.len() == 1 || (n > 0 && s.nhs.len() == n)) {
            errs.push(
                format!("{base}.nhs"),
                format!(
                    "{} next-hops for {n} routes: give one for all, or one per route",
                    s.nhs.len()
                ),
            );
            ok = false;
        }
        if !(s.labels.len() <= 1 || s.labels.len() == n) {
            errs.push(
                format!("{base}.labels"),
                format!(
                    "{} labels for {n} routes: give none, one for all, or one per route",
                    s.labels.len()
                ),
            );
            ok = false;
        }
    } else {
        for (f, len) in [("nhs", s.nhs.len()), ("labels", s.labels.len())] {
            if len > 0 {
                errs.push(
                    format!("{base}.{f}"),
                    "not used by del_routes; leave it empty",
                );
                ok = false;
            }
        }
    }
    let Some(vrf) = vrf else { return };
    if !ok {
        return;
    }
    let pick = |v: &[u32], j: usize| if v.len() == 1 { v.first() } else { v.get(j) }.copied();
    let mut bad = 0usize;
    out.reserve(n);
    for (j, (a, &len)) in s.addrs.chunks_exact(width).zip(&s.prefix_lens).enumerate() {
        let addr = match <[u8; 4]>::try_from(a) {
            Ok(b4) => IpAddr::from(b4),
            Err(_) => match <[u8; 16]>::try_from(a) {
                Ok(b16) => IpAddr::from(b16),
                Err(_) => continue,
            },
        };
        let prefix = match Prefix::new(addr, len) {
            Ok(p) => p,
            Err(e) => {
                bad += 1;
                if bad <= MAX_SET_ERRORS {
                    errs.push(format!("{base}[{j}].prefix"), format!("{addr}/{len}: {e}"));
                }
                continue;
            }
        };
        if !add {
            out.push(Update::DelRoute { vrf, prefix });
            continue;
        }
        let label = match pick(&s.labels, j) {
            None => None,
            Some(l) if l > Vni::MAX => {
                bad += 1;
                if bad <= MAX_SET_ERRORS {
                    errs.push(
                        format!("{base}[{j}].label"),
                        format!("{l} does not fit in 24 bits"),
                    );
                }
                continue;
            }
            Some(l) => Some(l),
        };
        out.push(Update::AddRoute {
            vrf,
            prefix,
            target: RouteTarget {
                nh: NhId(pick(&s.nhs, j).unwrap_or(0)),
                label,
            },
        });
    }
    if bad > MAX_SET_ERRORS {
        errs.push(
            base,
            format!("{} more routes refused", bad - MAX_SET_ERRORS),
        );
    }
}

fn change_one(
    c: &pb::Change,
    index: usize,
    errs: &mut Violations,
    current_vif: &dyn Fn(VifId) -> Option<Vif>,
) -> Option<Update> {
    use pb::change::Op;
    let Some(op) = &c.op else {
        errs.push(
            format!("changes[{index}]"),
            "empty change (no operation set)",
        );
        return None;
    };
    let mut e = Errs {
        errs,
        index: Some(index),
        op: "",
    };
    match op {
        Op::AddInterface(i) => {
            e.op = "add_interface";
            let v = interface(i, &mut e)?;
            let mut v = v;
            if let Some(old) = current_vif(v.id) {
                v.rules = old.rules;
            }
            Some(Update::AddVif(v))
        }
        Op::DelInterface(k) => {
            e.op = "del_interface";
            e.get("id", vif_of(k.id)).map(Update::DelVif)
        }
        Op::AddNexthop(n) => {
            e.op = "add_nexthop";
            let spec = nexthop(n, &mut e)?;
            Some(Update::AddNh(NhId(n.id), spec))
        }
        Op::DelNexthop(k) => Some(Update::DelNh(NhId(k.id))),
        Op::AddRoute(r) => {
            e.op = "add_route";
            let vrf = e.get("vrf", vrf_of(r.vrf));
            let prefix = e.get("prefix", parse_prefix(&r.prefix));
            let label = e.get("label", label_of(r.label, r.label_valid));
            Some(Update::AddRoute {
                vrf: vrf?,
                prefix: prefix?,
                target: RouteTarget {
                    nh: NhId(r.nh),
                    label: label?,
                },
            })
        }
        Op::DelRoute(r) => {
            e.op = "del_route";
            let vrf = e.get("vrf", vrf_of(r.vrf));
            let prefix = e.get("prefix", parse_prefix(&r.prefix));
            Some(Update::DelRoute {
                vrf: vrf?,
                prefix: prefix?,
            })
        }
        Op::AddBridge(b) => {
            e.op = "add_bridge";
            let vrf = e.get("vrf", vrf_of(b.vrf));
            let mac = e.get("mac", parse_mac(&b.mac));
            let label = e.get("label", label_of(b.label, b.label_valid));
            Some(Update::AddBridge {
                vrf: vrf?,
                mac: mac?,
                entry: BridgeEntry {
                    nh: NhId(b.nh),
                    label: label?,
                },
            })
        }
        Op::DelBridge(b) => {
            e.op = "del_bridge";
            let vrf = e.get("vrf", vrf_of(b.vrf));
            let mac = e.get("mac", parse_mac(&b.mac));
            Some(Update::DelBridge {
                vrf: vrf?,
                mac: mac?,
            })
        }
        Op::AddMplsLabel(m) => {
            e.op = "add_mpls_label";
            let label = e.get("label", mpls_label(m.label));
            let payload = e.get("payload", payload_of(m.payload));
            Some(Update::AddLabel(
                label?,
                LabelEntry {
                    nh: NhId(m.nh),
                    payload: payload?,
                },
            ))
        }
        Op::DelMplsLabel(m) => {
            e.op = "del_mpls_label";
            e.get("label", mpls_label(m.label)).map(Update::DelLabel)
        }
        Op::AddVxlan(x) => {
            e.op = "add_vxlan";
            let vni = e.get("vni", vni_of(x.vni));
            Some(Update::AddVni(vni?, NhId(x.nh)))
        }
        Op::DelVxlan(x) => {
            e.op = "del_vxlan";
            e.get("vni", vni_of(x.vni)).map(Update::DelVni)
        }
        // Expanded route by route by `change`, which never passes them here.
        Op::AddRoutes(_) | Op::DelRoutes(_) => None,
        Op::SetPolicy(p) => {
            e.op = "set_policy";
            let id = e.get("vif", vif_of(p.vif))?;
            let rules = policy_rules(&p.rules, &mut e)?;
            let Some(mut v) = current_vif(id) else {
                e.push("vif", format!("{id} does not exist"));
                return None;
            };
            v.rules = Arc::from(rules);
            Some(Update::AddVif(v))
        }
    }
}

/// The op name of a change, for error paths.
pub fn op_name(c: &pb::Change) -> &'static str {
    use pb::change::Op;
    match &c.op {
        None => "",
        Some(Op::AddInterface(_)) => "add_interface",
        Some(Op::DelInterface(_)) => "del_interface",
        Some(Op::AddNexthop(_)) => "add_nexthop",
        Some(Op::DelNexthop(_)) => "del_nexthop",
        Some(Op::AddRoute(_)) => "add_route",
        Some(Op::DelRoute(_)) => "del_route",
        Some(Op::AddRoutes(_)) => "add_routes",
        Some(Op::DelRoutes(_)) => "del_routes",
        Some(Op::AddBridge(_)) => "add_bridge",
        Some(Op::DelBridge(_)) => "del_bridge",
        Some(Op::AddMplsLabel(_)) => "add_mpls_label",
        Some(Op::DelMplsLabel(_)) => "del_mpls_label",
        Some(Op::AddVxlan(_)) => "add_vxlan",
        Some(Op::DelVxlan(_)) => "del_vxlan",
        Some(Op::SetPolicy(_)) => "set_policy",
    }
}

/// Error sink for one item: pushes `base.op.field`.
pub struct Errs<'a> {
    errs: &'a mut Violations,
    index: Option<usize>,
    op: &'static str,
}

impl<'a> Errs<'a> {
    /// A sink for fields of a stand-alone object (paths are `field`).
    pub fn root(errs: &'a mut Violations) -> Self {
        Self {
            errs,
            index: None,
            op: "",
        }
    }

    fn push(&mut self, field: &str, reason: impl Into<String>) {
        let base = self
            .index
            .map(|i| format!("changes[{i}]"))
            .unwrap_or_default();
        let mut p = String::with_capacity(base.len() + self.op.len() + field.len() + 2);
        for part in [base.as_str(), self.op, field] {
            if part.is_empty() {
                continue;
            }
            if !p.is_empty() {
                p.push('.');
            }
            p.push_str(part);
        }
        self.errs.push(p, reason);
    }

    fn get<T>(&mut self, field: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(reason) => {
                self.push(field, reason);
                None
            }
        }
    }
}

fn label_of(l: u32, valid: bool) -> Result<Option<u32>, String> {
    match (valid, l) {
        (false, 0) => Ok(None),
        (false, v) => Err(format!("{v} is set but label_valid is not")),
        (true, v) if v > Vni::MAX => Err(format!("{v} does not fit in 24 bits")),
        (true, v) => Ok(Some(v)),
    }
}

fn mpls_label(l: u32) -> Result<crate::fib::Label, String> {
    if l > crate::fib::Label::MAX {
        return Err(format!("{l} does not fit in 20 bits"));
    }
    Ok(crate::fib::Label(l))
}

fn vni_of(v: u32) -> Result<Vni, String> {
    if v == 0 || v > Vni::MAX {
        return Err(format!("{v} is not a VNI (1..={})", Vni::MAX));
    }
    Ok(Vni(v))
}

fn payload_of(p: i32) -> Result<Payload, String> {
    match pb::Payload::try_from(p) {
        Ok(pb::Payload::Ip) => Ok(Payload::Ip),
        Ok(pb::Payload::Ethernet) => Ok(Payload::Ethernet),
        Err(_) => Err(format!("unknown payload {p}")),
    }
}

/// Converts an interface message.
pub fn interface(i: &pb::Interface, e: &mut Errs<'_>) -> Option<Vif> {
    let id = e.get("id", vif_of(i.id));
    let kind = e.get("type", kind_of(i.r#type, i.transport));
    let port = e.get("port", u16_of(i.port, "port"));
    let mac = e.get("mac", parse_mac(&i.mac));
    let vrf = e.get("vrf", vrf_of(i.vrf));
    let mtu = match i.mtu {
        0 => Some(1500),
        m => e.get("mtu", u16_of(m, "mtu")),
    };
    let vlan = e.get("vlan", vlan_of(i.vlan, kind));
    let mut ipv4 = Vec::with_capacity(i.ipv4.len());
    let mut ok = true;
    for (n, a) in i.ipv4.iter().enumerate() {
        match a.parse::<Ipv4Addr>() {
            Ok(x) => ipv4.push(x),
            Err(_) => {
                e.push(
                    &format!("ipv4[{n}]"),
                    format!("{a:?} is not an IPv4 address"),
                );
                ok = false;
            }
        }
    }
    let mut ipv6 = Vec::with_capacity(i.ipv6.len());
    for (n, a) in i.ipv6.iter().enumerate() {
        match a.parse::<Ipv6Addr>() {
            Ok(x) => ipv6.push(x),
            Err(_) => {
                e.push(
                    &format!("ipv6[{n}]"),
                    format!("{a:?} is not an IPv6 address"),
                );
                ok = false;
            }
        }
    }
    let mut v = Vif::new(id?, kind?, port?, mac?, vrf?);
    if !ok {
        return None;
    }
    v.mtu = mtu?;
    v.vlan = vlan?;
    v.ipv4 = ipv4;
    v.ipv6 = ipv6;
    v.policy = i.policy;
    v.anti_spoof = i.anti_spoof;
    Some(v)
}

/// The VLAN of an interface message: 0 is untagged; only a fabric interface has one.
fn vlan_of(vlan: u32, kind: Option<VifKind>) -> Result<Option<u16>, String> {
    if vlan == 0 {
        return Ok(None);
    }
    let vid = u16::try_from(vlan)
        .ok()
        .filter(|v| Vif::valid_vlan(*v))
        .ok_or_else(|| {
            format!(
                "{vlan} is not a VLAN id (1..={}, or 0 for untagged)",
                crate::fib::vif::MAX_VLAN
            )
        })?;
    match kind {
        Some(VifKind::Fabric) | None => Ok(Some(vid)),
        Some(_) => Err("only a PHYSICAL (fabric) interface can be on a VLAN".into()),
    }
}

fn kind_of(ty: i32, transport: i32) -> Result<VifKind, String> {
    let t = pb::InterfaceType::try_from(ty).map_err(|_| format!("unknown interface type {ty}"))?;
    let tr =
        pb::Transport::try_from(transport).map_err(|_| format!("unknown transport {transport}"))?;
    match t {
        pb::InterfaceType::VifTypeUnspecified => {
            Err("required (VIRTUAL, PHYSICAL, HOST or AGENT)".into())
        }
        pb::InterfaceType::VifTypeAgent => Ok(VifKind::Agent),
        pb::InterfaceType::VifTypeHost => Ok(VifKind::Host),
        pb::InterfaceType::VifTypePhysical => Ok(VifKind::Fabric),
        pb::InterfaceType::VifTypeVirtual => match tr {
            pb::Transport::Pmd => Ok(VifKind::PodVhost),
            pb::Transport::Eth | pb::Transport::Socket => Ok(VifKind::PodTap),
            pb::Transport::Unspecified => {
                Err("a VIRTUAL interface needs transport PMD (vhost-user) or ETH (tap)".into())
            }
        },
    }
}

/// The API form of an interface.
pub fn interface_msg(v: &Vif) -> pb::Interface {
    let (ty, tr) = match v.kind {
        VifKind::Fabric => (pb::InterfaceType::VifTypePhysical, pb::Transport::Pmd),
        VifKind::PodVhost => (pb::InterfaceType::VifTypeVirtual, pb::Transport::Pmd),
        VifKind::PodTap => (pb::InterfaceType::VifTypeVirtual, pb::Transport::Eth),
        VifKind::Host => (pb::InterfaceType::VifTypeHost, pb::Transport::Eth),
        VifKind::Agent => (pb::InterfaceType::VifTypeAgent, pb::Transport::Socket),
    };
    pb::Interface {
        id: u32::from(v.id.0),
        r#type: ty as i32,
        transport: tr as i32,
        name: String::new(),
        port: u32::from(v.port),
        mac: v.mac.to_string(),
        vrf: u32::from(v.vrf.0),
        ipv4: v.ipv4.iter().map(ToString::to_string).collect(),
        ipv6: v.ipv6.iter().map(ToString::to_string).collect(),
        mtu: u32::from(v.mtu),
        policy: v.policy,
        anti_spoof: v.anti_spoof,
        link_up: false,
        counters: None,
        vlan: v.vlan.map_or(0, u32::from),
    }
}

/// Converts a next-hop message.
pub fn nexthop(n: &pb::NextHop, e: &mut Errs<'_>) -> Option<NhSpec> {
    let ty = match pb::NextHopType::try_from(n.r#type) {
        Ok(t) => t,
        Err(_) => {
            e.push("type", format!("unknown next-hop type {}", n.r#type));
            return None;
        }
    };
    match ty {
        pb::NextHopType::NhTypeUnspecified => {
            e.push(
                "type",
                "required (RECEIVE, ENCAP, TUNNEL, DISCARD, COMPOSITE or VRF_TRANSLATE)",
            );
            None
        }
        pb::NextHopType::NhTypeDiscard => Some(NhSpec::Discard),
        pb::NextHopType::NhTypeReceive => {
            let vif = e.get("vif", vif_of(n.vif))?;
            Some(NhSpec::Receive { vif })
        }
        pb::NextHopType::NhTypeEncap => {
            let vif = e.get("vif", vif_of(n.vif));
            let dmac = e.get("dmac", parse_mac(&n.dmac));
            Some(NhSpec::Encap {
                vif: vif?,
                dmac: dmac?,
            })
        }
        pb::NextHopType::NhTypeTunnel => {
            let ty = e.get("tunnel", tunnel_of(n.tunnel));
            let src = e.get("tunnel_src", parse_ip(&n.tunnel_src));
            let dst = e.get("tunnel_dst", parse_ip(&n.tunnel_dst));
            let out_vif = e.get("vif", vif_of(n.vif));
            let dmac = e.get("dmac", parse_mac(&n.dmac));
            let (src, dst) = (src?, dst?);
            if src.is_ipv4() != dst.is_ipv4() {
                e.push(
                    "tunnel_dst",
                    format!("{dst} and source {src} are of different families"),
                );
                return None;
            }
            Some(NhSpec::Tunnel(TunnelSpec {
                ty: ty?,
                src,
                dst,
                out_vif: out_vif?,
                dmac: dmac?,
            }))
        }
        pb::NextHopType::NhTypeComposite => {
            let members: Vec<EcmpMember> = n
                .members
                .iter()
                .map(|m| EcmpMember {
                    nh: NhId(m.nh),
                    label: m.label_valid.then_some(m.label),
                })
                .collect();
            let mut ok = true;
            for (i, m) in n.members.iter().enumerate() {
                if let Err(r) = label_of(m.label, m.label_valid) {
                    e.push(&format!("members[{i}].label"), r);
                    ok = false;
                }
            }
            if members.is_empty() {
                e.push("members", "a composite next-hop needs at least one member");
                ok = false;
            }
            let kind = match pb::CompositeType::try_from(n.composite) {
                Ok(pb::CompositeType::CompositeEcmp) => Some(true),
                Ok(pb::CompositeType::CompositeFlood) => Some(false),
                Ok(pb::CompositeType::CompositeUnspecified) => {
                    e.push("composite", "required (ECMP or FLOOD)");
                    None
                }
                Err(_) => {
                    e.push(
                        "composite",
                        format!("unknown composite type {}", n.composite),
                    );
                    None
                }
            };
            if !ok {
                return None;
            }
            Some(if kind? {
                NhSpec::Ecmp(members)
            } else {
                NhSpec::Flood(members)
            })
        }
        pb::NextHopType::NhTypeVrfTranslate => {
            let vrf = e.get("vrf", vrf_of(n.vrf))?;
            Some(NhSpec::VrfTranslate { vrf })
        }
    }
}

fn tunnel_of(t: i32) -> Result<TunnelType, String> {
    match pb::TunnelType::try_from(t) {
        Ok(pb::TunnelType::TunnelMplsUdp) => Ok(TunnelType::MplsOverUdp),
        Ok(pb::TunnelType::TunnelMplsGre) => Ok(TunnelType::MplsOverGre),
        Ok(pb::TunnelType::TunnelVxlan) => Ok(TunnelType::Vxlan),
        Ok(pb::TunnelType::TunnelUnspecified) => {
            Err("required (MPLS_UDP, MPLS_GRE or VXLAN)".into())
        }
        Err(_) => Err(format!("unknown tunnel type {t}")),
    }
}

/// The API form of a next-hop.
pub fn nexthop_msg(id: NhId, s: &NhSpec) -> pb::NextHop {
    let mut m = pb::NextHop {
        id: id.0,
        ..pb::NextHop::default()
    };
    let members = |v: &[EcmpMember]| {
        v.iter()
            .map(|x| pb::CompositeMember {
                nh: x.nh.0,
                label: x.label.unwrap_or(0),
                label_valid: x.label.is_some(),
            })
            .collect()
    };
    match s {
        NhSpec::Discard => m.r#type = pb::NextHopType::NhTypeDiscard as i32,
        NhSpec::Receive { vif } => {
            m.r#type = pb::NextHopType::NhTypeReceive as i32;
            m.vif = u32::from(vif.0);
        }
        NhSpec::Encap { vif, dmac } => {
            m.r#type = pb::NextHopType::NhTypeEncap as i32;
            m.vif = u32::from(vif.0);
            m.dmac = dmac.to_string();
        }
        NhSpec::Tunnel(t) => {
            m.r#type = pb::NextHopType::NhTypeTunnel as i32;
            m.tunnel = match t.ty {
                TunnelType::MplsOverUdp => pb::TunnelType::TunnelMplsUdp,
                TunnelType::MplsOverGre => pb::TunnelType::TunnelMplsGre,
                TunnelType::Vxlan => pb::TunnelType::TunnelVxlan,
            } as i32;
            m.tunnel_src = t.src.to_string();
            m.tunnel_dst = t.dst.to_string();
            m.vif = u32::from(t.out_vif.0);
            m.dmac = t.dmac.to_string();
        }
        NhSpec::Ecmp(v) => {
            m.r#type = pb::NextHopType::NhTypeComposite as i32;
            m.composite = pb::CompositeType::CompositeEcmp as i32;
            m.members = members(v);
        }
        NhSpec::Flood(v) => {
            m.r#type = pb::NextHopType::NhTypeComposite as i32;
            m.composite = pb::CompositeType::CompositeFlood as i32;
            m.members = members(v);
        }
        NhSpec::VrfTranslate { vrf } => {
            m.r#type = pb::NextHopType::NhTypeVrfTranslate as i32;
            m.vrf = u32::from(vrf.0);
        }
    }
    m
}

/// Converts policy rules.
pub fn policy_rules(rules: &[pb::PolicyRule], e: &mut Errs<'_>) -> Option<Vec<PolicyRule>> {
    let mut out = Vec::with_capacity(rules.len());
    let mut ok = true;
    for (i, r) in rules.iter().enumerate() {
        let f = |x: &str| format!("rules[{i}].{x}");
        let action = match pb::PolicyAction::try_from(r.action) {
            Ok(pb::PolicyAction::PolicyAllow) => PolicyAction::Allow,
            Ok(pb::PolicyAction::PolicyDeny) => PolicyAction::Deny,
            Err(_) => {
                e.push(&f("action"), format!("unknown action {}", r.action));
                ok = false;
                continue;
            }
        };
        let proto = match r.proto {
            0 => None,
            p => match u8::try_from(p) {
                Ok(p) => Some(p),
                Err(_) => {
                    e.push(&f("proto"), format!("{p} is not an IP protocol number"));
                    ok = false;
                    None
                }
            },
        };
        let pfx = |s: &str| -> Result<Option<Prefix>, String> {
            if s.is_empty() {
                Ok(None)
            } else {
                parse_prefix(s).map(Some)
            }
        };
        let src = e.get(&f("src"), pfx(&r.src));
        let dst = e.get(&f("dst"), pfx(&r.dst));
        let sport = e.get(&f("sport_lo"), range(r.sport_lo, r.sport_hi));
        let dport = e.get(&f("dport_lo"), range(r.dport_lo, r.dport_hi));
        match (src, dst, sport, dport) {
            (Some(src), Some(dst), Some(sport), Some(dport)) => out.push(PolicyRule {
                action,
                proto,
                src,
                dst,
                sport,
                dport,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn range(lo: u32, hi: u32) -> Result<PortRange, String> {
    if lo == 0 && hi == 0 {
        return Ok(PortRange::ANY);
    }
    let hi = if hi == 0 { lo } else { hi };
    let (lo, hi) = (u16_of(lo, "port")?, u16_of(hi, "port")?);
    if lo > hi {
        return Err(format!("range {lo}-{hi} is empty"));
    }
    Ok(PortRange { lo, hi })
}

/// The API form of policy rules.
pub fn policy_msg(v: &Vif) -> pb::Policy {
    pb::Policy {
        vif: u32::from(v.id.0),
        rules: v
            .rules
            .iter()
            .map(|r| {
                let any = r.sport == PortRange::ANY;
                let dany = r.dport == PortRange::ANY;
                pb::PolicyRule {
                    action: match r.action {
                        PolicyAction::Allow => pb::PolicyAction::PolicyAllow,
                        PolicyAction::Deny => pb::PolicyAction::PolicyDeny,
                    } as i32,
                    proto: r.proto.map_or(0, u32::from),
                    src: r.src.map(|p| p.to_string()).unwrap_or_default(),
                    dst: r.dst.map(|p| p.to_string()).unwrap_or_default(),
                    sport_lo: if any { 0 } else { u32::from(r.sport.lo) },
                    sport_hi: if any { 0 } else { u32::from(r.sport.hi) },
                    dport_lo: if dany { 0 } else { u32::from(r.dport.lo) },
                    dport_hi: if dany { 0 } else { u32::from(r.dport.hi) },
                }
            })
            .collect(),
    }
}

/// Whether update `u` names object `what`/`id` in field `field` (used to point a
/// batch-level refusal at the item that caused it).
pub fn implicates(u: &Update, e: &crate::fib::FibError) -> bool {
    use crate::fib::FibError as E;
    match e {
        E::Missing { what, id, .. } => {
            let id = *id;
            match *what {
                "next-hop" => match u {
                    Update::AddRoute { target, .. } => u64::from(target.nh.0) == id,
                    Update::AddBridge { entry, .. } => u64::from(entry.nh.0) == id,
                    Update::AddLabel(_, l) => u64::from(l.nh.0) == id,
                    Update::AddVni(_, nh) => u64::from(nh.0) == id,
                    Update::AddNh(_, s) => s.nh_refs().any(|m| u64::from(m.0) == id),
                    Update::DelNh(n) => u64::from(n.0) == id,
                    _ => false,
                },
                "vif" => match u {
                    Update::AddNh(_, s) => s.vif_ref().is_some_and(|v| u64::from(v.0) == id),
                    Update::DelVif(v) => u64::from(v.0) == id,
                    _ => false,
                },
                _ => false,
            }
        }
        E::NhInUse { nh, .. } => matches!(u, Update::DelNh(n) if n == nh),
        E::VifInUse { vif, .. } => matches!(u, Update::DelVif(v) if v == vif),
        E::ReservedNh => matches!(u, Update::AddNh(n, _) | Update::DelNh(n) if *n == NhId::DISCARD),
        E::NoRoute { vrf, prefix } => {
            matches!(u, Update::DelRoute { vrf: v, prefix: p } if v == vrf && p == prefix)
        }
        E::NoBridgeEntry { vrf, mac } => {
            matches!(u, Update::DelBridge { vrf: v, mac: m } if v == vrf && m == mac)
        }
        E::NoLabel(l) => matches!(u, Update::DelLabel(x) if x == l),
        E::NoVni(n) => matches!(u, Update::DelVni(x) if x == n),
        E::TableFull { vrf, .. } => matches!(u, Update::AddRoute { vrf: v, .. } if v == vrf),
        E::OutOfRange { what, id, .. } => {
            let id = *id;
            match *what {
                "vif" => matches!(u, Update::AddVif(v) if u64::from(v.id.0) == id),
                "port" => matches!(u, Update::AddVif(v) if u64::from(v.port) == id),
                "next-hop" => matches!(u, Update::AddNh(n, _) if u64::from(n.0) == id),
                "vrf" => match u {
                    Update::AddVif(v) => u64::from(v.vrf.0) == id,
                    Update::AddRoute { vrf, .. }
                    | Update::DelRoute { vrf, .. }
                    | Update::AddBridge { vrf, .. }
                    | Update::DelBridge { vrf, .. } => u64::from(vrf.0) == id,
                    Update::AddNh(_, NhSpec::VrfTranslate { vrf }) => u64::from(vrf.0) == id,
                    _ => false,
                },
                "label" => {
                    matches!(u, Update::AddLabel(l, _) | Update::DelLabel(l) if u64::from(l.0) == id)
                }
                _ => false,
            }
        }
        E::PrefixLength { .. } | E::HostBits { .. } | E::Invalid { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_prefix("10.1.0.0/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(parse_prefix("fd00::/8").unwrap().to_string(), "fd00::/8");
        assert!(parse_prefix("10.1.0.1/16")
            .unwrap_err()
            .contains("host bits"));
        assert!(parse_prefix("10.1.0.0")
            .unwrap_err()
            .contains("not a prefix"));
        assert!(parse_prefix("10.1.0.0/33")
            .unwrap_err()
            .contains("too long"));
        assert!(parse_prefix("banana/3")
            .unwrap_err()
            .contains("not an address"));
        assert_eq!(parse_prefix("").unwrap_err(), "required");
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:00:00:00:00:0a").unwrap(),
            MacAddr([2, 0, 0, 0, 0, 10])
        );
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert!(parse_mac("02:00:00:00:00:00:00").is_err());
        assert!(parse_mac("zz:00:00:00:00:00").is_err());
    }

    #[test]
    fn every_bad_field_is_reported() {
        let c = pb::Change {
            op: Some(pb::change::Op::AddRoute(pb::Route {
                vrf: 70000,
                prefix: "10.0.0.1/8".into(),
                nh: 1,
                label: 1 << 25,
                label_valid: true,
            })),
        };
        let mut v = Violations::default();
        let mut out = Vec::new();
        change(&c, 4, &mut v, &|_| None, &mut out);
        assert!(out.is_empty());
        let fields: Vec<_> = v.0.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "changes[4].add_route.vrf",
                "changes[4].add_route.prefix",
                "changes[4].add_route.label"
            ]
        );
    }

    #[test]
    fn fabric_vlan_is_validated_and_round_trips() {
        let fab = |vlan: u32, ty: pb::InterfaceType| pb::Interface {
            id: 0,
            r#type: ty as i32,
            transport: pb::Transport::Pmd as i32,
            mac: "02:00:00:00:00:01".into(),
            vlan,
            ..Default::default()
        };
        let add = |i: pb::Interface| pb::Change {
            op: Some(pb::change::Op::AddInterface(i)),
        };
        let mut v = Violations::default();
        let Some(Update::AddVif(x)) = change_one(
            &add(fab(100, pb::InterfaceType::VifTypePhysical)),
            0,
            &mut v,
            &|_| None,
        ) else {
            panic!("{v:?}")
        };
        assert_eq!(x.vlan, Some(100));
        assert_eq!(interface_msg(&x).vlan, 100);
        let Some(Update::AddVif(x)) = change_one(
            &add(fab(0, pb::InterfaceType::VifTypePhysical)),
            0,
            &mut v,
            &|_| None,
        ) else {
            panic!("{v:?}")
        };
        assert_eq!(x.vlan, None, "0 is untagged");
        assert_eq!(interface_msg(&x).vlan, 0);
        for (vlan, ty, reason) in [
            (
                4095,
                pb::InterfaceType::VifTypePhysical,
                "4095 is not a VLAN id (1..=4094, or 0 for untagged)",
            ),
            (
                70000,
                pb::InterfaceType::VifTypePhysical,
                "70000 is not a VLAN id (1..=4094, or 0 for untagged)",
            ),
            (
                10,
                pb::InterfaceType::VifTypeVirtual,
                "only a PHYSICAL (fabric) interface can be on a VLAN",
            ),
        ] {
            let mut v = Violations::default();
            assert!(change_one(&add(fab(vlan, ty)), 2, &mut v, &|_| None).is_none());
            assert_eq!(v.0.len(), 1, "{v:?}");
            assert_eq!(v.0[0].field, "changes[2].add_interface.vlan");
            assert_eq!(v.0[0].reason, reason);
        }
    }

    #[test]
    fn nexthop_roundtrip() {
        let n = pb::NextHop {
            id: 7,
            r#type: pb::NextHopType::NhTypeTunnel as i32,
            vif: 0,
            dmac: "02:00:00:00:00:01".into(),
            tunnel: pb::TunnelType::TunnelVxlan as i32,
            tunnel_src: "192.0.2.1".into(),
            tunnel_dst: "192.0.2.2".into(),
            ..Default::default()
        };
        let mut v = Violations::default();
        let spec = nexthop(&n, &mut Errs::root(&mut v)).unwrap();
        assert_eq!(nexthop_msg(NhId(7), &spec), n);
    }
}
