//! The numbered side of an actor: event numbers, the replay log and the live broadcast.
//!
//! [`Publisher::publish`] is the only way an event gets a number. The fields are private to
//! this file, so the rest of the actor cannot number, skip or re-use an id: it asks the
//! publisher for the last id, for a subscription, for the next block to reserve in storage
//! and for the frames storage does not have yet.

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::chat::Message;
use crate::conversation::events::{Event, Frame, Replay, ReplayLog};
use crate::conversation::handle::Subscription;
use crate::storage::StoredEvent;

/// Event numbers are reserved in storage this many at a time (see `event_id_floor`).
const EVENT_ID_BLOCK: u64 = 10_000;
/// Most frames one subscription hands over at once: a reader far behind takes its replay
/// a page at a time, so what it holds does not grow with the length of the reply.
const REPLAY_PAGE: usize = 1024;

pub(super) struct Publisher {
    next_id: u64,
    /// Numbers below this are reserved in storage: a successor starts above them.
    reserved_until: u64,
    /// A new block of event numbers must be reserved before long.
    reserve_needed: bool,
    log: ReplayLog,
    /// The highest event number already in storage's `events` table.
    stored_upto: u64,
    /// How many of the newest frames storage keeps for resumes.
    replay_events: usize,
    /// Only this sender exists: it closes, ending every SSE stream, when the actor stops.
    live: broadcast::Sender<Frame>,
}

/// Frames of the replay window that storage does not have yet (see [`Publisher::unsaved`]).
pub(super) struct Unsaved<'a> {
    pub(super) frames: Vec<(u64, &'a [u8])>,
    /// Storage may forget the frames before this number.
    pub(super) keep_from: u64,
    /// The last event number published; pass it to [`Publisher::saved`] once written.
    pub(super) last: u64,
}

impl Publisher {
    /// Numbering continues at storage's floor; the stored frames become the replay log if
    /// they end exactly there (see `ReplayLog::restore`).
    pub(super) fn new(
        floor: u64,
        stored: Vec<StoredEvent>,
        replay_events: usize,
        capacity: usize,
    ) -> Self {
        let next_id = floor.max(1);
        let stored = stored.into_iter().map(|e| Frame {
            id: e.id,
            bytes: Bytes::from(e.frame),
        });
        let (log, stored_upto) = ReplayLog::restore(replay_events, stored.collect(), next_id);
        let (live, _) = broadcast::channel(capacity);
        Publisher {
            next_id,
            reserved_until: next_id,
            reserve_needed: false,
            log,
            stored_upto,
            replay_events,
            live,
        }
    }

    /// Numbers, encodes and publishes one event: the only place event numbers are given.
    pub(super) fn publish(&mut self, event: Event<'_>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let frame = event.encode(id);
        self.log.push(frame.clone());
        // No receivers is fine: the log keeps the event for whoever comes later.
        let _ = self.live.send(frame);
        // Half a block of slack: the reservation is written within this turn of the loop.
        if self.next_id + EVENT_ID_BLOCK / 2 >= self.reserved_until {
            self.reserve_needed = true;
        }
        id
    }

    /// Publishes a `sync` (the whole history, replacing every client's state) as a numbered
    /// event of the log, so a replay across it delivers it too. Its `last_event_id` is its
    /// own number: the snapshot holds everything up to and including it.
    pub(super) fn publish_sync(&mut self, messages: &[Message]) -> u64 {
        let id = self.next_id;
        self.publish(Event::Sync {
            messages,
            last_event_id: id,
        })
    }

    pub(super) fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    /// The number the next event will get (the exact floor written at stop).
    pub(super) fn next_id(&self) -> u64 {
        self.next_id
    }

    /// SSE streams reading the live broadcast.
    pub(super) fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    /// Keeps every frame from `id` on in the log (the reply in progress) until `unpin`.
    pub(super) fn pin_from(&mut self, id: u64) {
        self.log.pin_from(id);
    }

    pub(super) fn unpin(&mut self) {
        self.log.unpin();
    }

    /// Replay after event `after` (or none when `None`) and the live feed, in one step:
    /// no gap, no duplicate. `messages` makes the `sync` when `after` is out of the log.
    pub(super) fn subscribe(&self, after: Option<u64>, messages: &[Message]) -> Subscription {
        let live = self.live.subscribe();
        let last = self.last_id();
        let replay = match after {
            None => Replay::Frames {
                frames: Vec::new(),
                more: false,
            },
            Some(n) => self.log.after(n, last, REPLAY_PAGE),
        };
        match replay {
            Replay::Frames { frames, more } => Subscription {
                last_id: if more {
                    frames.last().map_or(last, |f| f.id)
                } else {
                    last
                },
                backlog: frames.into_iter().map(|f| f.bytes).collect(),
                more,
                live,
            },
            Replay::Snapshot => Subscription {
                backlog: vec![
                    Event::Sync {
                        messages,
                        last_event_id: last,
                    }
                    .encode(last)
                    .bytes,
                ],
                last_id: last,
                more: false,
                live,
            },
        }
    }

    /// Whether a block of numbers must be reserved in storage (after this turn's events).
    pub(super) fn reservation_due(&self) -> bool {
        self.reserve_needed
    }

    /// Takes the next block: returns the number storage must reserve up to.
    pub(super) fn reserve_block(&mut self) -> u64 {
        self.reserve_needed = false;
        self.reserved_until = self.next_id + EVENT_ID_BLOCK;
        self.reserved_until
    }

    /// The frames of the replay window storage does not have yet; `None` if it has all.
    pub(super) fn unsaved(&self) -> Option<Unsaved<'_>> {
        let last = self.last_id();
        let keep_from = (last + 1).saturating_sub(self.replay_events as u64);
        let frames: Vec<(u64, &[u8])> = self
            .log
            .frames()
            .filter(|f| f.id > self.stored_upto && f.id >= keep_from)
            .map(|f| (f.id, &f.bytes[..]))
            .collect();
        if frames.is_empty() && self.stored_upto == last {
            return None;
        }
        Some(Unsaved {
            frames,
            keep_from,
            last,
        })
    }

    /// Storage now holds every frame up to `last`.
    pub(super) fn saved(&mut self, last: u64) {
        self.stored_upto = last;
    }
}
