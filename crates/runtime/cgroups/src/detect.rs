//! Finding the cgroup layout: `statfs` on the root, then `/proc/self/mountinfo`.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Controllers the kernel can mount as cgroup v1 hierarchies. Other super
/// options of a `cgroup` mount (`rw`, `xattr`, `release_agent=...`) are not
/// controllers; named hierarchies (`name=systemd`) are kept as well.
const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// The cgroup layout of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v1, possibly hybrid (a controller-less cgroup2 in `unified`).
    V1 {
        /// One entry per mounted v1 hierarchy.
        mounts: Vec<V1Mount>,
        /// The cgroup2 mount point in hybrid mode (`/sys/fs/cgroup/unified`).
        unified: Option<PathBuf>,
    },
    /// Pure cgroup v2: one unified hierarchy.
    V2 {
        /// Where cgroup2 is mounted, normally `/sys/fs/cgroup`.
        mount_point: PathBuf,
    },
}

impl Hierarchy {
    /// True for v1 with a cgroup2 mount beside the controllers.
    pub fn is_hybrid(&self) -> bool {
        matches!(
            self,
            Hierarchy::V1 {
                unified: Some(_),
                ..
            }
        )
    }

    /// The mount point of the v1 hierarchy holding `controller`, if any.
    pub fn v1_mount(&self, controller: &str) -> Option<&V1Mount> {
        match self {
            Hierarchy::V1 { mounts, .. } => mounts
                .iter()
                .find(|m| m.controllers.iter().any(|c| c == controller)),
            Hierarchy::V2 { .. } => None,
        }
    }
}

/// One mounted cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/cpu,cpuacct`.
    pub mount_point: PathBuf,
    /// The cgroup shown at the mount point (mountinfo field 4), `/` unless
    /// the mount is a bind of a sub-cgroup or inside a cgroup namespace.
    pub root: PathBuf,
    /// The co-mounted controllers, e.g. `["cpu", "cpuacct"]`, or a named
    /// hierarchy such as `["name=systemd"]`.
    pub controllers: Vec<String>,
}

/// One line of `/proc/self/mountinfo`, reduced to what cgroup detection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Root of the mount within its filesystem (field 4).
    pub root: PathBuf,
    /// Mount point (field 5), with octal escapes decoded.
    pub mount_point: PathBuf,
    /// Filesystem type after the ` - ` separator, e.g. `cgroup` or `cgroup2`.
    pub fs_type: String,
    /// Per-superblock options (last field), split on commas.
    pub super_options: Vec<String>,
}

/// Parses the text of `/proc/<pid>/mountinfo`.
///
/// Blank lines are skipped; a line without the ` - ` separator or with too
/// few fields is an error naming the line.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountInfo>> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason| Error::Mountinfo {
            line: line.to_owned(),
            reason,
        };
        let (pre, post) = line
            .split_once(" - ")
            .ok_or_else(|| bad("missing ' - ' separator"))?;
        let pre: Vec<&str> = pre.split(' ').collect();
        if pre.len() < 6 {
            return Err(bad("fewer than 6 fields before the separator"));
        }
        let post: Vec<&str> = post.split(' ').collect();
        if post.len() < 3 {
            return Err(bad("fewer than 3 fields after the separator"));
        }
        out.push(MountInfo {
            root: PathBuf::from(unescape(pre[3])),
            mount_point: PathBuf::from(unescape(pre[4])),
            fs_type: post[0].to_owned(),
            super_options: post[2].split(',').map(str::to_owned).collect(),
        });
    }
    Ok(out)
}

/// Decodes the `\ooo` octal escapes the kernel uses for space, tab, newline
/// and backslash in mountinfo paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detects the cgroup layout under `root` (normally `/sys/fs/cgroup`).
///
/// A cgroup2 filesystem at `root` means pure v2; anything else (a tmpfs
/// holding per-controller mounts) is v1 or hybrid, whose hierarchies are
/// read from `/proc/self/mountinfo`.
pub fn detect(root: &Path) -> Result<Hierarchy> {
    let st = nix::sys::statfs::statfs(root).map_err(|source| Error::Statfs {
        path: root.to_owned(),
        source,
    })?;
    let is_cgroup2 = st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC;
    if is_cgroup2 {
        return detect_from(root, true, "");
    }
    let mountinfo_path = Path::new("/proc/self/mountinfo");
    // procfs reports size 0, so read_to_string would start with a tiny
    // buffer and double it read by read: start with room for a host's
    // mounts, which takes one or two reads.
    let mut text = String::with_capacity(16 * 1024);
    std::fs::File::open(mountinfo_path)
        .and_then(|mut f| std::io::Read::read_to_string(&mut f, &mut text))
        .map_err(|source| Error::Read {
            path: mountinfo_path.to_owned(),
            source,
        })?;
    detect_from(root, false, &text)
}

/// The pure part of [`detect`]: decides the layout from whether `root` is a
/// cgroup2 filesystem and from the text of mountinfo.
///
/// Only mounts at or below `root` are considered. A hierarchy mounted twice
/// (same controllers) is listed once, at its first mount point. A root that
/// is not cgroup2 but holds only a cgroup2 mount is treated as v2 there.
pub fn detect_from(root: &Path, root_is_cgroup2: bool, mountinfo: &str) -> Result<Hierarchy> {
    if root_is_cgroup2 {
        return Ok(Hierarchy::V2 {
            mount_point: root.to_owned(),
        });
    }
    let mut mounts: Vec<V1Mount> = Vec::new();
    let mut unified = None;
    for m in parse_mountinfo(mountinfo)? {
        if !m.mount_point.starts_with(root) {
            continue;
        }
        match m.fs_type.as_str() {
            "cgroup" => {
                let controllers: Vec<String> = m
                    .super_options
                    .iter()
                    .filter(|o| V1_CONTROLLERS.contains(&o.as_str()) || o.starts_with("name="))
                    .cloned()
                    .collect();
                if controllers.is_empty() || mounts.iter().any(|x| x.controllers == controllers) {
                    continue;
                }
                mounts.push(V1Mount {
                    mount_point: m.mount_point,
                    root: m.root,
                    controllers,
                });
            }
            "cgroup2" if unified.is_none() => unified = Some(m.mount_point),
            _ => {}
        }
    }
    match (mounts.is_empty(), unified) {
        (false, unified) => Ok(Hierarchy::V1 { mounts, unified }),
        (true, Some(mount_point)) => Ok(Hierarchy::V2 { mount_point }),
        (true, None) => Err(Error::NoHierarchy {
            root: root.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mountinfo of a hybrid host with separately mounted cpu and cpuacct.
    const HYBRID: &str = "\
22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// mountinfo of a classic systemd v1 host with co-mounted controllers.
    const COMOUNTED: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,net_cls,net_prio
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
99 1 0:28 / /mnt/other\\040memory rw,relatime - cgroup cgroup rw,memory
100 25 0:28 /docker/abc /sys/fs/cgroup/memory2 rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn parses_fields_and_escapes() {
        let m = parse_mountinfo(COMOUNTED).unwrap();
        assert_eq!(m.len(), 7);
        assert_eq!(m[0].fs_type, "tmpfs");
        assert_eq!(m[2].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m[2].super_options, ["rw", "cpu", "cpuacct"]);
        assert_eq!(m[5].mount_point, Path::new("/mnt/other memory"));
        assert_eq!(m[6].root, Path::new("/docker/abc"));
    }

    #[test]
    fn optional_fields_do_not_shift_the_fs_type() {
        let line =
            "26 25 0:23 / /x rw shared:10 master:3 unbindable - cgroup2 none rw,nsdelegate\n";
        let m = parse_mountinfo(line).unwrap();
        assert_eq!(m[0].fs_type, "cgroup2");
        assert_eq!(m[0].super_options, ["rw", "nsdelegate"]);
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        let err = parse_mountinfo("1 2 3 / /x rw cgroup").unwrap_err();
        assert!(err.to_string().contains("1 2 3 / /x rw cgroup"), "{err}");
        assert!(parse_mountinfo("1 2 - cgroup cgroup rw").is_err());
        assert!(parse_mountinfo("1 2 3 / /x rw - cgroup").is_err());
        assert!(parse_mountinfo("\n\n").unwrap().is_empty());
    }

    #[test]
    fn unescape_decodes_octal_and_keeps_stray_backslashes() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("a\\9x"), "a\\9x");
        assert_eq!(unescape("end\\04"), "end\\04");
        assert_eq!(unescape("\\"), "\\");
    }

    #[test]
    fn hybrid_host_is_v1_with_unified() {
        let h = detect_from(Path::new("/sys/fs/cgroup"), false, HYBRID).unwrap();
        assert!(h.is_hybrid());
        let Hierarchy::V1 { mounts, unified } = &h else {
            panic!("expected v1, got {h:?}");
        };
        assert_eq!(
            unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        let names: Vec<_> = mounts.iter().map(|m| m.controllers.join(",")).collect();
        assert_eq!(
            names,
            ["cpu", "cpuacct", "cpuset", "memory", "pids", "name=systemd"]
        );
        assert_eq!(
            h.v1_mount("memory").unwrap().mount_point,
            Path::new("/sys/fs/cgroup/memory")
        );
    }

    #[test]
    fn comounted_controllers_and_named_hierarchies() {
        let h = detect_from(Path::new("/sys/fs/cgroup"), false, COMOUNTED).unwrap();
        assert!(!h.is_hybrid());
        let cpu = h.v1_mount("cpuacct").unwrap();
        assert_eq!(cpu.controllers, ["cpu", "cpuacct"]);
        assert_eq!(cpu.mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(
            h.v1_mount("name=systemd").unwrap().mount_point,
            Path::new("/sys/fs/cgroup/systemd")
        );
        // The mount outside the root and the second memory mount are ignored.
        let Hierarchy::V1 { mounts, .. } = &h else {
            panic!("expected v1");
        };
        assert_eq!(mounts.len(), 4);
        assert_eq!(
            h.v1_mount("memory").unwrap().mount_point,
            Path::new("/sys/fs/cgroup/memory")
        );
        assert!(h.v1_mount("freezer").is_none());
    }

    #[test]
    fn cgroup2_root_is_v2() {
        let h = detect_from(Path::new("/sys/fs/cgroup"), true, "garbage").unwrap();
        assert_eq!(
            h,
            Hierarchy::V2 {
                mount_point: "/sys/fs/cgroup".into()
            }
        );
        assert!(h.v1_mount("memory").is_none());
    }

    #[test]
    fn only_a_cgroup2_below_root_is_v2_there() {
        let text = "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let h = detect_from(Path::new("/sys/fs/cgroup"), false, text).unwrap();
        assert_eq!(
            h,
            Hierarchy::V2 {
                mount_point: "/sys/fs/cgroup/unified".into()
            }
        );
    }

    #[test]
    fn nothing_mounted_is_an_error_naming_the_root() {
        let text = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n";
        let err = detect_from(Path::new("/sys/fs/cgroup"), false, text).unwrap_err();
        assert!(err.to_string().contains("/sys/fs/cgroup"), "{err}");
    }

    #[test]
    fn mounts_outside_root_are_ignored() {
        let text = "1 1 0:1 / /sys/fs/cgroupfoo rw - cgroup cgroup rw,memory\n";
        assert!(detect_from(Path::new("/sys/fs/cgroup"), false, text).is_err());
    }
}
