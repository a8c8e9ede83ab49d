//! What every command needs: settings, a database connection, exit codes.

use std::fmt;

use diesel::pg::PgConnection;
use dunning_core::Settings;
use dunning_core::config::ConfigError;
use dunning_core::startup::Exit;

/// A usage or configuration problem: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code for an error: [`Exit::Usage`] for usage and configuration,
/// [`Exit::Failure`] for everything else.
pub fn exit_code(err: &anyhow::Error) -> Exit {
    if err
        .chain()
        .any(|e| e.is::<UsageError>() || e.is::<ConfigError>())
    {
        Exit::Usage
    } else {
        Exit::Failure
    }
}

/// Reads the settings from the environment (after `startup::load_dotenv`).
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

/// The dates a date flag accepts: far enough from the calendar's ends (years -9999
/// and 9999) that every date computed from them (stage days, months, chart days)
/// exists.
const DATES: std::ops::RangeInclusive<time::Date> =
    time::macros::date!(1900 - 01 - 01)..=time::macros::date!(9000 - 12 - 31);

/// Parses a `YYYY-MM-DD` flag.
pub fn parse_date(flag: &str, value: &str) -> anyhow::Result<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(value.trim(), &format).map_err(|_| {
        UsageError(format!(
            "{flag} {value:?} is not a date: write YYYY-MM-DD, e.g. 2025-11-15"
        ))
    })?;
    if !DATES.contains(&date) {
        return Err(UsageError(format!(
            "{flag} {date} is out of range: use a date from {} to {}",
            DATES.start(),
            DATES.end()
        ))
        .into());
    }
    Ok(date)
}
