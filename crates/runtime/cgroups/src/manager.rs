//! [`Manager`]: one container's cgroup in every hierarchy of the host.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxResources};
use tracing::{debug, warn};

use crate::resources::{cpu_max_value, device_rule, shares_to_weight, swap_to_v2, v2_limit};
use crate::stats::{collect_v1, collect_v2, parse_keyed, parse_u64, Stats};
use crate::{normalize_cgroups_path, CgroupIo, Error, Hierarchy, HostIo, Result};

/// How long `freeze` waits for the kernel to reach the requested state.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `destroy` retries a busy cgroup (its last processes exiting).
const DESTROY_TIMEOUT: Duration = Duration::from_secs(2);

/// The cgroup version a [`Manager`] drives. Hybrid hosts are [`Version::V1`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Legacy per-controller hierarchies (also hybrid hosts).
    V1,
    /// The unified hierarchy.
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// The container's directory in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupDir {
    /// The v1 controllers of this hierarchy (`["cpu", "cpuacct"]`,
    /// `["name=systemd"]`); empty for a cgroup2 hierarchy.
    pub controllers: Vec<String>,
    /// True for the cgroup2 hierarchy (v2, or the `unified` mount of hybrid).
    pub unified: bool,
    /// Where the hierarchy is mounted on the host. Its file name
    /// (`cpu,cpuacct`) is the name to use inside the container's
    /// `/sys/fs/cgroup`.
    pub mount_point: PathBuf,
    /// The container's cgroup directory on the host.
    pub path: PathBuf,
}

/// One container's cgroup: the same relative path below every hierarchy.
///
/// Built from a detected [`Hierarchy`] and the spec's `cgroupsPath`. Cheap to
/// rebuild: it holds no state besides paths, so `strato delete` can construct
/// a fresh one and call [`Manager::destroy`].
#[derive(Debug, Clone)]
pub struct Manager {
    version: Version,
    relative: PathBuf,
    dirs: Vec<CgroupDir>,
    /// Index in `dirs` of the directory whose `cgroup.procs` is authoritative
    /// (and, on v2, which holds every controller).
    primary: usize,
    /// Hybrid hosts: the container's directory in the controller-less
    /// cgroup2 mount, for process tracking (what `/proc/PID/cgroup`'s `0::`
    /// line shows). Created and removed with the others, but joined only by
    /// forking into it (`CLONE_INTO_CGROUP`), never by a `cgroup.procs`
    /// write, which waits for an RCU grace period.
    unified: Option<PathBuf>,
    /// Whether [`Manager::create`] takes a spare directory (see
    /// [`Manager::make_spares`]) before it makes one.
    spares: bool,
    io: Arc<dyn CgroupIo>,
}

/// The names of spare cgroup directories: [`SPARE_PREFIX`] and 0 to
/// [`SPARES`] − 1, beside the containers' own.
pub const SPARE_PREFIX: &str = ".spare-";
/// How many spare directories [`Manager::make_spares`] keeps per hierarchy.
pub const SPARES: usize = 4;

/// Spare directory `k` in `parent`: the one name both the maker and the
/// taker use.
fn spare_dir(parent: &Path, k: usize) -> PathBuf {
    parent.join(format!("{SPARE_PREFIX}{k}"))
}

impl Manager {
    /// A manager for `cgroups_path` on the real host.
    ///
    /// Fails if the path has `..` components or names the root cgroup.
    pub fn new(hierarchy: &Hierarchy, cgroups_path: &Path) -> Result<Self> {
        Self::with_io(hierarchy, cgroups_path, Arc::new(HostIo))
    }

    /// A manager whose OS effects go through `io` (e.g. [`crate::fake::TreeIo`]).
    pub fn with_io(
        hierarchy: &Hierarchy,
        cgroups_path: &Path,
        io: Arc<dyn CgroupIo>,
    ) -> Result<Self> {
        let relative = normalize_cgroups_path(cgroups_path)?;
        let unified = match hierarchy {
            Hierarchy::V1 {
                unified: Some(mp), ..
            } => Some(mp.join(&relative)),
            _ => None,
        };
        let (version, dirs) = match hierarchy {
            // The controller-less cgroup2 of a hybrid host is left alone: it
            // limits nothing, and joining it costs every container an RCU
            // grace period (cgroup.procs takes the global threadgroup lock).
            Hierarchy::V1 { mounts, .. } => {
                let dirs: Vec<CgroupDir> = mounts
                    .iter()
                    .map(|m| CgroupDir {
                        controllers: m.controllers.clone(),
                        unified: false,
                        mount_point: m.mount_point.clone(),
                        path: m.mount_point.join(&relative),
                    })
                    .collect();
                (Version::V1, dirs)
            }
            Hierarchy::V2 { mount_point } => (
                Version::V2,
                vec![CgroupDir {
                    controllers: Vec::new(),
                    unified: true,
                    mount_point: mount_point.clone(),
                    path: mount_point.join(&relative),
                }],
            ),
        };
        let has = |c: &str| {
            dirs.iter()
                .position(|d| d.controllers.iter().any(|x| x == c))
        };
        let primary = ["freezer", "pids", "memory", "cpu"]
            .iter()
            .find_map(|c| has(c))
            .unwrap_or(0);
        if dirs.is_empty() {
            return Err(Error::NoHierarchy {
                root: PathBuf::from("(empty v1 hierarchy list)"),
            });
        }
        Ok(Self {
            version,
            relative,
            dirs,
            primary,
            unified,
            spares: false,
            io,
        })
    }

    /// With `on`, [`Manager::create`] renames a spare directory made ahead
    /// ([`Manager::make_spares`]) into place in each v1 hierarchy, and
    /// makes one only when there is none. A v1 mkdir sets up every
    /// controller's state (the cpu, cpuset and memory ones cost 50–130 µs
    /// each here); a rename in the same parent only renames.
    pub fn with_spares(mut self, on: bool) -> Self {
        self.spares = on;
        self
    }

    /// The cgroup version driven.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The normalized, relative `cgroupsPath` (e.g. `strato/<id>`).
    pub fn cgroups_path(&self) -> &Path {
        &self.relative
    }

    /// The container's directory in every hierarchy: one per v1 hierarchy
    /// (not the controller-less unified one of hybrid hosts), or the single
    /// v2 directory.
    /// This is what to bind-mount into the container's `/sys/fs/cgroup`.
    pub fn paths(&self) -> &[CgroupDir] {
        &self.dirs
    }

    /// Hybrid hosts: the container's directory in the controller-less
    /// cgroup2 hierarchy (see [`Manager::create`]); `None` elsewhere.
    pub fn unified_path(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// The container's directory for `controller` (`memory`, `cpu`,
    /// `name=systemd`). On v2 every controller lives in the single directory.
    pub fn path(&self, controller: &str) -> Option<&Path> {
        match self.version {
            Version::V2 => self.dirs.first().map(|d| d.path.as_path()),
            Version::V1 => self.v1_dir(controller).map(|d| d.path.as_path()),
        }
    }

    fn v1_dir(&self, controller: &str) -> Option<&CgroupDir> {
        self.dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
    }

    /// The directory for a v1 controller, or an error naming what needed it.
    fn require(&self, controller: &'static str, action: &'static str) -> Result<&Path> {
        self.path(controller)
            .ok_or(Error::MissingController { controller, action })
    }

    /// The directory whose `cgroup.procs` lists the container's processes;
    /// on v2 the one directory of the container.
    fn main_dir(&self) -> &Path {
        &self.dirs[self.primary].path
    }

    // ----- file helpers -------------------------------------------------

    fn write(&self, dir: &Path, file: &str, value: &str) -> Result<()> {
        let path = dir.join(file);
        debug!(path = %path.display(), value, "cgroup write");
        self.io.write(&path, value).map_err(|source| Error::Write {
            path,
            value: value.to_owned(),
            source,
        })
    }

    fn read(&self, dir: &Path, file: &str) -> Result<String> {
        let path = dir.join(file);
        self.io
            .read(&path)
            .map_err(|source| Error::Read { path, source })
    }

    /// Reads a file that may legitimately be absent.
    fn read_opt(&self, dir: &Path, file: &str) -> Result<Option<String>> {
        match self.read(dir, file) {
            Ok(s) => Ok(Some(s)),
            Err(Error::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ----- lifecycle ----------------------------------------------------

    /// Creates the container's directory in every hierarchy, with any missing
    /// parents. Idempotent.
    ///
    /// On v1 cpuset hierarchies every level whose `cpuset.cpus`/`cpuset.mems`
    /// is empty gets its parent's value, or adding tasks would fail. On v2
    /// the controllers available at each ancestor are enabled in its
    /// `cgroup.subtree_control` (failures there are logged, not fatal).
    #[tracing::instrument(level = "debug", skip_all, fields(cgroup = %self.relative.display()))]
    pub fn create(&self) -> Result<()> {
        self.create_hierarchies()?;
        self.create_unified();
        Ok(())
    }

    /// [`Manager::create`] without the hybrid host's controller-less
    /// unified directory (see [`Manager::create_unified`]).
    pub fn create_hierarchies(&self) -> Result<()> {
        for dir in &self.dirs {
            let cpuset = dir.controllers.iter().any(|c| c == "cpuset");
            let enable = self.version == Version::V2;
            if !enable && self.spares && self.take_spare(&dir.path) {
                continue;
            }
            // The common case: the parents exist (made for an earlier
            // container), so one mkdir does it.
            if !enable && self.create_leaf(&dir.path, &dir.mount_point, cpuset)? {
                continue;
            }
            let mut cur = dir.mount_point.clone();
            for part in self.relative.components() {
                if enable {
                    self.enable_controllers(&cur);
                }
                let parent = cur.clone();
                cur.push(part);
                match self.io.create_dir(&cur) {
                    Ok(()) => debug!(path = %cur.display(), "created cgroup"),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(source) => return Err(Error::Create { path: cur, source }),
                }
                if cpuset {
                    self.inherit_cpuset(&parent, &cur, &dir.mount_point)?;
                    if cur != dir.path {
                        // Later children get cpus and mems from the kernel
                        // at mkdir (v1 `cgroup.clone_children`), sparing
                        // each container four reads and two writes.
                        if let Err(e) = self.io.write(&cur.join("cgroup.clone_children"), "1") {
                            debug!(error = %e, path = %cur.display(), "cgroup.clone_children not set");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Hybrid hosts: creates the container's directory in the
    /// controller-less cgroup2 mount, which the container process is forked
    /// into. A runtime may make it first, fork, and make the others while
    /// the child sets up its namespaces. Tracking only: failures are logged,
    /// a host whose unified mount is not writable still runs containers.
    /// Nothing to do elsewhere.
    pub fn create_unified(&self) {
        if let Some(path) = &self.unified {
            let depth = self.relative.components().count();
            let mut levels: Vec<&Path> = match self.io.create_dir(path) {
                Ok(()) => {
                    debug!(path = %path.display(), "created cgroup");
                    Vec::new()
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    path.ancestors().take(depth).collect()
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Vec::new(),
                Err(e) => {
                    warn!(error = %e, path = %path.display(), "cannot create the unified cgroup");
                    Vec::new()
                }
            };
            levels.reverse();
            for dir in levels {
                match self.io.create_dir(dir) {
                    Ok(()) => debug!(path = %dir.display(), "created cgroup"),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        warn!(error = %e, path = %dir.display(), "cannot create the unified cgroup");
                        break;
                    }
                }
            }
        }
    }

    /// Renames a spare directory of `path`'s parent to `path`; false if
    /// there is none (or `path` exists already).
    fn take_spare(&self, path: &Path) -> bool {
        let Some(parent) = path.parent() else {
            return false;
        };
        for k in 0..SPARES {
            let spare = spare_dir(parent, k);
            match self.io.rename_dir(&spare, path) {
                Ok(()) => {
                    debug!(path = %path.display(), spare = k, "cgroup taken from the spares");
                    return true;
                }
                // Taken by another, or not made yet.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// Makes the missing spare directories ([`SPARES`] of them) beside
    /// this cgroup in each v1 hierarchy, in its parent (never in a
    /// hierarchy's root), as its creation would (cpuset inherited): work
    /// taken off a later [`Manager::create`] with spares. Returns how many
    /// were made; nothing on cgroup2, which cannot rename.
    pub fn make_spares(&self) -> usize {
        if self.version != Version::V1 {
            return 0;
        }
        let mut made = 0;
        for dir in &self.dirs {
            let Some(parent) = dir.path.parent() else {
                continue;
            };
            if parent == dir.mount_point || !parent.starts_with(&dir.mount_point) {
                continue;
            }
            let cpuset = dir.controllers.iter().any(|c| c == "cpuset");
            for k in 0..SPARES {
                let spare = spare_dir(parent, k);
                match self.io.create_dir(&spare) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    // No parent (yet), or no room: the creates make their own.
                    Err(_) => break,
                }
                if cpuset
                    && self
                        .inherit_cpuset(parent, &spare, &dir.mount_point)
                        .is_err()
                {
                    let _ = self.io.remove_dir(&spare);
                    break;
                }
                made += 1;
            }
        }
        made
    }

    /// Creates `path` if its parent exists: `Ok(false)` when it does not.
    fn create_leaf(&self, path: &Path, mount_point: &Path, cpuset: bool) -> Result<bool> {
        match self.io.create_dir(path) {
            Ok(()) => debug!(path = %path.display(), "created cgroup"),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(Error::Create {
                    path: path.to_owned(),
                    source,
                })
            }
        }
        if cpuset {
            if let Some(parent) = path.parent() {
                self.inherit_cpuset(parent, path, mount_point)?;
            }
        }
        Ok(true)
    }

    /// Copies `cpuset.cpus` and `cpuset.mems` from `parent` when empty in
    /// `dir`. A parent made by someone else may be empty too (a pod cgroup
    /// made with mkdir): it gets the value of its nearest ancestor below
    /// `mount_point` that has one first, since the kernel wants a child's
    /// set inside its parent's.
    fn inherit_cpuset(&self, parent: &Path, dir: &Path, mount_point: &Path) -> Result<()> {
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = self.read_opt(dir, file)?.unwrap_or_default();
            if !own.trim().is_empty() {
                continue;
            }
            let value = self.cpuset_from_ancestors(parent, file, mount_point)?;
            if !value.is_empty() {
                self.write(dir, file, &value)?;
            }
        }
        Ok(())
    }

    /// `file` of `dir`, or when empty, of its nearest ancestor that has one
    /// (up to `mount_point`), filled into the empty levels on the way.
    fn cpuset_from_ancestors(&self, dir: &Path, file: &str, mount_point: &Path) -> Result<String> {
        let own = self.read_opt(dir, file)?.unwrap_or_default();
        let own = own.trim();
        if !own.is_empty() || dir == mount_point || !dir.starts_with(mount_point) {
            return Ok(own.to_owned());
        }
        let Some(parent) = dir.parent() else {
            return Ok(String::new());
        };
        let value = self.cpuset_from_ancestors(parent, file, mount_point)?;
        if !value.is_empty() {
            self.write(dir, file, &value)?;
        }
        Ok(value)
    }

    /// Enables in `dir`'s subtree every controller `dir` has (v2 only).
    fn enable_controllers(&self, dir: &Path) {
        let available = match self.read_opt(dir, "cgroup.controllers") {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "cannot list cgroup controllers");
                return;
            }
        };
        let enabled = self
            .read_opt(dir, "cgroup.subtree_control")
            .ok()
            .flatten()
            .unwrap_or_default();
        for c in available.split_whitespace() {
            if enabled.split_whitespace().any(|e| e == c) {
                continue;
            }
            if let Err(e) = self.write(dir, "cgroup.subtree_control", &format!("+{c}")) {
                warn!(error = %e, controller = c, "cannot enable cgroup controller");
            }
        }
    }

    /// Moves the calling process into the container's cgroup in every
    /// hierarchy. The caller must be single-threaded (a freshly forked child).
    ///
    /// On v1 this writes `0` ("the current thread") to each `tasks` file: a
    /// single-thread move of `current` skips the kernel's global threadgroup
    /// lock, whose first writer after a quiet spell waits for an RCU grace
    /// period (8-20 ms here). On v2 there is no such file for domain cgroups,
    /// so it writes `0` to `cgroup.procs`.
    pub fn enter(&self) -> Result<()> {
        for dir in &self.dirs {
            let file = if dir.unified { "cgroup.procs" } else { "tasks" };
            self.write(&dir.path, file, "0")?;
        }
        Ok(())
    }

    /// Fails unless every controller named in `subs` (see
    /// [`Manager::enter_sub`]) is one of this host's.
    pub fn check_sub_cgroups(&self, subs: &[(Vec<String>, PathBuf)]) -> Result<()> {
        for (controllers, _) in subs {
            for c in controllers {
                let known = match self.version {
                    Version::V2 => false,
                    Version::V1 => self.v1_dir(c).is_some(),
                };
                if !known {
                    return Err(Error::UnknownController(c.clone()));
                }
            }
        }
        Ok(())
    }

    /// Like [`Manager::enter`], into sub-cgroups of the container's cgroup:
    /// `subs` maps controllers (an empty list: all) to a relative path; the
    /// first entry naming a hierarchy's controller (or the first without
    /// controllers) wins, the cgroup itself where none applies. A missing
    /// sub-cgroup is an error.
    pub fn enter_sub(&self, subs: &[(Vec<String>, PathBuf)]) -> Result<()> {
        for dir in &self.dirs {
            let sub = subs
                .iter()
                .find(|(cs, _)| cs.iter().any(|c| dir.controllers.contains(c)))
                .or_else(|| subs.iter().find(|(cs, _)| cs.is_empty()))
                .map(|(_, p)| p.as_path());
            let path = match sub {
                Some(p) => dir.path.join(p),
                None => dir.path.clone(),
            };
            let file = if dir.unified { "cgroup.procs" } else { "tasks" };
            self.write(&path, file, "0")?;
        }
        Ok(())
    }

    /// Moves process `pid` into the container's cgroup in every hierarchy.
    #[tracing::instrument(level = "debug", skip_all, fields(cgroup = %self.relative.display()))]
    pub fn add_task(&self, pid: i32) -> Result<()> {
        if pid <= 0 {
            return Err(Error::InvalidPid(pid));
        }
        let value = pid.to_string();
        for dir in &self.dirs {
            self.write(&dir.path, "cgroup.procs", &value)?;
        }
        Ok(())
    }

    /// The processes in the container's cgroup (not in its child cgroups).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let text = self.read(self.main_dir(), "cgroup.procs")?;
        Ok(text
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .filter(|p| *p > 0)
            .collect())
    }

    /// Freezes (`true`) or thaws (`false`) every process, returning once the
    /// kernel reports the state reached.
    ///
    /// v1 uses `freezer.state` (`FROZEN`/`THAWED`); v2 writes `cgroup.freeze`
    /// and polls the `frozen` line of `cgroup.events`.
    #[tracing::instrument(level = "debug", skip_all, fields(cgroup = %self.relative.display()))]
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        match self.version {
            Version::V1 => {
                let dir = self.require("freezer", "freeze or thaw the container")?;
                let state = if frozen { "FROZEN" } else { "THAWED" };
                let result = self.poll(dir, "freezer.state", state, || {
                    // Re-writing nudges tasks stuck in FREEZING (as runc does).
                    self.write(dir, "freezer.state", state)?;
                    Ok(self.read(dir, "freezer.state")?.trim() == state)
                });
                if result.is_err() && frozen {
                    let _ = self.write(dir, "freezer.state", "THAWED");
                }
                result
            }
            Version::V2 => {
                let dir = self.main_dir();
                let want = if frozen { 1 } else { 0 };
                self.write(dir, "cgroup.freeze", &want.to_string())?;
                let state = if frozen { "frozen 1" } else { "frozen 0" };
                let result = self.poll(dir, "cgroup.events", state, || {
                    let events = parse_keyed(&self.read(dir, "cgroup.events")?);
                    Ok(events.get("frozen") == Some(&want))
                });
                if result.is_err() && frozen {
                    let _ = self.write(dir, "cgroup.freeze", "0");
                }
                result
            }
        }
    }

    /// Whether the cgroup exists and is frozen (or freezing): a process
    /// moved into it would stop at once. A cgroup that does not exist yet, or
    /// a host without a freezer, is not frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        match self.version {
            Version::V1 => {
                let Some(dir) = self.path("freezer") else {
                    return Ok(false);
                };
                Ok(self
                    .read_opt(dir, "freezer.state")?
                    .is_some_and(|s| s.trim() != "THAWED"))
            }
            Version::V2 => Ok(self
                .read_opt(self.main_dir(), "cgroup.freeze")?
                .is_some_and(|s| s.trim() == "1")),
        }
    }

    /// Calls `done` with growing sleeps until it returns true or time runs out.
    fn poll(
        &self,
        dir: &Path,
        file: &str,
        state: &'static str,
        mut done: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        loop {
            if done()? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::FreezeTimeout {
                    path: dir.join(file),
                    state,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to every process of the cgroup.
    ///
    /// The cgroup is frozen first so no process can fork away from the
    /// signal, then thawed so the signal is delivered. Without a freezer
    /// (v1 host lacking it) processes are signalled unfrozen. On v2, SIGKILL
    /// uses `cgroup.kill` when the kernel has it. Processes that are already
    /// gone are not an error.
    #[tracing::instrument(level = "debug", skip_all, fields(cgroup = %self.relative.display()))]
    pub fn kill_all(&self, signal: Signal) -> Result<()> {
        if self.version == Version::V2 && signal == Signal::SIGKILL {
            let dir = self.main_dir();
            if self.io.exists(&dir.join("cgroup.kill")) {
                return self.write(dir, "cgroup.kill", "1");
            }
        }
        let frozen = match self.freeze(true) {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %e, "signalling processes without freezing them");
                false
            }
        };
        let mut result = Ok(());
        match self.pids() {
            Ok(pids) => {
                for pid in pids {
                    match self.io.kill(pid, signal) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(Errno::ESRCH as i32) => {}
                        Err(source) => {
                            if result.is_ok() {
                                result = Err(Error::Kill {
                                    pid,
                                    signal,
                                    source,
                                });
                            }
                        }
                    }
                }
            }
            Err(e) => result = Err(e),
        }
        if frozen {
            let thawed = self.freeze(false);
            result = result.and(thawed);
        }
        result
    }

    /// Removes the container's directory (and any child cgroups made inside
    /// it) from every hierarchy. Parents are left alone: they may be shared.
    ///
    /// A directory that is still busy (processes exiting) is retried for a
    /// short while; one that is already gone counts as removed. Every
    /// hierarchy is attempted; the first error is returned.
    #[tracing::instrument(level = "debug", skip_all, fields(cgroup = %self.relative.display()))]
    pub fn destroy(&self) -> Result<()> {
        let mut result = Ok(());
        let unified = self.unified.iter();
        for path in self.dirs.iter().map(|d| &d.path).chain(unified) {
            if let Err(e) = self.remove_tree(path) {
                warn!(error = %e, "cannot remove cgroup");
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }

    fn remove_tree(&self, path: &Path) -> Result<()> {
        // A container's cgroup rarely has children: try the rmdir first and
        // list the directory only when the kernel says it is busy.
        match self.io.remove_dir(path) {
            Ok(()) => {
                debug!(path = %path.display(), "removed cgroup");
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(_) => {}
        }
        match self.io.subdirs(path) {
            Ok(children) => {
                for child in children {
                    self.remove_tree(&child)?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(Error::Remove {
                    path: path.to_owned(),
                    source,
                })
            }
        }
        let deadline = Instant::now() + DESTROY_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.io.remove_dir(path) {
                Ok(()) => {
                    debug!(path = %path.display(), "removed cgroup");
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e)
                    if e.raw_os_error() == Some(Errno::EBUSY as i32)
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(source) => {
                    return Err(Error::Remove {
                        path: path.to_owned(),
                        source,
                    })
                }
            }
        }
    }

    // ----- resources ----------------------------------------------------

    /// Writes the limits of `resources` to the cgroup files.
    ///
    /// Handled: memory (limit, reservation, swap; v1 also swappiness and
    /// disableOOMKiller), cpu (shares/weight, quota, period, burst, idle,
    /// cpus, mems; v1 also realtime), pids, block I/O, v1 devices, and on
    /// v2 the `unified` map. Device rules on v2 need an eBPF program attached
    /// to the cgroup, which this crate does not do yet: they are skipped with
    /// a warning. Hugepages, network and rdma are not applied yet and are
    /// logged.
    ///
    /// Device rules are written as given: the caller adds the default
    /// allowed devices (`/dev/null` & co.) to the spec's list. `None` leaves
    /// the device controller untouched.
    ///
    /// A value the kernel refuses is an error naming the file and value.
    #[tracing::instrument(level = "debug", skip_all, fields(cgroup = %self.relative.display()))]
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        if let Some(mem) = resources.memory() {
            match self.version {
                Version::V1 => self.memory_v1(mem)?,
                Version::V2 => self.memory_v2(mem)?,
            }
        }
        if let Some(cpu) = resources.cpu() {
            match self.version {
                Version::V1 => self.cpu_v1(cpu)?,
                Version::V2 => self.cpu_v2(cpu)?,
            }
            self.cpuset(cpu)?;
        }
        if let Some(pids) = resources.pids() {
            let dir = self.require("pids", "apply pids.limit")?;
            let limit = pids.limit();
            // 0 cannot mean "no processes" (the container needs one) and
            // systemd has no TasksMax=0: like runc, it means 1. Negative is
            // unlimited.
            let value = match limit {
                0 => "1".to_owned(),
                n if n > 0 => n.to_string(),
                _ => "max".to_owned(),
            };
            self.write(dir, "pids.max", &value)?;
        }
        if let Some(rules) = resources.devices() {
            match self.version {
                Version::V1 => self.devices_v1(rules)?,
                Version::V2 => {
                    if !rules.is_empty() {
                        warn!("device cgroup rules need eBPF on cgroup v2; not applied");
                    }
                }
            }
        }
        if let Some(unified) = resources.unified().as_ref().filter(|u| !u.is_empty()) {
            if self.version == Version::V1 {
                return Err(Error::Unsupported {
                    what: "linux.resources.unified".to_owned(),
                    version: self.version,
                });
            }
            let dir = self.main_dir();
            let mut keys: Vec<_> = unified.iter().collect();
            keys.sort();
            for (file, value) in keys {
                if file.is_empty() || file.contains('/') || file.starts_with('.') {
                    return Err(Error::InvalidResources(format!(
                        "unified key {file:?} is not a cgroup file name"
                    )));
                }
                self.write(dir, file, value)?;
            }
        }
        if let Some(bio) = resources.block_io() {
            self.block_io(bio)?;
        }
        let ignored = [
            ("hugepageLimits", resources.hugepage_limits().is_some()),
            ("network", resources.network().is_some()),
            ("rdma", resources.rdma().is_some()),
        ];
        for (what, set) in ignored {
            if set {
                warn!(
                    resource = what,
                    "cgroup resource not supported yet; ignored"
                );
            }
        }
        Ok(())
    }

    /// `linux.resources.blockIO`. Weights go to the proportional-weight
    /// files the I/O scheduler offers: blkio.weight (CFQ) or blkio.bfq.*
    /// (BFQ) on v1; io.bfq.weight (BFQ, same 10-1000 scale, also per device)
    /// or io.weight (scaled to 1-10000, default only) on v2. Throttles:
    /// blkio.throttle.* / io.max.
    fn block_io(&self, b: &LinuxBlockIo) -> Result<()> {
        match self.version {
            Version::V1 => {
                let dir = self.require("blkio", "apply linux.resources.blockIO")?;
                // BFQ's files when CFQ's are absent (a kernel without CFQ).
                let use_bfq = !self.io.exists(&dir.join("blkio.weight"))
                    && self.io.exists(&dir.join("blkio.bfq.weight"));
                let pick = |cfq: &'static str, bfq: &'static str| if use_bfq { bfq } else { cfq };
                if let Some(w) = b.weight().filter(|w| *w != 0) {
                    self.write(
                        dir,
                        pick("blkio.weight", "blkio.bfq.weight"),
                        &w.to_string(),
                    )?;
                }
                if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
                    self.write(dir, "blkio.leaf_weight", &w.to_string())?;
                }
                for d in b.weight_device().iter().flatten() {
                    if let Some(w) = d.weight() {
                        let file = pick("blkio.weight_device", "blkio.bfq.weight_device");
                        self.write(dir, file, &format!("{}:{} {w}", d.major(), d.minor()))?;
                    }
                    if let Some(w) = d.leaf_weight() {
                        self.write(
                            dir,
                            "blkio.leaf_weight_device",
                            &format!("{}:{} {w}", d.major(), d.minor()),
                        )?;
                    }
                }
                for (file, list) in [
                    (
                        "blkio.throttle.read_bps_device",
                        b.throttle_read_bps_device(),
                    ),
                    (
                        "blkio.throttle.write_bps_device",
                        b.throttle_write_bps_device(),
                    ),
                    (
                        "blkio.throttle.read_iops_device",
                        b.throttle_read_iops_device(),
                    ),
                    (
                        "blkio.throttle.write_iops_device",
                        b.throttle_write_iops_device(),
                    ),
                ] {
                    for t in list.iter().flatten() {
                        self.write(
                            dir,
                            file,
                            &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                        )?;
                    }
                }
            }
            Version::V2 => {
                let dir = self.main_dir();
                let bfq = self.io.exists(&dir.join("io.bfq.weight"));
                if let Some(w) = b.weight().filter(|w| *w != 0) {
                    if bfq {
                        self.write(dir, "io.bfq.weight", &w.to_string())?;
                    } else {
                        let scaled = 1 + (u64::from(w).saturating_sub(10)) * 9999 / 990;
                        self.write(dir, "io.weight", &format!("default {scaled}"))?;
                    }
                }
                if bfq {
                    for d in b.weight_device().iter().flatten() {
                        if let Some(w) = d.weight() {
                            self.write(
                                dir,
                                "io.bfq.weight",
                                &format!("{}:{} {w}", d.major(), d.minor()),
                            )?;
                        }
                    }
                } else if b.weight_device().as_ref().is_some_and(|l| !l.is_empty()) {
                    warn!("blockIO.weightDevice needs the BFQ I/O scheduler on cgroup v2; not applied");
                }
                for (key, list) in [
                    ("rbps", b.throttle_read_bps_device()),
                    ("wbps", b.throttle_write_bps_device()),
                    ("riops", b.throttle_read_iops_device()),
                    ("wiops", b.throttle_write_iops_device()),
                ] {
                    for t in list.iter().flatten() {
                        self.write(
                            dir,
                            "io.max",
                            &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    fn memory_v1(&self, mem: &LinuxMemory) -> Result<()> {
        let limit = mem.limit().unwrap_or(0);
        let mut swap = mem.swap().unwrap_or(0);
        let reservation = mem.reservation().unwrap_or(0);
        let wants = limit != 0
            || swap != 0
            || reservation != 0
            || mem.swappiness().is_some()
            || mem.disable_oom_killer() == Some(true);
        if !wants {
            return Ok(());
        }
        let dir = self.require("memory", "apply memory limits")?;
        let has_memsw = self.io.exists(&dir.join("memory.memsw.limit_in_bytes"));
        if limit == -1 && swap == 0 && has_memsw {
            swap = -1;
        }
        if swap != 0 && !has_memsw {
            warn!(
                swap,
                "memory.memsw.limit_in_bytes does not exist (swap accounting is off); swap limit ignored"
            );
            swap = 0;
        }
        let set_limit = || self.write(dir, "memory.limit_in_bytes", &limit.to_string());
        let set_swap = || self.write(dir, "memory.memsw.limit_in_bytes", &swap.to_string());
        if limit != 0 && swap != 0 {
            // The kernel insists on limit <= memsw at every step, so the order
            // depends on whether the limits grow or shrink (as in runc).
            let current = self
                .read_opt(dir, "memory.limit_in_bytes")?
                .and_then(|s| parse_u64(&s))
                .unwrap_or(0);
            if u64::try_from(swap).map_or(true, |s| current < s) {
                set_swap()?;
                set_limit()?;
            } else {
                set_limit()?;
                set_swap()?;
            }
        } else {
            if limit != 0 {
                set_limit()?;
            }
            if swap != 0 {
                set_swap()?;
            }
        }
        if reservation != 0 {
            self.write(dir, "memory.soft_limit_in_bytes", &reservation.to_string())?;
        }
        if let Some(s) = mem.swappiness() {
            if s > 100 {
                return Err(Error::InvalidResources(format!(
                    "memory.swappiness {s} is above 100"
                )));
            }
            self.write(dir, "memory.swappiness", &s.to_string())?;
        }
        if mem.disable_oom_killer() == Some(true) {
            self.write(dir, "memory.oom_control", "1")?;
        }
        Ok(())
    }

    fn memory_v2(&self, mem: &LinuxMemory) -> Result<()> {
        let dir = self.main_dir();
        let limit = mem.limit().unwrap_or(0);
        if let Some(swap) = swap_to_v2(mem.swap().unwrap_or(0), limit)? {
            if self.io.exists(&dir.join("memory.swap.max")) {
                self.write(dir, "memory.swap.max", &v2_limit(swap))?;
            } else {
                warn!(swap, "memory.swap.max does not exist; swap limit ignored");
            }
        }
        if limit != 0 {
            self.write(dir, "memory.max", &v2_limit(limit))?;
        }
        if let Some(r) = mem.reservation().filter(|r| *r != 0) {
            self.write(dir, "memory.low", &v2_limit(r))?;
        }
        if mem.swappiness().is_some() || mem.disable_oom_killer() == Some(true) {
            warn!("memory.swappiness and disableOOMKiller do not exist on cgroup v2; ignored");
        }
        Ok(())
    }

    fn cpu_v1(&self, cpu: &LinuxCpu) -> Result<()> {
        let shares = cpu.shares().filter(|s| *s != 0);
        let quota = cpu.quota().filter(|q| *q != 0);
        let period = cpu.period().filter(|p| *p != 0);
        let rt_period = cpu.realtime_period().filter(|p| *p != 0);
        let rt_runtime = cpu.realtime_runtime().filter(|r| *r != 0);
        if shares.is_none()
            && quota.is_none()
            && period.is_none()
            && rt_period.is_none()
            && rt_runtime.is_none()
            && cpu.burst().is_none()
            && cpu.idle().is_none()
        {
            return Ok(());
        }
        let dir = self.require("cpu", "apply cpu limits")?;
        if let Some(s) = shares {
            self.write(dir, "cpu.shares", &s.to_string())?;
        }
        let mut quota_written = false;
        if let Some(p) = period {
            match self.write(dir, "cpu.cfs_period_us", &p.to_string()) {
                Ok(()) => {}
                // A shorter period can be refused until the quota fits it.
                Err(Error::Write { source, .. })
                    if quota.is_some() && source.raw_os_error() == Some(Errno::EINVAL as i32) =>
                {
                    if let Some(q) = quota {
                        self.write(dir, "cpu.cfs_quota_us", &q.to_string())?;
                        quota_written = true;
                    }
                    self.write(dir, "cpu.cfs_period_us", &p.to_string())?;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(q) = quota.filter(|_| !quota_written) {
            self.write(dir, "cpu.cfs_quota_us", &q.to_string())?;
        }
        if let Some(b) = cpu.burst() {
            self.write(dir, "cpu.cfs_burst_us", &b.to_string())?;
        }
        if let Some(p) = rt_period {
            self.write(dir, "cpu.rt_period_us", &p.to_string())?;
        }
        if let Some(r) = rt_runtime {
            self.write(dir, "cpu.rt_runtime_us", &r.to_string())?;
        }
        if let Some(i) = cpu.idle() {
            self.write(dir, "cpu.idle", &i.to_string())?;
        }
        Ok(())
    }

    fn cpu_v2(&self, cpu: &LinuxCpu) -> Result<()> {
        let dir = self.main_dir();
        if cpu.realtime_period().is_some_and(|p| p != 0)
            || cpu.realtime_runtime().is_some_and(|r| r != 0)
        {
            return Err(Error::Unsupported {
                what: "realtime cpu scheduling (realtimePeriod/realtimeRuntime)".to_owned(),
                version: self.version,
            });
        }
        if let Some(s) = cpu.shares().filter(|s| *s != 0) {
            self.write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
        }
        if let Some(max) = cpu_max_value(cpu.quota(), cpu.period()) {
            self.write(dir, "cpu.max", &max)?;
        }
        if let Some(b) = cpu.burst() {
            self.write(dir, "cpu.max.burst", &b.to_string())?;
        }
        if let Some(i) = cpu.idle() {
            self.write(dir, "cpu.idle", &i.to_string())?;
        }
        Ok(())
    }

    fn cpuset(&self, cpu: &LinuxCpu) -> Result<()> {
        let cpus = cpu.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = cpu.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_none() && mems.is_none() {
            return Ok(());
        }
        let dir = self.require("cpuset", "apply cpu.cpus/cpu.mems")?;
        if let Some(c) = cpus {
            self.write(dir, "cpuset.cpus", c)?;
        }
        if let Some(m) = mems {
            self.write(dir, "cpuset.mems", m)?;
        }
        Ok(())
    }

    fn devices_v1(&self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        let dir = self.require("devices", "apply device rules")?;
        // Runs of rules for the same file, each written through one open.
        let mut runs: Vec<(&str, Vec<String>)> = vec![("devices.deny", vec!["a".to_owned()])];
        let mut push = |file: &'static str, rule: String| match runs.last_mut() {
            Some((f, values)) if *f == file => values.push(rule),
            _ => runs.push((file, vec![rule])),
        };
        // Starting from "deny all", a deny rule matters only where an earlier
        // allow rule opened something: others are skipped (runc computes the
        // same minimal transitions), so a redundant rule the kernel would
        // refuse (an access letter outside rwm) cannot fail the container.
        let mut allowed: Vec<&LinuxDeviceCgroup> = Vec::new();
        for rule in rules {
            if rule.allow() {
                push("devices.allow", device_rule(rule));
                allowed.push(rule);
            } else if allowed.iter().any(|a| devices_overlap(a, rule)) {
                push("devices.deny", device_rule(rule));
            } else {
                debug!(rule = %device_rule(rule), "device rule already denied; skipped");
            }
        }
        for (file, values) in &runs {
            let path = dir.join(file);
            debug!(path = %path.display(), ?values, "cgroup write");
            self.io
                .write_each(&path, values)
                .map_err(|(i, source)| Error::Write {
                    path,
                    value: values[i].clone(),
                    source,
                })?;
        }
        Ok(())
    }

    // ----- stats --------------------------------------------------------

    /// Current usage, shaped like runc's `events --stats` data.
    ///
    /// Counters whose files are missing read as zero; the only error is a
    /// cgroup directory that does not exist (container gone or not created).
    pub fn stats(&self) -> Result<Stats> {
        let main = self.main_dir();
        if !self.io.exists(main) {
            return Err(Error::Read {
                path: main.to_owned(),
                source: io::Error::from(Errno::ENOENT),
            });
        }
        let read_in = |dir: &Path, file: &str| self.read_opt(dir, file).ok().flatten();
        Ok(match self.version {
            Version::V1 => {
                let clk_tck = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                    .ok()
                    .flatten()
                    .and_then(|t| u64::try_from(t).ok())
                    .unwrap_or(100);
                collect_v1(&|c, f| self.path(c).and_then(|d| read_in(d, f)), clk_tck)
            }
            Version::V2 => collect_v2(&|f| read_in(main, f)),
        })
    }
}

#[cfg(test)]
mod tests;

/// Whether two device rules can name a common device (type, major and minor
/// each equal or a wildcard on either side).
fn devices_overlap(a: &LinuxDeviceCgroup, b: &LinuxDeviceCgroup) -> bool {
    use oci_spec::runtime::LinuxDeviceType as T;
    let typ = |r: &LinuxDeviceCgroup| r.typ().filter(|t| *t != T::A);
    let num = |x: Option<i64>| x.filter(|n| *n >= 0);
    let same = |x: Option<i64>, y: Option<i64>| match (num(x), num(y)) {
        (Some(p), Some(q)) => p == q,
        _ => true,
    };
    let types = match (typ(a), typ(b)) {
        (Some(p), Some(q)) => p == q,
        _ => true,
    };
    types && same(a.major(), b.major()) && same(a.minor(), b.minor())
}
