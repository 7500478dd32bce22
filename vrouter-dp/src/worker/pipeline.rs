//! The forwarding worker: RX burst -> pipeline -> per-port TX, on one pinned lcore.
//!
//! Per loop iteration: read the TSC once, load the forwarding snapshot once (the
//! RCU quiescent point), then for each polled RX queue receive a burst, run the
//! pipeline over it, send each output port's batch on this worker's own TX queue of
//! that port (no lock) and free the dropped buffers in bulk. Pipeline counters are
//! published to the control thread every [`PUBLISH_EVERY`] iterations and at exit.
//! Every [`POLL_EVERY`] iterations the worker applies the queue commands of the
//! control thread (ports added and removed at run time, see [`super::commands`]);
//! nothing is queued to any port between two iterations, so a release applied there
//! leaves no buffer behind.
//!
//! A port with fewer TX queues than workers (a pod that enables fewer queue pairs):
//! a worker without a queue of the port puts the batch into the inbox of a worker
//! that owns one (lock-free, see [`super::commands`]); each worker drains its
//! inboxes into its own TX queues at the start of every iteration, and once more
//! before a release drops the queue.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use flow_table::FlowTable;

use crossbeam_queue::ArrayQueue;

use super::commands::{hand_off, take_from, QueueSet, TxSlot, WorkerEnd, INBOX_DEPTH, POLL_EVERY};
use super::stats::{bump, WorkerStats, MAX_PORTS};
use crate::dpdk::{rdtsc, Mbuf, MbufBurst, Mempool, TxQueue, BURST};
use crate::fib::rcu::Reader;
use crate::fib::FibSnapshot;
use crate::pipeline::{BufPool, Counters, DropReason, Env, Output, Pipeline};

/// Iterations between two publications of the pipeline counters.
pub const PUBLISH_EVERY: u64 = 1024;

/// Bursts one inbox drain sends at most per iteration (the rest waits for the next
/// iteration, so one busy inbox does not starve the worker's RX).
pub const DRAIN_BURSTS: usize = 4;

/// Bursts the last drain before a release sends at most: enough for a full inbox.
const FLUSH_BURSTS: usize = INBOX_DEPTH.div_ceil(BURST) + 1;

/// Sends what `inbox` holds (up to `bursts` bursts) on `txq`, counting it on the
/// queue's port. `txb` is empty before and after.
#[inline]
fn drain_inbox(
    txq: &mut TxQueue,
    inbox: &ArrayQueue<Mbuf>,
    txb: &mut MbufBurst,
    stats: &WorkerStats,
    bursts: usize,
) {
    let pi = usize::from(txq.port().0) % MAX_PORTS;
    for _ in 0..bursts {
        // The burst is empty here, so every push succeeds.
        let n = take_from(inbox, BURST, |m| {
            let _ = txb.push(m);
        });
        if n == 0 {
            break;
        }
        let r = txq.tx(txb);
        bump(&stats.tx[pi], r.sent as u64);
        bump(&stats.tx_dropped[pi], r.dropped as u64);
        if n < BURST {
            break;
        }
    }
}

/// Flood copies come from the worker's mempool (`rte_pktmbuf_copy`).
struct MbufCopies<'a>(&'a Mempool);

impl BufPool<Mbuf> for MbufCopies<'_> {
    #[inline]
    fn alloc_copy(&mut self, b: &Mbuf) -> Option<Mbuf> {
        b.try_copy(self.0)
    }
}

/// The pipeline counters of one worker as the control thread reads them (each field
/// has one writer, the worker; relaxed stores, no read-modify-write).
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct SharedCounters {
    /// Packets received.
    pub rx: AtomicU64,
    /// Packets queued for TX.
    pub tx: AtomicU64,
    /// Drops by [`DropReason::index`].
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Flows learned.
    pub flows_learned: AtomicU64,
    /// Flow hits.
    pub flow_hits: AtomicU64,
    /// ARP requests answered.
    pub arp_proxied: AtomicU64,
    /// Neighbour solicitations answered.
    pub nd_proxied: AtomicU64,
    /// ICMP errors generated.
    pub icmp_errors: AtomicU64,
    /// Packets trapped to the agent.
    pub to_agent: AtomicU64,
}

impl SharedCounters {
    fn publish(&self, c: &Counters) {
        self.rx.store(c.rx, Ordering::Relaxed);
        self.tx.store(c.tx, Ordering::Relaxed);
        for (d, s) in self.drops.iter().zip(c.drops.iter()) {
            d.store(*s, Ordering::Relaxed);
        }
        self.flows_learned.store(c.flows_learned, Ordering::Relaxed);
        self.flow_hits.store(c.flow_hits, Ordering::Relaxed);
        self.arp_proxied.store(c.arp_proxied, Ordering::Relaxed);
        self.nd_proxied.store(c.nd_proxied, Ordering::Relaxed);
        self.icmp_errors.store(c.icmp_errors, Ordering::Relaxed);
        self.to_agent.store(c.to_agent, Ordering::Relaxed);
    }

    /// Drops by reason (relaxed reads).
    pub fn drops(&self) -> [u64; DropReason::COUNT] {
        let mut o = [0u64; DropReason::COUNT];
        for (d, s) in o.iter_mut().zip(self.drops.iter()) {
            *d = s.load(Ordering::Relaxed);
        }
        o
    }
}

/// Converts TSC ticks to the flow table's clock (milliseconds since start).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// TSC at start.
    pub start: u64,
    /// TSC ticks per millisecond (at least 1).
    pub ticks_per_ms: u64,
}

impl Clock {
    /// Milliseconds since start for a TSC reading.
    #[inline]
    pub fn ms(&self, tsc: u64) -> u64 {
        tsc.wrapping_sub(self.start) / self.ticks_per_ms.max(1)
    }
}

/// One forwarding worker.
pub struct PipelineWorker {
    /// RX queues polled by this worker and its TX queue per DPDK port id.
    pub queues: QueueSet,
    /// Queue commands from the control thread (`None`: the queues never change).
    pub commands: Option<WorkerEnd>,
    /// Its view of the forwarding state.
    pub fib: Reader<FibSnapshot>,
    /// The shared flow table.
    pub flows: Arc<FlowTable>,
    /// Its pipeline (counters and scratch).
    pub pipeline: Pipeline,
    /// Mempool for flood copies.
    pub pool: Arc<Mempool>,
    /// Port/loop counters.
    pub stats: Arc<WorkerStats>,
    /// Pipeline counters, published.
    pub counters: Arc<SharedCounters>,
    /// Clock for flow timestamps.
    pub clock: Clock,
    /// Set by the control thread to stop.
    pub stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for PipelineWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineWorker")
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

impl PipelineWorker {
    /// Polls until `stop` is set.
    pub fn run(self) -> Arc<WorkerStats> {
        let PipelineWorker {
            mut queues,
            commands,
            mut fib,
            flows,
            mut pipeline,
            pool,
            stats,
            counters,
            clock,
            stop,
        } = self;
        let mut burst = MbufBurst::new();
        let mut txb = MbufBurst::new();
        // Buffers a full inbox refused, freed in bulk.
        let mut spill = MbufBurst::new();
        let mut out: Output<Mbuf> = Output::new();
        let mut iter: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            iter += 1;
            bump(&stats.iterations, 1);
            let t0 = rdtsc();
            // One snapshot per iteration; loading it is this worker's quiescent point.
            let env = Env {
                fib: fib.load(),
                flows: &flows,
                now: clock.ms(t0),
            };
            let mut got = 0usize;
            // What workers without a queue of a port handed over last iteration.
            queues.for_each_inbox(|txq, inbox| {
                drain_inbox(txq, inbox, &mut txb, &stats, DRAIN_BURSTS)
            });
            if let Some(c) = commands.as_ref() {
                if iter % POLL_EVERY == 0 {
                    c.poll_with(&mut queues, Some(&stats), |txq, inbox| {
                        // The last drain: everything the inbox holds.
                        drain_inbox(txq, inbox, &mut txb, &stats, FLUSH_BURSTS)
                    });
                }
            }
            let QueueSet { rx, tx, .. } = &mut queues;
            for rxq in rx.iter_mut() {
                let n = rxq.rx(&mut burst);
                if n == 0 {
                    continue;
                }
                got += n;
                bump(&stats.rx[usize::from(rxq.port().0) % MAX_PORTS], n as u64);
                // The input port is the polled one: a bond's members stamp their own
                // port ids on what they receive.
                let in_port = rxq.port().0;
                for m in burst.as_mut_slice() {
                    m.prefetch_data();
                    m.set_port(in_port);
                }
                let mut copies = MbufCopies(&pool);
                pipeline.process(&env, &mut copies, burst.drain(), &mut out);
                for batch in out.tx.drain(..) {
                    let port = usize::from(batch.port);
                    let pi = port % MAX_PORTS;
                    match tx.get_mut(port).and_then(Option::as_mut) {
                        Some(TxSlot::Queue { queue: txq, .. }) => {
                            for m in batch.bufs {
                                if let Err(m) = txb.push(m) {
                                    let r = txq.tx(&mut txb);
                                    bump(&stats.tx[pi], r.sent as u64);
                                    bump(&stats.tx_dropped[pi], r.dropped as u64);
                                    // The burst is empty after tx: this push succeeds.
                                    let _ = txb.push(m);
                                }
                            }
                            let r = txq.tx(&mut txb);
                            bump(&stats.tx[pi], r.sent as u64);
                            bump(&stats.tx_dropped[pi], r.dropped as u64);
                        }
                        Some(TxSlot::Handoff(inbox)) => {
                            let n = batch.bufs.len();
                            let full = hand_off(inbox, batch.bufs, |m| {
                                if let Err(m) = spill.push(m) {
                                    spill.free_all();
                                    let _ = spill.push(m);
                                }
                            });
                            bump(&stats.handed_off[pi], (n - full) as u64);
                            if full > 0 {
                                bump(&stats.handoff_full[pi], full as u64);
                                bump(&stats.tx_dropped[pi], full as u64);
                            }
                        }
                        None => {
                            // No TX queue on that port: dropping the batch frees it.
                            bump(&stats.tx_dropped[pi], batch.bufs.len() as u64);
                        }
                    }
                }
                for m in out.drops.drain(..) {
                    if let Err(m) = txb.push(m) {
                        txb.free_all();
                        let _ = txb.push(m);
                    }
                }
                txb.free_all();
                spill.free_all();
            }
            if got > 0 {
                bump(&stats.busy_iterations, 1);
                bump(&stats.busy_cycles, rdtsc().wrapping_sub(t0));
            }
            if iter.is_multiple_of(PUBLISH_EVERY) {
                counters.publish(pipeline.counters());
            }
        }
        counters.publish(pipeline.counters());
        drop(fib);
        stats
    }
}
