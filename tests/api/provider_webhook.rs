//! Kind `webhook` (chatwire's callback protocol) against a fake NLP service (axum on
//! 127.0.0.1) that checks chatwire's signed jobs and sends signed callbacks to
//! `/webhooks/nlp`: duplicates, reordering, callbacks before the submit returns, late
//! callbacks after an interrupt, failures; and the built-in simulated service end to end.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use crate::fakes::{nlp_entry, spawn_app_with_fake};
use crate::helpers::*;
use crate::signing::*;

#[derive(Default)]
struct Fake {
    /// Every message chatwire sent (all verified: an unsigned one is refused).
    received: Mutex<Vec<Value>>,
    /// Statuses (`accepted`, `duplicate`, `ignored`…) chatwire answered our callbacks with.
    answers: Mutex<Vec<String>>,
    http: reqwest::Client,
}

impl Fake {
    fn of_type(&self, kind: &str) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == kind)
            .cloned()
            .collect()
    }

    /// Sends one signed callback to the job's callback URL, with webhook id `id`.
    async fn callback(&self, url: &str, id: &str, body: Value) -> (u16, Value) {
        let (status, answer) = Delivery::signed(SECRET, id, &body)
            .send(&self.http, url)
            .await;
        self.answers
            .lock()
            .unwrap()
            .push(answer["status"].as_str().unwrap_or("?").to_string());
        (status, answer)
    }
}

fn delta(job: &str, seq: u64, text: &str) -> Value {
    json!({"type": "job.delta", "job_id": job, "seq": seq, "text": text})
}

fn completed(job: &str, seq: u64) -> Value {
    json!({"type": "job.completed", "job_id": job, "seq": seq})
}

/// A webhook id for step `s` of `job`.
fn wid(job: &str, s: &str) -> String {
    format!("{job}-{s}")
}

async fn jobs(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !verify(SECRET, &headers, &body) {
        return StatusCode::UNAUTHORIZED;
    }
    let msg: Value = serde_json::from_slice(&body).unwrap();
    let submits_of_job = {
        let mut r = fake.received.lock().unwrap();
        r.push(msg.clone());
        r.iter().filter(|m| m["job_id"] == msg["job_id"]).count()
    };
    if msg["type"] != "job.submit" {
        return StatusCode::OK;
    }
    let job = msg["job_id"].as_str().unwrap().to_string();
    let url = msg["callback_url"].as_str().unwrap().to_string();
    let last = msg["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["text"].as_str())
        .unwrap_or("")
        .to_string();
    match last.as_str() {
        "early" => {
            // The whole job is delivered before the submit is answered.
            fake.callback(&url, &wid(&job, "1"), delta(&job, 1, "early"))
                .await;
            fake.callback(&url, &wid(&job, "2"), delta(&job, 2, " bird"))
                .await;
            fake.callback(&url, &wid(&job, "3"), completed(&job, 3))
                .await;
        }
        "retry-submit" if submits_of_job == 1 => return StatusCode::SERVICE_UNAVAILABLE,
        // Takes the job but never manages to say so (every answer is an error).
        "lost-answer" => return StatusCode::INTERNAL_SERVER_ERROR,
        _ => {
            let fake = fake.clone();
            tokio::spawn(async move {
                let steps: Vec<(String, Value)> = match last.as_str() {
                    "dup-reorder" => vec![
                        (wid(&job, "2"), delta(&job, 2, " two")),
                        (wid(&job, "1"), delta(&job, 1, "one")),
                        (wid(&job, "1-again"), delta(&job, 1, "one")),
                        (wid(&job, "3"), delta(&job, 3, " three")),
                        (wid(&job, "3"), delta(&job, 3, " three")),
                        (wid(&job, "4"), completed(&job, 4)),
                    ],
                    "hold" => vec![(wid(&job, "1"), delta(&job, 1, "held"))],
                    "fail" => vec![
                        (wid(&job, "1"), delta(&job, 1, "partial")),
                        (
                            wid(&job, "f"),
                            json!({"type": "job.failed", "job_id": job, "error": "model crashed"}),
                        ),
                    ],
                    _ => vec![
                        (wid(&job, "1"), delta(&job, 1, "ok")),
                        (
                            wid(&job, "2"),
                            json!({"type": "job.completed", "job_id": job, "seq": 2, "text": "ok"}),
                        ),
                    ],
                };
                for (wid, body) in steps {
                    fake.callback(&url, &wid, body).await;
                }
            });
        }
    }
    StatusCode::ACCEPTED
}

async fn setup() -> (TestApp, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let router = axum::Router::new()
        .route("/jobs", post(jobs))
        .with_state(fake.clone());
    let app = spawn_app_with_fake(router, |addr| {
        vec![chatwire::config::ProviderConfig {
            system_prompt: Some("Be kind.".into()),
            ..nlp_entry(addr, SECRET)
        }]
    })
    .await;
    (app, fake)
}

fn deltas(events: &[SseItem]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e.kind() == "reply.delta")
        .map(|e| e.field("text"))
        .collect()
}

#[tokio::test]
async fn duplicates_and_reordering_are_applied_once_in_order() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("nlp").await;
    let reply = app.post_ok(&conv, "dup-reorder").await;
    let events = sse.events_until(is_reply_end).await;
    assert_eq!(deltas(&events), ["one", " two", " three"]);
    let end = events.last().unwrap();
    assert_eq!(end.kind(), "reply.completed");
    assert_eq!(end.field("text"), "one two three");
    assert_eq!(joined_deltas(&events, &reply), "one two three");

    let submit = &fake.of_type("job.submit")[0];
    assert!(submit["job_id"].as_str().unwrap().starts_with("job_"));
    assert!(
        submit["callback_url"]
            .as_str()
            .unwrap()
            .ends_with("/webhooks/nlp")
    );
    assert_eq!(submit["system_prompt"], "Be kind.");
    assert_eq!(
        submit["messages"],
        json!([{"role": "user", "text": "dup-reorder"}])
    );
    let answers = fake.answers.lock().unwrap().clone();
    assert_eq!(
        answers.iter().filter(|a| *a == "duplicate").count(),
        1,
        "{answers:?}"
    );
    assert!(
        fake.of_type("job.cancel").is_empty(),
        "a finished job is not cancelled"
    );
}

#[tokio::test]
async fn callbacks_that_overtake_the_submit_are_kept() {
    let (app, _fake) = setup().await;
    let (conv, mut sse) = app.open_with("nlp").await;
    app.post_ok(&conv, "early").await;
    let events = sse.events_until(is_reply_end).await;
    assert_eq!(events.last().unwrap().kind(), "reply.completed");
    assert_eq!(events.last().unwrap().field("text"), "early bird");
}

#[tokio::test]
async fn a_late_callback_after_an_interrupt_changes_nothing() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("nlp").await;
    let reply = app.post_ok(&conv, "hold").await;
    sse.events_until(|e| e.kind() == "reply.delta").await;
    assert_eq!(app.interrupt(&conv).await.as_deref(), Some(reply.as_str()));
    let end = sse.reply_end().await;
    assert_eq!(
        (end.kind(), end.field("text")),
        ("reply.interrupted", "held")
    );

    let job = fake.of_type("job.submit")[0]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually("the signed cancel", || {
        fake.of_type("job.cancel")
            .iter()
            .any(|c| c["job_id"] == job.as_str())
    })
    .await;

    let url = app.url("/webhooks/nlp");
    let (s1, a1) = fake.callback(&url, "late-2", delta(&job, 2, " more")).await;
    let (s2, a2) = fake.callback(&url, "late-3", completed(&job, 3)).await;
    assert_eq!((s1, a1["status"].as_str()), (200, Some("ignored")));
    assert_eq!((s2, a2["status"].as_str()), (200, Some("ignored")));
    let last = app.last_message(&conv).await;
    assert_eq!(
        (last["status"].as_str(), last["text"].as_str()),
        (Some("interrupted"), Some("held"))
    );

    // The next message is a new job; while it runs, the old job's callbacks still change
    // nothing (they name the old reply, which is no longer the current one).
    let next = app.post_ok(&conv, "hold").await;
    sse.events_until(|e| e.kind() == "reply.delta" && e.field("reply_id") == next)
        .await;
    let (_, a3) = fake.callback(&url, "late-4", delta(&job, 2, " more")).await;
    assert_eq!(a3["status"], "ignored");
    app.interrupt(&conv).await;
    let end = sse.reply_end().await;
    assert_eq!(
        (end.field("reply_id"), end.field("text")),
        (next.as_str(), "held")
    );
}

#[tokio::test]
async fn a_failure_callback_fails_the_reply_keeping_its_text() {
    let (app, _fake) = setup().await;
    let (conv, mut sse) = app.open_with("nlp").await;
    app.post_ok(&conv, "fail").await;
    let end = sse.reply_end().await;
    assert_eq!((end.kind(), end.field("text")), ("reply.failed", "partial"));
    assert!(end.field("error").contains("model crashed"), "{end:?}");
}

#[tokio::test]
async fn a_refused_submit_is_retried_as_the_same_job() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("nlp").await;
    app.post_ok(&conv, "retry-submit").await;
    let end = sse.reply_end().await;
    assert_eq!((end.kind(), end.field("text")), ("reply.completed", "ok"));
    let submits = fake.of_type("job.submit");
    assert_eq!(submits.len(), 2);
    assert_eq!(submits[0]["job_id"], submits[1]["job_id"]);
}

#[tokio::test]
async fn a_submit_that_failed_is_still_cancelled_upstream() {
    // The service may have taken a job whose answer was lost: its id is chatwire's, so the
    // failed reply cancels it anyway rather than leave it running.
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("nlp").await;
    app.post_ok(&conv, "lost-answer").await;
    let end = sse.reply_end().await;
    assert_eq!(end.kind(), "reply.failed");
    eventually("the cancel", || !fake.of_type("job.cancel").is_empty()).await;
    let submitted = fake.of_type("job.submit")[0]["job_id"].clone();
    assert_eq!(fake.of_type("job.cancel")[0]["job_id"], submitted);
}

#[tokio::test]
async fn unsigned_callbacks_are_refused() {
    let (app, fake) = setup().await;
    let conv = app.create_with("nlp").await;
    app.post_ok(&conv, "hold").await;
    eventually("the submit", || !fake.of_type("job.submit").is_empty()).await;
    let job = fake.of_type("job.submit")[0]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut forged = Delivery::signed(OTHER_SECRET, "forged", &completed(&job, 1));
    let (status, _) = forged.send(&app.http, &app.url("/webhooks/nlp")).await;
    assert_eq!(status, 401);
    forged.signature = None;
    let (status, _) = forged.send(&app.http, &app.url("/webhooks/nlp")).await;
    assert_eq!(status, 401);
    let last = app.last_message(&conv).await;
    assert_eq!(last["status"], "streaming");
    let metrics = app.metrics().await;
    assert_eq!(
        metric(&metrics, "chatwire_webhook_verification_failures_total"),
        2.0
    );
}

#[tokio::test]
async fn the_simulated_service_answers_through_webhooks() {
    let app = spawn_app_with(|c| {
        c.providers
            .push(chatwire::config::ProviderConfig::simulated());
    })
    .await;
    let listed = app.get_json("/api/providers").await;
    assert_eq!(
        listed[1],
        json!({"name": "simulated", "kind": "webhook", "default": false})
    );

    let sim = app.create_with("simulated").await;
    let off = app.create_with("offline").await;
    let mut sim_sse = app.sse(&sim, None).await;
    let mut off_sse = app.sse(&off, None).await;
    let reply = app.post_ok(&sim, "what are webhooks?").await;
    app.post_ok(&off, "what are webhooks?").await;
    let events = sim_sse.events_until(is_reply_end).await;
    let expected = off_sse.reply_end().await;
    let end = events.last().unwrap();
    assert_eq!(end.kind(), "reply.completed");
    assert_eq!(events[1].field("provider"), "simulated");
    assert_eq!(
        end.field("text"),
        expected.field("text"),
        "the offline bot's script"
    );
    assert_eq!(joined_deltas(&events, &reply), end.field("text"));
    assert!(deltas(&events).len() > 5, "one delta per word");

    // Interrupting stops it: the reply ends interrupted and stays so.
    let story = app.post_ok(&sim, "/count 100000").await;
    sim_sse
        .events_until(|e| e.kind() == "reply.delta" && e.field("reply_id") == story)
        .await;
    app.interrupt(&sim).await;
    let end = sim_sse.reply_end().await;
    assert_eq!(end.kind(), "reply.interrupted");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let last = app.last_message(&sim).await;
    assert_eq!(last["status"], "interrupted");
    assert_eq!(last["text"], end.field("text"));
}

#[tokio::test]
async fn without_a_webhook_provider_the_routes_answer_404() {
    let app = spawn_app().await;
    let d = Delivery::signed(SECRET, "x", &completed("job_x", 1));
    assert_eq!(d.send(&app.http, &app.url("/webhooks/nlp")).await.0, 404);
    assert_eq!(d.send(&app.http, &app.url("/webhooks/openai")).await.0, 404);
}

#[tokio::test]
async fn rotated_signatures_are_accepted_and_big_bodies_refused() {
    let (app, fake) = setup().await;
    let (conv, mut sse) = app.open_with("nlp").await;
    app.post_ok(&conv, "hold").await;
    eventually("the submit", || !fake.of_type("job.submit").is_empty()).await;
    let job = fake.of_type("job.submit")[0]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    sse.events_until(|e| e.kind() == "reply.delta").await;
    let url = app.url("/webhooks/nlp");

    // Over 1 MiB: 413, nothing applied.
    let huge = Delivery::signed(
        SECRET,
        "huge",
        &delta(&job, 2, &"x".repeat(1024 * 1024 + 1)),
    );
    assert_eq!(huge.send(&app.http, &url).await.0, 413);

    // A sender rotating its key signs with the old and the new one: accepted.
    let mut rotated = Delivery::signed(SECRET, "rot", &completed(&job, 2));
    let old = sign(OTHER_SECRET, "rot", rotated.ts, &rotated.body);
    rotated.signature = Some(format!("{old} {}", rotated.signature.unwrap()));
    let (status, answer) = rotated.send(&app.http, &url).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    let end = sse.reply_end().await;
    assert_eq!((end.kind(), end.field("text")), ("reply.completed", "held"));
}

#[tokio::test]
async fn the_simulated_service_says_what_it_is() {
    let app = spawn_app_with(|c| {
        c.providers
            .push(chatwire::config::ProviderConfig::simulated());
    })
    .await;
    let (sim, mut sse) = app.open_with("simulated").await;
    app.post_ok(&sim, "hello").await;
    let end = sse.reply_end().await;
    assert_eq!(end.kind(), "reply.completed");
    assert!(
        end.field("text").contains("simulated NLP service")
            && end.field("text").contains("signed webhook"),
        "{end:?}"
    );
}

#[tokio::test]
async fn simulated_service_throughput() {
    let app = spawn_app_with(|c| {
        c.providers
            .push(chatwire::config::ProviderConfig::simulated())
    })
    .await;
    let (conv, mut sse) = app.open_with("simulated").await;
    let t0 = std::time::Instant::now();
    app.post_ok(&conv, "/count 500").await;
    let events = sse.events_until(is_reply_end).await;
    let took = t0.elapsed();
    assert_eq!(events.last().unwrap().field("text"), count_text(500));
    eprintln!(
        "simulated service, /count 500 (one signed callback per word, no delay): {took:?}, {:.0} callbacks/s",
        501.0 / took.as_secs_f64()
    );
}
