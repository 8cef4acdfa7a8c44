//! `cp`: files between a container and the host through the archive
//! endpoints (tar streams both ways), with docker's naming rules: copying
//! into an existing directory keeps the source's name; copying to a path
//! that does not exist gives the copy that name.
//!
//! Host side safety: a tar from the daemon is unpacked with the tar crate's
//! `unpack_in`, which refuses entries that would land outside the target
//! (`..`, absolute paths, through symlinks); a copy to a new name is unpacked
//! into a staging directory first and renamed into place, so a failed copy
//! leaves nothing half-written.

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use strato_client::types::ArchivePutOptions;
use strato_client::{reader_stream, ByteStream, Client};
use tokio::sync::mpsc;

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information).
    #[arg(short = 'a', long)]
    archive: bool,
    /// Always follow symbolic links in SRC_PATH.
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// CONTAINER:SRC_PATH or a local path (- for a tar on STDIN).
    src: String,
    /// CONTAINER:DEST_PATH or a local path (- for a tar on STDOUT).
    dst: String,
}

/// `container:path` → Some((container, path)); a local path → None. A path
/// starting with `/` or `.` is always local (as in docker).
pub fn split_container_path(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    let (c, p) = s.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

pub async fn cp(c: &Client, a: CpArgs) -> Result<i32> {
    match (split_container_path(&a.src), split_container_path(&a.dst)) {
        (Some(_), Some(_)) => {
            bail!("copying between containers is not supported; copy to the host first")
        }
        (None, None) => bail!("must specify at least one container source, like CONTAINER:/path"),
        (Some((ctr, path)), None) => from_container(c, ctr, path, &a.dst).await,
        (None, Some((ctr, path))) => to_container(c, &a, ctr, path).await,
    }
}

async fn from_container(c: &Client, ctr: &str, path: &str, dst: &str) -> Result<i32> {
    let path = if path.is_empty() { "/" } else { path };
    let (stat, mut body) = c.container_archive_get(ctr, path).await?;
    if dst == "-" {
        if io::stdout().is_terminal() {
            bail!("cowardly refusing to write a tar archive to a terminal; redirect the output");
        }
        let mut out = tokio::io::stdout();
        while let Some(chunk) = body.next().await {
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk?).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut out).await?;
        return Ok(0);
    }
    let dst = PathBuf::from(dst);
    let src_is_dir = stat.mode & (1 << 31) != 0;
    let (dir, rename_to) = match std::fs::metadata(&dst) {
        Ok(m) if m.is_dir() => (dst.clone(), None),
        Ok(_) if src_is_dir => bail!(
            "cannot copy directory {path} over the file {}",
            dst.display()
        ),
        Ok(_) => (parent_of(&dst), Some(dst.clone())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = parent_of(&dst);
            if !parent.is_dir() {
                bail!(
                    "cannot copy to {}: the directory {} does not exist",
                    dst.display(),
                    parent.display()
                );
            }
            (parent, Some(dst.clone()))
        }
        Err(e) => return Err(e).with_context(|| format!("stat {}", dst.display())),
    };
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
    let name = stat.name.clone();
    let unpack = tokio::task::spawn_blocking(move || unpack(rx, &dir, &name, rename_to.as_deref()));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(io::Error::other);
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    unpack.await.context("the unpacking task failed")??;
    Ok(0)
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Unpacks the tar read from `rx` into `dir`, or, with `rename_to`, into a
/// staging directory whose entry `name` is then renamed to `rename_to`.
fn unpack(
    rx: mpsc::Receiver<io::Result<Bytes>>,
    dir: &Path,
    name: &str,
    rename_to: Option<&Path>,
) -> Result<()> {
    let reader = ChanReader {
        rx,
        cur: Bytes::new(),
    };
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_overwrite(true);
    let Some(target) = rename_to else {
        for e in ar.entries().context("read the archive from the daemon")? {
            let mut e = e.context("read the archive from the daemon")?;
            if !e
                .unpack_in(dir)
                .with_context(|| format!("unpack into {}", dir.display()))?
            {
                bail!(
                    "refused archive entry {:?}: it would land outside {}",
                    e.path().unwrap_or_default(),
                    dir.display()
                );
            }
        }
        return Ok(());
    };
    let staging = tempfile::Builder::new()
        .prefix(".strato-cp-")
        .tempdir_in(dir)
        .with_context(|| format!("create a staging directory in {}", dir.display()))?;
    for e in ar.entries().context("read the archive from the daemon")? {
        let mut e = e.context("read the archive from the daemon")?;
        if !e.unpack_in(staging.path()).context("unpack the archive")? {
            bail!(
                "refused archive entry {:?}: it would land outside the target",
                e.path().unwrap_or_default()
            );
        }
    }
    let staged = staging.path().join(name);
    if std::fs::symlink_metadata(&staged).is_err() {
        bail!("the daemon's archive has no entry named {name:?}");
    }
    std::fs::rename(&staged, target)
        .with_context(|| format!("move the copy to {}", target.display()))?;
    Ok(())
}

struct ChanReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

struct ChanWriter(mpsc::Sender<io::Result<Bytes>>);

impl Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                io::Error::new(io::ErrorKind::BrokenPipe, "the upload to the daemon ended")
            })?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

async fn to_container(c: &Client, a: &CpArgs, ctr: &str, path: &str) -> Result<i32> {
    let path = if path.is_empty() { "/" } else { path };
    if a.src == "-" {
        if io::stdin().is_terminal() {
            bail!("expected a tar archive on STDIN, but it is a terminal");
        }
        let body = reader_stream(tokio::io::stdin());
        put(c, ctr, path, a.archive, body).await?;
        return Ok(0);
    }
    let src = PathBuf::from(&a.src);
    let meta = if a.follow_link {
        std::fs::metadata(&src)
    } else {
        std::fs::symlink_metadata(&src)
    }
    .with_context(|| format!("no source file {}", src.display()))?;
    let base = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    // Where the entry goes and under which name (docker's rules).
    let (dir, name) = match c.container_archive_stat(ctr, path).await {
        Ok(st) if st.mode & (1 << 31) != 0 => (path.to_string(), base),
        Ok(_) if meta.is_dir() => bail!(
            "cannot copy directory {} over the file {path} in {ctr}",
            src.display()
        ),
        Ok(_) => split_dir_name(path),
        Err(e) if e.is_not_found() => {
            if path.ends_with('/') {
                bail!("the directory {path} does not exist in {ctr}");
            }
            split_dir_name(path)
        }
        Err(e) => return Err(e.into()),
    };
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(16);
    let follow = a.follow_link;
    let pack = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut b = tar::Builder::new(ChanWriter(tx.clone()));
        b.follow_symlinks(follow);
        let r = if meta.is_dir() {
            b.append_dir_all(&name, &src)
        } else {
            b.append_path_with_name(&src, &name)
        };
        let r = r.and_then(|()| b.finish());
        if let Err(e) = &r {
            let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
        }
        r.with_context(|| format!("pack {}", src.display()))
    });
    let body: ByteStream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
    let sent = put(c, ctr, &dir, a.archive, body).await;
    let packed = pack.await.context("the packing task failed")?;
    sent?;
    packed?;
    Ok(0)
}

fn split_dir_name(path: &str) -> (String, String) {
    let p = path.trim_end_matches('/');
    match p.rsplit_once('/') {
        Some(("", n)) => ("/".into(), n.into()),
        Some((d, n)) => (d.into(), n.into()),
        None => (".".into(), p.into()),
    }
}

async fn put(c: &Client, ctr: &str, dir: &str, archive: bool, body: ByteStream) -> Result<()> {
    c.container_archive_put(
        ctr,
        &ArchivePutOptions {
            path: dir.to_string(),
            no_overwrite_dir_non_dir: true,
            copy_uid_gid: archive,
        },
        body,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths() {
        assert_eq!(
            split_container_path("web:/etc/hosts"),
            Some(("web", "/etc/hosts"))
        );
        assert_eq!(split_container_path("web:"), Some(("web", "")));
        assert_eq!(split_container_path("/tmp/a:b"), None);
        assert_eq!(split_container_path("./a:b"), None);
        assert_eq!(split_container_path("dir/a:b"), None);
        assert_eq!(split_container_path("plain"), None);
        assert_eq!(split_dir_name("/etc/x"), ("/etc".into(), "x".into()));
        assert_eq!(split_dir_name("/x"), ("/".into(), "x".into()));
    }

    #[test]
    fn hostile_entries_are_refused_and_nothing_lands_outside() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        // A tar with a `../escape` entry, written by hand (the tar builder refuses such paths).
        let mut raw = Vec::new();
        {
            let mut h = tar::Header::new_gnu();
            let name = b"../escape";
            h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
            h.set_size(3);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            let mut b = tar::Builder::new(&mut raw);
            b.append(&h, &b"bad"[..]).unwrap();
            b.finish().unwrap();
        }
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Ok(Bytes::from(raw))).unwrap();
        drop(tx);
        assert!(unpack(rx, &target, "x", None).is_err());
        assert!(!dir.path().join("escape").exists());
    }
}
