//! Controlling a live container from outside: `update` (new cgroup limits),
//! handing out a pidfd of a container process (`--pidfd-socket`), and the
//! pure parsers the runc-compatible flags need (`--memory 50M`).
//!
//! Entry point: [`Runtime::update`]. The limits a user asks for are merged
//! into the ones the container was created (or last updated) with — a field
//! that is not given keeps its value — applied to the container's cgroup, and
//! saved into the state's spec, so two updates compose.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources, LinuxThrottleDevice, LinuxWeightDevice,
};

use crate::error::{Error, IoContext, Result};
use crate::state::Status;
use crate::Runtime;

impl Runtime {
    /// `update`: merges `req` into the container's resources, applies the
    /// result to its cgroup and records it in the container's state.
    ///
    /// Device rules are never rewritten (as in runc, `update` cannot change
    /// them, and rewriting them would open a window where every device is
    /// denied). Works on created, running and paused containers.
    pub fn update(&self, id: &str, req: &LinuxResources) -> Result<()> {
        let (mut st, status) = self.load(id)?;
        if status == Status::Stopped {
            return Err(Error::State {
                id: id.to_string(),
                status: status.to_string(),
                msg: "only a created, running or paused container can be updated".into(),
            });
        }
        let mut linux = st.spec.linux().clone().unwrap_or_default();
        let current = linux.resources().clone().unwrap_or_default();
        let merged = merge_resources(&current, req);
        let hierarchy = strato_cgroups::detect(Path::new("/sys/fs/cgroup"))
            .map_err(|e| Error::Cgroup(e.to_string()))?;
        let cg = strato_cgroups::Manager::new(&hierarchy, &st.cgroups_path)
            .map_err(|e| Error::Cgroup(e.to_string()))?;
        tracing::debug!(id, cgroup = %st.cgroups_path.display(), "applying updated resources");
        let apply = for_apply(&merged);
        if let Err(e) = cg.apply(&apply) {
            // A realtime period shorter than the current runtime is refused
            // until the runtime shrinks: set the runtime first, then retry.
            let runtime = req.cpu().as_ref().and_then(|c| c.realtime_runtime());
            let Some(runtime) = runtime else {
                return Err(Error::Cgroup(e.to_string()));
            };
            let mut first = LinuxResources::default();
            let mut cpu = LinuxCpu::default();
            cpu.set_realtime_runtime(Some(runtime));
            first.set_cpu(Some(cpu));
            cg.apply(&first)
                .and_then(|()| cg.apply(&apply))
                .map_err(|_| Error::Cgroup(e.to_string()))?;
        }
        if let (Some(dir), Some(bio)) = (cg.path("blkio"), merged.block_io()) {
            if req.block_io().is_some() && cg.version() == strato_cgroups::Version::V1 {
                apply_block_io_v1(dir, bio)?;
            }
        }
        linux.set_resources(Some(merged));
        st.spec.set_linux(Some(linux));
        self.store().save(&st)
    }
}

/// The container's resources after an update: every field given in `req`
/// replaces the current one, every other field keeps its value. Per-device
/// block I/O entries are replaced by (major, minor), `unified` keys one by one.
///
/// As in runc, removing the memory limit (`-1`) without saying anything about
/// swap removes the swap limit too (the kernel refuses a swap limit without a
/// memory limit).
pub fn merge_resources(current: &LinuxResources, req: &LinuxResources) -> LinuxResources {
    let mut out = current.clone();
    if let Some(m) = req.memory() {
        let mut mem = current.memory().unwrap_or_default();
        let mut swap = m.swap();
        if m.limit() == Some(-1) && swap.is_none() {
            swap = Some(0);
        }
        set_some(&mut mem, m.limit(), LinuxMemory::set_limit);
        set_some(&mut mem, m.reservation(), LinuxMemory::set_reservation);
        set_some(&mut mem, swap, LinuxMemory::set_swap);
        set_some(&mut mem, m.swappiness(), LinuxMemory::set_swappiness);
        set_some(
            &mut mem,
            m.disable_oom_killer(),
            LinuxMemory::set_disable_oom_killer,
        );
        set_some(&mut mem, m.use_hierarchy(), LinuxMemory::set_use_hierarchy);
        #[allow(deprecated)]
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            tracing::warn!("kernel memory settings are ignored (obsolete since kernel 5.4)");
        }
        out.set_memory(Some(mem));
    }
    if let Some(c) = req.cpu() {
        let mut cpu = current.cpu().clone().unwrap_or_default();
        set_some(&mut cpu, c.shares(), LinuxCpu::set_shares);
        // The kernel refuses cpu.shares while cpu.idle is 1: an update that
        // sets idle without shares forgets the shares (as runc does).
        if c.idle().is_some() && c.shares().is_none() {
            cpu.set_shares(None);
        }
        set_some(&mut cpu, c.quota(), LinuxCpu::set_quota);
        set_some(&mut cpu, c.period(), LinuxCpu::set_period);
        set_some(&mut cpu, c.burst(), LinuxCpu::set_burst);
        set_some(&mut cpu, c.idle(), LinuxCpu::set_idle);
        set_some(&mut cpu, c.realtime_period(), LinuxCpu::set_realtime_period);
        set_some(
            &mut cpu,
            c.realtime_runtime(),
            LinuxCpu::set_realtime_runtime,
        );
        if let Some(v) = c.cpus().clone().filter(|s| !s.is_empty()) {
            cpu.set_cpus(Some(v));
        }
        if let Some(v) = c.mems().clone().filter(|s| !s.is_empty()) {
            cpu.set_mems(Some(v));
        }
        out.set_cpu(Some(cpu));
    }
    if let Some(p) = req.pids() {
        out.set_pids(Some(*p));
    }
    if let Some(b) = req.block_io() {
        let mut bio = current.block_io().clone().unwrap_or_default();
        set_some(&mut bio, b.weight(), LinuxBlockIo::set_weight);
        set_some(&mut bio, b.leaf_weight(), LinuxBlockIo::set_leaf_weight);
        if let Some(new) = b.weight_device() {
            let mut list = bio.weight_device().clone().unwrap_or_default();
            for d in new {
                upsert(&mut list, *d, |a: &LinuxWeightDevice, b| {
                    (a.major(), a.minor()) == (b.major(), b.minor())
                });
            }
            bio.set_weight_device(Some(list));
        }
        type Getter = fn(&LinuxBlockIo) -> &Option<Vec<LinuxThrottleDevice>>;
        type Setter = fn(&mut LinuxBlockIo, Option<Vec<LinuxThrottleDevice>>) -> &mut LinuxBlockIo;
        let lists: [(Getter, Setter); 4] = [
            (
                LinuxBlockIo::throttle_read_bps_device,
                LinuxBlockIo::set_throttle_read_bps_device,
            ),
            (
                LinuxBlockIo::throttle_write_bps_device,
                LinuxBlockIo::set_throttle_write_bps_device,
            ),
            (
                LinuxBlockIo::throttle_read_iops_device,
                LinuxBlockIo::set_throttle_read_iops_device,
            ),
            (
                LinuxBlockIo::throttle_write_iops_device,
                LinuxBlockIo::set_throttle_write_iops_device,
            ),
        ];
        for (get, set) in lists {
            if let Some(new) = get(b) {
                let mut list = get(&bio).clone().unwrap_or_default();
                for d in new {
                    upsert(&mut list, *d, |a: &LinuxThrottleDevice, b| {
                        (a.major(), a.minor()) == (b.major(), b.minor())
                    });
                }
                set(&mut bio, Some(list));
            }
        }
        out.set_block_io(Some(bio));
    }
    if let Some(u) = req.unified() {
        let mut map: HashMap<String, String> = current.unified().clone().unwrap_or_default();
        map.extend(u.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.set_unified(Some(map));
    }
    for (set, given) in [
        (req.hugepage_limits().is_some(), "hugepageLimits"),
        (req.network().is_some(), "network"),
        (req.rdma().is_some(), "rdma"),
    ] {
        if set {
            tracing::warn!(
                resource = given,
                "update cannot change this resource; ignored"
            );
        }
    }
    out
}

/// What [`Runtime::update`] writes to the cgroup: the merged resources
/// without device rules, with a pids limit of 0 meaning 1 (as in runc, which
/// follows systemd's `TasksMax`; a limit below 0 means no limit).
pub fn for_apply(merged: &LinuxResources) -> LinuxResources {
    let mut r = merged.clone();
    r.set_devices(None);
    if let Some(mut p) = *r.pids() {
        if p.limit() == 0 {
            p.set_limit(1);
            r.set_pids(Some(p));
        }
    }
    r
}

fn set_some<S, T>(target: &mut S, v: Option<T>, set: impl Fn(&mut S, Option<T>) -> &mut S) {
    if v.is_some() {
        set(target, v);
    }
}

fn upsert<T>(list: &mut Vec<T>, item: T, same: impl Fn(&T, &T) -> bool) {
    list.retain(|x| !same(x, &item));
    list.push(item);
}

/// Block I/O on cgroup v1, which strato-cgroups does not apply yet: the
/// weight and the per-device throttles.
fn apply_block_io_v1(dir: &Path, bio: &LinuxBlockIo) -> Result<()> {
    let write = |file: &str, value: String| {
        let path = dir.join(file);
        std::fs::write(&path, &value).ctx(|| format!("write {value:?} to {}", path.display()))
    };
    // Without CFQ the weights live in BFQ's files (as runc does it).
    let bfq = !dir.join("blkio.weight").exists() && dir.join("blkio.bfq.weight").exists();
    let (weight, weight_device) = if bfq {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    if let Some(w) = bio.weight() {
        write(weight, w.to_string())?;
    }
    if let Some(w) = bio.leaf_weight() {
        write("blkio.leaf_weight", w.to_string())?;
    }
    for d in bio.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            write(weight_device, format!("{}:{} {w}", d.major(), d.minor()))?;
        }
        if let Some(w) = d.leaf_weight() {
            write(
                "blkio.leaf_weight_device",
                format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        }
    }
    let lists = [
        (
            "blkio.throttle.read_bps_device",
            bio.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            bio.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            bio.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            bio.throttle_write_iops_device(),
        ),
    ];
    for (file, list) in lists {
        for d in list.iter().flatten() {
            write(file, format!("{}:{} {}", d.major(), d.minor(), d.rate()))?;
        }
    }
    Ok(())
}

/// Parses a size the way runc's flags do (Docker's `RAMInBytes`): a number,
/// optionally fractional, then an optional binary unit `k`, `m`, `g`, `t` or
/// `p` (any case, optionally followed by `i` and/or `b`): `50M` is 52428800.
/// `-1` means unlimited.
pub fn parse_ram(s: &str) -> std::result::Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    let bad = || format!("invalid size {s:?}: use a byte count, or a number with k, m, g, t or p");
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(bad());
    }
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut chars = unit.chars().peekable();
    let shift = match chars.peek() {
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        Some('p') => 50,
        _ => 0,
    };
    if shift > 0 {
        chars.next();
    }
    if chars.peek() == Some(&'i') {
        chars.next();
    }
    if chars.peek() == Some(&'b') {
        chars.next();
    }
    if chars.next().is_some() {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(format!("invalid size {s:?}: too large"));
    }
    // Truncation toward zero is what the incumbent does with fractions.
    #[allow(clippy::cast_possible_truncation)]
    Ok(bytes as i64)
}

/// The capability names this build knows (`CAP_CHOWN`, …), sorted.
pub fn known_capabilities() -> Vec<String> {
    let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

/// Sends a pidfd of process `pid` over the unix socket at `socket` (the
/// `--pidfd-socket` protocol of runc: one message whose data is a name and
/// whose SCM_RIGHTS carries the descriptor).
pub fn send_pidfd(socket: &Path, pid: i32) -> Result<()> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Error::io(
            format!("pidfd_open of pid {pid}"),
            std::io::Error::last_os_error(),
        ));
    }
    let fd = i32::try_from(fd)
        .map_err(|_| Error::Init(format!("pidfd_open of pid {pid} returned {fd}")))?;
    // SAFETY: the syscall just returned this descriptor; we own it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let sock = UnixStream::connect(socket)
        .ctx(|| format!("connect to pidfd socket {}", socket.display()))?;
    let name = b"pidfd";
    let iov = [std::io::IoSlice::new(name)];
    let fds = [pidfd.as_raw_fd()];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    nix::sys::socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &cmsg,
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .ctx(|| format!("send pidfd over {}", socket.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ram_sizes_like_docker() {
        assert_eq!(parse_ram("67108864"), Ok(67108864));
        assert_eq!(parse_ram("50M"), Ok(52428800));
        assert_eq!(parse_ram("50m"), Ok(52428800));
        assert_eq!(parse_ram("1.5k"), Ok(1536));
        assert_eq!(parse_ram("2GiB"), Ok(2 << 30));
        assert_eq!(parse_ram("3 kb"), Ok(3072));
        assert_eq!(parse_ram("-1"), Ok(-1));
        for bad in ["", "M", "-2", "1x", "1.", ".5", "1MM", "99999999999P"] {
            assert!(parse_ram(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn fields_not_given_keep_their_value() {
        let cur = res(serde_json::json!({
            "memory": {"limit": 33554432, "reservation": 25165824},
            "cpu": {"shares": 100, "quota": 500000, "period": 1000000, "cpus": "0"},
            "pids": {"limit": 20},
            "devices": [{"allow": false, "access": "rwm"}]
        }));
        let m = merge_resources(&cur, &res(serde_json::json!({"cpu": {"period": 900000}})));
        let cpu = m.cpu().clone().unwrap();
        assert_eq!(cpu.period(), Some(900000));
        assert_eq!(cpu.quota(), Some(500000));
        assert_eq!(cpu.shares(), Some(100));
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        assert_eq!(m.memory().unwrap().limit(), Some(33554432));
        assert_eq!(m.pids().unwrap().limit(), 20);
        // Setting idle alone forgets the shares (the kernel refuses them then).
        let idle = merge_resources(&m, &res(serde_json::json!({"cpu": {"idle": 1}})));
        assert_eq!(idle.cpu().clone().unwrap().shares(), None);
        // A second update composes with the first.
        let m2 = merge_resources(&m, &res(serde_json::json!({"cpu": {"quota": -1}})));
        let cpu = m2.cpu().clone().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(-1), Some(900000)));
        // Device rules stay in the spec but are never rewritten.
        assert!(m2.devices().is_some());
        assert!(for_apply(&m2).devices().is_none());
    }

    #[test]
    fn unlimited_memory_drops_the_swap_limit_unless_given() {
        let cur = res(serde_json::json!({"memory": {"limit": 1048576, "swap": 2097152}}));
        let m = merge_resources(&cur, &res(serde_json::json!({"memory": {"limit": -1}})));
        let mem = m.memory().unwrap();
        assert_eq!((mem.limit(), mem.swap()), (Some(-1), Some(0)));
        let m = merge_resources(
            &cur,
            &res(serde_json::json!({"memory": {"limit": -1, "swap": -1}})),
        );
        assert_eq!(m.memory().unwrap().swap(), Some(-1));
    }

    #[test]
    fn pids_zero_means_one_and_negative_means_unlimited() {
        let m = merge_resources(
            &LinuxResources::default(),
            &res(serde_json::json!({"pids": {"limit": 0}})),
        );
        assert_eq!(for_apply(&m).pids().unwrap().limit(), 1);
        // The state keeps what was asked for.
        assert_eq!(m.pids().unwrap().limit(), 0);
        let m = merge_resources(&m, &res(serde_json::json!({"pids": {"limit": -1}})));
        assert_eq!(for_apply(&m).pids().unwrap().limit(), -1);
    }

    #[test]
    fn throttle_devices_are_replaced_by_major_minor() {
        let cur = res(serde_json::json!({"blockIO": {"throttleReadBpsDevice": [
            {"major": 8, "minor": 0, "rate": 1}, {"major": 8, "minor": 16, "rate": 2}
        ]}}));
        let m = merge_resources(
            &cur,
            &res(serde_json::json!({"blockIO": {"throttleReadBpsDevice": [
                {"major": 8, "minor": 0, "rate": 10}
            ]}})),
        );
        let list = m
            .block_io()
            .clone()
            .unwrap()
            .throttle_read_bps_device()
            .clone()
            .unwrap();
        let rates: Vec<(i64, i64, u64)> = list
            .iter()
            .map(|d| (d.major(), d.minor(), d.rate()))
            .collect();
        assert_eq!(rates, vec![(8, 16, 2), (8, 0, 10)]);
    }
}
