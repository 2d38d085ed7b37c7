//! Storage: the one module that speaks SQL.
//!
//! Two backends behind one [`Store`]: SQLite (the embedded default, `sqlite://FILE` or
//! `sqlite::memory:`) and PostgreSQL (`postgres://…` or `postgresql://…`, the sqlx URL form;
//! a Unix socket via `?host=/dir`). [`Store::connect`] picks the backend by the URL's scheme
//! and brings the schema up to date with the migrations embedded for that backend
//! (`migrations/sqlite/`, `migrations/postgres/`). The rest of the server sees a narrow set
//! of operations and never learns which backend runs; [`StoreError`] means the same on both.
//!
//! This file opens the database; the operations are grouped as the tables are:
//! [`conversations`] (conversations, messages, event numbers, the replay window, ownership),
//! [`owners`] (whose a conversation is, the owner's list, titles, renames, deletes, browser
//! sessions), [`webhooks`] (webhook receipts, provider jobs) and [`idempotency`] (the keys
//! of posted messages). Each backend keeps its queries with
//! its tables in `sqlite/` and `postgres/` (the Rust that binds and decodes the queries
//! both have is written once, in `queries`); [`Store`] dispatches to one of them.
//!
//! # Ownership epochs (fencing)
//!
//! Every conversation row has an `owner_epoch`. Whoever is about to run a conversation's
//! actor first calls [`Store::claim`], which adds one to it and returns the new value, an
//! [`Epoch`]; then loads the history ([`Store::load_conversation`]). Every write an actor
//! makes carries its epoch and is applied only while the row still holds that epoch:
//! [`Store::insert_message`], [`Store::insert_keyed_message`], [`Store::update_message`], [`Store::checkpoint_reply`],
//! [`Store::reserve_event_ids`], [`Store::set_event_id_floor`], [`Store::save_events`].
//! A write whose epoch is stale changes nothing and returns [`StoreError::Fenced`]. The
//! check is made by the database under the conversation row's lock (PostgreSQL: the write
//! and a `FOR SHARE` lock on the conversation in one statement or transaction, so a claim
//! waits for writes in flight and writes after it see the new epoch; SQLite: the check and
//! the write in one statement or write transaction, SQLite having one writer at a time), so
//! a stale process — paused, partitioned or simply late — cannot slip a write in after a
//! newer claim. Order matters for a new owner: claim, then load; a write of the previous
//! epoch can commit until the claim does, never after it.
//!
//! Writes that are not an actor's (creating a conversation, webhook receipts, provider jobs,
//! the start-up sweep of abandoned replies) are not fenced.

mod conversations;
mod edits;
mod error;
mod idempotency;
mod owners;
mod postgres;
mod queries;
mod sqlite;
mod webhooks;

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

pub use conversations::{Epoch, StoredConversation, StoredEvent};
pub use error::StoreError;
pub use idempotency::{KEEP_KEYS, KEY_TTL, KeyedPost};
pub use owners::{
    Access, DEFAULT_TITLE_CHARS, ListCursor, NewConversation, Summary, default_title,
};

/// A cloneable handle to the database: one of the two backends.
#[derive(Debug, Clone)]
pub struct Store(Backend);

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Runs the same call on whichever backend this store is; both have the same methods.
macro_rules! dispatch {
    ($store:expr, $b:ident => $call:expr) => {
        match &$store.0 {
            crate::storage::Backend::Sqlite($b) => $call,
            crate::storage::Backend::Postgres($b) => $call,
        }
    };
}
use dispatch;

/// One embedded migration.
fn migration(version: i64, name: &'static str, sql: &'static str) -> Migration {
    Migration::new(
        version,
        Cow::Borrowed(name),
        MigrationType::Simple,
        sql.into_sql_str(),
        false,
    )
}

/// The migrator for one backend's embedded migrations.
fn migrator(migrations: Vec<Migration>) -> Migrator {
    Migrator::with_migrations(migrations)
}

impl Store {
    /// Opens the database at `url` (creating a SQLite file if missing) and brings its
    /// schema up to date. `postgres://` and `postgresql://` URLs select PostgreSQL;
    /// anything else is handed to SQLite.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store(Backend::Postgres(
                postgres::PgStore::connect(url).await?,
            )))
        } else {
            Ok(Store(Backend::Sqlite(
                sqlite::SqliteStore::connect(url).await?,
            )))
        }
    }

    /// Which backend runs: `"sqlite"` or `"postgres"` (for logs and metrics).
    pub fn backend(&self) -> &'static str {
        match self.0 {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Checks the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, b => b.ping().await)
    }

    /// Closes the pool, waiting for writes in flight.
    pub async fn close(&self) {
        dispatch!(self, b => b.close().await)
    }
}
