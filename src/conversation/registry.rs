//! The registry: finds the actor of a conversation, or starts it from storage.
//!
//! At most one actor runs per conversation. An actor that stops (idle, or after a panic)
//! removes itself; the next request starts a fresh one from storage. Actors run under the
//! server's task tracker and a child of its cancellation token, so shutdown reaches them.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::actor::Actor;
use super::events::ReplayLog;
use super::handle::{ActorError, ConversationHandle};
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::storage::{Store, StoredConversation};

/// Why a conversation could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("unknown provider `{0}`")]
    UnknownProvider(String),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StoreError),
}

/// Finds or starts conversation actors.
pub struct Registry {
    live: Mutex<HashMap<Arc<str>, ConversationHandle>>,
    store: Store,
    providers: Providers,
    limits: Limits,
    idle_timeout: Duration,
    root: CancellationToken,
    tracker: TaskTracker,
    generation: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Registry {
    pub fn new(
        store: Store,
        providers: Providers,
        limits: Limits,
        idle_timeout: Duration,
        root: CancellationToken,
        tracker: TaskTracker,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Registry {
            live: Mutex::new(HashMap::new()),
            store,
            providers,
            limits,
            idle_timeout,
            root,
            tracker,
            generation: AtomicU64::new(0),
            metrics,
        })
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, ConversationHandle>> {
        // A panic while holding this lock leaves the map itself consistent; keep going.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many conversation actors are running.
    pub fn live_count(&self) -> usize {
        self.live().len()
    }

    /// Creates a conversation with the named provider (or the default) and starts its actor.
    /// Returns its handle and its token (shown to the client once, stored only as a hash).
    pub async fn create(
        self: &Arc<Self>,
        provider: Option<&str>,
    ) -> Result<(ConversationHandle, String), CreateError> {
        let provider = match provider {
            Some(name) => self
                .providers
                .get(name)
                .ok_or_else(|| CreateError::UnknownProvider(name.to_string()))?,
            None => self.providers.default_provider(),
        };
        let id = crate::ids::conversation_id();
        let token = crate::ids::token();
        let token_hash = crate::ids::token_hash(&token);
        let now = crate::ids::now_ms();
        let name = provider.info().name.clone();
        self.store
            .create_conversation(&id, &token_hash, &name, now)
            .await?;
        let handle = self.start(StoredConversation {
            id,
            token_hash,
            provider: name,
            created_at: now,
            event_id_floor: 1,
            messages: Vec::new(),
        });
        Ok((handle, token))
    }

    /// The running actor of conversation `id`, started from storage if needed.
    pub async fn get(self: &Arc<Self>, id: &str) -> Result<ConversationHandle, ActorError> {
        if let Some(h) = self.live().get(id).filter(|h| h.is_alive()) {
            return Ok(h.clone());
        }
        if self.root.is_cancelled() {
            return Err(ActorError::Gone);
        }
        let stored = self
            .store
            .load_conversation(id)
            .await
            .map_err(|e| ActorError::Storage(e.to_string()))?
            .ok_or(ActorError::NotFound)?;
        Ok(self.start(stored))
    }

    /// Starts the actor for `stored` unless another request started one meanwhile.
    fn start(self: &Arc<Self>, stored: StoredConversation) -> ConversationHandle {
        let mut live = self.live();
        if let Some(h) = live.get(stored.id.as_str()).filter(|h| h.is_alive()) {
            return h.clone();
        }
        let provider = self
            .providers
            .get(&stored.provider)
            .unwrap_or_else(|| self.providers.default_provider());
        let id: Arc<str> = stored.id.into();
        let (tx, rx) = mpsc::channel(self.limits.mailbox);
        let (events, _) = broadcast::channel(self.limits.broadcast_capacity);
        let (presence, _) = broadcast::channel(16);
        // Not a child of the root token: streams must outlive the shutdown signal long
        // enough to carry the actor's last events; the actor cancels it when it stops.
        let done = CancellationToken::new();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let handle = ConversationHandle {
            id: id.clone(),
            token_hash: stored.token_hash.into(),
            provider: provider.info().name.clone().into(),
            tx,
            cancel: done.clone(),
            generation,
        };
        let actor = Actor::new(
            id.clone(),
            provider,
            self.store.clone(),
            stored.messages,
            stored.event_id_floor.max(1),
            ReplayLog::new(self.limits.replay_events),
            events,
            presence,
            rx,
            self.root.clone(),
            done.clone(),
            self.idle_timeout,
            self.metrics.clone(),
        );
        live.insert(id.clone(), handle.clone());
        drop(live);

        let registry = Arc::clone(self);
        self.tracker.spawn(async move {
            // A panicking actor is logged and forgotten; its conversation lives in storage
            // and the next request starts a new actor from there. No other actor notices.
            if let Err(panic) = AssertUnwindSafe(actor.run()).catch_unwind().await {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(conversation = %id, panic = %what, "conversation actor panicked; it will restart from storage");
            }
            done.cancel();
            let mut live = registry.live();
            if live.get(&id).is_some_and(|h| h.generation == generation) {
                live.remove(&id);
            }
        });
        handle
    }
}
