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
//! `FLOWS BURSTS frames` runs the same bursts without the pipeline: the same
//! difference then gives the harness's own share (writing each burst's frames),
//! to subtract.

use vrouter_benches::decap_fixture::{frame, setup};

fn main() {
    vrouter_benches::count_bursts(setup, frame, 0);
}
