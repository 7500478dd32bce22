//! Prometheus text exposition (format 0.0.4) of the data plane's counters, served on
//! `GET /metrics` by a small HTTP/1.1 server on its own thread. Off unless
//! `telemetry.address` is set.
//!
//! Metric families (counters end in `_total`):
//!
//! | metric | labels |
//! |---|---|
//! | `vrouter_port_{rx,tx}_{packets,bytes}_total`, `vrouter_port_rx_missed_total`, `vrouter_port_{rx,tx}_errors_total`, `vrouter_port_tx_dropped_total` | `port`, `name` |
//! | `vrouter_port_link_up` | `port`, `name` |
//! | `vrouter_worker_{iterations,busy_iterations,busy_cycles,rx_packets,tx_packets,tx_dropped}_total` | `lcore` |
//! | `vrouter_drops_total` | `reason` |
//! | `vrouter_flow_table_entries`, `vrouter_flow_table_capacity`, `vrouter_flow_table_{inserted,removed,aged,full}_total` | |
//! | `vrouter_table_entries`, `vrouter_table_capacity` | `table` |
//! | `vrouter_fib_generation` | |
//! | `vrouter_info` (always 1) | `version` |

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use flow_table::FlowTable;

use super::{ControlError, StatsSource};

/// Where the exporter reads its figures.
#[derive(Clone)]
pub struct Source(Inner);

#[derive(Clone)]
enum Inner {
    /// A running API server (all figures, forwarding tables included).
    Server(Arc<super::service::Shared>),
    /// Counters and the flow table only.
    Counters {
        stats: Arc<dyn StatsSource>,
        flows: Option<Arc<FlowTable>>,
    },
}

impl Source {
    /// Port, worker and drop counters from `stats`, flow-table figures from `flows`.
    pub fn counters(stats: Arc<dyn StatsSource>, flows: Option<Arc<FlowTable>>) -> Self {
        Self(Inner::Counters { stats, flows })
    }

    pub(super) fn server(s: Arc<super::service::Shared>) -> Self {
        Self(Inner::Server(s))
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Inner::Server(_) => "Source::Server",
            Inner::Counters { .. } => "Source::Counters",
        })
    }
}

/// Escapes a label value.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// Renders every metric of `src`.
pub fn render(src: &Source) -> String {
    let (stats, flows) = match &src.0 {
        Inner::Server(s) => (s.stats.clone(), s.flows.clone()),
        Inner::Counters { stats, flows } => (stats.clone(), flows.clone()),
    };
    let mut o = Out(String::with_capacity(4096));
    let info = stats.info();
    o.family(
        "vrouter_info",
        "gauge",
        "Data plane version (value is always 1).",
    );
    o.sample("vrouter_info", &[("version", &info.version)], 1);

    let ports = stats.ports();
    type PortField = fn(&super::PortCounters) -> u64;
    let port_metrics: [(&str, &str, PortField); 9] = [
        ("vrouter_port_rx_packets_total", "Packets received.", |p| {
            p.rx_packets
        }),
        ("vrouter_port_rx_bytes_total", "Bytes received.", |p| {
            p.rx_bytes
        }),
        ("vrouter_port_tx_packets_total", "Packets sent.", |p| {
            p.tx_packets
        }),
        ("vrouter_port_tx_bytes_total", "Bytes sent.", |p| p.tx_bytes),
        (
            "vrouter_port_rx_missed_total",
            "Packets dropped by the device for lack of RX descriptors.",
            |p| p.rx_missed,
        ),
        ("vrouter_port_rx_errors_total", "Receive errors.", |p| {
            p.rx_errors
        }),
        ("vrouter_port_tx_errors_total", "Transmit errors.", |p| {
            p.tx_errors
        }),
        (
            "vrouter_port_tx_dropped_total",
            "Packets the device refused for transmission.",
            |p| p.tx_dropped,
        ),
        ("vrouter_port_link_up", "Link state (1 up, 0 down).", |p| {
            u64::from(p.link_up)
        }),
    ];
    for (name, help, f) in port_metrics {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        o.family(name, kind, help);
        for p in &ports {
            let id = p.port.to_string();
            o.sample(name, &[("port", &id), ("name", &p.name)], f(p));
        }
    }

    let workers = stats.workers();
    type WorkerField = fn(&super::WorkerCounters) -> u64;
    let worker_metrics: [(&str, &str, WorkerField); 6] = [
        (
            "vrouter_worker_iterations_total",
            "Poll loop iterations.",
            |w| w.iterations,
        ),
        (
            "vrouter_worker_busy_iterations_total",
            "Poll loop iterations that received packets.",
            |w| w.busy_iterations,
        ),
        (
            "vrouter_worker_busy_cycles_total",
            "TSC cycles spent in busy iterations.",
            |w| w.busy_cycles,
        ),
        (
            "vrouter_worker_rx_packets_total",
            "Packets received by the worker.",
            |w| w.rx_packets,
        ),
        (
            "vrouter_worker_tx_packets_total",
            "Packets sent by the worker.",
            |w| w.tx_packets,
        ),
        (
            "vrouter_worker_tx_dropped_total",
            "Packets the devices refused from the worker.",
            |w| w.tx_dropped,
        ),
    ];
    for (name, help, f) in worker_metrics {
        o.family(name, "counter", help);
        for w in &workers {
            let id = w.lcore.to_string();
            o.sample(name, &[("lcore", &id)], f(w));
        }
    }

    o.family(
        "vrouter_drops_total",
        "counter",
        "Packets dropped, by reason.",
    );
    for (reason, n) in stats.drops() {
        o.sample("vrouter_drops_total", &[("reason", &reason)], n);
    }

    if let Some(t) = &flows {
        let s = t.stats();
        o.family(
            "vrouter_flow_table_entries",
            "gauge",
            "Flows in the flow table.",
        );
        o.sample("vrouter_flow_table_entries", &[], s.len as u64);
        o.family(
            "vrouter_flow_table_capacity",
            "gauge",
            "Capacity of the flow table.",
        );
        o.sample("vrouter_flow_table_capacity", &[], s.capacity as u64);
        for (name, help, v) in [
            (
                "vrouter_flow_table_inserted_total",
                "Flows inserted.",
                s.inserted,
            ),
            (
                "vrouter_flow_table_removed_total",
                "Flows removed (explicitly or by ageing).",
                s.removed,
            ),
            (
                "vrouter_flow_table_aged_total",
                "Flows removed by ageing.",
                s.aged,
            ),
            (
                "vrouter_flow_table_full_total",
                "Inserts refused because the table or bucket was full.",
                s.full_table + s.full_bucket,
            ),
        ] {
            o.family(name, "counter", help);
            o.sample(name, &[], v);
        }
    }

    if let Inner::Server(s) = &src.0 {
        let (generation, tables) = s.tables();
        o.family(
            "vrouter_fib_generation",
            "counter",
            "Batches applied to the forwarding state.",
        );
        o.sample("vrouter_fib_generation", &[], generation);
        o.family(
            "vrouter_table_entries",
            "gauge",
            "Objects in a forwarding table.",
        );
        for t in &tables {
            o.sample("vrouter_table_entries", &[("table", &t.name)], t.used);
        }
        o.family(
            "vrouter_table_capacity",
            "gauge",
            "Capacity of a forwarding table (0: unbounded).",
        );
        for t in &tables {
            o.sample("vrouter_table_capacity", &[("table", &t.name)], t.capacity);
        }
    }
    o.0
}

/// A running exporter.
#[derive(Debug)]
pub struct Exporter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Binds `addr` and serves `/metrics` from `src` on a new thread.
    pub fn start(addr: SocketAddr, src: Source) -> Result<Self, ControlError> {
        let l = TcpListener::bind(addr).map_err(|source| ControlError::Bind {
            path: addr.to_string(),
            source,
        })?;
        let bound = l.local_addr().map_err(|source| ControlError::Bind {
            path: addr.to_string(),
            source,
        })?;
        l.set_nonblocking(true)
            .map_err(|source| ControlError::Bind {
                path: addr.to_string(),
                source,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vrouter-metrics".into())
            .spawn(move || serve(&l, &src, &flag))
            .map_err(ControlError::Runtime)?;
        Ok(Self {
            addr: bound,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and joins the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.halt();
    }
}

fn serve(l: &TcpListener, src: &Source, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((c, _)) => {
                let src = src.clone();
                // One short-lived thread per connection: a client that stalls holds
                // only its own thread, until the read timeout.
                let _ = std::thread::Builder::new()
                    .name("vrouter-metrics-conn".into())
                    .spawn(move || {
                        let _ = answer(c, &src);
                    });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn answer(c: TcpStream, src: &Source) -> io::Result<()> {
    c.set_nonblocking(false)?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut r = BufReader::new(c.try_clone()?);
    let mut line = String::new();
    r.by_ref().take(8192).read_line(&mut line)?;
    // Skip the headers.
    let mut h = String::new();
    for _ in 0..100 {
        h.clear();
        if r.by_ref().take(8192).read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(src),
        ),
        ("GET", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "vrouter-dp metrics: /metrics\n".to_owned(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        ),
    };
    let mut w = c;
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
