//! Provider callbacks that arrived before their job id was known (OpenAI can answer before
//! the create call returns): parked in Redis under the job id, so whichever node learns the
//! job id claims them — exactly once, since `GETDEL` hands a value to one caller only.

use std::time::Duration;

use super::{ClusterError, Redis, keys};

/// How long a parked callback waits for its job.
pub const PARK_TTL: Duration = Duration::from_secs(600);
/// At most this many callbacks are kept per job (later ones are dropped).
pub const MAX_PER_JOB: usize = 8;

/// Parks `body` for `job` (a second callback for the same job is appended to the list,
/// up to [`MAX_PER_JOB`]).
pub async fn park(redis: &Redis, job: &str, body: &[u8]) -> Result<(), ClusterError> {
    let ttl = u64::try_from(PARK_TTL.as_millis()).unwrap_or(u64::MAX);
    let _: () = redis::pipe()
        .atomic()
        .cmd("RPUSH")
        .arg(keys::parked(job))
        .arg(body)
        .ignore()
        .cmd("LTRIM")
        .arg(keys::parked(job))
        .arg(0)
        .arg(MAX_PER_JOB - 1)
        .ignore()
        .cmd("PEXPIRE")
        .arg(keys::parked(job))
        .arg(ttl)
        .ignore()
        .query_async(&mut redis.conn())
        .await?;
    Ok(())
}

/// Takes every callback parked for `job`; a second claim gets none.
pub async fn claim(redis: &Redis, job: &str) -> Result<Vec<Vec<u8>>, ClusterError> {
    let (bodies, _): (Vec<Vec<u8>>, i64) = redis::pipe()
        .atomic()
        .cmd("LRANGE")
        .arg(keys::parked(job))
        .arg(0)
        .arg(-1)
        .cmd("DEL")
        .arg(keys::parked(job))
        .query_async(&mut redis.conn())
        .await?;
    Ok(bodies)
}
