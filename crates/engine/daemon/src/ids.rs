//! Container ids (64 hex digits, like Docker's) and generated names.

/// A fresh random 64-hex-digit id.
pub fn new_id() -> String {
    let mut buf = [0u8; 32];
    getrandom(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn getrandom(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled part of `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        }
    }
}

const ADJECTIVES: &[&str] = &[
    "agile", "bold", "brave", "bright", "calm", "clever", "crisp", "daring", "eager", "fair",
    "gentle", "glad", "happy", "keen", "kind", "lively", "lucid", "merry", "nimble", "noble",
    "patient", "proud", "quick", "quiet", "rapid", "sharp", "shiny", "steady", "swift", "tidy",
    "vivid", "warm", "wise", "witty", "zesty", "sunny", "stoic", "plucky", "jolly", "hardy",
];

const NAMES: &[&str] = &[
    "babbage",
    "bohr",
    "curie",
    "darwin",
    "dirac",
    "einstein",
    "euler",
    "faraday",
    "fermi",
    "feynman",
    "galois",
    "gauss",
    "hopper",
    "hubble",
    "kepler",
    "lamarr",
    "lovelace",
    "maxwell",
    "meitner",
    "mendel",
    "newton",
    "noether",
    "pascal",
    "planck",
    "ramanujan",
    "riemann",
    "shannon",
    "tesla",
    "turing",
    "volta",
    "wiles",
    "yalow",
    "hamilton",
    "herschel",
    "hypatia",
    "johnson",
    "knuth",
    "liskov",
    "ritchie",
    "thompson",
];

/// A Docker-style `adjective_name`.
pub fn random_name() -> String {
    let mut b = [0u8; 2];
    getrandom(&mut b);
    format!(
        "{}_{}",
        ADJECTIVES[b[0] as usize % ADJECTIVES.len()],
        NAMES[b[1] as usize % NAMES.len()]
    )
}

/// Whether `name` is a valid container name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_distinct() {
        let a = new_id();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_id());
    }

    #[test]
    fn names() {
        assert!(valid_name(&random_name()));
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a"));
        assert!(!valid_name("a/b"));
    }
}
