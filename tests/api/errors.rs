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

impl Case {
    /// A request expected to be refused with `status` and the error `code`; no credential,
    /// no body and no extra header unless added.
    fn new(
        name: &'static str,
        method: Method,
        path: impl Into<String>,
        status: u16,
        code: &'static str,
    ) -> Case {
        Case {
            name,
            method,
            path: path.into(),
            token: None,
            body: None,
            status,
            code,
            headers: Vec::new(),
        }
    }

    fn token(mut self, token: &str) -> Case {
        self.token = Some(token.to_string());
        self
    }

    fn body(mut self, body: &[u8]) -> Case {
        self.body = Some(body.to_vec());
        self
    }

    fn json(mut self, body: Value) -> Case {
        self.body = Some(serde_json::to_vec(&body).unwrap());
        self
    }

    fn headers(mut self, headers: Vec<(&'static str, String)>) -> Case {
        self.headers = headers;
        self
    }
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
    let cookie = format!("cw_{}={}", conv.id, conv.token);
    let foreign = |cookie: &str| {
        vec![
            ("cookie", cookie.to_string()),
            ("origin", "https://evil.example".to_string()),
        ]
    };
    let cases = vec![
        Case::new("bad JSON", Method::POST, &msgs, 400, "bad_request")
            .token(&conv.token)
            .body(b"{\"text\":"),
        Case::new("missing text", Method::POST, &msgs, 400, "bad_request")
            .token(&conv.token)
            .json(serde_json::json!({})),
        Case::new(
            "text not a string",
            Method::POST,
            &msgs,
            400,
            "invalid_text",
        )
        .token(&conv.token)
        .json(serde_json::json!({"text": 5})),
        Case::new("empty text", Method::POST, &msgs, 400, "invalid_text")
            .token(&conv.token)
            .json(serde_json::json!({"text": ""})),
        Case::new("blank text", Method::POST, &msgs, 400, "invalid_text")
            .token(&conv.token)
            .json(serde_json::json!({"text": " \n\t "})),
        Case::new("oversize text", Method::POST, &msgs, 413, "too_large")
            .token(&conv.token)
            .json(serde_json::json!({"text": "x".repeat(1001)})),
        Case::new("oversize body", Method::POST, &msgs, 413, "too_large")
            .token(&conv.token)
            .json(serde_json::json!({"text": "x", "pad": "y".repeat(9000)})),
        Case::new("invalid UTF-8", Method::POST, &msgs, 400, "bad_request")
            .token(&conv.token)
            .body(b"{\"text\":\"\xff\xfe\"}"),
        Case::new("no credential", Method::POST, &msgs, 401, "unauthorized")
            .json(serde_json::json!({"text": "hi"})),
        Case::new("wrong token", Method::POST, &msgs, 404, "not_found")
            .token("nope")
            .json(serde_json::json!({"text": "hi"})),
        Case::new(
            "another conversation's token",
            Method::GET,
            format!("/api/conversations/{}", conv.id),
            404,
            "not_found",
        )
        .token(&other.token),
        Case::new(
            "unknown conversation",
            Method::GET,
            "/api/conversations/AAAAAAAAAAAAAAAAAAAAAA",
            404,
            "not_found",
        )
        .token(&conv.token),
        Case::new(
            "junk id",
            Method::GET,
            "/api/conversations/..%2Fetc",
            404,
            "not_found",
        )
        .token(&conv.token),
        Case::new(
            "unknown provider",
            Method::POST,
            "/api/conversations",
            400,
            "bad_request",
        )
        .json(serde_json::json!({"provider": "nope"})),
        Case::new(
            "unknown field",
            Method::POST,
            "/api/conversations",
            400,
            "bad_request",
        )
        .json(serde_json::json!({"colour": "red"})),
        Case::new(
            "wrong method",
            Method::DELETE,
            "/api/conversations",
            405,
            "method_not_allowed",
        ),
        Case::new(
            "unknown route",
            Method::GET,
            "/api/nothing",
            404,
            "not_found",
        ),
        Case::new(
            "SSE without credential",
            Method::GET,
            format!("/api/conversations/{}/events", conv.id),
            401,
            "unauthorized",
        ),
        Case::new(
            "interrupt with wrong token",
            Method::POST,
            format!("/api/conversations/{}/interrupt", conv.id),
            404,
            "not_found",
        )
        .token(&other.token),
        Case::new(
            "cookie with a foreign Origin posting",
            Method::POST,
            &msgs,
            403,
            "forbidden_origin",
        )
        .json(serde_json::json!({"text": "cross-site"}))
        .headers(foreign(&cookie)),
        Case::new(
            "cookie with a foreign Origin interrupting",
            Method::POST,
            format!("/api/conversations/{}/interrupt", conv.id),
            403,
            "forbidden_origin",
        )
        .headers(foreign(&cookie)),
        Case::new(
            "cookie with a look-alike Origin",
            Method::POST,
            &msgs,
            403,
            "forbidden_origin",
        )
        .json(serde_json::json!({"text": "cross-site"}))
        .headers(vec![
            ("cookie", cookie.clone()),
            ("origin", format!("http://{}.evil.example", app.addr)),
        ]),
        Case::new(
            "another conversation's cookie",
            Method::GET,
            format!("/api/conversations/{}", conv.id),
            404,
            "not_found",
        )
        .headers(vec![("cookie", format!("cw_{}={}", conv.id, other.token))]),
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
    let health = app.get("/healthz").await;
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
    let list = app.get_json("/api/providers").await;
    assert_eq!(
        list,
        serde_json::json!([{"name": "offline", "kind": "offline", "default": true}])
    );
}

#[tokio::test]
async fn interrupt_with_nothing_running_is_a_no_op() {
    let app = spawn_app().await;
    let conv = app.create().await;
    let (status, body) = app.interrupt_raw(&conv).await;
    assert_eq!(status, 202);
    assert_eq!(body, serde_json::json!({"reply_id": null}));
}
