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
            eprintln!("chatwire: {e}");
            ExitCode::FAILURE
        }
    }
}
