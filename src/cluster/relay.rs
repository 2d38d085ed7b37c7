//! Relays: on each node, one per conversation with local subscribers, turning the log back
//! into an ordered feed without gaps or duplicates.
//!
//! A relay subscribes to the conversation's live and presence channels, keeps the id of the
//! last frame it passed on, and passes on only the next id (or a `sync`, which replaces a
//! client's state and may follow any id). A frame that skips ids, every few seconds, and
//! every pub/sub reconnection send it to the log (`XRANGE` after its last id): pub/sub is the
//! hint, the log the truth. Ids the log no longer has (trimmed past, or lost with Redis) are
//! reported as [`RelayItem::Lost`], and the streams reading it end so their clients resume
//! (and get a `sync` if they must). Subscribers hold the relay; when the last one lets go,
//! its task ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::log::{self, LogFrame};
use super::metrics::ClusterMetrics;
use super::{Bus, ClusterError, Redis, keys};

/// How often a relay compares its last id with the log's, whatever pub/sub says.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Frames read from the log per `XRANGE`.
const PAGE: usize = 512;
/// Frames waiting in one relay's feed for its slowest local stream.
const FEED: usize = 1024;

/// What a relay passes on to its local streams.
#[derive(Debug, Clone)]
pub enum RelayItem {
    Frame(LogFrame),
    /// Ids were lost between the last frame and the next: a stream must end (its client
    /// resumes, and gets a `sync` if it must).
    Lost,
}

/// A conversation's relay on this node. Holding it keeps it running.
pub struct Relay {
    conversation: Arc<str>,
    frames: broadcast::Sender<RelayItem>,
    presence: broadcast::Sender<Bytes>,
    stop: CancellationToken,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What resuming after an id found in the log.
#[derive(Debug)]
pub enum Resume {
    /// The frames after the id (possibly starting with a `sync`), oldest first; `more` when
    /// a page did not hold them all (read on with [`Relays::resume`] after the last one).
    Frames { frames: Vec<LogFrame>, more: bool },
    /// The id is not in the log: the client needs a `sync` snapshot from the owner.
    NeedSync,
}

impl Relay {
    pub fn conversation(&self) -> &str {
        &self.conversation
    }

    /// The live feed (subscribe first, then read the log: nothing falls in between).
    pub fn frames(&self) -> broadcast::Receiver<RelayItem> {
        self.frames.subscribe()
    }

    /// Presence frames from the owner, on whichever node it runs.
    pub fn presence(&self) -> broadcast::Receiver<Bytes> {
        self.presence.subscribe()
    }
}

/// This node's relays, by conversation.
#[derive(Clone)]
pub struct Relays {
    redis: Redis,
    bus: Bus,
    metrics: Arc<ClusterMetrics>,
    shutdown: CancellationToken,
    running: Arc<Mutex<HashMap<Arc<str>, Weak<Relay>>>>,
}

impl Relays {
    pub fn new(
        redis: Redis,
        bus: Bus,
        metrics: Arc<ClusterMetrics>,
        shutdown: CancellationToken,
    ) -> Relays {
        Relays {
            redis,
            bus,
            metrics,
            shutdown,
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The conversation's relay, started if none runs. It is subscribed to its channels
    /// before this returns (or, while pub/sub is down, will be when it is back).
    pub async fn get(&self, conversation: &str) -> Result<Arc<Relay>, ClusterError> {
        if let Some(r) = self.lock().get(conversation).and_then(Weak::upgrade) {
            return Ok(r);
        }
        let live = self.bus.subscribe(&keys::live(conversation)).await?;
        let presence = self.bus.subscribe(&keys::presence(conversation)).await?;
        let last = log::top(&self.redis, conversation).await?;
        let mut running = self.lock();
        // Someone else may have started one meanwhile: theirs wins, ours unsubscribes.
        if let Some(r) = running.get(conversation).and_then(Weak::upgrade) {
            return Ok(r);
        }
        running.retain(|_, w| w.strong_count() > 0);
        let id: Arc<str> = conversation.into();
        let relay = Arc::new(Relay {
            conversation: id.clone(),
            frames: broadcast::channel(FEED).0,
            presence: broadcast::channel(64).0,
            stop: self.shutdown.child_token(),
        });
        running.insert(id.clone(), Arc::downgrade(&relay));
        let task = Task {
            conversation: id,
            redis: self.redis.clone(),
            metrics: self.metrics.clone(),
            frames: relay.frames.clone(),
            presence: relay.presence.clone(),
            last,
        };
        tokio::spawn(task.run(live, presence, self.bus.connections(), relay.stop.clone()));
        Ok(relay)
    }

    /// The frames after `after` from the log, for a client resuming (see [`Resume`]).
    pub async fn resume(&self, conversation: &str, after: u64) -> Result<Resume, ClusterError> {
        // From `after` itself: finding it proves nothing between was trimmed or lost.
        let mut frames =
            log::after(&self.redis, conversation, after.saturating_sub(1), PAGE + 1).await?;
        let valid = match frames.first() {
            Some(f) if f.id == after => {
                frames.remove(0);
                true
            }
            Some(f) => f.sync || (after == 0 && f.id == 1),
            None => false,
        };
        if !valid {
            self.metrics
                .relay_syncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(Resume::NeedSync);
        }
        let more = frames.len() > PAGE;
        frames.truncate(PAGE);
        Ok(Resume::Frames { frames, more })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Weak<Relay>>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Task {
    conversation: Arc<str>,
    redis: Redis,
    metrics: Arc<ClusterMetrics>,
    frames: broadcast::Sender<RelayItem>,
    presence: broadcast::Sender<Bytes>,
    last: u64,
}

impl Task {
    async fn run(
        mut self,
        mut live: super::bus::BusSubscription,
        mut presence: super::bus::BusSubscription,
        mut connections: tokio::sync::watch::Receiver<u64>,
        stop: CancellationToken,
    ) {
        let mut check = tokio::time::interval(CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                msg = live.rx.recv() => match msg.as_ref().map(log::parse_live) {
                    Some(Some(frames)) => {
                        for f in frames {
                            self.on_frame(f).await;
                        }
                    }
                    // Malformed: the next check reads the log.
                    Some(None) => {}
                    None => break,
                },
                msg = presence.rx.recv() => match msg {
                    Some(p) => { let _ = self.presence.send(p); }
                    None => break,
                },
                changed = connections.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.catch_up().await;
                }
                _ = check.tick() => self.catch_up().await,
            }
        }
    }

    async fn on_frame(&mut self, f: LogFrame) {
        if f.id <= self.last {
            return;
        }
        if f.id == self.last + 1 || f.sync {
            self.pass(f);
            return;
        }
        self.metrics
            .relay_gaps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.catch_up().await;
        if f.id > self.last {
            // The log did not have what lay between (or Redis did not answer).
            let _ = self.frames.send(RelayItem::Lost);
            self.pass(f);
        }
    }

    fn pass(&mut self, f: LogFrame) {
        self.last = f.id;
        let _ = self.frames.send(RelayItem::Frame(f));
    }

    /// Reads the log after the last id passed on, and passes on what is there.
    async fn catch_up(&mut self) {
        loop {
            let Ok(frames) = log::after(&self.redis, &self.conversation, self.last, PAGE).await
            else {
                return;
            };
            let full = frames.len() == PAGE;
            for f in frames {
                if f.id != self.last + 1 && !f.sync {
                    self.metrics
                        .relay_gaps
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = self.frames.send(RelayItem::Lost);
                }
                self.pass(f);
            }
            if !full {
                return;
            }
        }
    }
}
