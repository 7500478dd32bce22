//! Runs a fixed number of pipeline bursts (pod -> remote VXLAN, heap buffers) so
//! that a profiler or an instruction counter sees only the pipeline:
//!
//! ```sh
//! cargo build --release -p vrouter-benches --example pipeline_count
//! valgrind --tool=cachegrind target/release/examples/pipeline_count FLOWS BURSTS
//! perf record target/release/examples/pipeline_count 1 10000000
//! ```
//!
//! Instructions per packet = (Ir(BURSTS=b2) - Ir(BURSTS=b1)) / ((b2 - b1) * 32).
//! `FLOWS BURSTS frames` runs the same bursts without the pipeline: the same
//! difference then gives the harness's own share (writing each burst's frames),
//! to subtract.

use vrouter_benches::pipeline_fixture::{frame, setup};

fn main() {
    vrouter_benches::count_bursts(setup, frame, 3);
}
