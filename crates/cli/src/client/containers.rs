//! Container verbs: run, create, start, stop, restart, kill, rm, ps, logs,
//! exec, attach, wait, top, stats.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::StreamExt;
use strato_client::types::*;
use strato_client::{Client, Session, StreamKind};
use tokio::io::AsyncWriteExt;

use super::format::{self, Table};
use super::opts::{self, ContainerOpts};
use super::template::Template;
use super::tty::{self, RawMode};
use super::{each, now, report};

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run the container in the background and print its ID.
    #[arg(short = 'd', long)]
    detach: bool,
    #[command(flatten)]
    opts: ContainerOpts,
    /// Print help (-h is --hostname, as in docker).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    image_and_cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Targets {
    /// Containers (names, IDs or ID prefixes).
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals.
    #[arg(short = 'a', long)]
    attach: bool,
    /// Attach the container's STDIN.
    #[arg(short = 'i', long)]
    interactive: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container.
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        allow_negative_numbers = true
    )]
    time: Option<i64>,
    /// Signal to send to the container.
    #[arg(short = 's', long)]
    signal: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container.
    #[arg(short = 's', long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove anonymous volumes associated with the container.
    #[arg(short = 'v', long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display container IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Filter output based on conditions provided (key=value).
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Show the n last created containers.
    #[arg(short = 'n', long)]
    last: Option<usize>,
    /// Show the latest created container.
    #[arg(short = 'l', long)]
    latest: bool,
    /// Format each container with a template ({{.ID}} {{.Names}} {{.Status}}…).
    #[arg(long)]
    format: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of lines to show from the end of the logs ("all" for all).
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since a timestamp or relative time (e.g. 42m).
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp or relative time.
    #[arg(long)]
    until: Option<String>,
    /// Show timestamps.
    #[arg(short = 't', long)]
    timestamps: bool,
    container: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep STDIN open.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    tty: bool,
    /// Run the command in the background.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// Username or UID (format: name|uid[:group|gid]).
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Give extended privileges to the command.
    #[arg(long)]
    privileged: bool,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "CONTAINER COMMAND [ARG...]")]
    container_and_cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach STDIN.
    #[arg(long)]
    no_stdin: bool,
    container: String,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    container: String,
    /// ps options.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    all: bool,
    /// Print one sample and exit.
    #[arg(long)]
    no_stream: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    containers: Vec<String>,
}

// ---------------------------------------------------------------- run/create

/// Exit code for a failed start, as docker chooses it.
fn start_failure_code(e: &anyhow::Error) -> i32 {
    let m = e.to_string();
    if m.contains("executable file not found")
        || m.contains("no such file or directory")
        || m.contains("not found in $PATH")
    {
        127
    } else if m.contains("permission denied") {
        126
    } else {
        125
    }
}

/// Creates the container, pulling the image first when the daemon does not
/// have it (as docker does).
async fn create_container(
    c: &Client,
    name: Option<&str>,
    cfg: &ContainerCreateConfig,
) -> Result<String> {
    match c.container_create(name, cfg).await {
        Ok(r) => {
            for w in r.warnings {
                eprintln!("WARNING: {w}");
            }
            Ok(r.id)
        }
        Err(e) if e.is_not_found() && e.to_string().contains("No such image") => {
            eprintln!("Unable to find image '{}' locally", cfg.config.image);
            let (repo, tag) = format::split_reference(&cfg.config.image);
            let p = c
                .image_pull(&PullOptions {
                    from_image: repo,
                    tag,
                    ..Default::default()
                })
                .await?;
            super::progress::render(p, &mut std::io::stderr()).await?;
            let r = c.container_create(name, cfg).await?;
            Ok(r.id)
        }
        Err(e) => Err(e.into()),
    }
}

fn split_first(v: &[String]) -> (String, Vec<String>) {
    (v[0].clone(), v[1..].to_vec())
}

pub async fn create(c: &Client, a: RunArgs) -> Result<i32> {
    let (image, cmd) = split_first(&a.image_and_cmd);
    let cfg = match opts::create_config(&a.opts, &image, &cmd, false, |k| std::env::var(k).ok()) {
        Ok(cfg) => cfg,
        Err(e) => {
            report(&e);
            return Ok(125);
        }
    };
    match create_container(c, a.opts.name.as_deref(), &cfg).await {
        Ok(id) => {
            println!("{id}");
            Ok(0)
        }
        Err(e) => {
            report(&e);
            Ok(125)
        }
    }
}

pub async fn run(c: &Client, a: RunArgs) -> Result<i32> {
    let (image, cmd) = split_first(&a.image_and_cmd);
    let o = &a.opts;
    if o.tty && o.interactive && !a.detach && !std::io::stdin().is_terminal() {
        eprintln!("strato: the input device is not a TTY; drop -t to pipe input through -i");
        return Ok(1);
    }
    let cfg = match opts::create_config(o, &image, &cmd, !a.detach, |k| std::env::var(k).ok()) {
        Ok(mut cfg) => {
            // The TTY's first size, so the process sees it from its first
            // instruction (resizes follow on SIGWINCH).
            if o.tty && !a.detach {
                cfg.host_config.console_size =
                    tty::window_size().map(|(h, w)| [u64::from(h), u64::from(w)]);
            }
            cfg
        }
        Err(e) => {
            report(&e);
            return Ok(125);
        }
    };
    let id = match create_container(c, o.name.as_deref(), &cfg).await {
        Ok(id) => id,
        Err(e) => {
            report(&e);
            return Ok(125);
        }
    };
    if a.detach {
        if let Err(e) = c.container_start(&id).await {
            let e = anyhow::Error::from(e);
            report(&e);
            if o.rm {
                let _ = c
                    .container_remove(
                        &id,
                        RemoveOptions {
                            force: true,
                            ..Default::default()
                        },
                    )
                    .await;
            }
            return Ok(start_failure_code(&e));
        }
        println!("{id}");
        return Ok(0);
    }
    // Attach and wait before start, so no output and no exit is missed.
    let attached = async {
        let session = c
            .container_attach(
                &id,
                &AttachOptions {
                    stream: true,
                    stdin: o.interactive,
                    stdout: true,
                    stderr: true,
                    ..Default::default()
                },
            )
            .await?;
        let cond = if o.rm {
            WaitCondition::Removed
        } else {
            WaitCondition::NextExit
        };
        let wait = c.container_wait(&id, cond).await?;
        Ok::<_, strato_client::Error>((session, wait))
    };
    let (session, wait) = match attached.await {
        Ok(x) => x,
        Err(e) => {
            report(&e.into());
            if o.rm {
                // --rm promised no leftover: the container never started.
                let _ = c
                    .container_remove(
                        &id,
                        RemoveOptions {
                            force: true,
                            ..Default::default()
                        },
                    )
                    .await;
            }
            return Ok(125);
        }
    };
    // Raw mode only when our keystrokes go to the container (-i), as docker does.
    let raw = if o.tty && o.interactive && std::io::stdin().is_terminal() {
        Some(RawMode::enable()?)
    } else {
        None
    };
    if let Err(e) = c.container_start(&id).await {
        drop(raw);
        let e = anyhow::Error::from(e);
        report(&e);
        if o.rm {
            let _ = c
                .container_remove(
                    &id,
                    RemoveOptions {
                        force: true,
                        ..Default::default()
                    },
                )
                .await;
        }
        return Ok(start_failure_code(&e));
    }
    let side_tasks = side_tasks(c, &id, o.tty, None);
    let pumped = pump(session, o.interactive).await;
    if matches!(pumped, Ok(Pumped::Detached)) {
        side_tasks.iter().for_each(|t| t.abort());
        drop(raw);
        eprintln!("\r\nread escape sequence");
        return Ok(0);
    }
    let status = wait.await;
    for t in side_tasks {
        t.abort();
    }
    drop(raw);
    pumped?;
    let status = status?;
    Ok(status.status_code as i32)
}

/// Window-size forwarding for a TTY (now and on SIGWINCH); signal forwarding
/// (SIGINT, SIGTERM → the container) without one.
fn side_tasks(
    c: &Client,
    id: &str,
    tty: bool,
    exec_id: Option<String>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if tty {
        if std::io::stdout().is_terminal() {
            let (c, id) = (c.clone(), id.to_string());
            tasks.push(tokio::spawn(async move {
                let resize = |h: u16, w: u16| {
                    let (c, id, exec_id) = (c.clone(), id.clone(), exec_id.clone());
                    async move {
                        let r = match &exec_id {
                            Some(e) => c.exec_resize(e, h, w).await,
                            None => c.container_resize(&id, h, w).await,
                        };
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "resize failed");
                        }
                    }
                };
                if let Some((h, w)) = tty::window_size() {
                    resize(h, w).await;
                }
                let Ok(mut winch) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
                else {
                    return;
                };
                while winch.recv().await.is_some() {
                    if let Some((h, w)) = tty::window_size() {
                        resize(h, w).await;
                    }
                }
            }));
        }
    } else if exec_id.is_none() {
        use tokio::signal::unix::{signal, SignalKind};
        let (c, id) = (c.clone(), id.to_string());
        tasks.push(tokio::spawn(async move {
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            loop {
                let sig = tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                };
                let _ = c.container_kill(&id, Some(sig)).await;
            }
        }));
    }
    tasks
}

/// How a relayed session ended.
#[derive(Debug, PartialEq, Eq)]
enum Pumped {
    /// The process's output ended.
    Ended,
    /// The user typed the detach sequence: the process goes on without us.
    Detached,
}

/// Docker's default detach sequence, ctrl-p ctrl-q, found in typed input.
/// A ctrl-p is held back until the next byte shows whether it starts the
/// sequence (then nothing of it is forwarded) or not (then it is).
#[derive(Debug, Default)]
pub struct DetachScanner {
    held_ctrl_p: bool,
}

impl DetachScanner {
    const CTRL_P: u8 = 0x10;
    const CTRL_Q: u8 = 0x11;

    /// The bytes of `input` to forward, and whether the sequence was typed
    /// (the bytes after it are dropped).
    pub fn scan(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len() + 1);
        for &b in input {
            if self.held_ctrl_p {
                self.held_ctrl_p = false;
                if b == Self::CTRL_Q {
                    return (out, true);
                }
                out.push(Self::CTRL_P);
            }
            if b == Self::CTRL_P {
                self.held_ctrl_p = true;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// Relays a session: output to our stdout/stderr, our stdin to the
/// process (half-closed at end of file) when `stdin`. Returns when the
/// output ends, or when a user at a terminal types ctrl-p ctrl-q.
async fn pump(session: Session, stdin: bool) -> Result<Pumped> {
    let Session {
        stdin: sink,
        mut output,
        ..
    } = session;
    let mut feeder = None;
    let (detach_tx, mut detach_rx) = tokio::sync::oneshot::channel::<()>();
    if let (true, Some(mut sink)) = (stdin, sink) {
        let keys = std::io::stdin().is_terminal();
        feeder = Some(tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut input = tokio::io::stdin();
            let mut scanner = DetachScanner::default();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = match input.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (data, detach) = if keys {
                    scanner.scan(&buf[..n])
                } else {
                    (buf[..n].to_vec(), false)
                };
                if !data.is_empty()
                    && (sink.write_all(&data).await.is_err() || sink.flush().await.is_err())
                {
                    break;
                }
                if detach {
                    let _ = detach_tx.send(());
                    // The session is over for us; keep the write half open
                    // (closing it would end the process's stdin).
                    return futures::future::pending::<()>().await;
                }
            }
            let _ = sink.shutdown().await;
            // Keep the write half alive until the session ends.
            futures::future::pending::<()>().await;
        }));
    }
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    let mut result = Ok(Pumped::Ended);
    // Whether the detach signal can still come (no feeder: it cannot).
    let mut detach_open = true;
    loop {
        let chunk = tokio::select! {
            c = output.next() => c,
            r = &mut detach_rx, if detach_open => {
                if r.is_ok() {
                    result = Ok(Pumped::Detached);
                    break;
                }
                detach_open = false;
                continue;
            }
        };
        let Some(chunk) = chunk else { break };
        match chunk {
            Ok(ch) => {
                let w: &mut (dyn tokio::io::AsyncWrite + Unpin) = match ch.kind {
                    StreamKind::Stderr => &mut err,
                    _ => &mut out,
                };
                if w.write_all(&ch.data).await.is_err() || w.flush().await.is_err() {
                    break;
                }
            }
            Err(e) => {
                result = Err(e.into());
                break;
            }
        }
    }
    if let Some(f) = feeder {
        f.abort();
    }
    result
}

// ---------------------------------------------------------------- lifecycle

pub async fn start(c: &Client, a: StartArgs) -> Result<i32> {
    if !a.attach && !a.interactive {
        return each(&a.containers, |id| async move {
            Ok(c.container_start(&id).await?)
        })
        .await;
    }
    if a.containers.len() > 1 {
        bail!("you cannot attach to more than one container: start them without -a/-i");
    }
    let id = &a.containers[0];
    let info = c.container_inspect(id).await?;
    let session = c
        .container_attach(
            id,
            &AttachOptions {
                stream: true,
                stdin: a.interactive && info.config.open_stdin,
                stdout: true,
                stderr: true,
                ..Default::default()
            },
        )
        .await?;
    let wait = c.container_wait(id, WaitCondition::NextExit).await?;
    let raw = if info.config.tty && a.interactive && std::io::stdin().is_terminal() {
        Some(RawMode::enable()?)
    } else {
        None
    };
    c.container_start(id).await?;
    let tasks = side_tasks(c, id, info.config.tty, None);
    let pumped = pump(session, a.interactive && info.config.open_stdin).await;
    if matches!(pumped, Ok(Pumped::Detached)) {
        tasks.iter().for_each(|t| t.abort());
        drop(raw);
        eprintln!("\r\nread escape sequence");
        return Ok(0);
    }
    let status = wait.await;
    tasks.iter().for_each(|t| t.abort());
    drop(raw);
    pumped?;
    Ok(status?.status_code as i32)
}

pub async fn stop(c: &Client, a: StopArgs, restart: bool) -> Result<i32> {
    let o = StopOptions {
        signal: a.signal.clone(),
        timeout: a.time,
    };
    each(&a.containers, |id| {
        let o = o.clone();
        async move {
            if restart {
                c.container_restart(&id, &o).await?;
            } else {
                c.container_stop(&id, &o).await?;
            }
            Ok(())
        }
    })
    .await
}

pub async fn kill(c: &Client, a: KillArgs) -> Result<i32> {
    let sig = a.signal.clone();
    each(&a.containers, |id| {
        let sig = sig.clone();
        async move { Ok(c.container_kill(&id, Some(&sig)).await?) }
    })
    .await
}

pub async fn rm(c: &Client, a: RmArgs) -> Result<i32> {
    let o = RemoveOptions {
        force: a.force,
        volumes: a.volumes,
        link: false,
    };
    each(&a.containers, |id| async move {
        Ok(c.container_remove(&id, o).await?)
    })
    .await
}

pub async fn wait(c: &Client, a: Targets) -> Result<i32> {
    let mut code = 0;
    for id in &a.containers {
        let r = async { c.container_wait(id, WaitCondition::NotRunning).await?.await }.await;
        match r {
            Ok(w) => println!("{}", w.status_code),
            Err(e) => {
                report(&e.into());
                code = 1;
            }
        }
    }
    Ok(code)
}

// ---------------------------------------------------------------- ps

pub async fn ps(c: &Client, a: PsArgs) -> Result<i32> {
    let limit = if a.latest { Some(1) } else { a.last };
    let list = c
        .container_list(&ContainerListOptions {
            all: a.all || limit.is_some(),
            limit,
            size: false,
            filters: opts::parse_filters(&a.filter)?,
        })
        .await?;
    let trunc = !a.no_trunc;
    let id = |s: &str| {
        if trunc {
            format::short_id(s)
        } else {
            s.to_string()
        }
    };
    if a.quiet {
        for s in &list {
            println!("{}", id(&s.id));
        }
        return Ok(0);
    }
    let now = now() as i64;
    if let Some(f) = &a.format {
        let t = Template::parse(f)?;
        for s in &list {
            let row = serde_json::json!({
                "ID": id(&s.id), "Image": s.image, "Command": format::command_cell(&s.command, trunc),
                "CreatedAt": strato_image::time::format(s.created, 0),
                "RunningFor": format::time_ago(s.created, now),
                "Ports": format::ports_cell(&s.ports), "State": s.state, "Status": s.status,
                "Names": format::names_cell(&s.names), "Labels": s.labels,
                "Mounts": s.mounts.iter().map(|m| if m.name.is_empty() { m.source.clone() } else { m.name.clone() }).collect::<Vec<_>>().join(","),
                "Networks": s.network_settings.networks.keys().cloned().collect::<Vec<_>>().join(","),
            });
            println!("{}", t.render(&row)?);
        }
        return Ok(0);
    }
    let mut t = Table::new(&[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]);
    for s in &list {
        let image = if trunc && s.image.starts_with("sha256:") {
            format::short_id(&s.image)
        } else {
            s.image.clone()
        };
        t.row(vec![
            id(&s.id),
            image,
            format::command_cell(&s.command, trunc),
            format::time_ago(s.created, now),
            s.status.clone(),
            format::ports_cell(&s.ports),
            format::names_cell(&s.names),
        ]);
    }
    print!("{}", t.render());
    Ok(0)
}

// ---------------------------------------------------------------- logs

pub async fn logs(c: &Client, a: LogsArgs) -> Result<i32> {
    let n = now();
    let tail =
        match a.tail.as_str() {
            "all" | "" => None,
            t => Some(t.parse::<i64>().with_context(|| {
                format!("invalid --tail {t:?}: give a number of lines or \"all\"")
            })?),
        };
    let opts = LogsOptions {
        follow: a.follow,
        stdout: true,
        stderr: true,
        since: a
            .since
            .as_deref()
            .map(|s| opts::parse_time(s, n))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|s| opts::parse_time(s, n))
            .transpose()?,
        timestamps: a.timestamps,
        tail: tail.filter(|t| *t >= 0).map(|t| t as usize),
    };
    let output = c.container_logs(&a.container, &opts).await?;
    pump(
        Session {
            tty: false,
            stdin: None,
            output,
        },
        false,
    )
    .await?;
    Ok(0)
}

// ---------------------------------------------------------------- exec/attach

pub async fn exec(c: &Client, a: ExecArgs) -> Result<i32> {
    let (container, cmd) = split_first(&a.container_and_cmd);
    if a.tty && a.interactive && !std::io::stdin().is_terminal() {
        eprintln!("strato: the input device is not a TTY; drop -t to pipe input through -i");
        return Ok(1);
    }
    let env: Vec<String> = a
        .env
        .iter()
        .filter_map(|e| opts::parse_env(e, |k| std::env::var(k).ok()))
        .collect::<Result<_>>()?;
    let size = if a.tty {
        tty::window_size().map(|(h, w)| [u64::from(h), u64::from(w)])
    } else {
        None
    };
    let cfg = ExecConfig {
        attach_stdin: a.interactive && !a.detach,
        attach_stdout: !a.detach,
        attach_stderr: !a.detach,
        tty: a.tty,
        console_size: size,
        env: (!env.is_empty()).then_some(env),
        cmd,
        privileged: a.privileged,
        user: a.user.clone().unwrap_or_default(),
        working_dir: a.workdir.clone().unwrap_or_default(),
        ..Default::default()
    };
    let exec_id = c.exec_create(&container, &cfg).await?.id;
    let start = ExecStartConfig {
        detach: a.detach,
        tty: a.tty,
        console_size: size,
    };
    if a.detach {
        c.exec_start(&exec_id, &start).await?;
        return Ok(0);
    }
    let raw = if a.tty && a.interactive && std::io::stdin().is_terminal() {
        Some(RawMode::enable()?)
    } else {
        None
    };
    let session = c.exec_start(&exec_id, &start).await?;
    let tasks = side_tasks(c, &container, a.tty, Some(exec_id.clone()));
    let pumped = pump(session, a.interactive).await;
    tasks.iter().for_each(|t| t.abort());
    drop(raw);
    if pumped? == Pumped::Detached {
        eprintln!("\r\nread escape sequence");
        return Ok(0);
    }
    // The output ended with the process; its exit code may land a moment
    // later (polled for up to 10 s on a loaded host).
    for _ in 0..500 {
        let i = c.exec_inspect(&exec_id).await?;
        if let (false, Some(code)) = (i.running, i.exit_code) {
            return Ok(code as i32);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    bail!("exec {exec_id}: the process's output ended but the daemon reports no exit code")
}

pub async fn attach(c: &Client, a: AttachArgs) -> Result<i32> {
    let info = c.container_inspect(&a.container).await?;
    if !info.state.running {
        bail!("you cannot attach to a stopped container, start it first");
    }
    let stdin = !a.no_stdin && info.config.open_stdin;
    let session = c
        .container_attach(
            &a.container,
            &AttachOptions {
                stream: true,
                stdin,
                stdout: true,
                stderr: true,
                ..Default::default()
            },
        )
        .await?;
    let raw = if info.config.tty && stdin && std::io::stdin().is_terminal() {
        Some(RawMode::enable()?)
    } else {
        None
    };
    let tasks = side_tasks(c, &a.container, info.config.tty, None);
    let pumped = pump(session, stdin).await;
    tasks.iter().for_each(|t| t.abort());
    drop(raw);
    if pumped? == Pumped::Detached {
        eprintln!("\r\nread escape sequence");
        return Ok(0);
    }
    let w = c
        .container_wait(&a.container, WaitCondition::NotRunning)
        .await?
        .await?;
    Ok(w.status_code as i32)
}

// ---------------------------------------------------------------- top/stats

pub async fn top(c: &Client, a: TopArgs) -> Result<i32> {
    let args = a.ps_args.join(" ");
    let t = c
        .container_top(&a.container, (!args.is_empty()).then_some(args.as_str()))
        .await?;
    let titles: Vec<&str> = t.titles.iter().map(String::as_str).collect();
    let mut table = Table::new(&titles);
    for p in t.processes {
        table.row(p);
    }
    print!("{}", table.render());
    Ok(0)
}

/// CPU % of a sample, as docker computes it (share of the host's CPU time
/// times the number of CPUs).
pub fn cpu_percent(s: &StatsResponse) -> f64 {
    let cpu =
        s.cpu_stats.cpu_usage.total_usage as f64 - s.precpu_stats.cpu_usage.total_usage as f64;
    let sys = s.cpu_stats.system_cpu_usage as f64 - s.precpu_stats.system_cpu_usage as f64;
    let ncpu = match s.cpu_stats.online_cpus {
        0 => s
            .cpu_stats
            .cpu_usage
            .percpu_usage
            .as_ref()
            .map(Vec::len)
            .unwrap_or(1) as f64,
        n => f64::from(n),
    };
    if cpu > 0.0 && sys > 0.0 {
        cpu / sys * ncpu * 100.0
    } else {
        0.0
    }
}

fn stats_row(s: &StatsResponse, id: &str, name: &str, trunc: bool) -> Vec<String> {
    // Page cache does not count as usage (cgroup v2 inactive_file, v1 total_inactive_file).
    let cache = s
        .memory_stats
        .stats
        .get("inactive_file")
        .or_else(|| s.memory_stats.stats.get("total_inactive_file"))
        .copied()
        .unwrap_or(0);
    let mem = s.memory_stats.usage.saturating_sub(cache);
    let limit = s.memory_stats.limit;
    let mem_pct = if limit > 0 {
        mem as f64 / limit as f64 * 100.0
    } else {
        0.0
    };
    let (rx, tx) = s
        .networks
        .as_ref()
        .map(|n| {
            n.values()
                .fold((0, 0), |(r, t), x| (r + x.rx_bytes, t + x.tx_bytes))
        })
        .unwrap_or((0, 0));
    let (rd, wr) = s
        .blkio_stats
        .io_service_bytes_recursive
        .as_ref()
        .map(|v| {
            v.iter().fold((0, 0), |(r, w), e| {
                match e.op.to_ascii_lowercase().as_str() {
                    "read" => (r + e.value, w),
                    "write" => (r, w + e.value),
                    _ => (r, w),
                }
            })
        })
        .unwrap_or((0, 0));
    vec![
        if trunc {
            format::short_id(id)
        } else {
            id.to_string()
        },
        name.trim_start_matches('/').to_string(),
        format!("{:.2}%", cpu_percent(s)),
        format!(
            "{} / {}",
            format::binary_size(mem),
            format::binary_size(limit)
        ),
        format!("{mem_pct:.2}%"),
        format!("{} / {}", format::io_size(rx), format::io_size(tx)),
        format!("{} / {}", format::io_size(rd), format::io_size(wr)),
        s.pids_stats.current.to_string(),
    ]
}

const STATS_HEADER: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

pub async fn stats(c: &Client, a: StatsArgs) -> Result<i32> {
    let targets: Vec<(String, String)> = if a.containers.is_empty() {
        c.container_list(&ContainerListOptions {
            all: a.all,
            ..Default::default()
        })
        .await?
        .into_iter()
        .map(|s| (s.id, s.names.first().cloned().unwrap_or_default()))
        .collect()
    } else {
        let mut v = Vec::new();
        for n in &a.containers {
            let i = c.container_inspect(n).await?;
            v.push((i.id, i.name));
        }
        v
    };
    let trunc = !a.no_trunc;
    if a.no_stream {
        let mut t = Table::new(&STATS_HEADER);
        for (id, name) in &targets {
            let mut s = c.container_stats(id, false).await?;
            let sample = s.next().await.transpose()?.unwrap_or_default();
            t.row(stats_row(&sample, id, name, trunc));
        }
        print!("{}", t.render());
        return Ok(0);
    }
    // Streaming: one stream per container, the table redrawn each second.
    let latest = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    for (id, name) in &targets {
        let mut s = c.container_stats(id, true).await?;
        let (latest, id, name) = (latest.clone(), id.clone(), name.clone());
        tokio::spawn(async move {
            while let Some(Ok(sample)) = s.next().await {
                latest
                    .lock()
                    .expect("stats lock")
                    .insert(id.clone(), stats_row(&sample, &id, &name, trunc));
            }
        });
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let mut t = Table::new(&STATS_HEADER);
        for row in latest.lock().expect("stats lock").values() {
            t.row(row.clone());
        }
        // Clear the screen and home the cursor, as docker stats does.
        print!("\x1b[2J\x1b[H{}", t.render());
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_like_docker() {
        let mut s = StatsResponse::default();
        s.precpu_stats.cpu_usage.total_usage = 1_000;
        s.cpu_stats.cpu_usage.total_usage = 51_000;
        s.precpu_stats.system_cpu_usage = 100_000;
        s.cpu_stats.system_cpu_usage = 300_000;
        s.cpu_stats.online_cpus = 4;
        assert!((cpu_percent(&s) - 100.0).abs() < 1e-9);
        assert_eq!(cpu_percent(&StatsResponse::default()), 0.0);
        let row = stats_row(&s, "0123456789abcdef", "/web", true);
        assert_eq!(row[0], "0123456789ab");
        assert_eq!(row[1], "web");
        assert_eq!(row[2], "100.00%");
    }

    #[test]
    fn detach_sequence_is_found_across_reads_and_not_forwarded() {
        let mut d = DetachScanner::default();
        assert_eq!(d.scan(b"ls\r"), (b"ls\r".to_vec(), false));
        // ctrl-p then another key: both go through, in order.
        assert_eq!(d.scan(&[b'a', 0x10]), (vec![b'a'], false));
        assert_eq!(d.scan(b"x"), (vec![0x10, b'x'], false));
        // ctrl-p ctrl-q split over two reads: nothing of it is forwarded.
        assert_eq!(d.scan(&[b'y', 0x10]), (vec![b'y'], false));
        assert_eq!(d.scan(&[0x11, b'z']), (vec![], true));
        let mut d = DetachScanner::default();
        assert_eq!(d.scan(&[b'k', 0x10, 0x11, b'z']), (vec![b'k'], true));
        assert_eq!(
            DetachScanner::default().scan(&[0x10, 0x10, 0x11]),
            (vec![0x10], true)
        );
    }

    #[test]
    fn start_failure_codes() {
        let e = |m: &str| anyhow::anyhow!(m.to_string());
        assert_eq!(
            start_failure_code(&e("exec: \"nope\": executable file not found in $PATH")),
            127
        );
        assert_eq!(start_failure_code(&e("exec /x: permission denied")), 126);
        assert_eq!(start_failure_code(&e("cgroup setup failed")), 125);
    }
}
