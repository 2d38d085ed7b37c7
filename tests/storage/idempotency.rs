//! `Idempotency-Key`s: stored with their message in one fenced write (a stale epoch stores
//! neither), found again by conversation and key, and pruned to the newest `KEEP_KEYS`
//! and the last `KEY_TTL` of a conversation — on both backends.

use chatwire::chat::Message;
use chatwire::storage::{KEEP_KEYS, KEY_TTL, KeyedPost, StoreError};

use crate::stores;

fn keyed(key: &str, m: &Message) -> KeyedPost {
    KeyedPost {
        key: key.into(),
        message_id: m.id.clone(),
        reply_id: Some(format!("{}-reply", m.id)),
        queued: false,
    }
}

#[tokio::test]
async fn a_key_is_stored_with_its_message_and_fenced_like_it() {
    for (backend, store) in stores().await {
        for c in ["c1", "c2"] {
            store
                .create_conversation(c, "h", "offline", 0)
                .await
                .unwrap();
        }
        let old = store.claim("c1").await.unwrap();
        let m = Message::user("hi".into());
        let post = keyed("k1", &m);
        store
            .insert_keyed_message("c1", old, 0, &m, &post)
            .await
            .unwrap();
        assert_eq!(
            store.find_post("c1", "k1").await.unwrap(),
            Some(post),
            "{backend}"
        );
        assert_eq!(
            store.find_post("c2", "k1").await.unwrap(),
            None,
            "{backend}"
        );

        // A newer claim fences the old epoch: neither the message nor its key is stored.
        let new = store.claim("c1").await.unwrap();
        let late = Message::user("late".into());
        let r = store
            .insert_keyed_message("c1", old, 1, &late, &keyed("k2", &late))
            .await;
        assert!(
            matches!(r, Err(StoreError::Fenced { .. })),
            "{backend}: {r:?}"
        );
        assert_eq!(
            store.find_post("c1", "k2").await.unwrap(),
            None,
            "{backend}"
        );
        let got = store.load_conversation("c1").await.unwrap().unwrap();
        assert_eq!(got.messages.len(), 1, "{backend}");
        // The same key twice in one conversation is refused (the actor looks first).
        let again = Message::user("again".into());
        let r = store
            .insert_keyed_message("c1", new, 1, &again, &keyed("k1", &again))
            .await;
        assert!(
            matches!(r, Err(StoreError::UniqueViolation(_))),
            "{backend}: {r:?}"
        );
        let got = store.load_conversation("c1").await.unwrap().unwrap();
        assert_eq!(got.messages.len(), 1, "{backend}: nothing of it stored");
    }
}

#[tokio::test]
async fn keys_are_pruned_to_the_newest_and_the_last_day() {
    let ttl = i64::try_from(KEY_TTL.as_millis()).unwrap();
    for (backend, store) in stores().await {
        store
            .create_conversation("c1", "h", "offline", 0)
            .await
            .unwrap();
        let epoch = store.claim("c1").await.unwrap();
        let start = 1_000_000_000_000;
        let mut seq = 0;
        let mut insert = |at: i64, key: String| {
            let mut m = Message::user("x".into());
            m.created_at = at;
            seq += 1;
            let (store, at_seq) = (store.clone(), seq - 1);
            async move {
                let post = keyed(&key, &m);
                store
                    .insert_keyed_message("c1", epoch, at_seq, &m, &post)
                    .await
                    .unwrap();
            }
        };
        insert(start, "old".into()).await;
        // A day later: the old key is gone, the recent ones stay up to KEEP_KEYS.
        let later = start + ttl + 1;
        for i in 0..KEEP_KEYS + 5 {
            insert(later + i, format!("k{i}")).await;
        }
        assert_eq!(
            store.find_post("c1", "old").await.unwrap(),
            None,
            "{backend}"
        );
        for i in 0..5 {
            let k = format!("k{i}");
            assert_eq!(
                store.find_post("c1", &k).await.unwrap(),
                None,
                "{backend} {k}"
            );
        }
        for i in [5, KEEP_KEYS + 4] {
            let k = format!("k{i}");
            assert!(
                store.find_post("c1", &k).await.unwrap().is_some(),
                "{backend} {k}"
            );
        }
    }
}
