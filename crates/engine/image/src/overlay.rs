//! Mounting a container's overlayfs root.
//!
//! `mount(2)` data is limited to one page, which 64-hex snapshot paths fill
//! after ~50 layers. Lower directories are therefore named through short
//! symlinks `ROOT/l/<16 hex>` → `../snapshots/<chain>/fs`; if the option
//! string is still too long, the new mount API adds lower directories one
//! by one (`fsconfig(…, "lowerdir+", …)`, Linux 6.8+), which has no such
//! limit.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use crate::digest::Digest;
use crate::error::{io_err, Error, Result};
use crate::store::Layout;

/// Longest mount(2) data string the kernel takes (one page, with its NUL).
const MAX_MOUNT_DATA: usize = 4095;

/// An overlay mounted by [`crate::ImageStore::rootfs_for`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the overlay stays mounted until unmounted"]
pub struct Mount {
    pub(crate) target: PathBuf,
    pub(crate) container_id: String,
}

impl Mount {
    /// Where the overlay is mounted.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The container whose writable layer is the overlay's upper dir.
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// Unmounts the overlay. The container layer stays (see
    /// [`crate::ImageStore::remove_container_layer`]).
    pub fn unmount(self) -> Result<()> {
        unmount(&self.target)
    }
}

/// Unmounts the filesystem at `target`.
pub fn unmount(target: &Path) -> Result<()> {
    rustix::mount::unmount(target, UnmountFlags::empty()).map_err(|e| Error::Mount {
        op: "unmount",
        target: target.to_owned(),
        source: e.into(),
    })
}

/// The short path for a snapshot, creating its symlink if needed.
pub(crate) fn short_lower(layout: &Layout, chain: &Digest) -> Result<PathBuf> {
    let link = layout.links().join(&chain.hex()[..16]);
    let want = PathBuf::from(format!("../snapshots/{}/fs", chain.hex()));
    match fs::read_link(&link) {
        Ok(t) if t == want => return Ok(link),
        // A prefix collision (practically impossible): use the long path.
        Ok(_) => return Ok(layout.snapshot(chain).join("fs")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("read link", &link)(e)),
    }
    match std::os::unix::fs::symlink(&want, &link) {
        Ok(()) => Ok(link),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(link),
        Err(e) => Err(io_err("create link", &link)(e)),
    }
}

/// Where a volatile mount leaves its mark in the work directory; the kernel
/// refuses to mount over it again until it is removed.
fn volatile_mark(work: &Path) -> PathBuf {
    work.join("work/incompat/volatile")
}

/// Mounts an overlay of `lowers` (top first) with `upper` and `work` at
/// `target`. A `volatile` overlay never syncs its upper layer: without it,
/// unmounting syncs the whole filesystem holding the upper layer (all of
/// it, not just this layer), tens of milliseconds on a busy host. Only for
/// layers that are thrown away with their container: after a host crash
/// their content is undefined. Kernels before 5.10 lack it; there the
/// overlay is mounted as usual.
pub(crate) fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    volatile: bool,
) -> Result<()> {
    // A volatile mount that was not unmounted cleanly (host crash) leaves
    // its mark; the layer is then as the crash left it, which is what a
    // volatile layer promises, and the kernel wants the mark gone.
    let mark = volatile_mark(work);
    if mark.exists() {
        fs::remove_dir_all(&mark).map_err(io_err("remove stale volatile mark", &mark))?;
    }
    if volatile {
        match mount_overlay_opts(lowers, upper, work, target, true) {
            Err(Error::Mount { ref source, .. })
                if source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
            {
                tracing::debug!("overlayfs without volatile support: mounting it durable");
            }
            other => return other,
        }
    }
    mount_overlay_opts(lowers, upper, work, target, false)
}

fn mount_overlay_opts(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    volatile: bool,
) -> Result<()> {
    let merr = |e: rustix::io::Errno| Error::Mount {
        op: "mount",
        target: target.to_owned(),
        source: e.into(),
    };
    for p in lowers.iter().map(PathBuf::as_path).chain([upper, work]) {
        if p.as_os_str()
            .as_bytes()
            .iter()
            .any(|b| matches!(b, b',' | b':' | b'\\' | 0))
        {
            return Err(Error::Mount {
                op: "mount",
                target: target.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "store path {} contains ',', ':' or '\\', which overlayfs options cannot carry: open the store elsewhere",
                        p.display()
                    ),
                ),
            });
        }
    }
    let lowerdir = lowers
        .iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join(":");
    let data = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}{}",
        upper.display(),
        work.display(),
        if volatile { ",volatile" } else { "" }
    );
    if data.len() <= MAX_MOUNT_DATA {
        let data = CString::new(data).map_err(|_| merr(rustix::io::Errno::INVAL))?;
        return rustix::mount::mount(
            "overlay",
            target,
            "overlay",
            MountFlags::empty(),
            data.as_c_str(),
        )
        .map_err(merr);
    }
    let fsfd = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(merr)?;
    for l in lowers {
        rustix::mount::fsconfig_set_string(&fsfd, "lowerdir+", l.as_path()).map_err(|e| {
            Error::Mount {
                op: "mount",
                target: target.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "{} layers are too many for one mount(2) call and this kernel lacks overlayfs lowerdir+ (Linux 6.8+): {e}",
                        lowers.len()
                    ),
                ),
            }
        })?;
    }
    rustix::mount::fsconfig_set_string(&fsfd, "upperdir", upper).map_err(merr)?;
    rustix::mount::fsconfig_set_string(&fsfd, "workdir", work).map_err(merr)?;
    if volatile {
        rustix::mount::fsconfig_set_flag(&fsfd, "volatile").map_err(merr)?;
    }
    rustix::mount::fsconfig_create(&fsfd).map_err(merr)?;
    let mnt = rustix::mount::fsmount(
        &fsfd,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )
    .map_err(merr)?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(merr)
}
