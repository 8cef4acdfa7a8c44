//! The engine's own model of a container's configuration: what `docker
//! create` asks for, after the API layer parsed it. Field meanings follow
//! Docker's `Config` and `HostConfig`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The parts of an image's configuration a container inherits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDefaults {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

/// A bind mount, named volume or tmpfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Host path (bind, or the volume's data directory); empty for tmpfs.
    pub source: String,
    pub target: String,
    /// "bind" or "tmpfs".
    pub kind: String,
    pub read_only: bool,
    /// tmpfs options (size=…, mode=…).
    pub options: Vec<String>,
}

/// Resource limits (Docker's HostConfig resource fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Bytes; 0 = unlimited.
    pub memory: i64,
    /// Memory + swap in bytes; -1 = unlimited swap, 0 = default (twice memory).
    pub memory_swap: i64,
    pub memory_reservation: i64,
    /// CPUs in units of 1e-9.
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// 0 or -1 = unlimited.
    pub pids_limit: i64,
}

/// Everything `build` needs about one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub id: String,
    pub hostname: String,
    pub domainname: String,
    /// Replaces the image's entrypoint when `Some` (even empty).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's cmd when non-empty.
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub labels: BTreeMap<String, String>,
    pub read_only_rootfs: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `seccomp=unconfined`, `no-new-privileges[:true]`, …
    pub security_opt: Vec<String>,
    pub mounts: Vec<MountSpec>,
    pub resources: Resources,
    /// Bytes for /dev/shm; 0 = 64 MiB.
    pub shm_size: i64,
    pub sysctls: BTreeMap<String, String>,
    /// (name, soft, hard), names as in `--ulimit nofile=…` (`nofile`).
    pub ulimits: Vec<(String, u64, u64)>,
    /// Network namespace: `None` = the host's; `Some(path)` = join that one;
    /// `Some("")` = a fresh one with only loopback (`--network none`).
    pub netns: Option<String>,
    /// Files the engine generated for the container (hosts, resolv.conf,
    /// hostname), bind-mounted read-write at the same paths in /etc.
    pub etc_files: Vec<(String, String)>,
    /// Groups added with `--group-add`.
    pub group_add: Vec<String>,
    pub oom_score_adj: i32,
}
