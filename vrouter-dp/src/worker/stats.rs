//! Per-worker counters on their own cache lines.
//!
//! Each counter has exactly one writer (its worker), which updates it with a relaxed
//! load and store (no read-modify-write, no `lock` prefix); readers (the control
//! thread) load it relaxed. Values are monotonic per counter, so a reader may see a
//! slightly old value but never a torn one.

use std::sync::atomic::{AtomicU64, Ordering};

/// Maximum ports a worker keeps per-port counters for.
pub const MAX_PORTS: usize = 32;

/// One worker's counters, aligned to a cache-line pair so that no two workers share
/// a line (adjacent-line prefetch included).
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Loop iterations.
    pub iterations: AtomicU64,
    /// Iterations that received at least one packet.
    pub busy_iterations: AtomicU64,
    /// TSC cycles spent in busy iterations.
    pub busy_cycles: AtomicU64,
    /// Packets received, per input port index.
    pub rx: [AtomicU64; MAX_PORTS],
    /// Packets the device accepted for TX, per output port index.
    pub tx: [AtomicU64; MAX_PORTS],
    /// Packets the device refused for TX (freed), per output port index; includes
    /// [`WorkerStats::handoff_full`].
    pub tx_dropped: [AtomicU64; MAX_PORTS],
    /// Packets handed to the worker that owns a TX queue of the port (this worker
    /// has none), per output port index.
    pub handed_off: [AtomicU64; MAX_PORTS],
    /// Packets freed because the owner's inbox was full (a hand-off drop), per
    /// output port index.
    pub handoff_full: [AtomicU64; MAX_PORTS],
}

/// Adds `n` to a single-writer counter without an atomic read-modify-write.
#[inline(always)]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// A plain copy of a worker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStatsSnapshot {
    /// Loop iterations.
    pub iterations: u64,
    /// Iterations with at least one packet.
    pub busy_iterations: u64,
    /// TSC cycles in busy iterations.
    pub busy_cycles: u64,
    /// Received packets per input port index.
    pub rx: [u64; MAX_PORTS],
    /// Sent packets per output port index.
    pub tx: [u64; MAX_PORTS],
    /// Refused (freed) packets per output port index, hand-off drops included.
    pub tx_dropped: [u64; MAX_PORTS],
    /// Packets handed to another worker per output port index.
    pub handed_off: [u64; MAX_PORTS],
    /// Packets freed on a full inbox per output port index.
    pub handoff_full: [u64; MAX_PORTS],
}

impl WorkerStats {
    /// Reads every counter (relaxed).
    pub fn snapshot(&self) -> WorkerStatsSnapshot {
        let rd = |a: &[AtomicU64; MAX_PORTS]| {
            let mut o = [0u64; MAX_PORTS];
            for (d, s) in o.iter_mut().zip(a.iter()) {
                *d = s.load(Ordering::Relaxed);
            }
            o
        };
        WorkerStatsSnapshot {
            iterations: self.iterations.load(Ordering::Relaxed),
            busy_iterations: self.busy_iterations.load(Ordering::Relaxed),
            busy_cycles: self.busy_cycles.load(Ordering::Relaxed),
            rx: rd(&self.rx),
            tx: rd(&self.tx),
            tx_dropped: rd(&self.tx_dropped),
            handed_off: rd(&self.handed_off),
            handoff_full: rd(&self.handoff_full),
        }
    }
}

impl WorkerStatsSnapshot {
    /// Total packets received.
    pub fn rx_total(&self) -> u64 {
        self.rx.iter().sum()
    }
    /// Total packets sent.
    pub fn tx_total(&self) -> u64 {
        self.tx.iter().sum()
    }
    /// Total packets refused by TX.
    pub fn tx_dropped_total(&self) -> u64 {
        self.tx_dropped.iter().sum()
    }
    /// Total packets handed to another worker.
    pub fn handed_off_total(&self) -> u64 {
        self.handed_off.iter().sum()
    }
    /// Total packets freed on a full inbox.
    pub fn handoff_full_total(&self) -> u64 {
        self.handoff_full.iter().sum()
    }
    /// Busy cycles per received packet (0 when none).
    pub fn cycles_per_packet(&self) -> f64 {
        let rx = self.rx_total();
        if rx == 0 {
            0.0
        } else {
            self.busy_cycles as f64 / rx as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_cache_line_isolated_and_sum() {
        assert!(std::mem::align_of::<WorkerStats>() >= 128);
        let s = WorkerStats::default();
        bump(&s.rx[0], 5);
        bump(&s.rx[3], 7);
        bump(&s.tx[1], 11);
        bump(&s.tx_dropped[1], 2);
        bump(&s.busy_cycles, 240);
        bump(&s.handed_off[2], 9);
        bump(&s.handoff_full[2], 1);
        let snap = s.snapshot();
        assert_eq!((snap.handed_off_total(), snap.handoff_full_total()), (9, 1));
        assert_eq!(snap.rx_total(), 12);
        assert_eq!(snap.tx_total(), 11);
        assert_eq!(snap.tx_dropped_total(), 2);
        assert!((snap.cycles_per_packet() - 20.0).abs() < 1e-9);
    }
}
