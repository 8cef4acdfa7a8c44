//! Regression tests for behaviour runc's own suite checks and strato once got
//! wrong: descriptors leaking into containers, device access, procfs on a
//! symlink, HOME, and the cwd of unprivileged processes.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use serde_json::json;

#[test]
fn a_created_container_holds_no_inherited_descriptors() {
    let ctx = Ctx::new("fdleak");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.sh("ls /proc/self/fd | sort -n | tr '\\n' ' '");
    // A descriptor of the caller without close-on-exec, as bats leaves them.
    let leak = fs::File::open("/etc/hostname").unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&leak);
    let flags = nix::fcntl::fcntl(raw, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    nix::fcntl::fcntl(
        raw,
        nix::fcntl::FcntlArg::F_SETFD(
            nix::fcntl::FdFlag::from_bits_truncate(flags) - nix::fcntl::FdFlag::FD_CLOEXEC,
        ),
    )
    .unwrap();
    ctx.create(&b, &id).ok();
    // While created, the container's init holds only its stdio, the sync
    // socket and the exec fifo: nothing of ours.
    let pid = ctx.pid(&id);
    let targets: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        !targets
            .iter()
            .any(|t| t == "/etc/hostname" || t.ends_with(&format!("/{id}"))),
        "{targets:?}"
    );
    ctx.rt(&["start", &id]).ok();
    drop(leak);
    ctx.wait_status(&id, "stopped");
    ctx.rt(&["delete", &id]).ok();
}

#[test]
fn the_process_sees_only_stdio() {
    let ctx = Ctx::new("fdonly");
    let out = ctx.sh("ls /proc/self/fd | sort -n | tr '\\n' ' '").ok();
    // 0-2, plus the descriptor ls reads the directory with.
    assert_eq!(out.out().trim(), "0 1 2 3", "{out}");
}

#[test]
fn listed_devices_get_no_access_unless_the_rules_allow_it() {
    let ctx = Ctx::new("devdeny");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    // Writing /dev/kmsg needs no capability: only the device cgroup stops it.
    b.sh("test -c /dev/kmsg && echo node; (echo probe > /dev/kmsg) 2>/dev/null && echo writable || echo denied")
        .set(
            "/linux/devices",
            json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 384}]),
        )
        .set(
            "/linux/resources/devices",
            json!([{"allow": false, "access": "rwm"}]),
        );
    let out = ctx.run(&b, &id).ok();
    assert_eq!(out.out(), "node\ndenied", "{out}");
}

#[test]
fn device_nodes_get_their_exact_mode() {
    let ctx = Ctx::new("devmode");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.sh("stat -c %a /dev/kmsg /dev/null").set(
        "/linux/devices",
        json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 432}]),
    );
    let out = ctx.run(&b, &id).ok();
    assert_eq!(out.out(), "660\n666", "{out}");
}

#[test]
fn procfs_is_not_mounted_through_a_symlink() {
    let ctx = Ctx::new("procsym");
    let id = ctx.id();
    let b = ctx.bundle(&id);
    let rootfs = b.rootfs();
    fs::remove_dir(rootfs.join("proc")).unwrap();
    std::os::unix::fs::symlink("/tmp", rootfs.join("proc")).unwrap();
    let mut b = b;
    b.sh("true");
    ctx.run(&b, &id)
        .failed()
        .stderr_mentions(&["ordinary directory"]);
    ctx.assert_gone(&id, None);
}

/// A program that cannot be executed (here a script whose interpreter is
/// missing) fails `run` with one line, runc's, and the container is gone.
#[test]
fn an_unexecutable_program_fails_run_with_one_line() {
    let ctx = Ctx::new("execerr");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    let script = b.rootfs().join("run.sh");
    fs::write(&script, "#!/mmnnttbb foo bar\nsh\n").unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    b.args(&["/run.sh"]);
    let out = ctx.run(&b, &id).failed();
    assert_eq!(
        out.stderr.trim_end(),
        "exec /run.sh: no such file or directory",
        "{out}"
    );
    ctx.assert_gone(&id, None);
}

#[test]
fn home_comes_from_passwd_and_cwd_is_entered_before_dropping_root() {
    let ctx = Ctx::new("home");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    // /root is 0700: only root may enter it, yet uid 1000 starts there.
    fs::create_dir_all(b.rootfs().join("root")).unwrap();
    fs::set_permissions(
        b.rootfs().join("root"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    b.sh("echo $HOME; pwd")
        .set("/process/user", json!({"uid": 1000, "gid": 1000}))
        .set("/process/cwd", json!("/root"))
        .set("/process/env", json!(["PATH=/bin:/sbin"]));
    let out = ctx.run(&b, &id).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    // scripts/mkrootfs.sh gives uid 1000 the home /home/app.
    assert_eq!(lines[0], "/home/app", "{out}");
    assert_eq!(lines[1], "/root", "{out}");
}

#[test]
fn a_created_container_can_be_stopped_with_sigterm() {
    let ctx = Ctx::new("termcreated");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "60"]);
    ctx.create(&b, &id).ok();
    let pid = ctx.pid(&id);
    ctx.rt(&["kill", &id, "TERM"]).ok();
    ctx.wait_status(&id, "stopped");
    ctx.rt(&["delete", &id]).ok();
    ctx.assert_gone(&id, Some(pid));
}

#[test]
fn a_cgroup_in_use_is_refused_and_left_alone() {
    let ctx = Ctx::new("cgshared");
    let first = ctx.id();
    let mut b = ctx.bundle(&first);
    b.args(&["sleep", "60"]);
    ctx.create_start(&b, &first);
    let pid = ctx.pid(&first);
    // A second container asking for the same cgroup.
    let second = ctx.id();
    let mut b2 = ctx.bundle(&second);
    b2.args(&["true"])
        .set("/linux/cgroupsPath", json!(cgroups_path(&first)));
    ctx.run(&b2, &second)
        .failed()
        .stderr_mentions(&["container's cgroup is not empty"]);
    ctx.assert_gone(&second, None);
    // The failed create neither killed the first container's process nor
    // removed its cgroup.
    assert!(proc_alive(pid), "the first container's process was killed");
    assert_eq!(ctx.status(&first), "running");
    let procs = read_cgroup_file(&first, ("pids", "cgroup.procs"), "cgroup.procs");
    assert!(
        procs.lines().any(|l| l.trim() == pid.to_string()),
        "the first container's cgroup lost its process: {procs:?}"
    );
    ctx.rt(&["delete", "--force", &first]).ok();
}

#[test]
fn a_frozen_cgroup_is_refused_and_left_alone() {
    let ctx = Ctx::new("cgfrozen");
    let id = ctx.id();
    let rel = cgroups_path(&id);
    let dir = if cgroup_v2() {
        Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'))
    } else {
        Path::new("/sys/fs/cgroup/freezer").join(rel.trim_start_matches('/'))
    };
    fs::create_dir_all(&dir).unwrap();
    let (file, frozen, thawed) = if cgroup_v2() {
        ("cgroup.freeze", "1", "0")
    } else {
        ("freezer.state", "FROZEN", "THAWED")
    };
    fs::write(dir.join(file), frozen).unwrap();
    let mut b = ctx.bundle(&id);
    b.args(&["true"]);
    let out = ctx.run(&b, &id);
    // Clean up what the test made before asserting.
    fs::write(dir.join(file), thawed).unwrap();
    let kept = dir.exists();
    let _ = fs::remove_dir(&dir);
    out.failed()
        .stderr_mentions(&["container's cgroup unexpectedly frozen"]);
    assert!(kept, "the failed create removed a cgroup it did not make");
}

/// `linux.timeOffsets` of a new time namespace, as `timens_offsets` shows them.
fn timens_bundle(ctx: &Ctx, id: &str, userns: bool) -> Bundle {
    let mut b = ctx.bundle(id);
    b.set(
        "/linux/timeOffsets",
        json!({"monotonic": {"secs": 7881, "nanosecs": 2718281},
               "boottime": {"secs": 1337, "nanosecs": 3141519}}),
    );
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "time"}));
    if userns {
        // The rootfs stays owned by the host's root: readable, not writable.
        ns.push(json!({"type": "user"}));
        b.set("/root/readonly", json!(false))
            .set(
                "/linux/uidMappings",
                json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
            )
            .set(
                "/linux/gidMappings",
                json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
            );
    }
    b
}

fn offsets(text: &str) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    v.sort();
    v
}

#[test]
fn time_offsets_apply_to_the_container_and_its_exec_processes() {
    let ctx = Ctx::new("timens");
    let want = vec![
        vec!["boottime".to_string(), "1337".into(), "3141519".into()],
        vec!["monotonic".to_string(), "7881".into(), "2718281".into()],
    ];
    for userns in [false, true] {
        let id = ctx.id();
        let mut b = timens_bundle(&ctx, &id, userns);
        b.args(&["cat", "/proc/self/timens_offsets"]);
        let out = ctx.run(&b, &id).ok();
        assert_eq!(offsets(&out.stdout), want, "userns {userns}: {out}");
    }
    let id = ctx.id();
    let mut b = timens_bundle(&ctx, &id, false);
    b.args(&["sleep", "60"]);
    ctx.create_start(&b, &id);
    let out = ctx
        .rt(&["exec", &id, "cat", "/proc/self/timens_offsets"])
        .ok();
    assert_eq!(offsets(&out.stdout), want, "exec: {out}");
    ctx.rt(&["delete", "--force", &id]).ok();
}

#[test]
fn failing_hooks_name_their_index_and_leave_nothing() {
    let ctx = Ctx::new("hookidx");
    // The first hook exits without reading the state on its stdin: that must
    // not kill the runtime (it used to, by SIGPIPE).
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
    ] {
        let id = ctx.id();
        let mut b = ctx.bundle(&id);
        b.args(&["true"]).set(
            &format!("/hooks/{kind}"),
            json!([{"path": "/bin/true"}, {"path": "/bin/false"}]),
        );
        ctx.run(&b, &id)
            .failed()
            .stderr_mentions(&[&format!("error running {kind} hook #1:")]);
        ctx.assert_gone(&id, None);
    }
    // A failing poststart hook ends the container: `run` fails and removes it.
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "60"]).set(
        "/hooks/poststart",
        json!([{"path": "/bin/true"}, {"path": "/bin/false"}]),
    );
    b.write();
    ctx.rt(&["run", "-d", "--bundle", b.path_str(), &id])
        .failed()
        .stderr_mentions(&["error running poststart hook #1:"]);
    ctx.assert_gone(&id, None);
}

#[test]
fn start_container_hooks_get_the_process_environment_with_home() {
    let ctx = Ctx::new("hookenv");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    fs::write(
        b.rootfs().join("check-env.sh"),
        "#!/bin/sh -ue\ntest \"$ONE\" = two\ntest \"$HOME\" = /root\n",
    )
    .unwrap();
    fs::set_permissions(
        b.rootfs().join("check-env.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    b.args(&["true"])
        .set("/process/env", json!(["ONE=two", "PATH=/bin"]))
        .set("/hooks/startContainer", json!([{"path": "/check-env.sh"}]));
    ctx.run(&b, &id).ok();
}

#[test]
fn tmpfs_mounts_copy_up_and_take_the_mode_of_what_they_cover() {
    let ctx = Ctx::new("tmpfsmode");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    let rootfs = b.rootfs();
    fs::create_dir_all(rootfs.join("dir1/dir2")).unwrap();
    fs::write(rootfs.join("dir1/dir2/file"), "under\n").unwrap();
    fs::set_permissions(
        rootfs.join("dir1/dir2"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    fs::create_dir_all(rootfs.join("kept")).unwrap();
    fs::set_permissions(
        rootfs.join("kept"),
        std::os::unix::fs::PermissionsExt::from_mode(0o710),
    )
    .unwrap();
    b.sh(
        "stat -c %a /dir1/dir2; cat /dir1/dir2/file; stat -c %a /kept /new/dir; \
          touch /dir1/written && echo writable",
    )
    .mount(
        json!({"destination": "/dir1", "type": "tmpfs", "source": "tmpfs",
                      "options": ["tmpcopyup"]}),
    )
    .mount(json!({"destination": "/kept", "type": "tmpfs", "source": "tmpfs"}))
    .mount(json!({"destination": "/new/dir", "type": "tmpfs", "source": "tmpfs"}));
    let out = ctx.run(&b, &id).ok();
    assert_eq!(out.out(), "777\nunder\n710\n1777\nwritable", "{out}");
    // The copy went into the tmpfs, not into the rootfs.
    assert!(!rootfs.join("dir1/written").exists());
}

#[test]
fn masked_directories_share_one_read_only_tmpfs() {
    let ctx = Ctx::new("maskshare");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    for d in ["m1", "m2", "m3"] {
        fs::create_dir_all(b.rootfs().join(d)).unwrap();
    }
    fs::write(b.rootfs().join("m2/secret"), "x").unwrap();
    b.sh("stat -c %d /m1 /m2 /m3 | uniq | wc -l; ls /m2; touch /m2/foo 2>&1 || true")
        .set("/linux/maskedPaths", json!(["/m1", "/m2", "/m3", "/m2"]));
    let out = ctx.run(&b, &id).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first().map(|l| l.trim()), Some("1"), "{out}");
    assert!(out.stdout.contains("Read-only file system"), "{out}");
    assert!(!out.stdout.contains("secret"), "{out}");
}

#[test]
fn a_pids_limit_of_zero_means_one_and_the_container_starts() {
    let ctx = Ctx::new("pids1");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "60"])
        .set("/linux/resources/pids", json!({"limit": 0}));
    ctx.create_start(&b, &id);
    assert_eq!(read_cgroup_file(&id, ("pids", "pids.max"), "pids.max"), "1");
    // The limit holds: the container cannot start a second process.
    ctx.rt(&["exec", &id, "true"]).failed();
    ctx.rt(&["delete", "--force", &id]).ok();
}

fn online_cpus() -> Vec<usize> {
    let text = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let mut v = Vec::new();
    for part in text.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => v.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()),
            None => v.push(part.parse().unwrap()),
        }
    }
    v
}

#[test]
fn exec_cpu_affinity_sets_the_initial_and_final_cpus() {
    let cpus = online_cpus();
    let last = *cpus.last().unwrap();
    let ctx = Ctx::new("affinity");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "60"]);
    ctx.create_start(&b, &id);
    let proc_json = json!({
        "args": ["grep", "Cpus_allowed_list:", "/proc/self/status"],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin:/sbin"],
        "execCPUAffinity": {"initial": cpus[0].to_string(), "final": last.to_string()},
    });
    let pfile = ctx.dir().join("process.json");
    fs::write(&pfile, proc_json.to_string()).unwrap();
    let out = ctx
        .rt(&["--debug", "exec", "--process", pfile.to_str().unwrap(), &id])
        .ok();
    // The final set is what the process runs with.
    assert_eq!(
        out.stdout.split_whitespace().nth(1),
        Some(last.to_string().as_str()),
        "{out}"
    );
    // The initial set was in force before the process joined the cgroup.
    let mask = format!("affinity: 0x{:x}", 1u64 << cpus[0]);
    assert!(out.stderr.contains(&mask), "{out}");
    // Without execCPUAffinity the process may use every CPU of the cgroup.
    let out = ctx
        .rt(&[
            "exec",
            &id,
            "grep",
            "Cpus_allowed_list:",
            "/proc/self/status",
        ])
        .ok();
    let want = if cpus.len() == 1 {
        cpus[0].to_string()
    } else {
        format!("{}-{last}", cpus[0])
    };
    assert_eq!(
        out.stdout.split_whitespace().nth(1),
        Some(want.as_str()),
        "{out}"
    );
    ctx.rt(&["delete", "--force", &id]).ok();
}

/// Binds a tree in the order runc's mounts.bats does: host sources, then
/// sources and destinations inside the rootfs given with its host path.
fn mount_order_bundle(ctx: &Ctx, id: &str, userns: bool) -> Bundle {
    let mut b = ctx.bundle(id);
    let rootfs = b.rootfs();
    fs::create_dir_all(rootfs.join("mnt")).unwrap();
    fs::create_dir_all(rootfs.join("final")).unwrap();
    let src = b.dir.join("bind-src");
    for sub in ["a/x", "b/y", "c/z"] {
        fs::create_dir_all(src.join(sub)).unwrap();
        fs::write(src.join(sub).join("file"), format!("{sub}\n")).unwrap();
    }
    // Only the host's root can enter the sources' parent: inside a user
    // namespace the container's root cannot.
    fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    let bind = |from: &Path, to: &Path, opts: &[&str]| json!({"type": "bind", "source": from, "destination": to, "options": opts});
    let r = |p: &str| rootfs.join(p);
    b.mount(bind(&src.join("a"), Path::new("/mnt"), &["rbind"]))
        .mount(bind(&src.join("b"), Path::new("/mnt/x"), &["rbind"]))
        .mount(bind(&src.join("c"), Path::new("/mnt/x/y"), &["rbind"]))
        .mount(bind(&r("mnt/x"), &r("mnt/x/y/z"), &["rbind"]))
        .mount(bind(&r("mnt"), &r("final"), &["rbind"]))
        .args(&["cat", "/final/x/y/z/y/z/file"]);
    if userns {
        b.set("/root/readonly", json!(false))
            .set(
                "/linux/uidMappings",
                json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
            )
            .set(
                "/linux/gidMappings",
                json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
            );
        b.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
    }
    b
}

#[test]
fn bind_mounts_resolve_in_order_and_reach_sources_the_userns_cannot() {
    let ctx = Ctx::new("mountorder");
    for userns in [false, true] {
        let id = ctx.id();
        let b = mount_order_bundle(&ctx, &id, userns);
        let out = ctx.run(&b, &id).ok();
        // /mnt/x/y/z got /mnt/x (b's tree with c on y), seen through /final.
        assert_eq!(out.out(), "c/z", "userns {userns}: {out}");
        // Nothing landed in a rootfs path nested in the rootfs.
        let nested = b.rootfs().join(b.rootfs().strip_prefix("/").unwrap());
        assert!(!nested.exists(), "{}", nested.display());
    }
}

#[test]
fn a_joined_user_namespace_does_not_stop_joining_a_host_namespace() {
    let ctx = Ctx::new("userowner");
    let owner = ctx.id();
    let mut b = ctx.bundle(&owner);
    b.args(&["sleep", "60"])
        .set("/root/readonly", json!(false))
        .set(
            "/linux/uidMappings",
            json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
        )
        .set(
            "/linux/gidMappings",
            json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
        );
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    ctx.create_start(&b, &owner);
    let pid = ctx.pid(&owner);
    // Our (the host's) network namespace belongs to the host's user
    // namespace, which the joined one does not own.
    let id = ctx.id();
    let mut b2 = ctx.bundle(&id);
    b2.sh("readlink /proc/self/ns/user; readlink /proc/self/ns/net")
        .set("/root/readonly", json!(false));
    let ns = b2.config["linux"]["namespaces"].as_array_mut().unwrap();
    for n in ns.iter_mut() {
        if n["type"] == "network" {
            n["path"] = json!(format!("/proc/{}/ns/net", std::process::id()));
        }
    }
    ns.push(json!({"type": "user", "path": format!("/proc/{pid}/ns/user")}));
    let out = ctx.run(&b2, &id).ok();
    let want = format!(
        "{}\n{}",
        fs::read_link(format!("/proc/{pid}/ns/user"))
            .unwrap()
            .display(),
        fs::read_link("/proc/self/ns/net").unwrap().display()
    );
    assert_eq!(out.out(), want, "{out}");
    ctx.rt(&["delete", "--force", &owner]).ok();
}

#[test]
fn exec_runs_in_a_sub_cgroup_of_the_container() {
    let ctx = Ctx::new("execsubcg");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "60"]);
    ctx.create_start(&b, &id);
    let rel = cgroups_path(&id);
    let (ctl, sub) = if cgroup_v2() {
        (
            "",
            Path::new("/sys/fs/cgroup")
                .join(rel.trim_start_matches('/'))
                .join("sub"),
        )
    } else {
        (
            "memory:",
            Path::new("/sys/fs/cgroup/memory")
                .join(rel.trim_start_matches('/'))
                .join("sub"),
        )
    };
    fs::create_dir(&sub).unwrap();
    let out = ctx
        .rt(&[
            "exec",
            "--cgroup",
            &format!("{ctl}sub"),
            &id,
            "cat",
            "/proc/self/cgroup",
        ])
        .ok();
    let line = out
        .stdout
        .lines()
        .find(|l| {
            if cgroup_v2() {
                l.starts_with("0::")
            } else {
                l.contains(":memory:")
            }
        })
        .unwrap_or_default()
        .to_string();
    assert!(line.ends_with("/sub"), "{out}");
    // The setup process fails before the runtime's next message: whichever
    // comes first, its report is the error (not a broken pipe).
    for _ in 0..5 {
        ctx.rt(&["exec", "--cgroup", "nonexistent", &id, "true"])
            .failed()
            .stderr_mentions(&["adding pid", "o such file or directory"]);
    }
    if !cgroup_v2() {
        ctx.rt(&["exec", "--cgroup", "whaaat:/", &id, "true"])
            .failed()
            .stderr_mentions(&["unknown controller"]);
    }
    ctx.rt(&["delete", "--force", &id]).ok();
    let _ = fs::remove_dir(&sub);
}

#[test]
fn block_io_throttles_reach_the_cgroup() {
    // Any whole block device of the host will do for a throttle rule.
    let dev = fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path().join("dev")).ok())
        .map(|d| d.trim().to_string())
        .next()
        .expect("a block device");
    let (major, minor) = dev.split_once(':').unwrap();
    let (major, minor): (i64, i64) = (major.parse().unwrap(), minor.parse().unwrap());
    let ctx = Ctx::new("blkio");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "60"]).set(
        "/linux/resources/blockIO",
        json!({"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}),
    );
    ctx.create_start(&b, &id);
    let got = read_cgroup_file(&id, ("blkio", "blkio.throttle.read_bps_device"), "io.max");
    let want = if cgroup_v2() {
        format!("{dev} rbps=1048576")
    } else {
        format!("{dev} 1048576")
    };
    assert!(got.lines().any(|l| l.starts_with(&want)), "{got:?}");
    ctx.rt(&["delete", "--force", &id]).ok();
}

#[test]
fn on_hybrid_hosts_processes_are_tracked_in_the_unified_hierarchy() {
    let hybrid = !cgroup_v2() && Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists();
    let ctx = Ctx::new("unifiedcg");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "60"]);
    // No cgroup namespace: /proc/self/cgroup shows host paths.
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "cgroup");
    ctx.create_start(&b, &id);
    let pid = ctx.pid(&id);
    let want = format!("0::{}", cgroups_path(&id));
    let init = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let exec = ctx.rt(&["exec", &id, "cat", "/proc/self/cgroup"]).ok();
    let unified_dir =
        Path::new("/sys/fs/cgroup/unified").join(cgroups_path(&id).trim_start_matches('/'));
    if hybrid || cgroup_v2() {
        assert!(init.lines().any(|l| l == want), "{init}");
        assert!(exec.stdout.lines().any(|l| l == want), "{exec}");
    }
    ctx.rt(&["delete", "--force", &id]).ok();
    assert!(
        !unified_dir.exists(),
        "{} left behind",
        unified_dir.display()
    );
}

#[test]
fn rro_makes_a_whole_bind_tree_read_only() {
    let ctx = Ctx::new("rro");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    let rootfs = b.rootfs();
    b.sh("touch /a/sub/ok && echo writable; \
          touch /b/x 2>/dev/null || echo top-ro; touch /b/sub/y 2>/dev/null || echo sub-ro")
        .mount(json!({"destination": "/a", "type": "tmpfs", "source": "tmpfs"}))
        .mount(json!({"destination": "/a/sub", "type": "tmpfs", "source": "tmpfs"}))
        .mount(
            json!({"destination": "/b", "type": "bind", "source": rootfs.join("a"),
                      "options": ["rbind", "rro"]}),
        );
    let out = ctx.run(&b, &id).ok();
    assert_eq!(out.out(), "writable\ntop-ro\nsub-ro", "{out}");
}

#[test]
fn an_ambient_capability_that_is_not_inheritable_is_a_warning() {
    let ctx = Ctx::new("ambwarn");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.sh("grep CapAmb /proc/self/status")
        .set("/process/capabilities/inheritable", json!(["CAP_KILL"]))
        .set(
            "/process/capabilities/ambient",
            json!(["CAP_KILL", "CAP_CHOWN"]),
        )
        .set("/process/noNewPrivileges", json!(false));
    let out = ctx.run(&b, &id).ok();
    assert!(
        out.stderr
            .contains("can't raise ambient capability CAP_CHOWN: "),
        "{out}"
    );
    assert_eq!(
        out.out().split_whitespace().nth(1),
        Some(format!("{:016x}", cap_mask(&["CAP_KILL"])).as_str()),
        "{out}"
    );
}

#[test]
fn a_redundant_deny_rule_does_not_fail_the_container() {
    let ctx = Ctx::new("devredundant");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    // "a" is no device access letter: written to devices.deny the kernel
    // would refuse it, but after "deny all" the rule changes nothing.
    b.sh("(echo probe > /dev/kmsg) 2>/dev/null && echo writable || echo denied")
        .set(
            "/linux/devices",
            json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]),
        )
        .set(
            "/linux/resources/devices",
            json!([{"allow": false, "access": "rwm"},
                   {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"}]),
        );
    let out = ctx.run(&b, &id).ok();
    assert_eq!(out.out(), "denied", "{out}");
}
