//! Regression tests for behaviour runc's own suite checks and strato once got
//! wrong: descriptors leaking into containers, device access, procfs on a
//! symlink, HOME, and the cwd of unprivileged processes.

mod common;

use std::fs;

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
