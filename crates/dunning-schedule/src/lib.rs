//! `dunning-schedule`: the daily scheduler and the operator commands.
//!
//! The binary is a thin shell around [`main`]; everything is here so that the
//! commands can share code and be tested.

pub mod app;
pub mod calendar;
pub mod cli;
pub mod commands;
pub mod hooks;
pub mod migrate;
pub mod output;
pub mod run;

use std::process::ExitCode;

use clap::Parser;
use dunning_core::startup::{self, Exit};

use cli::{Cli, Command};

/// Parses the command line, runs the command, maps errors to exit codes.
pub fn main() -> ExitCode {
    startup::quiet_on_closed_output();
    let cli = match startup::begin(Cli::parse, "warn") {
        Ok(cli) => cli,
        Err(code) => return code.into(),
    };
    match dispatch(cli) {
        Ok(()) => Exit::Success.into(),
        Err(err) => {
            startup::print_error(&format!("{err:#}"));
            app::exit_code(&err).into()
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
