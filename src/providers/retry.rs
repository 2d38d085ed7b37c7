//! Retrying a streaming reply — but only before its first delta reached anyone.
//!
//! Once a delta has been published it cannot be taken back, so a failure after it ends the
//! reply (`reply.failed`, text kept). Before it, a retryable failure (connection refused,
//! 5xx, 429, a stream cut off before any text) starts a new attempt after a short backoff.
//! All of it happens inside the reply's stream: dropping the stream (an interrupt) drops
//! the attempt and the backoff sleep at once.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::ReplyEvent;

/// What one attempt yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Event(ReplyEvent),
    /// A failure that a new attempt may cure; `after` is the server's `Retry-After`.
    Retryable {
        message: String,
        after: Option<Duration>,
    },
}

/// How many attempts, how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after the first.
    pub retries: u32,
    /// Pause before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the reply fails instead.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 1,
            backoff: Duration::from_millis(250),
            max_wait: Duration::from_secs(5),
        }
    }
}

struct Run<F> {
    policy: RetryPolicy,
    make: F,
    current: BoxStream<'static, Attempt>,
    attempt: u32,
    delivered: bool,
    done: bool,
}

/// Runs `make(attempt)` and, while no delta has been yielded, retries retryable failures.
pub fn retry_before_first_delta<F>(
    policy: RetryPolicy,
    mut make: F,
) -> BoxStream<'static, ReplyEvent>
where
    F: FnMut(u32) -> BoxStream<'static, Attempt> + Send + 'static,
{
    let current = make(0);
    let run = Run {
        policy,
        make,
        current,
        attempt: 0,
        delivered: false,
        done: false,
    };
    futures_util::stream::unfold(run, |mut run| async move {
        if run.done {
            return None;
        }
        loop {
            match run.current.next().await {
                Some(Attempt::Event(ev)) => {
                    match &ev {
                        ReplyEvent::Delta(_) => run.delivered = true,
                        _ => run.done = true,
                    }
                    return Some((ev, run));
                }
                Some(Attempt::Retryable { message, after }) => {
                    let wait = after.unwrap_or(run.policy.backoff * 2u32.pow(run.attempt.min(8)));
                    if run.delivered || run.attempt >= run.policy.retries || wait > run.policy.max_wait {
                        run.done = true;
                        return Some((ReplyEvent::Failed(message), run));
                    }
                    tracing::info!(attempt = run.attempt + 1, error = %message, "retrying the provider request");
                    tokio::time::sleep(wait).await;
                    run.attempt += 1;
                    run.current = (run.make)(run.attempt);
                }
                None => return None,
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retryable(m: &str) -> Attempt {
        Attempt::Retryable {
            message: m.into(),
            after: None,
        }
    }

    fn delta(t: &str) -> Attempt {
        Attempt::Event(ReplyEvent::Delta(t.into()))
    }

    async fn run(retries: u32, attempts: Vec<Vec<Attempt>>) -> (Vec<ReplyEvent>, u32) {
        let made = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let m = made.clone();
        let policy = RetryPolicy {
            retries,
            ..RetryPolicy::default()
        };
        let out: Vec<ReplyEvent> = retry_before_first_delta(policy, move |i| {
            m.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            futures_util::stream::iter(attempts[i as usize].clone()).boxed()
        })
        .collect()
        .await;
        (out, made.load(std::sync::atomic::Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn retries_a_failure_before_the_first_delta() {
        let (out, made) = run(
            2,
            vec![
                vec![retryable("500")],
                vec![delta("a"), Attempt::Event(ReplyEvent::Completed)],
            ],
        )
        .await;
        assert_eq!(made, 2);
        assert_eq!(
            out,
            vec![ReplyEvent::Delta("a".into()), ReplyEvent::Completed]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_after_a_delta() {
        let (out, made) = run(3, vec![vec![delta("a"), retryable("cut off")]]).await;
        assert_eq!(made, 1);
        assert_eq!(
            out,
            vec![
                ReplyEvent::Delta("a".into()),
                ReplyEvent::Failed("cut off".into())
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_allowed_retries() {
        let (out, made) = run(
            1,
            vec![vec![retryable("429")], vec![retryable("429 again")]],
        )
        .await;
        assert_eq!(made, 2);
        assert_eq!(out, vec![ReplyEvent::Failed("429 again".into())]);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_wait_for_a_long_retry_after() {
        let long = Attempt::Retryable {
            message: "429".into(),
            after: Some(Duration::from_secs(60)),
        };
        let (out, made) = run(3, vec![vec![long]]).await;
        assert_eq!(made, 1);
        assert_eq!(out, vec![ReplyEvent::Failed("429".into())]);
    }
}
