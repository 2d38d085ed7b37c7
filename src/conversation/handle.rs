//! The cloneable handle to one conversation actor, and the commands it understands.
//!
//! Every method sends one command into the actor's bounded mailbox and, where an answer is
//! needed, awaits it on a `oneshot`. A full mailbox is reported as [`ActorError::Busy`]
//! (the web layer answers 503 with `Retry-After`) instead of waiting without end.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::events::Frame;
use super::message::Message;
use super::presence::{BotState, PresenceFrame};
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
    #[error("storage: {0}")]
    Storage(String),
}

/// The ids of a posted message and of the reply it starts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Posted {
    pub message_id: String,
    pub reply_id: String,
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
    pub live: broadcast::Receiver<Frame>,
}

/// What a new WebSocket participant gets.
pub struct Presence {
    pub bot: BotState,
    pub live: broadcast::Receiver<PresenceFrame>,
}

pub(crate) enum Command {
    Post {
        text: String,
        reply: oneshot::Sender<Result<Posted, ActorError>>,
    },
    Interrupt {
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
        callback: Callback,
        ack: oneshot::Sender<CallbackAck>,
    },
}

/// A cheap, cloneable way to talk to one conversation actor.
#[derive(Clone)]
pub struct ConversationHandle {
    pub(crate) id: Arc<str>,
    pub(crate) token_hash: Arc<str>,
    pub(crate) provider: Arc<str>,
    pub(crate) tx: mpsc::Sender<Command>,
    /// Cancelled when the actor stops or the server shuts down: streams watch it.
    pub(crate) cancel: CancellationToken,
    /// Distinguishes this actor from a later one for the same conversation.
    pub(crate) generation: u64,
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

    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Does `token` open this conversation? (Constant time.)
    pub fn token_matches(&self, token: &str) -> bool {
        crate::ids::token_matches(token, &self.token_hash)
    }

    /// Ended when the actor stops or the server shuts down.
    pub fn cancelled(&self) -> CancellationToken {
        self.cancel.clone()
    }

    pub fn is_alive(&self) -> bool {
        !self.tx.is_closed()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ActorError> {
        let (tx, rx) = oneshot::channel();
        self.tx.try_send(make(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ActorError::Busy,
            mpsc::error::TrySendError::Closed(_) => ActorError::Gone,
        })?;
        rx.await.map_err(|_| ActorError::Gone)
    }

    /// Posts a user message and starts the bot's reply (interrupting one in progress).
    /// Returns once the message is stored.
    pub async fn post(&self, text: String) -> Result<Posted, ActorError> {
        self.ask(|reply| Command::Post { text, reply }).await?
    }

    /// Interrupts the reply in progress; returns its id, or `None` if nothing was running.
    pub async fn interrupt(&self) -> Result<Option<String>, ActorError> {
        self.ask(|reply| Command::Interrupt { reply }).await
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
            callback,
            ack,
        })
        .await
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
