//! The numbered event log of a conversation: one Redis stream, entry id `N-0` for event `N`.
//!
//! The owner appends with one script per actor turn that (1) checks the lease still holds
//! the owner's token, (2) checks the log's top is the id the owner appended last, so the log
//! stays contiguous, (3) adds the frames, (4) publishes them on the live channel, (5) trims
//! by `MINID` and refreshes the log's time to live. Steps 3 and 4 happen in one script, so
//! nothing is published that is not in the log, and Redis refuses an id at or below the top,
//! so an id is never reused. A `sync` entry (a snapshot that replaces a client's state) may
//! follow any id: a new owner after a crash starts with one, above every id used before.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use redis::{Script, Value};

use super::{ClusterError, LeaseToken, Redis, keys};

/// How long an untouched log stays in Redis (a conversation idle that long resumes from a
/// `sync`; its history is in PostgreSQL).
pub const LOG_TTL: Duration = Duration::from_secs(24 * 3600);

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFrame {
    pub id: u64,
    /// A snapshot that replaces the client's state (so it may follow any earlier id).
    pub sync: bool,
    /// The exact SSE bytes.
    pub bytes: Bytes,
}

/// Why an append was refused; nothing of the batch was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("the lease is no longer held")]
    Fenced,
    /// The log's top is not the caller's previous id (the log was lost or reset), or the
    /// batch's first id is not above it.
    #[error("the log's top is {top}")]
    Gap { top: u64 },
    #[error("redis is unavailable")]
    Unavailable,
}

impl From<ClusterError> for AppendError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Fenced => AppendError::Fenced,
            _ => AppendError::Unavailable,
        }
    }
}

static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'fenced'} end
local top = '0'
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if last[1] then top = string.match(last[1][1], '^(%d+)') end
if ARGV[2] ~= '' and ARGV[2] ~= top then return {'gap', top} end
if #ARGV >= 5 and tonumber(ARGV[5]) <= tonumber(top) then return {'gap', top} end
for i = 5, #ARGV, 3 do
  redis.call('XADD', KEYS[2], ARGV[i] .. '-0', 'k', ARGV[i + 1], 'f', ARGV[i + 2])
  redis.call('PUBLISH', KEYS[3], ARGV[i] .. ' ' .. ARGV[i + 1] .. ' ' .. ARGV[i + 2])
end
if ARGV[3] ~= '0' then redis.call('XTRIM', KEYS[2], 'MINID', '~', ARGV[3] .. '-0') end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {'ok'}",
    )
});

/// What the owner appends in one call.
pub struct Append<'a> {
    pub token: &'a LeaseToken,
    /// The id the caller appended last (`None`: after a takeover or a lost log, any top
    /// below the first frame will do — the first frame must then be a `sync`).
    pub prev: Option<u64>,
    /// Entries below this id may be trimmed (0: none). The caller keeps the last 1,000
    /// events and the whole reply in progress above it.
    pub keep_from: u64,
    pub frames: &'a [LogFrame],
}

/// Appends a batch of frames in order (see the module note).
pub async fn append(redis: &Redis, conversation: &str, a: Append<'_>) -> Result<(), AppendError> {
    let mut call = APPEND.prepare_invoke();
    call.key(keys::lease(conversation))
        .key(keys::log(conversation))
        .key(keys::live(conversation))
        .arg(a.token.as_str())
        .arg(a.prev.map(|p| p.to_string()).unwrap_or_default())
        .arg(a.keep_from)
        .arg(u64::try_from(LOG_TTL.as_millis()).unwrap_or(u64::MAX));
    for f in a.frames {
        call.arg(f.id)
            .arg(if f.sync { "s" } else { "e" })
            .arg(f.bytes.as_ref());
    }
    let answer: Vec<String> = call
        .invoke_async(&mut redis.conn())
        .await
        .map_err(ClusterError::from)?;
    match answer.first().map(String::as_str) {
        Some("ok") => Ok(()),
        Some("fenced") => Err(AppendError::Fenced),
        Some("gap") => Err(AppendError::Gap {
            top: answer.get(1).and_then(|t| t.parse().ok()).unwrap_or(0),
        }),
        _ => Err(AppendError::Unavailable),
    }
}

/// Up to `count` entries after id `after`, oldest first.
pub async fn after(
    redis: &Redis,
    conversation: &str,
    after: u64,
    count: usize,
) -> Result<Vec<LogFrame>, ClusterError> {
    let reply: Value = redis::cmd("XRANGE")
        .arg(keys::log(conversation))
        .arg(format!("{}-0", after.saturating_add(1)))
        .arg("+")
        .arg("COUNT")
        .arg(count.max(1))
        .query_async(&mut redis.conn())
        .await?;
    Ok(parse_entries(reply))
}

/// The id of the log's last entry (0 when the log is empty or gone).
pub async fn top(redis: &Redis, conversation: &str) -> Result<u64, ClusterError> {
    let reply: Value = redis::cmd("XREVRANGE")
        .arg(keys::log(conversation))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut redis.conn())
        .await?;
    Ok(parse_entries(reply).first().map_or(0, |f| f.id))
}

/// Parses a pub/sub payload of the live channel: `"<id> <k> <frame>"`.
pub fn parse_live(payload: &[u8]) -> Option<LogFrame> {
    let space = payload.iter().position(|&b| b == b' ')?;
    let id = std::str::from_utf8(&payload[..space]).ok()?.parse().ok()?;
    let rest = payload.get(space + 1..)?;
    let (kind, bytes) = (rest.first()?, rest.get(2..)?);
    Some(LogFrame {
        id,
        sync: *kind == b's',
        bytes: Bytes::copy_from_slice(bytes),
    })
}

fn entry_id(v: &Value) -> Option<u64> {
    let s = match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?,
        Value::SimpleString(s) => s.as_str(),
        _ => return None,
    };
    s.split_once('-')?.0.parse().ok()
}

/// `XRANGE`'s reply: `[[id, [field, value, …]], …]`; malformed entries are skipped.
fn parse_entries(reply: Value) -> Vec<LogFrame> {
    let Value::Array(entries) = reply else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let Value::Array(mut parts) = entry else {
                return None;
            };
            let fields = parts.pop()?;
            let id = entry_id(parts.first()?)?;
            let Value::Array(fields) = fields else {
                return None;
            };
            let mut sync = false;
            let mut bytes = None;
            for pair in fields.chunks(2) {
                if let [Value::BulkString(name), Value::BulkString(value)] = pair {
                    match name.as_slice() {
                        b"k" => sync = value.as_slice() == b"s",
                        b"f" => bytes = Some(Bytes::from(value.clone())),
                        _ => {}
                    }
                }
            }
            Some(LogFrame {
                id,
                sync,
                bytes: bytes?,
            })
        })
        .collect()
}
