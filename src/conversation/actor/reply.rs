//! The actor's replies: starting one for a new message (interrupting the one in progress
//! first), taking its provider's events, forwarding provider callbacks to it, and ending
//! it — completed, failed or interrupted — with its last event and its stored state.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{ActiveReply, Actor, CHECKPOINT_EVERY};
use crate::chat::{Message, Status};
use crate::conversation::events::Event;
use crate::conversation::handle::{ActorError, Posted};
use crate::conversation::presence::{BotState, PresenceFrame};
use crate::metrics::Outcome;
use crate::providers::{Callback, CallbackAck, ReplyEvent, ReplyRequest, Turn};

impl Actor {
    /// Forwards a callback to the running reply if it is the one it belongs to. A late
    /// callback (after an interrupt, a barge-in or the reply's end) changes nothing.
    pub(super) fn provider_callback(&self, reply_id: &str, callback: Callback) -> CallbackAck {
        let Some(active) = &self.reply else {
            return CallbackAck::Late;
        };
        if self.messages[active.index].id != reply_id {
            return CallbackAck::Late;
        }
        match &active.callbacks {
            Some(tx) => match tx.try_send(callback) {
                Ok(()) => CallbackAck::Accepted,
                Err(mpsc::error::TrySendError::Full(_)) => CallbackAck::Busy,
                Err(mpsc::error::TrySendError::Closed(_)) => CallbackAck::Late,
            },
            None => CallbackAck::Late,
        }
    }

    pub(super) async fn post(
        &mut self,
        text: String,
        received: Instant,
    ) -> Result<Posted, ActorError> {
        // Barge-in: the old reply ends, with its event, before the new message exists.
        self.interrupt(None).await;

        let user = Message::user(text);
        self.store
            .insert_message(&self.id, self.messages.len(), &user)
            .await
            .map_err(|e| ActorError::Storage(e.to_string()))?;
        self.events.publish(Event::UserMessage {
            message_id: &user.id,
            text: &user.text,
        });
        let message_id = user.id.clone();
        self.messages.push(user);

        let history: Vec<Turn> = self
            .messages
            .iter()
            .filter(|m| !m.text.is_empty())
            .map(|m| Turn {
                role: m.role,
                text: m.text.clone(),
            })
            .collect();
        let reply = Message::streaming_reply();
        if let Err(e) = self
            .store
            .insert_message(&self.id, self.messages.len(), &reply)
            .await
        {
            // The reply still runs; its final state is written when it ends.
            tracing::warn!(conversation = %self.id, error = %e, "cannot store reply start");
        }
        let reply_id = reply.id.clone();
        let started = self.events.publish(Event::ReplyStarted {
            reply_id: &reply_id,
            provider: &self.provider.info().name.clone(),
        });
        self.events.pin_from(started);
        self.messages.push(reply);
        self.shared.replying.store(true, Ordering::Release);
        let stream = self.provider.start(ReplyRequest {
            conversation_id: self.id.to_string(),
            reply_id: reply_id.clone(),
            history,
        });
        self.reply = Some(ActiveReply {
            index: self.messages.len() - 1,
            id: reply_id.as_str().into(),
            events: stream.events,
            callbacks: stream.callbacks,
            checkpointed_len: 0,
            next_checkpoint: Instant::now() + CHECKPOINT_EVERY,
            awaiting_first: Some(received),
        });
        self.presence.set_bot(BotState::Thinking);
        Ok(Posted {
            message_id,
            reply_id,
        })
    }

    pub(super) async fn on_reply_event(&mut self, ev: Option<ReplyEvent>) {
        match ev {
            Some(ReplyEvent::Delta(text)) => {
                let Some(active) = self.reply.as_mut() else {
                    return;
                };
                if text.is_empty() {
                    return;
                }
                let (index, reply_id) = (active.index, active.id.clone());
                let checkpoint_due = active.next_checkpoint <= Instant::now();
                if let Some(received) = active.awaiting_first.take() {
                    self.metrics.time_to_first_token(received.elapsed());
                }
                self.metrics.delta_published();
                self.presence.set_bot(BotState::Streaming);
                self.messages[index].text.push_str(&text);
                self.events.publish(Event::ReplyDelta {
                    reply_id: &reply_id,
                    text: &text,
                });
                if checkpoint_due {
                    self.checkpoint();
                }
            }
            Some(ReplyEvent::Completed) => {
                self.finish(Status::Complete, None, None).await;
            }
            Some(ReplyEvent::Failed(error)) => {
                self.finish(Status::Failed, Some(error), None).await;
            }
            None => {
                let error = "the provider's stream ended before the reply was finished";
                self.finish(Status::Failed, Some(error.into()), None).await;
            }
        }
    }

    /// Ends the reply in progress with `status`, publishing its last event and storing it.
    /// Returns the reply's id, or `None` if no reply was running. `interrupt_received` is
    /// when an interrupt command arrived, for the interrupt-latency metric.
    async fn finish(
        &mut self,
        status: Status,
        error: Option<String>,
        interrupt_received: Option<Instant>,
    ) -> Option<String> {
        // Dropping the stream cancels the provider's upstream work.
        let active = self.reply.take()?;
        let msg = &mut self.messages[active.index];
        msg.status = status;
        msg.error = error;
        let msg = msg.clone();
        match status {
            Status::Complete => self.events.publish(Event::ReplyCompleted {
                reply_id: &msg.id,
                text: &msg.text,
            }),
            Status::Interrupted => self.events.publish(Event::ReplyInterrupted {
                reply_id: &msg.id,
                text: &msg.text,
            }),
            _ => self.events.publish(Event::ReplyFailed {
                reply_id: &msg.id,
                error: msg.error.as_deref().unwrap_or("the reply failed"),
                text: &msg.text,
            }),
        };
        self.events.unpin();
        self.shared.replying.store(false, Ordering::Release);
        self.metrics.reply_finished(match status {
            Status::Complete => Outcome::Completed,
            Status::Interrupted => Outcome::Interrupted,
            _ => Outcome::Failed,
        });
        if let Some(received) = interrupt_received {
            self.metrics.interrupt_latency(received.elapsed());
        }
        if status == Status::Interrupted {
            self.presence.announce(PresenceFrame::interrupted(&msg.id));
        }
        self.presence.set_bot(BotState::Idle);
        if let Err(e) = Box::pin(self.store.update_message(&msg)).await {
            tracing::error!(conversation = %self.id, error = %e, "cannot store finished reply");
        }
        Some(msg.id)
    }

    pub(super) async fn interrupt(&mut self, received: Option<Instant>) -> Option<String> {
        self.finish(Status::Interrupted, None, received).await
    }
}
