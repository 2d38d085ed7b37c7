//! The registry: finds the actor of a conversation, or starts it from storage.
//!
//! At most one actor runs per conversation, and a new one never starts before the old one
//! has finished its last writes (it waits for the old one's `done`), so event numbers and
//! stored state never interleave between two actors. An actor goes to sleep when idle
//! (no reply, nobody holding its handle, empty mailbox) after `idle_timeout`, or earlier
//! when the registry is full and needs room; it removes itself when its task ends. A
//! panicking actor is caught and logged; the next request starts a new one from storage.
//! Actors run under the server's task tracker and watch its cancellation token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::actor::{Actor, ActorEnv, OwnerStart, Supervisor};
use super::handle::{ActorError, Caller, Command, ConversationHandle};
use crate::cluster::{Cluster, lease, log};
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::storage::{Store, StoredConversation, StoredEvent};

/// How long a request waits for a conversation's previous actor to finish stopping.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Why a conversation could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("unknown provider `{0}`")]
    UnknownProvider(String),
    #[error("too many conversations are active")]
    Full,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the cluster is unavailable")]
    Unavailable,
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StoreError),
}

enum Entry {
    Live {
        handle: ConversationHandle,
        last_used: Instant,
    },
    /// Chosen to sleep; its task is storing its last state. `done` fires when it has.
    Stopping {
        generation: u64,
        done: CancellationToken,
    },
}

impl Entry {
    fn generation(&self) -> u64 {
        match self {
            Entry::Live { handle, .. } => handle.generation,
            Entry::Stopping { generation, .. } => *generation,
        }
    }
}

#[derive(Default)]
struct Table {
    entries: HashMap<Arc<str>, Entry>,
    /// How many entries are `Live` (what `max_conversations` bounds).
    awake: usize,
}

/// Where a conversation's owner runs.
pub(crate) enum Found {
    Local(ConversationHandle),
    /// Cluster mode: another node holds the lease.
    Elsewhere {
        node: String,
        provider: String,
    },
}

enum Lookup {
    Live(ConversationHandle),
    /// Its previous actor is still stopping: wait for this, then look again.
    Wait(CancellationToken),
    Absent,
}

/// Actor starts are serialised per conversation through one of this many locks.
const START_STRIPES: usize = 64;

fn stripe(id: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id) as usize % START_STRIPES
}

enum Install {
    Ready(ConversationHandle),
    /// The conversation's previous actor is still stopping: wait for it, then retry.
    Wait(CancellationToken),
    Full,
}

/// Finds or starts conversation actors.
pub struct Registry {
    table: Mutex<Table>,
    /// What every actor starts with (storage, the shutdown signal, the tracker…).
    env: ActorEnv,
    providers: Providers,
    max_conversations: usize,
    generation: AtomicU64,
    me: Weak<Registry>,
    /// Cluster mode: actors start only under a lease taken here (set once, at start-up).
    cluster: std::sync::OnceLock<Cluster>,
    /// Held while an actor is started from storage (see `find`).
    starting: [tokio::sync::Mutex<()>; START_STRIPES],
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
        let env = ActorEnv {
            store,
            metrics,
            shutdown: root,
            tracker,
            idle_timeout,
            replay_events: limits.replay_events,
            mailbox: limits.mailbox,
            broadcast_capacity: limits.broadcast_capacity,
            reply_caps: super::actor::ReplyCaps {
                max_duration: limits.max_reply_duration,
                max_bytes: limits.max_reply_bytes,
            },
        };
        Arc::new_cyclic(|me| Registry {
            table: Mutex::new(Table::default()),
            env,
            providers,
            max_conversations: limits.max_conversations,
            generation: AtomicU64::new(0),
            me: me.clone(),
            cluster: std::sync::OnceLock::new(),
            starting: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
        })
    }

    /// Cluster mode, from now on: actors start only under this node's lease.
    pub(crate) fn join_cluster(&self, cluster: Cluster) {
        let _ = self.cluster.set(cluster);
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding this lock leaves the map itself consistent; keep going.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many conversation actors are in memory (awake or finishing their last writes).
    pub fn live_count(&self) -> usize {
        self.table().entries.len()
    }

    /// How many of them are awake (what `max_conversations` bounds).
    pub fn awake_count(&self) -> usize {
        self.table().awake
    }

    /// Creates a conversation with the named provider (or the default) and starts its actor.
    /// Returns its handle and its token (shown to the client once, stored only as a hash).
    pub async fn create(
        &self,
        provider: Option<&str>,
        owned_by: Option<&str>,
    ) -> Result<(ConversationHandle, String), CreateError> {
        let provider = match provider {
            Some(name) => self
                .providers
                .get(name)
                .ok_or_else(|| CreateError::UnknownProvider(name.to_string()))?,
            None => self.providers.default_provider(),
        };
        if self.env.shutdown.is_cancelled() {
            return Err(CreateError::ShuttingDown);
        }
        if !self.make_room(&mut self.table()) {
            return Err(CreateError::Full);
        }
        let id = crate::ids::conversation_id();
        let token = crate::ids::token();
        let token_hash = crate::ids::token_hash(&token);
        let now = crate::ids::now_ms();
        let name = provider.info().name.clone();
        self.env
            .store
            .create_owned_conversation(crate::storage::NewConversation {
                id: &id,
                token_hash: &token_hash,
                provider: &name,
                created_at: now,
                owner: owned_by,
            })
            .await?;
        // Cluster mode: the lease, then the epoch (as for any start, see `find`).
        let owner = match self.cluster.get() {
            Some(c) => Some(
                take_lease(c, &id)
                    .await
                    .map_err(|_| CreateError::Unavailable)?
                    .ok_or(CreateError::Unavailable)?,
            ),
            None => None,
        };
        let owner_epoch = match self.env.store.claim(&id).await {
            Ok(epoch) => epoch,
            Err(e) => {
                if let Some(owner) = &owner {
                    owner.release(&id).await;
                }
                return Err(e.into());
            }
        };
        let stored = StoredConversation {
            id,
            token_hash,
            provider: name,
            owner: owned_by.map(str::to_string),
            created_at: now,
            event_id_floor: 1,
            owner_epoch,
            messages: Vec::new(),
        };
        // The row exists now: start it even if that goes a little over the bound.
        match self.install(stored, Vec::new(), false, owner) {
            Install::Ready(handle) => Ok((handle, token)),
            Install::Wait(_) | Install::Full => Err(CreateError::Full),
        }
    }

    /// The running actor of conversation `id`, started from storage if needed (in cluster
    /// mode: if no other node owns it).
    pub(crate) async fn get(&self, id: &str) -> Result<Found, ActorError> {
        self.find(id, None).await
    }

    /// The actor of `id` if it runs here now (never starts one).
    pub(crate) fn running(&self, id: &str) -> Option<ConversationHandle> {
        match self.table().entries.get(id) {
            Some(Entry::Live { handle, .. }) if handle.is_alive() => Some(handle.clone()),
            _ => None,
        }
    }

    /// Like [`Registry::get`], for `caller`: a wrong token or another owner is
    /// `NotFound`, found out from the conversation's credential alone (no history is
    /// loaded, no actor started), so strangers cannot wake conversations (or push others
    /// out of memory).
    pub(crate) async fn open(&self, id: &str, caller: &Caller) -> Result<Found, ActorError> {
        self.find(id, Some(caller)).await
    }

    async fn find(&self, id: &str, token: Option<&Caller>) -> Result<Found, ActorError> {
        for _ in 0..4 {
            match self.lookup(id, token)? {
                Lookup::Live(handle) => return Ok(Found::Local(handle)),
                Lookup::Wait(done) => {
                    wait_done(&done).await?;
                    continue;
                }
                Lookup::Absent => {}
            }
            if self.env.shutdown.is_cancelled() {
                return Err(ActorError::Gone);
            }
            // One start per conversation at a time: a second claim would fence the first
            // actor. Whoever waited here finds the actor the first one started.
            let starting = self.starting[stripe(id)].lock().await;
            match self.lookup(id, token)? {
                Lookup::Live(handle) => return Ok(Found::Local(handle)),
                Lookup::Wait(done) => {
                    drop(starting);
                    wait_done(&done).await?;
                    continue;
                }
                Lookup::Absent => {}
            }
            let store = &self.env.store;
            let access = store.access(id).await?.ok_or(ActorError::NotFound)?;
            if token.is_some_and(|c| !c.admitted(&access.token_hash, access.owner.as_deref())) {
                return Err(ActorError::NotFound);
            }
            // Cluster mode: the lease first (CLUSTER.md), or the node that holds it.
            let owner = match self.cluster.get() {
                None => None,
                Some(c) => match take_lease(c, id).await? {
                    Some(owner) => Some(owner),
                    None => match lease::holder(&c.redis, id).await {
                        Ok(Some(node)) if node != *c.node_id => {
                            return Ok(Found::Elsewhere {
                                node,
                                provider: access.provider,
                            });
                        }
                        // Just released, or ours from a predecessor stopping: try again.
                        Ok(_) => {
                            drop(starting);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        Err(_) => return Err(ActorError::Unreachable),
                    },
                },
            };
            // Take ownership in storage (fencing a previous owner's writes), then load what
            // the new epoch owns: a write of the previous epoch (or a message the previous
            // owner committed before letting go) could have landed since the load above.
            let claimed = async {
                let epoch = store.claim(id).await?;
                let stored = store.load_conversation(id).await?;
                Ok::<_, ActorError>((epoch, stored.ok_or(ActorError::NotFound)?))
            };
            let stored = match claimed.await {
                Ok((epoch, stored)) => StoredConversation {
                    owner_epoch: epoch,
                    ..stored
                },
                Err(e) => {
                    if let Some(owner) = &owner {
                        owner.release(id).await;
                    }
                    return Err(e);
                }
            };
            let events = match store.load_events(id, self.env.replay_events).await {
                Ok(events) => events,
                Err(e) => {
                    // Resumes fall back to a `sync`; the conversation itself is fine.
                    tracing::warn!(conversation = %id, error = %e, "cannot load stored events");
                    Vec::new()
                }
            };
            match self.install(stored, events, true, owner) {
                Install::Ready(handle) => return Ok(Found::Local(handle)),
                Install::Wait(done) => {
                    drop(starting);
                    wait_done(&done).await?
                }
                Install::Full => return Err(ActorError::Full),
            }
        }
        Err(ActorError::Busy)
    }

    /// What the table holds for conversation `id` (checking `token` against a live actor).
    fn lookup(&self, id: &str, token: Option<&Caller>) -> Result<Lookup, ActorError> {
        let mut table = self.table();
        match table.entries.get_mut(id) {
            Some(Entry::Live { handle, last_used }) if handle.is_alive() => {
                if token.is_some_and(|c| !handle.admits(c)) {
                    return Err(ActorError::NotFound);
                }
                *last_used = Instant::now();
                Ok(Lookup::Live(handle.clone()))
            }
            // A panicked (or broken) actor: its task is about to clean up after it.
            Some(Entry::Live { handle, .. }) => Ok(Lookup::Wait(handle.cancel.clone())),
            Some(Entry::Stopping { done, .. }) => Ok(Lookup::Wait(done.clone())),
            None => Ok(Lookup::Absent),
        }
    }

    /// Puts idle actors to sleep until fewer than `max_conversations` are awake; `false`
    /// if that is not possible (every actor is in use).
    fn make_room(&self, table: &mut Table) -> bool {
        let max = self.max_conversations;
        if table.awake < max {
            return true;
        }
        let mut idle: Vec<(Instant, Arc<str>)> = table
            .entries
            .iter()
            .filter_map(|(id, e)| match e {
                Entry::Live { handle, last_used } if handle.is_idle() => {
                    Some((*last_used, id.clone()))
                }
                _ => None,
            })
            .collect();
        idle.sort_unstable_by_key(|(at, _)| *at);
        // A batch at a time, least recently used first, so the scan is paid rarely.
        let batch = (max / 64).max(1) + table.awake - max;
        for (_, id) in idle.into_iter().take(batch) {
            retire(table, &id);
        }
        table.awake < max
    }

    /// Called by an actor whose idle time is up: may it stop? If so it is marked stopping
    /// under the lock, so no request can pick up its handle any more.
    fn try_retire(&self, id: &str, generation: u64) -> bool {
        let mut table = self.table();
        let done = match table.entries.get(id) {
            Some(Entry::Live { handle, .. })
                if handle.generation == generation && handle.is_idle() =>
            {
                handle.cancel.clone()
            }
            _ => return false,
        };
        table.awake = table.awake.saturating_sub(1);
        table
            .entries
            .insert(id.into(), Entry::Stopping { generation, done });
        true
    }

    /// Starts the actor for `stored` unless another request started one meanwhile.
    fn install(
        &self,
        stored: StoredConversation,
        events: Vec<StoredEvent>,
        strict: bool,
        owner: Option<OwnerStart>,
    ) -> Install {
        let mut table = self.table();
        let replacing_live = match table.entries.get(stored.id.as_str()) {
            Some(Entry::Live { handle, .. }) if handle.is_alive() => {
                return Install::Ready(handle.clone());
            }
            Some(Entry::Live { handle, .. }) if !handle.cancel.is_cancelled() => {
                return Install::Wait(handle.cancel.clone());
            }
            Some(Entry::Stopping { done, .. }) if !done.is_cancelled() => {
                return Install::Wait(done.clone());
            }
            Some(Entry::Live { .. }) => true,
            _ => false,
        };
        if replacing_live {
            // Its task finds no entry of its generation left and counts nothing twice.
            table.entries.remove(stored.id.as_str());
            table.awake = table.awake.saturating_sub(1);
        }
        if !self.make_room(&mut table) && strict {
            return Install::Full;
        }
        let handle = self.spawn(stored, events, owner);
        table.awake += 1;
        table.entries.insert(
            handle.id.clone(),
            Entry::Live {
                handle: handle.clone(),
                last_used: Instant::now(),
            },
        );
        Install::Ready(handle)
    }

    /// Starts a new actor for `stored`; it reports to a [`Watch`] of this registry.
    fn spawn(
        &self,
        stored: StoredConversation,
        events: Vec<StoredEvent>,
        owner: Option<OwnerStart>,
    ) -> ConversationHandle {
        let provider = self
            .providers
            .get(&stored.provider)
            .unwrap_or_else(|| self.providers.default_provider());
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let watch = Arc::new(Watch {
            registry: self.me.clone(),
            id: stored.id.as_str().into(),
            generation,
        });
        Actor::spawn(
            &self.env, stored, events, provider, generation, watch, owner,
        )
    }

    /// An actor's task ended: forget its entry (if it is still this generation's).
    fn forget(&self, id: &str, generation: u64) {
        let mut table = self.table();
        if table
            .entries
            .get(id)
            .is_some_and(|e| e.generation() == generation)
            && let Some(Entry::Live { .. }) = table.entries.remove(id)
        {
            table.awake = table.awake.saturating_sub(1);
        }
    }
}

/// The registry's side of one actor's life: retirement when idle, and its end.
struct Watch {
    registry: Weak<Registry>,
    id: Arc<str>,
    generation: u64,
}

impl Supervisor for Watch {
    fn may_retire(&self) -> bool {
        self.registry
            .upgrade()
            .is_some_and(|r| r.try_retire(&self.id, self.generation))
    }

    fn ended(&self, panic: Option<String>) {
        // A panicking actor is logged and forgotten; its conversation lives in storage and
        // the next request starts a new actor from there. No other actor notices.
        if let Some(what) = panic {
            tracing::error!(conversation = %self.id, panic = %what, "conversation actor panicked; it will restart from storage");
        }
        if let Some(registry) = self.registry.upgrade() {
            registry.forget(&self.id, self.generation);
        }
    }
}

/// Takes the lease of `id` for this node (`None`: someone holds it) and reads the log's top.
async fn take_lease(c: &Cluster, id: &str) -> Result<Option<OwnerStart>, ActorError> {
    let unavailable = |_| ActorError::Unreachable;
    let Some(token) = lease::acquire(&c.redis, id, &c.node_id, c.lease)
        .await
        .map_err(unavailable)?
    else {
        return Ok(None);
    };
    let top = log::top(&c.redis, id).await.map_err(unavailable)?;
    Ok(Some(OwnerStart {
        cluster: c.clone(),
        token,
        top,
    }))
}

/// Marks a live, idle entry as stopping and tells its actor to stop.
fn retire(table: &mut Table, id: &Arc<str>) -> bool {
    let Some(Entry::Live { handle, .. }) = table.entries.get(id) else {
        return false;
    };
    if !handle.is_idle() {
        return false;
    }
    // The mailbox is empty and nobody else holds the handle, so this fits.
    if handle.tx.try_send(Command::Retire).is_err() {
        return false;
    }
    let (generation, done) = (handle.generation, handle.cancel.clone());
    table.awake = table.awake.saturating_sub(1);
    table
        .entries
        .insert(id.clone(), Entry::Stopping { generation, done });
    true
}

async fn wait_done(done: &CancellationToken) -> Result<(), ActorError> {
    tokio::time::timeout(STOP_WAIT, done.cancelled())
        .await
        .map_err(|_| ActorError::Busy)
}
