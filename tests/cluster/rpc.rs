//! Requests between nodes: answered on the caller's channel, refused at once when nobody
//! listens, bounded by a timeout when nobody answers.

use std::time::Duration;

use chatwire::cluster::ClusterError;
use tokio_util::sync::CancellationToken;

use crate::redis_server::RedisServer;

#[tokio::test]
async fn a_request_is_answered_by_the_node_it_was_sent_to() {
    let server = RedisServer::start().await;
    let stop = CancellationToken::new();
    let config = |name: &str| chatwire::cluster::ClusterConfig {
        redis_url: server.url(),
        node_id: name.into(),
        lease: Duration::from_secs(30),
    };
    let (a, _a_inbox) = chatwire::cluster::Cluster::start(&config("a"), stop.clone())
        .await
        .unwrap();
    let (b, mut b_inbox) = chatwire::cluster::Cluster::start(&config("b"), stop.clone())
        .await
        .unwrap();
    let answering = tokio::spawn(async move {
        for _ in 0..2 {
            let req = b_inbox.recv().await.unwrap();
            assert_eq!(req.from, "a");
            if &req.body[..] == b"ping" {
                b.rpc.answer(&req, Ok(b"pong")).await;
            } else {
                b.rpc.answer(&req, Err("no such command")).await;
            }
        }
        b_inbox
    });
    let wait = Duration::from_secs(10);
    assert_eq!(&a.rpc.call("b", b"ping", wait).await.unwrap()[..], b"pong");
    assert!(matches!(
        a.rpc.call("b", b"what", wait).await,
        Err(ClusterError::Remote(m)) if m == "no such command"
    ));
    let _b_inbox = answering.await.unwrap();
    // b is subscribed but no longer answers: the caller gives up after its timeout.
    let started = std::time::Instant::now();
    assert!(matches!(
        a.rpc.call("b", b"ping", Duration::from_millis(300)).await,
        Err(ClusterError::Timeout)
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    // Nobody listens on a node that does not exist.
    assert!(matches!(
        a.rpc.call("ghost", b"ping", wait).await,
        Err(ClusterError::NodeGone)
    ));
    stop.cancel();
}
