//! The Rust side of the history rewrites both backends share: a message inserted after
//! another (later ones move down), a message replaced in place, and an edit that removes
//! every later message. `edit_queries!(Store, conversations, Database)`, invoked in a backend's
//! module, expands to that backend's methods; the SQL stays with its tables (`OWN`,
//! `SEQ_OF`, `SHIFT_AFTER`, `REPLACE_MESSAGE`, `SET_TEXT`, `DELETE_AFTER`).
//!
//! Each is fenced like every actor write: the multi-statement ones first run `OWN` in
//! their transaction (the backend's way of checking the epoch and holding it until the
//! commit: SQLite takes its one write lock, PostgreSQL a `FOR SHARE` row lock).

macro_rules! edit_queries {
    ($store:ident, $conv:ident, $db:ty) => {
        impl $store {
            /// Begins a transaction that holds `epoch` until its commit, or says why not.
            async fn owned_tx(
                &self,
                conversation_id: &str,
                epoch: crate::storage::Epoch,
            ) -> Result<sqlx::Transaction<'_, $db>, crate::storage::StoreError> {
                let mut tx = self.pool.begin().await?;
                let owned = sqlx::query($conv::OWN)
                    .bind(conversation_id)
                    .bind(epoch.0)
                    .execute(&mut *tx)
                    .await?;
                if owned.rows_affected() != 1 {
                    drop(tx);
                    self.verdict(conversation_id, epoch).await?;
                    return Err(crate::storage::StoreError::NotFound(conversation_id.into()));
                }
                Ok(tx)
            }

            pub(in crate::storage) async fn insert_message_after(
                &self,
                conversation_id: &str,
                epoch: crate::storage::Epoch,
                after_id: &str,
                m: &crate::chat::Message,
            ) -> Result<(), crate::storage::StoreError> {
                let mut tx = self.owned_tx(conversation_id, epoch).await?;
                let seq: i64 = sqlx::query_scalar($conv::SEQ_OF)
                    .bind(conversation_id)
                    .bind(after_id)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query($conv::SHIFT_AFTER)
                    .bind(conversation_id)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                Self::insert_message_query(conversation_id, epoch, seq + 1, m)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            /// `INSERT_MESSAGE` (fenced by `epoch`) with its binds, for a transaction.
            fn insert_message_query<'q>(
                conversation_id: &'q str,
                epoch: crate::storage::Epoch,
                seq: i64,
                m: &'q crate::chat::Message,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
                sqlx::query($conv::INSERT_MESSAGE)
                    .bind(&m.id)
                    .bind(conversation_id)
                    .bind(seq)
                    .bind(m.role.as_str())
                    .bind(&m.text)
                    .bind(m.status.as_str())
                    .bind(&m.error)
                    .bind(m.created_at)
                    .bind(epoch.0)
            }

            pub(in crate::storage) async fn replace_message(
                &self,
                conversation_id: &str,
                epoch: crate::storage::Epoch,
                old_id: &str,
                m: &crate::chat::Message,
            ) -> Result<(), crate::storage::StoreError> {
                let done = sqlx::query($conv::REPLACE_MESSAGE)
                    .bind(conversation_id)
                    .bind(epoch.0)
                    .bind(old_id)
                    .bind(&m.id)
                    .bind(m.role.as_str())
                    .bind(&m.text)
                    .bind(m.status.as_str())
                    .bind(&m.error)
                    .bind(m.created_at)
                    .execute(&self.pool)
                    .await?;
                self.fenced(done.rows_affected(), conversation_id, epoch)
                    .await
            }

            pub(in crate::storage) async fn edit_message(
                &self,
                conversation_id: &str,
                epoch: crate::storage::Epoch,
                id: &str,
                text: &str,
            ) -> Result<(), crate::storage::StoreError> {
                let mut tx = self.owned_tx(conversation_id, epoch).await?;
                let seq: i64 = sqlx::query_scalar($conv::SEQ_OF)
                    .bind(conversation_id)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query($conv::SET_TEXT)
                    .bind(conversation_id)
                    .bind(id)
                    .bind(text)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($conv::DELETE_AFTER)
                    .bind(conversation_id)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(super) use edit_queries;
