//! Unpacking one layer tar into a snapshot directory for overlayfs.
//!
//! Layer tars are untrusted. Every file is created relative to a directory
//! fd that was itself opened one component at a time with `openat2(2)` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, and the
//! final component is created with `O_EXCL`/`O_NOFOLLOW` semantics, so no
//! entry can reach outside the snapshot whatever symlinks the layer (or an
//! earlier entry) planted. Entries that would need to leave the snapshot are
//! refused outright rather than clamped:
//!
//! * absolute paths and `..` components (names and hardlink targets),
//! * any path whose parent goes through a symlink,
//! * character and block devices (whiteouts arrive as `.wh.` files),
//! * `trusted.overlay.*` xattrs, which could forge overlay metadata.
//!
//! Whiteouts are converted to overlayfs's form: `.wh.NAME` becomes a 0:0
//! character device `NAME`, and `.wh..wh..opq` sets
//! `trusted.overlay.opaque=y` on its directory.
//!
//! [`unpack_at`] is the same unpacker for tars copied into a container
//! (`docker cp`): the same refusals, no whiteout conversion, and Docker's
//! ownership and overwrite options ([`UnpackOptions`]).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Prefix of whiteout files in layer tars.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the opaque-directory marker in layer tars.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to treat a directory as opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What a layer entry's name means for overlayfs.
#[derive(Debug, PartialEq, Eq)]
pub enum Whiteout<'a> {
    /// Not a whiteout: create the entry as it is.
    None,
    /// `.wh.NAME`: hide `NAME` of lower layers (a 0:0 char device `NAME`).
    Remove(&'a str),
    /// `.wh..wh..opq`: hide every lower entry of the directory.
    Opaque,
    /// Other `.wh..wh.` names (aufs bookkeeping): skipped.
    Meta,
}

/// Classifies the last component of an entry's path.
pub fn whiteout(name: &str) -> Whiteout<'_> {
    if name == OPAQUE_MARKER {
        Whiteout::Opaque
    } else if name.starts_with(".wh..wh.") {
        Whiteout::Meta
    } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        Whiteout::Remove(hidden)
    } else {
        Whiteout::None
    }
}

/// Splits an entry path into checked components: no absolute paths, no
/// `..`; `.` and empty components are dropped.
fn components<'a>(entry: &str, path: &'a [u8], what: &str) -> Result<Vec<&'a str>> {
    let unsafe_entry = |reason: String| Error::UnsafeEntry {
        entry: entry.to_owned(),
        reason,
    };
    if path.first() == Some(&b'/') {
        return Err(unsafe_entry(format!("{what} is an absolute path")));
    }
    let s = std::str::from_utf8(path)
        .map_err(|_| unsafe_entry(format!("{what} is not valid UTF-8")))?;
    let mut out = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(unsafe_entry(format!(
                    "{what} has a '..' component and could escape the destination"
                )))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn errno(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// How [`unpack_at`] writes entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Image layers: `.wh.` names become overlayfs whiteouts. Otherwise they
    /// are ordinary names.
    pub whiteouts: bool,
    /// Every entry gets this uid and gid instead of the tar's.
    pub chown: Option<(u32, u32)>,
    /// Refuse to replace a directory with a non-directory or the reverse
    /// (Docker's `noOverwriteDirNonDir`); otherwise the old entry goes.
    pub no_overwrite_dir_non_dir: bool,
}

impl UnpackOptions {
    /// The options of image layers.
    pub fn layer() -> Self {
        UnpackOptions {
            whiteouts: true,
            ..Default::default()
        }
    }
}

/// Unpacks the tar stream `tar` into the existing, empty directory `root`.
/// Returns the total size of the regular files written.
///
/// On error the directory is left half-filled: the caller removes it.
pub fn unpack(tar: impl Read, root: &Path) -> Result<u64> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Io {
        op: "open snapshot directory",
        path: root.to_owned(),
        source: errno(e),
    })?;
    unpack_at(tar, &root_fd, &UnpackOptions::layer())
}

/// Unpacks the tar stream `tar` below the directory `root_fd` with `opts`;
/// no entry can leave it (see the module documentation). Returns the total
/// size of the regular files written. On error, entries before the refused
/// one stay written.
pub fn unpack_at(tar: impl Read, root_fd: &OwnedFd, opts: &UnpackOptions) -> Result<u64> {
    let root_fd = root_fd.try_clone().map_err(|source| Error::Unpack {
        entry: ".".into(),
        source,
    })?;
    let mut archive = tar::Archive::new(tar);
    let mut size = 0u64;
    // Directory mtimes are set last: creating children changes them.
    let mut dir_times: Vec<(Vec<String>, i64)> = Vec::new();
    let mut parent_cache: Option<(Vec<String>, OwnedFd)> = None;
    for entry in archive.entries().map_err(Error::Archive)? {
        let mut entry = entry.map_err(Error::Archive)?;
        let raw = entry.path_bytes().into_owned();
        let display = String::from_utf8_lossy(&raw).into_owned();
        let comps = components(&display, &raw, "the path")?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let Some((name, parents)) = comps.split_last() else {
            // The layer's root directory ("./"): its metadata goes to the
            // snapshot root, like Docker's.
            if kind == tar::EntryType::Directory {
                root_metadata(&root_fd, &header, &display, opts.chown)?;
                dir_times.push((
                    Vec::new(),
                    i64::try_from(header.mtime().unwrap_or(0)).unwrap_or(0),
                ));
            }
            continue;
        };
        let at = |source: io::Error| Error::Unpack {
            entry: display.clone(),
            source,
        };
        let unsafe_entry = |reason: &str| Error::UnsafeEntry {
            entry: display.clone(),
            reason: reason.to_owned(),
        };
        let uid = header
            .uid()
            .ok()
            .and_then(|u| u32::try_from(u).ok())
            .ok_or_else(|| unsafe_entry("its uid is not a valid 32-bit id"))?;
        let gid = header
            .gid()
            .ok()
            .and_then(|g| u32::try_from(g).ok())
            .ok_or_else(|| unsafe_entry("its gid is not a valid 32-bit id"))?;
        let (uid, gid) = opts.chown.unwrap_or((uid, gid));
        let mode = Mode::from_bits_truncate(header.mode().map_err(at)? & 0o7777);
        let mtime = i64::try_from(header.mtime().unwrap_or(0)).unwrap_or(0);
        let xattrs = xattrs(&mut entry).map_err(at)?;

        let class = if opts.whiteouts {
            whiteout(name)
        } else {
            Whiteout::None
        };
        match class {
            Whiteout::Meta => continue,
            Whiteout::Opaque => {
                parent_cache = None;
                let dir = open_dir(&root_fd, parents, true, &display)?;
                rustix::fs::fsetxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(|e| at(errno(e)))?;
                continue;
            }
            Whiteout::Remove(hidden) => {
                if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(unsafe_entry("it whites out an invalid name"));
                }
                parent_cache = None;
                let dir = open_dir(&root_fd, parents, true, &display)?;
                remove_existing(&dir, hidden).map_err(at)?;
                rustix::fs::mknodat(
                    &dir,
                    hidden,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|e| at(errno(e)))?;
                continue;
            }
            Whiteout::None => {}
        }

        // Consecutive entries mostly share a parent: reuse its fd. Only
        // regular files keep the cache; anything that may reshape the tree
        // (directories, links, replacements) drops it. A stale fd could at
        // worst point at a removed directory inside the snapshot, never
        // outside it.
        let cached = matches!(&parent_cache, Some((p, _)) if p.iter().map(String::as_str).eq(parents.iter().copied()));
        if !cached {
            let fd = open_dir(&root_fd, parents, true, &display)?;
            parent_cache = Some((parents.iter().map(|s| (*s).to_owned()).collect(), fd));
        }
        let keep_cache = matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous);
        let Some((_, dir)) = &parent_cache else {
            unreachable!("the parent cache was just filled")
        };
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: mtime,
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: mtime,
                tv_nsec: 0,
            },
        };
        let owner = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        if opts.no_overwrite_dir_non_dir {
            check_overwrite(dir, name, kind == tar::EntryType::Directory, &display)?;
        }
        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::statat(dir, *name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    Ok(_) => {
                        remove_existing(dir, name).map_err(at)?;
                        mkdir(dir, name).map_err(at)?;
                    }
                    Err(Errno::NOENT) => mkdir(dir, name).map_err(at)?,
                    Err(e) => return Err(at(errno(e))),
                }
                let fd = open_dir(dir, &[name], false, &display)?;
                rustix::fs::fchown(&fd, owner.0, owner.1).map_err(|e| at(errno(e)))?;
                rustix::fs::fchmod(&fd, mode).map_err(|e| at(errno(e)))?;
                set_xattrs(&fd, &xattrs, &display);
                let mut path: Vec<String> = parents.iter().map(|s| (*s).to_owned()).collect();
                path.push((*name).to_owned());
                dir_times.push((path, mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_existing(dir, name).map_err(at)?;
                let fd = rustix::fs::openat(
                    dir,
                    *name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| at(errno(e)))?;
                let mut file = File::from(fd);
                size += io::copy(&mut entry, &mut file).map_err(Error::Archive)?;
                // chown before chmod: chown clears set-id bits.
                rustix::fs::fchown(&file, owner.0, owner.1).map_err(|e| at(errno(e)))?;
                rustix::fs::fchmod(&file, mode).map_err(|e| at(errno(e)))?;
                set_xattrs(file.as_fd(), &xattrs, &display);
                rustix::fs::futimens(&file, &times).map_err(|e| at(errno(e)))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry("it is a symlink without a target"))?
                    .into_owned();
                remove_existing(dir, name).map_err(at)?;
                // The target is only data here: nothing below follows it.
                rustix::fs::symlinkat(target.as_slice(), dir, *name).map_err(|e| at(errno(e)))?;
                rustix::fs::chownat(dir, *name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| at(errno(e)))?;
                rustix::fs::utimensat(dir, *name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| at(errno(e)))?;
            }
            tar::EntryType::Link => {
                let target_raw = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry("it is a hardlink without a target"))?
                    .into_owned();
                let tcomps = components(&display, &target_raw, "the hardlink target")?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(unsafe_entry("its hardlink target is the layer root"));
                };
                let tdir = open_dir(&root_fd, tparents, false, &display)?;
                match rustix::fs::statat(&tdir, *tname, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        return Err(unsafe_entry("its hardlink target is a directory"))
                    }
                    Ok(_) => {}
                    Err(Errno::NOENT) => {
                        return Err(unsafe_entry(
                            "its hardlink target is not in this layer (hardlinks may only point to earlier entries of the same layer)",
                        ))
                    }
                    Err(e) => return Err(at(errno(e))),
                }
                remove_existing(dir, name).map_err(at)?;
                rustix::fs::linkat(&tdir, *tname, dir, *name, AtFlags::empty())
                    .map_err(|e| at(errno(e)))?;
            }
            tar::EntryType::Fifo => {
                remove_existing(dir, name).map_err(at)?;
                rustix::fs::mknodat(dir, *name, FileType::Fifo, mode, 0)
                    .map_err(|e| at(errno(e)))?;
                rustix::fs::chownat(dir, *name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| at(errno(e)))?;
                rustix::fs::chmodat(dir, *name, mode, AtFlags::empty())
                    .map_err(|e| at(errno(e)))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(unsafe_entry(
                    "device nodes are not allowed in image layers (containers get /dev from the runtime)",
                ));
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(unsafe_entry(&format!(
                    "tar entry type {other:?} is not supported in image layers"
                )));
            }
        }
        if !keep_cache {
            parent_cache = None;
        }
    }
    // Deepest first, so setting a child's time does not disturb its parent.
    dir_times.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    for (path, mtime) in dir_times {
        let comps: Vec<&str> = path.iter().map(String::as_str).collect();
        let display = path.join("/");
        // A later entry may have replaced the directory: nothing to date then.
        let fd = match open_dir(&root_fd, &comps, false, &display) {
            Ok(fd) => fd,
            Err(Error::UnsafeEntry { .. }) => continue,
            Err(Error::Unpack { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                continue
            }
            Err(e) => return Err(e),
        };
        let t = Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        rustix::fs::futimens(
            &fd,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
        )
        .map_err(|e| Error::Unpack {
            entry: display,
            source: errno(e),
        })?;
    }
    Ok(size)
}

/// Docker's `noOverwriteDirNonDir`: an existing directory is not replaced
/// by a non-directory, nor an existing non-directory by a directory.
fn check_overwrite(dir: &OwnedFd, name: &str, is_dir: bool, entry: &str) -> Result<()> {
    let existing = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::Unpack {
                entry: entry.to_owned(),
                source: errno(e),
            })
        }
    };
    let reason = match (existing, is_dir) {
        (true, false) => "it would replace a directory with a non-directory",
        (false, true) => "it would replace a non-directory with a directory",
        _ => return Ok(()),
    };
    Err(Error::UnsafeEntry {
        entry: entry.to_owned(),
        reason: format!("{reason} (copy without noOverwriteDirNonDir to replace it)"),
    })
}

fn root_metadata(
    root: &OwnedFd,
    header: &tar::Header,
    entry: &str,
    chown: Option<(u32, u32)>,
) -> Result<()> {
    let at = |source: io::Error| Error::Unpack {
        entry: entry.to_owned(),
        source,
    };
    let id = |v: io::Result<u64>| {
        v.ok()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| Error::UnsafeEntry {
                entry: entry.to_owned(),
                reason: "its uid or gid is not a valid 32-bit id".into(),
            })
    };
    let (uid, gid) = (id(header.uid())?, id(header.gid())?);
    let (uid, gid) = chown.unwrap_or((uid, gid));
    let mode = Mode::from_bits_truncate(header.mode().map_err(at)? & 0o7777);
    // `root` may be an O_PATH descriptor, which fchown and fchmod refuse:
    // then through its /proc/self/fd link, which names the same inode.
    let owner = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    match rustix::fs::fchown(root, owner.0, owner.1) {
        Err(Errno::BADF) => {
            let link = format!("/proc/self/fd/{}", root.as_raw_fd());
            rustix::fs::chown(&link, owner.0, owner.1).map_err(|e| at(errno(e)))?;
            rustix::fs::chmod(&link, mode).map_err(|e| at(errno(e)))
        }
        Err(e) => Err(at(errno(e))),
        Ok(()) => rustix::fs::fchmod(root, mode).map_err(|e| at(errno(e))),
    }
}

fn mkdir(dir: &OwnedFd, name: &str) -> io::Result<()> {
    rustix::fs::mkdirat(dir, name, Mode::from_bits_truncate(0o755)).map_err(errno)
}

/// Removes `name` from `dir` if it exists (a later entry replaces an earlier
/// one). Non-empty directories are not replaced.
fn remove_existing(dir: &OwnedFd, name: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(errno),
        Err(e) => Err(errno(e)),
    }
}

/// Opens the directory `comps` below `base`, one component at a time and
/// never through a symlink; missing directories are created (0755, root)
/// when `create` is set.
fn open_dir(base: &OwnedFd, comps: &[&str], create: bool, entry: &str) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    // "." rather than a clone: `base` may be an O_PATH descriptor, on
    // which the root's metadata could not be set.
    let mut cur =
        rustix::fs::openat(base, ".", flags, Mode::empty()).map_err(|e| Error::Unpack {
            entry: entry.to_owned(),
            source: errno(e),
        })?;
    for (i, c) in comps.iter().enumerate() {
        let open = |d: &OwnedFd| rustix::fs::openat2(d, *c, flags, Mode::empty(), resolve);
        let next = match open(&cur) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&cur, *c, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => {
                        return Err(Error::Unpack {
                            entry: entry.to_owned(),
                            source: errno(e),
                        })
                    }
                }
                open(&cur).map_err(|e| dir_error(&cur, comps, i, entry, e))?
            }
            Err(e) => return Err(dir_error(&cur, comps, i, entry, e)),
        };
        cur = next;
    }
    Ok(cur)
}

fn dir_error(dir: &OwnedFd, comps: &[&str], i: usize, entry: &str, e: Errno) -> Error {
    let prefix = comps[..=i].join("/");
    let is_symlink = rustix::fs::statat(dir, comps[i], AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
        .unwrap_or(false);
    if is_symlink || e == Errno::LOOP || e == Errno::XDEV {
        Error::UnsafeEntry {
            entry: entry.to_owned(),
            reason: format!(
                "its path goes through the symlink {prefix:?}; writing through symlinks could escape the destination"
            ),
        }
    } else if e == Errno::NOTDIR {
        Error::UnsafeEntry {
            entry: entry.to_owned(),
            reason: format!("{prefix:?} is not a directory"),
        }
    } else {
        Error::Unpack {
            entry: entry.to_owned(),
            source: errno(e),
        }
    }
}

/// The `SCHILY.xattr.*` PAX records of an entry.
fn xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if let Ok(key) = ext.key() {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    out.push((name.to_owned(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(out)
}

fn set_xattrs(fd: impl AsFd, xattrs: &[(String, Vec<u8>)], entry: &str) {
    for (name, value) in xattrs {
        if name.starts_with("trusted.overlay.") {
            tracing::warn!(entry, xattr = %name, "ignoring overlayfs xattr from a layer");
            continue;
        }
        if let Err(e) = rustix::fs::fsetxattr(&fd, name.as_str(), value, XattrFlags::empty()) {
            // Like Docker: xattrs the backing filesystem refuses are dropped.
            tracing::warn!(entry, xattr = %name, error = %e, "could not set xattr");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteout_names_map_to_overlay_forms() {
        assert_eq!(whiteout(".wh.foo"), Whiteout::Remove("foo"));
        assert_eq!(whiteout(".wh..wh..opq"), Whiteout::Opaque);
        assert_eq!(whiteout(".wh..wh.plnk"), Whiteout::Meta);
        assert_eq!(whiteout("foo.wh."), Whiteout::None);
        assert_eq!(whiteout("wh.foo"), Whiteout::None);
    }

    #[test]
    fn copy_options_keep_names_set_owners_and_guard_overwrites() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("f"), "old").unwrap();
        let fd = rustix::fs::open(
            dir.path(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let tar_of = |entries: &[(&str, bool)]| {
            let mut b = tar::Builder::new(Vec::new());
            for (name, is_dir) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(if *is_dir {
                    tar::EntryType::Directory
                } else {
                    tar::EntryType::Regular
                });
                h.set_mode(0o644);
                h.set_uid(7);
                h.set_gid(8);
                h.set_size(if *is_dir { 0 } else { 3 });
                let data: &[u8] = if *is_dir { b"" } else { b"new" };
                b.append_data(&mut h, name, data).unwrap();
            }
            b.into_inner().unwrap()
        };
        let opts = UnpackOptions {
            whiteouts: false,
            chown: Some((1, 2)),
            no_overwrite_dir_non_dir: true,
        };
        unpack_at(&tar_of(&[(".wh.x", false)])[..], &fd, &opts).unwrap();
        let md = std::fs::metadata(dir.path().join(".wh.x")).unwrap();
        assert!(md.is_file());
        assert_eq!((md.uid(), md.gid()), (1, 2));
        for bad in [("d", false), ("f", true)] {
            let e = unpack_at(&tar_of(&[bad])[..], &fd, &opts).unwrap_err();
            assert!(matches!(e, Error::UnsafeEntry { .. }), "{e}");
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f")).unwrap(),
            "old"
        );
        // Without the guard, the tar's entry replaces the old one.
        let opts = UnpackOptions::default();
        unpack_at(&tar_of(&[("f", true)])[..], &fd, &opts).unwrap();
        let md = std::fs::metadata(dir.path().join("f")).unwrap();
        assert!(md.is_dir());
        assert_eq!((md.uid(), md.gid()), (7, 8));
    }

    #[test]
    fn a_root_entry_applies_through_an_o_path_descriptor() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let fd = rustix::fs::open(
            &root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let entries: [(&str, tar::EntryType, u32, u64, &[u8]); 2] = [
            ("./", tar::EntryType::Directory, 0o750, 3, b""),
            ("./a", tar::EntryType::Regular, 0o644, 0, b"hi"),
        ];
        for (name, kind, mode, id, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(id);
            h.set_gid(id + 1);
            h.set_mtime(1_000_000);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        unpack_at(&tar[..], &fd, &UnpackOptions::default()).unwrap();
        let md = std::fs::metadata(&root).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o750);
        assert_eq!((md.uid(), md.gid(), md.mtime()), (3, 4, 1_000_000));
        assert_eq!(std::fs::read(root.join("a")).unwrap(), b"hi");
    }

    #[test]
    fn components_refuse_escapes() {
        assert_eq!(
            components("x", b"./a//b/./c/", "p").unwrap(),
            ["a", "b", "c"]
        );
        assert!(components("x", b"", "p").unwrap().is_empty());
        for bad in [&b"/etc/passwd"[..], b"a/../../b", b"..", b"a/.."] {
            let e = components("x", bad, "the path").unwrap_err();
            assert!(matches!(e, Error::UnsafeEntry { .. }), "{e}");
        }
    }
}
