//! Waiting for a foreground container process: forwards signals to it, relays
//! a pseudo-terminal when there is one, and returns its exit code.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, IoContext, Result};

/// The signals a foreground runtime forwards to the container process.
pub const FORWARDED: [Signal; 9] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGALRM,
];

/// The signals blocked before forking (and handled through a signalfd).
pub fn signal_set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(s);
    }
    set
}

/// Blocks the foreground signals; the container process unblocks them itself.
pub fn block_signals() -> Result<()> {
    signal_set().thread_block().ctx(|| "block signals".into())
}

/// Receives the pty master that the container process sends over `sock`.
pub fn receive_master(sock: &OwnedFd) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx(|| "receive the pty master".into())?;
    for c in msg.cmsgs().ctx(|| "receive the pty master".into())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(Error::Init("the container sent no pty master".into()))
}

struct RawMode {
    fd: RawFd,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd) -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let saved = tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the descriptor is stdin, open for the life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

fn copy_winsize(from: RawFd, to: RawFd) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read/write one winsize struct that lives across the calls.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Waits for `pid` to exit, forwarding signals and relaying `master` (if any)
/// to this process's stdin/stdout. Returns the shell-style exit code.
pub fn wait(pid: i32, master: Option<OwnedFd>) -> Result<i32> {
    let sfd = SignalFd::with_flags(&signal_set(), SfdFlags::SFD_CLOEXEC)
        .ctx(|| "create signalfd".into())?;
    let target = Pid::from_raw(pid);
    let stdin = std::io::stdin();
    let stdin_fd = stdin.as_fd();
    let _raw = master.as_ref().and_then(|_| RawMode::enter(stdin_fd));
    if let Some(m) = &master {
        copy_winsize(stdin_fd.as_raw_fd(), m.as_raw_fd());
    }
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Reap first: the process may have exited before we started waiting.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) => {
                    if status.pid() == Some(target) {
                        if let Some(code) = crate::launch::exit_code(status) {
                            if let Some(m) = &master {
                                drain(m.as_raw_fd(), &mut buf);
                            }
                            return Ok(code);
                        }
                    }
                }
                Err(nix::errno::Errno::ECHILD) => {
                    return Err(Error::Init(format!("process {pid} is not our child")))
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Error::io("waitpid", e.into())),
            }
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let m_fd = master.as_ref().map(|m| m.as_fd());
        if let Some(m) = m_fd.filter(|_| master_open) {
            fds.push(PollFd::new(m, PollFlags::POLLIN));
        }
        let stdin_idx = fds.len();
        if stdin_open {
            fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::io("poll", e.into())),
        }
        let ready = |i: usize, f: &[PollFd]| {
            f.get(i).and_then(|p| p.revents()).is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let sig_ready = ready(0, &fds);
        let master_ready = master_open && ready(1, &fds);
        let stdin_ready = stdin_open && ready(stdin_idx, &fds);
        drop(fds);
        if sig_ready {
            if let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == Signal::SIGWINCH as i32 {
                    if let Some(m) = &master {
                        copy_winsize(stdin_fd.as_raw_fd(), m.as_raw_fd());
                        continue;
                    }
                }
                if sig != Signal::SIGCHLD as i32 {
                    if let Ok(s) = Signal::try_from(sig) {
                        let _ = nix::sys::signal::kill(target, s);
                    }
                }
            }
        }
        if let Some(m) = &master {
            if master_ready && !relay(m.as_raw_fd(), 1, &mut buf) {
                master_open = false;
            }
            if stdin_ready && !relay(0, m.as_raw_fd(), &mut buf) {
                stdin_open = false;
            }
        }
    }
}

/// Copies one read's worth from `from` to `to`; false at end-of-file or error.
fn relay(from: RawFd, to: RawFd, buf: &mut [u8]) -> bool {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
    }
    let mut off = 0usize;
    while off < n as usize {
        // SAFETY: the range lies within the bytes just read into `buf`.
        let w = unsafe { libc::write(to, buf[off..].as_ptr().cast(), n as usize - off) };
        if w <= 0 {
            return false;
        }
        off += w as usize;
    }
    true
}

fn drain(master: RawFd, buf: &mut [u8]) {
    let _ = nix::fcntl::fcntl(
        master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    while relay(master, 1, buf) {}
}
