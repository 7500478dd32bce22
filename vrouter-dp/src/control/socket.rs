//! The API's Unix socket: directory, stale-file removal, bind, mode and ownership.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use super::{ControlConfig, ControlError};

/// Binds the socket of `cfg` with its mode and ownership. Must run inside a tokio
/// runtime.
pub fn bind(cfg: &ControlConfig) -> Result<tokio::net::UnixListener, ControlError> {
    let path = cfg.socket.as_path();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| ControlError::SocketDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    remove_stale(path)?;
    let l = tokio::net::UnixListener::bind(path).map_err(|source| ControlError::Bind {
        path: path.display().to_string(),
        source,
    })?;
    let perm = |source: io::Error| ControlError::Permissions {
        path: path.to_owned(),
        source,
    };
    if cfg.owner.is_some() || cfg.group.is_some() {
        std::os::unix::fs::chown(path, cfg.owner, cfg.group).map_err(perm)?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(cfg.mode & 0o7777)).map_err(perm)?;
    Ok(l)
}

/// The uid of a user given by name or as a number.
pub(super) fn uid_of(user: &str) -> Result<u32, String> {
    if let Ok(n) = user.trim().parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(format!("no user named {user:?}")),
        Err(e) => Err(format!("looking up user {user:?}: {e}")),
    }
}

/// The gid of a group given by name or as a number.
pub(super) fn gid_of(group: &str) -> Result<u32, String> {
    if let Ok(n) = group.trim().parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("no group named {group:?}")),
        Err(e) => Err(format!("looking up group {group:?}: {e}")),
    }
}

/// Removes a socket file left by an earlier run; refuses to remove anything else.
fn remove_stale(path: &Path) -> Result<(), ControlError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            fs::remove_file(path).map_err(|source| ControlError::Bind {
                path: path.display().to_string(),
                source,
            })
        }
        Ok(_) => Err(ControlError::NotASocket(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ControlError::Bind {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups_resolve_by_name_or_number() {
        assert_eq!(uid_of("0"), Ok(0));
        assert_eq!(uid_of("root"), Ok(0));
        assert_eq!(gid_of("root"), Ok(0));
        assert_eq!(gid_of("4242"), Ok(4242));
        let e = uid_of("no-such-user-vr").unwrap_err();
        assert!(e.contains("no user named"), "{e}");
        let e = gid_of("no-such-group-vr").unwrap_err();
        assert!(e.contains("no group named"), "{e}");
    }
}
