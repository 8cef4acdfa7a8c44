//! The supervisor process: one single-threaded event loop that owns every
//! container of the engine.
//!
//! It is the child subreaper of the containers it starts, so it reaps them and
//! knows their exit codes; it reads their output pipes and writes the logs; it
//! applies restart policies. It outlives the engine daemon (which talks to it
//! over `ROOT/supervisor.sock`), so containers keep running, logging and
//! restarting while the daemon is stopped, and a restarted daemon finds them
//! here. Being single-threaded, it may fork containers directly through
//! strato-container (no runtime process per container, no shim); the forks
//! are made by its forker ([`crate::forker`]), a helper forked before it held
//! anything, so they do not inherit what it holds for every container.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use strato_container::{CreateOptions, ExecOptions, Runtime};

use crate::forker::{ForkJob, Forker};
use crate::logs::{LogWriter, Stream};
use crate::policy::backoff_ms;
use crate::protocol::{
    ContainerSpec, ContainerStatus, ErrorKind, Event, ExecSpec, ExecStatus, Phase, Request,
    Response, PREPARED_TTL,
};

/// The socket the supervisor listens on, under its root.
pub const SOCKET: &str = "supervisor.sock";

/// Errors that stop the supervisor from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("supervisor root {path}: {source}")]
    Root { path: PathBuf, source: io::Error },
    #[error("listen on {path}: {source}")]
    Listen { path: PathBuf, source: io::Error },
    #[error("signal setup: {0}")]
    Signals(nix::Error),
    #[error("epoll setup: {0}")]
    Epoll(io::Error),
    #[error("{0}")]
    Runtime(String),
}

struct Failure {
    kind: ErrorKind,
    message: String,
}

impl Failure {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl Failure {
    fn into_response(self) -> Response {
        Response::Error {
            message: self.message,
            kind: self.kind,
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure::new(ErrorKind::Internal, e.to_string())
}

/// One supervised container.
struct Managed {
    status: ContainerStatus,
    /// Output pipes (stdout, stderr) or the pty master, read until end-of-file.
    outputs: Vec<(OwnedFd, Stream)>,
    stdin: Option<OwnedFd>,
    master: Option<OwnedFd>,
    log: Option<LogWriter>,
    /// Exit code once reaped; the exit is final when the outputs are drained.
    reaped: Option<i32>,
    started: Instant,
    backoff_ms: u64,
}

impl Managed {
    /// A container known only by its status: no process, pipes or log open.
    fn at_rest(status: ContainerStatus) -> Managed {
        Managed {
            status,
            outputs: Vec::new(),
            stdin: None,
            master: None,
            log: None,
            reaped: None,
            started: Instant::now(),
            backoff_ms: 0,
        }
    }
}

struct ExecRec {
    status: ExecStatus,
    master: Option<OwnedFd>,
    /// Order of creation (older exited execs are forgotten first).
    seq: u64,
}

/// Exited execs remembered per container (for exec inspect); older ones are
/// forgotten, so periodic execs (health checks) do not grow the table.
const EXITED_EXECS_KEPT: usize = 64;

/// After a start, the supervisor makes the spare cgroups that the next
/// creates take (`CreateOptions::cgroup_spares`) once this long went by
/// with nothing to do: off every start's path, and never in a burst.
const SPARES_AFTER_IDLE: Duration = Duration::from_millis(10);

struct Client {
    id: u64,
    stream: UnixStream,
    buf: Vec<u8>,
    /// A start it asked for is pending: its next requests wait.
    waiting: bool,
    /// Descriptors received with its requests, not yet taken by one.
    fds: Vec<OwnedFd>,
}

/// The containers' output pipes (two per container, or a pty), watched by
/// one epoll instance that the loop polls as a single descriptor: a poll(2)
/// over every output made each wakeup of the loop cost more as containers
/// ran (and their outputs rarely have anything to read).
struct Outputs {
    epoll: OwnedFd,
    /// Registered descriptor → its container.
    owner: std::collections::HashMap<RawFd, String>,
}

impl Outputs {
    fn new() -> io::Result<Outputs> {
        // SAFETY: plain syscall with a flag argument; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: epoll_create1 just returned this descriptor; we own it.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Outputs {
            epoll,
            owner: std::collections::HashMap::new(),
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: both descriptors are open; `ev` lives across the call.
        let r = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches output `fd` of container `id`.
    fn add(&mut self, fd: RawFd, id: &str) {
        match self.ctl(libc::EPOLL_CTL_ADD, fd) {
            Ok(()) => {
                self.owner.insert(fd, id.to_string());
            }
            Err(e) => tracing::warn!(id, error = %e, "watch container output"),
        }
    }

    /// Stops watching `fd`, before it is closed: a copy of it held by a
    /// forked starter would keep the registration (and its events) alive.
    fn remove(&mut self, fd: RawFd) {
        if self.owner.remove(&fd).is_some() {
            let _ = self.ctl(libc::EPOLL_CTL_DEL, fd);
        }
    }

    /// The outputs with something to read (or closed), without waiting.
    /// Level-triggered: outputs beyond one batch come in the next round.
    fn ready(&self) -> Vec<(String, RawFd)> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: `events` is a writable array of the length given.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                0,
            )
        };
        let n = usize::try_from(n).unwrap_or(0);
        events[..n]
            .iter()
            .filter_map(|ev| {
                let fd = ev.u64 as RawFd;
                self.owner.get(&fd).map(|id| (id.clone(), fd))
            })
            .collect()
    }
}

/// The supervisor's state.
pub struct Supervisor {
    root: PathBuf,
    runtime: Runtime,
    listener: UnixListener,
    signals: SignalFd,
    containers: BTreeMap<String, Managed>,
    execs: BTreeMap<String, ExecRec>,
    exec_seq: u64,
    clients: Vec<Client>,
    subscribers: Vec<UnixStream>,
    /// Pending restarts: when, which container.
    timers: Vec<(Instant, String)>,
    /// Starts in progress.
    starting: Vec<Starting>,
    /// Containers created ahead of their start, waiting for it.
    prepared: BTreeMap<String, PreparedInit>,
    /// The cgroups path of a container started since the spare cgroups
    /// were last made (see [`SPARES_AFTER_IDLE`]).
    spares_for: Option<PathBuf>,
    /// How many starts may still find a spare cgroup: those made when last
    /// idle, less the starts since. At none, a start asks for no spare,
    /// so a burst does not try the renames that can only fail.
    spares_left: usize,
    /// The helper that forks starters ([`crate::forker`]); `None` while
    /// there is none (starters are then forked here).
    forker: Option<Forker>,
    /// The sequence number of the last start begun.
    start_seq: u64,
    /// Preparations that failed, with why, for the start that may already
    /// be queued behind them ([`Request::Start`] `prepared`): it fails the
    /// same way without trying again (a second try on the same root
    /// filesystem can fail for another reason while the first is undone).
    failed_prepares: BTreeMap<String, (ContainerSpec, String, Instant)>,
    /// Children reaped while starts were pending that matched nothing: a
    /// container can exit before its starter's report arrives.
    orphans: Vec<(i32, i32)>,
    next_client: u64,
    /// The network namespaces of containers started with `spec.netns`,
    /// held for their restarts until they exit for good or are deleted.
    netns: BTreeMap<String, OwnedFd>,
    outputs: Outputs,
    /// Clean-up of deleted containers, done after the answer to the
    /// request that deleted them and before the next request is read:
    /// their runtime state and cgroups, and their directory, already moved
    /// out of `containers/` (so a restart does not see them).
    chores: Vec<Chore>,
}

/// What a deletion leaves for [`Supervisor::do_chores`].
enum Chore {
    /// The runtime's delete of a stopped container: cgroups, state.
    RuntimeDelete(String),
    /// A directory moved into `ROOT/trash`.
    RemoveDir(PathBuf),
}

fn set_nonblocking(fd: RawFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// The pipes of a process's stdio: the child's three ends, and ours.
struct StdioPipes {
    child: [OwnedFd; 3],
    stdin: Option<OwnedFd>,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

impl StdioPipes {
    /// Pipes for stdout and stderr, and for stdin when `open_stdin` (else
    /// the child reads /dev/null).
    fn new(open_stdin: bool) -> io::Result<StdioPipes> {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (in_r, in_w) = if open_stdin {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            (OwnedFd::from(fs::File::open("/dev/null")?), None)
        };
        Ok(StdioPipes {
            child: [in_r, out_w, err_w],
            stdin: in_w,
            stdout: out_r,
            stderr: err_r,
        })
    }

    fn child_raw(&self) -> [RawFd; 3] {
        [
            self.child[0].as_raw_fd(),
            self.child[1].as_raw_fd(),
            self.child[2].as_raw_fd(),
        ]
    }
}

/// A socketpair to receive a pty master over, and /dev/null for the stdio
/// the console replaces.
struct ConsolePair {
    ours: UnixStream,
    theirs: UnixStream,
    null: fs::File,
}

impl ConsolePair {
    fn new() -> io::Result<ConsolePair> {
        let (ours, theirs) = UnixStream::pair()?;
        Ok(ConsolePair {
            ours,
            theirs,
            null: fs::File::open("/dev/null")?,
        })
    }

    /// Points the options' stdio and console at this pair.
    fn stdio(&self) -> ([RawFd; 3], RawFd) {
        let n = self.null.as_raw_fd();
        ([n, n, n], self.theirs.as_raw_fd())
    }

    /// The master the container process sent.
    fn master(self) -> Result<OwnedFd, Failure> {
        receive_master(self.ours)
    }
}

fn receive_master(ours: UnixStream) -> Result<OwnedFd, Failure> {
    strato_container::foreground::receive_master(&OwnedFd::from(ours)).map_err(internal)
}

/// What a container's stdio needs while its start is prepared: the pipes or
/// the console pair, both ends.
enum Held {
    Pipes(StdioPipes),
    Console(ConsolePair),
}

/// What a starter runs.
enum Job {
    /// The runtime's create and start.
    Run(CreateOptions),
    /// The runtime's create alone: the process waits for its start.
    Prepare(CreateOptions),
}

/// A container created ahead of its start ([`Request::Prepare`]).
struct PreparedInit {
    spec: ContainerSpec,
    pid: i32,
    log: LogWriter,
    stdio: Stdio,
    since: Instant,
}

/// Our ends of a starting container's stdio (the starter holds the others).
enum Stdio {
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// Where the container sends its pty master.
    Console(UnixStream),
}

/// A start in progress (see [`Supervisor::start`]).
struct Starting {
    spec: ContainerSpec,
    restart_count: u32,
    /// A preparation ([`Job::Prepare`]), which ends in `prepared`, not as a
    /// running container.
    prepares: bool,
    /// The process running the runtime's create and start, when this
    /// process forked it (not the forker).
    starter: Option<i32>,
    /// Tells this start from the others while it is pending.
    seq: u64,
    /// Its report (a [`StartReport`] line), read until whole.
    report: OwnedFd,
    buf: Vec<u8>,
    log: LogWriter,
    stdio: Stdio,
    waiter: Waiter,
}

/// What a start has once its process runs (or failed), for
/// [`Supervisor::complete_start`].
struct Begun {
    spec: ContainerSpec,
    restart_count: u32,
    log: LogWriter,
    stdio: Stdio,
    waiter: Waiter,
}

/// Who waits for a start's outcome.
enum Waiter {
    /// A client's Start or Restart request: answered on this connection;
    /// the client's further requests wait until then.
    Client { client: u64, stream: UnixStream },
    /// A restart by policy.
    Timer { id: String },
}

/// A starter's one line to the supervisor.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum StartReport {
    Started {
        pid: i32,
        /// The container's cgroups path, beside which the supervisor makes
        /// spare cgroups when idle.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<PathBuf>,
    },
    Failed {
        message: String,
    },
}

fn now() -> String {
    strato_container::state::now_rfc3339()
}

/// A suffix that keeps names in the trash apart.
fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

impl Supervisor {
    /// Sets up the root directory, the socket and signal handling.
    /// Must be called from a single-threaded process.
    pub fn new(root: &Path) -> Result<Supervisor, Error> {
        let root_err = |source| Error::Root {
            path: root.to_path_buf(),
            source,
        };
        fs::create_dir_all(root.join("containers")).map_err(root_err)?;
        let sock = root.join(SOCKET);
        let _ = fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock).map_err(|source| Error::Listen {
            path: sock.clone(),
            source,
        })?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&sock, fs::Permissions::from_mode(0o600)).map_err(root_err)?;
        listener.set_nonblocking(true).map_err(root_err)?;
        let mut set = SigSet::empty();
        set.add(Signal::SIGCHLD);
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGINT);
        set.thread_block().map_err(Error::Signals)?;
        let signals = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(Error::Signals)?;
        // Containers and execs become our children when their setup process exits.
        // SAFETY: plain prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let runtime = Runtime::new(root.join("runtime"));
        // Starters are forks of this process (through the forker): they
        // inherit the layout.
        runtime.warm_host_caches();
        // Forked while this process holds nothing of any container.
        let forker = Forker::spawn(&runtime)
            .inspect_err(|e| tracing::warn!(error = %e, "no forker; starters are forked here"))
            .ok();
        let mut sup = Supervisor {
            runtime,
            root: root.to_path_buf(),
            listener,
            signals,
            containers: BTreeMap::new(),
            execs: BTreeMap::new(),
            exec_seq: 0,
            clients: Vec::new(),
            subscribers: Vec::new(),
            timers: Vec::new(),
            starting: Vec::new(),
            prepared: BTreeMap::new(),
            spares_for: None,
            spares_left: 0,
            forker,
            start_seq: 0,
            failed_prepares: BTreeMap::new(),
            orphans: Vec::new(),
            next_client: 0,
            netns: BTreeMap::new(),
            outputs: Outputs::new().map_err(Error::Epoll)?,
            chores: Vec::new(),
        };
        sup.load_records();
        sup.sweep_leftovers();
        Ok(sup)
    }

    /// Records of a previous supervisor: exited containers are remembered; a
    /// container that was running is reported exited with an unknown code (its
    /// process is not our child any more), and its leftovers are removed.
    fn load_records(&mut self) {
        let Ok(rd) = fs::read_dir(self.root.join("containers")) else {
            return;
        };
        for e in rd.flatten() {
            let path = e.path().join("status.json");
            let Ok(data) = fs::read(&path) else { continue };
            let Ok(mut status) = serde_json::from_slice::<ContainerStatus>(&data) else {
                continue;
            };
            if status.phase != Phase::Exited {
                if status.pid > 0 {
                    let _ = self.runtime.kill(&status.spec.id, Signal::SIGKILL, true);
                }
                let _ = self.runtime.delete(&status.spec.id, true);
                status.phase = Phase::Exited;
                status.pid = 0;
                status.exit_code = Some(255);
                status.finished_at = Some(now());
                status.error = Some("the supervisor restarted while the container ran".into());
            }
            let id = status.spec.id.clone();
            let m = Managed::at_rest(status);
            self.save(&m.status);
            self.containers.insert(id, m);
        }
    }

    /// What a supervisor that stopped between a deletion and its clean-up
    /// left: its trash, and runtime states of containers it no longer has.
    fn sweep_leftovers(&mut self) {
        if let Ok(rd) = fs::read_dir(self.root.join("trash")) {
            for e in rd.flatten() {
                self.chores.push(Chore::RemoveDir(e.path()));
            }
        }
        if let Ok(states) = self.runtime.list() {
            for (st, _) in states {
                if !self.containers.contains_key(&st.id) {
                    self.chores.push(Chore::RuntimeDelete(st.id.clone()));
                }
            }
        }
        self.do_chores();
    }

    /// Runs the clean-ups deletions left (see [`Supervisor::chores`]).
    fn do_chores(&mut self) {
        for chore in std::mem::take(&mut self.chores) {
            match chore {
                Chore::RuntimeDelete(id) => match self.runtime.delete(&id, true) {
                    Ok(()) | Err(strato_container::Error::NotFound(_)) => {}
                    Err(e) => tracing::warn!(id, error = %e, "runtime delete"),
                },
                Chore::RemoveDir(dir) => {
                    let _ = fs::remove_dir_all(dir);
                }
            }
        }
    }

    fn save(&self, status: &ContainerStatus) {
        let dir = self.root.join("containers").join(&status.spec.id);
        let write = || -> io::Result<()> {
            fs::create_dir_all(&dir)?;
            let tmp = dir.join(".status.json.tmp");
            fs::write(&tmp, serde_json::to_vec(status).map_err(io::Error::other)?)?;
            fs::rename(&tmp, dir.join("status.json"))
        };
        if let Err(e) = write() {
            tracing::warn!(id = %status.spec.id, error = %e, "cannot save container status");
        }
    }

    fn emit(&mut self, event: Event) {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        self.subscribers.retain_mut(|s| s.write_all(&line).is_ok());
    }

    /// Runs the loop until SIGTERM or SIGINT. Containers keep running.
    pub fn run(mut self) -> Result<(), Error> {
        loop {
            let prepared_due = self.expire_prepared();
            let timeout = self
                .timers
                .iter()
                .map(|(t, _)| t.saturating_duration_since(Instant::now()))
                .chain(prepared_due)
                // Spare cgroups are made once nothing happened for a while.
                .chain(self.spares_for.as_ref().map(|_| SPARES_AFTER_IDLE))
                .min()
                .map(|d| {
                    PollTimeout::try_from(d.as_millis().min(60_000) as u32 + 1)
                        .unwrap_or(PollTimeout::NONE)
                })
                .unwrap_or(PollTimeout::NONE);
            let (ready, stop) = self.wait_ready(timeout);
            if ready.is_empty() && self.starting.is_empty() {
                if let Some(cg) = self.spares_for.take() {
                    let made = self.runtime.make_cgroup_spares(&cg);
                    self.spares_left = strato_container::Runtime::CGROUP_SPARES;
                    tracing::debug!(made, "spare cgroups made");
                }
            }
            if stop {
                self.settle_all();
                tracing::info!("supervisor stopping; containers keep running");
                return Ok(());
            }
            for r in ready {
                match r {
                    Ready::Listener => self.accept(),
                    Ready::Signal => self.reap(),
                    Ready::Client(i) => self.read_client(i),
                    Ready::Output(id, i) => self.read_output(&id, i),
                    Ready::Outputs => {}
                    Ready::Report(seq) => {
                        if let Some(i) = self.starting.iter().position(|s| s.seq == seq) {
                            self.read_report(i);
                        }
                    }
                }
            }
            self.clients
                .retain(|c| c.stream.as_raw_fd() >= 0 && !c.buf.ends_with(b"\0"));
            self.fire_timers();
            self.finish_exits();
            self.do_chores();
        }
    }

    fn wait_ready(&mut self, timeout: PollTimeout) -> (Vec<Ready>, bool) {
        let mut tags = vec![Ready::Listener, Ready::Signal];
        let mut fds = vec![
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
        ];
        for (i, c) in self.clients.iter().enumerate() {
            tags.push(Ready::Client(i));
            fds.push(PollFd::new(c.stream.as_fd(), PollFlags::POLLIN));
        }
        for s in &self.starting {
            tags.push(Ready::Report(s.seq));
            fds.push(PollFd::new(s.report.as_fd(), PollFlags::POLLIN));
        }
        tags.push(Ready::Outputs);
        fds.push(PollFd::new(self.outputs.epoll.as_fd(), PollFlags::POLLIN));
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return (Vec::new(), false),
            Err(e) => {
                tracing::error!(error = %e, "poll");
                std::thread::sleep(Duration::from_millis(10));
                return (Vec::new(), false);
            }
        }
        let mut out = Vec::new();
        let mut stop = false;
        for (tag, fd) in tags.into_iter().zip(fds.iter()) {
            let Some(ev) = fd.revents() else { continue };
            if ev.is_empty() {
                continue;
            }
            if let Ready::Outputs = tag {
                for (id, fd) in self.outputs.ready() {
                    let i = self
                        .containers
                        .get(&id)
                        .and_then(|m| m.outputs.iter().position(|(o, _)| o.as_raw_fd() == fd));
                    if let Some(i) = i {
                        out.push(Ready::Output(id, i));
                    }
                }
                continue;
            }
            if let Ready::Signal = tag {
                while let Ok(Some(info)) = self.signals.read_signal() {
                    if info.ssi_signo == Signal::SIGTERM as u32
                        || info.ssi_signo == Signal::SIGINT as u32
                    {
                        stop = true;
                    }
                }
            }
            out.push(tag);
        }
        // Outputs are read in descending order so indexes stay valid when one closes.
        out.sort_by(|a, b| match (a, b) {
            (Ready::Output(x, i), Ready::Output(y, j)) => (y, j).cmp(&(x, i)),
            _ => std::cmp::Ordering::Equal,
        });
        (out, stop)
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(true);
            self.next_client += 1;
            self.clients.push(Client {
                id: self.next_client,
                stream,
                buf: Vec::new(),
                waiting: false,
                fds: Vec::new(),
            });
        }
    }

    fn read_client(&mut self, i: usize) {
        let mut chunk = [0u8; 8192];
        let Some(client) = self.clients.get_mut(i) else {
            return;
        };
        loop {
            let received = crate::fdpass::recv(
                client.stream.as_raw_fd(),
                &mut chunk,
                &mut client.fds,
                nix::sys::socket::MsgFlags::MSG_DONTWAIT,
            );
            match received {
                Ok(0) => {
                    client.buf.push(0); // mark closed
                    break;
                }
                Ok(n) => client.buf.extend_from_slice(&chunk[..n]),
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    client.buf.push(0);
                    break;
                }
            }
        }
        self.serve_lines(i);
    }

    /// Handles the complete request lines of client `i`, in order, until
    /// one of them waits for a start.
    fn serve_lines(&mut self, i: usize) {
        while let Some(pos) = self.clients[i].buf.iter().position(|b| *b == b'\n') {
            if self.clients[i].waiting {
                return;
            }
            let line: Vec<u8> = self.clients[i].buf.drain(..=pos).collect();
            let req = serde_json::from_slice::<Request>(&line);
            let stream = match self.clients[i].stream.try_clone() {
                Ok(s) => s,
                Err(_) => return,
            };
            let _ = stream.set_nonblocking(false);
            match req {
                Ok(Request::Events) => {
                    let _ = self.reply(&stream, &Response::Ok, &[]);
                    self.subscribers.push(stream);
                    self.clients[i].buf = vec![0];
                    return;
                }
                Ok(Request::Start { spec, prepared }) => {
                    self.start_request(i, stream, spec, Some(prepared));
                }
                Ok(Request::Prepare { spec }) => {
                    self.start_request(i, stream, spec, None);
                }
                Ok(Request::Restart { id }) => {
                    self.settle(&id);
                    match self.get(&id) {
                        Err(f) => {
                            let _ = self.reply(&stream, &f.into_response(), &[]);
                        }
                        Ok(m) if m.status.phase != Phase::Exited => {
                            let f = Failure::new(
                                ErrorKind::Conflict,
                                format!("container {id} is running"),
                            );
                            let _ = self.reply(&stream, &f.into_response(), &[]);
                        }
                        Ok(m) => {
                            let spec = m.status.spec.clone();
                            let count = m.status.restart_count;
                            let waiter = self.wait_for_start(i, stream);
                            self.start(spec, count, waiter);
                        }
                    }
                }
                Ok(req) => {
                    if let Some(id) = req.container() {
                        let id = id.to_string();
                        self.settle(&id);
                    }
                    let (resp, fds) = match self.handle(req) {
                        Ok(r) => r,
                        Err(f) => (f.into_response(), Vec::new()),
                    };
                    let _ = self.reply(&stream, &resp, &fds);
                    // After the answer, before the next request.
                    self.do_chores();
                }
                Err(e) => {
                    let resp = Response::Error {
                        message: format!("malformed request: {e}"),
                        kind: ErrorKind::Invalid,
                    };
                    let _ = self.reply(&stream, &resp, &[]);
                }
            }
            if let Some(c) = self.clients.get(i) {
                let _ = c.stream.set_nonblocking(true);
            }
        }
    }

    /// Client `i` waits for a start: its answer goes on `stream` later.
    fn wait_for_start(&mut self, i: usize, stream: UnixStream) -> Waiter {
        self.clients[i].waiting = true;
        Waiter::Client {
            client: self.clients[i].id,
            stream,
        }
    }

    fn reply(&self, stream: &UnixStream, resp: &Response, fds: &[OwnedFd]) -> io::Result<()> {
        let mut line = serde_json::to_vec(resp).map_err(io::Error::other)?;
        line.push(b'\n');
        if fds.is_empty() {
            return (&*stream).write_all(&line);
        }
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let n = crate::fdpass::send(stream.as_raw_fd(), &line, &raw)?;
        // The descriptors went with the first bytes; the rest follow.
        (&*stream).write_all(&line[n..])
    }

    fn handle(&mut self, req: Request) -> Result<(Response, Vec<OwnedFd>), Failure> {
        let none = |r| Ok((r, Vec::new()));
        match req {
            Request::Ping => none(Response::Pong {
                pid: std::process::id() as i32,
            }),
            // Answered when the start completes (`serve_lines`).
            Request::Start { .. } | Request::Prepare { .. } | Request::Restart { .. } => Err(
                Failure::new(ErrorKind::Internal, "a start is not handled here"),
            ),
            Request::Kill { id, signal, stop } => {
                let sig = Signal::try_from(signal).map_err(|_| {
                    Failure::new(ErrorKind::Invalid, format!("signal {signal} is not valid"))
                })?;
                let m = self.get_mut(&id)?;
                if stop {
                    m.status.stopped_by_user = true;
                    // A stop also cancels a pending restart.
                    if m.status.phase == Phase::Restarting {
                        m.status.phase = Phase::Exited;
                    }
                }
                let running = matches!(m.status.phase, Phase::Running | Phase::Paused);
                let status = m.status.clone();
                if status.phase == Phase::Exited {
                    // Nothing restarts it now: its network namespace goes.
                    self.netns.remove(&id);
                }
                self.save(&status);
                self.timers.retain(|(_, t)| *t != id);
                if !running {
                    return Err(Failure::new(
                        ErrorKind::Conflict,
                        format!("container {id} is not running"),
                    ));
                }
                if status.phase == Phase::Paused && sig == Signal::SIGKILL {
                    let _ = self.runtime.set_paused(&id, false);
                }
                self.runtime.kill(&id, sig, false).map_err(internal)?;
                none(Response::Ok)
            }
            Request::Pause { id } => self
                .set_paused(&id, true)
                .map(|()| (Response::Ok, Vec::new())),
            Request::Resume { id } => self
                .set_paused(&id, false)
                .map(|()| (Response::Ok, Vec::new())),
            Request::Delete { id, force } => {
                // A prepared container never ran: it has no record besides.
                if let Some(p) = self.prepared.remove(&id) {
                    self.discard(p);
                    if !self.containers.contains_key(&id) {
                        return none(Response::Ok);
                    }
                }
                self.delete(&id, force)?;
                none(Response::Ok)
            }
            Request::State { id } => {
                let status = self.get(&id)?.status.clone();
                none(Response::Status { status })
            }
            Request::Update {
                id,
                resources,
                restart,
            } => {
                self.update(&id, resources, restart)?;
                none(Response::Ok)
            }
            Request::List => none(Response::List {
                containers: self.containers.values().map(|m| m.status.clone()).collect(),
            }),
            Request::Stdin { id } => {
                let m = self.get_mut(&id)?;
                let fd = match (&m.master, m.stdin.take()) {
                    (Some(master), _) => master.try_clone().map_err(internal)?,
                    (None, Some(fd)) => fd,
                    (None, None) => {
                        return Err(Failure::new(
                            ErrorKind::Conflict,
                            format!("container {id} has no open stdin (it was not started with -i, or stdin is attached already)"),
                        ))
                    }
                };
                let pid = m.status.pid;
                Ok((
                    Response::Fds {
                        count: 1,
                        tty: m.master.is_some(),
                        pid,
                    },
                    vec![fd],
                ))
            }
            Request::Resize { id, height, width } => {
                let m = self.get(&id)?;
                let master = m.master.as_ref().ok_or_else(|| {
                    Failure::new(
                        ErrorKind::Conflict,
                        format!("container {id} has no terminal"),
                    )
                })?;
                resize(master.as_raw_fd(), height, width);
                none(Response::Ok)
            }
            Request::Exec { spec } => self.exec(spec),
            Request::ExecState { exec_id } => {
                let e = self.execs.get(&exec_id).ok_or_else(|| {
                    Failure::new(ErrorKind::NotFound, format!("no such exec: {exec_id}"))
                })?;
                none(Response::Exec {
                    status: e.status.clone(),
                })
            }
            Request::ExecResize {
                exec_id,
                height,
                width,
            } => {
                let e = self.execs.get(&exec_id).ok_or_else(|| {
                    Failure::new(ErrorKind::NotFound, format!("no such exec: {exec_id}"))
                })?;
                let master = e.master.as_ref().ok_or_else(|| {
                    Failure::new(
                        ErrorKind::Conflict,
                        format!("exec {exec_id} has no terminal"),
                    )
                })?;
                resize(master.as_raw_fd(), height, width);
                none(Response::Ok)
            }
            Request::Events => none(Response::Ok),
        }
    }

    fn get(&self, id: &str) -> Result<&Managed, Failure> {
        self.containers
            .get(id)
            .ok_or_else(|| Failure::new(ErrorKind::NotFound, format!("no such container: {id}")))
    }

    fn get_mut(&mut self, id: &str) -> Result<&mut Managed, Failure> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| Failure::new(ErrorKind::NotFound, format!("no such container: {id}")))
    }

    /// New limits go to the cgroup of a container that has a live process
    /// (an exited one gets them at its next start, from the engine's
    /// config); the restart policy applies from the next exit on.
    fn update(
        &mut self,
        id: &str,
        resources: Option<serde_json::Value>,
        restart: Option<crate::policy::RestartPolicy>,
    ) -> Result<(), Failure> {
        let phase = self.get(id)?.status.phase;
        if let Some(r) = resources {
            let r: oci_spec::runtime::LinuxResources = serde_json::from_value(r)
                .map_err(|e| Failure::new(ErrorKind::Invalid, format!("resources: {e}")))?;
            if matches!(phase, Phase::Running | Phase::Paused) {
                self.runtime
                    .update(id, &r)
                    .map_err(|e| Failure::new(ErrorKind::Invalid, e.to_string()))?;
            }
        }
        if let Some(policy) = restart {
            let m = self.get_mut(id)?;
            m.status.spec.restart = policy;
            let status = m.status.clone();
            self.save(&status);
        }
        Ok(())
    }

    fn set_paused(&mut self, id: &str, paused: bool) -> Result<(), Failure> {
        let m = self.get(id)?;
        let want = if paused {
            Phase::Running
        } else {
            Phase::Paused
        };
        if m.status.phase != want {
            return Err(Failure::new(
                ErrorKind::Conflict,
                format!(
                    "container {id} is not {}",
                    if paused { "running" } else { "paused" }
                ),
            ));
        }
        self.runtime.set_paused(id, paused).map_err(internal)?;
        let m = self.get_mut(id)?;
        m.status.phase = if paused {
            Phase::Paused
        } else {
            Phase::Running
        };
        let status = m.status.clone();
        self.save(&status);
        Ok(())
    }

    /// Begins a container's start: prepares its log and stdio, then forks a
    /// starter (a copy of this single-threaded process) that runs the
    /// runtime's create and start and reports the pid on a pipe. The loop
    /// goes on meanwhile, so starts overlap (their mounts, cgroup and
    /// namespace work runs in parallel); [`Supervisor::finish_start`]
    /// completes it when the report arrives. When the starter exits, the
    /// container is reparented to us (we are its nearest subreaper).
    fn start(&mut self, spec: ContainerSpec, restart_count: u32, waiter: Waiter) {
        self.begin(spec, restart_count, waiter, false);
    }

    /// [`Supervisor::start`], or with `prepare` the runtime's create alone
    /// ([`Request::Prepare`]).
    fn begin(&mut self, spec: ContainerSpec, restart_count: u32, waiter: Waiter, prepare: bool) {
        // An exit or delete of this container handled in the same round has
        // its runtime state still to release.
        self.do_chores();
        if let Err((waiter, f)) = self.spawn_starter(spec, restart_count, waiter, prepare) {
            // Nothing was forked (no log, no pipes): answered at once.
            self.answer(waiter, Err(f));
        }
    }

    /// Finishes the start of a prepared container here, without a starter:
    /// the runtime's start lets its process execute (a short wait: the
    /// process only has its exec left), and the start completes as any other.
    fn finish_prepared(&mut self, p: PreparedInit, waiter: Waiter) {
        let PreparedInit {
            spec,
            pid,
            log,
            stdio,
            ..
        } = p;
        let report = match self.runtime.start(&spec.id) {
            Ok(()) => StartReport::Started { pid, cgroup: None },
            Err(e) => StartReport::Failed {
                message: e.to_string(),
            },
        };
        let started = Begun {
            spec,
            restart_count: 0,
            log,
            stdio,
            waiter,
        };
        self.complete_start(started, false, report);
    }

    /// Takes the container prepared for the start of `spec` if `wanted`
    /// and it was prepared with the same spec; any other is discarded.
    fn take_prepared(&mut self, spec: &ContainerSpec, wanted: bool) -> Option<PreparedInit> {
        let p = self.prepared.remove(&spec.id)?;
        if wanted && p.spec == *spec {
            return Some(p);
        }
        self.discard(p);
        None
    }

    /// Ends a prepared container: its process is killed, its cgroups and
    /// runtime state removed (its namespaces go with the process).
    fn discard(&mut self, p: PreparedInit) {
        let id = p.spec.id.clone();
        tracing::debug!(id, pid = p.pid, "prepared container discarded");
        if let Err(e) = self.runtime.delete(&id, true) {
            tracing::warn!(id, error = %e, "discard a prepared container");
        }
        self.netns.remove(&id);
    }

    /// Discards the prepared containers that waited [`PREPARED_TTL`]; returns
    /// how long until the next one is due.
    fn expire_prepared(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let due: Vec<String> = self
            .prepared
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= PREPARED_TTL)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(p) = self.prepared.remove(&id) {
                self.discard(p);
            }
        }
        self.failed_prepares
            .retain(|_, (.., since)| now.duration_since(*since) < PREPARED_TTL);
        self.prepared
            .values()
            .map(|p| (p.since + PREPARED_TTL).saturating_duration_since(now))
            .min()
    }

    #[allow(clippy::result_large_err)]
    fn spawn_starter(
        &mut self,
        spec: ContainerSpec,
        restart_count: u32,
        waiter: Waiter,
        prepare: bool,
    ) -> Result<(), (Waiter, Failure)> {
        // Leftovers of an earlier run of the same id.
        if self.runtime.load(&spec.id).is_ok() {
            let _ = self.runtime.delete(&spec.id, true);
        }
        let prepared = (|| {
            let log = LogWriter::open(&spec.log_path).map_err(|e| {
                Failure::new(
                    ErrorKind::Internal,
                    format!("open log {}: {e}", spec.log_path.display()),
                )
            })?;
            let netns_fd = match (spec.netns, self.netns.get(&spec.id)) {
                (false, _) => None,
                (true, Some(fd)) => Some(fd.as_raw_fd()),
                (true, None) => {
                    return Err(Failure::new(
                        ErrorKind::Conflict,
                        format!(
                            "the network namespace of container {} is gone (the supervisor restarted): start it again through the engine",
                            spec.id
                        ),
                    ))
                }
            };
            let mut opts = CreateOptions {
                id: spec.id.clone(),
                bundle: spec.bundle.clone(),
                netns_fd,
                cgroup_spares: self.spares_left > 0,
                ..Default::default()
            };
            let stdio = if spec.tty {
                let console = ConsolePair::new().map_err(internal)?;
                let (stdio, console_fd) = console.stdio();
                opts.stdio = Some(stdio);
                opts.console_fd = Some(console_fd);
                Held::Console(console)
            } else {
                let pipes = StdioPipes::new(spec.open_stdin).map_err(internal)?;
                opts.stdio = Some(pipes.child_raw());
                Held::Pipes(pipes)
            };
            Ok((log, opts, stdio))
        })();
        let (log, opts, stdio) = match prepared {
            Ok(p) => p,
            Err(f) => return Err((waiter, f)),
        };
        self.spares_left = self.spares_left.saturating_sub(1);
        let job = if prepare {
            Job::Prepare(opts)
        } else {
            Job::Run(opts)
        };
        self.fork_starter(spec, restart_count, waiter, log, stdio, job)
    }

    /// Hands a start to the forker (spawned again if it is gone, or if it
    /// took no job); false if none can take it, and this process must fork
    /// the starter itself.
    fn hand_to_forker(&mut self, prepare: bool, opts: &CreateOptions, report: &OwnedFd) -> bool {
        if opts.stdio.is_none() {
            return false;
        }
        let job = ForkJob::new(prepare, opts);
        let fds = ForkJob::descriptors(opts, report.as_raw_fd());
        for _ in 0..2 {
            if self.forker.is_none() {
                self.forker = Forker::spawn(&self.runtime)
                    .inspect_err(|e| tracing::warn!(error = %e, "spawn a forker"))
                    .ok();
            }
            let Some(forker) = &self.forker else {
                return false;
            };
            match forker.send(&job, &fds) {
                Ok(()) => return true,
                Err(e) => {
                    // Gone (killed): its exit is reaped as any orphan's.
                    tracing::warn!(error = %e, pid = forker.pid, "the forker took no job");
                    self.forker = None;
                }
            }
        }
        false
    }

    /// Forks the starter that runs `job` and reports on a pipe; the start
    /// is pending until [`Supervisor::read_report`] gets the report.
    #[allow(clippy::result_large_err)]
    fn fork_starter(
        &mut self,
        spec: ContainerSpec,
        restart_count: u32,
        waiter: Waiter,
        log: LogWriter,
        stdio: Held,
        job: Job,
    ) -> Result<(), (Waiter, Failure)> {
        let (report_r, report_w) = match pipe() {
            Ok(p) => p,
            Err(e) => return Err((waiter, internal(e))),
        };
        let prepares = matches!(job, Job::Prepare(_));
        let (Job::Run(opts) | Job::Prepare(opts)) = &job;
        let starter = if self.hand_to_forker(prepares, opts, &report_w) {
            None
        } else {
            // SAFETY: this process is single-threaded (the supervisor's
            // invariant, checked again by the launch in the child), so the
            // child may run ordinary Rust code; it leaves with `_exit`,
            // never returning into our loop.
            match unsafe { nix::unistd::fork() } {
                Err(e) => return Err((waiter, internal(format!("fork a starter: {e}")))),
                Ok(nix::unistd::ForkResult::Child) => {
                    drop(report_r);
                    // Leave the supervisor's descriptors behind at once
                    // (each running container's pipes and namespace):
                    // kept, every process the runtime forks would copy
                    // them and close them again.
                    strato_container::process::close_inherited_fds(
                        3,
                        &ForkJob::descriptors(opts, report_w.as_raw_fd()),
                    );
                    run_starter(&self.runtime, prepares, opts, report_w.as_raw_fd())
                }
                Ok(nix::unistd::ForkResult::Parent { child }) => Some(child.as_raw()),
            }
        };
        drop(report_w);
        set_nonblocking(report_r.as_raw_fd());
        // Only the container keeps the child's ends: end-of-file when it exits.
        let stdio = match stdio {
            Held::Pipes(p) => Stdio::Pipes {
                stdin: p.stdin,
                stdout: p.stdout,
                stderr: p.stderr,
            },
            Held::Console(c) => Stdio::Console(c.ours),
        };
        tracing::debug!(id = %spec.id, ?starter, "container starting");
        self.start_seq += 1;
        self.starting.push(Starting {
            spec,
            restart_count,
            prepares,
            starter,
            seq: self.start_seq,
            report: report_r,
            buf: Vec::new(),
            log,
            stdio,
            waiter,
        });
        Ok(())
    }

    /// Reads the report of start `i`; completes the start when the report
    /// is whole (or the starter went without one).
    fn read_report(&mut self, i: usize) {
        let mut chunk = [0u8; 4096];
        let s = &mut self.starting[i];
        let eof = loop {
            match nix::unistd::read(s.report.as_raw_fd(), &mut chunk) {
                Ok(0) => break true,
                Ok(n) => s.buf.extend_from_slice(&chunk[..n]),
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break false,
            }
        };
        if !eof && !s.buf.ends_with(b"\n") {
            return;
        }
        let s = self.starting.swap_remove(i);
        let report = serde_json::from_slice::<StartReport>(&s.buf).unwrap_or(StartReport::Failed {
            message: "the container's start process ended without a report".into(),
        });
        if let StartReport::Started {
            cgroup: Some(cg), ..
        } = &report
        {
            // It may have taken a spare: made again once idle (not beside
            // a cgroup under the user's parent).
            if !s.spec.own_cgroup_parent {
                self.spares_for = Some(cg.clone());
            }
        }
        self.finish_start(s, report);
        if self.starting.is_empty() {
            self.orphans.clear();
        }
    }

    /// Completes the pending start of `id`, if there is one, before a request
    /// about that container is handled (as if starts were serial).
    fn settle(&mut self, id: &str) {
        while let Some(i) = self.starting.iter().position(|s| s.spec.id == id) {
            let fd = self.starting[i].report.as_fd();
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::NONE);
            self.read_report(i);
        }
    }

    /// Completes every pending start (when the supervisor stops).
    fn settle_all(&mut self) {
        while let Some(s) = self.starting.first() {
            let id = s.spec.id.clone();
            self.settle(&id);
        }
    }

    /// Records the outcome of a start and answers whoever waits for it.
    fn finish_start(&mut self, s: Starting, report: StartReport) {
        let Starting {
            spec,
            restart_count,
            prepares,
            log,
            stdio,
            waiter,
            ..
        } = s;
        let started = Begun {
            spec,
            restart_count,
            log,
            stdio,
            waiter,
        };
        self.complete_start(started, prepares, report);
    }

    /// [`Supervisor::finish_start`] with the start's parts.
    fn complete_start(&mut self, started: Begun, prepares: bool, report: StartReport) {
        let Begun {
            spec,
            restart_count,
            log,
            stdio,
            waiter,
        } = started;
        if prepares {
            // Waits for its start; a failed preparation leaves no record.
            let result = match report {
                StartReport::Started { pid, .. } => {
                    self.prepared.insert(
                        spec.id.clone(),
                        PreparedInit {
                            spec,
                            pid,
                            log,
                            stdio,
                            since: Instant::now(),
                        },
                    );
                    Ok(Response::Prepared { pid })
                }
                StartReport::Failed { message } => {
                    self.netns.remove(&spec.id);
                    self.failed_prepares
                        .insert(spec.id.clone(), (spec, message.clone(), Instant::now()));
                    Err(Failure::new(ErrorKind::Invalid, message))
                }
            };
            self.answer(waiter, result);
            return;
        }
        let pid = match report {
            StartReport::Started { pid, .. } => pid,
            StartReport::Failed { message } => {
                self.start_failed(&spec, restart_count, Some(log), &message);
                self.answer(waiter, Err(Failure::new(ErrorKind::Invalid, message)));
                return;
            }
        };
        let mut outputs = Vec::new();
        let mut stdin = None;
        let mut master = None;
        match stdio {
            Stdio::Console(ours) => match receive_master(ours) {
                Ok(m) => {
                    set_nonblocking(m.as_raw_fd());
                    match m.try_clone() {
                        Ok(c) => outputs.push((c, Stream::Stdout)),
                        Err(e) => tracing::warn!(id = %spec.id, error = %e, "dup the pty master"),
                    }
                    master = Some(m);
                }
                Err(f) => tracing::warn!(id = %spec.id, error = %f.message, "pty master"),
            },
            Stdio::Pipes {
                stdin: input,
                stdout,
                stderr,
            } => {
                set_nonblocking(stdout.as_raw_fd());
                set_nonblocking(stderr.as_raw_fd());
                outputs.push((stdout, Stream::Stdout));
                outputs.push((stderr, Stream::Stderr));
                stdin = input;
            }
        }
        let started_at = now();
        let status = ContainerStatus {
            spec: spec.clone(),
            phase: Phase::Running,
            pid,
            exit_code: None,
            oom_killed: false,
            started_at: Some(started_at.clone()),
            finished_at: None,
            restart_count,
            stopped_by_user: false,
            error: None,
        };
        self.save(&status);
        let started = matches!(waiter, Waiter::Client { .. }).then(|| Response::Started {
            pid,
            status: Some(Box::new(status.clone())),
        });
        let backoff = self
            .containers
            .get(&spec.id)
            .map(|m| m.backoff_ms)
            .unwrap_or(0);
        for (fd, _) in &outputs {
            self.outputs.add(fd.as_raw_fd(), &spec.id);
        }
        self.unwatch_outputs(&spec.id);
        // It may have exited (and been reaped by us) before its report came.
        let reaped = self
            .orphans
            .iter()
            .position(|(p, _)| *p == pid)
            .map(|i| self.orphans.swap_remove(i).1);
        self.containers.insert(
            spec.id.clone(),
            Managed {
                status,
                outputs,
                stdin,
                master,
                log: Some(log),
                reaped,
                started: Instant::now(),
                backoff_ms: backoff,
            },
        );
        self.emit(Event::Start {
            id: spec.id.clone(),
            pid,
            time: started_at,
        });
        match started {
            Some(started) => self.answer(waiter, Ok(started)),
            None => self.emit(Event::Restart {
                id: spec.id,
                count: restart_count,
                time: now(),
            }),
        }
    }

    /// A start that failed: the container is recorded exited, with the error.
    fn start_failed(
        &mut self,
        spec: &ContainerSpec,
        restart_count: u32,
        log: Option<LogWriter>,
        msg: &str,
    ) {
        // Why, in the container's log too.
        if let Some(mut log) = log {
            let _ = log.write(Stream::Stderr, format!("strato: {msg}\n").as_bytes());
        }
        self.netns.remove(&spec.id);
        self.unwatch_outputs(&spec.id);
        let status = ContainerStatus {
            spec: spec.clone(),
            phase: Phase::Exited,
            pid: 0,
            exit_code: Some(127),
            oom_killed: false,
            started_at: Some(now()),
            finished_at: Some(now()),
            restart_count,
            stopped_by_user: false,
            error: Some(msg.to_string()),
        };
        self.save(&status);
        self.containers
            .insert(spec.id.clone(), Managed::at_rest(status));
    }

    /// Stops watching the outputs container `id` still holds (its record is
    /// about to be replaced, closing them).
    fn unwatch_outputs(&mut self, id: &str) {
        if let Some(m) = self.containers.get(id) {
            for (fd, _) in &m.outputs {
                self.outputs.remove(fd.as_raw_fd());
            }
        }
    }

    /// A `Start` (`prepared`: whether to finish a prepared container) or,
    /// with `None`, a `Prepare` from client `i`, answered on `stream` once
    /// its starter reports.
    fn start_request(
        &mut self,
        i: usize,
        stream: UnixStream,
        spec: ContainerSpec,
        prepared: Option<bool>,
    ) {
        let id = spec.id.clone();
        self.settle(&id);
        let netns = if spec.netns && !self.clients[i].fds.is_empty() {
            Some(self.clients[i].fds.remove(0))
        } else {
            None
        };
        let failure = match self.containers.get(&id) {
            Some(m) if m.status.phase != Phase::Exited => Some(Failure::new(
                ErrorKind::Conflict,
                format!("container {id} is already running"),
            )),
            _ if spec.netns && netns.is_none() => Some(Failure::new(
                ErrorKind::Invalid,
                format!("the start of container {id} names a network namespace descriptor, but none came with it"),
            )),
            _ => None,
        };
        if let Some(f) = failure {
            let _ = self.reply(&stream, &f.into_response(), &[]);
            return;
        }
        // A container prepared before is finished by a start that asks for
        // it (with the same spec), else discarded first, its namespace too.
        let finish = self.take_prepared(&spec, prepared == Some(true));
        let failed = self
            .failed_prepares
            .remove(&id)
            .filter(|(s, ..)| prepared == Some(true) && *s == spec);
        if let Some((_, message, _)) = failed {
            self.start_failed(&spec, 0, LogWriter::open(&spec.log_path).ok(), &message);
            let f = Failure::new(ErrorKind::Invalid, message);
            let _ = self.reply(&stream, &f.into_response(), &[]);
            return;
        }
        match netns {
            Some(fd) => self.netns.insert(id.clone(), fd),
            None => self.netns.remove(&id),
        };
        let waiter = self.wait_for_start(i, stream);
        match (finish, prepared) {
            (Some(p), _) => self.finish_prepared(p, waiter),
            (None, Some(_)) => self.start(spec, 0, waiter),
            (None, None) => self.begin(spec, 0, waiter, true),
        }
    }

    /// Sends the answer to a start to the client that asked for it, then
    /// serves that client's further requests.
    fn answer(&mut self, waiter: Waiter, result: Result<Response, Failure>) {
        match waiter {
            Waiter::Client { client, stream } => {
                let resp = result.unwrap_or_else(Failure::into_response);
                let _ = stream.set_nonblocking(false);
                let _ = self.reply(&stream, &resp, &[]);
                let _ = stream.set_nonblocking(true);
                if let Some(i) = self.clients.iter().position(|c| c.id == client) {
                    self.clients[i].waiting = false;
                    self.serve_lines(i);
                }
            }
            Waiter::Timer { id } => {
                if let Err(f) = result {
                    tracing::warn!(id, error = %f.message, "restart failed");
                }
            }
        }
    }

    fn read_output(&mut self, id: &str, i: usize) {
        let Some(m) = self.containers.get_mut(id) else {
            return;
        };
        let Some((fd, stream)) = m.outputs.get(i) else {
            return;
        };
        let stream = *stream;
        let mut buf = [0u8; 32 * 1024];
        loop {
            match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => {
                    // End of output (EIO: the pty's other side is gone).
                    if let Some(log) = m.log.as_mut() {
                        let _ = log.finish(stream);
                    }
                    self.outputs.remove(fd.as_raw_fd());
                    m.outputs.remove(i);
                    return;
                }
                Ok(n) => {
                    if let Some(log) = m.log.as_mut() {
                        if let Err(e) = log.write(stream, &buf[..n]) {
                            tracing::warn!(id, error = %e, "log write failed");
                        }
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    tracing::warn!(id, error = %e, "read container output");
                    self.outputs.remove(fd.as_raw_fd());
                    m.outputs.remove(i);
                    return;
                }
            }
        }
    }

    /// Waits until the killed init `pid` of container `id` is reaped, so a
    /// removal is complete on return. Not a blocking `waitpid(pid)`: an init
    /// dying with a pid namespace waits for every process of the namespace to
    /// be reaped, and exec'd processes are our children too (their zombies
    /// would wait for us while we wait for the init), so every child is reaped
    /// meanwhile.
    fn wait_killed(&mut self, id: &str, pid: i32) {
        let target = nix::unistd::Pid::from_raw(pid);
        loop {
            match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(st) => {
                    if let Some(code) = strato_container::launch::exit_code(st) {
                        if let Some(m) = self.containers.get_mut(id) {
                            m.reaped = Some(code);
                        }
                        return;
                    }
                    continue;
                }
                Err(nix::errno::Errno::EINTR) => continue,
                // Reaped already (by `reap` below, which records it), or not ours.
                Err(_) => return,
            }
            self.reap();
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn reap(&mut self) {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(s) => s,
            };
            let Some(pid) = status.pid() else { continue };
            let Some(code) = strato_container::launch::exit_code(status) else {
                continue;
            };
            self.record_exit(pid.as_raw(), code);
        }
    }

    /// Notes the exit of a reaped child: a container's init or an exec.
    fn record_exit(&mut self, pid: i32, code: i32) {
        if let Some(m) = self
            .containers
            .values_mut()
            .find(|m| m.status.pid == pid && m.reaped.is_none() && m.status.phase != Phase::Exited)
        {
            m.reaped = Some(code);
            return;
        }
        let time = now();
        if let Some(e) = self
            .execs
            .values_mut()
            .find(|e| e.status.pid == pid && e.status.running)
        {
            e.status.running = false;
            e.status.exit_code = Some(code);
            e.master = None;
            let ev = Event::ExecDie {
                exec_id: e.status.exec_id.clone(),
                container: e.status.container.clone(),
                code,
                time,
            };
            self.emit(ev);
            return;
        }
        if self.forker.as_ref().is_some_and(|f| f.pid == pid) {
            tracing::warn!(
                pid,
                code,
                "the forker exited; the next start forks a new one"
            );
            self.forker = None;
            return;
        }
        // A container whose starter has not reported yet (or a starter).
        if !self.starting.is_empty() && !self.starting.iter().any(|s| s.starter == Some(pid)) {
            self.orphans.push((pid, code));
        }
    }

    /// Completes exits whose output is drained (or whose pipes are held by
    /// someone else after a grace period).
    fn finish_exits(&mut self) {
        let done: Vec<String> = self
            .containers
            .iter()
            .filter(|(_, m)| m.reaped.is_some() && m.outputs.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        for id in done {
            self.finish_exit(&id);
        }
    }

    fn finish_exit(&mut self, id: &str) {
        let Some(m) = self.containers.get_mut(id) else {
            return;
        };
        let code = m.reaped.take().unwrap_or(255);
        let time = now();
        m.stdin = None;
        m.master = None;
        m.log = None;
        m.status.phase = Phase::Exited;
        m.status.pid = 0;
        m.status.exit_code = Some(code);
        m.status.finished_at = Some(time.clone());
        m.status.oom_killed = code == 137 && oom_killed(&self.runtime, id);
        let ran_ms = m.started.elapsed().as_millis() as u64;
        let status = m.status.clone();
        // The process is gone: its runtime state, cgroup and mounts are
        // released right after the exit is told (before the next request).
        self.chores.push(Chore::RuntimeDelete(id.to_string()));
        let spec = &status.spec;
        let restarts =
            spec.restart
                .should_restart(code, status.restart_count, status.stopped_by_user);
        if restarts {
            let m = self.containers.get_mut(id).expect("present");
            m.backoff_ms = backoff_ms(m.backoff_ms, ran_ms);
            m.status.phase = Phase::Restarting;
            let delay = m.backoff_ms;
            let st = m.status.clone();
            self.save(&st);
            self.timers.push((
                Instant::now() + Duration::from_millis(delay),
                id.to_string(),
            ));
        } else if !spec.auto_remove {
            self.netns.remove(id);
            self.save(&status);
        }
        // Told once decided, with the status it left (an AutoRemove
        // container's last one: it is forgotten right after, so the engine
        // removes the rest without asking here again).
        let after = self.containers.get(id).map(|m| Box::new(m.status.clone()));
        self.emit(Event::Exit {
            id: id.to_string(),
            code,
            oom_killed: status.oom_killed,
            time,
            status: after,
        });
        if status.spec.auto_remove && !restarts {
            self.forget(id);
        }
    }

    fn fire_timers(&mut self) {
        let now_i = Instant::now();
        let due: Vec<String> = self
            .timers
            .iter()
            .filter(|(t, _)| *t <= now_i)
            .map(|(_, id)| id.clone())
            .collect();
        self.timers.retain(|(t, _)| *t > now_i);
        for id in due {
            let Some(m) = self.containers.get(&id) else {
                continue;
            };
            if m.status.phase != Phase::Restarting {
                continue;
            }
            let spec = m.status.spec.clone();
            let count = m.status.restart_count + 1;
            self.start(spec, count, Waiter::Timer { id });
        }
    }

    /// Drops the oldest exited execs of `container` beyond [`EXITED_EXECS_KEPT`].
    fn forget_old_execs(&mut self, container: &str) {
        let mut exited: Vec<(u64, String)> = self
            .execs
            .iter()
            .filter(|(_, e)| e.status.container == container && !e.status.running)
            .map(|(k, e)| (e.seq, k.clone()))
            .collect();
        if exited.len() < EXITED_EXECS_KEPT {
            return;
        }
        exited.sort();
        for (_, k) in &exited[..=exited.len() - EXITED_EXECS_KEPT] {
            self.execs.remove(k);
        }
    }

    fn delete(&mut self, id: &str, force: bool) -> Result<(), Failure> {
        let m = self.get(id)?;
        if matches!(m.status.phase, Phase::Running | Phase::Paused) {
            if !force {
                return Err(Failure::new(
                    ErrorKind::Conflict,
                    format!("container {id} is running: stop it first or force the removal"),
                ));
            }
            let pid = m.status.pid;
            if m.status.phase == Phase::Paused {
                let _ = self.runtime.set_paused(id, false);
            }
            let _ = self.runtime.kill(id, Signal::SIGKILL, true);
            self.wait_killed(id, pid);
            // Drain what it wrote last.
            while self
                .containers
                .get(id)
                .is_some_and(|m| !m.outputs.is_empty())
            {
                let n = self.containers[id].outputs.len();
                self.read_output(id, n - 1);
                if self
                    .containers
                    .get(id)
                    .is_some_and(|m| m.outputs.len() == n)
                {
                    // Still open (a descendant holds it): stop waiting.
                    if let Some(m) = self.containers.get_mut(id) {
                        for (fd, _) in m.outputs.drain(..) {
                            self.outputs.remove(fd.as_raw_fd());
                        }
                    }
                }
            }
            if let Some(m) = self.containers.get_mut(id) {
                m.status.stopped_by_user = true;
                m.status.spec.auto_remove = false;
                m.status.spec.restart = crate::policy::RestartPolicy::No;
            }
            self.finish_exit(id);
        }
        self.timers.retain(|(_, t)| t != id);
        self.chores.push(Chore::RuntimeDelete(id.to_string()));
        self.forget(id);
        Ok(())
    }

    fn forget(&mut self, id: &str) {
        self.unwatch_outputs(id);
        self.containers.remove(id);
        self.netns.remove(id);
        let dir = self.root.join("containers").join(id);
        let trash = self.root.join("trash");
        let _ = fs::create_dir_all(&trash);
        let to = trash.join(format!("{id}-{}", now_nanos()));
        match fs::rename(&dir, &to) {
            Ok(()) => self.chores.push(Chore::RemoveDir(to)),
            Err(_) => {
                let _ = fs::remove_dir_all(&dir);
            }
        }
        self.emit(Event::Destroy {
            id: id.to_string(),
            time: now(),
        });
    }

    fn exec(&mut self, spec: ExecSpec) -> Result<(Response, Vec<OwnedFd>), Failure> {
        let m = self.get(&spec.container)?;
        if m.status.phase != Phase::Running {
            return Err(Failure::new(
                ErrorKind::Conflict,
                format!("container {} is not running", spec.container),
            ));
        }
        if self.execs.contains_key(&spec.exec_id) {
            return Err(Failure::new(
                ErrorKind::Conflict,
                format!("exec {} exists", spec.exec_id),
            ));
        }
        let process: oci_spec::runtime::Process = serde_json::from_value(spec.process.clone())
            .map_err(|e| Failure::new(ErrorKind::Invalid, format!("exec process: {e}")))?;
        let tty = process.terminal().unwrap_or(false);
        let mut opts = ExecOptions {
            process: Some(process),
            detach: true,
            ..Default::default()
        };
        let exec_err = |e: strato_container::Error| Failure::new(ErrorKind::Invalid, e.to_string());
        let (pid, fds, master) = if tty {
            let console = ConsolePair::new().map_err(internal)?;
            let (stdio, console_fd) = console.stdio();
            opts.stdio = Some(stdio);
            opts.console_fd = Some(console_fd);
            let pid = self
                .runtime
                .exec_detached(&spec.container, &opts)
                .map_err(exec_err)?;
            let m = console.master()?;
            let ours = m.try_clone().map_err(internal)?;
            (pid, vec![m], Some(ours))
        } else {
            let pipes = StdioPipes::new(spec.stdin).map_err(internal)?;
            opts.stdio = Some(pipes.child_raw());
            let pid = self
                .runtime
                .exec_detached(&spec.container, &opts)
                .map_err(exec_err)?;
            drop(pipes.child);
            let stdin = match pipes.stdin {
                Some(w) => w,
                None => OwnedFd::from(fs::File::open("/dev/null").map_err(internal)?),
            };
            (pid, vec![stdin, pipes.stdout, pipes.stderr], None)
        };
        let status = ExecStatus {
            exec_id: spec.exec_id.clone(),
            container: spec.container.clone(),
            pid,
            running: true,
            exit_code: None,
        };
        self.forget_old_execs(&spec.container);
        self.exec_seq += 1;
        let seq = self.exec_seq;
        self.execs.insert(
            spec.exec_id.clone(),
            ExecRec {
                status,
                master,
                seq,
            },
        );
        Ok((
            Response::Fds {
                count: fds.len() as u8,
                tty,
                pid,
            },
            fds,
        ))
    }
}

enum Ready {
    Listener,
    Signal,
    Client(usize),
    Output(String, usize),
    /// Some of the outputs (see [`Outputs`]).
    Outputs,
    /// The report pipe of the start with this sequence number.
    Report(u64),
}

/// The starter's work, in a forked child (of this process or of the
/// forker) holding `report` and the descriptors `opts` names: the runtime's
/// create (`prepare`) or create and start, then one [`StartReport`] line on
/// `report`. Never returns.
pub(crate) fn run_starter(
    runtime: &Runtime,
    prepare: bool,
    opts: &CreateOptions,
    report: RawFd,
) -> ! {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if prepare {
            runtime.create(opts)
        } else {
            runtime.run_detached(opts)
        }
    }));
    let report_line = match result {
        Ok(Ok(st)) => {
            let line = StartReport::Started {
                pid: st.pid,
                cgroup: Some(st.cgroups_path.clone()),
            };
            // This process ends in a moment: freeing the state's spec
            // (hundreds of allocations) would be waste.
            std::mem::forget(st);
            line
        }
        Ok(Err(e)) => StartReport::Failed {
            message: e.to_string(),
        },
        Err(_) => StartReport::Failed {
            message: "the container's start panicked".into(),
        },
    };
    let code = i32::from(write_report(report, &report_line).is_err());
    // SAFETY: ends this child at once, without running our parent's
    // destructors or atexit handlers.
    unsafe { libc::_exit(code) }
}

/// Writes one [`StartReport`] line to the report pipe `fd` (borrowed).
pub(crate) fn write_report(fd: RawFd, report: &StartReport) -> io::Result<()> {
    let mut line = serde_json::to_vec(report).map_err(io::Error::other)?;
    line.push(b'\n');
    // SAFETY: the caller holds `fd` open for the call; ManuallyDrop keeps
    // it open after.
    let mut f = std::mem::ManuallyDrop::new(unsafe { fs::File::from_raw_fd(fd) });
    f.write_all(&line)
}

fn resize(fd: RawFd, height: u16, width: u16) {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize struct that lives across the call.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

/// Whether the kernel's OOM killer acted in the container's memory cgroup.
fn oom_killed(runtime: &Runtime, id: &str) -> bool {
    runtime.oom_killed(id).unwrap_or(false)
}

/// Reads one response line and the descriptors sent with it; bytes read
/// past the line stay in `buf` for the next call. (Only responses without
/// descriptors are ever read ahead: those of a start sent behind its
/// preparation.)
pub(crate) fn read_line_with_fds(
    stream: &UnixStream,
    buf: &mut Vec<u8>,
) -> io::Result<(String, Vec<OwnedFd>)> {
    let mut fds = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // A line already here (read with the one before it) is served first.
        if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = buf.drain(..=pos).collect();
            line.pop();
            return Ok((String::from_utf8_lossy(&line).into_owned(), fds));
        }
        let n = crate::fdpass::recv(
            stream.as_raw_fd(),
            &mut chunk,
            &mut fds,
            nix::sys::socket::MsgFlags::empty(),
        )?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the supervisor closed the connection",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
