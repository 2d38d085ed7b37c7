//! Parked callbacks: claimed exactly once, whichever nodes race for them.

use chatwire::cluster::parked;

use crate::redis_server::RedisServer;

#[tokio::test]
async fn a_parked_callback_is_claimed_exactly_once() {
    let server = RedisServer::start().await;
    let r = server.client().await;
    parked::park(&r, "job_1", b"first").await.unwrap();
    parked::park(&r, "job_1", b"second").await.unwrap();
    let claims = futures_util::future::join_all((0..4).map(|_| {
        let r = r.clone();
        async move { parked::claim(&r, "job_1").await.unwrap() }
    }))
    .await;
    let won: Vec<_> = claims.iter().filter(|c| !c.is_empty()).collect();
    assert_eq!(won.len(), 1, "{claims:?}");
    assert_eq!(won[0], &vec![b"first".to_vec(), b"second".to_vec()]);
}
