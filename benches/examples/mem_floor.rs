//! What this machine's memory allows a lookup in a table far larger than the
//! caches, whatever the table's code: lower bounds to hold the flow-table and
//! pipeline figures against.
//!
//! ```sh
//! cargo run --release -p vrouter-benches --example mem_floor -- [MIB] [ROUNDS]
//! ```
//!
//! The buffer (default 128 MiB, about a 1M-flow table: buckets, slots and
//! counters) is mapped as `mem_latency` maps it (2 MiB hugepages when the
//! kernel has them). Two parts, ROUNDS times each (default 3), ns per lookup:
//!
//! * **Bursts.** 32 lookups at a time, each reading 1, 2 or 3 random 64-byte
//!   lines, 2 neighbouring lines of one 128-byte pair, or a random line plus
//!   a random line and the line after it (a flow's counters stored next to its
//!   slot, 96 bytes for both, in place of a third random line). The reads of a burst
//!   are independent of each other and the loop does nothing else, so the
//!   CPU keeps as many of them in flight as it can: the floor for a batched
//!   lookup that touches that many lines (a flow-table batch lookup reads a
//!   bucket and a slot; the pipeline adds the flow's counters).
//! * **Single lookups.** A loop of independent lookups, each reading a random
//!   bucket line and then the slot line that bucket names, as a single flow
//!   lookup must (two dependent reads), plus F filler steps of four ALU
//!   instructions that do not depend on the reads (F = 0 .. 32). The CPU
//!   overlaps consecutive lookups only as far as its reorder window holds
//!   them, so the figure rises with the instructions per lookup. Filler that
//!   does not wait for the reads is the most favourable case: a real lookup's
//!   instructions mostly do wait for them. Instructions per lookup for each F
//!   come from `valgrind --tool=callgrind` of the same binary (the filler loop
//!   compiles to about 4 F + 10 instructions; BENCHMARKS.md gives the counts).

use std::hint::black_box;
use std::time::Instant;

use vrouter_benches::map_large;

const LINE: usize = 64;
const BURST: usize = 32;
/// Lookups per single-lookup measurement.
const SINGLES: u64 = 2_000_000;
/// Bursts per burst measurement.
const BURSTS: u64 = 100_000;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// The largest power of two not above `n` (at least 1), as a mask below it:
/// line indices are taken with a mask, not a division (a 64-bit `div` costs
/// more than the loop around it).
fn mask_below(n: usize) -> usize {
    (1usize << (usize::BITS - 1 - n.max(1).leading_zeros())) - 1
}

fn word(buf: &[u8], line: usize) -> u64 {
    let at = line * LINE;
    buf.get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_ne_bytes)
}

/// How the lines of one lookup in a burst are chosen.
#[derive(Clone, Copy)]
enum Lines {
    /// `n` independent random lines.
    Random(usize),
    /// A random line and the other line of its 128-byte pair.
    Pair,
    /// A random line, then another random line and the line after it.
    OneAndNext,
}

/// ns per lookup for bursts of 32 lookups reading `lines` each.
fn bursts(buf: &[u8], lines: Lines) -> f64 {
    let n = mask_below(buf.len() / LINE);
    let per = match lines {
        Lines::Random(k) => k,
        Lines::Pair => 2,
        Lines::OneAndNext => 3,
    };
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut at = [0usize; BURST * 3];
    let mut acc = 0u64;
    let t = Instant::now();
    for _ in 0..BURSTS {
        for l in at.chunks_exact_mut(per).take(BURST) {
            match lines {
                Lines::Random(_) => {
                    for a in l.iter_mut() {
                        *a = xorshift(&mut x) as usize & n;
                    }
                }
                Lines::Pair => {
                    if let [a, b] = l {
                        *a = xorshift(&mut x) as usize & n;
                        *b = *a ^ 1;
                    }
                }
                Lines::OneAndNext => {
                    if let [a, b, c] = l {
                        *a = xorshift(&mut x) as usize & n;
                        *b = xorshift(&mut x) as usize & n;
                        *c = (*b + 1) & n;
                    }
                }
            }
        }
        for &a in at.iter().take(BURST * per) {
            acc = acc.wrapping_add(word(buf, a));
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / (BURSTS * BURST as u64) as f64;
    black_box(acc);
    ns
}

/// ns per single lookup: a random bucket line among the first quarter of
/// `buf`, then the slot line (in the rest) that its first word names, plus
/// `fill` filler steps independent of both reads.
#[inline(never)]
fn singles(buf: &[u8], fill: u64) -> f64 {
    let buckets = mask_below(buf.len() / LINE / 4);
    let mut acc = 0u64;
    let (mut f0, mut f1, mut f2, mut f3) = (1u64, 2u64, 3u64, 4u64);
    let t = Instant::now();
    for i in 0..SINGLES {
        let b = (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) as usize & buckets;
        let slot = word(buf, b) as usize;
        acc = acc.wrapping_add(word(buf, buckets + 1 + slot));
        for _ in 0..black_box(fill) {
            f0 = f0.rotate_left(1) ^ i;
            f1 = f1.rotate_left(2) ^ i;
            f2 = f2.rotate_left(3) ^ i;
            f3 = f3.rotate_left(5) ^ i;
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / SINGLES as f64;
    black_box((acc, f0, f1, f2, f3));
    ns
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(128, |a| a.parse().unwrap_or(128));
    let rounds: usize = args.next().map_or(3, |a| a.parse().unwrap_or(3));
    // A third argument runs only the single lookups with that many filler
    // steps (to count their instructions under callgrind).
    let only: Option<u64> = args.next().and_then(|a| a.parse().ok());
    let (mut buf, kind) = map_large(mib << 20);
    // Every bucket line names a random slot line; every line is written, so
    // all pages are present before timing.
    let lines = buf.len() / LINE;
    let slots = lines - lines / 4;
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for l in buf.chunks_exact_mut(LINE) {
        let v = xorshift(&mut x) % slots as u64;
        l[..8].copy_from_slice(&v.to_ne_bytes());
    }
    println!("{mib} MiB, {kind}; ns per lookup, {rounds} rounds");
    let modes = [
        ("1 random line", Lines::Random(1)),
        ("2 random lines", Lines::Random(2)),
        ("2 lines of one 128-byte pair", Lines::Pair),
        ("3 random lines", Lines::Random(3)),
        (
            "a random line, then a random line and the next",
            Lines::OneAndNext,
        ),
    ];
    for (name, lines) in modes.into_iter().filter(|_| only.is_none()) {
        let r: Vec<String> = (0..rounds)
            .map(|_| format!("{:.1}", bursts(&buf, lines)))
            .collect();
        println!("bursts of 32, {name}: {}", r.join(" / "));
    }
    let fills = only.map_or(vec![0, 2, 4, 8, 16, 32], |f| vec![f]);
    for fill in fills {
        let r: Vec<String> = (0..rounds)
            .map(|_| format!("{:.1}", singles(&buf, fill)))
            .collect();
        println!(
            "single lookups, two dependent lines, {fill} filler steps: {}",
            r.join(" / ")
        );
    }
}
