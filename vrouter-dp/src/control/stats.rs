//! A [`StatsSource`] over the daemon's live counters: each worker's [`WorkerStats`]
//! and pipeline [`SharedCounters`] are read directly (relaxed atomic loads); port
//! figures, which only the thread owning the ports can read from the devices, are
//! pushed by that thread with [`LiveStats::set_ports`].

use std::sync::{Arc, Mutex, PoisonError};

use crate::pipeline::DropReason;
use crate::worker::{SharedCounters, WorkerStats};

use super::{DataPlaneInfo, PortCounters, StatsSource, WorkerCounters};

/// Counters of a running data plane.
#[derive(Debug)]
pub struct LiveStats {
    info: DataPlaneInfo,
    workers: Vec<(u32, Arc<WorkerStats>)>,
    counters: Vec<Arc<SharedCounters>>,
    ports: Mutex<Vec<PortCounters>>,
}

impl LiveStats {
    /// Counters of `workers` (lcore, loop counters) and their pipeline counters.
    pub fn new(
        info: DataPlaneInfo,
        workers: Vec<(u32, Arc<WorkerStats>)>,
        counters: Vec<Arc<SharedCounters>>,
    ) -> Self {
        Self {
            info,
            workers,
            counters,
            ports: Mutex::new(Vec::new()),
        }
    }

    /// Replaces the port figures (called by the thread that owns the ports, e.g. on
    /// each tick of its control loop).
    pub fn set_ports(&self, ports: Vec<PortCounters>) {
        *self.ports.lock().unwrap_or_else(PoisonError::into_inner) = ports;
    }
}

impl StatsSource for LiveStats {
    fn ports(&self) -> Vec<PortCounters> {
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn workers(&self) -> Vec<WorkerCounters> {
        self.workers
            .iter()
            .map(|(lcore, s)| {
                let x = s.snapshot();
                WorkerCounters {
                    lcore: *lcore,
                    iterations: x.iterations,
                    busy_iterations: x.busy_iterations,
                    busy_cycles: x.busy_cycles,
                    rx_packets: x.rx_total(),
                    tx_packets: x.tx_total(),
                    tx_dropped: x.tx_dropped_total(),
                }
            })
            .collect()
    }

    fn drops(&self) -> Vec<(String, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| {
                let n = self
                    .counters
                    .iter()
                    .filter_map(|c| c.drops.get(r.index()))
                    .map(|a| a.load(std::sync::atomic::Ordering::Relaxed))
                    .sum();
                (r.as_str().to_owned(), n)
            })
            .collect()
    }

    fn info(&self) -> DataPlaneInfo {
        self.info.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn sums_drops_over_workers_and_reads_loops() {
        let a = Arc::new(SharedCounters::default());
        let b = Arc::new(SharedCounters::default());
        a.drops[DropReason::NoRoute.index()].store(3, Ordering::Relaxed);
        b.drops[DropReason::NoRoute.index()].store(4, Ordering::Relaxed);
        let w = Arc::new(WorkerStats::default());
        w.busy_cycles.store(99, Ordering::Relaxed);
        w.rx[1].store(5, Ordering::Relaxed);
        let s = LiveStats::new(DataPlaneInfo::default(), vec![(3, w)], vec![a, b]);
        let d = s.drops();
        assert_eq!(d.len(), DropReason::COUNT);
        assert!(d.contains(&("no_route".to_owned(), 7)));
        let ws = s.workers();
        assert_eq!(
            (ws[0].lcore, ws[0].busy_cycles, ws[0].rx_packets),
            (3, 99, 5)
        );
        assert!(s.ports().is_empty());
        s.set_ports(vec![PortCounters {
            port: 2,
            ..PortCounters::default()
        }]);
        assert_eq!(s.ports()[0].port, 2);
    }
}
