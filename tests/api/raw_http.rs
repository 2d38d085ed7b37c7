//! HTTP/1.1 by hand over a raw TCP socket, for the abuse tests: half a request head, a
//! held body, a socket that says nothing. Every read is bounded by a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Raw {
    pub tcp: TcpStream,
    /// Everything read so far.
    pub got: Vec<u8>,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Raw {
            tcp,
            got: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &str) {
        self.tcp
            .write_all(bytes.as_bytes())
            .await
            .expect("write to the server");
    }

    /// Reads until the server closes the socket (EOF or reset: `true`) or `limit` passes
    /// (`false`).
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.got.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Reads until a whole response head (and `content-length` body) is in, within
    /// `limit`; returns it as text (empty if the socket closed first).
    pub async fn response_within(&mut self, limit: Duration) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = complete(&self.got) {
                let text = String::from_utf8_lossy(&self.got[..end]).into_owned();
                self.got.drain(..end);
                return text;
            }
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut buf)).await {
                Err(_) => panic!(
                    "no whole response within {limit:?}; got {:?}",
                    String::from_utf8_lossy(&self.got)
                ),
                Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&self.got).into_owned(),
                Ok(Ok(n)) => self.got.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// The end of the first whole response in `got` (head plus `content-length` bytes).
fn complete(got: &[u8]) -> Option<usize> {
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (got.len() >= head_end + length).then_some(head_end + length)
}

/// The status code of a response's first line (0 if there is none).
pub fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
