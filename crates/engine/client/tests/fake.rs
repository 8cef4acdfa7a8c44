//! strato-client against the API server backed by strato-api's in-memory
//! FakeBackend, over real unix and TCP sockets: every request shape, the
//! hijacked streams, the demuxer on real frames, progress and errors.

use std::sync::Arc;

use futures::StreamExt;
use strato_api::testing::FakeBackend;
use strato_api::TcpAuth;
use strato_client::types::*;
use strato_client::{Client, Error, Host, StreamKind};
use tokio::io::AsyncWriteExt;

struct Server {
    _dir: tempfile::TempDir,
    client: Client,
    fake: FakeBackend,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("d.sock");
    let fake = FakeBackend::new();
    let listener = strato_api::bind_unix(&sock).unwrap();
    let backend: Arc<dyn strato_api::Backend> = Arc::new(fake.clone());
    let task = tokio::spawn(async move {
        let _ = strato_api::serve_unix_listener(listener, backend).await;
    });
    Server {
        client: Client::new(Host::Unix(sock), None),
        _dir: dir,
        fake,
        task,
    }
}

fn create(cmd: &[&str], stdin: bool, tty: bool) -> ContainerCreateConfig {
    let mut c = ContainerCreateConfig::default();
    c.config.image = "busybox".into();
    c.config.cmd = Some(cmd.iter().map(|s| s.to_string()).collect());
    c.config.open_stdin = stdin;
    c.config.stdin_once = stdin;
    c.config.tty = tty;
    c
}

async fn collect(mut out: strato_client::stream::Output) -> (String, String) {
    let (mut o, mut e) = (String::new(), String::new());
    while let Some(c) = out.next().await {
        let c = c.unwrap();
        match c.kind {
            StreamKind::Stderr => e.push_str(&String::from_utf8_lossy(&c.data)),
            _ => o.push_str(&String::from_utf8_lossy(&c.data)),
        }
    }
    (o, e)
}

#[tokio::test]
async fn run_flow_attach_wait_start_demuxes_and_exit_code() {
    let s = server().await;
    let c = &s.client;
    c.ping().await.unwrap();
    let id = c
        .container_create(
            Some("job"),
            &create(
                &["sh", "-c", "echo out; echo err >&2; exit 3"],
                false,
                false,
            ),
        )
        .await
        .unwrap()
        .id;
    let attach = AttachOptions {
        stream: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let session = c.container_attach(&id, &attach).await.unwrap();
    assert!(!session.tty);
    assert!(session.stdin.is_some(), "the connection was upgraded");
    let wait = c
        .container_wait(&id, WaitCondition::NextExit)
        .await
        .unwrap();
    c.container_start("job").await.unwrap();
    let (out, err) = collect(session.output).await;
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    assert_eq!(wait.await.unwrap().status_code, 3);
    // Logs come back demultiplexed too, and tail works.
    let logs = c
        .container_logs(
            &id,
            &LogsOptions {
                stdout: true,
                stderr: true,
                tail: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (o, e) = collect(logs).await;
    assert_eq!(format!("{o}{e}").lines().count(), 1);
    let list = c
        .container_list(&ContainerListOptions {
            all: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list[0].names, ["/job"]);
    assert_eq!(c.container_inspect("job").await.unwrap().state.exit_code, 3);
    // Starting twice is not an error (304), removing is.
    c.container_remove("job", RemoveOptions::default())
        .await
        .unwrap();
    assert!(s.fake.called("container_remove"));
}

#[tokio::test]
async fn stdin_half_close_ends_the_process() {
    let s = server().await;
    let c = &s.client;
    let id = c
        .container_create(None, &create(&["cat"], true, false))
        .await
        .unwrap()
        .id;
    let mut session = c
        .container_attach(
            &id,
            &AttachOptions {
                stream: true,
                stdin: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let wait = c
        .container_wait(&id, WaitCondition::NextExit)
        .await
        .unwrap();
    c.container_start(&id).await.unwrap();
    let mut stdin = session.stdin.take().unwrap();
    stdin.write_all(b"line one\nline two\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    let (out, _) = collect(session.output).await;
    assert_eq!(out, "line one\nline two\n");
    assert_eq!(wait.await.unwrap().status_code, 0);
}

#[tokio::test]
async fn exec_with_tty_is_raw_and_reports_its_exit_code() {
    let s = server().await;
    let c = &s.client;
    let id = c
        .container_create(None, &create(&["sleep", "30"], false, false))
        .await
        .unwrap()
        .id;
    c.container_start(&id).await.unwrap();
    let exec = c
        .exec_create(
            &id,
            &ExecConfig {
                attach_stdout: true,
                attach_stderr: true,
                tty: true,
                cmd: vec!["sh".into(), "-c".into(), "echo hi; exit 4".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
    let session = c
        .exec_start(
            &exec,
            &ExecStartConfig {
                tty: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(session.tty);
    let (out, _) = collect(session.output).await;
    assert_eq!(out, "hi\n");
    let mut code = None;
    for _ in 0..1000 {
        let i = c.exec_inspect(&exec).await.unwrap();
        if !i.running && i.exit_code.is_some() {
            code = i.exit_code;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(code, Some(4));
    c.container_kill(&id, Some("KILL")).await.unwrap();
}

#[tokio::test]
async fn daemon_errors_carry_the_message_and_status() {
    let s = server().await;
    let e = s.client.container_inspect("nosuch").await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(
        e.to_string(),
        "Error response from daemon: No such container: nosuch"
    );
    let e = s.client.image_inspect("nosuch:1").await.unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert!(e.to_string().contains("nosuch:1"), "{e}");
    // A daemon that is not there: the host is named.
    let gone = Client::new(Host::Unix("/nonexistent/strato.sock".into()), None);
    let e = gone.version().await.unwrap_err();
    assert!(matches!(e, Error::Connect { .. }));
    assert!(
        e.to_string().contains("unix:///nonexistent/strato.sock"),
        "{e}"
    );
}

#[tokio::test]
async fn progress_streams_pull_import_and_errors() {
    let s = server().await;
    let c = &s.client;
    let msgs = strato_client::check_progress(
        c.image_pull(&PullOptions {
            from_image: "alpine".into(),
            tag: "3".into(),
            ..Default::default()
        })
        .await
        .unwrap(),
    )
    .await
    .unwrap();
    assert!(msgs
        .iter()
        .any(|m| m.status.as_deref() == Some("Pull complete")));
    assert!(c.image_inspect("alpine:3").await.is_ok());
    let err = strato_client::check_progress(
        c.image_pull(&PullOptions {
            from_image: "nosuch/thing".into(),
            ..Default::default()
        })
        .await
        .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("pull access denied"), "{err}");
    let push = strato_client::check_progress(c.image_push("alpine", "3", None).await.unwrap())
        .await
        .unwrap();
    assert!(push.iter().any(|m| m.aux.is_some()));
    c.image_tag("alpine:3", "localhost:5000/mine", "v1")
        .await
        .unwrap();
    assert!(c.image_inspect("localhost:5000/mine:v1").await.is_ok());
    let deleted = c
        .image_remove("localhost:5000/mine:v1", false, false)
        .await
        .unwrap();
    assert!(!deleted.is_empty());
}

#[tokio::test]
async fn archive_put_stat_and_get_round_trip() {
    let s = server().await;
    let c = &s.client;
    let id = c
        .container_create(None, &create(&["sleep", "30"], false, false))
        .await
        .unwrap()
        .id;
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let stream = futures::stream::iter(
        body.chunks(7000)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    )
    .boxed();
    c.container_archive_put(
        &id,
        &ArchivePutOptions {
            path: "/tmp".into(),
            ..Default::default()
        },
        stream,
    )
    .await
    .unwrap();
    let st = c.container_archive_stat(&id, "/tmp").await.unwrap();
    assert_eq!(st.name, "tmp");
    assert!(st.mode & (1 << 31) != 0);
    let (st, mut got) = c.container_archive_get(&id, "/tmp").await.unwrap();
    assert_eq!(st.name, "tmp");
    let mut all = Vec::new();
    while let Some(b) = got.next().await {
        all.extend_from_slice(&b.unwrap());
    }
    assert_eq!(all, body);
    let e = c.container_archive_stat(&id, "/nope").await.unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("No such container:path: {id}:/nope")),
        "{e}"
    );
}

#[tokio::test]
async fn networks_volumes_events_info() {
    let s = server().await;
    let c = &s.client;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 1.0;
    let n = c
        .network_create(&NetworkCreateRequest {
            name: "net1".into(),
            driver: "bridge".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(c.network_inspect("net1").await.unwrap().id, n.id);
    assert!(c
        .network_list(&Filters::default())
        .await
        .unwrap()
        .iter()
        .any(|x| x.name == "net1"));
    c.network_remove("net1").await.unwrap();
    let v = c
        .volume_create(&VolumeCreateRequest {
            name: "vol1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(v.name, "vol1");
    assert_eq!(
        c.volume_list(&Filters::default())
            .await
            .unwrap()
            .volumes
            .len(),
        1
    );
    c.volume_remove("vol1", false).await.unwrap();
    assert!(c.volume_inspect("vol1").await.unwrap_err().is_not_found());
    c.container_create(Some("ev"), &create(&["true"], false, false))
        .await
        .unwrap();
    let until = since + 5.0;
    let events: Vec<EventMessage> = c
        .events(&EventsOptions {
            since: Some(since),
            until: Some(until),
            filters: Filters::default(),
        })
        .await
        .unwrap()
        .filter(|e| futures::future::ready(e.as_ref().is_ok_and(|e| e.kind == "container")))
        .take(1)
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind.as_str(), events[0].action.as_str()),
        ("container", "create")
    );
    assert!(!c.info().await.unwrap().os_type.is_empty());
    assert_eq!(c.version().await.unwrap().api_version, "1.44");
}

#[tokio::test]
async fn tcp_needs_the_bearer_token() {
    let fake = FakeBackend::new();
    let auth = TcpAuth::Token("s3cret".into());
    let l = strato_api::bind_tcp("127.0.0.1:0", &auth).await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(strato_api::serve_tcp_listener(l, Arc::new(fake), auth));
    let host = Host::parse(&format!("tcp://{addr}")).unwrap();
    let good = Client::new(host.clone(), Some("s3cret".into()));
    assert_eq!(good.version().await.unwrap().api_version, "1.44");
    for token in [None, Some("wrong".to_string())] {
        let e = Client::new(host.clone(), token)
            .version()
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(401));
        assert!(e.to_string().contains("bearer token"), "{e}");
    }
    task.abort();
}
