//! The seam between the web layer and the conversations: [`Conversations`] creates, finds
//! and opens them; a [`ConversationRef`] is what a route holds for one conversation.
//!
//! Plain data crosses it: commands go in (post, regenerate, edit, interrupt, typing, a
//! provider callback),
//! numbered SSE frames and presence frames come out (a [`Subscription`], a [`Presence`]),
//! answers are values ([`Posted`], [`Snapshot`], [`CallbackAck`]). On a single node every
//! conversation is local: its owner is an actor of this process, reached through its
//! handle. In cluster mode a `ConversationRef` names the conversation, not an actor: each
//! command goes to whoever holds the lease now (this node's actor, or another node through
//! `remote`), and frames and presence come from this node's feed of the shared log, so
//! streams outlive an owner's handoff and no route changes.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::events::Event;
use super::feed::{Feed, Feeds};
use super::handle::{
    ActorError, Caller, ConversationHandle, IfBusy, Posted, Snapshot, Subscription, WatchSlot,
    watch_slot,
};
use super::presence::Presence;
use super::registry::{CreateError, Found, Registry};
use super::remote::{self, Op, WireJoin};
use crate::cluster::relay::Resume;
use crate::cluster::rpc::Inbox;
use crate::cluster::{Cluster, lease};
use crate::providers::{Callback, CallbackAck};

/// Every conversation this server can reach; cheap to clone.
#[derive(Clone)]
pub struct Conversations {
    local: Arc<Registry>,
    cluster: Option<Arc<ClusterSide>>,
}

struct ClusterSide {
    cluster: Cluster,
    feeds: Feeds,
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
    Cluster(Arc<Shared>),
}

/// A conversation in cluster mode: its id, this node's feed of it, and how to reach its
/// owner.
struct Shared {
    id: Arc<str>,
    provider: String,
    feed: Arc<Feed>,
    side: Arc<ClusterSide>,
    local: Arc<Registry>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConversation")
            .field("id", &self.id)
            .finish()
    }
}

/// How many times a command looks for a conversation's owner while it moves.
const OWNER_TRIES: usize = 20;

/// Where a command goes right now.
enum Target {
    Local(ConversationHandle),
    Remote(String),
}

impl Conversations {
    /// Conversations owned by actors of this process, found and started by `registry`.
    pub(crate) fn local(registry: Arc<Registry>) -> Self {
        Conversations {
            local: registry,
            cluster: None,
        }
    }

    /// Cluster mode: `registry` starts actors only under a lease; commands for
    /// conversations owned elsewhere are forwarded, and requests from other nodes (from
    /// `inbox`) are answered by this node's actors until shutdown.
    pub(crate) fn cluster(
        registry: Arc<Registry>,
        cluster: Cluster,
        inbox: Inbox,
        shutdown: CancellationToken,
    ) -> Self {
        tokio::spawn(remote::serve(registry.clone(), cluster.rpc.clone(), inbox));
        let feeds = Feeds::new(cluster.relays.clone(), shutdown);
        Conversations {
            local: registry,
            cluster: Some(Arc::new(ClusterSide { cluster, feeds })),
        }
    }

    /// Creates a conversation with the named provider (or the default), belonging to
    /// `owner`. Returns it and its token (shown to the client once, stored only as a hash).
    pub async fn create(
        &self,
        provider: Option<&str>,
        owner: Option<&str>,
    ) -> Result<(ConversationRef, String), CreateError> {
        let (handle, token) = self.local.create(provider, owner).await?;
        match &self.cluster {
            None => Ok((ConversationRef::local(handle), token)),
            Some(side) => {
                let provider = handle.provider().to_owned();
                let conv = self
                    .clustered(side, handle.id(), provider)
                    .await
                    .map_err(|_| CreateError::Unavailable)?;
                Ok((conv, token))
            }
        }
    }

    /// Conversation `id` for `caller`. A wrong token or another owner is `NotFound`,
    /// found out before anything is started, so strangers cannot wake conversations.
    pub async fn open(&self, id: &str, caller: &Caller) -> Result<ConversationRef, ActorError> {
        let found = self.local.open(id, caller).await?;
        self.wrap(id, found).await
    }

    /// Conversation `id` without a token: for webhook routes, whose callbacks are signed.
    pub async fn get(&self, id: &str) -> Result<ConversationRef, ActorError> {
        let found = self.local.get(id).await?;
        self.wrap(id, found).await
    }

    async fn wrap(&self, id: &str, found: Found) -> Result<ConversationRef, ActorError> {
        match (found, &self.cluster) {
            (Found::Local(handle), None) => Ok(ConversationRef::local(handle)),
            (Found::Local(handle), Some(side)) => {
                let provider = handle.provider().to_owned();
                self.clustered(side, id, provider).await
            }
            (Found::Elsewhere { provider, .. }, Some(side)) => {
                self.clustered(side, id, provider).await
            }
            (Found::Elsewhere { .. }, None) => Err(ActorError::Unreachable),
        }
    }

    async fn clustered(
        &self,
        side: &Arc<ClusterSide>,
        id: &str,
        provider: String,
    ) -> Result<ConversationRef, ActorError> {
        let feed = side
            .feeds
            .get(id)
            .await
            .map_err(|_| ActorError::Unreachable)?;
        Ok(ConversationRef {
            owner: Owner::Cluster(Arc::new(Shared {
                id: id.into(),
                provider,
                feed,
                side: side.clone(),
                local: self.local.clone(),
            })),
        })
    }

    /// Conversation actors of this process in memory (awake or finishing their last writes).
    pub fn live_count(&self) -> usize {
        self.local.live_count()
    }

    /// How many of them are awake (what `max_conversations` bounds).
    pub fn awake_count(&self) -> usize {
        self.local.awake_count()
    }

    /// Cluster mode: this node's Redis side (for `/healthz` and `/metrics`).
    pub fn cluster_side(&self) -> Option<&Cluster> {
        self.cluster.as_ref().map(|s| &s.cluster)
    }

    /// Cluster mode: takes conversation `id` over if nobody owns it (the sweeper's call for
    /// a reply whose owner died). Starting its actor ends the cut-off reply.
    pub async fn adopt(&self, id: &str) -> Result<(), ActorError> {
        self.local.get(id).await.map(|_| ())
    }
}

impl Shared {
    async fn target(&self) -> Result<Target, ActorError> {
        if let Some(h) = self.local.running(&self.id) {
            return Ok(Target::Local(h));
        }
        let c = &self.side.cluster;
        match lease::holder(&c.redis, &self.id).await {
            Ok(Some(node)) if node != *c.node_id => return Ok(Target::Remote(node)),
            Ok(_) => {}
            Err(_) => return Err(ActorError::Unreachable),
        }
        // Nobody owns it: this node takes it (or finds who just did).
        match self.local.get(&self.id).await? {
            Found::Local(h) => Ok(Target::Local(h)),
            Found::Elsewhere { node, .. } => Ok(Target::Remote(node)),
        }
    }

    /// Runs `f` against the current owner. `Gone` means the command did not run (the owner
    /// was stopping or had just moved): look for the owner again, a bounded number of times.
    async fn with_owner<T, F, Fut>(&self, f: F) -> Result<T, ActorError>
    where
        F: Fn(Target) -> Fut,
        Fut: std::future::Future<Output = Result<T, ActorError>>,
    {
        for _ in 0..OWNER_TRIES {
            match f(self.target().await?).await {
                Err(ActorError::Gone) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                other => return other,
            }
        }
        Err(ActorError::Unreachable)
    }

    async fn snapshot(&self) -> Result<Snapshot, ActorError> {
        let rpc = &self.side.cluster.rpc;
        self.with_owner(|t| async move {
            match t {
                Target::Local(h) => h.snapshot().await,
                Target::Remote(node) => remote::snapshot(rpc, &node, &self.id).await,
            }
        })
        .await
    }

    /// Replay from the shared log (or a `sync` from the owner) plus this node's live feed.
    async fn subscribe(&self, after: Option<u64>) -> Result<Subscription, ActorError> {
        let live = self.feed.frames().ok_or(ActorError::Unreachable)?;
        let Some(n) = after else {
            return Ok(Subscription {
                backlog: Vec::new(),
                last_id: 0,
                more: false,
                live,
            });
        };
        let resume = self
            .side
            .feeds
            .relays()
            .resume(&self.id, n)
            .await
            .map_err(|_| ActorError::Unreachable)?;
        match resume {
            Resume::Frames { frames, more } => Ok(Subscription {
                last_id: frames.last().map_or(n, |f| f.id),
                backlog: frames.into_iter().map(|f| f.bytes).collect(),
                more,
                live,
            }),
            Resume::NeedSync => {
                let snap = self.snapshot().await?;
                let last = snap.last_event_id;
                let sync = Event::Sync {
                    messages: &snap.messages,
                    last_event_id: last,
                }
                .encode(last);
                Ok(Subscription {
                    backlog: vec![sync.bytes],
                    last_id: last,
                    more: false,
                    live,
                })
            }
        }
    }

    async fn join(&self) -> Result<Presence, ActorError> {
        let live = self.feed.presence().ok_or(ActorError::Unreachable)?;
        match self.target().await? {
            Target::Local(h) => {
                let p = h.join().await?;
                Ok(Presence {
                    bot: p.bot,
                    typing: p.typing,
                    live,
                })
            }
            Target::Remote(node) => {
                let op = Op::Join {
                    id: self.id.to_string(),
                };
                let j: WireJoin = remote::call(&self.side.cluster.rpc, &node, &op).await?;
                Ok(Presence {
                    bot: remote::bot_state(&j.bot),
                    typing: j.typing.into_iter().map(Into::into).collect(),
                    live,
                })
            }
        }
    }
}

impl ConversationRef {
    fn local(handle: ConversationHandle) -> Self {
        ConversationRef {
            owner: Owner::Local(handle),
        }
    }

    pub fn id(&self) -> &str {
        match &self.owner {
            Owner::Local(h) => h.id(),
            Owner::Cluster(c) => &c.id,
        }
    }

    /// The id as a cheaply cloned key.
    pub fn shared_id(&self) -> Arc<str> {
        match &self.owner {
            Owner::Local(h) => h.shared_id(),
            Owner::Cluster(c) => c.id.clone(),
        }
    }

    /// The name of the conversation's provider.
    pub fn provider(&self) -> &str {
        match &self.owner {
            Owner::Local(h) => h.provider(),
            Owner::Cluster(c) => &c.provider,
        }
    }

    /// Takes one of the conversation's `max` subscriber places (every SSE stream and
    /// WebSocket session takes one), or `None` when all are taken. In cluster mode the
    /// places are counted per node.
    pub fn try_watch(&self, max: usize) -> Option<WatchSlot> {
        match &self.owner {
            Owner::Local(h) => h.try_watch(max),
            Owner::Cluster(c) => watch_slot(&c.feed.shared, max),
        }
    }

    /// Cancelled when the owner stops (after its last frames) or the server shuts down;
    /// in cluster mode, when this node's feed of the conversation closes.
    pub fn ended(&self) -> CancellationToken {
        match &self.owner {
            Owner::Local(h) => h.cancelled(),
            Owner::Cluster(c) => c.feed.ended.clone(),
        }
    }

    /// Posts a user message and starts the bot's reply; while one streams, `if_busy` says
    /// whether it is interrupted, the message queued, or the post refused. Answers once
    /// the message is stored. A `key` (the request's `Idempotency-Key`) seen before in
    /// this conversation gets the first answer again, and nothing is stored twice.
    pub async fn post(
        &self,
        text: String,
        if_busy: IfBusy,
        key: Option<String>,
    ) -> Result<Posted, ActorError> {
        match &self.owner {
            Owner::Local(h) => h.post(text, if_busy, key).await,
            Owner::Cluster(c) => {
                let rpc = &c.side.cluster.rpc;
                c.with_owner(|t| {
                    let (text, key) = (text.clone(), key.clone());
                    async move {
                        match t {
                            Target::Local(h) => h.post(text, if_busy, key).await,
                            Target::Remote(node) => {
                                remote::post(rpc, &node, &c.id, text, if_busy, key).await
                            }
                        }
                    }
                })
                .await
            }
        }
    }

    /// Replaces the last assistant reply with a new reply to the same history (one in
    /// progress is interrupted first); the new reply's id.
    pub async fn regenerate(&self) -> Result<String, ActorError> {
        match &self.owner {
            Owner::Local(h) => h.regenerate().await,
            Owner::Cluster(c) => {
                let rpc = &c.side.cluster.rpc;
                c.with_owner(|t| async move {
                    match t {
                        Target::Local(h) => h.regenerate().await,
                        Target::Remote(node) => {
                            let op = Op::Regenerate {
                                id: c.id.to_string(),
                            };
                            remote::call(rpc, &node, &op).await
                        }
                    }
                })
                .await
            }
        }
    }

    /// Replaces a user message's text, removes every later message and starts a new reply.
    pub async fn edit(&self, message_id: String, text: String) -> Result<Posted, ActorError> {
        match &self.owner {
            Owner::Local(h) => h.edit(message_id, text).await,
            Owner::Cluster(c) => {
                let rpc = &c.side.cluster.rpc;
                c.with_owner(|t| {
                    let (message_id, text) = (message_id.clone(), text.clone());
                    async move {
                        match t {
                            Target::Local(h) => h.edit(message_id, text).await,
                            Target::Remote(node) => {
                                remote::edit(rpc, &node, &c.id, message_id, text).await
                            }
                        }
                    }
                })
                .await
            }
        }
    }

    /// Renames the conversation (its actor stores the title).
    pub async fn rename(&self, title: String) -> Result<(), ActorError> {
        match &self.owner {
            Owner::Local(h) => h.rename(title).await,
            Owner::Cluster(c) => {
                let rpc = &c.side.cluster.rpc;
                c.with_owner(|t| {
                    let title = title.clone();
                    async move {
                        match t {
                            Target::Local(h) => h.rename(title).await,
                            Target::Remote(node) => {
                                let op = Op::Rename {
                                    id: c.id.to_string(),
                                    title,
                                };
                                remote::call(rpc, &node, &op).await
                            }
                        }
                    }
                })
                .await
            }
        }
    }

    /// Deletes the conversation: gone from storage, its owner stops and its streams end.
    pub async fn delete(&self) -> Result<(), ActorError> {
        match &self.owner {
            Owner::Local(h) => h.delete().await,
            Owner::Cluster(c) => {
                let rpc = &c.side.cluster.rpc;
                c.with_owner(|t| async move {
                    match t {
                        Target::Local(h) => h.delete().await,
                        Target::Remote(node) => {
                            let op = Op::Delete {
                                id: c.id.to_string(),
                            };
                            remote::call(rpc, &node, &op).await
                        }
                    }
                })
                .await?;
                // This node's streams of it end now (the owner's end with its actor).
                c.feed.ended.cancel();
                Ok(())
            }
        }
    }

    /// Interrupts the reply in progress: its id, or `None` if nothing was running.
    pub async fn interrupt(&self) -> Result<Option<String>, ActorError> {
        match &self.owner {
            Owner::Local(h) => h.interrupt().await,
            Owner::Cluster(c) => match c.target().await? {
                Target::Local(h) => h.interrupt().await,
                Target::Remote(node) => {
                    let op = Op::Interrupt {
                        id: c.id.to_string(),
                    };
                    remote::call(&c.side.cluster.rpc, &node, &op).await
                }
            },
        }
    }

    /// A participant typing or not; dropped when the owner is busy (presence only).
    pub fn typing(&self, participant: Arc<str>, active: bool) {
        match &self.owner {
            Owner::Local(h) => h.typing(participant, active),
            Owner::Cluster(c) => {
                let c = c.clone();
                // Presence: a short task per report (the session throttles them), and a
                // failure is dropped like a full mailbox's.
                tokio::spawn(async move {
                    match c.target().await {
                        Ok(Target::Local(h)) => h.typing(participant, active),
                        Ok(Target::Remote(node)) => {
                            let op = Op::Typing {
                                id: c.id.to_string(),
                                participant: participant.to_string(),
                                active,
                            };
                            let _: Result<(), _> =
                                remote::call(&c.side.cluster.rpc, &node, &op).await;
                        }
                        Err(_) => {}
                    }
                });
            }
        }
    }

    /// The presence feed (typing, bot state, interrupts) and the state now.
    pub async fn join(&self) -> Result<Presence, ActorError> {
        match &self.owner {
            Owner::Local(h) => h.join().await,
            Owner::Cluster(c) => c.join().await,
        }
    }

    /// The numbered frames after event `after` (or live only when `None`), then live ones.
    pub async fn subscribe(&self, after: Option<u64>) -> Result<Subscription, ActorError> {
        match &self.owner {
            Owner::Local(h) => h.subscribe(after).await,
            Owner::Cluster(c) => c.subscribe(after).await,
        }
    }

    /// The conversation as `GET` and the page show it.
    pub async fn snapshot(&self) -> Result<Snapshot, ActorError> {
        match &self.owner {
            Owner::Local(h) => h.snapshot().await,
            Owner::Cluster(c) => c.snapshot().await,
        }
    }

    /// A verified provider callback for reply `reply_id`, applied by the owner's actor: in
    /// cluster mode a callback that reached another node is forwarded to the owner (or
    /// this node takes the conversation over when nobody owns it).
    pub async fn callback(
        &self,
        reply_id: String,
        callback: Callback,
    ) -> Result<CallbackAck, ActorError> {
        match &self.owner {
            Owner::Local(h) => h.provider_callback(reply_id, callback).await,
            Owner::Cluster(c) => {
                let rpc = &c.side.cluster.rpc;
                c.with_owner(|t| {
                    let (reply_id, callback) = (reply_id.clone(), callback.clone());
                    async move {
                        match t {
                            Target::Local(h) => h.provider_callback(reply_id, callback).await,
                            Target::Remote(node) => {
                                remote::callback(rpc, &node, &c.id, reply_id, callback).await
                            }
                        }
                    }
                })
                .await
            }
        }
    }
}
