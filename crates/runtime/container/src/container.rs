//! The lifecycle operations behind the runc-compatible verbs.

use std::fs;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode as Mode_;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources, Process, Spec};
use strato_cgroups::{Hierarchy, Manager};

use crate::error::{Error, IoContext, Result};
use crate::hooks::{self, HookKind};
use crate::launch::{self, Launch, NsPlan, Role};
use crate::process::ProcessPlan;
use crate::rootfs::CgroupView;
use crate::state::{self, State, Status, Store, EXEC_FIFO, STATE_FILE};

/// The default directory of container state.
pub const DEFAULT_ROOT: &str = "/run/strato/runtime";
const PAUSED_MARK: &str = "paused";

/// Options of `create` and `run`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// A connected socket to send a terminal's pty master over (instead of
    /// `console_socket`); borrowed, it must stay open during the call.
    pub console_fd: Option<RawFd>,
    pub preserve_fds: u32,
    /// The process's stdin, stdout and stderr (borrowed); `None` inherits ours.
    pub stdio: Option<[RawFd; 3]>,
    /// A network namespace to join, open (borrowed, it must stay open
    /// during the call), in place of the spec's: how a supervisor that
    /// holds a container's namespace by descriptor (no bind mount) starts
    /// it.
    pub netns_fd: Option<RawFd>,
    /// Takes the container's v1 cgroup directories from the spares made
    /// ahead ([`Runtime::make_cgroup_spares`]) where there are some.
    pub cgroup_spares: bool,
}

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// A complete process.json; when set, the fields below are ignored.
    pub process: Option<Process>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub user: Option<(u32, u32)>,
    pub additional_gids: Vec<u32>,
    pub tty: bool,
    pub no_new_privs: bool,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: u32,
    /// A connected socket to send a terminal's pty master over (borrowed).
    pub console_fd: Option<RawFd>,
    /// The process's stdin, stdout and stderr (borrowed); `None` inherits ours.
    pub stdio: Option<[RawFd; 3]>,
    /// `--cgroup`: sub-cgroups of the container's cgroup to run in, per
    /// controller (an empty list: every controller). Relative, no `..`.
    pub sub_cgroups: Vec<(Vec<String>, PathBuf)>,
}

/// Runs containers whose state lives under one root directory.
#[derive(Debug, Clone)]
pub struct Runtime {
    store: Store,
}

/// Undoes a half-done create unless disarmed.
struct Cleanup<'a> {
    store: &'a Store,
    id: &'a str,
    cgroup: Option<Manager>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(Signal::SIGKILL);
            if let Err(e) = cg.destroy() {
                tracing::warn!(error = %e, "cleanup: remove cgroup");
            }
        }
        if let Err(e) = self.store.remove(self.id) {
            tracing::warn!(error = %e, "cleanup: remove state");
        }
    }
}

fn cgroup_manager(path: &Path) -> Result<Manager> {
    let hierarchy = host_hierarchy()?;
    Manager::new(&hierarchy, path).map_err(|e| Error::Cgroup(e.to_string()))
}

/// The host's cgroup layout, detected once per process: it changes only
/// with a reboot, and detecting it reads all of /proc/self/mountinfo, which
/// grows by two lines per running container (its root and its network
/// namespace), so reading it per container operation made starting n
/// containers O(n²) in the supervisor.
fn host_hierarchy() -> Result<Hierarchy> {
    static HOST: std::sync::OnceLock<Hierarchy> = std::sync::OnceLock::new();
    if let Some(h) = HOST.get() {
        return Ok(h.clone());
    }
    let h = strato_cgroups::detect(Path::new("/sys/fs/cgroup"))
        .map_err(|e| Error::Cgroup(e.to_string()))?;
    Ok(HOST.get_or_init(|| h).clone())
}

fn cgroup_view(cg: &Manager) -> CgroupView {
    match cg.version() {
        strato_cgroups::Version::V2 => CgroupView::V2,
        strato_cgroups::Version::V1 => CgroupView::V1(
            cg.paths()
                .iter()
                .filter(|d| !d.unified)
                .filter_map(|d| {
                    let name = d.mount_point.file_name()?.to_str()?.to_string();
                    Some((name, d.path.clone()))
                })
                .collect(),
        ),
    }
}

/// Refuses a pre-existing cgroup that is not free for a new container: one
/// with processes (another container's: taking it over would mix the two and
/// `delete` would kill both) or a frozen one (the new process would stop at
/// once and `create` hang).
fn check_cgroup_unused(cg: &Manager) -> Result<()> {
    let path = cg.cgroups_path().display();
    if let Ok(pids) = cg.pids() {
        if !pids.is_empty() {
            return Err(Error::Cgroup(format!(
                "container's cgroup is not empty: {} process(es) found in {path}: choose another linux.cgroupsPath",
                pids.len()
            )));
        }
    }
    if cg.is_frozen().map_err(|e| Error::Cgroup(e.to_string()))? {
        return Err(Error::Cgroup(format!(
            "container's cgroup unexpectedly frozen: {path} is frozen: thaw it or choose another linux.cgroupsPath"
        )));
    }
    Ok(())
}

fn cgroups_path_of(spec: &Spec, id: &str) -> PathBuf {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(format!("/strato/{id}")))
}

/// The spec's resources with the device rules every container needs appended
/// (after the spec's own, so they can't be denied away): the default device
/// nodes, ptys, tun and mknod of anything. Nodes of `linux.devices` are
/// created but get no access unless `linux.resources.devices` grants it.
pub fn effective_resources(spec: &Spec) -> LinuxResources {
    let linux = spec.linux().as_ref();
    let mut res = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut rules = res.devices().clone().unwrap_or_default();
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    rules.push(rule(LinuxDeviceType::C, None, None, "m"));
    rules.push(rule(LinuxDeviceType::B, None, None, "m"));
    for d in crate::rootfs::default_devices() {
        rules.push(rule(
            LinuxDeviceType::C,
            Some(d.major()),
            Some(d.minor()),
            "rwm",
        ));
    }
    rules.push(rule(LinuxDeviceType::C, Some(136), None, "rwm")); // /dev/pts/*
    rules.push(rule(LinuxDeviceType::C, Some(5), Some(2), "rwm")); // /dev/ptmx
    rules.push(rule(LinuxDeviceType::C, Some(10), Some(200), "rwm")); // /dev/net/tun
    res.set_devices(Some(rules));
    res
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("strato-tmp");
    fs::write(&tmp, pid.to_string()).ctx(|| format!("write pid file {}", tmp.display()))?;
    fs::rename(&tmp, path).ctx(|| format!("write pid file {}", path.display()))
}

/// The `personality(2)` persona of `linux.personality`.
fn personality_of(spec: &Spec) -> Option<libc::c_ulong> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    let p = spec.linux().as_ref()?.personality().as_ref()?;
    Some(match p.domain() {
        D::PerLinux => 0x0000,
        D::PerLinux32 => 0x0008,
    })
}

fn not_running(id: &str) -> Error {
    Error::State {
        id: id.to_string(),
        status: "stopped".into(),
        msg: "container not running".into(),
    }
}

/// Whether the spec asks for a new pid namespace of its own.
/// Whether the container has a mount namespace (new or joined); without
/// one its mounts live in the host's namespace beneath its rootfs.
fn has_mount_ns(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Mount)
        })
}

fn has_own_pidns(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid
                    && n.path().as_ref().is_none_or(|p| p.as_os_str().is_empty())
            })
        })
}

/// The console for a process with a terminal: the caller's socket, or (for a
/// foreground process) a socketpair whose other end we keep to relay the pty.
fn console_for(
    terminal: bool,
    socket: Option<&Path>,
    socket_fd: Option<RawFd>,
    foreground: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    if !terminal {
        if socket.is_some() || socket_fd.is_some() {
            return Err(Error::Usage(
                "--console-socket was given but process.terminal is false: set terminal to true or drop the flag".into(),
            ));
        }
        return Ok((None, None));
    }
    if let Some(fd) = socket_fd {
        let dup = nix::unistd::dup(fd).ctx(|| "duplicate the console socket".into())?;
        // SAFETY: `dup` just returned this descriptor; we own it.
        return Ok((Some(unsafe { OwnedFd::from_raw_fd(dup) }), None));
    }
    if let Some(path) = socket {
        let s = UnixStream::connect(path)
            .ctx(|| format!("connect to console socket {}", path.display()))?;
        return Ok((Some(OwnedFd::from(s)), None));
    }
    if !foreground {
        return Err(Error::Usage(
            "process.terminal is true: pass --console-socket, or set terminal to false".into(),
        ));
    }
    let (a, b) = UnixStream::pair().ctx(|| "create console socketpair".into())?;
    Ok((Some(OwnedFd::from(b)), Some(OwnedFd::from(a))))
}

/// How a container is brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `create`: park on the exec fifo until `start`.
    Create,
    /// `run -d`: start at once and return.
    RunDetached,
    /// `run`: start at once and wait.
    RunForeground,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime {
            store: Store::new(root),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Detects the host's cgroup layout now, for a long-lived caller that
    /// forks container starts (the engine's supervisor): the forks inherit
    /// it instead of each reading all of /proc/self/mountinfo, which grows
    /// with every running container. An error is left for the first
    /// operation that needs the layout to report.
    ///
    /// Docker's default seccomp profile (the engine's default
    /// capabilities) is compiled now too, for the forks' starts whose
    /// profile is that one.
    pub fn warm_host_caches(&self) {
        if let Err(e) = host_hierarchy() {
            tracing::debug!(error = %e, "cgroup layout not detected yet");
        }
        if let Err(e) = strato_seccomp::prime(strato_seccomp::default_profile()) {
            tracing::debug!(error = %e, "default seccomp profile not compiled ahead");
        }
    }

    /// `create`: sets the container up and leaves it waiting for `start`.
    pub fn create(&self, opts: &CreateOptions) -> Result<State> {
        self.create_inner(opts, Mode::Create).map(|(s, _)| s)
    }

    /// `run`: create and start; with `detach`, returns once the process runs,
    /// else waits and returns its exit code (the container is deleted).
    pub fn run(&self, opts: &CreateOptions, detach: bool) -> Result<i32> {
        let mode = if detach {
            Mode::RunDetached
        } else {
            crate::foreground::block_signals()?;
            Mode::RunForeground
        };
        let (state, master) = self.create_inner(opts, mode)?;
        self.poststart_or_undo(&state)?;
        if detach {
            return Ok(0);
        }
        let code = crate::foreground::wait(state.pid, master);
        tracing::debug!(?code, "container process exited");
        // The state in hand, not re-read and parsed again from disk (unless
        // someone else deleted the container meanwhile).
        let cleanup = if self.store.dir(&state.id).join(STATE_FILE).exists() {
            self.delete_loaded(&state, self.load_status(&state), true)
        } else {
            Err(Error::NotFound(state.id.clone()))
        };
        tracing::debug!("container deleted");
        let code = code?;
        cleanup?;
        Ok(code)
    }

    /// `run -d` for callers that supervise the process themselves: creates and
    /// starts the container and returns its state (the caller must be a child
    /// subreaper to reap it; this function makes it one).
    pub fn run_detached(&self, opts: &CreateOptions) -> Result<State> {
        let (state, _) = self.create_inner(opts, Mode::RunDetached)?;
        self.poststart_or_undo(&state)?;
        Ok(state)
    }

    /// Runs poststart hooks. A failing one ends the container, as in runc:
    /// its processes are killed (it is left stopped, for `delete`).
    fn poststart(&self, state: &State) -> Result<()> {
        // Without hooks, no state to give them (it reads /proc).
        if hooks::hooks_of(&state.spec, HookKind::Poststart).is_empty() {
            return Ok(());
        }
        let status = self.store.status(state);
        let result = hooks::run(&state.spec, HookKind::Poststart, &state.oci_state(status));
        if result.is_err() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(state.pid), Signal::SIGKILL);
            if let Ok(cg) = cgroup_manager(&state.cgroups_path) {
                let _ = cg.kill_all(Signal::SIGKILL);
            }
            // `run` adopted the process: reap it, or it lingers as a zombie
            // that still looks alive. (`start` is not its parent: ECHILD.)
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(state.pid), None);
        }
        result
    }

    /// `run`: a failing poststart hook ends the container and `run` removes
    /// it: nothing of a failed run is left.
    fn poststart_or_undo(&self, state: &State) -> Result<()> {
        if let Err(e) = self.poststart(state) {
            if let Err(d) = self.delete(&state.id, true) {
                tracing::warn!(error = %d, "delete after a failed poststart hook");
            }
            return Err(e);
        }
        Ok(())
    }

    fn create_inner(&self, opts: &CreateOptions, mode: Mode) -> Result<(State, Option<OwnedFd>)> {
        crate::spec::validate_id(&opts.id)?;
        let bundle = crate::spec::load(&opts.bundle)?;
        let spec = &bundle.spec;
        let config = bundle.dir.join("config.json");
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::config(&config, "process is missing"))?;
        let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        let mut plan = ProcessPlan::new(process, seccomp)
            .map_err(|e| Error::config(&config, e.to_string()))?;
        plan.preserve_fds = opts.preserve_fds;
        plan.stdio = opts.stdio;
        plan.personality = personality_of(spec);
        plan.memory_policy = bundle.memory_policy.clone();
        plan.cpus_restricted = cpus_restricted(spec);
        // execCPUAffinity is for exec'd processes, not the container's init.
        plan.affinity_initial = None;
        plan.affinity_final = None;
        let (console, master) = console_for(
            plan.terminal,
            opts.console_socket.as_deref(),
            opts.console_fd,
            mode == Mode::RunForeground,
        )?;
        plan.raw_newlines = master.is_some();

        tracing::debug!(id = %opts.id, "bundle loaded");
        let dir = self.store.claim(&opts.id)?;
        let mut cleanup = Cleanup {
            store: &self.store,
            id: &opts.id,
            cgroup: None,
            armed: true,
        };
        let cg = cgroup_manager(&cgroups_path_of(spec, &opts.id))?.with_spares(opts.cgroup_spares);
        // Checked before `cleanup` owns the cgroup: undoing a failed create
        // kills the cgroup's processes and removes it, which must never hit
        // a cgroup that is someone else's.
        check_cgroup_unused(&cg)?;
        // Undone by `cleanup` from here on, even if creating it fails half-way.
        cleanup.cgroup = Some(cg.clone());
        let mut resources = effective_resources(spec);
        // The pids limit waits until the container's process is alone in the
        // cgroup (`limit_pids`): the launch briefly has two there.
        let pids_only = (*resources.pids()).map(|p| {
            let mut r = LinuxResources::default();
            r.set_pids(Some(p));
            r
        });
        resources.set_pids(None);
        let limit_pids = || match &pids_only {
            Some(r) => cg.apply(r).map_err(|e| Error::Cgroup(e.to_string())),
            None => Ok(()),
        };
        let create_unified = || cg.create_unified();
        let prepare = || {
            cg.create_hierarchies()
                .map_err(|e| Error::Cgroup(e.to_string()))?;
            cg.apply(&resources)
                .map_err(|e| Error::Cgroup(e.to_string()))?;
            tracing::debug!(cgroup = %cg.cgroups_path().display(), "cgroup ready");
            Ok(())
        };
        let view = cgroup_view(&cg);

        let fifo_dir = if mode == Mode::Create {
            let fifo = dir.join(EXEC_FIFO);
            nix::unistd::mkfifo(&fifo, Mode_::from_bits_truncate(0o622))
                .ctx(|| format!("create {}", fifo.display()))?;
            // mkfifo honours the umask; the container user must be able to open it.
            nix::sys::stat::fchmodat(
                None,
                &fifo,
                Mode_::from_bits_truncate(0o622),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .ctx(|| format!("chmod {}", fifo.display()))?;
            // The fifo itself, reopened for writing through /proc/self/fd
            // once the container waits for `start` (its path is outside).
            let fd = nix::fcntl::open(&fifo, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode_::empty())
                .ctx(|| format!("open {}", fifo.display()))?;
            // SAFETY: `open` just returned this descriptor; we own it.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        } else {
            None
        };

        // The state is built once the process runs, from the bundle's own
        // spec (a copy of the spec is about 700 allocations, made and freed
        // again at every start); the hooks get their document from parts.
        let created = state::now_rfc3339();
        let hook_state = |pid: i32| {
            state::oci_state_of(
                spec,
                &opts.id,
                pid,
                &bundle.dir,
                &bundle.rootfs,
                &created,
                Status::Creating,
            )
        };
        let enter = || cg.enter().map_err(|e| Error::Cgroup(e.to_string()));
        launch::become_subreaper()?;
        let mut ns = NsPlan::for_spec(spec);
        if let Some(fd) = opts.netns_fd {
            // Opened by the container's process through ours, which holds
            // the descriptor until that process runs.
            ns.join_network(PathBuf::from(format!(
                "/proc/{}/fd/{fd}",
                std::process::id()
            )));
        }
        let launched = launch::launch(Launch {
            ns,
            plan,
            role: Role::Init {
                spec,
                rootfs: &bundle.rootfs,
                bundle: &bundle.dir,
                cgroup: &view,
                fifo_dir,
            },
            console,
            create_unified: &create_unified,
            prepare_cgroup: &prepare,
            enter_cgroup: &enter,
            unified_cgroup: cg.unified_path(),
            limit_pids: &limit_pids,
            hook_state: &hook_state,
        })?;
        tracing::debug!(pid = launched.pid, "container process ready");
        let st = State {
            id: opts.id.clone(),
            pid: launched.pid,
            pid_start: state::process_start_time(launched.pid).unwrap_or(0),
            bundle: bundle.dir,
            rootfs: bundle.rootfs,
            created,
            cgroups_path: cg.cgroups_path().to_path_buf(),
            spec: bundle.spec,
            memory_policy: bundle.memory_policy,
        };
        self.store.save(&st)?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, st.pid)?;
        }
        let master = match master {
            Some(sock) => Some(crate::foreground::receive_master(&sock)?),
            None => None,
        };
        cleanup.armed = false;
        Ok((st, master))
    }

    /// Loads a container's state and its current status.
    pub fn load(&self, id: &str) -> Result<(State, Status)> {
        let st = self.store.load(id)?;
        let status = self.load_status(&st);
        Ok((st, status))
    }

    /// The current status of a loaded container.
    fn load_status(&self, st: &State) -> Status {
        let status = self.store.status(st);
        if status == Status::Running && self.store.dir(&st.id).join(PAUSED_MARK).exists() {
            return Status::Paused;
        }
        status
    }

    /// How many spare cgroup directories [`Runtime::make_cgroup_spares`]
    /// keeps beside a cgroup (per hierarchy).
    pub const CGROUP_SPARES: usize = strato_cgroups::SPARES;

    /// Makes the spare cgroup directories that creates with
    /// [`CreateOptions::cgroup_spares`] take, beside the container
    /// cgroup `cgroups_path` (a supervisor's idle work; see
    /// [`Manager::make_spares`]). Returns how many were made.
    pub fn make_cgroup_spares(&self, cgroups_path: &Path) -> usize {
        cgroup_manager(cgroups_path).map_or(0, |cg| cg.make_spares())
    }

    /// `start`: lets a created container run its process.
    pub fn start(&self, id: &str) -> Result<()> {
        let (st, status) = self.load(id)?;
        if status != Status::Created {
            return Err(Error::State {
                id: id.to_string(),
                status: status.to_string(),
                msg: "only a created container can be started".into(),
            });
        }
        let fifo = self.store.dir(id).join(EXEC_FIFO);
        let fd = nix::fcntl::open(
            &fifo,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode_::empty(),
        )
        .ctx(|| format!("open {}", fifo.display()))?;
        // SAFETY: `open` just returned this descriptor; we own it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // The process writes one byte once it may go on, and its end of the
        // fifo closes when it executes: read up to end-of-file, so poststart
        // hooks run only after startContainer hooks and the exec (and, as
        // with runc, a started container runs its own command).
        let mut buf = [0u8; 16];
        let mut got_byte = false;
        loop {
            let mut pfd = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&fd),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(100u16));
            match nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut buf) {
                Ok(0) if got_byte => break,
                Ok(0) => {}
                // Progress: no need to look at the process (its /proc
                // entry is slow to read while it executes).
                Ok(_) => {
                    got_byte = true;
                    continue;
                }
                Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(Error::io(format!("read {}", fifo.display()), e.into())),
            }
            if !st.init_alive() {
                if got_byte {
                    break;
                }
                return Err(Error::State {
                    id: id.to_string(),
                    status: "stopped".into(),
                    msg: "the container process exited before it was started".into(),
                });
            }
        }
        fs::remove_file(&fifo).ctx(|| format!("remove {}", fifo.display()))?;
        self.poststart(&st)
    }

    /// `state`: the OCI state document.
    pub fn state(&self, id: &str) -> Result<serde_json::Value> {
        let (st, status) = self.load(id)?;
        Ok(st.oci_state(status))
    }

    /// Every container with its status.
    pub fn list(&self) -> Result<Vec<(State, Status)>> {
        let mut out = Vec::new();
        for id in self.store.ids()? {
            match self.load(&id) {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!(id, error = %e, "skipping unreadable container"),
            }
        }
        Ok(out)
    }

    /// `kill`: signals the container process, or every process with `all`.
    /// A container sharing the host's pid namespace has no init whose death
    /// ends the rest: every process of its cgroup gets the signal.
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<()> {
        self.kill_signal(id, Some(signal), all)
    }

    /// [`Runtime::kill`] where `None` is signal 0: only checks that there is
    /// a process to signal.
    pub fn kill_signal(&self, id: &str, signal: Option<Signal>, all: bool) -> Result<()> {
        let (st, status) = self.load(id)?;
        let own_pidns = has_own_pidns(&st.spec);
        if all || !own_pidns {
            let cg = cgroup_manager(&st.cgroups_path)?;
            if status == Status::Stopped && cg.pids().map(|p| p.is_empty()).unwrap_or(true) {
                if all {
                    return Ok(());
                }
                return Err(not_running(id));
            }
            return match signal {
                Some(sig) => cg.kill_all(sig).map_err(|e| Error::Cgroup(e.to_string())),
                None => Ok(()),
            };
        }
        if status == Status::Stopped {
            return Err(not_running(id));
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(st.pid), signal)
            .ctx(|| format!("signal container {id:?} (pid {})", st.pid))
    }

    /// `delete`: removes a stopped (or, with `force`, any) container.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let (st, status) = self.load(id)?;
        self.delete_loaded(&st, status, force)
    }

    fn delete_loaded(&self, st: &State, status: Status, force: bool) -> Result<()> {
        let id = st.id.as_str();
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(Error::State {
                id: id.to_string(),
                status: status.to_string(),
                msg: "stop it first, or delete with --force".into(),
            });
        }
        let cg = cgroup_manager(&st.cgroups_path)?;
        if status != Status::Stopped {
            if status == Status::Paused {
                let _ = cg.freeze(false);
            }
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(st.pid), Signal::SIGKILL);
        }
        // When its init has died, a private pid namespace is empty (the kernel
        // kills the rest first). Otherwise processes can outlive the init:
        // kill them too.
        let own_pidns = has_own_pidns(&st.spec);
        if !(status == Status::Stopped && own_pidns) {
            if cg.pids().map(|p| !p.is_empty()).unwrap_or(true) {
                let _ = cg.kill_all(Signal::SIGKILL);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while st.init_alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        tracing::debug!("container processes gone");
        if !has_mount_ns(&st.spec) {
            // Its mounts are in the host's namespace, beneath the rootfs
            // bind: they go with it (runc leaves them behind).
            match nix::mount::umount2(&st.rootfs, nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
                Err(e) => {
                    tracing::warn!(rootfs = %st.rootfs.display(), error = %e, "unmount the rootfs")
                }
            }
        }
        cg.destroy().map_err(|e| Error::Cgroup(e.to_string()))?;
        tracing::debug!("cgroup removed");
        let stopped = st.oci_state(Status::Stopped);
        self.store.remove(id)?;
        if let Err(e) = hooks::run(&st.spec, HookKind::Poststop, &stopped) {
            tracing::warn!(error = %e, "poststop hook failed");
            eprintln!("strato: warning: {e}");
        }
        Ok(())
    }

    /// `ps`: the host pids of every process in the container's cgroup.
    pub fn ps(&self, id: &str) -> Result<Vec<i32>> {
        let (st, _) = self.load(id)?;
        cgroup_manager(&st.cgroups_path)?
            .pids()
            .map_err(|e| Error::Cgroup(e.to_string()))
    }

    /// `events --stats`: one statistics sample.
    pub fn stats(&self, id: &str) -> Result<serde_json::Value> {
        let (st, _) = self.load(id)?;
        let stats = cgroup_manager(&st.cgroups_path)?
            .stats()
            .map_err(|e| Error::Cgroup(e.to_string()))?;
        Ok(serde_json::json!({"type": "stats", "id": id, "data": stats}))
    }

    /// Whether the kernel's OOM killer killed a process of the container
    /// (its memory cgroup counts an `oom_kill`).
    pub fn oom_killed(&self, id: &str) -> Result<bool> {
        let (st, _) = self.load(id)?;
        let cg = cgroup_manager(&st.cgroups_path)?;
        let Some(dir) = cg.path("memory") else {
            return Ok(false);
        };
        let file = match cg.version() {
            strato_cgroups::Version::V1 => "memory.oom_control",
            strato_cgroups::Version::V2 => "memory.events",
        };
        let text = fs::read_to_string(dir.join(file)).unwrap_or_default();
        Ok(text
            .lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .any(|n| n.trim().parse::<u64>().unwrap_or(0) > 0))
    }

    /// `pause` / `resume`: freezes or thaws every process of the container.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<()> {
        let (st, status) = self.load(id)?;
        let want = if paused {
            Status::Running
        } else {
            Status::Paused
        };
        if status != want {
            return Err(Error::State {
                id: id.to_string(),
                status: status.to_string(),
                msg: format!(
                    "only a {want} container can be {}",
                    if paused { "paused" } else { "resumed" }
                ),
            });
        }
        cgroup_manager(&st.cgroups_path)?
            .freeze(paused)
            .map_err(|e| Error::Cgroup(e.to_string()))?;
        let mark = self.store.dir(id).join(PAUSED_MARK);
        if paused {
            fs::write(&mark, b"").ctx(|| format!("write {}", mark.display()))
        } else {
            fs::remove_file(&mark).ctx(|| format!("remove {}", mark.display()))
        }
    }

    /// `exec`: runs another process in a running container. Returns its exit
    /// code, or 0 at once with `detach`.
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32> {
        self.exec_inner(id, opts).map(|(_, code)| code)
    }

    /// `exec -d` returning the process's host pid (the caller, a child
    /// subreaper after this call, reaps it).
    pub fn exec_detached(&self, id: &str, opts: &ExecOptions) -> Result<i32> {
        let mut opts = opts.clone();
        opts.detach = true;
        self.exec_inner(id, &opts).map(|(pid, _)| pid)
    }

    fn exec_inner(&self, id: &str, opts: &ExecOptions) -> Result<(i32, i32)> {
        let (st, status) = self.load(id)?;
        if !matches!(status, Status::Running | Status::Created) {
            let msg = if status == Status::Paused {
                "cannot exec in a paused container: resume it first"
            } else {
                "exec needs a running container"
            };
            return Err(Error::State {
                id: id.to_string(),
                status: status.to_string(),
                msg: msg.into(),
            });
        }
        let process = match &opts.process {
            Some(p) => p.clone(),
            None => exec_process(st.spec.process().clone(), opts)?,
        };
        let seccomp = st.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        let mut plan = ProcessPlan::new(&process, seccomp)?;
        plan.preserve_fds = opts.preserve_fds;
        plan.stdio = opts.stdio;
        plan.personality = personality_of(&st.spec);
        plan.memory_policy = st.memory_policy.clone();
        plan.cpus_restricted = cpus_restricted(&st.spec);
        if !has_mount_ns(&st.spec) {
            plan.root = Some(PathBuf::from(format!("/proc/{}/root", st.pid)));
        }
        if !opts.detach {
            crate::foreground::block_signals()?;
        }
        let (console, master) = console_for(
            plan.terminal,
            opts.console_socket.as_deref(),
            opts.console_fd,
            !opts.detach,
        )?;
        plan.raw_newlines = master.is_some();
        let cg = cgroup_manager(&st.cgroups_path)?;
        cg.check_sub_cgroups(&opts.sub_cgroups)
            .map_err(|e| Error::Cgroup(e.to_string()))?;
        let enter = || {
            cg.enter_sub(&opts.sub_cgroups)
                .map_err(|e| Error::Cgroup(format!("error adding pid to the cgroup: {e}")))
        };
        // What a seccomp agent is told about the exec'd process.
        let hook_state = |pid: i32| {
            let mut s = st.oci_state(Status::Running);
            s["pid"] = pid.into();
            s
        };
        launch::become_subreaper()?;
        let launched = launch::launch(Launch {
            ns: NsPlan::for_process(st.pid),
            plan,
            role: Role::Exec,
            console,
            create_unified: &|| {},
            prepare_cgroup: &|| Ok(()),
            enter_cgroup: &enter,
            unified_cgroup: cg.unified_path(),
            limit_pids: &|| Ok(()),
            hook_state: &hook_state,
        })?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, launched.pid)?;
        }
        if opts.detach {
            return Ok((launched.pid, 0));
        }
        let master = match master {
            Some(sock) => Some(crate::foreground::receive_master(&sock)?),
            None => None,
        };
        crate::foreground::wait(launched.pid, master).map(|code| (launched.pid, code))
    }
}

/// The process of an `exec` without process.json: `base` (the container's own
/// process settings) with the given command, env, cwd, user and terminal.
pub fn exec_process(base: Option<Process>, opts: &ExecOptions) -> Result<Process> {
    if opts.args.is_empty() {
        return Err(Error::Usage(
            "exec needs a command: strato runtime exec ID CMD [ARG...]".into(),
        ));
    }
    let mut p = base.unwrap_or_default();
    p.set_args(Some(opts.args.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &opts.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &opts.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some((uid, gid)) = opts.user {
        let mut u = p.user().clone();
        u.set_uid(uid);
        u.set_gid(gid);
        u.set_additional_gids(Some(opts.additional_gids.clone()).filter(|g| !g.is_empty()));
        p.set_user(u);
    }
    p.set_terminal(Some(opts.tty));
    if opts.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// Whether `linux.resources.cpu.cpus` limits the container's CPUs.
fn cpus_restricted(spec: &oci_spec::runtime::Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.cpu().as_ref())
        .and_then(|c| c.cpus().as_ref())
        .is_some_and(|c| !c.trim().is_empty())
}
