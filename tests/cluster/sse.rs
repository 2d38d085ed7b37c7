//! A small SSE client that behaves like a browser's EventSource (it reconnects with
//! `Last-Event-ID`, through whatever base URL it is given), and the invariant checker every
//! stream of a test feeds: ids +1 (a `sync` may reset the base), never one id with two
//! contents, one terminal event per reply, nothing of a reply after `reply.interrupted`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::nodes::Conv;

#[derive(Debug, Clone)]
pub struct Event {
    pub id: u64,
    pub event: String,
    pub data: Value,
}

#[derive(Default)]
struct Seen {
    contents: HashMap<u64, String>,
    violations: Vec<String>,
}

/// Shared by every stream of one conversation in a test.
#[derive(Clone, Default)]
pub struct Checker(Arc<Mutex<Seen>>);

/// One logical stream's own state (it survives reconnections).
#[derive(Default)]
struct StreamState {
    last: Option<u64>,
    ended: HashSet<String>,
    interrupted: HashSet<String>,
}

impl Checker {
    fn observe(&self, name: &str, s: &mut StreamState, e: &Event) {
        let mut seen = self.0.lock().unwrap();
        if e.event == "sync" {
            s.last = Some(e.id);
            return;
        }
        if let Some(prev) = s.last
            && e.id != prev + 1
        {
            seen.violations
                .push(format!("{name}: id {} after {prev}", e.id));
        }
        s.last = Some(e.id);
        let content = format!("{} {}", e.event, e.data);
        match seen.contents.get(&e.id).cloned() {
            Some(c) if c != content => seen
                .violations
                .push(format!("{name}: id {} was `{c}`, now `{content}`", e.id)),
            Some(_) => {}
            None => {
                seen.contents.insert(e.id, content);
            }
        }
        let reply = e.data["reply_id"].as_str().unwrap_or_default().to_owned();
        match e.event.as_str() {
            "reply.delta" if s.interrupted.contains(&reply) => seen
                .violations
                .push(format!("{name}: delta {} after reply.interrupted", e.id)),
            "reply.completed" | "reply.interrupted" | "reply.failed" => {
                if !s.ended.insert(reply.clone()) {
                    seen.violations
                        .push(format!("{name}: second terminal event for {reply}"));
                }
                if e.event == "reply.interrupted" {
                    s.interrupted.insert(reply);
                }
            }
            _ => {}
        }
    }

    pub fn assert_clean(&self) {
        let seen = self.0.lock().unwrap();
        assert!(
            seen.violations.is_empty(),
            "invariants broken:\n{}",
            seen.violations.join("\n")
        );
    }
}

/// An EventSource-like reader: events arrive on `rx`; after the server ends the stream it
/// reconnects (through `bases`, in turn) with the last id it saw.
pub struct Stream {
    pub rx: mpsc::Receiver<Event>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream {
    pub fn open(
        name: &str,
        http: reqwest::Client,
        bases: Vec<String>,
        conv: &Conv,
        after: Option<u64>,
        checker: Checker,
    ) -> Stream {
        let (tx, rx) = mpsc::channel(1 << 16);
        let (name, conv) = (name.to_owned(), conv.clone());
        let task = tokio::spawn(async move {
            let mut state = StreamState {
                last: after,
                ..Default::default()
            };
            for attempt in 0..200usize {
                let base = &bases[attempt % bases.len()];
                let mut req = http
                    .get(format!("{base}/api/conversations/{}/events", conv.id))
                    .bearer_auth(&conv.token)
                    .timeout(Duration::from_secs(600));
                if let Some(n) = state.last {
                    req = req.header("last-event-id", n.to_string());
                }
                if let Ok(resp) = req.send().await
                    && resp.status().is_success()
                {
                    let mut body = resp.bytes_stream();
                    let mut buf = Vec::new();
                    while let Some(Ok(chunk)) = body.next().await {
                        buf.extend_from_slice(&chunk);
                        while let Some(end) = find(&buf, b"\n\n") {
                            let block: Vec<u8> = buf.drain(..end + 2).collect();
                            if let Some(e) = parse(&block) {
                                checker.observe(&name, &mut state, &e);
                                if tx.send(e).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Stream { rx, task }
    }

    /// Events until one satisfies `done` (it included), bounded by `limit` overall.
    pub async fn until(&mut self, limit: Duration, done: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut out = Vec::new();
        loop {
            let e = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out; got {:?}", out.last()))
                .expect("stream open");
            let stop = done(&e);
            out.push(e);
            if stop {
                return out;
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse(block: &[u8]) -> Option<Event> {
    let text = std::str::from_utf8(block).ok()?;
    let (mut id, mut event, mut data) = (None, None, None);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = serde_json::from_str(v).ok();
        }
    }
    Some(Event {
        id: id?,
        event: event?,
        data: data?,
    })
}

/// The concatenated delta texts of `reply` in `events`.
pub fn deltas_of(events: &[Event], reply: &str) -> String {
    events
        .iter()
        .filter(|e| e.event == "reply.delta" && e.data["reply_id"] == reply)
        .filter_map(|e| e.data["text"].as_str())
        .collect()
}
