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

/// A member speaking HTTP/1.1 by hand, for what a hyper member would not
/// do: `/chunked` (a chunked body with a trailer), `/close` (a body ended
/// by closing), `/once` (closes its kept-alive connection after answering,
/// without saying so), `/early` (a 103 before the answer), `/echo` (the
/// request body back); anything else answers the request head it got.
async fn wire_member() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < len {
                        let mut chunk = [0u8; 65536];
                        let n = s.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "body cut short");
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body: Vec<u8> = buf.drain(..len).collect();
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let reply: Vec<u8> = match path.as_str() {
                        "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n".to_vec(),
                        "/close" => b"HTTP/1.1 200 OK\r\nX-Kind: close\r\n\r\nuntil close".to_vec(),
                        "/once" => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce".to_vec(),
                        "/early" => b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly".to_vec(),
                        "/echo" => {
                            let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
                            r.extend_from_slice(&body);
                            r
                        }
                        _ => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{head}", head.len()).into_bytes(),
                    };
                    if s.write_all(&reply).await.is_err() || path == "/close" || path == "/once" {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Reads one response: its head and its body as framed (Content-Length,
/// chunked up to the end of its trailers, or until the connection closes;
/// none for `head_only`).
async fn read_response(s: &mut TcpStream, head_only: bool) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).await.unwrap(),
            1,
            "closed in a head: {buf:?}"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let mut body = Vec::new();
    if head_only || head.starts_with("HTTP/1.1 1") {
        return (head, body);
    }
    // hyper writes header names in lower case.
    let lower = head.to_ascii_lowercase();
    if let Some(len) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
    {
        body.resize(len.trim().parse().unwrap(), 0);
        s.read_exact(&mut body).await.unwrap();
    } else if lower.contains("transfer-encoding: chunked") {
        while !(body.ends_with(b"\r\n\r\n")
            && body.windows(3).any(|w| w == b"\n0\r" || w == b"0\r\n"))
        {
            assert_eq!(
                s.read(&mut byte).await.unwrap(),
                1,
                "closed in a chunked body"
            );
            body.push(byte[0]);
        }
    } else {
        s.read_to_end(&mut body).await.unwrap();
    }
    (head, body)
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_with_the_head_rewritten() {
    let pool = Arc::new(Pool::new("web", Algorithm::RoundRobin));
    pool.add("w", wire_member().await);
    let lb = front(Arc::clone(&pool), Protocol::Http).await;
    let mut s = TcpStream::connect(lb).await.unwrap();
    s.write_all(b"GET /first HTTP/1.1\r\nHost: app\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.1.1.1\r\n\r\nGET /second HTTP/1.1\r\nHost: app\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_response(&mut s, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "GET /first HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 10.1.1.1, 127.0.0.1\r\n\r\n"
    );
    let (_, body) = read_response(&mut s, false).await;
    assert!(String::from_utf8(body)
        .unwrap()
        .starts_with("GET /second HTTP/1.1\r\n"),);
    assert_eq!(pool.in_flight(), 0);
    assert_eq!(pool.stats().members[0].served, 2);
}

#[tokio::test]
async fn chunked_informational_and_close_delimited_responses_pass_through() {
    let pool = Arc::new(Pool::new("web", Algorithm::RoundRobin));
    pool.add("w", wire_member().await);
    let lb = front(Arc::clone(&pool), Protocol::Http).await;
    let mut s = TcpStream::connect(lb).await.unwrap();
    s.write_all(b"GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_response(&mut s, false).await;
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    );
    // Same connection: a 103 before the answer, then HEAD (no body).
    s.write_all(b"GET /early HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut s, false).await;
    assert!(
        head.starts_with("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n"),
        "{head}"
    );
    let (head, body) = read_response(&mut s, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, b"early");
    s.write_all(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut s, true).await;
    assert!(head.contains("Content-Length: "), "{head}");
    // A body ended by the member closing: the client is told, and closed.
    s.write_all(b"GET /close HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_response(&mut s, false).await;
    assert!(
        head.contains("X-Kind: close\r\n") && head.contains("Connection: close\r\n"),
        "{head}"
    );
    assert_eq!(body, b"until close");
    assert_eq!(pool.in_flight(), 0);
}

#[tokio::test]
async fn a_kept_alive_member_connection_closed_meanwhile_is_retried() {
    let pool = Arc::new(Pool::new("web", Algorithm::RoundRobin));
    pool.add("w", wire_member().await);
    let lb = front(Arc::clone(&pool), Protocol::Http).await;
    let mut s = TcpStream::connect(lb).await.unwrap();
    for _ in 0..3 {
        // The member answers /once and closes; the proxy kept the
        // connection and finds it closed on the next request.
        s.write_all(b"GET /once HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = read_response(&mut s, false).await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert_eq!(body, b"once");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pool.stats().members[0].failures, 0);
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let pool = Arc::new(Pool::new("web", Algorithm::RoundRobin));
    pool.add("w", wire_member().await);
    let lb = front(Arc::clone(&pool), Protocol::Http).await;
    let mut s = TcpStream::connect(lb).await.unwrap();
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(head.as_bytes()).await.unwrap();
        w.write_all(&payload).await.unwrap();
    };
    let recv = async {
        let mut buf = vec![0u8; 0];
        let mut chunk = vec![0u8; 65536];
        let want = payload.len();
        while buf.len() < want + 40 {
            let n = r.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                if buf.len() - (i + 4) == want {
                    return buf[i + 4..].to_vec();
                }
            }
        }
        panic!("more than asked for");
    };
    let ((), got) = tokio::join!(send, recv);
    assert!(got == payload, "echoed body differs");
}

#[tokio::test]
async fn http10_expect_and_chunked_requests_are_served_by_the_general_path() {
    let pool = Arc::new(Pool::new("web", Algorithm::RoundRobin));
    pool.add("a", member("a").await);
    let lb = front(Arc::clone(&pool), Protocol::Http).await;
    let mut s = TcpStream::connect(lb).await.unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).await.unwrap();
    assert!(
        all.starts_with("HTTP/1.0 200 OK\r\n") && all.ends_with("\r\n\r\na"),
        "{all}"
    );
    // A plain request first, then one the fast path leaves: the connection
    // moves over with the bytes already read.
    let mut s = TcpStream::connect(lb).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await
        .unwrap();
    let (_, body) = read_response(&mut s, false).await;
    assert_eq!(body, b"a");
    let (head, body) = read_response(&mut s, false).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, b"a:abc");
    let mut s = TcpStream::connect(lb).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    )
    .await
    .unwrap();
    let (head, _) = read_response(&mut s, false).await;
    assert!(head.starts_with("HTTP/1.1 100 Continue"), "{head}");
    s.write_all(b"hi").await.unwrap();
    let (_, body) = read_response(&mut s, false).await;
    assert_eq!(body, b"a:hi");
}

/// `serve_threads` in both worker modes: many clients at once, each with
/// several keep-alive requests, all answered, spread round-robin, and
/// nothing left in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_threads_answers_concurrent_clients_in_both_worker_modes() {
    for workers in [strato_lb::Workers::Shared, strato_lb::Workers::PerThread] {
        let pool = Arc::new(Pool::new("web", Algorithm::RoundRobin));
        pool.add("a", member("a").await);
        pool.add("b", member("b").await);
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        strato_lb::serve_threads(
            addr,
            Arc::clone(&pool),
            Protocol::Http,
            2,
            workers,
            strato_lb::Sched::Batch,
        )
        .unwrap();
        let clients: Vec<_> = (0..16)
            .map(|_| {
                tokio::spawn(async move {
                    let c = client(false);
                    let mut names = Vec::new();
                    for _ in 0..5 {
                        let (status, body) = get(&c, format!("http://{addr}/")).await;
                        assert_eq!(status, StatusCode::OK);
                        names.push(body);
                    }
                    names
                })
            })
            .collect();
        let mut seen = Vec::new();
        for c in clients {
            seen.extend(c.await.unwrap());
        }
        assert_eq!(seen.len(), 80, "{workers:?}");
        let a = seen.iter().filter(|n| *n == "a").count();
        assert_eq!(a, 40, "round-robin over both members ({workers:?})");
        // A worker thread releases a request after its last byte went out,
        // which may be just after the client read it.
        for _ in 0..1000 {
            if pool.stats().in_flight == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let s = pool.stats();
        assert_eq!(s.in_flight, 0, "{workers:?}");
        assert_eq!(s.members.iter().map(|m| m.served).sum::<u64>(), 80);
    }
}

/// `Threads`: listeners served on shared load-balancer threads (the
/// daemon's way) answer many clients at once, and a stopped or dropped one
/// closes its port while another keeps serving on the same threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_come_and_go_on_shared_lb_threads() {
    let threads = strato_lb::Threads::start(2, strato_lb::Sched::Normal).unwrap();
    let mut fronts = Vec::new();
    for name in ["a", "b"] {
        let pool = Arc::new(Pool::new(name, Algorithm::RoundRobin));
        pool.add(name, member(name).await);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = threads
            .serve(listener, Arc::clone(&pool), Protocol::Http)
            .unwrap();
        fronts.push((name, addr, pool, serving));
    }
    // Enough connections at once that both threads take some.
    for (name, addr, pool, _) in &fronts {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let url = format!("http://{addr}/");
                tokio::spawn(async move {
                    let c = client(false);
                    let mut got = Vec::new();
                    for _ in 0..3 {
                        got.push(get(&c, url.clone()).await);
                    }
                    got
                })
            })
            .collect();
        for c in clients {
            for (status, body) in c.await.unwrap() {
                assert_eq!((status, body.as_str()), (StatusCode::OK, *name));
            }
        }
        assert_eq!(pool.stats().members[0].served, 24);
    }
    let (_, gone, _, serving) = fronts.remove(0);
    serving.stop();
    // The port closes once both threads have dropped their accept loops.
    let mut refused = false;
    for _ in 0..500 {
        if std::net::TcpListener::bind(gone).is_ok() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "{gone} is still bound after stop");
    let (name, addr, _, _) = &fronts[0];
    let (status, body) = get(&client(false), format!("http://{addr}/")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, *name));
    // Dropping a `Serving` stops it too.
    let (_, addr, _, serving) = fronts.remove(0);
    drop(serving);
    let mut closed = false;
    for _ in 0..500 {
        if std::net::TcpListener::bind(addr).is_ok() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "{addr} is still bound after drop");
}
