//! The seam between the web layer and the conversations: [`Conversations`] creates, finds
//! and opens them; a [`ConversationRef`] is what a route holds for one conversation.
//!
//! Plain data crosses it: commands go in (post, regenerate, edit, interrupt, typing, a
//! provider callback), numbered SSE frames and presence frames come out (a
//! [`Subscription`], a [`Presence`]), answers are values ([`Posted`], [`Snapshot`], [`CallbackAck`]). Today every conversation
//! is local: its owner is an actor of this process, reached through its handle. In cluster
//! mode a conversation may be owned by another node; `Owner` then gains a remote variant
//! that forwards the commands to the lease holder and feeds the same receivers from a
//! relay of the conversation's log, and no route changes (see ARCHITECTURE.md, "The seam").

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::handle::{
    ActorError, ConversationHandle, IfBusy, Posted, Snapshot, Subscription, WatchSlot,
};
use super::presence::Presence;
use super::registry::{CreateError, Registry};
use crate::providers::{Callback, CallbackAck};

/// Every conversation this server can reach; cheap to clone.
#[derive(Clone)]
pub struct Conversations {
    local: Arc<Registry>,
}

/// One conversation, wherever its owner runs.
#[derive(Clone, Debug)]
pub struct ConversationRef {
    owner: Owner,
}

/// Who owns the conversation. Holding a `Local` one keeps its actor awake (a lease).
#[derive(Clone, Debug)]
enum Owner {
    Local(ConversationHandle),
}

impl Conversations {
    /// Conversations owned by actors of this process, found and started by `registry`.
    pub(crate) fn local(registry: Arc<Registry>) -> Self {
        Conversations { local: registry }
    }

    /// Creates a conversation with the named provider (or the default). Returns it and
    /// its token (shown to the client once, stored only as a hash).
    pub async fn create(
        &self,
        provider: Option<&str>,
    ) -> Result<(ConversationRef, String), CreateError> {
        let (handle, token) = self.local.create(provider).await?;
        Ok((ConversationRef::local(handle), token))
    }

    /// Conversation `id` for a caller presenting `token`. A wrong token is `NotFound`,
    /// found out before anything is started, so strangers cannot wake conversations.
    pub async fn open(&self, id: &str, token: &str) -> Result<ConversationRef, ActorError> {
        self.local.open(id, token).await.map(ConversationRef::local)
    }

    /// Conversation `id` without a token: for webhook routes, whose callbacks are signed.
    pub async fn get(&self, id: &str) -> Result<ConversationRef, ActorError> {
        self.local.get(id).await.map(ConversationRef::local)
    }

    /// Conversation actors of this process in memory (awake or finishing their last writes).
    pub fn live_count(&self) -> usize {
        self.local.live_count()
    }

    /// How many of them are awake (what `max_conversations` bounds).
    pub fn awake_count(&self) -> usize {
        self.local.awake_count()
    }
}

impl ConversationRef {
    fn local(handle: ConversationHandle) -> Self {
        ConversationRef {
            owner: Owner::Local(handle),
        }
    }

    fn handle(&self) -> &ConversationHandle {
        let Owner::Local(handle) = &self.owner;
        handle
    }

    pub fn id(&self) -> &str {
        self.handle().id()
    }

    /// The id as a cheaply cloned key.
    pub fn shared_id(&self) -> Arc<str> {
        self.handle().shared_id()
    }

    /// The name of the conversation's provider.
    pub fn provider(&self) -> &str {
        self.handle().provider()
    }

    /// Takes one of the conversation's `max` subscriber places (every SSE stream and
    /// WebSocket session takes one), or `None` when all are taken.
    pub fn try_watch(&self, max: usize) -> Option<WatchSlot> {
        self.handle().try_watch(max)
    }

    /// Cancelled when the owner stops (after its last frames) or the server shuts down.
    pub fn ended(&self) -> CancellationToken {
        self.handle().cancelled()
    }

    /// Posts a user message and starts the bot's reply; while one streams, `if_busy` says
    /// whether it is interrupted, the message queued, or the post refused. Answers once
    /// the message is stored.
    pub async fn post(&self, text: String, if_busy: IfBusy) -> Result<Posted, ActorError> {
        self.handle().post(text, if_busy).await
    }

    /// Replaces the last assistant reply with a new reply to the same history (one in
    /// progress is interrupted first); the new reply's id.
    pub async fn regenerate(&self) -> Result<String, ActorError> {
        self.handle().regenerate().await
    }

    /// Replaces a user message's text, removes every later message and starts a new reply.
    pub async fn edit(&self, message_id: String, text: String) -> Result<Posted, ActorError> {
        self.handle().edit(message_id, text).await
    }

    /// Interrupts the reply in progress: its id, or `None` if nothing was running.
    pub async fn interrupt(&self) -> Result<Option<String>, ActorError> {
        self.handle().interrupt().await
    }

    /// A participant typing or not; dropped when the owner is busy (presence only).
    pub fn typing(&self, participant: Arc<str>, active: bool) {
        self.handle().typing(participant, active)
    }

    /// The presence feed (typing, bot state, interrupts) and the state now.
    pub async fn join(&self) -> Result<Presence, ActorError> {
        self.handle().join().await
    }

    /// The numbered frames after event `after` (or live only when `None`), then live ones.
    pub async fn subscribe(&self, after: Option<u64>) -> Result<Subscription, ActorError> {
        self.handle().subscribe(after).await
    }

    /// The conversation as `GET` and the page show it.
    pub async fn snapshot(&self) -> Result<Snapshot, ActorError> {
        self.handle().snapshot().await
    }

    /// A verified provider callback for reply `reply_id`.
    pub async fn callback(
        &self,
        reply_id: String,
        callback: Callback,
    ) -> Result<CallbackAck, ActorError> {
        self.handle().provider_callback(reply_id, callback).await
    }
}
