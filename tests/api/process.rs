//! The real `chatwire` binary as a child process: started on port 0 (it prints the address
//! it listens on), its standard error collected, stopped with SIGTERM or killed with
//! SIGKILL. For tests that must restart the server, crash it, or measure its memory.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::WAIT;

pub struct RealServer {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    pub pid: u32,
    /// Everything the server wrote to standard error (its log) and standard output.
    pub output: Arc<Mutex<String>>,
}

/// Tests that run the real binary take this first, so that they run one at a time: a
/// real server streaming flat out takes a core, and two of them at once on a 2-core
/// machine starve each other past the time bounds they check (a stop within the
/// shutdown grace period, a checkpoint a second).
pub async fn one_real_server_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static REAL_SERVERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    REAL_SERVERS.lock().await
}

/// A database file in the temp directory, removed (with its WAL files) when dropped.
pub struct TempDb {
    pub path: std::path::PathBuf,
}

impl TempDb {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "chatwire-{name}-{}-{}.db",
            std::process::id(),
            chatwire::ids::message_id()
        ));
        TempDb { path }
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

fn collect(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<String>>,
    listening: Option<tokio::sync::oneshot::Sender<String>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        let mut listening = listening;
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("chatwire is listening on http://")
                && let Some(tx) = listening.take()
            {
                let _ = tx.send(addr.trim().to_string());
            }
            let mut out = into.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
}

impl RealServer {
    /// Starts the binary with `--addr 127.0.0.1:0 --db URL` plus `args`, and `env`.
    pub async fn start(db: &str, args: &[&str], env: &[(&str, &str)]) -> RealServer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatwire"));
        cmd.args(["--addr", "127.0.0.1:0", "--db", db])
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("the chatwire binary starts");
        let pid = child.id().expect("pid");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        collect(child.stdout.take().unwrap(), output.clone(), Some(tx));
        collect(child.stderr.take().unwrap(), output.clone(), None);
        let addr = match tokio::time::timeout(WAIT, rx).await {
            Ok(Ok(a)) => a.parse().expect("an address"),
            _ => panic!(
                "the server did not say where it listens; output:\n{}",
                output.lock().unwrap()
            ),
        };
        RealServer {
            child,
            addr,
            pid,
            output,
        }
    }

    /// A `TestApp`-like client for this server.
    pub fn app(&self) -> crate::helpers::TestApp {
        crate::helpers::TestApp {
            addr: self.addr,
            server: None,
            http: reqwest::Client::builder()
                .timeout(WAIT)
                .build()
                .expect("client"),
        }
    }

    /// SIGKILL: no chance to store anything.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("kill");
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
    }

    /// SIGTERM, then waits (bounded) for the process to exit; returns its status and
    /// how long it took.
    pub async fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let started = std::time::Instant::now();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server exits after SIGTERM")
            .expect("exit status");
        (status, started.elapsed())
    }

    /// The server's resident memory, in KiB (Linux).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn log(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}
