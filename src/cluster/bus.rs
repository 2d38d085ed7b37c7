//! The node's pub/sub connection, on its own socket (a subscribed connection can send
//! nothing else, and must never share the multiplexed one).
//!
//! One task owns the connection: it reconnects with backoff when Redis closes it (a
//! restart, `CLIENT KILL TYPE pubsub`) or stops answering pings, subscribes again to every
//! channel in use, and bumps a counter that users watch: pub/sub drops messages while
//! disconnected, so after each reconnect they check the log. Each channel has at most one
//! subscriber per node (a relay, or the node's request inbox); messages go to it through a
//! bounded queue, and a full queue drops the message — a relay notices the gap in ids and
//! fills it from the log; presence is ephemeral; a dropped request times out at its caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::ClusterError;

/// Messages waiting for one channel's subscriber.
const QUEUE: usize = 1024;
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
const PING_EVERY: Duration = Duration::from_secs(3);

type Routes = HashMap<String, (u64, mpsc::Sender<Bytes>)>;

struct Inner {
    /// Where each subscribed channel's messages go (read per message).
    routes: Mutex<Routes>,
    /// The current connection's sink; the lock also orders (un)subscribe commands.
    sink: tokio::sync::Mutex<Option<PubSubSink>>,
    /// Bumped after every (re)connection has subscribed again.
    connected: watch::Sender<u64>,
    next_route: std::sync::atomic::AtomicU64,
}

/// A cheap, cloneable handle to the node's pub/sub connection.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

/// One channel's messages; unsubscribes when dropped.
pub struct BusSubscription {
    pub rx: mpsc::Receiver<Bytes>,
    channel: String,
    route: u64,
    bus: Bus,
}

impl Drop for BusSubscription {
    fn drop(&mut self) {
        let (bus, channel, route) = (
            self.bus.clone(),
            std::mem::take(&mut self.channel),
            self.route,
        );
        // Short-lived: one UNSUBSCRIBE under a timeout (no runtime: the process is ending).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { bus.unsubscribe(&channel, route).await });
        }
    }
}

impl Bus {
    /// Starts the connection task; it ends with `shutdown`.
    pub fn start(client: redis::Client, shutdown: CancellationToken) -> Bus {
        let bus = Bus {
            inner: Arc::new(Inner {
                routes: Mutex::new(HashMap::new()),
                sink: tokio::sync::Mutex::new(None),
                connected: watch::channel(0).0,
                next_route: std::sync::atomic::AtomicU64::new(1),
            }),
        };
        tokio::spawn(bus.clone().run(client, shutdown));
        bus
    }

    /// Bumped after each (re)connection; a change means messages may have been missed.
    pub fn connections(&self) -> watch::Receiver<u64> {
        self.inner.connected.subscribe()
    }

    /// Waits (at most `limit`) for the first connection.
    pub async fn ready(&self, limit: Duration) -> Result<(), ClusterError> {
        let mut rx = self.connections();
        let ok = tokio::time::timeout(limit, rx.wait_for(|n| *n > 0)).await;
        if matches!(ok, Ok(Ok(_))) {
            Ok(())
        } else {
            Err(ClusterError::Unavailable)
        }
    }

    /// Is the connection up right now?
    pub fn is_connected(&self) -> bool {
        self.inner.sink.try_lock().map_or(true, |s| s.is_some())
    }

    /// Subscribes to `channel`. Returns once Redis confirmed it, or — while disconnected —
    /// at once: the reconnection subscribes it and bumps [`Bus::connections`].
    pub async fn subscribe(&self, channel: &str) -> Result<BusSubscription, ClusterError> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let route = self
            .inner
            .next_route
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut sink = self.inner.sink.lock().await;
        self.routes().insert(channel.to_owned(), (route, tx));
        let subscription = BusSubscription {
            rx,
            channel: channel.to_owned(),
            route,
            bus: self.clone(),
        };
        if let Some(s) = sink.as_mut() {
            match tokio::time::timeout(COMMAND_TIMEOUT, s.subscribe(channel)).await {
                Ok(Ok(())) => {}
                _ => return Err(ClusterError::Unavailable),
            }
        }
        Ok(subscription)
    }

    async fn unsubscribe(&self, channel: &str, route: u64) {
        let mut sink = self.inner.sink.lock().await;
        {
            let mut routes = self.routes();
            // A newer subscriber of the same channel keeps it.
            if routes.get(channel).is_none_or(|(r, _)| *r != route) {
                return;
            }
            routes.remove(channel);
        }
        if let Some(s) = sink.as_mut() {
            let _ = tokio::time::timeout(COMMAND_TIMEOUT, s.unsubscribe(channel)).await;
        }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.inner
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn route(&self, channel: &str, payload: &[u8]) {
        let routes = self.routes();
        if let Some((_, tx)) = routes.get(channel) {
            // Full: dropped (see the module note).
            let _ = tx.try_send(Bytes::copy_from_slice(payload));
        }
    }

    async fn run(self, client: redis::Client, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(50);
        while !shutdown.is_cancelled() {
            let connected = tokio::select! {
                c = tokio::time::timeout(COMMAND_TIMEOUT, client.get_async_pubsub()) => c,
                _ = shutdown.cancelled() => return,
            };
            let Ok(Ok(pubsub)) = connected else {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            };
            let (mut sink, mut stream) = pubsub.split();
            {
                let mut slot = self.inner.sink.lock().await;
                let channels: Vec<String> = self.routes().keys().cloned().collect();
                if !channels.is_empty()
                    && !matches!(
                        tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(&channels)).await,
                        Ok(Ok(()))
                    )
                {
                    continue;
                }
                *slot = Some(sink.clone());
            }
            backoff = Duration::from_millis(50);
            self.inner.connected.send_modify(|n| *n += 1);
            tracing::debug!("redis pub/sub connected");
            let mut ping = tokio::time::interval(PING_EVERY);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    msg = stream.next() => match msg {
                        Some(msg) => self.route(msg.get_channel_name(), msg.get_payload_bytes()),
                        None => break,
                    },
                    _ = ping.tick() => {
                        let alive = tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                        if !matches!(alive, Ok(Ok(_))) {
                            break;
                        }
                    }
                    _ = shutdown.cancelled() => break,
                }
            }
            *self.inner.sink.lock().await = None;
            tracing::debug!("redis pub/sub disconnected");
        }
    }
}
