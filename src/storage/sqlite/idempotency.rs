//! SQLite: the `Idempotency-Key`s of posted messages (`storage::idempotency`).

/// Binds: conversation, key.
pub(super) const FIND: &str = "SELECT message_id, reply_id, queued FROM idempotency_keys \
    WHERE conversation_id = ?1 AND key = ?2";

/// Binds: conversation, key, message, reply, queued, created_at.
pub(super) const INSERT: &str = "INSERT INTO idempotency_keys \
    (conversation_id, key, message_id, reply_id, queued, created_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Forgets a conversation's keys older than the cutoff and beyond the newest `keep`.
/// Binds: conversation, cutoff, keep.
pub(super) const PRUNE: &str = "DELETE FROM idempotency_keys WHERE conversation_id = ?1 \
    AND (created_at < ?2 OR key NOT IN (SELECT key FROM idempotency_keys \
    WHERE conversation_id = ?1 ORDER BY created_at DESC, key DESC LIMIT ?3))";
