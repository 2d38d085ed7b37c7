//! Cluster mode: what several chatwire nodes share through Redis.
//!
//! A layer below the conversation actor and above the leaf types: it knows conversations
//! only by id and events only as numbered frame bytes, never the actor or the web layer.
//! - [`lease`]: who owns a conversation (one lease per conversation, fenced by a token).
//! - [`log`]: the numbered event log, one stream per conversation, appended by a script that
//!   checks the lease and the previous id and publishes the same frames live.
//! - [`bus`]: the node's one pub/sub connection (live frames, presence, forwarded commands),
//!   reconnecting on its own and telling its users when it did.
//! - [`relay`]: per conversation with local subscribers, the log turned back into an ordered
//!   feed with no gap (pub/sub is the hint, `XRANGE` the truth).
//! - [`rpc`]: requests to the node that owns a conversation, answered on the caller's channel.
//! - [`writer`]: the node's one log writer: its actors' turns, many conversations per
//!   script call, each fenced and answered on its own.
//! - [`sweeper`]: replying conversations by lease deadline, so a dead owner's reply is taken
//!   over even when nobody is connected.
//!
//! No blocking command is ever sent: a blocking read would stall the shared multiplexed
//! connection and trip its response timeout.

pub mod bus;
mod conn;
pub mod keys;
pub mod lease;
pub mod log;
pub mod metrics;
pub mod parked;
pub mod presence;
pub mod relay;
pub mod rpc;
pub mod sweeper;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

pub use bus::Bus;
pub use conn::Redis;
pub use lease::LeaseToken;
pub use log::{AppendError, LogFrame};
pub use metrics::ClusterMetrics;

/// Why a cluster operation did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// Redis did not answer (down, restarting, paused, or too slow).
    #[error("redis is unavailable")]
    Unavailable,
    /// The lease is held by someone else (or by nobody): the caller no longer owns it.
    #[error("the lease is no longer held")]
    Fenced,
    /// Nobody listens on the owning node's channel: it is gone.
    #[error("the owning node is gone")]
    NodeGone,
    /// No answer from the owning node in time.
    #[error("the owning node did not answer in time")]
    Timeout,
    /// The owning node answered that it cannot serve the request.
    #[error("remote: {0}")]
    Remote(String),
}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> Self {
        // The message may name the server address; only the kind is worth logging here.
        tracing::debug!(kind = ?e.kind(), "redis error");
        ClusterError::Unavailable
    }
}

/// How this node takes part in a cluster (from `--redis`, `--node-id`, `--lease-ms`).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub redis_url: String,
    pub node_id: String,
    pub lease: Duration,
}

/// Everything cluster-wide one node holds: its Redis connections, its pub/sub bus, its
/// relays and its request client. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    pub redis: Redis,
    pub node_id: Arc<str>,
    pub lease: Duration,
    pub bus: bus::Bus,
    pub relays: relay::Relays,
    pub rpc: rpc::Rpc,
    /// Appends the owners' turns (see [`writer`]).
    pub writer: writer::LogWriter,
    pub metrics: Arc<ClusterMetrics>,
}

impl Cluster {
    /// Connects (failing fast when Redis is not there) and starts the bus, whose task ends
    /// with `shutdown`.
    pub async fn start(
        config: &ClusterConfig,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(Cluster, rpc::Inbox), ClusterError> {
        let redis = Redis::connect(&config.redis_url).await?;
        let metrics = Arc::new(ClusterMetrics::default());
        let node_id: Arc<str> = config.node_id.as_str().into();
        let bus = bus::Bus::start(redis.client().clone(), shutdown.clone());
        bus.ready(Duration::from_secs(5)).await?;
        let relays = relay::Relays::new(
            redis.clone(),
            bus.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        let (rpc, inbox) = rpc::Rpc::start(
            redis.clone(),
            bus.clone(),
            node_id.clone(),
            metrics.clone(),
            shutdown,
        )
        .await?;
        Ok((
            Cluster {
                writer: writer::LogWriter::start(redis.clone()),
                redis,
                node_id,
                lease: config.lease,
                bus,
                relays,
                rpc,
                metrics,
            },
            inbox,
        ))
    }
}
