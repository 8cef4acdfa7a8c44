//! Integration tests on the real `/sys/fs/cgroup` of the machine.
//!
//! They need root (CI runs as root) and are never skipped. Each test uses a
//! cgroup named after the test process id and the test, so tests running in
//! parallel (and concurrent runs) do not clash; a guard kills the children
//! and destroys the cgroup even when an assertion fails.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;
use serde_json::json;
use strato_cgroups::{detect, Hierarchy, Manager, Stats, Version};

const ROOT: &str = "/sys/fs/cgroup";
const MIB: i64 = 1024 * 1024;

/// Owns the test's cgroup and children; cleans both up on drop.
struct Guard {
    mgr: Manager,
    children: Vec<Child>,
}

impl Guard {
    fn new(test: &str) -> Self {
        let hierarchy = detect(Path::new(ROOT)).expect("detect cgroup layout");
        let path = format!("/strato-test-{}-{test}", std::process::id());
        let mgr = Manager::new(&hierarchy, Path::new(&path)).expect("manager");
        mgr.create().expect("create cgroup");
        Self {
            mgr,
            children: Vec::new(),
        }
    }

    /// Spawns `sh -c script` with piped stdin and moves it into the cgroup.
    fn spawn(&mut self, script: &str) -> i32 {
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        self.children.push(child);
        self.mgr.add_task(pid).expect("add task");
        pid
    }

    fn file(&self, controller: &str, file: &str) -> String {
        let dir = self.mgr.path(controller).expect("controller dir");
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
            .trim()
            .to_owned()
    }

    fn dirs(&self) -> Vec<PathBuf> {
        self.mgr.paths().iter().map(|d| d.path.clone()).collect()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.mgr.destroy();
    }
}

fn resources(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).expect("resources json")
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn detect_finds_the_hosts_layout() {
    let h = detect(Path::new(ROOT)).unwrap();
    match &h {
        Hierarchy::V1 { mounts, unified } => {
            for c in [
                "memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "devices",
            ] {
                let m = h.v1_mount(c).unwrap_or_else(|| panic!("{c} not found"));
                assert!(m.mount_point.starts_with(ROOT));
                assert!(m.mount_point.join("cgroup.procs").exists());
            }
            assert!(mounts.iter().all(|m| !m.controllers.is_empty()));
            if let Some(u) = unified {
                assert!(u.join("cgroup.procs").exists());
            }
        }
        Hierarchy::V2 { mount_point } => {
            assert!(mount_point.join("cgroup.controllers").exists());
        }
    }
    // Not a cgroup filesystem and no cgroup mounts below it.
    assert!(detect(Path::new("/proc/self")).is_err());
}

#[test]
fn full_lifecycle_limits_tasks_stats_freeze_kill_destroy() {
    let mut g = Guard::new("life");
    for d in g.dirs() {
        assert!(d.is_dir(), "{} not created", d.display());
    }

    let v1 = g.mgr.version() == Version::V1;
    let swap_file = if v1 {
        "memory.memsw.limit_in_bytes"
    } else {
        "memory.swap.max"
    };
    let has_swap = g.mgr.path("memory").unwrap().join(swap_file).exists();
    let mut mem = json!({"limit": 64 * MIB, "reservation": 32 * MIB});
    if has_swap {
        mem["swap"] = json!(128 * MIB);
    }
    g.mgr
        .apply(&resources(json!({
            "memory": mem,
            "pids": {"limit": 20},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}
        })))
        .unwrap();

    if v1 {
        assert_eq!(
            g.file("memory", "memory.limit_in_bytes"),
            (64 * MIB).to_string()
        );
        assert_eq!(
            g.file("memory", "memory.soft_limit_in_bytes"),
            (32 * MIB).to_string()
        );
        if has_swap {
            assert_eq!(g.file("memory", swap_file), (128 * MIB).to_string());
        }
        assert_eq!(g.file("cpu", "cpu.shares"), "512");
        assert_eq!(g.file("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(g.file("cpu", "cpu.cfs_period_us"), "100000");
    } else {
        assert_eq!(g.file("memory", "memory.max"), (64 * MIB).to_string());
        assert_eq!(g.file("memory", "memory.low"), (32 * MIB).to_string());
        if has_swap {
            assert_eq!(g.file("memory", swap_file), (64 * MIB).to_string());
        }
        assert_eq!(g.file("cpu", "cpu.weight"), "20");
        assert_eq!(g.file("cpu", "cpu.max"), "50000 100000");
    }
    assert_eq!(g.file("pids", "pids.max"), "20");
    assert_eq!(g.file("cpuset", "cpuset.cpus"), "0");
    assert_eq!(g.file("cpuset", "cpuset.mems"), "0");

    // The shell waits for a line, then execs sleep: the exec allocates
    // inside the cgroup, so memory and cpu usage become visible.
    let pid = g.spawn("read line; exec sleep 30");
    assert_eq!(g.mgr.pids().unwrap(), [pid]);
    for d in g.mgr.paths() {
        let procs = std::fs::read_to_string(d.path.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "{pid} not in {}",
            d.path.display()
        );
    }
    let stdin = g.children[0].stdin.as_mut().unwrap();
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();

    let mut stats = Stats::default();
    wait_for("memory and cpu usage", || {
        stats = g.mgr.stats().unwrap();
        stats.memory.usage.usage > 0 && stats.cpu.usage.total > 0
    });
    assert_eq!(stats.memory.usage.limit, 64 * MIB as u64);
    assert!(stats.pids.current >= 1, "{stats:?}");
    assert_eq!(stats.pids.limit, 20);
    assert!(!stats.memory.stats.is_empty());
    if v1 {
        assert!(!stats.cpu.usage.percpu.is_empty());
    }
    let json = serde_json::to_value(&stats).unwrap();
    assert!(json.pointer("/cpu/throttling/throttled_periods").is_some());

    g.mgr.freeze(true).unwrap();
    if v1 {
        assert_eq!(g.file("freezer", "freezer.state"), "FROZEN");
    } else {
        assert!(g.file("", "cgroup.events").contains("frozen 1"));
    }
    g.mgr.freeze(false).unwrap();
    if v1 {
        assert_eq!(g.file("freezer", "freezer.state"), "THAWED");
    } else {
        assert!(g.file("", "cgroup.events").contains("frozen 0"));
    }

    g.mgr.kill_all(Signal::SIGKILL).unwrap();
    let status = g.children[0].wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    wait_for("empty cgroup", || g.mgr.pids().unwrap().is_empty());

    g.mgr.destroy().unwrap();
    for d in g.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn kill_all_delivers_a_signal_to_every_process() {
    let mut g = Guard::new("killall");
    let a = g.spawn("exec sleep 30");
    let b = g.spawn("exec sleep 30");
    wait_for("both processes", || {
        let mut pids = g.mgr.pids().unwrap();
        pids.sort();
        let mut want = vec![a, b];
        want.sort();
        pids == want
    });
    g.mgr.kill_all(Signal::SIGTERM).unwrap();
    for c in &mut g.children {
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGTERM));
    }
    g.mgr.destroy().unwrap();
}

#[test]
fn destroy_waits_for_exiting_processes() {
    let mut g = Guard::new("exiting");
    let pid = g.spawn("exec sleep 30");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    // Not reaped yet: the cgroup may be busy for a moment.
    g.mgr.destroy().unwrap();
    for d in g.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    let _ = g.children[0].wait();
}

#[test]
fn refused_value_names_file_and_value() {
    let g = Guard::new("refused");
    let err = g
        .mgr
        .apply(&resources(json!({"cpu": {"cpus": "4097"}})))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cpuset.cpus") && msg.contains("4097"), "{msg}");
}

#[test]
fn device_rules_reach_the_kernel_on_v1() {
    let g = Guard::new("devices");
    g.mgr
        .apply(&resources(json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"},
            {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
            {"allow": false, "type": "c", "major": 5, "minor": 2, "access": "m"}
        ]})))
        .unwrap();
    if g.mgr.version() == Version::V1 {
        let list = g.file("devices", "devices.list");
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines, ["c 1:3 rwm", "c 136:* rw", "c 5:2 rw"], "{list}");
    }
}

#[test]
fn nested_cgroups_are_removed_with_the_container() {
    let g = Guard::new("nested");
    let inner = g.dirs()[0].join("inner");
    std::fs::create_dir(&inner).unwrap();
    g.mgr.destroy().unwrap();
    assert!(!inner.exists());
    for d in g.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

/// Exercises the v2 code paths (cgroup.freeze/cgroup.events, cgroup.kill,
/// cpu.stat) against a real cgroup2 even on a hybrid host: a directory of
/// our own inside the cgroup2 mount stands in for the v2 root, so nothing of
/// the host's own root cgroup (its subtree_control) is touched.
#[test]
fn v2_paths_on_a_real_cgroup2() {
    let base = match detect(Path::new(ROOT)).unwrap() {
        Hierarchy::V1 {
            unified: Some(u), ..
        } => u,
        Hierarchy::V2 { mount_point } => mount_point,
        // A pure v1 host has no cgroup2 at all; the v1 tests above cover it.
        Hierarchy::V1 { unified: None, .. } => return,
    };
    let fake_root = base.join(format!("strato-test-{}-v2root", std::process::id()));
    std::fs::create_dir(&fake_root).unwrap();
    struct RootGuard(PathBuf);
    impl Drop for RootGuard {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _root_guard = RootGuard(fake_root.clone());

    let h = Hierarchy::V2 {
        mount_point: fake_root.clone(),
    };
    let mgr = Manager::new(&h, Path::new("/c1")).unwrap();
    let mut g = Guard {
        mgr,
        children: Vec::new(),
    };
    g.mgr.create().unwrap();
    assert_eq!(g.mgr.version(), Version::V2);
    let pid = g.spawn("exec sleep 30");
    let other = g.spawn("exec sleep 30");
    let mut pids = g.mgr.pids().unwrap();
    pids.sort();
    assert_eq!(pids, {
        let mut v = vec![pid, other];
        v.sort();
        v
    });

    g.mgr.freeze(true).unwrap();
    assert!(g.file("", "cgroup.events").contains("frozen 1"));
    g.mgr.freeze(false).unwrap();
    assert!(g.file("", "cgroup.events").contains("frozen 0"));

    // Controllers may be absent here: their files read as zeros, not errors.
    g.mgr.stats().unwrap();

    g.mgr.kill_all(Signal::SIGTERM).unwrap();
    assert_eq!(g.children[0].wait().unwrap().signal(), Some(libc::SIGTERM));
    assert_eq!(g.children[1].wait().unwrap().signal(), Some(libc::SIGTERM));

    let last = g.spawn("exec sleep 30");
    assert_eq!(g.mgr.pids().unwrap(), [last]);
    g.mgr.kill_all(Signal::SIGKILL).unwrap();
    assert_eq!(g.children[2].wait().unwrap().signal(), Some(libc::SIGKILL));

    g.mgr.destroy().unwrap();
    assert!(!fake_root.join("c1").exists());
}

/// Containers under a common parent: the first creates the parent, the next
/// ones one directory each. On v1 the parent's cpuset hands cpus and mems to
/// each new child at mkdir, and a child with a task leaves with its rmdir.
#[test]
fn siblings_under_a_new_parent_get_cpusets_and_go() {
    let hierarchy = detect(Path::new(ROOT)).unwrap();
    let parent = format!("/strato-test-{}-siblings", std::process::id());
    let a = Manager::new(&hierarchy, Path::new(&format!("{parent}/a"))).unwrap();
    let b = Manager::new(&hierarchy, Path::new(&format!("{parent}/b"))).unwrap();
    a.create().unwrap();
    b.create().unwrap();
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    b.add_task(pid).unwrap();
    let parent_dirs: Vec<PathBuf> = a
        .paths()
        .iter()
        .map(|d| d.path.as_path())
        .chain(a.unified_path())
        .map(|p| p.parent().unwrap().to_owned())
        .collect();
    if let Some(cpuset) = a.path("cpuset").filter(|_| a.version() == Version::V1) {
        let parent = cpuset.parent().unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap().trim().to_owned();
        assert_eq!(read(&parent.join("cgroup.clone_children")), "1");
        let cpus = read(&parent.join("cpuset.cpus"));
        assert!(!cpus.is_empty());
        let b_dir = b.path("cpuset").unwrap();
        assert_eq!(read(&b_dir.join("cpuset.cpus")), cpus);
        assert_eq!(
            read(&b_dir.join("cpuset.mems")),
            read(&parent.join("cpuset.mems"))
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    a.destroy().unwrap();
    b.destroy().unwrap();
    for d in a.paths().iter().chain(b.paths()) {
        assert!(!d.path.exists(), "{} left", d.path.display());
    }
    for p in parent_dirs {
        std::fs::remove_dir(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}
