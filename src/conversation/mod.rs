//! Conversations: one actor per active conversation, the handle to talk to it, and the
//! registry that finds or starts actors.
//!
//! Only the actor changes a conversation and publishes its events. Everything else — HTTP
//! routes, SSE streams, WebSocket sessions, webhook routes — holds a [`ConversationHandle`]
//! and sends it commands.

mod actor;
pub mod events;
mod handle;
pub mod presence;
mod registry;

pub use handle::{
    ActorError, ConversationHandle, Posted, Presence, Snapshot, Subscription, WatchSlot,
};
pub use presence::{BotState, PresenceFrame};
pub use registry::{CreateError, Registry};
