//! The ownership epoch: a claim fences every write of the previous epoch, on both
//! backends, and a fenced write changes nothing.

use chatwire::chat::{Message, Status};
use chatwire::storage::{Epoch, StoreError};

use crate::stores;

fn fenced(r: Result<(), StoreError>, what: &str) {
    match r {
        Err(StoreError::Fenced {
            conversation,
            epoch,
        }) => {
            assert_eq!(conversation, "c1", "{what}");
            assert_eq!(epoch, 1, "{what}");
        }
        other => panic!("{what}: expected Fenced, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stale_epoch_changes_nothing() {
    for (backend, store) in stores().await {
        store
            .create_conversation("c1", "h", "offline", 0)
            .await
            .unwrap();
        let old = store.claim("c1").await.unwrap();
        let mut reply = Message::streaming_reply();
        store.insert_message("c1", old, 0, &reply).await.unwrap();
        store.reserve_event_ids("c1", old, 100).await.unwrap();
        let frame: &[u8] = b"frame";
        store
            .save_events("c1", old, &[(1, frame)], 1)
            .await
            .unwrap();

        let new = store.claim("c1").await.unwrap();
        assert_eq!(new, Epoch(old.0 + 1), "{backend}");

        // Every kind of actor write, with the old epoch: refused.
        let late = Message::user("late".into());
        fenced(store.insert_message("c1", old, 1, &late).await, "insert");
        reply.text = "stale".into();
        reply.status = Status::Complete;
        fenced(store.update_message("c1", old, &reply).await, "update");
        fenced(
            store
                .checkpoint_reply("c1", old, &reply.id, 0, "stale")
                .await,
            "checkpoint",
        );
        fenced(store.reserve_event_ids("c1", old, 5_000).await, "reserve");
        fenced(store.set_event_id_floor("c1", old, 2).await, "floor");
        let other: &[u8] = b"other";
        fenced(
            store.save_events("c1", old, &[(2, other)], 2).await,
            "events",
        );

        let got = store.load_conversation("c1").await.unwrap().unwrap();
        assert_eq!(got.messages.len(), 1, "{backend}: no late insert");
        assert_eq!(
            got.messages[0].text, "",
            "{backend}: no stale update or checkpoint"
        );
        assert_eq!(got.messages[0].status, Status::Streaming);
        assert_eq!(got.event_id_floor, 100, "{backend}: floor untouched");
        let events = store.load_events("c1", 10).await.unwrap();
        assert_eq!(events.len(), 1, "{backend}: replay window untouched");
        assert_eq!(events[0].frame, b"frame");

        // The new owner writes.
        store
            .checkpoint_reply("c1", new, &reply.id, 0, "fresh")
            .await
            .unwrap();
        store.insert_message("c1", new, 1, &late).await.unwrap();
        store.reserve_event_ids("c1", new, 200).await.unwrap();
        let got = store.load_conversation("c1").await.unwrap().unwrap();
        assert_eq!(got.messages[0].text, "fresh", "{backend}");
        assert_eq!(got.messages.len(), 2);
        assert_eq!(got.event_id_floor, 200);
        assert_eq!(got.owner_epoch, new);
    }
}

#[tokio::test]
async fn claiming_or_writing_a_missing_conversation_is_not_found() {
    for (backend, store) in stores().await {
        assert!(
            matches!(store.claim("nope").await, Err(StoreError::NotFound(_))),
            "{backend}"
        );
        let r = store.reserve_event_ids("nope", Epoch(1), 10).await;
        assert!(
            matches!(r, Err(StoreError::NotFound(_))),
            "{backend}: {r:?}"
        );
        let m = Message::user("x".into());
        let r = store.insert_message("nope", Epoch(1), 0, &m).await;
        assert!(
            matches!(r, Err(StoreError::NotFound(_))),
            "{backend}: {r:?}"
        );
    }
}
