//! Runs a fixed number of pipeline bursts (fabric -> pod: VXLAN decapsulated, VNI
//! translated to the pod's VRF, routed, flow checked; heap buffers) so that a
//! profiler or an instruction counter sees only the pipeline:
//!
//! ```sh
//! cargo build --release -p vrouter-benches --example decap_count
//! valgrind --tool=cachegrind target/release/examples/decap_count FLOWS BURSTS
//! perf record target/release/examples/decap_count 1 10000000
//! ```
//!
//! Instructions per packet = (Ir(BURSTS=b2) - Ir(BURSTS=b1)) / ((b2 - b1) * 32).

use vrouter_benches::decap_fixture::{frame, setup, LEN};
use vrouter_dp::packet::HeapBuf;
use vrouter_dp::pipeline::{Env, HeapPool, Output, Pipeline, BURST};

fn main() {
    let mut args = std::env::args().skip(1);
    let flows: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let bursts: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let capacity = (2 * flows as usize).next_power_of_two().max(4096) * 2;
    let (snap, table) = setup(capacity);
    let env = Env {
        fib: &snap,
        flows: &table,
        now: 1,
    };
    let mut pipe = Pipeline::new(64);
    let mut out: Output<HeapBuf> = Output::new();
    let mut bufs: Vec<HeapBuf> = (0..BURST)
        .map(|_| HeapBuf::with_room(&[0; LEN], 128, 64))
        .collect();
    let mut f = [0u8; LEN];
    let mut run = |pipe: &mut Pipeline, first: u32| {
        for (k, b) in bufs.iter_mut().enumerate() {
            frame((first + k as u32) % flows, &mut f);
            let _ = b.reset_to(&f, 128);
            b.set_port(0);
        }
        pipe.process(&env, &mut HeapPool, bufs.drain(..), &mut out);
        for t in out.tx.iter_mut() {
            bufs.extend(t.bufs.drain(..));
        }
        bufs.extend(out.drops.drain(..));
        out.tx.clear();
    };
    // Learn every flow first.
    let mut i = 0u32;
    while i < flows {
        run(&mut pipe, i);
        i += BURST as u32;
    }
    let mut next = 0u32;
    for _ in 0..bursts {
        run(&mut pipe, next);
        next = next.wrapping_add(7919 * BURST as u32) % flows;
    }
    let c = pipe.counters();
    println!(
        "flows {flows} bursts {bursts} rx {} tx {} drops {} learned {} hits {}",
        c.rx,
        c.tx,
        c.total_drops(),
        c.flows_learned,
        c.flow_hits
    );
}
