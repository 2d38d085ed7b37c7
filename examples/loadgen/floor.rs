//! The floor: a bare axum server that sends the same SSE frames as chatwire at the same
//! pace, with nothing else — no conversations, no actor, no storage, no broadcast, no
//! replay. Whatever chatwire costs above this is the price of its features.
//!
//! - `GET /events?n=N&d=MS&id=K`: `reply.started`, then N `reply.delta` frames (word i due
//!   at start + i·MS, like the offline provider; MS = 0 is flat out), then
//!   `reply.completed` with the whole text. N = 0 is an idle stream (keep-alives only).
//!   With `id`, `POST /interrupt?id=K` ends it with `reply.interrupted`.
//! - `GET /ws`: a WebSocket that says hello and then only reads (4 KiB read buffer).
//!
//! It runs as `loadgen floor --addr ADDR` in its own process, pinned like chatwire, and is
//! served the same way (axum::serve, backlog 4096, TCP_NODELAY as chatwire sets it).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::net::TcpSocket;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until};

/// Same length as chatwire's message ids, so frames are the same size.
const REPLY_ID: &str = "m_AbCdEfGhIjKlMnOp";

#[derive(Clone, Default)]
struct Floor {
    stops: Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>,
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    n: u32,
    #[serde(default)]
    d: u64,
    id: Option<u64>,
}

#[derive(Serialize)]
struct Delta<'a> {
    reply_id: &'a str,
    text: &'a str,
}

struct Run {
    n: u32,
    sent: u32,
    delay: Duration,
    start: Instant,
    text: String,
    stop: Option<oneshot::Receiver<()>>,
    /// Removes the interrupt slot when the stream ends.
    _slot: Option<Slot>,
    done: bool,
}

struct Slot(Floor, u64);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.0.stops.lock() {
            m.remove(&self.1);
        }
    }
}

fn frame(id: u32, name: &str, text: &str) -> Event {
    let data = serde_json::to_string(&Delta {
        reply_id: REPLY_ID,
        text,
    })
    .unwrap_or_default();
    Event::default().id(id.to_string()).event(name).data(data)
}

async fn events(State(floor): State<Floor>, Query(q): Query<EventsQuery>) -> Response {
    let keep = KeepAlive::new()
        .interval(Duration::from_secs(15))
        .text("keep-alive");
    if q.n == 0 {
        let idle = futures_util::stream::pending::<Result<Event, Infallible>>();
        return Sse::new(idle).keep_alive(keep).into_response();
    }
    let (stop, slot) = match q.id {
        Some(id) => {
            let (tx, rx) = oneshot::channel();
            if let Ok(mut m) = floor.stops.lock() {
                m.insert(id, tx);
            }
            (Some(rx), Some(Slot(floor.clone(), id)))
        }
        None => (None, None),
    };
    let run = Run {
        n: q.n,
        sent: 0,
        delay: Duration::from_millis(q.d),
        start: Instant::now(),
        text: String::new(),
        stop,
        _slot: slot,
        done: false,
    };
    let started = futures_util::stream::once(async {
        Ok::<_, Infallible>(
            Event::default()
                .id("1")
                .event("reply.started")
                .data(format!(
                    "{{\"reply_id\":\"{REPLY_ID}\",\"provider\":\"offline\"}}"
                )),
        )
    });
    let words = futures_util::stream::unfold(run, |mut run| async move {
        if run.done {
            return None;
        }
        if run.sent == run.n {
            run.done = true;
            let ev = frame(run.n + 2, "reply.completed", &run.text);
            return Some((Ok(ev), run));
        }
        if run.delay.is_zero() {
            tokio::task::consume_budget().await;
        } else {
            let due = sleep_until(run.start + run.delay * (run.sent + 1));
            match run.stop.as_mut() {
                Some(stop) => {
                    tokio::select! {
                        _ = due => {}
                        _ = stop => {
                            run.done = true;
                            let ev = frame(run.sent + 2, "reply.interrupted", &run.text);
                            return Some((Ok(ev), run));
                        }
                    }
                }
                None => due.await,
            }
        }
        run.sent += 1;
        let word = if run.sent == 1 {
            run.sent.to_string()
        } else {
            format!(" {}", run.sent)
        };
        run.text.push_str(&word);
        let ev = frame(run.sent + 1, "reply.delta", &word);
        Some((Ok(ev), run))
    });
    Sse::new(started.chain(words))
        .keep_alive(keep)
        .into_response()
}

#[derive(Deserialize)]
struct InterruptQuery {
    id: u64,
}

async fn interrupt(State(floor): State<Floor>, Query(q): Query<InterruptQuery>) -> &'static str {
    let stop = floor.stops.lock().ok().and_then(|mut m| m.remove(&q.id));
    match stop {
        Some(tx) => {
            let _ = tx.send(());
            "{\"stopped\":true}"
        }
        None => "{\"stopped\":false}",
    }
}

/// Read buffer of a floor WebSocket. axum's default (128 KiB, zero-filled on the first
/// read) makes an idle socket cost about 130 KiB; a small one is what a server holding
/// many idle sockets should use, so the floor uses it too.
const WS_READ_BUFFER: usize = 4 * 1024;

async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(|mut socket: WebSocket| async move {
            let hello = "{\"type\":\"hello\",\"participant_id\":\"p_AbCdEfGhIjKl\"}";
            if socket.send(Message::Text(hello.into())).await.is_err() {
                return;
            }
            while let Some(Ok(_)) = socket.recv().await {}
        })
}

/// Serves the floor until the process is killed.
pub async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/events", get(events))
        .route("/interrupt", post(interrupt))
        .route("/ws", get(ws))
        .with_state(Floor::default());
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
