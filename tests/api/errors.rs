//! Every malformed or unauthorised request gets a JSON error with a fitting status, and
//! the server keeps answering normally afterwards.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    token: Option<String>,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
    /// Extra request headers (a cookie, an Origin).
    headers: Vec<(&'static str, String)>,
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let app = spawn_app_with(|c| {
        c.limits.max_message_bytes = 1000;
        c.limits.max_body_bytes = 8000;
    })
    .await;
    let conv = app.create().await;
    let other = app.create().await;
    let msgs = format!("/api/conversations/{}/messages", conv.id);
    let tok = Some(conv.token.clone());
    let cookie = format!("cw_{}={}", conv.id, conv.token);
    let foreign = |cookie: &str| {
        vec![
            ("cookie", cookie.to_string()),
            ("origin", "https://evil.example".to_string()),
        ]
    };
    let json = |v: Value| Some(serde_json::to_vec(&v).unwrap());
    let cases = vec![
        Case {
            name: "bad JSON",
            method: Method::POST,
            path: msgs.clone(),
            token: tok.clone(),
            body: Some(b"{\"text\":".to_vec()),
            status: 400,
            headers: vec![],
            code: "bad_request",
        },
        Case {
            name: "missing text",
            method: Method::POST,
            path: msgs.clone(),
            token: tok.clone(),
            body: json(serde_json::json!({})),
            status: 400,
            headers: vec![],
            code: "bad_request",
        },
        Case {
            name: "text not a string",
            method: Method::POST,
            path: msgs.clone(),
            token: tok.clone(),
            body: json(serde_json::json!({"text": 5})),
            status: 400,
            headers: vec![],
            code: "invalid_text",
        },
        Case {
            name: "empty text",
            method: Method::POST,
            path: msgs.clone(),
            token: tok.clone(),
            body: json(serde_json::json!({"text": ""})),
            status: 400,
            headers: vec![],
            code: "invalid_text",
        },
        Case {
            name: "blank text",
            method: Method::POST,
            path: msgs.clone(),
            token: tok.clone(),
            body: json(serde_json::json!({"text": " \n\t "})),
            status: 400,
            headers: vec![],
            code: "invalid_text",
        },
        Case {
            name: "oversize text",
            method: Method::POST,
            path: msgs.clone(),
            token: tok.clone(),
            body: json(serde_json::json!({"text": "x".repeat(1001)})),
            status: 413,
            headers: vec![],
            code: "too_large",
        },
        Case {
            name: "oversize body",
            method: Method::POST,
            path: msgs.clone(),
            token: tok.clone(),
            body: json(serde_json::json!({"text": "x", "pad": "y".repeat(9000)})),
            status: 413,
            headers: vec![],
            code: "too_large",
        },
        Case {
            name: "invalid UTF-8",
            method: Method::POST,
            path: msgs.clone(),
            token: tok.clone(),
            body: Some(b"{\"text\":\"\xff\xfe\"}".to_vec()),
            status: 400,
            headers: vec![],
            code: "bad_request",
        },
        Case {
            name: "no credential",
            method: Method::POST,
            path: msgs.clone(),
            token: None,
            body: json(serde_json::json!({"text": "hi"})),
            status: 401,
            headers: vec![],
            code: "unauthorized",
        },
        Case {
            name: "wrong token",
            method: Method::POST,
            path: msgs.clone(),
            token: Some("nope".into()),
            body: json(serde_json::json!({"text": "hi"})),
            status: 404,
            headers: vec![],
            code: "not_found",
        },
        Case {
            name: "another conversation's token",
            method: Method::GET,
            path: format!("/api/conversations/{}", conv.id),
            token: Some(other.token.clone()),
            body: None,
            status: 404,
            headers: vec![],
            code: "not_found",
        },
        Case {
            name: "unknown conversation",
            method: Method::GET,
            path: "/api/conversations/AAAAAAAAAAAAAAAAAAAAAA".into(),
            token: tok.clone(),
            body: None,
            status: 404,
            headers: vec![],
            code: "not_found",
        },
        Case {
            name: "junk id",
            method: Method::GET,
            path: "/api/conversations/..%2Fetc".into(),
            token: tok.clone(),
            body: None,
            status: 404,
            headers: vec![],
            code: "not_found",
        },
        Case {
            name: "unknown provider",
            method: Method::POST,
            path: "/api/conversations".into(),
            token: None,
            body: json(serde_json::json!({"provider": "nope"})),
            status: 400,
            headers: vec![],
            code: "bad_request",
        },
        Case {
            name: "unknown field",
            method: Method::POST,
            path: "/api/conversations".into(),
            token: None,
            body: json(serde_json::json!({"colour": "red"})),
            status: 400,
            headers: vec![],
            code: "bad_request",
        },
        Case {
            name: "wrong method",
            method: Method::DELETE,
            path: "/api/conversations".into(),
            token: None,
            body: None,
            status: 405,
            headers: vec![],
            code: "method_not_allowed",
        },
        Case {
            name: "unknown route",
            method: Method::GET,
            path: "/api/nothing".into(),
            token: None,
            body: None,
            status: 404,
            headers: vec![],
            code: "not_found",
        },
        Case {
            name: "SSE without credential",
            method: Method::GET,
            path: format!("/api/conversations/{}/events", conv.id),
            token: None,
            body: None,
            status: 401,
            headers: vec![],
            code: "unauthorized",
        },
        Case {
            name: "interrupt with wrong token",
            method: Method::POST,
            path: format!("/api/conversations/{}/interrupt", conv.id),
            token: Some(other.token.clone()),
            body: None,
            status: 404,
            headers: vec![],
            code: "not_found",
        },
        Case {
            name: "cookie with a foreign Origin posting",
            method: Method::POST,
            path: msgs.clone(),
            token: None,
            body: json(serde_json::json!({"text": "cross-site"})),
            headers: foreign(&cookie),
            status: 403,
            code: "forbidden_origin",
        },
        Case {
            name: "cookie with a foreign Origin interrupting",
            method: Method::POST,
            path: format!("/api/conversations/{}/interrupt", conv.id),
            token: None,
            body: None,
            headers: foreign(&cookie),
            status: 403,
            code: "forbidden_origin",
        },
        Case {
            name: "cookie with a look-alike Origin",
            method: Method::POST,
            path: msgs.clone(),
            token: None,
            body: json(serde_json::json!({"text": "cross-site"})),
            headers: vec![
                ("cookie", cookie.clone()),
                ("origin", format!("http://{}.evil.example", app.addr)),
            ],
            status: 403,
            code: "forbidden_origin",
        },
        Case {
            name: "another conversation's cookie",
            method: Method::GET,
            path: format!("/api/conversations/{}", conv.id),
            token: None,
            body: None,
            headers: vec![("cookie", format!("cw_{}={}", conv.id, other.token))],
            status: 404,
            code: "not_found",
        },
    ];
    for case in cases {
        let mut req = app.http.request(case.method.clone(), app.url(&case.path));
        if let Some(t) = &case.token {
            req = req.bearer_auth(t);
        }
        for (name, value) in &case.headers {
            req = req.header(*name, value);
        }
        if let Some(b) = case.body.clone() {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(resp.status().as_u16(), case.status, "{}", case.name);
        let body: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", case.name));
        assert_eq!(body["error"]["code"], case.code, "{}: {body}", case.name);
        assert!(body["error"]["message"].is_string(), "{}", case.name);
    }
    // Nothing above changed the conversation, and the server still works.
    assert_eq!(
        app.get_conv(&conv).await["messages"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    app.post_ok(&conv, "still fine?").await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // The cookie from the server's own page (its own Origin) may post.
    let own = app
        .http
        .post(app.url(&msgs))
        .header("cookie", &cookie)
        .header("origin", format!("http://{}", app.addr))
        .json(&serde_json::json!({"text": "same-site"}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 202);
}

/// Checks a 429: JSON `rate_limited` and a whole-second `Retry-After` within `max` s.
async fn assert_limited(resp: reqwest::Response, max: u64) {
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=max).contains(&retry), "Retry-After {retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
}

#[tokio::test]
async fn a_flood_from_one_address_gets_429_then_the_server_answers_again() {
    // 30 a minute: a burst of 30, then one every 2 s.
    let app = spawn_app_with(|c| c.limits.requests_per_minute = 30).await;
    let mut limited = Vec::new();
    let mut ok = 0;
    for _ in 0..45 {
        let resp = app
            .http
            .get(app.url("/api/providers"))
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            ok += 1;
        } else {
            limited.push(resp);
        }
    }
    assert!((30..=31).contains(&ok), "{ok} allowed");
    assert!(!limited.is_empty());
    for resp in limited {
        assert_limited(resp, 2).await;
    }
    // Health probes are not limited.
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // Once the bucket has a token again, requests are served.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = app
        .http
        .get(app.url("/api/providers"))
        .send()
        .await
        .unwrap();
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
            .http
            .post(app.url(&format!("/api/conversations/{}/messages", conv.id)))
            .bearer_auth(&conv.token)
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
        .http
        .get(app.url(&format!("/api/conversations/{}/events", conv.id)))
        .bearer_auth(&conv.token)
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
    let registry = app.server.as_ref().unwrap().state.registry.clone();
    // Two conversations in use (an open stream each): no room for a third.
    let a = app.create().await;
    let b = app.create().await;
    let sse_a = app.sse(&a, None).await;
    let sse_b = app.sse(&b, None).await;
    let resp = app
        .http
        .post(app.url("/api/conversations"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
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
            .http
            .post(app.url("/api/conversations"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
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
async fn settles_at_most(registry: &chatwire::conversation::Registry, max: usize) {
    for _ in 0..200 {
        if registry.live_count() <= max {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} conversations in memory", registry.live_count());
}

#[tokio::test]
async fn providers_are_listed() {
    let app = spawn_app().await;
    let list: Value = app
        .http
        .get(app.url("/api/providers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list,
        serde_json::json!([{"name": "offline", "kind": "offline", "default": true}])
    );
}

#[tokio::test]
async fn interrupt_with_nothing_running_is_a_no_op() {
    let app = spawn_app().await;
    let conv = app.create().await;
    let resp = app
        .http
        .post(app.url(&format!("/api/conversations/{}/interrupt", conv.id)))
        .bearer_auth(&conv.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"reply_id": null}));
}
