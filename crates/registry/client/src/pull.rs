//! Pulling: manifests (choosing this host's platform from an index) and
//! blobs, downloaded concurrently into files with their digests verified
//! while they stream, resumed with `Range` after an interruption.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::BodyExt;
use hyper::header::{CONTENT_RANGE, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use strato_image::media;
use strato_image::Digest;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::client::{empty, read_small, Repository};
use crate::error::{io_err, Error, Result};

/// Manifests larger than this are refused (the distribution spec's 4 MiB).
pub const MAX_MANIFEST: usize = 4 << 20;
/// Attempts at one blob download (the first and the resumptions).
const BLOB_ATTEMPTS: usize = 5;

/// The `Accept` header of manifest requests: OCI index and manifest, Docker
/// manifest list and schema 2.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type.
    #[serde(default)]
    pub media_type: String,
    /// The content's digest.
    pub digest: Digest,
    /// The content's length in bytes.
    pub size: u64,
    /// Where else to fetch it (foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// The platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of an index entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// GOARCH (`amd64`, `arm64`).
    pub architecture: String,
    /// GOOS (`linux`).
    pub os: String,
    /// CPU variant (`v8`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (OCI or Docker schema 2: they share this shape).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image configuration.
    pub config: Descriptor,
    /// Layers, bottom first.
    pub layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct IndexDoc {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    schema_version: Option<u32>,
}

/// A manifest resolved for pulling.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The digest of what the reference names (an index's digest for a
    /// multi-platform image): Docker's `Digest:` line.
    pub digest: Digest,
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    /// The platform manifest's exact bytes.
    pub manifest_bytes: Bytes,
    /// Its media type.
    pub media_type: String,
    /// The parsed platform manifest.
    pub manifest: Manifest,
}

/// The GOARCH name of this host.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// One blob to download into `dest`.
#[derive(Clone, Debug)]
pub struct BlobJob {
    /// What to fetch.
    pub descriptor: Descriptor,
    /// Where to write it (created or truncated).
    pub dest: PathBuf,
}

/// Progress of [`Repository::download_blobs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullProgress {
    /// The download of a blob started.
    Started(Digest),
    /// Bytes so far of a blob (of `total`).
    Downloading {
        /// The blob.
        digest: Digest,
        /// Bytes received so far.
        current: u64,
        /// The blob's size.
        total: u64,
    },
    /// All bytes are in; the digest is being checked.
    Verifying(Digest),
    /// The blob is complete and verified.
    Done(Digest),
    /// The connection broke; resuming from `offset`.
    Resuming {
        /// The blob.
        digest: Digest,
        /// Bytes kept.
        offset: u64,
    },
}

impl Repository {
    /// Fetches a manifest by tag or digest, checked against the digest
    /// (the requested one, else the `Docker-Content-Digest` header). An
    /// index is resolved to this host's `linux/<arch>` manifest.
    pub async fn resolve(&self, reference: &str) -> Result<Resolved> {
        let (bytes, media_type, digest) = self.get_manifest(reference).await?;
        let kind = media::kind(&media_type);
        if kind == media::Kind::Index {
            let idx: IndexDoc = serde_json::from_slice(&bytes)
                .map_err(|e| self.protocol(format!("image index {digest}: {e}")))?;
            let arch = host_arch();
            let pick = idx
                .manifests
                .iter()
                .filter(|m| media::kind(&m.media_type) == media::Kind::Manifest)
                .filter(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                })
                // Prefer arm64's v8 (or no variant) like Docker.
                .min_by_key(|m| {
                    let v = m.platform.as_ref().and_then(|p| p.variant.as_deref());
                    !matches!(v, None | Some("v8"))
                })
                .ok_or_else(|| Error::NoPlatform {
                    reference: format!("{}/{}:{reference}", self.registry(), self.path()),
                    platform: format!("linux/{arch}"),
                })?;
            let (mbytes, mtype, mdigest) = self.get_manifest(pick.digest.as_str()).await?;
            if media::kind(&mtype) != media::Kind::Manifest {
                return Err(self.protocol(format!(
                    "index entry {} is a {mtype:?}, not an image manifest",
                    pick.digest
                )));
            }
            let manifest = self.parse_manifest(&mbytes, &mdigest)?;
            return Ok(Resolved {
                digest,
                manifest_digest: mdigest,
                manifest_bytes: mbytes,
                media_type: mtype,
                manifest,
            });
        }
        if kind != media::Kind::Manifest {
            return Err(self.protocol(format!(
                "{reference} is a {media_type:?}, not an image (schema 1 manifests are not supported: push the image again with a current client)"
            )));
        }
        let manifest = self.parse_manifest(&bytes, &digest)?;
        Ok(Resolved {
            digest: digest.clone(),
            manifest_digest: digest,
            manifest_bytes: bytes,
            media_type,
            manifest,
        })
    }

    /// What `reference` names, without pulling it: the descriptor of its
    /// manifest or index, and the platforms it holds (an index's entries,
    /// or a manifest's config's os and architecture). Docker's
    /// `GET /distribution/{name}/json`.
    pub async fn inspect(&self, reference: &str) -> Result<(Descriptor, Vec<Platform>)> {
        let (bytes, media_type, digest) = self.get_manifest(reference).await?;
        let platforms = match media::kind(&media_type) {
            media::Kind::Index => {
                let idx: IndexDoc = serde_json::from_slice(&bytes)
                    .map_err(|e| self.protocol(format!("image index {digest}: {e}")))?;
                idx.manifests
                    .into_iter()
                    .filter_map(|m| m.platform)
                    .collect()
            }
            media::Kind::Manifest => {
                let m = self.parse_manifest(&bytes, &digest)?;
                let config = self.fetch_small_blob(&m.config, MAX_MANIFEST).await?;
                let p: Platform = serde_json::from_slice(&config)
                    .map_err(|e| self.protocol(format!("image config {}: {e}", m.config.digest)))?;
                vec![p]
            }
            _ => {
                return Err(self.protocol(format!(
                    "{reference} is a {media_type:?}, neither an image manifest nor an index"
                )))
            }
        };
        let size = bytes.len() as u64;
        Ok((
            Descriptor {
                media_type,
                digest,
                size,
                urls: Vec::new(),
                platform: None,
            },
            platforms,
        ))
    }

    fn parse_manifest(&self, bytes: &[u8], digest: &Digest) -> Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| self.protocol(format!("manifest {digest}: {e}")))?;
        if m.schema_version != 2 {
            return Err(self.protocol(format!(
                "manifest {digest} has schemaVersion {}, expected 2",
                m.schema_version
            )));
        }
        for l in &m.layers {
            if media::kind(&l.media_type) != media::Kind::Layer {
                return Err(self.protocol(format!(
                    "manifest {digest} has a layer {} of media type {:?}, which is not a filesystem layer",
                    l.digest, l.media_type
                )));
            }
            if !l.urls.is_empty() || l.media_type == media::DOCKER_FOREIGN_LAYER {
                return Err(self.protocol(format!(
                    "manifest {digest} has a foreign layer {} (fetched from elsewhere), which strato does not pull",
                    l.digest
                )));
            }
        }
        Ok(m)
    }

    /// `GET /v2/<name>/manifests/<reference>`: the exact bytes, the media
    /// type and the verified digest.
    pub async fn get_manifest(&self, reference: &str) -> Result<(Bytes, String, Digest)> {
        let url = self.url(&format!("manifests/{reference}"));
        let resp = self
            .send(
                Method::GET,
                &url,
                &[("accept", MANIFEST_ACCEPT.to_owned())],
                &|| Ok(empty()),
            )
            .await?;
        let what = format!(
            "manifest for {}/{}:{reference}",
            self.registry(),
            self.path()
        );
        let status = resp.status();
        if !status.is_success() {
            return Err(self.status_err(&what, status, resp).await);
        }
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let ctype = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default();
        let bytes = read_small(resp, MAX_MANIFEST).await.map_err(|e| {
            self.protocol(format!(
                "{what}: {e} (manifests are limited to {MAX_MANIFEST} bytes)"
            ))
        })?;
        let actual = Digest::of(&bytes);
        let expected = if reference.contains(':') {
            Some(reference.to_owned())
        } else {
            header_digest
        };
        if let Some(exp) = expected {
            if exp != actual.as_str() {
                return Err(Error::DigestMismatch {
                    what,
                    expected: exp,
                    actual: actual.to_string(),
                });
            }
        }
        // The body's own mediaType wins over Content-Type, which some
        // registries get wrong.
        let probe: Probe = serde_json::from_slice(&bytes)
            .map_err(|e| self.protocol(format!("{what} is not JSON: {e}")))?;
        let media_type = match probe.media_type {
            Some(m) if !m.is_empty() => m,
            _ if probe.manifests.is_some() => media::OCI_INDEX.to_owned(),
            _ if !ctype.is_empty() && ctype != "application/json" => ctype,
            _ if probe.schema_version == Some(2) => media::OCI_MANIFEST.to_owned(),
            _ => ctype,
        };
        Ok((bytes, media_type, actual))
    }

    /// Downloads one blob into `dest`, verifying its size and digest as it
    /// streams; after a broken connection it resumes with
    /// `Range: bytes=N-` (starting over if the registry ignores the range).
    /// `progress` gets the bytes received so far. On error `dest` may hold
    /// a partial file; the caller removes it.
    pub async fn fetch_blob(
        &self,
        desc: &Descriptor,
        dest: &Path,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<()> {
        let what = format!("blob {}", desc.digest);
        let url = self.url(&format!("blobs/{}", desc.digest));
        // Buffered: tokio's file writes each cost a trip to the blocking pool.
        let mut file = tokio::io::BufWriter::with_capacity(
            1 << 20,
            tokio::fs::File::create(dest)
                .await
                .map_err(io_err("create", dest))?,
        );
        let mut hasher = Sha256::new();
        let mut written: u64 = 0;
        let mut last_err: Option<Error> = None;
        for attempt in 0..BLOB_ATTEMPTS {
            if attempt > 0 {
                // A short, growing pause: the registry or the network may
                // need a moment.
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt as u64)).await;
                progress(PullProgress::Resuming {
                    digest: desc.digest.clone(),
                    offset: written,
                });
                tracing::info!(blob = %desc.digest, offset = written, attempt, "resuming blob download");
            }
            let headers = if written > 0 {
                vec![("range", format!("bytes={written}-"))]
            } else {
                Vec::new()
            };
            let resp = match self.get_following(&url, &headers).await {
                Ok(r) => r,
                Err(e @ Error::Connect { .. }) => {
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = resp.status();
            match status {
                StatusCode::OK => {
                    if written > 0 {
                        // The range was ignored: start over.
                        file.flush().await.map_err(io_err("write", dest))?;
                        let f = file.get_mut();
                        f.set_len(0).await.map_err(io_err("truncate", dest))?;
                        f.seek(std::io::SeekFrom::Start(0))
                            .await
                            .map_err(io_err("seek", dest))?;
                        hasher = Sha256::new();
                        written = 0;
                    }
                }
                StatusCode::PARTIAL_CONTENT if written > 0 => {
                    let start = resp
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("bytes "))
                        .and_then(|v| v.split('-').next())
                        .and_then(|v| v.parse::<u64>().ok());
                    if start != Some(written) {
                        return Err(self.protocol(format!(
                            "{what}: asked for bytes from {written} but got Content-Range {start:?}"
                        )));
                    }
                }
                StatusCode::RANGE_NOT_SATISFIABLE => {
                    return Err(Error::SizeMismatch {
                        what,
                        expected: desc.size,
                        actual: written,
                    });
                }
                s => return Err(self.status_err(&what, s, resp).await),
            }
            let mut body = resp.into_body();
            let mut broken = None;
            loop {
                match body.frame().await {
                    None => break,
                    Some(Err(e)) => {
                        broken = Some(e);
                        break;
                    }
                    Some(Ok(frame)) => {
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        if written + data.len() as u64 > desc.size {
                            return Err(Error::SizeMismatch {
                                what,
                                expected: desc.size,
                                actual: written + data.len() as u64,
                            });
                        }
                        file.write_all(&data).await.map_err(io_err("write", dest))?;
                        hasher.update(&data);
                        written += data.len() as u64;
                        progress(PullProgress::Downloading {
                            digest: desc.digest.clone(),
                            current: written,
                            total: desc.size,
                        });
                    }
                }
            }
            if written == desc.size {
                break;
            }
            last_err = Some(match broken {
                Some(e) => Error::Connect {
                    registry: self.registry().to_owned(),
                    message: format!(
                        "{what}: connection broke after {written} of {} bytes: {}",
                        desc.size,
                        crate::client::error_chain(&e)
                    ),
                },
                None => Error::SizeMismatch {
                    what: what.clone(),
                    expected: desc.size,
                    actual: written,
                },
            });
        }
        if written != desc.size {
            return Err(last_err.unwrap_or(Error::SizeMismatch {
                what,
                expected: desc.size,
                actual: written,
            }));
        }
        progress(PullProgress::Verifying(desc.digest.clone()));
        let actual = format!("sha256:{}", hex(&hasher.finalize()));
        if actual != desc.digest.as_str() {
            return Err(Error::DigestMismatch {
                what,
                expected: desc.digest.to_string(),
                actual,
            });
        }
        file.flush().await.map_err(io_err("write", dest))?;
        file.get_ref()
            .sync_all()
            .await
            .map_err(io_err("fsync", dest))?;
        progress(PullProgress::Done(desc.digest.clone()));
        Ok(())
    }

    /// Downloads `jobs` with at most `concurrency` at a time, reporting
    /// progress on `events`. Stops at the first failure (the other
    /// downloads are cancelled).
    pub async fn download_blobs(
        &self,
        jobs: Vec<BlobJob>,
        concurrency: usize,
        events: mpsc::UnboundedSender<PullProgress>,
    ) -> Result<()> {
        let events = Arc::new(events);
        futures::stream::iter(jobs.into_iter().map(Ok))
            .try_for_each_concurrent(concurrency.max(1), |job| {
                let events = events.clone();
                async move {
                    let _ = events.send(PullProgress::Started(job.descriptor.digest.clone()));
                    let cb = move |p: PullProgress| {
                        let _ = events.send(p);
                    };
                    self.fetch_blob(&job.descriptor, &job.dest, &cb).await
                }
            })
            .await
    }

    /// Fetches a small blob (an image config) into memory, verified.
    pub async fn fetch_small_blob(&self, desc: &Descriptor, limit: usize) -> Result<Bytes> {
        if desc.size > limit as u64 {
            return Err(self.protocol(format!(
                "blob {} is {} bytes, more than the {limit} allowed here",
                desc.digest, desc.size
            )));
        }
        let url = self.url(&format!("blobs/{}", desc.digest));
        let resp = self.get_following(&url, &[]).await?;
        let status = resp.status();
        let what = format!("blob {}", desc.digest);
        if !status.is_success() {
            return Err(self.status_err(&what, status, resp).await);
        }
        let body = read_small(resp, limit)
            .await
            .map_err(|e| self.protocol(format!("{what}: {e}")))?;
        if body.len() as u64 != desc.size {
            return Err(Error::SizeMismatch {
                what,
                expected: desc.size,
                actual: body.len() as u64,
            });
        }
        let actual = Digest::of(&body);
        if actual != desc.digest {
            return Err(Error::DigestMismatch {
                what,
                expected: desc.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(body)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
