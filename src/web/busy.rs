//! Busy conversations: how many conversations one client keeps busy (a reply running) at
//! once, per client address and per owner (`--max-busy-conversations-per-address`,
//! `--max-busy-conversations-per-owner`). A post that would start a reply in one more
//! conversation than its client's share is a 429 `too_many_replies`, before anything is
//! stored.
//!
//! A conversation is counted once, against the client whose post made it busy; later posts
//! to it while it is counted (a barge-in, a queued message, another participant) take no
//! place. The place is held by a small task per busy conversation that watches the
//! conversation's presence feed — bot state frames, a few per reply, never a delta — and
//! gives the place back once the conversation is idle (the reply completed, failed or was
//! interrupted, and no queued reply followed it), when the conversation stops, or at
//! shutdown. Counting happens on the node that accepted the post; in cluster mode the
//! reply may run on another node, and its end is seen here through this node's feed of the
//! conversation (one `join` per reply end, no Redis round trip per delta). Each node
//! counts the posts it accepted: a client spread over `n` nodes may keep up to `n` times
//! its share busy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::caps::{Caps, Places};
use crate::conversation::{BotState, ConversationRef};
use crate::web::error::AppError;

/// However quiet the feed, a busy conversation is looked at again this often (a missed
/// frame, an owner that changed node), so no place is held for ever.
const RECHECK: Duration = Duration::from_secs(30);

/// The conversations counted on this node, and each client's share.
#[derive(Debug)]
pub(crate) struct Busy {
    by_address: Caps<IpAddr>,
    by_owner: Caps<Arc<str>>,
    /// Counted conversations: id → generation, bumped by every post that finds it counted
    /// (so a watcher never lets go while a post it has not seen may start a reply).
    counted: Mutex<HashMap<Arc<str>, u64>>,
}

/// A newly counted conversation's places, for [`Busy::hold`].
#[derive(Debug)]
pub(crate) struct Ticket {
    id: Arc<str>,
    places: Places,
}

impl Busy {
    pub fn new(per_address: usize, per_owner: usize) -> Self {
        Busy {
            by_address: Caps::new(per_address, 0),
            by_owner: Caps::new(per_owner, 0),
            counted: Mutex::new(HashMap::new()),
        }
    }

    fn counted(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, u64>> {
        self.counted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before a post that may start a reply in conversation `id`: `None` if the conversation
    /// is counted already, a [`Ticket`] if it is counted now for this client, or 429
    /// `too_many_replies` when the client (address or owner) holds its share already.
    pub fn enter(
        &self,
        id: Arc<str>,
        address: Option<IpAddr>,
        owner: Option<&Arc<str>>,
    ) -> Result<Option<Ticket>, AppError> {
        let mut counted = self.counted();
        if let Some(generation) = counted.get_mut(&id) {
            *generation += 1;
            return Ok(None);
        }
        let places = Places::take(&self.by_address, address, &self.by_owner, owner)
            .map_err(|_| AppError::TooManyReplies)?;
        counted.insert(id.clone(), 0);
        Ok(Some(Ticket { id, places }))
    }

    fn generation(&self, id: &str) -> Option<u64> {
        self.counted().get(id).copied()
    }

    /// Forgets conversation `id` if no post entered since `seen` (any time when `None`).
    fn leave(&self, id: &str, seen: Option<u64>) -> bool {
        let mut counted = self.counted();
        match (counted.get(id), seen) {
            (Some(now), Some(seen)) if *now != seen => false,
            _ => {
                counted.remove(id);
                true
            }
        }
    }

    /// Holds `ticket`'s places until conversation `conv` is idle, stops, or the server
    /// shuts down; call it after the post, whatever its outcome (a failed post leaves the
    /// conversation idle and the place comes back at the first look).
    pub async fn hold(
        self: Arc<Self>,
        ticket: Ticket,
        conv: ConversationRef,
        shutdown: CancellationToken,
    ) {
        let ended = conv.ended();
        loop {
            let seen = self.generation(&ticket.id);
            let Ok(mut presence) = conv.join().await else {
                break;
            };
            if presence.bot == BotState::Idle {
                if self.leave(&ticket.id, seen) {
                    return;
                }
                continue;
            }
            let recheck = tokio::time::sleep(RECHECK);
            tokio::pin!(recheck);
            let stop = loop {
                tokio::select! {
                    _ = ended.cancelled() => break true,
                    _ = shutdown.cancelled() => break true,
                    _ = &mut recheck => break false,
                    frame = presence.live.recv() => match frame {
                        Ok(f) if f.is_bot_idle() => break false,
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => break false,
                        Err(RecvError::Closed) => break true,
                    },
                }
            };
            if stop {
                break;
            }
        }
        self.leave(&ticket.id, None);
        drop(ticket.places);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_is_counted_once_and_a_post_keeps_it() {
        let busy = Busy::new(1, 0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = busy.enter("c1".into(), Some(a), None).unwrap().unwrap();
        assert!(busy.enter("c1".into(), Some(b), None).unwrap().is_none());
        assert!(matches!(
            busy.enter("c2".into(), Some(a), None),
            Err(AppError::TooManyReplies)
        ));
        assert!(busy.enter("c3".into(), Some(b), None).unwrap().is_some());
        // The second post to c1 came after generation 0 was seen: c1 stays counted.
        assert!(!busy.leave("c1", Some(0)));
        assert!(busy.leave("c1", Some(1)));
        drop(first);
        assert!(busy.enter("c2".into(), Some(a), None).unwrap().is_some());
    }
}
