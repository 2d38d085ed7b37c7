//! The OpenAI kinds: `openai` (streaming chat completions against any OpenAI-compatible
//! server, `chat.rs`) and `openai-background` (the Responses API in background mode,
//! results announced by webhook, `background.rs`).
//!
//! Requests go through our own path (`upstream.rs`, plain reqwest) and answers are read
//! leniently into the few fields we use (`wire.rs`, `sse.rs`); async-openai supplies only
//! the Responses API's request types. That way a 429's `Retry-After` is seen, servers
//! other than OpenAI that omit or add fields work, and nothing retries behind our back:
//! the streaming kind retries on its own terms (only before the first delta, inside the
//! reply's stream so an interrupt stops it at once), and the background kind never
//! repeats a create (it would start a second, billed response).

mod background;
mod chat;
mod errors;
mod sse;
mod upstream;
mod wire;

use std::time::Duration;

pub use background::{BackgroundSettings, OpenAiBackground};
pub use chat::{ChatSettings, OpenAiChat};

/// The default `base_url`.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// An HTTP client for a provider. `timeout` bounds whole requests (for calls that answer
/// at once; streaming calls are bounded by the reply's deadlines).
pub fn http_client(timeout: Option<Duration>) -> Result<reqwest::Client, String> {
    // Never follow a redirect: a 307 would re-post the whole history (and the key) to
    // wherever it points. A 3xx is an error like any other unexpected status.
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}
