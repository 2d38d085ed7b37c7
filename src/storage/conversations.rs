//! The conversation tables as the server sees them, whatever the backend: a conversation
//! and its messages (insert, also after a given message; update; replace in place; an edit
//! that removes later messages; the guarded checkpoint of a streaming reply), its
//! event-number floor (reservations and the exact floor written at a graceful stop), the
//! stored replay window (`events`) and its ownership epoch. Only the conversation's actor
//! (and the registry that starts it) calls these; see the module docs for the epochs.

use super::{Store, StoreError, dispatch};
use crate::chat::Message;

/// A conversation as storage holds it.
#[derive(Debug, Clone)]
pub struct StoredConversation {
    pub id: String,
    pub token_hash: String,
    pub provider: String,
    /// Whose it is (`None`: reachable by its token only).
    pub owner: Option<String>,
    pub created_at: i64,
    pub event_id_floor: u64,
    /// The epoch of its latest [`Store::claim`] (0: never claimed).
    pub owner_epoch: Epoch,
    pub messages: Vec<Message>,
}

/// One stored event: its number and its SSE frame bytes.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: u64,
    pub frame: Vec<u8>,
}

/// A conversation's ownership epoch, as returned by [`Store::claim`]: every write of an
/// actor carries it and is refused ([`StoreError::Fenced`]) once a newer claim was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub i64);

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Store {
    /// Replies that were streaming when the server last stopped are marked failed, text
    /// kept. Returns how many were marked. Only for a single node at start-up (in a
    /// cluster other nodes' replies are streaming; a new owner's actor does this for its
    /// conversation under its epoch).
    pub async fn mark_abandoned_replies(&self) -> Result<u64, StoreError> {
        dispatch!(self, b => b.mark_abandoned_replies().await)
    }

    /// Creates a conversation nobody owns (epoch 0: nobody has claimed it yet).
    pub async fn create_conversation(
        &self,
        id: &str,
        token_hash: &str,
        provider: &str,
        created_at: i64,
    ) -> Result<(), StoreError> {
        self.create_owned_conversation(super::NewConversation {
            id,
            token_hash,
            provider,
            created_at,
            owner: None,
        })
        .await
    }

    /// Takes ownership of a conversation: adds one to its `owner_epoch` and returns the
    /// new epoch. From then on writes carrying an older epoch are refused. Load the
    /// history after this, not before. [`StoreError::NotFound`] if there is no such row.
    pub async fn claim(&self, id: &str) -> Result<Epoch, StoreError> {
        dispatch!(self, b => b.claim(id).await)
    }

    /// The conversation and its whole history, or `None` if there is no such conversation.
    pub async fn load_conversation(
        &self,
        id: &str,
    ) -> Result<Option<StoredConversation>, StoreError> {
        dispatch!(self, b => b.load_conversation(id).await)
    }

    /// Stores a new message at position `seq` of its conversation. Fenced by `epoch`. A
    /// user message also moves the conversation up its owner's list and, if it has no
    /// title yet, gives it one (`touch_conversation`).
    pub async fn insert_message(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        seq: usize,
        m: &Message,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.insert_message(conversation_id, epoch, seq, m).await)?;
        if m.role == crate::chat::Role::User {
            self.user_message_stored(conversation_id, epoch, m).await?;
        }
        Ok(())
    }

    /// Stores a new message right after message `after_id` (a queued message's reply),
    /// moving the later messages one place down, in one transaction. Fenced by `epoch`.
    pub async fn insert_message_after(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        after_id: &str,
        m: &Message,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.insert_message_after(conversation_id, epoch, after_id, m).await)
    }

    /// Puts message `m` in the place of message `old_id` (a regenerated reply): the same
    /// position, a new id and contents. Fenced by `epoch`.
    pub async fn replace_message(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        old_id: &str,
        m: &Message,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.replace_message(conversation_id, epoch, old_id, m).await)
    }

    /// Gives message `id` the text `text` and deletes every later message of its
    /// conversation (an edit), in one transaction. Fenced by `epoch`.
    pub async fn edit_message(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        id: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.edit_message(conversation_id, epoch, id, text).await)
    }

    /// Stores a message's current text and status (its end, or marking it failed).
    /// Fenced by `epoch`.
    pub async fn update_message(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        m: &Message,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.update_message(conversation_id, epoch, m).await)
    }

    /// Stores what a reply that is still streaming gained since its last checkpoint:
    /// `part`, which starts at byte `offset` of its text (the text's length at the last
    /// checkpoint), so each checkpoint writes only what is new. Loading reassembles the
    /// text; the final `update_message` stores it whole. Guarded by the status, so a late
    /// checkpoint can never change the reply's final state. Fenced by `epoch`.
    pub async fn checkpoint_reply(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        id: &str,
        offset: usize,
        part: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.checkpoint_reply(conversation_id, epoch, id, offset, part).await)
    }

    /// Records that event numbers below `floor` may be in use (a reservation). Never
    /// lowers the floor, so a late write cannot undo a newer reservation. Fenced by `epoch`.
    pub async fn reserve_event_ids(
        &self,
        id: &str,
        epoch: Epoch,
        floor: u64,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.reserve_event_ids(id, epoch, floor).await)
    }

    /// Sets the floor to exactly `floor`: written by an actor as it stops gracefully, when
    /// it knows the last number it used. Fenced by `epoch`.
    pub async fn set_event_id_floor(
        &self,
        id: &str,
        epoch: Epoch,
        floor: u64,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.set_event_id_floor(id, epoch, floor).await)
    }

    /// Stores `events` (new frames, rising ids) and forgets this conversation's events
    /// numbered below `keep_from`, in one transaction. Fenced by `epoch`.
    pub async fn save_events(
        &self,
        conversation_id: &str,
        epoch: Epoch,
        events: &[(u64, &[u8])],
        keep_from: u64,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.save_events(conversation_id, epoch, events, keep_from).await)
    }

    /// The last `limit` stored events of a conversation, oldest first.
    pub async fn load_events(
        &self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        dispatch!(self, b => b.load_events(conversation_id, limit).await)
    }
}

/// After a fenced write changed no row: `Fenced` if the conversation's epoch is no longer
/// `epoch`, `NotFound` if it is gone, `Ok` if the epoch holds (the guard of the write
/// itself, such as a checkpoint's status, said no). Epochs only grow, so a stale epoch seen
/// now was stale when the write ran too, and a current one was current then.
/// One checkpointed part of a streaming reply's text (table `reply_parts`).
pub(super) struct Part {
    pub message_id: String,
    pub offset: usize,
    pub text: String,
}

/// Appends to each message, in offset order (`parts` is sorted by message, then offset),
/// every part that continues its text: one whose offset is the text's length so far. A
/// part already in the text (the final write stored it whole) or after a gap is skipped.
pub(super) fn fold_parts(messages: &mut [Message], parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    let index: std::collections::HashMap<String, usize> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.clone(), i))
        .collect();
    for part in parts {
        if let Some(&i) = index.get(&part.message_id) {
            let text = &mut messages[i].text;
            if part.offset == text.len() {
                text.push_str(&part.text);
            }
        }
    }
}

pub(super) fn fence_verdict(
    conversation_id: &str,
    epoch: Epoch,
    current: Option<i64>,
) -> Result<(), StoreError> {
    match current {
        None => Err(StoreError::NotFound(conversation_id.to_string())),
        Some(e) if e == epoch.0 => Ok(()),
        Some(_) => Err(StoreError::Fenced {
            conversation: conversation_id.to_string(),
            epoch: epoch.0,
        }),
    }
}
