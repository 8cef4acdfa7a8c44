//! The error type of the runtime library.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while creating, running or managing a container.
///
/// Messages are lowercase, name the input at fault and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container id {0:?} is invalid: use 1-1024 letters, digits, '_', '+', '-' or '.'")]
    InvalidId(String),
    #[error("container {0:?} already exists: choose another id or delete it first")]
    Exists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("container {id:?} is {status}: {msg}")]
    State {
        id: String,
        status: String,
        msg: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("container init: {0}")]
    Init(String),
    /// The container was set up but its process could not be executed
    /// (`exec /run.sh: no such file or directory`): the program's fault,
    /// told as a shell tells it.
    #[error("{0}")]
    Exec(String),
    #[error("error running {kind} hook #{index}: {path}: {msg}")]
    Hook {
        kind: String,
        index: usize,
        path: PathBuf,
        msg: String,
    },
    #[error("{0}")]
    Usage(String),
}

/// Result alias of the runtime library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with what was being done and to which path.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A fault in the bundle's configuration.
    pub fn config(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// Attaches a context to I/O errors: `fs::read(p).ctx(|| format!("read {}", p.display()))`.
pub trait IoContext<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::io(f(), e))
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::io(f(), io::Error::from(e)))
    }
}
