//! SQLite: webhook receipts and provider jobs (see `storage::webhooks` for what each
//! call means).

use sqlx::Row;

use super::SqliteStore;
use crate::storage::StoreError;

impl SqliteStore {
    pub(in crate::storage) async fn record_webhook(
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

    pub(in crate::storage) async fn prune_webhooks(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM webhook_receipts WHERE received_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub(in crate::storage) async fn forget_webhook(
        &self,
        source: &str,
        webhook_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhook_receipts WHERE source = ? AND webhook_id = ?")
            .bind(source)
            .bind(webhook_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(in crate::storage) async fn prune_webhooks_of(
        &self,
        source: &str,
        before: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM webhook_receipts WHERE (source = ?1 OR substr(source, 1, length(?1) + 1) = ?1 || ':') \
             AND received_at < ?2",
        )
            .bind(source)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub(in crate::storage) async fn insert_job(
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

    pub(in crate::storage) async fn assign_job(
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

    pub(in crate::storage) async fn prune_jobs(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM provider_jobs WHERE created_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub(in crate::storage) async fn find_job(
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
}
