//! The benchmark scenarios, each run against one server (chatwire or the floor) through
//! its public interface only: idle SSE streams, idle WebSockets, paced or flat-out
//! streaming, and interrupts while other streams are busy.
//!
//! chatwire's replies start with `POST .../messages {"text": "/count N"}` on an SSE stream
//! opened beforehand; the floor's start when its stream is opened (it has no messages).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use crate::client::{Ev, Http, SseConn, WsConn, open_sse, open_ws};
use crate::procs::{Kind, Sample, ServerProc, Target};
use crate::stats::{Dist, Idle, Streaming, diff_ms, millis};

/// Control-plane requests (create, post) in flight at once.
const CONTROL_PARALLEL: usize = 32;
/// Streams being opened at once.
const OPEN_PARALLEL: usize = 256;

/// A chatwire conversation as the client knows it.
#[derive(Clone)]
pub struct Conv {
    pub id: String,
    pub token: String,
}

impl Conv {
    fn events(&self) -> String {
        format!("/api/conversations/{}/events", self.id)
    }
}

fn json_str(body: &[u8], key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get(key)?.as_str().map(str::to_string)
}

/// Runs `f(i)` for `i in 0..n` on `parallel` keep-alive connections; results in order.
async fn control_many<T, F, Fut>(addr: SocketAddr, n: usize, parallel: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, Http) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = (T, Http)> + Send,
{
    let parallel = parallel.clamp(1, n.max(1));
    let mut tasks = Vec::new();
    for lane in 0..parallel {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut http = Http::new(addr);
            let mut out = Vec::new();
            let mut i = lane;
            while i < n {
                let (v, h) = f(i, http).await;
                http = h;
                out.push((i, v));
                i += parallel;
            }
            out
        }));
    }
    let mut all: Vec<(usize, T)> = Vec::with_capacity(n);
    for t in tasks {
        if let Ok(v) = t.await {
            all.extend(v);
        }
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, v)| v).collect()
}

/// Creates `n` chatwire conversations; failures are left out.
pub async fn create_convs(addr: SocketAddr, n: usize) -> Vec<Conv> {
    let made = control_many(addr, n, CONTROL_PARALLEL, |_, mut http| async move {
        let r = http
            .request("POST", "/api/conversations", None, Some("{}"))
            .await;
        let conv = match r {
            Ok((201, body)) => json_str(&body, "id")
                .zip(json_str(&body, "token"))
                .map(|(id, token)| Conv { id, token }),
            _ => None,
        };
        (conv, http)
    })
    .await;
    made.into_iter().flatten().collect()
}

/// Posts `text` to every conversation; returns when each request was sent (None: failed).
pub async fn post_all(addr: SocketAddr, convs: &[Conv], text: &str) -> Vec<Option<Instant>> {
    let convs = std::sync::Arc::new(convs.to_vec());
    let body = serde_json::json!({ "text": text }).to_string();
    let n = convs.len();
    control_many(addr, n, CONTROL_PARALLEL, move |i, mut http| {
        let convs = convs.clone();
        let body = body.clone();
        async move {
            let c = &convs[i];
            let at = Instant::now();
            let path = format!("/api/conversations/{}/messages", c.id);
            let ok = matches!(
                http.request("POST", &path, Some(&c.token), Some(&body))
                    .await,
                Ok((202, _))
            );
            (ok.then_some(at), http)
        }
    })
    .await
}

/// Opens many SSE streams, `OPEN_PARALLEL` at a time; failures are `None`.
async fn open_many(addr: SocketAddr, reqs: Vec<(String, Option<String>)>) -> Vec<Option<SseConn>> {
    futures_util::stream::iter(reqs)
        .map(|(path, token)| async move {
            timeout(
                Duration::from_secs(30),
                open_sse(addr, &path, token.as_deref()),
            )
            .await
            .ok()
            .and_then(Result::ok)
        })
        .buffered(OPEN_PARALLEL)
        .collect()
        .await
}

/// Reads one `/metrics` sample value from chatwire.
pub async fn chatwire_metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let mut http = Http::new(addr);
    let (status, body) = http.request("GET", "/metrics", None, None).await.ok()?;
    if status != 200 {
        return None;
    }
    let text = String::from_utf8(body).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

// ---------------------------------------------------------------- idle connections

/// Opens `n` idle SSE streams and measures the server's RSS growth.
pub async fn idle_sse(server: &ServerProc, n: usize) -> io::Result<Idle> {
    let addr = server.addr;
    let before_setup = server.sample()?;
    let reqs: Vec<(String, Option<String>)> = match server.kind {
        Kind::Chatwire => create_convs(addr, n)
            .await
            .into_iter()
            .map(|c| (c.events(), Some(c.token)))
            .collect(),
        Kind::Floor => (0..n).map(|_| ("/events?n=0".to_string(), None)).collect(),
    };
    settle().await;
    let before = server.sample()?;
    let t0 = Instant::now();
    let conns: Vec<SseConn> = open_many(addr, reqs).await.into_iter().flatten().collect();
    let open_secs = t0.elapsed().as_secs_f64();
    let rss = (before_setup, before);
    idle_figures(
        server,
        n,
        rss,
        open_secs,
        "chatwire_sse_streams_open",
        || (conns.len(), conns.iter().filter(|c| c.alive()).count()),
    )
    .await
}

/// Opens `n` idle WebSockets; for chatwire, one per conversation (if the route exists).
pub async fn idle_ws(server: &ServerProc, n: usize) -> io::Result<Idle> {
    let addr = server.addr;
    let before_setup = server.sample()?;
    let reqs: Vec<(String, Option<String>)> = match server.kind {
        Kind::Chatwire => create_convs(addr, n)
            .await
            .into_iter()
            .map(|c| (format!("/api/conversations/{}/ws", c.id), Some(c.token)))
            .collect(),
        Kind::Floor => (0..n).map(|_| ("/ws".to_string(), None)).collect(),
    };
    if let Some((path, token)) = reqs.first()
        && let Ok(Err(status)) = open_ws(addr, path, token.as_deref()).await
    {
        return Ok(Idle {
            wanted: n,
            note: format!("no WebSocket route (the upgrade answered {status})"),
            ..Idle::default()
        });
    }
    settle().await;
    let before = server.sample()?;
    let t0 = Instant::now();
    let opened: Vec<Option<WsConn>> = futures_util::stream::iter(reqs)
        .map(|(path, token)| async move {
            match timeout(
                Duration::from_secs(30),
                open_ws(addr, &path, token.as_deref()),
            )
            .await
            {
                Ok(Ok(Ok(ws))) => Some(ws),
                _ => None,
            }
        })
        .buffered(OPEN_PARALLEL)
        .collect()
        .await;
    let open_secs = t0.elapsed().as_secs_f64();
    let conns: Vec<WsConn> = opened.into_iter().flatten().collect();
    let rss = (before_setup, before);
    idle_figures(
        server,
        n,
        rss,
        open_secs,
        "chatwire_websockets_open",
        || (conns.len(), conns.iter().filter(|c| c.alive()).count()),
    )
    .await
}

/// The figures of an idle scenario once its connections are open: after a pause, the
/// server's RSS growth, its own gauge `gauge` (chatwire), and `count()` = (opened, still
/// open). `rss` = the samples before the setup and before the connections.
async fn idle_figures(
    server: &ServerProc,
    n: usize,
    rss: (Sample, Sample),
    open_secs: f64,
    gauge: &str,
    count: impl FnOnce() -> (usize, usize),
) -> io::Result<Idle> {
    let (before_setup, before) = rss;
    settle().await;
    let after = server.sample()?;
    let mut note = String::new();
    if server.kind == Kind::Chatwire
        && let Some(v) = chatwire_metric(server.addr, gauge).await
    {
        note = format!("server's {gauge} = {v}");
    }
    let (opened, still_open) = count();
    Ok(Idle {
        wanted: n,
        opened,
        errors: n - opened + (opened - still_open),
        still_open,
        rss_delta_kb: after.rss_kb as i64 - before.rss_kb as i64,
        setup_rss_kb: before.rss_kb as i64 - before_setup.rss_kb as i64,
        open_secs,
        note,
    })
}

/// Lets the server finish what it was doing before memory is read.
async fn settle() {
    sleep(Duration::from_millis(1500)).await;
}

// ---------------------------------------------------------------- streaming

/// What one SSE reader saw of one reply.
#[derive(Default)]
struct Follow {
    /// When the request that started the reply was sent (floor: set by the opener).
    asked: Option<Instant>,
    first: Option<Instant>,
    deltas: u64,
    /// Per delta k (from 1): arrival − (first arrival + (k−1)·delay), ms. See `lateness`.
    offsets: Vec<f32>,
    /// When each of those deltas arrived.
    arrivals: Vec<Instant>,
    ended: Option<Ev>,
    error: bool,
}

impl Follow {
    /// Each delta's lateness against the stream's schedule. The schedule's origin is taken
    /// from the best-delivered delta (the smallest offset), so a late first delta does not
    /// make every later one look early: lateness ≥ 0, and it is the jitter a reader sees.
    fn lateness(&self) -> impl Iterator<Item = (Instant, f64)> + '_ {
        let best = self.offsets.iter().copied().fold(f32::INFINITY, f32::min);
        self.arrivals
            .iter()
            .zip(&self.offsets)
            .map(move |(at, o)| (*at, f64::from(o - best)))
    }
}

/// Reads until the reply ends (or `limit` passes), timing every delta.
async fn follow(mut conn: SseConn, delay: Duration, limit: Duration) -> Follow {
    let mut f = Follow::default();
    let mut evs = Vec::with_capacity(64);
    conn.drain_events(&mut evs);
    let deadline = Instant::now() + limit;
    let mut at = Instant::now();
    loop {
        for ev in evs.drain(..) {
            match ev {
                Ev::Delta => {
                    f.deltas += 1;
                    let first = *f.first.get_or_insert(at);
                    if !delay.is_zero() {
                        let due = first + delay * (f.deltas as u32 - 1);
                        f.offsets.push(diff_ms(at, due) as f32);
                        f.arrivals.push(at);
                    }
                }
                e if e.ends_reply() => {
                    f.ended = Some(e);
                    return f;
                }
                _ => {}
            }
        }
        match tokio::time::timeout_at(deadline, conn.read_events(&mut evs)).await {
            Ok(Ok(t)) => at = t,
            _ => {
                f.error = true;
                return f;
            }
        }
    }
}

/// `streams` replies of `words` deltas each, `delay_ms` apart (0 = flat out), one SSE
/// reader per reply. Measures delivered deltas, server CPU, lateness and first-delta time.
pub async fn streaming(
    server: &Target,
    streams: usize,
    words: u32,
    delay_ms: u64,
) -> io::Result<Streaming> {
    let addr = server.addr;
    let read_addr = server.read_addr;
    let delay = Duration::from_millis(delay_ms);
    let limit = delay * words + Duration::from_secs(60);
    let (tasks, s0, asked): (Vec<JoinHandle<Follow>>, _, Vec<Option<Instant>>) = match server.kind {
        Kind::Chatwire => {
            let convs = create_convs(addr, streams).await;
            let reqs = convs.iter().map(|c| (c.events(), Some(c.token.clone())));
            let conns = open_many(read_addr, reqs.collect()).await;
            let (mut tasks, mut live) = (Vec::new(), Vec::new());
            for (c, conn) in convs.into_iter().zip(conns) {
                if let Some(conn) = conn {
                    tasks.push(tokio::spawn(follow(conn, delay, limit)));
                    live.push(c);
                }
            }
            settle().await;
            let s0 = (server.sample()?, crate::procs::sample(std::process::id())?);
            let asked = post_all(addr, &live, &format!("/count {words}")).await;
            (tasks, s0, asked)
        }
        Kind::Floor => {
            let s0 = (server.sample()?, crate::procs::sample(std::process::id())?);
            let path = format!("/events?n={words}&d={delay_ms}");
            (
                floor_streams(addr, streams, path, delay, limit).await,
                s0,
                Vec::new(),
            )
        }
    };
    finish_streaming(server, streams, tasks, s0, asked).await
}

/// Opens `n` floor streams at `path` (each starts a reply), `OPEN_PARALLEL` at a time,
/// and follows each; the time of each request is the reply's start.
async fn floor_streams(
    addr: SocketAddr,
    n: usize,
    path: String,
    delay: Duration,
    limit: Duration,
) -> Vec<JoinHandle<Follow>> {
    let gate = Arc::new(Semaphore::new(OPEN_PARALLEL));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let asked = Instant::now();
            let conn = timeout(Duration::from_secs(30), open_sse(addr, &path, None)).await;
            drop(permit);
            match conn {
                Ok(Ok(c)) => {
                    let mut f = follow(c, delay, limit).await;
                    f.asked = Some(asked);
                    f
                }
                _ => Follow {
                    error: true,
                    ..Follow::default()
                },
            }
        }));
    }
    tasks
}

async fn finish_streaming(
    server: &Target,
    streams: usize,
    tasks: Vec<JoinHandle<Follow>>,
    (s0, client0): (crate::procs::Sample, crate::procs::Sample),
    asked: Vec<Option<Instant>>,
) -> io::Result<Streaming> {
    let mut follows = Vec::with_capacity(tasks.len());
    for t in tasks {
        follows.push(t.await.unwrap_or_default());
    }
    let s1 = server.sample()?;
    let client1 = crate::procs::sample(std::process::id())?;
    let mut out = Streaming {
        client_cpu_secs: client1.cpu - client0.cpu,
        streams,
        secs: millis(s1.at - s0.at) / 1e3,
        cpu_secs: s1.cpu - s0.cpu,
        cpu_wait_secs: s1.cpu_wait - s0.cpu_wait,
        sys_secs: s1.sys - s0.sys,
        syscalls: (s1.syscalls.0 - s0.syscalls.0, s1.syscalls.1 - s0.syscalls.1),
        ..Streaming::default()
    };
    let mut lateness = Vec::new();
    let mut first = Vec::new();
    for (i, f) in follows.iter().enumerate() {
        out.deltas += f.deltas;
        if f.error || f.ended != Some(Ev::Completed) {
            out.errors += 1;
        }
        let asked = f.asked.or(asked.get(i).copied().flatten());
        if let (Some(a), Some(t)) = (asked, f.first) {
            first.push(diff_ms(t, a));
        }
        lateness.extend(f.lateness());
    }
    out.errors += streams.saturating_sub(follows.len());
    // Steady state: once every reply has started (the burst of requests that start them
    // is over), which is what a server sees after its streams got going.
    let all_started = follows.iter().filter_map(|f| f.first).max();
    out.steady_lateness = Dist::of(
        lateness
            .iter()
            .filter(|(at, _)| all_started.is_some_and(|s| *at > s))
            .map(|(_, l)| *l)
            .collect(),
    );
    out.lateness = Dist::of(lateness.into_iter().map(|(_, l)| l).collect());
    out.first_delta = Dist::of(first);
    if server.kind == Kind::Chatwire {
        let mut parts = Vec::new();
        for name in [
            "chatwire_deltas_published_total",
            "chatwire_sse_events_sent_total",
            "chatwire_sse_resubscribes_total",
        ] {
            // In a cluster the deltas are published on the owner, the SSE counters
            // counted where the readers are.
            let at = if name.starts_with("chatwire_sse") {
                server.read_addr
            } else {
                server.addr
            };
            if let Some(v) = chatwire_metric(at, name).await {
                parts.push(format!("{name} {v}"));
            }
        }
        out.server_counters = parts.join(", ");
    }
    Ok(out)
}
