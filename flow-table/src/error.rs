//! Typed errors of the flow table.

use std::path::PathBuf;

/// A flow key could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The VRF id does not fit the key's 23-bit VRF field.
    #[error("vrf id {0} is out of range (max {max})", max = crate::key::VrfId::MAX)]
    VrfOutOfRange(u32),
    /// Source and destination addresses are of different families.
    #[error("source and destination addresses are of different families")]
    MixedFamily,
}

/// An insert did not add the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// No free slot is left, or both candidate buckets of the key are full.
    /// The table's `full_table` / `full_bucket` counter was incremented.
    #[error("flow table is full")]
    Full,
}

/// An operation on an existing flow did not find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// The key is not in the table, or the flow id refers to a flow that has
    /// been removed (its slot may since have been reused).
    #[error("flow not found")]
    NotFound,
}

/// The table could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The capacity is not a power of two within the supported range.
    #[error("invalid capacity {0}: must be a power of two between {min} and {max}", min = crate::MIN_CAPACITY, max = crate::MAX_CAPACITY)]
    InvalidCapacity(usize),
    /// Mapping anonymous memory failed.
    #[error("cannot map {bytes} bytes of memory")]
    Map {
        /// Size of the mapping that failed.
        bytes: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Creating, sizing or mapping the backing file failed.
    #[error("cannot create flow table file {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// An existing table file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Opening or mapping the file failed.
    #[error("cannot open flow table file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the flow table magic number.
    #[error("not a flow table file (bad magic {0:#018x})")]
    BadMagic(u64),
    /// The file was written by an unsupported format version.
    #[error("unsupported flow table format version {0}")]
    UnsupportedVersion(u64),
    /// The header describes a layout this build cannot use.
    #[error("corrupt flow table header: {0}")]
    BadHeader(&'static str),
    /// The file is shorter than the layout described by its header.
    #[error("flow table file is truncated: {actual} bytes, header needs {expected}")]
    Truncated {
        /// Bytes the layout needs.
        expected: u64,
        /// Bytes in the file.
        actual: u64,
    },
    /// This build hashes keys differently from the one that created the
    /// file, so keyed lookups would miss.
    #[error("flow hash function differs from the one that created the table")]
    HashMismatch,
}
