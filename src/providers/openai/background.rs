//! Kind `openai-background`: the Responses API with `background: true`.
//!
//! A reply creates one background response, then waits. OpenAI announces the end with a
//! signed webhook (`response.completed` / `failed` / `cancelled` / `incomplete`) at
//! `/webhooks/openai`; the route hands it to this reply, which retrieves the response and
//! streams its text as deltas. Interrupting calls `POST /responses/{id}/cancel`.
//!
//! One user message must never create two responses (each is billed and runs on its own):
//! - the create is never retried — not by async-openai (its retry layer is off, see
//!   `mod.rs`) and not by us: after a timeout or a 5xx we cannot know whether the response
//!   exists, so the reply fails instead;
//! - the reply reserves its job in storage *before* the create (`Jobs::reserve`, unique per
//!   reply) and records the response id after it (`Jobs::assign`), so a replayed create
//!   for the same reply is detected and refused;
//! - the create runs to its end on a tracked task even if the reply is interrupted
//!   meanwhile, and then the response is cancelled — no response is left running unseen.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_openai::types::responses::{
    CreateResponse, EasyInputContent, EasyInputMessage, InputItem, InputParam, Role as InputRole,
};
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::upstream::Upstream;
use super::wire::{ResponseObject, ResponseStatus};
use crate::chat::Role;
use crate::providers::callback::{OpenAiEvent, OpenAiEventKind};
use crate::providers::generation::Generation;
use crate::providers::job::{
    CALLBACK_QUEUE, CallbackHandler, callback_stream, spawn_job, word_deltas,
};
use crate::providers::jobs::JobError;
use crate::providers::{
    Callback, CallbackEndpoint, CallbackRoute, JobOwner, Jobs, Provider, ProviderInfo, Reply,
    ReplyEvent, ReplyRequest,
};
use crate::signature::Secret;

/// How long a create, retrieve or cancel call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Retrievals after a webhook (the response may not be readable at once).
const RETRIEVE_ATTEMPTS: u32 = 3;
/// A retrieval is not retried after a `Retry-After` longer than this.
const RETRIEVE_MAX_WAIT: Duration = Duration::from_secs(5);

/// What an `openai-background` provider is built from (checked by the registry).
pub struct BackgroundSettings {
    pub info: ProviderInfo,
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub system_prompt: Option<String>,
    pub webhook_secret: Secret,
    /// `max_tokens` is sent as `max_output_tokens`; the token field choice does not apply.
    pub generation: Generation,
}

pub struct OpenAiBackground {
    info: ProviderInfo,
    system_prompt: Option<String>,
    generation: Generation,
    endpoint: CallbackEndpoint,
    upstream: Upstream,
    jobs: Arc<Jobs>,
}

impl OpenAiBackground {
    pub fn new(settings: BackgroundSettings, jobs: Arc<Jobs>) -> Result<Self, String> {
        let upstream = Upstream::new(
            &settings.info.name,
            &settings.base_url,
            settings.api_key.as_deref(),
            &settings.model,
            Some(REQUEST_TIMEOUT),
        )?;
        Ok(OpenAiBackground {
            info: settings.info,
            system_prompt: settings.system_prompt,
            generation: settings.generation,
            endpoint: CallbackEndpoint {
                route: CallbackRoute::OpenAi,
                secret: settings.webhook_secret,
            },
            upstream,
            jobs,
        })
    }

    fn create_request(&self, request: &ReplyRequest) -> CreateResponse {
        let items = self
            .generation
            .history
            .trim(&request.history)
            .iter()
            .map(|t| {
                InputItem::EasyMessage(EasyInputMessage {
                    role: match t.role {
                        Role::User => InputRole::User,
                        Role::Assistant => InputRole::Assistant,
                    },
                    content: EasyInputContent::Text(t.text.clone()),
                    ..Default::default()
                })
            })
            .collect();
        CreateResponse {
            model: Some(self.upstream.model().to_string()),
            input: InputParam::Items(items),
            instructions: self.system_prompt.clone(),
            background: Some(true),
            // Background mode requires stored responses (we retrieve it after the webhook).
            store: Some(true),
            // Lets an operator tie a response in OpenAI's dashboard to a chatwire reply.
            metadata: Some(HashMap::from([(
                "chatwire_reply_id".to_string(),
                request.reply_id.clone(),
            )])),
            max_output_tokens: self.generation.max_tokens,
            temperature: self.generation.temperature,
            ..Default::default()
        }
    }
}

impl Provider for OpenAiBackground {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn callback_endpoint(&self) -> Option<&CallbackEndpoint> {
        Some(&self.endpoint)
    }

    fn start(&self, request: ReplyRequest) -> Reply {
        let body = self.create_request(&request);
        let owner = JobOwner {
            conversation_id: request.conversation_id,
            reply_id: request.reply_id,
        };
        let (tx, rx) = mpsc::channel(CALLBACK_QUEUE);
        let name = self.info.name.clone();
        let submit = {
            let (upstream, jobs, tx) = (self.upstream.clone(), self.jobs.clone(), tx.clone());
            async move {
                jobs.reserve(&name, &owner).await.map_err(|e| match e {
                    JobError::Duplicate => "a background response was already created for \
                                            this message; not creating a second one"
                        .to_string(),
                    JobError::Storage(e) => {
                        tracing::debug!(error = %e, "cannot record a background job");
                        "cannot record the job: storage is unavailable".to_string()
                    }
                })?;
                let created: ResponseObject = upstream
                    .json(upstream.post("/responses").json(&body))
                    .await
                    .map_err(|e| {
                        format!("could not create the background response: {}", e.message)
                    })?;
                let early = jobs
                    .assign(&name, &owner.reply_id, &created.id)
                    .await
                    .map_err(|e| {
                        tracing::debug!(error = %e, "cannot record a background job's id");
                        "cannot record the job: storage is unavailable".to_string()
                    })?;
                // Webhooks that overtook the create's answer.
                for callback in early {
                    let _ = tx.try_send(callback);
                }
                Ok(created.id)
            }
        };
        let cancel = {
            let upstream = self.upstream.clone();
            move |id: String| async move {
                upstream
                    .send(upstream.post(&format!("/responses/{id}/cancel")))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.message)
            }
        };
        let (submitted, guard) = spawn_job(
            self.jobs.tracker(),
            self.info.name.clone(),
            None,
            submit,
            cancel,
        );
        let handler = Handler {
            upstream: self.upstream.clone(),
            finished: false,
        };
        Reply::with_callbacks(callback_stream(submitted, rx, guard, handler), tx)
    }
}

struct Handler {
    upstream: Upstream,
    finished: bool,
}

impl Handler {
    /// The response, once it is in a final state (a few tries: the webhook may overtake
    /// it). A 429 or 503 is retried no sooner than its `Retry-After`, and not past a cap.
    async fn retrieve(&self, id: &str) -> Result<ResponseObject, String> {
        let mut wait = Duration::ZERO;
        let mut last = String::new();
        for attempt in 0..RETRIEVE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(wait.max(Duration::from_millis(300) * attempt)).await;
            }
            wait = Duration::ZERO;
            let req = self.upstream.get(&format!("/responses/{id}"));
            match self.upstream.json::<ResponseObject>(req).await {
                Ok(r) if r.status() != ResponseStatus::Running => return Ok(r),
                Ok(_) => last = "the response is still in progress".into(),
                Err(e) => {
                    last = e.message;
                    wait = e.after.unwrap_or_default();
                    if !e.retryable || wait > RETRIEVE_MAX_WAIT {
                        break;
                    }
                }
            }
        }
        Err(format!("cannot retrieve the finished response: {last}"))
    }

    async fn on_event(&mut self, event: OpenAiEvent) -> Vec<ReplyEvent> {
        self.finished = true;
        let id = event.response_id;
        if event.kind == OpenAiEventKind::Cancelled {
            return vec![ReplyEvent::Failed(
                "the background response was cancelled at the provider".into(),
            )];
        }
        let response = match self.retrieve(&id).await {
            Ok(r) => r,
            Err(e) => return vec![ReplyEvent::Failed(e)],
        };
        let text = response.output_text();
        let mut out: Vec<ReplyEvent> = word_deltas(&text).collect();
        out.push(match (event.kind, response.status()) {
            (OpenAiEventKind::Completed, ResponseStatus::Completed) => ReplyEvent::Completed,
            (_, ResponseStatus::Incomplete) | (OpenAiEventKind::Incomplete, _) => {
                let reason = response
                    .incomplete_details
                    .and_then(|d| d.reason)
                    .unwrap_or_else(|| "no reason given".into());
                if reason == "max_output_tokens" {
                    ReplyEvent::Failed(
                        "the reply was cut off: it reached the token limit (the provider's \
                         `max_tokens`; raise it to allow longer replies)"
                            .into(),
                    )
                } else {
                    ReplyEvent::Failed(format!("the background response is incomplete ({reason})"))
                }
            }
            (_, ResponseStatus::Cancelled) => {
                ReplyEvent::Failed("the background response was cancelled at the provider".into())
            }
            _ => {
                let why = response
                    .error
                    .as_ref()
                    .and_then(super::errors::ApiError::from_value)
                    .map(|e| e.shown())
                    .unwrap_or_else(|| "no details".into());
                ReplyEvent::Failed(format!("the background response failed ({why})"))
            }
        });
        out
    }
}

impl CallbackHandler for Handler {
    fn handle(&mut self, callback: Callback) -> BoxFuture<'_, Vec<ReplyEvent>> {
        Box::pin(async move {
            match callback {
                Callback::OpenAi(event) => self.on_event(event).await,
                Callback::Nlp(_) => {
                    tracing::warn!("a protocol callback reached an OpenAI background job");
                    Vec::new()
                }
            }
        })
    }

    fn upstream_finished(&self) -> bool {
        self.finished
    }
}
