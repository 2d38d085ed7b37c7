//! The life of one callback job: submitted on a tracked task, results read from the
//! reply's callback queue, cancelled upstream when the reply is dropped before the job
//! finished there.
//!
//! The submit runs on its own task (under the server's task tracker) rather than inside
//! the reply's stream, so an interrupt that arrives while the submit is still in flight
//! does not abort it half-way — that would leave a job running upstream whose id we never
//! learn. Instead the task lets the submit finish, then makes the cancel call (bounded by
//! a timeout). The reply's stream holds a [`JobGuard`]; dropping it (interrupt, barge-in,
//! a missed deadline, shutdown) tells the task whether to cancel.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use super::{Callback, ReplyEvent};

/// How many callbacks may wait for one reply before the webhook route answers 503.
pub const CALLBACK_QUEUE: usize = 256;
/// How long a cancel call may take.
pub const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// The submit's outcome: the provider's job id, or why it failed.
pub type Submitted = oneshot::Receiver<Result<String, String>>;

/// Held by the reply's stream; when dropped, the job is cancelled upstream unless it
/// finished there.
pub struct JobGuard {
    end: Option<oneshot::Sender<bool>>,
    finished: bool,
}

impl JobGuard {
    /// The job ended upstream (completed or failed): nothing to cancel.
    pub fn finished_upstream(&mut self) {
        self.finished = true;
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            let _ = end.send(!self.finished);
        }
    }
}

/// Starts `submit` on a tracked task. When the returned guard is dropped before the job
/// finished upstream, `cancel(job_id)` is called on that task, bounded by `CANCEL_TIMEOUT`.
/// `our_id` is the job's id when chatwire chose it before submitting: then a submit that
/// failed is cancelled too (best effort), since the service may have taken the job and
/// only its answer was lost.
pub fn spawn_job<S, C, CF>(
    tracker: &TaskTracker,
    provider: String,
    our_id: Option<String>,
    submit: S,
    cancel: C,
) -> (Submitted, JobGuard)
where
    S: Future<Output = Result<String, String>> + Send + 'static,
    C: FnOnce(String) -> CF + Send + 'static,
    CF: Future<Output = Result<(), String>> + Send + 'static,
{
    let (result_tx, result_rx) = oneshot::channel();
    let (end_tx, end_rx) = oneshot::channel::<bool>();
    tracker.spawn(async move {
        let result = submit.await;
        let submitted_id = result.as_ref().ok().cloned();
        let _ = result_tx.send(result);
        let job_id = match (submitted_id, our_id) {
            (Some(job_id), _) => {
                // A vanished guard (a panic) counts as "cancel".
                if !end_rx.await.unwrap_or(true) {
                    return;
                }
                job_id
            }
            (None, Some(job_id)) => job_id,
            (None, None) => return,
        };
        match tokio::time::timeout(CANCEL_TIMEOUT, cancel(job_id.clone())).await {
            Ok(Ok(())) => tracing::info!(%provider, job = %job_id, "cancelled the job upstream"),
            Ok(Err(e)) => {
                tracing::warn!(%provider, job = %job_id, error = %e, "the cancel call failed")
            }
            Err(_) => tracing::warn!(%provider, job = %job_id, "the cancel call timed out"),
        }
    });
    (
        result_rx,
        JobGuard {
            end: Some(end_tx),
            finished: false,
        },
    )
}

/// What a callback provider does with the callbacks of its reply.
pub trait CallbackHandler: Send + 'static {
    /// Turns one callback into reply events (possibly none). May await (a retrieval).
    fn handle(&mut self, callback: Callback) -> BoxFuture<'_, Vec<ReplyEvent>>;
    /// Has the job ended upstream, so that there is nothing to cancel?
    fn upstream_finished(&self) -> bool;
}

struct Run<H> {
    submitted: Option<Submitted>,
    callbacks: mpsc::Receiver<Callback>,
    handler: H,
    guard: JobGuard,
    out: VecDeque<ReplyEvent>,
    ended: bool,
}

impl<H: CallbackHandler> Run<H> {
    async fn next(&mut self) -> Option<ReplyEvent> {
        loop {
            if let Some(ev) = self.out.pop_front() {
                if !matches!(ev, ReplyEvent::Delta(_)) {
                    self.ended = true;
                    self.out.clear();
                }
                return Some(ev);
            }
            if self.ended {
                return None;
            }
            tokio::select! {
                result = submit_outcome(&mut self.submitted), if self.submitted.is_some() => {
                    self.submitted = None;
                    match result {
                        Ok(Ok(_job_id)) => {}
                        Ok(Err(message)) => {
                            // Nothing was created upstream, so nothing to cancel.
                            self.guard.finished_upstream();
                            self.out.push_back(ReplyEvent::Failed(message));
                        }
                        Err(_) => self
                            .out
                            .push_back(ReplyEvent::Failed("the job's task stopped unexpectedly".into())),
                    }
                }
                callback = self.callbacks.recv() => {
                    let callback = callback?;
                    let events = self.handler.handle(callback).await;
                    if self.handler.upstream_finished() {
                        self.guard.finished_upstream();
                    }
                    self.out.extend(events);
                }
            }
        }
    }
}

/// The submit's outcome; pending forever once it has been taken.
async fn submit_outcome(
    submitted: &mut Option<Submitted>,
) -> Result<Result<String, String>, oneshot::error::RecvError> {
    match submitted {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

/// The reply stream of a callback job.
pub fn callback_stream<H: CallbackHandler>(
    submitted: Submitted,
    callbacks: mpsc::Receiver<Callback>,
    guard: JobGuard,
    handler: H,
) -> BoxStream<'static, ReplyEvent> {
    let run = Run {
        submitted: Some(submitted),
        callbacks,
        handler,
        guard,
        out: VecDeque::new(),
        ended: false,
    };
    futures_util::stream::unfold(run, |mut run| async move {
        let ev = run.next().await?;
        Some((ev, run))
    })
    .boxed()
}

/// Splits a finished text into word-sized deltas (each word with the spaces after it), so
/// a result that arrives whole still streams to the page. Their concatenation is `text`.
pub fn word_deltas(text: &str) -> impl Iterator<Item = ReplyEvent> + '_ {
    text.split_inclusive(char::is_whitespace)
        .map(|w| ReplyEvent::Delta(w.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_deltas_rebuild_the_text() {
        let text = "Hello,  brave\nnew world ";
        let joined: String = word_deltas(text)
            .map(|e| match e {
                ReplyEvent::Delta(t) => t,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(joined, text);
    }

    /// Spawns a job whose submit answers `job_1` at once and whose cancel call reports
    /// the id it was given on the returned receiver.
    fn spawn_reporting_job(
        tracker: &TaskTracker,
    ) -> (Submitted, JobGuard, oneshot::Receiver<String>) {
        let (cancelled_tx, cancelled_rx) = oneshot::channel();
        let (submitted, guard) = spawn_job(
            tracker,
            "t".into(),
            None,
            async { Ok("job_1".to_string()) },
            move |id| async move {
                let _ = cancelled_tx.send(id);
                Ok(())
            },
        );
        (submitted, guard, cancelled_rx)
    }

    #[tokio::test]
    async fn dropping_an_unfinished_job_cancels_it_after_the_submit() {
        let tracker = TaskTracker::new();
        let (submitted, guard, cancelled_rx) = spawn_reporting_job(&tracker);
        assert_eq!(submitted.await.unwrap().unwrap(), "job_1");
        drop(guard);
        assert_eq!(cancelled_rx.await.unwrap(), "job_1");
    }

    #[tokio::test]
    async fn a_finished_job_is_not_cancelled() {
        let tracker = TaskTracker::new();
        let (_submitted, mut guard, mut cancelled_rx) = spawn_reporting_job(&tracker);
        guard.finished_upstream();
        drop(guard);
        tracker.close();
        tracker.wait().await;
        assert!(cancelled_rx.try_recv().is_err());
    }
}
