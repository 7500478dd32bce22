//! The cost of the worker's queue-command channel on the forwarding loop:
//!
//! * `worker_commands/poll_empty`: what a worker pays every `POLL_EVERY` loop
//!   iterations when the control thread has sent nothing (one lock-free pop that
//!   finds the queue empty).
//! * `worker_commands/add_release`: applying a port's RX and TX queue hand-over and
//!   its release to a worker's queue set (no allocation; the vectors keep their
//!   capacity).

use criterion::{criterion_group, criterion_main, Criterion};
use vrouter_dp::dpdk::PortId;
use vrouter_dp::worker::commands::{channel, Command, PortQueue, QueueSet};
use vrouter_dp::worker::WorkerStats;

/// A queue handle stand-in (real ones need EAL and a port).
struct Q(u16);

impl PortQueue for Q {
    fn port_id(&self) -> PortId {
        PortId(self.0)
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("worker_commands");
    let (_ctl, end) = channel::<Q, Q>();
    let mut set: QueueSet<Q, Q> = QueueSet::new();
    let stats = WorkerStats::default();
    g.bench_function("poll_empty", |b| {
        b.iter(|| std::hint::black_box(end.poll(&mut set, Some(&stats))))
    });
    for p in 0..8 {
        let _ = set.apply(Command::AddRx(Q(p)), None);
    }
    g.bench_function("add_release", |b| {
        b.iter(|| {
            let _ = set.apply(Command::AddRx(Q(9)), None);
            let _ = set.apply(Command::AddTx(Q(9)), None);
            std::hint::black_box(set.apply(Command::Release(PortId(9)), Some(&stats)))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
