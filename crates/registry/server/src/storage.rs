//! The registry's storage: content-addressed blobs and per-repository links.
//!
//! ```text
//! ROOT/blobs/sha256/ab/abcd…        blob and manifest bytes, named by their digest (also sha512/)
//! ROOT/uploads/<uuid>               upload in progress (removed at start)
//! ROOT/tmp/                         small files being written (removed at start)
//! ROOT/unsynced/sha256-<hex>        blob renamed into place, not yet known to be on disk
//! ROOT/repos/<name>/_layers/sha256-<hex>    empty: the blob belongs to the repository
//! ROOT/repos/<name>/_manifests/sha256-<hex> the manifest is in the repository; holds its media type
//! ROOT/repos/<name>/_tags/<tag>             holds "sha256:<hex>"
//! ROOT/repos/<name>/_referrers/<subject>/<referrer>  descriptor JSON of a referrer
//! ```
//!
//! Invariants: a file under `blobs/` is complete and its digest verified (it is
//! renamed there only after verification). Durability is deferred rather than
//! paid on the request path: before a blob is renamed into place a marker is
//! created in `unsynced/`; a background flusher fsyncs marked blobs and removes
//! their markers; at start, blobs still marked (a power loss may have left them
//! short) are hashed again and removed if they no longer match their name.
//! The marker is created before the rename, and journaling filesystems commit
//! metadata operations in order, so a blob that survived a crash is marked
//! unless it was flushed. a link or tag is written to a
//! temporary file and renamed, so readers see the old or the new one. Linking
//! (upload commit, mount, manifest put) holds the GC lock shared; GC holds it
//! exclusively, so a blob is never swept between the check that it exists and
//! the link that keeps it. A blob younger than the grace period is never swept,
//! which covers layers uploaded before their manifest; linking touches the
//! blob's mtime for the same reason.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::error::{Code, RegistryError, Result};
use crate::manifest::{self, Parsed};
use crate::names::{is_tag, validate_name, Alg, Digest, Reference};

/// The storage under one root directory.
pub struct Store {
    root: PathBuf,
    gc_lock: RwLock<()>,
    quota: Option<u64>,
    quota_lock: Mutex<()>,
    /// Wakes the flusher after a blob was committed.
    flush: std::sync::Arc<tokio::sync::Notify>,
}

/// What a GC run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_marked: usize,
    pub blobs_deleted: usize,
    pub bytes_freed: u64,
}

/// A stored manifest.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

fn io_err(what: &str) -> impl Fn(io::Error) -> RegistryError + '_ {
    move |e| RegistryError::internal(what, &e)
}

/// A random 128-bit id in hex (upload sessions, temporary files).
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the kernel's random source is available");
    Digest::from_bytes(Alg::Sha256, &b).hex().to_string()
}

impl Store {
    /// Opens (creating) the store at `root` and removes what a crash left behind:
    /// uploads in progress and half-written small files.
    pub fn open(root: &Path, quota: Option<u64>) -> io::Result<Store> {
        for d in [
            "blobs/sha256",
            "blobs/sha512",
            "repos",
            "tmp",
            "uploads",
            "unsynced",
        ] {
            fs::create_dir_all(root.join(d))?;
        }
        for d in ["uploads", "tmp"] {
            for e in fs::read_dir(root.join(d))? {
                let p = e?.path();
                if p.is_dir() {
                    fs::remove_dir_all(&p)?;
                } else {
                    fs::remove_file(&p)?;
                }
            }
        }
        Ok(Store {
            root: root.to_path_buf(),
            gc_lock: RwLock::new(()),
            quota,
            quota_lock: Mutex::new(()),
            flush: std::sync::Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Checks the blobs a crash may have left unflushed: each marked blob is
    /// hashed again and removed if its content no longer matches its name.
    /// Returns how many were removed.
    pub fn recover(&self) -> io::Result<usize> {
        let dir = self.root.join("unsynced");
        let mut removed = 0;
        for f in list_dir(&dir) {
            if let Some(d) = Digest::from_file_name(&f) {
                let p = self.blob_path(&d);
                match hash_file(&p, d.alg()) {
                    Ok(got) if got == d => {}
                    Ok(_) => {
                        tracing::warn!(digest = %d, "blob damaged by a crash; removed");
                        fs::remove_file(&p)?;
                        removed += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            fs::remove_file(dir.join(&f))?;
        }
        Ok(removed)
    }

    /// Flushes every blob marked unsynced to disk and drops its marker.
    pub fn flush_pending(&self) -> io::Result<usize> {
        let dir = self.root.join("unsynced");
        let mut n = 0;
        for f in list_dir(&dir) {
            if let Some(d) = Digest::from_file_name(&f) {
                match fs::File::open(self.blob_path(&d)) {
                    Ok(file) => file.sync_data()?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            fs::remove_file(dir.join(&f))?;
            n += 1;
        }
        Ok(n)
    }

    /// Notified when a blob was committed (for the flusher).
    pub fn committed(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.flush.clone()
    }

    /// Marks `d` unsynced before it is made visible.
    fn mark_unsynced(&self, d: &Digest) -> io::Result<()> {
        fs::File::create(self.root.join("unsynced").join(d.file_name()))?;
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn quota(&self) -> Option<u64> {
        self.quota
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        let h = d.hex();
        self.root
            .join("blobs")
            .join(d.alg().name())
            .join(&h[..2])
            .join(h)
    }

    fn repo_dir(&self, name: &str) -> PathBuf {
        self.root.join("repos").join(name)
    }

    fn layer_link(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo_dir(name).join("_layers").join(d.file_name())
    }

    fn manifest_link(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo_dir(name).join("_manifests").join(d.file_name())
    }

    fn tag_path(&self, name: &str, tag: &str) -> PathBuf {
        self.repo_dir(name).join("_tags").join(tag)
    }

    /// Writes a small file atomically: temporary file, then rename.
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let tmp = self.root.join("tmp").join(random_id());
        let r = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(data)?;
            fs::rename(&tmp, path)
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }

    pub fn repo_exists(&self, name: &str) -> bool {
        let d = self.repo_dir(name);
        ["_layers", "_manifests", "_tags"]
            .iter()
            .any(|s| d.join(s).is_dir())
    }

    // ------------------------------------------------------------ blobs

    /// The path and size of blob `d` of repository `name`, or BLOB_UNKNOWN.
    pub fn blob(&self, name: &str, d: &Digest) -> Result<(PathBuf, u64)> {
        let unknown = || {
            RegistryError::new(
                Code::BlobUnknown,
                format!("blob {d} is not in repository {name}"),
            )
            .with_detail(serde_json::json!({ "digest": d.to_string() }))
        };
        if !self.layer_link(name, d).exists() {
            return Err(unknown());
        }
        let p = self.blob_path(d);
        match fs::metadata(&p) {
            Ok(m) => Ok((p, m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(unknown()),
            Err(e) => Err(RegistryError::internal("stat blob", &e)),
        }
    }

    /// Makes the verified upload at `tmp` blob `d` of repository `name`.
    /// `tmp` is consumed (renamed, or removed if the blob already exists or on error).
    pub fn commit_blob(&self, name: &str, tmp: &Path, d: &Digest, size: u64) -> Result<()> {
        let r = self.commit_blob_inner(name, tmp, d, size);
        let _ = fs::remove_file(tmp);
        r
    }

    fn commit_blob_inner(&self, name: &str, tmp: &Path, d: &Digest, size: u64) -> Result<()> {
        let _gc = self.gc_lock.read().unwrap_or_else(|e| e.into_inner());
        let _q = self.quota_guard();
        self.check_quota(name, d, size)?;
        let dst = self.blob_path(d);
        if dst.exists() {
            touch(&dst);
        } else {
            let dir = dst.parent().expect("blob paths have a parent");
            fs::create_dir_all(dir).map_err(io_err("create blob directory"))?;
            self.mark_unsynced(d)
                .map_err(io_err("mark blob unsynced"))?;
            fs::rename(tmp, &dst).map_err(io_err("move blob into place"))?;
            self.flush.notify_one();
        }
        self.link(name, d)
    }

    fn link(&self, name: &str, d: &Digest) -> Result<()> {
        let l = self.layer_link(name, d);
        if !l.exists() {
            self.write_atomic(&l, b"").map_err(io_err("link blob"))?;
        }
        Ok(())
    }

    /// Mounts blob `d` of repository `from` into `to`; false if `from` lacks it.
    pub fn mount(&self, from: &str, to: &str, d: &Digest) -> Result<bool> {
        let _gc = self.gc_lock.read().unwrap_or_else(|e| e.into_inner());
        let _q = self.quota_guard();
        let Ok((path, size)) = self.blob(from, d) else {
            return Ok(false);
        };
        self.check_quota(to, d, size)?;
        touch(&path);
        self.link(to, d)?;
        Ok(true)
    }

    /// Removes blob `d` from repository `name` (GC frees the bytes later).
    pub fn delete_blob(&self, name: &str, d: &Digest) -> Result<()> {
        self.blob(name, d)?;
        fs::remove_file(self.layer_link(name, d)).map_err(io_err("unlink blob"))
    }

    // ------------------------------------------------------------ quota

    fn quota_guard(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        self.quota
            .map(|_| self.quota_lock.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Bytes repository `name` holds: its blobs and manifests.
    pub fn usage(&self, name: &str) -> u64 {
        let mut total = 0;
        for sub in ["_layers", "_manifests"] {
            for f in list_dir(&self.repo_dir(name).join(sub)) {
                if let Some(d) = Digest::from_file_name(&f) {
                    total += fs::metadata(self.blob_path(&d))
                        .map(|m| m.len())
                        .unwrap_or(0);
                }
            }
        }
        total
    }

    fn check_quota(&self, name: &str, d: &Digest, size: u64) -> Result<()> {
        let Some(q) = self.quota else { return Ok(()) };
        if self.layer_link(name, d).exists() || self.manifest_link(name, d).exists() {
            return Ok(());
        }
        let used = self.usage(name);
        if used + size > q {
            return Err(RegistryError::new(
                Code::Denied,
                format!(
                    "quota of repository {name} exceeded: it holds {used} bytes, {size} more would pass its quota of {q} bytes; delete images or raise --quota"
                ),
            )
            .with_status(hyper::StatusCode::PAYLOAD_TOO_LARGE));
        }
        Ok(())
    }

    // ------------------------------------------------------------ manifests

    /// Resolves a reference to a manifest digest of repository `name`.
    pub fn resolve(&self, name: &str, r: &Reference) -> Result<Digest> {
        let unknown = || {
            RegistryError::new(
                Code::ManifestUnknown,
                format!("manifest {} is not in repository {name}", show(r)),
            )
        };
        let d = match r {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => {
                let s = match fs::read_to_string(self.tag_path(name, t)) {
                    Ok(s) => s,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        if !self.repo_exists(name) {
                            return Err(name_unknown(name));
                        }
                        return Err(unknown());
                    }
                    Err(e) => return Err(RegistryError::internal("read tag", &e)),
                };
                Digest::parse(s.trim()).map_err(|_| unknown())?
            }
        };
        if !self.manifest_link(name, &d).exists() {
            return Err(unknown());
        }
        Ok(d)
    }

    pub fn get_manifest(&self, name: &str, r: &Reference) -> Result<StoredManifest> {
        let d = self.resolve(name, r)?;
        let media_type = fs::read_to_string(self.manifest_link(name, &d))
            .map_err(io_err("read manifest link"))?;
        let bytes = fs::read(self.blob_path(&d)).map_err(io_err("read manifest"))?;
        Ok(StoredManifest {
            digest: d,
            media_type,
            bytes,
        })
    }

    /// Stores a manifest pushed to `name` as `r`; returns its digest and what it refers to.
    pub fn put_manifest(
        &self,
        name: &str,
        r: &Reference,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<(Digest, Parsed)> {
        let alg = match r {
            Reference::Digest(want) => want.alg(),
            Reference::Tag(_) => Alg::Sha256,
        };
        let d = alg.digest(bytes);
        if let Reference::Digest(want) = r {
            if *want != d {
                return Err(RegistryError::new(
                    Code::DigestInvalid,
                    format!("manifest pushed as {want} has digest {d}"),
                )
                .with_detail(serde_json::json!({ "digest": want.to_string() })));
            }
        }
        let p = manifest::parse(content_type, bytes)?;
        let _gc = self.gc_lock.read().unwrap_or_else(|e| e.into_inner());
        let _q = self.quota_guard();
        for b in &p.blobs {
            if self.blob(name, b).is_err() {
                return Err(RegistryError::new(
                    Code::ManifestBlobUnknown,
                    format!("manifest refers to blob {b}, which is not in repository {name}: push it first"),
                )
                .with_detail(serde_json::json!({ "digest": b.to_string() })));
            }
        }
        for c in &p.children {
            if !self.manifest_link(name, c).exists() {
                return Err(RegistryError::new(
                    Code::ManifestBlobUnknown,
                    format!("index refers to manifest {c}, which is not in repository {name}: push it first"),
                )
                .with_detail(serde_json::json!({ "digest": c.to_string() })));
            }
        }
        self.check_quota(name, &d, bytes.len() as u64)?;
        let dst = self.blob_path(&d);
        if dst.exists() {
            touch(&dst);
        } else {
            let dir = dst.parent().expect("blob paths have a parent");
            fs::create_dir_all(dir).map_err(io_err("create blob directory"))?;
            self.mark_unsynced(&d)
                .map_err(io_err("mark manifest unsynced"))?;
            self.write_atomic(&dst, bytes)
                .map_err(io_err("write manifest"))?;
            self.flush.notify_one();
        }
        for b in &p.blobs {
            if let Ok((path, _)) = self.blob(name, b) {
                touch(&path);
            }
        }
        self.write_atomic(&self.manifest_link(name, &d), p.media_type.as_bytes())
            .map_err(io_err("link manifest"))?;
        if let Some(s) = &p.subject {
            let desc = referrer_descriptor(&d, bytes.len(), &p);
            let path = self
                .repo_dir(name)
                .join("_referrers")
                .join(s.file_name())
                .join(d.file_name());
            self.write_atomic(&path, desc.to_string().as_bytes())
                .map_err(io_err("record referrer"))?;
        }
        if let Reference::Tag(t) = r {
            self.write_atomic(&self.tag_path(name, t), d.to_string().as_bytes())
                .map_err(io_err("write tag"))?;
        }
        Ok((d, p))
    }

    /// Deletes a tag, or a manifest with its tags and referrer records.
    pub fn delete_manifest(&self, name: &str, r: &Reference) -> Result<()> {
        let d = self.resolve(name, r)?;
        if let Reference::Tag(t) = r {
            return fs::remove_file(self.tag_path(name, t)).map_err(io_err("delete tag"));
        }
        let repo = self.repo_dir(name);
        for t in list_dir(&repo.join("_tags")) {
            let p = self.tag_path(name, &t);
            if fs::read_to_string(&p).is_ok_and(|s| s.trim() == d.to_string()) {
                let _ = fs::remove_file(p);
            }
        }
        for subj in list_dir(&repo.join("_referrers")) {
            let _ = fs::remove_file(repo.join("_referrers").join(&subj).join(d.file_name()));
        }
        fs::remove_file(self.manifest_link(name, &d)).map_err(io_err("unlink manifest"))
    }

    /// The tags of `name`, sorted.
    pub fn tags(&self, name: &str) -> Result<Vec<String>> {
        if !self.repo_exists(name) {
            return Err(name_unknown(name));
        }
        let mut t: Vec<String> = list_dir(&self.repo_dir(name).join("_tags"))
            .into_iter()
            .filter(|t| is_tag(t))
            .collect();
        t.sort();
        Ok(t)
    }

    /// Descriptors of the manifests of `name` whose subject is `d`.
    pub fn referrers(&self, name: &str, d: &Digest) -> Vec<serde_json::Value> {
        let dir = self.repo_dir(name).join("_referrers").join(d.file_name());
        let mut out: Vec<serde_json::Value> = list_dir(&dir)
            .into_iter()
            .filter_map(|h| {
                let r = Digest::from_file_name(&h)?;
                self.manifest_link(name, &r).exists().then_some(())?;
                serde_json::from_slice(&fs::read(dir.join(&h)).ok()?).ok()
            })
            .collect();
        out.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
        out
    }

    /// All repository names, sorted.
    pub fn catalog(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            let dir = self.root.join("repos").join(&prefix);
            for n in list_dir(&dir) {
                if n.starts_with('_') || !dir.join(&n).is_dir() {
                    continue;
                }
                let name = if prefix.is_empty() {
                    n
                } else {
                    format!("{prefix}/{n}")
                };
                if validate_name(&name).is_err() {
                    continue;
                }
                if self.repo_exists(&name) {
                    out.push(name.clone());
                }
                stack.push(name);
            }
        }
        out.sort();
        out
    }

    // ------------------------------------------------------------ gc

    /// Marks every blob reachable from a manifest of any repository (tagged or
    /// not), then deletes unmarked blobs older than `grace` and the links to
    /// them. Runs while the registry serves: linking waits for it.
    pub fn gc(&self, grace: Duration) -> io::Result<GcReport> {
        let _gc = self.gc_lock.write().unwrap_or_else(|e| e.into_inner());
        let mut marked: HashSet<Digest> = HashSet::new();
        let repos = self.catalog();
        for name in &repos {
            for f in list_dir(&self.repo_dir(name).join("_manifests")) {
                let Some(d) = Digest::from_file_name(&f) else {
                    continue;
                };
                let mt = fs::read_to_string(self.manifest_link(name, &d)).ok();
                let bytes = fs::read(self.blob_path(&d));
                marked.insert(d);
                let Ok(bytes) = bytes else { continue };
                if let Ok(p) = manifest::parse(mt.as_deref(), &bytes) {
                    marked.extend(p.blobs);
                }
            }
        }
        let mut report = GcReport {
            blobs_marked: marked.len(),
            ..GcReport::default()
        };
        let now = SystemTime::now();
        for alg in Alg::ALL {
            let blobs = self.root.join("blobs").join(alg.name());
            for fan in list_dir(&blobs) {
                for hex in list_dir(&blobs.join(&fan)) {
                    if Digest::from_hex(alg, &hex).is_some_and(|d| marked.contains(&d)) {
                        continue;
                    }
                    let p = blobs.join(&fan).join(&hex);
                    let m = fs::metadata(&p)?;
                    let age = m
                        .modified()
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .unwrap_or_default();
                    if age < grace {
                        continue;
                    }
                    fs::remove_file(&p)?;
                    report.blobs_deleted += 1;
                    report.bytes_freed += m.len();
                }
            }
        }
        for name in &repos {
            let dir = self.repo_dir(name).join("_layers");
            for f in list_dir(&dir) {
                if let Some(d) = Digest::from_file_name(&f) {
                    if !self.blob_path(&d).exists() {
                        let _ = fs::remove_file(dir.join(&f));
                    }
                }
            }
        }
        Ok(report)
    }
}

fn referrer_descriptor(d: &Digest, size: usize, p: &Parsed) -> serde_json::Value {
    let mut v = serde_json::json!({
        "mediaType": p.media_type,
        "digest": d.to_string(),
        "size": size,
    });
    if let Some(a) = &p.artifact_type {
        v["artifactType"] = a.clone().into();
    }
    if let Some(a) = &p.annotations {
        v["annotations"] = a.clone();
    }
    v
}

fn name_unknown(name: &str) -> RegistryError {
    RegistryError::new(
        Code::NameUnknown,
        format!("repository {name} is not known to this registry"),
    )
}

fn show(r: &Reference) -> String {
    match r {
        Reference::Tag(t) => t.clone(),
        Reference::Digest(d) => d.to_string(),
    }
}

/// The digest of a file's content under `alg`.
pub fn hash_file(p: &Path, alg: Alg) -> io::Result<Digest> {
    use std::io::Read;
    let mut h = crate::names::Hasher::new(alg);
    let mut f = fs::File::open(p)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

/// Sets a file's mtime to now (keeps a blob in use out of GC's reach).
fn touch(p: &Path) {
    if let Ok(f) = fs::File::options().append(true).open(p) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// The names in a directory (empty if it does not exist).
fn list_dir(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}
