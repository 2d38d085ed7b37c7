//! `GET /metrics`: Prometheus text, and the counters move when the server works.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn metrics_count_streams_deltas_and_replies() {
    let app = spawn_app().await;
    let before = app.metrics().await;
    assert_eq!(metric(&before, "chatwire_deltas_published_total"), 0.0);
    assert_eq!(metric(&before, "chatwire_sse_streams_open"), 0.0);
    assert!(before.contains("# TYPE chatwire_interrupt_latency_seconds histogram\n"));

    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    app.post_ok(&conv, "/count 7").await;
    sse.events_until(|e| e.kind() == "reply.completed").await;

    let text = app.metrics().await;
    assert_eq!(metric(&text, "chatwire_conversations_live"), 1.0);
    assert_eq!(metric(&text, "chatwire_sse_streams_open"), 1.0);
    assert_eq!(metric(&text, "chatwire_deltas_published_total"), 7.0);
    // user.message, reply.started, 7 deltas, reply.completed: all written to our one stream.
    assert_eq!(metric(&text, "chatwire_sse_events_sent_total"), 10.0);
    assert_eq!(
        metric(&text, "chatwire_replies_total{outcome=\"completed\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "chatwire_replies_total{outcome=\"interrupted\"}"),
        0.0
    );
    assert_eq!(
        metric(&text, "chatwire_time_to_first_token_seconds_count"),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "chatwire_time_to_first_token_seconds_bucket{le=\"+Inf\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&text, "chatwire_interrupt_latency_seconds_count"),
        0.0
    );
    assert_eq!(
        metric(&text, "chatwire_webhook_verification_failures_total"),
        0.0
    );

    // The stream's gauge counts down once the client goes away.
    drop(sse);
    let mut open = 1.0;
    for _ in 0..100 {
        open = metric(&app.metrics().await, "chatwire_sse_streams_open");
        if open == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(open, 0.0);
}

#[tokio::test]
async fn metrics_time_an_interrupt() {
    let app = spawn_app_with(|c| c.offline_delay = Duration::from_millis(20)).await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    app.post_ok(&conv, "/count 1000").await;
    sse.events_until(|e| e.kind() == "reply.delta").await;
    assert!(app.interrupt(&conv).await.is_some(), "a reply was running");
    sse.events_until(|e| e.kind() == "reply.interrupted").await;

    let text = app.metrics().await;
    assert_eq!(
        metric(&text, "chatwire_replies_total{outcome=\"interrupted\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "chatwire_replies_total{outcome=\"completed\"}"),
        0.0
    );
    assert_eq!(
        metric(&text, "chatwire_interrupt_latency_seconds_count"),
        1.0
    );
    let sum = metric(&text, "chatwire_interrupt_latency_seconds_sum");
    assert!(sum > 0.0 && sum < 5.0, "interrupt took {sum} s");
    let deltas = metric(&text, "chatwire_deltas_published_total");
    assert!((1.0..1000.0).contains(&deltas), "{deltas} deltas");
}

#[tokio::test]
async fn a_lagging_reader_resubscribes_skips_nothing_and_is_counted() {
    // Two live slots: the actor publishes many deltas per turn, so the reader falls behind.
    let app = spawn_app_with(|c| c.limits.broadcast_capacity = 2).await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    app.post_ok(&conv, "/count 300").await;
    let events = sse.events_until(|e| e.kind() == "reply.completed").await;
    let ids: Vec<u64> = events.iter().filter_map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "ids: {ids:?}");
    let text: String = events
        .iter()
        .filter(|e| e.kind() == "reply.delta")
        .map(|e| e.field("text"))
        .collect();
    assert_eq!(text, count_text(300));

    let metrics = app.metrics().await;
    assert!(metric(&metrics, "chatwire_sse_resubscribes_total") >= 1.0);
    assert_eq!(metric(&metrics, "chatwire_deltas_published_total"), 300.0);
    // Every event reached our one stream exactly once, resubscriptions included.
    assert_eq!(metric(&metrics, "chatwire_sse_events_sent_total"), 303.0);
}

#[tokio::test]
async fn websockets_are_counted_and_their_interrupts_timed() {
    let app = spawn_app_with(|c| c.offline_delay = Duration::from_millis(20)).await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    let mut ws = app.ws(&conv).await;
    ws.hello().await;
    assert_eq!(
        metric(&app.metrics().await, "chatwire_websockets_open"),
        1.0
    );

    app.post_ok(&conv, "/count 1000").await;
    sse.events_until(|e| e.kind() == "reply.delta").await;
    ws.send_json(serde_json::json!({"type": "interrupt"})).await;
    sse.events_until(|e| e.kind() == "reply.interrupted").await;
    let text = app.metrics().await;
    assert_eq!(
        metric(&text, "chatwire_interrupt_latency_seconds_count"),
        1.0
    );
    assert_eq!(
        metric(&text, "chatwire_replies_total{outcome=\"interrupted\"}"),
        1.0
    );

    ws.close().await;
    let mut open = 1.0;
    for _ in 0..100 {
        open = metric(&app.metrics().await, "chatwire_websockets_open");
        if open == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(open, 0.0);
}
