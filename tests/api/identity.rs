//! Conversations that belong to someone (API.md "Identity"), through HTTP, SSE and
//! WebSocket: one session cookie per browser however many chats, the owner's list (newest
//! first, paginated), rename, delete (404 everywhere after; open streams and sockets end;
//! gone from storage), and two browsers that never see each other's conversations.
//! `Browser` is a cookie jar of one: it keeps the session cookie the server sets and sends
//! it back with the page's own `Origin`, as a browser would.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::helpers::*;
use crate::streaming::wait_complete;

/// One browser: its cookie jar (the session cookie, once set) and its origin.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookie: Option<String>,
    /// Every `Set-Cookie` it was ever sent.
    pub set_cookies: Vec<String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            cookie: None,
            set_cookies: Vec::new(),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .app
            .http
            .request(method, self.app.url(path))
            .header("origin", format!("http://{}", self.app.addr));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        req
    }

    /// Sends `req`, keeping any cookie it sets (a `Max-Age=0` one clears the jar).
    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let resp = req.send().await.expect("request");
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap().to_string();
            let pair = v.split(';').next().unwrap().trim().to_string();
            self.cookie = (!v.contains("Max-Age=0")).then_some(pair);
            self.set_cookies.push(v);
        }
        resp
    }

    /// Creates a conversation as the page does; its id and token.
    pub async fn create(&mut self) -> Conv {
        let req = self
            .request(Method::POST, "/api/conversations")
            .json(&json!({}));
        let resp = self.send(req).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        Conv {
            id: body["id"].as_str().unwrap().into(),
            token: body["token"].as_str().unwrap().into(),
        }
    }

    /// `method path` with the cookie: the status and the JSON body (or null).
    pub async fn call(&mut self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = self.send(req).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn list(&mut self, query: &str) -> (u16, Value) {
        self.call(Method::GET, &format!("/api/conversations{query}"), None)
            .await
    }

    /// The ids of this browser's conversations, in the list's order (first page of 100).
    pub async fn ids(&mut self) -> Vec<String> {
        let (status, body) = self.list("?limit=100").await;
        assert_eq!(status, 200, "{body}");
        ids_of(&body)
    }

    pub async fn post(&mut self, conv: &Conv, text: &str) -> u16 {
        let path = format!("/api/conversations/{}/messages", conv.id);
        self.call(Method::POST, &path, Some(json!({ "text": text })))
            .await
            .0
    }

    /// The event stream, opened with the cookie like an EventSource.
    pub async fn sse(&self, conv: &Conv) -> SseClient {
        let resp = self
            .request(
                Method::GET,
                &format!("/api/conversations/{}/events", conv.id),
            )
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .expect("sse");
        SseClient::from_response(resp)
    }

    /// A WebSocket request with the cookie and the page's `Origin`.
    pub fn ws_request(&self, conv_id: &str) -> tokio_tungstenite::tungstenite::http::Request<()> {
        let url = format!("ws://{}/api/conversations/{conv_id}/ws", self.app.addr);
        let mut req = url.into_client_request().unwrap();
        let h = req.headers_mut();
        if let Some(c) = &self.cookie {
            h.insert("cookie", HeaderValue::from_str(c).unwrap());
        }
        let origin = format!("http://{}", self.app.addr);
        h.insert("origin", HeaderValue::from_str(&origin).unwrap());
        req
    }
}

pub fn ids_of(list: &Value) -> Vec<String> {
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn one_session_cookie_however_many_chats_and_the_page_stores_nothing() {
    let app = spawn_app().await;
    // Opening the page stores nothing and sets no cookie.
    let page = app.get("/").await;
    assert_eq!(page.status(), 200, "`/` renders the empty chat");
    assert!(page.headers().get("set-cookie").is_none());
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("data-testid=\"composer\"")
    );

    let mut b = Browser::new(&app);
    let mut convs = Vec::new();
    for _ in 0..5 {
        convs.push(b.create().await);
    }
    assert_eq!(
        b.set_cookies.len(),
        1,
        "one cookie, set once: {:?}",
        b.set_cookies
    );
    let cookie = &b.set_cookies[0];
    assert!(cookie.starts_with("cw_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: not Secure");
    // Every chat is reachable with that one cookie: page, JSON, events.
    for c in &convs {
        let (status, _) = b
            .call(Method::GET, &format!("/api/conversations/{}", c.id), None)
            .await;
        assert_eq!(status, 200);
        let page = b
            .request(Method::GET, &format!("/c/{}", c.id))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
    }
    assert_eq!(b.post(&convs[0], "hello").await, 202);
    wait_complete(&app, &convs[0]).await;
    assert_eq!(b.set_cookies.len(), 1, "still one cookie");

    // The session stores only a hash: the cookie's value is nowhere in the database.
    let value = b.cookie.clone().unwrap();
    let value = value.split_once('=').unwrap().1;
    let store = &app.server.as_ref().unwrap().state.store;
    assert!(
        store
            .session_owner(value, i64::MAX / 2)
            .await
            .unwrap()
            .is_none()
    );

    // A page of a conversation needs its owner: a stranger gets 404.
    let stranger = app.get(&format!("/c/{}", convs[1].id)).await;
    assert_eq!(stranger.status(), 404);
}

#[tokio::test]
async fn the_list_is_the_owners_newest_first_with_titles_and_pages() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    assert_eq!(b.list("").await.0, 401, "no session yet");
    let mut convs = Vec::new();
    for _ in 0..5 {
        convs.push(b.create().await);
        // Distinct update times (milliseconds) make the order certain.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let newest_first: Vec<String> = convs.iter().rev().map(|c| c.id.clone()).collect();
    assert_eq!(b.ids().await, newest_first);
    let (_, body) = b.list("").await;
    let first = &body["conversations"][0];
    assert!(
        first["title"].is_null(),
        "no title before the first message"
    );
    for key in ["id", "provider", "created_at", "updated_at"] {
        assert!(first[key].is_string(), "{key} in {first}");
    }
    assert!(body["next_cursor"].is_null());

    // A message moves its conversation to the top; its text (trimmed, ≤ 80 chars) is the title.
    let long = format!("   {}   ", "é".repeat(100));
    assert_eq!(b.post(&convs[0], &long).await, 202);
    wait_complete(&app, &convs[0]).await;
    let (_, body) = b.list("?limit=1").await;
    assert_eq!(ids_of(&body), vec![convs[0].id.clone()]);
    assert_eq!(body["conversations"][0]["title"], "é".repeat(80));

    // A post with an Idempotency-Key (as the page sends) counts the same.
    let keyed = b
        .request(
            Method::POST,
            &format!("/api/conversations/{}/messages", convs[1].id),
        )
        .header("idempotency-key", "k-1")
        .json(&json!({"text": "keyed"}));
    assert_eq!(b.send(keyed).await.status(), 202);
    wait_complete(&app, &convs[1]).await;
    let (_, body) = b.list("?limit=1").await;
    assert_eq!(ids_of(&body), vec![convs[1].id.clone()]);
    assert_eq!(body["conversations"][0]["title"], "keyed");
    // Now: c1, c0, then the untouched ones newest first.
    let mut expected = vec![convs[1].id.clone(), convs[0].id.clone()];
    expected.extend(convs[2..].iter().rev().map(|c| c.id.clone()));

    // Pages of two, following the cursor, cover everything once.
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_string();
    loop {
        let (status, body) = b.list(&query).await;
        assert_eq!(status, 200, "{body}");
        let page = ids_of(&body);
        assert!(page.len() <= 2);
        seen.extend(page);
        match body["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);

    for bad in ["?limit=0", "?limit=101", "?limit=x", "?cursor=nonsense"] {
        assert_eq!(b.list(bad).await.0, 400, "{bad}");
    }
    // A conversation token is no owner: it cannot list.
    let listed = app
        .http
        .get(app.url("/api/conversations"))
        .bearer_auth(&convs[0].token)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 401);
}

#[tokio::test]
async fn rename_sets_the_title_within_bounds() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let c = b.create().await;
    let path = format!("/api/conversations/{}", c.id);
    let (status, s) = b
        .call(
            Method::PATCH,
            &path,
            Some(json!({"title": "  Trip plans  "})),
        )
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["id"], c.id.as_str());
    assert_eq!(s["title"], "Trip plans");
    assert_eq!(s["provider"], "offline");
    // The first message no longer names it.
    assert_eq!(b.post(&c, "first words").await, 202);
    wait_complete(&app, &c).await;
    let (_, list) = b.list("").await;
    assert_eq!(list["conversations"][0]["title"], "Trip plans");

    let ok = "x".repeat(200);
    assert_eq!(
        b.call(Method::PATCH, &path, Some(json!({"title": ok})))
            .await
            .0,
        200
    );
    for bad in [
        json!({"title": ""}),
        json!({"title": "   "}),
        json!({"title": "y".repeat(201)}),
        json!({"title": 3}),
        json!({}),
    ] {
        assert_eq!(
            b.call(Method::PATCH, &path, Some(bad.clone())).await.0,
            400,
            "{bad}"
        );
    }
    // The conversation's own token may rename it; a foreign page with the cookie may not.
    let by_token = app
        .conv_request(Method::PATCH, &c, "")
        .json(&json!({"title": "by token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), 200);
    // Another conversation's token reaches nothing of this one.
    let other = b.create().await;
    let with_other = Conv {
        id: c.id.clone(),
        token: other.token.clone(),
    };
    for method in [Method::PATCH, Method::DELETE] {
        let resp = app
            .conv_request(method.clone(), &with_other, "")
            .json(&json!({"title": "not yours"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            404,
            "{method} with another conversation's token"
        );
    }
    let foreign = app
        .http
        .patch(app.url(&path))
        .header("cookie", b.cookie.clone().unwrap())
        .header("origin", "https://evil.example")
        .json(&json!({"title": "pwned"}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
}

#[tokio::test]
async fn delete_removes_it_everywhere_and_ends_its_streams() {
    let app = spawn_app_with(|c| c.offline_delay = Duration::from_millis(20)).await;
    let mut b = Browser::new(&app);
    let keep = b.create().await;
    let c = b.create().await;
    let mut sse = b.sse(&c).await;
    let mut ws = app.ws_connect(b.ws_request(&c.id)).await.expect("ws opens");
    ws.hello().await;
    // A reply is streaming when the conversation is deleted.
    assert_eq!(b.post(&c, &count_text(200)).await, 202);
    let started = sse.next_event().await.unwrap();
    assert_eq!(started.kind(), "user.message");

    let path = format!("/api/conversations/{}", c.id);
    let (status, _) = b.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204);

    // Open streams end: the SSE stream reaches its end, the WebSocket closes.
    let (_events, _) = sse.rest().await;
    let code = ws.close_code(WAIT).await;
    assert!(code == 1000 || code == 1001, "closed with {code}");

    // Every route answers 404, with the cookie and with the token.
    for (method, suffix) in [
        (Method::GET, ""),
        (Method::PATCH, ""),
        (Method::DELETE, ""),
        (Method::POST, "/messages"),
        (Method::POST, "/interrupt"),
        (Method::POST, "/regenerate"),
        (Method::GET, "/events"),
    ] {
        let body = (method == Method::POST || method == Method::PATCH)
            .then(|| json!({"text": "hi", "title": "t"}));
        let (status, _) = b
            .call(method.clone(), &format!("{path}{suffix}"), body)
            .await;
        assert_eq!(status, 404, "{method} {suffix} with the cookie");
        let by_token = app
            .conv_request(method.clone(), &c, suffix)
            .json(&json!({"text": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(by_token.status(), 404, "{method} {suffix} with the token");
    }
    let page = b
        .request(Method::GET, &format!("/c/{}", c.id))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    let refused = app.ws_refused(b.ws_request(&c.id)).await;
    assert_eq!(refused, 404);
    assert_eq!(b.ids().await, vec![keep.id.clone()]);
    // Gone from storage, messages and all.
    let store = &app.server.as_ref().unwrap().state.store;
    assert!(store.load_conversation(&c.id).await.unwrap().is_none());
    assert!(store.access(&c.id).await.unwrap().is_none());
}

#[tokio::test]
async fn two_browsers_never_see_each_others_conversations() {
    let app = spawn_app().await;
    let mut alice = Browser::new(&app);
    let mut bob = Browser::new(&app);
    let a = alice.create().await;
    let b_conv = bob.create().await;
    assert_ne!(alice.cookie, bob.cookie);
    assert_eq!(alice.ids().await, vec![a.id.clone()]);
    assert_eq!(bob.ids().await, vec![b_conv.id.clone()]);

    // Bob's session on Alice's conversation: exactly like an unknown id, on every route.
    let unknown = "AAAAAAAAAAAAAAAAAAAAAA";
    for id in [a.id.as_str(), unknown] {
        let path = format!("/api/conversations/{id}");
        for (method, suffix, body) in [
            (Method::GET, "", None),
            (Method::PATCH, "", Some(json!({"title": "mine now"}))),
            (Method::DELETE, "", None),
            (Method::POST, "/messages", Some(json!({"text": "hi"}))),
            (Method::POST, "/interrupt", None),
            (Method::POST, "/regenerate", None),
            (Method::GET, "/events", None),
        ] {
            let (status, body) = bob
                .call(method.clone(), &format!("{path}{suffix}"), body)
                .await;
            assert_eq!(status, 404, "{method} {suffix} on {id}");
            assert_eq!(body["error"]["code"], "not_found");
        }
        let page = bob
            .request(Method::GET, &format!("/c/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 404);
        assert_eq!(app.ws_refused(bob.ws_request(id)).await, 404);
    }
    // Alice's conversation is untouched.
    let (status, body) = alice
        .call(Method::GET, &format!("/api/conversations/{}", a.id), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"].as_array().unwrap().len(), 0);
    // Ending a session: the cookie is cleared and no longer names anyone.
    let old = alice.cookie.clone().unwrap();
    let (status, _) = alice.call(Method::DELETE, "/api/session", None).await;
    assert_eq!(status, 204);
    assert!(alice.cookie.is_none(), "cleared");
    alice.cookie = Some(old);
    assert_eq!(alice.list("").await.0, 401);
}

#[tokio::test]
async fn an_owner_may_create_only_so_many_conversations_a_minute() {
    let app = spawn_app_with(|c| c.limits.owner_conversations_per_minute = 3).await;
    let mut b = Browser::new(&app);
    for _ in 0..3 {
        b.create().await;
    }
    let (status, body) = b
        .call(Method::POST, "/api/conversations", Some(json!({})))
        .await;
    assert_eq!(status, 429, "{body}");
    // Another browser (owner) is not affected.
    Browser::new(&app).create().await;
}

#[tokio::test]
async fn behind_an_https_public_url_the_cookie_is_host_prefixed_and_secure() {
    let app = spawn_app_with(|c| c.public_url = Some("https://chat.example".into())).await;
    let mut b = Browser::new(&app);
    let c = b.create().await;
    let cookie = &b.set_cookies[0];
    assert!(cookie.starts_with("__Host-cw_session="), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "host-only: {cookie}");
    let (status, _) = b
        .call(Method::GET, &format!("/api/conversations/{}", c.id), None)
        .await;
    assert_eq!(status, 200, "the prefixed cookie is read back");
    assert_eq!(b.ids().await, vec![c.id]);
}
