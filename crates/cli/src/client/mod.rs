//! The docker-like client verbs of `strato` (`strato run`, `strato ps`, …):
//! each one is a call or a few to the daemon's Engine API through
//! strato-client, with docker's flags, output and exit codes.
//!
//! The daemon is chosen by `-H`/`--host` before the verb, else
//! `STRATO_HOST`, else unix:///run/strato/strato.sock; `--token` /
//! `STRATO_TOKEN` is the bearer token of a TCP daemon. Daemon errors print
//! `Error response from daemon: …` and exit 1; `run` exits with the
//! container's code, or 125 (could not run), 126 (command not executable),
//! 127 (command not found) as docker does.

mod containers;
mod cp;
mod format;
mod images;
mod objects;
mod opts;
mod progress;
mod template;
mod tty;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use strato_client::{Client, Host, DEFAULT_HOST};

/// Options of every client verb (given before the verb, like docker's).
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Daemon to talk to: unix:///path or tcp://HOST:PORT [env: STRATO_HOST;
    /// default: unix:///run/strato/strato.sock].
    #[arg(short = 'H', long = "host", env = "STRATO_HOST", hide_env = true)]
    pub(crate) host: Option<String>,
    /// Bearer token for a TCP daemon.
    #[arg(long, env = "STRATO_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Speak TLS to a TCP daemon and verify its certificate against
    /// --tlscacert [env: STRATO_TLS_VERIFY].
    #[arg(long, env = "STRATO_TLS_VERIFY", hide_env = true, value_parser = clap::builder::FalseyValueParser::new())]
    pub(crate) tlsverify: bool,
    /// CA certificate (PEM) that signed the daemon's [default: STRATO_CERT_PATH/ca.pem].
    #[arg(long, value_name = "PEM")]
    pub(crate) tlscacert: Option<PathBuf>,
    /// This client's certificate (PEM) [default: STRATO_CERT_PATH/cert.pem if it exists].
    #[arg(long, value_name = "PEM")]
    pub(crate) tlscert: Option<PathBuf>,
    /// This client's key (PEM) [default: STRATO_CERT_PATH/key.pem if it exists].
    #[arg(long, value_name = "PEM")]
    pub(crate) tlskey: Option<PathBuf>,
}

impl GlobalArgs {
    /// The client these flags name: host, token and TLS.
    pub(crate) fn client(&self) -> std::result::Result<Client, String> {
        let host = self
            .host
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or(DEFAULT_HOST);
        let host = Host::parse(host).map_err(|e| e.to_string())?;
        let client = Client::new(host.clone(), self.token.clone());
        if !self.tlsverify {
            return Ok(client);
        }
        if !matches!(host, Host::Tcp(_)) {
            return Err(format!("--tlsverify is for tcp:// hosts, not {host}"));
        }
        // As the docker CLI's DOCKER_CERT_PATH: one folder holding all three.
        let dir = std::env::var_os("STRATO_CERT_PATH")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".strato")))
            .unwrap_or_else(|| PathBuf::from(".strato"));
        let ca = self.tlscacert.clone().unwrap_or_else(|| dir.join("ca.pem"));
        let cert = self.tlscert.clone().unwrap_or_else(|| dir.join("cert.pem"));
        let key = self.tlskey.clone().unwrap_or_else(|| dir.join("key.pem"));
        let pair = (self.tlscert.is_some() || self.tlskey.is_some() || cert.exists())
            .then_some((cert.as_path(), key.as_path()));
        let connector = strato_client::tls::connector(&ca, pair).map_err(|e| e.to_string())?;
        Ok(client.with_tls(connector))
    }
}

/// `strato run …` parsed with the run verb's command line alone, built
/// without the other verbs' (see main.rs); `None` for anything else.
pub fn parse_run_alone(
    argv: impl IntoIterator<Item = std::ffi::OsString>,
) -> Option<(GlobalArgs, Verb)> {
    use clap::{Command, FromArgMatches};
    let cmd = GlobalArgs::augment_args(Command::new("strato"))
        .subcommand(containers::RunArgs::augment_args(Command::new("run")))
        .subcommand_required(true);
    let m = cmd.try_get_matches_from(argv).ok()?;
    let global = GlobalArgs::from_arg_matches(&m).ok()?;
    let verb = Verb::from_arg_matches(&m).ok()?;
    Some((global, verb))
}

/// The client verbs, mirroring docker's.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Create and run a new container from an image.
    Run(Box<containers::RunArgs>),
    /// Create a new container.
    Create(Box<containers::RunArgs>),
    /// Start one or more stopped containers.
    Start(containers::StartArgs),
    /// Stop one or more running containers.
    Stop(containers::StopArgs),
    /// Kill one or more running containers.
    Kill(containers::KillArgs),
    /// Restart one or more containers.
    Restart(containers::StopArgs),
    /// Remove one or more containers.
    Rm(containers::RmArgs),
    /// List containers.
    Ps(containers::PsArgs),
    /// Fetch the logs of a container.
    Logs(containers::LogsArgs),
    /// Execute a command in a running container.
    Exec(containers::ExecArgs),
    /// Attach local standard input, output and error to a running container.
    Attach(containers::AttachArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(containers::Targets),
    /// Return low-level information on containers, images, networks or volumes.
    Inspect(objects::InspectArgs),
    /// Display the running processes of a container.
    Top(containers::TopArgs),
    /// Display containers' resource usage statistics.
    Stats(containers::StatsArgs),
    /// Get real time events from the daemon.
    Events(objects::EventsArgs),
    /// Copy files between a container and the local filesystem.
    Cp(cp::CpArgs),
    /// Build an image from a Dockerfile (the classic builder).
    Build(images::BuildArgs),
    /// List images.
    Images(images::ImagesArgs),
    /// Load an image from a tar archive or STDIN.
    Load(images::LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(images::SaveArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(images::ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(images::TagArgs),
    /// Remove one or more images.
    Rmi(images::RmiArgs),
    /// Download an image from a registry.
    Pull(images::PullArgs),
    /// Upload an image to a registry.
    Push(images::PushArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(objects::NetworkVerb),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(objects::VolumeVerb),
    /// Manage containers (`container ls`, `container inspect`, … as the verbs above).
    #[command(subcommand)]
    Container(ContainerVerb),
    /// Manage images (`image ls`, `image inspect`, … as the verbs above).
    #[command(subcommand)]
    Image(ImageVerb),
    /// Show the strato client and daemon version information.
    Version(objects::FormatArgs),
    /// Display system-wide information.
    Info(objects::FormatArgs),
}

/// docker's `container …` management commands.
#[derive(Debug, Subcommand)]
pub enum ContainerVerb {
    /// List containers.
    #[command(visible_alias = "list", visible_alias = "ps")]
    Ls(containers::PsArgs),
    /// Display detailed information on one or more containers.
    Inspect(objects::TypedInspectArgs),
    /// Create and run a new container from an image.
    Run(Box<containers::RunArgs>),
    /// Create a new container.
    Create(Box<containers::RunArgs>),
    /// Start one or more stopped containers.
    Start(containers::StartArgs),
    /// Stop one or more running containers.
    Stop(containers::StopArgs),
    /// Restart one or more containers.
    Restart(containers::StopArgs),
    /// Kill one or more running containers.
    Kill(containers::KillArgs),
    /// Remove one or more containers.
    #[command(visible_alias = "remove")]
    Rm(containers::RmArgs),
    /// Fetch the logs of a container.
    Logs(containers::LogsArgs),
    /// Execute a command in a running container.
    Exec(containers::ExecArgs),
    /// Attach to a running container.
    Attach(containers::AttachArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(containers::Targets),
    /// Display the running processes of a container.
    Top(containers::TopArgs),
    /// Display containers' resource usage statistics.
    Stats(containers::StatsArgs),
    /// Copy files between a container and the local filesystem.
    Cp(cp::CpArgs),
}

/// docker's `image …` management commands.
#[derive(Debug, Subcommand)]
pub enum ImageVerb {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(images::ImagesArgs),
    /// Display detailed information on one or more images.
    Inspect(objects::TypedInspectArgs),
    /// Build an image from a Dockerfile.
    Build(images::BuildArgs),
    /// Remove one or more images.
    #[command(visible_alias = "remove")]
    Rm(images::RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(images::TagArgs),
    /// Load an image from a tar archive or STDIN.
    Load(images::LoadArgs),
    /// Save one or more images to a tar archive.
    Save(images::SaveArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(images::ImportArgs),
    /// Download an image from a registry.
    Pull(images::PullArgs),
    /// Upload an image to a registry.
    Push(images::PushArgs),
}

impl ContainerVerb {
    fn into_verb(self) -> Verb {
        use ContainerVerb as C;
        match self {
            C::Ls(a) => Verb::Ps(a),
            C::Inspect(a) => Verb::Inspect(a.with_type("container")),
            C::Run(a) => Verb::Run(a),
            C::Create(a) => Verb::Create(a),
            C::Start(a) => Verb::Start(a),
            C::Stop(a) => Verb::Stop(a),
            C::Restart(a) => Verb::Restart(a),
            C::Kill(a) => Verb::Kill(a),
            C::Rm(a) => Verb::Rm(a),
            C::Logs(a) => Verb::Logs(a),
            C::Exec(a) => Verb::Exec(a),
            C::Attach(a) => Verb::Attach(a),
            C::Wait(a) => Verb::Wait(a),
            C::Top(a) => Verb::Top(a),
            C::Stats(a) => Verb::Stats(a),
            C::Cp(a) => Verb::Cp(a),
        }
    }
}

impl ImageVerb {
    fn into_verb(self) -> Verb {
        use ImageVerb as I;
        match self {
            I::Ls(a) => Verb::Images(a),
            I::Inspect(a) => Verb::Inspect(a.with_type("image")),
            I::Build(a) => Verb::Build(a),
            I::Rm(a) => Verb::Rmi(a),
            I::Tag(a) => Verb::Tag(a),
            I::Load(a) => Verb::Load(a),
            I::Save(a) => Verb::Save(a),
            I::Import(a) => Verb::Import(a),
            I::Pull(a) => Verb::Pull(a),
            I::Push(a) => Verb::Push(a),
        }
    }
}

/// Runs one verb and returns the process exit code.
pub fn main(global: GlobalArgs, verb: Verb) -> i32 {
    let client = match global.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strato: {e}");
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strato: start the async runtime: {e}");
            return 1;
        }
    };
    let code = rt.block_on(async {
        match dispatch(&client, verb).await {
            Ok(code) => code,
            Err(e) => {
                report(&e);
                1
            }
        }
    });
    // A blocking read of our stdin may still be pending; do not wait for it.
    rt.shutdown_background();
    code
}

async fn dispatch(c: &Client, verb: Verb) -> Result<i32> {
    use Verb as V;
    let verb = match verb {
        V::Container(v) => v.into_verb(),
        V::Image(v) => v.into_verb(),
        v => v,
    };
    match verb {
        V::Run(a) => containers::run(c, *a).await,
        V::Create(a) => containers::create(c, *a).await,
        V::Start(a) => containers::start(c, a).await,
        V::Stop(a) => containers::stop(c, a, false).await,
        V::Restart(a) => containers::stop(c, a, true).await,
        V::Kill(a) => containers::kill(c, a).await,
        V::Rm(a) => containers::rm(c, a).await,
        V::Ps(a) => containers::ps(c, a).await,
        V::Logs(a) => containers::logs(c, a).await,
        V::Exec(a) => containers::exec(c, a).await,
        V::Attach(a) => containers::attach(c, a).await,
        V::Wait(a) => containers::wait(c, a).await,
        V::Top(a) => containers::top(c, a).await,
        V::Stats(a) => containers::stats(c, a).await,
        V::Inspect(a) => objects::inspect(c, a).await,
        V::Events(a) => objects::events(c, a).await,
        V::Cp(a) => cp::cp(c, a).await,
        V::Build(a) => images::build(c, a).await,
        V::Images(a) => images::images(c, a).await,
        V::Load(a) => images::load(c, a).await,
        V::Save(a) => images::save(c, a).await,
        V::Import(a) => images::import(c, a).await,
        V::Tag(a) => images::tag(c, a).await,
        V::Rmi(a) => images::rmi(c, a).await,
        V::Pull(a) => images::pull(c, a).await,
        V::Push(a) => images::push(c, a).await,
        V::Network(v) => objects::network(c, v).await,
        V::Volume(v) => objects::volume(c, v).await,
        V::Version(a) => objects::version(c, a).await,
        V::Info(a) => objects::info(c, a).await,
        V::Container(_) | V::Image(_) => {
            unreachable!("management commands were mapped to verbs above")
        }
    }
}

/// Prints an error as docker does: daemon errors as `Error response from
/// daemon: …`, the rest prefixed with `strato:`.
pub(crate) fn report(e: &anyhow::Error) {
    if let Some(ce) = e.downcast_ref::<strato_client::Error>() {
        eprintln!("{ce}");
    } else {
        eprintln!("strato: {e:#}");
    }
}

/// Runs `f` for each target, printing the target on success and the error
/// otherwise; exit code 1 when any failed.
pub(crate) async fn each<F, Fut>(targets: &[String], mut f: F) -> Result<i32>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut code = 0;
    for t in targets {
        match f(t.clone()).await {
            Ok(()) => println!("{t}"),
            Err(e) => {
                report(&e);
                code = 1;
            }
        }
    }
    Ok(code)
}

/// Unix time now, in seconds.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
