//! The `referral-api` binary: parses the command line and runs it.

use std::process::ExitCode;

use clap::Parser;
use referral_api::cli::{Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("referral-api: {message}");
            ExitCode::FAILURE
        }
    }
}
