//! Integration tests: every test drives the real server (started on port 0) through its
//! public interface — HTTP, SSE and, in later modules, WebSocket and signed webhooks.
//! `process` runs the real binary for tests that crash, restart or measure it.

mod helpers;
mod process;
mod raw_sse;

mod backpressure;
mod durability;
mod errors;
mod limits;
mod pages;
mod streaming;
mod supervision;
