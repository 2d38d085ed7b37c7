//! The busy-conversation cap in a cluster: a post accepted by a node that does not own the
//! conversation is counted there (`--max-busy-conversations-per-address`), and the place
//! comes back when that node sees the reply end through its feed of the conversation.

use std::time::Duration;

use crate::nodes::{Cluster, WAIT};

#[tokio::test]
async fn a_node_counts_the_replies_it_accepted_and_sees_them_end() {
    let extra = [
        "--max-busy-conversations-per-address".to_string(),
        "1".into(),
    ];
    let c = Cluster::start_with(2, &extra).await;
    let (x, y) = (c.create().await, c.create().await);
    // Ask the owner once, so the lease is held, and post at the other node.
    let (status, _) = c.post(&c.nodes[0].url(""), &x, "/count 3").await;
    assert_eq!(status, 202);
    let owner = c.owner(&x).await.expect("an owner");
    let other = c.nodes[1 - owner].url("");
    let deadline = tokio::time::Instant::now() + WAIT;
    // The first reply may still run (counted at node 0): wait for a place at `other`.
    let accepted = loop {
        let (status, body) = c.post(&other, &x, "/count 100000").await;
        if status == 202 {
            break body;
        }
        assert_eq!(status, 429, "{body}\n{}", c.logs());
        assert!(
            tokio::time::Instant::now() < deadline,
            "no place at {other}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(accepted["reply_id"].is_string(), "{accepted}");
    let (status, body) = c.post(&other, &y, "/count 3").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_replies", "{body}");

    // The reply runs at the owner; its end reaches `other` through the feed.
    assert_eq!(c.interrupt(&c.nodes[owner].url(""), &x).await, 202);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = c.post(&other, &y, "/count 3").await;
        if status == 202 {
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place never came back\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in &c.nodes {
        let health = c.http.get(n.url("/healthz")).send().await.expect("healthz");
        assert_eq!(health.status(), 200);
    }
}
