//! The container process's own settings (user, capabilities, rlimits, seccomp,
//! terminal) and the final `execve`.
//!
//! A [`ProcessPlan`] is computed in the runtime before it forks, so that the
//! forked child only applies ready values. The child is a fork of a
//! single-threaded process, so allocating there is sound; still, the work done
//! after the fork is kept to system calls and small conversions.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use caps::{CapSet, CapsHashSet};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, Process};

use crate::error::{Error, Result};

/// The default PATH used to find the command when the process env has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Capability sets to apply; `None` leaves a set as inherited.
#[derive(Debug, Clone, Default)]
pub struct CapsPlan {
    pub bounding: Option<CapsHashSet>,
    pub effective: Option<CapsHashSet>,
    pub inheritable: Option<CapsHashSet>,
    pub permitted: Option<CapsHashSet>,
    pub ambient: Option<CapsHashSet>,
}

/// Everything needed to turn the forked child into the container's process.
#[derive(Debug)]
pub struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub path_var: String,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: u32,
    pub no_new_privileges: bool,
    pub caps: Option<CapsPlan>,
    pub rlimits: Vec<(libc::c_int, u64, u64)>,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub seccomp: Option<strato_seccomp::Filter>,
    /// File descriptors 3..3+N are passed to the process (`--preserve-fds`).
    pub preserve_fds: u32,
    /// `personality(2)` persona to set before exec (`linux.personality`).
    pub personality: Option<libc::c_ulong>,
    /// NUMA memory policy to set before exec (`linux.memoryPolicy`).
    pub memory_policy: Option<crate::mempolicy::MemPolicy>,
    /// `ioprio_set(2)` value (`process.ioPriority`).
    pub io_priority: Option<libc::c_int>,
    /// `sched_setattr(2)` attributes (`process.scheduler`).
    pub scheduler: Option<SchedAttr>,
    /// Whether the cpuset limits the CPUs (a scheduler EPERM then says why).
    pub cpus_restricted: bool,
    /// `process.execCPUAffinity.initial`: the CPUs of the launching process
    /// before it joins the cgroup (exec only; `None` for a container's init).
    pub affinity_initial: Option<Vec<usize>>,
    /// `process.execCPUAffinity.final`: the process's CPUs once in the
    /// cgroup; `None` allows every CPU (the cpuset still limits).
    pub affinity_final: Option<Vec<usize>>,
    /// Where the seccomp agent listens (`linux.seccomp.listenerPath`, a
    /// path or `@abstract` name) and its `listenerMetadata`, when the filter
    /// has `SCMP_ACT_NOTIFY` rules.
    pub seccomp_listener: Option<(String, String)>,
    /// Clear ONLCR on the terminal (a pty relayed by the runtime itself, as
    /// runc does, so output has no carriage returns added).
    pub raw_newlines: bool,
    /// Descriptors to install as the process's stdin, stdout and stderr
    /// (owned by the caller, kept open across the launch); `None` inherits.
    pub stdio: Option<[RawFd; 3]>,
    /// Exec into a container that shares the host's mount namespace: its
    /// root (`/proc/PID/root`) to chroot into first.
    pub root: Option<PathBuf>,
}

fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Usage(format!("{what} {s:?} contains a NUL byte")))
}

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER0, 48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

fn sched_attr(s: &oci_spec::runtime::Scheduler) -> SchedAttr {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let flags = s.flags().iter().flatten().fold(0u64, |acc, f| {
        acc | match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        }
    });
    SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    }
}

fn io_priority(p: &oci_spec::runtime::LinuxIOPriority) -> Result<libc::c_int> {
    use oci_spec::runtime::IOPriorityClass as C;
    let class = match p.class() {
        C::IoprioClassRt => 1,
        C::IoprioClassBe => 2,
        C::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&p.priority()) {
        return Err(Error::Usage(format!(
            "process.ioPriority.priority {} is out of range: use 0 (highest) to 7 (lowest)",
            p.priority()
        )));
    }
    Ok((class << 13) | p.priority() as libc::c_int)
}

/// Converts OCI capability names to the `caps` crate's set, skipping (with a
/// warning) capabilities this kernel/library does not know.
pub fn caps_set(set: &Capabilities) -> CapsHashSet {
    set.iter()
        .filter_map(|c| {
            let name = format!("CAP_{c}");
            match name.parse::<caps::Capability>() {
                Ok(cap) => Some(cap),
                Err(_) => {
                    tracing::warn!(capability = %name, "unknown capability ignored");
                    None
                }
            }
        })
        .collect()
}

fn rlimit_resource(name: &str) -> Option<libc::c_int> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    } as libc::c_int)
}

impl ProcessPlan {
    /// Builds the plan from the spec's `process` (and `linux.seccomp`).
    pub fn new(
        process: &Process,
        seccomp: Option<&oci_spec::runtime::LinuxSeccomp>,
    ) -> Result<ProcessPlan> {
        let args = process
            .args()
            .as_ref()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::Usage("process.args is empty: give the command to run".into()))?
            .iter()
            .map(|a| cstring("process.args entry", a))
            .collect::<Result<Vec<_>>>()?;
        let env_list = process.env().clone().unwrap_or_default();
        let path_var = env_list
            .iter()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        let env = dedup_env(&env_list)
            .iter()
            .map(|kv| cstring("process.env entry", kv))
            .collect::<Result<Vec<_>>>()?;
        let user = process.user();
        // Within a capabilities object an absent set is an empty one.
        let set = |s: &Option<Capabilities>| Some(s.as_ref().map(caps_set).unwrap_or_default());
        let caps = process.capabilities().as_ref().map(|c| CapsPlan {
            bounding: set(c.bounding()),
            effective: set(c.effective()),
            inheritable: set(c.inheritable()),
            permitted: set(c.permitted()),
            ambient: set(c.ambient()),
        });
        let mut rlimits = Vec::new();
        for rl in process.rlimits().iter().flatten() {
            let name = rl.typ().to_string();
            let res = rlimit_resource(&name).ok_or_else(|| {
                Error::Usage(format!("process.rlimits: {name} is not a Linux rlimit"))
            })?;
            if rl.soft() > rl.hard() {
                return Err(Error::Usage(format!(
                    "process.rlimits: {name} soft limit {} is above its hard limit {}",
                    rl.soft(),
                    rl.hard()
                )));
            }
            rlimits.push((res, rl.soft(), rl.hard()));
        }
        let io_priority = process
            .io_priority()
            .as_ref()
            .map(io_priority)
            .transpose()?;
        let scheduler = process.scheduler().as_ref().map(sched_attr);
        let affinity = process.exec_cpu_affinity().as_ref();
        let cpus = |what: &str, list: Option<&String>| {
            list.filter(|l| !l.trim().is_empty())
                .map(|l| {
                    parse_cpu_list(l).map_err(|e| {
                        Error::Usage(format!("process.execCPUAffinity.{what} {l:?}: {e}"))
                    })
                })
                .transpose()
        };
        let affinity_initial = cpus("initial", affinity.and_then(|a| a.initial().as_ref()))?;
        let affinity_final = cpus(
            "final",
            affinity.and_then(|a| a.cpu_affinity_final().as_ref()),
        )?;
        let mut seccomp_listener = None;
        let compiled = match seccomp {
            Some(s) => {
                let f = strato_seccomp::compile_primed(s)
                    .map_err(|e| Error::Seccomp(e.to_string()))?
                    .for_single_thread();
                tracing::debug!("seccomp filter flags: {}", f.flags());
                if f.has_listener() {
                    let path = s
                        .listener_path()
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned())
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| {
                            Error::Seccomp(
                                "seccomp listenerPath is not set: SCMP_ACT_NOTIFY needs the unix socket of a seccomp agent in linux.seccomp.listenerPath".into(),
                            )
                        })?;
                    let meta = s.listener_metadata().clone().unwrap_or_default();
                    seccomp_listener = Some((path, meta));
                }
                Some(f)
            }
            None => None,
        };
        let seccomp = compiled;
        Ok(ProcessPlan {
            args,
            env,
            path_var,
            cwd: process.cwd().clone(),
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
            no_new_privileges: process.no_new_privileges().unwrap_or(false),
            caps,
            rlimits,
            oom_score_adj: process.oom_score_adj(),
            terminal: process.terminal().unwrap_or(false),
            console_size: process
                .console_size()
                .as_ref()
                .map(|b| (b.height() as u16, b.width() as u16)),
            seccomp,
            preserve_fds: 0,
            raw_newlines: false,
            personality: None,
            memory_policy: None,
            io_priority,
            scheduler,
            cpus_restricted: false,
            affinity_initial,
            affinity_final,
            seccomp_listener,
            stdio: None,
            root: None,
        })
    }
}

/// A CPU list as in `cpuset.cpus` and execCPUAffinity (`0-3,7`).
pub fn parse_cpu_list(list: &str) -> std::result::Result<Vec<usize>, String> {
    let max = nix::sched::CpuSet::count();
    let mut out = Vec::new();
    for part in list.trim().split(',') {
        let part = part.trim();
        let num = |n: &str| {
            n.trim()
                .parse::<usize>()
                .map_err(|_| format!("{part:?} is not a CPU number or range"))
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if lo > hi {
            return Err(format!("range {part:?} runs backwards"));
        }
        if hi >= max {
            return Err(format!("CPU {hi} is beyond the {max} CPUs a mask holds"));
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The affinity mask of `cpus` in hex (`0x5` for CPUs 0 and 2).
pub fn cpu_mask_hex(cpus: &[usize]) -> String {
    let words = cpus.iter().max().map_or(1, |m| m / 64 + 1);
    let mut w = vec![0u64; words];
    for &c in cpus {
        w[c / 64] |= 1 << (c % 64);
    }
    let mut out = format!("0x{:x}", w[words - 1]);
    for word in w[..words - 1].iter().rev() {
        out.push_str(&format!("{word:016x}"));
    }
    out
}

/// Sets the calling thread's CPU affinity to `cpus`.
pub fn set_affinity(cpus: &[usize]) -> std::result::Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c).map_err(|e| format!("CPU {c}: {e}"))?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| format!("set CPU affinity {}: {e}", cpu_mask_hex(cpus)))
}

/// One entry per variable, the last value winning, in first-seen order (as runc).
pub fn dedup_env(env: &[String]) -> Vec<String> {
    let key = |kv: &str| kv.split('=').next().unwrap_or_default().to_string();
    let mut out: Vec<String> = Vec::new();
    for kv in env {
        match out.iter_mut().find(|e| key(e) == key(kv)) {
            Some(slot) => *slot = kv.clone(),
            None => out.push(kv.clone()),
        }
    }
    out
}

fn os<T>(what: &str, r: nix::Result<T>) -> std::result::Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// Applies rlimits, seccomp (when it must precede dropping privileges), the
/// capability bounding set, user and groups, capabilities, umask and cwd.
/// Runs in the forked child.
pub fn apply(plan: &ProcessPlan, in_userns: bool) -> std::result::Result<(), String> {
    // The caller's CPU affinity (e.g. `taskset -c 0 strato …`) is not the
    // container's: allow every CPU, the cpuset cgroup still limits; or the
    // final set of process.execCPUAffinity.
    if let Some(cpus) = &plan.affinity_final {
        set_affinity(cpus).map_err(|e| format!("process.execCPUAffinity.final: {e}"))?;
    } else {
        let mut all = nix::sched::CpuSet::new();
        for cpu in 0..nix::sched::CpuSet::count() {
            let _ = all.set(cpu);
        }
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &all);
    }
    if let Some(persona) = plan.personality {
        // SAFETY: personality takes one integer and touches no memory of ours.
        if unsafe { libc::personality(persona) } == -1 {
            return Err(format!(
                "personality({persona:#x}): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    if let Some(policy) = &plan.memory_policy {
        crate::mempolicy::apply(policy)?;
    }
    if let Some(prio) = plan.io_priority {
        const IOPRIO_WHO_PROCESS: libc::c_int = 1;
        // SAFETY: integer arguments only.
        if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) } != 0 {
            return Err(format!(
                "set I/O priority {prio:#x}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    if let Some(attr) = &plan.scheduler {
        // SAFETY: `attr` is a sched_attr of the size it declares, alive for the call.
        if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EPERM) && plan.cpus_restricted {
                return Err("process scheduler can't be used together with AllowedCPUs: the kernel refuses this policy when linux.resources.cpu.cpus limits the CPUs".into());
            }
            return Err(format!("set process scheduler: {err}"));
        }
    }
    for &(res, soft, hard) in &plan.rlimits {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: `lim` is a valid rlimit struct for the duration of the call.
        if unsafe { libc::setrlimit(res as _, &lim) } != 0 {
            return Err(format!(
                "setrlimit({res}, {soft}, {hard}): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it now.
    if !plan.no_new_privileges {
        if let Some(f) = &plan.seccomp {
            install_seccomp(f)?;
        }
    }
    if let Some(c) = &plan.caps {
        if let Some(b) = &c.bounding {
            for cap in caps::all() {
                if !b.contains(&cap) {
                    match caps::drop(None, CapSet::Bounding, cap) {
                        Ok(()) => {}
                        // Not known to this kernel: nothing to drop.
                        Err(_) if !caps::runtime::thread_all_supported().contains(&cap) => {}
                        Err(e) => return Err(format!("drop {cap} from the bounding set: {e}")),
                    }
                }
            }
        }
    }
    // The cwd may be reachable only with root's privileges: change into it
    // now, and again (relative paths, new permissions) after the switch.
    let early_cwd = nix::unistd::chdir(&plan.cwd).is_ok();
    // Keep permitted capabilities across the uid change.
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "prctl(PR_SET_KEEPCAPS): {}",
            std::io::Error::last_os_error()
        ));
    }
    let gids: Vec<Gid> = plan
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match nix::unistd::setgroups(&gids) {
        Ok(()) => {}
        // setgroups is denied in a user namespace whose gid map was written
        // with setgroups "deny": fine when no groups were asked for.
        Err(nix::errno::Errno::EPERM) if in_userns && gids.is_empty() => {}
        Err(e) => return Err(format!("setgroups({:?}): {e}", plan.additional_gids)),
    }
    let gid = Gid::from_raw(plan.gid);
    let uid = Uid::from_raw(plan.uid);
    os(
        &format!("setresgid({})", plan.gid),
        nix::unistd::setresgid(gid, gid, gid),
    )?;
    os(
        &format!("setresuid({})", plan.uid),
        nix::unistd::setresuid(uid, uid, uid),
    )?;
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    if let Some(c) = &plan.caps {
        let empty = CapsHashSet::new();
        // Each capset call must keep effective ⊆ permitted: widen nothing,
        // narrow inheritable and effective before permitted.
        caps::set(
            None,
            CapSet::Inheritable,
            c.inheritable.as_ref().unwrap_or(&empty),
        )
        .map_err(|e| format!("set inheritable capabilities: {e}"))?;
        caps::set(
            None,
            CapSet::Effective,
            c.effective.as_ref().unwrap_or(&empty),
        )
        .map_err(|e| format!("set effective capabilities: {e}"))?;
        caps::set(
            None,
            CapSet::Permitted,
            c.permitted.as_ref().unwrap_or(&empty),
        )
        .map_err(|e| format!("set permitted capabilities: {e}"))?;
        if let Some(amb) = &c.ambient {
            let inheritable = c.inheritable.as_ref().unwrap_or(&empty);
            for cap in amb {
                if !inheritable.contains(cap) {
                    // As runc: the kernel would refuse; warn and go on.
                    eprintln!(
                        "strato: warning: can't raise ambient capability {cap}: it is not in process.capabilities.inheritable: ignored"
                    );
                    continue;
                }
                caps::raise(None, CapSet::Ambient, *cap)
                    .map_err(|e| format!("raise ambient capability {cap}: {e}"))?;
            }
        }
    }
    // SAFETY: umask only sets the process file mode creation mask.
    unsafe { libc::umask(plan.umask as libc::mode_t) };
    match nix::unistd::chdir(&plan.cwd) {
        Ok(()) => {}
        Err(_) if early_cwd => {}
        Err(e) => return Err(format!("chdir to process.cwd {}: {e}", plan.cwd.display())),
    }
    if plan.no_new_privileges {
        // SAFETY: plain prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(format!(
                "prctl(PR_SET_NO_NEW_PRIVS): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Resolves the command through PATH, loads a seccomp filter that waited for
/// no_new_privs, and executes. Returns only on failure, with the message and
/// the shell's exit code for it (127: not found, 126: not executable).
/// `resolved`: the command's path when [`resolve_executable`] found it
/// already (at create, as runc does); otherwise PATH is searched here.
pub fn exec(plan: &ProcessPlan, resolved: Option<PathBuf>) -> (String, i32) {
    if let Err(e) = install_late_seccomp(plan) {
        return (e, 126);
    }
    let (msg, errno) = exec_inner(plan, resolved);
    let code = if errno == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    };
    (msg, code)
}

fn exec_inner(plan: &ProcessPlan, resolved: Option<PathBuf>) -> (String, nix::errno::Errno) {
    use nix::errno::Errno;
    // Everything from fd 3 on (but the preserved ones) closes on exec.
    let first = 3 + plan.preserve_fds;
    // SAFETY: close_range only flags descriptors; no memory is passed.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    let arg0 = plan.args[0].to_string_lossy().into_owned();
    let path = match resolved.or_else(|| find_executable(&arg0, &plan.path_var)) {
        Some(p) => p,
        None => return (not_in_path(&arg0, &plan.path_var), Errno::ENOENT),
    };
    let env = with_home(&plan.env, plan.uid);
    let Ok(cpath) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return (
            format!("exec {arg0:?}: path contains a NUL byte"),
            Errno::EINVAL,
        );
    };
    let err = nix::unistd::execve(&cpath, &plan.args, &env).unwrap_err();
    // Lowercase, as Go and runc print errno texts.
    (
        format!("exec {}: {}", path.display(), err.desc().to_lowercase()),
        err,
    )
}

/// The environment with HOME set, when it is missing or empty, to the home of
/// `uid` in the container's /etc/passwd (else `/`), as runc does.
pub fn with_home(env: &[CString], uid: u32) -> Vec<CString> {
    let has_home = env.iter().any(|e| {
        e.to_bytes()
            .strip_prefix(b"HOME=")
            .is_some_and(|v| !v.is_empty())
    });
    if has_home {
        return env.to_vec();
    }
    let home = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| home_of(&text, uid))
        .unwrap_or_else(|| "/".to_string());
    let mut out: Vec<CString> = env
        .iter()
        .filter(|e| !e.to_bytes().starts_with(b"HOME="))
        .cloned()
        .collect();
    if let Ok(c) = CString::new(format!("HOME={home}")) {
        out.push(c);
    }
    out
}

fn home_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid) && !f[5].is_empty())
            .then(|| f[5].to_string())
    })
}

/// Loads the seccomp filter that waited for no_new_privs, once.
pub fn install_late_seccomp(plan: &ProcessPlan) -> std::result::Result<(), String> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    if !plan.no_new_privileges || DONE.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    match &plan.seccomp {
        Some(f) => install_seccomp(f),
        None => Ok(()),
    }
}

/// The container process's end of the sync channel, for handing a seccomp
/// listener to the runtime; set once after fork, -1 when there is none.
static SYNC_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Records the sync channel's descriptor in the (single-threaded) forked child.
pub fn set_sync_fd(fd: RawFd) {
    SYNC_FD.store(fd, std::sync::atomic::Ordering::SeqCst);
}

/// Loads a filter; a notification listener goes to the runtime at once.
///
/// From the moment the filter is loaded, every syscall the profile marks
/// `SCMP_ACT_NOTIFY` blocks until an agent answers, and no agent holds the
/// listener yet. So the hand-over is one `write(2)` (which `compile` refuses
/// to notify) of a buffer on the stack; the runtime copies the descriptor
/// with pidfd_getfd and answers, and our `read`/`close` afterwards may be
/// notified: by then the agent has the listener.
fn install_seccomp(f: &strato_seccomp::Filter) -> std::result::Result<(), String> {
    let listener = strato_seccomp::install(f).map_err(|e| format!("load seccomp filter: {e}"))?;
    let Some(fd) = listener else {
        return Ok(());
    };
    let sync = SYNC_FD.load(std::sync::atomic::Ordering::SeqCst);
    let msg = crate::channel::seccomp_fd_message(fd);
    // SAFETY: writes `msg.len()` bytes from a stack buffer alive for the call.
    let n = unsafe { libc::write(sync, msg.as_ptr().cast(), msg.len()) };
    if n != msg.len() as isize {
        return Err(format!(
            "pass the seccomp listener to the runtime: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut reply = [0u8; 64];
    // SAFETY: reads at most `reply.len()` bytes into a stack buffer.
    let n = unsafe { libc::read(sync, reply.as_mut_ptr().cast(), reply.len()) };
    // SAFETY: `fd` is the listener seccomp(2) just gave us; nothing else owns it.
    unsafe { libc::close(fd) };
    match n {
        1 if reply[0] == b'G' => Ok(()),
        n if n > 1 && reply[0] == b'E' => {
            Err(String::from_utf8_lossy(&reply[1..n as usize]).into_owned())
        }
        _ => Err("the runtime did not take the seccomp listener".into()),
    }
}

/// A descriptor of the runtime (its `--log` file) that the container
/// process keeps until exec, so its own setup is logged too; -1: none.
static KEEP_UNTIL_EXEC: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Keeps `fd` (which must be close-on-exec) open in container processes
/// until they execute, where [`close_inherited_fds`] would close it: the
/// runtime's log file.
pub fn keep_until_exec(fd: RawFd) {
    KEEP_UNTIL_EXEC.store(fd, std::sync::atomic::Ordering::SeqCst);
}

/// Closes every descriptor from `first` on except those in `keep` (and the
/// one of [`keep_until_exec`]).
pub fn close_inherited_fds(first: RawFd, keep: &[RawFd]) {
    let mut keep = keep.to_vec();
    let log = KEEP_UNTIL_EXEC.load(std::sync::atomic::Ordering::SeqCst);
    if log >= 0 {
        keep.push(log);
    }
    // close_range(2) between the kept ones: a few calls instead of listing
    // /proc/self/fd and closing one by one.
    if fd_ranges_between(first, &keep)
        .into_iter()
        .all(|(from, to)| close_range(from, to))
    {
        return;
    }
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    for fd in fds {
        if fd >= first && !keep.contains(&fd) {
            // The read_dir descriptor is gone already; EBADF is fine.
            let _ = nix::unistd::close(fd);
        }
    }
}

/// The ranges of descriptors from `first` on (to `RawFd::MAX`) without
/// those in `keep`.
fn fd_ranges_between(first: RawFd, keep: &[RawFd]) -> Vec<(RawFd, RawFd)> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd >= first).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut out = Vec::new();
    let mut from = first;
    for k in keep {
        if k > from {
            out.push((from, k - 1));
        }
        match k.checked_add(1) {
            Some(next) => from = next,
            None => return out,
        }
    }
    out.push((from, RawFd::MAX));
    out
}

/// `close_range(first, last, 0)`; false where the kernel lacks it (< 5.9).
fn close_range(first: RawFd, last: RawFd) -> bool {
    // SAFETY: closes descriptors by number only; the caller owns them all
    // (they are the inherited ones a new container process drops).
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0,
        ) == 0
    }
}

/// `cmd` itself when it has a slash, else the first executable match in `path_var`.
pub fn find_executable(cmd: &str, path_var: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd));
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(cmd))
        .find(|p| is_executable(p))
}

/// Finds the command and checks that it can be executed, as runc does before
/// a created process waits for its start: a missing command fails the
/// create, where its error still reaches the caller, not the start. The
/// path found is the one executed then (PATH is not searched twice: each
/// miss is a lookup through every layer of the overlay).
pub fn resolve_executable(plan: &ProcessPlan) -> std::result::Result<PathBuf, String> {
    let arg0 = plan.args[0].to_string_lossy();
    let Some(p) = find_executable(&arg0, &plan.path_var) else {
        return Err(not_in_path(&arg0, &plan.path_var));
    };
    // A PATH search only returns executable files; a path given as is was
    // not looked at yet.
    if arg0.contains('/') {
        match std::fs::metadata(&p) {
            Err(_) => return Err(format!("exec {}: no such file or directory", p.display())),
            Ok(m) if !executable(&m) => {
                return Err(format!("exec {}: permission denied", p.display()))
            }
            Ok(_) => {}
        }
    }
    Ok(p)
}

/// The error for a command that no directory of PATH holds.
fn not_in_path(cmd: &str, path_var: &str) -> String {
    format!("exec {cmd:?}: executable file not found in $PATH ({path_var})")
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| executable(&m))
}

fn executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.is_file() && m.permissions().mode() & 0o111 != 0
}

/// Installs `fds` as stdin, stdout and stderr. Copies them above the stdio
/// range first, so that any overlap between `fds` and 0..3 is harmless.
pub fn install_stdio(fds: [RawFd; 3]) -> std::result::Result<(), String> {
    use nix::fcntl::{fcntl, FcntlArg};
    let mut high = [0; 3];
    for (i, fd) in fds.iter().enumerate() {
        high[i] = os(
            "duplicate a stdio descriptor",
            fcntl(*fd, FcntlArg::F_DUPFD_CLOEXEC(10)),
        )?;
    }
    for (i, fd) in high.iter().enumerate() {
        os(
            "install a stdio descriptor",
            nix::unistd::dup2(*fd, i as RawFd),
        )?;
        let _ = nix::unistd::close(*fd);
    }
    Ok(())
}

/// Resets what a process inherits from the runtime but must not keep: blocked
/// signals and ignored SIGPIPE (Rust ignores it at start-up).
pub fn reset_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let _ = SigSet::empty().thread_set_mask();
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in [
        Signal::SIGPIPE,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGCHLD,
    ] {
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        let _ = unsafe { sigaction(sig, &dfl) };
    }
}

/// Opens a pseudo-terminal in the container, sends its master to the console
/// socket (runc's protocol: one message carrying the fd, with the pty name as
/// data), and makes the slave the controlling terminal and stdio.
pub fn setup_console(
    socket: RawFd,
    size: Option<(u16, u16)>,
    raw_newlines: bool,
    uid: u32,
) -> std::result::Result<(), String> {
    use nix::fcntl::OFlag;
    let master = os(
        "open /dev/ptmx",
        nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC),
    )?;
    os("grantpt", nix::pty::grantpt(&master))?;
    os("unlockpt", nix::pty::unlockpt(&master))?;
    let name = os("ptsname", nix::pty::ptsname_r(&master))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("open {name}: {e}"))?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize struct that lives across the call.
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    // The terminal belongs to the process's user, as with a login.
    let _ = nix::unistd::fchown(slave.as_raw_fd(), Some(Uid::from_raw(uid)), None);
    if raw_newlines {
        use nix::sys::termios::{tcgetattr, tcsetattr, OutputFlags, SetArg};
        if let Ok(mut t) = tcgetattr(&slave) {
            t.output_flags.remove(OutputFlags::ONLCR);
            let _ = tcsetattr(&slave, SetArg::TCSANOW, &t);
        }
    }
    let fds = [master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    os(
        "send the pty master to the console socket",
        sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::empty(), None),
    )?;
    drop(master);
    os("setsid", nix::unistd::setsid())?;
    // SAFETY: TIOCSCTTY takes an integer argument.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(format!(
            "set controlling terminal: {}",
            std::io::Error::last_os_error()
        ));
    }
    for target in 0..3 {
        os(
            "dup2 the pty to stdio",
            nix::unistd::dup2(slave.as_raw_fd(), target),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn descriptor_ranges_skip_the_kept_ones() {
        use super::fd_ranges_between as r;
        let max = std::os::fd::RawFd::MAX;
        assert_eq!(r(3, &[]), vec![(3, max)]);
        assert_eq!(r(3, &[5, 4, 9, 1, 5]), vec![(3, 3), (6, 8), (10, max)]);
        assert_eq!(r(3, &[3, 4]), vec![(5, max)]);
        assert_eq!(r(3, &[max]), vec![(3, max - 1)]);
    }
    use super::*;

    #[test]
    fn executable_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tool");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path_var = format!("/nonexistent:{}", dir.path().display());
        assert_eq!(find_executable("tool", &path_var), Some(bin));
        assert_eq!(find_executable("nope", &path_var), None);
        assert_eq!(find_executable("./x", ""), Some(PathBuf::from("./x")));
    }

    #[test]
    fn plan_from_process() {
        let p: Process = serde_json::from_str(
            r#"{"args":["sh","-c","true"],"cwd":"/tmp","user":{"uid":1000,"gid":100,"additionalGids":[5]},
                "env":["PATH=/bin","A=b"],"noNewPrivileges":true,
                "capabilities":{"bounding":["CAP_KILL","CAP_NET_BIND_SERVICE"],"effective":["CAP_KILL"]},
                "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":512}]}"#,
        )
        .unwrap();
        let plan = ProcessPlan::new(&p, None).unwrap();
        assert_eq!(plan.path_var, "/bin");
        assert_eq!(plan.uid, 1000);
        assert_eq!(plan.additional_gids, vec![5]);
        assert_eq!(
            plan.rlimits,
            vec![(libc::RLIMIT_NOFILE as libc::c_int, 512, 1024)]
        );
        let caps = plan.caps.unwrap();
        assert_eq!(caps.bounding.unwrap().len(), 2);
        assert!(caps
            .effective
            .unwrap()
            .contains(&caps::Capability::CAP_KILL));
        assert_eq!(caps.permitted, Some(CapsHashSet::new()));
    }

    #[test]
    fn env_keeps_one_entry_per_variable() {
        let env: Vec<String> = ["A=1", "ONE=two", "B=2", "ONE="]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(dedup_env(&env), vec!["A=1", "ONE=", "B=2"]);
    }

    #[test]
    fn cpu_lists_and_masks() {
        assert_eq!(parse_cpu_list("0-3,7").unwrap(), vec![0, 1, 2, 3, 7]);
        assert_eq!(parse_cpu_list("1,0-1").unwrap(), vec![0, 1]);
        assert_eq!(cpu_mask_hex(&[1]), "0x2");
        assert_eq!(cpu_mask_hex(&[0, 1]), "0x3");
        assert_eq!(cpu_mask_hex(&[64]), "0x10000000000000000");
        assert!(parse_cpu_list("3-1").unwrap_err().contains("backwards"));
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("99999").unwrap_err().contains("beyond"));
    }

    #[test]
    fn exec_cpu_affinity_is_parsed_into_the_plan() {
        let p: Process = serde_json::from_str(
            r#"{"args":["true"],"cwd":"/","user":{"uid":0,"gid":0},
                "execCPUAffinity":{"initial":"0","final":"0-1"}}"#,
        )
        .unwrap();
        let plan = ProcessPlan::new(&p, None).unwrap();
        assert_eq!(plan.affinity_initial, Some(vec![0]));
        assert_eq!(plan.affinity_final, Some(vec![0, 1]));
    }

    #[test]
    fn home_from_passwd() {
        let text = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnohome:x:5:5:::/bin/sh\n";
        assert_eq!(home_of(text, 1000).as_deref(), Some("/home/app"));
        assert_eq!(home_of(text, 5), None);
        assert_eq!(home_of(text, 42), None);
        let env = vec![CString::new("HOME=/x").unwrap()];
        assert_eq!(with_home(&env, 0), env);
    }

    #[test]
    fn an_empty_capabilities_object_means_no_capabilities() {
        let p: Process = serde_json::from_str(
            r#"{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0},"capabilities":{}}"#,
        )
        .unwrap();
        let caps = ProcessPlan::new(&p, None).unwrap().caps.unwrap();
        assert_eq!(caps.bounding, Some(CapsHashSet::new()));
        assert_eq!(caps.ambient, Some(CapsHashSet::new()));
    }

    #[test]
    fn soft_above_hard_is_refused() {
        let p: Process = serde_json::from_str(
            r#"{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0},"rlimits":[{"type":"RLIMIT_NOFILE","hard":10,"soft":20}]}"#,
        )
        .unwrap();
        let err = ProcessPlan::new(&p, None).unwrap_err().to_string();
        assert!(err.contains("RLIMIT_NOFILE"), "{err}");
    }
}
