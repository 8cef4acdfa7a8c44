//! Upload sessions and the streaming writer: a request body goes to the
//! session's temporary file through a blocking thread that hashes each chunk as
//! it writes it, while the async side keeps reading the socket. Blobs are never
//! held in memory beyond a few chunks of [`CHUNK`] bytes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::names::{Alg, Digest, Hasher};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body;

/// Size of the chunks handed to the writer thread and read back for GET.
/// 256 KiB: as fast as 1 MiB on the benchmark (hashing and the kernel's
/// copies dominate) at a quarter of the memory per transfer.
pub const CHUNK: usize = 256 << 10;
/// Batches in flight between the socket and the writer thread.
const DEPTH: usize = 4;
/// Frames per batch at most (one `writev` each; the kernel takes 1024).
const MAX_IOVECS: usize = 256;

/// One upload session.
pub struct Upload {
    pub id: String,
    pub repo: String,
    /// The authenticated user that opened it (None when anonymous).
    pub owner: Option<String>,
    pub path: PathBuf,
    file: Option<File>,
    hasher: Hasher,
    pub offset: u64,
    pub touched: Instant,
}

/// Why appending a body failed.
#[derive(Debug)]
pub enum AppendError {
    /// The client's body ended early or broke; what arrived is kept.
    Body(String),
    /// Writing to disk failed; the session is no longer usable.
    Io(io::Error),
    /// The upload grew past the limit it was given.
    TooBig(u64),
}

impl Upload {
    /// A session hashing with `alg` (the digest's algorithm when the client
    /// names it up front; sha256 otherwise).
    pub fn create(
        id: String,
        repo: String,
        owner: Option<String>,
        path: PathBuf,
        alg: Alg,
    ) -> io::Result<Upload> {
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok(Upload {
            id,
            repo,
            owner,
            path,
            file: Some(file),
            hasher: Hasher::new(alg),
            offset: 0,
            touched: Instant::now(),
        })
    }

    /// The digest under `alg` of everything written so far (computed while
    /// streaming when `alg` is the session's, else by reading the file back).
    pub fn digest(&self, alg: Alg) -> io::Result<Digest> {
        if alg == self.hasher.alg() {
            return Ok(self.hasher.finish());
        }
        crate::storage::hash_file(&self.path, alg)
    }

    /// Streams `body` to the end of the upload. Whatever arrived before a body
    /// error is kept (offset, file and hash stay consistent), so the client can
    /// ask for the status and resume.
    /// With `limit`, the body is refused once the upload would pass `limit`
    /// bytes (nothing past it is written; the caller drops the session).
    pub async fn append<B>(&mut self, body: B, limit: Option<u64>) -> Result<u64, AppendError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let Some(mut file) = self.file.take() else {
            return Err(AppendError::Io(io::Error::other("upload file is closed")));
        };
        let mut hasher = self.hasher.clone();
        // Batches of the body's own frames (no copy into a staging buffer):
        // each batch is one vectored write, then hashed from the same memory.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(DEPTH);
        let writer = tokio::task::spawn_blocking(move || {
            let mut written = 0u64;
            while let Some(batch) = rx.blocking_recv() {
                if let Err(e) = write_batch(&mut file, &batch) {
                    return (file, hasher, written, Err(e));
                }
                for b in &batch {
                    hasher.update(b);
                    written += b.len() as u64;
                }
            }
            (file, hasher, written, Ok(()))
        });
        let mut body = body;
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batched = 0usize;
        let mut body_err = None;
        let mut too_big = false;
        let mut received = self.offset;
        loop {
            match body.frame().await {
                None => break,
                Some(Err(e)) => {
                    body_err = Some(e.to_string());
                    break;
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    received += data.len() as u64;
                    if limit.is_some_and(|l| received > l) {
                        too_big = true;
                        break;
                    }
                    if data.is_empty() {
                        continue;
                    }
                    batched += data.len();
                    batch.push(data);
                    if batched >= CHUNK || batch.len() >= MAX_IOVECS {
                        batched = 0;
                        if tx.send(std::mem::take(&mut batch)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        if !batch.is_empty() && !too_big {
            let _ = tx.send(batch).await;
        }
        drop(tx);
        let (file, hasher, written, res) = writer
            .await
            .map_err(|e| AppendError::Io(io::Error::other(e.to_string())))?;
        self.touched = Instant::now();
        if let Err(e) = res {
            return Err(AppendError::Io(e));
        }
        self.file = Some(file);
        self.hasher = hasher;
        self.offset += written;
        if too_big {
            return Err(AppendError::TooBig(limit.unwrap_or(0)));
        }
        match body_err {
            Some(e) => Err(AppendError::Body(e)),
            None => Ok(written),
        }
    }
}

/// Writes all of `batch` to `file` with vectored writes, resuming after short ones.
fn write_batch(file: &mut File, batch: &[Bytes]) -> io::Result<()> {
    let (mut i, mut off) = (0, 0);
    while i < batch.len() {
        let slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&batch[i][off..]))
            .chain(batch[i + 1..].iter().map(|b| IoSlice::new(b)))
            .collect();
        let mut n = match file.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n + off,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while i < batch.len() && n >= batch[i].len() {
            n -= batch[i].len();
            i += 1;
        }
        off = n;
    }
    Ok(())
}

/// The open upload sessions, by id.
#[derive(Default, Clone)]
pub struct Sessions {
    map: Arc<Mutex<HashMap<String, Session>>>,
}

type Session = (PathBuf, Arc<tokio::sync::Mutex<Upload>>);

impl Sessions {
    pub fn insert(&self, up: Upload) -> Arc<tokio::sync::Mutex<Upload>> {
        let (id, path) = (up.id.clone(), up.path.clone());
        let a = Arc::new(tokio::sync::Mutex::new(up));
        self.lock().insert(id, (path, a.clone()));
        a
    }

    pub fn get(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<Upload>>> {
        self.lock().get(id).map(|(_, u)| u.clone())
    }

    /// Forgets session `id` and removes its file (a request still writing
    /// to it writes to an unlinked file, and finds the session gone).
    pub fn remove(&self, id: &str) {
        if let Some((path, _)) = self.lock().remove(id) {
            let _ = std::fs::remove_file(path);
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// Removes sessions idle for longer than `idle`; returns how many.
    pub fn purge(&self, idle: Duration) -> usize {
        let stale: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, (_, u))| u.try_lock().is_ok_and(|u| u.touched.elapsed() > idle))
            .map(|(k, _)| k.clone())
            .collect();
        for id in &stale {
            self.remove(id);
        }
        stale.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;

    #[tokio::test]
    async fn append_hashes_what_it_writes_and_keeps_a_broken_bodys_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut up = Upload::create(
            "x".into(),
            "r".into(),
            None,
            dir.path().join("u"),
            Alg::Sha256,
        )
        .unwrap();
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i * 7 % 251) as u8).collect();
        up.append(Full::new(Bytes::from(data.clone())), None)
            .await
            .unwrap();
        assert_eq!(up.offset, data.len() as u64);
        assert_eq!(up.digest(Alg::Sha256).unwrap(), Alg::Sha256.digest(&data));
        let frames: Vec<Result<Frame<Bytes>, String>> = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Err("connection reset".into()),
        ];
        let body = StreamBody::new(futures::stream::iter(frames));
        assert!(matches!(
            up.append(body, None).await,
            Err(AppendError::Body(_))
        ));
        let mut all = data.clone();
        all.extend_from_slice(b"abc");
        assert_eq!(up.offset, all.len() as u64);
        assert_eq!(up.digest(Alg::Sha256).unwrap(), Alg::Sha256.digest(&all));
        assert_eq!(up.digest(Alg::Sha512).unwrap(), Alg::Sha512.digest(&all));
        assert_eq!(std::fs::read(&up.path).unwrap(), all);
        let limited = up.append(Full::new(Bytes::from(vec![0u8; 100])), Some(up.offset + 50));
        assert!(matches!(limited.await, Err(AppendError::TooBig(_))));
        assert_eq!(std::fs::metadata(&up.path).unwrap().len(), all.len() as u64);
    }

    #[tokio::test]
    async fn append_batches_many_small_frames_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut up = Upload::create(
            "y".into(),
            "r".into(),
            None,
            dir.path().join("u"),
            Alg::Sha256,
        )
        .unwrap();
        // Frames of varied sizes (some empty), more than MAX_IOVECS of them,
        // more than CHUNK bytes in all.
        let mut all = Vec::new();
        let mut frames: Vec<Result<Frame<Bytes>, String>> = Vec::new();
        for i in 0..3 * MAX_IOVECS {
            let f: Vec<u8> = (0..(i * 37) % 3001).map(|j| (i + j) as u8).collect();
            all.extend_from_slice(&f);
            frames.push(Ok(Frame::data(Bytes::from(f))));
        }
        assert!(all.len() > 2 * CHUNK);
        let body = StreamBody::new(futures::stream::iter(frames));
        assert_eq!(up.append(body, None).await.unwrap(), all.len() as u64);
        assert_eq!(std::fs::read(&up.path).unwrap(), all);
        assert_eq!(up.digest(Alg::Sha256).unwrap(), Alg::Sha256.digest(&all));
    }
}
