//! A reply's bounds (`--max-reply-secs`, `--max-reply-bytes`): one request must not keep a
//! provider streaming for an hour or grow a reply without end. Past either the reply ends
//! with `reply.failed`, keeping the text published so far; a delta that would cross the
//! size bound is cut (at a character boundary) to fit it exactly.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The bounds every reply of a server runs within (`Limits`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyCaps {
    pub(crate) max_duration: Duration,
    pub(crate) max_bytes: usize,
}

impl ReplyCaps {
    /// The timer of a reply starting now (made once per reply, polled with its stream).
    pub(super) fn deadline(&self) -> Pin<Box<Sleep>> {
        Box::pin(tokio::time::sleep_until(Instant::now() + self.max_duration))
    }

    /// The `reply.failed` error of a reply that ran out of time.
    pub(super) fn too_long(&self) -> String {
        format!(
            "the reply took longer than the {} s allowed",
            self.max_duration.as_secs()
        )
    }

    /// The `reply.failed` error of a reply that grew too large.
    pub(super) fn too_large(&self) -> String {
        format!("the reply grew past the {} bytes allowed", self.max_bytes)
    }

    /// How much of `delta` fits after `len` bytes of text, and whether it was cut.
    pub(super) fn fit<'a>(&self, len: usize, delta: &'a str) -> (&'a str, bool) {
        let room = self.max_bytes.saturating_sub(len);
        if delta.len() <= room {
            return (delta, false);
        }
        let mut cut = room;
        while !delta.is_char_boundary(cut) {
            cut -= 1;
        }
        (&delta[..cut], true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_are_cut_to_fit_at_a_character() {
        let caps = ReplyCaps {
            max_duration: Duration::from_secs(1),
            max_bytes: 10,
        };
        assert_eq!(caps.fit(0, "hello"), ("hello", false));
        assert_eq!(caps.fit(5, "hello"), ("hello", false));
        assert_eq!(caps.fit(6, "hello"), ("hell", true));
        assert_eq!(caps.fit(8, "éé"), ("é", true));
        assert_eq!(caps.fit(9, "é"), ("", true));
        assert_eq!(caps.fit(12, "x"), ("", true));
    }
}
