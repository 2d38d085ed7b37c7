//! Taking a conversation over in a cluster when the log does not end where this owner
//! starts (the previous owner crashed, was cut off, or Redis lost the log).
//!
//! The new owner's first event is a `sync` above every id used before, so every client —
//! live on any node, or resuming from an older point — has its state replaced before the
//! numbering jumps. A reply the previous owner left streaming is then ended with
//! `reply.failed`, its text the longer of the stored checkpoint and the deltas that reached
//! the log (every delta any client can have seen).

use super::Actor;
use crate::chat::Status;
use crate::cluster::log;
use crate::conversation::events::{Event, delta_of};

/// Most log entries read back to rebuild a cut-off reply (the log keeps about 1,000 events
/// plus the reply in progress).
const READ_BACK: usize = 200_000;

impl Actor {
    /// Called before `recover` when the owner link needs a `sync`: rebuilds cut-off replies
    /// from the log and publishes the `sync`. Returns the replies to end (their indices).
    pub(super) async fn take_over(&mut self) -> Vec<usize> {
        let cut: Vec<usize> = (0..self.messages.len())
            .filter(|&i| self.messages[i].status == Status::Streaming)
            .collect();
        if let (false, Some(link)) = (cut.is_empty(), self.link.as_ref()) {
            let redis = link.cluster().redis.clone();
            match log::after(&redis, &self.id, 0, READ_BACK).await {
                Ok(frames) => {
                    for &i in &cut {
                        let m = &mut self.messages[i];
                        let logged: String = frames
                            .iter()
                            .filter_map(|f| delta_of(&f.bytes))
                            .filter(|(reply, _)| *reply == m.id)
                            .map(|(_, text)| text)
                            .collect();
                        if logged.len() > m.text.len() {
                            m.text = logged;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(conversation = %self.id, error = %e, "cannot read the log back; keeping the checkpoint")
                }
            }
        }
        let id = self.events.next_id();
        self.events.publish(Event::Sync {
            messages: &self.messages,
            last_event_id: id,
        });
        cut
    }

    /// After `recover` marked them failed: the cut-off replies' last events.
    pub(super) fn end_cut_off(&mut self, cut: Vec<usize>) {
        for i in cut {
            let m = &self.messages[i];
            self.events.publish(Event::ReplyFailed {
                reply_id: &m.id,
                error: m.error.as_deref().unwrap_or("the reply was cut off"),
                text: &m.text,
            });
        }
    }
}
