//! The conversation operations through HTTP and SSE, each watched by two subscribers that
//! must see the same events: posts with `if_busy` (queue, reject, interrupt), regenerate
//! and edit; the stored history after a restart; a resume across an edit.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::TempDb;
use crate::streaming::wait_complete;

/// Long enough to be sure to be streaming when the next request comes; ended by a Stop.
const ENDLESS: &str = "/count 100000";

async fn slow_app(db: Option<&TempDb>) -> TestApp {
    let url = db.map(|d| d.url());
    spawn_app_with(move |c| {
        c.offline_delay = Duration::from_millis(5);
        if let Some(url) = url {
            c.db = url;
        }
    })
    .await
}

/// A new conversation and two subscribers of its events.
async fn watched(app: &TestApp) -> (Conv, SseClient, SseClient) {
    let conv = app.create().await;
    let (a, b) = (app.sse(&conv, None).await, app.sse(&conv, None).await);
    (conv, a, b)
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post_if_busy(app: &TestApp, conv: &Conv, text: &str, if_busy: &str) -> (u16, Value) {
    let req = app
        .conv_request(reqwest::Method::POST, conv, "/messages")
        .json(&json!({ "text": text, "if_busy": if_busy }));
    send(req).await
}

async fn regenerate(app: &TestApp, conv: &Conv) -> (u16, Value) {
    send(app.conv_request(reqwest::Method::POST, conv, "/regenerate")).await
}

async fn edit(app: &TestApp, conv: &Conv, message_id: &str, text: &Value) -> (u16, Value) {
    let req = app
        .conv_request(
            reqwest::Method::PUT,
            conv,
            &format!("/messages/{message_id}"),
        )
        .json(&json!({ "text": text }));
    send(req).await
}

/// Both subscribers read up to and including the first event `last` accepts; they must
/// have seen exactly the same events (ids, types, data), numbered +1 each.
async fn both_until(
    a: &mut SseClient,
    b: &mut SseClient,
    last: impl Fn(&SseItem) -> bool + Copy,
) -> Vec<SseItem> {
    let seen_a = a.events_until(last).await;
    let seen_b = b.events_until(last).await;
    let key = |v: &[SseItem]| -> Vec<(Option<u64>, String, Option<Value>)> {
        v.iter()
            .map(|e| (e.id, e.kind().to_string(), e.data.clone()))
            .collect()
    };
    assert_eq!(key(&seen_a), key(&seen_b), "both subscribers see the same");
    for w in seen_a.windows(2) {
        assert_eq!(w[0].id.unwrap() + 1, w[1].id.unwrap(), "ids rise by one");
    }
    seen_a
}

fn ends(reply_id: &str) -> impl Fn(&SseItem) -> bool + Copy + '_ {
    move |e| is_reply_end(e) && e.field("reply_id") == reply_id
}

fn position(events: &[SseItem], kind: &str, field: &str, value: &str) -> usize {
    events
        .iter()
        .position(|e| e.kind() == kind && e.field(field) == value)
        .unwrap_or_else(|| panic!("no {kind} with {field} = {value} in {events:?}"))
}

/// `(role, text, status)` of every message, and their ids.
fn history(conv: &Value) -> (Vec<(String, String, String)>, Vec<String>) {
    let msgs = conv["messages"].as_array().expect("messages");
    let rows = msgs
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (s("role"), s("text"), s("status"))
        })
        .collect();
    let ids = msgs
        .iter()
        .map(|m| m["id"].as_str().unwrap_or_default().to_string())
        .collect();
    (rows, ids)
}

fn row(role: &str, text: &str, status: &str) -> (String, String, String) {
    (role.into(), text.into(), status.into())
}

/// Shuts the server down and starts a new one on the same database.
async fn restart(app: &mut TestApp, db: &TempDb) -> TestApp {
    app.shutdown().await;
    slow_app(Some(db)).await
}

#[tokio::test]
async fn a_queued_message_is_published_at_once_and_answered_after_the_reply() {
    let app = slow_app(None).await;
    let (conv, mut a, mut b) = watched(&app).await;
    // About 1.5 s of streaming: long enough to be certainly busy for the next post.
    let first = app.post_ok(&conv, "/count 300").await;
    let (status, body) = post_if_busy(&app, &conv, "/count 3", "queue").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["queued"], true);
    assert!(body["reply_id"].is_null(), "no reply yet: {body}");
    let queued = body["message_id"].as_str().expect("message_id").to_string();

    let events = both_until(&mut a, &mut b, |e| e.kind() == "reply.started").await;
    let events = [
        events,
        both_until(&mut a, &mut b, |e| e.kind() == "reply.started").await,
    ]
    .concat();
    let second_start = events.last().expect("the second reply.started");
    assert_eq!(second_start.field("in_reply_to"), queued);
    let second = second_start.field("reply_id").to_string();
    assert_ne!(second, first);
    let published = position(&events, "user.message", "message_id", &queued);
    let first_end = position(&events, "reply.completed", "reply_id", &first);
    assert!(
        published < first_end,
        "the queued message is published while the reply streams"
    );
    assert_eq!(
        first_end + 1,
        events.len() - 1,
        "the next reply starts right after"
    );
    assert_eq!(joined_deltas(&events, &first), count_text(300));

    let rest = both_until(&mut a, &mut b, ends(&second)).await;
    assert_eq!(rest.last().unwrap().kind(), "reply.completed");
    assert_eq!(joined_deltas(&rest, &second), "1 2 3");
    let (rows, _) = history(&wait_complete(&app, &conv).await);
    assert_eq!(
        rows,
        vec![
            row("user", "/count 300", "complete"),
            row("assistant", &count_text(300), "complete"),
            row("user", "/count 3", "complete"),
            row("assistant", "1 2 3", "complete"),
        ]
    );
}

#[tokio::test]
async fn each_queued_message_gets_its_reply_in_its_place_and_stop_moves_the_queue_on() {
    let db = TempDb::new("queue-order");
    let mut app = slow_app(Some(&db)).await;
    let (conv, mut a, mut b) = watched(&app).await;
    let first = app.post_ok(&conv, ENDLESS).await;
    let mut queued = Vec::new();
    for text in ["/count 2", "/count 3"] {
        let (status, body) = post_if_busy(&app, &conv, text, "queue").await;
        assert_eq!(status, 202, "{body}");
        queued.push(body["message_id"].as_str().unwrap().to_string());
    }
    // Stop ends the reply in progress only; the queue goes on.
    assert_eq!(app.interrupt(&conv).await.as_deref(), Some(first.as_str()));
    let events = both_until(&mut a, &mut b, ends(&first)).await;
    assert_eq!(events.last().unwrap().kind(), "reply.interrupted");
    let mut replies = Vec::new();
    for (message, text) in queued.iter().zip(["1 2", "1 2 3"]) {
        let started = both_until(&mut a, &mut b, |e| e.kind() == "reply.started").await;
        let started = started.last().unwrap();
        assert_eq!(started.field("in_reply_to"), message.as_str());
        let reply = started.field("reply_id").to_string();
        let events = both_until(&mut a, &mut b, ends(&reply)).await;
        assert_eq!(events.last().unwrap().field("text"), text);
        replies.push(reply);
    }

    let expected = |interrupted: &str| {
        vec![
            row("user", ENDLESS, "complete"),
            row("assistant", interrupted, "interrupted"),
            row("user", "/count 2", "complete"),
            row("assistant", "1 2", "complete"),
            row("user", "/count 3", "complete"),
            row("assistant", "1 2 3", "complete"),
        ]
    };
    let (rows, ids) = history(&wait_complete(&app, &conv).await);
    let interrupted = rows[1].1.clone();
    assert_eq!(
        rows,
        expected(&interrupted),
        "each reply right after its message"
    );
    assert_eq!(ids[3], replies[0]);
    assert_eq!(ids[5], replies[1]);
    drop((a, b));
    let app = restart(&mut app, &db).await;
    let (stored, stored_ids) = history(&app.get_conv(&conv).await);
    assert_eq!(stored, expected(&interrupted), "stored in the same order");
    assert_eq!(stored_ids, ids);
}

#[tokio::test]
async fn the_queue_holds_eight_and_a_barge_in_answers_them_all_at_once() {
    let app = slow_app(None).await;
    let (conv, mut a, mut b) = watched(&app).await;
    let first = app.post_ok(&conv, ENDLESS).await;
    for i in 0..8 {
        let (status, body) = post_if_busy(&app, &conv, &format!("q{i}"), "queue").await;
        assert_eq!(status, 202, "message {i}: {body}");
    }
    let (status, body) = post_if_busy(&app, &conv, "one too many", "queue").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "queue_full");
    let (rows, _) = history(&app.get_conv(&conv).await);
    assert_eq!(rows.len(), 10, "the refused one is not stored: {rows:?}");

    // A barge-in interrupts the reply and answers the new message, the queued ones being
    // history before it.
    let (status, body) = post_if_busy(&app, &conv, "/count 2", "interrupt").await;
    assert_eq!(status, 202, "{body}");
    let reply = body["reply_id"].as_str().unwrap().to_string();
    let events = both_until(&mut a, &mut b, ends(&reply)).await;
    let interrupted = position(&events, "reply.interrupted", "reply_id", &first);
    let started = position(&events, "reply.started", "reply_id", &reply);
    assert!(interrupted < started);
    assert_eq!(
        events[interrupted..]
            .iter()
            .filter(|e| e.kind() == "reply.started")
            .count(),
        1,
        "no reply for the queued messages"
    );
    let (rows, _) = history(&wait_complete(&app, &conv).await);
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[10], row("user", "/count 2", "complete"));
    assert_eq!(rows[11], row("assistant", "1 2", "complete"));
}

#[tokio::test]
async fn reject_refuses_while_a_reply_streams_and_stores_nothing() {
    let app = slow_app(None).await;
    let (conv, mut a, mut b) = watched(&app).await;
    let first = app.post_ok(&conv, ENDLESS).await;
    let (status, body) = post_if_busy(&app, &conv, "not now", "reject").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "busy");
    app.interrupt(&conv).await;
    let events = both_until(&mut a, &mut b, ends(&first)).await;
    assert!(
        events.iter().all(|e| e.field("text") != "not now"),
        "nothing published"
    );
    let (rows, _) = history(&app.get_conv(&conv).await);
    assert_eq!(rows.len(), 2, "nothing stored: {rows:?}");

    // Idle, a reject post is an ordinary one.
    let (status, body) = post_if_busy(&app, &conv, "/count 2", "reject").await;
    assert_eq!(status, 202, "{body}");
    let reply = body["reply_id"].as_str().unwrap().to_string();
    let events = both_until(&mut a, &mut b, ends(&reply)).await;
    assert_eq!(events[0].kind(), "user.message");
    assert_eq!(events.last().unwrap().field("text"), "1 2");
}

#[tokio::test]
async fn if_busy_must_be_one_of_three_strings() {
    let app = spawn_app().await;
    let conv = app.create().await;
    for bad in [json!("later"), json!(5), json!(["queue"])] {
        let req = app
            .conv_request(reqwest::Method::POST, &conv, "/messages")
            .json(&json!({ "text": "hi", "if_busy": bad }));
        let (status, body) = send(req).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
    }
    let (rows, _) = history(&app.get_conv(&conv).await);
    assert!(rows.is_empty(), "nothing stored");
    let (status, _) = post_if_busy(&app, &conv, "hi", "interrupt").await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn regenerate_replaces_the_last_reply_in_its_place() {
    let db = TempDb::new("regenerate");
    let mut app = slow_app(Some(&db)).await;
    let conv = app.create().await;
    let (status, body) = regenerate(&app, &conv).await;
    assert_eq!(status, 409, "no reply yet: {body}");
    assert_eq!(body["error"]["code"], "no_reply");

    let (mut a, mut b) = (app.sse(&conv, None).await, app.sse(&conv, None).await);
    let old = app.post_ok(&conv, "/count 3").await;
    let events = both_until(&mut a, &mut b, ends(&old)).await;
    let user = events[0].field("message_id").to_string();
    let (status, body) = regenerate(&app, &conv).await;
    assert_eq!(status, 202, "{body}");
    let new = body["reply_id"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let events = both_until(&mut a, &mut b, ends(&new)).await;
    assert_eq!(events[0].kind(), "reply.started", "{events:?}");
    assert_eq!(events[0].field("replaces"), old);
    assert_eq!(events[0].field("in_reply_to"), user);
    assert_eq!(events.last().unwrap().field("text"), "1 2 3");
    let (rows, ids) = history(&wait_complete(&app, &conv).await);
    assert_eq!(
        rows,
        vec![
            row("user", "/count 3", "complete"),
            row("assistant", "1 2 3", "complete")
        ]
    );
    assert_eq!(ids, vec![user.clone(), new.clone()]);

    // Mid-reply: the reply in progress is interrupted first, then replaced.
    let streaming = app.post_ok(&conv, ENDLESS).await;
    let (status, body) = regenerate(&app, &conv).await;
    assert_eq!(status, 202, "{body}");
    let newer = body["reply_id"].as_str().unwrap().to_string();
    let events = both_until(&mut a, &mut b, |e| {
        e.kind() == "reply.started" && e.field("reply_id") == newer
    })
    .await;
    let interrupted = position(&events, "reply.interrupted", "reply_id", &streaming);
    assert_eq!(interrupted + 1, events.len() - 1);
    assert_eq!(events.last().unwrap().field("replaces"), streaming);
    app.interrupt(&conv).await;
    both_until(&mut a, &mut b, ends(&newer)).await;
    let (rows, ids) = history(&app.get_conv(&conv).await);
    assert_eq!(rows.len(), 4);
    assert_eq!(ids[3], newer, "in the old one's place: {ids:?}");
    assert!(!ids.contains(&streaming));

    drop((a, b));
    let app = restart(&mut app, &db).await;
    let (stored_rows, stored_ids) = history(&app.get_conv(&conv).await);
    assert_eq!(stored_ids, ids, "stored in place");
    assert_eq!(stored_rows, rows);
}

#[tokio::test]
async fn edit_replaces_the_text_drops_later_messages_and_syncs_every_tab() {
    let db = TempDb::new("edit");
    let mut app = slow_app(Some(&db)).await;
    let (conv, mut a, mut b) = watched(&app).await;
    let r1 = app.post_ok(&conv, "/count 2").await;
    let before = both_until(&mut a, &mut b, ends(&r1)).await;
    let u1 = before[0].field("message_id").to_string();
    let resume_from = before.last().unwrap().id.unwrap();
    let r2 = app.post_ok(&conv, "/count 3").await;
    both_until(&mut a, &mut b, ends(&r2)).await;

    // What cannot be edited: an unknown id, a reply, empty or non-string text.
    let (status, body) = edit(&app, &conv, "m_nope", &json!("x")).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    let (status, body) = edit(&app, &conv, &r1, &json!("x")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("not_user_message"))
    );
    for bad in [json!("  "), json!(7)] {
        let (status, body) = edit(&app, &conv, &u1, &bad).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (400, &json!("invalid_text"))
        );
    }

    let (status, body) = edit(&app, &conv, &u1, &json!("/count 4")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["message_id"], u1.as_str());
    let reply = body["reply_id"].as_str().unwrap().to_string();
    let events = both_until(&mut a, &mut b, ends(&reply)).await;
    assert_eq!(events[0].kind(), "sync", "{events:?}");
    let sync = events[0].data.as_ref().unwrap();
    assert_eq!(sync["last_event_id"].as_u64(), events[0].id);
    let (rows, _) = history(sync);
    assert_eq!(rows, vec![row("user", "/count 4", "complete")]);
    assert_eq!(events[1].kind(), "reply.started");
    assert_eq!(events[1].field("in_reply_to"), u1);
    assert_eq!(events.last().unwrap().field("text"), "1 2 3 4");
    let expected = vec![
        row("user", "/count 4", "complete"),
        row("assistant", "1 2 3 4", "complete"),
    ];
    let (rows, ids) = history(&wait_complete(&app, &conv).await);
    assert_eq!(rows, expected);
    assert_eq!(ids, vec![u1.clone(), reply.clone()]);

    // A client resuming from before the edit gets the sync in its replay, and ends up
    // with the state everyone else has.
    let mut late = app.sse(&conv, Some(resume_from)).await;
    let replay = late.events_until(ends(&reply)).await;
    let sync_at = replay
        .iter()
        .position(|e| e.kind() == "sync")
        .expect("the sync");
    let (after_sync, _) = history(replay[sync_at].data.as_ref().unwrap());
    assert_eq!(after_sync, vec![row("user", "/count 4", "complete")]);
    assert_eq!(joined_deltas(&replay[sync_at..], &reply), "1 2 3 4");
    assert_eq!(replay[0].id, Some(resume_from + 1), "no gap");

    drop((a, b, late));
    let app = restart(&mut app, &db).await;
    let (stored, stored_ids) = history(&app.get_conv(&conv).await);
    assert_eq!(stored, expected, "later messages gone from storage too");
    assert_eq!(stored_ids, ids);
}

#[tokio::test]
async fn editing_mid_reply_interrupts_it_first() {
    let app = slow_app(None).await;
    let (conv, mut a, mut b) = watched(&app).await;
    let streaming = app.post_ok(&conv, ENDLESS).await;
    let started = both_until(&mut a, &mut b, |e| e.kind() == "reply.delta").await;
    let user = started[0].field("message_id").to_string();
    let (status, body) = edit(&app, &conv, &user, &json!("/count 2")).await;
    assert_eq!(status, 202, "{body}");
    let reply = body["reply_id"].as_str().unwrap().to_string();
    let events = both_until(&mut a, &mut b, ends(&reply)).await;
    let interrupted = position(&events, "reply.interrupted", "reply_id", &streaming);
    let sync = events
        .iter()
        .position(|e| e.kind() == "sync")
        .expect("sync");
    assert!(interrupted < sync);
    assert!(
        events[interrupted + 1..]
            .iter()
            .all(|e| e.field("reply_id") != streaming),
        "nothing of the old reply after its end"
    );
    let (rows, _) = history(&wait_complete(&app, &conv).await);
    assert_eq!(
        rows,
        vec![
            row("user", "/count 2", "complete"),
            row("assistant", "1 2", "complete")
        ]
    );
}

#[tokio::test]
async fn queued_messages_survive_a_restart_and_get_their_replies() {
    let db = TempDb::new("queue-restart");
    let mut app = slow_app(Some(&db)).await;
    let conv = app.create().await;
    app.post_ok(&conv, ENDLESS).await;
    let (status, body) = post_if_busy(&app, &conv, "/count 2", "queue").await;
    assert_eq!(status, 202, "{body}");
    // Shutdown interrupts the reply in progress; the queued message is stored.
    let app = restart(&mut app, &db).await;
    let (rows, _) = history(&wait_complete(&app, &conv).await);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[1].2, "interrupted");
    assert_eq!(rows[2], row("user", "/count 2", "complete"));
    assert_eq!(rows[3], row("assistant", "1 2", "complete"));
}
