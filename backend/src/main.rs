//! `bookstore [serve]` runs the server; `bookstore healthcheck` probes one.

use std::process::ExitCode;

use bookstore::config::{Cli, Command};
use bookstore::startup::{Application, shutdown_signal};
use bookstore::{healthcheck, telemetry};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Healthcheck(args)) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let result = match runtime {
                Ok(runtime) => runtime.block_on(healthcheck::check(args.addr, args.timeout)),
                Err(error) => Err(error.to_string()),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(reason) => {
                    eprintln!("{reason}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    }
}

fn serve(args: bookstore::config::ServeArgs) -> ExitCode {
    telemetry::init(args.log_format);
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async {
                let app = Application::build(&args).await?;
                app.run_until(shutdown_signal()).await?;
                anyhow::Ok(())
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
