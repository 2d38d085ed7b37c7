//! The ownership lease: one holder, renewal and release only by the holder, expiry by
//! Redis's clock, and the sweeper's view of replying conversations.

use std::time::Duration;

use chatwire::cluster::{ClusterError, lease, sweeper};

use crate::redis_server::{RedisServer, eventually};

#[tokio::test]
async fn one_holder_and_only_the_holder_renews_or_releases() {
    let server = RedisServer::start().await;
    let r = server.client().await;
    let ttl = Duration::from_secs(30);
    let a = lease::acquire(&r, "conv1", "node-a", ttl)
        .await
        .unwrap()
        .expect("free lease");
    assert_eq!(a.node(), "node-a");
    assert!(
        lease::acquire(&r, "conv1", "node-b", ttl)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        lease::holder(&r, "conv1").await.unwrap().as_deref(),
        Some("node-a")
    );
    lease::renew(&r, "conv1", &a, ttl, false)
        .await
        .expect("holder renews");

    // Someone else's token (a stale copy, or a forged one) neither renews nor releases.
    let other = lease::acquire(&r, "conv2", "node-b", ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        lease::renew(&r, "conv1", &other, ttl, false).await,
        Err(ClusterError::Fenced)
    ));
    assert!(!lease::release(&r, "conv1", &other).await.unwrap());
    assert_eq!(
        lease::holder(&r, "conv1").await.unwrap().as_deref(),
        Some("node-a")
    );

    assert!(lease::release(&r, "conv1", &a).await.unwrap());
    assert!(lease::holder(&r, "conv1").await.unwrap().is_none());
    assert!(
        lease::acquire(&r, "conv1", "node-b", ttl)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_lapsed_lease_is_taken_and_its_old_holder_is_fenced() {
    let server = RedisServer::start().await;
    let r = server.client().await;
    let short = Duration::from_millis(200);
    let a = lease::acquire(&r, "c", "node-a", short)
        .await
        .unwrap()
        .unwrap();
    eventually(Duration::from_secs(10), "the lease to lapse", || {
        let r = r.clone();
        async move {
            lease::acquire(&r, "c", "node-b", Duration::from_secs(30))
                .await
                .unwrap()
                .is_some()
        }
    })
    .await;
    assert!(matches!(
        lease::renew(&r, "c", &a, short, true).await,
        Err(ClusterError::Fenced)
    ));
    assert!(!lease::release(&r, "c", &a).await.unwrap());
    assert_eq!(
        lease::holder(&r, "c").await.unwrap().as_deref(),
        Some("node-b")
    );
}

#[tokio::test]
async fn the_sweeper_sees_a_reply_whose_owner_stopped_renewing() {
    let server = RedisServer::start().await;
    let r = server.client().await;
    let short = Duration::from_millis(200);
    let dead = lease::acquire(&r, "orphan", "node-a", short)
        .await
        .unwrap()
        .unwrap();
    lease::renew(&r, "orphan", &dead, short, true)
        .await
        .unwrap();
    let alive = lease::acquire(&r, "kept", "node-b", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    lease::renew(&r, "kept", &alive, Duration::from_secs(30), true)
        .await
        .unwrap();
    let idle = lease::acquire(&r, "idle", "node-a", short)
        .await
        .unwrap()
        .unwrap();
    lease::renew(&r, "idle", &idle, short, false).await.unwrap();

    assert!(
        sweeper::orphans(&r, 10).await.unwrap().is_empty(),
        "nothing due yet"
    );
    eventually(Duration::from_secs(10), "the orphan to be due", || {
        let r = r.clone();
        async move { sweeper::orphans(&r, 10).await.unwrap() == ["orphan"] }
    })
    .await;
    // Taken over: the new owner holds the lease, so it is no longer an orphan even before
    // the reply is ended and forgotten.
    let new = lease::acquire(&r, "orphan", "node-b", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(new.is_some());
    assert!(sweeper::orphans(&r, 10).await.unwrap().is_empty());
    sweeper::forget(&r, "orphan").await.unwrap();
    // A clean release forgets it too.
    assert!(lease::release(&r, "kept", &alive).await.unwrap());
    let left: Vec<String> = redis::cmd("ZRANGE")
        .arg(chatwire::cluster::keys::REPLYING)
        .arg(0)
        .arg(-1)
        .query_async(&mut r.conn())
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}
