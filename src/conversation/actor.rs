//! The conversation actor: one task per active conversation, the only code that changes a
//! conversation and the only publisher of its events.
//!
//! It owns the history, the reply in progress (it polls the provider's stream itself, as one
//! branch of its `select!`), the numbered event log and the presence state. Because one task
//! decides everything in one order, "no delta after `reply.interrupted`", "event ids rise by
//! one" and "subscribe = replay + live with no gap" hold by construction.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, MissedTickBehavior, sleep_until};
use tokio_util::sync::CancellationToken;

use super::events::{Event, Frame, Replay, ReplayLog};
use super::handle::{ActorError, Command, Posted, Presence, Snapshot, Subscription};
use super::message::{Message, Status};
use super::presence::{BotState, PresenceFrame, Typists};
use crate::providers::{Callback, CallbackAck, Provider, ReplyEvent, ReplyRequest, Turn};
use crate::storage::Store;

/// How often the text of a streaming reply is stored.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Event numbers are reserved in storage this many at a time (see `event_id_floor`).
pub(crate) const EVENT_ID_BLOCK: u64 = 10_000;

struct ActiveReply {
    /// Index of the reply in `messages`.
    index: usize,
    /// The reply's id, shared so that publishing a delta allocates nothing for it.
    id: Arc<str>,
    events: BoxStream<'static, ReplyEvent>,
    /// For callback providers: where this reply's callbacks go.
    callbacks: Option<mpsc::Sender<Callback>>,
    checkpointed_len: usize,
}

pub(crate) struct Actor {
    pub(crate) id: Arc<str>,
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) store: Store,
    pub(crate) messages: Vec<Message>,
    pub(crate) next_id: u64,
    pub(crate) reserved_until: u64,
    pub(crate) log: ReplayLog,
    pub(crate) events: broadcast::Sender<Frame>,
    pub(crate) presence: broadcast::Sender<PresenceFrame>,
    pub(crate) rx: mpsc::Receiver<Command>,
    /// The server's shutdown signal.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled by this actor when it stops, after its last event: streams watch it.
    pub(crate) done: CancellationToken,
    pub(crate) idle_timeout: Duration,
    pub(crate) bot: BotState,
    pub(crate) typists: Typists,
    reply: Option<ActiveReply>,
    last_active: Instant,
}

/// The next event of the reply in progress; pending forever when there is none.
async fn next_reply_event(reply: &mut Option<ActiveReply>) -> Option<ReplyEvent> {
    match reply {
        Some(r) => r.events.next().await,
        None => std::future::pending().await,
    }
}

impl Actor {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: Arc<str>,
        provider: Arc<dyn Provider>,
        store: Store,
        messages: Vec<Message>,
        next_id: u64,
        log: ReplayLog,
        events: broadcast::Sender<Frame>,
        presence: broadcast::Sender<PresenceFrame>,
        rx: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
        done: CancellationToken,
        idle_timeout: Duration,
    ) -> Self {
        Actor {
            id,
            provider,
            store,
            messages,
            next_id,
            reserved_until: next_id,
            log,
            events,
            presence,
            rx,
            shutdown,
            done,
            idle_timeout,
            bot: BotState::Idle,
            typists: Typists::default(),
            reply: None,
            last_active: Instant::now(),
        }
    }

    /// Runs until the server shuts down or the conversation has been idle long enough.
    pub(crate) async fn run(mut self) {
        self.recover().await;
        let mut checkpoint = tokio::time::interval(CHECKPOINT_EVERY);
        checkpoint.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let typing_expiry = self.typists.next_expiry();
            let idle_at = self.last_active + self.idle_timeout;
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                ev = next_reply_event(&mut self.reply) => self.on_reply_event(ev).await,
                _ = checkpoint.tick(), if self.reply.is_some() => self.checkpoint(),
                // Timers are built inside async blocks so that no timer is created on the
                // hot path (per delta) while their branch is disabled.
                _ = async { sleep_until(typing_expiry.unwrap_or(idle_at)).await }, if typing_expiry.is_some() => {
                    for who in self.typists.expire(Instant::now()) {
                        self.announce(PresenceFrame::typing(&who, false));
                    }
                }
                _ = async { sleep_until(idle_at).await }, if self.reply.is_none() => {
                    if self.events.receiver_count() == 0 && self.presence.receiver_count() == 0 {
                        tracing::debug!(conversation = %self.id, "idle; stopping");
                        break;
                    }
                    self.last_active = Instant::now();
                }
            }
        }
        self.stop().await;
    }

    /// Prepares a conversation loaded from storage: a reply left streaming by a previous
    /// actor (a crash or a panic) is marked failed, and a block of event numbers is reserved.
    async fn recover(&mut self) {
        for m in self
            .messages
            .iter_mut()
            .filter(|m| m.status == Status::Streaming)
        {
            m.status = Status::Failed;
            m.error = Some("the reply was cut off by a server restart".into());
            if let Err(e) = self.store.update_message(m).await {
                tracing::warn!(conversation = %self.id, error = %e, "cannot mark abandoned reply");
            }
        }
        self.reserved_until = self.next_id + EVENT_ID_BLOCK;
        if let Err(e) = self
            .store
            .set_event_id_floor(&self.id, self.reserved_until)
            .await
        {
            tracing::warn!(conversation = %self.id, error = %e, "cannot reserve event ids");
        }
    }

    async fn handle(&mut self, cmd: Command) {
        self.last_active = Instant::now();
        match cmd {
            Command::Post { text, reply } => {
                let result = self.post(text).await;
                let _ = reply.send(result);
            }
            Command::Interrupt { reply } => {
                let id = self.interrupt().await;
                let _ = reply.send(id);
            }
            Command::Subscribe { after, reply } => {
                let _ = reply.send(self.subscribe(after));
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Command::Join { reply } => {
                let _ = reply.send(Presence {
                    bot: self.bot,
                    live: self.presence.subscribe(),
                });
            }
            Command::Typing {
                participant,
                active,
            } => {
                if self.typists.set(&participant, active, Instant::now()) {
                    self.announce(PresenceFrame::typing(&participant, active));
                }
            }
            Command::ProviderCallback {
                reply_id,
                callback,
                ack,
            } => {
                let _ = ack.send(self.provider_callback(&reply_id, callback));
            }
        }
    }

    /// Forwards a callback to the running reply if it is the one it belongs to. A late
    /// callback (after an interrupt, a barge-in or the reply's end) changes nothing.
    fn provider_callback(&self, reply_id: &str, callback: Callback) -> CallbackAck {
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

    fn last_event_id(&self) -> u64 {
        self.next_id - 1
    }

    /// Numbers, encodes and publishes one event; the only place event numbers are given.
    fn publish(&mut self, event: Event<'_>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let frame = event.encode(id);
        self.log.push(frame.clone());
        // No receivers is fine: the log keeps the event for whoever comes later.
        let _ = self.events.send(frame);
        if self.next_id + EVENT_ID_BLOCK / 2 >= self.reserved_until {
            self.reserved_until = self.next_id + EVENT_ID_BLOCK;
            let (store, conv, floor) = (self.store.clone(), self.id.clone(), self.reserved_until);
            tokio::spawn(async move {
                if let Err(e) = store.set_event_id_floor(&conv, floor).await {
                    tracing::warn!(conversation = %conv, error = %e, "cannot reserve event ids");
                }
            });
        }
        id
    }

    fn announce(&self, frame: PresenceFrame) {
        let _ = self.presence.send(frame);
    }

    fn set_bot(&mut self, state: BotState) {
        if self.bot != state {
            self.bot = state;
            self.announce(PresenceFrame::bot(state));
        }
    }

    async fn post(&mut self, text: String) -> Result<Posted, ActorError> {
        // Barge-in: the old reply ends, with its event, before the new message exists.
        self.interrupt().await;

        let user = Message::user(text);
        self.store
            .insert_message(&self.id, self.messages.len(), &user)
            .await
            .map_err(|e| ActorError::Storage(e.to_string()))?;
        self.publish(Event::UserMessage {
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
        let started = self.publish(Event::ReplyStarted {
            reply_id: &reply_id,
            provider: &self.provider.info().name.clone(),
        });
        self.log.pin_from(started);
        self.messages.push(reply);
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
        });
        self.set_bot(BotState::Thinking);
        Ok(Posted {
            message_id,
            reply_id,
        })
    }

    async fn on_reply_event(&mut self, ev: Option<ReplyEvent>) {
        match ev {
            Some(ReplyEvent::Delta(text)) => {
                let Some((index, reply_id)) = self.reply.as_ref().map(|r| (r.index, r.id.clone()))
                else {
                    return;
                };
                if text.is_empty() {
                    return;
                }
                self.set_bot(BotState::Streaming);
                self.messages[index].text.push_str(&text);
                self.publish(Event::ReplyDelta {
                    reply_id: &reply_id,
                    text: &text,
                });
            }
            Some(ReplyEvent::Completed) => {
                self.finish(Status::Complete, None).await;
            }
            Some(ReplyEvent::Failed(error)) => {
                self.finish(Status::Failed, Some(error)).await;
            }
            None => {
                let error = "the provider's stream ended before the reply was finished";
                self.finish(Status::Failed, Some(error.into())).await;
            }
        }
    }

    /// Ends the reply in progress with `status`, publishing its last event and storing it.
    /// Returns the reply's id, or `None` if no reply was running.
    async fn finish(&mut self, status: Status, error: Option<String>) -> Option<String> {
        // Dropping the stream cancels the provider's upstream work.
        let active = self.reply.take()?;
        let msg = &mut self.messages[active.index];
        msg.status = status;
        msg.error = error;
        let msg = msg.clone();
        match status {
            Status::Complete => self.publish(Event::ReplyCompleted {
                reply_id: &msg.id,
                text: &msg.text,
            }),
            Status::Interrupted => self.publish(Event::ReplyInterrupted {
                reply_id: &msg.id,
                text: &msg.text,
            }),
            _ => self.publish(Event::ReplyFailed {
                reply_id: &msg.id,
                error: msg.error.as_deref().unwrap_or("the reply failed"),
                text: &msg.text,
            }),
        };
        self.log.unpin();
        if status == Status::Interrupted {
            self.announce(PresenceFrame::interrupted(&msg.id));
        }
        self.set_bot(BotState::Idle);
        if let Err(e) = self.store.update_message(&msg).await {
            tracing::error!(conversation = %self.id, error = %e, "cannot store finished reply");
        }
        Some(msg.id)
    }

    async fn interrupt(&mut self) -> Option<String> {
        self.finish(Status::Interrupted, None).await
    }

    fn subscribe(&self, after: Option<u64>) -> Subscription {
        let live = self.events.subscribe();
        let last = self.last_event_id();
        let backlog = match after.map(|n| self.log.after(n, last)) {
            None => Vec::new(),
            Some(Replay::Frames(frames)) => frames,
            Some(Replay::Snapshot) => vec![
                Event::Sync {
                    messages: &self.messages,
                    last_event_id: last,
                }
                .encode(last)
                .bytes,
            ],
        };
        Subscription {
            backlog,
            last_id: last,
            live,
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            id: self.id.to_string(),
            provider: self.provider.info().name.clone(),
            messages: self.messages.clone(),
            last_event_id: self.last_event_id(),
        }
    }

    /// Stores the streaming reply's text if it grew; the write runs beside the actor.
    fn checkpoint(&mut self) {
        let Some(active) = self.reply.as_mut() else {
            return;
        };
        let msg = &self.messages[active.index];
        if msg.text.len() == active.checkpointed_len {
            return;
        }
        active.checkpointed_len = msg.text.len();
        let (store, id, text) = (self.store.clone(), msg.id.clone(), msg.text.clone());
        tokio::spawn(async move {
            if let Err(e) = store.checkpoint_reply(&id, &text).await {
                tracing::warn!(error = %e, "cannot checkpoint reply");
            }
        });
    }

    /// Last acts: a reply in progress is interrupted and stored, the exact event-number
    /// floor is written, and every stream watching this conversation is ended.
    async fn stop(&mut self) {
        self.interrupt().await;
        for who in self
            .typists
            .expire(Instant::now() + Duration::from_secs(3600))
        {
            self.announce(PresenceFrame::typing(&who, false));
        }
        if let Err(e) = self.store.set_event_id_floor(&self.id, self.next_id).await {
            tracing::warn!(conversation = %self.id, error = %e, "cannot store event-id floor");
        }
        self.done.cancel();
    }
}
