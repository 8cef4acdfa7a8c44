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
/// 0 is stdin (echoed), 1 stdout, 2 stderr. A frame's payload is passed on
/// as it arrives (a chunk may be part of a frame), so memory stays bounded
/// whatever length a header announces.
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: BytesMut,
    /// The frame being read: its stream and the payload bytes still to come.
    current: Option<(StreamKind, usize)>,
}

impl Demuxer {
    pub fn new() -> Self {
        Demuxer::default()
    }
    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
    /// The next piece of output, `None` when more bytes are needed. A header
    /// with an unknown stream byte is an error (the stream is not framed).
    pub fn next_chunk(&mut self) -> Result<Option<OutputChunk>, Error> {
        loop {
            if let Some((kind, remaining)) = self.current {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let n = remaining.min(self.buf.len());
                let data = self.buf.split_to(n).freeze();
                self.current = (remaining > n).then_some((kind, remaining - n));
                return Ok(Some(OutputChunk { kind, data }));
            }
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
            let len =
                u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
            self.buf.advance(8);
            if len > 0 {
                self.current = Some((kind, len));
            }
        }
    }
    /// Bytes still expected to complete the current frame or header
    /// (non-zero at end of stream means the stream was cut).
    pub fn pending(&self) -> usize {
        match self.current {
            Some((_, remaining)) => remaining,
            None => self.buf.len(),
        }
    }
}

/// The longest JSON value a stream may carry (progress lines, events and
/// stats samples are a few KiB); beyond it the stream is refused rather
/// than buffered without bound.
pub const MAX_JSON_VALUE: usize = 16 << 20;

/// Splits a byte stream into JSON values of type `T`. Values may be
/// separated by newlines (`\r\n` too) or follow each other directly.
#[derive(Debug, Default)]
pub struct JsonSplitter {
    buf: BytesMut,
    /// Length of `buf` at the last attempt that found no complete value: a
    /// new attempt is only worth it once a `}` or `]` arrived after it (the
    /// values of these streams are objects), which keeps a value spread over
    /// many chunks from being re-parsed from its start at every chunk.
    tried: usize,
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
        self.tried = self.tried.saturating_sub(skip);
        if self.buf.is_empty() {
            return Ok(None);
        }
        if self.buf.len() > MAX_JSON_VALUE {
            return Err(Error::Stream(format!(
                "a JSON value in the daemon's stream is over {MAX_JSON_VALUE} bytes; refusing to buffer more"
            )));
        }
        if self.tried > 0
            && !self.buf[self.tried..]
                .iter()
                .any(|b| matches!(b, b'}' | b']'))
        {
            return Ok(None);
        }
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<T>();
        match it.next() {
            Some(Ok(v)) => {
                let used = it.byte_offset();
                self.buf.advance(used);
                self.tried = 0;
                Ok(Some(v))
            }
            Some(Err(e)) if e.is_eof() => {
                self.tried = self.buf.len();
                Ok(None)
            }
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
        all.extend(frame(2, b"bye\n"));
        // Fed one byte at a time and in one piece: the same streams come out.
        for step in [1, all.len()] {
            let mut d = Demuxer::new();
            let (mut out, mut err, mut order) = (Vec::new(), Vec::new(), Vec::new());
            for piece in all.chunks(step) {
                d.push(piece);
                while let Some(c) = d.next_chunk().unwrap() {
                    assert!(!c.data.is_empty());
                    if order.last() != Some(&c.kind) {
                        order.push(c.kind);
                    }
                    match c.kind {
                        StreamKind::Stderr => err.extend_from_slice(&c.data),
                        _ => out.extend_from_slice(&c.data),
                    }
                }
            }
            assert_eq!(&out[..6], b"hello\n");
            assert_eq!(out.len(), 6 + 70_000);
            assert_eq!(err, b"oops\nbye\n");
            use StreamKind::*;
            assert_eq!(order, [Stdout, Stderr, Stdout, Stderr], "step {step}");
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn demuxer_never_buffers_a_whole_announced_frame() {
        // A header announcing 4 GiB: the bytes that came are passed on at once.
        let mut d = Demuxer::new();
        d.push(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        d.push(b"partial");
        let c = d.next_chunk().unwrap().unwrap();
        assert_eq!(&c.data[..], b"partial");
        assert!(d.next_chunk().unwrap().is_none());
        assert_eq!(d.pending(), u32::MAX as usize - 7);
    }

    #[test]
    fn json_splitter_refuses_an_endless_value() {
        let mut j = JsonSplitter::new();
        j.push(b"{\"status\":\"");
        let chunk = vec![b'a'; 1 << 20];
        let mut refused = false;
        for _ in 0..20 {
            j.push(&chunk);
            match j.next_value::<serde_json::Value>() {
                Ok(None) => {}
                Ok(Some(v)) => panic!("no value is complete: {v}"),
                Err(e) => {
                    assert!(e.to_string().contains("over"), "{e}");
                    refused = true;
                    break;
                }
            }
        }
        assert!(refused);
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
        assert_eq!(got.len(), 3);
        assert_eq!(&got[0].as_ref().unwrap().data[..], b"ok");
        assert_eq!(&got[1].as_ref().unwrap().data[..], b"x");
        assert!(got[2]
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
