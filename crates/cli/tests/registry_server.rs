//! `strato registry serve` and `strato daemon --registry-addr` as processes:
//! flags, refusals, auth, and a blob pushed over a real socket. (The HTTP API
//! itself is tested in crates/registry/server/tests.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

mod common;
use common::free_port;

fn strato() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strato"))
}

/// One HTTP/1.1 request; returns the status line and headers, and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    (
        String::from_utf8_lossy(&out[..split]).into_owned(),
        out[split + 4..].to_vec(),
    )
}

fn wait_up(port: u16, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "exited with {st}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "not up in 30 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn push_blob(port: u16, repo: &str, data: &[u8], auth: &[(&str, &str)]) -> (String, String) {
    let d = format!("sha256:{:x}", Sha256::digest(data));
    let (head, _) = http(
        port,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        auth,
        data,
    );
    (head, d)
}

#[test]
fn registry_serve_with_htpasswd_pushes_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("ci:{hash}\n")).unwrap();
    let port = free_port();
    let log = dir.path().join("log");
    let child = strato()
        .args([
            "registry",
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--quota",
            "1M",
            "--gc-interval",
            "10m",
        ])
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--htpasswd")
        .arg(dir.path().join("htpasswd"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut k = Kill(child);
    wait_up(port, &mut k.0, &log);
    let (head, _) = http(port, "GET", "/v2/", &[], b"");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.to_lowercase().contains("www-authenticate: basic"),
        "{head}"
    );
    let auth = [("authorization", "Basic Y2k6czNjcmV0")]; // ci:s3cret
    let (head, _) = http(port, "GET", "/v2/", &auth, b"");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head
        .to_lowercase()
        .contains("docker-distribution-api-version: registry/2.0"));
    let (head, d) = push_blob(port, "ci/app", b"a layer", &auth);
    assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    let hex = d.trim_start_matches("sha256:");
    let stored = dir
        .path()
        .join("root/blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    assert_eq!(std::fs::read(stored).unwrap(), b"a layer");
    // Over quota (1 MiB).
    let (head, _) = push_blob(port, "ci/app", &vec![7u8; 2 << 20], &auth);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(k.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = k.0.wait().unwrap();
    assert_eq!(st.code(), Some(0));
}

#[test]
fn registry_serve_refuses_bad_setups_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let run = |args: &[&str]| {
        let out = strato()
            .args(["registry", "serve"])
            .args(args)
            .arg("--root")
            .arg(&root)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--addr", "0.0.0.0:0"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("without authentication") && err.contains("--htpasswd"),
        "{err}"
    );
    let (code, err) = run(&["--addr", "localhost"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--addr localhost"), "{err}");
    let (code, err) = run(&[
        "--addr",
        "127.0.0.1:0",
        "--token-secret",
        "0123456789abcdef0",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--token-secret needs --htpasswd"), "{err}");
    let (code, err) = run(&["--quota", "lots"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a size"), "{err}");
    let missing = dir.path().join("nope");
    let (code, err) = run(&["--htpasswd", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("htpasswd") && err.contains("nope"), "{err}");
    std::fs::write(dir.path().join("plain"), "u:{SHA}xyz\n").unwrap();
    let (code, err) = run(&["--htpasswd", dir.path().join("plain").to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("htpasswd -B"), "{err}");
    let (code, err) = run(&[
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}

#[test]
fn daemon_serves_the_registry_with_registry_addr() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let exec_root = dir.path().join("exec");
    let tag = std::process::id() % 100_000;
    let (bridge, table) = (format!("strg{tag}"), format!("strato_reg{tag}"));
    let log = dir.path().join("daemon.log");
    let child = strato()
        .arg("daemon")
        .arg("--host")
        .arg(format!("unix://{}", dir.path().join("d.sock").display()))
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(&exec_root)
        .args(["--bridge-pool", "198.19.252.0/24", "--subnet-prefix", "26"])
        .args(["--bridge-name", &bridge, "--nft-table", &table])
        .args(["--registry-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let k = Kill(child);
    let cleanup = scopeguard(move || {
        drop(k);
        if let Ok(mut c) = strato_supervisor::Client::connect(&exec_root.join("supervisor")) {
            if let Ok(pid) = c.ping() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &bridge])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &table])
            .stderr(Stdio::null())
            .status();
    });
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "daemon registry not up: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (head, body) = http(port, "GET", "/v2/", &[], b"");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"{}");
    let (head, d) = push_blob(port, "daemon/app", b"layer in the daemon", &[]);
    assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    let hex = d.trim_start_matches("sha256:");
    let stored = dir
        .path()
        .join("data/registry/blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    assert!(
        stored.exists(),
        "the daemon's registry keeps blobs under DATA_ROOT/registry"
    );
    drop(cleanup);
}

/// Runs `f` when dropped (cleanup even when an assertion fails).
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct G<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for G<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    G(Some(f))
}
