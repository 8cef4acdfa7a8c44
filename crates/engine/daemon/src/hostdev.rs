//! What a container borrows from the host beyond its image: the host's
//! device nodes (`--privileged`, as dockerd gives them) and the host's init
//! binary (`--init`, bound at /sbin/docker-init as Docker does).

use std::path::{Path, PathBuf};

use crate::model::DeviceSpec;

/// Nodes the runtime makes in every container's /dev, and the host's
/// console: not copied from the host.
const RUNTIME_MADE: [&str; 8] = [
    "null", "zero", "full", "random", "urandom", "tty", "ptmx", "console",
];

/// Directories of /dev that are the container's own mounts (pts, shm,
/// mqueue), links to /proc (fd), or container managers' bookkeeping.
const NOT_DEVICES: [&str; 7] = ["pts", "shm", "mqueue", "fd", ".lxc", ".lxd-mounts", ".udev"];

/// The character and block devices under `dev` (the host's /dev), at the
/// same paths under /dev in the container, with the host's numbers, modes
/// and owners: what `--privileged` adds to a container's /dev. Symbolic
/// links, sockets and regular files are left out, as are the nodes the
/// runtime makes itself and /dev/console. An unreadable directory is left
/// out, not an error: /dev changes under our feet (hot-plug) while it is
/// walked.
pub fn host_devices(dev: &Path) -> Vec<DeviceSpec> {
    let mut out = Vec::new();
    walk(dev, Path::new("/dev"), true, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(dir: &Path, inside: &Path, top: bool, out: &mut Vec<DeviceSpec>) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if top && (RUNTIME_MADE.contains(&name) || NOT_DEVICES.contains(&name)) {
            continue;
        }
        // Not followed: a link (/dev/disk/by-id/…) names a node listed
        // at its own path.
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            walk(&entry.path(), &inside.join(name), false, out);
            continue;
        } else if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else {
            continue;
        };
        let rdev = meta.rdev();
        out.push(DeviceSpec {
            path: inside.join(name).display().to_string(),
            kind: kind.into(),
            major: libc::major(rdev) as u64,
            minor: libc::minor(rdev) as u64,
            mode: meta.mode() & 0o7777,
            access: "rwm".into(),
            uid: meta.uid(),
            gid: meta.gid(),
        });
    }
}

/// Where a container's init goes, as in Docker.
pub const INIT_TARGET: &str = "/sbin/docker-init";

/// Names looked for on the daemon's PATH for `--init`, in order: dockerd's
/// own, then Debian's static tini (package `tini`). A dynamically linked
/// init would not run in images without the host's C library, so plain
/// `tini` is not taken.
const INIT_NAMES: [&str; 2] = ["docker-init", "tini-static"];

/// The init binary `--init` containers run as their process 1: `explicit`
/// (the daemon's `--init-path`) if given, else the first of
/// [`INIT_NAMES`] on `path` (a PATH-like list). The error names what was
/// looked for and how to provide it.
pub fn find_init(explicit: Option<&Path>, path: &str) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "--init: the init binary {} (the daemon's --init-path) is not a file: \
                 give the daemon the path of a statically linked init such as tini-static",
                p.display()
            ))
        };
    }
    INIT_NAMES
        .iter()
        .flat_map(|name| {
            std::env::split_paths(path)
                .filter(|d| d.is_absolute())
                .map(move |d| d.join(name))
        })
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "--init: no {} found on the daemon's PATH: install Debian's tini package \
                 (apt-get install tini) or start the daemon with --init-path PATH",
                INIT_NAMES.join(" or ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_devices_are_nodes_only_without_the_runtimes_own() {
        let devs = host_devices(Path::new("/dev"));
        for d in &devs {
            assert!(d.kind == "c" || d.kind == "b", "{d:?}");
            assert!(d.path.starts_with("/dev/"), "{d:?}");
            assert!(!d.path.starts_with("/dev/pts/"), "{d:?}");
            assert!(!d.path.starts_with("/dev/shm/"), "{d:?}");
            for own in RUNTIME_MADE {
                assert_ne!(d.path, format!("/dev/{own}"));
            }
        }
        // /dev/kmsg is a character device on every Linux with printk.
        let kmsg = devs.iter().find(|d| d.path == "/dev/kmsg");
        let kmsg = kmsg.unwrap_or_else(|| panic!("no /dev/kmsg in {devs:?}"));
        assert_eq!((kmsg.kind.as_str(), kmsg.major, kmsg.minor), ("c", 1, 11));
    }

    #[test]
    fn host_devices_walk_subdirectories_and_skip_links_and_files() {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("net")).unwrap();
        std::fs::create_dir_all(d.join("pts")).unwrap();
        let node = |p: &Path, major, minor| {
            mknod(
                p,
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o640),
                makedev(major, minor),
            )
            .unwrap_or_else(|e| panic!("mknod {}: {e} (the tests run as root)", p.display()))
        };
        node(&d.join("net/tun"), 10, 200);
        node(&d.join("pts/0"), 136, 0);
        node(&d.join("null"), 1, 3);
        std::fs::write(d.join("file"), "x").unwrap();
        std::os::unix::fs::symlink("net/tun", d.join("tunlink")).unwrap();
        let devs = host_devices(d);
        assert_eq!(devs.len(), 1, "{devs:?}");
        let tun = &devs[0];
        assert_eq!(tun.path, "/dev/net/tun");
        assert_eq!((tun.kind.as_str(), tun.major, tun.minor), ("c", 10, 200));
        assert_eq!(tun.mode, 0o640);
        assert_eq!((tun.uid, tun.gid), (0, 0));
    }

    #[test]
    fn init_is_the_explicit_path_or_the_first_name_found() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let path = format!("{}:{}:relative", a.display(), b.display());
        let e = find_init(None, &path).unwrap_err();
        assert!(e.contains("apt-get install tini"), "{e}");
        assert!(e.contains("--init-path"), "{e}");
        std::fs::write(a.join("tini-static"), "").unwrap();
        assert_eq!(find_init(None, &path).unwrap(), a.join("tini-static"));
        // docker-init first, wherever it is on the PATH.
        std::fs::write(b.join("docker-init"), "").unwrap();
        assert_eq!(find_init(None, &path).unwrap(), b.join("docker-init"));
        let missing = dir.path().join("no-such-init");
        let e = find_init(Some(&missing), &path).unwrap_err();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert!(e.contains("--init-path"), "{e}");
        let given = a.join("tini-static");
        assert_eq!(find_init(Some(&given), "").unwrap(), given);
    }
}
