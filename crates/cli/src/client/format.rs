//! Text output shaped like the docker CLI's: aligned tables, relative
//! times ("2 minutes ago"), human sizes, truncated IDs and commands.

use std::fmt::Write;

use strato_api::types::Port;

/// A table printed like Go's tabwriter as the docker CLI configures it:
/// every column but the last is padded to its widest cell plus 3 spaces, and
/// to at least 20 characters.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|s| s.to_string()).collect()],
        }
    }
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    pub fn render(&self) -> String {
        const MIN_WIDTH: usize = 20;
        const PADDING: usize = 3;
        let ncols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; ncols];
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count() + PADDING).max(MIN_WIDTH);
            }
        }
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    let _ = write!(line, "{c:<w$}", w = widths[i]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Go-units' HumanDuration (one copy, in strato_image::time).
pub use strato_image::time::human_duration;

/// "2 minutes ago" for a unix time `then`, seen at `now`.
pub fn time_ago(then: i64, now: i64) -> String {
    format!("{} ago", human_duration(now.saturating_sub(then)))
}

/// `%.{precision}g` of Go, with trailing zeros dropped.
fn sig_digits(v: f64, precision: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (precision as i32 - 1 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Decimal sizes as `docker images` shows them: `4.26MB`, `512B`, `1.2GB`.
pub fn human_size(bytes: i64) -> String {
    human_size_precision(bytes as f64, 3)
}

fn human_size_precision(mut v: f64, precision: usize) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", sig_digits(v, precision), UNITS[i])
}

/// Binary sizes as `docker stats` shows memory: `1.5MiB`, `7.6GiB`.
pub fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", sig_digits(v, 4), UNITS[i])
}

/// Decimal sizes with 4 significant digits (network and block I/O in stats).
pub fn io_size(bytes: u64) -> String {
    human_size_precision(bytes as f64, 4)
}

/// The 12-hex short form of an ID (`sha256:` dropped).
pub fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

/// `docker ps`' COMMAND cell: quoted, cut to 20 characters with `…`.
pub fn command_cell(cmd: &str, trunc: bool) -> String {
    let c: String = if trunc && cmd.chars().count() > 20 {
        let mut s: String = cmd.chars().take(19).collect();
        s.push('…');
        s
    } else {
        cmd.to_string()
    };
    format!("{c:?}")
}

/// `docker ps`' PORTS cell: `0.0.0.0:8080->80/tcp, 443/tcp`.
pub fn ports_cell(ports: &[Port]) -> String {
    let mut v: Vec<(u16, String)> = ports
        .iter()
        .map(|p| {
            let s = match p.public_port {
                Some(pub_port) => {
                    let ip = if p.ip.is_empty() { "0.0.0.0" } else { &p.ip };
                    let ip = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_string()
                    };
                    format!("{ip}:{pub_port}->{}/{}", p.private_port, p.kind)
                }
                None => format!("{}/{}", p.private_port, p.kind),
            };
            (p.private_port, s)
        })
        .collect();
    v.sort();
    v.dedup_by(|a, b| a.1 == b.1);
    v.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(", ")
}

/// `docker ps`' NAMES cell: names without the leading `/`, links left out.
pub fn names_cell(names: &[String]) -> String {
    names
        .iter()
        .map(|n| n.trim_start_matches('/'))
        .filter(|n| !n.contains('/'))
        .collect::<Vec<_>>()
        .join(",")
}

/// Splits `repo:tag` (a `:` after the last `/`), `repo@digest` or `repo`.
pub fn split_reference(r: &str) -> (String, String) {
    if let Some((repo, digest)) = r.split_once('@') {
        return (repo.to_string(), digest.to_string());
    }
    let slash = r.rfind('/').map(|i| i + 1).unwrap_or(0);
    match r[slash..].rfind(':') {
        Some(i) => (r[..slash + i].to_string(), r[slash + i + 1..].to_string()),
        None => (r.to_string(), "latest".to_string()),
    }
}

/// JSON indented with 4 spaces, as `docker inspect` prints it.
pub fn pretty_json(v: &serde_json::Value) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    let _ = v.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_align_like_tabwriter() {
        let mut t = Table::new(&["CONTAINER ID", "IMAGE", "NAMES"]);
        t.row(vec!["0123456789ab".into(), "busybox".into(), "web".into()]);
        t.row(vec![
            "ba9876543210".into(),
            "registry.example:5000/some/long-image:1".into(),
            "db".into(),
        ]);
        let out = t.render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!("{:<20}{:<42}NAMES", "CONTAINER ID", "IMAGE")
        );
        assert_eq!(
            lines[1],
            format!("{:<20}{:<42}web", "0123456789ab", "busybox")
        );
        // Every column starts at the same offset on every line.
        let col = lines[0].find("NAMES").unwrap();
        assert!(lines
            .iter()
            .skip(1)
            .all(|l| l.len() > col && &l[col - 3..col] == "   "));
        // Empty last cells leave no trailing spaces.
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["x".into(), String::new()]);
        assert_eq!(t.render(), format!("{:<20}B\nx\n", "A"));
    }

    #[test]
    fn relative_times_like_docker() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (45, "45 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (120, "2 minutes"),
            (59 * 60 + 59, "59 minutes"),
            (3600, "About an hour"),
            (5399, "About an hour"),
            (5400, "2 hours"),
            (47 * 3600, "47 hours"),
            (3 * 86400, "3 days"),
            (20 * 86400, "2 weeks"),
            (90 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
        assert_eq!(time_ago(1000, 1120), "2 minutes ago");
        // A clock skew (created in the future) is not negative.
        assert_eq!(time_ago(2000, 1000), "Less than a second ago");
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_263_936), "4.26MB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size(123_456_789_012), "123GB");
        assert_eq!(binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(binary_size(512), "512B");
        assert_eq!(io_size(1_234_567), "1.235MB");
    }

    #[test]
    fn ids_commands_ports_names_references() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(command_cell("sh", true), "\"sh\"");
        assert_eq!(
            command_cell("sh -c 'while true; do sleep 1; done'", true),
            "\"sh -c 'while true; …\""
        );
        let ports = vec![
            Port {
                ip: "0.0.0.0".into(),
                private_port: 80,
                public_port: Some(8080),
                kind: "tcp".into(),
            },
            Port {
                private_port: 443,
                kind: "tcp".into(),
                ..Default::default()
            },
        ];
        assert_eq!(ports_cell(&ports), "0.0.0.0:8080->80/tcp, 443/tcp");
        assert_eq!(names_cell(&["/web".into(), "/other/alias".into()]), "web");
        assert_eq!(
            split_reference("busybox"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            split_reference("localhost:5000/a/b:1.2"),
            ("localhost:5000/a/b".into(), "1.2".into())
        );
        assert_eq!(
            split_reference("localhost:5000/a"),
            ("localhost:5000/a".into(), "latest".into())
        );
        assert_eq!(
            split_reference("a@sha256:ff"),
            ("a".into(), "sha256:ff".into())
        );
    }
}
