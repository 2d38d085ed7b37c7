//! The ownership lease of a conversation: `SET cw:{c}:lease "<token>:<node>" NX PX ms`.
//!
//! Renewal and release are scripts that first check the value is still the caller's token,
//! so a node whose lease lapsed (and was taken by another) cannot extend or delete the new
//! holder's. Redis's clock alone decides expiry; node clocks never matter. Renewal also
//! keeps the conversation's entry in [`super::keys::REPLYING`] while a reply runs, so the
//! sweeper finds it when the renewals stop.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;

use super::{ClusterError, Redis, keys};

/// Proof of holding one conversation's lease: the exact value stored in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseToken(Arc<str>);

impl LeaseToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The node that holds the lease.
    pub fn node(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, node)| node)
    }
}

static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[4] == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3])
else
  redis.call('ZREM', KEYS[2], ARGV[3])
end
return 1",
    )
});

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1",
    )
});

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Takes the lease of `conversation` for `node` if nobody holds it.
pub async fn acquire(
    redis: &Redis,
    conversation: &str,
    node: &str,
    ttl: Duration,
) -> Result<Option<LeaseToken>, ClusterError> {
    let value = format!("{}:{node}", crate::ids::prefixed("l", 12));
    let set: Option<String> = redis::cmd("SET")
        .arg(keys::lease(conversation))
        .arg(&value)
        .arg("NX")
        .arg("PX")
        .arg(millis(ttl))
        .query_async(&mut redis.conn())
        .await?;
    Ok(set.map(|_| LeaseToken(value.into())))
}

/// The current holder's node, if anyone holds the lease.
pub async fn holder(redis: &Redis, conversation: &str) -> Result<Option<String>, ClusterError> {
    let value: Option<String> = redis::cmd("GET")
        .arg(keys::lease(conversation))
        .query_async(&mut redis.conn())
        .await?;
    Ok(value.map(|v| LeaseToken(v.into()).node().to_owned()))
}

/// Extends the lease by `ttl`; `Err(Fenced)` when it is no longer ours. `replying` keeps
/// (or removes) the conversation in the sweeper's set with the new deadline.
pub async fn renew(
    redis: &Redis,
    conversation: &str,
    token: &LeaseToken,
    ttl: Duration,
    replying: bool,
) -> Result<(), ClusterError> {
    let held: i64 = RENEW
        .key(keys::lease(conversation))
        .key(keys::REPLYING)
        .arg(token.as_str())
        .arg(millis(ttl))
        .arg(conversation)
        .arg(if replying { "1" } else { "0" })
        .invoke_async(&mut redis.conn())
        .await?;
    if held == 1 {
        Ok(())
    } else {
        Err(ClusterError::Fenced)
    }
}

/// Gives the lease up (only if still ours) and forgets the conversation in the sweeper's
/// set: a clean handoff, the next request anywhere takes it at once.
pub async fn release(
    redis: &Redis,
    conversation: &str,
    token: &LeaseToken,
) -> Result<bool, ClusterError> {
    let released: i64 = RELEASE
        .key(keys::lease(conversation))
        .key(keys::REPLYING)
        .arg(token.as_str())
        .arg(conversation)
        .invoke_async(&mut redis.conn())
        .await?;
    Ok(released == 1)
}
