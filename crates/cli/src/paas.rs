//! The PaaS verbs, mirroring Stratos's CLI: `strato cartridge|group|policy|
//! network-partition|kubernetes-cluster|application|member …`, and
//! `strato up`, which starts a daemon with the PaaS if none runs, builds the
//! sample cartridge image, registers the samples, deploys the sample
//! application and prints its URL. All of them talk to the PaaS API
//! (`--paas-host`, default unix:///run/strato/paas.sock).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use hyper::Method;
use serde_json::Value;
use strato_paas::client::{PaasClient, PaasHost};
use strato_paas::events::EventKind;
use strato_paas_model::{samples, Kind};

/// Where the PaaS API is.
#[derive(Debug, Args, Clone)]
pub struct Conn {
    /// The PaaS API: unix:///path or tcp://HOST:PORT.
    #[arg(long = "paas-host", global = true, env = "STRATO_PAAS_HOST", default_value = concat!("unix://", "/run/strato/paas.sock"))]
    paas_host: String,
    /// Bearer token for a TCP PaaS API.
    #[arg(
        long = "paas-token",
        global = true,
        env = "STRATO_PAAS_TOKEN",
        hide_env_values = true
    )]
    paas_token: Option<String>,
}

impl Conn {
    fn client(&self) -> Result<PaasClient> {
        let host = PaasHost::parse(&self.paas_host).map_err(anyhow::Error::msg)?;
        Ok(PaasClient::new(host, self.paas_token.clone()))
    }
}

/// `strato cartridge …` and the other definition kinds.
#[derive(Debug, Args)]
pub struct DefArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    verb: DefVerb,
}

#[derive(Debug, Subcommand)]
pub enum DefVerb {
    /// Add a definition from a Stratos 4.1 JSON file (`-` for stdin).
    Add {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Replace a definition with the one in a JSON file.
    Update {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// List the definitions.
    #[command(alias = "ls")]
    List,
    /// Print one definition as JSON.
    Describe { id: String },
    /// Remove a definition nothing uses.
    #[command(alias = "rm")]
    Remove { id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyKind {
    Autoscaling,
    Deployment,
    Application,
}

/// `strato policy KIND …`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Which policies: autoscaling, deployment or application.
    kind: PolicyKind,
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    verb: DefVerb,
}

/// `strato application …`.
#[derive(Debug, Args)]
pub struct AppArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    verb: AppVerb,
}

#[derive(Debug, Subcommand)]
pub enum AppVerb {
    #[command(flatten)]
    Def(DefVerb),
    /// Deploy an application under an application policy.
    Deploy {
        application: String,
        policy: String,
        /// Wait until every cluster has its minimum of Active members.
        #[arg(long)]
        wait: bool,
    },
    /// Undeploy an application (reverse startup order, members drained first).
    Undeploy {
        application: String,
        /// Wait until every member is gone.
        #[arg(long)]
        wait: bool,
    },
    /// Print the runtime (clusters, members, listeners) as JSON.
    Runtime { application: String },
    /// A live view of members, load and scaling decisions.
    Watch { application: String },
}

/// `strato member …`.
#[derive(Debug, Args)]
pub struct MemberArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    verb: MemberVerb,
}

#[derive(Debug, Subcommand)]
pub enum MemberVerb {
    /// List the members of a deployed application.
    #[command(alias = "ls")]
    List { application: String },
}

/// `strato up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    conn: Conn,
    /// Data root of a daemon `up` starts.
    #[arg(long, default_value = "/var/lib/strato")]
    data_root: PathBuf,
    /// How long to wait for the application to become Active, in seconds.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

fn finish(r: Result<i32>) -> i32 {
    match r {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strato: {e:#}");
            1
        }
    }
}

/// Runs a definition verb for `kind`.
pub fn definitions(kind: Kind, args: DefArgs) -> i32 {
    finish(runtime().and_then(|rt| rt.block_on(def_verb(kind, &args.conn, args.verb))))
}

pub fn policy(args: PolicyArgs) -> i32 {
    let kind = match args.kind {
        PolicyKind::Autoscaling => Kind::AutoscalingPolicy,
        PolicyKind::Deployment => Kind::DeploymentPolicy,
        PolicyKind::Application => Kind::ApplicationPolicy,
    };
    finish(runtime().and_then(|rt| rt.block_on(def_verb(kind, &args.conn, args.verb))))
}

fn check(a: &strato_paas::client::Answer) -> Result<()> {
    if a.ok() {
        return Ok(());
    }
    match a.body.get("path").and_then(|p| p.as_str()) {
        Some(p) if !p.is_empty() && !a.error_text().contains(p) => {
            bail!("{} (at {p})", a.error_text())
        }
        _ => bail!("{}", a.error_text()),
    }
}

fn read_file(file: &PathBuf) -> Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).context("read stdin")?;
        Ok(v)
    } else {
        std::fs::read(file).with_context(|| format!("read {}", file.display()))
    }
}

fn summary(kind: Kind, v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
    match kind {
        Kind::Cartridge => format!("{}\t{}\t{}", s("category"), s("version"), s("displayName")),
        Kind::Application => format!("{}\t{}", s("alias"), s("name")),
        _ => s("description"),
    }
}

async fn def_verb(kind: Kind, conn: &Conn, verb: DefVerb) -> Result<i32> {
    let c = conn.client()?;
    let r = kind.resource();
    match verb {
        DefVerb::Add { file } => {
            let a = c
                .call(Method::POST, &format!("/api/{r}"), Some(read_file(&file)?))
                .await
                .map_err(anyhow::Error::msg)?;
            check(&a)?;
            println!("{}", a.error_text());
        }
        DefVerb::Update { file } => {
            let a = c
                .call(Method::PUT, &format!("/api/{r}"), Some(read_file(&file)?))
                .await
                .map_err(anyhow::Error::msg)?;
            check(&a)?;
            println!("{}", a.error_text());
        }
        DefVerb::List => {
            let a = c
                .call(Method::GET, &format!("/api/{r}"), None)
                .await
                .map_err(anyhow::Error::msg)?;
            check(&a)?;
            let items = a.body.as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("no {kind} definitions");
            }
            for v in items {
                let id = v
                    .get(kind.id_field())
                    .and_then(|x| x.as_str())
                    .unwrap_or("");
                println!("{id}\t{}", summary(kind, &v));
            }
        }
        DefVerb::Describe { id } => {
            let a = c
                .call(Method::GET, &format!("/api/{r}/{id}"), None)
                .await
                .map_err(anyhow::Error::msg)?;
            check(&a)?;
            println!("{}", serde_json::to_string_pretty(&a.body)?);
        }
        DefVerb::Remove { id } => {
            let a = c
                .call(Method::DELETE, &format!("/api/{r}/{id}"), None)
                .await
                .map_err(anyhow::Error::msg)?;
            check(&a)?;
            println!("{}", a.error_text());
        }
    }
    Ok(0)
}

pub fn application(args: AppArgs) -> i32 {
    finish(runtime().and_then(|rt| rt.block_on(app_verb(&args.conn, args.verb))))
}

async fn runtime_of(c: &PaasClient, app: &str) -> Result<Option<Value>> {
    let a = c
        .call(
            Method::GET,
            &format!("/api/applications/{app}/runtime"),
            None,
        )
        .await
        .map_err(anyhow::Error::msg)?;
    if a.status == 404 {
        return Ok(None);
    }
    check(&a)?;
    Ok(Some(a.body))
}

/// Waits until `done(runtime)` holds (runtime `None`: not deployed).
async fn wait_for(
    c: &PaasClient,
    app: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(Option<&Value>) -> bool,
) -> Result<Option<Value>> {
    let deadline = Instant::now() + timeout;
    loop {
        let rt = runtime_of(c, app).await?;
        if done(rt.as_ref()) {
            return Ok(rt);
        }
        if Instant::now() > deadline {
            bail!(
                "application {app} did not become {what} within {} s; see `strato application runtime {app}`",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn is_active(rt: Option<&Value>) -> bool {
    rt.and_then(|r| r.get("status"))
        .and_then(|s| s.as_str())
        .is_some_and(|s| s == "active")
}

async fn app_verb(conn: &Conn, verb: AppVerb) -> Result<i32> {
    let c = conn.client()?;
    match verb {
        AppVerb::Def(d) => return def_verb(Kind::Application, conn, d).await,
        AppVerb::Deploy {
            application,
            policy,
            wait,
        } => {
            let a = c
                .call(
                    Method::POST,
                    &format!("/api/applications/{application}/deploy/{policy}"),
                    None,
                )
                .await
                .map_err(anyhow::Error::msg)?;
            check(&a)?;
            println!("{}", a.error_text());
            if wait {
                let rt = wait_for(
                    &c,
                    &application,
                    Duration::from_secs(300),
                    "active",
                    is_active,
                )
                .await?;
                if let Some(rt) = rt {
                    print_members(&rt);
                }
            }
        }
        AppVerb::Undeploy { application, wait } => {
            let a = c
                .call(
                    Method::POST,
                    &format!("/api/applications/{application}/undeploy"),
                    None,
                )
                .await
                .map_err(anyhow::Error::msg)?;
            check(&a)?;
            println!("{}", a.error_text());
            if wait {
                wait_for(
                    &c,
                    &application,
                    Duration::from_secs(300),
                    "undeployed",
                    |r| r.is_none(),
                )
                .await?;
                println!("application {application} undeployed");
            }
        }
        AppVerb::Runtime { application } => match runtime_of(&c, &application).await? {
            Some(rt) => println!("{}", serde_json::to_string_pretty(&rt)?),
            None => bail!("application {application:?} is not deployed"),
        },
        AppVerb::Watch { application } => watch(&c, &application).await?,
    }
    Ok(0)
}

fn print_members(rt: &Value) {
    let empty = Vec::new();
    // Application instances: one per network partition in use.
    let apps = rt["instances"].as_array().unwrap_or(&empty);
    if apps.len() > 1 || apps.iter().any(|a| a["burst"].as_bool() == Some(true)) {
        for a in apps {
            let id = a["instanceId"].as_str().unwrap_or("");
            println!(
                "application instance {:<24} {:<8} network partition {}{}",
                if id.is_empty() { "-" } else { id },
                a["status"].as_str().unwrap_or(""),
                a["networkPartitionId"].as_str().unwrap_or(""),
                if a["burst"].as_bool() == Some(true) {
                    " (burst)"
                } else {
                    ""
                },
            );
        }
    }
    // Group instances as Stratos's application runtime lists them.
    for g in rt["groups"].as_array().unwrap_or(&empty) {
        let insts = g["instances"].as_array().unwrap_or(&empty);
        println!(
            "group {} ({}) instances {} [min {}, max {}, group scaling {}]",
            g["alias"].as_str().unwrap_or(""),
            g["name"].as_str().unwrap_or(""),
            insts.len(),
            g["groupMinInstances"],
            g["groupMaxInstances"],
            if g["groupScalingEnabled"].as_bool() == Some(true) {
                "on"
            } else {
                "off"
            },
        );
        for i in insts {
            println!(
                "  instance {:<32} {:<8} {}",
                i["instanceId"].as_str().unwrap_or(""),
                i["status"].as_str().unwrap_or(""),
                i["lastDecision"]
                    .as_object()
                    .map(|_| i["lastDecision"].to_string())
                    .or_else(|| i["lastDecision"].as_str().map(str::to_owned))
                    .unwrap_or_default(),
            );
        }
    }
    for cl in rt["clusters"].as_array().unwrap_or(&empty) {
        let lbs: Vec<String> = cl["loadBalancer"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|l| {
                format!(
                    "{}:{}→{}",
                    l["protocol"].as_str().unwrap_or(""),
                    l["proxyPort"],
                    l["port"]
                )
            })
            .collect();
        println!(
            "cluster {} (min {}, max {}) listeners [{}]",
            cl["clusterId"].as_str().unwrap_or(""),
            cl["min"],
            cl["max"],
            lbs.join(", ")
        );
        for m in cl["members"].as_array().unwrap_or(&empty) {
            let instance = m["instanceId"].as_str().unwrap_or("");
            println!(
                "  {:<24} {:<16} {:<16} {:<16} {}/{}  load {}  memory {}  in flight {}",
                m["memberId"].as_str().unwrap_or(""),
                if instance.is_empty() { "-" } else { instance },
                m["status"].as_str().unwrap_or(""),
                m["defaultPrivateIp"].as_str().unwrap_or("-"),
                m["networkPartitionId"].as_str().unwrap_or(""),
                m["partitionId"].as_str().unwrap_or(""),
                fmt_pct(&m["loadAverage"]),
                fmt_pct(&m["memoryConsumption"]),
                m["requestsInFlight"],
            );
        }
    }
}

fn fmt_pct(v: &Value) -> String {
    v.as_f64()
        .map(|f| format!("{f:.1}%"))
        .unwrap_or_else(|| "-".into())
}

async fn watch(c: &PaasClient, app: &str) -> Result<()> {
    match runtime_of(c, app).await? {
        Some(rt) => {
            println!("application {app}: {}", rt["status"].as_str().unwrap_or(""));
            print_members(&rt);
        }
        None => println!("application {app} is not deployed; waiting for events"),
    }
    let mut out = std::io::stdout();
    let mut closed = false;
    // The last figures shown per cluster: an unchanged "hold" is not repeated.
    let mut last: std::collections::BTreeMap<String, String> = Default::default();
    loop {
        let r = c.events(Some(app), |ev| {
        let t = ev.time_ms;
        let line = match ev.kind {
            EventKind::Scaling {
                cluster_id,
                figures,
                action,
                requests_in_flight,
            } => {
                let f = |x: Option<f64>| x.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
                let key = format!(
                    "{}/{} {} {requests_in_flight} {:?}",
                    figures.active, figures.non_terminated, figures.required, action
                );
                let hold = matches!(action, strato_paas_model::scaling::Action::Hold);
                if hold && last.get(&cluster_id) == Some(&key) {
                    return true;
                }
                last.insert(cluster_id.clone(), key);
                format!(
                    "{cluster_id}: active {}/{} required {} (requests in flight {requests_in_flight}, predicted {}; memory {}%; load {}%) → {}",
                    figures.active,
                    figures.non_terminated,
                    figures.required,
                    f(figures.predicted_requests_in_flight),
                    f(figures.predicted_memory_consumption),
                    f(figures.predicted_load_average),
                    serde_json::to_string(&action).unwrap_or_default()
                )
            }
            EventKind::MemberStatus {
                cluster_id,
                member_id,
                status,
                ip,
                reason,
            } => format!(
                "{cluster_id}: member {member_id} {status}{}{}",
                ip.map(|i| format!(" at {i}")).unwrap_or_default(),
                reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ),
            EventKind::GroupScaling {
                group,
                parent_instance_id,
                instances,
                action,
                instance_id,
            } => format!(
                "group {group}{}: {instances} instances → {}{}",
                if parent_instance_id.is_empty() {
                    String::new()
                } else {
                    format!(" in {parent_instance_id}")
                },
                serde_json::to_string(&action).unwrap_or_default(),
                instance_id.map(|i| format!(" ({i})")).unwrap_or_default()
            ),
            EventKind::Bursting {
                instances,
                action,
                instance_id,
                network_partition_id,
            } => format!(
                "application bursting: {instances} instances → {}{}{}",
                serde_json::to_string(&action).unwrap_or_default(),
                instance_id
                    .filter(|i| !i.is_empty())
                    .map(|i| format!(" ({i})"))
                    .unwrap_or_default(),
                network_partition_id
                    .map(|n| format!(" in network partition {n}"))
                    .unwrap_or_default()
            ),
            EventKind::HostAdded {
                kubernetes_cluster_id,
                host_id,
                provider,
                cpu_millis,
                memory_bytes,
            } => format!(
                "hosts: {host_id} joined cluster {kubernetes_cluster_id} (from the {provider} provider; cpu {}, memory {})",
                cpu_millis.map_or_else(|| "unlimited".into(), |m| format!("{m}m")),
                memory_bytes.map_or_else(|| "unlimited".into(), |b| format!("{} MiB", b >> 20)),
            ),
            EventKind::HostUnavailable {
                kubernetes_cluster_id,
                reason,
                ..
            } => format!("hosts: no new host for cluster {kubernetes_cluster_id}: {reason}"),
            other => serde_json::to_string(&other).unwrap_or_default(),
        };
        let secs = t / 1000 % 86_400;
        let ok = writeln!(
            out,
            "{:02}:{:02}:{:02} {line}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
        .is_ok();
        let _ = out.flush();
        closed = !ok;
        ok
    })
    .await;
        if closed {
            return Ok(());
        }
        // The daemon went away (a restart): say so and follow it again.
        let why = r.err().unwrap_or_else(|| "the event stream ended".into());
        if writeln!(out, "-- {why}; reconnecting").is_err() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub fn member(args: MemberArgs) -> i32 {
    finish(runtime().and_then(|rt| {
        rt.block_on(async {
            let c = args.conn.client()?;
            match args.verb {
                MemberVerb::List { application } => match runtime_of(&c, &application).await? {
                    Some(rt) => print_members(&rt),
                    None => bail!("application {application:?} is not deployed"),
                },
            }
            Ok(0)
        })
    }))
}

// ------------------------------------------------------------------ up

pub fn up(engine_host: Option<String>, token: Option<String>, args: UpArgs) -> i32 {
    finish(runtime().and_then(|rt| rt.block_on(up_async(engine_host, token, args))))
}

async fn up_async(engine_host: Option<String>, token: Option<String>, args: UpArgs) -> Result<i32> {
    let host_str = engine_host
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| strato_client::DEFAULT_HOST.to_owned());
    let host = strato_client::Host::parse(&host_str)?;
    let engine = strato_client::Client::new(host.clone(), token);
    let paas = args.conn.client()?;
    if engine.ping().await.is_err() {
        start_daemon(&host, &args).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.ping().await.is_err() {
        if Instant::now() > deadline {
            bail!("the daemon at {host_str} did not answer within 30 s; see its log");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match paas.call(Method::GET, "/api/openapi.json", None).await {
            Ok(a) if a.ok() => break,
            Ok(a) => bail!("the PaaS API answered {}: {}", a.status, a.error_text()),
            Err(e) if Instant::now() > deadline => bail!(
                "{e}\nthe daemon at {host_str} runs without its PaaS: restart it as `strato daemon --paas` (or give --paas-host)"
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    build_sample_images(&engine).await?;
    for (kind, file, json) in samples::FILES {
        let a = paas
            .call(
                Method::POST,
                &format!("/api/{}", kind.resource()),
                Some(json.as_bytes().to_vec()),
            )
            .await
            .map_err(anyhow::Error::msg)?;
        if a.status == 409 && a.error_text().contains("already exists") {
            continue;
        }
        check(&a).with_context(|| format!("register samples/{file}"))?;
        println!("registered {kind} from samples/{file}");
    }
    let app = samples::APPLICATION;
    if runtime_of(&paas, app).await?.is_none() {
        let a = paas
            .call(
                Method::POST,
                &format!(
                    "/api/applications/{app}/deploy/{}",
                    samples::APPLICATION_POLICY
                ),
                None,
            )
            .await
            .map_err(anyhow::Error::msg)?;
        check(&a)?;
        println!("deploying {app} (startup order: my-mysql, then my-php)…");
    }
    let rt = wait_for(
        &paas,
        app,
        Duration::from_secs(args.timeout),
        "active",
        is_active,
    )
    .await?
    .unwrap_or_default();
    print_members(&rt);
    let empty = Vec::new();
    for cl in rt["clusters"].as_array().unwrap_or(&empty) {
        for l in cl["loadBalancer"].as_array().unwrap_or(&empty) {
            let scheme = if l["protocol"] == "http" {
                "http"
            } else {
                "tcp"
            };
            println!(
                "{}: {scheme}://127.0.0.1:{}/",
                cl["alias"].as_str().unwrap_or(""),
                l["proxyPort"]
            );
        }
    }
    println!(
        "\n{app} is Active. Watch it with `strato application watch {app}`; stop it with `strato application undeploy {app}`. The daemon keeps running."
    );
    Ok(0)
}

/// Starts `strato daemon --paas` in the background, in its own process
/// group, logging to DATA_ROOT/daemon.log.
async fn start_daemon(host: &strato_client::Host, args: &UpArgs) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let strato_client::Host::Unix(sock) = host else {
        bail!("no daemon answers at the TCP host given; `strato up` starts a local daemon only on a unix socket");
    };
    let exe = std::env::current_exe().context("find the strato binary")?;
    std::fs::create_dir_all(&args.data_root)
        .with_context(|| format!("create {}", args.data_root.display()))?;
    let log_path = args.data_root.join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open {}", log_path.display()))?;
    let paas_host = match PaasHost::parse(&args.conn.paas_host).map_err(anyhow::Error::msg)? {
        PaasHost::Unix(p) => format!("unix://{}", p.display()),
        PaasHost::Tcp(_) => bail!("`strato up` starts a daemon with its PaaS API on a unix socket; give a unix --paas-host"),
    };
    std::process::Command::new(exe)
        .arg("daemon")
        .arg("--host")
        .arg(format!("unix://{}", sock.display()))
        .arg("--data-root")
        .arg(&args.data_root)
        .arg("--paas")
        .arg("--paas-host")
        .arg(paas_host)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("start strato daemon")?;
    println!(
        "started strato daemon --paas (data root {}, log {})",
        args.data_root.display(),
        log_path.display()
    );
    Ok(())
}

/// Imports the sample cartridge image unless it is there.
async fn build_sample_images(engine: &strato_client::Client) -> Result<()> {
    use strato_paas::sample;
    let have = |name: &'static str| async move { engine.image_inspect(name).await.is_ok() };
    if !have(sample::HTTP_IMAGE).await {
        let busybox = match sample::find_busybox() {
            Some(b) => b,
            None => {
                println!("installing busybox-static for the sample image…");
                let ok = std::process::Command::new("sh")
                    .args([
                        "-c",
                        "export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q busybox-static >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q busybox-static >/dev/null; }",
                    ])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                match sample::find_busybox() {
                    Some(b) if ok || b.exists() => b,
                    _ => bail!("the sample image needs a static busybox at /bin/busybox; install Debian's busybox-static"),
                }
            }
        };
        let tar = sample::image_archive(&busybox)?;
        let body: strato_client::ByteStream =
            Box::pin(futures::stream::once(
                async move { Ok(bytes::Bytes::from(tar)) },
            ));
        let p = engine.image_load(body, true).await?;
        strato_client::check_progress(p).await?;
        println!(
            "built images {} and {}",
            sample::HTTP_IMAGE,
            sample::TCP_IMAGE
        );
    }
    if !have(sample::TCP_IMAGE).await {
        let (repo, tag) = sample::TCP_IMAGE
            .rsplit_once(':')
            .unwrap_or((sample::TCP_IMAGE, "latest"));
        engine.image_tag(sample::HTTP_IMAGE, repo, tag).await?;
        println!("tagged image {}", sample::TCP_IMAGE);
    }
    Ok(())
}
