//! Table-driven forwarding tests of the packet pipeline on heap buffers: each case
//! builds a frame, runs it through one burst and checks the output port and the
//! exact output bytes (or the drop reason).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use flow_table::FlowTable;
use vrouter_dp::fib::{
    BridgeEntry, EcmpMember, Fib, FibConfig, FibSnapshot, Label, LabelEntry, MacAddr, NhId, NhSpec,
    Payload, PolicyAction, PolicyRule, PortRange, Prefix, RouteTarget, TunnelSpec, TunnelType,
    Update, Vif, VifId, VifKind, Vni, VrfId,
};
use vrouter_dp::packet::{checksum, HeapBuf, PacketBuf};
use vrouter_dp::pipeline::{Counters, DropReason, Env, HeapPool, Output, Pipeline};

const ROUTER: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x00];
const FAB_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0xfa];
const NEIGH: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0xfe];
const AGENT_MAC: [u8; 6] = [0, 0, 0, 0, 0, 2];
const A_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const R_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc];
const A_IP: [u8; 4] = [10, 1, 0, 3];
const B_IP: [u8; 4] = [10, 1, 0, 4];
const NODE: [u8; 4] = [192, 168, 0, 1];
const RSS: u32 = 0x8000_0000;

// ---------- frame builders (independent of the data plane's own emitters) ----------

fn eth(dst: [u8; 6], src: [u8; 6], et: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[allow(clippy::too_many_arguments)]
fn ipv4_full(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ttl: u8,
    id: u16,
    df: bool,
    tos: u8,
    payload: &[u8],
) -> Vec<u8> {
    let len = (20 + payload.len()) as u16;
    let mut h = vec![0x45, tos];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&[if df { 0x40 } else { 0 }, 0, ttl, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = !checksum::data(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_full(src, dst, proto, ttl, 0, false, 0, payload)
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, hop: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.push(nh);
    h.push(hop);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn mpls(label: u32, ttl: u8) -> [u8; 4] {
    ((label << 12) | (1 << 8) | u32::from(ttl)).to_be_bytes()
}

fn vxlan(vni: u32) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[0] = 0x08;
    v[4..8].copy_from_slice(&(vni << 8).to_be_bytes());
    v
}

/// TF's entropy mapping of a flow hash into 49152..=65535.
fn entropy(hash: u32) -> u16 {
    49152 + ((u64::from(hash) * 16384) >> 32) as u16
}

/// Outer Ethernet + IPv4 for a tunnel packet from this node.
fn outer_v4(dst: [u8; 4], proto: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    eth(
        NEIGH,
        FAB_MAC,
        0x0800,
        &ipv4_full(NODE, dst, proto, 64, id, false, 0, payload),
    )
}

// ---------- the node under test ----------

struct Node {
    fib: Fib,
    snap: Arc<FibSnapshot>,
    flows: FlowTable,
    pipe: Pipeline,
}

fn tunnel(ty: TunnelType, src: IpAddr, dst: IpAddr) -> NhSpec {
    NhSpec::Tunnel(TunnelSpec {
        ty,
        src,
        dst,
        out_vif: VifId(0),
        dmac: MacAddr(NEIGH),
    })
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn route(vrf: u16, p: &str, len: u8, nh: u32, label: Option<u32>) -> Update {
    Update::AddRoute {
        vrf: VrfId(vrf),
        prefix: Prefix::new(p.parse().unwrap(), len).unwrap(),
        target: RouteTarget {
            nh: NhId(nh),
            label,
        },
    }
}

fn node_with(flow_capacity: usize) -> Node {
    let mut fib = Fib::new(FibConfig::default());
    let mut fabric = Vif::new(VifId(0), VifKind::Fabric, 0, MacAddr(FAB_MAC), VrfId(0));
    fabric.ipv4 = vec![Ipv4Addr::from(NODE)];
    fabric.ipv6 = vec!["fd00::1".parse().unwrap()];
    let host = Vif::new(VifId(1), VifKind::Host, 1, MacAddr(FAB_MAC), VrfId(0));
    let agent = Vif::new(VifId(2), VifKind::Agent, 2, MacAddr(AGENT_MAC), VrfId(0));
    let mut a = Vif::new(VifId(3), VifKind::PodVhost, 3, MacAddr(A_MAC), VrfId(1));
    a.ipv4 = vec![Ipv4Addr::from(A_IP)];
    a.ipv6 = vec!["fd01::3".parse().unwrap()];
    a.anti_spoof = true;
    let mut b = Vif::new(VifId(4), VifKind::PodTap, 4, MacAddr(B_MAC), VrfId(1));
    b.ipv4 = vec![Ipv4Addr::from(B_IP)];
    b.anti_spoof = true;
    b.policy = true;
    b.rules = Arc::from(vec![
        PolicyRule {
            proto: Some(6),
            dport: PortRange::single(80),
            src: Some(Prefix::new("10.1.0.0".parse().unwrap(), 16).unwrap()),
            ..PolicyRule::any(PolicyAction::Allow)
        },
        PolicyRule {
            proto: Some(17),
            ..PolicyRule::any(PolicyAction::Allow)
        },
    ]);
    let n6 = |s: &str| IpAddr::V6(s.parse().unwrap());
    let batch = vec![
        Update::AddVif(fabric),
        Update::AddVif(host),
        Update::AddVif(agent),
        Update::AddVif(a),
        Update::AddVif(b),
        Update::AddNh(
            NhId(10),
            NhSpec::Encap {
                vif: VifId(3),
                dmac: MacAddr(A_MAC),
            },
        ),
        Update::AddNh(
            NhId(11),
            NhSpec::Encap {
                vif: VifId(4),
                dmac: MacAddr(B_MAC),
            },
        ),
        Update::AddNh(NhId(12), NhSpec::Receive { vif: VifId(1) }),
        Update::AddNh(
            NhId(20),
            tunnel(TunnelType::Vxlan, v4(NODE), v4([192, 168, 0, 2])),
        ),
        Update::AddNh(
            NhId(21),
            tunnel(TunnelType::MplsOverUdp, v4(NODE), v4([192, 168, 0, 2])),
        ),
        Update::AddNh(
            NhId(22),
            tunnel(TunnelType::MplsOverGre, v4(NODE), v4([192, 168, 0, 3])),
        ),
        Update::AddNh(
            NhId(23),
            tunnel(TunnelType::MplsOverUdp, n6("fd00::1"), n6("fd00::2")),
        ),
        Update::AddNh(
            NhId(25),
            tunnel(TunnelType::MplsOverUdp, v4(NODE), v4([192, 168, 0, 5])),
        ),
        Update::AddNh(
            NhId(30),
            NhSpec::Ecmp(vec![
                EcmpMember {
                    nh: NhId(21),
                    label: Some(101),
                },
                EcmpMember {
                    nh: NhId(22),
                    label: Some(102),
                },
                EcmpMember {
                    nh: NhId(25),
                    label: Some(103),
                },
            ]),
        ),
        Update::AddNh(
            NhId(40),
            NhSpec::Flood(vec![
                EcmpMember {
                    nh: NhId(10),
                    label: None,
                },
                EcmpMember {
                    nh: NhId(11),
                    label: None,
                },
                EcmpMember {
                    nh: NhId(20),
                    label: Some(5001),
                },
            ]),
        ),
        Update::AddNh(NhId(50), NhSpec::VrfTranslate { vrf: VrfId(1) }),
        route(1, "10.1.0.3", 32, 10, None),
        route(1, "10.1.0.4", 32, 11, None),
        route(1, "10.2.0.0", 16, 21, Some(100)),
        route(1, "10.3.0.0", 16, 20, Some(5001)),
        route(1, "10.4.0.0", 16, 22, Some(200)),
        route(1, "10.5.0.0", 16, 30, None),
        route(1, "10.9.0.0", 16, 0, None),
        route(1, "192.168.0.1", 32, 12, None),
        route(1, "fd01::3", 128, 10, None),
        route(1, "fd02::", 64, 21, Some(300)),
        route(1, "fd03::", 64, 23, Some(301)),
        Update::AddBridge {
            vrf: VrfId(1),
            mac: MacAddr(A_MAC),
            entry: BridgeEntry {
                nh: NhId(10),
                label: None,
            },
        },
        Update::AddBridge {
            vrf: VrfId(1),
            mac: MacAddr(B_MAC),
            entry: BridgeEntry {
                nh: NhId(11),
                label: None,
            },
        },
        Update::AddBridge {
            vrf: VrfId(1),
            mac: MacAddr(R_MAC),
            entry: BridgeEntry {
                nh: NhId(20),
                label: Some(5001),
            },
        },
        Update::AddBridge {
            vrf: VrfId(1),
            mac: MacAddr::BROADCAST,
            entry: BridgeEntry {
                nh: NhId(40),
                label: None,
            },
        },
        Update::AddLabel(
            Label(17),
            LabelEntry {
                nh: NhId(10),
                payload: Payload::Ip,
            },
        ),
        Update::AddLabel(
            Label(18),
            LabelEntry {
                nh: NhId(50),
                payload: Payload::Ethernet,
            },
        ),
        Update::AddVni(Vni(5001), NhId(50)),
    ];
    let snap = fib.apply(&batch).unwrap();
    Node {
        fib,
        snap,
        flows: FlowTable::with_capacity(flow_capacity).unwrap(),
        pipe: Pipeline::new(4096),
    }
}

fn node() -> Node {
    node_with(1 << 12)
}

impl Node {
    fn send_bufs(&mut self, bufs: Vec<HeapBuf>) -> Output<HeapBuf> {
        let mut out = Output::new();
        let env = Env {
            fib: &self.snap,
            flows: &self.flows,
            now: 1,
        };
        self.pipe.process(&env, &mut HeapPool, bufs, &mut out);
        out
    }

    fn send(&mut self, port: u16, frame: &[u8]) -> Output<HeapBuf> {
        let mut b = HeapBuf::from_bytes(frame);
        b.set_port(port);
        b.set_rss_hash(Some(RSS));
        self.send_bufs(vec![b])
    }

    fn counters(&self) -> &Counters {
        self.pipe.counters()
    }
}

/// The flow-table key of an IPv4 flow in VRF 1 (the pods' VRF).
fn vrf1_key(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> flow_table::FlowKey {
    flow_table::FlowKey::v4(
        flow_table::VrfId::new(1).unwrap(),
        Ipv4Addr::from(src),
        Ipv4Addr::from(dst),
        proto,
        sport,
        dport,
    )
}

/// The single packet sent, as (port, bytes).
fn single(out: &Output<HeapBuf>) -> (u16, Vec<u8>) {
    assert!(
        out.drops.is_empty(),
        "unexpected drops: {}",
        out.drops.len()
    );
    let all: Vec<(u16, Vec<u8>)> = out
        .tx
        .iter()
        .flat_map(|t| t.bufs.iter().map(move |b| (t.port, b.data().to_vec())))
        .collect();
    assert_eq!(all.len(), 1, "expected exactly one packet out");
    all.into_iter().next().unwrap()
}

fn dropped(n: &mut Node, port: u16, frame: &[u8], reason: DropReason) {
    let before = n.counters().drop_count(reason);
    let out = n.send(port, frame);
    assert!(out.tx.is_empty(), "{reason:?}: packet was forwarded");
    assert_eq!(out.drops.len(), 1);
    assert_eq!(
        n.counters().drop_count(reason),
        before + 1,
        "{}",
        reason.as_str()
    );
}

// ---------- cases ----------

#[test]
fn forwarding_table() {
    let payload = b"hello";
    let inner = |dst: [u8; 4], ttl: u8| ipv4(A_IP, dst, 17, ttl, &udp(1000, 2000, payload));
    let sport = entropy(RSS);
    struct Case {
        name: &'static str,
        port: u16,
        frame: Vec<u8>,
        out_port: u16,
        out: Vec<u8>,
    }
    let cases = vec![
        Case {
            name: "pod -> local pod, routed",
            port: 3,
            frame: eth(ROUTER, A_MAC, 0x0800, &inner(B_IP, 64)),
            out_port: 4,
            out: eth(B_MAC, ROUTER, 0x0800, &inner(B_IP, 63)),
        },
        Case {
            name: "pod -> local pod, bridged",
            port: 3,
            frame: eth(B_MAC, A_MAC, 0x0800, &inner(B_IP, 64)),
            out_port: 4,
            out: eth(B_MAC, A_MAC, 0x0800, &inner(B_IP, 64)),
        },
        Case {
            name: "pod -> remote, MPLSoUDP",
            port: 3,
            frame: eth(ROUTER, A_MAC, 0x0800, &inner([10, 2, 0, 9], 64)),
            out_port: 0,
            out: outer_v4(
                [192, 168, 0, 2],
                17,
                1,
                &udp(
                    sport,
                    6635,
                    &[&mpls(100, 63)[..], &inner([10, 2, 0, 9], 63)].concat(),
                ),
            ),
        },
        Case {
            name: "pod -> remote, MPLSoGRE",
            port: 3,
            frame: eth(ROUTER, A_MAC, 0x0800, &inner([10, 4, 0, 9], 64)),
            out_port: 0,
            out: outer_v4(
                [192, 168, 0, 3],
                47,
                1,
                &[
                    &[0u8, 0, 0x88, 0x47][..],
                    &mpls(200, 63),
                    &inner([10, 4, 0, 9], 63),
                ]
                .concat(),
            ),
        },
        Case {
            name: "pod -> remote, VXLAN routed",
            port: 3,
            frame: eth(ROUTER, A_MAC, 0x0800, &inner([10, 3, 0, 9], 64)),
            out_port: 0,
            out: outer_v4(
                [192, 168, 0, 2],
                17,
                1,
                &udp(
                    sport,
                    4789,
                    &[
                        &vxlan(5001)[..],
                        &eth(ROUTER, ROUTER, 0x0800, &inner([10, 3, 0, 9], 63)),
                    ]
                    .concat(),
                ),
            ),
        },
        Case {
            name: "pod -> remote, VXLAN bridged",
            port: 3,
            frame: eth(R_MAC, A_MAC, 0x0800, &inner([10, 1, 0, 9], 64)),
            out_port: 0,
            out: outer_v4(
                [192, 168, 0, 2],
                17,
                1,
                &udp(
                    sport,
                    4789,
                    &[
                        &vxlan(5001)[..],
                        &eth(R_MAC, A_MAC, 0x0800, &inner([10, 1, 0, 9], 64)),
                    ]
                    .concat(),
                ),
            ),
        },
        Case {
            name: "fabric -> pod by MPLS label (L3)",
            port: 0,
            frame: outer_v4(
                NODE,
                17,
                7,
                &udp(
                    50000,
                    6635,
                    &[
                        &mpls(17, 64)[..],
                        &ipv4([10, 2, 0, 9], A_IP, 17, 60, &udp(1, 2, payload)),
                    ]
                    .concat(),
                ),
            ),
            out_port: 3,
            out: eth(
                A_MAC,
                ROUTER,
                0x0800,
                &ipv4([10, 2, 0, 9], A_IP, 17, 60, &udp(1, 2, payload)),
            ),
        },
        Case {
            name: "fabric -> pod by MPLS label over GRE (L2)",
            port: 0,
            frame: outer_v4(
                NODE,
                47,
                7,
                &[
                    &[0u8, 0, 0x88, 0x47][..],
                    &mpls(18, 64),
                    &eth(
                        A_MAC,
                        R_MAC,
                        0x0800,
                        &ipv4([10, 1, 0, 9], A_IP, 17, 60, &udp(1, 2, payload)),
                    ),
                ]
                .concat(),
            ),
            out_port: 3,
            out: eth(
                A_MAC,
                R_MAC,
                0x0800,
                &ipv4([10, 1, 0, 9], A_IP, 17, 60, &udp(1, 2, payload)),
            ),
        },
        Case {
            name: "fabric -> pod by VXLAN VNI (bridged)",
            port: 0,
            frame: outer_v4(
                NODE,
                17,
                7,
                &udp(
                    50000,
                    4789,
                    &[
                        &vxlan(5001)[..],
                        &eth(
                            A_MAC,
                            R_MAC,
                            0x0800,
                            &ipv4([10, 1, 0, 9], A_IP, 17, 60, &udp(1, 2, payload)),
                        ),
                    ]
                    .concat(),
                ),
            ),
            out_port: 3,
            out: eth(
                A_MAC,
                R_MAC,
                0x0800,
                &ipv4([10, 1, 0, 9], A_IP, 17, 60, &udp(1, 2, payload)),
            ),
        },
        Case {
            name: "fabric -> pod by VXLAN VNI (routed)",
            port: 0,
            frame: outer_v4(
                NODE,
                17,
                7,
                &udp(
                    50000,
                    4789,
                    &[
                        &vxlan(5001)[..],
                        &eth(
                            ROUTER,
                            ROUTER,
                            0x0800,
                            &ipv4([10, 3, 0, 9], A_IP, 17, 60, &udp(1, 2, payload)),
                        ),
                    ]
                    .concat(),
                ),
            ),
            out_port: 3,
            out: eth(
                A_MAC,
                ROUTER,
                0x0800,
                &ipv4([10, 3, 0, 9], A_IP, 17, 60, &udp(1, 2, payload)),
            ),
        },
        Case {
            name: "fabric, not a tunnel for us -> host",
            port: 0,
            frame: outer_v4(NODE, 17, 7, &udp(5000, 22, payload)),
            out_port: 1,
            out: outer_v4(NODE, 17, 7, &udp(5000, 22, payload)),
        },
        Case {
            name: "pod -> node address -> host interface",
            port: 3,
            frame: eth(ROUTER, A_MAC, 0x0800, &inner(NODE, 64)),
            out_port: 1,
            out: eth(ROUTER, A_MAC, 0x0800, &inner(NODE, 64)),
        },
    ];
    for c in cases {
        let mut n = node();
        let out = n.send(c.port, &c.frame);
        let (port, bytes) = single(&out);
        assert_eq!(port, c.out_port, "{}", c.name);
        assert_eq!(bytes, c.out, "{}", c.name);
    }
}

#[test]
fn ipv6_routed_and_tunnelled() {
    let a6: Ipv6Addr = "fd01::3".parse().unwrap();
    let r6: Ipv6Addr = "fd02::9".parse().unwrap();
    let r6b: Ipv6Addr = "fd03::9".parse().unwrap();
    let pl = udp(1000, 2000, b"v6");
    let sport = entropy(RSS);
    // IPv6 inner over an IPv4 MPLSoUDP tunnel.
    let mut n = node();
    let out = n.send(3, &eth(ROUTER, A_MAC, 0x86dd, &ipv6(a6, r6, 17, 64, &pl)));
    let (port, bytes) = single(&out);
    assert_eq!(port, 0);
    let want = outer_v4(
        [192, 168, 0, 2],
        17,
        1,
        &udp(
            sport,
            6635,
            &[&mpls(300, 63)[..], &ipv6(a6, r6, 17, 63, &pl)].concat(),
        ),
    );
    assert_eq!(bytes, want);
    // IPv6 over an IPv6 underlay: outer IPv6 + UDP (zero checksum) + MPLS.
    let out = n.send(3, &eth(ROUTER, A_MAC, 0x86dd, &ipv6(a6, r6b, 17, 64, &pl)));
    let (port, bytes) = single(&out);
    assert_eq!(port, 0);
    let inner = [&mpls(301, 63)[..], &ipv6(a6, r6b, 17, 63, &pl)].concat();
    let mut outer_ip = ipv6(
        "fd00::1".parse().unwrap(),
        "fd00::2".parse().unwrap(),
        17,
        64,
        &udp(sport, 6635, &inner),
    );
    // The flow label carries the low 20 bits of the flow hash.
    let fl = RSS & 0xf_ffff;
    outer_ip[1] = (fl >> 16) as u8;
    outer_ip[2] = (fl >> 8) as u8;
    outer_ip[3] = fl as u8;
    assert_eq!(bytes, eth(NEIGH, FAB_MAC, 0x86dd, &outer_ip));
}

/// Pod A's ARP request for `tpa`.
fn arp_req(tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&A_MAC);
    a.extend_from_slice(&A_IP);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&tpa);
    eth([0xff; 6], A_MAC, 0x0806, &a)
}

#[test]
fn arp_nd_dhcp_and_agent_traps() {
    let mut n = node();
    // ARP proxy: A asks who has 10.2.0.5 (routed in its VRF).
    let (port, bytes) = single(&n.send(3, &arp_req([10, 2, 0, 5])));
    assert_eq!(port, 3);
    let mut rep = vec![0, 1, 8, 0, 6, 4, 0, 2];
    rep.extend_from_slice(&ROUTER);
    rep.extend_from_slice(&[10, 2, 0, 5]);
    rep.extend_from_slice(&A_MAC);
    rep.extend_from_slice(&A_IP);
    assert_eq!(bytes, eth(A_MAC, ROUTER, 0x0806, &rep));
    assert_eq!(n.counters().arp_proxied, 1);
    // An address-conflict probe of A's own address (sender 0.0.0.0) and an
    // announcement of it: not answered (an answer would say the address is taken).
    let mut probe = arp_req(A_IP);
    probe[14 + 14..14 + 18].fill(0);
    dropped(&mut n, 3, &probe, DropReason::LinkLocal);
    dropped(&mut n, 3, &arp_req(A_IP), DropReason::LinkLocal);
    assert_eq!(n.counters().arp_proxied, 1);
    // ARP for an address with no route: dropped and counted.
    dropped(&mut n, 3, &arp_req([172, 16, 0, 1]), DropReason::ArpNoRoute);
    // ARP for the node's own address: to the agent with TF's agent header.
    let req = arp_req(NODE);
    let (port, bytes) = single(&n.send(3, &req));
    assert_eq!(port, 2);
    let mut hdr = [0u8; 30];
    hdr[0..2].copy_from_slice(&3u16.to_be_bytes());
    hdr[2..4].copy_from_slice(&1u16.to_be_bytes());
    hdr[4..6].copy_from_slice(&2u16.to_be_bytes());
    assert_eq!(
        bytes,
        eth(AGENT_MAC, ROUTER, 0x88b5, &[&hdr[..], &req].concat())
    );
    // DHCP discover (source 0.0.0.0) goes to the agent despite anti-spoofing.
    let dhcp = eth(
        [0xff; 6],
        A_MAC,
        0x0800,
        &ipv4([0; 4], [255; 4], 17, 64, &udp(68, 67, &[1, 2, 3])),
    );
    let (port, bytes) = single(&n.send(3, &dhcp));
    assert_eq!(port, 2);
    assert_eq!(bytes[14 + 4..14 + 6], 7u16.to_be_bytes());
    assert_eq!(n.counters().to_agent, 2);

    // Neighbour solicitation for fd02::5 -> advertisement with the router MAC.
    let a6: Ipv6Addr = "fd01::3".parse().unwrap();
    let t6: Ipv6Addr = "fd02::5".parse().unwrap();
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&t6.octets());
    ns.extend_from_slice(&[1, 1]);
    ns.extend_from_slice(&A_MAC);
    let sol: Ipv6Addr = "ff02::1:ff00:5".parse().unwrap();
    let (port, bytes) = single(&n.send(
        3,
        &eth(
            [0x33, 0x33, 0xff, 0, 0, 5],
            A_MAC,
            0x86dd,
            &ipv6(a6, sol, 58, 255, &ns),
        ),
    ));
    assert_eq!(port, 3);
    let mut na = vec![136, 0, 0, 0, 0xe0, 0, 0, 0];
    na.extend_from_slice(&t6.octets());
    na.extend_from_slice(&[2, 1]);
    na.extend_from_slice(&ROUTER);
    let s = checksum::combine(&[
        checksum::pseudo_header_v6(&t6, &a6, 58, na.len() as u32),
        checksum::data(&na),
    ]);
    na[2..4].copy_from_slice(&(!s).to_be_bytes());
    assert_eq!(
        bytes,
        eth(A_MAC, ROUTER, 0x86dd, &ipv6(t6, a6, 58, 255, &na))
    );
    assert_eq!(n.counters().nd_proxied, 1);
}

/// Without an agent interface (a static config), what would go to the agent is
/// dropped as `no_agent`: DHCP and ARP for the node's address. Without a host
/// interface, what would go to the host stack from the fabric is dropped as
/// `no_host`.
#[test]
fn agent_and_host_traffic_without_their_interfaces() {
    let mut n = node();
    n.snap = n.fib.apply(&[Update::DelVif(VifId(2))]).unwrap();
    let dhcp = eth(
        [0xff; 6],
        A_MAC,
        0x0800,
        &ipv4([0; 4], [255; 4], 17, 64, &udp(68, 67, &[1, 2, 3])),
    );
    dropped(&mut n, 3, &dhcp, DropReason::NoAgent);
    dropped(&mut n, 3, &arp_req(NODE), DropReason::NoAgent);
    assert_eq!(n.counters().to_agent, 0);

    // UDP to the node on a port that is no tunnel's: the host stack's.
    let for_host = outer_v4(NODE, 17, 5, &udp(40000, 22, b"x"));
    let (port, bytes) = single(&n.send(0, &for_host));
    assert_eq!((port, bytes), (1, for_host.clone()));
    assert_eq!(n.counters().to_host, 1);
    n.snap = n
        .fib
        .apply(&[
            Update::DelRoute {
                vrf: VrfId(1),
                prefix: Prefix::new("192.168.0.1".parse().unwrap(), 32).unwrap(),
            },
            Update::DelNh(NhId(12)),
            Update::DelVif(VifId(1)),
        ])
        .unwrap();
    dropped(&mut n, 0, &for_host, DropReason::NoHost);
}

/// IPv6 link-scoped control from a pod's link-local or unspecified address is not
/// spoofing (it never leaves the node): a neighbour solicitation is answered by
/// the proxy, a router solicitation goes to the agent, MLD reports and neighbour
/// advertisements are dropped as `link_local`. Anything else from such a source,
/// a router advertisement included, is still spoofed.
#[test]
fn ipv6_link_scoped_control_from_a_pod() {
    let mut n = node();
    let ll: Ipv6Addr = "fe80::a8:1".parse().unwrap();
    let t6: Ipv6Addr = "fd02::5".parse().unwrap();
    let all_routers: Ipv6Addr = "ff02::2".parse().unwrap();
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let from_ll = |src: Ipv6Addr, dst: Ipv6Addr, dmac: [u8; 6], icmp: &[u8]| {
        eth(dmac, A_MAC, 0x86dd, &ipv6(src, dst, 58, 255, icmp))
    };

    // Neighbour solicitation from the link-local address: answered to it.
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&t6.octets());
    ns.extend_from_slice(&[1, 1]);
    ns.extend_from_slice(&A_MAC);
    let sol: Ipv6Addr = "ff02::1:ff00:5".parse().unwrap();
    let (port, bytes) = single(&n.send(3, &from_ll(ll, sol, [0x33, 0x33, 0xff, 0, 0, 5], &ns)));
    assert_eq!(port, 3);
    assert_eq!(bytes[..6], A_MAC);
    assert_eq!(
        bytes[14 + 24..14 + 40],
        ll.octets(),
        "NA to the soliciting address"
    );
    assert_eq!(bytes[14 + 40], 136);
    assert_eq!(n.counters().nd_proxied, 1);

    // Duplicate-address probes (from ::): for an address routed in the VRF, an
    // advertisement to all-nodes without the Solicited flag (RFC 4861 7.2.4); for
    // the pod's own address or a link-local one, nothing.
    let dad = |target: Ipv6Addr| {
        let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
        ns.extend_from_slice(&target.octets());
        let o = target.octets();
        let sol = Ipv6Addr::from([
            0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
        ]);
        from_ll(
            Ipv6Addr::UNSPECIFIED,
            sol,
            [0x33, 0x33, 0xff, o[13], o[14], o[15]],
            &ns,
        )
    };
    let (port, bytes) = single(&n.send(3, &dad(t6)));
    assert_eq!(port, 3);
    assert_eq!(bytes[14 + 8..14 + 24], t6.octets());
    assert_eq!(bytes[14 + 24..14 + 40], all_nodes.octets());
    assert_eq!(bytes[14 + 40], 136);
    assert_eq!(bytes[14 + 44], 0xa0, "Router and Override, not Solicited");
    assert_eq!(bytes[14 + 48..14 + 64], t6.octets());
    assert_eq!(n.counters().nd_proxied, 2);
    dropped(
        &mut n,
        3,
        &dad("fd01::3".parse().unwrap()),
        DropReason::LinkLocal,
    );
    dropped(&mut n, 3, &dad(ll), DropReason::LinkLocal);
    // A solicitation for a link-local address (not the node's): nothing to answer.
    let mut ns_ll = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns_ll.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
    dropped(
        &mut n,
        3,
        &from_ll(
            ll,
            "ff02::1:ff00:1".parse().unwrap(),
            [0x33, 0x33, 0xff, 0, 0, 1],
            &ns_ll,
        ),
        DropReason::LinkLocal,
    );

    // Router solicitation: to the agent, as an L3-protocol trap (command 7).
    let rs = [
        133, 0, 0, 0, 0, 0, 0, 0, 1, 1, A_MAC[0], A_MAC[1], A_MAC[2], A_MAC[3], A_MAC[4], A_MAC[5],
    ];
    let frame = from_ll(ll, all_routers, [0x33, 0x33, 0, 0, 0, 2], &rs);
    let (port, bytes) = single(&n.send(3, &frame));
    assert_eq!(port, 2);
    assert_eq!(bytes[14 + 4..14 + 6], 7u16.to_be_bytes());
    assert_eq!(bytes[14 + 30..], frame[..]);
    assert_eq!(n.counters().to_agent, 1);

    // MLDv2 report from the unspecified address (during DAD), behind a hop-by-hop
    // header with the router alert option.
    let mut hbh_mld = vec![58, 0, 5, 2, 0, 0, 1, 0];
    hbh_mld.extend_from_slice(&[143, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0]);
    hbh_mld.extend_from_slice(&sol.octets());
    let mld = eth(
        [0x33, 0x33, 0, 0, 0, 0x16],
        A_MAC,
        0x86dd,
        &ipv6(
            Ipv6Addr::UNSPECIFIED,
            "ff02::16".parse().unwrap(),
            0,
            1,
            &hbh_mld,
        ),
    );
    dropped(&mut n, 3, &mld, DropReason::LinkLocal);
    // Neighbour advertisement from the link-local address.
    let mut na = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    na.extend_from_slice(&ll.octets());
    dropped(
        &mut n,
        3,
        &from_ll(ll, all_nodes, [0x33, 0x33, 0, 0, 0, 1], &na),
        DropReason::LinkLocal,
    );

    // Still spoofed: a router advertisement from the link-local address, UDP from
    // it, and an MLD report from a global address that is not the pod's.
    let ra = [134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    dropped(
        &mut n,
        3,
        &from_ll(ll, all_nodes, [0x33, 0x33, 0, 0, 0, 1], &ra),
        DropReason::SpoofedSource,
    );
    dropped(
        &mut n,
        3,
        &eth(
            ROUTER,
            A_MAC,
            0x86dd,
            &ipv6(ll, t6, 17, 64, &udp(1, 2, b"x")),
        ),
        DropReason::SpoofedSource,
    );
    let mut mld = vec![143, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0];
    mld.extend_from_slice(&sol.octets());
    dropped(
        &mut n,
        3,
        &from_ll(
            "fd01::99".parse().unwrap(),
            "ff02::16".parse().unwrap(),
            [0x33, 0x33, 0, 0, 0, 0x16],
            &mld,
        ),
        DropReason::SpoofedSource,
    );
}

#[test]
fn flooding_bum_to_local_pods_and_vteps() {
    let mut n = node();
    let frame = eth(
        [0xff; 6],
        A_MAC,
        0x0800,
        &ipv4(A_IP, [10, 1, 255, 255], 17, 64, &udp(1, 2, b"bcast")),
    );
    let out = n.send(3, &frame);
    assert!(out.drops.is_empty());
    // Not back to A (split horizon); one copy to B, one over VXLAN.
    assert!(out.port(3).is_none());
    assert_eq!(out.port(4).unwrap().bufs.len(), 1);
    assert_eq!(out.port(4).unwrap().bufs[0].data(), &frame[..]);
    let vx = out.port(0).unwrap().bufs[0].data().to_vec();
    let want = outer_v4(
        [192, 168, 0, 2],
        17,
        1,
        &udp(entropy(RSS), 4789, &[&vxlan(5001)[..], &frame].concat()),
    );
    assert_eq!(vx, want);
    assert_eq!(n.counters().flood_copies, 1);
    // BUM from the fabric goes to local pods only.
    let enc = outer_v4(
        NODE,
        17,
        9,
        &udp(50000, 4789, &[&vxlan(5001)[..], &frame].concat()),
    );
    let out = n.send(0, &enc);
    assert!(out.port(0).is_none());
    assert_eq!(out.port(3).unwrap().bufs[0].data(), &frame[..]);
    assert_eq!(out.port(4).unwrap().bufs[0].data(), &frame[..]);
}

#[test]
fn drops_each_counted_under_its_reason() {
    let mut n = node();
    let udp_to = |dst: [u8; 4], ttl: u8| {
        eth(
            ROUTER,
            A_MAC,
            0x0800,
            &ipv4(A_IP, dst, 17, ttl, &udp(1, 2, b"x")),
        )
    };
    dropped(&mut n, 3, &udp_to([10, 2, 0, 1], 1), DropReason::TtlExpired);
    dropped(&mut n, 3, &udp_to([172, 16, 0, 1], 64), DropReason::NoRoute);
    dropped(&mut n, 3, &udp_to([10, 9, 0, 1], 64), DropReason::Discard);
    dropped(
        &mut n,
        3,
        &eth(
            ROUTER,
            R_MAC,
            0x0800,
            &ipv4(A_IP, B_IP, 17, 64, &udp(1, 2, b"x")),
        ),
        DropReason::SpoofedSource,
    );
    dropped(
        &mut n,
        3,
        &eth(
            ROUTER,
            A_MAC,
            0x0800,
            &ipv4([10, 1, 0, 99], B_IP, 17, 64, &udp(1, 2, b"x")),
        ),
        DropReason::SpoofedSource,
    );
    dropped(
        &mut n,
        3,
        &eth(ROUTER, A_MAC, 0x0800, &[0x45, 0, 0]),
        DropReason::Malformed,
    );
    dropped(
        &mut n,
        3,
        &eth(
            [2, 0, 0, 0, 0, 0x77],
            A_MAC,
            0x0800,
            &ipv4(A_IP, B_IP, 17, 64, &udp(1, 2, b"x")),
        ),
        DropReason::NoBridgeEntry,
    );
    dropped(&mut n, 9, &udp_to(B_IP, 64), DropReason::InvalidInterface);
    let inner = ipv4([10, 2, 0, 9], A_IP, 17, 60, &udp(1, 2, b"x"));
    dropped(
        &mut n,
        0,
        &outer_v4(
            NODE,
            17,
            7,
            &udp(50000, 6635, &[&mpls(999, 64)[..], &inner].concat()),
        ),
        DropReason::UnknownLabel,
    );
    dropped(
        &mut n,
        0,
        &outer_v4(
            NODE,
            17,
            7,
            &udp(
                50000,
                4789,
                &[&vxlan(77)[..], &eth(A_MAC, R_MAC, 0x0800, &inner)].concat(),
            ),
        ),
        DropReason::UnknownVni,
    );
    dropped(
        &mut n,
        0,
        &outer_v4(
            NODE,
            17,
            7,
            &udp(50000, 6635, &[&mpls(17, 1)[..], &inner].concat()),
        ),
        DropReason::TtlExpired,
    );
    dropped(&mut n, 2, &udp_to(B_IP, 64), DropReason::Unsupported);
    assert_eq!(n.counters().total_drops(), 12);
    assert_eq!(n.pipe.vif_counters(VifId(3)).drops, 7);
}

#[test]
fn mtu_exceeded_sends_icmp_back() {
    let mut n = node();
    // 1480-byte IP packet with DF over VXLAN (50 bytes more) does not fit 1500.
    let body = vec![0u8; 1480 - 20 - 8];
    let ip = ipv4_full(A_IP, [10, 3, 0, 9], 17, 64, 0, true, 0, &udp(1, 2, &body));
    let out = n.send(3, &eth(ROUTER, A_MAC, 0x0800, &ip));
    let (port, bytes) = single(&out);
    assert_eq!(port, 3);
    let mut icmp = vec![3, 4, 0, 0, 0, 0];
    icmp.extend_from_slice(&(1500u16 - 50).to_be_bytes());
    icmp.extend_from_slice(&ip[..28]);
    let c = !checksum::data(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        bytes,
        eth(
            A_MAC,
            ROUTER,
            0x0800,
            &ipv4([10, 3, 0, 9], A_IP, 1, 64, &icmp)
        )
    );
    assert_eq!(n.counters().drop_count(DropReason::MtuExceeded), 1);
    assert_eq!(n.counters().icmp_errors, 1);
    // Without DF it is dropped (no fragmentation), counted the same way.
    let ip = ipv4(A_IP, [10, 3, 0, 9], 17, 64, &udp(1, 2, &body));
    dropped(
        &mut n,
        3,
        &eth(ROUTER, A_MAC, 0x0800, &ip),
        DropReason::MtuExceeded,
    );
    // IPv6: packet too big.
    let a6: Ipv6Addr = "fd01::3".parse().unwrap();
    let r6: Ipv6Addr = "fd02::9".parse().unwrap();
    let big = ipv6(a6, r6, 17, 64, &udp(1, 2, &vec![0u8; 1480 - 48]));
    let (port, bytes) = single(&n.send(3, &eth(ROUTER, A_MAC, 0x86dd, &big)));
    assert_eq!(port, 3);
    assert_eq!(&bytes[0..14], &eth(A_MAC, ROUTER, 0x86dd, &[])[..]);
    assert_eq!(bytes[14 + 40], 2, "ICMPv6 packet too big");
    // 1500 minus the MPLSoUDP overhead (IPv4 20 + UDP 8 + MPLS 4).
    assert_eq!(u32::from_be_bytes(bytes[58..62].try_into().unwrap()), 1468);
    assert_eq!(&bytes[62..62 + 40], &big[..40]);
}

#[test]
fn policy_learns_flow_and_reverse() {
    let mut n = node();
    let a_to_b = |dport: u16| {
        eth(
            ROUTER,
            A_MAC,
            0x0800,
            &ipv4(A_IP, B_IP, 6, 64, &tcp(40000, dport)),
        )
    };
    let b_to_a = eth(
        ROUTER,
        B_MAC,
        0x0800,
        &ipv4(B_IP, A_IP, 6, 64, &tcp(80, 40000)),
    );
    // First packet: rules allow TCP/80 from 10.1/16 into B; flow + reverse learned.
    let (port, _) = single(&n.send(3, &a_to_b(80)));
    assert_eq!(port, 4);
    assert_eq!(n.counters().flows_learned, 1);
    assert_eq!(n.flows.len(), 2);
    // B answers: hits the reverse flow (B's rules alone would deny TCP from port 80).
    let (port, _) = single(&n.send(4, &b_to_a));
    assert_eq!(port, 3);
    assert_eq!(n.counters().flow_hits, 1);
    assert_eq!(n.counters().flows_learned, 1);
    // Denied flow: learned as drop, later packets denied by the flow lookup.
    dropped(&mut n, 3, &a_to_b(22), DropReason::PolicyDeny);
    dropped(&mut n, 3, &a_to_b(22), DropReason::PolicyDeny);
    assert_eq!(n.counters().flows_learned, 2);
    assert_eq!(n.counters().flow_hits, 2);
    // Per-flow counters.
    let key = vrf1_key(A_IP, B_IP, 6, 40000, 80);
    let e = n.flows.lookup(&key).unwrap();
    let c = n.flows.counters(e.id).unwrap();
    assert_eq!(c.packets, 1);
    assert_eq!(c.bytes, a_to_b(80).len() as u64);
}

#[test]
fn flow_table_full_drops() {
    let mut n = node_with(flow_table::MIN_CAPACITY);
    let mut full = 0;
    for sport in 0..16u16 {
        let f = eth(
            ROUTER,
            A_MAC,
            0x0800,
            &ipv4(A_IP, B_IP, 17, 64, &udp(1000 + sport, 53, b"q")),
        );
        let out = n.send(3, &f);
        full += out.drops.len();
    }
    assert!(full > 0);
    assert_eq!(
        n.counters().drop_count(DropReason::FlowTableFull) as usize,
        full
    );
}

#[test]
fn ecmp_spread_and_stability() {
    let mut n = node();
    const FLOWS: u32 = 30_000;
    let frames = |n: &mut Node| -> Vec<u8> {
        let mut picks = Vec::with_capacity(FLOWS as usize);
        for i in 0..FLOWS {
            let src_port = (i % 60_000) as u16;
            let dst = [10, 5, (i >> 8) as u8, i as u8];
            let f = eth(
                ROUTER,
                A_MAC,
                0x0800,
                &ipv4(A_IP, dst, 17, 64, &udp(src_port, 7, b"e")),
            );
            let mut b = HeapBuf::from_bytes(&f);
            b.set_port(3);
            let out = n.send_bufs(vec![b]);
            let (_, bytes) = single(&out);
            picks.push(bytes[14 + 19]);
        }
        picks
    };
    let before = frames(&mut n);
    let mut counts = std::collections::HashMap::new();
    for p in &before {
        *counts.entry(*p).or_insert(0u32) += 1;
    }
    assert_eq!(counts.len(), 3);
    let expect = f64::from(FLOWS) / 3.0;
    let chi2: f64 = counts
        .values()
        .map(|&c| (f64::from(c) - expect).powi(2) / expect)
        .sum();
    // 2 degrees of freedom: p = 0.001 at 13.82.
    assert!(chi2 < 13.82, "chi-square {chi2} over {counts:?}");
    // Remove the member towards 192.168.0.3: only its flows move.
    n.snap = n
        .fib
        .apply(&[Update::AddNh(
            NhId(30),
            NhSpec::Ecmp(vec![
                EcmpMember {
                    nh: NhId(21),
                    label: Some(101),
                },
                EcmpMember {
                    nh: NhId(25),
                    label: Some(103),
                },
            ]),
        )])
        .unwrap();
    let after = frames(&mut n);
    for (b, a) in before.iter().zip(&after) {
        if *b != 3 {
            assert_eq!(a, b, "a flow not on the removed member moved");
        } else {
            assert_ne!(*a, 3);
        }
    }
}

#[test]
fn bursts_group_by_output_port() {
    let mut n = node();
    let mut bufs = Vec::new();
    for i in 0..32u8 {
        let (dst_mac, dst) = if i % 2 == 0 {
            (ROUTER, [10, 2, 0, i])
        } else {
            (ROUTER, B_IP)
        };
        let f = eth(
            dst_mac,
            A_MAC,
            0x0800,
            &ipv4(A_IP, dst, 17, 64, &udp(1000 + u16::from(i), 2000, b"b")),
        );
        let mut b = HeapBuf::from_bytes(&f);
        b.set_port(3);
        bufs.push(b);
    }
    let out = n.send_bufs(bufs);
    assert_eq!(out.tx.len(), 2);
    assert_eq!(out.port(0).unwrap().bufs.len(), 16);
    assert_eq!(out.port(4).unwrap().bufs.len(), 16);
    assert_eq!(n.counters().rx, 32);
    assert_eq!(n.counters().tx, 32);
    assert_eq!(n.pipe.vif_counters(VifId(3)).rx_packets, 32);
    assert_eq!(n.pipe.vif_counters(VifId(4)).tx_packets, 16);
}

/// Sends `frames` on `port` twice as one burst through one node, and one by one
/// through another: the output (ports and bytes, in order), the drops and the
/// flow counters must be the same. Returns both nodes.
fn burst_as_one_by_one(port: u16, frames: &[Vec<u8>], rss: Option<u32>) -> (Node, Node) {
    let bufs = |frames: &[Vec<u8>]| -> Vec<HeapBuf> {
        frames
            .iter()
            .map(|f| {
                let mut b = HeapBuf::from_bytes(f);
                b.set_port(port);
                b.set_rss_hash(rss);
                b
            })
            .collect()
    };
    let sent = |out: &Output<HeapBuf>| -> Vec<(u16, Vec<u8>)> {
        out.tx
            .iter()
            .flat_map(|t| t.bufs.iter().map(move |b| (t.port, b.data().to_vec())))
            .collect()
    };
    let mut burst = node();
    let mut single = node();
    for round in 0..2 {
        let out = burst.send_bufs(bufs(frames));
        let mut want = Vec::new();
        let mut drops = 0;
        for f in frames {
            let out = single.send_bufs(bufs(std::slice::from_ref(f)));
            want.extend(sent(&out));
            drops += out.drops.len();
        }
        assert_eq!(sent(&out), want, "round {round}: output differs");
        assert_eq!(out.drops.len(), drops, "round {round}");
        let (b, s) = (burst.counters(), single.counters());
        assert_eq!(b.flow_hits, s.flow_hits, "round {round}");
        assert_eq!(b.flows_learned, s.flows_learned, "round {round}");
        assert_eq!(b.total_drops(), s.total_drops(), "round {round}");
        assert_eq!(
            b.drop_count(DropReason::PolicyDeny),
            s.drop_count(DropReason::PolicyDeny),
            "round {round}"
        );
    }
    (burst, single)
}

/// Runs of 1-5 packets of one flow, flows alternating: `(sport, dport, proto,
/// run length)`. Frame lengths differ within a run.
const RUNS: [(u16, u16, u8, usize); 10] = [
    (40000, 80, 6, 3),
    (40001, 22, 6, 2),
    (40000, 80, 6, 1),
    (5000, 53, 17, 5),
    (40001, 22, 6, 1),
    (5001, 53, 17, 4),
    (5000, 53, 17, 2),
    (40002, 80, 6, 5),
    (40003, 22, 6, 4),
    (40002, 80, 6, 5),
];

/// The IPv4 packets of [`RUNS`] from `src` to `dst`, 32 in all.
fn run_packets(src: [u8; 4], dst: [u8; 4]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    for (sport, dport, proto, len) in RUNS {
        for j in 0..len {
            let l4 = if proto == 6 {
                tcp(sport, dport)
            } else {
                udp(sport, dport, &vec![0x5a; j * 7])
            };
            packets.push(ipv4(src, dst, proto, 64, &l4));
        }
    }
    assert_eq!(packets.len(), 32);
    packets
}

/// Each flow of [`RUNS`] from `src` to `dst` in VRF 1 counted `rounds` times
/// its packets, in both nodes alike.
fn runs_counted(burst: &Node, single: &Node, src: [u8; 4], dst: [u8; 4], rounds: u64) {
    for (sport, dport, proto, _) in RUNS {
        let key = vrf1_key(src, dst, proto, sport, dport);
        let count = |n: &Node| {
            let e = n.flows.lookup(&key).unwrap();
            n.flows.counters(e.id).unwrap()
        };
        let (b, s) = (count(burst), count(single));
        let want: u64 = RUNS
            .iter()
            .filter(|r| (r.0, r.1, r.2) == (sport, dport, proto))
            .map(|r| rounds * r.3 as u64)
            .sum();
        assert_eq!(b.packets, want, "{sport}->{dport}");
        assert_eq!(
            (b.packets, b.bytes),
            (s.packets, s.bytes),
            "{sport}->{dport}"
        );
    }
}

#[test]
fn runs_of_one_flow_in_a_burst_forward_as_packets_one_by_one() {
    // From pod B (policy on: its packets are looked up ahead, as a batch) to A:
    // runs of one flow share one lookup ahead. B's rules allow TCP/80 and UDP
    // and deny TCP/22: six flows, two of them denied.
    let frames: Vec<Vec<u8>> = run_packets(B_IP, A_IP)
        .iter()
        .map(|p| eth(ROUTER, B_MAC, 0x0800, p))
        .collect();
    let (burst, single) = burst_as_one_by_one(4, &frames, None);
    let c = burst.counters();
    // The 2 + 1 + 4 packets of the TCP/22 flows are denied, twice.
    assert_eq!(c.drop_count(DropReason::PolicyDeny), 14);
    // Learned in the first round only.
    assert_eq!(c.flows_learned, 6);
    assert_eq!(c.flow_hits, 64 - 6);
    runs_counted(&burst, &single, B_IP, A_IP, 2);
}

#[test]
fn runs_of_one_flow_from_the_fabric_forward_as_packets_one_by_one() {
    // VXLAN VNI 5001 (VRF 1) from a remote pod to B, routed: a small flow table,
    // so fabric frames are looked up one by one after decapsulation, and a run
    // of one flow does one table lookup. B's rules deny TCP from outside
    // 10.1/16: the four TCP flows (21 packets of 32) are denied.
    let remote = [10, 3, 0, 9];
    let frames: Vec<Vec<u8>> = run_packets(remote, B_IP)
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let inner = eth(ROUTER, R_MAC, 0x0800, p);
            let vx = [&vxlan(5001)[..], &inner].concat();
            outer_v4(NODE, 17, i as u16, &udp(50000 + i as u16, 4789, &vx))
        })
        .collect();
    let (mut burst, single) = burst_as_one_by_one(0, &frames, Some(RSS));
    let c = burst.counters();
    assert_eq!(c.drop_count(DropReason::PolicyDeny), 2 * 21);
    assert_eq!(c.flows_learned, 6);
    assert_eq!(c.flow_hits, 64 - 6);
    runs_counted(&burst, &single, remote, B_IP, 2);
    // The burst's last flow, removed between bursts, is learned again: nothing
    // found in an earlier burst is reused.
    let key = vrf1_key(remote, B_IP, 6, 40002, 80);
    assert!(burst.flows.remove(&key).is_some());
    let learned = burst.counters().flows_learned;
    let last = frames.last().unwrap();
    let _ = burst.send(0, last);
    assert_eq!(burst.counters().flows_learned, learned + 1);
    assert!(burst.flows.lookup(&key).is_some());
}
