//! The HTTP layer of strato's Docker-compatible engine: the Docker Engine API
//! served over a unix socket (and TCP with a bearer token), independent of how
//! containers are run.
//!
//! Entry points: [`serve_unix`] / [`serve_tcp`] (or [`bind_unix`] plus
//! [`serve_unix_listener`]) with an `Arc<dyn` [`Backend`]`>`. The [`Backend`]
//! trait is what the engine implements; [`types`] holds its arguments and
//! results, shaped like Docker's JSON. [`testing::FakeBackend`] is an
//! in-memory backend that records calls, for tests.
//!
//! The server advertises API [`API_VERSION`], accepts `/v1.24/` to `/v1.51/`
//! prefixes and unversioned paths, answers errors as `{"message": …}` with
//! Docker's status codes, limits JSON bodies to [`MAX_JSON_BODY`] bytes (413
//! beyond) and streams tar bodies (load, import, archive PUT) to the backend
//! without buffering them.
// One syscall (`sys::unread_by_peer`) needs `unsafe`; everything else is safe.
#![deny(unsafe_code)]

pub mod backend;
pub mod error;
pub mod server;
mod sys;
pub mod testing;
pub mod types;
mod ws;

pub use backend::*;
pub use error::{ApiError, ErrorKind, ServeError};
pub use server::{
    bind_tcp, bind_unix, serve_tcp, serve_tcp_listener, serve_unix, serve_unix_listener, Server,
    TcpAuth, API_VERSION, MAX_JSON_BODY, MIN_API_VERSION,
};
