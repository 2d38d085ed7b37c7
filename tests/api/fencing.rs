//! Two servers on one database (a stand-in for a cluster without its lease): whichever
//! starts a conversation's actor claims it, and the other's actor, now stale, can change
//! nothing — its write is refused by the store, it answers 503 and stops; its next request
//! starts a fresh actor that claims again and sees everything the other stored.

use crate::helpers::spawn_app_with;
use crate::process::TempDb;

#[tokio::test]
async fn a_stale_actor_on_another_server_writes_nothing_and_hands_over() {
    let db = TempDb::new("fencing");
    let url = db.url();
    let (url_a, url_b) = (url.clone(), url);
    let a = spawn_app_with(move |c| c.db = url_a).await;
    let b = spawn_app_with(move |c| c.db = url_b).await;

    let conv = a.create().await;
    let mut sse = a.sse(&conv, None).await;
    a.post_ok(&conv, "/count 3").await;
    while sse.next_event().await.expect("event").kind() != "reply.completed" {}
    // The reply's end is published, then stored: let A store it before B claims, or A's
    // own last write is the one fenced (and A has already stopped when it is asked below).
    let store = &a.server.as_ref().unwrap().state.store;
    let mut stored = false;
    for _ in 0..200 {
        let c = store.load_conversation(&conv.id).await.unwrap().unwrap();
        if c.messages
            .last()
            .is_some_and(|m| m.status == chatwire::chat::Status::Complete)
        {
            stored = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(stored, "A stored its reply");
    // B starts its own actor for the conversation: it claims it, and A's actor is stale.
    b.post_ok(&conv, "from b").await;

    let (status, body) = a.post(&conv, "from a, stale").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    let seen_by_b = b.get_conv(&conv).await;
    let texts = |v: &serde_json::Value| -> Vec<String> {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "user")
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        texts(&seen_by_b),
        ["/count 3", "from b"],
        "the stale write changed nothing"
    );

    // A's next request starts a new actor there, which claims again and sees B's message.
    let mut accepted = false;
    for _ in 0..50 {
        let (status, _) = a.post(&conv, "from a again").await;
        if status == 202 {
            accepted = true;
            break;
        }
        assert_eq!(status, 503);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(accepted, "A takes the conversation over");
    let seen_by_a = a.get_conv(&conv).await;
    assert_eq!(
        texts(&seen_by_a),
        ["/count 3", "from b", "from a again"],
        "{seen_by_a}"
    );
}
