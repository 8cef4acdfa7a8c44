//! Shared harness: a server on a temporary unix socket backed by the fake,
//! a raw HTTP client, and a runner for the real docker CLI.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use strato_api::testing::FakeBackend;
use tokio::net::UnixStream;

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub fake: FakeBackend,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Daemon {
    pub async fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("strato.sock");
        let fake = FakeBackend::new();
        let listener = strato_api::bind_unix(&sock).unwrap();
        let backend: Arc<dyn strato_api::Backend> = Arc::new(fake.clone());
        let task = tokio::spawn(async move {
            strato_api::serve_unix_listener(listener, backend)
                .await
                .unwrap();
        });
        Daemon {
            dir,
            sock,
            fake,
            task,
        }
    }

    /// Runs the docker CLI against this daemon; returns (exit code, stdout, stderr).
    pub async fn docker(&self, args: &[&str]) -> (i32, String, String) {
        self.docker_stdin(args, None).await
    }

    pub async fn docker_stdin(&self, args: &[&str], input: Option<&str>) -> (i32, String, String) {
        let host = format!("unix://{}", self.sock.display());
        let config = self.dir.path().join("docker-config");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let input = input.map(String::from);
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = Command::new("docker")
                .args(&args)
                .env("DOCKER_HOST", host)
                .env("DOCKER_CONFIG", config)
                .env("DOCKER_CLI_HINTS", "false")
                .env_remove("DOCKER_API_VERSION")
                .env_remove("DOCKER_CONTEXT")
                .env_remove("DOCKER_TLS_VERIFY")
                .stdin(if input.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("docker CLI on PATH");
            if let Some(i) = input {
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(i.as_bytes()).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .await
        .unwrap()
    }

    /// Like [`Daemon::docker`] but fails the test on a non-zero exit.
    pub async fn docker_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.docker(args).await;
        assert_eq!(code, 0, "docker {args:?} failed: {err}\n{out}");
        out
    }

    /// Sends one request on a fresh connection and returns the response
    /// (body not read yet).
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Response<Incoming> {
        let stream = UnixStream::connect(&self.sock).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender.send_request(req).await.unwrap()
    }

    /// Sends a request and reads the whole body.
    pub async fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "docker")
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = self.send(req).await;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn json(&self, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let (s, b) = self.call(method, path, body).await;
        let v = serde_json::from_str(&b).unwrap_or(serde_json::Value::Null);
        (s, v)
    }
}

/// Splits a multiplexed stream into (stream id, payload) frames.
pub fn demux(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        out.push((b[0], b[8..8 + len].to_vec()));
        b = &b[8 + len..];
    }
    assert!(b.is_empty(), "trailing bytes in a multiplexed stream");
    out
}
