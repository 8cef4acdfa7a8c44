//! End-to-end tests of strato's own client verbs (`strato run`, `ps`,
//! `logs`, …): each test starts a real `strato daemon` with a private data
//! root, exec root, address pool, bridge and nftables table, imports a
//! busybox image made from scripts/mkrootfs.sh's rootfs with `strato
//! import`, and then drives the daemon only through `strato` client
//! commands. Everything (containers, daemon, supervisor, bridge, table,
//! mounts) is removed when the test ends, failed or not. They need root and
//! are never skipped.
//!
//! `cp` is tested against the API server over strato-api's fake backend,
//! because the engine's archive endpoints are not implemented yet.

mod common;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// A daemon of one test.
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
    fn start(name: &str) -> Daemon {
        Daemon::start_with(name, &[])
    }

    /// A daemon with more daemon flags (e.g. a TCP listener).
    fn start_with(name: &str, extra: &[&str]) -> Daemon {
        let ctx = Ctx::new(name);
        let dir = ctx.dir().to_path_buf();
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        // 100.72/16 (shared address space): apart from the engine tests'
        // 198.18/16 and the docker-CLI daemon tests' 198.19/16.
        let n = (std::process::id() * 4 + seq) % 240 + 10;
        let bridge = format!("stc{}x{seq}", std::process::id() % 100_000);
        let table = format!("strato_c{}x{seq}", std::process::id());
        let sock = dir.join("d.sock");
        let exec_root = dir.join("exec");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("daemon.log"))
            .expect("daemon log");
        let child = Command::new(env!("CARGO_BIN_EXE_strato"))
            .arg("daemon")
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(&exec_root)
            .args(["--bridge-pool", &format!("100.72.{n}.0/24")])
            .args(["--subnet-prefix", "26"])
            .args(["--bridge-name", &bridge])
            .args(["--nft-table", &table])
            .args(extra)
            .env_remove("STRATO_HOST")
            .env_remove("STRATO_TOKEN")
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
        while !(d.sock.exists() && d.strato(&["version"]).success()) {
            assert!(
                Instant::now() < deadline,
                "the daemon did not answer within 20 s; its log:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// `strato -H <this daemon> ARGS`.
    fn strato(&self, args: &[&str]) -> Out {
        let mut full = vec!["-H".to_string(), self.host()];
        full.extend(args.iter().map(|s| s.to_string()));
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        run_strato(&self.dir, &full, None, &[])
    }

    fn strato_in(&self, args: &[&str], input: &[u8]) -> Out {
        let mut full = vec!["-H".to_string(), self.host()];
        full.extend(args.iter().map(|s| s.to_string()));
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        run_strato(&self.dir, &full, Some(input), &[])
    }

    /// busybox:latest, imported from the rootfs with `strato import -`.
    fn import_busybox(&self) {
        let tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs_cache())
            .args(["-cf", "-", "."])
            .output()
            .expect("tar the rootfs");
        assert!(tar.status.success());
        let out = self
            .strato_in(&["import", "-", "busybox:latest"], &tar.stdout)
            .ok();
        assert!(out.stdout.starts_with("sha256:"), "{out}");
    }
}

/// Runs the strato binary (at most [`CMD_TIMEOUT`]) in `dir`, feeding it
/// `input`, with extra environment `env`.
fn run_strato(dir: &Path, args: &[&str], input: Option<&[u8]>, env: &[(&str, &str)]) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strato"));
    c.args(args)
        .env_remove("STRATO_HOST")
        .env_remove("STRATO_TOKEN")
        .envs(env.iter().copied());
    run_bounded(c, dir, "strato", args, input, CMD_TIMEOUT, String::new)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                let ids = self.strato(&["ps", "-aq"]).stdout;
                for id in ids.split_whitespace() {
                    let _ = self.strato(&["rm", "-f", id]);
                }
            }
        }
        common::stop_daemon(self.child.take());
        common::clean_daemon_leftovers(&self.exec_root, &self.bridge, &self.table, &self.dir);
    }
}

#[test]
fn run_output_exit_codes_stdin_and_flags() {
    let d = Daemon::start("client-run");
    d.import_busybox();
    let out = d.strato(&["run", "--rm", "busybox", "echo", "hi"]).ok();
    assert_eq!(out.stdout, "hi\n");
    // The container's exit code is run's; stdout and stderr stay apart.
    let out = d
        .strato(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .code_is(3);
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("out\n", "err\n")
    );
    // stdin piped through -i reaches the container, and its end ends it.
    let out = d
        .strato_in(
            &["run", "-i", "--rm", "busybox", "sh", "-c", "wc -l; cat"],
            b"a\nb\nc\n",
        )
        .ok();
    assert_eq!(out.stdout.trim(), "3");
    // Flags reach the container.
    let out = d
        .strato(&[
            "run",
            "--rm",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "--hostname",
            "box",
            "-l",
            "app=t",
            "busybox",
            "sh",
            "-c",
            "echo $FOO $(pwd) $(id -u) $(hostname)",
        ])
        .ok();
    assert_eq!(out.stdout, "bar /tmp 1000 box\n");
    d.strato(&["run", "--rm", "--read-only", "busybox", "touch", "/x"])
        .failed()
        .stderr_mentions(&["read-only"]);
    let out = d
        .strato(&["run", "--rm", "--init", "busybox", "cat", "/proc/1/comm"])
        .ok();
    assert_eq!(out.stdout, "docker-init\n");
    // A command that is not there: 127, and the daemon's reason.
    d.strato(&["run", "--rm", "busybox", "nosuchcmd"])
        .code_is(127)
        .stderr_mentions(&["nosuchcmd"]);
    // A bad flag: 125 before anything is created.
    d.strato(&["run", "-p", "99999:80", "busybox", "true"])
        .code_is(125)
        .stderr_mentions(&["99999"]);
    // An image that is not there and cannot be pulled: 125.
    d.strato(&["run", "--rm", "nosuchimage", "true"])
        .code_is(125)
        .stderr_mentions(&["nosuchimage"]);
    // A TTY: output arrives through the pseudo-terminal (\r\n line ends).
    let out = d
        .strato(&["run", "--rm", "-t", "busybox", "sh", "-c", "tty"])
        .ok();
    assert!(out.stdout.starts_with("/dev/pts/"), "{out}");
    assert!(out.stdout.ends_with("\r\n"), "{out}");
    // Nothing is left: every container above was --rm.
    let ps = d.strato(&["ps", "-aq"]).ok();
    assert_eq!(ps.stdout, "", "{ps}");
}

#[test]
fn detached_container_logs_exec_ps_inspect_stop_rm() {
    let d = Daemon::start("client-detached");
    d.import_busybox();
    let id = d
        .strato(&[
            "run",
            "-d",
            "--name",
            "web",
            "-l",
            "tier=front",
            "busybox",
            "sh",
            "-c",
            "echo started; echo oops >&2; exec sleep 300",
        ])
        .ok()
        .out();
    assert_eq!(id.len(), 64, "a full container ID: {id}");
    // logs: both streams, in order, with --tail and -t.
    let deadline = Instant::now() + Duration::from_secs(20);
    let logs = loop {
        let l = d.strato(&["logs", "web"]).ok();
        if l.stderr.contains("oops") || Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (logs.stdout.as_str(), logs.stderr.as_str()),
        ("started\n", "oops\n")
    );
    let tail = d.strato(&["logs", "--tail", "1", "-t", "web"]).ok();
    let line = format!("{}{}", tail.stdout, tail.stderr);
    assert_eq!(line.lines().count(), 1, "{tail}");
    assert!(
        line.starts_with("20") && line.contains("Z "),
        "timestamped: {tail}"
    );
    // exec: output, exit code, env, workdir, user, stdin.
    let out = d
        .strato(&[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/etc",
            "web",
            "sh",
            "-c",
            "echo $X $(pwd); exit 4",
        ])
        .code_is(4);
    assert_eq!(out.stdout, "1 /etc\n");
    let out = d
        .strato_in(&["exec", "-i", "web", "cat"], b"through exec\n")
        .ok();
    assert_eq!(out.stdout, "through exec\n");
    d.strato(&["exec", "-d", "web", "sh", "-c", "echo bg > /tmp/bg"])
        .ok();
    // ps: the table docker prints, with the short ID, quoted command and name.
    let ps = d.strato(&["ps"]).ok();
    let lines: Vec<&str> = ps.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{ps}");
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(lines[0].contains(col), "{col} missing: {ps}");
    }
    let row = lines[1];
    assert!(row.starts_with(&id[..12]), "{ps}");
    assert!(
        row.contains("busybox") && row.contains("Up ") && row.ends_with("web"),
        "{ps}"
    );
    assert!(row.contains("ago"), "relative creation time: {ps}");
    // Columns line up under their headers.
    // (in characters: the command cell's `…` is one column, three bytes).
    let col = |l: &str, i: usize| l[..i].chars().count();
    assert_eq!(
        col(lines[0], lines[0].find("NAMES").unwrap()),
        col(row, row.rfind("web").unwrap()),
        "{ps}"
    );
    assert_eq!(d.strato(&["ps", "-q"]).ok().out(), id[..12]);
    assert_eq!(d.strato(&["ps", "-q", "--no-trunc"]).ok().out(), id);
    assert_eq!(
        d.strato(&["ps", "-q", "--filter", "label=tier=back"])
            .ok()
            .out(),
        ""
    );
    assert_eq!(
        d.strato(&["ps", "-q", "--filter", "label=tier=front"])
            .ok()
            .out(),
        id[..12]
    );
    // inspect: a JSON array like docker's, and -f templates.
    let v = d.strato(&["inspect", "web"]).ok().json();
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["Name"], "/web");
    assert_eq!(v[0]["State"]["Status"], "running");
    let f = d
        .strato(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{json .Config.Labels}}",
            "web",
        ])
        .ok();
    assert_eq!(f.out(), r#"running {"tier":"front"}"#);
    let img = d
        .strato(&["inspect", "--type", "image", "busybox"])
        .ok()
        .json();
    assert_eq!(img[0]["Os"], "linux");
    // docker's management-command forms reach the same verbs.
    assert_eq!(d.strato(&["container", "ls", "-q"]).ok().out(), id[..12]);
    let os = d
        .strato(&["image", "inspect", "-f", "{{.Os}}", "busybox"])
        .ok();
    assert_eq!(os.out(), "linux");
    d.strato(&["container", "inspect", "busybox"])
        .code_is(1)
        .stderr_mentions(&["No such container: busybox"]);
    // top and stats from the running container.
    let top = d.strato(&["top", "web"]).ok();
    assert!(
        top.stdout.contains("PID") && top.stdout.contains("sleep 300"),
        "{top}"
    );
    let stats = d.strato(&["stats", "--no-stream", "web"]).ok();
    assert!(
        stats.stdout.contains("MEM USAGE / LIMIT") && stats.stdout.contains("web"),
        "{stats}"
    );
    // -p publishes: the PORTS cell shows it and the host reaches it.
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    d.strato(&[
        "run", "-d", "--name", "nc", "-p", &publish, "busybox", "nc", "-ll", "-p", "8080", "-e",
        "echo", "hello",
    ])
    .ok();
    let ps = d
        .strato(&[
            "ps",
            "--filter",
            "name=nc",
            "--format",
            "{{.Names}} {{.Ports}}",
        ])
        .ok();
    assert_eq!(ps.out(), format!("nc 127.0.0.1:{port}->8080/tcp"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let got = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut buf = String::new();
            s.read_to_string(&mut buf)?;
            Ok(buf)
        });
        match got {
            Ok(text) if !text.is_empty() => break text,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("no answer on 127.0.0.1:{port}: {other:?}"),
        }
    };
    assert_eq!(reply, "hello\n");
    d.strato(&["rm", "-f", "nc"]).ok();
    // stop, then it shows as exited; rm removes it.
    d.strato(&["stop", "-t", "1", "web"]).ok();
    let st = d
        .strato(&["inspect", "-f", "{{.State.Status}}", "web"])
        .ok();
    assert_eq!(st.out(), "exited");
    let ps = d.strato(&["ps", "-a"]).ok();
    assert!(ps.stdout.contains("Exited ("), "{ps}");
    d.strato(&["wait", "web"]).ok();
    d.strato(&["rm", "web"]).ok();
    // Errors name the container and exit 1, like docker's.
    let out = d.strato(&["rm", "web"]).code_is(1);
    assert!(
        out.stderr
            .contains("Error response from daemon: No such container: web"),
        "{out}"
    );
    d.strato(&["logs", "nosuch"])
        .code_is(1)
        .stderr_mentions(&["nosuch"]);
    d.strato(&["inspect", "nosuch"])
        .code_is(1)
        .stderr_mentions(&["nosuch"]);
}

#[test]
fn images_save_load_networks_volumes_version_info() {
    let d = Daemon::start("client-objects");
    d.import_busybox();
    let v = d.strato(&["version"]).ok();
    assert!(
        v.stdout.contains("Server:") && v.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{v}"
    );
    let v = d.strato(&["version", "-f", "{{.Server.ApiVersion}}"]).ok();
    assert_eq!(v.out(), "1.44");
    let info = d.strato(&["info"]).ok();
    assert!(
        info.stdout.contains("Images: 1") && info.stdout.contains("Kernel Version:"),
        "{info}"
    );
    // images, tag, rmi.
    d.strato(&["tag", "busybox", "mybox:v1"]).ok();
    let images = d.strato(&["images"]).ok();
    let lines: Vec<&str> = images.stdout.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY") && lines[0].contains("IMAGE ID"),
        "{images}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("mybox") && l.contains("v1")),
        "{images}"
    );
    assert_eq!(d.strato(&["images", "-q"]).ok().out().lines().count(), 1);
    let out = d.strato(&["rmi", "mybox:v1"]).ok();
    assert_eq!(out.out(), "Untagged: mybox:v1");
    // save -o, rmi, load -i: the same image comes back.
    let before = d.strato(&["images", "-q", "--no-trunc"]).ok().out();
    let archive = d.dir.join("bb.tar");
    d.strato(&["save", "-o", archive.to_str().unwrap(), "busybox"])
        .ok();
    assert!(fs::metadata(&archive).unwrap().len() > 100_000);
    d.strato(&["rmi", "busybox"]).ok();
    assert_eq!(d.strato(&["images", "-q"]).ok().out(), "");
    let out = d.strato(&["load", "-i", archive.to_str().unwrap()]).ok();
    assert!(out.stdout.contains("Loaded image: busybox:latest"), "{out}");
    assert_eq!(d.strato(&["images", "-q", "--no-trunc"]).ok().out(), before);
    // save of an unknown image fails and leaves no file behind.
    let bad = d.dir.join("bad.tar");
    d.strato(&["save", "-o", bad.to_str().unwrap(), "nosuch"])
        .code_is(1)
        .stderr_mentions(&["nosuch"]);
    assert!(!bad.exists());
    assert!(fs::read_dir(&d.dir)
        .unwrap()
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().contains("strato-save")));
    // networks.
    let net_id = d.strato(&["network", "create", "appnet"]).ok().out();
    assert_eq!(net_id.len(), 64, "{net_id}");
    let ls = d.strato(&["network", "ls"]).ok();
    assert!(ls.stdout.starts_with("NETWORK ID"), "{ls}");
    assert!(
        ls.stdout
            .lines()
            .any(|l| l.contains("appnet") && l.contains("bridge")),
        "{ls}"
    );
    let insp = d.strato(&["network", "inspect", "appnet"]).ok().json();
    assert_eq!(insp[0]["Id"], net_id.as_str());
    let out = d
        .strato(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox",
            "sh",
            "-c",
            "ip -4 addr show eth0 | grep -c inet",
        ])
        .ok();
    assert_eq!(out.out(), "1");
    assert_eq!(d.strato(&["network", "rm", "appnet"]).ok().out(), "appnet");
    assert!(!d.strato(&["network", "ls"]).ok().stdout.contains("appnet"));
    // volumes: data outlives the container that wrote it.
    assert_eq!(d.strato(&["volume", "create", "data1"]).ok().out(), "data1");
    let ls = d.strato(&["volume", "ls"]).ok();
    assert!(
        ls.stdout.starts_with("DRIVER") && ls.stdout.contains("data1"),
        "{ls}"
    );
    d.strato(&[
        "run",
        "--rm",
        "-v",
        "data1:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ])
    .ok();
    let out = d
        .strato(&[
            "run",
            "--rm",
            "-v",
            "data1:/data:ro",
            "busybox",
            "cat",
            "/data/f",
        ])
        .ok();
    assert_eq!(out.out(), "kept");
    let v = d
        .strato(&["volume", "inspect", "-f", "{{.Driver}}", "data1"])
        .ok();
    assert_eq!(v.out(), "local");
    assert_eq!(d.strato(&["volume", "rm", "data1"]).ok().out(), "data1");
    d.strato(&["volume", "rm", "data1"])
        .code_is(1)
        .stderr_mentions(&["data1"]);
    // events: what happened above, replayed.
    let ev = d
        .strato(&[
            "events",
            "--since",
            "5m",
            "--until",
            "0s",
            "--filter",
            "type=volume",
        ])
        .ok();
    assert!(ev.stdout.contains("volume create data1"), "{ev}");
    assert!(ev.stdout.contains("volume destroy data1"), "{ev}");
}

#[test]
fn host_flag_and_strato_host_are_honoured() {
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_with("client-host", &["--host", &tcp, "--token", "t0ken"]);
    let dir = &d.dir;
    let host = d.host();
    // STRATO_HOST alone.
    let out = run_strato(
        dir,
        &["version", "-f", "{{.Server.Os}}"],
        None,
        &[("STRATO_HOST", &host)],
    )
    .ok();
    assert_eq!(out.out(), "linux");
    // -H alone.
    let out = run_strato(dir, &["-H", &host, "info", "-f", "{{.OSType}}"], None, &[]).ok();
    assert_eq!(out.out(), "linux");
    // -H wins over STRATO_HOST.
    let gone = format!("unix://{}/gone.sock", dir.display());
    run_strato(dir, &["-H", &host, "ps"], None, &[("STRATO_HOST", &gone)]).ok();
    // A socket with no daemon: exit 1, the address named.
    let out = run_strato(dir, &["ps"], None, &[("STRATO_HOST", &gone)]).code_is(1);
    assert!(out.stderr.contains(&gone), "{out}");
    // TCP with the bearer token, by flag or STRATO_TOKEN; without it, 401.
    let out = run_strato(
        dir,
        &[
            "-H",
            &tcp,
            "--token",
            "t0ken",
            "version",
            "-f",
            "{{.Server.Os}}",
        ],
        None,
        &[],
    )
    .ok();
    assert_eq!(out.out(), "linux");
    run_strato(
        dir,
        &["ps"],
        None,
        &[("STRATO_HOST", &tcp), ("STRATO_TOKEN", "t0ken")],
    )
    .ok();
    let out = run_strato(dir, &["-H", &tcp, "ps"], None, &[]).code_is(1);
    assert!(
        out.stderr.contains("Error response from daemon:") && out.stderr.contains("bearer token"),
        "{out}"
    );
    let out = run_strato(dir, &["-H", "tcp://nohost", "ps"], None, &[]).code_is(1);
    assert!(
        out.stderr.contains("invalid host \"tcp://nohost\""),
        "{out}"
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate it
/// signed, written as PEM files into `dir` (ca.pem, server-*.pem, cert.pem,
/// key.pem: the client's under docker's names).
fn write_test_pki(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let srv_key = KeyPair::generate().unwrap();
    let mut srv = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let srv = srv.signed_by(&srv_key, &ca, &ca_key).unwrap();
    let cli_key = KeyPair::generate().unwrap();
    let mut cli = CertificateParams::new(Vec::<String>::new()).unwrap();
    cli.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cli = cli.signed_by(&cli_key, &ca, &ca_key).unwrap();
    fs::create_dir_all(dir).unwrap();
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("server-cert.pem", srv.pem()),
        ("server-key.pem", srv_key.serialize_pem()),
        ("cert.pem", cli.pem()),
        ("key.pem", cli_key.serialize_pem()),
    ] {
        fs::write(dir.join(name), pem).unwrap();
    }
}

/// dockerd's `--tlsverify`: the stock docker CLI and strato's own client
/// reach a TCP listener only with a client certificate the CA signed.
#[test]
fn tcp_with_tlsverify_admits_only_signed_clients() {
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let ctx = Ctx::new("client-tls-pki");
    let pki = ctx.dir().join("pki");
    write_test_pki(&pki);
    let p = |n: &str| pki.join(n).display().to_string();
    // A tcp listener with neither a token nor --tlsverify is refused, and so
    // is --tlsverify without the server's certificate.
    let out = run_strato(
        ctx.dir(),
        &[
            "daemon",
            "--host",
            &tcp,
            "--tls",
            "--tlscert",
            &p("server-cert.pem"),
            "--tlskey",
            &p("server-key.pem"),
        ],
        None,
        &[],
    )
    .code_is(1);
    assert!(out.stderr.contains("--tlsverify --tlscacert"), "{out}");
    let out = run_strato(
        ctx.dir(),
        &[
            "daemon",
            "--host",
            &tcp,
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
        ],
        None,
        &[],
    )
    .code_is(1);
    assert!(out.stderr.contains("--tlscert"), "{out}");

    let d = Daemon::start_with(
        "client-tls",
        &[
            "--host",
            &tcp,
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "--tlscert",
            &p("server-cert.pem"),
            "--tlskey",
            &p("server-key.pem"),
        ],
    );
    let docker = |args: &[&str]| {
        let mut c = Command::new("docker");
        c.args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env("DOCKER_CONFIG", d.dir.join("docker-config"));
        run_bounded(c, &d.dir, "docker", args, None, CMD_TIMEOUT, String::new)
    };
    let out = docker(&[
        "-H",
        &tcp,
        "--tlsverify",
        "--tlscacert",
        &p("ca.pem"),
        "--tlscert",
        &p("cert.pem"),
        "--tlskey",
        &p("key.pem"),
        "version",
        "-f",
        "{{.Server.Os}}",
    ])
    .ok();
    assert_eq!(out.out(), "linux");
    // Plain HTTP to the TLS port: no answer the CLI accepts.
    docker(&["-H", &tcp, "version", "-f", "{{.Server.Os}}"]).code_is(1);

    // strato's own client: the certificates from STRATO_CERT_PATH.
    let env = [
        ("STRATO_TLS_VERIFY", "1"),
        ("STRATO_CERT_PATH", pki.to_str().unwrap()),
    ];
    let out = run_strato(
        &d.dir,
        &["-H", &tcp, "info", "-f", "{{.OSType}}"],
        None,
        &env,
    )
    .ok();
    assert_eq!(out.out(), "linux");
    // Without a client certificate the handshake is refused.
    let only_ca = d.dir.join("only-ca");
    fs::create_dir_all(&only_ca).unwrap();
    fs::copy(pki.join("ca.pem"), only_ca.join("ca.pem")).unwrap();
    let env = [
        ("STRATO_TLS_VERIFY", "1"),
        ("STRATO_CERT_PATH", only_ca.to_str().unwrap()),
    ];
    let out = run_strato(&d.dir, &["-H", &tcp, "ps"], None, &env).code_is(1);
    assert!(
        out.stderr.contains("TLS") || out.stderr.contains("talking to the daemon"),
        "{out}"
    );
    // A CA that did not sign the server: the client refuses the daemon.
    let other = d.dir.join("other-pki");
    write_test_pki(&other);
    let out = run_strato(
        &d.dir,
        &[
            "-H",
            &tcp,
            "--tlsverify",
            "--tlscacert",
            other.join("ca.pem").to_str().unwrap(),
            "--tlscert",
            &p("cert.pem"),
            "--tlskey",
            &p("key.pem"),
            "ps",
        ],
        None,
        &[],
    )
    .code_is(1);
    assert!(out.stderr.contains("TLS"), "{out}");
}

/// `cp` both ways, through a real API server (over the fake backend, which
/// keeps what is put and answers it back).
#[test]
fn cp_to_and_from_a_container() {
    let ctx = Ctx::new("client-cp");
    let dir = ctx.dir().to_path_buf();
    let sock = dir.join("fake.sock");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = strato_api::testing::FakeBackend::new();
    let listener = {
        let _g = rt.enter();
        strato_api::bind_unix(&sock).unwrap()
    };
    let backend: std::sync::Arc<dyn strato_api::Backend> = std::sync::Arc::new(fake.clone());
    rt.spawn(async move {
        let _ = strato_api::serve_unix_listener(listener, backend).await;
    });
    let host = format!("unix://{}", sock.display());
    let st = |args: &[&str]| {
        let mut full = vec!["-H", host.as_str()];
        full.extend_from_slice(args);
        run_strato(&dir, &full, None, &[])
    };
    st(&["create", "--name", "box", "busybox", "sleep", "10"]).ok();
    let src = dir.join("hello.txt");
    fs::write(&src, "hello from the host\n").unwrap();
    st(&["cp", src.to_str().unwrap(), "box:/tmp"]).ok();
    assert!(fake.called("container_archive_put"), "{:?}", fake.calls());
    // The fake answers the tar it was given; unpacked into an existing directory.
    let out_dir = dir.join("out");
    fs::create_dir(&out_dir).unwrap();
    st(&["cp", "box:/tmp", out_dir.to_str().unwrap()]).ok();
    assert_eq!(
        fs::read_to_string(out_dir.join("hello.txt")).unwrap(),
        "hello from the host\n"
    );
    // Errors name the path; unknown containers are the daemon's 404.
    st(&["cp", "box:/nope", out_dir.to_str().unwrap()])
        .code_is(1)
        .stderr_mentions(&["/nope"]);
    st(&["cp", dir.join("missing").to_str().unwrap(), "box:/tmp"])
        .code_is(1)
        .stderr_mentions(&["missing"]);
    st(&["cp", "a", "b"])
        .code_is(1)
        .stderr_mentions(&["container"]);
}

/// `run -it` and `exec -it` on a real terminal: util-linux `script` gives
/// strato a pseudo-terminal as stdin and stdout, so the raw-mode relay,
/// the exit code and the window size all go through a TTY as for a user.
#[test]
fn interactive_tty_run_and_exec() {
    let d = Daemon::start("client-tty");
    d.import_busybox();
    let strato = env!("CARGO_BIN_EXE_strato");
    let host = d.host();
    // Keystrokes reach the container's shell; what it computes comes back;
    // its exit code is ours.
    let cmd = format!("{strato} -H {host} run -it --rm busybox sh");
    let out = run_script(&d.dir, &cmd, b"echo typed$((6*7))\nexit 7\n");
    assert_eq!(out.code(), Some(7), "{out}");
    assert!(out.stdout.contains("typed42"), "{out}");
    // ctrl-p ctrl-q detaches: strato ends with 0, the container goes on.
    // The keys are typed once the shell answered, as a user would: typed
    // earlier, the terminal (not yet raw) would take ctrl-q as flow control.
    let cmd = format!("{strato} -H {host} run -it --name keep busybox sh");
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run script (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    stdin.write_all(b"echo before$((1+1))\n").unwrap();
    let deadline = Instant::now() + CMD_TIMEOUT;
    while !text().contains("before2") {
        assert!(
            Instant::now() < deadline,
            "no answer from the shell: {}",
            text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stdin.write_all(b"\x10\x11").unwrap();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strato did not detach on ctrl-p ctrl-q: {}", text());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    drop(stdin);
    let _ = reader.join();
    assert_eq!(status.code(), Some(0), "{}", text());
    assert!(text().contains("read escape sequence"), "{}", text());
    let st = d
        .strato(&["inspect", "-f", "{{.State.Running}}", "keep"])
        .ok();
    assert_eq!(st.out(), "true");
    d.strato(&["rm", "-f", "keep"]).ok();
    // exec -it: the terminal's size is the process's from the start.
    d.strato(&["run", "-d", "--name", "box", "busybox", "sleep", "300"])
        .ok();
    let cmd = format!("stty rows 33 cols 111; {strato} -H {host} exec -it box stty size");
    let out = run_script(&d.dir, &cmd, b"");
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(out.out(), "33 111");
}

/// Runs `cmd` under `script` (a pseudo-terminal), feeding it `input`.
fn run_script(dir: &Path, cmd: &str, input: &[u8]) -> Out {
    let args = ["-qec", cmd, "/dev/null"];
    let mut full = Vec::new();
    full.extend_from_slice(&args);
    let (o, e) = (dir.join("script.out"), dir.join("script.err"));
    // script's stdin stays open until it ends: at end of file, script types
    // a character into the terminal (a NUL once raw mode is on), which the
    // container's TTY would echo.
    let mut child = Command::new("script")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(File::create(&o).unwrap())
        .stderr(File::create(&e).unwrap())
        .spawn()
        .expect("run script (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    let deadline = Instant::now() + CMD_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("script -c {cmd:?} did not finish within {CMD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    drop(stdin);
    Out {
        args: full.iter().map(|s| s.to_string()).collect(),
        status,
        stdout: fs::read_to_string(&o).unwrap_or_default(),
        stderr: fs::read_to_string(&e).unwrap_or_default(),
    }
}

#[test]
fn build_with_args_target_quiet_and_a_failing_step() {
    let d = Daemon::start("client-build");
    d.import_busybox();
    let ctx = d.dir.join("ctx");
    fs::create_dir_all(ctx.join("docker")).unwrap();
    fs::write(
        ctx.join("docker/app.Dockerfile"),
        "FROM busybox AS base\n\
         ARG GREETING\n\
         RUN echo \"$GREETING\" > /greeting\n\
         FROM base AS final\n\
         COPY data.txt /\n\
         CMD [\"cat\", \"/greeting\", \"/data.txt\"]\n",
    )
    .unwrap();
    fs::write(ctx.join("data.txt"), "data\n").unwrap();
    // Left out by the client: a socket, which a tar cannot hold (sending
    // it would fail the build).
    fs::create_dir_all(ctx.join("secret")).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(ctx.join("secret/sock")).unwrap();
    fs::write(ctx.join(".dockerignore"), "secret\n").unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN false\n").unwrap();
    let c = ctx.to_str().unwrap();
    let file = ctx.join("docker/app.Dockerfile");
    let f = file.to_str().unwrap();
    let out = d
        .strato(&[
            "build",
            "-t",
            "app:1",
            "-f",
            f,
            "--build-arg",
            "GREETING=hi",
            c,
        ])
        .ok();
    assert!(
        out.stdout.contains("Step 1/6 : FROM busybox AS base"),
        "{out}"
    );
    assert!(out.stdout.contains("Successfully tagged app:1"), "{out}");
    let run = d.strato(&["run", "--rm", "app:1"]).ok();
    assert_eq!(run.stdout, "hi\ndata\n");
    // -q prints the ID alone; --target stops at the first stage.
    let q = d
        .strato(&[
            "build",
            "-q",
            "--target",
            "base",
            "-f",
            f,
            "--build-arg",
            "GREETING=yo",
            c,
        ])
        .ok();
    let id = q.stdout.trim();
    assert!(id.starts_with("sha256:") && !id.contains('\n'), "{q}");
    let run = d.strato(&["run", "--rm", id, "cat", "/greeting"]).ok();
    assert_eq!(run.stdout, "yo\n");
    // A failing step: the daemon's message, exit status 1, no image.
    let bad = d.strato(&["build", "-t", "bad:1", c]).failed();
    assert!(
        bad.stderr
            .contains("The command '/bin/sh -c false' returned a non-zero code: 1"),
        "{bad}"
    );
    d.strato(&["image", "inspect", "bad:1"]).failed();
    let outside = d.dir.join("outside.Dockerfile");
    fs::write(&outside, "FROM busybox\n").unwrap();
    let o = d
        .strato(&["build", "-f", outside.to_str().unwrap(), c])
        .failed();
    assert!(o.stderr.contains("must be inside the build context"), "{o}");
    // Intermediate images are listed with -a only.
    let all = d.strato(&["images", "-aq"]).ok().stdout.lines().count();
    let top = d.strato(&["images", "-q"]).ok().stdout.lines().count();
    assert!(all > top, "images -a: {all}, images: {top}");
    // Removing a build's image removes its untagged parents too.
    let rmi = d.strato(&["rmi", "app:1"]).ok();
    assert!(rmi.stdout.matches("Deleted:").count() > 1, "{rmi}");
    let left = d.strato(&["images", "-aq"]).ok().stdout.lines().count();
    assert!(left < all, "images -a before: {all}, after: {left}");
}
