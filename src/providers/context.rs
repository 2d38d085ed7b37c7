//! What every provider kind may need at start-up ([`ProviderContext`]), and the providers a
//! program builds in code ([`ExtraProviders`]). Both are made by the app and read by
//! `kinds.rs` and `registry.rs`.

use std::sync::Arc;
use std::time::Duration;

use super::{Jobs, Provider};
use crate::signature::Secret;

/// Where the built-in simulated NLP service listens, and the secret it shares with us.
#[derive(Debug, Clone)]
pub struct SimulatorEndpoint {
    /// The URL jobs are POSTed to.
    pub url: String,
    pub secret: Secret,
}

/// Settings every provider kind may need at start-up.
#[derive(Clone)]
pub struct ProviderContext {
    pub offline_delay: Duration,
    /// The base URL at which NLP services reach us, e.g. `http://127.0.0.1:3000`.
    pub public_url: String,
    pub jobs: Arc<Jobs>,
    /// Set when the built-in simulated service was started (kind `simulated`).
    pub simulator: Option<SimulatorEndpoint>,
}

/// Providers built in Rust code rather than named in the TOML file (a program that embeds
/// chatwire, or a test); listed after the configured ones. `Debug` shows their names only.
#[derive(Clone, Default)]
pub struct ExtraProviders(pub Vec<Arc<dyn Provider>>);

impl std::fmt::Debug for ExtraProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|p| &p.info().name))
            .finish()
    }
}
