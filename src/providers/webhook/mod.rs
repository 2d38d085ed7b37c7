//! Kind `webhook`: any NLP service speaking chatwire's callback protocol
//! (docs/callback-protocol.md), and the built-in simulated service, which speaks it too.
//!
//! A reply is a job: chatwire picks the job id, records it (so callbacks that overtake the
//! submit's answer find their owner), POSTs the signed job to the service's `url`, and
//! reads the deltas the service sends to `/webhooks/nlp`, in order (`sequencer.rs`).
//! Interrupting sends a signed `job.cancel`. Because the job id is chatwire's, a submit
//! that is retried is the same job: the protocol requires services to dedupe by job id.

pub(crate) mod client;
mod sequencer;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::generation::Generation;
use super::job::{CALLBACK_QUEUE, CallbackHandler, callback_stream, spawn_job};
use super::protocol::{JobRequest, ServiceMessage, WireTurn};
use super::{
    Callback, CallbackEndpoint, JobOwner, Jobs, Provider, ProviderInfo, Reply, ReplyEvent,
    ReplyRequest,
};
use crate::signature::Secret;
use sequencer::Sequencer;

/// What a `webhook` provider is built from (checked by the registry).
pub struct WebhookSettings {
    pub info: ProviderInfo,
    pub url: String,
    pub secret: Secret,
    /// The full URL of chatwire's `/webhooks/nlp`.
    pub callback_url: String,
    pub system_prompt: Option<String>,
    pub model: Option<String>,
    pub retries: u32,
    /// History limits apply here; `max_tokens` and `temperature` travel in the job.
    pub generation: Generation,
}

pub struct WebhookProvider {
    settings: Arc<WebhookSettings>,
    endpoint: CallbackEndpoint,
    http: reqwest::Client,
    jobs: Arc<Jobs>,
}

impl WebhookProvider {
    pub fn new(settings: WebhookSettings, jobs: Arc<Jobs>) -> Result<Self, String> {
        let endpoint = CallbackEndpoint {
            route: super::CallbackRoute::Nlp,
            secret: settings.secret.clone(),
        };
        Ok(WebhookProvider {
            settings: Arc::new(settings),
            endpoint,
            http: client::http_client()?,
            jobs,
        })
    }
}

struct Handler {
    sequencer: Sequencer,
}

impl CallbackHandler for Handler {
    fn handle(&mut self, callback: Callback) -> BoxFuture<'_, Vec<ReplyEvent>> {
        let mut out = VecDeque::new();
        match callback {
            Callback::Nlp(c) => self.sequencer.accept(c, &mut out),
            Callback::OpenAi(_) => tracing::warn!("an OpenAI event reached a webhook job"),
        }
        Box::pin(std::future::ready(out.into()))
    }

    fn upstream_finished(&self) -> bool {
        self.sequencer.upstream_finished()
    }
}

impl Provider for WebhookProvider {
    fn info(&self) -> &ProviderInfo {
        &self.settings.info
    }

    fn callback_endpoint(&self) -> Option<&CallbackEndpoint> {
        Some(&self.endpoint)
    }

    fn start(&self, request: ReplyRequest) -> Reply {
        let job_id = crate::ids::prefixed("job_", 16);
        let our_id = job_id.clone();
        let owner = JobOwner {
            conversation_id: request.conversation_id,
            reply_id: request.reply_id,
        };
        let settings = self.settings.clone();
        let job = ServiceMessage::Submit(JobRequest {
            job_id: job_id.clone(),
            callback_url: settings.callback_url.clone(),
            messages: settings
                .generation
                .history
                .trim(&request.history)
                .iter()
                .map(|t| WireTurn {
                    role: t.role.as_str().to_string(),
                    text: t.text.clone(),
                })
                .collect(),
            system_prompt: settings.system_prompt.clone(),
            model: settings.model.clone(),
            max_tokens: settings.generation.max_tokens,
            temperature: settings.generation.temperature,
        });
        let (tx, rx) = mpsc::channel(CALLBACK_QUEUE);
        let (jobs, http) = (self.jobs.clone(), self.http.clone());
        let submit = {
            let (settings, http) = (settings.clone(), http.clone());
            async move {
                let name = &settings.info.name;
                jobs.register(name, &job_id, &owner).await.map_err(|e| {
                    tracing::debug!(error = %e, "cannot record a job");
                    "cannot record the job: storage is unavailable".to_string()
                })?;
                let body = serde_json::to_vec(&job).map_err(|e| e.to_string())?;
                client::post_signed_retrying(
                    &http,
                    &settings.secret,
                    &settings.url,
                    body,
                    settings.retries,
                    Duration::from_millis(250),
                )
                .await
                .map_err(|e| format!("the NLP service did not take the job: {}", e.message))?;
                Ok(job_id)
            }
        };
        let cancel = move |job_id: String| async move {
            let body = serde_json::to_vec(&ServiceMessage::Cancel { job_id })
                .map_err(|e| e.to_string())?;
            client::post_signed(&http, &settings.secret, &settings.url, body)
                .await
                .map(|_| ())
                .map_err(|e| e.message)
        };
        let (submitted, guard) = spawn_job(
            self.jobs.tracker(),
            self.settings.info.name.clone(),
            Some(our_id),
            submit,
            cancel,
        );
        let handler = Handler {
            sequencer: Sequencer::new(),
        };
        Reply::with_callbacks(callback_stream(submitted, rx, guard, handler), tx)
    }
}
