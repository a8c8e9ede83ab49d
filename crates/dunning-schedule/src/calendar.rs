//! Quiet days at the edge: reads `DUNNING_QUIET_WEEKDAYS` and the holiday file
//! (`DUNNING_HOLIDAYS`) into a [`Calendar`]; what is quiet is decided in
//! `dunning_core::calendar`.

use dunning_core::calendar::{Calendar, CalendarSettings, Holidays};

use crate::app::UsageError;

/// The configured calendar. A missing or bad holiday file is a usage error (exit
/// 2) naming the file, the line and the fix: the 08:00 run must stop rather than
/// send reminders on the holidays the operator meant to keep quiet.
pub fn load() -> anyhow::Result<Calendar> {
    let settings = CalendarSettings::from_env()?;
    let holidays = match &settings.holidays_file {
        None => Holidays::default(),
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                UsageError(format!(
                    "DUNNING_HOLIDAYS={name}: cannot read the holiday file ({e}). Fix: correct the path (relative to the folder of .env, e.g. holidays/id-2026-2027.txt), or leave DUNNING_HOLIDAYS unset to keep no holidays"
                ))
            })?;
            Holidays::parse(&name, &text).map_err(|e| UsageError(e.to_string()))?
        }
    };
    Ok(Calendar::new(settings.quiet_weekdays, holidays))
}
