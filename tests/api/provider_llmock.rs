//! Kind `openai` against llmock, a third-party OpenAI mock (PyPI `llmock`, installed by
//! `.ci/run`): a 429 with `Retry-After: 1` is waited for, a 401 is not retried, and
//! llmock's own verdict on chatwire's behaviour passes.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::*;

/// A running `llmock serve` on a port of its own choosing.
struct Llmock {
    _child: Child,
    url: String,
    http: reqwest::Client,
}

impl Llmock {
    async fn start() -> Llmock {
        let mut child = Command::new("llmock")
            .args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .args(["--response-style", "hello", "--tool-mode", "off"])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("llmock runs (pip install llmock==0.2.2; .ci/run does)");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // Uvicorn says where it listens once it does; a busy machine starts Python slowly.
        let url = tokio::time::timeout(Duration::from_secs(90), async {
            while let Some(line) = lines.next_line().await.expect("llmock's log") {
                if let Some(rest) = line.split("Uvicorn running on ").nth(1) {
                    return rest.split_whitespace().next().unwrap().to_string();
                }
            }
            panic!("llmock exited before listening");
        })
        .await
        .expect("llmock listens within 90 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Llmock {
            _child: child,
            url,
            http: reqwest::Client::new(),
        }
    }

    async fn scenario(&self, behaviors: Value) {
        let resp = self
            .http
            .post(format!("{}/_llmock/scenario", self.url))
            .json(&json!({ "behaviors": behaviors }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{:?}", resp.text().await);
    }

    async fn get(&self, path: &str) -> Value {
        let url = format!("{}/_llmock/{path}", self.url);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

async fn setup() -> (TestApp, Llmock) {
    let mock = Llmock::start().await;
    let base_url = format!("{}/v1", mock.url);
    let app = spawn_app_with(|c| {
        c.providers.push(chatwire::config::ProviderConfig {
            name: "mock".into(),
            kind: "openai".into(),
            base_url: Some(base_url),
            api_key: Some("sk-llmock".into()),
            model: Some("gpt-4o-mini".into()),
            ..Default::default()
        })
    })
    .await;
    (app, mock)
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_for() {
    let (app, mock) = setup().await;
    mock.scenario(json!([{"type": "fail", "status": 429, "retry_after": 1, "times": 1}]))
        .await;
    let (conv, mut sse) = app.open_with("mock").await;
    app.post_ok(&conv, "hello there").await;
    let end = sse.reply_end().await;
    assert_eq!(end.kind(), "reply.completed", "{end:?}");
    assert!(!end.field("text").is_empty());

    let requests = mock.get("requests").await;
    let requests = requests["requests"].as_array().unwrap();
    let statuses: Vec<_> = requests.iter().map(|r| r["status"].as_u64()).collect();
    assert_eq!(statuses, [Some(429), Some(200)]);
    let gap =
        requests[1]["started_at"].as_f64().unwrap() - requests[0]["ended_at"].as_f64().unwrap();
    assert!(gap >= 0.95, "retried {gap:.2} s after the 429");
    let verdict = mock.get("verdict").await;
    assert_eq!(verdict["passed"], true, "llmock's verdict: {verdict}");
    assert_eq!(verdict["errors"], 0, "{verdict}");
}

#[tokio::test]
async fn a_401_is_told_and_not_retried() {
    let (app, mock) = setup().await;
    mock.scenario(json!([{"type": "fail", "status": 401, "times": 1}]))
        .await;
    let (conv, mut sse) = app.open_with("mock").await;
    app.post_ok(&conv, "hello").await;
    let end = sse.reply_end().await;
    assert_eq!(end.kind(), "reply.failed");
    assert!(
        end.field("error").contains("rejected the API key"),
        "{end:?}"
    );
    assert!(!end.field("error").contains("sk-llmock"));
    let requests = mock.get("requests").await;
    assert_eq!(requests["count"], 1);
    let verdict = mock.get("verdict").await;
    assert_eq!(verdict["passed"], true, "llmock's verdict: {verdict}");
}
