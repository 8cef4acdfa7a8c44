//! The HTTP/1.1 fast path: requests and responses forwarded as bytes.
//!
//! hyper builds a `Request` and a `Response` (header maps, URIs, body
//! channels, a task per member connection) for every exchange; measured
//! against nginx in front of the same members, that cost twice nginx's user
//! CPU per request. For the plain cases, which are nearly all traffic, this
//! module does what nginx does instead: it parses the request head with
//! httparse, writes the member a rewritten head (hop-by-hop headers gone,
//! `X-Forwarded-For` added), copies the body as it comes, parses the
//! response head, writes the client a rewritten head, and copies the
//! response body framed by `Content-Length`, by scanning its chunked
//! encoding, or by the member closing.
//!
//! The plain case is an HTTP/1.1 request with an origin-form target and no
//! body or a `Content-Length` one, without `Expect`. Anything else (HTTP/1.0,
//! chunked request bodies, `Expect: 100-continue`, absolute-form targets,
//! CONNECT, HTTP/2's preface, malformed heads) is handed, with the bytes
//! already read, to the general path in [`crate::http`], which serves the
//! rest of the connection with hyper.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::pool::Pool;

/// Largest request or response head read before giving up on it.
const MAX_HEAD: usize = 64 * 1024;
/// Headers parsed per head; more goes to the general path (requests) or
/// is refused (responses).
const MAX_HEADERS: usize = 96;
/// How long a client connection may sit idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How much is read at once.
const READ_CHUNK: usize = 16 * 1024;

/// How a client connection served by the fast path ended.
pub(crate) enum Outcome {
    /// Closed by either side, or after an error answered to the client.
    Done,
    /// A request the fast path does not serve: the connection goes to the
    /// general path with the bytes already read.
    Fallback(TcpStream, BytesMut),
}

/// Keep-alive connections to members for the fast path.
#[derive(Debug, Default)]
pub(crate) struct RawUpstreams {
    idle: crate::http::Idle<TcpStream>,
}

impl RawUpstreams {
    /// An idle connection to `addr` (`true`: reused), or a new one. With
    /// `probe`, an idle connection is first checked for having been closed
    /// by the member (for requests that cannot be sent again).
    async fn checkout(&self, addr: SocketAddr, probe: bool) -> io::Result<(TcpStream, bool)> {
        while let Some(conn) = self.idle.pop(addr) {
            if probe {
                let mut byte = [0u8; 1];
                match conn.try_read(&mut byte) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // Closed, or bytes nobody asked for: not usable.
                    _ => continue,
                }
            }
            return Ok((conn, true));
        }
        Ok((crate::http::connect_member(addr).await?, false))
    }

    fn checkin(&self, addr: SocketAddr, conn: TcpStream) {
        self.idle.push(addr, conn);
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding, forwarded as it is.
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

/// A parsed request head, rewritten for the member in the caller's buffer.
#[derive(Debug)]
struct RequestHead {
    /// Bytes of the head in the client buffer.
    len: usize,
    /// Body length.
    body: u64,
    /// Whether the client keeps the connection for another request.
    keep_alive: bool,
    /// HEAD requests get no response body.
    is_head: bool,
}

/// What to do with bytes received from a client.
#[derive(Debug)]
enum ParsedRequest {
    /// A whole head, rewritten into the output buffer.
    Complete(RequestHead),
    /// More bytes are needed.
    Partial,
    /// Not the plain case: the general path serves it.
    General,
}

/// Hop-by-hop header names (RFC 9110 §7.6.1, plus the non-standard
/// `proxy-connection` and `keep-alive`), never forwarded.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

fn is_hop_by_hop(name: &str, listed: &[&str]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || listed.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The tokens of `Connection` values: (close, keep-alive, other names).
fn connection_tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> (bool, bool, Vec<&'a str>) {
    let (mut close, mut keep) = (false, false);
    let mut listed = Vec::new();
    for v in values {
        let Ok(v) = std::str::from_utf8(v) else {
            continue;
        };
        for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if t.eq_ignore_ascii_case("close") {
                close = true;
            } else if t.eq_ignore_ascii_case("keep-alive") {
                keep = true;
            } else {
                listed.push(t);
            }
        }
    }
    (close, keep, listed)
}

fn parse_length(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parses a request head at the start of `buf` and, when it is the plain
/// case, writes the member's head into `out` (cleared first). `peer` is the
/// client's address as text, for X-Forwarded-For.
fn parse_request(buf: &[u8], out: &mut Vec<u8>, peer: &str) -> ParsedRequest {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return ParsedRequest::Partial,
        _ => return ParsedRequest::General,
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return ParsedRequest::General;
    };
    if method == "CONNECT" || !(path.starts_with('/') || path == "*") {
        return ParsedRequest::General;
    }
    let mut body = None;
    let mut xff: Option<&[u8]> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match (parse_length(h.value), body) {
                (Some(n), None) => body = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return ParsedRequest::General,
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            || h.name.eq_ignore_ascii_case("expect")
        {
            return ParsedRequest::General;
        } else if h.name.eq_ignore_ascii_case("x-forwarded-for") {
            if xff.is_some() {
                // Several: the general path joins them.
                return ParsedRequest::General;
            }
            xff = Some(h.value);
        }
    }
    let (close, _, listed) = connection_tokens(
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .map(|h| h.value),
    );
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers.iter() {
        if is_hop_by_hop(h.name, &listed) || h.name.eq_ignore_ascii_case("x-forwarded-for") {
            continue;
        }
        push_header(out, h.name, h.value);
    }
    out.extend_from_slice(b"X-Forwarded-For: ");
    if let Some(prev) = xff {
        out.extend_from_slice(prev);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(peer.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    ParsedRequest::Complete(RequestHead {
        len,
        body: body.unwrap_or(0),
        keep_alive: !close,
        is_head: method == "HEAD",
    })
}

/// A parsed response head, rewritten for the client in the caller's buffer.
#[derive(Debug)]
struct ResponseHead {
    /// Bytes of the head in the member buffer.
    len: usize,
    /// A 1xx response: another head follows.
    informational: bool,
    framing: Framing,
    /// Whether the member connection can take another request afterwards.
    reusable: bool,
}

/// Why a member's response cannot be forwarded.
#[derive(Debug, PartialEq, Eq)]
enum BadResponse {
    Malformed(String),
    TooLarge,
}

impl std::fmt::Display for BadResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadResponse::Malformed(why) => write!(f, "malformed response head: {why}"),
            BadResponse::TooLarge => write!(f, "response head larger than {MAX_HEAD} bytes"),
        }
    }
}

/// Parses a response head at the start of `buf`; when whole, writes the
/// client's head into `out` (cleared first). `client_close` asks for
/// `Connection: close` towards the client.
fn parse_response(
    buf: &[u8],
    out: &mut Vec<u8>,
    is_head: bool,
    client_close: bool,
) -> Result<Option<ResponseHead>, BadResponse> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(BadResponse::TooLarge),
        Err(e) => return Err(BadResponse::Malformed(e.to_string())),
    };
    let (Some(version), Some(code)) = (resp.version, resp.code) else {
        return Err(BadResponse::Malformed("no status line".into()));
    };
    if code == 101 {
        return Err(BadResponse::Malformed(
            "101 Switching Protocols to a request without Upgrade".into(),
        ));
    }
    let informational = (100..200).contains(&code);
    let mut length = None;
    let mut te: Option<&[u8]> = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match (parse_length(h.value), length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Err(BadResponse::Malformed("bad Content-Length".into())),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te = Some(h.value);
        }
    }
    let chunked = te.is_some_and(|v| {
        std::str::from_utf8(v).is_ok_and(|v| {
            v.rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        })
    });
    let framing = if is_head || informational || code == 204 || code == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if te.is_some() {
        Framing::UntilClose
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let (close, keep, listed) = connection_tokens(
        resp.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .map(|h| h.value),
    );
    let reusable =
        framing != Framing::UntilClose && !close && (version == 1 || keep) && !informational;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    let digits = [
        b'0' + (code / 100 % 10) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ];
    out.extend_from_slice(&digits);
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        // The transfer coding is forwarded as it is, and with it the
        // member's Transfer-Encoding (Content-Length loses to it).
        let keep_te = h.name.eq_ignore_ascii_case("transfer-encoding");
        if (is_hop_by_hop(h.name, &listed) && !keep_te)
            || (te.is_some() && h.name.eq_ignore_ascii_case("content-length"))
        {
            continue;
        }
        push_header(out, h.name, h.value);
    }
    if !informational && (client_close || framing == Framing::UntilClose) {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(ResponseHead {
        len,
        informational,
        framing,
        reusable,
    }))
}

/// Finds where a chunked body ends, fed its bytes as they arrive.
#[derive(Debug, Default)]
struct ChunkedEnd {
    state: ChunkState,
    /// Size of the chunk whose size line is being read.
    size: u64,
    digits: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
}

impl ChunkedEnd {
    /// Feeds the next bytes of the body. `Ok(Some(n))`: the body ends after
    /// the first `n` of them; `Ok(None)`: it goes on.
    fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, &'static str> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                ChunkState::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if self.digits >= 15 {
                            return Err("chunk size too large");
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0);
                        self.size = self.size * 16 + u64::from(d);
                        self.digits += 1;
                        ChunkState::Size
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => ChunkState::Extension,
                    b'\r' if self.digits > 0 => ChunkState::SizeLf,
                    _ => return Err("bad chunk size line"),
                },
                ChunkState::Extension => match b {
                    b'\r' => ChunkState::SizeLf,
                    b'\n' => return Err("bare LF in chunk extension"),
                    _ => ChunkState::Extension,
                },
                ChunkState::SizeLf => match b {
                    b'\n' if self.size == 0 => ChunkState::TrailerStart,
                    b'\n' => ChunkState::Data(self.size),
                    _ => return Err("chunk size line without LF"),
                },
                ChunkState::Data(left) => {
                    let avail = (bytes.len() - i) as u64;
                    let take = left.min(avail);
                    i += take as usize;
                    self.state = if take == left {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data(left - take)
                    };
                    continue;
                }
                ChunkState::DataCr if b == b'\r' => ChunkState::DataLf,
                ChunkState::DataLf if b == b'\n' => {
                    self.size = 0;
                    self.digits = 0;
                    ChunkState::Size
                }
                ChunkState::DataCr | ChunkState::DataLf => return Err("chunk without CRLF"),
                ChunkState::TrailerStart if b == b'\r' => ChunkState::EndLf,
                ChunkState::TrailerStart => ChunkState::TrailerLine,
                ChunkState::TrailerLine if b == b'\r' => ChunkState::TrailerLf,
                ChunkState::TrailerLine => ChunkState::TrailerLine,
                ChunkState::TrailerLf if b == b'\n' => ChunkState::TrailerStart,
                ChunkState::TrailerLf => return Err("trailer line without LF"),
                ChunkState::EndLf if b == b'\n' => return Ok(Some(i + 1)),
                ChunkState::EndLf => return Err("chunked body without final CRLF"),
            };
            i += 1;
        }
        Ok(None)
    }
}

/// Writes a short plain-text answer of the proxy itself.
fn error_page(out: &mut Vec<u8>, status: u16, reason: &str, text: &str, close: bool) {
    use std::io::Write as _;
    out.clear();
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{}\r\n{text}\n",
        text.len() + 1,
        if close { "Connection: close\r\n" } else { "" },
    );
}

/// Serves `client` on the fast path until it closes or sends a request the
/// fast path leaves to the general one.
pub(crate) async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    pool: &Pool,
    upstreams: &RawUpstreams,
) -> Outcome {
    let peer_text = peer.ip().to_string();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Vec::with_capacity(1024);
    let mut member_buf = BytesMut::with_capacity(READ_CHUNK);
    let idle = tokio::time::sleep(IDLE_TIMEOUT);
    tokio::pin!(idle);
    loop {
        let head = loop {
            if !buf.is_empty() {
                match parse_request(&buf, &mut out, &peer_text) {
                    ParsedRequest::Complete(head) => break head,
                    ParsedRequest::Partial => {}
                    ParsedRequest::General => return Outcome::Fallback(client, buf),
                }
            }
            buf.reserve(READ_CHUNK);
            match read_within(&mut client, &mut buf, idle.as_mut(), IDLE_TIMEOUT).await {
                Ok(n) if n > 0 => {}
                _ => return Outcome::Done,
            }
        };
        buf.advance(head.len);
        match exchange(
            &mut client,
            &head,
            &mut buf,
            &mut out,
            &mut member_buf,
            pool,
            upstreams,
        )
        .await
        {
            Ok(true) if head.keep_alive => {}
            _ => {
                let _ = client.shutdown().await;
                return Outcome::Done;
            }
        }
    }
}

/// Reads what the client sends next into `buf`, giving up with `TimedOut`
/// once it has sent nothing for `limit`.
///
/// Like `tokio::time::timeout(limit, client.read_buf(buf))`, without putting
/// a timer into the runtime's timer wheel and taking it out again for every
/// request (a lock and two clock reads each time; in a profile under wrk,
/// about 1.3% of the proxy's CPU). `idle` stays armed across reads instead:
/// when it fires during a read that began less than `limit` ago (it was set
/// for an earlier one), it is set again for this read's deadline.
async fn read_within(
    client: &mut TcpStream,
    buf: &mut BytesMut,
    mut idle: Pin<&mut tokio::time::Sleep>,
    limit: Duration,
) -> io::Result<usize> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        tokio::select! {
            biased;
            read = client.read_buf(buf) => return read,
            () = idle.as_mut() => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                idle.as_mut().reset(deadline);
            }
        }
    }
}

/// Forwards one request whose member head is in `out` and whose body
/// starts in `buf`, and its response. `Ok(true)`: the client connection
/// can take another request.
async fn exchange(
    client: &mut TcpStream,
    head: &RequestHead,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    member_buf: &mut BytesMut,
    pool: &Pool,
    upstreams: &RawUpstreams,
) -> io::Result<bool> {
    // The part of the body already read travels with the head.
    let have = buf
        .len()
        .min(usize::try_from(head.body).unwrap_or(usize::MAX));
    out.extend_from_slice(&buf[..have]);
    buf.advance(have);
    let mut rest = head.body - have as u64;
    // Whether the whole request is in `out`, so that it can be sent again.
    let replayable = rest == 0;
    let client_close = !head.keep_alive;
    let mut tried: Vec<SocketAddr> = Vec::new();
    let (lease, mut member, resp) = 'attempt: loop {
        let Some(lease) = pool.pick(&tried) else {
            let text = if tried.is_empty() {
                format!(
                    "strato lb: cluster {} has no active member to take the request",
                    pool.name()
                )
            } else {
                format!(
                    "strato lb: no member of cluster {} could be reached (tried {})",
                    pool.name(),
                    tried.len()
                )
            };
            let (code, reason) = if tried.is_empty() {
                (503, "Service Unavailable")
            } else {
                (502, "Bad Gateway")
            };
            error_page(out, code, reason, &text, client_close || rest > 0);
            client.write_all(out).await?;
            return Ok(rest == 0);
        };
        let addr = lease.member().addr();
        let (mut member, reused) = match upstreams.checkout(addr, !replayable).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(pool = pool.name(), member = %addr, error = %e, "member unreachable; trying another");
                lease.failed();
                tried.push(addr);
                continue;
            }
        };
        let mut failure = match member.write_all(out).await {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        };
        // The rest of the body, straight from the client.
        while failure.is_none() && rest > 0 {
            buf.reserve(READ_CHUNK);
            let n = client.read_buf(buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let take = n.min(usize::try_from(rest).unwrap_or(usize::MAX));
            if let Err(e) = member.write_all(&buf[..take]).await {
                failure = Some(e.to_string());
            }
            buf.advance(take);
            rest -= take as u64;
        }
        member_buf.clear();
        let mut received = false;
        while failure.is_none() {
            match parse_response(member_buf, out, head.is_head, client_close) {
                Ok(Some(resp)) if resp.informational => {
                    client.write_all(out).await?;
                    member_buf.advance(resp.len);
                    continue;
                }
                Ok(Some(resp)) => break 'attempt (lease, member, resp),
                Ok(None) => {}
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
            member_buf.reserve(READ_CHUNK);
            match member.read_buf(member_buf).await {
                Ok(0) => failure = Some("connection closed before a response".into()),
                Ok(_) => received = true,
                Err(e) => failure = Some(e.to_string()),
            }
        }
        let why = failure.unwrap_or_default();
        // A kept-alive connection the member closed meanwhile: the request
        // goes again on another connection if it is whole.
        // (`out` still holds the request: nothing was received, so no
        // response head was written over it.)
        if reused && replayable && !received {
            tracing::debug!(member = %addr, error = %why, "idle member connection was closed; retrying");
            continue;
        }
        lease.failed();
        let text = format!(
            "strato lb: member {} ({addr}) of cluster {} failed: {why}",
            lease.member().id(),
            pool.name()
        );
        error_page(out, 502, "Bad Gateway", &text, true);
        client.write_all(out).await?;
        return Ok(false);
    };
    member_buf.advance(resp.len);
    // The head and what came with it of the body go in one write.
    let mut ended = true;
    let mut scanner = ChunkedEnd::default();
    let mut left = match resp.framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let first = match resp.framing {
        Framing::Empty => 0,
        Framing::Length(_) => {
            let take = member_buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            left -= take as u64;
            ended = left == 0;
            take
        }
        Framing::Chunked => match scanner.feed(member_buf) {
            Ok(Some(n)) => n,
            Ok(None) => {
                ended = false;
                member_buf.len()
            }
            Err(why) => return bad_body(client, why).await,
        },
        Framing::UntilClose => {
            ended = false;
            member_buf.len()
        }
    };
    out.extend_from_slice(&member_buf[..first]);
    member_buf.advance(first);
    client.write_all(out).await?;
    while !ended {
        member_buf.clear();
        member_buf.reserve(READ_CHUNK);
        let n = member.read_buf(member_buf).await?;
        if n == 0 {
            if resp.framing == Framing::UntilClose {
                break;
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let take = match resp.framing {
            Framing::Length(_) => {
                let take = n.min(usize::try_from(left).unwrap_or(usize::MAX));
                left -= take as u64;
                ended = left == 0;
                take
            }
            Framing::Chunked => match scanner.feed(member_buf) {
                Ok(Some(end)) => {
                    ended = true;
                    end
                }
                Ok(None) => n,
                Err(why) => return bad_body(client, why).await,
            },
            _ => n,
        };
        client.write_all(&member_buf[..take]).await?;
        member_buf.advance(take);
    }
    // Bytes past the response mean the member and the proxy disagree on
    // framing: that connection is not used again.
    if resp.reusable && member_buf.is_empty() {
        upstreams.checkin(lease.member().addr(), member);
    } else {
        drop(member);
    }
    drop(lease);
    Ok(resp.framing != Framing::UntilClose)
}

/// A member sent a body that breaks its own framing: the client's response
/// is cut short (its head already went), so its connection closes.
async fn bad_body(client: &mut TcpStream, why: &str) -> io::Result<bool> {
    tracing::debug!(error = why, "member sent a malformed chunked body");
    let _ = client.shutdown().await;
    Ok(false)
}

/// A stream that first yields bytes already read from it.
#[derive(Debug)]
pub(crate) struct Rewind {
    pre: BytesMut,
    inner: TcpStream,
}

impl Rewind {
    pub(crate) fn new(inner: TcpStream, pre: BytesMut) -> Rewind {
        Rewind { pre, inner }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(out.remaining());
            out.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> (ParsedRequest, String) {
        let mut out = Vec::new();
        let p = parse_request(text.as_bytes(), &mut out, "10.0.0.9");
        (p, String::from_utf8(out).unwrap())
    }

    #[test]
    fn plain_requests_are_rewritten_for_the_member() {
        let (p, out) = req("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nAccept: */*\r\n\r\nNEXT");
        let ParsedRequest::Complete(h) = p else {
            panic!("{p:?}")
        };
        assert_eq!(h.len, "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nAccept: */*\r\n\r\n".len());
        assert!(h.keep_alive && !h.is_head);
        assert_eq!(h.body, 0);
        assert_eq!(
            out,
            "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.9\r\n\r\n"
        );
        let (p, out) = req(
            "POST /p HTTP/1.1\r\nContent-Length: 5\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: close\r\n\r\n",
        );
        let ParsedRequest::Complete(h) = p else {
            panic!("{p:?}")
        };
        assert_eq!((h.body, h.keep_alive), (5, false));
        assert_eq!(
            out,
            "POST /p HTTP/1.1\r\nContent-Length: 5\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.9\r\n\r\n"
        );
    }

    #[test]
    fn other_requests_go_to_the_general_path_and_partial_heads_wait() {
        for text in [
            "GET / HTTP/1.0\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "CONNECT x:443 HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -3\r\n\r\n",
            "GET / HTTP/1.1\r\nX-Forwarded-For: a\r\nX-Forwarded-For: b\r\n\r\n",
            "GET\0 / HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(req(text).0, ParsedRequest::General), "{text:?}");
        }
        assert!(matches!(
            req("GET / HTTP/1.1\r\nHost: x\r\n").0,
            ParsedRequest::Partial
        ));
    }

    fn resp(text: &str, is_head: bool, close: bool) -> (ResponseHead, String) {
        let mut out = Vec::new();
        let h = parse_response(text.as_bytes(), &mut out, is_head, close)
            .unwrap()
            .unwrap();
        (h, String::from_utf8(out).unwrap())
    }

    #[test]
    fn responses_are_framed_and_rewritten_for_the_client() {
        let (h, out) = resp(
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nKeep-Alive: timeout=4\r\n\r\nhello",
            false,
            false,
        );
        assert_eq!(h.framing, Framing::Length(12));
        assert!(h.reusable && !h.informational);
        assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n");
        let (h, out) = resp(
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            false,
            true,
        );
        assert_eq!(h.framing, Framing::Chunked);
        assert_eq!(
            out,
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let (h, out) = resp("HTTP/1.0 200 OK\r\nServer: old\r\n\r\n", false, false);
        assert_eq!(h.framing, Framing::UntilClose);
        assert!(!h.reusable);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nServer: old\r\nConnection: close\r\n\r\n"
        );
        let (h, _) = resp("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true, false);
        assert_eq!(h.framing, Framing::Empty);
        let (h, _) = resp("HTTP/1.1 304 Not Modified\r\n\r\n", false, false);
        assert_eq!(h.framing, Framing::Empty);
        assert!(h.reusable);
        let (h, _) = resp("HTTP/1.1 100 Continue\r\n\r\n", false, false);
        assert!(h.informational);
        let (h, _) = resp(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
            false,
            false,
        );
        assert!(!h.reusable);
        let mut out = Vec::new();
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                &mut out,
                false,
                false
            ),
            Err(BadResponse::Malformed(_))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nA: b\r\n", &mut out, false, false),
            Ok(None)
        ));
    }

    #[test]
    fn chunked_bodies_end_where_the_last_chunk_and_trailers_end() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        // Whole, and one byte at a time.
        assert_eq!(ChunkedEnd::default().feed(body), Ok(Some(end)));
        let mut s = ChunkedEnd::default();
        for (i, b) in body.iter().enumerate() {
            match s.feed(std::slice::from_ref(b)).unwrap() {
                Some(1) => {
                    assert_eq!(i + 1, end);
                    break;
                }
                Some(n) => panic!("ended after {n}"),
                None => assert!(i + 1 < end),
            }
        }
        assert_eq!(ChunkedEnd::default().feed(b"0\r\n\r\n"), Ok(Some(5)));
        assert_eq!(ChunkedEnd::default().feed(b"3\r\nab"), Ok(None));
        assert!(ChunkedEnd::default().feed(b"zz\r\n").is_err());
        assert!(ChunkedEnd::default().feed(b"3\r\nabcX").is_err());
        assert!(ChunkedEnd::default()
            .feed(b"fffffffffffffffff\r\n")
            .is_err());
    }

    /// The idle timer set once per connection gives each read its own
    /// limit: bytes every 6 s keep a 10 s limit from firing although the
    /// timer was first set 10 s from the start; 10 s of silence end it.
    #[tokio::test(start_paused = true)]
    async fn reads_time_out_after_their_own_idle_limit() {
        let limit = Duration::from_secs(10);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let idle = tokio::time::sleep(limit);
        tokio::pin!(idle);
        let mut buf = BytesMut::new();
        for gap in [6, 6, 6, 9] {
            let send = async {
                tokio::time::sleep(Duration::from_secs(gap)).await;
                client.write_all(b"x").await.unwrap();
            };
            let (read, ()) = tokio::join!(
                read_within(&mut server, &mut buf, idle.as_mut(), limit),
                send
            );
            assert_eq!(read.unwrap(), 1, "after a gap of {gap} s");
        }
        assert_eq!(&buf[..], b"xxxx");
        let started = tokio::time::Instant::now();
        let err = read_within(&mut server, &mut buf, idle.as_mut(), limit)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // Virtual time (the clock is paused): exactly the limit.
        assert_eq!(started.elapsed(), limit);
        // The client closing is a read of 0, not a timeout.
        drop(client);
        assert_eq!(
            read_within(&mut server, &mut buf, idle.as_mut(), limit)
                .await
                .unwrap(),
            0
        );
    }

    #[test]
    fn error_pages_have_their_length() {
        let mut out = Vec::new();
        error_page(&mut out, 502, "Bad Gateway", "nope", true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope\n"
        );
    }
}
