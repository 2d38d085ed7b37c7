//! Which `Origin` may make cookie-authenticated requests that change state (and open
//! WebSockets): this server's own, by the `Host` it was reached at, or a configured one.
//! Browsers send `Origin` on every cross-site POST, PATCH, DELETE and WebSocket; a request
//! without one comes from no browser, so it is no cross-site forgery.

use axum::http::{HeaderMap, header};

use super::AppState;
use crate::web::error::AppError;

/// Is `origin` this server's own (by the `Host` it was reached at) or a configured one?
pub fn origin_allowed(state: &AppState, headers: &HeaderMap, origin: &str) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let own = !host.is_empty()
        && (origin == format!("http://{host}") || origin == format!("https://{host}"));
    own || state
        .config
        .allowed_origins
        .iter()
        .any(|o| o.trim_end_matches('/') == origin)
}

/// 403 when the request carries an `Origin` that may not change state here.
pub fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => Ok(()),
        Some(Ok(origin)) if origin_allowed(state, headers, origin) => Ok(()),
        Some(_) => Err(AppError::ForbiddenOrigin),
    }
}
