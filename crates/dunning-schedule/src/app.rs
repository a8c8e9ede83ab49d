//! What every command needs: settings, a database connection, exit codes.

use std::fmt;

use diesel::pg::PgConnection;
use dunning_core::Settings;
use dunning_core::config::ConfigError;

/// A usage or configuration problem: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code for an error: 2 for usage and configuration, 1 for everything else.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err
        .chain()
        .any(|e| e.is::<UsageError>() || e.is::<ConfigError>())
    {
        2
    } else {
        1
    }
}

/// Loads `.env` into the environment, if there is one: the working directory's, else
/// the one beside the program or above it (see [`dunning_core::envfile`]). Call it
/// before parsing the command line, so that flags with an `env =` name can be set in
/// `.env` too. Variables already in the environment win.
pub fn load_dotenv() -> Result<(), UsageError> {
    dunning_core::envfile::load().map(drop).map_err(UsageError)
}

/// Reads the settings from the environment (after [`load_dotenv`]).
pub fn load_settings() -> anyhow::Result<Settings> {
    Ok(Settings::from_env()?)
}

/// Connects to the database and refuses to go on when migrations are pending.
pub fn connect_migrated(settings: &Settings) -> anyhow::Result<PgConnection> {
    let mut conn = connect(settings)?;
    dunning_store::db::ensure_migrated(&mut conn)?;
    Ok(conn)
}

/// Connects to the database.
pub fn connect(settings: &Settings) -> anyhow::Result<PgConnection> {
    let url = settings.require_database_url()?;
    Ok(dunning_store::db::connect(url.expose())?)
}

/// Parses a `YYYY-MM-DD` flag.
pub fn parse_date(flag: &str, value: &str) -> anyhow::Result<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value.trim(), &format).map_err(|_| {
        UsageError(format!(
            "{flag} {value:?} is not a date: write YYYY-MM-DD, e.g. 2025-11-15"
        ))
        .into()
    })
}
