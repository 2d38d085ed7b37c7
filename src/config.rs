//! Configuration: command-line options (each with an environment variable) and the TOML
//! file that names the NLP providers.
//!
//! `Args` is what the operator types; `Config` is what the server runs with. Tests build a
//! `Config` directly with [`Config::for_tests`] so they never parse a command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::error::StartupError;

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

    /// Largest message text accepted, in bytes.
    #[arg(long, env = "CHATWIRE_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024)]
    pub max_message_bytes: usize,

    /// Seconds a conversation actor with no reply running and no subscriber stays in memory.
    #[arg(long, env = "CHATWIRE_IDLE_SECS", default_value_t = 300)]
    pub idle_secs: u64,

    /// Seconds between SSE keep-alive comments.
    #[arg(long, env = "CHATWIRE_KEEPALIVE_SECS", default_value_t = 15)]
    pub keepalive_secs: u64,

    /// Seconds that shutdown waits for conversations to store their state.
    #[arg(long, env = "CHATWIRE_SHUTDOWN_SECS", default_value_t = 10)]
    pub shutdown_secs: u64,

    /// The base URL at which NLP services reach this server's webhook routes (e.g.
    /// `https://chat.example.com`); default: `http://` and the address it listens on.
    #[arg(long, env = "CHATWIRE_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// What the server runs with, resolved from [`Args`] and the provider file.
#[derive(Debug, Clone)]
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
    /// Where NLP services send callbacks; `None`: `http://` + the bound address.
    pub public_url: Option<String>,
}

/// Bounds on what one client or conversation may use.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_body_bytes: usize,
    /// Events kept for resumes (at least this many; the reply in progress is always kept whole).
    pub replay_events: usize,
    /// Slots of a conversation's live broadcast; a reader further behind re-subscribes.
    pub broadcast_capacity: usize,
    /// Commands waiting for one conversation actor.
    pub mailbox: usize,
    /// Largest webhook body accepted on `/webhooks/*`.
    pub max_webhook_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            replay_events: 1000,
            broadcast_capacity: 512,
            mailbox: 256,
            max_webhook_bytes: 1024 * 1024,
        }
    }
}

/// One `[[providers]]` entry of the TOML file. Which keys a kind uses, and their defaults,
/// is checked by `crate::providers` at start-up (docs/providers.md lists them).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
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
        let limits = Limits {
            max_message_bytes: args.max_message_bytes,
            max_body_bytes: (args.max_message_bytes * 4).max(64 * 1024),
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
            public_url: args.public_url,
        })
    }

    /// A config for tests: port 0, in-memory database, no delay, only the offline provider.
    pub fn for_tests() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: "sqlite::memory:".into(),
            offline_delay: Duration::ZERO,
            providers: vec![ProviderConfig::offline()],
            allowed_origins: Vec::new(),
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(300),
            keepalive: Duration::from_secs(15),
            shutdown_timeout: Duration::from_secs(5),
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
