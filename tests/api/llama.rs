//! A real llama.cpp `llama-server` with a real small model, for the real-model tests.
//!
//! `scripts/real-llm` builds (or reuses) the server and the model and `scripts/test` passes
//! their paths in `CHATWIRE_LLAMA_SERVER` and `CHATWIRE_LLM_MODEL`. Without them the tests
//! say loudly that they did not run — except in CI (`CI=true`), where that is a failure.
//! One server runs at a time (the machine has 2 cores; the tests watch timing), each on a
//! free 127.0.0.1 port: the port is picked, and a bind failure is retried with another.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};

/// One real-model test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

pub struct Llama {
    _child: Child,
    _turn: MutexGuard<'static, ()>,
    pub base: String,
    log: PathBuf,
    http: reqwest::Client,
}

/// `CHATWIRE_REAL_LLM=1` asks for the tier: then a missing server is a failure, not a skip.
fn in_ci() -> bool {
    matches!(
        std::env::var("CHATWIRE_REAL_LLM").as_deref(),
        Ok("1" | "true" | "TRUE" | "True" | "yes")
    )
}

impl Llama {
    /// The server, ready to answer; `None` (after a loud notice) when the tier is not
    /// installed and `CHATWIRE_REAL_LLM=1` is not set.
    pub async fn start(test: &str) -> Option<Llama> {
        let (Ok(server), Ok(model)) = (
            std::env::var("CHATWIRE_LLAMA_SERVER"),
            std::env::var("CHATWIRE_LLM_MODEL"),
        ) else {
            let why = "CHATWIRE_LLAMA_SERVER / CHATWIRE_LLM_MODEL are not set \
                       (eval \"$(scripts/real-llm env)\", or run scripts/test)";
            assert!(!in_ci(), "real-model test {test} cannot run: {why}");
            eprintln!("\n!!!! REAL-MODEL TEST {test} SKIPPED: {why}\n");
            return None;
        };
        let turn = ONE_AT_A_TIME.lock().await;
        let dir = std::env::temp_dir().join(format!(
            "chatwire-llama-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("llama-server.log");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let out = std::fs::File::create(&log).expect("log file");
            let err = out.try_clone().expect("log file");
            let mut child = Command::new(&server)
                .args([
                    "-m",
                    &model,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                ])
                .args(["-c", "2048", "-np", "2", "-t", "2", "-n", "128"])
                .args(["--metrics", "--slots"])
                .stdin(Stdio::null())
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .kill_on_drop(true)
                .spawn()
                .expect("llama-server runs");
            let base = format!("http://127.0.0.1:{port}");
            match ready(&http, &base, &mut child).await {
                Ok(()) => {
                    return Some(Llama {
                        _child: child,
                        _turn: turn,
                        base,
                        log,
                        http,
                    });
                }
                // Most likely the port was taken meanwhile: another one.
                Err(e) => {
                    last = format!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default())
                }
            }
        }
        panic!("llama-server did not start: {last}");
    }

    /// The OpenAI-compatible API root, for a provider entry.
    pub fn v1(&self) -> String {
        format!("{}/v1", self.base)
    }

    /// `GET /slots`: one object per slot (`is_processing`, `id_task`, `next_token`…).
    pub async fn slots(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/slots", self.base))
            .send()
            .await
            .expect("/slots")
            .json()
            .await
            .expect("/slots JSON");
        v.as_array().cloned().unwrap_or_default()
    }

    /// How many slots are generating now.
    pub async fn busy_slots(&self) -> usize {
        let slots = self.slots().await;
        slots.iter().filter(|s| s["is_processing"] == true).count()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether `needle` shows up in the log within `within`: the server writes its log from
    /// its own thread, so a line about something that has happened may land a little later.
    pub async fn logs_within(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits (bounded) until `/health` answers 200: the model is loaded.
async fn ready(http: &reqwest::Client, base: &str, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("llama-server exited: {status}"));
        }
        if let Ok(r) = http.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("llama-server was not ready within 120 s".into())
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}
