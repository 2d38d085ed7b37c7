//! Scenario (e): how fast Stop is while many other streams are busy. Background replies
//! stream at the paced rate; a few lanes repeatedly start a reply, wait for its first
//! delta and a random 0–20 ms more, send an interrupt and time it until the
//! `reply.interrupted` event arrives on the SSE stream.
//!
//! chatwire is interrupted over its WebSocket (`{"type":"interrupt"}`) when the route
//! exists, otherwise with `POST /api/conversations/{id}/interrupt`; the floor with
//! `POST /interrupt?id=K`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use crate::client::{Ev, Http, SseConn, open_sse, open_ws};
use crate::procs::{Kind, Target};
use crate::scenarios::{Conv, create_convs, post_all};
use crate::stats::{Dist, diff_ms};

/// Lanes taking samples side by side.
const LANES: usize = 4;
/// A single wait in a lane; beyond it the sample counts as an error.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
pub struct Interrupts {
    pub latency: Dist,
    pub errors: usize,
    /// How the interrupts were sent.
    pub via: String,
    pub background: usize,
    /// Deltas per second the background streams received while samples were taken.
    pub background_rate: f64,
}

/// Reads until an event of kind `want` arrives; returns when the read that held it ended.
async fn until(conn: &mut SseConn, want: Ev) -> io::Result<Instant> {
    until_within(conn, want, WAIT).await
}

/// When the stream's next `want` event arrived (one already buffered counts), waiting at
/// most `wait` for each read.
pub async fn until_within(conn: &mut SseConn, want: Ev, wait: Duration) -> io::Result<Instant> {
    let mut evs = Vec::new();
    conn.drain_events(&mut evs);
    if evs.contains(&want) {
        return Ok(Instant::now());
    }
    loop {
        evs.clear();
        let at = timeout(wait, conn.read_events(&mut evs))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        if evs.contains(&want) {
            return Ok(at);
        }
    }
}

/// Counts the deltas a background stream receives, until aborted.
async fn drain(mut conn: SseConn, count: Arc<AtomicU64>) {
    let mut evs = Vec::with_capacity(64);
    loop {
        evs.clear();
        if conn.read_events(&mut evs).await.is_err() {
            return;
        }
        let n = evs.iter().filter(|e| **e == Ev::Delta).count();
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A small random pause (0–20 ms) so interrupts do not line up with the pacing.
fn jitter(seed: &mut u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    Duration::from_micros(*seed % 20_000)
}

pub async fn interrupts(
    server: &Target,
    background: usize,
    samples: usize,
    delay_ms: u64,
) -> io::Result<Interrupts> {
    let (addr, read_addr) = (server.addr, server.read_addr);
    let count = Arc::new(AtomicU64::new(0));
    let mut bg: Vec<JoinHandle<()>> = Vec::new();
    match server.kind {
        Kind::Chatwire => {
            let convs = create_convs(addr, background).await;
            let mut live = Vec::new();
            for c in convs {
                if let Ok(conn) = open_sse(read_addr, &c_events(&c), Some(&c.token)).await {
                    bg.push(tokio::spawn(drain(conn, count.clone())));
                    live.push(c);
                }
            }
            post_all(addr, &live, "/count 100000").await;
        }
        Kind::Floor => {
            for _ in 0..background {
                let path = format!("/events?n=100000&d={delay_ms}");
                if let Ok(conn) = open_sse(addr, &path, None).await {
                    bg.push(tokio::spawn(drain(conn, count.clone())));
                }
            }
        }
    }
    // Let every background reply get going before sampling.
    sleep(Duration::from_millis(1000)).await;
    let (n0, t0) = (count.load(Ordering::Relaxed), Instant::now());

    let per_lane = samples.div_ceil(LANES);
    let mut lanes = Vec::new();
    for lane in 0..LANES {
        lanes.push(tokio::spawn(run_lane(
            server.kind,
            (addr, read_addr),
            lane,
            per_lane,
            delay_ms,
        )));
    }
    let mut out = Interrupts {
        background: bg.len(),
        ..Interrupts::default()
    };
    let mut latencies = Vec::new();
    for l in lanes {
        match l.await {
            Ok(Ok((lat, errors, via))) => {
                latencies.extend(lat);
                out.errors += errors;
                out.via = via;
            }
            _ => out.errors += per_lane,
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    out.background_rate = (count.load(Ordering::Relaxed) - n0) as f64 / secs;
    out.latency = Dist::of(latencies);
    for t in bg {
        t.abort();
    }
    Ok(out)
}

fn c_events(c: &Conv) -> String {
    format!("/api/conversations/{}/events", c.id)
}

/// One lane's samples: latencies (ms), errors, and how interrupts were sent.
async fn run_lane(
    kind: Kind,
    (addr, read_addr): (SocketAddr, SocketAddr),
    lane: usize,
    samples: usize,
    delay_ms: u64,
) -> io::Result<(Vec<f64>, usize, String)> {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (lane as u64 + 1);
    let mut lat = Vec::with_capacity(samples);
    let mut errors = 0;
    let mut http = Http::new(addr);
    match kind {
        Kind::Chatwire => {
            let conv = create_convs(addr, 1)
                .await
                .pop()
                .ok_or_else(|| io::Error::other("cannot create a conversation"))?;
            // Posts go to `addr` (the owner), the stream and the interrupt to `read_addr`.
            let mut sse = open_sse(read_addr, &c_events(&conv), Some(&conv.token)).await?;
            let ws_path = format!("/api/conversations/{}/ws", conv.id);
            let mut ws = open_ws(read_addr, &ws_path, Some(&conv.token)).await?.ok();
            let via = if ws.is_some() {
                "WebSocket {\"type\":\"interrupt\"}"
            } else {
                "POST /api/conversations/{id}/interrupt (no WebSocket route)"
            };
            let post = format!("/api/conversations/{}/messages", conv.id);
            let stop = format!("/api/conversations/{}/interrupt", conv.id);
            for _ in 0..samples {
                let sample = async {
                    let body = "{\"text\":\"/count 100000\"}";
                    match http
                        .request("POST", &post, Some(&conv.token), Some(body))
                        .await?
                    {
                        (202, _) => {}
                        (s, _) => return Err(io::Error::other(format!("post answered {s}"))),
                    }
                    until(&mut sse, Ev::Delta).await?;
                    sleep(jitter(&mut seed)).await;
                    let asked = Instant::now();
                    match ws.as_mut() {
                        Some(ws) => ws.send_text("{\"type\":\"interrupt\"}").await?,
                        None => http.send("POST", &stop, Some(&conv.token), None).await?,
                    }
                    let done = until(&mut sse, Ev::Interrupted).await?;
                    if ws.is_none() {
                        http.read_response().await?;
                    }
                    Ok(diff_ms(done, asked))
                };
                match sample.await {
                    Ok(ms) => lat.push(ms),
                    Err(_) => errors += 1,
                }
            }
            Ok((lat, errors, via.to_string()))
        }
        Kind::Floor => {
            for i in 0..samples {
                let id = (lane * 1_000_000 + i) as u64;
                let sample = async {
                    let path = format!("/events?n=100000&d={delay_ms}&id={id}");
                    let mut sse = open_sse(addr, &path, None).await?;
                    until(&mut sse, Ev::Delta).await?;
                    sleep(jitter(&mut seed)).await;
                    let asked = Instant::now();
                    http.send("POST", &format!("/interrupt?id={id}"), None, None)
                        .await?;
                    let done = until(&mut sse, Ev::Interrupted).await?;
                    http.read_response().await?;
                    Ok::<_, io::Error>(diff_ms(done, asked))
                };
                match sample.await {
                    Ok(ms) => lat.push(ms),
                    Err(_) => errors += 1,
                }
            }
            Ok((lat, errors, "POST /interrupt?id=K".to_string()))
        }
    }
}
