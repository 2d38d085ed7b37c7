//! The built-in simulated NLP service: a stand-in for a real NLP service that speaks
//! chatwire's callback protocol (docs/callback-protocol.md) over real HTTP, on its own
//! 127.0.0.1 port, so a fresh install shows the webhook pattern end to end with no network.
//!
//! It is deliberately a *separate* service in the same process: chatwire reaches it only
//! through signed HTTP requests to its `/jobs` URL, and it answers only through signed
//! callbacks to `/webhooks/nlp` — exactly what an external service would do. Its replies
//! are the offline bot's script, one signed `job.delta` per word with a small pause, then
//! a `job.completed` carrying the whole text. It honours `job.cancel`.

mod run;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::providers::SimulatorEndpoint;
use crate::providers::protocol::ServiceMessage;
use crate::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Secret, Signed, now_secs};

/// Jobs running at once; more are refused with 503.
const MAX_JOBS: usize = 1024;

struct Sim {
    secret: Secret,
    delay: Duration,
    http: reqwest::Client,
    /// Running jobs by id, each with its cancellation.
    jobs: Mutex<HashMap<String, CancellationToken>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Sim {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Starts the service on 127.0.0.1 (a free port); it stops with `shutdown`.
pub async fn start(
    secret: Secret,
    delay: Duration,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> std::io::Result<SimulatorEndpoint> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let http = crate::providers::webhook_http_client().map_err(std::io::Error::other)?;
    let sim = Arc::new(Sim {
        secret: secret.clone(),
        delay,
        http,
        jobs: Mutex::new(HashMap::new()),
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
    });
    let app = Router::new()
        .route("/jobs", post(jobs))
        .layer(axum::extract::DefaultBodyLimit::max(4 * 1024 * 1024))
        .with_state(sim);
    tracker.spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(e) = server.await {
            tracing::error!(error = %e, "the simulated NLP service stopped");
        }
    });
    tracing::info!(%addr, "simulated NLP service is listening");
    Ok(SimulatorEndpoint {
        url: format!("http://{addr}/jobs"),
        secret,
    })
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// `POST /jobs`: a signed `job.submit` or `job.cancel` from chatwire.
async fn jobs(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = Signed {
        id: text(HEADER_ID),
        timestamp: text(HEADER_TIMESTAMP),
        signature: text(HEADER_SIGNATURE),
    };
    if let Err(e) = signed.verify(&body, &[&sim.secret], now_secs()) {
        return reply(StatusCode::UNAUTHORIZED, json!({ "error": e.to_string() }));
    }
    let message: ServiceMessage = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return reply(StatusCode::BAD_REQUEST, json!({ "error": e.to_string() })),
    };
    match message {
        ServiceMessage::Submit(job) => {
            let token = {
                let mut jobs = sim.jobs();
                if jobs.contains_key(&job.job_id) {
                    // The same job submitted again (a retry): it is already running.
                    return reply(StatusCode::ACCEPTED, json!({ "job_id": job.job_id }));
                }
                if jobs.len() >= MAX_JOBS {
                    return reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({ "error": "too many jobs" }),
                    );
                }
                let token = sim.shutdown.child_token();
                jobs.insert(job.job_id.clone(), token.clone());
                token
            };
            let job_id = job.job_id.clone();
            let runner = sim.clone();
            sim.tracker.spawn(async move {
                let id = job.job_id.clone();
                run::run(&runner, job, token).await;
                runner.jobs().remove(&id);
            });
            reply(StatusCode::ACCEPTED, json!({ "job_id": job_id }))
        }
        ServiceMessage::Cancel { job_id } => {
            if let Some(token) = sim.jobs().remove(&job_id) {
                token.cancel();
            }
            reply(
                StatusCode::OK,
                json!({ "job_id": job_id, "status": "cancelled" }),
            )
        }
    }
}
