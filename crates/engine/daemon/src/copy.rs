//! `docker cp`: a container's files seen from the daemon, running or not.
//!
//! Every operation runs on its own thread holding a descriptor of the
//! container's root directory, and every path is resolved from that
//! descriptor with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: the
//! kernel resolves symlinks (absolute ones and `..` too) as if the
//! container's root were `/`, so no path or symlink in the container can
//! reach the host's files.
//!
//! * **Running containers**: the root is `/proc/PID/root`, the container's
//!   own view in its mount namespace, so bind mounts, volumes and tmpfs are
//!   seen exactly as the container sees them (and read-only mounts refuse
//!   writes). The pid is checked to still be in the container's cgroup after
//!   the descriptor is opened, so a recycled pid cannot hand us another
//!   process's root.
//! * **Stopped (or never started) containers**: the thread unshares its
//!   mount namespace (only that thread; nothing is forked), mounts the
//!   container's overlay (image layers under its writable layer) and its
//!   bind mounts and volumes there, and works on that. The mounts vanish
//!   with the namespace when the thread ends, whatever happens; the host's
//!   mount table never sees them. Docker mounts the same things for a
//!   stopped container.
//!
//! Archives written into a container go through the image crate's
//! escape-proof unpacker ([`strato_image::unpack::unpack_at`]): no absolute
//! or `..` names, no writing through symlinks, no device nodes.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use strato_api::types::PathStat;
use strato_api::ApiError;
use strato_supervisor::Phase;

use crate::engine::{Engine, Record};
use crate::model::MountSpec;

/// Why a copy failed; the backend maps these to Docker's status codes.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// 404: the path is not in the container.
    #[error("Could not find the file {path} in container {container}")]
    NotFound { path: String, container: String },
    /// 400: a bad path or archive.
    #[error("{0}")]
    Invalid(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

/// Where a container's files are.
#[derive(Debug, Clone)]
pub struct RootSource {
    pub container: String,
    /// The container's process while it runs.
    pub pid: Option<i32>,
    pub images: strato_image::ImageStore,
    pub image_id: String,
    /// An empty directory to mount a stopped container's root on (inside the
    /// private namespace only); removed afterwards.
    pub scratch: PathBuf,
    pub mounts: Vec<MountSpec>,
    pub read_only: bool,
    /// The container's own rootfs mount when it is still there without a
    /// process (a root mounted on the host by an earlier strato): used as
    /// it is, so the container layer is never mounted twice.
    pub mounted: Option<PathBuf>,
    /// The root filesystem alone (export) of a running container, whose
    /// process is this: its root mount is cloned from its mount namespace
    /// (its writable layer is never mounted twice).
    pub root_mount_of: Option<i32>,
}

/// Makes each mount point of a stopped container's copy unique.
static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl RootSource {
    /// Where a container's files are, and the container's name.
    pub fn of(engine: &Engine, r: &Record) -> (RootSource, String) {
        let pid = r
            .status
            .as_ref()
            .filter(|s| matches!(s.phase, Phase::Running | Phase::Paused) && s.pid > 0)
            .map(|s| s.pid);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (
            RootSource {
                container: r.id.clone(),
                pid,
                images: engine.images().clone(),
                image_id: r.image_id.clone(),
                scratch: engine
                    .config()
                    .exec_root
                    .join("cp")
                    .join(format!("{}-{n}", r.id)),
                mounts: r.config.mounts.clone(),
                read_only: r.config.read_only_rootfs,
                mounted: Some(engine.bundle_path(&r.id).join("rootfs"))
                    .filter(|p| pid.is_none() && is_mountpoint(p)),
                root_mount_of: None,
            },
            r.name.clone(),
        )
    }
}

impl RootSource {
    /// The root filesystem alone, as `docker export` writes it: the image
    /// and the container's layer, without volumes, binds or /proc. A
    /// running container's root mount alone (cloned, without the mounts
    /// beneath it) is exactly that; a stopped one gets its layers mounted
    /// on a scratch directory.
    pub fn for_export(engine: &Engine, r: &Record) -> RootSource {
        let (mut src, _) = RootSource::of(engine, r);
        src.root_mount_of = src.pid.take();
        src.mounts.clear();
        src.mounted = Some(engine.bundle_path(&r.id).join("rootfs")).filter(|p| is_mountpoint(p));
        src
    }
}

impl From<CopyError> for ApiError {
    fn from(e: CopyError) -> ApiError {
        match e {
            CopyError::NotFound { .. } => ApiError::not_found(e.to_string()),
            CopyError::Invalid(m) => ApiError::bad_parameter(m),
            CopyError::Internal(m) => ApiError::internal(m),
        }
    }
}

/// The container's root directory, open.
pub struct Root {
    fd: OwnedFd,
    /// The same as a path (for the passwd lookup of `copyUIDGID`).
    path: PathBuf,
    scratch: Option<PathBuf>,
}

impl Root {
    /// The root as a path usable on this thread.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        if let Some(s) = &self.scratch {
            // Detach everything mounted there (in this thread's namespace),
            // then the directory can go.
            let _ = nix::mount::umount2(s, nix::mount::MntFlags::MNT_DETACH);
            let _ = fs::remove_dir(s);
        }
    }
}

/// Moves the calling thread (one made for the purpose: the namespace goes
/// with it) into a mount namespace of its own, from which no mount
/// propagates back to the host.
pub(crate) fn private_mount_namespace() -> std::io::Result<()> {
    use nix::mount::MsFlags;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )?;
    Ok(())
}

fn internal(what: &str, e: impl std::fmt::Display) -> CopyError {
    CopyError::Internal(format!("{what}: {e}"))
}

/// Runs `work` on a new thread with the container's root open; the result
/// comes back through the returned receiver.
pub fn spawn<T, F>(src: RootSource, work: F) -> tokio::sync::oneshot::Receiver<Result<T, CopyError>>
where
    T: Send + 'static,
    F: FnOnce(&Root) -> Result<T, CopyError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("docker-cp".into())
        .spawn(move || {
            let res = open_root(&src).and_then(|root| work(&root));
            let _ = tx.send(res);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a copy thread");
    }
    rx
}

/// Checks that `pid` is still a process of `container` (not recycled).
fn still_the_containers(pid: i32, container: &str) -> Result<(), CopyError> {
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    if !cgroup.contains(container) {
        return Err(CopyError::Internal(format!(
            "container {container} stopped during the copy: try again"
        )));
    }
    Ok(())
}

/// The root mount of running process `pid`'s mount namespace, cloned
/// without the mounts beneath it (a detached mount, gone when closed).
/// This thread enters that namespace for the clone (after unsharing its
/// filesystem attributes, which threads share), then comes back: paths
/// such as /proc/self must keep meaning the host's. It is the copy's own
/// thread, and it ends with the copy.
fn clone_root_mount(pid: i32, container: &str) -> Result<Root, CopyError> {
    use nix::sched::CloneFlags;
    let own = fs::File::open("/proc/thread-self/ns/mnt")
        .map_err(|e| internal("open our mount namespace", e))?;
    let ns = fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .map_err(|e| internal("open the container's mount namespace", e))?;
    still_the_containers(pid, container)?;
    nix::sched::unshare(CloneFlags::CLONE_FS)
        .map_err(|e| internal("unshare the copy thread's filesystem attributes", e))?;
    nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNS)
        .map_err(|e| internal("enter the container's mount namespace", e))?;
    let cloned = rustix::mount::open_tree(
        rustix::fs::CWD,
        "/",
        rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE
            | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC,
    );
    nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWNS)
        .map_err(|e| internal("return to our mount namespace", e))?;
    let fd = cloned.map_err(|e| internal("clone the container's root mount", e))?;
    Ok(Root {
        path: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        fd,
        scratch: None,
    })
}

fn open_root(src: &RootSource) -> Result<Root, CopyError> {
    if let Some(pid) = src.root_mount_of {
        return clone_root_mount(pid, &src.container);
    }
    if let Some(pid) = src.pid {
        let path = PathBuf::from(format!("/proc/{pid}/root"));
        let fd = rustix::fs::open(
            &path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| internal("open the container's root", e))?;
        // The pid must still be the container's (not recycled meanwhile).
        still_the_containers(pid, &src.container)?;
        return Ok(Root {
            fd,
            path,
            scratch: None,
        });
    }
    let binds = src.mounts.iter().any(|m| m.kind == "bind");
    if let (Some(path), false) = (&src.mounted, binds) {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| internal("open the container's root", e))?;
        return Ok(Root {
            fd,
            path: path.clone(),
            scratch: None,
        });
    }
    use nix::mount::MsFlags;
    private_mount_namespace().map_err(|e| internal("enter a private mount namespace", e))?;
    fs::create_dir_all(&src.scratch).map_err(|e| internal("create a mount point", e))?;
    let mut root = Root {
        fd: rustix::fs::open(
            &src.scratch,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| internal("open a mount point", e))?,
        path: src.scratch.clone(),
        scratch: Some(src.scratch.clone()),
    };
    match &src.mounted {
        // The container's own root is still mounted on the host (by an
        // earlier strato): its volumes and binds are not on it (they lived
        // in the container's namespace), so it is bound here and they are
        // added below, without mounting its layer twice.
        Some(mounted) => nix::mount::mount(
            Some(mounted.as_path()),
            &src.scratch,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| internal("bind the container's root filesystem", e))?,
        None => {
            let mount = src
                .images
                .rootfs_for(&src.image_id, &src.container, &src.scratch)
                .map_err(|e| internal("mount the container's root filesystem", e))?;
            // It goes with this thread's namespace.
            let _ = mount;
        }
    }
    let fd = rustix::fs::open(
        &src.scratch,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| internal("open the container's root", e))?;
    root.fd = fd;
    for m in src.mounts.iter().filter(|m| m.kind == "bind") {
        // Missing targets are made in the container's layer, as a start
        // does; one that cannot be made is skipped.
        let is_dir = fs::metadata(&m.source)
            .map(|md| md.is_dir())
            .unwrap_or(true);
        if let Err(e) = make_target(&root.fd, &m.target, is_dir) {
            tracing::warn!(target = %m.target, error = %e, "cannot make a mount point for docker cp");
            continue;
        }
        let Ok(target) = resolve(&root.fd, &m.target, true, OFlags::PATH) else {
            continue;
        };
        let at = format!("/proc/self/fd/{}", target.as_raw_fd());
        nix::mount::mount(
            Some(m.source.as_str()),
            at.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| internal(&format!("mount {} at {}", m.source, m.target), e))?;
        if m.read_only {
            let target = resolve(&root.fd, &m.target, true, OFlags::PATH)
                .map_err(|e| internal("open a mount", e))?;
            let at = format!("/proc/self/fd/{}", target.as_raw_fd());
            nix::mount::mount(
                None::<&str>,
                at.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(|e| internal("make a mount read-only", e))?;
        }
    }
    if src.read_only {
        nix::mount::mount(
            None::<&str>,
            &src.scratch,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| internal("make the root read-only", e))?;
    }
    Ok(root)
}

/// Makes `path` inside the root if it is missing: its parents as
/// directories, itself as a directory or an empty file.
fn make_target(root: &OwnedFd, path: &str, is_dir: bool) -> Result<(), Errno> {
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    for i in 1..=comps.len() {
        let prefix = comps[..i].join("/");
        match resolve(root, &prefix, true, OFlags::PATH) {
            Ok(_) => continue,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
        let parent = resolve(
            root,
            &comps[..i - 1].join("/"),
            true,
            OFlags::PATH | OFlags::DIRECTORY,
        )?;
        let name = comps[i - 1];
        if name == ".." {
            return Err(Errno::INVAL);
        }
        if i < comps.len() || is_dir {
            match rustix::fs::mkdirat(&parent, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        } else {
            rustix::fs::openat(
                &parent,
                name,
                OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )?;
        }
    }
    Ok(())
}

/// Whether `path` is a mount point (its device differs from its parent's).
fn is_mountpoint(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(path), path.parent().map(fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

/// `path` relative to the container's root ("." for the root itself).
fn relative(path: &str) -> &str {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        "."
    } else {
        rel
    }
}

/// Opens `path` inside the root; symlinks (the last one only with
/// `follow`) are resolved inside it.
fn resolve(root: &OwnedFd, path: &str, follow: bool, flags: OFlags) -> Result<OwnedFd, Errno> {
    let mut flags = flags | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    rustix::fs::openat2(
        root,
        relative(path),
        flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Docker follows a final symlink only when the path ends in `/` or `/.`.
fn follows_last(path: &str) -> bool {
    path.ends_with('/') || path.ends_with("/.")
}

/// The name Docker gives a path (Go's `filepath.Base`, keeping a final `.`).
fn base_name(path: &str) -> String {
    if path.ends_with("/.") || path == "." {
        return ".".into();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Lexically cleans an absolute path (`..` stops at `/`).
fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

fn not_found(path: &str, container: &str, e: Errno) -> CopyError {
    match e {
        Errno::NOENT | Errno::NOTDIR => CopyError::NotFound {
            path: path.to_string(),
            container: container.to_string(),
        },
        Errno::LOOP => {
            CopyError::Invalid(format!("{path} in container {container} is a symlink loop"))
        }
        e => internal(&format!("open {path} in container {container}"), e),
    }
}

/// What a path is, open.
struct Found {
    fd: OwnedFd,
    stat: rustix::fs::Stat,
    link_target: Option<String>,
}

fn find(root: &Root, path: &str, container: &str) -> Result<Found, CopyError> {
    let fd = resolve(&root.fd, path, follows_last(path), OFlags::PATH)
        .map_err(|e| not_found(path, container, e))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| internal("stat", e))?;
    let link_target = if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
        let text = rustix::fs::readlinkat(&fd, "", Vec::new())
            .map_err(|e| internal("read link", e))?
            .to_string_lossy()
            .into_owned();
        let parent = clean(path);
        let parent = parent.rsplit_once('/').map_or("/", |(p, _)| p);
        Some(if text.starts_with('/') {
            clean(&text)
        } else {
            clean(&format!("{parent}/{text}"))
        })
    } else {
        None
    };
    Ok(Found {
        fd,
        stat,
        link_target,
    })
}

fn path_stat(path: &str, f: &Found) -> PathStat {
    let st = &f.stat;
    PathStat {
        name: base_name(path),
        size: st.st_size,
        mode: PathStat::go_mode(st.st_mode),
        mtime: strato_image::time::format(
            st.st_mtime,
            u32::try_from(st.st_mtime_nsec).unwrap_or(0),
        ),
        link_target: f.link_target.clone().unwrap_or_default(),
    }
}

/// `HEAD /containers/{id}/archive`.
pub fn stat(root: &Root, path: &str, container: &str) -> Result<PathStat, CopyError> {
    find(root, path, container).map(|f| path_stat(path, &f))
}

/// `GET /containers/{id}/archive`: sends the stat on `stat_tx`, then writes
/// the tar of the path (a directory with everything below it) to `out`.
pub fn archive(
    root: &Root,
    path: &str,
    container: &str,
    stat_tx: tokio::sync::oneshot::Sender<PathStat>,
    out: impl Write,
) -> Result<(), CopyError> {
    let found = find(root, path, container)?;
    let _ = stat_tx.send(path_stat(path, &found));
    let top = match base_name(path).as_str() {
        "/" => ".".to_string(),
        n => n.to_string(),
    };
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let io_err = |e: io::Error| internal("write the archive", e);
    let ft = FileType::from_raw_mode(found.stat.st_mode);
    match ft {
        FileType::Directory => {
            let dir = reopen(&found.fd, OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(|e| internal("open directory", e))?;
            append_dir(&mut b, &dir, &found.stat, &top).map_err(io_err)?;
        }
        FileType::RegularFile => {
            let file = reopen(&found.fd, OFlags::RDONLY).map_err(|e| internal("open file", e))?;
            append_file(&mut b, file, &found.stat, &top).map_err(io_err)?;
        }
        _ => {
            let target = found
                .link_target
                .as_ref()
                .map(|_| rustix::fs::readlinkat(&found.fd, "", Vec::new()))
                .transpose()
                .map_err(|e| internal("read link", e))?
                .map(|t| t.to_string_lossy().into_owned());
            append_other(&mut b, &found.stat, &top, target.as_deref()).map_err(io_err)?;
        }
    }
    b.into_inner().and_then(|mut w| w.flush()).map_err(io_err)
}

/// Reopens an `O_PATH` descriptor for reading (through our own fd's magic
/// link, which names exactly the file already found).
fn reopen(fd: &OwnedFd, flags: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn header(st: &rustix::fs::Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    h
}

fn append_file<W: Write>(
    b: &mut tar::Builder<W>,
    file: OwnedFd,
    st: &rustix::fs::Stat,
    name: &str,
) -> io::Result<()> {
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let mut h = header(st, tar::EntryType::Regular);
    h.set_size(size);
    // Exactly `size` bytes, whatever the file does meanwhile.
    let data = fs::File::from(file)
        .take(size)
        .chain(io::repeat(0))
        .take(size);
    b.append_data(&mut h, name, data)
}

fn append_other<W: Write>(
    b: &mut tar::Builder<W>,
    st: &rustix::fs::Stat,
    name: &str,
    link: Option<&str>,
) -> io::Result<()> {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::Symlink => tar::EntryType::Symlink,
        FileType::Fifo => tar::EntryType::Fifo,
        FileType::CharacterDevice => tar::EntryType::Char,
        FileType::BlockDevice => tar::EntryType::Block,
        // Sockets have no tar form.
        _ => return Ok(()),
    };
    let mut h = header(st, kind);
    if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
        h.set_device_major(rustix::fs::major(st.st_rdev))?;
        h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
    }
    match link {
        Some(target) => b.append_link(&mut h, name, target),
        None => b.append_data(&mut h, name, io::empty()),
    }
}

fn append_dir<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &OwnedFd,
    st: &rustix::fs::Stat,
    name: &str,
) -> io::Result<()> {
    let mut h = header(st, tar::EntryType::Directory);
    b.append_data(&mut h, format!("{name}/"), io::empty())?;
    let mut names: Vec<Vec<u8>> = Vec::new();
    for e in rustix::fs::Dir::read_from(dir)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort();
    for n in names {
        let Ok(child_name) = String::from_utf8(n) else {
            tracing::warn!(dir = name, "skipping a file name that is not UTF-8");
            continue;
        };
        let path = format!("{name}/{child_name}");
        let st = match rustix::fs::statat(dir, child_name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Gone meanwhile.
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let sub = rustix::fs::openat(
                    dir,
                    child_name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                append_dir(b, &sub, &st, &path)?;
            }
            FileType::RegularFile => {
                let f = rustix::fs::openat(
                    dir,
                    child_name.as_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                append_file(b, f, &st, &path)?;
            }
            FileType::Symlink => {
                let t = rustix::fs::readlinkat(dir, child_name.as_str(), Vec::new())?;
                append_other(b, &st, &path, Some(&t.to_string_lossy()))?;
            }
            _ => append_other(b, &st, &path, None)?,
        }
    }
    Ok(())
}

/// How to write an archive into a container.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub path: String,
    pub no_overwrite_dir_non_dir: bool,
    /// Owner for every entry (`copyUIDGID` with a container user).
    pub chown: Option<(u32, u32)>,
}

/// `PUT /containers/{id}/archive`: unpacks `tar` into the directory `path`.
pub fn extract(
    root: &Root,
    opts: &PutOptions,
    container: &str,
    tar: impl Read,
) -> Result<(), CopyError> {
    let dir = resolve(
        &root.fd,
        &opts.path,
        true,
        OFlags::RDONLY | OFlags::DIRECTORY,
    )
    .map_err(|e| match e {
        Errno::NOTDIR => match resolve(&root.fd, &opts.path, true, OFlags::PATH) {
            Ok(_) => CopyError::Invalid(format!(
                "extraction point is not a directory: {} in container {container}",
                opts.path
            )),
            Err(e) => not_found(&opts.path, container, e),
        },
        e => not_found(&opts.path, container, e),
    })?;
    let uopts = strato_image::unpack::UnpackOptions {
        whiteouts: false,
        chown: opts.chown,
        no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
    };
    strato_image::unpack::unpack_at(tar, &dir, &uopts)
        .map(|_| ())
        .map_err(|e| match &e {
            strato_image::Error::UnsafeEntry { .. } | strato_image::Error::Archive(_) => {
                CopyError::Invalid(format!("copy into container {container}: {e}"))
            }
            strato_image::Error::Unpack { source, .. }
                if source.raw_os_error() == Some(libc::EROFS) =>
            {
                CopyError::Invalid(format!(
                    "{} in container {container} is on a read-only file system: copy into a writable mount instead",
                    opts.path
                ))
            }
            _ => CopyError::Internal(format!("copy into container {container}: {e}")),
        })?;
    // Keep the descriptor alive until the end (its mount may be private).
    let _ = dir.as_fd();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_at(dir: &Path) -> Root {
        Root {
            fd: rustix::fs::open(
                dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .unwrap(),
            path: dir.to_path_buf(),
            scratch: None,
        }
    }

    #[test]
    fn names_follow_docker() {
        assert_eq!(base_name("/etc/hosts"), "hosts");
        assert_eq!(base_name("/etc/"), "etc");
        assert_eq!(base_name("/etc/."), ".");
        assert_eq!(base_name("/"), "/");
        assert_eq!(clean("/a/../../b/./c/"), "/b/c");
        assert!(follows_last("/a/"));
        assert!(follows_last("/a/."));
        assert!(!follows_last("/a"));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let host = tempfile::tempdir().unwrap();
        fs::write(host.path().join("secret"), "host").unwrap();
        let ctr = host.path().join("ctr");
        fs::create_dir_all(ctr.join("etc")).unwrap();
        fs::write(ctr.join("secret"), "container").unwrap();
        std::os::unix::fs::symlink("../../../../..", ctr.join("etc/up")).unwrap();
        std::os::unix::fs::symlink("/", ctr.join("abs")).unwrap();
        let root = root_at(&ctr);
        for p in [
            "/etc/up/secret",
            "/abs/secret",
            "/../secret",
            "../../secret",
        ] {
            let f = find(&root, p, "c").unwrap();
            assert_eq!(f.stat.st_size, "container".len() as i64, "{p}");
        }
        let s = stat(&root, "/abs", "c").unwrap();
        assert_eq!(s.link_target, "/");
        assert_eq!(s.mode, PathStat::go_mode(0o120777));
        let s = stat(&root, "/etc/up", "c").unwrap();
        assert_eq!(s.link_target, "/");
        let e = stat(&root, "/nope", "c").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Could not find the file /nope in container c"
        );
    }

    #[test]
    fn archive_and_extract_round_trip_without_escaping() {
        let host = tempfile::tempdir().unwrap();
        let ctr = host.path().join("ctr");
        fs::create_dir_all(ctr.join("d/sub")).unwrap();
        fs::write(ctr.join("d/sub/f"), "hello").unwrap();
        std::os::unix::fs::symlink("/", ctr.join("d/root")).unwrap();
        let root = root_at(&ctr);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut tar = Vec::new();
        archive(&root, "/d", "c", tx, &mut tar).unwrap();
        let st = rx.blocking_recv().unwrap();
        assert_eq!(st.name, "d");
        assert_ne!(st.mode & (1 << 31), 0);
        let mut names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["d/", "d/root", "d/sub/", "d/sub/f"]);

        fs::create_dir(ctr.join("dst")).unwrap();
        let put = |path: &str, data: &[u8]| {
            extract(
                &root,
                &PutOptions {
                    path: path.into(),
                    ..Default::default()
                },
                "c",
                data,
            )
        };
        put("/dst", &tar).unwrap();
        assert_eq!(
            fs::read_to_string(ctr.join("dst/d/sub/f")).unwrap(),
            "hello"
        );
        // Through the planted symlink d/root -> / : refused, host untouched.
        let mut evil = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(4);
        evil.append_data(&mut h, "d/root/pwned", &b"evil"[..])
            .unwrap();
        let evil = evil.into_inner().unwrap();
        let e = put("/dst", &evil).unwrap_err();
        assert!(matches!(e, CopyError::Invalid(_)), "{e}");
        assert!(!Path::new("/pwned").exists());
        // A destination through a symlink stays in the root.
        std::os::unix::fs::symlink("/dst", ctr.join("d/todst")).unwrap();
        put("/d/todst", &tar).unwrap();
        let e = put("/d/sub/f", &tar).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = put("/missing", &tar).unwrap_err();
        assert!(matches!(e, CopyError::NotFound { .. }), "{e}");
    }
}
