//! Pushing: blobs (skipped when the registry has them, mounted from another
//! repository when one is known, else uploaded: monolithically, or in
//! `PATCH` chunks when large) and manifests.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::{Method, StatusCode};
use strato_image::Digest;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use crate::auth::query_escape;
use crate::client::{empty, full, Body, Repository};
use crate::error::{Error, Result};

/// Blobs up to this size are uploaded in one `PUT`; larger ones in `PATCH`
/// chunks of this size, then a closing `PUT` (see
/// [`Repository::with_chunk_size`]).
pub const CHUNK_SIZE: u64 = 64 << 20;
/// Read size of file bodies.
const READ_BUF: usize = 256 << 10;

/// One blob to push.
#[derive(Clone, Debug)]
pub struct UploadJob {
    /// The blob's digest (checked by the registry on the closing `PUT`).
    pub digest: Digest,
    /// Its length.
    pub size: u64,
    /// The file holding it.
    pub path: PathBuf,
    /// Another repository of the same registry known to have it (tried as
    /// a cross-repository mount).
    pub mount_from: Option<String>,
}

/// A push progress callback.
pub type Progress = Arc<dyn Fn(PushProgress) + Send + Sync>;

/// What happened to one blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobPushed {
    /// The registry had it already.
    Exists,
    /// Mounted from another repository.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// Progress of [`Repository::upload_blobs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushProgress {
    /// The upload of a blob started (it is not in the registry).
    Started(Digest),
    /// Bytes sent so far of a blob (of `total`).
    Pushing {
        /// The blob.
        digest: Digest,
        /// Bytes sent.
        current: u64,
        /// The blob's size.
        total: u64,
    },
    /// The blob is in the registry.
    Done(Digest, BlobPushed),
}

impl Repository {
    /// `HEAD /v2/<name>/blobs/<digest>`: the blob's size if the registry has it.
    pub async fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.send(Method::HEAD, &url, &[], &|| Ok(empty())).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(self
                .status_err(&format!("check blob {digest}"), s, resp)
                .await),
        }
    }

    /// Pushes one blob: skipped if present, mounted from `mount_from` if
    /// that works, else uploaded.
    pub async fn push_blob(&self, job: &UploadJob, progress: &Progress) -> Result<BlobPushed> {
        if self.blob_exists(&job.digest).await?.is_some() {
            return Ok(BlobPushed::Exists);
        }
        let what = format!("upload blob {}", job.digest);
        let start_url = match &job.mount_from {
            Some(from) if from != self.path() => self.url(&format!(
                "blobs/uploads/?mount={}&from={}",
                job.digest,
                query_escape(from)
            )),
            _ => self.url("blobs/uploads/"),
        };
        let resp = self
            .send(
                Method::POST,
                &start_url,
                &[(CONTENT_LENGTH.as_str(), "0".to_owned())],
                &|| Ok(empty()),
            )
            .await?;
        let status = resp.status();
        if status == StatusCode::CREATED && job.mount_from.is_some() {
            return Ok(BlobPushed::Mounted);
        }
        if status != StatusCode::ACCEPTED {
            return Err(self.status_err(&what, status, resp).await);
        }
        let mut location = self.location(&resp, &what)?;
        progress(PushProgress::Started(job.digest.clone()));
        let mut sent = 0u64;
        if job.size > self.chunk_size {
            while sent < job.size {
                let n = self.chunk_size.min(job.size - sent);
                let end = sent + n - 1;
                let base = sent;
                let resp = self
                    .send(
                        Method::PATCH,
                        &location,
                        &[
                            (CONTENT_TYPE.as_str(), "application/octet-stream".to_owned()),
                            (CONTENT_LENGTH.as_str(), n.to_string()),
                            ("content-range", format!("{sent}-{end}")),
                        ],
                        &|| self.file_body(job, base, n, progress),
                    )
                    .await?;
                let status = resp.status();
                if status != StatusCode::ACCEPTED {
                    return Err(self
                        .status_err(&format!("{what} (chunk at {sent})"), status, resp)
                        .await);
                }
                location = self.location(&resp, &what)?;
                sent += n;
            }
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!(
            "{location}{sep}digest={}",
            query_escape(job.digest.as_str())
        );
        let rest = job.size - sent;
        let resp = self
            .send(
                Method::PUT,
                &put_url,
                &[
                    (CONTENT_TYPE.as_str(), "application/octet-stream".to_owned()),
                    (CONTENT_LENGTH.as_str(), rest.to_string()),
                ],
                &|| {
                    if rest == 0 {
                        Ok(empty())
                    } else {
                        self.file_body(job, sent, rest, progress)
                    }
                },
            )
            .await?;
        let status = resp.status();
        if status != StatusCode::CREATED {
            return Err(self.status_err(&what, status, resp).await);
        }
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if d != job.digest.as_str() {
                return Err(Error::DigestMismatch {
                    what: format!("blob uploaded as {}", job.digest),
                    expected: job.digest.to_string(),
                    actual: d.to_owned(),
                });
            }
        }
        Ok(BlobPushed::Uploaded)
    }

    fn location(
        &self,
        resp: &hyper::Response<hyper::body::Incoming>,
        what: &str,
    ) -> Result<String> {
        resp.headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| self.absolute(l))
            .ok_or_else(|| self.protocol(format!("{what}: no Location in the answer")))
    }

    /// A body streaming `len` bytes of the job's file from `offset`,
    /// reporting progress as frames are produced.
    fn file_body(
        &self,
        job: &UploadJob,
        offset: u64,
        len: u64,
        progress: &Progress,
    ) -> Result<Body> {
        let path = job.path.clone();
        let total = job.size;
        let digest = job.digest.clone();
        let progress = progress.clone();
        let stream = futures::stream::try_unfold(
            (None::<tokio::io::Take<tokio::fs::File>>, offset),
            move |(file, done)| {
                let (path, progress, digest) = (path.clone(), progress.clone(), digest.clone());
                async move {
                    let mut r = match file {
                        Some(r) => r,
                        None => {
                            let mut f = tokio::fs::File::open(&path).await.map_err(|e| {
                                std::io::Error::new(
                                    e.kind(),
                                    format!("open {}: {e}", path.display()),
                                )
                            })?;
                            f.seek(std::io::SeekFrom::Start(offset)).await?;
                            f.take(len)
                        }
                    };
                    let mut buf = vec![0u8; READ_BUF];
                    let n = r.read(&mut buf).await?;
                    if n == 0 {
                        return Ok(None);
                    }
                    buf.truncate(n);
                    let done = done + n as u64;
                    progress(PushProgress::Pushing {
                        digest,
                        current: done,
                        total,
                    });
                    Ok(Some((Frame::data(Bytes::from(buf)), (Some(r), done))))
                }
            },
        );
        Ok(StreamBody::new(stream).boxed_unsync())
    }

    /// `PUT /v2/<name>/manifests/<tag>`: returns the manifest's digest.
    pub async fn put_manifest(&self, tag: &str, media_type: &str, bytes: Bytes) -> Result<Digest> {
        let url = self.url(&format!("manifests/{tag}"));
        let digest = Digest::of(&bytes);
        let what = format!("push manifest {}/{}:{tag}", self.registry(), self.path());
        let resp = self
            .send(
                Method::PUT,
                &url,
                &[
                    (CONTENT_TYPE.as_str(), media_type.to_owned()),
                    (CONTENT_LENGTH.as_str(), bytes.len().to_string()),
                ],
                &|| Ok(full(bytes.clone())),
            )
            .await?;
        let status = resp.status();
        if status != StatusCode::CREATED && !status.is_success() {
            return Err(self.status_err(&what, status, resp).await);
        }
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if d != digest.as_str() {
                return Err(Error::DigestMismatch {
                    what,
                    expected: digest.to_string(),
                    actual: d.to_owned(),
                });
            }
        }
        Ok(digest)
    }

    /// Pushes `jobs` with at most `concurrency` at a time, reporting
    /// progress on `events`. Stops at the first failure.
    pub async fn upload_blobs(
        &self,
        jobs: Vec<UploadJob>,
        concurrency: usize,
        events: mpsc::UnboundedSender<PushProgress>,
    ) -> Result<()> {
        let events = Arc::new(events);
        futures::stream::iter(jobs.into_iter().map(Ok))
            .try_for_each_concurrent(concurrency.max(1), |job| {
                let events = events.clone();
                async move {
                    let cb: Progress = {
                        let events = events.clone();
                        Arc::new(move |p: PushProgress| {
                            let _ = events.send(p);
                        })
                    };
                    let how = self.push_blob(&job, &cb).await?;
                    let _ = events.send(PushProgress::Done(job.digest.clone(), how));
                    Ok::<(), Error>(())
                }
            })
            .await
    }
}
