//! `dunning-schedule web-user add|list|remove`: the dashboard's users.

use std::io::{BufRead as _, IsTerminal as _};

use dunning_core::Settings;
use dunning_core::secret;
use dunning_store::ops::{audit, web};

use crate::app::{self, UsageError};

/// Adds a user (or sets a new password and role), asking for the password on the
/// terminal, or reading one line from stdin with `--password-stdin`.
pub fn add(
    settings: &Settings,
    name: &str,
    role: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(UsageError(
            "the user name must be 1 to 64 characters without control characters".into(),
        )
        .into());
    }
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Err(UsageError(
                "not on a terminal, so nobody can type the password: no user was added. \
                 Run it in a terminal (over ssh: `ssh -t`), or pipe the password with --password-stdin."
                    .into(),
            )
            .into());
        }
        dialoguer::Password::new()
            .with_prompt(format!("Password for {name}"))
            .with_confirmation("Repeat the password", "the passwords differ, try again")
            .interact()?
    };
    let hash = secret::hash_password(&password).map_err(|e| UsageError(e.to_string()))?;
    let mut conn = app::connect_migrated(settings)?;
    let new = diesel::Connection::transaction(&mut conn, |c| {
        let new = web::upsert_user(c, name, role, &hash)?;
        let what = if new {
            "web-user add"
        } else {
            "web-user change"
        };
        audit::record(c, "cli", what, &format!("{name} ({role})"), None)?;
        Ok::<_, dunning_store::StoreError>(new)
    })?;
    if new {
        println!("Added dashboard user {name} ({role}).");
    } else {
        println!(
            "Dashboard user {name} now has a new password and role {role}; their sessions were ended."
        );
    }
    Ok(())
}

/// Lists the users.
pub fn list(settings: &Settings) -> anyhow::Result<()> {
    let mut conn = app::connect_migrated(settings)?;
    let users = web::list_users(&mut conn)?;
    if users.is_empty() {
        println!(
            "No dashboard users. Add one with `dunning-schedule web-user add NAME --role admin`."
        );
        return Ok(());
    }
    let zone = settings.zone.offset();
    println!("{:<24} {:<7} {:<20} last seen", "name", "role", "added");
    for u in &users {
        let fmt = |t: time::OffsetDateTime| {
            let t = t.to_offset(zone);
            format!("{} {:02}:{:02}", t.date(), t.hour(), t.minute())
        };
        println!(
            "{:<24} {:<7} {:<20} {}",
            u.name,
            u.role,
            fmt(u.created_at),
            u.last_seen_at.map_or_else(|| "-".to_owned(), fmt)
        );
    }
    println!("(times in {})", settings.zone);
    Ok(())
}

/// Removes a user. Exit 1 when there is none with this name.
pub fn remove(settings: &Settings, name: &str) -> anyhow::Result<()> {
    let mut conn = app::connect_migrated(settings)?;
    let removed = diesel::Connection::transaction(&mut conn, |c| {
        let removed = web::remove_user(c, name)?;
        if removed {
            audit::record(c, "cli", "web-user remove", name, None)?;
        }
        Ok::<_, dunning_store::StoreError>(removed)
    })?;
    if removed {
        println!("Removed dashboard user {name}; their sessions were ended.");
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "no dashboard user is named {name:?}; `dunning-schedule web-user list` shows them"
        ))
    }
}
