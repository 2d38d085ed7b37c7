//! Kind `openai` against a fake OpenAI-compatible server (axum on 127.0.0.1): streamed
//! chunks become SSE deltas, the history is sent, an interrupt closes the upstream
//! request, and every broken upstream ends in `reply.failed` with the partial text kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::fakes::{last_content, spawn_app_with_fake};
use crate::helpers::*;

#[derive(Default)]
struct Fake {
    /// Every request body received.
    requests: Mutex<Vec<Value>>,
    /// Set when the body of a `hang` response is dropped: the client closed the request.
    hang_closed: AtomicBool,
}

impl Fake {
    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

fn chunk(content: Option<&str>, finish: Option<&str>) -> Bytes {
    let mut delta = json!({});
    if let Some(c) = content {
        delta = json!({ "content": c });
    }
    let v = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "fake",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]
    });
    Bytes::from(format!("data: {v}\n\n"))
}

fn sse(parts: Vec<Bytes>) -> Response {
    let body = futures_util::stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>));
    sse_body(Body::from_stream(body))
}

fn sse_body(body: Body) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}

/// Sets the flag when dropped (with the response body that owns it).
struct DropFlag(Arc<Fake>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.hang_closed.store(true, Ordering::SeqCst);
    }
}

/// Behaves according to the last user message: `hang`, `truncate`, `error-chunk`,
/// `abort`, `429`, `500`, `500-once`; anything else is answered "Hello world".
async fn completions(State(fake): State<Arc<Fake>>, Json(body): Json<Value>) -> Response {
    let n = {
        let mut r = fake.requests.lock().unwrap();
        r.push(body.clone());
        r.len()
    };
    let last = last_content(&body);
    let api_error = |status: StatusCode, message: &str| {
        (
            status,
            Json(json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}})),
        )
            .into_response()
    };
    match last.as_str() {
        "429" => api_error(StatusCode::TOO_MANY_REQUESTS, "slow down"),
        "500" => api_error(StatusCode::INTERNAL_SERVER_ERROR, "boom"),
        "500-once" if n == 1 => api_error(StatusCode::INTERNAL_SERVER_ERROR, "boom"),
        "truncate" => sse(vec![chunk(Some("Hel"), None), chunk(Some("lo"), None)]),
        "error-chunk" => sse(vec![
            chunk(Some("Partial"), None),
            Bytes::from(
                "data: {\"error\":{\"message\":\"the model overloaded\",\"type\":\"server_error\"}}\n\n",
            ),
        ]),
        "abort" => {
            // The chunk goes out, then the connection is reset mid-stream.
            let parts = futures_util::stream::iter(vec![Ok(chunk(Some("Cut"), None))]).chain(
                futures_util::stream::once(async {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    Err(std::io::Error::other("connection reset"))
                }),
            );
            sse_body(Body::from_stream(parts))
        }
        "hang" => {
            let guard = DropFlag(fake.clone());
            let head = futures_util::stream::iter(vec![
                Ok::<_, std::io::Error>(chunk(Some("Hel"), None)),
                Ok(chunk(Some("lo"), None)),
            ]);
            let tail = futures_util::stream::unfold(guard, |g| async move {
                std::future::pending::<()>().await;
                Some((Ok(Bytes::new()), g))
            });
            sse_body(Body::from_stream(head.chain(tail)))
        }
        _ => sse(vec![
            chunk(Some("Hello"), None),
            chunk(Some(" world"), None),
            chunk(None, Some("stop")),
            Bytes::from("data: [DONE]\n\n"),
        ]),
    }
}

async fn setup() -> (TestApp, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let router = axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(fake.clone());
    let app = spawn_app_with_fake(router, |addr| {
        vec![chatwire::config::ProviderConfig {
            name: "gpt".into(),
            kind: "openai".into(),
            base_url: Some(format!("http://{addr}/v1")),
            api_key: Some("sk-test".into()),
            model: Some("fake-model".into()),
            system_prompt: Some("Be brief.".into()),
            ..Default::default()
        }]
    })
    .await;
    (app, fake)
}

#[tokio::test]
async fn streamed_chunks_become_deltas_and_the_history_is_sent() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("gpt").await;

    let reply = app.post_ok(&conv, "first").await;
    let events = sse.events_until(is_reply_end).await;
    assert_eq!(events[1].field("provider"), "gpt");
    let deltas: Vec<_> = events
        .iter()
        .filter(|e| e.kind() == "reply.delta")
        .map(|e| e.field("text"))
        .collect();
    assert_eq!(deltas, ["Hello", " world"]);
    let end = events.last().unwrap();
    assert_eq!(end.kind(), "reply.completed");
    assert_eq!(end.field("text"), "Hello world");
    assert_eq!(joined_deltas(&events, &reply), "Hello world");

    app.post_ok(&conv, "second").await;
    sse.events_until(is_reply_end).await;
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let second = &requests[1];
    assert_eq!(second["model"], "fake-model");
    assert_eq!(second["stream"], true);
    let messages: Vec<(String, String)> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        ("system", "Be brief."),
        ("user", "first"),
        ("assistant", "Hello world"),
        ("user", "second"),
    ];
    assert_eq!(
        messages,
        expect.map(|(r, t)| (r.to_string(), t.to_string())).to_vec()
    );
}

#[tokio::test]
async fn an_interrupt_closes_the_upstream_request() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("gpt").await;
    let reply = app.post_ok(&conv, "hang").await;
    let seen = sse
        .events_until(|e| e.kind() == "reply.delta" && e.field("text") == "lo")
        .await;
    assert_eq!(joined_deltas(&seen, &reply), "Hello");
    assert!(!fake.hang_closed.load(Ordering::SeqCst));

    assert_eq!(app.interrupt(&conv).await.as_deref(), Some(reply.as_str()));
    interrupted_upstream(&app, &conv, &mut sse, &fake).await;
}

#[tokio::test]
async fn an_interrupt_over_the_websocket_closes_the_upstream_request() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("gpt").await;
    let mut ws = app.ws_browser(&conv).await;
    ws.hello().await;
    let reply = app.post_ok(&conv, "hang").await;
    sse.events_until(|e| e.kind() == "reply.delta" && e.field("text") == "lo")
        .await;
    assert!(!fake.hang_closed.load(Ordering::SeqCst));

    ws.send_json(json!({"type": "interrupt"})).await;
    let frames = ws.until(|f| f["type"] == "interrupted").await;
    assert_eq!(frames.last().unwrap()["reply_id"], reply.as_str());
    interrupted_upstream(&app, &conv, &mut sse, &fake).await;
}

/// After an interrupt of the "hang" reply: it ends `reply.interrupted` with the text
/// delivered ("Hello"), the fake sees its request closed, and the history keeps it so.
async fn interrupted_upstream(app: &TestApp, conv: &Conv, sse: &mut SseClient, fake: &Fake) {
    let end = sse.events_until(is_reply_end).await;
    assert_eq!(end.last().unwrap().kind(), "reply.interrupted");
    assert_eq!(end.last().unwrap().field("text"), "Hello");
    eventually("the fake to see its request closed", || {
        fake.hang_closed.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(app.last_message(conv).await["status"], "interrupted");
    assert_eq!(app.last_message(conv).await["text"], "Hello");
}

#[tokio::test]
async fn broken_upstreams_fail_with_the_partial_text_kept() {
    let (app, fake) = setup().await;
    // (message, partial text kept, words in the error, requests made)
    let cases = [
        (
            "truncate",
            "Hello",
            "ended before the reply was finished",
            1,
        ),
        // The error's type, never the upstream message ("the model overloaded").
        (
            "error-chunk",
            "Partial",
            "reported an error (server_error)",
            1,
        ),
        ("abort", "Cut", "broke off", 1),
        ("429", "", "429", 2),
        ("500", "", "500", 2),
    ];
    for (message, text, error, requests) in cases {
        let conv = app.create_with("gpt").await;
        let mut sse = app.sse(&conv, None).await;
        let before = fake.count();
        let reply = app.post_ok(&conv, message).await;
        let events = sse.events_until(is_reply_end).await;
        let end = events.last().unwrap();
        assert_eq!(end.kind(), "reply.failed", "{message}: {end:?}");
        assert_eq!(end.field("text"), text, "{message}");
        assert_eq!(joined_deltas(&events, &reply), text, "{message}");
        assert!(
            end.field("error").contains(error),
            "{message}: error was {:?}",
            end.field("error")
        );
        assert_eq!(
            fake.count() - before,
            requests,
            "{message}: retried only before the first delta"
        );
        let stored = app.last_message(&conv).await;
        assert_eq!(stored["status"], "failed");
        assert_eq!(stored["text"], text);
    }
}

#[tokio::test]
async fn a_failure_before_the_first_delta_is_retried_once() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("gpt").await;
    app.post_ok(&conv, "500-once").await;
    let events = sse.events_until(is_reply_end).await;
    let end = events.last().unwrap();
    assert_eq!(end.kind(), "reply.completed");
    assert_eq!(end.field("text"), "Hello world");
    assert_eq!(fake.count(), 2);
}
