//! `Idempotency-Key` across nodes: the key lives in PostgreSQL with the conversation, so a
//! retry at any node — also at once on several, also after the owner handed over — gets
//! the first answer, and the message is stored once.

use serde_json::Value;

use crate::nodes::{Cluster, Conv, WAIT};
use crate::sse::{Checker, Event};

async fn post_keyed(c: &Cluster, node: usize, conv: &Conv, text: &str, key: &str) -> (u16, Value) {
    c.post_keyed(&c.nodes[node].url(""), conv, text, Some(key))
        .await
}

fn completed(e: &Event) -> bool {
    e.event == "reply.completed"
}

#[tokio::test]
async fn a_key_posted_to_every_node_stores_its_message_once() {
    let mut c = Cluster::start(3).await;
    let conv = c.create().await;
    let checker = Checker::default();
    let mut stream = c.stream("reader", 0, &conv, None, checker.clone());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // The same request at all three nodes at once: one answer, one message.
    let (a, b, d) = tokio::join!(
        post_keyed(&c, 0, &conv, "/count 20", "k1"),
        post_keyed(&c, 1, &conv, "/count 20", "k1"),
        post_keyed(&c, 2, &conv, "/count 20", "k1"),
    );
    assert_eq!(
        (a.0, b.0, d.0),
        (202, 202, 202),
        "{a:?} {b:?} {d:?}\n{}",
        c.logs()
    );
    assert_eq!(a.1, b.1);
    assert_eq!(a.1, d.1);
    let first = a.1;
    stream.until(WAIT, completed).await;

    // After a clean handoff the next owner finds the key in storage.
    let owner = c.owner(&conv).await.expect("an owner");
    c.nodes[owner].terminate().await;
    let other = (owner + 1) % 3;
    let (status, again) = post_keyed(&c, other, &conv, "/count 20", "k1").await;
    assert_eq!((status, &again), (202, &first), "{}", c.logs());

    let history = c
        .get(&c.nodes[other].url(""), &conv)
        .await
        .expect("history");
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "one message and its reply: {history}");
    assert_eq!(messages[0]["id"], first["message_id"]);
    assert_eq!(messages[1]["id"], first["reply_id"]);
    checker.assert_clean();
}
