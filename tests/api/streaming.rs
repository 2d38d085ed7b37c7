//! Streaming a reply over SSE: ordering, numbering, resume, replies without subscribers,
//! barge-in and keep-alive.

use std::time::Duration;

use crate::helpers::*;

/// Joins the `reply.delta` texts of `reply_id`.
fn joined(events: &[SseItem], reply_id: &str) -> String {
    events
        .iter()
        .filter(|e| e.kind() == "reply.delta" && e.field("reply_id") == reply_id)
        .map(|e| e.field("text"))
        .collect()
}

#[tokio::test]
async fn count_500_streams_in_order_with_ids_rising_by_one() {
    let app = spawn_app().await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    let reply = app.post_ok(&conv, "/count 500").await;

    let events = sse.events_until(is_reply_end).await;
    assert_eq!(events[0].kind(), "user.message");
    assert_eq!(events[0].field("text"), "/count 500");
    assert_eq!(events[1].kind(), "reply.started");
    assert_eq!(events[1].field("reply_id"), reply);
    assert_eq!(events[1].field("provider"), "offline");
    let last = events.last().expect("events");
    assert_eq!(last.kind(), "reply.completed");
    assert_eq!(last.field("text"), count_text(500));
    assert_eq!(joined(&events, &reply), count_text(500));
    assert_eq!(
        events.iter().filter(|e| e.kind() == "reply.delta").count(),
        500,
        "one word per delta"
    );
    for pair in events.windows(2) {
        assert_eq!(pair[1].id.expect("id"), pair[0].id.expect("id") + 1);
    }
    assert_eq!(events[0].id, Some(1));
}

#[tokio::test]
async fn resume_after_drops_loses_and_repeats_nothing() {
    let app = spawn_app_with(|c| c.offline_delay = Duration::from_millis(1)).await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    let reply = app.post_ok(&conv, "/count 1500").await;

    let mut seen: Vec<SseItem> = Vec::new();
    // Drop the connection after these many events, then resume from the last id seen.
    for drop_after in [3usize, 200, 700, 1100] {
        while seen.len() < drop_after {
            let ev = sse.next_event().await.expect("event");
            let end = is_reply_end(&ev);
            seen.push(ev);
            if end {
                break;
            }
        }
        drop(sse);
        let last = seen.last().and_then(|e| e.id).expect("an id");
        sse = app.sse(&conv, Some(last)).await;
    }
    if !seen.last().is_some_and(is_reply_end) {
        seen.extend(sse.events_until(is_reply_end).await);
    }
    for pair in seen.windows(2) {
        assert_eq!(
            pair[1].id.unwrap(),
            pair[0].id.unwrap() + 1,
            "no gap, no duplicate"
        );
    }
    assert_eq!(joined(&seen, &reply), count_text(1500));
    assert_eq!(seen.last().unwrap().field("text"), count_text(1500));
}

#[tokio::test]
async fn query_last_event_id_resumes_on_first_connection() {
    let app = spawn_app().await;
    let conv = app.create().await;
    let reply = app.post_ok(&conv, "/count 20").await;
    // No subscriber while it runs; wait for it to finish.
    wait_complete(&app, &conv).await;
    let resp = app
        .http
        .get(app.url(&format!(
            "/api/conversations/{}/events?last_event_id=2",
            conv.id
        )))
        .bearer_auth(&conv.token)
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .unwrap();
    let mut sse = SseClient::from_response(resp);
    let events = sse.events_until(is_reply_end).await;
    assert_eq!(events[0].id, Some(3));
    assert_eq!(joined(&events, &reply), count_text(20));
}

#[tokio::test]
async fn unknown_or_old_ids_get_a_sync_snapshot_first() {
    let app = spawn_app().await;
    let conv = app.create().await;
    app.post_ok(&conv, "/count 3").await;
    wait_complete(&app, &conv).await;

    for bad in ["999999", "not-a-number"] {
        let resp = app
            .http
            .get(app.url(&format!("/api/conversations/{}/events", conv.id)))
            .bearer_auth(&conv.token)
            .header("Last-Event-ID", bad)
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .unwrap();
        let mut sse = SseClient::from_response(resp);
        let first = sse.next_event().await.expect("sync");
        assert_eq!(first.kind(), "sync", "for Last-Event-ID {bad}");
        let data = first.data.as_ref().unwrap();
        // user.message, reply.started, three deltas, reply.completed
        assert_eq!(data["last_event_id"], 6);
        assert_eq!(first.id, data["last_event_id"].as_u64());
        let msgs = data["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1]["text"], "1 2 3");
        assert_eq!(msgs[1]["status"], "complete");
    }
}

#[tokio::test]
async fn a_reply_goes_on_without_subscribers() {
    let app = spawn_app_with(|c| c.offline_delay = Duration::from_millis(2)).await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    let reply = app.post_ok(&conv, "/count 300").await;
    let mut seen = Vec::new();
    while seen.len() < 5 {
        seen.push(sse.next_event().await.unwrap());
    }
    drop(sse); // the tab is closed
    let done = wait_complete(&app, &conv).await;
    assert_eq!(done["messages"][1]["text"], count_text(300));

    // The client comes back and gets the rest, exactly.
    let mut sse = app.sse(&conv, seen.last().unwrap().id).await;
    seen.extend(sse.events_until(is_reply_end).await);
    assert_eq!(joined(&seen, &reply), count_text(300));
}

#[tokio::test]
async fn barge_in_interrupts_the_old_reply_first() {
    let app = spawn_app_with(|c| c.offline_delay = Duration::from_millis(2)).await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    let old = app.post_ok(&conv, "/count 5000").await;
    let mut events = Vec::new();
    while events
        .iter()
        .filter(|e: &&SseItem| e.kind() == "reply.delta")
        .count()
        < 10
    {
        events.push(sse.next_event().await.unwrap());
    }
    let new = app.post_ok(&conv, "hello").await;
    events.extend(
        sse.events_until(|e| is_reply_end(e) && e.field("reply_id") == new)
            .await,
    );

    let pos = |kind: &str, reply: &str| {
        events
            .iter()
            .position(|e| e.kind() == kind && e.field("reply_id") == reply)
            .unwrap_or_else(|| panic!("no {kind} for {reply}"))
    };
    let interrupted = pos("reply.interrupted", &old);
    let started = pos("reply.started", &new);
    let user = events
        .iter()
        .position(|e| e.kind() == "user.message" && e.field("text") == "hello")
        .expect("user.message");
    assert!(
        interrupted < user && user < started,
        "interrupted, then message, then reply"
    );
    assert!(
        !events[interrupted..]
            .iter()
            .any(|e| e.kind() == "reply.delta" && e.field("reply_id") == old),
        "no delta of the old reply after reply.interrupted"
    );
    // The interrupted text is exactly what was delivered.
    assert_eq!(events[interrupted].field("text"), joined(&events, &old));
    let conv_now = app.get_conv(&conv).await;
    assert_eq!(conv_now["messages"][1]["status"], "interrupted");
    assert_eq!(conv_now["messages"][1]["text"], joined(&events, &old));
    assert_eq!(conv_now["messages"][3]["status"], "complete");
}

#[tokio::test]
async fn keep_alive_comes_within_15_seconds_of_silence() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let app = spawn_app().await;
    let conv = app.create().await;
    app.get_conv(&conv).await; // the actor is up; nothing below touches storage
    // In-process, without sockets, so paused time can run the 15 s in an instant.
    let router = chatwire::web::router(app.server.as_ref().unwrap().state.clone());
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let req = axum::http::Request::get(format!("/api/conversations/{}/events", conv.id))
        .header("authorization", format!("Bearer {}", conv.token))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    assert!(
        resp.headers().get("content-encoding").is_none(),
        "never compressed"
    );
    let mut body = resp.into_body();
    let mut chunks = Vec::new();
    while chunks.len() < 3 {
        let frame = body.frame().await.expect("a frame").expect("no error");
        let data = frame.into_data().expect("data");
        chunks.push((start.elapsed(), String::from_utf8(data.to_vec()).unwrap()));
    }
    assert_eq!(chunks[0].1, "retry: 1000\n\n", "one retry hint first");
    for (i, (at, text)) in chunks[1..].iter().enumerate() {
        assert_eq!(text, ": keep-alive\n\n");
        let due = Duration::from_secs(15 * (i as u64 + 1));
        assert!(
            *at <= due + Duration::from_millis(50),
            "keep-alive {i} at {at:?}"
        );
        assert!(
            *at + Duration::from_secs(1) >= due,
            "not much sooner than needed: {at:?}"
        );
    }
}

/// Polls the conversation until its last reply is no longer streaming (bounded).
pub async fn wait_complete(app: &TestApp, conv: &Conv) -> serde_json::Value {
    for _ in 0..500 {
        let c = app.get_conv(conv).await;
        let last = c["messages"].as_array().and_then(|m| m.last()).cloned();
        if last.is_some_and(|m| m["role"] == "assistant" && m["status"] != "streaming") {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the reply did not finish in time");
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_stores_the_reply_in_progress() {
    let db = std::env::temp_dir().join(format!("chatwire-test-{}.db", std::process::id()));
    let url = format!("sqlite://{}", db.display());
    let db_url = url.clone();
    let mut app = spawn_app_with(move |c| {
        c.offline_delay = Duration::from_millis(5);
        c.db = db_url;
    })
    .await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    app.post_ok(&conv, "/count 100000").await;
    while sse.next_event().await.unwrap().kind() != "reply.delta" {}
    let stopping = tokio::time::Instant::now();
    app.shutdown().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "bounded shutdown"
    );
    // The stream ends (after the interrupted reply's last event), it does not hang.
    let mut last = SseItem::default();
    while let Some(item) = sse.next_item().await {
        if item.is_event() {
            last = item;
        }
    }
    assert_eq!(last.kind(), "reply.interrupted");

    // The reply in progress was stored, marked interrupted, with its text.
    let store = chatwire::storage::Store::connect(&url).await.unwrap();
    let stored = store.load_conversation(&conv.id).await.unwrap().unwrap();
    assert_eq!(
        stored.messages[1].status,
        chatwire::chat::Status::Interrupted
    );
    // Exactly what was delivered: how much that is depends on how soon the shutdown came.
    assert_eq!(stored.messages[1].text, last.field("text"));
    assert!(stored.messages[1].text.starts_with('1'));
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}
