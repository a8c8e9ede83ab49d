//! `dunning-schedule`: the daily scheduler and the operator commands.
//!
//! The binary is a thin shell around [`main`]; everything is here so that the
//! commands can share code and be tested.

pub mod app;
pub mod cli;
pub mod commands;
pub mod migrate;
pub mod output;
pub mod run;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// Parses the command line, runs the command, maps errors to exit codes.
pub fn main() -> ExitCode {
    let dotenv = app::load_dotenv();
    let cli = Cli::parse();
    if let Err(err) = dotenv {
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(app::exit_code(&err))
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let settings = app::load_settings()?;
    match cli.command {
        None => run::run(&settings, &cli.run),
        Some(Command::Run(args)) => run::run(&settings, &args),
        Some(Command::Migrate) => migrate::migrate(&settings),
        Some(Command::Resume { channel }) => migrate::resume(&settings, channel.as_deref()),
        Some(other) => commands::dispatch(&settings, other),
    }
}
