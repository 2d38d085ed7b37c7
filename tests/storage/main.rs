//! Storage tests: every test runs against both backends — SQLite (in memory) and a real
//! PostgreSQL started by the test process (`tests/support/postgres.rs`), a fresh
//! database per test — through the public `Store` API only.

#[path = "../support/postgres.rs"]
mod postgres;

mod conversations;
mod edits;
mod fencing;
mod idempotency;
mod outage;
mod owners;
mod reply_parts;
mod webhooks;

use chatwire::storage::Store;

/// One store per backend, each empty: `("sqlite", …)` and `("postgres", …)`.
pub async fn stores() -> Vec<(&'static str, Store)> {
    let sqlite = Store::connect("sqlite::memory:").await.expect("sqlite");
    let url = postgres::shared().fresh_db();
    let pg = Store::connect(&url).await.expect("postgres");
    assert_eq!(pg.backend(), "postgres");
    vec![("sqlite", sqlite), ("postgres", pg)]
}
