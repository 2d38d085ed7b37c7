//! Kind `openai-background` against a fake Responses API (axum on 127.0.0.1): a message
//! creates one background response; a signed `response.completed` webhook at
//! `/webhooks/openai` makes the server retrieve it and stream its text; an interrupt
//! cancels it upstream; unsigned, wrongly signed, stale, repeated and unknown webhooks
//! are handled as the contract says.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::fakes::spawn_app_with_fake;
use crate::helpers::*;
use crate::signing::*;

const ANSWER: &str = "The answer is 42.";

#[derive(Default)]
struct Fake {
    creates: Mutex<Vec<Value>>,
    retrieves: Mutex<Vec<String>>,
    cancels: Mutex<Vec<String>>,
}

impl Fake {
    fn creates(&self) -> usize {
        self.creates.lock().unwrap().len()
    }
    fn retrieves(&self) -> usize {
        self.retrieves.lock().unwrap().len()
    }
}

fn response(id: &str, status: &str, text: Option<&str>) -> Value {
    let output = match text {
        Some(t) => json!([{
            "type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": t, "annotations": []}]
        }]),
        None => json!([]),
    };
    let error = if status == "failed" {
        json!({"code": "server_error", "message": "the model crashed"})
    } else {
        Value::Null
    };
    json!({
        "id": id, "object": "response", "created_at": 1, "model": "fake-model",
        "status": status, "background": true, "output": output, "error": error,
        // As servers other than OpenAI send it: no `input_tokens_details` and
        // `output_tokens_details`, which a strict reading of the schema requires.
        "usage": {"input_tokens": 5, "output_tokens": 4, "total_tokens": 9},
        "a_field_from_the_future": {"x": 1}
    })
}

fn last_input(body: &Value) -> String {
    body["input"]
        .as_array()
        .and_then(|i| i.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string()
}

/// `slow-create` answers after 1.5 s, `fail-create` with a 500; ids are `resp_1`, `resp_2`…
async fn create(State(fake): State<Arc<Fake>>, Json(body): Json<Value>) -> Response {
    let n = {
        let mut c = fake.creates.lock().unwrap();
        c.push(body.clone());
        c.len()
    };
    let id = format!("resp_{n}");
    match last_input(&body).as_str() {
        "fail-create" => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": {"message": "upstream exploded", "type": "server_error"}})),
            )
                .into_response();
        }
        "slow-create" => tokio::time::sleep(Duration::from_millis(1500)).await,
        _ => {}
    }
    Json(response(&id, "queued", None)).into_response()
}

/// Every response is completed with `ANSWER`, except those of a `fails` message.
async fn retrieve(State(fake): State<Arc<Fake>>, Path(id): Path<String>) -> Json<Value> {
    fake.retrieves.lock().unwrap().push(id.clone());
    let n: usize = id.trim_start_matches("resp_").parse().unwrap_or(0);
    let failed = fake
        .creates
        .lock()
        .unwrap()
        .get(n.wrapping_sub(1))
        .is_some_and(|b| last_input(b) == "fails");
    if failed {
        Json(response(&id, "failed", None))
    } else {
        Json(response(&id, "completed", Some(ANSWER)))
    }
}

async fn cancel(State(fake): State<Arc<Fake>>, Path(id): Path<String>) -> Json<Value> {
    fake.cancels.lock().unwrap().push(id.clone());
    Json(response(&id, "cancelled", None))
}

async fn setup() -> (TestApp, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let router = axum::Router::new()
        .route("/v1/responses", post(create))
        .route("/v1/responses/{id}", get(retrieve))
        .route("/v1/responses/{id}/cancel", post(cancel))
        .with_state(fake.clone());
    let app = spawn_app_with_fake(router, |addr| {
        // Two entries of one OpenAI project share its webhook secret.
        ["bg", "bg2"]
            .map(|name| chatwire::config::ProviderConfig {
                name: name.into(),
                kind: "openai-background".into(),
                base_url: Some(format!("http://{addr}/v1")),
                api_key: Some("sk-test".into()),
                model: Some("fake-model".into()),
                webhook_secret: Some(SECRET.into()),
                ..Default::default()
            })
            .into()
    })
    .await;
    (app, fake)
}

fn event(kind: &str, response_id: &str) -> Value {
    json!({
        "id": format!("evt_{}", rand_id()), "object": "event", "created_at": now(),
        "type": kind, "data": {"id": response_id}
    })
}

fn rand_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}_{}", now(), N.fetch_add(1, Ordering::Relaxed))
}

impl TestApp {
    async fn openai_webhook(&self, d: &Delivery) -> (u16, Value) {
        d.send(&self.http, &self.url("/webhooks/openai")).await
    }
}

/// Posts `text` and waits until the fake has seen its create; returns (reply id, response id).
async fn post_and_wait_create(
    app: &TestApp,
    fake: &Fake,
    conv: &Conv,
    text: &str,
) -> (String, String) {
    let before = fake.creates();
    let reply = app.post_ok(conv, text).await;
    eventually("the create call", || fake.creates() > before).await;
    (reply, format!("resp_{}", before + 1))
}

#[tokio::test]
async fn a_signed_webhook_brings_the_reply_as_deltas() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("bg").await;
    let (reply, resp) = post_and_wait_create(&app, &fake, &conv, "What is the answer?").await;

    let body = fake.creates.lock().unwrap()[0].clone();
    assert_eq!(body["background"], true);
    assert_eq!(body["store"], true);
    assert_eq!(body["model"], "fake-model");
    assert_eq!(last_input(&body), "What is the answer?");
    assert_eq!(body["metadata"]["chatwire_reply_id"], reply.as_str());

    let (status, answer) = app
        .openai_webhook(&Delivery::signed(
            SECRET,
            "wh_1",
            &event("response.completed", &resp),
        ))
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    let events = sse.events_until(is_reply_end).await;
    let end = events.last().unwrap();
    assert_eq!(end.kind(), "reply.completed");
    assert_eq!(end.field("text"), ANSWER);
    assert_eq!(joined_deltas(&events, &reply), ANSWER);
    assert!(events.iter().filter(|e| e.kind() == "reply.delta").count() > 1);
    assert_eq!(fake.retrieves(), 1);
    assert!(
        fake.cancels.lock().unwrap().is_empty(),
        "a finished response is not cancelled"
    );

    // A second message has the first exchange in its input.
    post_and_wait_create(&app, &fake, &conv, "And why?").await;
    let second = fake.creates.lock().unwrap()[1].clone();
    let input = second["input"].as_array().unwrap();
    assert_eq!(input.len(), 3);
    assert_eq!(input[1]["role"], "assistant");
    assert_eq!(input[1]["content"], ANSWER);
}

#[tokio::test]
async fn entries_sharing_a_secret_each_get_their_webhooks() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("bg2").await;
    let (_, resp) = post_and_wait_create(&app, &fake, &conv, "second model").await;
    app.openai_webhook(&Delivery::signed(
        SECRET,
        "wh_bg2",
        &event("response.completed", &resp),
    ))
    .await;
    let end = sse.reply_end().await;
    assert_eq!((end.kind(), end.field("text")), ("reply.completed", ANSWER));
}

#[tokio::test]
async fn a_failed_response_fails_the_reply() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("bg").await;
    let (_, resp) = post_and_wait_create(&app, &fake, &conv, "fails").await;
    app.openai_webhook(&Delivery::signed(
        SECRET,
        "wh_f",
        &event("response.failed", &resp),
    ))
    .await;
    let end = sse.reply_end().await;
    assert_eq!(end.kind(), "reply.failed");
    // The error's type only: the upstream message is never shown (it can echo secrets).
    assert!(end.field("error").contains("(server_error)"), "{end:?}");
    assert!(!end.field("error").contains("the model crashed"), "{end:?}");
}

#[tokio::test]
async fn an_interrupt_cancels_the_response_and_a_late_webhook_changes_nothing() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("bg").await;
    let (reply, resp) = post_and_wait_create(&app, &fake, &conv, "Think long").await;
    // Let the create's answer land: this test interrupts a created response.
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert_eq!(app.interrupt(&conv).await.as_deref(), Some(reply.as_str()));
    let end = sse.reply_end().await;
    assert_eq!(end.kind(), "reply.interrupted");
    eventually("the cancel call", || {
        fake.cancels.lock().unwrap().contains(&resp)
    })
    .await;

    let (status, answer) = app
        .openai_webhook(&Delivery::signed(
            SECRET,
            "wh_late",
            &event("response.completed", &resp),
        ))
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    let last = app.last_message(&conv).await;
    assert_eq!(last["status"], "interrupted");
    assert_eq!(last["text"], "");
    assert_eq!(fake.retrieves(), 0, "a late webhook retrieves nothing");
}

#[tokio::test]
async fn an_interrupt_during_the_create_cancels_once_the_id_is_known() {
    let (app, fake) = setup().await;
    let conv = app.create_with("bg").await;
    let (_, resp) = post_and_wait_create(&app, &fake, &conv, "slow-create").await;
    app.interrupt(&conv).await;
    eventually("the cancel after the slow create", || {
        fake.cancels.lock().unwrap().contains(&resp)
    })
    .await;
    assert_eq!(fake.creates(), 1);
}

#[tokio::test]
async fn refused_webhooks_change_nothing() {
    let (app, fake) = setup().await;
    let conv = app.create_with("bg").await;
    let (_, resp) = post_and_wait_create(&app, &fake, &conv, "Hello?").await;
    let body = event("response.completed", &resp);

    let mut wrong_sig = Delivery::signed(SECRET, "wh_x", &body);
    wrong_sig.signature = Some(sign(SECRET, "wh_x", wrong_sig.ts, b"{}"));
    let mut unsigned = Delivery::signed(SECRET, "wh_x", &body);
    unsigned.signature = None;
    let mut no_timestamp = Delivery::signed(SECRET, "wh_x", &body);
    no_timestamp.ts = 0;
    let mut tampered = Delivery::signed(SECRET, "wh_x", &body);
    tampered.body = serde_json::to_vec(&event("response.completed", "resp_999")).unwrap();
    let cases = [
        ("unsigned", unsigned),
        ("wrong signature", wrong_sig),
        (
            "other secret",
            Delivery::signed(OTHER_SECRET, "wh_x", &body),
        ),
        (
            "stale",
            Delivery::signed_at(SECRET, "wh_x", now() - 301, &body),
        ),
        (
            "from the future",
            Delivery::signed_at(SECRET, "wh_x", now() + 301, &body),
        ),
        ("bad timestamp", no_timestamp),
        ("tampered body", tampered),
    ];
    for (name, d) in &cases {
        let (status, answer) = app.openai_webhook(d).await;
        assert!((400..500).contains(&status), "{name}: {status}");
        assert!(answer["error"]["code"].is_string(), "{name}: JSON error");
    }
    // No header at all.
    let resp_bare = app
        .http
        .post(app.url("/webhooks/openai"))
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp_bare.status(), 401);

    let last = app.last_message(&conv).await;
    assert_eq!(
        (last["status"].as_str(), last["text"].as_str()),
        (Some("streaming"), Some(""))
    );
    assert_eq!(fake.retrieves(), 0);

    // None of them used up the webhook id: the genuine delivery is applied.
    let (status, answer) = app
        .openai_webhook(&Delivery::signed(SECRET, "wh_x", &body))
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
}

#[tokio::test]
async fn the_same_webhook_id_is_applied_once() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("bg").await;
    let (_, resp) = post_and_wait_create(&app, &fake, &conv, "Hi").await;
    let d = Delivery::signed(SECRET, "wh_dup", &event("response.completed", &resp));
    let first = app.openai_webhook(&d).await;
    let again = app.openai_webhook(&d).await;
    // Redelivered later, with a fresh timestamp and signature but the same id.
    let later = Delivery::signed(SECRET, "wh_dup", &event("response.completed", &resp));
    let third = app.openai_webhook(&later).await;
    assert_eq!(first.1["status"], "accepted");
    assert_eq!(
        (again.0, again.1["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(
        (third.0, third.1["status"].as_str()),
        (200, Some("duplicate"))
    );
    let events = sse.events_until(is_reply_end).await;
    assert_eq!(events.last().unwrap().field("text"), ANSWER);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.retrieves(), 1);
    let deltas = events.iter().filter(|e| e.kind() == "reply.delta").count();
    assert_eq!(deltas, ANSWER.split(' ').count());
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_and_ignored() {
    let (app, _fake) = setup().await;
    let body = json!({"id": "evt_b", "type": "batch.completed", "created_at": now(), "data": {"id": "batch_1"}});
    let (status, answer) = app
        .openai_webhook(&Delivery::signed(SECRET, "wh_batch", &body))
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    // A response we never created (another app of the same project): 2xx, ignored.
    let (status, _) = app
        .openai_webhook(&Delivery::signed(
            SECRET,
            "wh_other",
            &event("response.completed", "resp_elsewhere"),
        ))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn one_message_creates_exactly_one_response_even_when_the_create_is_slow_or_fails() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("bg").await;

    // Slow: the webhook even overtakes the create's answer; it waits for the job to be known.
    let (reply, resp) = post_and_wait_create(&app, &fake, &conv, "slow-create").await;
    let (status, answer) = app
        .openai_webhook(&Delivery::signed(
            SECRET,
            "wh_early",
            &event("response.completed", &resp),
        ))
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("parked")));
    let events = sse.events_until(is_reply_end).await;
    assert_eq!(events.last().unwrap().kind(), "reply.completed");
    assert_eq!(joined_deltas(&events, &reply), ANSWER);
    assert_eq!(fake.creates(), 1);

    // Failing: a 500 is not retried (the response may exist); the reply fails clearly.
    app.post_ok(&conv, "fail-create").await;
    let end = sse.reply_end().await;
    assert_eq!(end.kind(), "reply.failed");
    assert!(end.field("error").contains("500"), "{end:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(fake.creates(), 2, "one create per message, never a retry");
}

#[tokio::test]
async fn webhook_to_first_delta_latency() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("bg").await;
    let mut samples = Vec::new();
    for i in 0..20 {
        let (_, resp) = post_and_wait_create(&app, &fake, &conv, &format!("q{i}")).await;
        // Let the create's answer land, so we time the webhook path alone.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let d = Delivery::signed(
            SECRET,
            &format!("wh_lat_{i}"),
            &event("response.completed", &resp),
        );
        let t0 = Instant::now();
        d.send(&app.http, &app.url("/webhooks/openai")).await;
        sse.events_until(|e| e.kind() == "reply.delta").await;
        samples.push(t0.elapsed());
        sse.events_until(is_reply_end).await;
    }
    samples.sort();
    eprintln!(
        "webhook -> first SSE delta (loopback, retrieve included): median {:?}, max {:?}",
        samples[samples.len() / 2],
        samples.last().unwrap()
    );
    assert!(samples[samples.len() / 2] < Duration::from_secs(1));
}
