//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong talking to a registry.
///
/// Messages are lowercase and name the registry, repository or blob at
/// fault and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference or digest is malformed.
    #[error(transparent)]
    Reference(#[from] strato_image::Error),
    /// The registry could not be reached (DNS, TCP, TLS).
    #[error("cannot reach registry {registry}: {message}")]
    Connect {
        /// Host (and port) of the registry.
        registry: String,
        /// What failed.
        message: String,
    },
    /// The registry refused the credentials, or wants some and none were given.
    #[error("authentication to {registry} failed: {message}")]
    Unauthorized {
        /// Host of the registry.
        registry: String,
        /// The registry's words, and the fix.
        message: String,
    },
    /// A manifest, tag or blob does not exist in the repository.
    #[error("{what} not found: {message}")]
    NotFound {
        /// What was asked for (`manifest for localhost:5000/app:v1`).
        what: String,
        /// The registry's words.
        message: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{what}: registry {registry} answered {status}: {message}")]
    Status {
        /// Host of the registry.
        registry: String,
        /// What was being done.
        what: String,
        /// The HTTP status code.
        status: u16,
        /// The error text from the body, if any.
        message: String,
    },
    /// The registry sent something that is not what the protocol says.
    #[error("registry {registry} sent an invalid response: {message}")]
    Protocol {
        /// Host of the registry.
        registry: String,
        /// What was wrong.
        message: String,
    },
    /// Content does not hash to the digest it was asked for by.
    #[error("digest mismatch for {what}: expected {expected}, got {actual} (the registry served wrong or corrupt content)")]
    DigestMismatch {
        /// Which blob or manifest.
        what: String,
        /// The digest that was asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// Content has another length than its descriptor says.
    #[error("{what} is {actual} bytes but its descriptor says {expected} (truncated or padded by the registry)")]
    SizeMismatch {
        /// Which blob.
        what: String,
        /// The descriptor's size.
        expected: u64,
        /// What arrived (so far).
        actual: u64,
    },
    /// An image index has no manifest for this platform.
    #[error("no matching manifest for {platform} in the manifest list entries of {reference}")]
    NoPlatform {
        /// The reference being pulled.
        reference: String,
        /// `linux/amd64`.
        platform: String,
    },
    /// A local file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A plain download (`ADD <url>`, a remote build context) failed.
    #[error("download {url}: {message}")]
    Download {
        /// The URL asked for.
        url: String,
        /// What failed, and the fix.
        message: String,
    },
    /// TLS could not be set up (no usable root certificates).
    #[error("tls setup: {0}")]
    Tls(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A closure turning an `io::Error` into [`Error::Io`] for `op` on `path`.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
