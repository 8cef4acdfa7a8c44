//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the image store.
///
/// Messages are lowercase, name the input that was at fault and, where there
/// is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation on the store failed.
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
    /// Reading the archive given to `load` or `import` failed.
    #[error("reading the image archive: {0} (is the archive complete and a tar file?)")]
    Archive(#[source] io::Error),
    /// Reading or decompressing one layer failed.
    #[error("reading layer {layer}: {source} (the layer is corrupt or truncated)")]
    Layer {
        /// The layer's name in the archive.
        layer: String,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The archive is well-formed tar but not an image archive we understand.
    #[error("invalid image archive: {0}")]
    Format(String),
    /// A JSON document in the archive or the store does not parse.
    #[error("invalid {what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// Content does not hash to the digest it is referred to by.
    #[error("digest mismatch for {what}: expected {expected}, got {actual} (the archive is corrupt or was tampered with)")]
    DigestMismatch {
        /// Which blob or layer.
        what: String,
        /// The digest that was promised.
        expected: String,
        /// The digest of the content.
        actual: String,
    },
    /// A digest string is malformed or uses an unsupported algorithm.
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidDigest(String),
    /// An image reference (name, tag, id) is malformed.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No image matches the reference.
    #[error("no such image: {0}")]
    NotFound(String),
    /// A short id matches more than one image.
    #[error("image id prefix {0:?} is ambiguous: give more digits")]
    Ambiguous(String),
    /// An entry of a layer tar is refused because unpacking it could touch
    /// something outside the layer or create something dangerous.
    #[error("refusing tar entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as written in the tar.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// Unpacking a layer entry failed for an OS reason.
    #[error("unpacking tar entry {entry:?}: {source}")]
    Unpack {
        /// The entry's path as written in the tar.
        entry: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The layer blob is compressed with something we cannot read.
    #[error("unsupported layer compression {0} (supported: none, gzip, zstd)")]
    UnsupportedCompression(&'static str),
    /// An image cannot be removed while it is in use.
    #[error(
        "image {image} is in use by container {container}: remove the container first or force"
    )]
    InUse {
        /// The image.
        image: String,
        /// A container using it.
        container: String,
    },
    /// An image cannot be deleted by id while several tags name it.
    #[error("image {image} is referenced by several tags ({tags}): untag them or force")]
    MultipleTags {
        /// The image.
        image: String,
        /// Its tags.
        tags: String,
    },
    /// A container id is not usable as a directory name.
    #[error(
        "invalid container id {0:?}: use letters, digits, '_', '-' or '.' (not starting with '.')"
    )]
    InvalidContainerId(String),
    /// A container id already has a writable layer on another image.
    #[error("container {container} already has a layer on image {image}: remove its layer first or use another id")]
    ContainerExists {
        /// The container.
        container: String,
        /// The image its layer belongs to.
        image: String,
    },
    /// Mounting or unmounting the overlay failed.
    #[error("{op} overlay at {target}: {source}")]
    Mount {
        /// mount or unmount.
        op: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds an [`Error::Io`] from an operation name and a path.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
