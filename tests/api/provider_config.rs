//! Provider configuration: the example file in docs/ stays valid, and a wrong entry stops
//! start-up with a message naming the entry and the key.

use chatwire::config::{ProviderConfig, parse_providers};
use chatwire::{Config, Server};

use crate::signing::SECRET;

async fn start_error(entries: Vec<ProviderConfig>) -> String {
    let mut config = Config::for_tests();
    config.providers.extend(entries);
    match Server::start(config).await {
        Ok(s) => {
            s.shutdown().await;
            panic!("the server started");
        }
        Err(e) => e.to_string(),
    }
}

fn entry(name: &str, kind: &str) -> ProviderConfig {
    ProviderConfig {
        name: name.into(),
        kind: kind.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_example_file_is_valid() {
    let mut entries = parse_providers(include_str!("../../docs/providers.example.toml")).unwrap();
    assert_eq!(entries.len(), 6);
    // Secrets from the environment are given inline here (tests must not set variables).
    for e in &mut entries {
        if e.api_key_env.take().is_some() {
            e.api_key = Some("sk-test".into());
        }
        if e.webhook_secret_env.take().is_some() {
            e.webhook_secret = Some(SECRET.into());
        }
    }
    let mut config = Config::for_tests();
    config.providers = entries;
    let server = Server::start(config).await.expect("the example starts");
    let names: Vec<_> = server
        .state
        .providers
        .infos()
        .map(|p| (p.name.clone(), p.kind.clone(), p.default))
        .collect();
    assert_eq!(names[1], ("llama".into(), "openai".into(), true));
    assert_eq!(names[5], ("simulated".into(), "webhook".into(), false));
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_entries_stop_start_up_naming_entry_and_key() {
    let url = |e: &mut ProviderConfig| e.url = Some("http://127.0.0.1:9/jobs".into());
    let cases: Vec<(ProviderConfig, &str)> = vec![
        (
            ProviderConfig {
                model: Some("m".into()),
                ..entry("bg", "openai-background")
            },
            "provider `bg`: `webhook_secret` (or `webhook_secret_env`) is required",
        ),
        (
            {
                let mut e = entry("hook", "webhook");
                url(&mut e);
                e
            },
            "provider `hook`: `webhook_secret`",
        ),
        (
            ProviderConfig {
                webhook_secret: Some(SECRET.into()),
                ..entry("hook", "webhook")
            },
            "provider `hook`: `url` is required",
        ),
        (
            {
                let mut e = entry("hook", "webhook");
                url(&mut e);
                e.webhook_secret = Some("hunter2".into());
                e
            },
            "provider `hook`: `webhook_secret` must be `whsec_`",
        ),
        (
            entry("gpt", "openai"),
            "provider `gpt`: `model` is required",
        ),
        (
            ProviderConfig {
                model: Some("m".into()),
                api_key_env: Some("CHATWIRE_TEST_SURELY_UNSET_VAR".into()),
                ..entry("gpt", "openai")
            },
            "provider `gpt`: `api_key_env` names CHATWIRE_TEST_SURELY_UNSET_VAR, which is not set",
        ),
        (
            ProviderConfig {
                model: Some("m".into()),
                url: Some("http://x".into()),
                ..entry("gpt", "openai")
            },
            "provider `gpt`: `url` is not used by kind `openai`",
        ),
        (
            ProviderConfig {
                model: Some("m".into()),
                base_url: Some("ftp://x".into()),
                ..entry("gpt", "openai")
            },
            "provider `gpt`: `base_url` must be an http:// or https:// URL",
        ),
        (
            ProviderConfig {
                first_delta_timeout_secs: Some(0),
                ..entry("off2", "offline")
            },
            "provider `off2`: `first_delta_timeout_secs` must be at least 1",
        ),
        (
            ProviderConfig {
                model: Some("m".into()),
                temperature: Some(3.0),
                ..entry("gpt", "openai")
            },
            "provider `gpt`: `temperature` must be between 0 and 2",
        ),
        (
            ProviderConfig {
                model: Some("m".into()),
                max_tokens: Some(0),
                ..entry("gpt", "openai")
            },
            "provider `gpt`: `max_tokens` must be at least 1",
        ),
        (
            ProviderConfig {
                model: Some("m".into()),
                max_history_chars: Some(0),
                ..entry("gpt", "openai")
            },
            "provider `gpt`: `max_history_chars` must be at least 1",
        ),
        (
            ProviderConfig {
                model: Some("m".into()),
                max_tokens_field: Some("tokens".into()),
                ..entry("gpt", "openai")
            },
            "provider `gpt`: `max_tokens_field` must be \"max_tokens\" or \"max_completion_tokens\"",
        ),
        (
            {
                let mut e = entry("hook", "webhook");
                url(&mut e);
                e.webhook_secret = Some(SECRET.into());
                e.max_tokens_field = Some("max_tokens".into());
                e
            },
            "provider `hook`: `max_tokens_field` is not used by kind `webhook`",
        ),
        (
            ProviderConfig {
                max_tokens: Some(10),
                ..entry("off2", "offline")
            },
            "provider `off2`: `max_tokens` is not used by kind `offline`",
        ),
        (
            entry("x", "telepathy"),
            "provider `x`: unknown `kind` \"telepathy\"",
        ),
    ];
    for (e, expected) in cases {
        let error = start_error(vec![e]).await;
        assert!(
            error.starts_with(expected),
            "got {error:?}, expected {expected:?}"
        );
    }
}
