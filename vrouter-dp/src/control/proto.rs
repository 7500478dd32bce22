//! The generated messages and service stubs of `vrouter.v1`
//! (`proto/vrouter/v1/vrouter.proto`).
#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

tonic::include_proto!("vrouter.v1");
