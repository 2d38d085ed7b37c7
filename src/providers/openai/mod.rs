//! The OpenAI kinds, through async-openai: `openai` (streaming chat completions against
//! any OpenAI-compatible server, `chat.rs`) and `openai-background` (the Responses API in
//! background mode, results announced by webhook, `background.rs`).
//!
//! async-openai retries 429, 5xx and connection errors by itself (up to three times,
//! honouring `Retry-After` without a cap). We switch that off by giving the client a
//! plain `ReqwestService` with no retry layer: the streaming kind retries on its own terms
//! (only before the first delta, briefly, inside the reply's stream so an interrupt stops
//! it at once), and the background kind must never repeat a create (it would start a
//! second, billed response).

mod background;
mod chat;
mod errors;

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::middleware::ReqwestService;

pub use background::{BackgroundSettings, OpenAiBackground};
pub use chat::{ChatSettings, OpenAiChat};

/// The default `base_url`.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// A client for `base_url` without automatic retries. `timeout` bounds whole requests
/// (for calls that answer at once; streaming calls are bounded by the reply's deadlines).
pub fn client(
    base_url: &str,
    api_key: Option<&str>,
    timeout: Option<Duration>,
) -> Result<Client<OpenAIConfig>, String> {
    let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    let http = builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let config = OpenAIConfig::new()
        .with_api_base(base_url.trim_end_matches('/'))
        .with_api_key(api_key.unwrap_or_default());
    Ok(Client::build(http.clone(), config).with_http_service(ReqwestService::new(http)))
}
