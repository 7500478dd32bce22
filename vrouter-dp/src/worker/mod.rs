//! Poll-mode workers: the loop of one pinned lcore and its counters.

pub mod commands;
pub mod pipeline;
pub mod stage;
pub mod stats;
pub mod xconnect;

pub use pipeline::{PipelineWorker, SharedCounters};
pub use stats::{WorkerStats, WorkerStatsSnapshot};
pub use xconnect::XconnectWorker;
