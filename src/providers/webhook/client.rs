//! Sending signed messages: every request chatwire makes to an NLP service of the
//! callback protocol (and every callback the simulated service makes to chatwire) is a
//! JSON POST with Standard Webhooks headers, so the receiver can trust it.

use std::time::Duration;

use crate::signature::{Secret, now_secs};

/// How long one signed request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A `Retry-After` longer than this is not waited for: the POST fails instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why a signed POST failed; `retryable` when another try may succeed (no answer, 5xx, 429).
#[derive(Debug, Clone)]
pub struct PostError {
    pub message: String,
    pub retryable: bool,
    /// The answer's `Retry-After`, if it had one.
    pub retry_after: Option<Duration>,
}

/// An HTTP client for signed requests: bounded connect and request times.
pub fn http_client() -> Result<reqwest::Client, String> {
    // No redirects: a 307 would re-post the signed job and the history elsewhere.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// POSTs `body` (JSON) to `url`, signed with `secret`; returns the answer's body.
pub async fn post_signed(
    http: &reqwest::Client,
    secret: &Secret,
    url: &str,
    body: Vec<u8>,
) -> Result<bytes::Bytes, PostError> {
    post_signed_as(http, secret, url, &crate::ids::prefixed("msg_", 16), body).await
}

/// [`post_signed`] with a given `webhook-id` (a retry re-sends the same id, so the
/// receiver can tell it is the same message).
async fn post_signed_as(
    http: &reqwest::Client,
    secret: &Secret,
    url: &str,
    id: &str,
    body: Vec<u8>,
) -> Result<bytes::Bytes, PostError> {
    let mut req = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in secret.headers(id, now_secs(), &body) {
        req = req.header(name, value);
    }
    // Shown without user-info or query string, and never with the answer's body: both go
    // to `reply.failed` and the log.
    let shown = crate::providers::redact::shown_url(url);
    let resp = req.body(body).send().await.map_err(|e| PostError {
        message: format!("cannot reach {shown}: {}", without_url(&e)),
        retryable: true,
        retry_after: None,
    })?;
    let status = resp.status();
    if status.is_success() {
        // The answer's body is a courtesy; a cut-off one does not undo the delivery.
        return Ok(resp.bytes().await.unwrap_or_default());
    }
    let retry_after = crate::providers::retry_after::retry_after(resp.headers());
    Err(PostError {
        message: format!("{shown} answered {status}"),
        retryable: status.is_server_error() || status.as_u16() == 429,
        retry_after,
    })
}

/// POSTs with up to `retries` more tries for retryable failures, `backoff` apart (doubling),
/// and never sooner than a `Retry-After` asks; one longer than [`MAX_RETRY_AFTER`] ends
/// the tries.
pub async fn post_signed_retrying(
    http: &reqwest::Client,
    secret: &Secret,
    url: &str,
    body: Vec<u8>,
    retries: u32,
    backoff: Duration,
) -> Result<bytes::Bytes, PostError> {
    // One message, however many tries: Standard Webhooks keeps the id across re-sends.
    let id = crate::ids::prefixed("msg_", 16);
    let mut attempt = 0;
    loop {
        match post_signed_as(http, secret, url, &id, body.clone()).await {
            Err(e)
                if e.retryable
                    && attempt < retries
                    && e.retry_after.is_none_or(|d| d <= MAX_RETRY_AFTER) =>
            {
                let pause = backoff * 2u32.pow(attempt.min(8));
                tokio::time::sleep(pause.max(e.retry_after.unwrap_or_default())).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A reqwest error's text without the URL it repeats.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
