//! Abuse at the request level, over real HTTP: a body that is not `application/json` or
//! not a JSON object, a foreign `Host` (DNS rebinding), `X-Forwarded-For` from a peer
//! that is not a trusted proxy, too many streams from one address, and an unsigned
//! webhook whose body never comes. After each the server still answers.

use std::time::Duration;

use chatwire::config::{Cidr, ProviderConfig};
use serde_json::Value;

use crate::helpers::*;
use crate::raw_http::{Raw, status};

async fn code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or("").into())
}

#[tokio::test]
async fn json_routes_want_a_json_object_sent_as_json() {
    let app = spawn_app().await;
    let conv = app.create().await;
    let post = |content_type: Option<&str>, body: &str| {
        let mut req = app
            .conv_request(reqwest::Method::POST, &conv, "/messages")
            .body(body.to_string());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    // What a plain HTML form sends, and no type at all: 415.
    for ct in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        None,
    ] {
        let resp = post(ct, r#"{"text":"hi"}"#).await.unwrap();
        assert_eq!(
            code(resp).await,
            (415, "unsupported_media_type".into()),
            "{ct:?}"
        );
    }
    // JSON, but not an object: serde would read `["hi"]` as the message `hi`.
    for body in [r#"["hi"]"#, r#""hi""#, "42", " [\"hi\", \"queue\"]"] {
        let resp = post(Some("application/json"), body).await.unwrap();
        assert_eq!(code(resp).await, (400, "bad_request".into()), "{body}");
    }
    let history = app.get_conv(&conv).await;
    assert_eq!(
        history["messages"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
    // The right thing still works (with a charset parameter too).
    let resp = post(Some("application/json; charset=utf-8"), r#"{"text":"hi"}"#)
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    app.assert_healthy().await;
}

#[tokio::test]
async fn a_foreign_host_is_misdirected() {
    let app = spawn_app_with(|c| c.network.allowed_hosts = vec!["chat.example.com".into()]).await;
    let ask = |host: &str| {
        format!("GET /api/providers HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };
    for (host, want) in [
        ("evil.example", 421),
        ("rebind.evil.example:3000", 421),
        ("localhost", 200),
        ("127.0.0.1", 200),
        ("chat.example.com", 200),
    ] {
        let mut raw = Raw::connect(app.addr).await;
        raw.send(&ask(host)).await;
        let answer = raw.response_within(WAIT).await;
        assert_eq!(status(&answer), want, "Host {host}: {answer}");
        if want == 421 {
            assert!(answer.contains("misdirected_request"), "{answer}");
        }
    }
    app.assert_healthy().await;
}

/// Three requests, each claiming another client in `X-Forwarded-For`; their statuses.
async fn three_claiming(app: &TestApp, clients: [&str; 3]) -> Vec<u16> {
    let mut statuses = Vec::new();
    for client in clients {
        let resp = app
            .http
            .get(app.url("/api/providers"))
            .header("x-forwarded-for", client)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    // Two requests a minute per client address.
    let untrusted = spawn_app_with(|c| c.limits.requests_per_minute = 2).await;
    let statuses =
        three_claiming(&untrusted, ["198.51.100.1", "198.51.100.2", "198.51.100.3"]).await;
    assert_eq!(
        statuses,
        [200, 200, 429],
        "an untrusted XFF is ignored: one bucket"
    );

    let behind_proxy = spawn_app_with(|c| {
        c.limits.requests_per_minute = 2;
        c.network.trusted_proxies = vec![Cidr::parse("127.0.0.1/32").unwrap()];
    })
    .await;
    let statuses = three_claiming(
        &behind_proxy,
        ["198.51.100.1", "198.51.100.2", "198.51.100.3"],
    )
    .await;
    assert_eq!(
        statuses,
        [200, 200, 200],
        "the proxy's clients each have a bucket"
    );
    // A client cannot escape by prepending its own entry: the proxy's is the last one.
    let statuses = three_claiming(
        &behind_proxy,
        [
            "6.6.6.1, 198.51.100.9",
            "6.6.6.2, 198.51.100.9",
            "6.6.6.3, 198.51.100.9",
        ],
    )
    .await;
    assert_eq!(
        statuses,
        [200, 200, 429],
        "keyed by the entry the proxy added"
    );
    untrusted.assert_healthy().await;
}

#[tokio::test]
async fn one_address_cannot_hold_more_streams_than_its_share() {
    let app = spawn_app_with(|c| c.network.max_streams_per_address = 2).await;
    let (a, b, c) = (app.create().await, app.create().await, app.create().await);
    let first = app.sse(&a, None).await;
    let _second = app.sse(&b, None).await;
    let third = app
        .conv_request(reqwest::Method::GET, &c, "/events")
        .send()
        .await
        .unwrap();
    assert_eq!(code(third).await, (429, "too_many_streams".into()));
    drop(first);
    eventually_some("a place again once a stream closed", || async {
        let resp = app
            .conv_request(reqwest::Method::GET, &c, "/events")
            .send()
            .await
            .unwrap();
        (resp.status() == 200).then_some(resp)
    })
    .await;
    app.assert_healthy().await;
}

#[tokio::test]
async fn an_unsigned_webhook_is_refused_before_its_body() {
    // A long header timeout: the answer cannot be the body timeout's.
    let app = spawn_app_with(|c| {
        c.network.header_timeout = Duration::from_secs(60);
        c.providers.push(ProviderConfig::simulated());
    })
    .await;
    for present in [
        "",
        "webhook-id: msg_1\r\n",
        "webhook-id: msg_1\r\nwebhook-timestamp: 1\r\n",
    ] {
        let mut raw = Raw::connect(app.addr).await;
        raw.send(&format!(
            "POST /webhooks/nlp HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json\r\nContent-Length: 500000\r\n{present}\r\n{{\"ty"
        ))
        .await;
        // The rest of the body is held back; the answer comes anyway.
        let answer = raw.response_within(WAIT).await;
        assert_eq!(status(&answer), 401, "{present:?}: {answer}");
        assert!(answer.contains("invalid_signature"), "{answer}");
    }
    app.assert_healthy().await;
}
