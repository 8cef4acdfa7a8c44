//! Pull, push and login for the Engine API (`POST /images/create?fromImage=`,
//! `POST /images/{name}/push`, `POST /auth`) over
//! [`strato_registry_client`], with Docker's progress messages.
//!
//! * **Pull** resolves the manifest before answering (so "not found" and
//!   "unauthorized" are plain HTTP errors, like dockerd), then streams:
//!   `Pulling from`, per layer `Pulling fs layer`/`Already exists`,
//!   `Downloading` (progressDetail), `Verifying Checksum`, `Download
//!   complete`, `Extracting`, `Pull complete`, then `Digest:` and `Status:`.
//!   Blobs are downloaded into an [`strato_image::Ingest`]'s staging
//!   directory and enter the store only when all are verified and unpacked;
//!   a failed pull leaves nothing.
//! * **Push** sends the stored manifest's blobs. The store keeps layers as
//!   they came; an uncompressed layer (from `docker import` or an
//!   uncompressed `docker load`) is gzip-compressed for the registry with a
//!   deterministic encoder (no timestamp or name in the header), and the
//!   uncompressed→compressed digest mapping is kept in
//!   `DATA_ROOT/registry/metadata.json`, so a second push checks the known
//!   digest with `HEAD` instead of compressing again. The same file records
//!   which repositories a blob is known in, for cross-repository mounts.
//! * **Credentials**: `X-Registry-Auth` when the client sends it, else the
//!   entry for the registry in `DATA_ROOT/credentials.json` (mode 0600, in
//!   the shape of Docker's `config.json` `auths`), which a successful
//!   `POST /auth` writes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strato_api::types::{
    AuthConfig, AuthResponse, DistributionInspect, JsonMessage, OciDescriptor, OciPlatform,
    ProgressDetail, PullOptions,
};
use strato_api::{ApiError, ProgressStream};
use strato_image::{media, Digest, ImageStore, LayerStep, PulledImage, Reference, VerifiedBlob};
use strato_registry_client::{
    BlobJob, BlobPushed, Client, ClientConfig, Credentials, Error as RegError, PullProgress,
    PushProgress, Repository, UploadJob,
};
use tokio::sync::mpsc;

use crate::streams::channel_stream;

/// Concurrent layer downloads (dockerd's default).
const DOWNLOADS: usize = 3;
/// Concurrent blob uploads (dockerd's default).
const UPLOADS: usize = 5;
/// Progress messages of one blob are sent at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Image configs larger than this are refused.
const MAX_CONFIG: usize = 32 << 20;
/// Repositories remembered per blob for cross-repository mounts.
const MAX_SOURCES: usize = 8;

/// Reports an image event (`pull`, `push`) with the image and reference.
pub type Notify = Arc<dyn Fn(&str, &str, &str) + Send + Sync>;

/// Pull, push and login of one engine.
pub struct Distribution {
    client: Client,
    images: ImageStore,
    dir: PathBuf,
    credentials: PathBuf,
    meta: Mutex<Meta>,
}

impl Distribution {
    /// The HTTP client (pool, TLS roots) for other downloads: `ADD <url>`.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A directory for downloads in progress, emptied when the daemon starts.
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }
}

impl std::fmt::Debug for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distribution")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What `metadata.json` keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Meta {
    /// Uncompressed layer digest → the gzip blob pushed for it.
    compressed: BTreeMap<Digest, BlobRef>,
    /// Blob digest → `domain/path` of repositories known to have it.
    sources: BTreeMap<Digest, BTreeSet<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BlobRef {
    digest: Digest,
    size: u64,
}

/// The credentials file: `{"auths": {"HOST": {"auth": base64(user:pass)}}}`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CredFile {
    #[serde(default)]
    auths: BTreeMap<String, CredEntry>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CredEntry {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    identitytoken: String,
}

fn reg_err(e: RegError) -> ApiError {
    match &e {
        RegError::NotFound { .. } => ApiError::not_found(e.to_string()),
        RegError::Unauthorized { .. } => ApiError::unauthorized(e.to_string()),
        RegError::Reference(_) => ApiError::bad_parameter(e.to_string()),
        _ => ApiError::internal(e.to_string()),
    }
}

/// What to ask the registry's manifests endpoint for: the reference's
/// digest, else its tag, else `latest`.
fn manifest_reference(r: &Reference) -> String {
    r.digest()
        .map(|d| d.to_string())
        .or_else(|| r.tag().map(str::to_owned))
        .unwrap_or_else(|| "latest".into())
}

/// Docker's short layer id: 12 hex digits.
fn short(d: &Digest) -> String {
    d.short().to_owned()
}

/// `serveraddress` of `docker login` → registry domain
/// (`https://index.docker.io/v1/` → `docker.io`).
fn server_domain(addr: &str) -> String {
    let s = addr.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    match s {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

/// Credentials from an `X-Registry-Auth` / `POST /auth` body.
fn creds_of(a: &AuthConfig) -> Credentials {
    let mut c = Credentials {
        username: a.username.clone(),
        password: a.password.clone(),
        identity_token: a.identitytoken.clone(),
        registry_token: a.registrytoken.clone(),
    };
    if !c.has_basic() && !a.auth.is_empty() {
        if let Some(b) = Credentials::from_auth_field(&a.auth) {
            c.username = b.username;
            c.password = b.password;
        }
    }
    c
}

/// Docker's human sizes: `1.234MB` (decimal units, 4 significant digits).
fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

/// Docker's progress bar text: `[=====>      ]  1.2MB/3.4MB`.
fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH).checked_div(total).unwrap_or(0) as usize;
    let mut b = "=".repeat(filled);
    if (filled as u64) < WIDTH {
        b.push('>');
    }
    format!(
        "[{b:<width$}] {:>8}/{}",
        human(current),
        human(total),
        width = WIDTH as usize
    )
}

fn progress_msg(status: &str, id: &str, current: u64, total: u64) -> JsonMessage {
    JsonMessage {
        status: Some(status.into()),
        id: Some(id.into()),
        progress: Some(bar(current, total)),
        progress_detail: Some(ProgressDetail {
            current: Some(current as i64),
            total: Some(total as i64),
        }),
        ..Default::default()
    }
}

fn status(text: impl Into<String>, id: Option<&str>) -> JsonMessage {
    JsonMessage::status(text, id.map(str::to_owned))
}

/// Sends progress messages of blobs at most every [`PROGRESS_EVERY`].
struct Throttle {
    last: HashMap<Digest, Instant>,
}

impl Throttle {
    fn due(&mut self, d: &Digest, last_byte: bool) -> bool {
        let now = Instant::now();
        match self.last.get(d) {
            Some(t) if !last_byte && now.duration_since(*t) < PROGRESS_EVERY => false,
            _ => {
                self.last.insert(d.clone(), now);
                true
            }
        }
    }
}

/// Writes `data` to `path` atomically (temp file, fsync, rename) with `mode`.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// gzip-compresses `src` into `dst` deterministically (no mtime, no file
/// name in the header, default level); returns the digest and size.
fn gzip_layer(src: &Path, dst: &Path) -> io::Result<(Digest, u64)> {
    let input = fs::File::open(src)?;
    let out = fs::File::create(dst)?;
    let hw = strato_image::digest::HashingWriter::new(io::BufWriter::new(out));
    let mut enc = flate2::GzBuilder::new().write(hw, flate2::Compression::default());
    io::copy(&mut BufReader::with_capacity(1 << 20, input), &mut enc)?;
    let hw = enc.finish()?;
    let (buf, digest, size) = hw.finish();
    buf.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok((digest, size))
}

/// Whether a layer media type is an uncompressed tar.
fn uncompressed(media_type: &str) -> bool {
    media_type == media::OCI_LAYER || media_type == "application/vnd.docker.image.rootfs.diff.tar"
}

impl Distribution {
    /// Sets up pull/push for the store `images`, keeping its files under
    /// `data_root`. `insecure` are the `--insecure-registry` values.
    pub fn new(
        data_root: &Path,
        images: ImageStore,
        insecure: Vec<String>,
    ) -> Result<Distribution, String> {
        let dir = data_root.join("registry");
        let tmp = dir.join("tmp");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
        let meta = match fs::read(dir.join("metadata.json")) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "registry metadata unreadable; starting afresh");
                Meta::default()
            }),
            Err(_) => Meta::default(),
        };
        let client = Client::new(ClientConfig {
            insecure_registries: insecure,
            user_agent: format!("strato/{}", env!("CARGO_PKG_VERSION")),
        })
        .map_err(|e| e.to_string())?;
        Ok(Distribution {
            client,
            images,
            credentials: data_root.join("credentials.json"),
            dir,
            meta: Mutex::new(meta),
        })
    }

    fn save_meta(&self, meta: &Meta) {
        let res = serde_json::to_vec(meta)
            .map_err(io::Error::other)
            .and_then(|b| write_atomic(&self.dir.join("metadata.json"), &b, 0o644));
        if let Err(e) = res {
            tracing::warn!(error = %e, "cannot save registry metadata");
        }
    }

    /// Remembers that `repo` (`domain/path`) has `blobs`.
    fn remember_sources(&self, repo: &str, blobs: &[Digest]) {
        let mut meta = self.meta.lock().expect("registry metadata lock");
        for d in blobs {
            let set = meta.sources.entry(d.clone()).or_default();
            if set.len() < MAX_SOURCES || set.contains(repo) {
                set.insert(repo.to_owned());
            }
        }
        self.save_meta(&meta);
    }

    /// Another repository of `domain` known to have `d`.
    fn mount_source(&self, domain: &str, path: &str, d: &Digest) -> Option<String> {
        let meta = self.meta.lock().expect("registry metadata lock");
        let prefix = format!("{domain}/");
        meta.sources.get(d)?.iter().find_map(|r| {
            r.strip_prefix(&prefix)
                .filter(|p| *p != path)
                .map(str::to_owned)
        })
    }

    /// The credentials for `domain`: the header's, else the file's.
    fn credentials_for(&self, domain: &str, header: Option<&AuthConfig>) -> Credentials {
        if let Some(a) = header {
            let c = creds_of(a);
            if !c.is_empty() {
                return c;
            }
        }
        let Ok(b) = fs::read(&self.credentials) else {
            return Credentials::default();
        };
        let file: CredFile = match serde_json::from_slice(&b) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(file = %self.credentials.display(), error = %e, "credentials file unreadable");
                return Credentials::default();
            }
        };
        file.auths
            .iter()
            .find(|(k, _)| server_domain(k) == domain)
            .map(|(_, e)| {
                let mut c = Credentials::from_auth_field(&e.auth).unwrap_or_default();
                c.identity_token = e.identitytoken.clone();
                c
            })
            .unwrap_or_default()
    }

    /// A client of `r`'s repository with the credentials for its registry
    /// (`push`: asking for push access too).
    async fn repository(
        &self,
        r: &Reference,
        auth: Option<&AuthConfig>,
        push: bool,
    ) -> Result<Repository, ApiError> {
        let creds = self.credentials_for(r.domain(), auth);
        self.client
            .repository(r, creds, push)
            .await
            .map_err(reg_err)
    }

    /// `POST /auth`: checks the credentials with the registry and, when
    /// they work, stores them in the credentials file.
    pub async fn login(&self, auth: AuthConfig) -> Result<AuthResponse, ApiError> {
        let domain = server_domain(&auth.serveraddress);
        let creds = creds_of(&auth);
        if creds.is_empty() {
            return Err(ApiError::bad_parameter(
                "no credentials given: send username and password",
            ));
        }
        self.client
            .login(&domain, &creds)
            .await
            .map_err(|e| match e {
                RegError::Unauthorized { .. } => ApiError::unauthorized(e.to_string()),
                e => ApiError::internal(e.to_string()),
            })?;
        let mut file: CredFile = fs::read(&self.credentials)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let raw = format!("{}:{}", creds.username, creds.password);
        file.auths.insert(
            domain.clone(),
            CredEntry {
                auth: if creds.has_basic() {
                    base64::engine::general_purpose::STANDARD.encode(raw)
                } else {
                    String::new()
                },
                identitytoken: creds.identity_token.clone(),
            },
        );
        let data =
            serde_json::to_vec_pretty(&file).map_err(|e| ApiError::internal(e.to_string()))?;
        write_atomic(&self.credentials, &data, 0o600).map_err(|e| {
            ApiError::internal(format!(
                "save credentials to {}: {e}",
                self.credentials.display()
            ))
        })?;
        tracing::info!(registry = %domain, user = %creds.username, "login succeeded");
        Ok(AuthResponse {
            status: "Login Succeeded".into(),
            identity_token: String::new(),
        })
    }

    /// `GET /distribution/{name}/json`: asks the registry what `name`
    /// (tag `latest` when it has neither tag nor digest) is, without
    /// pulling it.
    pub async fn inspect(
        &self,
        name: &str,
        auth: Option<AuthConfig>,
    ) -> Result<DistributionInspect, ApiError> {
        let r = Reference::parse(name).map_err(|e| ApiError::bad_parameter(e.to_string()))?;
        let repo = self.repository(&r, auth.as_ref(), false).await?;
        let what = manifest_reference(&r);
        let (desc, platforms) = repo.inspect(&what).await.map_err(reg_err)?;
        Ok(DistributionInspect {
            descriptor: OciDescriptor {
                media_type: desc.media_type,
                digest: desc.digest.to_string(),
                size: i64::try_from(desc.size).unwrap_or(i64::MAX),
            },
            platforms: platforms
                .into_iter()
                .map(|p| OciPlatform {
                    architecture: p.architecture,
                    os: p.os,
                    variant: p.variant.unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// `POST /images/create?fromImage=`.
    pub async fn pull(
        self: &Arc<Self>,
        opts: PullOptions,
        notify: Notify,
    ) -> Result<ProgressStream, ApiError> {
        let text = if opts.tag.is_empty() {
            opts.from_image.clone()
        } else if opts.tag.starts_with("sha256:") {
            format!("{}@{}", opts.from_image, opts.tag)
        } else {
            format!("{}:{}", opts.from_image, opts.tag)
        };
        let r = Reference::parse(&text).map_err(|e| ApiError::bad_parameter(e.to_string()))?;
        if !opts.platform.is_empty() {
            let want = format!("linux/{}", strato_registry_client::host_arch());
            if opts.platform != want && opts.platform != "linux" {
                return Err(ApiError::bad_parameter(format!(
                    "platform {:?} is not supported: this engine runs {want} images only",
                    opts.platform
                )));
            }
        }
        let repo = self.repository(&r, opts.auth.as_ref(), false).await?;
        let what = manifest_reference(&r);
        let resolved = repo.resolve(&what).await.map_err(reg_err)?;
        let (tx, rx) = mpsc::channel(256);
        let this = self.clone();
        tokio::spawn(async move {
            let tx2 = tx.clone();
            if let Err(e) = this.pull_stream(repo, r, what, resolved, tx, notify).await {
                tracing::warn!(error = %e, "pull failed");
                let _ = tx2.send(JsonMessage::error(e)).await;
            }
        });
        Ok(channel_stream(rx))
    }

    async fn pull_stream(
        &self,
        repo: Repository,
        r: Reference,
        what: String,
        resolved: strato_registry_client::Resolved,
        tx: mpsc::Sender<JsonMessage>,
        notify: Notify,
    ) -> Result<(), String> {
        let send = |m: JsonMessage| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(m).await;
            }
        };
        send(status(format!("Pulling from {}", r.path()), Some(&what))).await;
        let images = self.images.clone();
        let probe = format!("{}@{}", r.name(), resolved.manifest_digest);
        let existing = tokio::task::spawn_blocking(move || images.resolve(&probe))
            .await
            .map_err(|e| e.to_string())?;
        let repo_name = format!("{}/{}", r.domain(), r.path());
        let m = &resolved.manifest;
        if let Ok(id) = existing {
            let (images, id2, tag) = (self.images.clone(), id.to_string(), r.to_string());
            let repo_digest = r.with_digest(&resolved.digest).to_string();
            let tagged = r.digest().is_none();
            tokio::task::spawn_blocking(move || {
                if tagged {
                    images.tag(&id2, &tag)?;
                }
                images.add_repo_digest(&id2, &repo_digest)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("tag {}: {e}", r.familiar()))?;
            send(status(format!("Digest: {}", resolved.digest), None)).await;
            send(status(
                format!("Status: Image is up to date for {}", r.familiar()),
                None,
            ))
            .await;
            notify("pull", id.as_str(), &r.familiar());
            return Ok(());
        }
        let images = self.images.clone();
        let mut ingest = tokio::task::spawn_blocking(move || images.ingest())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("prepare the pull: {e}"))?;
        // Layers: reuse what the content store has, download the rest (once
        // per digest).
        let mut blobs: HashMap<Digest, VerifiedBlob> = HashMap::new();
        let mut jobs: Vec<BlobJob> = Vec::new();
        for l in &m.layers {
            if blobs.contains_key(&l.digest) || jobs.iter().any(|j| j.descriptor.digest == l.digest)
            {
                continue;
            }
            match ingest.existing_blob(&l.digest).filter(|b| b.size == l.size) {
                Some(b) => {
                    send(status("Already exists", Some(&short(&l.digest)))).await;
                    blobs.insert(l.digest.clone(), b);
                }
                None => {
                    send(status("Pulling fs layer", Some(&short(&l.digest)))).await;
                    jobs.push(BlobJob {
                        descriptor: l.clone(),
                        dest: ingest.download_path(),
                    });
                }
            }
        }
        // Layers beyond the concurrent downloads wait their turn.
        for j in jobs.iter().skip(DOWNLOADS) {
            send(status("Waiting", Some(&short(&j.descriptor.digest)))).await;
        }
        // The config first (small; Docker does the same).
        let config = match ingest.existing_blob(&m.config.digest) {
            Some(b) => b,
            None => {
                let bytes = repo
                    .fetch_small_blob(&m.config, MAX_CONFIG)
                    .await
                    .map_err(|e| e.to_string())?;
                let path = ingest.download_path();
                tokio::fs::write(&path, &bytes)
                    .await
                    .map_err(|e| format!("write {}: {e}", path.display()))?;
                VerifiedBlob {
                    digest: m.config.digest.clone(),
                    size: bytes.len() as u64,
                    path,
                }
            }
        };
        let (etx, mut erx) = mpsc::unbounded_channel();
        let download = repo.download_blobs(jobs.clone(), DOWNLOADS, etx);
        let forward = async {
            let mut throttle = Throttle {
                last: HashMap::new(),
            };
            while let Some(p) = erx.recv().await {
                let msg = match p {
                    PullProgress::Started(_) | PullProgress::Resuming { .. } => None,
                    PullProgress::Downloading {
                        digest,
                        current,
                        total,
                    } => throttle
                        .due(&digest, current == total)
                        .then(|| progress_msg("Downloading", &short(&digest), current, total)),
                    PullProgress::Verifying(d) => {
                        Some(status("Verifying Checksum", Some(&short(&d))))
                    }
                    PullProgress::Done(d) => Some(status("Download complete", Some(&short(&d)))),
                };
                if let Some(msg) = msg {
                    send(msg).await;
                }
            }
        };
        let (res, ()) = futures::join!(download, forward);
        res.map_err(|e| e.to_string())?;
        for j in &jobs {
            blobs.insert(
                j.descriptor.digest.clone(),
                VerifiedBlob {
                    digest: j.descriptor.digest.clone(),
                    size: j.descriptor.size,
                    path: j.dest.clone(),
                },
            );
        }
        let layers: Vec<VerifiedBlob> = m.layers.iter().map(|l| blobs[&l.digest].clone()).collect();
        let ids: Vec<(String, u64)> = m
            .layers
            .iter()
            .map(|l| (short(&l.digest), l.size))
            .collect();
        let fresh: BTreeSet<Digest> = jobs.iter().map(|j| j.descriptor.digest.clone()).collect();
        let fresh_idx: Vec<bool> = m.layers.iter().map(|l| fresh.contains(&l.digest)).collect();
        let image = PulledImage {
            manifest: resolved.manifest_bytes.to_vec(),
            config,
            layers,
            tag: r.digest().is_none().then(|| r.clone()),
            repo_digest: Some(r.with_digest(&resolved.digest)),
        };
        let txb = tx.clone();
        let id = tokio::task::spawn_blocking(move || {
            let mut reported = BTreeSet::new();
            ingest.commit(image, &mut |step| match step {
                LayerStep::Extracting(i) if fresh_idx[i] && !reported.contains(&i) => {
                    let (id, size) = &ids[i];
                    let _ = txb.blocking_send(progress_msg("Extracting", id, 0, *size));
                }
                LayerStep::Extracted(i) if fresh_idx[i] && reported.insert(i) => {
                    let _ = txb.blocking_send(status("Pull complete", Some(&ids[i].0)));
                }
                _ => {}
            })
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("store the image {}: {e}", r.familiar()))?;
        let mut all: Vec<Digest> = m.layers.iter().map(|l| l.digest.clone()).collect();
        all.push(m.config.digest.clone());
        self.remember_sources(&repo_name, &all);
        send(status(format!("Digest: {}", resolved.digest), None)).await;
        send(status(
            format!("Status: Downloaded newer image for {}", r.familiar()),
            None,
        ))
        .await;
        notify("pull", id.as_str(), &r.familiar());
        Ok(())
    }

    /// `POST /images/{name}/push?tag=`: pushes `name:tag`, or every tag of
    /// `name` when `tag` is empty.
    pub async fn push(
        self: &Arc<Self>,
        name: &str,
        tag: &str,
        auth: Option<AuthConfig>,
        notify: Notify,
    ) -> Result<ProgressStream, ApiError> {
        let base = Reference::parse(name).map_err(|e| ApiError::bad_parameter(e.to_string()))?;
        if base.digest().is_some() {
            return Err(ApiError::bad_parameter(format!(
                "cannot push {name}: push a tag, not a digest"
            )));
        }
        // `name` may carry its tag itself (`repo:tag` with tag= empty).
        let name_has_tag = name.rsplit('/').next().is_some_and(|l| l.contains(':'));
        let tags: Vec<Reference> = if !tag.is_empty() {
            vec![base.with_tag(tag)]
        } else if name_has_tag {
            vec![base.clone()]
        } else {
            let images = self.images.clone();
            let list = tokio::task::spawn_blocking(move || images.list())
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let mut out: Vec<Reference> = list
                .iter()
                .flat_map(|i| i.repo_tags.iter())
                .filter_map(|t| Reference::parse(t).ok())
                .filter(|t| t.name() == base.name())
                .collect();
            out.sort_by_key(|t| t.to_string());
            out
        };
        if tags.is_empty() {
            return Err(ApiError::no_such_image(&format!(
                "An image does not exist locally with the tag: {}",
                base.familiar().trim_end_matches(":latest")
            )));
        }
        for t in &tags {
            let (images, ts) = (self.images.clone(), t.to_string());
            tokio::task::spawn_blocking(move || images.resolve(&ts))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|_| {
                    ApiError::not_found(format!(
                        "An image does not exist locally with the tag: {}",
                        t.familiar()
                    ))
                })?;
        }
        let repo = self.repository(&base, auth.as_ref(), true).await?;
        let (tx, rx) = mpsc::channel(256);
        let this = self.clone();
        tokio::spawn(async move {
            let _ = tx
                .send(status(
                    format!("The push refers to repository [{}]", base.name()),
                    None,
                ))
                .await;
            for t in tags {
                if let Err(e) = this.push_one(&repo, &t, &tx, &notify).await {
                    tracing::warn!(error = %e, "push failed");
                    let _ = tx.send(JsonMessage::error(e)).await;
                    return;
                }
            }
        });
        Ok(channel_stream(rx))
    }

    async fn push_one(
        &self,
        repo: &Repository,
        r: &Reference,
        tx: &mpsc::Sender<JsonMessage>,
        notify: &Notify,
    ) -> Result<(), String> {
        let send = |m: JsonMessage| async move {
            let _ = tx.send(m).await;
        };
        let tag = r.tag().unwrap_or("latest").to_owned();
        let (images, rs) = (self.images.clone(), r.to_string());
        let (id, (mdigest, mbytes)) = tokio::task::spawn_blocking(move || {
            Ok::<_, strato_image::Error>((images.resolve(&rs)?, images.manifest_of(&rs)?))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("read the image {}: {e}", r.familiar()))?;
        let mut manifest: Value = serde_json::from_slice(&mbytes)
            .map_err(|e| format!("stored manifest {mdigest}: {e}"))?;
        let m: strato_registry_client::Manifest = serde_json::from_value(manifest.clone())
            .map_err(|e| format!("stored manifest {mdigest}: {e}"))?;
        let is_docker = m.media_type.as_deref() == Some(media::DOCKER_MANIFEST);
        let blob_path = |d: &Digest| {
            self.images
                .blob_path(d)
                .ok_or_else(|| format!("blob {d} of {} is missing from the store", r.familiar()))
        };
        // Display ids are the stored layers' short digests.
        for l in m.layers.iter().rev() {
            send(status("Preparing", Some(&short(&l.digest)))).await;
        }
        let work =
            self.dir
                .join("tmp")
                .join(format!("push-{}-{}", std::process::id(), mdigest.short()));
        fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
        let _cleanup = RemoveOnDrop(work.clone());
        let mut changed = false;
        let mut jobs: Vec<UploadJob> = Vec::new();
        let mut display: HashMap<Digest, Vec<String>> = HashMap::new();
        let mut pushed_layers: Vec<(Digest, u64, String)> = Vec::new();
        for (i, l) in m.layers.iter().enumerate() {
            let id = short(&l.digest);
            let (digest, size, path, media_type) = if uncompressed(&l.media_type) {
                changed = true;
                let known = self
                    .meta
                    .lock()
                    .expect("registry metadata lock")
                    .compressed
                    .get(&l.digest)
                    .cloned();
                let gz_type = if is_docker {
                    media::DOCKER_LAYER_GZIP
                } else {
                    media::OCI_LAYER_GZIP
                };
                let present = match &known {
                    Some(k) => repo
                        .blob_exists(&k.digest)
                        .await
                        .map_err(|e| e.to_string())?
                        .is_some(),
                    None => false,
                };
                if let (Some(k), true) = (&known, present) {
                    send(status("Layer already exists", Some(&id))).await;
                    pushed_layers.push((k.digest.clone(), k.size, gz_type.to_owned()));
                    continue;
                }
                let src = blob_path(&l.digest)?;
                let dst = work.join(format!("layer-{i}.gz"));
                let d2 = dst.clone();
                let (gd, gs) = tokio::task::spawn_blocking(move || gzip_layer(&src, &d2))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("compress layer {}: {e}", l.digest))?;
                {
                    let mut meta = self.meta.lock().expect("registry metadata lock");
                    meta.compressed.insert(
                        l.digest.clone(),
                        BlobRef {
                            digest: gd.clone(),
                            size: gs,
                        },
                    );
                    self.save_meta(&meta);
                }
                (gd, gs, dst, gz_type.to_owned())
            } else {
                (
                    l.digest.clone(),
                    l.size,
                    blob_path(&l.digest)?,
                    l.media_type.clone(),
                )
            };
            pushed_layers.push((digest.clone(), size, media_type));
            let ids = display.entry(digest.clone()).or_default();
            ids.push(id);
            if ids.len() == 1 {
                jobs.push(UploadJob {
                    mount_from: self.mount_source(repo.registry(), repo.path(), &digest),
                    digest,
                    size,
                    path,
                });
            }
        }
        jobs.push(UploadJob {
            digest: m.config.digest.clone(),
            size: m.config.size,
            path: blob_path(&m.config.digest)?,
            mount_from: self.mount_source(repo.registry(), repo.path(), &m.config.digest),
        });
        let (etx, mut erx) = mpsc::unbounded_channel();
        let upload = repo.upload_blobs(jobs.clone(), UPLOADS, etx);
        let forward = async {
            let mut throttle = Throttle {
                last: HashMap::new(),
            };
            while let Some(p) = erx.recv().await {
                let (d, msg) = match p {
                    // The first bytes report soon enough.
                    PushProgress::Started(d) => (d, None),
                    PushProgress::Pushing {
                        digest,
                        current,
                        total,
                    } => {
                        let due = throttle.due(&digest, current == total);
                        let m = due.then(|| progress_msg("Pushing", "", current, total));
                        (digest, m)
                    }
                    PushProgress::Done(d, how) => {
                        let text = match how {
                            BlobPushed::Exists => "Layer already exists".to_owned(),
                            BlobPushed::Uploaded => "Pushed".to_owned(),
                            BlobPushed::Mounted => format!(
                                "Mounted from {}",
                                jobs.iter()
                                    .find(|j| j.digest == d)
                                    .and_then(|j| j.mount_from.clone())
                                    .unwrap_or_default()
                            ),
                        };
                        (d, Some(status(text, None)))
                    }
                };
                let (Some(mut msg), Some(ids)) = (msg, display.get(&d)) else {
                    continue;
                };
                for id in ids {
                    msg.id = Some(id.clone());
                    send(msg.clone()).await;
                }
            }
        };
        let (res, ()) = futures::join!(upload, forward);
        res.map_err(|e| e.to_string())?;
        let (bytes, media_type) = if changed {
            let layers: Vec<Value> = pushed_layers
                .iter()
                .map(|(d, s, t)| json!({"mediaType": t, "digest": d, "size": s}))
                .collect();
            manifest["layers"] = Value::Array(layers);
            let b = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
            (Bytes::from(b), m.media_type.clone())
        } else {
            (Bytes::from(mbytes), m.media_type.clone())
        };
        let media_type = media_type.unwrap_or_else(|| media::OCI_MANIFEST.to_owned());
        let size = bytes.len();
        let digest = repo
            .put_manifest(&tag, &media_type, bytes)
            .await
            .map_err(|e| e.to_string())?;
        let mut all: Vec<Digest> = pushed_layers.iter().map(|(d, _, _)| d.clone()).collect();
        all.push(m.config.digest.clone());
        self.remember_sources(&format!("{}/{}", repo.registry(), repo.path()), &all);
        let (images, id2, repo_digest) = (
            self.images.clone(),
            id.to_string(),
            r.with_digest(&digest).to_string(),
        );
        tokio::task::spawn_blocking(move || images.add_repo_digest(&id2, &repo_digest))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("record the pushed digest of {}: {e}", r.familiar()))?;
        send(status(
            format!("{tag}: digest: {digest} size: {size}"),
            None,
        ))
        .await;
        send(JsonMessage {
            progress_detail: Some(ProgressDetail::default()),
            aux: Some(json!({"Tag": tag, "Digest": digest.to_string(), "Size": size})),
            ..Default::default()
        })
        .await;
        notify("push", id.as_str(), &r.familiar());
        Ok(())
    }
}

/// Removes a directory when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(server_domain("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(server_domain("localhost:5000"), "localhost:5000");
        assert_eq!(server_domain("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(server_domain(""), "docker.io");
    }

    #[test]
    fn sizes_and_bars() {
        assert_eq!(human(999), "999B");
        assert_eq!(human(1_234_567), "1.235MB");
        assert_eq!(human(12_000), "12kB");
        let b = bar(5, 10);
        assert!(b.starts_with("[=========================>"), "{b}");
        assert!(b.ends_with("5B/10B"), "{b}");
    }

    #[test]
    fn gzip_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("layer.tar");
        fs::write(&src, vec![7u8; 100_000]).unwrap();
        let a = gzip_layer(&src, &dir.path().join("a.gz")).unwrap();
        let b = gzip_layer(&src, &dir.path().join("b.gz")).unwrap();
        assert_eq!(a, b);
        assert!(a.1 < 100_000);
    }

    #[test]
    fn credentials_from_auth_configs() {
        let c = creds_of(&AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("u:p"),
            ..Default::default()
        });
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        let c = creds_of(&AuthConfig {
            username: "a".into(),
            password: "b".into(),
            ..Default::default()
        });
        assert_eq!((c.username.as_str(), c.password.as_str()), ("a", "b"));
    }
}
