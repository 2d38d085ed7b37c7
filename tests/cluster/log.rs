//! The append script: fenced by the lease, contiguous, never reusing an id, publishing
//! exactly what it stores, trimming only below what the owner keeps.

use std::time::Duration;

use bytes::Bytes;
use chatwire::cluster::log::{self, Append, Part};
use chatwire::cluster::writer::{LogWriter, Turn};
use chatwire::cluster::{AppendError, Bus, LeaseToken, LogFrame, keys, lease};
use tokio_util::sync::CancellationToken;

use crate::redis_server::RedisServer;

pub fn frame(id: u64) -> LogFrame {
    LogFrame {
        id,
        sync: false,
        bytes: Bytes::from(format!(
            "id: {id}\nevent: reply.delta\ndata: {{\"n\":{id}}}\n\n"
        )),
    }
}

pub fn sync_frame(id: u64) -> LogFrame {
    LogFrame {
        sync: true,
        bytes: Bytes::from(format!("id: {id}\nevent: sync\ndata: {{}}\n\n")),
        ..frame(id)
    }
}

#[tokio::test]
async fn appends_are_contiguous_fenced_and_never_reuse_an_id() {
    let server = RedisServer::start().await;
    let r = server.client().await;
    let ttl = Duration::from_secs(30);
    let token = lease::acquire(&r, "c", "a", ttl).await.unwrap().unwrap();
    let batch: Vec<_> = (1..=3).map(frame).collect();
    let append = |prev, frames: &[LogFrame]| {
        let (r, token, frames) = (r.clone(), token.clone(), frames.to_vec());
        async move {
            log::append(
                &r,
                "c",
                Append {
                    token: &token,
                    prev,
                    keep_from: 0,
                    frames: &frames,
                },
            )
            .await
        }
    };
    append(Some(0), &batch).await.expect("first batch");
    assert_eq!(log::top(&r, "c").await.unwrap(), 3);
    // Not after the top: refused whole, nothing written.
    assert_eq!(
        append(Some(2), &[frame(4)]).await,
        Err(AppendError::Gap { top: 3 })
    );
    assert_eq!(
        append(Some(3), &[frame(3)]).await,
        Err(AppendError::Gap { top: 3 })
    );
    assert_eq!(
        append(None, &[frame(2)]).await,
        Err(AppendError::Gap { top: 3 })
    );
    append(Some(3), &[frame(4), frame(5)]).await.unwrap();
    let all = log::after(&r, "c", 0, 100).await.unwrap();
    assert_eq!(all, (1..=5).map(frame).collect::<Vec<_>>());
    assert_eq!(
        log::after(&r, "c", 3, 100).await.unwrap(),
        vec![frame(4), frame(5)]
    );

    // A new owner after a crash: any top, a sync first, above everything.
    lease::release(&r, "c", &token).await.unwrap();
    assert_eq!(append(Some(5), &[frame(6)]).await, Err(AppendError::Fenced));
    let new = lease::acquire(&r, "c", "b", ttl).await.unwrap().unwrap();
    log::append(
        &r,
        "c",
        Append {
            token: &new,
            prev: None,
            keep_from: 0,
            frames: &[sync_frame(10_000), frame(10_001)],
        },
    )
    .await
    .unwrap();
    // The old owner, even knowing the right top, stays fenced.
    assert_eq!(
        append(Some(10_001), &[frame(10_002)]).await,
        Err(AppendError::Fenced)
    );
    let tail = log::after(&r, "c", 5, 100).await.unwrap();
    assert_eq!(tail, vec![sync_frame(10_000), frame(10_001)]);
}

#[tokio::test]
async fn trimming_keeps_everything_from_the_owners_mark() {
    let server = RedisServer::start().await;
    let r = server.client().await;
    let token = lease::acquire(&r, "t", "a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let mut prev = 0;
    for start in (1..=3000).step_by(100) {
        let frames: Vec<_> = (start..start + 100).map(frame).collect();
        let keep_from = (start + 99).saturating_sub(999);
        log::append(
            &r,
            "t",
            Append {
                token: &token,
                prev: Some(prev),
                keep_from,
                frames: &frames,
            },
        )
        .await
        .unwrap();
        prev = start + 99;
    }
    let kept = log::after(&r, "t", 0, 10_000).await.unwrap();
    let first = kept.first().unwrap().id;
    assert!(first <= 2001, "at least the last 1,000 kept, first {first}");
    assert!(first > 1, "something was trimmed");
    assert_eq!(kept.last().unwrap().id, 3000);
    assert!(kept.windows(2).all(|w| w[1].id == w[0].id + 1));
}

#[tokio::test]
async fn one_call_appends_for_many_conversations_and_a_fenced_one_fails_alone() {
    let server = RedisServer::start().await;
    let r = server.client().await;
    let ttl = Duration::from_secs(30);
    let shutdown = CancellationToken::new();
    let bus = Bus::start(r.client().clone(), shutdown.clone());
    bus.ready(Duration::from_secs(5)).await.unwrap();
    let mut live = bus.subscribe(&keys::live("a")).await.unwrap();
    let a = lease::acquire(&r, "a", "n", ttl).await.unwrap().unwrap();
    let b = lease::acquire(&r, "b", "n", ttl).await.unwrap().unwrap();
    let c = lease::acquire(&r, "c", "n", ttl).await.unwrap().unwrap();
    // Someone else owns "b" now.
    lease::release(&r, "b", &b).await.unwrap();
    lease::acquire(&r, "b", "other", ttl)
        .await
        .unwrap()
        .unwrap();
    let (fa, fb, fc) = (
        (1..=3).map(frame).collect::<Vec<_>>(),
        vec![frame(1)],
        vec![frame(1), frame(2)],
    );
    let part = |conversation, token, frames| Part {
        conversation,
        append: Append {
            token,
            prev: Some(0),
            keep_from: 0,
            frames,
        },
        refresh: false,
    };
    let answers = log::append_many(
        &r,
        &[part("a", &a, &fa), part("b", &b, &fb), part("c", &c, &fc)],
    )
    .await
    .unwrap();
    assert_eq!(answers, vec![Ok(()), Err(AppendError::Fenced), Ok(())]);
    assert_eq!(log::after(&r, "a", 0, 10).await.unwrap(), fa);
    assert!(log::after(&r, "b", 0, 10).await.unwrap().is_empty());
    assert_eq!(log::after(&r, "c", 0, 10).await.unwrap(), fc);
    // The three frames of "a" went out as one message, exactly the log's.
    let msg = tokio::time::timeout(Duration::from_secs(5), live.rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log::parse_live(&msg), Some(fa.clone()));
    assert_eq!(log::parse_live(&msg.slice(..msg.len() - 1)), None);

    // Through the node's writer, concurrently: each answered on its own, in its order.
    let writer = LogWriter::start(r.clone());
    let turn = |conversation: &str, token: &LeaseToken, prev, frames: Vec<LogFrame>| Turn {
        conversation: conversation.into(),
        token: token.clone(),
        prev: Some(prev),
        keep_from: 0,
        refresh: true,
        frames: frames.into(),
    };
    let (ra, rb, rc) = tokio::join!(
        writer.append(turn("a", &a, 3, vec![frame(4)])),
        writer.append(turn("b", &b, 0, vec![frame(1)])),
        writer.append(turn("c", &c, 1, vec![frame(3)])),
    );
    assert_eq!(ra, Ok(()));
    assert_eq!(rb, Err(AppendError::Fenced));
    assert_eq!(rc, Err(AppendError::Gap { top: 2 }));
    assert_eq!(log::top(&r, "a").await.unwrap(), 4);
    assert_eq!(log::top(&r, "c").await.unwrap(), 2);
    shutdown.cancel();
}
