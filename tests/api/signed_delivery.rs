//! Standard Webhooks delivery details, both ways: a webhook with an extreme timestamp is
//! refused (never a panic), and a signed message chatwire retries keeps its `webhook-id`
//! so the receiver can dedupe it, and dedupe is per sender. Each drives the real server
//! (or a fake NLP service).

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

/// Submitted jobs, in order: (job id, callback URL). Accepts jobs signed with either secret.
#[derive(Default)]
struct Recorder {
    jobs: Mutex<Vec<(String, String)>>,
}

async fn record_jobs(
    State(rec): State<Arc<Recorder>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if !verify(SECRET, &headers, &body) && !verify(OTHER_SECRET, &headers, &body) {
        return StatusCode::UNAUTHORIZED;
    }
    let msg: serde_json::Value = serde_json::from_slice(&body).unwrap();
    if msg["type"] == "job.submit" {
        let job = msg["job_id"].as_str().unwrap().to_string();
        let url = msg["callback_url"].as_str().unwrap().to_string();
        rec.jobs.lock().unwrap().push((job, url));
    }
    StatusCode::ACCEPTED
}

/// Waits (bounded) until the recorder has seen `n` submits; returns the `n`-th.
async fn nth_job(rec: &Recorder, n: usize) -> (String, String) {
    for _ in 0..200 {
        if let Some(j) = rec.jobs.lock().unwrap().get(n - 1) {
            return j.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("submit {n} never arrived");
}

/// Dedupe is per sender: two NLP services (told apart by the secret that signs their
/// callbacks) may use the same `webhook-id` strings without one's delivery being taken for
/// a duplicate of the other's; a real redelivery from the same sender is still a duplicate.
#[tokio::test]
async fn two_services_may_reuse_a_webhook_id() {
    let rec = Arc::new(Recorder::default());
    let router = axum::Router::new()
        .route("/jobs", post(record_jobs))
        .with_state(rec.clone());
    let app = spawn_app_with_fake(router, |addr| {
        vec![
            nlp_entry(addr, SECRET),
            chatwire::config::ProviderConfig {
                name: "nlp2".into(),
                ..nlp_entry(addr, OTHER_SECRET)
            },
        ]
    })
    .await;
    let a = app.create_with("nlp").await;
    app.post_ok(&a, "hello").await;
    let (job_a, url) = nth_job(&rec, 1).await;
    let b = app.create_with("nlp2").await;
    app.post_ok(&b, "hello").await;
    let (job_b, _) = nth_job(&rec, 2).await;

    let delta = |job: &str| json!({"type": "job.delta", "job_id": job, "seq": 1, "text": "hi"});
    let first = Delivery::signed(SECRET, "msg_1", &delta(&job_a));
    let (status, answer) = first.send(&app.http, &url).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    let (status, answer) = Delivery::signed(OTHER_SECRET, "msg_1", &delta(&job_b))
        .send(&app.http, &url)
        .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("accepted")),
        "another sender's msg_1 is not a duplicate"
    );
    let (status, answer) = first.send(&app.http, &url).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
}
