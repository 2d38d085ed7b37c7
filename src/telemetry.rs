//! Logging: `tracing` to standard error, filtered by `RUST_LOG` (default `info`).
//! Tokens and secrets are never logged: requests are logged by method and path only.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
