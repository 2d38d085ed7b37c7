//! `/healthz` in a cluster: 503 while the node cannot reach Redis or PostgreSQL, 200 again
//! once it can; and while either is gone a post is never acknowledged and then missing.
//! PostgreSQL here is the test's own server (stopping the shared one would hit other tests).

use std::time::Duration;

use crate::nodes::{Cluster, Conv};
use crate::postgres::PgServer;
use crate::redis_server::eventually;

/// How long a node may take to notice an outage or a recovery (its Redis and database
/// timeouts are 1–2 s; reconnection backs off up to 0.5 s).
const NOTICE: Duration = Duration::from_secs(15);

async fn health(c: &Cluster) -> u16 {
    let resp = c
        .http
        .get(c.nodes[0].url("/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    resp.map_or(0, |r| r.status().as_u16())
}

/// Posts during an outage: each answer is a 503 or, if 202, a message that must be kept.
async fn post_during_outage(c: &Cluster, conv: &Conv, acked: &mut Vec<String>) {
    let (status, body) = c.post(&c.nodes[0].url(""), conv, "/count 2").await;
    match status {
        202 => acked.push(body["message_id"].as_str().unwrap_or_default().to_owned()),
        503 => {}
        s => panic!("a post during an outage answered {s}: {body}\n{}", c.logs()),
    }
}

#[tokio::test]
async fn healthz_is_503_while_redis_or_postgresql_is_unreachable() {
    let pg = PgServer::start();
    let mut c = Cluster::start_on(1, &pg.fresh_db(), &[]).await;
    let conv = c.create().await;
    assert_eq!(health(&c).await, 200);
    let mut acked = Vec::new();

    c.redis.kill().await;
    eventually(NOTICE, "503 without redis", || async {
        health(&c).await == 503
    })
    .await;
    post_during_outage(&c, &conv, &mut acked).await;
    c.redis.start_again().await;
    eventually(NOTICE, "200 with redis back", || async {
        health(&c).await == 200
    })
    .await;

    pg.stop();
    eventually(NOTICE, "503 without postgresql", || async {
        health(&c).await == 503
    })
    .await;
    post_during_outage(&c, &conv, &mut acked).await;
    pg.start_again();
    eventually(NOTICE, "200 with postgresql back", || async {
        health(&c).await == 200
    })
    .await;

    // Working again, and whatever was acknowledged during the outages is there.
    eventually(NOTICE, "a post after the outages", || async {
        let (status, _) = c.post(&c.nodes[0].url(""), &conv, "/count 2").await;
        status == 202
    })
    .await;
    let history = c
        .get(&c.nodes[0].url(""), &conv)
        .await
        .expect("the history");
    for m in &acked {
        let kept = history["messages"]
            .as_array()
            .is_some_and(|all| all.iter().any(|x| x["id"] == m.as_str()));
        assert!(kept, "acknowledged {m} kept: {history}");
    }
}
