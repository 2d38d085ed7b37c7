//! The Rust side of the queries the two backends share, written once.
//!
//! `shared_queries!(Store, conversations, webhooks)`, invoked in a backend's module,
//! expands to that backend's methods for every operation whose only difference between
//! the backends is the SQL text: it binds the same values in the same order and decodes
//! the same columns. The SQL itself stays with each backend's tables, as constants in its
//! `conversations` and `webhooks` modules (numbered placeholders, so the bind order is
//! the one written here). What differs beyond the text — the replay window's bulk write
//! and the lock its transaction takes — each backend writes itself (`save_events`).

macro_rules! shared_queries {
    ($store:ident, $conv:ident, $hooks:ident) => {
        impl $store {
            /// After a fenced write changed nothing: was it the fence?
            async fn verdict(
                &self,
                conversation_id: &str,
                epoch: crate::storage::Epoch,
            ) -> Result<(), crate::storage::StoreError> {
                let current: Option<i64> = sqlx::query_scalar($conv::EPOCH)
                    .bind(conversation_id)
                    .fetch_optional(&self.pool)
                    .await?;
                crate::storage::conversations::fence_verdict(conversation_id, epoch, current)
            }

            /// A fenced write's outcome: one row changed, or the verdict on why none did.
            async fn fenced(
                &self,
                changed: u64,
                conversation_id: &str,
                epoch: crate::storage::Epoch,
            ) -> Result<(), crate::storage::StoreError> {
                if changed == 1 {
                    return Ok(());
                }
                self.verdict(conversation_id, epoch).await
            }

            pub(in crate::storage) async fn mark_abandoned_replies(
                &self,
            ) -> Result<u64, crate::storage::StoreError> {
                let done = sqlx::query($conv::MARK_ABANDONED)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            pub(in crate::storage) async fn claim(
                &self,
                id: &str,
            ) -> Result<crate::storage::Epoch, crate::storage::StoreError> {
                // `fetch_all`, not `fetch_optional`: a `RETURNING` statement left
                // unfinished would keep SQLite's write lock until it is reset.
                let epoch: Vec<i64> = sqlx::query_scalar($conv::CLAIM)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                epoch
                    .first()
                    .map(|e| crate::storage::Epoch(*e))
                    .ok_or_else(|| crate::storage::StoreError::NotFound(id.to_string()))
            }

            pub(in crate::storage) async fn load_conversation(
                &self,
                id: &str,
            ) -> Result<Option<crate::storage::StoredConversation>, crate::storage::StoreError>
            {
                use std::str::FromStr;

                use sqlx::Row;

                use crate::chat::{Message, Role, Status};
                use crate::storage::StoreError;

                let Some(row) = sqlx::query($conv::LOAD)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                else {
                    return Ok(None);
                };
                let rows = sqlx::query($conv::MESSAGES)
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
                self.fold_parts(id, &mut messages).await?;
                let floor: i64 = row.try_get("event_id_floor")?;
                Ok(Some(crate::storage::StoredConversation {
                    id: row.try_get("id")?,
                    token_hash: row.try_get("token_hash")?,
                    provider: row.try_get("provider")?,
                    owner: row.try_get("owner")?,
                    created_at: row.try_get("created_at")?,
                    event_id_floor: floor.max(1) as u64,
                    owner_epoch: crate::storage::Epoch(row.try_get("owner_epoch")?),
                    messages,
                }))
            }

            pub(in crate::storage) async fn insert_message(
                &self,
                conversation_id: &str,
                epoch: crate::storage::Epoch,
                seq: usize,
                m: &crate::chat::Message,
            ) -> Result<(), crate::storage::StoreError> {
                let done = sqlx::query($conv::INSERT_MESSAGE)
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
                self.fenced(done.rows_affected(), conversation_id, epoch)
                    .await
            }

            pub(in crate::storage) async fn update_message(
                &self,
                conversation_id: &str,
                epoch: crate::storage::Epoch,
                m: &crate::chat::Message,
            ) -> Result<(), crate::storage::StoreError> {
                let done = sqlx::query($conv::UPDATE_MESSAGE)
                    .bind(conversation_id)
                    .bind(epoch.0)
                    .bind(&m.text)
                    .bind(m.status.as_str())
                    .bind(&m.error)
                    .bind(&m.id)
                    .execute(&self.pool)
                    .await?;
                self.fenced(done.rows_affected(), conversation_id, epoch)
                    .await?;
                if m.status != crate::chat::Status::Streaming {
                    // The whole text is in the row now; the parts are skipped on load
                    // anyway (they do not continue it), so removing them may fail.
                    let dropped = sqlx::query($conv::DROP_PARTS)
                        .bind(conversation_id)
                        .bind(&m.id)
                        .execute(&self.pool)
                        .await;
                    if let Err(e) = dropped {
                        tracing::debug!(error = %e, "cannot remove a reply's checkpoint parts");
                    }
                }
                Ok(())
            }

            pub(in crate::storage) async fn checkpoint_reply(
                &self,
                conversation_id: &str,
                epoch: crate::storage::Epoch,
                id: &str,
                offset: usize,
                part: &str,
            ) -> Result<(), crate::storage::StoreError> {
                let done = sqlx::query($conv::CHECKPOINT)
                    .bind(conversation_id)
                    .bind(epoch.0)
                    .bind(part)
                    .bind(id)
                    .bind(offset as i64)
                    .execute(&self.pool)
                    .await?;
                self.fenced(done.rows_affected(), conversation_id, epoch)
                    .await
            }

            /// Appends to each message the checkpointed parts that continue its text.
            async fn fold_parts(
                &self,
                conversation_id: &str,
                messages: &mut [crate::chat::Message],
            ) -> Result<(), crate::storage::StoreError> {
                use sqlx::Row;

                let rows = sqlx::query($conv::PARTS)
                    .bind(conversation_id)
                    .fetch_all(&self.pool)
                    .await?;
                let mut parts = Vec::with_capacity(rows.len());
                for r in rows {
                    let offset: i64 = r.try_get("byte_offset")?;
                    parts.push(crate::storage::conversations::Part {
                        message_id: r.try_get("message_id")?,
                        offset: offset.max(0) as usize,
                        text: r.try_get("text")?,
                    });
                }
                crate::storage::conversations::fold_parts(messages, parts);
                Ok(())
            }

            pub(in crate::storage) async fn reserve_event_ids(
                &self,
                id: &str,
                epoch: crate::storage::Epoch,
                floor: u64,
            ) -> Result<(), crate::storage::StoreError> {
                self.write_floor($conv::RESERVE_FLOOR, id, epoch, floor)
                    .await
            }

            pub(in crate::storage) async fn set_event_id_floor(
                &self,
                id: &str,
                epoch: crate::storage::Epoch,
                floor: u64,
            ) -> Result<(), crate::storage::StoreError> {
                self.write_floor($conv::SET_FLOOR, id, epoch, floor).await
            }

            async fn write_floor(
                &self,
                sql: &'static str,
                id: &str,
                epoch: crate::storage::Epoch,
                floor: u64,
            ) -> Result<(), crate::storage::StoreError> {
                let done = sqlx::query(sql)
                    .bind(id)
                    .bind(epoch.0)
                    .bind(floor as i64)
                    .execute(&self.pool)
                    .await?;
                self.fenced(done.rows_affected(), id, epoch).await
            }

            pub(in crate::storage) async fn load_events(
                &self,
                conversation_id: &str,
                limit: usize,
            ) -> Result<Vec<crate::storage::StoredEvent>, crate::storage::StoreError> {
                use sqlx::Row;

                let rows = sqlx::query($conv::LOAD_EVENTS)
                    .bind(conversation_id)
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows.into_iter().rev() {
                    let id: i64 = r.try_get("id")?;
                    out.push(crate::storage::StoredEvent {
                        id: id.max(0) as u64,
                        frame: r.try_get("frame")?,
                    });
                }
                Ok(out)
            }

            pub(in crate::storage) async fn record_webhook(
                &self,
                source: &str,
                webhook_id: &str,
                now: i64,
            ) -> Result<bool, crate::storage::StoreError> {
                let done = sqlx::query($hooks::RECORD)
                    .bind(source)
                    .bind(webhook_id)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            pub(in crate::storage) async fn prune_webhooks(
                &self,
                before: i64,
            ) -> Result<u64, crate::storage::StoreError> {
                self.delete_before($hooks::PRUNE, before).await
            }

            pub(in crate::storage) async fn prune_jobs(
                &self,
                before: i64,
            ) -> Result<u64, crate::storage::StoreError> {
                self.delete_before($hooks::PRUNE_JOBS, before).await
            }

            async fn delete_before(
                &self,
                sql: &'static str,
                before: i64,
            ) -> Result<u64, crate::storage::StoreError> {
                let done = sqlx::query(sql).bind(before).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }

            pub(in crate::storage) async fn forget_webhook(
                &self,
                source: &str,
                webhook_id: &str,
            ) -> Result<(), crate::storage::StoreError> {
                sqlx::query($hooks::FORGET)
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
            ) -> Result<u64, crate::storage::StoreError> {
                let done = sqlx::query($hooks::PRUNE_OF)
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
            ) -> Result<(), crate::storage::StoreError> {
                sqlx::query($hooks::INSERT_JOB)
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
            ) -> Result<bool, crate::storage::StoreError> {
                let done = sqlx::query($hooks::ASSIGN_JOB)
                    .bind(job_id)
                    .bind(provider)
                    .bind(reply_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            pub(in crate::storage) async fn find_job(
                &self,
                provider: &str,
                job_id: &str,
            ) -> Result<Option<(String, String)>, crate::storage::StoreError> {
                use sqlx::Row;

                let row = sqlx::query($hooks::FIND_JOB)
                    .bind(provider)
                    .bind(job_id)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    Some(r) => Ok(Some((r.try_get(0)?, r.try_get(1)?))),
                    None => Ok(None),
                }
            }

            pub(in crate::storage) async fn ping(&self) -> Result<(), crate::storage::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            pub(in crate::storage) async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}
pub(super) use shared_queries;
