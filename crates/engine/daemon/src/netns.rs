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

/// Creates a new network namespace, alive while the descriptor is open.
pub fn create() -> io::Result<OwnedFd> {
    create_then(|| Ok(()))
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
    std::thread::spawn(move || -> io::Result<OwnedFd> {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
        setup()?;
        Ok(fs::File::open("/proc/thread-self/ns/net")?.into())
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
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
