//! The conversation operations, each decided in one actor turn: posting a message (with
//! its `if_busy` policy: barge-in, queue or reject), regenerating the last reply, and
//! editing a user message. A post with an `Idempotency-Key` seen before is answered as
//! the first one was, and changes nothing (the key is stored with its message).
//!
//! The queue is not a separate structure: the queued messages are the user messages after
//! the reply in progress (stored and published when they arrived). When that reply ends —
//! completed, failed, or stopped — the first of them gets its reply, placed right after
//! it (`reply.rs`). A barge-in post, a regenerate and an edit interrupt the reply in
//! progress without moving the queue on: a barge-in answers its message with every queued
//! one as history before it; a regenerate's reply goes on to the queue when it ends; an
//! edit drops every message after the edited one.

use tokio::time::Instant;

use super::Actor;
use super::reply::Place;
use crate::chat::{Message, Role};
use crate::conversation::events::Event;
use crate::conversation::handle::{ActorError, IfBusy, MAX_QUEUED, Posted, Refusal};
use crate::storage::KeyedPost;

impl Actor {
    pub(super) async fn post(
        &mut self,
        text: String,
        if_busy: IfBusy,
        key: Option<String>,
        received: Instant,
    ) -> Result<Posted, ActorError> {
        if let Some(key) = &key {
            self.writable()?;
            if let Some(first) = self.store.find_post(&self.id, key).await? {
                return Ok(Posted {
                    message_id: first.message_id,
                    reply_id: first.reply_id,
                    queued: first.queued,
                });
            }
        }
        let queue = match (&self.reply, if_busy) {
            (None, _) => false,
            (Some(_), IfBusy::Reject) => return Err(ActorError::Refused(Refusal::Replying)),
            (Some(active), IfBusy::Queue) => {
                if self.messages.len() - (active.index + 1) >= MAX_QUEUED {
                    return Err(ActorError::Refused(Refusal::QueueFull));
                }
                true
            }
            (Some(_), IfBusy::Interrupt) => {
                // Barge-in: the old reply ends, with its event, before the new message exists.
                self.interrupt(None).await;
                false
            }
        };

        self.writable()?;
        let user = Message::user(text);
        // The reply's id is chosen now, so that a key's answer is stored with its message.
        let reply = (!queue).then(Message::streaming_reply);
        let (store, seq) = (&self.store, self.messages.len());
        let stored = match key {
            None => store.insert_message(&self.id, self.epoch, seq, &user).await,
            Some(key) => {
                let post = KeyedPost {
                    key,
                    message_id: user.id.clone(),
                    reply_id: reply.as_ref().map(|r| r.id.clone()),
                    queued: queue,
                };
                store
                    .insert_keyed_message(&self.id, self.epoch, seq, &user, &post)
                    .await
            }
        };
        if let Err(e) = stored {
            self.write_failed("cannot store a user message", &e);
            return Err(e.into());
        }
        self.events.publish(Event::UserMessage {
            message_id: &user.id,
            text: &user.text,
        });
        let message_id = user.id.clone();
        self.messages.push(user);
        if queue {
            return Ok(Posted {
                message_id,
                reply_id: None,
                queued: true,
            });
        }
        let at = self.messages.len() - 1;
        let reply = reply.unwrap_or_else(Message::streaming_reply);
        let reply_id = self.start_reply_as(Place::After(at), received, reply).await;
        Ok(Posted {
            message_id,
            reply_id: Some(reply_id),
            queued: false,
        })
    }

    /// Replaces the last assistant reply (interrupting it first if it is in progress) with
    /// a new reply to the history before it.
    pub(super) async fn regenerate(&mut self, received: Instant) -> Result<String, ActorError> {
        let Some(i) = self
            .messages
            .iter()
            .rposition(|m| m.role == Role::Assistant)
        else {
            return Err(ActorError::Refused(Refusal::NoReply));
        };
        self.interrupt(None).await;
        self.writable()?;
        Ok(self.start_reply(Place::Replacing(i), received).await)
    }

    /// Gives user message `message_id` the text `text`, removes every message after it
    /// (a reply in progress is interrupted first), publishes the new history as a `sync`
    /// and starts a new reply to it.
    pub(super) async fn edit(
        &mut self,
        message_id: String,
        text: String,
        received: Instant,
    ) -> Result<Posted, ActorError> {
        let Some(i) = self.messages.iter().position(|m| m.id == message_id) else {
            return Err(ActorError::Refused(Refusal::UnknownMessage));
        };
        if self.messages[i].role != Role::User {
            return Err(ActorError::Refused(Refusal::NotUserMessage));
        }
        self.interrupt(None).await;
        self.writable()?;
        if let Err(e) = self
            .store
            .edit_message(&self.id, self.epoch, &message_id, &text)
            .await
        {
            self.write_failed("cannot store an edit", &e);
            return Err(e.into());
        }
        self.messages.truncate(i + 1);
        self.messages[i].text = text;
        self.events.publish_sync(&self.messages);
        let reply_id = self.start_reply(Place::After(i), received).await;
        Ok(Posted {
            message_id,
            reply_id: Some(reply_id),
            queued: false,
        })
    }

    /// After a failed write (perhaps the interrupt's) the actor changes nothing more.
    pub(super) fn writable(&self) -> Result<(), ActorError> {
        if self.storage_failed() {
            return Err(ActorError::Unavailable("a write to storage failed".into()));
        }
        Ok(())
    }

    /// On start: user messages after the last assistant reply were queued when the
    /// previous actor stopped (or crashed); the first of them gets its reply now.
    pub(super) async fn resume_queue(&mut self) {
        let after = self
            .messages
            .iter()
            .rposition(|m| m.role == Role::Assistant)
            .map_or(0, |i| i + 1);
        self.next_in_queue(after).await;
    }
}
