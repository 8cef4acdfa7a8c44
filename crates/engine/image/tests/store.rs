//! Integration tests of the image store. They run as root against the real
//! kernel (overlayfs, xattrs, device nodes), like CI does.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use strato_image::{Error, ImageStore, Removed};

fn busybox_bytes() -> Vec<u8> {
    // The real static busybox when installed (CI installs busybox-static),
    // otherwise a stand-in: the tests only look at the bytes.
    fs::read("/bin/busybox").unwrap_or_else(|_| b"#!/bin/sh\necho busybox\n".to_vec())
}

/// A busybox-like base layer.
fn base_layer() -> Vec<u8> {
    let bb = busybox_bytes();
    layer(&[
        E::Dir("./", 0o755),
        E::Dir("bin", 0o755),
        E::File("bin/busybox", &bb, 0o755),
        E::Symlink("bin/sh", "busybox"),
        E::Hardlink("bin/ls", "bin/busybox"),
        E::Dir("etc", 0o755),
        E::File("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644),
        E::File("etc/hostname", b"base\n", 0o644),
        E::Dir("opt", 0o755),
        E::File("opt/old", b"old", 0o644),
        E::Dir("opt/sub", 0o700),
        E::FileOwned("home/user/suid", b"x", 0o4755, 1000, 1001, 1_500_000_000),
        E::Fifo("run/fifo"),
        E::FileXattr("etc/xattr", b"x", "user.test", b"hello"),
        E::Dir("tmp", 0o1777),
    ])
}

/// A layer deleting /etc/passwd and making /opt opaque.
fn top_layer() -> Vec<u8> {
    layer(&[
        E::Dir("etc", 0o755),
        E::File("etc/.wh.passwd", b"", 0o644),
        E::Dir("opt", 0o755),
        E::File("opt/.wh..wh..opq", b"", 0o644),
        E::File("opt/new", b"new", 0o644),
        E::File("etc/hostname", b"top\n", 0o644),
    ])
}

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = ImageStore::open(&dir.path().join("store")).unwrap();
    (dir, s)
}

fn snapshot_dirs(s: &ImageStore) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(s.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn blob_count(s: &ImageStore) -> usize {
    fs::read_dir(s.root().join("blobs/sha256")).unwrap().count()
}

#[test]
fn loads_docker_save_and_mounts_an_overlay_that_honours_whiteouts() {
    let (dir, s) = store();
    let base = base_layer();
    let top = top_layer();
    let img = Img {
        config: config(&[&base, &top], &["sh", "-c", "echo hi"]),
        layers: vec![base.clone(), gzip(&top)],
        tags: vec!["busybox:latest".into()],
    };
    let loaded = s.load(&docker_save(&[img])[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].tags, ["busybox:latest"]);
    let id = loaded[0].id.clone();
    assert_eq!(s.resolve("busybox").unwrap(), id);
    assert_eq!(s.resolve("docker.io/library/busybox:latest").unwrap(), id);
    assert_eq!(s.resolve(&id.hex()[..8]).unwrap(), id);

    // Snapshots: the whiteout became a 0:0 char device, the opaque marker an xattr.
    let chain = s.inspect("busybox").unwrap().chain_ids;
    let top_fs = s.root().join("snapshots").join(chain[1].hex()).join("fs");
    let wh = fs::symlink_metadata(top_fs.join("etc/passwd")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!top_fs.join("etc/.wh.passwd").exists());
    let opq = xattr(&top_fs.join("opt"), "trusted.overlay.opaque");
    assert_eq!(opq.as_deref(), Some(&b"y"[..]));
    let base_fs = s.root().join("snapshots").join(chain[0].hex()).join("fs");
    let suid = fs::metadata(base_fs.join("home/user/suid")).unwrap();
    assert_eq!(suid.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(
        (suid.uid(), suid.gid(), suid.mtime()),
        (1000, 1001, 1_500_000_000)
    );
    assert_eq!(
        fs::metadata(base_fs.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        fs::metadata(base_fs.join("opt/sub")).unwrap().mode() & 0o7777,
        0o700
    );
    assert_eq!(
        fs::metadata(base_fs.join("etc")).unwrap().mtime(),
        1_600_000_000
    );
    assert_eq!(
        fs::metadata(base_fs.join("bin/ls")).unwrap().ino(),
        fs::metadata(base_fs.join("bin/busybox")).unwrap().ino()
    );
    assert!(fs::symlink_metadata(base_fs.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        xattr(&base_fs.join("etc/xattr"), "user.test").as_deref(),
        Some(&b"hello"[..])
    );

    // The container's view.
    let target = dir.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    let m = s.rootfs_for("busybox", "c1", &target).unwrap();
    assert!(
        !target.join("etc/passwd").exists(),
        "whiteout must hide the lower file"
    );
    assert_eq!(fs::read(target.join("etc/hostname")).unwrap(), b"top\n");
    assert!(
        !target.join("opt/old").exists(),
        "opaque dir must hide lower entries"
    );
    assert!(!target.join("opt/sub").exists());
    assert_eq!(fs::read(target.join("opt/new")).unwrap(), b"new");
    assert_eq!(
        fs::read_link(target.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read(target.join("bin/busybox")).unwrap(),
        busybox_bytes()
    );
    fs::write(target.join("written"), b"by the container").unwrap();
    assert!(s.root().join("containers/c1/upper/written").exists());
    assert_eq!(s.list().unwrap()[0].containers, 1);
    s.load(&docker_save(&[Img::new(vec![layer(&[E::File("o", b"o", 0o644)])], "other")])[..])
        .unwrap();
    let other_target = dir.path().join("other");
    fs::create_dir(&other_target).unwrap();
    assert!(matches!(
        s.rootfs_for("other", "c1", &other_target),
        Err(Error::ContainerExists { .. })
    ));
    s.remove("other", false).unwrap();

    // In use: deleting by id needs force; untagging keeps the image.
    assert!(matches!(
        s.remove(id.as_str(), false),
        Err(Error::InUse { .. })
    ));
    assert_eq!(
        s.remove("busybox", false).unwrap(),
        [Removed::Untagged("busybox:latest".into())]
    );
    assert_eq!(s.list().unwrap().len(), 1);
    assert!(
        s.prune().unwrap().is_empty(),
        "an image in use is not dangling"
    );

    s.unmount(m).unwrap();
    s.remove_container_layer("c1").unwrap();
    assert!(!s.root().join("containers/c1").exists());
    assert_eq!(s.prune().unwrap(), [id]);
    assert!(s.list().unwrap().is_empty());
    assert!(snapshot_dirs(&s).is_empty());
    assert_eq!(blob_count(&s), 0);
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(p, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn inspect_shows_the_config() {
    let (_dir, s) = store();
    let base = base_layer();
    let img = Img::new(vec![base], "team/app:v1");
    s.load(&docker_save(&[img])[..]).unwrap();
    let d = s.inspect("team/app:v1").unwrap();
    assert_eq!(d.repo_tags, ["team/app:v1"]);
    let c = d.config.config().as_ref().unwrap();
    assert_eq!(c.cmd().as_deref(), Some(&["sh".to_owned()][..]));
    assert_eq!(c.working_dir().as_deref(), Some("/work"));
    assert_eq!(c.user().as_deref(), Some("1000:1000"));
    assert_eq!(
        c.exposed_ports().as_deref(),
        Some(&["80/tcp".to_owned()][..])
    );
    assert_eq!(c.volumes().as_deref(), Some(&["/data".to_owned()][..]));
    assert_eq!(c.labels().as_ref().unwrap()["org.example"], "yes");
    assert!(c.env().as_ref().unwrap().contains(&"FOO=bar".to_owned()));
    assert_eq!(d.diff_ids.len(), 1);
    assert_eq!(d.config.history().as_ref().unwrap().len(), 1);
    let l = s.list().unwrap();
    assert_eq!(l[0].created_unix, 1_704_164_645);
    assert!(l[0].size > 0);
}

#[test]
fn loads_oci_layouts_with_zstd_and_nested_indexes() {
    let (dir, s) = store();
    let base = base_layer();
    let top = top_layer();
    let a = Img {
        config: config(&[&base, &top], &["sh"]),
        layers: vec![zstd(&base), top.clone()],
        tags: vec!["docker.io/library/alpine:3".into()],
    };
    let b = Img::new(vec![gzip(&base)], "registry:5000/x/y:z");
    let loaded = s.load(&oci_layout(&[a, b], true)[..]).unwrap();
    let mut tags: Vec<_> = loaded.iter().flat_map(|l| l.tags.clone()).collect();
    tags.sort();
    assert_eq!(tags, ["alpine:3", "registry:5000/x/y:z"]);
    // Both images share the base layer: one snapshot for it, one for a's top.
    assert_eq!(snapshot_dirs(&s).len(), 2);
    let target = dir.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    let m = s.rootfs_for("alpine:3", "c", &target).unwrap();
    assert_eq!(fs::read(target.join("opt/new")).unwrap(), b"new");
    m.unmount().unwrap();
}

#[test]
fn a_shared_layer_is_unpacked_once() {
    let (_dir, s) = store();
    let base = base_layer();
    let top = top_layer();
    s.load(&docker_save(&[Img::new(vec![base.clone()], "a")])[..])
        .unwrap();
    let snaps = snapshot_dirs(&s);
    assert_eq!(snaps.len(), 1);
    let base_snap = s.root().join("snapshots").join(&snaps[0]);
    let ino = fs::metadata(&base_snap).unwrap().ino();
    // Same layer content, gzip this time: same diff id, same chain id.
    s.load(&docker_save(&[Img::new(vec![gzip(&base), top], "b")])[..])
        .unwrap();
    assert_eq!(snapshot_dirs(&s).len(), 2);
    assert_eq!(
        fs::metadata(&base_snap).unwrap().ino(),
        ino,
        "the base snapshot was not redone"
    );
    assert_eq!(
        s.inspect("a").unwrap().chain_ids[0],
        s.inspect("b").unwrap().chain_ids[0]
    );
}

#[test]
fn save_then_load_gives_the_same_ids_and_tags() {
    let (_dir, s) = store();
    let base = base_layer();
    let top = top_layer();
    let loaded = s
        .load(
            &docker_save(&[
                Img::new(vec![base.clone(), gzip(&top)], "one:1"),
                Img::new(vec![base], "two"),
            ])[..],
        )
        .unwrap();
    let mut out = Vec::new();
    s.save(&["one:1", "two", loaded[1].id.as_str()], &mut out)
        .unwrap();

    // The archive is an OCI layout with a Docker manifest.json.
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(&out[..]);
    for e in ar.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    for n in ["oci-layout", "index.json", "manifest.json"] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }

    let (_dir2, s2) = store();
    let again = s2.load(&out[..]).unwrap();
    let mut a: Vec<_> = loaded
        .iter()
        .map(|l| (l.id.clone(), l.tags.clone()))
        .collect();
    let mut b: Vec<_> = again
        .iter()
        .map(|l| (l.id.clone(), l.tags.clone()))
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_eq!(
        s2.inspect("one:1").unwrap().manifest_digest,
        s.inspect("one:1").unwrap().manifest_digest,
        "the manifest is kept as it is"
    );
    // As an OCI layout alone (manifest.json removed) it loads the same ids.
    let (_dir3, s3) = store();
    let oci_only = strip_entry(&out, "manifest.json");
    let mut ids: Vec<_> = s3
        .load(&oci_only[..])
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    ids.sort();
    let mut want: Vec<_> = loaded.iter().map(|l| l.id.clone()).collect();
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(s3.resolve("one:1").unwrap(), s.resolve("one:1").unwrap());
}

fn strip_entry(archive: &[u8], name: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(archive);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == name {
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn import_makes_a_single_layer_image() {
    let (dir, s) = store();
    let id = s
        .import(&gzip(&base_layer())[..], Some("imported:v1"))
        .unwrap();
    let d = s.inspect("imported:v1").unwrap();
    assert_eq!(d.id, id);
    assert_eq!(d.diff_ids, [sha(&base_layer()).parse().unwrap()]);
    assert_eq!(d.config.os().to_string(), "linux");
    assert!(d.config.created().is_some());
    let target = dir.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    let m = s.rootfs_for("imported:v1", "imp", &target).unwrap();
    assert!(target.join("etc/passwd").exists());
    m.unmount().unwrap();
}

#[test]
fn an_image_without_layers_mounts_an_empty_root() {
    let (dir, s) = store();
    s.load(&docker_save(&[Img::new(vec![], "scratch-ish")])[..])
        .unwrap();
    let target = dir.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    let m = s.rootfs_for("scratch-ish", "e", &target).unwrap();
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    fs::write(target.join("f"), b"x").unwrap();
    m.unmount().unwrap();
    s.remove_container_layer("e").unwrap();
}

#[test]
fn a_volatile_root_mounts_again_and_keeps_its_writes() {
    let (dir, s) = store();
    s.import(&gzip(&base_layer())[..], Some("v:1")).unwrap();
    let target = dir.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    let opts = strato_image::RootfsOptions { volatile: true };
    let m = s.rootfs_for_with("v:1", "vol", &target, opts).unwrap();
    let options = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.contains(target.to_str().unwrap()))
        .map(str::to_owned)
        .unwrap();
    assert!(options.contains("volatile"), "{options}");
    fs::write(target.join("kept"), b"x").unwrap();
    m.unmount().unwrap();
    // The kernel leaves its mark in the work dir; mounting again (volatile
    // or not) still works and shows the layer.
    assert!(s
        .root()
        .join("containers/vol/work/work/incompat/volatile")
        .exists());
    let m = s.rootfs_for_with("v:1", "vol", &target, opts).unwrap();
    assert_eq!(fs::read(target.join("kept")).unwrap(), b"x");
    m.unmount().unwrap();
    let m = s.rootfs_for("v:1", "vol", &target).unwrap();
    assert_eq!(fs::read(target.join("kept")).unwrap(), b"x");
    m.unmount().unwrap();
    s.remove_container_layer("vol").unwrap();
    assert!(!s.root().join("containers/vol").exists());
}

#[test]
fn container_holds_live_with_the_layer_and_old_index_holds_count() {
    let (dir, s) = store();
    let id = s.import(&gzip(&base_layer())[..], Some("h:1")).unwrap();
    let target = dir.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    let index = s.root().join("index.json");
    let before = fs::read(&index).unwrap();
    let m = s.rootfs_for("h:1", "c1", &target).unwrap();
    // Starting a container leaves the index alone; its hold is its layer's.
    assert_eq!(fs::read(&index).unwrap(), before);
    assert_eq!(
        fs::read_to_string(s.root().join("containers/c1/image")).unwrap(),
        id.to_string()
    );
    assert_eq!(s.list().unwrap()[0].containers, 1);
    assert!(matches!(
        s.remove(id.as_str(), false),
        Err(Error::InUse { .. })
    ));
    m.unmount().unwrap();
    s.remove_container_layer("c1").unwrap();
    assert_eq!(s.list().unwrap()[0].containers, 0);
    // A store written before holds were files keeps them in the index.
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&index).unwrap()).unwrap();
    v["containers"] = serde_json::json!({ "old": id.to_string() });
    fs::write(&index, serde_json::to_vec(&v).unwrap()).unwrap();
    // (found as the store opens, as after an upgrade)
    let s = ImageStore::open(s.root()).unwrap();
    assert_eq!(s.list().unwrap()[0].containers, 1);
    assert!(s.prune().unwrap().is_empty());
    assert!(matches!(
        s.remove(id.as_str(), false),
        Err(Error::InUse { .. })
    ));
    s.remove_container_layer("old").unwrap();
    assert_eq!(s.list().unwrap()[0].containers, 0);
}

#[test]
fn a_retired_layer_leaves_at_once_and_a_reopened_store_deletes_it() {
    let (dir, s) = store();
    let id = s.import(&gzip(&base_layer())[..], Some("r:1")).unwrap();
    let target = dir.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    let m = s.rootfs_for("r:1", "gone", &target).unwrap();
    fs::write(target.join("data"), b"x").unwrap();
    m.unmount().unwrap();
    let retired = s
        .retire_container_layer("gone")
        .unwrap()
        .expect("the layer was there");
    // Out of the store's view at once: no layer, no hold on the image.
    assert!(!s.root().join("containers/gone").exists());
    assert_eq!(s.list().unwrap()[0].containers, 0);
    s.remove(id.as_str(), false)
        .expect("an image no container holds is removed without force");
    // Its files wait where a restart finds them.
    assert!(
        retired.starts_with(s.root().join("tmp")),
        "{}",
        retired.display()
    );
    assert_eq!(fs::read(retired.join("upper/data")).unwrap(), b"x");
    assert!(s.retire_container_layer("gone").unwrap().is_none());
    drop(s);
    let _s = ImageStore::open(&dir.path().join("store")).unwrap();
    assert!(!retired.exists(), "open left a retired layer behind");
}

#[test]
fn many_layers_fit_the_mount_options() {
    let (dir, s) = store();
    // 130 layers need ~5 KiB of lowerdir even with short links: more than
    // one page, so the store must use lowerdir+.
    let layers: Vec<Vec<u8>> = (0..130)
        .map(|i| {
            let name = format!("f{i}");
            layer(&[E::File(&name, name.as_bytes(), 0o644)])
        })
        .collect();
    s.load(&docker_save(&[Img::new(layers, "tall")])[..])
        .unwrap();
    let target = dir.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    let m = s.rootfs_for("tall", "t", &target).unwrap();
    assert_eq!(fs::read(target.join("f0")).unwrap(), b"f0");
    assert_eq!(fs::read(target.join("f129")).unwrap(), b"f129");
    m.unmount().unwrap();
}

#[test]
fn rmi_untags_then_deletes_and_collects_garbage() {
    let (_dir, s) = store();
    let base = base_layer();
    let top = top_layer();
    s.load(
        &docker_save(&[
            Img::new(vec![base.clone()], "a"),
            Img::new(vec![base, top], "b"),
        ])[..],
    )
    .unwrap();
    s.tag("a", "a:second").unwrap();
    assert_eq!(
        s.inspect("a:second").unwrap().repo_tags,
        ["a:latest", "a:second"]
    );
    let a = s.resolve("a").unwrap();
    assert!(matches!(
        s.remove(a.as_str(), false),
        Err(Error::MultipleTags { .. })
    ));
    assert_eq!(
        s.remove("a:second", false).unwrap(),
        [Removed::Untagged("a:second".into())]
    );
    let blobs_before = blob_count(&s);
    assert_eq!(
        s.remove("a", false).unwrap(),
        [Removed::Untagged("a:latest".into()), Removed::Deleted(a)]
    );
    // The base snapshot is still b's bottom layer; a's config and manifest are gone.
    assert_eq!(snapshot_dirs(&s).len(), 2);
    assert_eq!(blob_count(&s), blobs_before - 2);
    let b = s.resolve("b").unwrap();
    let r = s.remove(&b.hex()[..12], true).unwrap();
    assert_eq!(
        r,
        [Removed::Untagged("b:latest".into()), Removed::Deleted(b)]
    );
    assert!(snapshot_dirs(&s).is_empty());
    assert_eq!(blob_count(&s), 0);
    assert!(fs::read_dir(s.root().join("l")).unwrap().next().is_none());
    assert!(matches!(s.resolve("b"), Err(Error::NotFound(_))));
}

#[test]
fn open_cleans_stale_staging() {
    let (dir, s) = store();
    fs::create_dir_all(s.root().join("tmp/stage-dead/x")).unwrap();
    fs::write(s.root().join("tmp/index-dead"), b"x").unwrap();
    let s = ImageStore::open(&dir.path().join("store")).unwrap();
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn classic_docker_save_with_symlinked_layers_loads() {
    // Old `docker save` links a layer seen twice to its first copy.
    let (_dir, s) = store();
    let base = base_layer();
    let img = Img::new(vec![base.clone(), base.clone()], "dup");
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add(&mut b, "aaa/layer.tar", &base);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
        .unwrap();
    add(&mut b, "cfg.json", &img.config);
    let manifest = serde_json::json!([{"Config": "cfg.json", "RepoTags": ["dup:latest"], "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]);
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let loaded = s.load(&b.into_inner().unwrap()[..]).unwrap();
    assert_eq!(loaded[0].id.as_str(), img.id());
    // Same diff id twice: two different chain ids.
    assert_eq!(snapshot_dirs(&s).len(), 2);
}

#[test]
fn concurrent_loads_share_layers_and_keep_the_index_whole() {
    let (_dir, s) = store();
    let base = base_layer();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            let base = base.clone();
            std::thread::spawn(move || {
                let name = format!("f{i}");
                let own = layer(&[E::File(&name, b"x", 0o644)]);
                let tag = format!("img{i}");
                s.load(&docker_save(&[Img::new(vec![base, own], &tag)])[..])
                    .unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let list = s.list().unwrap();
    assert_eq!(list.len(), 4);
    // One base snapshot plus one per image.
    assert_eq!(snapshot_dirs(&s).len(), 5);
    for i in 0..4 {
        s.resolve(&format!("img{i}")).unwrap();
    }
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn interleaved_entries_and_replacements_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fs");
    fs::create_dir(&root).unwrap();
    let l = layer(&[
        E::File("a/1", b"1", 0o644),
        E::File("a/2", b"2", 0o644),
        E::Dir("b", 0o755),
        E::File("a/3", b"3", 0o644),
        E::Dir("e", 0o755),
        E::File("e", b"file replaces empty dir", 0o644),
        E::File("b/1", b"b1", 0o644),
        E::Symlink("a/2", "1"),
        E::File("a/4", b"4", 0o644),
        E::File("a/1", b"one again", 0o600),
    ]);
    strato_image::unpack::unpack(&l[..], &root).unwrap();
    assert_eq!(fs::read(root.join("a/1")).unwrap(), b"one again");
    assert_eq!(fs::read_link(root.join("a/2")).unwrap(), Path::new("1"));
    assert_eq!(fs::read(root.join("a/3")).unwrap(), b"3");
    assert_eq!(fs::read(root.join("a/4")).unwrap(), b"4");
    assert_eq!(fs::read(root.join("b/1")).unwrap(), b"b1");
    assert_eq!(
        fs::read(root.join("e")).unwrap(),
        b"file replaces empty dir"
    );
    assert_eq!(
        fs::metadata(root.join("a/1")).unwrap().mode() & 0o777,
        0o600
    );
}

#[test]
fn loads_docker_schema2_media_types_in_an_oci_layout() {
    let (_dir, s) = store();
    let img = Img::new(
        vec![gzip(&base_layer()), gzip(&top_layer())],
        "quay.io/org/app:2",
    );
    let loaded = s.load(&oci_layout_docker_types(&[img])[..]).unwrap();
    assert_eq!(loaded[0].tags, ["quay.io/org/app:2"]);
    let d = s.inspect("quay.io/org/app:2").unwrap();
    assert_eq!(d.diff_ids.len(), 2);
    // Saved again, the Docker manifest is kept byte for byte.
    let mut out = Vec::new();
    s.save(&["quay.io/org/app:2"], &mut out).unwrap();
    let (_dir2, s2) = store();
    s2.load(&out[..]).unwrap();
    assert_eq!(
        s2.inspect("quay.io/org/app:2").unwrap().manifest_digest,
        d.manifest_digest
    );
}

#[test]
fn derived_images_cache_lookup_and_prune_keeping_ancestors() {
    let (_d, s) = store();
    let base = s.import(&base_layer()[..], Some("base:1")).unwrap();
    let key = serde_json::json!({"Cmd": ["#(nop) ENV A=1"]});
    let spec = strato_image::CommitSpec {
        config: serde_json::json!({"Env": ["A=1"]}),
        created_by: "ENV A=1".into(),
        container_config: key.clone(),
        ..Default::default()
    };
    // A config-only child: same layers, new config, parent recorded.
    let child = s.derive(Some("base:1"), &spec).unwrap();
    let d = s.inspect(child.as_str()).unwrap();
    assert_eq!(d.parent.as_ref(), Some(&base));
    assert_eq!(d.chain_ids, s.inspect("base:1").unwrap().chain_ids);
    assert_eq!(
        d.config
            .config()
            .as_ref()
            .unwrap()
            .env()
            .as_deref()
            .unwrap(),
        ["A=1"]
    );
    let hist = d.config.history().clone().unwrap();
    assert!(hist.last().unwrap().empty_layer().unwrap_or(false));
    // The cache finds it by parent and key only.
    assert_eq!(
        s.find_child(Some("base:1"), &key).unwrap(),
        Some(child.clone())
    );
    assert_eq!(s.find_child(None, &key).unwrap(), None);
    let other = serde_json::json!({"Cmd": ["#(nop) ENV A=2"]});
    assert_eq!(s.find_child(Some("base:1"), &other).unwrap(), None);
    // FROM scratch: no layers, no parent.
    let scratch = s.derive(None, &spec).unwrap();
    assert!(s.inspect(scratch.as_str()).unwrap().chain_ids.is_empty());
    assert_eq!(s.find_child(None, &key).unwrap(), Some(scratch.clone()));
    // A tagged grandchild keeps its untagged parent through a prune; the
    // untagged scratch image goes.
    let grand = s.derive(Some(child.as_str()), &spec).unwrap();
    s.tag(grand.as_str(), "top:1").unwrap();
    assert_eq!(s.prune().unwrap(), [scratch]);
    assert!(s.inspect(child.as_str()).is_ok());
}

#[test]
fn container_layers_are_spread_over_the_file_system_where_it_can() {
    use rustix::fs::{ioctl_getflags, IFlags};
    let flags = |p: &Path| ioctl_getflags(fs::File::open(p).unwrap());
    let (dir, s) = store();
    let containers = dir.path().join("store/containers");
    // ext4 (as on the machines this runs on) keeps the flag; a file system
    // without inode flags refuses to tell, and the store opens all the same.
    match flags(&containers) {
        Ok(f) => assert!(f.contains(IFlags::TOPDIR), "{containers:?}: {f:?}"),
        Err(e) => eprintln!("{containers:?}: no inode flags here ({e})"),
    }
    // Marking it again (every daemon start) changes nothing.
    strato_image::spread_subdirectories(&containers);
    if let Ok(f) = flags(&containers) {
        assert!(f.contains(IFlags::TOPDIR));
    }
    // A missing directory is not an error.
    strato_image::spread_subdirectories(&dir.path().join("nowhere"));
    drop(s);
}

#[test]
fn container_directories_made_ahead_are_taken_by_rename_and_outlive_a_restart() {
    use strato_image::{SpareDirs, SPARE_PREFIX};
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path();
    let spares = |p: &Path| {
        fs::read_dir(p)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(SPARE_PREFIX))
            .count()
    };
    let d = SpareDirs::new(parent, &["upper", "work"], 2);
    // None ready: made on the spot, subdirectories included.
    let a = d.make("a").unwrap();
    assert!(a.join("upper").is_dir() && a.join("work").is_dir());
    d.refill();
    assert_eq!(spares(parent), 2);
    let b = d.make("b").unwrap();
    assert!(b.join("upper").is_dir() && b.join("work").is_dir());
    assert_eq!(spares(parent), 1, "one spare taken");
    // A name in use is refused, and the spare stays for the next one.
    fs::write(b.join("upper/file"), b"x").unwrap();
    assert_eq!(
        d.make("b").unwrap_err().kind(),
        std::io::ErrorKind::AlreadyExists
    );
    assert_eq!(fs::read(b.join("upper/file")).unwrap(), b"x");
    // Leftovers of an earlier run are taken up.
    let again = SpareDirs::new(parent, &["upper", "work"], 2);
    again.make("c").unwrap();
    assert_eq!(spares(parent), 0);
    again.refill();
    assert_eq!(spares(parent), 2);
}

#[test]
fn a_store_makes_layer_directories_ahead_and_they_hold_no_image() {
    let (dir, s) = store();
    let id = s.import(&gzip(&base_layer())[..], Some("sp:1")).unwrap();
    s.refill_spares();
    let containers = dir.path().join("store/containers");
    let before = fs::read_dir(&containers).unwrap().count();
    assert!(before > 0, "spares made");
    let target = dir.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    let m = s.rootfs_for("sp:1", "c1", &target).unwrap();
    assert_eq!(
        fs::read_dir(&containers).unwrap().count(),
        before,
        "a spare became c1"
    );
    assert_eq!(
        s.list().unwrap()[0].containers,
        1,
        "spares are no containers"
    );
    m.unmount().unwrap();
    s.remove_container_layer("c1").unwrap();
    assert_eq!(s.list().unwrap()[0].containers, 0);
    s.remove(id.as_str(), false).unwrap();
}
