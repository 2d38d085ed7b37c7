//! The numbered event log of a conversation: one Redis stream, entry id `N-0` for event `N`.
//!
//! The owner appends each actor turn's frames with a script that, per conversation, (1)
//! checks the lease still holds the owner's token, (2) checks the log's top is the id the
//! owner appended last, so the log stays contiguous, (3) adds the frames, (4) publishes them
//! on the live channel in one message, (5) when asked (about once a second), trims by
//! `MINID` and refreshes the log's time to live. One call covers many conversations (the
//! node's writer batches them), each fenced and answered on its own. Steps 3 and 4 happen in one script, so
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

/// One script call appends for many conversations (the node's log writer, in `writer.rs`, batches
/// its actors' turns). `KEYS`: lease, log, live for each conversation in turn. `ARGV[1]`:
/// the time to live; then per conversation: token, previous id (`''`: any), keep-from,
/// refresh (`'1'`: trim and refresh the time to live), frame count, and id, kind, bytes per
/// frame. Each conversation gets its own answer (`ok`, `fenced`, `gap <top>`): a refused
/// one writes nothing and does not stop the others. Its frames go out in ONE message:
/// `<id> <kind> <length> <bytes>` per frame, back to back.
static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
local a = 2
for k = 1, #KEYS, 3 do
  local n = tonumber(ARGV[a + 4])
  local first, stop = a + 5, a + 4 + 3 * n
  local answer = 'ok'
  if redis.call('GET', KEYS[k]) ~= ARGV[a] then
    answer = 'fenced'
  else
    local top = '0'
    local last = redis.call('XREVRANGE', KEYS[k + 1], '+', '-', 'COUNT', 1)
    if last[1] then top = string.match(last[1][1], '^(%d+)') end
    if (ARGV[a + 1] ~= '' and ARGV[a + 1] ~= top)
      or (n > 0 and tonumber(ARGV[first]) <= tonumber(top)) then
      answer = 'gap ' .. top
    else
      local parts = {}
      for i = first, stop, 3 do
        redis.call('XADD', KEYS[k + 1], ARGV[i] .. '-0', 'k', ARGV[i + 1], 'f', ARGV[i + 2])
        parts[#parts + 1] = ARGV[i] .. ' ' .. ARGV[i + 1] .. ' ' .. #ARGV[i + 2] .. ' ' .. ARGV[i + 2]
      end
      if n > 0 then redis.call('PUBLISH', KEYS[k + 2], table.concat(parts)) end
      if ARGV[a + 3] == '1' then
        if ARGV[a + 2] ~= '0' then
          redis.call('XTRIM', KEYS[k + 1], 'MINID', '~', ARGV[a + 2] .. '-0')
        end
        redis.call('PEXPIRE', KEYS[k + 1], ARGV[1])
      end
    end
  end
  out[#out + 1] = answer
  a = stop + 1
end
return out",
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

/// One conversation's part of [`append_many`].
pub struct Part<'a> {
    pub conversation: &'a str,
    pub append: Append<'a>,
    /// Trim below `keep_from` and refresh the log's time to live (the owner asks for it
    /// about once a second, not on every append).
    pub refresh: bool,
}

/// Appends a batch of frames in order, trimming and refreshing the time to live (see the
/// module note).
pub async fn append(redis: &Redis, conversation: &str, a: Append<'_>) -> Result<(), AppendError> {
    let part = Part {
        conversation,
        append: a,
        refresh: true,
    };
    append_many(redis, std::slice::from_ref(&part))
        .await
        .map_err(AppendError::from)?
        .pop()
        .unwrap_or(Err(AppendError::Unavailable))
}

/// Appends for several conversations in one script call; one answer per part, in order.
/// `Err` when Redis did not answer (then any part may or may not have been written).
pub async fn append_many(
    redis: &Redis,
    parts: &[Part<'_>],
) -> Result<Vec<Result<(), AppendError>>, ClusterError> {
    let mut call = APPEND.prepare_invoke();
    call.arg(u64::try_from(LOG_TTL.as_millis()).unwrap_or(u64::MAX));
    for p in parts {
        let a = &p.append;
        call.key(keys::lease(p.conversation))
            .key(keys::log(p.conversation))
            .key(keys::live(p.conversation))
            .arg(a.token.as_str())
            .arg(a.prev.map(|p| p.to_string()).unwrap_or_default())
            .arg(a.keep_from)
            .arg(if p.refresh { "1" } else { "0" })
            .arg(a.frames.len());
        for f in a.frames {
            call.arg(f.id)
                .arg(if f.sync { "s" } else { "e" })
                .arg(f.bytes.as_ref());
        }
    }
    let answers: Vec<String> = call.invoke_async(&mut redis.conn()).await?;
    let mut answers: Vec<Result<(), AppendError>> = answers
        .iter()
        .map(|answer| match answer.split_once(' ') {
            _ if answer == "ok" => Ok(()),
            _ if answer == "fenced" => Err(AppendError::Fenced),
            Some(("gap", top)) => Err(AppendError::Gap {
                top: top.parse().unwrap_or(0),
            }),
            _ => Err(AppendError::Unavailable),
        })
        .collect();
    answers.resize(parts.len(), Err(AppendError::Unavailable));
    Ok(answers)
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

/// Parses a pub/sub payload of the live channel: `<id> <kind> <length> <bytes>` per frame,
/// back to back (the frames are slices of `payload`, not copies). `None` if malformed.
pub fn parse_live(payload: &Bytes) -> Option<Vec<LogFrame>> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let (id, rest) = number(payload.get(at..)?)?;
        let (kind, rest) = (*rest.first()?, rest.get(2..)?);
        let (len, rest) = number(rest)?;
        let start = payload.len() - rest.len();
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        if end > payload.len() {
            return None;
        }
        frames.push(LogFrame {
            id,
            sync: kind == b's',
            bytes: payload.slice(start..end),
        });
        at = end;
    }
    Some(frames)
}

/// A decimal number followed by one space, and what follows the space.
fn number(s: &[u8]) -> Option<(u64, &[u8])> {
    let space = s.iter().position(|&b| b == b' ')?;
    let n = std::str::from_utf8(&s[..space]).ok()?.parse().ok()?;
    Some((n, &s[space + 1..]))
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
