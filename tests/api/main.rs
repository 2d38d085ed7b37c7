//! Integration tests: every test drives the real server (started on port 0) through its
//! public interface — HTTP, SSE and, in later modules, WebSocket and signed webhooks.

mod helpers;
mod ws_client;

mod errors;
mod pages;
mod streaming;
mod ws;
