//! `docker commit`: a container's writable layer becomes the top layer of
//! a new image whose parent is the container's image.
//!
//! The layer is an OCI layer tar written from the changes [`crate::changes`]
//! finds in the overlay upper directory: added and modified entries as
//! they are, deleted ones as `.wh.NAME` whiteouts, opaque directories with
//! `.wh..wh..opq`. The tar is stored uncompressed (its digest is its diff
//! id) and unpacked into the new layer's snapshot, so the image runs like
//! any loaded one. Everything is staged and enters the store in one
//! [`crate::store::commit`]: a failure leaves no blob, snapshot or tag.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::archive::{commit_local, read_manifest, Descriptor, LocalImage, Manifest};
use crate::changes::{Change, ChangeKind};
use crate::digest::{chain_ids, Digest};
use crate::error::{io_err, Error, Result};
use crate::media;
use crate::reference::Reference;
use crate::store::{Layout, Staging};
use crate::unpack::OPAQUE_XATTR;

/// What the new image says about itself besides its layer.
#[derive(Debug, Clone, Default)]
pub struct CommitSpec {
    /// The image config's `config` object (Cmd, Env, ExposedPorts, ...).
    pub config: serde_json::Value,
    pub author: String,
    pub comment: String,
    /// History's `created_by` (the container's command).
    pub created_by: String,
    /// `repo[:tag]` to give the image.
    pub tag: Option<String>,
    /// The config's `container_config` (the builder's cache key: the run
    /// configuration of the step that made the image); `Null`: none.
    pub container_config: serde_json::Value,
}

/// Writes the layer tar of `changes` (paths absolute, parents first) found
/// in `upper` to `out`.
pub(crate) fn write_layer(upper: &Path, changes: &[Change], out: impl Write) -> Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let werr = |e: std::io::Error| Error::Archive(e);
    for c in changes {
        let rel = c.path.trim_start_matches('/');
        let full = upper.join(rel);
        let meta = fs::symlink_metadata(&full).map_err(io_err("stat", &full))?;
        if c.kind == ChangeKind::Deleted {
            if meta.is_dir() {
                // Opaque: the directory replaces the lower one entirely.
                b.append_path_with_name(&full, rel).map_err(werr)?;
                empty_file(&mut b, &format!("{rel}/.wh..wh..opq"))?;
            } else {
                let (dir, name) = match rel.rsplit_once('/') {
                    Some((d, n)) => (format!("{d}/"), n),
                    None => (String::new(), rel),
                };
                empty_file(&mut b, &format!("{dir}.wh.{name}"))?;
            }
            continue;
        }
        b.append_path_with_name(&full, rel).map_err(werr)?;
        // A copied-up directory that was opaque keeps hiding what is below.
        if meta.is_dir() && is_opaque(&full) {
            empty_file(&mut b, &format!("{rel}/.wh..wh..opq"))?;
        }
    }
    b.into_inner().map_err(werr)?.flush().map_err(werr)
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut buf), Ok(1) if buf[0] == b'y')
}

fn empty_file<W: Write>(b: &mut tar::Builder<W>, name: &str) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, name, std::io::empty())
        .map_err(Error::Archive)
}

/// Makes the image (see the module doc); `parent` is the container's image.
pub(crate) fn commit(
    layout: &Layout,
    parent: &Digest,
    upper: &Path,
    changes: &[Change],
    spec: &CommitSpec,
) -> Result<Digest> {
    let tag = spec.tag.as_deref().map(Reference::parse).transpose()?;
    let (parent_rec, parent_cfg, parent_manifest) = {
        let index = layout.read_index()?;
        let rec = index
            .images
            .get(parent)
            .cloned()
            .ok_or_else(|| Error::NotFound(parent.to_string()))?;
        let cfg: serde_json::Value =
            serde_json::from_slice(&layout.read_blob(parent)?).map_err(|source| Error::Json {
                what: format!("image config {parent}"),
                source,
            })?;
        let m: Manifest = read_manifest(layout, &rec.manifest)?;
        (rec, cfg, m)
    };
    let mut staging = Staging::new(layout)?;
    let tar_path = staging.path("layer");
    {
        let f = File::create(&tar_path).map_err(io_err("create", &tar_path))?;
        write_layer(upper, changes, BufWriter::new(f))?;
    }
    let f = File::open(&tar_path).map_err(io_err("open", &tar_path))?;
    let (diff_id, size, blob_path) = staging.write(f)?;
    let _ = fs::remove_file(&tar_path);
    staging.blobs.insert(diff_id.clone(), blob_path.clone());
    let mut diff_ids: Vec<Digest> = parent_cfg["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().and_then(|d| d.parse().ok()))
        .collect();
    diff_ids.push(diff_id.clone());
    let chain = chain_ids(&diff_ids);
    let top = chain.last().cloned().expect("one layer at least");
    if !layout.snapshot(&top).is_dir() {
        let dir = staging.path("snapshot");
        let fs_dir = dir.join("fs");
        fs::create_dir_all(&fs_dir).map_err(io_err("create", &fs_dir))?;
        let f = File::open(&blob_path).map_err(io_err("open", &blob_path))?;
        crate::unpack::unpack(f, &fs_dir)?;
        staging.snapshots.insert(top.clone(), dir);
    }
    let now = crate::time::now_rfc3339();
    let mut cfg = parent_cfg;
    cfg["config"] = spec.config.clone();
    cfg["created"] = now.clone().into();
    if !spec.author.is_empty() {
        cfg["author"] = spec.author.clone().into();
    }
    set_container_config(&mut cfg, spec);
    cfg["rootfs"] = serde_json::json!({ "type": "layers", "diff_ids": diff_ids });
    let mut h = serde_json::json!({ "created": now, "created_by": spec.created_by });
    if !spec.comment.is_empty() {
        h["comment"] = spec.comment.clone().into();
    }
    if !spec.author.is_empty() {
        h["author"] = spec.author.clone().into();
    }
    match cfg["history"].as_array_mut() {
        Some(a) => a.push(h),
        None => cfg["history"] = serde_json::json!([h]),
    }
    let mut layers = parent_manifest.layers.clone();
    layers.push(Descriptor::new(
        media::Compression::None.oci_layer_media_type(),
        diff_id,
        size,
    ));
    let mut chain = parent_rec.chain.clone();
    chain.push(top);
    commit_local(
        layout,
        &mut staging,
        LocalImage {
            what: "committed",
            config: &cfg,
            layers,
            created: now,
            size: parent_rec.size + size,
            chain,
            parent: Some(parent.clone()),
            tag,
        },
    )
}

fn set_container_config(cfg: &mut serde_json::Value, spec: &CommitSpec) {
    match (&spec.container_config, cfg.as_object_mut()) {
        (serde_json::Value::Null, Some(m)) => {
            m.remove("container_config");
        }
        (c, Some(m)) => {
            m.insert("container_config".into(), c.clone());
        }
        _ => {}
    }
}

/// A config-only image (the builder's metadata steps): the parent's layers
/// (none for `scratch`) under a new configuration, and a history entry
/// marked `empty_layer`.
pub(crate) fn derive(
    layout: &Layout,
    parent: Option<&Digest>,
    spec: &CommitSpec,
) -> Result<Digest> {
    let tag = spec.tag.as_deref().map(Reference::parse).transpose()?;
    let (mut cfg, layers, chain, size) = match parent {
        Some(parent) => {
            let index = layout.read_index()?;
            let rec = index
                .images
                .get(parent)
                .cloned()
                .ok_or_else(|| Error::NotFound(parent.to_string()))?;
            let cfg: serde_json::Value = serde_json::from_slice(&layout.read_blob(parent)?)
                .map_err(|source| Error::Json {
                    what: format!("image config {parent}"),
                    source,
                })?;
            let m: Manifest = read_manifest(layout, &rec.manifest)?;
            (cfg, m.layers, rec.chain, rec.size)
        }
        None => (
            serde_json::json!({
                "architecture": crate::archive::host_arch(),
                "os": "linux",
                "rootfs": { "type": "layers", "diff_ids": [] },
            }),
            Vec::new(),
            Vec::new(),
            0,
        ),
    };
    let now = crate::time::now_rfc3339();
    cfg["config"] = spec.config.clone();
    cfg["created"] = now.clone().into();
    if !spec.author.is_empty() {
        cfg["author"] = spec.author.clone().into();
    }
    set_container_config(&mut cfg, spec);
    let h = serde_json::json!({
        "created": now,
        "created_by": spec.created_by,
        "empty_layer": true,
    });
    match cfg["history"].as_array_mut() {
        Some(a) => a.push(h),
        None => cfg["history"] = serde_json::json!([h]),
    }
    let mut staging = Staging::new(layout)?;
    commit_local(
        layout,
        &mut staging,
        LocalImage {
            what: "derived",
            config: &cfg,
            layers,
            created: now,
            size,
            chain,
            parent: parent.cloned(),
            tag,
        },
    )
}

/// The newest image whose parent is `parent` and whose `container_config`
/// equals `key` (the builder's cache lookup).
pub(crate) fn find_child(
    layout: &Layout,
    parent: Option<&Digest>,
    key: &serde_json::Value,
) -> Result<Option<Digest>> {
    let index = layout.read_index()?;
    let mut best: Option<(Option<String>, Digest)> = None;
    for (id, rec) in &index.images {
        if rec.parent.as_ref() != parent {
            continue;
        }
        let Ok(bytes) = layout.read_blob(id) else {
            continue;
        };
        let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        if cfg.get("container_config") == Some(key)
            && best.as_ref().is_none_or(|(c, _)| *c < rec.created)
        {
            best = Some((rec.created.clone(), id.clone()));
        }
    }
    Ok(best.map(|(_, id)| id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_layer_has_entries_whiteouts_and_opaque_markers() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path();
        fs::create_dir_all(upper.join("etc/new")).unwrap();
        fs::write(upper.join("etc/new/f"), b"hello").unwrap();
        fs::write(upper.join("test"), b"").unwrap();
        fs::create_dir(upper.join("opaque")).unwrap();
        let ch = |p: &str, kind| Change {
            path: p.into(),
            kind,
        };
        let changes = [
            ch("/etc", ChangeKind::Modified),
            ch("/etc/new", ChangeKind::Added),
            ch("/etc/new/f", ChangeKind::Added),
            ch("/etc/gone", ChangeKind::Deleted),
            ch("/opaque", ChangeKind::Deleted),
            ch("/test", ChangeKind::Added),
        ];
        // /etc/gone is a whiteout in a real upper; here only its name counts.
        fs::write(upper.join("etc/gone"), b"").unwrap();
        let mut out = Vec::new();
        write_layer(upper, &changes, &mut out).unwrap();
        let mut a = tar::Archive::new(&out[..]);
        let mut names = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut body = String::new();
            e.read_to_string(&mut body).unwrap();
            names.push((name.trim_end_matches('/').to_string(), body));
        }
        let got: Vec<(&str, &str)> = names
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("etc", ""),
                ("etc/new", ""),
                ("etc/new/f", "hello"),
                ("etc/.wh.gone", ""),
                ("opaque", ""),
                ("opaque/.wh..wh..opq", ""),
                ("test", ""),
            ]
        );
        // Our own unpacker takes it (it refuses headers with bad ids).
        let root = tempfile::tempdir().unwrap();
        crate::unpack::unpack(&out[..], root.path()).unwrap();
        assert_eq!(fs::read(root.path().join("etc/new/f")).unwrap(), b"hello");
    }
}
