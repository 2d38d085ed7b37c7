//! Presence across nodes: typing on a WebSocket at one node reaches a participant's
//! WebSocket at another; bot state and `interrupted` (an interrupt sent over a third node's
//! WebSocket) reach both.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::nodes::{Cluster, Conv, WAIT};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(c: &Cluster, node: usize, conv: &Conv) -> Ws {
    let url = format!(
        "ws://{}/api/conversations/{}/ws",
        c.nodes[node].addr, conv.id
    );
    let mut req = url.into_client_request().expect("request");
    let bearer = HeaderValue::from_str(&format!("Bearer {}", conv.token)).expect("header");
    req.headers_mut().insert("authorization", bearer);
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("connect in time")
        .expect("upgrade");
    ws
}

/// The next JSON frame satisfying `want` (others skipped), bounded.
async fn frame(ws: &mut Ws, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("a frame");
        if let Message::Text(t) = msg
            && let Ok(v) = serde_json::from_str::<Value>(&t)
            && want(&v)
        {
            return v;
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

#[tokio::test]
async fn typing_bot_state_and_interrupts_reach_every_node() {
    let c = Cluster::start(3).await;
    let conv = c.create().await;
    let mut a = connect(&c, 0, &conv).await;
    let mut b = connect(&c, 1, &conv).await;
    let hello_a = frame(&mut a, |v| v["type"] == "hello").await;
    frame(&mut b, |v| v["type"] == "hello").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(
        &mut a,
        serde_json::json!({"type": "typing", "active": true}),
    )
    .await;
    let typing = frame(&mut b, |v| v["type"] == "typing").await;
    assert_eq!(typing["participant_id"], hello_a["participant_id"]);
    assert_eq!(typing["active"], true);

    let (status, _) = c.post(&c.nodes[2].url(""), &conv, "/count 5000").await;
    assert_eq!(status, 202);
    for ws in [&mut a, &mut b] {
        frame(ws, |v| v["type"] == "bot" && v["state"] == "streaming").await;
    }
    let mut third = connect(&c, 2, &conv).await;
    frame(&mut third, |v| v["type"] == "hello").await;
    send(&mut third, serde_json::json!({"type": "interrupt"})).await;
    for ws in [&mut a, &mut b] {
        frame(ws, |v| v["type"] == "interrupted").await;
        frame(ws, |v| v["type"] == "bot" && v["state"] == "idle").await;
    }
}
