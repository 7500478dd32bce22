//! Generates the gRPC stubs of the control API from `proto/vrouter/v1/vrouter.proto`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/vrouter/v1/vrouter.proto";
    println!("cargo:rerun-if-changed={proto}");
    tonic_build::configure()
        .build_client(true)
        .build_server(true)
        .type_attribute(".vrouter.v1", "#[derive(serde::Serialize)]")
        .compile_protos(&[proto], &["proto"])?;
    Ok(())
}
