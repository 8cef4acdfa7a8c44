//! strato's container runtime library (the role libcontainer plays for runc).
//!
//! Entry point: [`Runtime`], whose methods are the runc-compatible verbs
//! (`create`, `start`, `run`, `state`, `kill`, `delete`, `exec`, `ps`, `list`,
//! `pause`/`resume`, `events --stats`). A bundle is validated by [`spec`]
//! before anything exists; [`launch`] forks the container's processes into
//! their namespaces; [`rootfs`] builds the filesystem through the
//! [`syscall::Syscall`] trait; [`process`] applies user, capabilities, rlimits
//! and seccomp and executes. Cgroups and seccomp live in their own crates.
//!
//! Invariant: the functions that fork ([`Runtime::create`], [`Runtime::run`],
//! [`Runtime::exec`]) must be called from a single-threaded process; they
//! check it. A multithreaded caller executes `strato runtime …` instead.

pub mod channel;
pub mod container;
pub mod control;
pub mod error;
pub mod foreground;
pub mod hooks;
pub mod launch;
pub mod mempolicy;
pub mod process;
pub mod rootfs;
pub mod signal;
pub mod spec;
pub mod specgen;
pub mod state;
pub mod syscall;

pub use container::{CreateOptions, ExecOptions, Runtime, DEFAULT_ROOT};
pub use error::{Error, Result};
pub use state::{State, Status};
