//! Conversations, messages, event floors and the replay window, on both backends.

use chatwire::chat::{Message, Status};
use chatwire::storage::Epoch;

use crate::stores;

#[tokio::test]
async fn a_conversation_keeps_its_messages_floor_and_replay_window() {
    for (backend, store) in stores().await {
        store
            .create_conversation("c1", "hash", "offline", 7)
            .await
            .unwrap();
        let fresh = store.load_conversation("c1").await.unwrap().unwrap();
        assert_eq!(fresh.owner_epoch, Epoch(0), "{backend}");
        assert_eq!(fresh.event_id_floor, 1, "{backend}");
        let e = store.claim("c1").await.unwrap();
        assert_eq!(e, Epoch(1), "{backend}");

        let user = Message::user("hello".into());
        let mut reply = Message::streaming_reply();
        store.insert_message("c1", e, 0, &user).await.unwrap();
        store.insert_message("c1", e, 1, &reply).await.unwrap();
        store
            .checkpoint_reply("c1", e, &reply.id, 0, "hel")
            .await
            .unwrap();
        reply.text = "hello back".into();
        reply.status = Status::Complete;
        store.update_message("c1", e, &reply).await.unwrap();
        // A late checkpoint cannot overwrite the end.
        store
            .checkpoint_reply("c1", e, &reply.id, 0, "hel")
            .await
            .unwrap();

        store.reserve_event_ids("c1", e, 10_001).await.unwrap();
        store.reserve_event_ids("c1", e, 500).await.unwrap();
        let frames: Vec<(u64, Vec<u8>)> =
            (1..=5).map(|i| (i, format!("f{i}").into_bytes())).collect();
        let refs: Vec<(u64, &[u8])> = frames.iter().map(|(i, f)| (*i, &f[..])).collect();
        store.save_events("c1", e, &refs, 3).await.unwrap();

        let got = store.load_conversation("c1").await.unwrap().unwrap();
        assert_eq!(got.token_hash, "hash");
        assert_eq!(got.provider, "offline");
        assert_eq!(got.created_at, 7);
        assert_eq!(got.owner_epoch, e, "{backend}");
        assert_eq!(
            got.event_id_floor, 10_001,
            "{backend}: a reservation never lowers the floor"
        );
        assert_eq!(got.messages.len(), 2);
        assert_eq!(got.messages[0].text, "hello");
        assert_eq!(got.messages[1].text, "hello back", "{backend}");
        assert_eq!(got.messages[1].status, Status::Complete);

        let events = store.load_events("c1", 2).await.unwrap();
        let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
        assert_eq!(ids, [4, 5], "{backend}: the last ones, oldest first");
        assert_eq!(events[1].frame, b"f5");
        let all = store.load_events("c1", 100).await.unwrap();
        assert_eq!(all.len(), 3, "{backend}: below keep_from is forgotten");

        store.set_event_id_floor("c1", e, 42).await.unwrap();
        let got = store.load_conversation("c1").await.unwrap().unwrap();
        assert_eq!(
            got.event_id_floor, 42,
            "{backend}: the exact floor at a stop"
        );
        assert!(store.load_conversation("nope").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn replies_left_streaming_are_marked_failed_at_start_up() {
    for (backend, store) in stores().await {
        store
            .create_conversation("c1", "h", "offline", 0)
            .await
            .unwrap();
        let e = store.claim("c1").await.unwrap();
        let mut reply = Message::streaming_reply();
        reply.text = "cut".into();
        store.insert_message("c1", e, 0, &reply).await.unwrap();
        assert_eq!(
            store.mark_abandoned_replies().await.unwrap(),
            1,
            "{backend}"
        );
        let got = store.load_conversation("c1").await.unwrap().unwrap();
        assert_eq!(got.messages[0].status, Status::Failed, "{backend}");
        assert_eq!(got.messages[0].text, "cut");
        assert_eq!(store.mark_abandoned_replies().await.unwrap(), 0);
    }
}
