//! `GET /containers/{id}/attach/ws`: an attach over a WebSocket (RFC 6455),
//! as docker-py's `attach_socket(ws=True)` and browser consoles use it.
//!
//! As in dockerd, the container's output goes unframed (stdout and stderr
//! together, no 8-byte stream headers), one message per chunk: binary
//! messages from API 1.28 on, text before. Messages from the client go to
//! the container's stdin; its close frame closes stdin. The session ends
//! with a close frame when the output ends (the container stopped).
//! Detach keys are checked but not matched here: a WebSocket client
//! detaches by closing.
//! The framing is tungstenite's; the handshake answer is made here because
//! the connection is hyper's upgrade of an API request.

use futures::{SinkExt, StreamExt};
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, UPGRADE};
use hyper::{HeaderMap, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use crate::backend::AttachSession;
use crate::error::ApiError;

/// The client's `Sec-WebSocket-Key`, or a 400 saying what a WebSocket
/// attach needs.
pub(crate) fn handshake_key(h: &HeaderMap) -> Result<HeaderValue, ApiError> {
    let upgrade = h
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    match h.get("sec-websocket-key") {
        Some(key) if upgrade => Ok(key.clone()),
        _ => Err(ApiError::bad_parameter(
            "attach/ws is a WebSocket endpoint: send a WebSocket handshake (Upgrade: websocket, Sec-WebSocket-Key), or use POST /containers/{id}/attach",
        )),
    }
}

/// The `101 Switching Protocols` answer to the handshake with `key`, and a
/// task that relays `session` over the upgraded connection.
pub(crate) fn attach<B: Default>(
    session: AttachSession,
    on_upgrade: hyper::upgrade::OnUpgrade,
    key: &HeaderValue,
    binary: bool,
) -> Response<B> {
    let accept = derive_accept_key(key.as_bytes());
    let span = tracing::Span::current();
    tokio::spawn(
        async move {
            match on_upgrade.await {
                Ok(up) => {
                    let ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None)
                        .await;
                    relay(ws, session, binary).await;
                }
                Err(e) => tracing::warn!(error = %e, "websocket upgrade failed"),
            }
        }
        .instrument(span),
    );
    let mut r = Response::new(B::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Output to messages, messages to stdin, until the output ends or the
/// client goes.
async fn relay<S>(ws: WebSocketStream<S>, session: AttachSession, binary: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let AttachSession {
        stdin, mut output, ..
    } = session;
    let (mut tx, mut rx) = ws.split();
    let mut stdin = stdin;
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(c)) => {
                    let msg = if binary {
                        Message::Binary(c.data)
                    } else {
                        Message::Text(String::from_utf8_lossy(&c.data).into_owned().into())
                    };
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e.message, "attach output failed");
                    break;
                }
                None => break,
            },
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) => write_stdin(&mut stdin, &b).await,
                Some(Ok(Message::Text(t))) => write_stdin(&mut stdin, t.as_bytes()).await,
                // Pings are answered by tungstenite on the next send or flush.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                    let _ = tx.flush().await;
                }
                // A client that closed no longer reads either: the
                // session ends (its stdin closed), as in dockerd.
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                    break;
                }
            },
        }
    }
    let _ = tx.send(Message::Close(None)).await;
    let _ = tx.close().await;
}

async fn write_stdin(stdin: &mut Option<crate::backend::StdinWriter>, data: &[u8]) {
    if let Some(w) = stdin {
        if w.write_all(data).await.is_err() || w.flush().await.is_err() {
            *stdin = None;
        }
    }
}
