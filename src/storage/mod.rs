//! Storage: the one module that speaks SQL.
//!
//! SQLite through sqlx by default. The rest of the server sees a narrow set of operations
//! (create and load a conversation, insert and update a message, reserve event numbers,
//! remember webhook deliveries and provider jobs) so another database can follow.
//! Only conversation actors write conversation rows; webhook receipts and provider jobs are
//! written by the web and provider layers.
//!
//! This file opens the database, runs the embedded migrations and defines the error; the
//! queries live with their tables: [`conversations`] (conversations, messages, event
//! numbers, the replay window) and [`webhooks`] (webhook receipts, provider jobs).

mod conversations;
mod webhooks;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlSafeStr, SqlitePool};

pub use conversations::{StoredConversation, StoredEvent};

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
