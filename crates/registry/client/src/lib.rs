//! strato's registry client: talks the OCI distribution protocol (and
//! Docker's registry API v2) to pull and push images.
//!
//! The entry point is [`Client`]; [`Client::repository`] opens one
//! repository of one registry, authenticated, and [`Repository`] has the
//! operations:
//!
//! * pull: [`Repository::resolve`] (manifest by tag or digest; an index is
//!   resolved to this host's platform), [`Repository::download_blobs`]
//!   (bounded concurrency, digest verified while streaming, resumed with
//!   `Range` after a broken connection, progress on a channel);
//! * push: [`Repository::upload_blobs`] (skip what exists, cross-repository
//!   mount, monolithic or chunked upload), [`Repository::put_manifest`];
//! * [`Client::login`] checks credentials like `docker login`;
//! * [`Client::fetch_url`] downloads one plain URL (`ADD <url>`).
//!
//! References and digests are [`strato_image::Reference`] (normalized like
//! Docker: `busybox` is `docker.io/library/busybox:latest`) and
//! [`strato_image::Digest`]; [`registry_host`] maps `docker.io` to the host
//! serving it.
//!
//! Transport policy: HTTPS (rustls, system roots) everywhere; plain HTTP
//! only for loopback registries and those in
//! [`ClientConfig::insecure_registries`], and only after HTTPS failed, as
//! dockerd does. Authentication: anonymous, basic, and bearer tokens from
//! the realm of the registry's `WWW-Authenticate` challenge (see [`auth`]).

#![forbid(unsafe_code)]

pub mod auth;
mod client;
mod error;
mod fetch;
mod pull;
mod push;

pub use auth::{parse_challenges, Challenge, Credentials};
pub use client::{is_loopback, registry_host, Client, ClientConfig, Repository};
pub use error::{Error, Result};
pub use fetch::{file_name_of, Fetched};
pub use pull::{
    host_arch, BlobJob, Descriptor, Manifest, Platform, PullProgress, Resolved, MANIFEST_ACCEPT,
    MAX_MANIFEST,
};
pub use push::{BlobPushed, Progress, PushProgress, UploadJob, CHUNK_SIZE};
pub use strato_image::{Digest, Reference};
