//! The actor's replies: starting one at its place in the history, taking its provider's
//! events, forwarding provider callbacks to it, ending it — completed, failed or
//! interrupted — with its last event and its stored state, and then starting the reply to
//! the next queued message.

use std::sync::atomic::Ordering;

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{ActiveReply, Actor, CHECKPOINT_EVERY, next_reply_event};
use crate::chat::{Message, Role, Status};
use crate::conversation::events::Event;
use crate::conversation::presence::{BotState, PresenceFrame};
use crate::metrics::Outcome;
use crate::providers::{Callback, CallbackAck, ReplyEvent, ReplyRequest, Turn};

/// Most provider events one turn of the actor takes (see [`Actor::take_ready_events`]).
const READY_PER_TURN: usize = 64;

/// Where a new reply goes in the history.
#[derive(Debug, Clone, Copy)]
pub(super) enum Place {
    /// Right after the user message at this index (at the end, or before later queued
    /// messages).
    After(usize),
    /// In place of the assistant reply at this index (regenerate).
    Replacing(usize),
}

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

    /// Starts a new reply at `place` and returns its id: stores its row (streaming),
    /// publishes `reply.started` (naming the message it answers, and the reply it
    /// replaces) and asks the provider for it with the history before it. No reply may be
    /// running. `received` is when the request behind it arrived, for the metric.
    pub(super) async fn start_reply(&mut self, place: Place, received: Instant) -> String {
        self.start_reply_as(place, received, Message::streaming_reply())
            .await
    }

    /// [`Actor::start_reply`] with the reply's row made already (its id chosen earlier).
    pub(super) async fn start_reply_as(
        &mut self,
        place: Place,
        received: Instant,
        reply: Message,
    ) -> String {
        let at = match place {
            Place::After(i) => i + 1,
            Place::Replacing(i) => i,
        };
        let history: Vec<Turn> = self.messages[..at]
            .iter()
            .filter(|m| !m.text.is_empty())
            .map(|m| Turn {
                role: m.role,
                text: m.text.clone(),
            })
            .collect();
        let in_reply_to = at
            .checked_sub(1)
            .map(|i| &self.messages[i])
            .filter(|m| m.role == Role::User)
            .map(|m| m.id.clone());
        let replaces = match place {
            Place::Replacing(i) => Some(self.messages[i].id.clone()),
            Place::After(_) => None,
        };
        let (store, id, epoch) = (&self.store, &self.id, self.epoch);
        let stored = match (&place, &replaces) {
            (Place::Replacing(_), Some(old)) => {
                Box::pin(store.replace_message(id, epoch, old, &reply)).await
            }
            _ if at == self.messages.len() => {
                Box::pin(store.insert_message(id, epoch, at, &reply)).await
            }
            _ => {
                let after = &self.messages[at - 1].id;
                Box::pin(store.insert_message_after(id, epoch, after, &reply)).await
            }
        };
        if let Err(e) = stored {
            // What came before is stored (so acknowledged), but this reply cannot be: the
            // actor stops before starting it, and the next one answers from storage.
            self.write_failed("cannot store a reply's start", &e);
            return reply.id;
        }
        let reply_id = reply.id.clone();
        let started = self.events.publish(Event::ReplyStarted {
            reply_id: &reply_id,
            provider: &self.provider.info().name.clone(),
            in_reply_to: in_reply_to.as_deref(),
            replaces: replaces.as_deref(),
        });
        self.events.pin_from(started);
        match place {
            Place::Replacing(i) => self.messages[i] = reply,
            Place::After(_) => self.messages.insert(at, reply),
        }
        self.shared.replying.store(true, Ordering::Release);
        let stream = self.provider.start(ReplyRequest {
            conversation_id: self.id.to_string(),
            reply_id: reply_id.clone(),
            history,
        });
        self.reply = Some(ActiveReply {
            index: at,
            id: reply_id.as_str().into(),
            events: stream.events,
            callbacks: stream.callbacks,
            checkpointed_len: 0,
            next_checkpoint: Instant::now() + CHECKPOINT_EVERY,
            awaiting_first: Some(received),
            deadline: self.reply_caps.deadline(),
        });
        self.presence.set_bot(BotState::Thinking);
        reply_id
    }

    /// After a reply ended on its own or by a Stop: the first user message queued behind
    /// it (if any) gets its reply now, placed right after it.
    pub(super) async fn next_in_queue(&mut self, after: usize) {
        if self.reply.is_some() || self.halted() {
            return;
        }
        let next = self.messages[after.min(self.messages.len())..]
            .iter()
            .position(|m| m.role == Role::User)
            .map(|i| after + i);
        if let Some(i) = next {
            self.start_reply(Place::After(i), Instant::now()).await;
        }
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
                let (text, over) = self.reply_caps.fit(self.messages[index].text.len(), &text);
                if !text.is_empty() {
                    self.metrics.delta_published();
                    self.presence.set_bot(BotState::Streaming);
                    self.messages[index].text.push_str(text);
                    self.events.publish(Event::ReplyDelta {
                        reply_id: &reply_id,
                        text,
                    });
                }
                if over {
                    let error = self.reply_caps.too_large();
                    self.end_and_go_on(Status::Failed, Some(error)).await;
                    return;
                }
                if checkpoint_due {
                    self.checkpoint();
                    // A provider that is always ready (the offline bot at full speed)
                    // never lets the loop reach its shutdown branch: look once a second.
                    if self.life.shutdown.is_cancelled() {
                        self.interrupt(None).await;
                    }
                }
            }
            Some(ReplyEvent::Completed) => self.end_and_go_on(Status::Complete, None).await,
            Some(ReplyEvent::Failed(error)) => {
                self.end_and_go_on(Status::Failed, Some(error)).await
            }
            None => {
                let error = "the provider's stream ended before the reply was finished";
                self.end_and_go_on(Status::Failed, Some(error.into())).await;
            }
        }
    }

    /// After a reply event: the deltas the provider has ready now (at most
    /// [`READY_PER_TURN`] in all) join the same turn, so a fast provider's deltas — or
    /// those that queued while the last turn's append was in flight — go to the shared log
    /// in one append. It stops at once when a command waits (an interrupt is never queued
    /// behind them), when nothing more is ready, and after an event that is not a delta.
    pub(super) async fn take_ready_events(&mut self) {
        for _ in 1..READY_PER_TURN {
            if self.halted() || !self.rx.is_empty() {
                return;
            }
            // Its deadline first, as in the actor's loop.
            let Some(ev) = next_reply_event(&mut self.reply, &self.reply_caps).now_or_never()
            else {
                return;
            };
            let delta = matches!(ev, Some(ReplyEvent::Delta(_)));
            self.on_reply_event(ev).await;
            if !delta {
                return;
            }
        }
    }

    /// The reply ended by itself: store its end, then start the next queued one.
    async fn end_and_go_on(&mut self, status: Status, error: Option<String>) {
        let index = self.reply.as_ref().map(|r| r.index);
        self.finish(status, error, None).await;
        if let Some(i) = index {
            Box::pin(self.next_in_queue(i + 1)).await;
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
        // `replying` is cleared at the end of the actor's turn, not here: a queued reply may
        // start in this same turn, and the registry must never see the gap between.
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
        if let Err(e) = Box::pin(self.store.update_message(&self.id, self.epoch, &msg)).await {
            self.write_failed("cannot store a finished reply", &e);
        }
        Some(msg.id)
    }

    /// Ends the reply in progress with `reply.interrupted` (barge-in, regenerate, edit,
    /// stop). The queue does not move on: the caller decides what comes next.
    pub(super) async fn interrupt(&mut self, received: Option<Instant>) -> Option<String> {
        self.finish(Status::Interrupted, None, received).await
    }

    /// A Stop (`POST …/interrupt`, the WebSocket's `interrupt`): the reply in progress is
    /// interrupted, and the next queued message (if any) gets its reply.
    pub(super) async fn stop_reply(&mut self, received: Instant) -> Option<String> {
        let index = self.reply.as_ref().map(|r| r.index);
        let id = self.interrupt(Some(received)).await;
        if let Some(i) = index {
            self.next_in_queue(i + 1).await;
        }
        id
    }
}
