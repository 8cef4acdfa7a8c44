//! The on-disk store: content blobs, snapshots, the image index, the lock,
//! staging, commit and garbage collection.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, HashingWriter};
use crate::error::{io_err, Error, Result};
use crate::reference::{familiar, Reference};

/// A record of one image in the index.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    /// Digest of the manifest blob.
    pub manifest: Digest,
    /// The config's `created`, if any.
    pub created: Option<String>,
    /// Uncompressed size of all layers.
    pub size: u64,
    /// Chain ids, bottom layer first.
    pub chain: Vec<Digest>,
    /// The image it was committed from (`docker commit`), as inspect's `Parent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
    /// `name@digest` references (normalized) under which a registry serves
    /// this image: recorded on pull and push, as Docker's `RepoDigests`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub repo_digests: BTreeSet<String>,
}

/// The image index, persisted as `index.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    /// Image id (config digest) → record.
    pub images: BTreeMap<Digest, ImageRecord>,
    /// Normalized `name:tag` → image id.
    pub tags: BTreeMap<String, Digest>,
    /// Container id → image id of containers with a writable layer, as
    /// older stores recorded them. New holds are the files
    /// `containers/<id>/image` ([`Layout::holds`] merges both),
    /// so starting a container does not rewrite and fsync the whole index.
    pub containers: BTreeMap<String, Digest>,
}

impl Index {
    /// The familiar tags of an image, sorted.
    pub fn tags_of(&self, id: &Digest) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| familiar(k))
            .collect()
    }

    /// The familiar `name@digest` references of an image, sorted.
    pub fn repo_digests_of(&self, id: &Digest) -> Vec<String> {
        self.images
            .get(id)
            .map(|rec| rec.repo_digests.iter().map(|r| familiar(r)).collect())
            .unwrap_or_default()
    }

    /// The normalized tags of an image.
    pub fn full_tags_of(&self, id: &Digest) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Resolves a reference: a tag first (like Docker), then a full id,
    /// then a unique id prefix, then `name@digest` by manifest digest.
    pub fn resolve(&self, s: &str) -> Result<Digest> {
        if let Ok(r) = Reference::parse(s) {
            if let Some(d) = r.digest() {
                let wanted = r.to_string();
                return self
                    .images
                    .iter()
                    .find(|(_, rec)| &rec.manifest == d || rec.repo_digests.contains(&wanted))
                    .map(|(id, _)| id.clone())
                    .ok_or_else(|| Error::NotFound(s.to_owned()));
            }
            if let Some(id) = self.tags.get(&r.to_string()) {
                return Ok(id.clone());
            }
        }
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = self.images.keys().filter(|id| id.hex().starts_with(hex));
            if let Some(first) = found.next() {
                if found.next().is_some() {
                    return Err(Error::Ambiguous(s.to_owned()));
                }
                return Ok(first.clone());
            }
        }
        Err(Error::NotFound(s.to_owned()))
    }
}

/// Asks the file system to spread the subdirectories of `dir` over its
/// allocation groups, as it does for those of its root (ext4's `TOPDIR`
/// flag, `chattr +T`; other file systems refuse it, which is fine).
///
/// Why: a container's directories and files are allocated in the group of
/// their parent. Without a journal, ext4 skips an inode freed in the last
/// minute (six while its table block is dirty) and looks each one up, from
/// the start of the group, at every allocation; an overlay mount alone
/// frees four in its work directory. With every container in one group, a
/// start scanned past the inodes freed by all recent ones: 2.5 ms of CPU
/// per container over 300 starts, measured on this project's VM.
pub fn spread_subdirectories(dir: &Path) {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
    let Ok(f) = File::open(dir) else { return };
    match ioctl_getflags(&f) {
        Ok(flags) if !flags.contains(IFlags::TOPDIR) => {
            if let Err(e) = ioctl_setflags(&f, flags | IFlags::TOPDIR) {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot mark the directory a top directory");
            }
        }
        _ => {}
    }
}

/// Directories made ahead of the containers that take them, in a parent
/// that spreads its subdirectories ([`spread_subdirectories`]): there each
/// new directory costs ext4 a look at every group's counts and often the
/// read of a cold bitmap, about 0.5 ms here (a subdirectory of an ordinary
/// directory, 0.06 ms). Made in the background (`refill`), a container's
/// directory is then a rename within the parent (`make`). Spares are named
/// `.spare-…`, hold only the listed empty subdirectories, and are taken
/// again after a restart.
#[derive(Debug)]
pub struct SpareDirs {
    parent: PathBuf,
    subdirs: &'static [&'static str],
    ready: std::sync::Mutex<Vec<PathBuf>>,
    refilling: std::sync::atomic::AtomicBool,
    want: usize,
}

/// The name prefix of spare directories.
pub const SPARE_PREFIX: &str = ".spare-";

impl SpareDirs {
    /// Spares in `parent`, each with `subdirs`, `want` of them kept ready
    /// by [`SpareDirs::refill`]; those a previous run left are taken up.
    pub fn new(parent: &Path, subdirs: &'static [&'static str], want: usize) -> SpareDirs {
        let ready = fs::read_dir(parent)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(SPARE_PREFIX))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        SpareDirs {
            parent: parent.to_owned(),
            subdirs,
            ready: std::sync::Mutex::new(ready),
            refilling: std::sync::atomic::AtomicBool::new(false),
            want,
        }
    }

    /// Makes `parent/name` with its subdirectories: a spare renamed, or new
    /// directories if none is ready. `name` must not exist.
    pub fn make(&self, name: &str) -> io::Result<PathBuf> {
        let target = self.parent.join(name);
        loop {
            let spare = self.ready.lock().expect("spares lock").pop();
            let Some(spare) = spare else { break };
            // RENAME_NOREPLACE: a directory renamed over an empty one
            // would replace it.
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                &spare,
                rustix::fs::CWD,
                &target,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => return Ok(target),
                Err(rustix::io::Errno::EXIST) => {
                    self.ready.lock().expect("spares lock").push(spare);
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists));
                }
                // Gone (removed by hand): the next one.
                Err(_) => {}
            }
        }
        self.make_new(&target)?;
        Ok(target)
    }

    /// `path` and its subdirectories, made now.
    fn make_new(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)?;
        self.subdirs
            .iter()
            .try_for_each(|d| fs::create_dir(path.join(d)))
    }

    /// Makes spares until `want` are ready; one caller at a time does it,
    /// others return at once. Blocking: run it off async workers.
    pub fn refill(&self) {
        if self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        while self.ready.lock().expect("spares lock").len() < self.want {
            let path = self.parent.join(unique(SPARE_PREFIX));
            match self.make_new(&path) {
                Ok(()) => self.ready.lock().expect("spares lock").push(path),
                Err(e) => {
                    tracing::debug!(dir = %path.display(), error = %e, "spare directory");
                    let _ = fs::remove_dir_all(&path);
                    break;
                }
            }
        }
        self.refilling.store(false, Ordering::Release);
    }
}

/// Holds the store's exclusive lock (an `flock` on `ROOT/lock`) while alive.
pub(crate) struct LockGuard {
    _file: File,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A unique name for temporary files and directories.
pub(crate) fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

/// Paths of the store layout.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }
    pub fn blob(&self, d: &Digest) -> PathBuf {
        self.blobs().join(d.hex())
    }
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }
    pub fn snapshot(&self, chain: &Digest) -> PathBuf {
        self.snapshots().join(chain.hex())
    }
    pub fn links(&self) -> PathBuf {
        self.root.join("l")
    }
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn empty(&self) -> PathBuf {
        self.root.join("empty")
    }
    pub fn index(&self) -> PathBuf {
        self.root.join("index.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }

    pub fn lock(&self) -> Result<LockGuard> {
        let path = self.lock_file();
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        rustix::fs::flock(&file, FlockOperation::LockExclusive).map_err(|e| Error::Io {
            op: "lock",
            path,
            source: e.into(),
        })?;
        Ok(LockGuard { _file: file })
    }

    pub fn read_index(&self) -> Result<Index> {
        let path = self.index();
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| Error::Json {
                what: format!("image index {}", path.display()),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io_err("read", path)(e)),
        }
    }

    /// Every container's hold on its image: those in the index (older
    /// stores) and those in `containers/<id>/image`.
    pub fn holds(&self, index: &Index) -> Result<BTreeMap<String, Digest>> {
        let mut holds = index.containers.clone();
        let dir = self.containers();
        let entries = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(holds),
            Err(e) => return Err(io_err("read", dir)(e)),
        };
        for e in entries.flatten() {
            if let Some(image) = self.read_hold(&e.path()) {
                holds.insert(e.file_name().to_string_lossy().into_owned(), image);
            }
        }
        Ok(holds)
    }

    /// The image a container layer directory holds, if it says.
    pub fn read_hold(&self, container_dir: &Path) -> Option<Digest> {
        fs::read_to_string(container_dir.join("image"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Records that the container layer in `container_dir` uses `image`.
    /// Not fsynced: it lasts exactly as long as the layer directory itself
    /// (whose creation is not synced either).
    pub fn write_hold(&self, container_dir: &Path, image: &Digest) -> Result<()> {
        let tmp = container_dir.join(".image.tmp");
        let path = container_dir.join("image");
        fs::write(&tmp, image.to_string()).map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename into place", path))
    }

    /// Writes the index atomically (temp file, fsync, rename). Call with the
    /// lock held.
    pub fn write_index(&self, index: &Index) -> Result<()> {
        let data = serde_json::to_vec_pretty(index).map_err(|source| Error::Json {
            what: "image index".into(),
            source,
        })?;
        let tmp = self.tmp().join(unique("index"));
        let res = (|| {
            let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
            f.write_all(&data).map_err(io_err("write", &tmp))?;
            f.sync_all().map_err(io_err("fsync", &tmp))?;
            fs::rename(&tmp, self.index()).map_err(io_err("rename into place", self.index()))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob(d);
        fs::read(&p).map_err(io_err("read blob", p))
    }
}

/// A private directory under `ROOT/tmp` where a load or import writes
/// everything before commit. It holds an `flock` so that `open` in another
/// process does not clean it up; dropping it removes the directory.
pub(crate) struct Staging {
    pub dir: PathBuf,
    _lock: File,
    /// Blobs written so far: digest → staged file.
    pub blobs: BTreeMap<Digest, PathBuf>,
    /// Snapshots unpacked so far: chain id → staged directory (holding `fs`).
    pub snapshots: BTreeMap<Digest, PathBuf>,
    n: u64,
}

impl Staging {
    pub fn new(layout: &Layout) -> Result<Staging> {
        let dir = layout.tmp().join(unique("stage"));
        fs::create_dir(&dir).map_err(io_err("create staging directory", &dir))?;
        let lock_path = dir.join(".lock");
        let lock = File::create(&lock_path).map_err(io_err("create", &lock_path))?;
        rustix::fs::flock(&lock, FlockOperation::LockShared).map_err(|e| Error::Io {
            op: "lock",
            path: lock_path,
            source: e.into(),
        })?;
        Ok(Staging {
            dir,
            _lock: lock,
            blobs: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            n: 0,
        })
    }

    /// A fresh path inside the staging directory.
    pub fn path(&mut self, what: &str) -> PathBuf {
        self.n += 1;
        self.dir.join(format!("{what}-{}", self.n))
    }

    /// Streams `r` into a staged file, hashing it; returns its digest, size
    /// and path. The file is not yet a blob.
    pub fn write(&mut self, mut r: impl Read) -> Result<(Digest, u64, PathBuf)> {
        let path = self.path("file");
        let f = File::create(&path).map_err(io_err("create", &path))?;
        let mut w = HashingWriter::new(io::BufWriter::new(f));
        io::copy(&mut r, &mut w).map_err(Error::Archive)?;
        let (buf, digest, size) = w.finish();
        let f = buf
            .into_inner()
            .map_err(|e| io_err("write", &path)(e.into_error()))?;
        f.sync_all().map_err(io_err("fsync", &path))?;
        Ok((digest, size, path))
    }

    /// Stages `data` as a blob.
    pub fn add_blob_bytes(&mut self, data: &[u8]) -> Result<Digest> {
        let (d, _, p) = self.write(data)?;
        self.blobs.entry(d.clone()).or_insert(p);
        Ok(d)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove staging directory");
        }
    }
}

/// Removes leftovers in `ROOT/tmp` that no live staging holds.
pub(crate) fn clean_tmp(layout: &Layout) -> Result<()> {
    let tmp = layout.tmp();
    for ent in fs::read_dir(&tmp).map_err(io_err("read", &tmp))? {
        let ent = ent.map_err(io_err("read", &tmp))?;
        let p = ent.path();
        let is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            if let Ok(f) = File::open(p.join(".lock")) {
                if rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
                    continue; // a live load in another process
                }
            }
            let _ = fs::remove_dir_all(&p);
        } else {
            let _ = fs::remove_file(&p);
        }
    }
    Ok(())
}

/// An image to add to the index at commit.
pub(crate) struct NewImage {
    pub id: Digest,
    pub record: ImageRecord,
    pub tags: Vec<Reference>,
}

/// Moves staged blobs and snapshots into place and adds `images` to the
/// index, all under the lock. If anything fails, what this commit moved
/// into place is removed again, so the store is as before.
pub(crate) fn commit(layout: &Layout, staging: &mut Staging, images: &[NewImage]) -> Result<()> {
    let _lock = layout.lock()?;
    let mut placed: Vec<PathBuf> = Vec::new();
    let res = (|| {
        let mut index = layout.read_index()?;
        for (d, p) in &staging.blobs {
            let dst = layout.blob(d);
            if dst.exists() {
                continue;
            }
            fs::rename(p, &dst).map_err(io_err("move blob into place", &dst))?;
            placed.push(dst);
        }
        for (chain, p) in &staging.snapshots {
            let dst = layout.snapshot(chain);
            if dst.exists() {
                continue; // unpacked meanwhile by someone else: ours is dropped
            }
            fs::rename(p, &dst).map_err(io_err("move snapshot into place", &dst))?;
            placed.push(dst);
        }
        for img in images {
            for c in &img.record.chain {
                if !layout.snapshot(c).is_dir() {
                    return Err(Error::Format(format!(
                        "layer snapshot {c} of image {} vanished during the load (removed concurrently?): retry",
                        img.id
                    )));
                }
            }
            let mut record = img.record.clone();
            if let Some(old) = index.images.get(&img.id) {
                record.repo_digests.extend(old.repo_digests.iter().cloned());
            }
            index.images.insert(img.id.clone(), record);
            // `name@digest` references are not tags.
            for t in img.tags.iter().filter(|t| t.digest().is_none()) {
                index.tags.insert(t.to_string(), img.id.clone());
            }
        }
        layout.write_index(&index)
    })();
    if res.is_err() {
        for p in placed.iter().rev() {
            let _ = if p.is_dir() {
                fs::remove_dir_all(p)
            } else {
                fs::remove_file(p)
            };
        }
    }
    res
}

/// What garbage collection removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs: Vec<Digest>,
    /// Snapshots (chain ids) deleted.
    pub snapshots: Vec<Digest>,
}

/// The blob digests an image's manifest refers to (config and layers) plus
/// the manifest itself.
pub(crate) fn manifest_blobs(layout: &Layout, manifest: &Digest) -> Result<Vec<Digest>> {
    let m = crate::archive::read_manifest(layout, manifest)?;
    let mut out = vec![manifest.clone(), m.config.digest.clone()];
    out.extend(m.layers.iter().map(|l| l.digest.clone()));
    Ok(out)
}

/// Deletes blobs and snapshots no image in `index` refers to. Call with
/// the lock held.
pub(crate) fn gc(layout: &Layout, index: &Index) -> Result<GcReport> {
    let mut blobs = BTreeSet::new();
    let mut snaps = BTreeSet::new();
    for rec in index.images.values() {
        blobs.extend(manifest_blobs(layout, &rec.manifest)?);
        snaps.extend(rec.chain.iter().cloned());
    }
    let mut report = GcReport::default();
    let dir = layout.blobs();
    for ent in fs::read_dir(&dir).map_err(io_err("read", &dir))? {
        let ent = ent.map_err(io_err("read", &dir))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        match Digest::from_hex(&name) {
            Ok(d) if blobs.contains(&d) => {}
            parsed => {
                fs::remove_file(ent.path()).map_err(io_err("remove blob", ent.path()))?;
                if let Ok(d) = parsed {
                    report.blobs.push(d);
                }
            }
        }
    }
    let dir = layout.snapshots();
    for ent in fs::read_dir(&dir).map_err(io_err("read", &dir))? {
        let ent = ent.map_err(io_err("read", &dir))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        match Digest::from_hex(&name) {
            Ok(d) if snaps.contains(&d) => {}
            parsed => {
                fs::remove_dir_all(ent.path()).map_err(io_err("remove snapshot", ent.path()))?;
                if let Ok(d) = parsed {
                    report.snapshots.push(d);
                }
            }
        }
    }
    // Short links whose snapshot is gone.
    let dir = layout.links();
    for ent in fs::read_dir(&dir).map_err(io_err("read", &dir))? {
        let ent = ent.map_err(io_err("read", &dir))?;
        if !ent.path().exists() {
            let _ = fs::remove_file(ent.path());
        }
    }
    if !report.blobs.is_empty() || !report.snapshots.is_empty() {
        tracing::info!(
            blobs = report.blobs.len(),
            snapshots = report.snapshots.len(),
            "garbage collected"
        );
    }
    Ok(report)
}
