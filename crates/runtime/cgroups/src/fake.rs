//! A recording fake of [`CgroupIo`] over an ordinary directory tree.
//!
//! Lay out a temporary directory like `/sys/fs/cgroup` (v1: one directory
//! per controller; v2: one tree), build a [`Hierarchy`](crate::Hierarchy)
//! pointing at it and hand a [`TreeIo`] to
//! [`Manager::with_io`](crate::Manager::with_io). Tests of this crate and of
//! the crates above it then run without root.
//!
//! It mimics the kernel where the manager depends on it:
//! * writes create the control file (cgroupfs creates them on `mkdir`);
//! * writing `cgroup.freeze` updates the `frozen` line of `cgroup.events`
//!   (v1 `freezer.state` needs nothing: reading back gives what was written);
//! * removing a directory whose `cgroup.procs` lists a pid, or that has
//!   child directories, fails with `EBUSY`; otherwise control files go too;
//! * signals are recorded, never sent;
//! * [`TreeIo::refuse`] makes writes to a named file fail with an errno.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::signal::Signal;

use crate::io::list_subdirs;
use crate::CgroupIo;

/// The recording fake; see the [module docs](self).
#[derive(Debug, Default)]
pub struct TreeIo {
    writes: Mutex<Vec<(PathBuf, String)>>,
    kills: Mutex<Vec<(i32, Signal)>>,
    refused: Mutex<Vec<(String, Errno)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TreeIo {
    /// A fake with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every successful write so far, in order, as (file, value).
    pub fn writes(&self) -> Vec<(PathBuf, String)> {
        lock(&self.writes).clone()
    }

    /// The values written to files named `file_name`, in order.
    pub fn writes_to(&self, file_name: &str) -> Vec<String> {
        lock(&self.writes)
            .iter()
            .filter(|(p, _)| p.file_name().is_some_and(|n| n == file_name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every signal "sent", in order, as (pid, signal).
    pub fn kills(&self) -> Vec<(i32, Signal)> {
        lock(&self.kills).clone()
    }

    /// Makes every later write to a file named `file_name` fail with `errno`,
    /// the way the kernel refuses a value.
    pub fn refuse(&self, file_name: &str, errno: Errno) {
        lock(&self.refused).push((file_name.to_owned(), errno));
    }
}

impl CgroupIo for TreeIo {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some((_, errno)) = lock(&self.refused).iter().find(|(f, _)| *f == name) {
            return Err(io::Error::from(*errno));
        }
        std::fs::write(path, value)?;
        if name == "cgroup.freeze" {
            if let Some(dir) = path.parent() {
                let frozen = value.trim();
                std::fs::write(
                    dir.join("cgroup.events"),
                    format!("populated 1\nfrozen {frozen}\n"),
                )?;
            }
        }
        lock(&self.writes).push((path.to_owned(), value.to_owned()));
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        if !path.is_dir() {
            return Err(io::Error::from(Errno::ENOENT));
        }
        let procs = std::fs::read_to_string(path.join("cgroup.procs")).unwrap_or_default();
        if !procs.trim().is_empty() || !list_subdirs(path)?.is_empty() {
            return Err(io::Error::from(Errno::EBUSY));
        }
        std::fs::remove_dir_all(path)
    }

    fn rename_dir(&self, from: &Path, to: &Path) -> io::Result<()> {
        // cgroupfs never replaces a directory (a plain file system would
        // replace an empty one).
        if to.exists() {
            return Err(io::Error::from(Errno::EEXIST));
        }
        std::fs::rename(from, to)
    }

    fn subdirs(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        list_subdirs(path)
    }

    fn kill(&self, pid: i32, signal: Signal) -> io::Result<()> {
        lock(&self.kills).push((pid, signal));
        Ok(())
    }
}
