//! strato-registry: an OCI distribution-spec v1.1 registry server.
//!
//! Entry point: [`Registry::open`] with a [`Config`] (storage root, [`auth::Auth`],
//! quota), then [`Registry::serve`] on a listener (optionally with
//! [`tls_acceptor`]). [`storage::Store`] is the content-addressed storage,
//! [`upload`] the streaming writer, [`manifest`] the manifest checks,
//! [`names`] the grammar of names, tags and digests, [`auth`] htpasswd and
//! tokens.

#![forbid(unsafe_code)]

pub mod auth;
pub mod error;
pub mod manifest;
pub mod names;
pub mod server;
pub mod storage;
pub mod upload;

pub use error::{Code, RegistryError, ServeError};
pub use server::{bind, check_exposure, tls_acceptor, Config, Registry};
