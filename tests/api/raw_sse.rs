//! An SSE reader on a raw TCP socket with a tiny receive buffer: when it stops reading,
//! the server's writes to it block for real (no client-side buffering hides it). It
//! decodes the chunked body itself.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{Conv, WAIT};

/// An SSE reader on a raw socket with a tiny receive buffer, so that it is slow for real:
/// the server's writes block as soon as it stops reading.
pub struct RawSse {
    stream: TcpStream,
    raw: Vec<u8>,
    body: Vec<u8>,
    pub ended: bool,
}

impl RawSse {
    pub async fn open(addr: std::net::SocketAddr, conv: &Conv) -> RawSse {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        let req = format!(
            "GET /api/conversations/{}/events HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
            conv.id, conv.token
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut sse = RawSse {
            stream,
            raw: Vec::new(),
            body: Vec::new(),
            ended: false,
        };
        let head_end = loop {
            if let Some(p) = sse.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            assert!(sse.read(4096).await, "headers");
        };
        let head = String::from_utf8(sse.raw.drain(..head_end + 4).collect()).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
        );
        sse
    }

    /// Reads at most `max` bytes from the socket; `false` at the end of the stream.
    pub async fn read(&mut self, max: usize) -> bool {
        let mut buf = vec![0u8; max];
        let n = tokio::time::timeout(WAIT, self.stream.read(&mut buf))
            .await
            .expect("data within the wait")
            .unwrap();
        self.raw.extend_from_slice(&buf[..n]);
        n > 0
    }

    /// Moves every complete chunk of the chunked body from `raw` to `body`.
    fn dechunk(&mut self) {
        while let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let size_text = std::str::from_utf8(&self.raw[..eol]).unwrap();
            let size = usize::from_str_radix(size_text.trim(), 16).unwrap();
            if size == 0 {
                self.ended = true;
                return;
            }
            let need = eol + 2 + size + 2;
            if self.raw.len() < need {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..need);
        }
    }

    /// Complete SSE blocks received so far.
    pub fn blocks(&mut self) -> Vec<String> {
        self.dechunk();
        let mut out = Vec::new();
        while let Some(p) = self.body.windows(2).position(|w| w == b"\n\n") {
            out.push(String::from_utf8(self.body.drain(..p + 2).collect()).unwrap());
        }
        out
    }
}
