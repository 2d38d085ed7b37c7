//! Checkpoints that write only the delta (`reply_parts`), on both backends: the parts of a
//! streaming reply are reassembled on load, in order, without doubling; the final write
//! stores the text whole and a late part changes nothing; a reply cut off by a stop keeps
//! every checkpointed part.

use chatwire::chat::{Message, Status};

use crate::stores;

#[tokio::test]
async fn parts_reassemble_and_the_final_write_wins() {
    for (backend, store) in stores().await {
        store
            .create_conversation("c1", "hash", "offline", 1)
            .await
            .unwrap();
        let e = store.claim("c1").await.unwrap();
        let user = Message::user("count".into());
        let mut reply = Message::streaming_reply();
        store.insert_message("c1", e, 0, &user).await.unwrap();
        store.insert_message("c1", e, 1, &reply).await.unwrap();
        // Parts arrive as separate writes, possibly out of order (each runs on its own task).
        for (offset, part) in [(0, "one "), (8, "three"), (4, "two ")] {
            store
                .checkpoint_reply("c1", e, &reply.id, offset, part)
                .await
                .unwrap();
        }
        // The same part again (a retried write) does not double the text.
        store
            .checkpoint_reply("c1", e, &reply.id, 4, "two ")
            .await
            .unwrap();
        let got = store.load_conversation("c1").await.unwrap().unwrap();
        assert_eq!(got.messages[1].text, "one two three", "{backend}");
        assert_eq!(got.messages[1].status, Status::Streaming);
        assert_eq!(
            got.messages[0].text, "count",
            "{backend}: other rows untouched"
        );

        // The end stores the whole text; a late part cannot add to it.
        reply.text = "one two three four".into();
        reply.status = Status::Complete;
        store.update_message("c1", e, &reply).await.unwrap();
        store
            .checkpoint_reply("c1", e, &reply.id, 13, " five")
            .await
            .unwrap();
        store
            .checkpoint_reply("c1", e, &reply.id, 18, " six")
            .await
            .unwrap();
        let got = store.load_conversation("c1").await.unwrap().unwrap();
        assert_eq!(got.messages[1].text, "one two three four", "{backend}");
        assert_eq!(got.messages[1].status, Status::Complete);
    }
}

#[tokio::test]
async fn a_reply_cut_off_by_a_stop_keeps_its_checkpointed_parts() {
    for (backend, store) in stores().await {
        store
            .create_conversation("c2", "hash", "offline", 1)
            .await
            .unwrap();
        let e = store.claim("c2").await.unwrap();
        let reply = Message::streaming_reply();
        store.insert_message("c2", e, 0, &reply).await.unwrap();
        let words: Vec<String> = (1..=200).map(|i| format!("{i} ")).collect();
        let mut offset = 0;
        for w in &words {
            store
                .checkpoint_reply("c2", e, &reply.id, offset, w)
                .await
                .unwrap();
            offset += w.len();
        }
        // A part after a gap (its predecessor never written) is not glued on.
        store
            .checkpoint_reply("c2", e, &reply.id, offset + 5, "gap")
            .await
            .unwrap();
        assert_eq!(
            store.mark_abandoned_replies().await.unwrap(),
            1,
            "{backend}"
        );
        let got = store.load_conversation("c2").await.unwrap().unwrap();
        assert_eq!(got.messages[0].status, Status::Failed, "{backend}");
        assert_eq!(got.messages[0].text, words.concat(), "{backend}");
    }
}
