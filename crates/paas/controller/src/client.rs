//! A client of the PaaS API for the `strato` CLI: one HTTP/1.1 connection
//! per call over the unix socket (or TCP with a token).

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::events::Event;

/// The default socket of the PaaS API.
pub const DEFAULT_SOCKET: &str = "/run/strato/paas.sock";

/// Where the API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaasHost {
    Unix(PathBuf),
    Tcp(String),
}

impl PaasHost {
    /// `unix:///path`, `tcp://HOST:PORT`, or a bare absolute path.
    pub fn parse(s: &str) -> Result<PaasHost, String> {
        if let Some(p) = s.strip_prefix("unix://") {
            Ok(PaasHost::Unix(PathBuf::from(p)))
        } else if let Some(a) = s.strip_prefix("tcp://") {
            Ok(PaasHost::Tcp(a.to_owned()))
        } else if s.starts_with('/') {
            Ok(PaasHost::Unix(PathBuf::from(s)))
        } else {
            Err(format!(
                "PaaS host {s:?}: expected unix:///path/to/paas.sock or tcp://HOST:PORT"
            ))
        }
    }
}

/// An API answer: status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error text of a failed answer (`message`, with `path`).
    pub fn error_text(&self) -> String {
        let msg = self
            .body
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| self.body.to_string());
        msg
    }
}

/// The client.
#[derive(Debug, Clone)]
pub struct PaasClient {
    host: PaasHost,
    token: Option<String>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl PaasClient {
    pub fn new(host: PaasHost, token: Option<String>) -> PaasClient {
        PaasClient { host, token }
    }

    async fn connect(&self) -> Result<Box<dyn Io>, String> {
        match &self.host {
            PaasHost::Unix(p) => tokio::net::UnixStream::connect(p)
                .await
                .map(|s| Box::new(s) as Box<dyn Io>)
                .map_err(|e| {
                    format!(
                        "cannot reach the PaaS API at {}: {e}; is `strato daemon --paas` (or `strato up`) running?",
                        p.display()
                    )
                }),
            PaasHost::Tcp(a) => tokio::net::TcpStream::connect(a)
                .await
                .map(|s| Box::new(s) as Box<dyn Io>)
                .map_err(|e| format!("cannot reach the PaaS API at {a}: {e}")),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("PaaS API handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "strato-paas");
        if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| format!("building the request: {e}"))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| format!("PaaS API request {path}: {e}"))
    }

    /// One call; the body of the answer as JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, String> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer of {path}: {e}"))?
            .to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Answer { status, body })
    }

    /// Follows `/api/events`, calling `f` for each event until it returns false.
    pub async fn events(
        &self,
        application: Option<&str>,
        mut f: impl FnMut(Event) -> bool,
    ) -> Result<(), String> {
        let path = match application {
            Some(a) => format!("/api/events?application={a}"),
            None => "/api/events".to_owned(),
        };
        let resp = self.send(Method::GET, &path, None).await?;
        if !resp.status().is_success() {
            return Err(format!("{path}: HTTP {}", resp.status()));
        }
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("event stream: {e}"))?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            buf.extend_from_slice(data);
            while let Some(end) = find(&buf, b"\n\n") {
                let chunk: Vec<u8> = buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&chunk);
                for line in text.lines() {
                    if let Some(d) = line.strip_prefix("data: ") {
                        if let Ok(ev) = serde_json::from_str::<Event>(d) {
                            if !f(ev) {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
