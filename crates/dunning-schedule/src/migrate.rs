//! `dunning-schedule migrate`.

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
