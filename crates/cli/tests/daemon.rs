//! End-to-end tests of `strato daemon` driven by the stock docker CLI
//! (`docker -H unix://…`): each test starts its own daemon with a private
//! data root, exec root, address pool, bridge and nftables table, loads a
//! busybox image made from scripts/mkrootfs.sh's rootfs, and removes
//! everything (containers, daemon, supervisor, bridge, table, mounts) when
//! it ends, failed or not. They need root and the docker CLI
//! (/usr/local/bin/docker, or `DOCKER` to name another); they are never
//! skipped.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn docker_bin() -> String {
    std::env::var("DOCKER").unwrap_or_else(|_| "/usr/local/bin/docker".into())
}

/// A daemon of one test.
struct Daemon {
    child: Option<Child>,
    pool: String,
    sock: PathBuf,
    exec_root: PathBuf,
    dir: PathBuf,
    bridge: String,
    table: String,
    /// More `strato daemon` flags.
    extra: Vec<String>,
    _ctx: Ctx,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        Daemon::start_with(name, &[])
    }

    fn start_with(name: &str, extra: &[&str]) -> Daemon {
        let ctx = Ctx::new(name);
        let dir = ctx.dir().to_path_buf();
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        // 198.19/16: the upper half of the benchmark range, apart from the
        // engine tests' 198.18/16.
        let n = (std::process::id() * 4 + seq) % 240 + 10;
        let bridge = format!("std{}x{seq}", std::process::id() % 100_000);
        let table = format!("strato_d{}x{seq}", std::process::id());
        let sock = dir.join("d.sock");
        let exec_root = dir.join("exec");
        let pool = format!("198.19.{n}.0/24");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = spawn_daemon(&dir, &sock, &exec_root, &pool, &bridge, &table, &extra);
        let d = Daemon {
            child: Some(child),
            pool,
            sock,
            exec_root,
            dir,
            bridge,
            table,
            extra,
            _ctx: ctx,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.sock.exists() && self.docker(&["version"]).success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not answer within 20 s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the daemon with SIGKILL and starts a new one on the same roots.
    fn kill9_and_restart(&mut self) {
        self.kill9_and_restart_after(Duration::ZERO);
    }

    /// Kills the daemon, lets it stay away for `away`, starts it again.
    fn kill9_and_restart_after(&mut self, away: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(away);
        self.child = Some(spawn_daemon(
            &self.dir,
            &self.sock,
            &self.exec_root,
            &self.pool,
            &self.bridge,
            &self.table,
            &self.extra,
        ));
        self.wait_ready();
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(docker_bin());
        c.arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.join("docker-config"));
        c
    }

    /// Runs a docker command (at most [`CMD_TIMEOUT`]), feeding it `input`.
    fn docker_in(&self, args: &[&str], input: Option<&[u8]>) -> Out {
        run_bounded(
            self.cmd(args),
            &self.dir,
            "docker",
            args,
            input,
            CMD_TIMEOUT,
            || format!("; daemon log:\n{}", self.log()),
        )
    }

    fn docker(&self, args: &[&str]) -> Out {
        self.docker_in(args, None)
    }

    /// busybox:latest: the rootfs imported, saved as a docker-save archive,
    /// removed, and loaded back with `docker load -i`.
    fn load_busybox(&self) {
        let tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs_cache())
            .args(["-cf", "-", "."])
            .output()
            .expect("tar the rootfs");
        assert!(tar.status.success());
        let out = self
            .docker_in(&["import", "-", "busybox:latest"], Some(&tar.stdout))
            .ok();
        assert!(out.stdout.starts_with("sha256:"), "{out}");
        let archive = self.dir.join("busybox.tar");
        self.docker(&["save", "-o", archive.to_str().unwrap(), "busybox"])
            .ok();
        self.docker(&["rmi", "busybox"]).ok();
        let out = self.docker(&["load", "-i", archive.to_str().unwrap()]).ok();
        assert!(out.stdout.contains("Loaded image: busybox:latest"), "{out}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Containers first, through the daemon.
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

fn spawn_daemon(
    dir: &Path,
    sock: &Path,
    exec_root: &Path,
    pool: &str,
    bridge: &str,
    table: &str,
    extra: &[String],
) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .expect("daemon log");
    Command::new(env!("CARGO_BIN_EXE_strato"))
        .arg("daemon")
        .arg("--host")
        .arg(format!("unix://{}", sock.display()))
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(exec_root)
        .args(["--bridge-pool", pool])
        .args(["--subnet-prefix", "26"])
        .args(["--bridge-name", bridge])
        .args(["--nft-table", table])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start strato daemon")
}

#[test]
fn version_info_load_and_images() {
    let d = Daemon::start("daemon-info");
    let v = d
        .docker(&["version", "--format", "{{.Server.Version}} {{.Server.Os}}"])
        .ok();
    assert_eq!(
        v.stdout.trim(),
        format!("{} linux", env!("CARGO_PKG_VERSION"))
    );
    let info = d.docker(&["info"]).ok();
    for want in [
        "Storage Driver: overlayfs",
        "Containers: 0",
        "Docker Root Dir:",
        "Kernel Version:",
        "Cgroup Version:",
    ] {
        assert!(info.stdout.contains(want), "{want} missing: {info}");
    }
    d.load_busybox();
    let images = d
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok();
    assert_eq!(images.stdout.trim(), "busybox:latest");
    let inspect = d
        .docker(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}} {{len .RootFS.Layers}}",
            "busybox",
        ])
        .ok();
    assert_eq!(inspect.stdout.trim(), "linux 1");
    // Pulling from a registry that is not there: a clear error naming it.
    let out = d.docker(&["pull", "localhost:1/alpine"]).failed();
    assert!(
        out.stderr.contains("cannot reach registry localhost:1"),
        "{out}"
    );
}

#[test]
fn run_rm_exit_codes_and_stdin() {
    let d = Daemon::start("daemon-run");
    d.load_busybox();
    let out = d.docker(&["run", "--rm", "busybox", "echo", "hi"]).ok();
    assert_eq!(out.stdout, "hi\n");
    d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 3"])
        .code_is(3);
    let out = d
        .docker_in(&["run", "-i", "--rm", "busybox", "cat"], Some(b"hi\n"))
        .ok();
    assert_eq!(out.stdout, "hi\n");
    // Output on both streams, all of it before `docker run` returns.
    let out = d
        .docker(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "seq 1 500; echo oops >&2",
        ])
        .ok();
    assert_eq!(out.stdout.lines().count(), 500, "{out}");
    assert_eq!(out.stderr.trim(), "oops");
    // A command that is not in the image: 127 at once (not a hung CLI),
    // and the --rm container is gone too.
    let out = d
        .docker(&["run", "--rm", "busybox", "no-such-command"])
        .code_is(127);
    assert!(out.stderr.contains("no-such-command"), "{out}");
    let left = d.docker(&["ps", "-aq"]).ok();
    assert_eq!(left.stdout.trim(), "", "--rm containers are gone");
    // Without --rm it stays, and waiting for it answers.
    d.docker(&["run", "--name", "nocmd", "busybox", "no-such-command"])
        .code_is(127);
    d.docker(&["rm", "nocmd"]).ok();
}

/// `--add-host`, `--dns*`, `--device`, `--privileged` and `--init` as
/// dockerd gives them, with bad values refused before anything is created.
#[test]
fn run_hosts_dns_devices_privileged_and_init() {
    let d = Daemon::start("daemon-hostcfg");
    d.load_busybox();
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--add-host",
            "db:10.1.2.3",
            "--add-host",
            "gw:host-gateway",
            "--dns",
            "9.9.9.9",
            "--dns-search",
            "example.com",
            "--dns-option",
            "ndots:2",
            "busybox",
            "sh",
            "-c",
            "cat /etc/hosts /etc/resolv.conf; ip route",
        ])
        .ok();
    assert!(out.stdout.contains("10.1.2.3\tdb\n"), "{out}");
    let gw = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("default via "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no default route: {out}"));
    assert!(out.stdout.contains(&format!("{gw}\tgw\n")), "{out}");
    assert!(
        out.stdout
            .contains("search example.com\nnameserver 9.9.9.9\noptions ndots:2\n"),
        "{out}"
    );
    // A host device under another name, usable there; a missing one refused.
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--device",
            "/dev/null:/dev/mynull:rw",
            "busybox",
            "sh",
            "-c",
            "stat -c '%t:%T' /dev/mynull && echo x > /dev/mynull && echo ok",
        ])
        .ok();
    assert_eq!(out.stdout, "1:3\nok\n", "{out}");
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--device",
            "/dev/strato-no-such",
            "busybox",
            "true",
        ])
        .code_is(125);
    assert!(out.stderr.contains("/dev/strato-no-such"), "{out}");
    // Options with nothing behind them here are refused, not ignored.
    let out = d
        .docker(&["run", "--rm", "--storage-opt", "size=1G", "busybox", "true"])
        .code_is(125);
    assert!(out.stderr.contains("--storage-opt"), "{out}");
    let out = d
        .docker(&["run", "--rm", "--gpus", "all", "busybox", "true"])
        .code_is(125);
    assert!(out.stderr.contains("--gpus"), "{out}");
    // --privileged: every capability the daemon holds (no more: capset
    // would refuse it), and the devices cgroup open.
    let own = fs::read_to_string("/proc/self/status").unwrap();
    let bnd = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_string();
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--privileged",
            "busybox",
            "grep",
            "CapEff",
            "/proc/self/status",
        ])
        .ok();
    assert_eq!(out.stdout.trim(), format!("CapEff:\t{bnd}"), "{out}");
    // ... and the host's device nodes, with their numbers, which others lack.
    let script = "stat -c '%F %t:%T' /dev/kmsg /dev/net/tun";
    let out = d
        .docker(&["run", "--rm", "--privileged", "busybox", "sh", "-c", script])
        .ok();
    assert_eq!(
        out.stdout, "character special file 1:b\ncharacter special file a:c8\n",
        "{out}"
    );
    d.docker(&["run", "--rm", "busybox", "sh", "-c", script])
        .code_is(1);
    // --init: the host's init is process 1 and runs the command as its
    // child, whose exit code is the container's; the command is still the
    // container's Path and Args.
    let out = d
        .docker(&[
            "run",
            "--init",
            "--name",
            "withinit",
            "busybox",
            "sh",
            "-c",
            "cat /proc/1/comm; cat /proc/$$/stat | cut -d' ' -f4; exit 3",
        ])
        .code_is(3);
    assert_eq!(out.stdout, "docker-init\n1\n", "{out}");
    let out = d
        .docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.Init}} {{.Path}} {{index .Args 0}}",
            "withinit",
        ])
        .ok();
    assert_eq!(out.stdout.trim(), "true sh -c", "{out}");
    d.docker(&["rm", "withinit"]).ok();
    assert_eq!(d.docker(&["ps", "-aq"]).ok().stdout.trim(), "");
}

/// A block device of the host: its /dev path and `MAJOR:MINOR`.
fn a_block_device() -> (String, String) {
    let mut names: Vec<_> = fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .find_map(|n| {
            let numbers = fs::read_to_string(format!("/sys/block/{n}/dev")).ok()?;
            let dev = format!("/dev/{n}");
            Path::new(&dev)
                .exists()
                .then(|| (dev, numbers.trim().to_string()))
        })
        .expect("the host has a block device under /sys/block with a /dev node")
}

/// Block I/O throttles, swappiness and the OOM killer reach the
/// container's cgroup; a weight the host cannot apply is dropped with
/// dockerd's warning; bad values are refused before anything is made.
#[test]
fn block_io_swappiness_and_oom_killer_limits() {
    let d = Daemon::start("daemon-blkio");
    d.load_busybox();
    let (dev, numbers) = a_block_device();
    let read = format!("{dev}:1mb");
    let iops = format!("{dev}:50");
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--device-read-bps",
            &read,
            "--device-write-iops",
            &iops,
            "--memory-swappiness",
            "10",
            "--oom-kill-disable",
            "-m",
            "64m",
            "busybox",
            "sh",
            "-c",
            "cd /sys/fs/cgroup; cat blkio/blkio.throttle.read_bps_device \
             blkio/blkio.throttle.write_iops_device memory/memory.swappiness; \
             grep oom_kill_disable memory/memory.oom_control",
        ])
        .ok();
    assert_eq!(
        out.stdout,
        format!("{numbers} 1048576\n{numbers} 50\n10\noom_kill_disable 1\n"),
        "{out}"
    );
    // A weight: applied where the host's blkio has a weight file (CFQ or
    // BFQ), else dropped with a warning.
    let out = d
        .docker(&[
            "run", "--rm", "--blkio-weight", "300", "busybox", "sh", "-c",
            "cat /sys/fs/cgroup/blkio/blkio.weight /sys/fs/cgroup/blkio/blkio.bfq.weight 2>/dev/null; true",
        ])
        .ok();
    let discarded = out.stderr.contains("Weight discarded");
    if discarded {
        assert_eq!(out.stdout, "", "{out}");
    } else {
        assert!(out.stdout.contains("300"), "{out}");
    }
    // ... and `docker update --blkio-weight` of a running container.
    d.docker(&["run", "-d", "--name", "bw", "busybox", "sleep", "100"])
        .ok();
    if discarded {
        let out = d
            .docker(&["update", "--blkio-weight", "400", "bw"])
            .failed();
        assert!(out.stderr.contains("blkio"), "{out}");
    } else {
        d.docker(&["update", "--blkio-weight", "400", "bw"]).ok();
        let out = d
            .docker(&[
                "exec", "bw", "sh", "-c",
                "cat /sys/fs/cgroup/blkio/blkio.weight /sys/fs/cgroup/blkio/blkio.bfq.weight 2>/dev/null; true",
            ])
            .ok();
        assert!(out.stdout.contains("400"), "{out}");
    }
    d.docker(&["rm", "-f", "bw"]).ok();
    for (args, words) in [
        (
            vec!["--device-read-bps", "/dev/null:1mb"],
            vec!["/dev/null", "block device"],
        ),
        (vec!["--memory-swappiness", "101"], vec!["101"]),
        (vec!["--blkio-weight", "5"], vec!["10 to 1000"]),
    ] {
        let mut all = vec!["run", "--rm"];
        all.extend(args);
        all.extend(["busybox", "true"]);
        let out = d.docker(&all).code_is(125);
        for w in words {
            assert!(out.stderr.contains(w), "{out}");
        }
    }
    // --cgroup-parent: the container's cgroup goes there, with its limits
    // and statistics, and nothing else is made there (no spare cgroups).
    let parent = format!("strato-test-parent-{}", std::process::id());
    let arg = format!("/{parent}");
    let id = d
        .docker(&[
            "run",
            "-d",
            "--cgroup-parent",
            &arg,
            "-m",
            "32m",
            "busybox",
            "sleep",
            "100",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let memory = Path::new("/sys/fs/cgroup/memory").join(&parent);
    let limit = fs::read_to_string(memory.join(&id).join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), "33554432");
    let out = d
        .docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &id])
        .ok();
    assert!(out.stdout.contains("/ 32MiB"), "{out}");
    d.docker(&["rm", "-f", &id]).ok();
    let mut left: Vec<String> = Vec::new();
    eventually("the container's cgroup is gone", || {
        left = fs::read_dir(&memory)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.is_empty()
    });
    for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = fs::remove_dir(h.path().join(&parent));
    }
    d.docker(&["run", "--rm", "--cgroup-parent", "/../x", "busybox", "true"])
        .code_is(125);
}

/// `docker export`: the root filesystem (image and container layer), not
/// volumes or /proc, of a running and of a stopped container.
#[test]
fn export_writes_the_root_filesystem_only() {
    let d = Daemon::start("daemon-export");
    d.load_busybox();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "ex1",
        "-v",
        "/data",
        "busybox",
        "sh",
        "-c",
        "echo hi > /new; echo v > /data/vol; sleep 100",
    ])
    .ok();
    let list = |name: &str| {
        let tar = d.dir.join(format!("{name}.tar"));
        d.docker(&["export", name, "-o", tar.to_str().unwrap()])
            .ok();
        let out = Command::new("tar").arg("tf").arg(&tar).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let mut names = String::new();
    eventually("the container wrote /new", || {
        names = list("ex1");
        names.lines().any(|l| l == "new")
    });
    assert!(names.lines().any(|l| l == "bin/busybox"), "{names}");
    assert!(
        !names.contains("data/vol"),
        "volume content exported: {names}"
    );
    assert!(!names.contains("proc/self"), "/proc exported: {names}");
    d.docker(&["rm", "-f", "ex1"]).ok();
    d.docker(&[
        "run",
        "--name",
        "ex2",
        "busybox",
        "sh",
        "-c",
        "echo x > /stopped",
    ])
    .ok();
    let names = list("ex2");
    assert!(names.lines().any(|l| l == "stopped"), "{names}");
    d.docker(&["rm", "ex2"]).ok();
}

/// What a server on host port `port` of 127.0.0.1 sends before it closes
/// the connection, once it answers (within 10 s).
fn answer_on(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut buf = String::new();
            s.read_to_string(&mut buf)?;
            Ok(buf)
        });
        match got {
            Ok(text) if !text.is_empty() => return text,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("no answer on 127.0.0.1:{port}: {other:?}"),
        }
    }
}

/// `--volumes-from` (binds and volumes, with their mode or another), `-P`
/// (every exposed port, the image's too, on a free host port), and the
/// filters of `docker ps` and `docker images` on them.
#[test]
fn volumes_from_publish_all_ports_and_their_filters() {
    let d = Daemon::start("daemon-from");
    d.load_busybox();
    let host = d.dir.join("shared");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("h"), "from-host\n").unwrap();
    let bind = format!("{}:/host:ro", host.display());
    d.docker(&[
        "run",
        "--name",
        "src",
        "-v",
        "/data",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo v > /data/f",
    ])
    .ok();
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            "busybox",
            "sh",
            "-c",
            "cat /data/f /host/h; echo w > /data/g && echo wrote",
        ])
        .ok();
    assert_eq!(out.stdout, "v\nfrom-host\nwrote\n", "{out}");
    // :ro makes the volume read-only here; a mount of the new container's
    // own at the same place wins.
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--volumes-from",
            "src:ro",
            "--tmpfs",
            "/host",
            "busybox",
            "sh",
            "-c",
            "ls /host | wc -l; echo x > /data/h || echo read-only",
        ])
        .ok();
    assert_eq!(out.stdout.lines().next(), Some("0"), "{out}");
    assert!(out.stdout.ends_with("read-only\n"), "{out}");
    let out = d
        .docker(&["run", "--rm", "--volumes-from", "nosuch", "busybox", "true"])
        .code_is(125);
    assert!(out.stderr.contains("nosuch"), "{out}");
    d.docker(&["rm", "src"]).ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "pa",
        "-P",
        "--expose",
        "8080",
        "--expose",
        "9000-9001/udp",
        "busybox",
        "nc",
        "-ll",
        "-p",
        "8080",
        "-e",
        "echo",
        "hello",
    ])
    .ok();
    let out = d.docker(&["port", "pa"]).ok();
    let ports: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(ports.len(), 3, "{out}");
    for (p, want) in ports.iter().zip(["8080/tcp", "9000/udp", "9001/udp"]) {
        assert!(p.starts_with(&format!("{want} -> 0.0.0.0:")), "{out}");
    }
    let port: u16 = ports[0].rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(answer_on(port), "hello\n");
    // `docker ps` filters on volumes, ports and creation order.
    d.docker(&[
        "run", "-d", "--name", "vo", "-v", "named:/n", "busybox", "sleep", "100",
    ])
    .ok();
    let ps = |filter: &str| {
        let out = d
            .docker(&["ps", "--filter", filter, "--format", "{{.Names}}"])
            .ok();
        out.stdout
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(ps("volume=named"), "vo");
    assert_eq!(ps("volume=/n"), "vo");
    assert_eq!(ps("expose=8080"), "pa");
    assert_eq!(ps("expose=9000-9001/udp"), "pa");
    assert_eq!(ps("expose=9000/tcp"), "");
    assert_eq!(ps(&format!("publish={port}")), "pa");
    assert_eq!(ps("before=vo"), "pa");
    assert_eq!(ps("since=pa"), "vo");
    // `docker images --filter reference=` takes globs.
    let out = d
        .docker(&[
            "images",
            "--filter",
            "reference=busy*",
            "--format",
            "{{.Repository}}",
        ])
        .ok();
    assert_eq!(out.stdout, "busybox\n", "{out}");
    d.docker(&["rm", "-f", "pa", "vo"]).ok();
}

#[test]
fn detached_container_ps_exec_logs_port_stop_rm() {
    let d = Daemon::start("daemon-web");
    d.load_busybox();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        "echo started; exec nc -ll -p 8080 -e echo hello",
    ])
    .ok();
    let ps = d
        .docker(&["ps", "--format", "{{.Names}} {{.Status}} {{.Ports}}"])
        .ok();
    assert!(ps.stdout.starts_with("web Up "), "{ps}");
    assert!(
        ps.stdout.contains(&format!("127.0.0.1:{port}->8080/tcp")),
        "{ps}"
    );
    let out = d.docker(&["exec", "web", "echo", "from-exec"]).ok();
    assert_eq!(out.stdout, "from-exec\n");
    d.docker(&["exec", "web", "sh", "-c", "exit 5"]).code_is(5);
    // Sizes: the writable layer (what exec wrote), and with the image's.
    d.docker(&["exec", "web", "sh", "-c", "head -c 50000 /dev/zero > /blob"])
        .ok();
    let out = d
        .docker(&[
            "inspect",
            "--size",
            "-f",
            "{{.SizeRw}} {{.SizeRootFs}}",
            "web",
        ])
        .ok();
    let sizes: Vec<u64> = out
        .stdout
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(sizes[0] >= 50_000 && sizes[1] > sizes[0] + 500_000, "{out}");
    let out = d.docker(&["ps", "-s", "--format", "{{.Size}}"]).ok();
    assert!(out.stdout.contains("(virtual "), "{out}");
    // exec --privileged: every capability the daemon holds.
    let own = fs::read_to_string("/proc/self/status").unwrap();
    let bnd = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    let out = d
        .docker(&[
            "exec",
            "--privileged",
            "web",
            "grep",
            "CapEff",
            "/proc/self/status",
        ])
        .ok();
    assert_eq!(out.stdout.trim(), format!("CapEff:\t{bnd}"), "{out}");
    // The published port, from the host.
    assert_eq!(answer_on(port), "hello\n");
    let logs = d.docker(&["logs", "web"]).ok();
    assert_eq!(logs.stdout, "started\n");
    let state = d
        .docker(&["inspect", "-f", "{{.State.Status}} {{.Name}}", "web"])
        .ok();
    assert_eq!(state.stdout.trim(), "running /web");
    d.docker(&["stop", "-t", "1", "web"]).ok();
    let ps = d
        .docker(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .ok();
    assert!(ps.stdout.starts_with("web Exited (137)"), "{ps}");
    let running = d.docker(&["rm", "web"]).ok();
    assert_eq!(running.stdout.trim(), "web");
    assert_eq!(d.docker(&["ps", "-aq"]).ok().stdout.trim(), "");
}

#[test]
fn lifecycle_wait_events_volumes_networks() {
    let d = Daemon::start("daemon-life");
    d.load_busybox();
    // create, then start attached: all output, the exit code.
    d.docker(&[
        "create",
        "--name",
        "job",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 4",
    ])
    .ok();
    let ps = d
        .docker(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .ok();
    assert_eq!(ps.stdout.trim(), "job Created");
    let out = d.docker(&["start", "-a", "job"]).code_is(4);
    assert_eq!(out.stdout, "run\n");
    let out = d.docker(&["wait", "job"]).ok();
    assert_eq!(out.stdout.trim(), "4");
    d.docker(&["rename", "job", "job2"]).ok();
    d.docker(&["rm", "job2"]).ok();
    // pause, unpause, kill with a signal, restart.
    d.docker(&["run", "-d", "--name", "sl", "busybox", "sleep", "60"])
        .ok();
    d.docker(&["pause", "sl"]).ok();
    let st = d.docker(&["inspect", "-f", "{{.State.Status}}", "sl"]).ok();
    assert_eq!(st.stdout.trim(), "paused");
    d.docker(&["unpause", "sl"]).ok();
    d.docker(&["restart", "-t", "1", "sl"]).ok();
    let st = d.docker(&["inspect", "-f", "{{.State.Status}}", "sl"]).ok();
    assert_eq!(st.stdout.trim(), "running");
    d.docker(&["kill", "-s", "KILL", "sl"]).ok();
    let out = d.docker(&["wait", "sl"]).ok();
    assert_eq!(out.stdout.trim(), "137");
    let out = d.docker(&["rm", "sl"]).ok();
    assert_eq!(out.stdout.trim(), "sl");
    // Events of what happened, replayed with --since and ended by --until.
    // The CLI sends a duration as whole seconds: end a second from now.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let until = until.to_string();
    let ev = d
        .docker(&[
            "events",
            "--since",
            "5m",
            "--until",
            &until,
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .ok();
    for want in [
        "create job",
        "start job",
        "die job",
        "pause sl",
        "kill sl",
        "stop sl",
        "restart sl",
        "destroy sl",
    ] {
        assert!(ev.stdout.contains(want), "{want} missing:\n{ev}");
    }
    // Volumes: a named volume keeps data between containers.
    d.docker(&["volume", "create", "v1"]).ok();
    d.docker(&[
        "run",
        "--rm",
        "-v",
        "v1:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ])
    .ok();
    let out = d
        .docker(&[
            "run",
            "--rm",
            "-v",
            "v1:/data:ro",
            "busybox",
            "cat",
            "/data/f",
        ])
        .ok();
    assert_eq!(out.stdout, "kept\n");
    let ls = d.docker(&["volume", "ls", "-q"]).ok();
    assert_eq!(ls.stdout.trim(), "v1");
    d.docker(&["volume", "rm", "v1"]).ok();
    // Networks: a user-defined bridge, used and removed.
    let net = format!("n{}", std::process::id() % 100_000);
    d.docker(&["network", "create", &net]).ok();
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            &net,
            "busybox",
            "sh",
            "-c",
            "ip -4 addr show eth0 | grep -c inet",
        ])
        .ok();
    assert_eq!(out.stdout.trim(), "1");
    let ls = d.docker(&["network", "ls", "--format", "{{.Name}}"]).ok();
    for want in ["bridge", "host", "none", net.as_str()] {
        assert!(ls.stdout.lines().any(|l| l == want), "{want}: {ls}");
    }
    d.docker(&["network", "rm", &net]).ok();
    d.docker(&["network", "rm", "bridge"]).failed();
}

#[test]
fn containers_outlive_a_killed_daemon_and_are_found_again() {
    let mut d = Daemon::start("daemon-kill9");
    d.load_busybox();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        "echo ok > /i; exec httpd -f -p 8080 -h /",
    ])
    .ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2; exit 1",
    ])
    .ok();
    let get = || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(3)))?;
                s.write_all(b"GET /i HTTP/1.0\r\n\r\n")?;
                let mut buf = String::new();
                s.read_to_string(&mut buf)?;
                Ok(buf)
            });
            match got {
                Ok(text) if text.ends_with("ok\n") => return text,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                other => panic!("no answer on 127.0.0.1:{port}: {other:?}"),
            }
        }
    };
    get();
    // An AutoRemove container that ends while the daemon is away goes when
    // it is back, as with dockerd.
    d.docker(&[
        "run", "-d", "--rm", "--name", "brief", "busybox", "sleep", "0.3",
    ])
    .ok();
    d.kill9_and_restart_after(Duration::from_millis(1500));
    let all = d.docker(&["ps", "-a", "--format", "{{.Names}}"]).ok();
    assert!(!all.stdout.contains("brief"), "{all}");
    // The container kept running and serving; the new daemon knows it.
    get();
    let ps = d.docker(&["ps", "--format", "{{.Names}} {{.Status}}"]).ok();
    assert!(ps.stdout.contains("web Up "), "{ps}");
    // The restart policy went on while the daemon was gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = d
            .docker(&["inspect", "-f", "{{.RestartCount}}", "flaky"])
            .ok()
            .stdout
            .trim()
            .parse::<u32>()
            .unwrap_or(0);
        if n >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "flaky was not restarted: {n}");
        std::thread::sleep(Duration::from_millis(100));
    }
    d.docker(&["stop", "web"]).ok();
    d.docker(&["rm", "-f", "web", "flaky"]).ok();
    let all = d.docker(&["ps", "-aq"]).ok();
    assert!(all.stdout.trim().is_empty(), "{all}");
}

#[test]
fn running_containers_hold_no_mounts_on_the_host() {
    let d = Daemon::start("daemon-nomounts");
    d.load_busybox();
    // Mounts on the host naming this daemon's directories (root overlays,
    // pinned network namespaces). Other tests' mounts are elsewhere.
    let ours = || {
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(d.dir.to_str().unwrap()))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let before = ours();
    let run = |args: &[&str]| d.docker(args).ok().stdout.trim().to_string();
    let a = run(&["run", "-d", "busybox", "sleep", "300"]);
    let none = run(&["run", "-d", "--network", "none", "busybox", "sleep", "300"]);
    let joiner = run(&[
        "run",
        "-d",
        "--network",
        &format!("container:{a}"),
        "busybox",
        "sleep",
        "300",
    ]);
    let flaky = run(&[
        "run",
        "-d",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0 | grep -c inet; exit 1",
    ]);
    assert_eq!(ours(), before, "running containers left mounts on the host");
    let pid = |id: &str| run(&["inspect", "-f", "{{.State.Pid}}", id]);
    let netns = |id: &str| fs::read_link(format!("/proc/{}/ns/net", pid(id))).unwrap();
    // The joiner is in its target's namespace, the others each in their own.
    assert_eq!(netns(&a), netns(&joiner));
    assert_ne!(netns(&a), netns(&none));
    // Its namespace of its own has its loopback up, as with Docker.
    assert_eq!(
        run(&[
            "exec",
            &none,
            "sh",
            "-c",
            "ping -c1 -W2 127.0.0.1 >/dev/null && echo up",
        ]),
        "up"
    );
    assert_ne!(netns(&a), fs::read_link("/proc/self/ns/net").unwrap());
    assert_eq!(
        run(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", &a]),
        format!("/proc/{}/ns/net", pid(&a))
    );
    // The image's users, and the container's own (its /etc/passwd changed).
    assert_eq!(run(&["exec", "-u", "app", &a, "id", "-u"]), "1000");
    d.docker(&[
        "exec",
        &a,
        "sh",
        "-c",
        "echo extra:x:4242:4242::/:/bin/sh >> /etc/passwd",
    ])
    .ok();
    assert_eq!(run(&["exec", "-u", "extra", &a, "id", "-u"]), "4242");
    d.docker(&["stop", "-t", "0", &joiner]).ok();
    d.docker(&["stop", "-t", "0", &a]).ok();
    d.docker(&["start", &a]).ok();
    let b = run(&["run", "-d", "--user", "app", "busybox", "sleep", "300"]);
    assert_eq!(run(&["exec", &b, "id", "-u"]), "1000");
    // `a` restarted with its writable layer: the user it added resolves.
    d.docker(&["exec", "-u", "extra", &a, "true"]).ok();
    // Every run of the restarted container had its network (the namespace
    // held for its restarts).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = run(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.RestartCount}}",
            &flaky,
        ]);
        if st == "exited 2" {
            break;
        }
        assert!(Instant::now() < deadline, "flaky: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = d.docker(&["logs", &flaky]).ok().stdout;
    assert_eq!(logs, "1\n1\n1\n", "{logs}");
    assert_eq!(ours(), before, "restarts left mounts on the host");
    // Nothing is left once they are gone.
    d.docker(&["rm", "-f", &a, &none, &joiner, &flaky, &b]).ok();
    assert_eq!(ours(), before);
}

/// A tar with one hostile entry: a symlink `evil` to `target` followed by a
/// file written through it, or (with `target` `None`) a `../` name. The
/// tar crate refuses to write `..` itself, so that name goes in raw.
fn hostile_tar(target: Option<&Path>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut file = tar::Header::new_gnu();
    file.set_entry_type(tar::EntryType::Regular);
    file.set_mode(0o644);
    file.set_size(6);
    match target {
        Some(t) => {
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_mode(0o777);
            link.set_size(0);
            b.append_link(&mut link, "evil", t).unwrap();
            b.append_data(&mut file, "evil/pwned", &b"pwned\n"[..])
                .unwrap();
        }
        None => {
            let name = b"../../../../../../tmp/pwned-by-strato-test";
            file.as_old_mut().name[..name.len()].copy_from_slice(name);
            file.set_cksum();
            b.append(&file, &b"pwned\n"[..]).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// Polls `f` until it holds (at most 20 s); no timing is asserted.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "{what} did not happen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Between two runs of a container (its restart back-off, or just after it
/// exited) its root is still mounted without a process: a copy still sees
/// its volumes, which lived in its own mount namespace (docker-py's
/// ArchiveTest reads a volume right after `wait`).
#[test]
fn cp_sees_the_volumes_of_a_container_between_runs() {
    let d = Daemon::start("daemon-cp-between");
    d.load_busybox();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "flap",
        "--restart",
        "always",
        "-v",
        "/vol1",
        "busybox",
        "sh",
        "-c",
        "echo kept > /vol1/data.txt; exit 3",
    ])
    .ok();
    // From the fourth restart on the back-off is 1.6 s or more: a copy
    // made while it shows Restarting meets the root without a process.
    eventually("flap waits to restart a fourth time", || {
        let s = d
            .docker(&[
                "inspect",
                "-f",
                "{{.State.Restarting}} {{.RestartCount}}",
                "flap",
            ])
            .stdout;
        let mut w = s.split_whitespace();
        w.next() == Some("true") && w.next().and_then(|n| n.parse::<u32>().ok()) >= Some(4)
    });
    let out = d.docker(&["cp", "flap:/vol1/data.txt", "-"]).ok();
    assert!(out.stdout.contains("kept\n"), "{out}");
    d.docker(&["rm", "-f", "flap"]).ok();
}

#[test]
fn cp_in_and_out_of_running_and_stopped_containers_without_escapes() {
    let d = Daemon::start("daemon-cp");
    d.load_busybox();
    let host = d.dir.join("host");
    fs::create_dir_all(host.join("tree/sub")).unwrap();
    fs::write(host.join("f.txt"), "file\n").unwrap();
    fs::write(host.join("tree/sub/g"), "deep\n").unwrap();
    std::os::unix::fs::symlink("sub/g", host.join("tree/link")).unwrap();
    let h = |p: &str| host.join(p).display().to_string();
    d.docker(&["run", "-d", "--name", "cc", "busybox", "sleep", "600"])
        .ok();
    // host -> container: a file, a directory (under a new name).
    d.docker(&["cp", &h("f.txt"), "cc:/tmp/"]).ok();
    d.docker(&["cp", &h("tree"), "cc:/tmp/tree2"]).ok();
    let out = d
        .docker(&[
            "exec",
            "cc",
            "sh",
            "-c",
            "cat /tmp/f.txt /tmp/tree2/sub/g; readlink /tmp/tree2/link",
        ])
        .ok();
    assert_eq!(out.stdout, "file\ndeep\nsub/g\n");
    // container -> host: a file and a directory.
    d.docker(&["exec", "cc", "sh", "-c", "echo made-inside > /made"])
        .ok();
    d.docker(&["cp", "cc:/made", &h("made")]).ok();
    assert_eq!(
        fs::read_to_string(host.join("made")).unwrap(),
        "made-inside\n"
    );
    d.docker(&["cp", "cc:/tmp/tree2", &h("back")]).ok();
    assert_eq!(
        fs::read_to_string(host.join("back/sub/g")).unwrap(),
        "deep\n"
    );
    assert_eq!(
        fs::read_link(host.join("back/link")).unwrap(),
        Path::new("sub/g")
    );
    d.docker(&["cp", "cc:/nope", &h("x")]).failed();

    // Symlinks inside the container resolve inside it, never on the host.
    let secret = d.dir.join("host-secret");
    fs::write(&secret, "host\n").unwrap();
    d.docker(&[
        "exec",
        "cc",
        "sh",
        "-c",
        "ln -s / /tmp/root; ln -s ../../../../../../../ /tmp/up; echo inside > /tmp/mine",
    ])
    .ok();
    let via = format!("cc:/tmp/up{}", secret.display());
    d.docker(&["cp", &via, &h("leak")]).failed();
    assert!(!host.join("leak").exists());
    d.docker(&["cp", "cc:/tmp/up/tmp/mine", &h("mine")]).ok();
    assert_eq!(fs::read_to_string(host.join("mine")).unwrap(), "inside\n");
    let into = format!("cc:/tmp/root{}/", d.dir.display());
    // The destination directory does not exist in the container: refused,
    // and nothing lands in the host's directory of the same path.
    d.docker(&["cp", &h("f.txt"), &into]).failed();
    assert!(!d.dir.join("f.txt").exists());
    // Hostile archives: through a planted symlink, and `../` names.
    for tar in [hostile_tar(Some(&d.dir)), hostile_tar(None)] {
        let out = d.docker_in(&["cp", "-", "cc:/tmp"], Some(&tar)).failed();
        assert!(out.stderr.contains("refusing tar entry"), "{out}");
    }
    assert!(!d.dir.join("pwned").exists());
    assert!(!Path::new("/tmp/pwned-by-strato-test").exists());

    // Stopped: both ways, and the files are there when it runs again.
    d.docker(&["stop", "-t", "0", "cc"]).ok();
    d.docker(&["cp", &h("f.txt"), "cc:/stopped.txt"]).ok();
    d.docker(&["cp", "cc:/made", &h("made2")]).ok();
    assert_eq!(
        fs::read_to_string(host.join("made2")).unwrap(),
        "made-inside\n"
    );
    d.docker(&["start", "cc"]).ok();
    let out = d.docker(&["exec", "cc", "cat", "/stopped.txt"]).ok();
    assert_eq!(out.stdout, "file\n");
    // A never-started container: into its volume, seen by another one.
    d.docker(&["volume", "create", "cpv"]).ok();
    d.docker(&[
        "create",
        "--name",
        "fresh",
        "-v",
        "cpv:/data",
        "busybox",
        "true",
    ])
    .ok();
    d.docker(&["cp", &h("f.txt"), "fresh:/data/"]).ok();
    let out = d
        .docker(&[
            "run",
            "--rm",
            "-v",
            "cpv:/data",
            "busybox",
            "cat",
            "/data/f.txt",
        ])
        .ok();
    assert_eq!(out.stdout, "file\n");
    // Nothing stays mounted for the copies of stopped containers.
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&format!("{}/cp/", d.exec_root.display())));
}

#[test]
fn user_network_names_connect_disconnect_and_daemon_restart() {
    let mut d = Daemon::start("daemon-dns");
    d.load_busybox();
    let net = format!("dn{}", std::process::id() % 100_000);
    d.docker(&["network", "create", &net]).ok();
    let run = |name: &str, extra: &[&str]| {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sleep", "600"]);
        d.docker(&args).ok();
    };
    run("web", &["--network", &net, "--network-alias", "www"]);
    run("cli", &["--network", &net]);
    let ip_of = |c: &str, n: &str| {
        let f = format!("{{{{(index .NetworkSettings.Networks \"{n}\").IPAddress}}}}");
        d.docker(&["inspect", "-f", &f, c])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let web_ip = ip_of("web", &net);
    let out = d.docker(&["exec", "cli", "nslookup", "web"]).ok();
    assert!(out.stdout.contains(&web_ip), "{out}");
    d.docker(&["exec", "cli", "ping", "-c1", "-W3", "www"]).ok();
    // A container started later is found, and finds the others.
    run("late", &["--network", &net]);
    d.docker(&["exec", "web", "ping", "-c1", "-W3", "late"])
        .ok();
    d.docker(&["exec", "late", "ping", "-c1", "-W3", "cli"])
        .ok();
    // An internal network: peers by name, but no route out of it; its MTU.
    let inner = format!("{net}i");
    d.docker(&[
        "network",
        "create",
        "--internal",
        "-o",
        "com.docker.network.driver.mtu=1400",
        &inner,
    ])
    .ok();
    run("in1", &["--network", &inner]);
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            &inner,
            "busybox",
            "sh",
            "-c",
            "ping -c1 -W3 in1 >/dev/null && echo peer; cat /sys/class/net/eth0/mtu; ip route",
        ])
        .ok();
    assert!(out.stdout.starts_with("peer\n1400\n"), "{out}");
    assert!(!out.stdout.contains("default"), "{out}");
    d.docker(&["rm", "-f", "in1"]).ok();
    d.docker(&["network", "rm", &inner]).ok();
    // A renamed container answers to its new name.
    d.docker(&["rename", "late", "later"]).ok();
    d.docker(&["exec", "web", "ping", "-c1", "-W3", "later"])
        .ok();
    // The default bridge does not resolve names, as in Docker.
    run("b1", &[]);
    run("b2", &[]);
    let out = d
        .docker(&["exec", "b1", "ping", "-c1", "-W1", "b2"])
        .failed();
    assert!(out.stderr.contains("bad address"), "{out}");
    // connect: a second interface, both networks in inspect, names both ways.
    d.docker(&["network", "connect", "--alias", "bee", &net, "b1"])
        .ok();
    let nets = d
        .docker(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            "b1",
        ])
        .ok();
    assert_eq!(nets.stdout.trim(), format!("bridge {net}"));
    let b1_ip = ip_of("b1", &net);
    let out = d
        .docker(&["exec", "b1", "ip", "-4", "addr", "show", "eth1"])
        .ok();
    assert!(out.stdout.contains(&b1_ip), "{out}");
    d.docker(&["exec", "b1", "ping", "-c1", "-W3", "web"]).ok();
    let out = d.docker(&["exec", "cli", "nslookup", "bee"]).ok();
    assert!(out.stdout.contains(&b1_ip), "{out}");
    let members = d
        .docker(&["network", "inspect", "-f", "{{len .Containers}}", &net])
        .ok();
    assert_eq!(members.stdout.trim(), "4");
    d.docker(&["network", "connect", &net, "b1"]).failed();
    // disconnect: gone from the container, inspect and the names.
    d.docker(&["network", "disconnect", &net, "b1"]).ok();
    d.docker(&["exec", "b1", "ip", "link", "show", "eth1"])
        .failed();
    let nets = d
        .docker(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            "b1",
        ])
        .ok();
    assert_eq!(nets.stdout.trim(), "bridge");
    d.docker(&["exec", "cli", "nslookup", "bee"]).failed();
    // A restarted daemon answers for the containers it re-adopts.
    d.kill9_and_restart();
    let out = d.docker(&["exec", "cli", "nslookup", "web"]);
    assert!(out.stdout.contains(&web_ip), "{out}\n{}", d.log());
    d.docker(&["rm", "-f", "web", "cli", "later", "b1", "b2"])
        .ok();
    d.docker(&["network", "rm", &net]).ok();
}

/// A dual-stack network (`--ipv6`): containers get IPv6 addresses (one
/// fixed with `--ip6`), reach each other over IPv6 by address and by name,
/// inspect shows both families; bad IPv6 input is refused with nothing
/// made, and the ip6 table goes with the network.
#[test]
fn dual_stack_network_containers_reach_each_other_over_ipv6() {
    let d = Daemon::start("daemon-ipv6");
    d.load_busybox();
    let n = std::process::id() % 60_000 + 1;
    let (net, sub6) = (format!("six{n}"), format!("fd53:{n:x}:6"));
    let bridge = format!("st6b{}", n % 100_000);
    let _guard = LinkGuard(bridge.clone());
    d.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &format!("{sub6}::/64"),
        "-o",
        &format!("com.docker.network.bridge.name={bridge}"),
        &net,
    ])
    .ok();
    let f = |fmt: &str, obj: &str| {
        d.docker(&["inspect", "-f", fmt, obj])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(f("{{.EnableIPv6}}", &net), "true");
    let pools = f(
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}};{{end}}",
        &net,
    );
    assert!(
        pools.starts_with("198.19.") && pools.ends_with(&format!(";{sub6}::/64 {sub6}::1;")),
        "{pools}"
    );
    let run = |name: &str, extra: &[&str]| {
        let mut args = vec!["run", "-d", "--name", name, "--network", &net];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sleep", "600"]);
        d.docker(&args).ok();
    };
    let fixed = format!("{sub6}::f00d");
    run("a6", &["--ip6", &fixed]);
    run("b6", &[]);
    let ep = |what: &str, c: &str| {
        f(
            &format!("{{{{with index .NetworkSettings.Networks \"{net}\"}}}}{what}{{{{end}}}}"),
            c,
        )
    };
    assert_eq!(
        ep(
            "{{.IPAMConfig.IPv6Address}} {{.GlobalIPv6Address}}/{{.GlobalIPv6PrefixLen}} {{.IPv6Gateway}}",
            "a6"
        ),
        format!("{fixed} {fixed}/64 {sub6}::1")
    );
    let b6 = ep("{{.GlobalIPv6Address}}", "b6");
    assert!(b6.starts_with(&format!("{sub6}::")) && b6 != fixed, "{b6}");
    let members = f("{{range .Containers}}{{.IPv6Address}} {{end}}", &net);
    assert!(members.contains(&format!("{fixed}/64")), "{members}");
    // Inside: the address (not tentative), the default IPv6 route, hosts lines.
    let addr = d
        .docker(&["exec", "a6", "ip", "-6", "addr", "show", "eth0"])
        .ok();
    assert!(addr.stdout.contains(&format!("{fixed}/64")), "{addr}");
    assert!(!addr.stdout.contains("tentative"), "{addr}");
    let route = d.docker(&["exec", "a6", "ip", "-6", "route"]).ok();
    assert!(
        route
            .stdout
            .contains(&format!("default via {sub6}::1 dev eth0")),
        "{route}"
    );
    let hosts = d.docker(&["exec", "a6", "cat", "/etc/hosts"]).ok();
    assert!(
        hosts
            .stdout
            .lines()
            .any(|l| l.starts_with(&format!("{fixed}\t")) && l.ends_with(" a6")),
        "{hosts}"
    );
    // Over IPv6: ping, then a TCP exchange with nc.
    d.docker(&["exec", "b6", "ping", "-6", "-c", "1", "-W", "5", &fixed])
        .ok();
    d.docker(&["exec", "a6", "ping", "-6", "-c", "1", "-W", "5", &b6])
        .ok();
    // By name: the network's name server answers AAAA too.
    let ns = d
        .docker(&["exec", "b6", "nslookup", "-type=aaaa", "a6"])
        .ok();
    assert!(ns.stdout.contains(&fixed), "{ns}");
    // The listener's stdin stays open (busybox nc ends a connection at the
    // end of its stdin, and `exec -d` gives it an empty one).
    d.docker(&[
        "exec",
        "-d",
        "a6",
        "sh",
        "-c",
        "sleep 60 | nc -l -p 7777 > /tmp/got",
    ])
    .ok();
    eventually("a6 listens on 7777", || {
        d.docker(&["exec", "a6", "netstat", "-ltn"])
            .stdout
            .contains(":7777")
    });
    d.docker(&[
        "exec",
        "b6",
        "sh",
        "-c",
        &format!("echo over-ipv6 | nc -w 5 {fixed} 7777"),
    ])
    .ok();
    eventually("a6 received the line", || {
        d.docker(&["exec", "a6", "cat", "/tmp/got"])
            .stdout
            .contains("over-ipv6")
    });
    // A port published on an IPv6 host address (the gateway on the
    // bridge) reaches the container's IPv6 address from the host.
    let gw6: std::net::Ipv6Addr = format!("{sub6}::1").parse().unwrap();
    let port = std::net::TcpListener::bind((gw6, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web6",
        "--network",
        &net,
        "-p",
        &format!("[{gw6}]:{port}:80"),
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ])
    .ok();
    let listed = d.docker(&["port", "web6"]).ok();
    assert!(
        listed.stdout.contains(&format!("[{gw6}]:{port}"))
            || listed.stdout.contains(&format!("{gw6}:{port}")),
        "{listed}"
    );
    eventually("httpd answers over the IPv6 host address", || {
        let Ok(mut c) = TcpStream::connect((gw6, port)) else {
            return false;
        };
        let _ = c.write_all(b"GET /hostname HTTP/1.0\r\n\r\n");
        let mut got = String::new();
        let _ = c.read_to_string(&mut got);
        got.starts_with("HTTP/1.") && got.contains(" 200 ")
    });
    d.docker(&["rm", "-f", "web6"]).ok();
    // What NAT cannot forward: from the IPv6 loopback, or to a container
    // without an IPv6 address.
    d.docker(&[
        "run",
        "--rm",
        "--network",
        &net,
        "-p",
        "[::1]:18080:80",
        "busybox",
        "true",
    ])
    .failed()
    .stderr_mentions(&["::1", "loopback"]);
    d.docker(&[
        "run",
        "--rm",
        "-p",
        &format!("[{gw6}]:18080:80"),
        "busybox",
        "true",
    ])
    .failed()
    .stderr_mentions(&["--ipv6"]);
    // --ipv6 without a subnet: a /64 of the host's unique local /48.
    let auto = format!("auto{n}");
    let auto_bridge = format!("st6a{}", n % 100_000);
    let _auto_guard = LinkGuard(auto_bridge.clone());
    d.docker(&[
        "network",
        "create",
        "--ipv6",
        "-o",
        &format!("com.docker.network.bridge.name={auto_bridge}"),
        &auto,
    ])
    .ok();
    let pools = f("{{range .IPAM.Config}}{{.Subnet}};{{end}}", &auto);
    let v6 = pools.split(';').nth(1).unwrap_or_default();
    assert!(v6.starts_with("fd") && v6.ends_with("::/64"), "{pools}");
    d.docker(&["network", "rm", &auto]).ok();
    // Bad input: nothing is made.
    let bad_bridge = format!("st6x{}", n % 100_000);
    d.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00::/129",
        "-o",
        &format!("com.docker.network.bridge.name={bad_bridge}"),
        "bad6",
    ])
    .failed()
    .stderr_mentions(&["fd00::/129", "prefix length"]);
    d.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &format!("{sub6}::/48"),
        "-o",
        &format!("com.docker.network.bridge.name={bad_bridge}"),
        "bad6",
    ])
    .failed()
    .stderr_mentions(&["overlaps", &net]);
    assert!(!Path::new("/sys/class/net").join(&bad_bridge).exists());
    d.docker(&["network", "inspect", "bad6"]).failed();
    // --ip6 on an IPv4-only network: refused, naming the fix.
    d.docker(&["run", "--rm", "--ip6", "fd00::5", "busybox", "true"])
        .failed()
        .stderr_mentions(&["IPv6", "--ipv6"]);
    d.docker(&["rm", "-f", "a6", "b6"]).ok();
    d.docker(&["network", "rm", &net]).ok();
    assert!(!Path::new("/sys/class/net").join(&bridge).exists());
    let ip6 = Command::new("nft")
        .args(["list", "table", "ip6", &d.table])
        .output()
        .unwrap();
    assert!(!ip6.status.success(), "the ip6 table outlived the network");
}

/// `strato daemon --ipv6 --fixed-cidr-v6`: the default network is
/// dual-stack, and inspect shows the IPv6 address at the top level too.
#[test]
fn daemon_ipv6_makes_the_default_bridge_dual_stack() {
    let sub6 = format!("fd53:{:x}:d", std::process::id() % 60_000 + 1);
    let cidr = format!("{sub6}::/64");
    let d = Daemon::start_with("daemon-ipv6-default", &["--ipv6", "--fixed-cidr-v6", &cidr]);
    d.load_busybox();
    let f = |fmt: &str, obj: &str| {
        d.docker(&["inspect", "-f", fmt, obj])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(f("{{.EnableIPv6}}", "bridge"), "true");
    d.docker(&["run", "-d", "--name", "d6", "busybox", "sleep", "600"])
        .ok();
    assert_eq!(
        f(
            "{{.NetworkSettings.GlobalIPv6Address}}/{{.NetworkSettings.GlobalIPv6PrefixLen}} {{.NetworkSettings.IPv6Gateway}}",
            "d6"
        ),
        format!("{sub6}::2/64 {sub6}::1")
    );
    // The host reaches the container over IPv6 through the bridge.
    let ping = Command::new("ping")
        .args(["-6", "-c", "1", "-W", "5", &format!("{sub6}::2")])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    d.docker(&["rm", "-f", "d6"]).ok();
}

#[test]
fn network_endpoint_settings_links_labels_and_first_network_disconnect() {
    let d = Daemon::start("daemon-endpoints");
    d.load_busybox();
    // A subnet of our own (outside every test pool), with a dynamic range
    // and a reserved address.
    let n = std::process::id() % 250 + 1;
    let (net, sub) = (format!("ep{n}"), format!("172.30.{n}"));
    d.docker(&[
        "network",
        "create",
        "--label",
        "tier=back",
        "--subnet",
        &format!("{sub}.0/24"),
        "--ip-range",
        &format!("{sub}.128/25"),
        "--aux-address",
        &format!("router={sub}.128"),
        &net,
    ])
    .ok();
    let f = |fmt: &str, obj: &str| {
        d.docker(&["inspect", "-f", fmt, obj])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(f("{{json .Labels}}", &net), r#"{"tier":"back"}"#);
    assert_eq!(
        f(
            "{{range .IPAM.Config}}{{.IPRange}} {{.AuxiliaryAddresses.router}}{{end}}",
            &net
        ),
        format!("{sub}.128/25 {sub}.128")
    );
    // A dynamic address comes from the range, past the reserved one.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "up",
        "--network",
        &net,
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let up_ip = f(
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        "up",
    );
    assert_eq!(up_ip, format!("{sub}.129"));
    // A fixed address, a fixed MAC and a link alias on the first network.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "cc",
        "--network",
        &net,
        "--ip",
        &format!("{sub}.7"),
        "--mac-address",
        "02:42:ac:1e:00:07",
        "--link",
        "up:bar",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let ep = |what: &str| {
        f(
            &format!("{{{{with index .NetworkSettings.Networks \"{net}\"}}}}{what}{{{{end}}}}"),
            "cc",
        )
    };
    assert_eq!(
        ep("{{.IPAMConfig.IPv4Address}} {{.IPAddress}}"),
        format!("{sub}.7 {sub}.7")
    );
    assert_eq!(
        ep("{{.MacAddress}} {{json .Links}}"),
        r#"02:42:ac:1e:00:07 ["up:bar"]"#
    );
    let link = d.docker(&["exec", "cc", "ip", "link", "show", "eth0"]).ok();
    assert!(link.stdout.contains("02:42:ac:1e:00:07"), "{link}");
    // The link alias resolves for c only.
    let out = d.docker(&["exec", "cc", "nslookup", "bar"]).ok();
    assert!(out.stdout.contains(&up_ip), "{out}");
    d.docker(&["exec", "up", "nslookup", "bar"]).failed();
    // Disconnected from its first (only) network: loopback only, no entry.
    d.docker(&["network", "disconnect", &net, "cc"]).ok();
    assert_eq!(f("{{len .NetworkSettings.Networks}}", "cc"), "0");
    d.docker(&["exec", "cc", "ip", "link", "show", "eth0"])
        .failed();
    assert_eq!(f("{{len .Containers}}", &net), "1");
    // Connected again: the network is its first once more (eth0, route).
    d.docker(&[
        "network",
        "connect",
        "--ip",
        &format!("{sub}.8"),
        &net,
        "cc",
    ])
    .ok();
    let addr = d
        .docker(&["exec", "cc", "ip", "-4", "addr", "show", "eth0"])
        .ok();
    assert!(addr.stdout.contains(&format!("{sub}.8/24")), "{addr}");
    let route = d.docker(&["exec", "cc", "ip", "route"]).ok();
    assert!(
        route.stdout.contains(&format!("default via {sub}.1")),
        "{route}"
    );
    d.docker(&["exec", "cc", "nslookup", "up"]).ok();
    // It survives a restart of the container in that state.
    d.docker(&["restart", "-t", "1", "cc"]).ok();
    let addr = d
        .docker(&["exec", "cc", "ip", "-4", "addr", "show", "eth0"])
        .ok();
    assert!(addr.stdout.contains(&format!("{sub}.8/24")), "{addr}");
    // A network whose name has a space, as dockerd allows.
    d.docker(&["network", "create", "sp ace"]).ok();
    d.docker(&["network", "rm", "sp ace"]).ok();
    d.docker(&["rm", "-f", "cc", "up"]).ok();
    d.docker(&["network", "rm", &net]).ok();
}

#[test]
fn commit_and_import_with_changes() {
    let d = Daemon::start("daemon-commit");
    d.load_busybox();
    let f = |fmt: &str, obj: &str| {
        d.docker(&["inspect", "-f", fmt, obj])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    // A file added, one deleted, a directory replaced: all in the new layer.
    d.docker(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo hello > /test && rm /bin/ls && mkdir -p /srv/d && echo x > /srv/d/f",
    ])
    .ok();
    d.docker(&[
        "commit",
        "-c",
        r#"CMD ["cat", "/test"]"#,
        "-c",
        "EXPOSE 8000",
        "-c",
        "ENV GREETING=hi",
        "-m",
        "a message",
        "src",
        "committed:1",
    ])
    .ok();
    let out = d.docker(&["run", "--rm", "committed:1"]).ok();
    assert_eq!(out.stdout, "hello\n");
    d.docker(&["run", "--rm", "committed:1", "cat", "/srv/d/f"])
        .ok();
    d.docker(&["run", "--rm", "committed:1", "ls", "/"])
        .failed();
    let env = d
        .docker(&["run", "--rm", "committed:1", "sh", "-c", "echo $GREETING"])
        .ok();
    assert_eq!(env.stdout, "hi\n");
    assert_eq!(
        f("{{json .Config.ExposedPorts}} {{.Comment}}", "committed:1"),
        r#"{"8000/tcp":{}} a message"#
    );
    let parent = f("{{.Parent}}", "committed:1");
    assert_eq!(parent, f("{{.Id}}", "busybox"));
    let layers = f("{{len .RootFS.Layers}}", "committed:1");
    assert_eq!(layers, "2");
    // An unknown instruction is refused and makes no image.
    let bad = d
        .docker(&["commit", "-c", "RUN true", "src", "bad:1"])
        .failed();
    assert!(bad.stderr.contains("not a valid change command"), "{bad}");
    d.docker(&["image", "inspect", "bad:1"]).failed();
    // import --change
    let tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs_cache())
        .args(["-cf", "-", "."])
        .output()
        .expect("tar the rootfs");
    d.docker_in(
        &[
            "import",
            "-c",
            "USER nobody",
            "-c",
            r#"CMD ["id", "-un"]"#,
            "-",
            "imp:1",
        ],
        Some(&tar.stdout),
    )
    .ok();
    assert_eq!(
        f("{{.Config.User}} {{json .Config.Cmd}}", "imp:1"),
        r#"nobody ["id","-un"]"#
    );
    let who = d.docker(&["run", "--rm", "imp:1"]).ok();
    assert_eq!(who.stdout, "nobody\n");
    // import from a URL: downloaded by the daemon; a 404 makes no image.
    let web_root = d.dir.join("web");
    fs::create_dir_all(&web_root).unwrap();
    fs::write(web_root.join("rootfs.tar"), &tar.stdout).unwrap();
    let web = http_file_server(web_root);
    d.docker(&["import", &format!("{web}/rootfs.tar"), "imp:url"])
        .ok();
    let echo = d
        .docker(&["run", "--rm", "imp:url", "echo", "from-url"])
        .ok();
    assert_eq!(echo.stdout, "from-url\n");
    let e = d
        .docker(&["import", &format!("{web}/missing.tar"), "imp:none"])
        .failed();
    assert!(e.stderr.contains("404"), "{e}");
    d.docker(&["image", "inspect", "imp:none"]).failed();
    d.docker(&["rm", "src"]).ok();
    d.docker(&["rmi", "committed:1", "imp:1", "imp:url"]).ok();
}

#[test]
fn health_checks_from_run_flags_and_image_config() {
    let d = Daemon::start("daemon-health");
    d.load_busybox();
    let status = |c: &str| {
        d.docker(&["inspect", "-f", "{{.State.Health.Status}}", c])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    d.docker(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -f /ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    assert_eq!(status("hc"), "starting");
    eventually("hc unhealthy", || status("hc") == "unhealthy");
    let streak = d
        .docker(&["inspect", "-f", "{{.State.Health.FailingStreak}}", "hc"])
        .ok();
    assert!(
        streak.stdout.trim().parse::<u32>().unwrap() >= 2,
        "{streak}"
    );
    let ps = d
        .docker(&[
            "ps",
            "--filter",
            "health=unhealthy",
            "--format",
            "{{.Names}} {{.Status}}",
        ])
        .ok();
    assert!(
        ps.stdout.starts_with("hc Up") && ps.stdout.contains("(unhealthy)"),
        "{ps}"
    );
    d.docker(&["exec", "hc", "touch", "/ok"]).ok();
    eventually("hc healthy", || status("hc") == "healthy");
    let log = d
        .docker(&[
            "inspect",
            "-f",
            "{{(index .State.Health.Log 0).ExitCode}}",
            "hc",
        ])
        .ok();
    assert_eq!(log.stdout.trim(), "1");
    let events = || {
        d.docker(&[
            "events",
            "--since",
            "0",
            "--until",
            "0s",
            "--filter",
            "container=hc",
            "--format",
            "{{.Action}}",
        ])
        .ok()
        .stdout
    };
    // The event follows the status change.
    eventually("the healthy event", || {
        events().contains("health_status: healthy")
    });
    assert!(events().contains("health_status: unhealthy"));
    // A HEALTHCHECK of the image (here from commit --change) applies; a
    // timed-out probe counts as a failure.
    d.docker(&["create", "--name", "base", "busybox", "true"])
        .ok();
    d.docker(&["start", "-a", "base"]).ok();
    d.docker(&[
        "commit",
        "-c",
        "HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD sleep 5",
        "base",
        "slowhealth:1",
    ])
    .ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "slow",
        "slowhealth:1",
        "sleep",
        "600",
    ])
    .ok();
    eventually("slow unhealthy", || status("slow") == "unhealthy");
    let out = d
        .docker(&[
            "inspect",
            "-f",
            "{{(index .State.Health.Log 0).Output}}",
            "slow",
        ])
        .ok();
    assert!(out.stdout.contains("exceeded timeout"), "{out}");
    // --no-healthcheck turns the image's off.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "off",
        "--no-healthcheck",
        "slowhealth:1",
        "sleep",
        "600",
    ])
    .ok();
    let none = d
        .docker(&["ps", "--filter", "health=none", "--format", "{{.Names}}"])
        .ok();
    assert!(none.stdout.contains("off"), "{none}");
    d.docker(&["rm", "-f", "hc", "slow", "off", "base"]).ok();
    d.docker(&["rmi", "slowhealth:1"]).ok();
}

#[test]
fn prune_space_wait_under_a_restart_policy_and_volume_drivers_and_options() {
    let d = Daemon::start("daemon-misc");
    d.load_busybox();
    d.docker(&[
        "run",
        "--name",
        "big",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/big",
        "bs=1024",
        "count=100",
    ])
    .ok();
    let rt = d
        .docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.Runtime}} {{.SizeRw}}",
            "-s",
            "big",
        ])
        .ok();
    // The file, and the few bytes of what the runtime adds (mount points).
    let (runtime, size) = rt.stdout.trim().split_once(' ').unwrap();
    // dockerd's default runtime name; strato's runtime answers to it.
    assert_eq!(runtime, "runc");
    let size: u64 = size.parse().unwrap();
    assert!((102_400..110_000).contains(&size), "{rt}");
    let out = d.docker(&["container", "prune", "-f"]).ok();
    assert!(
        out.stdout.contains("Total reclaimed space: 102.4kB"),
        "{out}"
    );
    // wait returns at an exit even when the restart policy starts it again.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "alw",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1",
    ])
    .ok();
    let w = d.docker(&["wait", "alw"]).ok();
    assert_eq!(w.stdout.trim(), "0");
    d.docker(&["rm", "-f", "alw"]).ok();
    // A bind's propagation is applied and shown.
    let src = d.dir.join("shared-src");
    fs::create_dir_all(&src).unwrap();
    let bind = format!("{}:/m:rw,rshared", src.display());
    d.docker(&[
        "create",
        "--name",
        "prop",
        "-v",
        &bind,
        "busybox",
        "grep",
        " /m ",
        "/proc/self/mountinfo",
    ])
    .ok();
    d.docker(&["start", "-a", "prop"]).ok();
    let info = d.docker(&["logs", "prop"]).ok();
    assert!(info.stdout.contains("shared:"), "{info}");
    let p = d
        .docker(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Propagation}}{{end}}",
            "prop",
        ])
        .ok();
    assert_eq!(p.stdout.trim(), "rshared");
    d.docker(&["rm", "prop"]).ok();
    // One runtime (runc is its alias); others are refused.
    let e = d
        .docker(&["create", "--runtime", "nvidia", "busybox", "true"])
        .failed();
    assert!(
        e.stderr.contains("unknown or invalid runtime name: nvidia"),
        "{e}"
    );
    d.docker(&[
        "create",
        "--name",
        "rc",
        "--runtime",
        "runc",
        "busybox",
        "true",
    ])
    .ok();
    let rt = d
        .docker(&["inspect", "-f", "{{.HostConfig.Runtime}}", "rc"])
        .ok();
    assert_eq!(rt.stdout.trim(), "runc");
    d.docker(&["rm", "rc"]).ok();
    // Only the local volume driver: others are missing plugins (404).
    let e = d
        .docker(&["volume", "create", "-d", "nosuch", "v1"])
        .failed();
    assert!(e.stderr.contains("plugin \"nosuch\" not found"), "{e}");
    // The local driver's options: a tmpfs volume shared between runs, a
    // bind of a host directory (read-only too), one made by `--mount
    // volume-opt=`; removing them unmounts and leaves the host's files.
    let host = d.dir.join("bound");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("keep"), "kept\n").unwrap();
    let device = format!("device={}", host.display());
    d.docker(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=1m",
        "vt",
    ])
    .ok();
    d.docker(&[
        "volume",
        "create",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        &device,
        "vb",
    ])
    .ok();
    d.docker(&[
        "volume",
        "create",
        "--opt",
        "type=none",
        "--opt",
        "o=bind,ro",
        "--opt",
        &device,
        "vro",
    ])
    .ok();
    let out = d
        .docker(&[
            "run",
            "--rm",
            "-v",
            "vt:/t",
            "-v",
            "vb:/b",
            "-v",
            "vro:/r",
            "busybox",
            "sh",
            "-c",
            "df -k /t | tail -1 | tr -s ' ' | cut -d' ' -f1,2; echo x > /t/f; cat /b/keep; \
             echo new > /b/new; touch /r/x 2>/dev/null || echo read-only",
        ])
        .ok();
    assert_eq!(out.stdout, "tmpfs 1024\nkept\nread-only\n", "{out}");
    assert_eq!(fs::read_to_string(host.join("new")).unwrap(), "new\n");
    let out = d
        .docker(&["run", "--rm", "-v", "vt:/t", "busybox", "cat", "/t/f"])
        .ok();
    assert_eq!(out.stdout, "x\n", "{out}");
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,src=vm,dst=/m,volume-opt=type=tmpfs,volume-opt=device=tmpfs",
            "busybox",
            "sh",
            "-c",
            "df /m | tail -1 | cut -d' ' -f1",
        ])
        .ok();
    assert_eq!(out.stdout, "tmpfs\n", "{out}");
    for (opts, words) in [
        (
            vec!["--opt", "foo=bar"],
            vec!["\"foo\"", "type, device and o"],
        ),
        (vec!["--opt", "type=tmpfs"], vec!["type and device"]),
        (
            vec![
                "--opt",
                "type=none",
                "--opt",
                "o=bind",
                "--opt",
                "device=/no/such",
            ],
            vec!["/no/such"],
        ),
    ] {
        let mut args = vec!["volume", "create"];
        args.extend(opts);
        args.push("bad");
        let e = d.docker(&args).failed();
        for w in words {
            assert!(e.stderr.contains(w), "{e}");
        }
    }
    d.docker(&["volume", "rm", "vt", "vb", "vro", "vm"]).ok();
    assert_eq!(fs::read_to_string(host.join("keep")).unwrap(), "kept\n");
    let table = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!table.contains(&d.dir.display().to_string()), "{table}");
}

#[test]
fn legacy_links_on_the_default_bridge() {
    let d = Daemon::start("daemon-links");
    d.load_busybox();
    d.docker(&[
        "run", "-d", "--name", "db", "-e", "PASS=x", "--expose", "5432", "busybox", "sleep", "600",
    ])
    .ok();
    let ip = d
        .docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "db"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let out = d
        .docker(&[
            "run",
            "--name",
            "web",
            "--link",
            "db:pg",
            "busybox",
            "sh",
            "-c",
            "env; cat /etc/hosts; ping -c1 -W3 pg >/dev/null && echo reached",
        ])
        .ok();
    for want in [
        "PG_NAME=/web/pg".to_string(),
        format!("PG_PORT=tcp://{ip}:5432"),
        format!("PG_PORT_5432_TCP_ADDR={ip}"),
        "PG_PORT_5432_TCP_PROTO=tcp".to_string(),
        "PG_ENV_PASS=x".to_string(),
        format!("{ip}\tpg db "),
        "reached".to_string(),
    ] {
        assert!(out.stdout.contains(&want), "{want} missing:\n{out}");
    }
    assert!(!out.stdout.contains("PG_ENV_PATH"), "{out}");
    let links = d
        .docker(&["inspect", "-f", "{{json .HostConfig.Links}}", "web"])
        .ok();
    assert_eq!(links.stdout.trim(), r#"["/db:/web/pg"]"#);
    // The link needs its target running.
    d.docker(&["stop", "-t", "1", "db"]).ok();
    let e = d.docker(&["start", "web"]).failed();
    assert!(
        e.stderr.contains("Cannot link to a non running container"),
        "{e}"
    );
    // docker rm --link forgets it; then the container starts alone.
    d.docker(&["rm", "--link", "web/pg"]).ok();
    let links = d
        .docker(&["inspect", "-f", "{{json .HostConfig.Links}}", "web"])
        .ok();
    assert_eq!(links.stdout.trim(), "null");
    // (pg no longer resolves: the script's ping fails.)
    let alone = d.docker(&["start", "-a", "web"]).failed();
    assert!(!alone.stdout.contains("PG_NAME"), "{alone}");
    // A link to a container that does not exist is refused at create.
    d.docker(&["create", "--link", "nosuch:x", "busybox", "true"])
        .failed();
    d.docker(&["rm", "-f", "web", "db"]).ok();
}

#[test]
fn bridge_peers_restart_policies_and_hostile_imports() {
    let d = Daemon::start("daemon-peers");
    d.load_busybox();
    // Two containers over the default bridge: HTTP from one to the other.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "srv",
        "busybox",
        "sh",
        "-c",
        "mkdir /www; echo peer-ok > /www/i; exec httpd -f -p 8080 -h /www",
    ])
    .ok();
    let ip = d
        .docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "srv"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let script = format!(
        "for i in $(seq 100); do wget -qO- http://{ip}:8080/i && exit 0; sleep 0.1; done; exit 1"
    );
    let out = d
        .docker(&["run", "--rm", "busybox", "sh", "-c", &script])
        .ok();
    assert_eq!(out.stdout, "peer-ok\n");
    // No IPv6 on an IPv4-only network: neither the container's interface
    // nor the bridge ports (whose address detection and multicast reports
    // went to every other port, at every start).
    let inside = d.docker(&["exec", "srv", "cat", "/proc/net/if_inet6"]).ok();
    assert!(!inside.stdout.contains("eth0"), "{inside}");
    let with_v6 = fs::read_to_string("/proc/net/if_inet6").unwrap();
    let ports: Vec<String> = fs::read_dir(Path::new("/sys/class/net").join(&d.bridge).join("brif"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!ports.is_empty());
    for port in &ports {
        assert!(
            !with_v6
                .lines()
                .any(|l| l.split_whitespace().last() == Some(port)),
            "{port} has an IPv6 address:\n{with_v6}"
        );
    }
    // on-failure:2 restarts twice, then stays exited with the code.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "twice",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ])
    .ok();
    eventually("on-failure:2 gives up", || {
        let s = d
            .docker(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}",
                "twice",
            ])
            .ok();
        s.stdout.trim() == "exited 2 3"
    });
    // always: restarted again and again, also after a clean exit.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.1; exit 0",
    ])
    .ok();
    eventually("always restarts", || {
        let n = d
            .docker(&["inspect", "-f", "{{.RestartCount}}", "always"])
            .ok();
        n.stdout.trim().parse::<u32>().unwrap_or(0) >= 3
    });
    d.docker(&["rm", "-f", "srv", "twice", "always"]).ok();
    // Hostile image tars: refused, no image, the host untouched.
    for tar in [hostile_tar(Some(&d.dir)), hostile_tar(None)] {
        let out = d
            .docker_in(&["import", "-", "hostile:1"], Some(&tar))
            .failed();
        assert!(out.stderr.contains("refusing"), "{out}");
    }
    assert!(!d.dir.join("pwned").exists());
    assert!(!Path::new("/tmp/pwned-by-strato-test").exists());
    let images = d.docker(&["images", "--format", "{{.Repository}}"]).ok();
    assert_eq!(images.stdout.trim(), "busybox");
}

/// One request over the daemon's unix socket (HTTP/1.1, `Connection:
/// close`); the raw answer (status line, headers, body) is returned once the
/// daemon closes the connection, or after `CMD_TIMEOUT` (then the test fails).
fn api(d: &Daemon, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
    api_with(d, method, path, "application/json", body.as_bytes())
}

/// A request with any body (`api` sends JSON).
fn api_with(
    d: &Daemon,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = std::os::unix::net::UnixStream::connect(&d.sock).expect("connect");
    s.set_read_timeout(Some(CMD_TIMEOUT)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .unwrap_or_else(|e| panic!("{method} {path}: no complete answer: {e}"));
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers")
        + 4;
    let status = String::from_utf8_lossy(&all[9..12]).parse().unwrap();
    let head = String::from_utf8_lossy(&all[..head_end]).to_lowercase();
    let mut body = all[head_end..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = &rest[eol + 2 + n + 2..];
        }
        body = out;
    }
    (status, body)
}

/// `POST /exec/{id}/start` asking to upgrade: the answer's head, then all
/// that follows it until the daemon closes the connection.
fn hijacked_start(d: &Daemon, exec_id: &str, body: &str) -> (Vec<u8>, Vec<u8>) {
    let mut s = std::os::unix::net::UnixStream::connect(&d.sock).unwrap();
    s.set_read_timeout(Some(CMD_TIMEOUT)).unwrap();
    write!(
        s,
        "POST /exec/{exec_id}/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => panic!("exec start {exec_id}: {e}; read so far: {all:?}"),
        }
        // A refusal is an ordinary answer on a kept-alive connection.
        if all.starts_with(b"HTTP/1.1 4") && all.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let rest = all.split_off(end);
    (all, rest)
}

fn exec_create(d: &Daemon, container: &str, body: &str) -> String {
    let (st, out) = api(d, "POST", &format!("/containers/{container}/exec"), body);
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&out));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    v["Id"].as_str().unwrap().to_string()
}

/// What docker-py's integration tests found: a forced removal while an exec
/// runs hung the supervisor for good; a TTY exec started with `Tty: false`
/// must answer multiplexed frames (dockerd frames by the start request);
/// detach keys end a hijacked exec session; bad detach keys are a 400.
#[test]
fn exec_framing_detach_keys_and_forced_removal_while_an_exec_runs() {
    let d = Daemon::start("daemon-execpy");
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "ex", "busybox", "sleep", "600"])
        .ok();

    // Framing follows the start request's Tty.
    let e = exec_create(
        &d,
        "ex",
        r#"{"Cmd":["printf","hi"],"Tty":true,"AttachStdout":true}"#,
    );
    let (st, body) = api(&d, "POST", &format!("/exec/{e}/start"), r#"{"Tty":false}"#);
    assert_eq!(st, 200);
    assert_eq!(body, b"\x01\x00\x00\x00\x00\x00\x00\x02hi", "framed stdout");
    let e = exec_create(
        &d,
        "ex",
        r#"{"Cmd":["printf","hi"],"Tty":false,"AttachStdout":true}"#,
    );
    let (st, body) = api(&d, "POST", &format!("/exec/{e}/start"), r#"{"Tty":true}"#);
    assert_eq!(st, 200);
    assert_eq!(body, b"hi", "raw with Tty in the start request");

    // An upgraded start runs the process after the 101 answer and relays it;
    // a second start of the same exec is refused before any upgrade.
    let e = exec_create(
        &d,
        "ex",
        r#"{"Cmd":["echo","up"],"AttachStdout":true,"AttachStderr":true}"#,
    );
    let (head, rest) = hijacked_start(&d, &e, r#"{"Tty":false}"#);
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(rest, b"\x01\x00\x00\x00\x00\x00\x00\x03up\n");
    let (head, _) = hijacked_start(&d, &e, r#"{"Tty":false}"#);
    assert!(
        head.starts_with(b"HTTP/1.1 409"),
        "{}",
        String::from_utf8_lossy(&head)
    );

    // JSON nulls are absent members, as in dockerd (docker-py sends them).
    let (st, out) = api(
        &d,
        "POST",
        "/containers/create",
        r#"{"Image":"busybox","Cmd":["true"],"MacAddress":null,"Healthcheck":{"Test":["CMD","true"],"Interval":null},"HostConfig":{"Binds":null}}"#,
    );
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&out));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    d.docker(&["rm", v["Id"].as_str().unwrap()]).ok();
    // A log driver this engine does not have is refused at create.
    let (st, out) = api(
        &d,
        "POST",
        "/containers/create",
        r#"{"Image":"busybox","HostConfig":{"LogConfig":{"Type":"asdf","Config":{}}}}"#,
    );
    assert_eq!(st, 400);
    assert!(
        String::from_utf8_lossy(&out).contains("no log driver named 'asdf'"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    // Detach keys: the hijacked connection ends when they are typed.
    let (st, out) = api(
        &d,
        "POST",
        "/containers/ex/exec",
        r#"{"Cmd":["cat"],"DetachKeys":"ctrl-1"}"#,
    );
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&out));
    assert!(String::from_utf8_lossy(&out).contains("detach key"));
    let e = exec_create(
        &d,
        "ex",
        // docker-py's spelling of the key (dockerd matches keys case-insensitively).
        r#"{"Cmd":["cat"],"AttachStdin":true,"AttachStdout":true,"Tty":true,"detachKeys":"ctrl-p"}"#,
    );
    let mut s = std::os::unix::net::UnixStream::connect(&d.sock).unwrap();
    s.set_read_timeout(Some(CMD_TIMEOUT)).unwrap();
    let body = r#"{"Tty":true}"#;
    write!(
        s,
        "POST /exec/{e}/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "answer cut short");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s.write_all(b"ab\x10").unwrap();
    // The session ends (end of file) rather than running into the timeout.
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("the connection closes after the detach keys");

    // A SIGKILL answers once the container is down (docker-py inspects at once).
    d.docker(&["run", "-d", "--name", "kk", "busybox", "sleep", "600"])
        .ok();
    let (st, out) = api(&d, "POST", "/containers/kk/kill", "");
    assert_eq!(st, 204, "{}", String::from_utf8_lossy(&out));
    let (_, out) = api(&d, "GET", "/containers/kk/json", "");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["State"]["Running"], false, "{v}");
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
    d.docker(&["rm", "kk"]).ok();

    // An exec still running in the container; a forced removal completes.
    d.docker(&["exec", "-d", "ex", "sleep", "300"]).ok();
    d.docker(&["rm", "-f", "ex"]).ok();
    let left = d.docker(&["ps", "-aq"]).ok();
    assert_eq!(left.stdout.trim(), "");
    // The supervisor still answers.
    let out = d.docker(&["run", "--rm", "busybox", "echo", "alive"]).ok();
    assert_eq!(out.stdout.trim(), "alive");
}

/// More of what docker-py's integration tests found: an exec whose command
/// is not there reports exit code 126 (as dockerd) and the reason on its
/// stream; `GET /containers/{id}/changes` reports the writable layer;
/// `POST /containers/{id}/update` changes limits and the restart policy.
#[test]
fn exec_start_failures_diff_and_update() {
    let d = Daemon::start("daemon-dpy2");
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "cx", "busybox", "sleep", "600"])
        .ok();

    // A command that does not exist: the reason on stdout, then exit 126.
    let e = exec_create(
        &d,
        "cx",
        r#"{"Cmd":["nosuchcmd","x"],"AttachStdout":true,"AttachStderr":true}"#,
    );
    let (head, rest) = hijacked_start(&d, &e, r#"{"Tty":false}"#);
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(rest[0], 1, "a stdout frame: {rest:?}");
    assert!(
        String::from_utf8_lossy(&rest[8..]).contains("nosuchcmd"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    let (st, out) = api(&d, "GET", &format!("/exec/{e}/json"), "");
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["ExitCode"], 126, "{v}");
    assert_eq!(v["Running"], false, "{v}");
    // docker exec shows the same code.
    let out = d.docker(&["exec", "cx", "nosuchcmd"]);
    assert_eq!(out.code(), Some(126), "{}", out.stderr);
    let (head, _) = hijacked_start(&d, &e, r#"{"Tty":false}"#);
    assert!(head.starts_with(b"HTTP/1.1 409"), "started once only");

    // docker diff: the writable layer against the image, without the
    // mount points the runtime made (/etc/hosts, /proc, ...).
    let (st, out) = api(&d, "GET", "/containers/cx/changes", "");
    assert_eq!(st, 200);
    assert_eq!(
        String::from_utf8_lossy(&out).trim(),
        "[]",
        "nothing changed yet"
    );
    d.docker(&[
        "run",
        "--name",
        "df",
        "busybox",
        "sh",
        "-c",
        "touch /test && mkdir /newd && echo x >>/etc/passwd && rm /bin/true",
    ])
    .ok();
    let (st, out) = api(&d, "GET", "/containers/df/changes", "");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&out));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!([
            {"Path": "/bin", "Kind": 0},
            {"Path": "/bin/true", "Kind": 2},
            {"Path": "/etc", "Kind": 0},
            {"Path": "/etc/passwd", "Kind": 0},
            {"Path": "/newd", "Kind": 1},
            {"Path": "/test", "Kind": 1},
        ])
    );
    let out = d.docker(&["diff", "df"]).ok();
    assert!(out.stdout.contains("A /test"), "{}", out.stdout);
    let (st, _) = api(&d, "GET", "/containers/nosuch/changes", "");
    assert_eq!(st, 404);

    // docker update: limits on a running container reach its cgroup and
    // inspect; the restart policy too; bad values are refused whole.
    let full = |s: &str| d.docker(&["inspect", "-f", "{{.Id}}", s]).ok().stdout;
    let out = d
        .docker(&[
            "run",
            "-d",
            "--name",
            "up",
            "-m",
            "400m",
            "--restart",
            "always",
            "busybox",
            "sleep",
            "600",
        ])
        .ok();
    let up = out.stdout.trim().to_string();
    assert_eq!(full("up").trim(), up);
    let (st, out) = api(
        &d,
        "POST",
        "/containers/up/update",
        r#"{"Memory":314572800,"MemorySwap":629145600,"CpuShares":3,"PidsLimit":50,"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":42}}"#,
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&out));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v, serde_json::json!({"Warnings": []}));
    let (_, out) = api(&d, "GET", "/containers/up/json", "");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let h = &v["HostConfig"];
    assert_eq!(h["Memory"], 314572800, "{h}");
    assert_eq!(h["MemorySwap"], 629145600, "{h}");
    assert_eq!(h["CpuShares"], 3, "{h}");
    assert_eq!(h["PidsLimit"], 50, "{h}");
    assert_eq!(h["RestartPolicy"]["Name"], "on-failure", "{h}");
    assert_eq!(h["RestartPolicy"]["MaximumRetryCount"], 42, "{h}");
    let cgroup = |v1: &str, v2: &str| {
        let a = format!("/sys/fs/cgroup/{v1}/strato/{up}/{v2}");
        let b = format!("/sys/fs/cgroup/strato/{up}/{v2}");
        fs::read_to_string(&a)
            .or_else(|_| fs::read_to_string(&b))
            .unwrap_or_else(|e| panic!("{a} / {b}: {e}"))
            .trim()
            .to_string()
    };
    let mem_file = if Path::new("/sys/fs/cgroup/memory").is_dir() {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    assert_eq!(cgroup("memory", mem_file), "314572800");
    assert_eq!(cgroup("pids", "pids.max"), "50");
    // The docker CLI's body (every field, zeros for the unchanged ones).
    d.docker(&["update", "--memory", "200m", "--pids-limit", "-1", "up"])
        .ok();
    assert_eq!(cgroup("memory", mem_file), "209715200");
    assert_eq!(cgroup("pids", "pids.max"), "max");
    let out = d.docker(&["update", "--memory", "1m", "up"]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("Minimum memory limit"),
        "{}",
        out.stderr
    );
    let (st, out) = api(
        &d,
        "POST",
        "/containers/up/update",
        r#"{"CpuRealtimeRuntime":1000}"#,
    );
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&out).contains("CpuRealtimeRuntime"));
    assert_eq!(cgroup("memory", mem_file), "209715200", "unchanged");
    // A created container: recorded, applied when it starts.
    d.docker(&["create", "--name", "cr", "busybox", "sleep", "600"])
        .ok();
    d.docker(&["update", "--cpu-shares", "512", "cr"]).ok();
    let out = d
        .docker(&["inspect", "-f", "{{.HostConfig.CpuShares}}", "cr"])
        .ok();
    assert_eq!(out.stdout.trim(), "512");

    d.docker(&["rm", "-f", "cx", "df", "up", "cr"]).ok();
}

#[test]
fn network_container_mode_shares_the_targets_namespace_and_files() {
    let mut d = Daemon::start("daemon-netcontainer");
    d.load_busybox();
    d.docker(&[
        "run", "-d", "--name", "target", "busybox", "nc", "-ll", "-p", "8080", "-e", "echo", "hi",
    ])
    .ok();
    let tid = d
        .docker(&["inspect", "-f", "{{.Id}}", "target"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let target_view = d
        .docker(&["exec", "target", "sh", "-c", "hostname; cat /etc/hosts"])
        .ok()
        .stdout;
    // The joiner reaches the target's listener on loopback: one namespace.
    let out = d
        .docker(&[
            "run",
            "--name",
            "joiner",
            "--network",
            "container:target",
            "busybox",
            "sh",
            "-c",
            "for i in $(seq 100); do got=$(nc 127.0.0.1 8080 </dev/null) && [ -n \"$got\" ] && break; sleep 0.1; done; \
             echo \"got:$got\"; hostname; cat /etc/hosts",
        ])
        .ok();
    assert!(out.stdout.starts_with("got:hi\n"), "{out}");
    assert_eq!(out.stdout.trim_start_matches("got:hi\n"), target_view);
    let mode = d
        .docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.NetworkMode}} {{json .NetworkSettings.Networks}}",
            "joiner",
        ])
        .ok();
    assert_eq!(mode.stdout.trim(), format!("container:{tid} {{}}"));
    let paths = |c: &str| {
        d.docker(&[
            "inspect",
            "-f",
            "{{.HostsPath}} {{.ResolvConfPath}} {{.HostnamePath}}",
            c,
        ])
        .ok()
        .stdout
    };
    assert_eq!(paths("joiner"), paths("target"));
    let e = d
        .docker(&["network", "connect", "bridge", "joiner"])
        .failed();
    assert!(e.stderr.contains("cannot be connected"), "{e}");
    // A long-running joiner is listed, and kept across a daemon restart.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "j2",
        "--network",
        &format!("container:{}", &tid[..12]),
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let ps = d.docker(&["ps", "--format", "{{.Names}}"]).ok();
    assert!(ps.stdout.lines().any(|l| l == "j2"), "{ps}");
    // One namespace, whether the target has a pinned one (bridge), only
    // its process's (none), or joins another container in turn.
    let netns_of = |c: &str| {
        d.docker(&["exec", c, "readlink", "/proc/self/ns/net"])
            .ok()
            .stdout
    };
    let joined_netns = |target: &str| {
        d.docker(&[
            "run",
            "--rm",
            "--network",
            &format!("container:{target}"),
            "busybox",
            "readlink",
            "/proc/self/ns/net",
        ])
        .ok()
        .stdout
    };
    d.docker(&[
        "run",
        "-d",
        "--name",
        "lone",
        "--network",
        "none",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    assert_eq!(joined_netns("lone"), netns_of("lone"));
    assert_ne!(netns_of("lone"), netns_of("target"));
    assert_eq!(joined_netns("j2"), netns_of("target"));
    assert_eq!(joined_netns("target"), netns_of("target"));
    d.docker(&["rm", "-f", "lone"]).ok();
    // What dockerd refuses with a joined namespace.
    for (flags, want) in [
        (
            &["-p", "8081:80"][..],
            "conflicting options: port publishing and the container type network mode",
        ),
        (
            &["--hostname", "h"],
            "conflicting options: hostname and the network mode",
        ),
        (
            &["--dns", "192.0.2.53"],
            "conflicting options: dns and the network mode",
        ),
        (
            &["--add-host", "a:192.0.2.1"],
            "conflicting options: custom host-to-IP mapping and the network mode",
        ),
        (
            &["--mac-address", "02:42:ac:11:00:09"],
            "conflicting options: mac-address and the network mode",
        ),
    ] {
        let mut args = vec!["create", "--network", "container:target"];
        args.extend_from_slice(flags);
        args.extend(["busybox", "true"]);
        let e = d.docker(&args).failed();
        assert!(e.stderr.contains(want), "{flags:?}: {e}");
    }
    let e = d
        .docker(&["create", "--network", "container:nosuch", "busybox", "true"])
        .failed();
    assert!(e.stderr.contains("No such container: nosuch"), "{e}");
    d.kill9_and_restart();
    let after = d
        .docker(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.HostConfig.NetworkMode}}",
            "j2",
        ])
        .ok();
    assert_eq!(after.stdout.trim(), format!("true container:{tid}"));
    // A joiner cannot start while its target is stopped; it can once it runs.
    d.docker(&[
        "create",
        "--name",
        "j3",
        "--network",
        "container:target",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    d.docker(&["stop", "-t", "1", "target"]).ok();
    let e = d.docker(&["start", "j3"]).failed();
    assert!(
        e.stderr.contains(&format!(
            "cannot join network of a non running container: {tid}"
        )),
        "{e}"
    );
    d.docker(&["start", "target"]).ok();
    d.docker(&["start", "j3"]).ok();
    let hostname = d.docker(&["exec", "j3", "hostname"]).ok();
    assert_eq!(hostname.stdout.trim(), &tid[..12]);
    // The target may go while joiners run: its pinned namespace goes with
    // it, the joiners keep theirs through their own processes.
    d.docker(&["rm", "-f", "target"]).ok();
    assert!(!d.exec_root.join("netns").join(&tid).exists());
    d.docker(&["exec", "j3", "true"]).ok();
    let e = d.docker(&["restart", "-t", "1", "j3"]).failed();
    assert!(e.stderr.contains("No such container"), "{e}");
    d.docker(&["rm", "-f", "joiner", "j2", "j3"]).ok();
}

/// Writes `files` (path, content) under `dir`, making parent directories.
fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (p, content) in files {
        let path = dir.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
}

/// A loopback HTTP server for `ADD <url>` and remote contexts: `GET /<path>`
/// answers the file `root/<path>` if there is one, else "served /<path>",
/// with a Last-Modified header; any path containing "missing" is a 404.
/// Runs until the test process ends; returns `http://127.0.0.1:PORT`.
fn http_file_server(root: PathBuf) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split(' ').nth(1).unwrap_or("/").to_string();
            let resp = if path.contains("missing") {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            } else {
                let body = fs::read(root.join(path.trim_start_matches('/')))
                    .unwrap_or_else(|_| format!("served {path}\n").into_bytes());
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend(body);
                r
            };
            let _ = s.write_all(&resp);
        }
    });
    base
}

/// `docker build` with the stock CLI (the daemon advertises the classic
/// builder, so the CLI needs no BuildKit).
fn docker_build(d: &Daemon, args: &[&str]) -> Out {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    d.docker(&all)
}

#[test]
fn build_run_copy_env_cmd_args_ignore_and_cache() {
    let d = Daemon::start("daemon-build");
    d.load_busybox();
    let ctx = d.dir.join("ctx");
    write_tree(
        &ctx,
        &[
            (
                "Dockerfile",
                "# a comment\n\
                 FROM busybox\n\
                 ARG NAME=nobody\n\
                 ENV GREETING=\"hello world\" \\\n    WHO=${NAME:-x}\n\
                 WORKDIR /app\n\
                 COPY greet.txt sub/ ./\n\
                 COPY --chmod=0700 --chown=1:2 greet.txt /opt/g/\n\
                 RUN echo \"$GREETING from $WHO\" > /app/run.txt && cat /app/greet.txt && echo oops >&2\n\
                 LABEL built.by=strato\n\
                 EXPOSE 8080\n\
                 CMD [\"sh\", \"-c\", \"cat /app/run.txt /app/greet.txt /app/inner.txt; pwd; ls /app\"]\n",
            ),
            ("greet.txt", "greetings\n"),
            ("sub/inner.txt", "inner\n"),
            ("sub/ignored.log", "not sent\n"),
            (".dockerignore", "**/*.log\n"),
        ],
    );
    let c = ctx.to_str().unwrap();
    let out = docker_build(
        &d,
        &[
            "-t",
            "built:1",
            "--build-arg",
            "NAME=strato",
            "--build-arg",
            "UNUSED=1",
            c,
        ],
    )
    .ok();
    for want in [
        "Step 1/10 : FROM busybox",
        "Step 7/10 : RUN echo",
        "greetings",
        "Successfully built ",
        "Successfully tagged built:1",
        "[Warning] One or more build-args [UNUSED] were not consumed",
    ] {
        assert!(out.stdout.contains(want), "{want:?} missing in\n{out}");
    }
    let run = d.docker(&["run", "--rm", "built:1"]).ok();
    assert_eq!(
        run.stdout,
        "hello world from strato\ngreetings\ninner\n/app\ngreet.txt\ninner.txt\nrun.txt\n"
    );
    let owner = d
        .docker(&[
            "run",
            "--rm",
            "built:1",
            "stat",
            "-c",
            "%u:%g %a",
            "/opt/g/greet.txt",
        ])
        .ok();
    assert_eq!(owner.stdout, "1:2 700\n");
    let f = |fmt: &str| {
        d.docker(&["inspect", "-f", fmt, "built:1"])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(
        f("{{json .Config.Labels}} {{json .Config.ExposedPorts}} {{.Config.WorkingDir}}"),
        r#"{"built.by":"strato"} {"8080/tcp":{}} /app"#
    );
    // busybox's layer, WORKDIR, two COPYs and RUN: metadata steps add none.
    assert_eq!(f("{{len .RootFS.Layers}}"), "5");
    // The same build again comes from the cache, to the same image.
    let id = f("{{.Id}}");
    let again = docker_build(&d, &["-t", "built:2", "--build-arg", "NAME=strato", c]).ok();
    assert_eq!(again.stdout.matches("Using cache").count(), 9, "{again}");
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.Id}}", "built:2"])
            .ok()
            .stdout
            .trim(),
        id
    );
    // A changed file reruns the steps from its COPY on; a changed build
    // arg from the ENV that uses it.
    fs::write(ctx.join("sub/inner.txt"), "changed\n").unwrap();
    let changed = docker_build(&d, &["-t", "built:3", "--build-arg", "NAME=strato", c]).ok();
    assert_eq!(
        changed.stdout.matches("Using cache").count(),
        3,
        "{changed}"
    );
    let run = d.docker(&["run", "--rm", "built:3"]).ok();
    assert!(
        run.stdout
            .starts_with("hello world from strato\ngreetings\nchanged\n"),
        "{run}"
    );
    let other = docker_build(&d, &["-t", "built:4", "--build-arg", "NAME=other", c]).ok();
    assert_eq!(other.stdout.matches("Using cache").count(), 1, "{other}");
    let run = d.docker(&["run", "--rm", "built:4"]).ok();
    assert!(run.stdout.starts_with("hello world from other\n"), "{run}");
    let nocache = docker_build(&d, &["--no-cache", "-q", c]).ok();
    assert!(nocache.stdout.trim().starts_with("sha256:"), "{nocache}");
    // No build container is left.
    assert_eq!(d.docker(&["ps", "-aq"]).ok().stdout.trim(), "");
}

#[test]
fn build_multi_stage_target_failures_and_hostile_contexts() {
    let d = Daemon::start("daemon-build-ms");
    d.load_busybox();
    let ctx = d.dir.join("ctx");
    write_tree(
        &ctx,
        &[
            (
                "Dockerfile",
                "FROM busybox AS builder\n\
                 RUN mkdir /out && echo built > /out/artifact && ln -s artifact /out/link\n\
                 ONBUILD RUN echo triggered\n\
                 FROM scratch AS final\n\
                 COPY --from=builder /out/ /dist/\n\
                 COPY --from=builder /bin/busybox /bin/\n\
                 ENTRYPOINT [\"/bin/busybox\"]\n\
                 CMD [\"cat\", \"/dist/link\"]\n",
            ),
            (
                "fail.Dockerfile",
                "FROM busybox\nRUN echo partial > /p && exit 3\n",
            ),
            ("escape.Dockerfile", "FROM busybox\nCOPY ../outside /x\n"),
            ("link.Dockerfile", "FROM busybox\nCOPY etc/passwd /x\n"),
        ],
    );
    fs::write(d.dir.join("outside"), "secret\n").unwrap();
    std::os::unix::fs::symlink("/etc", ctx.join("etc")).unwrap();
    let c = ctx.to_str().unwrap();
    docker_build(&d, &["-t", "ms:1", c]).ok();
    let run = d.docker(&["run", "--rm", "ms:1"]).ok();
    assert_eq!(run.stdout, "built\n");
    let layers = d
        .docker(&["inspect", "-f", "{{len .RootFS.Layers}}", "ms:1"])
        .ok();
    assert_eq!(layers.stdout.trim(), "2");
    // --target stops at the first stage; its ONBUILD is stored, not run.
    docker_build(&d, &["--target", "builder", "-t", "ms:builder", c]).ok();
    let run = d
        .docker(&["run", "--rm", "ms:builder", "cat", "/out/artifact"])
        .ok();
    assert_eq!(run.stdout, "built\n");
    let onbuild = d
        .docker(&["inspect", "-f", "{{json .Config.OnBuild}}", "ms:builder"])
        .ok();
    assert_eq!(onbuild.stdout.trim(), r#"["RUN echo triggered"]"#);
    // An image built FROM it runs the trigger.
    let child = d.dir.join("child");
    write_tree(
        &child,
        &[
            (
                "Dockerfile",
                "FROM ms:builder\n\
                 SHELL [\"/bin/sh\", \"-ec\"]\n\
                 RUN [\"sh\", \"-c\", \"echo exec-form > /exec\"]\n\
                 ADD bundle.tar.gz /unpacked\n\
                 USER nobody\n\
                 VOLUME /data\n\
                 STOPSIGNAL SIGTERM\n\
                 HEALTHCHECK --interval=5s CMD true\n\
                 ENTRYPOINT [\"cat\"]\n",
            ),
            ("src/hello.txt", "from the archive\n"),
        ],
    );
    // ADD of a URL: downloaded by the daemon, kept as a file (mode 0600,
    // the server's time), never unpacked.
    let web = http_file_server(child.clone());
    let mut df = fs::read_to_string(child.join("Dockerfile")).unwrap();
    df = df.replace(
        "USER nobody\n",
        &format!(
            "ADD {web}/pkg/remote.tar.gz /remote/\nADD {web}/other.txt /named.txt\nUSER nobody\n"
        ),
    );
    fs::write(child.join("Dockerfile"), df).unwrap();
    let packed = Command::new("tar")
        .arg("-C")
        .arg(child.join("src"))
        .args([
            "-czf",
            child.join("bundle.tar.gz").to_str().unwrap(),
            "hello.txt",
        ])
        .status()
        .unwrap();
    assert!(packed.success());
    let out = docker_build(&d, &["-t", "ms:child", child.to_str().unwrap()]).ok();
    assert!(out.stdout.contains("# Executing 1 build trigger"), "{out}");
    assert!(out.stdout.contains("triggered"), "{out}");
    let run = d
        .docker(&["run", "--rm", "ms:child", "/unpacked/hello.txt", "/exec"])
        .ok();
    assert_eq!(run.stdout, "from the archive\nexec-form\n");
    let run = d
        .docker(&[
            "run",
            "--rm",
            "--entrypoint",
            "stat",
            "ms:child",
            "-c",
            "%a %Y %n",
            "/remote/remote.tar.gz",
            "/named.txt",
        ])
        .ok();
    assert_eq!(
        run.stdout,
        "600 1445412480 /remote/remote.tar.gz\n600 1445412480 /named.txt\n"
    );
    let run = d
        .docker(&["run", "--rm", "-u", "0", "ms:child", "/named.txt"])
        .ok();
    assert_eq!(run.stdout, "served /other.txt\n");
    // A URL the server does not have, COPY of a URL, a git repository.
    for (df, want) in [
        (format!("FROM busybox\nADD {web}/missing.txt /x\n"), "404"),
        (format!("FROM busybox\nCOPY {web}/a.txt /x\n"), "use ADD"),
        (
            "FROM busybox\nADD git@example.com:a/b.git /x\n".to_string(),
            "git repository",
        ),
        (
            format!("FROM busybox\nADD {web}/ /x/\n"),
            "cannot determine a file name",
        ),
    ] {
        fs::write(child.join("url.Dockerfile"), df).unwrap();
        let f = child.join("url.Dockerfile");
        let e = docker_build(&d, &["-f", f.to_str().unwrap(), child.to_str().unwrap()]).failed();
        assert!(e.stderr.contains(want), "{want:?} missing in {e}");
    }
    // A remote context (docker-py's `remote`): a Dockerfile, then a tar.
    fs::write(
        child.join("remote.Dockerfile"),
        "FROM busybox\nRUN echo from-remote > /r\n",
    )
    .unwrap();
    let remote = |what: &str, tag: &str| {
        let (status, body) = api_with(
            &d,
            "POST",
            &format!("/v1.43/build?t={tag}&remote={web}/{what}"),
            "application/x-tar",
            b"",
        );
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "{body}");
        body
    };
    let body = remote("remote.Dockerfile", "remote:1");
    assert!(body.contains("Successfully tagged remote:1"), "{body}");
    let run = d.docker(&["run", "--rm", "remote:1", "cat", "/r"]).ok();
    assert_eq!(run.stdout, "from-remote\n");
    fs::write(
        child.join("src/Dockerfile"),
        "FROM busybox\nCOPY hello.txt /h\n",
    )
    .unwrap();
    let packed = Command::new("tar")
        .arg("-C")
        .arg(child.join("src"))
        .args(["-czf", child.join("ctx.tgz").to_str().unwrap(), "."])
        .status()
        .unwrap();
    assert!(packed.success());
    let body = remote("ctx.tgz", "remote:2");
    assert!(body.contains("Successfully tagged remote:2"), "{body}");
    let run = d.docker(&["run", "--rm", "remote:2", "cat", "/h"]).ok();
    assert_eq!(run.stdout, "from the archive\n");
    let body = remote("missing.tar", "remote:3");
    assert!(body.contains("404"), "{body}");
    // ENTRYPOINT drops the CMD the stage inherited.
    let cfg = d
        .docker(&[
            "inspect",
            "-f",
            "{{.Config.User}} {{json .Config.Volumes}} {{.Config.StopSignal}} {{json .Config.Healthcheck.Test}} {{json .Config.Cmd}} {{json .Config.Shell}}",
            "ms:child",
        ])
        .ok();
    assert_eq!(
        cfg.stdout.trim(),
        r#"nobody {"/data":{}} SIGTERM ["CMD-SHELL","true"] null ["/bin/sh","-ec"]"#
    );
    // A failing RUN: the exit code in the message, no image, no container.
    let fail = docker_build(
        &d,
        &["-f", &format!("{c}/fail.Dockerfile"), "-t", "bad:1", c],
    )
    .failed();
    assert!(
        fail.stderr.contains(
            "The command '/bin/sh -c echo partial > /p && exit 3' returned a non-zero code: 3"
        ),
        "{fail}"
    );
    d.docker(&["image", "inspect", "bad:1"]).failed();
    assert_eq!(d.docker(&["ps", "-aq"]).ok().stdout.trim(), "");
    // COPY never reads outside the context.
    let esc = docker_build(&d, &["-f", &format!("{c}/escape.Dockerfile"), c]).failed();
    assert!(esc.stderr.contains("outside the build context"), "{esc}");
    let link = docker_build(&d, &["-f", &format!("{c}/link.Dockerfile"), c]).failed();
    assert!(link.stderr.contains("outside the build context"), "{link}");
    assert_eq!(d.docker(&["ps", "-aq"]).ok().stdout.trim(), "");
    // Hostile context tars are refused before anything is written outside.
    let victim = d.dir.join("victim");
    fs::create_dir(&victim).unwrap();
    for tar in [hostile_tar(None), hostile_tar(Some(&victim))] {
        let (status, body) = api_with(
            &d,
            "POST",
            "/v1.43/build?t=hostile",
            "application/x-tar",
            &tar,
        );
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("errorDetail"), "{body}");
    }
    assert!(!Path::new("/tmp/pwned-by-strato-test").exists());
    assert!(!victim.join("pwned").exists());
    d.docker(&["image", "inspect", "hostile"]).failed();
    // What dockerd refuses up front.
    let (status, body) = api_with(&d, "POST", "/build?squash=1", "application/x-tar", b"");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("experimental"));
    let (status, _) = api_with(
        &d,
        "POST",
        "/build?platform=foobar",
        "application/x-tar",
        b"",
    );
    assert_eq!(status, 400);
}

/// bollard, the Rust Docker API client, drives the daemon unmodified:
/// ping, version, images, create with config, start, wait, logs, exec
/// with its exit code, attach (hijacked and over a WebSocket), inspect,
/// top, one-shot stats, networks, volumes and removal.
#[test]
fn bollard_drives_the_daemon() {
    use bollard::models::{ContainerCreateBody, ExecConfig, NetworkCreateRequest};
    use bollard::query_parameters as qp;
    use futures::{StreamExt, TryStreamExt};
    use tokio::io::AsyncWriteExt;

    let forced = || {
        Some(
            qp::RemoveContainerOptionsBuilder::default()
                .force(true)
                .build(),
        )
    };
    let d = Daemon::start("bollard");
    d.load_busybox();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let docker = bollard::Docker::connect_with_unix(
            d.sock.to_str().unwrap(),
            60,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap();
        assert_eq!(docker.ping().await.unwrap(), "OK");
        let v = docker.version().await.unwrap();
        assert_eq!(v.api_version.as_deref(), Some("1.44"));
        let images = docker
            .list_images(None::<qp::ListImagesOptions>)
            .await
            .unwrap();
        assert!(
            images
                .iter()
                .any(|i| i.repo_tags.iter().any(|t| t == "busybox:latest")),
            "{images:?}"
        );

        // Create with a config, start, wait, logs.
        let body = ContainerCreateBody {
            image: Some("busybox".into()),
            cmd: Some(vec![
                "sh".into(),
                "-c".into(),
                "echo out-$GREETING; echo err >&2; exit 3".into(),
            ]),
            env: Some(vec!["GREETING=hi".into()]),
            labels: Some([("made-by".to_string(), "bollard".to_string())].into()),
            ..Default::default()
        };
        let opts = qp::CreateContainerOptionsBuilder::default()
            .name("bollard-one")
            .build();
        let id = docker.create_container(Some(opts), body).await.unwrap().id;
        docker
            .start_container(&id, None::<qp::StartContainerOptions>)
            .await
            .unwrap();
        let waited: Vec<_> = docker
            .wait_container(&id, None::<qp::WaitContainerOptions>)
            .collect()
            .await;
        // bollard reports a non-zero exit as an error carrying the code.
        let code = match &waited[0] {
            Ok(w) => w.status_code,
            Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => *code,
            Err(e) => panic!("wait: {e}"),
        };
        assert_eq!(code, 3);
        let logs: Vec<_> = docker
            .logs(
                &id,
                Some(
                    qp::LogsOptionsBuilder::default()
                        .stdout(true)
                        .stderr(true)
                        .build(),
                ),
            )
            .try_collect()
            .await
            .unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        for l in logs {
            match l {
                bollard::container::LogOutput::StdOut { message } => {
                    out.push_str(&String::from_utf8_lossy(&message))
                }
                bollard::container::LogOutput::StdErr { message } => {
                    err.push_str(&String::from_utf8_lossy(&message))
                }
                other => panic!("unexpected log frame {other:?}"),
            }
        }
        assert_eq!((out.as_str(), err.as_str()), ("out-hi\n", "err\n"));
        let info = docker
            .inspect_container("bollard-one", None::<qp::InspectContainerOptions>)
            .await
            .unwrap();
        assert_eq!(info.id.as_deref(), Some(id.as_str()));
        assert_eq!(info.state.unwrap().exit_code, Some(3));
        assert_eq!(info.config.unwrap().labels.unwrap()["made-by"], "bollard");

        // A running container: exec with its exit code, top, stats.
        let body = ContainerCreateBody {
            image: Some("busybox".into()),
            cmd: Some(vec!["sleep".into(), "60".into()]),
            ..Default::default()
        };
        let sleeper = docker
            .create_container(None::<qp::CreateContainerOptions>, body)
            .await
            .unwrap()
            .id;
        docker
            .start_container(&sleeper, None::<qp::StartContainerOptions>)
            .await
            .unwrap();
        let exec = docker
            .create_exec(
                &sleeper,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(vec![
                        "sh".into(),
                        "-c".into(),
                        "echo in-exec; exit 7".into(),
                    ]),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id;
        let mut got = String::new();
        match docker.start_exec(&exec, None).await.unwrap() {
            bollard::exec::StartExecResults::Attached { mut output, .. } => {
                while let Some(Ok(m)) = output.next().await {
                    got.push_str(&m.to_string());
                }
            }
            bollard::exec::StartExecResults::Detached => panic!("not attached"),
        }
        assert_eq!(got, "in-exec\n");
        let ei = docker.inspect_exec(&exec).await.unwrap();
        assert_eq!(ei.exit_code, Some(7));
        let top = docker
            .top_processes(&sleeper, None::<qp::TopOptions>)
            .await
            .unwrap();
        assert!(top
            .processes
            .unwrap_or_default()
            .iter()
            .any(|p| p.iter().any(|c| c.contains("sleep"))),);
        let stats: Vec<_> = docker
            .stats(
                &sleeper,
                Some(
                    qp::StatsOptionsBuilder::default()
                        .stream(false)
                        .one_shot(true)
                        .build(),
                ),
            )
            .take(1)
            .try_collect()
            .await
            .unwrap();
        assert!(stats[0].memory_stats.is_some(), "{stats:?}");

        // Attach, hijacked and over a WebSocket, to containers that echo stdin.
        for ws in [false, true] {
            let body = ContainerCreateBody {
                image: Some("busybox".into()),
                cmd: Some(vec!["cat".into()]),
                open_stdin: Some(true),
                stdin_once: Some(true),
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                ..Default::default()
            };
            let cat = docker
                .create_container(None::<qp::CreateContainerOptions>, body)
                .await
                .unwrap()
                .id;
            let opts = qp::AttachContainerOptionsBuilder::default()
                .stdin(true)
                .stdout(true)
                .stream(true)
                .build();
            let mut att = if ws {
                docker
                    .attach_container_websocket(&cat, Some(opts))
                    .await
                    .unwrap()
            } else {
                docker.attach_container(&cat, Some(opts)).await.unwrap()
            };
            docker
                .start_container(&cat, None::<qp::StartContainerOptions>)
                .await
                .unwrap();
            att.input.write_all(b"echoed\n").await.unwrap();
            att.input.flush().await.unwrap();
            let first = tokio::time::timeout(Duration::from_secs(10), att.output.next())
                .await
                .expect("output within 10 s")
                .unwrap()
                .unwrap();
            assert_eq!(first.to_string(), "echoed\n", "websocket: {ws}");
            docker.remove_container(&cat, forced()).await.unwrap();
        }

        // Networks and volumes.
        let net = docker
            .create_network(NetworkCreateRequest {
                name: "bollard-net".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let n = docker
            .inspect_network("bollard-net", None::<qp::InspectNetworkOptions>)
            .await
            .unwrap();
        assert_eq!(n.id, Some(net.id.clone()));
        assert_eq!(n.driver.as_deref(), Some("bridge"));
        docker.remove_network("bollard-net").await.unwrap();
        let vol = docker
            .create_volume(bollard::models::VolumeCreateRequest {
                name: Some("bollard-vol".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(vol.name, "bollard-vol");
        docker
            .remove_volume("bollard-vol", None::<qp::RemoveVolumeOptions>)
            .await
            .unwrap();

        // Removal: gone from the list, and a 404 names it.
        for c in [&id, &sleeper] {
            docker.remove_container(c, forced()).await.unwrap();
        }
        let all = docker
            .list_containers(Some(
                qp::ListContainersOptionsBuilder::default()
                    .all(true)
                    .build(),
            ))
            .await
            .unwrap();
        assert!(all.is_empty(), "{all:?}");
        match docker
            .inspect_container("bollard-one", None::<qp::InspectContainerOptions>)
            .await
        {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code,
                message,
            }) => {
                assert_eq!(status_code, 404, "{message}");
            }
            other => panic!("expected a 404, got {other:?}"),
        }
    });
}
