//! The conversation tables: a conversation and its messages (insert — also after a given
//! message —, update, replace in place, edit with the removal of later messages, the guarded
//! checkpoint of a streaming reply), its event-number floor (reservations and the exact
//! floor written at a graceful stop) and the stored replay window (`events`). Only the
//! conversation's actor (and the registry that starts it) calls these.

use std::str::FromStr;

use sqlx::Row;

use super::{Store, StoreError};
use crate::chat::{Message, Role, Status};

/// A conversation as storage holds it.
#[derive(Debug, Clone)]
pub struct StoredConversation {
    pub id: String,
    pub token_hash: String,
    pub provider: String,
    pub created_at: i64,
    pub event_id_floor: u64,
    pub messages: Vec<Message>,
}

/// One stored event: its number and its SSE frame bytes.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: u64,
    pub frame: Vec<u8>,
}

impl Store {
    /// Replies that were streaming when the server last stopped are marked failed, text kept.
    /// Returns how many were marked.
    pub async fn mark_abandoned_replies(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE messages SET status = 'failed', error = 'the server stopped while this reply was streaming' \
             WHERE status = 'streaming'",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn create_conversation(
        &self,
        id: &str,
        token_hash: &str,
        provider: &str,
        created_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO conversations (id, token_hash, provider, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(token_hash)
        .bind(provider)
        .bind(created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The conversation and its whole history, or `None` if there is no such conversation.
    pub async fn load_conversation(
        &self,
        id: &str,
    ) -> Result<Option<StoredConversation>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, token_hash, provider, created_at, event_id_floor FROM conversations WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT id, role, text, status, error, created_at FROM messages \
             WHERE conversation_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut messages = Vec::with_capacity(rows.len());
        for r in rows {
            let role: String = r.try_get("role")?;
            let status: String = r.try_get("status")?;
            messages.push(Message {
                id: r.try_get("id")?,
                role: Role::from_str(&role).map_err(StoreError)?,
                text: r.try_get("text")?,
                status: Status::from_str(&status).map_err(StoreError)?,
                error: r.try_get("error")?,
                created_at: r.try_get("created_at")?,
            });
        }
        let floor: i64 = row.try_get("event_id_floor")?;
        Ok(Some(StoredConversation {
            id: row.try_get("id")?,
            token_hash: row.try_get("token_hash")?,
            provider: row.try_get("provider")?,
            created_at: row.try_get("created_at")?,
            event_id_floor: floor.max(1) as u64,
            messages,
        }))
    }

    /// Stores a new message at position `seq` of its conversation.
    pub async fn insert_message(
        &self,
        conversation_id: &str,
        seq: usize,
        m: &Message,
    ) -> Result<(), StoreError> {
        insert_at(&self.pool, conversation_id, seq as i64, m).await
    }

    /// Stores a new message right after message `after_id` (a queued message's reply),
    /// moving the later messages one place down, in one transaction.
    pub async fn insert_message_after(
        &self,
        conversation_id: &str,
        after_id: &str,
        m: &Message,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let seq = seq_of(&mut tx, conversation_id, after_id).await?;
        sqlx::query("UPDATE messages SET seq = seq + 1 WHERE conversation_id = ? AND seq > ?")
            .bind(conversation_id)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        insert_at(&mut *tx, conversation_id, seq + 1, m).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts message `m` in the place of message `old_id` (a regenerated reply): same
    /// position, new id and contents.
    pub async fn replace_message(
        &self,
        conversation_id: &str,
        old_id: &str,
        m: &Message,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET id = ?, role = ?, text = ?, status = ?, error = ?, created_at = ? \
             WHERE id = ? AND conversation_id = ?",
        )
        .bind(&m.id)
        .bind(m.role.as_str())
        .bind(&m.text)
        .bind(m.status.as_str())
        .bind(&m.error)
        .bind(m.created_at)
        .bind(old_id)
        .bind(conversation_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives message `id` the text `text` and deletes every later message of its
    /// conversation (an edit), in one transaction.
    pub async fn edit_message(
        &self,
        conversation_id: &str,
        id: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let seq = seq_of(&mut tx, conversation_id, id).await?;
        sqlx::query("UPDATE messages SET text = ? WHERE id = ?")
            .bind(text)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM messages WHERE conversation_id = ? AND seq > ?")
            .bind(conversation_id)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a message's current text and status (a checkpoint or its end).
    pub async fn update_message(&self, m: &Message) -> Result<(), StoreError> {
        sqlx::query("UPDATE messages SET text = ?, status = ?, error = ? WHERE id = ?")
            .bind(&m.text)
            .bind(m.status.as_str())
            .bind(&m.error)
            .bind(&m.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that event numbers below `floor` may be in use (a reservation). Never
    /// lowers the floor, so a late write cannot undo a newer reservation.
    pub async fn reserve_event_ids(&self, id: &str, floor: u64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE conversations SET event_id_floor = MAX(event_id_floor, ?) WHERE id = ?",
        )
        .bind(floor as i64)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets the floor to exactly `floor`: written by an actor as it stops gracefully, when
    /// it knows the last number it used and no other actor of the conversation runs.
    pub async fn set_event_id_floor(&self, id: &str, floor: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE conversations SET event_id_floor = ? WHERE id = ?")
            .bind(floor as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores `events` (new frames, rising ids) and forgets this conversation's events
    /// numbered below `keep_from`, in one transaction.
    pub async fn save_events(
        &self,
        conversation_id: &str,
        events: &[(u64, &[u8])],
        keep_from: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
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

    /// The last `limit` stored events of a conversation, oldest first.
    pub async fn load_events(
        &self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, frame FROM events WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(conversation_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows.into_iter().rev() {
            let id: i64 = r.try_get("id")?;
            out.push(StoredEvent {
                id: id.max(0) as u64,
                frame: r.try_get("frame")?,
            });
        }
        Ok(out)
    }

    /// Stores the text of a reply that is still streaming. Guarded by the status, so a late
    /// checkpoint can never overwrite the reply's final state.
    pub async fn checkpoint_reply(&self, id: &str, text: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE messages SET text = ? WHERE id = ? AND status = 'streaming'")
            .bind(text)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Inserts message `m` at position `seq` (in a transaction or not).
async fn insert_at<'e>(
    exec: impl sqlx::SqliteExecutor<'e>,
    conversation_id: &str,
    seq: i64,
    m: &Message,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, seq, role, text, status, error, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&m.id)
    .bind(conversation_id)
    .bind(seq)
    .bind(m.role.as_str())
    .bind(&m.text)
    .bind(m.status.as_str())
    .bind(&m.error)
    .bind(m.created_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// The position of message `id` in its conversation.
async fn seq_of(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    conversation_id: &str,
    id: &str,
) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT seq FROM messages WHERE id = ? AND conversation_id = ?")
            .bind(id)
            .bind(conversation_id)
            .fetch_one(&mut **tx)
            .await?,
    )
}
