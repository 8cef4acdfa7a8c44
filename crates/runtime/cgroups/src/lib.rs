//! Cgroup driver for the strato runtime (and, later, the engine's `docker stats`).
//!
//! Entry points: [`detect`] finds which cgroup layout the host uses and returns
//! a [`Hierarchy`]; [`Manager::new`] binds that hierarchy to one container's
//! `cgroupsPath` and offers `create`, `add_task`, `apply`, `pids`, `freeze`,
//! `kill_all`, `stats`, `paths` and `destroy`.
//!
//! # Layouts
//!
//! * **cgroup v1** ("legacy"): one mount per hierarchy under `/sys/fs/cgroup`,
//!   each holding one or more co-mounted controllers (`cpu,cpuacct`) or a named
//!   hierarchy (`name=systemd`). Found by reading `/proc/self/mountinfo`.
//! * **hybrid**: v1 as above plus a controller-less cgroup2 mount at
//!   `/sys/fs/cgroup/unified`, used only for process tracking. Treated as v1;
//!   the container is also placed in the unified hierarchy.
//! * **cgroup v2** ("unified"): a single cgroup2 mount at `/sys/fs/cgroup`.
//!
//! # Why hand-written
//!
//! The driver is a set of thin file writes written by hand rather than a
//! wrapper around a larger cgroup library: every OS effect goes through the
//! narrow [`CgroupIo`] trait (read, write, mkdir, rmdir, kill), which keeps
//! the logic testable on a plain temporary directory with the recording fake
//! in [`fake`], while the real [`HostIo`] is exercised as root by the
//! integration tests in `tests/`.
//!
//! # Paths
//!
//! A `cgroupsPath` such as `/strato/<id>` is taken relative to the mount point
//! of each hierarchy. Relative paths (`strato/<id>`) are interpreted the same
//! way (the OCI spec lets the runtime choose; the hierarchy root is the
//! choice that gives the same cgroup no matter which process asks). Paths
//! with `..` components are rejected.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod detect;
pub mod fake;
mod io;
mod manager;
mod path;
mod resources;
mod stats;

use std::path::PathBuf;

pub use detect::{detect, detect_from, parse_mountinfo, Hierarchy, MountInfo, V1Mount};
pub use io::{CgroupIo, HostIo};
pub use manager::{CgroupDir, Manager, Version, SPARES, SPARE_PREFIX};
pub use path::normalize_cgroups_path;
pub use resources::{
    cpu_max_value, device_rule, shares_to_weight, swap_to_v2, CPU_PERIOD_DEFAULT_US,
};
pub use stats::{CpuStats, CpuUsage, MemoryEntry, MemoryStats, PidsStats, Stats, Throttling};

/// Errors from detecting, configuring or reading cgroups.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `statfs` on the cgroup root failed.
    #[error("cannot statfs cgroup root {path}: {source}")]
    Statfs {
        /// The root that was inspected.
        path: PathBuf,
        /// The errno.
        source: nix::Error,
    },
    /// No cgroup hierarchy was found under the root.
    #[error(
        "no cgroup hierarchy found under {root}: mount cgroup2 there or cgroup v1 controllers below it"
    )]
    NoHierarchy {
        /// The root that was inspected.
        root: PathBuf,
    },
    /// A line of mountinfo could not be parsed.
    #[error("malformed mountinfo line {line:?}: {reason}")]
    Mountinfo {
        /// The offending line.
        line: String,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The `cgroupsPath` from the spec is not acceptable.
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Reading a cgroup file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing a value to a cgroup file failed (the kernel refused it).
    #[error("cannot write {value:?} to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The value that was refused.
        value: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Creating a cgroup directory failed.
    #[error("cannot create cgroup {path}: {source}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Removing a cgroup directory failed.
    #[error("cannot remove cgroup {path}: {source} (are processes still running in it?)")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Sending a signal to a process of the cgroup failed.
    #[error("cannot send {signal} to pid {pid}: {source}")]
    Kill {
        /// The process.
        pid: i32,
        /// The signal.
        signal: nix::sys::signal::Signal,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A controller needed by the operation is not mounted.
    #[error("cgroup v1 controller {controller} is not mounted; it is needed to {action}")]
    MissingController {
        /// The controller name, e.g. `freezer`.
        controller: &'static str,
        /// What was attempted.
        action: &'static str,
    },
    /// A controller named for a sub-cgroup is not one of the host's.
    #[error(
        "unknown controller {0:?}: name a mounted cgroup v1 controller (on cgroup v2 give a path only)"
    )]
    UnknownController(String),
    /// A process id that cannot name a process.
    #[error("invalid pid {0}: a process id must be positive")]
    InvalidPid(i32),
    /// The resources in the spec are inconsistent.
    #[error("invalid resources: {0}")]
    InvalidResources(String),
    /// A resource cannot be applied on this cgroup version.
    #[error("invalid configuration: {what} is not supported on cgroup {version}")]
    Unsupported {
        /// The requested feature.
        what: String,
        /// `v1` or `v2`.
        version: Version,
    },
    /// A freeze or thaw did not reach its target state in time.
    #[error("timed out waiting for {path} to become {state}")]
    FreezeTimeout {
        /// The state file polled.
        path: PathBuf,
        /// The target state.
        state: &'static str,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
