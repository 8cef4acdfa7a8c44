//! strato-paas: the PaaS control plane.
//!
//! - [`controller`]: the reconcile loop that turns deployed applications
//!   into engine containers (members), wires them into load-balancer pools
//!   (strato-lb) and runs Stratos's autoscaler over their statistics.
//! - [`engine`]: the engine operations the controller needs, as a trait;
//!   [`engine::ClientEngine`] implements it over strato-client.
//! - [`api`]: the REST API (Stratos 4.1's resources under `/api`, an
//!   OpenAPI document, an SSE event stream), on a unix socket or TCP with a
//!   bearer token.
//! - [`client`]: a small client of that API for the `strato` CLI.
//! - [`sample`]: the sample cartridge image (busybox httpd) `strato up` builds.
//! - [`events`]: topology, lifecycle and scaling events.
//! - [`hosts`]: level 2's host providers (this machine, or an operator's
//!   program) asked for a host when members find no room.

#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod controller;
pub mod engine;
pub mod events;
#[cfg(test)]
mod fake;
pub mod hosts;
pub mod sample;

pub use controller::{Config, ControlError, Controller};
pub use engine::{ClientEngine, Engine};
pub use hosts::{CommandProvider, HostProvider, LocalMachine};
