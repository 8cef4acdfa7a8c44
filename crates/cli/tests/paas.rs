//! End-to-end test of the PaaS on real containers: a real `strato daemon
//! --paas` with a private data root, exec root, address pool (100.74/16),
//! bridge and nftables table; `strato up` builds the sample image,
//! registers the samples (mysql then php, a startup order) and deploys
//! them; then the load balancer, scale-out under load, scale-in, a killed
//! member, a daemon restart and undeploy are checked through the CLI, the
//! API and plain sockets. Everything is removed when the test ends.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const APP: &str = "php-mysql-app";
const PHP: &str = "php-mysql-app.my-php.php.domain";
const MYSQL: &str = "php-mysql-app.my-mysql.mysql.domain";

struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    exec_root: PathBuf,
    bridge: String,
    table: String,
    args: Vec<String>,
    _ctx: Ctx,
}

/// A port offset under which the sample's proxy ports (8280, 13306) are
/// free; test `k` of this binary searches its own range.
fn free_offset(k: i32) -> i32 {
    let base = 20_000 + (std::process::id() % 20_000) as i32 + k * 1_500;
    for k in 0..200 {
        let off = base + k * 7;
        let free = |p: i32| TcpListener::bind(("0.0.0.0", p as u16)).is_ok();
        if 13306 + off < 65_000 && free(8280 + off) && free(13306 + off) {
            return off;
        }
    }
    panic!("no free port pair for the load balancer");
}

/// A host provider program in `dir` (level 2): it appends each request to
/// `host-requests.jsonl` there and answers the host in `host-offer.json`
/// when that file exists, else nothing.
fn host_provider(dir: &Path) -> PathBuf {
    let p = dir.join("host-provider");
    let script = format!(
        "#!/bin/sh\ncat >> {d}/host-requests.jsonl\necho >> {d}/host-requests.jsonl\n[ -f {d}/host-offer.json ] && cat {d}/host-offer.json\nexit 0\n",
        d = dir.display()
    );
    fs::write(&p, script).unwrap();
    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

impl Daemon {
    /// A daemon for test `k` (0 to 2) of this binary: its own pool, bridge
    /// and table, so the tests run side by side.
    fn start(name: &str, offset: i32, k: u32) -> Daemon {
        let ctx = Ctx::new(name);
        let dir = ctx.dir().to_path_buf();
        let n = std::process::id() % 80 + 10 + 80 * k;
        let bridge = format!("stp{k}{}", std::process::id() % 100_000);
        let table = format!("strato_p{k}{}", std::process::id());
        let exec_root = dir.join("exec");
        let args: Vec<String> = [
            "daemon".to_string(),
            "--host".into(),
            format!("unix://{}", dir.join("d.sock").display()),
            "--data-root".into(),
            dir.join("data").display().to_string(),
            "--exec-root".into(),
            exec_root.display().to_string(),
            // 100.74/16: apart from the other tests' 198.18, 198.19 and 100.72.
            "--bridge-pool".into(),
            format!("100.74.{n}.0/24"),
            "--subnet-prefix".into(),
            "26".into(),
            "--bridge-name".into(),
            bridge.clone(),
            "--nft-table".into(),
            table.clone(),
            "--paas".into(),
            "--paas-host".into(),
            format!("unix://{}", dir.join("p.sock").display()),
            "--paas-port-offset".into(),
            offset.to_string(),
            "--paas-cooldown-ms".into(),
            "2000".into(),
            "--paas-window-ms".into(),
            "4000".into(),
            "--paas-drain-timeout".into(),
            "5".into(),
            "--paas-host-provider".into(),
            host_provider(&dir).display().to_string(),
        ]
        .into();
        let mut d = Daemon {
            child: None,
            dir,
            exec_root,
            bridge,
            table,
            args,
            _ctx: ctx,
        };
        d.spawn();
        d
    }

    /// A daemon for test `k` with the sample image built (by `strato up`,
    /// whose sample application is undeployed again) and the `tiny`
    /// cartridge added; with the port of tiny's listener.
    fn with_tiny(name: &str, k: u32) -> (Daemon, u16) {
        rootfs_cache();
        let offset = free_offset(i32::try_from(k).unwrap());
        let d = Daemon::start(name, offset, k);
        let up = d.strato(&["up", "--timeout", "120"]);
        assert!(up.success(), "{up}\n{}", tail(&d.log()));
        d.strato(&["application", "undeploy", APP, "--wait"]).ok();
        d.add(&["cartridge"], "tiny.json", &tiny_cartridge("tiny", 8280));
        (d, (8280 + offset) as u16)
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .expect("daemon log");
        let child = Command::new(env!("CARGO_BIN_EXE_strato"))
            .args(&self.args)
            .env_remove("STRATO_HOST")
            .env_remove("STRATO_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start strato daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(self.dir.join("p.sock").exists() && self.strato(&["version"]).success()) {
            assert!(
                Instant::now() < deadline,
                "the daemon did not answer within 20 s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        common::stop_daemon(self.child.take());
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// `strato -H <daemon> --paas-host <its PaaS> ARGS` (flags after the verb
    /// for the PaaS verbs, which take `--paas-host` anywhere).
    fn strato(&self, args: &[&str]) -> Out {
        strato_at(&self.dir, args)
    }

    fn runtime(&self) -> Option<Value> {
        self.runtime_of(APP)
    }

    /// `strato application watch APP` running until the guard drops,
    /// with the file its output goes to.
    fn watch(&self, app: &str) -> (KillOnDrop, PathBuf) {
        let file = self.dir.join(format!("watch-{app}.txt"));
        let child = Command::new(env!("CARGO_BIN_EXE_strato"))
            .args(["application", "watch", app, "--paas-host"])
            .arg(format!("unix://{}", self.dir.join("p.sock").display()))
            .stdout(fs::File::create(&file).unwrap())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        (KillOnDrop(child), file)
    }

    /// Writes a definition into the daemon's directory; its path.
    fn write(&self, name: &str, json: &str) -> String {
        let p = self.dir.join(name);
        fs::write(&p, json).unwrap();
        p.display().to_string()
    }

    /// `strato KIND... add -f FILE` for a definition written first.
    fn add(&self, verb: &[&str], name: &str, json: &str) {
        let file = self.write(name, json);
        let mut args = verb.to_vec();
        args.extend(["add", "-f", &file]);
        self.strato(&args).ok();
    }

    /// `strato application runtime APP`: `None` once it is not deployed.
    fn runtime_of(&self, app: &str) -> Option<Value> {
        let out = self.strato(&["application", "runtime", app]);
        out.success()
            .then(|| serde_json::from_str(&out.stdout).expect("runtime JSON"))
    }

    /// Members of a cluster: (member id, status, container id).
    fn members(&self, cluster: &str) -> Vec<(String, String, String)> {
        let Some(rt) = self.runtime() else {
            return Vec::new();
        };
        rt["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["clusterId"] == cluster)
            .flat_map(|c| c["members"].as_array().unwrap().clone())
            .map(|m| {
                (
                    m["memberId"].as_str().unwrap_or("").to_owned(),
                    m["status"].as_str().unwrap_or("").to_owned(),
                    m["containerId"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    fn active(&self, cluster: &str) -> Vec<String> {
        self.members(cluster)
            .into_iter()
            .filter(|m| m.1 == "Active")
            .map(|m| m.0)
            .collect()
    }

    /// Waits (at most `secs`) until `f` holds; `what` names it on failure.
    fn until(&self, secs: u64, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f() {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {secs} s; runtime: {:#?}\ndaemon log:\n{}",
                self.runtime(),
                tail(&self.log())
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `strato ARGS` against the daemon whose sockets are in `dir`.
fn strato_at(dir: &Path, args: &[&str]) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strato"));
    c.arg("-H")
        .arg(format!("unix://{}", dir.join("d.sock").display()))
        .args(args)
        .env(
            "STRATO_PAAS_HOST",
            format!("unix://{}", dir.join("p.sock").display()),
        )
        .env_remove("STRATO_HOST")
        .env_remove("STRATO_TOKEN")
        .stdin(Stdio::null());
    run_out(c, args)
}

/// Runs `c` (at most [`CMD_TIMEOUT`]) and collects its output.
fn run_out(mut c: Command, args: &[&str]) -> Out {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let k = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir();
    let tag = format!("strato-paas-it.{}.{k}", std::process::id());
    let (o, e) = (
        dir.join(format!("{tag}.out")),
        dir.join(format!("{tag}.err")),
    );
    c.stdout(fs::File::create(&o).unwrap())
        .stderr(fs::File::create(&e).unwrap());
    let mut child = c.spawn().expect("run strato");
    let deadline = Instant::now() + CMD_TIMEOUT * 3;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strato {} did not finish in time", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read = |p: &Path| {
        let s = fs::read_to_string(p).unwrap_or_default();
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

fn tail(s: &str) -> &str {
    let mut i = s.len().saturating_sub(6000);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.strato(&["ps", "-aq"]).stdout;
            for id in ids.split_whitespace() {
                let _ = self.strato(&["rm", "-f", id]);
            }
        }
        self.stop();
        common::clean_daemon_leftovers(&self.exec_root, &self.bridge, &self.table, &self.dir);
    }
}

/// One HTTP/1.0 GET on 127.0.0.1:port; the whole answer.
fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: sample\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Lines of the `application watch` output file.
fn watch_lines(p: &Path) -> Vec<String> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `n` clients that each keep one slow request (2 s) in flight on the
/// load balancer at `port`, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, n: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..n)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = get(port, "/cgi-bin/slow?2");
                    }
                })
            })
            .collect();
        Load { stop, clients }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.clients {
            t.join().unwrap();
        }
    }
}

/// A small cartridge of the sample image: HTTP on 80 behind proxyPort
/// 8280 (`tiny`), or without a listener (`tinydb`).
fn tiny_cartridge(ty: &str, proxy_port: u16) -> String {
    format!(
        r#"{{ "type": "{ty}", "provider": "strato", "category": "framework",
  "host": "strato.local", "displayName": "{ty}", "description": "sample HTTP server, small",
  "version": "1", "multiTenant": "false",
  "portMapping": [ {{ "name": "http", "protocol": "http", "port": "80", "proxyPort": "{proxy_port}" }} ],
  "iaasProvider": [ {{ "type": "strato", "imageId": "strato/sample-http:1", "property": [] }} ],
  "property": [ {{ "name": "cpu", "value": "10m" }}, {{ "name": "memory", "value": "16Mi" }} ] }}"#
    )
}

#[test]
fn paas_deploys_balances_scales_heals_survives_a_restart_and_undeploys() {
    rootfs_cache(); // makes sure a static busybox is installed for the sample image
    let offset = free_offset(0);
    let php_port = (8280 + offset) as u16;
    let mysql_port = (13306 + offset) as u16;
    let mut d = Daemon::start("paas-e2e", offset, 0);

    // A live view, started before the deploy, records the startup order.
    let (_watch, watch_file) = d.watch(APP);

    // strato up against the running daemon: images, samples, deploy, Active.
    let up = d.strato(&["up", "--timeout", "120"]);
    assert!(up.success(), "{up}\n{}", tail(&d.log()));
    assert!(
        up.stdout.contains(&format!("http://127.0.0.1:{php_port}/")),
        "{up}"
    );
    assert_eq!(d.active(MYSQL).len(), 1);
    assert_eq!(d.active(PHP).len(), 1);

    // Startup order: the mysql member was Active before any php member existed.
    d.until(10, "the watch to see the php member Active", || {
        watch_lines(&watch_file)
            .iter()
            .any(|l| l.contains(&format!("{PHP}: member")) && l.contains("Active"))
    });
    let lines = watch_lines(&watch_file);
    let mysql_active = lines
        .iter()
        .position(|l| l.contains(&format!("{MYSQL}: member")) && l.contains(" Active"))
        .expect("mysql Active event");
    let php_created = lines
        .iter()
        .position(|l| l.contains(&format!("{PHP}: member")) && l.contains(" Created"))
        .expect("php Created event");
    assert!(mysql_active < php_created, "{lines:#?}");

    // Through the load balancer: HTTP to php, TCP to "mysql".
    let page = get(php_port, "/").unwrap();
    assert!(page.starts_with("HTTP/1."), "{page}");
    assert!(
        page.contains(&format!("member {}", d.active(PHP)[0])),
        "{page}"
    );
    let tcp = get(mysql_port, "/member.txt").unwrap();
    assert!(tcp.contains(&d.active(MYSQL)[0]), "{tcp}");

    // Load: 30 requests in flight (threshold 20) → ceil(30/20) = 2 members.
    let load = Load::start(php_port, 30);
    let mut most = 0;
    d.until(90, "scale-out to 2 php members", || {
        let m = d.members(PHP);
        most = most.max(m.len());
        m.iter().filter(|m| m.1 == "Active").count() == 2
    });
    for _ in 0..5 {
        most = most.max(d.members(PHP).len());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(most, 2, "the rule asks for ceil(30 / 20) = 2 members");
    let rt = d.runtime().unwrap();
    let php = rt["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["clusterId"] == PHP)
        .unwrap()
        .clone();
    assert_eq!(
        php["lastEvaluation"]["figures"]["requiredByRequestsInFlight"], 2,
        "{php:#}"
    );

    // Load removed → back to the minimum of 1.
    load.stop();
    d.until(90, "scale-in to 1 php member", || d.members(PHP).len() == 1);
    assert!(watch_lines(&watch_file)
        .iter()
        .any(|l| l.contains("scaleDown")));

    // A killed member is replaced and the LB serves the new one.
    let (old, _, container) = d.members(PHP).remove(0);
    d.strato(&["kill", &container]).ok();
    d.until(60, "the killed member's replacement", || {
        let a = d.active(PHP);
        a.len() == 1 && a[0] != old
    });
    let new = d.active(PHP)[0].clone();
    d.until(10, "the LB to serve the replacement", || {
        get(php_port, "/member.txt").is_ok_and(|p| p.contains(&new))
    });

    // Daemon restart: the running members are adopted, not replaced.
    let before: Vec<_> = [d.members(MYSQL), d.members(PHP)].concat();
    d.stop();
    d.spawn();
    d.until(20, "the restarted controller to adopt its members", || {
        let now: Vec<_> = [d.members(MYSQL), d.members(PHP)].concat();
        now == before
    });
    d.until(10, "the LB to serve after the restart", || {
        get(php_port, "/member.txt").is_ok_and(|p| p.contains(&new))
    });

    // Undeploy: nothing left, no containers, no listeners.
    d.strato(&["application", "undeploy", APP, "--wait"]).ok();
    let left = d
        .strato(&["ps", "-aq", "--filter", "label=strato.paas.member"])
        .ok();
    assert_eq!(left.stdout.trim(), "", "containers left: {left}");
    assert!(TcpStream::connect(("127.0.0.1", php_port)).is_err());
    assert!(TcpStream::connect(("127.0.0.1", mysql_port)).is_err());
    let lines = watch_lines(&watch_file);
    assert!(
        lines.iter().any(|l| l.contains("applicationUndeployed")),
        "{lines:#?}"
    );
}

/// `(members listed, members with a container, members Active)` of a runtime answer.
fn counts(rt: &Value) -> (usize, usize, usize) {
    let members: Vec<&Value> = rt["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["members"].as_array().into_iter().flatten())
        .collect();
    let with_container = members
        .iter()
        .filter(|m| m["containerId"].is_string())
        .count();
    let active = members.iter().filter(|m| m["status"] == "Active").count();
    (members.len(), with_container, active)
}

/// The PaaS API stays responsive while the controller launches and removes
/// many members: every runtime call during the deploy and the undeploy
/// answers (a hung call fails the test after 30 s, against the sub-second
/// answers expected), and at least one answer catches the engine at work:
/// members with containers, not yet all Active.
#[test]
fn paas_api_answers_while_a_large_deployment_comes_up_and_goes() {
    const N: usize = 24;
    const MANY: &str = "many-app";
    let (d, port) = Daemon::with_tiny("paas-many", 1);
    d.add(
        &["policy", "deployment"],
        "deployment.json",
        &format!(
            r#"{{ "id": "deployment-policy-many", "networkPartitions": [ {{
  "id": "network-partition-local", "partitionAlgo": "one-after-another",
  "partitions": [ {{ "id": "partition-a", "partitionMax": {N} }} ] }} ] }}"#
        ),
    );
    d.add(
        &["application"],
        "many.json",
        &format!(
            r#"{{ "applicationId": "{MANY}", "alias": "{MANY}", "multiTenant": false,
  "components": {{ "cartridges": [ {{ "type": "tiny", "cartridgeMin": {N}, "cartridgeMax": {N},
    "subscribableInfo": {{ "alias": "tiny", "autoscalingPolicy": "autoscaling-policy-web",
      "deploymentPolicy": "deployment-policy-many" }} }} ] }} }}"#
        ),
    );

    // A runtime call that must answer; a hang fails here, not in the harness.
    let runtime = |what: &str| -> Option<Value> {
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = d.dir.clone();
        std::thread::spawn(move || {
            let out = strato_at(&dir, &["application", "runtime", MANY]);
            let _ = tx.send(
                out.success()
                    .then(|| serde_json::from_str::<Value>(&out.stdout).expect("runtime JSON")),
            );
        });
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "the runtime call hung during the {what}; daemon log:\n{}",
                    tail(&d.log())
                )
            })
    };

    d.strato(&["application", "deploy", MANY, "application-policy-local"])
        .ok();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut answers = 0;
    let mut at_work = None;
    loop {
        let rt = runtime("deploy").expect("deployed");
        answers += 1;
        let (listed, with_container, active) = counts(&rt);
        if with_container > 0 && active < N && at_work.is_none() {
            at_work = Some((listed, with_container, active));
        }
        if active == N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all {N} members Active within 300 s: {rt:#}\n{}",
            tail(&d.log())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (listed, with_container, active) =
        at_work.expect("no runtime answer while the members were being launched");
    assert!(answers >= 2, "{answers} answers");
    assert_eq!(listed, N, "every member is decided at once");
    assert!(with_container <= N && active < N);

    // The cartridge's limits hold (the CPU limit is set once it runs).
    let rt = runtime("deploy").expect("deployed");
    let container = rt["clusters"][0]["members"][0]["containerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let limits = d
        .strato(&[
            "inspect",
            "-f",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}",
            &container,
        ])
        .ok();
    assert_eq!(limits.stdout.trim(), "10000000 16777216", "{limits}");

    // All Active means all in the load balancer.
    d.until(10, "the load balancer to serve many-app", || {
        get(port, "/member.txt").is_ok_and(|p| p.contains("tiny-"))
    });

    // Undeploy: the API keeps answering until the application is gone.
    d.strato(&["application", "undeploy", MANY]).ok();
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Some(rt) = runtime("undeploy") {
        assert!(
            Instant::now() < deadline,
            "many-app still deployed after 120 s: {rt:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = d
        .strato(&["ps", "-aq", "--filter", "label=strato.paas.member"])
        .ok();
    assert_eq!(left.stdout.trim(), "", "containers left: {left}");

    // A cartridge group at groupMinInstances 2: two copies of its cluster,
    // each member labelled with its group instance, all in one pool.
    const GRP: &str = "grp-app";
    d.add(
        &["group"],
        "tiny-group.json",
        r#"{ "name": "tiny-group", "cartridges": ["tiny"], "groupScalingEnabled": true }"#,
    );
    d.add(
        &["application"],
        "grp.json",
        &format!(
            r#"{{ "applicationId": "{GRP}", "alias": "{GRP}", "multiTenant": false,
  "components": {{ "groups": [ {{ "name": "tiny-group", "alias": "tg",
    "groupMinInstances": 2, "groupMaxInstances": 3, "groupScalingEnabled": true,
    "cartridges": [ {{ "type": "tiny", "cartridgeMin": 1, "cartridgeMax": 1,
      "subscribableInfo": {{ "alias": "tiny-g", "autoscalingPolicy": "autoscaling-policy-web",
        "deploymentPolicy": "deployment-policy-many" }} }} ] }} ] }} }}"#
        ),
    );
    d.strato(&[
        "application",
        "deploy",
        GRP,
        "application-policy-local",
        "--wait",
    ])
    .ok();
    let rt = d.runtime_of(GRP).expect("deployed");
    let insts: Vec<&str> = rt["groups"][0]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instanceId"].as_str().unwrap())
        .collect();
    assert_eq!(insts, ["tg-1", "tg-2"], "{rt:#}");
    let mut member_insts: Vec<&str> = rt["clusters"][0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["instanceId"].as_str().unwrap())
        .collect();
    member_insts.sort();
    assert_eq!(member_insts, ["tg-1", "tg-2"], "{rt:#}");
    for inst in ["tg-1", "tg-2"] {
        let one = d
            .strato(&[
                "ps",
                "-q",
                "--filter",
                &format!("label=strato.paas.instance={inst}"),
            ])
            .ok();
        assert_eq!(one.stdout.lines().count(), 1, "{inst}: {one}");
    }
    let members = d.strato(&["member", "list", GRP]).ok();
    assert!(
        members.stdout.contains("group tg (tiny-group) instances 2"),
        "{members}"
    );
    d.until(10, "the load balancer to serve grp-app", || {
        get(port, "/member.txt").is_ok_and(|p| p.contains("tiny-g-"))
    });

    // Group scaling: 50 requests in flight over two instances of one
    // member each (threshold 20): ceil(25 / 20) = 2 wanted, cartridgeMax
    // is 1, so the group adds a third instance (50 / 3 → 1 each: enough).
    let instances = || -> Vec<String> {
        d.runtime_of(GRP)
            .and_then(|rt| rt["groups"][0]["instances"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|i| i["instanceId"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let load = Load::start(port, 50);
    d.until(90, "a third group instance", || {
        instances() == ["tg-1", "tg-2", "tg-3"]
    });
    d.until(60, "the third instance's member Active", || {
        d.runtime_of(GRP).is_some_and(|rt| {
            rt["clusters"][0]["members"]
                .as_array()
                .is_some_and(|m| m.iter().filter(|m| m["status"] == "Active").count() == 3)
        })
    });
    assert_eq!(instances().len(), 3, "groupMaxInstances is 3");
    // Load removed: after the deferred decisions and the cooldown the
    // newest instance goes, and the group stays at its minimum.
    load.stop();
    d.until(90, "group scale-in to 2 instances", || {
        instances() == ["tg-1", "tg-2"]
    });
    d.until(30, "the third instance's container to go", || {
        d.strato(&["ps", "-q", "--filter", "label=strato.paas.instance=tg-3"])
            .stdout
            .trim()
            .is_empty()
    });
    d.strato(&["application", "undeploy", GRP, "--wait"]).ok();
    let left = d
        .strato(&["ps", "-aq", "--filter", "label=strato.paas.member"])
        .ok();
    assert_eq!(left.stdout.trim(), "", "containers left: {left}");

    // Level 2: a cluster of hosts with room for one tiny member; the
    // second waits, Pending, and the daemon's host provider program
    // (`--paas-host-provider`) is asked for a host, which it gives.
    const TIGHT: &str = "tight-app";
    d.add(
        &["kubernetes-cluster"],
        "tight-cluster.json",
        r#"{ "clusterId": "tight-cluster",
  "kubernetesMaster": { "hostId": "tight-master", "privateIPAddress": "192.0.2.40" },
  "kubernetesHosts": [ { "hostId": "t1", "privateIPAddress": "192.0.2.41",
    "property": [ { "name": "cpu", "value": "10m" }, { "name": "memory", "value": "16Mi" } ] } ] }"#,
    );
    d.add(
        &["network-partition"],
        "np-tight.json",
        r#"{ "id": "np-tight", "provider": "strato",
  "partitions": [ { "id": "pt", "property": [ { "name": "cluster", "value": "tight-cluster" } ] } ] }"#,
    );
    d.add(
        &["policy", "deployment"],
        "deployment-tight.json",
        r#"{ "id": "deployment-policy-tight", "networkPartitions": [ { "id": "np-tight",
  "partitionAlgo": "one-after-another", "partitions": [ { "id": "pt", "partitionMax": 2 } ] } ] }"#,
    );
    d.add(
        &["policy", "application"],
        "application-policy-tight.json",
        r#"{ "id": "application-policy-tight", "algorithm": "one-after-another",
  "networkPartitions": [ "np-tight" ] }"#,
    );
    d.add(
        &["application"],
        "tight.json",
        &format!(
            r#"{{ "applicationId": "{TIGHT}", "alias": "{TIGHT}", "multiTenant": false,
  "components": {{ "cartridges": [ {{ "type": "tiny", "cartridgeMin": 2, "cartridgeMax": 2,
    "subscribableInfo": {{ "alias": "tiny-t", "autoscalingPolicy": "autoscaling-policy-web",
      "deploymentPolicy": "deployment-policy-tight" }} }} ] }} }}"#
        ),
    );
    d.write(
        "host-offer.json",
        r#"{ "hostId": "t2", "privateIPAddress": "192.0.2.42",
  "property": [ { "name": "cpu", "value": "10m" }, { "name": "memory", "value": "16Mi" } ] }"#,
    );
    d.strato(&["application", "deploy", TIGHT, "application-policy-tight"])
        .ok();
    d.until(120, "both tight-app members Active", || {
        d.runtime_of(TIGHT).is_some_and(|rt| {
            rt["clusters"][0]["members"]
                .as_array()
                .is_some_and(|m| m.iter().filter(|m| m["status"] == "Active").count() == 2)
        })
    });
    let asked = fs::read_to_string(d.dir.join("host-requests.jsonl")).unwrap_or_default();
    let req: Value = serde_json::from_str(asked.lines().next().unwrap_or("null")).unwrap();
    assert_eq!(req["kubernetesClusterId"], "tight-cluster", "{asked}");
    assert_eq!(req["pendingMembers"], 1, "{asked}");
    assert_eq!(req["cpuMillis"], 10, "{asked}");
    let k = d
        .strato(&["kubernetes-cluster", "describe", "tight-cluster"])
        .ok();
    assert!(k.stdout.contains("\"t2\""), "the host is declared now: {k}");
    d.strato(&["application", "undeploy", TIGHT, "--wait"]).ok();
}

/// Instance ids of a group (by alias) in a runtime answer.
fn group_instances(rt: &Value, alias: &str) -> Vec<String> {
    rt["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["alias"] == alias)
        .flat_map(|g| g["instances"].as_array().cloned().unwrap_or_default())
        .map(|i| i["instanceId"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// (member id, instance, status, network partition) of a cluster's
/// members in a runtime answer, sorted by instance.
fn cluster_members(rt: &Value, cluster: &str) -> Vec<(String, String, String, String)> {
    let mut v: Vec<(String, String, String, String)> = rt["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["clusterId"] == cluster)
        .flat_map(|c| c["members"].as_array().cloned().unwrap_or_default())
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or("").to_owned();
            (
                s("memberId"),
                s("instanceId"),
                s("status"),
                s("networkPartitionId"),
            )
        })
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v
}

/// Nested cartridge groups and application bursting on real containers.
/// A group `out` (1 to 2 instances, group scaling) holds `db` and a group
/// `in` (1 to 2 instances per `out` instance, group scaling) that holds
/// `web` at one member, after `db`: 50 requests in flight on web's
/// listener (threshold 20) add an `in` instance inside `out-1`, then (at
/// its maximum there) an `out` instance with its own db and `in`
/// instance, db first; without load all of it goes again. Then an
/// application whose policy lists a second network partition bursts
/// into it when its cluster is at its maximum in the first, and gives
/// it up once the load is gone.
#[test]
fn paas_nested_groups_scale_per_instance_and_the_application_bursts() {
    const NEST: &str = "nest-app";
    const DB: &str = "nest-app.db.tinydb.domain";
    const WEB: &str = "nest-app.web.tiny.domain";
    let (d, port) = Daemon::with_tiny("paas-nest", 2);
    d.add(&["cartridge"], "tinydb.json", &tiny_cartridge("tinydb", 0));
    d.add(
        &["policy", "deployment"],
        "deployment.json",
        r#"{ "id": "deployment-policy-nest", "networkPartitions": [ {
  "id": "network-partition-local", "partitionAlgo": "one-after-another",
  "partitions": [ { "id": "partition-a", "partitionMax": 8 } ] } ] }"#,
    );
    d.add(
        &["group"],
        "nest-outer.json",
        r#"{ "name": "nest-outer", "cartridges": ["tinydb"], "groupScalingEnabled": true,
  "groups": [ { "name": "nest-inner", "cartridges": ["tiny"], "groupScalingEnabled": true } ],
  "dependencies": { "startupOrders": [ { "aliases": ["cartridge.db", "group.in"] } ] } }"#,
    );
    let sub = |alias: &str| {
        format!(
            r#""subscribableInfo": {{ "alias": "{alias}", "autoscalingPolicy": "autoscaling-policy-web" }}"#
        )
    };
    d.add(
        &["application"],
        "nest.json",
        &format!(
            r#"{{ "applicationId": "{NEST}", "alias": "{NEST}", "multiTenant": false,
  "components": {{ "groups": [ {{ "name": "nest-outer", "alias": "out",
    "groupMinInstances": 1, "groupMaxInstances": 2, "groupScalingEnabled": true,
    "deploymentPolicy": "deployment-policy-nest",
    "cartridges": [ {{ "type": "tinydb", "cartridgeMin": 1, "cartridgeMax": 1, {} }} ],
    "groups": [ {{ "name": "nest-inner", "alias": "in",
      "groupMinInstances": 1, "groupMaxInstances": 2, "groupScalingEnabled": true,
      "cartridges": [ {{ "type": "tiny", "cartridgeMin": 1, "cartridgeMax": 1, {} }} ] }} ] }} ] }} }}"#,
            sub("db"),
            sub("web")
        ),
    );
    // A live view from before the deploy records the order of events.
    let (_watch, watch_file) = d.watch(NEST);
    d.strato(&[
        "application",
        "deploy",
        NEST,
        "application-policy-local",
        "--wait",
    ])
    .ok();
    let rt = d.runtime_of(NEST).expect("deployed");
    assert_eq!(group_instances(&rt, "out"), ["out-1"], "{rt:#}");
    assert_eq!(group_instances(&rt, "in"), ["out-1/in-1"], "{rt:#}");

    // Load: the inner group grows inside out-1, then out-2 comes with
    // its own db and inner instance.
    let load = Load::start(port, 50);
    let rt_now = || d.runtime_of(NEST).unwrap_or(Value::Null);
    d.until(
        120,
        "a second outer instance with its inner one Active",
        || {
            let rt = rt_now();
            group_instances(&rt, "out") == ["out-1", "out-2"]
                && cluster_members(&rt, WEB)
                    .iter()
                    .any(|m| m.1 == "out-2/in-3" && m.2 == "Active")
        },
    );
    let rt = rt_now();
    let inner = group_instances(&rt, "in");
    assert_eq!(
        inner[..3],
        ["out-1/in-1", "out-1/in-2", "out-2/in-3"],
        "{rt:#}"
    );
    let dbs: Vec<String> = cluster_members(&rt, DB).into_iter().map(|m| m.1).collect();
    assert_eq!(dbs, ["out-1", "out-2"], "{rt:#}");
    // Each container carries its instance.
    let one = d
        .strato(&[
            "ps",
            "-q",
            "--filter",
            "label=strato.paas.instance=out-2/in-3",
        ])
        .ok();
    assert_eq!(one.stdout.lines().count(), 1, "{one}");
    // Startup order within out-2: its db was Active before its web
    // member existed.
    let db2 = cluster_members(&rt, DB).remove(1).0;
    let web3 = cluster_members(&rt, WEB)
        .into_iter()
        .find(|m| m.1 == "out-2/in-3")
        .unwrap()
        .0;
    let lines = watch_lines(&watch_file);
    let at = |member: &str, status: &str| {
        lines
            .iter()
            .position(|l| l.contains(&format!("member {member} {status}")))
            .unwrap_or_else(|| panic!("no {status} of {member}: {lines:#?}"))
    };
    assert!(at(&db2, "Active") < at(&web3, "Created"), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("group in in out-1") && l.contains("escalate")),
        "{lines:#?}"
    );
    let members = d.strato(&["member", "list", NEST]).ok();
    assert!(
        members.stdout.contains("group in (nest-inner) instances"),
        "{members}"
    );
    assert!(members.stdout.contains("out-2/in-3"), "{members}");

    // Load gone: back to one instance of each group.
    load.stop();
    d.until(120, "nested scale-in to out-1 and out-1/in-1", || {
        let rt = rt_now();
        group_instances(&rt, "out") == ["out-1"]
            && group_instances(&rt, "in") == ["out-1/in-1"]
            && cluster_members(&rt, WEB).len() == 1
            && cluster_members(&rt, DB).len() == 1
    });
    d.strato(&["application", "undeploy", NEST, "--wait"]).ok();

    // Bursting: a second network partition on this host, the application
    // policy lists it after the first; one member fits in each.
    const BURSTY: &str = "burst-app";
    const BWEB: &str = "burst-app.bweb.tiny.domain";
    d.add(
        &["network-partition"],
        "np-burst.json",
        r#"{ "id": "network-partition-burst", "provider": "strato",
  "partitions": [ { "id": "partition-c", "property": [ { "name": "cluster", "value": "local-cluster" } ] } ] }"#,
    );
    d.add(
        &["policy", "deployment"],
        "deployment-burst.json",
        r#"{ "id": "deployment-policy-burst", "networkPartitions": [
  { "id": "network-partition-local", "partitionAlgo": "one-after-another",
    "partitions": [ { "id": "partition-a", "partitionMax": 1 } ] },
  { "id": "network-partition-burst", "partitionAlgo": "one-after-another",
    "partitions": [ { "id": "partition-c", "partitionMax": 1 } ] } ] }"#,
    );
    d.add(
        &["policy", "application"],
        "application-policy-burst.json",
        r#"{ "id": "application-policy-burst", "algorithm": "one-after-another",
  "networkPartitions": [ "network-partition-local", "network-partition-burst" ] }"#,
    );
    d.add(
        &["application"],
        "burst.json",
        &format!(
            r#"{{ "applicationId": "{BURSTY}", "alias": "{BURSTY}", "multiTenant": false,
  "components": {{ "cartridges": [ {{ "type": "tiny", "cartridgeMin": 1, "cartridgeMax": 4,
    "subscribableInfo": {{ "alias": "bweb", "autoscalingPolicy": "autoscaling-policy-web",
      "deploymentPolicy": "deployment-policy-burst" }} }} ] }} }}"#
        ),
    );
    d.strato(&[
        "application",
        "deploy",
        BURSTY,
        "application-policy-burst",
        "--wait",
    ])
    .ok();
    let app_instances = || -> Vec<(String, String)> {
        d.runtime_of(BURSTY)
            .and_then(|rt| rt["instances"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|a| {
                (
                    a["instanceId"].as_str().unwrap_or("").to_owned(),
                    a["networkPartitionId"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let local = (String::new(), "network-partition-local".to_owned());
    let burst = (
        "@network-partition-burst".to_owned(),
        "network-partition-burst".to_owned(),
    );
    assert_eq!(app_instances(), std::slice::from_ref(&local));
    let load = Load::start(port, 50);
    d.until(
        90,
        "a burst member Active in the second network partition",
        || {
            d.runtime_of(BURSTY).is_some_and(|rt| {
                cluster_members(&rt, BWEB).iter().any(|m| {
                    m.1 == "@network-partition-burst"
                        && m.2 == "Active"
                        && m.3 == "network-partition-burst"
                })
            })
        },
    );
    assert_eq!(app_instances(), [local.clone(), burst.clone()]);
    let members = d.strato(&["member", "list", BURSTY]).ok();
    assert!(
        members
            .stdout
            .contains("network partition network-partition-burst (burst)"),
        "{members}"
    );
    // Both members serve behind the one listener.
    d.until(20, "the burst member to answer through the LB", || {
        let burst_member = d
            .runtime_of(BURSTY)
            .map(|rt| cluster_members(&rt, BWEB))
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.3 == "network-partition-burst")
            .map(|m| m.0)
            .unwrap_or_default();
        !burst_member.is_empty()
            && get(port, "/member.txt").is_ok_and(|p| p.contains(&burst_member))
    });
    load.stop();
    d.until(90, "the burst instance to go", || {
        app_instances() == [local.clone()]
            && d.runtime_of(BURSTY)
                .is_some_and(|rt| cluster_members(&rt, BWEB).len() == 1)
    });
    d.strato(&["application", "undeploy", BURSTY, "--wait"])
        .ok();
    let left = d
        .strato(&["ps", "-aq", "--filter", "label=strato.paas.member"])
        .ok();
    assert_eq!(left.stdout.trim(), "", "containers left: {left}");
}

/// A child process killed when the test ends, passed or failed.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
