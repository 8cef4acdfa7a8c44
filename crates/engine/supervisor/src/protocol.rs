//! The supervisor's wire protocol: one JSON object per line over a unix stream
//! socket, each request answered by one response line. Descriptors (a
//! container's stdin, an exec's stdio; a started container's network
//! namespace) travel beside a response (or request) as `SCM_RIGHTS`. After an `Events` request the connection carries only event
//! lines.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::policy::RestartPolicy;

/// How to run a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub id: String,
    /// The OCI bundle (config.json and its rootfs), prepared by the engine.
    pub bundle: PathBuf,
    /// Where the json-file log goes.
    pub log_path: PathBuf,
    /// The process has a terminal (its output is one stream).
    #[serde(default)]
    pub tty: bool,
    /// Keep a stdin pipe open for attach (`docker run -i`).
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Delete the container when it exits (`--rm`).
    #[serde(default)]
    pub auto_remove: bool,
    /// The container joins a network namespace sent as a descriptor with
    /// its `Start` request (in place of its config's): the supervisor holds
    /// it for the container's restarts until the container exits for good
    /// or is deleted. Nothing pins it on the host's mount table.
    #[serde(default)]
    pub netns: bool,
    /// Its cgroup's parent is the user's (`--cgroup-parent`): no spare
    /// cgroups are made beside it, as they are beside the engine's own.
    #[serde(default)]
    pub own_cgroup_parent: bool,
}

/// Lifecycle of a supervised container, Docker's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Running,
    Paused,
    Restarting,
    Exited,
}

/// What the supervisor knows of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub spec: ContainerSpec,
    pub phase: Phase,
    /// Host pid of the container process while it runs, else 0.
    pub pid: i32,
    pub exit_code: Option<i32>,
    /// The process was killed by the kernel's OOM killer (cgroup limit).
    #[serde(default)]
    pub oom_killed: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub restart_count: u32,
    /// Stopped on request: restart policies other than `always` leave it.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// Why the last start failed, if it did.
    #[serde(default)]
    pub error: Option<String>,
}

/// A process to run in a container, as OCI `process` JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecSpec {
    pub container: String,
    pub exec_id: String,
    pub process: serde_json::Value,
    #[serde(default)]
    pub stdin: bool,
}

/// State of an exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStatus {
    pub exec_id: String,
    pub container: String,
    pub pid: i32,
    pub running: bool,
    pub exit_code: Option<i32>,
}

/// How long a prepared container waits for its start before it is
/// discarded: its process and namespaces cost little, but nothing.
pub const PREPARED_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The cgroup (from the hierarchies' roots) the engine's containers go
/// under unless given another parent (`--cgroup-parent`, which the start
/// says with [`ContainerSpec::own_cgroup_parent`]).
pub const ENGINE_CGROUP_PARENT: &str = "/strato";

/// A request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ping,
    /// Create and start a container; it is supervised from then on. With
    /// `spec.netns`, its network namespace comes with the request
    /// (`SCM_RIGHTS`, one descriptor).
    Start {
        spec: ContainerSpec,
        /// Finish the container prepared for this start (see `Prepare`) if
        /// it is still there; without it, one prepared is discarded first.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        prepared: bool,
    },
    /// Create a container up to the exec of its process (the runtime's
    /// `create`), ahead of the `Start` that finishes it. A prepared
    /// container is not listed and has no events; a `Delete`, a `Start`
    /// without `prepared`, or [`PREPARED_TTL`] without a start discards it.
    /// Its network namespace comes as with `Start`.
    Prepare {
        spec: ContainerSpec,
    },
    /// Start an exited container again with its recorded spec.
    Restart {
        id: String,
    },
    /// Send a signal; `stop` marks it stopped on request (for restart policies).
    Kill {
        id: String,
        signal: i32,
        #[serde(default)]
        stop: bool,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    /// Forget an exited container (with `force`, kill it first) and delete it.
    Delete {
        id: String,
        #[serde(default)]
        force: bool,
    },
    State {
        id: String,
    },
    /// `docker update`: new cgroup limits (an OCI `LinuxResources`, merged
    /// into the current ones) and/or a new restart policy.
    Update {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resources: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restart: Option<crate::policy::RestartPolicy>,
    },
    List,
    /// The write end of the container's stdin pipe, passed as a descriptor.
    Stdin {
        id: String,
    },
    Resize {
        id: String,
        height: u16,
        width: u16,
    },
    /// Run a process in the container; its stdin, stdout and stderr pipe ends
    /// (or its pty master, with a terminal) come back as descriptors.
    Exec {
        spec: ExecSpec,
    },
    ExecState {
        exec_id: String,
    },
    ExecResize {
        exec_id: String,
        height: u16,
        width: u16,
    },
    /// Turn this connection into a stream of [`Event`] lines.
    Events,
}

impl Request {
    /// The container a request is about, if it names one.
    pub fn container(&self) -> Option<&str> {
        match self {
            Request::Start { spec, .. } | Request::Prepare { spec } => Some(&spec.id),
            Request::Exec { spec } => Some(&spec.container),
            Request::Restart { id }
            | Request::Kill { id, .. }
            | Request::Pause { id }
            | Request::Resume { id }
            | Request::Delete { id, .. }
            | Request::State { id }
            | Request::Update { id, .. }
            | Request::Stdin { id }
            | Request::Resize { id, .. } => Some(id),
            Request::Ping
            | Request::List
            | Request::ExecState { .. }
            | Request::ExecResize { .. }
            | Request::Events => None,
        }
    }
}

/// A response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Pong {
        pid: i32,
    },
    /// A container is prepared: its process waits for the start.
    Prepared {
        pid: i32,
    },
    Started {
        pid: i32,
        /// The container's status right after the start, which spares the
        /// caller a `State` request (older supervisors do not send it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<Box<ContainerStatus>>,
    },
    Status {
        status: ContainerStatus,
    },
    List {
        containers: Vec<ContainerStatus>,
    },
    /// Descriptors follow as SCM_RIGHTS: stdin for `Stdin`; for `Exec`,
    /// stdin, stdout, stderr (or one pty master when `tty`).
    Fds {
        count: u8,
        tty: bool,
        pid: i32,
    },
    Exec {
        status: ExecStatus,
    },
    Error {
        message: String,
        kind: ErrorKind,
    },
}

/// Classes of failure the engine maps to HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    Conflict,
    Invalid,
    Internal,
}

/// An event line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Start {
        id: String,
        pid: i32,
        time: String,
    },
    Exit {
        id: String,
        code: i32,
        oom_killed: bool,
        time: String,
        /// The container's status once its exit was handled (`Restarting`
        /// when a restart is due), which spares a `State` request (older
        /// supervisors do not send it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<Box<ContainerStatus>>,
    },
    Restart {
        id: String,
        count: u32,
        time: String,
    },
    Destroy {
        id: String,
        time: String,
    },
    ExecDie {
        exec_id: String,
        container: String,
        code: i32,
        time: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_lines() {
        let r = Request::Kill {
            id: "c".into(),
            signal: 15,
            stop: true,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(line, r#"{"op":"kill","id":"c","signal":15,"stop":true}"#);
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        let r: Request = serde_json::from_str(r#"{"op":"delete","id":"x"}"#).unwrap();
        assert_eq!(
            r,
            Request::Delete {
                id: "x".into(),
                force: false
            }
        );
    }
}
