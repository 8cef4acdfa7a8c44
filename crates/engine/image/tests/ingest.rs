//! `ImageStore::ingest`: images fetched from a registry enter the store all
//! at once, or not at all.

mod common;

use std::fs;
use std::path::PathBuf;

use common::*;
use serde_json::json;
use strato_image::{Digest, Error, ImageStore, LayerStep, PulledImage, Reference, VerifiedBlob};

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = ImageStore::open(&dir.path().join("store")).unwrap();
    (dir, s)
}

/// Writes `data` where a download would go and describes it.
fn downloaded(ingest: &mut strato_image::Ingest, data: &[u8]) -> VerifiedBlob {
    let path: PathBuf = ingest.download_path();
    fs::write(&path, data).unwrap();
    VerifiedBlob {
        digest: Digest::of(data),
        size: data.len() as u64,
        path,
    }
}

fn manifest(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": sha(config), "size": config.len()},
        "layers": layers.iter().map(|l| json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "digest": sha(l), "size": l.len(),
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn index_len(s: &ImageStore) -> usize {
    s.list().unwrap().len()
}

fn staging_empty(s: &ImageStore) -> bool {
    fs::read_dir(s.root().join("tmp")).unwrap().next().is_none()
}

#[test]
fn a_pulled_image_is_committed_with_its_exact_manifest() {
    let (_d, s) = store();
    let plain = layer(&[
        E::Dir("etc", 0o755),
        E::File("etc/hostname", b"pulled\n", 0o644),
    ]);
    let gz = gzip(&plain);
    let cfg = config(&[&plain], &["sh"]);
    let m = manifest(&cfg, &[&gz]);
    let mut ingest = s.ingest().unwrap();
    let config = downloaded(&mut ingest, &cfg);
    let l = downloaded(&mut ingest, &gz);
    let mut steps = Vec::new();
    let id = ingest
        .commit(
            PulledImage {
                manifest: m.clone(),
                config,
                layers: vec![l],
                tag: Some(Reference::parse("localhost:5000/app:v1").unwrap()),
                // As through an image index: a digest other than the manifest's.
                repo_digest: Some(
                    Reference::parse(&format!("localhost:5000/app@{}", Digest::of(b"index")))
                        .unwrap(),
                ),
            },
            &mut |st| steps.push(st),
        )
        .unwrap();
    assert_eq!(
        steps,
        vec![LayerStep::Extracting(0), LayerStep::Extracted(0)]
    );
    assert_eq!(id.as_str(), sha(&cfg));
    let (md, bytes) = s.manifest_of("localhost:5000/app:v1").unwrap();
    assert_eq!(bytes, m, "the manifest is kept byte for byte");
    assert_eq!(md.as_str(), sha(&m));
    assert_eq!(
        s.resolve(&format!("localhost:5000/app@{md}")).unwrap(),
        id,
        "name@digest finds it"
    );
    let index_ref = format!("localhost:5000/app@{}", Digest::of(b"index"));
    assert_eq!(
        s.resolve(&index_ref).unwrap(),
        id,
        "so does the digest it was pulled as"
    );
    assert_eq!(
        s.inspect(&id.to_string()).unwrap().repo_digests,
        std::slice::from_ref(&index_ref)
    );
    // A push records another; both are kept.
    let pushed = format!("localhost:5000/other@{md}");
    s.add_repo_digest("localhost:5000/app:v1", &pushed).unwrap();
    let listed = s.list().unwrap();
    assert_eq!(listed[0].repo_digests, [index_ref, pushed]);
    assert!(s
        .add_repo_digest("localhost:5000/app:v1", "localhost:5000/app:v2")
        .is_err());
    assert!(s.blob_path(&Digest::of(&gz)).is_some());
    assert!(staging_empty(&s));

    // A second ingest reuses the stored layer blob.
    let again = s.ingest().unwrap();
    let existing = again.existing_blob(&Digest::of(&gz)).expect("stored blob");
    assert_eq!(existing.size, gz.len() as u64);
}

#[test]
fn a_bad_pull_leaves_nothing() {
    let (_d, s) = store();
    let plain = layer(&[E::File("f", b"x", 0o644)]);
    let gz = gzip(&plain);
    let other = gzip(&layer(&[E::File("g", b"y", 0o644)]));
    let cfg = config(&[&plain], &["sh"]);

    // The layer does not match the config's diff id.
    let mut ingest = s.ingest().unwrap();
    let c = downloaded(&mut ingest, &cfg);
    let l = downloaded(&mut ingest, &other);
    let err = ingest
        .commit(
            PulledImage {
                manifest: manifest(&cfg, &[&other]),
                config: c,
                layers: vec![l],
                tag: Some(Reference::parse("app:bad").unwrap()),
                repo_digest: None,
            },
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");

    // The blobs given are not the ones the manifest names.
    let mut ingest = s.ingest().unwrap();
    let c = downloaded(&mut ingest, &cfg);
    let l = downloaded(&mut ingest, &other);
    let err = ingest
        .commit(
            PulledImage {
                manifest: manifest(&cfg, &[&gz]),
                config: c,
                layers: vec![l],
                tag: None,
                repo_digest: None,
            },
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");

    // Abandoned midway (dropped before commit).
    let mut ingest = s.ingest().unwrap();
    downloaded(&mut ingest, &gz);
    drop(ingest);

    assert_eq!(index_len(&s), 0);
    assert!(s.resolve("app:bad").is_err());
    assert!(s.blob_path(&Digest::of(&gz)).is_none());
    assert!(staging_empty(&s));
    assert!(fs::read_dir(s.root().join("snapshots"))
        .unwrap()
        .next()
        .is_none());
}
