//! Forking a container's processes into their namespaces.
//!
//! A new container without a user or time namespace and without a pid
//! namespace to join (the common case) has its process forked by the runtime
//! itself, straight into a new pid namespace (see [`launch_direct`]).
//! Otherwise the runtime (P) forks an intermediate child (C1) that joins or
//! creates the namespaces and forks the container process (C2), so that C2
//! lands inside a new pid namespace as its pid 1. C1 exits at once; P is a
//! child subreaper and adopts C2. All three talk over a [`Channel`]:
//!
//! ```text
//! P: fork C1                          C1: setns paths (others, user, mount),
//!                                         unshare(user)
//!                          ◀─ MapIds ─ C1 (only with a new user namespace)
//! P: cgroup setup,                     C1: unshare(the rest but pid, cgroup)
//!    write uid/gid maps        ─ Go ─▶ C1: enter the cgroup, timens offsets,
//!                                          clone3 C2 into the unified cgroup
//!                                          (hybrid) with new pid+cgroup ns,
//!                                          or unshare them and fork
//!                          ◀─ Pid ── C1 exits
//! P: pids limit                ─ Go ─▶ C2: (userns: become its root) mounts
//!                 ◀─ MountSource ─ C2 (userns: each bind source)
//! P: open_tree in C2's mnt ns ─ fd ─▶ C2: move_mount
//!                          ◀─ RunCreateRuntimeHooks ─ C2
//! P: createRuntime hooks       ─ Go ─▶ C2: createContainer hooks, pivot_root,
//!                                        process settings
//!                          ◀─ Ready ─ C2: wait for `start`, exec
//! ```
//!
//! Fork safety: P must be single-threaded when it forks ([`ensure_single_threaded`]),
//! so the children may run ordinary Rust code. Callers that have threads (the
//! engine) execute `strato runtime …` instead of calling this module.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::channel::{self, Channel, Msg};
use crate::error::{Error, IoContext, Result};
use crate::hooks::{self, HookKind};
use crate::process::{self, ProcessPlan};
use crate::rootfs::{self, CgroupView, RootfsContext};
use crate::spec::ns_name;
use crate::syscall::{Linux, Syscall};

/// Which namespaces to join by path and which to create.
#[derive(Debug, Clone)]
pub struct NsPlan {
    /// Namespaces to join: the others, then user, then mount last. The
    /// others go before the user namespace while we are still the host's
    /// root: one not owned by that user namespace (a host netns) could not be
    /// joined from inside it.
    pub join: Vec<(CloneFlags, PathBuf)>,
    /// Create a new user namespace (before the others).
    pub new_user: bool,
    /// Other namespaces to create.
    pub new: CloneFlags,
    pub uid_map: String,
    pub gid_map: String,
    /// What to write to the new time namespace's timens_offsets (empty: none).
    pub time_offsets: String,
}

impl Default for NsPlan {
    fn default() -> Self {
        NsPlan {
            join: Vec::new(),
            new_user: false,
            new: CloneFlags::empty(),
            uid_map: String::new(),
            gid_map: String::new(),
            time_offsets: String::new(),
        }
    }
}

fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // CLONE_NEWTIME
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(0x80),
    }
}

fn join_order(f: CloneFlags) -> u8 {
    if f == CloneFlags::CLONE_NEWUSER {
        1
    } else if f == CloneFlags::CLONE_NEWNS {
        2
    } else {
        0
    }
}

fn id_map(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

impl NsPlan {
    /// The namespaces of a new container, from its spec.
    pub fn for_spec(spec: &Spec) -> NsPlan {
        let mut plan = NsPlan::default();
        let linux = spec.linux().as_ref();
        for ns in linux
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
        {
            let flag = clone_flag(ns.typ());
            match ns.path().as_ref().filter(|p| !p.as_os_str().is_empty()) {
                Some(p) => plan.join.push((flag, p.clone())),
                None if flag == CloneFlags::CLONE_NEWUSER => plan.new_user = true,
                None => plan.new |= flag,
            }
        }
        plan.join.sort_by_key(|(f, _)| join_order(*f));
        if let Some(l) = linux {
            plan.uid_map = id_map(l.uid_mappings().as_deref().unwrap_or(&[]));
            plan.gid_map = id_map(l.gid_mappings().as_deref().unwrap_or(&[]));
            // Validated with the spec; nothing to write when absent.
            if let Some(o) = l.time_offsets().as_ref() {
                plan.time_offsets = crate::spec::time_offsets(o).unwrap_or_default();
            }
        }
        plan
    }

    /// Joins the network namespace at `path` instead of what the spec says
    /// (a new one, another path, or none).
    pub fn join_network(&mut self, path: PathBuf) {
        self.new.remove(CloneFlags::CLONE_NEWNET);
        self.join.retain(|(f, _)| *f != CloneFlags::CLONE_NEWNET);
        self.join.push((CloneFlags::CLONE_NEWNET, path));
        self.join.sort_by_key(|(f, _)| join_order(*f));
    }

    /// The namespaces of running process `pid` that differ from ours: what
    /// `exec` joins.
    pub fn for_process(pid: i32) -> NsPlan {
        let mut plan = NsPlan::default();
        for (name, flag) in [
            ("user", CloneFlags::CLONE_NEWUSER),
            ("ipc", CloneFlags::CLONE_NEWIPC),
            ("uts", CloneFlags::CLONE_NEWUTS),
            ("net", CloneFlags::CLONE_NEWNET),
            ("pid", CloneFlags::CLONE_NEWPID),
            ("cgroup", CloneFlags::CLONE_NEWCGROUP),
            ("time", clone_flag(LinuxNamespaceType::Time)),
            ("mnt", CloneFlags::CLONE_NEWNS),
        ] {
            let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
            let ours = fs::read_link(format!("/proc/self/ns/{name}")).ok();
            // A kernel without the namespace type has no link: nothing to join.
            let theirs_link = fs::read_link(&theirs).ok();
            if theirs_link.is_some() && theirs_link != ours {
                plan.join.push((flag, theirs));
            }
        }
        plan
    }

    /// Whether the process gets a mount namespace other than ours (a new
    /// one or a joined one).
    pub fn has_mount_ns(&self) -> bool {
        self.new.contains(CloneFlags::CLONE_NEWNS) || self.joins_mount()
    }

    /// Whether an existing mount namespace is joined.
    pub fn joins_mount(&self) -> bool {
        self.join.iter().any(|(f, _)| *f == CloneFlags::CLONE_NEWNS)
    }

    /// Whether the runtime can fork the container process itself, without
    /// an intermediate process ([`launch`]). Not with a user namespace (the
    /// intermediate creates it and waits for its id maps, or joins the
    /// others from outside it first), a joined pid namespace (`setns` of one
    /// moves only later children) or a time namespace (its offsets are set
    /// before the first process enters it).
    pub fn direct(&self) -> bool {
        let time = clone_flag(LinuxNamespaceType::Time);
        !self.in_userns()
            && !self.new.contains(time)
            && !self
                .join
                .iter()
                .any(|(f, _)| *f == CloneFlags::CLONE_NEWPID || *f == time)
    }

    fn in_userns(&self) -> bool {
        self.new_user
            || self
                .join
                .iter()
                .any(|(f, _)| *f == CloneFlags::CLONE_NEWUSER)
    }
}

/// What C2 becomes.
pub enum Role<'a> {
    /// A new container's init process.
    Init {
        spec: &'a Spec,
        rootfs: &'a Path,
        bundle: &'a Path,
        cgroup: &'a CgroupView,
        /// The container's state directory, to reach `exec.fifo` after
        /// pivot_root; `None` for `run`, which starts at once.
        fifo_dir: Option<OwnedFd>,
    },
    /// A process joining a running container.
    Exec,
}

/// One launch of C1/C2.
pub struct Launch<'a> {
    pub ns: NsPlan,
    pub plan: ProcessPlan,
    pub role: Role<'a>,
    /// A connected console socket, when the process has a terminal.
    pub console: Option<OwnedFd>,
    /// Hybrid hosts: creates the container's directory in the unified
    /// cgroup2 mount (`unified_cgroup`), which the container process is
    /// forked into; called in P before [`Launch::prepare_cgroup`].
    pub create_unified: &'a dyn Fn(),
    /// Creates and configures the container's cgroup (called in P: before
    /// forking when a mount namespace is joined, else while C1 unshares).
    pub prepare_cgroup: &'a dyn Fn() -> Result<()>,
    /// Moves the calling process into the container's cgroup (called in C1,
    /// which C2 then inherits).
    pub enter_cgroup: &'a dyn Fn() -> Result<()>,
    /// Hybrid hosts: the container's cgroup in the controller-less cgroup2
    /// mount, which C2 is forked into (`CLONE_INTO_CGROUP`).
    pub unified_cgroup: Option<&'a Path>,
    /// Called in P once C1 is gone and C2 is the container's only process:
    /// applies the pids limit, which C1 and C2 together could exceed (a
    /// limit of 1).
    pub limit_pids: &'a dyn Fn() -> Result<()>,
    /// State for createRuntime hooks (called in P with C2's pid).
    pub hook_state: &'a dyn Fn(i32) -> serde_json::Value,
}

/// Fails unless this process has exactly one thread (fork safety).
pub fn ensure_single_threaded() -> Result<()> {
    let n = fs::read_dir("/proc/self/task")
        .ctx(|| "read /proc/self/task".to_string())?
        .count();
    if n == 1 {
        Ok(())
    } else {
        Err(Error::Init(format!(
            "the runtime must fork from a single-threaded process, this one has {n} threads: run `strato runtime` as its own process"
        )))
    }
}

/// Makes this process adopt orphaned descendants (C2 after C1 exits).
pub fn become_subreaper() -> Result<()> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(Error::io(
            "prctl(PR_SET_CHILD_SUBREAPER)",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// A launched process: C2's host pid.
#[derive(Debug)]
pub struct Launched {
    pub pid: i32,
}

/// Forks C1 and C2 and drives the protocol until C2 is ready (init) or has
/// executed (exec). On error every forked process is killed and reaped.
pub fn launch(l: Launch) -> Result<Launched> {
    ensure_single_threaded()?;
    let (parent, child) = channel::pair().ctx(|| "create sync socketpair".into())?;
    if matches!(l.role, Role::Init { .. }) && l.ns.direct() {
        return launch_direct(&l, parent, child);
    }
    let early = l.ns.joins_mount();
    if early {
        (l.create_unified)();
        (l.prepare_cgroup)()?;
    }
    // SAFETY: this process is single-threaded (checked above), so the child may
    // run arbitrary code: no lock can be held by a thread that does not exist.
    let c1 = match unsafe { nix::unistd::fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            drop(parent);
            intermediate(&l, &child)
        }
        ForkResult::Parent { child: pid } => pid,
    };
    drop(child);
    let mut c2: Option<Pid> = None;
    let prepare = || {
        (l.create_unified)();
        (l.prepare_cgroup)()
    };
    let result =
        if early { Ok(()) } else { prepare() }.and_then(|()| drive(&l, &parent, c1, &mut c2));
    if result.is_err() {
        for pid in [Some(c1), c2].into_iter().flatten() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
    result.map(|pid| Launched { pid })
}

fn drive(l: &Launch, ch: &Channel, c1: Pid, c2: &mut Option<Pid>) -> Result<i32> {
    let init_err = |e: String| Error::Init(e);
    if l.ns.new_user {
        ch.expect(&Msg::MapIds).map_err(init_err)?;
        write_id_maps(c1.as_raw(), &l.ns)?;
    }
    send_go(ch, "sync with child")?;
    let pid = match ch.recv() {
        Ok(Some(Msg::Pid(p))) => p,
        Ok(Some(Msg::Error(e))) => return Err(Error::Init(e)),
        Ok(other) => return Err(Error::Init(format!("unexpected sync message {other:?}"))),
        Err(e) => return Err(Error::io("sync with child", e)),
    };
    *c2 = Some(Pid::from_raw(pid));
    match waitpid(c1, None) {
        Ok(WaitStatus::Exited(_, 0)) => {}
        Ok(status) => {
            return Err(Error::Init(format!(
                "namespace setup process ended with {status:?}"
            )))
        }
        Err(e) => return Err(Error::io("wait for namespace setup process", e.into())),
    }
    (l.limit_pids)()?;
    send_go(ch, "sync with container process")?;
    serve(l, ch, pid)
}

/// Without an intermediate process ([`NsPlan::direct`]), P forks C2 itself:
///
/// ```text
/// P: create the unified cgroup (hybrid),
///    clone3 C2 into it (new pid ns)    C2: unshare(the rest but cgroup)
/// P: create the other cgroups, limits ─ Go ─▶ C2: enter the cgroups, setns
///                                             paths, unshare(cgroup), …
/// ```
///
/// and the rest goes on as with C1. C2 writes its own `tasks` files (`0`:
/// the calling thread), which spares the global threadgroup lock that a
/// write of a pid takes, and unshares its cgroup namespace once inside the
/// container's cgroups, which become its root.
fn launch_direct(l: &Launch, parent: Channel, child: Channel) -> Result<Launched> {
    (l.create_unified)();
    let unified = l.unified_cgroup.and_then(|p| {
        match nix::fcntl::open(
            p,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            // SAFETY: `open` just returned this descriptor; we own it.
            Ok(fd) => Some(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(e) => {
                tracing::debug!(error = %e, path = %p.display(), "unified cgroup not joined");
                None
            }
        }
    });
    let pidns = l.ns.new & CloneFlags::CLONE_NEWPID;
    let forked = match &unified {
        Some(cg) => fork_into_cgroup(Some(cg), pidns).or_else(|e| {
            tracing::debug!(error = %e, "clone3 into the unified cgroup failed; plain fork");
            fork_into_cgroup(None, pidns)
        }),
        None => fork_into_cgroup(None, pidns),
    };
    let c2 = match forked.ctx(|| "fork container process".into())? {
        ForkResult::Child => {
            drop(parent);
            direct_child(l, &child)
        }
        ForkResult::Parent { child: pid } => pid,
    };
    drop(child);
    drop(unified);
    let result = (l.prepare_cgroup)()
        .and_then(|()| (l.limit_pids)())
        .and_then(|()| send_go(&parent, "sync with container process"))
        .and_then(|()| serve(l, &parent, c2.as_raw()));
    if result.is_err() {
        let _ = nix::sys::signal::kill(c2, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(c2, None);
    }
    result.map(|pid| Launched { pid })
}

/// C2 forked by P: its namespaces and cgroups, then the container process.
fn direct_child(l: &Launch, ch: &Channel) -> ! {
    let cgroups_pending = match direct_setup(l, ch) {
        Ok(pending) => pending,
        Err(e) => die(ch, e, 1),
    };
    container_process(l, ch, false, cgroups_pending)
}

/// Namespaces, and the cgroups unless they wait for the mounts: returns
/// true when the container process still has to enter them
/// ([`enter_cgroups`], called by the rootfs setup before its first cgroup
/// mount). They wait unless a mount namespace is joined (where the host's
/// cgroup paths may not be the same), so the first mounts (the root
/// overlay, /proc, /dev, /sys) overlap with P making the cgroups.
fn direct_setup(l: &Launch, ch: &Channel) -> std::result::Result<bool, String> {
    // Created while P makes the cgroups; the cgroup namespace waits until we
    // are in the container's cgroups, its root.
    let now = l.ns.new - CloneFlags::CLONE_NEWPID - CloneFlags::CLONE_NEWCGROUP;
    if !now.is_empty() {
        nix::sched::unshare(now)
            .map_err(|e| format!("create namespaces {}: {e}", flag_names(now)))?;
    }
    if !l.ns.joins_mount() {
        // Joined now: /sys, mounted before the cgroups, shows the network
        // namespace it is mounted in.
        join_namespaces(l)?;
        return Ok(true);
    }
    enter_cgroups(l, ch, false)?;
    tracing::debug!("container process: namespaces and cgroups set up");
    Ok(false)
}

/// Waits for P's `Go` (the cgroups are made), enters them and makes the
/// cgroup namespace, whose root they become; namespaces to join are joined
/// in between unless `joined`.
fn enter_cgroups(l: &Launch, ch: &Channel, joined: bool) -> std::result::Result<(), String> {
    ch.expect(&Msg::Go)?;
    set_affinity_initial(l)?;
    set_oom_score_adj(l)?;
    (l.enter_cgroup)().map_err(|e| e.to_string())?;
    if !joined {
        join_namespaces(l)?;
    }
    if l.ns.new.contains(CloneFlags::CLONE_NEWCGROUP) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| format!("create namespaces cgroup: {e}"))?;
    }
    Ok(())
}

/// Sends `Go`. A child that failed has exited after reporting: its report,
/// not the broken pipe of our send, is the error.
fn send_go(ch: &Channel, what: &str) -> Result<()> {
    ch.send(&Msg::Go).map_err(|e| match ch.recv() {
        Ok(Some(Msg::Error(msg))) => Error::Init(msg),
        _ => Error::io(what.to_string(), e),
    })
}

/// P's side of the protocol once C2 runs: until it is ready (init) or has
/// executed (exec).
fn serve(l: &Launch, ch: &Channel, pid: i32) -> Result<i32> {
    match l.role {
        Role::Init {
            spec, ref fifo_dir, ..
        } => loop {
            let fifo_waits = fifo_dir.is_some();
            match ch.recv() {
                Ok(Some(Msg::RunCreateRuntimeHooks)) => {
                    let state = (l.hook_state)(pid);
                    hooks::run(spec, HookKind::Prestart, &state)?;
                    hooks::run(spec, HookKind::CreateRuntime, &state)?;
                    send_go(ch, "sync with container process")?;
                }
                Ok(Some(Msg::SeccompFd(fd))) => forward_listener(l, ch, pid, fd)?,
                Ok(Some(Msg::MountSource(recursive, path))) => {
                    match open_tree_in(pid, Path::new(&path), recursive) {
                        Ok(tree) => ch.send_fd(tree.as_fd()),
                        Err(e) => ch.send(&Msg::Error(e)),
                    }
                    .ctx(|| "sync with container process".into())?;
                }
                Ok(Some(Msg::Ready)) if fifo_waits => return Ok(pid),
                // `run`: wait until the process has executed (end-of-file: our
                // close-on-exec socket closed) or failed to.
                Ok(Some(Msg::Ready)) => {
                    return match ch.recv() {
                        Ok(None) => Ok(pid),
                        Ok(Some(Msg::Error(e))) => Err(Error::Exec(e)),
                        Ok(Some(m)) => Err(Error::Init(format!("unexpected sync message {m:?}"))),
                        Err(e) => Err(Error::io("sync with container process", e)),
                    }
                }
                Ok(Some(Msg::Error(e))) => return Err(Error::Init(e)),
                Ok(Some(m)) => return Err(Error::Init(format!("unexpected sync message {m:?}"))),
                Ok(None) => {
                    return Err(Error::Init("container process exited during setup".into()))
                }
                Err(e) => return Err(Error::io("sync with container process", e)),
            }
        },
        Role::Exec => loop {
            match ch.recv() {
                Ok(Some(Msg::SeccompFd(fd))) => forward_listener(l, ch, pid, fd)?,
                Ok(None) => return Ok(pid),
                Ok(Some(Msg::Error(e))) => return Err(Error::Init(e)),
                Ok(Some(m)) => return Err(Error::Init(format!("unexpected sync message {m:?}"))),
                Err(e) => return Err(Error::io("sync with exec process", e)),
            }
        },
    }
}

/// A detached copy (`open_tree(OPEN_TREE_CLONE)`) of the mount tree at
/// `path` as process `pid`'s mount namespace sees it, opened with our
/// credentials: a bind source that the container's user namespace cannot
/// reach, or that lies below mounts the container already made.
///
/// This process visits `pid`'s mount namespace for the call and returns to
/// its own (and its working directory); it is single-threaded (`launch`).
fn open_tree_in(pid: i32, path: &Path, recursive: bool) -> std::result::Result<OwnedFd, String> {
    use std::os::unix::ffi::OsStrExt;
    let open = |p: &str| fs::File::open(p).map_err(|e| format!("open {p}: {e}"));
    let own = open("/proc/self/ns/mnt")?;
    let theirs = open(&format!("/proc/{pid}/ns/mnt"))?;
    let cwd = open(".")?;
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{}: path contains a NUL byte", path.display()))?;
    nix::sched::setns(theirs.as_fd(), CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("join the container's mount namespace: {e}"))?;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | if recursive {
            libc::AT_RECURSIVE as libc::c_uint
        } else {
            0
        };
    // SAFETY: `cpath` is a NUL-terminated string alive for the call.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, cpath.as_ptr(), flags) };
    let err = std::io::Error::last_os_error();
    // Back home before anything else; failing that, this process would go on
    // in the container's mount namespace: stop.
    if let Err(e) = nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWNS) {
        eprintln!("strato: return to the runtime's mount namespace: {e}");
        std::process::abort();
    }
    let _ = nix::unistd::fchdir(cwd.as_raw_fd());
    if fd < 0 {
        return Err(format!("open_tree: {err}"));
    }
    // SAFETY: open_tree returned a new descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Copies the seccomp listener `fd` out of the container process `pid`, lets
/// it go on, and hands the copy to the seccomp agent at `listenerPath` with
/// the container's state (runtime-spec "ContainerProcessState").
fn forward_listener(l: &Launch, ch: &Channel, pid: i32, fd: i32) -> Result<()> {
    let (path, metadata) = l.plan.seccomp_listener.as_ref().ok_or_else(|| {
        Error::Init("container process sent a seccomp listener nobody asked for".into())
    })?;
    let listener = copy_fd_of(pid, fd)?;
    ch.send(&Msg::Go)
        .ctx(|| "sync with container process".into())?;
    let mut state = (l.hook_state)(pid);
    if let Some(obj) = state.as_object_mut() {
        obj.insert("status".into(), "creating".into());
        obj.insert("pid".into(), pid.into());
    }
    let doc = serde_json::json!({
        "ociVersion": oci_spec::runtime::VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata,
        "state": state,
    });
    send_to_agent(path, &doc.to_string(), listener.as_raw_fd())
}

/// `pidfd_getfd(2)`: a copy of descriptor `fd` of process `pid`.
fn copy_fd_of(pid: i32, fd: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; no memory is passed.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(Error::io(
            format!("pidfd_open({pid})"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: pidfd_open returned a new descriptor we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    // SAFETY: integer arguments only.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if copy < 0 {
        return Err(Error::io(
            format!("copy the seccomp listener (fd {fd}) of process {pid} with pidfd_getfd"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: pidfd_getfd returned a new descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(copy as RawFd) })
}

/// Connects to the agent (a path, or `@name` for an abstract socket) and
/// sends `doc` with the listener attached (SCM_RIGHTS).
fn send_to_agent(path: &str, doc: &str, listener: RawFd) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixStream};
    let connect = || -> std::io::Result<UnixStream> {
        match path.strip_prefix('@') {
            Some(name) => UnixStream::connect_addr(&SocketAddr::from_abstract_name(name)?),
            None => UnixStream::connect(path),
        }
    };
    let conn = connect().map_err(|e| {
        Error::Init(format!(
            "failed to connect with seccomp agent specified in the seccomp profile: {path}: {e}: start the agent or fix linux.seccomp.listenerPath"
        ))
    })?;
    let iov = [std::io::IoSlice::new(doc.as_bytes())];
    let fds = [listener];
    sendmsg::<()>(
        conn.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| Error::Init(format!("cannot send seccomp fd to {path}: {e}")))?;
    Ok(())
}

fn write_id_maps(pid: i32, ns: &NsPlan) -> Result<()> {
    let uid = format!("/proc/{pid}/uid_map");
    fs::write(&uid, &ns.uid_map).ctx(|| format!("write {uid} ({:?})", ns.uid_map.trim()))?;
    let gid = format!("/proc/{pid}/gid_map");
    fs::write(&gid, &ns.gid_map).ctx(|| format!("write {gid} ({:?})", ns.gid_map.trim()))
}

/// Ends a child: reports `err` to P (or to stderr when P is gone) and exits.
fn die(ch: &Channel, err: String, code: i32) -> ! {
    if ch.send(&Msg::Error(err.clone())).is_err() {
        eprintln!("strato: {err}");
    }
    // SAFETY: _exit ends the process without running atexit handlers or
    // unwinding, which is what a forked child must do.
    unsafe { libc::_exit(code) }
}

/// C1: namespaces, then fork C2.
fn intermediate(l: &Launch, ch: &Channel) -> ! {
    let (unified, deferred) = match setup_namespaces(l, ch) {
        Ok(u) => u,
        Err(e) => die(ch, e, 1),
    };
    // The pid and cgroup namespaces of C2 are created by the clone3 that
    // forks it into the unified cgroup: a failed clone3 then leaves no pid
    // namespace whose first process died (which refuses every later fork),
    // and the new cgroup namespace is rooted at the cgroup C2 is born in.
    let clone3 = match &unified {
        Some(cg) => fork_into_cgroup(Some(cg), deferred).map_err(|e| {
            tracing::debug!(error = %e, "clone3 into the unified cgroup failed; plain fork");
        }),
        None => Err(()),
    };
    let forked = match clone3 {
        Ok(f) => Ok(f),
        Err(()) => {
            if !deferred.is_empty() {
                if let Err(e) = nix::sched::unshare(deferred) {
                    die(
                        ch,
                        format!("create namespaces {}: {e}", flag_names(deferred)),
                        1,
                    )
                }
            }
            // SAFETY: C1 is a fork of a single-threaded process and is itself single-threaded.
            unsafe { nix::unistd::fork() }
        }
    };
    match forked {
        Ok(ForkResult::Child) => container_process(l, ch, true, false),
        Ok(ForkResult::Parent { child }) => {
            let code = if ch.send(&Msg::Pid(child.as_raw())).is_ok() {
                0
            } else {
                1
            };
            // SAFETY: see `die`.
            unsafe { libc::_exit(code) }
        }
        Err(e) => die(ch, format!("fork container process: {e}"), 1),
    }
}

/// `clone3(CLONE_INTO_CGROUP)`: forks like `fork(2)`, the child born in the
/// cgroup2 directory `cgroup` and in new `namespaces`. Joining that way
/// takes the cgroup core's threadgroup lock only for reading; a
/// `cgroup.procs` write takes it for writing, which waits for an RCU grace
/// period (milliseconds per container). Without `cgroup`, a plain fork
/// into new namespaces (`clone(2)` where the kernel lacks clone3).
fn fork_into_cgroup(cgroup: Option<&OwnedFd>, namespaces: CloneFlags) -> nix::Result<ForkResult> {
    /// `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let into = if cgroup.is_some() {
        CLONE_INTO_CGROUP
    } else {
        0
    };
    let args = CloneArgs {
        flags: into | namespaces.bits() as u64,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.map_or(0, |c| c.as_raw_fd() as u64),
    };
    // SAFETY: without CLONE_VM and with no stack given this is fork(2): the
    // child gets a copy of this single-threaded process and returns here
    // with 0. glibc's fork wrapper is bypassed, so no atfork handlers run
    // (none are registered here) and the thread's cached tid is the
    // parent's; nothing in the child relies on it (Rust's locks do not,
    // glibc's raise and fork ask the kernel).
    let mut r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r == -1 && cgroup.is_none() && nix::errno::Errno::last() == nix::errno::Errno::ENOSYS {
        // SAFETY: as above; with no stack, parent or child tid and tls
        // given, clone(2) is fork(2) into new namespaces (the argument
        // order, which differs between architectures, does not matter).
        r = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (namespaces.bits() | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
    }
    match r {
        -1 => Err(nix::errno::Errno::last()),
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent {
            child: Pid::from_raw(pid as i32),
        }),
    }
}

/// Joins and creates C2's namespaces; returns the unified cgroup to fork C2
/// into (hybrid hosts) and the namespaces left for that fork to create.
fn setup_namespaces(
    l: &Launch,
    ch: &Channel,
) -> std::result::Result<(Option<OwnedFd>, CloneFlags), String> {
    let mut unified = None;
    let mut enter = || -> std::result::Result<(), String> {
        (l.enter_cgroup)().map_err(|e| e.to_string())?;
        // Opened while the host's /sys/fs/cgroup is still in view; C2 is
        // forked into it.
        if let Some(p) = l.unified_cgroup {
            match nix::fcntl::open(
                p,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                // SAFETY: `open` just returned this descriptor; we own it.
                Ok(fd) => unified = Some(unsafe { OwnedFd::from_raw_fd(fd) }),
                Err(e) => {
                    tracing::debug!(error = %e, path = %p.display(), "unified cgroup not joined")
                }
            }
        }
        tracing::debug!("namespace setup: in cgroup");
        Ok(())
    };
    set_affinity_initial(l)?;
    // Joining another mount namespace hides the host's /sys/fs/cgroup: P set
    // the cgroup up before forking, enter it first.
    let early = l.ns.joins_mount();
    if early {
        enter()?;
    }
    set_oom_score_adj(l)?;
    join_namespaces(l)?;
    if l.ns.new_user {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER)
            .map_err(|e| format!("create user namespace: {e}"))?;
        ch.send(&Msg::MapIds).map_err(|e| e.to_string())?;
    }
    // Create the namespaces while P sets up the cgroup; the cgroup namespace
    // waits, since its root is the cgroup we are in when it is created.
    // With a unified cgroup to fork C2 into, its pid and cgroup namespaces
    // come with that fork (see `intermediate`).
    let deferred = if l.unified_cgroup.is_some() {
        l.ns.new & (CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWCGROUP)
    } else {
        CloneFlags::empty()
    };
    let later = (l.ns.new & CloneFlags::CLONE_NEWCGROUP) - deferred;
    let now = l.ns.new - later - deferred;
    if !now.is_empty() {
        nix::sched::unshare(now)
            .map_err(|e| format!("create namespaces {}: {e}", flag_names(now)))?;
    }
    ch.expect(&Msg::Go)?;
    if !early {
        // Still host root here (uid 0 outside any new user namespace), which
        // moving a task between cgroups requires.
        enter()?;
    }
    if !l.ns.time_offsets.is_empty() {
        // The offsets of a new time namespace can be set only until a
        // process enters it: C2, forked next, is the first. Written before
        // becoming root of a new user namespace: that change of credentials
        // makes /proc/self owned by the host's root, out of our reach.
        fs::write("/proc/self/timens_offsets", &l.ns.time_offsets).map_err(|e| {
            format!(
                "set linux.timeOffsets ({:?}): {e}",
                l.ns.time_offsets.trim()
            )
        })?;
    }
    // C1 stays the host's root (C2 becomes root of a user namespace itself):
    // forking into the unified cgroup needs write access to it.
    if !later.is_empty() {
        nix::sched::unshare(later)
            .map_err(|e| format!("create namespaces {}: {e}", flag_names(later)))?;
    }
    tracing::debug!("namespace setup: unshared");
    Ok((unified, deferred))
}

/// Before joining the cgroup, whose cpuset may move us (exec only).
fn set_affinity_initial(l: &Launch) -> std::result::Result<(), String> {
    if let Some(cpus) = &l.plan.affinity_initial {
        process::set_affinity(cpus).map_err(|e| format!("process.execCPUAffinity.initial: {e}"))?;
        // The step is runc's "nsexec"; its log line has this form.
        tracing::debug!(
            "namespace setup (runc's nsexec): affinity: {}",
            process::cpu_mask_hex(cpus)
        );
    }
    Ok(())
}

/// Inherited by C2; written while the host's /proc is still ours.
fn set_oom_score_adj(l: &Launch) -> std::result::Result<(), String> {
    if let Some(adj) = l.plan.oom_score_adj {
        fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| format!("set process.oomScoreAdj {adj}: {e}"))?;
    }
    Ok(())
}

/// Joins the namespaces given by path, in [`NsPlan::join`]'s order.
fn join_namespaces(l: &Launch) -> std::result::Result<(), String> {
    if l.ns.join.is_empty() {
        return Ok(());
    }
    // Open every path first: joining the mount namespace changes what paths mean.
    let mut fds = Vec::new();
    for (flag, path) in &l.ns.join {
        let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| format!("open namespace {}: {e}", path.display()))?;
        // SAFETY: `open` just returned this descriptor; we own it.
        fds.push((*flag, path, unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    // A namespace refused before joining the user namespace (EPERM: one
    // whose own user namespace we lack rights in, as when the runtime is not
    // the host's root) gets a second try from inside it.
    let joins_user = fds.iter().any(|(f, _, _)| *f == CloneFlags::CLONE_NEWUSER);
    let mut retry = Vec::new();
    for (flag, path, fd) in &fds {
        match nix::sched::setns(fd.as_fd(), *flag) {
            Ok(()) => {}
            Err(nix::errno::Errno::EPERM) if joins_user && join_order(*flag) == 0 => {
                retry.push((flag, path, fd));
                continue;
            }
            Err(e) => return Err(format!("join namespace {}: {e}", path.display())),
        }
        if *flag == CloneFlags::CLONE_NEWUSER {
            for (flag, path, fd) in retry.drain(..) {
                nix::sched::setns(fd.as_fd(), *flag)
                    .map_err(|e| format!("join namespace {}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// In a user namespace: become its root (uid and gid 0 must be mapped).
fn become_userns_root() -> std::result::Result<(), String> {
    let root_g = nix::unistd::Gid::from_raw(0);
    let root_u = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_g, root_g, root_g)
        .map_err(|e| format!("become root in the user namespace (gid 0 must be mapped): {e}"))?;
    nix::unistd::setresuid(root_u, root_u, root_u)
        .map_err(|e| format!("become root in the user namespace (uid 0 must be mapped): {e}"))
}

fn flag_names(f: CloneFlags) -> String {
    [
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Time,
    ]
    .into_iter()
    .filter(|t| f.contains(clone_flag(*t)))
    .map(ns_name)
    .collect::<Vec<_>>()
    .join(",")
}

/// C2: becomes the container process; never returns. Forked by C1, it
/// first waits for P's `Go` (`await_go`); forked by P, it may still have to
/// enter its cgroups (`cgroups_pending`, see [`direct_setup`]).
fn container_process(l: &Launch, ch: &Channel, await_go: bool, cgroups_pending: bool) -> ! {
    if l.ns.in_userns() {
        if let Err(e) = become_userns_root() {
            die(ch, e, 1)
        }
    }
    if await_go {
        if let Err(e) = ch.expect(&Msg::Go) {
            die(ch, e, 1)
        }
    }
    process::reset_signals();
    if let Some(fds) = l.plan.stdio {
        if let Err(e) = process::install_stdio(fds) {
            die(ch, e, 1)
        }
    }
    // Nothing the runtime's caller left open reaches the container; what we
    // still need is close-on-exec.
    let mut keep = vec![ch.as_fd().as_raw_fd()];
    keep.extend(l.console.as_ref().map(|c| c.as_raw_fd()));
    if let Role::Init {
        fifo_dir: Some(f), ..
    } = &l.role
    {
        keep.push(f.as_raw_fd());
    }
    process::close_inherited_fds(3 + l.plan.preserve_fds as RawFd, &keep);
    process::set_sync_fd(ch.as_fd().as_raw_fd());
    let res = match &l.role {
        Role::Init {
            spec,
            rootfs,
            bundle,
            cgroup,
            fifo_dir,
        } => init_setup(
            l,
            ch,
            spec,
            rootfs,
            bundle,
            cgroup,
            fifo_dir.as_ref(),
            cgroups_pending,
        ),
        Role::Exec => exec_setup(l),
    };
    let resolved = match res {
        Ok(r) => r,
        Err(e) => die(ch, e, 1),
    };
    let (err, code) = process::exec(&l.plan, resolved);
    die(ch, err, code)
}

/// Returns no resolved command: an exec searches PATH as it executes.
fn exec_setup(l: &Launch) -> std::result::Result<Option<PathBuf>, String> {
    if let Some(root) = &l.plan.root {
        let sys = Linux;
        rootfs::chroot_into(&sys, root).map_err(|e| e.to_string())?;
    }
    if l.plan.terminal {
        let sock = l
            .console
            .as_ref()
            .ok_or("process.terminal is true but no console socket was given")?;
        process::setup_console(
            sock.as_raw_fd(),
            l.plan.console_size,
            l.plan.raw_newlines,
            l.plan.uid,
        )?;
    }
    process::apply(&l.plan, l.ns.in_userns())?;
    if l.plan.seccomp_listener.is_some() {
        process::install_late_seccomp(&l.plan)?;
    }
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
fn init_setup(
    l: &Launch,
    ch: &Channel,
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    cgroup: &CgroupView,
    fifo_dir: Option<&OwnedFd>,
    cgroups_pending: bool,
) -> std::result::Result<Option<PathBuf>, String> {
    let sys = Linux;
    let s = |e: Error| e.to_string();
    // Device nodes and mount points get exactly the modes asked for; the
    // process's own umask is set later.
    // SAFETY: umask only sets the process file mode creation mask.
    unsafe { libc::umask(0) };
    // Our pid as the host sees it: /proc is still the host's here.
    let host_pid: i32 = fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0);
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sys.sethostname(h)
            .map_err(|e| format!("set hostname {h:?}: {e}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sys.setdomainname(d)
            .map_err(|e| format!("set domainname {d:?}: {e}"))?;
    }
    let open_source = |src: &Path, recursive: bool| -> Result<OwnedFd> {
        let what = || format!("bind mount source {}", src.display());
        ch.send(&Msg::MountSource(
            recursive,
            src.to_string_lossy().into_owned(),
        ))
        .map_err(|e| Error::io(what(), e))?;
        ch.recv_fd()
            .map_err(|e| Error::Init(format!("{}: {e}", what())))
    };
    let enter = || enter_cgroups(l, ch, true).map_err(Error::Init);
    let ctx = RootfsContext {
        rootfs,
        bundle,
        spec,
        cgroup,
        userns: l.ns.in_userns(),
        // Only a new user namespace hides what the host's root can open.
        mount_source: l
            .ns
            .new_user
            .then_some(&open_source as &rootfs::OpenMountSource),
        own_mount_ns: l.ns.has_mount_ns(),
        enter_cgroups: cgroups_pending.then_some(&enter as &rootfs::EnterCgroups),
    };
    tracing::debug!("container process: mounting");
    rootfs::prepare(&sys, &ctx).map_err(s)?;
    // P runs prestart and createRuntime hooks, in the runtime namespace;
    // without any, no round trip.
    if [HookKind::Prestart, HookKind::CreateRuntime]
        .into_iter()
        .any(|k| !hooks::hooks_of(spec, k).is_empty())
    {
        ch.send(&Msg::RunCreateRuntimeHooks)
            .map_err(|e| e.to_string())?;
        ch.expect(&Msg::Go)?;
    }
    hooks::run(spec, HookKind::CreateContainer, &(l.hook_state)(host_pid)).map_err(s)?;
    if ctx.own_mount_ns {
        tracing::debug!("container process: pivot_root");
        rootfs::pivot(&sys, rootfs).map_err(s)?;
    } else {
        tracing::debug!("container process: chroot (no mount namespace)");
        rootfs::chroot_into(&sys, rootfs).map_err(s)?;
    }
    // As runc: a missing working directory is made (inside the new root,
    // before it may turn read-only), as Docker's WorkingDir expects.
    sys.mkdir_all(&l.plan.cwd, 0o755)
        .map_err(|e| format!("create process.cwd {}: {e}", l.plan.cwd.display()))?;
    rootfs::finish(&sys, spec).map_err(s)?;
    tracing::debug!("container process: rootfs done");
    if l.plan.terminal {
        let sock = l.console.as_ref().ok_or(
            "process.terminal is true but no console socket was given: pass --console-socket",
        )?;
        process::setup_console(
            sock.as_raw_fd(),
            l.plan.console_size,
            l.plan.raw_newlines,
            l.plan.uid,
        )?;
    }
    process::apply(&l.plan, l.ns.in_userns())?;
    if l.plan.seccomp_listener.is_some() {
        // The agent must get the listener while we still talk to the
        // runtime, which `create` leaves before `start`.
        process::install_late_seccomp(&l.plan)?;
    }
    let resolved = match fifo_dir {
        Some(_) => Some(process::resolve_executable(&l.plan)?),
        None => None,
    };
    ch.send(&Msg::Ready).map_err(|e| e.to_string())?;
    // Held open (close-on-exec) until exec, so `start` sees end-of-file only
    // once startContainer hooks ran and the process executed (or failed to).
    let _started = match fifo_dir {
        Some(dir) => Some(wait_for_start(dir.as_raw_fd())?),
        None => None,
    };
    // Hooks of the container run under its seccomp filter, as runc does.
    process::install_late_seccomp(&l.plan)?;
    hooks::run(spec, HookKind::StartContainer, &(l.hook_state)(host_pid)).map_err(s)?;
    std::mem::forget(_started);
    Ok(resolved)
}

/// Blocks until `start` opens the exec fifo for reading, then tells it we go on.
/// `fifo` is an O_PATH descriptor of the fifo, reopened for writing through
/// /proc/self/fd (the container's /proc: its path is outside the rootfs).
/// Returns the fifo's write end, which `execve` closes.
fn wait_for_start(fifo: RawFd) -> std::result::Result<OwnedFd, String> {
    // As pid 1 of its namespace the waiting process would ignore SIGTERM and
    // friends (no handler): give it one, so `kill` of a created container
    // works. execve resets handled signals to their defaults.
    extern "C" fn on_signal(sig: libc::c_int) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) }
    }
    {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        let act = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        for sig in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGQUIT,
        ] {
            // SAFETY: the handler only calls _exit.
            let _ = unsafe { sigaction(sig, &act) };
        }
    }
    let path = format!("/proc/self/fd/{fifo}");
    let fd = nix::fcntl::open(
        path.as_str(),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open exec fifo through {path} (is /proc mounted?): {e}"))?;
    // SAFETY: `open` just returned this descriptor; we own it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::unistd::write(&fd, b"0").map_err(|e| format!("write exec fifo: {e}"))?;
    Ok(fd)
}

/// Waits for `pid` (a child or adopted descendant) and returns its exit code
/// the shell way: the status, or 128 + signal.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_namespace_by_descriptor_replaces_the_specs() {
        let spec = crate::spec::parse(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[
                {"type":"mount","path":"/proc/1/ns/mnt"},{"type":"network"},{"type":"pid"}]}}"#
                .as_bytes(),
        )
        .unwrap();
        let mut plan = NsPlan::for_spec(&spec);
        assert!(plan.new.contains(CloneFlags::CLONE_NEWNET));
        plan.join_network("/proc/7/fd/9".into());
        assert!(!plan.new.contains(CloneFlags::CLONE_NEWNET));
        assert!(plan.new.contains(CloneFlags::CLONE_NEWPID));
        assert_eq!(
            plan.join,
            vec![
                (CloneFlags::CLONE_NEWNET, PathBuf::from("/proc/7/fd/9")),
                (CloneFlags::CLONE_NEWNS, PathBuf::from("/proc/1/ns/mnt")),
            ]
        );
        plan.join_network("/proc/7/fd/10".into());
        assert_eq!(plan.join.len(), 2);
        assert_eq!(plan.join[0].1, PathBuf::from("/proc/7/fd/10"));
    }

    #[test]
    fn plan_orders_joins_user_after_the_others_mount_last() {
        let spec = crate::spec::parse(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[
                {"type":"mount","path":"/proc/1/ns/mnt"},{"type":"network","path":"/proc/1/ns/net"},
                {"type":"user","path":"/proc/1/ns/user"},{"type":"pid"},{"type":"uts"}]}}"#
                .as_bytes(),
        )
        .unwrap();
        let plan = NsPlan::for_spec(&spec);
        let order: Vec<_> = plan.join.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            order,
            vec![
                CloneFlags::CLONE_NEWNET,
                CloneFlags::CLONE_NEWUSER,
                CloneFlags::CLONE_NEWNS
            ]
        );
        assert_eq!(
            plan.new,
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS
        );
        assert!(!plan.new_user);
    }

    #[test]
    fn only_user_time_and_joined_pid_namespaces_need_the_intermediate() {
        let plan = |ns: &str| {
            NsPlan::for_spec(
                &crate::spec::parse(
                    format!(r#"{{"ociVersion":"1.0.2","linux":{{"namespaces":[{ns}]}}}}"#)
                        .as_bytes(),
                )
                .unwrap(),
            )
        };
        let common = r#"{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"}"#;
        assert!(plan(common).direct());
        assert!(plan(r#"{"type":"network","path":"/proc/1/ns/net"},{"type":"pid"}"#).direct());
        assert!(plan("").direct());
        assert!(!plan(&format!(r#"{common},{{"type":"user"}}"#)).direct());
        assert!(!plan(r#"{"type":"user","path":"/proc/1/ns/user"}"#).direct());
        assert!(!plan(r#"{"type":"pid","path":"/proc/1/ns/pid"}"#).direct());
        assert!(!plan(&format!(r#"{common},{{"type":"time"}}"#)).direct());
        assert!(!plan(r#"{"type":"time","path":"/proc/1/ns/time"}"#).direct());
    }

    #[test]
    fn id_maps_render_as_proc_expects() {
        let spec = crate::spec::parse(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"user"}],
              "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
              "gidMappings":[{"containerID":0,"hostID":100000,"size":65536}]}}"#
                .as_bytes(),
        )
        .unwrap();
        let plan = NsPlan::for_spec(&spec);
        assert!(plan.new_user);
        assert_eq!(plan.uid_map, "0 100000 65536\n");
    }

    #[test]
    fn joining_own_namespaces_is_a_no_op() {
        let plan = NsPlan::for_process(std::process::id() as i32);
        assert!(plan.join.is_empty(), "{:?}", plan.join);
    }
}
