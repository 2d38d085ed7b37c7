//! Putting a job's callbacks in order: chatwire's callback protocol numbers deltas 1, 2,
//! 3… and gives `job.completed` the number after the last delta. Callbacks may arrive
//! twice or out of order; the sequencer applies each number once, in order, holding early
//! ones in a bounded buffer.

use std::collections::{BTreeMap, VecDeque};

use crate::providers::ReplyEvent;
use crate::providers::protocol::Callback;

/// How far ahead of the next expected number a callback may be.
pub const WINDOW: u64 = 256;
/// How many bytes of text may wait for a missing number.
pub const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

enum Pending {
    Delta(String),
    Completed,
}

#[derive(Default)]
pub struct Sequencer {
    /// The next number to apply (numbers start at 1).
    next: u64,
    pending: BTreeMap<u64, Pending>,
    pending_bytes: usize,
    /// The text applied so far, to check a `job.completed` that carries the whole text.
    delivered: String,
    /// The service said the job ended (completed or failed).
    upstream_finished: bool,
    /// No further callback changes anything.
    ended: bool,
}

impl Sequencer {
    pub fn new() -> Self {
        Sequencer {
            next: 1,
            ..Sequencer::default()
        }
    }

    pub fn upstream_finished(&self) -> bool {
        self.upstream_finished
    }

    /// Applies one callback; the reply events it releases are appended to `out`.
    pub fn accept(&mut self, callback: Callback, out: &mut VecDeque<ReplyEvent>) {
        if self.ended {
            return;
        }
        match callback {
            Callback::Delta { seq, text, .. } => self.hold(seq, Pending::Delta(text), out),
            Callback::Completed {
                text: Some(text), ..
            } => {
                // The whole text settles the reply now; deltas still missing are not awaited.
                self.end(true);
                match text.strip_prefix(self.delivered.as_str()) {
                    Some(rest) => {
                        if !rest.is_empty() {
                            out.push_back(ReplyEvent::Delta(rest.to_string()));
                        }
                        out.push_back(ReplyEvent::Completed);
                    }
                    None => out.push_back(ReplyEvent::Failed(
                        "the NLP service's final text does not match the deltas it sent".into(),
                    )),
                }
            }
            Callback::Completed {
                seq, text: None, ..
            } => {
                if seq < self.next {
                    self.end(true);
                    out.push_back(ReplyEvent::Failed(format!(
                        "the NLP service completed the job at number {seq} after number {} was applied",
                        self.next - 1
                    )));
                } else {
                    self.hold(seq, Pending::Completed, out);
                }
            }
            Callback::Failed { error, .. } => {
                self.end(true);
                out.push_back(ReplyEvent::Failed(format!(
                    "the NLP service failed: {error}"
                )));
            }
        }
    }

    fn end(&mut self, upstream: bool) {
        self.ended = true;
        self.upstream_finished |= upstream;
        self.pending.clear();
        self.pending_bytes = 0;
    }

    fn hold(&mut self, seq: u64, item: Pending, out: &mut VecDeque<ReplyEvent>) {
        if seq < self.next || self.pending.contains_key(&seq) {
            return; // a duplicate
        }
        let size = match &item {
            Pending::Delta(t) => t.len(),
            Pending::Completed => 0,
        };
        if seq >= self.next + WINDOW || self.pending_bytes + size > MAX_PENDING_BYTES {
            // Not ended upstream: the stream's guard cancels the job.
            self.end(false);
            out.push_back(ReplyEvent::Failed(format!(
                "the NLP service sent callback {seq} while {} was still missing",
                self.next
            )));
            return;
        }
        self.pending_bytes += size;
        self.pending.insert(seq, item);
        while let Some(item) = self.pending.remove(&self.next) {
            self.next += 1;
            match item {
                Pending::Delta(text) => {
                    self.pending_bytes -= text.len();
                    self.delivered.push_str(&text);
                    out.push_back(ReplyEvent::Delta(text));
                }
                Pending::Completed => {
                    self.end(true);
                    out.push_back(ReplyEvent::Completed);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(seq: u64, text: &str) -> Callback {
        Callback::Delta {
            job_id: "j".into(),
            seq,
            text: text.into(),
        }
    }

    fn completed(seq: u64, text: Option<&str>) -> Callback {
        Callback::Completed {
            job_id: "j".into(),
            seq,
            text: text.map(String::from),
        }
    }

    fn run(callbacks: Vec<Callback>) -> (Vec<ReplyEvent>, Sequencer) {
        let mut s = Sequencer::new();
        let mut out = VecDeque::new();
        for c in callbacks {
            s.accept(c, &mut out);
        }
        (out.into_iter().collect(), s)
    }

    fn d(t: &str) -> ReplyEvent {
        ReplyEvent::Delta(t.into())
    }

    #[test]
    fn reorders_and_dedupes() {
        let (out, s) = run(vec![
            delta(2, " world"),
            delta(1, "Hello"),
            delta(2, " world"),
            completed(4, None),
            delta(1, "Hello"),
            delta(3, "!"),
            delta(3, "!"),
        ]);
        assert_eq!(
            out,
            vec![d("Hello"), d(" world"), d("!"), ReplyEvent::Completed]
        );
        assert!(s.upstream_finished());
    }

    #[test]
    fn a_completion_with_text_fills_in_what_is_missing() {
        let (out, _) = run(vec![
            delta(1, "Hello"),
            delta(3, "!"),
            completed(4, Some("Hello world!")),
            delta(2, " world"),
        ]);
        assert_eq!(out, vec![d("Hello"), d(" world!"), ReplyEvent::Completed]);
    }

    #[test]
    fn a_failure_ends_at_once_keeping_what_was_applied() {
        let (out, s) = run(vec![
            delta(1, "Hel"),
            delta(3, "lost"),
            Callback::Failed {
                job_id: "j".into(),
                error: "model crashed".into(),
                seq: None,
            },
            delta(2, "lo"),
        ]);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[1], ReplyEvent::Failed(m) if m.contains("model crashed")));
        assert!(s.upstream_finished());
    }

    #[test]
    fn a_callback_too_far_ahead_ends_the_reply() {
        let (out, s) = run(vec![delta(1, "a"), delta(2 + WINDOW, "b")]);
        assert!(matches!(&out[1], ReplyEvent::Failed(m) if m.contains("still missing")));
        assert!(!s.upstream_finished(), "the job is cancelled upstream");
    }
}
