//! `strato daemon`: the Docker-compatible engine. Opens the engine (which
//! starts the supervisor if none runs), then serves the Engine API on every
//! `--host` until SIGTERM or SIGINT. Containers keep running under the
//! supervisor when the daemon stops.
//!
//! Fork safety: this is the only command that starts an async runtime, and
//! it never forks a container; the supervisor is started with
//! `std::process::Command`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use strato_api::{Backend, TcpAuth};
use strato_engine::backend::EngineBackend;
use strato_engine::engine::{Engine, EngineConfig};

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Where to listen: `unix:///path` or `tcp://ADDR:PORT` (tcp needs --token). Repeatable.
    #[arg(
        long = "host",
        short = 'H',
        default_value = "unix:///run/strato/strato.sock"
    )]
    hosts: Vec<String>,
    /// Bearer token TCP clients must send (`Authorization: Bearer TOKEN`).
    #[arg(long, env = "STRATO_TOKEN")]
    token: Option<String>,
    /// Serve tcp hosts over TLS (--tlscert, --tlskey); clients still need
    /// --token or a certificate (--tlsverify).
    #[arg(long)]
    tls: bool,
    /// Serve tcp hosts over TLS and admit only clients whose certificate is
    /// signed by --tlscacert (implies --tls).
    #[arg(long, requires = "tlscacert")]
    tlsverify: bool,
    /// CA certificates (PEM) that sign the clients' certificates.
    #[arg(long, value_name = "PEM")]
    tlscacert: Option<PathBuf>,
    /// The server's certificate chain (PEM).
    #[arg(long, value_name = "PEM")]
    tlscert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, value_name = "PEM")]
    tlskey: Option<PathBuf>,
    /// A registry (`HOST[:PORT]`) that may be reached over plain HTTP;
    /// loopback registries always may. Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// Prepare a new container's start right after its create (its process
    /// waits, created, for the start), for containers with `--network none`
    /// or `host`. `false` makes every start do all of its work.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    prepare_starts: bool,
    /// Run an init (tini) as process 1 of every container that does not
    /// choose with `--init` / `--init=false` itself.
    #[arg(long)]
    init: bool,
    /// The init binary of `--init` containers, bound at /sbin/docker-init;
    /// it must be statically linked [default: docker-init or tini-static on
    /// PATH].
    #[arg(long, value_name = "PATH")]
    init_path: Option<PathBuf>,
    /// Persistent state: images, containers, volumes, networks.
    #[arg(long, default_value = "/var/lib/strato")]
    data_root: PathBuf,
    /// Runtime state: the supervisor's socket and records.
    #[arg(long, default_value = "/run/strato/engine")]
    exec_root: PathBuf,
    /// Address pool of the networks (tests use a private one).
    #[arg(long, hide = true)]
    bridge_pool: Option<String>,
    /// Prefix length of the subnets carved from the pool.
    #[arg(long, hide = true)]
    subnet_prefix: Option<u8>,
    /// The default network's bridge.
    #[arg(long, hide = true)]
    bridge_name: Option<String>,
    /// The nftables table holding the engine's rules.
    #[arg(long, hide = true)]
    nft_table: Option<String>,
    /// Make the default network (`bridge`) dual-stack when it is created.
    #[arg(long)]
    ipv6: bool,
    /// The default network's IPv6 subnet (else a /64 of the host's unique
    /// local pool).
    #[arg(long = "fixed-cidr-v6", value_name = "CIDR", requires = "ipv6")]
    fixed_cidr_v6: Option<String>,
    /// Also serve the OCI registry (as `strato registry serve`) on this address.
    #[arg(long)]
    registry_addr: Option<String>,
    /// The daemon registry's storage (default: DATA_ROOT/registry).
    #[arg(long, requires = "registry_addr")]
    registry_root: Option<PathBuf>,
    /// htpasswd file of the daemon registry's users (needed beyond loopback).
    #[arg(long, requires = "registry_addr")]
    registry_htpasswd: Option<PathBuf>,
    #[command(flatten)]
    paas: PaasArgs,
}

/// The PaaS controller, run inside the daemon (`--paas`).
#[derive(Debug, Args)]
pub struct PaasArgs {
    /// Run the PaaS control plane (cartridges, applications, autoscaling) in the daemon.
    #[arg(long = "paas")]
    pub enabled: bool,
    /// Where the PaaS API listens: unix:///path or tcp://ADDR:PORT (tcp needs --token).
    #[arg(long = "paas-host", default_value = "unix:///run/strato/paas.sock")]
    pub host: String,
    /// The PaaS store (definitions, deployments, members) [default: DATA_ROOT/paas.redb].
    #[arg(long = "paas-store")]
    pub store: Option<PathBuf>,
    /// Added to every cartridge proxyPort (tests shift the load balancer's ports).
    #[arg(
        long = "paas-port-offset",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub port_offset: i32,
    /// Autoscaler: ms after a scaling action before a scale-down.
    #[arg(long = "paas-cooldown-ms", default_value_t = 30_000, hide = true)]
    pub cooldown_ms: i64,
    /// Autoscaler: span of the statistics window, ms.
    #[arg(long = "paas-window-ms", default_value_t = 2_000, hide = true)]
    pub window_ms: i64,
    /// Seconds a leaving member may finish its requests.
    #[arg(long = "paas-drain-timeout", default_value_t = 30, hide = true)]
    pub drain_timeout: u64,
    /// Members created and started at once (engine calls in flight).
    #[arg(long = "paas-engine-parallel", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub engine_parallel: u16,
    /// Level 2 autoscaling: a program asked for a new host when members
    /// find no room on their partition's hosts. It reads the request as
    /// JSON on stdin and prints a kubernetesHost JSON object (or nothing).
    /// Without it, this machine is offered to a cluster that lacks it.
    #[arg(long = "paas-host-provider", value_name = "PROGRAM")]
    pub host_provider: Option<PathBuf>,
}

enum Listen {
    Unix(PathBuf),
    Tcp(String),
}

fn parse_hosts(args: &DaemonArgs) -> anyhow::Result<Vec<Listen>> {
    let mut out = Vec::new();
    for h in &args.hosts {
        if let Some(p) = h.strip_prefix("unix://") {
            if !p.starts_with('/') {
                bail!("--host {h}: the socket path must be absolute, like unix:///run/strato/strato.sock");
            }
            out.push(Listen::Unix(PathBuf::from(p)));
        } else if let Some(a) = h.strip_prefix("tcp://") {
            let token = matches!(args.token.as_deref(), Some(t) if !t.is_empty());
            if !token && !args.tlsverify {
                bail!(
                    "--host {h}: a tcp listener needs authentication; give --tlsverify --tlscacert CA --tlscert CERT --tlskey KEY (client certificates), or --token TOKEN (clients send it as a bearer token; add --tls to encrypt)"
                );
            }
            if (args.tls || args.tlsverify) && (args.tlscert.is_none() || args.tlskey.is_none()) {
                bail!("--host {h}: TLS needs the server's --tlscert CERT.pem and --tlskey KEY.pem");
            }
            out.push(Listen::Tcp(a.to_string()));
        } else {
            bail!("--host {h}: expected unix:///path or tcp://ADDR:PORT");
        }
    }
    Ok(out)
}

/// The tcp listeners' authentication from the flags `parse_hosts` checked.
fn tcp_auth(args: &DaemonArgs) -> anyhow::Result<TcpAuth> {
    let token = args.token.clone().filter(|t| !t.is_empty());
    if !(args.tls || args.tlsverify) {
        return Ok(TcpAuth::Token(token.unwrap_or_default()));
    }
    let (Some(cert), Some(key)) = (&args.tlscert, &args.tlskey) else {
        bail!("TLS needs the server's --tlscert CERT.pem and --tlskey KEY.pem");
    };
    let ca = if args.tlsverify {
        args.tlscacert.as_deref()
    } else {
        None
    };
    let acceptor = strato_registry::tls_acceptor(cert, key, ca)?;
    Ok(TcpAuth::Tls {
        acceptor,
        client_certs: args.tlsverify,
        token,
    })
}

fn network_config(args: &DaemonArgs) -> anyhow::Result<Option<strato_network::Config>> {
    if args.bridge_pool.is_none()
        && args.bridge_name.is_none()
        && args.nft_table.is_none()
        && args.subnet_prefix.is_none()
        && !args.ipv6
    {
        return Ok(None);
    }
    let mut c = strato_network::Config::new(args.data_root.join("network"));
    if let Some(p) = &args.bridge_pool {
        c.pool = p
            .parse()
            .with_context(|| format!("--bridge-pool {p}: expected a CIDR like 10.199.0.0/16"))?;
    }
    if let Some(n) = args.subnet_prefix {
        c.subnet_prefix = n;
    }
    if let Some(b) = &args.bridge_name {
        c.default_bridge = b.clone();
    }
    if let Some(t) = &args.nft_table {
        c.table = t.clone();
    }
    if args.ipv6 {
        c.default_ipv6 = Some(match &args.fixed_cidr_v6 {
            Some(s) => Some(s.parse().with_context(|| {
                format!("--fixed-cidr-v6 {s}: expected an IPv6 CIDR like fd00:1::/64")
            })?),
            None => None,
        });
    }
    Ok(Some(c))
}

pub fn main(args: DaemonArgs) -> i32 {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("strato: daemon: {e:#}");
            1
        }
    }
}

fn run(args: DaemonArgs) -> anyhow::Result<()> {
    let listens = parse_hosts(&args)?;
    let network = network_config(&args)?;
    let strato_bin = std::env::current_exe().context("find the strato binary")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let result = rt.block_on(serve(args, listens, network, strato_bin));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

async fn serve(
    args: DaemonArgs,
    listens: Vec<Listen>,
    network: Option<strato_network::Config>,
    strato_bin: PathBuf,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("handle SIGINT")?;
    let engine = Engine::open(EngineConfig {
        data_root: args.data_root.clone(),
        exec_root: args.exec_root.clone(),
        strato_bin,
        network,
        insecure_registries: args.insecure_registries.clone(),
        prepare_starts: args.prepare_starts,
        init: args.init,
        init_path: args.init_path.clone(),
    })
    .await
    .map_err(|e| anyhow::anyhow!("open the engine at {}: {e}", args.data_root.display()))?;
    let backend: Arc<dyn Backend> = EngineBackend::new(engine);
    if let Some(addr) = &args.registry_addr {
        let root = args.registry_root.clone();
        let root = root.unwrap_or_else(|| args.data_root.join("registry"));
        let reg = crate::registry::ServeArgs::new(addr, root, args.registry_htpasswd.clone());
        // Runs until the runtime stops; accept errors are retried inside.
        drop(crate::registry::start(&reg).await?);
    }
    let mut tasks = tokio::task::JoinSet::new();
    let mut sockets = Vec::new();
    let mut unix_socket: Option<PathBuf> = None;
    for l in listens {
        match l {
            Listen::Unix(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("create {}", dir.display()))?;
                }
                let listener = strato_api::bind_unix(&path)?;
                if unix_socket.is_none() {
                    unix_socket = Some(path.clone());
                }
                tracing::info!(socket = %path.display(), "serving the Engine API");
                sockets.push(path);
                tasks.spawn(strato_api::serve_unix_listener(listener, backend.clone()));
            }
            Listen::Tcp(addr) => {
                let auth = tcp_auth(&args)?;
                let listener = strato_api::bind_tcp(&addr, &auth).await?;
                tracing::info!(addr, auth = ?auth, "serving the Engine API over tcp");
                tasks.spawn(strato_api::serve_tcp_listener(
                    listener,
                    backend.clone(),
                    auth,
                ));
            }
        }
    }
    let mut paas_tasks = tokio::task::JoinSet::new();
    let paas = if args.paas.enabled {
        let engine_sock = unix_socket.clone().context(
            "--paas drives the engine through its own unix socket: give a --host unix:///path",
        )?;
        Some(start_paas(&args, engine_sock, &mut paas_tasks).await?)
    } else {
        None
    };
    let result = tokio::select! {
        _ = term.recv() => Ok(()),
        _ = int.recv() => Ok(()),
        r = tasks.join_next() => match r {
            Some(Ok(Err(e))) => Err(anyhow::anyhow!(e)),
            Some(Err(e)) => Err(anyhow::anyhow!("listener task failed: {e}")),
            _ => Ok(()),
        },
        Some(r) = paas_tasks.join_next() => match r {
            Ok(Err(e)) => Err(anyhow::anyhow!(e)),
            Err(e) => Err(anyhow::anyhow!("PaaS task failed: {e}")),
            Ok(Ok(())) => Ok(()),
        },
    };
    tracing::info!("daemon stopping; containers keep running under the supervisor");
    let mut paas_rt = None;
    if let Some((ctl, sock, rt)) = paas {
        ctl.shutdown();
        if let Some(s) = sock {
            let _ = std::fs::remove_file(s);
        }
        paas_rt = Some(rt);
    }
    tasks.abort_all();
    paas_tasks.abort_all();
    if let Some(rt) = paas_rt {
        rt.shutdown_background();
    }
    for s in sockets {
        let _ = std::fs::remove_file(s);
    }
    result
}

type Paas = (
    strato_paas::Controller<strato_paas::ClientEngine>,
    Option<PathBuf>,
    tokio::runtime::Runtime,
);

/// Opens the PaaS store and starts the controller and its API on a runtime
/// of their own (two threads named `strato-paas`), and its load balancers
/// on threads set up as `strato lb`'s (`strato_lb::Threads`):
/// however busy the engine's threads are with container starts, the PaaS
/// API answers. The controller drives the engine through the daemon's own
/// unix socket, as any client does, so the engine code knows nothing of it.
async fn start_paas(
    args: &DaemonArgs,
    engine_sock: PathBuf,
    tasks: &mut tokio::task::JoinSet<Result<(), String>>,
) -> anyhow::Result<Paas> {
    let p = &args.paas;
    let store_path = p
        .store
        .clone()
        .unwrap_or_else(|| args.data_root.join("paas.redb"));
    if let Some(dir) = store_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let store = strato_paas_store::Store::open(&store_path)
        .with_context(|| format!("open the PaaS store {}", store_path.display()))?;
    let client = strato_client::Client::new(strato_client::Host::Unix(engine_sock), None);
    let config = strato_paas::Config {
        port_offset: p.port_offset,
        drain_timeout: std::time::Duration::from_secs(p.drain_timeout),
        engine_parallel: usize::from(p.engine_parallel),
        scaling: strato_paas_model::scaling::ScalingConfig {
            cooldown_ms: p.cooldown_ms,
            window_ms: p.window_ms,
            ..Default::default()
        },
        lb_threads: Some(Arc::new(
            strato_lb::Threads::start(strato_lb::default_threads(), strato_lb::Sched::Batch)
                .context("start the load balancer's threads")?,
        )),
        ..Default::default()
    };
    let hosts: Arc<dyn strato_paas::HostProvider> = match &p.host_provider {
        Some(program) => Arc::new(strato_paas::CommandProvider::new(
            program,
            std::time::Duration::from_secs(300),
        )),
        None => Arc::new(strato_paas::LocalMachine),
    };
    let ctl = strato_paas::Controller::with_host_provider(
        strato_paas::ClientEngine::new(client),
        store,
        config,
        hosts,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("strato-paas")
        .enable_all()
        .build()
        .context("start the PaaS runtime")?;
    match serve_paas(args, &ctl, tasks, rt.handle()) {
        Ok(socket) => Ok((ctl, socket, rt)),
        Err(e) => {
            // Not dropped here: a runtime may not be dropped inside another.
            rt.shutdown_background();
            Err(e)
        }
    }
}

/// Spawns the PaaS API and the controller's loop on `rt`; returns the API's
/// unix socket, if it has one.
fn serve_paas(
    args: &DaemonArgs,
    ctl: &strato_paas::Controller<strato_paas::ClientEngine>,
    tasks: &mut tokio::task::JoinSet<Result<(), String>>,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<Option<PathBuf>> {
    let p = &args.paas;
    let mut socket = None;
    if let Some(path) = p.host.strip_prefix("unix://") {
        if !path.starts_with('/') {
            bail!("--paas-host {}: the socket path must be absolute", p.host);
        }
        let path = PathBuf::from(path);
        socket = Some(path.clone());
        let c = ctl.clone();
        // Bind before returning so a client started after us finds it.
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        tracing::info!(socket = %path.display(), "serving the PaaS API");
        tasks.spawn_on(
            async move {
                strato_paas::api::serve_unix(&path, c)
                    .await
                    .map_err(|e| format!("PaaS API on {}: {e}", path.display()))
            },
            rt,
        );
    } else if let Some(addr) = p.host.strip_prefix("tcp://") {
        let token = match args.token.as_deref() {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => bail!("--paas-host {}: a tcp listener needs --token TOKEN", p.host),
        };
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .with_context(|| format!("--paas-host {}: listen", p.host))?;
        tracing::info!(addr, "serving the PaaS API over tcp (bearer token)");
        let c = ctl.clone();
        tasks.spawn_on(
            async move {
                // Registered with the PaaS runtime's reactor, where it is polled.
                let listener = tokio::net::TcpListener::from_std(listener)
                    .map_err(|e| format!("PaaS API: {e}"))?;
                strato_paas::api::serve_tcp(listener, c, token)
                    .await
                    .map_err(|e| format!("PaaS API: {e}"))
            },
            rt,
        );
    } else {
        bail!(
            "--paas-host {}: expected unix:///path or tcp://ADDR:PORT",
            p.host
        );
    }
    let c = ctl.clone();
    tasks.spawn_on(
        async move {
            c.run().await;
            Ok(())
        },
        rt,
    );
    Ok(socket)
}
