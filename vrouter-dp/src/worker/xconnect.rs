//! The L2 cross-connect worker: every packet received on a port goes out of its
//! partner port unchanged (ports pair up 0<->1, 2<->3, ... like testpmd's paired
//! topology). This is the data plane's io-forwarding baseline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::stats::{bump, WorkerStats, MAX_PORTS};
use crate::dpdk::{rdtsc, MbufBurst, RxQueue, TxQueue};

/// One polled RX queue and the index (into the worker's TX queues) it sends to.
#[derive(Debug)]
pub struct XconnectLeg {
    /// Where packets come from.
    pub rx: RxQueue,
    /// Port index of `rx`'s port (for counters).
    pub rx_port_index: usize,
    /// Port index of the output port (index into `XconnectWorker::tx`).
    pub tx_port_index: usize,
}

/// The state of one cross-connect worker.
#[derive(Debug)]
pub struct XconnectWorker {
    /// The RX queues this worker polls.
    pub legs: Vec<XconnectLeg>,
    /// This worker's TX queue on each port, by port index (`None` where it never sends).
    pub tx: Vec<Option<TxQueue>>,
    /// Counters, read by the control thread.
    pub stats: Arc<WorkerStats>,
    /// Set by the control thread to stop the loop.
    pub stop: Arc<AtomicBool>,
}

impl XconnectWorker {
    /// Polls until `stop` is set. No allocation, lock, syscall or logging inside.
    pub fn run(mut self) -> Arc<WorkerStats> {
        let mut burst = MbufBurst::new();
        let stats = Arc::clone(&self.stats);
        while !self.stop.load(Ordering::Relaxed) {
            bump(&stats.iterations, 1);
            let t0 = rdtsc();
            let mut got = 0usize;
            for leg in self.legs.iter_mut() {
                let n = leg.rx.rx(&mut burst);
                if n == 0 {
                    continue;
                }
                got += n;
                if let Some(c) = stats.rx.get(leg.rx_port_index % MAX_PORTS) {
                    bump(c, n as u64);
                }
                match self.tx.get_mut(leg.tx_port_index).and_then(Option::as_mut) {
                    Some(txq) => {
                        let r = txq.tx(&mut burst);
                        let i = leg.tx_port_index % MAX_PORTS;
                        bump(&stats.tx[i], r.sent as u64);
                        bump(&stats.tx_dropped[i], r.dropped as u64);
                    }
                    None => {
                        let i = leg.tx_port_index % MAX_PORTS;
                        bump(&stats.tx_dropped[i], burst.len() as u64);
                        burst.free_all();
                    }
                }
            }
            if got > 0 {
                bump(&stats.busy_iterations, 1);
                bump(&stats.busy_cycles, rdtsc().wrapping_sub(t0));
            }
        }
        stats
    }
}
