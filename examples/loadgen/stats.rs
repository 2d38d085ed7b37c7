//! Percentiles and the figures one scenario produces for one server.

use std::time::Duration;

/// p50 / p99 / max of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dist {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Dist {
    /// Nearest-rank percentiles of `values` (milliseconds; sorted here).
    pub fn of(mut values: Vec<f64>) -> Dist {
        if values.is_empty() {
            return Dist::default();
        }
        values.sort_unstable_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p / 100.0) * values.len() as f64).ceil() as usize;
            values[i.clamp(1, values.len()) - 1]
        };
        Dist {
            n: values.len(),
            p50: rank(50.0),
            p99: rank(99.0),
            max: values[values.len() - 1],
        }
    }

    pub fn show(&self) -> String {
        if self.n == 0 {
            return "n/a".into();
        }
        format!("{} / {}", ms(self.p50), ms(self.p99))
    }
}

/// A duration in milliseconds, with sensible precision.
pub fn ms(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A signed difference `a - b` in milliseconds.
pub fn diff_ms(a: tokio::time::Instant, b: tokio::time::Instant) -> f64 {
    if a >= b {
        millis(a - b)
    } else {
        -millis(b - a)
    }
}

/// What a streaming scenario measured on one server.
#[derive(Debug, Clone, Default)]
pub struct Streaming {
    pub streams: usize,
    pub deltas: u64,
    pub errors: usize,
    pub secs: f64,
    pub cpu_secs: f64,
    /// Of `cpu_secs`, the time in the kernel.
    pub sys_secs: f64,
    /// The load generator's own CPU time in the window (to see whether it kept up).
    pub client_cpu_secs: f64,
    /// Seconds the server was runnable but waited for its core (other load on the machine).
    pub cpu_wait_secs: f64,
    pub lateness: Dist,
    /// Lateness of the deltas that arrived after every reply had started.
    pub steady_lateness: Dist,
    pub first_delta: Dist,
    /// Server read and write system calls during the window.
    pub syscalls: (u64, u64),
    /// chatwire's own counters after the run (from `/metrics`).
    pub server_counters: String,
}

impl Streaming {
    pub fn deltas_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.deltas as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Server CPU-seconds per million delivered deltas.
    pub fn cpu_per_million(&self) -> f64 {
        if self.deltas > 0 {
            self.cpu_secs * 1e6 / self.deltas as f64
        } else {
            f64::NAN
        }
    }

    /// Share of one core the server used during the window.
    pub fn core_share(&self) -> f64 {
        if self.secs > 0.0 {
            self.cpu_secs / self.secs
        } else {
            0.0
        }
    }
}

/// What an idle-connections scenario measured on one server.
#[derive(Debug, Clone, Default)]
pub struct Idle {
    pub wanted: usize,
    pub opened: usize,
    pub errors: usize,
    pub still_open: usize,
    /// RSS growth while the connections were opened, KiB.
    pub rss_delta_kb: i64,
    /// RSS growth while the conversations behind them were created (chatwire), KiB.
    pub setup_rss_kb: i64,
    pub open_secs: f64,
    pub note: String,
}

impl Idle {
    /// KiB per connection.
    pub fn per_conn(&self) -> f64 {
        if self.opened == 0 {
            return f64::NAN;
        }
        self.rss_delta_kb as f64 / self.opened as f64
    }

    /// KiB per connection including what was created for it beforehand.
    pub fn per_conn_with_setup(&self) -> f64 {
        if self.opened == 0 {
            return f64::NAN;
        }
        (self.rss_delta_kb + self.setup_rss_kb) as f64 / self.opened as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let d = Dist::of((1..=100).map(f64::from).collect());
        assert_eq!((d.p50, d.p99, d.max), (50.0, 99.0, 100.0));
        let d = Dist::of(vec![3.0]);
        assert_eq!((d.p50, d.p99), (3.0, 3.0));
    }
}
