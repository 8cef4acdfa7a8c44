//! Query strings of Engine API requests.
//!
//! Percent-encoding is written here (a dozen lines) rather than pulling in
//! `url`/`form_urlencoded` for one function: every value is encoded as an
//! RFC 3986 query component, unreserved characters kept.

use std::fmt::Write;

use strato_api::types::Filters;

/// Builds `?a=1&b=x`; empty when nothing was added.
#[derive(Debug, Default, Clone)]
pub struct Query(String);

impl Query {
    pub fn new() -> Self {
        Query::default()
    }
    /// Adds `key=value` (value percent-encoded).
    pub fn add(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.0.push(if self.0.is_empty() { '?' } else { '&' });
        self.0.push_str(key);
        self.0.push('=');
        encode_into(&mut self.0, value.as_ref());
        self
    }
    /// Adds `key=value` when `value` is `Some`.
    pub fn opt(self, key: &str, value: Option<impl AsRef<str>>) -> Self {
        match value {
            Some(v) => self.add(key, v),
            None => self,
        }
    }
    /// Adds `key=1` when `on`.
    pub fn flag(self, key: &str, on: bool) -> Self {
        if on {
            self.add(key, "1")
        } else {
            self
        }
    }
    /// Adds `filters=<json>` unless there are none.
    pub fn filters(self, f: &Filters) -> Self {
        if f.is_empty() {
            return self;
        }
        let json = serde_json::to_string(&f.0).unwrap_or_default();
        self.add("filters", json)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Percent-encodes one path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    encode_into(&mut out, s);
    out
}

fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_encoded_queries() {
        let q = Query::new()
            .add("name", "a b&c=d/é")
            .flag("all", true)
            .flag("size", false)
            .opt("tail", Some("10"))
            .opt("since", None::<&str>);
        assert_eq!(q.as_str(), "?name=a%20b%26c%3Dd%2F%C3%A9&all=1&tail=10");
        let mut f = Filters::default();
        f.0.insert("status".into(), vec!["exited".into()]);
        assert_eq!(
            Query::new().filters(&f).as_str(),
            "?filters=%7B%22status%22%3A%5B%22exited%22%5D%7D"
        );
        assert_eq!(Query::new().filters(&Filters::default()).as_str(), "");
    }
}
