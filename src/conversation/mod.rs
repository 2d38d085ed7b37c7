//! Conversations: one actor per active conversation, the handle to talk to it, the
//! registry that finds or starts actors, and the service the web layer uses.
//!
//! Only the actor changes a conversation and publishes its events. Everything else — HTTP
//! routes, SSE streams, WebSocket sessions, webhook routes — holds a [`ConversationRef`]
//! from [`Conversations`] and sends it commands; behind it is today an actor's handle, and
//! in cluster mode may be the owner on another node.

mod actor;
pub(crate) mod events;
mod feed;
mod handle;
pub(crate) mod presence;
mod registry;
mod remote;
mod service;

pub use events::Frame;
pub use handle::{
    ActorError, Caller, IfBusy, MAX_QUEUED, Posted, Refusal, Snapshot, Subscription, WatchSlot,
};
pub use presence::{BotState, Presence, PresenceFrame};
pub use registry::CreateError;
pub(crate) use registry::Registry;
pub use service::{ConversationRef, Conversations};
