//! Limits: floods from one address and into one conversation get 429 with `Retry-After`
//! and the server answers normally afterwards; subscribers per conversation and
//! conversations in memory are capped (idle ones are put to sleep to make room).

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

/// Checks a 429: JSON `rate_limited` and a whole-second `Retry-After` within `max` s.
async fn assert_limited(resp: reqwest::Response, max: u64) {
    let retry = retry_after(resp.status().as_u16(), resp.headers());
    assert!((1..=max).contains(&retry), "Retry-After {retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
}

/// The `Retry-After` seconds of a response that must be a 429.
fn retry_after(status: u16, headers: &axum::http::HeaderMap) -> u64 {
    assert_eq!(status, 429);
    headers["retry-after"].to_str().unwrap().parse().unwrap()
}

/// One request through the router in-process, as if from `peer` (so the per-address limit
/// counts it); paused time then decides exactly how many tokens the bucket has.
async fn from_peer(app: &TestApp, method: &str, path: &str) -> axum::response::Response {
    use tower::ServiceExt;
    let router = chatwire::web::router(app.server.as_ref().unwrap().state.clone());
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    router.oneshot(req).await.unwrap()
}

#[tokio::test]
async fn a_flood_from_one_address_gets_429_then_the_server_answers_again() {
    // 30 a minute: a burst of 30, then one every 2 s. Time stands still during the flood.
    let app = spawn_app_with(|c| c.limits.requests_per_minute = 30).await;
    tokio::time::pause();
    let mut limited = Vec::new();
    let mut ok = 0;
    for _ in 0..45 {
        let resp = from_peer(&app, "GET", "/api/providers").await;
        if resp.status() == 200 {
            ok += 1;
        } else {
            limited.push(resp);
        }
    }
    assert_eq!(ok, 30, "{ok} allowed");
    assert_eq!(limited.len(), 15);
    for resp in limited {
        assert_eq!(retry_after(resp.status().as_u16(), resp.headers()), 2);
        let body = http_body_util::BodyExt::collect(resp.into_body()).await;
        let body: Value = serde_json::from_slice(&body.unwrap().to_bytes()).unwrap();
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    }
    // NLP services' (signed) callbacks are not limited: an unsigned one is refused for
    // its signature, not for the flood.
    let callback = from_peer(&app, "POST", "/webhooks/nlp").await;
    assert_ne!(callback.status(), 429);
    assert!(callback.status().is_client_error());
    // Health probes are not limited either (real time again: the probe asks storage).
    tokio::time::resume();
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    // Once the bucket has a token again, requests are served.
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(2100)).await;
    let resp = from_peer(&app, "GET", "/api/providers").await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_flood_of_messages_gets_429_and_other_conversations_do_not_notice() {
    let app = spawn_app_with(|c| c.limits.messages_per_minute = 5).await;
    let conv = app.create().await;
    let other = app.create().await;
    for i in 0..5 {
        app.post_ok(&conv, &format!("message {i}")).await;
    }
    for _ in 0..3 {
        let resp = app
            .conv_request(reqwest::Method::POST, &conv, "/messages")
            .json(&serde_json::json!({"text": "one more"}))
            .send()
            .await
            .unwrap();
        assert_limited(resp, 12).await;
    }
    // Refused messages were not stored; the conversation still reads fine.
    let now = app.get_conv(&conv).await;
    let texts: Vec<&str> = now["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 5, "{texts:?}");
    // Another conversation has its own allowance.
    app.post_ok(&other, "hello").await;
    crate::streaming::wait_complete(&app, &other).await;
}

#[tokio::test]
async fn subscribers_beyond_the_limit_get_429() {
    let app = spawn_app_with(|c| c.limits.max_subscribers = 2).await;
    let conv = app.create().await;
    let mut a = app.sse(&conv, None).await;
    let _b = app.sse(&conv, None).await;
    let resp = app
        .conv_request(reqwest::Method::GET, &conv, "/events")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_subscribers");
    // The two open streams work as before.
    app.post_ok(&conv, "/count 3").await;
    let events = a.events_until(is_reply_end).await;
    assert_eq!(events.last().unwrap().field("text"), "1 2 3");
}

#[tokio::test]
async fn conversations_in_memory_are_capped() {
    let app = spawn_app_with(|c| c.limits.max_conversations = 2).await;
    let registry = app.server.as_ref().unwrap().state.conversations.clone();
    // Two conversations in use (an open stream each): no room for a third.
    let a = app.create().await;
    let b = app.create().await;
    let sse_a = app.sse(&a, None).await;
    let sse_b = app.sse(&b, None).await;
    let resp = app
        .post_json("/api/conversations", &serde_json::json!({}))
        .await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    assert_eq!(registry.live_count(), 2);

    // Once they are idle, new conversations put the least recently used to sleep.
    drop((sse_a, sse_b));
    app.post_ok(&a, "/count 2").await;
    crate::streaming::wait_complete(&app, &a).await;
    let mut room = false;
    for _ in 0..100 {
        // The server notices the closed streams at their next write; poke them.
        app.post_ok(&b, "/count 1").await;
        crate::streaming::wait_complete(&app, &b).await;
        let resp = app
            .post_json("/api/conversations", &serde_json::json!({}))
            .await;
        if resp.status() == 201 {
            room = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(room, "an idle conversation made room");
    settles_at_most(&registry, 2).await;
    // The sleeping one comes back from storage with its history.
    let again = app.get_conv(&a).await;
    assert_eq!(again["messages"][1]["text"], "1 2");
    settles_at_most(&registry, 2).await;
}

/// An actor put to sleep leaves memory once it has stored its last state (bounded wait).
async fn settles_at_most(registry: &chatwire::conversation::Conversations, max: usize) {
    for _ in 0..200 {
        if registry.live_count() <= max {
            assert_eq!(registry.awake_count(), registry.live_count());
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} conversations in memory", registry.live_count());
}
