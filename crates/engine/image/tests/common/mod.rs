//! Builders for layer tars and image archives, made in the tests
//! themselves with the `tar` crate, and store snapshots for "unchanged"
//! assertions.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use sha2::{Digest as _, Sha256};

pub fn sha(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    let mut s = String::from("sha256:");
    for b in h {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub fn hex(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap()
}

/// One entry of a test layer.
pub enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    /// A file with owner and mtime.
    FileOwned(&'a str, &'a [u8], u32, u64, u64, u64),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    CharDev(&'a str, u32, u32),
    Fifo(&'a str),
    /// A file with an xattr (PAX SCHILY.xattr).
    FileXattr(&'a str, &'a [u8], &'a str, &'a [u8]),
}

/// Writes `name` straight into the header, bypassing the tar crate's
/// refusal of `..` and absolute paths, so hostile layers can be built.
fn raw_header(name: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        let b = name.as_bytes();
        assert!(b.len() < 100, "test names must be short");
        old.name[..b.len()].copy_from_slice(b);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h
}

fn set_link(h: &mut tar::Header, target: &str) {
    let old = h.as_old_mut();
    let b = target.as_bytes();
    assert!(b.len() < 100);
    old.linkname = [0; 100];
    old.linkname[..b.len()].copy_from_slice(b);
}

/// A layer tar (uncompressed).
pub fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::Dir(p, mode) => {
                let mut h = raw_header(p, tar::EntryType::Directory, 0, *mode);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::File(p, data, mode) => {
                let mut h = raw_header(p, tar::EntryType::Regular, data.len() as u64, *mode);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            E::FileOwned(p, data, mode, uid, gid, mtime) => {
                let mut h = raw_header(p, tar::EntryType::Regular, data.len() as u64, *mode);
                h.set_uid(*uid);
                h.set_gid(*gid);
                h.set_mtime(*mtime);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            E::Symlink(p, t) => {
                let mut h = raw_header(p, tar::EntryType::Symlink, 0, 0o777);
                set_link(&mut h, t);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Hardlink(p, t) => {
                let mut h = raw_header(p, tar::EntryType::Link, 0, 0o644);
                set_link(&mut h, t);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::CharDev(p, maj, min) => {
                let mut h = raw_header(p, tar::EntryType::Char, 0, 0o666);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Fifo(p) => {
                let mut h = raw_header(p, tar::EntryType::Fifo, 0, 0o644);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::FileXattr(p, data, name, value) => {
                let key = format!("SCHILY.xattr.{name}");
                b.append_pax_extensions([(key.as_str(), *value)]).unwrap();
                let mut h = raw_header(p, tar::EntryType::Regular, data.len() as u64, 0o644);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn uncompressed(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match data {
        [0x1f, 0x8b, ..] => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => out = zstd::decode_all(data).unwrap(),
        _ => out = data.to_vec(),
    }
    out
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// A Docker-style image config for the given uncompressed layers.
pub fn config(layers_uncompressed: &[&[u8]], cmd: &[&str]) -> Vec<u8> {
    config_with_diff_ids(
        &layers_uncompressed
            .iter()
            .map(|l| sha(l))
            .collect::<Vec<_>>(),
        cmd,
    )
}

pub fn config_with_diff_ids(diff_ids: &[String], cmd: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {
            "Env": ["PATH=/bin", "FOO=bar"],
            "Cmd": cmd,
            "Entrypoint": null,
            "WorkingDir": "/work",
            "User": "1000:1000",
            "ExposedPorts": {"80/tcp": {}},
            "Labels": {"org.example": "yes"},
            "Volumes": {"/data": {}},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "test"}],
    }))
    .unwrap()
}

/// One image for an archive: config bytes, layer blobs (as they go into
/// the archive, possibly compressed), tags.
pub struct Img {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    pub tags: Vec<String>,
}

impl Img {
    /// An image whose config's diff ids match `layers` (decompressed).
    pub fn new(layers: Vec<Vec<u8>>, tag: &str) -> Img {
        let plain: Vec<Vec<u8>> = layers.iter().map(|l| uncompressed(l)).collect();
        let refs: Vec<&[u8]> = plain.iter().map(Vec::as_slice).collect();
        Img {
            config: config(&refs, &["sh"]),
            layers,
            tags: if tag.is_empty() {
                vec![]
            } else {
                vec![tag.to_owned()]
            },
        }
    }

    pub fn id(&self) -> String {
        sha(&self.config)
    }
}

fn add(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
}

/// A classic `docker save` archive: `<id>.json`, `<n>/layer.tar`,
/// manifest.json, repositories.
pub fn docker_save(images: &[Img]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut manifest = Vec::new();
    let mut n = 0;
    for img in images {
        let cfg = format!("{}.json", hex(&img.id()));
        let mut layers = Vec::new();
        for l in &img.layers {
            n += 1;
            let name = format!("{n:064x}/layer.tar");
            add(&mut b, &format!("{n:064x}/VERSION"), b"1.0");
            add(&mut b, &name, l);
            layers.push(name);
        }
        add(&mut b, &cfg, &img.config);
        manifest.push(serde_json::json!({"Config": cfg, "RepoTags": img.tags, "Layers": layers}));
    }
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    b.into_inner().unwrap()
}

/// An OCI image layout tar; each image's manifest is listed in index.json
/// with containerd's name annotation. `nested` wraps each manifest in an
/// index with an arm/s390x decoy.
pub fn oci_layout(images: &[Img], nested: bool) -> Vec<u8> {
    layout_with_types(images, nested, false)
}

/// Like [`oci_layout`], with Docker schema2 media types in the manifests
/// (as `skopeo copy docker://… oci:…` keeps them).
pub fn oci_layout_docker_types(images: &[Img]) -> Vec<u8> {
    layout_with_types(images, true, true)
}

fn layout_with_types(images: &[Img], nested: bool, docker: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut index = Vec::new();
    for img in images {
        let layer_descs: Vec<_> = img
            .layers
            .iter()
            .map(|l| {
                let mt = match l.first() {
                    _ if docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    Some(0x1f) => "application/vnd.oci.image.layer.v1.tar+gzip",
                    Some(0x28) => "application/vnd.oci.image.layer.v1.tar+zstd",
                    _ => "application/vnd.oci.image.layer.v1.tar",
                };
                blobs.insert(sha(l), l.clone());
                serde_json::json!({"mediaType": mt, "digest": sha(l), "size": l.len()})
            })
            .collect();
        blobs.insert(sha(&img.config), img.config.clone());
        let (manifest_mt, config_mt, index_mt) = if docker {
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            )
        } else {
            (
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.index.v1+json",
            )
        };
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_mt,
            "config": {"mediaType": config_mt, "digest": sha(&img.config), "size": img.config.len()},
            "layers": layer_descs,
        }))
        .unwrap();
        blobs.insert(sha(&m), m.clone());
        let mut top = serde_json::json!({
            "mediaType": manifest_mt,
            "digest": sha(&m), "size": m.len(),
        });
        if nested {
            let decoy = br#"{"schemaVersion":2}"#.to_vec();
            blobs.insert(sha(&decoy), decoy.clone());
            let arch = if cfg!(target_arch = "aarch64") {
                "arm64"
            } else {
                "amd64"
            };
            let idx = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": index_mt,
                "manifests": [
                    {"mediaType": manifest_mt, "digest": sha(&decoy), "size": decoy.len(), "platform": {"architecture": "s390x", "os": "linux"}},
                    {"mediaType": manifest_mt, "digest": sha(&m), "size": m.len(), "platform": {"architecture": arch, "os": "linux"}},
                ],
            }))
            .unwrap();
            blobs.insert(sha(&idx), idx.clone());
            top = serde_json::json!({
                "mediaType": index_mt,
                "digest": sha(&idx), "size": idx.len(),
            });
        }
        if let Some(t) = img.tags.first() {
            top["annotations"] = serde_json::json!({"io.containerd.image.name": t});
        }
        index.push(top);
    }
    add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    for (d, data) in &blobs {
        add(&mut b, &format!("blobs/sha256/{}", hex(d)), data);
    }
    add(
        &mut b,
        "index.json",
        &serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": index})).unwrap(),
    );
    b.into_inner().unwrap()
}

/// Every path under `root` (relative), with file contents for regular
/// files: equal snapshots mean an unchanged tree.
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &p, out);
            } else if ft.is_file() {
                out.insert(rel, std::fs::read(&p).unwrap());
            } else {
                out.insert(rel, b"<special>".to_vec());
            }
        }
    }
    walk(root, root, &mut out);
    // The lock file's existence is not state.
    out.remove("lock");
    out
}
