//! chatwire: a chatbot streaming backend that shows the three ways systems talk in real
//! time — webhooks in from NLP providers, Server-Sent Events out to the browser, and a
//! WebSocket for typing and interrupting — coordinated by one actor per conversation.
//!
//! See ARCHITECTURE.md for the map of the code and the invariants that hold.

pub mod app;
pub mod chat;
pub mod config;
pub mod conversation;
pub mod ids;
pub(crate) mod metrics;
pub mod providers;
pub(crate) mod signature;
pub(crate) mod simulator;
pub mod storage;
pub mod telemetry;
pub mod web;

pub use app::Server;
pub use config::Config;
