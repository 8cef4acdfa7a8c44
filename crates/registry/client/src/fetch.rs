//! Plain downloads of one URL into a file: what `ADD <url>` and a remote
//! build context need from the same HTTP stack (connection pool, rustls
//! with the system's roots) that talks to registries.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use http_body_util::BodyExt;
use hyper::header::{CONTENT_TYPE, LAST_MODIFIED, LOCATION};
use hyper::{Method, Uri};

use crate::client::{empty, error_chain, Client};
use crate::error::{Error, Result};

/// Redirects followed for one download, as Go's HTTP client does.
const MAX_REDIRECTS: usize = 10;

/// What [`Client::fetch_url`] wrote.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Bytes written.
    pub size: u64,
    /// The server's `Last-Modified`, if it sent a valid one.
    pub last_modified: Option<SystemTime>,
    /// The server's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The URL the content came from, after redirects.
    pub final_url: String,
}

/// The file name a download from `url` gets: the last segment of its path,
/// percent-decoded, as Docker names `ADD <url> <dir>/` targets. `None` for
/// a URL whose path ends in `/` or has no usable name.
pub fn file_name_of(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let last = uri.path().rsplit('/').next()?;
    let name = percent_decode(last)?;
    (!name.is_empty() && name != "." && name != ".." && !name.contains('/')).then_some(name)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn download_err(url: &str, message: impl Into<String>) -> Error {
    Error::Download {
        url: url.to_owned(),
        message: message.into(),
    }
}

impl Client {
    /// Downloads `url` (http or https) into `dest`, following redirects, and
    /// refuses more than `limit` bytes. A failure leaves `dest` removed.
    pub async fn fetch_url(&self, url: &str, dest: &Path, limit: u64) -> Result<Fetched> {
        let res = self.fetch_into(url, dest, limit).await;
        if res.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        res
    }

    async fn fetch_into(&self, url: &str, dest: &Path, limit: u64) -> Result<Fetched> {
        let mut current = url.to_owned();
        let mut redirects = 0;
        let resp = loop {
            let uri: Uri = current
                .parse()
                .map_err(|e| download_err(url, format!("bad URL {current:?}: {e}")))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
                return Err(download_err(
                    url,
                    format!("{current} is not an http:// or https:// URL"),
                ));
            }
            let host = uri.authority().map(|a| a.as_str().to_owned()).unwrap();
            let resp = self
                .send_raw(&host, Method::GET, &current, None, empty(), &[])
                .await
                .map_err(|e| download_err(url, e.to_string()))?;
            if !resp.status().is_redirection() {
                break resp;
            }
            let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
                break resp;
            };
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(download_err(
                    url,
                    format!("more than {MAX_REDIRECTS} redirects"),
                ));
            }
            current = if loc.starts_with('/') {
                format!("{}://{host}{loc}", uri.scheme_str().unwrap_or("https"))
            } else {
                loc.to_owned()
            };
        };
        let status = resp.status();
        if !status.is_success() {
            return Err(download_err(
                url,
                format!("the server answered {status}: fix the URL, or download the file into the build context and COPY it"),
            ));
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let last_modified = header(LAST_MODIFIED).and_then(|v| httpdate::parse_http_date(&v).ok());
        let content_type = header(CONTENT_TYPE);
        let mut file = File::create(dest).map_err(|e| Error::Io {
            op: "create",
            path: dest.to_owned(),
            source: e,
        })?;
        let mut body = resp.into_body();
        let mut size = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| download_err(url, error_chain(&e)))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            size += data.len() as u64;
            if size > limit {
                return Err(download_err(
                    url,
                    format!("it is larger than the {limit}-byte limit"),
                ));
            }
            file.write_all(&data).map_err(|e| Error::Io {
                op: "write",
                path: dest.to_owned(),
                source: e,
            })?;
        }
        Ok(Fetched {
            size,
            last_modified,
            content_type,
            final_url: current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientConfig;

    #[test]
    fn file_names_come_from_the_last_path_segment() {
        assert_eq!(
            file_name_of("https://example.com/a/b/tool.tar.gz?x=1").as_deref(),
            Some("tool.tar.gz")
        );
        assert_eq!(
            file_name_of("http://h:8080/dir/my%20file").as_deref(),
            Some("my file")
        );
        assert_eq!(file_name_of("http://h/dir/"), None);
        assert_eq!(file_name_of("http://h"), None);
        assert_eq!(file_name_of("http://h/a%2Fb"), None);
        assert_eq!(file_name_of("http://h/.."), None);
        assert_eq!(file_name_of("http://h/bad%zz"), None);
    }

    /// A one-shot HTTP server on loopback answering each connection with the
    /// next canned response.
    async fn serve(responses: Vec<String>) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            for r in responses {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                s.write_all(r.as_bytes()).await.unwrap();
                s.shutdown().await.ok();
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn downloads_follow_redirects_and_keep_the_headers() {
        let base = serve(vec![
            "HTTP/1.1 302 Found\r\nLocation: /real/file.txt\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\nhello".into(),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        let c = Client::new(ClientConfig::default()).unwrap();
        let got = c
            .fetch_url(&format!("{base}/file.txt"), &dest, 100)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert_eq!(got.size, 5);
        assert_eq!(got.content_type.as_deref(), Some("text/plain"));
        assert_eq!(got.final_url, format!("{base}/real/file.txt"));
        let secs = got
            .last_modified
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(secs, 1445412480);
    }

    #[tokio::test]
    async fn errors_and_oversized_bodies_leave_no_file() {
        let base = serve(vec![
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789".into(),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        let c = Client::new(ClientConfig::default()).unwrap();
        let e = c
            .fetch_url(&format!("{base}/x"), &dest, 100)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("404"), "{e}");
        assert!(!dest.exists());
        let e = c
            .fetch_url(&format!("{base}/y"), &dest, 4)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("4-byte limit"), "{e}");
        assert!(!dest.exists());
        let e = c.fetch_url("ftp://h/x", &dest, 4).await.unwrap_err();
        assert!(e.to_string().contains("not an http"), "{e}");
    }
}
