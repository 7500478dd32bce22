//! The Prometheus exporter: a real HTTP request on 127.0.0.1 against fake counters,
//! alone and as part of the API server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod control_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use control_common::*;
use vrouter_dp::control::telemetry::{render, Exporter, Source};

fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n"
    )
    .unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    let (head, body) = s.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// `name{labels} value` lines as (series, value).
fn samples(body: &str) -> Vec<(String, u64)> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

fn value(s: &[(String, u64)], series: &str) -> u64 {
    s.iter()
        .find(|(k, _)| k == series)
        .unwrap_or_else(|| panic!("no series {series}"))
        .1
}

#[test]
fn exporter_serves_counters_in_text_format() {
    let stats = Arc::new(FakeStats::with_ports(2));
    stats.rx.store(1000, std::sync::atomic::Ordering::Relaxed);
    let flows = Arc::new(flow_table::FlowTable::with_capacity(256).unwrap());
    let ex = Exporter::start(
        "127.0.0.1:0".parse().unwrap(),
        Source::counters(stats.clone(), Some(flows)),
    )
    .unwrap();
    // A client that connects and stalls does not hold up others.
    let _stalled = TcpStream::connect(ex.address()).unwrap();
    let (head, body) = get(ex.address(), "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(body.contains("# TYPE vrouter_port_rx_packets_total counter"));
    assert!(body.contains("# TYPE vrouter_flow_table_entries gauge"));
    let s = samples(&body);
    assert_eq!(
        value(
            &s,
            "vrouter_port_rx_packets_total{port=\"1\",name=\"eth1\"}"
        ),
        1001
    );
    assert_eq!(
        value(&s, "vrouter_port_rx_bytes_total{port=\"0\",name=\"eth0\"}"),
        64_000
    );
    assert_eq!(
        value(&s, "vrouter_port_link_up{port=\"0\",name=\"eth0\"}"),
        1
    );
    assert_eq!(value(&s, "vrouter_drops_total{reason=\"ttl_exceeded\"}"), 9);
    assert_eq!(
        value(&s, "vrouter_worker_busy_cycles_total{lcore=\"1\"}"),
        123_456
    );
    assert_eq!(value(&s, "vrouter_flow_table_entries"), 0);
    assert_eq!(value(&s, "vrouter_flow_table_capacity"), 256);
    assert_eq!(value(&s, "vrouter_info{version=\"9.9.9-test\"}"), 1);
    // Counters move between scrapes.
    stats.rx.store(5000, std::sync::atomic::Ordering::Relaxed);
    stats.set_link(0, false);
    let s = samples(&get(ex.address(), "/metrics").1);
    assert_eq!(
        value(
            &s,
            "vrouter_port_rx_packets_total{port=\"1\",name=\"eth1\"}"
        ),
        5001
    );
    assert_eq!(
        value(&s, "vrouter_port_link_up{port=\"0\",name=\"eth0\"}"),
        0
    );
    let (head, _) = get(ex.address(), "/nope");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    ex.stop();
}

#[test]
fn server_exports_table_occupancy() {
    let env = Env::start_with(|c| c.telemetry = Some("127.0.0.1:0".parse().unwrap()));
    let addr = env.handle.as_ref().unwrap().telemetry_address().unwrap();
    let mut c = env.client();
    env.rt.block_on(async {
        c.apply(batch(vec![
            pod(1, 1, 1),
            encap(1, 1),
            route(1, "10.1.0.0/16", 1),
            route(1, "10.2.0.0/16", 1),
        ]))
        .await
        .unwrap();
    });
    let s = samples(&get(addr, "/metrics").1);
    assert_eq!(value(&s, "vrouter_table_entries{table=\"routes\"}"), 2);
    assert_eq!(value(&s, "vrouter_table_entries{table=\"nexthops\"}"), 2);
    assert_eq!(
        value(&s, "vrouter_table_capacity{table=\"interfaces\"}"),
        64
    );
    assert_eq!(value(&s, "vrouter_fib_generation"), 1);
    // Every sample line is `name{labels} integer` and every family is typed.
    let body = get(addr, "/metrics").1;
    for l in body.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "untyped metric {name}"
        );
    }
    assert!(render(&Source::counters(env.stats.clone(), None)).contains("vrouter_drops_total"));
}
