//! Integration tests: every test drives the real server (started on port 0) through its
//! public interface — HTTP, SSE and, in later modules, WebSocket and signed webhooks.
//! `process` runs the real binary for tests that crash, restart or measure it.
//! With `CHATWIRE_TEST_DB=postgres` the servers store in PostgreSQL (`scripts/test` runs
//! the tests that touch storage that way a second time); `postgres_outage` always does.

#[path = "../support/child_output.rs"]
mod child_output;
mod fakes;
mod helpers;
mod llama;
#[path = "../support/postgres.rs"]
mod postgres;
mod process;
mod raw_http;
mod raw_sse;
mod ws_client;

mod abuse_connections;
mod abuse_replies;
mod abuse_requests;
mod backpressure;
mod durability;
mod echo;
mod errors;
mod fencing;
mod idempotency;
mod identity;
mod jwt;
mod limits;
mod metrics;
mod operations;
mod pages;
mod postgres_outage;
mod provider_background;
mod provider_config;
mod provider_llmock;
mod provider_openai;
mod provider_webhook;
mod provider_wire;
mod real_model;
mod signed_delivery;
mod signing;
mod streaming;
mod supervision;
mod ws;
