//! Configuration: command-line options (each with an environment variable) and the TOML
//! file that names the NLP providers.
//!
//! `Args` is what the operator types; `Config` is what the server runs with. Tests build a
//! `Config` directly with [`Config::for_tests`] so they never parse a command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::error::StartupError;
use crate::providers::Provider;

/// chatwire: a chatbot streaming backend. Webhooks in from NLP providers, Server-Sent Events
/// out to the browser, a WebSocket for typing and interrupting, one actor per conversation.
///
/// With no options and no network it serves the chat page on http://127.0.0.1:3000 with the
/// built-in offline demo bot.
#[derive(Debug, Clone, Parser)]
#[command(name = "chatwire", version, about, long_about)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "CHATWIRE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Where conversations are kept: a SQLite URL. `sqlite::memory:` keeps nothing.
    #[arg(long, env = "CHATWIRE_DB", default_value = "sqlite://chatwire.db")]
    pub db: String,

    /// Pause between the offline provider's tokens, in milliseconds (0 = as fast as possible).
    #[arg(long, env = "CHATWIRE_OFFLINE_DELAY_MS", default_value_t = 30)]
    pub offline_delay_ms: u64,

    /// TOML file naming the NLP providers (see docs/providers.md).
    #[arg(long, env = "CHATWIRE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Extra origins allowed to open WebSockets and to post with the cookie
    /// (comma-separated, e.g. `https://chat.example.com`). The server's own origin is always allowed.
    #[arg(long, env = "CHATWIRE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Largest message text accepted, in bytes (413 beyond it).
    #[arg(long, env = "CHATWIRE_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024)]
    pub max_message_bytes: usize,

    /// Largest request body accepted, in bytes (413 beyond it). At least --max-message-bytes.
    #[arg(long, env = "CHATWIRE_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Messages one conversation may post per minute (429 with Retry-After beyond it;
    /// a token bucket: a burst of this many, refilled evenly over a minute). 0 = no limit.
    #[arg(long, env = "CHATWIRE_MESSAGES_PER_MINUTE", default_value_t = 30)]
    pub messages_per_minute: u32,

    /// Requests one client address (an IPv4 address or an IPv6 /64) may make per minute
    /// (429 with Retry-After beyond it; `/healthz` and the signed `/webhooks/*` are exempt).
    /// 0 = no limit. Behind a reverse proxy every client shares the proxy's address: raise
    /// this or turn it off there.
    #[arg(long, env = "CHATWIRE_REQUESTS_PER_MINUTE", default_value_t = 600)]
    pub requests_per_minute: u32,

    /// Conversations kept in memory at once. When full, idle ones are put to sleep (they
    /// come back from storage on demand); if none is idle, new work gets 503 with Retry-After.
    #[arg(long, env = "CHATWIRE_MAX_CONVERSATIONS", default_value_t = 10_000)]
    pub max_conversations: usize,

    /// Open event streams (SSE) and WebSockets one conversation may have at once, together
    /// (429 with Retry-After beyond it). A browser tab uses one of each.
    #[arg(long, env = "CHATWIRE_MAX_SUBSCRIBERS", default_value_t = 32)]
    pub max_subscribers: usize,

    /// Seconds a conversation actor with no reply running and no subscriber stays in memory.
    #[arg(long, env = "CHATWIRE_IDLE_SECS", default_value_t = 300)]
    pub idle_secs: u64,

    /// Seconds between SSE keep-alive comments.
    #[arg(long, env = "CHATWIRE_KEEPALIVE_SECS", default_value_t = 15)]
    pub keepalive_secs: u64,

    /// Seconds between WebSocket pings; a peer that answers nothing for two of them is dropped.
    #[arg(long, env = "CHATWIRE_WS_PING_SECS", default_value_t = 25)]
    pub ws_ping_secs: u64,

    /// Seconds a graceful shutdown (SIGTERM or Ctrl-C) may take in all: conversations store
    /// their replies in progress, streams end, connections close; then the process exits.
    #[arg(long, env = "CHATWIRE_SHUTDOWN_SECS", default_value_t = 10)]
    pub shutdown_secs: u64,

    /// The base URL at which NLP services reach this server's webhook routes (e.g.
    /// `https://chat.example.com`); default: `http://` and the address it listens on.
    #[arg(long, env = "CHATWIRE_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// What the server runs with, resolved from [`Args`] and the provider file.
/// Its `Debug` output is safe to log: provider secrets and database passwords are redacted.
#[derive(Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub db: String,
    pub offline_delay: Duration,
    pub providers: Vec<ProviderConfig>,
    pub allowed_origins: Vec<String>,
    pub limits: Limits,
    pub idle_timeout: Duration,
    pub keepalive: Duration,
    pub shutdown_timeout: Duration,
    /// Providers built in Rust code rather than named in the TOML file (a program that
    /// embeds chatwire, or a test); listed after the configured ones.
    pub extra_providers: ExtraProviders,
    /// Where NLP services send callbacks; `None`: `http://` + the bound address.
    pub public_url: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("db", &redact_url(&self.db))
            .field("offline_delay", &self.offline_delay)
            .field("providers", &self.providers)
            .field("allowed_origins", &self.allowed_origins)
            .field("limits", &self.limits)
            .field("idle_timeout", &self.idle_timeout)
            .field("keepalive", &self.keepalive)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("extra_providers", &self.extra_providers)
            .field("public_url", &self.public_url.as_deref().map(redact_url))
            .finish()
    }
}

/// Providers made in code; `Debug` shows their names only.
#[derive(Clone, Default)]
pub struct ExtraProviders(pub Vec<Arc<dyn Provider>>);

impl std::fmt::Debug for ExtraProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|p| &p.info().name))
            .finish()
    }
}

/// Bounds on what one client or conversation may use.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_body_bytes: usize,
    /// Events kept for resumes (at least this many; the reply in progress is always kept whole).
    pub replay_events: usize,
    /// Slots of a conversation's live broadcast; a reader further behind re-subscribes
    /// from the replay log (nothing is skipped). Each slot costs ~64 bytes per live
    /// conversation, allocated up front; 128 covers one actor turn of a flat-out reply
    /// (tokio's cooperative budget), so fast readers rarely need to re-subscribe.
    pub broadcast_capacity: usize,
    /// Commands waiting for one conversation actor.
    pub mailbox: usize,
    /// Messages per conversation per minute (0 = no limit).
    pub messages_per_minute: u32,
    /// Requests per client address per minute (0 = no limit).
    pub requests_per_minute: u32,
    /// Conversation actors in memory at once.
    pub max_conversations: usize,
    /// SSE streams and WebSocket sessions per conversation, together (each takes a place
    /// through `ConversationHandle::try_watch`).
    pub max_subscribers: usize,
    /// Client addresses (or conversations) a rate limiter remembers at once; beyond it
    /// the ones that are back to a full allowance, then the least recent, are forgotten.
    pub rate_limit_keys: usize,
    /// Largest webhook body accepted on `/webhooks/*`.
    pub max_webhook_bytes: usize,
    /// Time between WebSocket pings; silence for two of them closes the socket.
    pub ws_ping: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            replay_events: 1000,
            broadcast_capacity: 128,
            mailbox: 256,
            messages_per_minute: 30,
            requests_per_minute: 600,
            max_conversations: 10_000,
            max_subscribers: 32,
            rate_limit_keys: 100_000,
            max_webhook_bytes: 1024 * 1024,
            ws_ping: Duration::from_secs(25),
        }
    }
}

/// One `[[providers]]` entry of the TOML file. Which keys a kind uses, and their defaults,
/// is checked by `crate::providers` at start-up (docs/providers.md lists them). Its `Debug`
/// output redacts inline secrets.
#[derive(Clone, Default, Deserialize, PartialEq)]
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
}

/// Shown instead of a secret in `Debug` output.
const REDACTED: &str = "[redacted]";

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
            .finish()
    }
}

/// A URL with any `user:password@` part replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://{REDACTED}@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
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

impl Config {
    /// Resolves the command line and reads the provider file, if any.
    pub fn from_args(args: Args) -> Result<Self, StartupError> {
        let mut providers = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    StartupError::Config(format!("cannot read {}: {e}", path.display()))
                })?;
                parse_providers(&text)?
            }
            // No file: the offline bot, and the simulated NLP service to show webhooks.
            None => vec![ProviderConfig::simulated()],
        };
        if !providers.iter().any(|p| p.kind == "offline") {
            providers.insert(0, ProviderConfig::offline());
        }
        if args.max_body_bytes < args.max_message_bytes {
            return Err(StartupError::Config(format!(
                "--max-body-bytes ({}) must be at least --max-message-bytes ({})",
                args.max_body_bytes, args.max_message_bytes
            )));
        }
        if args.max_conversations == 0 || args.max_subscribers == 0 {
            return Err(StartupError::Config(
                "--max-conversations and --max-subscribers must be at least 1".into(),
            ));
        }
        let limits = Limits {
            max_message_bytes: args.max_message_bytes,
            max_body_bytes: args.max_body_bytes,
            messages_per_minute: args.messages_per_minute,
            requests_per_minute: args.requests_per_minute,
            max_conversations: args.max_conversations,
            max_subscribers: args.max_subscribers,
            ws_ping: Duration::from_secs(args.ws_ping_secs.max(1)),
            ..Limits::default()
        };
        Ok(Config {
            addr: args.addr,
            db: args.db,
            offline_delay: Duration::from_millis(args.offline_delay_ms),
            providers,
            allowed_origins: args.allowed_origins,
            limits,
            idle_timeout: Duration::from_secs(args.idle_secs),
            keepalive: Duration::from_secs(args.keepalive_secs.max(1)),
            shutdown_timeout: Duration::from_secs(args.shutdown_secs),
            extra_providers: ExtraProviders::default(),
            public_url: args.public_url,
        })
    }

    /// A config for tests: port 0, in-memory database, no delay, only the offline provider,
    /// and rate limits so generous that only tests about limits (which set small ones) meet them.
    pub fn for_tests() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: "sqlite::memory:".into(),
            offline_delay: Duration::ZERO,
            providers: vec![ProviderConfig::offline()],
            allowed_origins: Vec::new(),
            limits: Limits {
                messages_per_minute: 1_000_000,
                requests_per_minute: 1_000_000,
                ..Limits::default()
            },
            idle_timeout: Duration::from_secs(300),
            keepalive: Duration::from_secs(15),
            shutdown_timeout: Duration::from_secs(5),
            extra_providers: ExtraProviders::default(),
            public_url: None,
        }
    }
}

/// Parses the `[[providers]]` list of a TOML file; names must be unique.
pub fn parse_providers(text: &str) -> Result<Vec<ProviderConfig>, StartupError> {
    let file: ProviderFile =
        toml::from_str(text).map_err(|e| StartupError::Config(format!("provider file: {e}")))?;
    let mut seen = std::collections::HashSet::new();
    for p in &file.providers {
        if p.name.trim().is_empty() {
            return Err(StartupError::Provider {
                name: p.name.clone(),
                message: "`name` must not be empty".into(),
            });
        }
        if !seen.insert(p.name.as_str()) {
            return Err(StartupError::Provider {
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
) -> Result<Option<String>, StartupError> {
    if let Some(v) = inline {
        return Ok(Some(v.clone()));
    }
    match env {
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => Err(StartupError::Provider {
                name: entry.name.clone(),
                message: format!("`{key}_env` names {var}, which is not set"),
            }),
        },
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let mut p = ProviderConfig::offline();
        p.api_key = Some("sk-very-secret".into());
        p.webhook_secret = Some("whsec_also_secret".into());
        p.base_url = Some("https://user:pw@api.example.com/v1".into());
        let mut c = Config::for_tests();
        c.providers.push(p);
        c.db = "postgres://app:hunter2@db/chat".into();
        let shown = format!("{c:?}");
        for secret in ["sk-very-secret", "whsec_also_secret", "hunter2", ":pw@"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("[redacted]"));
        assert!(shown.contains("api.example.com"));
    }

    #[test]
    fn every_limit_is_an_option_with_an_env_var() {
        let args = Args::try_parse_from([
            "chatwire",
            "--max-body-bytes",
            "5000",
            "--max-message-bytes",
            "4000",
            "--messages-per-minute",
            "7",
            "--requests-per-minute",
            "0",
            "--max-conversations",
            "9",
            "--max-subscribers",
            "3",
        ])
        .unwrap();
        let c = Config::from_args(args).unwrap();
        assert_eq!(c.limits.max_body_bytes, 5000);
        assert_eq!(c.limits.messages_per_minute, 7);
        assert_eq!(c.limits.requests_per_minute, 0);
        assert_eq!(c.limits.max_conversations, 9);
        assert_eq!(c.limits.max_subscribers, 3);
        let bad = Args::try_parse_from(["chatwire", "--max-body-bytes", "10"]).unwrap();
        assert!(
            Config::from_args(bad).is_err(),
            "body smaller than a message"
        );
        let help = <Args as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        for env in [
            "CHATWIRE_MAX_BODY_BYTES",
            "CHATWIRE_MESSAGES_PER_MINUTE",
            "CHATWIRE_REQUESTS_PER_MINUTE",
            "CHATWIRE_MAX_CONVERSATIONS",
            "CHATWIRE_MAX_SUBSCRIBERS",
        ] {
            assert!(help.contains(env), "{env} in --help");
        }
    }
}
