//! SQLite: webhook receipts and provider jobs (see `storage::webhooks` for what each call
//! means; the Rust around these is `storage::queries`, binding in its order).

pub(super) const RECORD: &str = "INSERT OR IGNORE INTO webhook_receipts \
    (source, webhook_id, received_at) VALUES (?1, ?2, ?3)";

pub(super) const PRUNE: &str = "DELETE FROM webhook_receipts WHERE received_at < ?1";

pub(super) const FORGET: &str =
    "DELETE FROM webhook_receipts WHERE source = ?1 AND webhook_id = ?2";

/// The route's own source and every `source:NAME` of its senders.
pub(super) const PRUNE_OF: &str = "DELETE FROM webhook_receipts \
    WHERE (source = ?1 OR substr(source, 1, length(?1) + 1) = ?1 || ':') AND received_at < ?2";

/// Binds: provider, job, conversation, reply, created_at.
pub(super) const INSERT_JOB: &str = "INSERT INTO provider_jobs \
    (provider, job_id, conversation_id, reply_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";

/// Binds: job, provider, reply.
pub(super) const ASSIGN_JOB: &str =
    "UPDATE provider_jobs SET job_id = ?1 WHERE provider = ?2 AND reply_id = ?3";

pub(super) const PRUNE_JOBS: &str = "DELETE FROM provider_jobs WHERE created_at < ?1";

pub(super) const FIND_JOB: &str =
    "SELECT conversation_id, reply_id FROM provider_jobs WHERE provider = ?1 AND job_id = ?2";
