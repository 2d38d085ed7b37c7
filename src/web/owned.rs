//! An owner's conversations: `GET /api/conversations` (the caller's own, most recently
//! updated first, a page at a time behind an opaque cursor), `PATCH
//! /api/conversations/{id}` (rename) and `DELETE /api/conversations/{id}` (gone from
//! storage, its streams end). Listing needs an owner credential (a session cookie or a
//! JWT); a rename or delete takes the conversation's own credential like every other
//! route (a conversation token reaches only its own conversation). Renames and deletes
//! are commands to the conversation's owner (its actor, wherever it runs).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::authorize;
use super::body::JsonBody;
use super::session::owner_of;
use crate::storage::{ListCursor, Summary};
use crate::web::error::AppError;

/// Longest title, in characters.
const MAX_TITLE_CHARS: usize = 200;
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;

/// API.md's SUMMARY.
#[derive(Serialize)]
pub struct SummaryView {
    id: String,
    title: Option<String>,
    provider: String,
    created_at: String,
    updated_at: String,
}

impl From<Summary> for SummaryView {
    fn from(s: Summary) -> Self {
        SummaryView {
            id: s.id,
            title: s.title,
            provider: s.provider,
            created_at: crate::ids::rfc3339(s.created_at),
            updated_at: crate::ids::rfc3339(s.updated_at),
        }
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameBody {
    title: serde_json::Value,
}

/// The cursor a page ends with: its last row's `(updated_at, id)`, opaque to clients.
fn encode_cursor(s: &Summary) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", s.updated_at, s.id))
}

fn decode_cursor(text: &str) -> Option<ListCursor> {
    let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (at, id) = raw.split_once(':')?;
    crate::ids::is_plausible_id(id).then_some(())?;
    Some(ListCursor {
        updated_at: at.parse().ok()?,
        id: id.to_string(),
    })
}

fn limit_of(text: Option<&str>) -> Result<u32, AppError> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    match text.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(AppError::BadRequest(format!(
            "`limit` must be a whole number from 1 to {MAX_LIMIT}"
        ))),
    }
}

/// `GET /api/conversations?limit=N&cursor=C`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let owner = owner_of(&state, &headers)
        .await?
        .ok_or(AppError::Unauthorized)?;
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let limit = limit_of(q.limit.as_deref())?;
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            AppError::BadRequest("`cursor` is not one this server gave out".into())
        })?),
    };
    // One more than asked: whether there is a next page, without a second query.
    let mut rows = state
        .store
        .list_conversations(&owner.owner, limit + 1, cursor.as_ref())
        .await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(encode_cursor)
    } else {
        None
    };
    let conversations: Vec<SummaryView> = rows.into_iter().map(Into::into).collect();
    Ok(Json(serde_json::json!({
        "conversations": conversations,
        "next_cursor": next,
    }))
    .into_response())
}

/// `PATCH /api/conversations/{id}` `{"title"}`: 200 SUMMARY.
pub async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<JsonBody<RenameBody>, AppError>,
) -> Result<Response, AppError> {
    let conv = authorize(&state, &id, &headers, true).await?;
    let JsonBody(body) = body?;
    let serde_json::Value::String(title) = body.title else {
        return Err(AppError::BadRequest("`title` must be a string".into()));
    };
    let title = title.trim();
    let chars = title.chars().count();
    if chars == 0 || chars > MAX_TITLE_CHARS {
        return Err(AppError::BadRequest(format!(
            "`title` must be 1 to {MAX_TITLE_CHARS} characters"
        )));
    }
    conv.rename(title.to_string()).await?;
    let summary = state
        .store
        .summary(conv.id())
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(SummaryView::from(summary)).into_response())
}

/// `DELETE /api/conversations/{id}`: 204; from then on 404 everywhere.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let conv = authorize(&state, &id, &headers, true).await?;
    conv.delete().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
