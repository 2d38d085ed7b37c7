//! Relays: the log, turned back into an ordered feed on every node — in order, no gap, no
//! duplicate — through pub/sub drops and a Redis restart; resume points in and out of the log.

use std::time::Duration;

use chatwire::cluster::log::{self, Append};
use chatwire::cluster::relay::{RelayItem, Resume};
use chatwire::cluster::{Cluster, ClusterConfig, LeaseToken, LogFrame, Redis, lease};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::log::{frame, sync_frame};
use crate::redis_server::RedisServer;

const WAIT: Duration = Duration::from_secs(15);

pub async fn node(server: &RedisServer, name: &str, shutdown: &CancellationToken) -> Cluster {
    let config = ClusterConfig {
        redis_url: server.url(),
        node_id: name.into(),
        lease: Duration::from_secs(30),
    };
    Cluster::start(&config, shutdown.child_token())
        .await
        .expect("cluster start")
        .0
}

async fn append(r: &Redis, token: &LeaseToken, prev: Option<u64>, frames: &[LogFrame]) {
    log::append(
        r,
        "c",
        Append {
            token,
            prev,
            keep_from: 0,
            frames,
        },
    )
    .await
    .expect("append");
}

/// The next `n` frames of a feed (bounded wait), failing on `Lost`.
async fn take(rx: &mut broadcast::Receiver<RelayItem>, n: usize) -> Vec<LogFrame> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Ok(RelayItem::Frame(f))) => out.push(f),
            other => panic!("after {} frames: {other:?}", out.len()),
        }
    }
    out
}

/// Redis, an owner node holding the lease of "c", a reader node with a relay for it.
struct Fixture {
    server: RedisServer,
    stop: CancellationToken,
    owner: Cluster,
    reader: Cluster,
    relay: std::sync::Arc<chatwire::cluster::relay::Relay>,
    rx: broadcast::Receiver<RelayItem>,
    token: LeaseToken,
}

impl Fixture {
    async fn new() -> Fixture {
        let server = RedisServer::start().await;
        let stop = CancellationToken::new();
        let owner = node(&server, "owner", &stop).await;
        let reader = node(&server, "reader", &stop).await;
        let relay = reader.relays.get("c").await.unwrap();
        let rx = relay.frames();
        let token = lease::acquire(&owner.redis, "c", "owner", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        Fixture {
            server,
            stop,
            owner,
            reader,
            relay,
            rx,
            token,
        }
    }
}

impl Fixture {
    async fn append(&self, prev: Option<u64>, frames: &[LogFrame]) {
        append(&self.owner.redis, &self.token, prev, frames).await;
    }

    async fn take(&mut self, n: usize) -> Vec<LogFrame> {
        take(&mut self.rx, n).await
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test]
async fn frames_reach_another_node_in_order() {
    let mut f = Fixture::new().await;
    for start in (1..=200).step_by(10) {
        let batch: Vec<_> = (start..start + 10).map(frame).collect();
        f.append(Some(start - 1), &batch).await;
    }
    assert_eq!(f.take(200).await, (1..=200).map(frame).collect::<Vec<_>>());
    // Two relays of one node would double frames: the node has one.
    assert!(std::sync::Arc::ptr_eq(
        &f.relay,
        &f.reader.relays.get("c").await.unwrap()
    ));
}

#[tokio::test]
async fn frames_published_while_pubsub_was_dropped_come_from_the_log() {
    let mut f = Fixture::new().await;
    f.append(Some(0), &[frame(1), frame(2)]).await;
    assert_eq!(f.take(2).await, vec![frame(1), frame(2)]);
    for round in 0..3u64 {
        f.server
            .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
            .await;
        let base = 2 + round * 5;
        for id in base + 1..=base + 5 {
            f.append(Some(id - 1), &[frame(id)]).await;
        }
        let got = f.take(5).await;
        assert_eq!(
            got,
            (base + 1..=base + 5).map(frame).collect::<Vec<_>>(),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn after_a_redis_restart_the_feed_goes_on_from_the_new_owners_sync() {
    let mut f = Fixture::new().await;
    f.append(Some(0), &[frame(1), frame(2), frame(3)]).await;
    assert_eq!(f.take(3).await.len(), 3);

    f.server.restart().await;
    // Everything is gone, the lease too: the old token is fenced.
    let mut fenced = None;
    for _ in 0..100 {
        match log::append(
            &f.owner.redis,
            "c",
            Append {
                token: &f.token,
                prev: Some(3),
                keep_from: 0,
                frames: &[frame(4)],
            },
        )
        .await
        {
            Err(chatwire::cluster::AppendError::Unavailable) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => {
                fenced = Some(other);
                break;
            }
        }
    }
    assert_eq!(fenced, Some(Err(chatwire::cluster::AppendError::Fenced)));
    let new_token = lease::acquire(&f.owner.redis, "c", "owner", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    append(
        &f.owner.redis,
        &new_token,
        None,
        &[sync_frame(10_000), frame(10_001)],
    )
    .await;
    assert_eq!(f.take(2).await, vec![sync_frame(10_000), frame(10_001)]);
}

#[tokio::test]
async fn resume_points_inside_the_log_replay_and_outside_need_a_sync() {
    let server = RedisServer::start().await;
    let stop = CancellationToken::new();
    let n = node(&server, "n", &stop).await;
    let token = lease::acquire(&n.redis, "c", "n", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    append(
        &n.redis,
        &token,
        Some(0),
        &(1..=10).map(frame).collect::<Vec<_>>(),
    )
    .await;
    let frames_after = |after| {
        let relays = n.relays.clone();
        async move {
            match relays.resume("c", after).await.unwrap() {
                Resume::Frames { frames, more } => {
                    Some((frames.iter().map(|f| f.id).collect::<Vec<_>>(), more))
                }
                Resume::NeedSync => None,
            }
        }
    };
    assert_eq!(frames_after(4).await, Some(((5..=10).collect(), false)));
    assert_eq!(frames_after(0).await, Some(((1..=10).collect(), false)));
    assert_eq!(frames_after(10).await, Some((vec![], false)));
    assert_eq!(frames_after(11).await, None, "never issued");
    // A takeover: the old ids stay, a sync leads the new ones.
    append(&n.redis, &token, None, &[sync_frame(500), frame(501)]).await;
    assert_eq!(frames_after(10).await, Some((vec![500, 501], false)));
    // Never issued, but a sync replaces whatever the client had.
    assert_eq!(frames_after(300).await, Some((vec![500, 501], false)));
    assert_eq!(frames_after(500).await, Some((vec![501], false)));
    // An unknown conversation has nothing to resume.
    assert_eq!(n.relays.resume("nope", 3).await.unwrap().frames_len(), None);
    stop.cancel();
}

trait FramesLen {
    fn frames_len(&self) -> Option<usize>;
}

impl FramesLen for Resume {
    fn frames_len(&self) -> Option<usize> {
        match self {
            Resume::Frames { frames, .. } => Some(frames.len()),
            Resume::NeedSync => None,
        }
    }
}

#[tokio::test]
async fn presence_reaches_every_nodes_relay() {
    let server = RedisServer::start().await;
    let stop = CancellationToken::new();
    let a = node(&server, "a", &stop).await;
    let b = node(&server, "b", &stop).await;
    let ra = a.relays.get("c").await.unwrap();
    let rb = b.relays.get("c").await.unwrap();
    let (mut pa, mut pb) = (ra.presence(), rb.presence());
    chatwire::cluster::presence::publish(&a.redis, "c", b"{\"type\":\"typing\"}")
        .await
        .unwrap();
    for rx in [&mut pa, &mut pb] {
        let got = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got[..], b"{\"type\":\"typing\"}");
    }
    stop.cancel();
}

#[tokio::test]
async fn a_paused_redis_refuses_or_delays_appends_and_the_feed_stays_exact() {
    let mut f = Fixture::new().await;
    f.append(Some(0), &[frame(1)]).await;
    f.server.command(&["CLIENT", "PAUSE", "2500", "ALL"]).await;
    // The owner appends on: each call either lands (late) or is refused whole; a refused
    // one is tried again, as the actor does, with the same previous id.
    let mut last = 1;
    let deadline = tokio::time::Instant::now() + WAIT;
    while last < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "appends never resumed"
        );
        let next = frame(last + 1);
        let r = log::append(
            &f.owner.redis,
            "c",
            Append {
                token: &f.token,
                prev: Some(last),
                keep_from: 0,
                frames: std::slice::from_ref(&next),
            },
        )
        .await;
        match r {
            Ok(()) => last += 1,
            Err(chatwire::cluster::AppendError::Unavailable) => {}
            // A refused call that Redis ran after all: the log is ahead by that batch.
            Err(chatwire::cluster::AppendError::Gap { top }) if top == last + 1 => last = top,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(f.take(6).await, (1..=6).map(frame).collect::<Vec<_>>());
}
