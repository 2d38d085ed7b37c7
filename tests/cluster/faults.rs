//! Faults with real nodes: a clean handoff (SIGTERM), a paused owner (SIGSTOP past its
//! lease, then SIGCONT), Redis restarted empty mid-reply, pub/sub connections dropped,
//! Redis paused (`CLIENT PAUSE`) mid-reply, and a client posting through the balancer
//! while the owner is killed.

use std::time::Duration;

use crate::nodes::{Cluster, LEASE_MS, WAIT};
use crate::sse::{Checker, Event, Stream};

fn is_end(e: &Event) -> bool {
    matches!(
        e.event.as_str(),
        "reply.completed" | "reply.interrupted" | "reply.failed"
    )
}

/// Whether `e` ends reply `reply` for its client: its terminal event, or a `sync` whose
/// snapshot shows it no longer streaming (a takeover's `sync` may stand in for the end).
fn ends(e: &Event, reply: &str) -> bool {
    if e.event == "sync" {
        return e.data["messages"].as_array().is_some_and(|ms| {
            ms.iter()
                .any(|m| m["id"] == reply && m["status"] != "streaming")
        });
    }
    is_end(e) && e.data["reply_id"] == reply
}

/// Streams on every node but the conversation's owner.
async fn readers(
    c: &Cluster,
    conv: &crate::nodes::Conv,
    checker: &Checker,
) -> (usize, Vec<Stream>) {
    let owner = c.owner(conv).await.expect("an owner");
    let streams = (0..c.nodes.len())
        .filter(|&i| i != owner)
        .map(|i| c.stream(&format!("s{i}"), i, conv, None, checker.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    (owner, streams)
}

#[tokio::test]
async fn a_clean_handoff_keeps_numbering_and_replay_seamless() {
    let mut c = Cluster::start(3).await;
    let conv = c.create().await;
    let checker = Checker::default();
    let (owner, mut streams) = readers(&c, &conv, &checker).await;
    let (status, _) = c.post(&c.nodes[owner].url(""), &conv, "/count 5").await;
    assert_eq!(status, 202);
    let mut first = Vec::new();
    for s in &mut streams {
        first = s.until(WAIT, is_end).await;
    }
    c.nodes[owner].terminate().await;
    let other = (owner + 1) % 3;
    let (status, posted) = c.post(&c.nodes[other].url(""), &conv, "/count 5").await;
    assert_eq!(status, 202, "{posted}\n{}", c.logs());
    for s in &mut streams {
        let events = s.until(WAIT, is_end).await;
        assert!(
            events.iter().all(|e| e.event != "sync"),
            "no sync after a clean handoff: {events:?}"
        );
        assert_eq!(
            events[0].id,
            first.last().unwrap().id + 1,
            "numbering continues"
        );
    }
    // A resume point from before the handoff replays exactly, on a node that was not the
    // owner of either.
    let from = first[1].id;
    let reader = (0..3).find(|&i| i != owner && i != other).unwrap();
    let mut late = c.stream("late", reader, &conv, Some(from), checker.clone());
    let replay = late
        .until(WAIT, |e| is_end(e) && e.id > first.last().unwrap().id)
        .await;
    assert_eq!(replay[0].id, from + 1);
    assert!(replay.iter().all(|e| e.event != "sync"));
    let clean = c
        .metric(other, "chatwire_lease_takeovers_total{previous=\"clean\"}")
        .await;
    assert_eq!(clean, 1, "the next owner counts a clean takeover");
    checker.assert_clean();
}

#[tokio::test]
async fn a_paused_owner_past_its_lease_cannot_write_when_it_wakes() {
    let c = Cluster::start(3).await;
    let conv = c.create().await;
    let checker = Checker::default();
    let (owner, mut streams) = readers(&c, &conv, &checker).await;
    let (status, posted) = c
        .post(&c.nodes[owner].url(""), &conv, "/count 100000")
        .await;
    assert_eq!(status, 202);
    let reply = posted["reply_id"].as_str().unwrap().to_owned();
    for s in &mut streams {
        s.until(WAIT, |e| e.event == "reply.delta").await;
    }
    c.nodes[owner].signal("STOP");
    let limit = Duration::from_millis(LEASE_MS) + Duration::from_secs(10);
    let mut failed_text = String::new();
    for s in &mut streams {
        let events = s.until(limit, |e| e.event == "reply.failed").await;
        failed_text = events.last().unwrap().data["text"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    c.nodes[owner].signal("CONT");
    // The stale owner wakes mid-reply: whatever it tries is refused by Redis's scripts (the
    // lease) or by PostgreSQL (its epoch is fenced), and it stops without writing. A new message works meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let other = (owner + 1) % 3;
    let (status, _) = c.post(&c.nodes[other].url(""), &conv, "/count 3").await;
    assert_eq!(status, 202);
    for s in &mut streams {
        s.until(WAIT, |e| e.event == "reply.completed").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let history = c
        .get(&c.nodes[other].url(""), &conv)
        .await
        .expect("history");
    let cut = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == reply)
        .expect("the cut-off reply")
        .clone();
    assert_eq!(
        cut["status"], "failed",
        "the stale owner did not overwrite it: {cut}"
    );
    assert_eq!(cut["text"], failed_text.as_str());
    assert!(
        c.nodes[owner]
            .output
            .lock()
            .unwrap()
            .contains("stopping without writes"),
        "{}",
        c.logs()
    );
    let fenced = c.metric(owner, "chatwire_fenced_writes_total").await;
    assert!(fenced >= 1, "the stale owner counts its refused writes");
    checker.assert_clean();
}

#[tokio::test]
async fn redis_restarted_empty_mid_reply_loses_nothing_acknowledged() {
    let mut c = Cluster::start(3).await;
    let conv = c.create().await;
    let checker = Checker::default();
    let (owner, mut streams) = readers(&c, &conv, &checker).await;
    let (status, posted) = c.post(&c.nodes[owner].url(""), &conv, "/count 250").await;
    assert_eq!(status, 202);
    let first = posted["message_id"].as_str().unwrap().to_owned();
    for s in &mut streams {
        s.until(WAIT, |e| e.event == "reply.delta").await;
    }
    c.redis.restart().await;
    let restarted = std::time::Instant::now();
    // Working again within 10 s: a new message is acknowledged and streams everywhere.
    let mut second = None;
    while restarted.elapsed() < Duration::from_secs(10) {
        let (status, posted) = c.post(&c.lb_url(""), &conv, "/count 3").await;
        if status == 202 {
            second = posted["message_id"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second =
        second.unwrap_or_else(|| panic!("no 202 within 10 s of the restart\n{}", c.logs()));
    for s in &mut streams {
        s.until(WAIT, |e| {
            e.event == "reply.completed" && e.data["text"] == "1 2 3"
        })
        .await;
    }
    let history = c.get(&c.lb_url(""), &conv).await.expect("history");
    let ids: Vec<_> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    for m in [first, second] {
        assert!(
            ids.contains(&serde_json::Value::from(m.clone())),
            "{m} kept: {history}"
        );
    }
    checker.assert_clean();
}

#[tokio::test]
async fn dropped_pubsub_connections_lose_no_frame() {
    let c = Cluster::start(3).await;
    let conv = c.create().await;
    let checker = Checker::default();
    let (owner, mut streams) = readers(&c, &conv, &checker).await;
    let (status, posted) = c.post(&c.nodes[owner].url(""), &conv, "/count 150").await;
    assert_eq!(status, 202);
    let reply = posted["reply_id"].as_str().unwrap().to_owned();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    }
    let expected: String = (1..=150)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    for s in &mut streams {
        let events = s
            .until(WAIT, |e| is_end(e) && e.data["reply_id"] == reply)
            .await;
        assert_eq!(events.last().unwrap().data["text"], expected.as_str());
    }
    checker.assert_clean();
}

#[tokio::test]
async fn every_message_acknowledged_through_an_owner_kill_is_kept() {
    let mut c = Cluster::start(3).await;
    let conv = c.create().await;
    let owner = c.owner(&conv).await.expect("an owner");
    let (http, lb, conv2) = (c.http.clone(), c.lb_url(""), conv.clone());
    // A client posting in a loop through the balancer, before, during and after the kill.
    let poster = tokio::spawn(async move {
        let mut acked = Vec::new();
        let started = std::time::Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_millis(LEASE_MS) + Duration::from_secs(6) {
            n += 1;
            let resp = http
                .post(format!("{lb}/api/conversations/{}/messages", conv2.id))
                .bearer_auth(&conv2.token)
                .json(&serde_json::json!({ "text": format!("/count {}", 50 + n) }))
                .timeout(Duration::from_secs(8))
                .send()
                .await;
            if let Ok(r) = resp
                && r.status().as_u16() == 202
                && let Ok(v) = r.json::<serde_json::Value>().await
            {
                acked.push(v["message_id"].as_str().unwrap_or_default().to_owned());
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    c.nodes[owner].kill().await;
    let acked = poster.await.unwrap();
    assert!(acked.len() >= 5, "{acked:?}\n{}", c.logs());
    let survivor = (owner + 1) % 3;
    let history = c
        .get(&c.nodes[survivor].url(""), &conv)
        .await
        .expect("history");
    let ids: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    for m in &acked {
        assert!(ids.contains(&m.as_str()), "acknowledged {m} kept");
    }
}

#[tokio::test]
async fn a_paused_redis_mid_reply_keeps_every_stream_exact() {
    let c = Cluster::start(3).await;
    let conv = c.create().await;
    let checker = Checker::default();
    let (owner, mut streams) = readers(&c, &conv, &checker).await;
    let (status, posted) = c.post(&c.nodes[owner].url(""), &conv, "/count 200").await;
    assert_eq!(status, 202);
    let reply = posted["reply_id"].as_str().unwrap().to_owned();
    for s in &mut streams {
        s.until(WAIT, |e| e.event == "reply.delta").await;
    }
    // Every client of Redis waits (longer than the nodes' 2 s command timeout); keys do
    // not expire meanwhile. A post meanwhile is refused or, if acknowledged, kept.
    c.redis.command(&["CLIENT", "PAUSE", "3000", "ALL"]).await;
    let (during, body) = c.post(&c.lb_url(""), &conv, "/count 2").await;
    assert!(
        matches!(during, 202 | 503),
        "{during}: {body}\n{}",
        c.logs()
    );
    for s in &mut streams {
        // Usually `reply.failed` after a `sync` (the owner stopped; the next took over);
        // or the `sync` itself already shows the reply ended.
        s.until(WAIT, |e| ends(e, &reply)).await;
    }
    // Working again: a new reply streams, complete, on every node.
    let mut again = None;
    let deadline = std::time::Instant::now() + WAIT;
    while again.is_none() && std::time::Instant::now() < deadline {
        let (status, posted) = c.post(&c.lb_url(""), &conv, "/count 3").await;
        if status == 202 {
            again = posted["reply_id"].as_str().map(str::to_owned);
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let again = again.unwrap_or_else(|| panic!("no 202 after the pause\n{}", c.logs()));
    for s in &mut streams {
        let events = s
            .until(WAIT, |e| is_end(e) && e.data["reply_id"] == again)
            .await;
        assert_eq!(events.last().unwrap().data["text"], "1 2 3");
    }
    if during == 202 {
        let history = c.get(&c.lb_url(""), &conv).await.expect("history");
        let kept = history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == body["message_id"]);
        assert!(
            kept,
            "the message acknowledged during the pause is kept: {history}"
        );
    }
    checker.assert_clean();
}
