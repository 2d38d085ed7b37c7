//! The PostgreSQL backend: a pool that notices a restarted server (each connection is
//! pinged before use, dead ones are replaced, and waiting for one is bounded so a request
//! answers 503 instead of hanging), and its migrations (`migrations/postgres/`, run under
//! sqlx's advisory lock, so nodes starting together migrate once). Its queries live with
//! their tables: [`conversations`] and [`webhooks`].
//!
//! A fenced write takes a `FOR SHARE` lock on the conversation row where the epoch is
//! checked, in the same statement (a CTE) or transaction as the write. A claim's `UPDATE`
//! conflicts with that lock: it waits for fenced writes in flight, and a write that waited
//! for a claim re-reads the row, sees the new epoch and changes nothing.

mod conversations;
mod idempotency;
mod owners;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::edits::edit_queries;
use super::idempotency::idempotency_queries;
use super::owners::owner_queries;
use super::queries::shared_queries;
use super::{StoreError, migration, migrator};

/// How long a query waits for a connection before it is `Unavailable` (503): short, so a
/// database that went away answers quickly rather than holding requests open.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A PostgreSQL database.
#[derive(Debug, Clone)]
pub(super) struct PgStore {
    pool: PgPool,
}

fn migrations() -> sqlx::migrate::Migrator {
    migrator(vec![
        migration(
            1,
            "init",
            include_str!("../../../migrations/postgres/0001_init.sql"),
        ),
        migration(
            2,
            "reply parts",
            include_str!("../../../migrations/postgres/0002_reply_parts.sql"),
        ),
        migration(
            3,
            "owners",
            include_str!("../../../migrations/postgres/0003_owners.sql"),
        ),
        migration(
            4,
            "idempotency keys",
            include_str!("../../../migrations/postgres/0004_idempotency_keys.sql"),
        ),
    ])
}

impl PgStore {
    /// Connects to `url` and brings the schema up to date.
    pub(super) async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(StoreError::Other)?
            .application_name("chatwire");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .idle_timeout(Some(Duration::from_secs(600)))
            .max_lifetime(Some(Duration::from_secs(3600)))
            .connect_with(opts)
            .await?;
        migrations().run(&pool).await?;
        Ok(PgStore { pool })
    }
}

shared_queries!(PgStore, conversations, webhooks);
edit_queries!(PgStore, conversations, sqlx::Postgres);
owner_queries!(PgStore, owners);
idempotency_queries!(PgStore, idempotency);
