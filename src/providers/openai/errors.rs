//! Turning async-openai's errors into the messages a user sees in `reply.failed`, and
//! deciding which of them another attempt may cure.

use async_openai::error::{OpenAIError, WrappedError};

use crate::providers::ReplyEvent;
use crate::providers::retry::Attempt;

/// A failure, described for people; `retryable` if a new attempt may succeed.
pub struct Described {
    pub message: String,
    pub retryable: bool,
}

impl Described {
    pub fn into_attempt(self) -> Attempt {
        if self.retryable {
            Attempt::Retryable {
                message: self.message,
                after: None,
            }
        } else {
            Attempt::Event(ReplyEvent::Failed(self.message))
        }
    }
}

fn clip(text: &str) -> String {
    let t: String = text.trim().chars().take(300).collect();
    if t.is_empty() {
        "(no details)".into()
    } else {
        t
    }
}

/// Describes an error of a request to the provider at `base_url`.
pub fn describe(e: &OpenAIError, base_url: &str) -> Described {
    match e {
        OpenAIError::ApiError(resp) => {
            let status = resp.status_code;
            let detail = clip(&resp.api_error.message);
            let quota = resp.api_error.r#type.as_deref() == Some("insufficient_quota")
                || resp.api_error.code.as_deref() == Some("insufficient_quota");
            if status.as_u16() == 429 {
                Described {
                    message: format!("the provider is rate limiting requests (HTTP 429): {detail}"),
                    retryable: !quota,
                }
            } else if status.is_server_error() {
                Described {
                    message: format!("the provider failed (HTTP {status}): {detail}"),
                    retryable: true,
                }
            } else {
                Described {
                    message: format!("the provider refused the request (HTTP {status}): {detail}"),
                    retryable: status.as_u16() == 408,
                }
            }
        }
        OpenAIError::Reqwest(r) if r.is_connect() => Described {
            message: format!("cannot reach the provider at {base_url}"),
            retryable: true,
        },
        OpenAIError::Reqwest(r) if r.is_timeout() => Described {
            message: "the provider did not answer in time".into(),
            retryable: true,
        },
        OpenAIError::Reqwest(r) => Described {
            message: format!("the connection to the provider failed: {r}"),
            retryable: true,
        },
        OpenAIError::JSONDeserialize(_, content) => {
            match serde_json::from_str::<WrappedError>(content) {
                // An error chunk in the middle of a stream: `data: {"error": {...}}`.
                Ok(w) => Described {
                    message: format!("the provider reported an error: {}", clip(&w.error.message)),
                    retryable: true,
                },
                Err(_) => Described {
                    message: format!(
                        "the provider sent data chatwire cannot read: {}",
                        clip(content)
                    ),
                    retryable: false,
                },
            }
        }
        OpenAIError::StreamError(s) => Described {
            message: format!("the provider's stream broke off: {s}"),
            retryable: true,
        },
        other => Described {
            message: format!("the request to the provider failed: {other}"),
            retryable: false,
        },
    }
}
