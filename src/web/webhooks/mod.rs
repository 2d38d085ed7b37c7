//! Receiving NLP provider webhooks: `POST /webhooks/openai` (OpenAI's events about
//! background responses) and `POST /webhooks/nlp` (chatwire's callback protocol).
//!
//! Each request is, in order: refused (401) before its body is read if any of the three
//! signature headers is missing; size- and time-limited (`Limits::max_webhook_bytes`,
//! `--header-timeout-secs`); verified over
//! its raw body with the Standard Webhooks headers against the secrets of the providers
//! using that route (the matching secret tells which provider sent it); parsed into a
//! typed callback (event types we do not act on are answered 2xx and dropped); deduped by
//! `webhook-id` in storage; and handed to the actor of the conversation that owns the job,
//! which decides — alone — whether it still matters (in cluster mode the conversation
//! forwards it to the owning node, so any node can receive any webhook). Nothing here touches a conversation.
//! A refused request (unsigned, wrongly signed, stale, malformed) is 4xx and changes nothing.

mod prune;

pub use prune::spawn_pruner;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::body::read_bytes;
use crate::conversation::ActorError;
use crate::providers::callback::parse;
use crate::providers::{CallbackAck, CallbackRoute, Route, RouteError};
use crate::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Signed, now_secs};
use crate::web::error::AppError;

pub async fn openai(State(state): State<AppState>, req: Request) -> Result<Response, AppError> {
    receive(&state, CallbackRoute::OpenAi, req).await
}

pub async fn nlp(State(state): State<AppState>, req: Request) -> Result<Response, AppError> {
    receive(&state, CallbackRoute::Nlp, req).await
}

fn answer(status: &'static str) -> Response {
    (StatusCode::OK, Json(json!({ "status": status }))).into_response()
}

async fn receive(
    state: &AppState,
    route: CallbackRoute,
    req: Request,
) -> Result<Response, AppError> {
    let endpoints = state.providers.endpoints(route);
    if endpoints.is_empty() {
        // No configured provider sends callbacks here.
        return Err(AppError::NotFound);
    }
    // Unsigned: refused before a byte of the (up to 1 MiB) body is read.
    let headers = req.headers().clone();
    if [HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE]
        .iter()
        .any(|h| !headers.contains_key(*h))
    {
        state.metrics.webhook_verification_failed();
        return Err(AppError::InvalidSignature(
            "missing webhook signature headers".into(),
        ));
    }
    let body = read_bytes(req, state, "webhook").await?;
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = Signed {
        id: text(HEADER_ID),
        timestamp: text(HEADER_TIMESTAMP),
        signature: text(HEADER_SIGNATURE),
    };
    let secrets: Vec<_> = endpoints.iter().map(|(_, s)| s).collect();
    let index = signed.verify(&body, &secrets, now_secs()).map_err(|e| {
        state.metrics.webhook_verification_failed();
        AppError::InvalidSignature(e.to_string())
    })?;
    // Every entry with that secret may own the job (e.g. two background models of one
    // OpenAI project share its webhook secret).
    let matched = &endpoints[index].1;
    let providers: Vec<String> = endpoints
        .iter()
        .filter(|(_, s)| s == matched)
        .map(|(name, _)| name.clone())
        .collect();
    let webhook_id = signed.id.unwrap_or_default();

    let callback = match parse(route, &body) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(answer("ignored")),
        Err(e) => return Err(AppError::BadRequest(e.0)),
    };
    // Dedupe per sender (the entries sharing the secret that signed it): two NLP
    // services may use the same `webhook-id` strings without colliding.
    let sender = providers.first().map(String::as_str).unwrap_or_default();
    let source = format!("{}:{sender}", route.source());
    let source = source.as_str();
    if !state
        .store
        .record_webhook(source, webhook_id, crate::ids::now_ms())
        .await?
    {
        return Ok(answer("duplicate"));
    }
    match dispatch(state, &providers, route, callback).await {
        Ok(status) => Ok(answer(status)),
        Err(e) => {
            // Not applied: forget the delivery so that the sender's retry is.
            if let Err(f) = state.store.forget_webhook(source, webhook_id).await {
                tracing::warn!(error = %f, "cannot forget a webhook delivery");
            }
            Err(e)
        }
    }
}

/// Hands a callback to the reply that owns its job. Returns what became of it.
async fn dispatch(
    state: &AppState,
    providers: &[String],
    route: CallbackRoute,
    callback: crate::providers::Callback,
) -> Result<&'static str, AppError> {
    // OpenAI names its response only in the create's answer, which a webhook can overtake.
    let park_unknown = route == CallbackRoute::OpenAi;
    let (owner, callbacks) = match state
        .providers
        .jobs()
        .route(providers, callback, park_unknown)
        .await
        .map_err(|e| match e {
            RouteError::Storage(e) => AppError::from(e),
            RouteError::Parking(_) => AppError::Unavailable("redis: unavailable".into()),
        })? {
        Route::To(owner, callbacks) => (owner, callbacks),
        Route::Parked => return Ok("parked"),
        Route::Unknown => return Ok("ignored"),
    };
    let conv = match state.conversations.get(&owner.conversation_id).await {
        Ok(c) => c,
        Err(ActorError::NotFound) => return Ok("ignored"),
        Err(e) => return Err(e.into()),
    };
    let mut status = "ignored";
    for callback in callbacks {
        match conv.callback(owner.reply_id.clone(), callback).await? {
            CallbackAck::Accepted => status = "accepted",
            CallbackAck::Late => {}
            CallbackAck::Busy => return Err(AppError::Busy),
        }
    }
    Ok(status)
}
