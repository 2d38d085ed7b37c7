//! The web layer: the router and the state every route shares.
//!
//! Routes never change a conversation themselves: they authorise the caller, then send
//! the conversation a command through the `ConversationRef` that `Conversations` gives
//! them (see `crate::conversation`), whoever owns it.
//!
//! Around every route, outermost first: request tracing (method and path only — never
//! headers, cookies or query strings, which may carry credentials; outermost, so 429s and
//! shutdown 503s are traced too), the security headers, the `Host` check (421, see
//! `hosts`), the shutdown gate (503 `shutting_down` once shutdown begins), the client
//! address (`client`: the peer, or what a trusted proxy says), the per-address rate limit,
//! the body size limit and, for every route but the event stream, panic catching.
//!
//! Below the router, [`serve`] is the accept loop: header timeout, connection caps.

mod api;
mod auth;
mod body;
mod caps;
mod client;
pub(crate) mod error;
mod hosts;
mod jwt;
mod limit;
mod metrics;
mod origin;
mod owned;
mod pages;
mod serve;
mod session;
mod sse;
mod webhooks;
mod ws;

pub use serve::serve;
pub use webhooks::spawn_pruner;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

use crate::config::Config;
use crate::conversation::Conversations;
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::storage::Store;
use error::AppError;

/// What every route can reach.
#[derive(Clone)]
pub struct AppState {
    pub(crate) config: Arc<Config>,
    /// Where routes find, create and open conversations.
    pub conversations: Conversations,
    pub providers: Providers,
    pub store: Store,
    /// Cancelled when the server begins to shut down.
    pub shutdown: CancellationToken,
    /// Long-lived tasks (actors, WebSocket sessions) that shutdown waits for.
    pub(crate) tracker: TaskTracker,
    pub(crate) limits: Arc<Limiters>,
    /// Counters and gauges served at `/metrics`.
    pub(crate) metrics: Arc<Metrics>,
}

/// The rate limiters every route shares.
#[derive(Debug)]
pub(crate) struct Limiters {
    /// Requests per client address.
    pub per_client: limit::RateLimiter<IpAddr>,
    /// Messages per conversation.
    pub per_conversation: limit::RateLimiter<Arc<str>>,
    /// Open event streams and WebSockets per client address, over all conversations.
    pub streams: caps::Caps,
    /// Conversations created per owner.
    pub per_owner: limit::RateLimiter<Arc<str>>,
}

impl Limiters {
    pub fn new(config: &Config) -> Self {
        let limits = &config.limits;
        Limiters {
            streams: caps::Caps::new(config.network.max_streams_per_address, 0),
            per_client: limit::RateLimiter::new(limits.requests_per_minute, limits.rate_limit_keys),
            per_conversation: limit::RateLimiter::new(
                limits.messages_per_minute,
                limits.rate_limit_keys,
            ),
            per_owner: limit::RateLimiter::new(
                limits.owner_conversations_per_minute,
                limits.rate_limit_keys,
            ),
        }
    }
}

impl AppState {
    /// A place among the open streams (SSE and WebSocket) of the request's client, so one
    /// client cannot hold every conversation in memory with streams and lock others out.
    /// Kept for as long as the stream lives. (Hook: once conversations have owners, a
    /// per-owner bound goes here beside the per-address one.)
    pub(crate) fn stream_place(
        &self,
        client: Option<&client::ClientAddr>,
    ) -> Result<Option<caps::Place>, AppError> {
        match client {
            Some(c) => self
                .limits
                .streams
                .take(Some(limit::client_key(c.0)))
                .map(Some)
                .map_err(|_| AppError::TooManyStreams),
            None => Ok(None),
        }
    }
}

/// All of chatwire's routes.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.limits.max_body_bytes;
    let webhook_limit = DefaultBodyLimit::max(state.config.limits.max_webhook_bytes);
    // Every route but the event stream has its panics turned into a 500. That layer wraps
    // the response body, and an event stream's body is polled for every frame: there it
    // would cost per token. The stream's handler catches its own panics (see
    // `sse::events`). Tracing (`trace`) wraps no body, so it covers every route.
    let traced = Router::new()
        .route("/", get(pages::start))
        .route("/c/{id}", get(pages::chat))
        .route("/static/{*path}", get(pages::asset))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/providers", get(api::providers))
        .route("/api/session", post(session::create).delete(session::end))
        .route("/api/conversations", post(api::create).get(owned::list))
        .route(
            "/api/conversations/{id}",
            get(api::get).patch(owned::rename).delete(owned::delete),
        )
        .route("/api/conversations/{id}/messages", post(api::post_message))
        .route("/api/conversations/{id}/interrupt", post(api::interrupt))
        .route("/api/conversations/{id}/regenerate", post(api::regenerate))
        .route(
            "/api/conversations/{id}/messages/{message_id}",
            put(api::edit_message),
        )
        .route(
            "/webhooks/openai",
            post(webhooks::openai).layer(webhook_limit),
        )
        .route("/webhooks/nlp", post(webhooks::nlp).layer(webhook_limit))
        .route("/api/conversations/{id}/ws", get(ws::upgrade))
        .layer(CatchPanicLayer::custom(|_| {
            AppError::Internal("handler panicked".into()).into_response()
        }));
    Router::new()
        .route("/api/conversations/{id}/events", get(sse::events))
        .merge(traced)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limit::per_client,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            client::resolve,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), shutdown_gate))
        .layer(middleware::from_fn_with_state(state.clone(), hosts::check))
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
        .layer(middleware::from_fn(trace))
        .with_state(state)
}

/// Traces a request in its span (see [`request_span`]) and logs its status and latency
/// once the response head is ready. The body is not wrapped: an event stream's frames
/// pass untouched.
async fn trace(req: Request, next: Next) -> Response {
    let span = request_span(&req);
    let started = std::time::Instant::now();
    async move {
        let resp = next.run(req).await;
        tracing::debug!(
            status = resp.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "response"
        );
        resp
    }
    .instrument(span)
    .await
}

/// The span of one request: method and path. Not the query string, not the headers:
/// those can carry tokens and cookies, which never go to the log.
fn request_span(req: &Request) -> tracing::Span {
    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
}

/// Once shutdown has begun, new requests get 503 `shutting_down` (with `Retry-After`).
async fn shutdown_gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.shutdown.is_cancelled() {
        return AppError::ShuttingDown.into_response();
    }
    next.run(req).await
}

/// 200 while serving; 503 when storage does not answer or the server is shutting down.
async fn healthz(State(state): State<AppState>) -> Result<&'static str, AppError> {
    if state.shutdown.is_cancelled() {
        return Err(AppError::ShuttingDown);
    }
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping());
    let ping = match ping.await {
        Ok(Ok(())) => Ok("ok\n"),
        Ok(Err(e)) => Err(AppError::Unavailable(format!("storage: {e}"))),
        Err(_) => Err(AppError::Unavailable(
            "storage: no answer within 2 s".into(),
        )),
    }?;
    if let Some(cluster) = state.conversations.cluster_side() {
        let redis = tokio::time::timeout(std::time::Duration::from_secs(2), cluster.redis.ping());
        if !matches!(redis.await, Ok(Ok(()))) {
            return Err(AppError::Unavailable("redis: unreachable".into()));
        }
    }
    Ok(ping)
}

async fn not_found() -> AppError {
    AppError::NotFound
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
