//! A new provider kind in a few lines: `Echo` repeats the user's last message back, one
//! word per delta. It shows the whole contract of `chatwire::providers::Provider`:
//! `info()` for the picker and `GET /api/providers`, and `start()` returning a `Reply`
//! whose stream yields `Delta`s and ends with `Completed` (or `Failed`). Dropping the
//! stream is how chatwire cancels, so a streaming provider needs no cancel code of its own.
//!
//! To make it a configurable kind, add an arm for `"echo"` to `build()` in
//! `src/providers/kinds.rs` (see docs/providers.md). Run this example with
//! `cargo run --example echo_provider`.

use std::time::Duration;

use chatwire::chat::Role;
use chatwire::providers::{Provider, ProviderInfo, Reply, ReplyEvent, ReplyRequest, Turn};
use futures_util::StreamExt;

struct Echo {
    info: ProviderInfo,
    pause: Duration,
}

impl Echo {
    fn new(name: &str) -> Self {
        Echo {
            info: ProviderInfo {
                name: name.into(),
                kind: "echo".into(),
                label: "Echo (repeats you)".into(),
                default: false,
            },
            pause: Duration::from_millis(50),
        }
    }
}

impl Provider for Echo {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn start(&self, request: ReplyRequest) -> Reply {
        let last = request
            .history
            .iter()
            .rev()
            .find(|t| t.role == Role::User)
            .map(|t| t.text.clone())
            .unwrap_or_default();
        let words: Vec<String> = format!("You said: {last}")
            .split_inclusive(' ')
            .map(String::from)
            .collect();
        let pause = self.pause;
        // Deltas at a steady pace, then `Completed`: a stream that just ended would count
        // as a failure ("ended before the reply was finished").
        let events = futures_util::stream::iter(words)
            .then(move |w| async move {
                tokio::time::sleep(pause).await;
                ReplyEvent::Delta(w)
            })
            .chain(futures_util::stream::once(async { ReplyEvent::Completed }));
        Reply::new(events.boxed())
    }
}

#[tokio::main]
async fn main() {
    let echo = Echo::new("echo");
    let mut reply = echo.start(ReplyRequest {
        conversation_id: "example".into(),
        reply_id: "m_example".into(),
        history: vec![Turn {
            role: Role::User,
            text: "hello, providers".into(),
        }],
    });
    while let Some(event) = reply.events.next().await {
        match event {
            ReplyEvent::Delta(text) => print!("{text}"),
            ReplyEvent::Completed => println!("\n[completed]"),
            ReplyEvent::Failed(error) => println!("\n[failed: {error}]"),
        }
    }
}
