//! The Markdown report of `loadgen cluster`: one column per set-up (one node on SQLite,
//! one node on PostgreSQL, two nodes + Redis), the cluster's ratio to one node on
//! PostgreSQL, the targets, and the takeover times.

use crate::cluster::{ClusterResults, SetupResult, takeover_dists};
use crate::interrupts::Interrupts;
use crate::stats::{Dist, Streaming, ms};

fn paced(s: &Option<SetupResult>) -> Option<&Streaming> {
    s.as_ref()?.paced.as_ref()?.as_ref().ok()
}

fn flat(s: &Option<SetupResult>) -> Option<&Streaming> {
    s.as_ref()?.flat.as_ref()?.as_ref().ok()
}

fn intr(s: &Option<SetupResult>) -> Option<&Interrupts> {
    s.as_ref()?.interrupts.as_ref()?.as_ref().ok()
}

fn cell<T>(v: Option<&T>, f: impl Fn(&T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "—".into())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

fn yes(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "—",
    }
}

fn held(s: &Streaming) -> String {
    format!(
        "{} × {} / {}",
        s.streams,
        s.deltas / s.streams.max(1) as u64,
        s.errors
    )
}

/// One row: figure, the three set-ups, ratio cluster / one node on PostgreSQL, target, met.
type Row = [String; 7];

fn streaming_rows(
    r: &ClusterResults,
    what: &str,
    pick: fn(&Option<SetupResult>) -> Option<&Streaming>,
    target_cpu: bool,
) -> Vec<Row> {
    let (a, b, c) = (pick(&r.sqlite), pick(&r.postgres), pick(&r.cluster));
    let cpu = |s: Option<&Streaming>| s.map(Streaming::cpu_per_million);
    let cpu_ratio = match (cpu(c), cpu(b)) {
        (Some(c), Some(b)) if b > 0.0 => Some(c / b),
        _ => None,
    };
    let p99 = |s: Option<&Streaming>| s.map(|s| s.lateness.p99);
    let mut rows = vec![
        [
            format!("{what}: streams × deltas each / errors"),
            cell(a, held),
            cell(b, held),
            cell(c, held),
            "—".into(),
            String::new(),
            String::new(),
        ],
        [
            format!("{what}: CPU-seconds per 1M delivered deltas, all server processes"),
            cell(a, |s| format!("{:.2} s", s.cpu_per_million())),
            cell(b, |s| format!("{:.2} s", s.cpu_per_million())),
            cell(c, |s| format!("{:.2} s", s.cpu_per_million())),
            ratio(cpu(c), cpu(b)),
            if target_cpu {
                "≤ 2.5× one node".into()
            } else {
                String::new()
            },
            if target_cpu {
                yes(cpu_ratio.map(|x| x <= 2.5)).into()
            } else {
                String::new()
            },
        ],
        [
            format!("{what}: delivered deltas per second"),
            cell(a, |s| format!("{:.0}", s.deltas_per_sec())),
            cell(b, |s| format!("{:.0}", s.deltas_per_sec())),
            cell(c, |s| format!("{:.0}", s.deltas_per_sec())),
            ratio(
                c.map(Streaming::deltas_per_sec),
                b.map(Streaming::deltas_per_sec),
            ),
            String::new(),
            String::new(),
        ],
        [
            format!("{what}: first delta p50 / p99"),
            cell(a, |s| s.first_delta.show()),
            cell(b, |s| s.first_delta.show()),
            cell(c, |s| s.first_delta.show()),
            ratio(c.map(|s| s.first_delta.p99), b.map(|s| s.first_delta.p99)),
            String::new(),
            String::new(),
        ],
    ];
    if target_cpu {
        rows.push([
            format!("{what}: delta lateness p50 / p99"),
            cell(a, |s| s.lateness.show()),
            cell(b, |s| s.lateness.show()),
            cell(c, |s| s.lateness.show()),
            ratio(p99(c), p99(b)),
            "p99 < 5 ms (cluster)".into(),
            yes(p99(c).map(|x| x < 5.0)).into(),
        ]);
    }
    rows
}

pub fn markdown(r: &ClusterResults) -> String {
    let mut rows = streaming_rows(r, "(c) paced", paced, true);
    rows.extend(streaming_rows(r, "(d) flat out", flat, false));
    let (a, b, c) = (intr(&r.sqlite), intr(&r.postgres), intr(&r.cluster));
    let show = |i: &Interrupts| {
        format!(
            "{} ({} samples, {} errors)",
            i.latency.show(),
            i.latency.n,
            i.errors
        )
    };
    let p99 = |i: Option<&Interrupts>| i.map(|i| i.latency.p99);
    rows.push([
        "(e) interrupt → `reply.interrupted` p50 / p99 (cluster: WebSocket and SSE on node 1, owner node 0)".into(),
        cell(a, show),
        cell(b, show),
        cell(c, show),
        ratio(p99(c), p99(b)),
        "p99 < 15 ms (cluster)".into(),
        yes(p99(c).map(|x| x < 15.0)).into(),
    ]);
    let mut out = String::new();
    out.push_str(&format!("### Cluster run of {}\n\n", crate::report::date()));
    out.push_str(&format!("- Machine: {}\n", crate::report::machine()));
    out.push_str(&format!(
        "- Load average (1/5/15 min) before: {}, after: {}; the whole run took {:.0} s\n",
        r.load_before, r.load_after, r.secs
    ));
    out.push_str("- Nothing pinned; CPU = every server process of the set-up (chatwire nodes, redis-server, PostgreSQL with its backends), from /proc\n\n");
    out.push_str("| Figure | one node, SQLite | one node, PostgreSQL | 2 nodes + Redis, PostgreSQL | cluster / one node (PostgreSQL) | Target | Met |\n|---|---|---|---|---|---|---|\n");
    for row in &rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    let (failed, first) = takeover_dists(&r.takeovers);
    if !r.takeovers.is_empty() {
        out.push_str(&format!(
            "\nTakeover after SIGKILL of the owner mid-reply (`--lease-ms {}`, {} of {} rounds succeeded): kill → `reply.failed` on the other node's stream {}; kill → first delta of a new reply posted to that node {}.\n",
            r.lease_ms,
            failed.n,
            r.takeovers.len(),
            range(&failed),
            range(&first),
        ));
        for (i, t) in r.takeovers.iter().enumerate() {
            if let Err(e) = t {
                out.push_str(&format!("- takeover {i}: {e}\n"));
            }
        }
    }
    out.push('\n');
    for (name, s) in [
        ("one node, SQLite", &r.sqlite),
        ("one node, PostgreSQL", &r.postgres),
        ("cluster", &r.cluster),
    ] {
        let Some(s) = s else { continue };
        if !s.paced_by_process.is_empty() {
            let parts: Vec<String> = s
                .paced_by_process
                .iter()
                .map(|(n, c)| format!("{n} {c:.2} s"))
                .collect();
            out.push_str(&format!(
                "- (c) {name}: CPU by process over the whole scenario (set-up included): {}\n",
                parts.join(", ")
            ));
        }
        if let Some(Ok(p)) = &s.paced {
            out.push_str(&format!("- (c) {name}: window {:.1} s, CPU {:.2} s ({:.2} s kernel), load generator {:.2} s; {}\n", p.secs, p.cpu_secs, p.sys_secs, p.client_cpu_secs, p.server_counters));
        }
        for (what, res) in [("paced", &s.paced), ("flat", &s.flat)] {
            if let Some(Err(e)) = res {
                out.push_str(&format!("- {name} {what}: failed: {e}\n"));
            }
        }
        if let Some(Err(e)) = &s.interrupts {
            out.push_str(&format!("- {name} interrupts: failed: {e}\n"));
        }
    }
    out
}

fn range(d: &Dist) -> String {
    if d.n == 0 {
        return "n/a".into();
    }
    format!("median {}, max {}", ms(d.p50), ms(d.max))
}
