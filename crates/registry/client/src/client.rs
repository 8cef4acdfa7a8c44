//! The HTTP side: the [`Client`] (connection pool, TLS, token cache) and
//! [`Repository`], one repository of one registry with its authentication.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, LOCATION, USER_AGENT, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use strato_image::Reference;

use crate::auth::{parse_challenges, query_escape, Challenge, Credentials, TokenResponse};
use crate::error::{Error, Result};

/// Request bodies: empty, small JSON, or a file streamed from disk.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

type Http = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Body>;

/// Error bodies and token answers larger than this are cut off.
const MAX_SMALL_BODY: usize = 1 << 20;
/// Redirects followed for one request (blob downloads may be redirected to
/// storage).
const MAX_REDIRECTS: usize = 5;

/// How a [`Client`] behaves.
#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    /// Registries (`HOST` or `HOST:PORT`) that may be reached over plain
    /// HTTP, like dockerd's `--insecure-registry`. Loopback registries
    /// (`localhost`, `127.0.0.0/8`, `::1`) always may.
    pub insecure_registries: Vec<String>,
    /// The `User-Agent` header; `strato` if empty.
    pub user_agent: String,
}

/// A registry client: a connection pool (HTTP/1.1, TLS by rustls with the
/// system's root certificates), the insecure-registry policy and a cache
/// of bearer tokens. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: Http,
    insecure: Vec<String>,
    user_agent: HeaderValue,
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    realm: String,
    service: String,
    scope: String,
    username: String,
    /// The password (or identity token): a changed one is another key.
    secret: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("insecure", &self.inner.insecure)
            .finish_non_exhaustive()
    }
}

/// The host a registry domain is served from (`docker.io` is served by
/// `registry-1.docker.io`).
pub fn registry_host(domain: &str) -> &str {
    match domain {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        d => d,
    }
}

/// Whether `host` (`HOST[:PORT]`, IPv6 in brackets) is a loopback address
/// or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let name = split_host(host);
    if name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host name without port and brackets.
fn split_host(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

impl Client {
    /// A client with the system's root certificates (`/etc/ssl/certs`).
    pub fn new(config: ClientConfig) -> Result<Client> {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!("no system root certificates found: https registries will fail verification (install ca-certificates)");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(30)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let ua = if config.user_agent.is_empty() {
            "strato".to_owned()
        } else {
            config.user_agent
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                insecure: config.insecure_registries,
                user_agent: HeaderValue::from_str(&ua)
                    .unwrap_or_else(|_| HeaderValue::from_static("strato")),
                tokens: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Whether `domain` may be reached over plain HTTP.
    pub fn allows_http(&self, domain: &str) -> bool {
        is_loopback(domain)
            || self
                .inner
                .insecure
                .iter()
                .any(|i| i == domain || (!i.contains(':') && split_host(domain) == i))
    }

    /// Opens `reference`'s repository for pulling (or also pushing): finds
    /// the endpoint (HTTPS; for loopback and insecure registries HTTP if
    /// HTTPS fails), learns how it authenticates from `GET /v2/` and
    /// authenticates with `creds`.
    pub async fn repository(
        &self,
        reference: &Reference,
        creds: Credentials,
        push: bool,
    ) -> Result<Repository> {
        let domain = reference.domain().to_owned();
        let host = registry_host(&domain).to_owned();
        let (base, ping) = self.ping_endpoint(&domain, &host).await?;
        let repo = Repository {
            client: self.clone(),
            registry: domain,
            base,
            path: reference.path().to_owned(),
            creds,
            scope: format!(
                "repository:{}:{}",
                reference.path(),
                if push { "pull,push" } else { "pull" }
            ),
            auth: tokio::sync::Mutex::new(None),
            chunk_size: crate::push::CHUNK_SIZE,
        };
        repo.authenticate(&ping).await?;
        Ok(repo)
    }

    /// Checks `creds` against the registry `domain` (`docker login`): the
    /// registry's `/v2/` must accept them (basic auth) or its token service
    /// must issue a token for them (bearer).
    pub async fn login(&self, domain: &str, creds: &Credentials) -> Result<()> {
        let host = registry_host(domain).to_owned();
        let (base, ping) = self.ping_endpoint(domain, &host).await?;
        let repo = Repository {
            client: self.clone(),
            registry: domain.to_owned(),
            base,
            path: String::new(),
            creds: creds.clone(),
            scope: String::new(),
            auth: tokio::sync::Mutex::new(None),
            chunk_size: crate::push::CHUNK_SIZE,
        };
        match &ping {
            Ping::Open => Ok(()),
            Ping::Challenge(c) if c.scheme == "basic" => {
                if !creds.has_basic() {
                    return Err(repo.unauthorized("the registry wants a user name and password"));
                }
                let url = format!("{}/v2/", repo.base);
                let auth = creds.basic_header();
                let resp = self
                    .send_raw(&repo.registry, Method::GET, &url, Some(&auth), empty(), &[])
                    .await?;
                match resp.status() {
                    s if s.is_success() => Ok(()),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                        let msg = error_message(resp).await;
                        Err(repo.unauthorized(&format!(
                            "user {:?} was refused: {msg}: check the user name and password",
                            creds.username
                        )))
                    }
                    s => Err(repo.status_err("check the credentials", s, resp).await),
                }
            }
            Ping::Challenge(c) if c.scheme == "bearer" => {
                repo.fetch_token(c, "", true).await.map(|_| ())
            }
            Ping::Challenge(c) => Err(repo.unauthorized(&format!(
                "the registry asks for {:?} authentication, which strato does not speak (basic and bearer only)",
                c.scheme
            ))),
        }
    }

    /// Finds the endpoint of a registry and pings it.
    async fn ping_endpoint(&self, domain: &str, host: &str) -> Result<(String, Ping)> {
        let https = format!("https://{host}");
        match self.ping(domain, &https).await {
            Ok(p) => Ok((https, p)),
            Err(e @ Error::Connect { .. }) if self.allows_http(domain) => {
                let http = format!("http://{host}");
                tracing::debug!(registry = domain, error = %e, "https failed; trying plain http (insecure registry)");
                match self.ping(domain, &http).await {
                    Ok(p) => Ok((http, p)),
                    Err(e2) => Err(match e2 {
                        Error::Connect { registry, message } => Error::Connect {
                            registry,
                            message: format!("{message} (https: {e})"),
                        },
                        other => other,
                    }),
                }
            }
            Err(Error::Connect { registry, message }) => Err(Error::Connect {
                registry: registry.clone(),
                message: format!(
                    "{message} (if {registry} serves plain HTTP, start the daemon with --insecure-registry {registry})"
                ),
            }),
            Err(e) => Err(e),
        }
    }

    async fn ping(&self, domain: &str, base: &str) -> Result<Ping> {
        let url = format!("{base}/v2/");
        let resp = self
            .send_raw(domain, Method::GET, &url, None, empty(), &[])
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(Ping::Open),
            StatusCode::UNAUTHORIZED => {
                let challenges: Vec<Challenge> = resp
                    .headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(parse_challenges)
                    .collect();
                // Prefer bearer (it carries scopes), then basic.
                let pick = challenges
                    .iter()
                    .find(|c| c.scheme == "bearer")
                    .or_else(|| challenges.iter().find(|c| c.scheme == "basic"))
                    .or(challenges.first())
                    .cloned();
                match pick {
                    Some(c) => Ok(Ping::Challenge(c)),
                    None => Err(Error::Protocol {
                        registry: domain.to_owned(),
                        message: "401 on /v2/ without a WWW-Authenticate challenge".into(),
                    }),
                }
            }
            s => Err(Error::Status {
                registry: domain.to_owned(),
                what: format!("GET {url} (is this a registry?)"),
                status: s.as_u16(),
                message: error_message(resp).await,
            }),
        }
    }

    /// Sends one request. Transport failures become [`Error::Connect`].
    pub(crate) async fn send_raw(
        &self,
        registry: &str,
        method: Method,
        url: &str,
        authorization: Option<&str>,
        body: Body,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let uri: Uri = url.parse().map_err(|e| Error::Protocol {
            registry: registry.to_owned(),
            message: format!("bad URL {url:?}: {e}"),
        })?;
        let mut b = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(USER_AGENT, self.inner.user_agent.clone());
        if let Some(a) = authorization {
            b = b.header(AUTHORIZATION, a);
        }
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        let req = b.body(body).map_err(|e| Error::Protocol {
            registry: registry.to_owned(),
            message: format!("cannot build the request {method} {url}: {e}"),
        })?;
        tracing::trace!(%method, url, "registry request");
        self.inner
            .http
            .request(req)
            .await
            .map_err(|e| Error::Connect {
                registry: registry.to_owned(),
                message: format!("{method} {url}: {}", error_chain(&e)),
            })
    }
}

/// What `GET /v2/` said.
enum Ping {
    /// No authentication needed.
    Open,
    /// 401 with this challenge.
    Challenge(Challenge),
}

/// The full message of an error and its sources.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// An empty request body.
pub(crate) fn empty() -> Body {
    Empty::<Bytes>::new().map_err(|n| match n {}).boxed_unsync()
}

/// A request body of `data`.
pub(crate) fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|n| match n {})
        .boxed_unsync()
}

/// Reads a small body (error texts, tokens, manifests), at most `limit` bytes.
pub(crate) async fn read_small(resp: Response<Incoming>, limit: usize) -> Result<Bytes, String> {
    Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string())
}

/// The message of a registry error body (`{"errors":[{"code","message"}]}`),
/// or the body text.
pub(crate) async fn error_message(resp: Response<Incoming>) -> String {
    let status = resp.status();
    let body = read_small(resp, 64 << 10).await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<Err>,
    }
    #[derive(serde::Deserialize)]
    struct Err {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errs>(&body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (true, false) => e.message.clone(),
                _ => e.code.clone(),
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("").to_owned()
    } else {
        text.chars().take(300).collect()
    }
}

/// One repository of one registry, authenticated.
pub struct Repository {
    client: Client,
    registry: String,
    base: String,
    path: String,
    creds: Credentials,
    scope: String,
    /// The `Authorization` value to send, once known.
    auth: tokio::sync::Mutex<Option<Auth>>,
    /// Blobs larger than this are uploaded in `PATCH` chunks of this size.
    pub(crate) chunk_size: u64,
}

#[derive(Clone)]
struct Auth {
    header: String,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("base", &self.base)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// Sets the size above which blobs are uploaded in `PATCH` chunks (of
    /// that size); [`CHUNK_SIZE`](crate::CHUNK_SIZE) by default.
    pub fn with_chunk_size(mut self, bytes: u64) -> Repository {
        self.chunk_size = bytes.max(1);
        self
    }

    /// The registry domain as the reference names it (`localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The endpoint's base URL (`https://host` or `http://host`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `https://host/v2/<path>/<rest>`.
    pub(crate) fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, self.path)
    }

    /// Resolves a `Location` header against the endpoint.
    pub(crate) fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            format!("{}/{location}", self.base)
        }
    }

    pub(crate) fn unauthorized(&self, message: &str) -> Error {
        Error::Unauthorized {
            registry: self.registry.clone(),
            message: message.to_owned(),
        }
    }

    pub(crate) fn protocol(&self, message: impl Into<String>) -> Error {
        Error::Protocol {
            registry: self.registry.clone(),
            message: message.into(),
        }
    }

    pub(crate) async fn status_err(
        &self,
        what: &str,
        status: StatusCode,
        resp: Response<Incoming>,
    ) -> Error {
        let message = error_message(resp).await;
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => self.unauthorized(&format!(
                "{what}: {message} (log in with docker login {}, or check that the account may access {})",
                self.registry, self.path
            )),
            StatusCode::NOT_FOUND => Error::NotFound {
                what: format!("{what} ({}/{})", self.registry, self.path),
                message,
            },
            s => Error::Status {
                registry: self.registry.clone(),
                what: what.to_owned(),
                status: s.as_u16(),
                message,
            },
        }
    }

    /// Sets up the `Authorization` header from the ping's challenge.
    async fn authenticate(&self, ping: &Ping) -> Result<()> {
        let auth = match ping {
            Ping::Open => None,
            Ping::Challenge(c) => Some(self.auth_for(c).await?),
        };
        if let (Some(a), Ping::Challenge(c)) = (&auth, ping) {
            if c.scheme == "basic" {
                // Check the password now, so that a wrong one is a clear
                // error before any work starts.
                let url = format!("{}/v2/", self.base);
                let resp = self
                    .client
                    .send_raw(
                        &self.registry,
                        Method::GET,
                        &url,
                        Some(&a.header),
                        empty(),
                        &[],
                    )
                    .await?;
                if resp.status() == StatusCode::UNAUTHORIZED
                    || resp.status() == StatusCode::FORBIDDEN
                {
                    let msg = error_message(resp).await;
                    return Err(self.unauthorized(&format!(
                        "user {:?} was refused: {msg}: check the user name and password",
                        self.creds.username
                    )));
                }
            }
        }
        *self.auth.lock().await = auth;
        Ok(())
    }

    async fn auth_for(&self, c: &Challenge) -> Result<Auth> {
        match c.scheme.as_str() {
            "basic" => {
                if !self.creds.has_basic() {
                    return Err(self.unauthorized(&format!(
                        "the registry requires a user name and password: log in with docker login {} (or send X-Registry-Auth)",
                        self.registry
                    )));
                }
                Ok(Auth {
                    header: self.creds.basic_header(),
                })
            }
            "bearer" => {
                let token = self.fetch_token(c, &self.scope, false).await?;
                Ok(Auth {
                    header: format!("Bearer {token}"),
                })
            }
            other => Err(self.unauthorized(&format!(
                "the registry asks for {other:?} authentication, which strato does not speak (basic and bearer only)"
            ))),
        }
    }

    /// Gets a bearer token for `scope` from the challenge's realm (cached).
    async fn fetch_token(&self, c: &Challenge, scope: &str, fresh: bool) -> Result<String> {
        if !self.creds.registry_token.is_empty() {
            return Ok(self.creds.registry_token.clone());
        }
        let realm = c
            .param("realm")
            .ok_or_else(|| self.protocol("bearer challenge without a realm"))?
            .to_owned();
        let service = c.param("service").unwrap_or("").to_owned();
        let key = TokenKey {
            realm: realm.clone(),
            service: service.clone(),
            scope: scope.to_owned(),
            username: self.creds.username.clone(),
            secret: format!("{}\0{}", self.creds.password, self.creds.identity_token),
        };
        if !fresh {
            if let Some((t, until)) = self.client.inner.tokens.lock().unwrap().get(&key) {
                if Instant::now() < *until {
                    return Ok(t.clone());
                }
            }
        }
        let mut query = Vec::new();
        if !service.is_empty() {
            query.push(format!("service={}", query_escape(&service)));
        }
        if !scope.is_empty() {
            query.push(format!("scope={}", query_escape(scope)));
        }
        let resp = if !self.creds.identity_token.is_empty() {
            // OAuth2 refresh token grant (Docker's identity tokens).
            let mut form = vec![
                "grant_type=refresh_token".to_owned(),
                format!("refresh_token={}", query_escape(&self.creds.identity_token)),
                "client_id=strato".to_owned(),
            ];
            form.extend(query.iter().cloned());
            self.client
                .send_raw(
                    &self.registry,
                    Method::POST,
                    &realm,
                    None,
                    full(form.join("&")),
                    &[(
                        "content-type",
                        "application/x-www-form-urlencoded".to_owned(),
                    )],
                )
                .await?
        } else {
            let sep = if realm.contains('?') { '&' } else { '?' };
            let url = if query.is_empty() {
                realm.clone()
            } else {
                format!("{realm}{sep}{}", query.join("&"))
            };
            let basic = self.creds.has_basic().then(|| self.creds.basic_header());
            self.client
                .send_raw(
                    &self.registry,
                    Method::GET,
                    &url,
                    basic.as_deref(),
                    empty(),
                    &[],
                )
                .await?
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let msg = error_message(resp).await;
            let who = if self.creds.has_basic() {
                format!("user {:?}", self.creds.username)
            } else {
                "anonymous access".to_owned()
            };
            return Err(self.unauthorized(&format!(
                "the token service {realm} refused {who}: {msg}: check the credentials (docker login {})",
                self.registry
            )));
        }
        if !status.is_success() {
            let msg = error_message(resp).await;
            return Err(Error::Status {
                registry: self.registry.clone(),
                what: format!("get a token from {realm}"),
                status: status.as_u16(),
                message: msg,
            });
        }
        let body = read_small(resp, MAX_SMALL_BODY)
            .await
            .map_err(|e| self.protocol(format!("token answer of {realm}: {e}")))?;
        let tr: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| self.protocol(format!("token answer of {realm} is not JSON: {e}")))?;
        let token = tr.value().to_owned();
        if token.is_empty() {
            return Err(self.protocol(format!("the token service {realm} sent no token")));
        }
        // Docker's spec: default 60 s; renew a little early.
        let life = tr.expires_in.unwrap_or(60).max(10) - 5;
        self.client.inner.tokens.lock().unwrap().insert(
            key,
            (token.clone(), Instant::now() + Duration::from_secs(life)),
        );
        Ok(token)
    }

    /// Sends a request to the registry with its authentication. On a 401
    /// with a bearer challenge, fetches a fresh token for the challenge's
    /// scope and retries once (`make` builds the request body again).
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        make_body: &(dyn Fn() -> Result<Body> + Sync),
    ) -> Result<Response<Incoming>> {
        let mut retried = false;
        loop {
            let auth = self.auth.lock().await.clone();
            let resp = self
                .client
                .send_raw(
                    &self.registry,
                    method.clone(),
                    url,
                    auth.as_ref().map(|a| a.header.as_str()),
                    make_body()?,
                    headers,
                )
                .await?;
            if resp.status() != StatusCode::UNAUTHORIZED || retried {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(parse_challenges)
                .find(|c| c.scheme == "bearer" || c.scheme == "basic");
            let Some(c) = challenge else {
                return Ok(resp);
            };
            retried = true;
            // The challenge's scope may be wider (e.g. a mount source); ask
            // for ours plus it.
            let new = if c.scheme == "bearer" {
                let mut scope = self.scope.clone();
                if let Some(s) = c.param("scope").filter(|s| *s != self.scope) {
                    scope = format!("{scope} {s}");
                }
                let token = self.fetch_token(&c, &scope, true).await?;
                Auth {
                    header: format!("Bearer {token}"),
                }
            } else {
                self.auth_for(&c).await?
            };
            *self.auth.lock().await = Some(new);
        }
    }

    /// Like [`send`](Self::send) for GETs, following redirects (blob
    /// storage); the `Authorization` header is not sent to other hosts.
    pub(crate) async fn get_following(
        &self,
        url: &str,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let mut resp = self
            .send(Method::GET, url, headers, &|| Ok(empty()))
            .await?;
        let mut current = url.to_owned();
        for _ in 0..MAX_REDIRECTS {
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
                return Ok(resp);
            };
            let next = if loc.starts_with('/') {
                let u: Uri = current.parse().map_err(|_| self.protocol("bad URL"))?;
                format!(
                    "{}://{}{loc}",
                    u.scheme_str().unwrap_or("https"),
                    u.authority().map(|a| a.as_str()).unwrap_or("")
                )
            } else {
                self.absolute(loc)
            };
            let same_host = host_of(&next) == host_of(&self.base);
            resp = if same_host {
                self.send(Method::GET, &next, headers, &|| Ok(empty()))
                    .await?
            } else {
                self.client
                    .send_raw(&self.registry, Method::GET, &next, None, empty(), headers)
                    .await?
            };
            current = next;
        }
        Err(self.protocol(format!("more than {MAX_REDIRECTS} redirects for {url}")))
    }
}

fn host_of(url: &str) -> String {
    url.parse::<Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_insecure() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "[2001:db8::1]:5000"] {
            assert!(!is_loopback(h), "{h}");
        }
        let c = Client::new(ClientConfig {
            insecure_registries: vec!["reg.lan:5000".into(), "other.lan".into()],
            user_agent: String::new(),
        })
        .unwrap();
        assert!(c.allows_http("reg.lan:5000"));
        assert!(!c.allows_http("reg.lan:5001"));
        assert!(c.allows_http("other.lan:443"));
        assert!(c.allows_http("other.lan"));
        assert!(!c.allows_http("example.com"));
        assert!(c.allows_http("localhost:1"));
    }

    #[test]
    fn docker_hub_host() {
        assert_eq!(registry_host("docker.io"), "registry-1.docker.io");
        assert_eq!(registry_host("localhost:5000"), "localhost:5000");
    }
}
