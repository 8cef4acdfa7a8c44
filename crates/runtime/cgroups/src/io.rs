//! The narrow trait through which every OS effect of the manager goes.

use std::fmt::Debug;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Every effect the [`Manager`](crate::Manager) has on the host: cgroup file
/// reads and writes, directory creation and removal, and signals.
///
/// [`HostIo`] is the real implementation; [`fake::TreeIo`](crate::fake::TreeIo)
/// works on an ordinary directory tree and records what was done.
pub trait CgroupIo: Debug + Send + Sync {
    /// Reads a whole control file.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes `value` to an existing control file in a single `write(2)`.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    /// Writes each of `values` to an existing control file, one `write(2)`
    /// each, in order (a list of `devices.allow` rules). On failure, the
    /// index of the value refused.
    fn write_each(&self, path: &Path, values: &[String]) -> Result<(), (usize, io::Error)> {
        for (i, v) in values.iter().enumerate() {
            self.write(path, v).map_err(|e| (i, e))?;
        }
        Ok(())
    }
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Creates one directory (its parent must exist). An existing directory
    /// is reported as [`io::ErrorKind::AlreadyExists`].
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Removes one cgroup directory (control files do not count as content).
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Renames the cgroup directory `from` to `to`, in the same parent (v1
    /// only: cgroup2 has no rename). An existing `to` is
    /// [`io::ErrorKind::AlreadyExists`], as cgroupfs answers.
    fn rename_dir(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// The sub-directories (child cgroups) of `path`.
    fn subdirs(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    /// Sends `signal` to the process `pid`.
    fn kill(&self, pid: i32, signal: Signal) -> io::Result<()>;
}

/// The real host: files under the cgroup mounts and `kill(2)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostIo;

impl CgroupIo for HostIo {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        // No O_CREAT: cgroupfs cannot create files, and a missing control file
        // must surface as ENOENT rather than as a confusing EPERM.
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(value.as_bytes())
    }

    /// Opens the file once: each write is one rule to the kernel all the same.
    fn write_each(&self, path: &Path, values: &[String]) -> Result<(), (usize, io::Error)> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| (0, e))?;
        for (i, v) in values.iter().enumerate() {
            f.write_all(v.as_bytes()).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn rename_dir(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn subdirs(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        list_subdirs(path)
    }

    fn kill(&self, pid: i32, signal: Signal) -> io::Result<()> {
        nix::sys::signal::kill(Pid::from_raw(pid), signal).map_err(io::Error::from)
    }
}

/// Lists the directories directly inside `path` (symlinks are not followed).
pub(crate) fn list_subdirs(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_each_writes_in_order_and_names_the_refused_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("devices.allow");
        std::fs::write(&file, "").unwrap();
        let values = vec!["c 1:3 rwm\n".to_owned(), "c 1:5 rwm\n".to_owned()];
        HostIo.write_each(&file, &values).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "c 1:3 rwm\nc 1:5 rwm\n"
        );
        let (i, e) = HostIo
            .write_each(&dir.path().join("missing"), &values)
            .unwrap_err();
        assert_eq!((i, e.kind()), (0, io::ErrorKind::NotFound));
    }
}
