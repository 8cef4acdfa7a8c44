//! The forker: a single-threaded helper that forks the supervisor's
//! starters.
//!
//! A starter forked by the supervisor itself inherits everything the
//! supervisor holds: three descriptors per running container (its output
//! pipes and its network namespace) and an address space that grows with
//! them. Each start then paid to copy that descriptor table, to close it
//! again (`close_range`, one `filp_close` per descriptor) and to copy and
//! tear down the page tables: at 600 running containers, 9% of the start's
//! CPU went to closing descriptors alone.
//!
//! The forker is forked once, when the supervisor starts and holds nothing
//! yet. It keeps a socket to the supervisor, its log and a signalfd, and
//! forks a starter for each job it gets: one datagram (a [`ForkJob`]) with
//! the start's descriptors attached. The starter reports to the supervisor
//! on the pipe the job brought, as it did when the supervisor forked it; the
//! container's process is reparented to the supervisor, its nearest
//! subreaper, when the starter exits. The forker reaps the starters.
//!
//! If the forker is gone, the supervisor forks its starters itself again
//! (see [`crate::server`]).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use strato_container::{CreateOptions, Runtime};

/// The comm name of the forker (and of its starters until they exec).
pub const NAME: &str = "strato-forker";

/// A start for the forker. The descriptors travel beside it, in this order:
/// the report pipe's write end, then stdin, stdout and stderr, then the
/// network namespace and the console socket when the flags say so.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ForkJob {
    /// The runtime's create alone (a prepared start), not create and start.
    pub prepare: bool,
    pub id: String,
    pub bundle: PathBuf,
    pub cgroup_spares: bool,
    pub netns: bool,
    pub console: bool,
}

impl ForkJob {
    /// The job of a start with these options (their descriptors: see
    /// [`ForkJob::descriptors`]).
    pub fn new(prepare: bool, opts: &CreateOptions) -> ForkJob {
        ForkJob {
            prepare,
            id: opts.id.clone(),
            bundle: opts.bundle.clone(),
            cgroup_spares: opts.cgroup_spares,
            netns: opts.netns_fd.is_some(),
            console: opts.console_fd.is_some(),
        }
    }

    /// The descriptors of a start, in the order a job carries them:
    /// `report`, then those `opts` names (stdio, namespace, console).
    pub fn descriptors(opts: &CreateOptions, report: RawFd) -> Vec<RawFd> {
        std::iter::once(report)
            .chain(opts.stdio.into_iter().flatten())
            .chain(opts.netns_fd)
            .chain(opts.console_fd)
            .collect()
    }

    /// How many descriptors come with the job.
    fn fd_count(&self) -> usize {
        4 + usize::from(self.netns) + usize::from(self.console)
    }

    /// The runtime's options, with the descriptors as received (`fds` in
    /// the job's order, the report pipe first).
    fn options(&self, fds: &[OwnedFd]) -> CreateOptions {
        let raw = |i: usize| fds[i].as_raw_fd();
        let mut rest = fds[4..].iter().map(|f| f.as_raw_fd());
        let netns_fd = if self.netns { rest.next() } else { None };
        let console_fd = if self.console { rest.next() } else { None };
        CreateOptions {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            stdio: Some([raw(1), raw(2), raw(3)]),
            netns_fd,
            console_fd,
            cgroup_spares: self.cgroup_spares,
            ..Default::default()
        }
    }
}

/// The supervisor's end of a running forker.
pub(crate) struct Forker {
    sock: OwnedFd,
    pub pid: i32,
}

impl Forker {
    /// Forks the forker. Must be called from a single-threaded process; the
    /// child never returns.
    pub fn spawn(runtime: &Runtime) -> io::Result<Forker> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        // SAFETY: the caller is single-threaded (the supervisor's invariant),
        // so the child may run ordinary Rust code; it leaves with `_exit`.
        match unsafe { nix::unistd::fork() }? {
            nix::unistd::ForkResult::Child => {
                drop(ours);
                strato_container::process::close_inherited_fds(3, &[theirs.as_raw_fd()]);
                set_name(NAME);
                let code = match serve(&theirs, runtime) {
                    Ok(()) => 0,
                    Err(e) => {
                        tracing::error!(error = %e, "forker stopped");
                        1
                    }
                };
                // SAFETY: ends this child without running the supervisor's
                // destructors.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => Ok(Forker {
                sock: ours,
                pid: child.as_raw(),
            }),
        }
    }

    /// Hands a job and its descriptors ([`ForkJob::descriptors`]) to the
    /// forker.
    pub fn send(&self, job: &ForkJob, fds: &[RawFd]) -> io::Result<()> {
        debug_assert_eq!(fds.len(), job.fd_count());
        let body = serde_json::to_vec(job).map_err(io::Error::other)?;
        crate::fdpass::send(self.sock.as_raw_fd(), &body, fds).map(|_| ())
    }
}

fn set_name(name: &str) {
    if let Ok(c) = std::ffi::CString::new(name) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of up to 16 bytes.
        unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr(), 0, 0, 0) };
    }
}

/// The forker's loop: a job in, a starter forked, until the supervisor's end
/// closes. Starters are reaped as they exit.
fn serve(sock: &OwnedFd, runtime: &Runtime) -> io::Result<()> {
    // SIGCHLD is blocked (inherited from the supervisor): read it here.
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set.thread_block()?;
    let signals = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = [
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let job_ready = fds[0].revents().is_some_and(|e| !e.is_empty());
        if fds[1].revents().is_some_and(|e| !e.is_empty()) {
            while let Ok(Some(_)) = signals.read_signal() {}
            reap();
        }
        if !job_ready {
            continue;
        }
        let Some((job, fds)) = receive(sock, &mut buf)? else {
            return Ok(());
        };
        let job = match job {
            Ok(job) if fds.len() == job.fd_count() => job,
            Ok(job) => {
                tracing::error!(id = %job.id, got = fds.len(), "forker: a job came with the wrong descriptors");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "forker: unreadable job");
                continue;
            }
        };
        fork_starter(runtime, &job, fds, &signals, sock);
    }
}

/// One datagram from the supervisor: `None` once its end is closed.
#[allow(clippy::type_complexity)]
fn receive(
    sock: &OwnedFd,
    buf: &mut [u8],
) -> io::Result<Option<(Result<ForkJob, serde_json::Error>, Vec<OwnedFd>)>> {
    let mut fds = Vec::new();
    let n = loop {
        match crate::fdpass::recv(sock.as_raw_fd(), buf, &mut fds, MsgFlags::empty()) {
            Err(nix::errno::Errno::EINTR) => {}
            received => break received?,
        }
    };
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    Ok(Some((serde_json::from_slice(&buf[..n]), fds)))
}

/// Forks the starter of `job`; the forker's copies of the descriptors are
/// closed when `fds` drops.
fn fork_starter(
    runtime: &Runtime,
    job: &ForkJob,
    fds: Vec<OwnedFd>,
    signals: &SignalFd,
    sock: &OwnedFd,
) {
    let opts = job.options(&fds);
    // SAFETY: the forker is single-threaded; the child leaves with `_exit`.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = nix::unistd::close(sock.as_raw_fd());
            let _ = nix::unistd::close(signals.as_fd().as_raw_fd());
            let report = fds[0].as_raw_fd();
            crate::server::run_starter(runtime, job.prepare, &opts, report)
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            tracing::debug!(id = %job.id, starter = child.as_raw(), "starter forked by the forker");
        }
        Err(e) => {
            let report = crate::server::StartReport::Failed {
                message: format!("fork a starter: {e}"),
            };
            let _ = crate::server::write_report(fds[0].as_raw_fd(), &report);
        }
    }
}

/// Reaps every exited starter.
fn reap() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if matches!(status, WaitStatus::StillAlive) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fds(n: usize) -> Vec<OwnedFd> {
        (0..n)
            .map(|_| std::fs::File::open("/dev/null").unwrap().into())
            .collect()
    }

    #[test]
    fn a_job_maps_its_descriptors_in_order() {
        let job = ForkJob {
            prepare: false,
            id: "c1".into(),
            bundle: "/b".into(),
            cgroup_spares: true,
            netns: true,
            console: false,
        };
        assert_eq!(job.fd_count(), 5);
        let held = fds(6);
        let raw: Vec<RawFd> = held.iter().map(|f| f.as_raw_fd()).collect();
        let o = job.options(&held[..5]);
        assert_eq!(o.stdio, Some([raw[1], raw[2], raw[3]]));
        assert_eq!(o.netns_fd, Some(raw[4]));
        assert_eq!(o.console_fd, None);
        assert!(o.cgroup_spares);
        assert_eq!((o.id.as_str(), o.bundle.to_str()), ("c1", Some("/b")));

        let console = ForkJob {
            netns: false,
            console: true,
            ..job
        };
        assert_eq!(console.fd_count(), 5);
        let o = console.options(&held[..5]);
        assert_eq!((o.netns_fd, o.console_fd), (None, Some(raw[4])));

        let both = ForkJob {
            netns: true,
            ..console
        };
        assert_eq!(both.fd_count(), 6);
        let o = both.options(&held);
        assert_eq!((o.netns_fd, o.console_fd), (Some(raw[4]), Some(raw[5])));
    }

    #[test]
    fn a_start_gives_its_descriptors_in_the_order_its_job_reads_them() {
        let mut opts = CreateOptions {
            id: "c2".into(),
            stdio: Some([10, 11, 12]),
            netns_fd: Some(13),
            ..Default::default()
        };
        let job = ForkJob::new(true, &opts);
        assert!(job.prepare && job.netns && !job.console);
        assert_eq!(ForkJob::descriptors(&opts, 9), vec![9, 10, 11, 12, 13]);
        assert_eq!(job.fd_count(), 5);
        opts.console_fd = Some(14);
        let job = ForkJob::new(false, &opts);
        assert_eq!(ForkJob::descriptors(&opts, 9), vec![9, 10, 11, 12, 13, 14]);
        assert_eq!(job.fd_count(), 6);
    }

    #[test]
    fn a_job_and_its_descriptors_cross_the_socket() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let forker = Forker { sock: a, pid: 0 };
        let job = ForkJob {
            prepare: true,
            id: "x".into(),
            bundle: "/bundle".into(),
            cgroup_spares: false,
            netns: false,
            console: false,
        };
        let sent = fds(4);
        let raw: Vec<RawFd> = sent.iter().map(|f| f.as_raw_fd()).collect();
        forker.send(&job, &raw).unwrap();
        let mut buf = vec![0u8; 4096];
        let (got, fds) = receive(&b, &mut buf).unwrap().unwrap();
        assert_eq!(got.unwrap(), job);
        assert_eq!(fds.len(), 4);
        drop(forker);
        assert!(
            receive(&b, &mut buf).unwrap().is_none(),
            "closed end: no job"
        );
    }
}
