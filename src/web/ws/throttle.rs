//! Per-session brakes: [`TypingGate`] coalesces a participant's typing reports so a flood
//! costs the actor at most a few commands a second, and [`Strikes`] counts bad frames so a
//! client that keeps sending junk is closed instead of answered forever.

use std::time::Duration;

use tokio::time::Instant;

/// At most one typing report per participant reaches the actor in this time.
pub const TYPING_MIN_GAP: Duration = Duration::from_millis(300);

/// Bad frames tolerated within [`STRIKE_WINDOW`] before the socket is closed (1008).
pub const MAX_STRIKES: u32 = 20;
pub const STRIKE_WINDOW: Duration = Duration::from_secs(10);

/// Coalesces one participant's typing reports.
///
/// The first report after a quiet gap goes through at once; reports inside the gap are
/// held, the latest one winning, and the held one goes through when the gap ends — so a
/// quick "stopped" after "started" is delayed, never lost.
#[derive(Debug, Default)]
pub struct TypingGate {
    last_sent: Option<Instant>,
    held: Option<bool>,
    /// The last state forwarded to the actor.
    active: bool,
}

impl TypingGate {
    /// A report arrived; returns the state to forward now, if any.
    pub fn report(&mut self, active: bool, now: Instant) -> Option<bool> {
        match self.last_sent {
            Some(t) if now < t + TYPING_MIN_GAP => {
                self.held = Some(active);
                None
            }
            _ => {
                self.held = None;
                self.forward(active, now)
            }
        }
    }

    /// When the held report is due, if one is held.
    pub fn due(&self) -> Option<Instant> {
        let last = self.last_sent?;
        self.held.map(|_| last + TYPING_MIN_GAP)
    }

    /// The held report, now that it is due.
    pub fn take_due(&mut self, now: Instant) -> Option<bool> {
        let active = self.held.take()?;
        self.forward(active, now)
    }

    /// Did the last forwarded report say "typing"?
    pub fn is_active(&self) -> bool {
        self.active
    }

    fn forward(&mut self, active: bool, now: Instant) -> Option<bool> {
        // "Stopped" when already stopped changes nothing; "typing" again renews the expiry.
        if !active && !self.active {
            return None;
        }
        self.last_sent = Some(now);
        self.active = active;
        Some(active)
    }
}

/// Counts bad frames in a fixed window.
#[derive(Debug)]
pub struct Strikes {
    count: u32,
    since: Instant,
}

impl Strikes {
    pub fn new(now: Instant) -> Self {
        Strikes {
            count: 0,
            since: now,
        }
    }

    /// Records a bad frame; `true` once the client has had too many.
    pub fn hit(&mut self, now: Instant) -> bool {
        if now.duration_since(self.since) > STRIKE_WINDOW {
            self.count = 0;
            self.since = now;
        }
        self.count += 1;
        self.count > MAX_STRIKES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_report_passes_then_the_latest_waits_for_the_gap() {
        let t0 = Instant::now();
        let mut g = TypingGate::default();
        assert_eq!(g.report(true, t0), Some(true));
        assert_eq!(g.due(), None);
        assert_eq!(g.report(false, t0 + 10 * MS), None);
        assert_eq!(g.report(true, t0 + 20 * MS), None);
        assert_eq!(g.report(false, t0 + 30 * MS), None);
        assert_eq!(g.due(), Some(t0 + TYPING_MIN_GAP));
        // The latest report wins: a flood of toggles ends as "stopped".
        assert_eq!(g.take_due(t0 + TYPING_MIN_GAP), Some(false));
        assert!(!g.is_active());
        assert_eq!(g.due(), None);
        assert_eq!(g.take_due(t0 + TYPING_MIN_GAP * 2), None);
    }

    #[test]
    fn a_flood_forwards_at_most_one_report_per_gap() {
        let t0 = Instant::now();
        let mut g = TypingGate::default();
        let mut forwarded = 0;
        let mut now = t0;
        for i in 0..1000u32 {
            now = t0 + i * MS;
            if let Some(due) = g.due().filter(|d| *d <= now) {
                forwarded += usize::from(g.take_due(due).is_some());
            }
            forwarded += usize::from(g.report(i % 2 == 0, now).is_some());
        }
        assert!(now - t0 < Duration::from_secs(1));
        assert!(
            forwarded <= 4,
            "forwarded {forwarded} reports in one second"
        );
    }

    #[test]
    fn stopping_when_not_typing_sends_nothing() {
        let t0 = Instant::now();
        let mut g = TypingGate::default();
        assert_eq!(g.report(false, t0), None);
        assert_eq!(g.report(true, t0 + MS), Some(true));
        assert_eq!(
            g.report(true, t0 + TYPING_MIN_GAP * 2),
            Some(true),
            "renewal"
        );
    }

    #[test]
    fn strikes_reset_after_the_window() {
        let t0 = Instant::now();
        let mut s = Strikes::new(t0);
        for _ in 0..MAX_STRIKES {
            assert!(!s.hit(t0));
        }
        assert!(!s.hit(t0 + STRIKE_WINDOW + MS), "a new window");
        let mut s = Strikes::new(t0);
        for _ in 0..MAX_STRIKES {
            s.hit(t0);
        }
        assert!(s.hit(t0), "one too many");
    }
}
