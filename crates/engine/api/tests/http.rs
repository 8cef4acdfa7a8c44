//! Raw HTTP against the server: headers, versions, errors, limits, hijacking,
//! streaming, transport security.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::{demux, Daemon};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

fn req(method: &str, path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("Host", "docker")
        .body(Full::new(body.into()))
        .unwrap()
}

#[tokio::test]
async fn ping_headers_get_and_head() {
    let d = Daemon::start().await;
    for method in ["GET", "HEAD"] {
        let r = d.send(req(method, "/_ping", "")).await;
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert_eq!(h["Api-Version"], "1.44");
        assert_eq!(h["Ostype"], "linux");
        assert_eq!(h["Docker-Experimental"], "false");
        assert_eq!(h["Cache-Control"], "no-cache, no-store, must-revalidate");
        assert_eq!(h["Pragma"], "no-cache");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], if method == "GET" { &b"OK"[..] } else { b"" });
    }
}

#[tokio::test]
async fn version_prefixes() {
    let d = Daemon::start().await;
    for p in [
        "/version",
        "/v1.24/version",
        "/v1.44/version",
        "/v1.51/version",
    ] {
        let (s, v) = d.json("GET", p, "").await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(v["ApiVersion"], "1.44");
        assert_eq!(v["MinAPIVersion"], "1.24");
        assert_eq!(v["Os"], "linux");
    }
    let (s, v) = d.json("GET", "/v1.12/version", "").await;
    assert_eq!(s, 400);
    assert!(v["message"].as_str().unwrap().contains("too old"), "{v}");
    let (s, v) = d.json("GET", "/v1.52/version", "").await;
    assert_eq!(s, 400);
    assert!(v["message"].as_str().unwrap().contains("too new"), "{v}");
}

#[tokio::test]
async fn info_has_the_fields_clients_dereference() {
    let d = Daemon::start().await;
    let (s, v) = d.json("GET", "/v1.44/info", "").await;
    assert_eq!(s, 200);
    for k in [
        "ID",
        "Name",
        "ServerVersion",
        "KernelVersion",
        "OperatingSystem",
        "OSType",
        "NCPU",
        "MemTotal",
        "DockerRootDir",
        "CgroupVersion",
        "Plugins",
        "RegistryConfig",
        "Swarm",
        "SecurityOptions",
        "Runtimes",
        "DriverStatus",
        "ContainerdCommit",
    ] {
        assert!(!v[k].is_null(), "missing {k}: {v}");
    }
    assert_eq!(v["DriverStatus"][0][0], "Backing Filesystem");
    assert_eq!(v["Swarm"]["LocalNodeState"], "inactive");
    assert!(v["RegistryConfig"]["IndexConfigs"].is_object());
}

#[tokio::test]
async fn error_shapes_and_codes() {
    let d = Daemon::start().await;
    let (s, v) = d.json("GET", "/containers/nosuch/json", "").await;
    assert_eq!(
        (s, v["message"].as_str()),
        (404, Some("No such container: nosuch"))
    );
    let (s, v) = d.json("GET", "/v1.44/nothing/here", "").await;
    assert_eq!((s, v["message"].as_str()), (404, Some("page not found")));
    // Not part of a swarm: 503 as dockerd answers outside one; init is refused.
    let (s, v) = d.json("POST", "/v1.44/swarm/leave?force=1", "").await;
    assert_eq!(
        (s, v["message"].as_str()),
        (503, Some("This node is not part of a swarm"))
    );
    let (s, _) = d.json("GET", "/v1.44/services", "").await;
    assert_eq!(s, 503);
    let (s, _) = d.json("POST", "/v1.44/swarm/init", "{}").await;
    assert_eq!(s, 501);
    let (s, v) = d.json("GET", "/containers/json?filters=%7Bbad", "").await;
    assert_eq!(s, 400);
    assert!(v["message"]
        .as_str()
        .unwrap()
        .starts_with("invalid filters"));
    let (s, v) = d.json("POST", "/containers/create", "{not json").await;
    assert_eq!(s, 400);
    assert!(
        v["message"].as_str().unwrap().contains("invalid JSON"),
        "{v}"
    );
    let (s, v) = d
        .json(
            "POST",
            "/containers/create?name=a%2Fb",
            r#"{"Image":"busybox"}"#,
        )
        .await;
    assert_eq!(s, 400);
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("Invalid container name"));
    // 304 for start of a running container and stop of a stopped one.
    let (s, v) = d
        .json(
            "POST",
            "/containers/create?name=c1",
            r#"{"Image":"busybox","Cmd":["sleep","50"]}"#,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(d.call("POST", "/containers/c1/start", "").await.0, 204);
    assert_eq!(
        d.call("POST", "/containers/c1/start", "").await,
        (304, String::new())
    );
    assert_eq!(d.call("POST", "/containers/c1/stop?t=1", "").await.0, 204);
    assert_eq!(d.call("POST", "/containers/c1/stop", "").await.0, 304);
    let (s, v) = d.json("POST", "/containers/c1/kill", "").await;
    assert_eq!(s, 409, "{v}");
    let (s, _) = d
        .json("POST", "/containers/c1/wait?condition=bogus", "")
        .await;
    assert_eq!(s, 400);
    let (s, v) = d.json("GET", "/containers/c1/logs", "").await;
    assert_eq!(s, 400);
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("at least one stream"));
}

#[tokio::test]
async fn json_body_limit_is_413() {
    let d = Daemon::start().await;
    let big = format!(
        r#"{{"Image":"busybox","Env":["X={}"]}}"#,
        "a".repeat(11 << 20)
    );
    let (s, v) = d.json("POST", "/containers/create", &big).await;
    assert_eq!(s, 413);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("request body too large"),
        "{v}"
    );
    assert!(!d.fake.called("container_create"));
}

#[tokio::test]
async fn load_and_archive_put_stream_bodies_beyond_the_json_limit() {
    let d = Daemon::start().await;
    let body = vec![1u8; 24 << 20];
    let r = d
        .send(req("POST", "/images/load?quiet=1", body.clone()))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["Content-Type"], "application/json");
    let out = r.into_body().collect().await.unwrap().to_bytes();
    let msg: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(msg["stream"], "Loaded image: loaded:latest\n");
    assert!(d
        .fake
        .called(&format!("image_load bytes={} quiet=true", 24 << 20)));

    d.call(
        "POST",
        "/containers/create?name=arc",
        r#"{"Image":"busybox"}"#,
    )
    .await;
    let r = d
        .send(req("PUT", "/containers/arc/archive?path=/tmp", body))
        .await;
    assert_eq!(r.status(), 200);
    assert!(d.fake.called(&format!(
        "container_archive_put arc /tmp bytes={}",
        24 << 20
    )));
    let r = d
        .send(req("HEAD", "/containers/arc/archive?path=/tmp", ""))
        .await;
    assert_eq!(r.status(), 200);
    let stat = r.headers()["X-Docker-Container-Path-Stat"]
        .to_str()
        .unwrap();
    let stat: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(stat)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stat["name"], "tmp");
    assert_eq!(stat["mode"], (1u64 << 31) | 0o755);
    let (s, v) = d
        .json("HEAD", "/containers/arc/archive?path=/nope", "")
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, _) = d.json("GET", "/containers/arc/archive", "").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn import_pull_and_tag_routes() {
    let d = Daemon::start().await;
    let r = d
        .send(req(
            "POST",
            "/v1.44/images/create?fromSrc=-&repo=my%2Fimg&tag=v1",
            vec![0u8; 4096],
        ))
        .await;
    assert_eq!(r.status(), 200);
    let out = r.into_body().collect().await.unwrap().to_bytes();
    let msg: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(msg["status"].as_str().unwrap().starts_with("sha256:"));
    assert!(d.fake.called("image_import bytes=4096 repo=my/img tag=v1"));
    let (s, v) = d.json("GET", "/images/my/img:v1/json", "").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["RepoTags"][0], "my/img:v1");
    let (s, _) = d
        .json("POST", "/images/my/img:v1/tag?repo=other&tag=x", "")
        .await;
    assert_eq!(s, 201);
    let (s, v) = d.json("DELETE", "/images/other:x", "").await;
    assert_eq!((s, &v[0]["Untagged"]), (200, &serde_json::json!("other:x")));
    let (s, _) = d.json("POST", "/images/create", "").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn wait_headers_arrive_before_the_container_exits() {
    let d = Daemon::start().await;
    d.call(
        "POST",
        "/containers/create?name=w1",
        r#"{"Image":"busybox","Cmd":["sleep","100"]}"#,
    )
    .await;
    // Wait before start, as the CLI does: the status line must come now.
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        d.send(req(
            "POST",
            "/v1.44/containers/w1/wait?condition=next-exit",
            "",
        )),
    )
    .await
    .expect("wait headers before exit");
    assert_eq!(resp.status(), 200);
    assert_eq!(d.call("POST", "/containers/w1/start", "").await.0, 204);
    assert_eq!(
        d.call("POST", "/containers/w1/kill?signal=SIGKILL", "")
            .await
            .0,
        204
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["StatusCode"], 137);
    let (s, _) = d.json("POST", "/containers/nosuch/wait", "").await;
    assert_eq!(s, 404);
}

/// Sends a hijack request on a raw socket and returns the socket after the
/// response head, with the head.
async fn hijack(d: &Daemon, path: &str, body: &str) -> (UnixStream, String) {
    let mut s = UnixStream::connect(&d.sock).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "eof in head: {got:?}");
        got.push(b[0]);
    }
    (s, String::from_utf8(got).unwrap())
}

#[tokio::test]
async fn attach_hijack_with_stdin_half_close() {
    let d = Daemon::start().await;
    d.call(
        "POST",
        "/containers/create?name=cat1",
        r#"{"Image":"busybox","Cmd":["cat"],"OpenStdin":true,"StdinOnce":true,"AttachStdin":true}"#,
    )
    .await;
    let (mut s, head) = hijack(
        &d,
        "/v1.44/containers/cat1/attach?stream=1&stdin=1&stdout=1&stderr=1",
        "",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("upgrade: tcp") && lower.contains("connection: upgrade"),
        "{head}"
    );
    assert!(
        lower.contains("content-type: application/vnd.docker.multiplexed-stream"),
        "{head}"
    );
    assert_eq!(d.call("POST", "/containers/cat1/start", "").await.0, 204);
    s.write_all(b"hello\n").await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("connection closes after the container exits")
        .unwrap();
    assert_eq!(demux(&out), vec![(1, b"hello\n".to_vec())]);
    let (_, v) = d.json("GET", "/containers/cat1/json", "").await;
    assert_eq!(v["State"]["Status"], "exited");
}

/// `GET /containers/{id}/attach/ws`: output as unframed WebSocket
/// messages (binary from API 1.28, text before), messages to stdin, a close
/// frame closes stdin; a plain GET is told what the endpoint needs.
#[tokio::test]
async fn attach_over_a_websocket() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let d = Daemon::start().await;
    for (name, version, binary) in [("ws1", "v1.44", true), ("ws2", "v1.27", false)] {
        d.call(
            "POST",
            &format!("/containers/create?name={name}"),
            r#"{"Image":"busybox","Cmd":["cat"],"OpenStdin":true,"StdinOnce":true,"AttachStdin":true}"#,
        )
        .await;
        let s = UnixStream::connect(&d.sock).await.unwrap();
        let url = format!(
            "ws://docker/{version}/containers/{name}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1"
        );
        let (mut ws, resp) = tokio_tungstenite::client_async(url.as_str(), s)
            .await
            .expect("handshake");
        assert_eq!(resp.status(), 101);
        assert_eq!(
            d.call("POST", &format!("/containers/{name}/start"), "")
                .await
                .0,
            204
        );
        ws.send(Message::Binary(Bytes::from_static(b"hello\n")))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("output within 5 s")
            .unwrap()
            .unwrap();
        let expected = if binary {
            Message::Binary(Bytes::from_static(b"hello\n"))
        } else {
            Message::Text("hello\n".into())
        };
        assert_eq!(got, expected, "{version}: unframed, as dockerd sends it");
        // Closing the socket closes stdin: cat ends, the container exits.
        ws.close(None).await.unwrap();
        let (_, v) = d
            .json("POST", &format!("/containers/{name}/wait"), "")
            .await;
        assert_eq!(v["StatusCode"], 0);
    }
    let (status, v) = d
        .json("GET", "/containers/ws1/attach/ws?stream=1", "")
        .await;
    assert_eq!(status, 400);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("WebSocket handshake"),
        "{v}"
    );
}

/// docker-py parses the `101` head through a buffered reader, then reads
/// the raw socket: output sent before it read the head would sit in that
/// buffer and be lost. Here the client reads late (as a slow client does);
/// its first read must hold the head alone.
#[tokio::test]
async fn hijacked_output_waits_until_the_client_has_read_the_head() {
    let d = Daemon::start().await;
    d.call(
        "POST",
        "/containers/create?name=e2",
        r#"{"Image":"busybox","Cmd":["echo","hello"]}"#,
    )
    .await;
    d.call("POST", "/containers/e2/start", "").await;
    d.call("POST", "/containers/e2/wait", "").await;
    let mut s = UnixStream::connect(&d.sock).await.unwrap();
    s.write_all(
        b"POST /v1.44/containers/e2/attach?logs=1&stdout=1&stderr=1&stream=0 HTTP/1.1\r\n\
          Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    // Long enough for the server to answer and, were it not waiting, to
    // send the output behind the head.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut buf = vec![0u8; 8192];
    let n = s.read(&mut buf).await.unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(first.starts_with("HTTP/1.1 101"), "{first}");
    assert!(
        first.ends_with("\r\n\r\n"),
        "output came with the head: {first:?}"
    );
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the stream ends after the logs")
        .unwrap();
    assert_eq!(demux(&out), vec![(1, b"hello\n".to_vec())]);
}

#[tokio::test]
async fn attach_without_upgrade_streams_output_as_the_body() {
    let d = Daemon::start().await;
    d.call(
        "POST",
        "/containers/create?name=e1",
        r#"{"Image":"busybox","Cmd":["echo","x"]}"#,
    )
    .await;
    let attach = d.send(req(
        "POST",
        "/v1.41/containers/e1/attach?stream=1&stdout=1",
        "",
    ));
    let resp = tokio::time::timeout(Duration::from_secs(5), attach)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["Content-Type"],
        "application/vnd.docker.raw-stream"
    );
    d.call("POST", "/containers/e1/start", "").await;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(demux(&body), vec![(1, b"x\n".to_vec())]);
}

#[tokio::test]
async fn exec_hijack_tty_and_inspect() {
    let d = Daemon::start().await;
    d.call(
        "POST",
        "/containers/create?name=x1",
        r#"{"Image":"busybox","Cmd":["sleep","100"]}"#,
    )
    .await;
    let (s, v) = d
        .json(
            "POST",
            "/containers/x1/exec",
            r#"{"Cmd":["echo","tty"],"AttachStdout":true}"#,
        )
        .await;
    assert_eq!(s, 409);
    assert!(
        v["message"].as_str().unwrap().ends_with("is not running"),
        "{v}"
    );
    d.call("POST", "/containers/x1/start", "").await;
    let (s, v) = d
        .json(
            "POST",
            "/containers/x1/exec",
            r#"{"Cmd":["echo","tty"],"AttachStdout":true,"Tty":true}"#,
        )
        .await;
    assert_eq!(s, 201);
    let id = v["Id"].as_str().unwrap().to_string();
    let (s, v) = d.json("GET", &format!("/exec/{id}/json"), "").await;
    assert_eq!(
        (s, v["Running"].as_bool(), v["ExitCode"].is_null()),
        (200, Some(false), true)
    );
    let (mut sock, head) = hijack(
        &d,
        &format!("/v1.44/exec/{id}/start"),
        r#"{"Detach":false,"Tty":true}"#,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("application/vnd.docker.raw-stream"));
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, b"tty\n", "a TTY exec is not framed");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, v) = d.json("GET", &format!("/exec/{id}/json"), "").await;
    assert_eq!(v["ExitCode"], 0);
    assert_eq!(v["ProcessConfig"]["entrypoint"], "echo");
    let (s, _) = d.json("POST", &format!("/exec/{id}/start"), "{}").await;
    assert_eq!(s, 409, "second start");
    let (s, _) = d.json("GET", "/exec/nosuch/json", "").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn logs_are_multiplexed_with_tail() {
    let d = Daemon::start().await;
    d.call(
        "POST",
        "/containers/create?name=l1",
        r#"{"Image":"busybox","Cmd":["sh","-c","echo a; echo b >&2; echo c"]}"#,
    )
    .await;
    d.call("POST", "/containers/l1/start", "").await;
    d.call("POST", "/containers/l1/wait", "").await;
    let r = d
        .send(req(
            "GET",
            "/v1.44/containers/l1/logs?stdout=1&stderr=1",
            "",
        ))
        .await;
    assert_eq!(
        r.headers()["Content-Type"],
        "application/vnd.docker.multiplexed-stream"
    );
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        demux(&body),
        vec![
            (1, b"a\n".to_vec()),
            (2, b"b\n".to_vec()),
            (1, b"c\n".to_vec())
        ]
    );
    let (_, body) = d
        .call("GET", "/containers/l1/logs?stdout=1&tail=1", "")
        .await;
    assert_eq!(demux(body.as_bytes()), vec![(1, b"c\n".to_vec())]);
}

#[tokio::test]
async fn stats_top_list_filters_and_events() {
    let d = Daemon::start().await;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    d.call(
        "POST",
        "/containers/create?name=st1",
        r#"{"Image":"busybox","Cmd":["sleep","100"],"Labels":{"k":"v"}}"#,
    )
    .await;
    d.call("POST", "/containers/st1/start", "").await;
    let (s, v) = d
        .json("GET", "/containers/st1/stats?stream=false", "")
        .await;
    assert_eq!(s, 200);
    assert!(v["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap() > 0);
    assert_eq!(v["memory_stats"]["limit"], 1u64 << 30);
    assert_eq!(v["name"], "/st1");
    let (s, v) = d.json("GET", "/containers/st1/top?ps_args=aux", "").await;
    assert_eq!(s, 200);
    assert_eq!(v["Titles"][1], "PID");
    let f = "%7B%22label%22%3A%7B%22k%3Dv%22%3Atrue%7D%7D"; // {"label":{"k=v":true}}
    let (_, v) = d
        .json("GET", &format!("/containers/json?filters={f}"), "")
        .await;
    assert_eq!(v[0]["Names"][0], "/st1");
    assert_eq!(v[0]["State"], "running");
    let (_, v) = d
        .json(
            "GET",
            "/containers/json?filters=%7B%22status%22%3A%5B%22exited%22%5D%7D",
            "",
        )
        .await;
    assert_eq!(v, serde_json::json!([]));
    let until = since + 3;
    let (s, body) = d
        .call("GET", &format!("/events?since={since}&until={until}&filters=%7B%22type%22%3A%5B%22container%22%5D%7D"), "")
        .await;
    assert_eq!(s, 200);
    let actions: Vec<String> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["Action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(actions, ["create", "start"]);
}

#[tokio::test]
async fn auth_networks_volumes_prune() {
    let d = Daemon::start().await;
    let (s, v) = d
        .json("POST", "/auth", r#"{"username":"u","password":"p"}"#)
        .await;
    assert_eq!((s, v["Status"].as_str()), (200, Some("Login Succeeded")));
    let (s, _) = d
        .json("POST", "/auth", r#"{"username":"u","password":"wrong"}"#)
        .await;
    assert_eq!(s, 401);
    let (s, v) = d
        .json(
            "POST",
            "/networks/create",
            r#"{"Name":"n2","Driver":"bridge"}"#,
        )
        .await;
    assert_eq!(s, 201);
    let nid = v["Id"].as_str().unwrap().to_string();
    d.call(
        "POST",
        "/containers/create?name=nc",
        r#"{"Image":"busybox"}"#,
    )
    .await;
    let (s, _) = d
        .json(
            "POST",
            &format!("/networks/{nid}/connect"),
            r#"{"Container":"nc"}"#,
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = d.json("GET", "/networks/n2", "").await;
    assert_eq!(v["Containers"].as_object().unwrap().len(), 1);
    let (s, _) = d.json("DELETE", "/networks/bridge", "").await;
    assert_eq!(s, 403);
    let (s, v) = d
        .json(
            "POST",
            "/volumes/create",
            r#"{"Name":"vv","Labels":{"a":"b"}}"#,
        )
        .await;
    assert_eq!((s, v["Name"].as_str()), (201, Some("vv")));
    let (_, v) = d.json("GET", "/volumes", "").await;
    assert_eq!(v["Volumes"][0]["Name"], "vv");
    assert!(v["Warnings"].is_array());
    let (_, v) = d.json("POST", "/volumes/prune", "").await;
    assert_eq!(v["VolumesDeleted"][0], "vv");
    let (_, v) = d.json("POST", "/containers/prune", "").await;
    assert_eq!(v["ContainersDeleted"].as_array().unwrap().len(), 1);
    let (s, _) = d.json("DELETE", "/volumes/vv", "").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn unix_socket_mode_and_stale_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let l1 = strato_api::bind_unix(&sock).unwrap();
    drop(l1); // leaves a stale socket file behind
    assert!(std::fs::metadata(&sock).unwrap().file_type().is_socket());
    let _l2 = strato_api::bind_unix(&sock).expect("stale socket replaced");
    let m = std::fs::metadata(&sock).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = strato_api::bind_unix(&file).unwrap_err();
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

#[tokio::test]
async fn tcp_requires_the_bearer_token() {
    use strato_api::TcpAuth;
    let fake = strato_api::testing::FakeBackend::new();
    let err = strato_api::bind_tcp("127.0.0.1:0", &TcpAuth::Token(String::new()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty bearer token"));
    // TLS that checks neither a client certificate nor a token lets anyone in.
    let acceptor = self_signed_acceptor();
    let open_tls = TcpAuth::Tls {
        acceptor: acceptor.clone(),
        client_certs: false,
        token: None,
    };
    let err = strato_api::bind_tcp("127.0.0.1:0", &open_tls)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--tlsverify"), "{err}");
    let err = strato_api::bind_tcp(
        "127.0.0.1:0",
        &TcpAuth::Tls {
            acceptor,
            client_certs: false,
            token: Some(String::new()),
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("empty bearer token"), "{err}");
    let auth = TcpAuth::Token("s3cret-token".into());
    let l = strato_api::bind_tcp("127.0.0.1:0", &auth).await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(strato_api::serve_tcp_listener(l, Arc::new(fake), auth));
    for (hdr, want) in [
        (None, 401),
        (Some("Bearer wrong"), 401),
        (Some("Bearer s3cret-toke"), 401),
        (Some("Basic s3cret-token"), 401),
        (Some("Bearer s3cret-token"), 200),
    ] {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let resp = ping_over(s, hdr).await.unwrap();
        assert_eq!(resp.status(), want, "{hdr:?}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if want == 401 {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(v["message"].as_str().unwrap().contains("bearer token"));
        }
    }
    task.abort();
}

/// A TLS acceptor for a self-signed `localhost` certificate, and the
/// certificate, without client authentication.
fn self_signed() -> (tokio_rustls::TlsAcceptor, rcgen::CertifiedKey) {
    use tokio_rustls::rustls;
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.key_pair.serialize_der()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(cfg)), ck)
}

fn self_signed_acceptor() -> tokio_rustls::TlsAcceptor {
    self_signed().0
}

#[tokio::test]
async fn tls_with_a_token_serves_inside_tls_only() {
    use strato_api::TcpAuth;
    use tokio_rustls::rustls;
    let (acceptor, ck) = self_signed();
    let auth = TcpAuth::Tls {
        acceptor,
        client_certs: false,
        token: Some("tls-token".into()),
    };
    let l = strato_api::bind_tcp("127.0.0.1:0", &auth).await.unwrap();
    let addr = l.local_addr().unwrap();
    let fake = strato_api::testing::FakeBackend::new();
    let task = tokio::spawn(strato_api::serve_tcp_listener(l, Arc::new(fake), auth));

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
    for (hdr, want) in [(None, 401), (Some("Bearer tls-token"), 200)] {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        let resp = ping_over(tls, hdr).await.unwrap();
        assert_eq!(resp.status(), want, "{hdr:?}");
    }
    // Plain HTTP to the TLS port gets no HTTP answer.
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(ping_over(s, Some("Bearer tls-token")).await.is_err());
    task.abort();
}

/// `GET /_ping` on a fresh connection `io`, with `Authorization: auth`.
async fn ping_over<IO>(
    io: IO,
    auth: Option<&str>,
) -> hyper::Result<hyper::Response<hyper::body::Incoming>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    let mut r = Request::builder().uri("/_ping").header("Host", "x");
    if let Some(h) = auth {
        r = r.header("Authorization", h);
    }
    sender
        .send_request(r.body(Full::new(Bytes::new())).unwrap())
        .await
}

#[tokio::test]
async fn build_prune_reports_an_empty_cache() {
    let d = Daemon::start().await;
    let r = d.send(req("POST", "/v1.44/build/prune", "")).await;
    assert_eq!(r.status(), 200);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["SpaceReclaimed"], 0);
    assert_eq!(v["CachesDeleted"], serde_json::json!([]));
}
