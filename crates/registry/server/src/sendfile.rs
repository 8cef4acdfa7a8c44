//! Blob bodies sent with sendfile(2) on plain TCP connections: the page cache
//! goes to the socket without passing through the registry's memory (no read
//! into a buffer, no copy from it into the socket).
//!
//! hyper writes every response body through the connection's IO, so a blob
//! body ([`body`]) yields placeholder frames — slices of a static buffer whose
//! bytes are never sent — and queues the file range each one stands for; the
//! connection's IO ([`SendfileStream`]) recognises a placeholder by its
//! address and sends the queued range with sendfile instead. This relies on
//! hyper 1 handing body frames to a vectored IO as they are, in order (its
//! queue write strategy, forced with `writev(true)` in [`crate::server`]);
//! the checks here fail the connection rather than send a placeholder if
//! that ever stops holding. Written by hand: no maintained crate plugs
//! sendfile into hyper 1.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::upload::CHUNK;

/// What placeholder frames point into; its bytes never reach a client.
static PLACEHOLDER: [u8; CHUNK] = [0; CHUNK];

/// Frames queued and not yet sent past which a body gives up (hyper buffers
/// at most ~400 KiB, two frames, before writing).
const MAX_QUEUED: usize = 8;

/// A file range standing in for one placeholder frame.
struct Range {
    file: Arc<File>,
    offset: u64,
    len: usize,
}

/// The file ranges queued on one connection, in the order hyper writes them.
#[derive(Clone, Default)]
pub struct Queue(Arc<Mutex<VecDeque<Range>>>);

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Range>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where `b` starts in [`PLACEHOLDER`], if it is a piece of it.
fn placeholder_offset(b: &[u8]) -> Option<usize> {
    let base = PLACEHOLDER.as_ptr() as usize;
    let p = b.as_ptr() as usize;
    (!b.is_empty() && p >= base && p + b.len() <= base + CHUNK).then(|| p - base)
}

/// A TCP connection whose writes of placeholder frames become sendfile.
pub struct SendfileStream {
    tcp: TcpStream,
    queue: Queue,
}

impl SendfileStream {
    pub fn new(tcp: TcpStream, queue: Queue) -> SendfileStream {
        SendfileStream { tcp, queue }
    }

    /// Sends (part of) the range queued for placeholder slice `b`.
    fn poll_sendfile(&mut self, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        let pos = placeholder_offset(b).expect("called with a placeholder slice");
        let mut q = self.queue.lock();
        let Some(r) = q.front() else {
            return Poll::Ready(Err(io::Error::other(
                "blob placeholder written without a queued file range",
            )));
        };
        if pos + b.len() != r.len {
            return Poll::Ready(Err(io::Error::other(format!(
                "blob placeholder {pos}+{} does not end its file range of {} bytes",
                b.len(),
                r.len
            ))));
        }
        let (file, start) = (r.file.clone(), r.offset + pos as u64);
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let mut off = start;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.tcp, &*file, Some(&mut off), b.len())
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob file shorter than its size",
                    )))
                }
                Ok(n) => {
                    if n == b.len() {
                        q.pop_front();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if placeholder_offset(buf).is_some() {
            return self.poll_sendfile(cx, buf);
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Ordinary bytes up to the first placeholder go in one writev; a
        // placeholder at the front goes alone, by sendfile.
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        if placeholder_offset(&bufs[first]).is_some() {
            return self.poll_sendfile(cx, &bufs[first]);
        }
        let end = bufs
            .iter()
            .position(|b| placeholder_offset(b).is_some())
            .unwrap_or(bufs.len());
        Pin::new(&mut self.tcp).poll_write_vectored(cx, &bufs[..end])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A body of `len` bytes of `file` from `start`, sent by the connection of
/// `queue` with sendfile.
pub struct Body {
    file: Arc<File>,
    off: u64,
    end: u64,
    queue: Queue,
}

pub fn body(file: File, start: u64, len: u64, queue: Queue) -> Body {
    Body {
        file: Arc::new(file),
        off: start,
        end: start + len,
        queue,
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if self.off >= self.end {
            return Poll::Ready(None);
        }
        let n = ((self.end - self.off) as usize).min(CHUNK);
        {
            let mut q = self.queue.lock();
            if q.len() >= MAX_QUEUED {
                return Poll::Ready(Some(Err(io::Error::other(
                    "blob frames are not reaching the connection's sendfile; closing it",
                ))));
            }
            q.push_back(Range {
                file: self.file.clone(),
                offset: self.off,
                len: n,
            });
        }
        self.off += n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&PLACEHOLDER[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.off >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_recognised_by_address_only() {
        assert_eq!(placeholder_offset(&PLACEHOLDER[..10]), Some(0));
        assert_eq!(placeholder_offset(&PLACEHOLDER[100..]), Some(100));
        assert_eq!(placeholder_offset(&PLACEHOLDER[5..5]), None);
        let zeros = vec![0u8; 64];
        assert_eq!(placeholder_offset(&zeros), None);
    }
}
