//! Running OCI hooks: each gets the container state on stdin and must exit 0.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};

use crate::error::{Error, Result};

/// The hook points of the runtime spec, in lifecycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookKind {
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }
}

/// The hooks of `kind` in `spec`, in order (borrowed: asking whether there
/// are any copies nothing).
pub fn hooks_of(spec: &Spec, kind: HookKind) -> &[Hook] {
    let Some(h) = spec.hooks().as_ref() else {
        return &[];
    };
    #[allow(deprecated)]
    let list = match kind {
        HookKind::Prestart => h.prestart(),
        HookKind::CreateRuntime => h.create_runtime(),
        HookKind::CreateContainer => h.create_container(),
        HookKind::StartContainer => h.start_container(),
        HookKind::Poststart => h.poststart(),
        HookKind::Poststop => h.poststop(),
    };
    list.as_deref().unwrap_or_default()
}

/// An exit status as Go (and so runc) words it: `exit status 1`,
/// `signal: bad system call`.
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(sig) => {
            // SAFETY: strsignal returns a pointer to a static or thread-local
            // string, read at once; the runtime is single-threaded here.
            let name = unsafe {
                let p = libc::strsignal(sig);
                if p.is_null() {
                    format!("signal {sig}")
                } else {
                    std::ffi::CStr::from_ptr(p).to_string_lossy().to_lowercase()
                }
            };
            format!("signal: {name}")
        }
        None => status.to_string(),
    }
}

/// Runs every hook of `kind`, stopping at the first failure.
pub fn run(spec: &Spec, kind: HookKind, state: &serde_json::Value) -> Result<()> {
    let hooks = hooks_of(spec, kind);
    if hooks.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(state).unwrap_or_default();
    // startContainer hooks run in the container, in the environment of its
    // process unless they have their own.
    // That includes HOME, filled in from the container's /etc/passwd as for
    // the process itself (these hooks run after pivot_root).
    let process_env = match (kind, spec.process().as_ref()) {
        (HookKind::StartContainer, Some(p)) => {
            let env: Vec<std::ffi::CString> = p
                .env()
                .iter()
                .flatten()
                .filter_map(|e| std::ffi::CString::new(e.as_bytes()).ok())
                .collect();
            crate::process::with_home(&env, p.user().uid())
                .into_iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect()
        }
        _ => Vec::new(),
    };
    for (index, hook) in hooks.iter().enumerate() {
        run_one(hook, kind, index, &input, &process_env)?;
    }
    Ok(())
}

fn run_one(
    hook: &Hook,
    kind: HookKind,
    index: usize,
    input: &[u8],
    default_env: &[String],
) -> Result<()> {
    let fail = |msg: String| Error::Hook {
        kind: kind.name().to_string(),
        index,
        path: hook.path().clone(),
        msg,
    };
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some(argv0) = args.first() {
            cmd.arg0(argv0);
        }
        cmd.args(args.iter().skip(1));
    }
    cmd.env_clear();
    let env = hook.env().as_deref().unwrap_or(default_env);
    for kv in env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    // The state goes in through a memory file too, not a pipe: a hook that
    // exits without reading it would make our write raise SIGPIPE, which
    // kills the runtime (it keeps SIGPIPE's default action, as a CLI).
    let state_in = {
        use std::io::Seek;
        let mut f = nix::sys::memfd::memfd_create(
            c"strato-hook-state",
            nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
        )
        .map(std::fs::File::from)
        .map_err(|e| fail(format!("memfd_create: {e}")))?;
        f.write_all(input)
            .and_then(|()| f.rewind())
            .map_err(|e| fail(format!("write the state for stdin: {e}")))?;
        f
    };
    cmd.stdin(Stdio::from(state_in));
    // Output goes to a memory file (no pipe to fill up while we wait), and
    // into the error when the hook fails.
    let out = nix::sys::memfd::memfd_create(
        c"strato-hook",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map(std::fs::File::from)
    .map_err(|e| fail(format!("memfd_create: {e}")))?;
    cmd.stdout(out.try_clone().map_err(|e| fail(format!("dup: {e}")))?);
    cmd.stderr(out.try_clone().map_err(|e| fail(format!("dup: {e}")))?);
    let mut child = cmd.spawn().map_err(|e| fail(format!("start: {e}")))?;
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(fail(format!("wait: {e}"))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {}s",
                hook.timeout().unwrap_or_default()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    {
        use std::io::{Read, Seek};
        let mut out = out;
        let _ = out.seek(std::io::SeekFrom::Start(0));
        let _ = out.take(4096).read_to_string(&mut text);
    }
    let text = text.trim();
    let how = describe(status);
    if text.is_empty() {
        Err(fail(how))
    } else {
        Err(fail(format!("{how}, output: {text}")))
    }
}
