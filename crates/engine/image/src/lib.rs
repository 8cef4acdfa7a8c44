//! strato's image store: loads `docker save` and OCI layout archives,
//! unpacks layers once per chain id into snapshots for overlayfs, keeps an
//! index of images and tags, mounts container root filesystems, saves,
//! tags, removes and garbage-collects.
//!
//! The entry point is [`ImageStore`]:
//!
//! ```no_run
//! # fn main() -> strato_image::Result<()> {
//! use strato_image::ImageStore;
//! let store = ImageStore::open("/var/lib/strato/images".as_ref())?;
//! let loaded = store.load(std::fs::File::open("busybox.tar").unwrap())?;
//! let mount = store.rootfs_for("busybox", "c1", "/run/strato/c1/rootfs".as_ref())?;
//! // … run the container …
//! mount.unmount()?;
//! store.remove_container_layer("c1")?;
//! # Ok(()) }
//! ```
//!
//! # On-disk layout
//!
//! ```text
//! ROOT/blobs/sha256/<hex>        content store: manifests, configs, layer blobs
//! ROOT/snapshots/<chain-hex>/fs  one unpacked directory per layer chain id
//! ROOT/l/<16 hex>                short symlinks to snapshots (mount options)
//! ROOT/containers/<id>/{upper,work}  writable layers of containers
//! ROOT/containers/<id>/image     the image the layer is on (its hold)
//! ROOT/empty                     lower dir of images without layers
//! ROOT/index.json                images, tags (atomic rewrite, fsynced)
//! ROOT/lock                      flock serializing every change
//! ROOT/tmp                       staging; cleaned on open
//! ```
//!
//! # Invariants
//!
//! * **All or nothing.** `load` and `import` write everything into a
//!   private staging directory, verify every digest (blob digests from the
//!   manifest, diff ids from the config), and only then move blobs and
//!   snapshots into place and rewrite the index under the lock; a failure
//!   at any point leaves the store as it was.
//! * **Unpack once.** A snapshot is keyed by its OCI chain id and appears
//!   (by rename) only when complete; images sharing a layer chain share it.
//! * **No escapes.** Layer tars are unpacked with dirfd-relative syscalls
//!   that never follow symlinks (see [`unpack`]).
//! * **In use is kept.** An image with a container layer is never deleted;
//!   garbage collection keeps every blob and snapshot an image refers to.

#![forbid(unsafe_code)]

mod archive;
pub mod changes;
mod commit;
pub mod digest;
mod error;
pub mod media;
mod overlay;
pub mod reference;
mod store;
pub mod time;
pub mod unpack;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub use archive::{
    default_import_config, Ingest, LayerStep, LoadedImage, PulledImage, VerifiedBlob,
};
pub use commit::CommitSpec;
pub use digest::Digest;
pub use error::{Error, Result};
pub use oci_spec::image::ImageConfiguration;
pub use overlay::{unmount, Mount, Overlay};
pub use reference::Reference;
pub use store::{spread_subdirectories, GcReport, SpareDirs, SPARE_PREFIX};

use error::io_err;
use store::{Index, Layout};

/// Container layer directories kept made ahead.
const SPARES_KEPT: usize = 8;

/// The image store rooted at one directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    layout: Layout,
    /// Whether the index may still name containers' images (as an older
    /// strato recorded them; a container's layer records its image now):
    /// only then does a removal read and rewrite the index.
    legacy_holds: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Container layer directories (with `upper` and `work`) made ahead.
    spares: std::sync::Arc<SpareDirs>,
}

/// One line of [`ImageStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// The image id (config digest).
    pub id: Digest,
    /// Tags in familiar form (`busybox:latest`), sorted.
    pub repo_tags: Vec<String>,
    /// The config's creation time (RFC 3339), if it has one.
    pub created: Option<String>,
    /// The same as Unix seconds (0 if unknown).
    pub created_unix: i64,
    /// Uncompressed size of its layers in bytes.
    pub size: u64,
    /// Number of containers with a writable layer on it.
    pub containers: usize,
    /// `name@digest` references a registry serves it under (familiar form).
    pub repo_digests: Vec<String>,
    /// The image it was made from (commit, build), if any.
    pub parent: Option<Digest>,
}

/// What [`ImageStore::inspect`] returns.
#[derive(Debug, Clone)]
pub struct ImageDetails {
    /// The image id (config digest).
    pub id: Digest,
    /// Tags in familiar form, sorted.
    pub repo_tags: Vec<String>,
    /// Digest of the stored manifest.
    pub manifest_digest: Digest,
    /// `name@digest` references a registry serves it under (familiar form).
    pub repo_digests: Vec<String>,
    /// Uncompressed size of its layers in bytes.
    pub size: u64,
    /// Layer diff ids, bottom first.
    pub diff_ids: Vec<Digest>,
    /// Layer chain ids, bottom first (the snapshot keys).
    pub chain_ids: Vec<Digest>,
    /// The image it was committed from, if it was.
    pub parent: Option<Digest>,
    /// The full image configuration: `config()` holds Env, Cmd,
    /// Entrypoint, WorkingDir, User, ExposedPorts, Labels, Volumes;
    /// `history()`, `created()`, `architecture()`, `os()` the rest.
    pub config: ImageConfiguration,
}

/// One effect of [`ImageStore::remove`], like Docker's `Untagged`/`Deleted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A tag was removed (familiar form).
    Untagged(String),
    /// The image was deleted.
    Deleted(Digest),
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`, and removes staging
    /// leftovers of crashed loads.
    pub fn open(root: &Path) -> Result<ImageStore> {
        let root = if root.is_absolute() {
            root.to_owned()
        } else {
            std::env::current_dir()
                .map_err(io_err("get current directory for", root))?
                .join(root)
        };
        let layout = Layout { root };
        for d in [
            layout.blobs(),
            layout.snapshots(),
            layout.links(),
            layout.containers(),
            layout.tmp(),
            layout.empty(),
        ] {
            fs::create_dir_all(&d).map_err(io_err("create", &d))?;
        }
        store::spread_subdirectories(&layout.containers());
        {
            // Under the lock: a concurrent index write has its temp file there.
            let _lock = layout.lock()?;
            store::clean_tmp(&layout)?;
        }
        let legacy = !layout.read_index()?.containers.is_empty();
        let spares = SpareDirs::new(&layout.containers(), &["upper", "work"], SPARES_KEPT);
        Ok(ImageStore {
            layout,
            legacy_holds: std::sync::Arc::new(legacy.into()),
            spares: std::sync::Arc::new(spares),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// Loads every image of a `docker save` archive (classic, or Docker
    /// 25+'s that is also an OCI layout) or an OCI image layout tar. Layers
    /// may be plain, gzip or zstd. Either all images are added, or none
    /// and nothing of them is left behind.
    pub fn load(&self, reader: impl Read) -> Result<Vec<LoadedImage>> {
        let _span = tracing::info_span!("image_load", root = %self.layout.root.display()).entered();
        archive::load(&self.layout, reader)
    }

    /// Imports a plain rootfs tar (optionally gzip/zstd) as a one-layer
    /// image for this host's architecture, tagged `reference` if given.
    pub fn import(&self, reader: impl Read, reference: Option<&str>) -> Result<Digest> {
        self.import_with_config(reader, reference, None)
    }

    /// [`Self::import`] with the image config's `config` object given
    /// (`docker import --change`); `None` is [`default_import_config`].
    pub fn import_with_config(
        &self,
        reader: impl Read,
        reference: Option<&str>,
        config: Option<serde_json::Value>,
    ) -> Result<Digest> {
        let tag = reference.map(Reference::parse).transpose()?;
        archive::import(&self.layout, reader, tag, config)
    }

    /// `docker commit`: a new image of the container's writable layer over
    /// its image (see [`commit`]). `ignore` lists mount points to leave out.
    pub fn commit_container(
        &self,
        container_id: &str,
        ignore: &[String],
        spec: &CommitSpec,
    ) -> Result<Digest> {
        validate_container_id(container_id)?;
        let _span = tracing::info_span!("commit", container = container_id).entered();
        let dir = self.layout.containers().join(container_id);
        let parent = {
            let _lock = self.layout.lock()?;
            let index = self.layout.read_index()?;
            index
                .containers
                .get(container_id)
                .cloned()
                .or_else(|| self.layout.read_hold(&dir))
                .ok_or_else(|| Error::NotFound(format!("layer of container {container_id}")))?
        };
        let upper = dir.join("upper");
        let changes = self.container_changes(container_id, ignore)?;
        commit::commit(&self.layout, &parent, &upper, &changes, spec)
    }

    /// A config-only child of `parent` (`None`: of `scratch`, no layers),
    /// as the builder makes for metadata steps.
    pub fn derive(&self, parent: Option<&str>, spec: &CommitSpec) -> Result<Digest> {
        let parent = match parent {
            Some(p) => Some(self.layout.read_index()?.resolve(p)?),
            None => None,
        };
        commit::derive(&self.layout, parent.as_ref(), spec)
    }

    /// The newest child of `parent` (`None`: images without a parent) made
    /// for the step whose `container_config` is `key`: the build cache.
    pub fn find_child(
        &self,
        parent: Option<&str>,
        key: &serde_json::Value,
    ) -> Result<Option<Digest>> {
        let parent = match parent {
            Some(p) => Some(self.layout.read_index()?.resolve(p)?),
            None => None,
        };
        commit::find_child(&self.layout, parent.as_ref(), key)
    }

    /// Starts adding an image fetched from a registry: the caller downloads
    /// and verifies blobs into [`Ingest::download_path`]s (or reuses
    /// [`Ingest::existing_blob`]s), then [`Ingest::commit`]s them. Like
    /// `load`, it is all or nothing: a failed or abandoned ingest leaves
    /// no image, tag or blob behind.
    pub fn ingest(&self) -> Result<Ingest> {
        Ingest::new(&self.layout)
    }

    /// The digest and exact bytes of the manifest stored for an image
    /// (what `push` sends).
    pub fn manifest_of(&self, reference: &str) -> Result<(Digest, Vec<u8>)> {
        let index = self.layout.read_index()?;
        let id = index.resolve(reference)?;
        let d = index.images[&id].manifest.clone();
        let bytes = self.layout.read_blob(&d)?;
        Ok((d, bytes))
    }

    /// The path of blob `d` in the content store, if it is there.
    pub fn blob_path(&self, d: &Digest) -> Option<PathBuf> {
        let p = self.layout.blob(d);
        p.is_file().then_some(p)
    }

    /// Writes the images `refs` as an OCI layout tar that also has Docker's
    /// `manifest.json` (like Docker 25+). A reference by name saves that
    /// tag; a reference by id saves the image untagged.
    pub fn save(&self, refs: &[&str], writer: impl Write) -> Result<()> {
        let index = self.layout.read_index()?;
        let mut items: Vec<archive::SaveItem> = Vec::new();
        for r in refs {
            let id = index.resolve(r)?;
            let tag = Reference::parse(r)
                .ok()
                .filter(|p| p.digest().is_none() && index.tags.contains_key(&p.to_string()))
                .map(|p| p.to_string());
            let manifest = index.images[&id].manifest.clone();
            match items.iter_mut().find(|i| i.manifest == manifest) {
                Some(i) => i.tags.extend(tag),
                None => items.push(archive::SaveItem {
                    manifest,
                    tags: tag.into_iter().collect(),
                }),
            }
        }
        archive::save(&self.layout, &items, writer)
    }

    /// Resolves a reference (tag, full id, unique id prefix, or
    /// `name@manifest-digest`) to an image id.
    pub fn resolve(&self, reference: &str) -> Result<Digest> {
        self.layout.read_index()?.resolve(reference)
    }

    /// Tags the image `source` as `target` (moving the tag if it existed).
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let r = Reference::parse(target)?;
        if r.digest().is_some() {
            return Err(Error::InvalidReference {
                reference: target.to_owned(),
                reason: "a tag cannot contain a digest".into(),
            });
        }
        let _lock = self.layout.lock()?;
        let mut index = self.layout.read_index()?;
        let id = index.resolve(source)?;
        index.tags.insert(r.to_string(), id);
        self.layout.write_index(&index)
    }

    /// Records that a registry serves the image `source` names as
    /// `repo_digest` (`name@sha256:…`), after a push: Docker's `RepoDigests`.
    pub fn add_repo_digest(&self, source: &str, repo_digest: &str) -> Result<()> {
        let parsed = Reference::parse(repo_digest)?;
        let Some(digest) = parsed.digest() else {
            return Err(Error::InvalidReference {
                reference: repo_digest.to_owned(),
                reason: "a repository digest needs @sha256:…".into(),
            });
        };
        let r = parsed.with_digest(digest);
        let _lock = self.layout.lock()?;
        let mut index = self.layout.read_index()?;
        let id = index.resolve(source)?;
        if let Some(rec) = index.images.get_mut(&id) {
            rec.repo_digests.insert(r.to_string());
        }
        self.layout.write_index(&index)
    }

    /// Removes a reference like `docker rmi`: a tag is untagged and the image
    /// deleted when no tag is left and no container uses it; an id deletes
    /// the image, which needs `force` if several tags name it or a container
    /// uses it (forced, an image in use is untagged but kept). Unreferenced
    /// blobs and snapshots are then garbage-collected.
    pub fn remove(&self, reference: &str, force: bool) -> Result<Vec<Removed>> {
        let _lock = self.layout.lock()?;
        let mut index = self.layout.read_index()?;
        let id = index.resolve(reference)?;
        let by_tag = Reference::parse(reference)
            .ok()
            .filter(|r| r.digest().is_none())
            .map(|r| r.to_string())
            .filter(|t| index.tags.contains_key(t));
        let user = self
            .layout
            .holds(&index)?
            .iter()
            .find(|(_, img)| **img == id)
            .map(|(c, _)| c.clone());
        let mut out = Vec::new();
        match by_tag {
            Some(t) => {
                index.tags.remove(&t);
                out.push(Removed::Untagged(reference::familiar(&t)));
            }
            None => {
                let tags = index.full_tags_of(&id);
                if !force {
                    if let Some(c) = &user {
                        return Err(Error::InUse {
                            image: id.to_string(),
                            container: c.clone(),
                        });
                    }
                    if tags.len() > 1 {
                        return Err(Error::MultipleTags {
                            image: id.to_string(),
                            tags: tags
                                .iter()
                                .map(|t| reference::familiar(t))
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                }
                for t in tags {
                    index.tags.remove(&t);
                    out.push(Removed::Untagged(reference::familiar(&t)));
                }
            }
        }
        if user.is_none() && !index.tags.values().any(|v| *v == id) {
            index.images.remove(&id);
            out.push(Removed::Deleted(id));
        }
        self.layout.write_index(&index)?;
        store::gc(&self.layout, &index)?;
        Ok(out)
    }

    /// Lists images, newest first.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let index = self.layout.read_index()?;
        let holds = self.layout.holds(&index)?;
        let mut out: Vec<ImageSummary> = index
            .images
            .iter()
            .map(|(id, rec)| ImageSummary {
                id: id.clone(),
                repo_tags: index.tags_of(id),
                created: rec.created.clone(),
                created_unix: rec
                    .created
                    .as_deref()
                    .and_then(time::parse_rfc3339)
                    .unwrap_or(0),
                size: rec.size,
                containers: holds.values().filter(|v| *v == id).count(),
                repo_digests: index.repo_digests_of(id),
                parent: rec.parent.clone(),
            })
            .collect();
        out.sort_by(|a, b| b.created_unix.cmp(&a.created_unix).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Details and configuration of one image.
    pub fn inspect(&self, reference: &str) -> Result<ImageDetails> {
        let index = self.layout.read_index()?;
        let id = index.resolve(reference)?;
        let rec = &index.images[&id];
        let bytes = self.layout.read_blob(&id)?;
        let config: ImageConfiguration =
            serde_json::from_slice(&bytes).map_err(|source| Error::Json {
                what: format!("image config {id}"),
                source,
            })?;
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse())
            .collect::<Result<Vec<Digest>>>()?;
        Ok(ImageDetails {
            repo_tags: index.tags_of(&id),
            manifest_digest: rec.manifest.clone(),
            repo_digests: index.repo_digests_of(&id),
            size: rec.size,
            diff_ids,
            chain_ids: rec.chain.clone(),
            parent: rec.parent.clone(),
            config,
            id,
        })
    }

    /// Deletes dangling images (no tag, no container) and garbage-collects;
    /// returns the deleted ids.
    pub fn prune(&self) -> Result<Vec<Digest>> {
        let _lock = self.layout.lock()?;
        let mut index = self.layout.read_index()?;
        let holds = self.layout.holds(&index)?;
        // Kept: tagged or used images and their ancestors (a build's
        // intermediate images under a tagged result stay, as in dockerd).
        let mut keep: std::collections::BTreeSet<Digest> = std::collections::BTreeSet::new();
        for id in index.images.keys() {
            if !index.tags.values().any(|v| v == id) && !holds.values().any(|v| v == id) {
                continue;
            }
            let mut cur = Some(id.clone());
            while let Some(c) = cur {
                if !keep.insert(c.clone()) {
                    break;
                }
                cur = index.images.get(&c).and_then(|r| r.parent.clone());
            }
        }
        let dangling: Vec<Digest> = index
            .images
            .keys()
            .filter(|id| !keep.contains(*id))
            .cloned()
            .collect();
        for id in &dangling {
            index.images.remove(id);
        }
        self.layout.write_index(&index)?;
        store::gc(&self.layout, &index)?;
        Ok(dangling)
    }

    /// Deletes blobs and snapshots that no image refers to.
    pub fn gc(&self) -> Result<GcReport> {
        let _lock = self.layout.lock()?;
        let index = self.layout.read_index()?;
        store::gc(&self.layout, &index)
    }

    /// Prepares the writable layer `containers/<container_id>/{upper,work}`
    /// (kept if it exists, so a restarted container keeps its changes),
    /// records that the container uses the image, and mounts the overlay
    /// at `target` (an existing directory).
    pub fn rootfs_for(&self, image: &str, container_id: &str, target: &Path) -> Result<Mount> {
        self.rootfs_for_with(image, container_id, target, RootfsOptions::default())
    }

    /// [`Self::rootfs_for`] with options.
    pub fn rootfs_for_with(
        &self,
        image: &str,
        container_id: &str,
        target: &Path,
        opts: RootfsOptions,
    ) -> Result<Mount> {
        let dir = self.layout.containers().join(container_id);
        let fresh = !dir.exists();
        let overlay = self.overlay_for(image, container_id, opts)?;
        // The hold keeps the image's layers from GC: the mount itself (the
        // kernel's overlay setup, milliseconds) runs without the store's
        // lock, so parallel starts do not queue on it.
        overlay.mount(target).inspect_err(|_| {
            if fresh {
                let _lock = self.layout.lock();
                let _ = fs::remove_dir_all(&dir);
            }
        })
    }

    /// Prepares the writable layer `containers/<container_id>/{upper,work}`
    /// (kept if it exists, so a restarted container keeps its changes) and
    /// records that the container uses the image: the overlay to mount
    /// (by the runtime, in the container's own mount namespace, or by
    /// [`Overlay::mount`]).
    pub fn overlay_for(
        &self,
        image: &str,
        container_id: &str,
        opts: RootfsOptions,
    ) -> Result<Overlay> {
        validate_container_id(container_id)?;
        let _span = tracing::info_span!("rootfs", container = container_id).entered();
        let _lock = self.layout.lock()?;
        let index = self.layout.read_index()?;
        let id = index.resolve(image)?;
        let rec = index.images[&id].clone();
        let dir = self.layout.containers().join(container_id);
        let held = index
            .containers
            .get(container_id)
            .cloned()
            .or_else(|| self.layout.read_hold(&dir));
        if let Some(other) = held.as_ref().filter(|o| **o != id) {
            return Err(Error::ContainerExists {
                container: container_id.to_owned(),
                image: other.to_string(),
            });
        }
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        let fresh = !dir.exists();
        let made = (|| {
            if fresh {
                // With its upper and work directories.
                self.spares
                    .make(container_id)
                    .map_err(io_err("create", &dir))?;
            } else {
                for d in [&upper, &work] {
                    fs::create_dir_all(d).map_err(io_err("create", d))?;
                }
            }
            let mut lowers: Vec<PathBuf> = Vec::new();
            for c in rec.chain.iter().rev() {
                lowers.push(overlay::short_lower(&self.layout, c)?);
            }
            if lowers.is_empty() {
                lowers.push(self.layout.empty());
            }
            let ov = Overlay {
                lowers,
                upper: upper.clone(),
                work: work.clone(),
                volatile: opts.volatile,
                container_id: container_id.to_owned(),
            };
            overlay::prepare(&ov)?;
            if held.is_none() {
                self.layout.write_hold(&dir, &id)?;
            }
            Ok(ov)
        })();
        if made.is_err() && fresh {
            let _ = fs::remove_dir_all(&dir);
        }
        made
    }

    /// Makes container layer directories ahead ([`SpareDirs`]), for the
    /// next [`ImageStore::overlay_for`]s. Blocking.
    pub fn refill_spares(&self) {
        self.spares.refill();
    }

    /// Unmounts a container's overlay (the layer itself is kept).
    pub fn unmount(&self, mount: Mount) -> Result<()> {
        mount.unmount()
    }

    /// Deletes a container's writable layer (unmount it first) and drops
    /// its hold on the image. Removing an unknown container is not an error.
    pub fn remove_container_layer(&self, container_id: &str) -> Result<()> {
        if let Some(retired) = self.retire_container_layer(container_id)? {
            fs::remove_dir_all(&retired).map_err(io_err("remove container layer", retired))?;
        }
        Ok(())
    }

    /// Takes a container's writable layer out of the store at once (a
    /// rename into the store's `tmp`, which a restart empties) and drops
    /// its hold on the image, leaving the deletion of its files to the
    /// caller: the returned directory, if the container had a layer.
    /// Deleting costs a discard per freed block on some file systems, so a
    /// `--rm` container is answered as removed before its files are gone.
    pub fn retire_container_layer(&self, container_id: &str) -> Result<Option<PathBuf>> {
        validate_container_id(container_id)?;
        let _lock = self.layout.lock()?;
        let dir = self.layout.containers().join(container_id);
        let retired = self
            .layout
            .tmp()
            .join(store::unique(&format!("removed-{container_id}")));
        let moved = match fs::rename(&dir, &retired) {
            Ok(()) => Some(retired),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("remove container layer", dir)(e)),
        };
        use std::sync::atomic::Ordering;
        if self.legacy_holds.load(Ordering::Relaxed) {
            let mut index: Index = self.layout.read_index()?;
            if index.containers.remove(container_id).is_some() {
                self.layout.write_index(&index)?;
            }
            if index.containers.is_empty() {
                self.legacy_holds.store(false, Ordering::Relaxed);
            }
        }
        Ok(moved)
    }

    /// Bytes in a container's writable layer (`SizeRw`): regular files
    /// and symlinks, a file with several links counted once; 0 for a
    /// container without a layer.
    pub fn container_layer_size(&self, container_id: &str) -> Result<u64> {
        validate_container_id(container_id)?;
        let upper = self.layout.containers().join(container_id).join("upper");
        let mut seen = std::collections::HashSet::new();
        let mut total = 0u64;
        let mut stack = vec![upper];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read directory", &dir)(e)),
            };
            for e in entries {
                let e = e.map_err(io_err("read directory", &dir))?;
                let m = e.metadata().map_err(io_err("stat", e.path()))?;
                use std::os::unix::fs::MetadataExt;
                if m.is_dir() {
                    stack.push(e.path());
                } else if (m.is_file() || m.file_type().is_symlink())
                    && (m.nlink() == 1 || seen.insert((m.dev(), m.ino())))
                {
                    total += m.len();
                }
            }
        }
        Ok(total)
    }

    /// The filesystem changes of a container's writable layer over its
    /// image (see [`changes::diff`]); none for a container without a layer
    /// (never started). `ignore` lists mount points to leave out.
    pub fn container_changes(
        &self,
        container_id: &str,
        ignore: &[String],
    ) -> Result<Vec<changes::Change>> {
        validate_container_id(container_id)?;
        let dir = self.layout.containers().join(container_id);
        let upper = dir.join("upper");
        if !upper.is_dir() {
            return Ok(Vec::new());
        }
        let lowers: Vec<PathBuf> = {
            let _lock = self.layout.lock()?;
            let index = self.layout.read_index()?;
            let image = index
                .containers
                .get(container_id)
                .cloned()
                .or_else(|| self.layout.read_hold(&dir));
            match image.and_then(|i| index.images.get(&i).cloned()) {
                Some(rec) => rec
                    .chain
                    .iter()
                    .rev()
                    .map(|c| self.layout.snapshot(c).join("fs"))
                    .collect(),
                None => Vec::new(),
            }
        };
        changes::diff(&upper, &lowers, ignore)
    }
}

/// How [`ImageStore::rootfs_for_with`] mounts a container's root.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RootfsOptions {
    /// The writable layer is thrown away with the container (`--rm`): it is
    /// never synced, so unmounting it does not sync the host's filesystem;
    /// after a host crash its content is undefined. See overlayfs's
    /// `volatile` option.
    pub volatile: bool,
}

fn validate_container_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidContainerId(id.to_owned()))
    }
}
