//! The latency of one dependent random read over a large buffer: the floor under
//! any lookup that has to read a cache line it has not read recently and cannot
//! start before the previous read returns (a single flow-table lookup reads its
//! bucket line, then the slot line the bucket names; a hash map probe likewise).
//!
//! ```sh
//! cargo run --release -p vrouter-benches --example mem_latency -- [MIB] [STEPS]
//! ```
//!
//! The buffer (default 128 MiB, the size of a 1M-flow table) is mapped from 2 MiB
//! hugepages when the kernel has them, otherwise from normal pages advised for
//! transparent hugepages; every 64-byte line holds the index of the next line of
//! one random cycle through all of them, and the chase follows it for STEPS reads
//! (default 20M). A second chase over a 64 KiB buffer gives the cached figure.

use std::time::Instant;

use vrouter_benches::map_large;

const LINE: usize = 64;

/// Links the buffer's lines into one random cycle (Sattolo's algorithm).
fn link(buf: &mut [u8]) {
    let lines = buf.len() / LINE;
    let mut order: Vec<u64> = (0..lines as u64).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..lines).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % i as u64) as usize);
    }
    for (k, &from) in order.iter().enumerate() {
        let to = order[(k + 1) % lines];
        let at = from as usize * LINE;
        buf[at..at + 8].copy_from_slice(&to.to_ne_bytes());
    }
}

/// Nanoseconds per dependent read over `buf`.
fn chase(buf: &[u8], steps: u64) -> f64 {
    let read = |i: u64| {
        let at = i as usize * LINE;
        u64::from_ne_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
    };
    // One lap warms the TLB and whatever fits in cache.
    let mut i = 0u64;
    for _ in 0..(buf.len() / LINE).min(steps as usize) {
        i = read(i);
    }
    let t = Instant::now();
    for _ in 0..steps {
        i = read(i);
    }
    let ns = t.elapsed().as_nanos() as f64 / steps as f64;
    std::hint::black_box(i);
    ns
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(128, |a| a.parse().expect("MIB"));
    let steps: u64 = args
        .next()
        .map_or(20_000_000, |a| a.parse().expect("STEPS"));
    let (mut big, kind) = map_large(mib << 20);
    link(&mut big);
    let mut small = vec![0u8; 64 << 10];
    link(&mut small);
    println!(
        "dependent random reads: {:.1} ns over {mib} MiB ({kind}), {:.1} ns over 64 KiB",
        chase(&big, steps),
        chase(&small, steps)
    );
}
