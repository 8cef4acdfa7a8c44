//! The files of a build: the context received as a tar, `.dockerignore`,
//! the sources of `COPY`/`ADD` and the tars that put them into a build
//! container. Blocking I/O; run it on blocking threads.
//!
//! Nothing here follows a path out of its root: the context is unpacked by
//! the image crate's escape-proof unpacker; paths inside it are opened with
//! `openat2(RESOLVE_BENEATH)`, so `../x`, absolute symlinks and symlinks
//! leading out of the context fail with `EXDEV` and are refused; paths in
//! an image's root use `RESOLVE_IN_ROOT` (symlinks resolved as if the root
//! were `/`, as dockerd does). Trees are walked without following symlinks:
//! they are copied as symlinks.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::ignore;

/// The largest context accepted: 4 GiB of (uncompressed) tar.
pub const MAX_CONTEXT: u64 = 4 << 30;

/// The largest Dockerfile read: 8 MiB.
const MAX_DOCKERFILE: u64 = 8 << 20;

/// A reader that fails once more than `left` bytes went through.
struct Limit<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Limit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(format!(
                "the build context is larger than {} MiB: leave big files out with .dockerignore",
                self.limit >> 20
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The compression of a stream, from its first bytes.
enum Packing {
    Plain,
    Gzip,
}

fn packing(head: &[u8], what: &str) -> Result<Packing, String> {
    Ok(match head {
        [0x1f, 0x8b, ..] => Packing::Gzip,
        [b'B', b'Z', b'h', ..] => return Err(format!("{what} is compressed with bzip2, which this engine does not read: send it plain or gzip-compressed")),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => return Err(format!("{what} is compressed with xz, which this engine does not read: send it plain or gzip-compressed")),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => return Err(format!("{what} is compressed with zstd, which this engine does not read: send it plain or gzip-compressed")),
        _ => Packing::Plain,
    })
}

/// Whether a download that starts with `head` is an archive (a tar,
/// plain or compressed) rather than a Dockerfile: how a remote context is
/// told apart, as dockerd sniffs it.
pub fn looks_like_archive(head: &[u8]) -> bool {
    matches!(
        head,
        [0x1f, 0x8b, ..]
            | [b'B', b'Z', b'h', ..]
            | [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..]
            | [0x28, 0xb5, 0x2f, 0xfd, ..]
    ) || head.get(257..262) == Some(b"ustar")
}

fn decompress<'a>(r: impl Read + 'a, what: &str) -> Result<Box<dyn Read + 'a>, String> {
    let mut r = BufReader::new(r);
    let head = r
        .fill_buf()
        .map_err(|e| format!("read {what}: {e}"))?
        .to_vec();
    Ok(match packing(&head, what)? {
        Packing::Plain => Box::new(r),
        Packing::Gzip => Box::new(flate2::read::GzDecoder::new(r)),
    })
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// Unpacks the context tar (plain or gzip) into the empty directory `dir`.
pub fn unpack_context(body: impl Read, dir: &Path) -> Result<(), String> {
    unpack_limited(body, dir, MAX_CONTEXT)
}

fn unpack_limited(body: impl Read, dir: &Path, limit: u64) -> Result<(), String> {
    let r = decompress(body, "the build context")?;
    let r = Limit {
        inner: r,
        left: limit,
        limit,
    };
    let fd = open_dir(dir).map_err(|e| format!("open {}: {e}", dir.display()))?;
    let opts = strato_image::unpack::UnpackOptions::default();
    strato_image::unpack::unpack_at(r, &fd, &opts)
        .map(|_| ())
        .map_err(|e| format!("the build context is not a valid tar: {e}"))
}

/// How a path is resolved below a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The build context: nothing may lead out of it.
    Beneath,
    /// An image's root: symlinks are resolved as if it were `/`.
    InRoot,
}

fn open_at(root: &OwnedFd, rel: &str, scope: Scope, flags: OFlags) -> Result<OwnedFd, Errno> {
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let how = match scope {
        Scope::Beneath => ResolveFlags::BENEATH,
        Scope::InRoot => ResolveFlags::IN_ROOT,
    } | ResolveFlags::NO_MAGICLINKS;
    rustix::fs::openat2(root, rel, flags | OFlags::CLOEXEC, Mode::empty(), how)
}

/// The path an open descriptor names (in this thread's mount namespace).
fn fd_path(fd: &OwnedFd) -> io::Result<PathBuf> {
    fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Reads the Dockerfile `name` (a path in the context); `Dockerfile`
/// falls back to `dockerfile`, as in dockerd.
pub fn read_dockerfile(ctx: &Path, name: &str) -> Result<String, String> {
    let root = open_dir(ctx).map_err(|e| format!("open the build context: {e}"))?;
    let mut tries = vec![name.to_string()];
    if name == "Dockerfile" {
        tries.push("dockerfile".into());
    }
    for n in &tries {
        match open_at(&root, n, Scope::Beneath, OFlags::RDONLY) {
            Ok(fd) => {
                let mut text = String::new();
                File::from(fd)
                    .take(MAX_DOCKERFILE)
                    .read_to_string(&mut text)
                    .map_err(|e| format!("read the Dockerfile {name}: {e}"))?;
                return Ok(text);
            }
            Err(Errno::XDEV) => {
                return Err(format!(
                    "the Dockerfile ({name}) must be within the build context"
                ))
            }
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(format!("Cannot locate specified Dockerfile: {name}: {e}")),
        }
    }
    Err(format!("Cannot locate specified Dockerfile: {name}"))
}

/// Applies `.dockerignore` to the unpacked context: excluded files go
/// (`.dockerignore` and the Dockerfile too when they match, as dockerd
/// removes them); a directory goes when it is excluded and nothing in it
/// is kept by an exception.
pub fn apply_dockerignore(ctx: &Path) -> Result<(), String> {
    let root = open_dir(ctx).map_err(|e| format!("open the build context: {e}"))?;
    let text = match open_at(
        &root,
        ".dockerignore",
        Scope::Beneath,
        OFlags::RDONLY | OFlags::NOFOLLOW,
    ) {
        Ok(fd) => {
            let mut t = String::new();
            File::from(fd)
                .take(MAX_DOCKERFILE)
                .read_to_string(&mut t)
                .map_err(|e| format!("read .dockerignore: {e}"))?;
            t
        }
        Err(_) => return Ok(()),
    };
    let patterns = ignore::parse_ignore(&text);
    if patterns.is_empty() {
        return Ok(());
    }
    prune(ctx, "", &patterns).map_err(|e| format!("apply .dockerignore: {e}"))?;
    Ok(())
}

/// Removes what is excluded below `dir`; true when `dir` ended empty.
fn prune(ctx: &Path, rel: &str, patterns: &[ignore::Pattern]) -> io::Result<bool> {
    let dir = if rel.is_empty() {
        ctx.to_path_buf()
    } else {
        ctx.join(rel)
    };
    let mut empty = true;
    for ent in fs::read_dir(&dir)? {
        let ent = ent?;
        let name = ent.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let is_dir = ent.file_type()?.is_dir();
        let excluded = ignore::excluded(&child, patterns);
        let mut child_empty = false;
        if is_dir {
            child_empty = prune(ctx, &child, patterns)?;
        }
        if excluded && (!is_dir || child_empty) {
            if is_dir {
                fs::remove_dir(ent.path())?;
            } else {
                fs::remove_file(ent.path())?;
            }
        } else {
            empty = false;
        }
    }
    Ok(empty)
}

/// One source of a `COPY`/`ADD`, resolved.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its real path (in the namespace of the thread that resolved it).
    pub path: PathBuf,
    /// Its base name (what it is called at a directory destination).
    pub name: String,
    pub is_dir: bool,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Resolves the source patterns of a `COPY`/`ADD` in `root`: wildcards
/// expanded (`filepath.Match` per path component), final symlinks
/// followed inside the root. `what` names the instruction in errors.
pub fn resolve_sources(
    root: &Path,
    patterns: &[String],
    scope: Scope,
    what: &str,
) -> Result<Vec<Source>, String> {
    let rfd = open_dir(root).map_err(|e| format!("{what} failed: open the source root: {e}"))?;
    let mut out = Vec::new();
    for p in patterns {
        let cleaned = ignore::clean(p.trim_start_matches('/'));
        if scope == Scope::Beneath && (cleaned == ".." || cleaned.starts_with("../")) {
            return Err(format!(
                "{what} failed: forbidden path outside the build context: {p} ()"
            ));
        }
        let cleaned = if scope == Scope::InRoot {
            cleaned
                .split('/')
                .filter(|c| *c != "..")
                .collect::<Vec<_>>()
                .join("/")
        } else {
            cleaned
        };
        let matches = if has_glob(&cleaned) {
            let mut cands = vec![String::new()];
            for comp in cleaned.split('/') {
                let mut next = Vec::new();
                for c in &cands {
                    if !has_glob(comp) {
                        next.push(join_rel(c, comp));
                        continue;
                    }
                    let Ok(dfd) = open_at(&rfd, c, scope, OFlags::RDONLY | OFlags::DIRECTORY)
                    else {
                        continue;
                    };
                    let Ok(dpath) = fd_path(&dfd) else { continue };
                    let Ok(rd) = fs::read_dir(&dpath) else {
                        continue;
                    };
                    let mut names: Vec<String> = rd
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| ignore::glob_match(comp, n, false))
                        .collect();
                    names.sort();
                    next.extend(names.into_iter().map(|n| join_rel(c, &n)));
                }
                cands = next;
            }
            if cands.is_empty() {
                return Err(format!(
                    "{what} failed: no source files were specified (nothing matches {p})"
                ));
            }
            cands
        } else {
            vec![if cleaned == "." {
                String::new()
            } else {
                cleaned
            }]
        };
        for rel in matches {
            let fd = match open_at(&rfd, &rel, scope, OFlags::PATH) {
                Ok(fd) => fd,
                Err(Errno::XDEV) => {
                    return Err(format!(
                        "{what} failed: forbidden path outside the build context: {p} ({rel} leads out of it through a symlink)"
                    ))
                }
                Err(Errno::NOENT | Errno::NOTDIR) => {
                    return Err(if scope == Scope::Beneath {
                        format!("{what} failed: file not found in build context or excluded by .dockerignore: stat {p}: file does not exist")
                    } else {
                        format!("{what} failed: stat {p}: file does not exist in the source image")
                    })
                }
                Err(e) => return Err(format!("{what} failed: open {p}: {e}")),
            };
            let path = fd_path(&fd).map_err(|e| format!("{what} failed: {p}: {e}"))?;
            let meta = fs::metadata(&path).map_err(|e| format!("{what} failed: {p}: {e}"))?;
            let name = rel.rsplit('/').next().unwrap_or("").to_string();
            out.push(Source {
                path,
                name,
                is_dir: meta.is_dir(),
            });
        }
    }
    Ok(out)
}

fn join_rel(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// The entries of a tree, parents first, names relative to it (the tree
/// itself as ""); symlinks are not followed.
fn walk(top: &Path) -> io::Result<Vec<(String, fs::Metadata)>> {
    let mut out = Vec::new();
    let meta = fs::symlink_metadata(top)?;
    let is_dir = meta.is_dir();
    out.push((String::new(), meta));
    if is_dir {
        walk_into(top, "", &mut out)?;
    }
    Ok(out)
}

fn walk_into(top: &Path, rel: &str, out: &mut Vec<(String, fs::Metadata)>) -> io::Result<()> {
    let dir = if rel.is_empty() {
        top.to_path_buf()
    } else {
        top.join(rel)
    };
    let mut names: Vec<String> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        let r = join_rel(rel, &n);
        let meta = fs::symlink_metadata(top.join(&r))?;
        let is_dir = meta.is_dir();
        out.push((r.clone(), meta));
        if is_dir {
            walk_into(top, &r, out)?;
        }
    }
    Ok(())
}

fn open_nofollow(p: &Path) -> io::Result<File> {
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
    .map_err(io::Error::from)
}

/// A digest of the sources' names, types, modes and contents (not their
/// times): the cache key of a `COPY`/`ADD`.
pub fn hash_sources(sources: &[Source]) -> io::Result<String> {
    let mut w = strato_image::digest::HashingWriter::new(io::sink());
    for s in sources {
        writeln!(w, "source {}", s.name)?;
        for (rel, meta) in walk(&s.path)? {
            let ft = meta.file_type();
            let path = if rel.is_empty() {
                s.path.clone()
            } else {
                s.path.join(&rel)
            };
            write!(w, "{rel}\0{:o}\0", meta.mode())?;
            if ft.is_file() {
                write!(w, "f{}\0", meta.len())?;
                io::copy(&mut open_nofollow(&path)?, &mut w)?;
            } else if ft.is_symlink() {
                let t = fs::read_link(&path)?;
                write!(w, "l{}\0", t.display())?;
            } else if ft.is_dir() {
                w.write_all(b"d\0")?;
            }
        }
    }
    let (_, digest, _) = w.finish();
    Ok(digest.hex().to_string())
}

/// Copies the sources into `staging/<i>/<name>` (symlinks as symlinks):
/// what `COPY --from` takes out of an image root before the copy.
pub fn stage_sources(sources: &[Source], staging: &Path) -> io::Result<Vec<Source>> {
    let mut out = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let base = staging.join(i.to_string());
        fs::create_dir_all(&base)?;
        let name = if s.name.is_empty() {
            "root".to_string()
        } else {
            s.name.clone()
        };
        let dst = base.join(&name);
        for (rel, meta) in walk(&s.path)? {
            let from = if rel.is_empty() {
                s.path.clone()
            } else {
                s.path.join(&rel)
            };
            let to = if rel.is_empty() {
                dst.clone()
            } else {
                dst.join(&rel)
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                fs::create_dir(&to)?;
            } else if ft.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            } else if ft.is_file() {
                let mut f = File::create(&to)?;
                io::copy(&mut open_nofollow(&from)?, &mut f)?;
            } else {
                continue; // devices, fifos and sockets are not copied
            }
            if !ft.is_symlink() {
                fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
                let _ = rustix::fs::utimensat(
                    rustix::fs::CWD,
                    &to,
                    &rustix::fs::Timestamps {
                        last_access: rustix::fs::Timespec {
                            tv_sec: meta.mtime(),
                            tv_nsec: 0,
                        },
                        last_modification: rustix::fs::Timespec {
                            tv_sec: meta.mtime(),
                            tv_nsec: 0,
                        },
                    },
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                );
            }
        }
        out.push(Source {
            path: dst,
            name: s.name.clone(),
            is_dir: s.is_dir,
        });
    }
    Ok(out)
}

/// Whether the file at `p` is a tar archive (plain or gzip), which `ADD`
/// unpacks instead of copying.
pub fn is_archive(p: &Path) -> bool {
    let Ok(f) = open_nofollow(p) else {
        return false;
    };
    let Ok(r) = decompress(f, "archive") else {
        return false;
    };
    let mut head = vec![0u8; 512];
    let mut n = 0;
    let mut r = r;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n == 512 && &head[257..262] == b"ustar"
}

/// The decompressed content of the archive at `p`.
pub fn open_archive(p: &Path) -> Result<Box<dyn Read>, String> {
    let f = open_nofollow(p).map_err(|e| format!("open {}: {e}", p.display()))?;
    decompress(f, "the archive")
}

/// Whether `path` (absolute, in the root) is a directory there.
pub fn is_dir_in(root: &Path, path: &str) -> bool {
    let Ok(rfd) = open_dir(root) else {
        return false;
    };
    open_at(
        &rfd,
        path,
        Scope::InRoot,
        OFlags::RDONLY | OFlags::DIRECTORY,
    )
    .is_ok()
}

/// The components of the directory `dir` (absolute) that do not exist in
/// the root, as absolute paths, parents first.
pub fn missing_dirs(root: &Path, dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in dir.split('/').filter(|c| !c.is_empty()) {
        cur = format!("{cur}/{c}");
        if !out.is_empty() || !exists_in(root, &cur) {
            out.push(cur.clone());
        }
    }
    out
}

fn exists_in(root: &Path, path: &str) -> bool {
    let Ok(rfd) = open_dir(root) else {
        return false;
    };
    open_at(&rfd, path, Scope::InRoot, OFlags::PATH).is_ok()
}

/// Tar entries for a copy: `add_dir`, `add_tree`.
pub struct TarOut<W: Write> {
    b: tar::Builder<W>,
    chmod: Option<u32>,
}

impl<W: Write> TarOut<W> {
    pub fn new(w: W, chmod: Option<u32>) -> Self {
        let mut b = tar::Builder::new(w);
        b.follow_symlinks(false);
        TarOut { b, chmod }
    }

    /// A directory entry (mode 0755) at the absolute path `dir`.
    pub fn add_dir(&mut self, dir: &str) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        self.b
            .append_data(&mut h, dir.trim_start_matches('/'), io::empty())
    }

    /// The tree at `src` (a file, a symlink or a directory) as `dest`
    /// (absolute): a directory's content goes into `dest`, whose own entry
    /// is written only when `with_top`.
    pub fn add_tree(&mut self, src: &Path, dest: &str, with_top: bool) -> io::Result<()> {
        let dest = dest.trim_start_matches('/').trim_end_matches('/');
        for (rel, meta) in walk(src)? {
            if rel.is_empty() && meta.is_dir() && !with_top {
                continue;
            }
            let name = if rel.is_empty() {
                dest.to_string()
            } else if dest.is_empty() {
                rel.clone()
            } else {
                format!("{dest}/{rel}")
            };
            let path = if rel.is_empty() {
                src.to_path_buf()
            } else {
                src.join(&rel)
            };
            let ft = meta.file_type();
            let mut h = tar::Header::new_gnu();
            h.set_mtime(meta.mtime().max(0) as u64);
            // Owners come from the copy's --chown (root by default).
            h.set_uid(0);
            h.set_gid(0);
            let mode = self.chmod.unwrap_or(meta.mode() & 0o7777);
            h.set_mode(mode);
            if ft.is_dir() {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                self.b.append_data(&mut h, &name, io::empty())?;
            } else if ft.is_symlink() {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                let target = fs::read_link(&path)?;
                self.b.append_link(&mut h, &name, target)?;
            } else if ft.is_file() {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(meta.len());
                let f = open_nofollow(&path)?;
                self.b.append_data(&mut h, &name, f.take(meta.len()))?;
            }
        }
        Ok(())
    }

    pub fn finish(self) -> io::Result<W> {
        self.b.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        fs::create_dir_all(p.join("ctx/sub")).unwrap();
        fs::write(p.join("ctx/a.txt"), "a").unwrap();
        fs::write(p.join("ctx/b.txt"), "b").unwrap();
        fs::write(p.join("ctx/sub/c"), "c").unwrap();
        fs::write(p.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../secret", p.join("ctx/up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", p.join("ctx/abs")).unwrap();
        std::os::unix::fs::symlink("a.txt", p.join("ctx/inside")).unwrap();
        d
    }

    #[test]
    fn sources_never_leave_the_context() {
        let d = tree();
        let ctx = d.path().join("ctx");
        let r = |p: &str| resolve_sources(&ctx, &[p.to_string()], Scope::Beneath, "COPY");
        assert!(r("../secret")
            .unwrap_err()
            .contains("outside the build context"));
        assert!(r("up").unwrap_err().contains("outside the build context"));
        assert!(r("abs").unwrap_err().contains("outside the build context"));
        assert!(r("nope").unwrap_err().contains("file not found"));
        let s = r("inside").unwrap();
        assert_eq!(fs::read_to_string(&s[0].path).unwrap(), "a");
        let s = r("*.txt").unwrap();
        assert_eq!(
            s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a.txt", "b.txt"]
        );
        let s = r(".").unwrap();
        assert!(s[0].is_dir && s[0].name.is_empty());
        assert!(r("*.none").unwrap_err().contains("no source files"));
    }

    #[test]
    fn ignore_prunes_but_keeps_exceptions() {
        let d = tree();
        let ctx = d.path().join("ctx");
        fs::write(
            ctx.join(".dockerignore"),
            "sub\n*.txt\n!b.txt\n.dockerignore\n",
        )
        .unwrap();
        apply_dockerignore(&ctx).unwrap();
        let mut left: Vec<String> = fs::read_dir(&ctx)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["abs", "b.txt", "inside", "up"]);
    }

    #[test]
    fn hashes_follow_content_not_time() {
        let d = tree();
        let ctx = d.path().join("ctx");
        let f = resolve_sources(&ctx, &["a.txt".into()], Scope::Beneath, "COPY").unwrap();
        assert_ne!(hash_sources(&f).unwrap(), "");
        let s = resolve_sources(&ctx, &["sub".into()], Scope::Beneath, "COPY").unwrap();
        let h1 = hash_sources(&s).unwrap();
        fs::write(ctx.join("sub/c"), "c").unwrap();
        assert_eq!(hash_sources(&s).unwrap(), h1);
        fs::write(ctx.join("sub/c"), "C").unwrap();
        assert_ne!(hash_sources(&s).unwrap(), h1);
    }

    #[test]
    fn hostile_context_tars_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..`; write the name raw.
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let ctx = d.path().join("ctx");
        fs::create_dir(&ctx).unwrap();
        assert!(unpack_context(&tar[..], &ctx).is_err());
        assert!(!d.path().join("escape").exists());
    }

    #[test]
    fn contexts_are_bounded_and_gzip_is_read() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4 << 20);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "big", io::repeat(0).take(4 << 20))
            .unwrap();
        let tar = b.into_inner().unwrap();
        let d = tempfile::tempdir().unwrap();
        let e = unpack_limited(&tar[..], d.path(), 1 << 20).unwrap_err();
        assert!(e.contains("larger than 1 MiB"), "{e}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        unpack_limited(&gz[..], d2.path(), 8 << 20).unwrap();
        assert_eq!(fs::metadata(d2.path().join("big")).unwrap().len(), 4 << 20);
        let e = unpack_context(&b"BZh91AY"[..], d2.path()).unwrap_err();
        assert!(e.contains("bzip2"), "{e}");
    }

    #[test]
    fn copy_tars_hold_the_tree_under_its_destination() {
        let d = tree();
        let ctx = d.path().join("ctx");
        let mut t = TarOut::new(Vec::new(), Some(0o600));
        t.add_dir("/app").unwrap();
        t.add_tree(&ctx.join("sub"), "/app", false).unwrap();
        t.add_tree(&ctx.join("a.txt"), "/app/x", true).unwrap();
        let bytes = t.finish().unwrap();
        let mut a = tar::Archive::new(&bytes[..]);
        let names: Vec<(String, u32)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("app".to_string(), 0o755),
                ("app/c".to_string(), 0o600),
                ("app/x".to_string(), 0o600)
            ]
        );
    }
}
