//! The parts of OpenAI-format answers that chatwire reads, and nothing more: unknown fields
//! are ignored, every field not needed is absent, and those needed but optional default.
//! Servers other than OpenAI (llama.cpp, vLLM, Ollama, LM Studio) omit or add fields
//! freely; a strict parse of the whole schema would fail on them.

use serde::Deserialize;
use serde_json::Value;

/// One `chat.completion.chunk` of a streamed chat completion. A `usage`-only chunk has
/// empty `choices`; a role-only first chunk has a `delta` without `content`; an error
/// chunk has only `error`.
#[derive(Debug, Default, Deserialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Option<ChunkDelta>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChunkDelta {
    #[serde(default)]
    pub content: Option<String>,
}

/// Why a chat completion ended, as far as chatwire tells the cases apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// `stop`, `tool_calls` or anything unknown: the reply is whole.
    Whole,
    /// `length`: cut off by the token limit.
    Length,
    /// `content_filter`.
    Filtered,
}

impl Finish {
    pub fn from_reason(reason: &str) -> Self {
        match reason {
            "length" => Finish::Length,
            "content_filter" => Finish::Filtered,
            _ => Finish::Whole,
        }
    }
}

impl ChatChunk {
    /// The text and the finish reason of choice 0 (we ask for one choice).
    pub fn first_choice(&self) -> (String, Option<Finish>) {
        let mut text = String::new();
        let mut finish = None;
        for c in self.choices.iter().filter(|c| c.index == 0) {
            if let Some(t) = c.delta.as_ref().and_then(|d| d.content.as_deref()) {
                text.push_str(t);
            }
            finish = finish.or(c.finish_reason.as_deref().map(Finish::from_reason));
        }
        (text, finish)
    }
}

/// A Responses API object (create, retrieve, cancel). `usage` and its details are not
/// read at all, so a server that omits `usage.input_tokens_details` works.
#[derive(Debug, Deserialize)]
pub struct ResponseObject {
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub output: Vec<OutputItem>,
    #[serde(default)]
    pub incomplete_details: Option<IncompleteDetails>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct OutputItem {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub content: Vec<OutputContent>,
}

#[derive(Debug, Deserialize)]
pub struct OutputContent {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct IncompleteDetails {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Where a response is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    Running,
    Completed,
    Incomplete,
    Cancelled,
    Failed,
}

impl ResponseObject {
    pub fn status(&self) -> ResponseStatus {
        match self.status.as_deref() {
            Some("completed") => ResponseStatus::Completed,
            Some("incomplete") => ResponseStatus::Incomplete,
            Some("cancelled") => ResponseStatus::Cancelled,
            Some("failed") => ResponseStatus::Failed,
            // `queued`, `in_progress`, absent or new: not final yet.
            _ => ResponseStatus::Running,
        }
    }

    /// The text of every `output_text` part of every `message` item, in order.
    pub fn output_text(&self) -> String {
        self.output
            .iter()
            .filter(|i| i.kind == "message")
            .flat_map(|i| &i.content)
            .filter(|c| c.kind == "output_text")
            .filter_map(|c| c.text.as_deref())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(s: &str) -> (String, Option<Finish>) {
        serde_json::from_str::<ChatChunk>(s).unwrap().first_choice()
    }

    #[test]
    fn chunks_as_various_servers_send_them() {
        // Role-only first chunk (OpenAI, llama.cpp).
        assert_eq!(
            chunk(
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}],"created":1,"id":"x","model":"m","object":"chat.completion.chunk"}"#
            ),
            (String::new(), None)
        );
        // Missing `index`, `id`, `model`; unknown fields.
        assert_eq!(
            chunk(
                r#"{"choices":[{"delta":{"content":"Hi","reasoning_content":null}}],"timings":{"predicted_n":3}}"#
            ),
            ("Hi".into(), None)
        );
        // Usage-only chunk with empty choices.
        assert_eq!(
            chunk(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#),
            (String::new(), None)
        );
        // No choices at all; `delta: null`.
        assert_eq!(chunk(r#"{"object":"x"}"#), (String::new(), None));
        assert_eq!(
            chunk(r#"{"choices":[{"index":0,"delta":null,"finish_reason":"length"}]}"#),
            (String::new(), Some(Finish::Length))
        );
        assert_eq!(
            chunk(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"eos"}]}"#),
            (String::new(), Some(Finish::Whole))
        );
        assert_eq!(
            chunk(r#"{"choices":[{"index":1,"delta":{"content":"other"}}]}"#),
            (String::new(), None)
        );
    }

    #[test]
    fn a_response_without_usage_details() {
        let r: ResponseObject = serde_json::from_str(
            r#"{"id":"resp_1","object":"response","status":"completed",
                "usage":{"input_tokens":5,"output_tokens":2,"total_tokens":7},
                "output":[{"type":"reasoning","summary":[]},
                          {"type":"message","role":"assistant","content":[
                            {"type":"output_text","text":"Hello "},
                            {"type":"refusal","refusal":"no"},
                            {"type":"output_text","text":"there","annotations":[]}]}]}"#,
        )
        .unwrap();
        assert_eq!(r.status(), ResponseStatus::Completed);
        assert_eq!(r.output_text(), "Hello there");
        let r: ResponseObject = serde_json::from_str(r#"{"id":"resp_2"}"#).unwrap();
        assert_eq!(r.status(), ResponseStatus::Running);
        assert_eq!(r.output_text(), "");
    }
}
