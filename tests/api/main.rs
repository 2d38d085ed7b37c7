//! Integration tests: every test drives the real server (started on port 0) through its
//! public interface — HTTP, SSE and, in later modules, WebSocket and signed webhooks.

mod helpers;

mod errors;
mod pages;
mod provider_background;
mod provider_config;
mod provider_openai;
mod provider_webhook;
mod signing;
mod streaming;
