//! The job directory: which conversation and reply a provider's job belongs to, so a
//! webhook about job X reaches the actor of the conversation that started it.
//!
//! Jobs live in storage (`provider_jobs`), so a callback that arrives after a restart is
//! still recognised (and then ignored as late by its conversation). A callback can also
//! arrive *before* its job is known: OpenAI assigns a background response's id in the
//! answer to the create call, and its webhook may overtake that answer. Such callbacks are
//! parked (bounded, for a short time) and claimed when the job id is assigned: in this
//! process's memory on a single node; in cluster mode in Redis (`cluster::parked`), since
//! the webhook may reach any node while the job's reply runs on its conversation's owner.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::Callback;
use crate::cluster::{ClusterError, Redis, parked};
use crate::storage::{Store, StoreError};

/// Parked callbacks are kept this long for their job to become known.
const PARK_TTL: Duration = Duration::from_secs(120);
/// At most this many unknown jobs have parked callbacks…
const PARK_MAX_JOBS: usize = 256;
/// …with at most this many callbacks each.
const PARK_MAX_PER_JOB: usize = 8;

/// The conversation and reply a job belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOwner {
    pub conversation_id: String,
    pub reply_id: String,
}

/// Where a callback should go.
#[derive(Debug)]
pub enum Route {
    /// To this reply, through its conversation's actor (usually one callback; more when
    /// parked ones are taken back).
    To(JobOwner, Vec<Callback>),
    /// Parked until its job id is assigned (or forgotten after a while).
    Parked,
    /// A job we never started (or long forgotten): acknowledge and ignore.
    Unknown,
}

/// Why a job could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("a job was already started for this reply")]
    Duplicate,
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
}

/// Why a callback could not be routed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    /// Cluster mode: the callback could not be parked in Redis (nothing was changed).
    #[error("cannot park the callback: {0}")]
    Parking(#[from] ClusterError),
}

/// Parked callbacks are keyed by job id alone: the provider that owns the job is not known
/// yet (several entries may share one webhook secret), and provider job ids are unique.
type Key = String;

#[derive(Default)]
struct Parked {
    map: HashMap<Key, Vec<Callback>>,
    /// Arrival order, for expiry and for evicting the oldest when full.
    order: VecDeque<(Instant, Key)>,
}

impl Parked {
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < PARK_TTL && self.map.len() < PARK_MAX_JOBS {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.map.remove(&key);
            }
        }
    }
}

/// Shared by the callback providers and the webhook routes.
pub struct Jobs {
    store: Store,
    tracker: TaskTracker,
    parked: Mutex<Parked>,
    /// Cluster mode: callbacks are parked in Redis instead, for whichever node assigns.
    shared: Option<Redis>,
}

impl Jobs {
    pub fn new(store: Store, tracker: TaskTracker) -> Self {
        Jobs {
            store,
            tracker,
            parked: Mutex::new(Parked::default()),
            shared: None,
        }
    }

    /// Cluster mode: park early callbacks in Redis, shared by every node.
    pub fn parking_in(mut self, redis: Redis) -> Self {
        self.shared = Some(redis);
        self
    }

    /// Where jobs' background tasks (submits, cancel calls) run, so shutdown waits for them.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    fn parked(&self) -> std::sync::MutexGuard<'_, Parked> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a job whose id chatwire chose (before the job is sent anywhere).
    pub async fn register(
        &self,
        provider: &str,
        job_id: &str,
        owner: &JobOwner,
    ) -> Result<(), JobError> {
        self.store
            .insert_job(
                provider,
                job_id,
                &owner.conversation_id,
                &owner.reply_id,
                crate::ids::now_ms(),
            )
            .await
            .map_err(|e| duplicate_or(e, JobError::Duplicate))
    }

    /// Reserves the one job a reply may have, before the provider is asked to create it.
    /// A second reservation for the same reply fails: that is a replayed create.
    pub async fn reserve(&self, provider: &str, owner: &JobOwner) -> Result<(), JobError> {
        let placeholder = format!("pending:{}", owner.reply_id);
        self.register(provider, &placeholder, owner).await
    }

    /// Gives the reserved job its provider-assigned id; returns the callbacks that arrived
    /// for that id before it was known.
    pub async fn assign(
        &self,
        provider: &str,
        reply_id: &str,
        job_id: &str,
    ) -> Result<Vec<Callback>, JobError> {
        self.store.assign_job(provider, reply_id, job_id).await?;
        match self.unpark(job_id).await {
            Ok(taken) => Ok(taken),
            Err(e) => {
                // They stay parked until they expire; the provider's own timeouts end the
                // reply if nothing else arrives.
                tracing::warn!(error = %e, "cannot claim parked callbacks");
                Ok(Vec::new())
            }
        }
    }

    /// The owner of a job, if we know it.
    pub async fn owner(
        &self,
        provider: &str,
        job_id: &str,
    ) -> Result<Option<JobOwner>, StoreError> {
        Ok(self
            .store
            .find_job(provider, job_id)
            .await?
            .map(|(conversation_id, reply_id)| JobOwner {
                conversation_id,
                reply_id,
            }))
    }

    /// The owner of a job of any of `providers` (the entries whose secret signed it).
    async fn owner_among(
        &self,
        providers: &[String],
        job_id: &str,
    ) -> Result<Option<JobOwner>, StoreError> {
        for p in providers {
            if let Some(owner) = self.owner(p, job_id).await? {
                return Ok(Some(owner));
            }
        }
        Ok(None)
    }

    /// Decides where a verified callback goes, given the providers it may belong to. With
    /// `park_unknown`, a callback for a job not known yet is parked; [`Jobs::assign`]
    /// claims it.
    pub async fn route(
        &self,
        providers: &[String],
        callback: Callback,
        park_unknown: bool,
    ) -> Result<Route, RouteError> {
        let job_id = callback.job_id().to_string();
        if let Some(owner) = self.owner_among(providers, &job_id).await? {
            return Ok(Route::To(owner, vec![callback]));
        }
        if !park_unknown {
            return Ok(Route::Unknown);
        }
        self.park(&job_id, callback).await?;
        // The job may have been assigned between the lookup and the parking, after
        // `assign` looked for parked callbacks: look again. Whoever takes the parked
        // callback out — `assign` or this — delivers it, so it is delivered once.
        if let Some(owner) = self.owner_among(providers, &job_id).await? {
            let taken = self.unpark(&job_id).await?;
            if !taken.is_empty() {
                return Ok(Route::To(owner, taken));
            }
        }
        Ok(Route::Parked)
    }

    async fn park(&self, job_id: &str, callback: Callback) -> Result<(), ClusterError> {
        if let Some(redis) = &self.shared {
            let body = serde_json::to_vec(&callback).map_err(|_| ClusterError::Unavailable)?;
            return parked::park(redis, job_id, &body).await;
        }
        self.park_here(job_id, callback);
        Ok(())
    }

    async fn unpark(&self, job_id: &str) -> Result<Vec<Callback>, ClusterError> {
        let Some(redis) = &self.shared else {
            return Ok(self.unpark_here(job_id));
        };
        let bodies = parked::claim(redis, job_id).await?;
        Ok(bodies
            .iter()
            .filter_map(|b| serde_json::from_slice(b).ok())
            .collect())
    }

    fn park_here(&self, job_id: &str, callback: Callback) {
        let now = Instant::now();
        let mut parked = self.parked();
        parked.expire(now);
        let key = job_id.to_string();
        if !parked.map.contains_key(&key) {
            parked.order.push_back((now, key.clone()));
        }
        let list = parked.map.entry(key).or_default();
        if list.len() < PARK_MAX_PER_JOB {
            list.push(callback);
        }
    }

    fn unpark_here(&self, job_id: &str) -> Vec<Callback> {
        let key = job_id.to_string();
        let mut parked = self.parked();
        let taken = parked.map.remove(&key).unwrap_or_default();
        if !taken.is_empty() {
            parked.order.retain(|(_, k)| *k != key);
        }
        taken
    }
}

/// A unique-constraint violation means the job (or the reply's job) exists already.
fn duplicate_or(e: StoreError, duplicate: JobError) -> JobError {
    match e {
        StoreError::UniqueViolation(_) => duplicate,
        e => JobError::Storage(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::callback::{OpenAiEvent, OpenAiEventKind};

    fn completed(id: &str) -> Callback {
        Callback::OpenAi(OpenAiEvent {
            kind: OpenAiEventKind::Completed,
            response_id: id.into(),
        })
    }

    fn bg() -> Vec<String> {
        vec!["other".into(), "bg".into()]
    }

    async fn jobs_with_conversation() -> (Jobs, JobOwner) {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.create_conversation("c1", "h", "bg", 0).await.unwrap();
        let owner = JobOwner {
            conversation_id: "c1".into(),
            reply_id: "m_r1".into(),
        };
        (Jobs::new(store, TaskTracker::new()), owner)
    }

    #[tokio::test]
    async fn an_early_callback_is_parked_then_claimed_once() {
        let (jobs, owner) = jobs_with_conversation().await;
        jobs.reserve("bg", &owner).await.unwrap();
        assert!(matches!(
            jobs.route(&bg(), completed("resp_1"), true).await.unwrap(),
            Route::Parked
        ));
        let claimed = jobs.assign("bg", "m_r1", "resp_1").await.unwrap();
        assert_eq!(claimed, vec![completed("resp_1")]);
        assert!(
            jobs.assign("bg", "m_r1", "resp_1")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            jobs.route(&bg(), completed("resp_1"), true).await.unwrap(),
            Route::To(o, _) if o == owner
        ));
    }

    #[tokio::test]
    async fn a_reply_can_reserve_only_one_job() {
        let (jobs, owner) = jobs_with_conversation().await;
        jobs.reserve("bg", &owner).await.unwrap();
        assert!(matches!(
            jobs.reserve("bg", &owner).await,
            Err(JobError::Duplicate)
        ));
    }

    #[tokio::test]
    async fn unknown_jobs_are_not_parked_unless_asked() {
        let (jobs, _) = jobs_with_conversation().await;
        assert!(matches!(
            jobs.route(&["nlp".into()], completed("job_x"), false)
                .await
                .unwrap(),
            Route::Unknown
        ));
        for i in 0..(PARK_MAX_JOBS + 10) {
            jobs.route(&bg(), completed(&format!("r{i}")), true)
                .await
                .unwrap();
        }
        assert!(
            jobs.parked().map.len() <= PARK_MAX_JOBS,
            "parking is bounded"
        );
    }
}
