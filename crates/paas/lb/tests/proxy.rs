//! The load balancer in front of real HTTP and TCP servers on loopback.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use strato_lb::{Algorithm, Pool, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A member: answers `/` with its name, `/slow?ms=N` after N ms, `/echo`
/// with the request body, `/headers` with Host and X-Forwarded-For.
async fn member(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: Request<hyper::body::Incoming>| async move {
                        let path = req.uri().path().to_string();
                        let query = req.uri().query().unwrap_or("").to_string();
                        let text = match path.as_str() {
                            "/slow" => {
                                let ms: u64 = query.trim_start_matches("ms=").parse().unwrap_or(0);
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                                name.to_string()
                            }
                            "/echo" => {
                                let b = req.into_body().collect().await.unwrap().to_bytes();
                                format!("{name}:{}", String::from_utf8_lossy(&b))
                            }
                            "/headers" => format!(
                                "target={} host={} xff={}",
                                req.uri(),
                                req.headers()
                                    .get("host")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("-"),
                                req.headers()
                                    .get("x-forwarded-for")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("-")
                            ),
                            _ => name.to_string(),
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// An address nothing listens on.
async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

async fn front(pool: Arc<Pool>, protocol: Protocol) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(strato_lb::serve(listener, pool, protocol));
    addr
}

fn client(h2: bool) -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(h2)
        .build_http()
}

async fn get(c: &Client<HttpConnector, Full<Bytes>>, url: String) -> (StatusCode, String) {
    let resp = c.get(url.parse().unwrap()).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn round_robin_over_http1_and_http2() {
    let pool = Arc::new(Pool::new("web", Algorithm::RoundRobin));
    pool.add("a", member("a").await);
    pool.add("b", member("b").await);
    let lb = front(Arc::clone(&pool), Protocol::Http).await;
    for h2 in [false, true] {
        let c = client(h2);
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (status, body) = get(&c, format!("http://{lb}/")).await;
            assert_eq!(status, StatusCode::OK);
            seen.push(body);
        }
        seen.sort();
        assert_eq!(seen, ["a", "a", "b", "b"], "h2 {h2}");
    }
    let s = pool.stats();
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.members.iter().map(|m| m.served).sum::<u64>(), 8);
}

#[tokio::test]
async fn bodies_and_headers_pass_through() {
    let pool = Arc::new(Pool::new("web", Algorithm::RoundRobin));
    pool.add("a", member("a").await);
    let lb = front(Arc::clone(&pool), Protocol::Http).await;
    let c = client(false);
    let req = Request::post(format!("http://{lb}/echo"))
        .body(Full::new(Bytes::from_static(b"hello member")))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"a:hello member");
    let (_, text) = get(&c, format!("http://{lb}/headers")).await;
    // Origin-form request target, the client's Host, its address appended.
    assert_eq!(text, format!("target=/headers host={lb} xff=127.0.0.1"));
}

#[tokio::test]
async fn unreachable_members_are_skipped_and_counted() {
    let pool = Arc::new(Pool::new("web", Algorithm::RoundRobin));
    pool.add("dead", dead_addr().await);
    pool.add("live", member("live").await);
    let lb = front(Arc::clone(&pool), Protocol::Http).await;
    let c = client(false);
    for _ in 0..4 {
        assert_eq!(
            get(&c, format!("http://{lb}/")).await,
            (StatusCode::OK, "live".into())
        );
    }
    let dead = pool
        .stats()
        .members
        .into_iter()
        .find(|m| m.id == "dead")
        .unwrap();
    assert!(dead.failures >= 1, "{dead:?}");
    assert!(pool.remove("live"));
    let (status, text) = get(&c, format!("http://{lb}/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(
        text.contains("no member of cluster web could be reached"),
        "{text}"
    );
    assert!(pool.remove("dead"));
    let (status, text) = get(&c, format!("http://{lb}/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("no active member"), "{text}");
}

#[tokio::test]
async fn in_flight_counts_until_the_response_ends_and_least_outstanding_uses_it() {
    let pool = Arc::new(Pool::new("web", Algorithm::LeastOutstanding));
    pool.add("a", member("a").await);
    pool.add("b", member("b").await);
    let lb = front(Arc::clone(&pool), Protocol::Http).await;
    let c = client(false);
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { get(&c, format!("http://{lb}/slow?ms=1500")).await })
    };
    while pool.in_flight() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let busy = pool
        .stats()
        .members
        .into_iter()
        .find(|m| m.in_flight == 1)
        .unwrap()
        .id;
    // While one member is busy, every quick request goes to the other.
    for _ in 0..5 {
        let (_, who) = get(&c, format!("http://{lb}/")).await;
        assert_ne!(who, busy);
    }
    assert_eq!(pool.in_flight(), 1);
    let (_, who) = slow.await.unwrap();
    assert_eq!(who, busy);
    assert_eq!(pool.in_flight(), 0);
}

#[tokio::test]
async fn draining_a_member_waits_for_its_requests_and_sends_it_nothing_new() {
    let pool = Arc::new(Pool::new("web", Algorithm::RoundRobin));
    pool.add("a", member("a").await);
    pool.add("b", member("b").await);
    let lb = front(Arc::clone(&pool), Protocol::Http).await;
    let c = client(false);
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { get(&c, format!("http://{lb}/slow?ms=800")).await })
    };
    while pool.in_flight() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let busy = pool
        .stats()
        .members
        .into_iter()
        .find(|m| m.in_flight == 1)
        .unwrap()
        .id;
    let drain = {
        let pool = Arc::clone(&pool);
        let busy = busy.clone();
        tokio::spawn(async move { pool.drain(&busy, Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..4 {
        let (_, who) = get(&c, format!("http://{lb}/")).await;
        assert_ne!(who, busy);
    }
    assert!(!drain.is_finished());
    assert_eq!(slow.await.unwrap(), (StatusCode::OK, busy.clone()));
    assert!(drain.await.unwrap());
}

async fn echo_member(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let mut out = name.as_bytes().to_vec();
                out.push(b':');
                out.extend_from_slice(&buf[..n]);
                let _ = s.write_all(&out).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn tcp_connections_go_round_robin_and_skip_dead_members() {
    let pool = Arc::new(Pool::new("db", Algorithm::RoundRobin));
    pool.add("x", echo_member("x").await);
    pool.add("dead", dead_addr().await);
    pool.add("y", echo_member("y").await);
    let lb = front(Arc::clone(&pool), Protocol::Tcp).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(lb).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        seen.push(out);
    }
    assert!(
        seen.iter().all(|s| s == "x:ping" || s == "y:ping"),
        "{seen:?}"
    );
    assert!(seen.contains(&"x:ping".to_string()) && seen.contains(&"y:ping".to_string()));
    // Connections are over: nothing in flight.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pool.in_flight(), 0);
}
