//! NLP providers: where replies come from.
//!
//! Every provider kind implements [`Provider`]: given the conversation so far it starts a
//! [`Reply`], a stream of [`ReplyEvent`]s that the conversation actor polls. Dropping the
//! stream cancels the upstream work (the HTTP request is aborted, or the provider's cancel
//! call is made by a drop guard). Only this module talks to NLP services.

pub mod offline;
mod offline_script;

use std::sync::Arc;

use futures_util::stream::BoxStream;

use crate::config::ProviderConfig;
use crate::conversation::Role;
use crate::error::StartupError;

/// What the web layer and the page show about a provider.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderInfo {
    pub name: String,
    pub kind: String,
    /// A human label, e.g. "Offline demo bot".
    #[serde(skip)]
    pub label: String,
    pub default: bool,
}

/// One turn of the history sent to a provider.
#[derive(Debug, Clone)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

/// What a provider needs to start a reply.
#[derive(Debug, Clone)]
pub struct ReplyRequest {
    pub conversation_id: String,
    pub reply_id: String,
    /// The conversation so far, oldest first; the last turn is the user's new message.
    pub history: Vec<Turn>,
}

/// One step of a reply, as a provider reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyEvent {
    /// The next piece of text.
    Delta(String),
    /// The reply ended properly.
    Completed,
    /// The reply cannot go on; the text so far is kept.
    Failed(String),
}

/// A reply in progress: poll `events` until `Completed` or `Failed`. A stream that ends
/// without either is a failure. Dropping it cancels the work upstream.
pub struct Reply {
    pub events: BoxStream<'static, ReplyEvent>,
}

/// A kind of NLP provider.
pub trait Provider: Send + Sync + 'static {
    fn info(&self) -> &ProviderInfo;
    fn start(&self, request: ReplyRequest) -> Reply;
}

/// The providers this server is configured with.
#[derive(Clone)]
pub struct Providers {
    list: Arc<Vec<Arc<dyn Provider>>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|p| &p.info().name))
            .finish()
    }
}

/// Settings every provider kind may need at start-up.
#[derive(Debug, Clone)]
pub struct ProviderContext {
    pub offline_delay: std::time::Duration,
}

impl Providers {
    /// Builds every configured provider; a wrong entry stops start-up, naming it.
    pub fn from_config(
        entries: &[ProviderConfig],
        ctx: &ProviderContext,
    ) -> Result<Providers, StartupError> {
        let default_name = entries
            .iter()
            .find(|p| p.default)
            .or(entries.first())
            .map(|p| p.name.clone());
        let mut list: Vec<Arc<dyn Provider>> = Vec::with_capacity(entries.len());
        for entry in entries {
            let is_default = Some(&entry.name) == default_name.as_ref();
            let provider: Arc<dyn Provider> = match entry.kind.as_str() {
                "offline" => Arc::new(offline::Offline::new(entry, is_default, ctx)),
                other => {
                    return Err(StartupError::Provider {
                        name: entry.name.clone(),
                        message: format!("unknown `kind` \"{other}\""),
                    });
                }
            };
            list.push(provider);
        }
        if list.is_empty() {
            list.push(Arc::new(offline::Offline::new(
                &ProviderConfig::offline(),
                true,
                ctx,
            )));
        }
        Ok(Providers {
            list: Arc::new(list),
        })
    }

    /// Adds providers built in code (see `Config::extra_providers`); names must stay unique.
    pub fn with_extra(self, extra: &[Arc<dyn Provider>]) -> Result<Providers, StartupError> {
        if extra.is_empty() {
            return Ok(self);
        }
        let mut list: Vec<Arc<dyn Provider>> = self.list.iter().cloned().collect();
        for p in extra {
            let name = &p.info().name;
            if list.iter().any(|q| &q.info().name == name) {
                return Err(StartupError::Provider {
                    name: name.clone(),
                    message: "`name` is used by two entries".into(),
                });
            }
            list.push(p.clone());
        }
        Ok(Providers {
            list: Arc::new(list),
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.list.iter().find(|p| p.info().name == name).cloned()
    }

    pub fn default_provider(&self) -> Arc<dyn Provider> {
        self.list
            .iter()
            .find(|p| p.info().default)
            .unwrap_or(&self.list[0])
            .clone()
    }

    pub fn infos(&self) -> impl Iterator<Item = &ProviderInfo> {
        self.list.iter().map(|p| p.info())
    }
}
