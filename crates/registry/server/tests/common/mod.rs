//! A registry served on a random loopback port, and a small HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::Request;
use hyper_util::rt::TokioIo;
use sha2::{Digest as _, Sha256};
use strato_registry::auth::Auth;
use strato_registry::{Config, Registry};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub struct Server {
    pub addr: SocketAddr,
    pub registry: Registry,
    pub root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start() -> Server {
    start_with(|_| {}).await
}

pub async fn start_with(f: impl FnOnce(&mut Config)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start_at(dir.path(), f).await;
    s._dir = Some(dir);
    s
}

pub async fn start_at(root: &Path, f: impl FnOnce(&mut Config)) -> Server {
    let mut c = Config::new(root);
    c.auth = Auth::Anonymous;
    f(&mut c);
    let registry = Registry::open(c).unwrap();
    let listener = strato_registry::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(registry.clone().serve(listener, None));
    Server {
        addr,
        registry,
        root: root.to_path_buf(),
        _dir: None,
        task,
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    /// The first error code of an error body.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// One request on a fresh connection.
pub async fn req(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut b = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.header("host", addr.to_string());
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = send
        .send_request(b.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    req(addr, "GET", path, &[], Bytes::new()).await
}

pub fn digest(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

/// Pseudo-random bytes (xorshift), distinct per seed.
pub fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Pushes a blob with POST ?digest= (monolithic, one request).
pub async fn push_blob(addr: SocketAddr, repo: &str, data: &[u8]) -> String {
    let d = digest(data);
    let r = req(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[("content-type", "application/octet-stream")],
        data.to_vec(),
    )
    .await;
    assert_eq!(
        r.status,
        201,
        "push blob: {:?}",
        String::from_utf8_lossy(&r.body)
    );
    d
}

/// An image manifest over a config and layers (pushed first), returned as bytes.
pub async fn push_image(addr: SocketAddr, repo: &str, seed: u64) -> (Vec<u8>, Vec<String>) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    let cd = push_blob(addr, repo, &config).await;
    let layer = random_bytes(seed, 4096);
    let ld = push_blob(addr, repo, &layer).await;
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
    });
    (serde_json::to_vec_pretty(&m).unwrap(), vec![cd, ld])
}

pub async fn put_manifest(
    addr: SocketAddr,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Resp {
    req(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("content-type", media_type)],
        body.to_vec(),
    )
    .await
}

/// Files under `dir`, recursively (relative paths).
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Every blob file holds the bytes its name says (nothing corrupt is visible).
pub fn assert_blobs_verified(root: &Path) {
    for f in files_under(&root.join("blobs")) {
        let data = std::fs::read(root.join("blobs").join(&f)).unwrap();
        let name = f.rsplit('/').next().unwrap();
        assert_eq!(
            digest(&data),
            format!("sha256:{name}"),
            "blob file {f} is corrupt"
        );
    }
}
