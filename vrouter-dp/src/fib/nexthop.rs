//! Next-hops (TF's `vr_nexthop`): what a route, label, VNI or bridge entry resolves
//! to, with everything the rewrite needs precomputed (ports, MACs, the ready-made
//! outer header of a tunnel).

use std::net::IpAddr;
use std::sync::Arc;

use super::vif::{Vif, VifKind};
use super::{FibError, MacAddr, NhId, VifId, VrfId};
use crate::packet::{EthernetAddress, Payload, TunnelEncap as Encap, TunnelParams, UdpChecksum};

/// Tunnel encapsulations (the packet layer's kinds).
pub use crate::packet::TunnelKind as TunnelType;

/// TTL / hop limit of outer headers (TF uses 64).
pub const OUTER_TTL: u8 = 64;

/// A tunnel next-hop as the control plane configures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelSpec {
    /// Encapsulation.
    pub ty: TunnelType,
    /// Outer source address (the node's underlay address).
    pub src: IpAddr,
    /// Outer destination address (the remote VTEP / vRouter).
    pub dst: IpAddr,
    /// The fabric interface to send on (its MAC is the outer source MAC).
    pub out_vif: VifId,
    /// The MAC of the fabric neighbour (gateway or the remote node).
    pub dmac: MacAddr,
}

/// A member of an ECMP composite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EcmpMember {
    /// The member next-hop (an encap or tunnel next-hop).
    pub nh: NhId,
    /// The label / VNI to use with this member when it is a tunnel.
    pub label: Option<u32>,
}

/// A member of an L2 flood composite.
pub type FloodMember = EcmpMember;

/// A next-hop as the control plane configures it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NhSpec {
    /// Drop.
    Discard,
    /// Hand to the host (vhost0) or the agent (pkt0) interface.
    Receive {
        /// The host or agent interface.
        vif: VifId,
    },
    /// A local pod: send out `vif`, rewriting the destination MAC to `dmac` when
    /// routed.
    Encap {
        /// The pod's interface.
        vif: VifId,
        /// The pod's MAC.
        dmac: MacAddr,
    },
    /// A remote destination over a tunnel.
    Tunnel(TunnelSpec),
    /// ECMP over members, chosen by the flow hash.
    Ecmp(Vec<EcmpMember>),
    /// L2 flood (BUM) to every member: remote VTEPs and local pods.
    Flood(Vec<FloodMember>),
    /// Look up again in another VRF.
    VrfTranslate {
        /// The VRF to look up in.
        vrf: VrfId,
    },
}

impl NhSpec {
    /// The next-hops this one refers to.
    pub fn nh_refs(&self) -> impl Iterator<Item = NhId> + '_ {
        let members: &[EcmpMember] = match self {
            NhSpec::Ecmp(m) | NhSpec::Flood(m) => m,
            _ => &[],
        };
        members.iter().map(|m| m.nh)
    }

    /// The interface this one refers to.
    pub fn vif_ref(&self) -> Option<VifId> {
        match self {
            NhSpec::Receive { vif } | NhSpec::Encap { vif, .. } => Some(*vif),
            NhSpec::Tunnel(t) => Some(t.out_vif),
            _ => None,
        }
    }
}

/// A tunnel next-hop, resolved: the outer headers ready to prepend. The label or
/// VNI in the prebuilt headers is 0; it comes from the route / bridge entry and is
/// patched per packet with [`TunnelNh::set_label`].
#[derive(Debug, Clone)]
pub struct TunnelNh {
    /// Encapsulation.
    pub ty: TunnelType,
    /// Fabric interface.
    pub out_vif: VifId,
    /// Fabric port.
    pub port: u16,
    /// MTU of the fabric interface.
    pub mtu: u16,
    /// Outer source.
    pub src: IpAddr,
    /// Outer destination.
    pub dst: IpAddr,
    /// The fabric interface's VLAN id: the outer headers carry this 802.1Q tag.
    pub vlan: Option<u16>,
    /// Outer headers for an Ethernet payload.
    pub l2: Encap,
    /// Outer headers for an IP payload (MPLS tunnels only).
    pub l3: Option<Encap>,
}

impl PartialEq for TunnelNh {
    fn eq(&self, o: &Self) -> bool {
        self.ty == o.ty
            && self.out_vif == o.out_vif
            && self.port == o.port
            && self.mtu == o.mtu
            && self.src == o.src
            && self.dst == o.dst
            && self.vlan == o.vlan
            && self.l2.header() == o.l2.header()
    }
}

impl Eq for TunnelNh {}

impl TunnelNh {
    fn build(spec: &TunnelSpec, vif: &Vif) -> Result<Self, FibError> {
        if let Some(v) = vif.vlan.filter(|v| !Vif::valid_vlan(*v)) {
            return Err(FibError::Invalid {
                field: "vlan",
                reason: format!("{v} is not a VLAN id (1..={})", super::vif::MAX_VLAN),
            });
        }
        let params = |payload| TunnelParams {
            kind: spec.ty,
            payload,
            src_mac: EthernetAddress(vif.mac.0),
            dst_mac: EthernetAddress(spec.dmac.0),
            // The VLAN id with priority (PCP) 0 and DEI 0.
            vlan_tci: vif.vlan,
            src_ip: spec.src,
            dst_ip: spec.dst,
            vni_or_label: 0,
            ttl: OUTER_TTL,
            df: false,
            control_word: false,
            udp_checksum: UdpChecksum::Zero,
        };
        if spec.src.is_ipv6() != spec.dst.is_ipv6() {
            return Err(FibError::Invalid {
                field: "tunnel.dst",
                reason: format!(
                    "{} and source {} are of different families",
                    spec.dst, spec.src
                ),
            });
        }
        let bad = |e: crate::packet::Error| FibError::Invalid {
            field: "tunnel",
            reason: e.to_string(),
        };
        let l2 = Encap::new(&params(Payload::L2)).map_err(bad)?;
        let l3 = match spec.ty {
            TunnelType::Vxlan => None,
            _ => Some(Encap::new(&params(Payload::L3)).map_err(bad)?),
        };
        Ok(Self {
            ty: spec.ty,
            out_vif: spec.out_vif,
            port: vif.port,
            mtu: vif.mtu,
            src: spec.src,
            dst: spec.dst,
            vlan: vif.vlan,
            l2,
            l3,
        })
    }

    /// Write `label` (MPLS, 20 bits) or VNI (VXLAN, 24 bits) into the tunnel header
    /// that [`Encap::encap`] just prepended to `data` (`hdr_len` bytes).
    #[inline]
    pub fn set_label(&self, data: &mut [u8], hdr_len: usize, label: u32) {
        match self.ty {
            TunnelType::Vxlan => {
                if let Some(v) = hdr_len.checked_sub(4).and_then(|o| data.get_mut(o..o + 3)) {
                    v.copy_from_slice(&label.to_be_bytes()[1..4]);
                }
            }
            _ => {
                if let Some(w) = hdr_len.checked_sub(4).and_then(|o| data.get_mut(o..o + 4)) {
                    let old = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                    let new = (old & 0xfff) | ((label & 0xf_ffff) << 12);
                    w.copy_from_slice(&new.to_be_bytes());
                }
            }
        }
    }
}

/// A resolved next-hop kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NhKind {
    /// Drop.
    Discard,
    /// Hand to the host or agent interface.
    Receive {
        /// The interface.
        vif: VifId,
        /// Its port.
        port: u16,
    },
    /// A local pod.
    Encap {
        /// The pod's interface.
        vif: VifId,
        /// Its port.
        port: u16,
        /// The pod's MAC.
        dmac: MacAddr,
        /// The interface MTU.
        mtu: u16,
    },
    /// A remote destination over a tunnel.
    Tunnel(Arc<TunnelNh>),
    /// ECMP over members.
    Ecmp(Arc<[EcmpMember]>),
    /// L2 flood to every member.
    Flood(Arc<[FloodMember]>),
    /// Look up again in another VRF.
    VrfTranslate(VrfId),
}

/// A resolved next-hop as workers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// Its id.
    pub id: NhId,
    /// What it does.
    pub kind: NhKind,
}

impl NextHop {
    /// Resolve a spec against the interface table. Errors name the field.
    pub fn resolve<'a>(
        id: NhId,
        spec: &NhSpec,
        vif: impl Fn(VifId) -> Option<&'a Vif>,
    ) -> Result<Self, FibError> {
        let get = |field: &'static str, v: VifId| {
            vif(v).ok_or(FibError::Missing {
                field,
                what: "vif",
                id: u64::from(v.0),
            })
        };
        let kind = match spec {
            NhSpec::Discard => NhKind::Discard,
            NhSpec::Receive { vif } => {
                let v = get("receive.vif", *vif)?;
                NhKind::Receive {
                    vif: *vif,
                    port: v.port,
                }
            }
            NhSpec::Encap { vif, dmac } => {
                let v = get("encap.vif", *vif)?;
                NhKind::Encap {
                    vif: *vif,
                    port: v.port,
                    dmac: *dmac,
                    mtu: v.mtu,
                }
            }
            NhSpec::Tunnel(t) => {
                let v = get("tunnel.out_vif", t.out_vif)?;
                if v.kind != VifKind::Fabric {
                    return Err(FibError::Invalid {
                        field: "tunnel.out_vif",
                        reason: format!("{} is not a fabric interface", t.out_vif),
                    });
                }
                NhKind::Tunnel(Arc::new(TunnelNh::build(t, v)?))
            }
            NhSpec::Ecmp(m) | NhSpec::Flood(m) => {
                if m.is_empty() {
                    return Err(FibError::Invalid {
                        field: "members",
                        reason: "a composite next-hop needs at least one member".into(),
                    });
                }
                if m.iter().any(|x| x.nh == id) {
                    return Err(FibError::Invalid {
                        field: "members",
                        reason: format!("{id} cannot be a member of itself"),
                    });
                }
                if matches!(spec, NhSpec::Ecmp(_)) {
                    NhKind::Ecmp(Arc::from(m.as_slice()))
                } else {
                    NhKind::Flood(Arc::from(m.as_slice()))
                }
            }
            NhSpec::VrfTranslate { vrf } => NhKind::VrfTranslate(*vrf),
        };
        Ok(Self { id, kind })
    }
}

/// Pick the ECMP member for a flow hash by rendezvous (highest random weight)
/// hashing: each member scores `mix(hash, member id)` and the highest wins. Every
/// flow picks uniformly among the members, and removing a member moves only the
/// flows that had picked it.
#[inline]
pub fn ecmp_pick(members: &[EcmpMember], hash: u32) -> Option<&EcmpMember> {
    let mut best: Option<&EcmpMember> = None;
    let mut best_score = 0u64;
    for m in members {
        let s = mix64(u64::from(hash) << 32 | u64::from(m.nh.0));
        if best.is_none() || s > best_score {
            best = Some(m);
            best_score = s;
        }
    }
    best
}

/// A 64-bit finaliser (splitmix64).
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn tunnel_template_v4() {
        let mut fab = Vif::new(
            VifId(0),
            VifKind::Fabric,
            3,
            MacAddr([0, 1, 2, 3, 4, 5]),
            VrfId(0),
        );
        fab.mtu = 9000;
        let spec = TunnelSpec {
            ty: TunnelType::Vxlan,
            src: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 2)),
            out_vif: VifId(0),
            dmac: MacAddr([0xa, 0xb, 0xc, 0xd, 0xe, 0xf]),
        };
        let nh = NextHop::resolve(NhId(5), &NhSpec::Tunnel(spec), |_| Some(&fab)).unwrap();
        let NhKind::Tunnel(t) = nh.kind else { panic!() };
        assert_eq!(t.l2.len(), 50);
        assert!(t.l3.is_none());
        assert_eq!(t.port, 3);
        assert_eq!(
            &t.l2.header()[..42],
            &[
                0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0, 1, 2, 3, 4, 5, 0x08, 0, //
                0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 192, 168, 0, 1, 192, 168, 0, 2, //
                0, 0, 0x12, 0xb5, 0, 0, 0, 0
            ]
        );
        let mut h = t.l2.header().to_vec();
        t.set_label(&mut h, 50, 0x12_3456);
        assert_eq!(&h[42..50], &[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        // Mixed families are refused with the field named.
        let bad = TunnelSpec {
            dst: "::1".parse().unwrap(),
            ..spec
        };
        let e = NextHop::resolve(NhId(5), &NhSpec::Tunnel(bad), |_| Some(&fab)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tunnel.dst: ::1 and source 192.168.0.1 are of different families"
        );
        let e = NextHop::resolve(NhId(5), &NhSpec::Tunnel(spec), |_| None).unwrap_err();
        assert_eq!(e.to_string(), "tunnel.out_vif: vif 0 does not exist");
    }

    #[test]
    fn tunnel_template_on_a_vlan_fabric() {
        let mut fab = Vif::new(
            VifId(0),
            VifKind::Fabric,
            3,
            MacAddr([0, 1, 2, 3, 4, 5]),
            VrfId(0),
        );
        let spec = TunnelSpec {
            ty: TunnelType::MplsOverUdp,
            src: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 2)),
            out_vif: VifId(0),
            dmac: MacAddr([0xa, 0xb, 0xc, 0xd, 0xe, 0xf]),
        };
        let untagged = NextHop::resolve(NhId(5), &NhSpec::Tunnel(spec), |_| Some(&fab)).unwrap();
        fab.vlan = Some(0x123);
        let tagged = NextHop::resolve(NhId(5), &NhSpec::Tunnel(spec), |_| Some(&fab)).unwrap();
        assert_ne!(untagged, tagged, "the VLAN is part of the next-hop");
        let NhKind::Tunnel(t) = tagged.kind else {
            panic!()
        };
        assert_eq!(t.vlan, Some(0x123));
        for enc in [&t.l2, t.l3.as_ref().unwrap()] {
            // 802.1Q TPID, PCP 0 / DEI 0 / VID 0x123, then IPv4.
            assert_eq!(&enc.header()[12..18], &[0x81, 0, 0x01, 0x23, 0x08, 0]);
            assert_eq!(&enc.header()[18..20], &[0x45, 0]);
        }
        let NhKind::Tunnel(u) = untagged.kind else {
            panic!()
        };
        assert_eq!(t.l2.len(), u.l2.len() + 4);
        fab.vlan = Some(4095);
        let e = NextHop::resolve(NhId(5), &NhSpec::Tunnel(spec), |_| Some(&fab)).unwrap_err();
        assert_eq!(e.to_string(), "vlan: 4095 is not a VLAN id (1..=4094)");
    }

    #[test]
    fn ecmp_pick_is_stable_on_removal() {
        let members: Vec<EcmpMember> = (1..=4)
            .map(|i| EcmpMember {
                nh: NhId(i),
                label: None,
            })
            .collect();
        let fewer: Vec<EcmpMember> = members
            .iter()
            .copied()
            .filter(|m| m.nh != NhId(3))
            .collect();
        for h in 0..10_000u32 {
            let h = h.wrapping_mul(2_654_435_761);
            let a = ecmp_pick(&members, h).unwrap().nh;
            let b = ecmp_pick(&fewer, h).unwrap().nh;
            if a != NhId(3) {
                assert_eq!(a, b);
            }
        }
        assert!(ecmp_pick(&[], 1).is_none());
    }
}
