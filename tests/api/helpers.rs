//! Test helpers: `spawn_app()` starts the real server on port 0 (in-memory database, or a
//! fresh PostgreSQL database with `CHATWIRE_TEST_DB=postgres`; no offline delay), plus a
//! small real SSE client that reads the byte stream like a browser.

use std::time::Duration;

use chatwire::providers::ExtraProviders;
use chatwire::{Config, Server};
use futures_util::StreamExt;
use serde_json::Value;

/// Upper bound on any single wait in a test, so a broken server fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub server: Option<Server>,
    pub http: reqwest::Client,
}

/// A conversation created through the API.
#[derive(Clone, Debug)]
pub struct Conv {
    pub id: String,
    pub token: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Which backend the API tests store in: SQLite in memory, or with
/// `CHATWIRE_TEST_DB=postgres` a fresh database in the test process's PostgreSQL.
pub fn test_db_url() -> Option<String> {
    match std::env::var("CHATWIRE_TEST_DB").as_deref() {
        Ok("postgres") => Some(crate::postgres::shared().fresh_db()),
        Ok("") | Ok("sqlite") | Err(_) => None,
        Ok(other) => panic!("CHATWIRE_TEST_DB={other}: expected `postgres` or `sqlite`"),
    }
}

pub async fn spawn_app_with(change: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_providers(change, ExtraProviders::default()).await
}

/// Like [`spawn_app_with`], with providers built in the test besides the configured ones.
pub async fn spawn_app_with_providers(
    change: impl FnOnce(&mut Config),
    extra: ExtraProviders,
) -> TestApp {
    let mut config = Config::for_tests();
    if let Some(url) = test_db_url() {
        config.db = url;
    }
    change(&mut config);
    let server = Server::start_with(config, extra)
        .await
        .expect("server starts");
    TestApp {
        addr: server.addr,
        server: Some(server),
        http: reqwest::Client::builder()
            .timeout(WAIT)
            .build()
            .expect("client"),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn create(&self) -> Conv {
        self.create_body(serde_json::json!({})).await
    }

    /// Creates a conversation with the named provider.
    pub async fn create_with(&self, provider: &str) -> Conv {
        self.create_body(serde_json::json!({ "provider": provider }))
            .await
    }

    /// Creates a conversation with the named provider and opens its event stream.
    pub async fn open_with(&self, provider: &str) -> (Conv, SseClient) {
        let conv = self.create_with(provider).await;
        let sse = self.sse(&conv, None).await;
        (conv, sse)
    }

    async fn create_body(&self, body: Value) -> Conv {
        let resp = self
            .http
            .post(self.url("/api/conversations"))
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.expect("json");
        Conv {
            id: body["id"].as_str().expect("id").to_string(),
            token: body["token"].as_str().expect("token").to_string(),
        }
    }

    /// `GET path` without credentials.
    /// Asserts that `/healthz` answers 200 (after an abuse test, the server still serves).
    pub async fn assert_healthy(&self) {
        assert_eq!(
            self.get("/healthz").await.status(),
            200,
            "server still healthy"
        );
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("get")
    }

    /// `GET path` without credentials; the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("json")
    }

    /// `POST path` with a JSON body and no credentials.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("post")
    }

    /// A request to `/api/conversations/{id}{suffix}` carrying the conversation's Bearer token.
    pub fn conv_request(
        &self,
        method: reqwest::Method,
        conv: &Conv,
        suffix: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(
                method,
                self.url(&format!("/api/conversations/{}{suffix}", conv.id)),
            )
            .bearer_auth(&conv.token)
    }

    /// POSTs a message; returns the status and the JSON body.
    pub async fn post(&self, conv: &Conv, text: &str) -> (u16, Value) {
        self.post_keyed(conv, text, None).await
    }

    /// POSTs a message with an `Idempotency-Key` (if given); the status and the JSON body.
    pub async fn post_keyed(&self, conv: &Conv, text: &str, key: Option<&str>) -> (u16, Value) {
        let mut req = self.conv_request(reqwest::Method::POST, conv, "/messages");
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        let resp = req
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            .expect("post");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// POSTs a message that must be accepted; returns its reply id.
    pub async fn post_ok(&self, conv: &Conv, text: &str) -> String {
        let (status, body) = self.post(conv, text).await;
        assert_eq!(status, 202, "{body}");
        body["reply_id"].as_str().expect("reply_id").to_string()
    }

    /// `POST /interrupt`; returns the status and the JSON body.
    pub async fn interrupt_raw(&self, conv: &Conv) -> (u16, Value) {
        let resp = self
            .conv_request(reqwest::Method::POST, conv, "/interrupt")
            .send()
            .await
            .expect("interrupt");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json"))
    }

    /// `POST /interrupt`; returns the interrupted reply's id, if any.
    pub async fn interrupt(&self, conv: &Conv) -> Option<String> {
        let (status, body) = self.interrupt_raw(conv).await;
        assert_eq!(status, 202);
        body["reply_id"].as_str().map(String::from)
    }

    /// The last message of the conversation (usually the reply in question).
    pub async fn last_message(&self, conv: &Conv) -> Value {
        let body = self.get_conv(conv).await;
        body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .expect("a message")
    }

    pub async fn get_conv(&self, conv: &Conv) -> Value {
        let resp = self
            .conv_request(reqwest::Method::GET, conv, "")
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("json")
    }

    /// Opens the SSE stream, resuming after `last_event_id` (sent as `Last-Event-ID`).
    pub async fn sse(&self, conv: &Conv, last_event_id: Option<u64>) -> SseClient {
        let mut req = self
            .conv_request(reqwest::Method::GET, conv, "/events")
            // The stream is long-lived: no whole-request timeout.
            .timeout(Duration::from_secs(3600));
        if let Some(n) = last_event_id {
            req = req.header("Last-Event-ID", n.to_string());
        }
        let resp = req.send().await.expect("sse");
        assert_eq!(resp.status(), 200);
        SseClient::from_response(resp)
    }

    /// `GET /metrics` (checks the Prometheus content type); the text.
    pub async fn metrics(&self) -> String {
        let resp = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        resp.text().await.expect("text")
    }

    pub async fn shutdown(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// One SSE block as a browser would parse it.
#[derive(Debug, Clone, Default)]
pub struct SseItem {
    pub id: Option<u64>,
    pub event: Option<String>,
    pub data: Option<Value>,
    pub comment: Option<String>,
    pub retry: Option<u64>,
}

impl SseItem {
    pub fn is_event(&self) -> bool {
        self.event.is_some()
    }
    pub fn kind(&self) -> &str {
        self.event.as_deref().unwrap_or("")
    }
    pub fn field(&self, name: &str) -> &str {
        self.data
            .as_ref()
            .and_then(|d| d[name].as_str())
            .unwrap_or("")
    }
}

pub struct SseClient {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: Vec<u8>,
}

impl SseClient {
    pub fn from_response(resp: reqwest::Response) -> Self {
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        SseClient {
            stream: Box::pin(resp.bytes_stream()),
            buf: Vec::new(),
        }
    }

    pub async fn next_item(&mut self) -> Option<SseItem> {
        self.next_item_within(WAIT).await
    }

    /// A whole block already received, if any.
    fn buffered_block(&mut self) -> Option<SseItem> {
        let pos = self.buf.windows(2).position(|w| w == b"\n\n")?;
        let block: Vec<u8> = self.buf.drain(..pos + 2).collect();
        let text = String::from_utf8(block).expect("utf-8 frame");
        Some(parse_block(&text))
    }

    /// The events that arrive within `dur` (none is fine), skipping comments and hints.
    pub async fn events_for(&mut self, dur: Duration) -> Vec<SseItem> {
        let deadline = tokio::time::Instant::now() + dur;
        let mut out = Vec::new();
        loop {
            while let Some(item) = self.buffered_block() {
                if item.is_event() {
                    out.push(item);
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
                _ => return out,
            }
        }
    }

    /// The next block (event, comment or retry hint); `None` when the stream ends.
    pub async fn next_item_within(&mut self, limit: Duration) -> Option<SseItem> {
        loop {
            if let Some(item) = self.buffered_block() {
                return Some(item);
            }
            match tokio::time::timeout(limit, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(Some(Err(_))) | Ok(None) => return None,
                Err(_) => panic!("no SSE data within {limit:?}"),
            }
        }
    }

    /// The next real event, skipping comments and retry hints.
    pub async fn next_event(&mut self) -> Option<SseItem> {
        loop {
            let item = self.next_item().await?;
            if item.is_event() {
                return Some(item);
            }
        }
    }

    /// Reads the stream to its end: the events, and the last `retry:` hint, if any.
    pub async fn rest(&mut self) -> (Vec<SseItem>, Option<u64>) {
        let mut events = Vec::new();
        let mut retry = None;
        while let Some(item) = self.next_item().await {
            if item.is_event() {
                events.push(item);
            } else if item.retry.is_some() {
                retry = item.retry;
            }
        }
        (events, retry)
    }

    /// The event that ends the next reply (`completed`, `interrupted` or `failed`).
    pub async fn reply_end(&mut self) -> SseItem {
        let mut events = self.events_until(is_reply_end).await;
        events.pop().expect("the reply's end")
    }

    /// Events up to and including the first one for which `last` is true.
    pub async fn events_until(&mut self, last: impl Fn(&SseItem) -> bool) -> Vec<SseItem> {
        let mut out = Vec::new();
        while let Some(ev) = self.next_event().await {
            let stop = last(&ev);
            out.push(ev);
            if stop {
                return out;
            }
        }
        panic!("stream ended before the expected event; got {out:?}");
    }
}

fn parse_block(text: &str) -> SseItem {
    let mut item = SseItem::default();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix(':') {
            item.comment = Some(c.trim().to_string());
        } else if let Some(v) = line.strip_prefix("id: ") {
            item.id = Some(v.parse().expect("numeric id"));
        } else if let Some(v) = line.strip_prefix("event: ") {
            item.event = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("data: ") {
            item.data = Some(serde_json::from_str(v).expect("JSON data"));
        } else if let Some(v) = line.strip_prefix("retry: ") {
            item.retry = Some(v.parse().expect("numeric retry"));
        }
    }
    item
}

/// The value of one sample (`name` with its labels, exactly as written) in Prometheus text.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
        .parse()
        .expect("numeric sample")
}

/// `"1 2 3 … n"`.
pub fn count_text(n: u32) -> String {
    (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
}

/// Is this the final event of a reply?
pub fn is_reply_end(ev: &SseItem) -> bool {
    matches!(
        ev.kind(),
        "reply.completed" | "reply.interrupted" | "reply.failed"
    )
}

/// Joins the `reply.delta` texts of `reply_id`.
pub fn joined_deltas(events: &[SseItem], reply_id: &str) -> String {
    events
        .iter()
        .filter(|e| e.kind() == "reply.delta" && e.field("reply_id") == reply_id)
        .map(|e| e.field("text"))
        .collect()
}

/// Waits (bounded) until `check` holds; panics with `what` otherwise.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Tries `attempt` every 20 ms until it returns `Some` (bounded by [`WAIT`]); panics with
/// `what` otherwise. For a place the server gives back once it has seen a close.
pub async fn eventually_some<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = attempt().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drives `fut` to completion without letting paused tokio time jump ahead: it polls the
/// future and yields in turn, so the runtime never sits idle (which is when paused time
/// auto-advances) while the database answers from its own thread. Bounded in real time.
pub async fn spin<F: std::future::Future>(fut: F) -> F::Output {
    use futures_util::FutureExt;
    let deadline = std::time::Instant::now() + WAIT;
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Some(out) = fut.as_mut().now_or_never() {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not done within {WAIT:?} of real time"
        );
        tokio::task::yield_now().await;
    }
}

/// Like [`spin`], until `cond` holds.
pub async fn spin_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::task::yield_now().await;
    }
}
