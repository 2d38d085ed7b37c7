//! `loadgen`: chatwire's load generator and benchmark.
//!
//! `cargo run --release --example loadgen` builds and starts `target/release/chatwire`
//! (and then this tool's own bare-axum "floor" server) as child
//! processes pinned to core 0, pins itself to core 1, drives each server only through its
//! public HTTP/SSE/WebSocket interface, reads the server's CPU time and memory from
//! `/proc/PID`, and prints a Markdown table of every figure beside the floor's and their
//! ratio. Every scenario is bounded in count and time; everything runs on 127.0.0.x.
//!
//! Scenarios: (a) idle SSE streams, (b) idle WebSockets, (c) paced streaming
//! (1,000 streams × 50 deltas/s), (d) flat out, (e) interrupts with 1,000 streams active.
//! `loadgen floor --addr A` is the floor server itself (see `floor.rs`).

mod client;
mod cluster;
mod cluster_report;
mod floor;
mod interrupts;
mod procs;
mod report;
mod scenarios;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::procs::{Kind, ServerProc, SpawnOptions};
use crate::report::Results;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Benchmarks chatwire against a bare-axum floor server on loopback.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    sub: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Sub {
    /// Runs the floor server (the load generator starts it by itself).
    Floor {
        #[arg(long)]
        addr: SocketAddr,
    },
    /// Cluster mode beside one node: its own PostgreSQL and Redis, two nodes (see
    /// `cluster.rs`).
    Cluster(cluster::ClusterArgs),
}

#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// The chatwire binary to measure. Run through `cargo run`, the default one is
    /// (re)built first with `cargo build --release --bin chatwire`. A wrapper script must
    /// `exec` the server: its CPU and memory are read, and it is stopped, by process id.
    #[arg(long, default_value = DEFAULT_SERVER)]
    server: PathBuf,
    /// Do not build the chatwire binary first.
    #[arg(long)]
    no_build: bool,
    /// Scenarios to run (comma-separated): idle-sse, idle-ws, paced, flat, interrupts.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "idle-sse,idle-ws,paced,flat,interrupts"
    )]
    only: Vec<String>,
    /// (a) Idle SSE streams to open.
    #[arg(long, default_value_t = 15_000)]
    idle_sse: usize,
    /// (b) Idle WebSockets to open.
    #[arg(long, default_value_t = 5_000)]
    idle_ws: usize,
    /// (c) Streams in the paced scenario.
    #[arg(long, default_value_t = 1_000)]
    paced_streams: usize,
    /// (c) Length of each paced reply, in seconds.
    #[arg(long, default_value_t = 15)]
    paced_secs: u64,
    /// (c, e) Pause between deltas (`--offline-delay-ms` of the server).
    #[arg(long, default_value_t = 20)]
    delay_ms: u64,
    /// (d) Streams in the flat-out scenario.
    #[arg(long, default_value_t = 200)]
    flat_streams: usize,
    /// (d) Deltas per flat-out reply.
    #[arg(long, default_value_t = 10_000)]
    flat_words: u32,
    /// (e) Streams active while interrupts are timed.
    #[arg(long, default_value_t = 1_000)]
    interrupt_streams: usize,
    /// (e) Interrupts to time.
    #[arg(long, default_value_t = 400)]
    interrupts: usize,
    /// Do not pin the server and the load generator to different cores.
    #[arg(long)]
    no_pin: bool,
    /// Measure chatwire only.
    #[arg(long)]
    skip_floor: bool,
    /// The chatwire server's `--db`: in memory by default; a `postgres://…` URL measures
    /// the PostgreSQL backend (the database's own CPU is not counted).
    #[arg(long, default_value = "sqlite::memory:")]
    db: String,
    /// Extra option for the chatwire server (repeatable), e.g. `--server-arg=--foo=1`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the servers' logs go.
    #[arg(long, default_value = "target/bench")]
    log_dir: PathBuf,
}

const DEFAULT_SERVER: &str = "target/release/chatwire";

/// Under `cargo run`, builds the default server binary so that a stale one is never
/// measured (cargo builds an example without the package's binaries).
fn build_server(server: &std::path::Path, no_build: bool) -> Result<(), String> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    if no_build || server != std::path::Path::new(DEFAULT_SERVER) {
        return Ok(());
    }
    log("building target/release/chatwire");
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "chatwire"])
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build --release --bin chatwire: {status}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Sub::Cluster(args)) = cli.sub {
        return cluster_main(args);
    }
    if let Some(Sub::Floor { addr }) = cli.sub {
        // Served like chatwire: tokio's multi-threaded runtime, one worker per usable core.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build();
        return match rt.map(|rt| rt.block_on(floor::serve(addr))) {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) | Err(e) => {
                eprintln!("floor: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = cli.run;
    if let Err(e) = build_server(&args.server, args.no_build) {
        eprintln!("loadgen: {e}");
        return ExitCode::FAILURE;
    }
    if !args.server.exists() {
        eprintln!(
            "loadgen: {} not found; build it first: cargo build --release",
            args.server.display()
        );
        return ExitCode::FAILURE;
    }
    let fds = procs::raise_fd_limit();
    let pin = !args.no_pin && procs::cores() >= 2;
    if pin && !procs::pin_to_core(1) {
        eprintln!("loadgen: cannot pin myself to core 1; running unpinned");
    }
    let Some(rt) = client_runtime() else {
        return ExitCode::FAILURE;
    };
    let results = rt.block_on(run(args.clone(), pin, fds));
    let text = report::markdown(&results);
    print_report(&text, args.out.as_deref())
}

fn cluster_main(args: cluster::ClusterArgs) -> ExitCode {
    if let Err(e) = build_server(&args.server, args.no_build) {
        eprintln!("loadgen: {e}");
        return ExitCode::FAILURE;
    }
    procs::raise_fd_limit();
    let Some(rt) = client_runtime() else {
        return ExitCode::FAILURE;
    };
    let text = match rt.block_on(cluster::run(args.clone())) {
        Ok(r) => cluster::markdown(&r),
        Err(e) => {
            eprintln!("loadgen cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_report(&text, args.out.as_deref())
}

/// The load generator's runtime: one thread (on its own core when pinned), cheaper than a
/// work-stealing pool for a client.
fn client_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("loadgen: {e}");
            None
        }
    }
}

/// Prints the Markdown report, and writes it to `out` when asked.
fn print_report(text: &str, out: Option<&std::path::Path>) -> ExitCode {
    println!("{text}");
    if let Some(path) = out
        && let Err(e) = std::fs::write(path, text)
    {
        eprintln!("loadgen: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn wants(args: &RunArgs, name: &str) -> bool {
    args.only.iter().any(|s| s == name)
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[loadgen] {}", msg.as_ref());
}

async fn run(args: RunArgs, pin: bool, fds: u64) -> Results {
    let mut r = Results::new(&args, pin, fds);
    let kinds: &[Kind] = if args.skip_floor {
        &[Kind::Chatwire]
    } else {
        &[Kind::Chatwire, Kind::Floor]
    };
    // Each side needs one descriptor per connection, plus some slack.
    let idle_sse = args.idle_sse.min(fds.saturating_sub(500) as usize);
    let idle_ws = args.idle_ws.min(fds.saturating_sub(500) as usize);
    if idle_sse < args.idle_sse {
        log(format!(
            "only {fds} file descriptors: idle SSE capped at {idle_sse}"
        ));
    }
    let paced_words = (args.paced_secs * 1000 / args.delay_ms.max(1)) as u32;
    for &kind in kinds {
        let name = kind.name();
        if wants(&args, "idle-sse") {
            log(format!("(a) {name}: {idle_sse} idle SSE streams"));
            let res = with_server(&args, kind, pin, args.delay_ms, "idle-sse", |s| {
                Box::pin(async move { scenarios::idle_sse(s, idle_sse).await })
            })
            .await;
            r.idle_sse.set(kind, res);
        }
        if wants(&args, "idle-ws") {
            log(format!("(b) {name}: {idle_ws} idle WebSockets"));
            let res = with_server(&args, kind, pin, args.delay_ms, "idle-ws", |s| {
                Box::pin(async move { scenarios::idle_ws(s, idle_ws).await })
            })
            .await;
            r.idle_ws.set(kind, res);
        }
        if wants(&args, "paced") {
            let (n, d) = (args.paced_streams, args.delay_ms);
            log(format!(
                "(c) {name}: {n} streams x {paced_words} deltas, {d} ms apart"
            ));
            let res = with_server(&args, kind, pin, d, "paced", |s| {
                Box::pin(async move { scenarios::streaming(&s.target(), n, paced_words, d).await })
            })
            .await;
            r.paced.set(kind, res);
        }
        if wants(&args, "flat") {
            let (n, w) = (args.flat_streams, args.flat_words);
            log(format!("(d) {name}: {n} streams x {w} deltas, flat out"));
            let res = with_server(&args, kind, pin, 0, "flat", |s| {
                Box::pin(async move { scenarios::streaming(&s.target(), n, w, 0).await })
            })
            .await;
            r.flat.set(kind, res);
        }
        if wants(&args, "interrupts") {
            let (n, k, d) = (args.interrupt_streams, args.interrupts, args.delay_ms);
            log(format!(
                "(e) {name}: {k} interrupts with {n} streams active"
            ));
            let res = with_server(&args, kind, pin, d, "interrupts", |s| {
                Box::pin(async move { interrupts::interrupts(&s.target(), n, k, d).await })
            })
            .await;
            r.interrupts.set(kind, res);
        }
    }
    r.finish();
    r
}

pub(crate) type Scenario<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<T>> + 'a>>;

/// Starts a fresh server, runs one scenario against it (bounded), stops the server.
async fn with_server<T>(
    args: &RunArgs,
    kind: Kind,
    pin: bool,
    delay_ms: u64,
    label: &str,
    scenario: impl for<'a> FnOnce(&'a ServerProc) -> Scenario<'a, T>,
) -> Result<T, String> {
    let opts = SpawnOptions {
        chatwire: &args.server,
        db: &args.db,
        delay_ms,
        extra_args: &args.server_args,
        pin_core: pin.then_some(0),
        log_dir: &args.log_dir,
        label,
    };
    let server = ServerProc::start(kind, &opts)
        .await
        .map_err(|e| e.to_string())?;
    let result = tokio::time::timeout(Duration::from_secs(240), scenario(&server)).await;
    server.stop(Duration::from_secs(15)).await;
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            log(format!("{label} on {}: {e}", kind.name()));
            Err(e.to_string())
        }
        Err(_) => Err("timed out".into()),
    }
}
