//! [`ConfigError`]: a wrong option or provider entry, found before the server starts.
//! Both the options (`mod.rs`) and the provider checks (`src/providers/settings.rs`) report it.

/// What is wrong with the configuration; the message names the option or the entry and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("provider `{name}`: {message}")]
    Provider { name: String, message: String },
}
