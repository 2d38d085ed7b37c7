//! Conversation events: numbered once, serialised once to their SSE frame, kept for replay.
//!
//! The actor turns each [`Event`] into a [`Frame`] — the exact bytes of one SSE event —
//! exactly once, and every subscriber shares those bytes. [`ReplayLog`] keeps the recent
//! frames so a reconnecting client resumes with no gap and no duplicate.

use std::collections::VecDeque;
use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::chat::Message;

/// What happened in a conversation, as API.md lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Event<'a> {
    UserMessage {
        message_id: &'a str,
        text: &'a str,
    },
    ReplyStarted {
        reply_id: &'a str,
        provider: &'a str,
        /// The user message it answers: the reply goes right after it in the history
        /// (not always at the end: a queued message's reply goes before later queued ones).
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<&'a str>,
        /// The reply it replaces in place (regenerate).
        #[serde(skip_serializing_if = "Option::is_none")]
        replaces: Option<&'a str>,
    },
    ReplyDelta {
        reply_id: &'a str,
        text: &'a str,
    },
    ReplyCompleted {
        reply_id: &'a str,
        text: &'a str,
    },
    ReplyInterrupted {
        reply_id: &'a str,
        text: &'a str,
    },
    ReplyFailed {
        reply_id: &'a str,
        error: &'a str,
        text: &'a str,
    },
    Sync {
        messages: &'a [Message],
        last_event_id: u64,
    },
}

impl Event<'_> {
    /// The SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::UserMessage { .. } => "user.message",
            Event::ReplyStarted { .. } => "reply.started",
            Event::ReplyDelta { .. } => "reply.delta",
            Event::ReplyCompleted { .. } => "reply.completed",
            Event::ReplyInterrupted { .. } => "reply.interrupted",
            Event::ReplyFailed { .. } => "reply.failed",
            Event::Sync { .. } => "sync",
        }
    }

    /// Encodes this event as one SSE frame with the given `id:`.
    pub fn encode(&self, id: u64) -> Frame {
        let mut w = BytesMut::with_capacity(96).writer();
        // Writing to memory cannot fail, and serde_json escapes newlines inside strings, so
        // the data stays on one line; the results are checked only to keep clippy honest.
        let _ = write!(w, "id: {id}\nevent: {}\ndata: ", self.name());
        let _ = serde_json::to_writer(&mut w, self);
        let mut buf = w.into_inner();
        buf.put_slice(b"\n\n");
        Frame {
            id,
            bytes: buf.freeze(),
        }
    }
}

/// One numbered event, ready to write to any SSE stream.
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: u64,
    pub bytes: Bytes,
}

/// The recent frames of a conversation, contiguous by id.
///
/// Holds at least `min_keep` frames and never drops a frame of the reply in progress
/// (from `pinned_from` on), so a client can always resume the whole current reply.
#[derive(Debug)]
pub struct ReplayLog {
    frames: VecDeque<Frame>,
    min_keep: usize,
    pinned_from: Option<u64>,
}

/// What a subscriber after event `n` must be sent first.
#[derive(Debug)]
pub enum Replay {
    /// These frames (possibly none), then live events — or, when `more`, the frames
    /// after the last of these (they did not fit in one page).
    Frames { frames: Vec<Frame>, more: bool },
    /// `n` is older than the window or unknown: send a snapshot first.
    Snapshot,
}

impl ReplayLog {
    pub fn new(min_keep: usize) -> Self {
        ReplayLog {
            // Grows with use: an idle conversation should not hold 1,000 empty slots.
            frames: VecDeque::new(),
            min_keep,
            pinned_from: None,
        }
    }

    pub fn push(&mut self, frame: Frame) {
        self.frames.push_back(frame);
        let pin = self.pinned_from.unwrap_or(u64::MAX);
        while self.frames.len() > self.min_keep && self.frames.front().is_some_and(|f| f.id < pin) {
            self.frames.pop_front();
        }
    }

    /// The log a new actor starts with, from the frames storage kept (oldest first): used
    /// only if they end exactly where the numbering does (`next_id - 1`, as after a
    /// graceful stop), and only their run of consecutive numbers ending there. Otherwise
    /// (after a crash) it starts empty and a resume gets a `sync`. Also returns the highest
    /// number storage holds.
    pub fn restore(min_keep: usize, stored: Vec<Frame>, next_id: u64) -> (ReplayLog, u64) {
        let mut log = ReplayLog::new(min_keep);
        let Some(last) = stored.last().map(|f| f.id) else {
            return (log, 0);
        };
        if last + 1 != next_id {
            return (log, last);
        }
        let mut start = stored.len() - 1;
        while start > 0 && stored[start - 1].id + 1 == stored[start].id {
            start -= 1;
        }
        for frame in stored.into_iter().skip(start) {
            log.push(frame);
        }
        (log, last)
    }

    /// Keeps every frame from `id` on until [`ReplayLog::unpin`] (the reply in progress).
    pub fn pin_from(&mut self, id: u64) {
        self.pinned_from = Some(id);
    }

    pub fn unpin(&mut self) {
        self.pinned_from = None;
    }

    /// What a client that has seen everything up to `after` needs, when `last` is the
    /// newest event number published: at most `page` frames at a time.
    pub fn after(&self, after: u64, last: u64, page: usize) -> Replay {
        if after == last {
            return Replay::Frames {
                frames: Vec::new(),
                more: false,
            };
        }
        if after > last {
            return Replay::Snapshot;
        }
        let Some(first) = self.frames.front().map(|f| f.id) else {
            return Replay::Snapshot;
        };
        if after + 1 < first {
            return Replay::Snapshot;
        }
        let skip = (after + 1 - first) as usize;
        let available = self.frames.len().saturating_sub(skip);
        Replay::Frames {
            frames: self.frames.iter().skip(skip).take(page).cloned().collect(),
            more: available > page,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.frames.len()
    }

    /// The frames held, oldest first.
    pub fn frames(&self) -> impl Iterator<Item = &Frame> {
        self.frames.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(id: u64) -> Frame {
        Event::ReplyDelta {
            reply_id: "r",
            text: "x",
        }
        .encode(id)
    }

    #[test]
    fn frame_is_one_sse_event() {
        let f = Event::ReplyDelta {
            reply_id: "m_1",
            text: "a\nb",
        }
        .encode(7);
        assert_eq!(
            &f.bytes[..],
            b"id: 7\nevent: reply.delta\ndata: {\"reply_id\":\"m_1\",\"text\":\"a\\nb\"}\n\n"
        );
    }

    #[test]
    fn replays_within_window_and_snapshots_outside() {
        let mut log = ReplayLog::new(3);
        for id in 1..=5 {
            log.push(delta(id));
        }
        assert_eq!(log.len(), 3); // 3, 4, 5
        let n = |r: Replay| match r {
            Replay::Frames { frames, more } => Some((frames.len(), more)),
            Replay::Snapshot => None,
        };
        assert_eq!(n(log.after(5, 5, 10)), Some((0, false)));
        assert_eq!(n(log.after(2, 5, 10)), Some((3, false)));
        assert_eq!(n(log.after(4, 5, 10)), Some((1, false)));
        assert_eq!(n(log.after(2, 5, 2)), Some((2, true)), "paged");
        assert_eq!(n(log.after(3, 5, 2)), Some((2, false)));
        assert_eq!(n(log.after(1, 5, 10)), None);
        assert_eq!(n(log.after(9, 5, 10)), None);
    }

    #[test]
    fn restores_only_a_run_that_ends_at_the_floor() {
        let stored = |ids: &[u64]| ids.iter().map(|&i| delta(i)).collect::<Vec<_>>();
        let (log, upto) = ReplayLog::restore(10, stored(&[1, 2, 3, 7, 8, 9]), 10);
        assert_eq!((log.len(), upto), (3, 9), "only 7..=9");
        assert!(matches!(log.after(6, 9, 100), Replay::Frames { frames, .. } if frames.len() == 3));
        assert!(matches!(log.after(3, 9, 100), Replay::Snapshot));
        // After a crash the floor is a reserved block past the stored events.
        let (log, upto) = ReplayLog::restore(10, stored(&[1, 2, 3]), 10_004);
        assert_eq!((log.len(), upto), (0, 3));
        let (log, upto) = ReplayLog::restore(10, Vec::new(), 1);
        assert_eq!((log.len(), upto), (0, 0));
    }

    #[test]
    fn keeps_the_pinned_reply_whole() {
        let mut log = ReplayLog::new(2);
        log.pin_from(2);
        for id in 1..=10 {
            log.push(delta(id));
        }
        assert_eq!(log.len(), 9); // 2..=10
        assert!(
            matches!(log.after(1, 10, 100), Replay::Frames { frames, .. } if frames.len() == 9)
        );
        log.unpin();
        log.push(delta(11));
        assert_eq!(log.len(), 2);
    }
}
