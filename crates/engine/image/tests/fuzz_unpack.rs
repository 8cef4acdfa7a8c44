//! Randomized layers (deterministic seed) of hostile-ish names, symlinks,
//! hardlinks and whiteouts: whatever `unpack` accepts or refuses, nothing
//! outside its directory changes.

mod common;

use std::fs;

use common::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const PARTS: &[&str] = &[
    "a",
    "b",
    "..",
    ".",
    "",
    "l",
    "d",
    ".wh.a",
    ".wh..wh..opq",
    "x",
];
const TARGETS: &[&str] = &[
    "/",
    "..",
    "../..",
    "../../outside",
    "a",
    "/etc",
    "l/..",
    "b/c",
    ".",
];

fn name(r: &mut Rng) -> String {
    let n = 1 + r.next() % 4;
    let mut parts = Vec::new();
    for _ in 0..n {
        parts.push(r.pick(PARTS));
    }
    let mut s = parts.join("/");
    if r.next() & 7 == 0 {
        s.insert(0, '/');
    }
    if s.is_empty() {
        s.push('a');
    }
    s
}

#[test]
fn random_layers_never_touch_anything_outside() {
    let top = tempfile::tempdir().unwrap();
    let outside = top.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), b"keep").unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let (mut ok, mut refused) = (0, 0);
    for round in 0..300 {
        let dir = top.path().join("work").join(format!("r{round}"));
        let root = dir.join("fs");
        fs::create_dir_all(&root).unwrap();
        let count = 1 + rng.next() % 8;
        let names: Vec<String> = (0..count).map(|_| name(&mut rng)).collect();
        let entries: Vec<E> = names
            .iter()
            .map(|n| match rng.next() % 5 {
                0 => E::Dir(n, 0o755),
                1 => E::Symlink(n, rng.pick(TARGETS)),
                2 => E::Hardlink(n, rng.pick(TARGETS)),
                _ => E::File(n, b"data", 0o644),
            })
            .collect();
        let before = tree(&outside);
        match strato_image::unpack::unpack(&layer(&entries)[..], &root) {
            Ok(_) => ok += 1,
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
        }
        assert_eq!(tree(&outside), before, "round {round}: {names:?}");
        // Only fs/ exists beside the snapshot root.
        let siblings: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(siblings, ["fs"], "round {round}: {names:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
    assert_eq!(fs::read_dir(top.path()).unwrap().count(), 2); // outside, work
    assert!(ok > 10 && refused > 10, "ok {ok}, refused {refused}");
}
