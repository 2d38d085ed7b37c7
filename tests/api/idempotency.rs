//! `Idempotency-Key` on `POST …/messages`: a retry with the same key gets the first answer
//! (the same ids, 202) and stores nothing twice, even while the reply streams, after the
//! conversation's actor restarted from storage, and with the same key in another
//! conversation meaning another request. Malformed keys are a 400.

use serde_json::Value;

use crate::helpers::*;

async fn post_keyed(app: &TestApp, conv: &Conv, text: &str, key: &str) -> (u16, Value) {
    app.post_keyed(conv, text, Some(key)).await
}

fn user_messages(conv: &Value) -> usize {
    conv["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .count()
}

#[tokio::test]
async fn a_retry_with_the_same_key_gets_the_first_answer_and_stores_nothing_twice() {
    let app = spawn_app().await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    let (status, first) = post_keyed(&app, &conv, "/count 30", "key-1").await;
    assert_eq!(status, 202, "{first}");
    assert!(first["reply_id"].is_string(), "{first}");
    // While its reply streams (a retry must not barge in on it) and after it ended.
    let (status, again) = post_keyed(&app, &conv, "/count 30", "key-1").await;
    assert_eq!((status, &again), (202, &first));
    let end = sse.reply_end().await;
    assert_eq!(
        end.kind(),
        "reply.completed",
        "the retry did not interrupt it"
    );
    let (status, again) = post_keyed(&app, &conv, "/count 30", "key-1").await;
    assert_eq!((status, &again), (202, &first));
    let stored = app.get_conv(&conv).await;
    assert_eq!(user_messages(&stored), 1, "{stored}");
    assert_eq!(stored["messages"].as_array().unwrap().len(), 2, "{stored}");

    // A new key is a new message; no key at all is never deduplicated.
    let (status, second) = post_keyed(&app, &conv, "/count 2", "key-2").await;
    assert_eq!(status, 202);
    assert_ne!(second["message_id"], first["message_id"]);
    sse.reply_end().await;
    app.post_ok(&conv, "/count 2").await;
    sse.reply_end().await;
    app.post_ok(&conv, "/count 2").await;
    sse.reply_end().await;
    assert_eq!(user_messages(&app.get_conv(&conv).await), 4);

    // The same key in another conversation is another request.
    let other = app.create().await;
    let (status, there) = post_keyed(&app, &other, "/count 2", "key-1").await;
    assert_eq!(status, 202);
    assert_ne!(there["message_id"], first["message_id"]);
    assert_eq!(user_messages(&app.get_conv(&other).await), 1);
}

/// The keys are stored with the messages: a new actor (after the old one retired idle)
/// answers a retry from storage.
#[tokio::test]
async fn a_key_outlives_the_actor_that_stored_it() {
    let app = spawn_app_with(|c| c.idle_timeout = std::time::Duration::from_millis(300)).await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    let (status, first) = post_keyed(&app, &conv, "/count 2", "retry-me").await;
    assert_eq!(status, 202);
    sse.reply_end().await;
    drop(sse);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while metric(&app.metrics().await, "chatwire_conversations_live") != 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "the actor retires");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, again) = post_keyed(&app, &conv, "/count 2", "retry-me").await;
    assert_eq!((status, &again), (202, &first));
    assert_eq!(user_messages(&app.get_conv(&conv).await), 1);
}

#[tokio::test]
async fn a_malformed_key_is_a_bad_request() {
    let app = spawn_app().await;
    let conv = app.create().await;
    let long = "k".repeat(256);
    for key in ["", "has space", long.as_str()] {
        let (status, body) = post_keyed(&app, &conv, "hi", key).await;
        assert_eq!(status, 400, "{key:?}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
    }
    assert_eq!(user_messages(&app.get_conv(&conv).await), 0);
}

/// A queued post's first answer (no reply yet) is what its retry gets, even after the
/// queue moved on and the message got its reply.
#[tokio::test]
async fn a_queued_posts_retry_gets_the_queued_answer() {
    let app = spawn_app().await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    app.post_ok(&conv, "/count 100000").await;
    sse.events_until(|e| e.kind() == "reply.delta").await;
    let queued = |key: &'static str| {
        app.conv_request(reqwest::Method::POST, &conv, "/messages")
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({ "text": "/count 2", "if_busy": "queue" }))
            .send()
    };
    let first = queued("q1").await.expect("post");
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        (&first["queued"], &first["reply_id"]),
        (&Value::Bool(true), &Value::Null)
    );
    sse.reply_end().await;
    sse.reply_end().await;
    let again: Value = queued("q1").await.expect("post").json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(user_messages(&app.get_conv(&conv).await), 2);
}
