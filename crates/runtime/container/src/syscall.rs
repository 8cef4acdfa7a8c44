//! The narrow interface through which container setup touches the kernel.
//!
//! [`Linux`] performs the calls; [`Recorder`] only records them, so the order and
//! arguments of a rootfs setup can be unit-tested without root.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

/// Mount-namespace and filesystem effects of container setup.
pub trait Syscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    fn chroot(&self, path: &Path) -> io::Result<()>;
    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()>;
    fn touch(&self, path: &Path) -> io::Result<()>;
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> io::Result<()>;
    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    fn sethostname(&self, name: &str) -> io::Result<()>;
    fn setdomainname(&self, name: &str) -> io::Result<()>;
    /// The mount flags (nosuid, nodev, noexec, rdonly, atime flags) of the mount holding `path`.
    fn mount_flags(&self, path: &Path) -> io::Result<MsFlags>;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Linux;

impl Syscall for Linux {
    fn mount_flags(&self, path: &Path) -> io::Result<MsFlags> {
        use nix::sys::statvfs::FsFlags;
        let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
        let f = st.flags();
        let mut out = MsFlags::empty();
        for (from, to) in [
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(from) {
                out |= to;
            }
        }
        Ok(out)
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        if let (Some("overlay"), Some(d)) = (fstype, data) {
            if d.len() > MAX_MOUNT_DATA {
                return mount_long_overlay(target, d, mount_attrs(flags));
            }
        }
        nix::mount::mount(source, target, fstype, flags, data).map_err(io::Error::from)
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        nix::mount::umount2(target, flags).map_err(io::Error::from)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        nix::unistd::pivot_root(new_root, put_old).map_err(io::Error::from)
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        nix::unistd::chdir(path).map_err(io::Error::from)
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        nix::unistd::chroot(path).map_err(io::Error::from)
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
    }

    fn touch(&self, path: &Path) -> io::Result<()> {
        // Read-only: an existing file on an overlay is not copied up (and
        // synced) to its upper layer just for being a mount point.
        use nix::fcntl::OFlag;
        let fd = nix::fcntl::open(
            path,
            OFlag::O_CREAT | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(io::Error::from)?;
        nix::unistd::close(fd).map_err(io::Error::from)
    }

    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> io::Result<()> {
        nix::sys::stat::mknod(path, kind, perm, dev).map_err(io::Error::from)
    }

    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        std::os::unix::fs::chown(path, uid, gid)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        std::fs::write(path, data)
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        nix::unistd::sethostname(name).map_err(io::Error::from)
    }

    fn setdomainname(&self, name: &str) -> io::Result<()> {
        // SAFETY: the pointer and length describe `name`, which outlives the call;
        // setdomainname only reads that many bytes.
        let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// Longest mount(2) data string the kernel takes (one page, with its NUL).
pub const MAX_MOUNT_DATA: usize = 4095;

/// Mounts an overlay whose options exceed one page (long `lowerdir` lists:
/// 64-hex layer paths fill a page after ~50 layers) with the new mount API:
/// each lower directory is added on its own (`fsconfig(…, "lowerdir+", …)`,
/// Linux 6.8+), which has no such limit. `attrs` are the new mount's
/// attributes (read-only, nosuid, …).
pub fn mount_long_overlay(
    target: &Path,
    data: &str,
    attrs: rustix::mount::MountAttrFlags,
) -> io::Result<()> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MoveMountFlags};
    let fsfd = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    let mut lowers = 0;
    for opt in data.split(',').filter(|o| !o.is_empty()) {
        match opt.split_once('=') {
            Some(("lowerdir", list)) => {
                for l in list.split(':') {
                    lowers += 1;
                    rustix::mount::fsconfig_set_string(&fsfd, "lowerdir+", l).map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::Unsupported,
                            format!(
                                "{} layers are too many for one mount(2) call and this kernel lacks overlayfs lowerdir+ (Linux 6.8+): {e}",
                                list.split(':').count()
                            ),
                        )
                    })?;
                }
            }
            Some((key, value)) => rustix::mount::fsconfig_set_string(&fsfd, key, value)?,
            None => rustix::mount::fsconfig_set_flag(&fsfd, opt)?,
        }
    }
    if lowers == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an overlay mount needs lowerdir",
        ));
    }
    rustix::mount::fsconfig_create(&fsfd)?;
    let mnt = rustix::mount::fsmount(&fsfd, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// The MOUNT_ATTR_* bits of mount(2) flags (those that have one).
fn mount_attrs(flags: MsFlags) -> rustix::mount::MountAttrFlags {
    use rustix::mount::MountAttrFlags;
    let mut attrs = MountAttrFlags::empty();
    for (f, a) in [
        (MsFlags::MS_RDONLY, MountAttrFlags::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MountAttrFlags::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MountAttrFlags::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MountAttrFlags::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NOATIME, MountAttrFlags::MOUNT_ATTR_NOATIME),
        (
            MsFlags::MS_NODIRATIME,
            MountAttrFlags::MOUNT_ATTR_NODIRATIME,
        ),
        (
            MsFlags::MS_STRICTATIME,
            MountAttrFlags::MOUNT_ATTR_STRICTATIME,
        ),
    ] {
        if flags.contains(f) {
            attrs |= a;
        }
    }
    attrs
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount(PathBuf, MntFlags),
    PivotRoot(PathBuf, PathBuf),
    Chdir(PathBuf),
    Chroot(PathBuf),
    MkdirAll(PathBuf),
    Touch(PathBuf),
    Mknod(PathBuf, u64),
    Chown(PathBuf, Option<u32>, Option<u32>),
    Symlink(PathBuf, PathBuf),
    Write(PathBuf, Vec<u8>),
    Hostname(String),
    Domainname(String),
}

/// A fake that records every call and succeeds.
#[derive(Debug, Default)]
pub struct Recorder {
    pub calls: RefCell<Vec<Call>>,
}

impl Recorder {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn push(&self, c: Call) -> io::Result<()> {
        self.calls.borrow_mut().push(c);
        Ok(())
    }
}

impl Syscall for Recorder {
    fn mount_flags(&self, _path: &Path) -> io::Result<MsFlags> {
        Ok(MsFlags::empty())
    }
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.push(Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        })
    }
    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        self.push(Call::Umount(target.to_path_buf(), flags))
    }
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        self.push(Call::PivotRoot(
            new_root.to_path_buf(),
            put_old.to_path_buf(),
        ))
    }
    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.push(Call::Chdir(path.to_path_buf()))
    }
    fn chroot(&self, path: &Path) -> io::Result<()> {
        self.push(Call::Chroot(path.to_path_buf()))
    }
    fn mkdir_all(&self, path: &Path, _mode: u32) -> io::Result<()> {
        self.push(Call::MkdirAll(path.to_path_buf()))
    }
    fn touch(&self, path: &Path) -> io::Result<()> {
        self.push(Call::Touch(path.to_path_buf()))
    }
    fn mknod(&self, path: &Path, _kind: SFlag, _perm: Mode, dev: u64) -> io::Result<()> {
        self.push(Call::Mknod(path.to_path_buf(), dev))
    }
    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        self.push(Call::Chown(path.to_path_buf(), uid, gid))
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.push(Call::Symlink(target.to_path_buf(), link.to_path_buf()))
    }
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.push(Call::Write(path.to_path_buf(), data.to_vec()))
    }
    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.push(Call::Hostname(name.to_string()))
    }
    fn setdomainname(&self, name: &str) -> io::Result<()> {
        self.push(Call::Domainname(name.to_string()))
    }
}
