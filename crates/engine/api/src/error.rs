//! Errors: [`ApiError`] is what a [`crate::Backend`] returns and what a client
//! sees as `{"message": …}` with Docker's status code; [`ServeError`] is what
//! starting a listener can fail with.

use std::path::PathBuf;

/// The class of an API error; it fixes the HTTP status, as Docker's errdefs do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 304: the request changed nothing (start of a running container, stop of a stopped one).
    NotModified,
    /// 400: a parameter or body is invalid.
    BadParameter,
    /// 401: missing or wrong credentials (TCP bearer token, registry login).
    Unauthorized,
    /// 403: the operation is not allowed.
    Forbidden,
    /// 404: no such container, image, network, volume or exec instance.
    NotFound,
    /// 409: conflict with the current state (name in use, container running, image in use).
    Conflict,
    /// 413: request body over the limit.
    PayloadTooLarge,
    /// 500: the engine failed.
    Internal,
    /// 501: the endpoint or option is not implemented by this engine.
    NotImplemented,
    /// 503: the engine is not ready.
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status code for this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::NotModified => 304,
            ErrorKind::BadParameter => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Internal => 500,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Unavailable => 503,
        }
    }
}

/// An error answered to the client as `{"message": "<message>"}` with the
/// status of `kind`. Messages follow Docker's wording where clients match on it
/// (`No such container: x`), otherwise the house style: lowercase, naming the
/// input and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
    pub fn not_modified() -> Self {
        Self::new(ErrorKind::NotModified, "")
    }
    pub fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadParameter, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, message)
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotImplemented, message)
    }
    /// `No such container: <id>` (404), Docker's wording.
    pub fn no_such_container(id: &str) -> Self {
        Self::not_found(format!("No such container: {id}"))
    }
    /// `No such image: <name>` (404), Docker's wording.
    pub fn no_such_image(name: &str) -> Self {
        Self::not_found(format!("No such image: {name}"))
    }
    /// `No such exec instance: <id>` (404), Docker's wording.
    pub fn no_such_exec(id: &str) -> Self {
        Self::not_found(format!("No such exec instance: {id}"))
    }
    /// `network <id> not found` (404), Docker's wording.
    pub fn no_such_network(id: &str) -> Self {
        Self::not_found(format!("network {id} not found"))
    }
    /// `get <name>: no such volume` (404), Docker's wording.
    pub fn no_such_volume(name: &str) -> Self {
        Self::not_found(format!("get {name}: no such volume"))
    }
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::internal(e.to_string())
    }
}

/// Why a listener could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot remove stale socket {path}: {source}; remove it by hand or choose another -H path"
    )]
    RemoveStale {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} exists and is not a socket; refusing to replace it: choose another -H path")]
    NotASocket { path: PathBuf },
    #[error(
        "cannot bind unix socket {path}: {source}; check that the directory exists and is writable"
    )]
    BindUnix {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set mode 0660 and owner root:root on {path}: {source}")]
    Permissions {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot bind tcp address {addr}: {source}; choose a free address")]
    BindTcp {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "a tcp listener needs authentication: give --tlsverify with --tlscacert (client certificates) or a bearer token (--token)"
    )]
    NoAuth,
    #[error("empty bearer token for tcp listener: give a non-empty --token")]
    EmptyToken,
    #[error("accept failed: {0}")]
    Accept(std::io::Error),
}
