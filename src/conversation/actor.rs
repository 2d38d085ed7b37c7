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
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::events::{Event, Frame, Replay, ReplayLog};
use super::handle::{Command, Presence, Shared, Snapshot, Subscription};
use super::presence::{BotState, PresenceFrame, Typists};
use crate::chat::Message;
use crate::metrics::Metrics;
use crate::providers::{Callback, Provider, ReplyEvent};
use crate::storage::Store;

mod durability;
mod reply;

/// How often (at most) the text of a streaming reply is stored while it grows.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Most frames one subscription hands over at once: a reader far behind takes its replay
/// a page at a time, so what it holds does not grow with the length of the reply.
const REPLAY_PAGE: usize = 1024;
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
    /// The first delta from this moment on stores the text (see `checkpoint`).
    next_checkpoint: Instant,
    /// When the user's message arrived; taken (once) by the first delta, for the metric.
    awaiting_first: Option<Instant>,
}

pub(crate) struct Actor {
    id: Arc<str>,
    provider: Arc<dyn Provider>,
    store: Store,
    messages: Vec<Message>,
    next_id: u64,
    reserved_until: u64,
    /// A new block of event numbers must be reserved before long.
    reserve_needed: bool,
    log: ReplayLog,
    /// The highest event number already in storage's `events` table.
    stored_upto: u64,
    replay_events: usize,
    events: broadcast::Sender<Frame>,
    presence: broadcast::Sender<PresenceFrame>,
    rx: mpsc::Receiver<Command>,
    /// The server's shutdown signal.
    shutdown: CancellationToken,
    /// Cancelled by this actor when it stops, after its last event and write: streams
    /// watch it, and a successor actor waits for it.
    done: CancellationToken,
    idle_timeout: Duration,
    shared: Arc<Shared>,
    /// Asks the registry whether this idle actor may stop (see `Registry::try_retire`).
    may_retire: Box<dyn Fn() -> bool + Send>,
    metrics: Arc<Metrics>,
    bot: BotState,
    typists: Typists,
    reply: Option<ActiveReply>,
    last_active: Instant,
}

/// Everything an actor starts with (built by the registry).
pub(crate) struct ActorParts {
    pub(crate) id: Arc<str>,
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) store: Store,
    pub(crate) messages: Vec<Message>,
    pub(crate) next_id: u64,
    pub(crate) log: ReplayLog,
    pub(crate) stored_upto: u64,
    pub(crate) replay_events: usize,
    pub(crate) events: broadcast::Sender<Frame>,
    pub(crate) presence: broadcast::Sender<PresenceFrame>,
    pub(crate) rx: mpsc::Receiver<Command>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) done: CancellationToken,
    pub(crate) idle_timeout: Duration,
    pub(crate) shared: Arc<Shared>,
    pub(crate) may_retire: Box<dyn Fn() -> bool + Send>,
    pub(crate) metrics: Arc<Metrics>,
}

/// The next event of the reply in progress; pending forever when there is none.
async fn next_reply_event(reply: &mut Option<ActiveReply>) -> Option<ReplyEvent> {
    match reply {
        Some(r) => r.events.next().await,
        None => std::future::pending().await,
    }
}

/// Whether the actor's loop goes on after a command.
enum Flow {
    Continue,
    Stop,
}

impl Actor {
    pub(crate) fn new(p: ActorParts) -> Self {
        Actor {
            id: p.id,
            provider: p.provider,
            store: p.store,
            messages: p.messages,
            next_id: p.next_id,
            reserved_until: p.next_id,
            reserve_needed: false,
            log: p.log,
            stored_upto: p.stored_upto,
            replay_events: p.replay_events,
            events: p.events,
            presence: p.presence,
            rx: p.rx,
            shutdown: p.shutdown,
            done: p.done,
            idle_timeout: p.idle_timeout,
            shared: p.shared,
            may_retire: p.may_retire,
            metrics: p.metrics,
            bot: BotState::Idle,
            typists: Typists::default(),
            reply: None,
            last_active: Instant::now(),
        }
    }

    /// Runs until the server shuts down, the registry retires it, or the conversation has
    /// been idle long enough.
    pub(crate) async fn run(mut self) {
        // Cold paths (start, commands, reservations, stop) are boxed: their futures hold
        // storage queries, and inline they would make every idle actor's task several KiB.
        // Reply events, the hot path, stay inline (their one storage write is boxed).
        Box::pin(self.recover()).await;
        // One shutdown future for the whole loop: making a new one each turn (that is,
        // each token) takes the token's lock and joins and leaves its waiter list. It is
        // polled last, so only on turns where nothing else was ready (every poll of it
        // takes that lock); commands and reply events take their cooperative budget, so
        // a busy actor still gets there within one budget's worth of work.
        let shutdown = self.shutdown.clone().cancelled_owned();
        tokio::pin!(shutdown);
        loop {
            let typing_expiry = self.typists.next_expiry();
            let idle_at = self.last_active + self.idle_timeout;
            tokio::select! {
                biased;
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => {
                        if let Flow::Stop = Box::pin(self.handle(cmd)).await {
                            break;
                        }
                    }
                    None => break,
                },
                ev = next_reply_event(&mut self.reply) => self.on_reply_event(ev).await,
                // Timers are built inside async blocks so that no timer is created on the
                // hot path (per delta) while their branch is disabled.
                _ = async { sleep_until(typing_expiry.unwrap_or(idle_at)).await }, if typing_expiry.is_some() => {
                    for who in self.typists.expire(Instant::now()) {
                        self.announce(PresenceFrame::typing(&who, false));
                    }
                }
                _ = async { sleep_until(idle_at).await }, if self.reply.is_none() => {
                    if self.events.receiver_count() == 0
                        && self.presence.receiver_count() == 0
                        && (self.may_retire)()
                    {
                        tracing::debug!(conversation = %self.id, "idle; stopping");
                        break;
                    }
                    self.last_active = Instant::now();
                }
                _ = &mut shutdown => break,
            }
            if self.reserve_needed {
                Box::pin(self.reserve_event_ids()).await;
            }
        }
        Box::pin(self.stop()).await;
    }

    async fn handle(&mut self, cmd: Command) -> Flow {
        self.last_active = Instant::now();
        match cmd {
            Command::Post {
                text,
                received,
                reply,
            } => {
                let result = self.post(text, received).await;
                let _ = reply.send(result);
            }
            Command::Interrupt { received, reply } => {
                let id = self.interrupt(Some(received)).await;
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
                    typing: self.typists.who().cloned().collect(),
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
            Command::Retire => return Flow::Stop,
            Command::ProviderCallback {
                reply_id,
                callback,
                ack,
            } => {
                let _ = ack.send(self.provider_callback(&reply_id, *callback));
            }
        }
        Flow::Continue
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
        // Half a block of slack: the reservation is written within this turn of the loop.
        if self.next_id + EVENT_ID_BLOCK / 2 >= self.reserved_until {
            self.reserve_needed = true;
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

    fn subscribe(&self, after: Option<u64>) -> Subscription {
        let live = self.events.subscribe();
        let last = self.last_event_id();
        let replay = match after {
            None => Replay::Frames {
                frames: Vec::new(),
                more: false,
            },
            Some(n) => self.log.after(n, last, REPLAY_PAGE),
        };
        match replay {
            Replay::Frames { frames, more } => Subscription {
                last_id: if more {
                    frames.last().map_or(last, |f| f.id)
                } else {
                    last
                },
                backlog: frames.into_iter().map(|f| f.bytes).collect(),
                more,
                live,
            },
            Replay::Snapshot => Subscription {
                backlog: vec![
                    Event::Sync {
                        messages: &self.messages,
                        last_event_id: last,
                    }
                    .encode(last)
                    .bytes,
                ],
                last_id: last,
                more: false,
                live,
            },
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

    /// Last acts: a reply in progress is interrupted and stored, the replay window and
    /// the exact event-number floor are written, and every stream watching this
    /// conversation is ended.
    async fn stop(&mut self) {
        self.interrupt(None).await;
        for who in self
            .typists
            .expire(Instant::now() + Duration::from_secs(3600))
        {
            self.announce(PresenceFrame::typing(&who, false));
        }
        self.save_events().await;
        if let Err(e) = self.store.set_event_id_floor(&self.id, self.next_id).await {
            tracing::warn!(conversation = %self.id, error = %e, "cannot store event-id floor");
        }
        self.done.cancel();
    }
}
