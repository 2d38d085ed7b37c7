//! PostgreSQL: the conversation tables — a conversation and its messages (insert, update,
//! the guarded checkpoint of a streaming reply), its event-number floor, the stored replay
//! window (`events`) and its ownership epoch. Each actor write checks the epoch under a
//! `FOR SHARE` lock on the conversation row, in the statement (or transaction) that writes.

use std::str::FromStr;

use sqlx::Row;

use super::PgStore;
use crate::chat::{Message, Role, Status};
use crate::storage::conversations::fence_verdict;
use crate::storage::{Epoch, StoreError, StoredConversation, StoredEvent};

impl PgStore {
    /// After a fenced write changed nothing: was it the fence?
    async fn verdict(&self, conversation_id: &str, epoch: Epoch) -> Result<(), StoreError> {
        let current: Option<i64> =
            sqlx::query_scalar("SELECT owner_epoch FROM conversations WHERE id = $1")
                .bind(conversation_id)
                .fetch_optional(&self.pool)
                .await?;
        fence_verdict(conversation_id, epoch, current)
    }

    pub(in crate::storage) async fn mark_abandoned_replies(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE messages SET status = 'failed', error = 'the server stopped while this reply was streaming' \
             WHERE status = 'streaming'",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(in crate::storage) async fn create_conversation(
        &self,
        id: &str,
        token_hash: &str,
        provider: &str,
        created_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO conversations (id, token_hash, provider, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(token_hash)
        .bind(provider)
        .bind(created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(in crate::storage) async fn claim(&self, id: &str) -> Result<Epoch, StoreError> {
        let epoch: Vec<i64> = sqlx::query_scalar(
            "UPDATE conversations SET owner_epoch = owner_epoch + 1 WHERE id = $1 RETURNING owner_epoch",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        epoch
            .first()
            .map(|e| Epoch(*e))
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    pub(in crate::storage) async fn load_conversation(
        &self,
        id: &str,
    ) -> Result<Option<StoredConversation>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, token_hash, provider, created_at, event_id_floor, owner_epoch \
             FROM conversations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT id, role, text, status, error, created_at FROM messages \
             WHERE conversation_id = $1 ORDER BY seq",
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
                role: Role::from_str(&role).map_err(StoreError::corrupt)?,
                text: r.try_get("text")?,
                status: Status::from_str(&status).map_err(StoreError::corrupt)?,
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
            owner_epoch: Epoch(row.try_get("owner_epoch")?),
            messages,
        }))
    }

    pub(in crate::storage) async fn insert_message(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        seq: usize,
        m: &Message,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "WITH owner AS (SELECT id FROM conversations WHERE id = $2 AND owner_epoch = $9 FOR SHARE) \
             INSERT INTO messages (id, conversation_id, seq, role, text, status, error, created_at) \
             SELECT $1, owner.id, $3, $4, $5, $6, $7, $8 FROM owner",
        )
        .bind(&m.id)
        .bind(conversation_id)
        .bind(seq as i64)
        .bind(m.role.as_str())
        .bind(&m.text)
        .bind(m.status.as_str())
        .bind(&m.error)
        .bind(m.created_at)
        .bind(epoch.0)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        self.verdict(conversation_id, epoch).await
    }

    pub(in crate::storage) async fn update_message(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        m: &Message,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "WITH owner AS (SELECT id FROM conversations WHERE id = $1 AND owner_epoch = $2 FOR SHARE) \
             UPDATE messages SET text = $3, status = $4, error = $5 FROM owner \
             WHERE messages.id = $6 AND messages.conversation_id = owner.id",
        )
        .bind(conversation_id)
        .bind(epoch.0)
        .bind(&m.text)
        .bind(m.status.as_str())
        .bind(&m.error)
        .bind(&m.id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        self.verdict(conversation_id, epoch).await
    }

    pub(in crate::storage) async fn checkpoint_reply(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        id: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "WITH owner AS (SELECT id FROM conversations WHERE id = $1 AND owner_epoch = $2 FOR SHARE) \
             UPDATE messages SET text = $3 FROM owner \
             WHERE messages.id = $4 AND messages.conversation_id = owner.id \
             AND messages.status = 'streaming'",
        )
        .bind(conversation_id)
        .bind(epoch.0)
        .bind(text)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        self.verdict(conversation_id, epoch).await
    }

    pub(in crate::storage) async fn reserve_event_ids(
        &self,
        id: &str,
        epoch: Epoch,
        floor: u64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE conversations SET event_id_floor = GREATEST(event_id_floor, $3) \
             WHERE id = $1 AND owner_epoch = $2",
        )
        .bind(id)
        .bind(epoch.0)
        .bind(floor as i64)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        self.verdict(id, epoch).await
    }

    pub(in crate::storage) async fn set_event_id_floor(
        &self,
        id: &str,
        epoch: Epoch,
        floor: u64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE conversations SET event_id_floor = $3 WHERE id = $1 AND owner_epoch = $2",
        )
        .bind(id)
        .bind(epoch.0)
        .bind(floor as i64)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        self.verdict(id, epoch).await
    }

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

    pub(in crate::storage) async fn load_events(
        &self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, frame FROM events WHERE conversation_id = $1 ORDER BY id DESC LIMIT $2",
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
}
