//! Authentication over real connections: htpasswd basic auth, the Docker
//! token protocol with the registry's own tokens, TLS, and the refusal to
//! serve anonymously beyond loopback.

mod common;
use common::*;

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use strato_registry::auth::{Auth, Htpasswd, Tokens};

fn users() -> Htpasswd {
    let a = bcrypt::hash("alice-pw", 4).unwrap();
    let b = bcrypt::hash("bob-pw", 4).unwrap();
    Htpasswd::parse(&format!("alice:{a}\nbob:{b}\n")).unwrap()
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

#[tokio::test]
async fn basic_auth_guards_every_endpoint() {
    let s = start_with(|c| c.auth = Auth::Basic(users())).await;
    for path in ["/v2/", "/v2/_catalog", "/v2/x/tags/list"] {
        let r = get(s.addr, path).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, "UNAUTHORIZED"),
            "{path}"
        );
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Basic realm="strato-registry""#)
        );
    }
    let r = req(
        s.addr,
        "GET",
        "/v2/",
        &[("authorization", &basic("alice", "wrong"))],
        vec![],
    )
    .await;
    assert_eq!(r.status, 401);
    let ok = basic("alice", "alice-pw");
    let r = req(s.addr, "GET", "/v2/", &[("authorization", &ok)], vec![]).await;
    assert_eq!(r.status, 200);
    let data = b"layer".to_vec();
    let r = req(
        s.addr,
        "POST",
        &format!("/v2/x/blobs/uploads/?digest={}", digest(&data)),
        &[("authorization", &ok)],
        data,
    )
    .await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn upload_sessions_belong_to_their_user() {
    let s = start_with(|c| c.auth = Auth::Basic(users())).await;
    let alice = basic("alice", "alice-pw");
    let bob = basic("bob", "bob-pw");
    let r = req(
        s.addr,
        "POST",
        "/v2/shared/blobs/uploads/",
        &[("authorization", &alice)],
        vec![],
    )
    .await;
    let loc = r.header("location").unwrap().to_string();
    let r = req(
        s.addr,
        "PATCH",
        &loc,
        &[("authorization", &bob)],
        b"bob's bytes".to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    let r = req(s.addr, "DELETE", &loc, &[("authorization", &bob)], vec![]).await;
    assert_eq!(r.status, 404);
    let r = req(s.addr, "GET", &loc, &[("authorization", &alice)], vec![]).await;
    assert_eq!((r.status, r.header("range")), (204, Some("0-0")));
}

#[tokio::test]
async fn token_auth_challenges_issues_and_checks_scopes() {
    let s = start_with(|c| {
        c.auth = Auth::Token {
            users: users(),
            tokens: Tokens::new(b"a secret of enough length", "strato-test").unwrap(),
        }
    })
    .await;
    let host = s.addr.to_string();
    let r = get(s.addr, "/v2/").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        format!(r#"Bearer realm="http://{host}/token",service="strato-test""#)
    );
    let r = req(s.addr, "POST", "/v2/team/app/blobs/uploads/", &[], vec![]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        format!(
            r#"Bearer realm="http://{host}/token",service="strato-test",scope="repository:team/app:pull,push""#
        )
    );
    // A hostile Host header does not get into the challenge.
    let r = req(s.addr, "GET", "/v2/", &[("host", "evil\",x=\"y")], vec![]).await;
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        r#"Bearer realm="http://localhost/token",service="strato-test""#
    );
    // No or wrong credentials: no token.
    let r = get(
        s.addr,
        "/token?service=strato-test&scope=repository:team/app:pull",
    )
    .await;
    assert_eq!(r.status, 401);
    let r = req(
        s.addr,
        "GET",
        "/token?service=strato-test",
        &[("authorization", &basic("alice", "no"))],
        vec![],
    )
    .await;
    assert_eq!(r.status, 401);
    // A pull token.
    let alice = basic("alice", "alice-pw");
    let r = req(
        s.addr,
        "GET",
        "/token?service=strato-test&scope=repository:team/app:pull",
        &[("authorization", &alice)],
        vec![],
    )
    .await;
    assert_eq!(r.status, 200);
    let pull = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    assert_eq!(r.json()["access_token"], r.json()["token"]);
    assert_eq!(
        req(s.addr, "GET", "/v2/", &[("authorization", &pull)], vec![])
            .await
            .status,
        200
    );
    let r = req(
        s.addr,
        "POST",
        "/v2/team/app/blobs/uploads/",
        &[("authorization", &pull)],
        vec![],
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains(r#"error="insufficient_scope""#));
    // A push token (two scopes in one request, as docker sends them).
    let r = req(
        s.addr,
        "GET",
        "/token?service=strato-test&scope=repository:team/app:pull,push&scope=registry:catalog:*",
        &[("authorization", &alice)],
        vec![],
    )
    .await;
    let push = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let data = b"layer".to_vec();
    let r = req(
        s.addr,
        "POST",
        &format!("/v2/team/app/blobs/uploads/?digest={}", digest(&data)),
        &[("authorization", &push)],
        data,
    )
    .await;
    assert_eq!(r.status, 201);
    let r = req(
        s.addr,
        "GET",
        "/v2/_catalog",
        &[("authorization", &push)],
        vec![],
    )
    .await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["team/app"]));
    // Not for another repository, nor for delete.
    let r = req(
        s.addr,
        "GET",
        "/v2/team/other/tags/list",
        &[("authorization", &push)],
        vec![],
    )
    .await;
    assert_eq!(r.status, 401);
    let r = req(
        s.addr,
        "DELETE",
        &format!("/v2/team/app/blobs/{}", digest(b"layer")),
        &[("authorization", &push)],
        vec![],
    )
    .await;
    assert_eq!(r.status, 401);
    // A forged token.
    let forged = format!("{}x", push);
    assert_eq!(
        req(s.addr, "GET", "/v2/", &[("authorization", &forged)], vec![])
            .await
            .status,
        401
    );
}

#[test]
fn anonymous_serving_is_loopback_only() {
    let any: std::net::SocketAddr = "0.0.0.0:5000".parse().unwrap();
    let lo: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let lo6: std::net::SocketAddr = "[::1]:5000".parse().unwrap();
    let e = strato_registry::check_exposure(&any, &Auth::Anonymous).unwrap_err();
    assert!(e.to_string().contains("--htpasswd"));
    assert!(strato_registry::check_exposure(&lo, &Auth::Anonymous).is_ok());
    assert!(strato_registry::check_exposure(&lo6, &Auth::Anonymous).is_ok());
    assert!(strato_registry::check_exposure(&any, &Auth::Basic(users())).is_ok());
}

#[tokio::test]
async fn tls_serves_with_a_given_certificate() {
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let acceptor = strato_registry::tls_acceptor(&cert, &key, None).unwrap();
    let mut c = strato_registry::Config::new(dir.path().join("root"));
    c.tls = true;
    let registry = strato_registry::Registry::open(c).unwrap();
    let listener = strato_registry::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(registry.serve(listener, Some(acceptor)));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let data = b"over tls".to_vec();
    let rq = hyper::Request::post(format!(
        "/v2/secure/blobs/uploads/?digest={}",
        digest(&data)
    ))
    .header("host", "localhost")
    .body(Full::new(Bytes::from(data.clone())))
    .unwrap();
    let r = send.send_request(rq).await.unwrap();
    assert_eq!(r.status(), 201);
    let rq = hyper::Request::get(format!("/v2/secure/blobs/{}", digest(&data)))
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = send.send_request(rq).await.unwrap();
    assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), data);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let rq = hyper::Request::get("/v2/")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert!(send.send_request(rq).await.is_err());

    // A key that does not fit the certificate is refused up front.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&key, other.key_pair.serialize_pem()).unwrap();
    let Err(e) = strato_registry::tls_acceptor(&cert, &key, None) else {
        panic!("a mismatched key must be refused");
    };
    assert!(e.to_string().contains("do not fit"), "{e}");
    task.abort();
}
