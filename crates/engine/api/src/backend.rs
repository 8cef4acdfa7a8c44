//! The [`Backend`] trait: everything the Engine API needs from the engine.
//!
//! The server parses and validates requests, resolves API versions, frames
//! streams and hijacks connections; the backend only does the work. Names
//! passed as `id` are whatever the client sent: a full ID, a unique ID prefix
//! or a name (with or without the leading `/`) for containers; a reference
//! (`busybox`, `busybox:1.36`, `repo@sha256:…`), an ID or an ID prefix for
//! images. Resolving them, and answering `ApiError::no_such_*` (404) when
//! nothing matches, is the backend's job.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::io::AsyncWrite;

use crate::error::ApiError;
use crate::types::*;

/// A stream of raw bytes: request bodies handed to the backend (image load,
/// import, archive PUT; never buffered whole) and byte bodies it answers (save,
/// export, archive GET). `tokio_util::io::StreamReader` turns one into an
/// `AsyncRead`.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A progress stream (load, import, pull, push). Errors in the middle of the
/// work are sent as [`JsonMessage::error`] items, then the stream ends.
pub type ProgressStream = BoxStream<'static, JsonMessage>;

/// Which standard stream a chunk of output belongs to (the first byte of a
/// multiplexed frame header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
}

/// A chunk of container or exec output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    pub kind: StreamKind,
    pub data: Bytes,
}

impl OutputChunk {
    pub fn stdout(data: impl Into<Bytes>) -> Self {
        OutputChunk {
            kind: StreamKind::Stdout,
            data: data.into(),
        }
    }
    pub fn stderr(data: impl Into<Bytes>) -> Self {
        OutputChunk {
            kind: StreamKind::Stderr,
            data: data.into(),
        }
    }
}

/// Output of logs, attach and exec. Ending the stream ends the response (and
/// closes a hijacked connection); an `Err` item ends it after logging.
pub type OutputStream = BoxStream<'static, Result<OutputChunk, ApiError>>;

/// Where the client's stdin goes: the container's (or exec's) stdin. The
/// server writes what the client sends and calls `shutdown` when the client
/// half-closes its side (`echo hi | docker run -i …`), which must close the
/// process's stdin so it sees end of file.
pub type StdinWriter = Pin<Box<dyn AsyncWrite + Send>>;

/// A log stream plus whether the container has a TTY (then the server sends
/// the bytes raw, else in multiplexed frames).
pub struct LogStream {
    pub tty: bool,
    pub output: OutputStream,
}

/// An attached session (container attach, exec start).
pub struct AttachSession {
    /// The container or exec has a TTY: output is sent raw, not framed.
    pub tty: bool,
    /// Present when the client asked for stdin and the process has one open.
    pub stdin: Option<StdinWriter>,
    /// The process's output. It must end when the process exits (for attach:
    /// when the container stops), which ends the session and closes the
    /// connection.
    pub output: OutputStream,
    /// The key sequence (Docker's syntax, `ctrl-p,ctrl-q`) that detaches a
    /// client from the stdin it writes: the exec's `DetachKeys`. `None`: the
    /// attach request's `detachKeys`, else Docker's default `ctrl-p,ctrl-q`.
    pub detach_keys: Option<String>,
}

/// A pending wait: resolves when the condition holds. Obtained before the
/// server answers, so a 404 is reported as a status; the response headers are
/// sent right away and the body when this resolves.
pub type WaitFuture = BoxFuture<'static, Result<WaitResponse, ApiError>>;

/// Statistics: one sample (`stream=false`) or one per second.
pub type StatsStream = BoxStream<'static, Result<StatsResponse, ApiError>>;

/// Events, from `since` (replayed) on; a stream without `until` never ends.
pub type EventStream = BoxStream<'static, EventMessage>;

/// The engine, as the API server sees it. Implementations must be cheap to
/// call concurrently: the server holds one `Arc<dyn Backend>` and calls it from
/// many connections at once.
///
/// Unless said otherwise an unknown container/image/network/volume/exec is a
/// 404 with Docker's wording (`ApiError::no_such_container` and friends).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    // ------------------------------------------------------------ system

    /// `GET /version`. `ApiVersion` and `MinAPIVersion` are overwritten by the server.
    async fn version(&self) -> Result<SystemVersion, ApiError>;

    /// `GET /info`. Start from `SystemInfo::default()`, which has every field the
    /// CLI dereferences; fill counts, kernel, OS, NCPU, MemTotal, names and paths.
    async fn info(&self) -> Result<SystemInfo, ApiError>;

    /// `GET /events`. Replay stored events at or after `since`, then stream new
    /// ones; end at `until` (unix seconds). Honour the `type`, `event`/`action`,
    /// `container`, `image`, `label`, `network`, `volume` filters.
    async fn events(&self, opts: EventsOptions) -> Result<EventStream, ApiError>;

    /// `GET /system/df`.
    async fn system_df(&self) -> Result<DiskUsage, ApiError>;

    /// `POST /auth`: check the credentials against the registry. Wrong
    /// credentials: `ApiError::unauthorized`. The server answers
    /// `{"Status":"Login Succeeded"}` when the returned status is empty.
    async fn auth(&self, auth: AuthConfig) -> Result<AuthResponse, ApiError>;

    // ------------------------------------------------------------ containers

    /// `POST /containers/create`. `name` is validated by the server
    /// (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`, leading `/` stripped). A name in use is a
    /// 409 `Conflict. The container name "/x" is already in use by container
    /// "<id>". You have to remove (or rename) that container to be able to
    /// reuse that name.`; a missing image a 404 `No such image: busybox:latest`
    /// (the CLI then pulls and retries). The container is `created`, not started.
    async fn container_create(
        &self,
        name: Option<String>,
        platform: Option<String>,
        config: ContainerCreateConfig,
    ) -> Result<CreateResponse, ApiError>;

    /// `POST /containers/{id}/start`. Already running: `ApiError::not_modified()`.
    /// The process must be started before this returns, and attached sessions
    /// (started before) must see its output from the first byte.
    async fn container_start(&self, id: &str) -> Result<(), ApiError>;

    /// `POST /containers/{id}/stop`: send the stop signal, wait `timeout`
    /// seconds, then SIGKILL; return once stopped. Not running: `not_modified()`.
    /// A stopped container is not restarted by its restart policy.
    async fn container_stop(&self, id: &str, opts: StopOptions) -> Result<(), ApiError>;

    /// `POST /containers/{id}/kill` with `signal` (name like `SIGHUP`/`HUP` or a
    /// number; default SIGKILL). Not running: 409 `container <id> is not running`.
    async fn container_kill(&self, id: &str, signal: Option<String>) -> Result<(), ApiError>;

    /// `POST /containers/{id}/restart`: stop as [`Backend::container_stop`] (if
    /// running), then start. Increments nothing visible except `StartedAt`.
    async fn container_restart(&self, id: &str, opts: StopOptions) -> Result<(), ApiError>;

    /// `POST /containers/{id}/wait`. Return `Err` at once for an unknown
    /// container; else a future resolving per `condition`: `NotRunning` at once
    /// if not running, `NextExit` at the next exit, `Removed` after removal
    /// (including the auto-remove of `--rm`). The CLI sends wait before start,
    /// so `NextExit`/`Removed` on a created container must not resolve early.
    async fn container_wait(
        &self,
        id: &str,
        condition: WaitCondition,
    ) -> Result<WaitFuture, ApiError>;

    /// `DELETE /containers/{id}`. Running without `force`: 409 `cannot remove
    /// container "/x": container is running: stop the container before
    /// removing or force remove`. Pending `Removed` waits resolve.
    async fn container_remove(&self, id: &str, opts: RemoveOptions) -> Result<(), ApiError>;

    /// `DELETE /containers/{id}/{alias}?link=1` (optional): removes the
    /// legacy link `alias` of container `id`.
    async fn container_remove_link(&self, id: &str, alias: &str) -> Result<(), ApiError> {
        let _ = (id, alias);
        Err(ApiError::not_implemented(
            "legacy links are not implemented by this engine",
        ))
    }

    /// `POST /containers/{id}/rename?name=`. Name in use: 409.
    async fn container_rename(&self, id: &str, new_name: &str) -> Result<(), ApiError>;

    /// `POST /containers/{id}/pause`. Not running: 409; already paused: 409.
    async fn container_pause(&self, id: &str) -> Result<(), ApiError>;

    /// `POST /containers/{id}/unpause`. Not paused: 409.
    async fn container_unpause(&self, id: &str) -> Result<(), ApiError>;

    /// `GET /containers/json`: running containers (all with `all`), newest
    /// first, filtered; `Names` begin with `/`.
    async fn container_list(
        &self,
        opts: ContainerListOptions,
    ) -> Result<Vec<ContainerSummary>, ApiError>;

    /// `GET /containers/{id}/json`; `size` fills `SizeRw`/`SizeRootFs`.
    async fn container_inspect(&self, id: &str, size: bool) -> Result<ContainerInspect, ApiError>;

    /// `GET /containers/{id}/logs`. The server rejects requests with neither
    /// stdout nor stderr. Without `follow` the stream ends after the stored
    /// lines; with it, it ends when the container stops. `timestamps`: prefix
    /// each line with its RFC 3339 nano time and a space.
    async fn container_logs(&self, id: &str, opts: LogsOptions) -> Result<LogStream, ApiError>;

    /// `POST /containers/{id}/attach` (and the websocket-less variants). With
    /// `logs`, replay stored output first; with `stream`, follow live output
    /// until the container stops. `stdin` only when the container has
    /// `OpenStdin`; with `StdinOnce`, closing it ends the container's stdin for good.
    async fn container_attach(
        &self,
        id: &str,
        opts: AttachOptions,
    ) -> Result<AttachSession, ApiError>;

    /// `POST /containers/{id}/resize?h=&w=`: set the TTY size. No TTY: ignore.
    /// Not running: 409.
    async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<(), ApiError>;

    /// `GET /containers/{id}/top?ps_args=`. Not running: 409 `container <id> is
    /// not running`.
    async fn container_top(
        &self,
        id: &str,
        ps_args: Option<String>,
    ) -> Result<TopResponse, ApiError>;

    /// `GET /containers/{id}/stats`. `stream=false`: one sample (with
    /// `one_shot`, without waiting a second for `precpu_stats`). A stopped
    /// container yields zeroed samples (the CLI shows it with 0%).
    async fn container_stats(
        &self,
        id: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<StatsStream, ApiError>;

    /// `HEAD /containers/{id}/archive?path=`: stat a path (symlinks not
    /// followed for the last component). Missing: 404 `Could not find the file
    /// <path> in container <id>`.
    async fn container_archive_stat(&self, id: &str, path: &str) -> Result<PathStat, ApiError>;

    /// `GET /containers/{id}/archive?path=`: the stat plus a tar of the path
    /// (a directory with its content, named by its base name). The path must be
    /// resolved inside the container's root (no escapes through symlinks).
    async fn container_archive_get(
        &self,
        id: &str,
        path: &str,
    ) -> Result<(PathStat, ByteStream), ApiError>;

    /// `PUT /containers/{id}/archive?path=`: extract the tar `body` into the
    /// directory `path` (missing: 404; not a directory: 400). Entries must not
    /// escape the container's root.
    async fn container_archive_put(
        &self,
        id: &str,
        opts: ArchivePutOptions,
        body: ByteStream,
    ) -> Result<(), ApiError>;

    /// `GET /containers/{id}/changes` (optional).
    async fn container_changes(&self, id: &str) -> Result<Vec<FilesystemChange>, ApiError> {
        let _ = id;
        Err(ApiError::not_implemented(
            "container changes are not implemented by this engine",
        ))
    }

    /// `POST /containers/{id}/update` (optional): new resource limits
    /// (zero or absent fields keep theirs) and restart policy.
    async fn container_update(
        &self,
        id: &str,
        update: ContainerUpdate,
    ) -> Result<ContainerUpdateResponse, ApiError> {
        let _ = (id, update);
        Err(ApiError::not_implemented(
            "container update is not implemented by this engine",
        ))
    }

    /// `GET /containers/{id}/export`: tar of the root filesystem (optional).
    async fn container_export(&self, id: &str) -> Result<ByteStream, ApiError> {
        let _ = id;
        Err(ApiError::not_implemented(
            "container export is not implemented by this engine",
        ))
    }

    /// `POST /containers/prune`: remove stopped containers matching `until`/`label`.
    async fn containers_prune(&self, filters: Filters) -> Result<ContainersPruneReport, ApiError>;

    // ------------------------------------------------------------ exec

    /// `POST /containers/{id}/exec`. Not running: 409 `container <id> is not
    /// running`. Returns the exec ID.
    async fn exec_create(&self, id: &str, config: ExecConfig) -> Result<IdResponse, ApiError>;

    /// `POST /exec/{id}/start`. With `detach` the server ignores the session's
    /// streams and answers 200 at once. Already started: 409.
    async fn exec_start(
        &self,
        exec_id: &str,
        opts: ExecStartConfig,
    ) -> Result<AttachSession, ApiError>;

    /// `GET /exec/{id}/json`. `ExitCode` is null while running.
    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect, ApiError>;

    /// `POST /exec/{id}/resize?h=&w=`.
    async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<(), ApiError>;

    // ------------------------------------------------------------ images

    /// `GET /images/json`.
    async fn image_list(&self, opts: ImageListOptions) -> Result<Vec<ImageSummary>, ApiError>;

    /// `GET /images/{name}/json`.
    async fn image_inspect(&self, name: &str) -> Result<ImageInspect, ApiError>;

    /// `GET /images/{name}/history`, newest layer first.
    async fn image_history(&self, name: &str) -> Result<Vec<HistoryItem>, ApiError>;

    /// `POST /images/{name}/tag?repo=&tag=` (`tag` empty: `latest`). Invalid
    /// reference: 400.
    async fn image_tag(&self, name: &str, repo: &str, tag: &str) -> Result<(), ApiError>;

    /// `DELETE /images/{name}?force=&noprune=`: untag the reference; delete the
    /// image when no tag is left (and parents unless `noprune`). Used by a
    /// container: 409 `conflict: unable to remove repository reference "x"
    /// (must force) - container <id> is using its referenced image <id>`.
    async fn image_remove(
        &self,
        name: &str,
        force: bool,
        noprune: bool,
    ) -> Result<Vec<ImageDeleteItem>, ApiError>;

    /// `POST /images/load`: `body` is a docker-save or OCI layout tar, streamed.
    /// Emit `{"stream":"Loaded image: busybox:latest\n"}` (or `Loaded image ID:
    /// sha256:…` for untagged images) per image. Errors before anything was
    /// read may be returned; later ones go in the stream.
    async fn image_load(&self, body: ByteStream, quiet: bool) -> Result<ProgressStream, ApiError>;

    /// `GET /images/get?names=` and `GET /images/{name}/get`: a docker-save
    /// tar of the images (with their tags), streamed.
    async fn image_save(&self, names: Vec<String>) -> Result<ByteStream, ApiError>;

    /// `POST /images/create?fromSrc=-`: import a rootfs tar as a one-layer
    /// image; emit the new ID as `{"status":"sha256:…"}`.
    async fn image_import(
        &self,
        body: ByteStream,
        opts: ImportOptions,
    ) -> Result<ProgressStream, ApiError>;

    /// `POST /commit` (optional): an image of the container's writable
    /// layer; `config` (the body) overrides the container's configuration.
    async fn commit(
        &self,
        opts: CommitOptions,
        config: Option<ContainerConfig>,
    ) -> Result<IdResponse, ApiError> {
        let _ = (opts, config);
        Err(ApiError::not_implemented(
            "commit is not implemented by this engine",
        ))
    }

    /// `POST /build` (optional): the classic builder. `context` is the
    /// build context tar (plain or gzip), streamed. The progress stream is
    /// dockerd's: `{"stream":"Step 1/2 : FROM x\n"}`, RUN output, `{"aux":
    /// {"ID":…}}`, `Successfully built`/`tagged`; a failure ends it with an
    /// error item (with the exit code as `errorDetail.code` for RUN).
    async fn build(
        &self,
        opts: BuildOptions,
        context: ByteStream,
    ) -> Result<ProgressStream, ApiError> {
        let _ = (opts, context);
        Err(ApiError::not_implemented(
            "build is not implemented by this engine",
        ))
    }

    /// `POST /images/create?fromImage=`: pull, emitting Docker's progress lines
    /// (`Pulling from`, per-layer `Pull complete`, `Digest:`, `Status:`).
    async fn image_pull(&self, opts: PullOptions) -> Result<ProgressStream, ApiError>;

    /// `POST /images/{name}/push?tag=`: push, emitting progress lines and an
    /// `aux` with `{Tag, Digest, Size}` at the end.
    async fn image_push(
        &self,
        name: &str,
        tag: &str,
        auth: Option<AuthConfig>,
    ) -> Result<ProgressStream, ApiError>;

    /// `GET /distribution/{name}/json`: the descriptor and platforms of
    /// what the registry holds under `name`, asked with `auth`.
    async fn distribution_inspect(
        &self,
        name: &str,
        auth: Option<AuthConfig>,
    ) -> Result<DistributionInspect, ApiError> {
        let _ = auth;
        Err(ApiError::not_implemented(format!(
            "this engine cannot ask a registry about {name}"
        )))
    }

    /// `POST /images/prune` (`dangling`, `until`, `label` filters).
    async fn images_prune(&self, filters: Filters) -> Result<ImagesPruneReport, ApiError>;

    // ------------------------------------------------------------ networks

    /// `GET /networks` (`driver`, `id`, `label`, `name`, `scope`, `type`, `dangling`).
    async fn network_list(&self, filters: Filters) -> Result<Vec<NetworkResource>, ApiError>;

    /// `GET /networks/{id}` (by ID, ID prefix or name).
    async fn network_inspect(&self, id: &str) -> Result<NetworkResource, ApiError>;

    /// `POST /networks/create`. Name in use: 409 `network with name x already exists`.
    async fn network_create(
        &self,
        req: NetworkCreateRequest,
    ) -> Result<NetworkCreateResponse, ApiError>;

    /// `DELETE /networks/{id}`. Containers attached: 403/409; predefined
    /// (`bridge`, `host`, `none`): 403.
    async fn network_remove(&self, id: &str) -> Result<(), ApiError>;

    /// `POST /networks/{id}/connect`.
    async fn network_connect(&self, id: &str, req: NetworkConnectRequest) -> Result<(), ApiError>;

    /// `POST /networks/{id}/disconnect`.
    async fn network_disconnect(
        &self,
        id: &str,
        req: NetworkDisconnectRequest,
    ) -> Result<(), ApiError>;

    /// `POST /networks/prune`: unused user-defined networks.
    async fn networks_prune(&self, filters: Filters) -> Result<NetworksPruneReport, ApiError>;

    // ------------------------------------------------------------ volumes

    /// `GET /volumes` (`dangling`, `driver`, `label`, `name`).
    async fn volume_list(&self, filters: Filters) -> Result<VolumeListResponse, ApiError>;

    /// `POST /volumes/create`; an empty name gets a random 64-hex one. Existing
    /// name: return the existing volume.
    async fn volume_create(&self, req: VolumeCreateRequest) -> Result<Volume, ApiError>;

    /// `GET /volumes/{name}`.
    async fn volume_inspect(&self, name: &str) -> Result<Volume, ApiError>;

    /// `DELETE /volumes/{name}?force=`. In use: 409 `remove x: volume is in use - [<ids>]`.
    async fn volume_remove(&self, name: &str, force: bool) -> Result<(), ApiError>;

    /// `POST /volumes/prune` (anonymous unused volumes; `all=true` filter: all unused).
    async fn volumes_prune(&self, filters: Filters) -> Result<VolumesPruneReport, ApiError>;
}
