//! Caps one client cannot get around by spreading over conversations: replies running
//! (`--max-busy-conversations-per-address`, `--max-busy-conversations-per-owner`: a post
//! that would make one more conversation busy is 429 `too_many_replies`, nothing stored; the
//! place comes back when the reply completes, is interrupted, or the conversation is
//! deleted) and open streams per owner (`--max-streams-per-owner`). Another address or
//! owner is unaffected, and a token holder (no owner) is counted by address only.

use std::time::Duration;

use chatwire::config::Cidr;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::identity::Browser;

/// A reply that runs until it is stopped (20 ms a token).
const LONG: &str = "/count 100000";

/// Sends message `text` with `req`: the status and the JSON body (or null).
async fn send_text(req: reqwest::RequestBuilder, text: &str) -> (u16, Value) {
    let resp = req
        .json(&json!({ "text": text }))
        .send()
        .await
        .expect("post");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Posts `text` to `conv` with its token, as the client at `ip` behind the trusted proxy.
async fn post_from(app: &TestApp, conv: &Conv, ip: &str, text: &str) -> (u16, Value) {
    let req = app
        .conv_request(Method::POST, conv, "/messages")
        .header("x-forwarded-for", ip);
    send_text(req, text).await
}

async fn refused(app: &TestApp, conv: &Conv, ip: &str) {
    let (status, body) = post_from(app, conv, ip, "/count 3").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_replies", "{body}");
    let stored = app.get_conv(conv).await;
    assert_eq!(stored["messages"], json!([]), "nothing stored: {stored}");
}

/// Posts until one is accepted (a place comes back once the reply's end is seen).
async fn accepted_eventually(app: &TestApp, conv: &Conv, ip: &'static str, text: &'static str) {
    eventually_some("a place comes back", || async move {
        let (status, body) = post_from(app, conv, ip, text).await;
        assert!(status == 202 || status == 429, "{status} {body}");
        (status == 202).then_some(())
    })
    .await;
}

#[tokio::test]
async fn one_address_keeps_only_so_many_conversations_busy() {
    let app = spawn_app_with(|c| {
        c.offline_delay = Duration::from_millis(20);
        c.limits.max_busy_per_address = 2;
        c.network.trusted_proxies = vec![Cidr::parse("127.0.0.1/32").unwrap()];
    })
    .await;
    let (a, b, c, d, e) = (
        app.create().await,
        app.create().await,
        app.create().await,
        app.create().await,
        app.create().await,
    );
    const A: &str = "198.51.100.1";
    const B: &str = "198.51.100.2";
    assert_eq!(post_from(&app, &a, A, LONG).await.0, 202);
    assert_eq!(post_from(&app, &b, A, LONG).await.0, 202);
    refused(&app, &c, A).await;
    // Regenerating starts a reply too: counted the same way.
    let regenerate = app
        .conv_request(Method::POST, &c, "/regenerate")
        .header("x-forwarded-for", A)
        .send()
        .await
        .expect("regenerate");
    assert_eq!(regenerate.status(), 429);
    // A conversation already busy takes no new place: a barge-in is accepted at the cap.
    assert_eq!(post_from(&app, &a, A, LONG).await.0, 202);
    // Another address has its own share.
    assert_eq!(post_from(&app, &d, B, LONG).await.0, 202);

    // An interrupted reply gives its place back.
    app.interrupt(&a).await;
    let mut c_events = app.sse(&c, None).await;
    // Long enough (2 s) that the next post surely comes while it runs.
    accepted_eventually(&app, &c, A, "/count 100").await;
    refused(&app, &e, A).await;
    // So does a completed one.
    let end = c_events.reply_end().await;
    assert_eq!(end.kind(), "reply.completed", "{end:?}");
    accepted_eventually(&app, &e, A, LONG).await;

    for conv in [&b, &d, &e] {
        app.interrupt(conv).await;
    }
    app.assert_healthy().await;
}

/// `browser` posts `text` to `conv` with its session cookie.
async fn browser_post(browser: &Browser<'_>, conv: &Conv, text: &str) -> (u16, Value) {
    let path = format!("/api/conversations/{}/messages", conv.id);
    send_text(browser.request(Method::POST, &path), text).await
}

#[tokio::test]
async fn one_owner_keeps_only_so_many_conversations_busy() {
    let app = spawn_app_with(|c| {
        c.offline_delay = Duration::from_millis(20);
        c.limits.max_busy_per_address = 0;
        c.limits.max_busy_per_owner = 1;
    })
    .await;
    let (mut alice, bob, [p, q, s], r) = two_owners(&app).await;
    assert_eq!(browser_post(&alice, &p, LONG).await.0, 202);
    let (status, body) = browser_post(&alice, &q, "/count 3").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_replies")),
        "{body}"
    );
    assert_eq!(
        app.get_conv(&q).await["messages"],
        json!([]),
        "nothing stored"
    );
    // Another owner, from the same address, is unaffected.
    assert_eq!(browser_post(&bob, &r, LONG).await.0, 202);
    // The conversation's token carries no owner: only the (unlimited) address cap counts.
    assert_eq!(app.post(&s, LONG).await.0, 202);

    // A deleted conversation gives its place back.
    let (status, _) = alice
        .call(
            Method::DELETE,
            &format!("/api/conversations/{}", p.id),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (alice, q) = (&alice, &q);
    eventually_some("alice's place comes back", || async move {
        let (status, body) = browser_post(alice, q, LONG).await;
        assert!(status == 202 || status == 429, "{status} {body}");
        (status == 202).then_some(())
    })
    .await;
    for conv in [q, &r, &s] {
        app.interrupt(conv).await;
    }
    app.assert_healthy().await;
}

async fn open_status(browser: &Browser<'_>, conv: &Conv) -> (u16, reqwest::Response) {
    let resp = browser.events(conv).await;
    (resp.status().as_u16(), resp)
}

/// Two owners on one address: alice with three conversations, bob with one.
async fn two_owners(app: &TestApp) -> (Browser<'_>, Browser<'_>, [Conv; 3], Conv) {
    let mut alice = Browser::new(app);
    let mut bob = Browser::new(app);
    let convs = [
        alice.create().await,
        alice.create().await,
        alice.create().await,
    ];
    let bobs = bob.create().await;
    (alice, bob, convs, bobs)
}

#[tokio::test]
async fn one_owner_holds_only_so_many_streams() {
    let app = spawn_app_with(|c| c.network.max_streams_per_owner = 2).await;
    let (alice, bob, [x, y, z], w) = two_owners(&app).await;
    let (first, _first) = open_status(&alice, &x).await;
    let (second, _second) = open_status(&alice, &y).await;
    assert_eq!((first, second), (200, 200));
    let (third, resp) = open_status(&alice, &z).await;
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(third, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    // Another owner on the same address, and a token holder (no owner), are unaffected.
    let (bobs, _bobs) = open_status(&bob, &w).await;
    assert_eq!(bobs, 200);
    let _token = app.sse(&z, None).await;
    drop(_first);
    eventually_some("a place again once a stream closed", || async {
        let (status, resp) = open_status(&alice, &z).await;
        (status == 200).then_some(resp)
    })
    .await;
    app.assert_healthy().await;
}
