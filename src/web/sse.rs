//! `GET /api/conversations/{id}/events`: the conversation's numbered events as
//! Server-Sent Events.
//!
//! The stream starts with one `retry:` hint, then what the actor handed over when we
//! subscribed (a replay after `Last-Event-ID`, or a `sync` snapshot), then live frames —
//! the same bytes for every subscriber, encoded once by the actor. Frames that are already
//! waiting are written together.
//!
//! Memory per stream is bounded whatever the reader's speed: the live channel is a ring
//! of fixed size shared by all subscribers, the body is pulled only as fast as the socket
//! takes it, and a reader that falls behind the ring re-subscribes from the last event it
//! was sent, taking the replay a page at a time (or a `sync` if it is older than the
//! replay window). It never skips an event, and other subscribers never wait for it.
//!
//! Each stream takes one of the conversation's limited subscriber places (429 when none
//! is left). It ends, with a `retry:` hint, when the conversation's actor stops (also at
//! shutdown): the live channel closes once every frame the actor published, its last
//! events included, has been read — so no stop signal has to be polled for each frame.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use serde::Deserialize;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::auth::authorize;
use super::caps::Place;
use super::client::ClientAddr;
use crate::conversation::events::Frame;
use crate::conversation::{ConversationRef, Subscription, WatchSlot};
use crate::metrics::{Metrics, OpenGuard};
use crate::web::error::AppError;

/// How long a browser waits before reconnecting after the stream drops.
const RETRY_MS: u64 = 1000;
/// The reconnect hint when the server is going away (give a restart time to come up).
const RETRY_AFTER_SHUTDOWN_MS: u64 = 5000;
/// Most bytes gathered into one write when frames are already waiting.
const BATCH_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
pub struct EventsQuery {
    last_event_id: Option<String>,
}

/// The event number a client has seen: `Last-Event-ID` wins over the query (a browser
/// reconnecting keeps the old URL but sends the newer header). Junk counts as unknown.
fn resume_point(headers: &HeaderMap, query: &EventsQuery) -> Option<u64> {
    let raw = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query.last_event_id.as_deref())?;
    Some(raw.trim().parse().unwrap_or(u64::MAX))
}

/// The route. It is not under the router's panic-catching layer (which would wrap every
/// frame of the body), so it catches a panic of its own handler here: a 500, never a
/// dropped connection.
pub async fn events(
    state: State<AppState>,
    id: Path<String>,
    query: Query<EventsQuery>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    AssertUnwindSafe(open(state, id, query, client, headers))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(AppError::Internal("handler panicked".into())))
}

async fn open(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let conv = authorize(&state, &id, &headers, false).await?;
    let place = state.stream_place(client.as_deref())?;
    let slot = conv
        .try_watch(state.config.limits.max_subscribers)
        .ok_or(AppError::TooManySubscribers)?;
    let after = resume_point(&headers, &query);
    let sub = conv.subscribe(after).await?;
    let mut stream = EventStream::new(conv, sub, state.config.keepalive, state.metrics.clone());
    stream.slot = Some(slot);
    stream.place = place;
    stream.shutdown = Some(state.shutdown.clone());
    let body = Body::from_stream(futures_util::stream::unfold(stream, |mut s| async move {
        s.next_chunk().await.map(|b| (Ok::<_, Infallible>(b), s))
    }));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

struct EventStream {
    conv: ConversationRef,
    pending: VecDeque<Bytes>,
    live: tokio::sync::broadcast::Receiver<Frame>,
    last_id: u64,
    keepalive: Interval,
    done: bool,
    /// The live receiver skipped ahead (or the replay continues on another page); it must
    /// be replaced before it is read again.
    lagged: bool,
    /// This stream's subscriber place, given back when it ends.
    slot: Option<WatchSlot>,
    /// This stream's place among its client's (`AppState::stream_place`).
    place: Option<Place>,
    /// The server's shutdown signal, to choose the reconnect hint.
    shutdown: Option<CancellationToken>,
    metrics: Arc<Metrics>,
    /// Counts this stream in `chatwire_sse_streams_open` while it lives.
    _open: OpenGuard,
}

impl EventStream {
    fn new(
        conv: ConversationRef,
        sub: Subscription,
        every: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut keepalive = tokio::time::interval_at(Instant::now() + every, every);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        metrics.sse_events_sent(sub.backlog.len() as u64);
        let mut pending = VecDeque::with_capacity(sub.backlog.len() + 1);
        pending.push_back(Bytes::from(format!("retry: {RETRY_MS}\n\n")));
        pending.extend(sub.backlog);
        EventStream {
            conv,
            pending,
            live: sub.live,
            last_id: sub.last_id,
            keepalive,
            done: false,
            lagged: sub.more,
            slot: None,
            place: None,
            shutdown: None,
            _open: metrics.sse_stream_opened(),
            metrics,
        }
    }

    /// The next bytes to write, or `None` when the stream is over.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(b) = self.take_pending() {
            return Some(b);
        }
        if self.done {
            return None;
        }
        loop {
            if self.lagged {
                if self.resubscribe().await.is_none() {
                    // The actor is gone: the client resumes from the next one.
                    return Some(self.closing());
                }
                if let Some(b) = self.take_pending() {
                    return Some(b);
                }
            }
            tokio::select! {
                biased;
                r = self.live.recv() => match r {
                    Ok(frame) => {
                        if let Some(chunk) = self.gather(frame) {
                            return Some(chunk);
                        }
                    }
                    Err(RecvError::Lagged(_)) => self.fell_behind(),
                    Err(RecvError::Closed) => return Some(self.closing()),
                },
                _ = self.keepalive.tick() => return Some(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
    }

    /// The stream's last chunk: the actor's final events still in the live channel (it
    /// stops only after publishing them), then a reconnect hint. Gives the place back.
    fn closing(&mut self) -> Bytes {
        self.done = true;
        self.slot = None;
        let mut out = BytesMut::new();
        while !self.lagged {
            match self.live.try_recv() {
                Ok(frame) if frame.id > self.last_id => {
                    self.last_id = frame.id;
                    self.metrics.sse_events_sent(1);
                    out.extend_from_slice(&frame.bytes);
                }
                Ok(_) => {}
                // Behind: the client's resume (from the next actor's replay) fills the gap.
                Err(TryRecvError::Lagged(_)) => self.lagged = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        let retry = if self.shutdown.as_ref().is_some_and(|s| s.is_cancelled()) {
            RETRY_AFTER_SHUTDOWN_MS
        } else {
            RETRY_MS
        };
        out.extend_from_slice(
            format!("retry: {retry}\n: server closing this stream; reconnect\n\n").as_bytes(),
        );
        out.freeze()
    }

    fn fell_behind(&mut self) {
        tracing::debug!(
            conversation = %self.conv.id(),
            after = self.last_id,
            "a slow reader fell behind; it resumes from the replay log"
        );
        self.lagged = true;
    }

    /// The frames waiting in `pending` (a replay, or what a re-subscription caught up),
    /// joined into one chunk of at most about `BATCH_BYTES`: one write instead of many.
    fn take_pending(&mut self) -> Option<Bytes> {
        let first = self.pending.pop_front()?;
        let fits = |b: &Bytes, len: usize| len + b.len() <= BATCH_BYTES;
        if !self.pending.front().is_some_and(|b| fits(b, first.len())) {
            return Some(first);
        }
        let mut batch = BytesMut::with_capacity(BATCH_BYTES.min(first.len() * 16));
        batch.extend_from_slice(&first);
        while let Some(next) = self.pending.front() {
            if !fits(next, batch.len()) {
                break;
            }
            batch.extend_from_slice(next);
            self.pending.pop_front();
        }
        Some(batch.freeze())
    }

    /// Fell behind the live channel: pick up again after the last event sent, from the
    /// actor's replay log (or a `sync` if that is gone too). Never skip.
    async fn resubscribe(&mut self) -> Option<()> {
        self.metrics.sse_resubscribed();
        let sub = self.conv.subscribe(Some(self.last_id)).await.ok()?;
        self.live = sub.live;
        self.last_id = sub.last_id;
        self.metrics.sse_events_sent(sub.backlog.len() as u64);
        self.pending.extend(sub.backlog);
        self.lagged = sub.more;
        Some(())
    }

    /// This frame plus any already waiting, as one chunk; `None` if all were old.
    fn gather(&mut self, first: Frame) -> Option<Bytes> {
        let mut single: Option<Bytes> = None;
        let mut batch: Option<BytesMut> = None;
        let mut next = Some(first);
        let mut sent = 0;
        while let Some(frame) = next.take() {
            if frame.id > self.last_id {
                self.last_id = frame.id;
                sent += 1;
                match (&mut batch, single.take()) {
                    (Some(b), _) => b.extend_from_slice(&frame.bytes),
                    (None, None) => single = Some(frame.bytes),
                    (None, Some(prev)) => {
                        let mut b = BytesMut::with_capacity(prev.len() * 8);
                        b.extend_from_slice(&prev);
                        b.extend_from_slice(&frame.bytes);
                        batch = Some(b);
                    }
                }
            }
            let size = batch.as_ref().map_or(0, |b| b.len());
            if size < BATCH_BYTES {
                match self.live.try_recv() {
                    Ok(f) => next = Some(f),
                    Err(TryRecvError::Lagged(_)) => self.fell_behind(),
                    // Closed: the next `recv` ends the stream.
                    Err(TryRecvError::Empty | TryRecvError::Closed) => {}
                }
            }
        }
        if sent > 0 {
            self.metrics.sse_events_sent(sent);
        }
        batch.map(BytesMut::freeze).or(single)
    }
}
