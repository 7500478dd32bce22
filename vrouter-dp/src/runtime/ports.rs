//! Pod ports created and removed at run time, under traffic: the daemon's
//! [`PortManager`].
//!
//! Creating a port: hot-plug the virtual device (`net_vhost` for a vhost-user
//! socket, `net_tap` for a tap), configure it with the daemon's mempool (one TX queue
//! per worker, so TX needs no lock), start it, then hand its queues to the running
//! workers through their command channels ([`crate::worker::commands`]): each RX
//! queue goes to the worker polling the fewest RX queues, each worker gets its own TX
//! queue. The port id is returned; the API binds the interface to it.
//!
//! Removing a port: every worker drops the port's handles and acknowledges (each
//! within [`ACK_TIMEOUT`]); only then is the device stopped, closed and detached, so
//! no worker ever touches a port being removed. Ports of the config file are not
//! removable here.
//!
//! A vhost-user port survives its peer going away and coming back (a pod restart):
//! the vhost library keeps the port, reports the link down meanwhile, and in client
//! mode reconnects to the socket until the peer listens again (net_vhost leaves
//! reconnection on); the workers keep polling it and see no packets while it is down.
//!
//! TX queues and workers: a tap gets one TX queue per worker. A vhost-user device
//! gets the queue pairs the pod asks for (`queues` of the request), which is what a
//! virtio-user or guest driver enables; the vhost PMD reports the pairs it was
//! created with (`rte_eth_dev_info`), not the ones the driver enabled, so the
//! request is the count the workers are mapped onto. Worker `w` sends on TX queue
//! `w` while `w < queues`; each further worker hands what it routes to the pod to
//! worker `w % queues` through a lock-free inbox, drained by that worker into its
//! queue ([`crate::worker::commands::tx_plan`]). A pod that enables fewer pairs
//! than it asked for receives nothing from the queues it left disabled (those
//! packets are counted as TX drops of the port).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::netns::NetnsLink;
use crate::control::{PortCounters, PortError, PortManager, TapPortSpec, VhostPortSpec};
use crate::dpdk::{dev, Mempool, Port, PortConf, PortId};
use crate::worker::commands::{new_inbox, tx_plan, Command, Controller, Inbox, Reply, TxPlan};
use crate::worker::stats::MAX_PORTS;
use crate::worker::WorkerStatsSnapshot;

/// How long a worker has to acknowledge a queue command.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Descriptors per queue of a pod port.
const POD_DESC: u16 = 1024;

/// Most queue pairs a pod port may ask for.
pub const MAX_POD_QUEUES: u16 = 16;

/// What backs a pod port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodBackend {
    /// A vhost-user socket.
    Vhost(VhostPortSpec),
    /// A tap device, `host_ifname` on the host side.
    Tap {
        /// The request.
        spec: TapPortSpec,
        /// The tap's name before it moves into the namespace.
        host_ifname: String,
    },
}

/// One port created through the API.
#[derive(Debug)]
struct PodPort {
    port: Port,
    name: String,
    backend: PodBackend,
    rx_queues: u16,
    tx_queues: u16,
    /// The control thread's references to the port's inboxes: they (and the
    /// buffers left in them) are freed here, after every worker released the port.
    inboxes: Vec<Inbox>,
    /// Workers that hand over instead of sending (released first).
    handoff_workers: Vec<usize>,
    /// A tap's link as seen inside its namespace.
    netns_link: Option<NetnsLink>,
}

impl PodPort {
    /// The link state to report: a tap's as seen inside its namespace
    /// ([`NetnsLink`]). Control thread only.
    fn link_up(&mut self, now: Instant) -> bool {
        super::netns::link_up(&self.port, self.netns_link.as_mut(), now)
    }
}

/// One worker as the port manager sees it.
#[derive(Debug)]
struct WorkerSlot {
    ctl: Controller,
    /// RX queues it polls (static and pod ones).
    rx_load: usize,
    /// Pod RX queues it polls, per port id.
    pod_rx: BTreeMap<u16, usize>,
}

#[derive(Debug)]
struct Inner {
    workers: Vec<WorkerSlot>,
    pods: BTreeMap<u16, PodPort>,
    /// Config ports: id -> name.
    statics: BTreeMap<u16, String>,
    next_device: u64,
}

/// The daemon's [`PortManager`]: pod ports over the running workers.
#[derive(Debug)]
pub struct PodPorts {
    inner: Mutex<Inner>,
    pool: Arc<Mempool>,
    device_prefix: String,
}

/// A worker's command channel and the RX queues it polls from the start.
#[derive(Debug)]
pub struct WorkerHandle {
    /// The control end of its command channel.
    pub ctl: Controller,
    /// RX queues assigned to it at start (config ports).
    pub rx_queues: usize,
}

impl PodPorts {
    /// A manager over `workers` (in worker order; worker `i` sends on TX queue `i`
    /// of every pod port that has one, see [`tx_plan`]), creating buffers from `pool`. `statics` are the config
    /// ports (id, name), which it refuses to remove. Device names are
    /// `net_vhost_<prefix><n>` and `net_tap_<prefix><n>`.
    pub fn new(
        workers: Vec<WorkerHandle>,
        pool: Arc<Mempool>,
        statics: impl IntoIterator<Item = (u16, String)>,
        device_prefix: &str,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                workers: workers
                    .into_iter()
                    .map(|w| WorkerSlot {
                        ctl: w.ctl,
                        rx_load: w.rx_queues,
                        pod_rx: BTreeMap::new(),
                    })
                    .collect(),
                pods: BTreeMap::new(),
                statics: statics.into_iter().collect(),
                next_device: 0,
            }),
            pool,
            device_prefix: device_prefix.to_owned(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counters of the pod ports (device and worker figures), or `None` while one
    /// is being added or removed. The device is read under the manager's lock, so a
    /// port being removed is never read.
    pub fn try_counters(&self, workers: &[WorkerStatsSnapshot]) -> Option<Vec<PortCounters>> {
        let mut g = self.inner.try_lock().ok()?;
        let now = Instant::now();
        Some(
            g.pods
                .iter_mut()
                .map(|(id, p)| {
                    let st = p.port.stats().unwrap_or_default();
                    let pi = usize::from(*id) % MAX_PORTS;
                    PortCounters {
                        port: *id,
                        name: p.name.clone(),
                        device: p.port.name().to_owned(),
                        link_up: p.link_up(now),
                        rx_queues: p.rx_queues,
                        tx_queues: p.tx_queues,
                        rx_packets: st.rx_packets,
                        rx_bytes: st.rx_bytes,
                        tx_packets: st.tx_packets,
                        tx_bytes: st.tx_bytes,
                        rx_missed: st.rx_missed,
                        rx_errors: st.rx_errors,
                        tx_errors: st.tx_errors,
                        tx_dropped: workers.iter().map(|w| w.tx_dropped[pi]).sum(),
                    }
                })
                .collect(),
        )
    }

    /// Removes every pod port (at shutdown, while the workers still run).
    pub fn remove_all(&self) -> Vec<(u16, PortError)> {
        let ids: Vec<u16> = self.lock().pods.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.remove_port(id).err().map(|e| (id, e)))
            .collect()
    }

    fn next_device(&self, g: &mut Inner, driver: &str) -> String {
        let n = g.next_device;
        g.next_device += 1;
        format!("{driver}_{}{n}", self.device_prefix)
    }

    /// Configures and starts a hot-plugged port and gives its queues to the
    /// workers; on any failure the port is taken back and removed.
    fn attach(
        &self,
        g: &mut Inner,
        mut port: Port,
        name: &str,
        backend: PodBackend,
        rx_queues: u16,
        tx_queues: u16,
    ) -> Result<u16, PortError> {
        let id = port.id().0;
        if usize::from(id) >= MAX_PORTS {
            let e = format!("port id {id} is beyond the {MAX_PORTS} ports the workers count");
            return Err(fail_remove(port, e));
        }
        let n_workers = u16::try_from(g.workers.len()).unwrap_or(u16::MAX);
        let conf = PortConf {
            rx_queues,
            tx_queues: tx_queues.min(n_workers).max(1),
            rx_desc: POD_DESC,
            tx_desc: POD_DESC,
            mtu: None,
            promiscuous: true,
        };
        if let Err(e) = port
            .configure(&conf, &self.pool)
            .and_then(|()| port.start())
        {
            return Err(fail_remove(port, e.to_string()));
        }
        // RX queues to the least-loaded workers, one TX queue to every worker.
        let mut per_worker: Vec<Vec<Command>> = g.workers.iter().map(|_| Vec::new()).collect();
        let mut loads: Vec<usize> = g.workers.iter().map(|w| w.rx_load).collect();
        for q in 0..rx_queues {
            let Some(rxq) = port.rx_queue(q) else {
                continue;
            };
            let Some((w, load)) = loads.iter_mut().enumerate().min_by_key(|(i, l)| (**l, *i))
            else {
                continue;
            };
            *load += 1;
            if let Some(v) = per_worker.get_mut(w) {
                v.push(Command::AddRx(rxq));
            }
        }
        // TX: the owners of a queue send; the other workers hand over to them.
        let plan = tx_plan(g.workers.len(), conf.tx_queues);
        let mut inboxes: Vec<Option<Inbox>> = plan.iter().map(|_| None).collect();
        let mut handoff_workers = Vec::new();
        for (wi, p) in plan.iter().enumerate() {
            if let TxPlan::Handoff(owner) = *p {
                handoff_workers.push(wi);
                if let Some(slot @ None) = inboxes.get_mut(owner) {
                    *slot = Some(new_inbox());
                }
            }
        }
        for (wi, p) in plan.iter().enumerate() {
            let Some(v) = per_worker.get_mut(wi) else {
                continue;
            };
            match *p {
                TxPlan::Queue(q) => {
                    let Some(txq) = port.tx_queue(q) else {
                        continue;
                    };
                    match inboxes.get(wi).cloned().flatten() {
                        Some(inbox) => v.push(Command::AddTxWithInbox { queue: txq, inbox }),
                        None => v.push(Command::AddTx(txq)),
                    }
                }
                TxPlan::Handoff(owner) => {
                    if let Some(inbox) = inboxes.get(owner).cloned().flatten() {
                        v.push(Command::AddHandoff {
                            port: PortId(id),
                            inbox,
                        });
                    }
                }
            }
        }
        let inboxes: Vec<Inbox> = inboxes.into_iter().flatten().collect();
        let mut failure = None;
        for (wi, cmds) in per_worker.into_iter().enumerate() {
            let Some(w) = g.workers.get_mut(wi) else {
                continue;
            };
            let n_rx = cmds
                .iter()
                .filter(|c| matches!(c, Command::AddRx(_)))
                .count();
            match w.ctl.call(cmds, ACK_TIMEOUT) {
                Ok(replies) => {
                    if replies.iter().any(|r| matches!(r, Reply::Refused(_))) {
                        failure = Some(format!("worker {wi} has no room for more queues"));
                    }
                    w.rx_load += n_rx;
                    w.pod_rx.insert(id, n_rx);
                }
                Err(e) => failure = Some(format!("worker {wi}: {e}")),
            }
            if failure.is_some() {
                break;
            }
        }
        let netns_link = match &backend {
            PodBackend::Tap { spec, .. } => {
                Some(NetnsLink::new(spec.netns.clone(), spec.name.clone()))
            }
            PodBackend::Vhost(_) => None,
        };
        let pod = PodPort {
            port,
            name: name.to_owned(),
            backend,
            rx_queues,
            tx_queues: conf.tx_queues,
            inboxes,
            handoff_workers,
            netns_link,
        };
        if let Some(f) = failure {
            return Err(match release(g, id, &pod.handoff_workers) {
                Ok(()) => fail_remove(pod.port, f),
                // A worker may still hold a queue: the port stays registered (and
                // attached) so that a later removal can finish the job.
                Err(e) => {
                    g.pods.insert(id, pod);
                    PortError(format!("{f}; the port stays attached: {e}"))
                }
            });
        }
        g.pods.insert(id, pod);
        Ok(id)
    }

    /// Moves the tap `host_ifname` into the namespace of `spec` under its name
    /// there and brings it up. Addresses are the pod's network plugin's business
    /// (the API's interface object carries them for anti-spoofing only).
    fn place_in_netns(&self, host_ifname: &str, spec: &TapPortSpec) -> Result<(), PortError> {
        let pod = super::netns::PodNetns {
            netns: spec.netns.clone(),
            name: spec.name.clone(),
            mac: None,
            addrs: Vec::new(),
            mtu: None,
            gateway_v4: None,
            gateway_v6: None,
        };
        super::netns::move_into_netns(host_ifname, &pod).map_err(|e| {
            PortError(format!(
                "moving tap {host_ifname} into {} as {}: {e}",
                spec.netns.display(),
                spec.name
            ))
        })
    }
}

/// Removes a port that no worker holds; returns `reason` (with the removal's own
/// failure, if any) as the error.
fn fail_remove(port: Port, reason: String) -> PortError {
    match dev::remove(port) {
        Ok(()) => PortError(reason),
        Err(e) => PortError(format!("{reason}; removing the device: {e}")),
    }
}

/// Has every worker drop its handles of port `id` and waits for all of them; the
/// workers in `first` (those that hand over to an inbox) go first, so that the
/// owners' last drain sees everything they handed over.
fn release(g: &mut Inner, id: u16, first: &[usize]) -> Result<(), PortError> {
    let mut errs = Vec::new();
    let mut order: Vec<usize> = first.to_vec();
    order.extend((0..g.workers.len()).filter(|w| !first.contains(w)));
    for wi in order {
        let Some(w) = g.workers.get_mut(wi) else {
            continue;
        };
        match w.ctl.call(vec![Command::Release(PortId(id))], ACK_TIMEOUT) {
            Ok(r) if matches!(r.as_slice(), [Reply::Released { .. }]) => {
                if let Some(n) = w.pod_rx.remove(&id) {
                    w.rx_load = w.rx_load.saturating_sub(n);
                }
            }
            Ok(r) => errs.push(format!("worker {wi}: unexpected reply {r:?}")),
            Err(e) => errs.push(format!("worker {wi}: {e}")),
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(PortError(format!(
            "port {id}: the workers did not release it: {}",
            errs.join("; ")
        )))
    }
}

impl PortManager for PodPorts {
    fn add_vhost_port(&self, spec: &VhostPortSpec) -> Result<u16, PortError> {
        let queues = spec.queues.max(1);
        if queues > MAX_POD_QUEUES {
            return Err(PortError(format!(
                "{queues} queue pairs is more than {MAX_POD_QUEUES}"
            )));
        }
        let path = spec.socket.to_str().ok_or_else(|| {
            PortError(format!(
                "socket path {} is not UTF-8",
                spec.socket.display()
            ))
        })?;
        if path.is_empty() || path.contains(',') {
            return Err(PortError(format!(
                "socket path {path:?} is empty or contains a comma"
            )));
        }
        let mut g = self.lock();
        if let Some(p) = g.pods.values().find(|p| match &p.backend {
            PodBackend::Vhost(v) => v.socket == spec.socket,
            PodBackend::Tap { .. } => false,
        }) {
            return Err(PortError(format!(
                "socket {path} is already used by pod port {}",
                p.name
            )));
        }
        let device = self.next_device(&mut g, "net_vhost");
        // As many queue pairs as the pod enables: workers beyond them hand over.
        let devargs = format!(
            "{device},iface={path},queues={queues},client={}",
            u8::from(!spec.server)
        );
        let port = dev::probe(&devargs).map_err(|e| PortError(e.to_string()))?;
        self.attach(
            &mut g,
            port,
            &spec.name,
            PodBackend::Vhost(spec.clone()),
            queues,
            queues,
        )
    }

    fn add_tap_port(&self, spec: &TapPortSpec) -> Result<u16, PortError> {
        let mut g = self.lock();
        let n = g.next_device;
        let host_ifname = format!("vrtap{n}");
        let device = self.next_device(&mut g, "net_tap");
        let devargs = format!("{device},iface={host_ifname}");
        let port = dev::probe(&devargs).map_err(|e| PortError(e.to_string()))?;
        let id = self.attach(
            &mut g,
            port,
            &spec.name,
            PodBackend::Tap {
                spec: spec.clone(),
                host_ifname: host_ifname.clone(),
            },
            1,
            u16::MAX,
        )?;
        drop(g);
        if let Err(e) = self.place_in_netns(&host_ifname, spec) {
            return Err(match self.remove_port(id) {
                Ok(()) => e,
                Err(r) => PortError(format!("{e}; removing the port again: {r}")),
            });
        }
        Ok(id)
    }

    fn remove_port(&self, port: u16) -> Result<(), PortError> {
        let mut g = self.lock();
        if !g.pods.contains_key(&port) {
            return Err(PortError(match g.statics.get(&port) {
                Some(name) => format!(
                    "port {port} ({name}) comes from the config file; only pod ports \
                     created through the API can be removed"
                ),
                None => format!("no pod port {port}"),
            }));
        }
        let first = g
            .pods
            .get(&port)
            .map(|p| p.handoff_workers.clone())
            .unwrap_or_default();
        release(&mut g, port, &first)?;
        let Some(p) = g.pods.remove(&port) else {
            return Err(PortError(format!("no pod port {port}")));
        };
        // No worker holds the inboxes any more: what is left in them is freed here.
        drop(p.inboxes);
        dev::remove(p.port).map_err(|e| PortError(format!("port {port}: {e}")))
    }
}
