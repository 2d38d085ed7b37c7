//! The actor's side of cluster ownership: it holds the conversation's lease, renews it,
//! appends each turn's frames to the shared log and publishes its presence to every node.
//!
//! Every write here is fenced by Redis (the scripts check the lease token); a refusal means
//! another node owns the conversation now, and the actor stops at once, writing nothing
//! more. One exception: when Redis lost everything (a restart without persistence) the
//! lease is gone but nobody else wrote after us — then the owner takes the lease again and
//! goes on, on a log that starts over at its next id (relays keep their place; resumes from
//! before get a `sync`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cluster::log;
use crate::cluster::writer::Turn;
use crate::cluster::{AppendError, Cluster, ClusterError, LeaseToken, LogFrame, lease, presence};
use crate::conversation::events::Frame;
use crate::conversation::presence::PresenceFrame;

/// What an actor of a cluster node starts with: the lease the registry took for it.
pub(crate) struct OwnerStart {
    pub(crate) cluster: Cluster,
    pub(crate) token: LeaseToken,
    /// The log's top when the lease was taken.
    pub(crate) top: u64,
}

impl OwnerStart {
    /// Gives the lease back when the actor cannot start after all (storage failed).
    pub(crate) async fn release(&self, id: &str) {
        if let Err(e) = lease::release(&self.cluster.redis, id, &self.token).await {
            tracing::debug!(conversation = %id, error = %e, "cannot release lease; it will lapse");
        }
    }
}

/// Why an owner must stop: someone else owns the conversation, or Redis is out of reach
/// for longer than the lease (so someone else may soon).
#[derive(Debug)]
pub(crate) struct Lost;

pub(crate) struct OwnerLink {
    cluster: Cluster,
    token: LeaseToken,
    /// The last id appended; `None` until the first append after a takeover (which leads
    /// with a `sync`).
    prev: Option<u64>,
    /// The last successful renewal (or the taking).
    renewed: Instant,
    /// Whether the last renewal put the conversation in the sweeper's set.
    marked_replying: bool,
    /// When an append last trimmed the log and refreshed its time to live (`None`: the
    /// next one does).
    refreshed: Option<Instant>,
}

/// How often (at most) an append trims the log and refreshes its time to live.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

impl OwnerLink {
    /// `floor` is the first id this owner will publish: a log ending just below it is a
    /// clean handoff, anything else a takeover that must begin with a `sync`.
    pub(crate) fn new(start: OwnerStart, floor: u64) -> Self {
        let clean = start.top + 1 == floor;
        if !clean {
            start
                .cluster
                .metrics
                .takeovers_crash
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else if start.top > 0 {
            start
                .cluster
                .metrics
                .takeovers_clean
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        OwnerLink {
            cluster: start.cluster,
            token: start.token,
            prev: clean.then_some(start.top),
            renewed: Instant::now(),
            marked_replying: false,
            refreshed: None,
        }
    }

    /// The first frames must begin with a `sync` (the log does not end where we start).
    pub(crate) fn needs_sync(&self) -> bool {
        self.prev.is_none()
    }

    pub(crate) fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// When the lease should next be renewed (a third of its length after the last time).
    pub(crate) fn renew_at(&self) -> Instant {
        self.renewed + self.cluster.lease / 3
    }

    /// A reply started or ended since the last renewal: renew now, so the sweeper's set
    /// knows at once (an owner that dies before its next renewal must still be found).
    pub(crate) fn replying_changed(&self, replying: bool) -> bool {
        self.marked_replying != replying
    }

    /// Renews the lease; `replying` keeps the conversation in the sweeper's set.
    pub(crate) async fn renew(&mut self, id: &str, replying: bool) -> Result<(), Lost> {
        match lease::renew(
            &self.cluster.redis,
            id,
            &self.token,
            self.cluster.lease,
            replying,
        )
        .await
        {
            Ok(()) => {
                self.renewed = Instant::now();
                self.marked_replying = replying;
                Ok(())
            }
            Err(ClusterError::Fenced) => {
                self.fenced();
                Err(Lost)
            }
            // Not reachable now: try again soon, give up once the lease has surely lapsed.
            Err(_) if self.renewed.elapsed() < self.cluster.lease => {
                self.renewed += Duration::from_millis(300).min(self.cluster.lease / 6);
                Ok(())
            }
            Err(_) => Err(Lost),
        }
    }

    /// Counts a write refused because this node no longer owns the conversation (by
    /// Redis's lease check, or by PostgreSQL's epoch).
    pub(crate) fn fenced(&self) {
        self.cluster
            .metrics
            .fenced_writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Appends one turn's frames (in order, through the node's log writer, which batches
    /// them with other conversations' turns) and publishes its presence.
    pub(crate) async fn flush(
        &mut self,
        id: &Arc<str>,
        frames: Vec<(Frame, bool)>,
        presence: Vec<PresenceFrame>,
        keep_from: u64,
    ) -> Result<(), Lost> {
        if !frames.is_empty() {
            let frames: Arc<[LogFrame]> = frames
                .into_iter()
                .map(|(f, sync)| LogFrame {
                    id: f.id,
                    sync,
                    bytes: f.bytes,
                })
                .collect();
            self.append(id, frames, keep_from).await?;
        }
        for p in presence {
            // Presence is ephemeral: a lost one is repeated by the next change.
            let _ = presence::publish(&self.cluster.redis, id, p.json.as_bytes()).await;
        }
        Ok(())
    }

    async fn append(
        &mut self,
        id: &Arc<str>,
        frames: Arc<[LogFrame]>,
        keep_from: u64,
    ) -> Result<(), Lost> {
        let last = frames.last().map_or(0, |f| f.id);
        let deadline = Instant::now() + self.cluster.lease / 2;
        let mut backoff = Duration::from_millis(25);
        loop {
            let started = Instant::now();
            let refresh = self
                .refreshed
                .is_none_or(|t| started.duration_since(t) >= REFRESH_EVERY);
            let turn = Turn {
                conversation: id.clone(),
                token: self.token.clone(),
                prev: self.prev,
                keep_from,
                refresh,
                frames: frames.clone(),
            };
            let result = self.cluster.writer.append(turn).await;
            self.cluster
                .metrics
                .append_latency
                .observe(started.elapsed());
            if result.is_ok() && refresh {
                self.refreshed = Some(started);
            }
            match result {
                Ok(()) => {
                    self.prev = Some(last);
                    return Ok(());
                }
                // A call that timed out here but ran there: the log already has this batch.
                Err(AppendError::Gap { top }) if top == last => {
                    self.prev = Some(last);
                    return Ok(());
                }
                Err(AppendError::Gap { .. }) => {
                    self.fenced();
                    return Err(Lost);
                }
                Err(AppendError::Fenced) => {
                    if !self.retake(id).await {
                        self.fenced();
                        return Err(Lost);
                    }
                }
                Err(AppendError::Unavailable) => {
                    if Instant::now() + backoff > deadline {
                        return Err(Lost);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(400));
                }
            }
        }
    }

    /// The lease is gone. If nobody wrote after us (Redis lost everything), take it again.
    async fn retake(&mut self, id: &str) -> bool {
        let Ok(top) = log::top(&self.cluster.redis, id).await else {
            return false;
        };
        if top > self.prev.unwrap_or(0) {
            return false;
        }
        let node = self.cluster.node_id.clone();
        match lease::acquire(&self.cluster.redis, id, &node, self.cluster.lease).await {
            Ok(Some(token)) => {
                tracing::info!(conversation = %id, "lease taken again after redis lost it");
                self.token = token;
                self.prev = None;
                self.renewed = Instant::now();
                self.refreshed = None;
                true
            }
            _ => false,
        }
    }

    /// Gives the lease up after the last frames are in the log: a clean handoff.
    /// The conversation was deleted: every node's feed of it closes.
    pub(crate) async fn announce_deleted(&self, id: &str) {
        if let Err(e) = presence::publish(&self.cluster.redis, id, presence::DELETED).await {
            tracing::warn!(conversation = %id, error = %e, "cannot tell the other nodes of a delete");
        }
    }

    pub(crate) async fn release(&self, id: &str) {
        if let Err(e) = lease::release(&self.cluster.redis, id, &self.token).await {
            tracing::debug!(conversation = %id, error = %e, "cannot release lease; it will lapse");
        }
    }
}
