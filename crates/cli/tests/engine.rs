//! Integration tests of the engine core (strato-engine) without the HTTP
//! layer: an image imported from the busybox rootfs, containers created,
//! started on the bridge network, logged, waited for and removed, with real
//! overlay mounts, namespaces, veths and nftables rules.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use strato_engine::engine::{CreateRequest, Engine, EngineConfig, NetworkMode};
use strato_engine::model::ContainerConfig;
use strato_supervisor::logs::read_all;

struct Env {
    engine: Arc<Engine>,
    exec_root: PathBuf,
    bridge: String,
    table: String,
    _ctx: Ctx,
}

impl Drop for Env {
    fn drop(&mut self) {
        // Stop the supervisor of this test; its containers were removed.
        if let Ok(mut c) = strato_supervisor::Client::connect(&self.exec_root.join("supervisor")) {
            if let Ok(pid) = c.ping() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        // The test's default network: its bridge and its nftables table.
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.table])
            .status();
    }
}

fn tar_of(dir: &Path) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .expect("tar");
    assert!(out.status.success());
    out.stdout
}

async fn env(name: &str) -> Env {
    let ctx = Ctx::new(name);
    let data_root = ctx.dir().join("data");
    let exec_root = ctx.dir().join("exec");
    // A network pool, bridge and nft table of this test only (benchmark range).
    let mut net = strato_network::Config::new(data_root.join("network"));
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let n = (std::process::id() * 4 + seq) % 240 + 10;
    net.pool = format!("198.18.{n}.0/24").parse().unwrap();
    net.subnet_prefix = 26;
    net.default_bridge = format!("stt{}x{seq}", std::process::id() % 100_000);
    net.table = format!("strato_t{}x{seq}", std::process::id());
    let (bridge, table) = (net.default_bridge.clone(), net.table.clone());
    let engine = Engine::open(EngineConfig {
        data_root,
        exec_root: exec_root.clone(),
        strato_bin: PathBuf::from(env!("CARGO_BIN_EXE_strato")),
        network: Some(net),
        insecure_registries: Vec::new(),
        prepare_starts: true,
        init: false,
        init_path: None,
    })
    .await
    .expect("open the engine");
    let tar = tar_of(rootfs_cache());
    let images = engine.images().clone();
    tokio::task::spawn_blocking(move || images.import(tar.as_slice(), Some("busybox:latest")))
        .await
        .unwrap()
        .expect("import busybox");
    Env {
        engine,
        exec_root,
        bridge,
        table,
        _ctx: ctx,
    }
}

fn request(cmd: &[&str], network: NetworkMode) -> CreateRequest {
    CreateRequest {
        image: "busybox".into(),
        config: ContainerConfig {
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        network: Some(network),
        ..Default::default()
    }
}

fn log_text(engine: &Engine, id: &str) -> String {
    read_all(&engine.log_path(id))
        .unwrap()
        .into_iter()
        .map(|e| e.log)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_on_the_bridge_log_wait_and_remove() {
    let env = env("engine-run").await;
    let e = &env.engine;
    let id = e
        .create(request(
            &[
                "sh",
                "-c",
                "echo hello; ip -4 addr show eth0 | grep inet; cat /etc/hostname; exit 7",
            ],
            NetworkMode::Bridge("bridge".into()),
        ))
        .await
        .expect("create");
    let waiter = {
        let e = e.clone();
        let id = id.clone();
        tokio::spawn(async move { e.wait(&id, true).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    e.start(&id).await.expect("start");
    let code = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("wait timed out")
        .unwrap()
        .expect("wait");
    assert_eq!(code, 7);
    let text = log_text(e, &id);
    assert!(text.contains("hello\n"), "{text}");
    assert!(text.contains("inet 198.18."), "{text}");
    assert!(text.contains(&id[..12]), "{text}");
    // After the exit: no mount, no namespace, no endpoint.
    let rec = e.record(&id).unwrap();
    assert!(rec.endpoint.is_none());
    assert!(!env.exec_root.join("netns").join(&id).exists());
    e.remove(&id, false).await.expect("remove");
    assert!(e.record(&id).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_conflicts_and_removing_a_running_container() {
    let env = env("engine-names").await;
    let e = &env.engine;
    let mut req = request(&["sleep", "60"], NetworkMode::None);
    req.name = Some("web".into());
    let id = e.create(req.clone()).await.expect("create");
    let err = e.create(req).await.unwrap_err().to_string();
    assert!(err.contains("already in use"), "{err}");
    assert_eq!(e.resolve("web").unwrap(), id);
    assert_eq!(e.resolve(&id[..10]).unwrap(), id);
    e.start("web").await.expect("start");
    let err = e.remove("web", false).await.unwrap_err().to_string();
    assert!(err.contains("running"), "{err}");
    let pids = e.pids("web").unwrap();
    assert!(!pids.is_empty());
    e.stop("web", Some(1), None).await.expect("stop");
    let st = e.record("web").unwrap().status.unwrap();
    assert_eq!(st.phase, strato_supervisor::Phase::Exited);
    e.remove("web", false).await.expect("remove");
    for p in pids {
        assert!(!proc_alive(p));
    }
    let err = e.create(request(&[], NetworkMode::None)).await;
    // busybox from a rootfs import has no Cmd: a command is required.
    assert!(err.is_err());
}

/// The pid of the process the supervisor's runtime holds for `id` (a
/// prepared start's, while it waits), once there is one.
async fn prepared_pid(env: &Env, id: &str) -> i32 {
    let state = env
        .exec_root
        .join("supervisor/runtime")
        .join(id)
        .join("state.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["pid"].as_i64())
        {
            return pid as i32;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no start was prepared for {id}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn run_to_exit(e: &Arc<Engine>, id: &str) -> i32 {
    let waiter = {
        let (e, id) = (e.clone(), id.to_string());
        tokio::spawn(async move { e.wait(&id, true).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    e.start(id).await.expect("start");
    tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("wait timed out")
        .unwrap()
        .expect("wait")
}

/// A create as the docker CLI's `run` sends it: attached to the output.
fn attached(cmd: &[&str]) -> CreateRequest {
    let mut req = request(cmd, NetworkMode::None);
    req.raw = serde_json::json!({"AttachStdout": true, "AttachStderr": true});
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_prepared_at_create_run_and_outdated_or_unused_ones_go() {
    let env = env("engine-prepared").await;
    let e = &env.engine;
    let cmd = [
        "sh",
        "-c",
        "echo from $(hostname); cat /x 2>/dev/null; exit 5",
    ];

    // Not attached (`run -d`): started at once, nothing prepared.
    let id = e.create(request(&cmd, NetworkMode::None)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!env.exec_root.join("supervisor/runtime").join(&id).exists());
    e.remove(&id, false).await.unwrap();

    // Created: its process waits; the start runs that very process.
    let id = e.create(attached(&cmd)).await.unwrap();
    let pid = prepared_pid(&env, &id).await;
    assert!(proc_alive(pid));
    assert!(e.record(&id).unwrap().status.is_none(), "still created");
    assert_eq!(run_to_exit(e, &id).await, 5);
    let st = e.record(&id).unwrap().status.unwrap();
    assert_eq!(st.pid, 0, "exited: {st:?}");
    assert!(log_text(e, &id).contains(&format!("from {}", &id[..12])));
    e.remove(&id, false).await.unwrap();

    // Renamed after the create: the record changed, the start makes a new
    // process (the prepared one goes), and the container runs all the same.
    let id = e.create(attached(&cmd)).await.unwrap();
    let pid = prepared_pid(&env, &id).await;
    e.rename(&id, "prepared-renamed").unwrap();
    assert_eq!(run_to_exit(e, "prepared-renamed").await, 5);
    assert!(!proc_alive(pid), "the outdated prepared process is gone");
    e.remove(&id, false).await.unwrap();

    // Discarded before a copy reaches the layer: what it wrote is seen.
    let id = e.create(attached(&cmd)).await.unwrap();
    let pid = prepared_pid(&env, &id).await;
    e.unprepare(&id).await;
    assert!(!proc_alive(pid));
    // As a copy into a created container writes (through a mount of its own).
    let upper = e
        .config()
        .data_root
        .join("images/containers")
        .join(&id)
        .join("upper");
    fs::write(upper.join("x"), "copied\n").unwrap();
    assert_eq!(run_to_exit(e, &id).await, 5);
    assert!(log_text(e, &id).contains("copied\n"));
    e.remove(&id, false).await.unwrap();

    // Removed while created: no process, no runtime state.
    let id = e.create(attached(&cmd)).await.unwrap();
    let pid = prepared_pid(&env, &id).await;
    e.remove(&id, false).await.unwrap();
    assert!(!proc_alive(pid));
    assert!(!env.exec_root.join("supervisor/runtime").join(&id).exists());

    // On the bridge: the address comes with the start, into the prepared
    // namespace, and /etc/hosts (mounted at the create) names it.
    let mut req = attached(&["sh", "-c", "ip -4 addr show eth0; cat /etc/hosts; exit 6"]);
    req.network = Some(NetworkMode::Bridge("bridge".into()));
    let id = e.create(req).await.unwrap();
    let pid = prepared_pid(&env, &id).await;
    assert!(e.record(&id).unwrap().endpoint.is_none(), "no address yet");
    assert_eq!(run_to_exit(e, &id).await, 6);
    let text = log_text(e, &id);
    let ip = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_default()
        .to_string();
    assert!(ip.starts_with("198.18."), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&ip) && l.contains(&id[..12])),
        "{text}"
    );
    e.remove(&id, false).await.unwrap();
    assert!(!proc_alive(pid));
}
