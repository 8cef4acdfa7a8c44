//! Conformance tests mirroring the areas of the OCI distribution-spec
//! conformance suite (pull, push, content discovery, content management,
//! referrers), each against a real server on a random loopback port.

mod common;
use common::*;

// ------------------------------------------------------------------ base

#[tokio::test]
async fn base_endpoint_answers_with_the_api_version_header() {
    let s = start().await;
    for path in ["/v2/", "/v2"] {
        let r = get(s.addr, path).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
    }
    for path in ["/v3/", "/v2x/a/tags/list", "/"] {
        assert_eq!(get(s.addr, path).await.status, 404, "{path}");
    }
}

// ------------------------------------------------------------------ pull

#[tokio::test]
async fn pull_manifests_by_tag_and_digest_and_blobs_with_headers() {
    let s = start().await;
    let (m, blobs) = push_image(s.addr, "pull/test", 1).await;
    let md = digest(&m);
    let r = put_manifest(s.addr, "pull/test", "v1", OCI_MANIFEST, &m).await;
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("docker-content-digest"), Some(md.as_str()));
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/pull/test/manifests/{md}").as_str())
    );

    for reference in ["v1", md.as_str()] {
        let r = get(s.addr, &format!("/v2/pull/test/manifests/{reference}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, m, "stored byte-exact");
        assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(r.header("docker-content-digest"), Some(md.as_str()));
        let h = req(
            s.addr,
            "HEAD",
            &format!("/v2/pull/test/manifests/{reference}"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(h.status, 200);
        assert!(h.body.is_empty());
        assert_eq!(
            h.header("content-length"),
            Some(m.len().to_string().as_str())
        );
        assert_eq!(h.header("docker-content-digest"), Some(md.as_str()));
    }
    let layer = random_bytes(1, 4096);
    let r = get(s.addr, &format!("/v2/pull/test/blobs/{}", blobs[1])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, layer);
    assert_eq!(r.header("docker-content-digest"), Some(blobs[1].as_str()));
    let h = req(
        s.addr,
        "HEAD",
        &format!("/v2/pull/test/blobs/{}", blobs[1]),
        &[],
        vec![],
    )
    .await;
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-length"), Some("4096"));
    assert!(h.body.is_empty());
}

#[tokio::test]
async fn pull_blob_ranges_give_206_and_416() {
    let s = start().await;
    let data = random_bytes(7, 3 << 20);
    let d = push_blob(s.addr, "r", &data).await;
    let path = format!("/v2/r/blobs/{d}");
    let r = req(s.addr, "GET", &path, &[("range", "bytes=100-199")], vec![]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[100..200]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-199/{}", data.len()).as_str())
    );
    let r = req(s.addr, "GET", &path, &[("range", "bytes=1048570-")], vec![]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[1048570..]);
    let r = req(s.addr, "GET", &path, &[("range", "bytes=-5")], vec![]).await;
    assert_eq!(r.body, &data[data.len() - 5..]);
    let r = req(
        s.addr,
        "GET",
        &path,
        &[("range", &format!("bytes={}-", data.len()))],
        vec![],
    )
    .await;
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", data.len()).as_str())
    );
    let r = get(s.addr, &path).await;
    assert_eq!(r.status, 200);
    assert_eq!(digest(&r.body), d, "a multi-chunk blob streams back whole");
}

#[tokio::test]
async fn pull_blobs_one_after_another_on_one_connection() {
    // Several blob responses in a row on one keep-alive connection (what
    // skopeo does) each carry exactly their own bytes.
    use http_body_util::{BodyExt, Empty};
    let s = start().await;
    let a = random_bytes(21, (1 << 20) + 12345);
    let b = random_bytes(22, 777);
    let (da, db) = (
        push_blob(s.addr, "r", &a).await,
        push_blob(s.addr, "r", &b).await,
    );
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let cases: Vec<(&str, String, Option<&str>, Vec<u8>)> = vec![
        ("GET", format!("/v2/r/blobs/{da}"), None, a.clone()),
        ("HEAD", format!("/v2/r/blobs/{db}"), None, vec![]),
        ("GET", format!("/v2/r/blobs/{db}"), None, b.clone()),
        (
            "GET",
            format!("/v2/r/blobs/{da}"),
            Some("bytes=262140-524300"),
            a[262140..=524300].to_vec(),
        ),
        (
            "GET",
            format!("/v2/r/blobs/{db}"),
            Some("bytes=-7"),
            b[770..].to_vec(),
        ),
        ("GET", format!("/v2/r/blobs/{da}"), None, a.clone()),
    ];
    for (method, path, range, want) in cases {
        send.ready().await.unwrap();
        let mut rb = hyper::Request::builder()
            .method(method)
            .uri(&path)
            .header("host", s.addr.to_string());
        if let Some(r) = range {
            rb = rb.header("range", r);
        }
        let r = send
            .send_request(rb.body(Empty::<bytes::Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert!(
            body[..] == want[..],
            "{method} {path} {range:?}: wrong body"
        );
    }
}

#[tokio::test]
async fn pull_unknown_things_gives_the_spec_errors() {
    let s = start().await;
    let unknown = digest(b"nothing");
    let r = get(s.addr, &format!("/v2/none/blobs/{unknown}")).await;
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    push_blob(s.addr, "some", b"x").await;
    let r = get(s.addr, "/v2/some/manifests/nope").await;
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = get(s.addr, &format!("/v2/some/manifests/{unknown}")).await;
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = get(s.addr, "/v2/none/manifests/latest").await;
    assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));
    let r = get(s.addr, "/v2/some/blobs/sha256:xyz").await;
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    // A blob of another repository is not visible here.
    let d = push_blob(s.addr, "other", b"private").await;
    let r = get(s.addr, &format!("/v2/some/blobs/{d}")).await;
    assert_eq!(r.status, 404);
}

// ------------------------------------------------------------------ push

#[tokio::test]
async fn push_monolithic_post_then_put() {
    let s = start().await;
    let data = random_bytes(2, 100_000);
    let d = digest(&data);
    let r = req(s.addr, "POST", "/v2/mono/blobs/uploads/", &[], vec![]).await;
    assert_eq!(r.status, 202);
    let loc = r.header("location").unwrap().to_string();
    assert!(r.header("docker-upload-uuid").is_some());
    let r = req(
        s.addr,
        "PUT",
        &format!("{loc}?digest={d}"),
        &[("content-type", "application/octet-stream")],
        data.clone(),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/mono/blobs/{d}").as_str())
    );
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
    assert_eq!(get(s.addr, &format!("/v2/mono/blobs/{d}")).await.body, data);
    // The session is gone once closed.
    let r = get(s.addr, &loc).await;
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    // The same blob again: already there, still 201.
    push_blob(s.addr, "mono", &data).await;
    assert!(files_under(&s.root.join("uploads")).is_empty());
}

#[tokio::test]
async fn push_chunked_with_status_out_of_order_and_cancel() {
    let s = start().await;
    let data = random_bytes(3, 250_000);
    let d = digest(&data);
    let r = req(s.addr, "POST", "/v2/chunk/ed/blobs/uploads/", &[], vec![]).await;
    let loc = r.header("location").unwrap().to_string();
    let uuid = r.header("docker-upload-uuid").unwrap().to_string();
    assert!(loc.ends_with(&uuid));
    let mut off = 0;
    for piece in data[..200_000].chunks(70_000) {
        let cr = format!("{}-{}", off, off + piece.len() - 1);
        let r = req(
            s.addr,
            "PATCH",
            &loc,
            &[
                ("content-range", &cr),
                ("content-type", "application/octet-stream"),
            ],
            piece.to_vec(),
        )
        .await;
        assert_eq!(r.status, 202, "{:?}", String::from_utf8_lossy(&r.body));
        off += piece.len();
        assert_eq!(r.header("range"), Some(format!("0-{}", off - 1).as_str()));
        assert_eq!(r.header("docker-upload-uuid"), Some(uuid.as_str()));
        assert!(r.header("location").is_some());
    }
    let st = get(s.addr, &loc).await;
    assert_eq!(st.status, 204);
    assert_eq!(st.header("range"), Some("0-199999"));
    // Out of order: a chunk that does not start at the offset.
    let r = req(
        s.addr,
        "PATCH",
        &loc,
        &[("content-range", "210000-219999")],
        data[210_000..220_000].to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (416, "BLOB_UPLOAD_INVALID"));
    assert_eq!(r.header("range"), Some("0-199999"));
    // A chunk repeated: also refused, offset unchanged.
    let r = req(
        s.addr,
        "PATCH",
        &loc,
        &[("content-range", "0-9")],
        data[..10].to_vec(),
    )
    .await;
    assert_eq!(r.status, 416);
    // Last chunk with the closing PUT.
    let r = req(
        s.addr,
        "PUT",
        &format!("{loc}?digest={d}"),
        &[("content-range", "200000-249999")],
        data[200_000..].to_vec(),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        get(s.addr, &format!("/v2/chunk/ed/blobs/{d}")).await.body,
        data
    );

    // Cancel: DELETE ends the session and removes its file.
    let r = req(s.addr, "POST", "/v2/chunk/ed/blobs/uploads/", &[], vec![]).await;
    let loc = r.header("location").unwrap().to_string();
    req(s.addr, "PATCH", &loc, &[], b"partial".to_vec()).await;
    assert_eq!(files_under(&s.root.join("uploads")).len(), 1);
    let r = req(s.addr, "DELETE", &loc, &[], vec![]).await;
    assert_eq!(r.status, 204);
    assert_eq!(get(s.addr, &loc).await.status, 404);
    assert!(files_under(&s.root.join("uploads")).is_empty());
}

#[tokio::test]
async fn push_streamed_patch_without_content_range() {
    let s = start().await;
    let data = random_bytes(4, 2_500_000);
    let d = digest(&data);
    let r = req(s.addr, "POST", "/v2/stream/blobs/uploads/", &[], vec![]).await;
    let loc = r.header("location").unwrap().to_string();
    let r = req(s.addr, "PATCH", &loc, &[], data.clone()).await;
    assert_eq!(r.status, 202);
    let r = req(s.addr, "PUT", &format!("{loc}?digest={d}"), &[], vec![]).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        digest(&get(s.addr, &format!("/v2/stream/blobs/{d}")).await.body),
        d
    );
}

#[tokio::test]
async fn push_cross_repository_mount_and_fallback() {
    let s = start().await;
    let d = push_blob(s.addr, "src/repo", b"shared layer").await;
    let r = req(
        s.addr,
        "POST",
        &format!("/v2/dst/blobs/uploads/?mount={d}&from=src/repo"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/dst/blobs/{d}").as_str())
    );
    assert_eq!(
        get(s.addr, &format!("/v2/dst/blobs/{d}")).await.body,
        b"shared layer"
    );
    // Unknown in the source: an upload session instead.
    let other = digest(b"absent");
    let r = req(
        s.addr,
        "POST",
        &format!("/v2/dst/blobs/uploads/?mount={other}&from=src/repo"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, 202);
    assert!(r
        .header("location")
        .unwrap()
        .contains("/v2/dst/blobs/uploads/"));
}

#[tokio::test]
async fn push_manifests_by_tag_and_digest_docker_and_index() {
    let s = start().await;
    let (oci, _) = push_image(s.addr, "img", 5).await;
    // A Content-Type that contradicts the body's mediaType is refused.
    let r = put_manifest(
        s.addr,
        "img",
        "x",
        "application/vnd.docker.distribution.manifest.v2+json",
        &oci,
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_INVALID"));
    // By digest, as Docker schema 2 (the body declares no mediaType; the header says it).
    let mut v: serde_json::Value = serde_json::from_slice(&oci).unwrap();
    v.as_object_mut().unwrap().remove("mediaType");
    let m = serde_json::to_vec(&v).unwrap();
    let md = digest(&m);
    let r = put_manifest(
        s.addr,
        "img",
        &md,
        "application/vnd.docker.distribution.manifest.v2+json",
        &m,
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    let g = get(s.addr, &format!("/v2/img/manifests/{md}")).await;
    assert_eq!(
        g.header("content-type"),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );
    // A wrong digest in the URL.
    let wrong = digest(b"other");
    let r = put_manifest(s.addr, "img", &wrong, OCI_MANIFEST, &m).await;
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    // An index over it, by tag.
    let idx = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": m.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}]
    }))
    .unwrap();
    let r = put_manifest(s.addr, "img", "multi", OCI_INDEX, &idx).await;
    assert_eq!(r.status, 201);
    let g = get(s.addr, "/v2/img/manifests/multi").await;
    assert_eq!(
        (g.body.clone(), g.header("content-type")),
        (idx.clone(), Some(OCI_INDEX))
    );
    // An index whose child is unknown.
    let bad = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": wrong, "size": 1}]
    }))
    .unwrap();
    let r = put_manifest(
        s.addr,
        "img",
        "bad",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        &bad,
    )
    .await;
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
    // Retagging moves the tag.
    let (m2, _) = push_image(s.addr, "img", 6).await;
    put_manifest(s.addr, "img", "multi", OCI_MANIFEST, &m2).await;
    assert_eq!(get(s.addr, "/v2/img/manifests/multi").await.body, m2);
}

#[tokio::test]
async fn push_manifest_with_missing_blob_or_bad_json_is_refused() {
    let s = start().await;
    let (m, _) = push_image(s.addr, "one", 8).await;
    // The same manifest in a repository that lacks its blobs.
    let r = put_manifest(s.addr, "two", "v1", OCI_MANIFEST, &m).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    for body in [
        &b"{not json"[..],
        br#"{"schemaVersion":1}"#,
        br#"{"schemaVersion":2,"mediaType":"x/y"}"#,
    ] {
        let r = put_manifest(s.addr, "one", "v1", OCI_MANIFEST, body).await;
        assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_INVALID"));
    }
    let r = put_manifest(s.addr, "one", "bad:tag:x", OCI_MANIFEST, &m).await;
    assert_eq!(r.status, 400);
    let r = put_manifest(s.addr, "one", ".hidden", OCI_MANIFEST, &m).await;
    assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_INVALID"));
}

// ------------------------------------------------------------------ discovery

#[tokio::test]
async fn content_discovery_tags_and_catalog_paginate() {
    let s = start().await;
    let (m, _) = push_image(s.addr, "tags/repo", 9).await;
    let tags = ["v10", "latest", "A", "v2", "b_1", "v1"];
    for t in tags {
        assert_eq!(
            put_manifest(s.addr, "tags/repo", t, OCI_MANIFEST, &m)
                .await
                .status,
            201
        );
    }
    let mut sorted: Vec<&str> = tags.to_vec();
    sorted.sort();
    let r = get(s.addr, "/v2/tags/repo/tags/list").await;
    assert_eq!(r.json()["name"], "tags/repo");
    assert_eq!(r.json()["tags"], serde_json::json!(sorted));
    assert!(r.header("link").is_none());
    let r = get(s.addr, "/v2/tags/repo/tags/list?n=2").await;
    assert_eq!(r.json()["tags"], serde_json::json!(&sorted[..2]));
    assert_eq!(
        r.header("link"),
        Some(
            format!(
                "</v2/tags/repo/tags/list?n=2&last={}>; rel=\"next\"",
                sorted[1]
            )
            .as_str()
        )
    );
    let r = get(
        s.addr,
        &format!("/v2/tags/repo/tags/list?n=2&last={}", sorted[1]),
    )
    .await;
    assert_eq!(r.json()["tags"], serde_json::json!(&sorted[2..4]));
    let r = get(
        s.addr,
        &format!("/v2/tags/repo/tags/list?n=10&last={}", sorted[4]),
    )
    .await;
    assert_eq!(r.json()["tags"], serde_json::json!(&sorted[5..]));
    assert!(r.header("link").is_none());
    let r = get(s.addr, "/v2/tags/repo/tags/list?n=0").await;
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    let r = get(s.addr, "/v2/nothing/here/tags/list").await;
    assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));

    push_blob(s.addr, "a/b/c", b"1").await;
    push_blob(s.addr, "zz", b"1").await;
    let r = get(s.addr, "/v2/_catalog").await;
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["a/b/c", "tags/repo", "zz"])
    );
    let r = get(s.addr, "/v2/_catalog?n=1&last=a/b/c").await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["tags/repo"]));
    assert!(r.header("link").unwrap().contains("last=tags/repo"));
}

// ------------------------------------------------------------------ management

#[tokio::test]
async fn content_management_deletes_tags_manifests_and_blobs() {
    let s = start().await;
    let (m, blobs) = push_image(s.addr, "mgmt", 10).await;
    let md = digest(&m);
    put_manifest(s.addr, "mgmt", "keep", OCI_MANIFEST, &m).await;
    put_manifest(s.addr, "mgmt", "drop", OCI_MANIFEST, &m).await;
    // Deleting a tag leaves the manifest.
    let r = req(s.addr, "DELETE", "/v2/mgmt/manifests/drop", &[], vec![]).await;
    assert_eq!(r.status, 202);
    assert_eq!(get(s.addr, "/v2/mgmt/manifests/drop").await.status, 404);
    assert_eq!(get(s.addr, "/v2/mgmt/manifests/keep").await.status, 200);
    // Deleting by digest removes it and its tags.
    let r = req(
        s.addr,
        "DELETE",
        &format!("/v2/mgmt/manifests/{md}"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(
        get(s.addr, &format!("/v2/mgmt/manifests/{md}"))
            .await
            .status,
        404
    );
    assert_eq!(get(s.addr, "/v2/mgmt/manifests/keep").await.status, 404);
    assert_eq!(
        get(s.addr, "/v2/mgmt/tags/list").await.json()["tags"],
        serde_json::json!([])
    );
    let r = req(
        s.addr,
        "DELETE",
        &format!("/v2/mgmt/manifests/{md}"),
        &[],
        vec![],
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    // Blobs.
    for b in &blobs {
        let r = req(
            s.addr,
            "DELETE",
            &format!("/v2/mgmt/blobs/{b}"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(r.status, 202);
        let r = get(s.addr, &format!("/v2/mgmt/blobs/{b}")).await;
        assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    }
    let r = req(
        s.addr,
        "DELETE",
        &format!("/v2/mgmt/blobs/{}", blobs[0]),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, 404);
}

// ------------------------------------------------------------------ referrers

#[tokio::test]
async fn referrers_list_filter_and_subject_header() {
    let s = start().await;
    let (m, _) = push_image(s.addr, "ref", 11).await;
    let md = digest(&m);
    put_manifest(s.addr, "ref", "v1", OCI_MANIFEST, &m).await;
    let empty_cfg = push_blob(s.addr, "ref", b"{}").await;
    let mut refs = Vec::new();
    for (i, at) in [
        "application/vnd.example.sbom",
        "application/vnd.example.sig",
    ]
    .iter()
    .enumerate()
    {
        let layer = push_blob(s.addr, "ref", format!("payload {i}").as_bytes()).await;
        let a = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": at,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_cfg, "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": 9}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": md, "size": m.len()},
            "annotations": {"n": i.to_string()},
        }))
        .unwrap();
        let ad = digest(&a);
        let r = put_manifest(s.addr, "ref", &ad, OCI_MANIFEST, &a).await;
        assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("oci-subject"), Some(md.as_str()));
        refs.push((ad, a.len(), *at));
    }
    let r = get(s.addr, &format!("/v2/ref/referrers/{md}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    let list = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    for (d, size, at) in &refs {
        let e = list
            .iter()
            .find(|e| e["digest"] == d.as_str())
            .expect("referrer listed");
        assert_eq!(e["size"], *size);
        assert_eq!(e["artifactType"], *at);
        assert_eq!(e["mediaType"], OCI_MANIFEST);
    }
    let r = get(
        s.addr,
        &format!("/v2/ref/referrers/{md}?artifactType=application/vnd.example.sig"),
    )
    .await;
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    let list = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], refs[1].0.as_str());
    // Deleting a referrer removes it from the list.
    req(
        s.addr,
        "DELETE",
        &format!("/v2/ref/manifests/{}", refs[0].0),
        &[],
        vec![],
    )
    .await;
    let r = get(s.addr, &format!("/v2/ref/referrers/{md}")).await;
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    // No referrers: an empty index, not 404.
    let r = get(s.addr, &format!("/v2/ref/referrers/{}", digest(b"none"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    let r = get(s.addr, "/v2/ref/referrers/sha256:nope").await;
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
}
