//! The PaaS REST API: Stratos 4.1's resources and verbs under `/api`.
//!
//! - `GET /api/{resource}` lists, `GET /api/{resource}/{id}` describes,
//!   `POST /api/{resource}` adds, `PUT /api/{resource}` updates,
//!   `DELETE /api/{resource}/{id}` removes, for `cartridges`,
//!   `cartridgeGroups`, `networkPartitions`, `deploymentPolicies`,
//!   `applicationPolicies`, `autoscalingPolicies`, `applications` and
//!   `kubernetesClusters` (declared capacity);
//! - `POST /api/applications/{id}/deploy/{applicationPolicy}`,
//!   `POST /api/applications/{id}/undeploy`,
//!   `GET /api/applications/{id}/runtime`;
//! - `GET /api/events`: server-sent events (`?application=ID` filters);
//! - `GET /api/openapi.json`.
//!
//! Answers are Stratos's `{"statusCode", "message"}`; a refused definition
//! adds `"path"`, the JSON path of the fault. Bodies are limited to 1 MiB.
//! On TCP every request needs `Authorization: Bearer TOKEN`.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use strato_paas_model::{parse, Change, Kind, ModelError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::controller::{ControlError, Controller};
use crate::engine::Engine;
use crate::events::Event;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 1 << 20;

type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn reply(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec_pretty(v).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn message(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    reply(
        status,
        &json!({"statusCode": status.as_u16(), "message": msg.into()}),
    )
}

fn model_error(e: &ModelError) -> Response<Body> {
    let status = match e {
        ModelError::Invalid { .. } => StatusCode::BAD_REQUEST,
        ModelError::NotFound { .. } => StatusCode::NOT_FOUND,
        ModelError::Exists { .. } | ModelError::InUse { .. } | ModelError::Deployed { .. } => {
            StatusCode::CONFLICT
        }
    };
    let mut v = json!({"statusCode": status.as_u16(), "message": e.to_string()});
    if let Some(p) = e.path() {
        v["path"] = json!(p);
    }
    reply(status, &v)
}

fn control_error(e: &ControlError) -> Response<Body> {
    match e {
        ControlError::Model(m) => model_error(m),
        ControlError::Store(strato_paas_store::StoreError::Model(m)) => model_error(m),
        ControlError::NotDeployed(_) => message(StatusCode::NOT_FOUND, e.to_string()),
        ControlError::Listen(_) => message(StatusCode::CONFLICT, e.to_string()),
        ControlError::Store(_) => message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Where and how the API is served.
pub enum Auth {
    /// A unix socket: the file's permissions are the access control.
    None,
    /// TCP: this bearer token on every request.
    Token(String),
}

/// Serves the API on a unix socket at `path` (replacing a stale socket)
/// until the future is dropped.
pub async fn serve_unix<E: Engine>(path: &Path, ctl: Controller<E>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("{} is in use by another server", path.display()),
        ));
    }
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o660))?;
    let auth = Arc::new(Auth::None);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(connection(stream, ctl.clone(), Arc::clone(&auth)));
    }
}

/// Serves the API on `listener` (TCP), requiring `token`.
pub async fn serve_tcp<E: Engine>(
    listener: tokio::net::TcpListener,
    ctl: Controller<E>,
    token: String,
) -> std::io::Result<()> {
    if token.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the PaaS API on TCP needs a token",
        ));
    }
    let auth = Arc::new(Auth::Token(token));
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(connection(stream, ctl.clone(), Arc::clone(&auth)));
    }
}

async fn connection<S, E>(stream: S, ctl: Controller<E>, auth: Arc<Auth>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    E: Engine,
{
    let svc = hyper::service::service_fn(move |req| {
        let ctl = ctl.clone();
        let auth = Arc::clone(&auth);
        async move { Ok::<_, Infallible>(handle(req, ctl, &auth).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

fn authorized(req: &Request<Incoming>, auth: &Auth) -> bool {
    match auth {
        Auth::None => true,
        Auth::Token(t) => {
            let want = format!("Bearer {t}");
            let got = req
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            // Constant time in the token's length.
            got.len() == want.len()
                && got
                    .iter()
                    .zip(want.as_bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        }
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    match Limited::new(req.into_body(), BODY_LIMIT).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(message(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("reading the request body: {e} (the limit is {BODY_LIMIT} bytes)"),
        )),
    }
}

/// Handles one request.
pub async fn handle<E: Engine>(
    req: Request<Incoming>,
    ctl: Controller<E>,
    auth: &Auth,
) -> Response<Body> {
    if !authorized(&req, auth) {
        return message(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token: send Authorization: Bearer TOKEN",
        );
    }
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    let parts: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if parts.first() != Some(&"api") {
        return message(
            StatusCode::NOT_FOUND,
            format!("no such endpoint {path}; the API is under /api"),
        );
    }
    match (&method, &parts[1..]) {
        (&Method::GET, ["openapi.json"]) => reply(StatusCode::OK, &openapi()),
        (&Method::GET, ["events"]) => events(&ctl, &query),
        (&Method::POST, ["applications", id, "deploy", policy]) => match ctl.deploy(id, policy) {
            Ok(()) => message(
                StatusCode::ACCEPTED,
                format!("Application deployed successfully: [application-id] {id}"),
            ),
            Err(e) => control_error(&e),
        },
        (&Method::POST, ["applications", id, "undeploy"]) => match ctl.undeploy(id) {
            Ok(()) => message(
                StatusCode::ACCEPTED,
                format!("Application undeploy process started successfully: [application-id] {id}"),
            ),
            Err(e) => control_error(&e),
        },
        (&Method::GET, ["applications", id, "runtime"]) => match ctl.runtime(id) {
            Ok(v) => reply(StatusCode::OK, &serde_json::to_value(v).unwrap_or_default()),
            Err(e) => control_error(&e),
        },
        (m, [resource, rest @ ..]) => {
            let Some(kind) = Kind::from_resource(resource) else {
                return message(
                    StatusCode::NOT_FOUND,
                    format!("no such resource {resource:?}; see /api/openapi.json"),
                );
            };
            match (m, rest) {
                (&Method::GET, []) => {
                    let cat = ctl.catalog();
                    let list: Vec<Value> = cat
                        .ids(kind)
                        .iter()
                        .filter_map(|id| cat.get(kind, id))
                        .filter_map(|d| serde_json::to_value(&d).ok())
                        .collect();
                    reply(StatusCode::OK, &Value::Array(list))
                }
                (&Method::GET, [id]) => match ctl.catalog().get(kind, id) {
                    Some(d) => reply(
                        StatusCode::OK,
                        &serde_json::to_value(&d).unwrap_or_default(),
                    ),
                    None => model_error(&ModelError::NotFound {
                        kind,
                        id: (*id).to_owned(),
                    }),
                },
                (&Method::POST, []) | (&Method::PUT, []) => {
                    let add = method == Method::POST;
                    let body = match read_body(req).await {
                        Ok(b) => b,
                        Err(r) => return r,
                    };
                    let def = match parse(kind, &body) {
                        Ok(d) => d,
                        Err(e) => return model_error(&e),
                    };
                    let id = def.id().to_owned();
                    let change = if add {
                        Change::add(def)
                    } else {
                        Change::update(def)
                    };
                    match ctl.apply(&[change]) {
                        Ok(()) => message(
                            if add {
                                StatusCode::CREATED
                            } else {
                                StatusCode::OK
                            },
                            format!(
                                "{} {} successfully: [{}] {id}",
                                kind,
                                if add { "added" } else { "updated" },
                                kind.id_field()
                            ),
                        ),
                        Err(e) => control_error(&e),
                    }
                }
                (&Method::DELETE, [id]) => {
                    match ctl.apply(&[Change::Remove(kind, (*id).to_owned())]) {
                        Ok(()) => message(
                            StatusCode::OK,
                            format!("{kind} removed successfully: [{}] {id}", kind.id_field()),
                        ),
                        Err(e) => control_error(&e),
                    }
                }
                _ => message(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{method} {path} is not supported; see /api/openapi.json"),
                ),
            }
        }
        _ => message(StatusCode::NOT_FOUND, format!("no such endpoint {path}")),
    }
}

fn events<E: Engine>(ctl: &Controller<E>, query: &str) -> Response<Body> {
    let app: Option<String> = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("application=").map(str::to_owned));
    let rx = ctl.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(ev) => return Some((ev, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    })
    .filter(move |ev: &Event| {
        let keep = app.as_deref().is_none_or(|a| a == ev.application_id);
        async move { keep }
    })
    .map(|ev| {
        let data = serde_json::to_string(&ev).unwrap_or_default();
        let kind = serde_json::to_value(&ev.kind)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_default();
        Ok::<_, Infallible>(Frame::data(Bytes::from(format!(
            "event: {kind}\ndata: {data}\n\n"
        ))))
    });
    let hello = futures::stream::once(async {
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(b": strato paas events\n\n")))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(hello.chain(stream))));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    r
}

/// The OpenAPI 3 document of this API.
pub fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    let msg = json!({"description": "{statusCode, message[, path]}"});
    for kind in Kind::ALL {
        let r = kind.resource();
        paths.insert(
            format!("/api/{r}"),
            json!({
                "get": {"summary": format!("List {kind} definitions"), "responses": {"200": {"description": "JSON array of definitions"}}},
                "post": {"summary": format!("Add a {kind} (Stratos 4.1 JSON)"), "requestBody": {"content": {"application/json": {}}}, "responses": {"201": msg, "400": msg, "409": msg}},
                "put": {"summary": format!("Update a {kind}"), "requestBody": {"content": {"application/json": {}}}, "responses": {"200": msg, "400": msg, "404": msg}},
            }),
        );
        paths.insert(
            format!("/api/{r}/{{id}}"),
            json!({
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"summary": format!("Describe a {kind}"), "responses": {"200": {"description": "the definition"}, "404": msg}},
                "delete": {"summary": format!("Remove a {kind} nothing uses"), "responses": {"200": msg, "404": msg, "409": msg}},
            }),
        );
    }
    paths.insert(
        "/api/applications/{id}/deploy/{applicationPolicy}".into(),
        json!({"post": {"summary": "Deploy an application under an application policy", "responses": {"202": msg, "404": msg, "409": msg}}}),
    );
    paths.insert(
        "/api/applications/{id}/undeploy".into(),
        json!({"post": {"summary": "Undeploy an application (reverse startup order, members drained)", "responses": {"202": msg, "404": msg}}}),
    );
    paths.insert(
        "/api/applications/{id}/runtime".into(),
        json!({"get": {"summary": "Application instances (one per network partition in use), group instances, clusters and their instances, members, load balancer listeners and the last scaling evaluations", "responses": {"200": {"description": "runtime"}, "404": msg}}}),
    );
    paths.insert(
        "/api/events".into(),
        json!({"get": {"summary": "Server-sent events: topology, member lifecycle, scaling decisions", "parameters": [{"name": "application", "in": "query", "schema": {"type": "string"}}], "responses": {"200": {"description": "text/event-stream"}}}}),
    );
    json!({
        "openapi": "3.0.3",
        "info": {"title": "strato PaaS API (Apache Stratos 4.1 resources)", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{PaasClient, PaasHost};
    use crate::controller::tests::{controller, free_offset};
    use crate::fake::Fake;
    use strato_paas_model::samples;

    const CARTRIDGE: &str = r#"{"type": "web", "category": "framework", "provider": "strato",
        "portMapping": [{"protocol": "http", "port": 80, "proxyPort": 0}],
        "iaasProvider": [{"type": "strato", "imageId": "strato/sample-http:1"}]}"#;

    async fn server(dir: &Path) -> (PaasClient, Controller<Fake>) {
        let ctl = controller(&Fake::default(), dir, free_offset());
        let sock = dir.join("p.sock");
        let c = ctl.clone();
        let s = sock.clone();
        tokio::spawn(async move { serve_unix(&s, c).await });
        while !sock.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        (PaasClient::new(PaasHost::Unix(sock), None), ctl)
    }

    #[tokio::test]
    async fn definitions_are_added_listed_refused_with_their_path_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _ctl) = server(dir.path()).await;
        let a = c
            .call(Method::POST, "/api/cartridges", Some(CARTRIDGE.into()))
            .await
            .unwrap();
        assert_eq!(a.status, 201, "{:?}", a.body);
        let a = c
            .call(Method::POST, "/api/cartridges", Some(CARTRIDGE.into()))
            .await
            .unwrap();
        assert_eq!(a.status, 409, "{:?}", a.body);
        assert!(a.error_text().contains("already exists"));
        let bad = CARTRIDGE.replace("\"port\": 80", "\"port\": \"eighty\"");
        let a = c
            .call(Method::POST, "/api/cartridges", Some(bad.into()))
            .await
            .unwrap();
        assert_eq!(a.status, 400, "{:?}", a.body);
        assert_eq!(a.body["path"], "portMapping[0].port", "{:?}", a.body);
        let a = c.call(Method::GET, "/api/cartridges", None).await.unwrap();
        let ids: Vec<&str> = a
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["type"].as_str())
            .collect();
        assert_eq!(ids, ["mysql", "php", "web"]);
        let a = c
            .call(Method::GET, "/api/cartridges/web", None)
            .await
            .unwrap();
        assert_eq!(a.body["category"], "framework");
        // In use: refused, naming where.
        let a = c
            .call(Method::DELETE, "/api/cartridges/php", None)
            .await
            .unwrap();
        assert_eq!(a.status, 409);
        assert_eq!(a.body["path"], "cartridges[1]", "{:?}", a.body);
        let a = c
            .call(Method::DELETE, "/api/cartridges/web", None)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{:?}", a.body);
        let a = c
            .call(Method::GET, "/api/cartridges/web", None)
            .await
            .unwrap();
        assert_eq!(a.status, 404);
        let a = c.call(Method::GET, "/api/nothing", None).await.unwrap();
        assert_eq!(a.status, 404);
        let a = c
            .call(Method::GET, "/api/openapi.json", None)
            .await
            .unwrap();
        assert!(a.body["paths"]["/api/applications/{id}/deploy/{applicationPolicy}"].is_object());
        // A body over the limit is refused whole.
        let big = vec![b' '; BODY_LIMIT + 1];
        let a = c
            .call(Method::POST, "/api/cartridges", Some(big))
            .await
            .unwrap();
        assert_eq!(a.status, 413);
    }

    #[tokio::test]
    async fn deploy_undeploy_runtime_and_the_event_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (c, ctl) = server(dir.path()).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let ec = c.clone();
        tokio::spawn(async move {
            let _ = ec
                .events(Some(samples::APPLICATION), |e| tx.send(e).is_ok())
                .await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let app = samples::APPLICATION;
        let a = c
            .call(
                Method::GET,
                &format!("/api/applications/{app}/runtime"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(a.status, 404);
        let a = c
            .call(
                Method::POST,
                &format!("/api/applications/{app}/deploy/no-such-policy"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(a.status, 404, "{:?}", a.body);
        let path = format!(
            "/api/applications/{app}/deploy/{}",
            samples::APPLICATION_POLICY
        );
        let a = c.call(Method::POST, &path, None).await.unwrap();
        assert_eq!(a.status, 202, "{:?}", a.body);
        let a = c.call(Method::POST, &path, None).await.unwrap();
        assert_eq!(a.status, 409, "deployed twice: {:?}", a.body);
        let ev = rx.recv().await.unwrap();
        assert!(
            matches!(
                ev.kind,
                crate::events::EventKind::ApplicationDeployed { .. }
            ),
            "{ev:?}"
        );
        ctl.reconcile_once(crate::events::now_ms()).await;
        let a = c
            .call(
                Method::GET,
                &format!("/api/applications/{app}/runtime"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(a.body["status"], "deploying");
        assert_eq!(a.body["clusters"].as_array().unwrap().len(), 2);
        // A deployed application cannot be removed.
        let a = c
            .call(Method::DELETE, &format!("/api/applications/{app}"), None)
            .await
            .unwrap();
        assert_eq!(a.status, 409, "{:?}", a.body);
        let a = c
            .call(
                Method::POST,
                &format!("/api/applications/{app}/undeploy"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(a.status, 202, "{:?}", a.body);
    }

    #[tokio::test]
    async fn tcp_needs_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let ctl = controller(&Fake::default(), dir.path(), free_offset());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(serve_tcp(l, ctl, "s3cret".into()));
        let none = PaasClient::new(PaasHost::Tcp(addr.clone()), None);
        let a = none
            .call(Method::GET, "/api/cartridges", None)
            .await
            .unwrap();
        assert_eq!(a.status, 401);
        let wrong = PaasClient::new(PaasHost::Tcp(addr.clone()), Some("nope".into()));
        let a = wrong
            .call(Method::GET, "/api/cartridges", None)
            .await
            .unwrap();
        assert_eq!(a.status, 401);
        let right = PaasClient::new(PaasHost::Tcp(addr), Some("s3cret".into()));
        let a = right
            .call(Method::GET, "/api/cartridges", None)
            .await
            .unwrap();
        assert_eq!(a.status, 200);
    }
}
