//! `strato runtime`: the runc-compatible command line of strato-container.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use oci_spec::runtime::{Capability, LinuxResources, Process};
use strato_container::control;
use strato_container::{CreateOptions, ExecOptions, Runtime, Status, DEFAULT_ROOT};

/// The runtime-spec version strato implements.
const SPEC_VERSION: &str = "1.2.0";
/// The runc release whose command line `strato runtime` follows.
const RUNC_CLI_VERSION: &str = "1.2.0";

#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct RuntimeArgs {
    /// Directory of container state [default: /run/strato/runtime].
    #[arg(long, global = true)]
    root: Option<PathBuf>,
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
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    verb: Option<Verb>,
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
    /// Send a pidfd of the container process to this unix socket.
    #[arg(long = "pidfd-socket")]
    pidfd_socket: Option<PathBuf>,
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
        /// Keep the stopped container (state and cgroup) after it exits.
        #[arg(long)]
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
        /// Kill a running container first; a missing container is no error.
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
    /// List the processes of a container (the table is ps(1)'s, `-ef` by default).
    Ps {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        id: String,
        /// Options for ps(1), instead of -ef.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
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
        /// Exec into a paused container: the process starts once the
        /// container is resumed (runc starts it frozen; strato waits).
        #[arg(long = "ignore-paused")]
        ignore_paused: bool,
        /// Run in a sub-cgroup of the container's cgroup:
        /// `[CONTROLLER[,CONTROLLER]:]PATH` (repeatable; without controllers,
        /// for all of them).
        #[arg(long)]
        cgroup: Vec<String>,
        /// Add a capability to the bounding, effective and permitted sets
        /// (and ambient, if the process has inheritable ones).
        #[arg(short = 'c', long = "cap")]
        cap: Vec<String>,
        /// Send a pidfd of the process to this unix socket (needs --detach).
        #[arg(long = "pidfd-socket")]
        pidfd_socket: Option<PathBuf>,
        id: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print container events (stats samples and OOM kills) until it is
    /// gone; with --stats, one statistics sample.
    Events {
        #[arg(long)]
        stats: bool,
        /// Time between samples when streaming: 5s, 100ms, 1m30s.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        interval: Duration,
        id: String,
    },
    /// Change the resource limits of a created, running or paused container.
    Update(UpdateArgs),
    /// Print the features this runtime supports, as JSON.
    Features,
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

#[derive(Debug, Args)]
struct UpdateArgs {
    /// Read the resources (linux.resources JSON) from this file, or `-` for
    /// stdin; the other options are then ignored.
    #[arg(short = 'r', long)]
    resources: Option<String>,
    /// Block I/O weight (10-1000).
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// CFS period in microseconds.
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CFS quota in microseconds (-1: none).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CFS burst in microseconds.
    #[arg(long = "cpu-burst")]
    cpu_burst: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", visible_alias = "cpu-shares")]
    cpu_share: Option<u64>,
    /// Realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds.
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    /// SCHED_IDLE for the cgroup (1) or not (0).
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    cpu_idle: Option<i64>,
    /// CPUs to use (cpuset list, e.g. 0-2,4).
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Memory limit: bytes or a size like 50M (-1: none).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_size)]
    memory: Option<i64>,
    /// Memory soft limit: bytes or a size like 50M.
    #[arg(long = "memory-reservation", allow_hyphen_values = true, value_parser = parse_size)]
    memory_reservation: Option<i64>,
    /// Memory plus swap limit (-1: no swap limit).
    #[arg(long = "memory-swap", allow_hyphen_values = true, value_parser = parse_size)]
    memory_swap: Option<i64>,
    /// Obsolete; accepted and ignored.
    #[arg(long = "kernel-memory", hide = true)]
    kernel_memory: Option<String>,
    /// Obsolete; accepted and ignored.
    #[arg(long = "kernel-memory-tcp", hide = true)]
    kernel_memory_tcp: Option<String>,
    /// Maximum number of pids (-1: no limit).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported).
    #[arg(long = "l3-cache-schema", hide = true)]
    l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported).
    #[arg(long = "mem-bw-schema", hide = true)]
    mem_bw_schema: Option<String>,
    id: String,
}

fn parse_size(s: &str) -> Result<i64, String> {
    control::parse_ram(s)
}

/// Parses a Go duration (`1s`, `100ms`, `1m30s`, `1.5h`); a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: use e.g. 5s, 100ms or 1m30s");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..end].parse().map_err(|_| bad())?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
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
    let to_stderr = init_logging(&args);
    if args.version {
        // runc's own tests (and tools parsing `runc -v`) look for
        // "runc version X.Y.Z" on the first line: say which runc's command
        // line strato follows.
        println!(
            "strato runtime version {} (runc version {RUNC_CLI_VERSION} compatible)",
            env!("CARGO_PKG_VERSION")
        );
        println!(
            "commit: {}",
            option_env!("STRATO_GIT_COMMIT").unwrap_or("unknown")
        );
        println!("spec: {SPEC_VERSION}");
        return 0;
    }
    let Some(verb) = args.verb else {
        eprintln!("strato: a command is needed: see `strato runtime --help`");
        return 1;
    };
    // runc's convention: exec exits 255 when the runtime fails (the process's
    // own exit code is passed through otherwise).
    let failure = if matches!(verb, Verb::Exec { .. }) {
        255
    } else {
        1
    };
    let root_given = args.root.is_some();
    let root = args.root.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
    match dispatch(verb, &Runtime::new(&root), root_given) {
        Ok(code) => code,
        Err(e) => {
            if !to_stderr {
                tracing::error!("{e:#}");
            }
            match e.downcast_ref::<strato_container::Error>() {
                // runc's wording for a program that cannot run: the line
                // alone, as the process's own error.
                Some(strato_container::Error::Exec(m)) if m == &format!("{e:#}") => {
                    eprintln!("{m}")
                }
                _ => eprintln!("strato: {e:#}"),
            }
            failure
        }
    }
}

/// Sets up logging: to `--log` if given, else to stderr with `--debug`, in
/// runc's (logrus') text or JSON line format. Returns whether it logs to stderr.
fn init_logging(args: &RuntimeArgs) -> bool {
    // The common call (no --log, no --debug) sets nothing up: it runs once
    // per container operation.
    if args.log.is_none() && !args.debug {
        return false;
    }
    let level = if args.debug {
        tracing::level_filters::LevelFilter::DEBUG
    } else {
        tracing::level_filters::LevelFilter::WARN
    };
    let format = logfmt::Logrus {
        json: matches!(args.log_format, LogFormat::Json),
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .event_format(format);
    let Some(path) = &args.log else {
        let _ = builder.with_writer(std::io::stderr).try_init();
        return true;
    };
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        eprintln!("strato: cannot open log file {}", path.display());
        return false;
    };
    // Container processes log their own setup until they execute (the
    // file is close-on-exec).
    strato_container::process::keep_until_exec(std::os::fd::AsRawFd::as_raw_fd(&file));
    let _ = builder.with_writer(std::sync::Mutex::new(file)).try_init();
    false
}

/// Log lines in the shape of runc's (logrus): `time="…" level=debug msg="…" k=v`
/// or `{"level":"debug","msg":"…","time":"…"}`.
mod logfmt {
    use std::fmt::Write as _;

    use tracing::field::{Field, Visit};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
    use tracing_subscriber::registry::LookupSpan;

    pub struct Logrus {
        pub json: bool,
    }

    #[derive(Default)]
    struct Fields {
        msg: String,
        rest: Vec<(String, String)>,
    }

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                self.msg = value.to_string();
            } else {
                self.rest
                    .push((field.name().to_string(), value.to_string()));
            }
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let text = format!("{value:?}");
            if field.name() == "message" {
                self.msg = text;
            } else {
                self.rest.push((field.name().to_string(), text));
            }
        }
    }

    /// A logfmt value: bare when it is a simple word, else quoted and escaped.
    fn logfmt_value(v: &str) -> String {
        let plain = !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._/@^+:".contains(c));
        if plain {
            v.to_string()
        } else {
            format!("{v:?}")
        }
    }

    impl<S, N> FormatEvent<S, N> for Logrus
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            _ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> std::fmt::Result {
            let mut f = Fields::default();
            event.record(&mut f);
            let level = event.metadata().level().as_str().to_ascii_lowercase();
            let time = strato_container::state::now_rfc3339();
            if self.json {
                let mut m = serde_json::Map::new();
                for (k, v) in f.rest {
                    m.insert(k, serde_json::Value::String(v));
                }
                m.insert("level".into(), level.into());
                m.insert("msg".into(), f.msg.into());
                m.insert("time".into(), time.into());
                let line = serde_json::to_string(&m).map_err(|_| std::fmt::Error)?;
                return writeln!(writer, "{line}");
            }
            let mut line = format!("time={:?} level={level} msg={}", time, logfmt_value(&f.msg));
            for (k, v) in f.rest {
                write!(line, " {k}={}", logfmt_value(&v))?;
            }
            writeln!(writer, "{line}")
        }
    }

    #[cfg(test)]
    mod tests {
        use super::logfmt_value;

        #[test]
        fn values_are_quoted_when_needed() {
            assert_eq!(logfmt_value("debug"), "debug");
            assert_eq!(logfmt_value("/a/b-c"), "/a/b-c");
            assert_eq!(logfmt_value("two words"), "\"two words\"");
            assert_eq!(logfmt_value("say \"hi\""), "\"say \\\"hi\\\"\"");
            assert_eq!(logfmt_value(""), "\"\"");
        }
    }
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// One JSON value on one line, as runc prints events and lists.
fn print_json_line(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// A line of `list --format json`, in runc's key order.
#[derive(serde::Serialize)]
struct ListEntry<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a str,
    id: &'a str,
    pid: i32,
    status: &'a str,
    bundle: &'a Path,
    rootfs: &'a Path,
    created: &'a str,
    owner: &'a str,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    annotations: std::collections::HashMap<String, String>,
}

/// An event of `events`: `{"type":"stats","id":…,"data":…}` or `{"type":"oom","id":…}`.
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
}

fn stats_event(rt: &Runtime, id: &str) -> anyhow::Result<()> {
    let mut v = rt.stats(id)?;
    let data = v.get_mut("data").map(serde_json::Value::take);
    print_json_line(&Event {
        kind: "stats",
        id,
        data,
    })
}

/// `events` without --stats: a stats sample every `interval` and an `oom`
/// event when the kernel's OOM killer strikes, until the container stops or
/// is deleted.
fn stream_events(rt: &Runtime, id: &str, interval: Duration) -> anyhow::Result<()> {
    let interval = interval.max(Duration::from_millis(1));
    let poll = interval.min(Duration::from_millis(200));
    let mut next_stats = Instant::now();
    let mut oom_seen = rt.oom_killed(id).unwrap_or(false);
    loop {
        let status = match rt.load(id) {
            Ok((_, status)) => status,
            Err(strato_container::Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if status == Status::Stopped {
            return Ok(());
        }
        let oom = rt.oom_killed(id).unwrap_or(false);
        if oom && !oom_seen {
            print_json_line(&Event {
                kind: "oom",
                id,
                data: None,
            })?;
        }
        oom_seen = oom;
        if Instant::now() >= next_stats {
            if let Err(e) = stats_event(rt, id) {
                tracing::warn!(id, error = %e, "no stats sample");
            }
            next_stats += interval;
        }
        std::thread::sleep(poll.min(next_stats.saturating_duration_since(Instant::now())));
    }
}

/// `ps ID [ps options]`: ps(1)'s table (`-ef` by default) limited to the
/// container's processes.
fn ps_table(pids: &[i32], ps_args: &[String]) -> anyhow::Result<()> {
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| anyhow::anyhow!("run ps {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        anyhow::bail!(
            "ps {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| anyhow::anyhow!("ps {}: its output has no PID column", args.join(" ")))?;
    let mut w = std::io::stdout().lock();
    writeln!(w, "{header}")?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(w, "{line}")?;
        }
    }
    Ok(())
}

/// The resources `update` asks for, from -r or from the flags.
fn update_request(a: &UpdateArgs) -> anyhow::Result<LinuxResources> {
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        anyhow::bail!(
            "Intel RDT is not supported by strato: drop --l3-cache-schema/--mem-bw-schema"
        );
    }
    if let Some(src) = &a.resources {
        let text = if src == "-" {
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| anyhow::anyhow!("read resources from stdin: {e}"))?
        } else {
            std::fs::read_to_string(src).map_err(|e| anyhow::anyhow!("read {src}: {e}"))?
        };
        return serde_json::from_str::<LinuxResources>(&text)
            .map_err(|e| anyhow::anyhow!("resources from {src}: {e}"));
    }
    let mut r: serde_json::Value = serde_json::json!({});
    let mut set = |ptr: &str, v: serde_json::Value| {
        let mut cur = &mut r;
        for key in ptr.split('/') {
            cur = &mut cur[key];
        }
        *cur = v;
    };
    if let Some(v) = a.blkio_weight {
        set("blockIO/weight", v.into());
    }
    if let Some(v) = &a.cpuset_cpus {
        set("cpu/cpus", v.as_str().into());
    }
    if let Some(v) = &a.cpuset_mems {
        set("cpu/mems", v.as_str().into());
    }
    if let Some(v) = a.cpu_idle {
        set("cpu/idle", v.into());
    }
    if let Some(v) = a.cpu_burst {
        set("cpu/burst", v.into());
    }
    if let Some(v) = a.cpu_period {
        set("cpu/period", v.into());
    }
    if let Some(v) = a.cpu_rt_period {
        set("cpu/realtimePeriod", v.into());
    }
    if let Some(v) = a.cpu_share {
        set("cpu/shares", v.into());
    }
    if let Some(v) = a.cpu_quota {
        set("cpu/quota", v.into());
    }
    if let Some(v) = a.cpu_rt_runtime {
        set("cpu/realtimeRuntime", v.into());
    }
    if let Some(v) = a.memory {
        set("memory/limit", v.into());
    }
    if let Some(v) = a.memory_swap {
        set("memory/swap", v.into());
    }
    if let Some(v) = a.memory_reservation {
        set("memory/reservation", v.into());
    }
    if a.kernel_memory.is_some() || a.kernel_memory_tcp.is_some() {
        tracing::warn!("kernel memory settings are ignored (obsolete since kernel 5.4)");
    }
    if let Some(v) = a.pids_limit {
        set("pids/limit", v.into());
    }
    Ok(serde_json::from_value(r)?)
}

/// `features`: what this build supports, in the shape of runtime-spec's
/// features.md (as `runc features` prints it).
fn features() -> serde_json::Value {
    let caps: Vec<String> = control::known_capabilities();
    #[cfg(target_arch = "x86_64")]
    let archs = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"];
    #[cfg(target_arch = "aarch64")]
    let archs = ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let archs = ["SCMP_ARCH_RISCV64"];
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
            "iversion", "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime",
            "noexec", "noiversion", "nolazytime", "nomand", "norelatime", "nostrictatime",
            "nosuid", "nosymfollow", "private", "rbind", "relatime", "remount", "ro",
            "rprivate", "rro", "rrw", "rshared", "rslave", "runbindable", "rw", "shared",
            "silent", "slave", "strictatime", "suid", "symfollow", "sync", "tmpcopyup",
            "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": archs,
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ],
                "supportedFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
                ]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "memoryPolicy": {
                "modes": strato_container::mempolicy::mode_names(),
                "flags": strato_container::mempolicy::flag_names()
            }
        },
        "annotations": {
            "org.opencontainers.runtime.strato.version": env!("CARGO_PKG_VERSION"),
            "org.opencontainers.runtime.strato.commit": option_env!("STRATO_GIT_COMMIT").unwrap_or("unknown")
        }
    })
}

/// Parses `exec --cgroup` values: `[CONTROLLER[,CONTROLLER]:]PATH`, PATH a
/// sub-cgroup of the container's cgroup (`/` is the cgroup itself); a path
/// leaving it is refused like runc does.
fn parse_exec_cgroups(values: &[String]) -> anyhow::Result<Vec<(Vec<String>, PathBuf)>> {
    let mut out = Vec::new();
    for v in values {
        let (controllers, path) = match v.split_once(':') {
            Some((c, p)) => (
                c.split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                p,
            ),
            None => (Vec::new(), v.as_str()),
        };
        let mut depth = 0i32;
        let mut rel = PathBuf::new();
        for c in path.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    depth -= 1;
                    rel.pop();
                }
                _ => {
                    depth += 1;
                    rel.push(c);
                }
            }
            if depth < 0 {
                anyhow::bail!("--cgroup {v:?}: bad sub cgroup path: {path}");
            }
        }
        out.push((controllers, rel));
    }
    Ok(out)
}

/// The process of an exec with `--cap`: the container's process with the
/// command, env, cwd, user and terminal of the command line, and the extra
/// capabilities added to the bounding, effective and permitted sets (and to
/// ambient when the process has an inheritable set), as runc does.
fn exec_process_with_caps(
    base: Option<Process>,
    spec_process: Option<Process>,
    opts: &ExecOptions,
    caps: &[String],
) -> anyhow::Result<Process> {
    let mut p = match base {
        Some(p) => p,
        None => strato_container::container::exec_process(spec_process, opts)?,
    };
    let mut c = p.capabilities().clone().unwrap_or_default();
    let add = |set: &mut Option<oci_spec::runtime::Capabilities>, cap: Capability| {
        set.get_or_insert_with(Default::default).insert(cap);
    };
    for name in caps {
        let up = name.to_ascii_uppercase();
        let full = if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        };
        // The config's spelling (serde), not strum's FromStr, is "CAP_KILL".
        let cap: Capability = serde_json::from_value(serde_json::Value::String(full))
            .map_err(|_| anyhow::anyhow!("--cap {name}: unknown capability"))?;
        let mut b = c.bounding().clone();
        add(&mut b, cap);
        c.set_bounding(b);
        let mut e = c.effective().clone();
        add(&mut e, cap);
        c.set_effective(e);
        let mut pm = c.permitted().clone();
        add(&mut pm, cap);
        c.set_permitted(pm);
        if c.inheritable().is_some() {
            let mut a = c.ambient().clone();
            add(&mut a, cap);
            c.set_ambient(a);
        }
    }
    p.set_capabilities(Some(c));
    Ok(p)
}

/// `run` in the foreground through the public pieces of the library, for
/// what `Runtime::run` does not do: `--keep` (the stopped container stays,
/// with its cgroup, until `delete`) and `--pidfd-socket`.
fn run_foreground(
    rt: &Runtime,
    opts: &CreateOptions,
    keep: bool,
    pidfd_socket: Option<&Path>,
) -> anyhow::Result<i32> {
    strato_container::foreground::block_signals()?;
    let bundle = strato_container::spec::load(&opts.bundle)?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let mut opts = opts.clone();
    // A terminal without --console-socket: the pty master comes back to us
    // over a socketpair and we relay it, as `run` does.
    let relay = if terminal && opts.console_socket.is_none() && opts.console_fd.is_none() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        opts.console_fd = Some(theirs.as_raw_fd());
        Some((OwnedFd::from(ours), theirs))
    } else {
        None
    };
    let state = rt.run_detached(&opts)?;
    let master = match relay {
        Some((ours, theirs)) => {
            drop(theirs);
            Some(strato_container::foreground::receive_master(&ours)?)
        }
        None => None,
    };
    if let Some(sock) = pidfd_socket {
        control::send_pidfd(sock, state.pid)?;
    }
    let code = strato_container::foreground::wait(state.pid, master);
    let cleanup = if keep {
        Ok(())
    } else {
        rt.delete(&state.id, true)
    };
    let code = code?;
    cleanup?;
    Ok(code)
}

fn dispatch(verb: Verb, rt: &Runtime, root_given: bool) -> anyhow::Result<i32> {
    match verb {
        Verb::Create(a) => {
            let st = rt.create(&create_options(&a))?;
            if let Some(sock) = &a.pidfd_socket {
                control::send_pidfd(sock, st.pid)?;
            }
        }
        Verb::Start { id } => rt.start(&id)?,
        Verb::Run {
            create,
            detach,
            keep,
            ..
        } => {
            let opts = create_options(&create);
            if detach {
                let st = rt.run_detached(&opts)?;
                if let Some(sock) = &create.pidfd_socket {
                    control::send_pidfd(sock, st.pid)?;
                }
                return Ok(0);
            }
            if !keep && create.pidfd_socket.is_none() {
                return Ok(rt.run(&opts, false)?);
            }
            return run_foreground(rt, &opts, keep, create.pidfd_socket.as_deref());
        }
        Verb::State { id } => print_json(&rt.state(&id)?)?,
        Verb::Kill { all, id, signal } => {
            if signal == "0" || signal.eq_ignore_ascii_case("SIG0") {
                // Signal 0 checks that the process exists and may be signalled.
                let (st, status) = rt.load(&id)?;
                if all {
                    return Ok(0);
                }
                if status == Status::Stopped {
                    anyhow::bail!("container {id:?}: container not running");
                }
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(st.pid), None)
                    .map_err(|e| anyhow::anyhow!("signal 0 to container {id:?}: {e}"))?;
                return Ok(0);
            }
            rt.kill(&id, strato_container::signal::parse(&signal)?, all)?
        }
        Verb::Delete { force, id } => match rt.delete(&id, force) {
            Err(strato_container::Error::NotFound(_)) if force => {}
            r => r?,
        },
        Verb::List { format, quiet } => {
            let root = rt.store().root();
            if root_given && !root.is_dir() {
                anyhow::bail!("state root {} does not exist", root.display());
            }
            let list = rt.list()?;
            let pid_of = |s: &strato_container::State, st: &Status| {
                if *st == Status::Stopped {
                    0
                } else {
                    s.pid
                }
            };
            if quiet {
                for (s, _) in &list {
                    println!("{}", s.id);
                }
            } else if format == Format::Json {
                let v: Vec<_> = list
                    .iter()
                    .map(|(s, st)| ListEntry {
                        oci_version: s.spec.version(),
                        id: &s.id,
                        pid: pid_of(s, st),
                        status: st.as_str(),
                        bundle: &s.bundle,
                        rootfs: &s.rootfs,
                        created: &s.created,
                        owner: "root",
                        annotations: s.spec.annotations().clone().unwrap_or_default(),
                    })
                    .collect();
                print_json_line(&v)?;
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "{:<24} {:<8} {:<10} {:<40} {:<32} OWNER",
                    "ID", "PID", "STATUS", "BUNDLE", "CREATED"
                )?;
                for (s, st) in &list {
                    writeln!(
                        out,
                        "{:<24} {:<8} {:<10} {:<40} {:<32} root",
                        s.id,
                        pid_of(s, st),
                        st.as_str(),
                        s.bundle.display(),
                        s.created
                    )?;
                }
            }
        }
        Verb::Ps {
            format,
            id,
            ps_args,
        } => {
            let pids = rt.ps(&id)?;
            if format == Format::Json {
                print_json(&pids)?;
            } else {
                ps_table(&pids, &ps_args)?;
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
            ignore_paused,
            cgroup,
            cap,
            pidfd_socket,
            id,
            command,
        } => {
            let sub_cgroups = parse_exec_cgroups(&cgroup)?;
            if ignore_paused {
                while matches!(rt.load(&id), Ok((_, Status::Paused))) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            if pidfd_socket.is_some() && !detach {
                anyhow::bail!("exec --pidfd-socket needs --detach in strato");
            }
            let process: Option<Process> = match process {
                Some(p) => {
                    let f = std::fs::File::open(&p)
                        .map_err(|e| anyhow::anyhow!("--process {}: {e}", p.display()))?;
                    let mut v: serde_json::Value =
                        serde_json::from_reader(std::io::BufReader::new(f))
                            .map_err(|e| anyhow::anyhow!("--process {}: {e}", p.display()))?;
                    // As runc: user defaults to root and cwd to /.
                    if let Some(o) = v.as_object_mut() {
                        o.entry("user")
                            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
                        o.entry("cwd").or_insert_with(|| serde_json::json!("/"));
                    }
                    Some(
                        serde_json::from_value(v)
                            .map_err(|e| anyhow::anyhow!("--process {}: {e}", p.display()))?,
                    )
                }
                None => None,
            };
            let mut opts = ExecOptions {
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
                sub_cgroups,
                ..Default::default()
            };
            if !cap.is_empty() {
                let (st, _) = rt.load(&id)?;
                let p = exec_process_with_caps(
                    opts.process.take(),
                    st.spec.process().clone(),
                    &opts,
                    &cap,
                )?;
                opts.process = Some(p);
            }
            if let Some(sock) = &pidfd_socket {
                let pid = rt.exec_detached(&id, &opts)?;
                control::send_pidfd(sock, pid)?;
                return Ok(0);
            }
            return Ok(rt.exec(&id, &opts)?);
        }
        Verb::Events {
            stats,
            interval,
            id,
        } => {
            if stats {
                stats_event(rt, &id)?;
            } else {
                stream_events(rt, &id, interval)?;
            }
        }
        Verb::Update(a) => {
            let req = update_request(&a)?;
            rt.update(&a.id, &req)?;
        }
        Verb::Features => print_json(&features())?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "s", "1x", "-1s", "1s2"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn exec_cgroup_values() {
        let one = |v: &str| parse_exec_cgroups(&[v.into()]);
        for top in ["/", "", "memory:/", "a/.."] {
            assert_eq!(one(top).unwrap()[0].1, PathBuf::new(), "{top:?}");
        }
        assert_eq!(
            one("cpu,cpuacct:sub/x").unwrap(),
            vec![(vec!["cpu".into(), "cpuacct".into()], PathBuf::from("sub/x"))]
        );
        assert_eq!(one("sub").unwrap(), vec![(vec![], PathBuf::from("sub"))]);
        let e = one("..").unwrap_err().to_string();
        assert!(e.contains("bad sub cgroup path"), "{e}");
        let e = one("pids:a/../../b").unwrap_err().to_string();
        assert!(e.contains("bad sub cgroup path"), "{e}");
    }

    #[test]
    fn exec_cap_adds_to_bounding_effective_permitted_and_ambient_with_inheritable() {
        let proc_with = |v: serde_json::Value| -> Process {
            serde_json::from_value(serde_json::json!({
                "cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}, "capabilities": v
            }))
            .unwrap()
        };
        let opts = ExecOptions {
            args: vec!["true".into()],
            ..Default::default()
        };
        let p = exec_process_with_caps(
            None,
            Some(proc_with(serde_json::json!({}))),
            &opts,
            &["CAP_KILL".into(), "audit_write".into()],
        )
        .unwrap();
        let c = p.capabilities().clone().unwrap();
        for set in [c.bounding(), c.effective(), c.permitted()] {
            let set = set.clone().unwrap();
            assert!(set.contains(&Capability::Kill) && set.contains(&Capability::AuditWrite));
        }
        assert!(c.inheritable().is_none() && c.ambient().is_none());
        let p = exec_process_with_caps(
            None,
            Some(proc_with(serde_json::json!({"inheritable": ["CAP_CHOWN"]}))),
            &opts,
            &["CAP_SYSLOG".into()],
        )
        .unwrap();
        let c = p.capabilities().clone().unwrap();
        assert!(c.ambient().clone().unwrap().contains(&Capability::Syslog));
        assert!(!c
            .inheritable()
            .clone()
            .unwrap()
            .contains(&Capability::Syslog));
        assert!(exec_process_with_caps(None, None, &opts, &["CAP_NOPE".into()]).is_err());
    }
}
