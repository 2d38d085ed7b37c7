//! Server metrics, served as Prometheus text at `GET /metrics`.
//!
//! Plain atomics and fixed-bucket histograms, no metrics crate: recording on the hot path
//! is one relaxed atomic add (a histogram observation is three), and all formatting happens
//! when `/metrics` is scraped. One [`Metrics`] belongs to one server (tests run several
//! servers in one process); it travels in `AppState` and into every conversation actor.
//!
//! Gauges of open things (SSE streams, WebSocket sessions) are held by RAII guards
//! ([`OpenGuard`]) so a stream that ends in any way — done, dropped, panicked — counts down.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// How a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Interrupted,
    Failed,
}

/// Every metric of one server.
#[derive(Debug)]
pub struct Metrics {
    sse_streams: AtomicI64,
    websockets: AtomicI64,
    deltas_published: AtomicU64,
    sse_events_sent: AtomicU64,
    replies_completed: AtomicU64,
    replies_interrupted: AtomicU64,
    replies_failed: AtomicU64,
    webhook_verification_failures: AtomicU64,
    sse_resubscribes: AtomicU64,
    interrupt_latency: Histogram,
    first_token: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            sse_streams: AtomicI64::new(0),
            websockets: AtomicI64::new(0),
            deltas_published: AtomicU64::new(0),
            sse_events_sent: AtomicU64::new(0),
            replies_completed: AtomicU64::new(0),
            replies_interrupted: AtomicU64::new(0),
            replies_failed: AtomicU64::new(0),
            webhook_verification_failures: AtomicU64::new(0),
            sse_resubscribes: AtomicU64::new(0),
            interrupt_latency: Histogram::new(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            first_token: Histogram::new(&[
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// Counts an open SSE stream until the guard is dropped.
    pub fn sse_stream_opened(self: &Arc<Self>) -> OpenGuard {
        OpenGuard::new(self.clone(), Gauge::SseStreams)
    }

    /// Counts an open WebSocket session until the guard is dropped.
    pub fn websocket_opened(self: &Arc<Self>) -> OpenGuard {
        OpenGuard::new(self.clone(), Gauge::WebSockets)
    }

    /// One `reply.delta` published by a conversation (once, however many subscribers).
    pub fn delta_published(&self) {
        self.deltas_published.fetch_add(1, Relaxed);
    }

    /// `n` numbered events written to one SSE stream (counted per subscriber).
    pub fn sse_events_sent(&self, n: u64) {
        self.sse_events_sent.fetch_add(n, Relaxed);
    }

    pub fn reply_finished(&self, outcome: Outcome) {
        match outcome {
            Outcome::Completed => &self.replies_completed,
            Outcome::Interrupted => &self.replies_interrupted,
            Outcome::Failed => &self.replies_failed,
        }
        .fetch_add(1, Relaxed);
    }

    /// From the interrupt command's arrival to the `reply.interrupted` event's publication.
    pub fn interrupt_latency(&self, took: Duration) {
        self.interrupt_latency.observe(took);
    }

    /// From the user's message arriving to the reply's first delta being published.
    pub fn time_to_first_token(&self, took: Duration) {
        self.first_token.observe(took);
    }

    /// A webhook delivery refused for a missing or wrong signature or a stale timestamp.
    pub fn webhook_verification_failed(&self) {
        self.webhook_verification_failures.fetch_add(1, Relaxed);
    }

    /// An SSE reader fell behind the live channel and re-subscribed from its last event.
    pub fn sse_resubscribed(&self) {
        self.sse_resubscribes.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4); `live_conversations` is sampled by
    /// the caller (the registry owns that number).
    pub fn render(&self, live_conversations: usize) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let v = v.load(Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "chatwire_conversations_live",
            "Conversation actors running.",
            live_conversations as i64,
        );
        gauge(
            &mut out,
            "chatwire_sse_streams_open",
            "Open Server-Sent Events streams.",
            self.sse_streams.load(Relaxed),
        );
        gauge(
            &mut out,
            "chatwire_websockets_open",
            "Open WebSocket sessions.",
            self.websockets.load(Relaxed),
        );
        counter(
            &mut out,
            "chatwire_deltas_published_total",
            "reply.delta events published, once per event whatever the number of subscribers.",
            &self.deltas_published,
        );
        counter(
            &mut out,
            "chatwire_sse_events_sent_total",
            "Numbered events written to SSE streams, counted once per stream (replays included).",
            &self.sse_events_sent,
        );
        let _ = writeln!(
            out,
            "# HELP chatwire_replies_total Replies ended, by outcome.\n# TYPE chatwire_replies_total counter"
        );
        for (outcome, v) in [
            ("completed", &self.replies_completed),
            ("interrupted", &self.replies_interrupted),
            ("failed", &self.replies_failed),
        ] {
            let _ = writeln!(
                out,
                "chatwire_replies_total{{outcome=\"{outcome}\"}} {}",
                v.load(Relaxed)
            );
        }
        counter(
            &mut out,
            "chatwire_webhook_verification_failures_total",
            "Webhook deliveries refused: missing or wrong signature, or stale timestamp.",
            &self.webhook_verification_failures,
        );
        counter(
            &mut out,
            "chatwire_sse_resubscribes_total",
            "SSE readers that fell behind the live channel and re-subscribed from their last event.",
            &self.sse_resubscribes,
        );
        self.interrupt_latency.render(
            &mut out,
            "chatwire_interrupt_latency_seconds",
            "From an interrupt command arriving to reply.interrupted being published.",
        );
        self.first_token.render(
            &mut out,
            "chatwire_time_to_first_token_seconds",
            "From a user message arriving to the first reply.delta being published.",
        );
        out
    }

    fn gauge(&self, which: Gauge) -> &AtomicI64 {
        match which {
            Gauge::SseStreams => &self.sse_streams,
            Gauge::WebSockets => &self.websockets,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Gauge {
    SseStreams,
    WebSockets,
}

/// Holds one unit of an "open" gauge; dropping it counts down.
#[derive(Debug)]
pub struct OpenGuard {
    metrics: Arc<Metrics>,
    which: Gauge,
}

impl OpenGuard {
    fn new(metrics: Arc<Metrics>, which: Gauge) -> Self {
        metrics.gauge(which).fetch_add(1, Relaxed);
        OpenGuard { metrics, which }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.metrics.gauge(self.which).fetch_sub(1, Relaxed);
    }
}

/// A histogram with fixed upper bounds (seconds); counts are kept per bucket and made
/// cumulative only when rendered.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    /// One more than `bounds`: the last is `+Inf`.
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &[f64]) -> Self {
        Histogram {
            bounds: bounds.to_vec(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut total = 0;
        for (i, count) in self.counts.iter().enumerate() {
            total += count.load(Relaxed);
            match self.bounds.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {total}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
                }
            }
        }
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_with_inf_sum_and_count() {
        let m = Metrics::new();
        m.interrupt_latency(Duration::from_micros(300));
        m.interrupt_latency(Duration::from_millis(3));
        m.interrupt_latency(Duration::from_secs(5));
        let text = m.render(0);
        assert!(text.contains("chatwire_interrupt_latency_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("chatwire_interrupt_latency_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("chatwire_interrupt_latency_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("chatwire_interrupt_latency_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("chatwire_interrupt_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("chatwire_interrupt_latency_seconds_count 3\n"));
        assert!(text.contains("chatwire_interrupt_latency_seconds_sum 5.0033\n"));
    }

    #[test]
    fn guards_count_down_when_dropped() {
        let m = Metrics::new();
        let a = m.sse_stream_opened();
        let b = m.sse_stream_opened();
        let w = m.websocket_opened();
        assert!(m.render(0).contains("chatwire_sse_streams_open 2\n"));
        drop(a);
        drop(w);
        let text = m.render(0);
        assert!(text.contains("chatwire_sse_streams_open 1\n"));
        assert!(text.contains("chatwire_websockets_open 0\n"));
        drop(b);
    }

    #[test]
    fn every_line_is_a_comment_or_a_sample() {
        let m = Metrics::new();
        m.reply_finished(Outcome::Completed);
        m.delta_published();
        for line in m.render(3).lines() {
            let ok = line.starts_with("# HELP chatwire_")
                || line.starts_with("# TYPE chatwire_")
                || (line.starts_with("chatwire_")
                    && line
                        .rsplit_once(' ')
                        .is_some_and(|(_, v)| v.parse::<f64>().is_ok()));
            assert!(ok, "bad line: {line}");
        }
    }
}
