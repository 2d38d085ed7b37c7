//! Webhook receipts and provider jobs, on both backends.

use chatwire::storage::StoreError;

use crate::stores;

#[tokio::test]
async fn prunes_old_receipts_of_every_sender_on_a_route_only() {
    for (backend, store) in stores().await {
        for (source, id, at) in [
            ("nlp:a", "1", 10),
            ("nlp:b", "1", 10),
            ("nlp:b", "2", 1000),
            ("nlpx:c", "1", 10),
            ("openai:o", "1", 10),
        ] {
            assert!(
                store.record_webhook(source, id, at).await.unwrap(),
                "{backend}"
            );
        }
        assert!(
            !store.record_webhook("nlp:a", "1", 20).await.unwrap(),
            "{backend}: duplicate"
        );
        assert_eq!(
            store.prune_webhooks_of("nlp", 500).await.unwrap(),
            2,
            "{backend}"
        );
        // Pruned: recorded again as new. Kept: still a duplicate.
        assert!(store.record_webhook("nlp:a", "1", 2000).await.unwrap());
        assert!(!store.record_webhook("nlp:b", "2", 2000).await.unwrap());
        assert!(!store.record_webhook("nlpx:c", "1", 2000).await.unwrap());
        assert!(!store.record_webhook("openai:o", "1", 2000).await.unwrap());
        store.forget_webhook("nlp:b", "2").await.unwrap();
        assert!(
            store.record_webhook("nlp:b", "2", 2000).await.unwrap(),
            "{backend}"
        );
        assert_eq!(store.prune_webhooks(1500).await.unwrap(), 2, "{backend}");
    }
}

#[tokio::test]
async fn jobs_are_unique_per_id_and_per_reply_and_pruned_by_age() {
    for (backend, store) in stores().await {
        store
            .create_conversation("c1", "h", "nlp", 0)
            .await
            .unwrap();
        store
            .insert_job("nlp", "old", "c1", "r1", 10)
            .await
            .unwrap();
        store
            .insert_job("nlp", "pending:r2", "c1", "r2", 1000)
            .await
            .unwrap();
        let again = store
            .insert_job("nlp", "pending:r2x", "c1", "r2", 1000)
            .await;
        assert!(
            matches!(again, Err(StoreError::UniqueViolation(_))),
            "{backend}: a second job for a reply: {again:?}"
        );
        let same_id = store.insert_job("nlp", "old", "c1", "r9", 1000).await;
        assert!(
            matches!(same_id, Err(StoreError::UniqueViolation(_))),
            "{backend}"
        );
        assert!(store.assign_job("nlp", "r2", "new").await.unwrap());
        assert!(!store.assign_job("nlp", "r404", "x").await.unwrap());
        assert_eq!(
            store.find_job("nlp", "new").await.unwrap(),
            Some(("c1".into(), "r2".into())),
            "{backend}"
        );
        assert_eq!(store.prune_jobs(500).await.unwrap(), 1, "{backend}");
        assert_eq!(store.find_job("nlp", "old").await.unwrap(), None);
        assert!(store.find_job("nlp", "new").await.unwrap().is_some());
    }
}
