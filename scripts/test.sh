#!/usr/bin/env bash
# Runs the whole vrouter-dp test suite: formatting, clippy, every test (each test in
# its own process under cargo-nextest, because EAL can start only once per process),
# the flow table's loom model check, and the deployment tests (scripts/test-deploy.sh).
#
# Needs the host prepared by scripts/setup-host.sh (DPDK, tshark, scapy, hugepages);
# tests that need those fail, not skip, when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s ===\n' "$*"; }

if ! cargo nextest --version >/dev/null 2>&1; then
    step "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "the README's demo command names one binary"
# The README's first command ends in the `cargo run` that starts the demo; the
# tests run the binary directly, so check that this command resolves to the data
# plane too (it prints the EAL arguments and exits instead of running the demo).
demo_cmd=$(awk '/^```sh$/ { getline; print; exit }' README.md)
cargo_run=${demo_cmd##*&& }
case "$cargo_run" in
    "cargo run "*) ;;
    *) echo "README's first command does not end in 'cargo run ...': $demo_cmd" >&2; exit 1 ;;
esac
eal_args=$($cargo_run -- --print-eal-args)
case "$eal_args" in
    "vrouter-dp "*" --vdev "*) echo "$cargo_run -> $eal_args" ;;
    *) echo "'$cargo_run -- --print-eal-args' printed: $eal_args" >&2; exit 1 ;;
esac

step "tests (cargo nextest, one process per test)"
cargo nextest run --workspace --no-fail-fast

if [ -f flow-table/tests/loom.rs ]; then
    step "flow-table loom model check"
    RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}" \
        CARGO_TARGET_DIR=target/loom \
        cargo test -p flow-table --release --test loom
fi

step "deployment files (image build script, Kubernetes manifests, Ansible role)"
scripts/test-deploy.sh

step "all tests passed"
