//! A throwaway `redis-server` on a Unix socket in its own directory, without persistence,
//! killable and restartable on the same socket (for fault tests). We keep the pid we
//! spawned: redis renames its process title, so nothing here looks it up by name.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use chatwire::cluster::Redis;
use tokio::process::{Child, Command};

/// The longest any test waits for redis to come up.
const START: Duration = Duration::from_secs(15);

pub struct RedisServer {
    pub dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "chatwire-redis-{}-{}",
            std::process::id(),
            chatwire::ids::prefixed("", 6)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = RedisServer { dir, child: None };
        server.spawn().await;
        server
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    async fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + START;
        loop {
            if self.socket().exists()
                && let Ok(Ok(r)) =
                    tokio::time::timeout(Duration::from_secs(2), Redis::connect(&self.url())).await
                && r.ping().await.is_ok()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(START, child.wait()).await;
        }
    }

    /// Kill and start again, empty, on the same socket.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// Starts again (empty, on the same socket) after [`RedisServer::kill`].
    pub async fn start_again(&mut self) {
        self.spawn().await;
    }

    /// A plain connection for the test's own commands.
    pub async fn client(&self) -> Redis {
        Redis::connect(&self.url()).await.expect("connect to redis")
    }

    /// Runs one command and returns its reply, for fault injection (`CLIENT KILL`, …).
    pub async fn command(&self, args: &[&str]) -> redis::Value {
        let r = self.client().await;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut r.conn()).await.expect("redis command")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `check` every 20 ms until it holds, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
