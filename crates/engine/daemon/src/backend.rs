//! [`EngineBackend`]: the Docker Engine API ([`strato_api::Backend`]) over
//! the [`Engine`]. Shapes come from [`crate::convert`]; this file holds the
//! behaviour: waits, log following, attach and exec streams, events, images,
//! networks and volumes.
//!
//! Streams follow the json-file log the supervisor writes rather than the
//! container's pipes: attach opens (creating it if needed) the log before
//! the container starts and reads it as it grows, every 20 ms, until the
//! container dies, then drains it once more. An open descriptor keeps
//! reading after `--rm` deleted the file.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::StreamExt;
use serde_json::{json, Value};
use strato_api::types::*;
use strato_api::*;
use strato_supervisor::Phase;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};

use crate::convert;
use crate::copy;
use crate::distribution::{Distribution, Notify};
use crate::engine::{Engine, EngineError, EngineEvent, NetworkMode, Record};
use crate::hostinfo;
use crate::streams::{channel_stream, BodyReader, BodyWriter, LogTail, Want};
use crate::time;
use crate::volumes::{VolumeMeta, Volumes};

/// How often attach and `logs -f` look for new log lines.
const POLL: Duration = Duration::from_millis(20);
/// Events kept for `docker events --since`.
const EVENT_HISTORY: usize = 1024;

fn api_err(e: EngineError) -> ApiError {
    match e {
        EngineError::NoSuchContainer(x) => ApiError::no_such_container(&x),
        EngineError::NoSuchImage(x) => ApiError::no_such_image(&familiar_ref(&x)),
        EngineError::Conflict(m) => ApiError::conflict(m),
        EngineError::Invalid(m) => ApiError::bad_parameter(m),
        EngineError::NotModified(_) => ApiError::not_modified(),
        EngineError::Internal(m) => ApiError::internal(m),
    }
}

fn image_err(name: &str, e: strato_image::Error) -> ApiError {
    use strato_image::Error as E;
    match e {
        E::NotFound(_) => ApiError::no_such_image(name),
        E::InvalidReference { .. } | E::Ambiguous(_) => ApiError::bad_parameter(e.to_string()),
        E::InUse { .. } | E::MultipleTags { .. } | E::ContainerExists { .. } => {
            ApiError::conflict(format!("conflict: unable to remove {name}: {e}"))
        }
        other => ApiError::internal(other.to_string()),
    }
}

fn join_err(e: tokio::task::JoinError) -> ApiError {
    ApiError::internal(format!("engine task failed: {e}"))
}

/// `busybox` → `busybox:latest` (Docker's wording in "No such image").
fn familiar_ref(r: &str) -> String {
    let last = r.rsplit('/').next().unwrap_or(r);
    if r.contains('@') || last.contains(':') || r.starts_with("sha256:") {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// The IPv6 half of a network create: the pool's subnet, gateway, range
/// and auxiliary addresses (all optional; without a subnet one is carved
/// from the host's unique local pool).
fn ipv6_spec(pool: Option<&IpamPool>) -> Result<strato_network::Ipv6Spec, ApiError> {
    let Some(p) = pool else {
        return Ok(Default::default());
    };
    let net = |s: &str| -> Result<Option<strato_network::Ipv6Net>, ApiError> {
        match s {
            "" => Ok(None),
            s => s
                .parse()
                .map(Some)
                .map_err(|e: strato_network::Error| ApiError::bad_parameter(e.to_string())),
        }
    };
    let addr = |what: &str, s: &str| -> Result<std::net::Ipv6Addr, ApiError> {
        s.parse().map_err(|_| {
            ApiError::bad_parameter(format!("invalid {what} {s:?}: give an IPv6 address"))
        })
    };
    let mut aux_addresses = std::collections::BTreeMap::new();
    for (k, v) in p.auxiliary_addresses.clone().unwrap_or_default() {
        aux_addresses.insert(k.clone(), addr(&format!("auxiliary address {k}="), &v)?);
    }
    Ok(strato_network::Ipv6Spec {
        subnet: net(&p.subnet)?,
        gateway: match p.gateway.as_str() {
            "" => None,
            g => Some(addr("gateway", g)?),
        },
        ip_range: net(&p.ip_range)?,
        aux_addresses,
    })
}

/// A stable 64-hex id for a network name.
pub fn network_id(name: &str) -> String {
    strato_image::Digest::of(format!("strato-network:{name}").as_bytes())
        .hex()
        .to_string()
}

/// dockerd's range for `--cpus` (NanoCpus): at least 0.01 of a cpu (the
/// kernel refuses a CFS quota under 1 ms per 100 ms period), at most every
/// online cpu.
fn check_nano_cpus(nano_cpus: i64, ncpu: i64) -> Result<(), ApiError> {
    if nano_cpus != 0 && !(10_000_000..=ncpu * 1_000_000_000).contains(&nano_cpus) {
        return Err(ApiError::bad_parameter(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    Ok(())
}

/// The `reference` filter of `docker images`: `pattern` (shell globs, `*`
/// not crossing `/`, as dockerd's path.Match) against the familiar tag
/// `tag` or its repository alone.
fn reference_matches(pattern: &str, tag: &str) -> bool {
    let repo = match tag.rfind(':') {
        Some(i) if !tag[i..].contains('/') => &tag[..i],
        _ => tag,
    };
    let glob = |name: &str| crate::build::ignore::glob_match(pattern, name, false);
    glob(tag) || glob(repo) || familiar_ref(pattern) == tag
}

/// The `before` and `since` filters of `docker ps`: created before (after)
/// the container named, by name or id, among `all`. A name that is no
/// container matches nothing.
fn created_between(r: &Record, all: &[Record], f: &Filters) -> bool {
    let created = |name: &str| {
        all.iter()
            .find(|o| o.name == name.trim_start_matches('/') || o.id.starts_with(name))
            .map(|o| time::parse_f64(&o.created).unwrap_or(0.0))
    };
    let at = time::parse_f64(&r.created).unwrap_or(0.0);
    f.match_any("before", |v| created(v).is_some_and(|t| at < t))
        && f.match_any("since", |v| created(v).is_some_and(|t| at > t))
}

fn is_running(r: &Record) -> bool {
    r.status
        .as_ref()
        .is_some_and(|s| matches!(s.phase, Phase::Running | Phase::Paused | Phase::Restarting))
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// An exec instance between create and inspect.
#[derive(Debug, Clone)]
struct ExecEntry {
    container: String,
    config: ExecConfig,
    started: bool,
    tty: bool,
    /// Set when the process could not be started (a command that is not
    /// there, or not executable): dockerd then reports exit code 126.
    start_failed: bool,
}

/// The exit code dockerd reports for an exec whose process could not start
/// (whatever the reason: its exec path overrides 127 with 126).
const EXEC_START_FAILED: i64 = 126;

/// Container events as Docker shows them, with a history for `--since`.
struct EventLog {
    history: Mutex<VecDeque<EventMessage>>,
    tx: broadcast::Sender<EventMessage>,
}

impl EventLog {
    fn emit(&self, kind: &str, action: &str, id: &str, attrs: &[(&str, &str)]) {
        let now = time::now_f64();
        let mut attributes = StringMap::new();
        for (k, v) in attrs {
            attributes.insert(k.to_string(), v.to_string());
        }
        self.push(EventMessage {
            kind: kind.into(),
            action: action.into(),
            actor: EventActor {
                id: id.into(),
                attributes,
            },
            scope: "local".into(),
            time: now as i64,
            time_nano: (now * 1e9) as i64,
            ..Default::default()
        });
    }

    fn push(&self, ev: EventMessage) {
        let mut h = self.history.lock().expect("event history lock");
        if h.len() == EVENT_HISTORY {
            h.pop_front();
        }
        h.push_back(ev.clone());
        // Sent under the lock: a subscriber that copied the history sees
        // every later event exactly once.
        let _ = self.tx.send(ev);
    }
}

/// The health of a container with a health check, and which monitor
/// (generation) owns it: a new start begins a new generation.
struct HealthEntry {
    gen: u64,
    state: crate::health::HealthState,
}

/// The most `docker import <url>` downloads (a rootfs tar): far above any
/// real root filesystem, low enough that a hostile server cannot fill the
/// disk holding the data root.
const IMPORT_URL_LIMIT: u64 = 32 << 30;

/// The Engine API backend of strato's engine.
pub struct EngineBackend {
    engine: Arc<Engine>,
    volumes: Volumes,
    execs: Mutex<BTreeMap<String, ExecEntry>>,
    health: Mutex<HashMap<String, HealthEntry>>,
    events: Arc<EventLog>,
    id: String,
    /// Pull, push and login; an error if the registry client could not be set up.
    distribution: Result<Arc<Distribution>, String>,
    /// Itself, for work that outlives a request (builds).
    me: std::sync::Weak<EngineBackend>,
}

impl std::fmt::Debug for EngineBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBackend")
            .field("engine", &self.engine)
            .finish()
    }
}

impl EngineBackend {
    /// Wraps an opened engine; starts recording its events. Call inside a
    /// tokio runtime.
    pub fn new(engine: Arc<Engine>) -> Arc<EngineBackend> {
        let data_root = engine.config().data_root.clone();
        let volumes = Volumes::new(data_root.join("volumes"));
        // Build directories of builds a stopped daemon left unfinished.
        let _ = fs::remove_dir_all(data_root.join("builds"));
        let _ = fs::create_dir_all(volumes.dir());
        let (tx, _) = broadcast::channel(1024);
        let events = Arc::new(EventLog {
            history: Mutex::new(VecDeque::new()),
            tx,
        });
        let distribution = Distribution::new(
            &data_root,
            engine.images().clone(),
            engine.config().insecure_registries.clone(),
        )
        .map(Arc::new);
        if let Err(e) = &distribution {
            tracing::error!(error = %e, "registry client unavailable: pull and push will fail");
        }
        let backend = Arc::new_cyclic(|me| EngineBackend {
            me: me.clone(),
            distribution,
            id: engine_id(&data_root),
            engine: engine.clone(),
            volumes,
            execs: Mutex::new(BTreeMap::new()),
            health: Mutex::new(HashMap::new()),
            events: events.clone(),
        });
        // Health checks of containers that run already (a restarted daemon).
        for r in engine.records().iter().filter(|r| is_running(r)) {
            backend.start_health(&r.id);
        }
        let mut rx = engine.subscribe();
        let weak = Arc::downgrade(&engine);
        let me = Arc::downgrade(&backend);
        drop(engine);
        tokio::spawn(async move {
            let mut names: HashMap<String, (String, String)> = HashMap::new();
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(engine) = weak.upgrade() else { return };
                if let Ok(r) = engine.record(&ev.id) {
                    names.insert(ev.id.clone(), (r.name.clone(), r.image_ref.clone()));
                }
                let (name, image) = names.get(&ev.id).cloned().unwrap_or_default();
                if ev.action == "destroy" {
                    names.remove(&ev.id);
                }
                events.push(container_event(&ev, &name, &image));
                // Every start (API, restart policy) begins the health check anew.
                if let Some(b) = me.upgrade() {
                    match ev.action.as_str() {
                        "start" => b.start_health(&ev.id),
                        "destroy" => {
                            b.health.lock().expect("health lock").remove(&ev.id);
                        }
                        _ => {}
                    }
                }
            }
        });
        backend
    }

    /// A container's health check: its own over its image's.
    fn health_config(r: &Record) -> Option<HealthConfig> {
        let own = r.raw.get("Healthcheck").and_then(crate::health::from_json);
        let image = r
            .image_defaults
            .healthcheck
            .as_ref()
            .and_then(crate::health::from_json);
        crate::health::merged(own.as_ref(), image.as_ref())
    }

    /// Its `State.Health`, if it has a health check.
    fn health_of(&self, r: &Record) -> Option<Health> {
        Self::health_config(r)
            .as_ref()
            .and_then(crate::health::probe)?;
        let h = self.health.lock().expect("health lock");
        Some(
            h.get(&r.id)
                .map(|e| e.state.api())
                .unwrap_or_else(|| Health {
                    // Never started: dockerd shows "starting" too.
                    status: crate::health::STARTING.into(),
                    ..Default::default()
                }),
        )
    }

    /// Starts the health monitor of a container that just started: its
    /// health is `starting` again, and earlier monitors stop.
    fn start_health(self: &Arc<Self>, id: &str) {
        let Ok(r) = self.engine.record(id) else {
            return;
        };
        let Some(cfg) = Self::health_config(&r) else {
            return;
        };
        let Some(probe) = crate::health::probe(&cfg) else {
            return;
        };
        let start_interval_set = cfg.start_interval > 0;
        let gen = {
            let mut h = self.health.lock().expect("health lock");
            let e = h.entry(r.id.clone()).or_insert(HealthEntry {
                gen: 0,
                state: Default::default(),
            });
            e.gen += 1;
            e.state = Default::default();
            e.gen
        };
        let weak = Arc::downgrade(self);
        let id = r.id.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            loop {
                let in_start = started.elapsed() < probe.start_period;
                tokio::time::sleep(probe.next_wait(in_start, start_interval_set)).await;
                let Some(b) = weak.upgrade() else { return };
                let current = |b: &EngineBackend| {
                    b.health
                        .lock()
                        .expect("health lock")
                        .get(&id)
                        .map(|e| e.gen)
                        == Some(gen)
                };
                if !current(&b) {
                    return;
                }
                let Ok(r) = b.engine.record(&id) else { return };
                match r.status.as_ref().map(|s| s.phase) {
                    Some(Phase::Running) => {}
                    Some(Phase::Paused) => continue,
                    // Stopped: the next start begins a new monitor.
                    _ => return,
                }
                let in_start = started.elapsed() < probe.start_period;
                let result = b.run_probe(&r, &probe).await;
                let changed = {
                    let mut h = b.health.lock().expect("health lock");
                    match h.get_mut(&id).filter(|e| e.gen == gen) {
                        Some(e) => e
                            .state
                            .record(result, probe.retries, in_start)
                            .then_some(e.state.status),
                        None => return,
                    }
                };
                if let Some(status) = changed {
                    b.emit(
                        "container",
                        &format!("health_status: {status}"),
                        &id,
                        &[("name", &r.name), ("image", &r.image_ref)],
                    );
                }
            }
        });
    }

    /// Runs one probe as an exec in the container, within its timeout.
    async fn run_probe(&self, r: &Record, p: &crate::health::Probe) -> crate::health::ProbeResult {
        let start = strato_container::state::now_rfc3339();
        let pid = std::sync::atomic::AtomicI32::new(0);
        let (exit_code, output) =
            match tokio::time::timeout(p.timeout, self.probe_exec(r, &p.cmd, &pid)).await {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => (-1, e),
                Err(_) => {
                    let pid = pid.load(std::sync::atomic::Ordering::SeqCst);
                    if pid > 0 {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    (
                        -1,
                        format!("Health check exceeded timeout ({:?})", p.timeout),
                    )
                }
            };
        crate::health::ProbeResult {
            start,
            end: strato_container::state::now_rfc3339(),
            exit_code,
            output,
        }
    }

    /// Execs `cmd` in the container; its exit code and output (the first
    /// [`crate::health::MAX_OUTPUT`] bytes of stdout and stderr).
    async fn probe_exec(
        &self,
        r: &Record,
        cmd: &[String],
        pid_slot: &std::sync::atomic::AtomicI32,
    ) -> Result<(i64, String), String> {
        let bundle = self.engine.bundle_path(&r.id);
        let spec: Value = fs::read(bundle.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| format!("container {} is not running", r.id))?;
        let cfg = ExecConfig {
            cmd: cmd.to_vec(),
            ..Default::default()
        };
        let process = exec_process(&spec["process"], &cfg, &self.engine.root_path(&r.id))
            .map_err(|e| e.message)?;
        let exec_id = crate::ids::new_id();
        let (pid, _tty, mut fds) = self
            .engine
            .exec(&r.id, &exec_id, process, false)
            .await
            .map_err(|e| e.to_string())?;
        pid_slot.store(pid, std::sync::atomic::Ordering::SeqCst);
        if fds.len() != 3 {
            return Err("exec: expected three pipes from the supervisor".into());
        }
        let err_fd = fds.pop().expect("three fds");
        let out_fd = fds.pop().expect("three fds");
        drop(fds);
        async fn read_capped(fd: OwnedFd) -> Vec<u8> {
            let mut out = Vec::new();
            let Ok(mut r) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
                return out;
            };
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = crate::health::MAX_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
            out
        }
        let (mut out, err) = tokio::join!(read_capped(out_fd), read_capped(err_fd));
        out.extend(err);
        out.truncate(crate::health::MAX_OUTPUT);
        let code = loop {
            match self.engine.exec_state(&exec_id).await {
                Ok(s) if s.running => tokio::time::sleep(POLL).await,
                Ok(s) => break s.exit_code.unwrap_or(-1),
                Err(e) => return Err(e.to_string()),
            }
        };
        Ok((i64::from(code), String::from_utf8_lossy(&out).into_owned()))
    }

    /// Bytes in a container's writable layer (0 when unreadable).
    async fn layer_size(&self, id: &str) -> u64 {
        let images = self.engine.images().clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || images.container_layer_size(&id).unwrap_or(0))
            .await
            .unwrap_or(0)
    }

    /// `SizeRw` and `SizeRootFs` of container `id` of image `image`: its
    /// writable layer, and that with the image's layers.
    async fn sizes(&self, id: &str, image: &str) -> (i64, i64) {
        let rw = self.layer_size(id).await as i64;
        let images = self.engine.images().clone();
        let image = image.to_string();
        let base = tokio::task::spawn_blocking(move || images.inspect(&image).map(|d| d.size))
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or(0) as i64;
        (rw, rw + base)
    }

    fn rec(&self, id: &str) -> Result<Record, ApiError> {
        self.engine.record(id).map_err(|e| match e {
            EngineError::NoSuchContainer(_) => ApiError::no_such_container(id),
            other => api_err(other),
        })
    }

    pub(crate) fn emit(&self, kind: &str, action: &str, id: &str, attrs: &[(&str, &str)]) {
        self.events.emit(kind, action, id, attrs);
    }

    /// The engine under this backend.
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Image events of pulls and pushes, which finish in their own tasks.
    fn image_notifier(&self) -> Notify {
        let events = self.events.clone();
        Arc::new(move |action: &str, id: &str, name: &str| {
            events.emit("image", action, id, &[("name", name)]);
        })
    }

    pub(crate) fn distribution(&self) -> Result<&Arc<Distribution>, ApiError> {
        self.distribution
            .as_ref()
            .map_err(|e| ApiError::internal(format!("registry client unavailable: {e}")))
    }

    fn volume_in_use(&self, name: &str) -> Vec<String> {
        let data = self.volumes.data(name).display().to_string();
        self.engine
            .records()
            .into_iter()
            .filter(|r| r.config.mounts.iter().any(|m| m.source == data))
            .map(|r| r.id)
            .collect()
    }

    fn volume_api(&self, name: &str, meta: &VolumeMeta, usage: bool) -> Volume {
        Volume {
            name: name.into(),
            driver: "local".into(),
            mountpoint: self.volumes.data(name).display().to_string(),
            created_at: meta.created_at.clone(),
            status: None,
            labels: meta.labels.clone(),
            scope: "local".into(),
            options: meta.options.clone(),
            usage_data: usage.then(|| VolumeUsage {
                size: self.volumes.size(name) as i64,
                ref_count: self.volume_in_use(name).len() as i64,
            }),
        }
    }

    async fn network_api(&self, n: &strato_network::Network) -> NetworkResource {
        let mut containers = BTreeMap::new();
        for ep in self
            .engine
            .network()
            .endpoints(&n.name)
            .await
            .unwrap_or_default()
        {
            let name = self
                .engine
                .record(&ep.container_id)
                .map(|r| r.name)
                .unwrap_or_default();
            containers.insert(
                ep.container_id.clone(),
                NetworkContainer {
                    name,
                    endpoint_id: strato_image::Digest::of(
                        format!("{}/{}", ep.network, ep.container_id).as_bytes(),
                    )
                    .hex()
                    .to_string(),
                    mac_address: ep.mac.clone(),
                    ipv4_address: format!("{}/{}", ep.ip, ep.prefix),
                    ipv6_address: ep
                        .ipv6
                        .map(|v| format!("{}/{}", v.ip, v.prefix))
                        .unwrap_or_default(),
                },
            );
        }
        let mut options: StringMap = n.meta.options.clone().into_iter().collect();
        options.insert("com.docker.network.bridge.name".into(), n.bridge.clone());
        NetworkResource {
            name: n.name.clone(),
            id: network_id(&n.name),
            created: if n.meta.created.is_empty() {
                time::ZERO_TIME.into()
            } else {
                n.meta.created.clone()
            },
            scope: "local".into(),
            driver: "bridge".into(),
            enable_ipv4: true,
            enable_ipv6: n.ipv6.is_some(),
            ipam: Ipam {
                driver: "default".into(),
                options: None,
                config: std::iter::once(IpamPool {
                    subnet: n.subnet.to_string(),
                    gateway: n.gateway.to_string(),
                    ip_range: n.meta.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                    auxiliary_addresses: (!n.meta.aux_addresses.is_empty()).then(|| {
                        n.meta
                            .aux_addresses
                            .iter()
                            .map(|(k, v)| (k.clone(), v.to_string()))
                            .collect()
                    }),
                })
                .chain(n.ipv6.as_ref().map(|v6| IpamPool {
                    subnet: v6.subnet.to_string(),
                    gateway: v6.gateway.to_string(),
                    ip_range: v6.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                    auxiliary_addresses: (!v6.aux_addresses.is_empty()).then(|| {
                        v6.aux_addresses
                            .iter()
                            .map(|(k, v)| (k.clone(), v.to_string()))
                            .collect()
                    }),
                }))
                .collect(),
            },
            internal: n.internal,
            attachable: false,
            ingress: false,
            config_from: ConfigReference::default(),
            config_only: false,
            containers,
            options,
            labels: n.meta.labels.clone().into_iter().collect(),
        }
    }

    async fn all_networks(&self) -> Vec<NetworkResource> {
        let mut out = Vec::new();
        for n in self.engine.network().list().await {
            out.push(self.network_api(&n).await);
        }
        for (name, driver) in [("host", "host"), ("none", "null")] {
            out.push(NetworkResource {
                name: name.into(),
                id: network_id(name),
                created: time::ZERO_TIME.into(),
                scope: "local".into(),
                driver: driver.into(),
                enable_ipv4: true,
                ipam: Ipam {
                    driver: "default".into(),
                    ..Default::default()
                },
                ..Default::default()
            });
        }
        out
    }

    async fn find_network(&self, id: &str) -> Result<NetworkResource, ApiError> {
        let all = self.all_networks().await;
        if let Some(n) = all.iter().find(|n| n.name == id || n.id == id) {
            return Ok(n.clone());
        }
        let matches: Vec<&NetworkResource> = all
            .iter()
            .filter(|n| !id.is_empty() && n.id.starts_with(id))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ApiError::no_such_network(id)),
            _ => Err(ApiError::bad_parameter(format!(
                "network {id} is ambiguous ({} matches): give more of the id",
                matches.len()
            ))),
        }
    }

    fn image_summaries(&self) -> Result<Vec<ImageSummary>, ApiError> {
        let list = self
            .engine
            .images()
            .list()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let records = self.engine.records();
        Ok(list
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id.to_string(),
                parent_id: i.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                repo_tags: i.repo_tags.clone(),
                repo_digests: i.repo_digests.clone(),
                created: i.created_unix,
                size: i.size as i64,
                shared_size: -1,
                virtual_size: i.size as i64,
                labels: StringMap::new(),
                containers: records
                    .iter()
                    .filter(|r| r.image_id == i.id.as_str())
                    .count() as i64,
            })
            .collect())
    }
}

/// Stats sample of a container (zeroes when it does not run).
fn sample(engine: &Engine, r: &Record, pre: Option<&StatsResponse>) -> StatsResponse {
    let now = time::now_f64();
    let mut s = StatsResponse {
        read: time::format(now as i64, ((now.fract()) * 1e9) as u32),
        preread: time::ZERO_TIME.into(),
        name: format!("/{}", r.name),
        id: r.id.clone(),
        ..Default::default()
    };
    if let Some(p) = pre {
        s.preread = p.read.clone();
        s.precpu_stats = p.cpu_stats.clone();
    }
    if !is_running(r) {
        return s;
    }
    let Ok(st) = engine.stats(&r.id) else {
        return s;
    };
    s.cpu_stats = CpuStats {
        cpu_usage: CpuUsage {
            total_usage: st.cpu.usage.total,
            percpu_usage: (!st.cpu.usage.percpu.is_empty()).then(|| st.cpu.usage.percpu.clone()),
            usage_in_kernelmode: st.cpu.usage.kernel,
            usage_in_usermode: st.cpu.usage.user,
        },
        system_cpu_usage: hostinfo::system_cpu_ns(),
        online_cpus: hostinfo::ncpu() as u32,
        throttling_data: ThrottlingData {
            periods: st.cpu.throttling.periods,
            throttled_periods: st.cpu.throttling.throttled_periods,
            throttled_time: st.cpu.throttling.throttled_time,
        },
    };
    let mem_total = hostinfo::mem_total() as u64;
    let limit = st.memory.usage.limit;
    s.memory_stats = MemoryStats {
        usage: st.memory.usage.usage,
        max_usage: st.memory.usage.max,
        stats: st.memory.stats.clone(),
        failcnt: st.memory.usage.failcnt,
        limit: if limit == 0 || limit > mem_total {
            mem_total
        } else {
            limit
        },
    };
    s.pids_stats = PidsStats {
        current: st.pids.current,
        limit: (st.pids.limit > 0 && st.pids.limit != u64::MAX).then_some(st.pids.limit),
    };
    s
}

fn engine_id(data_root: &Path) -> String {
    let path = data_root.join("engine-id");
    if let Ok(s) = fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return s;
        }
    }
    let id = crate::ids::new_id();
    let _ = fs::write(&path, &id);
    id
}

fn container_event(ev: &EngineEvent, name: &str, image: &str) -> EventMessage {
    let (secs, nanos) = time::parse_rfc3339(&ev.time).unwrap_or((time::now_f64() as i64, 0));
    let mut attributes = StringMap::new();
    attributes.insert("name".into(), name.into());
    attributes.insert("image".into(), image.into());
    if let Some(code) = ev.exit_code {
        attributes.insert("exitCode".into(), code.to_string());
    }
    EventMessage {
        kind: "container".into(),
        action: ev.action.clone(),
        actor: EventActor {
            id: ev.id.clone(),
            attributes,
        },
        scope: "local".into(),
        time: secs,
        time_nano: secs * 1_000_000_000 + i64::from(nanos),
        status: Some(ev.action.clone()),
        id: Some(ev.id.clone()),
        from: Some(image.into()),
    }
}

fn event_matches(ev: &EventMessage, f: &Filters) -> bool {
    let name = ev.actor.attributes.get("name").cloned().unwrap_or_default();
    let image = ev
        .actor
        .attributes
        .get("image")
        .cloned()
        .unwrap_or_default();
    f.match_any("type", |v| v == ev.kind)
        && f.match_any("event", |v| {
            v == ev.action || ev.action.starts_with(&format!("{v}:"))
        })
        && f.match_any("action", |v| v == ev.action)
        && f.match_any("container", |v| {
            ev.kind == "container" && (ev.actor.id.starts_with(v) || name == v)
        })
        && f.match_any("image", |v| {
            image == v || familiar_ref(&image) == familiar_ref(v)
        })
        && f.match_labels("label", &ev.actor.attributes)
}

/// Reads a pipe or pty until end of file, sending `kind` chunks.
async fn pump<R>(mut r: R, kind: StreamKind, tx: mpsc::Sender<Result<OutputChunk, ApiError>>)
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let chunk = OutputChunk {
                    kind,
                    data: Bytes::copy_from_slice(&buf[..n]),
                };
                if tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Waits until the container `id` runs, then copies `input` into its stdin
/// and closes it at end of input.
async fn stdin_bridge(
    engine: Arc<Engine>,
    id: String,
    mut input: tokio::io::DuplexStream,
    mut rx: broadcast::Receiver<EngineEvent>,
) {
    loop {
        let running = engine
            .record(&id)
            .ok()
            .and_then(|r| r.status)
            .is_some_and(|s| matches!(s.phase, Phase::Running | Phase::Paused));
        if running {
            break;
        }
        match rx.recv().await {
            Ok(ev) if ev.id == id && ev.action == "start" => break,
            Ok(ev) if ev.id == id && ev.action == "destroy" => return,
            Err(broadcast::error::RecvError::Closed) => return,
            _ => {}
        }
    }
    let fd = match engine.stdin(&id).await {
        Ok(fd) => fd,
        Err(e) => {
            tracing::debug!(id, error = %e, "no stdin to attach");
            return;
        }
    };
    let mut out = tokio::fs::File::from_std(File::from(fd));
    let _ = tokio::io::copy(&mut input, &mut out).await;
    let _ = out.flush().await;
    // Dropping the descriptor closes the container's stdin.
}

/// Follows a log from `tail` until the container `id` dies (or is
/// removed), then drains it once more.
async fn follow_log(
    mut tail: LogTail,
    id: String,
    want: Want,
    until: Option<f64>,
    mut rx: broadcast::Receiver<EngineEvent>,
    tx: mpsc::Sender<Result<OutputChunk, ApiError>>,
) {
    let send_new = |tail: &mut LogTail| -> Vec<OutputChunk> {
        tail.read_new()
            .unwrap_or_default()
            .iter()
            .filter(|e| until.is_none_or(|u| time::parse_f64(&e.time).is_none_or(|t| t < u)))
            .filter_map(|e| want.chunk(e))
            .collect()
    };
    loop {
        for c in send_new(&mut tail) {
            if tx.send(Ok(c)).await.is_err() {
                return;
            }
        }
        if until.is_some_and(|u| time::now_f64() >= u) {
            return;
        }
        let done = tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => ev.id == id && (ev.action == "die" || ev.action == "destroy"),
                Err(broadcast::error::RecvError::Lagged(_)) => false,
                Err(broadcast::error::RecvError::Closed) => true,
            },
            _ = tokio::time::sleep(POLL) => false,
        };
        if done {
            for c in send_new(&mut tail) {
                if tx.send(Ok(c)).await.is_err() {
                    return;
                }
            }
            return;
        }
    }
}

/// A free host port for a published port given without one.
fn free_port(m: &strato_network::PortMapping) -> Result<u16, ApiError> {
    let ip = m
        .host_ip
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let port = match m.protocol {
        strato_network::Protocol::Tcp => std::net::TcpListener::bind((ip, 0))?.local_addr()?,
        strato_network::Protocol::Udp => std::net::UdpSocket::bind((ip, 0))?.local_addr()?,
    };
    Ok(port.port())
}

fn top_row(pid: i32, btime: i64, ticks: u64) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    let comm = stat.get(stat.find('(')? + 1..close)?.to_string();
    let f: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // f[0] is field 3 (state).
    let ppid = f.get(1)?.to_string();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let start: u64 = f.get(19)?.parse().ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        String::from_utf8_lossy(&cmdline)
            .trim_end_matches('\0')
            .replace('\0', " ")
    };
    let started = btime + (start / ticks) as i64;
    let stime_s = time::format(started, 0);
    let cpu = (utime + stime) / ticks;
    Some(vec![
        hostinfo::user_name(uid),
        pid.to_string(),
        ppid,
        "0".into(),
        stime_s.get(11..16).unwrap_or("").to_string(),
        "?".into(),
        format!("{:02}:{:02}:{:02}", cpu / 3600, cpu / 60 % 60, cpu % 60),
        cmd,
    ])
}

/// The OCI process of an exec: the container's process with the exec's
/// command, terminal, environment, directory, user and (privileged) every
/// capability.
fn exec_process(spec_process: &Value, cfg: &ExecConfig, rootfs: &Path) -> Result<Value, ApiError> {
    let mut p = spec_process.clone();
    p["args"] = json!(cfg.cmd);
    p["terminal"] = json!(cfg.tty);
    let mut env: Vec<String> = p["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for e in cfg.env.iter().flatten() {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p["env"] = json!(env);
    if !cfg.working_dir.is_empty() {
        p["cwd"] = json!(cfg.working_dir);
    }
    if !cfg.user.is_empty() {
        let u = crate::users::resolve(rootfs, &cfg.user, &[])
            .map_err(|e| ApiError::bad_parameter(format!("exec user {:?}: {e}", cfg.user)))?;
        p["user"] = json!({"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids});
    }
    // `exec --privileged`: every capability the daemon holds, whatever the
    // container's (as dockerd).
    if cfg.privileged {
        let all = crate::spec::all_caps();
        p["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
    }
    if let (true, Some([h, w])) = (cfg.tty, cfg.console_size) {
        p["consoleSize"] = json!({"height": h, "width": w});
    } else if let Some(o) = p.as_object_mut() {
        o.remove("consoleSize");
    }
    Ok(p)
}

#[async_trait]
impl Backend for EngineBackend {
    // ------------------------------------------------------------ system

    async fn version(&self) -> Result<SystemVersion, ApiError> {
        let version = env!("CARGO_PKG_VERSION").to_string();
        let kernel = hostinfo::kernel_version();
        let arch = strato_api::server::go_arch().to_string();
        let mut details = StringMap::new();
        details.insert("ApiVersion".into(), API_VERSION.into());
        details.insert("MinAPIVersion".into(), MIN_API_VERSION.into());
        details.insert("Arch".into(), arch.clone());
        details.insert("Os".into(), "linux".into());
        details.insert("KernelVersion".into(), kernel.clone());
        details.insert("GoVersion".into(), "n/a".into());
        details.insert("GitCommit".into(), String::new());
        details.insert("BuildTime".into(), String::new());
        details.insert("Experimental".into(), "false".into());
        Ok(SystemVersion {
            platform: PlatformName {
                name: "strato".into(),
            },
            components: vec![ComponentVersion {
                name: "Engine".into(),
                version: version.clone(),
                details: Some(details),
            }],
            version,
            git_commit: String::new(),
            go_version: "n/a".into(),
            os: "linux".into(),
            arch,
            kernel_version: kernel,
            experimental: false,
            build_time: String::new(),
            ..Default::default()
        })
    }

    async fn info(&self) -> Result<SystemInfo, ApiError> {
        let records = self.engine.records();
        let count = |p: &[Phase]| {
            records
                .iter()
                .filter(|r| r.status.as_ref().is_some_and(|s| p.contains(&s.phase)))
                .count() as i64
        };
        let running = count(&[Phase::Running, Phase::Restarting]);
        let paused = count(&[Phase::Paused]);
        let images = self.engine.images().list().map(|l| l.len()).unwrap_or(0) as i64;
        let (os, os_version) = hostinfo::os_release();
        let cfg = self.engine.config();
        let mut runtimes = BTreeMap::new();
        // The built-in runtime under dockerd's default name and its own
        // (see container_create).
        for name in ["strato", "runc"] {
            runtimes.insert(
                name.to_string(),
                RuntimeInfo {
                    path: cfg.strato_bin.display().to_string(),
                    runtime_args: None,
                },
            );
        }
        let now = time::now_f64();
        Ok(SystemInfo {
            id: self.id.clone(),
            containers: records.len() as i64,
            containers_running: running,
            containers_paused: paused,
            containers_stopped: records.len() as i64 - running - paused,
            images,
            driver: "overlayfs".into(),
            driver_status: vec![["driver-type".into(), "strato overlay snapshots".into()]],
            n_fd: hostinfo::open_fds(),
            system_time: time::format(now as i64, (now.fract() * 1e9) as u32),
            cgroup_version: hostinfo::cgroup_version().into(),
            cgroup_driver: "cgroupfs".into(),
            kernel_version: hostinfo::kernel_version(),
            operating_system: os,
            os_version,
            ncpu: hostinfo::ncpu(),
            mem_total: hostinfo::mem_total(),
            docker_root_dir: cfg.data_root.display().to_string(),
            name: hostinfo::hostname(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            runtimes,
            default_runtime: convert::DEFAULT_RUNTIME.into(),
            n_events_listener: self.events.tx.receiver_count() as i64,
            ..SystemInfo::default()
        })
    }

    async fn events(&self, opts: EventsOptions) -> Result<EventStream, ApiError> {
        let (past, mut rx) = {
            let h = self.events.history.lock().expect("event history lock");
            let past: Vec<EventMessage> = match opts.since {
                Some(since) => h
                    .iter()
                    .filter(|e| e.time_nano as f64 / 1e9 >= since)
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            (past, self.events.tx.subscribe())
        };
        let (tx, out) = mpsc::channel(64);
        let f = opts.filters.clone();
        let until = opts.until;
        tokio::spawn(async move {
            let before_until =
                |e: &EventMessage| until.is_none_or(|u| (e.time_nano as f64 / 1e9) <= u);
            for e in past {
                if before_until(&e) && event_matches(&e, &f) && tx.send(e).await.is_err() {
                    return;
                }
            }
            loop {
                let wait = match until {
                    Some(u) => Duration::from_secs_f64((u - time::now_f64()).max(0.0)),
                    None => Duration::from_secs(3600 * 24 * 365),
                };
                let ev = tokio::select! {
                    ev = rx.recv() => ev,
                    _ = tokio::time::sleep(wait) => return,
                    _ = tx.closed() => return,
                };
                match ev {
                    Ok(e) => {
                        if !before_until(&e) {
                            return;
                        }
                        if event_matches(&e, &f) && tx.send(e).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(channel_stream(out))
    }

    async fn system_df(&self) -> Result<DiskUsage, ApiError> {
        let images = self.image_summaries()?;
        let now = time::now_f64();
        let net = network_id("bridge");
        let containers = self
            .engine
            .records()
            .iter()
            .map(|r| convert::summary(r, now, &net, self.volumes.dir()))
            .collect();
        let volumes = self
            .volumes
            .list()
            .iter()
            .map(|(n, m)| self.volume_api(n, m, true))
            .collect();
        Ok(DiskUsage {
            layers_size: images.iter().map(|i| i.size).sum(),
            images,
            containers,
            volumes,
            build_cache: Vec::new(),
        })
    }

    async fn auth(&self, auth: AuthConfig) -> Result<AuthResponse, ApiError> {
        self.distribution()?.login(auth).await
    }

    // ------------------------------------------------------------ containers

    async fn container_create(
        &self,
        name: Option<String>,
        _platform: Option<String>,
        config: ContainerCreateConfig,
    ) -> Result<CreateResponse, ApiError> {
        if let Some(n) = &name {
            if let Some(other) = self.engine.records().into_iter().find(|r| &r.name == n) {
                return Err(ApiError::conflict(format!(
                    "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
        }
        // One runtime: strato's own, named runc as dockerd's default (it is
        // a runc work-alike) and strato; others are refused with dockerd's wording rather
        // than silently run by ours.
        let runtime = config.host_config.runtime.as_str();
        if !matches!(runtime, "" | "strato" | "runc") {
            return Err(ApiError::bad_parameter(format!(
                "unknown or invalid runtime name: {runtime}: this engine has runc (strato's built-in runtime, also named strato)"
            )));
        }
        // No per-container size quota on the overlay snapshots (dockerd's
        // overlay2 has one only over xfs with pquota), and no device
        // drivers (`--gpus`): refused, not silently ignored.
        if config
            .host_config
            .storage_opt
            .as_ref()
            .is_some_and(|o| !o.is_empty())
        {
            return Err(ApiError::bad_parameter(
                "--storage-opt is not supported: this engine's overlay snapshots have no per-container size quota; leave the option out",
            ));
        }
        if config
            .host_config
            .extra
            .get("DeviceRequests")
            .and_then(|v| v.as_array())
            .is_some_and(|a| !a.is_empty())
        {
            return Err(ApiError::bad_parameter(
                "could not select a device driver for the container's device requests (--gpus): this engine has none; give device nodes with --device instead",
            ));
        }
        // Logs are always kept as json-file by the supervisor; other drivers
        // (syslog, journald, ...) are refused with dockerd's wording.
        let driver = config.host_config.log_config.kind.as_str();
        if !matches!(driver, "" | "json-file" | "local" | "none") {
            return Err(ApiError::bad_parameter(format!(
                "logger: no log driver named '{driver}' is registered"
            )));
        }
        // The image first: a missing one is the 404 that makes the CLI pull.
        let image = config.config.image.clone();
        // With -P, the image's exposed ports too (read only then).
        let publish_all = config.host_config.publish_all_ports;
        let image_exposed: Vec<String> = {
            let images = self.engine.images().clone();
            let i = image.clone();
            tokio::task::spawn_blocking(move || {
                if !publish_all {
                    return images.resolve(&i).map(|_| Vec::new());
                }
                images.inspect(&i).map(|d| {
                    d.config
                        .config()
                        .as_ref()
                        .and_then(|c| c.exposed_ports().clone())
                        .unwrap_or_default()
                })
            })
            .await
            .map_err(join_err)?
            .map_err(|e| image_err(&familiar_ref(&image), e))?
        };
        if config.host_config.nano_cpus != 0 {
            // Only then: counting CPUs reads the cgroup's quota files.
            check_nano_cpus(config.host_config.nano_cpus, crate::hostinfo::ncpu())?;
        }
        let (mut req, vols) = convert::create_request(name, &config, self.volumes.dir())?;
        // --volumes-from: the binds and volumes of other containers, at the
        // same places, unless this one mounts something there itself.
        for from in config.host_config.volumes_from.iter().flatten() {
            let (source, read_only) = convert::volumes_from(from)?;
            let src = self.engine.record(source).map_err(|_| {
                ApiError::bad_parameter(format!(
                    "No such container: {source}: --volumes-from must name an existing container"
                ))
            })?;
            for m in src.config.mounts.iter().filter(|m| m.kind != "tmpfs") {
                if req.config.mounts.iter().any(|x| x.target == m.target) {
                    continue;
                }
                let mut m = m.clone();
                if let Some(ro) = read_only {
                    m.read_only = ro;
                }
                req.config.mounts.push(m);
            }
        }
        // Legacy link targets by id (they may be renamed later).
        for l in &mut req.links {
            let t = self.engine.record(&l.target).map_err(|_| {
                ApiError::bad_parameter(format!(
                    "could not get container for {}: no such container",
                    l.target
                ))
            })?;
            l.target = t.id;
        }
        // The container whose network it joins: by id from now on. A 400,
        // not a 404: the docker CLI takes any 404 of create for a missing
        // image and goes to pull it.
        if let Some(NetworkMode::Container(target)) = &mut req.network {
            let t = self.engine.record(target).map_err(|_| {
                ApiError::bad_parameter(format!(
                    "No such container: {target}: --network container:<name|id> must name an existing container"
                ))
            })?;
            *target = t.id;
        }
        // Every network named must exist now, as dockerd checks at create.
        let mut named: Vec<String> = req.extra_networks.iter().map(|n| n.name.clone()).collect();
        if let Some(crate::engine::NetworkMode::Bridge(n)) = &req.network {
            named.push(n.clone());
        }
        for n in named.iter().filter(|n| n.as_str() != "bridge") {
            let found = self.find_network(n).await?;
            if found.name != *n {
                // By id or a prefix of it: the engine works by name.
                if let Some(crate::engine::NetworkMode::Bridge(first)) = &mut req.network {
                    if first == n {
                        *first = found.name.clone();
                    }
                }
                for x in req.extra_networks.iter_mut().filter(|x| &x.name == n) {
                    x.name = found.name.clone();
                }
            }
        }
        // Limits the host's cgroups cannot apply: a weight is dropped with
        // dockerd's warning, a real-time budget refused (as dockerd).
        let mut warnings = Vec::new();
        let res = &mut req.config.resources;
        let wants_rt = res.cpu_rt_runtime != 0 || res.cpu_rt_period != 0;
        let wants_weight =
            res.blkio_weight > 0 || res.blkio_devices.iter().any(|d| d.kind == "weight");
        if wants_rt || wants_weight {
            let features = crate::hostinfo::cgroup_features(Path::new("/sys/fs/cgroup"));
            if wants_rt && !features.cpu_realtime {
                return Err(ApiError::bad_parameter(
                    "Your kernel does not support CPU real-time scheduler (no cpu.rt_runtime_us: the kernel lacks CONFIG_RT_GROUP_SCHED, or cgroup v2): leave out --cpu-rt-runtime and --cpu-rt-period",
                ));
            }
            if wants_weight && !features.blkio_weight {
                warnings.push(
                    "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
                        .to_string(),
                );
                res.blkio_weight = 0;
                res.blkio_devices.retain(|d| d.kind != "weight");
            }
        }
        // -P: every exposed port (the container's and the image's) not
        // published otherwise, on a free host port.
        if publish_all {
            let own = config.config.exposed_ports.iter().flat_map(|m| m.keys());
            for key in own.chain(image_exposed.iter()) {
                for p in convert::exposed_port(key)? {
                    if !req
                        .ports
                        .iter()
                        .any(|q| q.container_port == p.container_port && q.protocol == p.protocol)
                    {
                        req.ports.push(p);
                    }
                }
            }
        }
        for p in req.ports.iter_mut().filter(|p| p.host_port == 0) {
            p.host_port = free_port(p)?;
        }
        // `--mount type=volume,volume-opt=K=V`: the options of a volume
        // made for it (one that exists keeps its own, as in dockerd).
        let mut volume_opts: BTreeMap<String, StringMap> = BTreeMap::new();
        for m in config.host_config.mounts.iter().flatten() {
            let opts = m
                .extra
                .get("VolumeOptions")
                .and_then(|v| v.get("DriverConfig"))
                .and_then(|v| v.get("Options"))
                .and_then(|v| serde_json::from_value::<StringMap>(v.clone()).ok())
                .filter(|o| !o.is_empty());
            if let (Some(opts), false) = (opts, m.source.is_empty()) {
                crate::volumes::check_options(&opts)
                    .map_err(|e| ApiError::bad_parameter(format!("volume {}: {e}", m.source)))?;
                volume_opts.insert(m.source.clone(), opts);
            }
        }
        for v in vols {
            let anonymous = v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit());
            let meta = VolumeMeta {
                created_at: time::format(time::now_f64() as i64, 0),
                anonymous,
                options: volume_opts.remove(&v).unwrap_or_default(),
                ..Default::default()
            };
            let existed = self.volumes.get(&v).is_some();
            self.volumes
                .ensure(&v, meta)
                .map_err(|e| ApiError::internal(format!("create volume {v}: {e}")))?;
            if !existed {
                self.emit("volume", "create", &v, &[("driver", "local")]);
            }
        }
        let id = self.engine.create(req).await.map_err(api_err)?;
        if config.host_config.memory > 0 && config.host_config.memory < 6 * 1024 * 1024 {
            warnings.push("Minimum memory limit allowed is 6MB.".to_string());
        }
        Ok(CreateResponse { id, warnings })
    }

    async fn container_start(&self, id: &str) -> Result<(), ApiError> {
        let r = self.rec(id)?;
        self.engine.start(&r.id).await.map_err(api_err)
    }

    async fn container_stop(&self, id: &str, opts: StopOptions) -> Result<(), ApiError> {
        let r = self.rec(id)?;
        let timeout = opts
            .timeout
            .or_else(|| r.raw.get("StopTimeout").and_then(|v| v.as_i64()))
            .unwrap_or(10);
        let timeout = if timeout < 0 {
            3_153_600_000
        } else {
            timeout as u64
        };
        let signal = match opts
            .signal
            .clone()
            .or_else(|| r.raw["StopSignal"].as_str().map(String::from))
            .filter(|s| !s.is_empty())
        {
            Some(s) => Some(convert::signal_number(&s)?),
            None => None,
        };
        // dockerd's events for a stop: kill (with the signal), die, stop.
        if is_running(&r) {
            let sig = signal.unwrap_or(libc::SIGTERM).to_string();
            let attrs = [
                ("name", r.name.as_str()),
                ("image", r.image_ref.as_str()),
                ("signal", sig.as_str()),
            ];
            self.emit("container", "kill", &r.id, &attrs);
        }
        self.engine
            .stop(&r.id, Some(timeout), signal)
            .await
            .map_err(api_err)?;
        self.emit(
            "container",
            "stop",
            &r.id,
            &[("name", &r.name), ("image", &r.image_ref)],
        );
        Ok(())
    }

    async fn container_kill(&self, id: &str, signal: Option<String>) -> Result<(), ApiError> {
        let r = self.rec(id)?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => convert::signal_number(&s)?,
            None => libc::SIGKILL,
        };
        if !is_running(&r) {
            return Err(ApiError::conflict(format!(
                "Cannot kill container: {id}: container {} is not running",
                r.id
            )));
        }
        let mut down = (sig == libc::SIGKILL).then(|| self.engine.subscribe());
        self.engine.kill(&r.id, sig).await.map_err(api_err)?;
        let name = format!("{sig}");
        self.emit(
            "container",
            "kill",
            &r.id,
            &[
                ("name", &r.name),
                ("image", &r.image_ref),
                ("signal", &name),
            ],
        );
        // As dockerd: a SIGKILL answers once the container is down (clients
        // inspect right after and expect it stopped), waiting a bounded time.
        if let Some(rx) = down.as_mut() {
            let cid = r.id.clone();
            let engine = self.engine.clone();
            let _ = tokio::time::timeout(Duration::from_secs(10), async move {
                loop {
                    if engine.record(&cid).map_or(true, |r| !is_running(&r)) {
                        break;
                    }
                    match rx.recv().await {
                        Ok(ev) if ev.id == cid && ev.action == "die" => break,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            })
            .await;
        }
        Ok(())
    }

    async fn container_restart(&self, id: &str, opts: StopOptions) -> Result<(), ApiError> {
        let r = self.rec(id)?;
        if is_running(&r) {
            match self.container_stop(&r.id, opts).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotModified => {}
                Err(e) => return Err(e),
            }
        }
        match self.engine.start(&r.id).await {
            Ok(()) | Err(EngineError::NotModified(_)) => {}
            Err(e) => return Err(api_err(e)),
        }
        self.emit(
            "container",
            "restart",
            &r.id,
            &[("name", &r.name), ("image", &r.image_ref)],
        );
        Ok(())
    }

    async fn container_wait(
        &self,
        id: &str,
        condition: WaitCondition,
    ) -> Result<WaitFuture, ApiError> {
        // Subscribed before the state is read: no exit can slip between.
        let mut rx = self.engine.subscribe();
        let r = self.rec(id)?;
        let cid = r.id.clone();
        let engine = self.engine.clone();
        let last_code = r.status.as_ref().and_then(|s| s.exit_code).unwrap_or(0);
        if condition == WaitCondition::NotRunning && !is_running(&r) {
            let code = if r.status.is_some() { last_code } else { 0 };
            return Ok(Box::pin(async move {
                Ok(WaitResponse {
                    status_code: i64::from(code),
                    error: None,
                })
            }));
        }
        Ok(Box::pin(async move {
            let mut code = last_code;
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.id == cid && ev.action == "die" => {
                        code = ev.exit_code.unwrap_or(0);
                        if condition == WaitCondition::Removed {
                            continue;
                        }
                        // Every exit ends the wait, also one a restart
                        // policy follows: dockerd wakes its waiters when the
                        // container goes to "restarting".
                        break;
                    }
                    Ok(ev) if ev.id == cid && ev.action == "destroy" => break,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => match engine.record(&cid) {
                        Err(_) => break,
                        Ok(r)
                            if condition != WaitCondition::Removed
                                && !is_running(&r)
                                && r.status.is_some() =>
                        {
                            code = r.status.and_then(|s| s.exit_code).unwrap_or(code);
                            break;
                        }
                        Ok(_) => {}
                    },
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(ApiError::internal("the engine is shutting down"))
                    }
                }
            }
            Ok(WaitResponse {
                status_code: i64::from(code),
                error: None,
            })
        }))
    }

    async fn container_remove(&self, id: &str, opts: RemoveOptions) -> Result<(), ApiError> {
        let r = self.rec(id)?;
        if is_running(&r) && !opts.force {
            return Err(ApiError::conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                r.name
            )));
        }
        self.engine
            .remove(&r.id, opts.force)
            .await
            .map_err(api_err)?;
        self.execs
            .lock()
            .expect("execs lock")
            .retain(|_, e| e.container != r.id);
        if opts.volumes {
            for m in &r.config.mounts {
                let Some(name) = Path::new(&m.source)
                    .strip_prefix(self.volumes.dir())
                    .ok()
                    .and_then(|p| p.components().next())
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                else {
                    continue;
                };
                if self.volumes.get(&name).is_some_and(|m| m.anonymous)
                    && self.volume_in_use(&name).is_empty()
                {
                    let _ = self.volumes.remove(&name);
                }
            }
        }
        Ok(())
    }

    async fn container_remove_link(&self, id: &str, alias: &str) -> Result<(), ApiError> {
        self.engine.remove_link(id, alias).map_err(api_err)
    }

    async fn container_rename(&self, id: &str, new_name: &str) -> Result<(), ApiError> {
        let r = self.rec(id)?;
        let new_name = new_name.trim_start_matches('/');
        if let Some(other) = self
            .engine
            .records()
            .into_iter()
            .find(|o| o.name == new_name && o.id != r.id)
        {
            return Err(ApiError::conflict(format!(
                "Conflict. The container name \"/{new_name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        self.engine.rename(&r.id, new_name).map_err(api_err)?;
        self.emit(
            "container",
            "rename",
            &r.id,
            &[("name", new_name), ("oldName", &format!("/{}", r.name))],
        );
        Ok(())
    }

    async fn container_pause(&self, id: &str) -> Result<(), ApiError> {
        let r = self.rec(id)?;
        match r.status.as_ref().map(|s| s.phase) {
            Some(Phase::Running) => {}
            Some(Phase::Paused) => {
                return Err(ApiError::conflict(format!(
                    "container {} is already paused",
                    r.id
                )))
            }
            _ => {
                return Err(ApiError::conflict(format!(
                    "container {} is not running",
                    r.id
                )))
            }
        }
        self.engine.set_paused(&r.id, true).await.map_err(api_err)
    }

    async fn container_unpause(&self, id: &str) -> Result<(), ApiError> {
        let r = self.rec(id)?;
        if r.status.as_ref().map(|s| s.phase) != Some(Phase::Paused) {
            return Err(ApiError::conflict(format!(
                "container {} is not paused",
                r.id
            )));
        }
        self.engine.set_paused(&r.id, false).await.map_err(api_err)
    }

    async fn container_list(
        &self,
        opts: ContainerListOptions,
    ) -> Result<Vec<ContainerSummary>, ApiError> {
        let all = self.engine.records();
        let mut records: Vec<Record> = all
            .clone()
            .into_iter()
            .filter(|r| opts.all || opts.limit.is_some() || is_running(r))
            .filter(|r| convert::matches_filters(r, &opts.filters, self.volumes.dir()))
            .filter(|r| created_between(r, &all, &opts.filters))
            .filter(|r| {
                let h = self.health_of(r);
                let word = h.as_ref().map_or("none", |h| h.status.as_str());
                opts.filters.match_any("health", |v| v == word)
            })
            .collect();
        records.sort_by(|a, b| b.created.cmp(&a.created));
        if let Some(n) = opts.limit {
            records.truncate(n);
        }
        let now = time::now_f64();
        let list = records
            .iter()
            .map(|r| {
                let mut s =
                    convert::summary(r, now, &network_id(r.network.name()), self.volumes.dir());
                // Names under which linking containers know it (/linker/alias).
                for other in &all {
                    for l in other.links.iter().filter(|l| l.target == r.id) {
                        s.names.push(format!("/{}/{}", other.name, l.alias));
                    }
                }
                // "Up 3 minutes (healthy)", as dockerd shows it.
                if let (Some(h), true) = (self.health_of(r), is_running(r)) {
                    let word = match h.status.as_str() {
                        crate::health::STARTING => "health: starting".to_string(),
                        other => other.to_string(),
                    };
                    s.status = format!("{} ({word})", s.status);
                }
                s
            })
            .collect::<Vec<_>>();
        let mut list = list;
        if opts.size {
            for s in &mut list {
                let (rw, root) = self.sizes(&s.id, &s.image_id).await;
                s.size_rw = Some(rw);
                s.size_root_fs = Some(root);
            }
        }
        Ok(list)
    }

    async fn container_inspect(&self, id: &str, size: bool) -> Result<ContainerInspect, ApiError> {
        let r = self.rec(id)?;
        let sizes = if size {
            Some(self.sizes(&r.id, &r.image_id).await)
        } else {
            None
        };
        let (path, args) = convert::path_and_args(&r);
        let net_id = network_id(r.network.name());
        let networks = convert::endpoint_settings(&r, &net_id);
        let mut ns = NetworkSettings {
            ports: convert::port_map(&r),
            networks,
            sandbox_id: if r.endpoint.is_some() {
                r.id.clone()
            } else {
                String::new()
            },
            sandbox_key: if r.endpoint.is_some() {
                self.engine.sandbox_key(&r)
            } else {
                String::new()
            },
            ..Default::default()
        };
        if let (NetworkMode::Bridge(n), Some(ep)) = (&r.network, &r.endpoint) {
            if n == "bridge" {
                ns.ip_address = ep.ip.to_string();
                ns.ip_prefix_len = i64::from(ep.prefix);
                ns.gateway = ep.gateway.to_string();
                if let Some(v6) = ep.ipv6 {
                    ns.global_ipv6_address = v6.ip.to_string();
                    ns.global_ipv6_prefix_len = i64::from(v6.prefix);
                    ns.ipv6_gateway = v6.gateway.to_string();
                }
                ns.mac_address = ep.mac.clone();
                ns.endpoint_id = ns
                    .networks
                    .get(n)
                    .map(|e| e.endpoint_id.clone())
                    .unwrap_or_default();
            }
        }
        let exec_ids: Vec<String> = self
            .execs
            .lock()
            .expect("execs lock")
            .iter()
            .filter(|(_, e)| e.container == r.id)
            .map(|(k, _)| k.clone())
            .collect();
        // A joined container uses its target's /etc files.
        let etc_dir = match &r.network {
            NetworkMode::Container(target) => self.engine.etc_dir(target),
            _ => self.engine.etc_dir(&r.id),
        };
        let etc = |name: &str| {
            let p = etc_dir.join(name);
            if p.exists() {
                p.display().to_string()
            } else {
                String::new()
            }
        };
        Ok(ContainerInspect {
            id: r.id.clone(),
            created: r.created.clone(),
            path,
            args,
            state: {
                let mut s = convert::state(&r);
                s.health = self.health_of(&r);
                s
            },
            image: r.image_id.clone(),
            resolv_conf_path: etc("resolv.conf"),
            hostname_path: etc("hostname"),
            hosts_path: etc("hosts"),
            log_path: self.engine.log_path(&r.id).display().to_string(),
            name: format!("/{}", r.name),
            restart_count: r
                .status
                .as_ref()
                .map(|s| i64::from(s.restart_count))
                .unwrap_or(0),
            driver: "overlayfs".into(),
            platform: "linux".into(),
            exec_ids: (!exec_ids.is_empty()).then_some(exec_ids),
            host_config: {
                let mut h = convert::inspect_host_config(&r);
                // Legacy links as they are now (docker rm --link drops them).
                if r.network.name() == "bridge" {
                    h.links = (!r.links.is_empty()).then(|| {
                        r.links
                            .iter()
                            .map(|l| {
                                let t = self
                                    .engine
                                    .record(&l.target)
                                    .map(|t| t.name)
                                    .unwrap_or_else(|_| l.target.clone());
                                format!("/{t}:/{}/{}", r.name, l.alias)
                            })
                            .collect()
                    });
                }
                h
            },
            graph_driver: GraphDriver {
                name: "overlayfs".into(),
                data: StringMap::new(),
            },
            mounts: convert::mount_points(&r, self.volumes.dir()),
            config: {
                let mut c = convert::inspect_config(&r);
                if c.healthcheck.is_none() {
                    c.healthcheck = Self::health_config(&r);
                }
                c
            },
            network_settings: ns,
            size_rw: sizes.map(|(rw, _)| rw),
            size_root_fs: sizes.map(|(_, root)| root),
            ..Default::default()
        })
    }

    async fn container_logs(&self, id: &str, opts: LogsOptions) -> Result<LogStream, ApiError> {
        let rx = self.engine.subscribe();
        let r = self.rec(id)?;
        let path = self.engine.log_path(&r.id);
        let want = Want {
            stdout: opts.stdout,
            stderr: opts.stderr,
            timestamps: opts.timestamps,
        };
        let follow = opts.follow && is_running(&r);
        let (tx, out) = mpsc::channel(64);
        let file = match File::open(&path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "open log {}: {e}",
                    path.display()
                )))
            }
        };
        let (since, until, tail_n) = (opts.since, opts.until, opts.tail);
        let cid = r.id.clone();
        tokio::spawn(async move {
            let Some(file) = file else { return };
            let mut tail = LogTail::new(file);
            let stored = tail.read_new().unwrap_or_default();
            let in_range = |e: &strato_supervisor::logs::Entry| {
                let t = time::parse_f64(&e.time).unwrap_or(0.0);
                since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u)
            };
            let mut chunks: Vec<OutputChunk> = stored
                .iter()
                .filter(|e| in_range(e))
                .filter_map(|e| want.chunk(e))
                .collect();
            if let Some(n) = tail_n {
                let skip = chunks.len().saturating_sub(n);
                chunks.drain(..skip);
            }
            for c in chunks {
                if tx.send(Ok(c)).await.is_err() {
                    return;
                }
            }
            if follow {
                follow_log(tail, cid, want, until, rx, tx).await;
            }
        });
        Ok(LogStream {
            tty: r.config.tty,
            output: channel_stream(out),
        })
    }

    async fn container_attach(
        &self,
        id: &str,
        opts: AttachOptions,
    ) -> Result<AttachSession, ApiError> {
        let rx = self.engine.subscribe();
        let r = self.rec(id)?;
        let path = self.engine.log_path(&r.id);
        // Opened (created if the container never ran) now, so output from
        // the first byte is seen and the descriptor outlives a --rm removal.
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o640)
                .open(&path)
                .map_err(|e| ApiError::internal(format!("open log {}: {e}", path.display())))?
        };
        if !opts.logs {
            file.seek(SeekFrom::End(0))?;
        }
        let want = Want {
            stdout: opts.stdout,
            stderr: opts.stderr,
            timestamps: false,
        };
        let (tx, out) = mpsc::channel(64);
        let cid = r.id.clone();
        if opts.stream {
            tokio::spawn(follow_log(
                LogTail::new(file),
                cid.clone(),
                want,
                None,
                rx,
                tx,
            ));
        } else {
            tokio::spawn(async move {
                let mut tail = LogTail::new(file);
                for e in tail.read_new().unwrap_or_default() {
                    if let Some(c) = want.chunk(&e) {
                        if tx.send(Ok(c)).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
        let stdin = if opts.stdin && r.config.open_stdin && opts.stream {
            let (client, ours) = tokio::io::duplex(64 * 1024);
            tokio::spawn(stdin_bridge(
                self.engine.clone(),
                cid,
                ours,
                self.engine.subscribe(),
            ));
            Some(Box::pin(client) as StdinWriter)
        } else {
            None
        };
        Ok(AttachSession {
            tty: r.config.tty,
            stdin,
            output: channel_stream(out),
            detach_keys: None,
        })
    }

    async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<(), ApiError> {
        let r = self.rec(id)?;
        if !is_running(&r) {
            return Err(ApiError::conflict(format!(
                "container {} is not running",
                r.id
            )));
        }
        if !r.config.tty {
            return Ok(());
        }
        self.engine
            .resize(&r.id, height, width)
            .await
            .map_err(api_err)
    }

    async fn container_changes(&self, id: &str) -> Result<Vec<FilesystemChange>, ApiError> {
        let changes = self.engine.changes(id).await.map_err(api_err)?;
        Ok(changes
            .into_iter()
            .map(|c| FilesystemChange {
                path: c.path,
                kind: c.kind as u8,
            })
            .collect())
    }

    async fn container_update(
        &self,
        id: &str,
        update: ContainerUpdate,
    ) -> Result<ContainerUpdateResponse, ApiError> {
        let r = self.rec(id)?;
        let (resources, restart) = convert::container_update(&update)?;
        self.engine
            .update(&r.id, resources, restart)
            .await
            .map_err(api_err)?;
        self.emit(
            "container",
            "update",
            &r.id,
            &[("name", &r.name), ("image", &r.image_ref)],
        );
        Ok(ContainerUpdateResponse::default())
    }

    async fn container_top(
        &self,
        id: &str,
        _ps_args: Option<String>,
    ) -> Result<TopResponse, ApiError> {
        let r = self.rec(id)?;
        if !is_running(&r) {
            return Err(ApiError::conflict(format!(
                "container {} is not running",
                r.id
            )));
        }
        let pids = self.engine.pids(&r.id).map_err(api_err)?;
        let (btime, ticks) = (hostinfo::boot_time(), hostinfo::clock_ticks());
        let mut processes: Vec<Vec<String>> = pids
            .iter()
            .filter_map(|p| top_row(*p, btime, ticks))
            .collect();
        processes.sort_by_key(|row| row[1].parse::<i64>().unwrap_or(0));
        Ok(TopResponse {
            titles: ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            processes,
        })
    }

    async fn container_stats(
        &self,
        id: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<StatsStream, ApiError> {
        let r = self.rec(id)?;
        let engine = self.engine.clone();
        let (tx, out) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut prev: Option<StatsResponse> = None;
            if !stream && !one_shot {
                prev = Some(sample(&engine, &r, None));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            loop {
                let r = match engine.record(&r.id) {
                    Ok(r) => r,
                    Err(_) => return,
                };
                let s = sample(&engine, &r, prev.as_ref());
                if tx.send(Ok(s.clone())).await.is_err() || !stream {
                    return;
                }
                prev = Some(s);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(channel_stream(out))
    }

    async fn container_archive_stat(&self, id: &str, path: &str) -> Result<PathStat, ApiError> {
        let r = self.rec(id)?;
        self.engine.unprepare(&r.id).await;
        let (src, name) = copy::RootSource::of(&self.engine, &r);
        let path = path.to_string();
        copy::spawn(src, move |root| copy::stat(root, &path, &name))
            .await
            .map_err(|_| ApiError::internal("the copy thread ended early"))?
            .map_err(ApiError::from)
    }

    async fn container_export(&self, id: &str) -> Result<ByteStream, ApiError> {
        let r = self.rec(id)?;
        self.engine.unprepare(&r.id).await;
        let src = copy::RootSource::for_export(&self.engine, &r);
        let name = r.name.clone();
        let (stat_tx, stat_rx) = tokio::sync::oneshot::channel();
        let (mut w, stream) = BodyWriter::new();
        let done = copy::spawn(src, move |root| {
            let res = copy::archive(root, "/", &name, stat_tx, &mut w);
            if let Err(e) = &res {
                tracing::warn!(container = %name, error = %e, "export");
                w.fail(std::io::Error::other(e.to_string()));
            }
            res
        });
        match stat_rx.await {
            Ok(_) => Ok(stream),
            Err(_) => Err(match done.await {
                Ok(Err(e)) => e.into(),
                _ => ApiError::internal("the export thread ended early"),
            }),
        }
    }

    async fn container_archive_get(
        &self,
        id: &str,
        path: &str,
    ) -> Result<(PathStat, ByteStream), ApiError> {
        let r = self.rec(id)?;
        self.engine.unprepare(&r.id).await;
        let (src, name) = copy::RootSource::of(&self.engine, &r);
        let path = path.to_string();
        let (stat_tx, stat_rx) = tokio::sync::oneshot::channel();
        let (mut w, stream) = BodyWriter::new();
        let done = copy::spawn(src, move |root| {
            let res = copy::archive(root, &path, &name, stat_tx, &mut w);
            if let Err(e) = &res {
                w.fail(std::io::Error::other(e.to_string()));
            }
            res
        });
        match stat_rx.await {
            Ok(stat) => Ok((stat, stream)),
            // No stat: the path or the root could not be opened.
            Err(_) => Err(match done.await {
                Ok(Err(e)) => e.into(),
                _ => ApiError::internal("the copy thread ended early"),
            }),
        }
    }

    async fn container_archive_put(
        &self,
        id: &str,
        opts: ArchivePutOptions,
        body: ByteStream,
    ) -> Result<(), ApiError> {
        let r = self.rec(id)?;
        // Copies reach the layer through a mount of their own: a start
        // prepared over the layer before would not see what they write.
        self.engine.unprepare(&r.id).await;
        let (src, name) = copy::RootSource::of(&self.engine, &r);
        // copyUIDGID: entries belong to the container's user, as in Docker;
        // otherwise they keep the tar's ids.
        let user = if r.config.user.is_empty() {
            r.image_defaults.user.clone()
        } else {
            r.config.user.clone()
        };
        let chown_to = (opts.copy_uid_gid && !user.is_empty()).then_some(user);
        let mut put = copy::PutOptions {
            path: opts.path.clone(),
            no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
            chown: None,
        };
        let reader = BodyReader::spawn(body);
        copy::spawn(src, move |root| {
            if let Some(user) = chown_to {
                let u = crate::users::resolve(root.path(), &user, &[])
                    .map_err(copy::CopyError::Invalid)?;
                put.chown = Some((u.uid, u.gid));
            }
            copy::extract(root, &put, &name, reader)
        })
        .await
        .map_err(|_| ApiError::internal("the copy thread ended early"))?
        .map_err(ApiError::from)
    }

    async fn containers_prune(&self, filters: Filters) -> Result<ContainersPruneReport, ApiError> {
        let until = filters
            .get("until")
            .first()
            .and_then(|u| u.parse::<f64>().ok().or_else(|| time::parse_f64(u)));
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for r in self.engine.records() {
            if is_running(&r)
                || !filters.match_labels("label", &r.config.labels)
                || until.is_some_and(|u| time::parse_f64(&r.created).unwrap_or(0.0) >= u)
            {
                continue;
            }
            let size = self.layer_size(&r.id).await;
            match self.engine.remove(&r.id, false).await {
                Ok(()) => {
                    deleted.push(r.id);
                    reclaimed += size;
                }
                Err(e) => tracing::warn!(id = %r.id, error = %e, "prune"),
            }
        }
        Ok(ContainersPruneReport {
            containers_deleted: deleted,
            space_reclaimed: reclaimed,
        })
    }

    // ------------------------------------------------------------ exec

    async fn exec_create(&self, id: &str, config: ExecConfig) -> Result<IdResponse, ApiError> {
        let r = self.rec(id)?;
        match r.status.as_ref().map(|s| s.phase) {
            Some(Phase::Running) => {}
            Some(Phase::Paused) => {
                return Err(ApiError::conflict(format!(
                    "container {} is paused, unpause the container before exec",
                    r.id
                )))
            }
            _ => {
                return Err(ApiError::conflict(format!(
                    "container {} is not running",
                    r.id
                )))
            }
        }
        if config.cmd.is_empty() {
            return Err(ApiError::bad_parameter("No exec command specified"));
        }
        let exec_id = crate::ids::new_id();
        self.execs.lock().expect("execs lock").insert(
            exec_id.clone(),
            ExecEntry {
                container: r.id.clone(),
                tty: config.tty,
                config,
                started: false,
                start_failed: false,
            },
        );
        self.emit(
            "container",
            "exec_create",
            &r.id,
            &[("name", &r.name), ("image", &r.image_ref)],
        );
        Ok(IdResponse { id: exec_id })
    }

    async fn exec_start(
        &self,
        exec_id: &str,
        opts: ExecStartConfig,
    ) -> Result<AttachSession, ApiError> {
        let entry = {
            let mut execs = self.execs.lock().expect("execs lock");
            let e = execs
                .get_mut(exec_id)
                .ok_or_else(|| ApiError::no_such_exec(exec_id))?;
            if e.started {
                return Err(ApiError::conflict(format!(
                    "exec instance {exec_id} has already been started"
                )));
            }
            e.started = true;
            if opts.tty {
                e.tty = true;
            }
            e.clone()
        };
        let mut cfg = entry.config.clone();
        cfg.tty = entry.tty;
        if opts.console_size.is_some() {
            cfg.console_size = opts.console_size;
        }
        let bundle = self.engine.bundle_path(&entry.container);
        let spec: Value = fs::read(bundle.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                ApiError::conflict(format!("container {} is not running", entry.container))
            })?;
        let root = self.engine.root_path(&entry.container);
        let launched = match exec_process(&spec["process"], &cfg, &root) {
            Ok(process) => self
                .engine
                .exec(&entry.container, exec_id, process, cfg.attach_stdin)
                .await
                .map_err(api_err),
            Err(e) => Err(e),
        };
        let (_pid, tty, mut fds) = match launched {
            Ok(l) => l,
            Err(e) => {
                if let Some(x) = self.execs.lock().expect("execs lock").get_mut(exec_id) {
                    x.start_failed = true;
                }
                return Err(e);
            }
        };
        let (tx, out) = mpsc::channel(64);
        let mut stdin: Option<StdinWriter> = None;
        let engine = self.engine.clone();
        let eid = exec_id.to_string();
        if tty {
            let master: OwnedFd = fds
                .pop()
                .ok_or_else(|| ApiError::internal("exec: no terminal from the supervisor"))?;
            if cfg.attach_stdin && !opts.detach {
                let w = master.try_clone()?;
                stdin = Some(Box::pin(tokio::fs::File::from_std(File::from(w))));
            }
            let reader = tokio::fs::File::from_std(File::from(master));
            tokio::spawn(async move {
                pump(reader, StreamKind::Stdout, tx.clone()).await;
                wait_exec(&engine, &eid).await;
                drop(tx);
            });
        } else {
            if fds.len() != 3 {
                return Err(ApiError::internal(
                    "exec: expected three pipes from the supervisor",
                ));
            }
            let err_fd = fds.pop().expect("three fds");
            let out_fd = fds.pop().expect("three fds");
            let in_fd = fds.pop().expect("three fds");
            if cfg.attach_stdin && !opts.detach {
                let w = tokio::net::unix::pipe::Sender::from_owned_fd(in_fd)?;
                stdin = Some(Box::pin(w));
            }
            let out_r = tokio::net::unix::pipe::Receiver::from_owned_fd(out_fd)?;
            let err_r = tokio::net::unix::pipe::Receiver::from_owned_fd(err_fd)?;
            tokio::spawn(async move {
                tokio::join!(
                    pump(out_r, StreamKind::Stdout, tx.clone()),
                    pump(err_r, StreamKind::Stderr, tx.clone())
                );
                wait_exec(&engine, &eid).await;
                drop(tx);
            });
        }
        let mut output = channel_stream(out);
        if opts.detach {
            // Nobody reads: drain, so the process never blocks on a full pipe.
            tokio::spawn(async move { while output.next().await.is_some() {} });
            output = futures::stream::empty().boxed();
        }
        let r = self.engine.record(&entry.container).ok();
        if let Some(r) = r {
            self.emit(
                "container",
                &format!("exec_start: {}", cfg.cmd.join(" ")),
                &r.id,
                &[("name", &r.name), ("image", &r.image_ref)],
            );
        }
        // As dockerd: the start request's Tty decides the framing (raw or
        // multiplexed), whatever the process has; docker-py starts a TTY exec
        // with `Tty: false` and reads frames.
        Ok(AttachSession {
            tty: opts.tty,
            stdin,
            output,
            detach_keys: Some(cfg.detach_keys.clone()).filter(|k| !k.is_empty()),
        })
    }

    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect, ApiError> {
        let e = self
            .execs
            .lock()
            .expect("execs lock")
            .get(exec_id)
            .cloned()
            .ok_or_else(|| ApiError::no_such_exec(exec_id))?;
        let (running, exit_code, pid) = if e.start_failed {
            (false, Some(EXEC_START_FAILED), 0)
        } else if e.started {
            match self.engine.exec_state(exec_id).await {
                Ok(s) => (s.running, s.exit_code.map(i64::from), i64::from(s.pid)),
                Err(_) => (false, None, 0),
            }
        } else {
            (false, None, 0)
        };
        let mut args = e.config.cmd.clone();
        let entrypoint = if args.is_empty() {
            String::new()
        } else {
            args.remove(0)
        };
        Ok(ExecInspect {
            id: exec_id.into(),
            running,
            exit_code,
            process_config: ProcessConfig {
                privileged: e.config.privileged,
                user: e.config.user.clone(),
                tty: e.tty,
                entrypoint,
                arguments: args,
            },
            open_stdin: e.config.attach_stdin,
            open_stderr: e.config.attach_stderr,
            open_stdout: e.config.attach_stdout,
            can_remove: !running && e.started,
            container_id: e.container.clone(),
            detach_keys: e.config.detach_keys.clone(),
            pid,
        })
    }

    async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<(), ApiError> {
        let e = self
            .execs
            .lock()
            .expect("execs lock")
            .get(exec_id)
            .cloned()
            .ok_or_else(|| ApiError::no_such_exec(exec_id))?;
        if !e.started || !e.tty {
            return Ok(());
        }
        self.engine
            .exec_resize(exec_id, height, width)
            .await
            .map_err(api_err)
    }

    // ------------------------------------------------------------ images

    async fn image_list(&self, opts: ImageListOptions) -> Result<Vec<ImageSummary>, ApiError> {
        let f = &opts.filters;
        let mut list = self.image_summaries()?;
        if !opts.all {
            // As dockerd: untagged images that others were built on (a
            // build's intermediate images) are listed with `-a` only.
            let parents: std::collections::HashSet<String> =
                list.iter().map(|i| i.parent_id.clone()).collect();
            list.retain(|i| !i.repo_tags.is_empty() || !parents.contains(&i.id));
        }
        list.retain(|i| {
            f.match_any("dangling", |v| (v == "true") == i.repo_tags.is_empty())
                && f.match_any("reference", |v| {
                    i.repo_tags.iter().any(|t| reference_matches(v, t))
                })
        });
        Ok(list)
    }

    async fn image_inspect(&self, name: &str) -> Result<ImageInspect, ApiError> {
        let images = self.engine.images().clone();
        let n = name.to_string();
        let d = tokio::task::spawn_blocking(move || images.inspect(&n))
            .await
            .map_err(join_err)?
            .map_err(|e| image_err(name, e))?;
        let cfg = &d.config;
        let mut config = cfg
            .config()
            .as_ref()
            .map(convert::image_config)
            .unwrap_or_default();
        // Docker's own keys, which the OCI config type drops: read them
        // from the config blob.
        let raw = self
            .engine
            .images()
            .blob_path(&d.id)
            .and_then(|p| fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .map(|v| v["config"].clone())
            .unwrap_or(Value::Null);
        config.on_build = serde_json::from_value(raw["OnBuild"].clone()).unwrap_or_default();
        config.shell = serde_json::from_value(raw["Shell"].clone()).unwrap_or_default();
        if raw["Healthcheck"].is_object() {
            config.healthcheck = serde_json::from_value(raw["Healthcheck"].clone()).ok();
        }
        Ok(ImageInspect {
            id: d.id.to_string(),
            repo_tags: d.repo_tags.clone(),
            repo_digests: d.repo_digests.clone(),
            parent: d.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            comment: cfg
                .history()
                .as_ref()
                .and_then(|h| h.last())
                .and_then(|h| h.comment().clone())
                .unwrap_or_default(),
            created: cfg
                .created()
                .clone()
                .unwrap_or_else(|| time::ZERO_TIME.into()),
            docker_version: String::new(),
            author: cfg.author().clone().unwrap_or_default(),
            config,
            architecture: cfg.architecture().to_string(),
            variant: cfg.variant().clone().unwrap_or_default(),
            os: cfg.os().to_string(),
            os_version: String::new(),
            size: d.size as i64,
            virtual_size: d.size as i64,
            graph_driver: GraphDriver {
                name: "overlayfs".into(),
                data: StringMap::new(),
            },
            root_fs: RootFs {
                kind: "layers".into(),
                layers: d.diff_ids.iter().map(|x| x.to_string()).collect(),
            },
            metadata: ImageMetadata {
                last_tag_time: time::ZERO_TIME.into(),
            },
        })
    }

    async fn image_history(&self, name: &str) -> Result<Vec<HistoryItem>, ApiError> {
        let images = self.engine.images().clone();
        let n = name.to_string();
        let d = tokio::task::spawn_blocking(move || images.inspect(&n))
            .await
            .map_err(join_err)?
            .map_err(|e| image_err(name, e))?;
        let history = d.config.history().clone().unwrap_or_default();
        let mut out: Vec<HistoryItem> = history
            .iter()
            .map(|h| HistoryItem {
                id: "<missing>".into(),
                created: h.created().as_deref().map(time::unix).unwrap_or(0),
                created_by: h.created_by().clone().unwrap_or_default(),
                tags: Vec::new(),
                size: 0,
                comment: h.comment().clone().unwrap_or_default(),
            })
            .collect();
        if out.is_empty() {
            out.push(HistoryItem {
                id: "<missing>".into(),
                created: d.config.created().as_deref().map(time::unix).unwrap_or(0),
                ..Default::default()
            });
        }
        out.reverse();
        out[0].id = d.id.to_string();
        out[0].tags = d.repo_tags.clone();
        out[0].size = d.size as i64;
        Ok(out)
    }

    async fn image_tag(&self, name: &str, repo: &str, tag: &str) -> Result<(), ApiError> {
        let target = format!("{repo}:{}", if tag.is_empty() { "latest" } else { tag });
        let images = self.engine.images().clone();
        let (n, t) = (name.to_string(), target.clone());
        tokio::task::spawn_blocking(move || images.tag(&n, &t))
            .await
            .map_err(join_err)?
            .map_err(|e| image_err(name, e))?;
        self.emit("image", "tag", name, &[("name", &target)]);
        Ok(())
    }

    async fn image_remove(
        &self,
        name: &str,
        force: bool,
        noprune: bool,
    ) -> Result<Vec<ImageDeleteItem>, ApiError> {
        let images = self.engine.images().clone();
        let details = {
            let (i, n) = (images.clone(), name.to_string());
            tokio::task::spawn_blocking(move || i.inspect(&n))
                .await
                .map_err(join_err)?
                .map_err(|e| image_err(name, e))?
        };
        let id = details.id.to_string();
        if !force {
            let user = self.engine.records().into_iter().find(|r| r.image_id == id);
            // The last tag of an image a container uses is kept, as in Docker.
            if let Some(c) = user {
                if details.repo_tags.len() <= 1 {
                    return Err(ApiError::conflict(format!(
                        "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                        short(&c.id),
                        short(id.trim_start_matches("sha256:"))
                    )));
                }
            }
        }
        let n = name.to_string();
        let removed = tokio::task::spawn_blocking(move || images.remove(&n, force))
            .await
            .map_err(join_err)?
            .map_err(|e| image_err(name, e))?;
        let mut out = Vec::new();
        for r in removed {
            match r {
                strato_image::Removed::Untagged(t) => {
                    self.emit("image", "untag", &id, &[("name", &t)]);
                    out.push(ImageDeleteItem {
                        untagged: Some(t),
                        deleted: None,
                    })
                }
                strato_image::Removed::Deleted(d) => {
                    self.emit("image", "delete", d.as_str(), &[("name", name)]);
                    out.push(ImageDeleteItem {
                        untagged: None,
                        deleted: Some(d.to_string()),
                    })
                }
            }
        }
        let deleted = out.iter().any(|i| i.deleted.is_some());
        if deleted && !noprune {
            // As dockerd: untagged parents nothing else uses go too (a
            // build's intermediate images).
            let used: Vec<String> = self
                .engine
                .records()
                .into_iter()
                .map(|r| r.image_id)
                .collect();
            let images = self.engine.images().clone();
            let first = details.parent.clone();
            let pruned = tokio::task::spawn_blocking(move || {
                let mut gone = Vec::new();
                let mut next = first;
                while let Some(p) = next {
                    let Ok(d) = images.inspect(p.as_str()) else {
                        break;
                    };
                    let has_child = images
                        .list()
                        .map(|l| l.iter().any(|i| i.parent.as_ref() == Some(&p)))
                        .unwrap_or(true);
                    if !d.repo_tags.is_empty() || has_child || used.iter().any(|u| u == p.as_str())
                    {
                        break;
                    }
                    if images.remove(p.as_str(), false).is_err() {
                        break;
                    }
                    gone.push(p);
                    next = d.parent;
                }
                gone
            })
            .await
            .map_err(join_err)?;
            for d in pruned {
                self.emit("image", "delete", d.as_str(), &[]);
                out.push(ImageDeleteItem {
                    untagged: None,
                    deleted: Some(d.to_string()),
                });
            }
        }
        Ok(out)
    }

    async fn image_load(&self, body: ByteStream, quiet: bool) -> Result<ProgressStream, ApiError> {
        let _ = quiet;
        let reader = BodyReader::spawn(body);
        let images = self.engine.images().clone();
        let loaded = tokio::task::spawn_blocking(move || images.load(reader))
            .await
            .map_err(join_err)?;
        let msgs: Vec<JsonMessage> = match loaded {
            Ok(list) => {
                let mut msgs = Vec::new();
                for img in list {
                    if img.tags.is_empty() {
                        msgs.push(JsonMessage::stream(format!(
                            "Loaded image ID: {}\n",
                            img.id
                        )));
                        self.emit("image", "load", img.id.as_str(), &[]);
                    }
                    for t in &img.tags {
                        msgs.push(JsonMessage::stream(format!("Loaded image: {t}\n")));
                        self.emit("image", "load", img.id.as_str(), &[("name", t)]);
                    }
                }
                msgs
            }
            Err(e) => vec![JsonMessage::error(format!("load the image archive: {e}"))],
        };
        Ok(futures::stream::iter(msgs).boxed())
    }

    async fn image_save(&self, names: Vec<String>) -> Result<ByteStream, ApiError> {
        if names.is_empty() {
            return Err(ApiError::bad_parameter(
                "no image given: name the images to save",
            ));
        }
        let images = self.engine.images().clone();
        for n in &names {
            let (i, n2) = (images.clone(), n.clone());
            tokio::task::spawn_blocking(move || i.resolve(&n2))
                .await
                .map_err(join_err)?
                .map_err(|e| image_err(n, e))?;
        }
        let (mut w, stream) = BodyWriter::new();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let res = images.save(&refs, &mut w);
            match res {
                Ok(()) => {
                    let _ = std::io::Write::flush(&mut w);
                }
                Err(e) => w.fail(std::io::Error::other(e.to_string())),
            }
        });
        Ok(stream)
    }

    async fn image_import(
        &self,
        body: ByteStream,
        opts: ImportOptions,
    ) -> Result<ProgressStream, ApiError> {
        let url = match opts.from_src.as_str() {
            "-" => None,
            u if u.starts_with("http://") || u.starts_with("https://") => Some(u.to_string()),
            other => {
                return Err(ApiError::bad_parameter(format!(
                "fromSrc {other:?} is neither - (the request body) nor an http:// or https:// URL"
            )))
            }
        };
        let config = if opts.changes.is_empty() {
            None
        } else {
            let mut c = strato_image::default_import_config();
            crate::commit::apply_changes(&mut c, &opts.changes).map_err(ApiError::bad_parameter)?;
            Some(c)
        };
        let reference = if opts.repo.is_empty() {
            None
        } else if opts.tag.is_empty() {
            Some(opts.repo.clone())
        } else {
            Some(format!("{}:{}", opts.repo, opts.tag))
        };
        if let Some(r) = &reference {
            strato_image::Reference::parse(r)
                .map_err(|e| ApiError::bad_parameter(e.to_string()))?;
        }
        let images = self.engine.images().clone();
        let r2 = reference.clone();
        let res = match url {
            None => {
                let reader = BodyReader::spawn(body);
                tokio::task::spawn_blocking(move || {
                    images.import_with_config(reader, r2.as_deref(), config)
                })
                .await
                .map_err(join_err)?
            }
            Some(url) => {
                // Downloaded whole first: the import reads one stream, and a
                // broken download must not become a truncated image.
                drop(body);
                let dist = self.distribution()?;
                let tmp = dist
                    .tmp_dir()
                    .join(format!("import-{}", &crate::ids::new_id()[..16]));
                let client = dist.client().clone();
                if let Err(e) = client.fetch_url(&url, &tmp, IMPORT_URL_LIMIT).await {
                    return Ok(futures::stream::iter(vec![JsonMessage::error(format!(
                        "import: {e}"
                    ))])
                    .boxed());
                }
                tokio::task::spawn_blocking(move || {
                    let res = File::open(&tmp)
                        .map_err(strato_image::Error::Archive)
                        .and_then(|f| images.import_with_config(f, r2.as_deref(), config));
                    let _ = fs::remove_file(&tmp);
                    res
                })
                .await
                .map_err(join_err)?
            }
        };
        let msg = match res {
            Ok(id) => {
                self.emit("image", "import", id.as_str(), &[]);
                JsonMessage::status(id.to_string(), None)
            }
            Err(e) => JsonMessage::error(format!("import: {e}")),
        };
        Ok(futures::stream::iter(vec![msg]).boxed())
    }

    async fn commit(
        &self,
        opts: CommitOptions,
        config: Option<ContainerConfig>,
    ) -> Result<IdResponse, ApiError> {
        let r = self.rec(&opts.container)?;
        let mut cfg = convert::inspect_config(&r);
        if let Some(over) = &config {
            cfg = crate::commit::overlay(cfg, over);
        }
        let mut image_cfg = crate::commit::image_config(&cfg);
        crate::commit::apply_changes(&mut image_cfg, &opts.changes)
            .map_err(ApiError::bad_parameter)?;
        let tag = match (opts.repo.as_str(), opts.tag.as_str()) {
            ("", "") => None,
            ("", _) => {
                return Err(ApiError::bad_parameter(
                    "a tag needs a repository: add repo=<name>",
                ))
            }
            (repo, "") => Some(repo.to_string()),
            (repo, tag) => Some(format!("{repo}:{tag}")),
        };
        if let Some(t) = &tag {
            strato_image::Reference::parse(t)
                .map_err(|e| ApiError::bad_parameter(e.to_string()))?;
        }
        let mut created_by = cfg.entrypoint.clone().unwrap_or_default();
        created_by.extend(cfg.cmd.clone().unwrap_or_default());
        let spec = strato_image::CommitSpec {
            config: image_cfg,
            author: opts.author.clone(),
            comment: opts.comment.clone(),
            created_by: created_by.join(" "),
            tag,
            container_config: serde_json::Value::Null,
        };
        // As dockerd: a running container is paused while its layer is read.
        // (It may exit meanwhile: then there is nothing to pause.)
        let pause = opts.pause
            && r.status.as_ref().is_some_and(|s| s.phase == Phase::Running)
            && self.engine.set_paused(&r.id, true).await.is_ok();
        let res = self.engine.commit(&r.id, spec).await;
        if pause {
            if let Err(e) = self.engine.set_paused(&r.id, false).await {
                tracing::warn!(id = %r.id, error = %e, "unpause after commit");
            }
        }
        let id = res.map_err(api_err)?;
        self.emit(
            "container",
            "commit",
            &r.id,
            &[("comment", &opts.comment), ("imageID", id.as_str())],
        );
        Ok(IdResponse { id: id.to_string() })
    }

    async fn build(
        &self,
        opts: BuildOptions,
        context: ByteStream,
    ) -> Result<ProgressStream, ApiError> {
        let me = self
            .me
            .upgrade()
            .ok_or_else(|| ApiError::internal("the engine is shutting down"))?;
        crate::build::start(me, opts, context)
    }

    async fn image_pull(&self, opts: PullOptions) -> Result<ProgressStream, ApiError> {
        self.distribution()?.pull(opts, self.image_notifier()).await
    }

    async fn image_push(
        &self,
        name: &str,
        tag: &str,
        auth: Option<AuthConfig>,
    ) -> Result<ProgressStream, ApiError> {
        self.distribution()?
            .push(name, tag, auth, self.image_notifier())
            .await
    }

    async fn distribution_inspect(
        &self,
        name: &str,
        auth: Option<AuthConfig>,
    ) -> Result<DistributionInspect, ApiError> {
        self.distribution()?.inspect(name, auth).await
    }

    async fn images_prune(&self, filters: Filters) -> Result<ImagesPruneReport, ApiError> {
        let all = filters
            .get("dangling")
            .iter()
            .any(|v| v == "false" || v == "0");
        let before = self.image_summaries()?;
        let images = self.engine.images().clone();
        let used: Vec<String> = self
            .engine
            .records()
            .into_iter()
            .map(|r| r.image_id)
            .collect();
        let deleted = tokio::task::spawn_blocking(move || -> Result<Vec<String>, String> {
            let mut out: Vec<String> = images
                .prune()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|d| d.to_string())
                .collect();
            if all {
                for i in images.list().map_err(|e| e.to_string())? {
                    if used.iter().any(|u| u == i.id.as_str()) {
                        continue;
                    }
                    if let Ok(removed) = images.remove(i.id.as_str(), true) {
                        out.extend(removed.into_iter().filter_map(|r| match r {
                            strato_image::Removed::Deleted(d) => Some(d.to_string()),
                            strato_image::Removed::Untagged(_) => None,
                        }));
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(join_err)?
        .map_err(ApiError::internal)?;
        let reclaimed = before
            .iter()
            .filter(|i| deleted.contains(&i.id))
            .map(|i| i.size as u64)
            .sum();
        Ok(ImagesPruneReport {
            images_deleted: deleted
                .into_iter()
                .map(|d| ImageDeleteItem {
                    untagged: None,
                    deleted: Some(d),
                })
                .collect(),
            space_reclaimed: reclaimed,
        })
    }

    // ------------------------------------------------------------ networks

    async fn network_list(&self, filters: Filters) -> Result<Vec<NetworkResource>, ApiError> {
        let mut all = self.all_networks().await;
        all.retain(|n| {
            filters.match_any("name", |v| n.name.contains(v))
                && filters.match_any("id", |v| n.id.starts_with(v))
                && filters.match_any("driver", |v| v == n.driver)
                && filters.match_any("scope", |v| v == n.scope)
                && filters.match_any("type", |v| {
                    let builtin = matches!(n.name.as_str(), "bridge" | "host" | "none");
                    (v == "builtin") == builtin
                })
                && filters.match_labels("label", &n.labels)
        });
        Ok(all)
    }

    async fn network_inspect(&self, id: &str) -> Result<NetworkResource, ApiError> {
        self.find_network(id).await
    }

    async fn network_create(
        &self,
        req: NetworkCreateRequest,
    ) -> Result<NetworkCreateResponse, ApiError> {
        if !matches!(req.driver.as_str(), "" | "bridge") {
            return Err(ApiError::not_implemented(format!(
                "network driver {:?} is not implemented yet: use bridge",
                req.driver
            )));
        }
        if matches!(req.name.as_str(), "bridge" | "host" | "none")
            || self
                .find_network(&req.name)
                .await
                .is_ok_and(|n| n.name == req.name)
        {
            return Err(ApiError::conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        // One pool per family: a pool is IPv6 when any of its addresses is.
        let pools = req
            .ipam
            .as_ref()
            .map(|i| i.config.as_slice())
            .unwrap_or(&[]);
        let (pools6, pools4): (Vec<&IpamPool>, Vec<&IpamPool>) = pools.iter().partition(|p| {
            [&p.subnet, &p.ip_range, &p.gateway]
                .iter()
                .any(|s| s.contains(':'))
        });
        if pools4.len() > 1 || pools6.len() > 1 {
            return Err(ApiError::not_implemented(
                "more than one IPAM pool per address family is not supported: give at most one IPv4 and one IPv6 subnet",
            ));
        }
        if req.enable_ipv4 == Some(false) {
            return Err(ApiError::not_implemented(
                "IPv6-only networks are not supported: leave IPv4 enabled (EnableIPv4) and add --ipv6 for dual stack",
            ));
        }
        let pool = pools4.first().copied();
        let pool6 = pools6.first().copied();
        // An IPv6 pool implies IPv6 (as dockerd has done since 1.11 for
        // networks with one); turning it off explicitly contradicts it.
        let ipv6_on = match (req.enable_ipv6, pool6) {
            (Some(false), Some(p)) => {
                return Err(ApiError::bad_parameter(format!(
                "IPv6 pool {:?} given but EnableIPv6 is false: add --ipv6 or drop the IPv6 subnet",
                p.subnet
            )))
            }
            (Some(on), _) => on,
            (None, p) => p.is_some(),
        };
        let ipv6 = if ipv6_on {
            Some(ipv6_spec(pool6)?)
        } else {
            None
        };
        let subnet = match pool.map(|p| p.subnet.as_str()).filter(|s| !s.is_empty()) {
            Some(s) => Some(
                s.parse()
                    .map_err(|e: strato_network::Error| ApiError::bad_parameter(e.to_string()))?,
            ),
            None => None,
        };
        let gateway = match pool.map(|p| p.gateway.as_str()).filter(|s| !s.is_empty()) {
            Some(g) => Some(g.parse().map_err(|_| {
                ApiError::bad_parameter(format!("invalid gateway {g:?}: give an IPv4 address"))
            })?),
            None => None,
        };
        let bridge = req
            .options
            .as_ref()
            .and_then(|o| o.get("com.docker.network.bridge.name"))
            .cloned();
        if let Some(mtu) = req
            .options
            .as_ref()
            .and_then(|o| o.get(strato_network::state::MTU_OPTION))
        {
            strato_network::state::parse_mtu(mtu).map_err(ApiError::bad_parameter)?;
        }
        if !matches!(
            req.ipam.as_ref().map(|i| i.driver.as_str()),
            None | Some("" | "default")
        ) {
            return Err(ApiError::not_implemented(
                "only the default IPAM driver is supported: leave IPAM.Driver empty",
            ));
        }
        let ip_range = match pool.map(|p| p.ip_range.as_str()).filter(|s| !s.is_empty()) {
            Some(s) => Some(
                s.parse()
                    .map_err(|e: strato_network::Error| ApiError::bad_parameter(e.to_string()))?,
            ),
            None => None,
        };
        let mut aux_addresses = std::collections::BTreeMap::new();
        for (k, v) in pool
            .and_then(|p| p.auxiliary_addresses.clone())
            .unwrap_or_default()
        {
            let ip = v.parse().map_err(|_| {
                ApiError::bad_parameter(format!(
                    "invalid auxiliary address {k}={v:?}: give an IPv4 address"
                ))
            })?;
            aux_addresses.insert(k, ip);
        }
        if (ip_range.is_some() || !aux_addresses.is_empty()) && subnet.is_none() {
            return Err(ApiError::bad_parameter(
                "an ip range or auxiliary addresses need a subnet: give IPAM.Config[].Subnet",
            ));
        }
        let spec = strato_network::NetworkSpec {
            name: req.name.clone(),
            bridge,
            subnet,
            gateway,
            internal: req.internal,
            meta: strato_network::NetworkMeta {
                labels: req.labels.clone().unwrap_or_default().into_iter().collect(),
                options: req
                    .options
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                ip_range,
                aux_addresses,
                created: time::format(time::now_f64() as i64, 0),
            },
            ipv6,
        };
        let n = self
            .engine
            .network()
            .create(spec)
            .await
            .map_err(|e| match e {
                strato_network::Error::NetworkExists(_) => {
                    ApiError::conflict(format!("network with name {} already exists", req.name))
                }
                strato_network::Error::InvalidName(_)
                | strato_network::Error::InvalidBridgeName(_)
                | strato_network::Error::RangeOutsideSubnet { .. }
                | strato_network::Error::AuxAddressOutsideSubnet { .. }
                | strato_network::Error::GatewayOutsideSubnet { .. }
                | strato_network::Error::InvalidIpv6 { .. }
                | strato_network::Error::Ipv6Unavailable
                | strato_network::Error::SubnetTooSmall { .. } => {
                    ApiError::bad_parameter(e.to_string())
                }
                strato_network::Error::SubnetOverlap { .. } => ApiError::new(
                    ErrorKind::Forbidden,
                    format!("Pool overlaps with other one on this address space: {e}"),
                ),
                other => ApiError::internal(other.to_string()),
            })?;
        let id = network_id(&n.name);
        self.emit(
            "network",
            "create",
            &id,
            &[("name", &n.name), ("type", "bridge")],
        );
        Ok(NetworkCreateResponse {
            id,
            warning: String::new(),
        })
    }

    async fn network_remove(&self, id: &str) -> Result<(), ApiError> {
        let n = self.find_network(id).await?;
        if matches!(n.name.as_str(), "bridge" | "host" | "none") {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                format!("{} is a pre-defined network and cannot be removed", n.name),
            ));
        }
        let users: Vec<String> = self
            .engine
            .records()
            .into_iter()
            .filter(|r| r.network_names().contains(&n.name))
            .map(|r| r.name)
            .collect();
        if !users.is_empty() {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                format!(
                    "error while removing network: network {} id {} has active endpoints ({}): remove those containers first",
                    n.name,
                    n.id,
                    users.join(", ")
                ),
            ));
        }
        self.engine
            .network()
            .remove(&n.name)
            .await
            .map_err(|e| match e {
                strato_network::Error::NetworkInUse { .. } => {
                    ApiError::new(ErrorKind::Forbidden, e.to_string())
                }
                other => ApiError::internal(other.to_string()),
            })?;
        self.engine.stop_dns(&n.name);
        self.emit(
            "network",
            "destroy",
            &n.id,
            &[("name", &n.name), ("type", "bridge")],
        );
        Ok(())
    }

    async fn network_connect(&self, id: &str, req: NetworkConnectRequest) -> Result<(), ApiError> {
        let n = self.find_network(id).await?;
        let r = self.rec(&req.container)?;
        if matches!(n.name.as_str(), "host" | "none") {
            return Err(ApiError::bad_parameter(format!(
                "container cannot be disconnected from its network and connected to {}: use docker run --network {}",
                n.name, n.name
            )));
        }
        let (aliases, opts) = convert::endpoint_request(&req.endpoint_config.unwrap_or_default())?;
        self.engine
            .connect(&r.id, &n.name, aliases, opts)
            .await
            .map_err(api_err)?;
        self.emit(
            "network",
            "connect",
            &n.id,
            &[("container", &r.id), ("name", &n.name), ("type", "bridge")],
        );
        Ok(())
    }

    async fn network_disconnect(
        &self,
        id: &str,
        req: NetworkDisconnectRequest,
    ) -> Result<(), ApiError> {
        let n = self.find_network(id).await?;
        let r = self.rec(&req.container)?;
        self.engine
            .disconnect(&r.id, &n.name)
            .await
            .map_err(api_err)?;
        self.emit(
            "network",
            "disconnect",
            &n.id,
            &[("container", &r.id), ("name", &n.name), ("type", "bridge")],
        );
        Ok(())
    }

    async fn networks_prune(&self, _filters: Filters) -> Result<NetworksPruneReport, ApiError> {
        let mut deleted = Vec::new();
        let records = self.engine.records();
        for n in self.engine.network().list().await {
            if !n.user_defined || records.iter().any(|r| r.network_names().contains(&n.name)) {
                continue;
            }
            if self.engine.network().remove(&n.name).await.is_ok() {
                self.emit(
                    "network",
                    "destroy",
                    &network_id(&n.name),
                    &[("name", &n.name)],
                );
                deleted.push(n.name);
            }
        }
        Ok(NetworksPruneReport {
            networks_deleted: deleted,
        })
    }

    // ------------------------------------------------------------ volumes

    async fn volume_list(&self, filters: Filters) -> Result<VolumeListResponse, ApiError> {
        let volumes = self
            .volumes
            .list()
            .into_iter()
            .filter(|(n, m)| {
                filters.match_any("name", |v| n.contains(v))
                    && filters.match_any("driver", |v| v == "local")
                    && filters.match_labels("label", &m.labels)
                    && filters.match_any("dangling", |v| {
                        (v == "true" || v == "1") == self.volume_in_use(n).is_empty()
                    })
            })
            .map(|(n, m)| self.volume_api(&n, &m, false))
            .collect();
        Ok(VolumeListResponse {
            volumes,
            warnings: Vec::new(),
        })
    }

    async fn volume_create(&self, req: VolumeCreateRequest) -> Result<Volume, ApiError> {
        if !matches!(req.driver.as_str(), "" | "local") {
            // No volume plugins here: any other driver is a missing plugin
            // (404, as dockerd answers for one that is not installed).
            return Err(ApiError::not_found(format!(
                "error looking up volume plugin {0}: plugin \"{0}\" not found: this engine has only the local driver",
                req.driver
            )));
        }
        let options = req.driver_opts.clone().unwrap_or_default();
        crate::volumes::check_options(&options)
            .map_err(|e| ApiError::bad_parameter(format!("create volume: {e}")))?;
        let (name, anonymous) = if req.name.is_empty() {
            (crate::ids::new_id(), true)
        } else {
            (req.name.clone(), false)
        };
        if !crate::ids::valid_name(&name) {
            return Err(ApiError::bad_parameter(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
            )));
        }
        let existed = self.volumes.get(&name).is_some();
        let meta = self
            .volumes
            .ensure(
                &name,
                VolumeMeta {
                    created_at: time::format(time::now_f64() as i64, 0),
                    labels: req.labels.clone().unwrap_or_default(),
                    options,
                    anonymous,
                },
            )
            .map_err(|e| ApiError::internal(format!("create volume {name}: {e}")))?;
        if !existed {
            self.emit("volume", "create", &name, &[("driver", "local")]);
        }
        Ok(self.volume_api(&name, &meta, false))
    }

    async fn volume_inspect(&self, name: &str) -> Result<Volume, ApiError> {
        let meta = self
            .volumes
            .get(name)
            .ok_or_else(|| ApiError::no_such_volume(name))?;
        Ok(self.volume_api(name, &meta, false))
    }

    async fn volume_remove(&self, name: &str, force: bool) -> Result<(), ApiError> {
        if self.volumes.get(name).is_none() {
            if force {
                return Ok(());
            }
            return Err(ApiError::no_such_volume(name));
        }
        let users = self.volume_in_use(name);
        if !users.is_empty() {
            return Err(ApiError::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        self.volumes
            .remove(name)
            .map_err(|e| ApiError::internal(format!("remove volume {name}: {e}")))?;
        self.emit("volume", "destroy", name, &[("driver", "local")]);
        Ok(())
    }

    async fn volumes_prune(&self, filters: Filters) -> Result<VolumesPruneReport, ApiError> {
        let all = filters.get("all").iter().any(|v| v == "true" || v == "1");
        let mut report = VolumesPruneReport::default();
        for (name, meta) in self.volumes.list() {
            if (!all && !meta.anonymous)
                || !filters.match_labels("label", &meta.labels)
                || !self.volume_in_use(&name).is_empty()
            {
                continue;
            }
            let size = self.volumes.size(&name);
            if self.volumes.remove(&name).is_ok() {
                report.space_reclaimed += size;
                report.volumes_deleted.push(name);
            }
        }
        Ok(report)
    }
}

/// Waits (up to 5 s) until the supervisor has reaped an exec, so that its
/// exit code is known when the output ends.
async fn wait_exec(engine: &Engine, exec_id: &str) {
    for _ in 0..250 {
        match engine.exec_state(exec_id).await {
            Ok(s) if s.running => tokio::time::sleep(POLL).await,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_in_dockerds_range() {
        assert!(check_nano_cpus(0, 2).is_ok());
        assert!(check_nano_cpus(10_000_000, 2).is_ok());
        assert!(check_nano_cpus(2_000_000_000, 2).is_ok());
        for bad in [5_000_000, 2_000_000_001, -1] {
            let e = check_nano_cpus(bad, 2).unwrap_err();
            assert_eq!(
                e.message,
                "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
            );
        }
    }

    #[test]
    fn image_reference_filters_glob_the_tag_or_the_repository() {
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busy*", "busybox:bench"));
        assert!(reference_matches("busybox:b*", "busybox:bench"));
        assert!(!reference_matches("busybox:x*", "busybox:bench"));
        assert!(reference_matches(
            "localhost:5000/app",
            "localhost:5000/app:1"
        ));
        // `*` does not cross `/`.
        assert!(!reference_matches("*", "localhost:5000/app:1"));
        assert!(reference_matches("*/app", "localhost:5000/app:1"));
    }

    #[test]
    fn familiar_references() {
        assert_eq!(familiar_ref("busybox"), "busybox:latest");
        assert_eq!(familiar_ref("busybox:1.36"), "busybox:1.36");
        assert_eq!(familiar_ref("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(familiar_ref("sha256:abc"), "sha256:abc");
    }

    #[test]
    fn exec_process_overrides_the_container_process() {
        let d = tempfile::tempdir().unwrap();
        let spec = json!({"args": ["sleep", "60"], "env": ["PATH=/bin", "A=1"], "cwd": "/",
            "terminal": false, "user": {"uid": 0, "gid": 0}, "consoleSize": {"height": 1, "width": 1}});
        let cfg = ExecConfig {
            cmd: vec!["echo".into(), "hi".into()],
            env: Some(vec!["A=2".into(), "B=3".into()]),
            working_dir: "/tmp".into(),
            ..Default::default()
        };
        let p = exec_process(&spec, &cfg, d.path()).unwrap();
        assert_eq!(p["args"], json!(["echo", "hi"]));
        assert_eq!(p["env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(p["cwd"], "/tmp");
        assert!(p.get("consoleSize").is_none());
        assert!(p.get("capabilities").is_none());
        let privileged = ExecConfig {
            privileged: true,
            ..cfg
        };
        let p = exec_process(&spec, &privileged, d.path()).unwrap();
        let all = json!(crate::spec::all_caps());
        assert_eq!(p["capabilities"]["effective"], all);
        assert_eq!(p["capabilities"]["bounding"], all);
    }

    #[test]
    fn event_filters() {
        let ev = container_event(
            &EngineEvent {
                id: "abc123".into(),
                action: "die".into(),
                exit_code: Some(3),
                time: "2024-01-01T00:00:00.5Z".into(),
            },
            "web",
            "busybox",
        );
        assert_eq!(ev.actor.attributes["exitCode"], "3");
        assert_eq!(ev.time_nano, 1_704_067_200_500_000_000);
        let f = Filters::parse(r#"{"container":["web"],"event":["die"]}"#).unwrap();
        assert!(event_matches(&ev, &f));
        let f = Filters::parse(r#"{"type":["image"]}"#).unwrap();
        assert!(!event_matches(&ev, &f));
        let f = Filters::parse(r#"{"image":["busybox:latest"]}"#).unwrap();
        assert!(event_matches(&ev, &f));
    }
}
