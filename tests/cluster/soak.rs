//! A short soak through the balancer: several conversations, streams that reconnect through
//! the balancer, messages and random interrupts landing on any node. Every stream feeds
//! the checker; every acknowledged message is in the history at the end.

use std::time::Duration;

use rand::Rng;

use crate::nodes::Cluster;
use crate::sse::{Checker, Stream};

#[tokio::test]
async fn a_soak_with_random_interrupts_keeps_every_invariant() {
    let c = Cluster::start(3).await;
    let mut work = Vec::new();
    for k in 0..3 {
        let conv = c.create().await;
        let checker = Checker::default();
        let streams: Vec<Stream> = (0..2)
            .map(|i| {
                let bases = vec![c.lb_url("")];
                Stream::open(
                    &format!("c{k}s{i}"),
                    c.http.clone(),
                    bases,
                    &conv,
                    None,
                    checker.clone(),
                )
            })
            .collect();
        work.push((conv, checker, streams));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut acked: Vec<(usize, String)> = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        let k = rand::rng().random_range(0..work.len());
        let conv = &work[k].0;
        if rand::rng().random_bool(0.3) {
            let status = c.interrupt(&c.lb_url(""), conv).await;
            assert_eq!(status, 202);
        } else {
            let n = rand::rng().random_range(5..120);
            let (status, posted) = c.post(&c.lb_url(""), conv, &format!("/count {n}")).await;
            assert_eq!(status, 202, "{posted}\n{}", c.logs());
            acked.push((k, posted["message_id"].as_str().unwrap().to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(20..200))).await;
    }
    // Let every stream see its conversation's last reply end.
    for (conv, _, streams) in &mut work {
        let _ = c.interrupt(&c.lb_url(""), conv).await;
        for s in streams.iter_mut() {
            s.until(Duration::from_secs(20), |e| {
                matches!(
                    e.event.as_str(),
                    "reply.completed" | "reply.interrupted" | "reply.failed"
                )
            })
            .await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (k, (conv, checker, _)) in work.iter().enumerate() {
        checker.assert_clean();
        let history = c.get(&c.lb_url(""), conv).await.expect("history");
        let ids: Vec<&str> = history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        for (_, m) in acked.iter().filter(|(j, _)| *j == k) {
            assert!(ids.contains(&m.as_str()), "acknowledged {m} kept");
        }
    }
}
