//! Harness for the runtime integration tests.
//!
//! Entry point: [`Ctx::new`]. A `Ctx` owns one runtime state dir (`--root`)
//! and one temp dir holding every bundle of the test; dropping it force-deletes
//! every container id it handed out, so a failing test leaves nothing behind.
//!
//! The runtime under test is `strato runtime …` (the binary cargo built for
//! this package) unless `STRATO_TEST_RUNTIME` names another runc-compatible
//! binary, e.g. `STRATO_TEST_RUNTIME=/usr/sbin/runc`; the tests then call that
//! binary directly with the same verbs. That is how the tests themselves are
//! checked against the incumbent.
//!
//! Rootfs: `scripts/mkrootfs.sh` builds a busybox rootfs once per test binary
//! run into the cargo target tmp dir; each bundle gets its own `cp -a` copy.
//! Config: [`default_spec`] is a `runc spec`-like config.json that each test
//! mutates (as a `serde_json::Value`) before [`Bundle::write`].
//!
//! The tests need root (they create namespaces, mounts and cgroups). They run
//! as root here and in CI; they are never skipped for lack of it.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long any single runtime command may take before the test fails.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Parent of every container cgroup the tests create (`cgroupsPath` is
/// `/strato-it/<id>`, absolute, so it is the same under every hierarchy).
pub const CGROUP_PARENT: &str = "/strato-it";

// ---------------------------------------------------------------------------
// rootfs cache

/// Path of the cached busybox rootfs, built on first use.
pub fn rootfs_cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("strato-it-rootfs");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mkrootfs.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            out.status.success() && dir.join("bin/busybox").exists(),
            "{} {} failed ({}):\n{}{}",
            script.display(),
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

// ---------------------------------------------------------------------------
// the runtime under test

/// Which binary the tests drive, and how.
#[derive(Debug, Clone)]
pub struct RuntimeBin {
    pub path: PathBuf,
    /// Arguments before the global flags: `["runtime"]` for strato.
    pub prefix: Vec<String>,
    /// True when the binary is strato (some documented behaviour differs
    /// from runc, e.g. refusing a rootfs outside the bundle).
    pub is_strato: bool,
}

pub fn runtime_bin() -> &'static RuntimeBin {
    static BIN: OnceLock<RuntimeBin> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = match std::env::var_os("STRATO_TEST_RUNTIME") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(env!("CARGO_BIN_EXE_strato")),
        };
        let is_strato = path
            .file_name()
            .map(|n| n.to_string_lossy().starts_with("strato"))
            .unwrap_or(false);
        let prefix = if is_strato {
            vec!["runtime".to_string()]
        } else {
            vec![]
        };
        RuntimeBin {
            path,
            prefix,
            is_strato,
        }
    })
}

pub fn is_strato() -> bool {
    runtime_bin().is_strato
}

/// Result of one finished runtime command.
#[derive(Debug)]
pub struct Out {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the full command output unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// Panics unless the command failed (non-zero exit, not a crash).
    #[track_caller]
    pub fn failed(self) -> Self {
        assert!(
            matches!(self.code(), Some(c) if c != 0),
            "command should have failed with a non-zero exit: {self}"
        );
        self
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code_is(self, code: i32) -> Self {
        assert_eq!(self.code(), Some(code), "unexpected exit code: {self}");
        self
    }

    /// Asserts stderr names the problem: it contains (case-insensitively) at
    /// least one of `nouns`.
    #[track_caller]
    pub fn stderr_mentions(self, nouns: &[&str]) -> Self {
        let err = self.stderr.to_lowercase();
        assert!(
            nouns.iter().any(|n| err.contains(&n.to_lowercase())),
            "stderr should mention one of {nouns:?}: {self}"
        );
        self
    }

    /// stdout with surrounding whitespace (and pty `\r`s) removed.
    pub fn out(&self) -> String {
        self.stdout.replace('\r', "").trim().to_string()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.args.join(" "),
            self.status,
            self.stdout,
            self.stderr
        )
    }
}

/// A runtime command running in the background (e.g. a foreground `run`).
pub struct Running {
    args: Vec<String>,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    /// Waits (at most [`CMD_TIMEOUT`]) and collects the output.
    #[track_caller]
    pub fn wait(mut self) -> Out {
        let deadline = Instant::now() + CMD_TIMEOUT;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "`{}` did not finish within {CMD_TIMEOUT:?}; stderr so far:\n{}",
                    self.args.join(" "),
                    read_lossy(&self.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Out {
            args: std::mem::take(&mut self.args),
            status,
            stdout: read_lossy(&self.stdout),
            stderr: read_lossy(&self.stderr),
        }
    }
}

fn read_lossy(p: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(p) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

// ---------------------------------------------------------------------------
// per-test context

/// One test's runtime state dir, bundles and container ids.
pub struct Ctx {
    pub name: String,
    tmp: tempfile::TempDir,
    root: PathBuf,
    seq: Cell<u32>,
    ids: RefCell<Vec<String>>,
}

impl Ctx {
    pub fn new(name: &str) -> Ctx {
        // Bundles live under the target dir rather than /tmp: it is a real
        // disk, the same for every run, and easy to inspect after a failure.
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("strato-it");
        fs::create_dir_all(&base).expect("create test base dir");
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(&base)
            .expect("tempdir");
        let root = tmp.path().join("state");
        fs::create_dir_all(&root).expect("state dir");
        Ctx {
            name: name.to_string(),
            tmp,
            root,
            seq: Cell::new(0),
            ids: RefCell::new(Vec::new()),
        }
    }

    /// The `--root` state dir of this test.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The test's scratch dir (bundles live below it).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// A fresh container id, unique across tests and runs, force-deleted
    /// when the `Ctx` drops.
    pub fn id(&self) -> String {
        let n = self.seq.get();
        self.seq.set(n + 1);
        let id = format!("it-{}-{}-{n}", self.name, std::process::id());
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A bundle for container `id`: its own rootfs copy and a default
    /// config (written by [`Bundle::write`]).
    pub fn bundle(&self, id: &str) -> Bundle {
        let dir = self.tmp.path().join("bundles").join(id);
        fs::create_dir_all(&dir).expect("bundle dir");
        let rootfs = dir.join("rootfs");
        let st = Command::new("cp")
            .arg("-a")
            .arg(rootfs_cache())
            .arg(&rootfs)
            .status()
            .expect("cp -a rootfs");
        assert!(st.success(), "copying the rootfs into {}", rootfs.display());
        Bundle {
            dir,
            config: default_spec(id),
        }
    }

    /// A runtime command with the global flags applied.
    pub fn command(&self, args: &[&str]) -> (Command, Vec<String>) {
        let bin = runtime_bin();
        let mut cmd = Command::new(&bin.path);
        let mut all: Vec<String> = bin.prefix.clone();
        all.push("--root".into());
        all.push(self.root.display().to_string());
        all.extend(args.iter().map(|s| s.to_string()));
        cmd.args(&all);
        let mut shown = vec![bin.path.display().to_string()];
        shown.extend(all);
        (cmd, shown)
    }

    /// Starts a runtime command with stdio going to files (never pipes: a
    /// detached container inherits the runtime's stdio and would keep a pipe
    /// open for its whole life).
    pub fn spawn_in(&self, cwd: Option<&Path>, args: &[&str]) -> Running {
        let (mut cmd, shown) = self.command(args);
        let n = self.seq.get();
        self.seq.set(n + 1);
        let logs = self.tmp.path().join("logs");
        fs::create_dir_all(&logs).expect("logs dir");
        let stdout = logs.join(format!("{n}.out"));
        let stderr = logs.join(format!("{n}.err"));
        cmd.stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"));
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", shown.join(" ")));
        Running {
            args: shown,
            child,
            stdout,
            stderr,
        }
    }

    pub fn spawn(&self, args: &[&str]) -> Running {
        self.spawn_in(None, args)
    }

    /// Runs a runtime command to completion.
    pub fn rt(&self, args: &[&str]) -> Out {
        self.spawn(args).wait()
    }

    /// Runs a runtime command in `cwd`.
    pub fn rt_in(&self, cwd: &Path, args: &[&str]) -> Out {
        self.spawn_in(Some(cwd), args).wait()
    }

    // -- verbs -------------------------------------------------------------

    /// Writes the bundle's config and runs the container in the foreground.
    pub fn run(&self, b: &Bundle, id: &str) -> Out {
        b.write();
        self.rt(&["run", "--bundle", b.path_str(), id])
    }

    /// Shorthand: a fresh container running `sh -c script` in the
    /// foreground with the default config.
    pub fn sh(&self, script: &str) -> Out {
        let id = self.id();
        let mut b = self.bundle(&id);
        b.sh(script);
        self.run(&b, &id)
    }

    /// Writes the bundle's config and creates the container.
    pub fn create(&self, b: &Bundle, id: &str) -> Out {
        b.write();
        self.rt(&["create", "--bundle", b.path_str(), id])
    }

    /// Creates and starts a container; panics on failure.
    pub fn create_start(&self, b: &Bundle, id: &str) {
        self.create(b, id).ok();
        self.rt(&["start", id]).ok();
    }

    pub fn state(&self, id: &str) -> Value {
        self.rt(&["state", id]).ok().json()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .expect("state.status is a string")
            .to_string()
    }

    pub fn pid(&self, id: &str) -> i32 {
        let st = self.state(id);
        st["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("state.pid is not a number: {st}")) as i32
    }

    /// Polls `state` until the status is `want` (at most 10 s).
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.status(id);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} stayed {got:?}, wanted {want:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ids printed by `list -q`.
    pub fn list_ids(&self) -> Vec<String> {
        self.rt(&["list", "-q"])
            .ok()
            .stdout
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Asserts nothing of container `id` is left: no state dir, no cgroup
    /// dir under any hierarchy, and (if given) no process with that pid.
    #[track_caller]
    pub fn assert_gone(&self, id: &str, pid: Option<i32>) {
        // Whatever the runtime's layout, nothing under --root may still be
        // named after the container.
        for p in entries_under(&self.root, 3) {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            assert!(
                !(name == id || name.starts_with(&format!("{id}."))),
                "state {} left behind for {id}",
                p.display()
            );
        }
        for d in cgroup_dirs(&cgroups_path(id)) {
            assert!(!d.exists(), "cgroup {} left behind for {id}", d.display());
        }
        if let Some(pid) = pid {
            // The runtime may still be reaping; give the kernel a moment.
            let proc = PathBuf::from(format!("/proc/{pid}"));
            let deadline = Instant::now() + Duration::from_secs(5);
            while proc_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                !proc_alive(pid),
                "process {pid} of {id} still alive ({})",
                proc.display()
            );
        }
        assert!(
            !self.list_ids().iter().any(|l| l == id),
            "{id} still listed by `list -q`"
        );
    }

    /// Force-deletes `id` (in case the runtime accepted what it was given)
    /// and checks that nothing of it remains and the state root is empty.
    #[track_caller]
    pub fn assert_state_root_empty_after_cleanup(&self, id: &str) {
        let _ = self.rt(&["delete", "--force", id]);
        self.assert_gone(id, None);
        self.assert_state_root_empty();
    }

    /// Asserts the state root holds no container at all.
    #[track_caller]
    pub fn assert_state_root_empty(&self) {
        let left: Vec<_> = fs::read_dir(&self.root)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "state root {} not empty: {left:?}",
            self.root.display()
        );
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let mut ids: Vec<String> = self.ids.borrow().clone();
        // Anything else the runtime knows about in our private root, too.
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !ids.contains(&n) {
                    ids.push(n);
                }
            }
        }
        for id in ids {
            // Unconditionally: the runtime's state layout is its own business.
            let (mut cmd, _) = self.command(&["delete", "--force", &id]);
            let _ = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // Last resort for a runtime that lost track of its cgroups:
            // kill what is left in them and remove the dirs, so one broken
            // test does not poison the next run.
            for d in cgroup_dirs(&cgroups_path(&id)) {
                if d.exists() {
                    kill_cgroup(&d);
                    let _ = fs::remove_dir(&d);
                }
            }
        }
    }
}

/// Every path below `dir`, at most `depth` levels deep (symlinks not
/// followed).
fn entries_under(dir: &Path, depth: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if depth == 0 {
        return out;
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(entries_under(&p, depth - 1));
            }
            out.push(p);
        }
    }
    out
}

fn kill_cgroup(dir: &Path) {
    for _ in 0..50 {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<&str> = procs.split_whitespace().collect();
        if pids.is_empty() {
            return;
        }
        for p in pids {
            let _ = Command::new("kill").args(["-9", p]).status();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn proc_alive(pid: i32) -> bool {
    // A zombie still has a /proc entry; count it as gone only once reaped,
    // but a zombie whose parent is the test (it never is) would hang here.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // Field 3 is the state; after the `)` of the comm.
            let st = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            !st.starts_with('Z') && !st.starts_with('X')
        }
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------
// bundles and config

pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    pub fn path_str(&self) -> &str {
        self.dir.to_str().expect("utf-8 bundle path")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Sets `process.args`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Sets `process.args` to `sh -c script`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Sets the value at a JSON pointer, creating missing objects on the way.
    pub fn set(&mut self, pointer: &str, v: Value) -> &mut Self {
        set_pointer(&mut self.config, pointer, v);
        self
    }

    /// Appends a mount.
    pub fn mount(&mut self, m: Value) -> &mut Self {
        self.config["mounts"]
            .as_array_mut()
            .expect("mounts array")
            .push(m);
        self
    }

    /// Bind-mounts host dir `src` read-write at `dest` in the container.
    pub fn bind(&mut self, src: &Path, dest: &str) -> &mut Self {
        self.mount(json!({
            "destination": dest,
            "type": "bind",
            "source": src,
            "options": ["rbind", "rw"],
        }))
    }

    /// Writes `config.json`.
    pub fn write(&self) {
        fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("serialize config"),
        )
        .expect("write config.json");
    }

    /// Writes `config.json` with raw text (for malformed-config tests).
    pub fn write_raw(&self, text: &str) {
        fs::write(self.dir.join("config.json"), text).expect("write config.json");
    }
}

pub fn set_pointer(root: &mut Value, pointer: &str, v: Value) {
    assert!(pointer.starts_with('/'), "JSON pointer must start with /");
    let parts: Vec<&str> = pointer[1..].split('/').collect();
    set_parts(root, &parts, v);
}

fn set_parts(cur: &mut Value, parts: &[&str], v: Value) {
    let (head, rest) = (parts[0], &parts[1..]);
    if let (Some(arr), Ok(idx)) = (cur.as_array_mut(), head.parse::<usize>()) {
        if rest.is_empty() {
            if idx < arr.len() {
                arr[idx] = v;
            } else {
                arr.push(v);
            }
        } else {
            set_parts(&mut arr[idx], rest, v);
        }
        return;
    }
    if !cur.is_object() {
        *cur = json!({});
    }
    let obj = cur.as_object_mut().expect("object");
    if rest.is_empty() {
        obj.insert(head.to_string(), v);
    } else {
        set_parts(
            obj.entry(head.to_string()).or_insert_with(|| json!({})),
            rest,
            v,
        );
    }
}

/// `cgroupsPath` used for container `id`.
pub fn cgroups_path(id: &str) -> String {
    format!("{CGROUP_PARENT}/{id}")
}

pub const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

pub const DEFAULT_HOSTNAME: &str = "strato-it";

/// A `runc spec`-like default config for container `id`, rootless features
/// off, terminal off, running `sh`.
pub fn default_spec(id: &str) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
            },
            "rlimits": [
                { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }
            ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": DEFAULT_HOSTNAME,
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "cgroupsPath": cgroups_path(id),
            "resources": {
                "devices": [ { "allow": false, "access": "rwm" } ]
            },
            "namespaces": [
                { "type": "pid" },
                { "type": "network" },
                { "type": "ipc" },
                { "type": "uts" },
                { "type": "mount" },
                { "type": "cgroup" }
            ],
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger"
            ]
        }
    })
}

// ---------------------------------------------------------------------------
// host-side cgroup inspection

pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Every directory a container with `cgroups_path` may own on this host.
pub fn cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    if cgroup_v2() {
        return vec![Path::new("/sys/fs/cgroup").join(rel)];
    }
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let p = e.path();
            // Only real hierarchy mounts (skip symlinks such as cpu,cpuacct).
            if p.is_dir() && !e.file_type().map(|t| t.is_symlink()).unwrap_or(true) {
                v.push(p.join(rel));
            }
        }
    }
    v
}

/// Host path of a cgroup interface file of container `id`: `v1` is
/// (controller, file) for cgroup v1, `v2` the file name for the unified
/// hierarchy.
pub fn cgroup_file(id: &str, v1: (&str, &str), v2: &str) -> PathBuf {
    let rel = cgroups_path(id);
    let rel = rel.trim_start_matches('/');
    if cgroup_v2() {
        Path::new("/sys/fs/cgroup").join(rel).join(v2)
    } else {
        Path::new("/sys/fs/cgroup").join(v1.0).join(rel).join(v1.1)
    }
}

#[track_caller]
pub fn read_cgroup_file(id: &str, v1: (&str, &str), v2: &str) -> String {
    let p = cgroup_file(id, v1, v2);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// True when the host can account swap (cgroup v1 memsw / v2 swap.max), so
/// a memory test must also cap swap to get an OOM kill rather than paging.
pub fn host_has_swap() -> bool {
    fs::read_to_string("/proc/swaps")
        .map(|s| s.lines().count() > 1)
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// capabilities

/// Linux capability numbers by OCI name.
pub fn cap_number(name: &str) -> u32 {
    const CAPS: [&str; 41] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let short = name.trim_start_matches("CAP_");
    CAPS.iter()
        .position(|c| *c == short)
        .unwrap_or_else(|| panic!("unknown capability {name}")) as u32
}

pub fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0u64, |m, n| m | (1u64 << cap_number(n)))
}

/// Parses a `Name:\tvalue` field out of `/proc/<pid>/status` text.
pub fn status_field<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

// ---------------------------------------------------------------------------
// console socket

/// Accepts one connection on a `--console-socket` listener and receives the
/// pty master the runtime sends over it (SCM_RIGHTS). Errors say what went
/// wrong, for the caller to show next to the runtime's own output.
pub fn recv_console(
    listener: &std::os::unix::net::UnixListener,
) -> Result<std::os::fd::OwnedFd, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::io::IoSliceMut;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let deadline = Instant::now() + CMD_TIMEOUT;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err("the runtime never connected to the console socket".into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("accept on console socket: {e}")),
        }
    };
    stream.set_nonblocking(false).expect("blocking stream");
    stream
        .set_read_timeout(Some(CMD_TIMEOUT))
        .expect("read timeout");
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("recvmsg on console socket: {e}"))?;
    let bytes = msg.bytes;
    for c in msg.cmsgs().map_err(|e| format!("control messages: {e}"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                for extra in &fds[1..] {
                    // SAFETY: the kernel just installed these fds for us and
                    // nothing else owns them.
                    drop(unsafe { OwnedFd::from_raw_fd(*extra) });
                }
                // SAFETY: as above; this fd is ours alone from here on.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(format!(
        "the console socket message ({bytes} bytes) carried no file descriptor"
    ))
}

/// Reads a pty master until the slave side is closed everywhere (EIO) or
/// `timeout` passes; returns what was read.
pub fn read_pty(master: std::fs::File, timeout: Duration) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut master = master;
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(all);
    });
    let bytes = rx.recv_timeout(timeout).unwrap_or_default();
    String::from_utf8_lossy(&bytes).replace('\r', "")
}

/// Stops a test daemon: SIGTERM, then SIGKILL after 10 s.
pub fn stop_daemon(child: Option<Child>) {
    let Some(mut child) = child else { return };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Removes what a stopped test daemon may leave behind: its supervisor, its
/// bridge and nft table, and mounts under its directory (container root
/// filesystems of a failed test).
/// Deletes a link when dropped, if it is still there (a user network's
/// bridge a failed test did not remove).
pub struct LinkGuard(pub String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if Path::new("/sys/class/net").join(&self.0).exists() {
            let _ = Command::new("ip")
                .args(["link", "del", &self.0])
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub fn clean_daemon_leftovers(exec_root: &Path, bridge: &str, table: &str, dir: &Path) {
    if let Ok(mut c) = strato_supervisor::Client::connect(&exec_root.join("supervisor")) {
        if let Ok(pid) = c.ping() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let _ = Command::new("ip")
        .args(["link", "del", bridge])
        .stderr(Stdio::null())
        .status();
    for family in ["ip", "ip6"] {
        let _ = Command::new("nft")
            .args(["delete", "table", family, table])
            .stderr(Stdio::null())
            .status();
    }
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.display().to_string();
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|t| t.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = nix::mount::umount2(t, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Runs `c` (stdout and stderr to files in `dir`, `input` on stdin) for at
/// most `timeout`; past it the command is killed and the test fails with
/// `what`'s name and `context()` (e.g. the daemon's log).
pub fn run_bounded(
    mut c: Command,
    dir: &Path,
    what: &str,
    args: &[&str],
    input: Option<&[u8]>,
    timeout: Duration,
    context: impl FnOnce() -> String,
) -> Out {
    use std::io::Write;
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let k = N.fetch_add(1, Ordering::SeqCst);
    let (o, e) = (dir.join(format!("out.{k}")), dir.join(format!("err.{k}")));
    c.stdout(File::create(&o).unwrap())
        .stderr(File::create(&e).unwrap())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = c.spawn().unwrap_or_else(|e| panic!("run {what}: {e}"));
    if let Some(data) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(data).unwrap();
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} {} did not finish within {timeout:?}{}",
                args.join(" "),
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read = |p: &Path| {
        let mut s = String::new();
        let _ = File::open(p).and_then(|mut f| f.read_to_string(&mut s));
        let _ = fs::remove_file(p);
        s
    };
    Out {
        args: args.iter().map(|s| s.to_string()).collect(),
        status,
        stdout: read(&o),
        stderr: read(&e),
    }
}

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
