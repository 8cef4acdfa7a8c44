//! strato's container engine: the Docker daemon's logic, between the Engine
//! API (strato-api) and the layers that do the work (strato-image for images
//! and overlay snapshots, strato-network for bridges and ports,
//! strato-supervisor for running processes).
//!
//! Entry points: [`engine::Engine`] (open, then the Docker verbs), and
//! [`spec::build`] turns a container's Docker-style
//! configuration and its image's into the OCI bundle config the runtime runs;
//! [`build::start`] is the classic Dockerfile builder behind `POST /build`.

pub mod backend;
pub mod build;
pub mod commit;
pub mod convert;
pub mod copy;
pub mod distribution;
pub mod dns;
pub mod engine;
pub mod health;
pub mod hostdev;
pub mod hostinfo;
pub mod ids;
pub mod model;
pub mod netns;
pub mod spec;
pub mod streams;
pub mod time;
pub mod users;
pub mod volumes;
