//! strato-client: an async client of the Docker Engine API as `strato
//! daemon` serves it, over a unix socket or TCP (bearer token, TLS).
//!
//! Entry point: [`Client::new`] with a [`Host`] (parsed from
//! `unix:///run/strato/strato.sock` or `tcp://HOST:PORT`). Methods take and
//! return strato-api's [`types`](strato_api::types), so the daemon and its
//! clients share one definition of every shape. Streams come back decoded:
//! container output demultiplexed ([`stream::Demuxer`]), progress, events and
//! stats as JSON values ([`stream::JsonSplitter`]); attach and exec are
//! hijacked connections ([`Session`]) whose `stdin` half-closes on shutdown.
//! A daemon error is [`Error::Daemon`], displayed as Docker's CLI does
//! (`Error response from daemon: No such container: x`).
//!
//! This is a client only: it holds no engine logic, so the strato CLI and
//! higher layers (the PaaS) drive containers through the same API the docker
//! CLI uses.
#![forbid(unsafe_code)]

mod client;
pub mod error;
pub mod host;
pub mod query;
pub mod stream;
pub mod tls;

pub use client::{
    check_progress, progress_error, reader_stream, Client, Progress, Session, Stdin,
    CLIENT_API_VERSION,
};
pub use error::{Error, Result};
pub use host::{Host, DEFAULT_HOST};
pub use strato_api::types;
pub use strato_api::{ByteStream, OutputChunk, StreamKind};
