//! Owners and the browser session: who the caller is, as an owner of conversations.
//!
//! An owner is named by a verified JWT (`Authorization: Bearer JWT`, see `jwt`) or by the
//! browser's one session cookie, `cw_session` (`__Host-cw_session` behind an https public
//! URL; HttpOnly, SameSite=Lax, Path=/, Secure there). The cookie's value is a random
//! token; storage keeps only its SHA-256 hash and the owner it names, until it expires. A
//! browser that creates a conversation without a session gets one, for a new anonymous
//! owner (`anon:…`); `POST /api/session` trades a JWT for one naming the JWT's owner (so a
//! page's EventSource and WebSocket, which send no headers, act as that user), expiring no
//! later than the JWT; `DELETE /api/session` ends it.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::jwt;
use super::origin::check_origin;
use crate::web::error::AppError;

/// The session cookie over plain http.
pub const COOKIE: &str = "cw_session";
/// The session cookie behind an https public URL (host-only, `Secure`, `Path=/`).
pub const HOST_COOKIE: &str = "__Host-cw_session";
/// How long an anonymous browser session lasts, in seconds.
const ANONYMOUS_SECS: i64 = 365 * 24 * 3600;

/// An owner, and whether a cookie said so (cookie-authenticated changes check `Origin`).
#[derive(Debug, Clone)]
pub struct OwnerCred {
    pub owner: String,
    pub by_cookie: bool,
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Authorization: Bearer` credential, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The caller's owner: a verified JWT's (a bad JWT is 401 `invalid_token`), else the
/// session cookie's; `None` without either (a conversation token names no owner).
pub async fn owner_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<OwnerCred>, AppError> {
    if let Some(token) = bearer(headers) {
        if !jwt::looks_like_jwt(token) {
            return Ok(None);
        }
        let v = jwt::verify(state.config.jwt.as_ref(), token)?;
        return Ok(Some(OwnerCred {
            owner: v.owner,
            by_cookie: false,
        }));
    }
    session_owner(state, headers).await
}

/// The owner the session cookie names, if it is a live session.
pub async fn session_owner(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<OwnerCred>, AppError> {
    let Some(value) = cookie(headers, HOST_COOKIE).or_else(|| cookie(headers, COOKIE)) else {
        return Ok(None);
    };
    let hash = crate::ids::token_hash(value);
    let owner = state
        .store
        .session_owner(&hash, crate::ids::now_ms())
        .await?;
    Ok(owner.map(|owner| OwnerCred {
        owner,
        by_cookie: true,
    }))
}

fn cookie_name(state: &AppState) -> &'static str {
    if state.config.https() {
        HOST_COOKIE
    } else {
        COOKIE
    }
}

fn header_value(state: &AppState, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.config.https() { "; Secure" } else { "" };
    let cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}",
        cookie_name(state)
    );
    // The value is URL-safe base64: always a valid header.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Stores a new session for `owner` until `expires_at` (ms) and returns its `Set-Cookie`.
pub async fn start(
    state: &AppState,
    owner: &str,
    expires_at: i64,
) -> Result<HeaderValue, AppError> {
    let now = crate::ids::now_ms();
    let token = crate::ids::token();
    state
        .store
        .create_session(&crate::ids::token_hash(&token), owner, now, expires_at)
        .await?;
    Ok(header_value(state, &token, (expires_at - now) / 1000))
}

/// A new anonymous owner's name (nothing stored yet).
pub fn anonymous_owner() -> String {
    crate::ids::prefixed("anon:", 18)
}

/// Starts the session of anonymous `owner` (a year); its `Set-Cookie`.
pub async fn start_anonymous(state: &AppState, owner: &str) -> Result<HeaderValue, AppError> {
    let expires = crate::ids::now_ms() + ANONYMOUS_SECS * 1000;
    start(state, owner, expires).await
}

/// `POST /api/session` with `Authorization: Bearer JWT`: 204 and the session cookie for
/// the JWT's owner, expiring when the JWT does (at the latest).
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let token = bearer(&headers).ok_or(AppError::Unauthorized)?;
    let v = jwt::verify(state.config.jwt.as_ref(), token)?;
    let exp_ms = i64::try_from(v.exp.saturating_mul(1000)).unwrap_or(i64::MAX);
    let expires = exp_ms.min(crate::ids::now_ms() + ANONYMOUS_SECS * 1000);
    let cookie = start(&state, &v.owner, expires).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// `DELETE /api/session`: forgets this browser's session (if any) and clears the cookie.
pub async fn end(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    check_origin(&state, &headers)?;
    if let Some(value) = cookie(&headers, HOST_COOKIE).or_else(|| cookie(&headers, COOKIE)) {
        state
            .store
            .delete_session(&crate::ids::token_hash(value))
            .await?;
    }
    let clear = header_value(&state, "", 0);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
}
