//! A throwaway PostgreSQL for tests, reached only through a Unix socket in its own
//! directory (no TCP port, so nothing clashes).
//!
//! [`shared()`] starts one server per test process, on first use; [`PgServer::fresh_db`]
//! creates an empty database in it per test. A test that stops and restarts PostgreSQL
//! starts its own with [`PgServer::start`]. As root the binaries run as the `postgres`
//! user (`runuser`); otherwise as the current user. `CHATWIRE_PG_BIN` overrides where
//! they are (default `/usr/lib/postgresql/15/bin`).
//!
//! libtest has no global teardown, so every server is watched by a tiny shell started in
//! its own session, reading a pipe whose other end only this test process holds: when
//! the process ends — passing, failing, killed — the pipe closes, and the watchdog stops
//! the server by its pid (from `postmaster.pid`) and removes its directory.
//!
//! Use it with `#[path = "../support/postgres.rs"] mod postgres;`.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The port only names the socket file (`DIR/.s.PGSQL.5432`): every server has its own DIR.
const PORT: u16 = 5432;
/// Upper bound on starting or stopping a server.
const START_WAIT: Duration = Duration::from_secs(60);

static SHARED: OnceLock<PgServer> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The test process's shared server, started on first use.
pub fn shared() -> &'static PgServer {
    SHARED.get_or_init(PgServer::start)
}

/// Where the PostgreSQL binaries are.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("CHATWIRE_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

pub struct PgServer {
    dir: PathBuf,
    /// The running postmaster's launcher (`runuser` or `postgres` itself), reaped on stop.
    running: Mutex<Option<Child>>,
    /// The watchdog, and our end of its pipe: closing it (when this is dropped, or when
    /// the process exits) tells the watchdog to clean up.
    watchdog: Option<(Child, ChildStdin)>,
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some((mut child, pipe)) = self.watchdog.take() {
            drop(pipe);
            // Bounded: the watchdog waits at most 10 s for the server to stop.
            let _ = child.wait();
        }
    }
}

fn unique() -> u64 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A command running `program` from the PostgreSQL binaries as the `postgres` user when
/// we are root.
fn pg_command(program: &str) -> Command {
    let path = bin_dir().join(program);
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(path);
        cmd
    } else {
        Command::new(path)
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run ({e}); is postgresql-15 installed?"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgServer {
    /// Creates a new cluster in a fresh temporary directory and starts it.
    pub fn start() -> PgServer {
        let dir =
            std::env::temp_dir().join(format!("chatwire-pg-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).expect("create the PostgreSQL directory");
        if is_root() {
            run(
                Command::new("chown").arg("postgres:postgres").arg(&dir),
                "chown",
            );
        }
        let watchdog = spawn_watchdog(&dir);
        run(
            pg_command("initdb")
                .arg("-D")
                .arg(dir.join("data"))
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
                .arg("--no-instructions"),
            "initdb",
        );
        let server = PgServer {
            dir,
            running: Mutex::new(None),
            watchdog: Some(watchdog),
        };
        server.start_again();
        server
    }

    /// The socket directory (the `host` of the URL).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sqlx URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@localhost/{db}?host={}&port={PORT}",
            self.dir.display()
        )
    }

    /// Creates an empty database and returns its URL.
    pub fn fresh_db(&self) -> String {
        let name = format!("t{}_{}", std::process::id(), unique());
        run(
            Command::new(bin_dir().join("psql"))
                .arg("-h")
                .arg(&self.dir)
                .args(["-p", &PORT.to_string(), "-U", "postgres", "-d", "postgres"])
                .args(["-qAt", "-v", "ON_ERROR_STOP=1", "-c"])
                .arg(format!("CREATE DATABASE {name}")),
            "CREATE DATABASE",
        );
        self.url(&name)
    }

    /// Starts the postmaster (again, after [`PgServer::stop`]) and waits until it accepts
    /// connections.
    pub fn start_again(&self) {
        let log = std::fs::File::create(self.dir.join("server.log")).expect("server log");
        let child = pg_command("postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-k")
            .arg(&self.dir)
            .args(["-p", &PORT.to_string()])
            .args(["-c", "listen_addresses=", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            // Not in the test's process group: a Ctrl-C reaches the watchdog's cleanup
            // instead of killing the server half-way.
            .process_group(0)
            .spawn()
            .expect("start postgres");
        *self.running.lock().unwrap() = Some(child);
        let deadline = Instant::now() + START_WAIT;
        loop {
            let ready = Command::new(bin_dir().join("pg_isready"))
                .arg("-q")
                .arg("-h")
                .arg(&self.dir)
                .args(["-p", &PORT.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start; its log:\n{}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The postmaster's pid, from `postmaster.pid`.
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the server (fast shutdown: connections are closed), by its pid, and waits
    /// until it has exited.
    pub fn stop(&self) {
        if let Some(pid) = self.pid() {
            // SAFETY: sending a signal to a pid has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGINT) };
            let deadline = Instant::now() + START_WAIT;
            // SAFETY: signal 0 only checks that the process exists.
            while unsafe { libc::kill(pid, 0) } == 0 {
                assert!(Instant::now() < deadline, "PostgreSQL did not stop");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(mut child) = self.running.lock().unwrap().take() {
            let _ = child.wait();
        }
    }
}

/// A shell in its own session that waits for our end of its stdin to close, then stops
/// the server in `dir` by its pid and removes `dir`.
fn spawn_watchdog(dir: &Path) -> (Child, ChildStdin) {
    let script = r#"
        trap '' INT TERM HUP
        while read -r _; do :; done
        pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
        if [ -n "$pid" ]; then
            kill -INT "$pid" 2>/dev/null
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null
        fi
        rm -rf "$1"
    "#;
    let mut child = Command::new("sh")
        .args(["-c", script, "pg-watchdog"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the PostgreSQL watchdog");
    let pipe = child.stdin.take().expect("watchdog stdin");
    (child, pipe)
}
