//! Resolving Docker's `User` (`name`, `uid`, `name:group`, `uid:gid`) against
//! the image's /etc/passwd and /etc/group, read inside the rootfs (symlinks
//! resolved as if the rootfs were `/`, so a hostile image can't point us at
//! the host's files).

use std::path::Path;

/// A resolved user: ids and supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn read_in_rootfs(rootfs: &Path, path: &str) -> String {
    strato_container::rootfs::secure_join(rootfs, Path::new(path))
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}

/// An image's (or container's) /etc/passwd and /etc/group, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    pub passwd: String,
    pub group: String,
}

impl Accounts {
    /// Reads them inside `rootfs` (symlinks resolved as if it were `/`).
    pub fn read(rootfs: &Path) -> Accounts {
        Accounts {
            passwd: read_in_rootfs(rootfs, "/etc/passwd"),
            group: read_in_rootfs(rootfs, "/etc/group"),
        }
    }

    /// Reads them in the merged view of an overlay that no mount on the
    /// host shows: a single layer is read as it is; otherwise a thread
    /// unshares its mount namespace (only that thread; nothing is forked),
    /// mounts the overlay on `scratch` there, reads, and unmounts before it
    /// ends, so the overlay is gone before this returns (the runtime mounts
    /// the same writable layer next). `image_only`: the image's layers
    /// alone, read-only (the writable layer is not touched).
    pub fn read_overlay(
        overlay: &strato_image::Overlay,
        image_only: bool,
        scratch: &Path,
    ) -> std::io::Result<Accounts> {
        if image_only {
            if let [only] = overlay.lowers() {
                return Ok(Accounts::read(only));
            }
        }
        let (overlay, scratch) = (overlay.clone(), scratch.to_path_buf());
        std::thread::Builder::new()
            .name("accounts".into())
            .spawn(move || -> std::io::Result<Accounts> {
                use nix::mount::{MntFlags, MsFlags};
                crate::copy::private_mount_namespace()?;
                std::fs::create_dir_all(&scratch)?;
                let mounted = if image_only {
                    let lowerdir = overlay
                        .lowers()
                        .iter()
                        .map(|p| p.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(":");
                    use strato_container::syscall::Syscall;
                    strato_container::syscall::Linux.mount(
                        Some(Path::new("overlay")),
                        &scratch,
                        Some("overlay"),
                        MsFlags::MS_RDONLY,
                        Some(&format!("lowerdir={lowerdir}")),
                    )
                } else {
                    overlay
                        .mount(&scratch)
                        .map(|_| ())
                        .map_err(std::io::Error::other)
                };
                let accounts = mounted.map(|()| Accounts::read(&scratch));
                let _ = nix::mount::umount2(&scratch, MntFlags::empty());
                let _ = std::fs::remove_dir(&scratch);
                accounts
            })?
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the accounts thread panicked")))
    }
}

fn passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn groups(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves `user` (Docker syntax) and `group_add` in the rootfs.
pub fn resolve(rootfs: &Path, user: &str, group_add: &[String]) -> Result<Resolved, String> {
    resolve_in(&Accounts::read(rootfs), user, group_add)
}

/// Resolves `user` (Docker syntax) and `group_add` against `accounts`.
pub fn resolve_in(
    accounts: &Accounts,
    user: &str,
    group_add: &[String],
) -> Result<Resolved, String> {
    let users = passwd(&accounts.passwd);
    let groups = groups(&accounts.group);
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = users.iter().find(|e| e.name == u).or_else(|| {
        u.parse::<u32>()
            .ok()
            .and_then(|n| users.iter().find(|e| e.uid == n))
    });
    let (uid, mut gid, name, home) = match (entry, u.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name.clone()), e.home.clone()),
        (None, Ok(n)) => (n, 0, None, "/".to_string()),
        (None, Err(_)) => {
            return Err(format!(
                "user {u:?} is not in the image's /etc/passwd: use a numeric uid or add the user to the image"
            ))
        }
    };
    let lookup_group = |g: &str| -> Result<u32, String> {
        groups
            .iter()
            .find(|e| e.name == g)
            .map(|e| e.gid)
            .or_else(|| g.parse().ok())
            .ok_or_else(|| {
                format!("group {g:?} is not in the image's /etc/group: use a numeric gid")
            })
    };
    if let Some(g) = g {
        gid = lookup_group(g)?;
    }
    let mut additional: Vec<u32> = match (&name, g) {
        // Supplementary groups come from /etc/group only when no group was given.
        (Some(n), None) => groups
            .iter()
            .filter(|e| e.members.iter().any(|m| m == n))
            .map(|e| e.gid)
            .collect(),
        _ => Vec::new(),
    };
    for g in group_add {
        additional.push(lookup_group(g)?);
    }
    additional.sort_unstable();
    additional.dedup();
    Ok(Resolved {
        uid,
        gid,
        additional_gids: additional,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app,root\naudio:x:29:app\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn names_ids_and_groups() {
        let r = rootfs();
        let root = resolve(r.path(), "", &[]).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        assert_eq!(root.additional_gids, vec![10]);
        let app = resolve(r.path(), "app", &[]).unwrap();
        assert_eq!((app.uid, app.gid), (1000, 1000));
        assert_eq!(app.additional_gids, vec![10, 29]);
        let explicit = resolve(r.path(), "app:wheel", &["audio".into()]).unwrap();
        assert_eq!((explicit.uid, explicit.gid), (1000, 10));
        assert_eq!(explicit.additional_gids, vec![29]);
        let numeric = resolve(r.path(), "4242:4343", &[]).unwrap();
        assert_eq!((numeric.uid, numeric.gid), (4242, 4343));
        let by_uid = resolve(r.path(), "1000", &[]).unwrap();
        assert_eq!(by_uid.gid, 1000);
    }

    #[test]
    fn unknown_names_are_clear_errors() {
        let r = rootfs();
        let e = resolve(r.path(), "nobody-here", &[]).unwrap_err();
        assert!(
            e.contains("nobody-here") && e.contains("/etc/passwd"),
            "{e}"
        );
        let e = resolve(r.path(), "app:nogroup", &[]).unwrap_err();
        assert!(e.contains("nogroup"), "{e}");
    }

    #[test]
    fn a_symlinked_passwd_stays_inside_the_rootfs() {
        let r = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(r.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.path().join("etc/passwd")).unwrap();
        // The host's /etc/passwd has root; inside this rootfs the link resolves
        // to rootfs/etc/passwd itself (a loop) or nothing: no users at all.
        let e = resolve(r.path(), "root", &[]);
        assert!(e.is_err(), "{e:?}");
    }
}
