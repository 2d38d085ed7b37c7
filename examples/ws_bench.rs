//! Two small, bounded measurements against a running chatwire (loopback only):
//!
//! ```text
//! # interrupt -> `reply.interrupted` latency, with N other conversations streaming
//! cargo run --release --example ws_bench -- latency 127.0.0.1:3000 200 [N]
//! # memory per idle WebSocket: open S sockets over C conversations, read the server's RSS
//! cargo run --release --example ws_bench -- idle 127.0.0.1:3000 SERVER_PID 2000 [C]
//! ```
//!
//! Start the server with `--db sqlite::memory:`. Each latency run posts `/count 100000`,
//! waits for its first `reply.delta` on SSE, sends `{"type":"interrupt"}` on the WebSocket and
//! times the arrival of `reply.interrupted` (SSE) and of `interrupted` (WebSocket).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

const LIMIT: Duration = Duration::from_secs(20);

#[derive(Clone)]
struct Conv {
    id: String,
    token: String,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "latency" => {
            let runs = arg(2).parse().unwrap_or(200);
            let background = arg(3).parse().unwrap_or(0);
            latency(&arg(1), runs, background).await
        }
        "idle" => {
            let pid: u32 = arg(2).parse()?;
            let sockets = arg(3).parse().unwrap_or(2000);
            let convs = arg(4).parse().unwrap_or(20);
            idle(&arg(1), pid, sockets, convs).await
        }
        _ => {
            eprintln!(
                "usage: ws_bench latency ADDR RUNS [BACKGROUND] | idle ADDR PID SOCKETS [CONVS]"
            );
            Ok(())
        }
    }
}

async fn create(http: &reqwest::Client, addr: &str) -> Result<Conv, BoxError> {
    let body: Value = http
        .post(format!("http://{addr}/api/conversations"))
        .json(&serde_json::json!({}))
        .send()
        .await?
        .json()
        .await?;
    Ok(Conv {
        id: body["id"].as_str().ok_or("id")?.into(),
        token: body["token"].as_str().ok_or("token")?.into(),
    })
}

async fn post(
    http: &reqwest::Client,
    addr: &str,
    c: &Conv,
    text: &str,
) -> Result<String, BoxError> {
    let body: Value = http
        .post(format!("http://{addr}/api/conversations/{}/messages", c.id))
        .bearer_auth(&c.token)
        .json(&serde_json::json!({ "text": text }))
        .send()
        .await?
        .json()
        .await?;
    Ok(body["reply_id"].as_str().ok_or("reply_id")?.into())
}

async fn ws(addr: &str, c: &Conv) -> Result<Ws, BoxError> {
    let mut req = format!("ws://{addr}/api/conversations/{}/ws", c.id).into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {}", c.token).parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(ws)
}

/// A minimal SSE reader: yields (event, data) pairs.
struct Sse {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: Vec<u8>,
}

impl Sse {
    async fn open(http: &reqwest::Client, addr: &str, c: &Conv) -> Result<Sse, BoxError> {
        let resp = http
            .get(format!("http://{addr}/api/conversations/{}/events", c.id))
            .bearer_auth(&c.token)
            .send()
            .await?;
        Ok(Sse {
            stream: Box::pin(resp.bytes_stream()),
            buf: Vec::new(),
        })
    }

    async fn next(&mut self) -> Result<(String, Value), BoxError> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..pos + 2).collect();
                let text = String::from_utf8(block)?;
                let mut event = String::new();
                let mut data = Value::Null;
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.into();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v)?;
                    }
                }
                if !event.is_empty() {
                    return Ok((event, data));
                }
                continue;
            }
            let chunk = tokio::time::timeout(LIMIT, self.stream.next())
                .await?
                .ok_or("SSE ended")??;
            self.buf.extend_from_slice(&chunk);
        }
    }

    async fn until(&mut self, event: &str, reply: &str) -> Result<(), BoxError> {
        loop {
            let (e, d) = self.next().await?;
            if e == event && d["reply_id"] == reply {
                return Ok(());
            }
        }
    }
}

async fn ws_until_interrupted(ws: &mut Ws, reply: &str) -> Result<(), BoxError> {
    loop {
        let msg = tokio::time::timeout(LIMIT, ws.next())
            .await?
            .ok_or("WS ended")??;
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["type"] == "interrupted" && v["reply_id"] == reply {
                return Ok(());
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn latency(addr: &str, runs: usize, background: usize) -> Result<(), BoxError> {
    let http = reqwest::Client::new();
    // Other conversations streaming, each with an SSE reader, for the whole measurement.
    let mut readers = Vec::new();
    for i in 0..background {
        let c = create(&http, addr).await?;
        let mut sse = Sse::open(&http, addr, &c).await?;
        post(&http, addr, &c, "/count 100000").await?;
        readers.push(tokio::spawn(
            async move { while sse.next().await.is_ok() {} },
        ));
        if i % 100 == 99 {
            eprintln!("{} background streams running", i + 1);
        }
    }
    if background > 0 {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let c = create(&http, addr).await?;
    let mut sse = Sse::open(&http, addr, &c).await?;
    let mut socket = ws(addr, &c).await?;
    let (mut to_sse, mut to_ws) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let reply = post(&http, addr, &c, "/count 100000").await?;
        sse.until("reply.delta", &reply).await?;
        let t0 = Instant::now();
        socket
            .send(Message::text(r#"{"type":"interrupt"}"#))
            .await?;
        sse.until("reply.interrupted", &reply).await?;
        to_sse.push(t0.elapsed());
        ws_until_interrupted(&mut socket, &reply).await?;
        to_ws.push(t0.elapsed());
    }
    for r in &readers {
        r.abort();
    }
    to_sse.sort();
    to_ws.sort();
    println!(
        "runs={runs} background_streams={background}\n\
         interrupt -> reply.interrupted (SSE): p50={:?} p99={:?} max={:?}\n\
         interrupt -> interrupted (WebSocket): p50={:?} p99={:?} max={:?}",
        percentile(&to_sse, 0.5),
        percentile(&to_sse, 0.99),
        to_sse.last().copied().unwrap_or_default(),
        percentile(&to_ws, 0.5),
        percentile(&to_ws, 0.99),
        to_ws.last().copied().unwrap_or_default(),
    );
    Ok(())
}

fn rss_kib(pid: u32) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("VmRSS value")?
        .parse()?)
}

async fn idle(addr: &str, pid: u32, sockets: usize, convs: usize) -> Result<(), BoxError> {
    let http = reqwest::Client::new();
    let mut cs = Vec::new();
    for _ in 0..convs.max(1) {
        cs.push(create(&http, addr).await?);
    }
    // Warm up: one socket per conversation, then closed, so the actors' own state is counted
    // before the baseline.
    for c in &cs {
        let mut w = ws(addr, c).await?;
        w.next().await;
        w.close(None).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid)?;
    let mut open = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let mut w = ws(addr, &cs[i % cs.len()]).await?;
        // hello + bot state: the session is fully set up.
        w.next().await;
        w.next().await;
        open.push(w);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid)?;
    println!(
        "sockets={sockets} conversations={} rss_before={before} KiB rss_after={after} KiB \
         per_socket={:.1} KiB",
        cs.len(),
        (after.saturating_sub(before)) as f64 / sockets as f64
    );
    for mut w in open {
        let _ = w.close(None).await;
    }
    Ok(())
}
