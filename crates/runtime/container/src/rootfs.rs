//! Building the container's filesystem view: mounts, devices, pivot_root, masked
//! and read-only paths. Every effect goes through [`Syscall`].

use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::error::{Error, Result};
use crate::syscall::Syscall;

/// How the container's cgroup is exposed at a `cgroup` mount.
#[derive(Debug, Clone)]
pub enum CgroupView {
    /// cgroup v1: one host directory per hierarchy (named like its mount point,
    /// e.g. "memory" or "cpu,cpuacct"), bind-mounted under a tmpfs.
    V1(Vec<(String, PathBuf)>),
    /// cgroup v2: a fresh cgroup2 mount (shows the cgroup namespace's root).
    V2,
}

/// What mounting a rootfs needs besides the spec.
pub struct RootfsContext<'a> {
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub spec: &'a Spec,
    pub cgroup: &'a CgroupView,
    /// In a new user namespace device nodes can't be created: they are bind-mounted.
    pub userns: bool,
    /// In a user namespace, bind-mount sources are opened by the runtime
    /// outside it (where the host's root may reach them) and arrive as
    /// detached mounts: `(source, recursive)` → the mount's descriptor.
    pub mount_source: Option<&'a OpenMountSource<'a>>,
    /// The container has a mount namespace of its own (new or joined).
    /// Without one (as runc allows) its mounts are made in the host's
    /// namespace beneath a private bind of the rootfs, and the process
    /// enters the rootfs by chroot, not pivot_root.
    pub own_mount_ns: bool,
    /// Puts the process into the container's cgroups, where it was not yet:
    /// called once, before the first cgroup mount (which shows the cgroup
    /// namespace that this call creates), or after the last mount. The
    /// mounts before it overlap with the runtime making the cgroups.
    pub enter_cgroups: Option<&'a EnterCgroups<'a>>,
}

/// Enters the container's cgroups and makes its cgroup namespace.
pub type EnterCgroups<'a> = dyn Fn() -> Result<()> + 'a;

/// Opens a bind-mount source `(path, recursive)` as a detached mount.
pub type OpenMountSource<'a> = dyn Fn(&Path, bool) -> Result<std::os::fd::OwnedFd> + 'a;

/// Attaches the detached mount `tree` (from `open_tree`) at `dest`.
fn move_mount_to(tree: &std::os::fd::OwnedFd, dest: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let to = std::ffi::CString::new(dest.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: both paths are NUL-terminated strings alive for the call; the
    // descriptor is open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Parsed `mounts[].options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    pub bind: bool,
    pub recursive: bool,
    /// `tmpcopyup`: fill a tmpfs with what it covers.
    pub copy_up: bool,
    /// `rro`, `rnosuid`, …: MOUNT_ATTR_* bits to set and clear on the
    /// whole mount tree (mount_setattr with AT_RECURSIVE).
    pub rec_set: u64,
    pub rec_clear: u64,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
            bind: false,
            recursive: false,
            copy_up: false,
            rec_set: 0,
            rec_clear: 0,
        }
    }
}

/// Copies the contents of directory `from` into `to`, keeping modes, owners
/// and symlinks (tmpcopyup). Files other than regular ones, directories and
/// symlinks (device nodes, sockets) are skipped.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let top = std::fs::metadata(from)?;
    std::os::unix::fs::lchown(to, Some(top.uid()), Some(top.gid()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(top.mode() & 0o7777))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let md = std::fs::symlink_metadata(&src)?;
        let ft = md.file_type();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
            continue;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst)?;
        } else {
            continue;
        }
        std::os::unix::fs::lchown(&dst, Some(md.uid()), Some(md.gid()))?;
        if !ft.is_symlink() {
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
        }
    }
    Ok(())
}

/// Splits mount(8)-style options into flags, propagation changes and fs data.
pub fn parse_options(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "bind" => {
                out.bind = true;
                continue;
            }
            "rbind" => {
                out.bind = true;
                out.recursive = true;
                continue;
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                out.propagation
                    .push(propagation_flags(opt).unwrap_or(MsFlags::MS_PRIVATE));
                continue;
            }
            "tmpcopyup" => {
                out.copy_up = true;
                continue;
            }
            o if recursive_attr(o).is_some() => {
                let (set, clear) = recursive_attr(o).unwrap_or_default();
                out.rec_set = (out.rec_set & !clear) | set;
                out.rec_clear = (out.rec_clear & !set) | clear;
                continue;
            }
            // Accepted by runc and containerd, meaningless here.
            "idmap" | "ridmap" => continue,
            _ => {
                out.data.push(opt.clone());
                continue;
            }
        };
        out.flags |= set;
        out.flags &= !clear;
    }
    out
}

/// The mount(2) flags of a propagation name (`rslave` → MS_SLAVE|MS_REC).
pub fn propagation_flags(name: &str) -> Option<MsFlags> {
    let (rec, base) = match name.strip_prefix('r') {
        Some(b) if !b.is_empty() => (MsFlags::MS_REC, b),
        _ => (MsFlags::empty(), name),
    };
    let f = match base {
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return None,
    };
    Some(f | rec)
}

/// A mount destination as a path inside the container. One given with the
/// rootfs' host path in front (`/bundle/rootfs/mnt`) means the path below it
/// (`/mnt`), as runc reads it; symlinks are still resolved inside the rootfs.
pub fn container_path(rootfs: &Path, destination: &Path) -> PathBuf {
    match destination.strip_prefix(rootfs) {
        Ok(rest) if rootfs != Path::new("/") => Path::new("/").join(rest),
        _ => destination.to_path_buf(),
    }
}

/// Joins `unsafe_path` to `root` resolving symlinks as if `root` were `/`, so no
/// symlink inside the rootfs can point a mount outside it.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf> {
    secure_join_stat(root, unsafe_path).map(|(p, _)| p)
}

/// [`secure_join`], with what resolving learnt of the result: its
/// `lstat(2)` (never a symlink), or `None` when it does not exist or was
/// not looked at (`/`, a path ending in `..`).
fn secure_join_stat(
    root: &Path,
    unsafe_path: &Path,
) -> Result<(PathBuf, Option<std::fs::Metadata>)> {
    let mut last = None;
    let mut pending: Vec<std::ffi::OsString> = unsafe_path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            last = None;
            continue;
        }
        let candidate: PathBuf = std::iter::once(root.as_os_str())
            .chain(resolved.iter().map(|s| s.as_os_str()))
            .chain(std::iter::once(part.as_os_str()))
            .collect();
        match std::fs::symlink_metadata(&candidate) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(Error::Init(format!(
                        "too many symlinks resolving {} in the rootfs",
                        unsafe_path.display()
                    )));
                }
                let target = std::fs::read_link(&candidate)
                    .map_err(|e| Error::io(format!("readlink {}", candidate.display()), e))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
                // A link to `/` resolves to the root, not looked at.
                last = None;
            }
            md => {
                last = md.ok();
                resolved.push(part)
            }
        }
    }
    let path = std::iter::once(root.as_os_str())
        .chain(resolved.iter().map(|s| s.as_os_str()))
        .collect();
    Ok((path, last))
}

fn mnt_err(what: &str, target: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{what} {}", target.display()), e)
}

/// Mounts everything the spec asks for under the rootfs, before pivot_root.
pub fn prepare(sys: &dyn Syscall, ctx: &RootfsContext) -> Result<()> {
    let linux = ctx.spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .unwrap_or("rslave");
    let prop_flags = propagation_flags(prop).ok_or_else(|| {
        Error::Init(format!(
            "linux.rootfsPropagation {prop:?} is not one of private, shared, slave, unbindable (r-prefixed too)"
        ))
    })?;
    // Keep our mounts from propagating back to the host. An unbindable
    // root is made so only after pivot_root (in `finish`): the rootfs bind
    // below would fail on an unbindable tree.
    let before_pivot = if prop_flags.contains(MsFlags::MS_UNBINDABLE) {
        MsFlags::MS_SLAVE
    } else {
        prop_flags
    };
    // In the host's mount namespace the host's own propagation stays as
    // it is; the rootfs bind is made private below instead.
    if ctx.own_mount_ns {
        sys.mount(
            None,
            Path::new("/"),
            None,
            before_pivot | MsFlags::MS_REC,
            None,
        )
        .map_err(|e| mnt_err("set propagation of", Path::new("/"), e))?;
    }
    // A shared root (rootfsPropagation rshared, for shared binds): the mount
    // holding the rootfs is made private, so the rootfs bind below is not
    // shared and pivot_root accepts it (runc does the same).
    if ctx.own_mount_ns && prop_flags.contains(MsFlags::MS_SHARED) {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::io("read /proc/self/mountinfo", e))?;
        if let Some(mp) = mount_point_of(&text, ctx.rootfs) {
            sys.mount(None, &mp, None, MsFlags::MS_PRIVATE, None)
                .map_err(|e| mnt_err("make private", &mp, e))?;
        }
    }
    let mut mounts = ctx.spec.mounts().clone().unwrap_or_default();
    match mounts
        .iter()
        .position(|m| m.destination() == Path::new("/"))
    {
        // The root filesystem itself, mounted here in the container's mount
        // namespace (the host's mount table never holds it).
        Some(i) => mount_root(sys, ctx, &mounts.remove(i))?,
        // pivot_root needs the new root to be a mount point.
        None => sys
            .mount(
                Some(ctx.rootfs),
                ctx.rootfs,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(|e| mnt_err("bind mount rootfs", ctx.rootfs, e))?,
    }
    if !ctx.own_mount_ns {
        // Nothing mounted beneath it reaches the host's other mounts.
        sys.mount(
            None,
            ctx.rootfs,
            None,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None,
        )
        .map_err(|e| mnt_err("make private", ctx.rootfs, e))?;
    }
    // Read-only filesystems are mounted writable and made read-only at the
    // end, so mounts (and device nodes) can still be made beneath them.
    let mut read_only = Vec::new();
    let mut recursive_attrs = Vec::new();
    let mut enter_cgroups = ctx.enter_cgroups;
    for m in &mounts {
        if matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) {
            if let Some(enter) = enter_cgroups.take() {
                enter()?;
            }
        }
        mount_one(sys, ctx, m, &mut read_only)?;
        let o = parse_options(m.options().as_deref().unwrap_or(&[]));
        if o.rec_set != 0 || o.rec_clear != 0 {
            let dest = secure_join(ctx.rootfs, &container_path(ctx.rootfs, m.destination()))?;
            recursive_attrs.push((dest, o.rec_set, o.rec_clear));
        }
    }
    // Device nodes are made inside the devices cgroup, as before.
    if let Some(enter) = enter_cgroups {
        enter()?;
    }
    let dev_mounted = mounts.iter().any(|m| m.destination() == Path::new("/dev"));
    // Directories device nodes went into: (in the container, on the host).
    let mut parents = Vec::new();
    if dev_mounted {
        for d in default_devices() {
            create_device(sys, ctx, &d, &mut parents)?;
        }
        default_symlinks(sys, ctx.rootfs)?;
    }
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        create_device(sys, ctx, d, &mut parents)?;
    }
    if mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev/pts"))
    {
        let ptmx = ctx.rootfs.join("dev/ptmx");
        match sys.symlink(Path::new("pts/ptmx"), &ptmx) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&ptmx);
                sys.symlink(Path::new("pts/ptmx"), &ptmx)
            }
            r => r,
        }
        .map_err(|e| mnt_err("symlink", &ptmx, e))?;
    }
    // A bind remount changes only this mount's flags (allowed in a user
    // namespace, unlike remounting a superblock shared with the host).
    for dest in read_only.iter().rev() {
        let keep = sys.mount_flags(dest).unwrap_or(MsFlags::empty());
        sys.mount(
            None,
            dest,
            None,
            keep | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None,
        )
        .map_err(|e| mnt_err("remount read-only", dest, e))?;
    }
    // rro, rnosuid & co.: the attributes of a whole mount tree, last (like
    // read-only remounts, so nothing below was blocked while mounting).
    for (dest, set, clear) in recursive_attrs.iter().rev() {
        set_tree_attrs(dest, *set, *clear)
            .map_err(|e| mnt_err("set recursive mount attributes (mount_setattr) of", dest, e))?;
    }
    Ok(())
}

/// Mounts the spec's root mount (the first entry with destination `/`, a
/// strato extension in the manner of containerd's rootfs mounts: e.g. an
/// overlay of image layers) at `root.path`, which must be an existing
/// directory. An overlay's `volatile` option is dropped on kernels without
/// it (before 5.10), which then mount the layer durable.
fn mount_root(sys: &dyn Syscall, ctx: &RootfsContext, m: &Mount) -> Result<()> {
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("none");
    let source = m.source().as_deref();
    if opts.bind {
        let source = source.ok_or_else(|| {
            Error::Init("the root mount (destination \"/\") is a bind without a source".into())
        })?;
        let rec = if opts.recursive {
            MsFlags::MS_REC
        } else {
            MsFlags::empty()
        };
        return sys
            .mount(Some(source), ctx.rootfs, None, MsFlags::MS_BIND | rec, None)
            .map_err(|e| mnt_err("bind mount rootfs", ctx.rootfs, e));
    }
    let mount = |data: &[String]| {
        let data = (!data.is_empty()).then(|| data.join(","));
        sys.mount(source, ctx.rootfs, Some(typ), opts.flags, data.as_deref())
    };
    match mount(&opts.data) {
        Err(e)
            if typ == "overlay"
                && e.raw_os_error() == Some(libc::EINVAL)
                && opts.data.iter().any(|d| d == "volatile") =>
        {
            let durable: Vec<String> = opts
                .data
                .iter()
                .filter(|d| *d != "volatile")
                .cloned()
                .collect();
            mount(&durable)
        }
        other => other,
    }
    .map_err(|e| {
        mnt_err(
            &format!("mount the root filesystem ({typ}) at"),
            ctx.rootfs,
            e,
        )
    })
}

/// `mount_setattr(AT_RECURSIVE)`: sets and clears MOUNT_ATTR_* on every
/// mount of the tree at `dest`.
fn set_tree_attrs(dest: &Path, set: u64, clear: u64) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let path = std::ffi::CString::new(dest.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `path` is NUL-terminated and `attr` a mount_attr of the size
    // passed, both alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The MOUNT_ATTR_* bits a recursive option (`rro`, `rnosuid`, …) sets and
/// clears; `None` for other options.
fn recursive_attr(opt: &str) -> Option<(u64, u64)> {
    const RDONLY: u64 = 0x1;
    const NOSUID: u64 = 0x2;
    const NODEV: u64 = 0x4;
    const NOEXEC: u64 = 0x8;
    const ATIME_MASK: u64 = 0x70;
    const NOATIME: u64 = 0x10;
    const STRICTATIME: u64 = 0x20;
    const NODIRATIME: u64 = 0x80;
    Some(match opt {
        "rro" => (RDONLY, 0),
        "rrw" => (0, RDONLY),
        "rnosuid" => (NOSUID, 0),
        "rsuid" => (0, NOSUID),
        "rnodev" => (NODEV, 0),
        "rdev" => (0, NODEV),
        "rnoexec" => (NOEXEC, 0),
        "rexec" => (0, NOEXEC),
        "rnodiratime" => (NODIRATIME, 0),
        "rdiratime" => (0, NODIRATIME),
        // The atime modes replace each other: clear the field, set one.
        "rrelatime" => (0, ATIME_MASK),
        "rnoatime" => (NOATIME, ATIME_MASK),
        "rstrictatime" => (STRICTATIME, ATIME_MASK),
        _ => return None,
    })
}

fn mount_one(
    sys: &dyn Syscall,
    ctx: &RootfsContext,
    m: &Mount,
    read_only: &mut Vec<PathBuf>,
) -> Result<()> {
    let destination = container_path(ctx.rootfs, m.destination());
    // What is at the destination now (lstat, learnt while resolving it).
    let (dest, dest_md) = secure_join_stat(ctx.rootfs, &destination)?;
    let is_dir = dest_md.as_ref().is_some_and(|md| md.is_dir());
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("none");
    // procfs and sysfs go on real directories only: a symlink in the image
    // must not redirect them (e.g. over a path the container can write).
    if matches!(typ, "proc" | "sysfs") {
        let literal = ctx
            .rootfs
            .join(destination.strip_prefix("/").unwrap_or(&destination));
        if literal != dest || dest_md.is_some() && !is_dir {
            return Err(Error::Init(format!(
                "{typ} must be mounted on ordinary directory: {} is a symlink or not a directory in the rootfs",
                m.destination().display()
            )));
        }
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(sys, ctx, &dest, &opts);
    }
    let data = (!opts.data.is_empty()).then(|| opts.data.join(","));
    if opts.bind || typ == "bind" {
        let src = m.source().as_ref().ok_or_else(|| {
            Error::Init(format!(
                "bind mount {} has no source",
                m.destination().display()
            ))
        })?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            ctx.bundle.join(src)
        };
        let tree = match ctx.mount_source {
            Some(open) => Some(open(&src, opts.recursive)?),
            None => None,
        };
        let md = match &tree {
            Some(t) => t
                .try_clone()
                .map(std::fs::File::from)
                .and_then(|f| f.metadata()),
            None => std::fs::metadata(&src),
        }
        .map_err(|e| {
            Error::io(
                format!(
                    "bind mount source {} for {}",
                    src.display(),
                    m.destination().display()
                ),
                e,
            )
        })?;
        if md.is_dir() {
            if !is_dir {
                sys.mkdir_all(&dest, 0o755)
                    .map_err(|e| mnt_err("create mount point", &dest, e))?;
            }
        } else if dest_md.is_none() {
            // Only a missing file is made: opening an image's file (an
            // overlay root's /etc/hosts) to create it would copy it up.
            if let Some(parent) = dest.parent() {
                sys.mkdir_all(parent, 0o755)
                    .map_err(|e| mnt_err("create mount point", parent, e))?;
            }
            sys.touch(&dest)
                .map_err(|e| mnt_err("create mount point", &dest, e))?;
        }
        let mut flags = MsFlags::MS_BIND;
        if opts.recursive {
            flags |= MsFlags::MS_REC;
        }
        match &tree {
            Some(t) => move_mount_to(t, &dest),
            None => sys.mount(Some(&src), &dest, None, flags, None),
        }
        .map_err(|e| mnt_err(&format!("bind mount {} on", src.display()), &dest, e))?;
        drop(tree);
        let extra = opts.flags & !MsFlags::MS_REMOUNT;
        if !extra.is_empty() {
            let keep = sys.mount_flags(&dest).unwrap_or(MsFlags::empty());
            sys.mount(
                None,
                &dest,
                None,
                flags | MsFlags::MS_REMOUNT | extra | keep,
                None,
            )
            .map_err(|e| mnt_err("remount", &dest, e))?;
        }
    } else {
        let existed = dest_md.is_some();
        if !is_dir {
            sys.mkdir_all(&dest, 0o755)
                .map_err(|e| mnt_err("create mount point", &dest, e))?;
        }
        let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
        let flags = opts.flags - MsFlags::MS_RDONLY;
        // tmpcopyup: what the tmpfs covers is copied into it, read through a
        // descriptor of the directory taken before it is covered.
        let copy_from = if typ == "tmpfs" && opts.copy_up && existed {
            Some(std::fs::File::open(&dest).map_err(|e| mnt_err("open for tmpcopyup", &dest, e))?)
        } else {
            None
        };
        // A tmpfs without mode= keeps the mode of the directory it covers
        // (one the runtime just made has none to keep: tmpfs' own 1777).
        let data = if typ == "tmpfs" && existed && !opts.data.iter().any(|d| d.starts_with("mode="))
        {
            use std::os::unix::fs::PermissionsExt;
            // The destination is no symlink (it was resolved): its lstat is
            // its stat.
            match &dest_md {
                Some(md) => {
                    let mode = format!("mode={:o}", md.permissions().mode() & 0o7777);
                    Some(match data {
                        Some(d) => format!("{d},{mode}"),
                        None => mode,
                    })
                }
                None => data,
            }
        } else {
            data
        };
        let res = sys.mount(Some(&source), &dest, Some(typ), flags, data.as_deref());
        if let (Ok(()), Some(dir)) = (&res, &copy_from) {
            use std::os::fd::AsRawFd;
            // /proc is still the host's here: the magic link reaches the
            // covered directory.
            let from = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
            copy_tree(&from, &dest)
                .map_err(|e| mnt_err("tmpcopyup: copy the covered directory into", &dest, e))?;
        }
        drop(copy_from);
        match res {
            Ok(()) if opts.flags.contains(MsFlags::MS_RDONLY) => read_only.push(dest.clone()),
            Ok(()) => {}
            // sysfs can't be mounted in a user namespace without its own network
            // namespace: show the host's, read-only, like runc does.
            Err(e) if typ == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
                sys.mount(
                    Some(Path::new("/sys")),
                    &dest,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .map_err(|e| mnt_err("bind mount /sys on", &dest, e))?;
                let keep = sys.mount_flags(&dest).unwrap_or(MsFlags::empty());
                sys.mount(
                    None,
                    &dest,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep,
                    None,
                )
                .map_err(|e| mnt_err("remount", &dest, e))?;
            }
            Err(e) => return Err(mnt_err(&format!("mount {typ} on"), &dest, e)),
        }
    }
    for p in &opts.propagation {
        sys.mount(None, &dest, None, *p, None)
            .map_err(|e| mnt_err("set propagation of", &dest, e))?;
    }
    Ok(())
}

fn mount_cgroup(
    sys: &dyn Syscall,
    ctx: &RootfsContext,
    dest: &Path,
    opts: &MountOptions,
) -> Result<()> {
    sys.mkdir_all(dest, 0o755)
        .map_err(|e| mnt_err("create mount point", dest, e))?;
    let flags = opts.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    match ctx.cgroup {
        CgroupView::V2 => sys
            .mount(
                Some(Path::new("cgroup2")),
                dest,
                Some("cgroup2"),
                flags,
                None,
            )
            .map_err(|e| mnt_err("mount cgroup2 on", dest, e)),
        CgroupView::V1(hierarchies) => {
            let base = flags & !MsFlags::MS_RDONLY;
            sys.mount(
                Some(Path::new("tmpfs")),
                dest,
                Some("tmpfs"),
                base,
                Some("mode=755"),
            )
            .map_err(|e| mnt_err("mount tmpfs on", dest, e))?;
            for (name, host) in hierarchies {
                let target = dest.join(name);
                sys.mkdir_all(&target, 0o755)
                    .map_err(|e| mnt_err("create mount point", &target, e))?;
                sys.mount(
                    Some(host),
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .map_err(|e| mnt_err(&format!("bind mount {} on", host.display()), &target, e))?;
                sys.mount(
                    None,
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
                    None,
                )
                .map_err(|e| mnt_err("remount", &target, e))?;
                // Co-mounted controllers ("cpu,cpuacct") are reachable by each name.
                if name.contains(',') {
                    for part in name.split(',') {
                        let link = dest.join(part);
                        sys.symlink(Path::new(name), &link)
                            .map_err(|e| mnt_err("symlink", &link, e))?;
                    }
                }
            }
            if flags.contains(MsFlags::MS_RDONLY) {
                sys.mount(
                    None,
                    dest,
                    None,
                    MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base,
                    Some("mode=755"),
                )
                .map_err(|e| mnt_err("remount", dest, e))?;
            }
            Ok(())
        }
    }
}

/// The devices every container gets when its /dev is a fresh mount.
pub fn default_devices() -> Vec<LinuxDevice> {
    let dev = |path: &str, major: i64, minor: i64| {
        let mut d = LinuxDevice::default();
        d.set_path(PathBuf::from(path));
        d.set_typ(LinuxDeviceType::C);
        d.set_major(major);
        d.set_minor(minor);
        d.set_file_mode(Some(0o666));
        d.set_uid(Some(0));
        d.set_gid(Some(0));
        d
    };
    vec![
        dev("/dev/null", 1, 3),
        dev("/dev/zero", 1, 5),
        dev("/dev/full", 1, 7),
        dev("/dev/random", 1, 8),
        dev("/dev/urandom", 1, 9),
        dev("/dev/tty", 5, 0),
    ]
}

/// Creates device node `d` (in a user namespace: binds the host's).
/// `parents` caches the directories resolved and made for earlier nodes:
/// only the directory is resolved inside the rootfs, since mknod never
/// follows a symlink at the node's own name (an existing entry is replaced).
fn create_device(
    sys: &dyn Syscall,
    ctx: &RootfsContext,
    d: &LinuxDevice,
    parents: &mut Vec<(PathBuf, PathBuf)>,
) -> Result<()> {
    let dest = match (d.path().parent(), d.path().file_name()) {
        (Some(dir), Some(name)) => {
            let host = match parents.iter().find(|(c, _)| c == dir) {
                Some((_, host)) => host.clone(),
                None => {
                    let (host, md) = secure_join_stat(ctx.rootfs, dir)?;
                    if !md.is_some_and(|md| md.is_dir()) {
                        sys.mkdir_all(&host, 0o755)
                            .map_err(|e| mnt_err("create directory", &host, e))?;
                    }
                    parents.push((dir.to_path_buf(), host.clone()));
                    host
                }
            };
            host.join(name)
        }
        // `/`, or a path ending in `..`: resolved as a whole.
        _ => {
            let dest = secure_join(ctx.rootfs, d.path())?;
            if let Some(parent) = dest.parent() {
                sys.mkdir_all(parent, 0o755)
                    .map_err(|e| mnt_err("create directory", parent, e))?;
            }
            dest
        }
    };
    if ctx.userns {
        if std::fs::symlink_metadata(&dest).is_ok() {
            let _ = std::fs::remove_file(&dest);
        }
        sys.touch(&dest)
            .map_err(|e| mnt_err("create device mount point", &dest, e))?;
        return sys
            .mount(Some(d.path()), &dest, None, MsFlags::MS_BIND, None)
            .map_err(|e| {
                mnt_err(
                    &format!("bind mount device {} on", d.path().display()),
                    &dest,
                    e,
                )
            });
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::Init(format!(
                "linux.devices: {} has type \"a\", which is only valid in cgroup rules",
                d.path().display()
            )))
        }
    };
    let perm = Mode::from_bits_truncate(d.file_mode().unwrap_or(0o666) & 0o7777);
    let dev = nix::sys::stat::makedev(d.major() as u64, d.minor() as u64);
    match sys.mknod(&dest, kind, perm, dev) {
        // Something is there already (from the image, a symlink): replaced.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&dest);
            sys.mknod(&dest, kind, perm, dev)
        }
        r => r,
    }
    .map_err(|e| mnt_err("mknod", &dest, e))?;
    sys.chown(&dest, d.uid(), d.gid())
        .map_err(|e| mnt_err("chown", &dest, e))
}

fn default_symlinks(sys: &dyn Syscall, rootfs: &Path) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "dev/core"));
    }
    for (target, link) in links {
        let link = rootfs.join(link);
        match sys.symlink(Path::new(target), &link) {
            // Whatever is there already is kept.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            r => r.map_err(|e| mnt_err("symlink", &link, e))?,
        }
    }
    Ok(())
}

/// The mount point (from mountinfo text) that holds `path`: the longest
/// mount point that is `path` or one of its ancestors.
fn mount_point_of(mountinfo: &str, path: &Path) -> Option<PathBuf> {
    let unescape = |s: &str| {
        let mut out = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' {
                let oct: String = (0..3).filter_map(|_| chars.next()).collect();
                match u8::from_str_radix(&oct, 8) {
                    Ok(b) => out.push(b as char),
                    Err(_) => {
                        out.push(c);
                        out.push_str(&oct);
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(|m| PathBuf::from(unescape(m))))
        .filter(|m| path.starts_with(m))
        .max_by_key(|m| m.as_os_str().len())
}

/// Makes the rootfs the root: `pivot_root(".", ".")` then detaches the old root.
pub fn pivot(sys: &dyn Syscall, rootfs: &Path) -> Result<()> {
    sys.chdir(rootfs).map_err(|e| mnt_err("chdir", rootfs, e))?;
    let dot = Path::new(".");
    sys.pivot_root(dot, dot)
        .map_err(|e| mnt_err("pivot_root into", rootfs, e))?;
    // The old root is stacked under the new one; make sure unmounting it can't
    // propagate to the host, then detach it.
    sys.mount(None, dot, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)
        .map_err(|e| mnt_err("make old root slave", dot, e))?;
    sys.umount2(dot, MntFlags::MNT_DETACH)
        .map_err(|e| mnt_err("unmount old root", dot, e))?;
    sys.chdir(Path::new("/"))
        .map_err(|e| mnt_err("chdir", Path::new("/"), e))
}

/// Enters the rootfs without a mount namespace of its own: `chroot`, as
/// runc does (pivot_root would move the host's own root).
pub fn chroot_into(sys: &dyn Syscall, rootfs: &Path) -> Result<()> {
    sys.chdir(rootfs).map_err(|e| mnt_err("chdir", rootfs, e))?;
    sys.chroot(Path::new("."))
        .map_err(|e| mnt_err("chroot into", rootfs, e))?;
    sys.chdir(Path::new("/"))
        .map_err(|e| mnt_err("chdir", Path::new("/"), e))
}

/// After pivot_root: sysctls, masked paths, read-only paths, read-only root.
pub fn finish(sys: &dyn Syscall, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    // Sysctls first: /proc/sys becomes read-only below.
    let mut sysctls: Vec<_> = linux
        .and_then(|l| l.sysctl().clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    sysctls.sort();
    for (key, value) in sysctls {
        if key.is_empty() || key.contains("..") || key.starts_with(['.', '/']) {
            return Err(Error::Init(format!(
                "linux.sysctl key {key:?} is not valid"
            )));
        }
        // sysctl(8) notation: '.' separates levels, '/' stands for a '.' in a name.
        let rel: String = key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect();
        let path = PathBuf::from("/proc/sys").join(rel);
        sys.write(&path, value.as_bytes())
            .map_err(|e| Error::io(format!("set sysctl {key}={value} ({})", path.display()), e))?;
    }
    let mut masked: Vec<&String> = Vec::new();
    // Masked directories share one read-only tmpfs (one mount, one device):
    // the first gets it, the others a bind of it.
    let mut shared_tmpfs: Option<PathBuf> = None;
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        if masked.contains(&p) {
            continue;
        }
        masked.push(p);
        mask_path(sys, Path::new(p), &mut shared_tmpfs)?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly_path(sys, Path::new(p))?;
    }
    if let Some(prop) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        if let Some(f) = propagation_flags(prop) {
            sys.mount(None, Path::new("/"), None, f, None)
                .map_err(|e| mnt_err("set propagation of", Path::new("/"), e))?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let root = Path::new("/");
        let keep = sys.mount_flags(root).unwrap_or(MsFlags::empty());
        sys.mount(
            None,
            root,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep,
            None,
        )
        .map_err(|e| mnt_err("remount read-only", root, e))?;
    }
    Ok(())
}

fn mask_path(sys: &dyn Syscall, path: &Path, shared_tmpfs: &mut Option<PathBuf>) -> Result<()> {
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(_) => return Ok(()),
    };
    let res = if md.is_dir() {
        match shared_tmpfs {
            // A bind keeps the read-only flag of the mount it copies.
            Some(first) => sys.mount(Some(first), path, None, MsFlags::MS_BIND, None),
            None => {
                let res = sys.mount(
                    Some(Path::new("tmpfs")),
                    path,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    None,
                );
                if res.is_ok() {
                    *shared_tmpfs = Some(path.to_path_buf());
                }
                res
            }
        }
    } else {
        sys.mount(
            Some(Path::new("/dev/null")),
            path,
            None,
            MsFlags::MS_BIND,
            None,
        )
    };
    res.map_err(|e| mnt_err("mask", path, e))
}

fn readonly_path(sys: &dyn Syscall, path: &Path) -> Result<()> {
    // A missing path has nothing to protect (as in runc).
    match sys.mount(
        Some(path),
        path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    ) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        r => r.map_err(|e| mnt_err("bind mount", path, e))?,
    }
    let keep = sys.mount_flags(path).unwrap_or(MsFlags::empty());
    sys.mount(
        None,
        path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC | keep,
        None,
    )
    .map_err(|e| mnt_err("remount read-only", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::{Call, Recorder};

    fn opts(list: &[&str]) -> MountOptions {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert!(!o.bind);
        let o = opts(&["rbind", "ro", "rprivate"]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        let o = opts(&["ro", "rw"]);
        assert_eq!(o.flags, MsFlags::empty());
    }

    #[test]
    fn propagation_names() {
        assert_eq!(
            propagation_flags("rslave"),
            Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)
        );
        assert_eq!(propagation_flags("shared"), Some(MsFlags::MS_SHARED));
        assert_eq!(propagation_flags("bogus"), None);
    }

    #[test]
    fn secure_join_keeps_symlinks_inside() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", r.join("a/up")).unwrap();
        std::os::unix::fs::symlink("b", r.join("a/rel")).unwrap();
        assert_eq!(
            secure_join(r, Path::new("/abs/passwd")).unwrap(),
            r.join("etc/passwd")
        );
        assert_eq!(secure_join(r, Path::new("/a/up/x")).unwrap(), r.join("x"));
        assert_eq!(secure_join(r, Path::new("/../../x")).unwrap(), r.join("x"));
        assert_eq!(
            secure_join(r, Path::new("/a/rel/c")).unwrap(),
            r.join("a/b/c")
        );
    }

    #[test]
    fn secure_join_stat_reports_what_is_at_the_result() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/a", r.join("l")).unwrap();
        let (p, md) = secure_join_stat(r, Path::new("/l/b")).unwrap();
        assert_eq!(p, r.join("a/b"));
        assert!(md.unwrap().is_dir());
        let (p, md) = secure_join_stat(r, Path::new("/a/missing")).unwrap();
        assert_eq!(p, r.join("a/missing"));
        assert!(md.is_none());
        // Popped to a directory that was not looked at itself.
        assert!(secure_join_stat(r, Path::new("/a/b/.."))
            .unwrap()
            .1
            .is_none());
    }

    #[test]
    fn device_directories_resolve_inside_the_rootfs_once() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir(r.join("dev")).unwrap();
        // A symlink in the image may not put a node outside the rootfs.
        std::os::unix::fs::symlink("/etc", r.join("dev/net")).unwrap();
        let spec = spec_with(
            r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/dev","type":"tmpfs","source":"tmpfs"}],
              "linux":{"devices":[{"path":"/dev/net/tun","type":"c","major":10,"minor":200},
                                  {"path":"/dev/fuse","type":"c","major":10,"minor":229}]}}"#,
        );
        let rec = Recorder::default();
        prepare(&rec, &context(r, &spec, &CgroupView::V2, false)).unwrap();
        let calls = rec.calls();
        let nodes: Vec<_> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Mknod(p, ..) => Some(p.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(nodes.len(), 8, "{nodes:?}");
        assert!(nodes.contains(&r.join("dev/null")));
        assert!(nodes.contains(&r.join("etc/tun")), "{nodes:?}");
        assert!(nodes.contains(&r.join("dev/fuse")));
        // /dev exists: no directory is made for it; the symlink's target is.
        let dirs: Vec<_> = calls
            .iter()
            .filter_map(|c| match c {
                Call::MkdirAll(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(dirs, vec![r.join("etc")]);
    }

    #[test]
    fn secure_join_stops_symlink_loops() {
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("loop", root.path().join("loop")).unwrap();
        assert!(secure_join(root.path(), Path::new("/loop/x")).is_err());
    }

    /// A rootfs context whose bundle is the rootfs directory itself.
    fn context<'a>(
        root: &'a Path,
        spec: &'a Spec,
        cgroup: &'a CgroupView,
        userns: bool,
    ) -> RootfsContext<'a> {
        RootfsContext {
            rootfs: root,
            bundle: root,
            spec,
            cgroup,
            userns,
            mount_source: None,
            own_mount_ns: true,
            enter_cgroups: None,
        }
    }

    #[test]
    fn without_a_mount_namespace_the_host_root_is_left_alone_and_the_rootfs_is_private() {
        let root = tempfile::tempdir().unwrap();
        let spec = spec_with(
            r#"{"ociVersion":"1.0.2","mounts":[
                {"destination":"/proc","type":"proc","source":"proc"}
            ]}"#,
        );
        let rec = Recorder::default();
        let ctx = RootfsContext {
            own_mount_ns: false,
            ..context(root.path(), &spec, &CgroupView::V2, false)
        };
        prepare(&rec, &ctx).unwrap();
        let calls = rec.calls();
        assert!(
            !calls
                .iter()
                .any(|c| matches!(c, Call::Mount { target, .. } if target == Path::new("/"))),
            "the host's root propagation is not touched: {calls:?}"
        );
        assert!(matches!(&calls[0], Call::Mount { target, flags, .. }
            if target == root.path() && flags.contains(MsFlags::MS_BIND)));
        assert!(matches!(&calls[1], Call::Mount { target, flags, .. }
            if target == root.path() && *flags == MsFlags::MS_PRIVATE | MsFlags::MS_REC));
        let rec = Recorder::default();
        chroot_into(&rec, root.path()).unwrap();
        assert_eq!(
            rec.calls(),
            [
                Call::Chdir(root.path().to_path_buf()),
                Call::Chroot(".".into()),
                Call::Chdir("/".into())
            ]
        );
    }

    /// The calls recorded when `enter_cgroups` ran, for each prepare of
    /// `spec`'s mounts.
    fn entered_after(spec: &Spec) -> (Vec<usize>, Vec<Call>) {
        let root = tempfile::tempdir().unwrap();
        let rec = Recorder::default();
        let entered = std::cell::RefCell::new(Vec::new());
        let enter = || {
            entered.borrow_mut().push(rec.calls().len());
            Ok(())
        };
        let ctx = RootfsContext {
            enter_cgroups: Some(&enter),
            ..context(root.path(), spec, &CgroupView::V2, false)
        };
        prepare(&rec, &ctx).unwrap();
        (entered.into_inner(), rec.calls())
    }

    fn mount_types(calls: &[Call]) -> Vec<&str> {
        calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount {
                    fstype: Some(t), ..
                } => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn cgroups_are_entered_once_right_before_the_first_cgroup_mount() {
        let spec = spec_with(
            r#"{"ociVersion":"1.0.2","mounts":[
                {"destination":"/proc","type":"proc","source":"proc"},
                {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup"},
                {"destination":"/dev/mqueue","type":"mqueue","source":"mqueue"}
            ]}"#,
        );
        let (entered, calls) = entered_after(&spec);
        assert_eq!(entered.len(), 1, "entered once: {entered:?}");
        let (before, after) = calls.split_at(entered[0]);
        assert_eq!(mount_types(before), ["proc"], "{calls:?}");
        assert_eq!(mount_types(after), ["cgroup2", "mqueue"], "{calls:?}");
    }

    #[test]
    fn without_a_cgroup_mount_cgroups_are_entered_after_the_mounts() {
        let spec = spec_with(
            r#"{"ociVersion":"1.0.2","mounts":[
                {"destination":"/proc","type":"proc","source":"proc"},
                {"destination":"/dev","type":"tmpfs","source":"tmpfs"}
            ]}"#,
        );
        let (entered, calls) = entered_after(&spec);
        assert_eq!(entered.len(), 1, "entered once: {entered:?}");
        let (before, after) = calls.split_at(entered[0]);
        assert_eq!(mount_types(before), ["proc", "tmpfs"], "{calls:?}");
        // Device nodes are made inside the devices cgroup.
        assert!(!before.iter().any(|c| matches!(c, Call::Mknod(..))));
        assert!(
            after.iter().any(|c| matches!(c, Call::Mknod(..))),
            "{calls:?}"
        );
    }

    fn spec_with(json: &str) -> Spec {
        crate::spec::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn prepare_orders_propagation_rootfs_bind_then_mounts() {
        let root = tempfile::tempdir().unwrap();
        let spec = spec_with(
            r#"{"ociVersion":"1.0.2","mounts":[
                {"destination":"/proc","type":"proc","source":"proc"},
                {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]}
            ]}"#,
        );
        let rec = Recorder::default();
        prepare(&rec, &context(root.path(), &spec, &CgroupView::V2, false)).unwrap();
        let calls = rec.calls();
        assert!(matches!(&calls[0], Call::Mount { target, flags, .. }
            if target == Path::new("/") && *flags == MsFlags::MS_SLAVE | MsFlags::MS_REC));
        assert!(matches!(&calls[1], Call::Mount { target, flags, .. }
            if target == root.path() && flags.contains(MsFlags::MS_BIND)));
        let proc_mount = calls
            .iter()
            .position(|c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "proc"))
            .unwrap();
        let dev_mount = calls.iter().position(|c| matches!(c, Call::Mount { fstype: Some(t), data: Some(d), .. } if t == "tmpfs" && d == "mode=755")).unwrap();
        assert!(proc_mount < dev_mount);
        let nodes: Vec<_> = calls
            .iter()
            .filter(|c| matches!(c, Call::Mknod(..)))
            .collect();
        assert_eq!(nodes.len(), 6, "default devices: {nodes:?}");
        assert!(calls.contains(&Call::Symlink(
            "/proc/self/fd".into(),
            root.path().join("dev/fd")
        )));
    }

    #[test]
    fn a_root_mount_replaces_the_rootfs_bind() {
        let root = tempfile::tempdir().unwrap();
        let spec = spec_with(
            r#"{"ociVersion":"1.0.2","mounts":[
                {"destination":"/proc","type":"proc","source":"proc"},
                {"destination":"/","type":"overlay","source":"overlay","options":["lowerdir=/l1:/l2","upperdir=/u","workdir=/w","volatile"]}
            ]}"#,
        );
        let rec = Recorder::default();
        prepare(&rec, &context(root.path(), &spec, &CgroupView::V2, false)).unwrap();
        let calls = rec.calls();
        assert!(
            matches!(&calls[1], Call::Mount { source: Some(s), target, fstype: Some(t), flags, data: Some(d) }
            if s == Path::new("overlay") && target == root.path() && t == "overlay"
                && flags.is_empty() && d == "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,volatile"),
            "{:?}",
            calls[1]
        );
        // No bind of the rootfs onto itself, and the entry is not mounted again.
        assert!(!calls
            .iter()
            .any(|c| matches!(c, Call::Mount { flags, .. } if flags.contains(MsFlags::MS_BIND))));
        let at_root = calls
            .iter()
            .filter(|c| matches!(c, Call::Mount { target, .. } if target == root.path()))
            .count();
        assert_eq!(at_root, 1);
        assert!(calls
            .iter()
            .any(|c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "proc")));
    }

    #[test]
    fn userns_binds_devices_instead_of_mknod() {
        let root = tempfile::tempdir().unwrap();
        let spec = spec_with(
            r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/dev","type":"tmpfs","source":"tmpfs"}]}"#,
        );
        let rec = Recorder::default();
        prepare(&rec, &context(root.path(), &spec, &CgroupView::V2, true)).unwrap();
        let calls = rec.calls();
        assert!(!calls.iter().any(|c| matches!(c, Call::Mknod(..))));
        assert!(calls.iter().any(
            |c| matches!(c, Call::Mount { source: Some(s), .. } if s == Path::new("/dev/null"))
        ));
    }

    #[test]
    fn v1_cgroup_mount_binds_each_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        let spec = spec_with(
            r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["ro"]}]}"#,
        );
        let view = CgroupView::V1(vec![
            ("memory".into(), "/sys/fs/cgroup/memory/x".into()),
            ("cpu,cpuacct".into(), "/sys/fs/cgroup/cpu,cpuacct/x".into()),
        ]);
        let rec = Recorder::default();
        prepare(&rec, &context(root.path(), &spec, &view, false)).unwrap();
        let calls = rec.calls();
        let dest = root.path().join("sys/fs/cgroup");
        assert!(calls.iter().any(|c| matches!(c, Call::Mount { source: Some(s), target, .. } if s == Path::new("/sys/fs/cgroup/memory/x") && *target == dest.join("memory"))));
        assert!(calls.contains(&Call::Symlink("cpu,cpuacct".into(), dest.join("cpu"))));
        assert!(calls.iter().any(|c| matches!(c, Call::Mount { target, flags, .. } if *target == dest && flags.contains(MsFlags::MS_RDONLY) && flags.contains(MsFlags::MS_REMOUNT))));
    }

    #[test]
    fn proc_on_a_symlink_is_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("tmp")).unwrap();
        std::os::unix::fs::symlink("/tmp", root.path().join("proc")).unwrap();
        let spec = spec_with(
            r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/proc","type":"proc","source":"proc"}]}"#,
        );
        let rec = Recorder::default();
        let err = prepare(&rec, &context(root.path(), &spec, &CgroupView::V2, false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ordinary directory"), "{err}");
        assert!(!rec
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "proc")));
    }

    #[test]
    fn the_mount_holding_a_path() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
            30 22 0:40 / /var/lib rw - ext4 /dev/sdb rw\n\
            31 30 0:41 / /var/lib/x\\040y rw - overlay overlay rw\n";
        let at = |p: &str| mount_point_of(info, Path::new(p)).unwrap();
        assert_eq!(at("/var/lib/x y/rootfs"), Path::new("/var/lib/x y"));
        assert_eq!(at("/var/lib/other"), Path::new("/var/lib"));
        assert_eq!(at("/var/library"), Path::new("/"));
    }

    #[test]
    fn pivot_sequence() {
        let rec = Recorder::default();
        pivot(&rec, Path::new("/r")).unwrap();
        let calls = rec.calls();
        assert_eq!(calls[0], Call::Chdir("/r".into()));
        assert_eq!(calls[1], Call::PivotRoot(".".into(), ".".into()));
        assert_eq!(calls[3], Call::Umount(".".into(), MntFlags::MNT_DETACH));
        assert_eq!(calls[4], Call::Chdir("/".into()));
    }

    #[test]
    fn destinations_with_the_rootfs_prefix_are_container_paths() {
        let r = Path::new("/b/rootfs");
        assert_eq!(
            container_path(r, Path::new("/b/rootfs/mnt/x")),
            Path::new("/mnt/x")
        );
        assert_eq!(container_path(r, Path::new("/b/rootfs")), Path::new("/"));
        assert_eq!(container_path(r, Path::new("/mnt")), Path::new("/mnt"));
        // A mere string prefix is not a path prefix.
        assert_eq!(
            container_path(r, Path::new("/b/rootfs2/a")),
            Path::new("/b/rootfs2/a")
        );
    }

    #[test]
    fn masked_directories_share_one_tmpfs() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, "").unwrap();
        let spec = spec_with(&format!(
            r#"{{"ociVersion":"1.0.2","linux":{{"maskedPaths":[{a:?},{file:?},{b:?},{a:?}]}}}}"#
        ));
        let rec = Recorder::default();
        finish(&rec, &spec).unwrap();
        let calls = rec.calls();
        let mounts: Vec<_> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    ..
                } => Some((
                    source.clone().unwrap(),
                    target.clone(),
                    fstype.clone(),
                    *flags,
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            mounts,
            vec![
                (
                    "tmpfs".into(),
                    a.clone(),
                    Some("tmpfs".into()),
                    MsFlags::MS_RDONLY
                ),
                ("/dev/null".into(), file, None, MsFlags::MS_BIND),
                (a, b, None, MsFlags::MS_BIND),
            ]
        );
    }

    #[test]
    fn recursive_options_are_mount_attributes_not_data() {
        let o = opts(&["rbind", "rro", "rnosuid", "rnoatime"]);
        assert!(o.data.is_empty(), "{:?}", o.data);
        assert_eq!(o.rec_set, 0x1 | 0x2 | 0x10);
        assert_eq!(o.rec_clear, 0x70);
        // A later option undoes an earlier one.
        let o = opts(&["rro", "rrw"]);
        assert_eq!((o.rec_set, o.rec_clear), (0, 0x1));
    }

    #[test]
    fn tmpcopyup_is_an_option_not_data() {
        let o = opts(&["tmpcopyup", "size=1m"]);
        assert!(o.copy_up);
        assert_eq!(o.data, vec!["size=1m"]);
    }

    #[test]
    fn copy_tree_keeps_modes_and_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let (from, to) = (tmp.path().join("from"), tmp.path().join("to"));
        std::fs::create_dir_all(from.join("d/e")).unwrap();
        std::fs::set_permissions(from.join("d"), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(from.join("d/e/f"), "data").unwrap();
        std::fs::set_permissions(from.join("d/e/f"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        std::os::unix::fs::symlink("d/e/f", from.join("l")).unwrap();
        std::fs::create_dir(&to).unwrap();
        copy_tree(&from, &to).unwrap();
        let mode = |p: &str| std::fs::metadata(to.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("d"), 0o777);
        assert_eq!(mode("d/e/f"), 0o640);
        assert_eq!(std::fs::read_to_string(to.join("d/e/f")).unwrap(), "data");
        assert_eq!(
            std::fs::read_link(to.join("l")).unwrap(),
            Path::new("d/e/f")
        );
    }

    #[test]
    fn finish_remounts_root_readonly_and_writes_sysctls() {
        let spec = spec_with(
            r#"{"ociVersion":"1.0.2","root":{"path":"r","readonly":true},"linux":{"sysctl":{"net.ipv4.ip_forward":"1"}}}"#,
        );
        let rec = Recorder::default();
        finish(&rec, &spec).unwrap();
        let calls = rec.calls();
        assert!(calls.iter().any(|c| matches!(c, Call::Mount { target, flags, .. } if target == Path::new("/") && flags.contains(MsFlags::MS_RDONLY))));
        assert!(calls.contains(&Call::Write(
            "/proc/sys/net/ipv4/ip_forward".into(),
            b"1".to_vec()
        )));
    }
}
