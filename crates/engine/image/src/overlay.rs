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

use rustix::mount::{MountFlags, UnmountFlags};

use crate::digest::Digest;
use crate::error::{io_err, Error, Result};
use crate::store::Layout;

use strato_container::syscall::MAX_MOUNT_DATA;

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

/// A container's overlay root, ready to mount: the image's layers (top
/// first) under the container's writable layer. Made by
/// [`crate::ImageStore::overlay_for`]; mounted either by the runtime inside
/// the container's own mount namespace (from [`Overlay::options`], so the
/// host's mount table never holds it) or by [`Overlay::mount`] (host-side
/// work on a stopped container, in a private mount namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    pub(crate) lowers: Vec<PathBuf>,
    pub(crate) upper: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) volatile: bool,
    pub(crate) container_id: String,
}

impl Overlay {
    /// The image's layers, top first.
    pub fn lowers(&self) -> &[PathBuf] {
        &self.lowers
    }

    /// The container's writable layer (the overlay's upper directory).
    pub fn upper(&self) -> &Path {
        &self.upper
    }

    /// The overlayfs mount options (`lowerdir=…`, `upperdir=…`,
    /// `workdir=…`, and `volatile` for a thrown-away layer: without it,
    /// unmounting syncs the whole filesystem holding the upper layer, tens
    /// of milliseconds on a busy host; after a host crash a volatile
    /// layer's content is undefined). Their total may exceed one page (many
    /// layers): the mounter then adds lower directories one by one.
    pub fn options(&self) -> Vec<String> {
        let lowerdir = self
            .lowers
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join(":");
        let mut o = vec![
            format!("lowerdir={lowerdir}"),
            format!("upperdir={}", self.upper.display()),
            format!("workdir={}", self.work.display()),
        ];
        if self.volatile {
            o.push("volatile".into());
        }
        o
    }

    /// Mounts the overlay at `target` (an existing directory) in this
    /// thread's mount namespace. Kernels before 5.10 lack `volatile`: there
    /// the overlay is mounted as usual.
    pub fn mount(&self, target: &Path) -> Result<Mount> {
        let mut options = self.options();
        match mount_overlay_data(target, &options.join(",")) {
            Err(Error::Mount { ref source, .. })
                if self.volatile
                    && source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
            {
                tracing::debug!("overlayfs without volatile support: mounting it durable");
                options.retain(|o| o != "volatile");
                mount_overlay_data(target, &options.join(","))
            }
            other => other,
        }?;
        Ok(Mount {
            target: target.to_owned(),
            container_id: self.container_id.clone(),
        })
    }
}

/// Checks the paths of an overlay: overlayfs options cannot carry ',', ':'
/// or '\\'. A volatile mount that was not unmounted cleanly (host crash)
/// leaves its mark in the work directory; the layer is then as the crash
/// left it, which is what a volatile layer promises, and the kernel wants
/// the mark gone before it mounts the layer again.
pub(crate) fn prepare(ov: &Overlay) -> Result<()> {
    for p in ov
        .lowers
        .iter()
        .map(PathBuf::as_path)
        .chain([ov.upper.as_path(), ov.work.as_path()])
    {
        if p.as_os_str()
            .as_bytes()
            .iter()
            .any(|b| matches!(b, b',' | b':' | b'\\' | 0))
        {
            return Err(Error::Mount {
                op: "mount",
                target: ov.upper.clone(),
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
    let mark = ov.work.join("work/incompat/volatile");
    if mark.exists() {
        fs::remove_dir_all(&mark).map_err(io_err("remove stale volatile mark", &mark))?;
    }
    Ok(())
}

/// Mounts an overlay with option string `data` at `target`; past one page
/// of options, through the new mount API (see
/// [`strato_container::syscall::mount_long_overlay`]).
fn mount_overlay_data(target: &Path, data: &str) -> Result<()> {
    let merr = |e: io::Error| Error::Mount {
        op: "mount",
        target: target.to_owned(),
        source: e,
    };
    if data.len() > MAX_MOUNT_DATA {
        return strato_container::syscall::mount_long_overlay(
            target,
            data,
            rustix::mount::MountAttrFlags::empty(),
        )
        .map_err(merr);
    }
    let data = CString::new(data).map_err(|_| merr(io::ErrorKind::InvalidInput.into()))?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(|e| merr(e.into()))
}
