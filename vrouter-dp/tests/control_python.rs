//! A real external client: `tests/python/client_test.py` generates grpcio stubs from
//! the repository's `.proto` and programs the server. Fails (never skips) when
//! python3-grpcio or python3-grpc-tools is missing (see scripts/setup-host.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod control_common;

use std::path::PathBuf;
use std::process::Command;

use control_common::*;

#[test]
fn python_grpcio_client_programs_and_reads_back() {
    let python = "/usr/bin/python3";
    let probe = Command::new(python)
        .args(["-c", "import grpc, grpc_tools.protoc"])
        .output()
        .unwrap_or_else(|e| panic!("{python} is required for this test: {e}"));
    assert!(
        probe.status.success(),
        "python3-grpcio and python3-grpc-tools are required (scripts/setup-host.sh installs them): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let env = Env::start();
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = manifest.join("../tests/python/client_test.py");
    let proto = manifest.join("proto");
    let o = Command::new(python)
        .arg(&script)
        .arg(&proto)
        .arg(env.socket())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "client failed:\n{out}\n{err}");
    assert!(out.contains("python client: ok (258 routes"), "{out}");
    // The state the client left is visible to the workers' snapshot.
    let snap = env.handle.as_ref().unwrap().snapshot().unwrap();
    let t = snap
        .route(
            vrouter_dp::fib::VrfId(3),
            "10.100.7.9".parse::<std::net::IpAddr>().unwrap(),
        )
        .unwrap();
    assert_eq!((t.nh.0, t.label), (11, Some(1007)));
}
