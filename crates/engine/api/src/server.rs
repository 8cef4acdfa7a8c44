//! The HTTP server: transport (unix socket, TCP with a bearer token), version
//! prefixes, routing, request parsing, response framing and connection
//! hijacking for attach and exec.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyDataStream, BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tracing::Instrument;

use crate::backend::*;
use crate::error::{ApiError, ErrorKind, ServeError};
use crate::types::*;

/// The API version this engine advertises (`Api-Version`, `/version`).
pub const API_VERSION: &str = "1.44";
/// The oldest API version accepted in a `/v1.XX/` prefix.
pub const MIN_API_VERSION: &str = "1.24";
/// Minor versions accepted in a path prefix: 1.24 ..= 1.51.
const MIN_MINOR: u32 = 24;
const MAX_MINOR: u32 = 51;
const DEFAULT_MINOR: u32 = 44;
/// Largest JSON request body accepted.
pub const MAX_JSON_BODY: usize = 10 * 1024 * 1024;

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// How a TCP listener authenticates its clients.
#[derive(Clone)]
pub enum TcpAuth {
    /// `Authorization: Bearer <token>` on every request, compared in constant time.
    Token(String),
    /// TLS. Clients are authenticated by a certificate the acceptor verifies
    /// (`client_certs`, dockerd's `--tlsverify`), by a bearer token sent
    /// inside TLS, or both; TLS that authenticates nobody is refused.
    Tls {
        acceptor: tokio_rustls::TlsAcceptor,
        client_certs: bool,
        token: Option<String>,
    },
}

impl TcpAuth {
    /// Refuses a listener that would let anyone in.
    fn check(&self) -> Result<(), ServeError> {
        match self {
            TcpAuth::Token(t) if t.is_empty() => Err(ServeError::EmptyToken),
            TcpAuth::Tls { token: Some(t), .. } if t.is_empty() => Err(ServeError::EmptyToken),
            TcpAuth::Tls {
                client_certs: false,
                token: None,
                ..
            } => Err(ServeError::NoAuth),
            _ => Ok(()),
        }
    }

    fn token(&self) -> Option<&str> {
        match self {
            TcpAuth::Token(t) => Some(t),
            TcpAuth::Tls { token, .. } => token.as_deref(),
        }
    }
}

impl std::fmt::Debug for TcpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TcpAuth::Token(_) => f.write_str("Token(<redacted>)"),
            TcpAuth::Tls {
                client_certs,
                token,
                ..
            } => f
                .debug_struct("Tls")
                .field("client_certs", client_certs)
                .field("token", &token.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// The request handler shared by all connections.
#[derive(Clone)]
pub struct Server {
    backend: Arc<dyn Backend>,
    token: Option<Arc<[u8]>>,
}

impl Server {
    /// A server without authentication (for the unix socket, whose mode guards it).
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Server {
            backend,
            token: None,
        }
    }

    /// A server that requires `Authorization: Bearer <token>`.
    pub fn with_token(backend: Arc<dyn Backend>, token: &str) -> Self {
        Server {
            backend,
            token: Some(Arc::from(token.as_bytes())),
        }
    }

    /// Serves one connection until it closes (HTTP/1.1 with upgrades).
    pub async fn serve_connection<IO>(self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.serve(io, None).await
    }

    /// Serves one unix socket connection; hijacked streams on it wait for
    /// the client to read the `101` head before any output (see [`head_read`]).
    pub async fn serve_unix_connection(self, stream: tokio::net::UnixStream) {
        let fd = stream.as_raw_fd();
        self.serve(stream, Some(UnixPeer(fd))).await
    }

    async fn serve<IO>(self, io: IO, peer: Option<UnixPeer>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let srv = self.clone();
            if let Some(p) = peer {
                req.extensions_mut().insert(p);
            }
            async move { Ok::<_, Infallible>(srv.handle(req).await) }
        });
        if let Err(e) = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades()
            .await
        {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }

    /// Handles one request: the span, authentication, versions, routing.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let start = Instant::now();
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let resp = async {
            if let Some(token) = &self.token {
                if !bearer_ok(req.headers(), token) {
                    return error_response(&ApiError::unauthorized(
                        "missing or wrong bearer token: send Authorization: Bearer <token>",
                    ));
                }
            }
            match self.route(req).await {
                Ok(r) => r,
                Err(e) => {
                    if e.status() >= 500 {
                        tracing::warn!(error = %e.message, "request failed");
                    }
                    error_response(&e)
                }
            }
        }
        .instrument(span.clone())
        .await;
        let mut resp = resp;
        add_common_headers(resp.headers_mut());
        span.record("status", resp.status().as_u16());
        span.record("duration_ms", start.elapsed().as_secs_f64() * 1000.0);
        span.in_scope(|| tracing::debug!("answered"));
        resp
    }

    async fn route(&self, mut req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let method = req.method().clone();
        let raw_path = req.uri().path().to_string();
        let (minor, path) = split_version(&raw_path)?;
        let q = Query::parse(req.uri().query().unwrap_or(""));
        let segs: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let b = &self.backend;
        use Method as M;
        match (&method, s.as_slice()) {
            (&M::GET | &M::HEAD, ["_ping"]) => Ok(ping(method == M::HEAD)),
            (&M::GET, ["version"]) => {
                let mut v = b.version().await?;
                v.api_version = API_VERSION.into();
                v.min_api_version = MIN_API_VERSION.into();
                if v.os.is_empty() {
                    v.os = "linux".into();
                }
                if v.arch.is_empty() {
                    v.arch = go_arch().into();
                }
                Ok(json(StatusCode::OK, &v))
            }
            (&M::GET, ["info"]) => Ok(json(StatusCode::OK, &b.info().await?)),
            (&M::GET, ["events"]) => {
                let opts = EventsOptions {
                    since: q.time("since")?,
                    until: q.time("until")?,
                    filters: q.filters()?,
                };
                let events = b.events(opts).await?;
                Ok(json_lines(events.map(Ok)))
            }
            (&M::GET, ["system", "df"]) => Ok(json(StatusCode::OK, &b.system_df().await?)),
            (&M::POST, ["auth"]) => {
                let auth: AuthConfig = read_json(req.into_body(), true).await?;
                let mut r = b.auth(auth).await?;
                if r.status.is_empty() {
                    r.status = "Login Succeeded".into();
                }
                Ok(json(StatusCode::OK, &r))
            }

            // -------------------------------------------------- containers
            (&M::GET, ["containers", "json"]) => {
                let limit = q.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
                let opts = ContainerListOptions {
                    all: q.bool("all"),
                    limit,
                    size: q.bool("size"),
                    filters: q.filters()?,
                };
                Ok(json(StatusCode::OK, &b.container_list(opts).await?))
            }
            (&M::POST, ["containers", "create"]) => {
                let name = match q.get("name") {
                    Some(n) if !n.is_empty() => Some(validate_name(n)?),
                    _ => None,
                };
                let platform = q
                    .get("platform")
                    .filter(|p| !p.is_empty())
                    .map(String::from);
                let cfg: ContainerCreateConfig = read_json(req.into_body(), true).await?;
                let r = b.container_create(name, platform, cfg).await?;
                Ok(json(StatusCode::CREATED, &r))
            }
            (&M::POST, ["containers", "prune"]) => Ok(json(
                StatusCode::OK,
                &b.containers_prune(q.filters()?).await?,
            )),
            (&M::DELETE, ["containers", id]) => {
                let opts = RemoveOptions {
                    force: q.bool("force"),
                    volumes: q.bool("v"),
                    link: q.bool("link"),
                };
                b.container_remove(id, opts).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&M::DELETE, ["containers", id, alias]) if q.bool("link") => {
                b.container_remove_link(id, alias).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&M::GET, ["containers", id, "attach", "ws"]) => {
                let opts = attach_options(&q)?;
                let key = crate::ws::handshake_key(req.headers())?;
                let on_upgrade = hyper::upgrade::on(&mut req);
                let session = b.container_attach(id, opts).await?;
                Ok(crate::ws::attach(session, on_upgrade, &key, minor >= 28))
            }
            (&M::GET, ["distribution", name @ .., "json"]) if !name.is_empty() => {
                let name = name.join("/");
                let auth = registry_auth(req.headers());
                Ok(json(
                    StatusCode::OK,
                    &b.distribution_inspect(&name, auth).await?,
                ))
            }
            (_, ["containers", id, action]) => {
                self.container_action(&method, id, action, &q, minor, req)
                    .await
            }

            // -------------------------------------------------- exec
            (&M::POST, ["exec", id, "start"]) => {
                let upgrade = upgrade_requested(req.headers());
                let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
                let peer = req.extensions().get::<UnixPeer>().copied();
                let cfg: ExecStartConfig = read_json(req.into_body(), false).await?;
                let detach = cfg.detach;
                if let (Some(on_upgrade), false) = (on_upgrade, detach) {
                    return self
                        .exec_start_hijacked(id, cfg, on_upgrade, peer, minor)
                        .await;
                }
                let on_upgrade = None;
                let session = b.exec_start(id, cfg).await?;
                if detach {
                    return Ok(empty(StatusCode::OK));
                }
                Ok(hijack(session, on_upgrade, peer, minor))
            }
            (&M::POST, ["exec", id, "resize"]) => {
                let (h, w) = q.size()?;
                b.exec_resize(id, h, w).await?;
                Ok(empty(StatusCode::OK))
            }
            (&M::GET, ["exec", id, "json"]) => Ok(json(StatusCode::OK, &b.exec_inspect(id).await?)),

            // -------------------------------------------------- images
            (&M::GET, ["images", "json"]) => {
                let opts = ImageListOptions {
                    all: q.bool("all"),
                    filters: q.filters()?,
                    shared_size: q.bool("shared-size"),
                    digests: q.bool("digests"),
                };
                Ok(json(StatusCode::OK, &b.image_list(opts).await?))
            }
            (&M::POST, ["images", "create"]) => self.image_create(&q, req).await,
            (&M::POST, ["build"]) => self.build(&q, req).await,
            (&M::POST, ["commit"]) => {
                let container = q.get("container").unwrap_or("");
                if container.is_empty() {
                    return Err(ApiError::bad_parameter(
                        "missing container in the query: add container=<name or id>",
                    ));
                }
                let opts = CommitOptions {
                    container: container.to_string(),
                    repo: q.get("repo").unwrap_or("").into(),
                    tag: q.get("tag").unwrap_or("").into(),
                    comment: q.get("comment").unwrap_or("").into(),
                    author: q.get("author").unwrap_or("").into(),
                    pause: q.get("pause").is_none_or(|_| q.bool("pause")),
                    changes: q.all("changes").map(String::from).collect(),
                };
                let config: Option<ContainerConfig> = read_json(req.into_body(), false).await?;
                Ok(json(StatusCode::CREATED, &b.commit(opts, config).await?))
            }
            (&M::POST, ["images", "load"]) => {
                let body = body_stream(req.into_body());
                let progress = b.image_load(body, q.bool("quiet")).await?;
                Ok(json_lines(progress.map(Ok)))
            }
            (&M::GET, ["images", "get"]) => {
                let names: Vec<String> = q.all("names").map(String::from).collect();
                if names.is_empty() {
                    return Err(ApiError::bad_parameter(
                        "no image names given: add names=<image> to the query",
                    ));
                }
                Ok(tar(b.image_save(names).await?))
            }
            (&M::POST, ["images", "prune"]) => {
                Ok(json(StatusCode::OK, &b.images_prune(q.filters()?).await?))
            }
            // `docker system prune` and `docker builder prune` clear the build
            // cache; the classic builder keeps its cache as images (removed
            // with them), so the true answer is that nothing was deleted.
            (&M::POST, ["build", "prune"]) => Ok(json(
                StatusCode::OK,
                &serde_json::json!({"CachesDeleted": [], "SpaceReclaimed": 0}),
            )),
            (&M::GET, ["images", "search"]) => Err(ApiError::not_implemented(
                "image search is not implemented by this engine",
            )),
            (&M::DELETE, ["images", rest @ ..]) if !rest.is_empty() => {
                let name = rest.join("/");
                let r = b
                    .image_remove(&name, q.bool("force"), q.bool("noprune"))
                    .await?;
                Ok(json(StatusCode::OK, &r))
            }
            (_, ["images", rest @ .., action]) if !rest.is_empty() => {
                let name = rest.join("/");
                match (&method, *action) {
                    (&M::GET, "json") => Ok(json(StatusCode::OK, &b.image_inspect(&name).await?)),
                    (&M::GET, "history") => {
                        Ok(json(StatusCode::OK, &b.image_history(&name).await?))
                    }
                    (&M::GET, "get") => Ok(tar(b.image_save(vec![name]).await?)),
                    (&M::POST, "tag") => {
                        let repo = q.get("repo").unwrap_or("");
                        if repo.is_empty() {
                            return Err(ApiError::bad_parameter(
                                "missing repo in the query: add repo=<name>",
                            ));
                        }
                        b.image_tag(&name, repo, q.get("tag").unwrap_or("")).await?;
                        Ok(empty(StatusCode::CREATED))
                    }
                    (&M::POST, "push") => {
                        let auth = registry_auth(req.headers());
                        let tag = q.get("tag").unwrap_or("").to_string();
                        let progress = b.image_push(&name, &tag, auth).await?;
                        Ok(json_lines(progress.map(Ok)))
                    }
                    _ => Err(page_not_found()),
                }
            }

            // -------------------------------------------------- networks
            (&M::GET, ["networks"]) => {
                Ok(json(StatusCode::OK, &b.network_list(q.filters()?).await?))
            }
            (&M::POST, ["networks", "create"]) => {
                let r: NetworkCreateRequest = read_json(req.into_body(), true).await?;
                if r.name.is_empty() {
                    return Err(ApiError::bad_parameter(
                        "network name is empty: give a Name in the body",
                    ));
                }
                Ok(json(StatusCode::CREATED, &b.network_create(r).await?))
            }
            (&M::POST, ["networks", "prune"]) => {
                Ok(json(StatusCode::OK, &b.networks_prune(q.filters()?).await?))
            }
            (&M::GET, ["networks", id]) => Ok(json(StatusCode::OK, &b.network_inspect(id).await?)),
            (&M::DELETE, ["networks", id]) => {
                b.network_remove(id).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&M::POST, ["networks", id, "connect"]) => {
                let r: NetworkConnectRequest = read_json(req.into_body(), true).await?;
                b.network_connect(id, r).await?;
                Ok(empty(StatusCode::OK))
            }
            (&M::POST, ["networks", id, "disconnect"]) => {
                let r: NetworkDisconnectRequest = read_json(req.into_body(), true).await?;
                b.network_disconnect(id, r).await?;
                Ok(empty(StatusCode::OK))
            }

            // -------------------------------------------------- volumes
            (&M::GET, ["volumes"]) => Ok(json(StatusCode::OK, &b.volume_list(q.filters()?).await?)),
            (&M::POST, ["volumes", "create"]) => {
                let r: VolumeCreateRequest = read_json(req.into_body(), false).await?;
                Ok(json(StatusCode::CREATED, &b.volume_create(r).await?))
            }
            (&M::POST, ["volumes", "prune"]) => {
                Ok(json(StatusCode::OK, &b.volumes_prune(q.filters()?).await?))
            }
            (&M::GET, ["volumes", name]) => {
                Ok(json(StatusCode::OK, &b.volume_inspect(name).await?))
            }
            (&M::DELETE, ["volumes", name]) => {
                b.volume_remove(name, q.bool("force")).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }

            // -------------------------------------------------- swarm
            // This engine is never part of a swarm: answer as dockerd does on a
            // node outside one (503), so clients that leave a swarm "just in
            // case" (docker-py's test teardown, scripts) see the usual answer.
            (&M::POST, ["swarm", "init" | "join"]) => Err(ApiError::not_implemented(
                "swarm mode is not supported by this engine: run services as containers",
            )),
            (&M::POST, ["swarm", "leave"]) => Err(ApiError::new(
                ErrorKind::Unavailable,
                "This node is not part of a swarm",
            )),
            (_, ["swarm" | "nodes" | "services" | "tasks" | "secrets" | "configs", ..]) => {
                Err(ApiError::new(
                    ErrorKind::Unavailable,
                    "This node is not a swarm manager. Use \"docker swarm init\" or \
                     \"docker swarm join\" to connect this node to swarm and try again.",
                ))
            }
            _ => Err(page_not_found()),
        }
    }

    async fn container_action(
        &self,
        method: &Method,
        id: &str,
        action: &str,
        q: &Query,
        minor: u32,
        mut req: Request<Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        let b = &self.backend;
        use Method as M;
        match (method, action) {
            (&M::GET, "json") => Ok(json(
                StatusCode::OK,
                &b.container_inspect(id, q.bool("size")).await?,
            )),
            (&M::POST, "start") => {
                b.container_start(id).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&M::POST, "stop") => {
                b.container_stop(id, q.stop_options()?).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&M::POST, "restart") => {
                b.container_restart(id, q.stop_options()?).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&M::POST, "kill") => {
                let signal = q.get("signal").filter(|s| !s.is_empty()).map(String::from);
                b.container_kill(id, signal).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&M::POST, "pause") => {
                b.container_pause(id).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&M::POST, "unpause") => {
                b.container_unpause(id).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&M::POST, "rename") => {
                let name = q.get("name").unwrap_or("");
                if name.is_empty() {
                    return Err(ApiError::bad_parameter(
                        "missing new name: add name=<new name> to the query",
                    ));
                }
                let name = validate_name(name)?;
                b.container_rename(id, &name).await?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&M::POST, "wait") => {
                let condition = match q.get("condition").unwrap_or("") {
                    "" | "not-running" => WaitCondition::NotRunning,
                    "next-exit" => WaitCondition::NextExit,
                    "removed" => WaitCondition::Removed,
                    other => {
                        return Err(ApiError::bad_parameter(format!(
                            "invalid condition {other:?}: use not-running, next-exit or removed"
                        )))
                    }
                };
                let fut = b.container_wait(id, condition).await?;
                // Headers go out now; the body when the container exits.
                let body = futures::stream::once(async move {
                    let r = fut.await.unwrap_or_else(|e| WaitResponse {
                        status_code: -1,
                        error: Some(WaitError { message: e.message }),
                    });
                    Ok::<_, io::Error>(json_line(&r))
                });
                Ok(stream_response(StatusCode::OK, "application/json", body))
            }
            (&M::GET, "logs") => {
                let opts = LogsOptions {
                    follow: q.bool("follow"),
                    stdout: q.bool("stdout"),
                    stderr: q.bool("stderr"),
                    since: q.time("since")?.filter(|t| *t > 0.0),
                    until: q.time("until")?.filter(|t| *t > 0.0),
                    timestamps: q.bool("timestamps"),
                    tail: match q.get("tail").unwrap_or("all") {
                        "" | "all" => None,
                        n => Some(n.parse::<i64>().map_err(|_| {
                            ApiError::bad_parameter(format!(
                                "invalid tail {n:?}: give a number of lines or \"all\""
                            ))
                        })?)
                        .filter(|n| *n >= 0)
                        .map(|n| n as usize),
                    },
                };
                if !opts.stdout && !opts.stderr {
                    return Err(ApiError::bad_parameter(
                        "Bad parameters: you must choose at least one stream",
                    ));
                }
                let logs = b.container_logs(id, opts).await?;
                let tty = logs.tty;
                let body = logs.output.map(move |r| match r {
                    Ok(c) => Ok(frame(tty, &c)),
                    Err(e) => Err(io::Error::other(e.message)),
                });
                Ok(stream_response(
                    StatusCode::OK,
                    stream_content_type(tty, minor),
                    body,
                ))
            }
            (&M::POST, "attach") => {
                let opts = attach_options(q)?;
                let on_upgrade =
                    upgrade_requested(req.headers()).then(|| hyper::upgrade::on(&mut req));
                let peer = req.extensions().get::<UnixPeer>().copied();
                let keys = opts.detach_keys.clone().filter(|k| !k.is_empty());
                let mut session = b.container_attach(id, opts).await?;
                if keys.is_some() {
                    session.detach_keys = keys;
                }
                Ok(hijack(session, on_upgrade, peer, minor))
            }
            (&M::POST, "resize") => {
                let (h, w) = q.size()?;
                b.container_resize(id, h, w).await?;
                Ok(empty(StatusCode::OK))
            }
            (&M::GET, "top") => {
                let ps_args = q.get("ps_args").filter(|s| !s.is_empty()).map(String::from);
                Ok(json(StatusCode::OK, &b.container_top(id, ps_args).await?))
            }
            (&M::GET, "stats") => {
                let stream = q.get("stream").map(bool_value).unwrap_or(true);
                let one_shot = q.bool("one-shot");
                if one_shot && stream {
                    return Err(ApiError::bad_parameter(
                        "cannot have stream=true and one-shot=true: set stream=false",
                    ));
                }
                let stats = b.container_stats(id, stream, one_shot).await?;
                if !stream {
                    let first = stats.take(1).collect::<Vec<_>>().await;
                    let s = match first.into_iter().next() {
                        Some(r) => r?,
                        None => StatsResponse::default(),
                    };
                    return Ok(json(StatusCode::OK, &s));
                }
                Ok(json_lines(stats.map_err(|e| io::Error::other(e.message))))
            }
            (&M::HEAD, "archive") => {
                let path = q.required("path")?;
                let stat = b.container_archive_stat(id, path).await?;
                let mut r = empty(StatusCode::OK);
                r.headers_mut()
                    .insert("X-Docker-Container-Path-Stat", path_stat_header(&stat)?);
                Ok(r)
            }
            (&M::GET, "archive") => {
                let path = q.required("path")?;
                let (stat, body) = b.container_archive_get(id, path).await?;
                let mut r = tar(body);
                r.headers_mut()
                    .insert("X-Docker-Container-Path-Stat", path_stat_header(&stat)?);
                Ok(r)
            }
            (&M::PUT, "archive") => {
                let opts = ArchivePutOptions {
                    path: q.required("path")?.to_string(),
                    no_overwrite_dir_non_dir: q.bool("noOverwriteDirNonDir"),
                    copy_uid_gid: q.bool("copyUIDGID"),
                };
                b.container_archive_put(id, opts, body_stream(req.into_body()))
                    .await?;
                Ok(empty(StatusCode::OK))
            }
            (&M::GET, "changes") => Ok(json(StatusCode::OK, &b.container_changes(id).await?)),
            (&M::POST, "update") => {
                let u: ContainerUpdate = read_json(req.into_body(), true).await?;
                Ok(json(StatusCode::OK, &b.container_update(id, u).await?))
            }
            (&M::GET, "export") => Ok(tar(b.container_export(id).await?)),
            (&M::POST, "exec") => {
                let cfg: ExecConfig = read_json(req.into_body(), true).await?;
                if cfg.cmd.is_empty() {
                    return Err(ApiError::bad_parameter(
                        "no exec command specified: give a non-empty Cmd",
                    ));
                }
                parse_detach_keys(&cfg.detach_keys)?;
                Ok(json(StatusCode::CREATED, &b.exec_create(id, cfg).await?))
            }
            _ => Err(page_not_found()),
        }
    }

    /// `POST /exec/{id}/start` with an upgrade: as dockerd, answer `101`
    /// first and start the process once the connection is hijacked, so its
    /// first output never travels with the answer's headers (clients that read
    /// the answer through a buffer and then take the raw socket, as docker-py
    /// does, would lose it). Unknown or already started execs are refused
    /// before the upgrade; a failure to start is written on the connection.
    async fn exec_start_hijacked(
        &self,
        id: &str,
        cfg: ExecStartConfig,
        on_upgrade: hyper::upgrade::OnUpgrade,
        peer: Option<UnixPeer>,
        minor: u32,
    ) -> Result<Response<Body>, ApiError> {
        let b = self.backend.clone();
        let info = b.exec_inspect(id).await?;
        if info.running || info.exit_code.is_some() || info.pid != 0 {
            return Err(ApiError::conflict(format!(
                "exec instance {id} has already been started"
            )));
        }
        let ctype = stream_content_type(cfg.tty, minor);
        let tty = cfg.tty;
        let id = id.to_string();
        let span = tracing::Span::current();
        tokio::spawn(
            async move {
                let up = match on_upgrade.await {
                    Ok(up) => up,
                    Err(e) => {
                        tracing::warn!(error = %e, "connection upgrade failed");
                        return;
                    }
                };
                head_read(peer).await;
                let (rd, mut wr) = tokio::io::split(TokioIo::new(up));
                match b.exec_start(&id, cfg).await {
                    Ok(session) => duplex(rd, wr, session).await,
                    Err(e) => {
                        tracing::warn!(error = %e.message, "exec start failed after the upgrade");
                        // As dockerd: the message goes out on stdout (in
                        // a frame unless the stream is raw).
                        let msg = OutputChunk::stdout(format!("{}\r\n", e.message));
                        let _ = wr.write_all(&frame(tty, &msg)).await;
                        let _ = wr.shutdown().await;
                    }
                }
            }
            .instrument(span),
        );
        Ok(upgraded(ctype))
    }

    /// `POST /build`: the query checked and parsed as dockerd does, the
    /// body (the context tar) streamed to the backend.
    async fn build(&self, q: &Query, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        if q.get("version") == Some("2") {
            return Err(ApiError::bad_parameter(
                "BuildKit (version=2) is not supported by this engine: build with the classic builder (DOCKER_BUILDKIT=0)",
            ));
        }
        if q.bool("squash") {
            return Err(ApiError::bad_parameter(
                "squash is only supported with experimental mode",
            ));
        }
        let platform = q.get("platform").unwrap_or("").to_string();
        check_build_platform(&platform)?;
        let json_param = |k: &str| -> Result<Option<serde_json::Value>, ApiError> {
            match q.get(k).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => serde_json::from_str(v).map(Some).map_err(|e| {
                    ApiError::bad_parameter(format!("invalid JSON in the {k} parameter: {e}"))
                }),
            }
        };
        let mut build_args = BTreeMap::new();
        if let Some(v) = json_param("buildargs")? {
            let m = v.as_object().ok_or_else(|| {
                ApiError::bad_parameter("buildargs must be a JSON object of names to values")
            })?;
            for (k, v) in m {
                build_args.insert(k.clone(), v.as_str().map(String::from));
            }
        }
        let mut labels = BTreeMap::new();
        if let Some(v) = json_param("labels")? {
            let m = v.as_object().ok_or_else(|| {
                ApiError::bad_parameter("labels must be a JSON object of names to values")
            })?;
            for (k, v) in m {
                labels.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
            }
        }
        let cache_from = match json_param("cachefrom")? {
            None => Vec::new(),
            Some(v) => serde_json::from_value::<Vec<String>>(v).map_err(|_| {
                ApiError::bad_parameter("cachefrom must be a JSON list of image references")
            })?,
        };
        let shm_size = q.int("shmsize")?.filter(|n| *n > 0);
        let opts = BuildOptions {
            tags: q
                .all("t")
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
            remote: q.get("remote").unwrap_or("").to_string(),
            dockerfile: q.get("dockerfile").unwrap_or("").to_string(),
            build_args,
            labels,
            target: q.get("target").unwrap_or("").to_string(),
            quiet: q.bool("q"),
            no_cache: q.bool("nocache"),
            remove: q.get("rm").is_none_or(bool_value),
            force_remove: q.bool("forcerm"),
            pull: q.bool("pull"),
            network_mode: q.get("networkmode").unwrap_or("").to_string(),
            // One parameter per host (docker-py) or several in one,
            // separated by commas or spaces.
            extra_hosts: q
                .all("extrahosts")
                .flat_map(|v| v.split([',', ' ']))
                .filter(|h| !h.is_empty())
                .map(String::from)
                .collect(),
            shm_size,
            cache_from,
            platform,
        };
        let progress = self
            .backend
            .build(opts, body_stream(req.into_body()))
            .await?;
        Ok(json_lines(progress.map(Ok)))
    }

    async fn image_create(
        &self,
        q: &Query,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        let b = &self.backend;
        if let Some(src) = q.get("fromSrc") {
            let opts = ImportOptions {
                from_src: src.to_string(),
                repo: q.get("repo").unwrap_or("").into(),
                tag: q.get("tag").unwrap_or("").into(),
                message: q.get("message").unwrap_or("").into(),
                changes: q.all("changes").map(String::from).collect(),
                platform: q.get("platform").unwrap_or("").into(),
            };
            let progress = b.image_import(body_stream(req.into_body()), opts).await?;
            return Ok(json_lines(progress.map(Ok)));
        }
        match q.get("fromImage") {
            Some(img) if !img.is_empty() => {
                let opts = PullOptions {
                    from_image: img.to_string(),
                    tag: q.get("tag").unwrap_or("").into(),
                    platform: q.get("platform").unwrap_or("").into(),
                    auth: registry_auth(req.headers()),
                };
                let progress = b.image_pull(opts).await?;
                Ok(json_lines(progress.map(Ok)))
            }
            _ => Err(ApiError::bad_parameter(
                "neither fromImage nor fromSrc given: add fromImage=<ref> to pull or fromSrc=- to import",
            )),
        }
    }
}

// ------------------------------------------------------------------ transport

/// Binds a unix socket at `path` with mode 0660 and owner root:root (when run
/// as root), removing a stale socket first. A non-socket file there is an error.
pub fn bind_unix(path: impl AsRef<Path>) -> Result<UnixListener, ServeError> {
    let path = path.as_ref();
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|source| ServeError::RemoveStale {
                path: path.into(),
                source,
            })?
        }
        Ok(_) => return Err(ServeError::NotASocket { path: path.into() }),
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(|source| ServeError::BindUnix {
        path: path.into(),
        source,
    })?;
    let perm = |source| ServeError::Permissions {
        path: path.into(),
        source,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(perm)?;
    let euid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .ok();
    if euid == Some(0) {
        std::os::unix::fs::chown(path, Some(0), Some(0)).map_err(perm)?;
    }
    Ok(listener)
}

/// Serves connections of a bound unix listener until the future is dropped.
pub async fn serve_unix_listener(
    listener: UnixListener,
    backend: Arc<dyn Backend>,
) -> Result<(), ServeError> {
    let server = Server::new(backend);
    loop {
        let (stream, _) = listener.accept().await.map_err(ServeError::Accept)?;
        tokio::spawn(server.clone().serve_unix_connection(stream));
    }
}

/// Binds `path` ([`bind_unix`]) and serves the Engine API on it.
pub async fn serve_unix(
    path: impl AsRef<Path>,
    backend: Arc<dyn Backend>,
) -> Result<(), ServeError> {
    let listener = bind_unix(path)?;
    serve_unix_listener(listener, backend).await
}

/// Checks `auth` and binds `addr` (e.g. `127.0.0.1:2375`).
pub async fn bind_tcp(addr: &str, auth: &TcpAuth) -> Result<TcpListener, ServeError> {
    auth.check()?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::BindTcp {
            addr: addr.into(),
            source,
        })
}

/// Serves a bound TCP listener with `auth`: TLS handshakes first when it is
/// TLS, then every request carries the bearer token when one is set.
pub async fn serve_tcp_listener(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    auth: TcpAuth,
) -> Result<(), ServeError> {
    auth.check()?;
    let server = match auth.token() {
        Some(t) => Server::with_token(backend, t),
        None => Server::new(backend),
    };
    let acceptor = match auth {
        TcpAuth::Tls { acceptor, .. } => Some(acceptor),
        TcpAuth::Token(_) => None,
    };
    loop {
        let (stream, peer) = listener.accept().await.map_err(ServeError::Accept)?;
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        match &acceptor {
            None => {
                tokio::spawn(server.serve_connection(stream));
            }
            Some(acc) => {
                // The handshake runs in the connection's task, so a slow or
                // silent client does not hold up the accept loop.
                let handshake = acc.accept(stream);
                tokio::spawn(async move {
                    match handshake.await {
                        Ok(tls) => server.serve_connection(tls).await,
                        Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    }
                });
            }
        }
    }
}

/// Binds `addr` and serves the Engine API on it with `auth`.
pub async fn serve_tcp(
    addr: &str,
    backend: Arc<dyn Backend>,
    auth: TcpAuth,
) -> Result<(), ServeError> {
    let listener = bind_tcp(addr, &auth).await?;
    serve_tcp_listener(listener, backend, auth).await
}

fn bearer_ok(headers: &HeaderMap, token: &[u8]) -> bool {
    let Some(v) = headers.get(hyper::header::AUTHORIZATION) else {
        return false;
    };
    let v = v.as_bytes();
    let Some(given) = v.strip_prefix(b"Bearer ") else {
        return false;
    };
    constant_time_eq(given, token)
}

/// Compares without an early exit, so the time taken does not reveal how many
/// leading bytes matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

// ------------------------------------------------------------------ hijack

fn upgrade_requested(h: &HeaderMap) -> bool {
    let conn = h
        .get(hyper::header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    conn.split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        && h.contains_key(hyper::header::UPGRADE)
}

/// The options of an attach (plain or WebSocket) from its query.
fn attach_options(q: &Query) -> Result<AttachOptions, ApiError> {
    let opts = AttachOptions {
        stream: q.bool("stream"),
        logs: q.bool("logs"),
        stdin: q.bool("stdin"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        detach_keys: q.get("detachKeys").map(String::from),
    };
    if !opts.stream && !opts.logs {
        return Err(ApiError::bad_parameter(
            "Bad parameters: you must choose at least one of stream or logs",
        ));
    }
    if let Some(keys) = &opts.detach_keys {
        parse_detach_keys(keys)?;
    }
    Ok(opts)
}

/// Answers an attach/exec start: `101 UPGRADED` and a raw duplex when the
/// client asked to upgrade, else `200` with the output as the body (no stdin).
fn hijack(
    session: AttachSession,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    peer: Option<UnixPeer>,
    minor: u32,
) -> Response<Body> {
    let ctype = stream_content_type(session.tty, minor);
    match on_upgrade {
        Some(on_upgrade) => {
            let span = tracing::Span::current();
            tokio::spawn(
                async move {
                    match on_upgrade.await {
                        Ok(up) => {
                            head_read(peer).await;
                            let (rd, wr) = tokio::io::split(TokioIo::new(up));
                            duplex(rd, wr, session).await;
                        }
                        Err(e) => tracing::warn!(error = %e, "connection upgrade failed"),
                    }
                }
                .instrument(span),
            );
            upgraded(ctype)
        }
        None => {
            let tty = session.tty;
            drop(session.stdin);
            let body = session.output.map(move |r| match r {
                Ok(c) => Ok(frame(tty, &c)),
                Err(e) => Err(io::Error::other(e.message)),
            });
            stream_response(StatusCode::OK, ctype, body)
        }
    }
}

/// The unix socket a request came on (a request extension).
#[derive(Clone, Copy, Debug)]
struct UnixPeer(RawFd);

/// How long a hijacked stream waits for its client to read the `101` head.
const HEAD_READ_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Waits until the client has read the `101` head, so that no output
/// travels in the same read as the head: docker-py parses the head through
/// a buffered reader, then reads the raw socket, and loses whatever the
/// buffer took beyond the head (an attach with `stream=false` of an exited
/// container's logs lost all of it). On a unix socket the kernel says how
/// much the peer has not read; past [`HEAD_READ_WAIT`] (a client that does
/// not read until it writes) the output goes anyway. Over TCP there is no
/// such measure; the stream starts at once.
async fn head_read(peer: Option<UnixPeer>) {
    let Some(UnixPeer(fd)) = peer else {
        return;
    };
    let until = Instant::now() + HEAD_READ_WAIT;
    while crate::sys::unread_by_peer(fd).is_some_and(|n| n > 0) && Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// The `101` answer to an attach or exec start that asked to upgrade.
fn upgraded(ctype: &'static str) -> Response<Body> {
    let mut r = Response::new(empty_body());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    h.insert(hyper::header::UPGRADE, HeaderValue::from_static("tcp"));
    r
}

/// Relays a hijacked connection: client bytes to stdin (shut down on the
/// client's half-close), output to the client in frames (raw with a TTY).
/// Ends when the output ends or, without stdin, when the client goes away.
async fn duplex<R, W>(mut rd: R, mut wr: W, session: AttachSession)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let AttachSession {
        tty,
        stdin,
        mut output,
        detach_keys,
    } = session;
    let mut buf = vec![0u8; 32 * 1024];
    let mut stdin_task = None;
    let mut watch = None;
    let detached = Arc::new(tokio::sync::Notify::new());
    match stdin {
        Some(mut w) => {
            // Checked by the routes; a bad value here falls back to the default.
            let keys = parse_detach_keys(detach_keys.as_deref().unwrap_or(""))
                .unwrap_or_else(|_| DEFAULT_DETACH_KEYS.to_vec());
            let detached = detached.clone();
            stdin_task = Some(tokio::spawn(async move {
                let mut escape = EscapeMatcher::new(keys);
                let mut out = Vec::new();
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            out.clear();
                            let detach = escape.feed(&buf[..n], &mut out);
                            if !out.is_empty()
                                && (w.write_all(&out).await.is_err() || w.flush().await.is_err())
                            {
                                break;
                            }
                            if detach {
                                // As dockerd: the client leaves; the process
                                // keeps running.
                                tracing::debug!("client detached with its detach keys");
                                detached.notify_one();
                                return;
                            }
                        }
                    }
                }
                let _ = w.shutdown().await;
                tracing::debug!("client closed stdin");
            }))
        }
        None => {
            // Nothing to forward. The CLI half-closes even without stdin, so
            // end of input is not the end of the session; a read error is.
            watch = Some(tokio::spawn(async move {
                loop {
                    match rd.read(&mut buf).await {
                        Err(_) => break,
                        Ok(0) => futures::future::pending::<()>().await,
                        Ok(_) => {}
                    }
                }
            }))
        }
    }
    loop {
        let next = match watch.as_mut() {
            Some(w) => tokio::select! {
                n = output.next() => n,
                _ = w => { tracing::debug!("client went away"); break }
            },
            None => tokio::select! {
                n = output.next() => n,
                _ = detached.notified() => break,
            },
        };
        match next {
            Some(Ok(chunk)) => {
                if wr.write_all(&frame(tty, &chunk)).await.is_err() || wr.flush().await.is_err() {
                    break;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e.message, "output stream failed");
                break;
            }
            None => break,
        }
    }
    let _ = wr.shutdown().await;
    if let Some(t) = stdin_task {
        t.abort();
    }
    if let Some(w) = watch {
        w.abort();
    }
}

/// Docker's default detach keys: ctrl-p, ctrl-q.
const DEFAULT_DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// Parses Docker's detach key syntax: comma-separated keys, each a single
/// character or `ctrl-X` (X one of `a`-`z`, `@`, `[`, `\`, `]`, `^`, `_`).
/// Empty: the default `ctrl-p,ctrl-q`.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, ApiError> {
    if s.is_empty() {
        return Ok(DEFAULT_DETACH_KEYS.to_vec());
    }
    let bad = |k: &str| {
        ApiError::bad_parameter(format!(
            "invalid detach key {k:?} in {s:?}: use comma-separated keys such as ctrl-p,ctrl-q (a single character or ctrl-<a-z, @, [, \\, ], ^, _>)"
        ))
    };
    s.split(',')
        .map(|k| {
            let lower = k.to_ascii_lowercase();
            match lower.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => match c.as_bytes()[0] {
                    b @ b'a'..=b'z' => Ok(b - b'a' + 1),
                    b @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_') => Ok(b - b'@'),
                    _ => Err(bad(k)),
                },
                Some(_) => Err(bad(k)),
                None if k.len() == 1 => Ok(k.as_bytes()[0]),
                None => Err(bad(k)),
            }
        })
        .collect()
}

/// Finds the detach key sequence in a client's stdin, holding back bytes
/// that may begin it (they are passed on when the sequence breaks off).
struct EscapeMatcher {
    keys: Vec<u8>,
    held: usize,
}

impl EscapeMatcher {
    fn new(keys: Vec<u8>) -> Self {
        EscapeMatcher { keys, held: 0 }
    }

    /// Appends to `out` what goes on to the process; true when the whole
    /// sequence was typed (what follows it in `input` is dropped).
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    self.held = 0;
                    return true;
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.held]);
            self.held = 0;
            if b == self.keys[0] {
                self.held = 1;
                if self.keys.len() == 1 {
                    self.held = 0;
                    return true;
                }
            } else {
                out.push(b);
            }
        }
        false
    }
}

/// One chunk as sent to the client: raw with a TTY, else with the 8-byte
/// header `[stream, 0, 0, 0, len (u32 big endian)]`.
pub fn frame(tty: bool, chunk: &OutputChunk) -> Bytes {
    if tty {
        return chunk.data.clone();
    }
    let mut out = BytesMut::with_capacity(chunk.data.len() + 8);
    for part in chunk.data.chunks(u32::MAX as usize) {
        out.put_u8(chunk.kind as u8);
        out.put_slice(&[0, 0, 0]);
        out.put_u32(part.len() as u32);
        out.put_slice(part);
    }
    out.freeze()
}

fn stream_content_type(tty: bool, minor: u32) -> &'static str {
    if !tty && minor >= 42 {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}

// ------------------------------------------------------------------ requests

/// Splits `/v1.44/containers/json` into (44, `/containers/json`); an
/// unversioned path gets the advertised version.
fn split_version(path: &str) -> Result<(u32, &str), ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((DEFAULT_MINOR, path));
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Some((major, minor)) = ver.split_once('.') else {
        return Ok((DEFAULT_MINOR, path));
    };
    let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
        return Ok((DEFAULT_MINOR, path));
    };
    if major != 1 || minor < MIN_MINOR {
        return Err(ApiError::bad_parameter(format!(
            "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    if minor > MAX_MINOR {
        return Err(ApiError::bad_parameter(format!(
            "client version {ver} is too new. Maximum supported API version is 1.{MAX_MINOR}"
        )));
    }
    Ok((minor, tail))
}

/// Docker's rule for boolean query values.
fn bool_value(s: &str) -> bool {
    !matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "no" | "false" | "none"
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parsed query string (`+` is a space, as in Go's url.ParseQuery).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(s: &str) -> Query {
        Query(
            s.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (
                        percent_decode(&k.replace('+', " ")),
                        percent_decode(&v.replace('+', " ")),
                    )
                })
                .collect(),
        )
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    fn all<'a>(&'a self, k: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    fn bool(&self, k: &str) -> bool {
        self.get(k).is_some_and(bool_value)
    }
    fn required(&self, k: &str) -> Result<&str, ApiError> {
        match self.get(k) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::bad_parameter(format!(
                "missing {k} in the query: add {k}=<value>"
            ))),
        }
    }
    fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_parameter(format!("invalid {k} {v:?}: expected an integer"))
            }),
        }
    }
    /// Unix seconds, possibly with a fraction (`1700000000.000000001`).
    fn time(&self, k: &str) -> Result<Option<f64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<f64>().map(Some).map_err(|_| {
                ApiError::bad_parameter(format!(
                    "invalid {k} {v:?}: expected unix seconds like 1700000000.5"
                ))
            }),
        }
    }
    fn filters(&self) -> Result<Filters, ApiError> {
        Filters::parse(self.get("filters").unwrap_or(""))
    }
    fn size(&self) -> Result<(u16, u16), ApiError> {
        let dim = |k: &str| -> Result<u16, ApiError> {
            let v = self.get(k).unwrap_or("");
            v.parse::<u16>().map_err(|_| {
                ApiError::bad_parameter(format!(
                    "invalid {k} {v:?}: expected a terminal size from 0 to 65535"
                ))
            })
        };
        Ok((dim("h")?, dim("w")?))
    }
    fn stop_options(&self) -> Result<StopOptions, ApiError> {
        Ok(StopOptions {
            signal: self
                .get("signal")
                .filter(|s| !s.is_empty())
                .map(String::from),
            timeout: self.int("t")?,
        })
    }
}

fn validate_name(name: &str) -> Result<String, ApiError> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let b = n.as_bytes();
    let ok = b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !ok {
        return Err(ApiError::bad_parameter(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(n.to_string())
}

/// `X-Registry-Auth`: base64url JSON of an [`AuthConfig`]; unreadable is ignored.
fn registry_auth(h: &HeaderMap) -> Option<AuthConfig> {
    let v = h.get("X-Registry-Auth")?.to_str().ok()?.trim();
    if v.is_empty() {
        return None;
    }
    let engines = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
    ];
    let raw = engines.iter().find_map(|e| e.decode(v).ok())?;
    serde_json::from_slice(&raw).ok()
}

async fn read_json<T: DeserializeOwned + Default>(
    body: Incoming,
    required: bool,
) -> Result<T, ApiError> {
    let bytes = match Limited::new(body, MAX_JSON_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.is::<http_body_util::LengthLimitError>() {
                return Err(ApiError::new(
                    crate::ErrorKind::PayloadTooLarge,
                    format!(
                        "request body too large: JSON bodies are limited to {MAX_JSON_BODY} bytes; send a smaller body"
                    ),
                ));
            }
            return Err(ApiError::bad_parameter(format!(
                "cannot read the request body: {e}"
            )));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if required {
            return Err(ApiError::bad_parameter(
                "empty request body: send a JSON object",
            ));
        }
        return Ok(T::default());
    }
    parse_json_body(&bytes)
}

/// Decodes a JSON request body as dockerd does: a `null` member is the same
/// as an absent one (Go leaves the field at its zero value), so clients that
/// send every field, docker-py among them (`"Interval": null`), are accepted.
fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bad = |e: serde_json::Error| {
        ApiError::bad_parameter(format!("invalid JSON in the request body: {e}"))
    };
    let mut v: serde_json::Value = serde_json::from_slice(bytes).map_err(bad)?;
    drop_null_members(&mut v);
    serde_json::from_value(v).map_err(bad)
}

fn drop_null_members(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_null_members);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(drop_null_members),
        _ => {}
    }
}

fn body_stream(body: Incoming) -> ByteStream {
    BodyDataStream::new(body).map_err(io::Error::other).boxed()
}

fn path_stat_header(stat: &PathStat) -> Result<HeaderValue, ApiError> {
    let raw = serde_json::to_vec(stat).map_err(|e| ApiError::internal(e.to_string()))?;
    let enc = base64::engine::general_purpose::STANDARD.encode(raw);
    HeaderValue::from_str(&enc).map_err(|e| ApiError::internal(e.to_string()))
}

// ------------------------------------------------------------------ responses

fn empty_body() -> Body {
    Empty::new()
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn full_body(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(empty_body());
    *r.status_mut() = status;
    r
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    match serde_json::to_vec(v) {
        Ok(mut b) => {
            b.push(b'\n');
            let mut r = Response::new(full_body(b));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => error_response(&ApiError::internal(format!(
            "cannot encode the response: {e}"
        ))),
    }
}

fn json_line<T: Serialize>(v: &T) -> Bytes {
    let mut b = serde_json::to_vec(v)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot encode: {e}\"}}").into_bytes());
    b.push(b'\n');
    Bytes::from(b)
}

fn json_lines<T, S>(items: S) -> Response<Body>
where
    T: Serialize,
    S: Stream<Item = Result<T, io::Error>> + Send + 'static,
{
    stream_response(
        StatusCode::OK,
        "application/json",
        items.map_ok(|v| json_line(&v)),
    )
}

fn stream_response<S>(status: StatusCode, ctype: &'static str, s: S) -> Response<Body>
where
    S: Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
{
    let body = StreamBody::new(s.map_ok(Frame::data)).boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn tar(s: ByteStream) -> Response<Body> {
    stream_response(StatusCode::OK, "application/x-tar", s)
}

fn error_response(e: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::NOT_MODIFIED {
        return empty(status);
    }
    #[derive(Serialize)]
    struct Msg<'a> {
        message: &'a str,
    }
    let mut r = json(
        status,
        &Msg {
            message: &e.message,
        },
    );
    *r.status_mut() = status;
    r
}

fn page_not_found() -> ApiError {
    ApiError::not_found("page not found")
}

/// A build `platform` must be this host's (`linux`, `linux/ARCH[/VARIANT]`).
fn check_build_platform(p: &str) -> Result<(), ApiError> {
    if p.is_empty() {
        return Ok(());
    }
    let parts: Vec<&str> = p.split('/').collect();
    let known_os = ["linux", "windows", "darwin", "freebsd"];
    if !known_os.contains(&parts[0]) || parts.len() > 3 {
        return Err(ApiError::bad_parameter(format!(
            "\"{p}\": unknown operating system or architecture: invalid argument"
        )));
    }
    let arch_ok = parts.get(1).is_none_or(|a| *a == go_arch());
    if parts[0] != "linux" || !arch_ok {
        return Err(ApiError::bad_parameter(format!(
            "invalid platform {p:?}: this engine builds for linux/{} only",
            go_arch()
        )));
    }
    Ok(())
}

fn ping(head: bool) -> Response<Body> {
    let mut r = if head {
        empty(StatusCode::OK)
    } else {
        Response::new(full_body("OK"))
    };
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(hyper::header::PRAGMA, HeaderValue::from_static("no-cache"));
    // The classic builder only: the docker CLI then builds without BuildKit.
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    r
}

fn add_common_headers(h: &mut HeaderMap) {
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert(
        hyper::header::SERVER,
        HeaderValue::from_static(concat!("strato/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
}

/// Go's name for this architecture, as Docker reports it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod detach_tests {
    use super::*;

    #[test]
    fn null_members_are_absent_members() {
        let c: ContainerCreateConfig = parse_json_body(
            br#"{"Image":"busybox","MacAddress":null,"Healthcheck":{"Test":["CMD","true"],"Interval":null,"Retries":null},"HostConfig":{"NetworkMode":null}}"#,
        )
        .unwrap();
        let h = c.config.healthcheck.expect("healthcheck");
        assert_eq!(h.interval, 0);
        assert_eq!(h.test.unwrap(), ["CMD", "true"]);
        let e = parse_json_body::<ContainerCreateConfig>(br#"{"Image":3}"#).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message.contains("invalid JSON"), "{}", e.message);
    }

    #[test]
    fn detach_keys_parse_docker_syntax() {
        assert_eq!(parse_detach_keys("").unwrap(), vec![0x10, 0x11]);
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            vec![0x10, 0x11]
        );
        assert_eq!(
            parse_detach_keys("ctrl-@,a,ctrl-_").unwrap(),
            vec![0, b'a', 0x1f]
        );
        for bad in ["ctrl-", "ctrl-1", "ab", "ctrl-p,", "ctrl-pq"] {
            let e = parse_detach_keys(bad).unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
            assert!(e.message.contains("detach key"), "{}", e.message);
        }
    }

    #[test]
    fn escape_matcher_passes_broken_prefixes_and_stops_at_the_sequence() {
        let mut m = EscapeMatcher::new(vec![0x10, 0x11]);
        let mut out = Vec::new();
        assert!(!m.feed(b"ab\x10c", &mut out));
        assert_eq!(out, b"ab\x10c");
        out.clear();
        // The sequence split across reads, with bytes before it.
        assert!(!m.feed(b"x\x10", &mut out));
        assert_eq!(out, b"x");
        out.clear();
        assert!(m.feed(b"\x11tail", &mut out));
        assert!(out.is_empty());
        // A repeated first key keeps one held.
        let mut m = EscapeMatcher::new(vec![0x10, 0x11]);
        let mut out = Vec::new();
        assert!(m.feed(b"\x10\x10\x11", &mut out));
        assert_eq!(out, b"\x10");
        // A single key.
        let mut m = EscapeMatcher::new(vec![0x10]);
        let mut out = Vec::new();
        assert!(m.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_platforms_are_this_hosts() {
        assert!(check_build_platform("").is_ok());
        assert!(check_build_platform("linux").is_ok());
        assert!(check_build_platform(&format!("linux/{}", go_arch())).is_ok());
        let e = check_build_platform("foobar").unwrap_err();
        assert!(
            e.message.contains("unknown operating system"),
            "{}",
            e.message
        );
        let e = check_build_platform("linux/s390x").unwrap_err();
        assert!(e.message.contains("invalid platform"), "{}", e.message);
        assert!(check_build_platform("windows/amd64").is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(split_version("/v1.44/info").unwrap(), (44, "/info"));
        assert_eq!(split_version("/v1.24/_ping").unwrap(), (24, "/_ping"));
        assert_eq!(split_version("/info").unwrap(), (44, "/info"));
        assert_eq!(split_version("/volumes").unwrap(), (44, "/volumes"));
        assert!(split_version("/v1.12/info")
            .unwrap_err()
            .message
            .contains("too old"));
        assert!(split_version("/v1.99/info")
            .unwrap_err()
            .message
            .contains("too new"));
    }

    #[test]
    fn query_and_decoding() {
        let q = Query::parse("a=1&b=x%2Fy&c=a+b&filters=%7B%22x%22%3A%5B%22y%22%5D%7D&d");
        assert!(q.bool("a"));
        assert!(!q.bool("d"));
        assert_eq!(q.get("b"), Some("x/y"));
        assert_eq!(q.get("c"), Some("a b"));
        assert_eq!(q.filters().unwrap().get("x"), ["y"]);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41%42"), "AB");
    }

    #[test]
    fn names() {
        assert_eq!(validate_name("/web-1").unwrap(), "web-1");
        assert!(validate_name("a").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a/b").is_err());
    }

    #[test]
    fn frames() {
        let f = frame(false, &OutputChunk::stderr("hi"));
        assert_eq!(&f[..], &[2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
        assert_eq!(&frame(true, &OutputChunk::stdout("hi"))[..], b"hi");
    }

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
