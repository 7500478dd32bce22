//! Errors of the control module: why the server could not start, and how refused
//! requests are reported to clients (gRPC statuses with per-field details).

use std::io;
use std::path::PathBuf;

use thiserror::Error;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::fib::FibError;

/// Why the server (or the exporter) could not start.
#[derive(Debug, Error)]
pub enum ControlError {
    /// The socket's directory could not be created.
    #[error("creating directory {path}: {source}")]
    SocketDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The socket path exists and is not a socket.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// Binding the socket failed.
    #[error("binding {path}: {source}")]
    Bind {
        /// The socket or address.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Setting the socket's mode or owner failed.
    #[error("setting permissions of {path}: {source}")]
    Permissions {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An address that does not parse or resolve.
    #[error("address {addr}: {reason}")]
    Address {
        /// The address as given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A config field that does not resolve (an unknown user or group name).
    #[error("config: {field}: {reason}")]
    Config {
        /// The field path, e.g. `control.owner`.
        field: String,
        /// Why.
        reason: String,
    },
    /// The runtime could not be created.
    #[error("starting the control runtime: {0}")]
    Runtime(#[source] io::Error),
}

/// One refused field of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field path, e.g. `changes[3].add_route.prefix`.
    pub field: String,
    /// Why it was refused.
    pub reason: String,
}

/// Field errors gathered while converting a request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    /// Records one field error.
    pub fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Violation {
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The INVALID_ARGUMENT status carrying every violation (at most 100 in the
    /// details, all of them counted in the message).
    pub fn into_status(self) -> Status {
        status_with(Code::InvalidArgument, &self.0)
    }
}

/// A status of `code` whose message summarises `v` and whose details carry a
/// `google.rpc.BadRequest` with one field violation per entry.
pub fn status_with(code: Code, v: &[Violation]) -> Status {
    let msg = match v {
        [] => "request refused".to_owned(),
        [one] => format!("{}: {}", one.field, one.reason),
        [first, rest @ ..] => format!(
            "{}: {} (and {} more errors)",
            first.field,
            first.reason,
            rest.len()
        ),
    };
    let mut details = ErrorDetails::new();
    for x in v.iter().take(100) {
        details.add_bad_request_violation(x.field.clone(), x.reason.clone());
    }
    Status::with_error_details(code, msg, details)
}

/// The status code a forwarding-state error maps to.
pub fn fib_code(e: &FibError) -> Code {
    match e {
        FibError::Missing { .. } | FibError::NhInUse { .. } | FibError::VifInUse { .. } => {
            Code::FailedPrecondition
        }
        FibError::NoRoute { .. }
        | FibError::NoBridgeEntry { .. }
        | FibError::NoLabel(_)
        | FibError::NoVni(_) => Code::NotFound,
        FibError::TableFull { .. } => Code::ResourceExhausted,
        _ => Code::InvalidArgument,
    }
}

/// The field an error is about, relative to the item.
pub fn fib_field(e: &FibError) -> &'static str {
    match e {
        FibError::PrefixLength { .. } | FibError::HostBits { .. } => "prefix",
        FibError::OutOfRange { what, .. } => match *what {
            "next-hop" => "id",
            other => other,
        },
        FibError::Missing { field, .. } | FibError::Invalid { field, .. } => field,
        FibError::NhInUse { .. } | FibError::VifInUse { .. } | FibError::ReservedNh => "id",
        FibError::NoRoute { .. } => "prefix",
        FibError::NoBridgeEntry { .. } => "mac",
        FibError::NoLabel(_) => "label",
        FibError::NoVni(_) => "vni",
        FibError::TableFull { .. } => "prefix",
    }
}

/// A NOT_FOUND status naming the object.
pub fn not_found(what: impl std::fmt::Display) -> Status {
    Status::not_found(format!("{what} does not exist"))
}

/// The single-violation status of a field error outside a batch.
pub fn invalid(field: &str, reason: impl Into<String>) -> Status {
    status_with(
        Code::InvalidArgument,
        &[Violation {
            field: field.to_owned(),
            reason: reason.into(),
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_every_violation() {
        let mut v = Violations::default();
        v.push("changes[0].add_route.prefix", "host bits set");
        v.push("changes[2].add_route.nh", "next-hop 9 does not exist");
        let s = v.into_status();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(
            s.message(),
            "changes[0].add_route.prefix: host bits set (and 1 more errors)"
        );
        let br = s.get_details_bad_request().unwrap();
        assert_eq!(br.field_violations.len(), 2);
        assert_eq!(br.field_violations[1].field, "changes[2].add_route.nh");
    }

    #[test]
    fn fib_errors_map_to_codes() {
        let e = FibError::Missing {
            field: "nh",
            what: "next-hop",
            id: 4,
        };
        assert_eq!(fib_code(&e), Code::FailedPrecondition);
        assert_eq!(fib_field(&e), "nh");
        assert_eq!(fib_code(&FibError::ReservedNh), Code::InvalidArgument);
    }
}
