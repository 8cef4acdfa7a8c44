//! Plumbing between async streams and blocking code: channel-backed
//! streams, a blocking reader over a request body, a blocking writer into a
//! response body, and a tail reader for json-file logs.

use std::fs::File;
use std::io::{self, Read, Write};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use strato_api::{ByteStream, OutputChunk, StreamKind};
use strato_supervisor::logs::{Entry, Stream};
use tokio::sync::mpsc;

/// A stream of what arrives on `rx`, ending when every sender is gone.
pub fn channel_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> BoxStream<'static, T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) }).boxed()
}

/// A blocking [`Read`] over an async byte stream, for code that runs in
/// `spawn_blocking` (image load and import). A task pulls the stream into a
/// small bounded channel, so the body is never buffered whole.
pub struct BodyReader {
    rx: std::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl BodyReader {
    /// Starts pulling `body` on the current tokio runtime.
    pub fn spawn(mut body: ByteStream) -> BodyReader {
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        tokio::spawn(async move {
            while let Some(item) = body.next().await {
                let stop = item.is_err();
                // The blocking side may be slow: hand the send to a blocking thread
                // only when the channel is full.
                let tx2 = tx.clone();
                let res = match tx.try_send(item) {
                    Ok(()) => Ok(()),
                    Err(std::sync::mpsc::TrySendError::Full(item)) => {
                        tokio::task::spawn_blocking(move || tx2.send(item).map_err(|_| ()))
                            .await
                            .unwrap_or(Err(()))
                    }
                    Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(()),
                };
                if res.is_err() || stop {
                    return;
                }
            }
        });
        BodyReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(Ok(b)) => self.current = b,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// A blocking [`Write`] whose bytes become a response body stream (image
/// save). Chunks of 64 KiB; a gone client makes writes fail.
pub struct BodyWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl BodyWriter {
    pub fn new() -> (BodyWriter, ByteStream) {
        let (tx, rx) = mpsc::channel(8);
        (
            BodyWriter {
                tx,
                buf: Vec::with_capacity(64 * 1024),
            },
            channel_stream(rx),
        )
    }

    /// Ends the body with an error (the client sees a truncated stream).
    pub fn fail(self, e: io::Error) {
        let _ = self.tx.blocking_send(Err(e));
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Reads a json-file log as it grows: complete lines only, a partial last
/// line is kept until its end arrives.
pub struct LogTail {
    file: File,
    partial: Vec<u8>,
}

impl LogTail {
    /// Follows `file` from its current position.
    pub fn new(file: File) -> LogTail {
        LogTail {
            file,
            partial: Vec::new(),
        }
    }

    /// The entries written since the last call.
    pub fn read_new(&mut self) -> io::Result<Vec<Entry>> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut out = Vec::new();
        let Some(last_nl) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(out);
        };
        let rest = self.partial.split_off(last_nl + 1);
        for line in self.partial.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            if let Some(e) = std::str::from_utf8(line)
                .ok()
                .and_then(strato_supervisor::logs::parse_line)
            {
                out.push(e);
            }
        }
        self.partial = rest;
        Ok(out)
    }
}

/// Which streams a reader wants.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    pub stdout: bool,
    pub stderr: bool,
    pub timestamps: bool,
}

impl Want {
    /// The chunk for a log entry, or `None` when its stream is not wanted.
    pub fn chunk(&self, e: &Entry) -> Option<OutputChunk> {
        let kind = match e.stream {
            Stream::Stdout if self.stdout => StreamKind::Stdout,
            Stream::Stderr if self.stderr => StreamKind::Stderr,
            _ => return None,
        };
        let data = if self.timestamps {
            Bytes::from(format!("{} {}", e.time, e.log))
        } else {
            Bytes::from(e.log.clone())
        };
        Some(OutputChunk { kind, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_whole_lines_as_they_come() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.log");
        let mut w = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap();
        let mut t = LogTail::new(File::open(&p).unwrap());
        assert!(t.read_new().unwrap().is_empty());
        w.write_all(br#"{"log":"a\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}"#)
            .unwrap();
        assert!(t.read_new().unwrap().is_empty());
        w.write_all(
            b"\n{\"log\":\"b\\n\",\"stream\":\"stderr\",\"time\":\"2024-01-01T00:00:01Z\"}\n",
        )
        .unwrap();
        let got = t.read_new().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].stream, Stream::Stderr);
        let want = Want {
            stdout: true,
            stderr: false,
            timestamps: true,
        };
        assert_eq!(
            want.chunk(&got[0]).unwrap().data,
            Bytes::from("2024-01-01T00:00:00Z a\n")
        );
        assert!(want.chunk(&got[1]).is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn body_reader_and_writer() {
        let body: ByteStream = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"hel")),
            Ok(Bytes::from_static(b"lo")),
        ])
        .boxed();
        let mut r = BodyReader::spawn(body);
        let text = tokio::task::spawn_blocking(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
        .await
        .unwrap();
        assert_eq!(text, "hello");
        let (mut w, mut out) = BodyWriter::new();
        tokio::task::spawn_blocking(move || {
            w.write_all(&[7u8; 100_000]).unwrap();
        });
        let mut n = 0;
        while let Some(c) = out.next().await {
            n += c.unwrap().len();
        }
        assert_eq!(n, 100_000);
    }
}
