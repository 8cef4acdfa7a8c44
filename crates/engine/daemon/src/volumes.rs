//! Local volumes: `DATA_ROOT/volumes/<name>/_data` with the volume's
//! metadata beside it in `volume.json` (labels, options, creation time,
//! whether it is anonymous).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What is kept about a volume besides its data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMeta {
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Made for `-v /path` or an image VOLUME, without a name.
    #[serde(default)]
    pub anonymous: bool,
}

/// The volume directory.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

impl Volumes {
    pub fn new(dir: PathBuf) -> Volumes {
        Volumes { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn data(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Creates the volume if missing; returns its metadata.
    pub fn ensure(&self, name: &str, meta: VolumeMeta) -> io::Result<VolumeMeta> {
        if !crate::ids::valid_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid volume name {name:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+"),
            ));
        }
        if let Some(m) = self.get(name) {
            return Ok(m);
        }
        fs::create_dir_all(self.data(name))?;
        let tmp = self.dir.join(name).join(".volume.json.tmp");
        fs::write(&tmp, serde_json::to_vec(&meta).map_err(io::Error::other)?)?;
        fs::rename(&tmp, self.dir.join(name).join("volume.json"))?;
        Ok(meta)
    }

    /// A volume's metadata, if it exists.
    pub fn get(&self, name: &str) -> Option<VolumeMeta> {
        if !crate::ids::valid_name(name) || !self.data(name).is_dir() {
            return None;
        }
        let meta = fs::read(self.dir.join(name).join("volume.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        Some(meta.unwrap_or_default())
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<(String, VolumeMeta)> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, VolumeMeta)> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                self.get(&name).map(|m| (name, m))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Deletes a volume and its data. A volume with mount options is
    /// unmounted first, and never deleted through its mount: that would
    /// delete the device's files (a bind's host directory, an NFS share).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        if self.get(name).is_none() {
            return Err(io::Error::new(io::ErrorKind::NotFound, name.to_string()));
        }
        let data = self.data(name);
        if is_mounted(&data)? {
            nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| io::Error::other(format!("unmount {}: {e}", data.display())))?;
            if is_mounted(&data)? {
                return Err(io::Error::other(format!(
                    "{} is still mounted: unmount it, then remove the volume",
                    data.display()
                )));
            }
        }
        fs::remove_dir_all(self.dir.join(name))
    }

    /// Mounts the volume whose data directory is `source` (a container's
    /// mount source) as its options say, unless it is mounted already or
    /// has no options; any other `source` is left alone. The mount stays
    /// until the volume is removed (dockerd's local driver unmounts when
    /// its last container stops; here a tmpfs volume keeps its files while
    /// the host runs).
    pub fn mount_if_needed(&self, source: &Path) -> io::Result<()> {
        let Some(name) = source
            .strip_prefix(&self.dir)
            .ok()
            .filter(|rest| rest.components().count() == 2 && rest.ends_with("_data"))
            .and_then(|rest| rest.components().next())
            .and_then(|c| c.as_os_str().to_str())
        else {
            return Ok(());
        };
        let Some(meta) = self.get(name) else {
            return Ok(());
        };
        if meta.options.is_empty() || is_mounted(source)? {
            return Ok(());
        }
        mount_with(source, &meta.options).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("mount volume {name} ({}): {e}", describe(&meta.options)),
            )
        })
    }

    /// Bytes used by a volume's data (not following symlinks).
    pub fn size(&self, name: &str) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = fs::read_dir(p) else { return 0 };
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.data(name))
    }
}

/// The keys of the local driver's options (`docker volume create --opt`).
const OPTION_KEYS: [&str; 3] = ["type", "device", "o"];

/// Checks the local driver's options of a new volume: `type` (a filesystem
/// type, or `none` for a bind), `device` (what is mounted) and `o` (mount
/// options, comma-separated), as dockerd's local driver takes them.
pub fn check_options(opts: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(k) = opts.keys().find(|k| !OPTION_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "invalid option key: {k:?}: the local driver takes type, device and o"
        ));
    }
    if opts.is_empty() {
        return Ok(());
    }
    let (Some(kind), Some(device)) = (opts.get("type"), opts.get("device")) else {
        return Err(
            "a volume with options needs both type and device, e.g. --opt type=tmpfs --opt device=tmpfs, or --opt type=none --opt o=bind --opt device=/host/dir"
                .into(),
        );
    };
    let bind = opts
        .get("o")
        .is_some_and(|o| o.split(',').any(|o| o == "bind" || o == "rbind"));
    if bind && !Path::new(device).is_absolute() {
        return Err(format!(
            "device {device:?} of a bind volume must be an absolute path on the host"
        ));
    }
    if bind && !Path::new(device).is_dir() {
        return Err(format!(
            "device {device:?} of a bind volume is not a directory on the host: make it first"
        ));
    }
    if kind.is_empty() || device.is_empty() {
        return Err("type and device must not be empty".into());
    }
    Ok(())
}

fn describe(opts: &BTreeMap<String, String>) -> String {
    OPTION_KEYS
        .iter()
        .filter_map(|k| opts.get(*k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Mounts `opts`'s device at `target`.
fn mount_with(target: &Path, opts: &BTreeMap<String, String>) -> io::Result<()> {
    use nix::mount::MsFlags;
    let list: Vec<String> = opts
        .get("o")
        .map(|o| {
            o.split(',')
                .filter(|o| !o.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let parsed = strato_container::rootfs::parse_options(&list);
    let device = opts.get("device").map(String::as_str).unwrap_or_default();
    let kind = opts.get("type").map(String::as_str).unwrap_or_default();
    let mut flags = parsed.flags;
    if parsed.bind {
        flags |= MsFlags::MS_BIND;
        if parsed.recursive {
            flags |= MsFlags::MS_REC;
        }
    }
    let data = parsed.data.join(",");
    let fstype = (kind != "none" && !parsed.bind).then_some(kind);
    nix::mount::mount(
        Some(device),
        target,
        fstype,
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(io::Error::from)?;
    // A bind takes its flags (ro, nosuid, …) only from a remount.
    let rest = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    if parsed.bind && !rest.is_empty() {
        let remount = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | rest;
        if let Err(e) = nix::mount::mount(None::<&str>, target, None::<&str>, remount, None::<&str>)
        {
            let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
            return Err(io::Error::from(e));
        }
    }
    Ok(())
}

/// Whether `path` is a mount point (a bind of a directory of the same
/// filesystem included), from /proc/self/mountinfo.
fn is_mounted(path: &Path) -> io::Result<bool> {
    let want = escape_mountinfo(&path.display().to_string());
    let table = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(table
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str())))
}

/// `path` as mountinfo writes it: space, tab, newline and backslash in
/// octal escapes.
fn escape_mountinfo(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_remove() {
        let d = tempfile::tempdir().unwrap();
        let v = Volumes::new(d.path().join("volumes"));
        let mut meta = VolumeMeta {
            created_at: "2024-01-01T00:00:00Z".into(),
            ..Default::default()
        };
        meta.labels.insert("a".into(), "b".into());
        v.ensure("data", meta.clone()).unwrap();
        // Existing: kept as it was.
        assert_eq!(v.ensure("data", VolumeMeta::default()).unwrap(), meta);
        fs::write(v.data("data").join("f"), b"12345").unwrap();
        assert_eq!(v.size("data"), 5);
        assert_eq!(v.list().len(), 1);
        assert!(v.ensure("../x", VolumeMeta::default()).is_err());
        assert!(v.get("..").is_none());
        v.remove("data").unwrap();
        assert!(v.list().is_empty());
        assert!(v.remove("data").is_err());
    }

    #[test]
    fn local_driver_options_are_checked() {
        let o = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(check_options(&o(&[])).is_ok());
        assert!(check_options(&o(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m")
        ]))
        .is_ok());
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        assert!(check_options(&o(&[("type", "none"), ("o", "bind"), ("device", &d)])).is_ok());
        for (bad, word) in [
            (o(&[("size", "1g")]), "\"size\""),
            (o(&[("device", "tmpfs")]), "type and device"),
            (
                o(&[("type", "none"), ("o", "bind"), ("device", "rel/dir")]),
                "absolute",
            ),
            (
                o(&[("type", "none"), ("o", "rbind"), ("device", "/no/such/dir")]),
                "/no/such/dir",
            ),
        ] {
            let e = check_options(&bad).unwrap_err();
            assert!(e.contains(word), "{e}");
        }
    }

    #[test]
    fn only_volume_data_directories_are_mounted() {
        let d = tempfile::tempdir().unwrap();
        let v = Volumes::new(d.path().join("volumes"));
        let meta = VolumeMeta {
            options: [("type", "tmpfs"), ("device", "tmpfs")]
                .iter()
                .map(|(k, x)| (k.to_string(), x.to_string()))
                .collect(),
            ..Default::default()
        };
        v.ensure("tv", meta).unwrap();
        // Not a volume's data directory: nothing happens.
        v.mount_if_needed(&d.path().join("elsewhere/_data"))
            .unwrap();
        v.mount_if_needed(&v.dir().join("tv")).unwrap();
        assert!(!is_mounted(&v.data("tv")).unwrap());
        v.mount_if_needed(&v.data("tv")).unwrap();
        assert!(is_mounted(&v.data("tv")).unwrap());
        // Once only.
        v.mount_if_needed(&v.data("tv")).unwrap();
        let table = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let want = escape_mountinfo(&v.data("tv").display().to_string());
        assert_eq!(table.lines().filter(|l| l.contains(&want)).count(), 1);
        v.remove("tv").unwrap();
        assert!(!v.data("tv").exists());
        assert_eq!(escape_mountinfo("a b\\c"), "a\\040b\\134c");
    }
}
