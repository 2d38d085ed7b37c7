//! The command line: `Args`, every option with a `CHATWIRE_*` environment variable and a
//! default, as clap parses it. [`Config::from_args`](super::Config::from_args) turns it into
//! the `Config` the server runs with; nothing else reads `Args`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

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

    /// Cluster mode: the Redis shared by every node (`redis://host:port`, or
    /// `redis+unix:///path/to/redis.sock`). Needs a database every node shares.
    #[arg(long, env = "CHATWIRE_REDIS_URL")]
    pub redis: Option<String>,

    /// This node's name in the cluster (default: the host name and a random suffix).
    #[arg(long, env = "CHATWIRE_NODE_ID")]
    pub node_id: Option<String>,

    /// How long a conversation owned by a node that died stays unowned, in milliseconds.
    #[arg(long, env = "CHATWIRE_LEASE_MS", default_value_t = 6000)]
    pub lease_ms: u64,

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

    /// Seconds a connection may take to send a complete request head (and may sit idle
    /// between requests); then it is closed. Also bounds a request body that stalls.
    #[arg(long, env = "CHATWIRE_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,

    /// Open connections from one client address at once (0 = no limit); beyond it a new
    /// connection gets 429 and is closed.
    #[arg(
        long,
        env = "CHATWIRE_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256
    )]
    pub max_connections_per_address: usize,

    /// Open connections in all (0 = no limit); beyond it a new connection gets 503 and is closed.
    #[arg(long, env = "CHATWIRE_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,

    /// Open event streams and WebSockets one client address may hold at once, over all
    /// conversations (0 = no limit; 429 beyond it), so one client cannot pin every
    /// conversation in memory.
    #[arg(long, env = "CHATWIRE_MAX_STREAMS_PER_ADDRESS", default_value_t = 128)]
    pub max_streams_per_address: usize,

    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` header names the client
    /// (comma-separated CIDRs, e.g. `10.0.0.0/8,127.0.0.1/32`). Without it the peer address
    /// is the client and those headers are ignored.
    #[arg(long, env = "CHATWIRE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Host names (or host:port) accepted in the `Host` header besides the public URL's
    /// host, the listen address and, when bound to loopback, localhost (421 otherwise).
    #[arg(long, env = "CHATWIRE_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Longest a reply may run, in seconds; past it the reply ends with `reply.failed`.
    #[arg(long, env = "CHATWIRE_MAX_REPLY_SECS", default_value_t = 600)]
    pub max_reply_secs: u64,

    /// Largest reply text, in bytes; past it the reply ends with `reply.failed`.
    #[arg(long, env = "CHATWIRE_MAX_REPLY_BYTES", default_value_t = 1024 * 1024)]
    pub max_reply_bytes: usize,
    /// Conversations one owner (a browser session or a JWT's user) may create per minute
    /// (429 with Retry-After beyond it), beside the per-address limits. 0 = no limit.
    #[arg(
        long,
        env = "CHATWIRE_OWNER_CONVERSATIONS_PER_MINUTE",
        default_value_t = 20
    )]
    pub owner_conversations_per_minute: u32,

    /// Accept JWTs signed with HS256 by the secret in this environment variable (its name,
    /// not the secret; at least 32 bytes). `Authorization: Bearer JWT` then acts as `sub`.
    #[arg(long, env = "CHATWIRE_JWT_SECRET_ENV")]
    pub jwt_secret_env: Option<String>,

    /// Accept JWTs signed by this public key (PEM file; RSA: RS256, EC P-256: ES256).
    #[arg(long, env = "CHATWIRE_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// When set, a JWT's `iss` must be exactly this.
    #[arg(long, env = "CHATWIRE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// When set, a JWT's `aud` must contain this.
    #[arg(long, env = "CHATWIRE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn jwt_options_read_the_secret_from_the_named_variable_and_check_the_key() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["chatwire"];
            argv.extend_from_slice(extra);
            Config::from_args(Args::try_parse_from(argv).unwrap())
        };
        let missing = parse(&["--jwt-secret-env", "CHATWIRE_TEST_NO_SUCH_VARIABLE"]);
        assert!(missing.unwrap_err().to_string().contains("not set"));
        let not_pem = parse(&["--jwt-public-key", "Cargo.toml"]);
        assert!(
            not_pem
                .unwrap_err()
                .to_string()
                .contains("--jwt-public-key")
        );
        let pem = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/keys/ec_public.pem");
        let ok = parse(&["--jwt-public-key", pem, "--jwt-audience", "app"]).unwrap();
        let shown = format!("{:?}", ok.jwt);
        assert!(shown.contains("ES256") && shown.contains("app"), "{shown}");
        let orphan = parse(&["--jwt-issuer", "x"]);
        assert!(orphan.is_err(), "an issuer without a key");
        assert!(parse(&[]).unwrap().jwt.is_none());
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
            "--header-timeout-secs",
            "2",
            "--max-connections-per-address",
            "0",
            "--trusted-proxies",
            "10.0.0.0/8,::1",
            "--allowed-hosts",
            "Chat.Example.com",
            "--max-reply-secs",
            "60",
            "--max-reply-bytes",
            "1000",
        ])
        .unwrap();
        let c = Config::from_args(args).unwrap();
        assert_eq!(c.limits.max_body_bytes, 5000);
        assert_eq!(c.limits.messages_per_minute, 7);
        assert_eq!(c.limits.requests_per_minute, 0);
        assert_eq!(c.limits.max_conversations, 9);
        assert_eq!(c.limits.max_subscribers, 3);
        assert_eq!(c.network.header_timeout, std::time::Duration::from_secs(2));
        assert_eq!(c.network.max_connections_per_address, 0);
        assert_eq!(c.network.trusted_proxies.len(), 2);
        assert_eq!(c.network.allowed_hosts, ["chat.example.com"]);
        assert_eq!(c.limits.max_reply_duration.as_secs(), 60);
        assert_eq!(c.limits.max_reply_bytes, 1000);
        let bad = Args::try_parse_from(["chatwire", "--trusted-proxies", "10.0.0.0/99"]).unwrap();
        assert!(Config::from_args(bad).is_err(), "a bad CIDR");
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
            "CHATWIRE_HEADER_TIMEOUT_SECS",
            "CHATWIRE_MAX_CONNECTIONS_PER_ADDRESS",
            "CHATWIRE_MAX_CONNECTIONS",
            "CHATWIRE_MAX_STREAMS_PER_ADDRESS",
            "CHATWIRE_TRUSTED_PROXIES",
            "CHATWIRE_ALLOWED_HOSTS",
            "CHATWIRE_MAX_REPLY_SECS",
            "CHATWIRE_MAX_REPLY_BYTES",
        ] {
            assert!(help.contains(env), "{env} in --help");
        }
    }
}
