//! The stock docker CLI driving the server backed by the fake.

mod common;
use common::Daemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_info() {
    let d = Daemon::start().await;
    let out = d.docker_ok(&["version"]).await;
    assert!(out.contains("Server:"), "{out}");
    assert!(
        out.contains("API version:") && out.contains("1.44"),
        "{out}"
    );
    let out = d.docker_ok(&["info"]).await;
    assert!(out.contains("Server Version: 0.1.0"), "{out}");
    assert!(out.contains("Kernel Version: 6.0.0-fake"), "{out}");
    let out = d
        .docker_ok(&[
            "info",
            "--format",
            "{{.NCPU}} {{.OSType}} {{.CgroupVersion}}",
        ])
        .await;
    assert_eq!(out.trim(), "2 linux 2");
    assert!(d.fake.called("version") && d.fake.called("info"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_rm_prints_output_and_removes() {
    let d = Daemon::start().await;
    let (code, out, err) = d.docker(&["run", "--rm", "busybox", "echo", "hello"]).await;
    assert_eq!((code, out.as_str()), (0, "hello\n"), "{err}");
    assert_eq!(d.docker_ok(&["ps", "-aq"]).await, "");
    assert!(d.fake.called("container_wait"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_propagates_exit_code_and_stderr() {
    let d = Daemon::start().await;
    let (code, out, err) = d
        .docker(&[
            "run",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .await;
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "out\n");
    assert!(err.contains("err\n"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_interactive_stdin_half_close() {
    let d = Daemon::start().await;
    let (code, out, err) = d
        .docker_stdin(
            &["run", "-i", "--rm", "busybox", "cat"],
            Some("hi\nthere\n"),
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hi\nthere\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_start_wait_logs_inspect_ps_rm() {
    let d = Daemon::start().await;
    let id = d
        .docker_ok(&[
            "create", "--name", "web", "-l", "app=x", "busybox", "echo", "hi",
        ])
        .await;
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let ps = d
        .docker_ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .await;
    assert_eq!(ps.trim(), "web Created");
    d.docker_ok(&["start", "web"]).await;
    assert_eq!(d.docker_ok(&["wait", "web"]).await.trim(), "0");
    assert_eq!(d.docker_ok(&["logs", "web"]).await, "hi\n");
    let ts = d.docker_ok(&["logs", "-t", "web"]).await;
    assert!(ts.ends_with("Z hi\n") && ts.starts_with("20"), "{ts}");
    let st = d
        .docker_ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.Name}} {{.Config.Image}} {{.NetworkSettings.Networks.bridge.Gateway}}", "web"])
        .await;
    assert_eq!(st.trim(), "exited 0 /web busybox 172.17.0.1");
    let ps = d
        .docker_ok(&[
            "ps",
            "-a",
            "--filter",
            "label=app=x",
            "--format",
            "{{.ID}} {{.Image}}",
        ])
        .await;
    assert_eq!(ps.trim(), format!("{} busybox", &id[..12]));
    assert_eq!(
        d.docker_ok(&["ps", "-q", "--filter", "label=app=y"]).await,
        ""
    );
    // Duplicate name: 409 with Docker's wording.
    let (code, _, err) = d.docker(&["create", "--name", "web", "busybox"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("is already in use by container"), "{err}");
    d.docker_ok(&["rm", "web"]).await;
    assert_eq!(d.docker_ok(&["ps", "-aq"]).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stop_kill_and_errors() {
    let d = Daemon::start().await;
    d.docker_ok(&["run", "-d", "--name", "sl", "busybox", "sleep", "100"])
        .await;
    assert_eq!(
        d.docker_ok(&["exec", "sl", "echo", "in", "exec"]).await,
        "in exec\n"
    );
    let (code, _, _) = d.docker(&["exec", "sl", "sh", "-c", "exit 4"]).await;
    assert_eq!(code, 4);
    let (code, out, _) = d
        .docker_stdin(&["exec", "-i", "sl", "cat"], Some("piped\n"))
        .await;
    assert_eq!((code, out.as_str()), (0, "piped\n"));
    let top = d.docker_ok(&["top", "sl"]).await;
    assert!(top.contains("sleep 100"), "{top}");
    let (code, _, err) = d.docker(&["rm", "sl"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("container is running"), "{err}");
    d.docker_ok(&["stop", "-t", "1", "sl"]).await;
    let code = d
        .docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", "sl"])
        .await;
    assert_eq!(code.trim(), "143");
    assert!(d.fake.called("container_stop sl signal= t=Some(1)"));
    let (code, _, err) = d.docker(&["start", "nosuch"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("No such container: nosuch"), "{err}");
    let (code, _, err) = d.docker(&["inspect", "nosuch"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("No such object: nosuch"), "{err}");
    d.docker_ok(&["rm", "-f", "sl"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_tag_rmi_load_save_pull() {
    let d = Daemon::start().await;
    let out = d
        .docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .await;
    assert_eq!(out.trim(), "busybox:latest");
    d.docker_ok(&["tag", "busybox", "foo:1"]).await;
    let out = d.docker_ok(&["rmi", "foo:1"]).await;
    assert_eq!(out.trim(), "Untagged: foo:1");
    let tar = d.dir.path().join("img.tar");
    std::fs::write(&tar, vec![7u8; 100_000]).unwrap();
    let out = d.docker_ok(&["load", "-i", tar.to_str().unwrap()]).await;
    assert_eq!(out.trim(), "Loaded image: loaded:latest");
    assert!(d.fake.called("image_load bytes=100000"));
    let saved = d.dir.path().join("saved.tar");
    d.docker_ok(&["save", "-o", saved.to_str().unwrap(), "busybox"])
        .await;
    assert_eq!(std::fs::read(&saved).unwrap(), b"fake-tar:busybox");
    let out = d.docker_ok(&["pull", "alpine:3.20"]).await;
    assert!(
        out.contains("Downloaded newer image for alpine:3.20"),
        "{out}"
    );
    let (code, _, err) = d.docker(&["pull", "nosuchimage"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("pull access denied"), "{err}");
    let hist = d.docker_ok(&["history", "-q", "busybox"]).await;
    assert!(hist.contains("<missing>"), "{hist}");
    // run of an image that is not there: create 404, pull, create again.
    let (code, out, err) = d.docker(&["run", "--rm", "newimg", "echo", "pulled"]).await;
    assert_eq!((code, out.as_str()), (0, "pulled\n"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_and_volumes() {
    let d = Daemon::start().await;
    d.docker_ok(&["network", "create", "n1"]).await;
    let ls = d
        .docker_ok(&["network", "ls", "--format", "{{.Name}}"])
        .await;
    assert!(
        ls.lines().any(|l| l == "n1") && ls.contains("bridge"),
        "{ls}"
    );
    let (code, _, err) = d.docker(&["network", "create", "n1"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    d.docker_ok(&["network", "rm", "n1"]).await;
    d.docker_ok(&["volume", "create", "v1"]).await;
    let ls = d.docker_ok(&["volume", "ls", "-q"]).await;
    assert_eq!(ls.trim(), "v1");
    let mp = d
        .docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "v1"])
        .await;
    assert_eq!(mp.trim(), "/var/lib/strato/volumes/v1/_data");
    d.docker_ok(&["volume", "rm", "v1"]).await;
    let (code, _, err) = d.docker(&["volume", "inspect", "v1"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("no such volume"), "{err}");
}
