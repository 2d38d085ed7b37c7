//! The provider file: one `ProviderConfig` per `[[providers]]` entry of the TOML file,
//! `parse_providers` (names present and unique), `secret` (inline or from an environment
//! variable) and a `Debug` that never shows a secret. Which keys each kind uses is checked
//! later, by `src/providers/settings.rs`.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::{REDACTED, redact_url};

/// One `[[providers]]` entry of the TOML file. Which keys a kind uses, and their defaults,
/// is checked by the providers module at start-up (docs/providers.md lists them). Its `Debug`
/// output redacts inline secrets.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub default: bool,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
    pub model: Option<String>,
    pub url: Option<String>,
    pub webhook_secret: Option<String>,
    pub webhook_secret_env: Option<String>,
    /// Optional system prompt sent before the history (OpenAI and webhook kinds).
    pub system_prompt: Option<String>,
    /// What the page's picker shows; default: a label for the kind.
    pub label: Option<String>,
    /// Seconds to wait for the first piece of a reply.
    pub first_delta_timeout_secs: Option<u64>,
    /// Seconds of silence allowed between two pieces of a reply.
    pub gap_timeout_secs: Option<u64>,
    /// Seconds a whole reply may take.
    pub reply_timeout_secs: Option<u64>,
    /// Retries of a failed request, made only before the first piece of the reply.
    pub retries: Option<u32>,
    /// The longest reply, in tokens (OpenAI kinds and the webhook protocol).
    pub max_tokens: Option<u32>,
    /// Which request field carries `max_tokens`: "max_tokens" (default) or
    /// "max_completion_tokens" (kind `openai`).
    pub max_tokens_field: Option<String>,
    /// Sampling temperature, 0 to 2.
    pub temperature: Option<f32>,
    /// At most this many of the latest turns are sent with each request.
    pub max_history_messages: Option<usize>,
    /// At most this many characters of history are sent (default 32,000).
    pub max_history_chars: Option<usize>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hide = |s: &Option<String>| s.as_ref().map(|_| REDACTED);
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("default", &self.default)
            .field("base_url", &self.base_url.as_deref().map(redact_url))
            .field("api_key", &hide(&self.api_key))
            .field("api_key_env", &self.api_key_env)
            .field("model", &self.model)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("webhook_secret", &hide(&self.webhook_secret))
            .field("webhook_secret_env", &self.webhook_secret_env)
            .field("system_prompt", &self.system_prompt)
            .field("label", &self.label)
            .field("first_delta_timeout_secs", &self.first_delta_timeout_secs)
            .field("gap_timeout_secs", &self.gap_timeout_secs)
            .field("reply_timeout_secs", &self.reply_timeout_secs)
            .field("retries", &self.retries)
            .field("max_tokens", &self.max_tokens)
            .field("max_tokens_field", &self.max_tokens_field)
            .field("temperature", &self.temperature)
            .field("max_history_messages", &self.max_history_messages)
            .field("max_history_chars", &self.max_history_chars)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    #[serde(default)]
    providers: Vec<ProviderConfig>,
}

impl ProviderConfig {
    /// The built-in offline provider, present even when the file does not list it.
    pub fn offline() -> Self {
        ProviderConfig {
            name: "offline".into(),
            kind: "offline".into(),
            ..ProviderConfig::default()
        }
    }

    /// The built-in simulated NLP service, reached through the webhook callback protocol;
    /// configured by default when no provider file is given.
    pub fn simulated() -> Self {
        ProviderConfig {
            name: "simulated".into(),
            kind: "simulated".into(),
            ..ProviderConfig::default()
        }
    }
}

/// Parses the `[[providers]]` list of a TOML file; names must be unique.
pub fn parse_providers(text: &str) -> Result<Vec<ProviderConfig>, ConfigError> {
    let file: ProviderFile =
        toml::from_str(text).map_err(|e| ConfigError::Invalid(format!("provider file: {e}")))?;
    let mut seen = std::collections::HashSet::new();
    for p in &file.providers {
        if p.name.trim().is_empty() {
            return Err(ConfigError::Provider {
                name: p.name.clone(),
                message: "`name` must not be empty".into(),
            });
        }
        if !seen.insert(p.name.as_str()) {
            return Err(ConfigError::Provider {
                name: p.name.clone(),
                message: "`name` is used by two entries".into(),
            });
        }
    }
    Ok(file.providers)
}

/// Reads a secret given either inline (`key`) or through an environment variable (`key_env`).
pub fn secret(
    entry: &ProviderConfig,
    inline: &Option<String>,
    env: &Option<String>,
    key: &str,
) -> Result<Option<String>, ConfigError> {
    if let Some(v) = inline {
        return Ok(Some(v.clone()));
    }
    match env {
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => Err(ConfigError::Provider {
                name: entry.name.clone(),
                message: format!("`{key}_env` names {var}, which is not set"),
            }),
        },
        None => Ok(None),
    }
}
