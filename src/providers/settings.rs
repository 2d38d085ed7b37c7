//! Checking one `[[providers]]` entry: which keys its kind uses, which it needs, and the
//! defaults of the others. A wrong entry stops start-up with a message naming the entry
//! and the key (`ConfigError::Provider`).
//!
//! Each kind declares its keys once, as a struct (see `kinds.rs`); [`Check::keys`] reads an
//! entry into it and refuses any key the struct does not have. A new key is a field there
//! (and in `ProviderConfig`, the TOML schema).

use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

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

    /// The entry's kind-specific keys as the kind's struct `T`. A key set in the entry that
    /// `T` does not have is refused (a typo or a misplaced key would otherwise be silently
    /// ignored); the keys every kind accepts (`COMMON`) are read by `Check` itself.
    pub fn keys<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.read(fields_of::<T>())
    }

    /// The entry's kind-specific keys as `T`, refusing any key not in `known`.
    fn read<T: DeserializeOwned>(&self, known: &[&str]) -> Result<T, ConfigError> {
        // Not serde's message: it may quote a value, and values may be secrets.
        let unreadable = |_| self.error("a key has a value of the wrong type");
        let serde_json::Value::Object(mut set) =
            serde_json::to_value(self.entry).map_err(unreadable)?
        else {
            return Err(self.error("cannot read the entry"));
        };
        set.retain(|key, value| {
            !value.is_null()
                && !matches!(key.as_str(), "name" | "kind" | "default")
                && !COMMON.contains(&key.as_str())
        });
        if let Some(key) = set.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(self.error(format!("`{key}` is not used by kind `{}`", self.entry.kind)));
        }
        serde_json::from_value(serde_json::Value::Object(set)).map_err(unreadable)
    }

    /// Like [`Check::keys`], for a kind that sends the conversation: the generation keys
    /// (`GenerationKeys`) are accepted besides `T`'s, and checked into a [`Generation`].
    pub fn keys_generating<T: DeserializeOwned>(&self) -> Result<(T, Generation), ConfigError> {
        let known = [fields_of::<T>(), fields_of::<GenerationKeys>()].concat();
        let keys: T = self.read(&known)?;
        let generation: GenerationKeys = self.read(&known)?;
        Ok((keys, self.generation(generation)?))
    }

    fn generation(&self, g: GenerationKeys) -> Result<Generation, ConfigError> {
        let at_least_one = |key: &str, v: Option<usize>| match v {
            Some(0) => Err(self.error(format!("`{key}` must be at least 1"))),
            v => Ok(v),
        };
        if g.max_tokens == Some(0) {
            return Err(self.error("`max_tokens` must be at least 1"));
        }
        if let Some(t) = g.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(self.error("`temperature` must be between 0 and 2"));
        }
        Ok(Generation {
            max_tokens: g.max_tokens,
            token_field: TokenField::default(),
            temperature: g.temperature,
            history: HistoryLimit {
                max_messages: at_least_one("max_history_messages", g.max_history_messages)?,
                max_chars: at_least_one("max_history_chars", g.max_history_chars)?
                    .unwrap_or(DEFAULT_MAX_HISTORY_CHARS),
            },
        })
    }

    /// `max_tokens_field`: which request field carries `max_tokens` (kind `openai`).
    pub fn token_field(&self, value: &Option<String>) -> Result<TokenField, ConfigError> {
        match value.as_deref() {
            None => Ok(TokenField::default()),
            Some(f) => TokenField::parse(f).ok_or_else(|| {
                self.error(format!(
                    "`max_tokens_field` must be \"max_tokens\" or \"max_completion_tokens\", not \"{f}\""
                ))
            }),
        }
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
    pub fn api_key(
        &self,
        inline: &Option<String>,
        env: &Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        let key = secret(self.entry, inline, env, "api_key")?;
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
    pub fn webhook_secret(
        &self,
        inline: &Option<String>,
        env: &Option<String>,
    ) -> Result<Option<Secret>, ConfigError> {
        let text = secret(self.entry, inline, env, "webhook_secret")?;
        text.map(|t| Secret::parse(&t).map_err(|e| self.error(format!("`webhook_secret` {e}"))))
            .transpose()
    }

    /// A webhook secret that the kind cannot work without.
    pub fn required_webhook_secret(
        &self,
        inline: &Option<String>,
        env: &Option<String>,
    ) -> Result<Secret, ConfigError> {
        self.webhook_secret(inline, env)?.ok_or_else(|| {
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

    pub fn retry(&self, retries: Option<u32>) -> Result<RetryPolicy, ConfigError> {
        match retries {
            Some(n) if n > 5 => Err(self.error("`retries` must be at most 5")),
            n => Ok(RetryPolicy {
                retries: n.unwrap_or(1),
                ..RetryPolicy::default()
            }),
        }
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

/// The generation keys, for the kinds that send a conversation (`keys_generating`).
#[derive(Deserialize)]
struct GenerationKeys {
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    max_history_messages: Option<usize>,
    max_history_chars: Option<usize>,
}

/// The field names of struct `T`, as its `Deserialize` asks for them.
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names = FieldNames(&[]);
    let _ = T::deserialize(&mut names);
    names.0
}

/// A deserializer that only records the fields a struct asks for, then gives up.
struct FieldNames(&'static [&'static str]);

impl<'de> Deserializer<'de> for &mut FieldNames {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}
