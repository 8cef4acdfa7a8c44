//! Validation of the names a client sends: repository names, tags and
//! digests, per the grammar of distribution-spec v1.1. Hand-written matchers
//! (the grammar is small) rather than a regex engine; each accepted name is
//! safe to use as a relative path under the registry root (no `.`/`..`
//! components, no slashes at the ends, no empty components).

use crate::error::{Code, RegistryError, Result};

/// Longest repository name accepted (distribution's limit).
pub const MAX_NAME_LEN: usize = 255;

/// Checks `name` against
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(RegistryError::new(
            Code::NameInvalid,
            format!(
                "invalid repository name {name:?}: {why}; names are lowercase components \
                 of [a-z0-9] joined by '.', '_', '__' or '-', separated by '/'"
            ),
        ))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 255 characters");
    }
    for comp in name.split('/') {
        if !component_ok(comp) {
            return bad(&format!("component {comp:?} is not allowed"));
        }
    }
    Ok(())
}

fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// Checks a tag against `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

/// A digest algorithm the registry stores content under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    Sha256,
    Sha512,
}

impl Alg {
    pub const ALL: [Alg; 2] = [Alg::Sha256, Alg::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Alg::Sha256 => "sha256",
            Alg::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Alg::Sha256 => 64,
            Alg::Sha512 => 128,
        }
    }

    fn from_name(s: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The digest of `data` under this algorithm.
    pub fn digest(self, data: &[u8]) -> Digest {
        let mut h = Hasher::new(self);
        h.update(data);
        h.finish()
    }
}

/// An incremental hash of one algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(alg: Alg) -> Hasher {
        use sha2::Digest as _;
        match alg {
            Alg::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Alg::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn alg(&self) -> Alg {
        match self {
            Hasher::Sha256(_) => Alg::Sha256,
            Hasher::Sha512(_) => Alg::Sha512,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest so far (the hasher stays usable).
    pub fn finish(&self) -> Digest {
        use sha2::Digest as _;
        match self {
            Hasher::Sha256(h) => Digest::from_bytes(Alg::Sha256, &h.clone().finalize()),
            Hasher::Sha512(h) => Digest::from_bytes(Alg::Sha512, &h.clone().finalize()),
        }
    }
}

/// A digest: algorithm and lowercase hex. sha256 is canonical (what the
/// registry computes for manifests pushed by tag); sha512 is accepted too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    alg: Alg,
    hex: String,
}

impl Digest {
    /// Parses `sha256:<64 hex>` or `sha512:<128 hex>`.
    pub fn parse(s: &str) -> Result<Digest> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(RegistryError::new(
                Code::DigestInvalid,
                format!("invalid digest {s:?}: expected ALGORITHM:HEX like sha256:<64 hex digits>"),
            ));
        };
        let Some(a) = Alg::from_name(alg) else {
            return Err(RegistryError::new(
                Code::DigestInvalid,
                format!("unsupported digest algorithm {alg:?} in {s:?}: this registry accepts sha256 and sha512"),
            ));
        };
        Digest::from_hex(a, hex).ok_or_else(|| {
            RegistryError::new(
                Code::DigestInvalid,
                format!(
                    "invalid digest {s:?}: {alg} needs {} lowercase hex digits",
                    a.hex_len()
                ),
            )
        })
    }

    pub fn from_hex(alg: Alg, hex: &str) -> Option<Digest> {
        let ok = hex.len() == alg.hex_len()
            && hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        ok.then(|| Digest {
            alg,
            hex: hex.to_string(),
        })
    }

    pub fn from_bytes(alg: Alg, sum: &[u8]) -> Digest {
        use std::fmt::Write;
        let mut s = String::with_capacity(sum.len() * 2);
        for b in sum {
            let _ = write!(s, "{b:02x}");
        }
        Digest { alg, hex: s }
    }

    /// The name of link files for this digest: `sha256-<hex>`.
    pub fn file_name(&self) -> String {
        format!("{}-{}", self.alg.name(), self.hex)
    }

    pub fn from_file_name(s: &str) -> Option<Digest> {
        let (a, h) = s.split_once('-')?;
        Digest::from_hex(Alg::from_name(a)?, h)
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.alg.name(), self.hex)
    }
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference> {
        if s.contains(':') {
            return Digest::parse(s).map(Reference::Digest);
        }
        if is_tag(s) {
            return Ok(Reference::Tag(s.to_string()));
        }
        Err(RegistryError::new(
            Code::ManifestInvalid,
            format!(
                "invalid reference {s:?}: a tag is 1-128 characters of [A-Za-z0-9_.-] not starting with '.' or '-', a digest is sha256:<hex>"
            ),
        )
        .with_detail(serde_json::json!({ "tag": s })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec_grammar() {
        for ok in [
            "a",
            "library/busybox",
            "a.b/c_d/e__f/g-h/i---j",
            "0/1/2",
            "a1b2",
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "..", "a/../b", "a/./b", ".a", "a.", "a..b", "a___b",
            "a_-b", "a-", "-a", "a b", "a%2fb", "é", "a\\b", "a/b/", "_catalog",
        ] {
            let e = validate_name(bad).unwrap_err();
            assert_eq!(e.code, Code::NameInvalid, "{bad}");
        }
        assert!(validate_name(&"a".repeat(256)).is_err());
        assert!(validate_name(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn tags_follow_the_spec_grammar() {
        for ok in ["latest", "v1.0", "_x", "A-b_c.d", &"t".repeat(128)] {
            assert!(is_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"t".repeat(129), "a b"] {
            assert!(!is_tag(bad), "{bad}");
        }
    }

    #[test]
    fn digests_parse_and_print() {
        let h = "a".repeat(64);
        let d = Digest::parse(&format!("sha256:{h}")).unwrap();
        assert_eq!(d.to_string(), format!("sha256:{h}"));
        assert_eq!(Digest::from_file_name(&d.file_name()), Some(d));
        let h5 = "b".repeat(128);
        let d = Digest::parse(&format!("sha512:{h5}")).unwrap();
        assert_eq!(d.file_name(), format!("sha512-{h5}"));
        assert!(Digest::parse(&format!("sha512:{h}")).is_err());
        assert!(Digest::parse(&format!("sha256:{h5}")).is_err());
        assert_eq!(
            Digest::parse("md5:00").unwrap_err().code,
            Code::DigestInvalid
        );
        assert_eq!(
            Alg::Sha256.digest(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(Alg::Sha512
            .digest(b"")
            .hex()
            .starts_with("cf83e1357eefb8bd"));
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse("nope").is_err());
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        assert!(Reference::parse("../x").is_err());
    }
}
