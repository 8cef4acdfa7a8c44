//! Integration tests of the engine core (strato-engine) without the HTTP
//! layer: an image imported from the busybox rootfs, containers created,
//! started on the bridge network, logged, waited for and removed, with real
//! overlay mounts, namespaces, veths and nftables rules.

mod common;

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
