//! Requests between nodes: a command for a conversation goes to the node that owns it, on
//! that node's channel, and the answer comes back on the caller's own channel.
//!
//! The bodies are opaque bytes (the conversation layer encodes its commands); this module
//! only matches answers to requests and bounds the wait. A request nobody receives (the
//! node is gone) fails at once; one not answered in time fails with `Timeout`, and the web
//! layer answers 503 with `Retry-After` — the command may still have been applied, which is
//! why posting a message takes an `Idempotency-Key`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Bus, ClusterError, ClusterMetrics, Redis, keys};

/// Requests waiting for this node's handler; beyond this they are refused at once.
const INBOX: usize = 256;

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<Bytes, String>>>>;

/// This node's side of requests: making them, and answering those it receives.
#[derive(Clone)]
pub struct Rpc {
    redis: Redis,
    node: Arc<str>,
    next: Arc<AtomicU64>,
    pending: Arc<Pending>,
    metrics: Arc<ClusterMetrics>,
}

/// A request from another node, to be answered once with [`Rpc::answer`].
#[derive(Debug)]
pub struct Request {
    pub from: String,
    pub id: u64,
    pub body: Bytes,
}

/// Requests for this node, in arrival order.
pub type Inbox = mpsc::Receiver<Request>;

impl Rpc {
    /// Subscribes to this node's channel and starts routing what arrives on it; the task
    /// ends with `shutdown`.
    pub async fn start(
        redis: Redis,
        bus: Bus,
        node: Arc<str>,
        metrics: Arc<ClusterMetrics>,
        shutdown: CancellationToken,
    ) -> Result<(Rpc, Inbox), ClusterError> {
        let mut sub = bus.subscribe(&keys::node(&node)).await?;
        let rpc = Rpc {
            redis,
            node,
            next: Arc::new(AtomicU64::new(1)),
            pending: Arc::new(Mutex::new(HashMap::new())),
            metrics,
        };
        let (tx, inbox) = mpsc::channel(INBOX);
        let router = rpc.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = sub.rx.recv() => m,
                    _ = shutdown.cancelled() => None,
                };
                let Some(msg) = msg else { break };
                router.on_message(&msg, &tx).await;
            }
        });
        Ok((rpc, inbox))
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Sends `body` to `node` and waits at most `timeout` for its answer.
    pub async fn call(
        &self,
        node: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, ClusterError> {
        let started = Instant::now();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        let mut msg = BytesMut::with_capacity(body.len() + 32);
        msg.put_slice(format!("q {id} {}\n", self.node).as_bytes());
        msg.put_slice(body);
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(keys::node(node))
            .arg(msg.as_ref())
            .query_async(&mut self.redis.conn())
            .await;
        let result = match sent {
            Err(e) => Err(ClusterError::from(e)),
            Ok(0) => Err(ClusterError::NodeGone),
            Ok(_) => match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(Ok(body))) => Ok(body),
                Ok(Ok(Err(message))) => Err(ClusterError::Remote(message)),
                Ok(Err(_)) => Err(ClusterError::Unavailable),
                Err(_) => Err(ClusterError::Timeout),
            },
        };
        self.lock().remove(&id);
        self.metrics.forward_latency.observe(started.elapsed());
        result
    }

    /// Answers a request (an error as a short message the caller may show).
    pub async fn answer(&self, request: &Request, result: Result<&[u8], &str>) {
        let mut msg = BytesMut::new();
        match result {
            Ok(body) => {
                msg.put_slice(format!("a {} ok\n", request.id).as_bytes());
                msg.put_slice(body);
            }
            Err(message) => {
                msg.put_slice(format!("a {} err\n", request.id).as_bytes());
                msg.put_slice(message.as_bytes());
            }
        }
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(keys::node(&request.from))
            .arg(msg.as_ref())
            .query_async(&mut self.redis.conn())
            .await;
        if sent.is_err() {
            tracing::debug!("cannot send an answer to another node");
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Result<Bytes, String>>>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn on_message(&self, msg: &Bytes, inbox: &mpsc::Sender<Request>) {
        let Some(newline) = msg.iter().position(|&b| b == b'\n') else {
            return;
        };
        let Ok(head) = std::str::from_utf8(&msg[..newline]) else {
            return;
        };
        let body = msg.slice(newline + 1..);
        let mut parts = head.split(' ');
        match (
            parts.next(),
            parts.next().and_then(|i| i.parse::<u64>().ok()),
            parts.next(),
        ) {
            (Some("q"), Some(id), Some(from)) => {
                let request = Request {
                    from: from.to_owned(),
                    id,
                    body,
                };
                if let Err(mpsc::error::TrySendError::Full(request)) = inbox.try_send(request) {
                    self.answer(&request, Err("busy")).await;
                }
            }
            (Some("a"), Some(id), Some(status)) => {
                if let Some(tx) = self.lock().remove(&id) {
                    let _ = tx.send(if status == "ok" {
                        Ok(body)
                    } else {
                        Err(String::from_utf8_lossy(&body).into_owned())
                    });
                }
            }
            _ => {}
        }
    }
}
