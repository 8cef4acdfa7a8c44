//! `strato registry serve`: the OCI distribution registry on its own
//! (`strato daemon --registry-addr` serves the same one inside the daemon).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use strato_registry::auth::{Auth, Htpasswd, Tokens};
use strato_registry::{Config, Registry};

#[derive(Debug, Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Serve an OCI distribution v1.1 registry.
    Serve(ServeArgs),
}

/// How a registry is served (shared with `strato daemon --registry-addr`).
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback needs --htpasswd.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub addr: String,
    /// Storage directory: blobs, repositories, uploads.
    #[arg(long, default_value = "/var/lib/strato/registry")]
    pub root: PathBuf,
    /// htpasswd file of users (bcrypt entries, `htpasswd -B`): basic auth, or
    /// token logins with --token-secret.
    #[arg(long)]
    pub htpasswd: Option<PathBuf>,
    /// Secret (16 bytes or more) signing the Docker tokens the registry issues at /token.
    #[arg(long, env = "STRATO_REGISTRY_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// The token service name (`service=` of the challenge).
    #[arg(long, default_value = "strato-registry")]
    pub token_service: String,
    /// Token realm to send clients to (default: this registry's /token).
    #[arg(long)]
    pub token_realm: Option<String>,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Bytes each repository may hold (suffixes K, M, G, T accepted).
    #[arg(long, value_parser = parse_bytes)]
    pub quota: Option<u64>,
    /// Run garbage collection this often (e.g. 30m, 6h; 0 = never).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub gc_interval: Duration,
    /// Unreferenced blobs younger than this are kept by garbage collection.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub gc_grace: Duration,
}

impl ServeArgs {
    /// A registry on `addr` with `root`, optional htpasswd, other settings default.
    pub fn new(addr: &str, root: PathBuf, htpasswd: Option<PathBuf>) -> ServeArgs {
        ServeArgs {
            addr: addr.to_string(),
            root,
            htpasswd,
            token_secret: None,
            token_service: "strato-registry".into(),
            token_realm: None,
            tls_cert: None,
            tls_key: None,
            quota: None,
            gc_interval: Duration::from_secs(3600),
            gc_grace: Duration::from_secs(3600),
        }
    }
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.trim().to_ascii_uppercase() {
        t if t.ends_with('K') => (t[..t.len() - 1].to_string(), 1u64 << 10),
        t if t.ends_with('M') => (t[..t.len() - 1].to_string(), 1 << 20),
        t if t.ends_with('G') => (t[..t.len() - 1].to_string(), 1 << 30),
        t if t.ends_with('T') => (t[..t.len() - 1].to_string(), 1 << 40),
        t => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size: give bytes like 1073741824 or 1G"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: give e.g. 90s, 30m, 6h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

pub fn main(args: RegistryArgs) -> i32 {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let RegistryCommand::Serve(serve) = args.command;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strato: registry: start the async runtime: {e}");
            return 1;
        }
    };
    let result = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("handle SIGINT")?;
        let task = start(&serve).await?;
        tokio::select! {
            _ = term.recv() => Ok(()),
            _ = int.recv() => Ok(()),
            r = task => match r {
                Ok(Err(e)) => Err(anyhow::anyhow!("serving the registry: {e}")),
                Err(e) => Err(anyhow::anyhow!("registry task failed: {e}")),
                Ok(Ok(())) => Ok(()),
            },
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("strato: registry: {e:#}");
            1
        }
    }
}

/// Opens the registry, binds and spawns the server (and its maintenance).
pub async fn start(a: &ServeArgs) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let addr: SocketAddr = a
        .addr
        .parse()
        .with_context(|| format!("--addr {}: expected IP:PORT like 127.0.0.1:5000", a.addr))?;
    let auth = match (&a.htpasswd, &a.token_secret) {
        (None, None) => Auth::Anonymous,
        (Some(h), None) => Auth::Basic(Htpasswd::load(h)?),
        (Some(h), Some(s)) => {
            let mut tokens = Tokens::new(s.as_bytes(), &a.token_service)?;
            tokens.realm = a.token_realm.clone();
            Auth::Token {
                users: Htpasswd::load(h)?,
                tokens,
            }
        }
        (None, Some(_)) => {
            bail!("--token-secret needs --htpasswd: tokens are issued to the users of that file")
        }
    };
    strato_registry::check_exposure(&addr, &auth)?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(strato_registry::tls_acceptor(c, k, None)?),
        _ => None,
    };
    if matches!(auth, Auth::Basic(_)) && tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!("basic auth over plain HTTP sends passwords in the clear; give --tls-cert and --tls-key");
    }
    let mut config = Config::new(&a.root);
    config.auth = auth;
    config.quota = a.quota;
    config.tls = tls.is_some();
    let registry = Registry::open(config)?;
    let listener = strato_registry::bind(&a.addr).await?;
    let local = listener.local_addr().context("read the bound address")?;
    tracing::info!(addr = %local, root = %a.root.display(), tls = tls.is_some(), "serving the registry");
    if !a.gc_interval.is_zero() {
        registry.spawn_maintenance(a.gc_interval, a.gc_grace);
    }
    Ok(tokio::spawn(registry.serve(listener, tls)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("2k"), Ok(2048));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("1y").is_err());
    }
}
