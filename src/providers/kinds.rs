//! One `build()` arm per provider kind: each reads its entry's keys into its own struct
//! (the keys it accepts, declared once; `settings.rs` refuses any other), constructs the
//! provider and picks its default deadlines. A new provider kind registers here (see
//! docs/providers.md); `registry.rs` calls [`build`] once per `[[providers]]` entry.

use serde::Deserialize;

use super::context::ProviderContext;
use super::deadlines::with_deadlines;
use super::openai::{self, BackgroundSettings, ChatSettings, OpenAiBackground, OpenAiChat};
use super::settings::{Check, secs};
use super::webhook::{WebhookProvider, WebhookSettings};
use super::{CallbackEndpoint, Deadlines, Provider, ProviderInfo, Reply, ReplyRequest, offline};
use crate::config::ConfigError;
use crate::config::ProviderConfig;

/// Applies a provider's deadlines to each of its replies.
pub(super) struct Guarded {
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

/// Kind `offline`: no keys of its own.
#[derive(Deserialize)]
struct OfflineKeys {}

/// Kind `openai` (and the generation keys, `Check::keys_generating`).
#[derive(Deserialize)]
struct OpenAiKeys {
    base_url: Option<String>,
    api_key: Option<String>,
    api_key_env: Option<String>,
    model: Option<String>,
    system_prompt: Option<String>,
    retries: Option<u32>,
    max_tokens_field: Option<String>,
}

/// Kind `openai-background` (and the generation keys).
#[derive(Deserialize)]
struct BackgroundKeys {
    base_url: Option<String>,
    api_key: Option<String>,
    api_key_env: Option<String>,
    model: Option<String>,
    system_prompt: Option<String>,
    webhook_secret: Option<String>,
    webhook_secret_env: Option<String>,
}

/// Kind `webhook` (and the generation keys).
#[derive(Deserialize)]
struct WebhookKeys {
    url: Option<String>,
    webhook_secret: Option<String>,
    webhook_secret_env: Option<String>,
    model: Option<String>,
    system_prompt: Option<String>,
    retries: Option<u32>,
}

/// Kind `simulated`: the secret is optional (app.rs makes one when none is given).
#[derive(Deserialize)]
struct SimulatedKeys {
    #[serde(rename = "webhook_secret")]
    _webhook_secret: Option<String>,
    #[serde(rename = "webhook_secret_env")]
    _webhook_secret_env: Option<String>,
}

/// Builds the provider of one entry, with its deadlines.
pub(super) fn build(
    entry: &ProviderConfig,
    is_default: bool,
    ctx: &ProviderContext,
) -> Result<Guarded, ConfigError> {
    let check = Check::new(entry);
    let failed = |e: String| check.error(e);
    let callback_url = format!("{}/webhooks/nlp", ctx.public_url.trim_end_matches('/'));
    let info = |kind: &str, label: String| ProviderInfo {
        name: entry.name.clone(),
        kind: kind.to_string(),
        label,
        default: is_default,
    };
    // Both OpenAI kinds default to api.openai.com.
    let openai_base_url = |base_url: &Option<String>| {
        check.http_url(
            "base_url",
            base_url.as_deref().unwrap_or(openai::OPENAI_BASE_URL),
        )
    };
    let (provider, deadlines): (Box<dyn Provider>, Deadlines) = match entry.kind.as_str() {
        "offline" => {
            let OfflineKeys {} = check.keys()?;
            (
                Box::new(offline::Offline::new(entry, is_default, ctx)),
                check.deadlines(Deadlines::default())?,
            )
        }
        "openai" => {
            let (keys, mut generation): (OpenAiKeys, _) = check.keys_generating()?;
            generation.token_field = check.token_field(&keys.max_tokens_field)?;
            let settings = ChatSettings {
                info: info(
                    "openai",
                    check.label(&format!("{} (OpenAI-compatible, streaming)", entry.name)),
                ),
                base_url: openai_base_url(&keys.base_url)?,
                api_key: check.api_key(&keys.api_key, &keys.api_key_env)?,
                model: check.required("model", &keys.model)?,
                system_prompt: keys.system_prompt,
                retry: check.retry(keys.retries)?,
                generation,
            };
            (
                Box::new(OpenAiChat::new(settings).map_err(failed)?),
                check.deadlines(secs(60, 60, 600))?,
            )
        }
        "openai-background" => {
            let (keys, generation): (BackgroundKeys, _) = check.keys_generating()?;
            let settings = BackgroundSettings {
                info: info(
                    "openai-background",
                    check.label(&format!(
                        "{} (OpenAI background mode, webhooks)",
                        entry.name
                    )),
                ),
                base_url: openai_base_url(&keys.base_url)?,
                api_key: check.api_key(&keys.api_key, &keys.api_key_env)?,
                model: check.required("model", &keys.model)?,
                system_prompt: keys.system_prompt,
                webhook_secret: check
                    .required_webhook_secret(&keys.webhook_secret, &keys.webhook_secret_env)?,
                generation,
            };
            (
                Box::new(OpenAiBackground::new(settings, ctx.jobs.clone()).map_err(failed)?),
                // Background responses may run long by design.
                check.deadlines(secs(1800, 60, 3600))?,
            )
        }
        "webhook" => {
            let (keys, generation): (WebhookKeys, _) = check.keys_generating()?;
            let url = check.required("url", &keys.url)?;
            let settings = WebhookSettings {
                info: info(
                    "webhook",
                    check.label(&format!("{} (NLP service, webhooks)", entry.name)),
                ),
                url: check.http_url("url", &url)?,
                secret: check
                    .required_webhook_secret(&keys.webhook_secret, &keys.webhook_secret_env)?,
                callback_url,
                system_prompt: keys.system_prompt,
                model: keys.model,
                retries: check.retry(keys.retries)?.retries,
                generation,
            };
            (
                Box::new(WebhookProvider::new(settings, ctx.jobs.clone()).map_err(failed)?),
                check.deadlines(secs(60, 60, 600))?,
            )
        }
        // The built-in simulated service, driven through the webhook protocol like any
        // other NLP service; it is listed as kind `webhook`.
        "simulated" => {
            let _: SimulatedKeys = check.keys()?;
            let sim = ctx
                .simulator
                .as_ref()
                .ok_or_else(|| check.error("the simulated NLP service is not running"))?;
            let settings = WebhookSettings {
                info: info("webhook", check.label("Simulated NLP service (webhooks)")),
                url: sim.url.clone(),
                secret: sim.secret.clone(),
                callback_url,
                system_prompt: None,
                model: None,
                retries: 1,
                generation: Default::default(),
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
