//! Validation of the OCI `cgroupsPath`.

use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// Turns a `cgroupsPath` (absolute `/strato/<id>` or relative `strato/<id>`)
/// into a relative path to join below each hierarchy's mount point.
///
/// `.` components and repeated slashes are dropped. `..` components are
/// rejected (they could escape the hierarchy or alias another container's
/// cgroup), and so is a path that names the hierarchy root itself, which a
/// container must never own.
pub fn normalize_cgroups_path(path: &Path) -> Result<PathBuf> {
    let invalid = |reason| Error::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                return Err(invalid(
                    "'..' components are not allowed; use a path below the cgroup root",
                ))
            }
            Component::Prefix(_) => return Err(invalid("path prefixes are not allowed")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(invalid(
            "it names the cgroup root; give a container-specific path such as /strato/<id>",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_relative_paths_agree() {
        let a = normalize_cgroups_path(Path::new("/strato/abc")).unwrap();
        let r = normalize_cgroups_path(Path::new("strato/abc")).unwrap();
        assert_eq!(a, Path::new("strato/abc"));
        assert_eq!(a, r);
        assert_eq!(
            normalize_cgroups_path(Path::new("//strato/./abc/")).unwrap(),
            Path::new("strato/abc")
        );
    }

    #[test]
    fn parent_components_are_rejected_with_the_path() {
        for p in ["/strato/../etc", "../x", "a/b/..", "/.."] {
            let err = normalize_cgroups_path(Path::new(p)).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(p) && msg.contains("'..'"), "{msg}");
        }
    }

    #[test]
    fn the_root_itself_is_rejected() {
        for p in ["", "/", "/./", "."] {
            assert!(normalize_cgroups_path(Path::new(p)).is_err(), "{p:?}");
        }
    }
}
