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
    /// The image's `Healthcheck`, as in its config.
    #[serde(default)]
    pub healthcheck: Option<serde_json::Value>,
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

/// A host device given to the container (`--device`), resolved at create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// Where it appears in the container.
    pub path: String,
    /// `c` or `b`.
    pub kind: String,
    pub major: u64,
    pub minor: u64,
    /// The node's permission bits on the host.
    pub mode: u32,
    /// cgroup access: some of `r`, `w`, `m`.
    pub access: String,
    /// The node's owner on the host.
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

impl ContainerConfig {
    /// The container's cgroup, from the roots of the cgroup hierarchies.
    pub fn cgroups_path(&self) -> String {
        let parent = self.cgroup_parent.trim_matches('/');
        if parent.is_empty() {
            let engine = strato_supervisor::protocol::ENGINE_CGROUP_PARENT;
            format!("{engine}/{}", self.id)
        } else {
            format!("/{parent}/{}", self.id)
        }
    }
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
    /// 0–100; `None`: the kernel's.
    #[serde(default)]
    pub memory_swappiness: Option<i64>,
    #[serde(default)]
    pub oom_kill_disable: bool,
    /// Block I/O weight, 10–1000; 0: the kernel's.
    #[serde(default)]
    pub blkio_weight: u16,
    /// Per-device block I/O rules, devices by number.
    #[serde(default)]
    pub blkio_devices: Vec<BlkioRule>,
    /// Real-time scheduling budget and period, microseconds (v1 cpu.rt_*).
    #[serde(default)]
    pub cpu_rt_runtime: i64,
    #[serde(default)]
    pub cpu_rt_period: i64,
}

/// One per-device block I/O setting (`--blkio-weight-device`,
/// `--device-read-bps` & co.), its device resolved to numbers at create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioRule {
    /// `weight`, `read_bps`, `write_bps`, `read_iops` or `write_iops`.
    pub kind: String,
    pub major: u64,
    pub minor: u64,
    /// The weight, or bytes or operations per second.
    pub value: u64,
}

/// The limits of a `docker update`: zero or empty fields keep the
/// container's; `pids_limit` ≤ 0 makes it unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceUpdate {
    pub memory: i64,
    pub memory_swap: i64,
    pub memory_reservation: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub pids_limit: Option<i64>,
    /// Block I/O weight, 10–1000 (checked by the caller); 0 keeps it.
    pub blkio_weight: u16,
}

/// The smallest memory limit dockerd accepts (6 MiB).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

impl ResourceUpdate {
    /// `current` with this update applied, checked with dockerd's rules
    /// and messages.
    pub fn merge(&self, current: &Resources) -> Result<Resources, String> {
        let mut r = current.clone();
        let set = |to: &mut i64, v: i64| {
            if v != 0 {
                *to = v;
            }
        };
        set(&mut r.memory, self.memory);
        set(&mut r.memory_swap, self.memory_swap);
        set(&mut r.memory_reservation, self.memory_reservation);
        set(&mut r.cpu_shares, self.cpu_shares);
        set(&mut r.cpu_quota, self.cpu_quota);
        set(&mut r.cpu_period, self.cpu_period);
        if self.nano_cpus != 0 {
            r.nano_cpus = self.nano_cpus;
            r.cpu_quota = 0;
            r.cpu_period = 0;
        } else if self.cpu_quota != 0 || self.cpu_period != 0 {
            r.nano_cpus = 0;
        }
        if !self.cpuset_cpus.is_empty() {
            r.cpuset_cpus = self.cpuset_cpus.clone();
        }
        if !self.cpuset_mems.is_empty() {
            r.cpuset_mems = self.cpuset_mems.clone();
        }
        if let Some(p) = self.pids_limit {
            r.pids_limit = p.max(0);
        }
        if self.blkio_weight != 0 {
            r.blkio_weight = self.blkio_weight;
        }
        if self.nano_cpus != 0 && (self.cpu_quota != 0 || self.cpu_period != 0) {
            return Err(
                "Conflicting options: Nano CPUs cannot be set with CPU Quota or CPU Period".into(),
            );
        }
        if r.memory != 0 && r.memory < MIN_MEMORY {
            return Err("Minimum memory limit allowed is 6MB".into());
        }
        if r.memory_swap > 0 && r.memory == 0 {
            return Err(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
                    .into(),
            );
        }
        if r.memory_swap > 0 && r.memory_swap < r.memory {
            return Err(if self.memory_swap == 0 {
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into()
            } else {
                "Minimum memoryswap limit should be larger than memory limit, see usage".into()
            });
        }
        if r.memory_reservation > 0 && r.memory > 0 && r.memory_reservation > r.memory {
            return Err(
                "Minimum memory limit can not be less than memory reservation limit, see usage"
                    .into(),
            );
        }
        if r.cpu_shares < 0 || r.cpu_period < 0 || r.nano_cpus < 0 {
            return Err("CPU shares, period and NanoCPUs cannot be negative".into());
        }
        if r.cpu_period != 0 && !(1000..=1_000_000).contains(&r.cpu_period) {
            return Err("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)".into());
        }
        if r.cpu_quota > 0 && r.cpu_quota < 1000 {
            return Err("CPU cfs quota can not be less than 1ms (i.e. 1000)".into());
        }
        Ok(r)
    }
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
    /// `--add-host NAME:IP` lines for /etc/hosts (IP may be `host-gateway`).
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// `--dns`, `--dns-search`, `--dns-option`: replace the host's in
    /// /etc/resolv.conf when given.
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--device`.
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
    /// `--init` (HostConfig.Init); `None`: the daemon's `--init`.
    #[serde(default)]
    pub init: Option<bool>,
    /// `--cgroup-parent`: the cgroup (from the hierarchies' roots) the
    /// container's goes under; empty: `/strato`.
    #[serde(default)]
    pub cgroup_parent: String,
    /// The host's init binary, bound at /sbin/docker-init and run as the
    /// container's process 1 before its command: set by the engine at each
    /// start of an `--init` container, never saved.
    #[serde(skip)]
    pub init_binary: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_keeps_unset_fields_and_checks_the_result() {
        let cur = Resources {
            memory: 400 << 20,
            cpu_shares: 2,
            nano_cpus: 1_000_000_000,
            pids_limit: 10,
            ..Default::default()
        };
        let u = ResourceUpdate {
            memory: 300 << 20,
            cpu_quota: 50_000,
            pids_limit: Some(-1),
            blkio_weight: 400,
            ..Default::default()
        };
        let r = u.merge(&cur).unwrap();
        assert_eq!(r.memory, 300 << 20);
        assert_eq!(r.blkio_weight, 400);
        assert_eq!(r.cpu_shares, 2, "unset: kept");
        assert_eq!(
            (r.nano_cpus, r.cpu_quota),
            (0, 50_000),
            "quota replaces NanoCpus"
        );
        assert_eq!(r.pids_limit, 0, "unlimited");
        assert_eq!(ResourceUpdate::default().merge(&cur).unwrap(), cur);

        let bad = |u: ResourceUpdate, cur: &Resources, msg: &str| {
            let e = u.merge(cur).unwrap_err();
            assert!(e.contains(msg), "{e}");
        };
        bad(
            ResourceUpdate {
                memory: 1 << 20,
                ..Default::default()
            },
            &cur,
            "Minimum memory limit allowed is 6MB",
        );
        let swapped = Resources {
            memory: 100 << 20,
            memory_swap: 200 << 20,
            ..Default::default()
        };
        bad(
            ResourceUpdate {
                memory: 300 << 20,
                ..Default::default()
            },
            &swapped,
            "smaller than already set memoryswap",
        );
        bad(
            ResourceUpdate {
                memory_swap: 1 << 30,
                ..Default::default()
            },
            &Resources::default(),
            "always set the Memory limit",
        );
        bad(
            ResourceUpdate {
                nano_cpus: 1,
                cpu_period: 100_000,
                ..Default::default()
            },
            &cur,
            "Conflicting options",
        );
        bad(
            ResourceUpdate {
                cpu_period: 10,
                ..Default::default()
            },
            &cur,
            "CPU cfs period",
        );
    }
}
