//! The chat page: `GET /` opens an empty new chat and stores nothing (the page creates
//! the conversation with its first message and moves to `/c/{id}`); `/c/{id}` renders the
//! history on the server for its owner (plain text, one message markup in `templates/message.html`); the
//! page's scripts, style and vendored libraries are compiled into the binary.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::authorize;
use crate::providers::ProviderInfo;
use crate::web::error::AppError;

pub struct ProviderView {
    pub name: String,
    pub kind: String,
    pub label: String,
    pub is_default: bool,
}

pub struct MessageView {
    pub id: String,
    pub role: &'static str,
    pub text: String,
    pub status: &'static str,
    /// "stopped", "failed: REASON" or empty: the same words the script writes.
    pub note: String,
}

impl MessageView {
    fn of(m: crate::chat::Message) -> Self {
        let status = m.status.as_str();
        let note = match (status, m.error) {
            ("interrupted", _) => "stopped".to_string(),
            ("failed", Some(e)) => format!("failed: {e}"),
            ("failed", None) => "failed".to_string(),
            _ => String::new(),
        };
        MessageView {
            id: m.id,
            role: m.role.as_str(),
            text: m.text,
            status,
            note,
        }
    }

    /// The empty message the page's `<template>` holds.
    fn blank() -> Self {
        MessageView {
            id: String::new(),
            role: "assistant",
            text: String::new(),
            status: "complete",
            note: String::new(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "chat.html")]
pub struct ChatPage {
    pub conversation_id: String,
    pub provider: ProviderView,
    pub providers: Vec<ProviderView>,
    pub messages: Vec<MessageView>,
    pub last_event_id: u64,
    pub blank: MessageView,
}

#[derive(Template, WebTemplate)]
#[template(path = "not_found.html")]
pub struct NotFoundPage;

impl From<&ProviderInfo> for ProviderView {
    fn from(p: &ProviderInfo) -> Self {
        ProviderView {
            name: p.name.clone(),
            kind: p.kind.clone(),
            label: p.label.clone(),
            is_default: p.default,
        }
    }
}

#[derive(Deserialize)]
pub struct StartQuery {
    provider: Option<String>,
}

/// An empty new chat (with `?provider=NAME` picked, or the default). Nothing is stored:
/// the page creates the conversation when its first message is sent.
pub async fn start(
    State(state): State<AppState>,
    Query(q): Query<StartQuery>,
) -> Result<Response, AppError> {
    let provider = match q.provider.as_deref() {
        Some(name) => state.providers.get(name).ok_or_else(|| {
            AppError::BadRequest(format!("unknown provider `{name}`; see GET /api/providers"))
        })?,
        None => state.providers.default_provider(),
    };
    let page = ChatPage {
        conversation_id: String::new(),
        provider: provider.info().into(),
        providers: state.providers.infos().map(ProviderView::from).collect(),
        messages: Vec::new(),
        last_event_id: 0,
        blank: MessageView::blank(),
    };
    Ok(no_store(page.into_response()))
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Renders a conversation's history; the page then resumes the live stream from
/// exactly the event this rendering corresponds to.
pub async fn chat(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let conv = match authorize(&state, &id, &headers, false).await {
        Ok(c) => c,
        Err(AppError::Unauthorized | AppError::NotFound) => {
            return (StatusCode::NOT_FOUND, NotFoundPage).into_response();
        }
        Err(e) => return e.into_response(),
    };
    let snap = match conv.snapshot().await {
        Ok(s) => s,
        Err(e) => return AppError::from(e).into_response(),
    };
    let provider = state
        .providers
        .get(&snap.provider)
        .unwrap_or_else(|| state.providers.default_provider());
    let page = ChatPage {
        conversation_id: snap.id,
        provider: provider.info().into(),
        providers: state.providers.infos().map(ProviderView::from).collect(),
        messages: snap.messages.into_iter().map(MessageView::of).collect(),
        last_event_id: snap.last_event_id,
        blank: MessageView::blank(),
    };
    no_store(page.into_response())
}

/// The page's static files, compiled in: `(path under /static/, content type, body)`.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", CSS, include_str!("../../static/app.css")),
    (
        "markdown.css",
        CSS,
        include_str!("../../static/markdown.css"),
    ),
    ("panel.css", CSS, include_str!("../../static/panel.css")),
    ("app.js", JS, include_str!("../../static/app.js")),
    ("markdown.js", JS, include_str!("../../static/markdown.js")),
    ("messages.js", JS, include_str!("../../static/messages.js")),
    ("feed.js", JS, include_str!("../../static/feed.js")),
    ("socket.js", JS, include_str!("../../static/socket.js")),
    ("panel.js", JS, include_str!("../../static/panel.js")),
    (
        "vendor/marked.umd.js",
        JS,
        include_str!("../../static/vendor/marked.umd.js"),
    ),
    (
        "vendor/purify.min.js",
        JS,
        include_str!("../../static/vendor/purify.min.js"),
    ),
];
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `GET /static/{*path}`: one of [`ASSETS`], else 404.
pub async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => AppError::NotFound.into_response(),
    }
}
