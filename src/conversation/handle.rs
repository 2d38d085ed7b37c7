//! The cloneable handle to one conversation actor, and the commands it understands.
//!
//! Every method sends one command into the actor's bounded mailbox and, where an answer is
//! needed, awaits it on a `oneshot`. A full mailbox is reported as [`ActorError::Busy`]
//! (the web layer answers 503 with `Retry-After`) instead of waiting without end.
//!
//! Holding a handle is a lease: the registry lets an actor go to sleep (idle eviction)
//! only when nobody but the registry holds its handle, no reply runs and its mailbox is
//! empty. A request holds one while it runs, an SSE stream or WebSocket session for its
//! whole life, so "idle" needs no bookkeeping that could drift.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::events::Frame;
use super::presence::Presence;
use crate::chat::Message;
use crate::providers::{Callback, CallbackAck};

/// Why a command did not reach its answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ActorError {
    #[error("the conversation is busy")]
    Busy,
    #[error("the conversation actor has stopped")]
    Gone,
    #[error("no such conversation")]
    NotFound,
    #[error("too many conversations are active")]
    Full,
    /// Storage cannot be reached (or no longer takes this actor's writes): try again
    /// shortly.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage: {0}")]
    Storage(String),
    /// Cluster mode: Redis, or the node that owns the conversation, did not answer.
    #[error("the conversation's owner is unreachable")]
    Unreachable,
    /// The actor decided against the command; nothing changed.
    #[error("{0}")]
    Refused(Refusal),
}

/// Why the actor turned down a conversation operation (nothing was stored or published).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `if_busy: "reject"` while a reply streams.
    #[error("a reply is streaming")]
    Replying,
    /// `if_busy: "queue"` with [`MAX_QUEUED`] messages already waiting.
    #[error("too many messages are queued")]
    QueueFull,
    /// Regenerate with no assistant reply in the history.
    #[error("there is no reply to regenerate")]
    NoReply,
    /// Edit of a message id the conversation does not have.
    #[error("no such message")]
    UnknownMessage,
    /// Edit of an assistant message.
    #[error("only user messages can be edited")]
    NotUserMessage,
}

/// Who asks to use a conversation: the holder of its token, or an owner (a browser
/// session's or a verified JWT's).
#[derive(Debug, Clone)]
pub enum Caller {
    Token(String),
    Owner(String),
}

impl Caller {
    /// Does this caller's credential open a conversation with this token hash and owner?
    pub fn admitted(&self, token_hash: &str, owner: Option<&str>) -> bool {
        match self {
            Caller::Token(t) => crate::ids::token_matches(t, token_hash),
            Caller::Owner(o) => owner == Some(o.as_str()),
        }
    }
}

/// How many posted messages may wait for their reply (`if_busy: "queue"`).
pub const MAX_QUEUED: usize = 8;

/// What a post does while a reply streams (`if_busy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfBusy {
    /// Barge-in: the reply in progress is interrupted (v1).
    #[default]
    Interrupt,
    /// Stored and published now; its reply starts after the current one's last event.
    Queue,
    /// Refused ([`Refusal::Replying`]); nothing stored.
    Reject,
}

impl std::str::FromStr for IfBusy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "interrupt" => Ok(IfBusy::Interrupt),
            "queue" => Ok(IfBusy::Queue),
            "reject" => Ok(IfBusy::Reject),
            _ => Err(()),
        }
    }
}

impl From<crate::storage::StoreError> for ActorError {
    fn from(e: crate::storage::StoreError) -> Self {
        use crate::storage::StoreError;
        match e {
            StoreError::NotFound(_) => ActorError::NotFound,
            StoreError::Unavailable(_) | StoreError::Fenced { .. } => {
                ActorError::Unavailable(e.to_string())
            }
            e => ActorError::Storage(e.to_string()),
        }
    }
}

/// The ids of a posted (or edited) message and of the reply it starts; a queued message
/// has no reply yet (`reply_id` is `None`, `queued` is true).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Posted {
    pub message_id: String,
    pub reply_id: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub queued: bool,
}

/// The conversation as a page or `GET` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    pub id: String,
    pub provider: String,
    pub messages: Vec<Message>,
    pub last_event_id: u64,
}

/// What a new SSE subscriber gets, in one step: the frames it missed, then the live feed.
pub struct Subscription {
    /// Frames to send first (the replay, or a `sync` snapshot), already encoded.
    pub backlog: Vec<Bytes>,
    /// The id of the last frame in `backlog` (or the one the client already had).
    pub last_id: u64,
    /// The replay did not fit in one page: after `backlog`, subscribe again after
    /// `last_id` instead of reading `live` (which would skip the rest).
    pub more: bool,
    pub live: broadcast::Receiver<Frame>,
}

pub(crate) enum Command {
    Post {
        /// The text and the request's `Idempotency-Key` (boxed: see `commands_stay_small`).
        message: Box<(String, Option<String>)>,
        if_busy: IfBusy,
        /// When the request arrived, for the time-to-first-token metric.
        received: Instant,
        reply: oneshot::Sender<Result<Posted, ActorError>>,
    },
    /// Replace the last assistant reply with a new one; answers the new reply's id.
    Regenerate {
        received: Instant,
        reply: oneshot::Sender<Result<String, ActorError>>,
    },
    /// Replace a user message's text, drop every later message, start a new reply.
    Edit {
        /// The message id and its new text (boxed: see `commands_stay_small`).
        edit: Box<(String, String)>,
        received: Instant,
        reply: oneshot::Sender<Result<Posted, ActorError>>,
    },
    Interrupt {
        /// When the request arrived, for the interrupt-latency metric.
        received: Instant,
        reply: oneshot::Sender<Option<String>>,
    },
    Subscribe {
        after: Option<u64>,
        reply: oneshot::Sender<Subscription>,
    },
    Snapshot {
        reply: oneshot::Sender<Snapshot>,
    },
    Join {
        reply: oneshot::Sender<Presence>,
    },
    Typing {
        participant: Arc<str>,
        active: bool,
    },
    /// A verified provider callback for reply `reply_id`; applied only if that reply is
    /// still the one running.
    ProviderCallback {
        reply_id: String,
        /// Boxed: every slot of every mailbox is as large as the largest command.
        callback: Box<Callback>,
        ack: oneshot::Sender<CallbackAck>,
    },
    /// Stop now: the registry has chosen this idle actor to make room.
    Retire,
    /// Give the conversation this title.
    Rename {
        title: String,
        reply: oneshot::Sender<Result<(), ActorError>>,
    },
    /// Remove the conversation from storage and stop (its streams end).
    Delete {
        reply: oneshot::Sender<Result<(), ActorError>>,
    },
}

/// What the actor and every handle of one conversation share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// A reply is running (set by the actor only).
    pub(crate) replying: AtomicBool,
    /// A write of the actor failed: it stops without writing more (set once, never reset;
    /// the next actor of the conversation gets a new `Shared`).
    pub(crate) storage_failed: AtomicBool,
    /// Subscriber places taken (SSE streams; any session that calls `try_watch`).
    watchers: AtomicUsize,
}

/// One of a conversation's limited subscriber places; given back when dropped.
#[derive(Debug)]
pub struct WatchSlot {
    shared: Arc<Shared>,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        self.shared.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes one of `max` subscriber places counted in `shared`.
pub(crate) fn watch_slot(shared: &Arc<Shared>, max: usize) -> Option<WatchSlot> {
    shared
        .watchers
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()?;
    Some(WatchSlot {
        shared: shared.clone(),
    })
}

/// A cheap, cloneable way to talk to one conversation actor.
#[derive(Clone)]
pub(crate) struct ConversationHandle {
    pub(crate) id: Arc<str>,
    pub(crate) token_hash: Arc<str>,
    /// Whose the conversation is (`None`: its token is the only credential).
    pub(crate) owner: Option<Arc<str>>,
    pub(crate) provider: Arc<str>,
    pub(crate) tx: mpsc::Sender<Command>,
    /// Cancelled by the actor when it stops (also at shutdown), after its last frames:
    /// WebSocket sessions watch it, a successor actor waits for it. SSE streams do not:
    /// they end when the broadcast channel closes, which is the same moment.
    pub(crate) cancel: CancellationToken,
    /// Distinguishes this actor from a later one for the same conversation.
    pub(crate) generation: u64,
    pub(crate) shared: Arc<Shared>,
    /// Counts the holders of this handle (see the module note).
    pub(crate) lease: Arc<()>,
}

impl std::fmt::Debug for ConversationHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversationHandle")
            .field("id", &self.id)
            .field("generation", &self.generation)
            .finish()
    }
}

impl ConversationHandle {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id as a cheaply cloned key.
    pub fn shared_id(&self) -> Arc<str> {
        self.id.clone()
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// May `caller` use this conversation? (A token is compared in constant time.)
    pub fn admits(&self, caller: &Caller) -> bool {
        caller.admitted(&self.token_hash, self.owner.as_deref())
    }

    /// Ended when the actor stops or the server shuts down.
    pub fn cancelled(&self) -> CancellationToken {
        self.cancel.clone()
    }

    pub fn is_alive(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Nobody but the holder of this very handle uses the actor: no other handle exists,
    /// no reply runs, no command waits. Meaningful only for the registry's own copy.
    pub(crate) fn is_idle(&self) -> bool {
        Arc::strong_count(&self.lease) == 1
            && !self.shared.replying.load(Ordering::Acquire)
            && self.tx.capacity() == self.tx.max_capacity()
            && self.is_alive()
    }

    /// Takes one of the conversation's `max` subscriber places (every SSE stream takes one),
    /// or `None` when all are taken.
    pub fn try_watch(&self, max: usize) -> Option<WatchSlot> {
        watch_slot(&self.shared, max)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ActorError> {
        let (tx, rx) = oneshot::channel();
        self.tx.try_send(make(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ActorError::Busy,
            mpsc::error::TrySendError::Closed(_) => self.gone(),
        })?;
        rx.await.map_err(|_| self.gone())
    }

    /// Why the actor is not there: it stopped after a failed write, or it was stopped.
    fn gone(&self) -> ActorError {
        if self.shared.storage_failed.load(Ordering::Acquire) {
            ActorError::Unavailable("a write to storage failed".into())
        } else {
            ActorError::Gone
        }
    }

    /// Posts a user message; while a reply streams, `if_busy` says what happens. Returns
    /// once the message is stored. With a `key` seen before, returns the first answer to
    /// it and changes nothing.
    pub async fn post(
        &self,
        text: String,
        if_busy: IfBusy,
        key: Option<String>,
    ) -> Result<Posted, ActorError> {
        let received = Instant::now();
        self.ask(|reply| Command::Post {
            message: Box::new((text, key)),
            if_busy,
            received,
            reply,
        })
        .await?
    }

    /// Replaces the last assistant reply with a new one; returns the new reply's id.
    pub async fn regenerate(&self) -> Result<String, ActorError> {
        let received = Instant::now();
        self.ask(|reply| Command::Regenerate { received, reply })
            .await?
    }

    /// Replaces user message `message_id`'s text and starts a new reply to it (every later
    /// message is removed).
    pub async fn edit(&self, message_id: String, text: String) -> Result<Posted, ActorError> {
        let received = Instant::now();
        self.ask(|reply| Command::Edit {
            edit: Box::new((message_id, text)),
            received,
            reply,
        })
        .await?
    }

    /// Interrupts the reply in progress; returns its id, or `None` if nothing was running.
    pub async fn interrupt(&self) -> Result<Option<String>, ActorError> {
        let received = Instant::now();
        self.ask(|reply| Command::Interrupt { received, reply })
            .await
    }

    /// Replay after event `after` (or live only when `None`) plus the live feed, atomically.
    pub async fn subscribe(&self, after: Option<u64>) -> Result<Subscription, ActorError> {
        self.ask(|reply| Command::Subscribe { after, reply }).await
    }

    pub async fn snapshot(&self) -> Result<Snapshot, ActorError> {
        self.ask(|reply| Command::Snapshot { reply }).await
    }

    /// Joins the presence channel (typing, bot state, interrupts) of this conversation.
    pub async fn join(&self) -> Result<Presence, ActorError> {
        self.ask(|reply| Command::Join { reply }).await
    }

    /// Hands a verified provider callback to reply `reply_id`. A reply that is no longer
    /// running (finished, interrupted, replaced) ignores it: [`CallbackAck::Late`].
    pub async fn provider_callback(
        &self,
        reply_id: String,
        callback: Callback,
    ) -> Result<CallbackAck, ActorError> {
        self.ask(|ack| Command::ProviderCallback {
            reply_id,
            callback: Box::new(callback),
            ack,
        })
        .await
    }

    /// Renames the conversation.
    pub async fn rename(&self, title: String) -> Result<(), ActorError> {
        self.ask(|reply| Command::Rename { title, reply }).await?
    }

    /// Deletes the conversation; its actor stops once it is gone from storage.
    pub async fn delete(&self) -> Result<(), ActorError> {
        self.ask(|reply| Command::Delete { reply }).await?
    }

    /// Reports a participant typing or not. Dropped when the actor is busy: typing is
    /// presence, and the next keystroke repeats it.
    pub fn typing(&self, participant: Arc<str>, active: bool) {
        let _ = self.tx.try_send(Command::Typing {
            participant,
            active,
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn commands_stay_small() {
        // Every live conversation's mailbox holds blocks of 32 commands from the start:
        // box a large payload (as `ProviderCallback` does) rather than grow them all.
        assert!(std::mem::size_of::<super::Command>() <= 64);
    }
}
