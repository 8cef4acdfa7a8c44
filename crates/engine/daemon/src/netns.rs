//! Network namespaces that exist before their container: created by a
//! short-lived thread (`unshare(CLONE_NEWNET)` changes only that thread) and
//! held by a descriptor, which the engine wires (through `/proc/self/fd/N`)
//! and then hands to the supervisor with the container's start; the
//! supervisor holds it for the container's restarts. No bind mount pins it:
//! every new mount namespace copies the host's mount table, so a mount per
//! running container made each start cost more. This is how the engine wires
//! a container's network before its process starts, without forking from
//! the (multithreaded) daemon. Once the container runs, `/proc/PID/ns/net`
//! of its process is the handle.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::MntFlags;
use nix::sched::CloneFlags;

/// Creates a new network namespace, alive while the descriptor is open,
/// with its loopback up (as Docker gives `--network none`).
pub fn create() -> io::Result<OwnedFd> {
    create_then(loopback_up)
}

/// Creates the namespace of a container about to be wired to a network:
/// its interfaces are born with IPv6 off (see
/// [`strato_network::interfaces_born_without_ipv6`]; the network's plug
/// turns it on where the network has IPv6, and restores the default).
pub fn create_wired() -> io::Result<OwnedFd> {
    create_then(strato_network::interfaces_born_without_ipv6)
}

/// A new namespace, with `setup` run inside it first.
fn create_then(setup: fn() -> io::Result<()>) -> io::Result<OwnedFd> {
    std::thread::spawn(move || new_here(setup))
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
}

/// Moves the calling thread into a new network namespace, runs `setup`
/// there and returns the namespace. Only for a thread of its own.
fn new_here(setup: fn() -> io::Result<()>) -> io::Result<OwnedFd> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
    setup()?;
    Ok(fs::File::open("/proc/thread-self/ns/net")?.into())
}

/// Brings `lo` up in the calling thread's network namespace (the
/// SIOCSIFFLAGS ioctl: one call, no netlink socket to set up).
fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain socket call; the descriptor is owned right after.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `sock` is a new descriptor that nothing else owns.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sock) };
    let mut req = loopback_request();
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// An interface request naming `lo`, for the SIOC?IFFLAGS ioctls.
fn loopback_request() -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    req
}

/// Which namespaces a [`Pool`] keeps ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`create`]: loopback up, nothing else (`--network none`, and a
    /// detached first network).
    Plain,
    /// [`create_wired`]: about to be plugged into a network.
    Wired,
}

/// Namespaces made ahead of the starts that take them. A new network
/// namespace costs the kernel about a millisecond (its sysctl tables,
/// loopback, per-namespace state), on the path of every `docker run`;
/// a thread of the pool makes the next ones once starts pause
/// ([`Pool::QUIET`] after the last take: on a small host, making them while
/// a container starts would take its CPU). At most [`Pool::SPARE`] of each
/// kind wait, so an idle daemon holds a few empty namespaces; when starts
/// come faster, `take` makes one itself, as before.
pub struct Pool {
    shared: std::sync::Arc<Shared>,
}

struct Shared {
    ready: std::sync::Mutex<Ready>,
    wake: std::sync::Condvar,
}

#[derive(Default)]
struct Ready {
    plain: Vec<OwnedFd>,
    wired: Vec<OwnedFd>,
    stop: bool,
    /// When a start last took one.
    last_take: Option<std::time::Instant>,
}

impl Ready {
    fn of(&mut self, kind: Kind) -> &mut Vec<OwnedFd> {
        match kind {
            Kind::Plain => &mut self.plain,
            Kind::Wired => &mut self.wired,
        }
    }

    /// The kind that is short, if any.
    fn wanted(&self) -> Option<Kind> {
        if self.wired.len() < Pool::SPARE {
            Some(Kind::Wired)
        } else if self.plain.len() < Pool::SPARE {
            Some(Kind::Plain)
        } else {
            None
        }
    }
}

fn setup_of(kind: Kind) -> fn() -> io::Result<()> {
    match kind {
        Kind::Plain => loopback_up,
        Kind::Wired => strato_network::interfaces_born_without_ipv6,
    }
}

impl Pool {
    /// Namespaces of each kind kept ready.
    pub const SPARE: usize = 2;
    /// How long after the last take the pool's thread waits before it makes
    /// more: about a container start.
    pub const QUIET: std::time::Duration = std::time::Duration::from_millis(20);

    /// A pool and its thread, which fills it at once.
    pub fn new() -> Pool {
        let shared = std::sync::Arc::new(Shared {
            ready: std::sync::Mutex::new(Ready::default()),
            wake: std::sync::Condvar::new(),
        });
        let weak = std::sync::Arc::downgrade(&shared);
        let spawned = std::thread::Builder::new()
            .name("strato-netns".into())
            .spawn(move || fill(weak));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread to make network namespaces ahead");
        }
        Pool { shared }
    }

    /// A namespace of `kind`: a ready one, or a new one (which blocks for
    /// about a millisecond).
    pub fn take(&self, kind: Kind) -> io::Result<OwnedFd> {
        match self.take_ready(kind) {
            Some(fd) => Ok(fd),
            None => create_then(setup_of(kind)),
        }
    }

    /// A ready namespace of `kind`, if there is one; the pool's thread
    /// makes the next.
    pub fn take_ready(&self, kind: Kind) -> Option<OwnedFd> {
        let ready = {
            let mut r = self.shared.ready.lock().expect("netns pool lock");
            r.last_take = Some(std::time::Instant::now());
            r.of(kind).pop()
        };
        self.shared.wake.notify_one();
        ready
    }

    /// How many of `kind` are ready (for tests).
    pub fn ready(&self, kind: Kind) -> usize {
        self.shared
            .ready
            .lock()
            .expect("netns pool lock")
            .of(kind)
            .len()
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.ready.lock().expect("netns pool lock").stop = true;
        self.shared.wake.notify_all();
    }
}

/// The pool's thread: makes namespaces, in itself, while a kind is short.
fn fill(shared: std::sync::Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let kind = {
            let mut r = s.ready.lock().expect("netns pool lock");
            loop {
                if r.stop {
                    return;
                }
                let quiet_for = r.last_take.map_or(Pool::QUIET, |t| t.elapsed());
                match r.wanted() {
                    Some(k) if quiet_for >= Pool::QUIET => break k,
                    Some(_) => {
                        r = s
                            .wake
                            .wait_timeout(r, Pool::QUIET - quiet_for)
                            .expect("netns pool lock")
                            .0
                    }
                    None => r = s.wake.wait(r).expect("netns pool lock"),
                }
            }
        };
        match new_here(setup_of(kind)) {
            Ok(fd) => {
                let mut r = s.ready.lock().expect("netns pool lock");
                if r.stop {
                    return;
                }
                r.of(kind).push(fd);
            }
            Err(e) => {
                // Takers make their own; try again later.
                tracing::debug!(error = %e, "make a network namespace ahead");
                drop(s);
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}

/// Opens the network namespace of process `pid`.
pub fn of_process(pid: i32) -> io::Result<OwnedFd> {
    Ok(fs::File::open(format!("/proc/{pid}/ns/net"))?.into())
}

/// A path naming the namespace held by `fd`, for this process only (while
/// `fd` stays open).
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Unpins and removes a namespace bind-mounted at `path` by an earlier
/// strato. Missing is fine.
pub fn remove_pin(path: &Path) -> io::Result<()> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_held_namespace_differs_from_ours() {
        let fd = create().unwrap();
        let ours = fs::metadata("/proc/self/ns/net").unwrap();
        let held = fs::metadata(fd_path(&fd)).unwrap();
        assert_ne!(ours.ino(), held.ino());
        // This thread's namespace did not change.
        assert_eq!(
            fs::metadata("/proc/thread-self/ns/net").unwrap().ino(),
            ours.ino()
        );
        let mine = of_process(std::process::id() as i32).unwrap();
        assert_eq!(fs::metadata(fd_path(&mine)).unwrap().ino(), ours.ino());
    }

    /// The flags of `lo` in the namespace held by `fd`, read by a thread
    /// that joins it.
    fn loopback_flags(fd: &OwnedFd) -> libc::c_short {
        let raw = fd.as_raw_fd();
        std::thread::scope(|t| {
            t.spawn(|| {
                // SAFETY: `raw` stays open for the scope.
                let ns = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
                nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).unwrap();
                let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let mut req = loopback_request();
                // SAFETY: reads into the ifreq we own.
                let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
                assert_eq!(rc, 0);
                // SAFETY: SIOCGIFFLAGS filled the flags member.
                unsafe { req.ifr_ifru.ifru_flags }
            })
            .join()
            .unwrap()
        })
    }

    #[test]
    fn a_plain_namespace_has_its_loopback_up() {
        let fd = create().unwrap();
        assert_ne!(loopback_flags(&fd) & libc::IFF_UP as libc::c_short, 0);
    }

    #[test]
    fn the_pool_keeps_namespaces_ready_and_gives_new_ones() {
        let pool = Pool::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while (pool.ready(Kind::Plain) < Pool::SPARE || pool.ready(Kind::Wired) < Pool::SPARE)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(pool.ready(Kind::Plain), Pool::SPARE);
        assert_eq!(pool.ready(Kind::Wired), Pool::SPARE);
        // More than are ready: each take is a namespace of its own.
        let mut seen = std::collections::HashSet::new();
        let mut held = Vec::new(); // alive, so no inode is reused
        let ours = fs::metadata("/proc/self/ns/net").unwrap().ino();
        for _ in 0..Pool::SPARE + 2 {
            let fd = pool.take(Kind::Plain).unwrap();
            let ino = fs::metadata(fd_path(&fd)).unwrap().ino();
            assert_ne!(ino, ours);
            assert!(seen.insert(ino), "a namespace was given twice");
            assert_ne!(loopback_flags(&fd) & libc::IFF_UP as libc::c_short, 0);
            held.push(fd);
        }
        let wired = pool.take(Kind::Wired).unwrap();
        assert_ne!(fs::metadata(fd_path(&wired)).unwrap().ino(), ours);
    }

    #[test]
    fn removing_a_missing_pin_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns1");
        remove_pin(&path).unwrap();
        fs::write(&path, "").unwrap();
        remove_pin(&path).unwrap();
        assert!(!path.exists());
    }
}
