//! Cluster tests: a real `redis-server` (and, for the node scenarios, real chatwire nodes)
//! started by the tests themselves on Unix sockets and loopback. Every wait is bounded.

#[path = "../support/child_output.rs"]
mod child_output;
mod redis_server;

mod bus;
mod lease;
mod log;
mod relay;
mod rpc;

mod nodes;
mod sse;

mod balancers;
mod faults;
mod presence;
mod scenarios;
mod soak;
