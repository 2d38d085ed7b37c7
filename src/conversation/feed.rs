//! A node's feed of one conversation in cluster mode: the relay's frames and presence as
//! the same `broadcast` receivers a local actor hands out, so the SSE and WebSocket routes
//! read a remote conversation exactly as a local one.
//!
//! Streams hold the feed, not the actor: an owner can idle out or move to another node
//! while streams stay open. When the relay reports lost ids the feed closes, its streams
//! end with a `retry:` hint, and their clients resume (getting a `sync` if they must).
//! When the conversation is deleted (its owner says so on the presence channel) the feed
//! closes too, and its clients' next attempt finds nothing (404).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::events::Frame;
use super::handle::Shared;
use super::presence::PresenceFrame;
use crate::cluster::relay::{Relay, RelayItem};
use crate::cluster::{ClusterError, relay::Relays};

pub(crate) struct Feed {
    pub(crate) relay: Arc<Relay>,
    /// Weak: only the pump holds the senders, so when it stops every stream reading them
    /// ends after the frames it already has.
    frames: broadcast::WeakSender<Frame>,
    presence: broadcast::WeakSender<PresenceFrame>,
    /// Cancelled when the feed closes (lost ids, shutdown): sessions watch it.
    pub(crate) ended: CancellationToken,
    /// Subscriber places taken on this node.
    pub(crate) shared: Arc<Shared>,
}

impl Feed {
    /// The live frames; `None` once the feed has closed.
    pub(crate) fn frames(&self) -> Option<broadcast::Receiver<Frame>> {
        Some(self.frames.upgrade()?.subscribe())
    }

    pub(crate) fn presence(&self) -> Option<broadcast::Receiver<PresenceFrame>> {
        Some(self.presence.upgrade()?.subscribe())
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.ended.cancel();
    }
}

/// This node's feeds, by conversation.
#[derive(Clone)]
pub(crate) struct Feeds {
    relays: Relays,
    shutdown: CancellationToken,
    open: Arc<Mutex<HashMap<Arc<str>, Weak<Feed>>>>,
}

impl Feeds {
    pub(crate) fn new(relays: Relays, shutdown: CancellationToken) -> Self {
        Feeds {
            relays,
            shutdown,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub(crate) fn relays(&self) -> &Relays {
        &self.relays
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Weak<Feed>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The conversation's feed on this node, opened if needed.
    pub(crate) async fn get(&self, id: &str) -> Result<Arc<Feed>, ClusterError> {
        if let Some(f) = self.lock().get(id).and_then(Weak::upgrade)
            && !f.ended.is_cancelled()
        {
            return Ok(f);
        }
        let relay = self.relays.get(id).await?;
        let mut open = self.lock();
        if let Some(f) = open.get(id).and_then(Weak::upgrade)
            && !f.ended.is_cancelled()
        {
            return Ok(f);
        }
        open.retain(|_, w| w.strong_count() > 0);
        let (frames, _) = broadcast::channel(256);
        let (presence, _) = broadcast::channel(16);
        let feed = Arc::new(Feed {
            frames: frames.downgrade(),
            presence: presence.downgrade(),
            ended: self.shutdown.child_token(),
            shared: Arc::new(Shared::default()),
            relay,
        });
        open.insert(id.into(), Arc::downgrade(&feed));
        tokio::spawn(pump(
            feed.relay.frames(),
            feed.relay.presence(),
            frames,
            presence,
            feed.ended.clone(),
        ));
        Ok(feed)
    }
}

/// Copies the relay's items into the feed's channels until the feed ends. The senders
/// it holds are dropped when it returns, which ends every stream reading them.
async fn pump(
    mut items: broadcast::Receiver<RelayItem>,
    mut presence_in: broadcast::Receiver<bytes::Bytes>,
    frames: broadcast::Sender<Frame>,
    presence: broadcast::Sender<PresenceFrame>,
    ended: CancellationToken,
) {
    loop {
        tokio::select! {
            biased;
            _ = ended.cancelled() => break,
            item = items.recv() => match item {
                Ok(RelayItem::Frame(f)) => {
                    let _ = frames.send(Frame { id: f.id, bytes: f.bytes });
                }
                // Lost ids, or this feed fell behind its relay: its streams must resume.
                Ok(RelayItem::Lost) | Err(_) => break,
            },
            p = presence_in.recv() => match p {
                // Deleted by its owner: the streams of it end here too.
                Ok(json) if json.as_ref() == crate::cluster::presence::DELETED => break,
                Ok(json) => {
                    if let Some(frame) = PresenceFrame::from_json(&json) {
                        let _ = presence.send(frame);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    ended.cancel();
}
