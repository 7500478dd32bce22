//! The running data plane: config -> EAL -> mempools -> ports -> pinned workers ->
//! periodic stats -> ordered shutdown.
//!
//! For now every worker runs the L2 cross-connect ([`crate::worker::XconnectWorker`]):
//! ports pair up 0<->1, 2<->3, ...; each RX queue of each port is polled by one worker
//! (queues spread round-robin over the workers) and every worker has its own TX queue
//! on every port, so TX needs no lock.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pmd_config::Config;
use thiserror::Error;

pub mod demo;
pub mod netns;
pub mod ports;
pub mod reload;
pub mod static_state;

use crate::control::{ControlConfig, ControlPlane, DataPlaneInfo, LiveStats, PortCounters, Server};
use crate::dpdk::{self, dev, lcore, Eal, LcoreId, Mempool, Port, PortConf, PortStats, SocketId};
use crate::fib::rcu::Publisher;
use crate::fib::Fib;
use crate::pipeline::{DropReason, Pipeline};
use crate::worker::commands::{self, QueueSet};
use crate::worker::pipeline::Clock;
use crate::worker::stage::{self, Stage, StageCounters, StageProc, StageTally, StageWorker};
use crate::worker::stats::MAX_PORTS;
use crate::worker::xconnect::XconnectLeg;
use crate::worker::{
    PipelineWorker, SharedCounters, WorkerStats, WorkerStatsSnapshot, XconnectWorker,
};
use flow_table::FlowTable;
use netns::NetnsLink;
use ports::{PodPorts, WorkerHandle};
use static_state::PortFacts;

/// Errors that stop the data plane from starting.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// EAL arguments could not be derived from the config.
    #[error("EAL arguments: {0}")]
    EalArgs(#[from] pmd_config::EalError),
    /// A DPDK call failed.
    #[error(transparent)]
    Dpdk(#[from] dpdk::DpdkError),
    /// The agent API server could not start.
    #[error("agent API: {0}")]
    Control(#[from] crate::control::ControlError),
    /// The config asks for something this build cannot do.
    #[error("config: {field}: {reason}")]
    Config {
        /// The field path.
        field: String,
        /// Why.
        reason: String,
    },
}

/// How long to run and what to print.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop after this long (None: until the stop flag is set).
    pub duration: Option<Duration>,
    /// Stop once packets were seen and then nothing arrived for this long
    /// (for finite inputs such as a pcap without `infinite_rx`).
    pub until_idle: Option<Duration>,
    /// Interval of the periodic stats line (None: no periodic lines).
    pub stats_interval: Option<Duration>,
    /// Print the start-up binding table and the periodic lines.
    pub verbose: bool,
    /// `/` on a real host; a fake tree in tests (VF resolution).
    pub sysfs_root: std::path::PathBuf,
    /// Serve the agent API (and telemetry) when the config enables it
    /// (`control.enabled`; pipeline mode only).
    pub control_api: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            duration: None,
            until_idle: None,
            stats_interval: Some(Duration::from_secs(2)),
            verbose: true,
            sysfs_root: "/".into(),
            control_api: true,
        }
    }
}

/// Final figures of one port.
#[derive(Debug, Clone)]
pub struct PortSummary {
    /// Config name.
    pub name: String,
    /// DPDK device name.
    pub device: String,
    /// Device counters at the end.
    pub stats: PortStats,
    /// Packets the workers sent out of this port.
    pub worker_tx: u64,
    /// Packets the device refused for TX (freed by the workers).
    pub tx_dropped: u64,
    /// Packets the workers received from this port.
    pub worker_rx: u64,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Wall time from the workers' launch to their stop.
    pub elapsed: Duration,
    /// Per-port figures, in config order.
    pub ports: Vec<PortSummary>,
    /// Per-worker figures: lcore and counters.
    pub workers: Vec<(u32, WorkerStatsSnapshot)>,
    /// TSC frequency (for cycles/packet).
    pub tsc_hz: u64,
    /// Pipeline drops by reason (non-zero ones), summed over workers.
    pub drops: Vec<(String, u64)>,
    /// Flows in the flow table at the end (pipeline mode).
    pub flows: Option<usize>,
    /// Stage mode: the stage and its outcomes summed over the workers (none for
    /// `full`, whose outcomes are the pipeline's counters).
    pub stage: Option<(Stage, Option<StageTally>)>,
}

impl Summary {
    /// Total packets forwarded (accepted by TX) per second, in millions.
    pub fn tx_mpps(&self) -> f64 {
        let tx: u64 = self.ports.iter().map(|p| p.worker_tx).sum();
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            tx as f64 / s / 1e6
        } else {
            0.0
        }
    }

    /// The summary table printed at exit.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let secs = self.elapsed.as_secs_f64();
        let _ = writeln!(o, "=== vrouter-dp summary: {secs:.1} s ===");
        let _ = writeln!(
            o,
            "{:<10} {:<24} {:>14} {:>14} {:>12} {:>12} {:>10} {:>10}",
            "port",
            "device",
            "rx_packets",
            "tx_packets",
            "rx_missed",
            "tx_dropped",
            "rx_Mpps",
            "tx_Mpps"
        );
        for p in &self.ports {
            let _ = writeln!(
                o,
                "{:<10} {:<24} {:>14} {:>14} {:>12} {:>12} {:>10.2} {:>10.2}",
                p.name,
                truncate(&p.device, 24),
                p.worker_rx,
                p.worker_tx,
                p.stats.rx_missed,
                p.tx_dropped,
                rate(p.worker_rx, secs),
                rate(p.worker_tx, secs),
            );
        }
        for (lc, w) in &self.workers {
            let busy = if w.iterations > 0 {
                100.0 * w.busy_iterations as f64 / w.iterations as f64
            } else {
                0.0
            };
            let _ = writeln!(
                o,
                "worker lcore {lc}: rx {} tx {} tx_dropped {} busy {busy:.1}% cycles/packet {:.1}",
                w.rx_total(),
                w.tx_total(),
                w.tx_dropped_total(),
                w.cycles_per_packet()
            );
        }
        for (r, n) in &self.drops {
            let _ = writeln!(o, "drop {r}: {n}");
        }
        if let Some(f) = self.flows {
            let _ = writeln!(o, "flows in table: {f}");
        }
        if let Some((st, t)) = &self.stage {
            o.push_str(&stage::render_totals(*st, t.as_ref(), &self.workers));
        }
        let _ = writeln!(o, "total forwarded: {:.2} Mpps", self.tx_mpps());
        o
    }
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs / 1e6
    } else {
        0.0
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Initialises EAL for `cfg` (the one EAL of this process).
pub fn init_eal(cfg: &Config, program: &str, sysfs_root: &Path) -> Result<Eal, RuntimeError> {
    let args = pmd_config::eal_args_with_root(cfg, program, sysfs_root)?;
    Ok(Eal::init(&args)?)
}

/// A port the runtime opens: a config port (created by EAL from `--vdev` / `-a`) or
/// a vhost-user socket (hot-plugged as a `net_vhost` device after EAL start).
#[derive(Debug, Clone)]
pub struct RuntimePort {
    /// The name interfaces refer to.
    pub name: String,
    /// The DPDK device name.
    pub device: String,
    /// Devargs to hot-plug the device with (vhost-user), `None` for EAL-created ones.
    pub hotplug: Option<String>,
    /// RX queues.
    pub rx_queues: u16,
    /// TX queues requested (raised to the worker count).
    pub tx_queues: u16,
    /// RX descriptors.
    pub rx_desc: u16,
    /// TX descriptors.
    pub tx_desc: u16,
    /// MTU.
    pub mtu: Option<u16>,
}

/// The ports of a config, in DPDK creation order: config ports (bond members
/// excepted: the bonding driver owns them), the bond, then vhost-user ones.
pub fn runtime_ports(cfg: &Config, sysfs_root: &Path) -> Result<Vec<RuntimePort>, RuntimeError> {
    let names = pmd_config::device_names(cfg, sysfs_root)?;
    let member = |name: &str| {
        cfg.bond
            .as_ref()
            .is_some_and(|b| b.members.iter().any(|m| m == name))
    };
    let mut v: Vec<RuntimePort> = cfg
        .ports
        .iter()
        .zip(names)
        .filter(|(pc, _)| !member(&pc.name))
        .map(|(pc, device)| RuntimePort {
            name: pc.name.clone(),
            device,
            hotplug: None,
            rx_queues: pc.rx_queues,
            tx_queues: pc.tx_queues,
            rx_desc: pc.rx_desc,
            tx_desc: pc.tx_desc,
            mtu: pc.mtu,
        })
        .collect();
    if let (Some(b), Some(device)) = (&cfg.bond, pmd_config::bond_device_name(cfg)) {
        // Queues and descriptors as the first member's; the bond sets up its members.
        let first = b
            .members
            .first()
            .and_then(|m| cfg.ports.iter().find(|p| &p.name == m));
        v.push(RuntimePort {
            name: b.name.clone(),
            device,
            hotplug: None,
            rx_queues: first.map_or(1, |p| p.rx_queues),
            tx_queues: first.map_or(1, |p| p.tx_queues),
            rx_desc: first.map_or(1024, |p| p.rx_desc),
            tx_desc: first.map_or(1024, |p| p.tx_desc),
            mtu: first.and_then(|p| p.mtu),
        });
    }
    for (i, vh) in cfg.vhost_user.iter().enumerate() {
        let device = format!("net_vhost_vr{i}");
        let client = matches!(vh.mode, pmd_config::VhostMode::Client);
        v.push(RuntimePort {
            name: vh.name.clone(),
            hotplug: Some(format!(
                "{device},iface={},client={},queues={}",
                vh.path.display(),
                u8::from(client),
                vh.queues.max(1)
            )),
            device,
            rx_queues: vh.queues.max(1),
            tx_queues: vh.queues.max(1),
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
        });
    }
    Ok(v)
}

/// Applies a LACP bond's `lacp_rate` to its configured, not yet started port (see
/// [`dpdk::bond`] for what DPDK lets `fast` mean; `slow`, the default, is DPDK's
/// own timing) and reads the timers back from DPDK. Returns the rate and the timers
/// for the start-up line; `None` for a bond of another mode.
fn apply_lacp_rate(
    port: dpdk::PortId,
    b: &pmd_config::Bond,
) -> Result<Option<String>, RuntimeError> {
    if b.mode != pmd_config::BondMode::Lacp {
        return Ok(None);
    }
    let (name, timers) = match b.lacp_rate.unwrap_or(pmd_config::LacpRate::Slow) {
        pmd_config::LacpRate::Slow => ("slow", dpdk::bond::LacpTimers::SLOW),
        pmd_config::LacpRate::Fast => ("fast", dpdk::bond::LacpTimers::FAST),
    };
    let field = |e: dpdk::DpdkError| RuntimeError::Config {
        field: "bond.lacp_rate".into(),
        reason: format!("{name}: {e}"),
    };
    dpdk::bond::set_lacp_timers(port, &timers).map_err(field)?;
    let applied = dpdk::bond::lacp_timers(port).map_err(field)?;
    Ok(Some(format!("lacp rate {name} ({applied})")))
}

/// How long start-up waits for a bond's first member link.
pub const BOND_LINK_WAIT: Duration = Duration::from_secs(3);

/// Flow idle timeout (ms of the flow clock) and the shorter one for closed TCP flows.
pub const FLOW_AGEING: flow_table::AgeingTimeouts = flow_table::AgeingTimeouts {
    idle: 180_000,
    tcp_closed: 10_000,
};

enum Plan {
    Xconnect(XconnectWorker),
    Pipeline(Box<PipelineWorker>),
    Stage(Box<StageWorker>),
}

/// Runs the data plane on an initialised EAL until `stop` is set, the duration
/// passes or the input goes idle; returns the final figures. Ports are stopped and
/// closed and mempools freed before returning.
///
/// With no `interfaces` in the config the workers run the L2 cross-connect (ports
/// paired 0<->1, 2<->3, ...: the io-forwarding baseline); with interfaces they run
/// the forwarding pipeline over the config's static state.
pub fn run(
    eal: &Eal,
    cfg: &Config,
    opts: &RunOptions,
    stop: Arc<AtomicBool>,
) -> Result<Summary, RuntimeError> {
    run_reloadable(eal, cfg, opts, stop, None)
}

/// [`run`], plus re-reading the config file's static state each time
/// `reload.flag` is set (see [`reload`]). In pipeline mode with the agent API on,
/// pod ports can be added and removed through the API while it runs
/// ([`ports::PodPorts`]); they are removed again before the workers stop.
pub fn run_reloadable(
    eal: &Eal,
    cfg: &Config,
    opts: &RunOptions,
    stop: Arc<AtomicBool>,
    reload: Option<reload::Reload>,
) -> Result<Summary, RuntimeError> {
    run_stage(eal, cfg, opts, stop, reload, None)
}

/// [`run_reloadable`] in stage mode: with `Some(stage)` the workers run only that
/// part of the pipeline ([`crate::worker::stage`]) on the same ports and state, the
/// periodic line is the stage line (per-port Mpps, cycles per packet) and the
/// summary ends with the stage totals. Every stage but `io` needs the config's
/// interfaces; `io` without them is the cross-connect.
pub fn run_stage(
    eal: &Eal,
    cfg: &Config,
    opts: &RunOptions,
    stop: Arc<AtomicBool>,
    reload: Option<reload::Reload>,
    stage: Option<Stage>,
) -> Result<Summary, RuntimeError> {
    let workers: Vec<LcoreId> = cfg.cores.workers.iter().map(|&c| LcoreId(c)).collect();
    for (i, w) in workers.iter().enumerate() {
        if !eal.lcore_enabled(*w) || *w == eal.main_lcore() {
            return Err(RuntimeError::Config {
                field: format!("cores.workers[{i}]"),
                reason: format!("lcore {} is not an enabled EAL worker lcore", w.0),
            });
        }
    }
    if workers.is_empty() {
        return Err(RuntimeError::Config {
            field: "cores.workers".into(),
            reason: "at least one worker core is needed".into(),
        });
    }
    // The workers stop on their own flag, after pod ports are gone: removing a pod
    // port needs the workers' acknowledgements.
    let worker_stop = Arc::new(AtomicBool::new(false));
    let rt = runtime_ports(cfg, &opts.sysfs_root)?;
    if rt.len() > MAX_PORTS {
        return Err(RuntimeError::Config {
            field: "ports".into(),
            reason: format!("at most {MAX_PORTS} ports (vhost-user included) are supported"),
        });
    }
    let names: Vec<String> = rt.iter().map(|p| p.device.clone()).collect();
    let mut ports = Vec::with_capacity(rt.len());
    for p in &rt {
        ports.push(match &p.hotplug {
            Some(devargs) => dev::probe(devargs)?,
            None => Port::by_name(&p.device)?,
        });
    }

    // One mempool per NUMA socket of the workers and ports.
    let mut sockets = BTreeSet::new();
    for w in &workers {
        sockets.insert(eal.lcore_socket(*w).0);
    }
    for p in &ports {
        if let Some(s) = p.socket() {
            sockets.insert(s);
        }
    }
    let mut pools: Vec<(u32, Arc<Mempool>)> = Vec::new();
    for s in &sockets {
        pools.push((
            *s,
            Arc::new(Mempool::for_socket(
                "vr_mbuf",
                SocketId(*s),
                cfg.memory.mbufs_per_pool,
                cfg.memory.mbuf_cache,
            )?),
        ));
    }
    let pool_for = |socket: u32| -> Result<Arc<Mempool>, RuntimeError> {
        pools
            .iter()
            .find(|(s, _)| *s == socket)
            .or(pools.first())
            .map(|(_, m)| Arc::clone(m))
            .ok_or_else(|| RuntimeError::Config {
                field: "memory".into(),
                reason: "no mempool could be created".into(),
            })
    };

    // Configure and start the ports: every worker gets a TX queue on every port
    // that has enough of them; on a device with fewer TX queues than workers
    // (e.g. net_pcap with one tx_pcap), the workers beyond its queues count what
    // they would send there as TX drops.
    let n_workers = workers.len() as u16;
    // A LACP bond's rate, as DPDK reports it back (start-up line).
    let mut bond_lacp: Option<String> = None;
    for (p, pc) in ports.iter_mut().zip(&rt) {
        let socket = p.socket().unwrap_or_else(|| eal.lcore_socket(workers[0]).0);
        let pool = pool_for(socket)?;
        let max_tx = p.max_queues().map_or(u16::MAX, |(_, t)| t.max(1));
        let tx_queues = pc.tx_queues.max(n_workers).min(max_tx);
        if tx_queues < n_workers && opts.verbose {
            println!(
                "port {}: the device has {max_tx} TX queue(s) for {n_workers} workers; \
                 workers {tx_queues}.. cannot send on it (counted as tx_dropped)",
                pc.name
            );
        }
        let conf = PortConf {
            rx_queues: pc.rx_queues.max(1),
            tx_queues,
            rx_desc: pc.rx_desc,
            tx_desc: pc.tx_desc,
            mtu: pc.mtu,
            promiscuous: true,
        };
        p.configure(&conf, &pool)?;
        if let Some(b) = cfg.bond.as_ref().filter(|b| b.name == pc.name) {
            bond_lacp = apply_lacp_rate(p.id(), b)?;
        }
        p.start()?;
        // A bond sends nothing until its driver has seen a member's link come up
        // (it polls them): wait for that, bounded, before traffic starts.
        if cfg.bond.as_ref().is_some_and(|b| b.name == pc.name) {
            let t0 = Instant::now();
            while !p.link().is_ok_and(|l| l.up) && t0.elapsed() < BOND_LINK_WAIT {
                std::thread::sleep(Duration::from_millis(10));
            }
            if opts.verbose && !p.link().is_ok_and(|l| l.up) {
                println!(
                    "port {}: no member link up after {:?}; the bond sends nothing until one is",
                    pc.name, BOND_LINK_WAIT
                );
            }
        }
    }

    // Assign RX queues to workers round-robin.
    let mut rx_plan: Vec<Vec<(usize, crate::dpdk::RxQueue)>> =
        workers.iter().map(|_| Vec::new()).collect();
    let mut next = 0usize;
    for (pi, pc) in rt.iter().enumerate() {
        for q in 0..pc.rx_queues.max(1) {
            let w = next % workers.len();
            next += 1;
            if let Some(rxq) = ports[pi].rx_queue(q) {
                rx_plan[w].push((pi, rxq));
            }
        }
    }
    let mut binding = String::new();
    let pipeline_mode = !cfg.interfaces.is_empty();
    if let Some(st) = stage.filter(|s| s.needs_state() && !pipeline_mode) {
        return Err(RuntimeError::Config {
            field: "interfaces".into(),
            reason: format!("stage {st} needs the config's interfaces and forwarding state"),
        });
    }
    let mut stage_counters: Vec<Arc<StageCounters>> = Vec::new();
    let port_ids: Vec<u16> = ports.iter().map(|p| p.id().0).collect();
    let mut publisher = None;
    let mut fib_builder = None;
    let mut flows = None;
    let clock = Clock {
        start: dpdk::rdtsc(),
        ticks_per_ms: (dpdk::tsc_hz() / 1000).max(1),
    };
    let mut counters: Vec<Arc<SharedCounters>> = Vec::new();
    let mut static_facts: Vec<PortFacts> = Vec::new();
    let mut static_batch = Vec::new();
    let mut plans = Vec::with_capacity(workers.len());
    let mut worker_handles = Vec::with_capacity(workers.len());
    if pipeline_mode {
        let facts: Vec<PortFacts> = ports
            .iter()
            .zip(&rt)
            .map(|(p, pc)| PortFacts {
                name: pc.name.clone(),
                port_id: p.id().0,
                mac: p.mac().unwrap_or([0x02, 0, 0, 0, 0, p.id().0 as u8]),
                driver: p.driver_name(),
            })
            .collect();
        let batch = static_state::updates(cfg, &facts).map_err(|e| RuntimeError::Config {
            field: e.field.clone(),
            reason: e.reason.clone(),
        })?;
        let mut fib = Fib::new(static_state::fib_config());
        let snap = fib.apply(&batch).map_err(|e| RuntimeError::Config {
            field: "static state".into(),
            reason: e.to_string(),
        })?;
        let publ = Publisher::new(snap);
        fib_builder = Some(fib);
        static_facts = facts;
        static_batch = batch;
        let table = Arc::new(
            FlowTable::with_capacity(cfg.flows.capacity as usize).map_err(|e| {
                RuntimeError::Config {
                    field: "flow table".into(),
                    reason: e.to_string(),
                }
            })?,
        );
        let max_port = ports
            .iter()
            .map(|p| usize::from(p.id().0))
            .max()
            .unwrap_or(0);
        if max_port >= MAX_PORTS {
            return Err(RuntimeError::Config {
                field: "ports".into(),
                reason: format!("DPDK port id {max_port} is beyond {}", MAX_PORTS - 1),
            });
        }
        for (wi, (lc, rxs)) in workers.iter().zip(rx_plan).enumerate() {
            let tx: Vec<crate::dpdk::TxQueue> = ports
                .iter_mut()
                .filter_map(|p| p.tx_queue(wi as u16))
                .collect();
            for (pi, rxq) in &rxs {
                let _ = writeln!(
                    binding,
                    "  port {} ({}) rxq {} -> worker lcore {} (pipeline)",
                    rt[*pi].name,
                    names[*pi],
                    rxq.queue().0,
                    lc.0
                );
            }
            let c = Arc::new(SharedCounters::default());
            counters.push(Arc::clone(&c));
            let n_rx = rxs.len();
            let queues =
                QueueSet::with_queues(rxs.into_iter().map(|(_, q)| q), tx).map_err(|_| {
                    RuntimeError::Config {
                        field: "ports".into(),
                        reason: format!(
                            "more than {} RX queues on one worker",
                            commands::MAX_RX_QUEUES
                        ),
                    }
                })?;
            if let Some(st) = stage.filter(|s| *s != Stage::Full) {
                let mut reader = publ.reader();
                let outputs = stage::implied_outputs(Some(&**reader.load()), &port_ids);
                if let Some(proc) = StageProc::new(st, outputs) {
                    let sc = Arc::new(StageCounters::default());
                    stage_counters.push(Arc::clone(&sc));
                    plans.push(Plan::Stage(Box::new(StageWorker {
                        queues,
                        proc,
                        fib: reader,
                        flows: Arc::clone(&table),
                        stats: Arc::new(WorkerStats::default()),
                        counters: sc,
                        clock,
                        stop: Arc::clone(&worker_stop),
                    })));
                    continue;
                }
            }
            let (ctl, end) = commands::channel();
            worker_handles.push(WorkerHandle {
                ctl,
                rx_queues: n_rx,
            });
            plans.push(Plan::Pipeline(Box::new(PipelineWorker {
                queues,
                commands: Some(end),
                fib: publ.reader(),
                flows: Arc::clone(&table),
                pipeline: Pipeline::new(usize::from(static_state::fib_config().max_vifs)),
                pool: pool_for(eal.lcore_socket(*lc).0)?,
                stats: Arc::new(WorkerStats::default()),
                counters: c,
                clock,
                stop: Arc::clone(&worker_stop),
            })));
        }
        publisher = Some(publ);
        flows = Some(table);
    } else {
        for (wi, (lc, rxs)) in workers.iter().zip(rx_plan).enumerate() {
            let mut legs = Vec::new();
            for (pi, rxq) in rxs {
                let partner = if pi % 2 == 0 { pi + 1 } else { pi - 1 };
                let partner = if partner < ports.len() { partner } else { pi };
                let _ = writeln!(
                    binding,
                    "  port {} ({}) rxq {} -> worker lcore {} -> port {} ({})",
                    rt[pi].name,
                    names[pi],
                    rxq.queue().0,
                    lc.0,
                    rt[partner].name,
                    names[partner]
                );
                legs.push(XconnectLeg {
                    rx: rxq,
                    rx_port_index: pi,
                    tx_port_index: partner,
                });
            }
            let tx = ports.iter_mut().map(|p| p.tx_queue(wi as u16)).collect();
            plans.push(Plan::Xconnect(XconnectWorker {
                legs,
                tx,
                stats: Arc::new(WorkerStats::default()),
                stop: Arc::clone(&worker_stop),
            }));
        }
    }
    if opts.verbose {
        println!("{}", dpdk::version());
        for (p, pc) in ports.iter().zip(&rt) {
            let link = p
                .link()
                .map(|l| if l.up { "up" } else { "down" })
                .unwrap_or("?");
            let lacp = match (&bond_lacp, &cfg.bond) {
                (Some(l), Some(b)) if b.name == pc.name => format!(", {l}"),
                _ => String::new(),
            };
            println!(
                "port {} = ethdev {} ({}, driver {}), link {}, offloads {:?}{lacp}",
                pc.name,
                p.id().0,
                p.name(),
                p.driver_name(),
                link,
                p.caps()
            );
        }
        if pipeline_mode {
            println!(
                "forwarding pipeline: {} interface(s), {} next-hop(s), {} route(s), flow table {} entries{}",
                cfg.interfaces.len(),
                cfg.nexthops.len(),
                cfg.routes.len(),
                cfg.flows.capacity,
                flows.as_ref().map_or_else(String::new, |t| {
                    // Tables of up to 8k flows map under 1 MiB.
                    let (n, unit) = match t.memory_bytes() {
                        b if b >= 1 << 20 => (b >> 20, "MiB"),
                        b => (b >> 10, "KiB"),
                    };
                    format!(" ({n} {unit}, {})", t.backing())
                })
            );
        } else {
            println!("no interfaces configured: L2 cross-connect of port pairs");
        }
        if let Some(st) = stage {
            println!("stage mode: {st}");
        }
        print!("{binding}");
    }

    // Kernel pods' taps go into their namespaces once configured and started.
    netns::attach_pod_ports(cfg, opts.verbose)?;

    // Launch the workers.
    let mut handles = Vec::new();
    let mut stats = Vec::new();
    for (plan, lc) in plans.into_iter().zip(&workers) {
        match plan {
            Plan::Xconnect(w) => {
                stats.push((lc.0, Arc::clone(&w.stats)));
                handles.push(lcore::launch(eal, *lc, move || w.run())?);
            }
            Plan::Pipeline(w) => {
                stats.push((lc.0, Arc::clone(&w.stats)));
                handles.push(lcore::launch(eal, *lc, move || w.run())?);
            }
            Plan::Stage(w) => {
                stats.push((lc.0, Arc::clone(&w.stats)));
                handles.push(lcore::launch(eal, *lc, move || w.run())?);
            }
        }
    }
    // Declared after the join handles, so dropped before them on an early return:
    // the workers are told to stop before anything waits for them.
    let _stop_workers = StopOnDrop(Arc::clone(&worker_stop));
    let start = Instant::now();
    let tsc_hz = dpdk::tsc_hz();

    // The agent API takes over the forwarding state: it applies batches, publishes
    // snapshots and reclaims old ones from then on.
    let mut live = None;
    let mut server = None;
    let mut pods: Option<Arc<PodPorts>> = None;
    // Stage workers take no queue commands: no agent API (pod ports) with them.
    if opts.control_api && cfg.control.enabled && stage_counters.is_empty() {
        if let (Some(fib), Some(publ)) = (fib_builder.take(), publisher.take()) {
            let l = Arc::new(LiveStats::new(
                DataPlaneInfo {
                    version: env!("CARGO_PKG_VERSION").into(),
                    build: dpdk::version(),
                    control_core: cfg.cores.control,
                    worker_cores: workers.iter().map(|w| w.0).collect(),
                    tsc_hz,
                },
                stats.clone(),
                counters.clone(),
            ));
            let pod_ports = Arc::new(PodPorts::new(
                std::mem::take(&mut worker_handles),
                pool_for(eal.lcore_socket(workers[0]).0)?,
                ports
                    .iter()
                    .zip(&rt)
                    .map(|(p, r)| (p.id().0, r.name.clone())),
                "pod",
            ));
            let mut plane = ControlPlane::new(fib, publ, l.clone(), pod_ports.clone());
            if let Some(t) = flows.as_ref() {
                plane = plane.with_flows(Arc::clone(t));
            }
            let h = Server::start(ControlConfig::from_config(cfg)?, plane)?;
            if opts.verbose {
                println!("agent API on {}", h.socket().display());
            }
            server = Some(h);
            live = Some(l);
            pods = Some(pod_ports);
        }
    }

    // Control loop: periodic stats, RCU reclamation, flow ageing, stop conditions.
    let tick = Duration::from_millis(100);
    // Config taps moved into a namespace report their link as seen there.
    let mut links: Vec<Option<NetnsLink>> = rt
        .iter()
        .map(|r| netns::pod_netns_of(cfg, &r.name).map(|(_, s)| NetnsLink::new(s.netns, s.name)))
        .collect();
    let mut last_print = start;
    let mut last_age = start;
    let mut last_rx_total = 0u64;
    let mut last_rx_change = start;
    let mut prev: Vec<WorkerStatsSnapshot> = stats.iter().map(|(_, s)| s.snapshot()).collect();
    let mut pod_counters: Vec<PortCounters> = Vec::new();
    loop {
        std::thread::sleep(tick);
        let now = Instant::now();
        if let Some(p) = publisher.as_mut() {
            p.reclaim();
        }
        if let Some(l) = live.as_ref() {
            let snaps: Vec<WorkerStatsSnapshot> = stats.iter().map(|(_, s)| s.snapshot()).collect();
            let mut all = port_counters(&rt, &ports, &mut links, &snaps, now);
            if let Some(c) = pods.as_ref().and_then(|p| p.try_counters(&snaps)) {
                pod_counters = c;
            }
            all.extend(pod_counters.iter().cloned());
            l.set_ports(all);
        }
        if let Some(r) = reload.as_ref() {
            if r.flag.swap(false, Ordering::Relaxed) {
                let res = reload::load(&r.path, &static_facts, &static_batch).and_then(
                    |(next, batch)| {
                        let applied = match (server.as_ref(), fib_builder.as_mut()) {
                            (Some(h), _) => h.apply(&batch),
                            (None, Some(fib)) => {
                                // Free what the workers have left first, so that
                                // the batch edits the previous version in place.
                                if let Some(p) = publisher.as_mut() {
                                    p.reclaim();
                                }
                                Some(fib.apply(&batch).map(|snap| {
                                    let g = snap.generation();
                                    if let Some(p) = publisher.as_mut() {
                                        p.publish(snap);
                                    }
                                    g
                                }))
                            }
                            (None, None) => None,
                        };
                        match applied {
                            Some(Ok(g)) => Ok((next, batch.len(), g)),
                            Some(Err(e)) => Err(reload::ReloadError::Apply(e.to_string())),
                            None => Err(reload::ReloadError::NoFib),
                        }
                    },
                );
                match res {
                    Ok((next, n, g)) => {
                        static_batch = next;
                        println!(
                            "vrouter-dp: reloaded {}: {n} change(s) applied, generation {g}",
                            r.path.display()
                        );
                    }
                    Err(e) => eprintln!("vrouter-dp: reload refused, nothing changed: {e}"),
                }
            }
        }
        if let Some(t) = flows.as_ref() {
            if now.duration_since(last_age) >= Duration::from_secs(1) {
                t.age(clock.ms(dpdk::rdtsc()), &FLOW_AGEING);
                last_age = now;
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(d) = opts.duration {
            if now.duration_since(start) >= d {
                break;
            }
        }
        let snaps: Vec<WorkerStatsSnapshot> = stats.iter().map(|(_, s)| s.snapshot()).collect();
        let rx_total: u64 = snaps.iter().map(WorkerStatsSnapshot::rx_total).sum();
        if rx_total != last_rx_total {
            last_rx_total = rx_total;
            last_rx_change = now;
        }
        if let Some(idle) = opts.until_idle {
            if rx_total > 0 && now.duration_since(last_rx_change) >= idle {
                break;
            }
        }
        if let Some(iv) = opts.stats_interval {
            if opts.verbose && now.duration_since(last_print) >= iv {
                let dt = now.duration_since(last_print).as_secs_f64();
                let mut rows: Vec<(usize, String, u64)> = ports
                    .iter()
                    .zip(&rt)
                    .zip(links.iter_mut())
                    .enumerate()
                    .map(|(pi, ((p, pc), l))| {
                        let missed = p.stats().map(|s| s.rx_missed).unwrap_or(0);
                        let link = netns::link_up(p, l.as_mut(), now);
                        let name = format!("{} link {}", pc.name, if link { "up" } else { "down" });
                        (pi, name, missed)
                    })
                    .collect();
                rows.extend(pod_counters.iter().map(|c| {
                    let link = if c.link_up { "up" } else { "down" };
                    let name = format!("{} link {link}", c.name);
                    (usize::from(c.port), name, c.rx_missed)
                }));
                let in_use: u64 = pools.iter().map(|(_, m)| u64::from(m.in_use())).sum();
                let since = now.duration_since(start);
                match stage {
                    Some(st) => {
                        let names: Vec<(usize, String)> =
                            rows.into_iter().map(|(pi, n, _)| (pi, n)).collect();
                        let t = stage_tally(&stage_counters);
                        let line =
                            stage::stats_line(st, since, &names, &prev, &snaps, dt, t.as_ref());
                        println!("{line}");
                    }
                    None => print_stats_line(&rows, &prev, &snaps, dt, since, in_use),
                }
                last_print = now;
                prev = snaps;
            }
        }
    }
    // No more API calls; pod ports go while the workers still answer commands.
    if let Some(h) = server.take() {
        h.shutdown();
    }
    if let Some(p) = pods.take() {
        for (id, e) in p.remove_all() {
            eprintln!("vrouter-dp: removing pod port {id} at exit: {e}");
        }
    }
    worker_stop.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut finals = Vec::new();
    for (h, (lc, _)) in handles.into_iter().zip(&stats) {
        let s = h.join()?;
        finals.push((*lc, s.snapshot()));
    }
    let elapsed = start.elapsed();

    let mut port_summaries = Vec::new();
    for (p, pc) in ports.iter().zip(&rt) {
        // Worker counters are indexed by port index (cross-connect) or port id
        // (pipeline); ports are created in config order, so both agree here.
        let pi = usize::from(p.id().0) % MAX_PORTS;
        port_summaries.push(PortSummary {
            name: pc.name.clone(),
            device: p.name().to_owned(),
            stats: p.stats().unwrap_or_default(),
            worker_tx: finals.iter().map(|(_, s)| s.tx[pi]).sum(),
            tx_dropped: finals.iter().map(|(_, s)| s.tx_dropped[pi]).sum(),
            worker_rx: finals.iter().map(|(_, s)| s.rx[pi]).sum(),
        });
    }
    let mut drops = Vec::new();
    for r in DropReason::ALL {
        let n: u64 = counters.iter().map(|c| c.drops()[r.index()]).sum();
        if n > 0 {
            drops.push((r.as_str().to_owned(), n));
        }
    }
    let flows_now = flows.as_ref().map(|t| t.len());
    // Ordered shutdown: ports stop and close before their mempools go.
    for p in ports {
        p.close()?;
    }
    drop(publisher);
    drop(pools);
    Ok(Summary {
        elapsed,
        ports: port_summaries,
        workers: finals,
        tsc_hz,
        drops,
        flows: flows_now,
        stage: stage.map(|s| (s, stage_tally(&stage_counters))),
    })
}

/// The stage outcomes summed over the stage workers (none when there are none).
fn stage_tally(c: &[Arc<StageCounters>]) -> Option<StageTally> {
    if c.is_empty() {
        return None;
    }
    let snaps: Vec<StageTally> = c.iter().map(|c| c.snapshot()).collect();
    Some(StageTally::sum(&snaps))
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn port_counters(
    rt: &[RuntimePort],
    ports: &[Port],
    links: &mut [Option<NetnsLink>],
    snaps: &[WorkerStatsSnapshot],
    now: Instant,
) -> Vec<PortCounters> {
    ports
        .iter()
        .zip(rt)
        .zip(links.iter_mut())
        .map(|((p, r), l)| {
            let st = p.stats().unwrap_or_default();
            let pi = usize::from(p.id().0) % MAX_PORTS;
            PortCounters {
                port: p.id().0,
                name: r.name.clone(),
                device: p.name().to_owned(),
                link_up: netns::link_up(p, l.as_mut(), now),
                rx_queues: r.rx_queues,
                tx_queues: r.tx_queues,
                rx_packets: st.rx_packets,
                rx_bytes: st.rx_bytes,
                tx_packets: st.tx_packets,
                tx_bytes: st.tx_bytes,
                rx_missed: st.rx_missed,
                rx_errors: st.rx_errors,
                tx_errors: st.tx_errors,
                tx_dropped: snaps.iter().map(|w| w.tx_dropped[pi]).sum(),
            }
        })
        .collect()
}

/// One line of per-port rates; `rows` are (counter slot, label, rx_missed).
fn print_stats_line(
    rows: &[(usize, String, u64)],
    prev: &[WorkerStatsSnapshot],
    now: &[WorkerStatsSnapshot],
    dt: f64,
    since: Duration,
    mbufs_in_use: u64,
) {
    let mut line = format!(
        "[{:>7.1}s] mbufs in use {mbufs_in_use}",
        since.as_secs_f64()
    );
    for (slot, name, missed) in rows {
        let pi = *slot % MAX_PORTS;
        // Counters of a removed port restart from zero: count from there.
        let delta = |n: u64, o: u64| if n >= o { n - o } else { n };
        let rx: u64 = now
            .iter()
            .zip(prev)
            .map(|(n, o)| delta(n.rx[pi], o.rx[pi]))
            .sum();
        let tx: u64 = now
            .iter()
            .zip(prev)
            .map(|(n, o)| delta(n.tx[pi], o.tx[pi]))
            .sum();
        let drop: u64 = now.iter().map(|n| n.tx_dropped[pi]).sum();
        let _ = write!(
            line,
            " | {name}: rx {:.2} Mpps tx {:.2} Mpps tx_drop {drop} rx_missed {missed}",
            rx as f64 / dt / 1e6,
            tx as f64 / dt / 1e6,
        );
    }
    println!("{line}");
}
