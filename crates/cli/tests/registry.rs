//! Pull and push through `strato daemon` against real registries: Debian's
//! docker-registry (distribution 2.8) on a random port, open or with
//! htpasswd basic auth, and a small in-test registry that lies (wrong
//! digests, truncated layers, a connection that breaks once). Driven both
//! through the Engine API directly (raw HTTP on the unix socket) and with
//! the stock docker CLI. They need root, the docker CLI
//! (/usr/local/bin/docker, or `DOCKER`) and /usr/bin/docker-registry
//! (`REGISTRY_BIN` to name another); they are never skipped.

mod common;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use sha2::Digest as _;

fn docker_bin() -> String {
    std::env::var("DOCKER").unwrap_or_else(|_| "/usr/local/bin/docker".into())
}

fn registry_bin() -> String {
    std::env::var("REGISTRY_BIN").unwrap_or_else(|_| "/usr/bin/docker-registry".into())
}

fn sha256(data: &[u8]) -> String {
    let d = sha2::Sha256::digest(data);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The status of `GET /v2/` on `port`, or `None` if the exchange failed.
fn v2_status(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    String::from_utf8_lossy(&raw)
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One HTTP/1.0 exchange on `stream` (the server closes after answering):
/// status, headers (lowercase names) and body.
fn http10(
    mut stream: impl Read + Write,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let hs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, hs, raw[split + 4..].to_vec())
}

// ---------------------------------------------------------------- registry

/// Debian's docker-registry on a random loopback port with a private
/// storage root; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts it on loopback; `htpasswd` (user, password) turns on basic auth.
    fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        Registry::start_on("127.0.0.1", htpasswd)
    }

    /// Starts it listening on `ip`.
    fn start_on(ip: &str, htpasswd: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("strato-registry-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {ip}:{port}\n  secret: strato-test\n",
            dir.path().join("storage").display()
        );
        if let Some((user, password)) = htpasswd {
            let hash = bcrypt::hash(password, 4).unwrap();
            let file = dir.path().join("htpasswd");
            fs::write(&file, format!("{user}:{hash}\n")).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: strato-test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg_path = dir.path().join("config.yml");
        fs::write(&cfg_path, cfg).unwrap();
        let log = File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(registry_bin())
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", registry_bin()));
        let r = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // A connection can be reset while the registry starts up: asked
            // again until it answers.
            if let Some(status) = v2_status(port) {
                assert!(status == 200 || status == 401, "registry /v2/: {status}");
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn host(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// The digest the registry has for `repo:tag`.
    fn manifest_digest(&self, repo: &str, tag: &str, auth: Option<&str>) -> String {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut h = vec![(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )];
        let basic;
        if let Some(a) = auth {
            basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(a)
            );
            h.push(("Authorization", &basic));
        }
        let (status, headers, body) =
            http10(s, "GET", &format!("/v2/{repo}/manifests/{tag}"), &h, b"");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let d = headers
            .iter()
            .find(|(k, _)| k == "docker-content-digest")
            .map(|(_, v)| v.clone())
            .expect("Docker-Content-Digest");
        assert_eq!(d, sha256(&body), "the registry's digest is the body's");
        d
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ daemon

/// A strato daemon of one test with private roots, pool, bridge and table.
struct Daemon {
    child: Option<Child>,
    sock: PathBuf,
    exec_root: PathBuf,
    dir: PathBuf,
    bridge: String,
    table: String,
    _ctx: Ctx,
}

impl Daemon {
    fn start(name: &str, extra: &[&str]) -> Daemon {
        let ctx = Ctx::new(name);
        let dir = ctx.dir().to_path_buf();
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        // 198.18.250-255: apart from the engine (198.18.10-249) and daemon
        // (198.19/16) tests.
        let pool = format!("198.18.{}.0/24", 250 + (std::process::id() + seq) % 6);
        let bridge = format!("str{}x{seq}", std::process::id() % 100_000);
        let table = format!("strato_r{}x{seq}", std::process::id());
        let sock = dir.join("d.sock");
        let exec_root = dir.join("exec");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("daemon.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_strato"))
            .arg("daemon")
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(&exec_root)
            .args(["--bridge-pool", &pool])
            .args(["--subnet-prefix", "26"])
            .args(["--bridge-name", &bridge])
            .args(["--nft-table", &table])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start strato daemon");
        let d = Daemon {
            child: Some(child),
            sock,
            exec_root,
            dir,
            bridge,
            table,
            _ctx: ctx,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(d.sock.exists() && UnixStream::connect(&d.sock).is_ok()) {
            assert!(
                Instant::now() < deadline,
                "the daemon did not listen within 20 s:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs the docker CLI against this daemon with a private config dir.
    fn docker_in(&self, args: &[&str], input: Option<&[u8]>) -> Out {
        let mut c = Command::new(docker_bin());
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.join("docker-config"));
        run_bounded(c, &self.dir, "docker", args, input, CMD_TIMEOUT, || {
            format!("; daemon log:\n{}", self.log())
        })
    }

    fn docker(&self, args: &[&str]) -> Out {
        self.docker_in(args, None)
    }

    /// An Engine API request: status and body.
    fn api(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let s = UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(CMD_TIMEOUT)).unwrap();
        let (status, _, body) = http10(s, method, path, headers, b"");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A progress-streaming request: its JSON messages (status must be 200).
    fn api_stream(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Vec<Value> {
        let (status, body) = self.api(method, path, headers);
        assert_eq!(status, 200, "{method} {path}: {body}\n{}", self.log());
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Imports the busybox rootfs as `reference`; returns the image id.
    fn import_busybox(&self, reference: &str) -> String {
        let tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs_cache())
            .args(["-cf", "-", "."])
            .output()
            .expect("tar the rootfs");
        assert!(tar.status.success());
        let out = self
            .docker_in(&["import", "-", reference], Some(&tar.stdout))
            .ok();
        out.stdout.trim().to_owned()
    }

    fn image_id(&self, reference: &str) -> String {
        self.docker(&["image", "inspect", "--format", "{{.Id}}", reference])
            .ok()
            .stdout
            .trim()
            .to_owned()
    }

    /// Nothing is left in the image store's staging directory.
    fn assert_no_staging_left(&self) {
        let tmp = self.data().join("images/tmp");
        let left: Vec<_> = fs::read_dir(&tmp)
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "staging left in {}: {left:?}",
            tmp.display()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                let ids = self.docker(&["ps", "-aq"]).stdout;
                for id in ids.split_whitespace() {
                    let _ = self.docker(&["rm", "-f", id]);
                }
            }
        }
        common::stop_daemon(self.child.take());
        common::clean_daemon_leftovers(&self.exec_root, &self.bridge, &self.table, &self.dir);
    }
}

fn x_registry_auth(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(v.to_string())
}

fn statuses(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| m["status"].as_str().map(str::to_owned))
        .collect()
}

fn errors(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| m["error"].as_str().map(str::to_owned))
        .collect()
}

/// The aux of a push stream: (Tag, Digest, Size).
fn push_aux(msgs: &[Value]) -> (String, String, u64) {
    let aux = msgs
        .iter()
        .find_map(|m| m.get("aux"))
        .unwrap_or_else(|| panic!("no aux in {msgs:#?}"));
    (
        aux["Tag"].as_str().unwrap().to_owned(),
        aux["Digest"].as_str().unwrap().to_owned(),
        aux["Size"].as_u64().unwrap(),
    )
}

// ------------------------------------------------------------------- tests

#[test]
fn engine_api_push_remove_pull_and_run() {
    let reg = Registry::start(None);
    let d = Daemon::start("reg-api", &[]);
    let name = format!("{}/bb", reg.host());
    let id = d.import_busybox(&format!("{name}:v1"));
    let none = x_registry_auth(&json!({}));

    // Push: the layer is compressed, uploaded and reported.
    let msgs = d.api_stream(
        "POST",
        &format!("/images/{name}/push?tag=v1"),
        &[("X-Registry-Auth", &none)],
    );
    assert!(errors(&msgs).is_empty(), "{msgs:#?}");
    let st = statuses(&msgs);
    assert_eq!(st[0], format!("The push refers to repository [{name}]"));
    assert!(st.contains(&"Preparing".to_owned()), "{st:?}");
    assert!(st.contains(&"Pushed".to_owned()), "{st:?}");
    assert!(
        msgs.iter().any(|m| m["status"] == "Pushing"
            && m["progressDetail"]["current"].as_u64() > Some(0)
            && m["progressDetail"]["total"].as_u64() > Some(0)),
        "{msgs:#?}"
    );
    let (tag, digest, size) = push_aux(&msgs);
    assert_eq!(tag, "v1");
    assert!(
        st.contains(&format!("v1: digest: {digest} size: {size}")),
        "{st:?}"
    );
    assert_eq!(reg.manifest_digest("bb", "v1", None), digest);

    // The registry is asked what it holds, without a pull (docker-py's
    // inspect_distribution): the manifest's descriptor and its platform.
    let (status, body) = d.api("GET", &format!("/distribution/{name}:v1/json"), &[]);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Descriptor"]["digest"], digest.as_str(), "{v}");
    assert_eq!(v["Descriptor"]["size"], size, "{v}");
    assert!(
        v["Descriptor"]["mediaType"]
            .as_str()
            .unwrap()
            .contains("manifest"),
        "{v}"
    );
    assert_eq!(v["Platforms"][0]["os"], "linux", "{v}");
    assert!(
        !v["Platforms"][0]["architecture"]
            .as_str()
            .unwrap()
            .is_empty(),
        "{v}"
    );
    let (status, body) = d.api("GET", &format!("/distribution/{name}:nope/json"), &[]);
    assert_eq!(status, 404, "{body}");

    // A second push finds everything there and gives the same digest.
    let again = d.api_stream(
        "POST",
        &format!("/images/{name}/push?tag=v1"),
        &[("X-Registry-Auth", &none)],
    );
    assert!(
        statuses(&again).contains(&"Layer already exists".to_owned()),
        "{again:#?}"
    );
    assert!(
        !statuses(&again).contains(&"Pushed".to_owned()),
        "{again:#?}"
    );
    assert_eq!(push_aux(&again).1, digest);

    // Remove it locally, pull it back.
    d.docker(&["rmi", &format!("{name}:v1")]).ok();
    assert!(d.docker(&["images", "-q"]).ok().stdout.trim().is_empty());
    let msgs = d.api_stream(
        "POST",
        &format!("/images/create?fromImage={name}&tag=v1"),
        &[("X-Registry-Auth", &none)],
    );
    assert!(errors(&msgs).is_empty(), "{msgs:#?}");
    let st = statuses(&msgs);
    let want = [
        "Pulling from bb".to_owned(),
        "Pulling fs layer".to_owned(),
        "Downloading".to_owned(),
        "Verifying Checksum".to_owned(),
        "Download complete".to_owned(),
        "Extracting".to_owned(),
        "Pull complete".to_owned(),
        format!("Digest: {digest}"),
        format!("Status: Downloaded newer image for {name}:v1"),
    ];
    let mut at = 0;
    for w in &want {
        let pos = st[at..]
            .iter()
            .position(|s| s == w)
            .unwrap_or_else(|| panic!("{w:?} missing (in order) from {st:?}"));
        at += pos;
    }
    let dl = msgs.iter().rfind(|m| m["status"] == "Downloading").unwrap();
    assert_eq!(
        dl["progressDetail"]["current"], dl["progressDetail"]["total"],
        "{dl}"
    );
    assert_eq!(
        d.image_id(&format!("{name}:v1")),
        id,
        "same image id after the round trip"
    );
    d.assert_no_staging_left();

    // It runs.
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            &format!("{name}:v1"),
            "echo",
            "pulled-ok",
        ])
        .ok();
    assert_eq!(out.stdout.trim(), "pulled-ok");

    // Pulling again changes nothing.
    let msgs = d.api_stream(
        "POST",
        &format!("/images/create?fromImage={name}&tag=v1"),
        &[],
    );
    assert!(
        statuses(&msgs).contains(&format!("Status: Image is up to date for {name}:v1")),
        "{msgs:#?}"
    );

    // A tag the registry does not have: a plain 404 before any streaming.
    let (status, body) = d.api(
        "POST",
        &format!("/images/create?fromImage={name}&tag=nope"),
        &[],
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("not found"), "{body}");
}

#[test]
fn docker_cli_push_and_pull_show_progress() {
    let reg = Registry::start(None);
    let d = Daemon::start("reg-cli", &[]);
    let name = format!("{}/cli", reg.host());
    let reference = format!("{name}:t1");
    let id = d.import_busybox(&reference);

    let out = d.docker(&["push", &reference]).ok();
    let s = &out.stdout;
    for want in [
        format!("The push refers to repository [{name}]"),
        ": Preparing".to_owned(),
        ": Pushed".to_owned(),
        "t1: digest: sha256:".to_owned(),
    ] {
        assert!(
            s.contains(&want),
            "{want:?} missing from docker push:\n{out}"
        );
    }
    let digest = s
        .split("t1: digest: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_eq!(reg.manifest_digest("cli", "t1", None), digest);
    // The pushed digest is one of the image's RepoDigests.
    let repo_digests = |d: &Daemon| {
        d.docker(&[
            "image",
            "inspect",
            "-f",
            "{{json .RepoDigests}}",
            &reference,
        ])
        .ok()
        .stdout
    };
    let by_digest = format!("{name}@{digest}");
    assert_eq!(repo_digests(&d).trim(), format!("[\"{by_digest}\"]"));

    // Another repository of the same registry: the layer is mounted.
    d.docker(&["tag", &reference, &format!("{}/other:t1", reg.host())])
        .ok();
    let out = d
        .docker(&["push", &format!("{}/other:t1", reg.host())])
        .ok();
    assert!(out.stdout.contains(": Mounted from cli"), "{out}");

    d.docker(&["rmi", &reference, &format!("{}/other:t1", reg.host())])
        .ok();
    let out = d.docker(&["pull", &reference]).ok();
    let s = &out.stdout;
    for want in [
        "t1: Pulling from cli".to_owned(),
        ": Pulling fs layer".to_owned(),
        ": Verifying Checksum".to_owned(),
        ": Download complete".to_owned(),
        ": Pull complete".to_owned(),
        format!("Digest: {digest}"),
        format!("Status: Downloaded newer image for {reference}"),
    ] {
        assert!(
            s.contains(&want),
            "{want:?} missing from docker pull:\n{out}"
        );
    }
    assert_eq!(d.image_id(&reference), id);
    // Pulled: the digest the registry served, listed and usable as a name.
    assert_eq!(repo_digests(&d).trim(), format!("[\"{by_digest}\"]"));
    let out = d
        .docker(&[
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Digest}}",
        ])
        .ok();
    assert!(out.stdout.contains(&format!("{name} {digest}")), "{out}");
    let out = d
        .docker(&["run", "--rm", &by_digest, "echo", "by-digest"])
        .ok();
    assert_eq!(out.stdout, "by-digest\n");
    let out = d.docker(&["pull", &reference]).ok();
    assert!(
        out.stdout
            .contains(&format!("Status: Image is up to date for {reference}")),
        "{out}"
    );
    let out = d.docker(&["pull", &format!("{name}:missing")]).failed();
    assert!(out.stderr.contains("not found"), "{out}");
}

#[test]
fn basic_auth_registry_needs_credentials() {
    let reg = Registry::start(Some(("tester", "s3cret")));
    let d = Daemon::start("reg-auth", &[]);
    let name = format!("{}/private", reg.host());
    let reference = format!("{name}:v1");
    d.import_busybox(&reference);
    let good = x_registry_auth(&json!({"username": "tester", "password": "s3cret"}));
    let bad = x_registry_auth(&json!({"username": "tester", "password": "wrong"}));
    let push = format!("/images/{name}/push?tag=v1");

    // Without credentials, and with wrong ones: a clear 401, nothing pushed.
    let (status, body) = d.api("POST", &push, &[]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("requires a user name and password"), "{body}");
    let (status, body) = d.api("POST", &push, &[("X-Registry-Auth", &bad)]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\\\"tester\\\" was refused"), "{body}");

    let msgs = d.api_stream("POST", &push, &[("X-Registry-Auth", &good)]);
    assert!(errors(&msgs).is_empty(), "{msgs:#?}");
    let (_, digest, _) = push_aux(&msgs);
    assert_eq!(
        reg.manifest_digest("private", "v1", Some("tester:s3cret")),
        digest
    );

    d.docker(&["rmi", &reference]).ok();
    let pull = format!("/images/create?fromImage={name}&tag=v1");
    let (status, body) = d.api("POST", &pull, &[]);
    assert_eq!(status, 401, "{body}");
    let msgs = d.api_stream("POST", &pull, &[("X-Registry-Auth", &good)]);
    assert!(errors(&msgs).is_empty(), "{msgs:#?}");
    assert!(
        statuses(&msgs).contains(&format!("Digest: {digest}")),
        "{msgs:#?}"
    );

    // docker login goes through POST /auth: wrong password refused, right
    // one stored, after which the daemon pulls without X-Registry-Auth.
    let out = d
        .docker_in(
            &["login", "-u", "tester", "--password-stdin", &reg.host()],
            Some(b"wrong\n"),
        )
        .failed();
    assert!(out.stderr.contains("refused"), "{out}");
    assert!(!d.data().join("credentials.json").exists());
    let out = d
        .docker_in(
            &["login", "-u", "tester", "--password-stdin", &reg.host()],
            Some(b"s3cret\n"),
        )
        .ok();
    assert!(out.stdout.contains("Login Succeeded"), "{out}");
    let meta = fs::metadata(d.data().join("credentials.json")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    d.docker(&["rmi", &reference]).ok();
    let msgs = d.api_stream("POST", &pull, &[]);
    assert!(errors(&msgs).is_empty(), "{msgs:#?}");
    // And the CLI, which sends its own stored credentials.
    d.docker(&["rmi", &reference]).ok();
    let out = d.docker(&["pull", &reference]).ok();
    assert!(out.stdout.contains("Pull complete"), "{out}");
}

// ------------------------------------------------------ a lying registry

/// How the lying registry serves the layer of one tag.
#[derive(Clone, Copy, PartialEq)]
enum Lie {
    /// Same length, one byte changed.
    WrongDigest,
    /// Claims the full length, sends half, closes; ignores Range.
    Truncated,
    /// Breaks the first download halfway, then honours Range.
    BreaksOnce,
}

/// A registry on a std `TcpListener` serving one image per tag, lying
/// about its layer as [`Lie`] says. Records the Range headers it saw.
struct Liar {
    port: u16,
    ranges: Arc<Mutex<Vec<String>>>,
    config_digest: String,
}

struct LiarImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: Vec<u8>,
}

fn liar_image() -> LiarImage {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("hello.txt"),
        "hello from the liar\n".repeat(2000),
    )
    .unwrap();
    let tar = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .args(["-cf", "-", "hello.txt"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let layer = tar.stdout;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["cat", "/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
    }))
    .unwrap();
    LiarImage {
        manifest,
        config,
        layer,
    }
}

impl Liar {
    fn start(lie_of: fn(&str) -> Lie) -> Liar {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let img = Arc::new(liar_image());
        let config_digest = sha256(&img.config);
        let seen = ranges.clone();
        std::thread::spawn(move || {
            let mut broke_once = false;
            // Tag of the last manifest asked for decides the layer's lie.
            let mut lie = Lie::WrongDigest;
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
                    continue; // a TLS hello or garbage: close
                };
                let (method, path) = (method.to_owned(), path.to_owned());
                let mut range = None;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("range") {
                            range = Some(v.trim().to_owned());
                        }
                    }
                }
                let head = |s: &mut TcpStream, status: &str, len: usize, extra: &str| {
                    let _ = write!(
                        s,
                        "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n"
                    );
                };
                let body_of = |s: &mut TcpStream, status: &str, body: &[u8], extra: &str| {
                    head(s, status, body.len(), extra);
                    if method != "HEAD" {
                        let _ = s.write_all(body);
                    }
                };
                let layer_path = format!("/v2/liar/blobs/{}", sha256(&img.layer));
                let config_path = format!("/v2/liar/blobs/{}", sha256(&img.config));
                if path == "/v2/" {
                    body_of(&mut s, "200 OK", b"{}", "");
                } else if let Some(tag) = path.strip_prefix("/v2/liar/manifests/") {
                    lie = lie_of(tag);
                    body_of(
                        &mut s,
                        "200 OK",
                        &img.manifest,
                        &format!(
                            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nDocker-Content-Digest: {}\r\n",
                            sha256(&img.manifest)
                        ),
                    );
                } else if path == config_path {
                    body_of(&mut s, "200 OK", &img.config, "");
                } else if path == layer_path {
                    if let Some(rg) = &range {
                        seen.lock().unwrap().push(rg.clone());
                    }
                    let n = img.layer.len();
                    match lie {
                        Lie::WrongDigest => {
                            let mut bad = img.layer.clone();
                            bad[n / 2] ^= 0xff;
                            body_of(&mut s, "200 OK", &bad, "");
                        }
                        Lie::Truncated => {
                            head(&mut s, "200 OK", n, "");
                            let _ = s.write_all(&img.layer[..n / 2]);
                        }
                        Lie::BreaksOnce => {
                            let from: usize = range
                                .as_deref()
                                .and_then(|r| r.strip_prefix("bytes="))
                                .and_then(|r| r.trim_end_matches('-').parse().ok())
                                .unwrap_or(0);
                            if !broke_once {
                                broke_once = true;
                                head(&mut s, "200 OK", n, "");
                                let _ = s.write_all(&img.layer[..n / 2]);
                            } else if from > 0 {
                                head(
                                    &mut s,
                                    "206 Partial Content",
                                    n - from,
                                    &format!("Content-Range: bytes {from}-{}/{n}\r\n", n - 1),
                                );
                                let _ = s.write_all(&img.layer[from..]);
                            } else {
                                body_of(&mut s, "200 OK", &img.layer, "");
                            }
                        }
                    }
                } else {
                    body_of(
                        &mut s,
                        "404 Not Found",
                        br#"{"errors":[{"code":"NAME_UNKNOWN","message":"no such thing"}]}"#,
                        "Content-Type: application/json\r\n",
                    );
                }
                let _ = s.flush();
            }
        });
        Liar {
            port,
            ranges,
            config_digest,
        }
    }
}

#[test]
fn lying_registry_is_refused_and_leaves_nothing() {
    let liar = Liar::start(|tag| match tag {
        "wrongdigest" => Lie::WrongDigest,
        "truncated" => Lie::Truncated,
        _ => Lie::BreaksOnce,
    });
    let d = Daemon::start("reg-liar", &[]);
    let name = format!("localhost:{}/liar", liar.port);

    let msgs = d.api_stream(
        "POST",
        &format!("/images/create?fromImage={name}&tag=wrongdigest"),
        &[],
    );
    let errs = errors(&msgs);
    assert_eq!(errs.len(), 1, "{msgs:#?}");
    assert!(errs[0].contains("digest mismatch"), "{errs:?}");
    assert!(
        msgs.last().unwrap()["errorDetail"]["message"].is_string(),
        "{msgs:#?}"
    );

    let out = d.docker(&["pull", &format!("{name}:truncated")]).failed();
    assert!(
        out.stderr.contains("bytes") || out.stdout.contains("bytes"),
        "{out}"
    );
    assert!(d.docker(&["images", "-q"]).ok().stdout.trim().is_empty());
    d.assert_no_staging_left();
    // Truncated downloads were resumed with Range before giving up.
    assert!(
        liar.ranges
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with("bytes=")),
        "no Range request seen"
    );

    // A connection that breaks once is resumed where it broke.
    liar.ranges.lock().unwrap().clear();
    let out = d.docker(&["pull", &format!("{name}:flaky")]).ok();
    assert!(out.stdout.contains("Pull complete"), "{out}");
    let ranges = liar.ranges.lock().unwrap().clone();
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    assert_ne!(ranges[0], "bytes=0-");
    let id = d.image_id(&format!("{name}:flaky"));
    assert_eq!(id, liar.config_digest, "the image is the liar's config");
    d.assert_no_staging_left();
}

/// A global (non-loopback) IPv4 address of this host; a dummy interface
/// with one is made if there is none (removed on drop).
struct HostIp {
    ip: String,
    dummy: Option<String>,
}

impl HostIp {
    fn get() -> HostIp {
        let out = Command::new("ip")
            .args(["-4", "-o", "addr", "show", "scope", "global"])
            .output()
            .expect("ip addr");
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(ip) = text
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|a| a.split('/').next())
        {
            return HostIp {
                ip: ip.to_owned(),
                dummy: None,
            };
        }
        let name = format!("strd{}", std::process::id() % 100_000);
        let ip = "192.0.2.77".to_owned();
        for args in [
            vec!["link", "add", &name, "type", "dummy"],
            vec!["addr", "add", "192.0.2.77/32", "dev", &name],
            vec!["link", "set", &name, "up"],
        ] {
            assert!(Command::new("ip").args(&args).status().unwrap().success());
        }
        HostIp {
            ip,
            dummy: Some(name),
        }
    }
}

impl Drop for HostIp {
    fn drop(&mut self) {
        if let Some(n) = &self.dummy {
            let _ = Command::new("ip").args(["link", "del", n]).status();
        }
    }
}

#[test]
fn insecure_registry_flag_allows_plain_http() {
    let reg = Registry::start_on("0.0.0.0", None);
    let ip = HostIp::get();
    let host = format!("{}:{}", ip.ip, reg.port);
    let name = format!("{host}/ins");
    let reference = format!("{name}:v1");
    let push = format!("/images/{name}/push?tag=v1");

    // Not loopback, not marked insecure: HTTPS only, which fails, and the
    // error says what to do.
    let d = Daemon::start("reg-insecure", &[]);
    d.import_busybox(&reference);
    let (status, body) = d.api("POST", &push, &[]);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains(&format!("--insecure-registry {host}")),
        "{body}"
    );
    drop(d);

    let d = Daemon::start("reg-insecure2", &["--insecure-registry", &host]);
    d.import_busybox(&reference);
    let msgs = d.api_stream("POST", &push, &[]);
    assert!(errors(&msgs).is_empty(), "{msgs:#?}");
    let (_, digest, _) = push_aux(&msgs);
    assert_eq!(reg.manifest_digest("ins", "v1", None), digest);
}
