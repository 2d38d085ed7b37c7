//! The chat page: `GET /` starts a conversation and moves to `/c/{id}`, which renders the
//! history on the server; the page's script and style are compiled into the binary.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AppState;
use super::api::{create_conversation, set_cookie_header};
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
}

#[derive(Template, WebTemplate)]
#[template(path = "chat.html")]
pub struct ChatPage {
    pub conversation_id: String,
    pub provider: ProviderView,
    pub providers: Vec<ProviderView>,
    pub messages: Vec<MessageView>,
    pub last_event_id: u64,
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

/// Starts a conversation (with `?provider=NAME` or the default) and moves to its page.
pub async fn start(
    State(state): State<AppState>,
    Query(q): Query<StartQuery>,
) -> Result<Response, AppError> {
    let (conv, token) = create_conversation(&state, q.provider.as_deref()).await?;
    let mut resp = Redirect::to(&format!("/c/{}", conv.id())).into_response();
    set_cookie_header(&mut resp, conv.id(), &token);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
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
        messages: snap
            .messages
            .into_iter()
            .map(|m| MessageView {
                id: m.id,
                role: m.role.as_str(),
                text: m.text,
                status: m.status.as_str(),
            })
            .collect(),
        last_event_id: snap.last_event_id,
    };
    let mut resp = page.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn app_js() -> Response {
    asset(
        include_str!("../../static/app.js"),
        "text/javascript; charset=utf-8",
    )
}

pub async fn app_css() -> Response {
    asset(
        include_str!("../../static/app.css"),
        "text/css; charset=utf-8",
    )
}
