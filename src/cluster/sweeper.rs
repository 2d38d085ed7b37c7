//! Finding replies whose owner died: conversations with a reply running sit in a sorted set
//! scored by their lease deadline (kept fresh by every renewal, see [`super::lease`]). One
//! whose deadline passed and whose lease is gone has no owner; any node may take it over.

use std::sync::LazyLock;

use redis::Script;

use super::{ClusterError, Redis, keys};

static ORPHANS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, c in ipairs(due) do
  if redis.call('EXISTS', 'cw:{' .. c .. '}:lease') == 0 then table.insert(out, c) end
end
return out",
    )
});

/// Up to `max` conversations whose reply lost its owner (Redis's clock decides).
pub async fn orphans(redis: &Redis, max: usize) -> Result<Vec<String>, ClusterError> {
    Ok(ORPHANS
        .key(keys::REPLYING)
        .arg(max)
        .invoke_async(&mut redis.conn())
        .await?)
}

/// Forgets a conversation in the set (its reply was ended by whoever took it over).
pub async fn forget(redis: &Redis, conversation: &str) -> Result<(), ClusterError> {
    let _: i64 = redis::cmd("ZREM")
        .arg(keys::REPLYING)
        .arg(conversation)
        .query_async(&mut redis.conn())
        .await?;
    Ok(())
}
