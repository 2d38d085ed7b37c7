//! Storage: the one module that speaks SQL.
//!
//! SQLite through sqlx by default. The rest of the server sees a narrow set of operations
//! (create and load a conversation, insert and update a message, reserve event numbers,
//! remember webhook deliveries and provider jobs) so another database can follow.
//! Only conversation actors write conversation rows; webhook receipts and provider jobs are
//! written by the web and provider layers.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlSafeStr, SqlitePool};

use crate::conversation::{Message, Role, Status};

/// A storage failure; the detail is for logs, never for clients.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(String);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError(format!("migration: {e}"))
    }
}

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

/// A cloneable handle to the database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

fn migration(version: i64, name: &'static str, sql: &'static str) -> Migration {
    Migration::new(
        version,
        Cow::Borrowed(name),
        MigrationType::Simple,
        sql.into_sql_str(),
        false,
    )
}

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        migration(1, "init", include_str!("../../migrations/0001_init.sql")),
        migration(
            2,
            "events",
            include_str!("../../migrations/0002_events.sql"),
        ),
    ])
}

/// One stored event: its number and its SSE frame bytes.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: u64,
    pub frame: Vec<u8>,
}

impl Store {
    /// Opens (creating if missing) the database at `url` and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let memory = url.contains(":memory:");
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let opts = if memory {
            opts
        } else {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        };
        // An in-memory database lives in one connection: keep exactly one, forever (and do
        // not ping it before each use: it cannot have gone away).
        let pool = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { 4 })
            .test_before_acquire(!memory)
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .connect_with(opts)
            .await?;
        migrator().run(&pool).await?;
        Ok(Store { pool })
    }

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
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, seq, role, text, status, error, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&m.id)
        .bind(conversation_id)
        .bind(seq as i64)
        .bind(m.role.as_str())
        .bind(&m.text)
        .bind(m.status.as_str())
        .bind(&m.error)
        .bind(m.created_at)
        .execute(&self.pool)
        .await?;
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

    /// Records a webhook delivery; `true` if it is new, `false` if it was seen before.
    pub async fn record_webhook(
        &self,
        source: &str,
        webhook_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO webhook_receipts (source, webhook_id, received_at) VALUES (?, ?, ?)",
        )
        .bind(source)
        .bind(webhook_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets webhook deliveries received before `before` (they are outside the signature's
    /// timestamp tolerance, so a replay of them is refused anyway).
    pub async fn prune_webhooks(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM webhook_receipts WHERE received_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Remembers which conversation and reply a provider's job belongs to.
    pub async fn insert_job(
        &self,
        provider: &str,
        job_id: &str,
        conversation_id: &str,
        reply_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO provider_jobs (provider, job_id, conversation_id, reply_id, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(provider)
        .bind(job_id)
        .bind(conversation_id)
        .bind(reply_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives the job reserved for `reply_id` its provider-assigned id (see
    /// `providers::Jobs::reserve`). `false` if no reservation exists for that reply.
    pub async fn assign_job(
        &self,
        provider: &str,
        reply_id: &str,
        job_id: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE provider_jobs SET job_id = ? WHERE provider = ? AND reply_id = ?")
                .bind(job_id)
                .bind(provider)
                .bind(reply_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets one webhook delivery, so a retry of it is applied (used when it could not
    /// be handed on and was answered with a 5xx).
    pub async fn forget_webhook(&self, source: &str, webhook_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhook_receipts WHERE source = ? AND webhook_id = ?")
            .bind(source)
            .bind(webhook_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets the deliveries of `source` received before `before`.
    pub async fn prune_webhooks_of(&self, source: &str, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM webhook_receipts WHERE source = ? AND received_at < ?")
            .bind(source)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The `(conversation_id, reply_id)` a provider's job belongs to.
    pub async fn find_job(
        &self,
        provider: &str,
        job_id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT conversation_id, reply_id FROM provider_jobs WHERE provider = ? AND job_id = ?",
        )
        .bind(provider)
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((r.try_get(0)?, r.try_get(1)?))),
            None => Ok(None),
        }
    }

    /// Checks the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for writes in flight.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Store {
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
