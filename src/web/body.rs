//! A JSON body extractor whose every failure is one of our JSON errors: bad JSON, a
//! missing field, invalid UTF-8 and an oversize body each get their own status and code.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::web::error::AppError;

/// `T` parsed from the request body. An empty body parses as `{}`.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::TooLarge("the request body is too large".into())
            } else {
                AppError::BadRequest(r.body_text())
            }
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        if std::str::from_utf8(bytes).is_err() {
            return Err(AppError::BadRequest("the body is not valid UTF-8".into()));
        }
        serde_json::from_slice(bytes)
            .map(JsonBody)
            .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
    }
}
