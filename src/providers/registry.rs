//! The providers this server is configured with: built from the `[[providers]]` entries
//! at start-up, one per entry, each wrapped in its deadlines.
//!
//! A new provider kind registers here: add an arm to [`build`] that checks the entry's
//! keys (`settings.rs`) and constructs the provider (see docs/providers.md).

use std::sync::Arc;
use std::time::Duration;

use super::deadlines::with_deadlines;
use super::openai::{self, BackgroundSettings, ChatSettings, OpenAiBackground, OpenAiChat};
use super::settings::{Check, secs};
use super::webhook::{WebhookProvider, WebhookSettings};
use super::{
    CallbackEndpoint, CallbackRoute, Deadlines, Jobs, Provider, ProviderInfo, Reply, ReplyRequest,
    offline,
};
use crate::config::ProviderConfig;
use crate::error::StartupError;
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

/// Applies a provider's deadlines to each of its replies.
struct Guarded {
    inner: Box<dyn Provider>,
    deadlines: Deadlines,
}

impl Provider for Guarded {
    fn info(&self) -> &ProviderInfo {
        self.inner.info()
    }

    fn start(&self, request: ReplyRequest) -> Reply {
        let reply = self.inner.start(request);
        Reply {
            events: with_deadlines(reply.events, self.deadlines),
            callbacks: reply.callbacks,
        }
    }

    fn callback_endpoint(&self) -> Option<&CallbackEndpoint> {
        self.inner.callback_endpoint()
    }
}

fn info(entry: &ProviderConfig, kind: &str, label: String, is_default: bool) -> ProviderInfo {
    ProviderInfo {
        name: entry.name.clone(),
        kind: kind.to_string(),
        label,
        default: is_default,
    }
}

/// Builds the provider of one entry, with its deadlines.
fn build(
    entry: &ProviderConfig,
    is_default: bool,
    ctx: &ProviderContext,
) -> Result<Guarded, StartupError> {
    let check = Check::new(entry);
    let failed = |e: String| check.error(e);
    let callback_url = format!("{}/webhooks/nlp", ctx.public_url.trim_end_matches('/'));
    let (provider, deadlines): (Box<dyn Provider>, Deadlines) = match entry.kind.as_str() {
        "offline" => {
            check.only(&[])?;
            (
                Box::new(offline::Offline::new(entry, is_default, ctx)),
                check.deadlines(Deadlines::default())?,
            )
        }
        "openai" => {
            check.only(&[
                "base_url",
                "api_key",
                "api_key_env",
                "model",
                "system_prompt",
                "retries",
            ])?;
            let base_url = entry
                .base_url
                .clone()
                .unwrap_or_else(|| openai::OPENAI_BASE_URL.into());
            let settings = ChatSettings {
                info: info(
                    entry,
                    "openai",
                    check.label(&format!("{} (OpenAI-compatible, streaming)", entry.name)),
                    is_default,
                ),
                base_url: check.http_url("base_url", &base_url)?,
                api_key: check.api_key()?,
                model: check.required("model", &entry.model)?,
                system_prompt: entry.system_prompt.clone(),
                retry: check.retry()?,
            };
            (
                Box::new(OpenAiChat::new(settings).map_err(failed)?),
                check.deadlines(secs(60, 60, 600))?,
            )
        }
        "openai-background" => {
            check.only(&[
                "base_url",
                "api_key",
                "api_key_env",
                "model",
                "system_prompt",
                "webhook_secret",
                "webhook_secret_env",
            ])?;
            let base_url = entry
                .base_url
                .clone()
                .unwrap_or_else(|| openai::OPENAI_BASE_URL.into());
            let settings = BackgroundSettings {
                info: info(
                    entry,
                    "openai-background",
                    check.label(&format!(
                        "{} (OpenAI background mode, webhooks)",
                        entry.name
                    )),
                    is_default,
                ),
                base_url: check.http_url("base_url", &base_url)?,
                api_key: check.api_key()?,
                model: check.required("model", &entry.model)?,
                system_prompt: entry.system_prompt.clone(),
                webhook_secret: check.required_webhook_secret()?,
            };
            (
                Box::new(OpenAiBackground::new(settings, ctx.jobs.clone()).map_err(failed)?),
                // Background responses may run long by design.
                check.deadlines(secs(1800, 60, 3600))?,
            )
        }
        "webhook" => {
            check.only(&[
                "url",
                "webhook_secret",
                "webhook_secret_env",
                "model",
                "system_prompt",
                "retries",
            ])?;
            let url = check.required("url", &entry.url)?;
            let settings = WebhookSettings {
                info: info(
                    entry,
                    "webhook",
                    check.label(&format!("{} (NLP service, webhooks)", entry.name)),
                    is_default,
                ),
                url: check.http_url("url", &url)?,
                secret: check.required_webhook_secret()?,
                callback_url,
                system_prompt: entry.system_prompt.clone(),
                model: entry.model.clone(),
                retries: check.retry()?.retries,
            };
            (
                Box::new(WebhookProvider::new(settings, ctx.jobs.clone()).map_err(failed)?),
                check.deadlines(secs(60, 60, 600))?,
            )
        }
        // The built-in simulated service, driven through the webhook protocol like any
        // other NLP service; it is listed as kind `webhook`.
        "simulated" => {
            check.only(&["webhook_secret", "webhook_secret_env"])?;
            let sim = ctx
                .simulator
                .as_ref()
                .ok_or_else(|| check.error("the simulated NLP service is not running"))?;
            let settings = WebhookSettings {
                info: info(
                    entry,
                    "webhook",
                    check.label("Simulated NLP service (webhooks)"),
                    is_default,
                ),
                url: sim.url.clone(),
                secret: sim.secret.clone(),
                callback_url,
                system_prompt: None,
                model: None,
                retries: 1,
            };
            // Local and paced by `--offline-delay-ms`: a long `/count` may take a while, so
            // only silence is bounded.
            let deadlines = Deadlines {
                total: None,
                ..secs(60, 60, 0)
            };
            (
                Box::new(WebhookProvider::new(settings, ctx.jobs.clone()).map_err(failed)?),
                check.deadlines(deadlines)?,
            )
        }
        other => {
            return Err(check.error(format!(
                "unknown `kind` \"{other}\" (known: offline, openai, openai-background, webhook, simulated)"
            )));
        }
    };
    Ok(Guarded {
        inner: provider,
        deadlines,
    })
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
            jobs: self.jobs,
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
