//! Plumbing for the fake NLP services of the provider tests: each fake is a real axum
//! server on 127.0.0.1 (a free port) written in its test file; these helpers serve it and
//! start chatwire with provider entries that point at it.

use std::net::SocketAddr;

use chatwire::config::ProviderConfig;

use crate::helpers::{TestApp, spawn_app_with};

/// Serves `router` on 127.0.0.1 (a free port) for the rest of the test: the fake
/// external services (NLP providers) of the provider tests.
pub async fn serve_fake(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// Serves `router` as a fake NLP service, then starts the app with the entries that
/// `entries` makes (given the fake's address) added to its providers.
pub async fn spawn_app_with_fake(
    router: axum::Router,
    entries: impl FnOnce(SocketAddr) -> Vec<ProviderConfig>,
) -> TestApp {
    let addr = serve_fake(router).await;
    let entries = entries(addr);
    spawn_app_with(|c| c.providers.extend(entries)).await
}

/// A `webhook`-kind provider entry named `nlp` whose jobs go to the fake at `addr`
/// (`POST /jobs`), signed with `secret`.
pub fn nlp_entry(addr: SocketAddr, secret: &str) -> ProviderConfig {
    ProviderConfig {
        name: "nlp".into(),
        kind: "webhook".into(),
        url: Some(format!("http://{addr}/jobs")),
        webhook_secret: Some(secret.into()),
        ..Default::default()
    }
}

/// The `content` of the last message of an OpenAI-format request body (the user's new
/// message): what the fakes decide their answer by.
pub fn last_content(body: &serde_json::Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string()
}
