//! Reading request bodies: [`read_bytes`] (bounded in time: a body that stalls ends the
//! request with 408) and the JSON body extractor [`JsonBody`], whose every failure is one
//! of our JSON errors: a body that is not `application/json` (415), bad JSON or not an
//! object (400), a missing field, invalid UTF-8 and an oversize body (413).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use crate::web::error::AppError;

/// The whole body, within the size limit of the route and `--header-timeout-secs`.
pub async fn read_bytes(req: Request, state: &AppState, what: &str) -> Result<Bytes, AppError> {
    let timeout = state.config.network.header_timeout;
    match tokio::time::timeout(timeout, Bytes::from_request(req, state)).await {
        Err(_) => Err(AppError::BodyTimeout),
        Ok(Err(r)) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(AppError::TooLarge(format!("the {what} body is too large")))
        }
        Ok(Err(r)) => Err(AppError::BadRequest(r.body_text())),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// Whether `Content-Type` says JSON: `application/json` (parameters allowed) or a
/// `+json` type.
fn is_json(headers: &HeaderMap) -> Option<bool> {
    let value = headers.get(header::CONTENT_TYPE)?;
    let mime = value.to_str().ok().unwrap_or("");
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(essence == "application/json" || essence.ends_with("+json"))
}

/// `T` parsed from a JSON object in the request body. An empty body parses as `{}`
/// (and needs no `Content-Type`); any other body must be sent as `application/json` —
/// so a plain HTML form cannot post — and be an object: serde would read a struct from
/// an array (`["hi"]` as the message `hi`).
pub struct JsonBody<T>(pub T);

impl<T> FromRequest<AppState> for JsonBody<T>
where
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let json = is_json(req.headers());
        if json == Some(false) {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = read_bytes(req, state, "request").await?;
        let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
        let bytes: &[u8] = match start {
            None => b"{}",
            Some(_) if json.is_none() => return Err(AppError::UnsupportedMediaType),
            Some(i) if bytes[i] != b'{' => {
                return Err(AppError::BadRequest(
                    "the body must be a JSON object".into(),
                ));
            }
            Some(_) => &bytes,
        };
        if std::str::from_utf8(bytes).is_err() {
            return Err(AppError::BadRequest("the body is not valid UTF-8".into()));
        }
        serde_json::from_slice(bytes)
            .map(JsonBody)
            .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
    }
}
