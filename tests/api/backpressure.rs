//! Slow readers: a reader that cannot keep up never makes the server hold more than a
//! bounded amount for it, never slows the others, and resumes without losing or repeating
//! a word. Runs the real binary so its resident memory can be measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::process::{RealServer, TempDb};
use crate::raw_sse::RawSse;

/// What a reader saw of the reply: ids of its events in order, and the texts.
#[derive(Default)]
struct Seen {
    ids: Vec<u64>,
    deltas: String,
    completed: Option<String>,
    syncs: usize,
}

impl Seen {
    fn take(&mut self, block: &str) {
        let mut id = None;
        let mut event = "";
        let mut data = None;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse::<u64>().unwrap());
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = v;
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str::<serde_json::Value>(v).unwrap());
            }
        }
        let (Some(id), Some(data)) = (id, data) else {
            return;
        };
        self.ids.push(id);
        match event {
            "reply.delta" => self.deltas.push_str(data["text"].as_str().unwrap()),
            "reply.completed" => self.completed = Some(data["text"].as_str().unwrap().into()),
            "sync" => self.syncs += 1,
            _ => {}
        }
    }
}

#[tokio::test]
async fn slow_readers_stay_bounded_do_not_slow_others_and_resume_without_loss() {
    let _one = crate::process::one_real_server_at_a_time().await;
    const WORDS: u32 = 60_000;
    const SLOW: usize = 8;
    let db = TempDb::new("slow");
    let server = RealServer::start(
        &db.url(),
        &["--offline-delay-ms", "0"],
        &[("RUST_LOG", "info,chatwire::web::sse=debug")],
    )
    .await;
    let app = server.app();
    let conv = app.create().await;
    let mut fast = app.sse(&conv, None).await;
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        slow.push(RawSse::open(server.addr, &conv).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = server.rss_kib();

    // Sample the server's memory all along.
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), server.pid);
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kib) = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // The slow readers trickle: 512 bytes every 20 ms, until the fast one is done.
    let fast_done = Arc::new(AtomicBool::new(false));
    let mut slow_tasks = Vec::new();
    for mut reader in slow {
        let fast_done = fast_done.clone();
        slow_tasks.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            let deadline = Instant::now() + Duration::from_secs(120);
            while seen.completed.is_none() {
                assert!(Instant::now() < deadline, "slow reader timed out");
                let fast_now = fast_done.load(Ordering::Relaxed);
                let more = reader.read(if fast_now { 256 * 1024 } else { 512 }).await;
                for block in reader.blocks() {
                    seen.take(&block);
                }
                assert!(more && !reader.ended, "the stream ended early");
                if !fast_now {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            seen
        }));
    }

    let started = Instant::now();
    app.post_ok(&conv, &format!("/count {WORDS}")).await;
    let events = fast.events_until(is_reply_end).await;
    let fast_took = started.elapsed();
    fast_done.store(true, Ordering::Relaxed);
    let fast_text: String = events
        .iter()
        .filter(|e| e.kind() == "reply.delta")
        .map(|e| e.field("text"))
        .collect();
    assert_eq!(fast_text, count_text(WORDS));
    assert_eq!(events.last().unwrap().field("text"), count_text(WORDS));

    let mut slowest = Duration::ZERO;
    for task in slow_tasks {
        let seen = task.await.unwrap();
        slowest = slowest.max(started.elapsed());
        assert_eq!(seen.syncs, 0, "the reply in progress is always replayable");
        assert_eq!(seen.completed.as_deref(), Some(count_text(WORDS).as_str()));
        assert_eq!(seen.deltas, count_text(WORDS), "every word once, in order");
        for pair in seen.ids.windows(2) {
            assert_eq!(pair[1], pair[0] + 1, "no gap, no repeat");
        }
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let growth_mib = (peak.load(Ordering::Relaxed).saturating_sub(baseline)) as f64 / 1024.0;
    eprintln!(
        "{WORDS} words; fast reader done in {fast_took:?}, slow readers in {slowest:?}; \
         server RSS {:.1} MiB at rest, peak +{growth_mib:.1} MiB",
        baseline as f64 / 1024.0
    );
    assert!(
        server.log().contains("a slow reader fell behind"),
        "the slow readers really fell behind the live channel"
    );
    // Measured: the reply in progress, kept whole for resumes, costs about 12 MiB with
    // no slow reader at all; each slow reader adds about 0.2 MiB (its socket buffers and
    // one replay page). Holding the reply once more per slow reader would add 15-45 MiB.
    assert!(
        growth_mib < 24.0,
        "server memory grew by {growth_mib:.1} MiB"
    );
    // At their pace (25 KB/s) the slow readers would need minutes for the ~5 MB reply.
    assert!(
        fast_took < Duration::from_secs(30),
        "the fast reader was held back: {fast_took:?}"
    );
    drop(server);
}

#[tokio::test]
async fn a_reader_behind_the_replay_window_gets_a_sync_never_a_gap() {
    // A tiny replay window and live ring, so a stalled reader is soon past both.
    let app = spawn_app_with(|c| {
        c.limits.replay_events = 50;
        c.limits.broadcast_capacity = 16;
    })
    .await;
    let conv = app.create().await;
    let mut reader = RawSse::open(app.addr, &conv).await;
    let mut last_reply = String::new();
    for _ in 0..8 {
        last_reply = app.post_ok(&conv, "/count 5000").await;
        crate::streaming::wait_complete(&app, &conv).await;
    }
    // Now read everything the stalled reader was sent, until it knows the last reply
    // completed (from its event, or from a `sync` taken after it).
    let knows_the_end = |b: &String| {
        let Some(data) = b.lines().find_map(|l| l.strip_prefix("data: ")) else {
            return false;
        };
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        if b.contains("event: reply.completed") {
            return data["reply_id"] == last_reply.as_str();
        }
        b.contains("event: sync")
            && data["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == last_reply.as_str() && m["status"] == "complete")
    };
    let mut blocks: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the reader never caught up");
        assert!(reader.read(256 * 1024).await, "the stream ended early");
        let new = reader.blocks();
        let end = new.iter().any(knows_the_end);
        blocks.extend(new);
        if end {
            break;
        }
    }
    let events: Vec<(u64, &str)> = blocks
        .iter()
        .filter_map(|b| {
            let id = b.lines().find_map(|l| l.strip_prefix("id: "))?;
            let kind = b.lines().find_map(|l| l.strip_prefix("event: "))?;
            Some((id.parse().unwrap(), kind))
        })
        .collect();
    let syncs = events.iter().filter(|(_, k)| *k == "sync").count();
    assert!(
        syncs >= 1,
        "the reader fell behind the window at least once"
    );
    for pair in events.windows(2) {
        let ((a, _), (b, kind)) = (pair[0], pair[1]);
        assert!(
            b == a + 1 || (kind == "sync" && b > a),
            "a gap without a sync: {a} then {b} ({kind})"
        );
    }
    // The last sync holds the whole history up to its point, and the rest follows it.
    let sync = blocks
        .iter()
        .rev()
        .find(|b| b.contains("event: sync"))
        .unwrap();
    let data = sync.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let data: serde_json::Value = serde_json::from_str(data).unwrap();
    for m in data["messages"].as_array().unwrap() {
        if m["role"] == "assistant" && m["status"] == "complete" {
            assert_eq!(m["text"], count_text(5000));
        }
    }
}
