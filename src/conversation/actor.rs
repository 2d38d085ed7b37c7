//! The conversation actor: one task per active conversation, the only code that changes a
//! conversation and the only publisher of its events.
//!
//! It owns the history, the reply in progress (it polls the provider's stream itself, as one
//! branch of its `select!`), its numbered events (`publisher.rs`: numbering, the replay log
//! and the live broadcast, behind the one door `publish`), the presence state and its own
//! lifetime. Because one task decides everything in one order, "no delta after
//! `reply.interrupted`", "event ids rise by one" and "subscribe = replay + live with no
//! gap" hold by construction. [`Actor::spawn`] builds it — channels, handle, task — so the
//! registry only decides when to start one and hears when it ends.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handle::{Command, ConversationHandle, Shared, Snapshot};
use super::presence::PresenceHub;
use crate::chat::Message;
use crate::metrics::Metrics;
use crate::providers::{Callback, Provider, ReplyEvent};
use crate::storage::{Epoch, Store, StoreError, StoredConversation, StoredEvent};
use publisher::Publisher;

mod caps;
mod durability;
mod manage;
mod operations;
mod owner;
mod publisher;
mod reply;
mod takeover;

pub(crate) use caps::ReplyCaps;
use owner::OwnerLink;
pub(crate) use owner::OwnerStart;

/// How often (at most) the text of a streaming reply is stored while it grows.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// What every actor of a server starts with; the registry keeps one and hands it to
/// [`Actor::spawn`].
#[derive(Clone)]
pub(crate) struct ActorEnv {
    pub(crate) store: Store,
    pub(crate) metrics: Arc<Metrics>,
    /// The server's shutdown signal.
    pub(crate) shutdown: CancellationToken,
    /// Actors run on it, so shutdown waits for their last writes.
    pub(crate) tracker: TaskTracker,
    pub(crate) idle_timeout: Duration,
    /// Events kept for resumes (`Limits::replay_events`).
    pub(crate) replay_events: usize,
    /// Commands waiting for one actor (`Limits::mailbox`).
    pub(crate) mailbox: usize,
    /// Slots of the live broadcast (`Limits::broadcast_capacity`).
    pub(crate) broadcast_capacity: usize,
    /// How long and how large a reply may grow.
    pub(crate) reply_caps: ReplyCaps,
}

/// The other side of an actor's life (the registry): it decides whether an idle actor
/// may stop, and hears when its task has ended.
pub(crate) trait Supervisor: Send + Sync + 'static {
    /// Asked by an actor whose idle time is up: may it stop now?
    fn may_retire(&self) -> bool;
    /// The actor's task has ended (its `done` token is cancelled), with the panic's
    /// message if it panicked.
    fn ended(&self, panic: Option<String>);
}

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
    /// `--max-reply-secs` from the reply's start.
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

/// When an actor stops: shutdown, retirement, or idleness its supervisor agrees to.
struct Lifetime {
    shutdown: CancellationToken,
    /// Cancelled by this actor when it stops, after its last event and write: WebSocket
    /// sessions watch it, and a successor actor waits for it.
    done: CancellationToken,
    idle_timeout: Duration,
    last_active: Instant,
    supervisor: Arc<dyn Supervisor>,
}

pub(crate) struct Actor {
    id: Arc<str>,
    provider: Arc<dyn Provider>,
    store: Store,
    /// This actor's ownership epoch: every write it makes carries it (see `storage`).
    epoch: Epoch,
    metrics: Arc<Metrics>,
    messages: Vec<Message>,
    /// Event numbers, the replay log and the live broadcast.
    events: Publisher,
    presence: PresenceHub,
    rx: mpsc::Receiver<Command>,
    life: Lifetime,
    /// What the actor and its handles share (the `replying` flag, subscriber places).
    shared: Arc<Shared>,
    reply: Option<ActiveReply>,
    /// Cluster mode: the lease, the shared log, presence for every node.
    link: Option<OwnerLink>,
    /// The lease was lost: stop at once and write nothing more.
    lost: bool,
    reply_caps: ReplyCaps,
    /// The conversation was deleted: stop at once, nothing left to write.
    deleted: bool,
}

/// The next event of the reply in progress (its deadline first: a provider that is always
/// ready must not outrun it); pending forever when there is none.
async fn next_reply_event(reply: &mut Option<ActiveReply>, caps: &ReplyCaps) -> Option<ReplyEvent> {
    match reply {
        Some(r) => tokio::select! {
            biased;
            () = &mut r.deadline => Some(ReplyEvent::Failed(caps.too_long())),
            ev = r.events.next() => ev,
        },
        None => std::future::pending().await,
    }
}

/// Whether the actor's loop goes on after a command.
enum Flow {
    Continue,
    Stop,
}

impl Actor {
    /// Starts the actor of a stored conversation (with the replay window storage kept)
    /// on the tracker and returns its handle. The mailbox, the broadcast channels, the
    /// `done` token and the task are made here; a panic is caught and reported to the
    /// supervisor, which also hears of a normal end.
    pub(crate) fn spawn(
        env: &ActorEnv,
        stored: StoredConversation,
        events: Vec<StoredEvent>,
        provider: Arc<dyn Provider>,
        generation: u64,
        supervisor: Arc<dyn Supervisor>,
        owner: Option<OwnerStart>,
    ) -> ConversationHandle {
        let id: Arc<str> = stored.id.into();
        let (tx, rx) = mpsc::channel(env.mailbox);
        // Not a child of the shutdown token: WebSocket sessions must outlive the shutdown
        // signal long enough to carry the actor's last frames; the actor cancels it.
        let done = CancellationToken::new();
        let shared = Arc::new(Shared::default());
        let handle = ConversationHandle {
            id: id.clone(),
            token_hash: stored.token_hash.into(),
            owner: stored.owner.map(Into::into),
            provider: provider.info().name.clone().into(),
            tx,
            cancel: done.clone(),
            generation,
            shared: shared.clone(),
            lease: Arc::new(()),
        };
        let floor = stored.event_id_floor.max(1);
        let mut actor = Actor {
            id: id.clone(),
            provider,
            store: env.store.clone(),
            epoch: stored.owner_epoch,
            metrics: env.metrics.clone(),
            messages: stored.messages,
            events: Publisher::new(
                stored.event_id_floor,
                events,
                env.replay_events,
                env.broadcast_capacity,
            ),
            presence: PresenceHub::new(),
            rx,
            life: Lifetime {
                shutdown: env.shutdown.clone(),
                done: done.clone(),
                idle_timeout: env.idle_timeout,
                last_active: Instant::now(),
                supervisor: supervisor.clone(),
            },
            shared,
            reply: None,
            link: owner.map(|o| OwnerLink::new(o, floor)),
            lost: false,
            reply_caps: env.reply_caps,
            deleted: false,
        };
        if actor.link.is_some() {
            actor.events.keep_outbox();
            actor.presence.keep_outbox();
        }
        env.tracker.spawn(async move {
            let panic = AssertUnwindSafe(actor.run()).catch_unwind().await.err();
            let message = panic.map(|p| {
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            });
            done.cancel();
            supervisor.ended(message);
        });
        handle
    }

    /// Runs until the server shuts down, the registry retires it, or the conversation has
    /// been idle long enough.
    pub(crate) async fn run(mut self) {
        // Cold paths (start, commands, reservations, stop) are boxed: their futures hold
        // storage queries, and inline they would make every idle actor's task several KiB.
        // Reply events, the hot path, stay inline (their one storage write is boxed).
        let cut = match self.link.as_ref().is_some_and(OwnerLink::needs_sync) {
            true => Box::pin(self.take_over()).await,
            false => Vec::new(),
        };
        Box::pin(self.recover()).await;
        if self.halted() {
            Box::pin(self.stop()).await;
            return;
        }
        self.end_cut_off(cut);
        Box::pin(self.resume_queue()).await;
        Box::pin(self.flush()).await;
        // One shutdown future for the whole loop: making a new one each turn (that is,
        // each token) takes the token's lock and joins and leaves its waiter list. It is
        // polled last, so only on turns where nothing else was ready (every poll of it
        // takes that lock); commands and reply events take their cooperative budget, so
        // a busy actor still gets there within one budget's worth of work.
        let shutdown = self.life.shutdown.clone().cancelled_owned();
        tokio::pin!(shutdown);
        loop {
            if self.halted() {
                break;
            }
            let typing_expiry = self.presence.next_expiry();
            let idle_at = self.life.last_active + self.life.idle_timeout;
            let renew_at = self.link.as_ref().map(OwnerLink::renew_at);
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
                ev = next_reply_event(&mut self.reply, &self.reply_caps) => {
                    self.on_reply_event(ev).await;
                    self.take_ready_events().await;
                }
                // Timers are built inside async blocks so that no timer is created on the
                // hot path (per delta) while their branch is disabled.
                _ = async { sleep_until(typing_expiry.unwrap_or(idle_at)).await }, if typing_expiry.is_some() => {
                    self.presence.expire(Instant::now());
                }
                _ = async { sleep_until(idle_at).await }, if self.reply.is_none() => {
                    if self.events.subscribers() == 0
                        && self.presence.listeners() == 0
                        && self.life.supervisor.may_retire()
                    {
                        tracing::debug!(conversation = %self.id, "idle; stopping");
                        break;
                    }
                    self.life.last_active = Instant::now();
                }
                _ = async { sleep_until(renew_at.unwrap_or(idle_at)).await }, if renew_at.is_some() => {
                    Box::pin(self.renew()).await;
                }
                _ = &mut shutdown => break,
            }
            if self.reply.is_none() && self.shared.replying.load(Ordering::Relaxed) {
                // Cleared only here, at the end of a turn: a reply that ended may have
                // started the next queued one in the same turn (see `reply.rs`).
                self.shared.replying.store(false, Ordering::Release);
            }
            if self.events.reservation_due() {
                Box::pin(self.reserve_event_ids()).await;
            }
            // A failed (or fenced) write: this turn's frames must not reach the log.
            if self.halted() {
                break;
            }
            if let Some(link) = self.link.as_ref() {
                let changed = link.replying_changed(self.reply.is_some());
                self.flush().await;
                if changed && !self.lost {
                    Box::pin(self.renew()).await;
                }
            }
        }
        Box::pin(self.stop()).await;
    }

    async fn handle(&mut self, cmd: Command) -> Flow {
        self.life.last_active = Instant::now();
        match cmd {
            Command::Post {
                message,
                if_busy,
                received,
                reply,
            } => {
                let (text, key) = *message;
                let result = self.post(text, if_busy, key, received).await;
                let _ = reply.send(result);
            }
            Command::Regenerate { received, reply } => {
                let _ = reply.send(self.regenerate(received).await);
            }
            Command::Edit {
                edit,
                received,
                reply,
            } => {
                let (message_id, text) = *edit;
                let _ = reply.send(self.edit(message_id, text, received).await);
            }
            Command::Interrupt { received, reply } => {
                let id = self.stop_reply(received).await;
                let _ = reply.send(id);
            }
            Command::Subscribe { after, reply } => {
                let _ = reply.send(self.events.subscribe(after, &self.messages));
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Command::Join { reply } => {
                let _ = reply.send(self.presence.join());
            }
            Command::Typing {
                participant,
                active,
            } => {
                self.presence.typing(&participant, active, Instant::now());
            }
            Command::Retire => return Flow::Stop,
            Command::Rename { title, reply } => {
                let _ = reply.send(self.rename(&title).await);
            }
            Command::Delete { reply } => {
                let (result, flow) = self.delete().await;
                let _ = reply.send(result);
                return flow;
            }
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

    /// Cluster mode: this turn's frames to the shared log, its presence to every node.
    async fn flush(&mut self) {
        let frames = self.events.take_outbox();
        let presence = self.presence.take_outbox();
        let keep_from = self.events.keep_from();
        if let Some(link) = self.link.as_mut()
            && link
                .flush(&self.id, frames, presence, keep_from)
                .await
                .is_err()
        {
            self.lost = true;
        }
    }

    async fn renew(&mut self) {
        let replying = self.reply.is_some();
        if let Some(link) = self.link.as_mut()
            && link.renew(&self.id, replying).await.is_err()
        {
            self.lost = true;
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            id: self.id.to_string(),
            provider: self.provider.info().name.clone(),
            messages: self.messages.clone(),
            last_event_id: self.events.last_id(),
        }
    }

    /// A write of this actor failed (the database is unreachable, or a newer owner has
    /// claimed the conversation). Logged; the actor stops at the end of this turn.
    fn write_failed(&self, what: &str, e: &StoreError) {
        if matches!(e, StoreError::Fenced { .. }) {
            if let Some(link) = &self.link {
                link.fenced();
            }
            tracing::warn!(conversation = %self.id, error = %e, "{what}: no longer the owner; stopping");
        } else {
            tracing::error!(conversation = %self.id, error = %e, "{what}; stopping");
        }
        self.shared.storage_failed.store(true, Ordering::Release);
    }

    fn storage_failed(&self) -> bool {
        self.shared.storage_failed.load(Ordering::Acquire)
    }

    /// Whether this actor must stop without further writes or frames: a write failed or
    /// was fenced, or (cluster mode) the lease was lost.
    fn halted(&self) -> bool {
        self.lost || self.storage_failed()
    }

    /// Last acts: a reply in progress is interrupted and stored, the replay window and
    /// the exact event-number floor are written, and `done` is cancelled (WebSocket
    /// sessions end on it; SSE streams end when the actor, and with it the only sender of
    /// their broadcast channel, is dropped right after).
    ///
    /// After a failed write none of that happens: what this actor holds may differ from
    /// what is stored, so it publishes and writes nothing more (as if it had crashed). The
    /// reply in progress is dropped (cancelling it upstream); streams end with a `retry:`
    /// hint, and the next actor starts from storage, marks the reply failed with its last
    /// checkpoint and numbers events above the reserved floor.
    async fn stop(&mut self) {
        if self.deleted {
            // Nothing is left to store; streams end now, a request after this finds nothing.
            self.reply = None;
            self.shared.replying.store(false, Ordering::Release);
            if let Some(link) = self.link.as_ref() {
                link.announce_deleted(&self.id).await;
                link.release(&self.id).await;
            }
            self.life.done.cancel();
            return;
        }
        if self.halted() {
            // Another node owns the conversation (the lease was lost or a write was
            // fenced), or storage failed: drop the reply (cancelling upstream) and leave
            // storage and the log to the next owner.
            match self.lost {
                true => {
                    tracing::info!(conversation = %self.id, "lease lost; stopping without writes")
                }
                false => {
                    tracing::info!(conversation = %self.id, "a write failed or was fenced; stopping without writes")
                }
            }
            self.reply = None;
            self.shared.replying.store(false, Ordering::Release);
            if let (false, Some(link)) = (self.lost, self.link.as_ref()) {
                // Still the lease holder (storage failed): let the next owner in now
                // rather than after the lease lapses.
                link.release(&self.id).await;
            }
            self.life.done.cancel();
            return;
        }
        self.interrupt(None).await;
        self.presence
            .expire(Instant::now() + Duration::from_secs(3600));
        self.save_events().await;
        if let Err(e) = self
            .store
            .set_event_id_floor(&self.id, self.epoch, self.events.next_id())
            .await
        {
            tracing::warn!(conversation = %self.id, error = %e, "cannot store event-id floor");
        }
        if self.link.is_some() {
            self.flush().await;
            if let (false, Some(link)) = (self.lost, self.link.as_ref()) {
                link.release(&self.id).await;
            }
        }
        self.life.done.cancel();
    }
}
