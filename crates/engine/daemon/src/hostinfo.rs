//! Facts about the host for `docker version` and `docker info`, read from
//! uname, /proc and /etc.

use std::fs;
use std::path::Path;

/// The kernel release (`uname -r`).
pub fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `PRETTY_NAME` and `VERSION_ID` of /etc/os-release.
pub fn os_release() -> (String, String) {
    let text = fs::read_to_string("/etc/os-release")
        .or_else(|_| fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    parse_os_release(&text)
}

fn parse_os_release(text: &str) -> (String, String) {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let pretty = get("PRETTY_NAME");
    (
        if pretty.is_empty() {
            "Linux".into()
        } else {
            pretty
        },
        get("VERSION_ID"),
    )
}

/// Total memory in bytes (/proc/meminfo `MemTotal`).
pub fn mem_total() -> i64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Online CPUs.
pub fn ncpu() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1)
}

/// `"2"` on a unified cgroup hierarchy, else `"1"`.
pub fn cgroup_version() -> &'static str {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

/// Number of descriptors this process has open.
pub fn open_fds() -> i64 {
    fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as i64)
        .unwrap_or(0)
}

/// Clock ticks per second (for /proc/PID/stat times).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects; it only reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Boot time in Unix seconds (/proc/stat `btime`).
pub fn boot_time() -> i64 {
    fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Total CPU time of the host in nanoseconds (/proc/stat `cpu` line), as
/// Docker's `system_cpu_usage`.
pub fn system_cpu_ns() -> u64 {
    let ticks = clock_ticks();
    fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("cpu "))?.to_string();
            let total: u64 = line
                .split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum();
            Some(total * (1_000_000_000 / ticks))
        })
        .unwrap_or(0)
}

/// A user name for `uid` from the host's /etc/passwd (else the number).
pub fn user_name(uid: u32) -> String {
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// What the host's cgroups can limit beyond memory, cpu and pids: whether
/// block I/O weights have a file to go to (CFQ's or BFQ's on v1; the io
/// controller on v2), and whether v1's cpu controller has real-time
/// budgets (a kernel with CONFIG_RT_GROUP_SCHED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupFeatures {
    pub blkio_weight: bool,
    pub cpu_realtime: bool,
}

/// [`CgroupFeatures`] of the cgroups mounted at `root`.
pub fn cgroup_features(root: &Path) -> CgroupFeatures {
    use strato_cgroups::Hierarchy;
    match strato_cgroups::detect(root) {
        Ok(Hierarchy::V2 { mount_point }) => CgroupFeatures {
            blkio_weight: std::fs::read_to_string(mount_point.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "io")),
            cpu_realtime: false,
        },
        Ok(h) => {
            // Some files exist in child cgroups only (BFQ's weights): the
            // root, then its first child directory, are looked at.
            let has = |controller: &str, files: &[&str]| {
                let Some(m) = h.v1_mount(controller) else {
                    return false;
                };
                let child = std::fs::read_dir(&m.mount_point).ok().and_then(|d| {
                    d.flatten()
                        .find(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path())
                });
                std::iter::once(m.mount_point.clone())
                    .chain(child)
                    .any(|dir| files.iter().any(|f| dir.join(f).exists()))
            };
            CgroupFeatures {
                blkio_weight: has("blkio", &["blkio.weight", "blkio.bfq.weight"]),
                cpu_realtime: has("cpu", &["cpu.rt_runtime_us"]),
            }
        }
        Err(_) => CgroupFeatures {
            blkio_weight: false,
            cpu_realtime: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_fields() {
        let (p, v) = parse_os_release(
            "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n",
        );
        assert_eq!(p, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(v, "12");
        assert_eq!(parse_os_release("").0, "Linux");
    }

    #[test]
    fn host_facts_are_read() {
        assert!(!kernel_version().is_empty());
        assert!(mem_total() > 0);
        assert!(ncpu() >= 1);
        assert!(boot_time() > 0);
        assert!(system_cpu_ns() > 0);
    }
}
