//! An owner's conversations across nodes: created through one node with the browser's
//! session cookie, listed, renamed and deleted through nodes that do not own it (the
//! command goes to the lease holder, whose actor decides), then 404 on every node, and
//! the event streams open on every node end.

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::nodes::{Cluster, WAIT};

async fn call(
    c: &Cluster,
    method: Method,
    url: String,
    cookie: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = c.http.request(method, url).header("cookie", cookie);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn rename_and_delete_reach_the_owner_from_any_node() {
    let c = Cluster::start(3).await;
    let made = c
        .http
        .post(c.nodes[0].url("/api/conversations"))
        .json(&json!({}))
        .send()
        .await
        .expect("create");
    assert_eq!(made.status(), 201);
    let cookie = made.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let id = made.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let owner = {
        let conv = crate::nodes::Conv {
            id: id.clone(),
            token: String::new(),
        };
        c.owner(&conv).await.expect("an owner")
    };
    let others: Vec<usize> = (0..3).filter(|n| *n != owner).collect();
    let path = format!("/api/conversations/{id}");

    // The session made on one node works on every node (it lives in the database).
    for n in &c.nodes {
        let (status, list) =
            call(&c, Method::GET, n.url("/api/conversations"), &cookie, None).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["conversations"][0]["id"], id.as_str());
    }
    let (status, s) = call(
        &c,
        Method::PATCH,
        c.nodes[others[0]].url(&path),
        &cookie,
        Some(json!({"title": "Renamed elsewhere"})),
    )
    .await;
    assert_eq!(status, 200, "{s}\n{}", c.logs());
    assert_eq!(s["title"], "Renamed elsewhere");
    let (_, list) = call(
        &c,
        Method::GET,
        c.nodes[owner].url("/api/conversations"),
        &cookie,
        None,
    )
    .await;
    assert_eq!(list["conversations"][0]["title"], "Renamed elsewhere");

    // An event stream on every node, open when the conversation is deleted.
    let mut streams = Vec::new();
    for n in &c.nodes {
        let resp = c
            .http
            .get(n.url(&format!("{path}/events")))
            .header("cookie", &cookie)
            .timeout(std::time::Duration::from_secs(600))
            .send()
            .await
            .expect("events");
        assert_eq!(resp.status(), 200);
        streams.push(resp.bytes_stream());
    }
    let (status, _) = call(
        &c,
        Method::DELETE,
        c.nodes[others[1]].url(&path),
        &cookie,
        None,
    )
    .await;
    assert_eq!(status, 204, "{}", c.logs());
    for (i, mut s) in streams.into_iter().enumerate() {
        let ended =
            tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = s.next().await {} }).await;
        assert!(ended.is_ok(), "the stream on node {i} ended\n{}", c.logs());
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    for n in &c.nodes {
        loop {
            let (status, _) = call(&c, Method::GET, n.url(&path), &cookie, None).await;
            if status == 404 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still {status} on {}",
                n.name
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let (_, list) = call(&c, Method::GET, n.url("/api/conversations"), &cookie, None).await;
        assert_eq!(list["conversations"], json!([]));
    }
}
