//! Owners on both backends: the owner's list (most recently updated first, keyset pages),
//! the default title from the first user message, renames and deletes fenced by the epoch
//! (a delete takes the messages and stored events with it), the credential read without
//! the history, and sessions (only a hash stored, expiry honoured).

use chatwire::chat::Message;
use chatwire::storage::{ListCursor, NewConversation, Store, StoreError};

use crate::stores;

async fn create(store: &Store, id: &str, owner: Option<&str>, at: i64) {
    store
        .create_owned_conversation(NewConversation {
            id,
            token_hash: "hash",
            provider: "offline",
            created_at: at,
            owner,
        })
        .await
        .unwrap();
}

fn ids(list: &[chatwire::storage::Summary]) -> Vec<&str> {
    list.iter().map(|s| s.id.as_str()).collect()
}

#[tokio::test]
async fn the_list_is_one_owners_newest_first_in_pages() {
    for (backend, store) in stores().await {
        for (i, id) in ["c1", "c2", "c3", "c4"].iter().enumerate() {
            create(&store, id, Some("anon:a"), 10 + i as i64).await;
        }
        create(&store, "b1", Some("anon:b"), 100).await;
        create(&store, "t1", None, 100).await;
        let all = store.list_conversations("anon:a", 10, None).await.unwrap();
        assert_eq!(ids(&all), ["c4", "c3", "c2", "c1"], "{backend}");
        assert!(all.iter().all(|s| s.title.is_none()), "{backend}");
        assert_eq!(all[0].created_at, 13);
        assert_eq!(
            all[0].updated_at, 13,
            "{backend}: updated = created at first"
        );

        // A user message moves c1 up and names it; a second one keeps the first name.
        let epoch = store.claim("c1").await.unwrap();
        let mut m = Message::user(format!("  {}  ", "word ".repeat(30)));
        m.created_at = 50;
        store.insert_message("c1", epoch, 0, &m).await.unwrap();
        let mut m2 = Message::user("second".into());
        m2.created_at = 60;
        store.insert_message("c1", epoch, 1, &m2).await.unwrap();
        let page = store.list_conversations("anon:a", 2, None).await.unwrap();
        assert_eq!(ids(&page), ["c1", "c4"], "{backend}");
        let title = page[0].title.clone().unwrap();
        assert!(
            title.chars().count() <= 80 && title.starts_with("word word"),
            "{backend}: {title}"
        );
        assert!(!title.ends_with(' '), "{backend}: trimmed");
        assert_eq!(page[0].updated_at, 60);

        let last = &page[1];
        let cursor = ListCursor {
            updated_at: last.updated_at,
            id: last.id.clone(),
        };
        let next = store
            .list_conversations("anon:a", 2, Some(&cursor))
            .await
            .unwrap();
        assert_eq!(ids(&next), ["c3", "c2"], "{backend}");
        // Equal update times (c3 and c0 at 12): the id breaks the tie, nothing is
        // skipped or repeated.
        create(&store, "c0", Some("anon:a"), 12).await;
        let cursor = ListCursor {
            updated_at: 12,
            id: "c3".into(),
        };
        let tail = store
            .list_conversations("anon:a", 10, Some(&cursor))
            .await
            .unwrap();
        assert_eq!(ids(&tail), ["c0", "c2"], "{backend}");

        let access = store.access("b1").await.unwrap().unwrap();
        assert_eq!(access.owner.as_deref(), Some("anon:b"));
        assert_eq!(access.token_hash, "hash");
        assert!(store.access("t1").await.unwrap().unwrap().owner.is_none());
        assert!(store.access("nope").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn rename_and_delete_are_fenced_and_delete_takes_everything() {
    for (backend, store) in stores().await {
        create(&store, "c1", Some("jwt:x"), 1).await;
        let old = store.claim("c1").await.unwrap();
        store
            .insert_message("c1", old, 0, &Message::user("hi".into()))
            .await
            .unwrap();
        store.save_events("c1", old, &[(1, b"f")], 2).await.unwrap();
        store.rename_conversation("c1", old, "Named").await.unwrap();
        let s = store.summary("c1").await.unwrap().unwrap();
        assert_eq!(s.title.as_deref(), Some("Named"), "{backend}");

        let new = store.claim("c1").await.unwrap();
        let stale = store.rename_conversation("c1", old, "Stale").await;
        assert!(
            matches!(stale, Err(StoreError::Fenced { .. })),
            "{backend}: {stale:?}"
        );
        let stale = store.delete_conversation("c1", old).await;
        assert!(
            matches!(stale, Err(StoreError::Fenced { .. })),
            "{backend}: {stale:?}"
        );
        assert!(store.load_conversation("c1").await.unwrap().is_some());

        store.delete_conversation("c1", new).await.unwrap();
        assert!(
            store.load_conversation("c1").await.unwrap().is_none(),
            "{backend}"
        );
        assert!(store.summary("c1").await.unwrap().is_none());
        assert!(
            store.load_events("c1", 10).await.unwrap().is_empty(),
            "{backend}"
        );
        assert!(
            store
                .list_conversations("jwt:x", 10, None)
                .await
                .unwrap()
                .is_empty()
        );
        let again = store.delete_conversation("c1", new).await;
        assert!(
            matches!(again, Err(StoreError::NotFound(_))),
            "{backend}: {again:?}"
        );
    }
}

#[tokio::test]
async fn sessions_name_an_owner_until_they_expire() {
    for (backend, store) in stores().await {
        store.create_session("h1", "anon:a", 0, 1000).await.unwrap();
        assert_eq!(
            store.session_owner("h1", 999).await.unwrap().as_deref(),
            Some("anon:a"),
            "{backend}"
        );
        assert!(
            store.session_owner("h1", 1000).await.unwrap().is_none(),
            "{backend}: expired"
        );
        assert!(store.session_owner("h2", 0).await.unwrap().is_none());
        store.create_session("h2", "jwt:b", 0, 5000).await.unwrap();
        assert_eq!(store.prune_sessions(2000).await.unwrap(), 1, "{backend}");
        store.delete_session("h2").await.unwrap();
        assert!(
            store.session_owner("h2", 0).await.unwrap().is_none(),
            "{backend}"
        );
    }
}
