//! Replies that would run away, and providers that would leak: `--max-reply-bytes` and
//! `--max-reply-secs` end a reply with `reply.failed`, its text kept; a provider that
//! answers with an error body full of secrets, or with a redirect, ends the reply with a
//! `reply.failed` (and a log, read from the real binary) that shows none of them, and the
//! redirect is not followed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::fakes::serve_fake;
use crate::helpers::*;
use crate::process::{RealServer, TempDb, one_real_server_at_a_time};

#[tokio::test]
async fn a_reply_past_its_byte_cap_fails_with_its_text_kept() {
    let app = spawn_app_with(|c| c.limits.max_reply_bytes = 50).await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    let reply = app.post_ok(&conv, "/count 1000").await;
    let events = sse.events_until(is_reply_end).await;
    let end = events.last().unwrap();
    assert_eq!(end.kind(), "reply.failed", "{end:?}");
    assert!(end.field("error").contains("50 bytes"), "{end:?}");
    let text = end.field("text").to_string();
    assert_eq!(text, count_text(1000)[..50], "cut at the cap exactly");
    assert_eq!(
        joined_deltas(&events, &reply),
        text,
        "the text published is kept"
    );
    let stored = app.last_message(&conv).await;
    assert_eq!(
        (stored["status"].as_str(), stored["text"].as_str()),
        (Some("failed"), Some(text.as_str()))
    );
    // The conversation goes on.
    app.post_ok(&conv, "/count 3").await;
    let next = sse.events_until(is_reply_end).await;
    assert_eq!(next.last().unwrap().kind(), "reply.completed");
}

#[tokio::test]
async fn a_reply_past_its_time_cap_fails_with_its_text_kept() {
    let app = spawn_app_with(|c| {
        c.offline_delay = Duration::from_millis(20);
        c.limits.max_reply_duration = Duration::from_secs(1);
    })
    .await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    let reply = app.post_ok(&conv, "/count 100000").await;
    let events = sse.events_until(is_reply_end).await;
    let end = events.last().unwrap();
    assert_eq!(end.kind(), "reply.failed", "{end:?}");
    assert!(end.field("error").contains("1 s"), "{end:?}");
    let text = end.field("text");
    assert!(!text.is_empty() && count_text(100000).starts_with(text));
    assert_eq!(joined_deltas(&events, &reply), text);
    assert_eq!(app.last_message(&conv).await["text"], text);
}

const LEAKS: [&str; 5] = [
    "sk-KEY-NEVER-SHOWN",
    "PASSWORD-NEVER-SHOWN",
    "QUERY-NEVER-SHOWN",
    "UPSTREAM-BODY-NEVER-SHOWN",
    "NLP-BODY-NEVER-SHOWN",
];

#[derive(Default)]
struct Leaky {
    /// Requests that reached the redirect's target (must stay 0).
    redirected: AtomicUsize,
}

/// An OpenAI-format fake whose errors echo secrets, one that redirects, and an NLP
/// service whose submit fails the same way.
fn leaky_router(fake: Arc<Leaky>) -> axum::Router {
    async fn completions(Json(body): Json<serde_json::Value>) -> Response {
        if crate::fakes::last_content(&body) == "redirect" {
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", "/elsewhere")],
                "",
            )
                .into_response();
        }
        let message = format!("{} {} {}", LEAKS[3], LEAKS[0], LEAKS[2]);
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": message, "type": "invalid_request_error", "code": null}})),
        )
            .into_response()
    }
    async fn elsewhere(State(fake): State<Arc<Leaky>>) -> &'static str {
        fake.redirected.fetch_add(1, Ordering::SeqCst);
        "data: {}\n\n"
    }
    async fn jobs() -> Response {
        (StatusCode::BAD_REQUEST, LEAKS[4]).into_response()
    }
    axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/elsewhere", post(elsewhere).get(elsewhere))
        .route("/jobs", post(jobs))
        .with_state(fake)
}

/// Posts `text` and returns the `reply.failed` it ends with.
async fn failed_reply(app: &TestApp, provider: &str, text: &str) -> SseItem {
    let conv = app.create_with(provider).await;
    let mut sse = app.sse(&conv, None).await;
    app.post_ok(&conv, text).await;
    let end = sse.reply_end().await;
    assert_eq!(end.kind(), "reply.failed", "{provider}/{text}: {end:?}");
    end
}

#[tokio::test]
async fn provider_failures_show_no_secret_and_redirects_are_not_followed() {
    let _one = one_real_server_at_a_time().await;
    let fake = Arc::new(Leaky::default());
    let addr = serve_fake(leaky_router(fake.clone())).await;
    let providers = format!(
        r#"
[[providers]]
name = "offline"
kind = "offline"
default = true

[[providers]]
name = "gpt"
kind = "openai"
base_url = "http://user:{pw}@{addr}/v1?api-key={query}"
api_key = "{key}"
model = "m"

[[providers]]
name = "nlp"
kind = "webhook"
url = "http://user:{pw}@{addr}/jobs?token={query}"
webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"#,
        key = LEAKS[0],
        pw = LEAKS[1],
        query = LEAKS[2],
    );
    let db = TempDb::new("leaks");
    let config = TempDb::new("leaks-config").path.with_extension("toml");
    std::fs::write(&config, providers).unwrap();
    let mut server = RealServer::start(
        &db.url(),
        &["--config", config.to_str().unwrap()],
        &[("RUST_LOG", "info")],
    )
    .await;
    let app = server.app();
    let refused = failed_reply(&app, "gpt", "hello").await;
    assert!(refused.field("error").contains("HTTP 400"), "{refused:?}");
    let redirected = failed_reply(&app, "gpt", "redirect").await;
    assert!(redirected.field("error").contains("307"), "{redirected:?}");
    assert_eq!(
        fake.redirected.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    let nlp = failed_reply(&app, "nlp", "hello").await;
    assert!(nlp.field("error").contains("400"), "{nlp:?}");
    assert_eq!(app.get("/healthz").await.status(), 200);
    let (status, _) = server.terminate().await;
    let _ = std::fs::remove_file(&config);
    assert!(status.success());
    let log = server.log();
    for end in [&refused, &redirected, &nlp] {
        let data = end.data.as_ref().map(|d| d.to_string()).unwrap_or_default();
        for leak in LEAKS {
            assert!(!data.contains(leak), "{leak} in reply.failed: {data}");
        }
    }
    for leak in LEAKS {
        assert!(!log.contains(leak), "{leak} in the log:\n{log}");
    }
}
