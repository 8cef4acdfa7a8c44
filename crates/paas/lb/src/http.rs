//! The HTTP reverse proxy: HTTP/1.1 and HTTP/2 (prior knowledge, "h2c")
//! from clients, HTTP/1.1 with pooled keep-alive connections to members.
//! Plain HTTP/1.1 requests take the byte-forwarding fast path in
//! [`crate::h1`]; this module serves everything else with hyper.
//!
//! Per request: hop-by-hop headers go (RFC 9110 §7.6.1), `Host` is kept (or
//! made from an HTTP/2 `:authority`), `X-Forwarded-For` gets the client's
//! address, and the member is chosen by the pool. A request without a body
//! whose member refuses the connection is retried on the next member; one
//! with a body cannot be replayed and answers 502.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::accept::Acceptor;
use crate::pool::{Lease, Pool};

/// What goes to a member: the client's body, or nothing (for a retry).
type UpstreamBody = Either<Incoming, Empty<Bytes>>;
/// What goes back to the client: the member's body (holding the lease), or
/// the proxy's own error page.
pub type ProxyBody = Either<LeasedBody, Full<Bytes>>;

/// A member's response body that keeps the request counted in flight until
/// it is fully sent or dropped, and gives its member connection back for
/// the next request once the body has been read to the end.
#[derive(Debug)]
pub struct LeasedBody {
    inner: Incoming,
    done: bool,
    conn: Option<(Arc<Upstreams>, SocketAddr, SendRequest<UpstreamBody>)>,
    _lease: Lease,
}

impl Body for LeasedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.done = true,
            Poll::Ready(Some(Err(_))) => self.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LeasedBody {
    fn drop(&mut self) {
        if self.done || self.inner.is_end_stream() {
            if let Some((upstreams, addr, conn)) = self.conn.take() {
                upstreams.checkin(addr, conn);
            }
        }
    }
}

/// Most idle connections kept per member (per proxy, i.e. per thread), on
/// either path.
pub(crate) const MAX_IDLE_PER_MEMBER: usize = 512;

/// Idle keep-alive connections to members, by member address, at most
/// [`MAX_IDLE_PER_MEMBER`] each: hyper senders for the general path, raw
/// sockets for the fast path. With one proxy per thread the lock is never
/// contended.
pub(crate) struct Idle<T> {
    by_member: Mutex<HashMap<SocketAddr, Vec<T>>>,
}

impl<T> Default for Idle<T> {
    fn default() -> Self {
        Idle {
            by_member: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> std::fmt::Debug for Idle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let map = self.by_member.lock().unwrap_or_else(|e| e.into_inner());
        let counts: HashMap<_, _> = map.iter().map(|(a, v)| (*a, v.len())).collect();
        f.debug_struct("Idle").field("by_member", &counts).finish()
    }
}

impl<T> Idle<T> {
    /// The most recently returned connection to `addr`, if any.
    pub(crate) fn pop(&self, addr: SocketAddr) -> Option<T> {
        self.by_member
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&addr)
            .and_then(|v| v.pop())
    }

    /// Keeps `conn` for a next request to `addr`, unless enough are kept.
    pub(crate) fn push(&self, addr: SocketAddr, conn: T) {
        let mut map = self.by_member.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_MEMBER {
            list.push(conn);
        }
    }
}

/// A new connection to a member: 5 s to connect (`TimedOut` after), no
/// Nagle delay.
pub(crate) async fn connect_member(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out after 5 s")
        })??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Keep-alive HTTP/1.1 connections to members, ready for a next request.
///
/// Hand-written rather than hyper-util's pooled client: a proxy knows when a
/// response body ends (it forwards it), so a connection goes back at once,
/// without that client's per-request pool key, timers and extra task hop.
#[derive(Debug, Default)]
pub struct Upstreams {
    idle: Idle<SendRequest<UpstreamBody>>,
}

enum ConnectError {
    Io(std::io::Error),
    Http(hyper::Error),
    Timeout,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Io(e) => write!(f, "connect: {e}"),
            ConnectError::Http(e) => write!(f, "HTTP handshake: {e}"),
            ConnectError::Timeout => write!(f, "connect: timed out after 5 s"),
        }
    }
}

impl Upstreams {
    /// An idle connection to `addr` (`true`: reused), or a new one.
    async fn checkout(
        &self,
        addr: SocketAddr,
    ) -> Result<(SendRequest<UpstreamBody>, bool), ConnectError> {
        while let Some(mut conn) = self.idle.pop(addr) {
            if conn.is_closed() {
                continue;
            }
            if conn.ready().await.is_ok() {
                return Ok((conn, true));
            }
        }
        let stream = connect_member(addr).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                ConnectError::Timeout
            } else {
                ConnectError::Io(e)
            }
        })?;
        let (conn, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(member = %addr, error = %e, "member connection ended");
            }
        });
        Ok((conn, false))
    }

    fn checkin(&self, addr: SocketAddr, conn: SendRequest<UpstreamBody>) {
        if !conn.is_closed() {
            self.idle.push(addr, conn);
        }
    }
}

/// The proxy of one pool; shared by all its connections.
#[derive(Debug)]
pub struct Proxy {
    pool: Arc<Pool>,
    upstreams: Arc<Upstreams>,
    raw: crate::h1::RawUpstreams,
}

/// Hop-by-hop headers, never forwarded (RFC 9110 §7.6.1, plus the
/// non-standard `proxy-connection` and `keep-alive`).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(n);
    }
}

fn error_page(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(text + "\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

impl Proxy {
    /// A proxy for `pool`, with its own member connections.
    pub fn new(pool: Arc<Pool>) -> Proxy {
        Proxy {
            pool,
            upstreams: Arc::new(Upstreams::default()),
            raw: crate::h1::RawUpstreams::default(),
        }
    }

    /// Proxies one request.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if !parts.headers.contains_key(header::HOST) {
            if let Some(host) = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                parts.headers.insert(header::HOST, host);
            }
        }
        let forwarded = match parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", peer.ip())).ok(),
            None => Some(peer_header(peer)),
        };
        if let Some(v) = forwarded {
            parts.headers.insert("x-forwarded-for", v);
        }
        // Origin form (`/path?query`): what servers expect from a client on
        // a direct connection (busybox httpd refuses absolute form).
        let target = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(target);
        parts.version = Version::HTTP_11;
        let mut up = Request::from_parts(parts, Either::Left(body));
        // A request without a body is sent as such, so that it can be sent
        // again (to another member, or on a fresh connection).
        if matches!(up.body(), Either::Left(b) if b.is_end_stream()) {
            *up.body_mut() = Either::Right(Empty::new());
        }
        // The request travels from attempt to attempt; an attempt that never
        // sent it gives it back.
        let mut pending = Some(up);
        let mut tried: Vec<SocketAddr> = Vec::new();
        loop {
            let Some(lease) = self.pool.pick(&tried) else {
                let status = if tried.is_empty() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::BAD_GATEWAY
                };
                let why = if tried.is_empty() {
                    format!(
                        "strato lb: cluster {} has no active member to take the request",
                        self.pool.name()
                    )
                } else {
                    format!(
                        "strato lb: no member of cluster {} could be reached (tried {})",
                        self.pool.name(),
                        tried.len()
                    )
                };
                return Ok(error_page(status, why));
            };
            let addr = lease.member().addr();
            let (mut conn, reused) = match self.upstreams.checkout(addr).await {
                Ok(c) => c,
                // Nothing was sent: any request can go to another member.
                Err(e) => {
                    tracing::debug!(pool = self.pool.name(), member = %addr, error = %e, "member unreachable; trying another");
                    lease.failed();
                    tried.push(addr);
                    continue;
                }
            };
            let Some(mut req) = pending.take() else {
                return Ok(error_page(
                    StatusCode::BAD_GATEWAY,
                    "strato lb: the request was lost between attempts".into(),
                ));
            };
            // HTTP/1.1 wants a Host; an HTTP/1.0 client may have sent none.
            if !req.headers().contains_key(header::HOST) {
                if let Ok(v) = HeaderValue::from_str(&addr.to_string()) {
                    req.headers_mut().insert(header::HOST, v);
                }
            }
            match conn.try_send_request(req).await {
                Ok(resp) => {
                    let (mut rparts, rbody) = resp.into_parts();
                    strip_hop_by_hop(&mut rparts.headers);
                    let body = LeasedBody {
                        inner: rbody,
                        done: false,
                        conn: Some((Arc::clone(&self.upstreams), addr, conn)),
                        _lease: lease,
                    };
                    return Ok(Response::from_parts(rparts, Either::Left(body)));
                }
                Err(mut e) => {
                    // A kept-alive connection the member closed meanwhile:
                    // the request never left; send it on a fresh one.
                    if reused {
                        if let Some(req) = e.take_message() {
                            tracing::debug!(member = %addr, error = %e.error(), "idle member connection was closed; retrying");
                            pending = Some(req);
                            continue;
                        }
                    }
                    lease.failed();
                    return Ok(error_page(
                        StatusCode::BAD_GATEWAY,
                        format!(
                            "strato lb: member {} ({addr}) of cluster {} failed: {}",
                            lease.member().id(),
                            self.pool.name(),
                            e.error()
                        ),
                    ));
                }
            }
        }
    }
}

/// The client's address as a header value, for X-Forwarded-For.
fn peer_header(peer: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.ip().to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Accepts connections and proxies their requests to `pool`.
pub(crate) async fn serve(mut acceptor: Acceptor, pool: Arc<Pool>) -> std::io::Result<()> {
    let proxy = Arc::new(Proxy::new(Arc::clone(&pool)));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, peer, live) = acceptor.next(pool.name()).await?;
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        let builder = builder.clone();
        tokio::spawn(async move {
            let _live = live;
            // HTTP/1.1 in the plain case on the fast path; the rest of the
            // connection on hyper from the first request it leaves.
            let (stream, read) = match crate::h1::serve(stream, peer, &proxy.pool, &proxy.raw).await
            {
                crate::h1::Outcome::Done => return,
                crate::h1::Outcome::Fallback(stream, read) => (stream, read),
            };
            let io = crate::h1::Rewind::new(stream, read);
            let svc = hyper::service::service_fn(move |req| {
                let proxy = Arc::clone(&proxy);
                async move { proxy.handle(req, peer).await }
            });
            if let Err(e) = builder.serve_connection(TokioIo::new(io), svc).await {
                tracing::debug!(%peer, error = %e, "client connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }
}
