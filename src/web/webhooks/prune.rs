//! Forgetting old webhook deliveries. Dedupe by `webhook-id` must outlast the sender's
//! retries: OpenAI retries a webhook for up to 72 hours (each time with a fresh timestamp
//! and the same id), so its receipts are kept that long. Protocol callbacks are many (one
//! per delta) and idempotent anyway once their reply has ended (dedupe by sequence number,
//! late callbacks ignored), so theirs are kept an hour. Provider jobs are forgotten after a
//! week, far beyond any reply's deadline: a callback for a forgotten job is `ignored`.
//! Expired browser sessions are forgotten on the same round.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::storage::Store;

const EVERY: Duration = Duration::from_secs(600);
const KEEP: [(&str, i64); 2] = [("openai", 72 * 3600 * 1000), ("nlp", 3600 * 1000)];
const KEEP_JOBS: i64 = 7 * 24 * 3600 * 1000;

/// Prunes receipts now and every ten minutes until `shutdown`.
pub fn spawn_pruner(store: Store, tracker: &TaskTracker, shutdown: CancellationToken) {
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let now = crate::ids::now_ms();
                    for (source, keep) in KEEP {
                        match store.prune_webhooks_of(source, now - keep).await {
                            Ok(0) => {}
                            Ok(n) => tracing::debug!(source, pruned = n, "forgot old webhook deliveries"),
                            Err(e) => tracing::warn!(source, error = %e, "cannot prune webhook deliveries"),
                        }
                    }
                    if let Err(e) = store.prune_jobs(now - KEEP_JOBS).await {
                        tracing::warn!(error = %e, "cannot prune provider jobs");
                    }
                    if let Err(e) = store.prune_sessions(now).await {
                        tracing::warn!(error = %e, "cannot prune expired sessions");
                    }
                }
            }
        }
    });
}
