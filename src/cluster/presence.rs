//! Presence (typing, bot state, interrupted) for every participant on every node: the owner
//! publishes each presence frame on the conversation's presence channel, and each node's
//! relay hands it to its WebSocket sessions. Ephemeral: not numbered, not logged, and a
//! dropped one is repeated by the next change. One message is not presence: [`DELETED`]
//! tells every node's feed that the conversation is gone.

use super::{ClusterError, Redis, keys};

/// Sent on the presence channel when the conversation was deleted: every node's feed of
/// it closes (its streams and sockets end) instead of handing it to a session.
pub const DELETED: &[u8] = br#"{"type":"conversation.deleted"}"#;

/// Publishes one presence frame (its JSON text) to every node's relay.
pub async fn publish(redis: &Redis, conversation: &str, frame: &[u8]) -> Result<(), ClusterError> {
    let _: i64 = redis::cmd("PUBLISH")
        .arg(keys::presence(conversation))
        .arg(frame)
        .query_async(&mut redis.conn())
        .await?;
    Ok(())
}
