//! One simulated job: the offline bot's words as signed `job.delta` callbacks (numbered
//! from 1, a pause before each), then `job.completed` with the whole text. A callback the
//! receiver does not take (5xx) is retried a few times; a cancel stops the job between
//! callbacks.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Sim;
use crate::providers::offline_script::{Voice, script_for};
use crate::providers::protocol::{Callback, JobRequest};

/// Sends one callback; `false` if the job should stop: cancelled, refused, or answered
/// `ignored` (the reply it belongs to is no longer running).
async fn send(sim: &Sim, url: &str, callback: &Callback, token: &CancellationToken) -> bool {
    let Ok(body) = serde_json::to_vec(callback) else {
        return false;
    };
    let post = crate::providers::post_signed_retrying(
        &sim.http,
        &sim.secret,
        url,
        body,
        3,
        Duration::from_millis(100),
    );
    tokio::select! {
        _ = token.cancelled() => false,
        result = post => match result {
            Ok(answer) => {
                let status = serde_json::from_slice::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v["status"].as_str().map(String::from));
                status.as_deref() != Some("ignored")
            }
            Err(e) => {
                tracing::warn!(job = %callback.job_id(), error = %e.message, "simulated service: callback not delivered");
                false
            }
        }
    }
}

pub(super) async fn run(sim: &Sim, job: JobRequest, token: CancellationToken) {
    let last = job
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.text.as_str())
        .unwrap_or("");
    let mut script = script_for(last, job.messages.len(), Voice::Simulated);
    let start = Instant::now();
    let mut text = String::new();
    let mut seq = 0u64;
    while let Some(piece) = script.next_piece(seq == 0) {
        seq += 1;
        if !sim.delay.is_zero() {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep_until(start + sim.delay * seq as u32) => {}
            }
        }
        text.push_str(&piece);
        let delta = Callback::Delta {
            job_id: job.job_id.clone(),
            seq,
            text: piece,
        };
        if !send(sim, &job.callback_url, &delta, &token).await {
            return;
        }
    }
    let done = Callback::Completed {
        job_id: job.job_id.clone(),
        seq: seq + 1,
        text: Some(text),
    };
    send(sim, &job.callback_url, &done, &token).await;
}
