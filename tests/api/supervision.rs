//! Supervision and lifetimes: a panicking reply restarts only its own conversation; idle
//! actors go to sleep and come back from storage with their history (paused time);
//! health and the shutdown gate.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use chatwire::providers::{
    ExtraProviders, Provider, ProviderInfo, Reply, ReplyEvent, ReplyRequest,
};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::helpers::*;
use crate::streaming::wait_complete;

/// A provider, only constructible here, whose reply to `panic` panics inside the actor
/// after two deltas; anything else is answered with `fine`.
struct Panicky {
    info: ProviderInfo,
}

impl Provider for Panicky {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn start(&self, request: ReplyRequest) -> Reply {
        let last = request.history.last().map(|t| t.text.clone());
        let events = if last.as_deref() == Some("panic") {
            futures_util::stream::iter([
                ReplyEvent::Delta("about".into()),
                ReplyEvent::Delta(" to".into()),
            ])
            .chain(futures_util::stream::once(async {
                tokio::task::yield_now().await;
                panic!("the provider blew up (on purpose, in a test)")
            }))
            .boxed()
        } else {
            futures_util::stream::iter([ReplyEvent::Delta("fine".into()), ReplyEvent::Completed])
                .boxed()
        };
        Reply::new(events)
    }
}

fn panicky() -> ExtraProviders {
    ExtraProviders(vec![Arc::new(Panicky {
        info: ProviderInfo {
            name: "panicky".into(),
            kind: "test".into(),
            label: "Panics on request".into(),
            default: false,
        },
    }) as Arc<dyn Provider>])
}

#[tokio::test]
async fn a_panicking_reply_restarts_its_conversation_and_no_other_notices() {
    let app =
        spawn_app_with_providers(|c| c.offline_delay = Duration::from_millis(1), panicky()).await;
    let registry = app.server.as_ref().unwrap().state.conversations.clone();
    let calm = app.create().await;
    let doomed = app.create_with("panicky").await;
    app.post_ok(&doomed, "warm up").await;
    wait_complete(&app, &doomed).await;

    // The calm conversation streams 1000 words while the other one panics.
    let mut calm_sse = app.sse(&calm, None).await;
    let calm_reply = app.post_ok(&calm, "/count 1000").await;
    while calm_sse.next_event().await.unwrap().kind() != "reply.delta" {}
    let mut doomed_sse = app.sse(&doomed, None).await;
    let doomed_reply = app.post_ok(&doomed, "panic").await;

    // The doomed conversation's stream ends (its actor is gone), with a reconnect hint.
    let (seen, retry) = doomed_sse.rest().await;
    assert_eq!(retry, Some(1000), "{seen:?}");
    assert!(
        seen.iter().all(|e| !is_reply_end(e)),
        "no end was published"
    );

    // The calm one carries on: every word, in order, ids +1.
    let rest = calm_sse.events_until(is_reply_end).await;
    let last = rest.last().unwrap();
    assert_eq!(last.kind(), "reply.completed");
    assert_eq!(last.field("reply_id"), calm_reply);
    assert_eq!(last.field("text"), count_text(1000));
    for pair in rest.windows(2) {
        assert_eq!(pair[1].id.unwrap(), pair[0].id.unwrap() + 1);
    }

    // The doomed conversation comes back from storage: history intact, reply failed.
    let conv = app.get_conv(&doomed).await;
    let msgs = conv["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4, "{conv}");
    assert_eq!(msgs[1]["text"], "fine");
    assert_eq!(msgs[2]["text"], "panic");
    assert_eq!(msgs[3]["id"], doomed_reply.as_str());
    assert_eq!(msgs[3]["status"], "failed");
    assert!("about to".starts_with(msgs[3]["text"].as_str().unwrap()));
    // A client resuming where it was gets the new state (a `sync`), then live events.
    let last_seen = seen.last().and_then(|e| e.id).unwrap();
    let mut resumed = app.sse(&doomed, Some(last_seen)).await;
    let sync = resumed.next_event().await.unwrap();
    assert_eq!(sync.kind(), "sync");
    assert_eq!(
        sync.data.as_ref().unwrap()["messages"][3]["status"],
        "failed"
    );
    app.post_ok(&doomed, "are you back?").await;
    let back = resumed.events_until(is_reply_end).await;
    assert_eq!(back.last().unwrap().kind(), "reply.completed");
    assert_eq!(back.last().unwrap().field("text"), "fine");
    assert!(back[0].id.unwrap() > last_seen, "numbers are not reused");
    assert_eq!(registry.live_count(), 2);
    assert_eq!(
        registry.awake_count(),
        2,
        "the panicked actor is not counted twice"
    );
}

fn get(conv: &Conv, path: &str) -> Request<Body> {
    Request::get(format!("/api/conversations/{}{path}", conv.id))
        .header("authorization", format!("Bearer {}", conv.token))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn idle_actors_sleep_and_come_back_with_their_history() {
    let app = spawn_app_with(|c| c.idle_timeout = Duration::from_secs(60)).await;
    let state = app.server.as_ref().unwrap().state.clone();
    let registry = state.conversations.clone();
    let baseline = registry.live_count();
    assert_eq!(baseline, 0);
    let sleepy = app.create().await;
    let watched = app.create().await;
    app.post_ok(&sleepy, "/count 5").await;
    let before = wait_complete(&app, &sleepy).await;
    let last_event_id = before["last_event_id"].as_u64().unwrap();
    assert_eq!(registry.live_count(), 2);

    // In-process from here on, so paused time can run the idle minute in an instant.
    let router = chatwire::web::router(state.clone());
    let watching = spin(router.clone().oneshot(get(&watched, "/events")))
        .await
        .unwrap();
    assert_eq!(watching.status(), 200);
    tokio::time::pause();
    spin(tokio::time::advance(Duration::from_secs(59))).await;
    for _ in 0..1000 {
        tokio::task::yield_now().await;
    }
    assert_eq!(registry.live_count(), 2, "not idle long enough yet");
    spin(tokio::time::advance(Duration::from_secs(2))).await;
    spin_until("the idle actor stops", || registry.live_count() == 1).await;
    // Long after, the watched one (an open stream) is still awake.
    spin(tokio::time::advance(Duration::from_secs(600))).await;
    for _ in 0..1000 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        registry.live_count(),
        1,
        "a subscriber keeps its actor awake"
    );
    drop(watching);
    spin(tokio::time::advance(Duration::from_secs(61))).await;
    spin_until("back to the baseline", || registry.live_count() == baseline).await;
    assert_eq!(registry.awake_count(), baseline);

    // A wrong token is refused without waking it.
    let stranger = Conv {
        id: sleepy.id.clone(),
        token: watched.token.clone(),
    };
    let resp = spin(router.clone().oneshot(get(&stranger, "")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(registry.live_count(), baseline, "strangers wake nothing");

    // The next request brings it back from storage, with its history and numbering.
    let resp = spin(router.clone().oneshot(get(&sleepy, "")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = spin(resp.into_body().collect()).await.unwrap().to_bytes();
    let after: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(after["messages"], before["messages"]);
    assert_eq!(after["last_event_id"], last_event_id);
    assert_eq!(registry.live_count(), 1);

    // A client resuming from before the sleep gets a replay (stored events), not a sync.
    let req = Request::get(format!("/api/conversations/{}/events", sleepy.id))
        .header("authorization", format!("Bearer {}", sleepy.token))
        .header("last-event-id", (last_event_id - 3).to_string())
        .body(Body::empty())
        .unwrap();
    let resp = spin(router.clone().oneshot(req)).await.unwrap();
    let mut body = resp.into_body();
    let mut text = String::new();
    while !text.contains("reply.completed") && !text.contains("event: sync") {
        let frame = spin(body.frame()).await.expect("a frame").unwrap();
        text.push_str(std::str::from_utf8(&frame.into_data().unwrap()).unwrap());
    }
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![last_event_id - 2, last_event_id - 1, last_event_id]
    );
    assert!(!text.contains("event: sync"), "{text}");
    assert!(text.contains("\"text\":\"1 2 3 4 5\""), "{text}");
}

#[tokio::test]
async fn health_and_the_shutdown_gate() {
    let app = spawn_app().await;
    let state = app.server.as_ref().unwrap().state.clone();
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    assert!(health.headers().contains_key("referrer-policy"));
    let csp = health.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let conv = app.create().await;

    // Shutting down: new work is refused with 503 `shutting_down` and a Retry-After.
    state.shutdown.cancel();
    let router = chatwire::web::router(state.clone());
    for req in [
        Request::get("/healthz").body(Body::empty()).unwrap(),
        Request::post("/api/conversations")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap(),
        get(&conv, ""),
    ] {
        let resp = router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 503);
        assert!(resp.headers().contains_key("retry-after"));
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "shutting_down");
    }
}

#[tokio::test]
async fn health_is_503_when_storage_is_down() {
    let app = spawn_app().await;
    let state = app.server.as_ref().unwrap().state.clone();
    state.store.close().await;
    let resp = app.get("/healthz").await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
}
