//! Rendering of the daemon's JSON progress streams (pull, push, load,
//! import) as docker does: on a terminal, one line per layer ID updated in
//! place with its progress bar; otherwise plain lines, without the
//! byte-by-byte progress updates.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use anyhow::Result;
use futures::StreamExt;
use strato_client::types::JsonMessage;
use strato_client::{progress_error, Progress};

/// Reads `p` to its end, writing to `out` (a terminal gets in-place bars).
/// The first error message ends it as an error.
pub async fn render<W: Write + IsTerminalish>(mut p: Progress, out: &mut W) -> Result<()> {
    let tty = out.is_tty();
    let mut r = Renderer::new(tty);
    while let Some(m) = p.next().await {
        let m = m?;
        if let Some(e) = progress_error(&m) {
            out.flush()?;
            anyhow::bail!("{e}");
        }
        out.write_all(r.render(&m).as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

/// Whether a writer is a terminal (stdout/stderr), for [`render`].
pub trait IsTerminalish {
    fn is_tty(&self) -> bool;
}
impl IsTerminalish for std::io::Stdout {
    fn is_tty(&self) -> bool {
        self.is_terminal()
    }
}
impl IsTerminalish for std::io::Stderr {
    fn is_tty(&self) -> bool {
        self.is_terminal()
    }
}

/// The text of each message; pure so it is tested without a terminal.
pub struct Renderer {
    tty: bool,
    /// Line of each layer ID (0 = first printed), for moving the cursor back.
    lines: HashMap<String, usize>,
    count: usize,
}

impl Renderer {
    pub fn new(tty: bool) -> Renderer {
        Renderer {
            tty,
            lines: HashMap::new(),
            count: 0,
        }
    }

    pub fn render(&mut self, m: &JsonMessage) -> String {
        if let Some(s) = &m.stream {
            return s.clone();
        }
        let status = m.status.clone().unwrap_or_default();
        if status.is_empty() && m.progress.is_none() {
            return String::new(); // aux messages (push digest) are for programs
        }
        let bar = m.progress.clone().or_else(|| {
            m.progress_detail
                .as_ref()
                .and_then(|d| Some(progress_bar(d.current?, d.total.unwrap_or(0))))
        });
        let text = match (&m.id, &bar) {
            (Some(id), Some(b)) if self.tty => format!("{id}: {status} {b}"),
            (Some(id), _) => format!("{id}: {status}"),
            (None, Some(b)) if self.tty => format!("{status} {b}"),
            (None, _) => status.clone(),
        };
        if !self.tty {
            // Plain output: progress ticks are left out, status changes kept.
            if bar.is_some()
                && m.progress_detail
                    .as_ref()
                    .is_some_and(|d| d.current.is_some())
            {
                return String::new();
            }
            return format!("{text}\n");
        }
        let Some(id) = &m.id else {
            return format!("{text}\n");
        };
        match self.lines.get(id) {
            Some(&line) => {
                // Up to the layer's line, rewrite it, back down.
                let up = self.count - line;
                format!("\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")
            }
            None => {
                self.lines.insert(id.clone(), self.count);
                self.count += 1;
                format!("{text}\n")
            }
        }
    }
}

/// `[=====>      ]  1.2MB/4.3MB`, docker's 50-column bar.
pub fn progress_bar(current: i64, total: i64) -> String {
    use super::format::human_size;
    if total <= 0 {
        return human_size(current);
    }
    let width = 50;
    let filled = ((current.clamp(0, total) as f64 / total as f64) * width as f64) as usize;
    let mut bar = "=".repeat(filled);
    if filled < width {
        bar.push('>');
        bar.push_str(&" ".repeat(width - filled - 1));
    }
    format!("[{bar}] {:>8}/{}", human_size(current), human_size(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_client::types::ProgressDetail;

    fn msg(id: Option<&str>, status: &str, cur: Option<i64>) -> JsonMessage {
        JsonMessage {
            id: id.map(String::from),
            status: Some(status.into()),
            progress_detail: cur.map(|c| ProgressDetail {
                current: Some(c),
                total: Some(1000),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn plain_lines_skip_progress_ticks() {
        let mut r = Renderer::new(false);
        assert_eq!(
            r.render(&msg(None, "Pulling from library/busybox", None)),
            "Pulling from library/busybox\n"
        );
        assert_eq!(r.render(&msg(Some("abc"), "Downloading", Some(500))), "");
        assert_eq!(
            r.render(&msg(Some("abc"), "Pull complete", None)),
            "abc: Pull complete\n"
        );
        assert_eq!(
            r.render(&JsonMessage::stream("Loaded image: busybox:latest\n")),
            "Loaded image: busybox:latest\n"
        );
    }

    #[test]
    fn terminal_rewrites_layer_lines_in_place() {
        let mut r = Renderer::new(true);
        assert_eq!(r.render(&msg(Some("l1"), "Waiting", None)), "l1: Waiting\n");
        assert_eq!(r.render(&msg(Some("l2"), "Waiting", None)), "l2: Waiting\n");
        let s = r.render(&msg(Some("l1"), "Downloading", Some(500)));
        assert!(
            s.starts_with("\x1b[2A\r\x1b[2Kl1: Downloading [=========================>"),
            "{s:?}"
        );
        assert!(s.ends_with("\r\x1b[2B"), "{s:?}");
        assert_eq!(progress_bar(1000, 1000).matches('=').count(), 50);
        assert!(progress_bar(0, 1000).starts_with("[>"));
    }
}
