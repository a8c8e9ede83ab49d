//! `dunning-schedule migrate` and `resume`: small maintenance commands.

use dunning_core::Settings;

use crate::app;

/// Applies pending migrations and prints each one.
pub fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let mut conn = app::connect(settings)?;
    let applied = dunning_store::db::run_pending_migrations(&mut conn)?;
    if applied.is_empty() {
        println!("Nothing to migrate: the database is up to date.");
    } else {
        for name in &applied {
            println!("Applied migration {name}");
        }
        println!("{} migration(s) applied.", applied.len());
    }
    Ok(())
}

/// Ends the pause of one channel (or both) and says what the pause was for.
pub fn resume(settings: &Settings, channel: Option<&str>) -> anyhow::Result<()> {
    let channels: Vec<dunning_core::Channel> = match channel {
        None => dunning_core::Channel::ALL.to_vec(),
        Some(c) => vec![
            c.parse()
                .map_err(|e: dunning_core::channel::ChannelError| app::UsageError(e.to_string()))?,
        ],
    };
    let mut conn = app::connect_migrated(settings)?;
    // When each pause would have ended, shown in DUNNING_TIMEZONE.
    let until = dunning_store::ops::health::paused_channels(&mut conn)?;
    for c in channels {
        match dunning_store::queue::resume_channel(&mut conn, c)? {
            Some(r) => match until.iter().find(|p| p.channel == c.as_str()) {
                Some(p) => println!(
                    "{c}: resumed (it was paused until {}: {}); {} held job(s) ready now",
                    crate::commands::local_time(settings, p.paused_until),
                    r.reason,
                    r.released
                ),
                None => println!(
                    "{c}: resumed (it was paused: {}); {} held job(s) ready now",
                    r.reason, r.released
                ),
            },
            None => println!("{c}: was not paused"),
        }
    }
    Ok(())
}
