//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-11-25T18:55:03.694114735Z"}`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Which output a log entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: Stream,
    pub time: String,
}

/// A partial line longer than this is written out without waiting for its end.
const MAX_PARTIAL: usize = 16 * 1024;

/// Appends a container's output to its log, a line per entry.
#[derive(Debug)]
pub struct LogWriter {
    file: File,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    /// Opens (creating, mode 0640) the log for appending.
    pub fn open(path: &Path) -> io::Result<LogWriter> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)?;
        Ok(LogWriter {
            file,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Records output of `stream`; complete lines are written at once.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let idx = stream as usize;
        let mut out = Vec::new();
        let time = strato_container::state::now_rfc3339();
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let buf = &mut self.partial[idx];
            buf.extend_from_slice(&rest[..=pos]);
            encode(&mut out, stream, buf, &time)?;
            buf.clear();
            rest = &rest[pos + 1..];
        }
        let buf = &mut self.partial[idx];
        buf.extend_from_slice(rest);
        if buf.len() >= MAX_PARTIAL {
            encode(&mut out, stream, buf, &time)?;
            buf.clear();
        }
        if !out.is_empty() {
            self.file.write_all(&out)?;
        }
        Ok(())
    }

    /// Writes out what is left of a stream's last line (at end-of-file).
    pub fn finish(&mut self, stream: Stream) -> io::Result<()> {
        let idx = stream as usize;
        if self.partial[idx].is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        let time = strato_container::state::now_rfc3339();
        encode(&mut out, stream, &self.partial[idx], &time)?;
        self.partial[idx].clear();
        self.file.write_all(&out)
    }
}

fn encode(out: &mut Vec<u8>, stream: Stream, line: &[u8], time: &str) -> io::Result<()> {
    let entry = Entry {
        log: String::from_utf8_lossy(line).into_owned(),
        stream,
        time: time.to_string(),
    };
    serde_json::to_writer(&mut *out, &entry).map_err(io::Error::other)?;
    out.push(b'\n');
    Ok(())
}

/// Parses one log line.
pub fn parse_line(line: &str) -> Option<Entry> {
    serde_json::from_str(line).ok()
}

/// Reads every entry of a log file (missing file: none).
pub fn read_all(path: &Path) -> io::Result<Vec<Entry>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        if let Some(e) = parse_line(&line?) {
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_partials_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::open(&path).unwrap();
        w.write(Stream::Stdout, b"hel").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"lo\nworld\nta").unwrap();
        w.finish(Stream::Stdout).unwrap();
        w.finish(Stream::Stderr).unwrap();
        let entries = read_all(&path).unwrap();
        let got: Vec<_> = entries.iter().map(|e| (e.stream, e.log.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stderr, "oops\n"),
                (Stream::Stdout, "hello\n"),
                (Stream::Stdout, "world\n"),
                (Stream::Stdout, "ta"),
            ]
        );
        assert!(entries[0].time.ends_with('Z'));
    }

    #[test]
    fn long_lines_are_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::open(&path).unwrap();
        w.write(Stream::Stdout, &vec![b'x'; MAX_PARTIAL + 10])
            .unwrap();
        w.finish(Stream::Stdout).unwrap();
        let entries = read_all(&path).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].log.len(), MAX_PARTIAL + 10);
    }

    #[test]
    fn invalid_utf8_is_kept_lossy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::open(&path).unwrap();
        w.write(Stream::Stdout, b"a\xffb\n").unwrap();
        assert_eq!(read_all(&path).unwrap()[0].log, "a\u{fffd}b\n");
    }
}
