//! How an actor keeps its conversation in storage: on start it marks a reply a previous
//! actor left streaming (a crash or a panic) as failed and reserves event numbers; while a
//! reply streams its text is checkpointed about once a second; event numbers are reserved
//! in blocks, in the actor's own turn; and when it stops it stores its replay window.
//!
//! The rest of the actor (`super`) decides what happens; this file only writes it down.

use super::Actor;
use crate::chat::Status;

impl Actor {
    /// Prepares a conversation loaded from storage: a reply left streaming by a previous
    /// actor (a crash or a panic) is marked failed, and a block of event numbers is reserved.
    pub(super) async fn recover(&mut self) {
        for i in 0..self.messages.len() {
            if self.messages[i].status != Status::Streaming {
                continue;
            }
            let m = &mut self.messages[i];
            m.status = Status::Failed;
            m.error = Some("the reply was cut off when its conversation restarted".into());
            let m = m.clone();
            if let Err(e) = self.store.update_message(&self.id, self.epoch, &m).await {
                self.write_failed("cannot mark abandoned reply", &e);
                return;
            }
        }
        self.reserve_event_ids().await;
    }

    /// Reserves the next block of event numbers in storage, so that even after a crash a
    /// new actor never hands out a number this one may have used. Awaited in the actor's
    /// turn (it is needed once every few thousand events), so these writes stay in order.
    pub(super) async fn reserve_event_ids(&mut self) {
        let until = self.events.reserve_block();
        // Numbers beyond the stored floor could be reused after a crash: a failed
        // reservation stops the actor.
        if let Err(e) = self
            .store
            .reserve_event_ids(&self.id, self.epoch, until)
            .await
        {
            self.write_failed("cannot reserve event ids", &e);
        }
    }

    /// Stores what the streaming reply's text gained since the last checkpoint; the write
    /// runs beside the actor. Called by the
    /// first delta at least `CHECKPOINT_EVERY` after the last checkpoint: the text only
    /// changes with a delta, so a timer (polled on every turn of the loop) is not needed.
    pub(super) fn checkpoint(&mut self) {
        let Some(active) = self.reply.as_mut() else {
            return;
        };
        active.next_checkpoint = tokio::time::Instant::now() + super::CHECKPOINT_EVERY;
        let msg = &self.messages[active.index];
        if msg.text.len() == active.checkpointed_len {
            return;
        }
        // Only what is new since the last checkpoint: the writes grow with the reply,
        // not with its square (storage reassembles the text on load).
        let offset = active.checkpointed_len;
        active.checkpointed_len = msg.text.len();
        let part = msg.text[offset..].to_string();
        let (store, id) = (self.store.clone(), msg.id.clone());
        let (conversation, epoch, shared) = (self.id.clone(), self.epoch, self.shared.clone());
        tokio::spawn(async move {
            if let Err(e) = store
                .checkpoint_reply(&conversation, epoch, &id, offset, &part)
                .await
            {
                // The actor sees this at the end of its next turn and stops.
                tracing::error!(%conversation, error = %e, "cannot checkpoint reply; stopping");
                shared
                    .storage_failed
                    .store(true, std::sync::atomic::Ordering::Release);
            }
        });
    }

    /// Writes the frames of the replay window that storage does not have yet, and forgets
    /// older ones there. If this fails the stored events no longer end at the floor, and
    /// the next actor ignores them (a resume gets a `sync`): never a wrong replay.
    pub(super) async fn save_events(&mut self) {
        let Some(unsaved) = self.events.unsaved() else {
            return;
        };
        let last = unsaved.last;
        let saved = self
            .store
            .save_events(&self.id, self.epoch, &unsaved.frames, unsaved.keep_from)
            .await;
        match saved {
            Ok(()) => self.events.saved(last),
            Err(e) => {
                tracing::warn!(conversation = %self.id, error = %e, "cannot store recent events")
            }
        }
    }
}
