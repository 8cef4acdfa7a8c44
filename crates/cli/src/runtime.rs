//! `strato runtime`: the runc-compatible command line of strato-container.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use strato_container::{CreateOptions, ExecOptions, Runtime, DEFAULT_ROOT};

#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Directory of container state.
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write log lines (and errors) to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the log file.
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log debug detail.
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for runc compatibility; strato drives cgroupfs directly.
    #[arg(long = "systemd-cgroup", global = true, hide = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The bundle directory (holding config.json).
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Write the container process's pid here.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Send the pty master of a terminal process to this unix socket.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Pass this many extra file descriptors (from 3 on) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Accepted for runc compatibility.
    #[arg(long = "no-pivot", hide = true)]
    no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long = "no-new-keyring", hide = true)]
    no_new_keyring: bool,
    /// The container id.
    id: String,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Create a container and leave it waiting for `start`.
    Create(CreateArgs),
    /// Start the process of a created container.
    Start { id: String },
    /// Create and start a container; wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the process runs.
        #[arg(short, long)]
        detach: bool,
        /// Accepted for runc compatibility.
        #[arg(long = "no-subreaper", hide = true)]
        no_subreaper: bool,
        /// Accepted for runc compatibility.
        #[arg(long, hide = true)]
        keep: bool,
    },
    /// Print the OCI state of a container.
    State { id: String },
    /// Send a signal (default TERM) to the container process.
    Kill {
        /// Signal every process of the container.
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Delete a container and everything it holds.
    Delete {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        /// Print ids only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the processes of a container.
    Ps {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        id: String,
    },
    /// Run a process in a running container.
    Exec {
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        /// Working directory of the process.
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Set an environment variable (KEY=VALUE).
        #[arg(short, long)]
        env: Vec<String>,
        /// Allocate a pseudo-terminal.
        #[arg(short, long)]
        tty: bool,
        /// UID[:GID] to run as.
        #[arg(short, long)]
        user: Option<String>,
        /// Additional group ids.
        #[arg(short = 'g', long = "additional-gids")]
        additional_gids: Vec<u32>,
        /// A process.json describing the whole process.
        #[arg(short, long)]
        process: Option<PathBuf>,
        /// Return once the process runs.
        #[arg(short, long)]
        detach: bool,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        /// Set no_new_privs for the process.
        #[arg(long = "no-new-privs")]
        no_new_privs: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: u32,
        id: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print container events; with --stats, one statistics sample.
    Events {
        #[arg(long)]
        stats: bool,
        /// Seconds between samples when streaming.
        #[arg(long, default_value_t = 5)]
        interval: u64,
        id: String,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Map the current user to root in a user namespace.
        #[arg(long = "rootless")]
        rootless: bool,
        /// Include strato's Docker-like default seccomp profile.
        #[arg(long)]
        seccomp: bool,
    },
}

fn create_options(a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        ..Default::default()
    }
}

fn parse_user(s: &str) -> anyhow::Result<(u32, u32)> {
    let (u, g) = s.split_once(':').unwrap_or((s, "0"));
    let parse = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| anyhow::anyhow!("--user {s:?} must be numeric UID[:GID]"))
    };
    Ok((parse(u)?, parse(g)?))
}

/// Runs a `strato runtime` invocation; returns the process exit code.
pub fn main(args: RuntimeArgs) -> i32 {
    init_logging(&args);
    match dispatch(args.verb, &Runtime::new(&args.root)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("strato: {e:#}");
            1
        }
    }
}

fn init_logging(args: &RuntimeArgs) {
    let level = if args.debug { "debug" } else { "warn" };
    let Some(path) = &args.log else {
        return;
    };
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        eprintln!("strato: cannot open log file {}", path.display());
        return;
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false);
    let _ = match args.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn dispatch(verb: Verb, rt: &Runtime) -> anyhow::Result<i32> {
    match verb {
        Verb::Create(a) => {
            rt.create(&create_options(&a))?;
        }
        Verb::Start { id } => rt.start(&id)?,
        Verb::Run { create, detach, .. } => return Ok(rt.run(&create_options(&create), detach)?),
        Verb::State { id } => print_json(&rt.state(&id)?)?,
        Verb::Kill { all, id, signal } => {
            rt.kill(&id, strato_container::signal::parse(&signal)?, all)?
        }
        Verb::Delete { force, id } => rt.delete(&id, force)?,
        Verb::List { format, quiet } => {
            let list = rt.list()?;
            if quiet {
                for (s, _) in &list {
                    println!("{}", s.id);
                }
            } else if format == Format::Json {
                let v: Vec<_> = list
                    .iter()
                    .map(|(s, st)| {
                        serde_json::json!({
                            "ociVersion": s.spec.version(), "id": s.id,
                            "pid": if *st == strato_container::Status::Stopped { 0 } else { s.pid },
                            "status": st.as_str(), "bundle": s.bundle, "rootfs": s.rootfs,
                            "created": s.created, "owner": "root",
                            "annotations": s.spec.annotations().clone().unwrap_or_default(),
                        })
                    })
                    .collect();
                print_json(&v)?;
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "{:<24} {:<8} {:<10} {:<40} {:<32} OWNER",
                    "ID", "PID", "STATUS", "BUNDLE", "CREATED"
                )?;
                for (s, st) in &list {
                    let pid = if *st == strato_container::Status::Stopped {
                        0
                    } else {
                        s.pid
                    };
                    writeln!(
                        out,
                        "{:<24} {:<8} {:<10} {:<40} {:<32} root",
                        s.id,
                        pid,
                        st.as_str(),
                        s.bundle.display(),
                        s.created
                    )?;
                }
            }
        }
        Verb::Ps { format, id } => {
            let pids = rt.ps(&id)?;
            if format == Format::Json {
                print_json(&pids)?;
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(out, "PID")?;
                for p in pids {
                    writeln!(out, "{p}")?;
                }
            }
        }
        Verb::Exec {
            console_socket,
            cwd,
            env,
            tty,
            user,
            additional_gids,
            process,
            detach,
            pid_file,
            no_new_privs,
            preserve_fds,
            id,
            command,
        } => {
            let process = match process {
                Some(p) => {
                    let f = std::fs::File::open(&p)
                        .map_err(|e| anyhow::anyhow!("--process {}: {e}", p.display()))?;
                    Some(
                        serde_json::from_reader(std::io::BufReader::new(f))
                            .map_err(|e| anyhow::anyhow!("--process {}: {e}", p.display()))?,
                    )
                }
                None => None,
            };
            let opts = ExecOptions {
                process,
                args: command,
                env,
                cwd,
                user: user.as_deref().map(parse_user).transpose()?,
                additional_gids,
                tty,
                no_new_privs,
                console_socket,
                pid_file,
                detach,
                preserve_fds,
                ..Default::default()
            };
            return Ok(rt.exec(&id, &opts)?);
        }
        Verb::Events {
            stats,
            interval,
            id,
        } => loop {
            print_json(&rt.stats(&id)?)?;
            if stats {
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(interval.max(1)));
        },
        Verb::Pause { id } => rt.set_paused(&id, true)?,
        Verb::Resume { id } => rt.set_paused(&id, false)?,
        Verb::Spec {
            bundle,
            rootless,
            seccomp,
        } => {
            let path = bundle.join("config.json");
            if path.exists() {
                anyhow::bail!("{} exists already: remove it first", path.display());
            }
            let mut spec = strato_container::specgen::default_spec(rootless);
            if seccomp {
                spec["linux"]["seccomp"] = serde_json::to_value(strato_seccomp::default_profile())?;
            }
            let text = serde_json::to_string_pretty(&spec)?;
            std::fs::write(&path, text + "\n")
                .map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))?;
        }
    }
    Ok(0)
}
