//! `GET /api/conversations/{id}/ws`: the WebSocket for typing, bot state and interrupts.
//!
//! The upgrade is checked like every conversation route (Bearer header or the cookie —
//! browsers cannot set headers on a WebSocket, so the cookie is how the page gets in), and
//! an `Origin` that is not the server's own or a configured one is refused with 403 (a
//! missing `Origin` means a non-browser client). The session joins the actor's presence
//! channel before the 101 is sent, then runs as a tracked task (`session.rs`) so shutdown
//! can close it cleanly. Limits here keep an idle socket at a few kilobytes.

mod close;
mod protocol;
mod session;
mod throttle;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::authorize;
use super::client::ClientAddr;
use super::origin::origin_allowed;
use crate::web::error::AppError;
use session::Session;

/// Largest frame or message the transport accepts. Above this the socket is closed with
/// 1009; between `protocol::MAX_CLIENT_FRAME` and this, the client gets an `error` frame.
const MAX_TRANSPORT_MESSAGE: usize = 8 * 1024;
/// Initial read buffer (the default is 128 KiB). It grows for a larger frame, up to the
/// transport limit, and an idle socket keeps just this much.
const READ_BUFFER: usize = 4 * 1024;
/// Frames are written as they are sent; this is only the batching threshold.
const WRITE_BUFFER: usize = 4 * 1024;
/// Unsent bytes a session may pile up when its peer stops reading; then it is dropped.
const MAX_WRITE_BUFFER: usize = 64 * 1024;

pub async fn upgrade(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    // Cross-site WebSocket hijacking: a browser on another site would carry our cookie.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| origin_allowed(&state, &headers, o));
        if !allowed {
            return Err(AppError::ForbiddenOrigin);
        }
    }
    let conv = authorize(&state, &id, &headers, false).await?;
    let ws = ws.map_err(|r| {
        AppError::BadRequest(format!("expected a WebSocket upgrade: {}", r.body_text()))
    })?;
    if state.shutdown.is_cancelled() {
        return Err(AppError::ShuttingDown);
    }
    // A socket is a subscriber like an SSE stream: it takes one of the conversation's
    // places (given back when the session ends), which bounds the typing fan-out too.
    let slot = conv
        .try_watch(state.config.limits.max_subscribers)
        .ok_or(AppError::TooManySubscribers)?;
    let place = state.stream_place(client.as_deref())?;
    // Joined before the 101, so a busy conversation is a 503 rather than a dead socket, and
    // nothing announced between now and the first frame is missed.
    let presence = conv.join().await?;
    let session = Session::new(conv, presence, state.shutdown.clone(), &state.config);
    // Counted from now: shutdown waits for the session, not only for its task to start.
    let tracked = state.tracker.token();
    let metrics = state.metrics.clone();
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_TRANSPORT_MESSAGE)
        .max_frame_size(MAX_TRANSPORT_MESSAGE)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            // Counted in `chatwire_websockets_open` while the session runs.
            let open = metrics.websocket_opened();
            session.run(socket).await;
            drop((slot, place, tracked, open));
        })
        .into_response())
}
