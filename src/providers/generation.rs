//! Generation settings of a provider entry: how long a reply may be, how random, and how
//! much of the conversation is sent with each request. History is trimmed from the oldest
//! turns, whole turns at a time, so a long conversation keeps fitting the model's context.

use super::Turn;

/// The default of `max_history_chars`.
pub const DEFAULT_MAX_HISTORY_CHARS: usize = 32_000;

/// How many tokens a reply may have, under which request field the server expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenField {
    /// `max_tokens`: what llama.cpp, vLLM, Ollama, LM Studio and most compatible servers
    /// read (OpenAI still accepts it for its non-reasoning models).
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: what OpenAI asks for (and requires for reasoning models).
    MaxCompletionTokens,
}

impl TokenField {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "max_tokens" => Some(TokenField::MaxTokens),
            "max_completion_tokens" => Some(TokenField::MaxCompletionTokens),
            _ => None,
        }
    }
}

/// How much history each request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimit {
    /// At most this many of the latest turns (`None`: as many as fit `max_chars`).
    pub max_messages: Option<usize>,
    /// At most this many characters of turn text in all.
    pub max_chars: usize,
}

impl Default for HistoryLimit {
    fn default() -> Self {
        HistoryLimit {
            max_messages: None,
            max_chars: DEFAULT_MAX_HISTORY_CHARS,
        }
    }
}

/// What an entry says about generation; every field is optional upstream.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Generation {
    pub max_tokens: Option<u32>,
    pub token_field: TokenField,
    pub temperature: Option<f32>,
    pub history: HistoryLimit,
}

impl HistoryLimit {
    /// The latest turns of `history` that fit, oldest first. The last turn (the user's new
    /// message) is always kept, even alone over the limit: the server should say it is too
    /// long rather than get nothing. A kept history never starts with an assistant turn.
    pub fn trim<'a>(&self, history: &'a [Turn]) -> &'a [Turn] {
        let max_messages = self.max_messages.unwrap_or(usize::MAX).max(1);
        let mut start = history.len();
        let mut chars = 0usize;
        for (i, turn) in history.iter().enumerate().rev() {
            let len = turn.text.chars().count();
            let kept = history.len() - i;
            if kept > max_messages || (kept > 1 && chars + len > self.max_chars) {
                break;
            }
            chars += len;
            start = i;
        }
        let mut kept = &history[start..];
        while kept.len() > 1 && kept[0].role == crate::chat::Role::Assistant {
            kept = &kept[1..];
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Role;

    fn turns(texts: &[&str]) -> Vec<Turn> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Turn {
                role: if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                text: t.to_string(),
            })
            .collect()
    }

    fn texts(t: &[Turn]) -> Vec<&str> {
        t.iter().map(|t| t.text.as_str()).collect()
    }

    #[test]
    fn everything_fits_by_default() {
        let h = turns(&["a", "b", "c"]);
        assert_eq!(texts(HistoryLimit::default().trim(&h)), ["a", "b", "c"]);
    }

    #[test]
    fn the_oldest_turns_go_first() {
        let h = turns(&["1111", "2222", "3333", "4444", "5555"]);
        let by_chars = HistoryLimit {
            max_messages: None,
            max_chars: 12,
        };
        // 3 turns fit (12 chars), but a history starts with the user: 3333 is a user turn.
        assert_eq!(texts(by_chars.trim(&h)), ["3333", "4444", "5555"]);
        let by_count = HistoryLimit {
            max_messages: Some(2),
            max_chars: 1000,
        };
        // The latest two are an assistant turn and the user's message: only the latter stays.
        assert_eq!(texts(by_count.trim(&h)), ["5555"]);
        let four = HistoryLimit {
            max_messages: Some(4),
            ..HistoryLimit::default()
        };
        assert_eq!(texts(four.trim(&h)), ["3333", "4444", "5555"]);
    }

    #[test]
    fn the_new_message_is_kept_even_when_too_long() {
        let h = turns(&["a", "b", "a very long message"]);
        let tiny = HistoryLimit {
            max_messages: Some(0),
            max_chars: 3,
        };
        assert_eq!(texts(tiny.trim(&h)), ["a very long message"]);
        assert!(tiny.trim(&[]).is_empty());
    }
}
