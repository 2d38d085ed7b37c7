//! Callbacks: what a webhook route hands, typed, to the reply that owns a job.
//!
//! The web layer verifies and dedupes a webhook, parses its body with [`parse`] into a
//! [`Callback`] (or learns that it is an event type we ignore), finds the job's owner
//! and sends the callback to that conversation's actor, which forwards it to the running
//! reply if — and only if — it is still the current one.

use crate::signature::Secret;

use super::protocol;

/// Which webhook route a callback provider's callbacks arrive at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackRoute {
    /// `POST /webhooks/openai`: OpenAI's webhook events for background responses.
    OpenAi,
    /// `POST /webhooks/nlp`: chatwire's own callback protocol (docs/callback-protocol.md).
    Nlp,
}

impl CallbackRoute {
    /// The name under which deliveries are remembered for dedupe.
    pub fn source(self) -> &'static str {
        match self {
            CallbackRoute::OpenAi => "openai",
            CallbackRoute::Nlp => "nlp",
        }
    }
}

/// Where a callback provider receives its callbacks, and the secret that signs them.
#[derive(Debug, Clone)]
pub struct CallbackEndpoint {
    pub route: CallbackRoute,
    pub secret: Secret,
}

/// A verified callback, typed. Serialisable so that a node can hand it to the owning
/// node in cluster mode.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Callback {
    Nlp(protocol::Callback),
    OpenAi(OpenAiEvent),
}

impl Callback {
    /// The provider's id for the job this callback is about.
    pub fn job_id(&self) -> &str {
        match self {
            Callback::Nlp(c) => c.job_id(),
            Callback::OpenAi(e) => &e.response_id,
        }
    }
}

/// One of OpenAI's webhook events about a background response.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpenAiEvent {
    pub kind: OpenAiEventKind,
    pub response_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenAiEventKind {
    Completed,
    Failed,
    Cancelled,
    Incomplete,
}

/// What the actor did with a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackAck {
    /// Handed to the running reply.
    Accepted,
    /// Its reply is no longer running (finished, interrupted, replaced): ignored.
    Late,
    /// The reply's callback queue is full: try again shortly (answered 503).
    Busy,
}

/// A body that is signed but not a callback we understand.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(serde::Deserialize)]
struct OpenAiBody {
    data: OpenAiData,
}

#[derive(serde::Deserialize)]
struct OpenAiData {
    id: String,
}

/// Parses a verified webhook body. `Ok(None)`: an event type we do not act on.
pub fn parse(route: CallbackRoute, body: &[u8]) -> Result<Option<Callback>, ParseError> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("the body is not a JSON event with a `type`: {e}")))?;
    match route {
        CallbackRoute::OpenAi => {
            let kind = match envelope.kind.as_str() {
                "response.completed" => OpenAiEventKind::Completed,
                "response.failed" => OpenAiEventKind::Failed,
                "response.cancelled" => OpenAiEventKind::Cancelled,
                "response.incomplete" => OpenAiEventKind::Incomplete,
                _ => return Ok(None),
            };
            let body: OpenAiBody = serde_json::from_slice(body)
                .map_err(|e| ParseError(format!("`{}` without `data.id`: {e}", envelope.kind)))?;
            Ok(Some(Callback::OpenAi(OpenAiEvent {
                kind,
                response_id: body.data.id,
            })))
        }
        CallbackRoute::Nlp => {
            if !protocol::Callback::TYPES.contains(&envelope.kind.as_str()) {
                return Ok(None);
            }
            let cb: protocol::Callback = serde_json::from_slice(body)
                .map_err(|e| ParseError(format!("malformed `{}`: {e}", envelope.kind)))?;
            Ok(Some(Callback::Nlp(cb)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openai_events_and_ignores_others() {
        let body = br#"{"id":"evt_1","object":"event","created_at":1,"type":"response.completed","data":{"id":"resp_1"}}"#;
        let cb = parse(CallbackRoute::OpenAi, body).unwrap().unwrap();
        assert_eq!(cb.job_id(), "resp_1");
        let other = br#"{"type":"batch.completed","data":{"id":"batch_1"}}"#;
        assert!(parse(CallbackRoute::OpenAi, other).unwrap().is_none());
        assert!(parse(CallbackRoute::OpenAi, b"nope").is_err());
    }

    #[test]
    fn parses_protocol_callbacks() {
        let body = br#"{"type":"job.delta","job_id":"job_1","seq":1,"text":"Hi"}"#;
        let cb = parse(CallbackRoute::Nlp, body).unwrap().unwrap();
        assert_eq!(
            cb,
            Callback::Nlp(protocol::Callback::Delta {
                job_id: "job_1".into(),
                seq: 1,
                text: "Hi".into()
            })
        );
        assert!(
            parse(CallbackRoute::Nlp, br#"{"type":"job.progress"}"#)
                .unwrap()
                .is_none()
        );
        assert!(parse(CallbackRoute::Nlp, br#"{"type":"job.delta","seq":1}"#).is_err());
    }
}
