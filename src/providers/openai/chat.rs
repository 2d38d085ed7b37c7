//! Kind `openai`: streaming chat completions from any OpenAI-compatible server (OpenAI,
//! Ollama, vLLM, llama.cpp, LM Studio, OpenRouter…).
//!
//! Each reply sends the whole conversation (plus the optional system prompt) with
//! `stream: true` and turns the chunks into deltas. The reply completes only when the
//! server says so (`finish_reason`); a stream that ends without it — the connection
//! closed early — is a failure with the text so far kept, never a silent "completed". An
//! error chunk, a 429 or a 5xx fails the reply with the provider's message; before the
//! first delta such failures are retried once, briefly (`retry.rs`). Interrupting drops
//! the stream, which drops the HTTP response and so closes the connection.

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    ChatCompletionResponseStream, CreateChatCompletionRequest, FinishReason,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::errors::describe;
use crate::chat::Role;
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
}

pub struct OpenAiChat {
    settings: ChatSettings,
    client: Client<OpenAIConfig>,
}

impl OpenAiChat {
    pub fn new(settings: ChatSettings) -> Result<Self, String> {
        let client = super::client(&settings.base_url, settings.api_key.as_deref(), None)?;
        Ok(OpenAiChat { settings, client })
    }

    fn request(&self, history: &[Turn]) -> CreateChatCompletionRequest {
        let mut messages: Vec<ChatCompletionRequestMessage> = Vec::with_capacity(history.len() + 1);
        if let Some(prompt) = &self.settings.system_prompt {
            messages.push(ChatCompletionRequestSystemMessage::from(prompt.as_str()).into());
        }
        for turn in history {
            messages.push(match turn.role {
                Role::User => ChatCompletionRequestUserMessage::from(turn.text.as_str()).into(),
                Role::Assistant => {
                    ChatCompletionRequestAssistantMessage::from(turn.text.as_str()).into()
                }
            });
        }
        CreateChatCompletionRequest {
            model: self.settings.model.clone(),
            messages,
            // `create_stream` sets `stream: true` itself.
            ..Default::default()
        }
    }
}

impl Provider for OpenAiChat {
    fn info(&self) -> &ProviderInfo {
        &self.settings.info
    }

    fn start(&self, request: ReplyRequest) -> Reply {
        let body = self.request(&request.history);
        let client = self.client.clone();
        let base_url = self.settings.base_url.clone();
        let events = retry_before_first_delta(self.settings.retry, move |_| {
            attempt(client.clone(), body.clone(), base_url.clone())
        });
        Reply::new(events)
    }
}

struct Run {
    client: Client<OpenAIConfig>,
    request: Option<CreateChatCompletionRequest>,
    stream: Option<ChatCompletionResponseStream>,
    base_url: String,
    finished: bool,
    done: bool,
}

impl Run {
    async fn next(&mut self) -> Option<Attempt> {
        if self.done {
            return None;
        }
        if self.finished {
            self.done = true;
            self.stream = None;
            return Some(Attempt::Event(ReplyEvent::Completed));
        }
        if let Some(request) = self.request.take() {
            match self.client.chat().create_stream(request).await {
                Ok(stream) => self.stream = Some(stream),
                Err(e) => {
                    self.done = true;
                    return Some(describe(&e, &self.base_url).into_attempt());
                }
            }
        }
        let stream = self.stream.as_mut()?;
        loop {
            match stream.next().await {
                Some(Ok(chunk)) => {
                    let mut text = String::new();
                    let mut finish = None;
                    for choice in chunk.choices.iter().filter(|c| c.index == 0) {
                        if let Some(t) = &choice.delta.content {
                            text.push_str(t);
                        }
                        finish = finish.or(choice.finish_reason);
                    }
                    if let Some(reason) = finish {
                        if reason == FinishReason::ContentFilter {
                            self.done = true;
                            return Some(Attempt::Event(ReplyEvent::Failed(
                                "the provider's content filter stopped the reply".into(),
                            )));
                        }
                        // The reply is whole; what may follow (usage, `[DONE]`) adds no text.
                        self.finished = true;
                        if text.is_empty() {
                            self.done = true;
                            return Some(Attempt::Event(ReplyEvent::Completed));
                        }
                    }
                    if !text.is_empty() {
                        return Some(Attempt::Event(ReplyEvent::Delta(text)));
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(describe(&e, &self.base_url).into_attempt());
                }
                None => {
                    self.done = true;
                    return Some(Attempt::Retryable {
                        message: "the provider's stream ended before the reply was finished \
                                  (no finish_reason; the connection was closed early)"
                            .into(),
                        after: None,
                    });
                }
            }
        }
    }
}

fn attempt(
    client: Client<OpenAIConfig>,
    request: CreateChatCompletionRequest,
    base_url: String,
) -> BoxStream<'static, Attempt> {
    let run = Run {
        client,
        request: Some(request),
        stream: None,
        base_url,
        finished: false,
        done: false,
    };
    futures_util::stream::unfold(run, |mut run| async move {
        let a = run.next().await?;
        Some((a, run))
    })
    .boxed()
}
