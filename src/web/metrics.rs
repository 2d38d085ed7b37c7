//! `GET /metrics`: the server's metrics in Prometheus text format (see `crate::metrics`).
//!
//! Like `/healthz` it needs no credential: it says how busy the server is, never what is
//! said in any conversation. Operators who do not want it public filter it at the proxy.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(state.conversations.live_count());
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
