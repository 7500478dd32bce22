//! The one fence around the host: every read and write of sysfs/procfs/dev files,
//! every mount and every command goes through [`Host`]. Paths are given as on the host
//! (`/sys/...`) and resolved under [`Host::root`], so checks and preparation run
//! against a fake tree in tests ([`crate::testing::FakeHost`]) exactly as on a node.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Output of a command run on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit status code (`None` when killed by a signal).
    pub status: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CommandOutput {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Host operations. The read methods have default implementations over `std::fs`
/// under [`Host::root`]; the side effects (writes, mounts, commands) are what a fake
/// records and simulates.
pub trait Host {
    /// The directory the host's `/` is found at (`/` on a real node).
    fn root(&self) -> &Path;

    /// Resolves a host path (`/sys/...`) under the root.
    fn path(&self, host_path: &Path) -> PathBuf {
        let rel = host_path.strip_prefix("/").unwrap_or(host_path);
        self.root().join(rel)
    }

    /// Reads a file as text.
    fn read_file(&self, host_path: &Path) -> io::Result<String> {
        std::fs::read_to_string(self.path(host_path))
    }

    /// Reads a symlink's target.
    fn read_link(&self, host_path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(self.path(host_path))
    }

    /// Resolves all symlinks of a path, returned as a host path (root stripped).
    fn canonicalize(&self, host_path: &Path) -> io::Result<PathBuf> {
        let real = std::fs::canonicalize(self.path(host_path))?;
        let root = std::fs::canonicalize(self.root())?;
        Ok(match real.strip_prefix(&root) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) => real,
        })
    }

    /// Asks the kernel (VFIO_GROUP_GET_STATUS through vfio-ioctls) whether the IOMMU
    /// group of the PCI device at `sysfs_dev` (a host path such as
    /// `/sys/bus/pci/devices/0000:3b:00.0`) is viable. `None` when the kernel cannot be
    /// asked (no `/dev/vfio/vfio`, or a fake root); `Some(Err(..))` when asking failed
    /// for another reason (for example the group is already held by a running data
    /// plane: EBUSY).
    fn vfio_group_viable(&self, _sysfs_dev: &Path) -> Option<Result<bool, String>> {
        None
    }

    /// Names in a directory, sorted.
    fn read_dir(&self, host_path: &Path) -> io::Result<Vec<String>> {
        let mut v: Vec<String> = std::fs::read_dir(self.path(host_path))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        Ok(v)
    }

    /// True when the path exists (following links).
    fn exists(&self, host_path: &Path) -> bool {
        self.path(host_path).exists()
    }

    /// Writes a sysfs/procfs attribute (or any file).
    fn write_file(&self, host_path: &Path, contents: &str) -> io::Result<()>;

    /// Creates a directory and its parents.
    fn create_dir_all(&self, host_path: &Path) -> io::Result<()>;

    /// Mounts a filesystem: `mount -t <fstype> -o <options> <source> <target>`.
    fn mount(&self, fstype: &str, source: &str, target: &Path, options: &str) -> io::Result<()>;

    /// Runs a command (e.g. `modprobe vfio-pci`).
    fn run_command(&self, program: &str, args: &[&str]) -> io::Result<CommandOutput>;
}

/// The real host. Writes go to the files under `root`; mounts and commands are only
/// allowed when `root` is `/` (a fake tree must never cause a real mount).
#[derive(Debug, Clone)]
pub struct RealHost {
    root: PathBuf,
}

impl RealHost {
    /// A host whose `/` is at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RealHost { root: root.into() }
    }

    fn require_real_root(&self, what: &str) -> io::Result<()> {
        if self.root == Path::new("/") {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "refusing to {what}: the host root is {}, not /",
                    self.root.display()
                ),
            ))
        }
    }
}

impl Host for RealHost {
    fn root(&self) -> &Path {
        &self.root
    }

    fn vfio_group_viable(&self, sysfs_dev: &Path) -> Option<Result<bool, String>> {
        if self.root != Path::new("/") || !Path::new("/dev/vfio/vfio").exists() {
            return None;
        }
        Some(vfio_probe::group_viable(sysfs_dev))
    }

    fn write_file(&self, host_path: &Path, contents: &str) -> io::Result<()> {
        std::fs::write(self.path(host_path), contents)
    }

    fn create_dir_all(&self, host_path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(self.path(host_path))
    }

    fn mount(&self, fstype: &str, source: &str, target: &Path, options: &str) -> io::Result<()> {
        self.require_real_root("mount")?;
        let target = target.to_string_lossy();
        let out = self.run_command("mount", &["-t", fstype, "-o", options, source, &target])?;
        if out.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "mount failed: {}",
                out.stderr.trim()
            )))
        }
    }

    fn run_command(&self, program: &str, args: &[&str]) -> io::Result<CommandOutput> {
        self.require_real_root("run commands")?;
        let out = Command::new(program).args(args).output()?;
        Ok(CommandOutput {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The one place that talks to the kernel's VFIO API (through rust-vmm's vfio-ioctls).
mod vfio_probe {
    use std::path::Path;
    use std::sync::Arc;

    use vfio_ioctls::{VfioContainer, VfioDevice, VfioError};

    /// Opens a VFIO container, then the device (which opens its group and checks
    /// VFIO_GROUP_FLAGS_VIABLE), and closes both again: `Ok(false)` when the kernel
    /// says the group is not viable.
    pub(super) fn group_viable(sysfs_dev: &Path) -> Result<bool, String> {
        let container =
            VfioContainer::new(None).map_err(|e| format!("open /dev/vfio/vfio: {e}"))?;
        match VfioDevice::new(sysfs_dev, Arc::new(container), false) {
            Ok(dev) => {
                drop(dev);
                Ok(true)
            }
            Err(VfioError::GroupViable) => Ok(false),
            Err(e) => Err(format!("{e}")),
        }
    }
}
