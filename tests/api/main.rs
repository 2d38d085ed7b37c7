//! Integration tests: every test drives the real server (started on port 0) through its
//! public interface — HTTP, SSE and, in later modules, WebSocket and signed webhooks.
//! `process` runs the real binary for tests that crash, restart or measure it.

mod fakes;
mod helpers;
mod llama;
mod process;
mod raw_sse;
mod ws_client;

mod backpressure;
mod durability;
mod echo;
mod errors;
mod limits;
mod metrics;
mod operations;
mod pages;
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
