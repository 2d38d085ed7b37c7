//! The node's shared Redis connection: one multiplexed connection that reconnects by
//! itself, with short timeouts so an unreachable Redis turns into a quick 503 rather than a
//! hung request. Pub/sub has its own connection ([`super::bus`]).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::ClusterError;

/// How long one command may take before Redis counts as unavailable. Above redis-rs's
/// 500 ms default: a busy machine must not read as an outage. No command sent is blocking.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A cheap, cloneable handle to Redis.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    conn: ConnectionManager,
}

impl Redis {
    /// Opens `url` (`redis://`, `rediss://` — TLS, the server's certificate checked against
    /// the system's roots or those in `SSL_CERT_FILE` —, `redis+unix:///path` or
    /// `unix:///path`) and checks that the server answers.
    pub async fn connect(url: &str) -> Result<Redis, ClusterError> {
        let client = redis::Client::open(url).map_err(|e| {
            tracing::warn!(kind = ?e.kind(), "bad redis url");
            ClusterError::Unavailable
        })?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| {
                // Why the first connection failed (refused, TLS: an untrusted certificate…);
                // redis-rs errors name neither the URL nor its password.
                tracing::warn!(kind = ?e.kind(), error = %e, "cannot connect to redis");
                ClusterError::from(e)
            })?;
        Ok(Redis { client, conn })
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The shared connection (clones share one socket; commands are pipelined in order).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// `PING`, for `/healthz`.
    pub async fn ping(&self) -> Result<(), ClusterError> {
        let mut c = self.conn();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }
}
