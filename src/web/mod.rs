//! The web layer: the router and the state every route shares.
//!
//! Routes never change a conversation themselves: they authorise the caller, then send
//! the conversation's actor a command through its handle (see `crate::conversation`).

mod api;
mod auth;
mod body;
mod pages;
mod sse;
mod webhooks;

pub use webhooks::spawn_pruner;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::conversation::Registry;
use crate::error::AppError;
use crate::providers::Providers;
use crate::storage::Store;

/// What every route can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub providers: Providers,
    pub store: Store,
    /// Cancelled when the server begins to shut down.
    pub shutdown: CancellationToken,
    /// Long-lived tasks (actors, WebSocket sessions) that shutdown waits for.
    pub tracker: TaskTracker,
}

/// All of chatwire's routes.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.limits.max_body_bytes;
    let webhook_limit = DefaultBodyLimit::max(state.config.limits.max_webhook_bytes);
    Router::new()
        .route("/", get(pages::start))
        .route("/c/{id}", get(pages::chat))
        .route("/static/app.js", get(pages::app_js))
        .route("/static/app.css", get(pages::app_css))
        .route("/healthz", get(healthz))
        .route("/api/providers", get(api::providers))
        .route("/api/conversations", post(api::create))
        .route("/api/conversations/{id}", get(api::get))
        .route("/api/conversations/{id}/messages", post(api::post_message))
        .route("/api/conversations/{id}/interrupt", post(api::interrupt))
        .route("/api/conversations/{id}/events", get(sse::events))
        .route(
            "/webhooks/openai",
            post(webhooks::openai).layer(webhook_limit),
        )
        .route("/webhooks/nlp", post(webhooks::nlp).layer(webhook_limit))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                 img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(AppError::Internal(
                "handler panicked".into(),
            ))
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<&'static str, AppError> {
    state.store.ping().await?;
    Ok("ok\n")
}

async fn not_found() -> AppError {
    AppError::NotFound
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
