//! Configuration: what the server runs with (`Config`, `Limits`), resolved from the
//! command line ([`args`]) and the TOML file that names the NLP providers ([`providers`]).
//!
//! `Args` is what the operator types; `Config` is what the server runs with. Tests build a
//! `Config` directly with [`Config::for_tests`] so they never parse a command line.

mod args;
mod error;
mod jwt;
mod network;
mod providers;

use std::net::SocketAddr;
use std::time::Duration;

pub use args::Args;
pub use error::ConfigError;
pub use jwt::JwtConfig;
pub use network::{Cidr, Network};
pub use providers::{ProviderConfig, parse_providers, secret};

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
    /// Where NLP services send callbacks; `None`: `http://` + the bound address.
    pub public_url: Option<String>,
    /// Cluster mode (`--redis`): `None` on a single node.
    pub cluster: Option<ClusterOptions>,
    /// Connection timeouts and caps, trusted proxies, accepted hosts.
    pub network: Network,
    /// JWT owners (`--jwt-*`): `None` when no key is configured.
    pub jwt: Option<JwtConfig>,
}

/// How this node joins a cluster.
#[derive(Clone)]
pub struct ClusterOptions {
    pub redis_url: String,
    pub node_id: String,
    pub lease: Duration,
}

/// The host name (or `node`) and a random suffix: unique enough for a default node id.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    crate::ids::prefixed(&format!("{host}-"), 4)
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
            .field("network", &self.network)
            .field("idle_timeout", &self.idle_timeout)
            .field("keepalive", &self.keepalive)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("public_url", &self.public_url.as_deref().map(redact_url))
            .field(
                "redis",
                &self.cluster.as_ref().map(|c| redact_url(&c.redis_url)),
            )
            .field("jwt", &self.jwt)
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
    /// Conversations one owner may create per minute (0 = no limit).
    pub owner_conversations_per_minute: u32,
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
    /// Longest a reply may run before it ends with `reply.failed`.
    pub max_reply_duration: Duration,
    /// Largest reply text (bytes) before it ends with `reply.failed`.
    pub max_reply_bytes: usize,
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
            owner_conversations_per_minute: 20,
            max_conversations: 10_000,
            max_subscribers: 32,
            rate_limit_keys: 100_000,
            max_webhook_bytes: 1024 * 1024,
            ws_ping: Duration::from_secs(25),
            max_reply_duration: Duration::from_secs(600),
            max_reply_bytes: 1024 * 1024,
        }
    }
}

/// Shown instead of a secret in `Debug` output.
const REDACTED: &str = "[redacted]";

/// A URL with any `user:password@` part replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://{REDACTED}@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Config {
    /// Resolves the command line and reads the provider file, if any.
    pub fn from_args(args: Args) -> Result<Self, ConfigError> {
        let mut providers = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::Invalid(format!("cannot read {}: {e}", path.display()))
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
            return Err(ConfigError::Invalid(format!(
                "--max-body-bytes ({}) must be at least --max-message-bytes ({})",
                args.max_body_bytes, args.max_message_bytes
            )));
        }
        if args.max_conversations == 0 || args.max_subscribers == 0 {
            return Err(ConfigError::Invalid(
                "--max-conversations and --max-subscribers must be at least 1".into(),
            ));
        }
        let limits = Limits {
            max_message_bytes: args.max_message_bytes,
            max_body_bytes: args.max_body_bytes,
            messages_per_minute: args.messages_per_minute,
            requests_per_minute: args.requests_per_minute,
            owner_conversations_per_minute: args.owner_conversations_per_minute,
            max_conversations: args.max_conversations,
            max_subscribers: args.max_subscribers,
            ws_ping: Duration::from_secs(args.ws_ping_secs.max(1)),
            max_reply_duration: Duration::from_secs(args.max_reply_secs.max(1)),
            max_reply_bytes: args.max_reply_bytes.max(1),
            ..Limits::default()
        };
        let network = Network {
            header_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
            max_connections: args.max_connections,
            max_connections_per_address: args.max_connections_per_address,
            max_streams_per_address: args.max_streams_per_address,
            trusted_proxies: args
                .trusted_proxies
                .iter()
                .filter(|t| !t.trim().is_empty())
                .map(|t| Cidr::parse(t))
                .collect::<Result<_, _>>()?,
            allowed_hosts: args
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        };
        // Every node shares the database, and the epoch fencing needs its row locks.
        let postgres = ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| args.db.starts_with(scheme));
        if args.redis.is_some() && !postgres {
            return Err(ConfigError::Invalid(
                "--redis (cluster mode) needs a PostgreSQL --db (postgres://…) every node shares"
                    .into(),
            ));
        }
        const REDIS_SCHEMES: [&str; 4] = ["redis://", "rediss://", "redis+unix://", "unix://"];
        if let Some(url) = &args.redis
            && !REDIS_SCHEMES.iter().any(|scheme| url.starts_with(scheme))
        {
            return Err(ConfigError::Invalid(
                "--redis must be a redis://, rediss:// (TLS), redis+unix:// or unix:// URL".into(),
            ));
        }
        if args.lease_ms < 300 {
            return Err(ConfigError::Invalid(
                "--lease-ms must be at least 300".into(),
            ));
        }
        let jwt = jwt_config(&args)?;
        let cluster = args.redis.map(|redis_url| ClusterOptions {
            redis_url,
            node_id: args.node_id.unwrap_or_else(default_node_id),
            lease: Duration::from_millis(args.lease_ms),
        });
        Ok(Config {
            jwt,
            cluster,
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
            network,
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
                owner_conversations_per_minute: 1_000_000,
                ..Limits::default()
            },
            idle_timeout: Duration::from_secs(300),
            keepalive: Duration::from_secs(15),
            shutdown_timeout: Duration::from_secs(5),
            public_url: None,
            cluster: None,
            network: Network::default(),
            jwt: None,
        }
    }

    /// Is the public URL https (so cookies are `Secure` and `__Host-` prefixed)?
    pub fn https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

/// Reads the JWT options: the secret from the named environment variable, the key file.
fn jwt_config(args: &Args) -> Result<Option<JwtConfig>, ConfigError> {
    let secret = match &args.jwt_secret_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            ConfigError::Invalid(format!(
                "--jwt-secret-env: the environment variable `{var}` is not set"
            ))
        })?),
        None => None,
    };
    let pem = match &args.jwt_public_key {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            ConfigError::Invalid(format!(
                "--jwt-public-key: cannot read {}: {e}",
                path.display()
            ))
        })?),
        None => None,
    };
    JwtConfig::new(
        secret.as_deref().map(str::as_bytes),
        pem.as_deref(),
        args.jwt_issuer.clone(),
        args.jwt_audience.clone(),
    )
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
}
