//! Hostile and broken input: refused with the spec's errors, and nothing
//! corrupt or stray is left on disk. Also storage behaviour: concurrent
//! pushes, restart cleanup, garbage collection while serving, quotas.

mod common;
use common::*;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn wrong_digest_is_refused_and_leaves_nothing() {
    let s = start().await;
    let data = random_bytes(20, 300_000);
    let wrong = digest(b"something else");
    // One-request upload.
    let r = req(
        s.addr,
        "POST",
        &format!("/v2/h/blobs/uploads/?digest={wrong}"),
        &[],
        data.clone(),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    // Session upload.
    let r = req(s.addr, "POST", "/v2/h/blobs/uploads/", &[], vec![]).await;
    let loc = r.header("location").unwrap().to_string();
    let r = req(
        s.addr,
        "PUT",
        &format!("{loc}?digest={wrong}"),
        &[],
        data.clone(),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(
        get(s.addr, &loc).await.status,
        404,
        "a failed upload is discarded"
    );
    // Malformed digests.
    for bad in ["sha256:abc", "md5:00", "nodigest"] {
        let r = req(
            s.addr,
            "POST",
            &format!("/v2/h/blobs/uploads/?digest={bad}"),
            &[],
            data.clone(),
        )
        .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "DIGEST_INVALID"),
            "{bad}"
        );
    }
    assert!(files_under(&s.root.join("blobs")).is_empty());
    assert!(files_under(&s.root.join("uploads")).is_empty());
    assert_eq!(
        get(s.addr, &format!("/v2/h/blobs/{wrong}")).await.status,
        404
    );
}

/// Sends a request whose body stops short of its Content-Length, then closes.
async fn truncated(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    declared: usize,
    sent: &[u8],
) {
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {declared}\r\n\r\n");
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(sent).await.unwrap();
    c.shutdown().await.unwrap();
    let mut sink = Vec::new();
    let _ = c.read_to_end(&mut sink).await;
}

#[tokio::test]
async fn truncated_uploads_leave_no_blob_and_can_resume() {
    let s = start().await;
    let data = random_bytes(21, 2_000_000);
    let d = digest(&data);
    truncated(
        s.addr,
        "POST",
        &format!("/v2/t/blobs/uploads/?digest={d}"),
        data.len(),
        &data[..700_000],
    )
    .await;
    assert!(files_under(&s.root.join("blobs")).is_empty());
    assert_eq!(get(s.addr, &format!("/v2/t/blobs/{d}")).await.status, 404);
    // A session keeps what arrived; the client resumes from its Range.
    let r = req(s.addr, "POST", "/v2/t/blobs/uploads/", &[], vec![]).await;
    let loc = r.header("location").unwrap().to_string();
    truncated(s.addr, "PATCH", &loc, data.len(), &data[..900_000]).await;
    let st = get(s.addr, &loc).await;
    assert_eq!(st.status, 204);
    let kept: usize = st
        .header("range")
        .unwrap()
        .split('-')
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        + 1;
    assert!(kept <= 900_000);
    let r = req(
        s.addr,
        "PUT",
        &format!("{loc}?digest={d}"),
        &[("content-range", &format!("{kept}-{}", data.len() - 1))],
        data[kept..].to_vec(),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        digest(&get(s.addr, &format!("/v2/t/blobs/{d}")).await.body),
        d
    );
    assert_blobs_verified(&s.root);
}

#[tokio::test]
async fn oversize_manifests_get_413() {
    let s = start().await;
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let r = put_manifest(s.addr, "big", "v1", OCI_MANIFEST, &big).await;
    assert_eq!((r.status, r.code().as_str()), (413, "SIZE_INVALID"));
    // Without a Content-Length (chunked transfer), the limit still holds.
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = "PUT /v2/big/manifests/v1 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-type: application/vnd.oci.image.manifest.v1+json\r\nconnection: close\r\n\r\n";
    c.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..5 {
        let _ = c
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await;
        let _ = c.write_all(&chunk).await;
        let _ = c.write_all(b"\r\n").await;
    }
    let _ = c.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(files_under(&s.root.join("blobs")).is_empty());
}

#[tokio::test]
async fn bad_names_are_refused_and_touch_nothing_outside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let s = start_at(&root, |_| {}).await;
    for path in [
        "/v2/../escape/blobs/uploads/",
        "/v2/a/../../escape/blobs/uploads/",
        "/v2/a/%2e%2e/%2e%2e/escape/blobs/uploads/",
        "/v2/UPPER/blobs/uploads/",
        "/v2/a//b/blobs/uploads/",
        "/v2/-a/blobs/uploads/",
        "/v2/_x/blobs/uploads/",
    ] {
        let r = req(s.addr, "POST", path, &[], vec![]).await;
        assert!(r.status == 400 || r.status == 404, "{path}: {}", r.status);
        if r.status == 400 {
            assert_eq!(r.code(), "NAME_INVALID", "{path}");
        }
    }
    let long = "a".repeat(256);
    let r = req(
        s.addr,
        "POST",
        &format!("/v2/{long}/blobs/uploads/"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.code(), "NAME_INVALID");
    // Tags must match the grammar too.
    let r = put_manifest(s.addr, "ok", "-bad", OCI_MANIFEST, b"{}").await;
    assert_eq!(r.status, 400);
    let outside: Vec<String> = files_under(dir.path())
        .into_iter()
        .filter(|f| !f.starts_with("root/"))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
    assert!(files_under(&root.join("repos")).is_empty());
}

#[tokio::test]
async fn someone_elses_upload_session_is_unknown() {
    let s = start().await;
    let r = req(s.addr, "POST", "/v2/alice/blobs/uploads/", &[], vec![]).await;
    let uuid = r.header("docker-upload-uuid").unwrap().to_string();
    // The same session id used through another repository.
    for (m, q) in [
        ("PATCH", ""),
        (
            "PUT",
            "?digest=sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ),
        ("GET", ""),
        ("DELETE", ""),
    ] {
        let r = req(
            s.addr,
            m,
            &format!("/v2/mallory/blobs/uploads/{uuid}{q}"),
            &[],
            b"evil".to_vec(),
        )
        .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (404, "BLOB_UPLOAD_UNKNOWN"),
            "{m}"
        );
    }
    // Made-up ids.
    let r = req(
        s.addr,
        "PATCH",
        "/v2/alice/blobs/uploads/00000000000000000000000000000000",
        &[],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = req(
        s.addr,
        "PATCH",
        "/v2/alice/blobs/uploads/..",
        &[],
        b"x".to_vec(),
    )
    .await;
    assert!(r.status == 404 || r.status == 400);
    // The owner's session is untouched.
    let st = get(s.addr, &format!("/v2/alice/blobs/uploads/{uuid}")).await;
    assert_eq!((st.status, st.header("range")), (204, Some("0-0")));
}

#[tokio::test]
async fn concurrent_pushes_of_one_blob_are_safe() {
    let s = start().await;
    let data = random_bytes(22, 3_000_000);
    let d = digest(&data);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (addr, data, d) = (s.addr, data.clone(), d.clone());
        tasks.push(tokio::spawn(async move {
            let repo = format!("c{}", i % 2);
            let r = req(
                addr,
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[],
                data,
            )
            .await;
            r.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    for repo in ["c0", "c1"] {
        assert_eq!(
            digest(&get(s.addr, &format!("/v2/{repo}/blobs/{d}")).await.body),
            d
        );
    }
    assert_eq!(files_under(&s.root.join("blobs")).len(), 1);
    assert!(files_under(&s.root.join("uploads")).is_empty());
    assert_blobs_verified(&s.root);
}

#[tokio::test]
async fn restart_cleans_stale_uploads_and_keeps_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let d;
    {
        let s = start_at(dir.path(), |_| {}).await;
        d = push_blob(s.addr, "keep", b"kept").await;
        let r = req(s.addr, "POST", "/v2/keep/blobs/uploads/", &[], vec![]).await;
        let loc = r.header("location").unwrap().to_string();
        req(s.addr, "PATCH", &loc, &[], b"half".to_vec()).await;
        assert_eq!(files_under(&dir.path().join("uploads")).len(), 1);
    }
    // What a crash leaves: a session file and a half-written small file.
    std::fs::write(dir.path().join("tmp/partial"), b"x").unwrap();
    let s = start_at(dir.path(), |_| {}).await;
    assert!(files_under(&dir.path().join("uploads")).is_empty());
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    assert_eq!(
        get(s.addr, &format!("/v2/keep/blobs/{d}")).await.body,
        b"kept"
    );
}

#[tokio::test]
async fn gc_sweeps_unreferenced_blobs_while_serving() {
    let s = start().await;
    let (m, blobs) = push_image(s.addr, "gc/app", 30).await;
    put_manifest(s.addr, "gc/app", "v1", OCI_MANIFEST, &m).await;
    let orphan = push_blob(s.addr, "gc/app", b"orphan layer").await;
    // An untagged manifest's blobs stay too.
    let (m2, blobs2) = push_image(s.addr, "gc/app", 31).await;
    put_manifest(s.addr, "gc/app", &digest(&m2), OCI_MANIFEST, &m2).await;
    // A generous grace period keeps everything.
    let r = s
        .registry
        .gc(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(r.blobs_deleted, 0);
    assert_eq!(
        get(s.addr, &format!("/v2/gc/app/blobs/{orphan}"))
            .await
            .status,
        200
    );
    // The orphan ages past the grace period; pushes go on during the run and
    // their fresh, not yet referenced layers are inside it.
    let hex = orphan.trim_start_matches("sha256:");
    let f = std::fs::File::options()
        .append(true)
        .open(s.root.join("blobs/sha256").join(&hex[..2]).join(hex))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    let addr = s.addr;
    let pusher = tokio::spawn(async move {
        for i in 0..5u64 {
            let (m, _) = push_image(addr, "gc/busy", 40 + i).await;
            assert_eq!(
                put_manifest(addr, "gc/busy", &format!("t{i}"), OCI_MANIFEST, &m)
                    .await
                    .status,
                201
            );
        }
    });
    let r = s
        .registry
        .gc(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    pusher.await.unwrap();
    assert!(r.blobs_deleted >= 1);
    assert_eq!(
        get(s.addr, &format!("/v2/gc/app/blobs/{orphan}"))
            .await
            .status,
        404
    );
    for b in blobs.iter().chain(&blobs2) {
        assert_eq!(
            get(s.addr, &format!("/v2/gc/app/blobs/{b}")).await.status,
            200,
            "{b}"
        );
    }
    assert_eq!(get(s.addr, "/v2/gc/app/manifests/v1").await.body, m);
    // A deleted manifest's blobs go on the next run.
    req(
        s.addr,
        "DELETE",
        &format!("/v2/gc/app/manifests/{}", digest(&m)),
        &[],
        vec![],
    )
    .await;
    s.registry.gc(std::time::Duration::ZERO).await.unwrap();
    assert_eq!(
        get(s.addr, &format!("/v2/gc/app/blobs/{}", blobs[1]))
            .await
            .status,
        404
    );
    assert_eq!(
        get(s.addr, &format!("/v2/gc/app/blobs/{}", blobs2[1]))
            .await
            .status,
        200
    );
    assert_blobs_verified(&s.root);
}

#[tokio::test]
async fn quota_per_repository_is_enforced() {
    let s = start_with(|c| c.quota = Some(10_000)).await;
    push_blob(s.addr, "q", &random_bytes(50, 6_000)).await;
    let more = random_bytes(51, 6_000);
    let r = req(
        s.addr,
        "POST",
        &format!("/v2/q/blobs/uploads/?digest={}", digest(&more)),
        &[],
        more.clone(),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (413, "DENIED"));
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("quota"));
    assert!(files_under(&s.root.join("uploads")).is_empty());
    // Another repository has its own quota.
    push_blob(s.addr, "q2", &more).await;
    // An upload is cut off as soon as it passes the quota, not after it filled the disk.
    let r = req(s.addr, "POST", "/v2/q3/blobs/uploads/", &[], vec![]).await;
    let loc = r.header("location").unwrap().to_string();
    let r = req(s.addr, "PATCH", &loc, &[], random_bytes(52, 2_000_000)).await;
    assert_eq!((r.status, r.code().as_str()), (413, "DENIED"));
    assert_eq!(get(s.addr, &loc).await.status, 404);
    assert!(files_under(&s.root.join("uploads")).is_empty());
    // Mounting counts too.
    let r = req(
        s.addr,
        "POST",
        &format!("/v2/q/blobs/uploads/?mount={}&from=q2", digest(&more)),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn blobs_are_flushed_in_the_background_and_rechecked_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad);
    {
        let s = start_at(dir.path(), |_| {}).await;
        good = push_blob(s.addr, "crash", &random_bytes(60, 100_000)).await;
        bad = push_blob(s.addr, "crash", &random_bytes(61, 100_000)).await;
        // The flusher makes them durable and drops their markers.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !files_under(&dir.path().join("unsynced")).is_empty() {
            assert!(std::time::Instant::now() < deadline, "blobs never flushed");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    // What a power loss can leave: two blobs still marked, one of them short.
    for d in [&good, &bad] {
        std::fs::write(dir.path().join("unsynced").join(d.replace(':', "-")), b"").unwrap();
    }
    let hex = bad.trim_start_matches("sha256:");
    let p = dir.path().join("blobs/sha256").join(&hex[..2]).join(hex);
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_len(4096).unwrap();
    let s = start_at(dir.path(), |_| {}).await;
    assert!(files_under(&dir.path().join("unsynced")).is_empty());
    assert_eq!(
        get(s.addr, &format!("/v2/crash/blobs/{good}")).await.status,
        200
    );
    let r = get(s.addr, &format!("/v2/crash/blobs/{bad}")).await;
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    assert_blobs_verified(&s.root);
    // Pushed again, it is whole.
    push_blob(s.addr, "crash", &random_bytes(61, 100_000)).await;
    assert_eq!(
        digest(&get(s.addr, &format!("/v2/crash/blobs/{bad}")).await.body),
        bad
    );
}
