//! A real WebSocket client for the tests (tokio-tungstenite), with bounded waits, plus a raw
//! TCP variant that completes the handshake and then never answers (a dead peer).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Request, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{Conv, TestApp, WAIT};

/// How the client proves it may use the conversation.
pub enum Cred<'a> {
    Bearer(&'a Conv),
    /// The browser way: the cookie, plus the page's own `Origin`.
    Cookie(&'a Conv),
    None,
}

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl TestApp {
    pub fn ws_request(&self, conv_id: &str, cred: Cred<'_>) -> Request<()> {
        let url = format!("ws://{}/api/conversations/{conv_id}/ws", self.addr);
        let mut req = url.into_client_request().expect("request");
        let h = req.headers_mut();
        match cred {
            Cred::Bearer(c) => {
                let v = format!("Bearer {}", c.token);
                h.insert("authorization", HeaderValue::from_str(&v).unwrap());
            }
            Cred::Cookie(c) => {
                let v = format!("cw_{}={}", c.id, c.token);
                h.insert("cookie", HeaderValue::from_str(&v).unwrap());
                let origin = format!("http://{}", self.addr);
                h.insert("origin", HeaderValue::from_str(&origin).unwrap());
            }
            Cred::None => {}
        }
        req
    }

    /// Opens a WebSocket with the Bearer token (no `Origin`: a non-browser client).
    pub async fn ws(&self, conv: &Conv) -> WsClient {
        self.ws_connect(self.ws_request(&conv.id, Cred::Bearer(conv)))
            .await
            .expect("WebSocket opens")
    }

    /// Opens a WebSocket like the page does: cookie and same-site `Origin`.
    pub async fn ws_browser(&self, conv: &Conv) -> WsClient {
        self.ws_connect(self.ws_request(&conv.id, Cred::Cookie(conv)))
            .await
            .expect("WebSocket opens")
    }

    pub async fn ws_connect(&self, req: Request<()>) -> Result<WsClient, WsError> {
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("handshake within the bound")?;
        Ok(WsClient { stream })
    }

    /// The status of a refused upgrade.
    pub async fn ws_refused(&self, req: Request<()>) -> StatusCode {
        match self.ws_connect(req).await {
            Err(WsError::Http(resp)) => resp.status(),
            Err(e) => panic!("expected an HTTP refusal, got {e}"),
            Ok(_) => panic!("expected the upgrade to be refused"),
        }
    }
}

/// What the client read next.
#[derive(Debug)]
pub enum Got {
    Json(Value),
    Close(Option<CloseFrame>),
    /// The stream ended (or failed) without a Close frame.
    End,
    /// Nothing within the time asked.
    Nothing,
}

impl WsClient {
    pub async fn send_json(&mut self, v: Value) {
        self.send(Message::text(v.to_string())).await;
    }

    pub async fn send(&mut self, msg: Message) {
        tokio::time::timeout(WAIT, self.stream.send(msg))
            .await
            .expect("send within the bound")
            .expect("send");
    }

    pub async fn typing(&mut self, active: bool) {
        self.send_json(serde_json::json!({"type": "typing", "active": active}))
            .await;
    }

    /// The next text frame, Close or end; pings and pongs are skipped.
    pub async fn next_within(&mut self, limit: Duration) -> Got {
        let deadline = Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Got::Nothing,
                Ok(None) | Ok(Some(Err(_))) => return Got::End,
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Got::Json(serde_json::from_str(t.as_str()).expect("JSON frame"));
                }
                Ok(Some(Ok(Message::Close(c)))) => return Got::Close(c),
                Ok(Some(Ok(Message::Binary(_)))) => panic!("the server sent a binary frame"),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The next JSON frame; panics on anything else.
    pub async fn next_json(&mut self) -> Value {
        match self.next_within(WAIT).await {
            Got::Json(v) => v,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// Frames up to and including the first for which `last` is true.
    pub async fn until(&mut self, last: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v = self.next_json().await;
            let stop = last(&v);
            out.push(v);
            if stop {
                return out;
            }
        }
    }

    /// Reads `hello` and the bot state that follows; returns the participant id.
    pub async fn hello(&mut self) -> String {
        let hello = self.next_json().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        let pid = hello["participant_id"].as_str().expect("participant_id");
        assert!(!pid.is_empty());
        let bot = self.next_json().await;
        assert_eq!(bot["type"], "bot", "{bot}");
        pid.to_string()
    }

    /// Asserts that no text frame arrives for `dur`.
    pub async fn expect_quiet(&mut self, dur: Duration) {
        match self.next_within(dur).await {
            Got::Nothing => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }

    /// Reads until the Close frame; returns its code.
    pub async fn close_code(&mut self, limit: Duration) -> u16 {
        let deadline = Instant::now() + limit;
        loop {
            match self.next_within(deadline - Instant::now()).await {
                Got::Json(_) => {}
                Got::Close(Some(c)) => return c.code.into(),
                other => panic!("expected a Close frame, got {other:?}"),
            }
        }
    }

    /// Starts the close handshake and reads until the stream ends.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
    }
}

/// A client that completes the upgrade by hand and then never reads or answers.
pub struct DeadPeer {
    pub tcp: TcpStream,
}

impl DeadPeer {
    pub async fn connect(app: &TestApp, conv: &Conv) -> DeadPeer {
        let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
        let req = format!(
            "GET /api/conversations/{}/ws HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            conv.id, app.addr, conv.token
        );
        tcp.write_all(req.as_bytes()).await.expect("write");
        DeadPeer { tcp }
    }

    /// Everything the server sent until it closed the connection (bounded by `limit`).
    pub async fn read_to_end(mut self, limit: Duration) -> Vec<u8> {
        let mut out = Vec::new();
        tokio::time::timeout(limit, self.tcp.read_to_end(&mut out))
            .await
            .expect("the server closes the connection within the bound")
            .expect("read");
        out
    }
}

/// The server frames (unmasked, unfragmented, short) after the HTTP response: (opcode, payload).
pub fn parse_server_frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let start = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response")
        + 4;
    assert!(bytes.starts_with(b"HTTP/1.1 101"), "upgrade accepted");
    let mut rest = &bytes[start..];
    let mut frames = Vec::new();
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        let len = usize::from(rest[1] & 0x7f);
        assert!(len < 126, "short frames only");
        frames.push((opcode, rest[2..2 + len].to_vec()));
        rest = &rest[2 + len..];
    }
    frames
}
