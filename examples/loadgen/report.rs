//! The results of a run and their Markdown report: every figure for chatwire beside the
//! floor's, the ratio, the target and whether it is met, plus the machine and the
//! conditions of the run (load average, pinning).

use std::time::Instant;

use crate::RunArgs;
use crate::interrupts::Interrupts;
use crate::procs::Kind;
use crate::stats::{Dist, Idle, Streaming, ms};

/// One figure for both servers (absent: not run; `Err`: the run failed).
pub struct Pair<T> {
    pub chatwire: Option<Result<T, String>>,
    pub floor: Option<Result<T, String>>,
}

impl<T> Default for Pair<T> {
    fn default() -> Self {
        Pair {
            chatwire: None,
            floor: None,
        }
    }
}

impl<T> Pair<T> {
    pub fn set(&mut self, kind: Kind, r: Result<T, String>) {
        match kind {
            Kind::Chatwire => self.chatwire = Some(r),
            Kind::Floor => self.floor = Some(r),
        }
    }
    fn cw(&self) -> Option<&T> {
        self.chatwire.as_ref()?.as_ref().ok()
    }
    fn fl(&self) -> Option<&T> {
        self.floor.as_ref()?.as_ref().ok()
    }
    fn errors(&self) -> Vec<String> {
        [("chatwire", &self.chatwire), ("floor", &self.floor)]
            .into_iter()
            .filter_map(|(n, r)| match r {
                Some(Err(e)) => Some(format!("{n}: {e}")),
                _ => None,
            })
            .collect()
    }
}

pub struct Results {
    args: RunArgs,
    pinned: bool,
    fds: u64,
    started: Instant,
    date: String,
    machine: String,
    load_before: String,
    load_after: String,
    secs: f64,
    pub idle_sse: Pair<Idle>,
    pub idle_ws: Pair<Idle>,
    pub paced: Pair<Streaming>,
    pub flat: Pair<Streaming>,
    pub interrupts: Pair<Interrupts>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub(crate) fn machine() -> String {
    let cpuinfo = read("/proc/cpuinfo");
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let mem_kb: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let kernel = read("/proc/sys/kernel/osrelease");
    format!(
        "{cpus} cores (`nproc`), {model}, {:.1} GiB RAM, Linux {}",
        mem_kb / 1024.0 / 1024.0,
        kernel.trim()
    )
}

fn loadavg() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Results {
    pub fn new(args: &RunArgs, pinned: bool, fds: u64) -> Self {
        Results {
            args: args.clone(),
            pinned,
            fds,
            started: Instant::now(),
            date: date(),
            machine: machine(),
            load_before: loadavg(),
            load_after: String::new(),
            secs: 0.0,
            idle_sse: Pair::default(),
            idle_ws: Pair::default(),
            paced: Pair::default(),
            flat: Pair::default(),
            interrupts: Pair::default(),
        }
    }

    pub fn finish(&mut self) {
        self.load_after = loadavg();
        self.secs = self.started.elapsed().as_secs_f64();
    }
}

/// One table row.
struct Row {
    scenario: &'static str,
    figure: String,
    chatwire: String,
    floor: String,
    ratio: String,
    target: &'static str,
    met: String,
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "—".into())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => {
            format!("{:.2}×", a / b)
        }
        _ => "—".into(),
    }
}

fn met(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes".into(),
        Some(false) => "**no**".into(),
        None => "—".into(),
    }
}

fn kib(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1} KiB")
    } else {
        "—".into()
    }
}

fn dist(d: &Dist) -> String {
    d.show()
}

pub fn markdown(r: &Results) -> String {
    let a = &r.args;
    let mut rows: Vec<Row> = Vec::new();

    // (a) idle SSE
    let (c, f) = (r.idle_sse.cw(), r.idle_sse.fl());
    rows.push(Row {
        scenario: "(a) idle SSE",
        figure: "streams held of wanted / errors".into(),
        chatwire: opt(c, |i| {
            format!("{} of {} / {}", i.still_open, i.wanted, i.errors)
        }),
        floor: opt(f, |i| {
            format!("{} of {} / {}", i.still_open, i.wanted, i.errors)
        }),
        ratio: "—".into(),
        target: "≥ 15,000, no errors",
        met: met(c.map(|i| i.still_open >= 15_000 && i.errors == 0)),
    });
    rows.push(Row {
        scenario: "(a) idle SSE",
        figure: "server RSS per idle stream (the connection)".into(),
        chatwire: opt(c, |i| kib(i.per_conn())),
        floor: opt(f, |i| kib(i.per_conn())),
        ratio: ratio(c.map(Idle::per_conn), f.map(Idle::per_conn)),
        target: "≤ 16 KB",
        met: met(c.map(|i| i.per_conn() <= 16.0)),
    });
    rows.push(Row {
        scenario: "(a) idle SSE",
        figure: "… plus its conversation (actor, channels, stored row)".into(),
        chatwire: opt(c, |i| kib(i.per_conn_with_setup())),
        floor: opt(f, |i| kib(i.per_conn_with_setup())),
        ratio: ratio(
            c.map(Idle::per_conn_with_setup),
            f.map(Idle::per_conn_with_setup),
        ),
        target: "",
        met: "".into(),
    });

    // (b) idle WebSockets
    let (c, f) = (r.idle_ws.cw(), r.idle_ws.fl());
    rows.push(Row {
        scenario: "(b) idle WebSocket",
        figure: "sockets held / errors".into(),
        chatwire: opt(c, |i| {
            if i.opened == 0 && !i.note.is_empty() {
                i.note.clone()
            } else {
                format!("{} / {}", i.still_open, i.errors)
            }
        }),
        floor: opt(f, |i| format!("{} / {}", i.still_open, i.errors)),
        ratio: "—".into(),
        target: "",
        met: "".into(),
    });
    rows.push(Row {
        scenario: "(b) idle WebSocket",
        figure: "server RSS per idle WebSocket".into(),
        chatwire: opt(c, |i| kib(i.per_conn())),
        floor: opt(f, |i| kib(i.per_conn())),
        ratio: ratio(c.map(Idle::per_conn), f.map(Idle::per_conn)),
        target: "≤ 12 KB",
        met: met(c.filter(|i| i.opened > 0).map(|i| i.per_conn() <= 12.0)),
    });

    // (c) paced, (d) flat out
    for (pair, label, paced) in [
        (&r.paced, "(c) paced", true),
        (&r.flat, "(d) flat out", false),
    ] {
        let (c, f) = (pair.cw(), pair.fl());
        rows.push(Row {
            scenario: if paced { "(c) paced" } else { "(d) flat out" },
            figure: "streams × deltas each / errors".into(),
            chatwire: opt(c, |s| {
                format!(
                    "{} × {} / {}",
                    s.streams,
                    s.deltas / s.streams.max(1) as u64,
                    s.errors
                )
            }),
            floor: opt(f, |s| {
                format!(
                    "{} × {} / {}",
                    s.streams,
                    s.deltas / s.streams.max(1) as u64,
                    s.errors
                )
            }),
            ratio: "—".into(),
            target: "",
            met: "".into(),
        });
        let _ = label;
        rows.push(Row {
            scenario: if paced { "(c) paced" } else { "(d) flat out" },
            figure: "delivered deltas per second".into(),
            chatwire: opt(c, |s| format!("{:.0}", s.deltas_per_sec())),
            floor: opt(f, |s| format!("{:.0}", s.deltas_per_sec())),
            ratio: ratio(
                c.map(Streaming::deltas_per_sec),
                f.map(Streaming::deltas_per_sec),
            ),
            target: "",
            met: "".into(),
        });
        let cpu_ratio = match (c, f) {
            (Some(c), Some(f)) => Some(c.cpu_per_million() / f.cpu_per_million()),
            _ => None,
        };
        rows.push(Row {
            scenario: if paced { "(c) paced" } else { "(d) flat out" },
            figure: "server CPU-seconds per 1M delivered deltas".into(),
            chatwire: opt(c, |s| format!("{:.2} s", s.cpu_per_million())),
            floor: opt(f, |s| format!("{:.2} s", s.cpu_per_million())),
            ratio: ratio(
                c.map(Streaming::cpu_per_million),
                f.map(Streaming::cpu_per_million),
            ),
            target: "≤ 1.5× floor",
            met: met(cpu_ratio.filter(|r| r.is_finite()).map(|r| r <= 1.5)),
        });
        rows.push(Row {
            scenario: if paced { "(c) paced" } else { "(d) flat out" },
            figure: "server core busy / waiting for its core (other load)".into(),
            chatwire: opt(c, |s| {
                format!(
                    "{:.0} % / {:.0} %",
                    s.core_share() * 100.0,
                    s.cpu_wait_secs / s.secs.max(1e-9) * 100.0
                )
            }),
            floor: opt(f, |s| {
                format!(
                    "{:.0} % / {:.0} %",
                    s.core_share() * 100.0,
                    s.cpu_wait_secs / s.secs.max(1e-9) * 100.0
                )
            }),
            ratio: "—".into(),
            target: "",
            met: "".into(),
        });
        if paced {
            rows.push(Row {
                scenario: "(c) paced",
                figure: "delta lateness p50 / p99".into(),
                chatwire: opt(c, |s| dist(&s.lateness)),
                floor: opt(f, |s| dist(&s.lateness)),
                ratio: ratio(c.map(|s| s.lateness.p99), f.map(|s| s.lateness.p99)),
                target: "p99 < 2.5 ms",
                met: met(c.map(|s| s.lateness.n > 0 && s.lateness.p99 < 2.5)),
            });
            rows.push(Row {
                scenario: "(c) paced",
                figure: "… once every reply has started (steady state)".into(),
                chatwire: opt(c, |s| dist(&s.steady_lateness)),
                floor: opt(f, |s| dist(&s.steady_lateness)),
                ratio: ratio(
                    c.map(|s| s.steady_lateness.p99),
                    f.map(|s| s.steady_lateness.p99),
                ),
                target: "",
                met: "".into(),
            });
        }
        rows.push(Row {
            scenario: if paced { "(c) paced" } else { "(d) flat out" },
            figure: if paced {
                format!("first delta p50 / p99 (incl. the {} ms pause)", a.delay_ms)
            } else {
                "first delta p50 / p99".into()
            },
            chatwire: opt(c, |s| dist(&s.first_delta)),
            floor: opt(f, |s| dist(&s.first_delta)),
            ratio: ratio(c.map(|s| s.first_delta.p99), f.map(|s| s.first_delta.p99)),
            target: "",
            met: "".into(),
        });
    }

    // (e) interrupts
    let (c, f) = (r.interrupts.cw(), r.interrupts.fl());
    rows.push(Row {
        scenario: "(e) interrupts",
        figure: "interrupt → `reply.interrupted` p50 / p99".into(),
        chatwire: opt(c, |i| dist(&i.latency)),
        floor: opt(f, |i| dist(&i.latency)),
        ratio: ratio(c.map(|i| i.latency.p99), f.map(|i| i.latency.p99)),
        target: "p99 < 10 ms",
        met: met(c.map(|i| i.latency.n > 0 && i.latency.p99 < 10.0)),
    });
    rows.push(Row {
        scenario: "(e) interrupts",
        figure: "samples / errors; streams active (deltas/s)".into(),
        chatwire: opt(c, |i| {
            format!(
                "{} / {}; {} ({:.0}/s)",
                i.latency.n, i.errors, i.background, i.background_rate
            )
        }),
        floor: opt(f, |i| {
            format!(
                "{} / {}; {} ({:.0}/s)",
                i.latency.n, i.errors, i.background, i.background_rate
            )
        }),
        ratio: "—".into(),
        target: "",
        met: "".into(),
    });

    let mut out = String::new();
    out.push_str(&format!("### Run of {}\n\n", r.date));
    out.push_str(&format!("- Machine: {}\n", r.machine));
    out.push_str(&format!(
        "- Placement: {}; open-file limit {}\n",
        if r.pinned {
            "server (chatwire or floor) pinned to core 0, load generator to core 1"
        } else {
            "unpinned"
        },
        r.fds
    ));
    out.push_str(&format!(
        "- Load average (1/5/15 min) before: {}, after: {}; the whole run took {:.0} s\n",
        r.load_before, r.load_after, r.secs
    ));
    out.push_str(&format!(
        "- Settings: idle SSE {}, idle WS {}, paced {} streams × {} s at {} ms, flat out {} × {}, interrupts {} with {} streams\n\n",
        a.idle_sse,
        a.idle_ws,
        a.paced_streams,
        a.paced_secs,
        a.delay_ms,
        a.flat_streams,
        a.flat_words,
        a.interrupts,
        a.interrupt_streams
    ));
    out.push_str("| Scenario | Figure | chatwire | floor | chatwire / floor | Target | Met |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for row in &rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            row.scenario, row.figure, row.chatwire, row.floor, row.ratio, row.target, row.met
        ));
    }
    let mut notes = Vec::new();
    for (name, errs) in [
        ("idle SSE", r.idle_sse.errors()),
        ("idle WS", r.idle_ws.errors()),
        ("paced", r.paced.errors()),
        ("flat", r.flat.errors()),
        ("interrupts", r.interrupts.errors()),
    ] {
        for e in errs {
            notes.push(format!("- {name} failed: {e}"));
        }
    }
    for (name, pair) in [("(a)", &r.idle_sse), ("(b)", &r.idle_ws)] {
        if let Some(i) = pair.cw().filter(|i| !i.note.is_empty()) {
            notes.push(format!(
                "- {name} chatwire: {} (opened in {:.1} s)",
                i.note, i.open_secs
            ));
        }
    }
    if let Some(i) = r.interrupts.cw() {
        notes.push(format!("- (e) chatwire interrupts sent with {}", i.via));
    }
    for (name, pair) in [("(c)", &r.paced), ("(d)", &r.flat)] {
        for (who, s) in [("chatwire", pair.cw()), ("floor", pair.fl())] {
            if let Some(s) = s.filter(|s| s.deltas > 0) {
                notes.push(format!(
                    "- {name} {who}: per 1M delivered deltas {:.2} s in user space and {:.2} s in \
                     the kernel; per delta {:.2} read and {:.2} write system calls; load \
                     generator busy {:.0} % of its core",
                    (s.cpu_secs - s.sys_secs) * 1e6 / s.deltas as f64,
                    s.sys_secs * 1e6 / s.deltas as f64,
                    s.syscalls.0 as f64 / s.deltas as f64,
                    s.syscalls.1 as f64 / s.deltas as f64,
                    s.client_cpu_secs / s.secs.max(1e-9) * 100.0
                ));
            }
        }
        if let Some(s) = pair.cw() {
            notes.push(format!(
                "- {name} chatwire window {:.1} s, server CPU {:.2} s, lateness max {}; {}",
                s.secs,
                s.cpu_secs,
                ms(s.lateness.max),
                s.server_counters
            ));
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out
}
