//! Cluster tests: a real `redis-server` (and, for the node scenarios, real chatwire nodes)
//! started by the tests themselves on Unix sockets and loopback, sharing a fresh database
//! of a throwaway PostgreSQL (`tests/support/postgres.rs`). Every wait is bounded.

#[path = "../support/child_output.rs"]
mod child_output;
#[path = "../support/postgres.rs"]
mod postgres;
mod redis_server;
#[allow(dead_code)] // shared with tests/api, which uses all of it
#[path = "../api/signing.rs"]
mod signing;

mod bus;
mod lease;
mod log;
mod relay;
mod rpc;

mod nodes;
mod sse;

mod balancers;
mod faults;
mod health;
mod idempotency;
mod owned;
mod presence;
mod scenarios;
mod soak;
mod tls;
mod webhooks;
