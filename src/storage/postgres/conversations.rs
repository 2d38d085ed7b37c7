//! PostgreSQL: the conversation tables — a conversation and its messages (insert, update,
//! the guarded checkpoint of a streaming reply), its event-number floor, the stored replay
//! window (`events`) and its ownership epoch. Each actor write checks the epoch under a
//! `FOR SHARE` lock on the conversation row, in the statement (a CTE) or transaction that
//! writes. The Rust around the shared queries is `storage::queries`, binding in its order.

use super::PgStore;
use crate::storage::{Epoch, StoreError};

pub(super) const EPOCH: &str = "SELECT owner_epoch FROM conversations WHERE id = $1";

pub(super) const MARK_ABANDONED: &str = "UPDATE messages SET status = 'failed', \
    error = 'the server stopped while this reply was streaming' WHERE status = 'streaming'";

pub(super) const CLAIM: &str =
    "UPDATE conversations SET owner_epoch = owner_epoch + 1 WHERE id = $1 RETURNING owner_epoch";

pub(super) const LOAD: &str = "SELECT id, token_hash, provider, owner, created_at, \
    event_id_floor, owner_epoch FROM conversations WHERE id = $1";

pub(super) const MESSAGES: &str = "SELECT id, role, text, status, error, created_at \
    FROM messages WHERE conversation_id = $1 ORDER BY seq";

/// The conversation row, if it still holds the epoch, locked against a claim until commit.
/// Binds: id, conversation, seq, role, text, status, error, created_at, epoch.
pub(super) const INSERT_MESSAGE: &str = "WITH owner AS \
    (SELECT id FROM conversations WHERE id = $2 AND owner_epoch = $9 FOR SHARE) \
    INSERT INTO messages (id, conversation_id, seq, role, text, status, error, created_at) \
    SELECT $1, owner.id, $3, $4, $5, $6, $7, $8 FROM owner";

/// Binds: conversation, epoch, text, status, error, id.
pub(super) const UPDATE_MESSAGE: &str = "WITH owner AS \
    (SELECT id FROM conversations WHERE id = $1 AND owner_epoch = $2 FOR SHARE) \
    UPDATE messages SET text = $3, status = $4, error = $5 FROM owner \
    WHERE messages.id = $6 AND messages.conversation_id = owner.id";

/// Binds: conversation, epoch, text (the part), id, offset.
pub(super) const CHECKPOINT: &str = "WITH owner AS \
    (SELECT id FROM conversations WHERE id = $1 AND owner_epoch = $2 FOR SHARE) \
    INSERT INTO reply_parts (conversation_id, message_id, byte_offset, text) \
    SELECT owner.id, $4, $5, $3 FROM owner JOIN messages m \
    ON m.conversation_id = owner.id AND m.id = $4 AND m.status = 'streaming' \
    ON CONFLICT DO NOTHING";

/// Binds: conversation.
pub(super) const PARTS: &str = "SELECT message_id, byte_offset, text FROM reply_parts \
    WHERE conversation_id = $1 ORDER BY message_id, byte_offset";

/// Binds: conversation, id.
pub(super) const DROP_PARTS: &str =
    "DELETE FROM reply_parts WHERE conversation_id = $1 AND message_id = $2";

/// The row's own lock: a claim in flight is waited for, then the epoch re-checked.
/// Binds: conversation, epoch, floor.
pub(super) const RESERVE_FLOOR: &str = "UPDATE conversations \
    SET event_id_floor = GREATEST(event_id_floor, $3) WHERE id = $1 AND owner_epoch = $2";

pub(super) const SET_FLOOR: &str =
    "UPDATE conversations SET event_id_floor = $3 WHERE id = $1 AND owner_epoch = $2";

/// Binds: conversation, limit.
pub(super) const LOAD_EVENTS: &str =
    "SELECT id, frame FROM events WHERE conversation_id = $1 ORDER BY id DESC LIMIT $2";

/// Checks the epoch and holds it (a `FOR SHARE` lock: a claim waits) until the commit.
/// Binds: conversation, epoch.
pub(super) const OWN: &str =
    "SELECT 1 FROM conversations WHERE id = $1 AND owner_epoch = $2 FOR SHARE";

/// Binds: conversation, id.
pub(super) const SEQ_OF: &str = "SELECT seq FROM messages WHERE conversation_id = $1 AND id = $2";

/// Binds: conversation, seq.
pub(super) const SHIFT_AFTER: &str =
    "UPDATE messages SET seq = seq + 1 WHERE conversation_id = $1 AND seq > $2";

/// Binds: conversation, epoch, old id, id, role, text, status, error, created_at.
pub(super) const REPLACE_MESSAGE: &str = "WITH owner AS \
    (SELECT id FROM conversations WHERE id = $1 AND owner_epoch = $2 FOR SHARE) \
    UPDATE messages SET id = $4, role = $5, text = $6, status = $7, error = $8, \
    created_at = $9 FROM owner WHERE messages.id = $3 AND messages.conversation_id = owner.id";

/// Binds: conversation, id, text.
pub(super) const SET_TEXT: &str =
    "UPDATE messages SET text = $3 WHERE conversation_id = $1 AND id = $2";

/// Binds: conversation, seq.
pub(super) const DELETE_AFTER: &str =
    "DELETE FROM messages WHERE conversation_id = $1 AND seq > $2";

impl PgStore {
    pub(in crate::storage) async fn save_events(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        events: &[(u64, &[u8])],
        keep_from: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let owned: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM conversations WHERE id = $1 AND owner_epoch = $2 FOR SHARE",
        )
        .bind(conversation_id)
        .bind(epoch.0)
        .fetch_optional(&mut *tx)
        .await?;
        if owned.is_none() {
            drop(tx);
            return self.verdict(conversation_id, epoch).await;
        }
        if !events.is_empty() {
            let ids: Vec<i64> = events.iter().map(|(id, _)| *id as i64).collect();
            let frames: Vec<&[u8]> = events.iter().map(|(_, f)| *f).collect();
            sqlx::query(
                "INSERT INTO events (conversation_id, id, frame) \
                 SELECT $1, e.id, e.frame FROM UNNEST($2::bigint[], $3::bytea[]) AS e(id, frame) \
                 ON CONFLICT (conversation_id, id) DO UPDATE SET frame = EXCLUDED.frame",
            )
            .bind(conversation_id)
            .bind(&ids)
            .bind(&frames)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM events WHERE conversation_id = $1 AND id < $2")
            .bind(conversation_id)
            .bind(keep_from as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
