//! Kind `openai`: streaming chat completions from any OpenAI-compatible server (OpenAI,
//! Ollama, vLLM, llama.cpp, LM Studio, OpenRouter…).
//!
//! Each reply sends the latest turns that fit the entry's history limits (plus the optional
//! system prompt) with `stream: true`, and reads the chunks leniently (`wire.rs`). The
//! reply completes only when the server says so (`finish_reason`); `length` — cut off by
//! the token limit — fails it with its text kept and says why; a stream that ends without
//! any finish (the connection closed early) is a failure too, never a silent "completed".
//! An error chunk, a 429 or a 5xx fails the reply with the provider's message; before the
//! first delta such failures are retried (`retry.rs`), no sooner than a `Retry-After`
//! asks. Interrupting drops the stream, which drops the HTTP response and so closes the
//! connection: the server stops generating.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::Serialize;

use super::sse::SseReader;
use super::upstream::Upstream;
use super::wire::{ChatChunk, Finish};
use crate::chat::Role;
use crate::providers::generation::{Generation, TokenField};
use crate::providers::retry::{Attempt, RetryPolicy, retry_before_first_delta};
use crate::providers::{Provider, ProviderInfo, Reply, ReplyEvent, ReplyRequest, Turn};

/// What an `openai` provider is built from (checked by the registry).
pub struct ChatSettings {
    pub info: ProviderInfo,
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub system_prompt: Option<String>,
    pub retry: RetryPolicy,
    pub generation: Generation,
}

pub struct OpenAiChat {
    info: ProviderInfo,
    system_prompt: Option<String>,
    retry: RetryPolicy,
    generation: Generation,
    upstream: Upstream,
}

/// The request body: only what we set (a server may reject fields it does not know).
#[derive(Debug, Clone, Serialize)]
struct ChatRequest {
    model: String,
    messages: Vec<WireMessage>,
    /// Always true: set here, not by a library.
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

#[derive(Debug, Clone, Serialize)]
struct WireMessage {
    role: &'static str,
    content: String,
}

impl OpenAiChat {
    pub fn new(settings: ChatSettings) -> Result<Self, String> {
        let upstream = Upstream::new(
            &settings.info.name,
            &settings.base_url,
            settings.api_key.as_deref(),
            &settings.model,
            None,
        )?;
        Ok(OpenAiChat {
            info: settings.info,
            system_prompt: settings.system_prompt,
            retry: settings.retry,
            generation: settings.generation,
            upstream,
        })
    }

    fn request(&self, history: &[Turn]) -> ChatRequest {
        let history = self.generation.history.trim(history);
        let mut messages = Vec::with_capacity(history.len() + 1);
        if let Some(prompt) = &self.system_prompt {
            messages.push(WireMessage {
                role: "system",
                content: prompt.clone(),
            });
        }
        messages.extend(history.iter().map(|t| WireMessage {
            role: match t.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            },
            content: t.text.clone(),
        }));
        let g = &self.generation;
        let (max_tokens, max_completion_tokens) = match g.token_field {
            TokenField::MaxTokens => (g.max_tokens, None),
            TokenField::MaxCompletionTokens => (None, g.max_tokens),
        };
        ChatRequest {
            model: self.upstream.model().to_string(),
            messages,
            stream: true,
            max_tokens,
            max_completion_tokens,
            temperature: g.temperature,
        }
    }
}

impl Provider for OpenAiChat {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn start(&self, request: ReplyRequest) -> Reply {
        let body = self.request(&request.history);
        let upstream = self.upstream.clone();
        let events =
            retry_before_first_delta(self.retry, move |_| attempt(upstream.clone(), body.clone()));
        Reply::new(events)
    }
}

type Body = BoxStream<'static, Result<Bytes, reqwest::Error>>;

/// One attempt: the request, then the chunks, as [`Attempt`]s.
struct Run {
    upstream: Upstream,
    request: Option<ChatRequest>,
    body: Option<Body>,
    reader: SseReader,
    /// Data of events read but not yet handled.
    pending: std::collections::VecDeque<String>,
    done: bool,
}

/// What one SSE event means for the reply.
enum Step {
    Nothing,
    Text(String),
    End(Vec<Attempt>),
}

fn failed(message: impl Into<String>) -> Attempt {
    Attempt::Event(ReplyEvent::Failed(message.into()))
}

fn cut_off() -> Attempt {
    Attempt::Retryable {
        message: "the provider's stream ended before the reply was finished \
                  (no finish_reason; the connection was closed early)"
            .into(),
        after: None,
    }
}

fn step(data: &str) -> Step {
    if data.trim() == "[DONE]" {
        // `[DONE]` before any finish_reason: the reply was not said to be whole.
        return Step::End(vec![cut_off()]);
    }
    let chunk: ChatChunk = match serde_json::from_str(data) {
        Ok(c) => c,
        Err(_) => {
            return Step::End(vec![failed(
                "the provider sent a stream chunk chatwire cannot read",
            )]);
        }
    };
    if let Some(e) = &chunk.error {
        let message = super::errors::ApiError::from_value(e)
            .map(|e| e.shown())
            .unwrap_or_else(|| "no details".into());
        return Step::End(vec![Attempt::Retryable {
            message: format!("the provider reported an error ({message})"),
            after: None,
        }]);
    }
    let (text, finish) = chunk.first_choice();
    let end = match finish {
        None if text.is_empty() => return Step::Nothing,
        None => return Step::Text(text),
        Some(Finish::Whole) => Attempt::Event(ReplyEvent::Completed),
        Some(Finish::Length) => failed(
            "the reply was cut off: it reached the token limit (the provider's `max_tokens`; \
             raise it to allow longer replies)",
        ),
        Some(Finish::Filtered) => failed("the provider's content filter stopped the reply"),
    };
    let mut out = Vec::with_capacity(2);
    if !text.is_empty() {
        out.push(Attempt::Event(ReplyEvent::Delta(text)));
    }
    out.push(end);
    Step::End(out)
}

impl Run {
    /// The next attempts to yield; empty when the attempt is over.
    async fn next(&mut self) -> Vec<Attempt> {
        if self.done {
            return Vec::new();
        }
        if let Some(request) = self.request.take() {
            match self
                .upstream
                .send(self.upstream.post("/chat/completions").json(&request))
                .await
            {
                Ok(resp) => self.body = Some(resp.bytes_stream().boxed()),
                Err(f) => {
                    self.done = true;
                    return vec![f.into_attempt()];
                }
            }
        }
        loop {
            while let Some(data) = self.pending.pop_front() {
                match step(&data) {
                    Step::Nothing => {}
                    Step::Text(t) => return vec![Attempt::Event(ReplyEvent::Delta(t))],
                    Step::End(out) => {
                        // What may follow (usage, `[DONE]`) adds no text: drop the body.
                        self.done = true;
                        self.body = None;
                        return out;
                    }
                }
            }
            let Some(body) = self.body.as_mut() else {
                // The body ended and its last events said nothing final.
                self.done = true;
                return vec![cut_off()];
            };
            let mut out = Vec::new();
            match body.next().await {
                Some(Ok(bytes)) => {
                    if self.reader.push(&bytes, &mut out).is_err() {
                        self.done = true;
                        return vec![failed("the provider sent a stream line too long to read")];
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return vec![self.upstream.broken(e).into_attempt()];
                }
                None => {
                    self.reader.finish(&mut out);
                    self.body = None;
                    if out.is_empty() {
                        self.done = true;
                        return vec![cut_off()];
                    }
                }
            }
            self.pending.extend(out);
        }
    }
}

fn attempt(upstream: Upstream, request: ChatRequest) -> BoxStream<'static, Attempt> {
    let run = Run {
        upstream,
        request: Some(request),
        body: None,
        reader: SseReader::default(),
        pending: Default::default(),
        done: false,
    };
    let batches = futures_util::stream::unfold(run, |mut run| async move {
        let out = run.next().await;
        (!out.is_empty()).then_some((futures_util::stream::iter(out), run))
    });
    batches.flatten().boxed()
}
