//! Container state on disk: one directory per container under the runtime root.
//!
//! `ROOT/ID/state.json` is written atomically (temp file + rename) once the container
//! is created; `ROOT/ID/exec.fifo` exists while the container waits for `start`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// The state file inside a container's directory.
pub const STATE_FILE: &str = "state.json";
/// The fifo that holds a created container until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";

/// What the runtime remembers of a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Host pid of the container's init process.
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/PID/stat), to detect pid reuse.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    /// The cgroup path the container was put in.
    pub cgroups_path: PathBuf,
    /// The configuration the container was created from.
    pub spec: Spec,
    /// Its `linux.memoryPolicy`, applied to `exec`ed processes too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<crate::mempolicy::MemPolicy>,
}

/// The lifecycle states of the OCI runtime spec, plus `paused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl State {
    /// Whether the init process still runs (and is the one we started).
    pub fn init_alive(&self) -> bool {
        self.pid > 0 && process_start_time(self.pid).is_some_and(|t| t == self.pid_start)
    }

    /// The state document of the OCI runtime spec (`runc state` output).
    pub fn oci_state(&self, status: Status) -> serde_json::Value {
        oci_state_of(
            &self.spec,
            &self.id,
            self.pid,
            &self.bundle,
            &self.rootfs,
            &self.created,
            status,
        )
    }
}

/// The OCI state document from its parts, for a container whose [`State`]
/// is not built yet (the hooks of a create).
pub fn oci_state_of(
    spec: &Spec,
    id: &str,
    pid: i32,
    bundle: &Path,
    rootfs: &Path,
    created: &str,
    status: Status,
) -> serde_json::Value {
    let pid = if status == Status::Stopped { 0 } else { pid };
    serde_json::json!({
        "ociVersion": spec.version(),
        "id": id,
        "status": status.as_str(),
        "pid": pid,
        "bundle": bundle,
        "rootfs": rootfs,
        "created": created,
        "annotations": spec.annotations().clone().unwrap_or_default(),
    })
}

/// The directory that holds every container's state.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of container `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Reserves `id`: creates its directory, failing if it exists.
    pub fn claim(&self, id: &str) -> Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .ctx(|| format!("create state root {}", self.root.display()))?;
        let dir = self.dir(id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.to_string()))
            }
            Err(e) => Err(Error::io(format!("create {}", dir.display()), e)),
        }
    }

    /// Writes the state file atomically.
    pub fn save(&self, state: &State) -> Result<()> {
        let dir = self.dir(&state.id);
        let tmp = dir.join(".state.json.tmp");
        let data = serde_json::to_vec(state).map_err(|e| Error::Init(e.to_string()))?;
        let mut f = fs::File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        f.write_all(&data)
            .ctx(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, dir.join(STATE_FILE)).ctx(|| format!("rename {}", tmp.display()))
    }

    /// Reads the state of container `id`.
    pub fn load(&self, id: &str) -> Result<State> {
        crate::spec::validate_id(id)?;
        let path = self.dir(id).join(STATE_FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        serde_json::from_slice(&data)
            .map_err(|e| Error::config(&path, format!("corrupt state file: {e}")))
    }

    /// The ids of every container with a state file, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("read {}", self.root.display()), e)),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Removes the directory of container `id` and all it holds.
    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", dir.display()), e)),
        }
    }

    /// The status of a container from its state and what is alive now.
    pub fn status(&self, state: &State) -> Status {
        if !state.init_alive() {
            return Status::Stopped;
        }
        if self.dir(&state.id).join(EXEC_FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }
}

/// Field 22 (starttime) of /proc/PID/stat, or None when the process is gone or a zombie.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_start(&stat)
}

fn parse_stat_start(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // rest starts at field 3; starttime is field 22.
    fields.nth(18)?.parse().ok()
}

/// The current time in RFC 3339 form with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_handles_odd_names() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat_start(stat), Some(987654));
        let zombie = "42 (x) Z 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat_start(zombie), None);
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(process_start_time(std::process::id() as i32).is_some());
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_000_000, 0), "2026-11-18T11:06:40.000000000Z");
    }

    #[test]
    fn claim_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("root"));
        store.claim("a").unwrap();
        assert!(matches!(store.claim("a"), Err(Error::Exists(_))));
        store.remove("a").unwrap();
        store.claim("a").unwrap();
    }
}
