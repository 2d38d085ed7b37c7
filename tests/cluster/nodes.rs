//! Real chatwire nodes (child processes of the built binary) sharing one database file and
//! one Redis, with a short lease; and a round-robin TCP load balancer in front of them.
//! Each node can be killed (SIGKILL), terminated (SIGTERM), stopped and continued
//! (SIGSTOP/SIGCONT) by its pid.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::child_output::collect;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::redis_server::RedisServer;

pub const WAIT: Duration = Duration::from_secs(20);
pub const LEASE_MS: u64 = 1500;

pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    pub output: Arc<Mutex<String>>,
}

impl Node {
    /// A node; `extra` arguments go after the usual ones (e.g. `--config FILE`).
    pub async fn start_with(name: &str, db: &str, redis: &RedisServer, extra: &[String]) -> Node {
        Node::start_at(name, db, &redis.url(), extra, &[]).await
    }

    /// A node on Redis at `redis_url`, with `env` set for it.
    pub async fn start_at(
        name: &str,
        db: &str,
        redis_url: &str,
        extra: &[String],
        env: &[(&str, &str)],
    ) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatwire"))
            .args(["--addr", "127.0.0.1:0", "--db", db, "--redis", redis_url])
            .args(["--node-id", name, "--lease-ms", &LEASE_MS.to_string()])
            .args([
                "--offline-delay-ms",
                "20",
                "--idle-secs",
                "2",
                "--shutdown-secs",
                "5",
            ])
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the chatwire binary starts");
        let pid = child.id().expect("pid");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        collect(
            child.stdout.take().expect("stdout"),
            output.clone(),
            Some(tx),
        );
        collect(child.stderr.take().expect("stderr"), output.clone(), None);
        let addr = match tokio::time::timeout(WAIT, rx).await {
            Ok(Ok(a)) => a.parse().expect("an address"),
            _ => panic!("node {name} did not start:\n{}", output.lock().unwrap()),
        };
        Node {
            name: name.into(),
            addr,
            pid,
            child,
            output,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.pid.to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -{sig}");
    }

    /// SIGTERM and wait (bounded) for the exit.
    pub async fn terminate(&mut self) {
        self.signal("TERM");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the node exits after SIGTERM")
            .expect("exit status");
    }
}

/// Redis, a fresh PostgreSQL database (cluster mode needs one), three nodes and a
/// round-robin balancer.
pub struct Cluster {
    pub redis: RedisServer,
    pub nodes: Vec<Node>,
    pub lb: SocketAddr,
    pub http: reqwest::Client,
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[]).await
    }

    /// `n` nodes, each started with `extra` arguments too.
    pub async fn start_with(n: usize, extra: &[String]) -> Cluster {
        Cluster::start_on(n, &crate::postgres::shared().fresh_db(), extra).await
    }

    /// `n` nodes on database `url` (e.g. of a PostgreSQL the test stops itself).
    pub async fn start_on(n: usize, url: &str, extra: &[String]) -> Cluster {
        let redis = RedisServer::start().await;
        let mut nodes = Vec::new();
        // One after the other: the first creates the schema.
        for i in 0..n {
            nodes.push(Node::start_with(&format!("n{i}"), url, &redis, extra).await);
        }
        let lb = round_robin(nodes.iter().map(|n| n.addr).collect()).await;
        let http = reqwest::Client::builder()
            .timeout(WAIT)
            .build()
            .expect("client");
        Cluster {
            redis,
            nodes,
            lb,
            http,
        }
    }

    pub fn lb_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.lb)
    }

    /// An SSE stream of `conv` read from node `node` (reconnecting there).
    pub fn stream(
        &self,
        name: &str,
        node: usize,
        conv: &Conv,
        after: Option<u64>,
        checker: crate::sse::Checker,
    ) -> crate::sse::Stream {
        let bases = vec![self.nodes[node].url("")];
        crate::sse::Stream::open(name, self.http.clone(), bases, conv, after, checker)
    }

    /// Creates a conversation through the balancer.
    pub async fn create(&self) -> Conv {
        let v: Value = self
            .http
            .post(self.lb_url("/api/conversations"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        Conv {
            id: v["id"].as_str().expect("id").into(),
            token: v["token"].as_str().expect("token").into(),
        }
    }

    /// POSTs a message at `base` (a node or the balancer): the status and the body.
    pub async fn post(&self, base: &str, conv: &Conv, text: &str) -> (u16, Value) {
        self.post_keyed(base, conv, text, None).await
    }

    /// [`Cluster::post`] with an `Idempotency-Key`, if given.
    pub async fn post_keyed(
        &self,
        base: &str,
        conv: &Conv,
        text: &str,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{base}/api/conversations/{}/messages", conv.id))
            .bearer_auth(&conv.token);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        let resp = req.json(&serde_json::json!({ "text": text })).send().await;
        match resp {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    pub async fn interrupt(&self, base: &str, conv: &Conv) -> u16 {
        self.http
            .post(format!("{base}/api/conversations/{}/interrupt", conv.id))
            .bearer_auth(&conv.token)
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    }

    pub async fn get(&self, base: &str, conv: &Conv) -> Option<Value> {
        let r = self
            .http
            .get(format!("{base}/api/conversations/{}", conv.id))
            .bearer_auth(&conv.token)
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// The node holding the conversation's lease.
    pub async fn owner(&self, conv: &Conv) -> Option<usize> {
        let r = self.redis.client().await;
        let holder = chatwire::cluster::lease::holder(&r, &conv.id)
            .await
            .ok()??;
        self.nodes.iter().position(|n| n.name == holder)
    }

    /// The value of sample `sample` (name and labels, as exposed) at node `node`'s
    /// `/metrics`; 0 when absent.
    pub async fn metric(&self, node: usize, sample: &str) -> u64 {
        let Ok(resp) = self.http.get(self.nodes[node].url("/metrics")).send().await else {
            return 0;
        };
        let text = resp.text().await.unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.name, n.output.lock().unwrap()))
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct Conv {
    pub id: String,
    pub token: String,
}

/// An in-test load balancer: each new connection goes to the next backend (skipping one
/// that refuses), bytes copied both ways until either side closes. No stickiness.
pub async fn round_robin(backends: Vec<SocketAddr>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let next = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let (backends, next) = (backends.clone(), next.clone());
            tokio::spawn(async move {
                for _ in 0..backends.len() {
                    let i = next.fetch_add(1, Ordering::Relaxed) % backends.len();
                    let connect = TcpStream::connect(backends[i]);
                    if let Ok(Ok(mut outbound)) =
                        tokio::time::timeout(Duration::from_secs(1), connect).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        return;
                    }
                }
            });
        }
    });
    addr
}
