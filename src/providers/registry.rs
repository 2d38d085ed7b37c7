//! The providers this server is configured with: built from the `[[providers]]` entries
//! at start-up, one per entry, each wrapped in its deadlines; looked up by name, listed
//! for the picker, and asked which callback secrets each webhook route accepts.
//!
//! A new provider kind registers in `kinds.rs`: add an arm to `build()` that checks the
//! entry's keys (`settings.rs`) and constructs the provider (see docs/providers.md).

use std::sync::Arc;

use super::context::ProviderContext;
use super::kinds::build;
use super::{CallbackRoute, Jobs, Provider, ProviderInfo};
use crate::config::ConfigError;
use crate::config::ProviderConfig;
use crate::signature::Secret;

/// The providers this server is configured with.
#[derive(Clone)]
pub struct Providers {
    list: Arc<Vec<Arc<dyn Provider>>>,
    jobs: Arc<Jobs>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|p| &p.info().name))
            .finish()
    }
}

impl Providers {
    /// Builds every configured provider; a wrong entry stops start-up, naming it.
    pub fn from_config(
        entries: &[ProviderConfig],
        ctx: &ProviderContext,
    ) -> Result<Providers, ConfigError> {
        let default_name = entries
            .iter()
            .find(|p| p.default)
            .or(entries.first())
            .map(|p| p.name.clone());
        let mut list: Vec<Arc<dyn Provider>> = Vec::with_capacity(entries.len() + 1);
        for entry in entries {
            let is_default = Some(&entry.name) == default_name.as_ref();
            list.push(Arc::new(build(entry, is_default, ctx)?));
        }
        if list.is_empty() {
            list.push(Arc::new(build(&ProviderConfig::offline(), true, ctx)?));
        }
        Ok(Providers {
            list: Arc::new(list),
            jobs: ctx.jobs.clone(),
        })
    }

    /// Adds providers built in code (see `ExtraProviders`); names must stay unique.
    pub fn with_extra(self, extra: &[Arc<dyn Provider>]) -> Result<Providers, ConfigError> {
        if extra.is_empty() {
            return Ok(self);
        }
        let mut list: Vec<Arc<dyn Provider>> = self.list.iter().cloned().collect();
        for p in extra {
            let name = &p.info().name;
            if list.iter().any(|q| &q.info().name == name) {
                return Err(ConfigError::Provider {
                    name: name.clone(),
                    message: "`name` is used by two entries".into(),
                });
            }
            list.push(p.clone());
        }
        Ok(Providers {
            list: Arc::new(list),
            jobs: self.jobs,
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.list.iter().find(|p| p.info().name == name).cloned()
    }

    pub fn default_provider(&self) -> Arc<dyn Provider> {
        // `list[0]` exists: `from_config` adds the offline provider when no entry is given.
        self.list
            .iter()
            .find(|p| p.info().default)
            .unwrap_or(&self.list[0])
            .clone()
    }

    pub fn infos(&self) -> impl Iterator<Item = &ProviderInfo> {
        self.list.iter().map(|p| p.info())
    }

    /// The job directory shared by the callback providers and the webhook routes.
    pub fn jobs(&self) -> &Arc<Jobs> {
        &self.jobs
    }

    /// The providers whose callbacks arrive at `route`, with their secrets.
    pub fn endpoints(&self, route: CallbackRoute) -> Vec<(String, Secret)> {
        self.list
            .iter()
            .filter_map(|p| {
                let e = p.callback_endpoint()?;
                (e.route == route).then(|| (p.info().name.clone(), e.secret.clone()))
            })
            .collect()
    }
}
