//! The control API over its Unix socket: every verb, batches, bad input, stalled and
//! garbage-sending clients, watch events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod control_common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use control_common::*;
use tokio_stream::StreamExt;
use tonic::Code;
use vrouter_dp::control::proto as pb;
use vrouter_dp::control::{client, ControlConfig};

use pb::change::Op;

async fn all_routes(c: &mut client::Client, req: pb::DumpRoutesRequest) -> Vec<pb::Route> {
    let mut s = c.dump_routes(req).await.unwrap().into_inner();
    let mut v = Vec::new();
    while let Some(p) = s.next().await {
        v.extend(p.unwrap().routes);
    }
    v
}

#[test]
fn socket_has_mode_0660_and_is_replaced_when_stale() {
    let env = Env::start();
    let meta = std::fs::metadata(env.socket()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    // A second server on the same path replaces the (now stale) socket file.
    let path = env.socket();
    drop(env);
    assert!(!path.exists(), "shutdown removes the socket");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"not a socket").unwrap();
    let plane = vrouter_dp::control::ControlPlane::standalone(
        vrouter_dp::fib::Fib::new(fib_config()),
        std::sync::Arc::new(vrouter_dp::control::NoStats),
        std::sync::Arc::new(vrouter_dp::control::NoPorts),
    );
    let cfg = ControlConfig {
        socket: path.clone(),
        ..ControlConfig::default()
    };
    let e = vrouter_dp::control::Server::start(cfg, plane).unwrap_err();
    assert!(e.to_string().contains("is not a socket"), "{e}");
}

#[test]
fn interfaces_nexthops_routes_roundtrip() {
    let env = Env::start();
    let mut c = env.client();
    env.rt.block_on(async {
        let r = c
            .apply(batch(vec![
                fabric(0, 0),
                pod(1, 1, 1),
                pod(2, 2, 1),
                encap(1, 1),
                encap(2, 2),
                tunnel(3, 0, "192.0.2.9"),
                route(1, "10.0.0.1/32", 1),
                route(1, "10.0.0.2/32", 2),
                route(1, "10.1.0.0/16", 3),
                route(1, "fd00::/64", 3),
                Op::AddRoute(pb::Route {
                    vrf: 1,
                    prefix: "10.2.0.0/16".into(),
                    nh: 3,
                    label: 4242,
                    label_valid: true,
                }),
            ]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.applied, 11);
        assert_eq!(r.generation, 1);

        // Interfaces: get, with counters from the stats source; dump.
        let v = c
            .get_interface(pb::InterfaceKey { id: 1 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v.r#type, pb::InterfaceType::VifTypeVirtual as i32);
        assert_eq!(v.transport, pb::Transport::Pmd as i32);
        assert_eq!(v.mac, "02:00:00:00:02:01");
        assert_eq!(v.ipv4, vec!["10.0.0.1".to_string()]);
        assert_eq!(v.name, "eth1");
        assert!(v.link_up);
        assert_eq!(v.counters.unwrap().tx_packets, 7);
        let mut s = c
            .dump_interfaces(pb::DumpRequest {
                page_size: 2,
                start: 0,
            })
            .await
            .unwrap()
            .into_inner();
        let mut pages = Vec::new();
        while let Some(p) = s.next().await {
            pages.push(p.unwrap().interfaces.len());
        }
        assert_eq!(pages, vec![2, 1]);

        // Next-hops.
        let n = c
            .get_next_hop(pb::NextHopKey { id: 3 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(n.r#type, pb::NextHopType::NhTypeTunnel as i32);
        assert_eq!(n.tunnel_dst, "192.0.2.9");
        let mut s = c
            .dump_next_hops(pb::DumpRequest::default())
            .await
            .unwrap()
            .into_inner();
        let mut ids = Vec::new();
        while let Some(p) = s.next().await {
            ids.extend(p.unwrap().nexthops.into_iter().map(|n| n.id));
        }
        assert_eq!(ids, vec![0, 1, 2, 3]);

        // Routes: get, dump with filters, pagination by marker.
        let r = c
            .get_route(pb::RouteKey {
                vrf: 1,
                prefix: "10.2.0.0/16".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r.nh, r.label, r.label_valid), (3, 4242, true));
        let all = all_routes(
            &mut c,
            pb::DumpRoutesRequest {
                vrf: 1,
                ..Default::default()
            },
        )
        .await;
        let p: Vec<_> = all.iter().map(|r| r.prefix.as_str()).collect();
        assert_eq!(
            p,
            [
                "10.0.0.1/32",
                "10.0.0.2/32",
                "10.1.0.0/16",
                "10.2.0.0/16",
                "fd00::/64"
            ]
        );
        let v6 = all_routes(
            &mut c,
            pb::DumpRoutesRequest {
                vrf: 1,
                family: pb::Family::Inet6 as i32,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(v6.len(), 1);
        let within = all_routes(
            &mut c,
            pb::DumpRoutesRequest {
                vrf: 1,
                within: "10.0.0.0/24".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(within.len(), 2);
        let after = all_routes(
            &mut c,
            pb::DumpRoutesRequest {
                vrf: 1,
                family: pb::Family::Inet as i32,
                marker: "10.0.0.2/32".into(),
                limit: 1,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].prefix, "10.1.0.0/16");

        // Idempotent add of an identical object succeeds.
        c.apply(batch(vec![route(1, "10.0.0.1/32", 1), pod(1, 1, 1)]))
            .await
            .unwrap();

        // Deletes.
        c.apply(batch(vec![
            Op::DelRoute(pb::RouteKey {
                vrf: 1,
                prefix: "10.0.0.2/32".into(),
            }),
            Op::DelNexthop(pb::NextHopKey { id: 2 }),
            Op::DelInterface(pb::InterfaceKey { id: 2 }),
        ]))
        .await
        .unwrap();
        let e = c
            .get_interface(pb::InterfaceKey { id: 2 })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        let e = c.get_next_hop(pb::NextHopKey { id: 2 }).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        let e = c
            .get_route(pb::RouteKey {
                vrf: 1,
                prefix: "10.0.0.2/32".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
    });
    // The workers' view (the published snapshot) has the route.
    let snap = env.handle.as_ref().unwrap().snapshot().unwrap();
    let t = snap
        .route(
            vrouter_dp::fib::VrfId(1),
            "10.1.2.3".parse::<std::net::IpAddr>().unwrap(),
        )
        .unwrap();
    assert_eq!(t.nh, vrouter_dp::fib::NhId(3));
}

#[test]
fn bridge_labels_vnis_policy() {
    let env = Env::start();
    let mut c = env.client();
    env.rt.block_on(async {
        c.apply(batch(vec![
            fabric(0, 0),
            pod(1, 1, 1),
            encap(1, 1),
            tunnel(3, 0, "192.0.2.9"),
            Op::AddNexthop(pb::NextHop {
                id: 4,
                r#type: pb::NextHopType::NhTypeVrfTranslate as i32,
                vrf: 1,
                ..Default::default()
            }),
            Op::AddNexthop(pb::NextHop {
                id: 5,
                r#type: pb::NextHopType::NhTypeComposite as i32,
                composite: pb::CompositeType::CompositeEcmp as i32,
                members: vec![
                    pb::CompositeMember {
                        nh: 1,
                        ..Default::default()
                    },
                    pb::CompositeMember {
                        nh: 3,
                        label: 77,
                        label_valid: true,
                    },
                ],
                ..Default::default()
            }),
            Op::AddBridge(pb::BridgeEntry {
                vrf: 1,
                mac: "02:00:00:00:02:01".into(),
                nh: 1,
                ..Default::default()
            }),
            Op::AddMplsLabel(pb::MplsLabel {
                label: 17,
                nh: 1,
                payload: pb::Payload::Ip as i32,
            }),
            Op::AddVxlan(pb::Vxlan { vni: 5001, nh: 4 }),
            Op::SetPolicy(pb::Policy {
                vif: 1,
                rules: vec![pb::PolicyRule {
                    action: pb::PolicyAction::PolicyAllow as i32,
                    proto: 6,
                    dst: "10.0.0.0/8".into(),
                    dport_lo: 80,
                    dport_hi: 443,
                    ..Default::default()
                }],
            }),
        ]))
        .await
        .unwrap();
        let b = c
            .get_bridge_entry(pb::BridgeKey {
                vrf: 1,
                mac: "02:00:00:00:02:01".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(b.nh, 1);
        let mut s = c
            .dump_bridge_entries(pb::DumpBridgeRequest {
                all_vrfs: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(s.next().await.unwrap().unwrap().entries.len(), 1);
        let l = c
            .get_mpls_label(pb::MplsLabelKey { label: 17 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(l.nh, 1);
        let mut s = c
            .dump_mpls_labels(pb::DumpRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(s.next().await.unwrap().unwrap().labels[0].label, 17);
        let x = c
            .get_vxlan(pb::VxlanKey { vni: 5001 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(x.nh, 4);
        let mut s = c
            .dump_vxlans(pb::DumpRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(s.next().await.unwrap().unwrap().vxlans, vec![x]);
        let ecmp = c
            .get_next_hop(pb::NextHopKey { id: 5 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ecmp.members.len(), 2);
        assert_eq!(
            (ecmp.members[1].label, ecmp.members[1].label_valid),
            (77, true)
        );
        assert!(!ecmp.members[0].label_valid);
        let p = c
            .get_policy(pb::InterfaceKey { id: 1 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(p.rules.len(), 1);
        assert_eq!((p.rules[0].dport_lo, p.rules[0].dport_hi), (80, 443));
        // Replacing the interface keeps its rules.
        c.apply(batch(vec![pod(1, 1, 1)])).await.unwrap();
        let p = c
            .get_policy(pb::InterfaceKey { id: 1 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(p.rules.len(), 1);
        let mut s = c
            .dump_policies(pb::DumpRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(s.next().await.unwrap().unwrap().policies.len(), 2);

        // A next-hop still in use cannot be deleted.
        let e = c
            .apply(batch(vec![Op::DelNexthop(pb::NextHopKey { id: 1 })]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert_eq!(violations(&e)[0].0, "changes[0].del_nexthop.id");

        c.apply(batch(vec![
            Op::DelVxlan(pb::VxlanKey { vni: 5001 }),
            Op::DelMplsLabel(pb::MplsLabelKey { label: 17 }),
            Op::DelBridge(pb::BridgeKey {
                vrf: 1,
                mac: "02:00:00:00:02:01".into(),
            }),
        ]))
        .await
        .unwrap();
        assert_eq!(
            c.get_vxlan(pb::VxlanKey { vni: 5001 })
                .await
                .unwrap_err()
                .code(),
            Code::NotFound
        );
        assert_eq!(
            c.get_mpls_label(pb::MplsLabelKey { label: 17 })
                .await
                .unwrap_err()
                .code(),
            Code::NotFound
        );
    });
}

#[test]
fn flows_add_get_dump_del_clear() {
    let env = Env::start();
    let mut c = env.client();
    env.rt.block_on(async {
        c.apply(batch(vec![pod(1, 1, 1), encap(1, 1)]))
            .await
            .unwrap();
        let key = |sport: u32| pb::FlowKey {
            vrf: 1,
            src: "10.0.0.1".into(),
            dst: "10.0.0.2".into(),
            proto: 6,
            sport,
            dport: 80,
            ..Default::default()
        };
        for sp in 1000..1010 {
            let f = c
                .add_flow(pb::Flow {
                    key: Some(key(sp)),
                    action: pb::FlowAction::FlowForward as i32,
                    nh: 1,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(f.nh, 1);
        }
        assert_eq!(env.flows.len(), 10);
        // A flow to a missing next-hop is refused.
        let e = c
            .add_flow(pb::Flow {
                key: Some(key(1)),
                action: pb::FlowAction::FlowForward as i32,
                nh: 99,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        let f = c.get_flow(key(1003)).await.unwrap().into_inner();
        assert_eq!(f.key.as_ref().unwrap().sport, 1003);
        let by_index = c
            .get_flow(pb::FlowKey {
                by_index: true,
                index: f.index,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_index.key.unwrap().sport, 1003);
        let mut s = c
            .dump_flows(pb::DumpFlowsRequest {
                port: 1005,
                match_port: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let page = s.next().await.unwrap().unwrap();
        assert_eq!(page.flows.len(), 1);
        let mut s = c
            .dump_flows(pb::DumpFlowsRequest {
                src: "10.0.0.0/24".into(),
                page_size: 4,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        while let Some(p) = s.next().await {
            n += p.unwrap().flows.len();
        }
        assert_eq!(n, 10);
        // A next-hop used by flows cannot be deleted.
        c.apply(batch(vec![])).await.unwrap();
        let e = c
            .apply(batch(vec![Op::DelNexthop(pb::NextHopKey { id: 1 })]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(e.message().contains("flow"), "{}", e.message());
        c.del_flow(key(1000)).await.unwrap();
        assert_eq!(
            c.get_flow(key(1000)).await.unwrap_err().code(),
            Code::NotFound
        );
        let r = c
            .clear_flows(pb::ClearFlowsRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.removed, 9);
        assert_eq!(env.flows.len(), 0);
    });
}

#[test]
fn stats_info_and_watch() {
    let env = Env::start();
    let mut c = env.client();
    env.rt.block_on(async {
        c.apply(batch(vec![pod(1, 1, 1)])).await.unwrap();
        let s = c
            .get_stats(pb::GetStatsRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(s.ports.len(), 4);
        assert_eq!(s.workers.len(), 2);
        assert_eq!(s.drops[1].reason, "ttl_exceeded");
        assert_eq!(s.drops[1].packets, 9);
        assert_eq!(s.flows.unwrap().capacity, 1024);
        let i = c
            .get_info(pb::GetInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(i.version, "9.9.9-test");
        assert_eq!(i.worker_cores, vec![1, 2]);
        assert_eq!(i.generation, 1);
        let vifs = i.tables.iter().find(|t| t.name == "interfaces").unwrap();
        assert_eq!((vifs.used, vifs.capacity), (1, 64));

        let mut w = c
            .watch(pb::WatchRequest {
                flow_pressure_percent: 1,
            })
            .await
            .unwrap()
            .into_inner();
        // The first events report every port's current link state.
        for _ in 0..4 {
            let ev = w.next().await.unwrap().unwrap();
            assert!(matches!(ev.kind, Some(pb::event::Kind::Link(ref l)) if l.up));
        }
        env.stats.set_link(1, false);
        let ev = w.next().await.unwrap().unwrap();
        match ev.kind {
            Some(pb::event::Kind::Link(l)) => {
                assert_eq!((l.port, l.vif, l.vif_valid, l.up), (1, 1, true, false));
            }
            other => panic!("expected a link event, got {other:?}"),
        }
        // Fill the flow table past 1%.
        for sp in 0..20u16 {
            let k = flow_table::FlowKey::v4(
                flow_table::VrfId::new(1).unwrap(),
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
                17,
                sp,
                53,
            );
            env.flows
                .insert(
                    &k,
                    flow_table::FlowValue::new(flow_table::FlowAction::Drop),
                    0,
                )
                .unwrap();
        }
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev.kind {
            Some(pb::event::Kind::FlowPressure(f)) => {
                assert!(f.high);
                assert_eq!((f.entries, f.capacity), (20, 1024));
            }
            other => panic!("expected a pressure event, got {other:?}"),
        }
    });
}

#[test]
fn pod_ports_go_through_the_port_manager() {
    let env = Env::start();
    let mut c = env.client();
    env.rt.block_on(async {
        let v = c
            .add_pod_port(pb::AddPodPortRequest {
                interface: Some(pb::Interface {
                    id: 5,
                    mac: "02:00:00:00:05:05".into(),
                    vrf: 2,
                    ipv4: vec!["10.5.0.5".into()],
                    name: "pod5".into(),
                    ..Default::default()
                }),
                backend: Some(pb::add_pod_port_request::Backend::VhostUser(
                    pb::VhostUserBackend {
                        socket_path: "/var/run/vrouter/uvh_vif_pod5".into(),
                        server: true,
                        queues: 2,
                    },
                )),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v.port, 10);
        assert_eq!(v.transport, pb::Transport::Pmd as i32);
        let t = c
            .add_pod_port(pb::AddPodPortRequest {
                interface: Some(pb::Interface {
                    id: 6,
                    mac: "02:00:00:00:06:06".into(),
                    vrf: 2,
                    ..Default::default()
                }),
                backend: Some(pb::add_pod_port_request::Backend::Tap(pb::TapBackend {
                    name: "eth0".into(),
                    netns: "/var/run/netns/pod6".into(),
                })),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((t.port, t.transport), (11, pb::Transport::Eth as i32));
        // The same id again is refused and creates no port.
        let e = c
            .add_pod_port(pb::AddPodPortRequest {
                interface: Some(pb::Interface {
                    id: 6,
                    mac: "02:00:00:00:06:06".into(),
                    ..Default::default()
                }),
                backend: Some(pb::add_pod_port_request::Backend::Tap(pb::TapBackend {
                    name: "eth0".into(),
                    netns: "/var/run/netns/pod6".into(),
                })),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::AlreadyExists);
        // A port manager failure is reported and leaves no interface.
        let e = c
            .add_pod_port(pb::AddPodPortRequest {
                interface: Some(pb::Interface {
                    id: 7,
                    mac: "02:00:00:00:07:07".into(),
                    ..Default::default()
                }),
                backend: Some(pb::add_pod_port_request::Backend::Tap(pb::TapBackend {
                    name: "eth0".into(),
                    netns: String::new(),
                })),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unavailable);
        assert!(e.message().contains("no such namespace"));
        c.del_pod_port(pb::InterfaceKey { id: 5 }).await.unwrap();
        assert_eq!(
            c.get_interface(pb::InterfaceKey { id: 5 })
                .await
                .unwrap_err()
                .code(),
            Code::NotFound
        );
    });
    let calls = env.ports.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            "vhost pod5 /var/run/vrouter/uvh_vif_pod5 -> 10".to_string(),
            "tap eth0 /var/run/netns/pod6 -> 11".to_string(),
            "remove 10".to_string(),
        ]
    );
}

#[test]
fn bad_input_is_refused_with_field_errors_and_changes_nothing() {
    let env = Env::start_with(|c| c.max_batch = 100);
    let mut c = env.client();
    env.rt.block_on(async {
        c.apply(batch(vec![pod(1, 1, 1), encap(1, 1)]))
            .await
            .unwrap();
        let gen = env.generation();

        // Invalid prefixes, all reported.
        let e = c
            .apply(batch(vec![
                route(1, "10.0.0.0/24", 1),
                route(1, "10.0.0.1/24", 1),
                route(1, "10.0.0.0/40", 1),
                route(1, "not-an-address/8", 1),
            ]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        let v = violations(&e);
        let fields: Vec<_> = v.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            fields,
            [
                "changes[1].add_route.prefix",
                "changes[2].add_route.prefix",
                "changes[3].add_route.prefix"
            ]
        );
        assert!(v[0].1.contains("host bits"), "{}", v[0].1);

        // Wrong types: enum values that do not exist, a missing operation.
        let e = c
            .apply(pb::Batch {
                changes: vec![
                    op(Op::AddNexthop(pb::NextHop {
                        id: 9,
                        r#type: 99,
                        ..Default::default()
                    })),
                    pb::Change { op: None },
                    op(Op::AddInterface(pb::Interface {
                        id: 3,
                        r#type: pb::InterfaceType::VifTypeVirtual as i32,
                        transport: 42,
                        mac: "zz".into(),
                        ..Default::default()
                    })),
                ],
            })
            .await
            .unwrap_err();
        let v = violations(&e);
        assert_eq!(v[0].0, "changes[0].add_nexthop.type");
        assert_eq!(v[1].0, "changes[1]");
        assert_eq!(v[2].0, "changes[2].add_interface.type");
        assert_eq!(v[3].0, "changes[2].add_interface.mac");

        // Half-bad batch: a dangling reference in the middle; nothing is applied.
        let e = c
            .apply(batch(vec![
                route(1, "10.9.0.0/16", 1),
                route(1, "10.8.0.0/16", 77),
                route(1, "10.7.0.0/16", 1),
            ]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert_eq!(violations(&e)[0].0, "changes[1].add_route.nh");
        assert!(e.message().contains("next-hop 77"), "{}", e.message());
        assert_eq!(env.generation(), gen);
        let e = c
            .get_route(pb::RouteKey {
                vrf: 1,
                prefix: "10.9.0.0/16".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);

        // Unknown ids.
        assert_eq!(
            c.get_interface(pb::InterfaceKey { id: 33 })
                .await
                .unwrap_err()
                .code(),
            Code::NotFound
        );
        assert_eq!(
            c.get_interface(pb::InterfaceKey { id: 1 << 20 })
                .await
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );
        let e = c
            .apply(batch(vec![Op::DelInterface(pb::InterfaceKey { id: 33 })]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        let e = c
            .apply(batch(vec![Op::DelRoute(pb::RouteKey {
                vrf: 1,
                prefix: "10.66.0.0/16".into(),
            })]))
            .await;
        // Deleting a route that does not exist is refused or a no-op, never a change.
        if let Err(e) = e {
            assert!(matches!(
                e.code(),
                Code::NotFound | Code::FailedPrecondition
            ));
        }
        assert_eq!(
            c.get_route(pb::RouteKey {
                vrf: 1,
                prefix: "bad".into()
            })
            .await
            .unwrap_err()
            .code(),
            Code::InvalidArgument
        );

        // Oversized batch.
        let big = batch(
            (0..101)
                .map(|i| route(1, &format!("10.{}.{}.0/24", i / 256, i % 256), 1))
                .collect(),
        );
        let e = c.apply(big.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert!(e.message().contains("limit of 100"), "{}", e.message());
        // The same in a stream of chunks.
        let chunks = vec![
            pb::Batch {
                changes: big.changes[..60].to_vec(),
            },
            pb::Batch {
                changes: big.changes[60..].to_vec(),
            },
        ];
        let e = c
            .apply_stream(tokio_stream::iter(chunks))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert_eq!(env.generation(), gen);

        // A streamed batch within the limit applies as one.
        let chunks = vec![
            pb::Batch {
                changes: big.changes[..50].to_vec(),
            },
            pb::Batch {
                changes: big.changes[50..100].to_vec(),
            },
        ];
        let r = c
            .apply_stream(tokio_stream::iter(chunks))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.applied, 100);
        assert_eq!(r.generation, gen + 1);
    });
}

#[test]
fn garbage_and_stalled_clients_do_not_stop_the_server() {
    let env = Env::start();
    let path = env.socket();
    // A client that connects and says nothing.
    let stalled = std::os::unix::net::UnixStream::connect(&path).unwrap();
    // One that sends an HTTP/2 preface and then stops mid-frame.
    let mut half = std::os::unix::net::UnixStream::connect(&path).unwrap();
    half.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x40\x04")
        .unwrap();
    // Garbage.
    for _ in 0..3 {
        let mut g = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let _ = g.write_all(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 0xff, 0xfe, b'\n', b'x']);
        let _ = g.write_all(&vec![0x55u8; 70_000]);
    }
    let mut c = env.client();
    env.rt.block_on(async {
        let r = c.apply(batch(vec![pod(1, 1, 1)])).await.unwrap();
        assert_eq!(r.into_inner().applied, 1);
        let i = c
            .get_info(pb::GetInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(i.generation, 1);
    });
    drop(stalled);
    drop(half);
}

#[test]
fn agent_going_away_keeps_the_state() {
    let env = Env::start();
    {
        let mut c = env.client();
        env.rt.block_on(async {
            c.apply(batch(vec![
                pod(1, 1, 1),
                encap(1, 1),
                route(1, "10.1.0.0/16", 1),
            ]))
            .await
            .unwrap();
        });
    }
    // A new client (the agent after a restart) dumps what is there.
    let mut c = env.client();
    env.rt.block_on(async {
        let r = all_routes(
            &mut c,
            pb::DumpRoutesRequest {
                all_vrfs: true,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].prefix, "10.1.0.0/16");
    });
}

#[test]
fn route_sets_add_and_delete_many_routes_packed() {
    let env = Env::start_with(|c| c.max_batch = 1000);
    let mut c = env.client();
    let v4 = |a: [u8; 4]| a.to_vec();
    env.rt.block_on(async {
        c.apply(batch(vec![pod(1, 1, 1), encap(1, 1), encap(2, 1)]))
            .await
            .unwrap();
        // 3 IPv4 routes, one next-hop each, one label for all; 2 IPv6 routes.
        let set = pb::RouteSet {
            vrf: 1,
            family: pb::Family::Inet as i32,
            addrs: [v4([10, 0, 0, 1]), v4([10, 0, 0, 2]), v4([10, 1, 0, 0])].concat(),
            prefix_lens: vec![32, 32, 16],
            nhs: vec![1, 2, 1],
            labels: vec![77],
        };
        let mut a6 = "fd00::"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
            .to_vec();
        a6.extend("fd00:1::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        let set6 = pb::RouteSet {
            vrf: 1,
            family: pb::Family::Inet6 as i32,
            addrs: a6,
            prefix_lens: vec![64, 128],
            nhs: vec![2],
            labels: vec![],
        };
        let r = c
            .apply(batch(vec![Op::AddRoutes(set.clone()), Op::AddRoutes(set6)]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.applied, 5, "each route of a set is one applied change");
        let got = |p: &str| pb::RouteKey {
            vrf: 1,
            prefix: p.into(),
        };
        let r = c.get_route(got("10.0.0.2/32")).await.unwrap().into_inner();
        assert_eq!((r.nh, r.label, r.label_valid), (2, 77, true));
        let r = c.get_route(got("10.1.0.0/16")).await.unwrap().into_inner();
        assert_eq!(r.nh, 1);
        let r = c
            .get_route(got("fd00:1::1/128"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r.nh, r.label_valid), (2, false));

        // Bad sets name the set's field or the route; nothing is applied.
        let gen = env.generation();
        let mut bad = set.clone();
        bad.addrs.push(1);
        let mut host_bits = set.clone();
        host_bits.prefix_lens = vec![32, 24, 16];
        let mut big_label = set.clone();
        big_label.labels = vec![1, 1 << 24, 1];
        let e = c
            .apply(batch(vec![
                Op::AddRoutes(bad),
                Op::AddRoutes(host_bits),
                Op::AddRoutes(big_label),
                Op::AddRoutes(pb::RouteSet {
                    nhs: vec![1, 2],
                    ..set.clone()
                }),
                Op::AddRoutes(pb::RouteSet {
                    family: 0,
                    ..set.clone()
                }),
                Op::DelRoutes(set.clone()),
            ]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        let fields: Vec<_> = violations(&e).into_iter().map(|x| x.0).collect();
        assert_eq!(
            fields,
            [
                "changes[0].add_routes.addrs",
                "changes[1].add_routes[1].prefix",
                "changes[2].add_routes[1].label",
                "changes[3].add_routes.nhs",
                "changes[4].add_routes.family",
                "changes[5].del_routes.nhs",
                "changes[5].del_routes.labels",
            ]
        );
        // A dangling next-hop inside a set names its route; the valid routes
        // before it are not applied either.
        let e = c
            .apply(batch(vec![Op::AddRoutes(pb::RouteSet {
                addrs: [v4([10, 5, 0, 1]), v4([10, 5, 0, 2])].concat(),
                prefix_lens: vec![32, 32],
                nhs: vec![1, 99],
                labels: vec![],
                ..set.clone()
            })]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert_eq!(violations(&e)[0].0, "changes[0].add_routes[1].nh");
        assert_eq!(env.generation(), gen);
        assert_eq!(
            c.get_route(got("10.5.0.1/32")).await.unwrap_err().code(),
            Code::NotFound
        );
        // The batch limit counts routes, not changes.
        let e = c
            .apply(batch(vec![Op::AddRoutes(pb::RouteSet {
                addrs: (0..1001u32)
                    .flat_map(|i| (0x0b00_0000 + i).to_be_bytes())
                    .collect(),
                prefix_lens: vec![32; 1001],
                nhs: vec![1],
                labels: vec![],
                ..set.clone()
            })]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted);

        // Delete the IPv4 set: its routes are gone, the IPv6 ones stay.
        let r = c
            .apply(batch(vec![Op::DelRoutes(pb::RouteSet {
                nhs: vec![],
                labels: vec![],
                ..set
            })]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.applied, 3);
        assert_eq!(
            c.get_route(got("10.0.0.1/32")).await.unwrap_err().code(),
            Code::NotFound
        );
        assert!(c.get_route(got("fd00::/64")).await.is_ok());
    });
}
