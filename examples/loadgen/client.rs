//! The load generator's HTTP/1.1, SSE and WebSocket clients, written by hand over
//! `tokio::net::TcpStream` so that the client costs little next to the server it measures.
//!
//! Only what the benchmark needs is parsed: a response's status, `Content-Length` or
//! chunked body; an SSE stream's `event:` names (the arrival time of a read is stamped once
//! for every frame in it); a WebSocket's `101` and outgoing masked text frames.
//! Connections come from rotating loopback source addresses (127.0.0.1–127.0.0.16) so
//! tens of thousands of sockets never run out of ephemeral ports.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// Source addresses rotated over: 127.0.0.1 ..= 127.0.0.SOURCES.
const SOURCES: u32 = 16;
static NEXT_SOURCE: AtomicU32 = AtomicU32::new(0);

/// Connects from the next loopback source address.
pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % SOURCES;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + n as u8)),
        0,
    ))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Finds `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The head of a response: status and the two headers we care about.
struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
}

fn parse_head(head: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(head).map_err(|_| bad("non-UTF-8 response head"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut h = Head {
        status,
        content_length: None,
        chunked: false,
    };
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "content-length" {
            h.content_length = v.parse().ok();
        } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            h.chunked = true;
        }
    }
    Ok(h)
}

/// Reads until the end of the response head; returns it and whatever followed it.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Head> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = parse_head(&buf[..end])?;
            buf.drain(..end + 4);
            return Ok(head);
        }
        if buf.len() > 64 * 1024 {
            return Err(bad("response head too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn request_bytes(
    method: &str,
    host: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    if let Some(t) = token {
        r.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    match body {
        Some(b) => r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => r.push_str("Content-Length: 0\r\n\r\n"),
    }
    r.into_bytes()
}

/// A keep-alive HTTP/1.1 connection for JSON requests (one at a time).
pub struct Http {
    addr: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Self {
        Http {
            addr,
            host: addr.to_string(),
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends a request without waiting for the answer (see [`Http::read_response`]).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> io::Result<()> {
        if self.stream.is_none() {
            self.stream = Some(connect(self.addr).await?);
            self.buf.clear();
        }
        let req = request_bytes(method, &self.host, path, token, body);
        let stream = self.stream.as_mut().ok_or_else(|| bad("not connected"))?;
        if let Err(e) = stream.write_all(&req).await {
            self.stream = None;
            return Err(e);
        }
        Ok(())
    }

    /// Reads the answer to the request sent last: status and body.
    pub async fn read_response(&mut self) -> io::Result<(u16, Vec<u8>)> {
        let result = self.read_response_inner().await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn read_response_inner(&mut self) -> io::Result<(u16, Vec<u8>)> {
        let stream = self.stream.as_mut().ok_or_else(|| bad("not connected"))?;
        let head = read_head(stream, &mut self.buf).await?;
        let mut body = Vec::new();
        if head.chunked {
            let mut dec = ChunkDecoder::default();
            let leftover = std::mem::take(&mut self.buf);
            dec.feed(&leftover, &mut body)?;
            while !dec.done() {
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                dec.feed(&chunk[..n], &mut body)?;
            }
        } else {
            let len = head.content_length.unwrap_or(0);
            while self.buf.len() < len {
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
            body = self.buf.drain(..len).collect();
        }
        Ok((head.status, body))
    }

    /// One request and its answer; reconnects once if a kept-alive connection was closed.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> io::Result<(u16, Vec<u8>)> {
        let reused = self.stream.is_some();
        let first = async {
            self.send(method, path, token, body).await?;
            self.read_response().await
        }
        .await;
        match first {
            Err(_) if reused => {
                self.send(method, path, token, body).await?;
                self.read_response().await
            }
            other => other,
        }
    }
}

/// Decodes `Transfer-Encoding: chunked` incrementally.
#[derive(Default)]
pub struct ChunkDecoder {
    state: ChunkState,
    size: usize,
}

#[derive(Default, PartialEq)]
enum ChunkState {
    #[default]
    Size,
    /// Skipping chunk extensions up to the end of the size line.
    SizeLine,
    Data,
    DataEnd,
    Done,
}

impl ChunkDecoder {
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let b = input[0];
                    input = &input[1..];
                    match b {
                        b'0'..=b'9' => self.size = self.size * 16 + (b - b'0') as usize,
                        b'a'..=b'f' => self.size = self.size * 16 + (b - b'a' + 10) as usize,
                        b'A'..=b'F' => self.size = self.size * 16 + (b - b'A' + 10) as usize,
                        b'\n' => self.end_size_line(),
                        _ => self.state = ChunkState::SizeLine,
                    }
                }
                ChunkState::SizeLine => {
                    let b = input[0];
                    input = &input[1..];
                    if b == b'\n' {
                        self.end_size_line();
                    }
                }
                ChunkState::Data => {
                    let n = self.size.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.size -= n;
                    if self.size == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                }
                ChunkState::DataEnd => {
                    // The CRLF after a chunk's data.
                    let b = input[0];
                    input = &input[1..];
                    if b == b'\n' {
                        self.state = ChunkState::Size;
                    }
                }
                ChunkState::Done => return Ok(()),
            }
        }
        Ok(())
    }

    fn end_size_line(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::Done
        } else {
            ChunkState::Data
        };
    }
}

/// The SSE events the benchmark tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ev {
    Started,
    Delta,
    Completed,
    Interrupted,
    Failed,
    Other,
}

impl Ev {
    pub fn ends_reply(self) -> bool {
        matches!(self, Ev::Completed | Ev::Interrupted | Ev::Failed)
    }
}

fn classify(block: &[u8]) -> Option<Ev> {
    let at = find(block, b"event: ")?;
    let rest = &block[at + 7..];
    let name = &rest[..rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len())];
    Some(match name {
        b"reply.delta" => Ev::Delta,
        b"reply.started" => Ev::Started,
        b"reply.completed" => Ev::Completed,
        b"reply.interrupted" => Ev::Interrupted,
        b"reply.failed" => Ev::Failed,
        _ => Ev::Other,
    })
}

/// One open `text/event-stream` response.
pub struct SseConn {
    stream: TcpStream,
    raw: Vec<u8>,
    payload: Vec<u8>,
    chunks: ChunkDecoder,
    chunked: bool,
}

/// Sends `GET path` and reads the response head; the stream must answer 200.
pub async fn open_sse(addr: SocketAddr, path: &str, token: Option<&str>) -> io::Result<SseConn> {
    let mut stream = connect(addr).await?;
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let head = read_head(&mut stream, &mut buf).await?;
    if head.status != 200 {
        return Err(bad(format!("SSE answered {}", head.status)));
    }
    let mut conn = SseConn {
        stream,
        raw: Vec::new(),
        payload: Vec::with_capacity(1024),
        chunks: ChunkDecoder::default(),
        chunked: head.chunked,
    };
    conn.take_raw(&buf)?;
    Ok(conn)
}

impl SseConn {
    fn take_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.chunked {
            self.chunks.feed(bytes, &mut self.payload)
        } else {
            self.payload.extend_from_slice(bytes);
            Ok(())
        }
    }

    /// Reads once (waiting for data); appends the complete events now buffered to `out`
    /// and returns when the read completed. End of stream is an `UnexpectedEof` error.
    pub async fn read_events(&mut self, out: &mut Vec<Ev>) -> io::Result<Instant> {
        if self.raw.len() < 16 * 1024 {
            self.raw.resize(16 * 1024, 0);
        }
        let n = self.stream.read(&mut self.raw).await?;
        let at = Instant::now();
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let raw = std::mem::take(&mut self.raw);
        let fed = self.take_raw(&raw[..n]);
        self.raw = raw;
        fed?;
        self.drain_events(out);
        Ok(at)
    }

    /// Events already buffered (e.g. read together with the response head).
    pub fn drain_events(&mut self, out: &mut Vec<Ev>) {
        let mut start = 0;
        while let Some(end) = find(&self.payload[start..], b"\n\n") {
            if let Some(ev) = classify(&self.payload[start..start + end]) {
                out.push(ev);
            }
            start += end + 2;
        }
        self.payload.drain(..start);
    }

    /// Is the stream still open? Reads whatever waits without blocking.
    pub fn alive(&self) -> bool {
        still_open(&self.stream)
    }
}

/// Is `stream` still open? Reads and drops whatever waits, without blocking.
fn still_open(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.try_read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

/// An upgraded WebSocket (we only send masked text frames and check liveness).
pub struct WsConn {
    stream: TcpStream,
}

/// Opens a WebSocket at `path` (`Origin` = the server's own); `Ok(None)` if the server
/// answered something other than `101` (e.g. the route does not exist).
pub async fn open_ws(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> io::Result<Result<WsConn, u16>> {
    let mut stream = connect(addr).await?;
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let head = read_head(&mut stream, &mut buf).await?;
    if head.status != 101 {
        return Ok(Err(head.status));
    }
    Ok(Ok(WsConn { stream }))
}

impl WsConn {
    /// Sends one masked text frame (payload shorter than 126 bytes).
    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        let payload = text.as_bytes();
        if payload.len() >= 126 {
            return Err(bad("frame too long for this client"));
        }
        let mask = [0x5a, 0x17, 0xc3, 0x2e];
        let mut frame = vec![0x81, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await
    }

    /// Is the socket still open? Reads (and ignores) whatever frames wait.
    pub fn alive(&self) -> bool {
        still_open(&self.stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_decode_across_splits() {
        let wire = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = ChunkDecoder::default();
            let mut out = Vec::new();
            d.feed(&wire[..split], &mut out).unwrap();
            d.feed(&wire[split..], &mut out).unwrap();
            assert_eq!(out, b"hello world");
            assert!(d.done());
        }
    }

    #[test]
    fn classifies_events() {
        assert_eq!(
            classify(b"id: 3\nevent: reply.delta\ndata: {}"),
            Some(Ev::Delta)
        );
        assert_eq!(classify(b": keep-alive"), None);
        assert_eq!(classify(b"retry: 1000"), None);
    }
}
