//! The engine: containers with Docker's semantics over the image store, the
//! network manager and the supervisor.
//!
//! Records live in `DATA_ROOT/containers/<id>/record.json`; each container's
//! directory also holds its json log, its /etc files and its bundle
//! (config.json plus the overlay rootfs mount point). Processes are the
//! supervisor's; the engine learns about exits from its event stream.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strato_image::ImageStore;
use strato_network::{AttachRequest, Endpoint, NetworkManager, PortMapping};
use strato_supervisor::{Client, ContainerSpec, ContainerStatus, Phase, RestartPolicy};
use tokio::sync::broadcast;

use crate::model::{ContainerConfig, ImageDefaults, ResourceUpdate};

/// Where the engine keeps things.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state: images, containers, volumes, networks.
    pub data_root: PathBuf,
    /// Runtime state: the supervisor's socket and records, scratch mount points.
    pub exec_root: PathBuf,
    /// The `strato` binary that runs `strato supervisor`.
    pub strato_bin: PathBuf,
    /// Settings of the network manager (its `state_dir` is set from `data_root`).
    pub network: Option<strato_network::Config>,
    /// Registries (`HOST[:PORT]`) reachable over plain HTTP besides loopback
    /// ones (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// Prepare each new container's start right after its create (see
    /// [`Engine::start`]).
    pub prepare_starts: bool,
    /// Run an init as process 1 of containers that do not say (`--init`).
    pub init: bool,
    /// The init binary of `--init` containers (`--init-path`); `None`:
    /// looked for on PATH (see [`crate::hostdev::find_init`]).
    pub init_path: Option<PathBuf>,
}

/// Engine failures, mapped by the API to Docker's status codes.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotModified(String),
    #[error("{0}")]
    Internal(String),
}

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

fn sup_err(e: strato_supervisor::client::ClientError) -> EngineError {
    use strato_supervisor::protocol::ErrorKind;
    match &e {
        strato_supervisor::client::ClientError::Failed { kind, message } => match kind {
            ErrorKind::NotFound => EngineError::NoSuchContainer(message.clone()),
            ErrorKind::Conflict => EngineError::Conflict(message.clone()),
            ErrorKind::Invalid => EngineError::Invalid(message.clone()),
            ErrorKind::Internal => EngineError::Internal(message.clone()),
        },
        _ => EngineError::Internal(e.to_string()),
    }
}

/// How a container is networked (`--network`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", content = "name", rename_all = "lowercase")]
pub enum NetworkMode {
    Bridge(String),
    Host,
    None,
    /// `container:<id>`: joins that container's network namespace and
    /// shares its /etc/hosts, /etc/resolv.conf and hostname.
    Container(String),
}

impl NetworkMode {
    /// Docker's spelling: `default`/`bridge`, `host`, `none`,
    /// `container:<name or id>`, or a network name.
    pub fn parse(s: &str) -> NetworkMode {
        match s {
            "" | "default" | "bridge" => NetworkMode::Bridge("bridge".into()),
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            other => match other.strip_prefix("container:") {
                Some(target) => NetworkMode::Container(target.into()),
                None => NetworkMode::Bridge(other.into()),
            },
        }
    }

    /// The network's name (`container` for a joined namespace, which is on
    /// no network of its own).
    pub fn name(&self) -> &str {
        match self {
            NetworkMode::Bridge(n) => n,
            NetworkMode::Host => "host",
            NetworkMode::None => "none",
            NetworkMode::Container(_) => "container",
        }
    }

    /// `HostConfig.NetworkMode` as Docker shows it: `bridge`, `host`,
    /// `none`, `container:<id>` or the network's name.
    pub fn mode_string(&self) -> String {
        match self {
            NetworkMode::Container(id) => format!("container:{id}"),
            other => other.name().to_string(),
        }
    }
}

/// What a `container:<id>` joiner takes from its target at start.
#[derive(Debug)]
struct Joined {
    /// The namespace to enter (`None`: the host's).
    netns: Option<OwnedFd>,
    /// (host file, path in the container) bind mounts.
    etc_files: Vec<(String, String)>,
    hostname: String,
}

/// What `docker create` asked for, in engine terms.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: Option<String>,
    pub image: String,
    pub config: ContainerConfig,
    pub restart: RestartPolicy,
    pub auto_remove: bool,
    pub network: Option<NetworkMode>,
    pub ports: Vec<PortMapping>,
    /// `--network-alias`: more names on the container's first network.
    pub aliases: Vec<String>,
    /// The first network's endpoint settings (`--ip`, `--mac-address`, links, ...).
    pub first_opts: EndpointExtras,
    /// More networks from `NetworkingConfig` (API 1.44: several at create).
    pub extra_networks: Vec<ExtraNetwork>,
    /// Legacy links (`--link` on the default bridge).
    pub links: Vec<LegacyLink>,
    /// The request body as received (`Config` plus `HostConfig`), shown back by inspect.
    pub raw: serde_json::Value,
}

/// The engine's error for a failed attach: what the request asked for
/// (a network, an address, a port) is the caller's to fix.
fn attach_error(e: strato_network::Error) -> EngineError {
    use strato_network::Error as N;
    match e {
        N::NoSuchNetwork(_) | N::NoIpv6 { .. } | N::AddressUnavailable { .. } => {
            EngineError::Invalid(e.to_string())
        }
        N::PortInUse { .. } | N::AlreadyAttached { .. } => EngineError::Conflict(e.to_string()),
        other => EngineError::Internal(other.to_string()),
    }
}

/// A legacy link (`--link name:alias` on the default bridge): the alias
/// resolves in /etc/hosts and the target's address, ports and environment
/// come as `ALIAS_*` variables, set at each start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyLink {
    pub target: String,
    pub alias: String,
}

/// What a container asked of its endpoint on one network (Docker's
/// `EndpointSettings` as given at create or connect).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointExtras {
    /// A fixed address (`--ip`), else the next free one.
    pub ip: Option<std::net::Ipv4Addr>,
    /// A fixed IPv6 address (`--ip6`) on a dual-stack network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// A fixed MAC address (`--mac-address`), else one derived from the address.
    pub mac: Option<String>,
    /// `container:alias`: `alias` resolves to `container` for this container
    /// on this network (by the network's name server).
    pub links: Vec<String>,
    /// Shown back only: the kernel gives every interface its link-local
    /// IPv6 address, and IPv4 link-local addresses are not assigned.
    pub link_local_ips: Vec<String>,
    /// Shown back only (the bridge driver reads none of them).
    pub driver_opts: BTreeMap<String, String>,
}

impl EndpointExtras {
    /// The link target for `alias`, if this endpoint has one.
    pub fn link_target(&self, alias: &str) -> Option<&str> {
        self.links.iter().find_map(|l| {
            let (target, a) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
            a.eq_ignore_ascii_case(alias).then_some(target)
        })
    }
}

/// A network a container is on besides its first one (`docker network
/// connect`, or more networks at create), kept across restarts as Docker does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraNetwork {
    pub name: String,
    pub aliases: Vec<String>,
    #[serde(flatten)]
    pub opts: EndpointExtras,
}

/// A container as the engine remembers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub created: String,
    pub image_ref: String,
    pub image_id: String,
    pub config: ContainerConfig,
    pub image_defaults: ImageDefaults,
    pub restart: RestartPolicy,
    pub auto_remove: bool,
    pub network: NetworkMode,
    pub ports: Vec<PortMapping>,
    pub raw: serde_json::Value,
    pub endpoint: Option<Endpoint>,
    /// The latest status from the supervisor; `None` until first started.
    pub status: Option<ContainerStatus>,
    /// `--network-alias` names on the first network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Networks connected after create.
    #[serde(default)]
    pub extra_networks: Vec<ExtraNetwork>,
    /// Their endpoints while the container runs.
    #[serde(default)]
    pub extra_endpoints: Vec<Endpoint>,
    /// What was asked of the first network's endpoint.
    #[serde(default)]
    pub first_opts: EndpointExtras,
    /// Disconnected from its first network and on no other: it keeps only
    /// loopback until connected again (then that network becomes its first).
    #[serde(default)]
    pub first_detached: bool,
    /// Legacy links (target container id and alias).
    #[serde(default)]
    pub links: Vec<LegacyLink>,
}

impl Record {
    /// Every network the container is on (its first one, then connected ones).
    pub fn network_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.first_detached && !matches!(self.network, NetworkMode::Container(_)) {
            v.push(self.network.name().to_string());
        }
        v.extend(self.extra_networks.iter().map(|n| n.name.clone()));
        v
    }

    /// The endpoint settings asked for on `network`, with its aliases.
    pub fn endpoint_request(&self, network: &str) -> Option<(&[String], &EndpointExtras)> {
        if !self.first_detached
            && !matches!(self.network, NetworkMode::Container(_))
            && self.network.name() == network
        {
            return Some((&self.aliases, &self.first_opts));
        }
        self.extra_networks
            .iter()
            .find(|n| n.name == network)
            .map(|n| (n.aliases.as_slice(), &n.opts))
    }

    /// Makes its first connected-later network its first one (after its
    /// first was disconnected), or marks it as on no network.
    fn promote_or_detach(&mut self) {
        if self.extra_networks.is_empty() {
            self.first_detached = true;
            self.aliases.clear();
            self.first_opts = EndpointExtras::default();
            return;
        }
        let x = self.extra_networks.remove(0);
        if let Some(i) = self
            .extra_endpoints
            .iter()
            .position(|e| e.network == x.name)
        {
            self.endpoint = Some(self.extra_endpoints.remove(i));
        }
        self.network = NetworkMode::Bridge(x.name);
        self.aliases = x.aliases;
        self.first_opts = x.opts;
        self.first_detached = false;
    }

    /// Its names on a network: name, hostname, then aliases.
    fn dns_names(&self, aliases: &[String]) -> Vec<String> {
        let mut v = vec![self.name.clone(), self.config.hostname.clone()];
        for a in aliases {
            if !v.contains(a) {
                v.push(a.clone());
            }
        }
        v
    }
}

/// Something that happened to a container (for `/events` and `wait`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    pub id: String,
    /// Docker's action: create, start, die, destroy, restart, …
    pub action: String,
    pub exit_code: Option<i32>,
    pub time: String,
}

/// The engine.
pub struct Engine {
    cfg: EngineConfig,
    images: ImageStore,
    net: NetworkManager,
    records: Mutex<BTreeMap<String, Record>>,
    events: broadcast::Sender<EngineEvent>,
    /// The embedded name server of user-defined networks.
    dns: crate::dns::Dns,
    /// Ourselves, for tasks that must not keep the engine alive.
    me: std::sync::OnceLock<std::sync::Weak<Engine>>,
    /// Each image's /etc/passwd and /etc/group (layers never change), for
    /// the users of containers that did not change theirs.
    accounts: Mutex<std::collections::HashMap<String, Arc<crate::users::Accounts>>>,
    /// Containers whose start request is under way: their start records
    /// the status the supervisor reports, so its start event need not.
    starting: Mutex<std::collections::HashSet<String>>,
    /// Network namespaces made ahead of the starts that take them.
    netns_pool: Arc<crate::netns::Pool>,
    /// Starts prepared after a create, each locked while it is made.
    prepared: Mutex<std::collections::HashMap<String, PreparedSlot>>,
    /// Held while a record is written (see [`Engine::save`]).
    saving: Mutex<()>,
    /// Container directories (`DATA/containers/ID`) made ahead.
    container_dirs: Arc<strato_image::SpareDirs>,
}

/// A start prepared after a create: the container is created in the
/// supervisor (its process waits to execute) from the bundle below.
struct Prepared {
    /// The record it was made from: a start whose record differs (renamed,
    /// updated, connected) does not use it.
    record: Vec<u8>,
    spec: ContainerSpec,
    netns: Option<OwnedFd>,
    hostname: String,
    /// The supervisor connection its `Prepare` went on, unanswered: the
    /// start goes on it too (see [`Client::send_prepare`]).
    conn: Client,
}

type PreparedSlot = Arc<tokio::sync::Mutex<Option<Prepared>>>;

/// What a prepared start is compared on.
fn record_bytes(r: &Record) -> Vec<u8> {
    serde_json::to_vec(r).unwrap_or_default()
}

/// Writes `text` as `dir/record.json`, whole or not at all: into the spare
/// file beside it (the previous record's), whose name is then exchanged
/// with the record's. No file is freed: on a file system mounted with
/// `discard` a rename over the old record, or a truncation to nothing,
/// discards its block inside the call (a quarter of a millisecond here).
fn write_record(dir: &Path, text: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let spare = dir.join(".record.json.tmp");
    let record = dir.join("record.json");
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&spare)?;
    f.write_all_at(text, 0)?;
    f.set_len(text.len() as u64)?;
    drop(f);
    let cwd = rustix::fs::CWD;
    match rustix::fs::renameat_with(cwd, &spare, cwd, &record, rustix::fs::RenameFlags::EXCHANGE) {
        Ok(()) => Ok(()),
        // The first record: nothing to exchange with (or a file system
        // that cannot exchange names).
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::INVAL) => fs::rename(&spare, &record),
        Err(e) => Err(e.into()),
    }
}

/// Container directories kept made ahead ([`strato_image::SpareDirs`]).
const SPARE_DIRS_KEPT: usize = 8;

/// Images whose accounts are remembered; beyond, the table starts over.
const ACCOUNTS_KEPT: usize = 256;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("cfg", &self.cfg).finish()
    }
}

fn now() -> String {
    strato_container::state::now_rfc3339()
}

/// Docker's link variables for `alias` to container `t` at `ip`: NAME,
/// its exposed ports (`ALIAS_PORT_80_TCP_ADDR`, ...), its environment
/// (`ALIAS_ENV_X`; not HOME or PATH).
fn link_env(alias: &str, path: &str, ip: std::net::Ipv4Addr, t: &Record) -> Vec<String> {
    let a = alias.to_ascii_uppercase().replace('-', "_");
    let mut env = vec![format!("{a}_NAME={path}")];
    let mut ports: Vec<(u16, String)> = t
        .raw
        .get("ExposedPorts")
        .and_then(|p| p.as_object())
        .into_iter()
        .flat_map(|o| o.keys())
        .filter_map(|k| {
            let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            p.parse().ok().map(|p| (p, proto.to_string()))
        })
        .collect();
    for m in &t.ports {
        let proto = m.protocol.to_string();
        ports.push((m.container_port, proto));
    }
    ports.sort();
    ports.dedup();
    if let Some((p, proto)) = ports.first() {
        env.push(format!("{a}_PORT={proto}://{ip}:{p}"));
    }
    for (p, proto) in &ports {
        let up = proto.to_ascii_uppercase();
        env.push(format!("{a}_PORT_{p}_{up}={proto}://{ip}:{p}"));
        env.push(format!("{a}_PORT_{p}_{up}_ADDR={ip}"));
        env.push(format!("{a}_PORT_{p}_{up}_PORT={p}"));
        env.push(format!("{a}_PORT_{p}_{up}_PROTO={proto}"));
    }
    for e in &t.config.env {
        if let Some((k, v)) = e.split_once('=') {
            if k != "HOME" && k != "PATH" {
                env.push(format!("{a}_ENV_{k}={v}"));
            }
        }
    }
    env
}

/// /etc/hosts of a container on no network.
const DETACHED_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// The mount points of a container's last run (from its bundle's
/// config.json), which its layer's changes leave out. Without the bundle
/// (the exec root is emptied by a reboot), the mount points every start
/// makes.
fn layer_ignore(config: &Path) -> Vec<String> {
    let Some(spec) = fs::read(config)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return [
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
            "/proc",
            "/sys",
            "/dev",
            "/.dockerenv",
        ]
        .map(String::from)
        .to_vec();
    };
    let mut ignore: Vec<String> = spec["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["destination"].as_str())
        .map(|d| format!("/{}", d.trim_matches('/')))
        // The root filesystem itself (the overlay whose layer this is).
        .filter(|d| d != "/")
        .collect();
    ignore.push("/.dockerenv".into());
    ignore
}

/// A requested MAC address, checked.
fn parse_mac(mac: Option<&str>) -> Result<Option<[u8; 6]>, EngineError> {
    mac.filter(|m| !m.is_empty())
        .map(|m| strato_network::parse_mac(m).map_err(|e| EngineError::Invalid(e.to_string())))
        .transpose()
}

impl Engine {
    /// Opens the stores, restores networks, makes sure the supervisor runs,
    /// and follows its events.
    pub async fn open(cfg: EngineConfig) -> Result<Arc<Engine>, EngineError> {
        let containers_dir = cfg.data_root.join("containers");
        fs::create_dir_all(&containers_dir).map_err(internal)?;
        strato_image::spread_subdirectories(&containers_dir);
        fs::create_dir_all(&cfg.exec_root).map_err(internal)?;
        empty_trash(cfg.data_root.join("trash"));
        let images = ImageStore::open(&cfg.data_root.join("images")).map_err(internal)?;
        let mut ncfg = cfg
            .network
            .clone()
            .unwrap_or_else(|| strato_network::Config::new(cfg.data_root.join("network")));
        ncfg.state_dir = cfg.data_root.join("network");
        let net = NetworkManager::open(ncfg).map_err(internal)?;
        net.restore().await.map_err(internal)?;
        net.ensure_default().await.map_err(internal)?;
        let (events, _) = broadcast::channel(1024);
        let engine = Arc::new(Engine {
            cfg,
            images,
            net,
            records: Mutex::new(BTreeMap::new()),
            events,
            dns: crate::dns::Dns::default(),
            me: std::sync::OnceLock::new(),
            accounts: Mutex::default(),
            starting: Mutex::default(),
            netns_pool: Arc::new(crate::netns::Pool::new()),
            prepared: Mutex::default(),
            saving: Mutex::default(),
            container_dirs: Arc::new(strato_image::SpareDirs::new(
                &containers_dir,
                &[],
                SPARE_DIRS_KEPT,
            )),
        });
        let _ = engine.me.set(Arc::downgrade(&engine));
        // Re-adopted containers keep resolving each other's names.
        for n in engine.net.list().await {
            engine.serve_dns(&n).await;
        }
        engine.load_records();
        let (dirs, images) = (engine.container_dirs.clone(), engine.images.clone());
        tokio::task::spawn_blocking(move || {
            dirs.refill();
            images.refill_spares();
        });
        engine.ensure_supervisor().await?;
        engine.follow_supervisor();
        engine.sync_statuses().await;
        Ok(engine)
    }

    /// Answers DNS for the containers of `network` if it is user-defined
    /// (see [`crate::dns`]).
    pub async fn serve_dns(&self, network: &strato_network::Network) {
        if network.user_defined {
            let me = self.me.get().cloned().unwrap_or_default();
            self.dns.ensure(me, network).await;
        }
    }

    /// Stops answering DNS for a removed network (its address may come back
    /// as another network's gateway).
    pub fn stop_dns(&self, network: &str) {
        self.dns.forget(network);
    }

    async fn serve_dns_for(&self, name: &str) {
        if let Ok(n) = self.net.get(name).await {
            self.serve_dns(&n).await;
        }
    }

    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    pub fn network(&self) -> &NetworkManager {
        &self.net
    }

    /// Subscribes to container events.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    fn sup_root(&self) -> PathBuf {
        self.cfg.exec_root.join("supervisor")
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.cfg.data_root.join("containers").join(id)
    }

    /// Where removed containers' directories wait for their deletion.
    fn trash(&self) -> PathBuf {
        self.cfg.data_root.join("trash")
    }

    /// Where an earlier strato pinned a container's network namespace.
    fn netns_path(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("netns").join(id)
    }

    /// The json-file log of a container.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(format!("{id}-json.log"))
    }

    /// What a container's runs need and each start writes anew, on the
    /// exec root (tmpfs by default, as containerd keeps its bundles): its
    /// OCI bundle (config.json, the rootfs mount point) and its /etc files.
    /// Files made and deleted per container cost more on a disk (inode
    /// allocation, block discards) than in memory.
    fn run_dir(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("containers").join(id)
    }

    /// Where a container's /etc files (hosts, resolv.conf, hostname) are:
    /// its run directory, or its directory for one last started by an
    /// older strato (which kept them there).
    pub fn etc_dir(&self, id: &str) -> PathBuf {
        let run = self.run_dir(id);
        let old = self.dir(id);
        if !run.join("hostname").exists() && old.join("hostname").exists() {
            old
        } else {
            run
        }
    }

    /// A container's OCI bundle (config.json, rootfs mount point): its run
    /// directory, or `bundle` in its directory for one last started by an
    /// older strato.
    pub fn bundle_path(&self, id: &str) -> PathBuf {
        let run = self.run_dir(id);
        let old = self.dir(id).join("bundle");
        if !run.join("config.json").exists() && old.join("config.json").exists() {
            old
        } else {
            run
        }
    }

    /// A container's root directory as the host reaches it: its process's
    /// root (`/proc/PID/root`) while it runs; else its (empty) rootfs
    /// mount point, since its root is mounted only in its own namespace.
    pub fn root_path(&self, id: &str) -> PathBuf {
        let pid = self
            .records
            .lock()
            .expect("records lock")
            .get(id)
            .and_then(|r| r.status.as_ref())
            .filter(|s| matches!(s.phase, Phase::Running | Phase::Paused) && s.pid > 0)
            .map(|s| s.pid);
        match pid {
            Some(pid) => PathBuf::from(format!("/proc/{pid}/root")),
            None => self.bundle_path(id).join("rootfs"),
        }
    }

    /// Where a container's network namespace is seen (Docker's
    /// `SandboxKey`): its process's namespace while it runs.
    pub fn sandbox_key(&self, r: &Record) -> String {
        r.status
            .as_ref()
            .filter(|s| matches!(s.phase, Phase::Running | Phase::Paused) && s.pid > 0)
            .map(|s| format!("/proc/{}/ns/net", s.pid))
            .unwrap_or_default()
    }

    /// Where the engine keeps things.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    fn load_records(&self) {
        let Ok(rd) = fs::read_dir(self.cfg.data_root.join("containers")) else {
            return;
        };
        let mut recs = self.records.lock().expect("records lock");
        for e in rd.flatten() {
            let Ok(data) = fs::read(e.path().join("record.json")) else {
                continue;
            };
            match serde_json::from_slice::<Record>(&data) {
                Ok(r) => {
                    recs.insert(r.id.clone(), r);
                }
                Err(err) => {
                    tracing::warn!(path = %e.path().display(), error = %err, "unreadable container record")
                }
            }
        }
    }

    fn save(&self, r: &Record) -> Result<(), EngineError> {
        // One save at a time, of the record as it is now: two saves at once
        // (a container's exit and a request about it) shared the temporary
        // file, and the later snapshot could be renamed over by the earlier.
        let _one = self.saving.lock().expect("saving lock");
        let current = self
            .records
            .lock()
            .expect("records lock")
            .get(&r.id)
            .cloned();
        // Gone from the table: removed, nothing to keep.
        let Some(r) = current else {
            return Ok(());
        };
        let dir = self.dir(&r.id);
        let text = serde_json::to_vec(&r).map_err(internal)?;
        // The directory is made by the first save only (not tried again at
        // every later one: a mkdir that finds it costs a lookup and a lock).
        match write_record(&dir, &text) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(&dir).map_err(internal)?;
                write_record(&dir, &text).map_err(internal)
            }
            r => r.map_err(internal),
        }
    }

    fn emit(&self, id: &str, action: &str, exit_code: Option<i32>) {
        let _ = self.events.send(EngineEvent {
            id: id.to_string(),
            action: action.to_string(),
            exit_code,
            time: now(),
        });
    }

    async fn sup<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Client) -> Result<T, strato_supervisor::client::ClientError>
            + Send
            + 'static,
    {
        let root = self.sup_root();
        tokio::task::spawn_blocking(move || {
            let mut c = Client::connect(&root).map_err(|e| {
                EngineError::Internal(format!(
                    "the supervisor is not reachable at {}: {e}",
                    root.display()
                ))
            })?;
            f(&mut c).map_err(sup_err)
        })
        .await
        .map_err(internal)?
    }

    async fn ensure_supervisor(&self) -> Result<(), EngineError> {
        let root = self.sup_root();
        if Client::connect(&root)
            .and_then(|mut c| c.ping().map_err(std::io::Error::other))
            .is_ok()
        {
            return Ok(());
        }
        fs::create_dir_all(&root).map_err(internal)?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cfg.exec_root.join("supervisor.log"))
            .map_err(internal)?;
        use std::os::unix::process::CommandExt;
        std::process::Command::new(&self.cfg.strato_bin)
            .arg("supervisor")
            .arg("--root")
            .arg(&root)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(internal)?)
            .stderr(log)
            // Its own process group: signals to the daemon's group spare it.
            .process_group(0)
            .spawn()
            .map_err(|e| EngineError::Internal(format!("start the supervisor: {e}")))?;
        for _ in 0..500 {
            if Client::connect(&root).is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(EngineError::Internal(
            "the supervisor did not start: see supervisor.log".into(),
        ))
    }

    /// A thread follows the supervisor's events and reflects them here.
    ///
    /// Reading and handling are two threads joined by an unbounded queue:
    /// handling an event asks the supervisor things, and the supervisor
    /// (single-threaded) blocks while its event socket is full, so a reader
    /// that handled events itself would deadlock both under a burst (500
    /// `rm -f` at once did).
    fn follow_supervisor(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let root = self.sup_root();
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = std::sync::mpsc::channel::<strato_supervisor::Event>();
        let handler = weak.clone();
        std::thread::spawn(move || {
            for ev in rx {
                let Some(engine) = handler.upgrade() else {
                    return;
                };
                handle.block_on(engine.on_event(ev));
            }
        });
        std::thread::spawn(move || loop {
            let events = Client::connect(&root).ok().and_then(|c| c.events().ok());
            if let Some(events) = events {
                for ev in events.flatten() {
                    if weak.strong_count() == 0 || tx.send(ev).is_err() {
                        return;
                    }
                }
            }
            if weak.upgrade().is_none() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        });
    }

    async fn on_event(&self, ev: strato_supervisor::Event) {
        use strato_supervisor::Event as E;
        match ev {
            E::Start { id, .. } => {
                // A start under way records (and saves) the status itself
                // as soon as the supervisor answers: a refresh here would
                // save the record once more, a new file renamed over it.
                if !self.starting.lock().expect("starting lock").contains(&id) {
                    self.refresh(&id).await;
                }
                self.emit(&id, "start", None);
            }
            E::Exit {
                id, code, status, ..
            } => {
                // An AutoRemove container's record is not saved once more
                // just before it is deleted.
                let auto_remove = self
                    .records
                    .lock()
                    .expect("records lock")
                    .get(&id)
                    .is_some_and(|r| r.auto_remove);
                // The supervisor forgot an AutoRemove container as it told
                // its exit: nothing to delete there.
                let forgotten = status.as_ref().is_some_and(|s| s.spec.auto_remove);
                let status = match status {
                    Some(s) => self.set_status(&id, Some(*s), !auto_remove),
                    None => self.refresh_saved(&id, !auto_remove).await,
                };
                // Resources stay while a restart is pending; else they are
                // released before anyone waiting hears of the exit.
                let exited = status.is_some_and(|s| s.phase == Phase::Exited);
                if exited {
                    self.release(&id).await;
                }
                self.emit(&id, "die", Some(code));
                if exited && auto_remove {
                    let _ = self.remove_with(&id, true, !forgotten).await;
                }
            }
            E::Restart { id, .. } => {
                self.refresh(&id).await;
                self.emit(&id, "restart", None);
            }
            E::Destroy { .. } | E::ExecDie { .. } => {}
        }
    }

    /// Re-reads a container's status from the supervisor into its record.
    async fn refresh(&self, id: &str) -> Option<ContainerStatus> {
        self.refresh_saved(id, true).await
    }

    /// [`Engine::refresh`], saving the record only if `save`.
    async fn refresh_saved(&self, id: &str, save: bool) -> Option<ContainerStatus> {
        let owned = id.to_string();
        let status = self.sup(move |c| c.state(&owned)).await.ok();
        self.set_status(id, status, save)
    }

    /// Puts a status the supervisor gave into the container's record, saved
    /// if `save` and it changed.
    fn set_status(
        &self,
        id: &str,
        status: Option<ContainerStatus>,
        save: bool,
    ) -> Option<ContainerStatus> {
        let mut recs = self.records.lock().expect("records lock");
        if let Some(r) = recs.get_mut(id) {
            // Saved only when it changed: a run asks the status several
            // times (start, its event, wait, exit) and each save is a new
            // file renamed over the old one.
            if status.is_some() && r.status != status {
                r.status = status.clone();
                if save {
                    let r = r.clone();
                    drop(recs);
                    let _ = self.save(&r);
                }
            }
        }
        status
    }

    async fn sync_statuses(&self) {
        let ids: Vec<String> = self
            .records
            .lock()
            .expect("records lock")
            .keys()
            .cloned()
            .collect();
        for id in ids {
            let owned = id.clone();
            match self.sup(move |c| c.state(&owned)).await {
                Ok(status) => {
                    self.set_status(&id, Some(status), true);
                }
                // An AutoRemove container that ran and exited while the
                // daemon was away: the supervisor forgot it at its exit, and
                // it goes now, as dockerd removes those when it restarts.
                Err(EngineError::NoSuchContainer(_)) => {
                    let gone = self
                        .records
                        .lock()
                        .expect("records lock")
                        .get(&id)
                        .is_some_and(|r| r.auto_remove && r.status.is_some());
                    if gone {
                        let _ = self.remove_with(&id, true, false).await;
                    }
                }
                Err(e) => tracing::warn!(id, error = %e, "container status"),
            }
        }
    }

    /// Resolves a full id, a unique id prefix or a name (with or without `/`).
    pub fn resolve(&self, name_or_id: &str) -> Result<String, EngineError> {
        let key = name_or_id.trim_start_matches('/');
        let recs = self.records.lock().expect("records lock");
        if recs.contains_key(key) {
            return Ok(key.to_string());
        }
        if let Some(r) = recs.values().find(|r| r.name == key) {
            return Ok(r.id.clone());
        }
        let matches: Vec<&String> = recs
            .keys()
            .filter(|id| !key.is_empty() && id.starts_with(key))
            .collect();
        match matches.len() {
            1 => Ok(matches[0].clone()),
            0 => Err(EngineError::NoSuchContainer(name_or_id.to_string())),
            _ => Err(EngineError::Invalid(format!(
                "multiple containers match {name_or_id:?}: give more of the id"
            ))),
        }
    }

    /// A copy of a container's record.
    pub fn record(&self, name_or_id: &str) -> Result<Record, EngineError> {
        let id = self.resolve(name_or_id)?;
        self.records
            .lock()
            .expect("records lock")
            .get(&id)
            .cloned()
            .ok_or(EngineError::NoSuchContainer(name_or_id.to_string()))
    }

    /// Every container's record.
    pub fn records(&self) -> Vec<Record> {
        self.records
            .lock()
            .expect("records lock")
            .values()
            .cloned()
            .collect()
    }

    /// `docker create`: records the container; nothing runs yet.
    pub async fn create(&self, req: CreateRequest) -> Result<String, EngineError> {
        let image_ref = req.image.clone();
        let details = {
            let images = self.images.clone();
            let r = image_ref.clone();
            tokio::task::spawn_blocking(move || images.inspect(&r))
                .await
                .map_err(internal)?
                .map_err(|_| EngineError::NoSuchImage(image_ref.clone()))?
        };
        let id = crate::ids::new_id();
        let name = match req.name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.trim_start_matches('/').to_string();
                if !crate::ids::valid_name(&n) {
                    return Err(EngineError::Invalid(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                n
            }
            None => loop {
                let n = crate::ids::random_name();
                if self.resolve(&n).is_err() {
                    break n;
                }
            },
        };
        let image_cfg = details.config.config().clone().unwrap_or_default();
        let defaults = ImageDefaults {
            env: image_cfg.env().clone().unwrap_or_default(),
            entrypoint: image_cfg.entrypoint().clone().unwrap_or_default(),
            cmd: image_cfg.cmd().clone().unwrap_or_default(),
            working_dir: image_cfg.working_dir().clone().unwrap_or_default(),
            user: image_cfg.user().clone().unwrap_or_default(),
            // Not in the OCI config type: read from the config blob.
            healthcheck: self
                .images
                .blob_path(&details.id)
                .and_then(|p| fs::read(p).ok())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .map(|v| v["config"]["Healthcheck"].clone())
                .filter(|h| h.is_object()),
        };
        let mut config = req.config;
        config.id = id.clone();
        if config.hostname.is_empty() {
            config.hostname = id[..12].to_string();
        }
        // The command must exist now, as Docker checks at create.
        if config
            .entrypoint
            .clone()
            .unwrap_or_else(|| defaults.entrypoint.clone())
            .is_empty()
            && config.cmd.is_empty()
            && (config.entrypoint.is_some() || defaults.cmd.is_empty())
        {
            return Err(EngineError::Invalid(
                "no command specified: the image has no Cmd or Entrypoint, give one after the image name".into(),
            ));
        }
        let record = Record {
            id: id.clone(),
            name: name.clone(),
            created: now(),
            image_ref,
            image_id: details.id.as_str().to_string(),
            config,
            image_defaults: defaults,
            restart: req.restart,
            auto_remove: req.auto_remove,
            network: req.network.unwrap_or(NetworkMode::Bridge("bridge".into())),
            ports: req.ports,
            raw: req.raw,
            endpoint: None,
            status: None,
            aliases: req.aliases,
            extra_networks: req.extra_networks,
            extra_endpoints: Vec::new(),
            first_opts: req.first_opts,
            first_detached: false,
            links: req.links,
        };
        {
            let mut recs = self.records.lock().expect("records lock");
            if recs.values().any(|r| r.name == name) {
                return Err(EngineError::Conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use. Remove it or pick another name."
                )));
            }
            recs.insert(id.clone(), record.clone());
        }
        // Its directory: one made ahead if ready (else `save` makes it).
        let _ = self.container_dirs.make(&id);
        let dirs = self.container_dirs.clone();
        tokio::task::spawn_blocking(move || dirs.refill());
        if let Err(e) = self.save(&record) {
            self.records.lock().expect("records lock").remove(&id);
            let _ = fs::remove_dir_all(self.dir(&id));
            return Err(e);
        }
        self.emit(&id, "create", None);
        // A client that attaches starts after its attach and wait requests
        // (the docker CLI's `run` and `create`); one that does not starts at
        // once (`run -d`), with no time for a preparation to save.
        let attaches = ["AttachStdin", "AttachStdout", "AttachStderr"]
            .iter()
            .any(|k| record.raw[k].as_bool() == Some(true));
        if attaches {
            self.prepare_soon(&record);
        }
        Ok(id)
    }

    /// Prepares the start of a container just created, in the background:
    /// the `docker` CLI attaches and asks for its exit between create and
    /// start (several milliseconds of its own), and that time goes into
    /// the start. A bridge network is wired at the start itself (the
    /// address is the start's, as in Docker); a container that joins
    /// another's namespace, has legacy links or several networks is not
    /// prepared. Unused, the supervisor discards it after `PREPARED_TTL`.
    fn prepare_soon(&self, r: &Record) {
        let network = match &r.network {
            NetworkMode::None | NetworkMode::Host => true,
            // Wired at the start (see `launch`); not with what the start
            // of another container decides (legacy links' addresses) or
            // more networks than one.
            NetworkMode::Bridge(_) => {
                !r.first_detached && r.links.is_empty() && r.extra_networks.is_empty()
            }
            NetworkMode::Container(_) => false,
        };
        if !self.cfg.prepare_starts || !network {
            return;
        }
        let Some(me) = self.me.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        let slot: PreparedSlot = Arc::default();
        let Ok(mut guard) = slot.clone().try_lock_owned() else {
            return;
        };
        self.prepared
            .lock()
            .expect("prepared lock")
            .insert(r.id.clone(), slot);
        let id = r.id.clone();
        tokio::spawn(async move {
            match me.prepare(&id).await {
                Ok(p) => *guard = Some(p),
                Err(e) => tracing::debug!(id, error = %e, "start not prepared"),
            }
            drop(guard);
            // Unused, it goes when the supervisor discards its part: the
            // network namespace it holds with it.
            let weak = Arc::downgrade(&me);
            drop(me);
            tokio::time::sleep(strato_supervisor::protocol::PREPARED_TTL).await;
            if let Some(me) = weak.upgrade() {
                me.prepared.lock().expect("prepared lock").remove(&id);
            }
        });
    }

    /// The bundle of container `id` and its creation in the supervisor, as
    /// a start would make them. Returns once the supervisor was asked: the
    /// start need not wait for the answer (see [`Client::send_prepare`]).
    async fn prepare(&self, id: &str) -> Result<Prepared, EngineError> {
        let mut r = self.record(id)?;
        let record = record_bytes(&r);
        let (bundle, rootfs, overlay) = self.layer_for(&r).await?;
        tracing::debug!(id, "prepare: layer ready");
        let (spec, netns, hostname) = self
            .bundle_for(&mut r, &bundle, &rootfs, &overlay, false)
            .await?;
        tracing::debug!(id, "prepare: bundle written");
        let send = spec.clone();
        let fd = netns
            .as_ref()
            .map(|f| f.try_clone())
            .transpose()
            .map_err(internal)?;
        let root = self.sup_root();
        let conn = tokio::task::spawn_blocking(move || {
            let mut c = Client::connect(&root).map_err(internal)?;
            c.send_prepare(send, fd.as_ref().map(|f| f.as_fd()))
                .map_err(sup_err)?;
            Ok::<_, EngineError>(c)
        })
        .await
        .map_err(internal)??;
        Ok(Prepared {
            record,
            spec,
            netns,
            hostname,
            conn,
        })
    }

    /// The start prepared for container `id`, once made (it may be under
    /// way); `None` if there is none.
    async fn take_prepared(&self, id: &str) -> Option<Prepared> {
        let slot = self.prepared.lock().expect("prepared lock").remove(id)?;
        let mut guard = slot.lock().await;
        guard.take()
    }

    /// Discards the start prepared for container `id`, if any, before
    /// something else uses its root filesystem (a copy, an export).
    pub async fn unprepare(&self, id: &str) {
        if self.take_prepared(id).await.is_some() {
            let idc = id.to_string();
            if let Err(e) = self.sup(move |c| c.delete(&idc, true)).await {
                tracing::warn!(id, error = %e, "discard a prepared start");
            }
        }
    }

    fn bridge_network(name: &str) -> String {
        // Docker calls the default network "bridge"; ours is the manager's default.
        if name == "bridge" {
            String::new()
        } else {
            name.to_string()
        }
    }

    /// `docker start`. A start prepared after the create (see
    /// [`Engine::prepare_soon`]) is finished if the record is still the
    /// one it was made from; otherwise the supervisor discards it and the
    /// container starts from a new bundle.
    pub async fn start(&self, name_or_id: &str) -> Result<(), EngineError> {
        let mut r = self.record(name_or_id)?;
        if let Some(s) = &r.status {
            if matches!(s.phase, Phase::Running | Phase::Paused | Phase::Restarting) {
                return Err(EngineError::NotModified(format!(
                    "container {} is already running",
                    r.name
                )));
            }
        }
        let id = r.id.clone();
        let prepared = self
            .take_prepared(&id)
            .await
            .filter(|p| p.record == record_bytes(&r));
        let result = match prepared {
            Some(p) => {
                self.launch(&mut r, p.spec, p.netns, &p.hostname, Some(p.conn))
                    .await
            }
            None => {
                let (bundle, rootfs, overlay) = self.layer_for(&r).await?;
                self.start_mounted(&mut r, &bundle, &rootfs, &overlay).await
            }
        };
        if let Err(e) = result {
            self.release(&id).await;
            // As dockerd: a failed start is a "die" (with the shell's code
            // for a missing or unrunnable command), which ends attached
            // streams and wakes waiters; an AutoRemove container goes.
            self.emit(&id, "die", Some(start_failure_code(&e.to_string())));
            if r.auto_remove {
                let _ = self.remove(&id, true).await;
            }
            return Err(e);
        }
        Ok(())
    }

    /// The container's bundle directory, its rootfs mount point and its
    /// writable layer over the image's (not mounted: the runtime mounts it
    /// in the container's own mount namespace).
    async fn layer_for(
        &self,
        r: &Record,
    ) -> Result<(PathBuf, PathBuf, strato_image::Overlay), EngineError> {
        let bundle = self.run_dir(&r.id);
        let rootfs = bundle.join("rootfs");
        fs::create_dir_all(&rootfs).map_err(internal)?;
        // Rootfs: the image's layers under the container's writable layer,
        // mounted by the runtime in the container's own mount namespace: the
        // host's mount table never holds it (each new mount namespace copies
        // that table, so a host mount per running container made every start
        // cost more as containers ran). One left on the host by an earlier
        // strato is taken down first.
        let images = self.images.clone();
        let (image, cid, target) = (r.image_id.clone(), r.id.clone(), rootfs.clone());
        // A --rm container's layer goes with it: never synced.
        let opts = strato_image::RootfsOptions {
            volatile: r.auto_remove,
        };
        let overlay = tokio::task::spawn_blocking(move || {
            if is_mountpoint(&target) {
                let _ = strato_image::unmount(&target);
            }
            images.overlay_for(&image, &cid, opts)
        })
        .await
        .map_err(internal)?
        .map_err(|e| {
            EngineError::Internal(format!("prepare the container's root filesystem: {e}"))
        })?;
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || images.refill_spares());
        Ok((bundle, rootfs, overlay))
    }

    async fn start_mounted(
        &self,
        r: &mut Record,
        bundle: &Path,
        rootfs: &Path,
        overlay: &strato_image::Overlay,
    ) -> Result<(), EngineError> {
        let (spec, netns, hostname) = self.bundle_for(r, bundle, rootfs, overlay, true).await?;
        self.launch(r, spec, netns, &hostname, None).await
    }

    /// Everything a start needs before the supervisor's part: the network
    /// namespace (wired to its bridge networks unless `wire` is false, as
    /// for a prepared start), the /etc files, config.json. Returns the
    /// supervisor's spec, the namespace and the hostname.
    async fn bundle_for(
        &self,
        r: &mut Record,
        bundle: &Path,
        rootfs: &Path,
        overlay: &strato_image::Overlay,
        wire: bool,
    ) -> Result<(ContainerSpec, Option<OwnedFd>, String), EngineError> {
        let id = r.id.clone();
        let mut cfg = r.config.clone();
        // The network namespace the container joins, held by descriptor
        // until the supervisor takes it with the start.
        let mut netns: Option<OwnedFd> = None;
        match &r.network {
            NetworkMode::Container(target) => {
                let joined = self.joined_network(&id, target).await?;
                cfg.netns = joined.netns.as_ref().map(|_| String::new());
                netns = joined.netns;
                cfg.etc_files.extend(joined.etc_files);
                cfg.hostname = joined.hostname;
            }
            NetworkMode::Host => cfg.netns = None,
            NetworkMode::None => {
                // A namespace with only its loopback, up.
                netns = Some(self.new_netns(crate::netns::Kind::Plain).await?);
                cfg.netns = Some(String::new());
            }
            NetworkMode::Bridge(_) if r.first_detached => {
                // On no network: a namespace of its own (a later connect
                // wires it through the container's process) and files
                // without peers.
                netns = Some(self.new_netns(crate::netns::Kind::Plain).await?);
                let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                for (name, text) in [
                    ("hosts", DETACHED_HOSTS.to_string()),
                    (
                        "resolv.conf",
                        strato_network::files::resolv_conf(&host_resolv),
                    ),
                    ("hostname", format!("{}\n", cfg.hostname)),
                ] {
                    let p = bundle.join(name);
                    fs::write(&p, text).map_err(internal)?;
                    cfg.etc_files
                        .push((p.display().to_string(), format!("/etc/{name}")));
                }
                cfg.netns = Some(String::new());
            }
            NetworkMode::Bridge(net) => {
                let net = net.clone();
                let fd = self.new_netns(crate::netns::Kind::Wired).await?;
                // The /etc files are bind-mounted from the bundle; a start
                // that is prepared has them written, in place, once wired.
                for name in ["hosts", "resolv.conf", "hostname"] {
                    let p = bundle.join(name);
                    if !wire {
                        fs::write(&p, "").map_err(internal)?;
                    }
                    cfg.etc_files
                        .push((p.display().to_string(), format!("/etc/{name}")));
                }
                cfg.netns = Some(String::new());
                if wire {
                    let link_env = self.wire_bridge(r, &net, &fd, bundle).await?;
                    cfg.env.extend(link_env);
                }
                netns = Some(fd);
            }
        }
        if matches!(r.network, NetworkMode::Host | NetworkMode::None) {
            let hostname = bundle.join("hostname");
            fs::write(&hostname, format!("{}\n", cfg.hostname)).map_err(internal)?;
            cfg.etc_files
                .push((hostname.display().to_string(), "/etc/hostname".into()));
            if r.network == NetworkMode::Host {
                cfg.etc_files
                    .push(("/etc/resolv.conf".into(), "/etc/resolv.conf".into()));
                cfg.etc_files
                    .push(("/etc/hosts".into(), "/etc/hosts".into()));
            }
        }
        // Volumes with mount options (the local driver's type, device, o)
        // are mounted on the host as their first container starts.
        let volumes = crate::volumes::Volumes::new(self.cfg.data_root.join("volumes"));
        let sources: Vec<PathBuf> = cfg
            .mounts
            .iter()
            .filter(|m| m.kind == "bind" && Path::new(&m.source).starts_with(volumes.dir()))
            .map(|m| PathBuf::from(&m.source))
            .collect();
        if !sources.is_empty() {
            tokio::task::spawn_blocking(move || {
                sources.iter().try_for_each(|s| volumes.mount_if_needed(s))
            })
            .await
            .map_err(internal)?
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        }
        if cfg.init.unwrap_or(self.cfg.init) {
            let path = std::env::var("PATH").unwrap_or_default();
            let init = crate::hostdev::find_init(self.cfg.init_path.as_deref(), &path)
                .map_err(EngineError::Invalid)?;
            cfg.init_binary = Some(init.display().to_string());
        }
        // As dockerd: a privileged container sees the host's devices, as
        // they are at its start.
        if cfg.privileged {
            let given: Vec<String> = cfg.devices.iter().map(|d| d.path.clone()).collect();
            let host = crate::hostdev::host_devices(Path::new("/dev"));
            cfg.devices
                .extend(host.into_iter().filter(|d| !given.contains(&d.path)));
        }
        let accounts = self.accounts(r, overlay).await?;
        // Compact, as containerd writes it: the starter parses it per start,
        // and with Docker's seccomp profile the pretty form was twice as large
        // (17 KB against 9 KB).
        let (_, text) = crate::spec::build_json(
            &cfg,
            &r.image_defaults,
            rootfs,
            Some(overlay.options()),
            &accounts,
        )
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
        fs::write(bundle.join("config.json"), text).map_err(internal)?;
        let spec = ContainerSpec {
            id: id.clone(),
            bundle: bundle.to_path_buf(),
            log_path: self.log_path(&id),
            tty: cfg.tty,
            open_stdin: cfg.open_stdin,
            restart: r.restart.clone(),
            // The supervisor forgets it at its exit; the engine removes the rest.
            auto_remove: r.auto_remove,
            netns: netns.is_some(),
            own_cgroup_parent: !cfg.cgroup_parent.is_empty(),
        };
        Ok((spec, netns, cfg.hostname))
    }

    /// Wires a container's network namespace `ns` to its bridge network
    /// `net` (and its other networks) and writes its /etc files into the
    /// bundle (in place: they may be mounted already). Returns the
    /// environment of its legacy links.
    async fn wire_bridge(
        &self,
        r: &mut Record,
        net: &str,
        ns: &OwnedFd,
        bundle: &Path,
    ) -> Result<Vec<String>, EngineError> {
        let id = r.id.clone();
        let ns = crate::netns::fd_path(ns);
        let network = Self::bridge_network(net);
        let network = if network.is_empty() {
            self.net.ensure_default().await.map_err(internal)?.name
        } else {
            network
        };
        let mut req = AttachRequest::new(&network, &id, strato_network::Netns::Path(ns.clone()));
        req.names = r.dns_names(&r.aliases);
        req.ports = r.ports.clone();
        req.ip = r.first_opts.ip;
        req.ip6 = r.first_opts.ip6;
        req.mac = parse_mac(r.first_opts.mac.as_deref())?;
        let ep = self.net.attach(req).await.map_err(attach_error)?;
        // Recorded at once, so a failure below releases it.
        r.endpoint = Some(ep);
        r.extra_endpoints.clear();
        self.set_endpoints(r);
        self.serve_dns_for(&network).await;
        let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut files = self
            .net
            .container_files(&network, &id, &r.config.hostname, &host_resolv)
            .await
            .map_err(internal)?;
        own_etc_lines(&r.config, ep_gateway(r), &mut files);
        let (link_env, link_hosts) = self.legacy_links(r)?;
        let hosts = format!("{}{link_hosts}", files.hosts);
        for (name, text) in [
            ("hosts", &hosts),
            ("resolv.conf", &files.resolv_conf),
            ("hostname", &files.hostname),
        ] {
            fs::write(bundle.join(name), text).map_err(internal)?;
        }
        for extra in r.extra_networks.clone() {
            let ep = self
                .attach_extra(r, &extra, strato_network::Netns::Path(ns.clone()))
                .await?;
            r.extra_endpoints.push(ep);
            self.set_endpoints(r);
        }
        if !r.extra_endpoints.is_empty() {
            self.rewrite_hosts(r);
        }
        for extra in &r.extra_networks {
            self.use_embedded_dns(r, &extra.name).await;
        }
        Ok(link_env)
    }

    /// The supervisor's part of a start (finishing the prepared container
    /// if `prepared`: the connection its preparation went on), then the
    /// record of it.
    async fn launch(
        &self,
        r: &mut Record,
        spec: ContainerSpec,
        netns: Option<OwnedFd>,
        hostname: &str,
        prepared: Option<Client>,
    ) -> Result<(), EngineError> {
        let id = r.id.clone();
        // A prepared start's namespace is wired now, as Docker gives a
        // container its address at the start (while the supervisor may
        // still be preparing it).
        if let (true, NetworkMode::Bridge(net), Some(ns)) =
            (prepared.is_some(), r.network.clone(), &netns)
        {
            self.wire_bridge(r, &net, ns, &spec.bundle).await?;
        }
        // One connection: the start, then the status it left.
        self.starting
            .lock()
            .expect("starting lock")
            .insert(id.clone());
        // A container that never ran has no record in the supervisor.
        let ran_before = r.status.is_some();
        let started = match prepared {
            // Prepared after its create: it never ran.
            Some(mut conn) => tokio::task::spawn_blocking(move || {
                conn.start_prepared(spec, netns.as_ref().map(|fd| fd.as_fd()))
                    .map(|(_, status, _)| status)
                    .map_err(sup_err)
            })
            .await
            .map_err(internal)
            .and_then(|r| r),
            None => {
                self.sup(move |c| {
                    // A record of an earlier run is replaced.
                    if ran_before {
                        let _ = c.delete(&spec.id, false);
                    }
                    let (_, status) =
                        c.start_status(spec, netns.as_ref().map(|fd| fd.as_fd()), false)?;
                    Ok(status)
                })
                .await
            }
        };
        let status = match started {
            Ok(status) => status,
            Err(e) => {
                self.starting.lock().expect("starting lock").remove(&id);
                return Err(e);
            }
        };
        let saved = {
            let mut recs = self.records.lock().expect("records lock");
            recs.get_mut(&id).map(|rec| {
                // A joiner's hostname is its target's, as dockerd records it.
                rec.config.hostname = hostname.to_string();
                rec.endpoint = r.endpoint.clone();
                rec.extra_endpoints = r.extra_endpoints.clone();
                // The status of the start, unless the record holds a later
                // one of the same run already: a process that exits at once
                // may have had its exit handled first.
                let same_run = |cur: &ContainerStatus, new: &ContainerStatus| {
                    cur.started_at.is_some() && cur.started_at == new.started_at
                };
                if let Some(st) = &status {
                    if !rec.status.as_ref().is_some_and(|cur| same_run(cur, st)) {
                        rec.status = Some(st.clone());
                    }
                }
                rec.clone()
            })
        };
        if let Some(rec) = saved {
            // It runs: a record that cannot be written is not a failed start.
            if let Err(e) = self.save(&rec) {
                tracing::warn!(id, error = %e, "save container record");
            }
        }
        self.starting.lock().expect("starting lock").remove(&id);
        if let Some(s) = status {
            r.status = Some(s);
        }
        Ok(())
    }

    /// A new network namespace for a start: a ready one from the pool, or
    /// one made now, off the async workers (the kernel takes about a
    /// millisecond, and the daemon has one worker per CPU).
    async fn new_netns(&self, kind: crate::netns::Kind) -> Result<OwnedFd, EngineError> {
        if let Some(fd) = self.netns_pool.take_ready(kind) {
            return Ok(fd);
        }
        let pool = self.netns_pool.clone();
        tokio::task::spawn_blocking(move || pool.take(kind))
            .await
            .map_err(internal)?
            .map_err(|e| EngineError::Internal(format!("create network namespace: {e}")))
    }

    /// The /etc/passwd and /etc/group a container's user is resolved
    /// against. A container whose writable layer has not changed them (no
    /// `/etc` there, or only the mount points of its /etc files) sees its
    /// image's, read once per image; others are read from their merged
    /// view, mounted briefly in a private mount namespace.
    async fn accounts(
        &self,
        r: &Record,
        overlay: &strato_image::Overlay,
    ) -> Result<Arc<crate::users::Accounts>, EngineError> {
        let image_only = !layer_changed_accounts(overlay.upper());
        if image_only {
            if let Some(a) = self
                .accounts
                .lock()
                .expect("accounts lock")
                .get(&r.image_id)
            {
                return Ok(a.clone());
            }
        }
        let n = ACCOUNTS_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let scratch = self
            .cfg
            .exec_root
            .join("accounts")
            .join(format!("{}-{n}", r.id));
        let ov = overlay.clone();
        let accounts = tokio::task::spawn_blocking(move || {
            crate::users::Accounts::read_overlay(&ov, image_only, &scratch)
        })
        .await
        .map_err(internal)?
        .map_err(|e| {
            EngineError::Internal(format!(
                "read /etc/passwd and /etc/group of container {}: {e}",
                r.id
            ))
        })?;
        let accounts = Arc::new(accounts);
        if image_only {
            let mut cache = self.accounts.lock().expect("accounts lock");
            if cache.len() >= ACCOUNTS_KEPT {
                cache.clear();
            }
            cache.insert(r.image_id.clone(), accounts.clone());
        }
        Ok(accounts)
    }

    /// What a `--network container:<id>` container takes from its target
    /// (followed through targets that join another in turn): the network
    /// namespace to enter, the target's /etc/hosts, /etc/resolv.conf and
    /// /etc/hostname (bind-mounted, so later rewrites are seen by both) and
    /// its hostname. The target must be running, as dockerd requires.
    async fn joined_network(&self, joiner: &str, target: &str) -> Result<Joined, EngineError> {
        let mut target = target.to_string();
        // Targets are resolved to ids at create and must exist then, so a
        // chain cannot loop; the bound is only a guard.
        for _ in 0..16 {
            if target == joiner {
                return Err(EngineError::Invalid("cannot join own network".into()));
            }
            let t = self.record(&target)?;
            let idc = t.id.clone();
            let status = match self.sup(move |c| c.state(&idc)).await {
                Ok(s) => Some(s),
                Err(EngineError::NoSuchContainer(_)) => None,
                Err(e) => return Err(e),
            };
            match status.as_ref().map(|s| (s.phase, s.pid)) {
                Some((Phase::Running | Phase::Paused, pid)) if pid > 0 => {}
                Some((Phase::Restarting, _)) => {
                    return Err(EngineError::Conflict(format!(
                        "cannot join network of container {}: it is restarting, wait until it runs",
                        t.id
                    )))
                }
                _ => {
                    return Err(EngineError::Conflict(format!(
                        "cannot join network of a non running container: {}",
                        t.id
                    )))
                }
            }
            let pid = status.map(|s| s.pid).unwrap_or_default();
            // Its namespace, held from now on: the joiner's restarts join
            // it again even if the target's process changed.
            let by_pid = || {
                crate::netns::of_process(pid).map_err(|e| {
                    EngineError::Conflict(format!("cannot join network of container {}: {e}", t.id))
                })
            };
            let dir = self.etc_dir(&t.id);
            let own = |names: &[&str]| -> Vec<(String, String)> {
                names
                    .iter()
                    .map(|n| (dir.join(n), format!("/etc/{n}")))
                    .filter(|(p, _)| p.exists())
                    .map(|(p, d)| (p.display().to_string(), d))
                    .collect()
            };
            let (netns, etc_files) = match &t.network {
                NetworkMode::Container(next) => {
                    target = next.clone();
                    continue;
                }
                NetworkMode::Host => {
                    let mut files = own(&["hostname"]);
                    files.push(("/etc/resolv.conf".into(), "/etc/resolv.conf".into()));
                    files.push(("/etc/hosts".into(), "/etc/hosts".into()));
                    (None, files)
                }
                // Entered through its process.
                NetworkMode::None => (Some(by_pid()?), own(&["hostname"])),
                NetworkMode::Bridge(_) => {
                    (Some(by_pid()?), own(&["hosts", "resolv.conf", "hostname"]))
                }
            };
            return Ok(Joined {
                netns,
                etc_files,
                hostname: t.config.hostname,
            });
        }
        Err(EngineError::Invalid(format!(
            "cannot join network of container {target}: too many containers join one another"
        )))
    }

    /// Frees what a stopped container holds: its network endpoint and
    /// namespace, and its rootfs mount.
    /// The network and the mounts are independent: released concurrently.
    async fn release(&self, id: &str) {
        let rec = self.records.lock().expect("records lock").get(id).cloned();
        let network = async {
            if let Some(r) = &rec {
                for ep in r.endpoint.iter().chain(&r.extra_endpoints) {
                    if let Err(e) = self.net.detach_exited(&ep.network, id).await {
                        tracing::warn!(id, error = %e, "detach network");
                    }
                }
            }
        };
        // The namespace goes with its last holder (the supervisor lets go
        // of it at the final exit); only pins and root mounts left on the
        // host by an earlier strato are removed here.
        // Two lookups tell whether there are any (a thread hop for each
        // release cost more than they do).
        let (netns, rootfs) = (self.netns_path(id), self.dir(id).join("bundle/rootfs"));
        let mounts = async move {
            if netns.exists() || rootfs.exists() {
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = crate::netns::remove_pin(&netns);
                    if is_mountpoint(&rootfs) {
                        let _ = strato_image::unmount(&rootfs);
                    }
                })
                .await;
            }
        };
        let ((), ()) = tokio::join!(network, mounts);
        let mut recs = self.records.lock().expect("records lock");
        if let Some(r) = recs.get_mut(id) {
            // Released twice for --rm (at exit, then by the removal): the
            // record is rewritten only if it named endpoints.
            if r.endpoint.is_some() || !r.extra_endpoints.is_empty() {
                r.endpoint = None;
                r.extra_endpoints.clear();
                let r = r.clone();
                drop(recs);
                let _ = self.save(&r);
            }
        }
    }

    fn set_endpoints(&self, r: &Record) {
        let mut recs = self.records.lock().expect("records lock");
        if let Some(rec) = recs.get_mut(&r.id) {
            rec.endpoint = r.endpoint.clone();
            rec.extra_endpoints = r.extra_endpoints.clone();
        }
    }

    /// Attaches a running container's namespace to a connected network as
    /// the next free `ethN`, without a default route.
    async fn attach_extra(
        &self,
        r: &Record,
        extra: &ExtraNetwork,
        netns: strato_network::Netns,
    ) -> Result<Endpoint, EngineError> {
        let taken: Vec<&str> = r
            .endpoint
            .iter()
            .chain(&r.extra_endpoints)
            .map(|e| e.ifname.as_str())
            .collect();
        let ifname = (1..)
            .map(|i| format!("eth{i}"))
            .find(|n| !taken.contains(&n.as_str()))
            .expect("an unused interface name");
        let mut req = AttachRequest::new(&extra.name, &r.id, netns);
        req.ifname = ifname;
        req.names = r.dns_names(&extra.aliases);
        req.ip = extra.opts.ip;
        req.ip6 = extra.opts.ip6;
        req.mac = parse_mac(extra.opts.mac.as_deref())?;
        req.default_route = false;
        self.serve_dns_for(&extra.name).await;
        self.net.attach(req).await.map_err(attach_error)
    }

    /// Rewrites a running container's /etc/hosts in place (it is
    /// bind-mounted, so the file must keep its inode): its own line for
    /// each connected network after the generated part.
    fn rewrite_hosts(&self, r: &Record) {
        let path = self.etc_dir(&r.id).join("hosts");
        let Ok(text) = fs::read_to_string(&path) else {
            return;
        };
        const MARK: &str = "# connected networks\n";
        let mut base = text.split(MARK).next().unwrap_or("").to_string();
        if !r.extra_endpoints.is_empty() {
            base.push_str(MARK);
            for ep in &r.extra_endpoints {
                base.push_str(&format!("{}\t{}\n", ep.ip, r.config.hostname));
                if let Some(v6) = &ep.ipv6 {
                    base.push_str(&format!("{}\t{}\n", v6.ip, r.config.hostname));
                }
            }
        }
        if let Err(e) = fs::write(&path, base) {
            tracing::warn!(id = %r.id, error = %e, "update /etc/hosts");
        }
    }

    /// A container connected to a user-defined network asks that network's
    /// name server from now on, unless it already asks one of ours (its
    /// first network's). The file is rewritten in place: it is bind-mounted.
    async fn use_embedded_dns(&self, r: &Record, network: &str) {
        let Ok(n) = self.net.get(network).await else {
            return;
        };
        if !n.user_defined {
            return;
        }
        let path = self.etc_dir(&r.id).join("resolv.conf");
        let current = fs::read_to_string(&path).unwrap_or_default();
        let mut ours = Vec::new();
        for other in self.net.list().await.into_iter().filter(|o| o.user_defined) {
            ours.push(format!("nameserver {}\n", other.gateway));
        }
        if ours.iter().any(|l| current.starts_with(l.as_str())) {
            return;
        }
        let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let text = strato_network::files::resolv_conf_embedded(n.gateway, &host);
        if let Err(e) = fs::write(&path, text) {
            tracing::warn!(id = %r.id, error = %e, "update resolv.conf");
        }
    }

    /// `docker network connect`: remembered for later starts, and wired now
    /// if the container runs.
    pub async fn connect(
        &self,
        name_or_id: &str,
        network: &str,
        aliases: Vec<String>,
        opts: EndpointExtras,
    ) -> Result<(), EngineError> {
        let mut r = self.record(name_or_id)?;
        parse_mac(opts.mac.as_deref())?;
        if !matches!(r.network, NetworkMode::Bridge(_)) {
            return Err(EngineError::Invalid(format!(
                "container {} uses --network {}: it cannot be connected to other networks",
                r.name,
                r.network.mode_string()
            )));
        }
        if r.network_names().iter().any(|n| n == network)
            || (network == strato_network::DEFAULT_NETWORK
                && r.network.name() == "bridge"
                && !r.first_detached)
        {
            return Err(EngineError::Conflict(format!(
                "endpoint with name {} already exists in network {network}",
                r.name
            )));
        }
        // Wired through its process's namespace.
        let running = r
            .status
            .as_ref()
            .filter(|s| matches!(s.phase, Phase::Running | Phase::Paused) && s.pid > 0)
            .map(|s| strato_network::Netns::Pid(s.pid as u32));
        if r.first_detached {
            return self.connect_first(r, network, aliases, opts, running).await;
        }
        let extra = ExtraNetwork {
            name: network.to_string(),
            aliases,
            opts,
        };
        let running = running.filter(|_| r.endpoint.is_some());
        if let Some(ns) = &running {
            let ep = self.attach_extra(&r, &extra, ns.clone()).await?;
            r.extra_endpoints.push(ep);
        }
        r.extra_networks.push(extra);
        {
            let mut recs = self.records.lock().expect("records lock");
            if let Some(rec) = recs.get_mut(&r.id) {
                rec.extra_networks = r.extra_networks.clone();
                rec.extra_endpoints = r.extra_endpoints.clone();
            }
        }
        self.save(&r)?;
        if running.is_some() {
            self.rewrite_hosts(&r);
            self.use_embedded_dns(&r, network).await;
        }
        Ok(())
    }

    /// `docker network disconnect` from a network connected after create.
    pub async fn disconnect(&self, name_or_id: &str, network: &str) -> Result<(), EngineError> {
        let mut r = self.record(name_or_id)?;
        let Some(pos) = r.extra_networks.iter().position(|n| n.name == network) else {
            let first = matches!(r.network, NetworkMode::Bridge(_))
                && !r.first_detached
                && (r.network.name() == network
                    || (network == strato_network::DEFAULT_NETWORK
                        && r.network.name() == "bridge"));
            if first {
                return self.disconnect_first(r).await;
            }
            return Err(EngineError::Invalid(format!(
                "container {} is not connected to network {network}",
                r.name
            )));
        };
        r.extra_networks.remove(pos);
        if let Some(i) = r.extra_endpoints.iter().position(|e| e.network == network) {
            let ep = r.extra_endpoints.remove(i);
            self.net
                .detach(&ep.network, &r.id)
                .await
                .map_err(internal)?;
            self.rewrite_hosts(&r);
        }
        {
            let mut recs = self.records.lock().expect("records lock");
            if let Some(rec) = recs.get_mut(&r.id) {
                rec.extra_networks = r.extra_networks.clone();
                rec.extra_endpoints = r.extra_endpoints.clone();
            }
        }
        self.save(&r)
    }

    /// Disconnects a container from its first network: the next connected
    /// one (if any) becomes its first.
    async fn disconnect_first(&self, mut r: Record) -> Result<(), EngineError> {
        if let Some(ep) = r.endpoint.take() {
            self.net
                .detach(&ep.network, &r.id)
                .await
                .map_err(internal)?;
        }
        r.promote_or_detach();
        self.store_networks(&r);
        self.save(&r)?;
        self.rewrite_hosts(&r);
        Ok(())
    }

    /// Connects a container that is on no network: this one becomes its
    /// first (eth0, the default route, its published ports).
    async fn connect_first(
        &self,
        mut r: Record,
        network: &str,
        aliases: Vec<String>,
        opts: EndpointExtras,
        running: Option<strato_network::Netns>,
    ) -> Result<(), EngineError> {
        let mut next = r.clone();
        next.network = NetworkMode::Bridge(network.to_string());
        next.aliases = aliases;
        next.first_opts = opts;
        next.first_detached = false;
        if let Some(ns) = &running {
            let mut req = AttachRequest::new(network, &r.id, ns.clone());
            req.names = next.dns_names(&next.aliases);
            req.ports = next.ports.clone();
            req.ip = next.first_opts.ip;
            req.ip6 = next.first_opts.ip6;
            req.mac = parse_mac(next.first_opts.mac.as_deref())?;
            self.serve_dns_for(network).await;
            let ep = self.net.attach(req).await.map_err(attach_error)?;
            next.endpoint = Some(ep);
        }
        r = next;
        self.store_networks(&r);
        self.save(&r)?;
        if running.is_some() {
            // The files are bind-mounted: rewritten in place.
            let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            if let Ok(mut files) = self
                .net
                .container_files(network, &r.id, &r.config.hostname, &host_resolv)
                .await
            {
                own_etc_lines(&r.config, ep_gateway(&r), &mut files);
                let dir = self.etc_dir(&r.id);
                for (name, text) in [("hosts", &files.hosts), ("resolv.conf", &files.resolv_conf)] {
                    if let Err(e) = fs::write(dir.join(name), text) {
                        tracing::warn!(id = %r.id, error = %e, "update /etc/{name}");
                    }
                }
            }
        }
        Ok(())
    }

    /// The variables and /etc/hosts lines of a container's legacy links;
    /// every target must run (as dockerd requires).
    fn legacy_links(&self, r: &Record) -> Result<(Vec<String>, String), EngineError> {
        let mut env = Vec::new();
        let mut hosts = String::new();
        for l in &r.links {
            let t = self.record(&l.target).map_err(|_| {
                EngineError::Invalid(format!(
                    "could not get container for link {}: it was removed; remove the link with docker rm --link /{}/{}",
                    l.alias, r.name, l.alias
                ))
            })?;
            let ep = t.endpoint.as_ref().filter(|_| {
                t.status
                    .as_ref()
                    .is_some_and(|s| matches!(s.phase, Phase::Running | Phase::Paused))
            });
            let Some(ep) = ep else {
                return Err(EngineError::Conflict(format!(
                    "Cannot link to a non running container: /{} AS /{}/{}",
                    t.name, r.name, l.alias
                )));
            };
            env.extend(link_env(
                &l.alias,
                &format!("/{}/{}", r.name, l.alias),
                ep.ip,
                &t,
            ));
            hosts.push_str(&format!(
                "{}\t{} {} {}\n",
                ep.ip, l.alias, t.name, t.config.hostname
            ));
        }
        Ok((env, hosts))
    }

    /// `docker rm --link /NAME/ALIAS`: forgets a legacy link.
    pub fn remove_link(&self, name_or_id: &str, alias: &str) -> Result<(), EngineError> {
        let mut r = self.record(name_or_id)?;
        let Some(i) = r.links.iter().position(|l| l.alias == alias) else {
            return Err(EngineError::Invalid(format!(
                "container {} has no link {alias}",
                r.name
            )));
        };
        r.links.remove(i);
        {
            let mut recs = self.records.lock().expect("records lock");
            if let Some(rec) = recs.get_mut(&r.id) {
                rec.links = r.links.clone();
            }
        }
        self.save(&r)
    }

    /// Copies a record's network fields into the table.
    fn store_networks(&self, r: &Record) {
        let mut recs = self.records.lock().expect("records lock");
        if let Some(rec) = recs.get_mut(&r.id) {
            rec.network = r.network.clone();
            rec.aliases = r.aliases.clone();
            rec.first_opts = r.first_opts.clone();
            rec.first_detached = r.first_detached;
            rec.endpoint = r.endpoint.clone();
            rec.extra_networks = r.extra_networks.clone();
            rec.extra_endpoints = r.extra_endpoints.clone();
        }
    }

    /// `docker kill`.
    pub async fn kill(&self, name_or_id: &str, signal: i32) -> Result<(), EngineError> {
        let id = self.resolve(name_or_id)?;
        let running = self
            .record(&id)?
            .status
            .is_some_and(|s| matches!(s.phase, Phase::Running | Phase::Paused));
        if !running {
            return Err(EngineError::Conflict(format!(
                "Container {id} is not running"
            )));
        }
        self.sup(move |c| c.kill(&id, signal, false)).await
    }

    /// `docker stop`: SIGTERM (or the image's stop signal), then SIGKILL after `timeout`.
    pub async fn stop(
        &self,
        name_or_id: &str,
        timeout: Option<u64>,
        signal: Option<i32>,
    ) -> Result<(), EngineError> {
        let id = self.resolve(name_or_id)?;
        let status = self.refresh(&id).await;
        if !status
            .as_ref()
            .is_some_and(|s| matches!(s.phase, Phase::Running | Phase::Paused | Phase::Restarting))
        {
            return Err(EngineError::NotModified(format!(
                "container {name_or_id} is not running"
            )));
        }
        let mut rx = self.subscribe();
        let sig = signal.unwrap_or(libc::SIGTERM);
        let idc = id.clone();
        let _ = self.sup(move |c| c.kill(&idc, sig, true)).await;
        // "die" is emitted after the exit was handled (network and rootfs
        // released), so a start right after stop never races the release.
        let died = async {
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.id == id && ev.action == "die" => return,
                    Err(broadcast::error::RecvError::Closed) => return,
                    _ => {}
                }
            }
        };
        let mut died = std::pin::pin!(died);
        let graceful =
            tokio::time::timeout(Duration::from_secs(timeout.unwrap_or(10)), &mut died).await;
        if graceful.is_err() {
            let idc = id.clone();
            let _ = self.sup(move |c| c.kill(&idc, libc::SIGKILL, true)).await;
            let _ = tokio::time::timeout(Duration::from_secs(30), &mut died).await;
        }
        self.wait_not_running(&id).await;
        Ok(())
    }

    async fn wait_not_running(&self, id: &str) {
        for _ in 0..2000 {
            let s = self.refresh(id).await;
            if s.is_none_or(|s| s.phase == Phase::Exited) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `docker wait`: the exit code once the container is not running.
    /// With `next_exit`, waits for the next exit even if it is stopped now.
    pub async fn wait(&self, name_or_id: &str, next_exit: bool) -> Result<i32, EngineError> {
        let id = self.resolve(name_or_id)?;
        let mut rx = self.subscribe();
        if !next_exit {
            let r = self.record(&id)?;
            match &r.status {
                None => {}
                Some(s) if s.phase == Phase::Exited => return Ok(s.exit_code.unwrap_or(0)),
                Some(_) => {}
            }
            if r.status.is_none() {
                // Created, never started: Docker waits for it to run and stop.
            }
        }
        loop {
            match rx.recv().await {
                Ok(ev) if ev.id == id && ev.action == "die" => {
                    // Final only when no restart follows.
                    let s = self.refresh(&id).await;
                    if s.is_none_or(|s| s.phase == Phase::Exited) {
                        return Ok(ev.exit_code.unwrap_or(0));
                    }
                }
                Ok(ev) if ev.id == id && ev.action == "destroy" => return Ok(0),
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(EngineError::Internal("the engine is shutting down".into()))
                }
                _ => {}
            }
        }
    }

    /// `docker rm`.
    pub async fn remove(&self, name_or_id: &str, force: bool) -> Result<(), EngineError> {
        self.remove_with(name_or_id, force, true).await
    }

    /// [`Engine::remove`]; `in_supervisor`: whether the supervisor may still
    /// hold the container (false once it told the exit of an AutoRemove one).
    async fn remove_with(
        &self,
        name_or_id: &str,
        force: bool,
        in_supervisor: bool,
    ) -> Result<(), EngineError> {
        let id = self.resolve(name_or_id)?;
        let r = self.record(&id)?;
        let running = r
            .status
            .as_ref()
            .is_some_and(|s| matches!(s.phase, Phase::Running | Phase::Paused | Phase::Restarting));
        if running && !force {
            return Err(EngineError::Conflict(format!(
                "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
            )));
        }
        // A start prepared (or being prepared) goes with the delete below.
        let _ = self.take_prepared(&id).await;
        let idc = id.clone();
        if in_supervisor {
            match self.sup(move |c| c.delete(&idc, true)).await {
                Ok(()) | Err(EngineError::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.release(&id).await;
        // The layer and the container's directory leave their places at
        // once (renames); their files are deleted after the answer, off the
        // path of `wait --condition removed` (a freed block can cost a
        // synchronous discard). A restart empties what is left.
        let images = self.images.clone();
        let (idc, dir, trash) = (id.clone(), self.dir(&id), self.trash());
        let run = self.run_dir(&id);
        let retired = tokio::task::spawn_blocking(move || {
            // On tmpfs: deleted with the rest, nothing to move first.
            let mut out: Vec<PathBuf> = vec![run];
            match images.retire_container_layer(&idc) {
                Ok(layer) => out.extend(layer),
                Err(e) => tracing::warn!(id = idc, error = %e, "remove container layer"),
            }
            out.extend(retire_dir(&dir, &trash, &idc));
            out
        })
        .await
        .unwrap_or_default();
        self.records.lock().expect("records lock").remove(&id);
        self.emit(&id, "destroy", None);
        tokio::task::spawn_blocking(move || {
            for d in retired {
                let _ = fs::remove_dir_all(d);
            }
        });
        Ok(())
    }

    /// The container's stdin (pipe or pty master) for attach.
    pub async fn stdin(&self, name_or_id: &str) -> Result<OwnedFd, EngineError> {
        let id = self.resolve(name_or_id)?;
        self.sup(move |c| c.stdin(&id)).await
    }

    /// Resizes a container's terminal.
    pub async fn resize(
        &self,
        name_or_id: &str,
        height: u16,
        width: u16,
    ) -> Result<(), EngineError> {
        let id = self.resolve(name_or_id)?;
        self.sup(move |c| c.resize(&id, height, width)).await
    }

    /// `docker pause` / `unpause`.
    pub async fn set_paused(&self, name_or_id: &str, paused: bool) -> Result<(), EngineError> {
        let id = self.resolve(name_or_id)?;
        let idc = id.clone();
        self.sup(move |c| {
            if paused {
                c.pause(&idc)
            } else {
                c.resume(&idc)
            }
        })
        .await?;
        self.refresh(&id).await;
        self.emit(&id, if paused { "pause" } else { "unpause" }, None);
        Ok(())
    }

    /// Renames a container.
    pub fn rename(&self, name_or_id: &str, new_name: &str) -> Result<(), EngineError> {
        let id = self.resolve(name_or_id)?;
        let new_name = new_name.trim_start_matches('/');
        if !crate::ids::valid_name(new_name) {
            return Err(EngineError::Invalid(format!(
                "Invalid container name ({new_name})"
            )));
        }
        let mut recs = self.records.lock().expect("records lock");
        if recs.values().any(|r| r.name == new_name && r.id != id) {
            return Err(EngineError::Conflict(format!(
                "Conflict. The container name \"/{new_name}\" is already in use"
            )));
        }
        let r = recs
            .get_mut(&id)
            .ok_or(EngineError::NoSuchContainer(id.clone()))?;
        r.name = new_name.to_string();
        let r = r.clone();
        drop(recs);
        self.save(&r)
    }

    /// `docker update`: merges `update` into the container's limits (zero
    /// or empty fields keep theirs; `pids_limit` ≤ 0 is unlimited), checks
    /// them as dockerd does, applies them to the cgroup of a live container
    /// and to its bundle (restarts by policy use it), then records them and
    /// the new restart policy. Nothing is recorded if applying fails.
    pub async fn update(
        &self,
        name_or_id: &str,
        update: ResourceUpdate,
        restart: Option<RestartPolicy>,
    ) -> Result<(), EngineError> {
        let id = self.resolve(name_or_id)?;
        let r = self.record(&id)?;
        if restart.as_ref().is_some_and(|p| *p != RestartPolicy::No) && r.auto_remove {
            return Err(EngineError::Invalid(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
                    .into(),
            ));
        }
        let merged = update
            .merge(&r.config.resources)
            .map_err(EngineError::Invalid)?;
        let mut limits = serde_json::Map::new();
        for (k, v) in crate::spec::limits(&merged) {
            limits.insert(k.into(), v);
        }
        if update.pids_limit.is_some_and(|p| p <= 0) {
            limits.insert("pids".into(), serde_json::json!({"limit": -1}));
        }
        let changed = merged != r.config.resources;
        let live = r
            .status
            .as_ref()
            .is_some_and(|s| matches!(s.phase, Phase::Running | Phase::Paused | Phase::Restarting));
        if live {
            let (idc, res, pol) = (
                id.clone(),
                changed.then(|| serde_json::Value::Object(limits.clone())),
                restart.clone(),
            );
            self.sup(move |c| c.update(&idc, res, pol)).await?;
        }
        if changed {
            let config = self.bundle_path(&id).join("config.json");
            if let Ok(bytes) = fs::read(&config) {
                let mut spec: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(internal)?;
                for (k, v) in &limits {
                    spec["linux"]["resources"][k] = v.clone();
                }
                let tmp = config.with_extension("json.tmp");
                fs::write(&tmp, serde_json::to_vec_pretty(&spec).map_err(internal)?)
                    .map_err(internal)?;
                fs::rename(&tmp, &config).map_err(internal)?;
            }
        }
        let saved = {
            let mut recs = self.records.lock().expect("records lock");
            let rec = recs
                .get_mut(&id)
                .ok_or(EngineError::NoSuchContainer(id.clone()))?;
            rec.config.resources = merged;
            if let Some(p) = restart {
                rec.restart = p;
            }
            rec.clone()
        };
        self.save(&saved)
    }

    /// cgroup statistics of a running container.
    pub fn stats(&self, name_or_id: &str) -> Result<strato_cgroups::Stats, EngineError> {
        let path = self.record(name_or_id)?.config.cgroups_path();
        let h = strato_cgroups::detect(Path::new("/sys/fs/cgroup")).map_err(internal)?;
        let m = strato_cgroups::Manager::new(&h, Path::new(&path)).map_err(internal)?;
        m.stats().map_err(internal)
    }

    /// Host pids of a running container's processes.
    pub fn pids(&self, name_or_id: &str) -> Result<Vec<i32>, EngineError> {
        let path = self.record(name_or_id)?.config.cgroups_path();
        let h = strato_cgroups::detect(Path::new("/sys/fs/cgroup")).map_err(internal)?;
        let m = strato_cgroups::Manager::new(&h, Path::new(&path)).map_err(internal)?;
        m.pids().map_err(internal)
    }

    /// `docker diff`: the changes of the container's writable layer. Its
    /// mount points (from its last start's OCI config: /proc, /dev, the
    /// /etc files, volumes) are left out, as dockerd keeps them in a layer
    /// of their own.
    pub async fn changes(
        &self,
        name_or_id: &str,
    ) -> Result<Vec<strato_image::changes::Change>, EngineError> {
        let id = self.resolve(name_or_id)?;
        let config = self.bundle_path(&id).join("config.json");
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || images.container_changes(&id, &layer_ignore(&config)))
            .await
            .map_err(internal)?
            .map_err(internal)
    }

    /// `docker commit`: an image of the container's writable layer (mount
    /// points left out) over its image.
    pub async fn commit(
        &self,
        name_or_id: &str,
        spec: strato_image::CommitSpec,
    ) -> Result<strato_image::Digest, EngineError> {
        let id = self.resolve(name_or_id)?;
        let config = self.bundle_path(&id).join("config.json");
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || {
            images.commit_container(&id, &layer_ignore(&config), &spec)
        })
        .await
        .map_err(internal)?
        .map_err(|e| match e {
            strato_image::Error::NotFound(_) => EngineError::Invalid(format!(
                "container {name_or_id} has no filesystem layer yet: start it once before committing it"
            )),
            strato_image::Error::InvalidReference { .. } => EngineError::Invalid(e.to_string()),
            other => EngineError::Internal(other.to_string()),
        })
    }

    /// Runs a process in a running container (see [`Client::exec`]).
    pub async fn exec(
        &self,
        name_or_id: &str,
        exec_id: &str,
        process: serde_json::Value,
        stdin: bool,
    ) -> Result<(i32, bool, Vec<OwnedFd>), EngineError> {
        let id = self.resolve(name_or_id)?;
        let spec = strato_supervisor::ExecSpec {
            container: id,
            exec_id: exec_id.to_string(),
            process,
            stdin,
        };
        self.sup(move |c| c.exec(spec)).await
    }

    /// Resizes an exec's terminal.
    pub async fn exec_resize(
        &self,
        exec_id: &str,
        height: u16,
        width: u16,
    ) -> Result<(), EngineError> {
        let e = exec_id.to_string();
        self.sup(move |c| c.exec_resize(&e, height, width)).await
    }

    /// An exec's state.
    pub async fn exec_state(
        &self,
        exec_id: &str,
    ) -> Result<strato_supervisor::ExecStatus, EngineError> {
        let e = exec_id.to_string();
        self.sup(move |c| c.exec_state(&e)).await
    }
}

/// Makes each scratch mount point of [`Engine::accounts`] unique.
static ACCOUNTS_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether a writable layer (overlay upper directory) may change what
/// /etc/passwd or /etc/group read: it has an `/etc` that is not a plain
/// directory holding only the mount points the runtime makes for the
/// container's /etc files (an opaque `/etc` hides the image's).
fn layer_changed_accounts(upper: &Path) -> bool {
    let etc = upper.join("etc");
    let md = match fs::symlink_metadata(&etc) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        Err(_) => return true,
        Ok(md) => md,
    };
    if !md.is_dir() {
        return true;
    }
    let mut buf = [0u8; 4];
    for attr in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        if rustix::fs::lgetxattr(&etc, attr, &mut buf).is_ok() {
            return true;
        }
    }
    let Ok(entries) = fs::read_dir(&etc) else {
        return true;
    };
    entries.into_iter().any(|e| {
        e.map_or(true, |e| {
            !matches!(
                e.file_name().to_str(),
                Some("hosts" | "hostname" | "resolv.conf")
            )
        })
    })
}

/// Whether `path` is a mount point (its device differs from its parent's).
fn is_mountpoint(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(a), Some(Ok(b))) = (fs::metadata(path), path.parent().map(fs::metadata)) else {
        return false;
    };
    a.dev() != b.dev()
}

/// The exit code Docker reports for a start that failed with `msg`: 127 for
/// a command that is not there, 126 for one that cannot run, else 128.
fn start_failure_code(msg: &str) -> i32 {
    let m = msg.to_ascii_lowercase();
    if m.contains("not found") || m.contains("no such file") {
        127
    } else if m.contains("permission denied") || m.contains("exec format error") {
        126
    } else {
        128
    }
}

/// The gateway of a container's first network, if it has one.
fn ep_gateway(r: &Record) -> Option<std::net::Ipv4Addr> {
    r.endpoint.as_ref().map(|ep| ep.gateway)
}

/// The container's own lines in its /etc files: `--add-host` entries after
/// the network's hosts (`host-gateway` as the network's gateway), and
/// `--dns`, `--dns-search`, `--dns-option` in place of the host's.
fn own_etc_lines(
    cfg: &ContainerConfig,
    gateway: Option<std::net::Ipv4Addr>,
    files: &mut strato_network::ContainerFiles,
) {
    for (name, ip) in &cfg.extra_hosts {
        let ip = match (ip.as_str(), gateway) {
            ("host-gateway", Some(gw)) => gw.to_string(),
            ("host-gateway", None) => continue,
            _ => ip.clone(),
        };
        files.hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    if cfg.dns.is_empty() && cfg.dns_search.is_empty() && cfg.dns_options.is_empty() {
        return;
    }
    let mut servers = Vec::new();
    let mut search = None;
    let mut options = None;
    for line in files.resolv_conf.lines() {
        match line.split_whitespace().next() {
            Some("nameserver") => servers.push(line.to_string()),
            Some("search") | Some("domain") => search = Some(line.to_string()),
            Some("options") => options = Some(line.to_string()),
            _ => {}
        }
    }
    if !cfg.dns.is_empty() {
        servers = cfg.dns.iter().map(|d| format!("nameserver {d}")).collect();
    }
    if !cfg.dns_search.is_empty() {
        search = Some(format!("search {}", cfg.dns_search.join(" ")));
    }
    if !cfg.dns_options.is_empty() {
        options = Some(format!("options {}", cfg.dns_options.join(" ")));
    }
    let mut out = String::new();
    for l in search.iter().chain(servers.iter()).chain(options.iter()) {
        out.push_str(l);
        out.push('\n');
    }
    files.resolv_conf = out;
}

/// Moves a removed container's directory `dir` into `trash` and returns
/// where it went; `None` if it was not there. Should the rename fail, the
/// directory is deleted in place.
fn retire_dir(dir: &Path, trash: &Path, id: &str) -> Option<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let to = trash.join(format!("{id}-{nanos}"));
    let _ = fs::create_dir_all(trash);
    match fs::rename(dir, &to) {
        Ok(()) => Some(to),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(_) => {
            let _ = fs::remove_dir_all(dir);
            None
        }
    }
}

/// Deletes, on a thread of its own, what removals of an earlier run left
/// in `trash`.
fn empty_trash(trash: PathBuf) {
    let Ok(entries) = fs::read_dir(&trash) else {
        return;
    };
    let left: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    if left.is_empty() {
        return;
    }
    std::thread::spawn(move || {
        for p in left {
            let _ = fs::remove_dir_all(p);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_rewritten_whole_in_one_of_two_files() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let ino = || fs::metadata(dir.path().join("record.json")).unwrap().ino();
        let long = vec![b'a'; 5000];
        let short = b"{\"short\":1}".to_vec();
        write_record(dir.path(), &long).unwrap();
        let first = ino();
        write_record(dir.path(), &short).unwrap();
        assert_eq!(fs::read(dir.path().join("record.json")).unwrap(), short);
        let second = ino();
        assert_ne!(first, second, "written beside, then exchanged");
        write_record(dir.path(), &long).unwrap();
        assert_eq!(fs::read(dir.path().join("record.json")).unwrap(), long);
        // The two files take turns: no third one is made.
        assert_eq!(ino(), first);
        write_record(dir.path(), &short).unwrap();
        assert_eq!(ino(), second);
        assert_eq!(fs::read(dir.path().join("record.json")).unwrap(), short);
    }

    #[test]
    fn a_removed_directory_goes_to_the_trash_and_a_restart_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let (containers, trash) = (dir.path().join("containers"), dir.path().join("trash"));
        let c = containers.join("c1");
        fs::create_dir_all(c.join("bundle/rootfs")).unwrap();
        fs::write(c.join("record.json"), "{}").unwrap();
        let moved = retire_dir(&c, &trash, "c1").expect("moved");
        assert!(!c.exists());
        assert!(moved.starts_with(&trash));
        assert!(moved.join("bundle/rootfs").is_dir());
        // Gone already: nothing to move.
        assert!(retire_dir(&c, &trash, "c1").is_none());
        empty_trash(trash.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while moved.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the trash was not emptied"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // An empty or missing trash is fine.
        empty_trash(trash);
        empty_trash(dir.path().join("none"));
    }

    #[test]
    fn a_layer_ignores_mount_points_but_not_the_root_mount() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        fs::write(
            &config,
            r#"{"mounts":[{"destination":"/","type":"overlay"},{"destination":"/etc/hosts/"},{"destination":"/proc"}]}"#,
        )
        .unwrap();
        assert_eq!(
            layer_ignore(&config),
            vec!["/etc/hosts", "/proc", "/.dockerenv"]
        );
    }

    #[test]
    fn a_layer_changes_accounts_only_beyond_its_etc_mount_points() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path();
        assert!(!layer_changed_accounts(upper));
        fs::create_dir(upper.join("etc")).unwrap();
        for f in ["hosts", "hostname", "resolv.conf"] {
            fs::write(upper.join("etc").join(f), "").unwrap();
        }
        assert!(!layer_changed_accounts(upper));
        fs::write(upper.join("etc/passwd"), "x:x:1:1::/:/bin/sh\n").unwrap();
        assert!(layer_changed_accounts(upper));
        fs::remove_file(upper.join("etc/passwd")).unwrap();
        // An opaque /etc hides the image's files.
        rustix::fs::setxattr(
            upper.join("etc"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        assert!(layer_changed_accounts(upper));
    }

    #[test]
    fn network_modes_parse_show_and_keep_old_records_readable() {
        assert_eq!(
            NetworkMode::parse("container:web"),
            NetworkMode::Container("web".into())
        );
        assert_eq!(
            NetworkMode::parse("container"),
            NetworkMode::Bridge("container".into())
        );
        assert_eq!(
            NetworkMode::Container("abc".into()).mode_string(),
            "container:abc"
        );
        assert_eq!(NetworkMode::Host.mode_string(), "host");
        assert_eq!(NetworkMode::parse("front").mode_string(), "front");
        // Records written before the container mode existed still read.
        for (json, want) in [
            (
                r#"{"mode":"bridge","name":"front"}"#,
                NetworkMode::Bridge("front".into()),
            ),
            (r#"{"mode":"host"}"#, NetworkMode::Host),
            (r#"{"mode":"none"}"#, NetworkMode::None),
        ] {
            assert_eq!(serde_json::from_str::<NetworkMode>(json).unwrap(), want);
        }
        let joined = NetworkMode::Container("abc".into());
        let text = serde_json::to_string(&joined).unwrap();
        assert_eq!(text, r#"{"mode":"container","name":"abc"}"#);
        assert_eq!(serde_json::from_str::<NetworkMode>(&text).unwrap(), joined);
    }

    #[test]
    fn link_variables_follow_dockers_names() {
        let t = Record {
            id: "t".into(),
            name: "db".into(),
            created: String::new(),
            image_ref: String::new(),
            image_id: String::new(),
            config: ContainerConfig {
                env: vec!["PASS=x".into(), "PATH=/bin".into(), "HOME=/root".into()],
                ..Default::default()
            },
            image_defaults: ImageDefaults::default(),
            restart: RestartPolicy::default(),
            auto_remove: false,
            network: NetworkMode::Bridge("bridge".into()),
            ports: Vec::new(),
            raw: serde_json::json!({"ExposedPorts": {"5432/tcp": {}, "53/udp": {}}}),
            endpoint: None,
            status: None,
            aliases: Vec::new(),
            extra_networks: Vec::new(),
            extra_endpoints: Vec::new(),
            first_opts: EndpointExtras::default(),
            first_detached: false,
            links: Vec::new(),
        };
        let env = link_env("my-db", "/web/my-db", "10.0.0.5".parse().unwrap(), &t);
        assert_eq!(
            env,
            [
                "MY_DB_NAME=/web/my-db",
                "MY_DB_PORT=udp://10.0.0.5:53",
                "MY_DB_PORT_53_UDP=udp://10.0.0.5:53",
                "MY_DB_PORT_53_UDP_ADDR=10.0.0.5",
                "MY_DB_PORT_53_UDP_PORT=53",
                "MY_DB_PORT_53_UDP_PROTO=udp",
                "MY_DB_PORT_5432_TCP=tcp://10.0.0.5:5432",
                "MY_DB_PORT_5432_TCP_ADDR=10.0.0.5",
                "MY_DB_PORT_5432_TCP_PORT=5432",
                "MY_DB_PORT_5432_TCP_PROTO=tcp",
                "MY_DB_ENV_PASS=x",
            ]
        );
    }
}
