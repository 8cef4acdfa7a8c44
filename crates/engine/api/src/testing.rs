//! [`FakeBackend`]: an in-memory [`Backend`] for tests. It records every call
//! (see [`FakeBackend::calls`]) and "runs" containers and execs by
//! interpreting their command with a tiny shell instead of starting processes:
//!
//! | command | behaviour |
//! | --- | --- |
//! | `echo A B` | prints `A B\n` on stdout, exits 0 |
//! | `echo A >&2` (in `sh -c`) | prints `A\n` on stderr |
//! | `cat` | copies stdin to stdout until end of file, exits 0 |
//! | `sleep N` | sleeps N seconds (stop/kill end it: 143/137) |
//! | `exit N` (in `sh -c`) | exits N |
//! | `true` / `false` | exit 0 / 1 |
//! | `sh` alone | waits for stdin to close (none attached: exits 0 at once) |
//! | `sh -c "a; b"` | runs `a` then `b` |
//! | anything else | `fake: X: not found` on stderr, exits 127 |
//!
//! Canned data: the image `busybox:latest` (Cmd `["sh"]`), the networks
//! `bridge`, `host`, `none`. Only for tests: nothing here is persistent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::sync::{broadcast, mpsc, watch};

use crate::backend::*;
use crate::error::ApiError;
use crate::types::*;

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Formats a time as RFC 3339 UTC with nanoseconds, as Docker does.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

#[derive(Clone, Debug)]
enum Live {
    Out(OutputChunk),
    Exit,
}

#[derive(Clone, Debug, Default)]
struct RunState {
    running: bool,
    exits: u64,
    exit_code: i64,
    removed: bool,
}

struct FakeContainer {
    id: String,
    name: String,
    image_id: String,
    config: ContainerConfig,
    host_config: HostConfig,
    created: SystemTime,
    started_at: Option<SystemTime>,
    finished_at: Option<SystemTime>,
    status: &'static str,
    paused: bool,
    pid: i64,
    logs: Vec<(SystemTime, OutputChunk)>,
    live: broadcast::Sender<Live>,
    state: watch::Sender<RunState>,
    kill: Option<watch::Sender<Option<i64>>>,
    stdin_writer: Option<DuplexStream>,
    stdin_reader: Option<DuplexStream>,
    archive: BTreeMap<String, Vec<u8>>,
    ip: String,
}

#[derive(Clone)]
struct FakeImage {
    id: String,
    tags: Vec<String>,
    cmd: Vec<String>,
    created: i64,
    size: i64,
}

struct FakeExec {
    container: String,
    config: ExecConfig,
    started: bool,
    running: bool,
    exit_code: Option<i64>,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, FakeContainer>,
    images: Vec<FakeImage>,
    execs: BTreeMap<String, FakeExec>,
    networks: BTreeMap<String, NetworkResource>,
    volumes: BTreeMap<String, Volume>,
    events: Vec<EventMessage>,
}

/// An in-memory backend that records calls and serves canned data (tests only).
#[derive(Clone)]
pub struct FakeBackend {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    calls: Mutex<Vec<String>>,
    counter: AtomicU64,
    events: broadcast::Sender<EventMessage>,
}

impl Default for FakeBackend {
    fn default() -> Self {
        Self::new()
    }
}

fn hex_id(n: u64, salt: u64) -> String {
    let mut s = String::with_capacity(64);
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    while s.len() < 64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
    }
    s.truncate(64);
    s
}

fn signal_number(s: &str) -> Option<i64> {
    let s = s.trim().trim_start_matches("SIG");
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    Some(match s {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        _ => return None,
    })
}

impl FakeBackend {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        let fb = FakeBackend {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                calls: Mutex::new(Vec::new()),
                counter: AtomicU64::new(1),
                events,
            }),
        };
        {
            let mut st = fb.state();
            st.images.push(FakeImage {
                id: format!("sha256:{}", hex_id(0, 0xb5b)),
                tags: vec!["busybox:latest".into()],
                cmd: vec!["sh".into()],
                created: 1_700_000_000,
                size: 4_261_550,
            });
            for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
                let id = hex_id(fb.next(), 0x4e7);
                let mut n = NetworkResource {
                    name: name.into(),
                    id: id.clone(),
                    created: rfc3339(SystemTime::now()),
                    scope: "local".into(),
                    driver: driver.into(),
                    enable_ipv4: true,
                    ..Default::default()
                };
                n.ipam.driver = "default".into();
                if name == "bridge" {
                    n.ipam.config.push(IpamPool {
                        subnet: "172.17.0.0/16".into(),
                        gateway: "172.17.0.1".into(),
                        ..Default::default()
                    });
                }
                st.networks.insert(id, n);
            }
        }
        fb
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next(&self) -> u64 {
        self.inner.counter.fetch_add(1, Ordering::Relaxed)
    }

    fn record(&self, call: String) {
        self.inner
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    /// The calls made so far, as `method arg…` strings, in order.
    pub fn calls(&self) -> Vec<String> {
        self.inner
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether a call starting with `prefix` was made.
    pub fn called(&self, prefix: &str) -> bool {
        self.calls().iter().any(|c| c.starts_with(prefix))
    }

    /// Adds an image with the given tag and default command; returns its ID.
    pub fn add_image(&self, tag: &str, cmd: &[&str]) -> String {
        let id = format!("sha256:{}", hex_id(self.next(), 0x1a6));
        self.state().images.push(FakeImage {
            id: id.clone(),
            tags: vec![normalize_tag(tag)],
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            created: now_secs(),
            size: 1234,
        });
        id
    }

    fn emit(&self, st: &mut State, kind: &str, action: &str, id: &str, attrs: StringMap) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ev = EventMessage {
            kind: kind.into(),
            action: action.into(),
            actor: EventActor {
                id: id.into(),
                attributes: attrs,
            },
            scope: "local".into(),
            time: now.as_secs() as i64,
            time_nano: now.as_nanos() as i64,
            status: Some(action.into()),
            id: Some(id.into()),
            from: None,
        };
        st.events.push(ev.clone());
        let _ = self.inner.events.send(ev);
    }

    fn find_image<'a>(st: &'a State, name: &str) -> Option<&'a FakeImage> {
        let tag = normalize_tag(name);
        st.images.iter().find(|i| {
            i.tags.contains(&tag)
                || i.id == name
                || (name.len() >= 4 && i.id.trim_start_matches("sha256:").starts_with(name))
        })
    }

    fn resolve(st: &State, id: &str) -> Result<String, ApiError> {
        let key = id.trim_start_matches('/');
        if st.containers.contains_key(key) {
            return Ok(key.to_string());
        }
        if let Some(c) = st.containers.values().find(|c| c.name == key) {
            return Ok(c.id.clone());
        }
        let m: Vec<_> = st
            .containers
            .keys()
            .filter(|k| !key.is_empty() && k.starts_with(key))
            .collect();
        match m.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ApiError::no_such_container(id)),
            _ => Err(ApiError::bad_parameter(format!(
                "multiple IDs found with provided prefix: {id}"
            ))),
        }
    }

    fn summary(&self, c: &FakeContainer, st: &State) -> ContainerSummary {
        let image = Self::image_name(st, &c.image_id, &c.config.image);
        let status = match c.status {
            "running" if c.paused => "Up (Paused)".to_string(),
            "running" => "Up Less than a second".to_string(),
            "exited" => format!(
                "Exited ({}) Less than a second ago",
                c.state.borrow().exit_code
            ),
            _ => "Created".to_string(),
        };
        let mut networks = BTreeMap::new();
        networks.insert("bridge".to_string(), self.endpoint(c));
        ContainerSummary {
            id: c.id.clone(),
            names: vec![format!("/{}", c.name)],
            image,
            image_id: c.image_id.clone(),
            command: self.command(c, st).join(" "),
            created: c
                .created
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs() as i64,
            labels: c.config.labels.clone().unwrap_or_default(),
            state: if c.paused { "paused" } else { c.status }.into(),
            status,
            host_config: SummaryHostConfig {
                network_mode: "bridge".into(),
            },
            network_settings: SummaryNetworkSettings { networks },
            ..Default::default()
        }
    }

    fn image_name(_st: &State, _id: &str, requested: &str) -> String {
        requested.to_string()
    }

    fn endpoint(&self, c: &FakeContainer) -> EndpointSettings {
        EndpointSettings {
            network_id: "bridge".into(),
            endpoint_id: hex_id(7, c.id.len() as u64),
            gateway: "172.17.0.1".into(),
            ip_address: c.ip.clone(),
            ip_prefix_len: 16,
            mac_address: "02:42:ac:11:00:02".into(),
            ..Default::default()
        }
    }

    fn command(&self, c: &FakeContainer, st: &State) -> Vec<String> {
        let mut cmd = c.config.entrypoint.clone().unwrap_or_default();
        match &c.config.cmd {
            Some(x) if !x.is_empty() => cmd.extend(x.iter().cloned()),
            _ if cmd.is_empty() => {
                if let Some(i) = Self::find_image(st, &c.config.image) {
                    cmd.extend(i.cmd.iter().cloned())
                }
            }
            _ => {}
        }
        cmd
    }

    /// Runs the container's fake program; called with the state lock released.
    fn launch(&self, id: String, cmd: Vec<String>, stdin: Option<DuplexStream>) {
        let (kill_tx, kill_rx) = watch::channel(None);
        let live;
        {
            let mut st = self.state();
            let Some(c) = st.containers.get_mut(&id) else {
                return;
            };
            c.kill = Some(kill_tx);
            live = c.live.clone();
        }
        let me = self.clone();
        let id2 = id.clone();
        tokio::spawn(async move {
            let me2 = me.clone();
            let id3 = id2.clone();
            let emit = move |chunk: OutputChunk| {
                let mut st = me2.state();
                if let Some(c) = st.containers.get_mut(&id3) {
                    c.logs.push((SystemTime::now(), chunk.clone()));
                }
                let _ = live.send(Live::Out(chunk));
            };
            let code = run_program(cmd, stdin, &emit, kill_rx).await;
            me.finish(&id2, code);
        });
    }

    fn finish(&self, id: &str, code: i64) {
        let mut st = self.state();
        let auto_remove;
        {
            let Some(c) = st.containers.get_mut(id) else {
                return;
            };
            c.status = "exited";
            c.paused = false;
            c.pid = 0;
            c.finished_at = Some(SystemTime::now());
            c.kill = None;
            let _ = c.live.send(Live::Exit);
            c.state.send_modify(|s| {
                s.running = false;
                s.exits += 1;
                s.exit_code = code;
            });
            auto_remove = c.host_config.auto_remove;
        }
        let mut attrs = StringMap::new();
        attrs.insert("exitCode".into(), code.to_string());
        self.emit(&mut st, "container", "die", id, attrs);
        if auto_remove {
            if let Some(c) = st.containers.remove(id) {
                c.state.send_modify(|s| s.removed = true);
                self.emit(&mut st, "container", "destroy", id, StringMap::new());
            }
        }
    }

    async fn signal_and_wait(&self, id: &str, code: i64) -> Result<(), ApiError> {
        let mut rx = {
            let st = self.state();
            let c = st
                .containers
                .get(id)
                .ok_or_else(|| ApiError::no_such_container(id))?;
            if let Some(k) = &c.kill {
                let _ = k.send(Some(code));
            }
            c.state.subscribe()
        };
        let _ = rx.wait_for(|s| !s.running).await;
        Ok(())
    }
}

fn normalize_tag(name: &str) -> String {
    let name = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name);
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Runs a fake command; returns its exit code.
async fn run_program(
    cmd: Vec<String>,
    mut stdin: Option<DuplexStream>,
    emit: &(dyn Fn(OutputChunk) + Send + Sync),
    mut kill: watch::Receiver<Option<i64>>,
) -> i64 {
    let script: Vec<Vec<String>> = match cmd.as_slice() {
        [sh, c, s, ..] if (sh == "sh" || sh == "/bin/sh") && c == "-c" => s
            .split(';')
            .map(|p| p.split_whitespace().map(String::from).collect::<Vec<_>>())
            .filter(|p| !p.is_empty())
            .collect(),
        _ => vec![cmd],
    };
    let mut code = 0;
    for words in script {
        let Some(first) = words.first() else { continue };
        code = match first.as_str() {
            "echo" => {
                let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
                let to_err = args.last() == Some(&">&2");
                if to_err {
                    args.pop();
                }
                let text = format!(
                    "{}\n",
                    args.join(" ").trim_matches(|c| c == '"' || c == '\'')
                );
                emit(if to_err {
                    OutputChunk::stderr(text)
                } else {
                    OutputChunk::stdout(text)
                });
                0
            }
            "true" => 0,
            "false" => 1,
            "exit" => return words.get(1).and_then(|n| n.parse().ok()).unwrap_or(0),
            "sleep" => {
                let secs: f64 = words.get(1).and_then(|n| n.parse().ok()).unwrap_or(0.0);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs_f64(secs)) => 0,
                    r = kill.wait_for(Option::is_some) => return r.map(|v| v.unwrap_or(137)).unwrap_or(137),
                }
            }
            "cat" | "sh" | "/bin/sh" => {
                let echo = first == "cat";
                let Some(input) = stdin.as_mut() else {
                    continue;
                };
                let mut buf = vec![0u8; 8192];
                loop {
                    tokio::select! {
                        r = input.read(&mut buf) => match r {
                            Ok(0) | Err(_) => break,
                            Ok(n) => if echo { emit(OutputChunk::stdout(Bytes::copy_from_slice(&buf[..n]))) },
                        },
                        r = kill.wait_for(Option::is_some) => return r.map(|v| v.unwrap_or(137)).unwrap_or(137),
                    }
                }
                0
            }
            other => {
                emit(OutputChunk::stderr(format!("fake: {other}: not found\n")));
                127
            }
        };
    }
    code
}

fn output_stream(
    rx: broadcast::Receiver<Live>,
    stdout: bool,
    stderr: bool,
    replay: Vec<OutputChunk>,
) -> OutputStream {
    let replay = futures::stream::iter(replay.into_iter().map(Ok));
    let live = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(Live::Out(c)) => return Some((Ok(c), rx)),
                Ok(Live::Exit) | Err(broadcast::error::RecvError::Closed) => return None,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
            }
        }
    });
    replay
        .chain(live)
        .filter(move |r| {
            let keep = match r {
                Ok(c) => {
                    (c.kind == StreamKind::Stdout && stdout)
                        || (c.kind == StreamKind::Stderr && stderr)
                }
                Err(_) => true,
            };
            futures::future::ready(keep)
        })
        .boxed()
}

fn progress(items: Vec<JsonMessage>) -> ProgressStream {
    futures::stream::iter(items).boxed()
}

async fn drain(mut body: ByteStream) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    while let Some(c) = body.next().await {
        out.extend_from_slice(&c.map_err(|e| ApiError::bad_parameter(e.to_string()))?);
    }
    Ok(out)
}

#[async_trait]
impl Backend for FakeBackend {
    async fn version(&self) -> Result<SystemVersion, ApiError> {
        self.record("version".into());
        Ok(SystemVersion {
            platform: PlatformName {
                name: "strato (fake)".into(),
            },
            components: vec![ComponentVersion {
                name: "Engine".into(),
                version: "0.1.0".into(),
                details: Some(
                    [
                        ("ApiVersion".to_string(), crate::API_VERSION.to_string()),
                        ("MinAPIVersion".into(), crate::MIN_API_VERSION.into()),
                        ("GitCommit".into(), "fake".into()),
                        ("GoVersion".into(), "n/a".into()),
                        ("Os".into(), "linux".into()),
                        ("Arch".into(), crate::server::go_arch().into()),
                        ("KernelVersion".into(), "6.0.0-fake".into()),
                        (
                            "BuildTime".into(),
                            "2026-01-01T00:00:00.000000000+00:00".into(),
                        ),
                    ]
                    .into_iter()
                    .collect(),
                ),
            }],
            version: "0.1.0".into(),
            git_commit: "fake".into(),
            go_version: "n/a".into(),
            kernel_version: "6.0.0-fake".into(),
            build_time: "2026-01-01T00:00:00.000000000+00:00".into(),
            ..Default::default()
        })
    }

    async fn info(&self) -> Result<SystemInfo, ApiError> {
        self.record("info".into());
        let st = self.state();
        let running = st
            .containers
            .values()
            .filter(|c| c.status == "running")
            .count() as i64;
        let paused = st.containers.values().filter(|c| c.paused).count() as i64;
        let mut runtimes = BTreeMap::new();
        runtimes.insert(
            "strato".to_string(),
            RuntimeInfo {
                path: "strato".into(),
                runtime_args: None,
            },
        );
        Ok(SystemInfo {
            id: "FAKE:0000".into(),
            containers: st.containers.len() as i64,
            containers_running: running - paused,
            containers_paused: paused,
            containers_stopped: st.containers.len() as i64 - running,
            images: st.images.len() as i64,
            driver_status: vec![["Backing Filesystem".into(), "extfs".into()]],
            kernel_version: "6.0.0-fake".into(),
            operating_system: "Fake Linux".into(),
            os_version: "1".into(),
            ncpu: 2,
            mem_total: 1 << 30,
            docker_root_dir: "/var/lib/strato".into(),
            name: "fakehost".into(),
            server_version: "0.1.0".into(),
            system_time: rfc3339(SystemTime::now()),
            runtimes,
            ..Default::default()
        })
    }

    async fn events(&self, opts: EventsOptions) -> Result<EventStream, ApiError> {
        self.record(format!(
            "events since={:?} until={:?}",
            opts.since, opts.until
        ));
        let rx = self.inner.events.subscribe();
        let past: Vec<EventMessage> = self
            .state()
            .events
            .iter()
            .filter(|e| opts.since.is_some_and(|s| e.time as f64 >= s.floor()))
            .filter(|e| opts.until.is_none_or(|u| e.time as f64 <= u))
            .cloned()
            .collect();
        let filters = opts.filters.clone();
        let keep = move |e: &EventMessage| {
            filters.match_any("type", |t| t == e.kind)
                && filters.match_any("event", |a| a == e.action)
                && filters.match_any("container", |c| {
                    e.kind != "container" || e.actor.id.starts_with(c)
                })
        };
        let keep2 = keep.clone();
        let until = opts.until;
        let live = futures::stream::unfold(rx, move |mut rx| async move {
            loop {
                let r = match until {
                    Some(u) => {
                        let left = u - SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_secs_f64();
                        if left <= 0.0 {
                            return None;
                        }
                        match tokio::time::timeout(Duration::from_secs_f64(left), rx.recv()).await {
                            Ok(r) => r,
                            Err(_) => return None,
                        }
                    }
                    None => rx.recv().await,
                };
                match r {
                    Ok(e) => return Some((e, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        })
        .filter(move |e| futures::future::ready(keep2(e)));
        Ok(futures::stream::iter(past.into_iter().filter(keep))
            .chain(live)
            .boxed())
    }

    async fn system_df(&self) -> Result<DiskUsage, ApiError> {
        self.record("system_df".into());
        Ok(DiskUsage::default())
    }

    async fn auth(&self, auth: AuthConfig) -> Result<AuthResponse, ApiError> {
        self.record(format!("auth {}", auth.username));
        if auth.password == "wrong" {
            return Err(ApiError::unauthorized(
                "login attempt failed: incorrect username or password",
            ));
        }
        Ok(AuthResponse::default())
    }

    async fn container_create(
        &self,
        name: Option<String>,
        platform: Option<String>,
        config: ContainerCreateConfig,
    ) -> Result<CreateResponse, ApiError> {
        self.record(format!(
            "container_create name={} image={} platform={}",
            name.as_deref().unwrap_or(""),
            config.config.image,
            platform.as_deref().unwrap_or("")
        ));
        let n = self.next();
        let id = hex_id(n, 0xc0);
        let mut st = self.state();
        let image = Self::find_image(&st, &config.config.image)
            .ok_or_else(|| ApiError::no_such_image(&normalize_tag(&config.config.image)))?
            .id
            .clone();
        let name = name.unwrap_or_else(|| format!("fake_{n}"));
        if let Some(other) = st.containers.values().find(|c| c.name == name) {
            return Err(ApiError::conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        let (live, _) = broadcast::channel(1024);
        let (state, _) = watch::channel(RunState::default());
        let (w, r) = if config.config.open_stdin {
            let (a, b) = tokio::io::duplex(64 * 1024);
            (Some(a), Some(b))
        } else {
            (None, None)
        };
        let c = FakeContainer {
            id: id.clone(),
            name,
            image_id: image,
            config: config.config,
            host_config: config.host_config,
            created: SystemTime::now(),
            started_at: None,
            finished_at: None,
            status: "created",
            paused: false,
            pid: 0,
            logs: Vec::new(),
            live,
            state,
            kill: None,
            stdin_writer: w,
            stdin_reader: r,
            archive: BTreeMap::new(),
            ip: format!("172.17.0.{}", 2 + n % 250),
        };
        st.containers.insert(id.clone(), c);
        self.emit(&mut st, "container", "create", &id, StringMap::new());
        Ok(CreateResponse {
            id,
            warnings: Vec::new(),
        })
    }

    async fn container_start(&self, id: &str) -> Result<(), ApiError> {
        self.record(format!("container_start {id}"));
        let (key, cmd, stdin) = {
            let mut st = self.state();
            let key = Self::resolve(&st, id)?;
            let cmd = self.command(&st.containers[&key], &st);
            let c = st.containers.get_mut(&key).expect("resolved");
            if c.status == "running" {
                return Err(ApiError::not_modified());
            }
            c.status = "running";
            c.started_at = Some(SystemTime::now());
            c.finished_at = None;
            c.pid = 4000 + (self.next() % 1000) as i64;
            c.state.send_modify(|s| s.running = true);
            let stdin = c.stdin_reader.take();
            self.emit(&mut st, "container", "start", &key, StringMap::new());
            (key, cmd, stdin)
        };
        self.launch(key, cmd, stdin);
        Ok(())
    }

    async fn container_stop(&self, id: &str, opts: StopOptions) -> Result<(), ApiError> {
        self.record(format!(
            "container_stop {id} signal={} t={:?}",
            opts.signal.as_deref().unwrap_or(""),
            opts.timeout
        ));
        let key = {
            let st = self.state();
            let key = Self::resolve(&st, id)?;
            if st.containers[&key].status != "running" {
                return Err(ApiError::not_modified());
            }
            key
        };
        self.signal_and_wait(&key, 143).await
    }

    async fn container_kill(&self, id: &str, signal: Option<String>) -> Result<(), ApiError> {
        self.record(format!(
            "container_kill {id} {}",
            signal.as_deref().unwrap_or("")
        ));
        let sig = match &signal {
            Some(s) => signal_number(s)
                .ok_or_else(|| ApiError::bad_parameter(format!("invalid signal: {s}")))?,
            None => 9,
        };
        let key = {
            let st = self.state();
            let key = Self::resolve(&st, id)?;
            if st.containers[&key].status != "running" {
                return Err(ApiError::conflict(format!(
                    "cannot kill container: {id}: container {key} is not running"
                )));
            }
            key
        };
        self.signal_and_wait(&key, 128 + sig).await
    }

    async fn container_restart(&self, id: &str, opts: StopOptions) -> Result<(), ApiError> {
        self.record(format!("container_restart {id} t={:?}", opts.timeout));
        let key = Self::resolve(&self.state(), id)?;
        let running = self.state().containers[&key].status == "running";
        if running {
            self.signal_and_wait(&key, 143).await?;
        }
        self.container_start(&key).await
    }

    async fn container_wait(
        &self,
        id: &str,
        condition: WaitCondition,
    ) -> Result<WaitFuture, ApiError> {
        self.record(format!("container_wait {id} {condition:?}"));
        let st = self.state();
        let key = Self::resolve(&st, id)?;
        let mut rx = st.containers[&key].state.subscribe();
        let now = rx.borrow().clone();
        Ok(Box::pin(async move {
            let done = |s: &RunState| match condition {
                WaitCondition::NotRunning => !s.running,
                WaitCondition::NextExit => s.exits > now.exits,
                WaitCondition::Removed => s.removed,
            };
            let waited = rx.wait_for(done).await.map(|s| s.clone());
            // Err: the sender is gone, the container was removed.
            let last = waited.unwrap_or_else(|_| rx.borrow().clone());
            Ok(WaitResponse {
                status_code: last.exit_code,
                error: None,
            })
        }))
    }

    async fn container_remove(&self, id: &str, opts: RemoveOptions) -> Result<(), ApiError> {
        self.record(format!(
            "container_remove {id} force={} v={}",
            opts.force, opts.volumes
        ));
        let key = Self::resolve(&self.state(), id)?;
        let running = self.state().containers[&key].status == "running";
        if running {
            if !opts.force {
                return Err(ApiError::conflict(format!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    self.state().containers[&key].name
                )));
            }
            self.signal_and_wait(&key, 137).await?;
        }
        let mut st = self.state();
        if let Some(c) = st.containers.remove(&key) {
            c.state.send_modify(|s| s.removed = true);
            self.emit(&mut st, "container", "destroy", &key, StringMap::new());
        }
        Ok(())
    }

    async fn container_rename(&self, id: &str, new_name: &str) -> Result<(), ApiError> {
        self.record(format!("container_rename {id} {new_name}"));
        let mut st = self.state();
        let key = Self::resolve(&st, id)?;
        if let Some(o) = st.containers.values().find(|c| c.name == new_name) {
            return Err(ApiError::conflict(format!(
                "Error when allocating new name: Conflict. The container name \"/{new_name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                o.id
            )));
        }
        st.containers.get_mut(&key).expect("resolved").name = new_name.into();
        Ok(())
    }

    async fn container_pause(&self, id: &str) -> Result<(), ApiError> {
        self.record(format!("container_pause {id}"));
        let mut st = self.state();
        let key = Self::resolve(&st, id)?;
        let c = st.containers.get_mut(&key).expect("resolved");
        if c.status != "running" {
            return Err(ApiError::conflict(format!(
                "container {key} is not running"
            )));
        }
        if c.paused {
            return Err(ApiError::conflict(format!(
                "container {key} is already paused"
            )));
        }
        c.paused = true;
        Ok(())
    }

    async fn container_unpause(&self, id: &str) -> Result<(), ApiError> {
        self.record(format!("container_unpause {id}"));
        let mut st = self.state();
        let key = Self::resolve(&st, id)?;
        let c = st.containers.get_mut(&key).expect("resolved");
        if !c.paused {
            return Err(ApiError::conflict(format!("container {key} is not paused")));
        }
        c.paused = false;
        Ok(())
    }

    async fn container_list(
        &self,
        opts: ContainerListOptions,
    ) -> Result<Vec<ContainerSummary>, ApiError> {
        self.record(format!(
            "container_list all={} limit={:?}",
            opts.all, opts.limit
        ));
        let st = self.state();
        let f = &opts.filters;
        let mut v: Vec<&FakeContainer> = st
            .containers
            .values()
            .filter(|c| {
                opts.all || opts.limit.is_some() || c.status == "running" || f.contains("status")
            })
            .filter(|c| f.match_any("id", |p| c.id.starts_with(p)))
            .filter(|c| f.match_any("name", |p| c.name.contains(p.trim_start_matches('/'))))
            .filter(|c| f.match_labels("label", &c.config.labels.clone().unwrap_or_default()))
            .filter(|c| {
                f.match_any("status", |s| {
                    s == if c.paused { "paused" } else { c.status }
                })
            })
            .filter(|c| {
                f.match_any("ancestor", |a| {
                    normalize_tag(a) == normalize_tag(&c.config.image) || c.image_id.contains(a)
                })
            })
            .collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.created));
        if let Some(l) = opts.limit {
            v.truncate(l);
        }
        Ok(v.into_iter().map(|c| self.summary(c, &st)).collect())
    }

    async fn container_inspect(&self, id: &str, size: bool) -> Result<ContainerInspect, ApiError> {
        self.record(format!("container_inspect {id}"));
        let st = self.state();
        let key = Self::resolve(&st, id)?;
        let c = &st.containers[&key];
        let cmd = self.command(c, &st);
        let rs = c.state.borrow().clone();
        let mut networks = BTreeMap::new();
        networks.insert("bridge".to_string(), self.endpoint(c));
        let mut config = c.config.clone();
        if config.cmd.is_none() {
            config.cmd = Some(cmd.clone());
        }
        Ok(ContainerInspect {
            id: c.id.clone(),
            created: rfc3339(c.created),
            path: cmd.first().cloned().unwrap_or_default(),
            args: cmd.iter().skip(1).cloned().collect(),
            state: ContainerState {
                status: if c.paused { "paused" } else { c.status }.into(),
                running: c.status == "running",
                paused: c.paused,
                pid: c.pid,
                exit_code: rs.exit_code,
                started_at: c
                    .started_at
                    .map(rfc3339)
                    .unwrap_or_else(|| ZERO_TIME.into()),
                finished_at: c
                    .finished_at
                    .map(rfc3339)
                    .unwrap_or_else(|| ZERO_TIME.into()),
                ..Default::default()
            },
            image: c.image_id.clone(),
            log_path: format!("/var/lib/strato/containers/{key}/{key}-json.log"),
            name: format!("/{}", c.name),
            driver: "overlay2".into(),
            platform: "linux".into(),
            host_config: c.host_config.clone(),
            size_rw: size.then_some(0),
            size_root_fs: size.then_some(4_261_550),
            config,
            network_settings: NetworkSettings {
                ip_address: c.ip.clone(),
                gateway: "172.17.0.1".into(),
                ip_prefix_len: 16,
                mac_address: "02:42:ac:11:00:02".into(),
                networks,
                ..Default::default()
            },
            ..Default::default()
        })
    }

    async fn container_logs(&self, id: &str, opts: LogsOptions) -> Result<LogStream, ApiError> {
        self.record(format!(
            "container_logs {id} follow={} tail={:?}",
            opts.follow, opts.tail
        ));
        let st = self.state();
        let key = Self::resolve(&st, id)?;
        let c = &st.containers[&key];
        let rx = c.live.subscribe();
        let mut lines: Vec<OutputChunk> = c
            .logs
            .iter()
            .filter(|(t, _)| {
                let s = t
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                opts.since.is_none_or(|x| s >= x) && opts.until.is_none_or(|x| s < x)
            })
            .filter(|(_, c)| {
                (c.kind == StreamKind::Stdout && opts.stdout)
                    || (c.kind == StreamKind::Stderr && opts.stderr)
            })
            .map(|(t, c)| {
                if opts.timestamps {
                    let mut d = format!("{} ", rfc3339(*t)).into_bytes();
                    d.extend_from_slice(&c.data);
                    OutputChunk {
                        kind: c.kind,
                        data: d.into(),
                    }
                } else {
                    c.clone()
                }
            })
            .collect();
        if let Some(t) = opts.tail {
            let skip = lines.len().saturating_sub(t);
            lines.drain(..skip);
        }
        let tty = c.config.tty;
        let output = if opts.follow && c.status == "running" {
            output_stream(rx, opts.stdout, opts.stderr, lines)
        } else {
            futures::stream::iter(lines.into_iter().map(Ok)).boxed()
        };
        Ok(LogStream { tty, output })
    }

    async fn container_attach(
        &self,
        id: &str,
        opts: AttachOptions,
    ) -> Result<AttachSession, ApiError> {
        self.record(format!(
            "container_attach {id} stdin={} stdout={} stderr={}",
            opts.stdin, opts.stdout, opts.stderr
        ));
        let mut st = self.state();
        let key = Self::resolve(&st, id)?;
        let c = st.containers.get_mut(&key).expect("resolved");
        let rx = c.live.subscribe();
        let replay = if opts.logs {
            c.logs.iter().map(|(_, c)| c.clone()).collect()
        } else {
            Vec::new()
        };
        let stdin = if opts.stdin {
            c.stdin_writer.take().map(|w| Box::pin(w) as StdinWriter)
        } else {
            None
        };
        let output = if opts.stream && c.status != "exited" {
            output_stream(rx, opts.stdout, opts.stderr, replay)
        } else {
            futures::stream::iter(replay.into_iter().map(Ok)).boxed()
        };
        Ok(AttachSession {
            tty: c.config.tty,
            stdin,
            output,
            detach_keys: None,
        })
    }

    async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<(), ApiError> {
        self.record(format!("container_resize {id} {height}x{width}"));
        Self::resolve(&self.state(), id)?;
        Ok(())
    }

    async fn container_top(
        &self,
        id: &str,
        ps_args: Option<String>,
    ) -> Result<TopResponse, ApiError> {
        self.record(format!(
            "container_top {id} {}",
            ps_args.unwrap_or_default()
        ));
        let st = self.state();
        let key = Self::resolve(&st, id)?;
        let c = &st.containers[&key];
        if c.status != "running" {
            return Err(ApiError::conflict(format!(
                "container {key} is not running"
            )));
        }
        Ok(TopResponse {
            titles: ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
                .map(String::from)
                .to_vec(),
            processes: vec![vec![
                "root".into(),
                c.pid.to_string(),
                "1".into(),
                "0".into(),
                "00:00".into(),
                "?".into(),
                "00:00:00".into(),
                self.command(c, &st).join(" "),
            ]],
        })
    }

    async fn container_stats(
        &self,
        id: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<StatsStream, ApiError> {
        self.record(format!(
            "container_stats {id} stream={stream} one_shot={one_shot}"
        ));
        let st = self.state();
        let key = Self::resolve(&st, id)?;
        let name = format!("/{}", st.containers[&key].name);
        let sample = move |i: u64| StatsResponse {
            read: rfc3339(SystemTime::now()),
            preread: ZERO_TIME.into(),
            pids_stats: PidsStats {
                current: 1,
                limit: None,
            },
            num_procs: 0,
            cpu_stats: CpuStats {
                cpu_usage: CpuUsage {
                    total_usage: 1_000_000 * (i + 2),
                    percpu_usage: None,
                    usage_in_kernelmode: 100_000,
                    usage_in_usermode: 900_000,
                },
                system_cpu_usage: 10_000_000 * (i + 2),
                online_cpus: 2,
                throttling_data: ThrottlingData::default(),
            },
            precpu_stats: CpuStats {
                cpu_usage: CpuUsage {
                    total_usage: 1_000_000 * (i + 1),
                    ..Default::default()
                },
                system_cpu_usage: 10_000_000 * (i + 1),
                online_cpus: 2,
                ..Default::default()
            },
            memory_stats: MemoryStats {
                usage: 1 << 20,
                max_usage: 2 << 20,
                limit: 1 << 30,
                ..Default::default()
            },
            name: name.clone(),
            id: key.clone(),
            ..Default::default()
        };
        if !stream {
            return Ok(futures::stream::iter([Ok(sample(0))]).boxed());
        }
        Ok(futures::stream::unfold(0u64, move |i| {
            let s = sample(i);
            async move {
                if i > 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Some((Ok(s), i + 1))
            }
        })
        .boxed())
    }

    async fn container_archive_stat(&self, id: &str, path: &str) -> Result<PathStat, ApiError> {
        self.record(format!("container_archive_stat {id} {path}"));
        let st = self.state();
        let key = Self::resolve(&st, id)?;
        fake_stat(&st.containers[&key], path)
    }

    async fn container_archive_get(
        &self,
        id: &str,
        path: &str,
    ) -> Result<(PathStat, ByteStream), ApiError> {
        self.record(format!("container_archive_get {id} {path}"));
        let st = self.state();
        let key = Self::resolve(&st, id)?;
        let c = &st.containers[&key];
        let stat = fake_stat(c, path)?;
        let data = c.archive.get(path).cloned().unwrap_or_default();
        Ok((stat, futures::stream::iter([Ok(Bytes::from(data))]).boxed()))
    }

    async fn container_archive_put(
        &self,
        id: &str,
        opts: ArchivePutOptions,
        body: ByteStream,
    ) -> Result<(), ApiError> {
        let key = Self::resolve(&self.state(), id)?;
        let data = drain(body).await?;
        self.record(format!(
            "container_archive_put {id} {} bytes={}",
            opts.path,
            data.len()
        ));
        if let Some(c) = self.state().containers.get_mut(&key) {
            c.archive.insert(opts.path, data);
        }
        Ok(())
    }

    async fn containers_prune(&self, filters: Filters) -> Result<ContainersPruneReport, ApiError> {
        self.record("containers_prune".into());
        let mut st = self.state();
        let dead: Vec<String> = st
            .containers
            .values()
            .filter(|c| c.status != "running")
            .filter(|c| filters.match_labels("label", &c.config.labels.clone().unwrap_or_default()))
            .map(|c| c.id.clone())
            .collect();
        for id in &dead {
            if let Some(c) = st.containers.remove(id) {
                c.state.send_modify(|s| s.removed = true);
            }
        }
        Ok(ContainersPruneReport {
            containers_deleted: dead,
            space_reclaimed: 0,
        })
    }

    async fn exec_create(&self, id: &str, config: ExecConfig) -> Result<IdResponse, ApiError> {
        self.record(format!("exec_create {id} {}", config.cmd.join(" ")));
        let mut st = self.state();
        let key = Self::resolve(&st, id)?;
        if st.containers[&key].status != "running" {
            return Err(ApiError::conflict(format!(
                "container {key} is not running"
            )));
        }
        let eid = hex_id(self.next(), 0xe0);
        st.execs.insert(
            eid.clone(),
            FakeExec {
                container: key,
                config,
                started: false,
                running: false,
                exit_code: None,
            },
        );
        Ok(IdResponse { id: eid })
    }

    async fn exec_start(
        &self,
        exec_id: &str,
        opts: ExecStartConfig,
    ) -> Result<AttachSession, ApiError> {
        self.record(format!("exec_start {exec_id} detach={}", opts.detach));
        let (cmd, tty, attach_stdin) = {
            let mut st = self.state();
            let e = st
                .execs
                .get_mut(exec_id)
                .ok_or_else(|| ApiError::no_such_exec(exec_id))?;
            if e.started {
                return Err(ApiError::conflict(format!(
                    "exec {exec_id} has already been started"
                )));
            }
            e.started = true;
            e.running = true;
            (
                e.config.cmd.clone(),
                e.config.tty || opts.tty,
                e.config.attach_stdin,
            )
        };
        let (stdin_w, stdin_r) = if attach_stdin && !opts.detach {
            let (a, b) = tokio::io::duplex(64 * 1024);
            (Some(Box::pin(a) as StdinWriter), Some(b))
        } else {
            (None, None)
        };
        let (tx, rx) = mpsc::unbounded_channel::<OutputChunk>();
        let (_kill_tx, kill_rx) = watch::channel(None);
        let me = self.clone();
        let eid = exec_id.to_string();
        tokio::spawn(async move {
            let _keep = _kill_tx;
            let emit = move |c: OutputChunk| {
                let _ = tx.send(c);
            };
            let code = run_program(cmd, stdin_r, &emit, kill_rx).await;
            let mut st = me.state();
            if let Some(e) = st.execs.get_mut(&eid) {
                e.running = false;
                e.exit_code = Some(code);
            }
        });
        let output =
            futures::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|c| (Ok(c), rx)) },
            )
            .boxed();
        Ok(AttachSession {
            tty,
            stdin: stdin_w,
            output,
            detach_keys: None,
        })
    }

    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect, ApiError> {
        self.record(format!("exec_inspect {exec_id}"));
        let st = self.state();
        let e = st
            .execs
            .get(exec_id)
            .ok_or_else(|| ApiError::no_such_exec(exec_id))?;
        Ok(ExecInspect {
            id: exec_id.into(),
            running: e.running,
            exit_code: e.exit_code,
            process_config: ProcessConfig {
                tty: e.config.tty,
                entrypoint: e.config.cmd.first().cloned().unwrap_or_default(),
                arguments: e.config.cmd.iter().skip(1).cloned().collect(),
                privileged: e.config.privileged,
                user: e.config.user.clone(),
            },
            open_stdin: e.config.attach_stdin,
            open_stdout: e.config.attach_stdout,
            open_stderr: e.config.attach_stderr,
            container_id: e.container.clone(),
            pid: if e.running { 4242 } else { 0 },
            ..Default::default()
        })
    }

    async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<(), ApiError> {
        self.record(format!("exec_resize {exec_id} {height}x{width}"));
        if !self.state().execs.contains_key(exec_id) {
            return Err(ApiError::no_such_exec(exec_id));
        }
        Ok(())
    }

    async fn image_list(&self, opts: ImageListOptions) -> Result<Vec<ImageSummary>, ApiError> {
        self.record(format!("image_list all={}", opts.all));
        let st = self.state();
        Ok(st
            .images
            .iter()
            .filter(|i| {
                opts.filters.match_any("reference", |r| {
                    i.tags
                        .iter()
                        .any(|t| t == &normalize_tag(r) || t.starts_with(&format!("{r}:")))
                })
            })
            .map(|i| ImageSummary {
                id: i.id.clone(),
                repo_tags: i.tags.clone(),
                created: i.created,
                size: i.size,
                shared_size: -1,
                containers: -1,
                ..Default::default()
            })
            .collect())
    }

    async fn image_inspect(&self, name: &str) -> Result<ImageInspect, ApiError> {
        self.record(format!("image_inspect {name}"));
        let st = self.state();
        let i = Self::find_image(&st, name).ok_or_else(|| ApiError::no_such_image(name))?;
        Ok(ImageInspect {
            id: i.id.clone(),
            repo_tags: i.tags.clone(),
            created: rfc3339(UNIX_EPOCH + Duration::from_secs(i.created as u64)),
            config: ContainerConfig {
                cmd: Some(i.cmd.clone()),
                env: Some(vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ]),
                ..Default::default()
            },
            architecture: crate::server::go_arch().into(),
            os: "linux".into(),
            size: i.size,
            graph_driver: GraphDriver {
                name: "overlay2".into(),
                data: StringMap::new(),
            },
            root_fs: RootFs {
                kind: "layers".into(),
                layers: vec![format!("sha256:{}", hex_id(1, 0x1a))],
            },
            ..Default::default()
        })
    }

    async fn image_history(&self, name: &str) -> Result<Vec<HistoryItem>, ApiError> {
        self.record(format!("image_history {name}"));
        let st = self.state();
        let i = Self::find_image(&st, name).ok_or_else(|| ApiError::no_such_image(name))?;
        Ok(vec![
            HistoryItem {
                id: i.id.clone(),
                created: i.created,
                created_by: format!("CMD {:?}", i.cmd),
                tags: i.tags.clone(),
                size: 0,
                comment: String::new(),
            },
            HistoryItem {
                id: "<missing>".into(),
                created: i.created,
                created_by: "ADD file:fake in /".into(),
                tags: Vec::new(),
                size: i.size,
                comment: String::new(),
            },
        ])
    }

    async fn image_tag(&self, name: &str, repo: &str, tag: &str) -> Result<(), ApiError> {
        self.record(format!("image_tag {name} {repo} {tag}"));
        let mut st = self.state();
        let id = Self::find_image(&st, name)
            .ok_or_else(|| ApiError::no_such_image(name))?
            .id
            .clone();
        let new = normalize_tag(&format!(
            "{repo}:{}",
            if tag.is_empty() { "latest" } else { tag }
        ));
        for i in st.images.iter_mut() {
            i.tags.retain(|t| t != &new);
            if i.id == id {
                i.tags.push(new.clone());
            }
        }
        Ok(())
    }

    async fn image_remove(
        &self,
        name: &str,
        force: bool,
        noprune: bool,
    ) -> Result<Vec<ImageDeleteItem>, ApiError> {
        self.record(format!(
            "image_remove {name} force={force} noprune={noprune}"
        ));
        let mut st = self.state();
        let img = Self::find_image(&st, name)
            .ok_or_else(|| ApiError::no_such_image(name))?
            .clone();
        if !force {
            if let Some(c) = st.containers.values().find(|c| c.image_id == img.id) {
                return Err(ApiError::conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                    &c.id[..12],
                    &img.id[7..19]
                )));
            }
        }
        let tag = normalize_tag(name);
        let mut out = Vec::new();
        let by_tag = img.tags.contains(&tag);
        let i = st
            .images
            .iter_mut()
            .find(|i| i.id == img.id)
            .expect("found");
        if by_tag {
            i.tags.retain(|t| t != &tag);
            out.push(ImageDeleteItem {
                untagged: Some(tag),
                deleted: None,
            });
        } else {
            for t in i.tags.drain(..) {
                out.push(ImageDeleteItem {
                    untagged: Some(t),
                    deleted: None,
                });
            }
        }
        if i.tags.is_empty() {
            st.images.retain(|i| i.id != img.id);
            out.push(ImageDeleteItem {
                untagged: None,
                deleted: Some(img.id),
            });
        }
        Ok(out)
    }

    async fn image_load(&self, body: ByteStream, quiet: bool) -> Result<ProgressStream, ApiError> {
        let data = drain(body).await?;
        self.record(format!("image_load bytes={} quiet={quiet}", data.len()));
        if data.is_empty() {
            return Err(ApiError::bad_parameter(
                "empty image archive: send a docker-save or OCI tar in the body",
            ));
        }
        self.add_image("loaded:latest", &["sh"]);
        Ok(progress(vec![JsonMessage::stream(
            "Loaded image: loaded:latest\n",
        )]))
    }

    async fn image_save(&self, names: Vec<String>) -> Result<ByteStream, ApiError> {
        self.record(format!("image_save {}", names.join(",")));
        {
            let st = self.state();
            for n in &names {
                Self::find_image(&st, n).ok_or_else(|| ApiError::no_such_image(n))?;
            }
        }
        let data = Bytes::from(format!("fake-tar:{}", names.join(",")));
        Ok(futures::stream::iter([Ok(data)]).boxed())
    }

    async fn image_import(
        &self,
        body: ByteStream,
        opts: ImportOptions,
    ) -> Result<ProgressStream, ApiError> {
        let data = drain(body).await?;
        self.record(format!(
            "image_import bytes={} repo={} tag={}",
            data.len(),
            opts.repo,
            opts.tag
        ));
        let tag = if opts.repo.is_empty() {
            "imported:latest".to_string()
        } else {
            format!(
                "{}:{}",
                opts.repo,
                if opts.tag.is_empty() {
                    "latest"
                } else {
                    &opts.tag
                }
            )
        };
        let id = self.add_image(&tag, &["sh"]);
        Ok(progress(vec![JsonMessage::status(id, None)]))
    }

    async fn image_pull(&self, opts: PullOptions) -> Result<ProgressStream, ApiError> {
        self.record(format!("image_pull {} {}", opts.from_image, opts.tag));
        let tag = if opts.tag.is_empty() {
            "latest"
        } else {
            &opts.tag
        };
        let full = normalize_tag(&format!("{}:{tag}", opts.from_image));
        if normalize_tag(&opts.from_image).starts_with("nosuch") {
            return Ok(progress(vec![JsonMessage::error(format!(
                "pull access denied for {}, repository does not exist or may require 'docker login'",
                opts.from_image
            ))]));
        }
        let exists = Self::find_image(&self.state(), &full).is_some();
        if !exists {
            self.add_image(&full, &["sh"]);
        }
        Ok(progress(vec![
            JsonMessage::status(
                format!("Pulling from library/{}", opts.from_image),
                Some(tag.into()),
            ),
            JsonMessage::status("Pull complete", Some("0123456789ab".into())),
            JsonMessage::status(format!("Digest: sha256:{}", hex_id(3, 3)), None),
            JsonMessage::status(
                if exists {
                    format!("Status: Image is up to date for {full}")
                } else {
                    format!("Status: Downloaded newer image for {full}")
                },
                None,
            ),
        ]))
    }

    async fn image_push(
        &self,
        name: &str,
        tag: &str,
        auth: Option<AuthConfig>,
    ) -> Result<ProgressStream, ApiError> {
        self.record(format!(
            "image_push {name} {tag} auth={}",
            auth.map(|a| a.username).unwrap_or_default()
        ));
        Ok(progress(vec![
            JsonMessage::status(format!("The push refers to repository [{name}]"), None),
            JsonMessage {
                aux: Some(
                    serde_json::json!({"Tag": tag, "Digest": format!("sha256:{}", hex_id(4, 4)), "Size": 528}),
                ),
                ..Default::default()
            },
        ]))
    }

    async fn images_prune(&self, filters: Filters) -> Result<ImagesPruneReport, ApiError> {
        self.record(format!("images_prune {:?}", filters.0));
        Ok(ImagesPruneReport::default())
    }

    async fn network_list(&self, filters: Filters) -> Result<Vec<NetworkResource>, ApiError> {
        self.record("network_list".into());
        Ok(self
            .state()
            .networks
            .values()
            .filter(|n| filters.match_any("name", |p| n.name.contains(p)))
            .filter(|n| filters.match_any("id", |p| n.id.starts_with(p)))
            .filter(|n| filters.match_any("driver", |p| n.driver == p))
            .cloned()
            .collect())
    }

    async fn network_inspect(&self, id: &str) -> Result<NetworkResource, ApiError> {
        self.record(format!("network_inspect {id}"));
        let st = self.state();
        st.networks
            .values()
            .find(|n| n.id == id || n.name == id || (id.len() >= 3 && n.id.starts_with(id)))
            .cloned()
            .ok_or_else(|| ApiError::no_such_network(id))
    }

    async fn network_create(
        &self,
        req: NetworkCreateRequest,
    ) -> Result<NetworkCreateResponse, ApiError> {
        self.record(format!("network_create {}", req.name));
        let mut st = self.state();
        if st.networks.values().any(|n| n.name == req.name) {
            return Err(ApiError::conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let id = hex_id(self.next(), 0x4e7);
        st.networks.insert(
            id.clone(),
            NetworkResource {
                name: req.name,
                id: id.clone(),
                created: rfc3339(SystemTime::now()),
                scope: "local".into(),
                driver: if req.driver.is_empty() {
                    "bridge".into()
                } else {
                    req.driver
                },
                enable_ipv4: true,
                ipam: req.ipam.unwrap_or_default(),
                internal: req.internal,
                attachable: req.attachable,
                options: req.options.unwrap_or_default(),
                labels: req.labels.unwrap_or_default(),
                ..Default::default()
            },
        );
        Ok(NetworkCreateResponse {
            id,
            warning: String::new(),
        })
    }

    async fn network_remove(&self, id: &str) -> Result<(), ApiError> {
        self.record(format!("network_remove {id}"));
        let n = self.network_inspect(id).await?;
        if matches!(n.name.as_str(), "bridge" | "host" | "none") {
            return Err(ApiError::new(
                crate::ErrorKind::Forbidden,
                format!("{} is a pre-defined network and cannot be removed", n.name),
            ));
        }
        self.state().networks.remove(&n.id);
        Ok(())
    }

    async fn network_connect(&self, id: &str, req: NetworkConnectRequest) -> Result<(), ApiError> {
        self.record(format!("network_connect {id} {}", req.container));
        let n = self.network_inspect(id).await?;
        let mut st = self.state();
        let key = Self::resolve(&st, &req.container)?;
        let name = st.containers[&key].name.clone();
        if let Some(net) = st.networks.get_mut(&n.id) {
            net.containers.insert(
                key,
                NetworkContainer {
                    name,
                    ..Default::default()
                },
            );
        }
        Ok(())
    }

    async fn network_disconnect(
        &self,
        id: &str,
        req: NetworkDisconnectRequest,
    ) -> Result<(), ApiError> {
        self.record(format!("network_disconnect {id} {}", req.container));
        let n = self.network_inspect(id).await?;
        let mut st = self.state();
        let key = Self::resolve(&st, &req.container)?;
        if let Some(net) = st.networks.get_mut(&n.id) {
            net.containers.remove(&key);
        }
        Ok(())
    }

    async fn networks_prune(&self, _filters: Filters) -> Result<NetworksPruneReport, ApiError> {
        self.record("networks_prune".into());
        let mut st = self.state();
        let gone: Vec<String> = st
            .networks
            .values()
            .filter(|n| {
                !matches!(n.name.as_str(), "bridge" | "host" | "none") && n.containers.is_empty()
            })
            .map(|n| n.name.clone())
            .collect();
        st.networks.retain(|_, n| !gone.contains(&n.name));
        Ok(NetworksPruneReport {
            networks_deleted: gone,
        })
    }

    async fn volume_list(&self, filters: Filters) -> Result<VolumeListResponse, ApiError> {
        self.record("volume_list".into());
        Ok(VolumeListResponse {
            volumes: self
                .state()
                .volumes
                .values()
                .filter(|v| filters.match_any("name", |p| v.name.contains(p)))
                .filter(|v| filters.match_labels("label", &v.labels))
                .cloned()
                .collect(),
            warnings: Vec::new(),
        })
    }

    async fn volume_create(&self, req: VolumeCreateRequest) -> Result<Volume, ApiError> {
        self.record(format!("volume_create {}", req.name));
        let name = if req.name.is_empty() {
            hex_id(self.next(), 0x70)
        } else {
            req.name
        };
        let mut st = self.state();
        let v = st.volumes.entry(name.clone()).or_insert_with(|| Volume {
            name: name.clone(),
            driver: if req.driver.is_empty() {
                "local".into()
            } else {
                req.driver
            },
            mountpoint: format!("/var/lib/strato/volumes/{name}/_data"),
            created_at: rfc3339(SystemTime::now()),
            labels: req.labels.unwrap_or_default(),
            scope: "local".into(),
            options: req.driver_opts.unwrap_or_default(),
            ..Default::default()
        });
        Ok(v.clone())
    }

    async fn volume_inspect(&self, name: &str) -> Result<Volume, ApiError> {
        self.record(format!("volume_inspect {name}"));
        self.state()
            .volumes
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::no_such_volume(name))
    }

    async fn volume_remove(&self, name: &str, force: bool) -> Result<(), ApiError> {
        self.record(format!("volume_remove {name} force={force}"));
        match self.state().volumes.remove(name) {
            Some(_) => Ok(()),
            None if force => Ok(()),
            None => Err(ApiError::no_such_volume(name)),
        }
    }

    async fn volumes_prune(&self, _filters: Filters) -> Result<VolumesPruneReport, ApiError> {
        self.record("volumes_prune".into());
        let mut st = self.state();
        let names: Vec<String> = st.volumes.keys().cloned().collect();
        st.volumes.clear();
        Ok(VolumesPruneReport {
            volumes_deleted: names,
            space_reclaimed: 0,
        })
    }
}

fn fake_stat(c: &FakeContainer, path: &str) -> Result<PathStat, ApiError> {
    let now = rfc3339(SystemTime::now());
    if path == "/" || path == "/etc" || path == "/tmp" || c.archive.contains_key(path) {
        let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("/");
        return Ok(PathStat {
            name: name.into(),
            size: 4096,
            mode: PathStat::go_mode(0o040755),
            mtime: now,
            link_target: String::new(),
        });
    }
    if path == "/etc/hostname" {
        return Ok(PathStat {
            name: "hostname".into(),
            size: 13,
            mode: 0o644,
            mtime: now,
            link_target: String::new(),
        });
    }
    Err(ApiError::not_found(format!(
        "Could not find the file {path} in container {}",
        c.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339(leap)[..10], "2000-02-29");
    }

    #[test]
    fn tags_and_signals() {
        assert_eq!(normalize_tag("busybox"), "busybox:latest");
        assert_eq!(normalize_tag("localhost:5000/a"), "localhost:5000/a:latest");
        assert_eq!(normalize_tag("a:1"), "a:1");
        assert_eq!(signal_number("SIGHUP"), Some(1));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("NOPE"), None);
    }

    #[tokio::test]
    async fn fake_runs_echo_and_records() {
        let fb = FakeBackend::new();
        let cfg: ContainerCreateConfig =
            serde_json::from_str(r#"{"Image":"busybox","Cmd":["echo","hello"]}"#).unwrap();
        let id = fb
            .container_create(Some("t1".into()), None, cfg)
            .await
            .unwrap()
            .id;
        let wait = fb
            .container_wait(&id, WaitCondition::NextExit)
            .await
            .unwrap();
        fb.container_start("t1").await.unwrap();
        assert_eq!(wait.await.unwrap().status_code, 0);
        let logs = fb
            .container_logs(
                &id,
                LogsOptions {
                    stdout: true,
                    stderr: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let chunks: Vec<_> = logs.output.collect().await;
        assert_eq!(chunks[0].as_ref().unwrap().data, "hello\n");
        assert!(fb.called("container_start t1"));
        assert_eq!(
            fb.container_start("t1").await.err().map(|e| e.status()),
            None,
            "an exited container starts again"
        );
    }
}
