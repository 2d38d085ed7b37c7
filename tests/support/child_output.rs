//! What a child process (the real chatwire binary) writes: collected into a string for the
//! test's failure messages, and the address from its "listening" line handed over once.
//! Shared by the test binaries through `#[path]`.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};

pub fn collect(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<String>>,
    listening: Option<tokio::sync::oneshot::Sender<String>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        let mut listening = listening;
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("chatwire is listening on http://")
                && let Some(tx) = listening.take()
            {
                let _ = tx.send(addr.trim().to_string());
            }
            let mut out = into.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
}
