//! PostgreSQL going away and coming back: calls fail as `Unavailable` (never hang), and
//! the same `Store` works again once the server is back, without reconnecting by hand.

use std::time::Duration;

use chatwire::storage::{Store, StoreError};

use crate::postgres::PgServer;

#[tokio::test]
async fn a_restarted_server_is_unavailable_then_works_again() {
    let pg = PgServer::start();
    let store = Store::connect(&pg.fresh_db()).await.unwrap();
    store
        .create_conversation("c1", "h", "offline", 0)
        .await
        .unwrap();
    store.ping().await.unwrap();

    pg.stop();
    let ping = tokio::time::timeout(Duration::from_secs(10), store.ping())
        .await
        .expect("a ping of a stopped server answers within the acquire timeout");
    assert!(matches!(ping, Err(StoreError::Unavailable(_))), "{ping:?}");
    let claim = tokio::time::timeout(Duration::from_secs(10), store.claim("c1"))
        .await
        .expect("bounded");
    assert!(
        claim.as_ref().is_err_and(StoreError::is_unavailable),
        "{claim:?}"
    );

    pg.start_again();
    let mut back = false;
    for _ in 0..100 {
        if store.ping().await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the pool reconnects by itself");
    assert_eq!(
        store.claim("c1").await.unwrap().0,
        1,
        "the failed claim changed nothing"
    );
    store.close().await;
    pg.stop();
}
