//! `.dockerignore` patterns and the glob matching of `COPY` sources. No I/O.
//!
//! Docker's rules: one pattern a line, surrounding spaces trimmed, `#`
//! lines are comments, `!` makes an exception, a leading `/` is dropped and
//! the path is cleaned; `*` and `?` do not cross `/`, `**` does; a path is
//! excluded when the last pattern matching it or one of its parent
//! directories is not an exception. Written by hand: Go's `filepath.Match`
//! with `**` is small and no crate matches it exactly.

/// Whether `name` matches the glob `pattern` (`*`, `?`, `[a-z]`, `[^x]`,
/// `\` escapes; `**` crosses `/` only when `double_star`).
pub fn glob_match(pattern: &str, name: &str, double_star: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let mut m = Matcher {
        plen: p.len(),
        nlen: n.len(),
        memo: vec![0; (p.len() + 1) * (n.len() + 1)],
        ds: double_star,
    };
    m.matches(&p, &n)
}

/// The matcher remembers each (pattern rest, name rest) it decided, so
/// patterns like `*a*a*a*b` cost at most pattern × name steps.
struct Matcher {
    plen: usize,
    nlen: usize,
    /// 0: not yet known, 1: no match, 2: match.
    memo: Vec<u8>,
    ds: bool,
}

impl Matcher {
    fn matches(&mut self, p: &[char], n: &[char]) -> bool {
        let at = (self.plen - p.len()) * (self.nlen + 1) + (self.nlen - n.len());
        match self.memo[at] {
            1 => return false,
            2 => return true,
            _ => {}
        }
        let r = self.step(p, n);
        self.memo[at] = if r { 2 } else { 1 };
        r
    }

    fn step(&mut self, p: &[char], n: &[char]) -> bool {
        let ds = self.ds;
        if p.is_empty() {
            return n.is_empty();
        }
        match p[0] {
            '*' => {
                if ds && p.get(1) == Some(&'*') {
                    // `**/` also matches no directory at all.
                    let rest = &p[2..];
                    if rest.first() == Some(&'/') && self.matches(&rest[1..], n) {
                        return true;
                    }
                    (0..=n.len()).any(|k| self.matches(rest, &n[k..]))
                } else {
                    let rest = &p[1..];
                    for k in 0..=n.len() {
                        if self.matches(rest, &n[k..]) {
                            return true;
                        }
                        if k < n.len() && n[k] == '/' {
                            break;
                        }
                    }
                    false
                }
            }
            '?' => !n.is_empty() && n[0] != '/' && self.matches(&p[1..], &n[1..]),
            '[' => {
                let Some((ok, used)) = class(&p[1..], n.first().copied()) else {
                    // An unterminated class matches a literal '['.
                    return n.first() == Some(&'[') && self.matches(&p[1..], &n[1..]);
                };
                ok && self.matches(&p[1 + used..], &n[1..])
            }
            '\\' if p.len() > 1 => n.first() == Some(&p[1]) && self.matches(&p[2..], &n[1..]),
            c => n.first() == Some(&c) && self.matches(&p[1..], &n[1..]),
        }
    }
}

/// A `[...]` class after its `[`: whether `c` is in it, and how many
/// pattern characters it used (up to and with the `]`).
fn class(p: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let c = c.filter(|c| *c != '/');
    let mut i = 0;
    let negate = matches!(p.first(), Some('^' | '!'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            let hit = c.is_some() && (found != negate);
            return Some((hit, i + 1));
        }
        first = false;
        let mut lo = p[i];
        if lo == '\\' && i + 1 < p.len() {
            i += 1;
            lo = p[i];
        }
        let mut hi = lo;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            hi = p[i + 2];
            i += 2;
        }
        if let Some(c) = c {
            if lo <= c && c <= hi {
                found = true;
            }
        }
        i += 1;
    }
    None
}

/// One `.dockerignore` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub glob: String,
    pub exception: bool,
}

/// The patterns of a `.dockerignore` file.
pub fn parse_ignore(text: &str) -> Vec<Pattern> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (exception, rest) = match line.strip_prefix('!') {
            Some(r) => (true, r.trim()),
            None => (false, line),
        };
        let glob = clean(rest.trim_start_matches('/'));
        if glob.is_empty() || glob == "." {
            continue;
        }
        out.push(Pattern { glob, exception });
    }
    out
}

/// Like Go's `path.Clean` on a relative path.
pub fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// Whether the relative path `path` is excluded by `patterns`.
pub fn excluded(path: &str, patterns: &[Pattern]) -> bool {
    let path = clean(path);
    let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
    let mut out = false;
    for p in patterns {
        let hit = glob_match(&p.glob, &path, true)
            || parents.iter().any(|d| glob_match(&p.glob, d, true));
        if hit {
            out = !p.exception;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_like_filepath_match() {
        assert!(glob_match("*.txt", "a.txt", false));
        assert!(!glob_match("*.txt", "d/a.txt", false));
        assert!(glob_match("d/*.txt", "d/a.txt", false));
        assert!(glob_match("?b", "ab", false));
        assert!(glob_match("[a-c]x", "bx", false));
        assert!(!glob_match("[^a-c]x", "bx", false));
        assert!(glob_match("[!a-c]x", "dx", false));
        assert!(glob_match("\\*", "*", false));
        assert!(!glob_match("\\*", "a", false));
        assert!(glob_match("**/x", "x", true));
        assert!(glob_match("**/x", "a/b/x", true));
        assert!(glob_match("a/**", "a/b/c", true));
        assert!(glob_match("a/**/z", "a/z", true));
        assert!(glob_match("a/**/z", "a/b/c/z", true));
        assert!(!glob_match("a/**/z", "b/z", true));
    }

    #[test]
    fn backtracking_patterns_stay_cheap() {
        let name = "a".repeat(200);
        let pat = "*a".repeat(40) + "b";
        assert!(!glob_match(&pat, &name, false));
        assert!(!glob_match(&"**a".repeat(40), &format!("{}/b", name), true));
    }

    #[test]
    fn dockerignore_exceptions_and_parents() {
        let pats = parse_ignore(
            "ignored\nDockerfile\n ignored-with-spaces \n!ignored/subdir/excepted-file\n\
             ! ignored/subdir/excepted-with-spaces  \n\n#*\n/abs/./x\n**/*.log\n",
        );
        assert_eq!(pats.len(), 7);
        assert!(excluded("ignored", &pats));
        assert!(excluded("ignored/subdir/file", &pats));
        assert!(!excluded("ignored/subdir/excepted-file", &pats));
        assert!(!excluded("ignored/subdir/excepted-with-spaces", &pats));
        assert!(excluded("ignored-with-spaces", &pats));
        assert!(!excluded("#file.txt", &pats));
        assert!(!excluded("not-ignored", &pats));
        assert!(excluded("abs/x", &pats));
        assert!(excluded("a/b/c.log", &pats));
        assert!(excluded("c.log", &pats));
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean("./a//b/../c/"), "a/c");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean(""), ".");
    }
}
