//! [`Client`]: one method per Engine API endpoint, typed on strato-api's
//! request and response types.
//!
//! Every call opens its own connection (a unix socket connect is cheap and a
//! CLI makes few calls); hijacked attach/exec sessions keep theirs.

use std::io;
use std::pin::Pin;

use base64::Engine as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use strato_api::types::*;
use strato_api::ByteStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::error::{Error, Result};
use crate::host::Host;
use crate::query::{encode, Query};
use crate::stream::{self, BodyStream, Output};

/// The API version this client speaks (every path is prefixed with it).
pub const CLIENT_API_VERSION: &str = "1.44";

type ReqBody = UnsyncBoxBody<Bytes, io::Error>;

/// A progress stream (load, import, pull, push): one message per line as the
/// daemon sent it. A failure in the middle is a message with `error` set;
/// [`check_progress`] turns it into an [`Error`].
pub type Progress = BoxStream<'static, Result<JsonMessage>>;

/// The writing half of a hijacked connection: the container's (or exec's)
/// stdin. `shutdown()` half-closes it, which the daemon passes on as end of file.
pub type Stdin = Pin<Box<dyn AsyncWrite + Send>>;

/// An attached session (container attach, exec start).
pub struct Session {
    /// The process has a TTY: output is raw stdout, not framed.
    pub tty: bool,
    /// Present when the connection was upgraded (the daemon then reads stdin from it).
    pub stdin: Option<Stdin>,
    /// The process's output until it ends.
    pub output: Output,
}

/// An Engine API client for one daemon.
#[derive(Clone)]
pub struct Client {
    host: Host,
    token: Option<String>,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Client {
    /// A client of the daemon at `host`. `token` is sent as `Authorization:
    /// Bearer` on TCP connections (the daemon requires it there).
    pub fn new(host: Host, token: Option<String>) -> Client {
        Client {
            host,
            token: token.filter(|t| !t.is_empty()),
            tls: None,
        }
    }

    /// Speaks TLS to a TCP daemon through `connector` (see [`crate::tls`]).
    pub fn with_tls(mut self, connector: tokio_rustls::TlsConnector) -> Client {
        self.tls = Some(connector);
        self
    }

    /// A client of the daemon named by `STRATO_HOST` (default
    /// [`DEFAULT_HOST`](crate::DEFAULT_HOST)) with the token in `STRATO_TOKEN`,
    /// as the strato CLI chooses it.
    pub fn from_env() -> Result<Client> {
        let host = std::env::var("STRATO_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| crate::DEFAULT_HOST.to_string());
        Ok(Client::new(
            Host::parse(&host)?,
            std::env::var("STRATO_TOKEN").ok(),
        ))
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    // ------------------------------------------------------------ transport

    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<ReqBody>> {
        let connect_err = |source| Error::Connect {
            host: self.host.to_string(),
            source,
        };
        match &self.host {
            Host::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(connect_err)?;
                self.handshake(s).await
            }
            Host::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a.as_str())
                    .await
                    .map_err(connect_err)?;
                let _ = s.set_nodelay(true);
                match &self.tls {
                    None => self.handshake(s).await,
                    Some(c) => {
                        let host = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h);
                        let host = host.trim_start_matches('[').trim_end_matches(']');
                        let name =
                            tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
                                .map_err(|e| Error::Tls(format!("server name {host:?}: {e}")))?;
                        let tls = c.connect(name, s).await.map_err(|e| {
                            Error::Tls(format!("handshake with {}: {e}", self.host))
                        })?;
                        self.handshake(tls).await
                    }
                }
            }
        }
    }

    async fn handshake<S>(&self, s: S) -> Result<hyper::client::conn::http1::SendRequest<ReqBody>>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .map_err(|source| self.http_err(source))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "connection to the daemon ended");
            }
        });
        Ok(sender)
    }

    fn http_err(&self, source: hyper::Error) -> Error {
        Error::Http {
            host: self.host.to_string(),
            source,
        }
    }

    fn request(&self, method: Method, path: &str, body: ReqBody) -> Result<Request<ReqBody>> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("/v{CLIENT_API_VERSION}{path}"))
            .header(
                HOST,
                match &self.host {
                    Host::Unix(_) => "strato",
                    Host::Tcp(a) => a.as_str(),
                },
            )
            .header(
                "User-Agent",
                concat!("strato-client/", env!("CARGO_PKG_VERSION")),
            );
        if let (Host::Tcp(_), Some(t)) = (&self.host, &self.token) {
            let v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                Error::Request("the token has characters not allowed in a header".into())
            })?;
            b = b.header(AUTHORIZATION, v);
        }
        b.body(body).map_err(|e| Error::Request(e.to_string()))
    }

    /// Sends `req`; an error status becomes [`Error::Daemon`] with the daemon's message.
    async fn send(&self, req: Request<ReqBody>) -> Result<Response<Incoming>> {
        let what = format!("{} {}", req.method(), req.uri());
        let mut sender = self.connect().await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|source| self.http_err(source))?;
        tracing::debug!(request = %what, status = resp.status().as_u16(), "daemon answered");
        if resp.status().is_client_error() || resp.status().is_server_error() {
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            #[derive(serde::Deserialize)]
            struct Msg {
                message: String,
            }
            let message = match serde_json::from_slice::<Msg>(&body) {
                Ok(m) => m.message,
                Err(_) if body.is_empty() => format!("{what}: status {status}"),
                Err(_) => String::from_utf8_lossy(&body).trim().to_string(),
            };
            return Err(Error::Daemon { status, message });
        }
        Ok(resp)
    }

    async fn call(&self, method: Method, path: &str, body: ReqBody) -> Result<Response<Incoming>> {
        let req = self.request(method, path, body)?;
        self.send(req).await
    }

    async fn read_json<T: DeserializeOwned>(
        &self,
        what: &str,
        resp: Response<Incoming>,
    ) -> Result<T> {
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|source| self.http_err(source))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|source| Error::Json {
            what: what.to_string(),
            source,
        })
    }

    /// `GET path` answered with JSON. Public so that callers can read shapes
    /// the typed methods do not cover (e.g. inspect output as sent).
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.call(Method::GET, path, empty()).await?;
        self.read_json(path, resp).await
    }

    async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let resp = self.call(Method::POST, path, json_body(body)?).await?;
        self.read_json(path, resp).await
    }

    /// POST without a meaningful answer (204, or 304 for "nothing to do").
    async fn post_empty(&self, path: &str) -> Result<()> {
        let resp = self.call(Method::POST, path, empty()).await?;
        drain(resp).await;
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<Response<Incoming>> {
        self.call(Method::DELETE, path, empty()).await
    }

    /// Sends `req` asking for a connection upgrade; answers the session over
    /// the hijacked connection (101), or over the body when the daemon does
    /// not upgrade (200: output only).
    async fn hijack(&self, path: &str, body: ReqBody, content_type: bool) -> Result<Session> {
        let mut req = self.request(Method::POST, path, body)?;
        let h = req.headers_mut();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("tcp"));
        if content_type {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let resp = self.send(req).await?;
        let tty = !is_multiplexed(&resp);
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Session {
                tty,
                stdin: None,
                output: stream::output(body_stream(resp), tty),
            });
        }
        let up = hyper::upgrade::on(resp)
            .await
            .map_err(|source| self.http_err(source))?;
        let (rd, wr) = tokio::io::split(TokioIo::new(up));
        let raw = reader_stream(rd).map_err(Error::Io).boxed();
        Ok(Session {
            tty,
            stdin: Some(Box::pin(wr)),
            output: stream::output(raw, tty),
        })
    }

    // ------------------------------------------------------------ system

    /// `GET /_ping`: whether the daemon answers.
    pub async fn ping(&self) -> Result<()> {
        let resp = self.call(Method::GET, "/_ping", empty()).await?;
        drain(resp).await;
        Ok(())
    }

    pub async fn version(&self) -> Result<SystemVersion> {
        self.get_json("/version").await
    }

    pub async fn info(&self) -> Result<SystemInfo> {
        self.get_json("/info").await
    }

    /// `GET /events`: stored events from `since`, then live ones; the stream
    /// ends at `until` (never without it).
    pub async fn events(
        &self,
        opts: &EventsOptions,
    ) -> Result<BoxStream<'static, Result<EventMessage>>> {
        let q = Query::new()
            .opt("since", opts.since.map(secs))
            .opt("until", opts.until.map(secs))
            .filters(&opts.filters);
        let resp = self
            .call(Method::GET, &format!("/events{}", q.as_str()), empty())
            .await?;
        Ok(stream::json_values(body_stream(resp)))
    }

    // ------------------------------------------------------------ containers

    /// `POST /containers/create`.
    pub async fn container_create(
        &self,
        name: Option<&str>,
        config: &ContainerCreateConfig,
    ) -> Result<CreateResponse> {
        let q = Query::new().opt("name", name);
        self.post_json(&format!("/containers/create{}", q.as_str()), config)
            .await
    }

    /// `POST /containers/{id}/start` (already running is not an error).
    pub async fn container_start(&self, id: &str) -> Result<()> {
        self.post_empty(&format!("/containers/{}/start", encode(id)))
            .await
    }

    /// `POST /containers/{id}/stop` (already stopped is not an error).
    pub async fn container_stop(&self, id: &str, opts: &StopOptions) -> Result<()> {
        let q = stop_query(opts);
        self.post_empty(&format!("/containers/{}/stop{}", encode(id), q.as_str()))
            .await
    }

    pub async fn container_restart(&self, id: &str, opts: &StopOptions) -> Result<()> {
        let q = stop_query(opts);
        self.post_empty(&format!("/containers/{}/restart{}", encode(id), q.as_str()))
            .await
    }

    /// `POST /containers/{id}/update`: new resource limits, applied to a
    /// running container at once.
    pub async fn container_update(
        &self,
        id: &str,
        update: &ContainerUpdate,
    ) -> Result<ContainerUpdateResponse> {
        self.post_json(&format!("/containers/{}/update", encode(id)), update)
            .await
    }

    /// `POST /containers/{id}/kill` with `signal` (default SIGKILL).
    pub async fn container_kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let q = Query::new().opt("signal", signal);
        self.post_empty(&format!("/containers/{}/kill{}", encode(id), q.as_str()))
            .await
    }

    pub async fn container_remove(&self, id: &str, opts: RemoveOptions) -> Result<()> {
        let q = Query::new()
            .flag("force", opts.force)
            .flag("v", opts.volumes)
            .flag("link", opts.link);
        let resp = self
            .delete(&format!("/containers/{}{}", encode(id), q.as_str()))
            .await?;
        drain(resp).await;
        Ok(())
    }

    pub async fn container_rename(&self, id: &str, new_name: &str) -> Result<()> {
        let q = Query::new().add("name", new_name);
        self.post_empty(&format!("/containers/{}/rename{}", encode(id), q.as_str()))
            .await
    }

    /// `GET /containers/json`.
    pub async fn container_list(
        &self,
        opts: &ContainerListOptions,
    ) -> Result<Vec<ContainerSummary>> {
        let q = Query::new()
            .flag("all", opts.all)
            .opt("limit", opts.limit.map(|n| n.to_string()))
            .flag("size", opts.size)
            .filters(&opts.filters);
        self.get_json(&format!("/containers/json{}", q.as_str()))
            .await
    }

    pub async fn container_inspect(&self, id: &str) -> Result<ContainerInspect> {
        self.get_json(&format!("/containers/{}/json", encode(id)))
            .await
    }

    /// `POST /containers/{id}/wait`. Returns once the daemon accepted the wait
    /// (so it can be sent before `start`, as `run` does); the future resolves
    /// when the condition holds.
    pub async fn container_wait(
        &self,
        id: &str,
        condition: WaitCondition,
    ) -> Result<BoxFuture<'static, Result<WaitResponse>>> {
        let c = match condition {
            WaitCondition::NotRunning => "not-running",
            WaitCondition::NextExit => "next-exit",
            WaitCondition::Removed => "removed",
        };
        let path = format!("/containers/{}/wait?condition={c}", encode(id));
        let resp = self.call(Method::POST, &path, empty()).await?;
        let this = self.clone();
        Ok(Box::pin(async move {
            let w: WaitResponse = this.read_json(&path, resp).await?;
            match &w.error {
                Some(e) if !e.message.is_empty() && w.status_code < 0 => Err(Error::Stream(
                    format!("waiting for the container: {}", e.message),
                )),
                _ => Ok(w),
            }
        }))
    }

    /// `GET /containers/{id}/logs`: demultiplexed output (raw with a TTY).
    pub async fn container_logs(&self, id: &str, opts: &LogsOptions) -> Result<Output> {
        let q = Query::new()
            .flag("follow", opts.follow)
            .flag("stdout", opts.stdout)
            .flag("stderr", opts.stderr)
            .opt("since", opts.since.map(secs))
            .opt("until", opts.until.map(secs))
            .flag("timestamps", opts.timestamps)
            .opt("tail", opts.tail.map(|n| n.to_string()));
        let resp = self
            .call(
                Method::GET,
                &format!("/containers/{}/logs{}", encode(id), q.as_str()),
                empty(),
            )
            .await?;
        let tty = !is_multiplexed(&resp);
        Ok(stream::output(body_stream(resp), tty))
    }

    /// `POST /containers/{id}/attach`, hijacked.
    pub async fn container_attach(&self, id: &str, opts: &AttachOptions) -> Result<Session> {
        let q = Query::new()
            .flag("stream", opts.stream)
            .flag("logs", opts.logs)
            .flag("stdin", opts.stdin)
            .flag("stdout", opts.stdout)
            .flag("stderr", opts.stderr)
            .opt("detachKeys", opts.detach_keys.as_deref());
        self.hijack(
            &format!("/containers/{}/attach{}", encode(id), q.as_str()),
            empty(),
            false,
        )
        .await
    }

    /// `POST /containers/{id}/resize`: the TTY's size.
    pub async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        self.post_empty(&format!(
            "/containers/{}/resize?h={height}&w={width}",
            encode(id)
        ))
        .await
    }

    pub async fn container_top(&self, id: &str, ps_args: Option<&str>) -> Result<TopResponse> {
        let q = Query::new().opt("ps_args", ps_args);
        self.get_json(&format!("/containers/{}/top{}", encode(id), q.as_str()))
            .await
    }

    /// `GET /containers/{id}/stats`: one sample (`stream == false`) or one a second.
    pub async fn container_stats(
        &self,
        id: &str,
        stream: bool,
    ) -> Result<BoxStream<'static, Result<StatsResponse>>> {
        let q = Query::new().add("stream", if stream { "1" } else { "0" });
        let resp = self
            .call(
                Method::GET,
                &format!("/containers/{}/stats{}", encode(id), q.as_str()),
                empty(),
            )
            .await?;
        Ok(stream::json_values(body_stream(resp)))
    }

    /// `HEAD /containers/{id}/archive?path=`: stat a path in the container.
    pub async fn container_archive_stat(&self, id: &str, path: &str) -> Result<PathStat> {
        let q = Query::new().add("path", path);
        let resp = self
            .call(
                Method::HEAD,
                &format!("/containers/{}/archive{}", encode(id), q.as_str()),
                empty(),
            )
            .await
            .map_err(|e| match e {
                // A HEAD answer has no body to carry the daemon's message.
                Error::Daemon { status: 404, .. } => Error::Daemon {
                    status: 404,
                    message: format!("No such container:path: {id}:{path}"),
                },
                e => e,
            })?;
        path_stat(&resp)
    }

    /// `GET /containers/{id}/archive?path=`: the stat and a tar of the path.
    pub async fn container_archive_get(
        &self,
        id: &str,
        path: &str,
    ) -> Result<(PathStat, BodyStream)> {
        let q = Query::new().add("path", path);
        let resp = self
            .call(
                Method::GET,
                &format!("/containers/{}/archive{}", encode(id), q.as_str()),
                empty(),
            )
            .await?;
        let stat = path_stat(&resp)?;
        Ok((stat, body_stream(resp)))
    }

    /// `PUT /containers/{id}/archive?path=`: extract the tar `body` into the directory `path`.
    pub async fn container_archive_put(
        &self,
        id: &str,
        opts: &ArchivePutOptions,
        body: ByteStream,
    ) -> Result<()> {
        let q = Query::new()
            .add("path", &opts.path)
            .flag("noOverwriteDirNonDir", opts.no_overwrite_dir_non_dir)
            .flag("copyUIDGID", opts.copy_uid_gid);
        let mut req = self.request(
            Method::PUT,
            &format!("/containers/{}/archive{}", encode(id), q.as_str()),
            stream_body(body),
        )?;
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
        drain(self.send(req).await?).await;
        Ok(())
    }

    // ------------------------------------------------------------ exec

    /// `POST /containers/{id}/exec`: returns the exec ID.
    pub async fn exec_create(&self, id: &str, config: &ExecConfig) -> Result<IdResponse> {
        self.post_json(&format!("/containers/{}/exec", encode(id)), config)
            .await
    }

    /// `POST /exec/{id}/start`, hijacked. With `detach` the daemon answers at
    /// once and the session's output is empty.
    pub async fn exec_start(&self, exec_id: &str, opts: &ExecStartConfig) -> Result<Session> {
        let path = format!("/exec/{}/start", encode(exec_id));
        if opts.detach {
            let resp = self.call(Method::POST, &path, json_body(opts)?).await?;
            drain(resp).await;
            return Ok(Session {
                tty: opts.tty,
                stdin: None,
                output: futures::stream::empty().boxed(),
            });
        }
        self.hijack(&path, json_body(opts)?, true).await
    }

    pub async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect> {
        self.get_json(&format!("/exec/{}/json", encode(exec_id)))
            .await
    }

    pub async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        self.post_empty(&format!(
            "/exec/{}/resize?h={height}&w={width}",
            encode(exec_id)
        ))
        .await
    }

    // ------------------------------------------------------------ images

    pub async fn image_list(&self, opts: &ImageListOptions) -> Result<Vec<ImageSummary>> {
        let q = Query::new()
            .flag("all", opts.all)
            .flag("shared-size", opts.shared_size)
            .flag("digests", opts.digests)
            .filters(&opts.filters);
        self.get_json(&format!("/images/json{}", q.as_str())).await
    }

    pub async fn image_inspect(&self, name: &str) -> Result<ImageInspect> {
        self.get_json(&format!("/images/{}/json", image_path(name)))
            .await
    }

    pub async fn image_history(&self, name: &str) -> Result<Vec<HistoryItem>> {
        self.get_json(&format!("/images/{}/history", image_path(name)))
            .await
    }

    /// `POST /images/{name}/tag?repo=&tag=`.
    pub async fn image_tag(&self, name: &str, repo: &str, tag: &str) -> Result<()> {
        let q = Query::new()
            .add("repo", repo)
            .opt("tag", (!tag.is_empty()).then_some(tag));
        let resp = self
            .call(
                Method::POST,
                &format!("/images/{}/tag{}", image_path(name), q.as_str()),
                empty(),
            )
            .await?;
        drain(resp).await;
        Ok(())
    }

    /// `DELETE /images/{name}`: what was untagged and deleted.
    pub async fn image_remove(
        &self,
        name: &str,
        force: bool,
        noprune: bool,
    ) -> Result<Vec<ImageDeleteItem>> {
        let q = Query::new().flag("force", force).flag("noprune", noprune);
        let path = format!("/images/{}{}", image_path(name), q.as_str());
        let resp = self.delete(&path).await?;
        self.read_json(&path, resp).await
    }

    /// `POST /images/load`: `body` is a docker-save or OCI-layout tar.
    pub async fn image_load(&self, body: ByteStream, quiet: bool) -> Result<Progress> {
        let q = Query::new().flag("quiet", quiet);
        let mut req = self.request(
            Method::POST,
            &format!("/images/load{}", q.as_str()),
            stream_body(body),
        )?;
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
        Ok(stream::json_values(body_stream(self.send(req).await?)))
    }

    /// `GET /images/get?names=…`: a docker-save tar of the images.
    pub async fn image_save(&self, names: &[String]) -> Result<BodyStream> {
        let mut q = Query::new();
        for n in names {
            q = q.add("names", n);
        }
        let resp = self
            .call(Method::GET, &format!("/images/get{}", q.as_str()), empty())
            .await?;
        Ok(body_stream(resp))
    }

    /// `POST /build`: the classic builder; `context` is the build context
    /// tar. The progress holds the build's output (`stream`) and ends with
    /// an error message when the build fails.
    pub async fn build(&self, context: ByteStream, opts: &BuildOptions) -> Result<Progress> {
        let mut q = Query::new();
        for t in &opts.tags {
            q = q.add("t", t);
        }
        q = q
            .opt(
                "dockerfile",
                (!opts.dockerfile.is_empty()).then_some(&opts.dockerfile),
            )
            .opt("target", (!opts.target.is_empty()).then_some(&opts.target))
            .opt("remote", (!opts.remote.is_empty()).then_some(&opts.remote))
            .flag("q", opts.quiet)
            .flag("nocache", opts.no_cache)
            .add("rm", if opts.remove { "1" } else { "0" })
            .flag("forcerm", opts.force_remove)
            .opt(
                "networkmode",
                (!opts.network_mode.is_empty()).then_some(&opts.network_mode),
            )
            .opt(
                "buildargs",
                (!opts.build_args.is_empty())
                    .then(|| serde_json::to_string(&opts.build_args).unwrap_or_default()),
            )
            .opt(
                "labels",
                (!opts.labels.is_empty())
                    .then(|| serde_json::to_string(&opts.labels).unwrap_or_default()),
            );
        let mut req = self.request(
            Method::POST,
            &format!("/build{}", q.as_str()),
            stream_body(context),
        )?;
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
        Ok(stream::json_values(body_stream(self.send(req).await?)))
    }

    /// `POST /images/create?fromSrc=-`: import a rootfs tar as an image.
    pub async fn image_import(&self, body: ByteStream, opts: &ImportOptions) -> Result<Progress> {
        let mut q = Query::new()
            .add("fromSrc", "-")
            .opt("repo", (!opts.repo.is_empty()).then_some(&opts.repo))
            .opt("tag", (!opts.tag.is_empty()).then_some(&opts.tag))
            .opt(
                "message",
                (!opts.message.is_empty()).then_some(&opts.message),
            )
            .opt(
                "platform",
                (!opts.platform.is_empty()).then_some(&opts.platform),
            );
        for c in &opts.changes {
            q = q.add("changes", c);
        }
        let mut req = self.request(
            Method::POST,
            &format!("/images/create{}", q.as_str()),
            stream_body(body),
        )?;
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
        Ok(stream::json_values(body_stream(self.send(req).await?)))
    }

    /// `POST /images/create?fromImage=`: pull.
    pub async fn image_pull(&self, opts: &PullOptions) -> Result<Progress> {
        let q = Query::new()
            .add("fromImage", &opts.from_image)
            .opt("tag", (!opts.tag.is_empty()).then_some(&opts.tag))
            .opt(
                "platform",
                (!opts.platform.is_empty()).then_some(&opts.platform),
            );
        let mut req = self.request(
            Method::POST,
            &format!("/images/create{}", q.as_str()),
            empty(),
        )?;
        add_registry_auth(&mut req, opts.auth.as_ref())?;
        Ok(stream::json_values(body_stream(self.send(req).await?)))
    }

    /// `POST /images/{name}/push?tag=`.
    pub async fn image_push(
        &self,
        name: &str,
        tag: &str,
        auth: Option<&AuthConfig>,
    ) -> Result<Progress> {
        let q = Query::new().opt("tag", (!tag.is_empty()).then_some(tag));
        let mut req = self.request(
            Method::POST,
            &format!("/images/{}/push{}", image_path(name), q.as_str()),
            empty(),
        )?;
        // The daemon wants the header even without credentials (Docker's CLI sends `{}`).
        let none = AuthConfig::default();
        add_registry_auth(&mut req, Some(auth.unwrap_or(&none)))?;
        Ok(stream::json_values(body_stream(self.send(req).await?)))
    }

    // ------------------------------------------------------------ networks

    pub async fn network_list(&self, filters: &Filters) -> Result<Vec<NetworkResource>> {
        let q = Query::new().filters(filters);
        self.get_json(&format!("/networks{}", q.as_str())).await
    }

    pub async fn network_inspect(&self, id: &str) -> Result<NetworkResource> {
        self.get_json(&format!("/networks/{}", encode(id))).await
    }

    pub async fn network_create(
        &self,
        req: &NetworkCreateRequest,
    ) -> Result<NetworkCreateResponse> {
        self.post_json("/networks/create", req).await
    }

    pub async fn network_remove(&self, id: &str) -> Result<()> {
        drain(self.delete(&format!("/networks/{}", encode(id))).await?).await;
        Ok(())
    }

    pub async fn network_connect(&self, id: &str, req: &NetworkConnectRequest) -> Result<()> {
        let resp = self
            .call(
                Method::POST,
                &format!("/networks/{}/connect", encode(id)),
                json_body(req)?,
            )
            .await?;
        drain(resp).await;
        Ok(())
    }

    // ------------------------------------------------------------ volumes

    pub async fn volume_list(&self, filters: &Filters) -> Result<VolumeListResponse> {
        let q = Query::new().filters(filters);
        self.get_json(&format!("/volumes{}", q.as_str())).await
    }

    pub async fn volume_create(&self, req: &VolumeCreateRequest) -> Result<Volume> {
        self.post_json("/volumes/create", req).await
    }

    pub async fn volume_inspect(&self, name: &str) -> Result<Volume> {
        self.get_json(&format!("/volumes/{}", encode(name))).await
    }

    pub async fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let q = Query::new().flag("force", force);
        drain(
            self.delete(&format!("/volumes/{}{}", encode(name), q.as_str()))
                .await?,
        )
        .await;
        Ok(())
    }
}

/// Reads a progress stream to its end; the first `error` message becomes an
/// [`Error::Stream`]. Returns every message otherwise.
pub async fn check_progress(mut p: Progress) -> Result<Vec<JsonMessage>> {
    let mut out = Vec::new();
    while let Some(m) = p.next().await {
        let m = m?;
        if let Some(e) = progress_error(&m) {
            return Err(Error::Stream(e));
        }
        out.push(m);
    }
    Ok(out)
}

/// The error a progress message carries, if any.
pub fn progress_error(m: &JsonMessage) -> Option<String> {
    match (&m.error, &m.error_detail) {
        (Some(e), _) if !e.is_empty() => Some(e.clone()),
        (_, Some(d)) if !d.message.is_empty() => Some(d.message.clone()),
        _ => None,
    }
}

/// Reads `r` as a stream of chunks (file bodies for load, import, cp).
pub fn reader_stream<R>(r: R) -> BoxStream<'static, io::Result<Bytes>>
where
    R: AsyncRead + Send + Unpin + 'static,
{
    futures::stream::try_unfold(r, |mut r| async move {
        let mut buf = vec![0u8; 64 * 1024];
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), r)))
    })
    .boxed()
}

fn empty() -> ReqBody {
    Empty::new()
        .map_err(|e: std::convert::Infallible| match e {})
        .boxed_unsync()
}

fn json_body<B: Serialize>(b: &B) -> Result<ReqBody> {
    let v = serde_json::to_vec(b)
        .map_err(|e| Error::Request(format!("encoding the request body: {e}")))?;
    Ok(Full::new(Bytes::from(v))
        .map_err(|e: std::convert::Infallible| match e {})
        .boxed_unsync())
}

fn stream_body(s: ByteStream) -> ReqBody {
    StreamBody::new(s.map_ok(Frame::data)).boxed_unsync()
}

fn body_stream(resp: Response<Incoming>) -> BodyStream {
    TryStreamExt::map_err(http_body_util::BodyStream::new(resp.into_body()), |e| {
        Error::Stream(format!("reading the daemon's answer: {e}"))
    })
    .try_filter_map(|f| async move { Ok(f.into_data().ok()) })
    .boxed()
}

async fn drain(resp: Response<Incoming>) {
    let _ = resp.into_body().collect().await;
}

fn is_multiplexed(resp: &Response<Incoming>) -> bool {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/vnd.docker.multiplexed-stream"))
}

fn stop_query(opts: &StopOptions) -> Query {
    Query::new()
        .opt("signal", opts.signal.as_deref())
        .opt("t", opts.timeout.map(|t| t.to_string()))
}

/// Unix seconds as the API reads them (`1700000000.5`).
fn secs(t: f64) -> String {
    if t.fract() == 0.0 {
        format!("{}", t as i64)
    } else {
        format!("{t:.9}")
    }
}

/// An image reference as a path: each `/`-separated part encoded.
fn image_path(name: &str) -> String {
    name.split('/').map(encode).collect::<Vec<_>>().join("/")
}

fn add_registry_auth(req: &mut Request<ReqBody>, auth: Option<&AuthConfig>) -> Result<()> {
    if let Some(a) = auth {
        let raw = serde_json::to_vec(a).map_err(|e| Error::Request(e.to_string()))?;
        let enc = base64::engine::general_purpose::URL_SAFE.encode(raw);
        let v = HeaderValue::from_str(&enc).map_err(|e| Error::Request(e.to_string()))?;
        req.headers_mut().insert("X-Registry-Auth", v);
    }
    Ok(())
}

fn path_stat(resp: &Response<Incoming>) -> Result<PathStat> {
    let h = resp
        .headers()
        .get("X-Docker-Container-Path-Stat")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Error::Stream("the daemon sent no X-Docker-Container-Path-Stat header".into())
        })?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(h.trim())
        .map_err(|e| Error::Stream(format!("X-Docker-Container-Path-Stat is not base64: {e}")))?;
    serde_json::from_slice(&raw).map_err(|source| Error::Json {
        what: "X-Docker-Container-Path-Stat".into(),
        source,
    })
}
