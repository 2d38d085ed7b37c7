//! The haproxy and nginx configurations of docs/deploy.md, started in front of three real
//! nodes (only their listen address and server lines replaced), carrying a conversation:
//! created, streamed over SSE, posted to and interrupted, all through the balancer.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::nodes::{Cluster, WAIT};
use crate::sse::{Checker, Stream};

/// The fenced code block of docs/deploy.md in language `lang`.
fn config_block(lang: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deploy.md"))
        .expect("docs/deploy.md");
    let start = doc.find(&format!("```{lang}\n")).expect("the config block") + lang.len() + 4;
    let len = doc[start..].find("```").expect("its end");
    doc[start..start + len].to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Rewrites the listen line and the backend lines of a documented config.
fn localise(config: &str, port: u16, c: &Cluster, listen: &str, server: &str) -> String {
    let mut servers = c.nodes.iter();
    config
        .lines()
        .map(|line| {
            let t = line.trim_start();
            let indent = &line[..line.len() - t.len()];
            if t.starts_with(listen) {
                format!("{indent}{listen} 127.0.0.1:{port};").replace(";;", ";")
            } else if t.starts_with(server) {
                let n = servers.next().expect("as many servers as nodes");
                let rest: Vec<&str> = t.split_whitespace().collect();
                match server {
                    "server n" => format!("{indent}server {} {} check", rest[1], n.addr),
                    _ => format!("{indent}server {};", n.addr),
                }
            } else {
                line.to_owned()
            }
        })
        .map(|line| line + "\n")
        .collect()
}

struct Balancer {
    child: Child,
    url: String,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn wait_up(url: &str, http: &reqwest::Client, why: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{url}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the balancer at {url} did not come up:\n{}", why());
}

fn explain(c: &Cluster) -> String {
    let read = |f: &str| std::fs::read_to_string(c.redis.dir.join(f)).unwrap_or_default();
    format!("{}\n{}", read("haproxy.cfg"), read("haproxy.log"))
}

async fn haproxy(c: &Cluster) -> Balancer {
    let port = free_port();
    let config = localise(&config_block("haproxy"), port, c, "bind", "server n");
    let config = config.replace(
        &format!("bind 127.0.0.1:{port};"),
        &format!("bind 127.0.0.1:{port}"),
    );
    let path = c.redis.dir.join("haproxy.cfg");
    std::fs::write(&path, config).expect("write haproxy.cfg");
    let log = std::fs::File::create(c.redis.dir.join("haproxy.log")).expect("log file");
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("haproxy is installed");
    Balancer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn nginx(c: &Cluster) -> Balancer {
    let port = free_port();
    let config = localise(&config_block("nginx"), port, c, "listen", "server 10.");
    let dir = c.redis.dir.join("nginx");
    std::fs::create_dir_all(dir.join("logs")).expect("nginx dir");
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config).expect("write nginx.conf");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&path)
        .args([
            "-g",
            "daemon off; master_process off; pid nginx.pid; error_log logs/error.log;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nginx is installed");
    Balancer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn carries_a_conversation(c: &Cluster, lb: &Balancer) {
    wait_up(&lb.url, &c.http, || explain(c)).await;
    let v: serde_json::Value = c
        .http
        .post(format!("{}/api/conversations", lb.url))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("create through the balancer")
        .json()
        .await
        .expect("json");
    let conv = crate::nodes::Conv {
        id: v["id"].as_str().expect("id").into(),
        token: v["token"].as_str().expect("token").into(),
    };
    let checker = Checker::default();
    let mut streams: Vec<Stream> = (0..3)
        .map(|i| {
            Stream::open(
                &format!("lb{i}"),
                c.http.clone(),
                vec![lb.url.clone()],
                &conv,
                None,
                checker.clone(),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, posted) = c.post(&lb.url, &conv, "/count 12").await;
    assert_eq!(status, 202, "{posted}");
    for s in &mut streams {
        let events = s.until(WAIT, |e| e.event == "reply.completed").await;
        assert_eq!(
            events.last().unwrap().data["text"],
            "1 2 3 4 5 6 7 8 9 10 11 12"
        );
    }
    let (status, _) = c.post(&lb.url, &conv, "/count 5000").await;
    assert_eq!(status, 202);
    streams[0].until(WAIT, |e| e.event == "reply.delta").await;
    assert_eq!(c.interrupt(&lb.url, &conv).await, 202);
    for s in &mut streams {
        s.until(WAIT, |e| e.event == "reply.interrupted").await;
    }
    checker.assert_clean();
}

#[tokio::test]
async fn the_documented_haproxy_configuration_carries_a_conversation() {
    let c = Cluster::start(3).await;
    let lb = haproxy(&c).await;
    carries_a_conversation(&c, &lb).await;
}

#[tokio::test]
async fn the_documented_nginx_configuration_carries_a_conversation() {
    let c = Cluster::start(3).await;
    let lb = nginx(&c).await;
    carries_a_conversation(&c, &lb).await;
}
