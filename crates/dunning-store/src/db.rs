//! Connections, pools and migrations.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::StoreError;

/// The SQL migrations in `migrations/`, compiled into every binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// A pool of database connections.
pub type PgPool = Pool<ConnectionManager<PgConnection>>;
/// One connection taken from a [`PgPool`].
pub type PooledConn = PooledConnection<ConnectionManager<PgConnection>>;

/// `postgres://user:secret@host:5432/db` → `host:5432/db`, for error messages:
/// says where we tried to connect without showing credentials.
pub fn describe_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('?').next().unwrap_or(rest).to_owned()
}

/// The first line of a driver error, without credentials.
fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error")
        .to_owned()
}

/// Opens one connection.
pub fn connect(url: &str) -> Result<PgConnection, StoreError> {
    PgConnection::establish(url).map_err(|e| StoreError::Connect {
        target: describe_url(url),
        reason: one_line(&e),
    })
}

/// Builds a connection pool (the worker's, `dunning-web`'s) and checks that the
/// database answers.
pub fn pool(url: &str, max_size: u32) -> Result<PgPool, StoreError> {
    // Fail fast with the driver's own reason instead of r2d2's generic timeout.
    drop(connect(url)?);
    Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        .connection_timeout(std::time::Duration::from_secs(10))
        .test_on_check_out(true)
        .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
        .build(ConnectionManager::<PgConnection>::new(url))
        .map_err(|e| StoreError::Connect {
            target: describe_url(url),
            reason: one_line(&e),
        })
}

/// Applies every pending migration and returns their names, oldest first.
pub fn run_pending_migrations(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// Names of migrations not yet applied to this database.
pub fn pending_migrations(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    let pending = conn
        .pending_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(pending.iter().map(|m| m.name().to_string()).collect())
}

/// Refuses to go on when migrations are pending: running new code against an old
/// schema would fail mid-run at 08:00, so it fails now with the fix.
pub fn ensure_migrated(conn: &mut PgConnection) -> Result<(), StoreError> {
    let pending = pending_migrations(conn)?;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(StoreError::PendingMigrations(pending))
    }
}

/// This machine's name, recorded with scheduler runs and in worker ids so that an
/// operator can tell hosts apart (`HOSTNAME`, else `/etc/hostname`).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::describe_url;

    #[test]
    fn describe_url_hides_credentials() {
        assert_eq!(
            describe_url("postgres://app:s3cret@db.example:5432/dunning?sslmode=require"),
            "db.example:5432/dunning"
        );
        assert_eq!(describe_url("postgres://localhost/x"), "localhost/x");
    }
}
