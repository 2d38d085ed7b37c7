//! Abuse at the connection level, through raw TCP sockets: a request head that never
//! ends, a keep-alive socket that says nothing, more connections from one address than
//! `--max-connections-per-address`, a request body that stalls. After each the server
//! still answers.

use std::time::Duration;

use crate::helpers::*;
use crate::raw_http::{Raw, status};

/// A short header timeout, so the tests wait about a second, with generous bounds.
async fn app_with_header_timeout(secs: u64) -> TestApp {
    spawn_app_with(|c| c.network.header_timeout = Duration::from_secs(secs)).await
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_closed() {
    let app = app_with_header_timeout(1).await;
    let mut slow = Raw::connect(app.addr).await;
    slow.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await;
    assert!(
        slow.closed_within(WAIT).await,
        "a half-sent head must not hold the socket"
    );
    // A socket that sends nothing at all is closed the same way.
    let mut silent = Raw::connect(app.addr).await;
    assert!(
        silent.closed_within(WAIT).await,
        "a silent socket is closed"
    );
    app.assert_healthy().await;
}

#[tokio::test]
async fn an_idle_keep_alive_socket_is_closed() {
    let app = app_with_header_timeout(1).await;
    let mut raw = Raw::connect(app.addr).await;
    raw.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let first = raw.response_within(WAIT).await;
    assert_eq!(status(&first), 200, "{first}");
    // Kept alive for a next request, but not for ever.
    assert!(raw.closed_within(WAIT).await, "the idle socket is closed");
    app.assert_healthy().await;
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_refused() {
    let app = spawn_app_with(|c| c.network.max_connections_per_address = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut raw = Raw::connect(app.addr).await;
        raw.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await;
        assert_eq!(status(&raw.response_within(WAIT).await), 200);
        held.push(raw);
    }
    let mut extra = Raw::connect(app.addr).await;
    // The server answers 429 at once and closes, before reading a byte.
    assert!(
        extra.closed_within(WAIT).await,
        "the fourth connection is closed"
    );
    let said = String::from_utf8_lossy(&extra.got).into_owned();
    assert!(
        said.is_empty() || status(&said) == 429,
        "refused or 429, got {said:?}"
    );
    // The held connections still work; once one closes, there is room again.
    let mut first = held.remove(0);
    first
        .send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    assert_eq!(status(&first.response_within(WAIT).await), 200);
    drop(first);
    drop(held);
    // Room again once the server has seen the closes.
    eventually_some("room again after the held sockets closed", || async {
        let mut raw = Raw::connect(app.addr).await;
        raw.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await;
        (status(&raw.response_within(WAIT).await) == 200).then_some(())
    })
    .await;
    app.assert_healthy().await;
}

#[tokio::test]
async fn a_stalled_request_body_ends_the_request() {
    let app = app_with_header_timeout(1).await;
    let mut raw = Raw::connect(app.addr).await;
    raw.send(
        "POST /api/conversations HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"provi",
    )
    .await;
    let answer = raw.response_within(WAIT).await;
    assert_eq!(status(&answer), 408, "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    app.assert_healthy().await;
}
