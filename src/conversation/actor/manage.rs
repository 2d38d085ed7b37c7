//! The operations on a conversation as a whole, decided by its actor like every other
//! change: renaming it and deleting it. Both are fenced writes of this actor's epoch. A
//! delete drops the reply in progress (cancelling it upstream), removes the conversation
//! with its messages from storage and stops the actor without writing anything more: its
//! broadcast sender goes with it, so SSE streams end, and `done` ends WebSocket sessions;
//! the next request finds nothing (404).

use super::{Actor, Flow};
use crate::conversation::handle::ActorError;

impl Actor {
    pub(super) async fn rename(&mut self, title: &str) -> Result<(), ActorError> {
        self.writable()?;
        if let Err(e) = self
            .store
            .rename_conversation(&self.id, self.epoch, title)
            .await
        {
            self.write_failed("cannot rename the conversation", &e);
            return Err(e.into());
        }
        Ok(())
    }

    /// Deletes the conversation; on success the actor's loop stops.
    pub(super) async fn delete(&mut self) -> (Result<(), ActorError>, Flow) {
        if let Err(e) = self.writable() {
            return (Err(e), Flow::Continue);
        }
        if let Err(e) = self.store.delete_conversation(&self.id, self.epoch).await {
            self.write_failed("cannot delete the conversation", &e);
            return (Err(e.into()), Flow::Continue);
        }
        tracing::info!(conversation = %self.id, "deleted");
        self.deleted = true;
        (Ok(()), Flow::Stop)
    }
}
