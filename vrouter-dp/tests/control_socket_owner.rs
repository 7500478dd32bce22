//! The control socket's owner and group from the config file: names are looked up,
//! applied after bind, and decide who may connect; a bad name is a config error that
//! names its field. Needs root (it creates a throwaway user and group and removes
//! them again).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use vrouter_dp::control::{ControlConfig, ControlError, ControlPlane, NoPorts, NoStats, Server};
use vrouter_dp::fib::{Fib, FibConfig};

/// A user and a group of that name, removed on drop.
struct Throwaway {
    name: String,
}

impl Throwaway {
    fn create(name: &str) -> Self {
        let t = Throwaway {
            name: name.to_owned(),
        };
        t.remove();
        let o = Command::new("groupadd").arg(name).output().unwrap();
        assert!(o.status.success(), "groupadd: {o:?}");
        let o = Command::new("useradd")
            .args([
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "-g",
                name,
                name,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "useradd: {o:?}");
        t
    }

    fn id(&self, flag: &str) -> u32 {
        let o = Command::new("id")
            .args([flag, &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    }

    fn remove(&self) {
        let _ = Command::new("userdel").arg(&self.name).output();
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        self.remove();
    }
}

fn config(sock: &Path, owner: Option<&str>, group: Option<&str>) -> pmd_config::Config {
    let mut extra = String::new();
    if let Some(o) = owner {
        extra.push_str(&format!("owner = \"{o}\"\n"));
    }
    if let Some(g) = group {
        extra.push_str(&format!("group = \"{g}\"\n"));
    }
    let toml = format!(
        "[cores]\nworkers = [1]\ncontrol = 0\n[control]\nsocket = \"{}\"\n{extra}",
        sock.display()
    );
    pmd_config::Config::from_toml_str(&toml).unwrap()
}

fn ctl_as(uid: u32, gid: u32, sock: &Path) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_vrouterctl"))
        .arg("--socket")
        .arg(sock)
        .args(["--json", "info"])
        .output()
        .unwrap()
}

#[test]
fn owner_and_group_decide_who_connects() {
    let euid = std::fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(
        euid, 0,
        "this test must run as root: it creates a user and a group"
    );
    let name = format!("vrsock{}", std::process::id() % 100_000);
    let t = Throwaway::create(&name);
    let (uid, gid) = (t.id("-u"), t.id("-g"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("dp.sock");
    let cfg = config(&sock, Some("root"), Some(&name));
    let cc = ControlConfig::from_config(&cfg).unwrap();
    assert_eq!((cc.owner, cc.group), (Some(0), Some(gid)));
    let plane = ControlPlane::standalone(
        Fib::new(FibConfig::default()),
        Arc::new(NoStats),
        Arc::new(NoPorts),
    );
    let h = Server::start(cc, plane).unwrap();
    let m = std::fs::metadata(&sock).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (0, gid, 0o660));

    // A user who is neither the owner nor in the group is refused.
    let o = ctl_as(65534, 65534, &sock);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr)
        .to_lowercase()
        .contains("permission denied"));
    // The group's member gets through.
    let o = ctl_as(uid, gid, &sock);
    assert!(o.status.success(), "{o:?}");
    h.shutdown();

    // Numeric ids work as well as names.
    let cc = ControlConfig::from_config(&config(&sock, Some(&uid.to_string()), None)).unwrap();
    assert_eq!((cc.owner, cc.group), (Some(uid), None));
}

#[test]
fn unknown_names_are_config_errors_naming_the_field() {
    let sock = Path::new("/tmp/unused-vr.sock");
    let e = ControlConfig::from_config(&config(sock, Some("no-such-user-vr"), None)).unwrap_err();
    assert!(matches!(&e, ControlError::Config { field, .. } if field == "control.owner"));
    assert!(e.to_string().contains("no user named"), "{e}");
    let e = ControlConfig::from_config(&config(sock, None, Some("no-such-group-vr"))).unwrap_err();
    assert!(matches!(&e, ControlError::Config { field, .. } if field == "control.group"));
    // An empty name is refused when the file is validated.
    let toml = "[cores]\nworkers = [1]\ncontrol = 0\n[control]\nowner = \"\"\n";
    let e = pmd_config::Config::from_toml_str(toml).unwrap_err();
    assert!(e.to_string().contains("control.owner"), "{e}");
}
