//! The SQLite backend (the embedded default): opening the file (WAL, foreign keys, a busy
//! timeout) or an in-memory database, and its migrations (`migrations/sqlite/`). Its
//! queries live with their tables: [`conversations`] and [`webhooks`].
//!
//! SQLite has one writer at a time, so a fenced write is the epoch check and the write in
//! one statement (or in one write transaction, begun by touching the conversation row).

mod conversations;
mod idempotency;
mod owners;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::edits::edit_queries;
use super::idempotency::idempotency_queries;
use super::owners::owner_queries;
use super::queries::shared_queries;
use super::{StoreError, migration, migrator};

/// A SQLite database.
#[derive(Debug, Clone)]
pub(super) struct SqliteStore {
    pool: SqlitePool,
}

fn migrations() -> sqlx::migrate::Migrator {
    migrator(vec![
        migration(
            1,
            "init",
            include_str!("../../../migrations/sqlite/0001_init.sql"),
        ),
        migration(
            2,
            "events",
            include_str!("../../../migrations/sqlite/0002_events.sql"),
        ),
        migration(
            3,
            "owner epoch",
            include_str!("../../../migrations/sqlite/0003_owner_epoch.sql"),
        ),
        migration(
            4,
            "reply parts",
            include_str!("../../../migrations/sqlite/0004_reply_parts.sql"),
        ),
        migration(
            5,
            "owners",
            include_str!("../../../migrations/sqlite/0005_owners.sql"),
        ),
        migration(
            6,
            "idempotency keys",
            include_str!("../../../migrations/sqlite/0006_idempotency_keys.sql"),
        ),
    ])
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and brings its schema up to date.
    pub(super) async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let memory = url.contains(":memory:");
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Other)?
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
        migrations().run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

shared_queries!(SqliteStore, conversations, webhooks);
edit_queries!(SqliteStore, conversations, sqlx::Sqlite);
owner_queries!(SqliteStore, owners);
idempotency_queries!(SqliteStore, idempotency);
