//! SQLite: the conversation tables — a conversation and its messages (insert, update, the
//! guarded checkpoint of a streaming reply), its event-number floor, the stored replay
//! window (`events`) and its ownership epoch. Each actor write checks the epoch in the
//! same statement (or write transaction) as it writes. The Rust around the shared queries
//! is `storage::queries`; the placeholders are numbered in its bind order.

use super::SqliteStore;
use crate::storage::{Epoch, StoreError};

pub(super) const EPOCH: &str = "SELECT owner_epoch FROM conversations WHERE id = ?1";

pub(super) const MARK_ABANDONED: &str = "UPDATE messages SET status = 'failed', \
    error = 'the server stopped while this reply was streaming' WHERE status = 'streaming'";

pub(super) const CLAIM: &str =
    "UPDATE conversations SET owner_epoch = owner_epoch + 1 WHERE id = ?1 RETURNING owner_epoch";

pub(super) const LOAD: &str = "SELECT id, token_hash, provider, owner, created_at, \
    event_id_floor, owner_epoch FROM conversations WHERE id = ?1";

pub(super) const MESSAGES: &str = "SELECT id, role, text, status, error, created_at \
    FROM messages WHERE conversation_id = ?1 ORDER BY seq";

/// Binds: id, conversation, seq, role, text, status, error, created_at, epoch.
pub(super) const INSERT_MESSAGE: &str = "INSERT INTO messages \
    (id, conversation_id, seq, role, text, status, error, created_at) \
    SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 \
    WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?2 AND owner_epoch = ?9)";

/// Binds: conversation, epoch, text, status, error, id.
pub(super) const UPDATE_MESSAGE: &str = "UPDATE messages SET text = ?3, status = ?4, error = ?5 \
    WHERE id = ?6 AND conversation_id = ?1 \
    AND EXISTS (SELECT 1 FROM conversations WHERE id = ?1 AND owner_epoch = ?2)";

/// Binds: conversation, epoch, text (the part), id, offset.
pub(super) const CHECKPOINT: &str = "INSERT INTO reply_parts \
    (conversation_id, message_id, byte_offset, text) SELECT ?1, ?4, ?5, ?3 \
    WHERE EXISTS (SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id \
    WHERE m.id = ?4 AND m.conversation_id = ?1 AND m.status = 'streaming' \
    AND c.owner_epoch = ?2) \
    ON CONFLICT DO NOTHING";

/// Binds: conversation.
pub(super) const PARTS: &str = "SELECT message_id, byte_offset, text FROM reply_parts \
    WHERE conversation_id = ?1 ORDER BY message_id, byte_offset";

/// Binds: conversation, id.
pub(super) const DROP_PARTS: &str =
    "DELETE FROM reply_parts WHERE conversation_id = ?1 AND message_id = ?2";

/// Binds: conversation, epoch, floor.
pub(super) const RESERVE_FLOOR: &str = "UPDATE conversations \
    SET event_id_floor = MAX(event_id_floor, ?3) WHERE id = ?1 AND owner_epoch = ?2";

pub(super) const SET_FLOOR: &str =
    "UPDATE conversations SET event_id_floor = ?3 WHERE id = ?1 AND owner_epoch = ?2";

/// Binds: conversation, limit.
pub(super) const LOAD_EVENTS: &str =
    "SELECT id, frame FROM events WHERE conversation_id = ?1 ORDER BY id DESC LIMIT ?2";

/// Checks the epoch and takes SQLite's write lock for the rest of the transaction.
/// Binds: conversation, epoch.
pub(super) const OWN: &str =
    "UPDATE conversations SET owner_epoch = owner_epoch WHERE id = ?1 AND owner_epoch = ?2";

/// Binds: conversation, id.
pub(super) const SEQ_OF: &str = "SELECT seq FROM messages WHERE conversation_id = ?1 AND id = ?2";

/// Binds: conversation, seq.
pub(super) const SHIFT_AFTER: &str =
    "UPDATE messages SET seq = seq + 1 WHERE conversation_id = ?1 AND seq > ?2";

/// Binds: conversation, epoch, old id, id, role, text, status, error, created_at.
pub(super) const REPLACE_MESSAGE: &str = "UPDATE messages SET id = ?4, role = ?5, text = ?6, \
    status = ?7, error = ?8, created_at = ?9 WHERE id = ?3 AND conversation_id = ?1 \
    AND EXISTS (SELECT 1 FROM conversations WHERE id = ?1 AND owner_epoch = ?2)";

/// Binds: conversation, id, text.
pub(super) const SET_TEXT: &str =
    "UPDATE messages SET text = ?3 WHERE conversation_id = ?1 AND id = ?2";

/// Binds: conversation, seq.
pub(super) const DELETE_AFTER: &str =
    "DELETE FROM messages WHERE conversation_id = ?1 AND seq > ?2";

impl SqliteStore {
    pub(in crate::storage) async fn save_events(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        events: &[(u64, &[u8])],
        keep_from: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Writing to the conversation row first makes this the write transaction at once
        // (SQLite's one writer), so the epoch cannot change before the commit.
        let owned = sqlx::query(
            "UPDATE conversations SET owner_epoch = owner_epoch WHERE id = ? AND owner_epoch = ?",
        )
        .bind(conversation_id)
        .bind(epoch.0)
        .execute(&mut *tx)
        .await?;
        if owned.rows_affected() != 1 {
            drop(tx);
            return self.verdict(conversation_id, epoch).await;
        }
        for (id, frame) in events {
            sqlx::query(
                "INSERT OR REPLACE INTO events (conversation_id, id, frame) VALUES (?, ?, ?)",
            )
            .bind(conversation_id)
            .bind(*id as i64)
            .bind(*frame)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM events WHERE conversation_id = ? AND id < ?")
            .bind(conversation_id)
            .bind(keep_from as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
