//! Cluster metrics, appended to `/metrics` after the node's own (same format, same rules:
//! relaxed atomics when recording, formatting only when scraped).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::metrics::Histogram;

#[derive(Debug)]
pub struct ClusterMetrics {
    pub takeovers_clean: AtomicU64,
    pub takeovers_crash: AtomicU64,
    pub fenced_writes: AtomicU64,
    pub relay_gaps: AtomicU64,
    pub relay_syncs: AtomicU64,
    pub forward_latency: Histogram,
    pub append_latency: Histogram,
}

impl Default for ClusterMetrics {
    fn default() -> Self {
        let bounds = [
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5,
        ];
        ClusterMetrics {
            takeovers_clean: AtomicU64::new(0),
            takeovers_crash: AtomicU64::new(0),
            fenced_writes: AtomicU64::new(0),
            relay_gaps: AtomicU64::new(0),
            relay_syncs: AtomicU64::new(0),
            forward_latency: Histogram::new(&bounds),
            append_latency: Histogram::new(&bounds),
        }
    }
}

impl ClusterMetrics {
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP chatwire_lease_takeovers_total Conversations this node took ownership of, by how the previous owner left.\n# TYPE chatwire_lease_takeovers_total counter"
        );
        for (how, v) in [
            ("clean", &self.takeovers_clean),
            ("crash", &self.takeovers_crash),
        ] {
            let _ = writeln!(
                out,
                "chatwire_lease_takeovers_total{{previous=\"{how}\"}} {}",
                v.load(Relaxed)
            );
        }
        for (name, help, v) in [
            (
                "chatwire_fenced_writes_total",
                "Writes refused because this node no longer held the lease (Redis) or the epoch (PostgreSQL).",
                &self.fenced_writes,
            ),
            (
                "chatwire_relay_gaps_total",
                "Frames a relay found missing after pub/sub and took from the log (or found lost).",
                &self.relay_gaps,
            ),
            (
                "chatwire_relay_syncs_total",
                "Resumes whose point was no longer in the log (answered with a sync).",
                &self.relay_syncs,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
        self.forward_latency.render(
            out,
            "chatwire_forward_latency_seconds",
            "From sending a command to the owning node to its answer.",
        );
        self.append_latency.render(
            out,
            "chatwire_log_append_latency_seconds",
            "One append of an actor turn's frames to the Redis log.",
        );
    }
}
