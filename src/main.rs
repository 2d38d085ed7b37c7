//! The `chatwire` binary: parse the options, start logging, serve until a signal.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = chatwire::config::Args::parse();
    chatwire::telemetry::init();
    let result = match chatwire::Config::from_args(args) {
        Ok(config) => chatwire::app::run(config).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // At start-up the operator sees the whole chain (a storage error's `Display`
            // holds no driver text; its source does).
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let next = s.to_string();
                if !text.contains(&next) {
                    text.push_str(": ");
                    text.push_str(&next);
                }
                source = s.source();
            }
            eprintln!("chatwire: {text}");
            ExitCode::FAILURE
        }
    }
}
