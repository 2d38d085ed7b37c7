//! Checking one `[[providers]]` entry: which keys its kind uses, which it needs, and the
//! defaults of the others. A wrong entry stops start-up with a message naming the entry
//! and the key (`ConfigError::Provider`).

use std::time::Duration;

use super::Deadlines;
use super::generation::{DEFAULT_MAX_HISTORY_CHARS, Generation, HistoryLimit, TokenField};
use super::retry::RetryPolicy;
use crate::config::ConfigError;
use crate::config::{ProviderConfig, secret};
use crate::signature::Secret;

/// Keys every kind accepts besides `name`, `kind` and `default`.
const COMMON: [&str; 4] = [
    "label",
    "first_delta_timeout_secs",
    "gap_timeout_secs",
    "reply_timeout_secs",
];

/// The generation keys (`generation()`), for the kinds that send a conversation.
pub const GENERATION: [&str; 4] = [
    "max_tokens",
    "temperature",
    "max_history_messages",
    "max_history_chars",
];

pub struct Check<'a> {
    pub entry: &'a ProviderConfig,
}

impl<'a> Check<'a> {
    pub fn new(entry: &'a ProviderConfig) -> Self {
        Check { entry }
    }

    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Provider {
            name: self.entry.name.clone(),
            message: message.into(),
        }
    }

    /// Refuses keys that the kind does not use (a typo or a misplaced key would otherwise
    /// be silently ignored).
    pub fn only(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        let e = self.entry;
        let set = [
            ("base_url", e.base_url.is_some()),
            ("api_key", e.api_key.is_some()),
            ("api_key_env", e.api_key_env.is_some()),
            ("model", e.model.is_some()),
            ("url", e.url.is_some()),
            ("webhook_secret", e.webhook_secret.is_some()),
            ("webhook_secret_env", e.webhook_secret_env.is_some()),
            ("system_prompt", e.system_prompt.is_some()),
            ("retries", e.retries.is_some()),
            ("label", e.label.is_some()),
            (
                "first_delta_timeout_secs",
                e.first_delta_timeout_secs.is_some(),
            ),
            ("gap_timeout_secs", e.gap_timeout_secs.is_some()),
            ("reply_timeout_secs", e.reply_timeout_secs.is_some()),
            ("max_tokens", e.max_tokens.is_some()),
            ("max_tokens_field", e.max_tokens_field.is_some()),
            ("temperature", e.temperature.is_some()),
            ("max_history_messages", e.max_history_messages.is_some()),
            ("max_history_chars", e.max_history_chars.is_some()),
        ];
        for (key, present) in set {
            if present && !allowed.contains(&key) && !COMMON.contains(&key) {
                return Err(
                    self.error(format!("`{key}` is not used by kind `{}`", self.entry.kind))
                );
            }
        }
        Ok(())
    }

    pub fn required(&self, key: &str, value: &Option<String>) -> Result<String, ConfigError> {
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            _ => Err(self.error(format!(
                "`{key}` is required for kind `{}`",
                self.entry.kind
            ))),
        }
    }

    /// An `http://` or `https://` URL.
    pub fn http_url(&self, key: &str, value: &str) -> Result<String, ConfigError> {
        match reqwest::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                Ok(value.to_string())
            }
            _ => Err(self.error(format!(
                "`{key}` must be an http:// or https:// URL, not \"{value}\""
            ))),
        }
    }

    /// `api_key` or `api_key_env`; optional (local servers such as Ollama need none).
    pub fn api_key(&self) -> Result<Option<String>, ConfigError> {
        let key = secret(
            self.entry,
            &self.entry.api_key,
            &self.entry.api_key_env,
            "api_key",
        )?;
        if let Some(k) = &key
            && (k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(self.error(
                "`api_key` must be printable ASCII without spaces (check the value or the variable)",
            ));
        }
        Ok(key)
    }

    /// `webhook_secret` or `webhook_secret_env`: `None` if neither is given.
    pub fn webhook_secret(&self) -> Result<Option<Secret>, ConfigError> {
        let text = secret(
            self.entry,
            &self.entry.webhook_secret,
            &self.entry.webhook_secret_env,
            "webhook_secret",
        )?;
        text.map(|t| Secret::parse(&t).map_err(|e| self.error(format!("`webhook_secret` {e}"))))
            .transpose()
    }

    /// A webhook secret that the kind cannot work without.
    pub fn required_webhook_secret(&self) -> Result<Secret, ConfigError> {
        self.webhook_secret()?.ok_or_else(|| {
            self.error(format!(
                "`webhook_secret` (or `webhook_secret_env`) is required for kind `{}`: \
                 callbacks are verified with it",
                self.entry.kind
            ))
        })
    }

    fn secs(&self, key: &str, value: Option<u64>) -> Result<Option<Duration>, ConfigError> {
        match value {
            Some(0) => Err(self.error(format!("`{key}` must be at least 1"))),
            v => Ok(v.map(Duration::from_secs)),
        }
    }

    /// The entry's deadlines, each falling back to the kind's default.
    pub fn deadlines(&self, defaults: Deadlines) -> Result<Deadlines, ConfigError> {
        let e = self.entry;
        Ok(Deadlines {
            first_delta: self
                .secs("first_delta_timeout_secs", e.first_delta_timeout_secs)?
                .or(defaults.first_delta),
            gap: self
                .secs("gap_timeout_secs", e.gap_timeout_secs)?
                .or(defaults.gap),
            total: self
                .secs("reply_timeout_secs", e.reply_timeout_secs)?
                .or(defaults.total),
        })
    }

    pub fn retry(&self) -> Result<RetryPolicy, ConfigError> {
        match self.entry.retries {
            Some(n) if n > 5 => Err(self.error("`retries` must be at most 5")),
            n => Ok(RetryPolicy {
                retries: n.unwrap_or(1),
                ..RetryPolicy::default()
            }),
        }
    }

    /// `max_tokens`, `max_tokens_field`, `temperature` and the history limits.
    pub fn generation(&self) -> Result<Generation, ConfigError> {
        let e = self.entry;
        let at_least_one = |key: &str, v: Option<usize>| match v {
            Some(0) => Err(self.error(format!("`{key}` must be at least 1"))),
            v => Ok(v),
        };
        if e.max_tokens == Some(0) {
            return Err(self.error("`max_tokens` must be at least 1"));
        }
        if let Some(t) = e.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(self.error("`temperature` must be between 0 and 2"));
        }
        let token_field = match e.max_tokens_field.as_deref() {
            None => TokenField::default(),
            Some(f) => TokenField::parse(f).ok_or_else(|| {
                self.error(format!(
                    "`max_tokens_field` must be \"max_tokens\" or \"max_completion_tokens\", not \"{f}\""
                ))
            })?,
        };
        Ok(Generation {
            max_tokens: e.max_tokens,
            token_field,
            temperature: e.temperature,
            history: HistoryLimit {
                max_messages: at_least_one("max_history_messages", e.max_history_messages)?,
                max_chars: at_least_one("max_history_chars", e.max_history_chars)?
                    .unwrap_or(DEFAULT_MAX_HISTORY_CHARS),
            },
        })
    }

    pub fn label(&self, default: &str) -> String {
        self.entry
            .label
            .clone()
            .unwrap_or_else(|| default.to_string())
    }
}

/// Deadlines in seconds: first delta, gap, whole reply.
pub const fn secs(first: u64, gap: u64, total: u64) -> Deadlines {
    Deadlines {
        first_delta: Some(Duration::from_secs(first)),
        gap: Some(Duration::from_secs(gap)),
        total: Some(Duration::from_secs(total)),
    }
}
