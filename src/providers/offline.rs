//! The built-in offline provider: no network, no key. It streams its reply one word per
//! delta with a fixed pause, which makes it the demo bot of a fresh install and the
//! load source of tests and benchmarks (`/count N`).

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::offline_script::{Script, Voice, script_for};
use super::{Provider, ProviderContext, ProviderInfo, Reply, ReplyEvent, ReplyRequest};
use crate::config::ProviderConfig;

pub struct Offline {
    info: ProviderInfo,
    delay: Duration,
}

impl Offline {
    pub fn new(entry: &ProviderConfig, is_default: bool, ctx: &ProviderContext) -> Self {
        Offline {
            info: ProviderInfo {
                name: entry.name.clone(),
                kind: "offline".into(),
                label: entry
                    .label
                    .clone()
                    .unwrap_or_else(|| "Offline demo bot (built in, no network)".into()),
                default: is_default,
            },
            delay: ctx.offline_delay,
        }
    }
}

struct Run {
    script: Script,
    delay: Duration,
    /// Word `i` is due at `start + i * delay`, so pauses do not drift with scheduling.
    start: Instant,
    sent: u32,
    done: bool,
}

impl Provider for Offline {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn start(&self, request: ReplyRequest) -> Reply {
        let last = request
            .history
            .last()
            .map(|t| t.text.as_str())
            .unwrap_or("");
        let run = Run {
            script: script_for(last, request.history.len(), Voice::Offline),
            delay: self.delay,
            start: Instant::now(),
            sent: 0,
            done: false,
        };
        let events = futures_util::stream::unfold(run, |mut run| async move {
            if run.done {
                return None;
            }
            let Some(text) = run.script.next_piece(run.sent == 0) else {
                run.done = true;
                return Some((ReplyEvent::Completed, run));
            };
            if run.delay.is_zero() {
                // Flat out: still give other tasks their turn now and then.
                tokio::task::consume_budget().await;
            } else {
                tokio::time::sleep_until(run.start + run.delay * (run.sent + 1)).await;
            }
            run.sent += 1;
            Some((ReplyEvent::Delta(text), run))
        });
        Reply::new(events.boxed())
    }
}
