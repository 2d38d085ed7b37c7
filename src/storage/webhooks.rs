//! Webhook receipts (so a redelivered `webhook-id` is answered `duplicate`, and pruned
//! once outside the signature's tolerance) and provider jobs (which conversation and reply
//! a provider's job id belongs to, reserved before the job is created).

use sqlx::Row;

use super::{Store, StoreError};

impl Store {
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

    /// Forgets the deliveries of route `source` (every sender on it: `source:NAME`)
    /// received before `before`.
    pub async fn prune_webhooks_of(&self, source: &str, before: i64) -> Result<u64, StoreError> {
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

    /// Forgets jobs created before `before`. A callback for a forgotten job is answered
    /// `ignored`, exactly as a late callback for a reply that has ended.
    pub async fn prune_jobs(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM provider_jobs WHERE created_at < ?")
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prunes_old_receipts_of_every_sender_on_a_route_only() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        for (source, id, at) in [
            ("nlp:a", "1", 10),
            ("nlp:b", "1", 10),
            ("nlp:b", "2", 1000),
            ("nlpx:c", "1", 10),
            ("openai:o", "1", 10),
        ] {
            assert!(store.record_webhook(source, id, at).await.unwrap());
        }
        assert_eq!(store.prune_webhooks_of("nlp", 500).await.unwrap(), 2);
        // Pruned: recorded again as new. Kept: still a duplicate.
        assert!(store.record_webhook("nlp:a", "1", 2000).await.unwrap());
        assert!(!store.record_webhook("nlp:b", "2", 2000).await.unwrap());
        assert!(!store.record_webhook("nlpx:c", "1", 2000).await.unwrap());
        assert!(!store.record_webhook("openai:o", "1", 2000).await.unwrap());
    }

    #[tokio::test]
    async fn prunes_old_jobs() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store
            .create_conversation("c1", "h", "nlp", 0)
            .await
            .unwrap();
        store
            .insert_job("nlp", "old", "c1", "r1", 10)
            .await
            .unwrap();
        store
            .insert_job("nlp", "new", "c1", "r2", 1000)
            .await
            .unwrap();
        assert_eq!(store.prune_jobs(500).await.unwrap(), 1);
        assert_eq!(store.find_job("nlp", "old").await.unwrap(), None);
        assert!(store.find_job("nlp", "new").await.unwrap().is_some());
    }
}
