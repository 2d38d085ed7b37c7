//! The wire format of chatwire's NLP callback protocol (docs/callback-protocol.md).
//!
//! chatwire sends [`ServiceMessage`]s to the service's `url` (a job to start, a job to
//! cancel); the service sends [`Callback`]s to the job's `callback_url`
//! (`/webhooks/nlp`). Every message, both ways, is JSON signed with Standard Webhooks
//! headers (`crate::signature`) using the provider's `whsec_` secret.

use serde::{Deserialize, Serialize};

/// chatwire → service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServiceMessage {
    /// Start a job. A `job_id` seen before is the same job: the service must not start it twice.
    #[serde(rename = "job.submit")]
    Submit(JobRequest),
    /// Stop a job; its later callbacks are ignored anyway.
    #[serde(rename = "job.cancel")]
    Cancel { job_id: String },
}

/// A job: the conversation so far, and where to send the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    pub job_id: String,
    /// Where to POST the job's callbacks (chatwire's `/webhooks/nlp`).
    pub callback_url: String,
    /// Oldest first; the last one is the user's new message.
    pub messages: Vec<WireTurn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The longest reply the service should produce, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

/// One message of the history: `role` is `user` or `assistant`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireTurn {
    pub role: String,
    pub text: String,
}

/// service → chatwire. Deltas are numbered 1, 2, 3…; `job.completed` carries the number
/// after the last delta, so it takes its place in the same sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Callback {
    #[serde(rename = "job.delta")]
    Delta {
        job_id: String,
        seq: u64,
        text: String,
    },
    /// The job finished. `text`, if given, is the whole reply and settles it at once
    /// (deltas still missing are not waited for).
    #[serde(rename = "job.completed")]
    Completed {
        job_id: String,
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// The job failed; applied at once, the text delivered so far is kept.
    #[serde(rename = "job.failed")]
    Failed {
        job_id: String,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
}

impl Callback {
    /// The `type`s of this protocol; other types are acknowledged and ignored.
    pub const TYPES: [&'static str; 3] = ["job.delta", "job.completed", "job.failed"];

    pub fn job_id(&self) -> &str {
        match self {
            Callback::Delta { job_id, .. }
            | Callback::Completed { job_id, .. }
            | Callback::Failed { job_id, .. } => job_id,
        }
    }
}
