//! Standard Webhooks delivery details, both ways: a webhook with an extreme timestamp is
//! refused (never a panic), and a signed message chatwire retries keeps its `webhook-id`
//! so the receiver can dedupe it. Each drives the real server (or a fake NLP service).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::json;

use crate::fakes::{nlp_entry, spawn_app_with_fake};
use crate::helpers::*;
use crate::signing::*;

/// A fake NLP service that refuses the first submit of each job with 503 (so chatwire
/// retries it) and records the `webhook-id` of every message it is sent.
#[derive(Default)]
struct Fake {
    ids: Mutex<Vec<(String, String)>>,
}

async fn jobs(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !verify(SECRET, &headers, &body) {
        return StatusCode::UNAUTHORIZED;
    }
    let msg: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = headers["webhook-id"].to_str().unwrap().to_string();
    let kind = msg["type"].as_str().unwrap_or("?").to_string();
    let first = {
        let mut ids = fake.ids.lock().unwrap();
        ids.push((kind.clone(), id));
        ids.iter().filter(|(k, _)| *k == kind).count() == 1
    };
    if kind == "job.submit" && first {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::ACCEPTED
    }
}

async fn setup() -> (TestApp, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let router = axum::Router::new()
        .route("/jobs", post(jobs))
        .with_state(fake.clone());
    let app = spawn_app_with_fake(router, |addr| vec![nlp_entry(addr, SECRET)]).await;
    (app, fake)
}

/// A timestamp at the edge of `i64` must be refused as stale (4xx), not overflow the
/// server's clock arithmetic (a panic, answered 500).
#[tokio::test]
async fn an_extreme_webhook_timestamp_is_refused_not_a_panic() {
    let (app, _fake) = setup().await;
    let body = json!({"type": "job.completed", "job_id": "job_x", "seq": 1});
    for ts in [i64::MIN, i64::MIN + 1, i64::MAX] {
        let d = Delivery::signed_at(SECRET, &format!("ts{ts}"), ts, &body);
        let (status, answer) = d.send(&app.http, &app.url("/webhooks/nlp")).await;
        assert_eq!(status, 401, "timestamp {ts}: {answer}");
    }
}

/// Standard Webhooks: a message that is re-sent keeps its `webhook-id`, so the receiver
/// can dedupe it. A retried submit must be recognisable as the same delivery.
#[tokio::test]
async fn a_retried_submit_keeps_its_webhook_id() {
    let (app, fake) = setup().await;
    let conv = app.create_with("nlp").await;
    app.post_ok(&conv, "hello").await;
    eventually("the retried submit", || {
        fake.ids
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k == "job.submit")
            .count()
            >= 2
    })
    .await;
    let ids: Vec<String> = fake
        .ids
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k == "job.submit")
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(ids[0], ids[1], "a retry is the same delivery");
}
