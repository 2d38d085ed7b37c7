//! PostgreSQL restarted while chatwire serves: requests answer 503 with a JSON error and
//! `Retry-After` (never a 500 or a dropped connection), a reply whose writes fail ends
//! without pretending it was stored, nothing acknowledged is lost, and chatwire works
//! again by itself once the database is back.

use std::time::Duration;

use crate::helpers::{WAIT, spawn_app_with};
use crate::postgres::PgServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_database_means_503_then_recovery_with_nothing_acknowledged_lost() {
    let pg = PgServer::start();
    let url = pg.fresh_db();
    let app = spawn_app_with(move |c| {
        c.db = url;
        c.offline_delay = Duration::from_millis(20);
    })
    .await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    app.post_ok(&conv, "hello").await;
    while sse.next_event().await.expect("event").kind() != "reply.completed" {}

    // A long reply is streaming when the database goes away.
    app.post_ok(&conv, "/count 100000").await;
    while sse.next_event().await.expect("event").kind() != "reply.delta" {}
    pg.stop();

    // Its next checkpoint fails: the actor stops without another event (nothing it
    // could not store is announced as final), and the stream ends.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(item) = sse.next_item().await {
            if item.is_event() {
                assert_eq!(
                    item.kind(),
                    "reply.delta",
                    "no terminal event while unstored"
                );
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends once a write failed");

    // Every route that needs the database answers 503 + JSON + Retry-After.
    let resp = app
        .conv_request(reqwest::Method::POST, &conv, "/messages")
        .json(&serde_json::json!({ "text": "during the outage" }))
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let resp = app
        .http
        .post(app.url("/api/conversations"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("create");
    assert_eq!(resp.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 503);

    // Back again: health, reads and writes recover without a restart of chatwire.
    pg.start_again();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.get("/healthz").await.status() != 200 {
        assert!(tokio::time::Instant::now() < deadline, "healthz recovers");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = app.get_conv(&conv).await;
    let messages = stored["messages"].as_array().expect("messages");
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 4, "{stored}");
    assert_eq!(texts[0], "hello");
    assert_eq!(messages[1]["status"], "complete");
    assert_eq!(
        texts[2], "/count 100000",
        "the acknowledged message is kept"
    );
    assert_eq!(
        messages[3]["status"], "failed",
        "the cut-off reply: {stored}"
    );

    let mut sse = app.sse(&conv, None).await;
    app.post_ok(&conv, "after").await;
    let done = tokio::time::timeout(WAIT, async {
        loop {
            let e = sse.next_event().await.expect("event");
            if e.kind() == "reply.completed" {
                return e;
            }
        }
    })
    .await
    .expect("a reply after recovery");
    assert!(!done.field("text").is_empty());
    drop(app);
    pg.stop();
}
