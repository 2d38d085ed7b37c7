//! Deadlines for a reply: for its first delta, for each gap between deltas, and for the
//! whole reply. A provider that misses one ends the reply with a clear failure (the text
//! so far is kept by the actor), and the stream it was reading is dropped, which cancels
//! the work upstream. Applied to every provider by the registry; configurable per entry.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::time::Instant;

use super::ReplyEvent;

/// How long a reply may take; `None` = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deadlines {
    /// From the start of the reply to its first delta.
    pub first_delta: Option<Duration>,
    /// Between two deltas (and from the last delta to the end).
    pub gap: Option<Duration>,
    /// For the whole reply.
    pub total: Option<Duration>,
}

impl Deadlines {
    pub fn is_none(&self) -> bool {
        self.first_delta.is_none() && self.gap.is_none() && self.total.is_none()
    }
}

struct Watch {
    inner: BoxStream<'static, ReplyEvent>,
    limits: Deadlines,
    start: Instant,
    last_delta: Option<Instant>,
    done: bool,
}

enum Missed {
    First(Duration),
    Gap(Duration),
    Total(Duration),
}

impl Watch {
    /// The nearest deadline, and which one it is.
    fn next_deadline(&self) -> Option<(Instant, Missed)> {
        let step = match self.last_delta {
            None => self
                .limits
                .first_delta
                .map(|d| (self.start + d, Missed::First(d))),
            Some(last) => self.limits.gap.map(|d| (last + d, Missed::Gap(d))),
        };
        let total = self
            .limits
            .total
            .map(|d| (self.start + d, Missed::Total(d)));
        match (step, total) {
            (Some(s), Some(t)) => Some(if t.0 <= s.0 { t } else { s }),
            (s, t) => s.or(t),
        }
    }

    async fn next(&mut self) -> Option<ReplyEvent> {
        if self.done {
            return None;
        }
        let event = match self.next_deadline() {
            None => self.inner.next().await,
            Some((at, missed)) => match tokio::time::timeout_at(at, self.inner.next()).await {
                Ok(event) => event,
                Err(_) => {
                    self.done = true;
                    return Some(ReplyEvent::Failed(describe(missed)));
                }
            },
        };
        match &event {
            Some(ReplyEvent::Delta(_)) => self.last_delta = Some(Instant::now()),
            Some(_) | None => self.done = true,
        }
        event
    }
}

fn describe(missed: Missed) -> String {
    match missed {
        Missed::First(d) => format!(
            "the provider did not start answering within {} s",
            d.as_secs_f64()
        ),
        Missed::Gap(d) => format!(
            "the provider went silent for {} s in the middle of the reply",
            d.as_secs_f64()
        ),
        Missed::Total(d) => format!(
            "the reply took longer than the {} s allowed",
            d.as_secs_f64()
        ),
    }
}

/// `events`, ending with a failure when a deadline of `limits` is missed.
pub fn with_deadlines(
    events: BoxStream<'static, ReplyEvent>,
    limits: Deadlines,
) -> BoxStream<'static, ReplyEvent> {
    if limits.is_none() {
        return events;
    }
    let watch = Watch {
        inner: events,
        limits,
        start: Instant::now(),
        last_delta: None,
        done: false,
    };
    futures_util::stream::unfold(watch, |mut w| async move {
        let ev = w.next().await?;
        Some((ev, w))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Deltas after the given pauses, then `Completed`.
    fn paced(pauses: Vec<Duration>) -> BoxStream<'static, ReplyEvent> {
        let n = pauses.len();
        futures_util::stream::iter(pauses.into_iter().enumerate())
            .then(|(i, p)| async move {
                tokio::time::sleep(p).await;
                ReplyEvent::Delta(i.to_string())
            })
            .chain(futures_util::stream::iter(
                (n > 0).then_some(ReplyEvent::Completed),
            ))
            .boxed()
    }

    async fn collect(s: BoxStream<'static, ReplyEvent>) -> Vec<ReplyEvent> {
        s.collect().await
    }

    fn limits(first: u64, gap: u64, total: u64) -> Deadlines {
        Deadlines {
            first_delta: Some(S * first as u32),
            gap: Some(S * gap as u32),
            total: Some(S * total as u32),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_within_its_deadlines_passes_untouched() {
        let out = collect(with_deadlines(
            paced(vec![S * 4, S * 2, S * 2]),
            limits(5, 3, 10),
        ))
        .await;
        assert_eq!(out.len(), 4);
        assert_eq!(out[3], ReplyEvent::Completed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_first_delta_fails() {
        let out = collect(with_deadlines(paced(vec![S * 6]), limits(5, 3, 10))).await;
        assert!(matches!(&out[..], [ReplyEvent::Failed(m)] if m.contains("did not start")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_gap_fails_after_the_deltas_so_far() {
        let out = collect(with_deadlines(paced(vec![S, S, S * 4]), limits(5, 3, 10))).await;
        assert_eq!(out.len(), 3);
        assert!(matches!(&out[2], ReplyEvent::Failed(m) if m.contains("silent")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_whole_reply_is_bounded() {
        let out = collect(with_deadlines(paced(vec![S * 3; 8]), limits(5, 5, 10))).await;
        assert_eq!(out.len(), 4, "three deltas, then the failure at 10 s");
        assert!(matches!(&out[3], ReplyEvent::Failed(m) if m.contains("longer than")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_ending_early_still_ends() {
        let out = collect(with_deadlines(paced(vec![]), limits(5, 3, 10))).await;
        assert!(out.is_empty(), "the actor treats the bare end as a failure");
    }
}
