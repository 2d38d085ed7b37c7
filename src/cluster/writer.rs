//! The node's log writer: one task that appends its actors' turns to their logs, many
//! conversations per script call.
//!
//! An owner hands its turn's frames over (bounded queue, oneshot answer) and waits. The
//! task takes whatever is queued at that moment — nothing more is waited for, so an idle
//! node pays no added latency — and sends it as ONE call of the append script (see
//! [`super::log`]): each conversation is fenced, checked and answered on its own, so one
//! refused conversation fails nobody else. At most [`IN_FLIGHT`] calls are out at once;
//! while they are, the next turns queue up and go together in the next one: the busier the
//! node, the bigger the batches and the fewer the calls per frame. Each actor has at most one append in flight, so a batch holds
//! a conversation once and a conversation's appends stay in order.
//!
//! The task ends when the last handle is gone (actors append their last frames while the
//! server shuts down, so it must outlive the shutdown signal).

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};

use super::log::{self, Append, AppendError, LogFrame, Part};
use super::{LeaseToken, Redis};

/// Turns waiting for the writer.
const QUEUE: usize = 4096;
/// Most conversations in one call.
const MAX_PARTS: usize = 512;
/// Most frame bytes in one call (a larger single turn still goes, alone).
const MAX_BYTES: usize = 1 << 20;
/// Calls out at once (pipelined on the shared connection, so Redis never waits for the
/// writer between two of them).
const IN_FLIGHT: usize = 4;

/// One conversation's turn, as the owner hands it over.
pub struct Turn {
    pub conversation: Arc<str>,
    pub token: LeaseToken,
    pub prev: Option<u64>,
    pub keep_from: u64,
    /// Trim and refresh the log's time to live with this append.
    pub refresh: bool,
    pub frames: Arc<[LogFrame]>,
}

struct Job {
    turn: Turn,
    answer: oneshot::Sender<Result<(), AppendError>>,
}

impl Job {
    fn bytes(&self) -> usize {
        self.turn.frames.iter().map(|f| f.bytes.len() + 16).sum()
    }
}

/// A cheap, cloneable handle to the node's log writer.
#[derive(Clone)]
pub struct LogWriter {
    tx: mpsc::Sender<Job>,
}

impl LogWriter {
    /// Starts the task (it ends when every handle is dropped).
    pub fn start(redis: Redis) -> LogWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(redis, rx));
        LogWriter { tx }
    }

    /// Appends one conversation's turn (see [`log::append`] for the answers).
    pub async fn append(&self, turn: Turn) -> Result<(), AppendError> {
        let (answer, rx) = oneshot::channel();
        self.tx
            .send(Job { turn, answer })
            .await
            .map_err(|_| AppendError::Unavailable)?;
        rx.await.unwrap_or(Err(AppendError::Unavailable))
    }
}

async fn run(redis: Redis, mut rx: mpsc::Receiver<Job>) {
    let mut carried: Option<Job> = None;
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            // A new batch only while fewer than IN_FLIGHT calls are out.
            first = next_job(&mut rx, &mut carried), if open && in_flight.len() < IN_FLIGHT => {
                let Some(first) = first else {
                    open = false;
                    continue;
                };
                let batch = take_batch(first, &mut rx, &mut carried);
                in_flight.push(send(redis.clone(), batch));
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
        }
    }
}

async fn next_job(rx: &mut mpsc::Receiver<Job>, carried: &mut Option<Job>) -> Option<Job> {
    match carried.take() {
        Some(job) => Some(job),
        None => rx.recv().await,
    }
}

/// `first` and everything queued now, and nothing more (within the batch's bounds).
fn take_batch(first: Job, rx: &mut mpsc::Receiver<Job>, carried: &mut Option<Job>) -> Vec<Job> {
    let mut bytes = first.bytes();
    let mut batch = vec![first];
    while batch.len() < MAX_PARTS {
        let Ok(job) = rx.try_recv() else { break };
        bytes += job.bytes();
        if bytes > MAX_BYTES {
            *carried = Some(job);
            break;
        }
        batch.push(job);
    }
    batch
}

/// One script call for the batch; each job gets its own answer.
async fn send(redis: Redis, batch: Vec<Job>) {
    let parts: Vec<Part<'_>> = batch
        .iter()
        .map(|j| Part {
            conversation: &j.turn.conversation,
            append: Append {
                token: &j.turn.token,
                prev: j.turn.prev,
                keep_from: j.turn.keep_from,
                frames: &j.turn.frames,
            },
            refresh: j.turn.refresh,
        })
        .collect();
    let answers = log::append_many(&redis, &parts).await;
    drop(parts);
    match answers {
        Ok(answers) => {
            for (job, answer) in batch.into_iter().zip(answers) {
                let _ = job.answer.send(answer);
            }
        }
        Err(e) => {
            for job in batch {
                let _ = job.answer.send(Err(AppendError::from(e.clone())));
            }
        }
    }
}
