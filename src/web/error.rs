//! [`AppError`], the one error type the web layer answers with: it maps each case to a
//! status and a JSON body `{"error": {"code", "message"}}` and never shows internals. The
//! errors of the layers below (storage, the conversation actor) are turned into it here.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything an HTTP route can answer with besides success.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidText(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("missing or wrong credential")]
    Unauthorized,
    /// A JWT that is malformed, wrongly signed, expired, or not for this server.
    #[error("the token is invalid or expired")]
    InvalidToken,
    /// A webhook that is unsigned, wrongly signed or stale.
    #[error("webhook refused: {0}")]
    InvalidSignature(String),
    #[error("this origin may not do that")]
    ForbiddenOrigin,
    /// A JSON route's body without `Content-Type: application/json`.
    #[error("expected `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// A request body that stopped arriving.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// A `Host` that is not this server's (DNS rebinding).
    #[error("this server does not serve that host")]
    MisdirectedRequest,
    /// One client address holds too many event streams and WebSockets.
    #[error("this address has too many open streams")]
    TooManyStreams,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("the conversation is busy; try again shortly")]
    Busy,
    /// The conversation's state does not allow the operation now (409); `code` says why.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("too many messages are queued; wait for a reply")]
    QueueFull,
    #[error("this conversation has too many open streams")]
    TooManySubscribers,
    #[error("the server has too many active conversations; try again shortly")]
    Overloaded,
    #[error("the server cannot serve right now")]
    Unavailable(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::InvalidText(_) => (StatusCode::BAD_REQUEST, "invalid_text"),
            AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            AppError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            AppError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            AppError::InvalidSignature(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
            AppError::ForbiddenOrigin => (StatusCode::FORBIDDEN, "forbidden_origin"),
            AppError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            AppError::MisdirectedRequest => {
                (StatusCode::MISDIRECTED_REQUEST, "misdirected_request")
            }
            AppError::TooManyStreams => (StatusCode::TOO_MANY_REQUESTS, "too_many_streams"),
            AppError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            AppError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            AppError::QueueFull => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            AppError::TooManySubscribers => (StatusCode::TOO_MANY_REQUESTS, "too_many_subscribers"),
            AppError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AppError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        match &self {
            // The detail goes to the log only; the client learns nothing of the internals.
            AppError::Internal(detail) => tracing::error!(%detail, "internal error"),
            AppError::Unavailable(detail) => tracing::warn!(%detail, "unavailable"),
            _ => {}
        }
        let body = Json(json!({"error": {"code": code, "message": self.to_string()}}));
        let mut resp = (status, body).into_response();
        let retry = match &self {
            AppError::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            AppError::Busy | AppError::ShuttingDown | AppError::QueueFull => Some(1),
            AppError::Unavailable(_) => Some(2),
            AppError::TooManySubscribers | AppError::TooManyStreams | AppError::Overloaded => {
                Some(5)
            }
            _ => None,
        };
        if let Some(secs) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Storage that cannot be reached (or refused a stale owner's write) is a 503 to retry;
/// anything else is an internal error.
impl From<crate::storage::StoreError> for AppError {
    fn from(e: crate::storage::StoreError) -> Self {
        use crate::storage::StoreError;
        match e {
            StoreError::Unavailable(_) | StoreError::Fenced { .. } => {
                AppError::Unavailable(e.to_string())
            }
            e => AppError::Internal(e.to_string()),
        }
    }
}

impl From<crate::conversation::ActorError> for AppError {
    fn from(e: crate::conversation::ActorError) -> Self {
        use crate::conversation::{ActorError, Refusal};
        let conflict = |code, r: Refusal| AppError::Conflict {
            code,
            message: r.to_string(),
        };
        match e {
            ActorError::Refused(r @ Refusal::Replying) => conflict("busy", r),
            ActorError::Refused(r @ Refusal::NoReply) => conflict("no_reply", r),
            ActorError::Refused(r @ Refusal::NotUserMessage) => conflict("not_user_message", r),
            ActorError::Refused(Refusal::QueueFull) => AppError::QueueFull,
            ActorError::Refused(Refusal::UnknownMessage) => AppError::NotFound,
            ActorError::Busy | ActorError::Unreachable => AppError::Busy,
            ActorError::Gone => AppError::ShuttingDown,
            ActorError::NotFound => AppError::NotFound,
            ActorError::Full => AppError::Overloaded,
            ActorError::Unavailable(s) => AppError::Unavailable(s),
            ActorError::Storage(s) => AppError::Internal(s),
        }
    }
}

/// JSON body errors from axum's extractor become our JSON errors.
impl From<axum::extract::rejection::JsonRejection> for AppError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as J;
        match &r {
            J::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::TooLarge("the request body is too large".into())
            }
            J::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
            _ => AppError::BadRequest(r.body_text()),
        }
    }
}
