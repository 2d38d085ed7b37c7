//! `loadgen cluster`: what cluster mode costs, and how fast it recovers, beside one node.
//!
//! It starts its own PostgreSQL (the tests' throwaway server, `tests/support/postgres.rs`:
//! a Unix socket in a temporary directory, removed at exit) and `redis-server` (a Unix
//! socket, no persistence), then runs the paced, flat-out and interrupt scenarios on three
//! set-ups: one node on SQLite (a file), one node on PostgreSQL, and two nodes plus Redis on
//! PostgreSQL, where conversations are created and messages posted on node 0 (which owns
//! them) and every SSE reader and WebSocket is on node 1 — every event crosses Redis. CPU
//! is every server process of the set-up together: the chatwire nodes, Redis, PostgreSQL
//! and its backends. Nothing is pinned (two nodes, Redis and PostgreSQL do not fit one
//! core), so the load generator shares both cores with them. Last, takeovers: node 0 is
//! SIGKILLed mid-reply and node 1's reader times the end of that reply (`reply.failed`)
//! and the first delta of a new reply posted to node 1.

#[path = "../../tests/support/postgres.rs"]
mod postgres;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::client::{Ev, open_sse};
use crate::interrupts::{Interrupts, until_within};
use crate::procs::{Kind, ServerProc, SpawnOptions, Target};
use crate::scenarios::{create_convs, post_all};
use crate::stats::{Dist, Streaming, diff_ms};

pub use crate::cluster_report::markdown;

#[derive(clap::Args, Clone)]
pub struct ClusterArgs {
    /// The chatwire binary (under `cargo run`, rebuilt first unless --no-build).
    #[arg(long, default_value = crate::DEFAULT_SERVER)]
    pub server: PathBuf,
    #[arg(long)]
    pub no_build: bool,
    /// Set-ups to run: sqlite, postgres, cluster; and takeover.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sqlite,postgres,cluster,takeover"
    )]
    pub only: Vec<String>,
    /// Paced scenario: streams, seconds, pause between deltas.
    #[arg(long, default_value_t = 1_000)]
    pub paced_streams: usize,
    #[arg(long, default_value_t = 15)]
    pub paced_secs: u64,
    #[arg(long, default_value_t = 20)]
    pub delay_ms: u64,
    /// Flat-out scenario: streams × deltas.
    #[arg(long, default_value_t = 200)]
    pub flat_streams: usize,
    #[arg(long, default_value_t = 10_000)]
    pub flat_words: u32,
    /// Interrupts timed, with this many streams active.
    #[arg(long, default_value_t = 400)]
    pub interrupts: usize,
    #[arg(long, default_value_t = 1_000)]
    pub interrupt_streams: usize,
    /// The nodes' `--lease-ms` (the product's default is 6000).
    #[arg(long, default_value_t = 6_000)]
    pub lease_ms: u64,
    /// Takeovers to time (one fresh pair of nodes each).
    #[arg(long, default_value_t = 3)]
    pub takeovers: usize,
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value = "target/bench")]
    pub log_dir: PathBuf,
}

/// What one set-up measured.
#[derive(Default)]
pub struct SetupResult {
    pub paced: Option<Result<Streaming, String>>,
    pub flat: Option<Result<Streaming, String>>,
    pub interrupts: Option<Result<Interrupts, String>>,
    /// CPU-seconds per process over the whole paced scenario (set-up included).
    pub paced_by_process: Vec<(String, f64)>,
}

/// Everything `loadgen cluster` measured.
#[derive(Default)]
pub struct ClusterResults {
    pub sqlite: Option<SetupResult>,
    pub postgres: Option<SetupResult>,
    pub cluster: Option<SetupResult>,
    /// Per takeover: kill → `reply.failed` on the other node, kill → first delta of a
    /// new reply posted there (ms); or why it failed.
    pub takeovers: Vec<Result<(f64, f64), String>>,
    pub lease_ms: u64,
    pub load_before: String,
    pub load_after: String,
    pub secs: f64,
}

/// A `redis-server` on a Unix socket; killed on drop (we keep the pid we spawned).
struct RedisProc {
    _child: Child,
    pid: u32,
    url: String,
}

async fn start_redis(dir: &std::path::Path) -> std::io::Result<RedisProc> {
    std::fs::create_dir_all(dir)?;
    let sock = dir.join("redis.sock");
    let _ = std::fs::remove_file(&sock);
    let child = Command::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(&sock)
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("redis has no pid"))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if pong(&sock) {
            break;
        }
        if Instant::now() > deadline {
            return Err(std::io::Error::other("redis-server did not start"));
        }
        sleep(Duration::from_millis(20)).await;
    }
    Ok(RedisProc {
        _child: child,
        pid,
        url: format!("redis+unix://{}", sock.display()),
    })
}

fn pong(sock: &std::path::Path) -> bool {
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[loadgen cluster] {}", msg.as_ref());
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Starts one chatwire node (cluster mode when `redis` is given).
async fn node(
    args: &ClusterArgs,
    db: &str,
    redis: Option<(&RedisProc, &str)>,
    delay_ms: u64,
    label: &str,
) -> std::io::Result<ServerProc> {
    let mut extra = Vec::new();
    if let Some((r, id)) = redis {
        extra.extend([
            "--redis".to_string(),
            r.url.clone(),
            "--node-id".into(),
            id.into(),
            "--lease-ms".into(),
            args.lease_ms.to_string(),
        ]);
    }
    let opts = SpawnOptions {
        chatwire: &args.server,
        db,
        delay_ms,
        extra_args: &extra,
        pin_core: None,
        log_dir: &args.log_dir,
        label,
    };
    ServerProc::start(Kind::Chatwire, &opts).await
}

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    Sqlite,
    Postgres,
    Cluster,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Sqlite => "sqlite",
            Setup::Postgres => "postgres",
            Setup::Cluster => "cluster",
        }
    }
}

/// The processes of one set-up, started fresh for one scenario.
struct Running {
    nodes: Vec<ServerProc>,
    target: Target,
    names: Vec<String>,
}

/// The shared services: one PostgreSQL, one Redis.
struct Services {
    pg: postgres::PgServer,
    redis: RedisProc,
}

async fn start_setup(
    args: &ClusterArgs,
    setup: Setup,
    svc: &Services,
    delay_ms: u64,
    label: &str,
) -> std::io::Result<Running> {
    let (pg, redis) = (&svc.pg, &svc.redis);
    let label = format!("{}-{label}", setup.name());
    let (nodes, mut pids, mut names) = match setup {
        Setup::Sqlite => {
            let file = args.log_dir.join(format!("{label}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
            let db = format!("sqlite://{}?mode=rwc", file.display());
            let n = node(args, &db, None, delay_ms, &label).await?;
            (vec![n], vec![], vec!["chatwire".to_string()])
        }
        Setup::Postgres => {
            let n = node(args, &pg.fresh_db(), None, delay_ms, &label).await?;
            (vec![n], vec![], vec!["chatwire".to_string()])
        }
        Setup::Cluster => {
            let db = pg.fresh_db();
            // One after the other: the first creates the schema.
            let n0 = node(
                args,
                &db,
                Some((redis, "n0")),
                delay_ms,
                &format!("{label}-n0"),
            )
            .await?;
            let n1 = node(
                args,
                &db,
                Some((redis, "n1")),
                delay_ms,
                &format!("{label}-n1"),
            )
            .await?;
            (
                vec![n0, n1],
                vec![redis.pid],
                vec![
                    "node 0 (owner)".into(),
                    "node 1 (readers)".into(),
                    "redis".into(),
                ],
            )
        }
    };
    let mut all: Vec<u32> = nodes.iter().map(|n| n.pid).collect();
    all.append(&mut pids);
    if setup != Setup::Sqlite
        && let Some(pm) = pg.pid()
    {
        all.push(pm as u32);
        names.push("postgresql".into());
    }
    let target = Target {
        kind: Kind::Chatwire,
        addr: nodes[0].addr,
        read_addr: nodes[nodes.len() - 1].addr,
        pids: all,
    };
    Ok(Running {
        nodes,
        target,
        names,
    })
}

async fn stop(running: Running) {
    for n in running.nodes {
        n.stop(Duration::from_secs(15)).await;
    }
}

/// Runs one scenario on a fresh set-up, bounded.
async fn one<T>(
    args: &ClusterArgs,
    setup: Setup,
    svc: &Services,
    delay_ms: u64,
    label: &str,
    by_process: Option<&mut Vec<(String, f64)>>,
    f: impl for<'a> FnOnce(&'a Target) -> crate::Scenario<'a, T>,
) -> Result<T, String> {
    let running = start_setup(args, setup, svc, delay_ms, label)
        .await
        .map_err(|e| e.to_string())?;
    let before = running.target.sample_each();
    let result = tokio::time::timeout(Duration::from_secs(240), f(&running.target)).await;
    if let Some(out) = by_process {
        let after = running.target.sample_each();
        for ((name, b), a) in running.names.iter().zip(before).zip(after) {
            if let (Ok(b), Ok(a)) = (b, a) {
                out.push((name.clone(), a.cpu - b.cpu));
            }
        }
    }
    stop(running).await;
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

pub async fn run(args: ClusterArgs) -> Result<ClusterResults, String> {
    let started = Instant::now();
    let mut r = ClusterResults {
        lease_ms: args.lease_ms,
        load_before: load_average(),
        ..ClusterResults::default()
    };
    std::fs::create_dir_all(&args.log_dir).map_err(|e| e.to_string())?;
    log("starting PostgreSQL and redis-server");
    let pg = postgres::PgServer::start();
    let redis_dir = std::env::temp_dir().join(format!("loadgen-redis-{}", std::process::id()));
    let redis = start_redis(&redis_dir).await.map_err(|e| e.to_string())?;
    let svc = Services { pg, redis };
    let paced_words = (args.paced_secs * 1000 / args.delay_ms.max(1)) as u32;
    for setup in [Setup::Sqlite, Setup::Postgres, Setup::Cluster] {
        if !args.only.iter().any(|s| s == setup.name()) {
            continue;
        }
        let name = setup.name();
        let mut res = SetupResult::default();
        let (n, d) = (args.paced_streams, args.delay_ms);
        log(format!("{name}: paced, {n} streams x {paced_words} deltas"));
        res.paced = Some(
            one(
                &args,
                setup,
                &svc,
                d,
                "paced",
                Some(&mut res.paced_by_process),
                |t| {
                    Box::pin(async move { crate::scenarios::streaming(t, n, paced_words, d).await })
                },
            )
            .await,
        );
        let (n, w) = (args.flat_streams, args.flat_words);
        log(format!("{name}: flat out, {n} streams x {w} deltas"));
        res.flat = Some(
            one(&args, setup, &svc, 0, "flat", None, |t| {
                Box::pin(async move { crate::scenarios::streaming(t, n, w, 0).await })
            })
            .await,
        );
        let (n, k) = (args.interrupt_streams, args.interrupts);
        log(format!("{name}: {k} interrupts with {n} streams active"));
        res.interrupts = Some(
            one(&args, setup, &svc, d, "interrupts", None, |t| {
                Box::pin(async move { crate::interrupts::interrupts(t, n, k, d).await })
            })
            .await,
        );
        match setup {
            Setup::Sqlite => r.sqlite = Some(res),
            Setup::Postgres => r.postgres = Some(res),
            Setup::Cluster => r.cluster = Some(res),
        }
    }
    if args.only.iter().any(|s| s == "takeover") {
        for i in 0..args.takeovers {
            log(format!("takeover {}/{}", i + 1, args.takeovers));
            r.takeovers.push(takeover(&args, &svc, i).await);
        }
    }
    drop(svc);
    r.load_after = load_average();
    r.secs = started.elapsed().as_secs_f64();
    Ok(r)
}

/// Node 0 owns a conversation streaming a long reply that node 1's reader follows; node 0
/// is SIGKILLed. Returns (kill → `reply.failed` at the reader, kill → first delta of a new
/// reply posted to node 1), in ms.
async fn takeover(args: &ClusterArgs, svc: &Services, round: usize) -> Result<(f64, f64), String> {
    let (redis, db) = (&svc.redis, svc.pg.fresh_db());
    let err = |e: std::io::Error| e.to_string();
    let label = format!("takeover{round}");
    let mut n0 = node(
        args,
        &db,
        Some((redis, "n0")),
        args.delay_ms,
        &format!("{label}-n0"),
    )
    .await
    .map_err(err)?;
    let n1 = node(
        args,
        &db,
        Some((redis, "n1")),
        args.delay_ms,
        &format!("{label}-n1"),
    )
    .await
    .map_err(err)?;
    let result = async {
        let conv = create_convs(n0.addr, 1)
            .await
            .pop()
            .ok_or("cannot create a conversation")?;
        let events = format!("/api/conversations/{}/events", conv.id);
        let mut sse = open_sse(n1.addr, &events, Some(&conv.token))
            .await
            .map_err(err)?;
        if post_all(n0.addr, std::slice::from_ref(&conv), "/count 100000").await[0].is_none() {
            return Err("the post was refused".to_string());
        }
        let short = Duration::from_secs(10);
        until_within(&mut sse, Ev::Delta, short)
            .await
            .map_err(err)?;
        sleep(Duration::from_millis(200)).await;
        let killed = Instant::now();
        n0.kill_now();
        let wait = Duration::from_millis(args.lease_ms) + Duration::from_secs(15);
        let failed = until_within(&mut sse, Ev::Failed, wait)
            .await
            .map_err(err)?;
        if post_all(n1.addr, std::slice::from_ref(&conv), "/count 5").await[0].is_none() {
            return Err("the new post was refused".to_string());
        }
        let first = until_within(&mut sse, Ev::Delta, short)
            .await
            .map_err(err)?;
        Ok((diff_ms(failed, killed), diff_ms(first, killed)))
    }
    .await;
    n0.stop(Duration::from_secs(1)).await;
    n1.stop(Duration::from_secs(15)).await;
    result
}

/// p50 / max of the successful takeovers.
pub fn takeover_dists(t: &[Result<(f64, f64), String>]) -> (Dist, Dist) {
    let ok: Vec<(f64, f64)> = t.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    (
        Dist::of(ok.iter().map(|x| x.0).collect()),
        Dist::of(ok.iter().map(|x| x.1).collect()),
    )
}
