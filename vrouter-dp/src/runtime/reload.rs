//! Re-reading the config file's static forwarding state while running (SIGHUP).
//!
//! The new file is loaded and validated, its interfaces, next-hops, routes, labels
//! and VNIs are turned into FIB updates against the ports that exist, and objects the
//! previous file had and the new one lacks are deleted; the result is applied as one
//! batch, all or nothing. A file that does not load or does not convert changes
//! nothing. Only the static state is re-read: ports, cores and memory need a restart.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use pmd_config::Config;
use thiserror::Error;

use super::static_state::{self, PortFacts};
use crate::fib::{Label, MacAddr, NhId, Prefix, Update, VifId, Vni, VrfId};

/// Re-reading the config file on a signal.
#[derive(Debug, Clone)]
pub struct Reload {
    /// Set (by a signal handler) to ask for a reload; the control loop clears it.
    pub flag: Arc<AtomicBool>,
    /// The config file to re-read.
    pub path: PathBuf,
}

/// Why a reload changed nothing.
#[derive(Debug, Error)]
pub enum ReloadError {
    /// The file does not load or validate.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The validation errors.
        reason: String,
    },
    /// A static-state entry does not convert.
    #[error("{0}")]
    StaticState(#[from] static_state::StaticStateError),
    /// The forwarding state refused the batch.
    #[error("the forwarding state refused the batch: {0}")]
    Apply(String),
    /// There is no forwarding state to update (cross-connect mode).
    #[error("the data plane runs without forwarding state (no interfaces at start)")]
    NoFib,
}

/// The identity of an object in the static state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Vif(VifId),
    Nh(NhId),
    Route(VrfId, Prefix),
    Bridge(VrfId, MacAddr),
    Label(Label),
    Vni(Vni),
}

fn key(u: &Update) -> Option<Key> {
    Some(match u {
        Update::AddVif(v) => Key::Vif(v.id),
        Update::AddNh(id, _) => Key::Nh(*id),
        Update::AddRoute { vrf, prefix, .. } => Key::Route(*vrf, *prefix),
        Update::AddBridge { vrf, mac, .. } => Key::Bridge(*vrf, *mac),
        Update::AddLabel(l, _) => Key::Label(*l),
        Update::AddVni(v, _) => Key::Vni(*v),
        _ => return None,
    })
}

/// Deletion order: users before what they use.
fn rank(k: &Key) -> u8 {
    match k {
        Key::Route(..) | Key::Bridge(..) | Key::Label(_) | Key::Vni(_) => 0,
        Key::Nh(_) => 1,
        Key::Vif(_) => 2,
    }
}

/// The batch that turns the `previous` static state into `next`: every update of
/// `next` (adds replace), then deletes of what only `previous` has (routes, bridge
/// entries, labels and VNIs first, then next-hops, then interfaces).
pub fn diff(previous: &[Update], next: &[Update]) -> Vec<Update> {
    let keep: HashSet<Key> = next.iter().filter_map(key).collect();
    let mut gone: Vec<Key> = previous
        .iter()
        .filter_map(key)
        .filter(|k| !keep.contains(k))
        .collect();
    gone.sort_by_key(rank);
    let mut out = next.to_vec();
    out.extend(gone.into_iter().map(|k| match k {
        Key::Vif(id) => Update::DelVif(id),
        Key::Nh(id) => Update::DelNh(id),
        Key::Route(vrf, prefix) => Update::DelRoute { vrf, prefix },
        Key::Bridge(vrf, mac) => Update::DelBridge { vrf, mac },
        Key::Label(l) => Update::DelLabel(l),
        Key::Vni(v) => Update::DelVni(v),
    }));
    out
}

/// Loads `path` and builds its static state for `ports`; returns the new static
/// updates (to remember for the next reload) and the batch to apply.
pub fn load(
    path: &std::path::Path,
    ports: &[PortFacts],
    previous: &[Update],
) -> Result<(Vec<Update>, Vec<Update>), ReloadError> {
    let cfg = Config::load(path).map_err(|e| ReloadError::Config {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let next = static_state::updates(&cfg, ports)?;
    let batch = diff(previous, &next);
    Ok((next, batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::{NhSpec, RouteTarget};

    fn route(p: &str, nh: u32) -> Update {
        let (a, l) = p.split_once('/').unwrap();
        Update::AddRoute {
            vrf: VrfId(0),
            prefix: Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap(),
            target: RouteTarget {
                nh: NhId(nh),
                label: None,
            },
        }
    }

    #[test]
    fn diff_adds_everything_new_and_deletes_users_first() {
        let prev = vec![
            Update::AddNh(NhId(5), NhSpec::Discard),
            route("10.0.0.0/8", 5),
            route("10.1.0.0/16", 5),
        ];
        let next = vec![route("10.1.0.0/16", 0)];
        let b = diff(&prev, &next);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0], next[0]);
        assert!(matches!(b[1], Update::DelRoute { prefix, .. } if prefix.prefix_len() == 8));
        assert_eq!(b[2], Update::DelNh(NhId(5)));
        // Same state again: the batch only re-adds.
        assert_eq!(diff(&next, &next), next);
    }
}
