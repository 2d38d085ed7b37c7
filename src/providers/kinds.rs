//! One `build()` arm per provider kind: each checks its entry's keys (`settings.rs`),
//! constructs the provider and picks its default deadlines. A new provider kind registers
//! here (see docs/providers.md); `registry.rs` calls [`build`] once per `[[providers]]` entry.

use super::context::ProviderContext;
use super::deadlines::with_deadlines;
use super::openai::{self, BackgroundSettings, ChatSettings, OpenAiBackground, OpenAiChat};
use super::settings::{Check, GENERATION, secs};
use super::webhook::{WebhookProvider, WebhookSettings};
use super::{CallbackEndpoint, Deadlines, Provider, ProviderInfo, Reply, ReplyRequest, offline};
use crate::config::ConfigError;
use crate::config::ProviderConfig;

/// The keys both OpenAI kinds use (besides the generation keys).
const OPENAI: [&str; 5] = [
    "base_url",
    "api_key",
    "api_key_env",
    "model",
    "system_prompt",
];

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
    let openai_base_url = || {
        check.http_url(
            "base_url",
            entry.base_url.as_deref().unwrap_or(openai::OPENAI_BASE_URL),
        )
    };
    let (provider, deadlines): (Box<dyn Provider>, Deadlines) = match entry.kind.as_str() {
        "offline" => {
            check.only(&[])?;
            (
                Box::new(offline::Offline::new(entry, is_default, ctx)),
                check.deadlines(Deadlines::default())?,
            )
        }
        "openai" => {
            check.only(&[&OPENAI[..], &GENERATION, &["retries", "max_tokens_field"]].concat())?;
            let settings = ChatSettings {
                info: info(
                    "openai",
                    check.label(&format!("{} (OpenAI-compatible, streaming)", entry.name)),
                ),
                base_url: openai_base_url()?,
                api_key: check.api_key()?,
                model: check.required("model", &entry.model)?,
                system_prompt: entry.system_prompt.clone(),
                retry: check.retry()?,
                generation: check.generation()?,
            };
            (
                Box::new(OpenAiChat::new(settings).map_err(failed)?),
                check.deadlines(secs(60, 60, 600))?,
            )
        }
        "openai-background" => {
            check.only(
                &[
                    &OPENAI[..],
                    &GENERATION,
                    &["webhook_secret", "webhook_secret_env"],
                ]
                .concat(),
            )?;
            let settings = BackgroundSettings {
                info: info(
                    "openai-background",
                    check.label(&format!(
                        "{} (OpenAI background mode, webhooks)",
                        entry.name
                    )),
                ),
                base_url: openai_base_url()?,
                api_key: check.api_key()?,
                model: check.required("model", &entry.model)?,
                system_prompt: entry.system_prompt.clone(),
                webhook_secret: check.required_webhook_secret()?,
                generation: check.generation()?,
            };
            (
                Box::new(OpenAiBackground::new(settings, ctx.jobs.clone()).map_err(failed)?),
                // Background responses may run long by design.
                check.deadlines(secs(1800, 60, 3600))?,
            )
        }
        "webhook" => {
            check.only(
                &[
                    &[
                        "url",
                        "webhook_secret",
                        "webhook_secret_env",
                        "model",
                        "system_prompt",
                        "retries",
                    ][..],
                    &GENERATION,
                ]
                .concat(),
            )?;
            let url = check.required("url", &entry.url)?;
            let settings = WebhookSettings {
                info: info(
                    "webhook",
                    check.label(&format!("{} (NLP service, webhooks)", entry.name)),
                ),
                url: check.http_url("url", &url)?,
                secret: check.required_webhook_secret()?,
                callback_url,
                system_prompt: entry.system_prompt.clone(),
                model: entry.model.clone(),
                retries: check.retry()?.retries,
                generation: check.generation()?,
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
