//! `docker save` / OCI layout archives: reading (`load`), writing (`save`)
//! and plain rootfs tars (`import`).
//!
//! The outer archive is untrusted too, but its entry names are never used
//! as filesystem paths: every regular file is streamed into a numbered file
//! of the staging directory while being hashed, and names are only keys of
//! an in-memory map.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::digest::{chain_ids, Digest, HashingReader};
use crate::error::{io_err, Error, Result};
use crate::media::{self, Compression, Kind};
use crate::reference::Reference;
use crate::store::{ImageRecord, Layout, NewImage, Staging};

/// JSON documents larger than this are refused (they are read into memory).
const MAX_JSON: u64 = 32 << 20;

/// An OCI/Docker content descriptor.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor of `size` bytes at `digest`, without annotations or platform.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            annotations: None,
            platform: None,
        }
    }
}

/// The platform of an index entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Platform {
    pub architecture: String,
    pub os: String,
}

/// An image manifest (OCI or Docker schema2; they share this shape).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An image made on this host (import, commit, a build step): its config,
/// its layers (already staged or stored) and what the store records of it.
pub(crate) struct LocalImage<'a> {
    /// What made it, for error messages ("committed", "derived", …).
    pub what: &'a str,
    pub config: &'a serde_json::Value,
    pub layers: Vec<Descriptor>,
    /// When it was made (RFC 3339), as in its config.
    pub created: String,
    /// Uncompressed size of all its layers.
    pub size: u64,
    pub chain: Vec<Digest>,
    pub parent: Option<Digest>,
    pub tag: Option<Reference>,
}

/// Stages the config and an OCI manifest of `image`, then commits it with
/// whatever else `staging` holds; returns the image id.
pub(crate) fn commit_local(
    layout: &Layout,
    staging: &mut Staging,
    image: LocalImage<'_>,
) -> Result<Digest> {
    let json_err = |doc: &str| {
        let what = format!("{} {doc}", image.what);
        move |source| Error::Json { what, source }
    };
    let config_bytes = serde_json::to_vec(image.config).map_err(json_err("config"))?;
    let id = staging.add_blob_bytes(&config_bytes)?;
    let manifest = Manifest::oci(id.clone(), config_bytes.len(), image.layers);
    let mbytes = serde_json::to_vec(&manifest).map_err(json_err("manifest"))?;
    let manifest = staging.add_blob_bytes(&mbytes)?;
    let new = NewImage {
        id: id.clone(),
        record: ImageRecord {
            manifest,
            created: Some(image.created),
            size: image.size,
            chain: image.chain,
            parent: image.parent,
            repo_digests: Default::default(),
        },
        tags: image.tag.into_iter().collect(),
    };
    crate::store::commit(layout, staging, &[new])?;
    Ok(id)
}

impl Manifest {
    /// An OCI image manifest of the config blob `config` (`config_len`
    /// bytes) and `layers`.
    pub fn oci(config: Digest, config_len: usize, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.to_owned()),
            config: Descriptor::new(media::OCI_CONFIG, config, config_len as u64),
            layers,
        }
    }
}

/// An image index / manifest list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexDoc {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// One entry of a `docker save` manifest.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Reads a stored manifest blob.
pub(crate) fn read_manifest(layout: &Layout, d: &Digest) -> Result<Manifest> {
    let b = layout.read_blob(d)?;
    serde_json::from_slice(&b).map_err(|source| Error::Json {
        what: format!("manifest {d}"),
        source,
    })
}

/// The GOARCH name of the host.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// A regular file of the outer archive, staged.
#[derive(Clone, Debug)]
struct Staged {
    name: String,
    digest: Digest,
    size: u64,
    path: PathBuf,
}

/// The outer archive, staged: names → staged files, plus its symlinks and
/// hardlinks (old `docker save` links duplicate layers).
#[derive(Default)]
struct Outer {
    files: BTreeMap<String, Staged>,
    links: BTreeMap<String, String>,
}

/// Lexically normalizes an archive path: no leading `/` or `./`, `.`
/// dropped, `..` clamped at the top. Names are only map keys.
fn norm(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

impl Outer {
    fn read(reader: impl Read, staging: &mut Staging) -> Result<Outer> {
        let mut outer = Outer::default();
        let mut ar = tar::Archive::new(reader);
        for entry in ar.entries().map_err(Error::Archive)? {
            let entry = entry.map_err(Error::Archive)?;
            let name = norm(&String::from_utf8_lossy(&entry.path_bytes()));
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let (digest, size, path) = staging.write(entry)?;
                    outer.files.insert(
                        name.clone(),
                        Staged {
                            name,
                            digest,
                            size,
                            path,
                        },
                    );
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    let parent = name.rsplit_once('/').map_or("", |(p, _)| p);
                    outer
                        .links
                        .insert(name.clone(), norm(&format!("{parent}/{target}")));
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    outer.links.insert(name, norm(&target));
                }
                _ => {}
            }
        }
        Ok(outer)
    }

    /// Looks a file up by archive path, following links; a file under
    /// `blobs/sha256/` must hash to its name.
    fn get(&self, name: &str, referrer: &str) -> Result<&Staged> {
        let mut n = norm(name);
        for _ in 0..16 {
            if let Some(f) = self.files.get(&n) {
                if let Some(hex) = n.strip_prefix("blobs/sha256/") {
                    let want = Digest::from_hex(hex)?;
                    if want != f.digest {
                        return Err(Error::DigestMismatch {
                            what: format!("blob {n}"),
                            expected: want.to_string(),
                            actual: f.digest.to_string(),
                        });
                    }
                }
                return Ok(f);
            }
            match self.links.get(&n) {
                Some(t) => n = t.clone(),
                None => break,
            }
        }
        Err(Error::Format(format!(
            "{referrer} refers to {name:?}, which is not in the archive (truncated archive?)"
        )))
    }

    /// Looks a blob up by descriptor and checks digest and size.
    fn blob(&self, d: &Descriptor, referrer: &str) -> Result<&Staged> {
        let f = self.get(&format!("blobs/sha256/{}", d.digest.hex()), referrer)?;
        if f.size != d.size {
            return Err(Error::Format(format!(
                "blob {} is {} bytes but {referrer} says {}",
                d.digest, f.size, d.size
            )));
        }
        Ok(f)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, f: &Staged, what: &str) -> Result<T> {
        if f.size > MAX_JSON {
            return Err(Error::Format(format!(
                "{what} ({}) is {} bytes, more than the {MAX_JSON} allowed",
                f.name, f.size
            )));
        }
        let b = fs::read(&f.path).map_err(io_err("read", &f.path))?;
        serde_json::from_slice(&b).map_err(|source| Error::Json {
            what: format!("{what} ({})", f.name),
            source,
        })
    }
}

/// One image found in an archive, before it is verified and staged.
struct Plan {
    config: Staged,
    /// Layer files, bottom first, with the blob digest a manifest promised.
    layers: Vec<(Staged, Option<Digest>)>,
    /// The original manifest, for OCI layouts.
    manifest: Option<Staged>,
    tags: Vec<Reference>,
}

/// An image that `load` added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// The image id (config digest).
    pub id: Digest,
    /// Tags given to it, in familiar form (`busybox:latest`).
    pub tags: Vec<String>,
}

pub(crate) fn load(layout: &Layout, reader: impl Read) -> Result<Vec<LoadedImage>> {
    let mut staging = Staging::new(layout)?;
    let outer = Outer::read(reader, &mut staging)?;
    let is_oci = outer.files.contains_key("index.json") && outer.files.contains_key("oci-layout");
    let docker = match outer.files.get("manifest.json") {
        Some(mf) => docker_plans(&outer, mf)?,
        None => Vec::new(),
    };
    let mut plans = Vec::new();
    if is_oci {
        // An OCI layout, or Docker 25+'s archive that is both: the OCI
        // manifests are kept as they are (their digests stay valid).
        let doc: IndexDoc = outer.json(&outer.files["index.json"], "OCI index")?;
        for d in &doc.manifests {
            oci_plans(&outer, d, tags_from_annotations(d)?, 0, &mut plans)?;
        }
    } else if outer.files.contains_key("index.json") && docker.is_empty() {
        return Err(Error::Format(
            "index.json without oci-layout: not an OCI image layout".into(),
        ));
    } else if !outer.files.contains_key("manifest.json") {
        return Err(Error::Format(
            "the archive has neither manifest.json (docker save) nor index.json (OCI layout): is it complete? (a plain rootfs tar needs import instead)".into(),
        ));
    }
    // manifest.json's images and tags complete the OCI ones.
    plans.extend(docker);
    let plans = merge_plans(plans);
    if plans.is_empty() {
        return Err(Error::Format("the archive contains no image".into()));
    }
    let mut images = Vec::new();
    for plan in plans {
        images.push(stage_image(layout, &mut staging, plan, &mut |_| {})?);
    }
    crate::store::commit(layout, &mut staging, &images)?;
    Ok(images
        .into_iter()
        .map(|i| LoadedImage {
            tags: i.tags.iter().map(Reference::familiar).collect(),
            id: i.id,
        })
        .collect())
}

/// Merges plans of the same image (same config digest): the first one's
/// layers and manifest are kept, the tags are united.
fn merge_plans(plans: Vec<Plan>) -> Vec<Plan> {
    let mut out: Vec<Plan> = Vec::new();
    for p in plans {
        match out.iter_mut().find(|o| o.config.digest == p.config.digest) {
            Some(o) => {
                for t in p.tags {
                    if !o.tags.contains(&t) {
                        o.tags.push(t);
                    }
                }
            }
            None => out.push(p),
        }
    }
    out
}

fn docker_plans(outer: &Outer, mf: &Staged) -> Result<Vec<Plan>> {
    let entries: Vec<DockerEntry> = outer.json(mf, "manifest.json")?;
    let mut plans = Vec::new();
    for e in entries {
        let mut tags = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            tags.push(Reference::parse(&t)?);
        }
        let config = outer.get(&e.config, "manifest.json")?.clone();
        let layers = e
            .layers
            .iter()
            .map(|l| Ok((outer.get(l, "manifest.json")?.clone(), None)))
            .collect::<Result<_>>()?;
        plans.push(Plan {
            config,
            layers,
            manifest: None,
            tags,
        });
    }
    Ok(plans)
}

fn tags_from_annotations(d: &Descriptor) -> Result<Vec<Reference>> {
    let Some(a) = &d.annotations else {
        return Ok(Vec::new());
    };
    if let Some(name) = a.get("io.containerd.image.name") {
        return Ok(vec![Reference::parse(name)?]);
    }
    match a.get("org.opencontainers.image.ref.name") {
        // A bare tag ("latest") names no repository: the image stays untagged.
        Some(r) if r.contains('/') || r.contains(':') => Ok(vec![Reference::parse(r)?]),
        _ => Ok(Vec::new()),
    }
}

fn oci_plans(
    outer: &Outer,
    d: &Descriptor,
    tags: Vec<Reference>,
    depth: u32,
    plans: &mut Vec<Plan>,
) -> Result<()> {
    if depth > 4 {
        return Err(Error::Format("image indexes nested too deeply".into()));
    }
    let blob = outer.blob(d, "index.json")?;
    match media::kind(&d.media_type) {
        Kind::Manifest => {
            let m: Manifest = outer.json(blob, "manifest")?;
            let config = outer.blob(&m.config, "manifest")?.clone();
            let mut layers = Vec::new();
            for l in &m.layers {
                if media::kind(&l.media_type) != Kind::Layer {
                    return Err(Error::Format(format!(
                        "manifest {} has a layer of media type {:?}, which is not a filesystem layer",
                        d.digest, l.media_type
                    )));
                }
                layers.push((outer.blob(l, "manifest")?.clone(), Some(l.digest.clone())));
            }
            plans.push(Plan {
                config,
                layers,
                manifest: Some(blob.clone()),
                tags,
            });
        }
        Kind::Index => {
            let idx: IndexDoc = outer.json(blob, "image index")?;
            let arch = host_arch();
            let mine: Vec<&Descriptor> = idx
                .manifests
                .iter()
                .filter(|m| media::kind(&m.media_type) == Kind::Manifest)
                .filter(|m| for_host(m.platform.as_ref(), arch))
                .collect();
            let Some(first) = mine.first() else {
                return Err(Error::Format(format!(
                    "image index {} has no manifest for linux/{arch}",
                    d.digest
                )));
            };
            oci_plans(outer, first, tags, depth + 1, plans)?;
        }
        _ => {} // attestations and other artifacts are not images
    }
    Ok(())
}

/// Whether an index entry is for this host (entries without a platform
/// are taken as matching).
fn for_host(p: Option<&Platform>, arch: &str) -> bool {
    match p {
        None => true,
        Some(p) => p.os == "linux" && p.architecture == arch,
    }
}

/// Verifies one image's blobs and diff ids, unpacks its new layers into
/// staging, and returns what commit should add.
fn stage_image(
    layout: &Layout,
    staging: &mut Staging,
    plan: Plan,
    on_layer: &mut dyn FnMut(LayerStep),
) -> Result<NewImage> {
    let config_bytes = read_small(&plan.config)?;
    let config: oci_spec::image::ImageConfiguration = serde_json::from_slice(&config_bytes)
        .map_err(|source| Error::Json {
            what: format!("image config {}", plan.config.name),
            source,
        })?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|s| s.parse::<Digest>())
        .collect::<Result<Vec<_>>>()?;
    if diff_ids.len() != plan.layers.len() {
        return Err(Error::Format(format!(
            "image config {} lists {} layers (rootfs.diff_ids) but the manifest has {}",
            plan.config.name,
            diff_ids.len(),
            plan.layers.len()
        )));
    }
    let chain = chain_ids(&diff_ids);
    let mut size = 0;
    let mut layer_descs = Vec::new();
    for (i, (file, promised)) in plan.layers.iter().enumerate() {
        if let Some(p) = promised {
            if p != &file.digest {
                return Err(Error::DigestMismatch {
                    what: format!("layer blob {}", file.name),
                    expected: p.to_string(),
                    actual: file.digest.to_string(),
                });
            }
        }
        on_layer(LayerStep::Extracting(i));
        let (n, compression) = unpack_or_hash(layout, staging, file, &chain[i], &diff_ids[i])?;
        on_layer(LayerStep::Extracted(i));
        size += n;
        layer_descs.push(Descriptor {
            media_type: compression.oci_layer_media_type().to_owned(),
            digest: file.digest.clone(),
            size: file.size,
            annotations: None,
            platform: None,
        });
        staging
            .blobs
            .entry(file.digest.clone())
            .or_insert_with(|| file.path.clone());
    }
    staging
        .blobs
        .entry(plan.config.digest.clone())
        .or_insert_with(|| plan.config.path.clone());
    let manifest = match &plan.manifest {
        Some(m) => {
            staging
                .blobs
                .entry(m.digest.clone())
                .or_insert_with(|| m.path.clone());
            m.digest.clone()
        }
        None => {
            let m = Manifest {
                schema_version: 2,
                media_type: Some(media::OCI_MANIFEST.to_owned()),
                config: Descriptor {
                    media_type: media::OCI_CONFIG.to_owned(),
                    digest: plan.config.digest.clone(),
                    size: plan.config.size,
                    annotations: None,
                    platform: None,
                },
                layers: layer_descs,
            };
            let bytes = serde_json::to_vec(&m).map_err(|source| Error::Json {
                what: "generated manifest".into(),
                source,
            })?;
            staging.add_blob_bytes(&bytes)?
        }
    };
    Ok(NewImage {
        id: plan.config.digest.clone(),
        record: ImageRecord {
            manifest,
            created: config.created().clone(),
            size,
            chain,
            parent: None,
            repo_digests: Default::default(),
        },
        tags: plan.tags,
    })
}

/// A step of [`ImageStore::ingest`](crate::ImageStore) for layer `i`
/// (bottom first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerStep {
    /// Layer `i` is being decompressed, checked against its diff id and
    /// (unless its snapshot exists) unpacked.
    Extracting(usize),
    /// Layer `i` is done.
    Extracted(usize),
}

/// A blob whose content the caller has verified against `digest`.
#[derive(Clone, Debug)]
pub struct VerifiedBlob {
    /// The content digest.
    pub digest: Digest,
    /// The length in bytes.
    pub size: u64,
    /// The file holding it (in the ingest's staging directory, or the
    /// content store's own copy).
    pub path: PathBuf,
}

/// An image fetched from a registry, ready for [`Ingest::commit`].
#[derive(Clone, Debug)]
pub struct PulledImage {
    /// The image manifest's exact bytes (OCI or Docker schema 2).
    pub manifest: Vec<u8>,
    /// The config blob.
    pub config: VerifiedBlob,
    /// The layer blobs, in the manifest's order.
    pub layers: Vec<VerifiedBlob>,
    /// The tag to give it, if any.
    pub tag: Option<Reference>,
    /// The `name@digest` it was pulled as (the digest the registry served
    /// for the reference: an index's when the image came through one).
    pub repo_digest: Option<Reference>,
}

/// An ingest in progress: a private staging directory into which the
/// caller downloads blobs; nothing is visible in the store until
/// [`commit`](Ingest::commit), and dropping it removes everything staged.
pub struct Ingest {
    layout: Layout,
    staging: Staging,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("dir", &self.staging.dir)
            .finish()
    }
}

impl Ingest {
    pub(crate) fn new(layout: &Layout) -> Result<Ingest> {
        Ok(Ingest {
            layout: layout.clone(),
            staging: Staging::new(layout)?,
        })
    }

    /// A fresh file path in the staging directory for a download.
    pub fn download_path(&mut self) -> PathBuf {
        self.staging.path("download")
    }

    /// The content store's copy of blob `d`, if it has one (already
    /// verified when it was added).
    pub fn existing_blob(&self, d: &Digest) -> Option<VerifiedBlob> {
        let path = self.layout.blob(d);
        let size = fs::metadata(&path).ok()?.len();
        Some(VerifiedBlob {
            digest: d.clone(),
            size,
            path,
        })
    }

    /// Checks that `image`'s manifest names exactly its config and layers,
    /// checks every layer against the config's diff ids while unpacking
    /// the new ones, then adds the blobs, snapshots, image and tag to the
    /// store at once. `on_layer` hears about each layer.
    pub fn commit(
        mut self,
        image: PulledImage,
        on_layer: &mut dyn FnMut(LayerStep),
    ) -> Result<Digest> {
        if image.manifest.len() as u64 > MAX_JSON {
            return Err(Error::Format("the manifest is too large".into()));
        }
        let m: Manifest =
            serde_json::from_slice(&image.manifest).map_err(|source| Error::Json {
                what: "pulled manifest".into(),
                source,
            })?;
        let mismatch = |what: &str, want: &Digest, got: &Digest| Error::DigestMismatch {
            what: what.to_owned(),
            expected: want.to_string(),
            actual: got.to_string(),
        };
        if m.config.digest != image.config.digest {
            return Err(mismatch(
                "image config",
                &m.config.digest,
                &image.config.digest,
            ));
        }
        if m.layers.len() != image.layers.len() {
            return Err(Error::Format(format!(
                "the manifest has {} layers but {} were fetched",
                m.layers.len(),
                image.layers.len()
            )));
        }
        for (l, b) in m.layers.iter().zip(&image.layers) {
            if media::kind(&l.media_type) != Kind::Layer {
                return Err(Error::Format(format!(
                    "layer {} has media type {:?}, which is not a filesystem layer",
                    l.digest, l.media_type
                )));
            }
            if l.digest != b.digest {
                return Err(mismatch("layer", &l.digest, &b.digest));
            }
        }
        let staged = |b: &VerifiedBlob| Staged {
            name: b.digest.to_string(),
            digest: b.digest.clone(),
            size: b.size,
            path: b.path.clone(),
        };
        let (mdigest, msize, mpath) = self.staging.write(&image.manifest[..])?;
        let plan = Plan {
            config: staged(&image.config),
            layers: image
                .layers
                .iter()
                .map(|b| (staged(b), Some(b.digest.clone())))
                .collect(),
            manifest: Some(Staged {
                name: format!("manifest {mdigest}"),
                digest: mdigest,
                size: msize,
                path: mpath,
            }),
            tags: image.tag.into_iter().collect(),
        };
        let mut new = stage_image(&self.layout, &mut self.staging, plan, on_layer)?;
        new.record
            .repo_digests
            .extend(image.repo_digest.iter().map(|r| r.to_string()));
        let id = new.id.clone();
        crate::store::commit(&self.layout, &mut self.staging, &[new])?;
        Ok(id)
    }
}

/// Decompresses a layer file and checks it against its diff id; unpacks it
/// into a staged snapshot unless the store or this load already has that
/// chain id. Returns the uncompressed size and the compression.
fn unpack_or_hash(
    layout: &Layout,
    staging: &mut Staging,
    file: &Staged,
    chain: &Digest,
    diff_id: &Digest,
) -> Result<(u64, Compression)> {
    let layer_err = |e: Error| match e {
        Error::Archive(source) => Error::Layer {
            layer: file.name.clone(),
            source,
        },
        e => e,
    };
    let f = File::open(&file.path).map_err(io_err("open", &file.path))?;
    let (r, compression) = media::decompress(BufReader::new(f)).map_err(layer_err)?;
    let mut hr = HashingReader::new(r);
    let have = layout.snapshot(chain).is_dir() || staging.snapshots.contains_key(chain);
    let snap = if have {
        None
    } else {
        let dir = staging.path("snapshot");
        let fs_dir = dir.join("fs");
        fs::create_dir_all(&fs_dir).map_err(io_err("create", &fs_dir))?;
        crate::unpack::unpack(&mut hr, &fs_dir).map_err(layer_err)?;
        Some(dir)
    };
    let (actual, n) = hr.finish().map_err(|e| layer_err(Error::Archive(e)))?;
    if &actual != diff_id {
        return Err(Error::DigestMismatch {
            what: format!(
                "layer {} (uncompressed, against the config's diff id)",
                file.name
            ),
            expected: diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    if let Some(dir) = snap {
        tracing::debug!(chain = %chain, layer = %file.name, "unpacked layer");
        staging.snapshots.insert(chain.clone(), dir);
    }
    Ok((n, compression))
}

fn read_small(f: &Staged) -> Result<Vec<u8>> {
    if f.size > MAX_JSON {
        return Err(Error::Format(format!(
            "{} is too large for a config",
            f.name
        )));
    }
    fs::read(&f.path).map_err(io_err("read", &f.path))
}

/// Imports a plain rootfs tar (optionally compressed) as a one-layer image.
pub(crate) fn import(
    layout: &Layout,
    reader: impl Read,
    tag: Option<Reference>,
    config: Option<serde_json::Value>,
) -> Result<Digest> {
    let mut staging = Staging::new(layout)?;
    let (blob, blob_size, path) = staging.write(reader)?;
    let f = File::open(&path).map_err(io_err("open", &path))?;
    let (r, compression) = media::decompress(BufReader::new(f))?;
    let mut hr = HashingReader::new(r);
    let dir = staging.path("snapshot");
    let fs_dir = dir.join("fs");
    fs::create_dir_all(&fs_dir).map_err(io_err("create", &fs_dir))?;
    crate::unpack::unpack(&mut hr, &fs_dir)?;
    let (diff_id, size) = hr.finish().map_err(Error::Archive)?;
    staging.snapshots.insert(diff_id.clone(), dir);
    staging.blobs.insert(blob.clone(), path);
    let now = crate::time::now_rfc3339();
    let config = serde_json::json!({
        "architecture": host_arch(),
        "os": "linux",
        "created": now,
        "config": config.unwrap_or_else(default_import_config),
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": now, "created_by": "strato import", "comment": "imported from a rootfs tar" }],
    });
    commit_local(
        layout,
        &mut staging,
        LocalImage {
            what: "generated",
            config: &config,
            layers: vec![Descriptor::new(
                compression.oci_layer_media_type(),
                blob,
                blob_size,
            )],
            created: now,
            size,
            chain: vec![diff_id],
            parent: None,
            tag,
        },
    )
}

/// The `config` of an imported image: only the usual PATH.
pub fn default_import_config() -> serde_json::Value {
    serde_json::json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    })
}

/// What to put in a saved archive: an image and the tags to give it.
pub(crate) struct SaveItem {
    pub manifest: Digest,
    /// Normalized references.
    pub tags: Vec<String>,
}

/// Writes an OCI image layout tar that also carries Docker's manifest.json,
/// as Docker 25+ does.
pub(crate) fn save(layout: &Layout, items: &[SaveItem], writer: impl Write) -> Result<()> {
    let mut b = tar::Builder::new(writer);
    let mut written = BTreeSet::new();
    let mut docker = Vec::new();
    let mut index = IndexDoc {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.to_owned()),
        manifests: Vec::new(),
    };
    let w = |e: io::Error| Error::Io {
        op: "write archive",
        path: PathBuf::from("<writer>"),
        source: e,
    };
    add_dir(&mut b, "blobs/").map_err(w)?;
    add_dir(&mut b, "blobs/sha256/").map_err(w)?;
    for item in items {
        let m = read_manifest(layout, &item.manifest)?;
        let mbytes = layout.read_blob(&item.manifest)?;
        let all = std::iter::once(&item.manifest)
            .chain(std::iter::once(&m.config.digest))
            .chain(m.layers.iter().map(|l| &l.digest));
        for d in all {
            if written.insert(d.clone()) {
                let p = layout.blob(d);
                let f = File::open(&p).map_err(io_err("open blob", &p))?;
                let len = f.metadata().map_err(io_err("stat", &p))?.len();
                let mut h = header(len, 0o444);
                b.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), f)
                    .map_err(w)?;
            }
        }
        let media_type = m
            .media_type
            .clone()
            .unwrap_or_else(|| media::OCI_MANIFEST.to_owned());
        let desc = |annotations| Descriptor {
            media_type: media_type.clone(),
            digest: item.manifest.clone(),
            size: mbytes.len() as u64,
            annotations,
            platform: None,
        };
        if item.tags.is_empty() {
            index.manifests.push(desc(None));
        }
        for t in &item.tags {
            let r = Reference::parse(t)?;
            let mut a = BTreeMap::new();
            a.insert("io.containerd.image.name".to_owned(), t.clone());
            a.insert(
                "org.opencontainers.image.ref.name".to_owned(),
                r.tag().unwrap_or("latest").to_owned(),
            );
            index.manifests.push(desc(Some(a)));
        }
        docker.push(DockerEntry {
            config: format!("blobs/sha256/{}", m.config.digest.hex()),
            repo_tags: Some(
                item.tags
                    .iter()
                    .map(|t| crate::reference::familiar(t))
                    .collect(),
            ),
            layers: m
                .layers
                .iter()
                .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
                .collect(),
        });
    }
    add_file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(w)?;
    add_file(&mut b, "index.json", &json(&index)?).map_err(w)?;
    add_file(&mut b, "manifest.json", &json(&docker)?).map_err(w)?;
    b.into_inner().map_err(w)?.flush().map_err(w)?;
    Ok(())
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|source| Error::Json {
        what: "archive index".into(),
        source,
    })
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn add_dir<W: Write>(b: &mut tar::Builder<W>, name: &str) -> io::Result<()> {
    let mut h = header(0, 0o755);
    h.set_entry_type(tar::EntryType::Directory);
    b.append_data(&mut h, name, io::empty())
}

fn add_file<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut h = header(data.len() as u64, 0o444);
    b.append_data(&mut h, name, data)
}
