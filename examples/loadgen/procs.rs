//! The processes under test: starting a server (chatwire, or this tool's own floor server)
//! as a child pinned to one core, reading its CPU time and resident memory from `/proc`,
//! and stopping it. Also the load generator's own setup: file-descriptor limit, pinning.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::client::Http;

/// Raises this process's soft limit on open files to its hard limit; returns the new
/// soft limit. Children inherit it.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            let mut now = lim;
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut now);
            return now.rlim_cur;
        }
        lim.rlim_cur
    }
}

/// Pins the calling process (all its future threads) to one core; false if that failed.
pub fn pin_to_core(core: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it; pid 0 is "self".
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU time and memory of a process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// utime + stime, seconds.
    pub cpu: f64,
    /// stime alone (time in the kernel: system calls, loopback TCP), seconds.
    pub sys: f64,
    /// VmRSS, KiB.
    pub rss_kb: u64,
    /// Time its threads spent runnable but waiting for a CPU, seconds (from
    /// `/proc/PID/task/*/schedstat`): how much other work on the core delayed it.
    pub cpu_wait: f64,
    /// Read and write system calls so far (`syscr`, `syscw` of `/proc/PID/io`).
    pub syscalls: (u64, u64),
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Reads utime+stime (from `/proc/PID/stat`) and VmRSS (from `/proc/PID/status`).
pub fn sample(pid: u32) -> io::Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("bad stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    // utime is field 14, stime field 15 (1-based); `fields[0]` is field 3.
    let cpu = (ticks(11) + ticks(12)) / clock_ticks();
    let sys = ticks(12) / clock_ticks();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(Sample {
        at: Instant::now(),
        cpu,
        sys,
        rss_kb,
        cpu_wait: run_queue_wait(pid),
        syscalls: io_syscalls(pid),
    })
}

fn io_syscalls(pid: u32) -> (u64, u64) {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("syscr:"), field("syscw:"))
}

/// Sum over the process's threads of the run-queue wait in `schedstat` (field 2, ns).
fn run_queue_wait(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let mut nanos = 0u64;
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            nanos += s
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    nanos as f64 / 1e9
}

/// Options that lift chatwire's abuse limits, for the builds that have them (asked
/// with `--help`): all load comes from a few loopback addresses, the interrupt lanes post
/// to one conversation many times a second, and 15,000 idle streams need 15,000 live
/// conversations (and more connections and streams per address than the defaults).
fn limit_options(chatwire: &Path) -> Vec<&'static str> {
    let help = std::process::Command::new(chatwire)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    [
        ("--requests-per-minute", "0"),
        ("--messages-per-minute", "0"),
        ("--max-conversations", "100000"),
        ("--max-connections-per-address", "0"),
        ("--max-connections", "0"),
        ("--max-streams-per-address", "0"),
    ]
    .into_iter()
    .filter(|(name, _)| help.contains(name))
    .flat_map(|(name, value)| [name, value])
    .collect()
}

/// What the streaming and interrupt scenarios drive: where conversations are created and
/// replies started (`addr`), where SSE readers and WebSockets connect (`read_addr`: the
/// same one for a single server, another node in a cluster), and the processes whose CPU
/// is counted — each with its descendants, so PostgreSQL's backends count too.
pub struct Target {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub read_addr: SocketAddr,
    pub pids: Vec<u32>,
}

impl Target {
    /// One sample summed over every counted process (its `at` is now).
    pub fn sample(&self) -> io::Result<Sample> {
        let mut all = self.pids.clone();
        all.extend(descendants(&self.pids));
        let mut sum = sample(all[0])?;
        for &pid in &all[1..] {
            // A backend that exited between the scan and the read is simply not counted.
            if let Ok(s) = sample(pid) {
                sum.cpu += s.cpu;
                sum.sys += s.sys;
                sum.rss_kb += s.rss_kb;
                sum.cpu_wait += s.cpu_wait;
                sum.syscalls.0 += s.syscalls.0;
                sum.syscalls.1 += s.syscalls.1;
            }
        }
        Ok(sum)
    }

    /// Samples of each counted process by itself (descendants folded into their root).
    pub fn sample_each(&self) -> Vec<io::Result<Sample>> {
        self.pids
            .iter()
            .map(|&p| {
                Target {
                    kind: self.kind,
                    addr: self.addr,
                    read_addr: self.read_addr,
                    pids: vec![p],
                }
                .sample()
            })
            .collect()
    }
}

/// Every process below `roots` (children, their children, …), from one scan of `/proc`.
fn descendants(roots: &[u32]) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Field 4 (ppid) is the second after the command name.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found: Vec<u32> = Vec::new();
    let mut frontier: Vec<u32> = roots.to_vec();
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parent_of {
            if parent == p && !found.contains(&child) && !roots.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// Which server a child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chatwire,
    Floor,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chatwire => "chatwire",
            Kind::Floor => "floor",
        }
    }
}

/// A server under test, running as a child process.
pub struct ServerProc {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
}

/// A free loopback port (bound and released; the server binds it right after).
fn free_addr() -> io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.local_addr()
}

pub struct SpawnOptions<'a> {
    pub chatwire: &'a Path,
    pub db: &'a str,
    pub delay_ms: u64,
    pub extra_args: &'a [String],
    pub pin_core: Option<usize>,
    pub log_dir: &'a Path,
    pub label: &'a str,
}

impl ServerProc {
    /// Starts the server and waits (bounded) until `/healthz` answers.
    pub async fn start(kind: Kind, opt: &SpawnOptions<'_>) -> io::Result<ServerProc> {
        let addr = free_addr()?;
        let mut cmd = match kind {
            Kind::Chatwire => {
                let mut c = Command::new(opt.chatwire);
                c.arg("--addr")
                    .arg(addr.to_string())
                    .arg("--db")
                    .arg(opt.db)
                    .arg("--offline-delay-ms")
                    .arg(opt.delay_ms.to_string())
                    .arg("--idle-secs")
                    .arg("3600")
                    .arg("--keepalive-secs")
                    .arg("15")
                    .args(limit_options(opt.chatwire))
                    .args(opt.extra_args);
                c
            }
            Kind::Floor => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg("floor").arg("--addr").arg(addr.to_string());
                c
            }
        };
        std::fs::create_dir_all(opt.log_dir)?;
        let log: PathBuf = opt
            .log_dir
            .join(format!("{}-{}.log", kind.name(), opt.label));
        let log = std::fs::File::create(log)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if let Some(core) = opt.pin_core {
            // SAFETY: only async-signal-safe work (one syscall) between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(core, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                    Ok(())
                });
            }
        }
        let child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("child has no pid"))?;
        let server = ServerProc {
            kind,
            addr,
            pid,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut http = Http::new(addr);
            if let Ok((200, _)) = http.request("GET", "/healthz", None, None).await {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{} did not become ready (see {})",
                    kind.name(),
                    opt.log_dir.display()
                )));
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn sample(&self) -> io::Result<Sample> {
        sample(self.pid)
    }

    /// This server alone, as the streaming scenarios see it.
    pub fn target(&self) -> Target {
        Target {
            kind: self.kind,
            addr: self.addr,
            read_addr: self.addr,
            pids: vec![self.pid],
        }
    }

    /// SIGKILL now (a crash); [`ServerProc::stop`] then reaps it.
    pub fn kill_now(&mut self) {
        let _ = self.child.start_kill();
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(mut self, grace: Duration) {
        // SAFETY: kill() with our own child's pid.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
