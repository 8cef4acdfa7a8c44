//! [`Error`]: what a call to the daemon can fail with.

/// A failed call. Daemon errors (`{"message": …}` with a status) display as
/// Docker's CLI prints them: `Error response from daemon: <message>`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host string is not `unix:///path` or `tcp://host:port`.
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },
    /// The daemon's socket or port could not be reached.
    #[error("cannot connect to the strato daemon at {host}: {source}; is `strato daemon` running there?")]
    Connect {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The daemon answered an error status.
    #[error("Error response from daemon: {message}")]
    Daemon { status: u16, message: String },
    /// A stream (progress, events, output) carried an error or broke off.
    #[error("{0}")]
    Stream(String),
    /// The HTTP exchange itself failed.
    #[error("talking to the daemon at {host}: {source}")]
    Http {
        host: String,
        #[source]
        source: hyper::Error,
    },
    /// TLS could not be set up (certificates, keys).
    #[error("TLS: {0}")]
    Tls(String),
    /// A request the client could not build (bad header value, …).
    #[error("invalid request: {0}")]
    Request(String),
    /// The daemon answered something that is not the expected JSON.
    #[error("unexpected answer to {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// Local I/O (a hijacked connection, a file being sent).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The HTTP status of a daemon error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// A 404 from the daemon (no such container, image, network, volume…).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
