//! Decoders of the daemon's streamed bodies, free of I/O so they are tested
//! on bytes: [`Demuxer`] for the 8-byte framed stdout/stderr of logs, attach
//! and exec without a TTY, and [`JsonSplitter`] for the concatenated JSON
//! values of progress, events and stats streams.

use bytes::{Buf, Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use serde::de::DeserializeOwned;
use strato_api::{OutputChunk, StreamKind};

use crate::error::Error;

/// Splits a multiplexed stream into chunks. Each frame is a header
/// `[stream, 0, 0, 0, len (u32 big endian)]` and `len` payload bytes; stream
/// 0 is stdin (echoed), 1 stdout, 2 stderr.
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: BytesMut,
}

impl Demuxer {
    pub fn new() -> Self {
        Demuxer::default()
    }
    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
    /// The next complete frame, `None` when more bytes are needed. A header
    /// with an unknown stream byte is an error (the stream is not framed).
    pub fn next_chunk(&mut self) -> Result<Option<OutputChunk>, Error> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let kind = match self.buf[0] {
            0 => StreamKind::Stdin,
            1 => StreamKind::Stdout,
            2 => StreamKind::Stderr,
            other => {
                return Err(Error::Stream(format!(
                "malformed multiplexed stream: unknown stream type {other} in frame header {:02x?}",
                &self.buf[..8]
            )))
            }
        };
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        self.buf.advance(8);
        let data = self.buf.split_to(len).freeze();
        Ok(Some(OutputChunk { kind, data }))
    }
    /// Bytes of an incomplete frame left over (non-zero at end of stream
    /// means the stream was cut).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Splits a byte stream into JSON values of type `T`. Values may be
/// separated by newlines (`\r\n` too) or follow each other directly.
#[derive(Debug, Default)]
pub struct JsonSplitter {
    buf: BytesMut,
}

impl JsonSplitter {
    pub fn new() -> Self {
        JsonSplitter::default()
    }
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
    /// The next complete value, `None` when more bytes are needed.
    pub fn next_value<T: DeserializeOwned>(&mut self) -> Result<Option<T>, Error> {
        let skip = self
            .buf
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        self.buf.advance(skip);
        if self.buf.is_empty() {
            return Ok(None);
        }
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<T>();
        match it.next() {
            Some(Ok(v)) => {
                let used = it.byte_offset();
                self.buf.advance(used);
                Ok(Some(v))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(Error::Json {
                what: "a JSON stream".into(),
                source: e,
            }),
            None => Ok(None),
        }
    }
    /// Whether non-whitespace bytes are left (a value cut off at the end).
    pub fn has_pending(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }
}

/// Raw body bytes as the daemon sends them.
pub type BodyStream = BoxStream<'static, Result<Bytes, Error>>;

/// Container or exec output, demultiplexed (or raw stdout with a TTY).
pub type Output = BoxStream<'static, Result<OutputChunk, Error>>;

/// Turns a body into output chunks: framed unless `tty`.
pub fn output(body: BodyStream, tty: bool) -> Output {
    if tty {
        return body.map(|r| r.map(OutputChunk::stdout)).boxed();
    }
    futures::stream::unfold(
        (body, Demuxer::new(), false),
        |(mut body, mut demux, done)| async move {
            if done {
                return None;
            }
            loop {
                match demux.next_chunk() {
                    Ok(Some(c)) => return Some((Ok(c), (body, demux, false))),
                    Ok(None) => {}
                    Err(e) => return Some((Err(e), (body, demux, true))),
                }
                match body.next().await {
                    Some(Ok(b)) => demux.push(&b),
                    Some(Err(e)) => return Some((Err(e), (body, demux, true))),
                    None if demux.pending() > 0 => {
                        let e = Error::Stream(format!(
                            "output stream ended in the middle of a frame ({} bytes left)",
                            demux.pending()
                        ));
                        return Some((Err(e), (body, demux, true)));
                    }
                    None => return None,
                }
            }
        },
    )
    .boxed()
}

/// Turns a body into a stream of JSON values.
pub fn json_values<T: DeserializeOwned + Send + 'static>(
    body: BodyStream,
) -> BoxStream<'static, Result<T, Error>> {
    futures::stream::unfold(
        (body, JsonSplitter::new(), false),
        |(mut body, mut split, done)| async move {
            if done {
                return None;
            }
            loop {
                match split.next_value::<T>() {
                    Ok(Some(v)) => return Some((Ok(v), (body, split, false))),
                    Ok(None) => {}
                    Err(e) => return Some((Err(e), (body, split, true))),
                }
                match body.next().await {
                    Some(Ok(b)) => split.push(&b),
                    Some(Err(e)) => return Some((Err(e), (body, split, true))),
                    None if split.has_pending() => {
                        let e = Error::Stream("JSON stream ended in the middle of a value".into());
                        return Some((Err(e), (body, split, true)));
                    }
                    None => return None,
                }
            }
        },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_api::types::JsonMessage;

    fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, 0, 0, 0];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn demuxer_reassembles_frames_split_anywhere() {
        let mut all = frame(1, b"hello\n");
        all.extend(frame(2, b"oops\n"));
        all.extend(frame(1, b""));
        all.extend(frame(1, &[7u8; 70_000]));
        // Feed one byte at a time: every split point is exercised.
        let mut d = Demuxer::new();
        let mut got = Vec::new();
        for b in &all {
            d.push(std::slice::from_ref(b));
            while let Some(c) = d.next_chunk().unwrap() {
                got.push(c);
            }
        }
        assert_eq!(got.len(), 4);
        assert_eq!(
            (got[0].kind, &got[0].data[..]),
            (StreamKind::Stdout, &b"hello\n"[..])
        );
        assert_eq!(
            (got[1].kind, &got[1].data[..]),
            (StreamKind::Stderr, &b"oops\n"[..])
        );
        assert!(got[2].data.is_empty());
        assert_eq!(got[3].data.len(), 70_000);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn demuxer_rejects_unframed_data() {
        let mut d = Demuxer::new();
        d.push(b"hello world\n");
        let e = d.next_chunk().unwrap_err().to_string();
        assert!(e.contains("unknown stream type 104"), "{e}");
    }

    #[tokio::test]
    async fn output_stream_reports_a_cut_frame() {
        let mut bytes = frame(1, b"ok");
        bytes.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 9, b'x']);
        let body = futures::stream::iter([Ok(Bytes::from(bytes))]).boxed();
        let got: Vec<_> = output(body, false).collect().await;
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0].as_ref().unwrap().data[..], b"ok");
        assert!(got[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("middle of a frame"));
        // With a TTY the bytes are stdout as they came.
        let body = futures::stream::iter([Ok(Bytes::from_static(b"\x01raw"))]).boxed();
        let got: Vec<_> = output(body, true).collect().await;
        assert_eq!(&got[0].as_ref().unwrap().data[..], b"\x01raw");
    }

    #[tokio::test]
    async fn json_values_across_chunks_and_separators() {
        let text = "{\"status\":\"a\"}\r\n{\"status\":\"b\",\"id\":\"l1\"}{\"error\":\"bad\"}\n";
        let chunks: Vec<Result<Bytes, Error>> = text
            .as_bytes()
            .chunks(5)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let got: Vec<JsonMessage> = json_values(futures::stream::iter(chunks).boxed())
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].id.as_deref(), Some("l1"));
        assert_eq!(got[2].error.as_deref(), Some("bad"));
        let cut = futures::stream::iter([Ok(Bytes::from_static(b"{\"status\":"))]).boxed();
        let got: Vec<Result<JsonMessage, Error>> = json_values(cut).collect().await;
        assert!(got[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("middle of a value"));
        let bad = futures::stream::iter([Ok(Bytes::from_static(b"not json"))]).boxed();
        let got: Vec<Result<JsonMessage, Error>> = json_values(bad).collect().await;
        assert!(got[0].is_err());
    }
}
