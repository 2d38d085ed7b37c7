//! Three real nodes behind a round-robin balancer, one conversation across all of them,
//! every SSE stream fed to the invariant checker.

use std::time::Duration;

use crate::nodes::{Cluster, LEASE_MS, WAIT};
use crate::sse::{Checker, Stream, deltas_of};

fn is_end(e: &crate::sse::Event) -> bool {
    matches!(
        e.event.as_str(),
        "reply.completed" | "reply.interrupted" | "reply.failed"
    )
}

#[tokio::test]
async fn a_message_posted_on_one_node_streams_on_the_others() {
    let c = Cluster::start(3).await;
    let conv = c.create().await;
    let checker = Checker::default();
    let mut streams: Vec<Stream> = (0..3)
        .map(|i| c.stream(&format!("s{i}"), i, &conv, None, checker.clone()))
        .collect();
    // Let the streams subscribe before the message goes out (they start live).
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (round, node) in [1usize, 2, 0].into_iter().enumerate() {
        let (status, posted) = c.post(&c.nodes[node].url(""), &conv, "/count 15").await;
        assert_eq!(status, 202, "round {round}: {posted}\n{}", c.logs());
        let reply = posted["reply_id"].as_str().unwrap().to_owned();
        for s in &mut streams {
            let events = s
                .until(WAIT, |e| is_end(e) && e.data["reply_id"] == reply)
                .await;
            let end = events.last().unwrap();
            assert_eq!(end.event, "reply.completed");
            assert_eq!(
                end.data["text"],
                (1..=15)
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            assert_eq!(
                deltas_of(&events, &reply),
                end.data["text"].as_str().unwrap()
            );
        }
    }
    // Regenerate, asked at a node that need not own it: the new reply replaces the last.
    let resp = c
        .http
        .post(c.nodes[1].url(&format!("/api/conversations/{}/regenerate", conv.id)))
        .bearer_auth(&conv.token)
        .send()
        .await
        .expect("regenerate");
    assert_eq!(resp.status().as_u16(), 202);
    let regenerated: serde_json::Value = resp.json().await.expect("json");
    let reply = regenerated["reply_id"].as_str().unwrap().to_owned();
    for s in &mut streams {
        let events = s
            .until(WAIT, |e| is_end(e) && e.data["reply_id"] == reply)
            .await;
        assert!(
            events
                .iter()
                .any(|e| e.event == "reply.started" && !e.data["replaces"].is_null())
        );
    }
    // The history is the same whichever node is asked.
    for n in &c.nodes {
        let v = c.get(&n.url(""), &conv).await.expect("history");
        assert_eq!(v["messages"].as_array().unwrap().len(), 6, "{v}");
    }
    checker.assert_clean();
}

#[tokio::test]
async fn an_interrupt_from_another_node_stops_the_reply_everywhere() {
    let c = Cluster::start(3).await;
    let conv = c.create().await;
    let checker = Checker::default();
    let mut a = c.stream("a", 0, &conv, None, checker.clone());
    let mut b = c.stream("b", 2, &conv, None, checker.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, posted) = c.post(&c.nodes[1].url(""), &conv, "/count 5000").await;
    assert_eq!(status, 202, "{posted}");
    let reply = posted["reply_id"].as_str().unwrap().to_owned();
    a.until(WAIT, |e| e.event == "reply.delta").await;
    assert_eq!(c.interrupt(&c.nodes[2].url(""), &conv).await, 202);
    for s in [&mut a, &mut b] {
        let events = s.until(WAIT, is_end).await;
        let end = events.last().unwrap();
        assert_eq!(end.event, "reply.interrupted");
        assert_eq!(end.data["reply_id"], reply);
    }
    // Barge-in from the third node: the new message interrupts nothing (already stopped)
    // and streams; a fourth message barges into it.
    let (_, second) = c.post(&c.nodes[0].url(""), &conv, "/count 5000").await;
    let second = second["reply_id"].as_str().unwrap().to_owned();
    b.until(WAIT, |e| {
        e.event == "reply.delta" && e.data["reply_id"] == second
    })
    .await;
    let (status, _) = c.post(&c.nodes[2].url(""), &conv, "/count 3").await;
    assert_eq!(status, 202);
    let events = b.until(WAIT, |e| e.event == "reply.completed").await;
    assert!(
        events
            .iter()
            .any(|e| e.event == "reply.interrupted" && e.data["reply_id"] == second),
        "barge-in interrupted the running reply"
    );
    // Let stragglers arrive: nothing of an interrupted reply may follow.
    tokio::time::sleep(Duration::from_millis(300)).await;
    checker.assert_clean();
}

#[tokio::test]
async fn a_stream_resumes_on_another_node_without_gap_or_duplicate() {
    let c = Cluster::start(3).await;
    let conv = c.create().await;
    let checker = Checker::default();
    let mut first = c.stream("first", 0, &conv, None, checker.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, posted) = c.post(&c.lb_url(""), &conv, "/count 200").await;
    let reply = posted["reply_id"].as_str().unwrap().to_owned();
    let got = first
        .until(WAIT, |e| {
            e.event == "reply.delta" && e.data["text"].as_str().is_some_and(|t| t.trim() == "40")
        })
        .await;
    let seen = got.last().unwrap().id;
    drop(first);
    // The same logical stream, picked up on another node from its last id.
    let mut again = c.stream("first", 1, &conv, Some(seen), checker.clone());
    let rest = again.until(WAIT, |e| e.event == "reply.completed").await;
    assert_eq!(rest[0].id, seen + 1, "exact resume");
    let mut all = got.clone();
    all.extend(rest);
    let end = all.last().unwrap();
    assert_eq!(deltas_of(&all, &reply), end.data["text"].as_str().unwrap());
    checker.assert_clean();
}

#[tokio::test]
async fn killing_the_owner_mid_reply_fails_the_reply_on_the_other_nodes_within_the_lease() {
    let mut c = Cluster::start(3).await;
    let conv = c.create().await;
    let checker = Checker::default();
    // Make sure the owner is not node 0 or 1, where we read.
    let owner = c.owner(&conv).await.expect("an owner");
    let readers: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    let mut streams: Vec<Stream> = readers
        .iter()
        .map(|&i| c.stream(&format!("s{i}"), i, &conv, None, checker.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, posted) = c
        .post(&c.nodes[owner].url(""), &conv, "/count 100000")
        .await;
    assert_eq!(status, 202);
    let reply = posted["reply_id"].as_str().unwrap().to_owned();
    let mut before = Vec::new();
    for s in &mut streams {
        before.push(
            s.until(WAIT, |e| {
                e.event == "reply.delta"
                    && e.data["text"].as_str().is_some_and(|t| t.trim() == "20")
            })
            .await,
        );
    }
    let killed = std::time::Instant::now();
    c.nodes[owner].kill().await;
    let limit = Duration::from_millis(LEASE_MS) + Duration::from_secs(5);
    for (s, seen) in streams.iter_mut().zip(&before) {
        let events = s
            .until(limit + Duration::from_secs(5), |e| {
                e.event == "reply.failed"
            })
            .await;
        let failed = events.last().unwrap();
        assert_eq!(failed.data["reply_id"], reply);
        let mut all = seen.clone();
        all.extend(events.iter().cloned());
        let received = deltas_of(&all, &reply);
        let text = failed.data["text"].as_str().unwrap();
        assert!(
            text.starts_with(&received),
            "failed text keeps every delta received:\n{received}\nvs\n{text}"
        );
    }
    let took = killed.elapsed();
    assert!(
        took < limit + Duration::from_secs(3),
        "takeover took {took:?}\n{}",
        c.logs()
    );
    // New messages work, numbered above everything before.
    let survivor = c.nodes[readers[0]].url("");
    let (status, posted) = c.post(&survivor, &conv, "/count 3").await;
    assert_eq!(status, 202, "{posted}");
    for s in &mut streams {
        s.until(WAIT, |e| e.event == "reply.completed").await;
    }
    // The survivor that took over counts it.
    let mut crash_takeovers = 0;
    for &i in &readers {
        let text = c
            .http
            .get(c.nodes[i].url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(
            text.contains("chatwire_log_append_latency_seconds_count"),
            "{text}"
        );
        crash_takeovers += text
            .lines()
            .find_map(|l| l.strip_prefix("chatwire_lease_takeovers_total{previous=\"crash\"} "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    assert_eq!(crash_takeovers, 1);
    checker.assert_clean();
    eprintln!("takeover after SIGKILL: {took:?}");
}
