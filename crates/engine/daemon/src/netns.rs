//! Network namespaces that exist before their container: created by a
//! short-lived thread (`unshare(CLONE_NEWNET)` changes only that thread), kept
//! alive by a bind mount on a file, then joined by the container by path.
//! This is how the engine wires a container's network before its process
//! starts, without forking from the (multithreaded) daemon.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// Creates a new network namespace pinned at `path`.
pub fn create(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::File::create(path)?;
    let target: PathBuf = path.to_path_buf();
    let res = std::thread::spawn(move || -> io::Result<()> {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")));
    if res.is_err() {
        let _ = fs::remove_file(path);
    }
    res
}

/// Unpins and removes a namespace made by [`create`] (it disappears when
/// no process uses it any more). Missing is fine.
pub fn remove(path: &Path) -> io::Result<()> {
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

    #[test]
    fn a_pinned_namespace_differs_from_ours_and_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns1");
        create(&path).unwrap();
        let ours = fs::metadata("/proc/self/ns/net").unwrap();
        let pinned = fs::metadata(&path).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(ours.ino(), pinned.ino());
        // This thread's namespace did not change.
        assert_eq!(
            fs::metadata("/proc/thread-self/ns/net").unwrap().ino(),
            ours.ino()
        );
        remove(&path).unwrap();
        assert!(!path.exists());
        remove(&path).unwrap();
    }
}
