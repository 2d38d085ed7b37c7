//! `Idempotency-Key`s of posted messages: a retried `POST …/messages` with a key seen
//! before gets the first answer back instead of storing its message again.
//!
//! The owning actor looks the key up first ([`Store::find_post`]); a new key is written
//! with its message in one transaction, fenced by the actor's epoch like every actor write
//! ([`Store::insert_keyed_message`]), so a message is never stored without its key nor a
//! key without its message, and a stale owner writes neither. Keys are kept at least
//! [`KEY_TTL`] and at most the newest [`KEEP_KEYS`] per conversation (pruned on insert).
//! `idempotency_queries!(Store, idempotency)` expands to a backend's methods (beside
//! `edit_queries!`, whose fenced transaction and message insert it uses); the SQL
//! (`FIND`, `INSERT`, `PRUNE`) stays with its tables.

use std::time::Duration;

use super::{Epoch, Store, StoreError, dispatch};
use crate::chat::Message;

/// A key is remembered at least this long…
pub const KEY_TTL: Duration = Duration::from_secs(24 * 3600);
/// …unless the conversation has this many newer ones.
pub const KEEP_KEYS: i64 = 100;

/// What the first request with a key was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedPost {
    pub key: String,
    pub message_id: String,
    /// `None` when the message was queued.
    pub reply_id: Option<String>,
    pub queued: bool,
}

impl Store {
    /// The first answer to a post with `key` in this conversation, if there was one.
    pub async fn find_post(
        &self,
        conversation_id: &str,
        key: &str,
    ) -> Result<Option<KeyedPost>, StoreError> {
        dispatch!(self, b => b.find_post(conversation_id, key).await)
    }

    /// Stores user message `m` at position `seq` together with its key's answer, in one
    /// transaction, fenced by `epoch`; prunes the conversation's old keys. Like
    /// `insert_message`, it moves the conversation up its owner's list (and names it).
    pub async fn insert_keyed_message(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        seq: usize,
        m: &Message,
        post: &KeyedPost,
    ) -> Result<(), StoreError> {
        let cutoff = m.created_at - i64::try_from(KEY_TTL.as_millis()).unwrap_or(i64::MAX);
        dispatch!(self, b => b.insert_keyed_message(conversation_id, epoch, seq, m, post, cutoff).await)?;
        self.user_message_stored(conversation_id, epoch, m).await
    }
}

macro_rules! idempotency_queries {
    ($store:ident, $keys:ident) => {
        impl $store {
            pub(in crate::storage) async fn find_post(
                &self,
                conversation_id: &str,
                key: &str,
            ) -> Result<Option<crate::storage::KeyedPost>, crate::storage::StoreError> {
                use sqlx::Row;
                let row = sqlx::query($keys::FIND)
                    .bind(conversation_id)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| {
                    Ok(crate::storage::KeyedPost {
                        key: key.to_owned(),
                        message_id: r.try_get("message_id")?,
                        reply_id: r.try_get("reply_id")?,
                        queued: r.try_get("queued")?,
                    })
                })
                .transpose()
            }

            pub(in crate::storage) async fn insert_keyed_message(
                &self,
                conversation_id: &str,
                epoch: crate::storage::Epoch,
                seq: usize,
                m: &crate::chat::Message,
                post: &crate::storage::KeyedPost,
                cutoff: i64,
            ) -> Result<(), crate::storage::StoreError> {
                let mut tx = self.owned_tx(conversation_id, epoch).await?;
                Self::insert_message_query(conversation_id, epoch, seq as i64, m)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($keys::INSERT)
                    .bind(conversation_id)
                    .bind(&post.key)
                    .bind(&post.message_id)
                    .bind(&post.reply_id)
                    .bind(post.queued)
                    .bind(m.created_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($keys::PRUNE)
                    .bind(conversation_id)
                    .bind(cutoff)
                    .bind(crate::storage::idempotency::KEEP_KEYS)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(super) use idempotency_queries;
