//! Webhook receipts (so a redelivered `webhook-id` is answered `duplicate`, and pruned
//! once outside the signature's tolerance) and provider jobs (which conversation and reply
//! a provider's job id belongs to, reserved before the job is created), whatever the
//! backend. Written by the web and provider layers; not fenced.

use super::{Store, StoreError, dispatch};

impl Store {
    /// Records a webhook delivery; `true` if it is new, `false` if it was seen before.
    pub async fn record_webhook(
        &self,
        source: &str,
        webhook_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, b => b.record_webhook(source, webhook_id, now).await)
    }

    /// Forgets webhook deliveries received before `before` (they are outside the signature's
    /// timestamp tolerance, so a replay of them is refused anyway).
    pub async fn prune_webhooks(&self, before: i64) -> Result<u64, StoreError> {
        dispatch!(self, b => b.prune_webhooks(before).await)
    }

    /// Forgets one webhook delivery, so a retry of it is applied (used when it could not
    /// be handed on and was answered with a 5xx).
    pub async fn forget_webhook(&self, source: &str, webhook_id: &str) -> Result<(), StoreError> {
        dispatch!(self, b => b.forget_webhook(source, webhook_id).await)
    }

    /// Forgets the deliveries of route `source` (every sender on it: `source:NAME`)
    /// received before `before`.
    pub async fn prune_webhooks_of(&self, source: &str, before: i64) -> Result<u64, StoreError> {
        dispatch!(self, b => b.prune_webhooks_of(source, before).await)
    }

    /// Remembers which conversation and reply a provider's job belongs to.
    /// [`StoreError::UniqueViolation`] if the job id, or a job for the reply, exists.
    pub async fn insert_job(
        &self,
        provider: &str,
        job_id: &str,
        conversation_id: &str,
        reply_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.insert_job(provider, job_id, conversation_id, reply_id, now).await)
    }

    /// Gives the job reserved for `reply_id` its provider-assigned id (see
    /// `providers::Jobs::reserve`). `false` if no reservation exists for that reply.
    pub async fn assign_job(
        &self,
        provider: &str,
        reply_id: &str,
        job_id: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self, b => b.assign_job(provider, reply_id, job_id).await)
    }

    /// Forgets jobs created before `before`. A callback for a forgotten job is answered
    /// `ignored`, exactly as a late callback for a reply that has ended.
    pub async fn prune_jobs(&self, before: i64) -> Result<u64, StoreError> {
        dispatch!(self, b => b.prune_jobs(before).await)
    }

    /// The `(conversation_id, reply_id)` a provider's job belongs to.
    pub async fn find_job(
        &self,
        provider: &str,
        job_id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        dispatch!(self, b => b.find_job(provider, job_id).await)
    }
}
