//! What this machine's memory allows a lookup in a table far larger than the
//! caches, whatever the table's code: lower bounds to hold the flow-table and
//! pipeline figures against.
//!
//! ```sh
//! cargo run --release -p vrouter-benches --example mem_floor -- [MIB] [ROUNDS] [F [table]]
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
//! * **The table's shape.** The same two kinds of lookup with the first
//!   read from a 2 MiB array of 8-byte words, as the flow table's control
//!   words (1.6 MB at 1M flows, small enough to stay in the last-level
//!   cache), and the second a line of the buffer that depends on the word,
//!   as its slot: bursts of 32 (every word of the burst read, then every
//!   slot line; the word picked by a random number, or by the table's hash
//!   of a flow key) and single lookups with F filler steps.
//! * **Inserts.** A loop of inserts shaped as the table's single insert: a
//!   locked read-modify-write of a random control word (the claim), eight
//!   stores to a slot line that depends on it (the fill), and a second
//!   locked read-modify-write of the word (the commit). A locked
//!   instruction on x86 is ordered after every earlier store, so the
//!   commit cannot complete before the slot line has come from memory.
//!   Beside it, the same loop with plain loads and stores in place of the
//!   locked instructions: the difference is what the locked instructions
//!   cost when inserts are short enough for the CPU to overlap them.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use flow_table::{FlowKey, FlowTable};
use vrouter_benches::flow_keys::key;
use vrouter_benches::map_large;

const LINE: usize = 64;
const BURST: usize = 32;
/// Lookups per single-lookup measurement.
const SINGLES: u64 = 2_000_000;
/// Bursts per burst measurement.
const BURSTS: u64 = 100_000;
/// Control words of the table-shaped modes: 2 MiB of them.
const CTRL_WORDS: usize = 1 << 18;
/// Inserts per insert measurement.
const INSERTS: u64 = 1_000_000;

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

/// ns per bursts of 32 lookups shaped as the table's batch lookup: each
/// reads a random word of `ctrl`, then a line of `buf` that depends on the
/// word (the word XORed with the number that picked it); the words of a
/// burst are all read before its lines; `pick` says what picks the word.
#[inline(never)]
fn table_bursts(buf: &[u8], ctrl: &[u64], pick: Pick<'_>) -> f64 {
    let (n, c) = (mask_below(buf.len() / LINE), mask_below(ctrl.len()));
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    // Each lookup's word and the number that picked it.
    let mut words = [(0u64, 0u64); BURST];
    let mut acc = 0u64;
    let mut next = 0usize;
    let t = Instant::now();
    for _ in 0..BURSTS {
        for w in words.iter_mut() {
            let r = match pick {
                Pick::Random => xorshift(&mut x),
                Pick::Hash { table, keys, mixed } => {
                    // A wrap, not `%`: a division per lookup would add
                    // its latency to every key.
                    next += 1;
                    if next >= keys.len() {
                        next = 0;
                    }
                    let h = keys.get(next).map_or(0, |k| table.hash(k).0);
                    if mixed {
                        h ^ xorshift(&mut x)
                    } else {
                        h
                    }
                }
            };
            *w = (ctrl_word(ctrl, r as usize & c), r);
        }
        // The line depends on the word read (a dependent read) and on the
        // number (so that the lookups name lines all over the buffer, as a
        // table's slots are, not only the 256k lines the words name).
        for &(w, r) in &words {
            acc = acc.wrapping_add(word(buf, (w ^ r.rotate_left(32)) as usize & n));
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / (BURSTS * BURST as u64) as f64;
    black_box(acc);
    ns
}

/// What picks the control word of a lookup in [`table_bursts`].
#[derive(Clone, Copy)]
enum Pick<'a> {
    /// A random number.
    Random,
    /// The table's hash of the next key of `keys` (a cycle): the floor with
    /// the one computation a lookup cannot skip. With `mixed`, the hash is
    /// XORed with a random number, so that a short cycle of keys (in the
    /// cache) still names lines not met again while cached.
    Hash {
        table: &'a FlowTable,
        keys: &'a [FlowKey],
        mixed: bool,
    },
}

fn ctrl_word(ctrl: &[u64], i: usize) -> u64 {
    ctrl.get(i).copied().unwrap_or(0)
}

/// Where a single lookup's first read comes from.
#[derive(Clone, Copy)]
enum First<'a> {
    /// A bucket line among the first quarter of the buffer (the slot lines
    /// are the rest).
    BucketLine,
    /// A word of a control-word array (the slot lines are the whole
    /// buffer).
    CtrlWord(&'a [u64]),
}

/// ns per single lookup: a random first read (`first`), then the slot
/// line that the word read names, plus `fill` filler steps independent of
/// both reads.
#[inline(never)]
fn singles(buf: &[u8], first: First<'_>, fill: u64) -> f64 {
    let (buckets, slots_at) = match first {
        First::BucketLine => {
            let b = mask_below(buf.len() / LINE / 4);
            (b, b + 1)
        }
        First::CtrlWord(ctrl) => (mask_below(ctrl.len()), 0),
    };
    let lines = mask_below(buf.len() / LINE);
    let mut acc = 0u64;
    let (mut f0, mut f1, mut f2, mut f3) = (1u64, 2u64, 3u64, 4u64);
    let t = Instant::now();
    for i in 0..SINGLES {
        let b = (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) as usize & buckets;
        // A bucket line's word is below the slot count already. A control
        // word is mixed with the lookup's number, so that the lookups name
        // lines all over the buffer (see `table_bursts`).
        let slot = match first {
            First::BucketLine => word(buf, b) as usize,
            First::CtrlWord(ctrl) => {
                (ctrl_word(ctrl, b) ^ i.wrapping_mul(0xff51_afd7_ed55_8ccd)) as usize & lines
            }
        };
        acc = acc.wrapping_add(word(buf, slots_at + slot));
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

/// ns per insert shaped as the table's single insert (the module docs):
/// with `locked`, a locked read-modify-write of a random word of `ctrl`,
/// eight stores to the line of `buf` that its value names, and a second
/// locked read-modify-write of the word; without, loads and stores of
/// the word in their places.
#[inline(never)]
fn inserts(buf: &mut [u8], ctrl: &[AtomicU64], locked: bool) -> f64 {
    let (n, c) = (mask_below(buf.len() / LINE), mask_below(ctrl.len()));
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let t = Instant::now();
    for i in 0..INSERTS {
        let r = xorshift(&mut x);
        let Some(w) = ctrl.get(r as usize & c) else {
            continue;
        };
        let v = if locked {
            w.fetch_add(1, Ordering::AcqRel)
        } else {
            let v = w.load(Ordering::Relaxed);
            w.store(v.wrapping_add(1), Ordering::Relaxed);
            v
        };
        // The line depends on the word (as a slot on its group's word) and
        // on the number that picked the word, so that inserts write lines
        // all over the buffer rather than next to the ones before.
        let at = ((v ^ r.rotate_left(32)) as usize & n) * LINE;
        if let Some(line) = buf.get_mut(at..at + LINE) {
            for word in line.chunks_exact_mut(8) {
                word.copy_from_slice(&i.to_ne_bytes());
            }
        }
        // A change, not `fetch_add(0)`: with its result unused, LLVM left
        // no instruction at all for that one in this loop.
        if locked {
            w.fetch_add(1, Ordering::AcqRel);
        } else {
            w.store(w.load(Ordering::Relaxed) ^ 1, Ordering::Release);
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / INSERTS as f64;
    black_box(&buf);
    ns
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(128, |a| a.parse().unwrap_or(128));
    let rounds: usize = args.next().map_or(3, |a| a.parse().unwrap_or(3));
    // A third argument runs only the single lookups with that many filler
    // steps (to count their instructions under callgrind); a fourth,
    // `table`, only those of the table's shape.
    let only: Option<u64> = args.next().and_then(|a| a.parse().ok());
    let table_only = args.next().is_some_and(|a| a == "table");
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
    // Control words: random values (a lookup's line depends on its word).
    let ctrl: Vec<u64> = (0..CTRL_WORDS).map(|_| xorshift(&mut x)).collect();
    if only.is_none() {
        #[allow(clippy::expect_used)] // measurement tool
        let table = FlowTable::with_capacity(1024).expect("a 1k-flow table");
        let keys: Vec<FlowKey> = (0..1u32 << 20).map(|i| key(i, false)).collect();
        let few = keys.get(..1 << 12).unwrap_or(&keys);
        for (name, pick) in [
            ("", Pick::Random),
            (
                ", keys hashed (4k keys, in the cache; hash XOR a random number)",
                Pick::Hash {
                    table: &table,
                    keys: few,
                    mixed: true,
                },
            ),
            (
                ", keys hashed (1M keys, 40 MB, read in turn as a benchmark reads them)",
                Pick::Hash {
                    table: &table,
                    keys: &keys,
                    mixed: false,
                },
            ),
        ] {
            let r: Vec<String> = (0..rounds)
                .map(|_| format!("{:.1}", table_bursts(&buf, &ctrl, pick)))
                .collect();
            println!(
                "bursts of 32, the table's shape (a 2 MiB control word, then its slot line){name}: {}",
                r.join(" / ")
            );
        }
    }
    let fills = only.map_or(vec![0, 2, 4, 8, 16, 32], |f| vec![f]);
    let single_parts = [
        ("two dependent lines", First::BucketLine),
        (
            "the table's shape (a 2 MiB control word, then its slot line)",
            First::CtrlWord(&ctrl),
        ),
    ];
    for (name, first) in single_parts.into_iter().skip(usize::from(table_only)) {
        for &fill in &fills {
            let r: Vec<String> = (0..rounds)
                .map(|_| format!("{:.1}", singles(&buf, first, fill)))
                .collect();
            println!(
                "single lookups, {name}, {fill} filler steps: {}",
                r.join(" / ")
            );
        }
    }
    if only.is_none() {
        let ctrl: Vec<AtomicU64> = ctrl.into_iter().map(AtomicU64::new).collect();
        for (name, locked) in [
            ("locked claim and commit", true),
            ("plain loads and stores", false),
        ] {
            let r: Vec<String> = (0..rounds)
                .map(|_| format!("{:.1}", inserts(&mut buf, &ctrl, locked)))
                .collect();
            println!("inserts, {name}: {}", r.join(" / "));
        }
    }
}
