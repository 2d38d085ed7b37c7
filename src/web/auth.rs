//! Who may use a conversation: the holder of its token (`Authorization: Bearer TOKEN`, or
//! a `cw_{id}` cookie set by earlier versions, still honoured but never set again), or its
//! owner (a verified JWT, or the browser's session cookie; see `session`).
//!
//! A missing credential is 401 (a bad JWT: 401 `invalid_token`); an unknown id, a wrong
//! token and another owner's conversation are all 404, so nothing tells an outsider
//! whether a conversation exists. The credential is checked before any history is loaded
//! or any actor started. Requests that change state with a cookie must come from an
//! allowed `Origin` (no cross-site posting, stopping, renaming or deleting).

use axum::http::HeaderMap;

use super::AppState;
use super::jwt;
use super::origin::check_origin;
use super::session::{bearer, cookie, session_owner};
use crate::conversation::{ActorError, Caller, ConversationRef};
use crate::web::error::AppError;

/// The caller's credential for conversation `id`, and whether a cookie carried it.
async fn caller(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
) -> Result<(Caller, bool), AppError> {
    if let Some(token) = bearer(headers) {
        if jwt::looks_like_jwt(token) {
            let v = jwt::verify(state.config.jwt.as_ref(), token)?;
            return Ok((Caller::Owner(v.owner), false));
        }
        return Ok((Caller::Token(token.to_string()), false));
    }
    if let Some(token) = cookie(headers, &format!("cw_{id}")) {
        return Ok((Caller::Token(token.to_string()), true));
    }
    match session_owner(state, headers).await? {
        Some(o) => Ok((Caller::Owner(o.owner), true)),
        None => Err(AppError::Unauthorized),
    }
}

/// Checks the caller's credential for conversation `id` and returns the conversation.
/// `changes_state` turns on the `Origin` check for cookie-authenticated requests.
pub async fn authorize(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    changes_state: bool,
) -> Result<ConversationRef, AppError> {
    let (caller, by_cookie) = caller(state, id, headers).await?;
    if !crate::ids::is_plausible_id(id) {
        return Err(AppError::NotFound);
    }
    let conv = match state.conversations.open(id, &caller).await {
        Ok(conv) => conv,
        Err(ActorError::NotFound) => return Err(AppError::NotFound),
        Err(e) => return Err(e.into()),
    };
    if by_cookie && changes_state {
        check_origin(state, headers)?;
    }
    Ok(conv)
}
