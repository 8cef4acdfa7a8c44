//! Where the daemon listens: [`Host`], parsed from `-H` / `STRATO_HOST`.

use std::fmt;
use std::path::PathBuf;

use crate::error::Error;

/// The daemon's socket path used when neither `-H` nor `STRATO_HOST` is given.
pub const DEFAULT_HOST: &str = "unix:///run/strato/strato.sock";

/// A daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `unix:///run/strato/strato.sock`.
    Unix(PathBuf),
    /// `tcp://127.0.0.1:2375` (the daemon then requires a bearer token).
    Tcp(String),
}

impl Host {
    /// Parses `unix:///abs/path`, `tcp://host:port` or a bare absolute socket path.
    pub fn parse(s: &str) -> Result<Host, Error> {
        let bad = |reason: &str| Error::InvalidHost {
            host: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(p) = s.strip_prefix("unix://") {
            if !p.starts_with('/') {
                return Err(bad(
                    "the socket path must be absolute, like unix:///run/strato/strato.sock",
                ));
            }
            return Ok(Host::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let a = a.trim_end_matches('/');
            match a.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
                    return Ok(Host::Tcp(a.to_string()))
                }
                _ => return Err(bad("expected tcp://HOST:PORT, like tcp://127.0.0.1:2375")),
            }
        }
        if s.starts_with('/') {
            return Ok(Host::Unix(PathBuf::from(s)));
        }
        Err(bad("expected unix:///path/to/socket or tcp://HOST:PORT"))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_tcp_and_paths() {
        assert_eq!(
            Host::parse("unix:///run/x.sock").unwrap(),
            Host::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Host::parse("/run/x.sock").unwrap(),
            Host::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Host::parse("tcp://127.0.0.1:2375").unwrap(),
            Host::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(Host::parse(DEFAULT_HOST).unwrap().to_string(), DEFAULT_HOST);
        for bad in [
            "unix://rel.sock",
            "tcp://nohost",
            "tcp://h:notaport",
            "http://x:1",
            "",
        ] {
            let e = Host::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid host"), "{bad}: {e}");
        }
    }
}
