//! Configuration, validation and host preparation for vrouter-dp.
//!
//! - [`Config`]: the TOML schema ([`Config::load`], [`Config::from_toml_str`]). Every
//!   table rejects unknown fields; every error names the field path, the reason and
//!   the line ([`ConfigError`]). The field-by-field reference is `docs/config.md`.
//! - [`eal_args`] / [`eal_args_with_root`]: the exact EAL argument vector, with VF
//!   ports resolved through sysfs; [`device_names`] maps config ports to DPDK devices.
//! - [`run_check_host`] / [`check_host`]: the preflight checks ([`preflight`]) and,
//!   with `apply`, the idempotent host preparation ([`prepare`]) behind
//!   `vrouter-dp check-host`, reported as a [`Report`].
//! - [`host::Host`]: the single fence around host side effects (file writes, mounts,
//!   commands); [`testing`] has a fake tree builder and a recording fake host.
//!
//! Every sysfs, procfs, /dev and /lib/modules path is resolved under a root directory,
//! so all of it runs against fake trees in tests.
//!
//! IOMMU group viability is decided from sysfs (every device of the group on
//! vfio-pci, a PCIe port driver or unbound, and `/dev/vfio/<group>` present) and, on a
//! real host where `/dev/vfio/vfio` exists, also asked of the kernel through rust-vmm's
//! vfio-ioctls (safe wrappers; no `unsafe` here). A group held by a running data plane
//! answers `EBUSY`: that is a warning, not a failure.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
pub mod eal;
pub mod error;
pub mod host;
mod locate;
pub mod preflight;
pub mod prepare;
pub mod report;
mod schema;
pub mod sysfs;
pub mod testing;
pub mod types;
mod validate;

pub use config::{
    Bond, BondMode, Config, Control, Cores, Eal, EcmpMember, Flows, Interface, InterfaceKind,
    Label, LacpRate, Memory, Nexthop, NexthopKind, PortConfig, PortNetns, PortRole, PortSource,
    Route, Telemetry, TunnelEncap, Underlay, VhostMode, VhostUser, Vni, Vrf, XmitPolicy,
    DEFAULT_CONFIG_TOML, DEFAULT_CONTROL_SOCKET, DEFAULT_FLOW_CAPACITY, MAX_FLOW_CAPACITY,
    MIN_FLOW_CAPACITY,
};
pub use eal::{
    bond_device_name, device_names, eal_args, eal_args_with_root, render_args, EalError,
};
pub use error::{ConfigError, FieldError};
pub use host::{Host, RealHost};
pub use preflight::{
    check_host, check_host_with, run_check_host, CheckHostError, CheckHostOptions,
};
pub use report::{Check, Report, Step, StepOutcome, Verdict};
pub use types::{HugepageSize, IovaMode, IpPrefix, MacAddr, PciAddr};
