//! Hostile archives: each is refused with an error naming the problem, and
//! leaves the store exactly as it was and nothing outside the test's
//! temporary directories.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use strato_image::ImageStore;

struct Case {
    name: &'static str,
    archive: Vec<u8>,
    /// Substrings the error message must contain.
    want: &'static [&'static str],
}

fn good() -> Vec<u8> {
    layer(&[E::Dir("etc", 0o755), E::File("etc/ok", b"ok", 0o644)])
}

fn one_layer(l: Vec<u8>) -> Vec<u8> {
    // A good image first, so a half-done load would leave it behind.
    docker_save(&[
        Img::new(vec![good()], "fine:1"),
        Img::new(vec![l], "evil:1"),
    ])
}

fn cases(outside: &Path) -> Vec<Case> {
    let outside_s = outside.to_str().unwrap().to_owned();
    let abs = format!("{outside_s}/abs-escape");
    let abs: &'static str = Box::leak(abs.into_boxed_str());
    let out_dir: &'static str = Box::leak(outside_s.into_boxed_str());
    let good_img = Img::new(vec![good()], "evil:1");
    let mut cases = vec![
        Case {
            name: "dotdot",
            archive: one_layer(layer(&[E::File("../../../../dotdot-escape", b"x", 0o644)])),
            want: &["../../../../dotdot-escape", ".."],
        },
        Case {
            name: "dotdot inside",
            archive: one_layer(layer(&[
                E::Dir("a", 0o755),
                E::File("a/../../x", b"x", 0o644),
            ])),
            want: &["a/../../x", ".."],
        },
        Case {
            name: "absolute",
            archive: one_layer(layer(&[E::File(abs, b"x", 0o644)])),
            want: &["abs-escape", "absolute"],
        },
        Case {
            name: "symlink escape then write through it",
            archive: one_layer(layer(&[
                E::Symlink("link", out_dir),
                E::File("link/through-symlink", b"x", 0o644),
            ])),
            want: &["link/through-symlink", "symlink"],
        },
        Case {
            name: "relative symlink escape then write through it",
            archive: one_layer(layer(&[
                E::Symlink("up", "../../../../../../../.."),
                E::File("up/tmp/through-rel-symlink", b"x", 0o644),
            ])),
            want: &["up/tmp/through-rel-symlink", "symlink"],
        },
        Case {
            name: "hardlink escape",
            archive: one_layer(layer(&[E::Hardlink("hl", "../../../../etc/passwd")])),
            want: &["hl", "hardlink target", ".."],
        },
        Case {
            name: "absolute hardlink",
            archive: one_layer(layer(&[E::Hardlink("hl", "/etc/passwd")])),
            want: &["hl", "absolute"],
        },
        Case {
            name: "hardlink through a symlink",
            archive: one_layer(layer(&[
                E::Symlink("etc", "/etc"),
                E::Hardlink("shadow", "etc/passwd"),
            ])),
            want: &["shadow", "symlink"],
        },
        Case {
            name: "device node",
            archive: one_layer(layer(&[E::CharDev("dev/mem", 1, 1)])),
            want: &["dev/mem", "device"],
        },
        Case {
            name: "whiteout-looking device",
            archive: one_layer(layer(&[E::CharDev("x", 0, 0)])),
            want: &["\"x\"", "device"],
        },
        Case {
            name: "wrong diff id",
            archive: docker_save(&[Img {
                config: config_with_diff_ids(&[sha(b"something else")], &["sh"]),
                layers: vec![good()],
                tags: vec!["evil:1".into()],
            }]),
            want: &["digest mismatch", "diff id"],
        },
        Case {
            name: "wrong diff id count",
            archive: docker_save(&[Img {
                config: config(&[], &["sh"]),
                layers: vec![good()],
                tags: vec![],
            }]),
            want: &["0 layers", "manifest has 1"],
        },
        Case {
            name: "wrong layer digest (OCI)",
            archive: {
                let mut a = oci_layout(&[good_img], false);
                // Corrupt the layer blob in place: same name, other bytes.
                let pos = find(&a, b"etc/ok\0").expect("layer inside");
                let data_pos = pos + 512; // the header of etc/ok starts at pos, its data follows
                a[data_pos] ^= 0xff;
                a
            },
            want: &["digest mismatch", "blobs/sha256/"],
        },
        Case {
            name: "unknown blob (OCI)",
            archive: strip(
                &oci_layout(&[Img::new(vec![good()], "x")], false),
                &sha(&good()),
            ),
            want: &["not in the archive"],
        },
        Case {
            name: "layer tar is garbage",
            archive: docker_save(&[Img::new(
                vec![b"this is not a tar archive at all".repeat(20)],
                "x",
            )]),
            want: &["reading layer"],
        },
        Case {
            name: "not an image archive",
            archive: layer(&[E::File("etc/passwd", b"x", 0o644)]),
            want: &["manifest.json", "import"],
        },
        Case {
            name: "bad tag",
            archive: docker_save(&[Img::new(vec![good()], "UPPER:case")]),
            want: &["UPPER:case", "lowercase"],
        },
    ];
    {
        // A manifest.json too large to be read into memory.
        let mut b = tar::Builder::new(Vec::new());
        let big = vec![b' '; (32 << 20) + 1];
        let mut h = tar::Header::new_ustar();
        h.set_size(big.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "manifest.json", &big[..]).unwrap();
        cases.push(Case {
            name: "huge manifest.json",
            archive: b.into_inner().unwrap(),
            want: &["manifest.json", "allowed"],
        });
    }
    let full = one_layer(good());
    for cut in [full.len() / 2, full.len() - 1100, 700] {
        cases.push(Case {
            name: "truncated",
            archive: full[..cut].to_vec(),
            want: &[],
        });
    }
    cases
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Drops the archive entry for blob `digest`.
fn strip(archive: &[u8], digest: &str) -> Vec<u8> {
    let name = format!("blobs/sha256/{}", hex(digest));
    let mut b = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(archive);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == name {
            continue;
        }
        let h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_archives_are_refused_and_change_nothing() {
    let top = tempfile::tempdir().unwrap();
    let outside = top.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let root = top.path().join("a/b/c/d/e/f/g/store");
    let s = ImageStore::open(&root).unwrap();
    // Something in the store already, so "unchanged" means something.
    s.load(&docker_save(&[Img::new(vec![layer(&[E::File("pre", b"p", 0o644)])], "pre")])[..])
        .unwrap();
    let host_passwd = fs::read("/etc/passwd").unwrap();
    for case in cases(&outside) {
        let before = tree(&root);
        let outside_before = tree(top.path());
        let err = s
            .load(&case.archive[..])
            .expect_err(&format!("case {:?} must fail", case.name));
        let msg = err.to_string();
        for w in case.want {
            assert!(
                msg.contains(w),
                "case {:?}: error {msg:?} lacks {w:?}",
                case.name
            );
        }
        assert!(!msg.is_empty());
        assert_eq!(
            tree(&root),
            before,
            "case {:?} changed the store ({msg})",
            case.name
        );
        assert_eq!(
            tree(top.path()),
            outside_before,
            "case {:?} wrote outside the store ({msg})",
            case.name
        );
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "case {:?}",
            case.name
        );
        assert!(!Path::new("/dotdot-escape").exists());
        assert!(!Path::new("/tmp/through-rel-symlink").exists());
        assert_eq!(fs::read("/etc/passwd").unwrap(), host_passwd);
        assert_eq!(s.list().unwrap().len(), 1, "case {:?}", case.name);
        assert!(
            s.resolve("fine:1").is_err(),
            "case {:?} left the good image",
            case.name
        );
        eprintln!("refused {:?}: {msg}", case.name);
    }
}

#[test]
fn hostile_imports_are_refused_too() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("store");
    let s = ImageStore::open(&root).unwrap();
    let before = tree(&root);
    let err = s
        .import(&layer(&[E::File("../x", b"x", 0o644)])[..], Some("x"))
        .unwrap_err();
    assert!(err.to_string().contains("\"../x\""), "{err}");
    assert_eq!(tree(&root), before);
    assert!(!top.path().join("x").exists());
}

#[test]
fn overlay_xattrs_from_layers_are_ignored() {
    let top = tempfile::tempdir().unwrap();
    let s = ImageStore::open(&top.path().join("store")).unwrap();
    let l = layer(&[E::FileXattr("f", b"x", "trusted.overlay.redirect", b"/etc")]);
    s.load(&docker_save(&[Img::new(vec![l.clone()], "x")])[..])
        .unwrap();
    let chain = &s.inspect("x").unwrap().chain_ids[0];
    let f = s.root().join("snapshots").join(chain.hex()).join("fs/f");
    let mut buf = [0u8; 64];
    assert!(rustix::fs::lgetxattr(&f, "trusted.overlay.redirect", &mut buf).is_err());
}
