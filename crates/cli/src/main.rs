//! The `strato` binary: a thin command line over the strato libraries.
//!
//! `strato runtime …` is the OCI runtime (runc-compatible verbs). It never
//! starts threads before it forks containers (see strato-container's fork-safety
//! invariant), so it must stay free of async runtimes. `strato daemon` is the
//! Docker-compatible engine (tokio; it never forks containers: the
//! supervisor does). The other commands (`run`, `ps`, `images`, …) are
//! docker's client verbs, talking to a daemon over the Engine API.

mod client;
mod daemon;
mod lb;
mod paas;
mod registry;
mod runtime;

use clap::{Parser, Subcommand};

/// strato: a container platform in one binary.
#[derive(Debug, Parser)]
#[command(name = "strato", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    client: client::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The OCI runtime: run bundles with runc-compatible verbs.
    Runtime(Box<runtime::RuntimeArgs>),
    /// The Docker-compatible engine: serves the Docker Engine API.
    Daemon(Box<daemon::DaemonArgs>),
    /// The OCI distribution registry.
    Registry(Box<registry::RegistryArgs>),
    /// The PaaS load balancer on its own, in front of fixed members.
    Lb(Box<lb::LbArgs>),
    /// PaaS: cartridges (Stratos 4.1 JSON).
    Cartridge(paas::DefArgs),
    /// PaaS: cartridge groups.
    Group(paas::DefArgs),
    /// PaaS: autoscaling, deployment and application policies.
    Policy(paas::PolicyArgs),
    /// PaaS: network partitions.
    NetworkPartition(paas::DefArgs),
    /// PaaS: Kubernetes clusters (declared host capacity).
    KubernetesCluster(paas::DefArgs),
    /// PaaS: applications: add, deploy, undeploy, runtime, watch.
    Application(paas::AppArgs),
    /// PaaS: members of deployed applications.
    Member(paas::MemberArgs),
    /// Start a daemon with the PaaS if none runs, build and deploy the sample application, print its URL.
    Up(paas::UpArgs),
    /// The engine's container supervisor (started by the daemon; one per host).
    #[command(hide = true)]
    Supervisor {
        /// Directory of the supervisor's socket, records and runtime state.
        #[arg(long, default_value = "/run/strato/engine")]
        root: std::path::PathBuf,
    },
    #[command(flatten)]
    Client(client::Verb),
}

// `strato runtime …` on its own. The runtime is started once per container
// operation (by the engine's supervisor, by runc's callers), so it parses
// only its own verbs: building the whole command line (engine client, PaaS,
// registry) cost 150 page faults and 0.5 ms of CPU per call.
/// The OCI runtime: run bundles with runc-compatible verbs.
#[derive(Debug, Parser)]
#[command(name = "strato runtime", bin_name = "strato runtime")]
struct RuntimeCli {
    #[command(flatten)]
    args: runtime::RuntimeArgs,
}

// docker's client verbs on their own, for the same reason: `strato run -d`
// is started once per container by scripts and the PaaS. Anything this does
// not parse (another command, --help, a mistake) goes to the whole command
// line, which parses or reports it as before.
#[derive(Debug, Parser)]
#[command(name = "strato")]
struct ClientCli {
    #[command(flatten)]
    client: client::GlobalArgs,
    #[command(subcommand)]
    verb: client::Verb,
}

fn main() {
    if std::env::args_os().nth(1).is_some_and(|a| a == "runtime") {
        let argv = std::iter::once("strato runtime".into()).chain(std::env::args_os().skip(2));
        let cli = RuntimeCli::parse_from::<_, std::ffi::OsString>(argv);
        std::process::exit(run_runtime(cli.args));
    }
    // `run` above all (started once per container): its line alone.
    if std::env::args_os().any(|a| a == "run") {
        if let Some((global, verb)) = client::parse_run_alone(std::env::args_os()) {
            std::process::exit(run_client(global, verb));
        }
    }
    if let Ok(cli) = ClientCli::try_parse() {
        std::process::exit(run_client(cli.client, cli.verb));
    }
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Runtime(args) => run_runtime(*args),
        Command::Daemon(args) => daemon::main(*args),
        Command::Registry(args) => registry::main(*args),
        Command::Lb(args) => lb::main(*args),
        Command::Supervisor { root } => supervisor(&root),
        Command::Cartridge(a) => paas::definitions(strato_paas_model::Kind::Cartridge, a),
        Command::Group(a) => paas::definitions(strato_paas_model::Kind::CartridgeGroup, a),
        Command::Policy(a) => paas::policy(a),
        Command::NetworkPartition(a) => {
            paas::definitions(strato_paas_model::Kind::NetworkPartition, a)
        }
        Command::KubernetesCluster(a) => {
            paas::definitions(strato_paas_model::Kind::KubernetesCluster, a)
        }
        Command::Application(a) => paas::application(a),
        Command::Member(a) => paas::member(a),
        Command::Up(a) => paas::up(cli.client.host.clone(), cli.client.token.clone(), a),
        Command::Client(verb) => run_client(cli.client, verb),
    };
    std::process::exit(code);
}

fn run_client(global: client::GlobalArgs, verb: client::Verb) -> i32 {
    // A command-line tool: `strato ps | head` ends quietly.
    // SAFETY: installing SIG_DFL runs no code of ours in signal context.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    client::main(global, verb)
}

fn run_runtime(args: runtime::RuntimeArgs) -> i32 {
    // A command-line tool: `… | head` ends it quietly, as SIGPIPE does for
    // runc (Rust ignores SIGPIPE by default; containers reset it).
    // SAFETY: installing SIG_DFL runs no code of ours in signal context.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    runtime::main(args)
}

/// Runs the supervisor loop in this (single-threaded) process.
fn supervisor(root: &std::path::Path) -> i32 {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // The log goes to a close-on-exec copy of stderr, which container
    // processes keep until they execute: a container's own setup is logged
    // with the supervisor's lines, never on the container's stderr (which
    // its init has set up by the time it mounts).
    use std::os::fd::{AsFd, AsRawFd};
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => {
            let log = std::fs::File::from(fd);
            strato_container::process::keep_until_exec(log.as_raw_fd());
            let _ = builder.with_writer(std::sync::Mutex::new(log)).try_init();
        }
        Err(_) => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
    }
    let result = strato_supervisor::Supervisor::new(root).and_then(|s| s.run());
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("strato: supervisor: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        super::RuntimeCli::command().debug_assert();
    }

    #[test]
    fn the_runtime_alone_parses_what_the_whole_line_does() {
        let argv = ["create", "--bundle", "/b", "--pid-file", "/p", "id1"];
        let alone = super::RuntimeCli::try_parse_from(
            ["strato runtime", "--root", "/r"].iter().chain(&argv),
        )
        .unwrap();
        let whole =
            Cli::try_parse_from(["strato", "runtime", "--root", "/r"].iter().chain(&argv)).unwrap();
        let super::Command::Runtime(whole) = whole.command else {
            panic!("not the runtime: {whole:?}");
        };
        assert_eq!(format!("{:?}", alone.args), format!("{whole:?}"));
    }

    #[test]
    fn run_alone_parses_what_the_client_line_does() {
        for argv in [
            &["strato", "run", "--rm", "busybox", "true"][..],
            &[
                "strato",
                "-H",
                "unix:///x",
                "run",
                "-d",
                "-p",
                "80:80",
                "--name",
                "a",
                "img",
            ][..],
            &[
                "strato", "run", "-it", "-e", "A=1", "img", "sh", "-c", "exit 3",
            ][..],
            &["strato", "run", "--network", "none", "img", "run", "--rm"][..],
        ] {
            let os = argv.iter().map(std::ffi::OsString::from);
            let (g, v) = crate::client::parse_run_alone(os).expect("parsed");
            let whole = super::ClientCli::try_parse_from(argv).unwrap();
            assert_eq!(
                format!("{g:?} {v:?}"),
                format!("{:?} {:?}", whole.client, whole.verb)
            );
        }
        // Not `run`: the other lines parse it.
        for argv in [
            &["strato", "exec", "c", "run"][..],
            &["strato", "ps"][..],
            &["strato", "run", "--help"][..],
        ] {
            let os = argv.iter().map(std::ffi::OsString::from);
            assert!(crate::client::parse_run_alone(os).is_none(), "{argv:?}");
        }
    }

    #[test]
    fn paas_verbs_take_the_paas_host_before_or_after_the_verb() {
        for args in [
            &[
                "strato",
                "application",
                "--paas-host",
                "unix:///x",
                "runtime",
                "a",
            ][..],
            &[
                "strato",
                "application",
                "runtime",
                "a",
                "--paas-host",
                "unix:///x",
            ][..],
            &["strato", "policy", "autoscaling", "add", "-f", "p.json"][..],
            &["strato", "daemon", "--paas", "--paas-port-offset", "-100"][..],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
}
