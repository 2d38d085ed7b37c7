//! What went wrong with a request to an OpenAI-format server, told so that a person can act
//! on it, and whether another attempt may cure it (and how soon: `Retry-After`).
//!
//! The messages reach `reply.failed` and the log, so they never carry the API key, the
//! URL's user-info or query string, or any upstream text: only our own words, the status,
//! and for the cases we cannot name the error's `type` and `code` (identifier-like words
//! only, see [`ApiError::shown`]). The upstream `error.message` is read to tell cases
//! apart, never shown: it can echo the key (OpenAI's 401 does) or the prompt.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::providers::ReplyEvent;
use crate::providers::retry::Attempt;
use crate::providers::retry_after::retry_after;

/// A failed request, described for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub message: String,
    pub retryable: bool,
    /// The server's `Retry-After`, when it sent one.
    pub after: Option<Duration>,
}

impl Failure {
    fn fatal(message: String) -> Self {
        Failure {
            message,
            retryable: false,
            after: None,
        }
    }

    fn retryable(message: String) -> Self {
        Failure {
            message,
            retryable: true,
            after: None,
        }
    }

    pub fn into_attempt(self) -> Attempt {
        if self.retryable {
            Attempt::Retryable {
                message: self.message,
                after: self.after,
            }
        } else {
            Attempt::Event(ReplyEvent::Failed(self.message))
        }
    }
}

/// What the request was for, to word the messages.
pub struct Context<'a> {
    /// The provider entry's name.
    pub provider: &'a str,
    pub model: &'a str,
    /// The base URL without user-info or query (see [`shown_url`]).
    pub url: &'a str,
}

pub use crate::providers::redact::shown_url;

fn clip(text: &str) -> String {
    let t: String = text.trim().chars().take(200).collect();
    if t.is_empty() {
        "(no details)".into()
    } else {
        t
    }
}

/// The `error` object's fields of an OpenAI-format error body (or an error chunk):
/// `{"error": {"message", "type", "code"}}`, `{"error": "text"}` or `{"message": …}`.
pub struct ApiError {
    pub message: String,
    /// `type` and `code` joined, lower case: what the cases are recognised by.
    pub kind: String,
    /// `type` and `code` as they may be shown (see [`ApiError::shown`]).
    shown: Vec<String>,
}

/// An identifier-like value: short, letters, digits and `_-.` only.
fn identifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

impl ApiError {
    pub fn from_value(v: &Value) -> Option<Self> {
        let err = v.get("error").unwrap_or(v);
        if let Some(s) = err.as_str() {
            return Some(ApiError {
                message: s.to_string(),
                kind: String::new(),
                shown: Vec::new(),
            });
        }
        let message = err.get("message").and_then(Value::as_str)?.to_string();
        let text = |k: &str| match err.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let (kind, code) = (text("type"), text("code"));
        Some(ApiError {
            message,
            shown: [&kind, &code]
                .into_iter()
                .filter(|t| identifier(t))
                .cloned()
                .collect(),
            kind: format!("{kind} {code}").to_lowercase(),
        })
    }

    /// What may be shown of it: its `type` and `code`, each only if the whole value looks
    /// like an identifier (`server_error`, `rate_limit_exceeded`, `429`), else "no details".
    pub fn shown(&self) -> String {
        if self.shown.is_empty() {
            "no details".into()
        } else {
            self.shown.join(", ")
        }
    }

    pub fn from_body(body: &[u8]) -> Option<Self> {
        Self::from_value(&serde_json::from_slice(body).ok()?)
    }
}

/// Words that say the prompt did not fit the model's context, in the error types and
/// messages of OpenAI, llama.cpp, vLLM, Ollama and LM Studio.
fn is_context_overflow(e: &ApiError) -> bool {
    let m = e.message.to_lowercase();
    e.kind.contains("context_length")
        || e.kind.contains("exceed_context")
        || [
            "context length",
            "context size",
            "context window",
            "maximum context",
        ]
        .iter()
        .any(|w| m.contains(w))
}

fn is_unknown_model(e: &ApiError) -> bool {
    e.kind.contains("model_not_found") || e.message.to_lowercase().contains("model")
}

/// An answer that is not a success: `status`, its headers and (the start of) its body.
pub fn from_status(status: StatusCode, headers: &HeaderMap, body: &[u8], cx: &Context) -> Failure {
    let api = ApiError::from_body(body);
    let detail = api
        .as_ref()
        .map(ApiError::shown)
        .unwrap_or_else(|| "no details".into());
    let after = retry_after(headers);
    let code = status.as_u16();
    let (provider, model) = (cx.provider, cx.model);
    match code {
        401 => Failure::fatal(format!(
            "the provider rejected the API key (HTTP 401): check `api_key` (or `api_key_env`) \
             of provider `{provider}`"
        )),
        403 => Failure::fatal(format!(
            "the provider refused access (HTTP 403): the API key of provider `{provider}` may \
             not be allowed to use model `{model}`"
        )),
        404 if api.as_ref().is_some_and(is_unknown_model) => Failure::fatal(format!(
            "the provider does not know the model `{model}` (HTTP 404): check `model` of \
             provider `{provider}`"
        )),
        404 => Failure::fatal(format!(
            "the provider has no such endpoint (HTTP 404 under {}): check `base_url` of provider \
             `{provider}` (for OpenAI-compatible servers it usually ends in /v1)",
            cx.url
        )),
        400 | 413 | 422 if api.as_ref().is_some_and(is_context_overflow) => {
            Failure::fatal(format!(
                "the conversation is too long for the model's context window (HTTP {code}): \
                 lower `max_history_chars` or `max_history_messages` (or `max_tokens`) of \
                 provider `{provider}`, or use a model with a larger context"
            ))
        }
        429 => {
            let quota = api
                .as_ref()
                .is_some_and(|e| e.kind.contains("insufficient_quota"));
            Failure {
                message: format!("the provider is rate limiting requests (HTTP 429; {detail})"),
                retryable: !quota,
                after,
            }
        }
        500..=599 => Failure {
            message: format!("the provider failed (HTTP {code}; {detail})"),
            retryable: true,
            after,
        },
        408 => Failure {
            message: "the provider timed out the request (HTTP 408)".into(),
            retryable: true,
            after,
        },
        _ => Failure::fatal(format!(
            "the provider refused the request (HTTP {code}; {detail})"
        )),
    }
}

/// A request that got no (whole) answer.
pub fn from_reqwest(e: reqwest::Error, cx: &Context) -> Failure {
    if e.is_connect() {
        return Failure::retryable(format!("cannot reach the provider at {}", cx.url));
    }
    if e.is_timeout() {
        return Failure::retryable("the provider did not answer in time".into());
    }
    // reqwest's own text names the URL (with its query); its causes (hyper, io) do not.
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    Failure::retryable(format!(
        "the connection to the provider failed: {}",
        clip(&text)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: Context = Context {
        provider: "gpt",
        model: "m1",
        url: "http://host/v1",
    };

    fn fail(status: u16, body: &str) -> Failure {
        from_status(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
            &CX,
        )
    }

    #[test]
    fn urls_are_shown_without_secrets() {
        assert_eq!(
            shown_url("https://user:pw@api.example.com/v1/?key=sk-1#x"),
            "https://api.example.com/v1"
        );
        assert_eq!(shown_url("not a url"), "(the configured base_url)");
    }

    #[test]
    fn a_wrong_key_says_so_without_the_upstream_text() {
        let f = fail(
            401,
            r#"{"error":{"message":"Incorrect API key provided: sk-abc***xyz","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        );
        assert!(!f.retryable);
        assert!(f.message.contains("API key") && f.message.contains("`gpt`"));
        assert!(!f.message.contains("sk-"), "{}", f.message);
    }

    #[test]
    fn unknown_models_and_wrong_paths_are_told_apart() {
        let f = fail(
            404,
            r#"{"error":{"message":"The model `m1` does not exist","type":"invalid_request_error","code":"model_not_found"}}"#,
        );
        assert!(
            f.message.contains("does not know the model `m1`"),
            "{}",
            f.message
        );
        let f = fail(404, "<html>Not Found</html>");
        assert!(f.message.contains("check `base_url`"), "{}", f.message);
        assert!(!f.message.contains("html"));
    }

    #[test]
    fn context_overflow_in_each_servers_words() {
        for body in [
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
            r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}"#,
            r#"{"object":"error","message":"This model's maximum context length is 2048 tokens. However, you requested 3000 tokens","type":"BadRequestError","code":400}"#,
        ] {
            let f = fail(400, body);
            assert!(
                f.message.contains("too long for the model's context"),
                "{body}"
            );
            assert!(!f.retryable);
        }
        let f = fail(
            400,
            r#"{"error":{"message":"temperature must be <= 2 (you sent sk-live-123)","type":"invalid_request_error","code":"bad temperature!"}}"#,
        );
        assert_eq!(
            f.message, "the provider refused the request (HTTP 400; invalid_request_error)",
            "type and code only, never the upstream message"
        );
    }

    #[test]
    fn rate_limits_and_server_errors_retry_when_they_may() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        let f = from_status(StatusCode::SERVICE_UNAVAILABLE, &h, b"{}", &CX);
        assert!(f.retryable);
        assert_eq!(f.after, Some(Duration::from_secs(3)));
        let f = from_status(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            br#"{"error":{"message":"slow down"}}"#,
            &CX,
        );
        assert!(f.retryable && f.message.contains("HTTP 429"));
        assert!(!f.message.contains("slow down"), "{}", f.message);
        let f = fail(
            429,
            r#"{"error":{"message":"You exceeded your quota","type":"insufficient_quota"}}"#,
        );
        assert!(!f.retryable);
    }
}
