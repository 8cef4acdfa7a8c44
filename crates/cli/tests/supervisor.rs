//! Integration tests for `strato supervisor`: real containers started, logged,
//! reaped, restarted and exec'd into by the engine's supervisor process,
//! driven through its client library.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use strato_supervisor::logs::{read_all, Stream};
use strato_supervisor::{Client, ContainerSpec, Event, ExecSpec, Phase, RestartPolicy};

/// A supervisor process under a test's scratch dir, stopped on drop; every
/// container it still knows is force-deleted with the runtime.
struct Sup {
    root: PathBuf,
    child: Option<Child>,
}

impl Sup {
    fn start(ctx: &Ctx) -> Sup {
        Sup::start_with(ctx, Command::new(env!("CARGO_BIN_EXE_strato")))
    }

    /// Starts the supervisor from `cmd` (the strato binary, with the
    /// environment or stdio a test wants).
    fn start_with(ctx: &Ctx, mut cmd: Command) -> Sup {
        let root = ctx.dir().join("sup");
        let child = cmd
            .args(["supervisor", "--root"])
            .arg(&root)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the supervisor");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Client::connect(&root).is_err() {
            assert!(Instant::now() < deadline, "the supervisor did not listen");
            std::thread::sleep(Duration::from_millis(5));
        }
        Sup {
            root,
            child: Some(child),
        }
    }

    /// Starts the supervisor with `STRATO_LOG=debug` and its stderr in a
    /// file of the test's scratch dir, whose path comes back.
    fn start_debug_logged(ctx: &Ctx) -> (Sup, PathBuf) {
        let log = ctx.dir().join("supervisor.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strato"));
        cmd.env("STRATO_LOG", "debug")
            .stderr(fs::File::create(&log).expect("supervisor log"));
        (Sup::start_with(ctx, cmd), log)
    }

    fn client(&self) -> Client {
        Client::connect(&self.root).expect("connect")
    }

    fn runtime_root(&self) -> PathBuf {
        self.root.join("runtime")
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
}

impl Drop for Sup {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&self.root) {
            if let Ok(list) = c.list() {
                for s in list {
                    let _ = c.delete(&s.spec.id, true);
                }
            }
        }
        self.stop();
        let rt = self.runtime_root();
        if let Ok(out) = Command::new(env!("CARGO_BIN_EXE_strato"))
            .args(["runtime", "--root"])
            .arg(&rt)
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = Command::new(env!("CARGO_BIN_EXE_strato"))
                    .args(["runtime", "--root"])
                    .arg(&rt)
                    .args(["delete", "--force", id])
                    .status();
            }
        }
    }
}

fn spec(ctx: &Ctx, b: &Bundle, id: &str) -> ContainerSpec {
    b.write();
    ContainerSpec {
        id: id.to_string(),
        bundle: b.dir.clone(),
        log_path: ctx.dir().join(format!("{id}.log")),
        tty: false,
        open_stdin: false,
        restart: RestartPolicy::No,
        auto_remove: false,
        netns: false,
        own_cgroup_parent: false,
    }
}

fn wait_exited(c: &mut Client, id: &str) -> strato_supervisor::ContainerStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = c.state(id).expect("state");
        if s.phase == Phase::Exited {
            return s;
        }
        assert!(Instant::now() < deadline, "{id} did not exit: {s:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn log_lines(path: &Path) -> Vec<(Stream, String)> {
    read_all(path)
        .expect("read log")
        .into_iter()
        .map(|e| (e.stream, e.log))
        .collect()
}

#[test]
fn output_is_logged_and_the_exit_code_recorded() {
    let ctx = Ctx::new("sup-log");
    let sup = Sup::start(&ctx);
    let mut c = sup.client();
    let events = sup.client().events().expect("events");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.sh("echo out1; echo err1 >&2; echo out2; exit 3");
    let s = spec(&ctx, &b, &id);
    let pid = c.start(s.clone()).expect("start");
    assert!(pid > 0);
    let st = wait_exited(&mut c, &id);
    assert_eq!(st.exit_code, Some(3), "{st:?}");
    assert!(st.finished_at.is_some());
    let lines = log_lines(&s.log_path);
    assert!(
        lines.contains(&(Stream::Stdout, "out1\n".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(Stream::Stdout, "out2\n".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(Stream::Stderr, "err1\n".into())),
        "{lines:?}"
    );
    // The event stream saw the start and the exit.
    let seen: Vec<Event> = events.take(2).map(|e| e.expect("event")).collect();
    assert!(
        matches!(&seen[0], Event::Start { id: i, .. } if *i == id),
        "{seen:?}"
    );
    assert!(
        matches!(&seen[1], Event::Exit { id: i, code: 3, .. } if *i == id),
        "{seen:?}"
    );
    // Its runtime state and cgroup go right after the exit is told; the
    // record stays until delete.
    assert_gone_soon(&sup.runtime_root().join(&id));
    c.delete(&id, false).expect("delete");
    assert!(c.state(&id).is_err());
}

#[test]
fn the_runtime_debug_log_stays_out_of_the_container_stderr() {
    let ctx = Ctx::new("sup-dbglog");
    let (sup, sup_log) = Sup::start_debug_logged(&ctx);
    let mut c = sup.client();
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.sh("echo err1 >&2");
    let s = spec(&ctx, &b, &id);
    c.start(s.clone()).expect("start");
    assert_eq!(wait_exited(&mut c, &id).exit_code, Some(0));
    // Only the container's own line is on its stderr; the container
    // process's setup went to the supervisor's log.
    assert_eq!(
        log_lines(&s.log_path),
        vec![(Stream::Stderr, "err1\n".into())]
    );
    let logged = std::fs::read_to_string(&sup_log).expect("read supervisor log");
    assert!(logged.contains("container process: mounting"), "{logged}");
    c.delete(&id, false).expect("delete");
}

#[test]
fn starts_take_the_spare_cgroups_made_while_idle() {
    use strato_cgroups::{SPARES, SPARE_PREFIX};
    let ctx = Ctx::new("sup-spares");
    // A parent of this test's own: no other test takes its spares.
    let parent = format!("/strato-it-spares-{}", std::process::id());
    // Dropped last: after the supervisor, which makes spares when idle.
    let _gone = Gone(parent.clone());
    let sup = Sup::start(&ctx);
    let mut c = sup.client();
    let run = |c: &mut Client, script: &str| {
        let id = ctx.id();
        let mut b = ctx.bundle(&id);
        b.sh(script)
            .set("/linux/cgroupsPath", json!(format!("{parent}/{id}")));
        c.start(spec(&ctx, &b, &id)).expect("start");
        id
    };
    /// Removes the spares and the parent of this test, passed or failed.
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            for k in 0..SPARES {
                for d in cgroup_dirs(&format!("{}/{SPARE_PREFIX}{k}", self.0)) {
                    let _ = fs::remove_dir(&d);
                }
            }
            for d in cgroup_dirs(&self.0) {
                let _ = fs::remove_dir(&d);
            }
        }
    }
    let first = run(&mut c, "true");
    wait_exited(&mut c, &first);
    let spares = |h: &str| -> Vec<PathBuf> {
        (0..SPARES)
            .flat_map(|k| cgroup_dirs(&format!("{parent}/{SPARE_PREFIX}{k}")))
            .filter(|d| d.starts_with(Path::new("/sys/fs/cgroup").join(h)))
            // A hybrid host's cgroup2 has none either.
            .filter(|d| !d.starts_with("/sys/fs/cgroup/unified"))
            .collect()
    };
    if cgroup_v2() {
        // cgroup2 cannot rename: none are made.
        std::thread::sleep(Duration::from_millis(200));
        assert!(spares("").iter().all(|d| !d.exists()));
    } else {
        // Made once the supervisor was idle a moment, in every hierarchy.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !spares("").iter().all(|d| d.is_dir()) {
            assert!(Instant::now() < deadline, "no spares: {:?}", spares(""));
            std::thread::sleep(Duration::from_millis(20));
        }
        // Marked, to be told from a cgroup made by mkdir.
        for d in spares("pids") {
            fs::write(d.join("pids.max"), "4321").expect("mark a spare");
        }
        let second = run(&mut c, "sleep 30");
        let pids = Path::new("/sys/fs/cgroup/pids").join(parent.trim_start_matches('/'));
        let max = fs::read_to_string(pids.join(&second).join("pids.max")).expect("pids.max");
        assert_eq!(max.trim(), "4321", "the start made its own cgroup");
        c.delete(&second, true).expect("delete");
    }
    c.delete(&first, false).expect("delete");
    // Stopped before its spares go: it makes them again when idle.
    drop(sup);
}

/// The supervisor's children named `strato-forker`.
fn forkers(sup: &Sup) -> Vec<i32> {
    let pid = sup.child.as_ref().expect("running").id();
    let kids = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    kids.split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "strato-forker")
        })
        .collect()
}

/// The parent of process `pid` (0 once it is gone).
fn parent_of(pid: i32) -> i32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the comm's closing parenthesis: state, then ppid.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_forker_forks_the_starters_and_a_lost_one_is_replaced() {
    let ctx = Ctx::new("sup-forker");
    let (sup, sup_log) = Sup::start_debug_logged(&ctx);
    let sup_pid = sup.child.as_ref().expect("running").id() as i32;
    let mut c = sup.client();
    let forked = || {
        fs::read_to_string(&sup_log)
            .expect("read supervisor log")
            .matches("starter forked by the forker")
            .count()
    };
    let run = |c: &mut Client, script: &str| {
        let id = ctx.id();
        let mut b = ctx.bundle(&id);
        b.sh(script);
        let pid = c.start(spec(&ctx, &b, &id)).expect("start");
        // Once the starter (which reported, then exits) is gone, its
        // container is the supervisor's child.
        let deadline = Instant::now() + Duration::from_secs(10);
        while parent_of(pid) != sup_pid {
            assert!(
                Instant::now() < deadline,
                "{id}: the parent of {pid} is {}, not the supervisor",
                parent_of(pid)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        id
    };
    // Forked (and named) by the supervisor as it starts, maybe after its
    // socket answers.
    let one_forker = || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let f = forkers(&sup);
            if f.len() == 1 {
                return f[0];
            }
            assert!(Instant::now() < deadline, "not one forker: {f:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let forker = one_forker();
    // It holds none of the supervisor's descriptors: its stdio, the log, its
    // socket and its signalfd.
    let fds = fs::read_dir(format!("/proc/{forker}/fd"))
        .expect("fds")
        .count();
    assert!(fds <= 6, "the forker holds {fds} descriptors");

    let first = run(&mut c, "sleep 30");
    assert_eq!(forked(), 1, "the start did not go through the forker");

    // Lost: the next start still runs, through a new forker.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(forker),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the forker");
    wait_gone(forker);
    let second = run(&mut c, "sleep 30");
    assert_eq!(
        forked(),
        2,
        "the second start did not go through a new forker"
    );
    let again = one_forker();
    assert_ne!(again, forker);
    // It reaps its starters: none of its children stays a zombie.
    let zombie = |p: &str| p.parse().is_ok_and(|p| !proc_alive(p));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let kids =
            fs::read_to_string(format!("/proc/{again}/task/{again}/children")).unwrap_or_default();
        if !kids.split_whitespace().any(zombie) {
            break;
        }
        assert!(Instant::now() < deadline, "unreaped starters: {kids}");
        std::thread::sleep(Duration::from_millis(20));
    }
    for id in [&first, &second] {
        let st = c.state(id).expect("state");
        assert_eq!(st.phase, Phase::Running, "{id}: {st:?}");
        c.delete(id, true).expect("delete");
    }
}

#[test]
fn on_failure_restarts_up_to_the_limit() {
    let ctx = Ctx::new("sup-restart");
    let sup = Sup::start(&ctx);
    let mut c = sup.client();
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.sh("echo run; exit 1");
    let mut s = spec(&ctx, &b, &id);
    s.restart = RestartPolicy::OnFailure { max_retries: 2 };
    c.start(s.clone()).expect("start");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = c.state(&id).expect("state");
        if st.phase == Phase::Exited && st.restart_count == 2 {
            assert_eq!(st.exit_code, Some(1));
            break;
        }
        assert!(Instant::now() < deadline, "no final exit: {st:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Three runs: the first and two restarts.
    let runs = log_lines(&s.log_path)
        .iter()
        .filter(|(_, l)| l == "run\n")
        .count();
    assert_eq!(runs, 3);
}

#[test]
fn a_network_namespace_sent_with_the_start_is_held_for_restarts_then_released() {
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::fs::MetadataExt;
    let ctx = Ctx::new("sup-netns");
    let sup = Sup::start(&ctx);
    let mut c = sup.client();
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.sh("readlink /proc/self/ns/net; exit 1");
    let mut s = spec(&ctx, &b, &id);
    s.restart = RestartPolicy::OnFailure { max_retries: 2 };
    // A namespace held by this descriptor only.
    let ns: OwnedFd = std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        OwnedFd::from(std::fs::File::open("/proc/thread-self/ns/net").expect("open"))
    })
    .join()
    .expect("thread");
    let want = format!(
        "net:[{}]\n",
        std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&ns)
        ))
        .expect("stat")
        .ino()
    );
    c.start_in(s.clone(), Some(ns.as_fd())).expect("start");
    drop(ns);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = c.state(&id).expect("state");
        if st.phase == Phase::Exited && st.restart_count == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no final exit: {st:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every run, restarts included, was in that namespace.
    let runs: Vec<String> = log_lines(&s.log_path).into_iter().map(|(_, l)| l).collect();
    assert_eq!(runs, vec![want.clone(); 3]);
    // After the final exit the supervisor let go of it.
    let pid = c.ping().expect("ping");
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .flatten()
    {
        let link = std::fs::read_link(e.path()).unwrap_or_default();
        assert_ne!(format!("{}\n", link.display()), want, "still held");
    }
    // A start that names a namespace but sends none is refused.
    let mut t = spec(&ctx, &b, &ctx.id());
    t.netns = true;
    let e = c.start(t).expect_err("no descriptor");
    assert!(e.to_string().contains("network namespace"), "{e}");
}

#[test]
fn stdin_is_passed_and_closing_it_ends_cat() {
    let ctx = Ctx::new("sup-stdin");
    let sup = Sup::start(&ctx);
    let mut c = sup.client();
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.args(&["cat"]);
    let mut s = spec(&ctx, &b, &id);
    s.open_stdin = true;
    c.start(s.clone()).expect("start");
    let fd = c.stdin(&id).expect("stdin");
    let mut w = std::fs::File::from(fd);
    w.write_all(b"piped through\n").unwrap();
    drop(w);
    let st = wait_exited(&mut c, &id);
    assert_eq!(st.exit_code, Some(0));
    assert_eq!(
        log_lines(&s.log_path),
        vec![(Stream::Stdout, "piped through\n".to_string())]
    );
}

#[test]
fn exec_gets_its_own_pipes_and_exit_code() {
    let ctx = Ctx::new("sup-exec");
    let sup = Sup::start(&ctx);
    let mut c = sup.client();
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "60"]);
    c.start(spec(&ctx, &b, &id)).expect("start");
    let process = json!({
        "args": ["sh", "-c", "echo from-exec $$; echo e >&2; exit 5"],
        "cwd": "/", "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin:/usr/bin"]
    });
    let (pid, tty, fds) = c
        .exec(ExecSpec {
            container: id.clone(),
            exec_id: "e1".into(),
            process,
            stdin: false,
        })
        .expect("exec");
    assert!(pid > 0 && !tty && fds.len() == 3);
    let mut it = fds.into_iter();
    let _stdin = it.next();
    let mut out = String::new();
    std::fs::File::from(it.next().unwrap())
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    std::fs::File::from(it.next().unwrap())
        .read_to_string(&mut err)
        .unwrap();
    // Same pid namespace as the container: not pid 1.
    assert!(out.starts_with("from-exec "), "{out}");
    assert_ne!(out.trim(), "from-exec 1");
    assert_eq!(err, "e\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = c.exec_state("e1").expect("exec state");
        if !st.running {
            assert_eq!(st.exit_code, Some(5));
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    c.delete(&id, true).expect("force delete");
}

#[test]
fn containers_outlive_the_supervisor_and_delete_refuses_running_ones() {
    let ctx = Ctx::new("sup-outlive");
    let mut sup = Sup::start(&ctx);
    let mut c = sup.client();
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.args(&["sleep", "60"]);
    let pid = c.start(spec(&ctx, &b, &id)).expect("start");
    let err = c.delete(&id, false).unwrap_err().to_string();
    assert!(err.contains("running"), "{err}");
    drop(c);
    sup.stop();
    std::thread::sleep(Duration::from_millis(100));
    assert!(proc_alive(pid), "the container died with the supervisor");
    // Clean up through the runtime (the supervisor is gone).
    let out = Command::new(env!("CARGO_BIN_EXE_strato"))
        .args(["runtime", "--root"])
        .arg(sup.runtime_root())
        .args(["delete", "--force", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc_alive(pid) {
        assert!(Instant::now() < deadline, "container still alive");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_tty_container_logs_its_terminal_output() {
    let ctx = Ctx::new("sup-tty");
    let sup = Sup::start(&ctx);
    let mut c = sup.client();
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.sh("test -t 1 && echo on-a-tty")
        .set("/process/terminal", json!(true));
    let mut s = spec(&ctx, &b, &id);
    s.tty = true;
    c.start(s.clone()).expect("start");
    let st = wait_exited(&mut c, &id);
    assert_eq!(st.exit_code, Some(0), "{st:?}");
    let text: String = log_lines(&s.log_path).into_iter().map(|(_, l)| l).collect();
    assert!(text.contains("on-a-tty"), "{text:?}");
}

/// Starts overlap (each runs in its own starter process): many clients
/// starting at once all get running containers with their own pids, and
/// containers that exit before their start is reported still have their
/// exit recorded.
#[test]
fn concurrent_starts_from_many_clients_all_run() {
    let ctx = Ctx::new("sup-concurrent");
    let sup = Sup::start(&ctx);
    let mut specs = Vec::new();
    for i in 0..16 {
        let id = format!("{}-{i}", ctx.id());
        let mut b = ctx.bundle(&id);
        if i % 4 == 3 {
            b.sh("exit 7");
        } else {
            b.args(&["sleep", "60"]);
        }
        specs.push(spec(&ctx, &b, &id));
    }
    let threads: Vec<_> = specs
        .chunks(4)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            let root = sup.root.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&root).expect("connect");
                chunk
                    .into_iter()
                    .map(|s| (s.id.clone(), c.start(s).expect("start")))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let started: Vec<(String, i32)> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a starting thread"))
        .collect();
    assert_eq!(started.len(), 16);
    let mut pids: Vec<i32> = started.iter().map(|(_, p)| *p).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 16, "pids are not distinct: {started:?}");
    let mut c = sup.client();
    for (i, (id, pid)) in started.iter().enumerate() {
        let n: usize = id.rsplit('-').next().unwrap().parse().unwrap();
        if n % 4 == 3 {
            let st = wait_exited(&mut c, id);
            assert_eq!(st.exit_code, Some(7), "{st:?}");
        } else {
            let st = c.state(id).expect("state");
            assert_eq!(st.phase, Phase::Running, "{i}: {st:?}");
            assert_eq!(st.pid, *pid);
            assert!(proc_alive(*pid), "{id} is not running");
        }
    }
    for (id, pid) in &started {
        c.delete(id, true).expect("delete");
        let deadline = Instant::now() + Duration::from_secs(5);
        while proc_alive(*pid) {
            assert!(Instant::now() < deadline, "{id} still alive");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_gone_soon(&sup.runtime_root().join(id));
    }
}

/// The supervisor releases a container's runtime state right after it
/// answers (or tells of the exit): `path` must be gone within moments.
fn assert_gone_soon(path: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} is still there",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A start that fails in the runtime answers with the runtime's error,
/// records the container exited with it, and leaves no process, runtime
/// state or cgroup; the supervisor goes on serving.
#[test]
fn a_failed_start_reports_the_error_and_leaves_nothing() {
    let ctx = Ctx::new("sup-failstart");
    let sup = Sup::start(&ctx);
    let mut c = sup.client();
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.args(&["/no/such/program"]);
    let err = c.start(spec(&ctx, &b, &id)).unwrap_err().to_string();
    assert!(err.contains("/no/such/program"), "{err}");
    let st = c.state(&id).expect("state");
    assert_eq!(st.phase, Phase::Exited);
    assert_eq!(st.exit_code, Some(127));
    assert!(
        st.error
            .as_deref()
            .is_some_and(|e| e.contains("/no/such/program")),
        "{st:?}"
    );
    assert!(!sup.runtime_root().join(&id).exists());
    for d in cgroup_dirs(&cgroups_path(&id)) {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    // The same client starts the next container on the same connection.
    let ok = format!("{id}-ok");
    let mut b2 = ctx.bundle(&ok);
    b2.args(&["sleep", "60"]);
    let pid = c
        .start(spec(&ctx, &b2, &ok))
        .expect("start after a failure");
    assert!(proc_alive(pid));
    c.delete(&ok, true).expect("delete");
    c.delete(&id, false).expect("delete the failed one");
}

/// Whether process `pid` is gone (or a zombie left for its reaper).
fn process_gone(pid: i32) -> bool {
    strato_container::state::process_start_time(pid).is_none()
}

fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process_gone(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still there");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_prepared_container_waits_unlisted_and_its_start_runs_that_process() {
    let ctx = Ctx::new("sup-prep");
    let sup = Sup::start(&ctx);
    let mut c = sup.client();
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.sh("echo ran; exit 4");
    let s = spec(&ctx, &b, &id);
    let pid = c.prepare(s.clone(), None).expect("prepare");
    assert!(!process_gone(pid), "the prepared process waits");
    assert!(sup.runtime_root().join(&id).exists());
    assert!(
        c.list().expect("list").iter().all(|st| st.spec.id != id),
        "a prepared container is not listed"
    );
    assert!(c.state(&id).is_err(), "nor has it a status");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        log_lines(&s.log_path).is_empty(),
        "nothing ran before the start"
    );
    let (started, status) = c.start_status(s.clone(), None, true).expect("start");
    assert_eq!(started, pid, "the start runs the prepared process");
    assert!(status.is_some_and(|st| st.pid == pid));
    let st = wait_exited(&mut c, &id);
    assert_eq!(st.exit_code, Some(4), "{st:?}");
    assert_eq!(log_lines(&s.log_path), [(Stream::Stdout, "ran\n".into())]);
}

#[test]
fn a_start_sent_behind_its_preparation_finishes_it_or_starts_anew() {
    let ctx = Ctx::new("sup-pipe");
    let sup = Sup::start(&ctx);
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.sh("echo ran; exit 4");
    let s = spec(&ctx, &b, &id);
    // Both on one connection, the start before the preparation answered.
    let mut c = sup.client();
    c.send_prepare(s.clone(), None)
        .expect("send the preparation");
    let (pid, status, prepared) = c.start_prepared(s.clone(), None).expect("start");
    assert_eq!(prepared, Some(pid), "the start runs the prepared process");
    assert!(status.is_some_and(|st| st.pid == pid));
    let st = wait_exited(&mut c, &id);
    assert_eq!(st.exit_code, Some(4), "{st:?}");
    assert_eq!(log_lines(&s.log_path), [(Stream::Stdout, "ran\n".into())]);

    // A preparation that fails: the start behind it fails the same way,
    // recorded as any failed start.
    let id2 = ctx.id();
    let mut b2 = ctx.bundle(&id2);
    b2.args(&["/no/such/command"]);
    let s2 = spec(&ctx, &b2, &id2);
    let mut c2 = sup.client();
    c2.send_prepare(s2.clone(), None)
        .expect("send the preparation");
    let err = c2.start_prepared(s2, None).expect_err("no such command");
    assert!(err.to_string().contains("/no/such/command"), "{err}");
    let st = c2.state(&id2).expect("a failed start's record");
    assert_eq!(
        (st.phase, st.exit_code),
        (Phase::Exited, Some(127)),
        "{st:?}"
    );
    assert!(st.error.is_some_and(|e| e.contains("/no/such/command")));
}

#[test]
fn an_auto_remove_container_is_forgotten_once_its_exit_is_told() {
    let ctx = Ctx::new("sup-autorm");
    let sup = Sup::start(&ctx);
    let mut c = sup.client();
    let events = sup.client().events().expect("events");
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.sh("exit 5");
    let mut s = spec(&ctx, &b, &id);
    s.auto_remove = true;
    c.start(s).expect("start");
    let seen: Vec<Event> = events.take(3).map(|e| e.expect("event")).collect();
    // The exit carries the last status, then the container is gone.
    assert!(
        matches!(&seen[1], Event::Exit { id: i, code: 5, status: Some(st), .. }
            if *i == id && st.phase == Phase::Exited && st.exit_code == Some(5)),
        "{seen:?}"
    );
    assert!(
        matches!(&seen[2], Event::Destroy { id: i, .. } if *i == id),
        "{seen:?}"
    );
    assert!(c.state(&id).is_err(), "forgotten");
    assert_gone_soon(&sup.runtime_root().join(&id));
}

#[test]
fn a_prepared_container_goes_with_a_delete_a_start_without_it_or_its_time() {
    let ctx = Ctx::new("sup-unprep");
    let sup = Sup::start(&ctx);
    let mut c = sup.client();
    let id = ctx.id();
    let mut b = ctx.bundle(&id);
    b.sh("echo ran");
    let s = spec(&ctx, &b, &id);

    // A delete: nothing is left.
    let pid = c.prepare(s.clone(), None).expect("prepare");
    c.delete(&id, false).expect("delete a prepared container");
    wait_gone(pid);
    assert!(!sup.runtime_root().join(&id).exists());

    // A start that does not ask for it: a new process runs.
    let old = c.prepare(s.clone(), None).expect("prepare");
    let (new, _) = c.start_status(s.clone(), None, false).expect("start");
    assert_ne!(new, old);
    wait_gone(old);
    let st = wait_exited(&mut c, &id);
    assert_eq!(st.exit_code, Some(0), "{st:?}");
    c.delete(&id, false).expect("delete");

    // Unstarted for PREPARED_TTL: discarded.
    let pid = c.prepare(s.clone(), None).expect("prepare");
    std::thread::sleep(strato_supervisor::protocol::PREPARED_TTL + Duration::from_millis(500));
    wait_gone(pid);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sup.runtime_root().join(&id).exists() {
        assert!(Instant::now() < deadline, "the runtime state stayed");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A start that asks for it then starts anew.
    let (pid2, _) = c.start_status(s.clone(), None, true).expect("start");
    assert_ne!(pid2, pid);
    let st = wait_exited(&mut c, &id);
    assert_eq!(st.exit_code, Some(0), "{st:?}");
}
