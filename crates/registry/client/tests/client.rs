//! The client library against real servers: Debian's docker-registry
//! (distribution 2.8, /usr/bin/docker-registry or `REGISTRY_BIN`) for
//! uploads (monolithic, chunked, mounted) and downloads, and an in-test
//! registry on a TCP socket that demands bearer tokens from its own realm.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strato_registry_client::{
    BlobPushed, Client, ClientConfig, Credentials, Descriptor, Digest, Error, Reference, UploadJob,
};

struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: strato-test\n",
            dir.path().join("storage").display()
        );
        let cfg_path = dir.path().join("config.yml");
        fs::write(&cfg_path, cfg).unwrap();
        let bin =
            std::env::var("REGISTRY_BIN").unwrap_or_else(|_| "/usr/bin/docker-registry".into());
        let child = Command::new(&bin)
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn blob(dir: &std::path::Path, name: &str, data: &[u8]) -> UploadJob {
    let path = dir.join(name);
    fs::write(&path, data).unwrap();
    UploadJob {
        digest: Digest::of(data),
        size: data.len() as u64,
        path,
        mount_from: None,
    }
}

/// Deterministic incompressible-ish bytes.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_and_download_against_docker_registry() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let client = Client::new(ClientConfig::default()).unwrap();
    let r = Reference::parse(&format!("localhost:{}/team/app:v1", reg.port)).unwrap();
    let repo = client
        .repository(&r, Credentials::default(), true)
        .await
        .unwrap()
        .with_chunk_size(100 << 10);
    assert!(
        repo.base_url().starts_with("http://"),
        "plain HTTP on loopback"
    );

    let small = blob(work.path(), "small", b"{\"architecture\":\"amd64\"}");
    let big_data = noise(350 << 10, 7);
    let big = blob(work.path(), "big", &big_data);
    let progress: strato_registry_client::Progress = Arc::new(|_| {});
    assert_eq!(
        repo.push_blob(&small, &progress).await.unwrap(),
        BlobPushed::Uploaded
    );
    // 350 KiB in 100 KiB PATCH chunks, then the closing PUT.
    assert_eq!(
        repo.push_blob(&big, &progress).await.unwrap(),
        BlobPushed::Uploaded
    );
    assert_eq!(repo.blob_exists(&big.digest).await.unwrap(), Some(big.size));
    assert_eq!(
        repo.push_blob(&big, &progress).await.unwrap(),
        BlobPushed::Exists
    );

    // A manifest naming them, pushed by tag and resolved back.
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": small.digest, "size": small.size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": big.digest, "size": big.size}],
    }))
    .unwrap();
    let d = repo
        .put_manifest(
            "v1",
            "application/vnd.oci.image.manifest.v1+json",
            Bytes::from(manifest.clone()),
        )
        .await
        .unwrap();
    assert_eq!(d, Digest::of(&manifest));
    let resolved = repo.resolve("v1").await.unwrap();
    assert_eq!(resolved.digest, d);
    assert_eq!(&resolved.manifest_bytes[..], &manifest[..]);
    assert_eq!(resolved.manifest.layers[0].digest, big.digest);

    // Download both, concurrently, verified.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let jobs = vec![
        strato_registry_client::BlobJob {
            descriptor: resolved.manifest.layers[0].clone(),
            dest: work.path().join("big.out"),
        },
        strato_registry_client::BlobJob {
            descriptor: resolved.manifest.config.clone(),
            dest: work.path().join("small.out"),
        },
    ];
    repo.download_blobs(jobs, 3, tx).await.unwrap();
    assert_eq!(fs::read(work.path().join("big.out")).unwrap(), big_data);
    let mut done = 0;
    while let Ok(p) = rx.try_recv() {
        if matches!(p, strato_registry_client::PullProgress::Done(_)) {
            done += 1;
        }
    }
    assert_eq!(done, 2);

    // A descriptor that lies about the digest is refused.
    let liar = Descriptor {
        digest: Digest::of(b"something else"),
        ..resolved.manifest.layers[0].clone()
    };
    let err = repo
        .fetch_blob(&liar, &work.path().join("x"), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let wrong_size = Descriptor {
        size: big.size - 1,
        ..resolved.manifest.layers[0].clone()
    };
    let err = repo
        .fetch_blob(&wrong_size, &work.path().join("y"), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");

    // Another repository mounts the blob instead of uploading it.
    let other = Reference::parse(&format!("localhost:{}/team/other:v1", reg.port)).unwrap();
    let repo2 = client
        .repository(&other, Credentials::default(), true)
        .await
        .unwrap();
    let mut job = big.clone();
    job.mount_from = Some("team/app".into());
    assert_eq!(
        repo2.push_blob(&job, &progress).await.unwrap(),
        BlobPushed::Mounted
    );

    // Unknown tags are NotFound, naming the reference.
    let err = repo.resolve("nope").await.unwrap_err();
    assert!(err.to_string().contains("team/app:nope"), "{err}");
}

/// What the bearer registry saw.
#[derive(Default)]
struct Seen {
    token_requests: Vec<String>,
}

/// A registry that wants `Bearer good-token`, issued by its own realm at
/// `/token` to `user:pass` for the scope `repository:app:pull`.
fn bearer_registry() -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(b"{}"), "size": 2},
        "layers": [],
    }))
    .unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let Some(path) = line.split_whitespace().nth(1).map(str::to_owned) else {
                continue; // TLS hello: close
            };
            let mut auth = String::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("authorization") {
                        auth = v.trim().to_owned();
                    }
                }
            }
            let reply = |s: &mut TcpStream, status: &str, extra: &str, body: &[u8]| {
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                    body.len()
                );
                let _ = s.write_all(body);
            };
            if let Some(q) = path.strip_prefix("/token?") {
                s2.lock().unwrap().token_requests.push(q.to_owned());
                // base64("user:pass")
                if auth == "Basic dXNlcjpwYXNz" {
                    reply(
                        &mut s,
                        "200 OK",
                        "Content-Type: application/json\r\n",
                        br#"{"token":"good-token","expires_in":300}"#,
                    );
                } else {
                    reply(
                        &mut s,
                        "401 Unauthorized",
                        "",
                        b"{\"details\":\"bad creds\"}",
                    );
                }
            } else if auth != "Bearer good-token" {
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"test-registry\",scope=\"repository:app:pull\"\r\nContent-Type: application/json\r\n"
                );
                reply(
                    &mut s,
                    "401 Unauthorized",
                    &challenge,
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                );
            } else if path == "/v2/" {
                reply(&mut s, "200 OK", "", b"{}");
            } else if path == "/v2/app/manifests/v1" {
                let extra = format!(
                    "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nDocker-Content-Digest: {}\r\n",
                    Digest::of(&manifest)
                );
                reply(&mut s, "200 OK", &extra, &manifest);
            } else {
                reply(&mut s, "404 Not Found", "", b"");
            }
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_from_the_realm() {
    let (port, seen) = bearer_registry();
    let client = Client::new(ClientConfig::default()).unwrap();
    let r = Reference::parse(&format!("127.0.0.1:{port}/app:v1")).unwrap();

    let err = client
        .repository(&r, Credentials::basic("user", "wrong"), false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("\"user\""), "{err}");

    let repo = client
        .repository(&r, Credentials::basic("user", "pass"), false)
        .await
        .unwrap();
    let resolved = repo.resolve("v1").await.unwrap();
    assert!(resolved.manifest.layers.is_empty());
    {
        let s = seen.lock().unwrap();
        let last = s.token_requests.last().unwrap();
        assert!(last.contains("service=test-registry"), "{last}");
        assert!(last.contains("scope=repository%3Aapp%3Apull"), "{last}");
    }
    // The token is cached: a second repository asks the realm nothing.
    let before = seen.lock().unwrap().token_requests.len();
    let repo2 = client
        .repository(&r, Credentials::basic("user", "pass"), false)
        .await
        .unwrap();
    repo2.resolve("v1").await.unwrap();
    assert_eq!(seen.lock().unwrap().token_requests.len(), before);

    // login checks the credentials at the realm.
    let host = format!("127.0.0.1:{port}");
    client
        .login(&host, &Credentials::basic("user", "pass"))
        .await
        .unwrap();
    let err = client
        .login(&host, &Credentials::basic("user", "nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
}
