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

/// Mounts an overlay of `lowers` (top first) with `upper` and `work` at
/// `target`.
pub(crate) fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
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
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
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
