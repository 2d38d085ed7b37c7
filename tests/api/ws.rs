//! The WebSocket channel: typing fan-out and expiry, bot state, interrupting mid-reply (over
//! the socket and over HTTP), refusing foreign origins, answering bad frames, dropping dead
//! peers and closing sockets at shutdown. Real server, real WebSocket clients.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;
use crate::ws_client::*;

fn typing(pid: &str, active: bool) -> Value {
    json!({"type": "typing", "participant_id": pid, "active": active})
}

fn bot_states(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .filter(|f| f["type"] == "bot")
        .map(|f| f["state"].as_str().unwrap_or(""))
        .collect()
}

/// A new conversation with two sockets on it, both past their `hello`, and their
/// participant ids.
async fn two_sockets(app: &TestApp) -> (Conv, WsClient, String, WsClient, String) {
    let conv = app.create().await;
    let mut a = app.ws(&conv).await;
    let mut b = app.ws(&conv).await;
    let pa = a.hello().await;
    let pb = b.hello().await;
    (conv, a, pa, b, pb)
}

#[tokio::test]
async fn typing_reaches_the_others_and_ends_on_close() {
    let app = spawn_app().await;
    let conv = app.create().await;
    let mut a = app.ws(&conv).await;
    let mut b = app.ws_browser(&conv).await;
    let pa = a.hello().await;
    let pb = b.hello().await;
    assert_ne!(pa, pb, "each socket is its own participant");

    a.typing(true).await;
    assert_eq!(b.next_json().await, typing(&pa, true));
    a.expect_quiet(Duration::from_millis(300)).await;

    // A newcomer learns at once who is typing.
    let mut c = app.ws(&conv).await;
    c.hello().await;
    assert_eq!(c.next_json().await, typing(&pa, true));

    // Closing the socket ends it, for everyone, well before the 5 s expiry.
    let closed = Instant::now();
    a.close().await;
    assert_eq!(b.next_json().await, typing(&pa, false));
    assert_eq!(c.next_json().await, typing(&pa, false));
    assert!(closed.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn typing_ends_after_5s_of_silence() {
    let app = spawn_app().await;
    let conv = app.create().await;
    app.get_conv(&conv).await; // the actor is up; nothing below touches storage or sockets
    let state = &app.server.as_ref().unwrap().state;
    let room = state
        .conversations
        .open(
            &conv.id,
            &chatwire::conversation::Caller::Token(conv.token.clone()),
        )
        .await
        .expect("open");
    let mut presence = room.join().await.expect("join").live;
    // Paused time: the actor's expiry timer is the next one due, so the clock jumps to it.
    tokio::time::pause();
    let who: std::sync::Arc<str> = "p_paused".into();
    let started = Instant::now();
    room.typing(who.clone(), true);
    let frame = |f: chatwire::conversation::PresenceFrame| {
        serde_json::from_str::<Value>(&f.json).expect("JSON")
    };
    let first = tokio::time::timeout(Duration::from_secs(1), presence.recv()).await;
    assert_eq!(frame(first.unwrap().unwrap()), typing(&who, true));
    // Silence: the actor ends it 5 s later, not sooner.
    let ended = tokio::time::timeout(Duration::from_secs(10), presence.recv()).await;
    assert_eq!(frame(ended.unwrap().unwrap()), typing(&who, false));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_millis(5100),
        "typing ended after {waited:?}"
    );
}

#[tokio::test]
async fn a_typing_flood_is_coalesced_and_its_last_word_wins() {
    let app = spawn_app().await;
    let (_, mut a, pa, mut b, _) = two_sockets(&app).await;
    for i in 0..200 {
        a.typing(i % 2 == 0).await;
    }
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(1);
    while let Got::Json(v) = b.next_within(until - Instant::now()).await {
        seen.push(v);
    }
    assert!(
        !seen.is_empty() && seen.len() <= 4,
        "200 reports became {seen:?}"
    );
    assert_eq!(seen.last(), Some(&typing(&pa, false)));
}

/// Streams `/count 5000`, interrupts it after a few words (over the socket or over HTTP) and
/// checks what every participant, the SSE stream and the history show.
async fn interrupt_mid_reply(over_ws: bool) {
    let app = spawn_app_with(|c| c.offline_delay = Duration::from_millis(2)).await;
    let conv = app.create().await;
    let mut sse = app.sse(&conv, None).await;
    let mut a = app.ws(&conv).await;
    let mut b = app.ws_browser(&conv).await;
    a.hello().await;
    b.hello().await;

    let reply = app.post_ok(&conv, "/count 5000").await;
    let mut seen = sse
        .events_until(|e| e.kind() == "reply.delta" && e.field("text").trim() == "20")
        .await;
    if over_ws {
        a.send_json(json!({"type": "interrupt"})).await;
    } else {
        let (status, body) = app.interrupt_raw(&conv).await;
        assert_eq!(status, 202);
        assert_eq!(body["reply_id"], reply.as_str());
    }

    // Every participant hears it; the bot went thinking -> streaming -> idle.
    for ws in [&mut a, &mut b] {
        let mut frames = ws.until(|f| f["type"] == "interrupted").await;
        assert_eq!(frames.last().unwrap()["reply_id"], reply.as_str());
        frames.push(ws.next_json().await);
        assert_eq!(bot_states(&frames), ["thinking", "streaming", "idle"]);
    }

    seen.extend(sse.events_until(is_reply_end).await);
    let last = seen.last().unwrap();
    assert_eq!(last.kind(), "reply.interrupted");
    assert_eq!(last.field("reply_id"), reply);
    let delivered = joined_deltas(&seen, &reply);
    assert_eq!(last.field("text"), delivered, "exactly the delivered text");
    assert!(delivered.starts_with(&count_text(20)));
    assert!(delivered.len() < count_text(5000).len());
    let after = sse.events_for(Duration::from_millis(300)).await;
    assert!(
        after.iter().all(|e| e.field("reply_id") != reply),
        "nothing of the reply after its last event: {after:?}"
    );

    let stored = app.get_conv(&conv).await;
    assert_eq!(stored["messages"][1]["id"], reply.as_str());
    assert_eq!(stored["messages"][1]["status"], "interrupted");
    assert_eq!(stored["messages"][1]["text"], delivered.as_str());
}

#[tokio::test]
async fn interrupt_over_the_websocket_stops_the_reply_for_everyone() {
    interrupt_mid_reply(true).await;
}

#[tokio::test]
async fn interrupt_over_http_does_the_same() {
    interrupt_mid_reply(false).await;
}

#[tokio::test]
async fn interrupt_with_nothing_running_is_a_harmless_no_op() {
    let app = spawn_app().await;
    let (conv, mut a, _, mut b, pb) = two_sockets(&app).await;

    // Before any reply, and after one has completed.
    for round in 0..2 {
        if round == 1 {
            let mut sse = app.sse(&conv, None).await;
            app.post_ok(&conv, "/count 3").await;
            sse.events_until(is_reply_end).await;
            a.until(|f| f == &json!({"type": "bot", "state": "idle"}))
                .await;
            b.until(|f| f == &json!({"type": "bot", "state": "idle"}))
                .await;
        }
        a.send_json(json!({"type": "interrupt"})).await;
        assert_eq!(
            app.interrupt_raw(&conv).await,
            (202, json!({"reply_id": null}))
        );
        a.expect_quiet(Duration::from_millis(300)).await;
        b.expect_quiet(Duration::from_millis(10)).await;
    }
    let stored = app.get_conv(&conv).await;
    assert_eq!(stored["messages"][1]["status"], "complete");

    // The socket is fine.
    b.typing(true).await;
    assert_eq!(a.next_json().await, typing(&pb, true));
}

#[tokio::test]
async fn barge_in_announces_the_interrupted_reply() {
    let app = spawn_app_with(|c| c.offline_delay = Duration::from_millis(2)).await;
    let conv = app.create().await;
    let mut a = app.ws(&conv).await;
    a.hello().await;
    let first = app.post_ok(&conv, "/count 5000").await;
    a.until(|f| f["state"] == "streaming").await;
    let second = app.post_ok(&conv, "/count 3").await;
    let frames = a.until(|f| f["type"] == "interrupted").await;
    assert_eq!(frames.last().unwrap()["reply_id"], first.as_str());
    // The old reply ends (idle), then the new one thinks, streams and completes.
    let is_idle = |f: &Value| f == &json!({"type": "bot", "state": "idle"});
    assert_eq!(a.until(is_idle).await.len(), 1);
    assert_eq!(
        bot_states(&a.until(is_idle).await),
        ["thinking", "streaming", "idle"]
    );
    let stored = app.get_conv(&conv).await;
    assert_eq!(stored["messages"][3]["id"], second.as_str());
    assert_eq!(stored["messages"][1]["status"], "interrupted");
}

#[tokio::test]
async fn upgrades_are_checked_like_every_conversation_route() {
    let app = spawn_app_with(|c| c.allowed_origins = vec!["https://chat.example.com".into()]).await;
    let conv = app.create().await;
    let other = app.create().await;

    let with_origin = |cred: Cred<'_>, origin: &str| {
        let mut req = app.ws_request(&conv.id, cred);
        req.headers_mut()
            .insert("origin", origin.parse().expect("header"));
        req
    };
    // A foreign page, even one holding the cookie or a token, is refused.
    for req in [
        with_origin(Cred::Cookie(&conv), "http://evil.example"),
        with_origin(Cred::Bearer(&conv), "https://evil.example"),
        with_origin(Cred::Cookie(&conv), "null"),
    ] {
        assert_eq!(app.ws_refused(req).await, 403);
    }
    // The server's own origin (the helper sets it) and a configured one are fine.
    app.ws_browser(&conv).await.hello().await;
    app.ws_connect(with_origin(Cred::Cookie(&conv), "https://chat.example.com"))
        .await
        .expect("allowed origin")
        .hello()
        .await;

    assert_eq!(
        app.ws_refused(app.ws_request(&conv.id, Cred::None)).await,
        401
    );
    let wrong = Conv {
        id: conv.id.clone(),
        token: other.token.clone(),
    };
    assert_eq!(
        app.ws_refused(app.ws_request(&conv.id, Cred::Bearer(&wrong)))
            .await,
        404
    );
    let unknown = Conv {
        id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        token: conv.token.clone(),
    };
    assert_eq!(
        app.ws_refused(app.ws_request(&unknown.id, Cred::Bearer(&unknown)))
            .await,
        404
    );

    // A plain GET is a JSON error, not a dropped connection.
    let resp = app
        .conv_request(reqwest::Method::GET, &conv, "/ws")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "bad_request");
}

#[tokio::test]
async fn sockets_take_subscriber_places_and_give_them_back() {
    let app = spawn_app_with(|c| c.limits.max_subscribers = 2).await;
    let conv = app.create().await;
    let _sse = app.sse(&conv, None).await;
    let mut a = app.ws(&conv).await;
    a.hello().await;
    let full = app.ws_request(&conv.id, Cred::Bearer(&conv));
    assert_eq!(app.ws_refused(full).await, 429);
    a.close().await;
    // The place comes back once the session has ended.
    let deadline = Instant::now() + WAIT;
    loop {
        match app
            .ws_connect(app.ws_request(&conv.id, Cred::Bearer(&conv)))
            .await
        {
            Ok(mut b) => {
                b.hello().await;
                break;
            }
            Err(_) => {
                assert!(Instant::now() < deadline, "the place never came back");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_socket_keeps_working() {
    let app = spawn_app().await;
    let (_, mut a, pa, mut b, _) = two_sockets(&app).await;

    let cases = [
        (Message::text("x".repeat(2000)), "too_large"),
        (Message::text("{\"type\":"), "bad_json"),
        (Message::text("hello"), "bad_json"),
        (Message::text(r#"{"type":"dance"}"#), "unknown_type"),
        (Message::text(r#"{"type":"typing"}"#), "invalid_frame"),
        (Message::binary(vec![1u8, 2, 3]), "binary_frame"),
    ];
    for (msg, code) in cases {
        a.send(msg).await;
        let e = a.next_json().await;
        assert_eq!(e["type"], "error", "{e}");
        assert_eq!(e["code"], code, "{e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    b.expect_quiet(Duration::from_millis(50)).await;
    a.typing(true).await;
    assert_eq!(b.next_json().await, typing(&pa, true));
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // Beyond the transport limit the socket is closed with 1009 (or reset while the rest of
    // the frame is unread); the server and the other participant carry on.
    a.send(Message::text("x".repeat(20_000))).await;
    match a.next_within(WAIT).await {
        Got::Close(Some(c)) => assert_eq!(u16::from(c.code), 1009),
        Got::End => {}
        other => panic!("expected the socket closed, got {other:?}"),
    }
    assert_eq!(b.next_json().await, typing(&pa, false));
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_client_that_keeps_sending_junk_is_closed_with_policy_violation() {
    let app = spawn_app().await;
    let conv = app.create().await;
    let mut a = app.ws(&conv).await;
    a.hello().await;
    for _ in 0..40 {
        a.send(Message::text("junk")).await;
    }
    assert_eq!(a.close_code(WAIT).await, 1008);
    // Others are unaffected.
    app.ws(&conv).await.hello().await;
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let ping = Duration::from_millis(200);
    let app = spawn_app_with(|c| c.limits.ws_ping = ping).await;
    let conv = app.create().await;

    let started = Instant::now();
    let dead = DeadPeer::connect(&app, &conv).await;
    let bytes = dead.read_to_end(WAIT).await;
    let took = started.elapsed();
    let frames = parse_server_frames(&bytes);
    let (op, payload) = frames.last().expect("frames");
    assert_eq!(*op, 0x8, "ends with a Close frame: {frames:?}");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1001);
    assert!(frames.iter().any(|(op, _)| *op == 0x9), "pinged first");
    assert!(
        took >= ping * 2 && took < ping * 10,
        "dropped after {took:?}"
    );

    // A live client answers pings (the library does, as long as it reads) and stays.
    let mut live = app.ws(&conv).await;
    let pid = live.hello().await;
    live.expect_quiet(ping * 6).await;
    live.typing(true).await;
    let mut other = app.ws(&conv).await;
    other.hello().await;
    assert_eq!(other.next_json().await, typing(&pid, true));
}

#[tokio::test]
async fn shutdown_tells_sockets_the_last_news_then_closes_them() {
    let mut app = spawn_app_with(|c| c.offline_delay = Duration::from_millis(2)).await;
    let conv = app.create().await;
    let mut a = app.ws(&conv).await;
    a.hello().await;
    let reply = app.post_ok(&conv, "/count 5000").await;
    a.until(|f| f["state"] == "streaming").await;

    let server = app.server.take().expect("server");
    let started = Instant::now();
    let stopping = tokio::spawn(server.shutdown());
    let frames = a.until(|f| f["type"] == "interrupted").await;
    assert_eq!(frames.last().unwrap()["reply_id"], reply.as_str());
    assert_eq!(a.next_json().await, json!({"type": "bot", "state": "idle"}));
    assert_eq!(a.close_code(WAIT).await, 1001, "going away");
    assert!(started.elapsed() < Duration::from_secs(3));
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown within the bound")
        .expect("shutdown task");
}
