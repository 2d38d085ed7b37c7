//! Who may use a conversation: the holder of its token, as `Authorization: Bearer TOKEN`
//! or as the `cw_{id}` cookie set when the conversation was created.
//!
//! A missing credential is 401; an unknown id and a wrong token are both 404, so nothing
//! tells an outsider whether a conversation exists. Requests that change state with the
//! cookie must come from an allowed `Origin` (no cross-site posting or stopping).

use axum::http::{HeaderMap, header};

use super::AppState;
use crate::conversation::{ActorError, ConversationRef};
use crate::web::error::AppError;

/// The cookie that carries a conversation's token in the browser.
pub fn cookie_name(id: &str) -> String {
    format!("cw_{id}")
}

/// `Set-Cookie` value for a new conversation (HttpOnly, SameSite=Lax, a year).
pub fn set_cookie(id: &str, token: &str) -> String {
    format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000",
        cookie_name(id)
    )
}

enum Credential {
    Bearer(String),
    Cookie(String),
}

fn credential(id: &str, headers: &HeaderMap) -> Option<Credential> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(Credential::Bearer(t.trim().to_string()));
    }
    let name = cookie_name(id);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| Credential::Cookie(v.to_string()))
}

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

/// Checks the caller's credential for conversation `id` and returns the conversation.
/// `changes_state` turns on the `Origin` check for cookie-authenticated requests.
pub async fn authorize(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    changes_state: bool,
) -> Result<ConversationRef, AppError> {
    let cred = credential(id, headers).ok_or(AppError::Unauthorized)?;
    if !crate::ids::is_plausible_id(id) {
        return Err(AppError::NotFound);
    }
    let (token, by_cookie) = match &cred {
        Credential::Bearer(t) => (t, false),
        Credential::Cookie(t) => (t, true),
    };
    // The token is checked (in constant time) before any actor is started.
    let conv = match state.conversations.open(id, token).await {
        Ok(h) => h,
        Err(ActorError::NotFound) => return Err(AppError::NotFound),
        Err(e) => return Err(e.into()),
    };
    if by_cookie && changes_state {
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        // Browsers send Origin on every cross-site POST; its absence means no browser.
        if let Some(origin) = origin
            && !origin_allowed(state, headers, origin)
        {
            return Err(AppError::ForbiddenOrigin);
        }
    }
    Ok(conv)
}
