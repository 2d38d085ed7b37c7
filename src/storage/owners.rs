//! Who owns a conversation, as the server sees it whatever the backend: a conversation's
//! owner and credential (read before anything else about it), the owner's list (most
//! recently updated first, a page at a time), the title (the first user message until
//! renamed), renames and deletes (both actor writes, fenced by the epoch like every other)
//! and browser sessions (`cw_session`: only the SHA-256 hash of the cookie is stored).
//!
//! `owner_queries!(Store, owners)`, invoked in a backend's module, expands to that
//! backend's methods; the SQL stays with each backend (`sqlite/owners.rs`,
//! `postgres/owners.rs`).

use super::{Epoch, Store, StoreError, dispatch};

/// What decides who may use a conversation (its token's hash and its owner), and its
/// provider.
#[derive(Debug, Clone)]
pub struct Access {
    pub token_hash: String,
    pub owner: Option<String>,
    pub provider: String,
}

/// One line of an owner's list (API.md's SUMMARY).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub id: String,
    pub title: Option<String>,
    pub provider: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Where a page of the list starts: after this `(updated_at, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub updated_at: i64,
    pub id: String,
}

/// A new conversation as `create_conversation` stores it.
#[derive(Debug, Clone, Copy)]
pub struct NewConversation<'a> {
    pub id: &'a str,
    pub token_hash: &'a str,
    pub provider: &'a str,
    pub created_at: i64,
    pub owner: Option<&'a str>,
}

/// The longest default title, in characters.
pub const DEFAULT_TITLE_CHARS: usize = 80;

/// The title a conversation gets from its first user message: trimmed, at most
/// [`DEFAULT_TITLE_CHARS`] characters.
pub fn default_title(text: &str) -> String {
    let t: String = text.trim().chars().take(DEFAULT_TITLE_CHARS).collect();
    t.trim_end().to_string()
}

impl Store {
    /// Creates a conversation (epoch 0: nobody has claimed it yet), owned by `owner`.
    pub async fn create_owned_conversation(
        &self,
        c: NewConversation<'_>,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.create_owned(c).await)
    }

    /// The conversation's credential and owner, without its history; `None` if unknown.
    pub async fn access(&self, id: &str) -> Result<Option<Access>, StoreError> {
        dispatch!(self, b => b.access(id).await)
    }

    /// The conversation's SUMMARY, or `None` if unknown.
    pub async fn summary(&self, id: &str) -> Result<Option<Summary>, StoreError> {
        dispatch!(self, b => b.summary(id).await)
    }

    /// Up to `limit` of `owner`'s conversations, most recently updated first, after
    /// `cursor` (the last one of the previous page).
    pub async fn list_conversations(
        &self,
        owner: &str,
        limit: u32,
        cursor: Option<&ListCursor>,
    ) -> Result<Vec<Summary>, StoreError> {
        dispatch!(self, b => b.list_owned(owner, limit, cursor).await)
    }

    /// A user message was stored at `at`: the conversation moves up its owner's list and
    /// gets `title` unless it has one. Fenced by `epoch`.
    pub async fn touch_conversation(
        &self,
        id: &str,
        epoch: Epoch,
        at: i64,
        title: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.touch(id, epoch, at, title).await)
    }

    /// After user message `m` was stored: the conversation moves up its owner's list and,
    /// without a title yet, is named after `m` ([`default_title`]). Fenced by `epoch`.
    pub(super) async fn user_message_stored(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        m: &crate::chat::Message,
    ) -> Result<(), StoreError> {
        let title = default_title(&m.text);
        self.touch_conversation(conversation_id, epoch, m.created_at, &title)
            .await
    }

    /// Renames the conversation. Fenced by `epoch`.
    pub async fn rename_conversation(
        &self,
        id: &str,
        epoch: Epoch,
        title: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.rename(id, epoch, title).await)
    }

    /// Removes the conversation with its messages, stored events and provider jobs.
    /// Fenced by `epoch`.
    pub async fn delete_conversation(&self, id: &str, epoch: Epoch) -> Result<(), StoreError> {
        dispatch!(self, b => b.delete(id, epoch).await)
    }

    /// Stores a session: the hash of its cookie value names `owner` until `expires_at`.
    pub async fn create_session(
        &self,
        token_hash: &str,
        owner: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.create_session(token_hash, owner, now, expires_at).await)
    }

    /// The owner a session names, if it exists and has not expired at `now`.
    pub async fn session_owner(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        dispatch!(self, b => b.session_owner(token_hash, now).await)
    }

    /// Ends a session (nothing happens if there is none).
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        dispatch!(self, b => b.delete_session(token_hash).await)
    }

    /// Forgets sessions expired at `now`; how many.
    pub async fn prune_sessions(&self, now: i64) -> Result<u64, StoreError> {
        dispatch!(self, b => b.prune_sessions(now).await)
    }
}

macro_rules! owner_queries {
    ($store:ident, $sql:ident) => {
        impl $store {
            fn summary_of<R: sqlx::Row>(r: &R) -> Result<crate::storage::Summary, sqlx::Error>
            where
                for<'a> &'a str: sqlx::ColumnIndex<R>,
                for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
                for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
                for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            {
                Ok(crate::storage::Summary {
                    id: r.try_get("id")?,
                    title: r.try_get("title")?,
                    provider: r.try_get("provider")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            pub(in crate::storage) async fn create_owned(
                &self,
                c: crate::storage::NewConversation<'_>,
            ) -> Result<(), crate::storage::StoreError> {
                sqlx::query($sql::CREATE)
                    .bind(c.id)
                    .bind(c.token_hash)
                    .bind(c.provider)
                    .bind(c.created_at)
                    .bind(c.owner)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            pub(in crate::storage) async fn access(
                &self,
                id: &str,
            ) -> Result<Option<crate::storage::Access>, crate::storage::StoreError> {
                use sqlx::Row;
                let row = sqlx::query($sql::ACCESS)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    None => Ok(None),
                    Some(r) => Ok(Some(crate::storage::Access {
                        token_hash: r.try_get("token_hash")?,
                        owner: r.try_get("owner")?,
                        provider: r.try_get("provider")?,
                    })),
                }
            }

            pub(in crate::storage) async fn summary(
                &self,
                id: &str,
            ) -> Result<Option<crate::storage::Summary>, crate::storage::StoreError> {
                let row = sqlx::query($sql::SUMMARY)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(Self::summary_of).transpose()?)
            }

            pub(in crate::storage) async fn list_owned(
                &self,
                owner: &str,
                limit: u32,
                cursor: Option<&crate::storage::ListCursor>,
            ) -> Result<Vec<crate::storage::Summary>, crate::storage::StoreError> {
                let rows = match cursor {
                    None => {
                        sqlx::query($sql::LIST_FIRST)
                            .bind(owner)
                            .bind(i64::from(limit))
                            .fetch_all(&self.pool)
                            .await?
                    }
                    Some(c) => {
                        sqlx::query($sql::LIST_AFTER)
                            .bind(owner)
                            .bind(i64::from(limit))
                            .bind(c.updated_at)
                            .bind(&c.id)
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                Ok(rows
                    .iter()
                    .map(Self::summary_of)
                    .collect::<Result<_, _>>()?)
            }

            pub(in crate::storage) async fn touch(
                &self,
                id: &str,
                epoch: crate::storage::Epoch,
                at: i64,
                title: &str,
            ) -> Result<(), crate::storage::StoreError> {
                let done = sqlx::query($sql::TOUCH)
                    .bind(id)
                    .bind(epoch.0)
                    .bind(at)
                    .bind(title)
                    .execute(&self.pool)
                    .await?;
                self.fenced(done.rows_affected(), id, epoch).await
            }

            pub(in crate::storage) async fn rename(
                &self,
                id: &str,
                epoch: crate::storage::Epoch,
                title: &str,
            ) -> Result<(), crate::storage::StoreError> {
                let done = sqlx::query($sql::RENAME)
                    .bind(id)
                    .bind(epoch.0)
                    .bind(title)
                    .execute(&self.pool)
                    .await?;
                self.fenced(done.rows_affected(), id, epoch).await
            }

            pub(in crate::storage) async fn delete(
                &self,
                id: &str,
                epoch: crate::storage::Epoch,
            ) -> Result<(), crate::storage::StoreError> {
                let done = sqlx::query($sql::DELETE)
                    .bind(id)
                    .bind(epoch.0)
                    .execute(&self.pool)
                    .await?;
                self.fenced(done.rows_affected(), id, epoch).await
            }

            pub(in crate::storage) async fn create_session(
                &self,
                token_hash: &str,
                owner: &str,
                now: i64,
                expires_at: i64,
            ) -> Result<(), crate::storage::StoreError> {
                sqlx::query($sql::CREATE_SESSION)
                    .bind(token_hash)
                    .bind(owner)
                    .bind(now)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            pub(in crate::storage) async fn session_owner(
                &self,
                token_hash: &str,
                now: i64,
            ) -> Result<Option<String>, crate::storage::StoreError> {
                Ok(sqlx::query_scalar($sql::SESSION_OWNER)
                    .bind(token_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            pub(in crate::storage) async fn delete_session(
                &self,
                token_hash: &str,
            ) -> Result<(), crate::storage::StoreError> {
                sqlx::query($sql::DELETE_SESSION)
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            pub(in crate::storage) async fn prune_sessions(
                &self,
                now: i64,
            ) -> Result<u64, crate::storage::StoreError> {
                let done = sqlx::query($sql::PRUNE_SESSIONS)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}
pub(super) use owner_queries;
