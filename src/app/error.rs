//! [`StartupError`]: why the server stopped before it served, naming what is wrong.

use crate::config::ConfigError;
use crate::storage::StoreError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A wrong option or provider entry (the message names it).
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}
