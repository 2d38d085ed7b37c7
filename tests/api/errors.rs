//! Every malformed or unauthorised request gets a JSON error with a fitting status, and
//! the server keeps answering normally afterwards.

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
