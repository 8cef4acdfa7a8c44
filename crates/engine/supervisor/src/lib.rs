//! strato's container supervisor: the one process that owns the engine's
//! containers (the role containerd and its shims play under Docker, without a
//! process per container).
//!
//! Entry points: [`server::Supervisor`] (`new` then `run`, in a single-threaded
//! process: `strato supervisor`) and [`client::Client`], which the engine
//! daemon uses. [`protocol`] is the JSON-lines wire format, [`logs`] the
//! json-file log format, [`policy`] Docker's restart policies.

pub mod client;
mod fdpass;
mod forker;
pub mod logs;
pub mod policy;
pub mod protocol;
pub mod server;

pub use client::Client;
pub use policy::RestartPolicy;
pub use protocol::{
    ContainerSpec, ContainerStatus, Event, ExecSpec, ExecStatus, Phase, Request, Response,
};
pub use server::Supervisor;
