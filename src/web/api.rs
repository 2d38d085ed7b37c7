//! The JSON API of conversations: create, read, post a message (with its `if_busy`
//! policy), regenerate the last reply, edit a user message, interrupt; and the list of
//! configured providers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::authorize;
use super::body::JsonBody;
use super::origin::check_origin;
use super::session::{anonymous_owner, owner_of, start_anonymous};
use crate::conversation::{ConversationRef, CreateError, IfBusy, Snapshot};
use crate::web::error::AppError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    provider: Option<String>,
}

#[derive(Deserialize)]
pub struct PostBody {
    text: serde_json::Value,
    /// `"interrupt"` (the default), `"queue"` or `"reject"`.
    #[serde(default)]
    if_busy: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub struct EditBody {
    text: serde_json::Value,
}

/// The `if_busy` of a post: absent (or null) is `interrupt`; anything unknown is a 400.
fn if_busy(value: Option<serde_json::Value>) -> Result<IfBusy, AppError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(IfBusy::default()),
        Some(serde_json::Value::String(s)) => s.parse().map_err(|()| {
            AppError::BadRequest(format!(
                "unknown `if_busy` value `{s}`; use \"interrupt\", \"queue\" or \"reject\""
            ))
        }),
        Some(_) => Err(AppError::BadRequest("`if_busy` must be a string".into())),
    }
}

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A post's `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters (a UUID
/// is typical), else a 400.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key)
            if !key.is_empty()
                && key.len() <= MAX_IDEMPOTENCY_KEY
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(AppError::BadRequest(format!(
            "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        ))),
    }
}

pub async fn providers(State(state): State<AppState>) -> Response {
    let list: Vec<_> = state.providers.infos().collect();
    Json(list).into_response()
}

/// Creates a conversation for the caller's owner and answers with its id and token. A
/// caller with no owner credential gets a new anonymous owner and its session cookie
/// (never a cookie per conversation).
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<JsonBody<CreateBody>, AppError>,
) -> Result<Response, AppError> {
    let owner = owner_of(&state, &headers).await?;
    let JsonBody(body) = body?;
    let (owner, anonymous) = match owner {
        Some(o) => {
            if o.by_cookie {
                check_origin(&state, &headers)?;
            }
            (o.owner, false)
        }
        None => (anonymous_owner(), true),
    };
    owner_rate_limit(&state, &owner)?;
    let (conv, token) = create_conversation(&state, body.provider.as_deref(), &owner).await?;
    // The session is stored once there is something for it to own.
    let new_session = match anonymous {
        true => Some(start_anonymous(&state, &owner).await?),
        false => None,
    };
    let mut resp = (
        StatusCode::CREATED,
        Json(json!({"id": conv.id(), "token": token, "provider": conv.provider()})),
    )
        .into_response();
    if let Some(cookie) = new_session {
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(resp)
}

/// Conversations one owner may create per minute (`--owner-conversations-per-minute`).
fn owner_rate_limit(state: &AppState, owner: &str) -> Result<(), AppError> {
    super::limit::check(&state.limits.per_owner, &owner.into())
}

async fn create_conversation(
    state: &AppState,
    provider: Option<&str>,
    owner: &str,
) -> Result<(ConversationRef, String), AppError> {
    if state.shutdown.is_cancelled() {
        return Err(AppError::ShuttingDown);
    }
    state
        .conversations
        .create(provider, Some(owner))
        .await
        .map_err(|e| match e {
            CreateError::UnknownProvider(name) => {
                AppError::BadRequest(format!("unknown provider `{name}`; see GET /api/providers"))
            }
            CreateError::Full => AppError::Overloaded,
            CreateError::ShuttingDown => AppError::ShuttingDown,
            CreateError::Unavailable => AppError::Busy,
            CreateError::Storage(e) => e.into(),
        })
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Snapshot>, AppError> {
    let conv = authorize(&state, &id, &headers, false).await?;
    Ok(Json(conv.snapshot().await?))
}

/// Checks a message's text: a non-blank string no longer than the configured limit.
fn valid_text(state: &AppState, text: serde_json::Value) -> Result<String, AppError> {
    let serde_json::Value::String(text) = text else {
        return Err(AppError::InvalidText("`text` must be a string".into()));
    };
    if text.trim().is_empty() {
        return Err(AppError::InvalidText("`text` must not be empty".into()));
    }
    let max = state.config.limits.max_message_bytes;
    if text.len() > max {
        return Err(AppError::TooLarge(format!(
            "`text` is longer than {max} bytes"
        )));
    }
    Ok(text)
}

/// `POST …/messages` `{"text", "if_busy"?}`: 202 once the message is stored. With an
/// `Idempotency-Key` seen before in this conversation, 202 with the first answer again.
pub async fn post_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<JsonBody<PostBody>, AppError>,
) -> Result<Response, AppError> {
    // The credential is checked before the body is judged, so strangers learn nothing.
    let conv = authorize(&state, &id, &headers, true).await?;
    let JsonBody(body) = body?;
    let text = valid_text(&state, body.text)?;
    let if_busy = if_busy(body.if_busy)?;
    let key = idempotency_key(&headers)?;
    rate_limit(&state, &conv)?;
    let posted = conv.post(text, if_busy, key).await?;
    Ok((StatusCode::ACCEPTED, Json(posted)).into_response())
}

/// Every operation that starts a reply counts against the conversation's rate limit.
fn rate_limit(state: &AppState, conv: &ConversationRef) -> Result<(), AppError> {
    super::limit::check(&state.limits.per_conversation, &conv.shared_id())
}

/// `POST …/regenerate`: the last assistant reply is replaced by a new one (409 if there
/// is none yet).
pub async fn regenerate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let conv = authorize(&state, &id, &headers, true).await?;
    rate_limit(&state, &conv)?;
    let reply_id = conv.regenerate().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"reply_id": reply_id}))).into_response())
}

/// `PUT …/messages/{message_id}` `{"text"}`: edits a user message (404 unknown, 409 not a
/// user message); later messages are removed and a new reply starts.
pub async fn edit_message(
    State(state): State<AppState>,
    Path((id, message_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<JsonBody<EditBody>, AppError>,
) -> Result<Response, AppError> {
    let conv = authorize(&state, &id, &headers, true).await?;
    let JsonBody(body) = body?;
    let text = valid_text(&state, body.text)?;
    rate_limit(&state, &conv)?;
    let posted = conv.edit(message_id, text).await?;
    Ok((StatusCode::ACCEPTED, Json(posted)).into_response())
}

pub async fn interrupt(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let conv = authorize(&state, &id, &headers, true).await?;
    let reply_id = conv.interrupt().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"reply_id": reply_id}))).into_response())
}
