//! `rediss://`: a node reaches a TLS-only `redis-server` (its certificate signed by a CA
//! this test makes with `openssl`, trusted through `SSL_CERT_FILE`) and serves a
//! conversation; with the CA untrusted it refuses to start; and a `--redis` URL of any
//! other scheme is a clear startup error.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::nodes::{Node, WAIT};
use crate::redis_server::eventually;

/// A TLS-only redis-server on a loopback port, with its certificates in `dir`.
struct TlsRedis {
    dir: PathBuf,
    port: u16,
    _child: Child,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TlsRedis {
    async fn start() -> TlsRedis {
        let dir = std::env::temp_dir().join(format!(
            "chatwire-redis-tls-{}-{}",
            std::process::id(),
            chatwire::ids::prefixed("", 6)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &dir,
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem"],
                &["-days", "1", "-subj", "/CN=chatwire test CA"],
            ]
            .concat(),
        );
        openssl(
            &dir,
            &[
                &["req"][..],
                &ec,
                &["-keyout", "server.key", "-out", "server.csr"],
                &["-subj", "/CN=localhost"],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .expect("ext.cnf");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "1",
                "-extfile",
                "ext.cnf",
            ],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--tls-port",
                &port.to_string(),
            ])
            .args([
                "--tls-cert-file",
                "server.pem",
                "--tls-key-file",
                "server.key",
            ])
            .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed");
        eventually(WAIT, "redis listens for TLS", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        TlsRedis {
            dir,
            port,
            _child: child,
        }
    }

    fn url(&self) -> String {
        format!("rediss://localhost:{}", self.port)
    }

    fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }
}

/// Runs the binary with `args` and returns its exit status and everything it printed,
/// for a node that must refuse to start.
async fn refused(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chatwire"))
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .env_remove("SSL_CERT_FILE")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("the node gives up in time")
        .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn a_node_works_over_rediss_and_refuses_an_untrusted_certificate() {
    let redis = TlsRedis::start().await;
    let db = crate::postgres::shared().fresh_db();
    let ca = redis.ca();
    let node = Node::start_at("tls0", &db, &redis.url(), &[], &[("SSL_CERT_FILE", &ca)]).await;
    let http = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let conv: serde_json::Value = http
        .post(node.url("/api/conversations"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, token) = (
        conv["id"].as_str().unwrap(),
        conv["token"].as_str().unwrap(),
    );
    let url = node.url(&format!("/api/conversations/{id}"));
    let posted = http
        .post(format!("{url}/messages"))
        .bearer_auth(token)
        .json(&serde_json::json!({"text": "/count 3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202, "{}", node.output.lock().unwrap());
    eventually(WAIT, "the reply completes", || async {
        let Ok(r) = http.get(&url).bearer_auth(token).send().await else {
            return false;
        };
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        v["messages"][1]["status"] == "complete" && v["messages"][1]["text"] == "1 2 3"
    })
    .await;
    assert_eq!(
        http.get(node.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Without the CA the server's certificate is not trusted: no start.
    let (ok, text) = refused(&["--db", &db, "--redis", &redis.url()], &[]).await;
    assert!(!ok, "{text}");
    assert!(text.contains("invalid peer certificate"), "{text}");
}

#[tokio::test]
async fn a_redis_url_of_another_scheme_is_a_clear_startup_error() {
    let db = "postgres://postgres@localhost/none";
    let (ok, text) = refused(&["--db", db, "--redis", "http://127.0.0.1:6379"], &[]).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("--redis must be a redis://, rediss://"),
        "{text}"
    );
}
