//! The node's log writer: one task that appends its actors' turns to their logs, many
//! conversations per script call.
//!
//! An owner hands its turn's frames over (bounded queue, oneshot answer) and waits. The
//! task takes whatever is queued at that moment — nothing more is waited for, so an idle
//! node pays no added latency — and sends it as ONE call of the append script (see
//! [`super::log`]): each conversation is fenced, checked and answered on its own, so one
//! refused conversation fails nobody else. While a call is in flight the next turns queue
//! up and go together in the next one: the busier the node, the bigger the batches and the
//! fewer the calls per frame. Each actor has at most one append in flight, so a batch holds
//! a conversation once and a conversation's appends stay in order.
//!
//! The task ends when the last handle is gone (actors append their last frames while the
//! server shuts down, so it must outlive the shutdown signal).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::log::{self, Append, AppendError, LogFrame, Part};
use super::{LeaseToken, Redis};

/// Turns waiting for the writer.
const QUEUE: usize = 4096;
/// Most conversations in one call.
const MAX_PARTS: usize = 512;
/// Most frame bytes in one call (a larger single turn still goes, alone).
const MAX_BYTES: usize = 1 << 20;

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
    let mut batch: Vec<Job> = Vec::new();
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut bytes = first.bytes();
        batch.push(first);
        // Everything queued now, and nothing more.
        while batch.len() < MAX_PARTS {
            let Ok(job) = rx.try_recv() else { break };
            bytes += job.bytes();
            if bytes > MAX_BYTES {
                carried = Some(job);
                break;
            }
            batch.push(job);
        }
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
                for (job, answer) in batch.drain(..).zip(answers) {
                    let _ = job.answer.send(answer);
                }
            }
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.answer.send(Err(AppendError::from(e.clone())));
                }
            }
        }
    }
}
