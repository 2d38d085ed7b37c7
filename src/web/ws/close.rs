//! How a session ends: the reasons ([`End`]), the close code for a failed read, bounded
//! writes, and the close handshake done properly — after our Close (or the echo of the
//! client's) we read until the stream ends, so the client sees a clean close and the TCP
//! connection is closed by the server, all within a few seconds at most.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use tokio::time::timeout;

/// Longest wait for one write to the client.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the client's half of the close handshake.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a session ends.
pub(super) enum End {
    /// The client sent Close: its echo is queued; read on until the stream ends.
    PeerClosed,
    /// We close: send Close with this code, then read until the client's Close.
    Close(u16, &'static str),
    /// The client stopped answering: send Close if it goes out quickly, then drop.
    Dead,
    /// The connection is already unusable.
    Gone,
}

/// One write, bounded in time.
pub(super) async fn send(socket: &mut WebSocket, msg: Message) -> bool {
    matches!(timeout(SEND_TIMEOUT, socket.send(msg)).await, Ok(Ok(())))
}

/// A read failed: close with the fitting code if the connection still works.
pub(super) fn read_error(e: axum::Error) -> End {
    use tungstenite::error::{Error as WsError, ProtocolError};
    let e = e.into_inner();
    match e.downcast_ref::<WsError>() {
        Some(WsError::Capacity(_)) => End::Close(close_code::SIZE, "message too big"),
        Some(WsError::Utf8(_)) => End::Close(close_code::INVALID, "invalid UTF-8"),
        Some(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => End::Gone,
        Some(WsError::Protocol(_)) => End::Close(close_code::PROTOCOL, "protocol error"),
        _ => {
            tracing::debug!(error = %e, "WebSocket read failed");
            End::Gone
        }
    }
}

/// Completes the close handshake, bounded: after our Close (or the echo of the client's),
/// read until the stream ends so the TCP connection is closed cleanly, by us.
pub(super) async fn finish(mut socket: WebSocket, end: End) {
    let (code, reason) = match end {
        End::Gone => return,
        End::PeerClosed => (None, ""),
        End::Close(code, reason) => (Some(code), reason),
        End::Dead => {
            // Nobody is listening: one short try, no handshake.
            let close = close_frame(close_code::AWAY, "no answer to pings");
            let _ = timeout(Duration::from_secs(1), socket.send(close)).await;
            return;
        }
    };
    if let Some(code) = code
        && !send(&mut socket, close_frame(code, reason)).await
    {
        return;
    }
    let _ = timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}
