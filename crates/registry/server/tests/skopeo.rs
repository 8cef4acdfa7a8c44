//! Interop with skopeo (containers/image): OCI layouts built here are copied
//! into the registry and back out, and come out with identical digests.
//! Needs the `skopeo` binary (Debian package skopeo; .ci/run installs it).

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

use strato_registry::auth::{Auth, Htpasswd, Tokens};

fn put_blob(dir: &Path, data: &[u8]) -> serde_json::Value {
    let d = digest(data);
    let p = dir
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
    serde_json::json!({ "digest": d, "size": data.len() })
}

fn with_type(mut v: serde_json::Value, media_type: &str) -> serde_json::Value {
    v["mediaType"] = media_type.into();
    v
}

/// An image manifest with `layers` random layers in layout `dir`; returns its descriptor.
fn build_image(dir: &Path, seed: u64, layers: usize, arch: &str) -> serde_json::Value {
    let mut descs = Vec::new();
    for i in 0..layers {
        let data = random_bytes(seed * 100 + i as u64, 1_000_000 + i * 333_333);
        descs.push(with_type(
            put_blob(dir, &data),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ));
    }
    let diff_ids: Vec<_> = descs.iter().map(|d| d["digest"].clone()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": with_type(put_blob(dir, &config), "application/vnd.oci.image.config.v1+json"),
        "layers": descs,
    }))
    .unwrap();
    let mut d = with_type(put_blob(dir, &manifest), OCI_MANIFEST);
    d["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
    d
}

fn write_layout(dir: &Path, top: serde_json::Value, tag: &str) {
    let mut top = top;
    top["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": tag });
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [top] });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

async fn skopeo(args: Vec<String>) {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("skopeo")
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("run skopeo (apt-get install skopeo): {e}"))
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "skopeo failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn top_digest(layout: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    v["manifests"][0]["digest"].as_str().unwrap().to_string()
}

fn blob_names(layout: &Path) -> Vec<String> {
    files_under(&layout.join("blobs"))
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_copies_an_oci_layout_in_and_out_unchanged() {
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    let top = build_image(&src, 1, 3, "amd64");
    write_layout(&src, top, "v1");
    let dest = format!("docker://{}/skopeo/test:v1", s.addr);
    skopeo(vec![
        "copy".into(),
        "--preserve-digests".into(),
        "--dest-tls-verify=false".into(),
        format!("oci:{}:v1", src.display()),
        dest.clone(),
    ])
    .await;
    skopeo(vec![
        "copy".into(),
        "--preserve-digests".into(),
        "--src-tls-verify=false".into(),
        dest,
        format!("oci:{}:v1", dst.display()),
    ])
    .await;
    assert_eq!(top_digest(&src), top_digest(&dst));
    assert_eq!(blob_names(&src), blob_names(&dst));
    assert_blobs_verified(&dst);
    assert_eq!(
        get(s.addr, "/v2/skopeo/test/tags/list").await.json()["tags"],
        serde_json::json!(["v1"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_copies_a_multi_arch_index_with_token_auth() {
    let h = bcrypt::hash("pw-of-alice", 4).unwrap();
    let s = start_with(|c| {
        c.auth = Auth::Token {
            users: Htpasswd::parse(&format!("alice:{h}")).unwrap(),
            tokens: Tokens::new(b"skopeo test secret!", "strato").unwrap(),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    let amd = build_image(&src, 2, 2, "amd64");
    let arm = build_image(&src, 3, 2, "arm64");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [amd, arm]
    }))
    .unwrap();
    write_layout(&src, with_type(put_blob(&src, &index), OCI_INDEX), "multi");
    let dest = format!("docker://{}/multi/arch:multi", s.addr);
    let creds = "alice:pw-of-alice".to_string();
    // Wrong credentials fail.
    let bad = tokio::task::spawn_blocking({
        let (src, dest) = (src.clone(), dest.clone());
        move || {
            Command::new("skopeo")
                .args([
                    "copy",
                    "--all",
                    "--dest-tls-verify=false",
                    "--dest-creds",
                    "alice:nope",
                ])
                .arg(format!("oci:{}:multi", src.display()))
                .arg(dest)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!bad.status.success());
    skopeo(vec![
        "copy".into(),
        "--all".into(),
        "--preserve-digests".into(),
        "--dest-tls-verify=false".into(),
        "--dest-creds".into(),
        creds.clone(),
        format!("oci:{}:multi", src.display()),
        dest.clone(),
    ])
    .await;
    skopeo(vec![
        "copy".into(),
        "--all".into(),
        "--preserve-digests".into(),
        "--src-tls-verify=false".into(),
        "--src-creds".into(),
        creds,
        dest,
        format!("oci:{}:multi", dst.display()),
    ])
    .await;
    assert_eq!(top_digest(&src), top_digest(&dst));
    assert_eq!(blob_names(&src), blob_names(&dst));
    assert_blobs_verified(&dst);
}
