//! The history rewrites of the conversation operations, on both backends: a reply inserted
//! after a message moves the later ones down, a regenerated reply takes the old one's
//! place, an edit removes every later message; with a stale epoch each changes nothing.

use chatwire::chat::{Message, Role};
use chatwire::storage::{Epoch, Store, StoreError};

use crate::stores;

async fn texts(store: &Store) -> Vec<(Role, String)> {
    let conv = store.load_conversation("c1").await.unwrap().unwrap();
    conv.messages
        .into_iter()
        .map(|m| (m.role, m.text))
        .collect()
}

fn reply(text: &str) -> Message {
    let mut m = Message::streaming_reply();
    m.text = text.into();
    m
}

#[tokio::test]
async fn rewrites_keep_the_order_and_are_fenced() {
    for (backend, store) in stores().await {
        store
            .create_conversation("c1", "h", "offline", 0)
            .await
            .unwrap();
        let epoch = store.claim("c1").await.unwrap();
        let (u1, u2, u3) = (
            Message::user("u1".into()),
            Message::user("u2".into()),
            Message::user("u3".into()),
        );
        let r1 = reply("r1");
        for (seq, m) in [&u1, &r1, &u2, &u3].into_iter().enumerate() {
            store.insert_message("c1", epoch, seq, m).await.unwrap();
        }
        // The reply to the queued u2 goes between u2 and u3.
        let r2 = reply("r2");
        store
            .insert_message_after("c1", epoch, &u2.id, &r2)
            .await
            .unwrap();
        let order = |names: &[&str]| -> Vec<(Role, String)> {
            names
                .iter()
                .map(|n| {
                    let role = if n.starts_with('u') {
                        Role::User
                    } else {
                        Role::Assistant
                    };
                    (role, n.to_string())
                })
                .collect()
        };
        assert_eq!(
            texts(&store).await,
            order(&["u1", "r1", "u2", "r2", "u3"]),
            "{backend}"
        );

        // Regenerate r1: the new reply in its place, the old id gone.
        let r1b = reply("r1b");
        store
            .replace_message("c1", epoch, &r1.id, &r1b)
            .await
            .unwrap();
        let conv = store.load_conversation("c1").await.unwrap().unwrap();
        assert_eq!(conv.messages[1].id, r1b.id, "{backend}");
        assert!(conv.messages.iter().all(|m| m.id != r1.id), "{backend}");

        // Edit u2: its text replaced, everything after it gone.
        store
            .edit_message("c1", epoch, &u2.id, "u2b")
            .await
            .unwrap();
        assert_eq!(
            texts(&store).await,
            order(&["u1", "r1b", "u2b"]),
            "{backend}"
        );
        let r3 = reply("r3");
        store.insert_message("c1", epoch, 3, &r3).await.unwrap();

        // A newer owner: the old epoch's rewrites are refused and change nothing.
        let new = store.claim("c1").await.unwrap();
        assert_eq!(new, Epoch(epoch.0 + 1));
        let stale = [
            store
                .insert_message_after("c1", epoch, &u1.id, &reply("x"))
                .await,
            store
                .replace_message("c1", epoch, &r3.id, &reply("x"))
                .await,
            store.edit_message("c1", epoch, &u1.id, "x").await,
        ];
        for r in stale {
            assert!(
                matches!(r, Err(StoreError::Fenced { .. })),
                "{backend}: {r:?}"
            );
        }
        assert_eq!(
            texts(&store).await,
            order(&["u1", "r1b", "u2b", "r3"]),
            "{backend}"
        );
    }
}
