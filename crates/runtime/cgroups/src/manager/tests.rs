//! Manager logic on a temporary directory laid out like a cgroup tree.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;
use serde_json::json;
use tempfile::TempDir;

use super::*;
use crate::fake::TreeIo;
use crate::V1Mount;

struct Fixture {
    tmp: TempDir,
    io: Arc<TreeIo>,
    mgr: Manager,
}

impl Fixture {
    fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Adds files the kernel would create in the container's cgroup.
    fn kernel_file(&self, controller: &str, file: &str, content: &str) {
        let dir = self.mgr.path(controller).unwrap();
        fs::write(dir.join(file), content).unwrap();
    }

    fn read(&self, controller: &str, file: &str) -> String {
        fs::read_to_string(self.mgr.path(controller).unwrap().join(file)).unwrap()
    }
}

/// A v1 hybrid tree: cpu and cpuacct co-mounted, a named systemd hierarchy
/// and an empty unified cgroup2.
fn v1(cgroups_path: &str) -> Fixture {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path();
    let groups: &[&[&str]] = &[
        &["cpu", "cpuacct"],
        &["cpuset"],
        &["memory"],
        &["devices"],
        &["freezer"],
        &["pids"],
        &["blkio"],
        &["name=systemd"],
    ];
    let mut mounts = Vec::new();
    for g in groups {
        let name = g.join(",").replace("name=", "");
        let mp = root.join(name);
        fs::create_dir(&mp).unwrap();
        mounts.push(V1Mount {
            mount_point: mp,
            root: "/".into(),
            controllers: g.iter().map(|s| s.to_string()).collect(),
        });
    }
    fs::write(root.join("cpuset/cpuset.cpus"), "0-3\n").unwrap();
    fs::write(root.join("cpuset/cpuset.mems"), "0\n").unwrap();
    fs::create_dir(root.join("unified")).unwrap();
    let h = Hierarchy::V1 {
        mounts,
        unified: Some(root.join("unified")),
    };
    let io = Arc::new(TreeIo::new());
    let mgr = Manager::with_io(&h, Path::new(cgroups_path), io.clone()).unwrap();
    Fixture { tmp, io, mgr }
}

/// A v2 tree whose root offers cpu, memory, pids and cpuset.
fn v2(cgroups_path: &str) -> Fixture {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path();
    fs::write(root.join("cgroup.controllers"), "cpuset cpu memory pids\n").unwrap();
    fs::write(root.join("cgroup.subtree_control"), "cpu\n").unwrap();
    let h = Hierarchy::V2 {
        mount_point: root.to_owned(),
    };
    let io = Arc::new(TreeIo::new());
    let mgr = Manager::with_io(&h, Path::new(cgroups_path), io.clone()).unwrap();
    Fixture { tmp, io, mgr }
}

fn resources(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).unwrap()
}

fn names(writes: &[(PathBuf, String)]) -> Vec<(String, String)> {
    writes
        .iter()
        .map(|(p, v)| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            (n, v.clone())
        })
        .collect()
}

#[test]
fn rejects_parent_components() {
    let h = Hierarchy::V2 {
        mount_point: "/sys/fs/cgroup".into(),
    };
    let err = Manager::new(&h, Path::new("/strato/../../etc")).unwrap_err();
    assert!(err.to_string().contains("/strato/../../etc"), "{err}");
    assert!(Manager::new(&h, Path::new("/")).is_err());
}

#[test]
fn enter_moves_the_current_thread_without_the_global_lock() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    f.mgr.enter().unwrap();
    assert_eq!(f.io.writes_to("tasks").len(), 8);
    assert!(f.io.writes_to("tasks").iter().all(|v| v == "0"));
    assert!(f.io.writes_to("cgroup.procs").is_empty());
    let g = v2("strato/c1");
    g.mgr.create().unwrap();
    g.mgr.enter().unwrap();
    assert_eq!(g.io.writes_to("cgroup.procs"), vec!["0".to_string()]);
}

#[test]
fn paths_cover_every_hierarchy() {
    let f = v1("/strato/c1");
    let paths = f.mgr.paths();
    // The hybrid host's controller-less unified mount is not used.
    assert_eq!(paths.len(), 8);
    assert_eq!(f.mgr.version(), Version::V1);
    assert_eq!(f.mgr.cgroups_path(), Path::new("strato/c1"));
    let cpu = f.mgr.path("cpuacct").unwrap();
    assert_eq!(cpu, f.root().join("cpu,cpuacct/strato/c1"));
    assert_eq!(f.mgr.path("cpu"), Some(cpu));
    assert_eq!(
        f.mgr.path("name=systemd").unwrap(),
        f.root().join("systemd/strato/c1")
    );
    assert!(f.mgr.path("hugetlb").is_none());
    assert!(!paths.iter().any(|d| d.unified));

    let g = v2("strato/c1");
    assert_eq!(g.mgr.paths().len(), 1);
    assert_eq!(g.mgr.path("memory").unwrap(), g.root().join("strato/c1"));
    assert_eq!(g.mgr.version(), Version::V2);
}

#[test]
fn create_makes_every_directory_and_inherits_cpuset() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    for d in f.mgr.paths() {
        assert!(d.path.is_dir(), "{}", d.path.display());
    }
    // Both levels got the parent's cpuset, which the kernel leaves empty.
    for level in ["cpuset/strato", "cpuset/strato/c1"] {
        let dir = f.root().join(level);
        assert_eq!(fs::read_to_string(dir.join("cpuset.cpus")).unwrap(), "0-3");
        assert_eq!(fs::read_to_string(dir.join("cpuset.mems")).unwrap(), "0");
    }
    // Idempotent, and a non-empty value is not overwritten.
    fs::write(f.root().join("cpuset/strato/c1/cpuset.cpus"), "1").unwrap();
    f.mgr.create().unwrap();
    assert_eq!(f.read("cpuset", "cpuset.cpus"), "1");
}

#[test]
fn an_empty_cpuset_parent_made_by_someone_else_is_filled_first() {
    // A pod cgroup made with mkdir in every hierarchy: its cpuset is empty,
    // and a container in it could not be entered (ENOSPC).
    let f = v1("/pod/c1");
    for d in f.mgr.paths() {
        fs::create_dir(d.path.parent().unwrap()).unwrap();
    }
    fs::write(f.root().join("cpuset/pod/cpuset.cpus"), "").unwrap();
    f.mgr.create().unwrap();
    for level in ["cpuset/pod", "cpuset/pod/c1"] {
        let dir = f.root().join(level);
        assert_eq!(fs::read_to_string(dir.join("cpuset.cpus")).unwrap(), "0-3");
        assert_eq!(fs::read_to_string(dir.join("cpuset.mems")).unwrap(), "0");
    }
}

#[test]
fn a_create_with_spares_renames_one_into_place_in_each_v1_hierarchy() {
    let f = v1("/strato/c1");
    // No parent yet: no spares, and nothing made at the hierarchy roots.
    assert_eq!(f.mgr.make_spares(), 0);
    f.mgr.create().unwrap();
    assert_eq!(f.mgr.make_spares(), 8 * SPARES);
    // Those there are not made twice.
    assert_eq!(f.mgr.make_spares(), 0);
    let spare = |h: &str, k: usize| f.root().join(format!("{h}/strato/{SPARE_PREFIX}{k}"));
    // Made as a create makes a cgroup: cpuset inherited.
    assert_eq!(
        fs::read_to_string(spare("cpuset", 0).join("cpuset.cpus")).unwrap(),
        "0-3"
    );
    let h = Hierarchy::V1 {
        mounts: f
            .mgr
            .paths()
            .iter()
            .map(|d| V1Mount {
                mount_point: d.mount_point.clone(),
                root: "/".into(),
                controllers: d.controllers.clone(),
            })
            .collect(),
        unified: Some(f.root().join("unified")),
    };
    let with = |id: &str, on: bool| {
        Manager::with_io(&h, Path::new(&format!("/strato/{id}")), f.io.clone())
            .unwrap()
            .with_spares(on)
    };
    // Without spares asked for, a create leaves them alone.
    with("c2", false).create().unwrap();
    assert!(spare("memory", 0).is_dir());
    // With: the first one left is taken, in every hierarchy.
    fs::write(spare("memory", 0).join("mark"), "").unwrap();
    let c3 = with("c3", true);
    c3.create().unwrap();
    assert!(f.root().join("memory/strato/c3/mark").is_file());
    for d in c3.paths() {
        assert!(d.path.is_dir());
        assert!(!d
            .mount_point
            .join(format!("strato/{SPARE_PREFIX}0"))
            .exists());
    }
    assert!(f.root().join("unified/strato/c3").is_dir());
    // The next takes the next; once they are gone, it makes its own.
    with("c4", true).create().unwrap();
    assert!(!spare("pids", 1).exists() && spare("pids", 2).is_dir());
    for id in ["c5", "c6", "c7"] {
        with(id, true).create().unwrap();
    }
    assert!(f.root().join("pids/strato/c7").is_dir());
    assert!((0..SPARES).all(|k| !spare("pids", k).exists()));
    // An existing cgroup keeps its name: the spares stay.
    assert_eq!(f.mgr.make_spares(), 8 * SPARES);
    with("c7", true).create().unwrap();
    assert!((0..SPARES).all(|k| spare("pids", k).is_dir()));
}

#[test]
fn cgroup2_has_no_spares() {
    let g = v2("strato/c1");
    g.mgr.create().unwrap();
    assert_eq!(g.mgr.make_spares(), 0);
    g.mgr.clone().with_spares(true).create().unwrap();
}

#[test]
fn create_fails_naming_the_directory() {
    let f = v1("/strato/c1");
    fs::remove_dir(f.root().join("memory")).unwrap();
    let err = f.mgr.create().unwrap_err();
    assert!(err.to_string().contains("memory/strato"), "{err}");
}

#[test]
fn v2_create_enables_controllers_in_ancestors_only() {
    let f = v2("/strato/c1");
    f.mgr.create().unwrap();
    let sc: Vec<_> =
        f.io.writes()
            .into_iter()
            .filter(|(p, _)| p.ends_with("cgroup.subtree_control"))
            .map(|(p, v)| (p.parent().unwrap().to_owned(), v))
            .collect();
    let root = f.root().to_owned();
    // The root already had cpu; the intermediate "strato" gets all four
    // (in the fake its cgroup.controllers is missing, so nothing there).
    assert_eq!(
        sc,
        [
            (root.clone(), "+cpuset".to_owned()),
            (root.clone(), "+memory".to_owned()),
            (root, "+pids".to_owned()),
        ]
    );
    assert!(f.root().join("strato/c1").is_dir());
}

#[test]
fn v2_refused_controller_is_not_fatal() {
    let f = v2("/strato/c1");
    f.io.refuse("cgroup.subtree_control", Errno::EBUSY);
    f.mgr.create().unwrap();
    assert!(f.root().join("strato/c1").is_dir());
}

#[test]
fn add_task_writes_every_hierarchy() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    f.mgr.add_task(4242).unwrap();
    for d in f.mgr.paths() {
        assert_eq!(
            fs::read_to_string(d.path.join("cgroup.procs")).unwrap(),
            "4242"
        );
    }
    assert!(f.mgr.add_task(0).is_err());
    assert!(f.mgr.add_task(-1).is_err());
}

#[test]
fn pids_parses_cgroup_procs() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    f.kernel_file("freezer", "cgroup.procs", "12\n13\n\n0\n");
    assert_eq!(f.mgr.pids().unwrap(), [12, 13]);
    let g = v2("c2");
    g.mgr.create().unwrap();
    g.kernel_file("", "cgroup.procs", "7\n");
    assert_eq!(g.mgr.pids().unwrap(), [7]);
}

#[test]
fn v1_memory_with_swap_growing_writes_memsw_first() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    f.kernel_file("memory", "memory.limit_in_bytes", "1000\n");
    f.kernel_file("memory", "memory.memsw.limit_in_bytes", "1000\n");
    let r = resources(json!({"memory": {"limit": 4096, "reservation": 2048, "swap": 8192}}));
    f.mgr.apply(&r).unwrap();
    assert_eq!(
        names(&f.io.writes())
            .into_iter()
            .filter(|(n, _)| n.starts_with("memory."))
            .collect::<Vec<_>>(),
        [
            ("memory.memsw.limit_in_bytes".into(), "8192".into()),
            ("memory.limit_in_bytes".into(), "4096".into()),
            ("memory.soft_limit_in_bytes".into(), "2048".into()),
        ]
    );
}

#[test]
fn v1_memory_shrinking_writes_limit_first() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    f.kernel_file("memory", "memory.limit_in_bytes", "999999\n");
    f.kernel_file("memory", "memory.memsw.limit_in_bytes", "999999\n");
    let r = resources(json!({"memory": {"limit": 4096, "swap": 8192}}));
    f.mgr.apply(&r).unwrap();
    assert_eq!(
        f.io.writes()
            .iter()
            .filter(|(p, _)| p.to_string_lossy().contains("limit_in_bytes"))
            .count(),
        2
    );
    assert_eq!(f.io.writes_to("memory.limit_in_bytes"), ["4096"]);
    let w = names(&f.io.writes());
    let li = w.iter().position(|(n, _)| n == "memory.limit_in_bytes");
    let si = w
        .iter()
        .position(|(n, _)| n == "memory.memsw.limit_in_bytes");
    assert!(li < si, "{w:?}");
}

#[test]
fn v1_memory_without_swap_accounting_skips_memsw() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    let r = resources(json!({"memory": {"limit": 4096, "swap": 8192, "swappiness": 10}}));
    f.mgr.apply(&r).unwrap();
    assert_eq!(f.read("memory", "memory.limit_in_bytes"), "4096");
    assert_eq!(f.read("memory", "memory.swappiness"), "10");
    assert!(f.io.writes_to("memory.memsw.limit_in_bytes").is_empty());

    let bad = resources(json!({"memory": {"swappiness": 101}}));
    assert!(f.mgr.apply(&bad).is_err());
}

#[test]
fn v1_unlimited_memory_also_unlimits_swap() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    f.kernel_file("memory", "memory.memsw.limit_in_bytes", "1000\n");
    f.mgr
        .apply(&resources(json!({"memory": {"limit": -1}})))
        .unwrap();
    assert_eq!(f.read("memory", "memory.limit_in_bytes"), "-1");
    assert_eq!(f.read("memory", "memory.memsw.limit_in_bytes"), "-1");
}

#[test]
fn v1_cpu_and_cpuset() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    let r = resources(json!({"cpu": {
        "shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"
    }}));
    f.mgr.apply(&r).unwrap();
    assert_eq!(f.read("cpu", "cpu.shares"), "512");
    assert_eq!(f.read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(f.read("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(f.read("cpuset", "cpuset.cpus"), "0-1");
    assert_eq!(f.read("cpuset", "cpuset.mems"), "0");
    assert!(f.io.writes_to("cpu.rt_period_us").is_empty());
}

#[test]
fn refused_value_names_file_and_value() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    f.io.refuse("cpu.cfs_quota_us", Errno::EINVAL);
    let err = f
        .mgr
        .apply(&resources(json!({"cpu": {"quota": 1234}})))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cpu.cfs_quota_us") && msg.contains("1234"),
        "{msg}"
    );
}

#[test]
fn v1_period_refused_is_retried_after_quota() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    f.io.refuse("cpu.cfs_period_us", Errno::EINVAL);
    let err = f
        .mgr
        .apply(&resources(json!({"cpu": {"quota": 1000, "period": 2000}})))
        .unwrap_err();
    // The quota went in before the second period attempt.
    assert_eq!(f.io.writes_to("cpu.cfs_quota_us"), ["1000"]);
    assert!(err.to_string().contains("cpu.cfs_period_us"), "{err}");
}

#[test]
fn pids_limit_and_max() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    f.mgr
        .apply(&resources(json!({"pids": {"limit": 32}})))
        .unwrap();
    assert_eq!(f.read("pids", "pids.max"), "32");
    f.mgr
        .apply(&resources(json!({"pids": {"limit": 0}})))
        .unwrap();
    // 0 means 1 (runc, systemd's TasksMax), not unlimited.
    assert_eq!(f.read("pids", "pids.max"), "1");
    f.mgr
        .apply(&resources(json!({"pids": {"limit": -1}})))
        .unwrap();
    assert_eq!(f.read("pids", "pids.max"), "max");
}

#[test]
fn v1_devices_deny_all_then_rules_in_order() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    let r = resources(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": false, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
        {"allow": true, "type": "c", "major": 136, "access": "rwm"},
        {"allow": false, "type": "c", "major": 136, "minor": 5, "access": "w"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"}
    ]}));
    f.mgr.apply(&r).unwrap();
    let dev: Vec<_> = names(&f.io.writes())
        .into_iter()
        .filter(|(n, _)| n.starts_with("devices."))
        .collect();
    // Deny rules for what nothing allowed are already in force after
    // "deny a" and are skipped (even one the kernel would refuse: "rwa").
    let expect: Vec<(String, String)> = [
        ("devices.deny", "a"),
        ("devices.allow", "c 1:3 rwm"),
        ("devices.allow", "c 136:* rwm"),
        ("devices.deny", "c 136:5 w"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(dev, expect);
}

#[test]
fn missing_controller_is_named() {
    let f = v1("/strato/c1");
    let h = Hierarchy::V1 {
        mounts: vec![V1Mount {
            mount_point: f.root().join("memory"),
            root: "/".into(),
            controllers: vec!["memory".into()],
        }],
        unified: None,
    };
    let mgr = Manager::with_io(&h, Path::new("x"), f.io.clone()).unwrap();
    mgr.create().unwrap();
    let err = mgr
        .apply(&resources(json!({"pids": {"limit": 3}})))
        .unwrap_err();
    assert!(err.to_string().contains("pids"), "{err}");
    let err = mgr.freeze(true).unwrap_err();
    assert!(err.to_string().contains("freezer"), "{err}");
    // Nothing requested for a missing controller is fine.
    mgr.apply(&resources(json!({"cpu": {}}))).unwrap();
}

#[test]
fn v1_rejects_unified_map() {
    let f = v1("c1");
    f.mgr.create().unwrap();
    let err = f
        .mgr
        .apply(&resources(json!({"unified": {"memory.high": "1000"}})))
        .unwrap_err();
    assert!(err.to_string().contains("v1"), "{err}");
    assert!(err.to_string().contains("invalid configuration"), "{err}");
}

#[test]
fn frozen_state_of_an_existing_cgroup() {
    let f = v1("/strato/c1");
    // Not created yet: not frozen.
    assert!(!f.mgr.is_frozen().unwrap());
    f.mgr.create().unwrap();
    f.kernel_file("freezer", "freezer.state", "THAWED\n");
    assert!(!f.mgr.is_frozen().unwrap());
    f.kernel_file("freezer", "freezer.state", "FROZEN\n");
    assert!(f.mgr.is_frozen().unwrap());
    f.kernel_file("freezer", "freezer.state", "FREEZING\n");
    assert!(f.mgr.is_frozen().unwrap());

    let g = v2("/strato/c1");
    assert!(!g.mgr.is_frozen().unwrap());
    g.mgr.create().unwrap();
    g.kernel_file("", "cgroup.freeze", "0\n");
    assert!(!g.mgr.is_frozen().unwrap());
    g.kernel_file("", "cgroup.freeze", "1\n");
    assert!(g.mgr.is_frozen().unwrap());
}

#[test]
fn v2_applies_everything_to_one_directory() {
    let f = v2("/strato/c1");
    f.mgr.create().unwrap();
    f.kernel_file("", "memory.swap.max", "max\n");
    let r = resources(json!({
        "memory": {"limit": 4096, "reservation": 1024, "swap": 8192},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 10},
        "devices": [{"allow": false, "access": "rwm"}],
        "unified": {"memory.high": "3000"}
    }));
    f.mgr.apply(&r).unwrap();
    assert_eq!(f.read("", "memory.max"), "4096");
    assert_eq!(f.read("", "memory.swap.max"), "4096");
    assert_eq!(f.read("", "memory.low"), "1024");
    assert_eq!(f.read("", "cpu.weight"), "39");
    assert_eq!(f.read("", "cpu.max"), "50000 100000");
    assert_eq!(f.read("", "cpuset.cpus"), "0");
    assert_eq!(f.read("", "pids.max"), "10");
    assert_eq!(f.read("", "memory.high"), "3000");
    assert!(f
        .io
        .writes()
        .iter()
        .all(|(p, _)| !p.to_string_lossy().contains("devices")));
}

#[test]
fn v2_swap_without_swap_max_is_skipped_and_bad_swap_rejected() {
    let f = v2("c1");
    f.mgr.create().unwrap();
    f.mgr
        .apply(&resources(json!({"memory": {"limit": 100, "swap": 200}})))
        .unwrap();
    assert!(f.io.writes_to("memory.swap.max").is_empty());
    assert_eq!(f.read("", "memory.max"), "100");
    assert!(f
        .mgr
        .apply(&resources(json!({"memory": {"limit": 100, "swap": 50}})))
        .is_err());
    assert!(f
        .mgr
        .apply(&resources(json!({"unified": {"../x": "1"}})))
        .is_err());
    assert!(f
        .mgr
        .apply(&resources(json!({"cpu": {"realtimeRuntime": 5}})))
        .is_err());
}

#[test]
fn v1_freeze_and_thaw() {
    let f = v1("c1");
    f.mgr.create().unwrap();
    f.mgr.freeze(true).unwrap();
    assert_eq!(f.read("freezer", "freezer.state"), "FROZEN");
    f.mgr.freeze(false).unwrap();
    assert_eq!(f.read("freezer", "freezer.state"), "THAWED");
}

#[test]
fn v2_freeze_polls_cgroup_events() {
    let f = v2("c1");
    f.mgr.create().unwrap();
    f.mgr.freeze(true).unwrap();
    assert_eq!(f.read("", "cgroup.freeze"), "1");
    f.mgr.freeze(false).unwrap();
    assert_eq!(f.read("", "cgroup.freeze"), "0");
}

#[test]
fn kill_all_freezes_signals_and_thaws() {
    let f = v1("c1");
    f.mgr.create().unwrap();
    f.kernel_file("freezer", "cgroup.procs", "10\n11\n");
    f.mgr.kill_all(Signal::SIGTERM).unwrap();
    assert_eq!(f.io.kills(), [(10, Signal::SIGTERM), (11, Signal::SIGTERM)]);
    let states = f.io.writes_to("freezer.state");
    assert_eq!(states.first().map(String::as_str), Some("FROZEN"));
    assert_eq!(states.last().map(String::as_str), Some("THAWED"));
}

#[test]
fn v2_sigkill_uses_cgroup_kill() {
    let f = v2("c1");
    f.mgr.create().unwrap();
    f.kernel_file("", "cgroup.kill", "");
    f.kernel_file("", "cgroup.procs", "10\n");
    f.mgr.kill_all(Signal::SIGKILL).unwrap();
    assert_eq!(f.io.writes_to("cgroup.kill"), ["1"]);
    assert!(f.io.kills().is_empty());
    // Other signals go pid by pid.
    f.mgr.kill_all(Signal::SIGHUP).unwrap();
    assert_eq!(f.io.kills(), [(10, Signal::SIGHUP)]);
}

#[test]
fn destroy_removes_leaves_and_children_but_not_parents() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    fs::create_dir(f.mgr.path("memory").unwrap().join("nested")).unwrap();
    f.mgr.destroy().unwrap();
    for d in f.mgr.paths() {
        assert!(!d.path.exists(), "{}", d.path.display());
        assert!(d.path.parent().unwrap().is_dir());
    }
    // Already gone is success.
    f.mgr.destroy().unwrap();
}

#[test]
fn destroy_of_a_busy_cgroup_fails_naming_it_after_retrying() {
    let f = v1("c1");
    f.mgr.create().unwrap();
    f.kernel_file("pids", "cgroup.procs", "99\n");
    let err = f.mgr.destroy().unwrap_err();
    assert!(err.to_string().contains("pids/c1"), "{err}");
    // The other hierarchies were still cleaned up.
    assert!(!f.mgr.path("memory").unwrap().exists());
}

#[test]
fn stats_read_files_and_fail_only_without_the_cgroup() {
    let f = v1("c1");
    assert!(f.mgr.stats().is_err());
    f.mgr.create().unwrap();
    assert_eq!(f.mgr.stats().unwrap(), Stats::default());
    f.kernel_file("memory", "memory.usage_in_bytes", "8192\n");
    f.kernel_file("cpuacct", "cpuacct.usage", "77\n");
    f.kernel_file("pids", "pids.current", "2\n");
    let s = f.mgr.stats().unwrap();
    assert_eq!(s.memory.usage.usage, 8192);
    assert_eq!(s.cpu.usage.total, 77);
    assert_eq!(s.pids.current, 2);

    let g = v2("c1");
    g.mgr.create().unwrap();
    g.kernel_file("", "memory.current", "5\n");
    assert_eq!(g.mgr.stats().unwrap().memory.usage.usage, 5);
}

#[test]
fn enter_sub_cgroups_per_controller() {
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    for c in ["memory", "cpu"] {
        fs::create_dir_all(f.mgr.path(c).unwrap().join("sub")).unwrap();
    }
    let subs = vec![(vec!["memory".to_string()], PathBuf::from("sub"))];
    f.mgr.check_sub_cgroups(&subs).unwrap();
    f.mgr.enter_sub(&subs).unwrap();
    let mem = f.mgr.path("memory").unwrap().join("sub/tasks");
    assert_eq!(fs::read_to_string(mem).unwrap(), "0");
    // Other hierarchies: the container's cgroup itself.
    assert_eq!(f.read("pids", "tasks"), "0");
    assert!(!f.mgr.path("pids").unwrap().join("sub").exists());
    // A path for all controllers must exist in each.
    let all = vec![(vec![], PathBuf::from("sub"))];
    let err = f.mgr.enter_sub(&all).unwrap_err().to_string();
    assert!(err.contains("sub/tasks"), "{err}");
    let err = f
        .mgr
        .check_sub_cgroups(&[(vec!["whaaat".to_string()], PathBuf::new())])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown controller"), "{err}");
}

#[test]
fn block_io_weights_and_throttles() {
    let r = resources(json!({"blockIO": {
        "weight": 333,
        "weightDevice": [{"major": 7, "minor": 0, "weight": 444}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]
    }}));
    // v1 with BFQ only (no CFQ blkio.weight): the bfq files.
    let f = v1("/strato/c1");
    f.mgr.create().unwrap();
    f.kernel_file("blkio", "blkio.bfq.weight", "100\n");
    f.mgr.apply(&r).unwrap();
    assert_eq!(f.io.writes_to("blkio.bfq.weight"), ["333"]);
    assert_eq!(f.io.writes_to("blkio.bfq.weight_device"), ["7:0 444"]);
    assert_eq!(
        f.io.writes_to("blkio.throttle.read_bps_device"),
        ["8:0 1048576"]
    );
    assert_eq!(
        f.io.writes_to("blkio.throttle.write_iops_device"),
        ["8:0 100"]
    );
    // v1 with CFQ's blkio.weight.
    let g = v1("/strato/c2");
    g.mgr.create().unwrap();
    g.kernel_file("blkio", "blkio.weight", "500\n");
    g.mgr.apply(&r).unwrap();
    assert_eq!(g.io.writes_to("blkio.weight"), ["333"]);
    assert_eq!(g.io.writes_to("blkio.weight_device"), ["7:0 444"]);
    // v2 without BFQ: io.weight scaled, io.max.
    let h = v2("/strato/c1");
    h.mgr.create().unwrap();
    h.mgr.apply(&r).unwrap();
    assert_eq!(h.io.writes_to("io.weight"), ["default 3263"]);
    assert_eq!(
        h.io.writes_to("io.max"),
        ["8:0 rbps=1048576", "8:0 wiops=100"]
    );
    // v2 with BFQ: the blkio scale, per device too.
    let k = v2("/strato/c2");
    k.mgr.create().unwrap();
    k.kernel_file("", "io.bfq.weight", "default 100\n");
    k.mgr.apply(&r).unwrap();
    assert_eq!(k.io.writes_to("io.bfq.weight"), ["333", "7:0 444"]);
}

#[test]
fn hybrid_unified_directory_is_made_and_removed_but_not_written() {
    let f = v1("/strato/c1");
    let unified = f.mgr.unified_path().unwrap().to_path_buf();
    assert!(
        unified.ends_with("unified/strato/c1"),
        "{}",
        unified.display()
    );
    f.mgr.create().unwrap();
    assert!(unified.is_dir());
    f.mgr.enter().unwrap();
    // Joined by forking into it, never through cgroup.procs.
    assert!(f.io.writes_to("cgroup.procs").is_empty());
    f.mgr.destroy().unwrap();
    assert!(!unified.exists());
    assert!(v2("/strato/c1").mgr.unified_path().is_none());
}
