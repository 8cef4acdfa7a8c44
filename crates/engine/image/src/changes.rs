//! A container's filesystem changes (`docker diff`), read from its overlay
//! upper directory against the image's layers.
//!
//! The upper directory holds what the container wrote: a 0:0 character
//! device is a whiteout (a deleted entry), a directory with
//! `trusted.overlay.opaque=y` replaced the lower one (reported deleted, its
//! entries added). Other entries are added, or modified when a lower layer
//! has them. A directory that only holds copied-up entries counts as
//! modified when something below it changed or its owner or mode did
//! (dockerd reports the parents of changes the same way; comparing times
//! would report the parents of mount points the runtime creates).

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};
use crate::unpack::OPAQUE_XATTR;

/// What happened to a path, numbered as the Engine API's `Kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

/// One changed path (absolute, inside the container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

/// The changes in `upper` over `lowers` (top layer first), parents before
/// their entries, entries by name. Paths in `ignore` and below them are
/// left out (mount points such as /etc/hosts, which dockerd keeps in a
/// layer of their own).
pub fn diff(upper: &Path, lowers: &[PathBuf], ignore: &[String]) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    walk(upper, lowers, ignore, "", false, &mut out)?;
    Ok(out)
}

/// Appends the changes under directory `rel` ("" for the root) of `upper`;
/// `hidden` when the lower layers' entries are hidden (opaque or new dir).
/// Returns whether it appended any.
fn walk(
    upper: &Path,
    lowers: &[PathBuf],
    ignore: &[String],
    rel: &str,
    hidden: bool,
    out: &mut Vec<Change>,
) -> Result<bool> {
    let dir = upper.join(rel.trim_start_matches('/'));
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(io_err("read directory", &dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(io_err("read directory", &dir))?;
    names.sort();
    let before = out.len();
    for name in names {
        let path = format!("{rel}/{}", name.to_string_lossy());
        if ignore
            .iter()
            .any(|i| *i == path || path.starts_with(&format!("{}/", i.trim_end_matches('/'))))
        {
            continue;
        }
        let full = dir.join(&name);
        let meta = fs::symlink_metadata(&full).map_err(io_err("stat", &full))?;
        if is_whiteout(&meta) {
            out.push(Change {
                path,
                kind: ChangeKind::Deleted,
            });
            continue;
        }
        let lower = if hidden { None } else { lookup(lowers, &path) };
        if !meta.is_dir() {
            let kind = if lower.is_some() {
                ChangeKind::Modified
            } else {
                ChangeKind::Added
            };
            out.push(Change { path, kind });
            continue;
        }
        let opaque = is_opaque(&full);
        let at = out.len();
        let kind = match &lower {
            _ if opaque => Some(ChangeKind::Deleted),
            None => Some(ChangeKind::Added),
            Some(l) if !l.is_dir() => Some(ChangeKind::Modified),
            Some(l) if (l.mode(), l.uid(), l.gid()) != (meta.mode(), meta.uid(), meta.gid()) => {
                Some(ChangeKind::Modified)
            }
            Some(_) => None,
        };
        if let Some(kind) = kind {
            out.push(Change {
                path: path.clone(),
                kind,
            });
        }
        let new_below = hidden || opaque || lower.as_ref().is_none_or(|l| !l.is_dir());
        let changed_below = walk(upper, lowers, ignore, &path, new_below, out)?;
        if kind.is_none() && changed_below {
            out.insert(
                at,
                Change {
                    path,
                    kind: ChangeKind::Modified,
                },
            );
        }
    }
    Ok(out.len() > before)
}

/// What the image has at `path`: the first layer (top first) that has it
/// or hides it decides.
fn lookup(lowers: &[PathBuf], path: &str) -> Option<Metadata> {
    let rel = path.trim_start_matches('/');
    for layer in lowers {
        let p = layer.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if is_whiteout(&m) => return None,
            Ok(m) => return Some(m),
            Err(_) => {
                if p.parent().is_some_and(|d| d != layer && is_opaque(d)) {
                    return None;
                }
            }
        }
    }
    None
}

/// An overlayfs whiteout: a character device with device number 0:0.
fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// A directory overlayfs treats as opaque.
fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut buf), Ok(1) if buf[0] == b'y')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mknod_whiteout(p: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mknod a whiteout (needs root)");
    }

    fn kinds(v: &[Change]) -> Vec<(&str, u8)> {
        v.iter().map(|c| (c.path.as_str(), c.kind as u8)).collect()
    }

    #[test]
    fn added_modified_deleted_opaque_and_ignored() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for d in ["etc", "var/lib", "opt/old", "usr/bin", "keep"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        fs::write(lower.join("etc/passwd"), "root").unwrap();
        fs::write(lower.join("usr/bin/tool"), "x").unwrap();
        fs::write(lower.join("opt/old/f"), "x").unwrap();
        // The container's writes: a new file, a new dir with a file, a
        // modified file (its dir copied up), a deleted file, a replaced
        // (opaque) dir, a chmod'ed dir, a mount point.
        for d in ["etc", "new/sub", "usr/bin", "opt", "keep", "var/lib"] {
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        fs::write(upper.join("test"), "").unwrap();
        fs::write(upper.join("new/sub/f"), "").unwrap();
        fs::write(upper.join("etc/passwd"), "root2").unwrap();
        fs::write(upper.join("etc/hosts"), "").unwrap();
        mknod_whiteout(&upper.join("usr/bin/tool"));
        fs::create_dir(upper.join("opt/old")).unwrap();
        rustix::fs::lsetxattr(
            upper.join("opt/old"),
            OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        fs::write(upper.join("opt/old/g"), "").unwrap();
        fs::set_permissions(upper.join("keep"), fs::Permissions::from_mode(0o700)).unwrap();
        // var/lib: copied up with nothing changed below it.
        let got = diff(&upper, &[lower], &["/etc/hosts".to_string()]).unwrap();
        assert_eq!(
            kinds(&got),
            vec![
                ("/etc", 0),
                ("/etc/passwd", 0),
                ("/keep", 0),
                ("/new", 1),
                ("/new/sub", 1),
                ("/new/sub/f", 1),
                ("/opt", 0),
                ("/opt/old", 2),
                ("/opt/old/g", 1),
                ("/test", 1),
                ("/usr", 0),
                ("/usr/bin", 0),
                ("/usr/bin/tool", 2),
            ]
        );
    }

    #[test]
    fn an_upper_layer_with_only_ignored_entries_has_no_changes() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::create_dir_all(upper.join("proc")).unwrap();
        fs::write(upper.join("etc/resolv.conf"), "").unwrap();
        let ignore = ["/etc/resolv.conf".to_string(), "/proc".to_string()];
        assert_eq!(diff(&upper, &[lower], &ignore).unwrap(), vec![]);
    }
}
