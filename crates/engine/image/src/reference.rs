//! Image references (`busybox`, `registry:5000/team/app:v1`, `x@sha256:…`)
//! normalized like Docker's: `busybox` is `docker.io/library/busybox:latest`
//! internally and shown as `busybox:latest`.

use std::fmt;

use crate::digest::Digest;
use crate::error::{Error, Result};

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";

/// A parsed, normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes `s`. A reference with neither tag nor digest
    /// gets the tag `latest`.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |reason: &str| Error::InvalidReference {
            reference: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.len() > 255 + 128 + 72 {
            return Err(bad("it is too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(d.parse::<Digest>().map_err(|_| {
                    bad("the part after '@' must be sha256:<64 lowercase hex digits>")
                })?),
            ),
            None => (s, None),
        };
        // A tag is a ':' after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad(
                    "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
                ));
            }
        }
        let (mut domain, mut path) = match name.split_once('/') {
            Some((d, p))
                if d.contains(['.', ':'])
                    || d == "localhost"
                    || d.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (d.to_owned(), p.to_owned())
            }
            _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
        };
        if domain == LEGACY_DOMAIN {
            domain = DEFAULT_DOMAIN.to_owned();
        }
        if !valid_domain(&domain) {
            return Err(bad(
                "the registry host must be letters, digits, '.', '-' and an optional :port",
            ));
        }
        if domain == DEFAULT_DOMAIN && !path.contains('/') {
            path = format!("{OFFICIAL_PREFIX}{path}");
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("repository names must be lowercase"));
        }
        if !path.split('/').all(valid_component) {
            return Err(bad(
                "each part of the repository name must be lowercase letters and digits, separated by '.', '_', '__' or '-'",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The normalized repository name, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The registry host (with its port, if any), e.g. `docker.io` or
    /// `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Returns the same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// Returns the same repository at `digest`, without a tag: the
    /// `name@digest` form of Docker's `RepoDigests`.
    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// The short form Docker shows: `busybox:latest`, `team/app:v1`,
    /// `registry:5000/app:v1`.
    pub fn familiar(&self) -> String {
        familiar(&self.to_string())
    }
}

/// Shortens a normalized reference string the way Docker displays it.
pub fn familiar(normalized: &str) -> String {
    match normalized.strip_prefix("docker.io/") {
        Some(rest) => rest
            .strip_prefix(OFFICIAL_PREFIX)
            .unwrap_or(rest)
            .to_owned(),
        None => normalized.to_owned(),
    }
}

impl fmt::Display for Reference {
    /// The full normalized form, e.g. `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && match port {
            None => true,
            Some(p) => !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()),
        }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("team/app:v1"), "docker.io/team/app:v1");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("registry:5000/a/b:c"), "registry:5000/a/b:c");
        assert_eq!(norm("quay.io/x/y_z-w.v"), "quay.io/x/y_z-w.v:latest");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            norm(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
    }

    #[test]
    fn domain_and_path() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!((r.domain(), r.path()), ("docker.io", "library/busybox"));
        let r = Reference::parse("localhost:5000/team/app:v1").unwrap();
        assert_eq!((r.domain(), r.path()), ("localhost:5000", "team/app"));
    }

    #[test]
    fn familiar_forms() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar();
        assert_eq!(f("busybox"), "busybox:latest");
        assert_eq!(f("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(f("team/app:v1"), "team/app:v1");
        assert_eq!(f("registry:5000/app"), "registry:5000/app:latest");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "BusyBox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "a/../b",
            "bad_-name",
            "x@sha256:abc",
            "/abs",
            "name:tag/extra:x",
        ] {
            let e = Reference::parse(bad);
            assert!(e.is_err(), "{bad:?} parsed as {e:?}");
        }
        let msg = Reference::parse("BusyBox").unwrap_err().to_string();
        assert!(
            msg.contains("BusyBox") && msg.contains("lowercase"),
            "{msg}"
        );
    }
}
