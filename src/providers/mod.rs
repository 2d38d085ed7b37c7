//! NLP providers: where replies come from. Only this module talks to NLP services.
//!
//! Every provider kind implements [`Provider`]: given the conversation so far it starts a
//! [`Reply`], a stream of [`ReplyEvent`]s that the conversation actor polls. Two shapes fit
//! behind that one seam:
//! - streaming providers (offline, `openai`) yield deltas as the upstream produces them;
//!   dropping the stream aborts the HTTP request;
//! - callback providers (`openai-background`, `webhook`, the simulated service) submit a
//!   job and receive its results later through a webhook route. Their `Reply` carries a
//!   sender for [`Callback`]s, which the actor feeds with the callbacks of its current
//!   reply; dropping the stream makes the provider's cancel call (see `job.rs`).
//!
//! Every reply is wrapped in deadlines (`deadlines.rs`) by the registry (`registry.rs`,
//! which builds each kind in `kinds.rs` from a `ProviderContext`, `context.rs`).

pub(crate) mod callback;
mod context;
pub(crate) mod deadlines;
mod generation;
mod job;
mod jobs;
mod kinds;
pub(crate) mod offline;
pub(crate) mod offline_script;
mod openai;
pub(crate) mod protocol;
mod redact;
mod registry;
mod retry;
mod retry_after;
mod settings;
mod webhook;

use futures_util::stream::BoxStream;
use tokio::sync::mpsc;

use crate::chat::Role;

pub use callback::{Callback, CallbackAck, CallbackEndpoint, CallbackRoute};
pub use context::{ExtraProviders, ProviderContext, SimulatorEndpoint};
pub use deadlines::Deadlines;
pub use jobs::{JobOwner, Jobs, Route, RouteError};
pub use registry::Providers;
pub use webhook::client::{
    PostError, http_client as webhook_http_client, post_signed, post_signed_retrying,
};

/// What the web layer and the page show about a provider.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderInfo {
    pub name: String,
    pub kind: String,
    /// A human label, e.g. "Offline demo bot".
    #[serde(skip)]
    pub label: String,
    pub default: bool,
}

/// One turn of the history sent to a provider.
#[derive(Debug, Clone)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

/// What a provider needs to start a reply.
#[derive(Debug, Clone)]
pub struct ReplyRequest {
    pub conversation_id: String,
    pub reply_id: String,
    /// The conversation so far, oldest first; the last turn is the user's new message.
    pub history: Vec<Turn>,
}

/// One step of a reply, as a provider reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyEvent {
    /// The next piece of text.
    Delta(String),
    /// The reply ended properly.
    Completed,
    /// The reply cannot go on; the text so far is kept.
    Failed(String),
}

/// A reply in progress: poll `events` until `Completed` or `Failed`. A stream that ends
/// without either is a failure. Dropping it cancels the work upstream.
pub struct Reply {
    pub events: BoxStream<'static, ReplyEvent>,
    /// For callback providers: where the actor hands the callbacks of this reply.
    pub callbacks: Option<mpsc::Sender<Callback>>,
}

impl Reply {
    /// A reply of a streaming provider.
    pub fn new(events: BoxStream<'static, ReplyEvent>) -> Self {
        Reply {
            events,
            callbacks: None,
        }
    }

    /// A reply of a callback provider, which receives its callbacks through `callbacks`.
    pub fn with_callbacks(
        events: BoxStream<'static, ReplyEvent>,
        callbacks: mpsc::Sender<Callback>,
    ) -> Self {
        Reply {
            events,
            callbacks: Some(callbacks),
        }
    }
}

/// A kind of NLP provider.
pub trait Provider: Send + Sync + 'static {
    fn info(&self) -> &ProviderInfo;

    /// Starts a reply. Called by the conversation actor: it must not block; the work
    /// happens when the stream is polled (or on tasks the stream owns).
    fn start(&self, request: ReplyRequest) -> Reply;

    /// For callback providers: the webhook route their callbacks arrive at, and the secret
    /// that signs them.
    fn callback_endpoint(&self) -> Option<&CallbackEndpoint> {
        None
    }
}
