//! Kind `openai` against a fake that answers as real OpenAI-format servers do rather than
//! as the schema says: lenient chunks (role-only, usage-only, unknown and missing fields),
//! `finish_reason: "length"`, 429/503 with `Retry-After` (seconds and HTTP-date; too long
//! is not waited for), and the errors a person must act on (401, 404, context overflow),
//! each told without secrets.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::fakes::{last_content, spawn_app_with_fake};
use crate::helpers::*;

const KEY: &str = "sk-secret-key-123";

#[derive(Default)]
struct Fake {
    /// When each request came, and its last user message.
    requests: Mutex<Vec<(Instant, String)>>,
    /// Every request body.
    bodies: Mutex<Vec<Value>>,
}

impl Fake {
    fn times(&self, text: &str) -> Vec<Instant> {
        let r = self.requests.lock().unwrap();
        r.iter()
            .filter(|(_, t)| t == text)
            .map(|(i, _)| *i)
            .collect()
    }
}

fn sse(lines: &[&str]) -> Response {
    let body: String = lines.iter().map(|l| format!("data: {l}\n\n")).collect();
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from(body))
        .unwrap()
}

fn hello() -> Response {
    sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"Hello"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ])
}

fn error(status: u16, body: Value, retry_after: Option<String>) -> Response {
    let mut resp = (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    if let Some(v) = retry_after {
        resp.headers_mut().insert("retry-after", v.parse().unwrap());
    }
    resp
}

fn http_date_in(secs: u64) -> String {
    httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(secs))
}

/// Answers by the last user message; `…-once` cases fail only their first request.
async fn completions(State(fake): State<Arc<Fake>>, Json(body): Json<Value>) -> Response {
    let last = last_content(&body);
    fake.bodies.lock().unwrap().push(body.clone());
    let first = {
        let mut r = fake.requests.lock().unwrap();
        r.push((Instant::now(), last.clone()));
        r.iter().filter(|(_, t)| *t == last).count() == 1
    };
    let limited = json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}});
    match last.as_str() {
        // As llama.cpp and OpenAI send them: a role-only first chunk, unknown fields, a
        // chunk without `index`, `delta: null`, a usage-only chunk with empty `choices`.
        "lenient" => sse(&[
            r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"b1","choices":[{"index":0,"delta":{"role":"assistant","content":null},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":"Hi","reasoning_content":null}}],"timings":{"predicted_n":1}}"#,
            r#"{"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":null,"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
            "[DONE]",
        ]),
        "length" => sse(&[
            r#"{"choices":[{"index":0,"delta":{"content":"Once upon"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":" a"},"finish_reason":"length"}]}"#,
            "[DONE]",
        ]),
        "429-once" if first => error(429, limited, Some("1".into())),
        "503-date-once" if first => error(
            503,
            json!({"error": {"message": "overloaded"}}),
            Some(http_date_in(2)),
        ),
        "429-long" => error(429, limited, Some("120".into())),
        "wrong-key" => error(
            401,
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}."), "type": "invalid_request_error", "code": "invalid_api_key"}}),
            None,
        ),
        "unknown-model" => error(
            404,
            json!({"error": {"message": "The model `nope` does not exist", "type": "invalid_request_error", "code": "model_not_found"}}),
            None,
        ),
        "too-long" => error(
            400,
            json!({"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 4000, "n_ctx": 2048}}),
            None,
        ),
        _ => hello(),
    }
}

async fn setup() -> (TestApp, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let router = axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(fake.clone());
    let app = spawn_app_with_fake(router, |addr| {
        vec![
            chatwire::config::ProviderConfig {
                name: "gpt".into(),
                kind: "openai".into(),
                // User-info and a query string that must never show in an error.
                base_url: Some(format!("http://user:hunter2@{addr}/v1?token=qs-secret")),
                api_key: Some(KEY.into()),
                model: Some("nope".into()),
                ..Default::default()
            },
            chatwire::config::ProviderConfig {
                name: "limited".into(),
                kind: "openai".into(),
                base_url: Some(format!("http://{addr}/v1")),
                model: Some("o-mini".into()),
                system_prompt: Some("Be brief.".into()),
                max_tokens: Some(77),
                max_tokens_field: Some("max_completion_tokens".into()),
                temperature: Some(0.5),
                max_history_messages: Some(3),
                max_history_chars: Some(1000),
                ..Default::default()
            },
        ]
    })
    .await;
    (app, fake)
}

/// Posts `text` in a new conversation and returns the reply's end event.
async fn reply_to(app: &TestApp, text: &str) -> SseItem {
    let (conv, mut sse) = app.open_with("gpt").await;
    app.post_ok(&conv, text).await;
    sse.reply_end().await
}

#[tokio::test]
async fn chunks_as_real_servers_send_them_are_read() {
    let (app, _fake) = setup().await;
    let end = reply_to(&app, "lenient").await;
    assert_eq!(end.kind(), "reply.completed", "{end:?}");
    assert_eq!(end.field("text"), "Hi there");
}

#[tokio::test]
async fn a_reply_cut_by_the_token_limit_keeps_its_text_and_says_so() {
    let (app, _fake) = setup().await;
    let (conv, mut sse) = app.open_with("gpt").await;
    let reply = app.post_ok(&conv, "length").await;
    let events = sse.events_until(is_reply_end).await;
    let end = events.last().unwrap();
    assert_eq!(end.kind(), "reply.failed");
    assert_eq!(end.field("text"), "Once upon a");
    assert_eq!(joined_deltas(&events, &reply), "Once upon a");
    assert!(end.field("error").contains("token limit"), "{end:?}");
    let stored = app.last_message(&conv).await;
    assert_eq!(stored["status"], "failed");
    assert_eq!(stored["text"], "Once upon a");
}

#[tokio::test]
async fn retry_after_is_waited_for_in_seconds_and_as_a_date() {
    let (app, fake) = setup().await;
    for (text, at_least) in [("429-once", 1000), ("503-date-once", 1000)] {
        let end = reply_to(&app, text).await;
        assert_eq!(end.kind(), "reply.completed", "{text}: {end:?}");
        let times = fake.times(text);
        assert_eq!(times.len(), 2, "{text}: one retry");
        let waited = times[1] - times[0];
        // An HTTP-date has whole seconds: "in 2 s" may be 1.x s away.
        assert!(
            waited >= Duration::from_millis(at_least),
            "{text}: retried after {waited:?}"
        );
    }
}

#[tokio::test]
async fn a_retry_after_past_the_cap_fails_at_once() {
    let (app, fake) = setup().await;
    let started = Instant::now();
    let end = reply_to(&app, "429-long").await;
    assert_eq!(end.kind(), "reply.failed");
    assert!(end.field("error").contains("429"), "{end:?}");
    assert_eq!(fake.times("429-long").len(), 1, "not retried");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn errors_a_person_can_act_on_without_secrets() {
    let (app, fake) = setup().await;
    let cases = [
        ("wrong-key", "rejected the API key"),
        ("unknown-model", "does not know the model `nope`"),
        ("too-long", "too long for the model's context window"),
    ];
    for (text, says) in cases {
        let end = reply_to(&app, text).await;
        assert_eq!(end.kind(), "reply.failed", "{text}");
        let error = end.field("error");
        assert!(error.contains(says), "{text}: {error}");
        assert!(
            error.contains("`gpt`"),
            "{text} names the provider: {error}"
        );
        for secret in [
            KEY,
            "hunter2",
            "qs-secret",
            "exceed_context_size_error",
            "n_ctx",
        ] {
            assert!(!error.contains(secret), "{text}: {error} shows {secret}");
        }
        assert_eq!(fake.times(text).len(), 1, "{text}: not retried");
    }
}

#[tokio::test]
async fn generation_settings_are_sent_and_history_is_trimmed_from_the_oldest() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("limited").await;
    for text in ["one", "two", "three"] {
        app.post_ok(&conv, text).await;
        assert_eq!(sse.reply_end().await.kind(), "reply.completed");
    }
    let body = fake.bodies.lock().unwrap().last().unwrap().clone();
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_completion_tokens"], 77);
    assert!(body.get("max_tokens").is_none(), "{body}");
    assert_eq!(body["temperature"], 0.5);
    let sent: Vec<(&str, &str)> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    // Three latest turns: "two", its reply, "three" — after the system prompt.
    assert_eq!(
        sent,
        [
            ("system", "Be brief."),
            ("user", "two"),
            ("assistant", "Hello"),
            ("user", "three")
        ]
    );
    // The default provider sends neither limit field, nor a temperature.
    reply_to(&app, "plain").await;
    let body = fake.bodies.lock().unwrap().last().unwrap().clone();
    for key in ["max_tokens", "max_completion_tokens", "temperature"] {
        assert!(body.get(key).is_none(), "{key} in {body}");
    }
}
